//! CloudWatch Embedded Metric Format: one JSON line per site, printed to stdout by the Lambda.

use serde_json::json;

use crate::report::{RunReport, SiteReport};

pub const NAMESPACE: &str = "SigsciKit/FeedExport";

/// The EMF line for one site of a run.
pub fn emf_line(report: &RunReport, site: &SiteReport, timestamp_ms: i64) -> String {
    let lag = site
        .newest_complete_until
        .map(|until| (report.now - until).max(0));
    let mut metrics = vec![
        json!({"Name": "Records", "Unit": "Count"}),
        json!({"Name": "Bytes", "Unit": "Bytes"}),
        json!({"Name": "Pages", "Unit": "Count"}),
        json!({"Name": "Retries", "Unit": "Count"}),
        json!({"Name": "Restarts", "Unit": "Count"}),
        json!({"Name": "CursorExpiries", "Unit": "Count"}),
        json!({"Name": "HoursExported", "Unit": "Count"}),
        json!({"Name": "HoursLost", "Unit": "Count"}),
        json!({"Name": "HoursPending", "Unit": "Count"}),
        json!({"Name": "HoursBusy", "Unit": "Count"}),
    ];
    if lag.is_some() {
        metrics.push(json!({"Name": "LagSeconds", "Unit": "Seconds"}));
    }
    let mut line = json!({
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{"Namespace": NAMESPACE, "Dimensions": [["Corp", "Site"]], "Metrics": metrics}],
        },
        "Corp": report.corp,
        "Site": site.site,
        "RunId": report.run_id,
        "Records": site.records(),
        "Bytes": site.bytes(),
        "Pages": site.pages(),
        "Retries": site.retries(),
        "Restarts": site.restarts(),
        "CursorExpiries": site.cursor_expiries(),
        "HoursExported": site.exported.len(),
        "HoursLost": site.lost.len(),
        "HoursPending": site.hours_pending(),
        "HoursBusy": site.busy.len(),
    });
    if let (Some(lag), Some(object)) = (lag, line.as_object_mut()) {
        object.insert("LagSeconds".to_string(), json!(lag));
    }
    line.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::HourSummary;

    #[test]
    fn emf_lines_carry_the_metrics_and_their_values() {
        let site = SiteReport {
            site: "www".into(),
            exported: vec![HourSummary {
                site: "www".into(),
                hour: "h".into(),
                records: 5,
                parts: 1,
                bytes: 70,
                pages: 2,
                retries: 1,
                restarts: 3,
                cursor_expiries: 2,
                seconds: 0.1,
                ocsf: None,
            }],
            lost: vec!["x".into()],
            pending: vec!["p".into()],
            busy: vec!["b".into()],
            newest_complete_until: Some(1000),
            ..SiteReport::default()
        };
        let report = RunReport {
            run_id: "r".into(),
            corp: "acme".into(),
            now: 1400,
            sites: vec![],
            stopped_for_deadline: false,
        };
        let line: serde_json::Value =
            serde_json::from_str(&emf_line(&report, &site, 5)).unwrap_or_default();
        assert_eq!(line["_aws"]["CloudWatchMetrics"][0]["Namespace"], NAMESPACE);
        assert_eq!(
            line["_aws"]["CloudWatchMetrics"][0]["Metrics"]
                .as_array()
                .map(Vec::len),
            Some(11)
        );
        assert_eq!(
            (
                line["Records"].as_u64(),
                line["HoursLost"].as_u64(),
                line["LagSeconds"].as_i64(),
                line["HoursPending"].as_u64(),
                line["HoursBusy"].as_u64()
            ),
            (Some(5), Some(1), Some(400), Some(2), Some(1))
        );
        assert_eq!(
            (line["Restarts"].as_u64(), line["CursorExpiries"].as_u64()),
            (Some(3), Some(2))
        );
    }
}

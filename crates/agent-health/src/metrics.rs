//! CloudWatch Embedded Metric Format: one JSON line per run on standard output, which Lambda's log
//! pipeline turns into metrics without any API call.

use serde_json::{Value, json};

use crate::evaluator::RunReport;

pub const NAMESPACE: &str = "SigsciKit/AgentHealth";

/// The EMF document for one run, dimensioned by corp.
pub fn emf(report: &RunReport) -> Value {
    let metrics = [
        ("SitesEvaluated", report.sites_evaluated as f64, "Count"),
        (
            "EvaluationFailures",
            (report.sites_failed.len() + usize::from(report.corp_error.is_some())) as f64,
            "Count",
        ),
        ("ConditionsFiring", report.conditions_firing as f64, "Count"),
        (
            "NotificationsSent",
            report.notifications_sent as f64,
            "Count",
        ),
        (
            "NotificationsFailed",
            report.notifications_failed as f64,
            "Count",
        ),
        (
            "NotificationsThrottled",
            report.notifications_throttled as f64,
            "Count",
        ),
        (
            "NotificationsAcknowledged",
            report.notifications_acknowledged as f64,
            "Count",
        ),
        ("IncidentsUpdated", report.incidents_updated as f64, "Count"),
        ("IncidentsFailed", report.incidents_failed as f64, "Count"),
        ("RunDuration", report.duration_ms as f64, "Milliseconds"),
    ];
    let mut document = json!({
        "_aws": {
            "Timestamp": report.started_at.timestamp_millis(),
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [["Corp"]],
                "Metrics": metrics.iter().map(|(name, _, unit)| json!({"Name": name, "Unit": unit})).collect::<Vec<Value>>(),
            }],
        },
        "Corp": report.corp,
        "RunId": report.run_id,
    });
    for (name, value, _) in metrics {
        document[name] = json!(value);
    }
    document
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_declared_metric_has_a_value() {
        let report = RunReport {
            corp: "testcorp".into(),
            sites_evaluated: 3,
            sites_failed: vec!["www".into()],
            notifications_sent: 2,
            ..RunReport::default()
        };
        let document = emf(&report);
        let declared = document["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap();
        assert_eq!(declared.len(), 10);
        for metric in declared {
            let name = metric["Name"].as_str().unwrap();
            assert!(document[name].is_number(), "{name}");
        }
        assert_eq!(document["SitesEvaluated"], 3.0);
        assert_eq!(document["EvaluationFailures"], 1.0);
        assert_eq!(document["Corp"], "testcorp");
    }
}

//! `GET /corps/{corp}/sites/{site}/timeseries/requests`: request counts per rollup bucket, computed
//! from the same synthetic traffic as the feed (`requests_total` = all requests, others = a signal).

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use crate::error::SimError;
use crate::extract::{QueryPairs, SitePath};
use crate::feed::generate::SignalFilter;
use crate::state::SimState;

/// Counting a signal scans every record, so keep windows to a day.
const MAX_WINDOW_SECS: i64 = 86_400;

fn optional_epoch(query: &QueryPairs, name: &str) -> Result<Option<i64>, SimError> {
    query
        .get(name)
        .filter(|s| !s.is_empty())
        .map(|raw| {
            raw.parse::<i64>().map_err(|_| {
                SimError::bad_request(format!("{name} must be Unix epoch seconds, got {raw:?}"))
            })
        })
        .transpose()
}

pub(crate) async fn requests(
    State(state): State<SimState>,
    path: SitePath,
    query: QueryPairs,
) -> Result<Json<Value>, SimError> {
    let tags: Vec<String> = query
        .all("tag")
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect();
    if tags.is_empty() {
        return Err(SimError::bad_request(
            "tag is required (one series per tag, e.g. tag=requests_total)",
        ));
    }
    let rollup = optional_epoch(&query, "rollup")?.unwrap_or(60);
    if rollup <= 0 || rollup % 60 != 0 {
        return Err(SimError::bad_request(
            "rollup must be a positive multiple of 60 seconds",
        ));
    }
    let now = state.now();
    let until = optional_epoch(&query, "until")?
        .unwrap_or(now)
        .div_euclid(60)
        * 60;
    let from = optional_epoch(&query, "from")?
        .unwrap_or(until - 3600)
        .div_euclid(60)
        * 60;
    if from >= until {
        return Err(SimError::bad_request("from must be before until"));
    }
    if until - from > MAX_WINDOW_SECS {
        return Err(SimError::bad_request("the window must not exceed 24 hours"));
    }
    let site = state.require_site(&path.site)?;
    let series: Vec<Value> = tags
        .iter()
        .map(|tag| {
            let filter = (tag != "requests_total").then(|| SignalFilter::new([tag.as_str()]));
            let points: Vec<u64> = (from..until)
                .step_by(rollup as usize)
                .map(|bucket| {
                    let bucket_end = (bucket + rollup).min(until);
                    // Only minutes that are over have data.
                    (bucket / 60..bucket_end / 60)
                        .filter(|minute| minute * 60 + 60 <= now)
                        .map(|minute| site.traffic.count_matching(minute, filter.as_ref()))
                        .sum()
                })
                .collect();
            json!({
                "type": tag,
                "from": from,
                "until": until,
                "inc": rollup,
                "summaryCount": points.iter().sum::<u64>(),
                "totalPoints": points.len(),
                "data": points,
            })
        })
        .collect();
    Ok(Json(json!({ "data": series })))
}

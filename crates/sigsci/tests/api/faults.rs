//! Every retryable fault is recovered from, on plain calls and on feed pages.

use anyhow::{Result, ensure};
use serde_json::json;
use sigsci::FeedQuery;

use crate::common::{Sim, assert_feed_matches_truth};

const RETRYABLE: [&str; 6] = [
    "rate_limit_429",
    "rate_limit_400",
    "server_error",
    "html_502",
    "reset",
    "malformed",
];

#[tokio::test]
async fn every_retryable_fault_is_recovered() -> Result<()> {
    let sim = Sim::default().await?;
    let client = sim.client()?;
    let site = "site-1";
    let window = sim.window(4);
    for fault in RETRYABLE {
        sim.set_faults(json!({ fault: 0.3 })).await?;
        sim.reset_log().await?;

        // Plain calls (`malformed` only affects feed pages).
        for _ in 0..10 {
            ensure!(client.list_sites().await?.len() == 3, "{fault}: sites");
            ensure!(
                !client.list_alerts(site).await?.is_empty(),
                "{fault}: alerts"
            );
        }

        let query = FeedQuery {
            limit: 200,
            ..window.clone()
        };
        let pages = assert_feed_matches_truth(&sim, &client, site, query).await?;
        let attempts: u32 = pages.iter().map(|p| p.attempts).sum();
        ensure!(
            attempts as usize > pages.len(),
            "{fault}: no page needed a retry ({attempts} attempts for {} pages), fault never hit",
            pages.len()
        );
        let log = sim.log().await?;
        let calls: u64 = log["calls"]
            .as_object()
            .map(|calls| calls.values().filter_map(|v| v.as_u64()).sum())
            .unwrap_or(0);
        // 20 plain calls + pages: more API calls than that means retries happened.
        ensure!(
            calls > 20 + pages.len() as u64,
            "{fault}: {calls} calls for {} pages",
            pages.len()
        );
    }
    sim.set_faults(json!({})).await?;
    sim.running.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn a_create_is_retried_only_when_the_server_did_not_act() -> Result<()> {
    let sim = Sim::default().await?;
    let client = sim.client()?;
    let body = sigsci::AlertBody {
        tag_name: Some("SQLI".into()),
        long_name: Some("SQLi burst".into()),
        interval: Some(1),
        threshold: Some(10),
        enabled: Some(true),
        action: Some("info".into()),
        ..Default::default()
    };
    // Rate limits are safe to repeat: the create goes through.
    sim.set_faults(json!({ "rate_limit_429": 0.5 })).await?;
    for _ in 0..5 {
        client.create_alert("site-2", &body).await?;
    }
    // A 5xx on a create surfaces (transient) instead of risking a duplicate.
    sim.set_faults(json!({ "server_error": 1.0 })).await?;
    sim.reset_log().await?;
    let err = client.create_alert("site-2", &body).await.expect_err("5xx");
    ensure!(
        err.is_transient() && err.status().is_some_and(|s| s >= 500),
        "{err:?}"
    );
    ensure!(sim.calls("POST /corps/{corp}/sites/{site}/alerts").await? == 1);
    sim.set_faults(json!({})).await?;
    sim.running.shutdown().await;
    Ok(())
}

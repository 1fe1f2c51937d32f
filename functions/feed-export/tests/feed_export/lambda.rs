//! The Lambda handler in-process: Secrets Manager and S3 on moto, the API on the simulator.

use crate::common;

use common::*;
use feed_export::lambda::{LambdaConfig, handle};
use feed_export::window::keys;
use feed_export::{ExportError, metrics};
use kit_storage::{SecretSource, SecretsManager, StaticSecrets};

fn config(sim: &sigsci_sim::RunningSim, bucket: &str, secret: &str) -> LambdaConfig {
    let vars = [
        ("SIGSCI_CORP", CORP.to_string()),
        ("SIGSCI_API_URL", sim.base_url.clone()),
        ("SIGSCI_SECRET_NAME", secret.to_string()),
        ("FEED_DESTINATION", format!("s3://{bucket}/sigsci")),
        ("FEED_S3_ENDPOINT", moto_url()),
        ("SIGSCI_SITES", "site-1, site-2".to_string()),
    ];
    LambdaConfig::from_env(|name| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    })
    .unwrap_or_else(|e| panic!("config: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_and_manual_invocations_export_to_s3() -> TestResult {
    let sim = sim(3, 2.0).await;
    let bucket = create_bucket("feed").await;
    let secret = unique("sigsci/feed");
    create_secret(
        &secret,
        r#"{"email": "sim@example.com", "token": "sim-token"}"#,
    )
    .await;
    let config = config(&sim, &bucket, &secret);
    let store = kit_storage::open(&config.destination, config.s3_endpoint.as_deref())?;
    let secrets = SecretsManager::new(Some(&moto_url()));

    // A manual backfill of one hour of site-3 (not in SIGSCI_SITES: the payload wins).
    let hour = last_hours(&sim, 1)[0];
    let manual = serde_json::json!({"sites": ["site-3"], "from": hour.datetime().to_rfc3339(), "until": hour.end()});
    let report = handle(&manual, None, store.clone(), &secrets, &config, clock(&sim)).await?;
    assert_eq!(report.hours_exported(), 1);
    assert_exact(&sim, store.as_ref(), "site-3", hour).await;

    // The scheduler's event: every hour in retention of the configured sites.
    let scheduled = serde_json::json!({"version": "0", "source": "aws.scheduler", "detail-type": "Scheduled Event", "detail": {}});
    let report = handle(
        &scheduled,
        None,
        store.clone(),
        &secrets,
        &config,
        clock(&sim),
    )
    .await?;
    assert_eq!(
        report
            .sites
            .iter()
            .map(|s| s.site.as_str())
            .collect::<Vec<_>>(),
        ["site-1", "site-2"]
    );
    assert_eq!(report.hours_exported(), 2 * 23);
    for site in ["site-1", "site-2"] {
        assert_exact(&sim, store.as_ref(), site, hour).await;
    }
    let line: serde_json::Value =
        serde_json::from_str(&metrics::emf_line(&report, &report.sites[0], 0))?;
    assert_eq!(line["HoursExported"], 23);
    assert_eq!(line["LagSeconds"].as_i64(), Some(report.now - hour.end()));

    // The next run has nothing to do.
    let report = handle(
        &scheduled,
        None,
        store.clone(),
        &secrets,
        &config,
        clock(&sim),
    )
    .await?;
    assert_eq!(report.hours_exported(), 0);
    sim.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_secrets_fail_clearly_and_write_nothing() -> TestResult {
    let sim = sim(1, 1.0).await;
    let bucket = create_bucket("feed").await;
    let config = config(&sim, &bucket, "sigsci/feed");
    let store = kit_storage::open(&config.destination, config.s3_endpoint.as_deref())?;
    let event = serde_json::json!({});
    let cases: [(StaticSecrets, &str); 3] = [
        (StaticSecrets::new(), "no such secret"),
        (
            StaticSecrets::new().with("sigsci/feed", "{not json"),
            "not valid JSON",
        ),
        (
            StaticSecrets::new().with("sigsci/feed", r#"{"email": "sim@example.com"}"#),
            "\"token\"",
        ),
    ];
    for (secrets, expected) in cases {
        let error = handle(
            &event,
            None,
            store.clone(),
            &secrets as &dyn SecretSource,
            &config,
            clock(&sim),
        )
        .await
        .err()
        .ok_or("must fail")?;
        let text = error.to_string();
        assert!(
            matches!(error, ExportError::Config { .. })
                && text.starts_with("SIGSCI_SECRET_NAME")
                && text.contains(expected),
            "{text}"
        );
    }
    let wrong = StaticSecrets::new().with(
        "sigsci/feed",
        r#"{"email": "sim@example.com", "token": "wrong"}"#,
    );
    let error = handle(&event, None, store.clone(), &wrong, &config, clock(&sim))
        .await
        .err()
        .ok_or("must fail")?;
    assert!(error.to_string().contains("401"), "{error}");
    assert!(store.list("").await?.is_empty(), "nothing written");
    assert!(store.get(&keys::ledger(CORP, "site-1")).await?.is_none());
    sim.shutdown().await;
    Ok(())
}

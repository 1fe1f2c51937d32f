//! The deployed job in-process (what the Lambda shell runs per event): Secrets Manager and S3 on
//! moto, the API on the simulator.

use crate::common;

use common::*;
use std::sync::Arc;

use feed_export::environment::{Deps, Env};
use feed_export::window::keys;
use feed_export::{ExportError, metrics};
use kit_storage::{SecretSource, SecretsManager, StaticSecrets};

fn env(sim: &sigsci_sim::RunningSim, bucket: &str, secret: &str) -> Env {
    let vars = [
        ("SIGSCI_CORP", CORP.to_string()),
        ("SIGSCI_API_URL", sim.base_url.clone()),
        ("SIGSCI_KIT_CREDENTIALS_SECRET", secret.to_string()),
        ("SIGSCI_KIT_FEED_LOCATION", format!("s3://{bucket}/sigsci")),
        ("SIGSCI_KIT_SITES", "site-1, site-2".to_string()),
    ];
    Env::from_lookup(|name| {
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
    let env = env(&sim, &bucket, &secret);
    let store = kit_storage::open(&env.feed_location, Some(&moto_url()))?;
    let secrets: Arc<dyn SecretSource> = Arc::new(SecretsManager::new(Some(&moto_url())));
    let deps = Deps::with(env, store.clone(), secrets, clock(&sim));

    // A manual backfill of one hour of site-3 (not in SIGSCI_KIT_SITES: the payload wins).
    let hour = last_hours(&sim, 1)[0];
    let manual = serde_json::json!({"sites": ["site-3"], "from": hour.datetime().to_rfc3339(), "until": hour.end()});
    let report = deps.run(&manual, None).await?;
    assert_eq!(report.hours_exported(), 1);
    assert_exact(&sim, store.as_ref(), "site-3", hour).await;

    // The scheduler's event: every hour in retention of the configured sites.
    let scheduled = serde_json::json!({"version": "0", "source": "aws.scheduler", "detail-type": "Scheduled Event", "detail": {}});
    let report = deps.run(&scheduled, None).await?;
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
    let report = deps.run(&scheduled, None).await?;
    assert_eq!(report.hours_exported(), 0);
    sim.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_secrets_fail_clearly_and_write_nothing() -> TestResult {
    let sim = sim(1, 1.0).await;
    let bucket = create_bucket("feed").await;
    let env = env(&sim, &bucket, "sigsci/feed");
    let store = kit_storage::open(&env.feed_location, Some(&moto_url()))?;
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
        let deps = Deps::with(env.clone(), store.clone(), Arc::new(secrets), clock(&sim));
        let error = deps.run(&event, None).await.err().ok_or("must fail")?;
        let text = error.to_string();
        assert!(
            matches!(error, ExportError::Config { .. })
                && text.starts_with("SIGSCI_KIT_CREDENTIALS_SECRET")
                && text.contains(expected),
            "{text}"
        );
    }
    let wrong = StaticSecrets::new().with(
        "sigsci/feed",
        r#"{"email": "sim@example.com", "token": "wrong"}"#,
    );
    let deps = Deps::with(env, store.clone(), Arc::new(wrong), clock(&sim));
    let error = deps.run(&event, None).await.err().ok_or("must fail")?;
    assert!(error.to_string().contains("401"), "{error}");
    assert!(store.list("").await?.is_empty(), "nothing written");
    assert!(store.get(&keys::ledger(CORP, "site-1")).await?.is_none());
    sim.shutdown().await;
    Ok(())
}

//! Non-retryable failures surface as their typed error after a single attempt.

use anyhow::{Result, ensure};
use sigsci::{AlertBody, Client, Credentials, Error, FeedQuery};

use crate::common::{Sim, fast_retries};

#[tokio::test]
async fn wrong_token_is_unauthorized_401_without_retries() -> Result<()> {
    let sim = Sim::default().await?;
    let client = Client::builder(
        sim.base_url(),
        "testcorp",
        Credentials::token("sim@example.com", "wrong-token"),
    )
    .retry(fast_retries())
    .build()?;
    let err = client.list_sites().await.expect_err("bad token");
    ensure!(
        matches!(err, Error::Unauthorized { status: 401, .. }),
        "{err:?}"
    );
    ensure!(err.status() == Some(401) && !err.is_transient());
    ensure!(
        sim.calls("GET /corps/{corp}/sites").await? == 1,
        "retried a 401"
    );
    ensure!(
        !format!("{err} {err:?}").contains("wrong-token"),
        "secret in error"
    );
    sim.running.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn missing_things_are_not_found() -> Result<()> {
    let sim = Sim::default().await?;
    let client = sim.client()?;
    let err = client
        .list_alerts("no-such-site")
        .await
        .expect_err("missing site");
    ensure!(
        matches!(err, Error::NotFound { .. }) && err.status() == Some(404),
        "{err:?}"
    );
    let err = client
        .get_alert("site-1", "no-such-alert")
        .await
        .expect_err("missing alert");
    ensure!(matches!(err, Error::NotFound { .. }), "{err:?}");
    let err = client
        .delete_site_integration("site-1", "no-such-integration")
        .await
        .expect_err("missing integration");
    ensure!(matches!(err, Error::NotFound { .. }), "{err:?}");
    ensure!(
        sim.calls("GET /corps/{corp}/sites/{site}/alerts").await? == 1,
        "retried a 404"
    );
    sim.running.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn bad_alert_body_is_a_validation_error_with_the_message() -> Result<()> {
    let sim = Sim::default().await?;
    let client = sim.client()?;
    let body = AlertBody {
        tag_name: Some("SQLI".into()),
        long_name: Some("x".into()),
        interval: Some(1),
        threshold: Some(10),
        action: Some("info".into()),
        ..AlertBody::default()
    };
    match client.create_alert("site-1", &body).await {
        Err(Error::Validation {
            status: 400,
            message,
        }) => {
            ensure!(message.contains("longName"), "{message}")
        }
        other => anyhow::bail!("expected a validation error, got {other:?}"),
    }
    sim.running.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn feed_window_outside_the_rules_is_a_validation_error() -> Result<()> {
    let sim = Sim::default().await?;
    let client = sim.client()?;
    let now = sim.running.state.now() / 60 * 60;
    let pages =
        crate::common::collect_pages(&client, "site-1", FeedQuery::new(now - 600, now)).await;
    let err = pages.expect_err("until too recent");
    match err.downcast_ref::<Error>() {
        Some(Error::Validation {
            status: 400,
            message,
        }) => {
            ensure!(message.contains("until"), "{message}")
        }
        other => anyhow::bail!("expected a validation error, got {other:?}"),
    }
    sim.running.shutdown().await;
    Ok(())
}

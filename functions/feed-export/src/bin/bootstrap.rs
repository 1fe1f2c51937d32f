//! The feed export Lambda: subscriber, configuration, then the runtime loop.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use feed_export::lambda::{LambdaConfig, handle};
use feed_export::{ExportError, metrics, system_clock};
use kit_storage::SecretsManager;
use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde_json::{Value, json};
use tracing_subscriber::EnvFilter;

fn diagnostic(error: &ExportError) -> Diagnostic {
    // Retryable: the next scheduled run (or Lambda's own retry) can succeed without a change.
    let kind = if error.is_transient() {
        "FeedExport.Retryable"
    } else {
        "FeedExport.Fatal"
    };
    Diagnostic {
        error_type: kind.to_string(),
        error_message: error.to_string(),
    }
}

/// The invocation's deadline as a tokio instant; `None` when the runtime gave none (a deadline
/// of 0 or in the past, as local emulators send).
fn deadline_of(context: &lambda_runtime::Context) -> Option<tokio::time::Instant> {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let left = context
        .deadline
        .checked_sub(now_ms)
        .filter(|left| *left > 0)?;
    Some(tokio::time::Instant::now() + Duration::from_millis(left))
}

fn main() -> Result<(), lambda_runtime::Error> {
    feed_export::allocator::tune_for_streaming();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run())
}

async fn run() -> Result<(), lambda_runtime::Error> {
    let filter = ["AWS_LAMBDA_LOG_LEVEL", "RUST_LOG"]
        .iter()
        .find_map(|var| std::env::var(var).ok())
        .and_then(|level| EnvFilter::try_new(level.to_lowercase()).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .with_target(false)
        .init();

    let config = LambdaConfig::from_env(|name| std::env::var(name).ok())
        .inspect_err(|e| tracing::error!(error = %e, "bad configuration"))?;
    let store =
        kit_storage::open(&config.destination, config.s3_endpoint.as_deref()).map_err(|e| {
            ExportError::Config {
                setting: "FEED_DESTINATION".into(),
                message: e.to_string(),
            }
        })?;
    let secrets = SecretsManager::new(None);
    let clock = system_clock();

    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        let (store, secrets, config, clock) = (store.clone(), &secrets, &config, clock.clone());
        async move {
            let deadline = deadline_of(&event.context);
            if deadline.is_none() {
                tracing::warn!(
                    deadline_ms = event.context.deadline,
                    "the runtime gave no usable deadline; running without one"
                );
            }
            match handle(&event.payload, deadline, store, secrets, config, clock).await {
                Ok(report) => {
                    let now_ms = SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .map(|d| d.as_millis() as i64)
                        .unwrap_or(0);
                    for site in &report.sites {
                        println!("{}", metrics::emf_line(&report, site, now_ms));
                    }
                    let errors = report.errors();
                    if !errors.is_empty() {
                        return Err(Diagnostic {
                            error_type: "FeedExport.Retryable".into(),
                            error_message: errors.join("; "),
                        });
                    }
                    Ok(json!({
                        "run_id": report.run_id,
                        "hours_exported": report.hours_exported(),
                        "hours_lost": report.hours_lost(),
                        "stopped_for_deadline": report.stopped_for_deadline,
                        "sites": report.sites,
                    }))
                }
                Err(error) => {
                    tracing::error!(error = %error, "feed export failed");
                    Err(diagnostic(&error))
                }
            }
        }
    }))
    .await
}

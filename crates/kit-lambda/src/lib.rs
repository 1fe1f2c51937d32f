//! What the three Lambda shells (`functions/*`) share, so that they fail and log alike: one
//! logging set-up and one mapping of errors to the runtime's diagnostic.

use std::future::Future;

use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde::Serialize;
use tracing_subscriber::EnvFilter;

/// An invocation's error, as the runtime and Lambda's retry see it.
pub trait Failure: std::fmt::Display {
    /// Whether the same invocation may succeed later unchanged (Lambda's retry, the next schedule).
    fn is_transient(&self) -> bool;
}

/// Error types in the runtime's report: `Retryable` or `Fatal`, the same for every function, so an
/// alarm or a log query can tell "try again" from "a person must change something".
pub fn diagnostic(error: &(impl Failure + ?Sized)) -> Diagnostic {
    let error_type = if error.is_transient() {
        "Retryable"
    } else {
        "Fatal"
    };
    Diagnostic {
        error_type: error_type.to_string(),
        error_message: error.to_string(),
    }
}

/// The runtime loop of an event-driven function: each event to `handle`, each error reported
/// through [`diagnostic`].
pub async fn run<Handle, Handled, Report, Error>(
    handle: Handle,
) -> Result<(), lambda_runtime::Error>
where
    Handle: Fn(LambdaEvent<serde_json::Value>) -> Handled,
    Handled: Future<Output = Result<Report, Error>>,
    Report: Serialize,
    Error: Failure,
{
    lambda_runtime::run(service_fn(|event| {
        let handled = handle(event);
        async move { handled.await.map_err(|error| diagnostic(&error)) }
    }))
    .await
}

/// JSON logs to stdout (CloudWatch parses them); the level from `AWS_LAMBDA_LOG_LEVEL` (the
/// function's log configuration), then `RUST_LOG`, else info.
pub fn init_logging() {
    let filter = ["AWS_LAMBDA_LOG_LEVEL", "RUST_LOG"]
        .iter()
        .find_map(|name| std::env::var(name).ok())
        .and_then(|level| EnvFilter::try_new(level.to_lowercase()).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .with_target(false)
        .init();
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Sample(bool);

    impl std::fmt::Display for Sample {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("SIGSCI_CORP is not set")
        }
    }

    impl Failure for Sample {
        fn is_transient(&self) -> bool {
            self.0
        }
    }

    #[test]
    fn one_naming_scheme() {
        let fatal = diagnostic(&Sample(false));
        assert_eq!(
            (fatal.error_type.as_str(), fatal.error_message.as_str()),
            ("Fatal", "SIGSCI_CORP is not set")
        );
        assert_eq!(diagnostic(&Sample(true)).error_type, "Retryable");
    }
}

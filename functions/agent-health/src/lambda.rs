//! One scheduled invocation: an evaluation of every site, its metrics out as an EMF line, the
//! report as the result. The event body is not used.

use agent_health::environment::{self, Deps};
use agent_health::{RunReport, metrics};
use kit_lambda::Failure;
use lambda_runtime::LambdaEvent;

/// The library's error, marked retryable or not for the runtime (the trait and the type live in
/// different crates, so the shell carries the pairing).
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct Error(#[from] environment::Error);

impl Failure for Error {
    fn is_transient(&self) -> bool {
        self.0.is_transient()
    }
}

pub async fn handle(
    event: LambdaEvent<serde_json::Value>,
    deps: &Deps,
) -> Result<RunReport, Error> {
    tracing::info!(request_id = %event.context.request_id, "evaluation started");
    let report = deps
        .evaluate()
        .await
        .inspect_err(|error| tracing::error!(error = %error, "evaluation failed"))?;
    // EMF goes to stdout as its own line; CloudWatch extracts the metrics from it.
    println!("{}", metrics::emf(&report));
    tracing::info!(
        run_id = report.run_id,
        sites = report.sites_total,
        failed = report.sites_failed.len(),
        firing = report.conditions_firing,
        sent = report.notifications_sent,
        failed_notifications = report.notifications_failed,
        "evaluation finished"
    );
    Ok(report)
}

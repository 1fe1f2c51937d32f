//! One invocation: the event and its deadline in, a run, its metrics out as EMF lines, and a
//! result that fails when any hour failed (so Lambda's error metric and retry see it).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use feed_export::environment::Deps;
use feed_export::{ExportError, RunReport, metrics};
use kit_lambda::Failure;
use lambda_runtime::LambdaEvent;
use serde_json::{Value, json};
use tokio::time::Instant;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Export(#[from] ExportError),
    /// The run finished, but some sites or hours failed; the next run retries them.
    #[error("{}", .0.join("; "))]
    Incomplete(Vec<String>),
}

impl Failure for Error {
    fn is_transient(&self) -> bool {
        match self {
            Error::Export(error) => error.is_transient(),
            Error::Incomplete(_) => true,
        }
    }
}

pub async fn handle(event: LambdaEvent<Value>, deps: &Deps) -> Result<Value, Error> {
    let deadline = deadline_of(&event.context);
    if deadline.is_none() {
        tracing::warn!(
            deadline_ms = event.context.deadline,
            "the runtime gave no usable deadline; running without one"
        );
    }
    let report = deps
        .run(&event.payload, deadline)
        .await
        .inspect_err(|error| tracing::error!(error = %error, "feed export failed"))?;
    // EMF: one line per site on stdout; CloudWatch extracts the metrics.
    for site in &report.sites {
        println!("{}", metrics::emf_line(&report, site, unix_millis() as i64));
    }
    let errors = report.errors();
    if !errors.is_empty() {
        return Err(Error::Incomplete(errors));
    }
    Ok(result(&report))
}

fn result(report: &RunReport) -> Value {
    json!({
        "run_id": report.run_id,
        "hours_exported": report.hours_exported(),
        "hours_lost": report.hours_lost(),
        "hours_pending": report.hours_pending(),
        "hours_busy": report.hours_busy(),
        "outcome": report.outcome(),
        "stopped_for_deadline": report.stopped_for_deadline,
        "sites": report.sites,
    })
}

fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The invocation's deadline as a tokio instant; `None` when the runtime gave none (a deadline
/// of 0 or in the past, as local emulators send).
fn deadline_of(context: &lambda_runtime::Context) -> Option<Instant> {
    let left = context
        .deadline
        .checked_sub(unix_millis())
        .filter(|left| *left > 0)?;
    Some(Instant::now() + Duration::from_millis(left))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_from_the_runtime() {
        let mut context = lambda_runtime::Context::default();
        assert!(deadline_of(&context).is_none(), "no deadline given");
        context.deadline = unix_millis() + 60_000;
        let left = deadline_of(&context).map(|d| d.duration_since(Instant::now()));
        assert!(
            left.is_some_and(|left| left > Duration::from_secs(55)),
            "{left:?}"
        );
        context.deadline = unix_millis().saturating_sub(1_000);
        assert!(deadline_of(&context).is_none(), "a deadline in the past");
    }

    #[test]
    fn results_count_busy_hours_as_pending() {
        let report = RunReport {
            sites: vec![feed_export::SiteReport {
                site: "www".into(),
                busy: vec!["2024-05-01T10:00Z".into()],
                pending: vec!["2024-05-01T11:00Z".into()],
                ..feed_export::SiteReport::default()
            }],
            ..RunReport::default()
        };
        let value = result(&report);
        assert_eq!(
            (
                value["hours_pending"].as_u64(),
                value["hours_busy"].as_u64(),
                value["outcome"].as_str()
            ),
            (Some(2), Some(1), Some("pending"))
        );
    }

    #[test]
    fn failed_hours_are_retryable() {
        let error = Error::Incomplete(vec!["site-1: 401".into(), "site-2: 500".into()]);
        let diagnostic = kit_lambda::diagnostic(&error);
        assert_eq!(diagnostic.error_type, "Retryable");
        assert_eq!(diagnostic.error_message, "site-1: 401; site-2: 500");
    }
}

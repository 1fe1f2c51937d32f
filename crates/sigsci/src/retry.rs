//! Backoff policy: capped exponential delays with full jitter, `Retry-After` honoured (capped).
//!
//! Which errors are worth retrying is decided by `Error::is_transient` (see `error`); this module
//! only decides how long to wait and when to give up. Sleeping uses tokio's clock, so tests can
//! run it under `tokio::time::pause()`.

use std::future::Future;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};

use crate::error::{Error, Result};

/// How hard a call tries before giving up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// HTTP attempts per call, including the first (1 = never retry).
    pub max_attempts: usize,
    /// Ceiling of the first retry's delay; doubles per retry.
    pub min_delay: Duration,
    /// Cap of the exponential ceiling.
    pub max_delay: Duration,
    /// A server's `Retry-After` is obeyed up to this long.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 8,
            min_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(10),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// The exponential schedule without jitter; jitter is applied in [`retry_delay`].
    fn backoff(&self) -> ExponentialBuilder {
        ExponentialBuilder::new()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay)
            .with_max_times(self.max_attempts.saturating_sub(1))
    }
}

/// The wait before the next attempt: the server's capped `Retry-After` if it sent one, otherwise
/// "full jitter" — a uniform pick in `[0, ceiling]` where `ceiling` is the exponential step.
/// `jitter` is the random fraction in `[0, 1]`.
pub fn retry_delay(
    policy: &RetryPolicy,
    error: &Error,
    ceiling: Duration,
    jitter: f64,
) -> Duration {
    match error {
        Error::RateLimited {
            retry_after: Some(wait),
            ..
        } => (*wait).min(policy.max_retry_after),
        _ => ceiling
            .min(policy.max_delay)
            .mul_f64(jitter.clamp(0.0, 1.0)),
    }
}

/// Whether a failed attempt may be repeated. Non-idempotent calls (creates) are repeated only
/// when the server provably did not act on them: rate limits and failed connects.
pub(crate) fn should_retry(error: &Error, idempotent: bool) -> bool {
    if !error.is_transient() {
        return false;
    }
    idempotent
        || match error {
            Error::RateLimited { .. } => true,
            Error::Transport { cause } => cause.is_connect(),
            _ => false,
        }
}

/// Runs `attempt` until it succeeds, fails for good, or the policy runs out.
pub(crate) async fn run<T, F, Fut>(
    policy: &RetryPolicy,
    idempotent: bool,
    template: &'static str,
    attempt: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    attempt
        .retry(policy.backoff())
        .sleep(tokio::time::sleep)
        .when(|e| should_retry(e, idempotent))
        .adjust(|e, ceiling| ceiling.map(|c| retry_delay(policy, e, c, fastrand::f64())))
        .notify(|e, wait| {
            tracing::debug!(
                endpoint = template,
                error = %e,
                wait_ms = wait.as_millis() as u64,
                "retrying"
            );
        })
        .await
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use tokio::time::Instant;

    use super::*;

    fn rate_limited(after: Option<u64>) -> Error {
        Error::RateLimited {
            status: 429,
            retry_after: after.map(Duration::from_secs),
            message: "slow down".into(),
        }
    }

    fn server() -> Error {
        Error::Server {
            status: 503,
            message: "unavailable".into(),
        }
    }

    fn policy(max_attempts: usize) -> RetryPolicy {
        RetryPolicy {
            max_attempts,
            min_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(2),
            max_retry_after: Duration::from_secs(30),
        }
    }

    #[test]
    fn delay_is_full_jitter_of_the_capped_ceiling() {
        let p = policy(5);
        let ceiling = Duration::from_millis(800);
        assert_eq!(retry_delay(&p, &server(), ceiling, 0.0), Duration::ZERO);
        assert_eq!(
            retry_delay(&p, &server(), ceiling, 0.5),
            Duration::from_millis(400)
        );
        assert_eq!(retry_delay(&p, &server(), ceiling, 1.0), ceiling);
        // Ceiling above max_delay is capped.
        assert_eq!(
            retry_delay(&p, &server(), Duration::from_secs(9), 1.0),
            Duration::from_secs(2)
        );
        // Out-of-range jitter is clamped, never negative or beyond the ceiling.
        assert_eq!(retry_delay(&p, &server(), ceiling, 7.0), ceiling);
    }

    #[test]
    fn retry_after_wins_and_is_capped() {
        let p = policy(5);
        let c = Duration::from_millis(100);
        assert_eq!(
            retry_delay(&p, &rate_limited(Some(7)), c, 0.1),
            Duration::from_secs(7)
        );
        assert_eq!(
            retry_delay(&p, &rate_limited(Some(600)), c, 0.1),
            Duration::from_secs(30)
        );
        // No header: ordinary jittered backoff.
        assert_eq!(
            retry_delay(&p, &rate_limited(None), c, 0.5),
            Duration::from_millis(50)
        );
    }

    #[test]
    fn creates_retry_only_when_the_server_did_not_act() {
        assert!(should_retry(&rate_limited(None), false));
        assert!(!should_retry(&server(), false));
        assert!(should_retry(&server(), true));
        let not_found = Error::NotFound {
            message: "gone".into(),
        };
        assert!(!should_retry(&not_found, true));
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_sets_the_exact_wait() {
        let calls = AtomicU32::new(0);
        let started = Instant::now();
        let result = run(&policy(5), true, "/test", || async {
            if calls.fetch_add(1, Ordering::SeqCst) < 2 {
                Err(rate_limited(Some(7)))
            } else {
                Ok("done")
            }
        })
        .await;
        assert_eq!(result.expect("third attempt succeeds"), "done");
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        // Two waits of exactly Retry-After, no jitter added.
        assert_eq!(started.elapsed(), Duration::from_secs(14));
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_after_max_attempts_within_the_backoff_bound() {
        let calls = AtomicU32::new(0);
        let started = Instant::now();
        let result: Result<()> = run(&policy(4), true, "/test", || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(server())
        })
        .await;
        assert!(matches!(result, Err(Error::Server { status: 503, .. })));
        assert_eq!(calls.load(Ordering::SeqCst), 4);
        // Ceilings 100 + 200 + 400 ms: full jitter never waits longer in total.
        assert!(
            started.elapsed() <= Duration::from_millis(700),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn permanent_errors_are_not_retried() {
        let calls = AtomicU32::new(0);
        let result: Result<()> = run(&policy(5), true, "/test", || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(Error::Unauthorized {
                status: 401,
                message: "bad token".into(),
            })
        })
        .await;
        assert!(matches!(
            result,
            Err(Error::Unauthorized { status: 401, .. })
        ));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}

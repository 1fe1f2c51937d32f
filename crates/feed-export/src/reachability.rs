//! Whether the API still answers, shared by every hour of every site of a run.
//!
//! A sub-window fails only after the client's own retries, so each failure that was the API not
//! answering at all (connection refused or reset, timeout) already stands for several seconds of
//! outage. After a few of them in a row, with nothing answered in between, the run stops and
//! leaves the rest pending for the next run, instead of restarting every sub-window of every hour
//! of every site for as long as the outage lasts.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::pipeline::WindowFailure;

/// Sub-window failures in a row, across the run, after which the API is taken to be away: more
/// than the corp's concurrent cursors (5), so the windows in flight when a short outage began
/// cannot end the run on their own.
pub const AWAY_AFTER: u32 = 6;

#[derive(Debug, Default)]
pub struct Reachability {
    silent_in_a_row: AtomicU32,
    /// The last silent failure, for the error of every hour that stops because of it.
    last_silence: Mutex<String>,
}

impl Reachability {
    /// Records how a sub-window ended; returns true once the API is taken to be away.
    pub fn record(&self, outcome: Result<(), &WindowFailure>) -> bool {
        match outcome {
            Err(failure) if is_silence(failure) => {
                if let Ok(mut last) = self.last_silence.lock() {
                    *last = failure.to_string();
                }
                self.silent_in_a_row.fetch_add(1, Ordering::AcqRel) + 1 >= AWAY_AFTER
            }
            // Storage and pipeline failures say nothing about the API.
            Err(WindowFailure::Storage(_) | WindowFailure::Pipeline(_)) => self.is_away(),
            // Any reply, even an error status, means the API is there.
            Ok(()) | Err(_) => {
                self.silent_in_a_row.store(0, Ordering::Release);
                false
            }
        }
    }

    pub fn is_away(&self) -> bool {
        self.silent_failures() >= AWAY_AFTER
    }

    pub fn silent_failures(&self) -> u32 {
        self.silent_in_a_row.load(Ordering::Acquire)
    }

    pub fn last_silence(&self) -> String {
        self.last_silence
            .lock()
            .map(|last| last.clone())
            .unwrap_or_default()
    }
}

/// The API did not answer: the connection failed, broke or timed out (after the client's retries).
fn is_silence(failure: &WindowFailure) -> bool {
    matches!(failure, WindowFailure::Api(sigsci::Error::Transport { .. }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server_error() -> WindowFailure {
        WindowFailure::Api(sigsci::Error::Server {
            status: 503,
            message: "unavailable".into(),
        })
    }

    async fn refused() -> WindowFailure {
        // Port 9 on localhost (discard) is closed on any test machine: a real connect error.
        let error = reqwest::Client::new()
            .get("http://127.0.0.1:9/")
            .send()
            .await
            .map(|_| ())
            .expect_err("nothing listens on port 9");
        WindowFailure::Api(sigsci::Error::Transport {
            cause: error.without_url(),
        })
    }

    #[tokio::test]
    async fn the_api_is_away_after_enough_silent_windows_in_a_row() {
        let reach = Reachability::default();
        let silent = refused().await;
        for _ in 1..AWAY_AFTER {
            assert!(!reach.record(Err(&silent)));
        }
        assert!(reach.record(Err(&silent)));
        assert!(reach.is_away());
        assert_eq!(reach.silent_failures(), AWAY_AFTER);
        assert!(
            reach.last_silence().starts_with("transport error"),
            "{}",
            reach.last_silence()
        );
    }

    #[tokio::test]
    async fn any_reply_restarts_the_count_and_storage_failures_do_not_count() {
        let reach = Reachability::default();
        let silent = refused().await;
        for _ in 1..AWAY_AFTER {
            reach.record(Err(&silent));
        }
        assert!(!reach.record(Err(&server_error())));
        assert_eq!(reach.silent_failures(), 0);
        for _ in 1..AWAY_AFTER {
            reach.record(Err(&silent));
        }
        let storage = WindowFailure::Storage(kit_storage::StorageError::Io {
            operation: "writing",
            path: "part-0000.ndjson.gz".into(),
            source: std::io::Error::other("disk full"),
        });
        assert!(!reach.record(Err(&storage)));
        assert_eq!(reach.silent_failures(), AWAY_AFTER - 1);
        assert!(!reach.record(Ok(())));
        assert_eq!(reach.silent_failures(), 0);
    }
}

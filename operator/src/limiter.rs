//! A token bucket per API account, shared by every controller: however many objects reconcile at
//! once (a resync, a rotated Secret, a fresh install), the calls to one account stay at a steady
//! rate, instead of running into the API's 429s and the retries they cause.

use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

use crate::lease::Clock;

/// Sustained calls per second and how many may go at once after a quiet spell.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rate {
    pub per_second: f64,
    pub burst: u32,
}

impl Default for Rate {
    /// The API documents no per-account request rate (only the feed's concurrency: 2 per site,
    /// 5 per corp) and answers excess with 429. 50/s keeps a full resync of a thousand objects
    /// (about one list per site and kind) well inside a minute, and a burst of 100 lets a
    /// handful of changes through without any wait.
    fn default() -> Self {
        Rate {
            per_second: 50.0,
            burst: 100,
        }
    }
}

pub struct TokenBucket {
    rate: Rate,
    clock: Clock,
    state: Mutex<State>,
}

struct State {
    /// May go negative: callers reserve tokens ahead and wait for them.
    tokens: f64,
    at: Timestamp,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(rate: Rate, clock: Clock) -> TokenBucket {
        let at = clock();
        TokenBucket {
            rate,
            clock,
            state: Mutex::new(State {
                tokens: f64::from(rate.burst),
                at,
            }),
        }
    }

    /// Takes one token and says how long to wait before using it (zero when one was there).
    /// Reserving ahead keeps the order fair: each caller waits behind those before it.
    pub fn reserve(&self) -> Duration {
        let mut state = self.refilled();
        state.tokens -= 1.0;
        if state.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-state.tokens / self.rate.per_second)
        }
    }

    /// Waits for a token.
    pub async fn acquire(&self) {
        let wait = self.reserve();
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }

    /// Full again: nothing is owed, so a fresh bucket would behave the same.
    pub fn is_full(&self) -> bool {
        self.refilled().tokens >= f64::from(self.rate.burst)
    }

    fn refilled(&self) -> std::sync::MutexGuard<'_, State> {
        let now = (self.clock)();
        // A poisoned bucket is still a bucket: the lock guards two numbers.
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        // A clock stepping back adds nothing (and takes nothing).
        let elapsed = now.duration_since(state.at).as_secs_f64().max(0.0);
        if elapsed > 0.0 {
            state.tokens =
                (state.tokens + elapsed * self.rate.per_second).min(f64::from(self.rate.burst));
            state.at = now;
        }
        state
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicI64, Ordering};

    use super::*;

    /// A clock that moves only when told, in milliseconds.
    #[derive(Clone, Default)]
    pub(crate) struct FakeClock(Arc<AtomicI64>);

    impl FakeClock {
        pub(crate) fn clock(&self) -> Clock {
            let millis = self.0.clone();
            Arc::new(move || {
                Timestamp::from_millisecond(1_800_000_000_000 + millis.load(Ordering::SeqCst))
                    .expect("in range")
            })
        }

        pub(crate) fn advance(&self, by: Duration) {
            let millis = i64::try_from(by.as_millis()).expect("small");
            self.0.fetch_add(millis, Ordering::SeqCst);
        }

        pub(crate) fn back(&self, by: Duration) {
            let millis = i64::try_from(by.as_millis()).expect("small");
            self.0.fetch_sub(millis, Ordering::SeqCst);
        }
    }

    fn millis(duration: Duration) -> u128 {
        duration.as_millis()
    }

    #[test]
    fn a_burst_goes_at_once_then_calls_are_spaced_at_the_rate() {
        let time = FakeClock::default();
        let bucket = TokenBucket::new(
            Rate {
                per_second: 10.0,
                burst: 3,
            },
            time.clock(),
        );
        let waits: Vec<u128> = (0..6).map(|_| millis(bucket.reserve())).collect();
        assert_eq!(waits, vec![0, 0, 0, 100, 200, 300]);
        assert!(!bucket.is_full());

        // 300 ms later the three reserved tokens are paid off; the next one waits its turn.
        time.advance(Duration::from_millis(300));
        assert_eq!(millis(bucket.reserve()), 100);
    }

    #[test]
    fn an_idle_bucket_refills_up_to_the_burst_only() {
        let time = FakeClock::default();
        let bucket = TokenBucket::new(
            Rate {
                per_second: 2.0,
                burst: 2,
            },
            time.clock(),
        );
        assert_eq!(millis(bucket.reserve()), 0);
        assert_eq!(millis(bucket.reserve()), 0);
        assert_eq!(millis(bucket.reserve()), 500);
        assert!(!bucket.is_full());
        time.advance(Duration::from_secs(60));
        assert!(bucket.is_full());
        let waits: Vec<u128> = (0..3).map(|_| millis(bucket.reserve())).collect();
        assert_eq!(
            waits,
            vec![0, 0, 500],
            "a long idle spell earns no more than the burst"
        );
    }

    #[test]
    fn a_clock_stepping_back_neither_adds_nor_removes_tokens() {
        let time = FakeClock::default();
        let bucket = TokenBucket::new(
            Rate {
                per_second: 1.0,
                burst: 1,
            },
            time.clock(),
        );
        assert_eq!(millis(bucket.reserve()), 0);
        time.back(Duration::from_secs(30));
        assert_eq!(millis(bucket.reserve()), 1000);
        time.advance(Duration::from_secs(32));
        assert_eq!(millis(bucket.reserve()), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn acquire_sleeps_for_the_reserved_wait() {
        let time = FakeClock::default();
        let bucket = TokenBucket::new(
            Rate {
                per_second: 4.0,
                burst: 1,
            },
            time.clock(),
        );
        let started = tokio::time::Instant::now();
        bucket.acquire().await;
        bucket.acquire().await;
        assert_eq!(started.elapsed(), Duration::from_millis(250));
    }
}

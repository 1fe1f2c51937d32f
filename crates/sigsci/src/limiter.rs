//! Feed concurrency limits shared by every clone of a client: the API allows at most two
//! concurrent feed connections per site and five per corp.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::{Error, Result};

pub(crate) const FEED_PER_SITE: usize = 2;
pub(crate) const FEED_PER_CORP: usize = 5;

pub(crate) struct FeedLimiter {
    corp: Arc<Semaphore>,
    sites: Mutex<HashMap<String, Arc<Semaphore>>>,
}

/// Both permits for one feed HTTP call; released on drop.
pub(crate) struct FeedPermit {
    _site: OwnedSemaphorePermit,
    _corp: OwnedSemaphorePermit,
}

impl Default for FeedLimiter {
    fn default() -> Self {
        FeedLimiter {
            corp: Arc::new(Semaphore::new(FEED_PER_CORP)),
            sites: Mutex::new(HashMap::new()),
        }
    }
}

impl FeedLimiter {
    /// Waits for a slot for `site`. The site permit is taken before the corp permit, always in
    /// that order, so a caller waiting on a busy site never holds one of the corp's five slots.
    pub(crate) async fn acquire(&self, site: &str) -> Result<FeedPermit> {
        let site_semaphore = {
            // A poisoned map is still a valid map: the lock guards no invariant beyond the insert.
            let mut sites = self.sites.lock().unwrap_or_else(|p| p.into_inner());
            Arc::clone(
                sites
                    .entry(site.to_string())
                    .or_insert_with(|| Arc::new(Semaphore::new(FEED_PER_SITE))),
            )
        };
        let closed = |_| Error::config("feed concurrency limiter closed");
        let site_permit = site_semaphore.acquire_owned().await.map_err(closed)?;
        let corp_permit = Arc::clone(&self.corp)
            .acquire_owned()
            .await
            .map_err(closed)?;
        Ok(FeedPermit {
            _site: site_permit,
            _corp: corp_permit,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn never_more_than_two_per_site_or_five_per_corp() {
        let limiter = Arc::new(FeedLimiter::default());
        let corp_now = Arc::new(AtomicUsize::new(0));
        let corp_max = Arc::new(AtomicUsize::new(0));
        let site_now: Arc<Vec<AtomicUsize>> =
            Arc::new((0..4).map(|_| AtomicUsize::new(0)).collect());
        let site_max: Arc<Vec<AtomicUsize>> =
            Arc::new((0..4).map(|_| AtomicUsize::new(0)).collect());
        let mut tasks = Vec::new();
        for i in 0..40 {
            let (limiter, corp_now, corp_max, site_now, site_max) = (
                Arc::clone(&limiter),
                Arc::clone(&corp_now),
                Arc::clone(&corp_max),
                Arc::clone(&site_now),
                Arc::clone(&site_max),
            );
            tasks.push(tokio::spawn(async move {
                let site = i % 4;
                let _permit = limiter
                    .acquire(&format!("site-{site}"))
                    .await
                    .expect("permit");
                let c = corp_now.fetch_add(1, Ordering::SeqCst) + 1;
                corp_max.fetch_max(c, Ordering::SeqCst);
                let s = site_now[site].fetch_add(1, Ordering::SeqCst) + 1;
                site_max[site].fetch_max(s, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(10)).await;
                site_now[site].fetch_sub(1, Ordering::SeqCst);
                corp_now.fetch_sub(1, Ordering::SeqCst);
            }));
        }
        for t in tasks {
            t.await.expect("task");
        }
        assert_eq!(corp_max.load(Ordering::SeqCst), FEED_PER_CORP);
        for m in site_max.iter() {
            assert_eq!(m.load(Ordering::SeqCst), FEED_PER_SITE);
        }
    }
}

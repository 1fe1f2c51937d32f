//! Feed concurrency limits: at most 2 in-flight feed requests per site and 5 per corp.

use std::collections::HashMap;

use crate::error::SimError;
use crate::state::SimState;
use crate::util::lock;

pub(crate) const MAX_PER_SITE: usize = 2;
pub(crate) const MAX_PER_CORP: usize = 5;

/// In-flight feed requests.
#[derive(Debug, Default)]
pub(crate) struct FeedSlots {
    per_site: HashMap<String, usize>,
    corp: usize,
}

/// Held while a feed request is served; frees its slot on drop.
#[derive(Debug)]
pub(crate) struct FeedSlot {
    state: SimState,
    site: String,
}

impl Drop for FeedSlot {
    fn drop(&mut self) {
        let mut slots = lock(&self.state.inner.feed_slots);
        slots.corp = slots.corp.saturating_sub(1);
        if let Some(n) = slots.per_site.get_mut(&self.site) {
            *n = n.saturating_sub(1);
        }
    }
}

impl SimState {
    /// Takes a feed slot for `site`, or refuses with 429 right away.
    pub(crate) fn acquire_feed_slot(&self, site: &str) -> Result<FeedSlot, SimError> {
        let (site_now, corp_now) = {
            let mut slots = lock(&self.inner.feed_slots);
            let site_count = slots.per_site.get(site).copied().unwrap_or(0);
            if site_count >= MAX_PER_SITE || slots.corp >= MAX_PER_CORP {
                drop(slots);
                lock(&self.inner.log).feed.rejected_concurrency += 1;
                return Err(SimError::TooManyConcurrent);
            }
            slots.per_site.insert(site.to_owned(), site_count + 1);
            slots.corp += 1;
            (site_count + 1, slots.corp)
        };
        lock(&self.inner.log).record_feed_concurrency(site, site_now, corp_now);
        Ok(FeedSlot {
            state: self.clone(),
            site: site.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SimConfig;

    #[test]
    fn limits_per_site_and_corp() {
        let state = SimState::new(SimConfig {
            sites: 4,
            ..SimConfig::default()
        });
        let a1 = state.acquire_feed_slot("site-1").unwrap();
        let _a2 = state.acquire_feed_slot("site-1").unwrap();
        assert_eq!(
            state.acquire_feed_slot("site-1").unwrap_err(),
            SimError::TooManyConcurrent
        );
        let _b1 = state.acquire_feed_slot("site-2").unwrap();
        let _b2 = state.acquire_feed_slot("site-2").unwrap();
        let _c1 = state.acquire_feed_slot("site-3").unwrap();
        assert_eq!(
            state.acquire_feed_slot("site-4").unwrap_err(),
            SimError::TooManyConcurrent
        );
        drop(a1);
        let _a3 = state.acquire_feed_slot("site-1").unwrap();
        let log = state.call_log();
        assert_eq!(log.feed.max_concurrent_corp, 5);
        assert_eq!(log.feed.max_concurrent_per_site["site-1"], 2);
        assert_eq!(log.feed.rejected_concurrency, 2);
    }
}

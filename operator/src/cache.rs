//! Short-lived listings shared by every object of one API account: the objects of a site that
//! reconcile together (a resync, a rotated Secret) make one list call per kind, not one each.
//!
//! A listing is served for a few seconds only (other writers' changes show up within that), and
//! never outlives our own writes: a create or update replaces the object in the listing, a delete
//! removes it, a failed write drops the listing. Listing one key holds that key's lock, so
//! concurrent readers wait for it instead of listing too, and a write applied after a concurrent
//! listing is never overwritten by it.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::jiff::{SignedDuration, Timestamp};

use crate::lease::Clock;

/// Remote objects with an id.
pub trait Identified {
    fn id(&self) -> &str;
}

impl Identified for sigsci::Alert {
    fn id(&self) -> &str {
        &self.id
    }
}

impl Identified for sigsci::Integration {
    fn id(&self) -> &str {
        &self.id
    }
}

impl Identified for sigsci::RuleList {
    fn id(&self) -> &str {
        &self.id
    }
}

pub struct ListCache<T> {
    ttl: SignedDuration,
    clock: Clock,
    slots: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Slot<T>>>>>,
}

struct Slot<T> {
    /// When the listing was requested (a listing is as old as its request), and what it said.
    listed: Option<(Timestamp, Vec<T>)>,
}

impl<T: Clone + Identified> ListCache<T> {
    pub fn new(ttl: Duration, clock: Clock) -> ListCache<T> {
        ListCache {
            ttl: SignedDuration::try_from(ttl).unwrap_or(SignedDuration::MAX),
            clock,
            slots: Mutex::new(HashMap::new()),
        }
    }

    /// The listing of `key`: a fresh one from the cache, else `list()` (whose failures are not
    /// kept: the next caller lists again).
    pub async fn get_or_list<E, Fut>(
        &self,
        key: &str,
        list: impl FnOnce() -> Fut,
    ) -> Result<Vec<T>, E>
    where
        Fut: Future<Output = Result<Vec<T>, E>>,
    {
        let slot = self.slot(key);
        let mut slot = slot.lock().await;
        if let Some(items) = self.fresh(&slot) {
            return Ok(items.clone());
        }
        let requested = (self.clock)();
        slot.listed = None;
        let items = list().await?;
        slot.listed = Some((requested, items.clone()));
        Ok(items)
    }

    /// Our own create or update of `item` under `key`.
    pub async fn upsert(&self, key: &str, item: T) {
        self.edit(key, |items| {
            match items.iter_mut().find(|known| known.id() == item.id()) {
                Some(known) => *known = item,
                None => items.push(item),
            }
        })
        .await;
    }

    /// Our own delete of `id` under `key`.
    pub async fn remove(&self, key: &str, id: &str) {
        self.edit(key, |items| items.retain(|known| known.id() != id))
            .await;
    }

    /// Forget the listing of `key` (after a write whose effect is unknown).
    pub async fn invalidate(&self, key: &str) {
        let slot = self.existing(key);
        if let Some(slot) = slot {
            slot.lock().await.listed = None;
        }
    }

    async fn edit(&self, key: &str, change: impl FnOnce(&mut Vec<T>)) {
        let Some(slot) = self.existing(key) else {
            return;
        };
        let mut slot = slot.lock().await;
        if self.fresh(&slot).is_some() {
            if let Some((_, items)) = slot.listed.as_mut() {
                change(items);
            }
        } else {
            slot.listed = None;
        }
    }

    fn fresh<'a>(&self, slot: &'a Slot<T>) -> Option<&'a Vec<T>> {
        let (requested, items) = slot.listed.as_ref()?;
        let age = (self.clock)().duration_since(*requested);
        (age >= SignedDuration::ZERO && age < self.ttl).then_some(items)
    }

    fn existing(&self, key: &str) -> Option<Arc<tokio::sync::Mutex<Slot<T>>>> {
        self.slots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .cloned()
    }

    fn slot(&self, key: &str) -> Arc<tokio::sync::Mutex<Slot<T>>> {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(slot) = slots.get(key) {
            return slot.clone();
        }
        // Sites come and go: forget slots nobody holds whose listing has expired.
        slots.retain(|_, slot| {
            Arc::strong_count(slot) > 1
                || slot
                    .try_lock()
                    .map_or(true, |slot| self.fresh(&slot).is_some())
        });
        slots
            .entry(key.to_string())
            .or_insert_with(|| Arc::new(tokio::sync::Mutex::new(Slot { listed: None })))
            .clone()
    }

    /// Keys currently held (for tests and pruning checks).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.slots.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::limiter::tests::FakeClock;

    #[derive(Clone, Debug, PartialEq)]
    struct Item(&'static str, u32);

    impl Identified for Item {
        fn id(&self) -> &str {
            self.0
        }
    }

    struct Api {
        calls: AtomicUsize,
        items: Vec<Item>,
    }

    impl Api {
        fn new(items: Vec<Item>) -> Api {
            Api {
                calls: AtomicUsize::new(0),
                items,
            }
        }

        async fn list(&self) -> Result<Vec<Item>, &'static str> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            tokio::task::yield_now().await;
            Ok(self.items.clone())
        }

        fn calls(&self) -> usize {
            self.calls.load(Ordering::SeqCst)
        }
    }

    fn cache(time: &FakeClock) -> ListCache<Item> {
        ListCache::new(Duration::from_secs(3), time.clock())
    }

    #[tokio::test]
    async fn one_listing_serves_every_reader_until_it_expires() {
        let time = FakeClock::default();
        let cache = cache(&time);
        let api = Api::new(vec![Item("a", 1)]);
        for _ in 0..5 {
            assert_eq!(
                cache.get_or_list("site-1", || api.list()).await,
                Ok(vec![Item("a", 1)])
            );
        }
        assert_eq!(api.calls(), 1);
        // Another key lists for itself.
        cache.get_or_list("site-2", || api.list()).await.ok();
        assert_eq!(api.calls(), 2);

        time.advance(Duration::from_millis(2900));
        cache.get_or_list("site-1", || api.list()).await.ok();
        assert_eq!(api.calls(), 2, "still fresh");
        time.advance(Duration::from_millis(100));
        cache.get_or_list("site-1", || api.list()).await.ok();
        assert_eq!(api.calls(), 3, "expired after the TTL");
    }

    #[tokio::test]
    async fn concurrent_readers_wait_for_one_listing() {
        let time = FakeClock::default();
        let cache = cache(&time);
        let api = Api::new(vec![Item("a", 1)]);
        let readers = (0..8).map(|_| cache.get_or_list("site-1", || api.list()));
        let results = futures::future::join_all(readers).await;
        assert!(results.iter().all(|r| r == &Ok(vec![Item("a", 1)])));
        assert_eq!(api.calls(), 1);
    }

    #[tokio::test]
    async fn own_writes_show_in_the_listing_and_failed_writes_drop_it() {
        let time = FakeClock::default();
        let cache = cache(&time);
        let api = Api::new(vec![Item("a", 1), Item("b", 1)]);
        cache.get_or_list("site-1", || api.list()).await.ok();
        cache.upsert("site-1", Item("a", 2)).await;
        cache.upsert("site-1", Item("c", 1)).await;
        cache.remove("site-1", "b").await;
        assert_eq!(
            cache.get_or_list("site-1", || api.list()).await,
            Ok(vec![Item("a", 2), Item("c", 1)])
        );
        assert_eq!(api.calls(), 1, "our writes need no new listing");

        cache.invalidate("site-1").await;
        assert_eq!(
            cache.get_or_list("site-1", || api.list()).await,
            Ok(vec![Item("a", 1), Item("b", 1)])
        );
        assert_eq!(api.calls(), 2);
    }

    #[tokio::test]
    async fn a_write_to_an_expired_listing_drops_it_instead_of_reviving_it() {
        let time = FakeClock::default();
        let cache = cache(&time);
        let api = Api::new(vec![Item("a", 1)]);
        cache.get_or_list("site-1", || api.list()).await.ok();
        time.advance(Duration::from_secs(5));
        cache.upsert("site-1", Item("z", 1)).await;
        time.back(Duration::from_secs(5));
        // Even with the clock back inside the TTL, the listing is gone.
        cache.get_or_list("site-1", || api.list()).await.ok();
        assert_eq!(api.calls(), 2);
    }

    #[tokio::test]
    async fn failures_are_not_kept() {
        let time = FakeClock::default();
        let cache = cache(&time);
        let failed: Result<Vec<Item>, &str> = cache
            .get_or_list("site-1", || async { Err("401 unauthorized") })
            .await;
        assert_eq!(failed, Err("401 unauthorized"));
        let api = Api::new(vec![Item("a", 1)]);
        assert_eq!(
            cache.get_or_list("site-1", || api.list()).await,
            Ok(vec![Item("a", 1)])
        );
        assert_eq!(api.calls(), 1);
    }

    #[tokio::test]
    async fn expired_slots_are_forgotten() {
        let time = FakeClock::default();
        let cache = cache(&time);
        let api = Api::new(vec![]);
        for site in ["site-1", "site-2", "site-3"] {
            cache.get_or_list(site, || api.list()).await.ok();
        }
        assert_eq!(cache.len(), 3);
        time.advance(Duration::from_secs(10));
        cache.get_or_list("site-4", || api.list()).await.ok();
        assert_eq!(cache.len(), 1);
    }
}

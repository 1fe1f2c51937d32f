//! Who claims what, as recorded before: every object of a kind that claims remote objects, in
//! every namespace, metadata only (the claim is an annotation and labels), kept by a watch.
//!
//! A reconcile that has just recorded its claim looks for older claimants with a live list (of
//! two objects claiming at once, the one looking last must see the other). One whose claim was
//! recorded before looks here instead: a claimant appearing later is seen as soon as the watch
//! delivers it, and this saves a list per reconcile.

use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::StreamExt;
use kube::api::ObjectMeta;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, Store, store::Writer};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Resource};
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

use crate::crd::{AgentAlert, Integration, SigSciList};

/// The recorded claims of one kind.
pub struct Claims<K: Resource<DynamicType = ()> + Clone + 'static> {
    store: Store<PartialObjectMeta<K>>,
    /// Listed in full and still watched (not before the first listing, nor without read access
    /// in every namespace).
    ready: Arc<AtomicBool>,
}

/// What keeps [`Claims`] up to date.
pub struct Follower<K: Resource<DynamicType = ()> + Clone + 'static> {
    writer: Writer<PartialObjectMeta<K>>,
    ready: Arc<AtomicBool>,
}

pub fn claims<K>() -> (Claims<K>, Follower<K>)
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    let (store, writer) = reflector::store();
    let ready = Arc::new(AtomicBool::new(false));
    (
        Claims {
            store,
            ready: ready.clone(),
        },
        Follower { writer, ready },
    )
}

impl<K> Claims<K>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    /// The metadata of the objects `keep` selects, or `None` when nothing is known yet (then a
    /// live list answers).
    pub fn select(&self, keep: impl Fn(&ObjectMeta) -> bool) -> Option<Vec<ObjectMeta>> {
        if !self.ready.load(Ordering::Acquire) {
            return None;
        }
        Some(
            self.store
                .state_filter(|object| keep(&object.metadata))
                .into_iter()
                .map(|object| object.metadata.clone())
                .collect(),
        )
    }
}

impl<K> Follower<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    /// Watch every object of the kind until `stop`. Without read access in every namespace
    /// this stops at once, and reconciles keep listing live (in their namespace).
    pub async fn run(self, client: kube::Client, stop: CancellationToken) {
        let Follower { writer, ready } = self;
        let api: Api<PartialObjectMeta<K>> = Api::all(client);
        let events = reflector::reflector(
            writer,
            watcher::watcher(api, watcher::Config::default())
                .default_backoff()
                // Only the claim is read: managed fields would be most of the memory.
                .modify(|object| object.metadata.managed_fields = None),
        )
        .take_until(stop.cancelled_owned());
        futures::pin_mut!(events);
        while let Some(event) = events.next().await {
            match event {
                Ok(watcher::Event::InitDone) => ready.store(true, Ordering::Release),
                Ok(_) => {}
                Err(
                    watcher::Error::InitialListFailed(kube::Error::Api(response))
                    | watcher::Error::WatchStartFailed(kube::Error::Api(response)),
                ) if response.code == 403 => {
                    ready.store(false, Ordering::Release);
                    tracing::info!(
                        kind = %K::kind(&()),
                        "no read access in every namespace; claims are looked up by listing"
                    );
                    return;
                }
                Err(error) => {
                    tracing::debug!(%error, kind = %K::kind(&()), "claims watch failed; retrying")
                }
            }
        }
    }
}

/// The recorded claims of every kind that claims remote objects.
pub struct AllClaims {
    pub alerts: Claims<AgentAlert>,
    pub integrations: Claims<Integration>,
    pub lists: Claims<SigSciList>,
}

/// What keeps [`AllClaims`] up to date.
pub struct AllFollowers {
    alerts: Follower<AgentAlert>,
    integrations: Follower<Integration>,
    lists: Follower<SigSciList>,
}

impl AllClaims {
    pub fn new() -> (AllClaims, AllFollowers) {
        let (alerts, follow_alerts) = claims();
        let (integrations, follow_integrations) = claims();
        let (lists, follow_lists) = claims();
        (
            AllClaims {
                alerts,
                integrations,
                lists,
            },
            AllFollowers {
                alerts: follow_alerts,
                integrations: follow_integrations,
                lists: follow_lists,
            },
        )
    }
}

impl AllFollowers {
    pub async fn run(self, client: kube::Client, stop: CancellationToken) {
        futures::join!(
            self.alerts.run(client.clone(), stop.clone()),
            self.integrations.run(client.clone(), stop.clone()),
            self.lists.run(client, stop),
        );
    }
}

/// Kinds whose objects claim remote objects.
pub trait Claimant: Resource<DynamicType = ()> + Clone + Sized + 'static {
    fn claims(all: &AllClaims) -> &Claims<Self>;
}

impl Claimant for AgentAlert {
    fn claims(all: &AllClaims) -> &Claims<Self> {
        &all.alerts
    }
}

impl Claimant for Integration {
    fn claims(all: &AllClaims) -> &Claims<Self> {
        &all.integrations
    }
}

impl Claimant for SigSciList {
    fn claims(all: &AllClaims) -> &Claims<Self> {
        &all.lists
    }
}

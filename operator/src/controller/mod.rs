//! Reconcilers, one module per kind, and what they share: the context, the error policy
//! (permanent errors retry slowly, transient ones back off per object), status and event writes.

pub mod agent_alert;
pub mod connection;
pub mod integration;
pub mod list;

use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::connect::ApiSettings;
use crate::crd::{ListStatus, SyncStatus};
use crate::lease::Clock;
use crate::metrics::Metrics;
use crate::status::{self, Outcome, next_sync_status};
use crate::{Error, ErrorClass, Result};

/// Field manager of every server-side apply the operator makes.
pub const FIELD_MANAGER: &str = "sigsci-kit";

/// Timing knobs.
#[derive(Clone, Debug)]
pub struct Settings {
    pub api: ApiSettings,
    /// Re-read the remote and re-apply this often (drift detection).
    pub resync: Duration,
    /// Retry period for errors that need a change first (auth, invalid spec, missing Secret).
    pub permanent_retry: Duration,
    /// First and longest delay of the per-object backoff after transient errors.
    pub backoff_min: Duration,
    pub backoff_max: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            api: ApiSettings::default(),
            resync: Duration::from_secs(300),
            permanent_retry: Duration::from_secs(600),
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
        }
    }
}

/// Shared by every reconcile.
pub struct Context {
    pub client: kube::Client,
    /// Who publishes Events.
    pub reporter: Reporter,
    pub metrics: Arc<Metrics>,
    pub settings: Settings,
    pub clock: Clock,
    failures: FailureLog,
}

/// Consecutive failed reconciles per object: the backoff, and which failure was logged last so
/// that a retry failing the same way is not logged again.
#[derive(Default)]
struct FailureLog(Mutex<HashMap<String, Failures>>);

struct Failures {
    count: u32,
    logged: String,
}

impl FailureLog {
    /// Counts one more failure of `key`: how long to back off, and whether `error` differs from
    /// the failure logged last.
    fn record(&self, key: &str, error: &str, min: Duration, max: Duration) -> (Duration, bool) {
        let mut all = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let failures = all.entry(key.to_string()).or_insert(Failures {
            count: 0,
            logged: String::new(),
        });
        failures.count = failures.count.saturating_add(1);
        let new = failures.logged != error;
        if new {
            failures.logged = error.to_string();
        }
        (backoff_delay(failures.count, min, max), new)
    }

    fn forget(&self, key: &str) {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(key);
    }
}

impl Context {
    pub fn new(
        client: kube::Client,
        reporter: Reporter,
        metrics: Arc<Metrics>,
        settings: Settings,
        clock: Clock,
    ) -> Context {
        Context {
            client,
            reporter,
            metrics,
            settings,
            clock,
            failures: FailureLog::default(),
        }
    }

    pub fn now(&self) -> Time {
        Time((self.clock)())
    }

    fn count_failure(&self, key: &str, error: &str) -> (Duration, bool) {
        let settings = &self.settings;
        self.failures
            .record(key, error, settings.backoff_min, settings.backoff_max)
    }

    fn reset_backoff(&self, key: &str) {
        self.failures.forget(key);
    }
}

/// `min * 2^(failures-1)`, capped at `max`.
pub fn backoff_delay(failures: u32, min: Duration, max: Duration) -> Duration {
    let exponent = failures.saturating_sub(1).min(31);
    min.saturating_mul(1u32 << exponent).min(max)
}

fn object_key<K: Resource<DynamicType = ()>>(object: &K) -> String {
    format!(
        "{}/{}/{}",
        K::kind(&()),
        object.meta().namespace.as_deref().unwrap_or(""),
        object.meta().name.as_deref().unwrap_or("")
    )
}

/// The requeue after a failed reconcile, and the failure metric.
pub fn error_policy<K>(kind: &'static str) -> impl Fn(Arc<K>, &Error, Arc<Context>) -> Action
where
    K: Resource<DynamicType = ()>,
{
    move |object, error, ctx| {
        ctx.metrics.failure(kind, error.metric_label());
        let key = object_key(object.as_ref());
        let (backoff, new) = ctx.count_failure(&key, &error.to_string());
        let (delay, retry) = match error.class() {
            ErrorClass::Permanent => (ctx.settings.permanent_retry, "after a change, or in"),
            ErrorClass::Transient => (backoff, "in"),
        };
        // Each failure is logged once; retries failing the same way only at debug level.
        if new {
            tracing::warn!(object = %key, reason = error.reason(), retry_in = ?delay, "{key} failed: {error}; retrying {retry} {}s", delay.as_secs());
        } else {
            tracing::debug!(object = %key, reason = error.reason(), retry_in = ?delay, "{key} failed again: {error}");
        }
        Action::requeue(delay)
    }
}

/// Forget the backoff of an object after a successful reconcile.
pub(crate) fn succeeded<K: Resource<DynamicType = ()>>(ctx: &Context, object: &K) {
    ctx.reset_backoff(&object_key(object));
}

/// Write `status` by server-side apply under [`FIELD_MANAGER`].
pub(crate) async fn apply_status<K>(api: &Api<K>, name: &str, status: &impl Serialize) -> Result<()>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    let patch = json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    api.patch_status(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(patch),
    )
    .await?;
    Ok(())
}

/// Set (Some) or remove (None) annotations with a merge patch, only if something changes.
pub(crate) async fn set_annotations<K>(
    api: &Api<K>,
    object: &K,
    wanted: &[(&str, Option<String>)],
) -> Result<()>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    let current = object.annotations();
    let changes: BTreeMap<&str, Option<&String>> = wanted
        .iter()
        .filter(|(key, value)| current.get(*key) != value.as_ref())
        .map(|(key, value)| (*key, value.as_ref()))
        .collect();
    if changes.is_empty() {
        return Ok(());
    }
    let patch = json!({ "metadata": { "annotations": changes } });
    api.patch(
        &object.name_any(),
        &PatchParams::default(),
        &Patch::Merge(patch),
    )
    .await?;
    Ok(())
}

/// The outcome of a deletion: one log line and an Event.
pub(crate) async fn report_cleanup(
    ctx: &Context,
    regarding: &ObjectReference,
    reason: &str,
    note: String,
) {
    tracing::info!(object = %object_name(regarding), reason, "{note}");
    publish(ctx, regarding, EventType::Normal, reason, "Cleanup", note).await;
}

fn object_name(object: &ObjectReference) -> String {
    format!(
        "{}/{}/{}",
        object.kind.as_deref().unwrap_or_default(),
        object.namespace.as_deref().unwrap_or_default(),
        object.name.as_deref().unwrap_or_default()
    )
}

/// Publish an Event; failures are logged, never fatal (events are best effort).
pub(crate) async fn publish(
    ctx: &Context,
    regarding: &ObjectReference,
    type_: EventType,
    reason: &str,
    action: &str,
    note: String,
) {
    let event = Event {
        type_,
        reason: reason.to_string(),
        note: Some(note),
        action: action.to_string(),
        secondary: None,
    };
    // A fresh recorder per Event: a shared one folds Events with the same reason into one series
    // that keeps the first note, hiding what later updates changed. Events are only published
    // on state changes, so there is no flood to fold.
    let recorder = Recorder::new(ctx.client.clone(), ctx.reporter.clone());
    if let Err(error) = recorder.publish(&event, regarding).await {
        tracing::warn!(%error, reason, "cannot publish event");
    }
}

/// A status made of the common sync part and, for some kinds, more (a list's entry counts).
pub(crate) trait WithSync: PartialEq + Serialize {
    fn sync(&self) -> &SyncStatus;
}

impl WithSync for SyncStatus {
    fn sync(&self) -> &SyncStatus {
        self
    }
}

impl WithSync for ListStatus {
    fn sync(&self) -> &SyncStatus {
        &self.sync
    }
}

/// Record one reconcile: annotations first (so the remote id survives a lost status), then the
/// status if it changed (`complete` adds what the kind shows beyond the sync part), then Events
/// for writes, adoptions and newly failing syncs.
pub(crate) async fn record_sync<K, S>(
    ctx: &Context,
    api: &Api<K>,
    object: &K,
    current: Option<&S>,
    outcome: &Outcome,
    annotations: &[(&str, Option<String>)],
    complete: impl FnOnce(SyncStatus) -> S,
) -> Result<()>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
    S: WithSync,
{
    set_annotations(api, object, annotations).await?;
    let current_sync = current.map(WithSync::sync);
    let next = complete(next_sync_status(
        current_sync,
        object.meta().generation,
        outcome,
        &ctx.now(),
    ));
    if current != Some(&next) {
        apply_status(api, &object.name_any(), &next).await?;
    }
    let regarding = object.object_ref(&());
    match outcome {
        Outcome::Succeeded {
            reason,
            message,
            wrote,
            ..
        } if *wrote || *reason == status::reason::ADOPTED => {
            tracing::info!(object = %object_key(object), reason, "{message}");
            publish(
                ctx,
                &regarding,
                EventType::Normal,
                reason,
                "Sync",
                message.clone(),
            )
            .await;
        }
        Outcome::Succeeded { .. } => {}
        Outcome::Failed {
            reason, message, ..
        } => {
            let before = current_sync.and_then(|s| status::find(&s.conditions, status::SYNCED));
            let unchanged = before.is_some_and(|c| {
                c.status == "False" && c.reason == *reason && c.message == *message
            });
            if !unchanged {
                publish(
                    ctx,
                    &regarding,
                    EventType::Warning,
                    reason,
                    "Sync",
                    message.clone(),
                )
                .await;
            }
        }
    }
    Ok(())
}

/// The remote id recorded by an earlier reconcile: the annotation (it survives a restore that
/// drops status), else the status.
pub(crate) fn recorded_remote_id<K: Resource>(
    object: &K,
    status: Option<&SyncStatus>,
) -> Option<String> {
    let annotation = object.meta().annotations.as_ref().and_then(|annotations| {
        annotations
            .get(crate::crd::common::REMOTE_ID_ANNOTATION)
            .cloned()
    });
    annotation
        .or_else(|| status.and_then(|s| s.remote_id.clone()))
        .filter(|id| !id.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_is_logged_once_until_it_changes_or_the_object_recovers() {
        let log = FailureLog::default();
        let (min, max) = (Duration::from_secs(1), Duration::from_secs(60));
        let record = |error| log.record("AgentAlert/ns/a", error, min, max);
        assert_eq!(record("401 unauthorized"), (Duration::from_secs(1), true));
        assert_eq!(record("401 unauthorized"), (Duration::from_secs(2), false));
        assert_eq!(record("503 unavailable"), (Duration::from_secs(4), true));
        log.forget("AgentAlert/ns/a");
        assert_eq!(record("503 unavailable"), (Duration::from_secs(1), true));
        assert!(log.record("AgentAlert/ns/b", "503 unavailable", min, max).1);
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let min = Duration::from_secs(1);
        let max = Duration::from_secs(60);
        let delays: Vec<u64> = (1..=8)
            .map(|n| backoff_delay(n, min, max).as_secs())
            .collect();
        assert_eq!(delays, vec![1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(backoff_delay(u32::MAX, min, max), max);
    }
}

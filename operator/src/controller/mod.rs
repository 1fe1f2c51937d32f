//! Reconcilers, one module per kind, and what they share: the context, the error policy
//! (permanent errors retry slowly, transient ones back off per object), status and event writes.

pub mod agent_alert;
pub mod connection;
mod drift_memory;
pub mod integration;
pub mod list;

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ListParams, ObjectMeta, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use sigsci_config::{Change, FieldDiff, ManagementPolicy, Op, Shown};

use crate::claims::Claimant;
use crate::connect::ApiSettings;
use crate::crd::common::SiteResult;
use crate::crd::common::{
    CLAIM_ANNOTATION, CLAIM_LABEL, CLAIM_LABEL_CHARS, FINALIZER, REMOTE_ID_ANNOTATION,
};
use crate::crd::{DriftEntry, ListStatus, ManagedStatus, SyncStatus};
use crate::echo::Echoes;
use crate::lease::Clock;
use crate::metrics::Metrics;
use crate::per_object::{PerObject, key_of};
use crate::reads::{Reader, Reads};
use crate::status::{self, Drift, Outcome, SiteDiff, describe_differences, next_sync_status};
use crate::{Error, ErrorClass, Result, remote};
use drift_memory::DriftMemory;

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
    /// Connections and Secrets as the watches last saw them (see [`crate::reads`]).
    pub reads: Arc<Reads>,
    /// Our own writes, whose echo reconciles are skipped.
    pub echoes: Echoes,
    failures: FailureLog,
    drift_written: DriftMemory,
}

/// Consecutive failed reconciles per object: the backoff, and which failure was logged last so
/// that a retry failing the same way is not logged again.
#[derive(Default)]
struct FailureLog(PerObject<Failures>);

struct Failures {
    count: u32,
    logged: String,
}

impl FailureLog {
    /// Counts one more failure of `key`: how long to back off, and whether `error` differs from
    /// the failure logged last.
    fn record(&self, key: &str, error: &str, min: Duration, max: Duration) -> (Duration, bool) {
        self.0.with(|all| {
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
        })
    }

    fn forget(&self, key: &str) {
        self.0.forget(key);
    }
}

impl Context {
    pub fn new(
        client: kube::Client,
        reporter: Reporter,
        metrics: Arc<Metrics>,
        settings: Settings,
        clock: Clock,
        reads: Arc<Reads>,
    ) -> Context {
        Context {
            client,
            reporter,
            metrics,
            settings,
            clock,
            reads,
            echoes: Echoes::default(),
            failures: FailureLog::default(),
            drift_written: DriftMemory::default(),
        }
    }

    /// Reads on behalf of `controller` (the kind it reconciles), whose watches vouch for them.
    pub fn reader(&self, controller: &'static str) -> Reader<'_> {
        self.reads.reader(&self.client, controller)
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

    /// The object of `key` is gone: nothing about it is kept.
    pub fn forget(&self, key: &str) {
        self.echoes.forget(key);
        self.failures.forget(key);
        self.drift_written.forget(key);
    }
}

/// `min * 2^(failures-1)`, capped at `max`.
pub fn backoff_delay(failures: u32, min: Duration, max: Duration) -> Duration {
    let exponent = failures.saturating_sub(1).min(31);
    min.saturating_mul(1u32 << exponent).min(max)
}

pub(crate) fn object_key<K: Resource<DynamicType = ()>>(object: &K) -> String {
    key_of::<K>(
        object.meta().namespace.as_deref(),
        object.meta().name.as_deref().unwrap_or(""),
    )
}

/// Whether `object` is applied at once rather than after kube's finalizer step: it is not being
/// deleted and lacks the finalizer, which the patch recording its claim adds (before anything is
/// written remotely). A new object takes one patch and one reconcile less.
pub(crate) fn finalizer_with_claim<K: Resource>(object: &K) -> bool {
    object.meta().deletion_timestamp.is_none() && !has_finalizer(object)
}

fn has_finalizer<K: Resource>(object: &K) -> bool {
    object.finalizers().iter().any(|name| name == FINALIZER)
}

/// Add the finalizer to a metadata merge patch when it is missing: the whole list (a merge patch
/// replaces lists), at the object's resourceVersion so that nobody else's change to it is lost.
pub(crate) fn add_finalizer<K: Resource>(
    object: &K,
    metadata: &mut serde_json::Map<String, serde_json::Value>,
) {
    if has_finalizer(object) {
        return;
    }
    let mut finalizers = object.finalizers().to_vec();
    finalizers.push(FINALIZER.to_string());
    metadata.insert("finalizers".into(), json!(finalizers));
    if let Some(version) = &object.meta().resource_version {
        metadata.insert("resourceVersion".into(), json!(version));
    }
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
            // Nothing watches the holder of a conflict: look again at each resync, so the
            // object takes over soon after the holder goes.
            ErrorClass::Permanent if error.reason() == "Conflict" => (ctx.settings.resync, "in"),
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

/// Write `status` by server-side apply under [`FIELD_MANAGER`]; the object's new resourceVersion.
pub(crate) async fn apply_status<K>(
    api: &Api<K>,
    name: &str,
    status: &impl Serialize,
) -> Result<Option<String>>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    let patch = json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    let written = api
        .patch_status(
            name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(patch),
        )
        .await?;
    Ok(written.resource_version())
}

/// Set (Some) or remove (None) annotations with a merge patch, only if something changes; the
/// object's new resourceVersion when patched.
pub(crate) async fn set_annotations<K>(
    api: &Api<K>,
    object: &K,
    wanted: &[(&str, Option<String>)],
) -> Result<Option<String>>
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
        return Ok(None);
    }
    let patch = json!({ "metadata": { "annotations": changes } });
    let written = api
        .patch(
            &object.name_any(),
            &PatchParams::default(),
            &Patch::Merge(patch),
        )
        .await?;
    Ok(written.resource_version())
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

impl WithSync for ManagedStatus {
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
    let key = object_key(object);
    if let Some(version) = set_annotations(api, object, annotations).await? {
        ctx.echoes.wrote(&key, Some(version));
    }
    let current_sync = current.map(WithSync::sync);
    let mut next_sync =
        next_sync_status(current_sync, object.meta().generation, outcome, &ctx.now());
    // The remote object was let go of: the status forgets it with the annotation.
    if annotations.contains(&(REMOTE_ID_ANNOTATION, None)) {
        next_sync.remote_id = None;
    }
    let next = complete(next_sync);
    if current != Some(&next) {
        let version = apply_status(api, &object.name_any(), &next).await?;
        ctx.echoes.wrote(&key, version);
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

/// The object of `K` holding the remote object `key` names (see [`CLAIM_ANNOTATION`]), as
/// `Kind namespace/name`, when it is not `object`: of the objects in any namespace claiming it,
/// the oldest (then by namespace and name). Objects being deleted hold nothing. `live` lists
/// the claimants from the apiserver; otherwise the claims watched (see [`crate::claims`]) answer.
pub(crate) async fn holder<K>(
    ctx: &Context,
    object: &K,
    key: &str,
    live: bool,
) -> Result<Option<String>>
where
    K: Claimant<Scope = NamespaceResourceScope> + DeserializeOwned + Debug,
{
    Ok(holder_meta(ctx, object, key, live)
        .await?
        .map(|holder| holder_name::<K>(&holder)))
}

/// [`holder`], as the holder's metadata.
async fn holder_meta<K>(
    ctx: &Context,
    object: &K,
    key: &str,
    live: bool,
) -> Result<Option<ObjectMeta>>
where
    K: Claimant<Scope = NamespaceResourceScope> + DeserializeOwned + Debug,
{
    let claimants = claimants(ctx, object, key, live).await?;
    Ok(claimants
        .into_iter()
        .min_by(|a, b| claim_rank(a).cmp(&claim_rank(b)))
        .filter(|oldest| claim_rank(oldest) < claim_rank(object.meta())))
}

/// Another object of `K` (older or not) claiming the remote object `key` names, looked up live.
pub(crate) async fn other_claimant<K>(
    ctx: &Context,
    object: &K,
    key: &str,
) -> Result<Option<String>>
where
    K: Claimant<Scope = NamespaceResourceScope> + DeserializeOwned + Debug,
{
    let claimants = claimants(ctx, object, key, true).await?;
    Ok(claimants
        .iter()
        .filter(|other| other.uid != object.meta().uid)
        .min_by_key(|other| claim_rank(other))
        .map(|other| holder_name::<K>(other)))
}

/// The objects of `K` (this one included) claiming the remote object `key` names and not being
/// deleted: listed when `live`, else from the claims watched when they are known.
async fn claimants<K>(ctx: &Context, object: &K, key: &str, live: bool) -> Result<Vec<ObjectMeta>>
where
    K: Claimant<Scope = NamespaceResourceScope> + DeserializeOwned + Debug,
{
    let claims = K::claims(&ctx.reads.claims);
    let known = (!live)
        .then(|| {
            claims.select(|meta| {
                meta.annotations
                    .as_ref()
                    .and_then(|annotations| annotations.get(CLAIM_ANNOTATION))
                    .map(String::as_str)
                    == Some(key)
            })
        })
        .flatten();
    let claimants = match known {
        Some(claimants) => claimants,
        // Only the objects labelled with this claim: listing every object of the kind on every
        // reconcile made the apiserver's work grow with the square of the object count.
        None => {
            let selector = claim_label(key).map(|label| format!("{CLAIM_LABEL}={label}"));
            list_claimants::<K>(ctx, object, selector.as_deref()).await?
        }
    };
    Ok(claimants
        .into_iter()
        .filter(|other| {
            other.deletion_timestamp.is_none()
                && other
                    .annotations
                    .as_ref()
                    .and_then(|annotations| annotations.get(CLAIM_ANNOTATION))
                    .map(String::as_str)
                    == Some(key)
        })
        .collect())
}

/// Who of two claimants is older: creation time, then namespace and name.
pub(crate) fn claim_rank(meta: &ObjectMeta) -> (Option<Timestamp>, Option<&str>, Option<&str>) {
    (
        meta.creation_timestamp.as_ref().map(|time| time.0),
        meta.namespace.as_deref(),
        meta.name.as_deref(),
    )
}

/// How a conflict names the holder: `Kind namespace/name`.
pub(crate) fn holder_name<K: Resource<DynamicType = ()>>(holder: &ObjectMeta) -> String {
    format!(
        "{} {}/{}",
        K::kind(&()),
        holder.namespace.as_deref().unwrap_or_default(),
        holder.name.as_deref().unwrap_or_default()
    )
}

/// The metadata of the objects of `K` matching `selector` (every object without one), listed
/// in every namespace (in the object's own without cluster-wide read access).
pub(crate) async fn list_claimants<K>(
    ctx: &Context,
    object: &K,
    selector: Option<&str>,
) -> Result<Vec<ObjectMeta>>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Debug,
{
    let params = match selector {
        Some(selector) => ListParams::default().labels(selector),
        None => ListParams::default(),
    };
    let everywhere: Api<K> = Api::all(ctx.client.clone());
    let listed = match everywhere.list(&params).await {
        Ok(list) => list.items,
        // Without cluster-wide read access, the objects it can see are those of its namespace.
        Err(kube::Error::Api(response)) if response.code == 403 => {
            let namespace = object.namespace().unwrap_or_default();
            Api::<K>::namespaced(ctx.client.clone(), &namespace)
                .list(&params)
                .await?
                .items
        }
        Err(error) => return Err(error.into()),
    };
    Ok(listed
        .into_iter()
        .map(|other| other.meta().clone())
        .collect())
}

/// The outcome of [`claim`].
pub(crate) struct Claimed {
    /// The older object holding the remote object, if not this one.
    pub holder: Option<String>,
    /// The remote id that holder has recorded, if any.
    pub holder_remote_id: Option<String>,
    /// Whether this reconcile recorded the claim (then the look-up was live).
    pub recorded_now: bool,
}

/// Record that `object` declares the remote object `key` names, then find who holds it: another
/// (older) object, or `None` when `object` does. The claim is recorded before the look-up, so of
/// two objects claiming at once the one looking last sees the other: a claim recorded now is
/// looked up live, one recorded before in the claims watched.
pub(crate) async fn claim<K>(ctx: &Context, object: &K, key: &str) -> Result<Claimed>
where
    K: Claimant<Scope = NamespaceResourceScope> + DeserializeOwned + Debug,
{
    let namespace = object.namespace().unwrap_or_default();
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &namespace);
    // Annotation and label in one patch, and none when both are there already.
    let mut metadata = serde_json::Map::new();
    if object
        .annotations()
        .get(CLAIM_ANNOTATION)
        .map(String::as_str)
        != Some(key)
    {
        metadata.insert("annotations".into(), json!({ CLAIM_ANNOTATION: key }));
    }
    if let Some(label) = claim_label(key)
        && object.labels().get(CLAIM_LABEL).map(String::as_str) != Some(label)
    {
        metadata.insert("labels".into(), json!({ CLAIM_LABEL: label }));
    }
    let recorded_now = !metadata.is_empty();
    add_finalizer(object, &mut metadata);
    if !metadata.is_empty() {
        let written = api
            .patch(
                &object.name_any(),
                &PatchParams::default(),
                &Patch::Merge(json!({ "metadata": metadata })),
            )
            .await?;
        ctx.echoes
            .wrote(&object_key(object), written.resource_version());
    }
    let holder = holder_meta(ctx, object, key, recorded_now).await?;
    let holder_remote_id = holder
        .as_ref()
        .and_then(|holder| holder.annotations.as_ref()?.get(REMOTE_ID_ANNOTATION))
        .cloned();
    Ok(Claimed {
        holder: holder.map(|holder| holder_name::<K>(&holder)),
        holder_remote_id,
        recorded_now,
    })
}

/// The claim as a label value (at most 63 characters): a prefix of the digest, enough to
/// select the few candidates whose annotation is then compared in full. `None` for a key that
/// is not a digest: then every object of the kind is a candidate.
pub(crate) fn claim_label(key: &str) -> Option<&str> {
    let label = key.get(..CLAIM_LABEL_CHARS)?;
    label
        .bytes()
        .all(|byte| byte.is_ascii_alphanumeric())
        .then_some(label)
}

/// Whether `object` may write its remote object on deletion: it recorded one, and no older
/// object claims the same (a conflicting object never holds what another holds).
pub(crate) async fn holds<K>(ctx: &Context, object: &K, recorded: Option<&str>) -> Result<bool>
where
    K: Claimant<Scope = NamespaceResourceScope> + DeserializeOwned + Debug,
{
    if recorded.is_none() {
        return Ok(false);
    }
    match object.annotations().get(CLAIM_ANNOTATION) {
        Some(key) => Ok(holder(ctx, object, key, true).await?.is_none()),
        None => Ok(true),
    }
}

/// Whether the spec as it is was applied before: the status describes this generation and was
/// Ready after writing or matching (not only observing). A difference found then is drift.
pub(crate) fn applied_before<K: Resource>(object: &K, status: Option<&SyncStatus>) -> bool {
    status.is_some_and(|status| {
        status.observed_generation == object.meta().generation
            && status::find(&status.conditions, status::READY).is_some_and(|ready| {
                ready.status == "True" && ready.reason != status::reason::OBSERVED
            })
    })
}

/// What a successful sync of an agent alert or integration did and found.
pub(crate) struct Synced {
    /// The change written, if any.
    pub change: Option<Change>,
    pub remote_id: Option<String>,
    pub adopted: bool,
    pub drift: Drift,
}

/// The difference an absent remote object makes.
fn absent() -> FieldDiff {
    FieldDiff {
        field: "object",
        before: Shown::Absent,
        after: Shown::Value("exists".to_string()),
    }
}

/// Carry out (`Full`) or only report (`ObserveOnly`) the `planned` change. `found` is the remote
/// object the declaration refers to, `recorded` the id recorded before, and `settled` whether
/// the spec as it is was applied before (then a difference is drift, corrected and recorded).
pub(crate) async fn converge(
    client: &impl remote::Endpoint,
    policy: ManagementPolicy,
    planned: Option<Change>,
    found: Option<String>,
    recorded: Option<String>,
    settled: bool,
) -> Result<Synced> {
    let differences = |change: &Change| match change {
        Change::Alert(sigsci_config::AlertChange { op, .. }) => op_differences(op),
        Change::Integration(sigsci_config::IntegrationChange { op, .. }) => op_differences(op),
        Change::List(sigsci_config::ListChange { op, .. }) => op_differences(op),
    };
    let adopted = found.is_some() && recorded != found;
    match (policy, planned) {
        (_, None) => Ok(Synced {
            change: None,
            remote_id: found,
            adopted,
            drift: Drift::Matches,
        }),
        (ManagementPolicy::ObserveOnly, Some(change)) => Ok(Synced {
            drift: Drift::Differs(differences(&change)),
            change: None,
            remote_id: found,
            adopted,
        }),
        (ManagementPolicy::Full, Some(change)) => {
            let applied = remote::execute(client, &change).await?;
            // Gone although recorded, or changed although applied: drift, now corrected.
            let drift = if settled && (found.is_some() || recorded.is_some()) {
                Drift::Corrected(differences(&change))
            } else {
                Drift::Matches
            };
            Ok(Synced {
                change: Some(change),
                remote_id: applied.remote_id,
                adopted: false,
                drift,
            })
        }
    }
}

fn op_differences<T>(op: &Op<T>) -> Vec<SiteDiff> {
    match op {
        Op::Create(_) => vec![absent().into()],
        Op::Update { diffs, .. } => diffs.iter().cloned().map(SiteDiff::from).collect(),
        Op::Delete { .. } => Vec::new(),
    }
}

/// The conditions' reason and message (and the Event) for a successful sync of `subject`.
pub(crate) fn managed_outcome(subject: &str, policy: ManagementPolicy, synced: &Synced) -> Outcome {
    let id = synced.remote_id.as_deref().unwrap_or_default();
    match (&synced.drift, policy) {
        (Drift::Corrected(diffs), _) => Outcome::Succeeded {
            reason: status::reason::DRIFT_CORRECTED,
            message: format!(
                "corrected drift of {subject} (id {id}): {}",
                describe_differences(diffs)
            ),
            wrote: true,
            remote_id: synced.remote_id.clone(),
        },
        (drift, ManagementPolicy::ObserveOnly) => {
            let message = match (drift, &synced.remote_id) {
                (_, None) => format!("{subject} does not exist; ObserveOnly does not create it"),
                (Drift::Differs(diffs), Some(_)) => format!(
                    "{subject} (id {id}) differs, left as it is (ObserveOnly): {}",
                    describe_differences(diffs)
                ),
                _ => format!("{subject} (id {id}) matches the spec"),
            };
            Outcome::Succeeded {
                reason: status::reason::OBSERVED,
                message,
                wrote: false,
                remote_id: synced.remote_id.clone(),
            }
        }
        (_, ManagementPolicy::Full) => Outcome::synced(
            subject,
            synced.change.as_ref(),
            synced.adopted,
            synced.remote_id.clone(),
        ),
    }
}

/// [`record_sync`] for agent alerts and integrations: the drift entries and `Drifted`
/// condition with the status, an Event when drift appears or goes, and the drifted gauge.
/// `drift` is `None` after a failure (the previous drift stays).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn record_managed<K>(
    ctx: &Context,
    api: &Api<K>,
    object: &K,
    current: Option<&ManagedStatus>,
    outcome: &Outcome,
    annotations: &[(&str, Option<String>)],
    drift: Option<&Drift>,
    (kind, subject): (&'static str, &str),
) -> Result<()>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    record_managed_sites(
        ctx,
        api,
        object,
        (current, outcome),
        annotations,
        drift,
        None,
        (kind, subject),
    )
    .await
}

/// [`record_managed`] after a failure: the outcome's conditions, with the drift and the
/// annotations left as they were.
pub(crate) async fn record_failure<K>(
    ctx: &Context,
    api: &Api<K>,
    object: &K,
    current: Option<&ManagedStatus>,
    outcome: &Outcome,
    kind_and_subject: (&'static str, &str),
) -> Result<()>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    record_managed(
        ctx,
        api,
        object,
        current,
        outcome,
        &[],
        None,
        kind_and_subject,
    )
    .await
}

/// [`record_managed`] that also replaces `status.sites` (agent alerts declared with `sites`);
/// `None` keeps the entries as they are.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn record_managed_sites<K>(
    ctx: &Context,
    api: &Api<K>,
    object: &K,
    (current, outcome): (Option<&ManagedStatus>, &Outcome),
    annotations: &[(&str, Option<String>)],
    drift: Option<&Drift>,
    sites: Option<Vec<SiteResult>>,
    (kind, subject): (&'static str, &str),
) -> Result<()>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    let generation = object.meta().generation;
    let now = ctx.now();
    let key = object_key(object);
    let uid = object.meta().uid.as_deref();
    // The drift as last written, where the cached object may not show it yet.
    let written = ctx
        .drift_written
        .last_written(&key, uid)
        .filter(|written| current.is_none_or(|status| status.drift != *written))
        .map(|written| ManagedStatus {
            drift: written,
            ..current.cloned().unwrap_or_default()
        });
    let current = written.as_ref().or(current);
    let mut next_drift = Vec::new();
    record_sync(ctx, api, object, current, outcome, annotations, |sync| {
        let mut next = status::next_managed_status(current, sync, drift, generation, &now);
        if let Some(sites) = sites {
            next.sites = sites;
        }
        next_drift.clone_from(&next.drift);
        next
    })
    .await?;
    // A failed reconcile (no drift) says nothing about drift: no Event, nothing remembered.
    if drift.is_some() {
        let before = current
            .map(|status| status.drift.as_slice())
            .unwrap_or_default();
        report_drift(ctx, object, subject, before, &next_drift).await;
        ctx.drift_written.wrote(&key, uid, &next_drift);
    }
    ctx.metrics.set_drifted(kind, &key, !next_drift.is_empty());
    Ok(())
}

/// An Event when fields start to differ (once per field, and site on objects declared on several
/// sites) and when the difference is gone.
async fn report_drift<K: Resource<DynamicType = ()>>(
    ctx: &Context,
    object: &K,
    subject: &str,
    before: &[DriftEntry],
    after: &[DriftEntry],
) {
    let new: Vec<String> = after
        .iter()
        .filter(|entry| {
            !before
                .iter()
                .any(|old| old.is_about(entry.site.as_deref(), &entry.field))
        })
        .map(|entry| {
            status::describe_difference(
                &entry.field,
                entry.site.as_deref(),
                &entry.desired,
                &entry.observed,
            )
        })
        .collect();
    let regarding = object.object_ref(&());
    if !new.is_empty() {
        let note = format!("{subject} differs from the spec: {}", new.join("; "));
        tracing::info!(object = %object_key(object), "{note}");
        publish(
            ctx,
            &regarding,
            EventType::Warning,
            status::reason::DRIFTED,
            "Observe",
            note,
        )
        .await;
    } else if after.is_empty() && !before.is_empty() {
        let note = format!("{subject} matches the spec again");
        publish(
            ctx,
            &regarding,
            EventType::Normal,
            status::reason::DRIFT_RESOLVED,
            "Observe",
            note,
        )
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claim_digest_selects_by_a_valid_label_and_anything_else_by_none() {
        let digest = sigsci_config::model::claim_digest("https://API.example.com/", "corp", &["x"]);
        let label = claim_label(&digest).expect("a digest makes a label");
        assert_eq!(label.len(), CLAIM_LABEL_CHARS);
        assert!(digest.starts_with(label));
        assert_eq!(claim_label("short"), None);
        assert_eq!(claim_label(&format!("{}/", "a".repeat(39))), None);
    }

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

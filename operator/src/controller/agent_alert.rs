//! `AgentAlert` reconciler: find the site's alert by tag name, patch it to the spec (create it
//! only if absent); on deletion apply the deletion policy. `ObserveOnly` never writes and
//! reports how the alert differs; of two objects declaring one alert, the older holds it.
//! An object declared with `sites` does the same on each site (`all`: the corp's sites at each
//! resync), claims each site's alert on its own, and reports each site in `status.sites`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use kube::api::{ObjectMeta, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::{Api, Resource, ResourceExt};
use serde_json::json;
use sigsci_config::alert::{claim_key, claim_sites_key, find_alert};
use sigsci_config::{AlertDeletionPolicy, ManagementPolicy, plan_alert, plan_alert_removal};

use super::{
    Context, Synced, add_finalizer, applied_before, claim, claim_label, claim_rank, converge,
    finalizer_with_claim, holder_name, holds, list_claimants, managed_outcome, record_failure,
    record_managed, record_managed_sites, recorded_remote_id, report_cleanup, succeeded,
};
use crate::claims::Claimant;
use crate::connect::{ApiClient, client_for, connection_target};
use crate::crd::AgentAlert;
use crate::crd::agent_alert::SiteSelection;
use crate::crd::common::{
    CLAIM_ANNOTATION, CLAIM_LABEL, CLAIM_SITES_LABEL, FINALIZER, REMOTE_ID_ANNOTATION,
    SITE_CLAIM_LABEL_PREFIX, SiteResult,
};
use crate::crd::connection::ConnectionTarget;
use crate::status::{self, Drift, Outcome, SiteDiff};
use crate::{Error, ErrorClass, Result, remote};

pub const KIND: &str = "AgentAlert";

pub async fn reconcile(alert: Arc<AgentAlert>, ctx: Arc<Context>) -> Result<Action> {
    let _timer = ctx.metrics.reconcile(KIND);
    let namespace = alert
        .namespace()
        .ok_or(Error::MissingMetadata("namespace"))?;
    let api: Api<AgentAlert> = Api::namespaced(ctx.client.clone(), &namespace);
    if finalizer_with_claim(alert.as_ref()) {
        let action = apply(&api, &alert, &namespace, &ctx).await?;
        succeeded(&ctx, alert.as_ref());
        return Ok(action);
    }
    let action = finalizer(&api, FINALIZER, alert.clone(), |event| async {
        match event {
            Finalizer::Apply(alert) => apply(&api, &alert, &namespace, &ctx).await,
            Finalizer::Cleanup(alert) => cleanup(&api, &alert, &namespace, &ctx).await,
        }
    })
    .await
    .map_err(|error| Error::Finalizer(Box::new(error)))?;
    succeeded(&ctx, alert.as_ref());
    Ok(action)
}

async fn apply(
    api: &Api<AgentAlert>,
    alert: &AgentAlert,
    namespace: &str,
    ctx: &Context,
) -> Result<Action> {
    if let Some(selection) = &alert.spec.sites {
        return apply_sites(api, alert, selection, namespace, ctx).await;
    }
    let result = sync(alert, namespace, ctx).await;
    let subject = subject(alert);
    let (outcome, annotations, drift) = match &result {
        Ok(synced) => (
            managed_outcome(&subject, alert.spec.management_policy, synced),
            match &synced.remote_id {
                Some(id) => vec![(REMOTE_ID_ANNOTATION, Some(id.clone()))],
                None => vec![],
            },
            Some(&synced.drift),
        ),
        Err(error) => (Outcome::failed(error), vec![], None),
    };
    record_managed(
        ctx,
        api,
        alert,
        alert.status.as_ref(),
        &outcome,
        &annotations,
        drift,
        (KIND, &subject),
    )
    .await?;
    result.map(|_| Action::requeue(ctx.settings.resync))
}

async fn sync(alert: &AgentAlert, namespace: &str, ctx: &Context) -> Result<Synced> {
    let status = alert.status.as_ref().map(|s| &s.sync);
    let recorded = recorded_remote_id(alert, status);
    let desired = alert.desired(namespace, &alert.name_any(), recorded.clone());
    desired.validate().map_err(Error::InvalidSpec)?;
    let target =
        connection_target(&ctx.reader(KIND), namespace, &alert.spec.connection_ref).await?;
    let key = claim_key(&target.api_url, &target.corp, &desired.site, desired.metric);
    let claimed = claim(ctx, alert, &key).await?;
    let holder = match claimed.holder {
        Some(holder) => Some(holder),
        None => {
            let claimants = Claimants::find(ctx, alert, &target, &[], claimed.recorded_now).await?;
            claimants.holder(alert, &key)
        }
    };
    if let Some(holder) = holder {
        return Err(Error::Conflict {
            subject: subject(alert),
            holder,
        });
    }
    let client = client_for(&ctx.reader(KIND), &target, &ctx.settings.api).await?;
    sync_site(
        alert,
        &client,
        desired,
        recorded,
        applied_before(alert, status),
    )
    .await
}

/// Read the site's alerts and converge the one `desired` declares.
async fn sync_site(
    alert: &AgentAlert,
    client: &ApiClient,
    desired: sigsci_config::DesiredAlert,
    recorded: Option<String>,
    settled: bool,
) -> Result<Synced> {
    let observed = remote::observe_alerts(client, &desired.site).await?;
    let found = find_alert(&desired, &observed).map(|found| found.id.clone());
    converge(
        client,
        alert.spec.management_policy,
        plan_alert(&desired, &observed),
        found,
        recorded,
        settled,
    )
    .await
}

/// How events and conditions name the remote object.
fn subject(alert: &AgentAlert) -> String {
    match &alert.spec.site {
        Some(site) => subject_on(alert, site),
        None => format!(
            "alert {} on {}",
            alert.spec.metric.tag_name(),
            match &alert.spec.sites {
                Some(SiteSelection::Listed(sites)) => format!("sites {}", sites.join(", ")),
                _ => "all sites".to_string(),
            }
        ),
    }
}

fn subject_on(alert: &AgentAlert, site: &str) -> String {
    format!("site {site} alert {}", alert.spec.metric.tag_name())
}

/// The objects that may claim the alerts of `sites` (and, with no sites, only those declared
/// with `sites`): found by label, so the look-up costs one or two selected lists whatever the
/// number of objects, or none in the claims watched.
struct Claimants {
    objects: Vec<ObjectMeta>,
}

impl Claimants {
    /// `live`: list from the apiserver (this reconcile has just recorded its claims).
    async fn find(
        ctx: &Context,
        alert: &AgentAlert,
        target: &ConnectionTarget,
        single_site_keys: &[String],
        live: bool,
    ) -> Result<Claimants> {
        let wide = claim_sites_key(&target.api_url, &target.corp, alert.spec.metric);
        let wide = claim_label(&wide);
        let labels: BTreeSet<&str> = single_site_keys
            .iter()
            .filter_map(|key| claim_label(key))
            .collect();
        let known = (!live)
            .then(|| {
                AgentAlert::claims(&ctx.reads.claims).select(|meta| {
                    let label = |name: &str| {
                        meta.labels
                            .as_ref()
                            .and_then(|labels| labels.get(name))
                            .map(String::as_str)
                    };
                    wide.is_some_and(|wide| label(CLAIM_SITES_LABEL) == Some(wide))
                        || label(CLAIM_LABEL).is_some_and(|label| labels.contains(label))
                })
            })
            .flatten();
        if let Some(objects) = known {
            return Ok(Claimants { objects });
        }
        let mut selectors = Vec::new();
        if let Some(label) = wide {
            selectors.push(format!("{CLAIM_SITES_LABEL}={label}"));
        }
        let labels: Vec<&str> = labels.into_iter().collect();
        // A selector stays well under the apiserver's URL limit at 100 values of 40 characters.
        for chunk in labels.chunks(100) {
            selectors.push(format!("{CLAIM_LABEL} in ({})", chunk.join(",")));
        }
        let mut objects = Vec::new();
        for selector in selectors {
            objects.extend(list_claimants(ctx, alert, Some(&selector)).await?);
        }
        Ok(Claimants { objects })
    }

    /// The older object holding the site alert of claim `key`, if not `alert`.
    fn holder(&self, alert: &AgentAlert, key: &str) -> Option<String> {
        let site_label = claim_label(key).map(|label| format!("{SITE_CLAIM_LABEL_PREFIX}{label}"));
        self.objects
            .iter()
            .filter(|other| {
                let annotation = other
                    .annotations
                    .as_ref()
                    .and_then(|annotations| annotations.get(CLAIM_ANNOTATION));
                let site_labelled = site_label.as_ref().is_some_and(|label| {
                    other
                        .labels
                        .as_ref()
                        .is_some_and(|labels| labels.contains_key(label))
                });
                other.deletion_timestamp.is_none()
                    && (annotation.map(String::as_str) == Some(key) || site_labelled)
            })
            .min_by_key(|other| claim_rank(other))
            .filter(|oldest| claim_rank(oldest) < claim_rank(alert.meta()))
            .map(holder_name::<AgentAlert>)
    }
}

/// The site names `selection` stands for now.
async fn resolve(selection: &SiteSelection, client: &ApiClient) -> Result<Vec<String>> {
    Ok(match selection {
        SiteSelection::All => {
            let mut sites: Vec<String> = client
                .list_sites()
                .await?
                .into_iter()
                .map(|site| site.name)
                .collect();
            sites.sort();
            sites
        }
        SiteSelection::Listed(sites) => sites.clone(),
    })
}

/// Record on the object which site alerts it claims (a label per site, and the metric-wide
/// label), before looking for older claimants: of two objects claiming at once, the one looking
/// last sees the other.
async fn claim_sites(
    (api, ctx): (&Api<AgentAlert>, &Context),
    alert: &AgentAlert,
    target: &ConnectionTarget,
    keys: &[String],
) -> Result<bool> {
    let wanted: BTreeSet<String> = keys
        .iter()
        .filter_map(|key| claim_label(key))
        .map(|label| format!("{SITE_CLAIM_LABEL_PREFIX}{label}"))
        .collect();
    let labels = alert.labels();
    let mut changes = serde_json::Map::new();
    for stale in labels
        .keys()
        .filter(|key| key.starts_with(SITE_CLAIM_LABEL_PREFIX) && !wanted.contains(*key))
    {
        changes.insert(stale.clone(), serde_json::Value::Null);
    }
    for key in wanted.iter().filter(|key| !labels.contains_key(*key)) {
        changes.insert(key.clone(), json!("true"));
    }
    let wide = claim_sites_key(&target.api_url, &target.corp, alert.spec.metric);
    if let Some(label) = claim_label(&wide)
        && labels.get(CLAIM_SITES_LABEL).map(String::as_str) != Some(label)
    {
        changes.insert(CLAIM_SITES_LABEL.to_string(), json!(label));
    }
    let recorded_now = !changes.is_empty();
    let mut metadata = serde_json::Map::new();
    if recorded_now {
        metadata.insert("labels".into(), serde_json::Value::Object(changes));
    }
    add_finalizer(alert, &mut metadata);
    if !metadata.is_empty() {
        let written = api
            .patch(
                &alert.name_any(),
                &PatchParams::default(),
                &Patch::Merge(json!({ "metadata": metadata })),
            )
            .await?;
        ctx.echoes
            .wrote(&super::object_key(alert), written.resource_version());
    }
    Ok(recorded_now)
}

/// One site's result in a reconcile of an object declared with `sites`.
struct SiteSync {
    site: String,
    result: Result<Synced>,
}

async fn apply_sites(
    api: &Api<AgentAlert>,
    alert: &AgentAlert,
    selection: &SiteSelection,
    namespace: &str,
    ctx: &Context,
) -> Result<Action> {
    let subject = subject(alert);
    let synced = sync_sites(api, alert, selection, namespace, ctx).await;
    let synced = match synced {
        Ok(synced) => synced,
        Err(error) => {
            record_failure(
                ctx,
                api,
                alert,
                alert.status.as_ref(),
                &Outcome::failed(&error),
                (KIND, &subject),
            )
            .await?;
            return Err(error);
        }
    };
    let (outcome, drift, entries) = site_outcome(alert, &subject, &synced);
    record_managed_sites(
        ctx,
        api,
        alert,
        (alert.status.as_ref(), &outcome),
        &[],
        Some(&drift),
        Some(entries),
        (KIND, &subject),
    )
    .await?;
    // The error a site's failure calls for: a transient one retries soonest.
    let mut failures: Vec<Error> = synced
        .into_iter()
        .filter_map(|site| site.result.err())
        .collect();
    failures.sort_by_key(|error| error.class() != ErrorClass::Transient);
    match failures.into_iter().next() {
        Some(error) => Err(error),
        None => Ok(Action::requeue(ctx.settings.resync)),
    }
}

/// Resolve the sites, claim them, then sync each site the object holds; sites dropped since the
/// last reconcile get the deletion policy.
async fn sync_sites(
    api: &Api<AgentAlert>,
    alert: &AgentAlert,
    selection: &SiteSelection,
    namespace: &str,
    ctx: &Context,
) -> Result<Vec<SiteSync>> {
    let name = alert.name_any();
    let spec = &alert.spec;
    spec.check_sites().map_err(Error::InvalidSpec)?;
    let target = connection_target(&ctx.reader(KIND), namespace, &spec.connection_ref).await?;
    let client = client_for(&ctx.reader(KIND), &target, &ctx.settings.api).await?;
    let sites = resolve(selection, &client).await?;
    let key_of = |site: &str| claim_key(&target.api_url, &target.corp, site, spec.metric);
    let keys: Vec<String> = sites.iter().map(|site| key_of(site)).collect();
    let recorded_now = claim_sites((api, ctx), alert, &target, &keys).await?;
    let claimants = Claimants::find(ctx, alert, &target, &keys, recorded_now).await?;
    let status = alert.status.as_ref();
    let previous: BTreeMap<&str, &SiteResult> = status
        .map(|status| {
            status
                .sites
                .iter()
                .map(|entry| (entry.site.as_str(), entry))
        })
        .into_iter()
        .flatten()
        .collect();
    let current_generation =
        status.is_some_and(|status| status.sync.observed_generation == alert.meta().generation);
    let syncs = sites.iter().zip(&keys).map(|(site, key)| {
        let entry = previous.get(site.as_str()).copied();
        let holder = claimants.holder(alert, key);
        let client = &client;
        let name = &name;
        async move {
            let result = match holder {
                Some(holder) => Err(Error::Conflict {
                    subject: subject_on(alert, site),
                    holder,
                }),
                None => {
                    let recorded = entry.and_then(|entry| entry.remote_id.clone());
                    let desired = alert.desired_on(site, namespace, name, recorded.clone());
                    // Applied before: this generation was Ready on the site after writing or
                    // matching; a difference now is drift.
                    let settled = current_generation
                        && entry.is_some_and(|entry| {
                            entry.ready == "True" && entry.reason != status::reason::OBSERVED
                        });
                    sync_site(alert, client, desired, recorded, settled).await
                }
            };
            SiteSync {
                site: site.clone(),
                result,
            }
        }
    });
    let mut synced = futures::future::join_all(syncs).await;
    // Sites no longer declared (or, under `all`, no longer in the corp).
    let declared: BTreeSet<&str> = sites.iter().map(String::as_str).collect();
    for (site, entry) in previous {
        if declared.contains(site) {
            continue;
        }
        let key = key_of(site);
        let held = entry.remote_id.is_some() && claimants.holder(alert, &key).is_none();
        if !held {
            continue;
        }
        if let Err(error) = remove_on_site(alert, &client, site, entry.remote_id.clone()).await {
            tracing::warn!(object = %super::object_key(alert), site, %error, "cannot apply the deletion policy to a site no longer declared");
            synced.push(SiteSync {
                site: site.to_string(),
                result: Err(error),
            });
        }
    }
    Ok(synced)
}

/// The object's conditions, drift and `status.sites` after syncing each site.
fn site_outcome(
    alert: &AgentAlert,
    subject: &str,
    synced: &[SiteSync],
) -> (Outcome, Drift, Vec<SiteResult>) {
    let policy = alert.spec.management_policy;
    let mut entries = Vec::new();
    let mut failed = Vec::new();
    let mut noted = Vec::new();
    let (mut wrote, mut adopted) = (false, false);
    let (mut differs, mut corrected): (Vec<SiteDiff>, Vec<SiteDiff>) = (Vec::new(), Vec::new());
    let mut transient = false;
    for SiteSync { site, result } in synced {
        let site_subject = subject_on(alert, site);
        let entry = match result {
            Ok(synced) => {
                let outcome = managed_outcome(&site_subject, policy, synced);
                let Outcome::Succeeded {
                    reason,
                    message,
                    wrote: written,
                    remote_id,
                } = outcome
                else {
                    continue;
                };
                wrote |= written;
                adopted |= synced.adopted;
                match &synced.drift {
                    Drift::Differs(diffs) => differs.extend(on_site(site, diffs)),
                    Drift::Corrected(diffs) => corrected.extend(on_site(site, diffs)),
                    Drift::Matches => {}
                }
                if written || synced.adopted || !matches!(synced.drift, Drift::Matches) {
                    noted.push(message.clone());
                }
                SiteResult {
                    site: site.clone(),
                    remote_id,
                    ready: "True".into(),
                    reason: reason.into(),
                    message,
                }
            }
            Err(error) => {
                transient |= error.class() == ErrorClass::Transient;
                failed.push((error.reason(), format!("{site}: {error}")));
                SiteResult {
                    site: site.clone(),
                    remote_id: None,
                    ready: "False".into(),
                    reason: error.reason().into(),
                    message: error.to_string(),
                }
            }
        };
        entries.push(entry);
    }
    entries.sort_by(|a, b| a.site.cmp(&b.site));
    let total = entries.len();
    let drift = if !corrected.is_empty() {
        Drift::Corrected(corrected)
    } else if !differs.is_empty() {
        Drift::Differs(differs)
    } else {
        Drift::Matches
    };
    let outcome = match failed.first() {
        Some(&(reason, _)) => Outcome::Failed {
            reason,
            message: format!(
                "{} of {total} sites failed: {}",
                failed.len(),
                failed
                    .iter()
                    .map(|(_, message)| message.as_str())
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            class: if transient {
                ErrorClass::Transient
            } else {
                ErrorClass::Permanent
            },
            blocks_deletion: false,
        },
        None => {
            let reason = match (&drift, policy) {
                (Drift::Corrected(_), _) => status::reason::DRIFT_CORRECTED,
                (_, ManagementPolicy::ObserveOnly) => status::reason::OBSERVED,
                _ if wrote => status::reason::UPDATED,
                _ if adopted => status::reason::ADOPTED,
                _ => status::reason::IN_SYNC,
            };
            let message = if noted.is_empty() {
                format!("{subject}: matches the spec on {total} sites")
            } else {
                format!("{subject} ({total} sites): {}", noted.join("; "))
            };
            Outcome::Succeeded {
                reason,
                message,
                wrote,
                remote_id: None,
            }
        }
    };
    (outcome, drift, entries)
}

/// `diffs`, found on `site`.
fn on_site<'a>(site: &'a str, diffs: &'a [SiteDiff]) -> impl Iterator<Item = SiteDiff> + 'a {
    diffs.iter().map(move |diff| SiteDiff {
        site: Some(site.to_string()),
        diff: diff.diff.clone(),
    })
}

async fn cleanup(
    api: &Api<AgentAlert>,
    alert: &AgentAlert,
    namespace: &str,
    ctx: &Context,
) -> Result<Action> {
    let policy = alert.spec.deletion_policy;
    let subject = subject(alert);
    let regarding = alert.object_ref(&());
    ctx.metrics
        .set_drifted(KIND, &super::object_key(alert), false);
    let result = match (alert.spec.management_policy, policy) {
        (ManagementPolicy::ObserveOnly, _) => Ok(Removal::Observed),
        (_, AlertDeletionPolicy::Orphan) => Ok(Removal::Orphaned),
        (ManagementPolicy::Full, _) if alert.spec.sites.is_some() => {
            remove_sites(alert, namespace, ctx).await
        }
        (ManagementPolicy::Full, _) => remove(alert, namespace, ctx, policy).await,
    };
    match result {
        Ok(removal) => {
            let (reason, note) = match (removal, policy) {
                (Removal::Observed, _) => (
                    "Orphaned",
                    format!("left {subject} as it is: ObserveOnly never writes"),
                ),
                (Removal::Orphaned, _) => ("Orphaned", format!("left {subject} as it is")),
                (Removal::NotHeld, _) => (
                    "NotHeld",
                    format!("{subject} is not held by this object; left it"),
                ),
                (Removal::Unchanged, _) => ("AlreadyGone", format!("{subject} needed no change")),
                (Removal::Written, AlertDeletionPolicy::Delete) => {
                    ("Deleted", format!("deleted {subject}"))
                }
                (Removal::Written, _) => ("Disabled", format!("disabled {subject}")),
                (Removal::Sites(sites), _) => (
                    "Cleanup",
                    format!(
                        "applied deletionPolicy {policy:?} to alert {} on {} held sites{}",
                        alert.spec.metric.tag_name(),
                        sites.len(),
                        if sites.is_empty() {
                            String::new()
                        } else {
                            format!(": {}", sites.join(", "))
                        }
                    ),
                ),
            };
            report_cleanup(ctx, &regarding, reason, note).await;
            Ok(Action::await_change())
        }
        Err(error) => {
            record_failure(
                ctx,
                api,
                alert,
                alert.status.as_ref(),
                &Outcome::deletion_blocked(&error, &subject, policy),
                (KIND, &subject),
            )
            .await?;
            Err(error)
        }
    }
}

/// What deleting the object did to the remote alert.
enum Removal {
    Observed,
    Orphaned,
    /// Never synced, or another object holds the alert.
    NotHeld,
    Unchanged,
    Written,
    /// Declared with `sites`: the sites the policy was applied to (those it held).
    Sites(Vec<String>),
}

/// Apply the deletion policy (`Disable` or `Delete`) to the alert this object holds.
async fn remove(
    alert: &AgentAlert,
    namespace: &str,
    ctx: &Context,
    policy: AlertDeletionPolicy,
) -> Result<Removal> {
    let recorded = recorded_remote_id(alert, alert.status.as_ref().map(|s| &s.sync));
    if !holds(ctx, alert, recorded.as_deref()).await? {
        return Ok(Removal::NotHeld);
    }
    let desired = alert.desired(namespace, &alert.name_any(), recorded);
    let target =
        connection_target(&ctx.reader(KIND), namespace, &alert.spec.connection_ref).await?;
    // An older object declaring the alert on several sites holds it too.
    let key = claim_key(&target.api_url, &target.corp, &desired.site, desired.metric);
    let claimants = Claimants::find(ctx, alert, &target, &[], true).await?;
    if claimants.holder(alert, &key).is_some() {
        return Ok(Removal::NotHeld);
    }
    let client = client_for(&ctx.reader(KIND), &target, &ctx.settings.api).await?;
    let observed = match remote::observe_alerts(&client, &desired.site).await {
        // The site itself is gone, and its alerts with it.
        Err(sigsci::Error::NotFound { .. }) => return Ok(Removal::Unchanged),
        other => other?,
    };
    match plan_alert_removal(&desired, &observed, policy) {
        Some(change) => {
            remote::execute(&client, &change).await?;
            Ok(Removal::Written)
        }
        None => Ok(Removal::Unchanged),
    }
}

/// Apply the deletion policy on each site whose alert this object holds (it recorded the
/// alert's id there, and no older object claims it).
async fn remove_sites(alert: &AgentAlert, namespace: &str, ctx: &Context) -> Result<Removal> {
    let entries: Vec<&SiteResult> = alert
        .status
        .as_ref()
        .map(|status| {
            status
                .sites
                .iter()
                .filter(|e| e.remote_id.is_some())
                .collect()
        })
        .unwrap_or_default();
    if entries.is_empty() {
        return Ok(Removal::NotHeld);
    }
    let target =
        connection_target(&ctx.reader(KIND), namespace, &alert.spec.connection_ref).await?;
    let client = client_for(&ctx.reader(KIND), &target, &ctx.settings.api).await?;
    let key_of = |site: &str| claim_key(&target.api_url, &target.corp, site, alert.spec.metric);
    let keys: Vec<String> = entries.iter().map(|entry| key_of(&entry.site)).collect();
    let claimants = Claimants::find(ctx, alert, &target, &keys, true).await?;
    let mut applied = Vec::new();
    for (entry, key) in entries.iter().zip(&keys) {
        if claimants.holder(alert, key).is_some() {
            continue;
        }
        remove_on_site(alert, &client, &entry.site, entry.remote_id.clone()).await?;
        applied.push(entry.site.clone());
    }
    Ok(Removal::Sites(applied))
}

/// Apply the deletion policy to the object's alert on `site` (`recorded`: its id there).
async fn remove_on_site(
    alert: &AgentAlert,
    client: &ApiClient,
    site: &str,
    recorded: Option<String>,
) -> Result<()> {
    let policy = alert.spec.deletion_policy;
    if alert.spec.management_policy == ManagementPolicy::ObserveOnly
        || policy == AlertDeletionPolicy::Orphan
    {
        return Ok(());
    }
    let desired = alert.desired_on(
        site,
        &alert.namespace().unwrap_or_default(),
        &alert.name_any(),
        recorded,
    );
    let observed = match remote::observe_alerts(client, site).await {
        Err(sigsci::Error::NotFound { .. }) => return Ok(()),
        other => other?,
    };
    if let Some(change) = plan_alert_removal(&desired, &observed, policy) {
        remote::execute(client, &change).await?;
    }
    Ok(())
}

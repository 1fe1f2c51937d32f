//! `AgentAlert` reconciler: find the site's alert by tag name, patch it to the spec (create it
//! only if absent); on deletion apply the deletion policy. `ObserveOnly` never writes and
//! reports how the alert differs; of two objects declaring one alert, the older holds it.

use std::sync::Arc;

use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::{Api, Resource, ResourceExt};
use sigsci_config::alert::{claim_key, find_alert};
use sigsci_config::{AlertDeletionPolicy, ManagementPolicy, plan_alert, plan_alert_removal};

use super::{
    Context, Synced, applied_before, claim, converge, holds, managed_outcome, record_managed,
    recorded_remote_id, report_cleanup, succeeded,
};
use crate::connect::{client_for, connect, connection_target};
use crate::crd::AgentAlert;
use crate::crd::common::{FINALIZER, REMOTE_ID_ANNOTATION};
use crate::status::Outcome;
use crate::{Error, Result, remote};

pub const KIND: &str = "AgentAlert";

pub async fn reconcile(alert: Arc<AgentAlert>, ctx: Arc<Context>) -> Result<Action> {
    let _timer = ctx.metrics.reconcile(KIND);
    let namespace = alert
        .namespace()
        .ok_or(Error::MissingMetadata("namespace"))?;
    let api: Api<AgentAlert> = Api::namespaced(ctx.client.clone(), &namespace);
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
    let target = connection_target(&ctx.client, namespace, &alert.spec.connection_ref).await?;
    let key = claim_key(&target.api_url, &target.corp, &desired.site, desired.metric);
    if let Some(holder) = claim(ctx, alert, &key).await? {
        return Err(Error::Conflict {
            subject: subject(alert),
            holder,
        });
    }
    let client = client_for(&ctx.client, &target, &ctx.settings.api).await?;
    let observed = remote::observe_alerts(&client, &desired.site).await?;
    let found = find_alert(&desired, &observed).map(|found| found.id.clone());
    converge(
        &client,
        alert.spec.management_policy,
        plan_alert(&desired, &observed),
        found,
        recorded,
        applied_before(alert, status),
    )
    .await
}

/// How events and conditions name the remote object.
fn subject(alert: &AgentAlert) -> String {
    format!(
        "site {} alert {}",
        alert.spec.site,
        alert.spec.metric.tag_name()
    )
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
            };
            report_cleanup(ctx, &regarding, reason, note).await;
            Ok(Action::await_change())
        }
        Err(error) => {
            record_managed(
                ctx,
                api,
                alert,
                alert.status.as_ref(),
                &Outcome::deletion_blocked(&error, &subject, policy),
                &[],
                None,
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
    let client = connect(
        &ctx.client,
        namespace,
        &alert.spec.connection_ref,
        &ctx.settings.api,
    )
    .await?;
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

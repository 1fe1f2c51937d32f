//! `AgentAlert` reconciler: find the site's alert by tag name, patch it to the spec (create it
//! only if absent); on deletion apply the deletion policy.

use std::sync::Arc;

use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::{Api, Resource, ResourceExt};
use sigsci_config::alert::find_alert;
use sigsci_config::{AlertDeletionPolicy, Change, plan_alert, plan_alert_removal};

use super::{Context, record_sync, recorded_remote_id, report_cleanup, succeeded};
use crate::connect::connect;
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

/// What a successful sync did.
struct Synced {
    change: Option<Change>,
    remote_id: Option<String>,
    adopted: bool,
}

async fn apply(
    api: &Api<AgentAlert>,
    alert: &AgentAlert,
    namespace: &str,
    ctx: &Context,
) -> Result<Action> {
    let result = sync(alert, namespace, ctx).await;
    let outcome = match &result {
        Ok(synced) => Outcome::synced(
            &subject(alert),
            synced.change.as_ref(),
            synced.adopted,
            synced.remote_id.clone(),
        ),
        Err(error) => Outcome::failed(error),
    };
    let annotation = result
        .as_ref()
        .ok()
        .and_then(|synced| synced.remote_id.clone());
    let annotations = match annotation {
        Some(id) => vec![(REMOTE_ID_ANNOTATION, Some(id))],
        None => vec![],
    };
    record_sync(
        ctx,
        api,
        alert,
        alert.status.as_ref(),
        &outcome,
        &annotations,
        std::convert::identity,
    )
    .await?;
    result.map(|_| Action::requeue(ctx.settings.resync))
}

async fn sync(alert: &AgentAlert, namespace: &str, ctx: &Context) -> Result<Synced> {
    let recorded = recorded_remote_id(alert, alert.status.as_ref());
    let desired = alert.desired(namespace, &alert.name_any(), recorded.clone());
    desired.validate().map_err(Error::InvalidSpec)?;
    let client = connect(
        &ctx.client,
        namespace,
        &alert.spec.connection_ref,
        &ctx.settings.api,
    )
    .await?;
    let observed = remote::observe_alerts(&client, &desired.site).await?;
    match plan_alert(&desired, &observed) {
        Some(change) => {
            let applied = remote::execute(&client, &change).await?;
            Ok(Synced {
                change: Some(change),
                remote_id: applied.remote_id,
                adopted: false,
            })
        }
        None => {
            let remote_id = find_alert(&desired, &observed).map(|found| found.id.clone());
            Ok(Synced {
                adopted: recorded.is_none() || recorded != remote_id,
                change: None,
                remote_id,
            })
        }
    }
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
    let result = remove(alert, namespace, ctx, policy).await;
    let regarding = alert.object_ref(&());
    match result {
        Ok(done) => {
            let (reason, note) = match (policy, done) {
                (AlertDeletionPolicy::Orphan, _) => {
                    ("Orphaned", format!("left {subject} as it is"))
                }
                (_, false) => ("AlreadyGone", format!("{subject} needed no change")),
                (AlertDeletionPolicy::Disable, true) => ("Disabled", format!("disabled {subject}")),
                (AlertDeletionPolicy::Delete, true) => ("Deleted", format!("deleted {subject}")),
            };
            report_cleanup(ctx, &regarding, reason, note).await;
            Ok(Action::await_change())
        }
        Err(error) => {
            record_sync(
                ctx,
                api,
                alert,
                alert.status.as_ref(),
                &Outcome::deletion_blocked(&error, &subject, policy),
                &[],
                std::convert::identity,
            )
            .await?;
            Err(error)
        }
    }
}

/// Apply the deletion policy; `Ok(true)` when the remote was written.
async fn remove(
    alert: &AgentAlert,
    namespace: &str,
    ctx: &Context,
    policy: AlertDeletionPolicy,
) -> Result<bool> {
    if policy == AlertDeletionPolicy::Orphan {
        return Ok(false);
    }
    let desired = alert.desired(
        namespace,
        &alert.name_any(),
        recorded_remote_id(alert, alert.status.as_ref()),
    );
    let client = connect(
        &ctx.client,
        namespace,
        &alert.spec.connection_ref,
        &ctx.settings.api,
    )
    .await?;
    let observed = match remote::observe_alerts(&client, &desired.site).await {
        // The site itself is gone, and its alerts with it.
        Err(sigsci::Error::NotFound { .. }) => return Ok(false),
        other => other?,
    };
    match plan_alert_removal(&desired, &observed, policy) {
        Some(change) => {
            remote::execute(&client, &change).await?;
            Ok(true)
        }
        None => Ok(false),
    }
}

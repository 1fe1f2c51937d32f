//! Connection reconcilers: read the credentials, make one authenticated call, report `Ready`.

use std::fmt::Debug;
use std::sync::Arc;

use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;

use super::{Context, apply_status, publish, succeeded};
use crate::connect::client_for;
use crate::crd::connection::ConnectionTarget;
use crate::crd::{ClusterSigSciConnection, ConnectionStatus, SigSciConnection};
use crate::status::{self, Outcome, next_connection_status, reason};
use crate::{Error, Result};

pub const KIND: &str = "SigSciConnection";
pub const CLUSTER_KIND: &str = "ClusterSigSciConnection";

pub async fn reconcile(connection: Arc<SigSciConnection>, ctx: Arc<Context>) -> Result<Action> {
    let _timer = ctx.metrics.reconcile(KIND);
    let namespace = connection
        .namespace()
        .ok_or(Error::MissingMetadata("namespace"))?;
    let api: Api<SigSciConnection> = Api::namespaced(ctx.client.clone(), &namespace);
    let target = connection.target(&namespace);
    check(
        &api,
        connection.as_ref(),
        connection.status.as_ref(),
        Some(target),
        (KIND, &ctx),
    )
    .await
}

pub async fn reconcile_cluster(
    connection: Arc<ClusterSigSciConnection>,
    ctx: Arc<Context>,
) -> Result<Action> {
    let _timer = ctx.metrics.reconcile(CLUSTER_KIND);
    let api: Api<ClusterSigSciConnection> = Api::all(ctx.client.clone());
    check(
        &api,
        connection.as_ref(),
        connection.status.as_ref(),
        connection.target(),
        (CLUSTER_KIND, &ctx),
    )
    .await
}

async fn check<K>(
    api: &Api<K>,
    connection: &K,
    current: Option<&ConnectionStatus>,
    target: Option<ConnectionTarget>,
    (kind, ctx): (&'static str, &Context),
) -> Result<Action>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    let result = authenticate(target, kind, ctx).await;
    let outcome = match &result {
        Ok(message) => Outcome::Succeeded {
            reason: reason::AUTHENTICATED,
            message: message.clone(),
            wrote: false,
            remote_id: None,
        },
        Err(error) => Outcome::failed(error),
    };
    let next = next_connection_status(current, connection.meta().generation, &outcome, &ctx.now());
    if current != Some(&next) {
        apply_status(api, &connection.name_any(), &next).await?;
        let ready_before = current.and_then(|s| status::find(&s.conditions, status::READY));
        let ready_after = status::find(&next.conditions, status::READY);
        let ready_changed = ready_before.map(|c| (&c.status, &c.reason))
            != ready_after.map(|c| (&c.status, &c.reason));
        if let (true, Some(ready)) = (ready_changed, ready_after) {
            let type_ = if ready.status == "True" {
                EventType::Normal
            } else {
                EventType::Warning
            };
            publish(
                ctx,
                &connection.object_ref(&()),
                type_,
                &ready.reason,
                "Authenticate",
                ready.message.clone(),
            )
            .await;
        }
    }
    result?;
    succeeded(ctx, connection);
    Ok(Action::requeue(ctx.settings.resync))
}

/// One authenticated call (list the corp's sites) with the Secret's current credentials.
async fn authenticate(
    target: Option<ConnectionTarget>,
    kind: &'static str,
    ctx: &Context,
) -> Result<String> {
    let target = target.ok_or(Error::MissingMetadata("credentialsSecretRef.namespace"))?;
    let client = client_for(&ctx.reader(kind), &target, &ctx.settings.api).await?;
    let sites = client.list_sites().await?;
    Ok(format!(
        "authenticated to corp {} ({} sites)",
        target.corp,
        sites.len()
    ))
}

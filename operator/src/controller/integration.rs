//! `Integration` reconciler: create the site or corp integration, patch it to the spec, and
//! delete it (only the recorded id) on removal unless orphaned.

use std::collections::BTreeMap;
use std::sync::Arc;

use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::{Api, Resource, ResourceExt};
use sigsci_config::integration::find_integration;
use sigsci_config::{Change, IntegrationDeletionPolicy, Sensitive, plan_integration_removal};

use super::{Context, record_sync, recorded_remote_id, report_cleanup, succeeded};
use crate::connect::{connect, secret_value};
use crate::crd::Integration;
use crate::crd::common::{FIELDS_DIGEST_ANNOTATION, FINALIZER, REMOTE_ID_ANNOTATION};
use crate::status::Outcome;
use crate::{Error, Result, remote};

pub const KIND: &str = "Integration";

pub async fn reconcile(integration: Arc<Integration>, ctx: Arc<Context>) -> Result<Action> {
    let _timer = ctx.metrics.reconcile(KIND);
    let namespace = integration
        .namespace()
        .ok_or(Error::MissingMetadata("namespace"))?;
    let api: Api<Integration> = Api::namespaced(ctx.client.clone(), &namespace);
    let action = finalizer(&api, FINALIZER, integration.clone(), |event| async {
        match event {
            Finalizer::Apply(integration) => apply(&api, &integration, &namespace, &ctx).await,
            Finalizer::Cleanup(integration) => cleanup(&api, &integration, &namespace, &ctx).await,
        }
    })
    .await
    .map_err(|error| Error::Finalizer(Box::new(error)))?;
    succeeded(&ctx, integration.as_ref());
    Ok(action)
}

struct Synced {
    change: Option<Change>,
    remote_id: Option<String>,
    fields_digest: String,
    adopted: bool,
}

async fn apply(
    api: &Api<Integration>,
    integration: &Integration,
    namespace: &str,
    ctx: &Context,
) -> Result<Action> {
    let result = sync(integration, namespace, ctx).await;
    let (outcome, annotations) = match &result {
        Ok(synced) => {
            let digest = Some(synced.fields_digest.clone()).filter(|digest| !digest.is_empty());
            let annotations = match &synced.remote_id {
                Some(id) => vec![
                    (REMOTE_ID_ANNOTATION, Some(id.clone())),
                    (FIELDS_DIGEST_ANNOTATION, digest),
                ],
                None => vec![],
            };
            (
                Outcome::synced(
                    &subject(integration),
                    synced.change.as_ref(),
                    synced.adopted,
                    synced.remote_id.clone(),
                ),
                annotations,
            )
        }
        Err(error) => (Outcome::failed(error), vec![]),
    };
    record_sync(
        ctx,
        api,
        integration,
        integration.status.as_ref(),
        &outcome,
        &annotations,
        std::convert::identity,
    )
    .await?;
    result.map(|_| Action::requeue(ctx.settings.resync))
}

/// Every Secret value the spec reads, keyed by Secret name and key.
async fn resolve_secrets(
    ctx: &Context,
    namespace: &str,
    integration: &Integration,
) -> Result<BTreeMap<(String, String), Sensitive>> {
    let mut values = BTreeMap::new();
    for reference in integration.spec.secret_refs() {
        let value = secret_value(&ctx.client, namespace, &reference.name, &reference.key).await?;
        values.insert((reference.name.clone(), reference.key.clone()), value);
    }
    Ok(values)
}

async fn sync(integration: &Integration, namespace: &str, ctx: &Context) -> Result<Synced> {
    let recorded = recorded_remote_id(integration, integration.status.as_ref());
    let secrets = resolve_secrets(ctx, namespace, integration).await?;
    let desired = integration
        .desired(
            namespace,
            &integration.name_any(),
            recorded.clone(),
            &secrets,
        )
        .map_err(|unresolved| Error::Secret {
            namespace: namespace.to_string(),
            name: unresolved.name,
            problem: format!("key {}: {}", unresolved.key, unresolved.problem),
        })?;
    desired.validate().map_err(Error::InvalidSpec)?;
    let client = connect(
        &ctx.client,
        namespace,
        &integration.spec.connection_ref,
        &ctx.settings.api,
    )
    .await?;
    // Fields are write-only: what we last sent is known only for the recorded id. Anything else
    // (an adopted integration) counts as having none, so declared fields get sent once.
    let recorded_digest = integration
        .annotations()
        .get(FIELDS_DIGEST_ANNOTATION)
        .cloned()
        .unwrap_or_default();
    let observed = remote::observe_integrations(&client, &desired.location, |id| {
        Some(if recorded.as_deref() == Some(id) {
            recorded_digest.clone()
        } else {
            String::new()
        })
    })
    .await?;
    let fields_digest = desired.settings().fields_digest();
    let current = find_integration(&desired, &observed, &Default::default());
    let found_id = current.map(|found| found.id.clone());
    match sigsci_config::integration::plan_integration_against(&desired, current) {
        Some(change) => {
            let applied = remote::execute(&client, &change).await?;
            Ok(Synced {
                change: Some(change),
                remote_id: applied.remote_id,
                fields_digest,
                adopted: false,
            })
        }
        None => Ok(Synced {
            adopted: recorded.is_none() || recorded != found_id,
            change: None,
            remote_id: found_id,
            fields_digest,
        }),
    }
}

/// How events and conditions name the remote object.
fn subject(integration: &Integration) -> String {
    format!(
        "{} {} integration",
        integration.spec.location(),
        integration.spec.kind
    )
}

async fn cleanup(
    api: &Api<Integration>,
    integration: &Integration,
    namespace: &str,
    ctx: &Context,
) -> Result<Action> {
    let policy = integration.spec.deletion_policy;
    let subject = subject(integration);
    let regarding = integration.object_ref(&());
    match remove(integration, namespace, ctx, policy).await {
        Ok(done) => {
            let (reason, note) = match (policy, done) {
                (IntegrationDeletionPolicy::Orphan, _) => {
                    ("Orphaned", format!("left {subject} as it is"))
                }
                (IntegrationDeletionPolicy::Delete, true) => {
                    ("Deleted", format!("deleted {subject}"))
                }
                (IntegrationDeletionPolicy::Delete, false) => {
                    ("AlreadyGone", format!("{subject} was already gone"))
                }
            };
            report_cleanup(ctx, &regarding, reason, note).await;
            Ok(Action::await_change())
        }
        Err(error) => {
            record_sync(
                ctx,
                api,
                integration,
                integration.status.as_ref(),
                &Outcome::deletion_blocked(&error, &subject, policy),
                &[],
                std::convert::identity,
            )
            .await?;
            Err(error)
        }
    }
}

/// Apply the deletion policy; `Ok(true)` when the remote was deleted.
async fn remove(
    integration: &Integration,
    namespace: &str,
    ctx: &Context,
    policy: IntegrationDeletionPolicy,
) -> Result<bool> {
    let recorded = recorded_remote_id(integration, integration.status.as_ref());
    if policy == IntegrationDeletionPolicy::Orphan || recorded.is_none() {
        return Ok(false);
    }
    let client = connect(
        &ctx.client,
        namespace,
        &integration.spec.connection_ref,
        &ctx.settings.api,
    )
    .await?;
    let location = integration.spec.location();
    let observed = match remote::observe_integrations(&client, &location, |_| None).await {
        Err(sigsci::Error::NotFound { .. }) => return Ok(false),
        other => other?,
    };
    let address = sigsci_config::Address::new(KIND, Some(namespace), integration.name_any());
    let change =
        plan_integration_removal(&address, &location, recorded.as_deref(), &observed, policy);
    match change {
        Some(change) => {
            remote::execute(&client, &change).await?;
            Ok(true)
        }
        None => Ok(false),
    }
}

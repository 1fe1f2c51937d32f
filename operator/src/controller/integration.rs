//! `Integration` reconciler: create the site or corp integration, patch it to the spec (a new
//! URL is sent to the same integration, so the old address stops being notified), and delete it
//! (only the recorded id) on removal unless orphaned. `ObserveOnly` never writes and reports how
//! the integration differs; of two objects declaring one integration, the older holds it.

use std::collections::BTreeMap;
use std::sync::Arc;

use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::{Api, Resource, ResourceExt};
use sigsci_config::integration::{find_integration, plan_integration_against};
use sigsci_config::{
    IntegrationDeletionPolicy, ManagementPolicy, Sensitive, plan_integration_removal,
};

use super::{
    Context, Synced, applied_before, claim, converge, finalizer_with_claim, holds, managed_outcome,
    record_failure, record_managed, recorded_remote_id, report_cleanup, succeeded,
};
use crate::connect::{client_for, connect, connection_target, secret_value};
use crate::crd::Integration;
use crate::crd::common::{
    CLAIM_ANNOTATION, FIELDS_DIGEST_ANNOTATION, FINALIZER, REMOTE_ID_ANNOTATION,
};
use crate::status::Outcome;
use crate::{Error, Result, remote};

pub const KIND: &str = "Integration";

pub async fn reconcile(integration: Arc<Integration>, ctx: Arc<Context>) -> Result<Action> {
    let _timer = ctx.metrics.reconcile(KIND);
    let namespace = integration
        .namespace()
        .ok_or(Error::MissingMetadata("namespace"))?;
    let api: Api<Integration> = Api::namespaced(ctx.client.clone(), &namespace);
    if finalizer_with_claim(integration.as_ref()) {
        let action = apply(&api, &integration, &namespace, &ctx).await?;
        succeeded(&ctx, integration.as_ref());
        return Ok(action);
    }
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

async fn apply(
    api: &Api<Integration>,
    integration: &Integration,
    namespace: &str,
    ctx: &Context,
) -> Result<Action> {
    let result = sync(integration, namespace, ctx).await;
    let subject = subject(integration);
    let policy = integration.spec.management_policy;
    let (outcome, annotations, drift) = match &result {
        Ok((synced, fields_digest)) => {
            // Fields are recorded only when sent: ObserveOnly sends nothing.
            let digest = Some(fields_digest.clone())
                .filter(|digest| !digest.is_empty() && policy == ManagementPolicy::Full);
            let annotations = match &synced.remote_id {
                Some(id) if policy == ManagementPolicy::Full => vec![
                    (REMOTE_ID_ANNOTATION, Some(id.clone())),
                    (FIELDS_DIGEST_ANNOTATION, digest),
                ],
                Some(id) => vec![(REMOTE_ID_ANNOTATION, Some(id.clone()))],
                None => vec![],
            };
            (
                managed_outcome(&subject, policy, synced),
                annotations,
                Some(&synced.drift),
            )
        }
        Err(error) => (Outcome::failed(error), vec![], None),
    };
    record_managed(
        ctx,
        api,
        integration,
        integration.status.as_ref(),
        &outcome,
        &annotations,
        drift,
        (KIND, &subject),
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
        let value = secret_value(
            &ctx.reader(KIND),
            namespace,
            &reference.name,
            &reference.key,
        )
        .await?;
        values.insert((reference.name.clone(), reference.key.clone()), value);
    }
    Ok(values)
}

/// The sync, and the digest of the fields the spec declares.
async fn sync(
    integration: &Integration,
    namespace: &str,
    ctx: &Context,
) -> Result<(Synced, String)> {
    let status = integration.status.as_ref().map(|s| &s.sync);
    let recorded = recorded_remote_id(integration, status);
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
    let target = connection_target(
        &ctx.reader(KIND),
        namespace,
        &integration.spec.connection_ref,
    )
    .await?;
    let key = desired.claim_key(&target.api_url, &target.corp);
    let annotations = integration.annotations();
    // Fields are write-only: what we last sent is known only for the recorded id. Anything else
    // (an adopted integration) counts as having none, so declared fields get sent once.
    let recorded_digest = annotations
        .get(FIELDS_DIGEST_ANNOTATION)
        .cloned()
        .unwrap_or_default();
    let fields_digest = desired.settings().fields_digest();
    // A new URL (the claim names it) or new fields come from the spec or a Secret: applying
    // them is an update, not a correction of drift.
    let settled = applied_before(integration, status)
        && annotations.get(CLAIM_ANNOTATION) == Some(&key)
        && recorded_digest == fields_digest;
    if let Some(holder) = claim(ctx, integration, &key).await?.holder {
        return Err(Error::Conflict {
            subject: subject(integration),
            holder,
        });
    }
    let client = client_for(&ctx.reader(KIND), &target, &ctx.settings.api).await?;
    let policy = integration.spec.management_policy;
    let observed = remote::observe_integrations(&client, &desired.location, |id| {
        match policy {
            // Nothing was sent, so nothing is known about the fields: not compared.
            ManagementPolicy::ObserveOnly => None,
            ManagementPolicy::Full if recorded.as_deref() == Some(id) => {
                Some(recorded_digest.clone())
            }
            ManagementPolicy::Full => Some(String::new()),
        }
    })
    .await?;
    let current = find_integration(&desired, &observed, &Default::default());
    let found = current.map(|found| found.id.clone());
    let planned = plan_integration_against(&desired, current);
    let synced = converge(&client, policy, planned, found, recorded, settled).await?;
    Ok((synced, fields_digest))
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
    ctx.metrics
        .set_drifted(KIND, &super::object_key(integration), false);
    let recorded = recorded_remote_id(integration, integration.status.as_ref().map(|s| &s.sync));
    let result =
        match (integration.spec.management_policy, policy) {
            (ManagementPolicy::ObserveOnly, _) => Ok((
                "Orphaned",
                format!("left {subject} as it is: ObserveOnly never writes"),
            )),
            (_, IntegrationDeletionPolicy::Orphan) => {
                Ok(("Orphaned", format!("left {subject} as it is")))
            }
            (ManagementPolicy::Full, IntegrationDeletionPolicy::Delete) => {
                match (
                    holds(ctx, integration, recorded.as_deref()).await,
                    &recorded,
                ) {
                    (Ok(true), Some(id)) => remove(integration, namespace, ctx, policy, id)
                        .await
                        .map(|deleted| {
                            if deleted {
                                ("Deleted", format!("deleted {subject}"))
                            } else {
                                ("AlreadyGone", format!("{subject} was already gone"))
                            }
                        }),
                    (Ok(_), _) => Ok((
                        "NotHeld",
                        format!("{subject} is not held by this object; left it"),
                    )),
                    (Err(error), _) => Err(error),
                }
            }
        };
    match result {
        Ok((reason, note)) => {
            report_cleanup(ctx, &regarding, reason, note).await;
            Ok(Action::await_change())
        }
        Err(error) => {
            record_failure(
                ctx,
                api,
                integration,
                integration.status.as_ref(),
                &Outcome::deletion_blocked(&error, &subject, policy),
                (KIND, &subject),
            )
            .await?;
            Err(error)
        }
    }
}

/// Delete the `recorded` integration this object holds; `Ok(true)` when it was there.
async fn remove(
    integration: &Integration,
    namespace: &str,
    ctx: &Context,
    policy: IntegrationDeletionPolicy,
    recorded: &str,
) -> Result<bool> {
    let client = connect(
        &ctx.reader(KIND),
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
    let change = plan_integration_removal(&address, &location, Some(recorded), &observed, policy);
    match change {
        Some(change) => {
            remote::execute(&client, &change).await?;
            Ok(true)
        }
        None => Ok(false),
    }
}

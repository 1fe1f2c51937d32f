//! `Integration` reconciler: create the site or corp integration, patch it to the spec, and
//! delete it (only the recorded id) on removal unless orphaned. A new URL is sent to the same
//! integration, or, when another integration has that URL already, that one is used and the old
//! one deleted unless another object declares it: the old address never stays notifying on this
//! object's behalf. `ObserveOnly` never writes and reports how the integration differs; of two
//! objects declaring one integration, the older holds it.

use std::collections::BTreeMap;
use std::sync::Arc;

use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::{Api, Resource, ResourceExt};
use sigsci_config::integration::{
    DesiredIntegration, ObservedIntegration, find_integration, plan_integration_against,
};
use sigsci_config::{
    IntegrationDeletionPolicy, ManagementPolicy, Sensitive, plan_integration_removal,
};

use super::{
    Context, Synced, applied_before, claim, converge, finalizer_with_claim, holds, managed_outcome,
    other_claimant, publish, record_failure, record_managed, recorded_remote_id, report_cleanup,
    succeeded,
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
    let mut released = false;
    let result = sync(integration, namespace, ctx, &mut released).await;
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
        // The integration held before was deleted or left to another object: forget its id.
        Err(error) if released => (
            Outcome::failed(error),
            vec![
                (REMOTE_ID_ANNOTATION, None),
                (FIELDS_DIGEST_ANNOTATION, None),
            ],
            None,
        ),
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

/// The sync, and the digest of the fields the spec declares. `released` is set when the
/// integration recorded before is no longer this object's (deleted, or left to another object).
async fn sync(
    integration: &Integration,
    namespace: &str,
    ctx: &Context,
    released: &mut bool,
) -> Result<(Synced, String)> {
    let status = integration.status.as_ref().map(|s| &s.sync);
    let recorded = recorded_remote_id(integration, status);
    let secrets = resolve_secrets(ctx, namespace, integration).await?;
    let mut desired = integration
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
    let policy = integration.spec.management_policy;
    let claimed = claim(ctx, integration, &key).await?;
    let conflict = claimed.holder.clone().map(|holder| Error::Conflict {
        subject: subject(integration),
        holder,
    });
    let conflict = match conflict {
        // Without an integration of its own to let go of, a conflicting object reads nothing.
        Some(conflict) if policy == ManagementPolicy::ObserveOnly || recorded.is_none() => {
            return Err(conflict);
        }
        other => other,
    };
    let client = client_for(&ctx.reader(KIND), &target, &ctx.settings.api).await?;
    let observe = || {
        remote::observe_integrations(&client, &desired.location, |id| {
            match policy {
                // Nothing was sent, so nothing is known about the fields: not compared.
                ManagementPolicy::ObserveOnly => None,
                ManagementPolicy::Full if recorded.as_deref() == Some(id) => {
                    Some(recorded_digest.clone())
                }
                ManagementPolicy::Full => Some(String::new()),
            }
        })
    };
    // The integration held before, when the spec now declares another one (a new URL).
    let moved = |observed: &[ObservedIntegration]| {
        observed.iter().position(|old| {
            policy == ManagementPolicy::Full
                && recorded.as_deref() == Some(old.id.as_str())
                && old.kind == desired.kind.as_str()
                && identity_of(&desired, old, &target.api_url, &target.corp) != key
        })
    };
    let mut observed = observe().await?;
    if moved(&observed).is_some() {
        // Which integration the new URL names decides what is deleted: not from a listing
        // that may predate it.
        remote::forget_integrations(&client, &desired.location).await;
        observed = observe().await?;
    }
    let previous = moved(&observed).map(|index| observed[index].clone());
    let Some(previous) = previous else {
        if let Some(conflict) = conflict {
            // Both claimed at once and both made the integration: this object's copy goes once
            // the holder has recorded another one; the one the holder adopted is only forgotten.
            if let (Some(own), Some(held)) = (&recorded, &claimed.holder_remote_id) {
                if own != held {
                    remote::forget_integrations(&client, &desired.location).await;
                    let observed = observe().await?;
                    let holder = claimed.holder.as_deref().unwrap_or_default();
                    let why = format!("{holder} holds another one (id {held}) with the same URL");
                    retire(ctx, integration, &client, &desired, &observed, own, &why).await?;
                }
                *released = true;
            }
            return Err(conflict);
        }
        let current = find_integration(&desired, &observed, &Default::default());
        let found = current.map(|found| found.id.clone());
        let planned = plan_integration_against(&desired, current);
        let synced = converge(&client, policy, planned, found, recorded.clone(), settled).await?;
        // Copies (same type and URL) notify twice: made by hand, or by two objects that
        // claimed at the same moment and each created it before seeing the other.
        let copy = |listed: &ObservedIntegration, held: &str| {
            listed.id != held
                && listed.kind == desired.kind.as_str()
                && identity_of(&desired, listed, &target.api_url, &target.corp) == key
        };
        if let Some(held) = synced.remote_id.as_deref()
            && policy == ManagementPolicy::Full
            && observed.iter().any(|listed| copy(listed, held))
        {
            remote::forget_integrations(&client, &desired.location).await;
            let observed = observe().await?;
            let why = format!(
                "a copy of the {} it holds (id {held})",
                subject(integration)
            );
            for listed in observed.iter().filter(|listed| copy(listed, held)) {
                retire(
                    ctx,
                    integration,
                    &client,
                    &desired,
                    &observed,
                    &listed.id,
                    &why,
                )
                .await?;
            }
        }
        return Ok((synced, fields_digest));
    };
    // Another object declaring the old URL takes the old integration over: left to it.
    let old_key = identity_of(&desired, &previous, &target.api_url, &target.corp);
    let heir = other_claimant(ctx, integration, &old_key).await?;
    // Matched by the new URL only: the recorded id is the old integration.
    desired.remote_id = None;
    let existing = find_integration(&desired, &observed, &Default::default())
        .filter(|existing| existing.id != previous.id);
    // Sent to the same integration when the new URL names none that exists (no duplicate, and
    // the old address stops being notified at once); else that one is used and the old deleted.
    let (current, retired) = match (&heir, &conflict, existing) {
        (Some(_), _, existing) => (existing, None),
        (None, None, None) => (Some(&previous), None),
        (None, _, existing) => (existing, Some(&previous)),
    };
    // The new one in place first, then the old one deleted: no moment without either.
    let synced = match conflict {
        Some(conflict) => Err(conflict),
        None => {
            let found = current.map(|found| found.id.clone());
            let planned = plan_integration_against(&desired, current);
            Ok(converge(&client, policy, planned, found, recorded, settled).await?)
        }
    };
    let subject = subject(integration);
    let regarding = integration.object_ref(&());
    if let Some(old) = retired {
        let why = "the spec names another one, or another object holds it";
        retire(ctx, integration, &client, &desired, &observed, &old.id, why).await?;
    } else if let Some(heir) = &heir {
        let note = format!(
            "left the {subject} held before (id {}) to {heir}, which declares it too",
            previous.id
        );
        tracing::info!(object = %super::object_key(integration), "{note}");
        publish(ctx, &regarding, EventType::Normal, "Released", "Sync", note).await;
    }
    *released = true;
    synced.map(|synced| (synced, fields_digest))
}

/// Delete the integration `id`, one this object does not hold (any more), if it still exists
/// (event `Replaced`, saying `why`).
async fn retire(
    ctx: &Context,
    integration: &Integration,
    client: &impl remote::Endpoint,
    desired: &DesiredIntegration,
    observed: &[ObservedIntegration],
    id: &str,
    why: &str,
) -> Result<()> {
    let namespace = integration.namespace();
    let address = sigsci_config::Address::new(KIND, namespace.as_deref(), integration.name_any());
    let removal = plan_integration_removal(
        &address,
        &desired.location,
        Some(id),
        observed,
        IntegrationDeletionPolicy::Delete,
    );
    // Gone already (deleted by hand): nothing to do or tell.
    let Some(change) = removal else {
        return Ok(());
    };
    remote::execute(client, &change).await?;
    let note = format!("deleted the {} with id {id}: {why}", subject(integration));
    tracing::info!(object = %super::object_key(integration), "{note}");
    let regarding = integration.object_ref(&());
    publish(ctx, &regarding, EventType::Normal, "Replaced", "Sync", note).await;
    Ok(())
}

/// The claim key of the integration `desired` would be with the URL `observed` has.
fn identity_of(
    desired: &DesiredIntegration,
    observed: &ObservedIntegration,
    api_url: &str,
    corp: &str,
) -> String {
    let mut other = desired.clone();
    other.url = observed.url.clone();
    other.claim_key(api_url, corp)
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
    let namespace = integration.namespace();
    let address = sigsci_config::Address::new(KIND, namespace.as_deref(), integration.name_any());
    let change = plan_integration_removal(&address, &location, Some(recorded), &observed, policy);
    match change {
        Some(change) => {
            remote::execute(&client, &change).await?;
            Ok(true)
        }
        None => Ok(false),
    }
}

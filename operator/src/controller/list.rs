//! `SigSciList` reconciler: keep a site or corp list's entries as declared, as a set. One PATCH
//! adds and removes only the difference (`sigsci_config::plan_list`), expired entries go at
//! their expiry (the requeue is set for it), and undeclared entries are drift: reported, and
//! removed under `managementPolicy: Full`. Two objects declaring one list (through any connections
//! to the same API and corp): the older holds it (`super::claim`).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::{Api, Resource, ResourceExt};
use sigsci_config::list::{ListReport, find_list, plan_list, plan_list_removal};
use sigsci_config::model::claim_digest;
use sigsci_config::{Change, IntegrationDeletionPolicy, ManagementPolicy};

use super::{
    Context, claim, finalizer_with_claim, holds, record_sync, recorded_remote_id, report_cleanup,
    succeeded,
};
use crate::connect::{client_for, connect, connection_target};
use crate::crd::common::{FINALIZER, REMOTE_ID_ANNOTATION};
use crate::crd::list::{RemoteEntry, from_utc, to_utc};
use crate::crd::{ListStatus, SigSciList};
use crate::status::{Outcome, reason};
use crate::{Error, Result, remote};

pub const KIND: &str = "SigSciList";

pub async fn reconcile(list: Arc<SigSciList>, ctx: Arc<Context>) -> Result<Action> {
    let _timer = ctx.metrics.reconcile(KIND);
    let namespace = list
        .namespace()
        .ok_or(Error::MissingMetadata("namespace"))?;
    let api: Api<SigSciList> = Api::namespaced(ctx.client.clone(), &namespace);
    if finalizer_with_claim(list.as_ref()) {
        let action = apply(&api, &list, &namespace, &ctx).await?;
        succeeded(&ctx, list.as_ref());
        return Ok(action);
    }
    let action = finalizer(&api, FINALIZER, list.clone(), |event| async {
        match event {
            Finalizer::Apply(list) => apply(&api, &list, &namespace, &ctx).await,
            Finalizer::Cleanup(list) => cleanup(&api, &list, &namespace, &ctx).await,
        }
    })
    .await
    .map_err(|error| Error::Finalizer(Box::new(error)))?;
    succeeded(&ctx, list.as_ref());
    Ok(action)
}

struct Synced {
    change: Option<Change>,
    remote_id: Option<String>,
    adopted: bool,
    report: ListReport,
}

async fn apply(
    api: &Api<SigSciList>,
    list: &SigSciList,
    namespace: &str,
    ctx: &Context,
) -> Result<Action> {
    let now = to_utc(&ctx.now()).unwrap_or_else(Utc::now);
    let result = sync(list, namespace, ctx, now).await;
    let current = list.status.as_ref();
    match &result {
        Ok(synced) => {
            let annotations = match &synced.remote_id {
                Some(id) => vec![(REMOTE_ID_ANNOTATION, Some(id.clone()))],
                None => vec![],
            };
            let outcome = outcome(list, synced);
            let report = &synced.report;
            record_sync(ctx, api, list, current, &outcome, &annotations, |sync| {
                ListStatus {
                    sync,
                    active_entries: i64::try_from(report.active).ok(),
                    expired_entries: i64::try_from(report.expired).ok(),
                    next_expiry: report.next_expiry.and_then(from_utc),
                    drift: report.drift.iter().cloned().map(RemoteEntry).collect(),
                }
            })
            .await?;
        }
        Err(error) => {
            // The counts stay as last seen: a failed read says nothing new about the list.
            let previous = current.cloned().unwrap_or_default();
            record_sync(
                ctx,
                api,
                list,
                current,
                &Outcome::failed(error),
                &[],
                |sync| ListStatus { sync, ..previous },
            )
            .await?;
        }
    }
    result.map(|synced| Action::requeue(next_visit(&synced.report, now, ctx.settings.resync)))
}

/// The periodic resync, or the next expiry if that comes first: an expired entry must leave the
/// list at its time, not up to a resync later.
fn next_visit(report: &ListReport, now: DateTime<Utc>, resync: Duration) -> Duration {
    report
        .next_expiry
        .and_then(|expiry| (expiry - now).to_std().ok())
        .map_or(resync, |until| until.min(resync))
}

async fn sync(
    list: &SigSciList,
    namespace: &str,
    ctx: &Context,
    now: DateTime<Utc>,
) -> Result<Synced> {
    let recorded = recorded_remote_id(list, list.status.as_ref().map(|s| &s.sync));
    let desired = list.desired(namespace, &list.name_any(), recorded.clone());
    desired.validate().map_err(Error::InvalidSpec)?;
    let target = connection_target(&ctx.reader(KIND), namespace, &list.spec.connection_ref).await?;
    let location = desired.location.to_string();
    let key = claim_digest(
        &target.api_url,
        &target.corp,
        &["list", &location, &desired.name],
    );
    if let Some(holder) = claim(ctx, list, &key).await?.holder {
        return Err(Error::Conflict {
            subject: subject(list),
            holder,
        });
    }
    let client = client_for(&ctx.reader(KIND), &target, &ctx.settings.api).await?;
    let observed = remote::observe_lists(&client, &desired.location).await?;
    let current = find_list(&desired, &observed);
    let report = desired.report(current, now);
    let found_id = current.map(|found| found.id.clone());
    match plan_list(&desired, current, now).map_err(Error::InvalidSpec)? {
        Some(change) => {
            let applied = remote::execute(&client, &change).await?;
            Ok(Synced {
                change: Some(change),
                remote_id: applied.remote_id,
                adopted: false,
                report,
            })
        }
        None => Ok(Synced {
            adopted: found_id.is_some() && recorded != found_id,
            change: None,
            remote_id: found_id,
            report,
        }),
    }
}

/// The condition and Event of a successful reconcile; `ObserveOnly` reports what it leaves.
fn outcome(list: &SigSciList, synced: &Synced) -> Outcome {
    let subject = subject(list);
    if list.spec.management_policy == ManagementPolicy::Full {
        return Outcome::synced(
            &subject,
            synced.change.as_ref(),
            synced.adopted,
            synced.remote_id.clone(),
        );
    }
    let report = &synced.report;
    let message = match &synced.remote_id {
        None => format!("{subject} does not exist; ObserveOnly does not create it"),
        Some(id) if report.missing.is_empty() && report.unwanted.is_empty() => {
            format!("{subject} (id {id}) matches the spec")
        }
        Some(id) => format!(
            "{subject} (id {id}) differs, left as it is (ObserveOnly): missing {:?}, not \
             wanted {:?}",
            report.missing, report.unwanted
        ),
    };
    Outcome::Succeeded {
        reason: reason::OBSERVED,
        message,
        wrote: false,
        remote_id: synced.remote_id.clone(),
    }
}

/// How events and conditions name the remote list.
fn subject(list: &SigSciList) -> String {
    format!("{} list {:?}", list.spec.location(), list.spec.name)
}

async fn cleanup(
    api: &Api<SigSciList>,
    list: &SigSciList,
    namespace: &str,
    ctx: &Context,
) -> Result<Action> {
    let subject = subject(list);
    let regarding = list.object_ref(&());
    let recorded = recorded_remote_id(list, list.status.as_ref().map(|s| &s.sync));
    let (policy, management) = (list.spec.deletion_policy, list.spec.management_policy);
    let held = match (policy, management) {
        (IntegrationDeletionPolicy::Delete, ManagementPolicy::Full) => {
            holds(ctx, list, recorded.as_deref()).await?
        }
        _ => false,
    };
    let (reason, note) = match (policy, management, recorded.filter(|_| held)) {
        (IntegrationDeletionPolicy::Orphan, ..) => ("Orphaned", format!("left {subject} as it is")),
        (_, ManagementPolicy::ObserveOnly, _) => (
            "Orphaned",
            format!("left {subject} as it is: ObserveOnly never writes"),
        ),
        // Never created or adopted, or held by an older object: not ours to delete.
        (IntegrationDeletionPolicy::Delete, ManagementPolicy::Full, None) => (
            "NotHeld",
            format!("{subject} is not held by this object; left it"),
        ),
        (IntegrationDeletionPolicy::Delete, ManagementPolicy::Full, Some(id)) => {
            match delete(list, namespace, ctx, &id).await {
                Ok(()) => ("Deleted", format!("deleted {subject} (id {id})")),
                Err(error) => {
                    let previous = list.status.clone().unwrap_or_default();
                    let policy = list.spec.deletion_policy;
                    record_sync(
                        ctx,
                        api,
                        list,
                        list.status.as_ref(),
                        &Outcome::deletion_blocked(&error, &subject, policy),
                        &[],
                        |sync| ListStatus { sync, ..previous },
                    )
                    .await?;
                    return Err(error);
                }
            }
        }
    };
    report_cleanup(ctx, &regarding, reason, note).await;
    Ok(Action::await_change())
}

/// Delete the recorded list; one already gone counts as deleted.
async fn delete(list: &SigSciList, namespace: &str, ctx: &Context, id: &str) -> Result<()> {
    let client = connect(
        &ctx.reader(KIND),
        namespace,
        &list.spec.connection_ref,
        &ctx.settings.api,
    )
    .await?;
    let desired = list.desired(namespace, &list.name_any(), Some(id.to_string()));
    remote::execute(&client, &plan_list_removal(&desired, id)).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn the_next_visit_is_the_next_expiry_when_it_comes_before_the_resync() {
        let now = Utc
            .with_ymd_and_hms(2026, 12, 2, 4, 0, 0)
            .single()
            .expect("time");
        let resync = Duration::from_secs(300);
        let report = |next: Option<i64>| ListReport {
            next_expiry: next.map(|seconds| now + chrono::Duration::seconds(seconds)),
            ..ListReport::default()
        };
        assert_eq!(next_visit(&report(None), now, resync), resync);
        assert_eq!(
            next_visit(&report(Some(7)), now, resync),
            Duration::from_secs(7)
        );
        assert_eq!(next_visit(&report(Some(3600)), now, resync), resync);
    }
}

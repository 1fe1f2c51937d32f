//! `SigSciList` end to end: entries kept as a set with PATCH additions/deletions, expiry at its
//! time, drift, deletion policies and two objects claiming one list.

use crate::common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{
    apply, cleanup, condition, eventually, is_condition, sim_client, sim_connection,
    start_operator, start_operator_with, test_settings, wait_gone, wait_until,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::DeleteParams;
use sigsci::{EntryChanges, ListBody, ListScope, ListUpdate};
use sigsci_config::{IntegrationDeletionPolicy, IntegrationScope, ListType, ManagementPolicy};
use sigsci_operator::crd::common::REMOTE_ID_ANNOTATION;
use sigsci_operator::crd::list::RemoteEntry;
use sigsci_operator::crd::{ListEntry, SigSciList, SigSciListSpec};

const TOKEN: &str = "sim-token";
const SITE: ListScope<'static> = ListScope::Site("site-1");
const PATCH: &str = "PATCH /corps/{corp}/sites/{site}/lists/{id}";
const PUT: &str = "PUT /corps/{corp}/sites/{site}/lists/{id}";
const POST: &str = "POST /corps/{corp}/sites/{site}/lists";
const DELETE: &str = "DELETE /corps/{corp}/sites/{site}/lists/{id}";

fn entry(value: &str, expires: Option<Timestamp>) -> ListEntry {
    ListEntry {
        value: value.into(),
        expires: expires.map(Time),
        comment: Some("test".into()),
    }
}

fn spec(name: &str, entries: Vec<ListEntry>) -> SigSciListSpec {
    SigSciListSpec {
        connection_ref: sim_connection(),
        scope: IntegrationScope::Site,
        site: Some("site-1".into()),
        name: name.into(),
        list_type: ListType::Ip,
        description: "blocked by tests".into(),
        entries,
        deletion_policy: IntegrationDeletionPolicy::Delete,
        management_policy: ManagementPolicy::Full,
    }
}

/// Whole seconds from now: the API server keeps RFC 3339 times to the second.
fn in_seconds(seconds: i64) -> Timestamp {
    Timestamp::from_second(Timestamp::now().as_second() + seconds).expect("timestamp")
}

fn list_ready(list: &SigSciList) -> bool {
    list.status.as_ref().is_some_and(|s| {
        is_condition(&s.sync.conditions, "Ready", "True")
            && s.sync.observed_generation == list.metadata.generation
    })
}

async fn remote_entries(client: &sigsci::Client, id: &str) -> Option<BTreeSet<String>> {
    match client.get_list(SITE, id).await {
        Ok(list) => Some(list.entries.into_iter().collect()),
        Err(sigsci::Error::NotFound { .. }) => None,
        Err(error) => panic!("get list {id}: {error}"),
    }
}

fn set(values: &[&str]) -> BTreeSet<String> {
    values.iter().map(|v| v.to_string()).collect()
}

fn calls(sim: &sigsci_sim::RunningSim, call: &str) -> u64 {
    sim.state.call_log().calls.get(call).copied().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_are_kept_as_a_set_and_expire_at_their_time() {
    let (admin, namespace, sim) = common::connected_namespace("list-expiry", TOKEN).await;
    // A resync far away: only the requeue at the next expiry can remove the entry on time.
    let settings = sigsci_operator::controller::Settings {
        resync: Duration::from_secs(600),
        ..test_settings()
    };
    let operator = start_operator_with(&namespace, None, "list-expiry", settings).await;
    let truth = sim_client(&sim, TOKEN);
    let lists: Api<SigSciList> = Api::namespaced(admin.clone(), &namespace);

    let expires = in_seconds(12);
    let declared = vec![
        entry("198.51.100.0/24", None),
        entry("192.0.2.10", Some(expires)),
        entry("203.0.113.5", Some(in_seconds(-3600))),
    ];
    apply(
        &admin,
        &namespace,
        &SigSciList::new("blocked", spec("blocked-ips", declared.clone())),
    )
    .await;
    let ready = wait_until(&lists, "blocked", "Ready", list_ready).await;
    let status = ready.status.expect("status");
    assert_eq!(status.sync.remote_id.as_deref(), Some("site.blocked-ips"));
    assert_eq!(
        (status.active_entries, status.expired_entries),
        (Some(2), Some(1))
    );
    assert_eq!(status.next_expiry, Some(Time(expires)));
    assert!(status.drift.is_empty());
    assert_eq!(calls(&sim, POST), 1, "created once");
    assert_eq!(
        remote_entries(&truth, "site.blocked-ips").await,
        Some(set(&["198.51.100.0/24", "192.0.2.10"])),
        "created with the active entries only"
    );

    // One entry added, one removed in the spec: one PATCH with the difference, no full rewrite.
    let (patches, puts) = (calls(&sim, PATCH), calls(&sim, PUT));
    let mut changed = declared.clone();
    changed.remove(0);
    changed.push(entry("2001:db8::/32", None));
    apply(
        &admin,
        &namespace,
        &SigSciList::new("blocked", spec("blocked-ips", changed)),
    )
    .await;
    wait_until(&lists, "blocked", "Ready for generation 2", |l| {
        list_ready(l) && l.metadata.generation == Some(2)
    })
    .await;
    assert_eq!(
        remote_entries(&truth, "site.blocked-ips").await,
        Some(set(&["192.0.2.10", "2001:db8::/32"]))
    );
    assert!(
        Timestamp::now() < expires,
        "the expiring entry was checked while still active"
    );
    assert_eq!(calls(&sim, PATCH), patches + 1, "one PATCH");
    assert_eq!(calls(&sim, PUT), puts, "never a full replacement");

    // The expiring entry leaves the list at its time, long before the resync.
    let removed = eventually("the expired entry removed", || async {
        let entries = remote_entries(&truth, "site.blocked-ips").await?;
        (!entries.contains("192.0.2.10")).then_some((entries, Timestamp::now()))
    })
    .await;
    assert_eq!(removed.0, set(&["2001:db8::/32"]), "only the expired entry");
    assert!(removed.1 >= expires, "not before its expiry");
    let late = removed.1.duration_since(expires);
    assert!(
        late < k8s_openapi::jiff::SignedDuration::from_secs(5),
        "removed {late:?} after its expiry"
    );
    let after = wait_until(&lists, "blocked", "counted as expired", |l| {
        l.status
            .as_ref()
            .is_some_and(|s| s.expired_entries == Some(2))
    })
    .await
    .status
    .expect("status");
    assert_eq!(after.active_entries, Some(1));
    assert_eq!(after.next_expiry, None);
    assert_eq!(calls(&sim, PUT), puts, "never a full replacement");

    cleanup(&admin, &namespace).await;
    operator.stop().await.expect("operator stops cleanly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_is_removed_under_full_and_only_reported_under_observe_only() {
    let (admin, namespace, sim) = common::connected_namespace("list-drift", TOKEN).await;
    let truth = sim_client(&sim, TOKEN);
    // Existing lists of the same names: adopted, not created again.
    for (name, entries) in [
        ("full", vec!["10.0.0.1", "192.0.2.66"]),
        ("observed", vec!["10.0.0.1", "192.0.2.66"]),
    ] {
        truth
            .create_list(
                SITE,
                &ListBody {
                    name: name.into(),
                    list_type: "ip".into(),
                    description: "blocked by tests".into(),
                    entries: entries.into_iter().map(String::from).collect(),
                },
            )
            .await
            .expect("seed list");
    }
    let operator = start_operator(&namespace, None, "list-drift").await;
    let lists: Api<SigSciList> = Api::namespaced(admin.clone(), &namespace);
    let mut observed = spec(
        "observed",
        vec![entry("10.0.0.1", None), entry("10.0.0.2", None)],
    );
    observed.management_policy = ManagementPolicy::ObserveOnly;
    apply(&admin, &namespace, &SigSciList::new("observed", observed)).await;
    let ready = wait_until(&lists, "observed", "Ready", list_ready).await;
    let status = ready.status.expect("status");
    assert_eq!(status.sync.remote_id.as_deref(), Some("site.observed"));
    assert_eq!(status.drift, vec![RemoteEntry("192.0.2.66".into())]);
    let ready_condition = condition(&status.sync.conditions, "Ready").expect("Ready");
    assert_eq!(ready_condition.reason, "Observed");
    assert!(
        ready_condition.message.contains("10.0.0.2"),
        "{ready_condition:?}"
    );

    apply(
        &admin,
        &namespace,
        &SigSciList::new("full", spec("full", vec![entry("10.0.0.1", None)])),
    )
    .await;
    let adopted = wait_until(&lists, "full", "Ready", list_ready).await;
    assert_eq!(
        adopted
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(REMOTE_ID_ANNOTATION))
            .map(String::as_str),
        Some("site.full")
    );
    assert_eq!(
        remote_entries(&truth, "site.full").await,
        Some(set(&["10.0.0.1"])),
        "the drift of the adopted list removed"
    );

    // An entry added through the API behind the operator's back: removed at the next resync.
    truth
        .update_list(
            SITE,
            "site.full",
            &ListUpdate {
                description: None,
                entries: EntryChanges {
                    additions: vec!["198.51.100.7".into()],
                    deletions: vec![],
                },
            },
        )
        .await
        .expect("add behind the operator's back");
    eventually("the drift removed", || async {
        (remote_entries(&truth, "site.full").await? == set(&["10.0.0.1"])).then_some(())
    })
    .await;

    // ObserveOnly wrote nothing across several resyncs (every 2 s), and still reports it.
    let writes = |sim: &sigsci_sim::RunningSim| {
        [PATCH, PUT, POST, DELETE]
            .iter()
            .map(|call| calls(sim, call))
            .sum::<u64>()
    };
    let before = writes(&sim);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        writes(&sim),
        before,
        "in sync and observed lists are not written"
    );
    assert_eq!(
        remote_entries(&truth, "site.observed").await,
        Some(set(&["10.0.0.1", "192.0.2.66"]))
    );

    // Deleting an ObserveOnly object never deletes the list.
    lists
        .delete("observed", &DeleteParams::default())
        .await
        .expect("delete observed");
    wait_gone(&lists, "observed").await;
    assert!(remote_entries(&truth, "site.observed").await.is_some());

    cleanup(&admin, &namespace).await;
    operator.stop().await.expect("operator stops cleanly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_claim_is_a_conflict_and_deletion_policies_apply() {
    let (admin, namespace, sim) = common::connected_namespace("list-claims", TOKEN).await;
    let operator = start_operator(&namespace, None, "list-claims").await;
    let truth = sim_client(&sim, TOKEN);
    let lists: Api<SigSciList> = Api::namespaced(admin.clone(), &namespace);

    apply(
        &admin,
        &namespace,
        &SigSciList::new("first", spec("shared", vec![entry("10.0.0.1", None)])),
    )
    .await;
    wait_until(&lists, "first", "Ready", list_ready).await;
    apply(
        &admin,
        &namespace,
        &SigSciList::new("second", spec("shared", vec![entry("10.0.0.2", None)])),
    )
    .await;
    let refused = wait_until(&lists, "second", "in conflict", |l| {
        l.status.as_ref().is_some_and(|s| {
            condition(&s.sync.conditions, "Ready")
                .is_some_and(|c| c.status == "False" && c.reason == "Conflict")
        })
    })
    .await;
    let status = refused.status.expect("status");
    let message = &condition(&status.sync.conditions, "Ready")
        .expect("Ready")
        .message;
    assert!(
        message.contains(&format!("{namespace}/first")),
        "names the holder: {message}"
    );
    assert_eq!(status.sync.remote_id, None);
    // The holder's next resyncs keep the list as it declares it: the second object wrote nothing.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        remote_entries(&truth, "site.shared").await,
        Some(set(&["10.0.0.1"]))
    );

    // The conflicting object goes without touching the list it never held.
    lists
        .delete("second", &DeleteParams::default())
        .await
        .expect("delete second");
    wait_gone(&lists, "second").await;
    assert_eq!(
        remote_entries(&truth, "site.shared").await,
        Some(set(&["10.0.0.1"]))
    );
    // deletionPolicy Delete (the default) deletes the list.
    lists
        .delete("first", &DeleteParams::default())
        .await
        .expect("delete first");
    wait_gone(&lists, "first").await;
    assert_eq!(remote_entries(&truth, "site.shared").await, None);

    // deletionPolicy Orphan leaves it.
    let mut kept = spec("kept", vec![entry("10.0.0.3", None)]);
    kept.deletion_policy = IntegrationDeletionPolicy::Orphan;
    apply(&admin, &namespace, &SigSciList::new("kept", kept)).await;
    wait_until(&lists, "kept", "Ready", list_ready).await;
    lists
        .delete("kept", &DeleteParams::default())
        .await
        .expect("delete kept");
    wait_gone(&lists, "kept").await;
    assert_eq!(
        remote_entries(&truth, "site.kept").await,
        Some(set(&["10.0.0.3"]))
    );

    cleanup(&admin, &namespace).await;
    operator.stop().await.expect("operator stops cleanly");
}

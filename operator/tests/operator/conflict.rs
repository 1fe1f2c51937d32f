//! No fighting: two objects (in any namespaces, through any connections to the same API and
//! corp) declaring one remote alert or integration. The later one is `Ready=False` with reason
//! `Conflict` naming the holder and writes nothing; deleting it leaves what the holder holds;
//! once the holder is gone it takes over.

use crate::common;

use std::time::Duration;

use common::{
    alert_ready, apply, cleanup, condition, connect_to_sim, integration_ready, put_secret,
    sim_client, sim_connection, start_operator, start_sim, wait_gone, wait_until,
};
use kube::Api;
use kube::api::DeleteParams;
use sigsci_config::{
    AlertDeletionPolicy, IntegrationDeletionPolicy, IntegrationScope, IntegrationType,
    ManagementPolicy, Metric,
};
use sigsci_operator::crd::integration::{EventName, ValueSource};
use sigsci_operator::crd::{
    AgentAlert, AgentAlertSpec, Integration, IntegrationSpec, ManagedStatus, SecretKeyRef,
};

const TOKEN: &str = "sim-token";

fn in_conflict(status: Option<&ManagedStatus>) -> Option<String> {
    let ready = condition(&status?.sync.conditions, "Ready")?;
    (ready.status == "False" && ready.reason == "Conflict").then(|| ready.message.clone())
}

fn alert_spec(threshold: i64, policy: AlertDeletionPolicy) -> AgentAlertSpec {
    AgentAlertSpec {
        interval: 5,
        ..common::alert_spec("site-1", Metric::OnlineAgentCount, threshold, policy)
    }
}

async fn remote_alert(truth: &sigsci::Client) -> sigsci::Alert {
    truth
        .list_alerts("site-1")
        .await
        .expect("alerts")
        .into_iter()
        .find(|alert| alert.tag_name == "agent_scoreboards")
        .expect("the alert")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_alert_declared_in_two_namespaces_is_held_by_the_older_object() {
    common::install_chart().await;
    let admin = common::admin().await;
    let sim = start_sim().await;
    let truth = sim_client(&sim, TOKEN);
    // Two teams, each with its own connection (and operator) to the same corp.
    let team_a = common::namespace(&admin, "conflict-a").await;
    let team_b = common::namespace(&admin, "conflict-b").await;
    connect_to_sim(&admin, &team_a, &sim, TOKEN).await;
    connect_to_sim(&admin, &team_b, &sim, TOKEN).await;
    let operator_a = start_operator(&team_a, None, "conflict-a").await;
    let operator_b = start_operator(&team_b, None, "conflict-b").await;
    let alerts_a: Api<AgentAlert> = Api::namespaced(admin.clone(), &team_a);
    let alerts_b: Api<AgentAlert> = Api::namespaced(admin.clone(), &team_b);

    apply(
        &admin,
        &team_a,
        &AgentAlert::new("first", alert_spec(2, AlertDeletionPolicy::Disable)),
    )
    .await;
    wait_until(&alerts_a, "first", "Ready", |a| alert_ready(a, true)).await;
    let held = common::api_writes(&sim);

    apply(
        &admin,
        &team_b,
        &AgentAlert::new("second", alert_spec(7, AlertDeletionPolicy::Delete)),
    )
    .await;
    let refused = wait_until(&alerts_b, "second", "in conflict", |a| {
        in_conflict(a.status.as_ref()).is_some()
    })
    .await;
    let message = in_conflict(refused.status.as_ref()).expect("conflict");
    assert!(
        message.contains(&format!("AgentAlert {team_a}/first")),
        "names the holder: {message}"
    );
    assert_eq!(refused.status.and_then(|s| s.sync.remote_id), None);
    // Several resyncs of both: the alert stays as the holder declares it, nobody writes.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        common::api_writes(&sim),
        held,
        "{:?}",
        sim.state.call_log().calls
    );
    let remote = remote_alert(&truth).await;
    assert_eq!((remote.threshold, remote.enabled), (2, true));

    // Deleting the conflicting object (deletionPolicy Delete) leaves the holder's alert.
    alerts_b
        .delete("second", &DeleteParams::default())
        .await
        .expect("delete second");
    wait_gone(&alerts_b, "second").await;
    assert_eq!(common::api_writes(&sim), held);
    let remote = remote_alert(&truth).await;
    assert_eq!((remote.threshold, remote.enabled), (2, true));
    common::wait_for_event(&admin, &team_b, "second", |reason, _| reason == "NotHeld").await;

    // Declared again, still refused; once the holder is gone it takes over at the next resync.
    apply(
        &admin,
        &team_b,
        &AgentAlert::new("third", alert_spec(7, AlertDeletionPolicy::Delete)),
    )
    .await;
    wait_until(&alerts_b, "third", "in conflict", |a| {
        in_conflict(a.status.as_ref()).is_some()
    })
    .await;
    alerts_a
        .delete("first", &DeleteParams::default())
        .await
        .expect("delete first");
    wait_gone(&alerts_a, "first").await;
    wait_until(&alerts_b, "third", "Ready", |a| alert_ready(a, true)).await;
    let remote = remote_alert(&truth).await;
    assert_eq!((remote.threshold, remote.enabled), (7, true));

    cleanup(&admin, &team_b).await;
    cleanup(&admin, &team_a).await;
    operator_a.stop().await.expect("operator a stops cleanly");
    operator_b.stop().await.expect("operator b stops cleanly");
    sim.shutdown().await;
}

fn hook(url: Option<&str>, url_from: Option<&str>) -> IntegrationSpec {
    IntegrationSpec {
        connection_ref: sim_connection(),
        scope: IntegrationScope::Site,
        site: Some("site-1".into()),
        kind: IntegrationType::Slack,
        url: url.map(String::from),
        url_from: url_from.map(|secret| ValueSource {
            secret_key_ref: SecretKeyRef {
                name: secret.into(),
                key: "url".into(),
            },
        }),
        events: vec![EventName("flag".into())],
        fields: Default::default(),
        deletion_policy: IntegrationDeletionPolicy::Delete,
        management_policy: ManagementPolicy::Full,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_webhook_declared_twice_is_created_once_and_kept_by_its_holder() {
    common::install_chart().await;
    let admin = common::admin().await;
    let sim = start_sim().await;
    let truth = sim_client(&sim, TOKEN);
    let namespace = common::namespace(&admin, "conflict-hook").await;
    connect_to_sim(&admin, &namespace, &sim, TOKEN).await;
    let operator = start_operator(&namespace, None, "conflict-hook").await;
    let integrations: Api<Integration> = Api::namespaced(admin.clone(), &namespace);

    apply(
        &admin,
        &namespace,
        &Integration::new(
            "hook-a",
            hook(Some("https://hooks.slack.test/T/B/shared"), None),
        ),
    )
    .await;
    let held = wait_until(&integrations, "hook-a", "Ready", integration_ready).await;
    let id = held.status.and_then(|s| s.sync.remote_id).expect("id");
    // The same webhook, written differently, from a Secret.
    put_secret(
        &admin,
        &namespace,
        "shared-hook",
        &[("url", "https://HOOKS.slack.test/T/B/shared/")],
    )
    .await;
    apply(
        &admin,
        &namespace,
        &Integration::new("hook-b", hook(None, Some("shared-hook"))),
    )
    .await;
    let refused = wait_until(&integrations, "hook-b", "in conflict", |i| {
        in_conflict(i.status.as_ref()).is_some()
    })
    .await;
    let message = in_conflict(refused.status.as_ref()).expect("conflict");
    assert!(
        message.contains(&format!("Integration {namespace}/hook-a")),
        "{message}"
    );
    assert!(!message.contains("T/B/shared"), "no URL shown: {message}");
    let listed = truth.list_site_integrations("site-1").await.expect("list");
    assert_eq!(
        listed.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(),
        vec![id.as_str()],
        "created once"
    );

    integrations
        .delete("hook-b", &DeleteParams::default())
        .await
        .expect("delete hook-b");
    wait_gone(&integrations, "hook-b").await;
    common::wait_for_event(&admin, &namespace, "hook-b", |reason, _| {
        reason == "NotHeld"
    })
    .await;
    let kept = truth
        .get_site_integration("site-1", &id)
        .await
        .expect("the holder's integration stays");
    assert_eq!(kept.url, "https://hooks.slack.test/T/B/shared");

    cleanup(&admin, &namespace).await;
    operator.stop().await.expect("operator stops cleanly");
    sim.shutdown().await;
}

/// The ids and URLs of site-1's integrations, sorted by id.
async fn site_hooks(truth: &sigsci::Client) -> Vec<(String, String)> {
    let mut listed: Vec<(String, String)> = truth
        .list_site_integrations("site-1")
        .await
        .expect("list")
        .into_iter()
        .map(|integration| (integration.id, integration.url))
        .collect();
    listed.sort();
    listed
}

fn remote_id(integration: &Integration) -> Option<String> {
    integration.status.as_ref()?.sync.remote_id.clone()
}

/// A new URL naming an integration that exists already (made by hand): that one is adopted and
/// the one the object held before is deleted, so the old address stops being notified and
/// nothing is duplicated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_url_matching_an_existing_integration_adopts_it_and_deletes_the_old_one() {
    common::install_chart().await;
    let admin = common::admin().await;
    let sim = start_sim().await;
    let truth = sim_client(&sim, TOKEN);
    let namespace = common::namespace(&admin, "move-adopt").await;
    connect_to_sim(&admin, &namespace, &sim, TOKEN).await;
    let operator = start_operator(&namespace, None, "move-adopt").await;
    let integrations: Api<Integration> = Api::namespaced(admin.clone(), &namespace);

    let mut spec = hook(Some("https://hooks.slack.test/T/B/old"), None);
    // Replacing is not deleting the object: the old integration goes even when orphaned.
    spec.deletion_policy = IntegrationDeletionPolicy::Orphan;
    apply(&admin, &namespace, &Integration::new("hook", spec.clone())).await;
    let held = wait_until(&integrations, "hook", "Ready", integration_ready).await;
    let old = remote_id(&held).expect("id");
    let by_hand = truth
        .create_site_integration(
            "site-1",
            &sigsci::IntegrationBody {
                integration_type: "slack".into(),
                url: "https://hooks.slack.test/T/B/new".into(),
                events: vec!["flag".into()],
                fields: None,
            },
        )
        .await
        .expect("hand-made integration");

    spec.url = Some("https://hooks.slack.test/T/B/new".into());
    apply(&admin, &namespace, &Integration::new("hook", spec)).await;
    let moved = wait_until(&integrations, "hook", "moved", |i| {
        integration_ready(i) && remote_id(i).as_deref() == Some(by_hand.id.as_str())
    })
    .await;
    assert_ne!(remote_id(&moved), Some(old));
    assert_eq!(
        site_hooks(&truth).await,
        vec![(
            by_hand.id.clone(),
            "https://hooks.slack.test/T/B/new".into()
        )],
        "the old integration is gone and nothing is duplicated"
    );
    common::wait_for_event(&admin, &namespace, "hook", |reason, _| reason == "Replaced").await;

    cleanup(&admin, &namespace).await;
    operator.stop().await.expect("operator stops cleanly");
    sim.shutdown().await;
}

/// Two integrations of one type and URL (made by hand, or by two objects claiming at once)
/// notify twice: the object holds one and deletes the other, of either policy but `ObserveOnly`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_of_the_declared_integration_are_deleted_once_one_is_held() {
    common::install_chart().await;
    let admin = common::admin().await;
    let sim = start_sim().await;
    let truth = sim_client(&sim, TOKEN);
    let namespace = common::namespace(&admin, "copies").await;
    connect_to_sim(&admin, &namespace, &sim, TOKEN).await;
    let url = "https://hooks.slack.test/T/B/copied";
    let mut made = Vec::new();
    for _ in 0..2 {
        let body = sigsci::IntegrationBody {
            integration_type: "slack".into(),
            url: url.into(),
            events: vec!["flag".into()],
            fields: None,
        };
        let integration = truth
            .create_site_integration("site-1", &body)
            .await
            .expect("hand-made integration");
        made.push(integration.id);
    }
    let operator = start_operator(&namespace, None, "copies").await;
    let integrations: Api<Integration> = Api::namespaced(admin.clone(), &namespace);

    apply(
        &admin,
        &namespace,
        &Integration::new("hook", hook(Some(url), None)),
    )
    .await;
    let held = wait_until(&integrations, "hook", "Ready", integration_ready).await;
    let held = remote_id(&held).expect("id");
    assert!(made.contains(&held), "one of the copies is adopted: {held}");
    common::eventually("one integration left, the held one", || async {
        (site_hooks(&truth).await == vec![(held.clone(), url.to_string())]).then_some(())
    })
    .await;
    common::wait_for_event(&admin, &namespace, "hook", |reason, message| {
        reason == "Replaced" && message.contains("a copy")
    })
    .await;

    cleanup(&admin, &namespace).await;
    assert_eq!(
        site_hooks(&truth).await,
        vec![],
        "the holder deleted its own"
    );
    operator.stop().await.expect("operator stops cleanly");
    sim.shutdown().await;
}

/// A new URL naming an integration another object holds: the object reports the conflict and
/// deletes the integration it held before, unless a third object declares that one (then it is
/// left to it, never deleted under it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_url_held_by_another_object_is_a_conflict_that_leaves_no_old_integration() {
    common::install_chart().await;
    let admin = common::admin().await;
    let sim = start_sim().await;
    let truth = sim_client(&sim, TOKEN);
    let namespace = common::namespace(&admin, "move-conflict").await;
    connect_to_sim(&admin, &namespace, &sim, TOKEN).await;
    let operator = start_operator(&namespace, None, "move-conflict").await;
    let integrations: Api<Integration> = Api::namespaced(admin.clone(), &namespace);
    let (taken, first, second) = (
        "https://hooks.slack.test/T/B/taken",
        "https://hooks.slack.test/T/B/first",
        "https://hooks.slack.test/T/B/second",
    );

    apply(
        &admin,
        &namespace,
        &Integration::new("holder", hook(Some(taken), None)),
    )
    .await;
    let holder = wait_until(&integrations, "holder", "Ready", integration_ready).await;
    let taken_id = remote_id(&holder).expect("id");
    apply(
        &admin,
        &namespace,
        &Integration::new("mover", hook(Some(first), None)),
    )
    .await;
    let mover = wait_until(&integrations, "mover", "Ready", integration_ready).await;
    let first_id = remote_id(&mover).expect("id");

    // Moving onto the holder's URL: a conflict, and the first integration is deleted.
    apply(
        &admin,
        &namespace,
        &Integration::new("mover", hook(Some(taken), None)),
    )
    .await;
    let refused = wait_until(&integrations, "mover", "in conflict", |i| {
        in_conflict(i.status.as_ref()).is_some()
    })
    .await;
    let message = in_conflict(refused.status.as_ref()).expect("conflict");
    assert!(
        message.contains(&format!("Integration {namespace}/holder")),
        "{message}"
    );
    assert_eq!(remote_id(&refused), None, "holds nothing any more");
    assert_eq!(
        site_hooks(&truth).await,
        vec![(taken_id.clone(), taken.to_string())],
        "the first integration no longer notifies"
    );

    // Back to a URL of its own, then a third object declares that URL too (later: in conflict).
    apply(
        &admin,
        &namespace,
        &Integration::new("mover", hook(Some(first), None)),
    )
    .await;
    let mover = wait_until(&integrations, "mover", "Ready", |i| {
        integration_ready(i) && remote_id(i).is_some()
    })
    .await;
    let first_id = {
        let id = remote_id(&mover).expect("id");
        assert_ne!(id, first_id, "created anew");
        id
    };
    apply(
        &admin,
        &namespace,
        &Integration::new("waiter", hook(Some(first), None)),
    )
    .await;
    wait_until(&integrations, "waiter", "in conflict", |i| {
        in_conflict(i.status.as_ref()).is_some()
    })
    .await;
    // Moving away again: the first integration is left to the waiter, which takes it over.
    apply(
        &admin,
        &namespace,
        &Integration::new("mover", hook(Some(second), None)),
    )
    .await;
    let waiter = wait_until(&integrations, "waiter", "Ready", integration_ready).await;
    assert_eq!(remote_id(&waiter).as_deref(), Some(first_id.as_str()));
    let mover = wait_until(&integrations, "mover", "Ready", |i| {
        integration_ready(i) && remote_id(i).is_some_and(|id| id != first_id)
    })
    .await;
    let second_id = remote_id(&mover).expect("id");
    let mut expected = vec![
        (taken_id, taken.to_string()),
        (first_id, first.to_string()),
        (second_id, second.to_string()),
    ];
    expected.sort();
    assert_eq!(site_hooks(&truth).await, expected);

    cleanup(&admin, &namespace).await;
    operator.stop().await.expect("operator stops cleanly");
    sim.shutdown().await;
}

/// Two objects in two namespaces (each with its own operator) declaring one webhook at the
/// same moment, five times over: one holds it, the other reports the conflict naming it, and
/// the webhook exists once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_objects_claiming_one_webhook_at_once_end_with_one_holder_and_one_webhook() {
    common::install_chart().await;
    let admin = common::admin().await;
    let sim = start_sim().await;
    let truth = sim_client(&sim, TOKEN);
    let team_a = common::namespace(&admin, "race-a").await;
    let team_b = common::namespace(&admin, "race-b").await;
    connect_to_sim(&admin, &team_a, &sim, TOKEN).await;
    connect_to_sim(&admin, &team_b, &sim, TOKEN).await;
    let operator_a = start_operator(&team_a, None, "race-a").await;
    let operator_b = start_operator(&team_b, None, "race-b").await;
    let hooks_a: Api<Integration> = Api::namespaced(admin.clone(), &team_a);
    let hooks_b: Api<Integration> = Api::namespaced(admin.clone(), &team_b);
    let settled = |a: &Integration, b: &Integration| {
        let held = |i: &Integration| integration_ready(i) && remote_id(i).is_some();
        let refused = |i: &Integration| in_conflict(i.status.as_ref()).is_some();
        (held(a) && refused(b)) || (held(b) && refused(a))
    };

    for round in 0..5 {
        let name = format!("hook-{round}");
        let url = format!("https://hooks.slack.test/T/B/race-{round}");
        let object = Integration::new(&name, hook(Some(&url), None));
        tokio::join!(
            apply(&admin, &team_a, &object),
            apply(&admin, &team_b, &object)
        );
        let (a, b) = common::eventually(&format!("round {round} settles"), || async {
            let a = hooks_a.get(&name).await.expect("get a");
            let b = hooks_b.get(&name).await.expect("get b");
            settled(&a, &b).then_some((a, b))
        })
        .await;
        // Still so after more resyncs of both (a loser that wrote would show by now).
        tokio::time::sleep(Duration::from_secs(3)).await;
        let (a_now, b_now) = (
            hooks_a.get(&name).await.expect("get a"),
            hooks_b.get(&name).await.expect("get b"),
        );
        assert!(
            settled(&a_now, &b_now),
            "round {round}: {a_now:?} {b_now:?}"
        );
        let (holder, holder_namespace, refused) = if integration_ready(&a) {
            (a, &team_a, b)
        } else {
            (b, &team_b, a)
        };
        let message = in_conflict(refused.status.as_ref()).expect("conflict");
        assert!(
            message.contains(&format!("Integration {holder_namespace}/{name}")),
            "round {round}: names the holder: {message}"
        );
        // A copy made by the other while both claimed at once goes at its next resync.
        let held = vec![remote_id(&holder).expect("id")];
        common::eventually(
            &format!("round {round}: one webhook, the holder's"),
            || async {
                let copies: Vec<String> = site_hooks(&truth)
                    .await
                    .into_iter()
                    .filter(|(_, listed)| *listed == url)
                    .map(|(id, _)| id)
                    .collect();
                (copies == held).then_some(())
            },
        )
        .await;
    }

    cleanup(&admin, &team_b).await;
    cleanup(&admin, &team_a).await;
    assert_eq!(
        site_hooks(&truth).await,
        vec![],
        "the holders deleted theirs"
    );
    operator_a.stop().await.expect("operator a stops cleanly");
    operator_b.stop().await.expect("operator b stops cleanly");
    sim.shutdown().await;
}

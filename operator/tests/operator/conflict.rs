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

//! Recovery from `Stalled`: fixing what caused it (the Secret, the connection) brings the objects
//! back through the watches. The periodic resync and the retry after permanent errors are an hour
//! away here, so only the watches can explain a recovery within seconds.

use crate::common;

use std::time::{Duration, Instant};

use common::{
    apply, cleanup, connect_to_sim, is_condition, put_secret, sim_client, start_operator_with,
    start_sim, wait_until,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::Api;
use serde::Serialize;
use serde_json::json;
use sigsci_operator::controller::Settings;
use sigsci_operator::crd::{AgentAlert, Integration, SigSciConnection};

const TOKEN: &str = "sim-token";
/// Well under the hour of `slow_retries`: a watch event, not a timer.
const RECOVERY: Duration = Duration::from_secs(10);

fn slow_retries() -> Settings {
    Settings {
        resync: Duration::from_secs(3600),
        permanent_retry: Duration::from_secs(3600),
        ..common::test_settings()
    }
}

/// Objects built from JSON, as a user writes them (fields added later keep their defaults).
fn alert(name: &str, site: &str, threshold: i64) -> AgentAlert {
    serde_json::from_value(json!({
        "apiVersion": "sigsci-kit.io/v1alpha1",
        "kind": "AgentAlert",
        "metadata": {"name": name},
        "spec": {
            "connectionRef": {"name": "sim"},
            "site": site,
            "metric": "averageRPS",
            "operator": "lessThan",
            "threshold": threshold,
            "interval": 10,
            "deletionPolicy": "Orphan",
        },
    }))
    .expect("AgentAlert")
}

fn integration(name: &str, url: &str) -> Integration {
    serde_json::from_value(json!({
        "apiVersion": "sigsci-kit.io/v1alpha1",
        "kind": "Integration",
        "metadata": {"name": name},
        "spec": {
            "connectionRef": {"name": "sim"},
            "scope": "Site",
            "site": "site-1",
            "type": "slack",
            "url": url,
            "events": ["flag"],
            "deletionPolicy": "Orphan",
        },
    }))
    .expect("Integration")
}

/// The conditions of any of these kinds, read as JSON (their status types differ).
fn conditions<K: Serialize>(object: &K) -> Vec<Condition> {
    let json = serde_json::to_value(object).expect("serializes");
    serde_json::from_value(json["status"]["conditions"].clone()).unwrap_or_default()
}

fn stalled_because<K: Serialize>(reason: &'static str) -> impl Fn(&K) -> bool {
    move |object| {
        let conditions = conditions(object);
        is_condition(&conditions, "Stalled", "True")
            && common::condition(&conditions, "Ready").is_some_and(|c| c.reason == reason)
    }
}

fn ready<K: Serialize>(object: &K) -> bool {
    is_condition(&conditions(object), "Ready", "True")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixing_the_secret_recovers_stalled_objects_through_the_watch() {
    common::install_chart().await;
    let admin = common::admin().await;
    let namespace = common::namespace(&admin, "recovery-secret").await;
    let sim = start_sim().await;
    connect_to_sim(&admin, &namespace, &sim, "wrong-token").await;
    let operator = start_operator_with(&namespace, None, "recovery-secret", slow_retries()).await;
    apply(&admin, &namespace, &alert("low-traffic", "site-1", 25)).await;
    apply(
        &admin,
        &namespace,
        &integration("hook", "https://hooks.slack.test/T1/B1/recovery"),
    )
    .await;

    let connections: Api<SigSciConnection> = Api::namespaced(admin.clone(), &namespace);
    let alerts: Api<AgentAlert> = Api::namespaced(admin.clone(), &namespace);
    let integrations: Api<Integration> = Api::namespaced(admin.clone(), &namespace);
    let auth = "AuthenticationFailed";
    wait_until(&connections, "sim", "Stalled", stalled_because(auth)).await;
    wait_until(&alerts, "low-traffic", "Stalled", stalled_because(auth)).await;
    wait_until(&integrations, "hook", "Stalled", stalled_because(auth)).await;
    // Past the first reconciles: what follows is the fix, not a late first attempt.
    tokio::time::sleep(Duration::from_secs(1)).await;

    let email = sim.state.config().email.clone();
    let fixed = Instant::now();
    put_secret(
        &admin,
        &namespace,
        "sim-credentials",
        &[("email", &email), ("token", TOKEN)],
    )
    .await;
    wait_until(&connections, "sim", "Ready", ready).await;
    wait_until(&alerts, "low-traffic", "Ready", ready).await;
    let hook = wait_until(&integrations, "hook", "Ready", ready).await;
    let took = fixed.elapsed();
    assert!(
        took < RECOVERY,
        "recovered only after {took:?}: not through the Secret watch"
    );
    eprintln!("recovered {took:?} after the Secret was fixed");

    // Recovered for real: the remote objects are as declared.
    let truth = sim_client(&sim, TOKEN);
    let remote_alert = truth
        .list_alerts("site-1")
        .await
        .expect("alerts")
        .into_iter()
        .find(|a| a.tag_name == "requests_total")
        .expect("alert");
    assert_eq!((remote_alert.threshold, remote_alert.enabled), (25, true));
    let id = hook
        .status
        .and_then(|s| s.sync.remote_id)
        .expect("remote id");
    let remote_hook = truth
        .get_site_integration("site-1", &id)
        .await
        .expect("integration");
    assert_eq!(remote_hook.url, "https://hooks.slack.test/T1/B1/recovery");

    cleanup(&admin, &namespace).await;
    operator.stop().await.expect("operator stops cleanly");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creating_the_missing_connection_recovers_stalled_objects_through_the_watch() {
    common::install_chart().await;
    let admin = common::admin().await;
    let namespace = common::namespace(&admin, "recovery-connection").await;
    let sim = start_sim().await;
    let operator =
        start_operator_with(&namespace, None, "recovery-connection", slow_retries()).await;
    apply(&admin, &namespace, &alert("low-traffic", "site-2", 40)).await;
    apply(
        &admin,
        &namespace,
        &integration("hook", "https://hooks.slack.test/T1/B1/later"),
    )
    .await;

    let alerts: Api<AgentAlert> = Api::namespaced(admin.clone(), &namespace);
    let integrations: Api<Integration> = Api::namespaced(admin.clone(), &namespace);
    let missing = "ConnectionNotFound";
    wait_until(&alerts, "low-traffic", "Stalled", stalled_because(missing)).await;
    wait_until(&integrations, "hook", "Stalled", stalled_because(missing)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;

    let fixed = Instant::now();
    connect_to_sim(&admin, &namespace, &sim, TOKEN).await;
    wait_until(&alerts, "low-traffic", "Ready", ready).await;
    wait_until(&integrations, "hook", "Ready", ready).await;
    let took = fixed.elapsed();
    assert!(
        took < RECOVERY,
        "recovered only after {took:?}: not through the connection watch"
    );
    eprintln!("recovered {took:?} after the connection was created");
    let truth = sim_client(&sim, TOKEN);
    let remote_alert = truth
        .list_alerts("site-2")
        .await
        .expect("alerts")
        .into_iter()
        .find(|a| a.tag_name == "requests_total")
        .expect("alert");
    assert_eq!(remote_alert.threshold, 40);

    cleanup(&admin, &namespace).await;
    operator.stop().await.expect("operator stops cleanly");
    sim.shutdown().await;
}

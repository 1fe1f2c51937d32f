//! The operator end to end: the real kube-apiserver (chart installed, operator acting as the
//! chart's ServiceAccount) and the simulator as the Signal Sciences API.

use crate::common;

use std::time::Duration;

use common::{
    alert_ready, alert_spec, apply, cleanup, condition, connect_to_sim, eventually,
    integration_ready, is_condition, put_secret, sim_client, sim_connection, start_operator,
    start_sim, wait_gone, wait_until,
};
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use sigsci::AlertBody;
use sigsci_config::{
    AlertDeletionPolicy, IntegrationDeletionPolicy, IntegrationScope, IntegrationType,
    ManagementPolicy, Metric,
};
use sigsci_operator::crd::common::{FIELDS_DIGEST_ANNOTATION, REMOTE_ID_ANNOTATION};
use sigsci_operator::crd::integration::{EventName, FieldValue, ValueSource};
use sigsci_operator::crd::{
    AgentAlert, ClusterSigSciConnection, ClusterSigSciConnectionSpec, ConnectionKind,
    ConnectionRef, CredentialsSecretRef, Integration, IntegrationSpec, SecretKeyRef,
    SigSciConnection,
};
use sigsci_operator::lease::LeaseConfig;
use sigsci_sim::CredentialsUpdate;

const TOKEN: &str = "sim-token";

async fn setup(prefix: &str) -> (Client, String, sigsci_sim::RunningSim) {
    common::install_chart().await;
    let admin = common::admin().await;
    let namespace = common::namespace(&admin, prefix).await;
    let sim = start_sim().await;
    (admin, namespace, sim)
}

async fn remote_alert(client: &sigsci::Client, site: &str, tag: &str) -> Option<sigsci::Alert> {
    let alerts = client.list_alerts(site).await.expect("list alerts");
    alerts.into_iter().find(|alert| alert.tag_name == tag)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_alert_is_adopted_patched_kept_from_drifting_and_disabled_on_delete() {
    let (admin, namespace, sim) = setup("alert").await;
    connect_to_sim(&admin, &namespace, &sim, TOKEN).await;
    let operator = start_operator(&namespace, None, "alert-test").await;
    let truth = sim_client(&sim, TOKEN);
    let seeded = remote_alert(&truth, "site-1", "requests_total")
        .await
        .expect("seeded alert");
    assert!(!seeded.enabled, "the simulator seeds agent alerts disabled");

    let alerts: Api<AgentAlert> = Api::namespaced(admin.clone(), &namespace);
    apply(
        &admin,
        &namespace,
        &AgentAlert::new(
            "low-traffic",
            alert_spec(
                "site-1",
                Metric::AverageRps,
                25,
                AlertDeletionPolicy::Disable,
            ),
        ),
    )
    .await;
    let ready = wait_until(&alerts, "low-traffic", "Ready", |a| alert_ready(a, true)).await;
    let status = ready.status.clone().expect("status").sync;
    assert_eq!(
        status.remote_id.as_deref(),
        Some(seeded.id.as_str()),
        "the pre-seeded alert is adopted, not duplicated"
    );
    assert_eq!(
        ready.annotations().get(REMOTE_ID_ANNOTATION),
        Some(&seeded.id)
    );
    assert!(is_condition(&status.conditions, "Synced", "True"));
    assert!(
        status
            .conditions
            .iter()
            .all(|c| c.observed_generation == Some(1))
    );
    assert!(status.last_sync_time.is_some());
    let remote = remote_alert(&truth, "site-1", "requests_total")
        .await
        .expect("alert");
    assert_eq!(
        (
            remote.threshold,
            remote.interval,
            remote.enabled,
            remote.operator.as_str()
        ),
        (25, 10, true, "lessThan")
    );
    assert_eq!(
        truth.list_alerts("site-1").await.expect("list").len(),
        2,
        "nothing was created"
    );

    let connections: Api<SigSciConnection> = Api::namespaced(admin.clone(), &namespace);
    let connection = wait_until(&connections, "sim", "Ready", |c| {
        c.status
            .as_ref()
            .is_some_and(|s| is_condition(&s.conditions, "Ready", "True"))
    })
    .await;
    let ready = condition(&connection.status.expect("status").conditions, "Ready")
        .cloned()
        .expect("Ready");
    assert_eq!(ready.reason, "Authenticated");

    // A spec edit is patched field by field.
    let mut edited = alert_spec(
        "site-1",
        Metric::AverageRps,
        40,
        AlertDeletionPolicy::Disable,
    );
    edited.skip_notifications = true;
    apply(&admin, &namespace, &AgentAlert::new("low-traffic", edited)).await;
    wait_until(&alerts, "low-traffic", "Ready at generation 2", |a| {
        a.metadata.generation == Some(2) && alert_ready(a, true)
    })
    .await;
    common::wait_for_event(&admin, &namespace, "low-traffic", |reason, note| {
        reason == "Updated" && note.contains("updated threshold, skipNotifications")
    })
    .await;
    let remote = remote_alert(&truth, "site-1", "requests_total")
        .await
        .expect("alert");
    assert_eq!((remote.threshold, remote.skip_notifications), (40, true));

    // Drift made in the dashboard is undone by the periodic re-check.
    truth
        .update_alert(
            "site-1",
            &seeded.id,
            &AlertBody {
                threshold: Some(99),
                ..AlertBody::default()
            },
        )
        .await
        .expect("drift");
    eventually("drift to be corrected", || async {
        let remote = remote_alert(&truth, "site-1", "requests_total").await?;
        (remote.threshold == 40).then_some(())
    })
    .await;

    // Deleting under the default policy leaves the built-in alert in place, disabled.
    alerts
        .delete("low-traffic", &DeleteParams::default())
        .await
        .expect("delete");
    wait_gone(&alerts, "low-traffic").await;
    let remote = remote_alert(&truth, "site-1", "requests_total")
        .await
        .expect("still there");
    assert_eq!((remote.enabled, remote.threshold), (false, 40));

    let metrics = operator.metrics.encode().expect("metrics");
    assert!(
        metrics.contains(r#"sigsci_kit_reconcile_runs_total{kind="AgentAlert"}"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"sigsci_kit_reconcile_duration_seconds_count{kind="SigSciConnection"}"#),
        "{metrics}"
    );

    cleanup(&admin, &namespace).await;
    operator.stop().await.expect("operator stops cleanly");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletion_policies_delete_and_orphan_and_a_missing_alert_is_created() {
    let (admin, namespace, sim) = setup("policy").await;
    connect_to_sim(&admin, &namespace, &sim, TOKEN).await;
    let operator = start_operator(&namespace, None, "policy-test").await;
    let truth = sim_client(&sim, TOKEN);
    let alerts: Api<AgentAlert> = Api::namespaced(admin.clone(), &namespace);

    apply(
        &admin,
        &namespace,
        &AgentAlert::new(
            "delete-me",
            alert_spec("site-1", Metric::AverageRps, 5, AlertDeletionPolicy::Delete),
        ),
    )
    .await;
    apply(
        &admin,
        &namespace,
        &AgentAlert::new(
            "orphan-me",
            alert_spec(
                "site-2",
                Metric::OnlineAgentCount,
                1,
                AlertDeletionPolicy::Orphan,
            ),
        ),
    )
    .await;
    wait_until(&alerts, "delete-me", "Ready", |a| alert_ready(a, true)).await;
    wait_until(&alerts, "orphan-me", "Ready", |a| alert_ready(a, true)).await;

    alerts
        .delete("delete-me", &DeleteParams::default())
        .await
        .expect("delete");
    alerts
        .delete("orphan-me", &DeleteParams::default())
        .await
        .expect("delete");
    wait_gone(&alerts, "delete-me").await;
    wait_gone(&alerts, "orphan-me").await;
    assert!(
        remote_alert(&truth, "site-1", "requests_total")
            .await
            .is_none(),
        "Delete removes the alert"
    );
    let orphan = remote_alert(&truth, "site-2", "agent_scoreboards")
        .await
        .expect("Orphan keeps the alert");
    assert_eq!(
        (orphan.enabled, orphan.threshold),
        (true, 1),
        "and leaves it as it was"
    );

    // The site now lacks the alert: declaring it again creates it.
    apply(
        &admin,
        &namespace,
        &AgentAlert::new(
            "recreated",
            alert_spec("site-1", Metric::AverageRps, 7, AlertDeletionPolicy::Delete),
        ),
    )
    .await;
    let recreated = wait_until(&alerts, "recreated", "Ready", |a| alert_ready(a, true)).await;
    let status = recreated.status.expect("status").sync;
    let creates = sim
        .state
        .call_log()
        .calls
        .get("POST /corps/{corp}/sites/{site}/alerts")
        .copied();
    assert_eq!(creates, Some(1), "created exactly once");
    let remote = remote_alert(&truth, "site-1", "requests_total")
        .await
        .expect("created");
    assert_eq!(status.remote_id.as_deref(), Some(remote.id.as_str()));
    assert_eq!(
        (
            remote.threshold,
            remote.action.as_str(),
            remote.field_name.as_str()
        ),
        (7, "siteMetricInfo", "siteMetric")
    );
    common::wait_for_event(&admin, &namespace, "recreated", |reason, _| {
        reason == "Created"
    })
    .await;

    // A deletion the API refuses is held up, says so, and names the way out.
    sim.state
        .set_credentials(&CredentialsUpdate {
            token: Some("revoked-token".into()),
            password: None,
        })
        .expect("revoke");
    alerts
        .delete("recreated", &DeleteParams::default())
        .await
        .expect("delete");
    let blocked = wait_until(&alerts, "recreated", "DeletionBlocked", |a| {
        a.status
            .as_ref()
            .is_some_and(|s| is_condition(&s.sync.conditions, "DeletionBlocked", "True"))
    })
    .await;
    let conditions = blocked.status.expect("status").sync.conditions;
    let message = &condition(&conditions, "DeletionBlocked")
        .expect("condition")
        .message;
    assert!(
        message.contains("cannot apply deletionPolicy Delete")
            && message.contains("set deletionPolicy: Orphan"),
        "{message}"
    );
    // The way out works while the API still refuses.
    alerts
        .patch(
            "recreated",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"deletionPolicy": "Orphan"}})),
        )
        .await
        .expect("patch");
    wait_gone(&alerts, "recreated").await;
    sim.state
        .set_credentials(&CredentialsUpdate {
            token: Some(TOKEN.into()),
            password: None,
        })
        .expect("restore");
    assert!(
        remote_alert(&truth, "site-1", "requests_total")
            .await
            .is_some(),
        "Orphan leaves the alert"
    );

    cleanup(&admin, &namespace).await;
    operator.stop().await.expect("operator stops cleanly");
    sim.shutdown().await;
}

fn integration_spec(
    kind: IntegrationType,
    scope: IntegrationScope,
    connection: ConnectionRef,
) -> IntegrationSpec {
    IntegrationSpec {
        connection_ref: connection,
        scope,
        site: (scope == IntegrationScope::Site).then(|| "site-1".to_string()),
        kind,
        url: None,
        url_from: None,
        // Site and corp integrations document different events.
        events: match scope {
            IntegrationScope::Site => {
                vec![EventName("flag".into()), EventName("agentAlert".into())]
            }
            IntegrationScope::Corp => vec![EventName("newSite".into())],
        },
        fields: Default::default(),
        deletion_policy: IntegrationDeletionPolicy::Delete,
        management_policy: ManagementPolicy::Full,
    }
}

fn from_secret(name: &str, key: &str) -> ValueSource {
    ValueSource {
        secret_key_ref: SecretKeyRef {
            name: name.into(),
            key: key.into(),
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn integrations_follow_their_secrets_and_deletion_policy() {
    let (admin, namespace, sim) = setup("integration").await;
    connect_to_sim(&admin, &namespace, &sim, TOKEN).await;
    let operator = start_operator(&namespace, None, "integration-test").await;
    let truth = sim_client(&sim, TOKEN);
    let integrations: Api<Integration> = Api::namespaced(admin.clone(), &namespace);

    // A Slack webhook whose URL is a Secret.
    put_secret(
        &admin,
        &namespace,
        "slack-hook",
        &[("url", "https://hooks.slack.test/T1/B1/first")],
    )
    .await;
    let mut slack = integration_spec(
        IntegrationType::Slack,
        IntegrationScope::Site,
        sim_connection(),
    );
    slack.url_from = Some(from_secret("slack-hook", "url"));
    apply(
        &admin,
        &namespace,
        &Integration::new("slack", slack.clone()),
    )
    .await;
    let ready = wait_until(&integrations, "slack", "Ready", integration_ready).await;
    let id = ready
        .status
        .and_then(|s| s.sync.remote_id)
        .expect("remote id");
    let listed = truth.list_site_integrations("site-1").await.expect("list");
    let remote = listed
        .iter()
        .find(|i| i.id == id)
        .expect("created remotely");
    assert_eq!(remote.integration_type, "slack");
    assert_eq!(remote.url, "https://hooks.slack.test/T1/B1/first");
    assert_eq!(remote.events, vec!["agentAlert", "flag"]);

    // Rotating the Secret re-sends the URL; editing events patches them.
    put_secret(
        &admin,
        &namespace,
        "slack-hook",
        &[("url", "https://hooks.slack.test/T1/B1/second")],
    )
    .await;
    eventually("the rotated webhook URL to reach the API", || async {
        let remote = truth.get_site_integration("site-1", &id).await.ok()?;
        (remote.url == "https://hooks.slack.test/T1/B1/second").then_some(())
    })
    .await;
    // Updated in place: the old address is notified by no integration any more.
    let listed = truth.list_site_integrations("site-1").await.expect("list");
    assert_eq!(listed.len(), 1, "replaced, not added: {listed:?}");
    assert!(
        listed
            .iter()
            .all(|i| i.url != "https://hooks.slack.test/T1/B1/first"),
        "the old URL still notifies"
    );
    // A literal url in the spec instead of the Secret: the same integration again.
    let mut literal = slack.clone();
    literal.url_from = None;
    literal.url = Some("https://hooks.slack.test/T1/B1/third".into());
    apply(&admin, &namespace, &Integration::new("slack", literal)).await;
    eventually("the new literal URL to reach the API", || async {
        let listed = truth.list_site_integrations("site-1").await.ok()?;
        (listed.len() == 1
            && listed[0].id == id
            && listed[0].url == "https://hooks.slack.test/T1/B1/third")
            .then_some(())
    })
    .await;
    slack.events = vec![EventName("flag".into())];
    apply(&admin, &namespace, &Integration::new("slack", slack)).await;
    eventually("events to be patched", || async {
        let remote = truth.get_site_integration("site-1", &id).await.ok()?;
        (remote.events == vec!["flag".to_string()]).then_some(())
    })
    .await;

    // Datadog: write-only fields from a Secret; a rotated API key is sent again.
    put_secret(&admin, &namespace, "datadog", &[("apiKey", "dd-key-1")]).await;
    let mut datadog = integration_spec(
        IntegrationType::Datadog,
        IntegrationScope::Site,
        sim_connection(),
    );
    datadog.fields.insert(
        "site".into(),
        FieldValue {
            value: Some("us1".into()),
            value_from: None,
        },
    );
    datadog.fields.insert(
        "apiKey".into(),
        FieldValue {
            value: None,
            value_from: Some(from_secret("datadog", "apiKey")),
        },
    );
    apply(&admin, &namespace, &Integration::new("datadog", datadog)).await;
    let ready = wait_until(&integrations, "datadog", "Ready", integration_ready).await;
    let digest = ready
        .annotations()
        .get(FIELDS_DIGEST_ANNOTATION)
        .cloned()
        .expect("fields digest recorded");
    let patches = |log: &sigsci_sim::CallLog| {
        log.calls
            .get("PATCH /corps/{corp}/sites/{site}/integrations/{id}")
            .copied()
            .unwrap_or(0)
    };
    let before = patches(&sim.state.call_log());
    put_secret(&admin, &namespace, "datadog", &[("apiKey", "dd-key-2")]).await;
    wait_until(&integrations, "datadog", "re-sent with the new key", |i| {
        i.annotations()
            .get(FIELDS_DIGEST_ANNOTATION)
            .is_some_and(|d| *d != digest)
    })
    .await;
    assert!(
        patches(&sim.state.call_log()) > before,
        "the rotated key was PATCHed"
    );

    // A corp mailing list through a ClusterSigSciConnection, orphaned on delete.
    let cluster_name = format!("{namespace}-sim");
    let clusters: Api<ClusterSigSciConnection> = Api::all(admin.clone());
    let cluster = ClusterSigSciConnection::new(
        &cluster_name,
        ClusterSigSciConnectionSpec {
            corp: "testcorp".into(),
            api_url: sim.base_url.clone(),
            credentials_secret_ref: CredentialsSecretRef {
                name: "sim-credentials".into(),
                namespace: Some(namespace.clone()),
                email_key: "email".into(),
                token_key: "token".into(),
            },
        },
    );
    clusters
        .patch(
            &cluster_name,
            &kube::api::PatchParams::apply("sigsci-kit-tests"),
            &kube::api::Patch::Apply(&cluster),
        )
        .await
        .expect("cluster connection");
    let mut mail = integration_spec(
        IntegrationType::MailingList,
        IntegrationScope::Corp,
        ConnectionRef {
            kind: ConnectionKind::ClusterSigSciConnection,
            name: cluster_name.clone(),
        },
    );
    mail.url = Some("waf-alerts@example.com".into());
    mail.deletion_policy = IntegrationDeletionPolicy::Orphan;
    apply(&admin, &namespace, &Integration::new("corp-mail", mail)).await;
    let ready = wait_until(&integrations, "corp-mail", "Ready", integration_ready).await;
    let mail_id = ready
        .status
        .and_then(|s| s.sync.remote_id)
        .expect("remote id");
    wait_until(&clusters, &cluster_name, "Ready", |c| {
        c.status
            .as_ref()
            .is_some_and(|s| is_condition(&s.conditions, "Ready", "True"))
    })
    .await;

    integrations
        .delete("slack", &DeleteParams::default())
        .await
        .expect("delete");
    integrations
        .delete("corp-mail", &DeleteParams::default())
        .await
        .expect("delete");
    wait_gone(&integrations, "slack").await;
    wait_gone(&integrations, "corp-mail").await;
    assert!(
        matches!(
            truth.get_site_integration("site-1", &id).await,
            Err(sigsci::Error::NotFound { .. })
        ),
        "Delete removes the integration"
    );
    let kept = truth
        .get_corp_integration(&mail_id)
        .await
        .expect("Orphan keeps the integration");
    assert_eq!(kept.url, "waf-alerts@example.com");

    cleanup(&admin, &namespace).await;
    clusters
        .delete(&cluster_name, &DeleteParams::default())
        .await
        .expect("delete cluster connection");
    operator.stop().await.expect("operator stops cleanly");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_token_is_reported_as_authentication_failure_without_a_retry_storm() {
    let (admin, namespace, sim) = setup("badtoken").await;
    connect_to_sim(&admin, &namespace, &sim, "wrong-token").await;
    let operator = start_operator(&namespace, None, "badtoken-test").await;
    let alerts: Api<AgentAlert> = Api::namespaced(admin.clone(), &namespace);
    apply(
        &admin,
        &namespace,
        &AgentAlert::new(
            "low-traffic",
            alert_spec(
                "site-1",
                Metric::AverageRps,
                25,
                AlertDeletionPolicy::Orphan,
            ),
        ),
    )
    .await;

    let connections: Api<SigSciConnection> = Api::namespaced(admin.clone(), &namespace);
    let connection = wait_until(&connections, "sim", "not Ready", |c| {
        c.status
            .as_ref()
            .is_some_and(|s| is_condition(&s.conditions, "Ready", "False"))
    })
    .await;
    let conditions = connection.status.expect("status").conditions;
    let ready = condition(&conditions, "Ready").expect("Ready");
    assert_eq!(ready.reason, "AuthenticationFailed");
    assert!(ready.message.contains("401"), "{}", ready.message);
    assert!(is_condition(&conditions, "Stalled", "True"));

    let alert = wait_until(&alerts, "low-traffic", "not Synced", |a| {
        a.status
            .as_ref()
            .is_some_and(|s| is_condition(&s.sync.conditions, "Synced", "False"))
    })
    .await;
    let synced = condition(&alert.status.expect("status").sync.conditions, "Synced")
        .cloned()
        .expect("Synced");
    assert_eq!(synced.reason, "AuthenticationFailed");
    common::wait_for_event(&admin, &namespace, "sim", |reason, _| {
        reason == "AuthenticationFailed"
    })
    .await;

    // Settled: no more calls while nothing changes (the retry waits for a fix or 10 minutes).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let settled: u64 = sim.state.call_log().calls.values().sum();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let later: u64 = sim.state.call_log().calls.values().sum();
    eprintln!(
        "API calls with a bad token: {:?}",
        sim.state.call_log().calls
    );
    assert_eq!(
        settled,
        later,
        "calls kept coming: {:?}",
        sim.state.call_log().calls
    );
    assert!(
        later <= 8,
        "too many calls for two objects with a bad token: {:?}",
        sim.state.call_log().calls
    );
    let metrics = operator.metrics.encode().expect("metrics");
    assert!(
        metrics.contains(r#"sigsci_kit_reconcile_failures_total{kind="AgentAlert",error="auth"}"#),
        "{metrics}"
    );

    cleanup(&admin, &namespace).await;
    operator.stop().await.expect("operator stops cleanly");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_token_is_used_by_the_next_reconcile() {
    let (admin, namespace, sim) = setup("rotation").await;
    connect_to_sim(&admin, &namespace, &sim, TOKEN).await;
    let operator = start_operator(&namespace, None, "rotation-test").await;
    let alerts: Api<AgentAlert> = Api::namespaced(admin.clone(), &namespace);
    apply(
        &admin,
        &namespace,
        &AgentAlert::new(
            "low-traffic",
            alert_spec(
                "site-1",
                Metric::AverageRps,
                25,
                AlertDeletionPolicy::Orphan,
            ),
        ),
    )
    .await;
    wait_until(&alerts, "low-traffic", "Ready", |a| alert_ready(a, true)).await;

    // The API stops accepting the old token; the Secret gets the new one.
    sim.state
        .set_credentials(&CredentialsUpdate {
            token: Some("rotated-token".into()),
            password: None,
        })
        .expect("rotate");
    let email = sim.state.config().email.clone();
    put_secret(
        &admin,
        &namespace,
        "sim-credentials",
        &[("email", &email), ("token", "rotated-token")],
    )
    .await;

    apply(
        &admin,
        &namespace,
        &AgentAlert::new(
            "low-traffic",
            alert_spec(
                "site-1",
                Metric::AverageRps,
                33,
                AlertDeletionPolicy::Orphan,
            ),
        ),
    )
    .await;
    wait_until(&alerts, "low-traffic", "Ready at generation 2", |a| {
        a.metadata.generation == Some(2) && alert_ready(a, true)
    })
    .await;
    let truth = sim_client(&sim, "rotated-token");
    assert_eq!(
        remote_alert(&truth, "site-1", "requests_total")
            .await
            .map(|a| a.threshold),
        Some(33)
    );
    let connections: Api<SigSciConnection> = Api::namespaced(admin.clone(), &namespace);
    wait_until(&connections, "sim", "Ready with the new token", |c| {
        c.status
            .as_ref()
            .is_some_and(|s| is_condition(&s.conditions, "Ready", "True"))
    })
    .await;

    cleanup(&admin, &namespace).await;
    operator.stop().await.expect("operator stops cleanly");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_lease_holder_reconciles() {
    let (admin, namespace, sim) = setup("leader").await;
    connect_to_sim(&admin, &namespace, &sim, TOKEN).await;
    let lease_name = format!("{namespace}-lease");
    let lease = |identity: &str| LeaseConfig {
        namespace: common::RELEASE_NAMESPACE.into(),
        name: lease_name.clone(),
        identity: identity.into(),
        lease_duration: Duration::from_secs(3),
        retry_period: Duration::from_millis(300),
    };
    let leases: Api<Lease> = Api::namespaced(admin.clone(), common::RELEASE_NAMESPACE);
    let holder = |lease: &Lease| lease.spec.as_ref().and_then(|s| s.holder_identity.clone());

    let first = start_operator(&namespace, Some(lease("first")), "first").await;
    wait_until(&leases, &lease_name, "held by first", |l| {
        holder(l).as_deref() == Some("first")
    })
    .await;
    let second = start_operator(&namespace, Some(lease("second")), "second").await;

    let alerts: Api<AgentAlert> = Api::namespaced(admin.clone(), &namespace);
    apply(
        &admin,
        &namespace,
        &AgentAlert::new(
            "low-traffic",
            alert_spec(
                "site-1",
                Metric::AverageRps,
                25,
                AlertDeletionPolicy::Orphan,
            ),
        ),
    )
    .await;
    wait_until(&alerts, "low-traffic", "Ready", |a| alert_ready(a, true)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = second.metrics.encode().expect("metrics");
    assert!(
        !idle.contains("sigsci_kit_reconcile_runs_total{"),
        "the follower reconciled: {idle}"
    );
    assert_eq!(
        leases
            .get(&lease_name)
            .await
            .ok()
            .as_ref()
            .and_then(holder)
            .as_deref(),
        Some("first")
    );

    // The leader steps down (releasing the lease); the follower takes over and reconciles.
    first.stop().await.expect("leader stops cleanly");
    wait_until(&leases, &lease_name, "held by second", |l| {
        holder(l).as_deref() == Some("second")
    })
    .await;
    apply(
        &admin,
        &namespace,
        &AgentAlert::new(
            "low-traffic",
            alert_spec(
                "site-1",
                Metric::AverageRps,
                30,
                AlertDeletionPolicy::Orphan,
            ),
        ),
    )
    .await;
    wait_until(&alerts, "low-traffic", "Ready at generation 2", |a| {
        a.metadata.generation == Some(2) && alert_ready(a, true)
    })
    .await;
    let busy = second.metrics.encode().expect("metrics");
    assert!(
        busy.contains(r#"sigsci_kit_reconcile_runs_total{kind="AgentAlert"}"#),
        "{busy}"
    );

    cleanup(&admin, &namespace).await;
    second.stop().await.expect("operator stops cleanly");
    sim.shutdown().await;
}

/// The reconciles that only echo the operator's own writes (claim, annotations, status) are
/// skipped: they make no API call, so the `Ready` reason of the write stays until a resync.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_echoes_of_the_operators_own_writes_make_no_api_call() {
    let (admin, namespace, sim) = setup("echo").await;
    connect_to_sim(&admin, &namespace, &sim, TOKEN).await;
    let mut settings = common::test_settings();
    // No resync within the test, and every listing a reconcile makes reaches the API.
    settings.resync = Duration::from_secs(600);
    settings.api.list_ttl = Duration::ZERO;
    let operator = common::start_operator_with(&namespace, None, "echo-test", settings).await;
    // The connection settled first: a change to it would rightly reconcile the integration.
    // Ready, its status written for this generation (so its controller writes nothing more),
    // and that version delivered to the integrations' watch of connections.
    let connections: Api<SigSciConnection> = Api::namespaced(admin.clone(), &namespace);
    common::eventually("the connection settled and seen", || async {
        let connection = connections.get("sim").await.ok()?;
        let status = connection.status.as_ref()?;
        let settled = is_condition(&status.conditions, "Ready", "True")
            && status.observed_generation == connection.metadata.generation;
        let seen = operator
            .reads
            .seen_by::<SigSciConnection>("Integration", &namespace, "sim");
        (settled && seen == connection.metadata.resource_version).then_some(())
    })
    .await;
    let integrations: Api<Integration> = Api::namespaced(admin.clone(), &namespace);
    let mut spec = integration_spec(
        IntegrationType::Slack,
        IntegrationScope::Site,
        sim_connection(),
    );
    spec.url = Some("https://hooks.slack.test/T1/B1/echo".into());
    apply(&admin, &namespace, &Integration::new("echo", spec)).await;
    wait_until(&integrations, "echo", "Ready", integration_ready).await;
    let api_calls = || -> u64 { sim.state.call_log().calls.values().sum() };
    let calls = api_calls();
    // Time for the watch to deliver the three writes and for their reconciles.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(api_calls(), calls, "API calls after Ready");

    let object = integrations.get("echo").await.expect("get");
    let conditions = object
        .status
        .as_ref()
        .map(|s| s.sync.conditions.clone())
        .unwrap_or_default();
    let ready = condition(&conditions, "Ready").expect("Ready");
    assert_eq!(ready.reason, "Created", "no reconcile ran since: {ready:?}");
    // One run that created it, after as many as failed (the connection not ready yet).
    let metrics = operator.metrics.encode().expect("metrics");
    let count = |prefix: &str| -> u64 {
        metrics
            .lines()
            .filter(|line| line.starts_with(prefix))
            .filter_map(|line| line.rsplit_once(' ')?.1.parse::<u64>().ok())
            .sum()
    };
    let runs = count(r#"sigsci_kit_reconcile_runs_total{kind="Integration"}"#);
    let failures = count(r#"sigsci_kit_reconcile_failures_total{kind="Integration","#);
    assert_eq!(runs, failures + 1, "{metrics}");

    cleanup(&admin, &namespace).await;
    operator.stop().await.expect("operator");
}

//! `managementPolicy: ObserveOnly` and drift for AgentAlert and Integration: nothing written
//! (the simulator's call log), differences in `status.drift` and the `Drifted` condition, an
//! Event and the `sigsci_kit_drifted_objects` gauge; switching to `Full` applies the spec, and
//! drift under `Full` is corrected and recorded. Cosmetic differences are no drift.

use crate::common;

use std::time::Duration;

use common::{
    apply, cleanup, condition, eventually, put_secret, sim_client, sim_connection, start_operator,
    wait_gone, wait_until,
};
use kube::Api;
use kube::api::DeleteParams;
use sigsci::{AlertBody, IntegrationBody, IntegrationUpdate};
use sigsci_config::{
    AlertDeletionPolicy, IntegrationDeletionPolicy, IntegrationScope, IntegrationType,
    ManagementPolicy, Metric,
};
use sigsci_operator::crd::integration::{EventName, ValueSource};
use sigsci_operator::crd::{
    AgentAlert, AgentAlertSpec, DriftEntry, Integration, IntegrationSpec, ManagedStatus,
    SecretKeyRef,
};

const TOKEN: &str = "sim-token";

fn drifted(status: Option<&ManagedStatus>) -> Option<(String, String, String)> {
    let drifted = condition(&status?.sync.conditions, "Drifted")?;
    Some((
        drifted.status.clone(),
        drifted.reason.clone(),
        drifted.message.clone(),
    ))
}

fn drift_fields(status: Option<&ManagedStatus>) -> Vec<(String, String, String)> {
    status
        .map(|s| s.drift.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|entry| {
            (
                entry.field.clone(),
                entry.desired.clone(),
                entry.observed.clone(),
            )
        })
        .collect()
}

fn triple(field: &str, desired: &str, observed: &str) -> (String, String, String) {
    (field.into(), desired.into(), observed.into())
}

fn ready_reason(status: Option<&ManagedStatus>) -> Option<(String, String)> {
    let ready = condition(&status?.sync.conditions, "Ready")?;
    Some((ready.status.clone(), ready.reason.clone()))
}

fn alert_spec(threshold: i64, policy: ManagementPolicy) -> AgentAlertSpec {
    AgentAlertSpec {
        management_policy: policy,
        ..common::alert_spec(
            "site-1",
            Metric::AverageRps,
            threshold,
            AlertDeletionPolicy::Disable,
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_observed_alert_is_never_written_reports_drift_and_is_applied_once_managed() {
    let (admin, namespace, sim) = common::connected_namespace("observe-alert", TOKEN).await;
    let operator = start_operator(&namespace, None, "observe-alert").await;
    let truth = sim_client(&sim, TOKEN);
    let alerts: Api<AgentAlert> = Api::namespaced(admin.clone(), &namespace);
    let seeded = truth
        .list_alerts("site-1")
        .await
        .expect("alerts")
        .into_iter()
        .find(|alert| alert.tag_name == "requests_total")
        .expect("seeded alert");

    // The seeded alert: lessThan 10, every 5 minutes, disabled.
    apply(
        &admin,
        &namespace,
        &AgentAlert::new("observed", alert_spec(25, ManagementPolicy::ObserveOnly)),
    )
    .await;
    let observed = wait_until(&alerts, "observed", "Drifted", |a| {
        drifted(a.status.as_ref()).is_some_and(|(status, ..)| status == "True")
    })
    .await;
    let status = observed.status.as_ref();
    assert_eq!(
        ready_reason(status),
        Some(("True".into(), "Observed".into()))
    );
    assert_eq!(
        status.and_then(|s| s.sync.remote_id.clone()),
        Some(seeded.id.clone()),
        "the alert it observes is recorded"
    );
    assert_eq!(
        drift_fields(status),
        vec![
            triple("threshold", "25", "10"),
            triple("interval", "10", "5"),
            triple("enabled", "true", "false"),
        ]
    );
    let since: Vec<DriftEntry> = status.map(|s| s.drift.clone()).unwrap_or_default();
    assert!(since.iter().all(|e| e.site.is_none()), "one site: no site");
    common::wait_for_metric(
        &operator,
        r#"sigsci_kit_drifted_objects{kind="AgentAlert"} 1"#,
    )
    .await;

    // Several resyncs (every 2 s): still nothing written, the drift kept with its first sighting,
    // one Event.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        common::api_writes(&sim),
        0,
        "{:?}",
        sim.state.call_log().calls
    );
    let later = alerts.get("observed").await.expect("get");
    assert_eq!(later.status.map(|s| s.drift), Some(since));
    let drift_events: Vec<_> = common::events_about(&admin, &namespace, "observed")
        .await
        .into_iter()
        .filter(|(reason, _)| reason == "Drifted")
        .collect();
    assert_eq!(drift_events.len(), 1, "{drift_events:?}");
    assert!(
        drift_events[0]
            .1
            .contains("threshold: desired 25, observed 10"),
        "{drift_events:?}"
    );

    // Someone makes the alert match: the drift is gone.
    truth
        .update_alert(
            "site-1",
            &seeded.id,
            &AlertBody {
                threshold: Some(25),
                interval: Some(10),
                enabled: Some(true),
                ..AlertBody::default()
            },
        )
        .await
        .expect("match the spec");
    let resolved = wait_until(&alerts, "observed", "no longer drifted", |a| {
        drifted(a.status.as_ref()).is_some_and(|(status, ..)| status == "False")
    })
    .await;
    assert_eq!(
        drifted(resolved.status.as_ref()).map(|(_, reason, _)| reason),
        Some("DriftResolved".into())
    );
    assert!(drift_fields(resolved.status.as_ref()).is_empty());
    common::wait_for_metric(
        &operator,
        r#"sigsci_kit_drifted_objects{kind="AgentAlert"} 0"#,
    )
    .await;
    let before_switch = common::api_writes(&sim);
    assert_eq!(before_switch, 1, "only the test's own update");

    // Switching to Full applies the spec (a changed threshold here).
    apply(
        &admin,
        &namespace,
        &AgentAlert::new("observed", alert_spec(30, ManagementPolicy::Full)),
    )
    .await;
    let managed = wait_until(&alerts, "observed", "applied under Full", |a| {
        a.metadata.generation == Some(2)
            && a.status.as_ref().is_some_and(|s| {
                s.sync.observed_generation == Some(2)
                    && ready_reason(Some(s)).is_some_and(|(status, _)| status == "True")
            })
    })
    .await;
    assert!(drift_fields(managed.status.as_ref()).is_empty());
    // Applying the spec is an update, not a drift correction.
    common::wait_for_event(&admin, &namespace, "observed", |reason, note| {
        reason == "Updated" && note.contains("updated threshold")
    })
    .await;
    let remote = truth.get_alert("site-1", &seeded.id).await.expect("alert");
    assert_eq!((remote.threshold, remote.enabled), (30, true));

    // Drift under Full is corrected, and the correction recorded (condition and Event).
    truth
        .update_alert(
            "site-1",
            &seeded.id,
            &AlertBody {
                threshold: Some(77),
                ..AlertBody::default()
            },
        )
        .await
        .expect("drift");
    let corrected = wait_until(&alerts, "observed", "drift corrected", |a| {
        drifted(a.status.as_ref()).is_some_and(|(_, reason, _)| reason == "DriftCorrected")
    })
    .await;
    let (status, _, message) = drifted(corrected.status.as_ref()).expect("Drifted");
    assert_eq!(status, "False");
    assert!(
        message.contains("threshold: desired 30, observed 77"),
        "{message}"
    );
    assert_eq!(
        truth
            .get_alert("site-1", &seeded.id)
            .await
            .expect("alert")
            .threshold,
        30
    );
    common::wait_for_event(&admin, &namespace, "observed", |reason, note| {
        reason == "DriftCorrected" && note.contains("observed 77")
    })
    .await;
    // Corrected once: the next resyncs find it in sync and write nothing.
    let settled = common::api_writes(&sim);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        common::api_writes(&sim),
        settled,
        "{:?}",
        sim.state.call_log().calls
    );

    cleanup(&admin, &namespace).await;
    operator.stop().await.expect("operator stops cleanly");
    sim.shutdown().await;
}

fn slack(policy: ManagementPolicy) -> IntegrationSpec {
    IntegrationSpec {
        connection_ref: sim_connection(),
        scope: IntegrationScope::Site,
        site: Some("site-1".into()),
        kind: IntegrationType::Slack,
        url: None,
        url_from: Some(ValueSource {
            secret_key_ref: SecretKeyRef {
                name: "slack-hook".into(),
                key: "url".into(),
            },
        }),
        events: vec![EventName("agentAlert".into()), EventName("flag".into())],
        fields: Default::default(),
        deletion_policy: IntegrationDeletionPolicy::Delete,
        management_policy: policy,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_observed_integration_shows_drift_without_its_secret_and_is_never_deleted() {
    let (admin, namespace, sim) = common::connected_namespace("observe-integration", TOKEN).await;
    let truth = sim_client(&sim, TOKEN);
    // Made by hand, written differently: host case, trailing slash, event order.
    let existing = truth
        .create_site_integration(
            "site-1",
            &IntegrationBody {
                integration_type: "slack".into(),
                url: "https://HOOKS.slack.test/T1/B1/observed/".into(),
                events: vec!["flag".into(), "agentAlert".into()],
                fields: None,
            },
        )
        .await
        .expect("hand-made integration");
    put_secret(
        &admin,
        &namespace,
        "slack-hook",
        &[("url", "https://hooks.slack.test/T1/B1/observed")],
    )
    .await;
    let before = common::api_writes(&sim);
    let operator = start_operator(&namespace, None, "observe-integration").await;
    let integrations: Api<Integration> = Api::namespaced(admin.clone(), &namespace);
    apply(
        &admin,
        &namespace,
        &Integration::new("observed", slack(ManagementPolicy::ObserveOnly)),
    )
    .await;
    let matched = wait_until(&integrations, "observed", "observed", |i| {
        drifted(i.status.as_ref()).is_some()
    })
    .await;
    let status = matched.status.as_ref();
    assert_eq!(
        status.and_then(|s| s.sync.remote_id.clone()),
        Some(existing.id.clone()),
        "the hand-made integration is found despite the cosmetic differences"
    );
    assert_eq!(
        drifted(status).map(|(status, reason, _)| (status, reason)),
        Some(("False".into(), "NoDrift".into()))
    );

    // Events changed by hand, and the Secret now names another webhook: both reported, the
    // URLs never shown.
    truth
        .update_site_integration(
            "site-1",
            &existing.id,
            &IntegrationUpdate {
                url: None,
                events: Some(vec!["flag".into()]),
                fields: None,
            },
        )
        .await
        .expect("edit by hand");
    put_secret(
        &admin,
        &namespace,
        "slack-hook",
        &[("url", "https://hooks.slack.test/T1/B1/rotated")],
    )
    .await;
    let drifting = wait_until(&integrations, "observed", "two fields drifted", |i| {
        drift_fields(i.status.as_ref()).len() == 2
    })
    .await;
    assert_eq!(
        drift_fields(drifting.status.as_ref()),
        vec![
            triple("url", "(sensitive: differs)", "(sensitive: differs)"),
            triple("events", r#"["agentAlert","flag"]"#, r#"["flag"]"#),
        ]
    );
    let shown = format!(
        "{}{:?}",
        serde_json::to_string(&drifting.status).expect("json"),
        common::events_about(&admin, &namespace, "observed").await
    );
    for secret in ["T1/B1/observed", "T1/B1/rotated"] {
        assert!(!shown.contains(secret), "{secret} shown: {shown}");
    }
    common::wait_for_metric(
        &operator,
        r#"sigsci_kit_drifted_objects{kind="Integration"} 1"#,
    )
    .await;

    // A Full integration whose remote twin differs only cosmetically: adopted, never rewritten.
    let mut full = slack(ManagementPolicy::Full);
    full.url_from = None;
    full.url = Some("https://hooks.slack.test/T1/B1/observed".into());
    full.site = Some("site-2".into());
    truth
        .create_site_integration(
            "site-2",
            &IntegrationBody {
                integration_type: "slack".into(),
                url: "https://Hooks.Slack.Test/T1/B1/observed/".into(),
                events: vec!["flag".into(), "agentAlert".into(), "flag".into()],
                fields: None,
            },
        )
        .await
        .expect("twin");
    apply(&admin, &namespace, &Integration::new("full", full)).await;
    wait_until(&integrations, "full", "adopted", common::integration_ready).await;
    let reasons = eventually("an Adopted event", || async {
        let reasons: Vec<String> = common::events_about(&admin, &namespace, "full")
            .await
            .into_iter()
            .map(|(reason, _)| reason)
            .collect();
        (!reasons.is_empty()).then_some(reasons)
    })
    .await;
    assert_eq!(reasons, vec!["Adopted"]);

    // Nothing written by the operator across several resyncs.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        common::api_writes(&sim),
        before + 2,
        "only the test's own writes: {:?}",
        sim.state.call_log().calls
    );

    // Deleting an ObserveOnly object (deletionPolicy Delete) leaves the integration.
    integrations
        .delete("observed", &DeleteParams::default())
        .await
        .expect("delete");
    wait_gone(&integrations, "observed").await;
    common::wait_for_metric(
        &operator,
        r#"sigsci_kit_drifted_objects{kind="Integration"} 0"#,
    )
    .await;
    let kept = truth
        .get_site_integration("site-1", &existing.id)
        .await
        .expect("still there");
    assert_eq!(kept.events, vec!["flag"]);
    assert_eq!(
        common::api_writes(&sim),
        before + 2,
        "deletion wrote nothing"
    );

    cleanup(&admin, &namespace).await;
    operator.stop().await.expect("operator stops cleanly");
    sim.shutdown().await;
}

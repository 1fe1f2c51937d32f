//! The CRDs' schemas and CEL rules on the real API server: what the Signal Sciences API would
//! reject is rejected at admission, with a message naming the field and the fix.

use crate::common;

use kube::api::{Patch, PatchParams, PostParams, ValidationDirective};
use kube::{Api, Client};
use serde_json::{Value, json};
use sigsci_operator::crd::{
    AgentAlert, ClusterSigSciConnection, Integration, SigSciConnection, SigSciList,
};

/// Create `object` (JSON, as a user would write it) and return the API server's refusal.
async fn rejection<K>(api: &Api<K>, object: Value) -> String
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let typed: K = serde_json::from_value(object.clone())
        .unwrap_or_else(|e| panic!("test object {object} must parse: {e}"));
    match api.create(&PostParams::default(), &typed).await {
        Ok(created) => panic!("expected a rejection, got {created:?}"),
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 422, "{status:?}");
            status.message
        }
        Err(other) => panic!("unexpected error {other}"),
    }
}

fn alert(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "sigsci-kit.io/v1alpha1", "kind": "AgentAlert", "metadata": {"name": name}, "spec": spec})
}

fn integration(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "sigsci-kit.io/v1alpha1", "kind": "Integration", "metadata": {"name": name}, "spec": spec})
}

async fn setup() -> (Client, String) {
    common::install_chart().await;
    let admin = common::admin().await;
    let namespace = common::namespace(&admin, "admission").await;
    (admin, namespace)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_agent_alerts_are_rejected_with_readable_messages() {
    let (admin, namespace) = setup().await;
    let alerts: Api<AgentAlert> = Api::namespaced(admin.clone(), &namespace);
    let message = rejection(
        &alerts,
        alert(
            "bad",
            json!({"connectionRef": {"name": "sim"}, "site": "Site One", "metric": "averageRPS",
                   "operator": "lessThan", "threshold": 4000000, "interval": 7}),
        ),
    )
    .await;
    for expected in [
        "spec.interval: Invalid value: 7: interval must be 5, 10 or 60 (minutes)",
        "spec.threshold: Invalid value: 4000000: threshold must be between 0 and 3600000",
        "site must be a site short name",
    ] {
        assert!(message.contains(expected), "{expected:?} not in {message}");
    }

    // A valid one is admitted with the documented defaults, then its site cannot move.
    let valid: AgentAlert = serde_json::from_value(alert(
        "good",
        json!({"connectionRef": {"name": "sim"}, "site": "site-1", "metric": "onlineAgentCount",
               "operator": "equalTo", "threshold": 0, "interval": 5}),
    ))
    .expect("valid alert");
    let created = alerts
        .create(&PostParams::default(), &valid)
        .await
        .expect("valid alert admitted");
    assert!(created.spec.enabled, "enabled defaults to true");
    assert_eq!(
        created.spec.deletion_policy,
        sigsci_config::AlertDeletionPolicy::Disable
    );
    let moved = alerts
        .patch(
            "good",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"site": "site-2"}})),
        )
        .await
        .expect_err("site is immutable");
    assert!(moved.to_string().contains("site is immutable"), "{moved}");
    alerts
        .delete("good", &Default::default())
        .await
        .expect("delete");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_integrations_are_rejected_with_readable_messages() {
    let (admin, namespace) = setup().await;
    let integrations: Api<Integration> = Api::namespaced(admin.clone(), &namespace);
    let cases = [
        (
            json!({"connectionRef": {"name": "sim"}, "type": "slack", "url": "https://hooks.example.com/x"}),
            "spec.site: Invalid value: site is required when scope is Site",
        ),
        (
            json!({"connectionRef": {"name": "sim"}, "scope": "Corp", "site": "site-1", "type": "slack", "url": "https://h.example.com/x"}),
            "site is required when scope is Site and not allowed when scope is Corp",
        ),
        (
            json!({"connectionRef": {"name": "sim"}, "scope": "Corp", "type": "pagerduty", "url": "https://events.example.com/x"}),
            "corp integrations support only mailingList, slack, microsoftTeams and microsoftTeamsWorkflow",
        ),
        (
            json!({"connectionRef": {"name": "sim"}, "site": "site-1", "type": "generic", "url": "http://hooks.example.com/x"}),
            "url must be an https:// URL for webhook types",
        ),
        (
            json!({"connectionRef": {"name": "sim"}, "site": "site-1", "type": "mailingList", "url": "not-an-address"}),
            "or an e-mail address for mailingList",
        ),
        (
            json!({"connectionRef": {"name": "sim"}, "site": "site-1", "type": "slack"}),
            "set exactly one of url or urlFrom",
        ),
        (
            json!({"connectionRef": {"name": "sim"}, "site": "site-1", "type": "datadog", "fields": {"site": {"value": "us1"}}}),
            "datadog integrations need fields.site (e.g. us1) and fields.apiKey",
        ),
        (
            json!({"connectionRef": {"name": "sim"}, "site": "site-1", "type": "slack", "url": "https://h.example.com/x", "events": ["flag", "agentAlerts"]}),
            "spec.events: Invalid value",
        ),
        (
            json!({"connectionRef": {"name": "sim"}, "scope": "Corp", "type": "slack", "url": "https://h.example.com/x", "events": ["flag"]}),
            "events must be documented names: flag, agentAlert, loggingModeChanged, listCreated, webhookEvents for a site; newSite, enableSSO, corpUpdated, listDeleted, webhookEvents for the corp",
        ),
        (
            json!({"connectionRef": {"name": "sim"}, "site": "site-1", "type": "webhook", "url": "https://h.example.com"}),
            "spec.type: Unsupported value: \"webhook\"",
        ),
    ];
    for (index, (spec, expected)) in cases.into_iter().enumerate() {
        let object = integration(&format!("bad-{index}"), spec.clone());
        // Unknown enum values do not parse into the Rust type; send those raw.
        let message = if spec["type"] == "webhook" {
            raw_rejection(&admin, &namespace, object).await
        } else {
            rejection(&integrations, object).await
        };
        assert!(
            message.contains(expected),
            "case {index}: {expected:?} not in {message}"
        );
    }

    // type is immutable, as in the API.
    let slack: Integration = serde_json::from_value(integration(
        "slack",
        json!({"connectionRef": {"name": "sim"}, "site": "site-1", "type": "slack", "url": "https://hooks.example.com/x"}),
    ))
    .expect("valid integration");
    integrations
        .create(&PostParams::default(), &slack)
        .await
        .expect("admitted");
    let retyped = integrations
        .patch(
            "slack",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"type": "generic"}})),
        )
        .await
        .expect_err("type is immutable");
    assert!(
        retyped.to_string().contains("type is immutable"),
        "{retyped}"
    );
    integrations
        .delete("slack", &Default::default())
        .await
        .expect("delete");
}

/// POST a raw JSON object (for values the Rust types cannot even hold).
async fn raw_rejection(admin: &Client, namespace: &str, object: Value) -> String {
    raw_rejection_at(
        admin,
        &format!("/apis/sigsci-kit.io/v1alpha1/namespaces/{namespace}/integrations"),
        object,
    )
    .await
}

async fn raw_rejection_at(admin: &Client, uri: &str, object: Value) -> String {
    let request = http::Request::post(uri)
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&object).expect("json"))
        .expect("request");
    match admin.request::<Value>(request).await {
        Err(kube::Error::Api(status)) => status.message,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_need_a_corp_name_an_http_url_and_the_right_secret_scope() {
    let (admin, namespace) = setup().await;
    let connections: Api<SigSciConnection> = Api::namespaced(admin.clone(), &namespace);
    let message = rejection(
        &connections,
        json!({"apiVersion": "sigsci-kit.io/v1alpha1", "kind": "SigSciConnection", "metadata": {"name": "bad"},
               "spec": {"corp": "Big Corp", "apiURL": "ftp://files.example.com",
                        "credentialsSecretRef": {"name": "creds", "namespace": "elsewhere"}}}),
    )
    .await;
    for expected in [
        "corp must be a corp short name",
        "apiURL must be an http(s) URL",
        "credentialsSecretRef.namespace is not allowed",
    ] {
        assert!(message.contains(expected), "{expected:?} not in {message}");
    }

    let cluster: Api<ClusterSigSciConnection> = Api::all(admin.clone());
    let message = rejection(
        &cluster,
        json!({"apiVersion": "sigsci-kit.io/v1alpha1", "kind": "ClusterSigSciConnection",
               "metadata": {"name": format!("{namespace}-bad")},
               "spec": {"corp": "corp", "credentialsSecretRef": {"name": "creds"}}}),
    )
    .await;
    assert!(
        message
            .contains("credentialsSecretRef.namespace is required for a ClusterSigSciConnection"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_fields_are_rejected_by_name_under_strict_field_validation() {
    let (admin, namespace) = setup().await;
    let typo = alert(
        "typo",
        json!({"connectionRef": {"name": "sim", "nmae": "sim"}, "site": "site-1", "metric": "averageRPS",
               "operator": "lessThan", "treshold": 5, "threshold": 5, "interval": 5}),
    );
    // kubectl apply --server-side (strict by default) ...
    let alerts: Api<AgentAlert> = Api::namespaced(admin.clone(), &namespace);
    let applied = alerts
        .patch(
            "typo",
            &PatchParams::apply("admission-test").validation(ValidationDirective::Strict),
            &Patch::Apply(&typo),
        )
        .await
        .expect_err("unknown fields are refused");
    // ... and kubectl create/apply (client-side), which POST with fieldValidation=Strict.
    let created = raw_rejection_at(
        &admin,
        &format!(
            "/apis/sigsci-kit.io/v1alpha1/namespaces/{namespace}/agentalerts?fieldValidation=Strict"
        ),
        typo,
    )
    .await;
    assert!(
        applied
            .to_string()
            .contains(".spec.treshold: field not declared in schema"),
        "{applied}"
    );
    assert!(
        created.contains(
            "strict decoding error: unknown field \"spec.connectionRef.nmae\", unknown field \"spec.treshold\""
        ),
        "{created}"
    );
}

fn list(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "sigsci-kit.io/v1alpha1", "kind": "SigSciList", "metadata": {"name": name}, "spec": spec})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_lists_are_rejected_with_readable_messages() {
    let (admin, namespace) = setup().await;
    let lists: Api<SigSciList> = Api::namespaced(admin.clone(), &namespace);
    let base = |kind: &str, entries: Value| {
        json!({"connectionRef": {"name": "sim"}, "site": "site-1", "name": "block", "type": kind,
               "entries": entries})
    };
    let cases = [
        (
            base(
                "ip",
                json!([{"value": "198.51.100.0/24"}, {"value": "10.0.0.0/33"}]),
            ),
            "entries of an ip list must be IPv4/IPv6 addresses or CIDR ranges",
        ),
        (
            base("country", json!([{"value": "DE"}, {"value": "Germany"}])),
            "entries of a country list must be ISO 3166-1 alpha-2 codes",
        ),
        (
            json!({"connectionRef": {"name": "sim"}, "scope": "Corp", "site": "site-1", "name": "c",
                   "type": "string"}),
            "site is required when scope is Site and not allowed when scope is Corp",
        ),
        (
            base(
                "ip",
                json!([{"value": "192.0.2.1"}, {"value": "192.0.2.1"}]),
            ),
            "Duplicate value",
        ),
    ];
    for (spec, expected) in cases {
        let message = rejection(&lists, list("bad", spec.clone())).await;
        assert!(
            message.contains(expected),
            "{spec}: {expected:?} not in {message}"
        );
    }

    // A valid list is admitted with an expiry and the default policies; type and name stay.
    let valid: SigSciList = serde_json::from_value(list(
        "good",
        base(
            "ip",
            json!([{"value": "198.51.100.0/24", "expires": "2026-12-03T04:00:00Z",
                    "comment": "incident 42"}, {"value": "2001:db8::1"}]),
        ),
    ))
    .expect("valid list");
    let created = lists
        .create(&PostParams::default(), &valid)
        .await
        .expect("valid list admitted");
    assert_eq!(
        created.spec.management_policy,
        sigsci_config::ManagementPolicy::Full
    );
    assert_eq!(
        created.spec.deletion_policy,
        sigsci_config::IntegrationDeletionPolicy::Delete
    );
    let retyped = lists
        .patch(
            "good",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"type": "string"}})),
        )
        .await
        .expect_err("type is immutable");
    assert!(
        retyped.to_string().contains("type is immutable"),
        "{retyped}"
    );
    lists
        .delete("good", &Default::default())
        .await
        .expect("delete");
}

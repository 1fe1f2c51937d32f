//! `sigsci-kit config plan|apply` without a cluster: the operator's manifests read from a
//! directory, diffed against the simulator with the shared plan, applied, and converged.

use std::path::Path;

use std::collections::BTreeMap;

use sigsci_config::{
    Change, DesiredState, Outcome, PlanOptions, Reads, Verb, bindings, plan, plan_removals,
    render_plan, render_plan_with_removals,
};
use sigsci_operator::manifests::{self, ConnectionGroup, ManifestError, SecretLookup};
use sigsci_operator::remote;
use sigsci_sim::{RunningSim, SimConfig};

fn manifests_for(sim: &RunningSim) -> String {
    format!(
        r#"
apiVersion: sigsci-kit.io/v1alpha1
kind: SigSciConnection
metadata:
  name: prod
spec:
  corp: testcorp
  apiURL: {url}
  credentialsSecretRef:
    name: sigsci-credentials
---
apiVersion: sigsci-kit.io/v1alpha1
kind: AgentAlert
metadata:
  name: low-traffic
spec:
  connectionRef: {{name: prod}}
  site: site-1
  metric: averageRPS
  operator: lessThan
  threshold: 25
  interval: 10
---
apiVersion: v1
kind: Secret
metadata:
  name: slack-hook
stringData:
  url: https://hooks.slack.test/T1/B1/very-secret
---
apiVersion: sigsci-kit.io/v1alpha1
kind: Integration
metadata:
  name: slack
spec:
  connectionRef: {{name: prod}}
  site: site-1
  type: slack
  urlFrom:
    secretKeyRef: {{name: slack-hook, key: url}}
  events: [flag, agentAlert]
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: not-ours
"#,
        url = sim.base_url
    )
}

async fn start_sim() -> RunningSim {
    sigsci_sim::start(
        SimConfig::default(),
        "127.0.0.1:0".parse().expect("address"),
    )
    .await
    .expect("simulator starts")
}

fn client(group: &ConnectionGroup) -> sigsci::Client {
    sigsci::Client::builder(
        &group.target.api_url,
        &group.target.corp,
        sigsci::Credentials::token("sim@example.com", "sim-token"),
    )
    .build()
    .expect("client")
}

fn load(dir: &Path) -> Result<Vec<ConnectionGroup>, ManifestError> {
    let loaded = manifests::load_dir(dir, "gitops")?;
    manifests::desired_by_connection(
        &loaded,
        &SecretLookup::new(&loaded.secrets, |_| None),
        &manifests::CorpSites::new(),
    )
}

async fn plan_of(group: &ConnectionGroup) -> Vec<Change> {
    let observed = manifests::observe(&client(group), &group.desired.reads())
        .await
        .expect("observe");
    plan(
        &group.desired,
        &observed,
        PlanOptions {
            now: chrono::Utc::now(),
        },
    )
    .expect("plan")
}

#[tokio::test]
async fn plan_shows_the_field_diff_and_apply_converges() {
    let sim = start_sim().await;
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("site-1")).expect("subdir");
    std::fs::write(dir.path().join("site-1/all.yaml"), manifests_for(&sim)).expect("write");

    let groups = load(dir.path()).expect("manifests load");
    assert_eq!(groups.len(), 1);
    let group = &groups[0];
    assert_eq!(group.target.connection, "SigSciConnection gitops/prod");

    let changes = plan_of(group).await;
    let text = render_plan(&changes);
    for expected in [
        "  # AgentAlert gitops/low-traffic: site site-1 alert requests_total (id ",
        ") will be updated in place\n  ~ site site-1 alert requests_total {\n      ~ threshold: 10 -> 25\n      ~ interval:  5 -> 10\n      ~ enabled:   false -> true\n    }\n",
        "  # Integration gitops/slack: site site-1 slack integration will be created\n",
        "      + url:    (sensitive value)\n      + events: [\"agentAlert\",\"flag\"]\n",
        "Plan: 1 to create, 1 to change, 0 to delete.\n",
    ] {
        assert!(text.contains(expected), "{expected:?} not in:\n{text}");
    }
    assert!(!text.contains("very-secret"), "secrets never show:\n{text}");

    let client = client(group);
    for change in &changes {
        remote::execute(&client, change).await.expect("apply");
    }
    let converged = plan_of(group).await;
    assert_eq!(
        render_plan(&converged),
        "No changes. The remote configuration matches the manifests.\n"
    );
    let alert = client
        .list_alerts("site-1")
        .await
        .expect("alerts")
        .into_iter()
        .find(|a| a.tag_name == "requests_total");
    assert_eq!(
        alert.map(|a| (a.threshold, a.interval, a.enabled)),
        Some((25, 10, true))
    );

    // What an apply records: both objects, with their manifests' deletion policies.
    let loaded = manifests::load_dir(dir.path(), "gitops").expect("manifests load");
    let observed = manifests::observe(&client, &group.desired.reads())
        .await
        .expect("observe");
    let records = manifests::records(&loaded, group, &bindings(&group.desired, &observed));
    let recorded: Vec<(String, String)> = records
        .iter()
        .map(|r| (r.address().to_string(), r.object.policy().to_string()))
        .collect();
    assert_eq!(
        recorded,
        [
            (
                "AgentAlert gitops/low-traffic".to_string(),
                "Disable".to_string()
            ),
            ("Integration gitops/slack".to_string(), "Delete".to_string()),
        ]
    );
    assert!(
        records[0]
            .file
            .as_deref()
            .is_some_and(|file| file.ends_with("site-1/all.yaml")),
        "{records:?}"
    );

    // Someone adds an integration by hand, then every manifest goes: the recorded objects are
    // removed under their policies, the hand-made integration is never named.
    let stray = client
        .create_site_integration(
            "site-1",
            &sigsci::IntegrationBody {
                integration_type: "generic".into(),
                url: "https://hooks.example.com/stray".into(),
                events: vec!["flag".into()],
                fields: None,
            },
        )
        .await
        .expect("stray integration");
    assert!(plan_of(group).await.is_empty());
    let mut reads = Reads::default();
    for record in &records {
        reads.add(record);
    }
    let observed = manifests::observe(&client, &reads).await.expect("observe");
    let removals = plan_removals(
        &records,
        &DesiredState::default(),
        &BTreeMap::new(),
        &observed,
    );
    let verbs: Vec<Option<Verb>> = removals
        .iter()
        .map(|r| r.change().map(Change::verb))
        .collect();
    assert_eq!(verbs, [Some(Verb::Update), Some(Verb::Delete)]);
    let text = render_plan_with_removals(&[], &removals, &[]);
    assert!(text.contains("~ enabled: true -> false"), "{text}");
    assert!(!text.contains(&stray.id), "{text}");
    for removal in &removals {
        if let Outcome::Write(change) = &removal.outcome {
            remote::execute(&client, change).await.expect("removal");
        }
    }
    let alerts = client.list_alerts("site-1").await.expect("alerts");
    let alert = alerts.iter().find(|a| a.tag_name == "requests_total");
    assert_eq!(
        alert.map(|a| a.enabled),
        Some(false),
        "Disable keeps the alert, disabled"
    );
    let integrations = client
        .list_site_integrations("site-1")
        .await
        .expect("integrations");
    let ids: Vec<&str> = integrations.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(
        ids,
        [stray.id.as_str()],
        "only the hand-made integration is left"
    );
    sim.shutdown().await;
}

#[test]
fn manifest_problems_name_the_object_and_the_fix() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = "apiVersion: sigsci-kit.io/v1alpha1\n";
    std::fs::write(
        dir.path().join("a.yaml"),
        format!(
            "{base}kind: SigSciConnection\nmetadata: {{name: prod}}\nspec: {{corp: testcorp, credentialsSecretRef: {{name: c}}}}\n---\n\
             {base}kind: Integration\nmetadata: {{name: hook}}\nspec:\n  connectionRef: {{name: prod}}\n  site: site-1\n  type: slack\n  \
             urlFrom: {{secretKeyRef: {{name: slack-hook, key: url}}}}\n"
        ),
    )
    .expect("write");
    let error = load(dir.path()).expect_err("secret missing").to_string();
    assert_eq!(
        error,
        "Integration gitops/hook: Secret slack-hook key url not found: add the Secret manifest or set SIGSCI_KIT_SECRET_SLACK_HOOK_URL"
    );

    std::fs::write(
        dir.path().join("b.yaml"),
        format!(
            "{base}kind: AgentAlert\nmetadata: {{name: bad, namespace: ops}}\nspec:\n  connectionRef: {{name: prod}}\n  site: site-1\n  \
             metric: averageRPS\n  operator: lessThan\n  threshold: 5\n  interval: 7\n"
        ),
    )
    .expect("write");
    std::fs::remove_file(dir.path().join("a.yaml")).expect("remove");
    let error = load(dir.path())
        .expect_err("connection missing")
        .to_string();
    assert_eq!(
        error,
        "AgentAlert ops/bad: SigSciConnection prod is not among the manifests"
    );

    std::fs::write(
        dir.path().join("a.yaml"),
        format!("{base}kind: SigSciConnection\nmetadata: {{name: prod, namespace: ops}}\nspec: {{corp: testcorp, credentialsSecretRef: {{name: c}}}}\n"),
    )
    .expect("write");
    let error = load(dir.path()).expect_err("invalid interval");
    assert_eq!(
        error.to_string(),
        "invalid manifests: AgentAlert ops/bad spec.interval: must be one of 5, 10 or 60 (minutes), got 7"
    );
    // The CLI prints the cause chain (`{:#}`): the problems must show once.
    assert_eq!(
        format!("{:#}", anyhow::Error::new(error)),
        "invalid manifests: AgentAlert ops/bad spec.interval: must be one of 5, 10 or 60 (minutes), got 7"
    );

    std::fs::write(
        dir.path().join("c.yaml"),
        format!("{base}kind: AgentAlert\nmetadata: {{name: x}}\nspec: {{site: 3}}\n"),
    )
    .expect("write");
    let error = load(dir.path()).expect_err("unparsable").to_string();
    assert!(error.contains("c.yaml: document 1: "), "{error}");
}

#[test]
fn unknown_spec_fields_are_rejected_with_their_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("alert.yaml");
    std::fs::write(
        &file,
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: not-ours}\ndata: {anything: goes}\n---\n\
         apiVersion: sigsci-kit.io/v1alpha1\nkind: AgentAlert\nmetadata: {name: typo, labels: {team: sre}}\nspec:\n  \
         connectionRef: {name: prod, nmae: prod}\n  site: site-1\n  metric: averageRPS\n  operator: lessThan\n  \
         treshold: 5\n  threshold: 5\n  interval: 5\n",
    )
    .expect("write");
    let error = load(dir.path()).expect_err("unknown fields").to_string();
    assert_eq!(
        error,
        format!(
            "{}: document 2: unknown field \"spec.connectionRef.nmae\", unknown field \"spec.treshold\"",
            file.display()
        )
    );
}

fn list_manifests(sim: &RunningSim, extra: &str) -> String {
    format!(
        r#"
apiVersion: sigsci-kit.io/v1alpha1
kind: SigSciConnection
metadata: {{name: prod}}
spec:
  corp: testcorp
  apiURL: {url}
  credentialsSecretRef: {{name: sigsci-credentials}}
---
apiVersion: sigsci-kit.io/v1alpha1
kind: SigSciList
metadata: {{name: incident-42}}
spec:
  connectionRef: {{name: prod}}
  site: site-1
  name: incident-42
  type: ip
  description: scanner ranges
  entries:
  - {{value: 198.51.100.0/24}}
  - {{value: 203.0.113.7, expires: "2026-12-02T06:00:00Z", comment: 24h block}}
  - {{value: 192.0.2.1, expires: "2026-12-02T03:00:00Z", comment: already over}}
{extra}"#,
        url = sim.base_url
    )
}

fn at(hour: u32) -> chrono::DateTime<chrono::Utc> {
    use chrono::TimeZone;
    chrono::Utc
        .with_ymd_and_hms(2026, 12, 2, hour, 0, 0)
        .single()
        .expect("time")
}

async fn list_plan(group: &ConnectionGroup, now: chrono::DateTime<chrono::Utc>) -> Vec<Change> {
    let observed = manifests::observe(&client(group), &group.desired.reads())
        .await
        .expect("observe");
    plan(&group.desired, &observed, PlanOptions { now }).expect("plan")
}

async fn remote_entries(group: &ConnectionGroup) -> Vec<String> {
    client(group)
        .get_list(sigsci::ListScope::Site("site-1"), "site.incident-42")
        .await
        .expect("list")
        .entries
}

#[tokio::test]
async fn lists_are_reconciled_as_sets_with_expiry_and_drift() {
    let sim = start_sim().await;
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("list.yaml"), list_manifests(&sim, "")).expect("write");
    let groups = load(dir.path()).expect("manifests load");
    let group = &groups[0];
    let client = client(group);

    // Created with the active entries only.
    let changes = list_plan(group, at(4)).await;
    let text = render_plan(&changes);
    assert!(
        text.contains("  + site site-1 list \"incident-42\" {")
            && text.contains(r#"+ entries:     ["198.51.100.0/24","203.0.113.7"]"#),
        "{text}"
    );
    for change in &changes {
        remote::execute(&client, change).await.expect("apply");
    }
    assert_eq!(
        remote_entries(group).await,
        ["198.51.100.0/24", "203.0.113.7"]
    );
    assert!(list_plan(group, at(4)).await.is_empty(), "converged");

    // An entry added behind our back is drift: reported, and removed under Full.
    client
        .update_list(
            sigsci::ListScope::Site("site-1"),
            "site.incident-42",
            &sigsci::ListUpdate {
                description: None,
                entries: sigsci::EntryChanges {
                    additions: vec!["10.66.0.0/16".into()],
                    deletions: vec![],
                },
            },
        )
        .await
        .expect("drift");
    let observed = manifests::observe(&client, &group.desired.reads())
        .await
        .expect("observe");
    let listed = &observed.lists[&sigsci_config::Location::Site("site-1".into())];
    let report = group.desired.lists[0].report(listed.first(), at(4));
    assert_eq!(report.drift, ["10.66.0.0/16"]);
    assert_eq!((report.active, report.expired), (2, 1));
    assert_eq!(report.next_expiry, Some(at(6)));
    let changes = list_plan(group, at(4)).await;
    assert!(
        render_plan(&changes).contains(r#"~ entries removed: ["10.66.0.0/16"] -> (none)"#),
        "{}",
        render_plan(&changes)
    );
    for change in &changes {
        remote::execute(&client, change).await.expect("apply");
    }

    // At 06:00 exactly the 24-hour entry expires; the rest stays.
    assert!(list_plan(group, at(5)).await.is_empty());
    let changes = list_plan(group, at(6)).await;
    assert!(
        render_plan(&changes).contains(r#"~ entries removed: ["203.0.113.7"] -> (none)"#),
        "{}",
        render_plan(&changes)
    );
    for change in &changes {
        remote::execute(&client, change).await.expect("apply");
    }
    assert_eq!(remote_entries(group).await, ["198.51.100.0/24"]);
    sim.shutdown().await;
}

#[tokio::test]
async fn observe_only_never_writes_and_two_objects_cannot_claim_one_list() {
    let sim = start_sim().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let observe = list_manifests(&sim, "").replace(
        "  description: scanner ranges\n",
        "  description: scanner ranges\n  managementPolicy: ObserveOnly\n",
    );
    std::fs::write(dir.path().join("list.yaml"), observe).expect("write");
    let groups = load(dir.path()).expect("manifests load");
    assert!(
        list_plan(&groups[0], at(4)).await.is_empty(),
        "ObserveOnly plans nothing"
    );

    let twin = r#"---
apiVersion: sigsci-kit.io/v1alpha1
kind: SigSciList
metadata: {name: twin}
spec:
  connectionRef: {name: prod}
  site: site-1
  name: incident-42
  type: ip
"#;
    std::fs::write(dir.path().join("list.yaml"), list_manifests(&sim, twin)).expect("write");
    let error = load(dir.path()).expect_err("conflict").to_string();
    let file = dir.path().join("list.yaml");
    assert_eq!(
        error,
        format!(
            "conflicting manifests, nothing planned or applied: SigSciList gitops/twin (in {file}): claims the site site-1 list \"incident-42\" of corp testcorp at {url}, which SigSciList gitops/incident-42 (in {file}) already declares: one remote object can have one manifest",
            file = file.display(),
            url = sim.base_url
        )
    );

    let bad = list_manifests(&sim, "").replace("198.51.100.0/24", "198.51.100.0/33");
    std::fs::write(dir.path().join("list.yaml"), bad).expect("write");
    let error = load(dir.path()).expect_err("invalid").to_string();
    assert!(
        error.contains(
            "spec.entries[0].value: \"198.51.100.0/33\" must be an IPv4/IPv6 address or CIDR range"
        ),
        "{error}"
    );
    sim.shutdown().await;
}

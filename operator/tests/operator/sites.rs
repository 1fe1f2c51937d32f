//! All-sites alerts: `AgentAlert.spec.sites` (`all` or a list) declares one alert on each site,
//! with each site's result in `status.sites`; a site created later is picked up at the next
//! resync; a site held by an older object is `Conflict` on that site only and never written;
//! dropping a site from the list or deleting the object applies the deletionPolicy on each held
//! site. Drift under ObserveOnly is reported per site. The apiserver refuses a bad `sites`.

use crate::common;

use std::time::Duration;

use common::{alert_ready, apply, cleanup, condition, start_operator, wait_gone, wait_until};
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams};
use serde_json::json;
use sigsci::AlertBody;
use sigsci_config::{AlertDeletionPolicy, ManagementPolicy, Metric};
use sigsci_operator::crd::agent_alert::SiteSelection;
use sigsci_operator::crd::common::SiteResult;
use sigsci_operator::crd::{AgentAlert, AgentAlertSpec};

const TOKEN: &str = "sim-token";
/// More than the one-second resolution of creation times, which rank claimants.
const ONE_TICK: Duration = Duration::from_millis(1100);

fn spec(
    site: Option<&str>,
    sites: Option<SiteSelection>,
    threshold: i64,
    policy: AlertDeletionPolicy,
) -> AgentAlertSpec {
    AgentAlertSpec {
        site: site.map(str::to_string),
        sites,
        interval: 5,
        ..common::alert_spec("", Metric::OnlineAgentCount, threshold, policy)
    }
}

fn listed(sites: &[&str]) -> Option<SiteSelection> {
    Some(SiteSelection::Listed(
        sites.iter().map(|site| site.to_string()).collect(),
    ))
}

/// `(site, ready, reason)` of each entry of `status.sites`; a written site is `Updated` at
/// first and `InSync` from the next reconcile on, so both read as `Synced` here.
fn site_results(alert: &AgentAlert) -> Vec<(String, String, String)> {
    alert
        .status
        .as_ref()
        .map(|status| status.sites.as_slice())
        .unwrap_or_default()
        .iter()
        .map(
            |SiteResult {
                 site,
                 ready,
                 reason,
                 ..
             }| {
                let reason = match reason.as_str() {
                    "Updated" | "InSync" => "Synced",
                    other => other,
                };
                (site.clone(), ready.clone(), reason.to_string())
            },
        )
        .collect()
}

fn entry(site: &str, ready: &str, reason: &str) -> (String, String, String) {
    (site.into(), ready.into(), reason.into())
}

/// `(threshold, enabled)` of the site's online-agents alert, `None` once deleted.
async fn remote(truth: &sigsci::Client, site: &str) -> Option<(i64, bool)> {
    truth
        .list_alerts(site)
        .await
        .expect("alerts")
        .into_iter()
        .find(|alert| alert.tag_name == "agent_scoreboards")
        .map(|alert| (alert.threshold, alert.enabled))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_sites_covers_every_site_including_one_created_later() {
    let (admin, namespace, sim) = common::connected_namespace("sites-all", TOKEN).await;
    let truth = common::sim_client(&sim, TOKEN);
    // site-3 "is created" only later.
    sim.state.withhold_site("site-3", true);
    let operator = start_operator(&namespace, None, "sites-all").await;
    let alerts: Api<AgentAlert> = Api::namespaced(admin.clone(), &namespace);

    let every = AgentAlert::new(
        "no-agents",
        spec(
            None,
            Some(SiteSelection::All),
            1,
            AlertDeletionPolicy::Disable,
        ),
    );
    apply(&admin, &namespace, &every).await;
    let ready = wait_until(&alerts, "no-agents", "Ready on both sites", |a| {
        alert_ready(a, true) && site_results(a).len() == 2
    })
    .await;
    assert_eq!(
        site_results(&ready),
        vec![
            entry("site-1", "True", "Synced"),
            entry("site-2", "True", "Synced")
        ]
    );
    assert!(
        ready
            .status
            .as_ref()
            .is_some_and(|s| s.sites.iter().all(|e| e.remote_id.is_some()))
    );
    for site in ["site-1", "site-2"] {
        assert_eq!(remote(&truth, site).await, Some((1, true)), "{site}");
    }

    // The new site is picked up at the next resync (2 s in the tests), with its own entry.
    sim.state.withhold_site("site-3", false);
    let grown = wait_until(&alerts, "no-agents", "Ready on three sites", |a| {
        alert_ready(a, true) && site_results(a).len() == 3
    })
    .await;
    assert_eq!(site_results(&grown)[2], entry("site-3", "True", "Synced"));
    assert_eq!(remote(&truth, "site-3").await, Some((1, true)));
    let ready = condition(
        &grown.status.as_ref().expect("status").sync.conditions,
        "Ready",
    )
    .expect("Ready")
    .clone();
    assert_eq!(ready.status, "True");

    // Deletion disables the alert on every site.
    alerts
        .delete("no-agents", &DeleteParams::default())
        .await
        .expect("delete");
    wait_gone(&alerts, "no-agents").await;
    for site in ["site-1", "site-2", "site-3"] {
        assert_eq!(remote(&truth, site).await, Some((1, false)), "{site}");
    }
    common::wait_for_event(&admin, &namespace, "no-agents", |reason, note| {
        reason == "Cleanup" && note.contains("3 held sites")
    })
    .await;
    cleanup(&admin, &namespace).await;
    operator.stop().await.expect("operator stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_site_held_by_an_older_object_is_left_to_it_and_the_others_proceed() {
    let (admin, namespace, sim) = common::connected_namespace("sites-conflict", TOKEN).await;
    let truth = common::sim_client(&sim, TOKEN);
    let operator = start_operator(&namespace, None, "sites-conflict").await;
    let alerts: Api<AgentAlert> = Api::namespaced(admin.clone(), &namespace);

    let single = AgentAlert::new(
        "single",
        spec(Some("site-2"), None, 2, AlertDeletionPolicy::Disable),
    );
    apply(&admin, &namespace, &single).await;
    wait_until(&alerts, "single", "Ready", |a| alert_ready(a, true)).await;
    // Creation times have one-second resolution; the older object must be older by them.
    tokio::time::sleep(ONE_TICK).await;

    let multi = |sites: &[&str]| {
        AgentAlert::new(
            "multi",
            spec(None, listed(sites), 5, AlertDeletionPolicy::Delete),
        )
    };
    apply(&admin, &namespace, &multi(&["site-1", "site-2", "site-3"])).await;
    let refused = wait_until(&alerts, "multi", "two sites Ready, one in conflict", |a| {
        site_results(a).len() == 3
    })
    .await;
    assert_eq!(
        site_results(&refused),
        vec![
            entry("site-1", "True", "Synced"),
            entry("site-2", "False", "Conflict"),
            entry("site-3", "True", "Synced"),
        ]
    );
    let status = refused.status.as_ref().expect("status");
    let held = status
        .sites
        .iter()
        .find(|e| e.site == "site-2")
        .expect("site-2");
    assert!(
        held.message
            .contains(&format!("AgentAlert {namespace}/single")),
        "{}",
        held.message
    );
    assert_eq!(held.remote_id, None);
    let ready = condition(&status.sync.conditions, "Ready").expect("Ready");
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "Conflict")
    );
    assert!(
        ready.message.starts_with("1 of 3 sites failed: site-2: "),
        "{}",
        ready.message
    );
    assert_eq!(
        remote(&truth, "site-2").await,
        Some((2, true)),
        "the holder's alert"
    );
    assert_eq!(remote(&truth, "site-1").await, Some((5, true)));

    // A single-site object declared after the multi-site one is the one in conflict.
    tokio::time::sleep(ONE_TICK).await;
    let late = AgentAlert::new(
        "late",
        spec(Some("site-1"), None, 9, AlertDeletionPolicy::Delete),
    );
    apply(&admin, &namespace, &late).await;
    let late = wait_until(&alerts, "late", "in conflict", |a| {
        a.status.as_ref().is_some_and(|s| {
            condition(&s.sync.conditions, "Ready").is_some_and(|c| c.reason == "Conflict")
        })
    })
    .await;
    let message = condition(&late.status.expect("status").sync.conditions, "Ready")
        .expect("Ready")
        .message
        .clone();
    assert!(
        message.contains(&format!("AgentAlert {namespace}/multi")),
        "{message}"
    );
    alerts
        .delete("late", &DeleteParams::default())
        .await
        .expect("delete late");
    wait_gone(&alerts, "late").await;
    assert_eq!(
        remote(&truth, "site-1").await,
        Some((5, true)),
        "late held nothing"
    );

    // Dropping site-3 from the list applies the deletionPolicy (Delete) there.
    apply(&admin, &namespace, &multi(&["site-1", "site-2"])).await;
    wait_until(&alerts, "multi", "site-3 dropped", |a| {
        site_results(a).len() == 2
    })
    .await;
    assert_eq!(
        remote(&truth, "site-3").await,
        None,
        "deleted on the dropped site"
    );
    assert_eq!(remote(&truth, "site-1").await, Some((5, true)));

    // Deleting it applies the policy where it held the alert, and leaves the holder's.
    alerts
        .delete("multi", &DeleteParams::default())
        .await
        .expect("delete multi");
    wait_gone(&alerts, "multi").await;
    assert_eq!(remote(&truth, "site-1").await, None);
    assert_eq!(remote(&truth, "site-2").await, Some((2, true)));
    let single = alerts.get("single").await.expect("single");
    assert!(alert_ready(&single, true));
    cleanup(&admin, &namespace).await;
    operator.stop().await.expect("operator stops");
}

/// `(site, field, observed)` of each `status.drift` entry.
fn drift(alert: &AgentAlert) -> Vec<(Option<String>, String, String)> {
    let entries = alert.status.as_ref().map(|s| s.drift.as_slice());
    entries
        .unwrap_or_default()
        .iter()
        .map(|e| (e.site.clone(), e.field.clone(), e.observed.clone()))
        .collect()
}

fn drifted(site: &str, observed: &str) -> (Option<String>, String, String) {
    (Some(site.into()), "threshold".into(), observed.into())
}

/// Set the threshold of the site's online-agents alert by hand.
async fn set_threshold(truth: &sigsci::Client, site: &str, threshold: i64) {
    let alerts = truth.list_alerts(site).await.expect("alerts");
    let alert = alerts
        .iter()
        .find(|alert| alert.tag_name == "agent_scoreboards")
        .expect("the site's alert");
    let body = AlertBody {
        threshold: Some(threshold),
        ..AlertBody::default()
    };
    truth
        .update_alert(site, &alert.id, &body)
        .await
        .expect("change by hand");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observed_drift_names_the_site_it_is_on() {
    let (admin, namespace, sim) = common::connected_namespace("sites-drift", TOKEN).await;
    let truth = common::sim_client(&sim, TOKEN);
    let operator = start_operator(&namespace, None, "sites-drift").await;
    let alerts: Api<AgentAlert> = Api::namespaced(admin.clone(), &namespace);
    let mut spec = spec(
        None,
        Some(SiteSelection::All),
        1,
        AlertDeletionPolicy::Orphan,
    );
    apply(
        &admin,
        &namespace,
        &AgentAlert::new("watched", spec.clone()),
    )
    .await;
    wait_until(&alerts, "watched", "written on every site", |a| {
        alert_ready(a, true) && site_results(a).len() == 3
    })
    .await;
    spec.management_policy = ManagementPolicy::ObserveOnly;
    apply(&admin, &namespace, &AgentAlert::new("watched", spec)).await;
    wait_until(&alerts, "watched", "observed", |a| {
        alert_ready(a, true) && a.status.as_ref().is_some_and(|s| s.sites.len() == 3)
    })
    .await;

    // Changed by hand on site-2: one entry, naming site-2; the other sites have none.
    set_threshold(&truth, "site-2", 7).await;
    let one = wait_until(&alerts, "watched", "drift on site-2", |a| {
        !drift(a).is_empty()
    })
    .await;
    assert_eq!(drift(&one), vec![drifted("site-2", "7")]);
    let since = one.status.as_ref().map(|s| s.drift[0].since.clone());
    let message = condition(
        &one.status.as_ref().expect("status").sync.conditions,
        "Drifted",
    )
    .map(|c| c.message.clone());
    assert_eq!(
        message.as_deref(),
        Some("threshold on site-2: desired 1, observed 7")
    );
    common::wait_for_event(&admin, &namespace, "watched", |reason, note| {
        reason == "Drifted" && note.contains("threshold on site-2: desired 1, observed 7")
    })
    .await;

    // The same field on site-1, to another value: an entry of its own; site-2 keeps its since.
    set_threshold(&truth, "site-1", 8).await;
    let two = wait_until(&alerts, "watched", "drift on two sites", |a| {
        drift(a).len() == 2
    })
    .await;
    assert_eq!(
        drift(&two),
        vec![drifted("site-1", "8"), drifted("site-2", "7")]
    );
    let status = two.status.as_ref().expect("status");
    assert_eq!(Some(status.drift[1].since.clone()), since);

    // Undone by hand: the entries go.
    for site in ["site-1", "site-2"] {
        set_threshold(&truth, site, 1).await;
    }
    let resolved = wait_until(&alerts, "watched", "no drift", |a| drift(a).is_empty()).await;
    let resolution = condition(
        &resolved.status.as_ref().expect("status").sync.conditions,
        "Drifted",
    )
    .map(|c| (c.status.clone(), c.reason.clone()));
    assert_eq!(resolution, Some(("False".into(), "DriftResolved".into())));
    cleanup(&admin, &namespace).await;
    operator.stop().await.expect("operator stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_apiserver_refuses_a_bad_sites_naming_the_field() {
    common::install_chart().await;
    let admin = common::admin().await;
    let namespace = common::namespace(&admin, "sites-admission").await;
    let alerts: Api<AgentAlert> = Api::namespaced(admin.clone(), &namespace);
    let refusal = |name: &'static str, site: Option<&'static str>, sites: serde_json::Value| {
        let alerts = alerts.clone();
        async move {
            let mut spec = json!({
                "connectionRef": { "name": "sim" },
                "metric": "onlineAgentCount",
                "operator": "lessThan",
                "threshold": 1,
                "interval": 5,
                "sites": sites,
            });
            if let Some(site) = site {
                spec["site"] = json!(site);
            }
            let object = json!({
                "apiVersion": "sigsci-kit.io/v1alpha1",
                "kind": "AgentAlert",
                "metadata": { "name": name },
                "spec": spec,
            });
            match alerts
                .patch(
                    name,
                    &PatchParams::apply("sigsci-kit-tests"),
                    &Patch::Apply(&object),
                )
                .await
            {
                Ok(_) => panic!("{name} was admitted: {object}"),
                Err(error) => error.to_string(),
            }
        }
    };
    let both = refusal("both", Some("site-1"), json!("all")).await;
    assert!(
        both.contains(
            "\"spec\" must validate one and only one schema (oneOf). Found 2 valid alternatives"
        ),
        "{both}"
    );
    for (name, sites, expected) in [
        (
            "word",
            json!("some"),
            "spec.sites: Unsupported value: \"some\"",
        ),
        ("empty", json!([]), "spec.sites: Unsupported value: []"),
        ("number", json!(5), "spec.sites: Unsupported value: 5"),
        (
            "upper",
            json!(["Site-1"]),
            "spec.sites[0]: Invalid value: \"Site-1\"",
        ),
        ("numbers", json!([1]), "spec.sites[0]: Invalid value: 1"),
        (
            "flag",
            json!(true),
            "\"spec.sites\" must not validate the schema (not)",
        ),
    ] {
        let text = refusal(name, None, sites).await;
        assert!(text.contains(expected), "{name}: {text}");
    }
    // Allowed: the word `all` and a list of names; `site` and `sites` cannot replace each other.
    let good = AgentAlert::new(
        "good",
        spec(
            None,
            listed(&["site-1", "site-2"]),
            1,
            AlertDeletionPolicy::Orphan,
        ),
    );
    apply(&admin, &namespace, &good).await;
    let mut moved = good.clone();
    moved.spec.sites = None;
    moved.spec.site = Some("site-1".into());
    let error = alerts
        .patch(
            "good",
            &PatchParams::apply("sigsci-kit-tests").force(),
            &Patch::Apply(&moved),
        )
        .await
        .expect_err("refused");
    assert!(
        error
            .to_string()
            .contains("site and sites cannot replace each other"),
        "{error}"
    );
    // No operator runs here: nothing holds a finalizer.
    alerts
        .delete("good", &DeleteParams::default())
        .await
        .expect("delete");
    wait_gone(&alerts, "good").await;
}

/// `sigsci-kit config` reads manifests with these types: `sites: all` needs the corp's site
/// list (the CLI reads it first), and a bad or doubled `sites` is refused naming the field.
#[test]
fn the_cli_refuses_sites_naming_the_field() {
    use sigsci_operator::manifests::{self, Manifests, SecretLookup};
    let connection = "apiVersion: sigsci-kit.io/v1alpha1\nkind: SigSciConnection\nmetadata: {name: sim}\nspec: {corp: corp, apiURL: 'http://127.0.0.1:1', credentialsSecretRef: {name: creds}}\n";
    let refusal = |sites: &str| {
        let alert = format!(
            "---\napiVersion: sigsci-kit.io/v1alpha1\nkind: AgentAlert\nmetadata: {{name: a}}\nspec: {{connectionRef: {{name: sim}}, {sites}, metric: onlineAgentCount, operator: lessThan, threshold: 1, interval: 5}}\n"
        );
        let mut loaded = Manifests::default();
        let path = std::path::Path::new("alerts.yaml");
        let result = manifests::load_str(&format!("{connection}{alert}"), path, "ops", &mut loaded)
            .and_then(|()| {
                manifests::desired_by_connection(
                    &loaded,
                    &SecretLookup::new(&loaded.secrets, |_| None),
                    &manifests::CorpSites::new(),
                )
            });
        match result {
            Ok(_) => panic!("{sites} was accepted"),
            Err(error) => error.to_string(),
        }
    };
    for (sites, expected) in [
        (
            "sites: all",
            "AgentAlert ops/a: the sites of SigSciConnection ops/sim were not listed",
        ),
        (
            "site: site-1, sites: [site-1]",
            "AgentAlert ops/a spec.sites: set exactly one of site",
        ),
        (
            "sites: [site-1, site-1]",
            "AgentAlert ops/a spec.sites: \"site-1\" is listed twice",
        ),
        (
            "sites: some",
            "sites must be 'all' or a list of site short names",
        ),
    ] {
        let text = refusal(sites);
        assert!(text.contains(expected), "{sites}: {text}");
    }
}

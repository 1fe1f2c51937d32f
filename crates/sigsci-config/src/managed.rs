//! The record of what earlier applies managed: `sigsci-kit config apply` keeps it (a state
//! file) so that `--prune` removes only remote objects a manifest once declared, never ones
//! made by hand. The API has no place for an ownership marker on alerts or integrations.

use serde::{Deserialize, Serialize};

use crate::model::{
    Address, AlertDeletionPolicy, IntegrationDeletionPolicy, Location, Metric, normalize_url,
};
use crate::plan::DesiredState;

/// Version of the state document; a newer one is refused rather than misread.
pub const STATE_VERSION: u32 = 1;

/// The whole state document.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppliedState {
    pub version: u32,
    pub objects: Vec<Managed>,
}

impl Default for AppliedState {
    fn default() -> AppliedState {
        AppliedState {
            version: STATE_VERSION,
            objects: Vec::new(),
        }
    }
}

/// One remote object an apply wrote or found in sync, with the declaration it came from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Managed {
    /// Where the object lives: the connection's API URL and corp.
    pub api_url: String,
    pub corp: String,
    /// The connection manifest, for messages (`SigSciConnection ns/name`).
    pub connection: String,
    pub namespace: Option<String>,
    pub name: String,
    /// The file that declared it, for messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    pub remote_id: String,
    #[serde(flatten)]
    pub object: ManagedObject,
}

/// What the remote object is, and what its declaration said to do when it goes away.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all_fields = "camelCase")]
pub enum ManagedObject {
    /// `perSite`: one site's part of an object declared on several sites (`sites`), whose
    /// address is `AgentAlert ns/name[site]`; absent in the single-site form (`site`), as in
    /// state files written before `sites`.
    AgentAlert {
        site: String,
        metric: Metric,
        deletion_policy: AlertDeletionPolicy,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        per_site: bool,
    },
    /// `site` absent: a corp integration.
    Integration {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        site: Option<String>,
        #[serde(rename = "type")]
        integration_type: String,
        deletion_policy: IntegrationDeletionPolicy,
    },
    /// `site` absent: a corp list.
    SigSciList {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        site: Option<String>,
        list_name: String,
        deletion_policy: IntegrationDeletionPolicy,
    },
}

/// The document form of a location: the site, or none for the corp.
pub fn site_of(location: &Location) -> Option<String> {
    match location {
        Location::Site(site) => Some(site.clone()),
        Location::Corp => None,
    }
}

impl ManagedObject {
    pub fn kind(&self) -> &'static str {
        match self {
            ManagedObject::AgentAlert { .. } => "AgentAlert",
            ManagedObject::Integration { .. } => "Integration",
            ManagedObject::SigSciList { .. } => "SigSciList",
        }
    }

    pub fn location(&self) -> Location {
        match self {
            ManagedObject::AgentAlert { site, .. } => Location::Site(site.clone()),
            ManagedObject::Integration { site, .. } | ManagedObject::SigSciList { site, .. } => {
                site.clone().map_or(Location::Corp, Location::Site)
            }
        }
    }

    /// The remote object in words (`site site-1 alert requests_total`).
    pub fn describe(&self) -> String {
        match self {
            ManagedObject::AgentAlert { site, metric, .. } => {
                format!("site {site} alert {}", metric.tag_name())
            }
            ManagedObject::Integration {
                integration_type, ..
            } => format!("{} {integration_type} integration", self.location()),
            ManagedObject::SigSciList { list_name, .. } => {
                format!("{} list {list_name:?}", self.location())
            }
        }
    }

    /// The deletion policy as the manifest spells it.
    pub fn policy(&self) -> &'static str {
        match self {
            ManagedObject::AgentAlert {
                deletion_policy, ..
            } => match deletion_policy {
                AlertDeletionPolicy::Disable => "Disable",
                AlertDeletionPolicy::Delete => "Delete",
                AlertDeletionPolicy::Orphan => "Orphan",
            },
            ManagedObject::Integration {
                deletion_policy, ..
            }
            | ManagedObject::SigSciList {
                deletion_policy, ..
            } => match deletion_policy {
                IntegrationDeletionPolicy::Delete => "Delete",
                IntegrationDeletionPolicy::Orphan => "Orphan",
            },
        }
    }
}

impl Managed {
    pub fn address(&self) -> Address {
        let address = Address::new(
            self.object.kind(),
            self.namespace.as_deref(),
            self.name.clone(),
        );
        match &self.object {
            ManagedObject::AgentAlert {
                site,
                per_site: true,
                ..
            } => address.on_site(site.as_str()),
            _ => address,
        }
    }

    /// Whether the record is of this API URL and corp (see [`same_target`]).
    pub fn is_at(&self, api_url: &str, corp: &str) -> bool {
        same_target((&self.api_url, &self.corp), (api_url, corp))
    }
}

/// Give each declaration the remote id an earlier apply recorded for it (same kind, namespace
/// and name, in `records` of its API URL and corp), so it keeps its object: an integration whose
/// URL changed is updated in place, not created again beside the old one.
pub fn use_recorded_ids(desired: &mut DesiredState, records: &[&Managed]) {
    let recorded = |address: &Address| {
        records
            .iter()
            .find(|record| record.address() == *address)
            .map(|record| record.remote_id.clone())
    };
    for alert in &mut desired.alerts {
        alert.remote_id = alert.remote_id.take().or_else(|| recorded(&alert.address));
    }
    for integration in &mut desired.integrations {
        integration.remote_id = integration
            .remote_id
            .take()
            .or_else(|| recorded(&integration.address));
    }
    // A list's id is derived from its name: a renamed declaration is another list.
    for list in &mut desired.lists {
        let same_list = records.iter().any(|record| {
            record.address() == list.address
                && matches!(&record.object, ManagedObject::SigSciList { list_name, .. } if *list_name == list.name)
                && record.object.location() == list.location
        });
        if same_list {
            list.remote_id = list.remote_id.take().or_else(|| recorded(&list.address));
        }
    }
}

/// Connections that resolve to one corp of one API reach the same remote objects: the URL is
/// compared normalised ([`normalize_url`]: no trailing slash, scheme and host in lower case).
pub fn same_target(a: (&str, &str), b: (&str, &str)) -> bool {
    target_key(a.0, a.1) == target_key(b.0, b.1)
}

/// The comparable form of an API URL and corp (the URL as the claim keys normalise it).
pub fn target_key(api_url: &str, corp: &str) -> (String, String) {
    (normalize_url(api_url), corp.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_in_its_documented_form() {
        let state = AppliedState {
            version: STATE_VERSION,
            objects: vec![
                Managed {
                    api_url: "http://127.0.0.1:1".into(),
                    corp: "testcorp".into(),
                    connection: "SigSciConnection default/prod".into(),
                    namespace: Some("default".into()),
                    name: "no-agents".into(),
                    file: Some("manifests/alerts.yaml".into()),
                    remote_id: "a1".into(),
                    object: ManagedObject::AgentAlert {
                        site: "site-1".into(),
                        metric: Metric::OnlineAgentCount,
                        deletion_policy: AlertDeletionPolicy::Disable,
                        per_site: false,
                    },
                },
                Managed {
                    api_url: "http://127.0.0.1:1".into(),
                    corp: "testcorp".into(),
                    connection: "SigSciConnection default/prod".into(),
                    namespace: Some("default".into()),
                    name: "corp-mail".into(),
                    file: None,
                    remote_id: "i1".into(),
                    object: ManagedObject::Integration {
                        site: None,
                        integration_type: "mailingList".into(),
                        deletion_policy: IntegrationDeletionPolicy::Orphan,
                    },
                },
            ],
        };
        let json = serde_json::to_value(&state).expect("serialises");
        assert_eq!(
            json["objects"][0],
            serde_json::json!({
                "apiUrl": "http://127.0.0.1:1", "corp": "testcorp",
                "connection": "SigSciConnection default/prod", "namespace": "default",
                "name": "no-agents", "file": "manifests/alerts.yaml", "remoteId": "a1",
                "kind": "AgentAlert", "site": "site-1", "metric": "onlineAgentCount",
                "deletionPolicy": "Disable"
            })
        );
        let back: AppliedState = serde_json::from_value(json).expect("deserialises");
        assert_eq!(back, state);
        assert_eq!(back.objects[1].object.location(), Location::Corp);
        assert_eq!(
            back.objects[1].object.describe(),
            "corp mailingList integration"
        );
        assert_eq!(
            back.objects[0].address().to_string(),
            "AgentAlert default/no-agents"
        );
    }

    fn alert_record(site: &str, id: &str, per_site: bool) -> Managed {
        Managed {
            api_url: "http://sim".into(),
            corp: "testcorp".into(),
            connection: "SigSciConnection ops/prod".into(),
            namespace: Some("ops".into()),
            name: "no-agents".into(),
            file: None,
            remote_id: id.into(),
            object: ManagedObject::AgentAlert {
                site: site.into(),
                metric: Metric::OnlineAgentCount,
                deletion_policy: AlertDeletionPolicy::Delete,
                per_site,
            },
        }
    }

    #[test]
    fn per_site_records_have_their_own_address_and_old_records_read_as_single_site() {
        let json = serde_json::to_value(alert_record("site-2", "a2", true)).expect("serialises");
        assert_eq!(json["perSite"], serde_json::json!(true));
        assert_eq!(json["site"], serde_json::json!("site-2"));
        let back: Managed = serde_json::from_value(json).expect("deserialises");
        assert_eq!(
            back.address().to_string(),
            "AgentAlert ops/no-agents[site-2]"
        );
        // A record written before `sites` existed: no perSite, the single-site form.
        let old: Managed = serde_json::from_value(serde_json::json!({
            "apiUrl": "http://sim", "corp": "testcorp",
            "connection": "SigSciConnection ops/prod", "namespace": "ops",
            "name": "no-agents", "remoteId": "a1",
            "kind": "AgentAlert", "site": "site-1", "metric": "onlineAgentCount",
            "deletionPolicy": "Disable"
        }))
        .expect("an old record reads");
        assert_eq!(old.address().to_string(), "AgentAlert ops/no-agents");
        assert!(
            !serde_json::to_value(&old)
                .expect("serialises")
                .as_object()
                .expect("an object")
                .contains_key("perSite"),
            "the single-site form is written as before"
        );
    }

    #[test]
    fn each_site_of_one_object_gets_its_own_recorded_id() {
        let base = crate::alert::DesiredAlert {
            operator: crate::model::ThresholdOperator::EqualTo,
            interval: 5,
            ..crate::fixtures::alert("no-agents", "", Metric::OnlineAgentCount, 0)
        };
        let sites = [
            "site-1".to_string(),
            "site-2".to_string(),
            "site-3".to_string(),
        ];
        let mut desired = DesiredState {
            alerts: base.on_sites(&sites),
            ..DesiredState::default()
        };
        let records = [
            alert_record("site-1", "a1", true),
            alert_record("site-2", "a2", true),
            // The object's single-site record is another declaration's.
            alert_record("site-3", "single", false),
        ];
        let refs: Vec<&Managed> = records.iter().collect();
        use_recorded_ids(&mut desired, &refs);
        let ids: Vec<Option<&str>> = desired
            .alerts
            .iter()
            .map(|alert| alert.remote_id.as_deref())
            .collect();
        assert_eq!(ids, [Some("a1"), Some("a2"), None]);
    }

    #[test]
    fn targets_compare_by_normalised_url_and_corp() {
        assert!(same_target(
            ("https://Dashboard.example.com/", "testcorp"),
            ("https://dashboard.example.com", "testcorp")
        ));
        assert!(!same_target(
            ("https://dashboard.example.com", "corp-a"),
            ("https://dashboard.example.com", "corp-b")
        ));
        assert!(!same_target(
            ("http://127.0.0.1:1", "c"),
            ("http://127.0.0.1:2", "c")
        ));
        assert_eq!(
            target_key("HTTPS://H.example/API/", "c"),
            ("https://h.example/API".to_string(), "c".to_string())
        );
    }
}

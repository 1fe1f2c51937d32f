//! `AgentAlert`: one of a site's two agent alerts (average RPS, online agent count), declared.

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};
use sigsci_config::{
    Address, AlertDeletionPolicy, DesiredAlert, ManagementPolicy, Metric, Problems,
    ThresholdOperator,
};

use super::common::{ConnectionRef, ManagedStatus};

fn enabled_by_default() -> bool {
    true
}

/// The schema of `sites`: `all` or a non-empty list of site short names. A structural schema
/// cannot say "a string or a list", and CEL cannot see a field without a type, so the field
/// keeps any value and these junctors refuse the others: every branch but `all` carries, beside
/// the list's own checks, checks that only a list passes (no string matches the empty class, no
/// number is both at least 1 and at most 0, no object has both at least 1 and at most 0
/// properties; booleans are refused by `not`). The apiserver still lets nulls and duplicates
/// through a list: [`AgentAlertSpec::check_sites`] refuses those.
fn sites_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    // Checks no number and no object passes (only strings and lists are left).
    let no_number_or_object = serde_json::json!({
        "minimum": 1, "maximum": 0, "minProperties": 1, "maxProperties": 0,
    });
    let mut site = serde_json::json!({
        "pattern": sigsci::SHORT_NAME_PATTERN,
        "minLength": 1, "maxLength": 100,
        // No list passes, nor a boolean.
        "minItems": 1, "maxItems": 0,
        "not": { "enum": [true, false] },
    });
    let mut list = serde_json::json!({
        "minItems": 1, "maxItems": 1000,
        // No string matches the empty class.
        "pattern": "[^\\x00-\\x{10FFFF}]",
    });
    for target in [&mut site, &mut list] {
        if let (Some(extra), Some(target)) =
            (no_number_or_object.as_object(), target.as_object_mut())
        {
            target.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
    }
    if let Some(list) = list.as_object_mut() {
        list.insert("items".into(), site);
    }
    schemars::json_schema!({
        "description": "`all` (every site of the corp, including sites created later: picked up at the next resync) or a list of site short names: the same alert on each (set exactly one of `site` and `sites`). Each site's result is in `status.sites`.",
        "x-kubernetes-preserve-unknown-fields": true,
        "anyOf": [{ "enum": ["all"] }, list],
        "not": { "enum": [true, false] }
    })
}

/// The sites an alert is declared on: every site of the corp, or these.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SiteSelection {
    All,
    Listed(Vec<String>),
}

/// `sites` as written: the word `all` or a list (whose nulls read as empty names, refused by
/// [`AgentAlertSpec::check_sites`]: what the apiserver stores must read, or the watch stalls).
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum SitesWritten {
    Word(String),
    Listed(Vec<Option<String>>),
}

impl Serialize for SiteSelection {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            SiteSelection::All => SitesWritten::Word("all".to_string()),
            SiteSelection::Listed(sites) => {
                SitesWritten::Listed(sites.iter().cloned().map(Some).collect())
            }
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for SiteSelection {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let invalid = |detail: String| {
            serde::de::Error::custom(format!(
                "sites must be 'all' or a list of site short names: {detail}"
            ))
        };
        match SitesWritten::deserialize(deserializer)
            .map_err(|_| invalid("neither a string nor a list of names".to_string()))?
        {
            SitesWritten::Word(word) if word == "all" => Ok(SiteSelection::All),
            SitesWritten::Word(word) => Err(invalid(format!("got {word:?}"))),
            SitesWritten::Listed(sites) => Ok(SiteSelection::Listed(
                sites.into_iter().map(Option::unwrap_or_default).collect(),
            )),
        }
    }
}

/// A site's agent alert, patched to this spec. The alerts normally pre-exist per site; one that
/// is missing is created.
// Each printcolumn(...) repeats `type_`, which clippy takes for a duplicated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "sigsci-kit.io",
    version = "v1alpha1",
    kind = "AgentAlert",
    namespaced,
    status = "ManagedStatus",
    shortname = "sigscialert",
    category = "sigsci",
    doc = "A Signal Sciences agent alert (average RPS or online agent count) of one site",
    printcolumn(name = "Site", type_ = "string", json_path = ".spec.site"),
    printcolumn(name = "Sites", type_ = "string", json_path = ".spec.sites"),
    printcolumn(name = "Metric", type_ = "string", json_path = ".spec.metric"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].status"#
    ),
    printcolumn(
        name = "Synced",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Synced")].status"#
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].reason"#
    ),
    printcolumn(
        name = "Drifted",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Drifted")].status"#,
        priority = 1
    ),
    printcolumn(
        name = "Message",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].message"#,
        priority = 1
    ),
    printcolumn(
        name = "Operator",
        type_ = "string",
        json_path = ".spec.operator",
        priority = 1
    ),
    printcolumn(
        name = "Threshold",
        type_ = "integer",
        json_path = ".spec.threshold",
        priority = 1
    ),
    printcolumn(
        name = "Interval",
        type_ = "integer",
        json_path = ".spec.interval",
        priority = 1
    ),
    printcolumn(name = "Remote ID", type_ = "string", json_path = ".status.remoteId"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
// Exactly one of site and sites: CEL cannot see `sites` (it has no type), the schema can.
#[schemars(extend("oneOf" = [{"required": ["site"]}, {"required": ["sites"]}]))]
#[x_kube(validation = Rule::new("has(self.site) == has(oldSelf.site)")
    .message("site and sites cannot replace each other: delete and recreate the AgentAlert")
    .field_path(".site"))]
#[serde(rename_all = "camelCase")]
pub struct AgentAlertSpec {
    #[x_kube(validation = Rule::new("self == oldSelf").message("connectionRef is immutable: delete and recreate the AgentAlert to move it"))]
    pub connection_ref: ConnectionRef,
    /// Site short name, for an alert on one site (set exactly one of `site` and `sites`).
    #[x_kube(validation = Rule::new("self.matches('^[0-9a-z_.-]+$')").message("site must be a site short name: lower-case letters, digits, '_', '.', '-'"))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("site is immutable: delete and recreate the AgentAlert to move it"))]
    #[schemars(length(min = 1, max = 100))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
    /// `all` (every site of the corp, including sites created later: picked up at the next resync) or a list of site short names: the same alert on each (set exactly one of `site` and `sites`). Each site's result is in `status.sites`.
    #[schemars(schema_with = "sites_schema")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sites: Option<SiteSelection>,
    /// `averageRPS` (tag `requests_total`) or `onlineAgentCount` (tag `agent_scoreboards`).
    #[x_kube(validation = Rule::new("self == oldSelf").message("metric is immutable: declare another AgentAlert for the other metric"))]
    pub metric: Metric,
    /// How the metric is compared with the threshold.
    pub operator: ThresholdOperator,
    /// The value that triggers the alert: requests per second, or a number of agents.
    #[x_kube(validation = Rule::new("self >= 0 && self <= 3600000").message("threshold must be between 0 and 3600000"))]
    pub threshold: i64,
    /// Minutes: 5, 10 or 60.
    #[x_kube(validation = Rule::new("self in [5, 10, 60]").message("interval must be 5, 10 or 60 (minutes)"))]
    pub interval: i64,
    /// Whether the alert is evaluated (default true).
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
    /// Record the alert without notifying the site's integrations (default false).
    #[serde(default)]
    pub skip_notifications: bool,
    /// On deletion: `Disable` (default) leaves the site's built-in alert disabled, `Delete`
    /// removes it, `Orphan` leaves it as it is.
    #[serde(default)]
    pub deletion_policy: AlertDeletionPolicy,
    /// `Full` (default) writes the alert to match the spec and corrects drift; `ObserveOnly` never writes (not even on deletion) and reports the differences in `status.drift`.
    #[serde(default)]
    pub management_policy: ManagementPolicy,
}

impl AgentAlertSpec {
    /// Exactly one of `site` and `sites`, and a list of distinct site short names (what the
    /// CRD's schema says, and what it cannot: nulls and duplicates in the list).
    pub fn check_sites(&self) -> Result<(), Problems> {
        let mut problems = Problems::default();
        if self.site.is_some() == self.sites.is_some() {
            problems.push(
                "sites",
                "set exactly one of site (one site) or sites ('all' or a list of sites)",
            );
        }
        if let Some(SiteSelection::Listed(sites)) = &self.sites {
            if sites.is_empty() {
                problems.push("sites", "list at least one site, or write `all`");
            }
            let mut seen = std::collections::BTreeSet::new();
            for site in sites {
                if !sigsci::is_short_name(site) {
                    problems.push(
                        "sites",
                        format!(
                            "{site:?} is not a site short name ({})",
                            sigsci::SHORT_NAME_CHARACTERS
                        ),
                    );
                } else if !seen.insert(site.as_str()) {
                    problems.push("sites", format!("{site:?} is listed twice"));
                }
            }
        }
        problems.into_result()
    }
}

impl AgentAlert {
    /// The declaration in the shared plan's terms, on the object's one `site` (empty for an
    /// object with `sites`, which validation then refuses).
    pub fn desired(&self, namespace: &str, name: &str, remote_id: Option<String>) -> DesiredAlert {
        let site = self.spec.site.as_deref().unwrap_or_default();
        self.desired_on(site, namespace, name, remote_id)
    }

    /// The declaration on one `site`.
    pub fn desired_on(
        &self,
        site: &str,
        namespace: &str,
        name: &str,
        remote_id: Option<String>,
    ) -> DesiredAlert {
        let spec = &self.spec;
        DesiredAlert {
            address: Address::new("AgentAlert", Some(namespace), name),
            site: site.to_string(),
            metric: spec.metric,
            operator: spec.operator,
            threshold: spec.threshold,
            interval: spec.interval,
            enabled: spec.enabled,
            skip_notifications: spec.skip_notifications,
            management: spec.management_policy,
            remote_id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(sites: serde_json::Value) -> Result<AgentAlertSpec, serde_json::Error> {
        let mut spec = serde_json::json!({
            "connectionRef": { "name": "sim" },
            "metric": "onlineAgentCount",
            "operator": "lessThan",
            "threshold": 1,
            "interval": 5,
        });
        spec["sites"] = sites;
        serde_json::from_value(spec)
    }

    #[test]
    fn sites_read_as_all_or_a_list_and_write_back_the_same() {
        let all = spec(serde_json::json!("all")).expect("all");
        assert_eq!(all.sites, Some(SiteSelection::All));
        assert_eq!(serde_json::to_value(&all).expect("json")["sites"], "all");
        let listed = spec(serde_json::json!(["site-1", "site-2"])).expect("a list");
        assert_eq!(
            listed.sites,
            Some(SiteSelection::Listed(vec![
                "site-1".into(),
                "site-2".into()
            ]))
        );
        assert!(listed.check_sites().is_ok());
        for bad in [serde_json::json!("some"), serde_json::json!(5)] {
            let error = spec(bad).expect_err("refused").to_string();
            assert!(error.contains("sites must be 'all'"), "{error}");
        }
    }

    #[test]
    fn what_the_apiserver_lets_through_reads_and_is_refused_naming_sites() {
        for (value, expected) in [
            (serde_json::json!(["a", "a"]), "\"a\" is listed twice"),
            (
                serde_json::json!(["a", null]),
                "\"\" is not a site short name",
            ),
            (serde_json::json!([]), "list at least one site"),
        ] {
            let spec = spec(value).expect("reads");
            let text = spec.check_sites().expect_err("refused").to_string();
            assert!(text.starts_with("sites: "), "{text}");
            assert!(text.contains(expected), "{text}");
        }
        let mut both = spec(serde_json::json!("all")).expect("all");
        both.site = Some("site-1".into());
        let text = both.check_sites().expect_err("refused").to_string();
        assert!(text.contains("sites: set exactly one of site"), "{text}");
    }
}

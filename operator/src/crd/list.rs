//! `SigSciList`: a site or corp list (IP, country, string, wildcard) with time-bound entries,
//! for blocking or flagging by request rules.

use chrono::{DateTime, Utc};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sigsci_config::list::COUNTRY_CODES;
use sigsci_config::{
    Address, DesiredEntry, DesiredList, IntegrationDeletionPolicy, IntegrationScope, ListType,
    Location, ManagementPolicy,
};

use super::common::{ConnectionRef, SyncStatus};

/// One entry: a value, optionally until a time, and why it is there.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListEntry {
    /// The entry: an IP address or CIDR range, an ISO 3166-1 alpha-2 country code, a string or a wildcard pattern, as the list's type says.
    #[schemars(length(min = 1, max = 256))]
    pub value: String,
    /// When the entry stops applying (RFC 3339); it is removed from the list at that time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<Time>,
    /// Why the entry is there (kept here only: the API stores bare values).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub comment: Option<String>,
}

impl ListEntry {
    pub fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.expires.as_ref().and_then(to_utc)
    }
}

/// A Kubernetes time in the plan's terms.
pub fn to_utc(time: &Time) -> Option<DateTime<Utc>> {
    let nanos = u32::try_from(time.0.subsec_nanosecond()).unwrap_or(0);
    DateTime::from_timestamp(time.0.as_second(), nanos)
}

/// A plan time as a Kubernetes one.
pub fn from_utc(time: DateTime<Utc>) -> Option<Time> {
    let nanos = i32::try_from(time.timestamp_subsec_nanos()).unwrap_or(0);
    k8s_openapi::jiff::Timestamp::new(time.timestamp(), nanos)
        .ok()
        .map(Time)
}

/// Observed state of a list: the common conditions and remote id, plus the entry counts.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListStatus {
    #[serde(flatten)]
    pub sync: SyncStatus,
    /// Declared entries not yet expired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_entries: Option<i64>,
    /// Declared entries past their expiry (removed from the remote list).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expired_entries: Option<i64>,
    /// The soonest expiry still ahead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_expiry: Option<Time>,
    /// Remote entries no manifest declares (added outside this object).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drift: Vec<RemoteEntry>,
}

/// A remote entry value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct RemoteEntry(pub String);

/// A Signal Sciences list, reconciled as a set of entries.
// Each printcolumn(...) repeats `type_`, which clippy takes for a duplicated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "sigsci-kit.io",
    version = "v1alpha1",
    kind = "SigSciList",
    namespaced,
    status = "ListStatus",
    shortname = "sigscilist",
    category = "sigsci",
    doc = "A Signal Sciences site or corp list (IP, country, string, wildcard) with time-bound entries",
    printcolumn(
        name = "Scope",
        type_ = "string",
        json_path = ".spec.scope",
        priority = 1
    ),
    printcolumn(name = "Site", type_ = "string", json_path = ".spec.site"),
    printcolumn(name = "List", type_ = "string", json_path = ".spec.name"),
    printcolumn(name = "Type", type_ = "string", json_path = ".spec.type"),
    printcolumn(
        name = "Active",
        type_ = "integer",
        json_path = ".status.activeEntries"
    ),
    printcolumn(
        name = "Expired",
        type_ = "integer",
        json_path = ".status.expiredEntries",
        priority = 1
    ),
    printcolumn(name = "Next Expiry", type_ = "date", json_path = ".status.nextExpiry"),
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
        json_path = r#".status.conditions[?(@.type=="Ready")].reason"#,
        priority = 1
    ),
    printcolumn(name = "Remote ID", type_ = "string", json_path = ".status.remoteId"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = Rule::new("self.scope == 'Site' ? (has(self.site) && size(self.site) > 0) : !has(self.site)")
    .message("site is required when scope is Site and not allowed when scope is Corp")
    .field_path(".site"))]
#[x_kube(validation = Rule::new("self.type != 'ip' || self.entries.all(e, isIP(e.value) || isCIDR(e.value))")
    .message("entries of an ip list must be IPv4/IPv6 addresses or CIDR ranges")
    .field_path(".entries"))]
#[x_kube(validation = Rule::new(country_rule())
    .message("entries of a country list must be ISO 3166-1 alpha-2 codes (upper case, e.g. DE)")
    .field_path(".entries"))]
#[serde(rename_all = "camelCase")]
pub struct SigSciListSpec {
    #[x_kube(validation = Rule::new("self == oldSelf").message("connectionRef is immutable: delete and recreate the SigSciList to move it"))]
    pub connection_ref: ConnectionRef,
    /// `Site` (default) or `Corp`.
    #[serde(default)]
    #[x_kube(validation = Rule::new("self == oldSelf").message("scope is immutable"))]
    pub scope: IntegrationScope,
    /// Site short name; required when scope is `Site`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^[0-9a-z_.-]+$')").message("site must be a site short name: lower-case letters, digits, '_', '.', '-'"))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("site is immutable"))]
    #[schemars(length(max = 100))]
    pub site: Option<String>,
    /// The list's name in the API (its id is derived from it); immutable.
    #[x_kube(validation = Rule::new("self == oldSelf").message("name is immutable: the API derives the list's id from it"))]
    #[schemars(length(min = 1, max = 32))]
    pub name: String,
    /// `ip`, `country`, `string` or `wildcard`; immutable, as in the API.
    #[serde(rename = "type")]
    #[x_kube(validation = Rule::new("self == oldSelf").message("type is immutable: the API cannot change a list's type"))]
    pub list_type: ListType,
    /// Shown in the dashboard.
    #[serde(default)]
    #[schemars(length(max = 140))]
    pub description: String,
    /// The entries, each value at most once.
    #[serde(default)]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["value".into()]))]
    #[schemars(length(max = 1000))]
    pub entries: Vec<ListEntry>,
    /// On deletion: `Delete` (default) removes the remote list, `Orphan` leaves it.
    #[serde(default)]
    pub deletion_policy: IntegrationDeletionPolicy,
    /// `Full` (default) writes the difference and removes undeclared entries; `ObserveOnly` never writes and reports the difference.
    #[serde(default)]
    pub management_policy: ManagementPolicy,
}

/// The CEL rule for country entries, from the same code list `sigsci-kit config` checks.
fn country_rule() -> String {
    let codes: Vec<String> = COUNTRY_CODES.iter().map(|c| format!("'{c}'")).collect();
    format!(
        "self.type != 'country' || self.entries.all(e, e.value in [{}])",
        codes.join(", ")
    )
}

impl SigSciListSpec {
    pub fn location(&self) -> Location {
        match (self.scope, &self.site) {
            (IntegrationScope::Site, Some(site)) => Location::Site(site.clone()),
            // Admission guarantees a site for Site scope; an empty one fails validation later.
            (IntegrationScope::Site, None) => Location::Site(String::new()),
            (IntegrationScope::Corp, _) => Location::Corp,
        }
    }
}

impl SigSciList {
    /// The declaration in the shared plan's terms.
    pub fn desired(&self, namespace: &str, name: &str, remote_id: Option<String>) -> DesiredList {
        let spec = &self.spec;
        DesiredList {
            address: Address::new("SigSciList", Some(namespace), name),
            location: spec.location(),
            name: spec.name.clone(),
            list_type: spec.list_type,
            description: spec.description.clone(),
            entries: spec
                .entries
                .iter()
                .map(|entry| DesiredEntry {
                    value: entry.value.clone(),
                    expires: entry.expires_at(),
                    comment: entry.comment.clone().unwrap_or_default(),
                })
                .collect(),
            management: spec.management_policy,
            remote_id,
        }
    }
}

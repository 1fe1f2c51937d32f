//! Types shared by the custom resources: references, the common status, and annotation keys.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// API group of every kind.
pub const GROUP: &str = "sigsci-kit.io";
/// Finalizer that keeps an object until its remote counterpart is handled.
pub const FINALIZER: &str = "sigsci-kit.io/cleanup";
/// Remote id, kept in an annotation too, so losing the status does not lose the link.
pub const REMOTE_ID_ANNOTATION: &str = "sigsci-kit.io/remote-id";
/// Digest of the write-only integration fields last sent (see `sigsci_config::integration::fields_digest`).
pub const FIELDS_DIGEST_ANNOTATION: &str = "sigsci-kit.io/fields-digest";
/// Digest of the remote object the object declares, through any connection to the same API and
/// corp (`sigsci_config::model::claim_digest`): objects with equal claims would write the same
/// remote object, and only the oldest does.
pub const CLAIM_ANNOTATION: &str = "sigsci-kit.io/claim";
/// The claim's first [`CLAIM_LABEL_CHARS`] characters as a label, so that finding the other
/// claimants is a label-selected list rather than a list of every object.
pub const CLAIM_LABEL: &str = "sigsci-kit.io/claim";
/// On an agent alert declared with `sites`: the label form of
/// `sigsci_config::alert::claim_sites_key` (API, corp, metric), selecting every object that may
/// claim one of that metric's site alerts on several sites.
pub const CLAIM_SITES_LABEL: &str = "sigsci-kit.io/claim-sites";
/// On an agent alert declared with `sites`: one label per site it declares, this prefix and the
/// label form of the site's claim (value `true`). A label holds one value, so the sites are keys.
pub const SITE_CLAIM_LABEL_PREFIX: &str = "claims.sigsci-kit.io/";
/// 160 bits of the digest: a label value holds at most 63 characters.
pub const CLAIM_LABEL_CHARS: usize = 40;

/// Which connection (corp, API URL, credentials) an object uses.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionRef {
    /// `SigSciConnection` (same namespace) or `ClusterSigSciConnection`.
    #[serde(default)]
    pub kind: ConnectionKind,
    /// Name of the connection object.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum ConnectionKind {
    #[default]
    SigSciConnection,
    ClusterSigSciConnection,
}

impl ConnectionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionKind::SigSciConnection => "SigSciConnection",
            ConnectionKind::ClusterSigSciConnection => "ClusterSigSciConnection",
        }
    }
}

/// One key of a Secret in the object's own namespace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key within the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// Observed state common to every kind. Conditions follow the Kubernetes convention
/// (`Ready`, `Synced`, and `Stalled` while a permanent error blocks progress), so kstatus-based
/// tools (Flux, Argo CD, `kubectl wait`) read them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncStatus {
    /// The `metadata.generation` the conditions describe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `Synced` and `Stalled`, one of each type at most.
    #[serde(default)]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// Id of the remote object (alert or integration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_id: Option<String>,
    /// When the remote object was last written or found to drift or to match after a change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync_time: Option<Time>,
}

/// Observed state of an agent alert or integration: the common part, and how the remote object
/// differs from the spec.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ManagedStatus {
    #[serde(flatten)]
    pub sync: SyncStatus,
    /// Fields of the remote object that differ from the spec, kept until they match again (under `managementPolicy: Full` they are corrected at once, and the `Drifted` condition says what was corrected).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    // Atomic: on an alert declared on several sites one field may have an entry per site.
    #[x_kube(merge_strategy = ListMerge::Atomic)]
    pub drift: Vec<DriftEntry>,
    /// Agent alerts declared with `sites`: the result on each site, one entry per site.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["site".into()]))]
    pub sites: Vec<SiteResult>,
}

/// The result of one reconcile on one site of an agent alert declared with `sites`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SiteResult {
    /// Site short name.
    pub site: String,
    /// Id of the site's alert.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_id: Option<String>,
    /// `True` when the site's alert matches the spec (or, under ObserveOnly, was read).
    pub ready: String,
    /// Why (PascalCase, as the `Ready` condition's reasons), e.g. `InSync`, `Conflict`.
    pub reason: String,
    /// What happened on this site.
    pub message: String,
}

/// One field that differs between the remote object and the spec. Secret values show only that they differ.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DriftEntry {
    /// The field, as the API names it (e.g. `threshold`, `events`, `url`).
    pub field: String,
    /// The site the entry is about, on alerts declared on several sites.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
    /// The value the spec declares (JSON).
    pub desired: String,
    /// The value the API holds (JSON).
    pub observed: String,
    /// When the difference was first seen.
    pub since: Time,
}

impl DriftEntry {
    /// Whether the entry is about `field` on `site` (`None`: an object on one site).
    pub fn is_about(&self, site: Option<&str>, field: &str) -> bool {
        self.site.as_deref() == site && self.field == field
    }
}

/// Observed state of a connection.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionStatus {
    /// The `metadata.generation` the conditions describe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`: the Secret was read and the API accepted the credentials.
    #[serde(default)]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
}

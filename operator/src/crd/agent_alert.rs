//! `AgentAlert`: one of a site's two agent alerts (average RPS, online agent count), declared.

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};
use sigsci_config::{
    Address, AlertDeletionPolicy, DesiredAlert, ManagementPolicy, Metric, ThresholdOperator,
};

use super::common::{ConnectionRef, ManagedStatus};

fn enabled_by_default() -> bool {
    true
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
#[serde(rename_all = "camelCase")]
pub struct AgentAlertSpec {
    #[x_kube(validation = Rule::new("self == oldSelf").message("connectionRef is immutable: delete and recreate the AgentAlert to move it"))]
    pub connection_ref: ConnectionRef,
    /// Site short name.
    #[x_kube(validation = Rule::new("self.matches('^[0-9a-z_.-]+$')").message("site must be a site short name: lower-case letters, digits, '_', '.', '-'"))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("site is immutable: delete and recreate the AgentAlert to move it"))]
    #[schemars(length(min = 1, max = 100))]
    pub site: String,
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

impl AgentAlert {
    /// The declaration in the shared plan's terms.
    pub fn desired(&self, namespace: &str, name: &str, remote_id: Option<String>) -> DesiredAlert {
        let spec = &self.spec;
        DesiredAlert {
            address: Address::new("AgentAlert", Some(namespace), name),
            site: spec.site.clone(),
            metric: spec.metric,
            operator: spec.operator,
            threshold: spec.threshold,
            interval: spec.interval,
            enabled: spec.enabled,
            skip_notifications: spec.skip_notifications,
            remote_id,
        }
    }
}

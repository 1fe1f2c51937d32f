//! `Integration`: a site or corp notification target (Slack, webhook, mailing list, ...).

use std::collections::BTreeMap;

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sigsci_config::{
    Address, DesiredIntegration, IntegrationDeletionPolicy, IntegrationScope, IntegrationType,
    Location, ManagementPolicy, Sensitive,
};

use super::common::{ConnectionRef, ManagedStatus, SecretKeyRef};

/// Where a secret value comes from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ValueSource {
    /// A key of a Secret in this namespace.
    pub secret_key_ref: SecretKeyRef,
}

/// One per-type field (e.g. datadog `apiKey`): a literal, or a Secret key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[x_kube(validation = Rule::new("has(self.value) != has(self.valueFrom)").message("each field needs exactly one of value or valueFrom"))]
#[serde(rename_all = "camelCase")]
pub struct FieldValue {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4096))]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from: Option<ValueSource>,
}

/// A Signal Sciences integration. Webhook URLs are credentials: prefer `urlFrom`.
// Each printcolumn(...) repeats `type_`, which clippy takes for a duplicated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "sigsci-kit.io",
    version = "v1alpha1",
    kind = "Integration",
    namespaced,
    status = "ManagedStatus",
    shortname = "sigsciint",
    category = "sigsci",
    doc = "A Signal Sciences site or corp integration (notification target)",
    printcolumn(
        name = "Scope",
        type_ = "string",
        json_path = ".spec.scope",
        priority = 1
    ),
    printcolumn(name = "Site", type_ = "string", json_path = ".spec.site"),
    printcolumn(name = "Type", type_ = "string", json_path = ".spec.type"),
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
#[x_kube(validation = Rule::new("self.scope != 'Corp' || self.type in ['mailingList', 'slack', 'microsoftTeams', 'microsoftTeamsWorkflow']")
    .message("corp integrations support only mailingList, slack, microsoftTeams and microsoftTeamsWorkflow")
    .field_path(".type"))]
#[x_kube(validation = Rule::new("self.type == 'datadog' ? (!has(self.url) && !has(self.urlFrom)) : (has(self.url) != has(self.urlFrom))")
    .message("set exactly one of url or urlFrom (datadog takes neither: it uses fields.site and fields.apiKey)")
    .field_path(".url"))]
#[x_kube(validation = Rule::new("!has(self.url) || (self.type == 'mailingList' ? self.url.matches('^[^@ ]+@[^@ ]+[.][^@ ]+$') : self.url.startsWith('https://'))")
    .message("url must be an https:// URL for webhook types, or an e-mail address for mailingList")
    .field_path(".url"))]
#[x_kube(validation = Rule::new("self.type != 'datadog' || ('site' in self.fields && 'apiKey' in self.fields)")
    .message("datadog integrations need fields.site (e.g. us1) and fields.apiKey")
    .field_path(".fields"))]
#[x_kube(validation = Rule::new("self.events.all(e, e in (self.scope == 'Corp' ? ['newSite', 'enableSSO', 'corpUpdated', 'listDeleted', 'webhookEvents'] : ['flag', 'agentAlert', 'loggingModeChanged', 'listCreated', 'webhookEvents']))")
    .message("events must be documented names: flag, agentAlert, loggingModeChanged, listCreated, webhookEvents for a site; newSite, enableSSO, corpUpdated, listDeleted, webhookEvents for the corp")
    .field_path(".events"))]
#[serde(rename_all = "camelCase")]
pub struct IntegrationSpec {
    #[x_kube(validation = Rule::new("self == oldSelf").message("connectionRef is immutable: delete and recreate the Integration to move it"))]
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
    /// Integration type; immutable, as in the API.
    #[serde(rename = "type")]
    #[x_kube(validation = Rule::new("self == oldSelf").message("type is immutable: the API cannot change an integration's type"))]
    pub kind: IntegrationType,
    /// Webhook URL, or the e-mail address for `mailingList`. Prefer `urlFrom` for webhooks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    pub url: Option<String>,
    /// The URL from a Secret key in this namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_from: Option<ValueSource>,
    /// Events that notify (e.g. `flag`, `agentAlert`, `webhookEvents`).
    #[serde(default)]
    #[schemars(length(max = 64))]
    pub events: Vec<EventName>,
    /// Per-type extras, e.g. datadog `site` and `apiKey` (from a Secret).
    #[serde(default)]
    #[schemars(length(max = 16))]
    pub fields: BTreeMap<String, FieldValue>,
    /// On deletion: `Delete` (default) removes the remote integration, `Orphan` leaves it.
    #[serde(default)]
    pub deletion_policy: IntegrationDeletionPolicy,
    /// `Full` (default) creates and updates the integration to match the spec and corrects drift; `ObserveOnly` never writes (not even on deletion) and reports the differences in `status.drift`.
    #[serde(default)]
    pub management_policy: ManagementPolicy,
}

/// An event name, bounded so CEL cost estimates stay small.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct EventName(#[schemars(length(min = 1, max = 64))] pub String);

/// A resolved Secret value is missing or unusable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("Secret {name} key {key}: {problem}")]
pub struct UnresolvedSecret {
    pub name: String,
    pub key: String,
    pub problem: String,
}

impl IntegrationSpec {
    /// Every Secret key the spec reads (URL and fields), in a stable order.
    pub fn secret_refs(&self) -> Vec<&SecretKeyRef> {
        let url = self.url_from.iter().map(|source| &source.secret_key_ref);
        let fields = self.fields.values().filter_map(|field| {
            field
                .value_from
                .as_ref()
                .map(|source| &source.secret_key_ref)
        });
        url.chain(fields).collect()
    }

    pub fn location(&self) -> Location {
        match (self.scope, &self.site) {
            (IntegrationScope::Site, Some(site)) => Location::Site(site.clone()),
            // Admission guarantees a site for Site scope; an empty one fails validation later.
            (IntegrationScope::Site, None) => Location::Site(String::new()),
            (IntegrationScope::Corp, _) => Location::Corp,
        }
    }
}

impl Integration {
    /// The declaration in the shared plan's terms, with Secret values looked up in `secrets`
    /// (keyed by Secret name and key).
    pub fn desired(
        &self,
        namespace: &str,
        name: &str,
        remote_id: Option<String>,
        secrets: &BTreeMap<(String, String), Sensitive>,
    ) -> Result<DesiredIntegration, UnresolvedSecret> {
        let lookup = |reference: &SecretKeyRef| {
            secrets
                .get(&(reference.name.clone(), reference.key.clone()))
                .cloned()
                .ok_or_else(|| UnresolvedSecret {
                    name: reference.name.clone(),
                    key: reference.key.clone(),
                    problem: "not found".to_string(),
                })
        };
        let spec = &self.spec;
        let url = match (&spec.url, &spec.url_from) {
            (Some(url), _) => Sensitive::new(url.clone()),
            (None, Some(source)) => lookup(&source.secret_key_ref)?,
            (None, None) => Sensitive::new(""),
        };
        let mut fields = BTreeMap::new();
        for (key, field) in &spec.fields {
            let value = match (&field.value, &field.value_from) {
                (Some(value), _) => Sensitive::new(value.clone()),
                (None, Some(source)) => lookup(&source.secret_key_ref)?,
                (None, None) => Sensitive::new(""),
            };
            fields.insert(key.clone(), value);
        }
        Ok(DesiredIntegration {
            address: Address::new("Integration", Some(namespace), name),
            location: spec.location(),
            kind: spec.kind,
            url,
            events: spec.events.iter().map(|event| event.0.clone()).collect(),
            fields,
            management: spec.management_policy,
            remote_id,
        })
    }
}

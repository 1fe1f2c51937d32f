//! `SigSciConnection` (namespaced) and `ClusterSigSciConnection`: which corp, which API, which
//! credentials.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::ConnectionStatus;

/// The real API; tests point `apiURL` at the simulator instead.
fn default_api_url() -> String {
    sigsci::DEFAULT_API_URL.to_string()
}

fn default_email_key() -> String {
    "email".to_string()
}

fn default_token_key() -> String {
    "token".to_string()
}

/// The Secret holding the API user's e-mail and access token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CredentialsSecretRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Only for `ClusterSigSciConnection` (required there); a `SigSciConnection` reads the
    /// Secret from its own namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub namespace: Option<String>,
    /// Key holding the API user's e-mail.
    #[serde(default = "default_email_key")]
    #[schemars(length(min = 1, max = 253))]
    pub email_key: String,
    /// Key holding the API access token.
    #[serde(default = "default_token_key")]
    #[schemars(length(min = 1, max = 253))]
    pub token_key: String,
}

/// A Signal Sciences corp reached through the API with credentials from a Secret in the same
/// namespace.
// Each printcolumn(...) repeats `type_`, which clippy takes for a duplicated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "sigsci-kit.io",
    version = "v1alpha1",
    kind = "SigSciConnection",
    namespaced,
    status = "ConnectionStatus",
    shortname = "sigscicon",
    category = "sigsci",
    doc = "A Signal Sciences corp and the credentials the operator uses for it",
    printcolumn(name = "Corp", type_ = "string", json_path = ".spec.corp"),
    printcolumn(
        name = "API",
        type_ = "string",
        json_path = ".spec.apiURL",
        priority = 1
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].status"#
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].reason"#
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = Rule::new("!has(self.credentialsSecretRef.__namespace__)")
    .message("credentialsSecretRef.namespace is not allowed: a SigSciConnection reads its Secret from its own namespace (use a ClusterSigSciConnection to read another namespace)")
    .field_path(".credentialsSecretRef.namespace"))]
#[serde(rename_all = "camelCase")]
pub struct SigSciConnectionSpec {
    /// Corp short name.
    #[x_kube(validation = Rule::new("self.matches('^[0-9a-z_.-]+$')").message("corp must be a corp short name: lower-case letters, digits, '_', '.', '-'"))]
    #[schemars(length(min = 1, max = 100))]
    pub corp: String,
    /// API base URL without `/api/v0`.
    #[serde(rename = "apiURL", default = "default_api_url")]
    #[x_kube(validation = Rule::new("self.startsWith('https://') || self.startsWith('http://')").message("apiURL must be an http(s) URL such as https://dashboard.signalsciences.net"))]
    #[schemars(length(min = 8, max = 2048))]
    pub api_url: String,
    /// The Secret holding the API user's e-mail and access token.
    pub credentials_secret_ref: CredentialsSecretRef,
}

/// Like `SigSciConnection`, cluster-wide: any namespace's objects may use it, and the Secret's
/// namespace is given explicitly.
// Each printcolumn(...) repeats `type_`, which clippy takes for a duplicated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "sigsci-kit.io",
    version = "v1alpha1",
    kind = "ClusterSigSciConnection",
    status = "ConnectionStatus",
    shortname = "csigscicon",
    category = "sigsci",
    doc = "A Signal Sciences corp and credentials usable from every namespace",
    printcolumn(name = "Corp", type_ = "string", json_path = ".spec.corp"),
    printcolumn(
        name = "API",
        type_ = "string",
        json_path = ".spec.apiURL",
        priority = 1
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].status"#
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].reason"#
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = Rule::new("has(self.credentialsSecretRef.__namespace__)")
    .message("credentialsSecretRef.namespace is required for a ClusterSigSciConnection")
    .field_path(".credentialsSecretRef"))]
#[serde(rename_all = "camelCase")]
pub struct ClusterSigSciConnectionSpec {
    /// Corp short name.
    #[x_kube(validation = Rule::new("self.matches('^[0-9a-z_.-]+$')").message("corp must be a corp short name: lower-case letters, digits, '_', '.', '-'"))]
    #[schemars(length(min = 1, max = 100))]
    pub corp: String,
    /// API base URL without `/api/v0`.
    #[serde(rename = "apiURL", default = "default_api_url")]
    #[x_kube(validation = Rule::new("self.startsWith('https://') || self.startsWith('http://')").message("apiURL must be an http(s) URL such as https://dashboard.signalsciences.net"))]
    #[schemars(length(min = 8, max = 2048))]
    pub api_url: String,
    /// The Secret holding the API user's e-mail and access token.
    pub credentials_secret_ref: CredentialsSecretRef,
}

/// What reconciling needs from either connection kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionTarget {
    pub corp: String,
    pub api_url: String,
    pub secret_namespace: String,
    pub secret: CredentialsSecretRef,
}

impl SigSciConnection {
    pub fn target(&self, namespace: &str) -> ConnectionTarget {
        ConnectionTarget {
            corp: self.spec.corp.clone(),
            api_url: self.spec.api_url.clone(),
            secret_namespace: namespace.to_string(),
            secret: self.spec.credentials_secret_ref.clone(),
        }
    }
}

impl ClusterSigSciConnection {
    /// `None` when the Secret's namespace is missing (admission rejects that).
    pub fn target(&self) -> Option<ConnectionTarget> {
        Some(ConnectionTarget {
            corp: self.spec.corp.clone(),
            api_url: self.spec.api_url.clone(),
            secret_namespace: self.spec.credentials_secret_ref.namespace.clone()?,
            secret: self.spec.credentials_secret_ref.clone(),
        })
    }
}

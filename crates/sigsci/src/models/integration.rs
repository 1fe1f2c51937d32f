use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A site or corp integration (notification target).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Integration {
    pub id: String,
    pub name: String,
    /// `slack`, `mailingList`, `generic`, ... (immutable once created).
    #[serde(rename = "type")]
    pub integration_type: String,
    pub url: String,
    pub events: Vec<String>,
    pub active: bool,
    pub note: String,
    pub created_by: String,
    #[serde(deserialize_with = "super::optional_time")]
    pub created: Option<DateTime<Utc>>,
}

/// Body of a create call.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct IntegrationBody {
    #[serde(rename = "type")]
    pub integration_type: String,
    pub url: String,
    pub events: Vec<String>,
    /// Per-type extras (e.g. datadog `site` / `apiKey`); write-only on the API side.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fields: Option<BTreeMap<String, String>>,
}

/// Body of a PATCH; `type` cannot change. `None` is left out.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct IntegrationUpdate {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fields: Option<BTreeMap<String, String>>,
}

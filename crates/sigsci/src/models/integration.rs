use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A site or corp integration (notification target). Debug hides the URL: webhook URLs are credentials.
#[derive(Clone, Default, PartialEq, Deserialize)]
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
#[derive(Clone, Default, PartialEq, Serialize)]
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
#[derive(Clone, Default, PartialEq, Serialize)]
pub struct IntegrationUpdate {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fields: Option<BTreeMap<String, String>>,
}

/// Shown in place of URLs and field values, which may carry credentials (webhook URLs, API keys).
const REDACTED: &str = "[redacted]";

fn redacted_fields(fields: &Option<BTreeMap<String, String>>) -> Option<Vec<&str>> {
    fields
        .as_ref()
        .map(|fields| fields.keys().map(String::as_str).collect())
}

impl std::fmt::Debug for Integration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Integration")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("integration_type", &self.integration_type)
            .field("url", &REDACTED)
            .field("events", &self.events)
            .field("active", &self.active)
            .field("note", &self.note)
            .field("created_by", &self.created_by)
            .field("created", &self.created)
            .finish()
    }
}

impl std::fmt::Debug for IntegrationBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IntegrationBody")
            .field("integration_type", &self.integration_type)
            .field("url", &REDACTED)
            .field("events", &self.events)
            .field("field_names", &redacted_fields(&self.fields))
            .finish()
    }
}

impl std::fmt::Debug for IntegrationUpdate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IntegrationUpdate")
            .field("url", &self.url.as_ref().map(|_| REDACTED))
            .field("events", &self.events)
            .field("field_names", &redacted_fields(&self.fields))
            .finish()
    }
}

#[cfg(test)]
mod debug_tests {
    use super::*;

    #[test]
    fn debug_never_shows_urls_or_field_values() {
        let secret_url = "https://hooks.slack.com/services/T000/B000/SECRET";
        let fields = Some(BTreeMap::from([(
            "apiKey".to_string(),
            "KEY-SECRET".to_string(),
        )]));
        let shown = format!(
            "{:?} {:?} {:?}",
            Integration {
                url: secret_url.into(),
                ..Integration::default()
            },
            IntegrationBody {
                url: secret_url.into(),
                fields: fields.clone(),
                ..IntegrationBody::default()
            },
            IntegrationUpdate {
                url: Some(secret_url.into()),
                fields,
                ..IntegrationUpdate::default()
            },
        );
        assert!(!shown.contains("SECRET"), "{shown}");
        assert!(
            shown.contains("apiKey"),
            "field names stay visible: {shown}"
        );
    }
}

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A site alert: a custom signal threshold or an agent alert (`requests_total`,
/// `agent_scoreboards`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Alert {
    pub id: String,
    /// The API's casing is unproven; both `siteId` and `siteID` are accepted.
    #[serde(alias = "siteID")]
    pub site_id: String,
    pub tag_name: String,
    pub long_name: String,
    pub interval: i64,
    pub threshold: i64,
    pub enabled: bool,
    /// `info`, `flagged`, or `siteMetricInfo` for agent alerts.
    pub action: String,
    /// `siteAlert`, `template`, `rateLimit` or `siteMetric` (read-only).
    #[serde(rename = "type")]
    pub alert_type: String,
    pub block_duration_seconds: i64,
    pub skip_notifications: bool,
    pub field_name: String,
    pub operator: String,
    pub created_by: String,
    #[serde(deserialize_with = "super::optional_time")]
    pub created: Option<DateTime<Utc>>,
}

/// Writable alert fields for create (POST) and partial update (PATCH); `None` is left out.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertBody {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub long_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub block_duration_seconds: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skip_notifications: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
}

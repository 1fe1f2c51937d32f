use chrono::{DateTime, Utc};
use serde::Deserialize;

/// A site (workspace) of a corp.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Site {
    /// Short name, the site's id in every path.
    pub name: String,
    pub display_name: String,
    /// `block`, `log` or `off`.
    pub agent_level: String,
    pub agent_anon_mode: String,
    #[serde(rename = "blockHTTPCode")]
    pub block_http_code: i64,
    pub block_duration_seconds: i64,
    #[serde(rename = "blockRedirectURL")]
    pub block_redirect_url: String,
    pub immediate_block: bool,
    #[serde(deserialize_with = "super::optional_time")]
    pub created: Option<DateTime<Utc>>,
}

use chrono::{DateTime, Utc};
use serde::Deserialize;

/// A corp (`GET /corps/{corp}`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Corp {
    pub name: String,
    pub display_name: String,
    #[serde(deserialize_with = "super::optional_time")]
    pub created: Option<DateTime<Utc>>,
    pub site_limit: i64,
    pub auth_type: String,
    pub session_max_age_dashboard: i64,
}

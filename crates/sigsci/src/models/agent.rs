use chrono::{DateTime, Utc};
use serde::Deserialize;

/// One agent of a site. The API's keys contain literal dots (`agent.status`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Agent {
    #[serde(rename = "agent.name")]
    pub name: String,
    /// Free text; `online` / `offline` in practice.
    #[serde(rename = "agent.status")]
    pub status: String,
    /// Seen in the last five minutes.
    #[serde(rename = "agent.active")]
    pub active: bool,
    #[serde(rename = "agent.enabled")]
    pub enabled: bool,
    #[serde(rename = "agent.last_seen", deserialize_with = "super::optional_time")]
    pub last_seen: Option<DateTime<Utc>>,
    /// `None` when the API sends `""` (no rule update yet).
    #[serde(
        rename = "agent.last_rule_update",
        deserialize_with = "super::optional_time"
    )]
    pub last_rule_update: Option<DateTime<Utc>>,
    #[serde(rename = "agent.version")]
    pub version: String,
    #[serde(rename = "agent.versions_behind")]
    pub versions_behind: i64,
    /// Requests seen in the last report interval (agents report every 30 s).
    #[serde(rename = "agent.current_requests")]
    pub current_requests: i64,
    #[serde(rename = "agent.connections_open")]
    pub connections_open: i64,
    #[serde(rename = "agent.uptime")]
    pub uptime: i64,
    #[serde(rename = "agent.addr")]
    pub addr: String,
    #[serde(rename = "host.remote_addr")]
    pub host_remote_addr: String,
    #[serde(rename = "module.type")]
    pub module_type: String,
    #[serde(rename = "module.version")]
    pub module_version: String,
}

impl Agent {
    /// Online as the dashboard counts it: reporting, and not marked offline.
    pub fn is_online(&self) -> bool {
        self.active && !self.status.eq_ignore_ascii_case("offline")
    }
}

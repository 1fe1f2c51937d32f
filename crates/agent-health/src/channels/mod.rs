//! Notification channels: pure payload builders per channel type, and [`Deliverer`], which sends them.

pub mod console;
mod deliver;
pub mod email;
pub mod opsgenie;
pub mod pagerduty;
pub mod slack;
pub mod webhook;

use chrono::{DateTime, Utc};
use serde::Serialize;

pub use deliver::{ConsoleSink, Deliverer, DeliveryError};

use crate::checks::{ConditionKey, Severity};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Firing,
    Resolved,
}

/// One condition as a channel is told about it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Notification {
    pub corp: String,
    pub check: ConditionKey,
    pub status: Status,
    pub severity: Severity,
    pub summary: String,
    pub since: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cleared_at: Option<DateTime<Utc>>,
    pub episode: String,
    /// A reminder: the channel was told about this episode before.
    pub repeat: bool,
    /// Resolved before its trigger reached the channel (that delivery failed): the message says
    /// the condition fired and cleared, and incident channels open and close it.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub trigger_missed: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub agents: Vec<String>,
    /// Acknowledges the whole check (firing notifications of ack-enabled channels only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ack_url: Option<String>,
    /// Acknowledges only the channel this notification went to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ack_channel_url: Option<String>,
    /// The rules' dashboard and runbook for this check.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<AlertLink>,
}

/// A link for whoever handles the alert (`Dashboard`, `Runbook`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AlertLink {
    pub label: &'static str,
    pub url: String,
}

impl Notification {
    /// Stable per corp/site/check: PagerDuty `dedup_key`, Opsgenie `alias`.
    pub fn dedup_key(&self) -> String {
        incident_key(&self.corp, &self.check)
    }

    /// One line: `[FIRING] testcorp/www · No agents online: 0 of 3 agents online`.
    pub fn headline(&self) -> String {
        format!(
            "[{}] {} · {}: {}",
            self.status_label(),
            self.site_label(),
            self.check.check.title(),
            self.details()
        )
    }

    pub fn status_label(&self) -> &'static str {
        match self.status {
            Status::Firing if self.repeat => "STILL FIRING",
            Status::Firing => "FIRING",
            Status::Resolved if self.trigger_missed => "FIRED AND RESOLVED",
            Status::Resolved => "RESOLVED",
        }
    }

    /// The status at a glance, for channels that show pictures (Slack, email).
    pub fn status_icon(&self) -> &'static str {
        match self.status {
            Status::Firing => "🔴",
            Status::Resolved if self.trigger_missed => "⚠️",
            Status::Resolved => "✅",
        }
    }

    /// `since 2026-11-26 08:00 UTC`, or for a resolved condition when it cleared.
    pub fn when(&self) -> String {
        match (self.status, self.cleared_at) {
            (Status::Resolved, Some(cleared)) => {
                format!("cleared {}", cleared.format("%Y-%m-%d %H:%M UTC"))
            }
            _ => format!("since {}", self.since.format("%Y-%m-%d %H:%M UTC")),
        }
    }

    /// The finding, or for a resolved condition what it was.
    pub fn details(&self) -> String {
        match self.status {
            Status::Firing => self.summary.clone(),
            Status::Resolved if self.trigger_missed => format!(
                "fired at {} and recovered before it could be delivered (was: {})",
                self.since.format("%Y-%m-%d %H:%M UTC"),
                self.summary
            ),
            Status::Resolved => format!("recovered (was: {})", self.summary),
        }
    }

    /// The trigger a channel missed, to be sent before this resolution (incident channels).
    pub fn missed_trigger(&self) -> Option<Notification> {
        (self.status == Status::Resolved && self.trigger_missed).then(|| Notification {
            status: Status::Firing,
            trigger_missed: false,
            ..self.clone()
        })
    }

    pub fn site_label(&self) -> String {
        if self.check.site == crate::checks::CORP_WIDE {
            format!("corp {}", self.corp)
        } else {
            format!("{}/{}", self.corp, self.check.site)
        }
    }
}

/// The key of a condition's incident at PagerDuty (`dedup_key`) and Opsgenie (`alias`): stable per
/// corp/site/check, so repeats join one incident and acknowledgements and resolves find it.
pub fn incident_key(corp: &str, check: &ConditionKey) -> String {
    format!("sigsci-kit/{corp}/{}/{}", check.site, check.check)
}

/// What a grouping channel's message is about: `🔴 2 agent health problems in testcorp, 1 resolved`.
pub(crate) fn group_headline(corp: &str, items: &[Notification]) -> String {
    let firing = items.iter().filter(|n| n.status == Status::Firing).count();
    let resolved = items.len() - firing;
    let problems = |n: usize| {
        if n == 1 {
            "1 agent health problem".to_string()
        } else {
            format!("{n} agent health problems")
        }
    };
    match (firing, resolved) {
        (0, n) => format!("✅ {} resolved in {corp}", problems(n)),
        (n, 0) => format!("🔴 {} in {corp}", problems(n)),
        (f, r) => format!("🔴 {} in {corp}, {r} resolved", problems(f)),
    }
}

/// Cuts text to at most `max` characters, marking the cut.
pub(crate) fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
pub(crate) mod fixtures {
    use chrono::TimeDelta;

    use super::*;
    use crate::checks::CheckKind;

    pub fn t(minutes: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000, 0).unwrap() + TimeDelta::minutes(minutes)
    }

    pub fn firing(site: &str) -> Notification {
        Notification {
            corp: "testcorp".into(),
            check: ConditionKey::new(site, CheckKind::NoAgentsOnline),
            status: Status::Firing,
            severity: Severity::Critical,
            summary: "0 of 3 agents online".into(),
            since: t(0),
            cleared_at: None,
            episode: "e1".into(),
            repeat: false,
            trigger_missed: false,
            agents: vec!["agent-1".into()],
            ack_url: Some(format!(
                "https://ack.example.com/ack?check={site}%2Fno_agents_online&sig=x"
            )),
            ack_channel_url: Some(format!(
                "https://ack.example.com/ack?check={site}%2Fno_agents_online&channels=c&sig=y"
            )),
            links: vec![AlertLink {
                label: "Runbook",
                url: "https://wiki.example/agent-health#no_agents_online".into(),
            }],
        }
    }

    pub fn resolved(site: &str) -> Notification {
        Notification {
            status: Status::Resolved,
            cleared_at: Some(t(30)),
            ack_url: None,
            ack_channel_url: None,
            ..firing(site)
        }
    }
}

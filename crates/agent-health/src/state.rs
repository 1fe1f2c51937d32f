//! The per-corp state document: the evaluator's heartbeat, per-site facts, every open condition with its
//! per-channel notification state, acknowledgements and the used acknowledgement links.
//! Small JSON, rewritten whole with compare-and-swap (see `store`).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::checks::{ConditionKey, Finding, Severity};

/// Bumped when a change to the document cannot be read by older code.
pub const STATE_VERSION: u32 = 1;

/// The acknowledgement history keeps this many most recent events.
pub const ACK_LOG_LIMIT: usize = 200;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub version: u32,
    pub corp: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat: Option<Heartbeat>,
    /// Consecutive runs that could not list the corp's sites.
    #[serde(default)]
    pub list_failures: u32,
    #[serde(default)]
    pub sites: BTreeMap<String, SiteState>,
    #[serde(default)]
    pub conditions: BTreeMap<ConditionKey, Condition>,
    /// Acknowledgement links already used, by nonce, kept until they expire.
    #[serde(default)]
    pub used_links: BTreeMap<String, UsedLink>,
    #[serde(default)]
    pub ack_log: Vec<AckEvent>,
}

impl State {
    pub fn new(corp: &str) -> State {
        State {
            version: STATE_VERSION,
            corp: corp.to_string(),
            ..State::default()
        }
    }

    pub fn log_ack(&mut self, event: AckEvent) {
        self.ack_log.push(event);
        let excess = self.ack_log.len().saturating_sub(ACK_LOG_LIMIT);
        self.ack_log.drain(..excess);
    }
}

/// What the last evaluation run did, so `health status` can tell a silent evaluator from a healthy fleet.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub run_id: String,
    pub started_at: DateTime<Utc>,
    /// Set when the run recorded its delivery outcomes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    pub sites_total: usize,
    pub sites_evaluated: usize,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sites_failed: Vec<String>,
    /// The site list itself could not be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corp_error: Option<String>,
    #[serde(default)]
    pub notifications_sent: usize,
    #[serde(default)]
    pub notifications_failed: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SiteState {
    /// When the agent list this state reflects was fetched; an older fetch never overwrites a newer one.
    pub observed_at: DateTime<Utc>,
    pub agents: usize,
    pub online: usize,
    pub rps: f64,
    /// Online count the drop check compares with; held while a drop is firing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop_baseline: Option<usize>,
    #[serde(default)]
    pub consecutive_failures: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// One check on one site that fired at some point and still has something to say.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Condition {
    pub firing: bool,
    /// Identifies one firing episode (from the first firing evaluation to the first clear one).
    pub episode: String,
    pub since: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cleared_at: Option<DateTime<Utc>>,
    pub severity: Severity,
    pub finding: Finding,
    pub updated_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Acks::is_empty")]
    pub acks: Acks,
    /// Notification state per channel name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub channels: BTreeMap<String, ChannelState>,
}

#[cfg(test)]
impl Condition {
    /// A critical "0 of 2 agents online" firing since `since` in `episode`, nobody told yet.
    pub(crate) fn firing_for_test(episode: &str, since: DateTime<Utc>) -> Condition {
        Condition {
            firing: true,
            episode: episode.to_string(),
            since,
            cleared_at: None,
            severity: Severity::Critical,
            finding: Finding {
                summary: "0 of 2 agents online".into(),
                value: 0.0,
                threshold: 1.0,
                agents: vec![],
            },
            updated_at: since,
            acks: Default::default(),
            channels: Default::default(),
        }
    }
}

/// Acknowledgements of the current episode; cleared when the condition evaluates false.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Acks {
    /// The whole check: every channel with `ack_enabled`, including ones added later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub whole: Option<AckRecord>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub channels: BTreeMap<String, AckRecord>,
}

impl Acks {
    pub fn is_empty(&self) -> bool {
        self.whole.is_none() && self.channels.is_empty()
    }

    /// Whether an acknowledgement in force at `now` covers the channel.
    pub fn covers(&self, channel: &str, now: DateTime<Utc>) -> bool {
        self.whole.as_ref().is_some_and(|ack| ack.in_force(now))
            || self
                .channels
                .get(channel)
                .is_some_and(|ack| ack.in_force(now))
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AckRecord {
    pub by: String,
    pub at: DateTime<Utc>,
    pub how: AckMethod,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<DateTime<Utc>>,
}

impl AckRecord {
    pub fn in_force(&self, now: DateTime<Utc>) -> bool {
        self.until.is_none_or(|until| now < until)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AckMethod {
    Cli,
    /// Confirmed on the page an acknowledgement link opened.
    Link,
    /// A `one_click=true` link acknowledged on GET.
    LinkOneClick,
    /// Cleared by the evaluator because the condition evaluated false.
    Recovered,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChannelState {
    /// The episode `notified`, `last_sent` and `sent` refer to.
    pub episode: String,
    /// A trigger for `episode` was delivered (so a resolve is owed when it clears).
    #[serde(default)]
    pub notified: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sent: Option<DateTime<Utc>>,
    #[serde(default)]
    pub sent: u32,
    /// A run has claimed a delivery and not yet recorded its outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<Claim>,
    /// Failed deliveries in a row.
    #[serde(default)]
    pub failures: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// The incident this channel opened (PagerDuty, Opsgenie) is to be acknowledged, or
    /// un-acknowledged, there as well; kept until delivered so a failure is retried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident: Option<IncidentUpdate>,
}

/// An acknowledgement change owed to (or made at) the incident tool behind a channel.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IncidentUpdate {
    pub action: IncidentAction,
    pub by: String,
    pub requested_at: DateTime<Utc>,
    /// When the incident tool accepted it; `None` while owed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub done_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub failures: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentAction {
    Acknowledge,
    Unacknowledge,
}

impl ChannelState {
    pub fn new(episode: &str) -> ChannelState {
        ChannelState {
            episode: episode.to_string(),
            notified: false,
            last_sent: None,
            sent: 0,
            pending: None,
            failures: 0,
            last_error: None,
            incident: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Claim {
    pub run_id: String,
    pub kind: DeliveryKind,
    pub episode: String,
    pub claimed_at: DateTime<Utc>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryKind {
    Trigger,
    Resolve,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UsedLink {
    pub check: ConditionKey,
    pub episode: String,
    pub used_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// Other checks of the site the same action acknowledged (undone with it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub also: Vec<ConditionKey>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AckEvent {
    pub at: DateTime<Utc>,
    pub check: ConditionKey,
    pub action: AckAction,
    /// Empty: the whole check.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub channels: Vec<String>,
    pub by: String,
    pub how: AckMethod,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<DateTime<Utc>>,
    /// The channel whose message carried the link used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AckAction {
    Ack,
    Unack,
    /// The condition evaluated false and its acknowledgements ended.
    Cleared,
}

//! Acknowledging and un-acknowledging conditions in the state document (CLI and links share this).
//! An acknowledgement silences the chosen channels for the current firing episode; it ends by itself
//! when the condition evaluates false, or at its optional `until`.

use chrono::{DateTime, Utc};

use crate::checks::{ConditionKey, Severity};
use crate::incidents;
use crate::rules::Rules;
use crate::state::{AckAction, AckEvent, AckMethod, AckRecord, IncidentAction, State};

#[derive(Clone, Debug)]
pub struct AckRequest {
    pub check: ConditionKey,
    /// Empty: the whole check (every channel with `ack_enabled`).
    pub channels: Vec<String>,
    pub until: Option<DateTime<Utc>>,
    pub by: String,
    pub how: AckMethod,
    /// The channel whose message carried the link.
    pub via: Option<String>,
    /// Links are bound to the episode they were sent for.
    pub episode: Option<String>,
}

/// What one acknowledgement is for: a check, or every check firing on a site (one outage raises
/// several, and on-call people acknowledge the outage).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AckTarget {
    Check(ConditionKey),
    Site(String),
}

impl std::str::FromStr for AckTarget {
    type Err = String;

    fn from_str(text: &str) -> Result<AckTarget, String> {
        if text.contains('/') {
            return text.parse().map(AckTarget::Check);
        }
        if text.trim().is_empty() {
            return Err("name a check as SITE/CHECK, or a site for all its firing checks".into());
        }
        Ok(AckTarget::Site(text.to_string()))
    }
}

impl std::fmt::Display for AckTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AckTarget::Check(check) => write!(f, "{check}"),
            AckTarget::Site(site) => write!(f, "site {site}"),
        }
    }
}

/// The checks firing on `site`, in key order.
pub fn firing_checks(state: &State, site: &str) -> Vec<ConditionKey> {
    state
        .conditions
        .iter()
        .filter(|(key, condition)| key.site == site && condition.firing)
        .map(|(key, _)| key.clone())
        .collect()
}

/// Acknowledges `request.check` and, with `whole_site`, every other check firing on its site
/// (those without the link's episode binding: they were not what the link was sent for). All or
/// nothing: an error leaves the state as it was (the caller's update is not written).
pub fn acknowledge_with_site(
    state: &mut State,
    rules: &Rules,
    request: &AckRequest,
    whole_site: bool,
    now: DateTime<Utc>,
) -> Result<Vec<(ConditionKey, AckOutcome)>, AckError> {
    let mut outcomes = vec![(
        request.check.clone(),
        acknowledge(state, rules, request, now)?,
    )];
    if whole_site {
        for check in firing_checks(state, &request.check.site) {
            if check == request.check {
                continue;
            }
            let other = AckRequest {
                check: check.clone(),
                episode: None,
                ..request.clone()
            };
            outcomes.push((check, acknowledge(state, rules, &other, now)?));
        }
    }
    Ok(outcomes)
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AckOutcome {
    /// Now silenced; the ack-enabled channels it covers.
    Acknowledged { channels: Vec<String> },
    /// An acknowledgement already in force covers the request; nothing changed.
    AlreadyAcknowledged,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum AckError {
    #[error("{check} is not an open condition (see `health status` for the conditions)")]
    UnknownCheck { check: ConditionKey },
    #[error("{check} is not firing, so there is nothing to acknowledge")]
    NotFiring { check: ConditionKey },
    #[error(
        "{check} has cleared since this acknowledgement was requested; a new alert carries a new link"
    )]
    EpisodeOver { check: ConditionKey },
    #[error("nothing is firing on site {site} (see `health status` for the conditions)")]
    NothingFiring { site: String },
    #[error("no channel named {channel:?} in the rules")]
    UnknownChannel { channel: String },
    #[error(
        "channel {channel:?} has ack_enabled: false; it keeps notifying until the condition clears"
    )]
    AckDisabled { channel: String },
    #[error("the acknowledgement would end at {until}, which is not in the future")]
    UntilInPast { until: DateTime<Utc> },
    #[error("{check} has no acknowledgement{} to remove", channel_suffix(.channels))]
    NotAcknowledged {
        check: ConditionKey,
        channels: Vec<String>,
    },
}

fn channel_suffix(channels: &[String]) -> String {
    if channels.is_empty() {
        String::new()
    } else {
        format!(" for {}", channels.join(", "))
    }
}

/// Checks named channels exist and accept acknowledgements (an explicit ack of an `ack_enabled: false`
/// channel is refused, as Search Guard refuses it with 400).
fn checked_channels(rules: &Rules, channels: &[String]) -> Result<(), AckError> {
    for name in channels {
        let channel = rules
            .channel(name)
            .ok_or_else(|| AckError::UnknownChannel {
                channel: name.clone(),
            })?;
        if !channel.ack_enabled {
            return Err(AckError::AckDisabled {
                channel: name.clone(),
            });
        }
    }
    Ok(())
}

pub fn acknowledge(
    state: &mut State,
    rules: &Rules,
    request: &AckRequest,
    now: DateTime<Utc>,
) -> Result<AckOutcome, AckError> {
    checked_channels(rules, &request.channels)?;
    if let Some(until) = request.until
        && until <= now
    {
        return Err(AckError::UntilInPast { until });
    }
    let check = request.check.clone();
    let condition = state
        .conditions
        .get_mut(&check)
        .ok_or_else(|| AckError::UnknownCheck {
            check: check.clone(),
        })?;
    if request
        .episode
        .as_ref()
        .is_some_and(|episode| *episode != condition.episode)
    {
        return Err(AckError::EpisodeOver { check });
    }
    if !condition.firing {
        return Err(match request.episode {
            Some(_) => AckError::EpisodeOver { check },
            None => AckError::NotFiring { check },
        });
    }
    let already = if request.channels.is_empty() {
        condition
            .acks
            .whole
            .as_ref()
            .is_some_and(|ack| ack.in_force(now))
    } else {
        request
            .channels
            .iter()
            .all(|channel| condition.acks.covers(channel, now))
    };
    if already {
        return Ok(AckOutcome::AlreadyAcknowledged);
    }
    let record = AckRecord {
        by: request.by.clone(),
        at: now,
        how: request.how,
        until: request.until,
    };
    if request.channels.is_empty() {
        condition.acks.whole = Some(record);
    } else {
        for channel in &request.channels {
            condition
                .acks
                .channels
                .insert(channel.clone(), record.clone());
        }
    }
    let covered = silenced_channels(rules, &check, condition.severity, &request.channels);
    incidents::owe(
        condition,
        rules,
        &covered,
        IncidentAction::Acknowledge,
        &request.by,
        now,
    );
    state.log_ack(AckEvent {
        at: now,
        check,
        action: AckAction::Ack,
        channels: request.channels.clone(),
        by: request.by.clone(),
        how: request.how,
        until: request.until,
        via: request.via.clone(),
    });
    Ok(AckOutcome::Acknowledged { channels: covered })
}

/// The channels an acknowledgement of `channels` (empty: the whole check) silences: those that
/// accept acknowledgements and would be told about this check at this severity.
pub fn silenced_channels(
    rules: &Rules,
    check: &ConditionKey,
    severity: Severity,
    channels: &[String],
) -> Vec<String> {
    rules
        .channels
        .iter()
        .filter(|channel| channel.ack_enabled && channel.wants(check.check, severity))
        .filter(|channel| channels.is_empty() || channels.contains(&channel.name))
        .map(|channel| channel.name.clone())
        .collect()
}

/// Removes acknowledgements: all of them (no channels) or those of the named channels. Removing one
/// channel from a whole-check acknowledgement keeps the others acknowledged.
pub fn unacknowledge(
    state: &mut State,
    rules: &Rules,
    check: &ConditionKey,
    channels: &[String],
    by: &str,
    how: AckMethod,
    now: DateTime<Utc>,
) -> Result<(), AckError> {
    checked_channels(rules, channels)?;
    let condition = state
        .conditions
        .get_mut(check)
        .ok_or_else(|| AckError::UnknownCheck {
            check: check.clone(),
        })?;
    let acks = &mut condition.acks;
    let not_acknowledged = || AckError::NotAcknowledged {
        check: check.clone(),
        channels: channels.to_vec(),
    };
    if channels.is_empty() {
        if acks.is_empty() {
            return Err(not_acknowledged());
        }
        *acks = Default::default();
    } else {
        if !channels.iter().any(|channel| acks.covers(channel, now)) {
            return Err(not_acknowledged());
        }
        if let Some(whole) = acks.whole.take() {
            // Spell the whole-check acknowledgement out per channel, minus the ones being removed.
            for channel in rules
                .channels
                .iter()
                .filter(|c| c.ack_enabled && !channels.contains(&c.name))
            {
                acks.channels
                    .entry(channel.name.clone())
                    .or_insert_with(|| whole.clone());
            }
        }
        for channel in channels {
            acks.channels.remove(channel);
        }
    }
    let withdrawn: Vec<String> = if channels.is_empty() {
        condition.channels.keys().cloned().collect()
    } else {
        channels.to_vec()
    };
    incidents::owe(
        condition,
        rules,
        &withdrawn,
        IncidentAction::Unacknowledge,
        by,
        now,
    );
    state.log_ack(AckEvent {
        at: now,
        check: check.clone(),
        action: AckAction::Unack,
        channels: channels.to_vec(),
        by: by.to_string(),
        how,
        until: None,
        via: None,
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::*;
    use crate::checks::CheckKind;
    use crate::state::Condition;

    fn t(minutes: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000, 0).unwrap() + TimeDelta::minutes(minutes)
    }

    fn rules() -> Rules {
        Rules::parse(
            "ack: {base_url: 'http://127.0.0.1:9', secret: env:K}\nchannels:\n  - {name: slack, type: console}\n  \
             - {name: mail, type: console}\n  - {name: pd, type: pagerduty, secret: env:PD, ack_enabled: false}\n",
            "test",
        )
        .unwrap()
    }

    fn key() -> ConditionKey {
        ConditionKey::new("www", CheckKind::NoAgentsOnline)
    }

    fn firing_state() -> State {
        let mut state = State::new("corp");
        state
            .conditions
            .insert(key(), Condition::firing_for_test("e1", t(0)));
        state
    }

    fn request(channels: &[&str]) -> AckRequest {
        AckRequest {
            check: key(),
            channels: channels.iter().map(|c| c.to_string()).collect(),
            until: None,
            by: "ann".into(),
            how: AckMethod::Cli,
            via: None,
            episode: None,
        }
    }

    #[test]
    fn whole_check_ack_covers_ack_enabled_channels_and_is_logged() {
        let mut state = firing_state();
        let outcome = acknowledge(&mut state, &rules(), &request(&[]), t(1)).unwrap();
        assert_eq!(
            outcome,
            AckOutcome::Acknowledged {
                channels: vec!["slack".into(), "mail".into()]
            }
        );
        assert_eq!(
            acknowledge(&mut state, &rules(), &request(&[]), t(2)).unwrap(),
            AckOutcome::AlreadyAcknowledged
        );
        assert_eq!(
            acknowledge(&mut state, &rules(), &request(&["mail"]), t(2)).unwrap(),
            AckOutcome::AlreadyAcknowledged
        );
        assert_eq!(state.ack_log.len(), 1);
        let event = &state.ack_log[0];
        assert_eq!(
            (event.by.as_str(), event.how, event.action, event.at),
            ("ann", AckMethod::Cli, AckAction::Ack, t(1))
        );
    }

    #[test]
    fn acking_a_channel_that_refuses_acks_is_an_error_and_changes_nothing() {
        let mut state = firing_state();
        let before = state.clone();
        let error =
            acknowledge(&mut state, &rules(), &request(&["slack", "pd"]), t(1)).unwrap_err();
        assert_eq!(
            error,
            AckError::AckDisabled {
                channel: "pd".into()
            }
        );
        assert!(error.to_string().contains("ack_enabled: false"));
        assert_eq!(state, before);
        let error = acknowledge(&mut state, &rules(), &request(&["sms"]), t(1)).unwrap_err();
        assert_eq!(
            error,
            AckError::UnknownChannel {
                channel: "sms".into()
            }
        );
    }

    #[test]
    fn refuses_unknown_cleared_and_past_until() {
        let rules = rules();
        let mut state = firing_state();
        let mut other = request(&[]);
        other.check = ConditionKey::new("www", CheckKind::LowTraffic);
        assert!(matches!(
            acknowledge(&mut state, &rules, &other, t(1)),
            Err(AckError::UnknownCheck { .. })
        ));
        let mut past = request(&[]);
        past.until = Some(t(0));
        assert!(matches!(
            acknowledge(&mut state, &rules, &past, t(1)),
            Err(AckError::UntilInPast { .. })
        ));
        let mut stale_link = request(&[]);
        stale_link.episode = Some("e0".into());
        assert!(matches!(
            acknowledge(&mut state, &rules, &stale_link, t(1)),
            Err(AckError::EpisodeOver { .. })
        ));
        state.conditions.get_mut(&key()).unwrap().firing = false;
        assert!(matches!(
            acknowledge(&mut state, &rules, &request(&[]), t(1)),
            Err(AckError::NotFiring { .. })
        ));
    }

    #[test]
    fn ack_until_expires() {
        let mut state = firing_state();
        let mut until = request(&["slack"]);
        until.until = Some(t(30));
        acknowledge(&mut state, &rules(), &until, t(1)).unwrap();
        let acks = &state.conditions[&key()].acks;
        assert!(
            acks.covers("slack", t(29))
                && !acks.covers("slack", t(30))
                && !acks.covers("mail", t(1))
        );
    }

    #[test]
    fn unack_of_one_channel_keeps_the_rest_of_a_whole_check_ack() {
        let rules = rules();
        let mut state = firing_state();
        acknowledge(&mut state, &rules, &request(&[]), t(1)).unwrap();
        unacknowledge(
            &mut state,
            &rules,
            &key(),
            &["slack".into()],
            "bob",
            AckMethod::Cli,
            t(2),
        )
        .unwrap();
        let acks = &state.conditions[&key()].acks;
        assert!(!acks.covers("slack", t(3)) && acks.covers("mail", t(3)));
        let error = unacknowledge(
            &mut state,
            &rules,
            &key(),
            &["slack".into()],
            "bob",
            AckMethod::Cli,
            t(3),
        )
        .unwrap_err();
        assert!(matches!(error, AckError::NotAcknowledged { .. }), "{error}");
        unacknowledge(&mut state, &rules, &key(), &[], "bob", AckMethod::Cli, t(4)).unwrap();
        assert!(state.conditions[&key()].acks.is_empty());
        assert_eq!(
            state
                .ack_log
                .iter()
                .filter(|e| e.action == AckAction::Unack)
                .count(),
            2
        );
    }
}

//! Acknowledgements reach the incident tools: when people acknowledge in sigsci-kit, the incident a
//! PagerDuty or Opsgenie channel opened for that condition is acknowledged there too, so its
//! escalation stops. The change is owed in the state until the tool accepts it: whoever makes the
//! acknowledgement (the link pages, the CLI) sends it at once, and every evaluation run retries what
//! is still owed.

use std::convert::Infallible;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::channels::Deliverer;
use crate::checks::ConditionKey;
use crate::rules::{ChannelKind, Rules};
use crate::secrets::SecretResolver;
use crate::state::{Condition, IncidentAction, IncidentUpdate, State};
use crate::store::{StateStore, StoreError};

/// Records that the incidents of `channels` (those that opened one for the current episode) are to
/// be acknowledged or un-acknowledged by `by`. Channels without incidents are skipped; so is
/// un-acknowledging at PagerDuty, which its Events API cannot do.
pub(crate) fn owe(
    condition: &mut Condition,
    rules: &Rules,
    channels: &[String],
    action: IncidentAction,
    by: &str,
    now: DateTime<Utc>,
) {
    for name in channels {
        let Some(kind) = rules.channel(name).map(|channel| channel.kind) else {
            continue;
        };
        let Some(channel) = condition.channels.get_mut(name) else {
            continue;
        };
        if !kind.has_incidents() || !channel.notified || channel.episode != condition.episode {
            continue;
        }
        let done = channel
            .incident
            .as_ref()
            .filter(|update| update.done_at.is_some())
            .map(|update| update.action);
        channel.incident = match (action, done) {
            // The incident already stands as asked.
            (IncidentAction::Acknowledge, Some(IncidentAction::Acknowledge)) => continue,
            // Never acknowledged there (or only owed): withdrawing is forgetting what was owed.
            (IncidentAction::Unacknowledge, None | Some(IncidentAction::Unacknowledge)) => None,
            (IncidentAction::Unacknowledge, Some(_)) if kind == ChannelKind::Pagerduty => continue,
            _ => Some(IncidentUpdate {
                action,
                by: by.to_string(),
                requested_at: now,
                done_at: None,
                failures: 0,
                last_error: None,
            }),
        };
    }
}

/// One owed change and what the incident tool said.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct IncidentOutcome {
    pub check: ConditionKey,
    pub channel: String,
    pub action: IncidentAction,
    /// The error, when the tool did not accept it (retried by the next evaluation).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Sends owed incident changes with the channels' own secrets.
#[derive(Clone)]
pub struct IncidentSync {
    pub secrets: SecretResolver,
    pub deliverer: Deliverer,
}

struct Owed {
    check: ConditionKey,
    channel: String,
    update: IncidentUpdate,
}

/// Whether the state owes any incident tool an update.
pub(crate) fn any_owed(state: &State) -> bool {
    !owed(state).is_empty()
}

fn owed(state: &State) -> Vec<Owed> {
    let mut owed = Vec::new();
    for (check, condition) in state.conditions.iter().filter(|(_, c)| c.firing) {
        for (name, channel) in &condition.channels {
            if let Some(update) = channel
                .incident
                .as_ref()
                .filter(|update| update.done_at.is_none() && channel.episode == condition.episode)
            {
                owed.push(Owed {
                    check: check.clone(),
                    channel: name.clone(),
                    update: update.clone(),
                });
            }
        }
    }
    owed
}

impl IncidentSync {
    /// Sends every change the corp's state owes and records what each tool said. A condition
    /// that cleared meanwhile owes nothing: its resolve closes the incident.
    pub async fn send_owed(
        &self,
        store: &StateStore,
        corp: &str,
        rules: &Rules,
        now: DateTime<Utc>,
    ) -> Result<Vec<IncidentOutcome>, StoreError> {
        let (state, _) = store.load(corp).await?;
        let owed = owed(&state);
        if owed.is_empty() {
            return Ok(Vec::new());
        }
        let mut results = Vec::with_capacity(owed.len());
        for item in owed {
            let result = match rules.channel(&item.channel) {
                // A channel removed from the rules keeps its incident as it is.
                None => Err("the channel is no longer in the rules".to_string()),
                Some(channel) => match self.secrets.channel_secret(channel).await {
                    Err(error) => Err(format!("channel {}: {error}", channel.name)),
                    Ok(secret) => self
                        .deliverer
                        .incident(
                            channel,
                            secret.as_ref(),
                            corp,
                            &item.check,
                            item.update.action,
                            &item.update.by,
                        )
                        .await
                        .map_err(|error| error.to_string()),
                },
            };
            match &result {
                Ok(()) => {
                    tracing::info!(check = %item.check, channel = %item.channel, action = ?item.update.action, "incident updated")
                }
                Err(error) => {
                    tracing::warn!(check = %item.check, channel = %item.channel, %error, "incident not updated; retried by the next evaluation")
                }
            }
            results.push((item, result));
        }
        store
            .update(corp, |state| {
                for (item, result) in &results {
                    let Some(update) = state
                        .conditions
                        .get_mut(&item.check)
                        .and_then(|condition| condition.channels.get_mut(&item.channel))
                        .and_then(|channel| channel.incident.as_mut())
                        // Only the change that was sent: a newer request stays owed.
                        .filter(|update| {
                            update.requested_at == item.update.requested_at
                                && update.action == item.update.action
                        })
                    else {
                        continue;
                    };
                    match result {
                        Ok(()) => {
                            update.done_at = Some(now);
                            update.last_error = None;
                        }
                        Err(error) => {
                            update.failures += 1;
                            update.last_error = Some(error.clone());
                        }
                    }
                }
                Ok::<_, Infallible>(())
            })
            .await
            .map_err(|error| match error {
                crate::store::UpdateError::Store(error) => error,
                crate::store::UpdateError::Change(never) => match never {},
            })?;
        Ok(results
            .into_iter()
            .map(|(item, result)| IncidentOutcome {
                check: item.check,
                channel: item.channel,
                action: item.update.action,
                error: result.err(),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::*;
    use crate::state::ChannelState;

    fn t(minutes: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000, 0).unwrap() + TimeDelta::minutes(minutes)
    }

    fn rules() -> Rules {
        Rules::parse(
            "ack: {base_url: 'http://127.0.0.1:9', secret: env:K}\nchannels:\n  - {name: slack, type: slack, secret: env:S}\n  \
             - {name: pd, type: pagerduty, secret: env:PD}\n  - {name: og, type: opsgenie, secret: env:OG}\n  \
             - {name: late, type: opsgenie, secret: env:OG}\n",
            "test",
        )
        .unwrap()
    }

    /// Firing in episode e2; slack, pd and og were told about it, `late` only about episode e1.
    fn told_condition() -> Condition {
        let told = |episode: &str| ChannelState {
            notified: true,
            ..ChannelState::new(episode)
        };
        Condition {
            channels: [
                ("slack".to_string(), told("e2")),
                ("pd".to_string(), told("e2")),
                ("og".to_string(), told("e2")),
                ("late".to_string(), told("e1")),
            ]
            .into(),
            ..Condition::firing_for_test("e2", t(0))
        }
    }

    fn owed_actions(condition: &Condition) -> Vec<(String, IncidentAction, bool)> {
        condition
            .channels
            .iter()
            .filter_map(|(name, channel)| {
                let update = channel.incident.as_ref()?;
                Some((name.clone(), update.action, update.done_at.is_some()))
            })
            .collect()
    }

    fn all() -> Vec<String> {
        ["slack", "pd", "og", "late"].map(String::from).to_vec()
    }

    #[test]
    fn only_incidents_opened_for_this_episode_are_owed_an_acknowledgement() {
        let mut condition = told_condition();
        owe(
            &mut condition,
            &rules(),
            &all(),
            IncidentAction::Acknowledge,
            "ann",
            t(1),
        );
        assert_eq!(
            owed_actions(&condition),
            [
                ("og".to_string(), IncidentAction::Acknowledge, false),
                ("pd".to_string(), IncidentAction::Acknowledge, false),
            ]
        );
        assert_eq!(
            condition.channels["pd"].incident.as_ref().unwrap().by,
            "ann"
        );
    }

    #[test]
    fn withdrawing_unacknowledges_opsgenie_keeps_pagerduty_and_forgets_what_was_never_sent() {
        let mut condition = told_condition();
        owe(
            &mut condition,
            &rules(),
            &all(),
            IncidentAction::Acknowledge,
            "ann",
            t(1),
        );
        for name in ["pd", "og"] {
            condition
                .channels
                .get_mut(name)
                .unwrap()
                .incident
                .as_mut()
                .unwrap()
                .done_at = Some(t(1));
        }
        // Acknowledging again changes nothing that is done.
        owe(
            &mut condition,
            &rules(),
            &all(),
            IncidentAction::Acknowledge,
            "bob",
            t(2),
        );
        assert_eq!(
            condition.channels["og"].incident.as_ref().unwrap().by,
            "ann"
        );

        owe(
            &mut condition,
            &rules(),
            &all(),
            IncidentAction::Unacknowledge,
            "bob",
            t(3),
        );
        assert_eq!(
            owed_actions(&condition),
            [
                ("og".to_string(), IncidentAction::Unacknowledge, false),
                ("pd".to_string(), IncidentAction::Acknowledge, true),
            ]
        );

        // An acknowledgement withdrawn before it reached the tool is simply not sent.
        let mut fresh = told_condition();
        owe(
            &mut fresh,
            &rules(),
            &all(),
            IncidentAction::Acknowledge,
            "ann",
            t(1),
        );
        owe(
            &mut fresh,
            &rules(),
            &all(),
            IncidentAction::Unacknowledge,
            "ann",
            t(2),
        );
        assert!(owed_actions(&fresh).is_empty());
    }
}

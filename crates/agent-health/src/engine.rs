//! The notification state machine, pure over the state document:
//! observations → conditions (`apply_observations`), conditions → claimed deliveries honouring throttles
//! and acknowledgements (`claim_deliveries`), delivery outcomes → state (`record_outcomes`).
//!
//! A run commits the claims before it delivers anything and only advances a channel after its delivery
//! succeeded, so two overlapping runs never both notify (the loser of the compare-and-swap re-plans
//! against the winner's claims) and a failed delivery is planned again by the next run.

use chrono::{DateTime, TimeDelta, Utc};

use crate::checks::{
    AgentSnapshot, CORP_WIDE, CheckKind, ConditionKey, Finding, Outcome, Severity, evaluate_site,
};
use crate::incidents;
use crate::rules::Rules;
use crate::state::{
    AckAction, AckEvent, AckMethod, ChannelState, Claim, Condition, DeliveryKind, IncidentAction,
    SiteState, State,
};

/// A claim older than this is taken to be from a run that died before recording its outcome.
/// Deliveries are bounded by HTTP timeouts far below it.
pub const CLAIM_LEASE: TimeDelta = TimeDelta::minutes(3);

/// The agent list of one site, or why it could not be read.
#[derive(Clone, Debug)]
pub struct SiteObservation {
    pub site: String,
    pub observed_at: DateTime<Utc>,
    pub agents: Result<Vec<AgentSnapshot>, String>,
}

/// Everything one run fetched from the API.
#[derive(Clone, Debug)]
pub enum CorpObservation {
    Sites(Vec<SiteObservation>),
    /// The site list could not be read; nothing is known about any site.
    ListFailed {
        error: String,
        /// The API's HTTP status, if it answered (401/403: the credentials were refused).
        status: Option<u16>,
    },
}

impl CorpObservation {
    /// The API turned the credentials away (a rotated or revoked token).
    pub fn credentials_refused(&self) -> bool {
        matches!(
            self,
            CorpObservation::ListFailed {
                status: Some(401 | 403),
                ..
            }
        )
    }
}

/// Counts for logs, metrics and the heartbeat.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EvaluationTally {
    pub sites_total: usize,
    pub sites_evaluated: usize,
    pub sites_failed: Vec<String>,
    /// Observations older than what the state already holds (an overlapping, later run won).
    pub sites_superseded: usize,
}

/// A delivery this run owns until it records the outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimedDelivery {
    pub key: ConditionKey,
    pub channel: String,
    pub kind: DeliveryKind,
    pub episode: String,
    /// The channel was already told about this episode (a reminder after the throttle period).
    pub repeat: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PlanTally {
    pub firing: usize,
    pub throttled: usize,
    pub acknowledged: usize,
    /// Deliveries another run has claimed and not yet recorded.
    pub in_flight: usize,
}

/// Folds one run's observations into the state: starts and ends firing episodes, counts failures,
/// clears acknowledgements of conditions that evaluated false.
pub fn apply_observations(
    state: &mut State,
    rules: &Rules,
    observation: &CorpObservation,
    run_id: &str,
    now: DateTime<Utc>,
) -> EvaluationTally {
    let mut tally = EvaluationTally::default();
    let corp_key = ConditionKey::new(CORP_WIDE, CheckKind::EvaluationFailed);
    let sites = match observation {
        CorpObservation::ListFailed { error, .. } => {
            state.list_failures += 1;
            let settings = rules.corp_checks().evaluation_failed;
            if settings.enabled && state.list_failures >= settings.threshold {
                let finding = Finding {
                    summary: format!(
                        "the corp's site list could not be read ({} runs): {error}",
                        state.list_failures
                    ),
                    value: f64::from(state.list_failures),
                    threshold: f64::from(settings.threshold),
                    agents: Vec::new(),
                };
                fire(state, &corp_key, settings.severity, finding, run_id, now);
            }
            return tally;
        }
        CorpObservation::Sites(sites) => sites,
    };
    state.list_failures = 0;
    clear(state, &corp_key, now);
    tally.sites_total = sites.len();

    for observed in sites {
        let Some(settings) = rules.site(&observed.site) else {
            clear_site(state, &observed.site, now);
            state.sites.remove(&observed.site);
            continue;
        };
        if state
            .sites
            .get(&observed.site)
            .is_some_and(|known| known.observed_at > observed.observed_at)
        {
            tally.sites_superseded += 1;
            continue;
        }
        let previous = state.sites.get(&observed.site).cloned();
        let failed_key = ConditionKey::new(&observed.site, CheckKind::EvaluationFailed);
        match &observed.agents {
            Ok(agents) => {
                tally.sites_evaluated += 1;
                let baseline = previous.as_ref().and_then(|p| p.drop_baseline);
                let evaluation = evaluate_site(&settings, agents, baseline);
                let mut drop_firing = false;
                for check in CheckKind::ALL {
                    if check == CheckKind::EvaluationFailed {
                        continue;
                    }
                    let key = ConditionKey::new(&observed.site, check);
                    match evaluation
                        .outcomes
                        .iter()
                        .find(|(c, _)| *c == check)
                        .map(|(_, o)| o)
                    {
                        Some(Outcome::Firing(finding)) => {
                            drop_firing |= check == CheckKind::AgentCountDrop;
                            fire(
                                state,
                                &key,
                                settings.severity(check),
                                finding.clone(),
                                run_id,
                                now,
                            );
                        }
                        Some(Outcome::Inhibited) => {
                            // Not judged: keep what we knew, and keep the drop baseline if it was firing.
                            drop_firing |=
                                check == CheckKind::AgentCountDrop && is_firing(state, &key);
                        }
                        // Clear, or the check is switched off for this site.
                        Some(Outcome::Clear) | None => clear(state, &key, now),
                    }
                }
                clear(state, &failed_key, now);
                let drop_baseline = if drop_firing {
                    baseline.or(Some(evaluation.facts.online))
                } else {
                    Some(evaluation.facts.online)
                };
                state.sites.insert(
                    observed.site.clone(),
                    SiteState {
                        observed_at: observed.observed_at,
                        agents: evaluation.facts.agents,
                        online: evaluation.facts.online,
                        rps: evaluation.facts.rps,
                        drop_baseline,
                        consecutive_failures: 0,
                        last_error: None,
                    },
                );
            }
            Err(error) => {
                // Unknown is not healthy: no condition of the site clears, none starts, the failure is reported.
                tally.sites_failed.push(observed.site.clone());
                let site_state =
                    state
                        .sites
                        .entry(observed.site.clone())
                        .or_insert_with(|| SiteState {
                            observed_at: observed.observed_at,
                            agents: 0,
                            online: 0,
                            rps: 0.0,
                            drop_baseline: None,
                            consecutive_failures: 0,
                            last_error: None,
                        });
                site_state.observed_at = observed.observed_at;
                site_state.consecutive_failures += 1;
                site_state.last_error = Some(error.clone());
                let failures = site_state.consecutive_failures;
                let setting = settings.evaluation_failed;
                if setting.enabled && failures >= setting.threshold {
                    let finding = Finding {
                        summary: format!(
                            "the site's agents could not be read ({failures} runs): {error}"
                        ),
                        value: f64::from(failures),
                        threshold: f64::from(setting.threshold),
                        agents: Vec::new(),
                    };
                    fire(state, &failed_key, setting.severity, finding, run_id, now);
                }
            }
        }
    }

    // Sites gone from the corp: their conditions are over.
    let listed: std::collections::BTreeSet<&str> = sites.iter().map(|s| s.site.as_str()).collect();
    let gone: Vec<String> = state
        .sites
        .keys()
        .chain(state.conditions.keys().map(|key| &key.site))
        .filter(|site| site.as_str() != CORP_WIDE && !listed.contains(site.as_str()))
        .cloned()
        .collect();
    for site in gone {
        clear_site(state, &site, now);
        state.sites.remove(&site);
    }
    tally
}

fn is_firing(state: &State, key: &ConditionKey) -> bool {
    state
        .conditions
        .get(key)
        .is_some_and(|condition| condition.firing)
}

fn fire(
    state: &mut State,
    key: &ConditionKey,
    severity: Severity,
    finding: Finding,
    run_id: &str,
    now: DateTime<Utc>,
) {
    match state.conditions.get_mut(key) {
        Some(condition) if condition.firing => {
            condition.finding = finding;
            condition.severity = severity;
            condition.updated_at = now;
        }
        existing => {
            // A new episode. Channel entries of the previous one keep only an in-flight claim.
            let channels = existing
                .map(|previous| {
                    std::mem::take(&mut previous.channels)
                        .into_iter()
                        .filter_map(|(name, channel)| {
                            channel.pending.map(|claim| {
                                (
                                    name,
                                    ChannelState {
                                        pending: Some(claim),
                                        ..ChannelState::new(run_id)
                                    },
                                )
                            })
                        })
                        .collect()
                })
                .unwrap_or_default();
            state.conditions.insert(
                key.clone(),
                Condition {
                    firing: true,
                    episode: run_id.to_string(),
                    since: now,
                    cleared_at: None,
                    severity,
                    finding,
                    updated_at: now,
                    acks: Default::default(),
                    channels,
                },
            );
        }
    }
}

fn clear(state: &mut State, key: &ConditionKey, now: DateTime<Utc>) {
    let Some(condition) = state.conditions.get_mut(key) else {
        return;
    };
    if !condition.firing {
        return;
    }
    condition.firing = false;
    condition.cleared_at = Some(now);
    condition.updated_at = now;
    if !condition.acks.is_empty() {
        condition.acks = Default::default();
        state.log_ack(AckEvent {
            at: now,
            check: key.clone(),
            action: AckAction::Cleared,
            channels: Vec::new(),
            by: "evaluator".to_string(),
            how: AckMethod::Recovered,
            until: None,
            via: None,
        });
    }
}

fn clear_site(state: &mut State, site: &str, now: DateTime<Utc>) {
    let keys: Vec<ConditionKey> = state
        .conditions
        .keys()
        .filter(|key| key.site == site)
        .cloned()
        .collect();
    for key in keys {
        clear(state, &key, now);
    }
}

/// Decides who is told what this run and claims those deliveries in the state.
pub fn claim_deliveries(
    state: &mut State,
    rules: &Rules,
    run_id: &str,
    now: DateTime<Utc>,
) -> (Vec<ClaimedDelivery>, PlanTally) {
    let mut claims = Vec::new();
    let mut tally = PlanTally::default();
    for (key, condition) in state.conditions.iter_mut() {
        if condition.firing {
            tally.firing += 1;
        }
        // Channels removed from the rules can be told nothing more.
        condition
            .channels
            .retain(|name, channel| rules.channel(name).is_some() || claim_live(channel, now));
        for channel in &rules.channels {
            if !channel.wants(key.check, condition.severity) {
                // Filters changed since it was told: nothing more can be sent to it about this.
                if !condition.firing {
                    condition.channels.remove(&channel.name);
                }
                continue;
            }
            let entry = condition.channels.get(&channel.name);
            if entry.is_some_and(|entry| claim_live(entry, now)) {
                tally.in_flight += 1;
                continue;
            }
            let kind = if condition.firing {
                let current = entry.filter(|entry| entry.episode == condition.episode);
                if channel.ack_enabled && condition.acks.covers(&channel.name, now) {
                    tally.acknowledged += 1;
                    continue;
                }
                let last_sent = current.and_then(|entry| entry.last_sent);
                if last_sent.is_some_and(|sent| now - sent < channel.throttle_period.delta()) {
                    tally.throttled += 1;
                    continue;
                }
                DeliveryKind::Trigger
            } else {
                let Some(entry) = entry.filter(|entry| entry.episode == condition.episode) else {
                    continue;
                };
                // A trigger that never got through is still owed, even to a channel that takes no
                // resolutions: its resolve (`repeat: false`) says the condition fired and cleared.
                if entry.notified && !channel.send_resolved {
                    condition.channels.remove(&channel.name);
                    continue;
                }
                DeliveryKind::Resolve
            };
            let entry = condition
                .channels
                .entry(channel.name.clone())
                .or_insert_with(|| ChannelState::new(&condition.episode));
            if entry.episode != condition.episode {
                *entry = ChannelState::new(&condition.episode);
            }
            entry.pending = Some(Claim {
                run_id: run_id.to_string(),
                kind,
                episode: condition.episode.clone(),
                claimed_at: now,
            });
            claims.push(ClaimedDelivery {
                key: key.clone(),
                channel: channel.name.clone(),
                kind,
                episode: condition.episode.clone(),
                repeat: entry.notified,
            });
        }
    }
    collect_garbage(state);
    (claims, tally)
}

fn claim_live(channel: &ChannelState, now: DateTime<Utc>) -> bool {
    channel
        .pending
        .as_ref()
        .is_some_and(|claim| now - claim.claimed_at < CLAIM_LEASE)
}

/// Records what happened to this run's claimed deliveries. A claim another run has taken over
/// (after the lease ran out) is left alone. A trigger that opened an incident while someone
/// acknowledged the condition owes that incident the acknowledgement.
pub fn record_outcomes(
    state: &mut State,
    rules: &Rules,
    run_id: &str,
    outcomes: &[(ClaimedDelivery, Result<(), String>)],
    now: DateTime<Utc>,
) {
    for (delivery, outcome) in outcomes {
        let Some(condition) = state.conditions.get_mut(&delivery.key) else {
            continue;
        };
        let Some(channel) = condition.channels.get_mut(&delivery.channel) else {
            continue;
        };
        let ours = channel
            .pending
            .as_ref()
            .is_some_and(|claim| claim.run_id == run_id && claim.kind == delivery.kind);
        if !ours {
            continue;
        }
        channel.pending = None;
        let current_episode = channel.episode == delivery.episode;
        match (outcome, delivery.kind) {
            (Ok(()), DeliveryKind::Trigger) => {
                if current_episode {
                    channel.notified = true;
                    channel.last_sent = Some(now);
                    channel.sent += 1;
                }
                channel.failures = 0;
                channel.last_error = None;
                let acknowledged_by = [
                    condition.acks.whole.as_ref(),
                    condition.acks.channels.get(&delivery.channel),
                ]
                .into_iter()
                .flatten()
                .find(|ack| ack.in_force(now))
                .map(|ack| ack.by.clone());
                if let Some(by) = acknowledged_by.filter(|_| current_episode) {
                    let channels = [delivery.channel.clone()];
                    incidents::owe(
                        condition,
                        rules,
                        &channels,
                        IncidentAction::Acknowledge,
                        &by,
                        now,
                    );
                }
            }
            (Ok(()), DeliveryKind::Resolve) => {
                if current_episode {
                    condition.channels.remove(&delivery.channel);
                }
            }
            (Err(error), _) => {
                channel.failures += 1;
                channel.last_error = Some(error.clone());
            }
        }
    }
    collect_garbage(state);
}

/// Drops conditions that have cleared and owe no channel anything.
fn collect_garbage(state: &mut State) {
    state
        .conditions
        .retain(|_, condition| condition.firing || !condition.channels.is_empty());
}

/// Drops used-link records once the links themselves have expired (they are refused as expired then).
pub fn forget_expired_links(state: &mut State, now: DateTime<Utc>) {
    state.used_links.retain(|_, used| used.expires_at > now);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::AckRecord;

    fn t(minutes: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000, 0).unwrap() + TimeDelta::minutes(minutes)
    }

    fn rules(extra: &str) -> Rules {
        let text = format!(
            "channels:\n  - {{name: pd, type: pagerduty, secret: env:PD, ack_enabled: false, throttle_period: 1h}}\n  \
             - {{name: slack, type: console, ack_enabled: false, throttle_period: 30m}}\n{extra}"
        );
        Rules::parse(&text, "test").unwrap()
    }

    fn agents(online: usize, offline: usize) -> Vec<AgentSnapshot> {
        (0..online + offline)
            .map(|i| AgentSnapshot {
                name: format!("agent-{i}"),
                online: i < online,
                last_seen: Some(t(0)),
                versions_behind: 0,
                current_requests: 3000,
            })
            .collect()
    }

    fn observe(
        site: &str,
        at: DateTime<Utc>,
        agents: Result<Vec<AgentSnapshot>, String>,
    ) -> CorpObservation {
        CorpObservation::Sites(vec![SiteObservation {
            site: site.into(),
            observed_at: at,
            agents,
        }])
    }

    /// One run: observe, claim, deliver with `deliver`'s verdict per delivery, record.
    fn run(
        state: &mut State,
        rules: &Rules,
        observation: &CorpObservation,
        run_id: &str,
        now: DateTime<Utc>,
        deliver: impl Fn(&ClaimedDelivery) -> Result<(), String>,
    ) -> Vec<ClaimedDelivery> {
        apply_observations(state, rules, observation, run_id, now);
        let (claims, _) = claim_deliveries(state, rules, run_id, now);
        let outcomes: Vec<_> = claims.iter().map(|c| (c.clone(), deliver(c))).collect();
        record_outcomes(state, rules, run_id, &outcomes, now);
        claims
    }

    fn summary(claims: &[ClaimedDelivery]) -> Vec<String> {
        claims
            .iter()
            .map(|c| format!("{}:{}:{:?}", c.channel, c.key, c.kind))
            .collect()
    }

    #[test]
    fn outage_notifies_once_repeats_after_throttle_and_resolves_once() {
        let rules = rules("");
        let mut state = State::new("corp");
        assert!(
            run(
                &mut state,
                &rules,
                &observe("www", t(0), Ok(agents(3, 0))),
                "r0",
                t(0),
                |_| Ok(())
            )
            .is_empty()
        );
        let down = |m| observe("www", t(m), Ok(agents(0, 3)));
        let first = run(&mut state, &rules, &down(5), "r1", t(5), |_| Ok(()));
        assert_eq!(
            summary(&first),
            [
                "pd:www/no_agents_online:Trigger",
                "slack:www/no_agents_online:Trigger"
            ]
        );
        assert!(first.iter().all(|c| !c.repeat));
        for (i, minute) in [10, 15, 20, 25, 30].into_iter().enumerate() {
            let claims = run(
                &mut state,
                &rules,
                &down(minute),
                &format!("q{i}"),
                t(minute),
                |_| Ok(()),
            );
            assert!(claims.is_empty(), "minute {minute}: {claims:?}");
        }
        // Slack's 30 min throttle ends at minute 35, PagerDuty's hour at 65.
        let slack_again = run(&mut state, &rules, &down(35), "r2", t(35), |_| Ok(()));
        assert_eq!(
            summary(&slack_again),
            ["slack:www/no_agents_online:Trigger"]
        );
        assert!(slack_again[0].repeat);
        let pd_again = run(&mut state, &rules, &down(65), "r3", t(65), |_| Ok(()));
        assert_eq!(
            summary(&pd_again),
            [
                "pd:www/no_agents_online:Trigger",
                "slack:www/no_agents_online:Trigger"
            ]
        );
        let recovered = run(
            &mut state,
            &rules,
            &observe("www", t(70), Ok(agents(3, 0))),
            "r4",
            t(70),
            |_| Ok(()),
        );
        assert_eq!(
            summary(&recovered),
            [
                "pd:www/no_agents_online:Resolve",
                "slack:www/no_agents_online:Resolve"
            ]
        );
        assert!(state.conditions.is_empty(), "{:#?}", state.conditions);
        assert!(
            run(
                &mut state,
                &rules,
                &observe("www", t(75), Ok(agents(3, 0))),
                "r5",
                t(75),
                |_| Ok(())
            )
            .is_empty()
        );
    }

    #[test]
    fn a_trigger_that_failed_and_cleared_before_a_retry_is_still_told_and_then_forgotten() {
        let rules = rules("");
        let mut state = State::new("corp");
        let failing = run(
            &mut state,
            &rules,
            &observe("www", t(0), Ok(agents(0, 2))),
            "r1",
            t(0),
            |_| Err("HTTP 503".into()),
        );
        assert_eq!(failing.len(), 2);
        let recovered = run(
            &mut state,
            &rules,
            &observe("www", t(5), Ok(agents(2, 0))),
            "r2",
            t(5),
            |_| Ok(()),
        );
        assert_eq!(
            summary(&recovered),
            [
                "pd:www/no_agents_online:Resolve",
                "slack:www/no_agents_online:Resolve"
            ]
        );
        assert!(
            recovered.iter().all(|claim| !claim.repeat),
            "the channels never heard the trigger: {recovered:?}"
        );
        assert!(state.conditions.is_empty(), "{:#?}", state.conditions);
    }

    #[test]
    fn failed_delivery_is_retried_next_run_and_the_rest_advance() {
        let rules = rules("");
        let mut state = State::new("corp");
        let down = |m| observe("www", t(m), Ok(agents(0, 2)));
        let first = run(&mut state, &rules, &down(0), "r1", t(0), |c| {
            if c.channel == "slack" {
                Err("HTTP 500".into())
            } else {
                Ok(())
            }
        });
        assert_eq!(first.len(), 2);
        let channel = &state.conditions[&ConditionKey::new("www", CheckKind::NoAgentsOnline)]
            .channels["slack"];
        assert_eq!(
            (
                channel.notified,
                channel.failures,
                channel.last_error.as_deref()
            ),
            (false, 1, Some("HTTP 500"))
        );
        let retry = run(&mut state, &rules, &down(5), "r2", t(5), |_| Ok(()));
        assert_eq!(summary(&retry), ["slack:www/no_agents_online:Trigger"]);
        assert!(!retry[0].repeat);
        assert!(run(&mut state, &rules, &down(10), "r3", t(10), |_| Ok(())).is_empty());
    }

    #[test]
    fn overlapping_runs_see_each_others_claims() {
        let rules = rules("");
        let mut state = State::new("corp");
        let down = observe("www", t(0), Ok(agents(0, 2)));
        // Run A commits its claims; run B starts from A's committed document (after a failed CAS).
        apply_observations(&mut state, &rules, &down, "a", t(0));
        let (claims_a, _) = claim_deliveries(&mut state, &rules, "a", t(0));
        assert_eq!(claims_a.len(), 2);
        apply_observations(&mut state, &rules, &down, "b", t(0));
        let (claims_b, tally_b) = claim_deliveries(&mut state, &rules, "b", t(0));
        assert!(claims_b.is_empty());
        assert_eq!(tally_b.in_flight, 2);
        // A run that died holding claims: after the lease another run takes over.
        let (claims_c, _) = claim_deliveries(&mut state, &rules, "c", t(0) + CLAIM_LEASE);
        assert_eq!(claims_c.len(), 2);
        // A's late outcome no longer matches the claim and changes nothing.
        let before = state.clone();
        let late: Vec<_> = claims_a.iter().map(|c| (c.clone(), Ok(()))).collect();
        record_outcomes(&mut state, &rules, "a", &late, t(4));
        assert_eq!(state, before);
    }

    #[test]
    fn an_older_observation_never_overwrites_a_newer_one() {
        let rules = rules("");
        let mut state = State::new("corp");
        apply_observations(
            &mut state,
            &rules,
            &observe("www", t(10), Ok(agents(3, 0))),
            "new",
            t(10),
        );
        let tally = apply_observations(
            &mut state,
            &rules,
            &observe("www", t(9), Ok(agents(0, 3))),
            "old",
            t(11),
        );
        assert_eq!(tally.sites_superseded, 1);
        assert!(state.conditions.is_empty());
    }

    #[test]
    fn a_trigger_that_lands_after_an_acknowledgement_owes_its_incident_the_acknowledgement() {
        let rules = Rules::parse(
            "ack: {base_url: 'http://127.0.0.1:9', secret: env:K}\nchannels:\n  \
             - {name: pd, type: pagerduty, secret: env:PD}\n",
            "test",
        )
        .unwrap();
        let key = ConditionKey::new("www", CheckKind::NoAgentsOnline);
        let mut state = State::new("corp");
        apply_observations(
            &mut state,
            &rules,
            &observe("www", t(0), Ok(agents(0, 2))),
            "r1",
            t(0),
        );
        let (claims, _) = claim_deliveries(&mut state, &rules, "r1", t(0));
        // Someone acknowledges while the trigger is on its way to PagerDuty.
        state.conditions.get_mut(&key).unwrap().acks.whole = Some(AckRecord {
            by: "ann".into(),
            at: t(1),
            how: AckMethod::Cli,
            until: None,
        });
        let done: Vec<_> = claims.iter().map(|c| (c.clone(), Ok(()))).collect();
        record_outcomes(&mut state, &rules, "r1", &done, t(1));
        let incident = state.conditions[&key].channels["pd"]
            .incident
            .clone()
            .unwrap();
        assert_eq!(
            (incident.action, incident.by.as_str(), incident.done_at),
            (IncidentAction::Acknowledge, "ann", None)
        );
    }

    #[test]
    fn acknowledged_channels_stay_silent_until_the_condition_clears() {
        let rules = Rules::parse(
            "ack: {base_url: 'http://127.0.0.1:9', secret: env:K}\nchannels:\n  \
             - {name: slack, type: console, throttle_period: 10m}\n  \
             - {name: pd, type: pagerduty, secret: env:PD, ack_enabled: false, throttle_period: 10m}\n",
            "test",
        )
        .unwrap();
        let key = ConditionKey::new("www", CheckKind::NoAgentsOnline);
        let mut state = State::new("corp");
        let down = |m| observe("www", t(m), Ok(agents(0, 2)));
        assert_eq!(
            run(&mut state, &rules, &down(0), "r1", t(0), |_| Ok(())).len(),
            2
        );
        state.conditions.get_mut(&key).unwrap().acks.whole = Some(AckRecord {
            by: "ann".into(),
            at: t(1),
            how: AckMethod::Cli,
            until: None,
        });
        // Past both throttles: only the channel that refuses acknowledgements is reminded.
        let claims = run(&mut state, &rules, &down(20), "r2", t(20), |_| Ok(()));
        assert_eq!(summary(&claims), ["pd:www/no_agents_online:Trigger"]);
        // Recovery clears the ack and resolves both channels; a recurrence notifies again.
        let claims = run(
            &mut state,
            &rules,
            &observe("www", t(25), Ok(agents(2, 0))),
            "r3",
            t(25),
            |_| Ok(()),
        );
        assert_eq!(claims.len(), 2);
        assert!(claims.iter().all(|c| c.kind == DeliveryKind::Resolve));
        assert_eq!(
            state.ack_log.last().map(|e| e.action),
            Some(AckAction::Cleared)
        );
        let claims = run(&mut state, &rules, &down(30), "r4", t(30), |_| Ok(()));
        assert_eq!(
            summary(&claims),
            [
                "slack:www/no_agents_online:Trigger",
                "pd:www/no_agents_online:Trigger"
            ]
        );
        assert!(claims.iter().all(|c| !c.repeat && c.episode == "r4"));
    }

    #[test]
    fn an_expired_acknowledgement_lets_reminders_through() {
        let rules = Rules::parse(
            "ack: {base_url: 'http://127.0.0.1:9', secret: env:K}\nchannels:\n  - {name: slack, type: console, throttle_period: 10m}\n",
            "test",
        )
        .unwrap();
        let key = ConditionKey::new("www", CheckKind::NoAgentsOnline);
        let mut state = State::new("corp");
        let down = |m| observe("www", t(m), Ok(agents(0, 2)));
        run(&mut state, &rules, &down(0), "r1", t(0), |_| Ok(()));
        state
            .conditions
            .get_mut(&key)
            .unwrap()
            .acks
            .channels
            .insert(
                "slack".into(),
                AckRecord {
                    by: "ann".into(),
                    at: t(1),
                    how: AckMethod::Cli,
                    until: Some(t(30)),
                },
            );
        assert!(run(&mut state, &rules, &down(20), "r2", t(20), |_| Ok(())).is_empty());
        assert_eq!(
            run(&mut state, &rules, &down(30), "r3", t(30), |_| Ok(())).len(),
            1
        );
    }

    #[test]
    fn api_failure_is_reported_and_neither_clears_nor_pages_the_site() {
        let rules = rules("checks:\n  evaluation_failed: {consecutive_runs: 2}\n");
        let mut state = State::new("corp");
        let down = run(
            &mut state,
            &rules,
            &observe("www", t(0), Ok(agents(0, 2))),
            "r1",
            t(0),
            |_| Ok(()),
        );
        assert_eq!(down.len(), 2);
        let failing = |m| observe("www", t(m), Err("HTTP 503: unavailable".into()));
        let tally = apply_observations(&mut state, &rules, &failing(5), "r2", t(5));
        assert_eq!(tally.sites_failed, ["www".to_string()]);
        let (claims, _) = claim_deliveries(&mut state, &rules, "r2", t(5));
        assert!(
            claims.is_empty(),
            "one failure is reported in status only: {claims:?}"
        );
        assert!(
            state.conditions[&ConditionKey::new("www", CheckKind::NoAgentsOnline)].firing,
            "unknown is not healthy"
        );
        assert_eq!(state.sites["www"].consecutive_failures, 1);
        let claims = run(&mut state, &rules, &failing(10), "r3", t(10), |_| Ok(()));
        assert_eq!(
            summary(&claims),
            [
                "pd:www/evaluation_failed:Trigger",
                "slack:www/evaluation_failed:Trigger"
            ]
        );
        // A fresh site that cannot be read never pages as "no agents".
        let mut fresh = State::new("corp");
        for (i, minute) in [0, 5, 10].into_iter().enumerate() {
            let claims = run(
                &mut fresh,
                &rules,
                &failing(minute),
                &format!("f{i}"),
                t(minute),
                |_| Ok(()),
            );
            assert!(
                claims
                    .iter()
                    .all(|c| c.key.check == CheckKind::EvaluationFailed),
                "{claims:?}"
            );
        }
    }

    #[test]
    fn site_list_failure_fires_a_corp_wide_condition() {
        let rules = rules("checks:\n  evaluation_failed: {consecutive_runs: 1}\n");
        let mut state = State::new("corp");
        let failed = CorpObservation::ListFailed {
            error: "HTTP 401: bad token".into(),
            status: Some(401),
        };
        let claims = run(&mut state, &rules, &failed, "r1", t(0), |_| Ok(()));
        assert_eq!(
            summary(&claims),
            [
                "pd:*/evaluation_failed:Trigger",
                "slack:*/evaluation_failed:Trigger"
            ]
        );
        let claims = run(
            &mut state,
            &rules,
            &observe("www", t(5), Ok(agents(1, 0))),
            "r2",
            t(5),
            |_| Ok(()),
        );
        assert_eq!(
            summary(&claims),
            [
                "pd:*/evaluation_failed:Resolve",
                "slack:*/evaluation_failed:Resolve"
            ]
        );
    }

    #[test]
    fn count_drop_holds_its_baseline_while_firing() {
        let rules = rules("checks:\n  low_traffic: {enabled: false}\n");
        let mut state = State::new("corp");
        let key = ConditionKey::new("www", CheckKind::AgentCountDrop);
        run(
            &mut state,
            &rules,
            &observe("www", t(0), Ok(agents(10, 0))),
            "r1",
            t(0),
            |_| Ok(()),
        );
        run(
            &mut state,
            &rules,
            &observe("www", t(5), Ok(agents(4, 6))),
            "r2",
            t(5),
            |_| Ok(()),
        );
        assert!(state.conditions[&key].firing);
        // Still at 4: compared with the 10 before the drop, not with the previous 4.
        run(
            &mut state,
            &rules,
            &observe("www", t(10), Ok(agents(4, 6))),
            "r3",
            t(10),
            |_| Ok(()),
        );
        assert!(state.conditions[&key].firing);
        let resolved = run(
            &mut state,
            &rules,
            &observe("www", t(15), Ok(agents(9, 1))),
            "r4",
            t(15),
            |_| Ok(()),
        );
        assert!(
            resolved
                .iter()
                .all(|c| c.kind == DeliveryKind::Resolve && c.key == key),
            "{resolved:?}"
        );
        assert_eq!(state.sites["www"].drop_baseline, Some(9));
    }

    #[test]
    fn removed_sites_and_channels_stop_conditions_cleanly() {
        let rules_both = rules("");
        let mut state = State::new("corp");
        run(
            &mut state,
            &rules_both,
            &observe("www", t(0), Ok(agents(0, 1))),
            "r1",
            t(0),
            |_| Ok(()),
        );
        let only_pd = Rules::parse(
            "channels:\n  - {name: pd, type: pagerduty, secret: env:PD, ack_enabled: false, send_resolved: false}\n",
            "test",
        )
        .unwrap();
        let claims = run(
            &mut state,
            &only_pd,
            &CorpObservation::Sites(Vec::new()),
            "r2",
            t(5),
            |_| Ok(()),
        );
        assert!(
            claims.is_empty(),
            "send_resolved: false and a removed channel owe nothing: {claims:?}"
        );
        assert!(state.conditions.is_empty() && state.sites.is_empty());
    }

    #[test]
    fn a_recurrence_while_a_resolve_is_in_flight_keeps_order() {
        let rules = rules("");
        let mut state = State::new("corp");
        run(
            &mut state,
            &rules,
            &observe("www", t(0), Ok(agents(0, 1))),
            "r1",
            t(0),
            |_| Ok(()),
        );
        apply_observations(
            &mut state,
            &rules,
            &observe("www", t(5), Ok(agents(1, 0))),
            "r2",
            t(5),
        );
        let (resolves, _) = claim_deliveries(&mut state, &rules, "r2", t(5));
        assert_eq!(resolves.len(), 2);
        // Run r3 sees the outage again before r2 recorded its resolves: it waits for them.
        apply_observations(
            &mut state,
            &rules,
            &observe("www", t(6), Ok(agents(0, 1))),
            "r3",
            t(6),
        );
        let (claims, tally) = claim_deliveries(&mut state, &rules, "r3", t(6));
        assert!(claims.is_empty());
        assert_eq!(tally.in_flight, 2);
        let done: Vec<_> = resolves.iter().map(|c| (c.clone(), Ok(()))).collect();
        record_outcomes(&mut state, &rules, "r2", &done, t(6));
        let (claims, _) = claim_deliveries(&mut state, &rules, "r4", t(7));
        assert_eq!(
            summary(&claims),
            [
                "pd:www/no_agents_online:Trigger",
                "slack:www/no_agents_online:Trigger"
            ]
        );
        assert!(claims.iter().all(|c| c.episode == "r3" && !c.repeat));
    }
}

//! One evaluation run: read every site's agents, fold them into the state and claim the due
//! notifications (one compare-and-swap write), deliver, record the outcomes (a second write).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use secrecy::SecretString;
use serde::Serialize;

use crate::channels::{AlertLink, Deliverer, Notification, Status};
use crate::checks::{AgentSnapshot, Severity};
use crate::clock::Clock;
use crate::engine::{self, ClaimedDelivery, CorpObservation, SiteObservation};
use crate::incidents::{self, IncidentSync};
use crate::links::AckLink;
use crate::rules::Rules;
use crate::secrets::{ACK_KEY_FIELD, SecretResolver};
use crate::state::{DeliveryKind, Heartbeat, State};
use crate::store::{StateStore, StoreError, UpdateError};

/// Everything a run needs besides the rules.
#[derive(Clone)]
pub struct Evaluator {
    pub client: sigsci::Client,
    pub store: StateStore,
    pub secrets: SecretResolver,
    pub deliverer: Deliverer,
    pub clock: Arc<dyn Clock>,
}

/// What a run did; the Lambda returns it, the CLI prints it, metrics are derived from it.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RunReport {
    pub run_id: String,
    pub corp: String,
    pub started_at: DateTime<Utc>,
    pub duration_ms: u64,
    pub sites_total: usize,
    pub sites_evaluated: usize,
    pub sites_failed: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub corp_error: Option<String>,
    pub conditions_firing: usize,
    pub notifications_sent: usize,
    pub notifications_failed: usize,
    pub notifications_throttled: usize,
    pub notifications_acknowledged: usize,
    /// Deliveries another overlapping run had claimed.
    pub notifications_in_flight: usize,
    /// Acknowledgements (or their withdrawal) passed on to PagerDuty or Opsgenie incidents.
    pub incidents_updated: usize,
    /// Incident updates the tool did not accept; the next run tries again.
    pub incidents_failed: usize,
    /// What was sent (or attempted), per channel.
    pub deliveries: Vec<DeliveryRecord>,
    /// Problems that did not stop the run (delivery failures, unreadable secrets).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DeliveryRecord {
    pub channel: String,
    pub check: String,
    pub status: Status,
    pub delivered: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    State(#[from] StoreError),
}

impl RunError {
    pub fn is_transient(&self) -> bool {
        match self {
            RunError::State(error) => error.is_transient(),
        }
    }
}

impl From<UpdateError<Infallible>> for RunError {
    fn from(error: UpdateError<Infallible>) -> RunError {
        match error {
            UpdateError::Store(error) => RunError::State(error),
            UpdateError::Change(never) => match never {},
        }
    }
}

/// A fresh run id: 48 random bits, hex.
pub fn new_run_id() -> String {
    hex::encode(&rand::random::<[u8; 8]>()[..6])
}

impl Evaluator {
    pub async fn run(&self, rules: &Rules, run_id: &str) -> Result<RunReport, RunError> {
        let started_at = self.clock.now();
        let observation = self.observe(rules).await;
        self.record(rules, run_id, started_at, observation).await
    }

    /// Folds what [`Evaluator::observe`] saw into the state, delivers what is due, records the outcomes.
    pub(crate) async fn record(
        &self,
        rules: &Rules,
        run_id: &str,
        started_at: DateTime<Utc>,
        observation: CorpObservation,
    ) -> Result<RunReport, RunError> {
        let corp = self.client.corp().to_string();
        let mut report = RunReport {
            run_id: run_id.to_string(),
            corp: corp.clone(),
            started_at,
            ..RunReport::default()
        };
        if let CorpObservation::ListFailed { error, .. } = &observation {
            report.corp_error = Some(error.clone());
        }
        let ack_key = self.ack_key(rules, &mut report).await;

        let now = self.clock.now();
        // Seen in the documents this run writes anyway, so a run with nothing owed to the incident
        // tools (the usual case) reads the state no extra time.
        let mut incidents_owed = false;
        let (claims, notifications) = self
            .store
            .update(&corp, |state| {
                let evaluated = engine::apply_observations(state, rules, &observation, run_id, now);
                engine::forget_expired_links(state, now);
                let (claims, plan) = engine::claim_deliveries(state, rules, run_id, now);
                report.sites_total = evaluated.sites_total;
                report.sites_evaluated = evaluated.sites_evaluated;
                report.sites_failed = evaluated.sites_failed.clone();
                report.conditions_firing = plan.firing;
                report.notifications_throttled = plan.throttled;
                report.notifications_acknowledged = plan.acknowledged;
                report.notifications_in_flight = plan.in_flight;
                beat(state, &report, claims.is_empty().then_some(now));
                incidents_owed = incidents::any_owed(state);
                let notifications: Vec<Notification> = claims
                    .iter()
                    .map(|claim| notification(state, rules, claim, ack_key.as_ref(), now))
                    .collect();
                Ok::<_, Infallible>((claims, notifications))
            })
            .await?;

        let outcomes = self
            .deliver(rules, run_id, &claims, &notifications, &mut report)
            .await;
        if !claims.is_empty() {
            let finished = self.clock.now();
            self.store
                .update(&corp, |state| {
                    engine::record_outcomes(state, rules, run_id, &outcomes, finished);
                    incidents_owed = incidents::any_owed(state);
                    if let Some(heartbeat) = state.heartbeat.as_mut().filter(|h| h.run_id == run_id)
                    {
                        heartbeat.finished_at = Some(finished);
                        heartbeat.notifications_sent = report.notifications_sent;
                        heartbeat.notifications_failed = report.notifications_failed;
                    }
                    Ok::<_, Infallible>(())
                })
                .await?;
        }
        if incidents_owed {
            self.update_incidents(rules, &corp, &mut report).await;
        }
        let elapsed = self.clock.now() - started_at;
        report.duration_ms = u64::try_from(elapsed.num_milliseconds()).unwrap_or_default();
        Ok(report)
    }

    /// Passes on acknowledgements the links or the CLI could not (the incident tool was down).
    async fn update_incidents(&self, rules: &Rules, corp: &str, report: &mut RunReport) {
        let sync = IncidentSync {
            secrets: self.secrets.clone(),
            deliverer: self.deliverer.clone(),
        };
        match sync
            .send_owed(&self.store, corp, rules, self.clock.now())
            .await
        {
            Ok(outcomes) => {
                for outcome in outcomes {
                    match outcome.error {
                        None => report.incidents_updated += 1,
                        Some(error) => {
                            report.incidents_failed += 1;
                            if !report.errors.contains(&error) {
                                report.errors.push(error);
                            }
                        }
                    }
                }
            }
            Err(error) => {
                report.incidents_failed += 1;
                report
                    .errors
                    .push(format!("incident acknowledgements not passed on: {error}"));
            }
        }
    }

    /// Reads the site list and every enabled site's agents, a bounded number at a time.
    pub(crate) async fn observe(&self, rules: &Rules) -> CorpObservation {
        let sites = match self.client.list_sites().await {
            Ok(sites) => sites,
            Err(error) => {
                return CorpObservation::ListFailed {
                    error: sigsci::with_causes(&error),
                    status: error.status(),
                };
            }
        };
        // Switched-off sites are left out: the engine then closes whatever they had open.
        let names: Vec<String> = sites
            .into_iter()
            .map(|site| site.name)
            .filter(|name| rules.site(name).is_some())
            .collect();
        let concurrency = usize::try_from(rules.evaluation.concurrency).unwrap_or(1);
        let observations = futures::stream::iter(names)
            .map(|site| async move {
                let observed_at = self.clock.now();
                let agents = self
                    .client
                    .list_agents(&site)
                    .await
                    .map(|agents| agents.iter().map(snapshot).collect())
                    .map_err(|error| sigsci::with_causes(&error));
                SiteObservation {
                    site,
                    observed_at,
                    agents,
                }
            })
            .buffer_unordered(concurrency)
            .collect()
            .await;
        CorpObservation::Sites(observations)
    }

    async fn ack_key(&self, rules: &Rules, report: &mut RunReport) -> Option<SecretString> {
        let reference = rules
            .ack
            .secret
            .as_ref()
            .filter(|_| rules.needs_ack_links())?;
        match self.secrets.resolve(reference, ACK_KEY_FIELD).await {
            Ok(key) => Some(key),
            Err(error) => {
                // Telling people matters more than the link: send without it, and say so.
                tracing::error!(%error, "acknowledgement links cannot be signed; sending notifications without them");
                report
                    .errors
                    .push(format!("acknowledgement links left out: {error}"));
                None
            }
        }
    }

    async fn deliver(
        &self,
        rules: &Rules,
        run_id: &str,
        claims: &[ClaimedDelivery],
        notifications: &[Notification],
        report: &mut RunReport,
    ) -> Vec<(ClaimedDelivery, Result<(), String>)> {
        let mut by_channel: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (index, claim) in claims.iter().enumerate() {
            by_channel
                .entry(claim.channel.as_str())
                .or_default()
                .push(index);
        }
        let now = self.clock.now();
        let sends = by_channel.into_iter().filter_map(|(name, indexes)| {
            let channel = rules.channel(name)?;
            Some(async move {
                let items: Vec<Notification> =
                    indexes.iter().map(|&i| notifications[i].clone()).collect();
                let results = match self.secrets.channel_secret(channel).await {
                    Ok(secret) => {
                        let delivery_id = format!("{run_id}-{name}");
                        self.deliverer
                            .deliver(channel, secret.as_ref(), &delivery_id, now, &items)
                            .await
                            .into_iter()
                            .map(|result| result.map_err(|error| error.to_string()))
                            .collect()
                    }
                    Err(error) => vec![Err(format!("channel {name}: {error}")); items.len()],
                };
                (indexes, results)
            })
        });
        let mut outcomes = Vec::with_capacity(claims.len());
        for (indexes, results) in futures::future::join_all(sends).await {
            for (index, result) in indexes.into_iter().zip(results) {
                let claim = &claims[index];
                match &result {
                    Ok(()) => report.notifications_sent += 1,
                    Err(error) => {
                        report.notifications_failed += 1;
                        tracing::warn!(channel = %claim.channel, check = %claim.key, %error, "delivery failed; retried next run");
                        if !report.errors.contains(error) {
                            report.errors.push(error.clone());
                        }
                    }
                }
                report.deliveries.push(DeliveryRecord {
                    channel: claim.channel.clone(),
                    check: claim.key.to_string(),
                    status: notifications[index].status,
                    delivered: result.is_ok(),
                });
                outcomes.push((claim.clone(), result));
            }
        }
        outcomes
    }
}

/// The evaluator's heartbeat: a run that started earlier than the recorded one never overwrites it.
fn beat(state: &mut State, report: &RunReport, finished_at: Option<DateTime<Utc>>) {
    if state
        .heartbeat
        .as_ref()
        .is_some_and(|h| h.started_at > report.started_at)
    {
        return;
    }
    state.heartbeat = Some(Heartbeat {
        run_id: report.run_id.clone(),
        started_at: report.started_at,
        finished_at,
        sites_total: report.sites_total,
        sites_evaluated: report.sites_evaluated,
        sites_failed: report.sites_failed.clone(),
        corp_error: report.corp_error.clone(),
        notifications_sent: 0,
        notifications_failed: 0,
    });
}

fn snapshot(agent: &sigsci::Agent) -> AgentSnapshot {
    AgentSnapshot {
        name: agent.name.clone(),
        online: agent.is_online(),
        last_seen: agent.last_seen,
        versions_behind: agent.versions_behind,
        current_requests: agent.current_requests,
    }
}

/// What the channel is told for one claim, with fresh signed acknowledgement links when it takes them.
fn notification(
    state: &State,
    rules: &Rules,
    claim: &ClaimedDelivery,
    ack_key: Option<&SecretString>,
    now: DateTime<Utc>,
) -> Notification {
    let condition = state.conditions.get(&claim.key);
    let status = match claim.kind {
        DeliveryKind::Trigger => Status::Firing,
        DeliveryKind::Resolve => Status::Resolved,
    };
    let channel = rules.channel(&claim.channel);
    let link = |channels: Vec<String>| -> Option<String> {
        let channel = channel.filter(|c| c.ack_enabled && status == Status::Firing)?;
        let key = ack_key?;
        let base_url = rules.ack.base_url.as_deref()?;
        let link = AckLink {
            corp: state.corp.clone(),
            check: claim.key.clone(),
            channels,
            episode: claim.episode.clone(),
            expires: now + rules.ack.link_ttl.delta(),
            nonce: AckLink::new_nonce(),
            via: channel.name.clone(),
            one_click: channel.one_click.unwrap_or(rules.ack.one_click),
        };
        Some(link.url(base_url, key))
    };
    Notification {
        corp: state.corp.clone(),
        check: claim.key.clone(),
        status,
        severity: condition.map(|c| c.severity).unwrap_or(Severity::Error),
        summary: condition
            .map(|c| c.finding.summary.clone())
            .unwrap_or_default(),
        since: condition.map(|c| c.since).unwrap_or(now),
        cleared_at: condition.and_then(|c| c.cleared_at),
        episode: claim.episode.clone(),
        repeat: claim.repeat,
        trigger_missed: claim.kind == DeliveryKind::Resolve && !claim.repeat,
        agents: condition
            .map(|c| c.finding.agents.clone())
            .unwrap_or_default(),
        ack_url: link(Vec::new()),
        ack_channel_url: link(vec![claim.channel.clone()]),
        links: rules
            .links
            .for_check(&state.corp, &claim.key)
            .into_iter()
            .map(|(label, url)| AlertLink { label, url })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemClock;
    use sigsci::{Credentials, RetryPolicy};

    #[tokio::test]
    async fn an_unreachable_api_is_reported_with_the_cause_of_the_transport_error() {
        let dir = tempfile::tempdir().unwrap();
        let client = sigsci::Client::builder(
            "http://127.0.0.1:9",
            "testcorp",
            Credentials::token("sim@example.com", "sim-token"),
        )
        .retry(RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        })
        .build()
        .unwrap();
        let evaluator = Evaluator {
            client,
            store: StateStore::open(dir.path().to_str().unwrap(), "testcorp", None).unwrap(),
            secrets: SecretResolver::new(None),
            deliverer: Deliverer::new(Arc::new(|_: &str| {})).unwrap(),
            clock: Arc::new(SystemClock),
        };
        let report = evaluator.run(&Rules::default(), "r1").await.unwrap();
        let error = report.corp_error.unwrap();
        assert!(error.starts_with("transport error"), "{error}");
        assert!(error.to_lowercase().contains("connect"), "{error}");
    }
}

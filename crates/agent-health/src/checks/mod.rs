//! The checks: pure functions over one site's agent list, and their settings (`settings`).

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

mod settings;

pub use settings::{CheckRules, SiteChecks};

/// Agents report to the cloud every 30 s; `agent.current_requests` counts one such interval.
pub const REPORT_INTERVAL_SECS: f64 = 30.0;

/// How many agent names a finding lists before it only counts.
const LISTED_AGENTS: usize = 10;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckKind {
    NoAgentsOnline,
    LowTraffic,
    StaleAgents,
    OutdatedAgents,
    AgentCountDrop,
    EvaluationFailed,
}

impl CheckKind {
    pub const ALL: [CheckKind; 6] = [
        CheckKind::NoAgentsOnline,
        CheckKind::LowTraffic,
        CheckKind::StaleAgents,
        CheckKind::OutdatedAgents,
        CheckKind::AgentCountDrop,
        CheckKind::EvaluationFailed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CheckKind::NoAgentsOnline => "no_agents_online",
            CheckKind::LowTraffic => "low_traffic",
            CheckKind::StaleAgents => "stale_agents",
            CheckKind::OutdatedAgents => "outdated_agents",
            CheckKind::AgentCountDrop => "agent_count_drop",
            CheckKind::EvaluationFailed => "evaluation_failed",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            CheckKind::NoAgentsOnline => "No agents online",
            CheckKind::LowTraffic => "Low traffic",
            CheckKind::StaleAgents => "Stale agents",
            CheckKind::OutdatedAgents => "Outdated agents",
            CheckKind::AgentCountDrop => "Online agent count dropped",
            CheckKind::EvaluationFailed => "Evaluation failed",
        }
    }
}

impl fmt::Display for CheckKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CheckKind {
    type Err = String;

    fn from_str(text: &str) -> Result<CheckKind, String> {
        CheckKind::ALL
            .into_iter()
            .find(|check| check.as_str() == text)
            .ok_or_else(|| {
                let known: Vec<&str> = CheckKind::ALL.iter().map(|c| c.as_str()).collect();
                format!("unknown check {text:?} (known: {})", known.join(", "))
            })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Error,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
            Severity::Critical => "critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Site name used for corp-wide conditions (the site list could not be read). Never a valid site name.
pub const CORP_WIDE: &str = "*";

/// What a condition is about: one check on one site. Written `site/check` (e.g. `www/no_agents_online`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConditionKey {
    pub site: String,
    pub check: CheckKind,
}

impl ConditionKey {
    pub fn new(site: impl Into<String>, check: CheckKind) -> ConditionKey {
        ConditionKey {
            site: site.into(),
            check,
        }
    }
}

impl fmt::Display for ConditionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.site, self.check)
    }
}

impl FromStr for ConditionKey {
    type Err = String;

    fn from_str(text: &str) -> Result<ConditionKey, String> {
        let (site, check) = text.split_once('/').ok_or_else(|| {
            format!("{text:?} is not a check: write SITE/CHECK, e.g. www/no_agents_online")
        })?;
        if site.is_empty() {
            return Err(format!("{text:?} names no site"));
        }
        Ok(ConditionKey {
            site: site.to_string(),
            check: check.parse()?,
        })
    }
}

impl Serialize for ConditionKey {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ConditionKey {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<ConditionKey, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// The parts of an agent record the checks read.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AgentSnapshot {
    pub name: String,
    pub online: bool,
    pub last_seen: Option<DateTime<Utc>>,
    pub versions_behind: i64,
    /// Requests in the agent's last report interval.
    pub current_requests: i64,
}

/// Why a check fires, in words and numbers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub summary: String,
    /// The measured value the threshold was compared with.
    pub value: f64,
    pub threshold: f64,
    /// The agents concerned (at most a few names; `summary` has the count).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub agents: Vec<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Firing(Finding),
    Clear,
    /// Not judged this run because a broader condition already covers it (no agents online).
    Inhibited,
}

/// Facts about one site that the next evaluation needs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SiteFacts {
    pub agents: usize,
    pub online: usize,
    pub rps: f64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SiteEvaluation {
    pub facts: SiteFacts,
    /// Enabled checks only, in `CheckKind::ALL` order, without `evaluation_failed`.
    pub outcomes: Vec<(CheckKind, Outcome)>,
}

/// Evaluates one site. `drop_baseline` is the online count the drop check compares against
/// (the count at the last evaluation before any ongoing drop).
pub fn evaluate_site(
    settings: &SiteChecks,
    agents: &[AgentSnapshot],
    drop_baseline: Option<usize>,
) -> SiteEvaluation {
    let online: Vec<&AgentSnapshot> = agents.iter().filter(|agent| agent.online).collect();
    let requests: i64 = online
        .iter()
        .map(|agent| agent.current_requests.max(0))
        .sum();
    let facts = SiteFacts {
        agents: agents.len(),
        online: online.len(),
        rps: requests as f64 / REPORT_INTERVAL_SECS,
    };
    // With nothing online every other check is moot; one page for the site, not five.
    let nobody_online = online.is_empty() && settings.no_agents_online.enabled;
    let mut outcomes = Vec::new();
    for check in CheckKind::ALL {
        if check == CheckKind::EvaluationFailed || !settings.enabled(check) {
            continue;
        }
        let outcome = match check {
            CheckKind::NoAgentsOnline => no_agents_online(&facts, agents),
            _ if nobody_online => Outcome::Inhibited,
            CheckKind::LowTraffic => low_traffic(&facts, settings.low_traffic.threshold),
            CheckKind::StaleAgents => {
                stale_agents(agents, &online, settings.stale_agents.threshold)
            }
            CheckKind::OutdatedAgents => {
                outdated_agents(&online, settings.outdated_agents.threshold)
            }
            CheckKind::AgentCountDrop => {
                agent_count_drop(&facts, drop_baseline, settings.agent_count_drop.threshold)
            }
            CheckKind::EvaluationFailed => continue,
        };
        outcomes.push((check, outcome));
    }
    SiteEvaluation { facts, outcomes }
}

fn no_agents_online(facts: &SiteFacts, agents: &[AgentSnapshot]) -> Outcome {
    if facts.online > 0 {
        return Outcome::Clear;
    }
    let summary = match facts.agents {
        0 => "no agents are registered for the site".to_string(),
        n => format!("0 of {n} agents online"),
    };
    Outcome::Firing(Finding {
        summary,
        value: 0.0,
        threshold: 1.0,
        agents: names(agents.iter()),
    })
}

fn low_traffic(facts: &SiteFacts, min_rps: f64) -> Outcome {
    if facts.rps >= min_rps {
        return Outcome::Clear;
    }
    Outcome::Firing(Finding {
        summary: format!(
            "{:.1} requests/s across {} online agent{} (threshold {min_rps})",
            facts.rps,
            facts.online,
            plural(facts.online)
        ),
        value: facts.rps,
        threshold: min_rps,
        agents: Vec::new(),
    })
}

fn stale_agents(agents: &[AgentSnapshot], online: &[&AgentSnapshot], minutes: u32) -> Outcome {
    // Staleness is measured against the newest report of an online agent, not the evaluator's clock:
    // "not seen while others report", and immune to clock skew between the API and the evaluator.
    let Some(newest) = online.iter().filter_map(|agent| agent.last_seen).max() else {
        return Outcome::Clear;
    };
    let limit = TimeDelta::minutes(i64::from(minutes));
    let stale: Vec<&AgentSnapshot> = agents
        .iter()
        .filter(|agent| agent.last_seen.is_some_and(|seen| newest - seen > limit))
        .collect();
    if stale.is_empty() {
        return Outcome::Clear;
    }
    let oldest_minutes = stale
        .iter()
        .filter_map(|agent| agent.last_seen)
        .map(|seen| (newest - seen).num_minutes())
        .max();
    Outcome::Firing(Finding {
        summary: format!(
            "{} agent{} not seen for over {minutes} min while {} report (longest {} min): {}",
            stale.len(),
            plural(stale.len()),
            online.len(),
            oldest_minutes.unwrap_or_default(),
            listed(&stale)
        ),
        value: stale.len() as f64,
        threshold: f64::from(minutes),
        agents: names(stale.into_iter()),
    })
}

fn outdated_agents(online: &[&AgentSnapshot], versions_behind: u32) -> Outcome {
    let outdated: Vec<&AgentSnapshot> = online
        .iter()
        .copied()
        .filter(|agent| agent.versions_behind >= i64::from(versions_behind))
        .collect();
    if outdated.is_empty() {
        return Outcome::Clear;
    }
    let worst = outdated
        .iter()
        .map(|agent| agent.versions_behind)
        .max()
        .unwrap_or_default();
    Outcome::Firing(Finding {
        summary: format!(
            "{} of {} online agents are {versions_behind} or more versions behind (worst {worst}): {}",
            outdated.len(),
            online.len(),
            listed(&outdated)
        ),
        value: worst as f64,
        threshold: f64::from(versions_behind),
        agents: names(outdated.into_iter()),
    })
}

fn agent_count_drop(facts: &SiteFacts, baseline: Option<usize>, percent: f64) -> Outcome {
    let Some(baseline) = baseline.filter(|&b| b > 0) else {
        return Outcome::Clear;
    };
    let dropped = baseline.saturating_sub(facts.online) as f64 / baseline as f64 * 100.0;
    if dropped < percent {
        return Outcome::Clear;
    }
    Outcome::Firing(Finding {
        summary: format!(
            "online agents fell from {baseline} to {} (-{dropped:.0}%, threshold {percent}%)",
            facts.online
        ),
        value: dropped,
        threshold: percent,
        agents: Vec::new(),
    })
}

fn names<'a>(agents: impl Iterator<Item = &'a AgentSnapshot>) -> Vec<String> {
    agents
        .take(LISTED_AGENTS)
        .map(|agent| agent.name.clone())
        .collect()
}

fn listed(agents: &[&AgentSnapshot]) -> String {
    let shown: Vec<&str> = agents
        .iter()
        .take(LISTED_AGENTS)
        .map(|agent| agent.name.as_str())
        .collect();
    match agents.len().saturating_sub(LISTED_AGENTS) {
        0 => shown.join(", "),
        more => format!("{} and {more} more", shown.join(", ")),
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(
        name: &str,
        online: bool,
        seen_ago_min: i64,
        behind: i64,
        requests: i64,
    ) -> AgentSnapshot {
        let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        AgentSnapshot {
            name: name.into(),
            online,
            last_seen: Some(now - TimeDelta::minutes(seen_ago_min)),
            versions_behind: behind,
            current_requests: requests,
        }
    }

    fn outcome(evaluation: &SiteEvaluation, check: CheckKind) -> &Outcome {
        &evaluation
            .outcomes
            .iter()
            .find(|(c, _)| *c == check)
            .unwrap()
            .1
    }

    #[test]
    fn healthy_site_is_clear_everywhere() {
        let agents = [agent("a", true, 0, 0, 900), agent("b", true, 0, 1, 900)];
        let evaluation = evaluate_site(&SiteChecks::DEFAULT, &agents, Some(2));
        assert_eq!(
            evaluation.facts,
            SiteFacts {
                agents: 2,
                online: 2,
                rps: 60.0
            }
        );
        assert_eq!(evaluation.outcomes.len(), 5);
        assert!(
            evaluation
                .outcomes
                .iter()
                .all(|(_, o)| *o == Outcome::Clear),
            "{evaluation:?}"
        );
    }

    #[test]
    fn all_offline_fires_one_condition_and_inhibits_the_rest() {
        let agents = [agent("a", false, 20, 0, 0), agent("b", false, 20, 5, 0)];
        let evaluation = evaluate_site(&SiteChecks::DEFAULT, &agents, Some(2));
        match outcome(&evaluation, CheckKind::NoAgentsOnline) {
            Outcome::Firing(finding) => assert_eq!(finding.summary, "0 of 2 agents online"),
            other => panic!("{other:?}"),
        }
        for check in [
            CheckKind::LowTraffic,
            CheckKind::StaleAgents,
            CheckKind::OutdatedAgents,
            CheckKind::AgentCountDrop,
        ] {
            assert_eq!(outcome(&evaluation, check), &Outcome::Inhibited, "{check}");
        }
    }

    #[test]
    fn empty_site_has_no_agents_online() {
        let evaluation = evaluate_site(&SiteChecks::DEFAULT, &[], None);
        assert!(
            matches!(outcome(&evaluation, CheckKind::NoAgentsOnline), Outcome::Firing(f) if f.summary.contains("no agents"))
        );
    }

    #[test]
    fn low_traffic_compares_site_rps_with_the_threshold() {
        // 270 requests per 30 s = 9 req/s.
        let agents = [
            agent("a", true, 0, 0, 150),
            agent("b", true, 0, 0, 120),
            agent("c", false, 0, 0, 9000),
        ];
        let evaluation = evaluate_site(&SiteChecks::DEFAULT, &agents, None);
        match outcome(&evaluation, CheckKind::LowTraffic) {
            Outcome::Firing(finding) => {
                assert_eq!(finding.value, 9.0);
                assert_eq!(
                    finding.summary,
                    "9.0 requests/s across 2 online agents (threshold 10)"
                );
            }
            other => panic!("{other:?}"),
        }
        let mut settings = SiteChecks::DEFAULT;
        settings.low_traffic.threshold = 9.0;
        assert_eq!(
            outcome(
                &evaluate_site(&settings, &agents, None),
                CheckKind::LowTraffic
            ),
            &Outcome::Clear
        );
    }

    #[test]
    fn stale_agents_are_measured_against_the_newest_report() {
        let agents = [
            agent("fresh", true, 0, 0, 900),
            agent("old", false, 11, 0, 0),
            agent("recent", false, 9, 0, 0),
        ];
        match outcome(
            &evaluate_site(&SiteChecks::DEFAULT, &agents, None),
            CheckKind::StaleAgents,
        ) {
            Outcome::Firing(finding) => {
                assert_eq!(finding.agents, vec!["old".to_string()]);
                assert!(
                    finding
                        .summary
                        .starts_with("1 agent not seen for over 10 min while 1 report"),
                    "{}",
                    finding.summary
                );
            }
            other => panic!("{other:?}"),
        }
        // Everyone equally old: nobody reports more recently, so nothing is stale relative to the others.
        let agents = [agent("a", true, 30, 0, 900), agent("b", true, 30, 0, 900)];
        assert_eq!(
            outcome(
                &evaluate_site(&SiteChecks::DEFAULT, &agents, None),
                CheckKind::StaleAgents
            ),
            &Outcome::Clear
        );
    }

    #[test]
    fn outdated_agents_counts_online_agents_at_or_past_the_threshold() {
        let agents = [
            agent("a", true, 0, 3, 900),
            agent("b", true, 0, 2, 900),
            agent("c", false, 0, 9, 0),
        ];
        match outcome(
            &evaluate_site(&SiteChecks::DEFAULT, &agents, None),
            CheckKind::OutdatedAgents,
        ) {
            Outcome::Firing(finding) => {
                assert_eq!(finding.agents, vec!["a".to_string()]);
                assert_eq!(finding.value, 3.0);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn count_drop_fires_at_the_percentage_against_the_baseline() {
        let agents: Vec<AgentSnapshot> = (0..10)
            .map(|i| agent(&format!("a{i}"), i < 5, 0, 0, 100))
            .collect();
        match outcome(
            &evaluate_site(&SiteChecks::DEFAULT, &agents, Some(10)),
            CheckKind::AgentCountDrop,
        ) {
            Outcome::Firing(finding) => assert_eq!(
                finding.summary,
                "online agents fell from 10 to 5 (-50%, threshold 50%)"
            ),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            outcome(
                &evaluate_site(&SiteChecks::DEFAULT, &agents, Some(9)),
                CheckKind::AgentCountDrop
            ),
            &Outcome::Clear
        );
        assert_eq!(
            outcome(
                &evaluate_site(&SiteChecks::DEFAULT, &agents, None),
                CheckKind::AgentCountDrop
            ),
            &Outcome::Clear
        );
    }

    #[test]
    fn disabled_checks_are_not_reported() {
        let mut settings = SiteChecks::DEFAULT;
        settings.no_agents_online.enabled = false;
        let evaluation = evaluate_site(&settings, &[agent("a", false, 0, 0, 0)], Some(1));
        assert!(
            evaluation
                .outcomes
                .iter()
                .all(|(c, _)| *c != CheckKind::NoAgentsOnline)
        );
        // Without the no-agents check nothing is inhibited: low traffic catches the outage instead.
        assert!(matches!(
            outcome(&evaluation, CheckKind::LowTraffic),
            Outcome::Firing(_)
        ));
    }

    #[test]
    fn condition_keys_round_trip_and_reject_garbage() {
        let key: ConditionKey = "www/no_agents_online".parse().unwrap();
        assert_eq!(key, ConditionKey::new("www", CheckKind::NoAgentsOnline));
        assert_eq!(key.to_string(), "www/no_agents_online");
        assert!(
            "www"
                .parse::<ConditionKey>()
                .unwrap_err()
                .contains("SITE/CHECK")
        );
        assert!(
            "www/nope"
                .parse::<ConditionKey>()
                .unwrap_err()
                .contains("unknown check")
        );
    }
}

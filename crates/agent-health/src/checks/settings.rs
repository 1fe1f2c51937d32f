//! Check settings: as a layer of the rules document writes them ([`Rule`], every key optional) and as
//! they apply to one site ([`CheckSetting`], every value set). A check's own part is one [`Check`]
//! impl (its threshold key, built-in default and accepted values); layering, parsing and validation are
//! written once for all checks.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, DeserializeOwned, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::ser::SerializeStruct;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{CheckKind, Severity};

/// What one check adds to the settings every check has (`enabled`, `severity`).
pub trait Check: Copy + fmt::Debug + PartialEq {
    const KIND: CheckKind;
    /// The threshold's key in the check's block (`min_rps`); `None` when the check has no threshold.
    const THRESHOLD_KEY: Option<&'static str>;
    type Threshold: Copy + fmt::Debug + PartialEq + Serialize + DeserializeOwned;
    /// Applies where no layer of the document sets a key.
    const DEFAULT: CheckSetting<Self>;

    /// Refuses a threshold the check cannot work with, saying why.
    fn validate(threshold: Self::Threshold) -> Result<(), String>;
}

/// Fires when none of the site's agents is online (and then stands in for the site's other checks).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NoAgentsOnline;

impl Check for NoAgentsOnline {
    const KIND: CheckKind = CheckKind::NoAgentsOnline;
    const THRESHOLD_KEY: Option<&'static str> = None;
    type Threshold = ();
    const DEFAULT: CheckSetting<Self> = CheckSetting::new(Severity::Critical, ());

    fn validate((): ()) -> Result<(), String> {
        Ok(())
    }
}

/// `min_rps`: fires when the site's requests per second, summed over its online agents, is below this.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LowTraffic;

impl Check for LowTraffic {
    const KIND: CheckKind = CheckKind::LowTraffic;
    const THRESHOLD_KEY: Option<&'static str> = Some("min_rps");
    type Threshold = f64;
    const DEFAULT: CheckSetting<Self> = CheckSetting::new(Severity::Warning, 10.0);

    fn validate(min_rps: f64) -> Result<(), String> {
        if min_rps.is_finite() && min_rps >= 0.0 {
            Ok(())
        } else {
            Err(format!("must be a number ≥ 0, got {min_rps}"))
        }
    }
}

/// `minutes`: fires for agents last seen more than this many minutes before the newest report of an
/// online agent.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StaleAgents;

impl Check for StaleAgents {
    const KIND: CheckKind = CheckKind::StaleAgents;
    const THRESHOLD_KEY: Option<&'static str> = Some("minutes");
    type Threshold = u32;
    const DEFAULT: CheckSetting<Self> = CheckSetting::new(Severity::Warning, 10);

    fn validate(minutes: u32) -> Result<(), String> {
        at_least_one(minutes)
    }
}

/// `versions_behind`: fires for online agents at least this many releases behind.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OutdatedAgents;

impl Check for OutdatedAgents {
    const KIND: CheckKind = CheckKind::OutdatedAgents;
    const THRESHOLD_KEY: Option<&'static str> = Some("versions_behind");
    type Threshold = u32;
    const DEFAULT: CheckSetting<Self> = CheckSetting::new(Severity::Info, 3);

    fn validate(versions_behind: u32) -> Result<(), String> {
        at_least_one(versions_behind)
    }
}

/// `percent`: fires when online agents fell by at least this percentage against the last evaluation
/// before the drop.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AgentCountDrop;

impl Check for AgentCountDrop {
    const KIND: CheckKind = CheckKind::AgentCountDrop;
    const THRESHOLD_KEY: Option<&'static str> = Some("percent");
    type Threshold = f64;
    const DEFAULT: CheckSetting<Self> = CheckSetting::new(Severity::Error, 50.0);

    fn validate(percent: f64) -> Result<(), String> {
        if percent.is_finite() && percent > 0.0 && percent <= 100.0 {
            Ok(())
        } else {
            Err(format!("must be a percentage in (0, 100], got {percent}"))
        }
    }
}

/// `consecutive_runs`: notify after this many runs in a row could not evaluate the site (status shows
/// every failure).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EvaluationFailed;

impl Check for EvaluationFailed {
    const KIND: CheckKind = CheckKind::EvaluationFailed;
    const THRESHOLD_KEY: Option<&'static str> = Some("consecutive_runs");
    type Threshold = u32;
    const DEFAULT: CheckSetting<Self> = CheckSetting::new(Severity::Error, 2);

    fn validate(consecutive_runs: u32) -> Result<(), String> {
        at_least_one(consecutive_runs)
    }
}

fn at_least_one(count: u32) -> Result<(), String> {
    if count == 0 {
        Err("must be at least 1".to_string())
    } else {
        Ok(())
    }
}

/// One layer of check settings: the document's `checks:` block or a site's `checks:` block.
/// Unset keys fall through to the layer below (site → document → built-in default).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CheckRules {
    pub no_agents_online: Rule<NoAgentsOnline>,
    pub low_traffic: Rule<LowTraffic>,
    pub stale_agents: Rule<StaleAgents>,
    pub outdated_agents: Rule<OutdatedAgents>,
    pub agent_count_drop: Rule<AgentCountDrop>,
    pub evaluation_failed: Rule<EvaluationFailed>,
}

/// A threshold a check refuses: its path below the `checks:` block and why.
#[derive(Debug)]
pub struct RefusedThreshold {
    pub path: String,
    pub message: String,
}

impl CheckRules {
    /// The first refused threshold, in document order.
    pub fn refused_threshold(&self) -> Option<RefusedThreshold> {
        [
            self.no_agents_online.refused_threshold(),
            self.low_traffic.refused_threshold(),
            self.stale_agents.refused_threshold(),
            self.outdated_agents.refused_threshold(),
            self.agent_count_drop.refused_threshold(),
            self.evaluation_failed.refused_threshold(),
        ]
        .into_iter()
        .flatten()
        .next()
    }
}

/// Effective settings of every check for one site.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SiteChecks {
    pub no_agents_online: CheckSetting<NoAgentsOnline>,
    pub low_traffic: CheckSetting<LowTraffic>,
    pub stale_agents: CheckSetting<StaleAgents>,
    pub outdated_agents: CheckSetting<OutdatedAgents>,
    pub agent_count_drop: CheckSetting<AgentCountDrop>,
    pub evaluation_failed: CheckSetting<EvaluationFailed>,
}

impl SiteChecks {
    pub const DEFAULT: SiteChecks = SiteChecks {
        no_agents_online: NoAgentsOnline::DEFAULT,
        low_traffic: LowTraffic::DEFAULT,
        stale_agents: StaleAgents::DEFAULT,
        outdated_agents: OutdatedAgents::DEFAULT,
        agent_count_drop: AgentCountDrop::DEFAULT,
        evaluation_failed: EvaluationFailed::DEFAULT,
    };

    pub fn enabled(&self, check: CheckKind) -> bool {
        self.severity_and_enabled(check).1
    }

    pub fn severity(&self, check: CheckKind) -> Severity {
        self.severity_and_enabled(check).0
    }

    fn severity_and_enabled(&self, check: CheckKind) -> (Severity, bool) {
        match check {
            CheckKind::NoAgentsOnline => self.no_agents_online.severity_and_enabled(),
            CheckKind::LowTraffic => self.low_traffic.severity_and_enabled(),
            CheckKind::StaleAgents => self.stale_agents.severity_and_enabled(),
            CheckKind::OutdatedAgents => self.outdated_agents.severity_and_enabled(),
            CheckKind::AgentCountDrop => self.agent_count_drop.severity_and_enabled(),
            CheckKind::EvaluationFailed => self.evaluation_failed.severity_and_enabled(),
        }
    }

    /// These settings with a layer of the document on top.
    pub fn layered(self, layer: &CheckRules) -> SiteChecks {
        SiteChecks {
            no_agents_online: self.no_agents_online.layered(&layer.no_agents_online),
            low_traffic: self.low_traffic.layered(&layer.low_traffic),
            stale_agents: self.stale_agents.layered(&layer.stale_agents),
            outdated_agents: self.outdated_agents.layered(&layer.outdated_agents),
            agent_count_drop: self.agent_count_drop.layered(&layer.agent_count_drop),
            evaluation_failed: self.evaluation_failed.layered(&layer.evaluation_failed),
        }
    }
}

/// Effective settings of one check for one site.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CheckSetting<C: Check> {
    pub enabled: bool,
    pub severity: Severity,
    pub threshold: C::Threshold,
}

impl<C: Check> CheckSetting<C> {
    /// Every check is enabled unless the document says otherwise.
    const fn new(severity: Severity, threshold: C::Threshold) -> CheckSetting<C> {
        CheckSetting {
            enabled: true,
            severity,
            threshold,
        }
    }

    /// What `rule` sets wins; the rest stays as it was.
    pub fn layered(self, rule: &Rule<C>) -> CheckSetting<C> {
        CheckSetting {
            enabled: rule.enabled.unwrap_or(self.enabled),
            severity: rule.severity.unwrap_or(self.severity),
            threshold: rule.threshold.unwrap_or(self.threshold),
        }
    }

    fn severity_and_enabled(&self) -> (Severity, bool) {
        (self.severity, self.enabled)
    }
}

/// One check's block in one layer of the document, e.g. `low_traffic: {severity: info, min_rps: 5}`.
#[derive(Clone, Debug)]
pub struct Rule<C: Check> {
    pub enabled: Option<bool>,
    pub severity: Option<Severity>,
    /// Written under the check's own key ([`Check::THRESHOLD_KEY`]).
    pub threshold: Option<C::Threshold>,
}

impl<C: Check> Default for Rule<C> {
    fn default() -> Rule<C> {
        Rule {
            enabled: None,
            severity: None,
            threshold: None,
        }
    }
}

impl<C: Check> Rule<C> {
    /// The keys of the block, in the order a sequence lists them.
    const FIELDS: &'static [&'static str] = match C::THRESHOLD_KEY {
        Some(key) => &["enabled", "severity", key],
        None => &["enabled", "severity"],
    };

    fn refused_threshold(&self) -> Option<RefusedThreshold> {
        let message = C::validate(self.threshold?).err()?;
        let key = C::THRESHOLD_KEY.unwrap_or_default();
        Some(RefusedThreshold {
            path: format!("{}.{key}", C::KIND),
            message,
        })
    }
}

// Serde by hand: the derive cannot take a field name from a type parameter, and `flatten` would lose
// `deny_unknown_fields`. This reproduces what the derive with `deny_unknown_fields, default` did for
// the per-check structs the document had before, error messages and their paths included.

impl<C: Check> Serialize for Rule<C> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut block = serializer.serialize_struct("Rule", Self::FIELDS.len())?;
        block.serialize_field("enabled", &self.enabled)?;
        block.serialize_field("severity", &self.severity)?;
        if let Some(key) = C::THRESHOLD_KEY {
            block.serialize_field(key, &self.threshold)?;
        }
        block.end()
    }
}

impl<'de, C: Check> Deserialize<'de> for Rule<C> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Rule<C>, D::Error> {
        deserializer.deserialize_struct("Rule", Self::FIELDS, RuleVisitor(PhantomData))
    }
}

struct RuleVisitor<C>(PhantomData<C>);

impl<'de, C: Check> Visitor<'de> for RuleVisitor<C> {
    type Value = Rule<C>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The derived wording, naming the former struct (`LowTrafficRule`).
        write!(formatter, "struct {:?}Rule", C::KIND)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Rule<C>, A::Error> {
        // The outer `Option` tells a key given as `null` from a key given twice.
        let (mut enabled, mut severity, mut threshold) = (None, None, None);
        while let Some(key) = map.next_key_seed(KeySeed::<C>(PhantomData))? {
            match key {
                Key::Enabled => next_value_once(&mut map, &mut enabled, "enabled")?,
                Key::Severity => next_value_once(&mut map, &mut severity, "severity")?,
                Key::Threshold(name) => next_value_once(&mut map, &mut threshold, name)?,
            }
        }
        Ok(Rule {
            enabled: enabled.flatten(),
            severity: severity.flatten(),
            threshold: threshold.flatten(),
        })
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Rule<C>, A::Error> {
        let enabled = seq.next_element()?.flatten();
        let severity = seq.next_element()?.flatten();
        let threshold = match C::THRESHOLD_KEY {
            Some(_) => seq.next_element()?.flatten(),
            None => None,
        };
        Ok(Rule {
            enabled,
            severity,
            threshold,
        })
    }
}

fn next_value_once<'de, A: MapAccess<'de>, T: Deserialize<'de>>(
    map: &mut A,
    slot: &mut Option<Option<T>>,
    key: &'static str,
) -> Result<(), A::Error> {
    if slot.is_some() {
        return Err(de::Error::duplicate_field(key));
    }
    *slot = Some(map.next_value()?);
    Ok(())
}

enum Key {
    Enabled,
    Severity,
    Threshold(&'static str),
}

/// Reads a key and refuses unknown ones right there, so the error's path ends in the unknown key.
struct KeySeed<C>(PhantomData<C>);

impl<'de, C: Check> DeserializeSeed<'de> for KeySeed<C> {
    type Value = Key;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Key, D::Error> {
        deserializer.deserialize_identifier(self)
    }
}

impl<C: Check> Visitor<'_> for KeySeed<C> {
    type Value = Key;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("field identifier")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Key, E> {
        match (key, C::THRESHOLD_KEY) {
            ("enabled", _) => Ok(Key::Enabled),
            ("severity", _) => Ok(Key::Severity),
            (key, Some(threshold)) if key == threshold => Ok(Key::Threshold(threshold)),
            (key, _) => Err(E::unknown_field(key, Rule::<C>::FIELDS)),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::rules::Rules;

    fn error_of(text: &str) -> String {
        match Rules::parse(text, "test.json") {
            Ok(rules) => panic!("expected an error, parsed {rules:?}"),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn check_blocks_parse_as_the_derived_structs_did() {
        assert!(
            error_of(r#"{"checks": {"no_agents_online": {"min_rps": 1}}}"#).starts_with(
                "rules: checks.no_agents_online.min_rps: unknown field `min_rps`, expected `enabled` or `severity`"
            )
        );
        assert!(
            error_of(r#"{"checks": {"low_traffic": {"min_rps": 1, "min_rps": 2}}}"#)
                .starts_with("rules: checks.low_traffic: duplicate field `min_rps`")
        );
        assert!(error_of(r#"{"checks": {"low_traffic": 5}}"#).starts_with(
            "rules: checks.low_traffic: invalid type: integer `5`, expected struct LowTrafficRule"
        ));
        let rules = Rules::parse(
            r#"{"checks": {"low_traffic": [false, "info", 5]}}"#,
            "test.json",
        )
        .unwrap();
        let low_traffic = rules.corp_checks().low_traffic;
        assert!(!low_traffic.enabled);
        assert_eq!(low_traffic.threshold, 5.0);
        let written = serde_json::to_value(&rules.checks.low_traffic).unwrap();
        assert_eq!(
            written,
            serde_json::json!({"enabled": false, "severity": "info", "min_rps": 5.0})
        );
    }
}

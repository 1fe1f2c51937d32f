//! The rules document: which checks run with which thresholds, per-site overrides, notification channels
//! and acknowledgement links. YAML or JSON; every key is optional and the defaults work for everyone.
//! Unknown keys and bad values are rejected with the path of the offending key.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::checks::CheckKind;
use crate::period::Period;

#[derive(Debug, thiserror::Error)]
#[error("rules: {path}: {message}")]
pub struct RulesError {
    /// Where in the document the problem is, e.g. `channels[1].throttle_period`.
    pub path: String,
    pub message: String,
}

impl RulesError {
    fn at(path: impl Into<String>, message: impl Into<String>) -> RulesError {
        RulesError {
            path: path.into(),
            message: message.into(),
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Rules {
    pub evaluation: EvaluationRules,
    pub checks: CheckRules,
    /// Per-site overrides keyed by site short name.
    pub sites: BTreeMap<String, SiteRules>,
    pub channels: Vec<ChannelRules>,
    pub ack: AckRules,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvaluationRules {
    /// How many sites are fetched at once (the API client's own limiter still applies).
    pub concurrency: u32,
    /// How often the evaluator is scheduled; `health status` calls a heartbeat older than twice this stale.
    pub interval: Period,
}

impl Default for EvaluationRules {
    fn default() -> EvaluationRules {
        EvaluationRules {
            concurrency: 20,
            interval: Period::minutes(5),
        }
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

/// One layer of check settings: the document's `checks:` block or a site's `checks:` block.
/// Unset fields fall through to the layer below (site → document → built-in default).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CheckRules {
    pub no_agents_online: NoAgentsOnlineRule,
    pub low_traffic: LowTrafficRule,
    pub stale_agents: StaleAgentsRule,
    pub outdated_agents: OutdatedAgentsRule,
    pub agent_count_drop: AgentCountDropRule,
    pub evaluation_failed: EvaluationFailedRule,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct NoAgentsOnlineRule {
    pub enabled: Option<bool>,
    pub severity: Option<Severity>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LowTrafficRule {
    pub enabled: Option<bool>,
    pub severity: Option<Severity>,
    /// Fires when the site's requests per second, summed over its online agents, is below this.
    pub min_rps: Option<f64>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StaleAgentsRule {
    pub enabled: Option<bool>,
    pub severity: Option<Severity>,
    /// Fires for agents last seen more than this many minutes before the newest report of an online agent.
    pub minutes: Option<u32>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutdatedAgentsRule {
    pub enabled: Option<bool>,
    pub severity: Option<Severity>,
    /// Fires for online agents at least this many releases behind.
    pub versions_behind: Option<u32>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentCountDropRule {
    pub enabled: Option<bool>,
    pub severity: Option<Severity>,
    /// Fires when online agents fell by at least this percentage against the last evaluation before the drop.
    pub percent: Option<f64>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvaluationFailedRule {
    pub enabled: Option<bool>,
    pub severity: Option<Severity>,
    /// Notify after this many runs in a row could not evaluate the site (status shows every failure).
    pub consecutive_runs: Option<u32>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SiteRules {
    /// `false` skips the site entirely.
    pub enabled: bool,
    pub checks: CheckRules,
}

impl Default for SiteRules {
    fn default() -> SiteRules {
        SiteRules {
            enabled: true,
            checks: CheckRules::default(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelKind {
    Slack,
    Pagerduty,
    Opsgenie,
    Webhook,
    /// Prints the notification to standard output (demo, CLI runs).
    Console,
}

impl ChannelKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Slack => "slack",
            ChannelKind::Pagerduty => "pagerduty",
            ChannelKind::Opsgenie => "opsgenie",
            ChannelKind::Webhook => "webhook",
            ChannelKind::Console => "console",
        }
    }
}

/// Where a secret lives: `env:VARIABLE` or `secretsmanager:SECRET_NAME`.
/// The value is a JSON object (`{"webhook_url": ...}`) or, for a single value, the plain string.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub enum SecretRef {
    Env(String),
    SecretsManager(String),
}

impl TryFrom<String> for SecretRef {
    type Error = String;

    fn try_from(text: String) -> Result<SecretRef, String> {
        let (scheme, name) = text.split_once(':').ok_or_else(|| {
            format!("secret reference {text:?} must be \"env:VARIABLE\" or \"secretsmanager:SECRET_NAME\"")
        })?;
        if name.trim().is_empty() {
            return Err(format!("secret reference {text:?} names no secret"));
        }
        match scheme {
            "env" => Ok(SecretRef::Env(name.to_string())),
            "secretsmanager" => Ok(SecretRef::SecretsManager(name.to_string())),
            other => Err(format!(
                "secret reference {text:?}: unknown source {other:?} (use env or secretsmanager)"
            )),
        }
    }
}

impl From<SecretRef> for String {
    fn from(reference: SecretRef) -> String {
        reference.to_string()
    }
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::Env(name) => write!(f, "env:{name}"),
            SecretRef::SecretsManager(name) => write!(f, "secretsmanager:{name}"),
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelRules {
    /// Short name used in state, acknowledgements and links (`[a-z0-9_-]`, at most 32 characters).
    pub name: String,
    #[serde(rename = "type")]
    pub kind: ChannelKind,
    /// Slack: `webhook_url`; PagerDuty: `routing_key`; Opsgenie: `api_key`; webhook: `signing_key`.
    #[serde(default)]
    pub secret: Option<SecretRef>,
    /// Webhook only: where the JSON is POSTed.
    #[serde(default)]
    pub url: Option<String>,
    /// Replaces the scheme, host and port of the channel's endpoint (tests, proxies, EU instances).
    #[serde(default)]
    pub base_url: Option<String>,
    /// While a condition keeps firing, notify this channel at most once per period.
    #[serde(default = "default_throttle")]
    pub throttle_period: Period,
    #[serde(default = "yes")]
    pub send_resolved: bool,
    /// `false`: acknowledgements never silence this channel, and acking it explicitly is refused.
    #[serde(default = "yes")]
    pub ack_enabled: bool,
    /// Only these checks notify the channel (default: all).
    #[serde(default)]
    pub checks: Option<Vec<CheckKind>>,
    /// Only conditions of at least this severity notify the channel (default: all).
    #[serde(default)]
    pub min_severity: Option<Severity>,
    /// Overrides `ack.one_click` for links sent through this channel.
    #[serde(default)]
    pub one_click: Option<bool>,
}

fn default_throttle() -> Period {
    Period::hours(1)
}

fn yes() -> bool {
    true
}

impl ChannelRules {
    pub fn wants(&self, check: CheckKind, severity: Severity) -> bool {
        let check_ok = self
            .checks
            .as_ref()
            .is_none_or(|checks| checks.contains(&check));
        let severity_ok = self.min_severity.is_none_or(|min| severity >= min);
        check_ok && severity_ok
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AckRules {
    /// Public URL of the acknowledgement endpoint (the Lambda function URL or `health serve`).
    pub base_url: Option<String>,
    /// Key that signs acknowledgement links (`{"key": ...}` or the plain key).
    pub secret: Option<SecretRef>,
    /// How long a link in a message stays valid.
    pub link_ttl: Period,
    /// Links acknowledge on GET instead of showing a confirmation page.
    pub one_click: bool,
}

impl Default for AckRules {
    fn default() -> AckRules {
        AckRules {
            base_url: None,
            secret: None,
            link_ttl: Period::hours(24),
            one_click: false,
        }
    }
}

/// Effective settings of one check for one site.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CheckSetting<T> {
    pub enabled: bool,
    pub severity: Severity,
    pub threshold: T,
}

/// Effective settings of every check for one site.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SiteChecks {
    pub no_agents_online: CheckSetting<()>,
    pub low_traffic: CheckSetting<f64>,
    pub stale_agents: CheckSetting<u32>,
    pub outdated_agents: CheckSetting<u32>,
    pub agent_count_drop: CheckSetting<f64>,
    pub evaluation_failed: CheckSetting<u32>,
}

impl SiteChecks {
    pub const DEFAULT: SiteChecks = SiteChecks {
        no_agents_online: CheckSetting {
            enabled: true,
            severity: Severity::Critical,
            threshold: (),
        },
        low_traffic: CheckSetting {
            enabled: true,
            severity: Severity::Warning,
            threshold: 10.0,
        },
        stale_agents: CheckSetting {
            enabled: true,
            severity: Severity::Warning,
            threshold: 10,
        },
        outdated_agents: CheckSetting {
            enabled: true,
            severity: Severity::Info,
            threshold: 3,
        },
        agent_count_drop: CheckSetting {
            enabled: true,
            severity: Severity::Error,
            threshold: 50.0,
        },
        evaluation_failed: CheckSetting {
            enabled: true,
            severity: Severity::Error,
            threshold: 2,
        },
    };

    pub fn enabled(&self, check: CheckKind) -> bool {
        self.severity_and_enabled(check).1
    }

    pub fn severity(&self, check: CheckKind) -> Severity {
        self.severity_and_enabled(check).0
    }

    fn severity_and_enabled(&self, check: CheckKind) -> (Severity, bool) {
        match check {
            CheckKind::NoAgentsOnline => (
                self.no_agents_online.severity,
                self.no_agents_online.enabled,
            ),
            CheckKind::LowTraffic => (self.low_traffic.severity, self.low_traffic.enabled),
            CheckKind::StaleAgents => (self.stale_agents.severity, self.stale_agents.enabled),
            CheckKind::OutdatedAgents => {
                (self.outdated_agents.severity, self.outdated_agents.enabled)
            }
            CheckKind::AgentCountDrop => (
                self.agent_count_drop.severity,
                self.agent_count_drop.enabled,
            ),
            CheckKind::EvaluationFailed => (
                self.evaluation_failed.severity,
                self.evaluation_failed.enabled,
            ),
        }
    }

    fn layered(mut self, layer: &CheckRules) -> SiteChecks {
        fn base<T>(
            setting: &mut CheckSetting<T>,
            enabled: Option<bool>,
            severity: Option<Severity>,
        ) {
            if let Some(enabled) = enabled {
                setting.enabled = enabled;
            }
            if let Some(severity) = severity {
                setting.severity = severity;
            }
        }
        let l = layer;
        base(
            &mut self.no_agents_online,
            l.no_agents_online.enabled,
            l.no_agents_online.severity,
        );
        base(
            &mut self.low_traffic,
            l.low_traffic.enabled,
            l.low_traffic.severity,
        );
        base(
            &mut self.stale_agents,
            l.stale_agents.enabled,
            l.stale_agents.severity,
        );
        base(
            &mut self.outdated_agents,
            l.outdated_agents.enabled,
            l.outdated_agents.severity,
        );
        base(
            &mut self.agent_count_drop,
            l.agent_count_drop.enabled,
            l.agent_count_drop.severity,
        );
        base(
            &mut self.evaluation_failed,
            l.evaluation_failed.enabled,
            l.evaluation_failed.severity,
        );
        self.low_traffic.threshold = l.low_traffic.min_rps.unwrap_or(self.low_traffic.threshold);
        self.stale_agents.threshold = l
            .stale_agents
            .minutes
            .unwrap_or(self.stale_agents.threshold);
        self.outdated_agents.threshold = l
            .outdated_agents
            .versions_behind
            .unwrap_or(self.outdated_agents.threshold);
        self.agent_count_drop.threshold = l
            .agent_count_drop
            .percent
            .unwrap_or(self.agent_count_drop.threshold);
        self.evaluation_failed.threshold = l
            .evaluation_failed
            .consecutive_runs
            .unwrap_or(self.evaluation_failed.threshold);
        self
    }
}

impl Rules {
    /// Parses and validates a rules document. JSON if it starts with `{`, YAML otherwise.
    /// `source` names the document in errors (a file path, an S3 URL, an environment variable).
    pub fn parse(text: &str, source: &str) -> Result<Rules, RulesError> {
        let rules: Rules = if text.trim_start().starts_with('{') {
            let mut de = serde_json::Deserializer::from_str(text);
            serde_path_to_error::deserialize(&mut de).map_err(|e| syntax_error(source, e))?
        } else if text.trim().is_empty() {
            Rules::default()
        } else {
            let de = serde_yaml::Deserializer::from_str(text);
            serde_path_to_error::deserialize(de).map_err(|e| syntax_error(source, e))?
        };
        rules.validate()?;
        Ok(rules)
    }

    /// Effective check settings for a site, or `None` when the site is switched off.
    pub fn site(&self, site: &str) -> Option<SiteChecks> {
        let document = SiteChecks::DEFAULT.layered(&self.checks);
        match self.sites.get(site) {
            Some(overrides) if !overrides.enabled => None,
            Some(overrides) => Some(document.layered(&overrides.checks)),
            None => Some(document),
        }
    }

    /// Settings for corp-wide conditions (the site list itself could not be read).
    pub fn corp_checks(&self) -> SiteChecks {
        SiteChecks::DEFAULT.layered(&self.checks)
    }

    pub fn channel(&self, name: &str) -> Option<&ChannelRules> {
        self.channels.iter().find(|channel| channel.name == name)
    }

    /// Whether any channel carries acknowledgement links, which then need `ack.base_url` and `ack.secret`.
    pub fn needs_ack_links(&self) -> bool {
        self.channels.iter().any(|channel| channel.ack_enabled)
    }

    fn validate(&self) -> Result<(), RulesError> {
        let concurrency = self.evaluation.concurrency;
        if !(1..=64).contains(&concurrency) {
            return Err(RulesError::at(
                "evaluation.concurrency",
                format!("must be 1..=64, got {concurrency}"),
            ));
        }
        validate_checks(&self.checks, "checks")?;
        for (site, overrides) in &self.sites {
            if site.is_empty()
                || !site
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_.-".contains(c))
            {
                return Err(RulesError::at(
                    format!("sites.{site}"),
                    "site short names use only lower-case letters, digits, '_', '.' and '-'",
                ));
            }
            validate_checks(&overrides.checks, &format!("sites.{site}.checks"))?;
        }
        let mut names = BTreeSet::new();
        for (index, channel) in self.channels.iter().enumerate() {
            let path = format!("channels[{index}]");
            validate_channel(channel, &path)?;
            if !names.insert(channel.name.as_str()) {
                return Err(RulesError::at(
                    format!("{path}.name"),
                    format!("duplicate channel name {:?}", channel.name),
                ));
            }
        }
        if let Some(base_url) = &self.ack.base_url {
            validate_url(base_url, "ack.base_url")?;
        }
        if self.needs_ack_links() {
            let needing = self
                .channels
                .iter()
                .find(|c| c.ack_enabled)
                .map(|c| c.name.as_str())
                .unwrap_or_default();
            if self.ack.base_url.is_none() {
                return Err(RulesError::at(
                    "ack.base_url",
                    format!(
                        "required: channel {needing:?} carries acknowledgement links (or set its ack_enabled: false)"
                    ),
                ));
            }
            if self.ack.secret.is_none() {
                return Err(RulesError::at(
                    "ack.secret",
                    format!("required to sign the acknowledgement links of channel {needing:?}"),
                ));
            }
        }
        Ok(())
    }
}

fn syntax_error<E: fmt::Display>(source: &str, error: serde_path_to_error::Error<E>) -> RulesError {
    let path = error.path().to_string();
    let mut message = error.inner().to_string();
    // serde_yaml starts its message with the enclosing mapping's path; ours is already more precise.
    let segments: Vec<&str> = path.split('.').collect();
    for end in (1..=segments.len()).rev() {
        if let Some(rest) = message.strip_prefix(&format!("{}: ", segments[..end].join("."))) {
            message = rest.to_string();
            break;
        }
    }
    let path = if path == "." {
        "(top level)".to_string()
    } else {
        path
    };
    RulesError {
        path,
        message: format!("{message} (in {source})"),
    }
}

fn validate_checks(checks: &CheckRules, prefix: &str) -> Result<(), RulesError> {
    if let Some(min_rps) = checks.low_traffic.min_rps
        && !(min_rps.is_finite() && min_rps >= 0.0)
    {
        return Err(RulesError::at(
            format!("{prefix}.low_traffic.min_rps"),
            format!("must be a number ≥ 0, got {min_rps}"),
        ));
    }
    if checks.stale_agents.minutes == Some(0) {
        return Err(RulesError::at(
            format!("{prefix}.stale_agents.minutes"),
            "must be at least 1",
        ));
    }
    if checks.outdated_agents.versions_behind == Some(0) {
        return Err(RulesError::at(
            format!("{prefix}.outdated_agents.versions_behind"),
            "must be at least 1",
        ));
    }
    if let Some(percent) = checks.agent_count_drop.percent
        && !(percent.is_finite() && percent > 0.0 && percent <= 100.0)
    {
        return Err(RulesError::at(
            format!("{prefix}.agent_count_drop.percent"),
            format!("must be a percentage in (0, 100], got {percent}"),
        ));
    }
    if checks.evaluation_failed.consecutive_runs == Some(0) {
        return Err(RulesError::at(
            format!("{prefix}.evaluation_failed.consecutive_runs"),
            "must be at least 1",
        ));
    }
    Ok(())
}

fn validate_channel(channel: &ChannelRules, path: &str) -> Result<(), RulesError> {
    let name = &channel.name;
    let name_ok = !name.is_empty()
        && name.len() <= 32
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if !name_ok {
        return Err(RulesError::at(
            format!("{path}.name"),
            format!("{name:?} is not a channel name: use 1-32 of a-z, 0-9, '_' and '-'"),
        ));
    }
    let kind = channel.kind.as_str();
    match channel.kind {
        ChannelKind::Slack
        | ChannelKind::Pagerduty
        | ChannelKind::Opsgenie
        | ChannelKind::Webhook => {
            if channel.secret.is_none() {
                let what = match channel.kind {
                    ChannelKind::Slack => "the webhook URL",
                    ChannelKind::Pagerduty => "the routing key",
                    ChannelKind::Opsgenie => "the API key",
                    _ => "the signing key",
                };
                return Err(RulesError::at(
                    format!("{path}.secret"),
                    format!("required for {kind} channels ({what})"),
                ));
            }
        }
        ChannelKind::Console => {
            if channel.secret.is_some() {
                return Err(RulesError::at(
                    format!("{path}.secret"),
                    "console channels take no secret",
                ));
            }
        }
    }
    match (&channel.url, channel.kind) {
        (Some(url), ChannelKind::Webhook) => validate_url(url, &format!("{path}.url"))?,
        (None, ChannelKind::Webhook) => {
            return Err(RulesError::at(
                format!("{path}.url"),
                "required for webhook channels",
            ));
        }
        (Some(_), _) => {
            return Err(RulesError::at(
                format!("{path}.url"),
                format!("only webhook channels take a url, not {kind}"),
            ));
        }
        (None, _) => {}
    }
    if let Some(base_url) = &channel.base_url {
        if channel.kind == ChannelKind::Console {
            return Err(RulesError::at(
                format!("{path}.base_url"),
                "console channels have no endpoint",
            ));
        }
        validate_url(base_url, &format!("{path}.base_url"))?;
    }
    if let Some(checks) = &channel.checks
        && checks.is_empty()
    {
        return Err(RulesError::at(
            format!("{path}.checks"),
            "an empty list would silence the channel; remove the channel instead",
        ));
    }
    Ok(())
}

fn validate_url(raw: &str, path: &str) -> Result<(), RulesError> {
    let parsed: url::Url = raw
        .parse()
        .map_err(|e| RulesError::at(path, format!("{raw:?} is not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(RulesError::at(
            path,
            format!("{raw:?} must be an http or https URL"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(text: &str) -> RulesError {
        match Rules::parse(text, "test.yaml") {
            Ok(rules) => panic!("expected an error, parsed {rules:?}"),
            Err(error) => error,
        }
    }

    #[test]
    fn empty_document_gets_working_defaults() {
        let rules = Rules::parse("", "test.yaml").unwrap();
        assert_eq!(rules.site("any-site"), Some(SiteChecks::DEFAULT));
        assert_eq!(rules.evaluation.concurrency, 20);
        assert!(rules.channels.is_empty());
        let rules = Rules::parse("{}", "test.json").unwrap();
        assert_eq!(rules.site("any-site"), Some(SiteChecks::DEFAULT));
    }

    #[test]
    fn site_overrides_layer_over_document_settings() {
        let rules = Rules::parse(
            "checks:\n  low_traffic: {min_rps: 5}\n  outdated_agents: {enabled: false}\n\
             sites:\n  quiet-site:\n    checks:\n      low_traffic: {min_rps: 0.5, severity: info}\n  \
             lab:\n    enabled: false\n",
            "test.yaml",
        )
        .unwrap();
        let default_site = rules.site("www").unwrap();
        assert_eq!(default_site.low_traffic.threshold, 5.0);
        assert!(!default_site.outdated_agents.enabled);
        let quiet = rules.site("quiet-site").unwrap();
        assert_eq!(quiet.low_traffic.threshold, 0.5);
        assert_eq!(quiet.low_traffic.severity, Severity::Info);
        assert!(
            !quiet.outdated_agents.enabled,
            "document layer still applies under the site layer"
        );
        assert_eq!(rules.site("lab"), None);
    }

    #[test]
    fn unknown_keys_are_rejected_with_their_path() {
        let error = error_of("checks:\n  low_traffic:\n    min_rsp: 3\n");
        assert_eq!(error.path, "checks.low_traffic.min_rsp");
        assert!(
            error
                .message
                .starts_with("unknown field `min_rsp`, expected one of"),
            "{error}"
        );
        let error = error_of("chanels: []\n");
        assert_eq!(error.path, "chanels");
        let error = error_of(r#"{"sites": {"www": {"checks": {"stale_agents": {"mins": 3}}}}}"#);
        assert_eq!(error.path, "sites.www.checks.stale_agents.mins");
        let error = error_of("- just\n- a list\n");
        assert_eq!(error.path, "(top level)");
    }

    #[test]
    fn bad_values_are_rejected_with_their_path() {
        let channel = "channels:\n  - name: pd\n    type: pagerduty\n    secret: env:PD\n    ack_enabled: false\n";
        let error = error_of(&format!("{channel}    throttle_period: 5x\n"));
        assert_eq!(error.path, "channels[0].throttle_period");
        assert!(error.message.contains("unknown unit"), "{error}");
        let error = error_of("checks:\n  agent_count_drop: {percent: 150}\n");
        assert_eq!(error.path, "checks.agent_count_drop.percent");
        let error = error_of("sites:\n  www:\n    checks:\n      low_traffic: {min_rps: -1}\n");
        assert_eq!(error.path, "sites.www.checks.low_traffic.min_rps");
        let error = error_of("channels:\n  - name: x\n    type: slak\n");
        assert_eq!(error.path, "channels[0].type");
        assert!(error.message.contains("unknown variant `slak`"), "{error}");
        let error = error_of("channels:\n  - {name: pd, type: pagerduty, ack_enabled: false}\n");
        assert_eq!(error.path, "channels[0].secret");
        let error = error_of(
            "channels:\n  - {name: pd, type: pagerduty, secret: 'vault:x', ack_enabled: false}\n",
        );
        assert_eq!(error.path, "channels[0].secret");
        assert!(error.message.contains("unknown source"), "{error}");
        let error = error_of("evaluation: {concurrency: 0}\n");
        assert_eq!(error.path, "evaluation.concurrency");
    }

    #[test]
    fn channels_need_unique_names_and_ack_settings() {
        let error = error_of(
            "channels:\n  - {name: c, type: console, ack_enabled: false}\n  - {name: c, type: console, ack_enabled: false}\n",
        );
        assert_eq!(error.path, "channels[1].name");
        let error = error_of("channels:\n  - {name: c, type: console}\n");
        assert_eq!(error.path, "ack.base_url");
        let error = error_of(
            "ack: {base_url: 'http://127.0.0.1:1'}\nchannels:\n  - {name: c, type: console}\n",
        );
        assert_eq!(error.path, "ack.secret");
        let error = error_of("ack: {base_url: 'ftp://x'}\n");
        assert_eq!(error.path, "ack.base_url");
        let error = error_of(
            "channels:\n  - {name: w, type: webhook, secret: env:K, ack_enabled: false}\n",
        );
        assert_eq!(error.path, "channels[0].url");
    }

    #[test]
    fn channel_filters_select_checks_and_severities() {
        let rules = Rules::parse(
            "channels:\n  - {name: pd, type: pagerduty, secret: env:PD, ack_enabled: false, min_severity: error}\n  \
             - {name: ops, type: console, ack_enabled: false, checks: [outdated_agents]}\n",
            "test.yaml",
        )
        .unwrap();
        let pd = rules.channel("pd").unwrap();
        assert!(pd.wants(CheckKind::NoAgentsOnline, Severity::Critical));
        assert!(!pd.wants(CheckKind::OutdatedAgents, Severity::Info));
        let ops = rules.channel("ops").unwrap();
        assert!(ops.wants(CheckKind::OutdatedAgents, Severity::Info));
        assert!(!ops.wants(CheckKind::LowTraffic, Severity::Warning));
        assert_eq!(pd.throttle_period, Period::hours(1));
        assert!(pd.send_resolved);
    }
}

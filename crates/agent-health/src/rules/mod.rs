//! The rules document: which checks run with which thresholds, per-site overrides, notification channels
//! and acknowledgement links. YAML or JSON; every key is optional and the defaults work for everyone.
//! Unknown keys and bad values are rejected with the path of the offending key.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::checks::{CheckKind, CheckRules, Severity, SiteChecks};
use crate::period::Period;

mod links;
mod validate;

pub use links::LinkRules;

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
    /// Dashboard and runbook links shown with every alert.
    pub links: LinkRules,
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
    /// An email over SMTP with STARTTLS.
    Email,
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
            ChannelKind::Email => "email",
            ChannelKind::Console => "console",
        }
    }

    /// PagerDuty and Opsgenie open an incident per condition, which an acknowledgement in
    /// sigsci-kit acknowledges there too.
    pub fn has_incidents(self) -> bool {
        matches!(self, ChannelKind::Pagerduty | ChannelKind::Opsgenie)
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
    /// Slack: `webhook_url`; PagerDuty: `routing_key`; Opsgenie: `api_key`; webhook: `signing_key`;
    /// email: `username` and `password` (the SMTP login).
    #[serde(default)]
    pub secret: Option<SecretRef>,
    /// Webhook only: where the JSON is POSTed.
    #[serde(default)]
    pub url: Option<String>,
    /// Email only: the SMTP server's host name (or IP address), which its certificate must match.
    #[serde(default)]
    pub smtp_host: Option<String>,
    /// Email only: the SMTP server's port (default 587, submission); the session must upgrade
    /// with STARTTLS before the login.
    #[serde(default)]
    pub smtp_port: Option<u16>,
    /// Email only: the sender, `alerts@example.com` or `Agent health <alerts@example.com>`.
    #[serde(default)]
    pub from: Option<String>,
    /// Email only: the recipients, one address or a list.
    #[serde(default, deserialize_with = "one_or_many")]
    pub to: Option<Vec<String>>,
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

/// `to: a@example.com` or `to: [a@example.com, b@example.com]`.
fn one_or_many<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Vec<String>>, D::Error> {
    struct Addresses;
    impl<'de> serde::de::Visitor<'de> for Addresses {
        type Value = Option<Vec<String>>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an email address or a list of them")
        }

        fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<Self::Value, E> {
            Ok(Some(vec![value.to_string()]))
        }

        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Self::Value, A::Error> {
            let mut addresses = Vec::new();
            while let Some(address) = seq.next_element::<String>()? {
                addresses.push(address);
            }
            Ok(Some(addresses))
        }
    }
    deserializer.deserialize_any(Addresses)
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
    fn email_channels_need_a_server_a_sender_and_recipients() {
        let email = "channels:\n  - name: mail\n    type: email\n    secret: env:SMTP\n    ack_enabled: false\n";
        let rules = Rules::parse(
            &format!("{email}    smtp_host: smtp.example.com\n    from: Agent health <alerts@example.com>\n    to: ops@example.com\n"),
            "test.yaml",
        )
        .unwrap();
        let mail = rules.channel("mail").unwrap();
        assert_eq!(mail.kind, ChannelKind::Email);
        assert_eq!(
            mail.to.as_deref(),
            Some(&["ops@example.com".to_string()][..])
        );
        assert_eq!(mail.smtp_port, None);
        let rules = Rules::parse(
            &format!("{email}    smtp_host: 10.0.0.5\n    smtp_port: 25\n    from: a@example.com\n    to: [b@example.com, c@example.com]\n"),
            "test.yaml",
        )
        .unwrap();
        assert_eq!(rules.channels[0].to.as_ref().map(Vec::len), Some(2));

        let complete =
            "    smtp_host: smtp.example.com\n    from: a@example.com\n    to: b@example.com\n";
        let error = error_of(&format!(
            "{email}    from: a@example.com\n    to: b@example.com\n"
        ));
        assert_eq!(error.path, "channels[0].smtp_host");
        assert!(
            error.message.starts_with("required for email channels"),
            "{error}"
        );
        for host in [
            "smtp://smtp.example.com",
            "smtp.example.com:587",
            "smtp example.com",
        ] {
            let error = error_of(&format!(
                "{email}    smtp_host: '{host}'\n    from: a@example.com\n    to: b@example.com\n"
            ));
            assert_eq!(error.path, "channels[0].smtp_host", "{host}");
            assert!(error.message.contains("is not a host name"), "{error}");
        }
        let error = error_of(&format!("{email}{complete}    smtp_port: 465\n"));
        assert_eq!(error.path, "channels[0].smtp_port");
        assert!(error.message.contains("STARTTLS"), "{error}");
        let error = error_of(&format!("{email}{complete}    smtp_port: 70000\n"));
        assert_eq!(error.path, "channels[0].smtp_port");
        let error = error_of(&format!(
            "{email}    smtp_host: h.example.com\n    to: b@example.com\n"
        ));
        assert_eq!(error.path, "channels[0].from");
        let error = error_of(&format!(
            "{email}    smtp_host: h.example.com\n    from: not-an-address\n    to: b@example.com\n"
        ));
        assert_eq!(error.path, "channels[0].from");
        assert!(
            error
                .message
                .contains("\"not-an-address\" is not an email address"),
            "{error}"
        );
        let error = error_of(&format!(
            "{email}    smtp_host: h.example.com\n    from: a@example.com\n"
        ));
        assert_eq!(error.path, "channels[0].to");
        let error = error_of(&format!(
            "{email}    smtp_host: h.example.com\n    from: a@example.com\n    to: [b@example.com, 'c@']\n"
        ));
        assert_eq!(error.path, "channels[0].to[1]");
        let error = error_of(&format!(
            "{email}    smtp_host: h.example.com\n    from: a@example.com\n    to: {{x: 1}}\n"
        ));
        assert_eq!(error.path, "channels[0].to");
        assert!(
            error.message.contains("an email address or a list of them"),
            "{error}"
        );
        let error = error_of(&format!(
            "{email}{complete}    base_url: http://127.0.0.1:1\n"
        ));
        assert_eq!(error.path, "channels[0].base_url");
        let error = error_of(
            "channels:\n  - {name: mail, type: email, ack_enabled: false, smtp_host: h.example.com, \
             from: a@example.com, to: b@example.com}\n",
        );
        assert_eq!(error.path, "channels[0].secret");
        assert!(
            error.message.contains("the SMTP username and password"),
            "{error}"
        );
        let error = error_of(
            "channels:\n  - {name: s, type: slack, secret: env:S, ack_enabled: false, smtp_host: h.example.com}\n",
        );
        assert_eq!(error.path, "channels[0].smtp_host");
        assert!(
            error
                .message
                .contains("only email channels take smtp_host, not slack"),
            "{error}"
        );
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

//! The closed vocabularies of declared configuration, spelled as in the manifests.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What an agent alert watches. Each metric is one pre-seeded alert per site, found by tag name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum Metric {
    /// Average requests per second across the site's agents (`requests_total`).
    #[serde(rename = "averageRPS")]
    AverageRps,
    /// Number of online agents (`agent_scoreboards`).
    #[serde(rename = "onlineAgentCount")]
    OnlineAgentCount,
}

impl Metric {
    pub const ALL: [Metric; 2] = [Metric::AverageRps, Metric::OnlineAgentCount];

    /// The alert's `tagName` in the API.
    pub fn tag_name(self) -> &'static str {
        match self {
            Metric::AverageRps => "requests_total",
            Metric::OnlineAgentCount => "agent_scoreboards",
        }
    }

    /// The `longName` used when the alert has to be created (the API wants 3-25 characters).
    pub fn long_name(self) -> &'static str {
        match self {
            Metric::AverageRps => "Average RPS",
            Metric::OnlineAgentCount => "Online agent count",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Metric::AverageRps => "averageRPS",
            Metric::OnlineAgentCount => "onlineAgentCount",
        }
    }
}

/// How an agent alert compares the metric with its threshold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub enum ThresholdOperator {
    LessThan,
    GreaterThan,
    EqualTo,
    NotEqualTo,
}

impl ThresholdOperator {
    pub fn as_str(self) -> &'static str {
        match self {
            ThresholdOperator::LessThan => "lessThan",
            ThresholdOperator::GreaterThan => "greaterThan",
            ThresholdOperator::EqualTo => "equalTo",
            ThresholdOperator::NotEqualTo => "notEqualTo",
        }
    }
}

/// Integration (notification target) types the API knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub enum IntegrationType {
    /// `url` is an e-mail address.
    MailingList,
    Slack,
    /// No `url`; `fields.site` and `fields.apiKey` instead.
    Datadog,
    /// The generic webhook.
    Generic,
    Pagerduty,
    MicrosoftTeams,
    MicrosoftTeamsWorkflow,
    Jira,
    Opsgenie,
    Victorops,
    Pivotaltracker,
}

impl IntegrationType {
    pub const ALL: [IntegrationType; 11] = [
        IntegrationType::MailingList,
        IntegrationType::Slack,
        IntegrationType::Datadog,
        IntegrationType::Generic,
        IntegrationType::Pagerduty,
        IntegrationType::MicrosoftTeams,
        IntegrationType::MicrosoftTeamsWorkflow,
        IntegrationType::Jira,
        IntegrationType::Opsgenie,
        IntegrationType::Victorops,
        IntegrationType::Pivotaltracker,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            IntegrationType::MailingList => "mailingList",
            IntegrationType::Slack => "slack",
            IntegrationType::Datadog => "datadog",
            IntegrationType::Generic => "generic",
            IntegrationType::Pagerduty => "pagerduty",
            IntegrationType::MicrosoftTeams => "microsoftTeams",
            IntegrationType::MicrosoftTeamsWorkflow => "microsoftTeamsWorkflow",
            IntegrationType::Jira => "jira",
            IntegrationType::Opsgenie => "opsgenie",
            IntegrationType::Victorops => "victorops",
            IntegrationType::Pivotaltracker => "pivotaltracker",
        }
    }

    pub fn parse(value: &str) -> Option<IntegrationType> {
        IntegrationType::ALL
            .into_iter()
            .find(|t| t.as_str() == value)
    }

    /// Corp-level integrations accept only this subset.
    pub fn allowed_at_corp(self) -> bool {
        matches!(
            self,
            IntegrationType::MailingList
                | IntegrationType::Slack
                | IntegrationType::MicrosoftTeams
                | IntegrationType::MicrosoftTeamsWorkflow
        )
    }

    /// What the `url` field holds for this type.
    pub fn url_kind(self) -> UrlKind {
        match self {
            IntegrationType::MailingList => UrlKind::EmailAddress,
            IntegrationType::Datadog => UrlKind::None,
            _ => UrlKind::Webhook,
        }
    }
}

impl fmt::Display for IntegrationType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The meaning of an integration's `url`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UrlKind {
    /// A secret https webhook address.
    Webhook,
    /// One e-mail address (not secret).
    EmailAddress,
    /// The type takes no URL (datadog).
    None,
}

/// Whether an integration belongs to one site or to the whole corp.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum IntegrationScope {
    #[default]
    Site,
    Corp,
}

/// Where a remote object lives.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Location {
    Site(String),
    Corp,
}

impl Location {
    /// The event names the API documents for integrations here (agent alerts, flagged IPs, ...).
    pub fn documented_events(&self) -> &'static [&'static str] {
        match self {
            Location::Site(_) => &SITE_EVENTS,
            Location::Corp => &CORP_EVENTS,
        }
    }
}

/// Events of site integrations, as documented (`webhookEvents`: all activity).
pub const SITE_EVENTS: [&str; 5] = [
    "flag",
    "agentAlert",
    "loggingModeChanged",
    "listCreated",
    "webhookEvents",
];

/// Events of corp integrations, as documented (`webhookEvents`: all activity).
pub const CORP_EVENTS: [&str; 5] = [
    "newSite",
    "enableSSO",
    "corpUpdated",
    "listDeleted",
    "webhookEvents",
];

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Site(site) => write!(f, "site {site}"),
            Location::Corp => f.write_str("corp"),
        }
    }
}

/// What removing an `AgentAlert` does to the site's alert.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum AlertDeletionPolicy {
    /// Leave the site's built-in alert in place, disabled.
    #[default]
    Disable,
    /// Delete the alert.
    Delete,
    /// Leave the alert exactly as it is.
    Orphan,
}

/// What removing an `Integration` does to the remote integration.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum IntegrationDeletionPolicy {
    #[default]
    Delete,
    Orphan,
}

/// Whether the kit writes to the API or only compares (reusable by every kind).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum ManagementPolicy {
    /// Create, update and delete to match the declaration; undeclared remote state is removed.
    #[default]
    Full,
    /// Never write: read the remote object and report how it differs.
    ObserveOnly,
}

/// A URL as compared: scheme and host in lower case, no trailing slash on the path (people and
/// the API write both forms of one address). User info, path case and query are kept.
pub fn normalize_url(url: &str) -> String {
    let url = url.trim();
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let (user, host) = match authority.rsplit_once('@') {
        Some((user, host)) => (format!("{user}@"), host),
        None => (String::new(), authority),
    };
    let tail = if tail.contains(['?', '#']) {
        tail
    } else {
        tail.trim_end_matches('/')
    };
    format!(
        "{}://{user}{}{tail}",
        scheme.to_ascii_lowercase(),
        host.to_ascii_lowercase()
    )
}

/// The digest naming one remote object, whichever declaration or connection refers to it: the
/// API (normalised URL), the corp, and the object's identity within the corp. Two declarations
/// with equal digests would write the same object.
pub fn claim_digest(api_url: &str, corp: &str, identity: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in [normalize_url(api_url).as_str(), corp]
        .into_iter()
        .chain(identity.iter().copied())
    {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    hex::encode(hasher.finalize())
}

/// Which declared object a change comes from: `Kind namespace/name`, and for one object
/// declared on several sites (an AgentAlert with `sites`) the site of this part of it:
/// `Kind namespace/name[site]`, so each site's remote object has its own identity.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Address {
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
    pub site: Option<String>,
}

impl Address {
    pub fn new(
        kind: impl Into<String>,
        namespace: Option<&str>,
        name: impl Into<String>,
    ) -> Address {
        Address {
            kind: kind.into(),
            namespace: namespace.map(str::to_string),
            name: name.into(),
            site: None,
        }
    }

    /// The part of this object declared on `site`.
    pub fn on_site(&self, site: impl Into<String>) -> Address {
        Address {
            site: Some(site.into()),
            ..self.clone()
        }
    }

    /// The whole object (its manifest), without the site of a part.
    pub fn object(&self) -> Address {
        Address {
            site: None,
            ..self.clone()
        }
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(namespace) => write!(f, "{} {namespace}/{}", self.kind, self.name)?,
            None => write!(f, "{} {}", self.kind, self.name)?,
        }
        match &self.site {
            Some(site) => write!(f, "[{site}]"),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_compare_without_cosmetic_differences() {
        let same = [
            (
                "https://Hooks.Slack.test/T/B/x/",
                "https://hooks.slack.test/T/B/x",
            ),
            ("HTTPS://hooks.slack.test", "https://hooks.slack.test/"),
            (" https://a.test/p?q=1 ", "https://a.test/p?q=1"),
        ];
        for (a, b) in same {
            assert_eq!(normalize_url(a), normalize_url(b), "{a} vs {b}");
        }
        assert_ne!(
            normalize_url("https://a.test/T/B/X"),
            normalize_url("https://a.test/T/B/x"),
            "paths keep their case"
        );
        assert_eq!(
            normalize_url("https://User:Pw@A.test/x"),
            "https://User:Pw@a.test/x"
        );
        assert_eq!(
            claim_digest("https://API.test/", "corp", &["alert", "site-1"]),
            claim_digest("https://api.test", "corp", &["alert", "site-1"])
        );
        assert_ne!(
            claim_digest("https://api.test", "corp", &["alert", "site-1"]),
            claim_digest("https://api.test", "corp2", &["alert", "site-1"])
        );
    }
}

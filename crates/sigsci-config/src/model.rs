//! The closed vocabularies of declared configuration, spelled as in the manifests.

use std::fmt;

use serde::{Deserialize, Serialize};

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

/// Which declared object a change comes from: `Kind namespace/name`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Address {
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
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
        }
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(namespace) => write!(f, "{} {namespace}/{}", self.kind, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

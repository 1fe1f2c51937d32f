//! Integrations: declared settings, the remote view, and the per-integration diff.

use std::collections::{BTreeMap, BTreeSet};

use sha2::{Digest, Sha256};

use crate::change::{Change, FieldDiff, IntegrationChange, Op, Shown};
use crate::model::{
    Address, IntegrationDeletionPolicy, IntegrationType, Location, ManagementPolicy, UrlKind,
    claim_digest, normalize_url,
};
use crate::sensitive::Sensitive;
use crate::validate::{Problems, check_site_name, is_email_address, is_https_url};

/// An `Integration` as declared, with values from Secrets already resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct DesiredIntegration {
    pub address: Address,
    pub location: Location,
    pub kind: IntegrationType,
    /// Empty for types without a URL (datadog).
    pub url: Sensitive,
    pub events: Vec<String>,
    /// Per-type extras (datadog `site`, `apiKey`); the API never returns them.
    pub fields: BTreeMap<String, Sensitive>,
    /// `ObserveOnly`: planned to show how the remote integration differs, never applied.
    pub management: ManagementPolicy,
    /// The remote id recorded by an earlier apply, if any.
    pub remote_id: Option<String>,
}

/// An integration as the API lists it.
#[derive(Clone, Debug, PartialEq)]
pub struct ObservedIntegration {
    pub id: String,
    pub kind: String,
    pub url: Sensitive,
    pub events: Vec<String>,
    /// Digest of the `fields` last written by us ([`fields_digest`]); `None` when unknowable
    /// (no record kept), in which case fields are not compared.
    pub fields_digest: Option<String>,
}

/// The integration fields sent on create and update.
#[derive(Clone, Debug, PartialEq)]
pub struct IntegrationSettings {
    pub kind: IntegrationType,
    pub url: Sensitive,
    pub events: Vec<String>,
    pub fields: BTreeMap<String, Sensitive>,
}

impl IntegrationSettings {
    pub fn shown_fields(&self) -> Vec<(&'static str, Shown)> {
        let mut shown = vec![
            ("type", Shown::json(self.kind.as_str())),
            ("url", show_url(self.kind, &self.url)),
            ("events", Shown::json(canonical_events(&self.events))),
        ];
        if !self.fields.is_empty() {
            shown.push(("fields", Shown::Sensitive));
        }
        shown
    }

    /// Digest of `fields`, recorded after a write so a later change (e.g. a rotated API key)
    /// is detected although the API never returns the fields. Empty when there are none.
    pub fn fields_digest(&self) -> String {
        fields_digest(&self.fields)
    }
}

/// SHA-256 over the sorted fields; "" for no fields.
pub fn fields_digest(fields: &BTreeMap<String, Sensitive>) -> String {
    if fields.is_empty() {
        return String::new();
    }
    let mut hasher = Sha256::new();
    for (key, value) in fields {
        hasher.update(key.as_bytes());
        hasher.update([0]);
        hasher.update(value.expose().as_bytes());
        hasher.update([0]);
    }
    hex::encode(hasher.finalize())
}

impl DesiredIntegration {
    pub fn settings(&self) -> IntegrationSettings {
        IntegrationSettings {
            kind: self.kind,
            url: self.url.clone(),
            events: canonical_events(&self.events),
            fields: self.fields.clone(),
        }
    }

    /// What two declarations of one remote integration share, through any connection to the
    /// same API and corp: where it is, its type and its URL as compared (see [`claim_digest`];
    /// the digest never shows the URL).
    pub fn claim_key(&self, api_url: &str, corp: &str) -> String {
        let location = self.location.to_string();
        let url = comparable_url(self.kind, &self.url);
        claim_digest(
            api_url,
            corp,
            &["integration", &location, self.kind.as_str(), &url],
        )
    }

    /// What the API would reject, named field by field.
    pub fn validate(&self) -> Result<(), Problems> {
        let mut problems = Problems::default();
        match &self.location {
            Location::Site(site) => check_site_name(&mut problems, "site", site),
            Location::Corp if !self.kind.allowed_at_corp() => problems.push(
                "type",
                format!(
                    "{} is not available for corp integrations (mailingList, slack, microsoftTeams, microsoftTeamsWorkflow)",
                    self.kind
                ),
            ),
            Location::Corp => {}
        }
        let url = self.url.expose();
        match self.kind.url_kind() {
            UrlKind::Webhook if !is_https_url(url) => {
                // The value may be a secret: say what is wrong without echoing it.
                problems.push(
                    "url",
                    format!("{} integrations need an https:// webhook URL", self.kind),
                );
            }
            UrlKind::EmailAddress if !is_email_address(url) => {
                problems.push(
                    "url",
                    format!("mailingList needs an e-mail address, got {url:?}"),
                );
            }
            UrlKind::None if !url.is_empty() => {
                problems.push(
                    "url",
                    format!("{} integrations take no url; use fields", self.kind),
                );
            }
            _ => {}
        }
        if self.kind == IntegrationType::Datadog {
            for key in ["site", "apiKey"] {
                if self.fields.get(key).is_none_or(Sensitive::is_empty) {
                    problems.push("fields", format!("datadog needs fields.{key}"));
                }
            }
        }
        if self.events.iter().any(|event| event.trim().is_empty()) {
            problems.push("events", "event names must not be empty");
        }
        let documented = self.location.documented_events();
        for event in &self.events {
            if !event.trim().is_empty() && !documented.contains(&event.as_str()) {
                let scope = match self.location {
                    Location::Site(_) => "site",
                    Location::Corp => "corp",
                };
                problems.push(
                    "events",
                    format!(
                        "{event:?} is not a {scope} integration event (one of {})",
                        documented.join(", ")
                    ),
                );
            }
        }
        problems.into_result()
    }
}

/// The remote integration a declaration refers to, among those not already `claimed`: the
/// recorded id if it still exists with the same type, else one of the same type and URL, compared
/// normalised (an existing identical integration is adopted instead of duplicated).
pub fn find_integration<'a>(
    desired: &DesiredIntegration,
    observed: &'a [ObservedIntegration],
    claimed: &BTreeSet<String>,
) -> Option<&'a ObservedIntegration> {
    let kind = desired.kind.as_str();
    let free = || {
        observed
            .iter()
            .filter(|candidate| candidate.kind == kind && !claimed.contains(&candidate.id))
    };
    desired
        .remote_id
        .as_deref()
        .and_then(|id| free().find(|candidate| candidate.id == id))
        .or_else(|| free().find(|candidate| same_url(desired.kind, &candidate.url, &desired.url)))
}

/// The change that makes `current` (or its absence) match the declaration, if any.
pub fn plan_integration_against(
    desired: &DesiredIntegration,
    current: Option<&ObservedIntegration>,
) -> Option<Change> {
    let settings = desired.settings();
    let op = match current {
        None => Op::Create(settings),
        Some(current) => {
            let diffs = integration_diffs(current, &settings);
            if diffs.is_empty() {
                return None;
            }
            Op::Update {
                id: current.id.clone(),
                diffs,
                desired: settings,
            }
        }
    };
    Some(Change::Integration(IntegrationChange {
        address: desired.address.clone(),
        location: desired.location.clone(),
        kind: desired.kind.as_str().to_string(),
        op,
    }))
}

/// The change that makes the listed integrations match one declaration, if any.
pub fn plan_integration(
    desired: &DesiredIntegration,
    observed: &[ObservedIntegration],
) -> Option<Change> {
    plan_integration_against(
        desired,
        find_integration(desired, observed, &BTreeSet::new()),
    )
}

/// The change that removing a declaration calls for under its deletion policy. Only the
/// recorded id is deleted: adopting by URL is fine for updates, not for deletes (and needs no
/// Secret values, which may be gone by then).
pub fn plan_integration_removal(
    address: &Address,
    location: &Location,
    remote_id: Option<&str>,
    observed: &[ObservedIntegration],
    policy: IntegrationDeletionPolicy,
) -> Option<Change> {
    if policy == IntegrationDeletionPolicy::Orphan {
        return None;
    }
    let current = observed
        .iter()
        .find(|candidate| Some(candidate.id.as_str()) == remote_id)?;
    Some(Change::Integration(IntegrationChange {
        address: address.clone(),
        location: location.clone(),
        kind: current.kind.clone(),
        op: Op::Delete {
            id: current.id.clone(),
        },
    }))
}

fn integration_diffs(
    current: &ObservedIntegration,
    desired: &IntegrationSettings,
) -> Vec<FieldDiff> {
    let mut diffs = Vec::new();
    if !same_url(desired.kind, &current.url, &desired.url) {
        diffs.push(FieldDiff {
            field: "url",
            before: show_url(desired.kind, &current.url),
            after: show_url(desired.kind, &desired.url),
        });
    }
    let before_events = canonical_events(&current.events);
    if before_events != desired.events {
        diffs.push(FieldDiff {
            field: "events",
            before: Shown::json(before_events),
            after: Shown::json(&desired.events),
        });
    }
    if let Some(recorded) = &current.fields_digest
        && *recorded != desired.fields_digest()
    {
        diffs.push(FieldDiff {
            field: "fields",
            before: if recorded.is_empty() {
                Shown::Absent
            } else {
                Shown::Sensitive
            },
            after: if desired.fields.is_empty() {
                Shown::Absent
            } else {
                Shown::Sensitive
            },
        });
    }
    diffs
}

/// A URL as compared: webhooks normalised ([`normalize_url`]), e-mail addresses with the
/// domain in lower case.
fn comparable_url(kind: IntegrationType, url: &Sensitive) -> String {
    let url = url.expose().trim();
    match kind.url_kind() {
        UrlKind::Webhook => normalize_url(url),
        UrlKind::EmailAddress => match url.rsplit_once('@') {
            Some((local, domain)) => format!("{local}@{}", domain.to_ascii_lowercase()),
            None => url.to_string(),
        },
        UrlKind::None => url.to_string(),
    }
}

/// Whether two URLs name the same target, cosmetic differences aside.
fn same_url(kind: IntegrationType, a: &Sensitive, b: &Sensitive) -> bool {
    comparable_url(kind, a) == comparable_url(kind, b)
}

/// Webhook URLs are credentials; e-mail addresses are shown.
fn show_url(kind: IntegrationType, url: &Sensitive) -> Shown {
    match kind.url_kind() {
        _ if url.is_empty() => Shown::Absent,
        UrlKind::EmailAddress => Shown::json(url.expose()),
        UrlKind::Webhook | UrlKind::None => Shown::Sensitive,
    }
}

/// Events compare as a set: sorted, without duplicates.
fn canonical_events(events: &[String]) -> Vec<String> {
    events
        .iter()
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::change::Verb;

    fn slack() -> DesiredIntegration {
        DesiredIntegration {
            address: Address::new("Integration", Some("team-a"), "slack"),
            location: Location::Site("site-1".into()),
            kind: IntegrationType::Slack,
            url: Sensitive::new("https://hooks.slack.test/T/B/secret"),
            events: vec!["flag".into(), "agentAlert".into()],
            fields: BTreeMap::new(),
            management: ManagementPolicy::Full,
            remote_id: None,
        }
    }

    fn remote(id: &str, kind: &str, url: &str, events: &[&str]) -> ObservedIntegration {
        ObservedIntegration {
            id: id.into(),
            kind: kind.into(),
            url: Sensitive::new(url),
            events: events.iter().map(|e| e.to_string()).collect(),
            fields_digest: None,
        }
    }

    #[test]
    fn absent_integration_is_created_with_sorted_events() {
        match plan_integration(&slack(), &[]) {
            Some(Change::Integration(IntegrationChange {
                op: Op::Create(settings),
                ..
            })) => {
                assert_eq!(settings.events, vec!["agentAlert", "flag"]);
                assert_eq!(settings.shown_fields()[1], ("url", Shown::Sensitive));
            }
            other => panic!("expected a create, got {other:?}"),
        }
    }

    #[test]
    fn identical_integration_is_adopted_without_change() {
        let existing = remote(
            "i1",
            "slack",
            "https://hooks.slack.test/T/B/secret",
            &["flag", "agentAlert"],
        );
        assert_eq!(plan_integration(&slack(), &[existing]), None);
    }

    #[test]
    fn cosmetic_url_and_event_differences_are_no_change() {
        let existing = remote(
            "i1",
            "slack",
            "https://HOOKS.slack.test/T/B/secret/",
            &["agentAlert", "flag", "flag"],
        );
        assert_eq!(plan_integration(&slack(), &[existing]), None);
        let mut mail = slack();
        mail.kind = IntegrationType::MailingList;
        mail.url = Sensitive::new("ops@Example.COM");
        let listed = remote(
            "m1",
            "mailingList",
            "ops@example.com",
            &["agentAlert", "flag"],
        );
        assert_eq!(plan_integration(&mail, &[listed]), None);
        assert_eq!(
            slack().claim_key("https://api.test/", "corp"),
            DesiredIntegration {
                url: Sensitive::new("https://hooks.SLACK.test/T/B/secret"),
                ..slack()
            }
            .claim_key("https://API.test", "corp")
        );
        let other = DesiredIntegration {
            url: Sensitive::new("https://hooks.slack.test/T/B/other"),
            ..slack()
        };
        assert_ne!(
            slack().claim_key("https://api.test", "corp"),
            other.claim_key("https://api.test", "corp")
        );
    }

    #[test]
    fn recorded_id_is_updated_with_redacted_url_diff() {
        let mut desired = slack();
        desired.remote_id = Some("i1".into());
        let existing = remote("i1", "slack", "https://hooks.slack.test/T/B/old", &["flag"]);
        match plan_integration(&desired, &[existing]) {
            Some(Change::Integration(IntegrationChange {
                op: Op::Update { id, diffs, .. },
                ..
            })) => {
                assert_eq!(id, "i1");
                assert_eq!(
                    diffs,
                    vec![
                        FieldDiff {
                            field: "url",
                            before: Shown::Sensitive,
                            after: Shown::Sensitive
                        },
                        FieldDiff {
                            field: "events",
                            before: Shown::Value(r#"["flag"]"#.into()),
                            after: Shown::Value(r#"["agentAlert","flag"]"#.into())
                        },
                    ]
                );
            }
            other => panic!("expected an update, got {other:?}"),
        }
    }

    #[test]
    fn recorded_id_of_another_type_is_not_reused() {
        let mut desired = slack();
        desired.remote_id = Some("i1".into());
        let other_type = remote(
            "i1",
            "generic",
            "https://hooks.slack.test/T/B/secret",
            &["flag"],
        );
        assert_eq!(
            plan_integration(&desired, &[other_type]).map(|c| c.verb()),
            Some(Verb::Create)
        );
    }

    #[test]
    fn write_only_fields_are_compared_by_recorded_digest() {
        let mut desired = DesiredIntegration {
            kind: IntegrationType::Datadog,
            url: Sensitive::new(""),
            fields: BTreeMap::from([
                ("apiKey".to_string(), Sensitive::new("key-1")),
                ("site".to_string(), Sensitive::new("us1")),
            ]),
            ..slack()
        };
        desired.events = vec!["agentAlert".into()];
        let digest = desired.settings().fields_digest();
        let mut existing = remote("d1", "datadog", "", &["agentAlert"]);
        existing.fields_digest = None;
        assert_eq!(
            plan_integration(&desired, &[existing.clone()]),
            None,
            "unknowable fields are not compared"
        );
        existing.fields_digest = Some(digest);
        assert_eq!(plan_integration(&desired, &[existing.clone()]), None);
        desired
            .fields
            .insert("apiKey".into(), Sensitive::new("key-2"));
        let change = plan_integration(&desired, &[existing]);
        assert!(
            matches!(&change, Some(Change::Integration(IntegrationChange { op: Op::Update { diffs, .. }, .. }))
                if diffs.len() == 1 && diffs[0].field == "fields" && diffs[0].after == Shown::Sensitive),
            "{change:?}"
        );
    }

    #[test]
    fn removal_deletes_only_the_recorded_id() {
        let existing = [remote(
            "i1",
            "slack",
            "https://hooks.slack.test/T/B/secret",
            &[],
        )];
        let desired = slack();
        let remove = |id: Option<&str>, observed: &[ObservedIntegration], policy| {
            plan_integration_removal(&desired.address, &desired.location, id, observed, policy)
                .map(|c| c.verb())
        };
        assert_eq!(
            remove(None, &existing, IntegrationDeletionPolicy::Delete),
            None
        );
        assert_eq!(
            remove(Some("i1"), &existing, IntegrationDeletionPolicy::Orphan),
            None
        );
        assert_eq!(
            remove(Some("i1"), &existing, IntegrationDeletionPolicy::Delete),
            Some(Verb::Delete)
        );
        assert_eq!(
            remove(Some("i1"), &[], IntegrationDeletionPolicy::Delete),
            None
        );
    }

    #[test]
    fn validation_rules() {
        let mut bad = slack();
        bad.url = Sensitive::new("http://hooks.slack.test/secret");
        let text = bad.validate().expect_err("http webhook").to_string();
        assert!(
            text.contains("url: slack integrations need an https:// webhook URL"),
            "{text}"
        );
        assert!(!text.contains("secret"), "the URL is not echoed: {text}");

        let mut corp = slack();
        corp.location = Location::Corp;
        corp.events = vec!["newSite".into()];
        assert!(corp.validate().is_ok());
        corp.kind = IntegrationType::Pagerduty;
        assert!(
            corp.validate()
                .expect_err("pagerduty at corp")
                .to_string()
                .starts_with("type: pagerduty")
        );

        let mut mail = slack();
        mail.kind = IntegrationType::MailingList;
        mail.url = Sensitive::new("not-an-address");
        assert!(
            mail.validate()
                .expect_err("bad address")
                .to_string()
                .contains("e-mail address")
        );
        mail.url = Sensitive::new("ops@example.com");
        assert!(mail.validate().is_ok());

        let mut events = slack();
        events.events = vec!["flag".into(), "agentAlerts".into(), "newSite".into()];
        assert_eq!(
            events.validate().expect_err("unknown events").to_string(),
            "events: \"agentAlerts\" is not a site integration event (one of flag, agentAlert, loggingModeChanged, listCreated, webhookEvents); \
             events: \"newSite\" is not a site integration event (one of flag, agentAlert, loggingModeChanged, listCreated, webhookEvents)"
        );
        events.location = Location::Corp;
        events.events = vec!["newSite".into(), "flag".into()];
        assert_eq!(
            events
                .validate()
                .expect_err("site event at corp")
                .to_string(),
            "events: \"flag\" is not a corp integration event (one of newSite, enableSSO, corpUpdated, listDeleted, webhookEvents)"
        );
        events.events = vec!["newSite".into(), "webhookEvents".into()];
        assert!(events.validate().is_ok());

        let datadog = DesiredIntegration {
            kind: IntegrationType::Datadog,
            url: Sensitive::new(""),
            ..slack()
        };
        assert_eq!(
            datadog.validate().expect_err("no fields").to_string(),
            "fields: datadog needs fields.site; fields: datadog needs fields.apiKey"
        );
    }
}

//! Agent alerts: declared settings, the remote view, and the per-alert diff.

use crate::change::{AlertChange, Change, FieldDiff, Op, Shown};
use crate::model::{
    Address, AlertDeletionPolicy, ManagementPolicy, Metric, ThresholdOperator, claim_digest,
};
use crate::validate::{Problems, check_site_name};

/// Intervals (minutes) the API accepts for agent alerts.
pub const ALERT_INTERVALS: [i64; 3] = [5, 10, 60];
/// Inclusive threshold range the API accepts for agent alerts.
pub const ALERT_THRESHOLD_RANGE: (i64, i64) = (0, 3_600_000);
/// `action` and `fieldName` every agent alert carries.
pub const AGENT_ALERT_ACTION: &str = "siteMetricInfo";
pub const AGENT_ALERT_FIELD_NAME: &str = "siteMetric";

/// An `AgentAlert` as declared.
#[derive(Clone, Debug, PartialEq)]
pub struct DesiredAlert {
    pub address: Address,
    pub site: String,
    pub metric: Metric,
    pub operator: ThresholdOperator,
    pub threshold: i64,
    pub interval: i64,
    pub enabled: bool,
    pub skip_notifications: bool,
    /// `ObserveOnly`: planned to show how the remote alert differs, never applied.
    pub management: ManagementPolicy,
    /// The remote id recorded by an earlier apply, if any.
    pub remote_id: Option<String>,
}

/// A site alert as the API lists it (only what the diff needs).
#[derive(Clone, Debug, PartialEq)]
pub struct ObservedAlert {
    pub id: String,
    pub tag_name: String,
    pub long_name: String,
    pub operator: String,
    pub threshold: i64,
    pub interval: i64,
    pub enabled: bool,
    pub skip_notifications: bool,
}

/// The alert fields sent on create and update.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlertSettings {
    pub tag_name: String,
    pub long_name: String,
    pub operator: String,
    pub threshold: i64,
    pub interval: i64,
    pub enabled: bool,
    pub skip_notifications: bool,
}

impl AlertSettings {
    /// Every field with its value, for showing a create.
    pub fn shown_fields(&self) -> Vec<(&'static str, Shown)> {
        vec![
            ("tagName", Shown::json(&self.tag_name)),
            ("longName", Shown::json(&self.long_name)),
            ("operator", Shown::json(&self.operator)),
            ("threshold", Shown::json(self.threshold)),
            ("interval", Shown::json(self.interval)),
            ("enabled", Shown::json(self.enabled)),
            ("skipNotifications", Shown::json(self.skip_notifications)),
        ]
    }
}

impl DesiredAlert {
    pub fn tag_name(&self) -> &'static str {
        self.metric.tag_name()
    }

    /// One declaration per site for an object declared on several sites (`sites`: the corp's
    /// sites for `all`, or the list as given), each addressed `Kind ns/name[site]` so that its
    /// remote id, state record and removal are its own.
    pub fn on_sites(&self, sites: &[String]) -> Vec<DesiredAlert> {
        sites
            .iter()
            .map(|site| DesiredAlert {
                address: self.address.on_site(site.as_str()),
                site: site.clone(),
                ..self.clone()
            })
            .collect()
    }

    /// What the API would reject, named field by field.
    pub fn validate(&self) -> Result<(), Problems> {
        let mut problems = Problems::default();
        check_site_name(&mut problems, "site", &self.site);
        if !ALERT_INTERVALS.contains(&self.interval) {
            problems.push(
                "interval",
                format!(
                    "must be one of 5, 10 or 60 (minutes), got {}",
                    self.interval
                ),
            );
        }
        let (low, high) = ALERT_THRESHOLD_RANGE;
        if !(low..=high).contains(&self.threshold) {
            problems.push(
                "threshold",
                format!("must be between {low} and {high}, got {}", self.threshold),
            );
        }
        problems.into_result()
    }

    /// The settings to send. `long_name` only matters on create, so an existing alert keeps its own.
    fn settings(&self, long_name: &str) -> AlertSettings {
        AlertSettings {
            tag_name: self.tag_name().to_string(),
            long_name: long_name.to_string(),
            operator: self.operator.as_str().to_string(),
            threshold: self.threshold,
            interval: self.interval,
            enabled: self.enabled,
            skip_notifications: self.skip_notifications,
        }
    }
}

impl ObservedAlert {
    fn settings(&self) -> AlertSettings {
        AlertSettings {
            tag_name: self.tag_name.clone(),
            long_name: self.long_name.clone(),
            operator: self.operator.clone(),
            threshold: self.threshold,
            interval: self.interval,
            enabled: self.enabled,
            skip_notifications: self.skip_notifications,
        }
    }
}

/// What two declarations of one site alert share, through any connection to the same API and
/// corp: the site and the metric's tag (see [`claim_digest`]).
pub fn claim_key(api_url: &str, corp: &str, site: &str, metric: Metric) -> String {
    claim_digest(api_url, corp, &["alert", site, metric.tag_name()])
}

/// What every declaration of one metric's alert on several sites shares, through any connection
/// to the same API and corp: with it, finding the objects that may claim a site's alert is one
/// selected list, whatever sites they name.
pub fn claim_sites_key(api_url: &str, corp: &str, metric: Metric) -> String {
    claim_digest(api_url, corp, &["alert-sites", metric.tag_name()])
}

/// The remote alert a declaration refers to: the recorded id if it still exists on this tag,
/// else the site's alert with the metric's tag name (the pre-seeded one is adopted).
pub fn find_alert<'a>(
    desired: &DesiredAlert,
    observed: &'a [ObservedAlert],
) -> Option<&'a ObservedAlert> {
    let tag = desired.tag_name();
    desired
        .remote_id
        .as_deref()
        .and_then(|id| {
            observed
                .iter()
                .find(|alert| alert.id == id && alert.tag_name == tag)
        })
        .or_else(|| observed.iter().find(|alert| alert.tag_name == tag))
}

/// The change that makes the site's alerts match the declaration, if any.
pub fn plan_alert(desired: &DesiredAlert, observed: &[ObservedAlert]) -> Option<Change> {
    let op = match find_alert(desired, observed) {
        None => Op::Create(desired.settings(desired.metric.long_name())),
        Some(current) => {
            let diffs = alert_diffs(&current.settings(), &desired.settings(&current.long_name));
            if diffs.is_empty() {
                return None;
            }
            Op::Update {
                id: current.id.clone(),
                diffs,
                desired: desired.settings(&current.long_name),
            }
        }
    };
    Some(Change::Alert(AlertChange {
        address: desired.address.clone(),
        site: desired.site.clone(),
        tag_name: desired.tag_name().to_string(),
        op,
    }))
}

/// The change that removing the declaration calls for under its deletion policy.
pub fn plan_alert_removal(
    desired: &DesiredAlert,
    observed: &[ObservedAlert],
    policy: AlertDeletionPolicy,
) -> Option<Change> {
    let current = find_alert(desired, observed)?;
    let op = match policy {
        AlertDeletionPolicy::Orphan => return None,
        AlertDeletionPolicy::Delete => Op::Delete {
            id: current.id.clone(),
        },
        AlertDeletionPolicy::Disable => {
            if !current.enabled {
                return None;
            }
            let before = current.settings();
            let after = AlertSettings {
                enabled: false,
                ..before.clone()
            };
            Op::Update {
                id: current.id.clone(),
                diffs: alert_diffs(&before, &after),
                desired: after,
            }
        }
    };
    Some(Change::Alert(AlertChange {
        address: desired.address.clone(),
        site: desired.site.clone(),
        tag_name: desired.tag_name().to_string(),
        op,
    }))
}

/// Differences in the fields a declaration manages (tag and long name are not managed).
fn alert_diffs(before: &AlertSettings, after: &AlertSettings) -> Vec<FieldDiff> {
    let mut diffs = Vec::new();
    let mut compare = |field: &'static str, before: Shown, after: Shown| {
        if before != after {
            diffs.push(FieldDiff {
                field,
                before,
                after,
            });
        }
    };
    compare(
        "operator",
        Shown::json(&before.operator),
        Shown::json(&after.operator),
    );
    compare(
        "threshold",
        Shown::json(before.threshold),
        Shown::json(after.threshold),
    );
    compare(
        "interval",
        Shown::json(before.interval),
        Shown::json(after.interval),
    );
    compare(
        "enabled",
        Shown::json(before.enabled),
        Shown::json(after.enabled),
    );
    compare(
        "skipNotifications",
        Shown::json(before.skip_notifications),
        Shown::json(after.skip_notifications),
    );
    diffs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::change::Verb;

    fn desired() -> DesiredAlert {
        DesiredAlert {
            address: Address::new("AgentAlert", Some("team-a"), "low-traffic"),
            site: "site-1".into(),
            metric: Metric::AverageRps,
            operator: ThresholdOperator::LessThan,
            threshold: 10,
            interval: 5,
            enabled: true,
            skip_notifications: false,
            management: ManagementPolicy::Full,
            remote_id: None,
        }
    }

    #[test]
    fn one_object_on_several_sites_is_one_declaration_per_site_each_with_its_address() {
        let sites = ["site-1".to_string(), "site-2".to_string()];
        let expanded = desired().on_sites(&sites);
        let shown: Vec<(String, String)> = expanded
            .iter()
            .map(|alert| (alert.address.to_string(), alert.site.clone()))
            .collect();
        assert_eq!(
            shown,
            [
                (
                    "AgentAlert team-a/low-traffic[site-1]".to_string(),
                    "site-1".to_string()
                ),
                (
                    "AgentAlert team-a/low-traffic[site-2]".to_string(),
                    "site-2".to_string()
                ),
            ]
        );
        assert_ne!(expanded[0].address, expanded[1].address);
        assert_eq!(expanded[1].address.object(), desired().address);
        assert_eq!(expanded[1].threshold, desired().threshold);
        // A change names the site's part of the object.
        let Some(Change::Alert(change)) = plan_alert(&expanded[1], &[]) else {
            panic!("a create")
        };
        assert_eq!(change.address, expanded[1].address);
        assert_eq!(change.site, "site-2");
        assert!(desired().on_sites(&[]).is_empty());
    }

    fn seeded(id: &str, tag: &str) -> ObservedAlert {
        ObservedAlert {
            id: id.into(),
            tag_name: tag.into(),
            long_name: "Seeded".into(),
            operator: "lessThan".into(),
            threshold: 10,
            interval: 5,
            enabled: false,
            skip_notifications: false,
        }
    }

    fn update_of(change: Option<Change>) -> (String, Vec<FieldDiff>, AlertSettings) {
        match change {
            Some(Change::Alert(AlertChange {
                op: Op::Update { id, diffs, desired },
                ..
            })) => (id, diffs, desired),
            other => panic!("expected an alert update, got {other:?}"),
        }
    }

    #[test]
    fn seeded_alert_is_adopted_and_patched_field_by_field() {
        let observed = [
            seeded("a1", "agent_scoreboards"),
            seeded("a2", "requests_total"),
        ];
        let mut alert = desired();
        alert.threshold = 25;
        let (id, diffs, settings) = update_of(plan_alert(&alert, &observed));
        assert_eq!(id, "a2");
        assert_eq!(
            diffs,
            vec![
                FieldDiff {
                    field: "threshold",
                    before: Shown::Value("10".into()),
                    after: Shown::Value("25".into())
                },
                FieldDiff {
                    field: "enabled",
                    before: Shown::Value("false".into()),
                    after: Shown::Value("true".into())
                },
            ]
        );
        assert_eq!(
            settings.long_name, "Seeded",
            "an adopted alert keeps its long name"
        );
        assert_eq!(settings.tag_name, "requests_total");
    }

    #[test]
    fn matching_alert_plans_nothing() {
        let mut observed = seeded("a2", "requests_total");
        observed.enabled = true;
        assert_eq!(plan_alert(&desired(), &[observed]), None);
    }

    #[test]
    fn absent_alert_is_created_with_the_metric_names() {
        let change = plan_alert(&desired(), &[seeded("a1", "agent_scoreboards")]);
        match change {
            Some(Change::Alert(AlertChange {
                op: Op::Create(settings),
                tag_name,
                ..
            })) => {
                assert_eq!(tag_name, "requests_total");
                assert_eq!(settings.long_name, "Average RPS");
                assert_eq!(settings.operator, "lessThan");
            }
            other => panic!("expected a create, got {other:?}"),
        }
    }

    #[test]
    fn recorded_id_wins_over_the_first_alert_with_the_tag() {
        let mut alert = desired();
        alert.remote_id = Some("second".into());
        let mut second = seeded("second", "requests_total");
        second.threshold = 99;
        let (id, _, _) = update_of(plan_alert(
            &alert,
            &[seeded("first", "requests_total"), second],
        ));
        assert_eq!(id, "second");
    }

    #[test]
    fn removal_follows_the_deletion_policy() {
        let mut enabled = seeded("a2", "requests_total");
        enabled.enabled = true;
        let observed = [enabled];
        assert_eq!(
            plan_alert_removal(&desired(), &observed, AlertDeletionPolicy::Orphan),
            None
        );
        let delete = plan_alert_removal(&desired(), &observed, AlertDeletionPolicy::Delete);
        assert!(
            matches!(delete, Some(Change::Alert(AlertChange { op: Op::Delete { ref id }, .. })) if id == "a2")
        );
        let (id, diffs, settings) = update_of(plan_alert_removal(
            &desired(),
            &observed,
            AlertDeletionPolicy::Disable,
        ));
        assert_eq!(
            (id.as_str(), diffs.len(), settings.enabled),
            ("a2", 1, false)
        );
        // Already disabled, or already gone: nothing to do.
        let disabled = [seeded("a2", "requests_total")];
        assert_eq!(
            plan_alert_removal(&desired(), &disabled, AlertDeletionPolicy::Disable),
            None
        );
        assert_eq!(
            plan_alert_removal(&desired(), &[], AlertDeletionPolicy::Delete),
            None
        );
        assert_eq!(delete.map(|c| c.verb()), Some(Verb::Delete));
    }

    #[test]
    fn validation_names_each_bad_field() {
        let mut alert = desired();
        alert.interval = 7;
        alert.threshold = -1;
        alert.site = "Site One".into();
        let problems = alert.validate().expect_err("three problems");
        let text = problems.to_string();
        assert!(
            text.contains("interval: must be one of 5, 10 or 60"),
            "{text}"
        );
        assert!(
            text.contains("threshold: must be between 0 and 3600000"),
            "{text}"
        );
        assert!(text.contains("site: "), "{text}");
        assert!(desired().validate().is_ok());
    }
}

//! The whole-configuration plan: every declaration against everything observed remotely.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};

use crate::alert::{DesiredAlert, ObservedAlert, plan_alert};
use crate::change::{Change, IntegrationChange, Op};
use crate::integration::{
    DesiredIntegration, ObservedIntegration, find_integration, plan_integration_against,
};
use crate::list::{DesiredList, ObservedList, find_list, plan_list};
use crate::model::Location;
use crate::validate::Problems;

/// Everything declared for one API connection.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DesiredState {
    pub alerts: Vec<DesiredAlert>,
    pub integrations: Vec<DesiredIntegration>,
    pub lists: Vec<DesiredList>,
}

/// Everything read from the API for the locations the declarations touch.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ObservedState {
    /// Alerts per site.
    pub alerts: BTreeMap<String, Vec<ObservedAlert>>,
    /// Integrations per site, and for the corp.
    pub integrations: BTreeMap<Location, Vec<ObservedIntegration>>,
    /// Lists per site, and for the corp.
    pub lists: BTreeMap<Location, Vec<ObservedList>>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PlanOptions {
    /// Delete remote integrations that no declaration matches, in every location that has at
    /// least one declared integration. Off by default: without it nothing is ever deleted.
    pub prune: bool,
    /// The time list entries' expiry is judged against.
    pub now: DateTime<Utc>,
}

impl DesiredState {
    /// Sites whose alerts or integrations are declared.
    pub fn sites(&self) -> BTreeSet<String> {
        let alert_sites = self.alerts.iter().map(|alert| alert.site.clone());
        let integration_sites =
            self.integrations
                .iter()
                .filter_map(|integration| match &integration.location {
                    Location::Site(site) => Some(site.clone()),
                    Location::Corp => None,
                });
        alert_sites.chain(integration_sites).collect()
    }

    /// Locations that have at least one declared integration.
    pub fn integration_locations(&self) -> BTreeSet<Location> {
        self.integrations
            .iter()
            .map(|integration| integration.location.clone())
            .collect()
    }

    /// Locations that have at least one declared list.
    pub fn list_locations(&self) -> BTreeSet<Location> {
        self.lists
            .iter()
            .map(|list| list.location.clone())
            .collect()
    }

    /// Every declaration's own problems, plus two declarations fighting over one alert or list.
    pub fn validate(&self) -> Result<(), Problems> {
        let mut problems = Problems::default();
        let mut owners = BTreeMap::new();
        for alert in &self.alerts {
            if let Err(found) = alert.validate() {
                for problem in found.0 {
                    problems.push(
                        format!("{} spec.{}", alert.address, problem.field),
                        problem.message,
                    );
                }
            }
            if let Some(first) = owners.insert((alert.site.clone(), alert.metric), &alert.address) {
                problems.push(
                    alert.address.to_string(),
                    format!(
                        "declares the same {} alert of site {} as {first}",
                        alert.metric.as_str(),
                        alert.site
                    ),
                );
            }
        }
        for integration in &self.integrations {
            if let Err(found) = integration.validate() {
                for problem in found.0 {
                    problems.push(
                        format!("{} spec.{}", integration.address, problem.field),
                        problem.message,
                    );
                }
            }
        }
        let mut list_owners = BTreeMap::new();
        for list in &self.lists {
            if let Err(found) = list.validate() {
                for problem in found.0 {
                    problems.push(
                        format!("{} spec.{}", list.address, problem.field),
                        problem.message,
                    );
                }
            }
            let key = (list.location.clone(), list.name.to_lowercase());
            if let Some(first) = list_owners.insert(key, &list.address) {
                problems.push(
                    list.address.to_string(),
                    format!(
                        "declares the same list {:?} of the {} as {first}",
                        list.name, list.location
                    ),
                );
            }
        }
        problems.into_result()
    }
}

/// The changes that make the remote state match the declarations, alerts first, in
/// declaration order; pruned deletions last. A declared list whose remote namesake has another
/// type is an error: no change could fix it.
pub fn plan(
    desired: &DesiredState,
    observed: &ObservedState,
    options: PlanOptions,
) -> Result<Vec<Change>, Problems> {
    let no_alerts = Vec::new();
    let mut changes: Vec<Change> = desired
        .alerts
        .iter()
        .filter_map(|alert| {
            plan_alert(
                alert,
                observed.alerts.get(&alert.site).unwrap_or(&no_alerts),
            )
        })
        .collect();

    let no_integrations = Vec::new();
    let mut claimed: BTreeMap<&Location, BTreeSet<String>> = BTreeMap::new();
    for integration in &desired.integrations {
        let listed = observed
            .integrations
            .get(&integration.location)
            .unwrap_or(&no_integrations);
        let taken = claimed.entry(&integration.location).or_default();
        let current = find_integration(integration, listed, taken);
        if let Some(current) = current {
            taken.insert(current.id.clone());
        }
        changes.extend(plan_integration_against(integration, current));
    }

    if options.prune {
        for location in desired.integration_locations() {
            let taken = claimed.get(&location);
            let listed = observed
                .integrations
                .get(&location)
                .unwrap_or(&no_integrations);
            for orphan in listed
                .iter()
                .filter(|i| taken.is_none_or(|taken| !taken.contains(&i.id)))
            {
                changes.push(Change::Integration(IntegrationChange {
                    address: None,
                    location: location.clone(),
                    kind: orphan.kind.clone(),
                    op: Op::Delete {
                        id: orphan.id.clone(),
                    },
                }));
            }
        }
    }

    let no_lists = Vec::new();
    let mut problems = Problems::default();
    for list in &desired.lists {
        let listed = observed.lists.get(&list.location).unwrap_or(&no_lists);
        match plan_list(list, find_list(list, listed), options.now) {
            Ok(change) => changes.extend(change),
            Err(found) => {
                for problem in found.0 {
                    problems.push(
                        format!("{} spec.{}", list.address, problem.field),
                        problem.message,
                    );
                }
            }
        }
    }
    problems.into_result().map(|()| changes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::change::{Summary, Verb};
    use crate::model::{Address, IntegrationType, Metric, ThresholdOperator};
    use crate::sensitive::Sensitive;

    fn alert(name: &str, site: &str, metric: Metric, threshold: i64) -> DesiredAlert {
        DesiredAlert {
            address: Address::new("AgentAlert", Some("ops"), name),
            site: site.into(),
            metric,
            operator: ThresholdOperator::LessThan,
            threshold,
            interval: 10,
            enabled: true,
            skip_notifications: false,
            remote_id: None,
        }
    }

    fn seeded(id: &str, tag: &str, threshold: i64) -> ObservedAlert {
        ObservedAlert {
            id: id.into(),
            tag_name: tag.into(),
            long_name: tag.into(),
            operator: "lessThan".into(),
            threshold,
            interval: 10,
            enabled: true,
            skip_notifications: false,
        }
    }

    fn hook(name: &str, location: Location, url: &str) -> DesiredIntegration {
        DesiredIntegration {
            address: Address::new("Integration", Some("ops"), name),
            location,
            kind: IntegrationType::Slack,
            url: Sensitive::new(url),
            events: vec!["flag".into()],
            fields: BTreeMap::new(),
            remote_id: None,
        }
    }

    fn listed(id: &str, url: &str) -> ObservedIntegration {
        ObservedIntegration {
            id: id.into(),
            kind: "slack".into(),
            url: Sensitive::new(url),
            events: vec!["flag".into()],
            fields_digest: None,
        }
    }

    struct Case {
        name: &'static str,
        desired: DesiredState,
        observed: ObservedState,
        prune: bool,
        expected: Vec<(Verb, &'static str)>,
    }

    fn verbs(changes: &[Change]) -> Vec<(Verb, String)> {
        changes
            .iter()
            .map(|change| {
                let subject = match change {
                    Change::Alert(c) => format!("{}:{}", c.site, c.tag_name),
                    Change::Integration(c) => match &c.op {
                        Op::Delete { id } => format!("{}:{id}", c.location),
                        _ => c
                            .address
                            .as_ref()
                            .map(|a| a.name.clone())
                            .unwrap_or_default(),
                    },
                    Change::List(c) => c.name.clone(),
                };
                (change.verb(), subject)
            })
            .collect()
    }

    #[test]
    fn table() {
        let site = |s: &str| Location::Site(s.into());
        let cases = vec![
            Case {
                name: "converged",
                desired: DesiredState {
                    alerts: vec![alert("a", "s1", Metric::AverageRps, 10)],
                    integrations: vec![hook("h", site("s1"), "https://h/1")],
                    ..DesiredState::default()
                },
                observed: ObservedState {
                    alerts: BTreeMap::from([(
                        "s1".into(),
                        vec![seeded("x", "requests_total", 10)],
                    )]),
                    integrations: BTreeMap::from([(site("s1"), vec![listed("i1", "https://h/1")])]),
                    ..ObservedState::default()
                },
                prune: true,
                expected: vec![],
            },
            Case {
                name: "site never listed: create everything",
                desired: DesiredState {
                    alerts: vec![alert("a", "s2", Metric::OnlineAgentCount, 0)],
                    integrations: vec![hook("h", site("s2"), "https://h/1")],
                    ..DesiredState::default()
                },
                observed: ObservedState::default(),
                prune: false,
                expected: vec![(Verb::Create, "s2:agent_scoreboards"), (Verb::Create, "h")],
            },
            Case {
                name: "two declarations never adopt the same integration",
                desired: DesiredState {
                    alerts: vec![],
                    integrations: vec![
                        hook("first", site("s1"), "https://h/1"),
                        hook("second", site("s1"), "https://h/1"),
                    ],
                    ..DesiredState::default()
                },
                observed: ObservedState {
                    integrations: BTreeMap::from([(site("s1"), vec![listed("i1", "https://h/1")])]),
                    ..ObservedState::default()
                },
                prune: false,
                expected: vec![(Verb::Create, "second")],
            },
            Case {
                name: "prune deletes undeclared integrations only where integrations are declared",
                desired: DesiredState {
                    alerts: vec![alert("a", "s1", Metric::AverageRps, 20)],
                    integrations: vec![hook("h", site("s1"), "https://h/1")],
                    ..DesiredState::default()
                },
                observed: ObservedState {
                    alerts: BTreeMap::from([(
                        "s1".into(),
                        vec![seeded("x", "requests_total", 10)],
                    )]),
                    integrations: BTreeMap::from([
                        (
                            site("s1"),
                            vec![listed("i1", "https://h/1"), listed("i2", "https://h/2")],
                        ),
                        (site("s9"), vec![listed("i9", "https://h/9")]),
                    ]),
                    ..ObservedState::default()
                },
                prune: true,
                expected: vec![
                    (Verb::Update, "s1:requests_total"),
                    (Verb::Delete, "site s1:i2"),
                ],
            },
            Case {
                name: "without prune nothing is deleted",
                desired: DesiredState {
                    alerts: vec![],
                    integrations: vec![hook("h", Location::Corp, "https://h/1")],
                    ..DesiredState::default()
                },
                observed: ObservedState {
                    integrations: BTreeMap::from([(
                        Location::Corp,
                        vec![listed("c1", "https://h/other")],
                    )]),
                    ..ObservedState::default()
                },
                prune: false,
                expected: vec![(Verb::Create, "h")],
            },
        ];
        for case in cases {
            let changes = plan(
                &case.desired,
                &case.observed,
                PlanOptions {
                    prune: case.prune,
                    now: DateTime::UNIX_EPOCH,
                },
            )
            .expect("no list problems");
            let expected: Vec<(Verb, String)> = case
                .expected
                .iter()
                .map(|(v, s)| (*v, s.to_string()))
                .collect();
            assert_eq!(verbs(&changes), expected, "case {:?}", case.name);
            assert_eq!(
                Summary::of(&changes).is_empty(),
                expected.is_empty(),
                "case {:?}",
                case.name
            );
        }
    }

    #[test]
    fn validate_reports_duplicates_and_field_problems_with_addresses() {
        let mut bad = alert("b", "s1", Metric::AverageRps, 10);
        bad.interval = 3;
        let desired = DesiredState {
            alerts: vec![alert("a", "s1", Metric::AverageRps, 10), bad],
            ..DesiredState::default()
        };
        let text = desired.validate().expect_err("two problems").to_string();
        assert!(
            text.contains("AgentAlert ops/b spec.interval: must be one of 5, 10 or 60"),
            "{text}"
        );
        assert!(
            text.contains("AgentAlert ops/b: declares the same averageRPS alert of site s1 as AgentAlert ops/a"),
            "{text}"
        );
        assert_eq!(
            desired.sites(),
            BTreeSet::from(["s1".to_string()]),
            "sites are collected from every declaration"
        );
    }
}

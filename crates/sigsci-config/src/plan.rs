//! The whole-configuration plan: every declaration against everything observed remotely.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};

use crate::alert::{DesiredAlert, ObservedAlert, find_alert, plan_alert};
use crate::change::Change;
use crate::integration::{
    DesiredIntegration, ObservedIntegration, find_integration, plan_integration_against,
};
use crate::list::{DesiredList, ObservedList, find_list, list_difference};
use crate::model::{Address, Location, ManagementPolicy};
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
    /// The time list entries' expiry is judged against.
    pub now: DateTime<Utc>,
}

/// The locations whose remote objects a plan reads.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reads {
    pub alert_sites: BTreeSet<String>,
    pub integration_locations: BTreeSet<Location>,
    pub list_locations: BTreeSet<Location>,
}

impl DesiredState {
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

    /// What planning these declarations reads remotely.
    pub fn reads(&self) -> Reads {
        Reads {
            alert_sites: self.alerts.iter().map(|alert| alert.site.clone()).collect(),
            integration_locations: self.integration_locations(),
            list_locations: self.list_locations(),
        }
    }

    /// Whether the declaration at `address` is `ObserveOnly`.
    pub fn observes_only(&self, address: &Address) -> bool {
        let observe_only = ManagementPolicy::ObserveOnly;
        self.alerts
            .iter()
            .any(|alert| alert.address == *address && alert.management == observe_only)
            || self.integrations.iter().any(|integration| {
                integration.address == *address && integration.management == observe_only
            })
            || self
                .lists
                .iter()
                .any(|list| list.address == *address && list.management == observe_only)
    }

    /// Every declaration's own problems. Two declarations claiming one remote object are
    /// [`crate::claims::check_claims`]'s to find, across connections.
    pub fn validate(&self) -> Result<(), Problems> {
        let mut problems = Problems::default();
        for alert in &self.alerts {
            if let Err(found) = alert.validate() {
                for problem in found.0 {
                    problems.push(
                        format!("{} spec.{}", alert.address, problem.field),
                        problem.message,
                    );
                }
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
        for list in &self.lists {
            if let Err(found) = list.validate() {
                for problem in found.0 {
                    problems.push(
                        format!("{} spec.{}", list.address, problem.field),
                        problem.message,
                    );
                }
            }
        }
        problems.into_result()
    }
}

/// The remote integration each declaration refers to, in declaration order: two declarations
/// never adopt the same one.
fn integration_matches<'a>(
    desired: &DesiredState,
    observed: &'a ObservedState,
) -> Vec<Option<&'a ObservedIntegration>> {
    let mut claimed: BTreeMap<&Location, BTreeSet<String>> = BTreeMap::new();
    desired
        .integrations
        .iter()
        .map(|integration| {
            let listed = observed
                .integrations
                .get(&integration.location)
                .map(Vec::as_slice)
                .unwrap_or_default();
            let taken = claimed.entry(&integration.location).or_default();
            let current = find_integration(integration, listed, taken);
            if let Some(current) = current {
                taken.insert(current.id.clone());
            }
            current
        })
        .collect()
}

/// The remote id each declaration refers to before any change: what an apply records for the
/// declarations it leaves unchanged or updates (a create's id comes from the API).
pub fn bindings(desired: &DesiredState, observed: &ObservedState) -> BTreeMap<Address, String> {
    let mut bound = BTreeMap::new();
    for alert in &desired.alerts {
        let listed = observed
            .alerts
            .get(&alert.site)
            .map(Vec::as_slice)
            .unwrap_or_default();
        if let Some(current) = find_alert(alert, listed) {
            bound.insert(alert.address.clone(), current.id.clone());
        }
    }
    for (integration, current) in desired
        .integrations
        .iter()
        .zip(integration_matches(desired, observed))
    {
        if let Some(current) = current {
            bound.insert(integration.address.clone(), current.id.clone());
        }
    }
    for list in &desired.lists {
        let listed = observed
            .lists
            .get(&list.location)
            .map(Vec::as_slice)
            .unwrap_or_default();
        if let Some(current) = find_list(list, listed) {
            bound.insert(list.address.clone(), current.id.clone());
        }
    }
    bound
}

/// A plan split by management policy.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// What applying writes: the changes the `Full` declarations call for.
    pub changes: Vec<Change>,
    /// How the remote objects of `ObserveOnly` declarations differ from them, as the changes
    /// `Full` would make: reported, never applied.
    pub observe_only: Vec<Change>,
}

/// The changes that make the remote state match the `Full` declarations (see [`plan_split`]).
pub fn plan(
    desired: &DesiredState,
    observed: &ObservedState,
    options: PlanOptions,
) -> Result<Vec<Change>, Problems> {
    plan_split(desired, observed, options).map(|plan| plan.changes)
}

/// Every declaration against what is observed, alerts first, in declaration order. Nothing is
/// deleted here: removing what is no longer declared is [`crate::prune`]'s, from the record of
/// what earlier applies managed. A declared list whose remote namesake has another type is an
/// error: no change could fix it.
pub fn plan_split(
    desired: &DesiredState,
    observed: &ObservedState,
    options: PlanOptions,
) -> Result<Plan, Problems> {
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

    for (integration, current) in desired
        .integrations
        .iter()
        .zip(integration_matches(desired, observed))
    {
        changes.extend(plan_integration_against(integration, current));
    }

    let no_lists = Vec::new();
    let mut problems = Problems::default();
    for list in &desired.lists {
        let listed = observed.lists.get(&list.location).unwrap_or(&no_lists);
        match list_difference(list, find_list(list, listed), options.now) {
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
    problems.into_result()?;
    let (observe_only, changes) = changes
        .into_iter()
        .partition(|change| desired.observes_only(change.address()));
    Ok(Plan {
        changes,
        observe_only,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::change::{Op, Summary, Verb};
    use crate::fixtures::{alert, hook};
    use crate::model::Metric;

    /// List entries' expiry judged at the epoch: nothing has expired.
    const AT_EPOCH: PlanOptions = PlanOptions {
        now: DateTime::UNIX_EPOCH,
    };
    use crate::sensitive::Sensitive;

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
                        _ => c.address.name.clone(),
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
                expected: vec![(Verb::Create, "second")],
            },
            Case {
                name: "undeclared remote integrations are never deleted by the plan",
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
                expected: vec![(Verb::Update, "s1:requests_total")],
            },
            Case {
                name: "a hand-made corp integration stays",
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
                expected: vec![(Verb::Create, "h")],
            },
        ];
        for case in cases {
            let changes = plan(&case.desired, &case.observed, AT_EPOCH).expect("no list problems");
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
    fn validate_reports_field_problems_with_addresses() {
        let mut bad = alert("b", "s1", Metric::AverageRps, 10);
        bad.interval = 3;
        let desired = DesiredState {
            alerts: vec![alert("a", "s2", Metric::AverageRps, 10), bad],
            integrations: vec![hook("h", Location::Site("s3".into()), "https://h/1")],
            ..DesiredState::default()
        };
        let text = desired.validate().expect_err("one problem").to_string();
        assert_eq!(
            text,
            "AgentAlert ops/b spec.interval: must be one of 5, 10 or 60 (minutes), got 3"
        );
        let reads = desired.reads();
        assert_eq!(
            reads.alert_sites,
            BTreeSet::from(["s1".to_string(), "s2".to_string()])
        );
        assert_eq!(
            reads.integration_locations,
            BTreeSet::from([Location::Site("s3".into())])
        );
        assert!(reads.list_locations.is_empty());
    }

    #[test]
    fn one_object_on_several_sites_binds_and_plans_each_site_under_its_own_address() {
        let sites = ["s1".to_string(), "s2".to_string()];
        let desired = DesiredState {
            alerts: alert("no-agents", "", Metric::OnlineAgentCount, 0).on_sites(&sites),
            ..DesiredState::default()
        };
        let observed = ObservedState {
            alerts: BTreeMap::from([
                ("s1".into(), vec![seeded("x1", "agent_scoreboards", 0)]),
                ("s2".into(), vec![seeded("x2", "agent_scoreboards", 5)]),
            ]),
            ..ObservedState::default()
        };
        let bound: Vec<(String, String)> = bindings(&desired, &observed)
            .into_iter()
            .map(|(address, id)| (address.to_string(), id))
            .collect();
        assert_eq!(
            bound,
            [
                ("AgentAlert ops/no-agents[s1]".to_string(), "x1".to_string()),
                ("AgentAlert ops/no-agents[s2]".into(), "x2".into()),
            ],
            "one id per site, none overwriting another"
        );
        let changes = plan(&desired, &observed, AT_EPOCH).expect("plans");
        assert_eq!(
            verbs(&changes),
            [(Verb::Update, "s2:agent_scoreboards".to_string())]
        );
        let text = crate::render::render_plan(&changes);
        assert!(
            text.contains("  # AgentAlert ops/no-agents[s2]: site s2 alert agent_scoreboards (id x2) will be updated in place\n"),
            "{text}"
        );
    }

    #[test]
    fn bindings_name_the_remote_object_of_each_declaration() {
        let site = |s: &str| Location::Site(s.into());
        let desired = DesiredState {
            alerts: vec![
                alert("a", "s1", Metric::AverageRps, 10),
                alert("new", "s2", Metric::AverageRps, 10),
            ],
            integrations: vec![
                hook("first", site("s1"), "https://h/1"),
                hook("second", site("s1"), "https://h/1"),
            ],
            ..DesiredState::default()
        };
        let observed = ObservedState {
            alerts: BTreeMap::from([("s1".into(), vec![seeded("x", "requests_total", 10)])]),
            integrations: BTreeMap::from([(site("s1"), vec![listed("i1", "https://h/1")])]),
            ..ObservedState::default()
        };
        let bound: Vec<(String, String)> = bindings(&desired, &observed)
            .into_iter()
            .map(|(address, id)| (address.name, id))
            .collect();
        assert_eq!(
            bound,
            [
                ("a".to_string(), "x".to_string()),
                ("first".into(), "i1".into())
            ],
            "the second declaration of one URL is created, never bound to the first's"
        );
    }

    #[test]
    fn observe_only_declarations_are_planned_apart_and_never_applied() {
        let site = |s: &str| Location::Site(s.into());
        let watched = DesiredAlert {
            management: ManagementPolicy::ObserveOnly,
            ..alert("watched", "s1", Metric::AverageRps, 25)
        };
        let hook_watched = DesiredIntegration {
            management: ManagementPolicy::ObserveOnly,
            ..hook("watched-hook", site("s1"), "https://h/new")
        };
        let desired = DesiredState {
            alerts: vec![watched, alert("managed", "s2", Metric::AverageRps, 10)],
            integrations: vec![hook_watched],
            lists: vec![],
        };
        let observed = ObservedState {
            alerts: BTreeMap::from([("s1".into(), vec![seeded("x", "requests_total", 10)])]),
            ..ObservedState::default()
        };
        let split = plan_split(&desired, &observed, AT_EPOCH).expect("plans");
        assert_eq!(
            verbs(&split.changes),
            [(Verb::Create, "s2:requests_total".to_string())],
            "only the Full declaration is applied"
        );
        assert_eq!(
            verbs(&split.observe_only),
            [
                (Verb::Update, "s1:requests_total".to_string()),
                (Verb::Create, "watched-hook".to_string())
            ],
            "what differs from the ObserveOnly declarations, as Full would change it"
        );
        let applied = plan(&desired, &observed, AT_EPOCH).expect("plans");
        assert_eq!(applied, split.changes);

        let text = crate::prune::render_plan_with_removals(&[], &[], &split.observe_only);
        assert!(
            text.starts_with("No changes to apply.\n\nObserveOnly objects that differ"),
            "only ObserveOnly differences never read as a matching remote: {text}"
        );
        assert!(text.contains("# Integration ops/watched-hook:"), "{text}");
    }
}

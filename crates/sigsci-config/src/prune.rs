//! Removing what is no longer declared: only objects an earlier apply recorded as managed
//! ([`Managed`]), each under the deletion policy its declaration had. A remote object no
//! manifest ever declared is never among them.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::alert::AlertSettings;
use crate::change::{AlertChange, Change, FieldDiff, ListChange, Op, Shown, Summary};
use crate::integration::plan_integration_removal;
use crate::managed::{Managed, ManagedObject};
use crate::model::{Address, AlertDeletionPolicy, IntegrationDeletionPolicy};
use crate::plan::{DesiredState, ObservedState, Reads};
use crate::render::{render_change, render_observe_only, render_plan};

/// A recorded object no declaration claims any more.
#[derive(Clone, Debug, PartialEq)]
pub struct Removal {
    pub record: Managed,
    pub outcome: Outcome,
}

/// What the deletion policy calls for, given what the API holds now.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// A remote write: delete, or disable an alert.
    Write(Box<Change>),
    /// `Orphan`: the object stays as it is.
    Orphan,
    /// The recorded id is gone already.
    Gone,
    /// `Disable` of an alert already disabled.
    AlreadyDisabled,
}

impl Removal {
    pub fn change(&self) -> Option<&Change> {
        match &self.outcome {
            Outcome::Write(change) => Some(change.as_ref()),
            Outcome::Orphan | Outcome::Gone | Outcome::AlreadyDisabled => None,
        }
    }
}

impl Reads {
    /// Also read where a recorded object lives, to find it for its removal.
    pub fn add(&mut self, record: &Managed) {
        match &record.object {
            ManagedObject::AgentAlert { site, .. } => {
                self.alert_sites.insert(site.clone());
            }
            ManagedObject::Integration { .. } => {
                self.integration_locations.insert(record.object.location());
            }
            ManagedObject::SigSciList { .. } => {
                self.list_locations.insert(record.object.location());
            }
        }
    }
}

/// The removals for `records` (one API URL and corp) that no declaration in `desired` claims:
/// neither the same alert (site and metric), nor the same integration id (`bound`, from
/// [`crate::plan::bindings`]), nor the same list (location and name, or id). A declaration
/// renamed or moved to another file keeps its remote object.
pub fn plan_removals(
    records: &[Managed],
    desired: &DesiredState,
    bound: &BTreeMap<Address, String>,
    observed: &ObservedState,
) -> Vec<Removal> {
    records
        .iter()
        .filter(|record| !claimed(record, desired, bound))
        .map(|record| Removal {
            record: record.clone(),
            outcome: outcome(record, observed),
        })
        .collect()
}

fn claimed(record: &Managed, desired: &DesiredState, bound: &BTreeMap<Address, String>) -> bool {
    let bound_to_it = |address: &Address| bound.get(address) == Some(&record.remote_id);
    match &record.object {
        ManagedObject::AgentAlert { site, metric, .. } => desired
            .alerts
            .iter()
            .any(|alert| alert.site == *site && alert.metric == *metric),
        ManagedObject::Integration { .. } => desired
            .integrations
            .iter()
            .any(|integration| bound_to_it(&integration.address)),
        ManagedObject::SigSciList { list_name, .. } => {
            let location = record.object.location();
            desired.lists.iter().any(|list| {
                bound_to_it(&list.address)
                    || (list.location == location && list.name.eq_ignore_ascii_case(list_name))
            })
        }
    }
}

fn outcome(record: &Managed, observed: &ObservedState) -> Outcome {
    let address = record.address();
    let location = record.object.location();
    let id = record.remote_id.as_str();
    match &record.object {
        ManagedObject::AgentAlert {
            site,
            metric,
            deletion_policy,
            ..
        } => {
            let tag = metric.tag_name();
            // Only the recorded id: another alert with the tag was not ours.
            let current = observed
                .alerts
                .get(site)
                .and_then(|alerts| alerts.iter().find(|a| a.id == id && a.tag_name == tag));
            let Some(current) = current else {
                return Outcome::Gone;
            };
            let op = match deletion_policy {
                AlertDeletionPolicy::Orphan => return Outcome::Orphan,
                AlertDeletionPolicy::Disable if !current.enabled => {
                    return Outcome::AlreadyDisabled;
                }
                AlertDeletionPolicy::Disable => Op::Update {
                    id: current.id.clone(),
                    diffs: vec![FieldDiff {
                        field: "enabled",
                        before: Shown::json(true),
                        after: Shown::json(false),
                    }],
                    desired: AlertSettings {
                        tag_name: current.tag_name.clone(),
                        long_name: current.long_name.clone(),
                        operator: current.operator.clone(),
                        threshold: current.threshold,
                        interval: current.interval,
                        enabled: false,
                        skip_notifications: current.skip_notifications,
                    },
                },
                AlertDeletionPolicy::Delete => Op::Delete {
                    id: current.id.clone(),
                },
            };
            Outcome::Write(Box::new(Change::Alert(AlertChange {
                address,
                site: site.clone(),
                tag_name: tag.to_string(),
                op,
            })))
        }
        ManagedObject::Integration {
            deletion_policy, ..
        } => {
            let listed = observed
                .integrations
                .get(&location)
                .map(Vec::as_slice)
                .unwrap_or_default();
            if !listed.iter().any(|integration| integration.id == id) {
                return Outcome::Gone;
            }
            match plan_integration_removal(&address, &location, Some(id), listed, *deletion_policy)
            {
                Some(change) => Outcome::Write(Box::new(change)),
                None => Outcome::Orphan,
            }
        }
        ManagedObject::SigSciList {
            list_name,
            deletion_policy,
            ..
        } => {
            let exists = observed
                .lists
                .get(&location)
                .is_some_and(|lists| lists.iter().any(|list| list.id == id));
            match (exists, deletion_policy) {
                (false, _) => Outcome::Gone,
                (true, IntegrationDeletionPolicy::Orphan) => Outcome::Orphan,
                (true, IntegrationDeletionPolicy::Delete) => {
                    Outcome::Write(Box::new(Change::List(ListChange {
                        address,
                        location,
                        name: list_name.clone(),
                        op: Op::Delete { id: id.to_string() },
                    })))
                }
            }
        }
    }
}

/// The plan with the removals: each write under a line saying why, the others as notes (they
/// change nothing remotely), and the summary counting both; then the ObserveOnly differences.
pub fn render_plan_with_removals(
    changes: &[Change],
    removals: &[Removal],
    observe_only: &[Change],
) -> String {
    let writes: Vec<&Removal> = removals.iter().filter(|r| r.change().is_some()).collect();
    let mut out = if writes.is_empty() && changes.is_empty() && !observe_only.is_empty() {
        // The remote state does not match: the ObserveOnly differences follow.
        "No changes to apply.\n".to_string()
    } else if writes.is_empty() {
        render_plan(changes)
    } else {
        let mut out = String::from("sigsci-kit will perform the following actions:\n");
        for change in changes {
            out.push('\n');
            render_change(&mut out, change);
        }
        let mut all: Vec<Change> = changes.to_vec();
        for removal in &writes {
            let _ = writeln!(
                out,
                "\n  # {} is no longer declared (deletionPolicy {}): applied by `config apply --prune`",
                removal.record.address(),
                removal.record.object.policy()
            );
            if let Some(change) = removal.change() {
                render_change(&mut out, change);
                all.push(change.clone());
            }
        }
        let _ = writeln!(out, "\nPlan: {}.", Summary::of(&all));
        out
    };
    for removal in removals {
        let record = &removal.record;
        let what = match removal.outcome {
            Outcome::Write(_) => continue,
            Outcome::Orphan => "stays as it is (deletionPolicy Orphan)",
            Outcome::Gone => "no longer exists",
            Outcome::AlreadyDisabled => "is disabled already (deletionPolicy Disable)",
        };
        let _ = writeln!(
            out,
            "Note: {} is no longer declared; {} (id {}) {what}, and apply forgets it.",
            record.address(),
            record.object.describe(),
            record.remote_id
        );
    }
    out.push_str(&render_observe_only(observe_only));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{DesiredAlert, ObservedAlert};
    use crate::change::Verb;
    use crate::fixtures;
    use crate::integration::ObservedIntegration;
    use crate::list::ObservedList;
    use crate::model::{Location, Metric};
    use crate::plan::bindings;
    use crate::sensitive::Sensitive;

    fn record(name: &str, remote_id: &str, object: ManagedObject) -> Managed {
        Managed {
            api_url: "http://sim".into(),
            corp: "testcorp".into(),
            connection: "SigSciConnection ops/prod".into(),
            namespace: Some("ops".into()),
            name: name.into(),
            file: Some(format!("{name}.yaml")),
            remote_id: remote_id.into(),
            object,
        }
    }

    fn alert_record(name: &str, id: &str, metric: Metric, policy: AlertDeletionPolicy) -> Managed {
        record(
            name,
            id,
            ManagedObject::AgentAlert {
                site: "s1".into(),
                metric,
                deletion_policy: policy,
                per_site: false,
            },
        )
    }

    fn hook_record(name: &str, id: &str, policy: IntegrationDeletionPolicy) -> Managed {
        record(
            name,
            id,
            ManagedObject::Integration {
                site: Some("s1".into()),
                integration_type: "slack".into(),
                deletion_policy: policy,
            },
        )
    }

    fn observed_alert(id: &str, tag: &str, enabled: bool) -> ObservedAlert {
        ObservedAlert {
            id: id.into(),
            tag_name: tag.into(),
            long_name: tag.into(),
            operator: "lessThan".into(),
            threshold: 3,
            interval: 5,
            enabled,
            skip_notifications: false,
        }
    }

    fn observed_hook(id: &str) -> ObservedIntegration {
        ObservedIntegration {
            id: id.into(),
            kind: "slack".into(),
            url: Sensitive::new(format!("https://hooks.example/{id}")),
            events: vec!["flag".into()],
            fields_digest: None,
        }
    }

    fn observed() -> ObservedState {
        let site = Location::Site("s1".into());
        ObservedState {
            alerts: BTreeMap::from([(
                "s1".into(),
                vec![
                    observed_alert("a-rps", "requests_total", true),
                    observed_alert("a-agents", "agent_scoreboards", true),
                ],
            )]),
            integrations: BTreeMap::from([(
                site,
                vec![
                    observed_hook("i-kept"),
                    observed_hook("i-gone-from-manifests"),
                    observed_hook("i-orphan"),
                    observed_hook("i-by-hand"),
                ],
            )]),
            lists: BTreeMap::from([(
                Location::Corp,
                vec![ObservedList {
                    id: "corp.block".into(),
                    name: "block".into(),
                    list_type: "ip".into(),
                    description: String::new(),
                    entries: vec![],
                }],
            )]),
        }
    }

    fn outcomes(removals: &[Removal]) -> Vec<(String, Option<Verb>, &'static str)> {
        removals
            .iter()
            .map(|removal| {
                let kind = match removal.outcome {
                    Outcome::Write(_) => "write",
                    Outcome::Orphan => "orphan",
                    Outcome::Gone => "gone",
                    Outcome::AlreadyDisabled => "disabled already",
                };
                (
                    removal.record.name.clone(),
                    removal.change().map(Change::verb),
                    kind,
                )
            })
            .collect()
    }

    #[test]
    fn only_recorded_objects_nobody_declares_are_removed_under_their_policy() {
        // Still declared, under a new manifest name: the alert keeps its object.
        let renamed = DesiredAlert {
            interval: 5,
            ..fixtures::alert("rps-renamed", "s1", Metric::AverageRps, 3)
        };
        let kept = fixtures::hook(
            "kept",
            Location::Site("s1".into()),
            "https://hooks.example/i-kept",
        );
        let desired = DesiredState {
            alerts: vec![renamed],
            integrations: vec![kept],
            lists: vec![],
        };
        let observed = observed();
        let records = vec![
            alert_record(
                "rps",
                "a-rps",
                Metric::AverageRps,
                AlertDeletionPolicy::Delete,
            ),
            alert_record(
                "agents",
                "a-agents",
                Metric::OnlineAgentCount,
                AlertDeletionPolicy::Disable,
            ),
            hook_record("kept", "i-kept", IntegrationDeletionPolicy::Delete),
            hook_record(
                "dropped",
                "i-gone-from-manifests",
                IntegrationDeletionPolicy::Delete,
            ),
            hook_record("orphaned", "i-orphan", IntegrationDeletionPolicy::Orphan),
            hook_record(
                "deleted-by-hand",
                "i-vanished",
                IntegrationDeletionPolicy::Delete,
            ),
            record(
                "block",
                "corp.block",
                ManagedObject::SigSciList {
                    site: None,
                    list_name: "block".into(),
                    deletion_policy: IntegrationDeletionPolicy::Delete,
                },
            ),
        ];
        let bound = bindings(&desired, &observed);
        let removals = plan_removals(&records, &desired, &bound, &observed);
        assert_eq!(
            outcomes(&removals),
            [
                ("agents".to_string(), Some(Verb::Update), "write"),
                ("dropped".to_string(), Some(Verb::Delete), "write"),
                ("orphaned".to_string(), None, "orphan"),
                ("deleted-by-hand".to_string(), None, "gone"),
                ("block".to_string(), Some(Verb::Delete), "write"),
            ]
        );
        // The integration made by hand (i-by-hand) was never recorded: nothing names it.
        let text = render_plan_with_removals(&[], &removals, &[]);
        assert!(!text.contains("i-by-hand"), "{text}");
        for expected in [
            "  # AgentAlert ops/agents is no longer declared (deletionPolicy Disable): applied by `config apply --prune`\n  # AgentAlert ops/agents: site s1 alert agent_scoreboards (id a-agents) will be updated in place\n  ~ site s1 alert agent_scoreboards {\n      ~ enabled: true -> false\n    }\n",
            "  # Integration ops/dropped: site s1 slack integration (id i-gone-from-manifests) will be deleted\n",
            "  # SigSciList ops/block: corp list \"block\" (id corp.block) will be deleted\n",
            "\nPlan: 0 to create, 1 to change, 2 to delete.\n",
            "Note: Integration ops/orphaned is no longer declared; site s1 slack integration (id i-orphan) stays as it is (deletionPolicy Orphan), and apply forgets it.\n",
            "Note: Integration ops/deleted-by-hand is no longer declared; site s1 slack integration (id i-vanished) no longer exists, and apply forgets it.\n",
        ] {
            assert!(text.contains(expected), "{expected:?} not in:\n{text}");
        }
    }

    #[test]
    fn a_site_dropped_from_an_object_is_removed_on_that_site_only() {
        let on = |site: &str, id: &str| Managed {
            name: "agents".into(),
            file: Some("agents.yaml".into()),
            remote_id: id.into(),
            object: ManagedObject::AgentAlert {
                site: site.into(),
                metric: Metric::OnlineAgentCount,
                deletion_policy: AlertDeletionPolicy::Delete,
                per_site: true,
            },
            ..alert_record(
                "agents",
                id,
                Metric::OnlineAgentCount,
                AlertDeletionPolicy::Delete,
            )
        };
        let mut observed = observed();
        observed.alerts.insert(
            "s2".into(),
            vec![observed_alert("b-agents", "agent_scoreboards", true)],
        );
        let records = vec![on("s1", "a-agents"), on("s2", "b-agents")];
        // The object now lists s1 only.
        let kept = DesiredAlert {
            interval: 5,
            ..fixtures::alert("agents", "", Metric::OnlineAgentCount, 3)
        };
        let desired = DesiredState {
            alerts: kept.on_sites(&["s1".to_string()]),
            ..DesiredState::default()
        };
        let removals = plan_removals(
            &records,
            &desired,
            &bindings(&desired, &observed),
            &observed,
        );
        assert_eq!(removals.len(), 1);
        assert_eq!(
            removals[0].record.address().to_string(),
            "AgentAlert ops/agents[s2]"
        );
        let Some(Change::Alert(change)) = removals[0].change() else {
            panic!("an alert write")
        };
        assert_eq!(
            (change.site.as_str(), &change.op),
            (
                "s2",
                &Op::Delete {
                    id: "b-agents".into()
                }
            )
        );
        let text = render_plan_with_removals(&[], &removals, &[]);
        assert!(
            text.contains("  # AgentAlert ops/agents[s2] is no longer declared (deletionPolicy Delete): applied by `config apply --prune`\n  # AgentAlert ops/agents[s2]: site s2 alert agent_scoreboards (id b-agents) will be deleted\n"),
            "{text}"
        );
        // The object removed: every site's part goes, each under the policy.
        let removals = plan_removals(
            &records,
            &DesiredState::default(),
            &BTreeMap::new(),
            &observed,
        );
        let addresses: Vec<String> = removals
            .iter()
            .map(|removal| removal.record.address().to_string())
            .collect();
        assert_eq!(
            addresses,
            ["AgentAlert ops/agents[s1]", "AgentAlert ops/agents[s2]"]
        );
        assert!(
            removals
                .iter()
                .all(|r| r.change().map(Change::verb) == Some(Verb::Delete))
        );
    }

    #[test]
    fn an_alert_already_disabled_or_recreated_by_hand_is_left_alone() {
        let mut observed = observed();
        observed.alerts.insert(
            "s1".into(),
            vec![
                observed_alert("a-agents", "agent_scoreboards", false),
                // The recorded requests_total alert was deleted; this one was made by hand.
                observed_alert("a-by-hand", "requests_total", true),
            ],
        );
        let records = vec![
            alert_record(
                "agents",
                "a-agents",
                Metric::OnlineAgentCount,
                AlertDeletionPolicy::Disable,
            ),
            alert_record(
                "rps",
                "a-rps",
                Metric::AverageRps,
                AlertDeletionPolicy::Delete,
            ),
        ];
        let desired = DesiredState::default();
        let removals = plan_removals(&records, &desired, &BTreeMap::new(), &observed);
        assert_eq!(
            outcomes(&removals),
            [
                ("agents".to_string(), None, "disabled already"),
                ("rps".to_string(), None, "gone"),
            ]
        );
        let text = render_plan_with_removals(&[], &removals, &[]);
        assert!(
            text.starts_with("No changes. The remote configuration matches the manifests.\n"),
            "{text}"
        );
        let mut reads = Reads::default();
        for record in &records {
            reads.add(record);
        }
        assert_eq!(reads.alert_sites.len(), 1);
    }
}

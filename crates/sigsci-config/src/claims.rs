//! No fighting: one remote object, one declaration. Two declarations that claim the same alert
//! (site and metric), integration (location, type and URL: what the plan adopts by) or list
//! (location and name, case aside), through any connections that resolve to the same API URL and corp,
//! are refused before anything is read or written.

use std::collections::BTreeMap;

use crate::alert::claim_key;
use crate::model::{Address, claim_digest};
use crate::plan::DesiredState;
use crate::validate::Problems;

/// One connection's declarations and where they go.
#[derive(Clone, Copy, Debug)]
pub struct Claimant<'a> {
    pub api_url: &'a str,
    pub corp: &'a str,
    pub desired: &'a DesiredState,
}

/// Every pair of declarations claiming one remote object, the later one named first with its
/// file (`origin`), the earlier one as the holder. Objects are compared by the operator's claim
/// keys, so the CLI and the operator agree on what is one object; an integration's URL is part
/// of its key but never of a message (it may be a secret).
pub fn check_claims(
    claimants: &[Claimant<'_>],
    origin: impl Fn(&Address) -> Option<String>,
) -> Result<(), Problems> {
    let named = |address: &Address| match origin(address) {
        Some(file) => format!("{address} (in {file})"),
        None => address.to_string(),
    };
    let mut holders: BTreeMap<String, &Address> = BTreeMap::new();
    let mut problems = Problems::default();
    for claimant in claimants {
        let (api_url, corp) = (claimant.api_url, claimant.corp);
        let desired = claimant.desired;
        let alerts = desired.alerts.iter().map(|alert| {
            (
                &alert.address,
                claim_key(api_url, corp, &alert.site, alert.metric),
                format!(
                    "site {} alert {} ({})",
                    alert.site,
                    alert.metric.tag_name(),
                    alert.metric.as_str()
                ),
            )
        });
        let integrations = desired.integrations.iter().map(|integration| {
            let url = if integration.url.is_empty() {
                ""
            } else {
                " with the same URL"
            };
            (
                &integration.address,
                integration.claim_key(api_url, corp),
                format!(
                    "{} {} integration{url}",
                    integration.location, integration.kind
                ),
            )
        });
        let lists = desired.lists.iter().map(|list| {
            let location = list.location.to_string();
            let name = list.name.to_lowercase();
            (
                &list.address,
                claim_digest(api_url, corp, &["list", &location, &name]),
                format!("{location} list {:?}", list.name),
            )
        });
        for (address, key, object) in alerts.chain(integrations).chain(lists) {
            if let Some(holder) = holders.insert(key, address) {
                problems.push(
                    named(address),
                    format!(
                        "claims the {object} of corp {corp} at {api_url}, which {} already declares: one remote object can have one manifest",
                        named(holder)
                    ),
                );
            }
        }
    }
    problems.into_result()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::DesiredAlert;
    use crate::fixtures;
    use crate::integration::DesiredIntegration;
    use crate::list::{DesiredList, ListType};
    use crate::model::{Location, ManagementPolicy, Metric};

    fn alert(name: &str, site: &str, metric: Metric) -> DesiredAlert {
        fixtures::alert(name, site, metric, 1)
    }

    fn claimant<'a>(api_url: &'a str, corp: &'a str, desired: &'a DesiredState) -> Claimant<'a> {
        Claimant {
            api_url,
            corp,
            desired,
        }
    }

    /// Each problem as `field: message`, the way the CLI prints it.
    fn problem_lines(problems: &Problems) -> Vec<String> {
        problems
            .0
            .iter()
            .map(|p| format!("{}: {}", p.field, p.message))
            .collect()
    }

    fn hook(name: &str, url: &str) -> DesiredIntegration {
        fixtures::hook(name, Location::Site("s1".into()), url)
    }

    fn list(name: &str, list_name: &str) -> DesiredList {
        DesiredList {
            address: Address::new("SigSciList", Some("ops"), name),
            location: Location::Corp,
            name: list_name.into(),
            list_type: ListType::Ip,
            description: String::new(),
            entries: vec![],
            management: ManagementPolicy::Full,
            remote_id: None,
        }
    }

    fn files(address: &Address) -> Option<String> {
        Some(format!("{}.yaml", address.name))
    }

    #[test]
    fn distinct_objects_pass() {
        let a = DesiredState {
            alerts: vec![
                alert("rps", "s1", Metric::AverageRps),
                alert("agents", "s1", Metric::OnlineAgentCount),
            ],
            integrations: vec![
                hook("one", "https://hooks.example/1"),
                hook("two", "https://hooks.example/2"),
            ],
            lists: vec![list("block", "block")],
        };
        let other_corp = a.clone();
        let claimants = [
            claimant("https://api.example", "corp-a", &a),
            claimant("https://api.example", "corp-b", &other_corp),
        ];
        assert_eq!(check_claims(&claimants, files), Ok(()));
    }

    #[test]
    fn an_all_sites_object_and_a_single_site_object_conflict_on_their_common_site() {
        let sites = ["s1".to_string(), "s2".to_string()];
        let all = DesiredState {
            alerts: alert("every-site", "", Metric::OnlineAgentCount).on_sites(&sites),
            ..DesiredState::default()
        };
        let single = DesiredState {
            alerts: vec![
                alert("s2-agents", "s2", Metric::OnlineAgentCount),
                // Another metric on the same site is another remote alert.
                alert("s2-rps", "s2", Metric::AverageRps),
            ],
            ..DesiredState::default()
        };
        let claimants = [
            claimant("https://api.example", "corp-a", &all),
            claimant("https://api.example", "corp-a", &single),
        ];
        // Origins are per manifest: the site's part is found in its object's file.
        let origin = |address: &Address| Some(format!("{}.yaml", address.object().name));
        let problems = check_claims(&claimants, origin).expect_err("one conflict");
        assert_eq!(
            problem_lines(&problems),
            [
                "AgentAlert ops/s2-agents (in s2-agents.yaml): claims the site s2 alert agent_scoreboards (onlineAgentCount) of corp corp-a at https://api.example, which AgentAlert ops/every-site[s2] (in every-site.yaml) already declares: one remote object can have one manifest"
            ]
        );
        // The parts of one object never claim each other's sites.
        let alone = [claimants[0]];
        assert_eq!(check_claims(&alone, origin), Ok(()));
    }

    #[test]
    fn one_object_claimed_twice_across_connections_names_both_and_the_object() {
        let first = DesiredState {
            alerts: vec![alert("rps", "s1", Metric::AverageRps)],
            integrations: vec![hook("pager", "https://hooks.example/very-secret")],
            lists: vec![list("block", "Blocked")],
        };
        let second = DesiredState {
            alerts: vec![alert("rps-again", "s1", Metric::AverageRps)],
            integrations: vec![hook("pager-copy", "https://HOOKS.example/very-secret/")],
            lists: vec![list("block-copy", "blocked")],
        };
        // Two connections, one corp: the URL differs only in case and a trailing slash.
        let claimants = [
            claimant("https://API.example/", "corp-a", &first),
            claimant("https://api.example", "corp-a", &second),
        ];
        let problems = check_claims(&claimants, files).expect_err("three conflicts");
        assert_eq!(
            problem_lines(&problems),
            [
                "AgentAlert ops/rps-again (in rps-again.yaml): claims the site s1 alert requests_total (averageRPS) of corp corp-a at https://api.example, which AgentAlert ops/rps (in rps.yaml) already declares: one remote object can have one manifest",
                "Integration ops/pager-copy (in pager-copy.yaml): claims the site s1 slack integration with the same URL of corp corp-a at https://api.example, which Integration ops/pager (in pager.yaml) already declares: one remote object can have one manifest",
                "SigSciList ops/block-copy (in block-copy.yaml): claims the corp list \"blocked\" of corp corp-a at https://api.example, which SigSciList ops/block (in block.yaml) already declares: one remote object can have one manifest",
            ]
        );
        assert!(!problems.to_string().contains("very-secret"));
    }
}

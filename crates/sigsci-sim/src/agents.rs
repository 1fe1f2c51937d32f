//! Agent fleets: per-site agent lists (dotted-key records), controllable at run time.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::error::SimError;
use crate::extract::SitePath;
use crate::rng::{SplitMix, hash_str, mix};
use crate::state::SimState;
use crate::util::rfc3339;

/// Seconds covered by `agent.current_requests` (agents report every 30 s).
const REPORT_INTERVAL_SECS: f64 = 30.0;
/// Offline agents have not reported for at least this long, so `agent.active` (seen in the last 5 min) is false.
const OFFLINE_MIN_AGO_SECS: i64 = 3600;

/// `PUT /__sim/sites/{site}/agents`: all optional; omitted keys keep their value.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetUpdate {
    /// Number of agents (named `{site}-agent-{k}`).
    pub count: Option<usize>,
    /// How many of them are online (the first `online`).
    pub online: Option<usize>,
    /// Requests per second of the whole site, shared among online agents.
    pub rps: Option<f64>,
    /// Agent version.
    pub version: Option<String>,
    /// `agent.versions_behind`.
    pub versions_behind: Option<i64>,
    /// Seconds since online agents last reported.
    pub last_seen_ago_secs: Option<i64>,
    /// An explicit agent list (replaces the fleet).
    pub agents: Option<Vec<AgentUpdate>>,
}

/// One agent of an explicit fleet list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentUpdate {
    /// `agent.name`.
    pub name: String,
    /// `"online"` (default) or `"offline"`.
    pub status: Option<String>,
    /// Defaults to the fleet version.
    pub version: Option<String>,
    /// Defaults to the fleet value.
    pub versions_behind: Option<i64>,
    /// Defaults to the fleet value (online) or one hour (offline).
    pub last_seen_ago_secs: Option<i64>,
    /// This agent's requests per second; defaults to the fleet rps shared among online agents.
    pub rps: Option<f64>,
}

/// One simulated agent.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AgentSpec {
    name: String,
    online: bool,
    version: String,
    versions_behind: i64,
    last_seen_ago_secs: i64,
    current_requests: u64,
}

/// A site's fleet: the summary settings plus the resulting agents.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Fleet {
    count: usize,
    online: usize,
    rps: f64,
    version: String,
    versions_behind: i64,
    last_seen_ago_secs: i64,
    agents: Vec<AgentSpec>,
}

impl Fleet {
    /// Three online agents, current version.
    pub(crate) fn new(site: &str, rps: f64) -> Self {
        let mut fleet = Self {
            count: 3,
            online: 3,
            rps,
            version: "4.57.0".to_owned(),
            versions_behind: 0,
            last_seen_ago_secs: 15,
            agents: Vec::new(),
        };
        fleet.rebuild(site);
        fleet
    }

    fn rebuild(&mut self, site: &str) {
        let total = (self.rps * REPORT_INTERVAL_SECS).round() as u64;
        let online = self.online as u64;
        self.agents = (0..self.count)
            .map(|k| {
                let is_online = k < self.online;
                let current_requests = if is_online {
                    // Shares differ by at most one and sum to the total.
                    total / online + u64::from((k as u64) < total % online)
                } else {
                    0
                };
                AgentSpec {
                    name: format!("{site}-agent-{k}"),
                    online: is_online,
                    version: self.version.clone(),
                    versions_behind: self.versions_behind,
                    last_seen_ago_secs: if is_online {
                        self.last_seen_ago_secs
                    } else {
                        self.last_seen_ago_secs.max(OFFLINE_MIN_AGO_SECS)
                    },
                    current_requests,
                }
            })
            .collect();
    }

    pub(crate) fn apply(&mut self, site: &str, update: &FleetUpdate) -> Result<(), SimError> {
        let mut next = self.clone();
        if let Some(rps) = update.rps {
            if !rps.is_finite() || rps < 0.0 {
                return Err(SimError::bad_request("rps must be a non-negative number"));
            }
            next.rps = rps;
        }
        if let Some(version) = &update.version {
            next.version.clone_from(version);
        }
        if let Some(behind) = update.versions_behind {
            next.versions_behind = behind;
        }
        if let Some(ago) = update.last_seen_ago_secs {
            if ago < 0 {
                return Err(SimError::bad_request(
                    "last_seen_ago_secs must not be negative",
                ));
            }
            next.last_seen_ago_secs = ago;
        }
        if let Some(agents) = &update.agents {
            next.set_explicit(agents)?;
        } else {
            if let Some(count) = update.count {
                next.count = count;
                if update.online.is_none() {
                    next.online = next.online.min(count);
                }
            }
            if let Some(online) = update.online {
                next.online = online;
            }
            if next.online > next.count {
                return Err(SimError::bad_request(format!(
                    "online ({}) cannot exceed count ({})",
                    next.online, next.count
                )));
            }
            next.rebuild(site);
        }
        *self = next;
        Ok(())
    }

    fn set_explicit(&mut self, agents: &[AgentUpdate]) -> Result<(), SimError> {
        let mut online_flags = Vec::with_capacity(agents.len());
        for agent in agents {
            if agent.name.is_empty() {
                return Err(SimError::bad_request("agent name must not be empty"));
            }
            online_flags.push(match agent.status.as_deref() {
                None | Some("online") => true,
                Some("offline") => false,
                Some(other) => {
                    return Err(SimError::bad_request(format!(
                        "agent status must be \"online\" or \"offline\", got {other:?}"
                    )));
                }
            });
        }
        let online_count = online_flags.iter().filter(|o| **o).count();
        let shared_rps = if online_count == 0 {
            0.0
        } else {
            self.rps / online_count as f64
        };
        let mut specs = Vec::with_capacity(agents.len());
        for (agent, online) in agents.iter().zip(online_flags) {
            let rps = agent.rps.unwrap_or(if online { shared_rps } else { 0.0 });
            if !rps.is_finite() || rps < 0.0 {
                return Err(SimError::bad_request(format!(
                    "rps of agent {} must be a non-negative number",
                    agent.name
                )));
            }
            let default_ago = if online {
                self.last_seen_ago_secs
            } else {
                OFFLINE_MIN_AGO_SECS
            };
            let ago = agent.last_seen_ago_secs.unwrap_or(default_ago);
            if ago < 0 {
                return Err(SimError::bad_request(
                    "last_seen_ago_secs must not be negative",
                ));
            }
            specs.push(AgentSpec {
                name: agent.name.clone(),
                online,
                version: agent
                    .version
                    .clone()
                    .unwrap_or_else(|| self.version.clone()),
                versions_behind: agent.versions_behind.unwrap_or(self.versions_behind),
                last_seen_ago_secs: ago,
                current_requests: if online {
                    (rps * REPORT_INTERVAL_SECS).round() as u64
                } else {
                    0
                },
            });
        }
        self.count = specs.len();
        self.online = online_count;
        self.agents = specs;
        Ok(())
    }
}

/// The dotted-key agent record at simulator time `now`.
fn agent_json(agent: &AgentSpec, now: i64, started_at: i64) -> Value {
    let mut rng = SplitMix::new(mix(hash_str(&agent.name)));
    let last_seen = now - agent.last_seen_ago_secs;
    // Agents booted some days before the simulator started; uptime stops growing when offline.
    let boot = started_at - rng.range(86_400, 20 * 86_400) as i64;
    let uptime = (last_seen - boot).max(0);
    let requests = agent.current_requests;
    let total_requests = requests * (uptime as u64 / 30).max(1);
    let cpu = if agent.online {
        5.0 + rng.unit() * 30.0
    } else {
        0.0
    };
    let octet = |rng: &mut SplitMix| rng.range(1, 254);
    let mut object = Map::new();
    let mut put = |key: &str, value: Value| {
        object.insert(key.to_owned(), value);
    };
    put("agent.name", json!(agent.name));
    put(
        "agent.status",
        json!(if agent.online { "online" } else { "offline" }),
    );
    put("agent.active", json!(agent.online));
    put("agent.enabled", json!(true));
    put("agent.last_seen", json!(rfc3339(last_seen)));
    put("agent.timestamp", json!(last_seen));
    put(
        "agent.last_rule_update",
        json!(rfc3339(last_seen - rng.range(60, 7200) as i64)),
    );
    put("agent.rule_updates", json!(rng.range(1, 400)));
    put("agent.version", json!(agent.version));
    put("agent.versions_behind", json!(agent.versions_behind));
    put(
        "agent.build_id",
        json!(format!(
            "{:016x}{:016x}{:08x}",
            rng.next_u64(),
            rng.next_u64(),
            rng.next_u64() as u32
        )),
    );
    put("agent.args", json!("-config /etc/sigsci/agent.conf"));
    put("agent.addr", json!("unix:/var/run/sigsci.sock"));
    put("agent.cgroup", json!(""));
    put("agent.pid", json!(rng.range(300, 60_000)));
    put("agent.max_procs", json!(2));
    put("agent.uptime", json!(uptime));
    put("agent.timezone", json!("UTC"));
    put("agent.timezone_offset", json!(0));
    put("agent.current_requests", json!(requests));
    put(
        "agent.connections_open",
        json!(if agent.online { rng.range(1, 40) } else { 0 }),
    );
    put("agent.connections_total", json!(total_requests));
    put("agent.connections_dropped", json!(0));
    put("agent.decision_time_50th", json!(0.08 + rng.unit() * 0.05));
    put("agent.decision_time_95th", json!(0.3 + rng.unit() * 0.2));
    put("agent.decision_time_99th", json!(0.9 + rng.unit() * 0.6));
    put("agent.latency_time_50th", json!(0.2 + rng.unit() * 0.1));
    put("agent.latency_time_95th", json!(0.8 + rng.unit() * 0.4));
    put("agent.latency_time_99th", json!(2.0 + rng.unit() * 1.5));
    put("agent.rpc_prerequest", json!(total_requests));
    put("agent.rpc_postrequest", json!(total_requests / 20));
    put("agent.rpc_updaterequest", json!(total_requests / 50));
    put("agent.read_bytes", json!(total_requests * 900));
    put("agent.write_bytes", json!(total_requests * 120));
    put("agent.upload_size", json!(rng.range(1_000, 200_000)));
    put("agent.upload_metadata_failures", json!(0));
    put(
        "host.remote_addr",
        json!(format!(
            "10.{}.{}.{}",
            octet(&mut rng),
            octet(&mut rng),
            octet(&mut rng)
        )),
    );
    put("host.os", json!("linux"));
    put("host.architecture", json!("amd64"));
    put("host.instance_type", json!("m5.large"));
    put("host.num_cpu", json!(2));
    put("host.cpu_mhz", json!(2500));
    put("host.clock_skew", json!(0));
    put("host.cpu", json!(cpu));
    put("host.agent_cpu", json!(cpu / 10.0));
    put("module.detected", json!(true));
    put("module.type", json!("nginx"));
    put("module.server", json!("nginx/1.25.3"));
    put("module.version", json!("1.4.2"));
    put("module.versions_behind", json!(0));
    put("runtime.gc_pause_millis", json!(0.1 + rng.unit() * 0.5));
    put("mem_size", json!(rng.range(30_000_000, 120_000_000)));
    put("num_gc", json!(uptime / 120));
    put("num_goroutines", json!(rng.range(20, 80)));
    Value::Object(object)
}

fn find<'a>(fleet: &'a Fleet, name: &str) -> Result<&'a AgentSpec, SimError> {
    fleet
        .agents
        .iter()
        .find(|a| a.name == name)
        .ok_or_else(|| SimError::not_found(format!("agent {name} not found")))
}

fn fleet_of(state: &SimState, site: &str) -> Fleet {
    let store = state.store();
    store
        .fleets
        .get(site)
        .cloned()
        .unwrap_or_else(|| Fleet::new(site, 0.0))
}

/// `GET .../agents`.
pub(crate) async fn list(State(state): State<SimState>, path: SitePath) -> Json<Value> {
    let fleet = fleet_of(&state, &path.site);
    let now = state.now();
    let data: Vec<Value> = fleet
        .agents
        .iter()
        .map(|a| agent_json(a, now, state.inner.started_at))
        .collect();
    Json(json!({ "data": data }))
}

/// `GET .../agents/{name}`.
pub(crate) async fn get_one(
    State(state): State<SimState>,
    path: SitePath,
) -> Result<Json<Value>, SimError> {
    let fleet = fleet_of(&state, &path.site);
    let agent = find(&fleet, path.param("name"))?;
    Ok(Json(agent_json(agent, state.now(), state.inner.started_at)))
}

/// `GET .../agents/{name}/logs`.
pub(crate) async fn logs(
    State(state): State<SimState>,
    path: SitePath,
) -> Result<Json<Value>, SimError> {
    let fleet = fleet_of(&state, &path.site);
    let agent = find(&fleet, path.param("name"))?;
    let last_seen = state.now() - agent.last_seen_ago_secs;
    let mut entries = vec![
        (
            last_seen - 3600,
            "info",
            "Starting Signal Sciences Agent".to_owned(),
        ),
        (last_seen - 3590, "info", "Connected to upstream".to_owned()),
        (last_seen - 1800, "info", "Rules updated".to_owned()),
    ];
    if !agent.online {
        entries.push((
            last_seen,
            "error",
            "Lost connection to upstream: i/o timeout".to_owned(),
        ));
    }
    let logs: Vec<Value> = entries
        .into_iter()
        .map(|(at, level, message)| {
            json!({ "hostName": agent.name, "logLevel": level, "message": message, "createdAt": rfc3339(at) })
        })
        .collect();
    Ok(Json(
        json!({ "corp": path.corp, "site": path.site, "logs": logs }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn requests(fleet: &Fleet) -> Vec<u64> {
        fleet.agents.iter().map(|a| a.current_requests).collect()
    }

    #[test]
    fn default_fleet_shares_rps() {
        let fleet = Fleet::new("site-1", 50.0);
        assert_eq!(fleet.agents.len(), 3);
        assert_eq!(fleet.agents[0].name, "site-1-agent-0");
        assert_eq!(requests(&fleet).iter().sum::<u64>(), 1500);
        let record = agent_json(&fleet.agents[0], 1_700_000_000, 1_700_000_000);
        assert_eq!(record["agent.status"], "online");
        assert_eq!(record["agent.last_seen"], rfc3339(1_700_000_000 - 15));
        assert_eq!(record["agent.version"], "4.57.0");
    }

    #[test]
    fn summary_update_keeps_omitted_values() {
        let mut fleet = Fleet::new("site-1", 50.0);
        fleet
            .apply(
                "site-1",
                &FleetUpdate {
                    online: Some(1),
                    ..FleetUpdate::default()
                },
            )
            .unwrap();
        assert_eq!(requests(&fleet), [1500, 0, 0]);
        let offline = agent_json(&fleet.agents[2], 1_700_000_000, 1_700_000_000);
        assert_eq!(offline["agent.active"], false);
        assert_eq!(offline["agent.status"], "offline");
        fleet
            .apply(
                "site-1",
                &FleetUpdate {
                    rps: Some(2.0),
                    ..FleetUpdate::default()
                },
            )
            .unwrap();
        assert_eq!(requests(&fleet), [60, 0, 0]);
        let err = fleet
            .apply(
                "site-1",
                &FleetUpdate {
                    online: Some(4),
                    ..FleetUpdate::default()
                },
            )
            .unwrap_err();
        assert!(err.to_string().contains("cannot exceed"));
    }

    #[test]
    fn explicit_list() {
        let mut fleet = Fleet::new("site-1", 50.0);
        let update = FleetUpdate {
            agents: Some(vec![
                AgentUpdate {
                    name: "a".into(),
                    status: None,
                    version: Some("4.50.0".into()),
                    versions_behind: Some(7),
                    last_seen_ago_secs: None,
                    rps: Some(1.0),
                },
                AgentUpdate {
                    name: "b".into(),
                    status: Some("offline".into()),
                    version: None,
                    versions_behind: None,
                    last_seen_ago_secs: None,
                    rps: None,
                },
            ]),
            ..FleetUpdate::default()
        };
        fleet.apply("site-1", &update).unwrap();
        assert_eq!(requests(&fleet), [30, 0]);
        assert_eq!(fleet.agents[0].versions_behind, 7);
        assert_eq!(fleet.agents[1].last_seen_ago_secs, OFFLINE_MIN_AGO_SECS);
        let bad = FleetUpdate {
            agents: Some(vec![AgentUpdate {
                name: "c".into(),
                status: Some("zombie".into()),
                version: None,
                versions_behind: None,
                last_seen_ago_secs: None,
                rps: None,
            }]),
            ..FleetUpdate::default()
        };
        assert!(
            fleet
                .apply("site-1", &bad)
                .unwrap_err()
                .to_string()
                .contains("zombie")
        );
    }
}

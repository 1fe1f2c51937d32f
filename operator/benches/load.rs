//! The operator under load, printed as `figure` lines for tests/bench.sh: 1000 AgentAlert and
//! Integration objects across 50 sites, the simulator answering every call after 20 ms, on the
//! real kube-apiserver of the test bed (`SIGSCI_KIT_TEST_KUBECONFIG`).
//!
//! `load [OPERATOR-BINARY]` (default: the release `sigsci-operator` next to this benchmark's
//! directory). The operator runs as its own process, so its peak RSS (VmHWM) is its own. Figures:
//! seconds from the first create until every object is Ready; then, over one resync interval of
//! steady state, the API writes and the most list calls for any (site, kind), counted per
//! concrete path by a layer in front of the simulator (its own call log counts per template).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Resource, ResourceExt};
use serde_json::{Value, json};
use sigsci_operator::crd::{AgentAlert, Integration, SigSciConnection};
use sigsci_sim::{Faults, SimConfig, SimState};

const SITES: usize = 50;
/// Per site: one AgentAlert per metric (2) and 18 Integrations.
const INTEGRATIONS_PER_SITE: usize = 18;
const LATENCY_MS: u64 = 20;
/// The operator's resync period, and the steady-state window.
const RESYNC: Duration = Duration::from_secs(30);
const MANAGER: &str = "sigsci-kit-bench";
/// The account's API budget the operator runs with (`--api-rate`, calls per second). The first
/// sync of 1000 objects needs at least 1000 writes, so at the default of 50/s nothing could
/// be Ready within 20 s (24.7 s measured there); the bench states its budget instead.
const API_RATE: u32 = 100;

/// API calls by (method, concrete path).
#[derive(Clone, Default)]
struct Calls(Arc<Mutex<BTreeMap<(String, String), u64>>>);

impl Calls {
    fn take(&self) -> BTreeMap<(String, String), u64> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

async fn count(State(calls): State<Calls>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    if path.starts_with("/api/") {
        let key = (request.method().to_string(), path.to_string());
        *calls
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key)
            .or_default() += 1;
    }
    next.run(request).await
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let operator_binary = match std::env::args().nth(1) {
        Some(path) => PathBuf::from(path),
        None => std::env::current_exe()?
            .parent()
            .and_then(|deps| deps.parent())
            .context("benchmark path")?
            .join("sigsci-operator"),
    };
    let kubeconfig = std::env::var_os("SIGSCI_KIT_TEST_KUBECONFIG").context(
        "SIGSCI_KIT_TEST_KUBECONFIG is not set: tests/services.sh up DIR k8s, then source DIR/env",
    )?;
    let config = kube::Config::from_custom_kubeconfig(
        Kubeconfig::read_from(&kubeconfig)?,
        &KubeConfigOptions::default(),
    )
    .await?;
    let kube = kube::Client::try_from(config)?;
    install_crds(&kube).await?;

    // The simulator, served here so a layer can count calls per site.
    let state = SimState::new(SimConfig {
        sites: SITES,
        ..SimConfig::default()
    });
    state.set_faults(Faults {
        latency_ms: LATENCY_MS,
        ..Faults::default()
    })?;
    let calls = Calls::default();
    let app = sigsci_sim::app(state.clone())
        .layer(axum::middleware::from_fn_with_state(calls.clone(), count));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let sim_url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });

    let namespace = format!("load-bench-{}", std::process::id());
    setup_namespace(&kube, &namespace, &state, &sim_url).await?;

    let work = std::env::temp_dir().join(format!("sigsci-load-bench-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let log = std::fs::File::create(work.join("operator.log"))?;
    let mut operator = tokio::process::Command::new(&operator_binary)
        .args([
            "--watch-namespace",
            &namespace,
            "--leader-election",
            "false",
        ])
        .args(["--metrics-addr", "127.0.0.1:0", "--log-format", "json"])
        .args(["--resync-seconds", &RESYNC.as_secs().to_string()])
        .args(["--api-rate", &API_RATE.to_string()])
        .env("KUBECONFIG", &kubeconfig)
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start {}", operator_binary.display()))?;
    let pid = operator.id().context("operator pid")?;
    let result = measure(&kube, &namespace, &calls, pid).await;

    // Orphan policies: deleting the objects only releases finalizers.
    let _ = cleanup(&kube, &namespace).await;
    let _ = tokio::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .await;
    let _ = tokio::time::timeout(Duration::from_secs(15), operator.wait()).await;
    match &result {
        Ok(()) => {
            let _ = std::fs::remove_dir_all(&work);
        }
        Err(_) => eprintln!("load: the operator's log is in {}", work.display()),
    }
    result
}

async fn measure(
    kube: &kube::Client,
    namespace: &str,
    calls: &Calls,
    pid: u32,
) -> anyhow::Result<()> {
    let connections: Api<SigSciConnection> = Api::namespaced(kube.clone(), namespace);
    wait_for(
        "the connection to be Ready",
        Duration::from_secs(60),
        || async {
            let connection = connections.get("sim").await.ok()?;
            ready(&serde_json::to_value(connection).ok()?).then_some(())
        },
    )
    .await?;

    let objects = declarations();
    let total = objects.len();
    let requests_before = apiserver_requests(kube).await;
    let started = Instant::now();
    let alerts = dynamic::<AgentAlert>(kube, namespace);
    let integrations = dynamic::<Integration>(kube, namespace);
    futures::stream::iter(objects)
        .map(|object| {
            let api = if object["kind"] == "AgentAlert" {
                &alerts
            } else {
                &integrations
            };
            async move {
                let object: DynamicObject = serde_json::from_value(object)?;
                api.create(&PostParams::default(), &object).await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<()>>()
        .await?;
    let created = started.elapsed();
    wait_for(
        "every object to be Ready",
        Duration::from_secs(300),
        || async {
            let ready_alerts = count_ready(&alerts).await?;
            let ready_integrations = count_ready(&integrations).await?;
            (ready_alerts + ready_integrations == total).then_some(())
        },
    )
    .await?;
    let all_ready = started.elapsed();
    let requests_after = apiserver_requests(kube).await;
    // The calls until then: at the API budget (API_RATE calls/s) they set the floor.
    let ramp = calls.take();
    report_calls(&ramp);
    report_apiserver_requests(requests_before, requests_after);
    let ramp_lists: u64 = ramp
        .iter()
        .filter(|((method, _), _)| method == "GET")
        .map(|(_, n)| n)
        .sum();
    eprintln!(
        "load: {total} objects created in {:.1} s, all Ready after {:.1} s, {} API calls ({ramp_lists} reads) at an API budget of {API_RATE} calls/s",
        created.as_secs_f64(),
        all_ready.as_secs_f64(),
        ramp.values().sum::<u64>()
    );

    // Steady state: whatever the last status updates trigger settles first.
    tokio::time::sleep(Duration::from_secs(3)).await;
    calls.take();
    tokio::time::sleep(RESYNC).await;
    let steady = calls.take();
    let writes: u64 = steady
        .iter()
        .filter(|((method, _), _)| method != "GET")
        .map(|(_, n)| n)
        .sum();
    let lists: Vec<u64> = steady
        .iter()
        .filter(|((method, path), _)| {
            method == "GET" && (path.ends_with("/alerts") || path.ends_with("/integrations"))
        })
        .map(|(_, n)| *n)
        .collect();
    let max_lists = lists.iter().copied().max().unwrap_or(0);
    let all_calls: u64 = steady.values().sum();
    eprintln!(
        "load: steady state over {} s: {all_calls} API calls, {writes} writes, {} (site, kind) listed, at most {max_lists} times",
        RESYNC.as_secs(),
        lists.len()
    );
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let peak_kb: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .context("VmHWM of the operator")?;

    println!(
        "figure\tOperator: {total} objects across {SITES} sites, {LATENCY_MS} ms API latency: until all Ready (s)\t{:.1}\t<=\t20",
        all_ready.as_secs_f64()
    );
    println!(
        "figure\tOperator: API writes in one resync interval of steady state\t{writes}\t<=\t0"
    );
    println!(
        "figure\tOperator: lists per (site, kind) in one resync interval, most\t{max_lists}\t<=\t1"
    );
    println!(
        "figure\tOperator: peak RSS (MB)\t{:.1}\t<=\t50",
        peak_kb * 1024.0 / 1e6
    );
    Ok(())
}

/// The API calls of the ramp by method and kind (the last path segment of a list, the one before
/// an id otherwise), on stderr.
fn report_calls(calls: &BTreeMap<(String, String), u64>) {
    let mut by_kind: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    for ((method, path), n) in calls {
        let segments: Vec<&str> = path.trim_end_matches('/').rsplit('/').collect();
        let kind = match segments.as_slice() {
            [last, ..] if matches!(*last, "alerts" | "integrations") => *last,
            [_, kind, ..] => *kind,
            _ => path.as_str(),
        };
        *by_kind.entry((method.as_str(), kind)).or_default() += n;
    }
    let shown: Vec<String> = by_kind
        .iter()
        .map(|((method, kind), n)| format!("{method} {kind}: {n}"))
        .collect();
    eprintln!("load: API calls until all Ready: {}", shown.join(", "));
}

/// `apiserver_request_total` by verb, resource and subresource, from the apiserver's metrics
/// (empty without access to them). The bench's own requests are among them: its creates (one
/// POST per object) and its polls (a LIST per kind per second).
async fn apiserver_requests(kube: &kube::Client) -> BTreeMap<String, f64> {
    let request = http::Request::get("/metrics").body(Vec::new());
    let Ok(text) = (match request {
        Ok(request) => kube
            .request_text(request)
            .await
            .map_err(anyhow::Error::from),
        Err(error) => Err(error.into()),
    }) else {
        return BTreeMap::new();
    };
    let mut counts = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("apiserver_request_total{") else {
            continue;
        };
        let Some((labels, value)) = rest.rsplit_once("} ") else {
            continue;
        };
        let label = |name: &str| {
            labels
                .split(',')
                .find_map(|pair| pair.strip_prefix(&format!("{name}=\"")))
                .map(|value| value.trim_end_matches('"').to_string())
                .unwrap_or_default()
        };
        let resource = label("resource");
        if resource.is_empty() {
            continue;
        }
        let subresource = label("subresource");
        let key = if subresource.is_empty() {
            format!("{} {resource}", label("verb"))
        } else {
            format!("{} {resource}/{subresource}", label("verb"))
        };
        *counts.entry(key).or_default() += value.trim().parse::<f64>().unwrap_or(0.0);
    }
    counts
}

fn report_apiserver_requests(before: BTreeMap<String, f64>, after: BTreeMap<String, f64>) {
    let mut total = 0.0;
    let shown: Vec<String> = after
        .iter()
        .filter_map(|(key, n)| {
            let n = n - before.get(key).copied().unwrap_or(0.0);
            total += n;
            (n > 0.0).then(|| format!("{key}: {n}"))
        })
        .collect();
    eprintln!(
        "load: apiserver requests until all Ready (the bench's own included): {total}; {}",
        shown.join(", ")
    );
}

/// 2 AgentAlerts and 18 Integrations per site, built as JSON as a user writes them.
fn declarations() -> Vec<Value> {
    let mut objects = Vec::new();
    for site in 1..=SITES {
        for metric in ["averageRPS", "onlineAgentCount"] {
            objects.push(json!({
                "apiVersion": "sigsci-kit.io/v1alpha1",
                "kind": "AgentAlert",
                "metadata": {"name": format!("site-{site}-{}", metric.to_lowercase())},
                "spec": {
                    "connectionRef": {"name": "sim"},
                    "site": format!("site-{site}"),
                    "metric": metric,
                    "operator": "lessThan",
                    "threshold": 5,
                    "interval": 10,
                    "deletionPolicy": "Orphan",
                },
            }));
        }
        for hook in 1..=INTEGRATIONS_PER_SITE {
            objects.push(json!({
                "apiVersion": "sigsci-kit.io/v1alpha1",
                "kind": "Integration",
                "metadata": {"name": format!("site-{site}-hook-{hook}")},
                "spec": {
                    "connectionRef": {"name": "sim"},
                    "site": format!("site-{site}"),
                    "type": "slack",
                    "url": format!("https://hooks.slack.test/bench/site-{site}/{hook}"),
                    "events": ["flag"],
                    "deletionPolicy": "Orphan",
                },
            }));
        }
    }
    objects
}

fn dynamic<K: Resource<DynamicType = ()>>(
    kube: &kube::Client,
    namespace: &str,
) -> Api<DynamicObject> {
    Api::namespaced_with(kube.clone(), namespace, &ApiResource::erase::<K>(&()))
}

fn ready(object: &Value) -> bool {
    object["status"]["conditions"]
        .as_array()
        .is_some_and(|conditions| {
            conditions
                .iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

async fn count_ready(api: &Api<DynamicObject>) -> Option<usize> {
    let listed = api.list(&ListParams::default()).await.ok()?;
    Some(listed.items.iter().filter(|o| ready(&o.data)).count())
}

async fn wait_for<F, Fut>(what: &str, limit: Duration, mut check: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<()>>,
{
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if check().await.is_some() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    bail!("timed out waiting for {what}")
}

async fn install_crds(kube: &kube::Client) -> anyhow::Result<()> {
    let crds: Api<CustomResourceDefinition> = Api::all(kube.clone());
    for crd in sigsci_operator::crd::all() {
        let name = crd.name_any();
        crds.patch(
            &name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&crd),
        )
        .await
        .with_context(|| format!("apply CRD {name}"))?;
        wait_for(
            "the CRDs to be established",
            Duration::from_secs(30),
            || async {
                let crd = crds.get(&name).await.ok()?;
                crd.status?
                    .conditions?
                    .iter()
                    .any(|c| c.type_ == "Established" && c.status == "True")
                    .then_some(())
            },
        )
        .await?;
    }
    Ok(())
}

async fn setup_namespace(
    kube: &kube::Client,
    namespace: &str,
    state: &SimState,
    sim_url: &str,
) -> anyhow::Result<()> {
    let namespaces: Api<Namespace> = Api::all(kube.clone());
    let object: Namespace = serde_json::from_value(json!({"metadata": {"name": namespace}}))?;
    namespaces.create(&PostParams::default(), &object).await?;
    let config = state.config();
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "sim-credentials"},
        "stringData": {"email": config.email, "token": config.token},
    }))?;
    Api::<Secret>::namespaced(kube.clone(), namespace)
        .create(&PostParams::default(), &secret)
        .await?;
    let connection: SigSciConnection = serde_json::from_value(json!({
        "apiVersion": "sigsci-kit.io/v1alpha1",
        "kind": "SigSciConnection",
        "metadata": {"name": "sim"},
        "spec": {
            "corp": config.corp,
            "apiURL": sim_url,
            "credentialsSecretRef": {"name": "sim-credentials"},
        },
    }))?;
    Api::<SigSciConnection>::namespaced(kube.clone(), namespace)
        .create(&PostParams::default(), &connection)
        .await?;
    Ok(())
}

async fn cleanup(kube: &kube::Client, namespace: &str) -> anyhow::Result<()> {
    for api in [
        dynamic::<AgentAlert>(kube, namespace),
        dynamic::<Integration>(kube, namespace),
    ] {
        api.delete_collection(&DeleteParams::default(), &ListParams::default())
            .await?;
        wait_for(
            "the objects to be deleted",
            Duration::from_secs(120),
            || async {
                api.list_metadata(&ListParams::default().limit(1))
                    .await
                    .ok()?
                    .items
                    .is_empty()
                    .then_some(())
            },
        )
        .await?;
    }
    Api::<Namespace>::all(kube.clone())
        .delete(namespace, &DeleteParams::default())
        .await?;
    Ok(())
}

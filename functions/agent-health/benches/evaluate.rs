//! Agent-health benchmark: `cargo bench -p agent-health --bench evaluate`.
//!
//! 1. 1000 simulated sites behind 50 ms of API latency, evaluated in-process (healthy, then all firing);
//! 2. the Lambda `bootstrap` binary run once locally against an emulated Lambda Runtime API: binary size,
//!    init time (process start to its first `/invocation/next`) and peak RSS (VmHWM) of one invocation.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agent_health::channels::{ConsoleSink, Deliverer};
use agent_health::clock::SystemClock;
use agent_health::job::{Evaluator, RunReport};
use agent_health::rules::Rules;
use agent_health::secrets::SecretResolver;
use agent_health::store::StateStore;
use axum::Router;
use axum::extract::Path;
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use secrecy::SecretString;
use sigsci::{CredentialSecret, Credentials};
use sigsci_sim::{Faults, FleetUpdate, RunningSim, SimConfig};
use tokio::sync::Notify;

const SITES: usize = 1000;
const LATENCY_MS: u64 = 50;
const TARGET_SECS: f64 = 5.0;

type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

#[tokio::main]
async fn main() -> BenchResult<()> {
    let config = SimConfig {
        sites: SITES,
        ..SimConfig::default()
    };
    let sim = sigsci_sim::start(config.clone(), ([127, 0, 0, 1], 0).into()).await?;
    sim.state.set_faults(Faults {
        latency_ms: LATENCY_MS,
        ..Faults::default()
    })?;
    evaluation(&sim, &config).await?;
    lambda_invocation(&sim, &config).await?;
    sim.shutdown().await;
    Ok(())
}

async fn evaluation(sim: &RunningSim, config: &SimConfig) -> BenchResult<()> {
    let credentials = Credentials {
        email: config.email.clone(),
        secret: CredentialSecret::Token(SecretString::from(config.token.clone())),
    };
    let client =
        sigsci::Client::builder(sim.base_url.clone(), config.corp.clone(), credentials).build()?;
    // One grouping channel so the all-firing run also builds and "delivers" a 1000-item message.
    let rules = Rules::parse(
        "channels:\n  - {name: console, type: console, ack_enabled: false}\n",
        "bench",
    )?;
    let muted: ConsoleSink = Arc::new(|_: &str| {});
    let evaluator = Evaluator {
        client,
        store: StateStore::for_corp(Arc::new(kit_storage::MemoryStore::new()), &config.corp),
        secrets: SecretResolver::default(),
        deliverer: Deliverer::new(muted)?,
        clock: Arc::new(SystemClock),
    };
    println!(
        "evaluation: {SITES} sites, {LATENCY_MS} ms API latency, at most {} requests in flight",
        rules.evaluation.concurrency
    );
    let healthy = timed(&evaluator, &rules, "healthy").await?;
    check(&healthy, 0)?;
    for site in sim.state.site_names() {
        sim.state.set_fleet(
            &site,
            &FleetUpdate {
                online: Some(0),
                ..FleetUpdate::default()
            },
        )?;
    }
    let firing = timed(&evaluator, &rules, "all firing").await?;
    check(&firing, SITES)?;
    for site in sim.state.site_names() {
        sim.state.set_fleet(
            &site,
            &FleetUpdate {
                online: Some(3),
                ..FleetUpdate::default()
            },
        )?;
    }
    Ok(())
}

async fn timed(evaluator: &Evaluator, rules: &Rules, label: &str) -> BenchResult<RunReport> {
    let started = Instant::now();
    let report = evaluator.run(rules, label).await?;
    let secs = started.elapsed().as_secs_f64();
    let verdict = if secs <= TARGET_SECS {
        "within"
    } else {
        "OVER"
    };
    println!(
        "  {label:<10} {secs:>6.2} s ({verdict} the {TARGET_SECS} s target): {} sites evaluated, {} firing, {} notifications sent",
        report.sites_evaluated, report.conditions_firing, report.notifications_sent
    );
    Ok(report)
}

fn check(report: &RunReport, firing: usize) -> BenchResult<()> {
    if report.sites_evaluated != SITES || report.conditions_firing != firing {
        return Err(format!("unexpected run: {report:?}").into());
    }
    Ok(())
}

/// What the emulated Runtime API saw.
#[derive(Default)]
struct RuntimeLog {
    first_poll: Option<Instant>,
    response: Option<String>,
    error: Option<String>,
}

async fn lambda_invocation(sim: &RunningSim, config: &SimConfig) -> BenchResult<()> {
    let binary = env!("CARGO_BIN_EXE_agent-health");
    let size = std::fs::metadata(binary)?.len();
    let stripped = stripped_size(binary);
    let log = Arc::new(Mutex::new(RuntimeLog::default()));
    let answered = Arc::new(Notify::new());
    let api = runtime_api(Arc::clone(&log), Arc::clone(&answered));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address: SocketAddr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, api).await });

    let state_dir = std::env::temp_dir().join(format!("agent-health-bench-{}", std::process::id()));
    let started = Instant::now();
    let mut child = Command::new(binary)
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", address.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", "agent-health")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_LEVEL", "warn")
        .env("AWS_REGION", "us-east-1")
        .env("SIGSCI_CORP", &config.corp)
        .env("SIGSCI_API_URL", &sim.base_url)
        .env("SIGSCI_EMAIL", &config.email)
        .env("SIGSCI_API_TOKEN", &config.token)
        .env("SIGSCI_KIT_STATE", &state_dir)
        .stdout(Stdio::null())
        .spawn()?;
    let waited = tokio::time::timeout(Duration::from_secs(120), answered.notified()).await;
    let peak_rss_kib = peak_rss_kib(&child);
    stop(&mut child);
    let _ = std::fs::remove_dir_all(&state_dir);
    waited.map_err(|_| "the bootstrap binary did not answer the invocation within 120 s")?;

    let log = log.lock().map_err(|_| "runtime log poisoned")?;
    if let Some(error) = &log.error {
        return Err(format!("the invocation failed: {error}").into());
    }
    let init_ms = log
        .first_poll
        .map(|at| at.duration_since(started).as_secs_f64() * 1000.0)
        .unwrap_or(f64::NAN);
    let report: serde_json::Value =
        serde_json::from_str(log.response.as_deref().unwrap_or("null"))?;
    println!("lambda bootstrap: one local invocation against the same {SITES} sites");
    println!(
        "  binary size  {:.1} MiB as built (line tables), {} stripped",
        size as f64 / 1_048_576.0,
        stripped
            .map(|s| format!("{:.1} MiB", s as f64 / 1_048_576.0))
            .unwrap_or_else(|| "n/a (no strip)".into())
    );
    println!(
        "  init time    {init_ms:.1} ms (process start to the first /invocation/next; target ≤ 20 ms)"
    );
    println!(
        "  peak RSS     {} (VmHWM; target ≤ 40 MB)",
        peak_rss_kib
            .map(|kib| format!("{:.1} MB", kib as f64 * 1024.0 / 1_000_000.0))
            .unwrap_or_else(|| "n/a".into())
    );
    println!(
        "  invocation   {} sites evaluated in {} ms",
        report["sites_evaluated"], report["duration_ms"]
    );
    Ok(())
}

fn runtime_api(log: Arc<Mutex<RuntimeLog>>, answered: Arc<Notify>) -> Router {
    let next_log = Arc::clone(&log);
    let response_log = Arc::clone(&log);
    let response_done = Arc::clone(&answered);
    let error_log = log;
    Router::new()
        .route(
            "/2018-06-01/runtime/invocation/next",
            get(move || {
                let log = Arc::clone(&next_log);
                async move {
                    let first = {
                        let mut log = log.lock().unwrap_or_else(|p| p.into_inner());
                        let first = log.first_poll.is_none();
                        log.first_poll.get_or_insert_with(Instant::now);
                        first
                    };
                    if !first {
                        // One invocation only: hold the next poll until the process is stopped.
                        std::future::pending::<()>().await;
                    }
                    let deadline = chrono::Utc::now().timestamp_millis() + 300_000;
                    let mut headers = HeaderMap::new();
                    headers.insert(
                        "lambda-runtime-aws-request-id",
                        "bench-1".parse().unwrap_or_else(|_| unreachable!()),
                    );
                    headers.insert(
                        "lambda-runtime-deadline-ms",
                        deadline
                            .to_string()
                            .parse()
                            .unwrap_or_else(|_| unreachable!()),
                    );
                    headers.insert(
                        "lambda-runtime-invoked-function-arn",
                        "arn:aws:lambda:us-east-1:000000000000:function:agent-health"
                            .parse()
                            .unwrap_or_else(|_| unreachable!()),
                    );
                    (headers, r#"{"source": "aws.scheduler"}"#).into_response()
                }
            }),
        )
        .route(
            "/2018-06-01/runtime/invocation/{id}/response",
            post(move |Path(_id): Path<String>, body: String| {
                let (log, done) = (Arc::clone(&response_log), Arc::clone(&response_done));
                async move {
                    log.lock().unwrap_or_else(|p| p.into_inner()).response = Some(body);
                    done.notify_one();
                    axum::http::StatusCode::ACCEPTED
                }
            }),
        )
        .route(
            "/2018-06-01/runtime/invocation/{id}/error",
            post(move |Path(_id): Path<String>, body: String| {
                let (log, done) = (Arc::clone(&error_log), Arc::clone(&answered));
                async move {
                    log.lock().unwrap_or_else(|p| p.into_inner()).error = Some(body);
                    done.notify_one();
                    axum::http::StatusCode::ACCEPTED
                }
            }),
        )
}

fn peak_rss_kib(child: &Child) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn stop(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

fn stripped_size(binary: &str) -> Option<u64> {
    let copy = std::env::temp_dir().join(format!("agent-health-bootstrap-{}", std::process::id()));
    std::fs::copy(binary, &copy).ok()?;
    let stripped = Command::new("strip").arg(&copy).status().ok()?.success();
    let size = std::fs::metadata(&copy).ok().map(|m| m.len());
    let _ = std::fs::remove_file(&copy);
    if stripped { size } else { None }
}

//! The agent-health Lambda's start-up: `cargo bench -p agent-health-function --bench startup`. The
//! binary runs once against an emulated Lambda Runtime API and 1000 simulated sites: binary size
//! and peak RSS (VmHWM) of one invocation; then its init time (process start to its first
//! `/invocation/next`, the first invocation held back), the median of several starts.
//! (The evaluation's speed at API latency is `agent-health`'s `evaluate` bench.)
//!
//! `--init-only NAME=PATH` (repeatable; `tests/bench.sh` passes the feed-export and ack-url
//! binaries) measures the init time of those too, the same way, with a configuration that needs
//! no AWS service, and the RSS at that point. `--invoke-feed PATH` runs one invocation of the
//! feed-export binary over a busy hour (2M records) into moto's S3 and reports its peak RSS.
//! Every figure is also printed as a tab-separated `figure` line.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::Path;
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use sigsci_sim::{RunningSim, SimConfig};
use tokio::sync::Notify;

const SITES: usize = 1000;
/// What EventBridge Scheduler sends (its fields are ignored).
const SCHEDULED_EVENT: &str = r#"{"source": "aws.scheduler"}"#;
/// A busy hour for the feed-export invocation: 2M records.
const BUSY_HOUR_RPS: f64 = 2_000_000.0 / 3600.0;

type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

#[tokio::main]
async fn main() -> BenchResult<()> {
    let config = SimConfig {
        sites: SITES,
        ..SimConfig::default()
    };
    let sim = sigsci_sim::start(config.clone(), ([127, 0, 0, 1], 0).into()).await?;
    lambda_invocation(&sim, &config).await?;
    let args: Vec<String> = std::env::args().collect();
    let mut binaries = vec![("agent-health", env!("CARGO_BIN_EXE_agent-health"))];
    for pair in args.windows(2).filter(|pair| pair[0] == "--init-only") {
        binaries.push(
            pair[1]
                .split_once('=')
                .ok_or("--init-only takes NAME=PATH")?,
        );
    }
    for (name, path) in binaries {
        // One binary that does not start must not hide the others' figures.
        if let Err(error) = init_only(name, path, &sim, &config).await {
            eprintln!("lambda {name}: {error}");
        }
    }
    if let Some(pair) = args.windows(2).find(|pair| pair[0] == "--invoke-feed") {
        feed_invocation(&pair[1]).await?;
    }
    sim.shutdown().await;
    Ok(())
}

/// One invocation of the feed-export binary exporting a busy hour of one site to S3 (moto):
/// its peak RSS. `tests/bench.sh` starts moto and creates the bucket and the credentials secret
/// named below, and passes moto's URL in `SIGSCI_KIT_BENCH_MOTO_URL`.
async fn feed_invocation(binary: &str) -> BenchResult<()> {
    let moto = std::env::var("SIGSCI_KIT_BENCH_MOTO_URL")
        .map_err(|_| "--invoke-feed needs SIGSCI_KIT_BENCH_MOTO_URL (moto, see tests/bench.sh)")?;
    let config = SimConfig {
        sites: 1,
        rps: BUSY_HOUR_RPS,
        ..SimConfig::default()
    };
    let sim = sigsci_sim::start(config.clone(), ([127, 0, 0, 1], 0).into()).await?;
    // The last hour the API holds in full (the feed lags by five minutes).
    let hour = (sim.state.now() - 300) / 3600 * 3600 - 3600;
    let event = serde_json::json!({"from": hour, "until": hour + 3600}).to_string();
    // A location of its own: in one already holding this hour, the exporter rightly skips it.
    let location = format!(
        "s3://bench-feed/invocation-{}-{}/feed",
        sim.state.now(),
        std::process::id()
    );
    let log = Arc::new(Mutex::new(RuntimeLog::default()));
    let answered = Arc::new(Notify::new());
    let api = serve_runtime_api(Arc::clone(&log), Arc::clone(&answered), None, event).await?;
    let started = Instant::now();
    let mut child = lambda_process(binary, "feed-export", api.address)
        .env("AWS_ACCESS_KEY_ID", "bench")
        .env("AWS_SECRET_ACCESS_KEY", "bench")
        .env("AWS_ENDPOINT_URL", &moto)
        .env("SIGSCI_CORP", &config.corp)
        .env("SIGSCI_API_URL", &sim.base_url)
        .env("SIGSCI_KIT_CREDENTIALS_SECRET", "bench/feed-credentials")
        .env("SIGSCI_KIT_FEED_LOCATION", &location)
        .spawn()?;
    let waited = tokio::time::timeout(Duration::from_secs(600), answered.notified()).await;
    let seconds = started.elapsed().as_secs_f64();
    let peak_rss_kib = peak_rss_kib(&child);
    stop(&mut child);
    sim.shutdown().await;
    waited.map_err(|_| "feed-export did not answer the invocation within 600 s")?;
    let log = log.lock().map_err(|_| "runtime log poisoned")?;
    if let Some(error) = &log.error {
        return Err(format!("the feed-export invocation failed: {error}").into());
    }
    let report: serde_json::Value =
        serde_json::from_str(log.response.as_deref().unwrap_or("null"))?;
    if report["hours_exported"] != 1 {
        return Err(format!("the feed-export invocation exported no hour: {report}").into());
    }
    let rss_mib = peak_rss_kib.map_or(f64::NAN, |kib| kib as f64 / 1024.0);
    println!(
        "lambda feed-export: one busy hour (2M records) to S3 in {seconds:.1} s, peak RSS {rss_mib:.1} MiB"
    );
    println!(
        "figure\tLambda feed-export: peak RSS, one invocation, 2M-record hour (MiB)\t{rss_mib:.1}\t<=\t48"
    );
    Ok(())
}

/// Starts of each binary whose init is timed (agent-health and the `--init-only` ones); the
/// median is reported. The first start of a binary
/// read from disk is several times slower than the rest (tens of ms): a single start measured
/// the disk more than the binary.
const INIT_STARTS: usize = 5;

/// Start-up of a Lambda binary: process start to its first `/invocation/next`, and its RSS
/// then, the median of [`INIT_STARTS`] starts. S3 and Secrets Manager point at a closed port:
/// nothing is called before an invocation.
async fn init_only(
    name: &str,
    binary: &str,
    sim: &RunningSim,
    config: &SimConfig,
) -> BenchResult<()> {
    let mut starts = Vec::with_capacity(INIT_STARTS);
    for _ in 0..INIT_STARTS {
        starts.push(start_once(name, binary, sim, config).await?);
    }
    let first_ms = starts[0].0;
    starts.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (init_ms, rss_mib) = starts[INIT_STARTS / 2];
    let (fastest, slowest) = (starts[0].0, starts[INIT_STARTS - 1].0);
    println!(
        "lambda {name}: init {init_ms:.1} ms (median of {INIT_STARTS} starts, {fastest:.1}–{slowest:.1}; the first {first_ms:.1}), RSS at init {rss_mib:.1} MiB"
    );
    println!(
        "figure\tLambda {name}: init, process start to first /next (ms)\t{init_ms:.1}\t<=\t20"
    );
    println!("figure\tLambda {name}: RSS at init (MiB, context)\t{rss_mib:.1}\t\t");
    Ok(())
}

/// One start of `binary`: milliseconds to its first `/invocation/next` and its RSS then (MiB).
async fn start_once(
    name: &str,
    binary: &str,
    sim: &RunningSim,
    config: &SimConfig,
) -> BenchResult<(f64, f64)> {
    let log = Arc::new(Mutex::new(RuntimeLog::default()));
    let polled = Arc::new(Notify::new());
    let api = serve_runtime_api(
        Arc::clone(&log),
        Arc::new(Notify::new()),
        Some(Arc::clone(&polled)),
        SCHEDULED_EVENT.into(),
    )
    .await?;
    let state_dir = std::env::temp_dir().join(format!("{name}-bench-{}", std::process::id()));
    let started = Instant::now();
    let mut child = lambda_process(binary, name, api.address)
        .env("AWS_ACCESS_KEY_ID", "bench")
        .env("AWS_SECRET_ACCESS_KEY", "bench")
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .env("SIGSCI_CORP", &config.corp)
        .env("SIGSCI_API_URL", &sim.base_url)
        .env("SIGSCI_KIT_CREDENTIALS_SECRET", "bench/credentials")
        .env("SIGSCI_KIT_FEED_LOCATION", "s3://bench-bucket/feed")
        .env("SIGSCI_KIT_STATE", &state_dir)
        .env("SIGSCI_KIT_BENCH_ACK_KEY", "bench-signing-key")
        .env(
            "SIGSCI_KIT_RULES",
            "ack: {base_url: 'https://ack.example.com', secret: 'env:SIGSCI_KIT_BENCH_ACK_KEY'}\nchannels:\n  - {name: console, type: console}\n",
        )
        .spawn()?;
    let waited = tokio::time::timeout(Duration::from_secs(30), polled.notified()).await;
    let peak_rss_kib = peak_rss_kib(&child);
    stop(&mut child);
    drop(api);
    let _ = std::fs::remove_dir_all(&state_dir);
    waited.map_err(|_| format!("{name} did not poll for an invocation within 30 s"))?;
    let init_ms = log
        .lock()
        .map_err(|_| "runtime log poisoned")?
        .first_poll
        .map(|at| at.duration_since(started).as_secs_f64() * 1000.0)
        .unwrap_or(f64::NAN);
    let rss_mib = peak_rss_kib.map_or(f64::NAN, |kib| kib as f64 / 1024.0);
    Ok((init_ms, rss_mib))
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
    let api = serve_runtime_api(
        Arc::clone(&log),
        Arc::clone(&answered),
        None,
        SCHEDULED_EVENT.into(),
    )
    .await?;

    let state_dir = std::env::temp_dir().join(format!("agent-health-bench-{}", std::process::id()));
    let mut child = lambda_process(binary, "agent-health", api.address)
        .env("SIGSCI_CORP", &config.corp)
        .env("SIGSCI_API_URL", &sim.base_url)
        .env("SIGSCI_EMAIL", &config.email)
        .env("SIGSCI_API_TOKEN", &config.token)
        .env("SIGSCI_KIT_STATE", &state_dir)
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
    let report: serde_json::Value =
        serde_json::from_str(log.response.as_deref().unwrap_or("null"))?;
    println!("lambda bootstrap: one local invocation against {SITES} simulated sites");
    println!(
        "  binary size  {:.1} MiB as built (line tables), {} stripped",
        size as f64 / 1_048_576.0,
        stripped
            .map(|s| format!("{:.1} MiB", s as f64 / 1_048_576.0))
            .unwrap_or_else(|| "n/a (no strip)".into())
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
    if let Some(kib) = peak_rss_kib {
        println!(
            "figure\tLambda agent-health: peak RSS, one invocation, {SITES} sites (MiB)\t{:.1}\t<=\t40",
            kib as f64 / 1024.0
        );
    }
    Ok(())
}

/// An emulated Runtime API served on a free local port until dropped.
struct ServedApi {
    address: SocketAddr,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Drop for ServedApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Serves the Runtime API; with `hold` set, no invocation is handed out and `hold` is told of the
/// first poll.
async fn serve_runtime_api(
    log: Arc<Mutex<RuntimeLog>>,
    answered: Arc<Notify>,
    hold: Option<Arc<Notify>>,
    event: String,
) -> BenchResult<ServedApi> {
    let next_log = Arc::clone(&log);
    let response_log = Arc::clone(&log);
    let response_done = Arc::clone(&answered);
    let error_log = log;
    let api = Router::new()
        .route(
            "/2018-06-01/runtime/invocation/next",
            get(move || {
                let log = Arc::clone(&next_log);
                let hold = hold.clone();
                let event = event.clone();
                async move {
                    let first = {
                        let mut log = log.lock().unwrap_or_else(|p| p.into_inner());
                        let first = log.first_poll.is_none();
                        log.first_poll.get_or_insert_with(Instant::now);
                        first
                    };
                    if let Some(hold) = &hold {
                        hold.notify_one();
                    }
                    if !first || hold.is_some() {
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
                    (headers, event).into_response()
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
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let server = tokio::spawn(async move { axum::serve(listener, api).await });
    Ok(ServedApi { address, server })
}

/// A Lambda bootstrap as the service starts it: nothing inherited, the Runtime API at `runtime`.
fn lambda_process(binary: &str, name: &str, runtime: SocketAddr) -> Command {
    let mut command = Command::new(binary);
    command
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", runtime.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", name)
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_LEVEL", "warn")
        .env("AWS_REGION", "us-east-1")
        .stdout(Stdio::null());
    command
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

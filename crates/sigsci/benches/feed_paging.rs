//! Feed paging throughput: the client (`Client::feed`) against a bare reqwest loop reading the
//! same pages, both against the simulator in a child process (this binary with `--serve-sim`): a
//! remote API's work does not compete for the client's runtime threads, and an in-process one
//! did, so the figure measured the two sharing two cores as much as the client. The child serves
//! on a CPU of its own and this process runs on the others ([`Cpus::Apart`]); the no-latency
//! scenario runs once more with both sharing every CPU, as context.
//!
//! Run with `cargo bench -p sigsci --bench feed_paging` (or `tests/bench.sh`). Prints one line per
//! scenario: `no-latency: client N rec/s, raw M rec/s, ratio R (target <= T)` where ratio = client
//! time / raw time (best of two runs each, alternated so both see the same machine), and a
//! tab-separated `figure` line for `tests/bench.sh`.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use futures::StreamExt;
use serde_json::{Value, json};
use sigsci::{Client, Credentials, FeedQuery};
use sigsci_sim::SimConfig;
use sigsci_sim::child::{Cpus, SERVE_ARG, SimChild};

const SITE: &str = "site-1";
const WINDOW_SECS: i64 = 3600;
const RUNS: usize = 2;

struct Scenario {
    name: &'static str,
    page_latency_ms: u64,
    records: f64,
    cpus: Cpus,
    /// `None`: a context figure.
    target: Option<f64>,
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some(SERVE_ARG) {
        let rps = args
            .get(2)
            .and_then(|rps| rps.parse().ok())
            .context("--serve-sim needs the records per second")?;
        return Ok(sigsci_sim::child::serve_until_stdin_closes(
            sim_config(rps),
            |_| Ok(()),
        )?);
    }
    tokio::runtime::Runtime::new()?.block_on(run_all())
}

fn sim_config(rps: f64) -> SimConfig {
    SimConfig {
        sites: 1,
        rps,
        ..SimConfig::default()
    }
}

async fn run_all() -> Result<()> {
    let scenarios = [
        Scenario {
            name: "no-latency",
            page_latency_ms: 0,
            records: 1_000_000.0,
            cpus: Cpus::Apart,
            target: Some(1.15),
        },
        Scenario {
            name: "page-latency-100ms",
            page_latency_ms: 100,
            records: 100_000.0,
            cpus: Cpus::Apart,
            target: Some(1.05),
        },
        Scenario {
            name: "no-latency, simulator sharing the CPUs",
            page_latency_ms: 0,
            records: 1_000_000.0,
            cpus: Cpus::Shared,
            target: None,
        },
    ];
    for scenario in &scenarios {
        run(scenario).await?;
    }
    Ok(())
}

async fn run(scenario: &Scenario) -> Result<()> {
    let rps = scenario.records / WINDOW_SECS as f64;
    let config = sim_config(rps);
    let sim = SimChild::spawn(&[&rps.to_string()], scenario.cpus)?;
    let control = reqwest::Client::new();
    // The newest window the API serves: it must end at least five minutes ago.
    let clock = control_get(&control, &sim, "/__sim/clock").await?;
    let now = clock["now"]
        .as_i64()
        .context("the simulator's clock has no `now`")?;
    let until = (now - 300) / 60 * 60 - 60;
    let query = FeedQuery::new(until - WINDOW_SECS, until);
    let truth = control_get(
        &control,
        &sim,
        &format!(
            "/__sim/truth?site={SITE}&from={}&until={}",
            query.from, query.until
        ),
    )
    .await?;
    let expected = truth["count"]
        .as_u64()
        .context("the simulator's truth has no `count`")? as usize;
    set_page_latency(&control, &sim, scenario.page_latency_ms).await?;

    let client = Client::builder(
        &sim.base_url,
        &config.corp,
        Credentials::token(&config.email, &config.token),
    )
    .build()?;
    let raw = reqwest::Client::new();

    let mut best_client = Duration::MAX;
    let mut best_raw = Duration::MAX;
    for _ in 0..RUNS {
        let (records, took) = page_with_client(&client, query.clone()).await?;
        ensure!(
            records == expected,
            "client paged {records} of {expected} records"
        );
        best_client = best_client.min(took);
        let (pages, took) = page_raw(&raw, &sim, &config, &query).await?;
        ensure!(pages > 0, "raw loop read no pages");
        best_raw = best_raw.min(took);
    }
    let rate = |took: Duration| expected as f64 / took.as_secs_f64();
    let ratio = best_client.as_secs_f64() / best_raw.as_secs_f64();
    let verdict = match scenario.target {
        Some(target) if ratio <= target => format!("(target <= {target:.2}) within target"),
        Some(target) => format!("(target <= {target:.2}) OVER TARGET"),
        None => "(context)".to_string(),
    };
    println!(
        "{}: client {:.0} rec/s, raw {:.0} rec/s, ratio {ratio:.3} {verdict} [{expected} records; {}]",
        scenario.name,
        rate(best_client),
        rate(best_raw),
        sim.placement,
    );
    let (label, comparison) = match scenario.target {
        Some(target) => ("", format!("<=\t{target}")),
        None => (" (context)", "\t".to_string()),
    };
    println!(
        "figure\tpaging, {}: client ÷ raw read{label}\t{ratio:.3}\t{comparison}",
        scenario.name
    );
    Ok(())
}

async fn control_get(control: &reqwest::Client, sim: &SimChild, path: &str) -> Result<Value> {
    let reply = control
        .get(format!("{}{path}", sim.base_url))
        .send()
        .await?
        .error_for_status()
        .with_context(|| format!("GET {path}"))?;
    Ok(reply.json().await?)
}

async fn set_page_latency(
    control: &reqwest::Client,
    sim: &SimChild,
    page_latency_ms: u64,
) -> Result<()> {
    let response = control
        .put(format!("{}/__sim/faults", sim.base_url))
        .json(&json!({ "page_latency_ms": page_latency_ms }))
        .send()
        .await?;
    ensure!(
        response.status().is_success(),
        "setting faults: {}",
        response.status()
    );
    Ok(())
}

async fn page_with_client(client: &Client, query: FeedQuery) -> Result<(usize, Duration)> {
    let started = Instant::now();
    let mut pages = client.feed(SITE, query);
    let mut records = 0;
    while let Some(page) = pages.next().await {
        records += page?.records.len();
    }
    Ok((records, started.elapsed()))
}

/// The baseline: GET each page, read the body, cut `next.uri` out of its first bytes.
async fn page_raw(
    http: &reqwest::Client,
    sim: &SimChild,
    config: &SimConfig,
    query: &FeedQuery,
) -> Result<(usize, Duration)> {
    let started = Instant::now();
    let mut url = format!(
        "{}/api/v0/corps/{}/sites/{SITE}/feed/requests?from={}&until={}&limit=1000",
        sim.base_url, config.corp, query.from, query.until
    );
    let mut pages = 0;
    loop {
        let body = http
            .get(&url)
            .header("x-api-user", &config.email)
            .header("x-api-token", &config.token)
            .send()
            .await?
            .error_for_status()?
            .bytes()
            .await?;
        pages += 1;
        let next = next_uri(&body).context("page without next.uri")?;
        if next.is_empty() {
            break;
        }
        url = format!("{}{next}&limit=1000", sim.base_url);
    }
    Ok((pages, started.elapsed()))
}

/// `{"next":{"uri":"..."}` is the first member of every page; no JSON parsing needed.
fn next_uri(body: &[u8]) -> Option<&str> {
    const PREFIX: &[u8] = br#"{"next":{"uri":""#;
    let rest = body.strip_prefix(PREFIX)?;
    let end = rest.iter().position(|&b| b == b'"')?;
    std::str::from_utf8(&rest[..end]).ok()
}

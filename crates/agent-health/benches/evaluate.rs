//! Agent-health benchmark: `cargo bench -p agent-health --bench evaluate`: 1000 simulated sites
//! behind 50 ms of API latency, evaluated in-process (healthy, then all firing). The Lambda
//! binary's start-up is `functions/agent-health`'s `startup` bench.

use std::sync::Arc;
use std::time::Instant;

use agent_health::{
    ConsoleSink, Deliverer, Evaluator, Rules, RunReport, SecretResolver, StateStore, SystemClock,
};
use secrecy::SecretString;
use sigsci::{CredentialSecret, Credentials};
use sigsci_sim::{Faults, FleetUpdate, RunningSim, SimConfig};

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
    println!(
        "figure\tagent health, {SITES} sites at {LATENCY_MS} ms, {label} (s)\t{secs:.2}\t<=\t{TARGET_SECS}"
    );
    Ok(report)
}

fn check(report: &RunReport, firing: usize) -> BenchResult<()> {
    if report.sites_evaluated != SITES || report.conditions_firing != firing {
        return Err(format!("unexpected run: {report:?}").into());
    }
    Ok(())
}

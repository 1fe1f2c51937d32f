//! `sigsci-kit demo`: the whole kit against an in-process simulator, on embedded defaults.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use futures::StreamExt;
use secrecy::SecretString;
use sigsci::{Client, CredentialSecret, Credentials, FeedQuery};
use sigsci_sim::SimConfig;

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Seed of the simulated traffic.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Directory the feed export writes into (the local sink).
    #[arg(long, default_value = "sigsci-data")]
    pub out: PathBuf,
    /// How many of the newest complete hours to export.
    #[arg(long, default_value_t = 2)]
    pub hours: i64,
}

pub async fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let config = SimConfig {
        seed: args.seed,
        ..SimConfig::default()
    };
    let listen: SocketAddr = ([127, 0, 0, 1], 0).into();
    let sim = sigsci_sim::start(config.clone(), listen)
        .await
        .context("cannot start the in-process simulator")?;
    println!("simulator: {} (corp {})", sim.base_url, config.corp);

    let credentials = Credentials {
        email: config.email.clone(),
        secret: CredentialSecret::Token(SecretString::from(config.token.clone())),
    };
    let client = Client::builder(sim.base_url.clone(), config.corp.clone(), credentials)
        .build()
        .context("cannot build the API client")?;

    let outcome = async {
        tour(&client, sim.state.now()).await?;

        println!(
            "\n--- feed export: the newest complete hours into {}",
            args.out.display()
        );
        let sim_state = sim.state.clone();
        let clock: feed_export::SharedClock = Arc::new(move || sim_state.now());
        super::feed::demo_export(client.clone(), clock, &args.out, args.hours).await?;

        println!("\n--- agent health: site-2 loses its agents");
        super::health::demo(&client, &sim.state, "site-2").await
    }
    .await;
    sim.shutdown().await;
    outcome?;
    Ok(ExitCode::SUCCESS)
}

/// Sites, agents and one feed page: what every later job is built on.
async fn tour(client: &Client, now: i64) -> anyhow::Result<()> {
    let sites = client.list_sites().await.context("listing sites")?;
    println!("\nsites: {}", sites.len());
    for site in &sites {
        let agents = client
            .list_agents(&site.name)
            .await
            .with_context(|| format!("listing agents of {}", site.name))?;
        let online = agents.iter().filter(|agent| agent.is_online()).count();
        println!(
            "  {:<10} {:>2} agents, {:>2} online",
            site.name,
            agents.len(),
            online
        );
    }

    let first = sites.first().context("the simulator serves no site")?;
    // The newest window the API will serve: minute-aligned and at least five minutes old.
    let until = (now / 60) * 60 - 300;
    let from = until - 600;
    let query = FeedQuery {
        from,
        until,
        tags: Vec::new(),
        limit: 1000,
    };
    let mut pages = client.feed(&first.name, query);
    let page = pages
        .next()
        .await
        .context("the feed returned no page")?
        .context("fetching a feed page")?;
    println!(
        "\nfeed of {} from {} to {}: first page has {} records",
        first.name,
        format_epoch(from),
        format_epoch(until),
        page.records.len()
    );
    if let Some(record) = page.records.first() {
        let preview: String = record.raw.get().chars().take(160).collect();
        println!("  e.g. {} at {}: {preview}…", record.id, record.timestamp);
    }
    Ok(())
}

fn format_epoch(epoch: i64) -> String {
    chrono::DateTime::from_timestamp(epoch, 0)
        .map(|time| time.to_rfc3339())
        .unwrap_or_else(|| epoch.to_string())
}

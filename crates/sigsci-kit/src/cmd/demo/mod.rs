//! `sigsci-kit demo`: the whole kit against an in-process simulator, on embedded defaults; one
//! module per scenario.

mod feed;
mod health;
mod tour;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use crate::output::outln;
use anyhow::Context;
use clap::Args;
use secrecy::SecretString;
use sigsci::{Client, CredentialSecret, Credentials};
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
    outln!("simulator: {} (corp {})", sim.base_url, config.corp);

    let client = simulator_client(&sim.base_url, &config)?;

    let outcome = async {
        tour::run(&client, sim.state.now()).await?;

        outln!(
            "\n--- feed export: the newest complete hours into {}",
            args.out.display()
        );
        let sim_state = sim.state.clone();
        let clock: feed_export::SharedClock = Arc::new(move || sim_state.now());
        feed::run(client.clone(), clock, &args.out, args.hours).await?;

        outln!("\n--- agent health: site-2 loses its agents");
        health::run(&client, &sim.state, "site-2").await
    }
    .await;
    sim.shutdown().await;
    outcome?;
    Ok(ExitCode::SUCCESS)
}

/// A client of the simulator at `base_url`, with the credentials `config` accepts.
fn simulator_client(base_url: &str, config: &SimConfig) -> anyhow::Result<Client> {
    let credentials = Credentials {
        email: config.email.clone(),
        secret: CredentialSecret::Token(SecretString::from(config.token.clone())),
    };
    Client::builder(base_url, config.corp.clone(), credentials)
        .build()
        .context("cannot build the API client")
}

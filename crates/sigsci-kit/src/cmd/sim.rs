//! `sigsci-kit sim`: serve the simulator until interrupted.

use std::net::SocketAddr;
use std::process::ExitCode;

use crate::output::outln;
use anyhow::Context;
use clap::Args;
use sigsci_sim::SimConfig;

#[derive(Args, Debug)]
pub struct SimArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8085")]
    pub listen: SocketAddr,
    /// Corp short name served by the simulator.
    #[arg(long, default_value = "testcorp")]
    pub corp: String,
    /// Number of sites (named site-1, site-2, ...).
    #[arg(long, default_value_t = 3)]
    pub sites: usize,
    /// Mean feed records per second per site.
    #[arg(long, default_value_t = 50.0)]
    pub rps: f64,
    /// Seed of the synthetic traffic: the same seed serves the same records.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// E-mail accepted for both token and password logins.
    #[arg(long, default_value = "sim@example.com")]
    pub email: String,
    /// Access token accepted in x-api-token.
    #[arg(long, default_value = "sim-token")]
    pub token: String,
    /// Password accepted by the legacy POST /auth login.
    #[arg(long, default_value = "sim-password")]
    pub password: String,
}

impl SimArgs {
    pub fn config(&self) -> anyhow::Result<SimConfig> {
        anyhow::ensure!(self.sites >= 1, "--sites must be at least 1");
        anyhow::ensure!(
            self.rps.is_finite() && self.rps >= 0.0,
            "--rps must be a non-negative number, got {}",
            self.rps
        );
        Ok(SimConfig {
            corp: self.corp.clone(),
            sites: self.sites,
            rps: self.rps,
            seed: self.seed,
            email: self.email.clone(),
            token: self.token.clone(),
            password: self.password.clone(),
        })
    }
}

pub async fn run(args: SimArgs) -> anyhow::Result<ExitCode> {
    let running = sigsci_sim::start(args.config()?, args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    // The first stdout line is the base URL: scripts and tests read it to find a port-0 simulator.
    outln!("{}", running.base_url);
    eprintln!(
        "simulator for corp {} with {} sites; API under {}/api/v0, control API under {}/__sim/; Ctrl-C stops it",
        args.corp, args.sites, running.base_url, running.base_url
    );
    tokio::signal::ctrl_c()
        .await
        .context("cannot wait for Ctrl-C")?;
    running.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

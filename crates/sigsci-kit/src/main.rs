//! `sigsci-kit`: the command line over the sigsci-kit libraries.

mod api_args;
mod cmd;
mod health_status;
mod progress_bar;
mod telemetry;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "sigsci-kit",
    version,
    about = "Signal Sciences (Fastly Next-Gen WAF) observability and configuration as code"
)]
struct Cli {
    /// Log as JSON lines instead of human-readable text.
    #[arg(long, global = true, env = "SIGSCI_KIT_LOG_JSON")]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the Signal Sciences API simulator.
    Sim(cmd::sim::SimArgs),
    /// Run the kit end to end against an in-process simulator.
    Demo(cmd::demo::DemoArgs),
    /// List the corp's sites.
    Sites(api_args::ApiArgs),
    /// List a site's agents.
    Agents(cmd::agents::AgentsArgs),
    /// Export the request feed to S3 or a directory (export, backfill, status, verify).
    Feed(cmd::feed::FeedArgs),
    /// Plan or apply sigsci-kit.io manifests (AgentAlert, Integration) without a cluster.
    Config(cmd::config::ConfigArgs),
    /// Agent health: evaluate, show status, acknowledge, serve acknowledgement pages.
    Health(cmd::health::HealthArgs),
}

/// Rust ignores SIGPIPE, so `println!` to a closed pipe (`sigsci-kit feed status | head`) panics;
/// with the default disposition the process ends quietly there, as other Unix tools do. Sockets
/// are written with MSG_NOSIGNAL, so only the standard streams raise it.
fn end_quietly_on_closed_pipes() {
    #[cfg(unix)]
    // SAFETY: sets a disposition the C runtime defines; no handler code runs.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    end_quietly_on_closed_pipes();
    let cli = Cli::parse();
    telemetry::init(cli.log_json);
    let outcome = match cli.command {
        Command::Sim(args) => cmd::sim::run(args).await,
        Command::Demo(args) => cmd::demo::run(args).await,
        Command::Sites(args) => cmd::agents::list_sites(args).await,
        Command::Agents(args) => cmd::agents::run(args).await,
        Command::Feed(args) => cmd::feed::run(args).await,
        Command::Config(args) => cmd::config::run(args).await,
        Command::Health(args) => cmd::health::run(args).await,
    };
    match outcome {
        Ok(code) => code,
        Err(error) => {
            // One line naming the problem, with its causes, and no backtrace noise.
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

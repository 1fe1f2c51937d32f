//! `sigsci-kit`: the command line over the sigsci-kit libraries.

mod api_args;
mod cmd;
mod health_status;
mod output;
mod progress_bar;
mod telemetry;
mod times;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use feed_export::allocator::StreamingAllocator;

/// The feed export streams hours of records: the allocator that keeps its memory flat.
#[global_allocator]
static GLOBAL: StreamingAllocator = StreamingAllocator;

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
    /// Colour: auto (on a terminal, unless NO_COLOR is set), always or never.
    #[arg(long, global = true, value_enum, default_value_t = output::ColorChoice::Auto)]
    color: output::ColorChoice,
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
    Sites(cmd::agents::SitesArgs),
    /// List a site's agents.
    Agents(cmd::agents::AgentsArgs),
    /// Export the request feed to S3 or a directory (export, backfill, status, verify).
    Feed(cmd::feed::FeedArgs),
    /// Plan or apply sigsci-kit.io manifests (AgentAlert, Integration, SigSciList) without a cluster.
    Config(cmd::config::ConfigArgs),
    /// Lists as code for active response: block IP ranges for a while (lists block).
    Lists(cmd::lists::ListsArgs),
    /// Agent health: evaluate, show status, acknowledge, serve acknowledgement pages.
    Health(cmd::health::HealthArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    #[command(
        after_help = "Install:\n  bash: sigsci-kit completion bash > ~/.local/share/bash-completion/completions/sigsci-kit\n  \
                      zsh:  sigsci-kit completion zsh > \"${fpath[1]}/_sigsci-kit\"\n  \
                      fish: sigsci-kit completion fish > ~/.config/fish/completions/sigsci-kit.fish"
    )]
    Completion {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), e.g. `sigsci-kit man > sigsci-kit.1`.
    Man,
}

/// The man page, generated from the same definition as `--help`.
fn man_page() -> anyhow::Result<ExitCode> {
    let mut page = Vec::new();
    clap_mangen::Man::new(Cli::command()).render(&mut page)?;
    output::write_stdout_bytes(&page);
    Ok(ExitCode::SUCCESS)
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    output::set_color_choice(cli.color);
    telemetry::init(cli.log_json, output::stderr_colour());
    let outcome = match cli.command {
        Command::Sim(args) => cmd::sim::run(args).await,
        Command::Demo(args) => cmd::demo::run(args).await,
        Command::Sites(args) => cmd::agents::list_sites(args).await,
        Command::Agents(args) => cmd::agents::run(args).await,
        Command::Feed(args) => cmd::feed::run(args).await,
        Command::Config(args) => cmd::config::run(args).await,
        Command::Lists(args) => cmd::lists::run(args).await,
        Command::Health(args) => cmd::health::run(args).await,
        Command::Completion { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "sigsci-kit", &mut script);
            output::write_stdout_bytes(&script);
            Ok(ExitCode::SUCCESS)
        }
        Command::Man => man_page(),
    };
    match outcome {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {}", error_line(&error));
            ExitCode::FAILURE
        }
    }
}

/// One line naming the problem, with its causes, and no backtrace noise. A cause whose text the
/// line already holds is skipped: errors that name their source in their own message (as the
/// libraries' do, for their logs) would otherwise print it twice.
fn error_line(error: &anyhow::Error) -> String {
    let error: &(dyn std::error::Error + 'static) = error.as_ref();
    sigsci::with_causes(error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_line_names_each_cause_once() {
        /// Names its source in its message and returns it as `source()` too.
        #[derive(Debug)]
        struct Listing {
            source: std::io::Error,
        }
        impl std::fmt::Display for Listing {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "listing the sites of corp c: {}", self.source)
            }
        }
        impl std::error::Error for Listing {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.source)
            }
        }
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let error = anyhow::Error::new(Listing { source: refused }).context("feed export");
        assert_eq!(
            error_line(&error),
            "feed export: listing the sites of corp c: refused"
        );
    }

    /// Every flag and positional of every subcommand says what it is for (`--help`, the man page).
    #[test]
    fn every_argument_has_help_text() {
        fn walk(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in command.get_arguments() {
                let builtin = matches!(arg.get_id().as_str(), "help" | "version");
                if !builtin && arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} {}", arg.get_id()));
                }
            }
            for sub in command.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "sigsci-kit", &mut missing);
        assert!(missing.is_empty(), "arguments without help: {missing:?}");
    }

    #[test]
    fn the_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}

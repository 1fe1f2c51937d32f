//! `sigsci-kit health check|status|ack|unack|serve`: the agent-health library from the command line,
//! the same code the Lambdas run, with the state in a directory or on S3.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use agent_health::{
    AckError, AckMethod, AckOutcome, AckRequest, AckService, AckTarget, Clock, ConditionKey,
    ConsoleSink, Deliverer, Evaluator, IncidentAction, IncidentSync, Period, Rules, RunReport,
    SecretResolver, SigningKey, StateStore, SystemClock, acknowledge_with_site, firing_checks,
    new_run_id, unacknowledge,
};
use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use kit_storage::{SecretSource, SecretsManager};

use crate::api_args::ApiArgs;
use crate::health_status;
use crate::output::{Colour, Format, OutputArgs, out, outln, paint};
use crate::times::{self, Relative};

#[derive(Args, Debug)]
pub struct HealthArgs {
    #[command(subcommand)]
    command: HealthCommand,
}

#[derive(Subcommand, Debug)]
enum HealthCommand {
    /// Evaluate every site once and send the notifications that are due.
    #[command(
        after_help = "Exit status: 0 every site evaluated and every due notification delivered, \
                      3 some notifications (or acknowledgements owed to PagerDuty/Opsgenie incidents) \
                      could not be delivered (the next run retries them), \
                      1 an error, or no site could be evaluated."
    )]
    Check(CheckArgs),
    /// Show the evaluator's heartbeat, open conditions, deliveries and acknowledgements.
    #[command(
        after_help = "Exit status: 0, or 2 with --max-age when the last evaluation is older than that \
                      (or there is none), 1 an error."
    )]
    Status(StatusArgs),
    /// Acknowledge a firing check (every channel, or the ones named) until it recovers.
    Ack(AckArgs),
    /// Remove an acknowledgement so the check notifies again.
    Unack(UnackArgs),
    /// Serve the acknowledgement pages that the links in messages open.
    Serve(ServeArgs),
}

#[derive(Args, Debug)]
struct StateArgs {
    /// State: a directory, a .json file, or s3://bucket/prefix (or s3://bucket/key.json).
    #[arg(long, env = "SIGSCI_KIT_STATE")]
    state: String,
    /// S3-compatible endpoint URL (e.g. MinIO, moto) instead of AWS; without it the AWS SDK's
    /// AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL apply.
    #[arg(long)]
    s3_endpoint: Option<String>,
}

impl StateArgs {
    fn open(&self, corp: &str) -> anyhow::Result<StateStore> {
        StateStore::open(&self.state, corp, self.s3_endpoint.as_deref())
            .context("cannot open the state")
    }

    fn secrets(&self) -> SecretResolver {
        let manager: Arc<dyn SecretSource> = Arc::new(SecretsManager::new(None));
        SecretResolver::new(Some(manager))
    }
}

#[derive(Args, Debug)]
struct CheckArgs {
    #[command(flatten)]
    api: ApiArgs,
    #[command(flatten)]
    state: StateArgs,
    /// Rules document (YAML or JSON); without it the built-in defaults apply and nobody is notified.
    #[arg(long, env = "SIGSCI_KIT_RULES_FILE")]
    rules: Option<PathBuf>,
    /// `-o json|yaml` prints the run report as that document; the console channel's messages then
    /// go to stderr.
    #[command(flatten)]
    output: OutputArgs,
    /// The same as `-o json` (kept for scripts written before `-o`).
    #[arg(long, hide = true, conflicts_with = "format")]
    json: bool,
}

#[derive(Args, Debug)]
struct StatusArgs {
    /// Corp short name.
    #[arg(long, env = "SIGSCI_CORP")]
    corp: String,
    #[command(flatten)]
    state: StateArgs,
    /// Exit with status 2 when the last evaluation is older than this (e.g. 15m): a watchdog for the watchdog.
    #[arg(long, value_parser = Period::parse)]
    max_age: Option<Period>,
    #[command(flatten)]
    output: OutputArgs,
}

#[derive(Args, Debug)]
struct AckArgs {
    /// Corp short name.
    #[arg(long, env = "SIGSCI_CORP")]
    corp: String,
    #[command(flatten)]
    state: StateArgs,
    /// The rules document (to know the channels and which accept acknowledgements).
    #[arg(long, env = "SIGSCI_KIT_RULES_FILE")]
    rules: Option<PathBuf>,
    /// The check, as SITE/CHECK (e.g. www/no_agents_online; `health status` lists them), or a site
    /// name for every check firing on that site.
    target: AckTarget,
    /// Acknowledge only this channel (repeatable); default: every channel that accepts acknowledgements.
    #[arg(long = "channel")]
    channels: Vec<String>,
    /// End the acknowledgement early: RFC 3339, a date, epoch seconds, or a duration from now (2h).
    #[arg(long)]
    until: Option<String>,
    /// Who acknowledges (recorded in the state).
    #[arg(long, env = "USER", default_value = "cli")]
    by: String,
}

#[derive(Args, Debug)]
struct UnackArgs {
    /// Corp short name.
    #[arg(long, env = "SIGSCI_CORP")]
    corp: String,
    #[command(flatten)]
    state: StateArgs,
    /// The rules document (to know the channels).
    #[arg(long, env = "SIGSCI_KIT_RULES_FILE")]
    rules: Option<PathBuf>,
    /// The check, as SITE/CHECK.
    check: ConditionKey,
    /// Remove only this channel's acknowledgement (repeatable); default: all of them.
    #[arg(long = "channel")]
    channels: Vec<String>,
    /// Who removes it (recorded in the state).
    #[arg(long, env = "USER", default_value = "cli")]
    by: String,
}

#[derive(Args, Debug)]
struct ServeArgs {
    /// Corp short name.
    #[arg(long, env = "SIGSCI_CORP")]
    corp: String,
    #[command(flatten)]
    state: StateArgs,
    /// The rules document (its ack.secret signs and verifies the links).
    #[arg(long, env = "SIGSCI_KIT_RULES_FILE")]
    rules: PathBuf,
    /// Address to listen on; ack.base_url in the rules must reach it.
    #[arg(long, default_value = "127.0.0.1:8086")]
    listen: SocketAddr,
}

pub async fn run(args: HealthArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        HealthCommand::Check(args) => check(args).await,
        HealthCommand::Status(args) => status(args).await,
        HealthCommand::Ack(args) => ack(args).await,
        HealthCommand::Unack(args) => unack(args).await,
        HealthCommand::Serve(args) => serve(args).await,
    }
}

fn read_rules(path: Option<&PathBuf>) -> anyhow::Result<Rules> {
    let Some(path) = path else {
        return Ok(Rules::default());
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the rules file {}", path.display()))?;
    Ok(Rules::parse(&text, &path.display().to_string())?)
}

/// The console channel: stdout, or stderr when stdout carries a JSON document; the status
/// labels coloured on a terminal.
fn console(to_stderr: bool) -> ConsoleSink {
    Arc::new(move |text: &str| {
        let text = paint_labels(text);
        if to_stderr {
            eprintln!("{text}");
        } else {
            outln!("{text}");
        }
    })
}

/// `[FIRING]` red, `[RESOLVED]` green (no-ops without colour).
fn paint_labels(text: &str) -> String {
    text.replace("[FIRING]", &paint("[FIRING]", Colour::Red))
        .replace("[STILL FIRING]", &paint("[STILL FIRING]", Colour::Red))
        .replace("[RESOLVED]", &paint("[RESOLVED]", Colour::Green))
}

async fn check(args: CheckArgs) -> anyhow::Result<ExitCode> {
    // Rules first: a bad document stops the run before anything is evaluated.
    let rules = read_rules(args.rules.as_ref())?;
    let output = if args.json {
        OutputArgs {
            format: Format::Json,
        }
    } else {
        args.output
    };
    let client = args.api.client()?;
    let evaluator = Evaluator {
        store: args.state.open(client.corp())?,
        client,
        secrets: args.state.secrets(),
        deliverer: Deliverer::new(console(output.is_document()))?,
        clock: Arc::new(SystemClock),
    };
    let report = evaluator.run(&rules, &new_run_id()).await?;
    if output.is_document() {
        output.print_document(&report)?;
    } else {
        print_report(&report);
    }
    // A run that could read nothing must not look like a healthy one to cron or CI.
    if report.sites_evaluated == 0 {
        if let Some(error) = &report.corp_error {
            bail!("no site could be evaluated: could not list the sites: {error}");
        }
        if let Some(site) = report.sites_failed.first() {
            bail!(
                "no site could be evaluated ({} failed, first {site})",
                report.sites_failed.len()
            );
        }
    }
    // Somebody due a notification was not told; the next run retries the delivery.
    if report.notifications_failed > 0 {
        eprintln!(
            "error: {} notification(s) could not be delivered; the next run retries them",
            report.notifications_failed
        );
        return Ok(ExitCode::from(3));
    }
    if report.incidents_failed > 0 {
        eprintln!(
            "error: {} acknowledgement(s) could not be passed on to PagerDuty/Opsgenie; the next run retries them",
            report.incidents_failed
        );
        return Ok(ExitCode::from(3));
    }
    Ok(ExitCode::SUCCESS)
}

fn print_report(report: &RunReport) {
    outln!(
        "run {}: {} of {} sites evaluated, {} condition{} firing; notifications: {} sent, {} failed, {} throttled, {} acknowledged",
        report.run_id,
        report.sites_evaluated,
        report.sites_total,
        report.conditions_firing,
        if report.conditions_firing == 1 {
            ""
        } else {
            "s"
        },
        report.notifications_sent,
        report.notifications_failed,
        report.notifications_throttled,
        report.notifications_acknowledged,
    );
    if report.incidents_updated + report.incidents_failed > 0 {
        outln!(
            "  incident acknowledgements passed on: {} done, {} failed",
            report.incidents_updated,
            report.incidents_failed
        );
    }
    if let Some(error) = &report.corp_error {
        outln!("  could not list the sites: {error}");
    }
    for site in &report.sites_failed {
        outln!("  could not evaluate site {site}");
    }
    for error in &report.errors {
        outln!("  {error}");
    }
}

async fn status(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let store = args.state.open(&args.corp)?;
    let (state, etag) = store.load(&args.corp).await?;
    let now = Utc::now();
    if args.output.is_document() {
        args.output.print_document(&state)?;
    } else {
        if etag.is_none() {
            outln!(
                "no state at {} yet: the evaluator has never run for corp {}",
                store.location(),
                args.corp
            );
        } else {
            out!(
                "{}",
                health_status::render_with(&state, now, args.output.wide())
            );
        }
    }
    let stale = match (&args.max_age, &state.heartbeat) {
        (None, _) => false,
        (Some(_), None) => true,
        (Some(max_age), Some(heartbeat)) => now - heartbeat.started_at > max_age.delta(),
    };
    if stale {
        eprintln!(
            "the last evaluation is older than {} (or there was none)",
            args.max_age.map(|p| p.to_string()).unwrap_or_default()
        );
        return Ok(ExitCode::from(2));
    }
    Ok(ExitCode::SUCCESS)
}

async fn ack(args: AckArgs) -> anyhow::Result<ExitCode> {
    let rules = read_rules(args.rules.as_ref())?;
    let store = args.state.open(&args.corp)?;
    let now = SystemClock.now();
    let until = args
        .until
        .as_deref()
        .map(|text| times::parse("--until", text, now, Relative::Ahead))
        .transpose()?;
    let outcomes = store
        .update(&args.corp, |state| {
            let (check, whole_site) = match &args.target {
                AckTarget::Check(check) => (check.clone(), false),
                AckTarget::Site(site) => {
                    let first = firing_checks(state, site).into_iter().next();
                    let check =
                        first.ok_or_else(|| AckError::NothingFiring { site: site.clone() })?;
                    (check, true)
                }
            };
            let request = AckRequest {
                check,
                channels: args.channels.clone(),
                until,
                by: args.by.clone(),
                how: AckMethod::Cli,
                via: None,
                episode: None,
            };
            acknowledge_with_site(state, &rules, &request, whole_site, now)
        })
        .await?;
    for (check, outcome) in outcomes {
        match outcome {
            AckOutcome::Acknowledged { channels } if channels.is_empty() => outln!(
                "acknowledged {check} (no configured channel accepts acknowledgements, so nothing is silenced)"
            ),
            AckOutcome::Acknowledged { channels } => {
                outln!("acknowledged {check}: silenced {}", channels.join(", "))
            }
            AckOutcome::AlreadyAcknowledged => {
                outln!("{check} is already acknowledged; nothing changed")
            }
        }
    }
    update_incidents(&args.state, &store, &args.corp, &rules, now).await
}

/// Passes the acknowledgement change on to PagerDuty/Opsgenie incidents at once. Exit status 3
/// when a tool did not take it: the change is kept and the next evaluation retries it.
async fn update_incidents(
    state: &StateArgs,
    store: &StateStore,
    corp: &str,
    rules: &Rules,
    now: DateTime<Utc>,
) -> anyhow::Result<ExitCode> {
    let sync = IncidentSync {
        secrets: state.secrets(),
        deliverer: Deliverer::new(console(false))?,
    };
    let mut failed = false;
    for outcome in sync.send_owed(store, corp, rules, now).await? {
        let what = match outcome.action {
            IncidentAction::Acknowledge => "acknowledged",
            IncidentAction::Unacknowledge => "un-acknowledged",
        };
        match outcome.error {
            None => outln!("{} incident of {}: {what}", outcome.channel, outcome.check),
            Some(error) => {
                failed = true;
                eprintln!(
                    "error: {} incident of {} not {what}: {error} (the next evaluation retries it)",
                    outcome.channel, outcome.check
                );
            }
        }
    }
    Ok(if failed {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    })
}

async fn unack(args: UnackArgs) -> anyhow::Result<ExitCode> {
    let rules = read_rules(args.rules.as_ref())?;
    let store = args.state.open(&args.corp)?;
    let now = SystemClock.now();
    store
        .update(&args.corp, |state| {
            unacknowledge(
                state,
                &rules,
                &args.check,
                &args.channels,
                &args.by,
                AckMethod::Cli,
                now,
            )
        })
        .await?;
    outln!(
        "removed the acknowledgement of {}; it notifies again while it fires",
        args.check
    );
    update_incidents(&args.state, &store, &args.corp, &rules, now).await
}

async fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let rules = read_rules(Some(&args.rules))?;
    let Some(reference) = rules.ack.secret.clone() else {
        bail!(
            "{}: ack.secret is not set, so links cannot be verified",
            args.rules.display()
        );
    };
    let key = SigningKey::from_secret(args.state.secrets(), reference, SystemClock.now()).await?;
    let service = AckService {
        corp: args.corp.clone(),
        store: args.state.open(&args.corp)?,
        rules: Arc::new(rules),
        key,
        clock: Arc::new(SystemClock),
        incidents: IncidentSync {
            secrets: args.state.secrets(),
            deliverer: Deliverer::new(console(false))?,
        },
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let address = listener.local_addr()?;
    outln!(
        "acknowledgement pages on http://{address}/ack (corp {})",
        args.corp
    );
    agent_health::serve(listener, service)
        .await
        .context("serving acknowledgement pages")?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api_args::CredentialArgs;

    /// A fresh directory for one test's state (removed by the test).
    fn state_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "sigsci-kit-health-{name}-{}-{}",
            std::process::id(),
            new_run_id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn check_args(api_url: &str, token: &str, state: &std::path::Path) -> CheckArgs {
        CheckArgs {
            api: ApiArgs {
                api_url: api_url.to_string(),
                corp: Some("testcorp".to_string()),
                credentials: CredentialArgs {
                    email: Some("sim@example.com".to_string()),
                    token: Some(token.into()),
                    password: None,
                },
            },
            state: StateArgs {
                state: state.display().to_string(),
                s3_endpoint: None,
            },
            rules: None,
            output: OutputArgs::default(),
            json: false,
        }
    }

    #[tokio::test]
    async fn check_fails_when_no_site_could_be_evaluated_and_passes_when_they_are() {
        let sim = sigsci_sim::start(
            sigsci_sim::SimConfig::default(),
            "127.0.0.1:0".parse().unwrap(),
        )
        .await
        .unwrap();
        let dir = state_dir("check");
        let error = check(check_args(&sim.base_url, "wrong-token", &dir))
            .await
            .unwrap_err();
        let message = format!("{error:#}");
        assert!(message.contains("no site could be evaluated"), "{message}");
        assert!(message.contains("401"), "{message}");
        let healthy = check(check_args(&sim.base_url, "sim-token", &dir))
            .await
            .unwrap();
        assert_eq!(healthy, ExitCode::SUCCESS);
        std::fs::remove_dir_all(&dir).unwrap();
        sim.shutdown().await;
    }

    fn status_args(state: &std::path::Path, max_age: &str) -> StatusArgs {
        StatusArgs {
            corp: "testcorp".to_string(),
            state: StateArgs {
                state: state.display().to_string(),
                s3_endpoint: None,
            },
            max_age: Some(Period::parse(max_age).unwrap()),
            output: OutputArgs::default(),
        }
    }

    #[tokio::test]
    async fn check_exits_3_when_a_notification_could_not_be_delivered() {
        let sim = sigsci_sim::start(
            sigsci_sim::SimConfig::default(),
            "127.0.0.1:0".parse().unwrap(),
        )
        .await
        .unwrap();
        sim.state
            .set_fleet(
                "site-1",
                &sigsci_sim::FleetUpdate {
                    online: Some(0),
                    ..sigsci_sim::FleetUpdate::default()
                },
            )
            .unwrap();
        // SAFETY: a variable no other test reads, set before anything resolves it.
        unsafe { std::env::set_var("SIGSCI_KIT_TEST_UNREACHABLE_HOOK_KEY", "hook-key") };
        let dir = state_dir("undelivered");
        let rules = dir.join("rules.yaml");
        // Nothing listens on the discard port: the webhook's delivery is refused.
        std::fs::write(
            &rules,
            "channels:\n  - {name: hook, type: webhook, url: 'http://127.0.0.1:9/hook', \
             secret: 'env:SIGSCI_KIT_TEST_UNREACHABLE_HOOK_KEY', ack_enabled: false}\n",
        )
        .unwrap();
        let mut args = check_args(&sim.base_url, "sim-token", &dir);
        args.rules = Some(rules);
        assert_eq!(check(args).await.unwrap(), ExitCode::from(3));
        std::fs::remove_dir_all(&dir).unwrap();
        sim.shutdown().await;
    }

    #[tokio::test]
    async fn status_max_age_exits_2_on_a_stale_heartbeat_and_0_on_a_fresh_one() {
        let dir = state_dir("status");
        let never_ran = status(status_args(&dir, "15m")).await.unwrap();
        assert_eq!(never_ran, ExitCode::from(2));
        let started_at = (Utc::now() - chrono::TimeDelta::minutes(20)).to_rfc3339();
        let document = serde_json::json!({
            "version": 1, "corp": "testcorp",
            "heartbeat": {"run_id": "r1", "started_at": started_at, "sites_total": 1, "sites_evaluated": 1},
        });
        std::fs::create_dir_all(dir.join("agent-health")).unwrap();
        std::fs::write(dir.join("agent-health/testcorp.json"), document.to_string()).unwrap();
        let stale = status(status_args(&dir, "15m")).await.unwrap();
        assert_eq!(stale, ExitCode::from(2));
        let fresh = status(status_args(&dir, "30m")).await.unwrap();
        assert_eq!(fresh, ExitCode::SUCCESS);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

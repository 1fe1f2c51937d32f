//! `sigsci-kit health check|status|ack|unack|serve`: the agent-health library from the command line,
//! the same code the Lambdas run, with the state in a directory or on S3.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use agent_health::ack::{AckOutcome, AckRequest, acknowledge, unacknowledge};
use agent_health::channels::{ConsoleSink, Deliverer};
use agent_health::checks::ConditionKey;
use agent_health::clock::{Clock, SystemClock};
use agent_health::job::{Evaluator, RunReport, new_run_id};
use agent_health::period::Period;
use agent_health::rules::Rules;
use agent_health::secrets::{ACK_KEY_FIELD, SecretResolver};
use agent_health::state::{AckMethod, ChannelState, Condition, State};
use agent_health::store::StateStore;
use agent_health::web::AckService;
use anyhow::{Context, bail};
use chrono::{DateTime, TimeDelta, Utc};
use clap::{Args, Subcommand};
use kit_storage::{SecretSource, SecretsManager};

use crate::api_args::ApiArgs;

#[derive(Args, Debug)]
pub struct HealthArgs {
    #[command(subcommand)]
    command: HealthCommand,
}

#[derive(Subcommand, Debug)]
enum HealthCommand {
    /// Evaluate every site once and send the notifications that are due.
    Check(CheckArgs),
    /// Show the evaluator's heartbeat, open conditions, deliveries and acknowledgements.
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
    /// S3 endpoint override (moto, S3-compatible stores); AWS_ENDPOINT_URL works too.
    #[arg(long, env = "SIGSCI_KIT_S3_ENDPOINT")]
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
    /// Print the run report as JSON.
    #[arg(long)]
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
    /// Print the state document as JSON.
    #[arg(long)]
    json: bool,
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
    /// The check, as SITE/CHECK (e.g. www/no_agents_online); `health status` lists them.
    check: ConditionKey,
    /// Acknowledge only this channel (repeatable); default: every channel that accepts acknowledgements.
    #[arg(long = "channel")]
    channels: Vec<String>,
    /// End the acknowledgement early: an RFC 3339 time or a duration from now (e.g. 2h).
    #[arg(long, value_parser = parse_until)]
    until: Option<Until>,
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

#[derive(Clone, Debug)]
enum Until {
    At(DateTime<Utc>),
    In(Period),
}

fn parse_until(text: &str) -> Result<Until, String> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(Until::At(at.with_timezone(&Utc)));
    }
    Period::parse(text)
        .map(Until::In)
        .map_err(|error| format!("{text:?} is neither an RFC 3339 time nor a duration ({error})"))
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

fn stdout_console() -> ConsoleSink {
    Arc::new(|text: &str| println!("{text}"))
}

async fn check(args: CheckArgs) -> anyhow::Result<ExitCode> {
    // Rules first: a bad document stops the run before anything is evaluated.
    let rules = read_rules(args.rules.as_ref())?;
    let client = args.api.client()?;
    let evaluator = Evaluator {
        store: args.state.open(client.corp())?,
        client,
        secrets: args.state.secrets(),
        deliverer: Deliverer::new(stdout_console())?,
        clock: Arc::new(SystemClock),
    };
    let report = evaluator.run(&rules, &new_run_id()).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_report(report: &RunReport) {
    println!(
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
    if let Some(error) = &report.corp_error {
        println!("  could not list the sites: {error}");
    }
    for site in &report.sites_failed {
        println!("  could not evaluate site {site}");
    }
    for error in &report.errors {
        println!("  {error}");
    }
}

async fn status(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let store = args.state.open(&args.corp)?;
    let (state, etag) = store.load(&args.corp).await?;
    let now = Utc::now();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&state)?);
    } else {
        if etag.is_none() {
            println!(
                "no state at {} yet: the evaluator has never run for corp {}",
                store.location(),
                args.corp
            );
        } else {
            print!("{}", render_status(&state, now));
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

fn ago(now: DateTime<Utc>, then: DateTime<Utc>) -> String {
    let delta = now - then;
    let text = if delta < TimeDelta::minutes(1) {
        format!("{}s", delta.num_seconds().max(0))
    } else if delta < TimeDelta::hours(2) {
        format!("{}m", delta.num_minutes())
    } else if delta < TimeDelta::days(2) {
        format!("{}h", delta.num_hours())
    } else {
        format!("{}d", delta.num_days())
    };
    format!("{} ({text} ago)", then.format("%Y-%m-%d %H:%M:%S UTC"))
}

fn render_status(state: &State, now: DateTime<Utc>) -> String {
    let mut out = format!("corp {}\n", state.corp);
    match &state.heartbeat {
        None => out.push_str("evaluator: no run recorded\n"),
        Some(heartbeat) => {
            out.push_str(&format!(
                "evaluator: last run {} (run {}), {} of {} sites evaluated{}\n",
                ago(now, heartbeat.started_at),
                heartbeat.run_id,
                heartbeat.sites_evaluated,
                heartbeat.sites_total,
                if heartbeat.finished_at.is_some() {
                    ""
                } else {
                    ", deliveries not recorded yet"
                },
            ));
            if let Some(error) = &heartbeat.corp_error {
                out.push_str(&format!(
                    "  NOT EVALUATED: the site list could not be read: {error}\n"
                ));
            }
            for site in &heartbeat.sites_failed {
                let reason = state
                    .sites
                    .get(site)
                    .and_then(|s| s.last_error.clone())
                    .unwrap_or_default();
                out.push_str(&format!("  NOT EVALUATED: site {site}: {reason}\n"));
            }
        }
    }
    let firing = state.conditions.values().filter(|c| c.firing).count();
    out.push_str(&format!(
        "conditions: {firing} firing, {} resolving\n",
        state.conditions.len() - firing
    ));
    for (key, condition) in &state.conditions {
        out.push_str(&render_condition(key, condition, now));
    }
    if !state.ack_log.is_empty() {
        out.push_str("recent acknowledgements:\n");
        for event in state.ack_log.iter().rev().take(10) {
            let channels = if event.channels.is_empty() {
                "all channels".to_string()
            } else {
                event.channels.join(",")
            };
            out.push_str(&format!(
                "  {} {:?} {} [{channels}] by {} ({:?}){}\n",
                event.at.format("%Y-%m-%d %H:%M UTC"),
                event.action,
                event.check,
                event.by,
                event.how,
                event
                    .until
                    .map(|u| format!(" until {}", u.format("%Y-%m-%d %H:%M UTC")))
                    .unwrap_or_default(),
            ));
        }
    }
    out
}

fn render_condition(key: &ConditionKey, condition: &Condition, now: DateTime<Utc>) -> String {
    let label = if condition.firing {
        "FIRING  "
    } else {
        "RESOLVED"
    };
    let mut out = format!(
        "  {label} {key} [{}] since {}: {}\n",
        condition.severity,
        ago(now, condition.since),
        condition.finding.summary
    );
    if let Some(whole) = condition.acks.whole.as_ref() {
        out.push_str(&format!(
            "           acknowledged (all channels) by {} at {}\n",
            whole.by,
            whole.at.format("%H:%M UTC")
        ));
    }
    for (channel, ack) in &condition.acks.channels {
        out.push_str(&format!(
            "           acknowledged on {channel} by {} at {}\n",
            ack.by,
            ack.at.format("%H:%M UTC")
        ));
    }
    for (name, channel) in &condition.channels {
        out.push_str(&format!(
            "           {name}: {}\n",
            render_channel(channel, now)
        ));
    }
    out
}

fn render_channel(channel: &ChannelState, now: DateTime<Utc>) -> String {
    let mut parts = vec![format!("sent {}×", channel.sent)];
    if let Some(last) = channel.last_sent {
        parts.push(format!("last {}", ago(now, last)));
    }
    if let Some(pending) = &channel.pending {
        parts.push(format!(
            "{:?} in flight (run {})",
            pending.kind, pending.run_id
        ));
    }
    if let Some(error) = &channel.last_error {
        parts.push(format!(
            "{} failed attempt(s), last: {error}",
            channel.failures
        ));
    }
    parts.join(", ")
}

async fn ack(args: AckArgs) -> anyhow::Result<ExitCode> {
    let rules = read_rules(args.rules.as_ref())?;
    let store = args.state.open(&args.corp)?;
    let now = SystemClock.now();
    let until = args.until.map(|until| match until {
        Until::At(at) => at,
        Until::In(period) => now + period.delta(),
    });
    let request = AckRequest {
        check: args.check.clone(),
        channels: args.channels.clone(),
        until,
        by: args.by.clone(),
        how: AckMethod::Cli,
        via: None,
        episode: None,
    };
    let outcome = store
        .update(&args.corp, |state| {
            acknowledge(state, &rules, &request, now)
        })
        .await?;
    match outcome {
        AckOutcome::Acknowledged { channels } if channels.is_empty() => {
            println!(
                "acknowledged {} (no configured channel accepts acknowledgements, so nothing is silenced)",
                args.check
            )
        }
        AckOutcome::Acknowledged { channels } => println!(
            "acknowledged {}: silenced {}",
            args.check,
            channels.join(", ")
        ),
        AckOutcome::AlreadyAcknowledged => {
            println!("{} is already acknowledged; nothing changed", args.check)
        }
    }
    Ok(ExitCode::SUCCESS)
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
    println!(
        "removed the acknowledgement of {}; it notifies again while it fires",
        args.check
    );
    Ok(ExitCode::SUCCESS)
}

async fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let rules = read_rules(Some(&args.rules))?;
    let Some(reference) = rules.ack.secret.clone() else {
        bail!(
            "{}: ack.secret is not set, so links cannot be verified",
            args.rules.display()
        );
    };
    let key = args
        .state
        .secrets()
        .resolve(&reference, ACK_KEY_FIELD)
        .await?;
    let service = AckService {
        corp: args.corp.clone(),
        store: args.state.open(&args.corp)?,
        rules: Arc::new(rules),
        key,
        clock: Arc::new(SystemClock),
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let address = listener.local_addr()?;
    println!(
        "acknowledgement pages on http://{address}/ack (corp {})",
        args.corp
    );
    agent_health::web::serve(listener, service)
        .await
        .context("serving acknowledgement pages")?;
    Ok(ExitCode::SUCCESS)
}

/// The agent-health part of `sigsci-kit demo`, against the demo's in-process simulator: take `site`'s
/// agents offline, evaluate, print the console notification with its acknowledgement link, follow the
/// link as a person would (confirmation page, then Acknowledge), evaluate again (silenced), recover.
pub async fn demo(
    client: &sigsci::Client,
    sim: &sigsci_sim::SimState,
    site: &str,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("cannot bind the acknowledgement server")?;
    let ack_base = format!("http://{}", listener.local_addr()?);
    let rules = Rules::parse(
        &format!(
            "ack: {{base_url: '{ack_base}', secret: 'secretsmanager:demo/ack-key'}}\n\
             channels:\n  - {{name: console, type: console, throttle_period: 1h}}\n"
        ),
        "demo rules",
    )?;
    // A throw-away signing key for this demo only.
    let key_json =
        serde_json::json!({ "key": agent_health::links::AckLink::new_nonce() }).to_string();
    let secrets: Arc<dyn SecretSource> =
        Arc::new(kit_storage::StaticSecrets::new().with("demo/ack-key", key_json));
    let resolver = SecretResolver::new(Some(secrets));
    let store = StateStore::for_corp(Arc::new(kit_storage::MemoryStore::new()), client.corp());
    let printed = Arc::new(std::sync::Mutex::new(String::new()));
    let sink = Arc::clone(&printed);
    let console: ConsoleSink = Arc::new(move |text: &str| {
        for line in text.lines() {
            println!("    │ {line}");
        }
        if let Ok(mut all) = sink.lock() {
            all.push_str(text);
        }
    });
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let service = AckService {
        corp: client.corp().to_string(),
        store: store.clone(),
        rules: Arc::new(rules.clone()),
        key: resolver
            .resolve(
                rules
                    .ack
                    .secret
                    .as_ref()
                    .context("demo rules have an ack secret")?,
                ACK_KEY_FIELD,
            )
            .await?,
        clock: Arc::clone(&clock),
    };
    let server = tokio::spawn(agent_health::web::serve(listener, service));
    let evaluator = Evaluator {
        client: client.clone(),
        store: store.clone(),
        secrets: resolver,
        deliverer: Deliverer::new(console)?,
        clock,
    };

    println!("\nagent health (state in memory, acknowledgement pages on {ack_base}/ack)");
    let outcome = demo_steps(&evaluator, &rules, sim, site, &printed).await;
    server.abort();
    outcome?;
    let (state, _) = store.load(client.corp()).await?;
    println!("  status now:");
    for line in render_status(&state, Utc::now()).lines() {
        println!("    {line}");
    }
    Ok(())
}

async fn demo_steps(
    evaluator: &Evaluator,
    rules: &Rules,
    sim: &sigsci_sim::SimState,
    site: &str,
    printed: &std::sync::Mutex<String>,
) -> anyhow::Result<()> {
    let report = evaluator.run(rules, &new_run_id()).await?;
    println!(
        "  1. all sites healthy: {} evaluated, {} firing",
        report.sites_evaluated, report.conditions_firing
    );

    let offline = sigsci_sim::FleetUpdate {
        online: Some(0),
        ..sigsci_sim::FleetUpdate::default()
    };
    sim.set_fleet(site, &offline)
        .map_err(|e| anyhow::anyhow!("cannot change the simulated fleet: {e}"))?;
    println!("  2. {site}: every agent taken offline; evaluating, the console channel prints:");
    evaluator.run(rules, &new_run_id()).await?;
    let text = printed.lock().map(|t| t.clone()).unwrap_or_default();
    let link = text
        .lines()
        .find_map(|line| line.trim().strip_prefix("acknowledge: "))
        .context("the notification carried no acknowledgement link")?
        .to_string();

    let http = reqwest::Client::new();
    let page = http
        .get(&link)
        .send()
        .await
        .context("opening the acknowledgement link")?;
    println!(
        "  3. opening the link: HTTP {} (a confirmation page with an Acknowledge button)",
        page.status().as_u16()
    );
    let mut form: Vec<(String, String)> =
        url::Url::parse(&link)?.query_pairs().into_owned().collect();
    form.push(("by".into(), "demo user".into()));
    let action = link.split('?').next().unwrap_or(&link).to_string();
    let confirmed = http
        .post(action)
        .form(&form)
        .send()
        .await
        .context("confirming the acknowledgement")?;
    println!(
        "     pressing Acknowledge: HTTP {}",
        confirmed.status().as_u16()
    );

    let report = evaluator.run(rules, &new_run_id()).await?;
    println!(
        "  4. evaluating again while {site} is still down: {} sent, {} silenced by the acknowledgement",
        report.notifications_sent, report.notifications_acknowledged
    );

    let online = sigsci_sim::FleetUpdate {
        online: Some(3),
        ..sigsci_sim::FleetUpdate::default()
    };
    sim.set_fleet(site, &online)
        .map_err(|e| anyhow::anyhow!("cannot change the simulated fleet: {e}"))?;
    println!("  5. {site} back online; evaluating, the console channel prints:");
    evaluator.run(rules, &new_run_id()).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use secrecy::SecretString;
    use sigsci::{CredentialSecret, Credentials};
    use sigsci_sim::SimConfig;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn demo_walks_outage_ack_and_recovery_against_the_simulator() {
        let config = SimConfig::default();
        let sim = sigsci_sim::start(config.clone(), ([127, 0, 0, 1], 0).into())
            .await
            .unwrap();
        let credentials = Credentials {
            email: config.email.clone(),
            secret: CredentialSecret::Token(SecretString::from(config.token.clone())),
        };
        let client =
            sigsci::Client::builder(sim.base_url.clone(), config.corp.clone(), credentials)
                .build()
                .unwrap();
        demo(&client, &sim.state, "site-2").await.unwrap();
        sim.shutdown().await;
    }

    #[test]
    fn status_names_unevaluated_sites_and_acknowledgements() {
        let now = Utc::now();
        let text = r#"{"version": 1, "corp": "testcorp",
            "heartbeat": {"run_id": "r1", "started_at": "2024-01-01T00:00:00Z", "sites_total": 2, "sites_evaluated": 1, "sites_failed": ["www"]},
            "sites": {"www": {"observed_at": "2024-01-01T00:00:00Z", "agents": 0, "online": 0, "rps": 0.0, "consecutive_failures": 1, "last_error": "503 server error: down"}},
            "conditions": {"api/no_agents_online": {"firing": true, "episode": "r0", "since": "2024-01-01T00:00:00Z", "severity": "critical",
                "finding": {"summary": "0 of 3 agents online", "value": 0.0, "threshold": 1.0}, "updated_at": "2024-01-01T00:00:00Z",
                "acks": {"whole": {"by": "ann", "at": "2024-01-01T00:01:00Z", "how": "link"}},
                "channels": {"slack": {"episode": "r0", "notified": true, "sent": 1, "last_sent": "2024-01-01T00:00:00Z"}}}}}"#;
        let state: State = serde_json::from_str(text).unwrap();
        let status = render_status(&state, now);
        assert!(
            status.contains("NOT EVALUATED: site www: 503 server error: down"),
            "{status}"
        );
        assert!(
            status.contains("FIRING   api/no_agents_online [critical]"),
            "{status}"
        );
        assert!(
            status.contains("acknowledged (all channels) by ann"),
            "{status}"
        );
        assert!(status.contains("slack: sent 1×"), "{status}");
    }

    #[test]
    fn until_takes_a_time_or_a_duration() {
        assert!(matches!(parse_until("2h"), Ok(Until::In(_))));
        assert!(matches!(
            parse_until("2030-01-01T00:00:00Z"),
            Ok(Until::At(_))
        ));
        assert!(parse_until("tomorrow").unwrap_err().contains("neither"));
    }
}

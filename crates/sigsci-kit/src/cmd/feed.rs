//! `sigsci-kit feed export|backfill|status|verify`: the feed exporter's library behind flags.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use feed_export::status::SiteStatus;
use feed_export::window::{Hour, check_range, parse_time};
use feed_export::{
    ExportRequest, ExportSettings, Exporter, HourSummary, RunOutcome, RunReport, SiteSelection,
    system_clock,
};
use kit_storage::ObjectStore;

use crate::api_args::ApiArgs;
use crate::progress_bar::ProgressBar;

#[derive(Args, Debug)]
pub struct FeedArgs {
    #[command(subcommand)]
    command: FeedCommand,
}

/// The exit codes of `export` and `backfill`, for schedulers and scripts.
const EXPORT_EXIT_CODES: &str = "\
Exit codes:
  0  every requested hour is complete
  1  error (bad input, credentials, storage, or a site that did not finish)
  3  some hours are pending (busy under another exporter's lease, not yet served, or the
     deadline came): run again later
  4  some hours are lost: they left the API's retention before they were exported";

/// Exit code 3: requested hours are left for a later run.
const EXIT_PENDING: u8 = 3;
/// Exit code 4: requested hours are lost for good.
const EXIT_LOST: u8 = 4;

#[derive(Subcommand, Debug)]
enum FeedCommand {
    /// Export every incomplete hour still in the API's retention (or --from/--until).
    #[command(after_help = EXPORT_EXIT_CODES)]
    Export(ExportArgs),
    /// Export the hours that --from/--until touch.
    #[command(after_help = EXPORT_EXIT_CODES)]
    Backfill(ExportArgs),
    /// Complete / pending / lost hours per site, from the ledger and manifests.
    Status(StatusArgs),
    /// Re-read an hour's parts and check them against its manifest.
    Verify(VerifyArgs),
}

#[derive(Args, Debug)]
struct Destination {
    /// Output: a directory, or s3://bucket/prefix.
    #[arg(long, env = "SIGSCI_FEED_OUT", default_value = "./sigsci-data")]
    out: String,
    /// S3-compatible endpoint URL (e.g. MinIO, moto) instead of AWS; without it the AWS SDK's
    /// AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL apply.
    #[arg(long)]
    s3_endpoint: Option<String>,
}

impl Destination {
    fn open(&self) -> anyhow::Result<Arc<dyn ObjectStore>> {
        kit_storage::open(&self.out, self.s3_endpoint.as_deref())
            .with_context(|| format!("--out {:?}", self.out))
    }
}

#[derive(Args, Debug)]
struct ExportArgs {
    #[command(flatten)]
    api: ApiArgs,
    #[command(flatten)]
    destination: Destination,
    /// Site short name (repeatable); default every site of the corp.
    #[arg(long = "site")]
    sites: Vec<String>,
    /// Start of the range: RFC3339 or epoch seconds, on a whole minute.
    #[arg(long)]
    from: Option<String>,
    /// End of the range (exclusive): RFC3339 or epoch seconds, on a whole minute.
    #[arg(long)]
    until: Option<String>,
    /// gzip level of the parts (0-9).
    #[arg(long, default_value_t = feed_export::DEFAULT_GZIP_LEVEL, value_parser = clap::value_parser!(u32).range(0..=9))]
    gzip_level: u32,
    /// Seconds an hour's lease lasts without renewal; a crashed run's hours are free after this.
    #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(i64).range(10..))]
    lease_ttl: i64,
}

#[derive(Args, Debug)]
struct StatusArgs {
    #[command(flatten)]
    api: ApiArgs,
    #[command(flatten)]
    destination: Destination,
    /// Site short name (repeatable, checked against the corp's sites); default every site of the corp.
    #[arg(long = "site")]
    sites: Vec<String>,
}

#[derive(Args, Debug)]
struct VerifyArgs {
    /// Corp short name.
    #[arg(long, env = "SIGSCI_CORP")]
    corp: String,
    #[command(flatten)]
    destination: Destination,
    #[arg(long)]
    site: String,
    /// Any time inside the hour (RFC3339 or epoch seconds).
    #[arg(long)]
    hour: String,
}

pub async fn run(args: FeedArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        FeedCommand::Export(args) => export(args, false).await,
        FeedCommand::Backfill(args) => export(args, true).await,
        FeedCommand::Status(args) => status(args).await,
        FeedCommand::Verify(args) => verify(args).await,
    }
}

fn selection(sites: &[String]) -> SiteSelection {
    if sites.is_empty() {
        SiteSelection::All
    } else {
        SiteSelection::Only(sites.to_vec())
    }
}

async fn export(args: ExportArgs, require_range: bool) -> anyhow::Result<ExitCode> {
    let range = match (&args.from, &args.until) {
        (Some(from), Some(until)) => {
            let (from, until) = (parse_time("--from", from)?, parse_time("--until", until)?);
            check_range(from, until, system_clock().now(), ["--from", "--until"])?;
            Some((from, until))
        }
        (None, None) if require_range => bail!("backfill needs --from and --until"),
        (None, None) => None,
        _ => bail!("give both --from and --until, or neither"),
    };
    let store = args.destination.open()?;
    let client = args.api.client()?;
    let mut settings = ExportSettings::default();
    settings.pipeline.gzip_level = args.gzip_level;
    settings.lease_ttl_secs = args.lease_ttl;
    let mut exporter = Exporter::new(client, store, system_clock()).with_settings(settings);
    let bar = std::io::stderr()
        .is_terminal()
        .then(|| Arc::new(ProgressBar::for_stderr()));
    if let Some(bar) = &bar {
        exporter = exporter.with_progress(bar.clone());
    }
    let report = exporter
        .run(
            &ExportRequest {
                sites: selection(&args.sites),
                range,
            },
            None,
        )
        .await?;
    if let Some(bar) = &bar {
        bar.finish();
    }
    print_report(&report);
    let errors = report.errors();
    if !errors.is_empty() {
        bail!(
            "{} site(s) did not finish: {}",
            errors.len(),
            errors.join("; ")
        );
    }
    Ok(match report.outcome() {
        RunOutcome::Complete => ExitCode::SUCCESS,
        RunOutcome::Pending => ExitCode::from(EXIT_PENDING),
        RunOutcome::Lost => ExitCode::from(EXIT_LOST),
    })
}

fn print_report(report: &RunReport) {
    for site in &report.sites {
        for hour in &site.exported {
            println!("{}", hour_line(hour));
        }
        for hour in &site.lost {
            println!(
                "{} {hour}  LOST (left the API's retention before it was exported)",
                site.site
            );
        }
        for hour in &site.busy {
            println!(
                "{} {hour}  busy (another exporter holds its lease)",
                site.site
            );
        }
    }
    // Busy hours are pending too: nobody has committed them yet.
    let busy = match report.hours_busy() {
        0 => String::new(),
        busy => format!(" ({busy} busy)"),
    };
    println!(
        "run {}: exported {} hours ({} records), lost {}, pending {}{busy}{}",
        report.run_id,
        report.hours_exported(),
        report.sites.iter().map(|s| s.records()).sum::<u64>(),
        report.hours_lost(),
        report.hours_pending(),
        if report.stopped_for_deadline {
            " (stopped at the deadline)"
        } else {
            ""
        }
    );
}

fn hour_line(hour: &HourSummary) -> String {
    format!(
        "{} {}  {:>9} records  {:>3} parts  {:>10.1} KiB  {:>5} pages  {:>3} retries  {:>3} restarts  {:>5.1}s",
        hour.site,
        hour.hour,
        hour.records,
        hour.parts,
        hour.bytes as f64 / 1024.0,
        hour.pages,
        hour.retries,
        hour.restarts,
        hour.seconds
    )
}

async fn status(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let store = args.destination.open()?;
    let corp = args.api.corp()?.to_string();
    // Sites are checked against the API, not against the ledgers under --out: only the API can
    // tell a mistyped site from a real one that was never exported here, and the second is worth
    // seeing. Status already asks the API for the site list when no --site is given.
    let known: Vec<String> = args
        .api
        .client()?
        .list_sites()
        .await
        .context("listing the corp's sites")?
        .into_iter()
        .map(|s| s.name)
        .collect();
    let unknown: Vec<&str> = args
        .sites
        .iter()
        .filter(|site| !known.contains(site))
        .map(String::as_str)
        .collect();
    if !unknown.is_empty() {
        bail!(
            "--site: corp {corp} has no site {} (its sites: {})",
            unknown.join(", "),
            known.join(", ")
        );
    }
    let sites = if args.sites.is_empty() {
        known
    } else {
        args.sites.clone()
    };
    // Every site is read before anything is printed: a storage error (a missing bucket) must not
    // leave half a table behind it.
    let now = system_clock().now();
    let mut statuses = Vec::with_capacity(sites.len());
    for site in &sites {
        statuses.push(
            feed_export::status::site_status(store.as_ref(), &corp, site, now)
                .await
                .with_context(|| format!("--out {:?}", args.destination.out))?,
        );
    }
    if !statuses.iter().any(|s| s.ledger_found) {
        bail!(
            "--out {:?}: no feed export of {} there (no ledger); check --out, or run `sigsci-kit feed export --out {}` first",
            args.destination.out,
            sites.join(", "),
            args.destination.out
        );
    }
    print_status(&statuses);
    Ok(ExitCode::SUCCESS)
}

fn print_status(statuses: &[SiteStatus]) {
    println!(
        "{:<24} {:>8} {:>8} {:>5}",
        "site", "complete", "pending", "lost"
    );
    for status in statuses {
        if !status.ledger_found {
            // Without a ledger every retained hour would show as pending: say what it means.
            println!(
                "{:<24} never exported to this --out (no ledger)",
                status.site
            );
            continue;
        }
        println!(
            "{:<24} {:>8} {:>8} {:>5}",
            status.site,
            status.complete.len(),
            status.pending.len(),
            status.lost.len()
        );
        for hour in &status.lost {
            println!("  lost    {hour}");
        }
        for hour in &status.pending {
            println!("  pending {hour}");
        }
    }
}

async fn verify(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let store = args.destination.open()?;
    let hour = Hour::containing(parse_time("--hour", &args.hour).or_else(|_| {
        // An hour like 2024-05-01T10:00Z or one with seconds is fine here: any instant inside it.
        chrono::DateTime::parse_from_rfc3339(&args.hour)
            .map(|t| t.timestamp() - t.timestamp() % 60)
            .context("--hour is neither RFC3339 nor epoch seconds")
    })?);
    let result =
        feed_export::verify::verify_hour(store.as_ref(), &args.corp, &args.site, hour).await?;
    println!(
        "{} {} {}: {} parts, {} records (manifest {})",
        args.corp, args.site, hour, result.parts, result.records, result.manifest_records
    );
    if result.ok() {
        println!("OK: counts and sha256 match the manifest, no duplicates, no stray parts");
        Ok(ExitCode::SUCCESS)
    } else {
        for problem in &result.problems {
            println!("problem: {problem}");
        }
        bail!(
            "{} {hour}: {} problem(s) found",
            args.site,
            result.problems.len()
        )
    }
}

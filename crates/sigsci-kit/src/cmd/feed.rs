//! `sigsci-kit feed export|backfill|status|verify`: the feed exporter's library behind flags.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use feed_export::status::SiteStatus;
use feed_export::window::{Hour, check_range};
use feed_export::{
    ExportRequest, ExportSettings, Exporter, HourSummary, RunOutcome, RunReport, SiteSelection,
    system_clock,
};
use kit_storage::ObjectStore;

use crate::api_args::ApiArgs;
use crate::output::{OutputArgs, Table, out, outln};
use crate::progress_bar::ProgressBar;
use crate::times::{self, Relative};

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
    /// Start of the range: RFC 3339, a date (YYYY-MM-DD, midnight UTC), epoch seconds, or a
    /// duration ago (6h); on a whole minute (a duration is rounded down to one).
    #[arg(long)]
    from: Option<String>,
    /// End of the range (exclusive), in the forms --from takes (1h: an hour ago).
    #[arg(long)]
    until: Option<String>,
    /// gzip level of the parts (0-9).
    #[arg(long, default_value_t = feed_export::DEFAULT_GZIP_LEVEL, value_parser = clap::value_parser!(u32).range(0..=9))]
    gzip_level: u32,
    /// Seconds an hour's lease lasts without renewal; a crashed run's hours are free after this.
    #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(i64).range(10..))]
    lease_ttl: i64,
    #[command(flatten)]
    ocsf: OcsfArgs,
    #[command(flatten)]
    output: OutputArgs,
}

/// Where the OCSF Parquet is, and how to reach it.
#[derive(Args, Debug)]
struct OcsfStore {
    /// Where the Parquet goes: a directory or s3://bucket/prefix (default: OUT/ocsf).
    #[arg(long)]
    ocsf_out: Option<String>,
    /// An IAM role to assume (STS AssumeRole) for the OCSF store, e.g. the one a Security Lake
    /// grants its custom source; STS's endpoint is AWS_ENDPOINT_URL_STS or AWS_ENDPOINT_URL.
    #[arg(long, env = "SIGSCI_KIT_OCSF_ROLE_ARN")]
    ocsf_role_arn: Option<String>,
}

impl OcsfStore {
    fn open(&self, destination: &Destination) -> anyhow::Result<Arc<dyn ObjectStore>> {
        if let Some(arn) = self
            .ocsf_role_arn
            .as_deref()
            .filter(|arn| !feed_export::environment::is_role_arn(arn))
        {
            bail!(
                "--ocsf-role-arn: {arn:?} is not an IAM role ARN (arn:PARTITION:iam::ACCOUNT:role/NAME)"
            );
        }
        let location = self
            .ocsf_out
            .clone()
            .unwrap_or_else(|| feed_export::ocsf_output::default_location(&destination.out));
        kit_storage::open_as(
            &location,
            destination.s3_endpoint.as_deref(),
            self.ocsf_role_arn.as_deref(),
        )
        .with_context(|| format!("--ocsf-out {location:?}"))
    }
}

/// The OCSF Parquet output (docs/ocsf-mapping.md).
#[derive(Args, Debug)]
struct OcsfArgs {
    /// ndjson (the records as the API sent them), ocsf-parquet (OCSF HTTP Activity events in
    /// Parquet), or both; either way one manifest per hour lists every part.
    // Its own id: `-o`'s field is `format` too.
    #[arg(id = "feed_format", long = "format", value_name = "FORMAT", env = "SIGSCI_KIT_FEED_FORMAT", default_value = "ndjson", value_parser = feed_export::Format::NAMES)]
    format: String,
    #[command(flatten)]
    store: OcsfStore,
    /// hive (corp=/site=/dt=/hour=, as the NDJSON) or security-lake
    /// (ext/SOURCE/region=REGION/accountId=ACCOUNT/eventDay=YYYYMMDD/, a custom source).
    #[arg(long, default_value = "hive", value_parser = ["hive", "security-lake"])]
    ocsf_layout: String,
    /// The Security Lake custom source's name.
    #[arg(long)]
    ocsf_source: Option<String>,
    /// The Security Lake's region.
    #[arg(long)]
    ocsf_region: Option<String>,
    /// The AWS account the records belong to, in the Security Lake layout (12 digits).
    #[arg(long)]
    ocsf_account_id: Option<String>,
}

impl OcsfArgs {
    fn outputs(&self, destination: &Destination) -> anyhow::Result<feed_export::Outputs> {
        let format: feed_export::Format = self.format.parse().map_err(anyhow::Error::msg)?;
        let ocsf = if format.ocsf() {
            let layout = feed_export::Layout::parse(
                &self.ocsf_layout,
                self.ocsf_source.as_deref(),
                self.ocsf_region.as_deref(),
                self.ocsf_account_id.as_deref(),
                [
                    "--ocsf-layout",
                    "--ocsf-source",
                    "--ocsf-region",
                    "--ocsf-account-id",
                ],
            )?;
            let store = self.store.open(destination)?;
            Some(feed_export::OcsfOutput { store, layout })
        } else {
            None
        };
        Ok(feed_export::Outputs::new(format, ocsf)?)
    }
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
    #[command(flatten)]
    output: OutputArgs,
}

#[derive(Args, Debug)]
struct VerifyArgs {
    /// Corp short name.
    #[arg(long, env = "SIGSCI_CORP")]
    corp: String,
    #[command(flatten)]
    destination: Destination,
    /// Site short name.
    #[arg(long)]
    site: String,
    /// Any time inside the hour: RFC 3339, a date, epoch seconds, or a duration ago (2h).
    #[arg(long)]
    hour: String,
    /// The OCSF parts the manifest lists are checked there.
    #[command(flatten)]
    ocsf: OcsfStore,
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
            let (from, until) = (range_end("--from", from)?, range_end("--until", until)?);
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
    settings.pipeline.outputs = args.ocsf.outputs(&args.destination)?;
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
    if args.output.is_document() {
        args.output.print_document(&report)?;
    } else {
        print_report(&report);
    }
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

/// A range end as epoch seconds on a whole minute (durations already land on one).
fn range_end(flag: &str, text: &str) -> anyhow::Result<i64> {
    let at = times::parse(flag, text, chrono::Utc::now(), Relative::Ago)?;
    if at.timestamp() % 60 != 0 {
        bail!("{flag}: {} is not on a whole minute", at.to_rfc3339());
    }
    Ok(at.timestamp())
}

fn print_report(report: &RunReport) {
    for site in &report.sites {
        for hour in &site.exported {
            outln!("{}", hour_line(hour));
        }
        for hour in &site.lost {
            outln!(
                "{} {hour}  LOST (left the API's retention before it was exported)",
                site.site
            );
        }
        for hour in &site.busy {
            outln!(
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
    let nothing_to_do = report.hours_exported() == 0
        && report.hours_lost() == 0
        && report.hours_pending() == 0
        && report.errors().is_empty();
    if nothing_to_do {
        outln!(
            "run {}: every requested hour is already complete, skipped",
            report.run_id
        );
        return;
    }
    outln!(
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
    let ocsf = match &hour.ocsf {
        Some(ocsf) => format!(
            "  ocsf: {:>9} records  {:>3} parts  {:>10.1} KiB",
            ocsf.records,
            ocsf.parts,
            ocsf.bytes as f64 / 1024.0
        ),
        None => String::new(),
    };
    format!(
        "{} {}  {:>9} records  {:>3} parts  {:>10.1} KiB  {:>5} pages  {:>3} retries  {:>3} restarts  {:>5.1}s{ocsf}",
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
    if args.output.is_document() {
        let sites: Vec<StatusDocument> = statuses.iter().map(StatusDocument::of).collect();
        args.output
            .print_document(&serde_json::json!({ "sites": sites }))?;
    } else {
        out!("{}", status_table(&statuses, args.output.wide()));
    }
    Ok(ExitCode::SUCCESS)
}

/// One site in `feed status -o json|yaml`: hours as RFC 3339 starts, and the pending hours as
/// ranges `[from, until)`.
#[derive(serde::Serialize)]
struct StatusDocument {
    site: String,
    ledger_found: bool,
    complete: Vec<String>,
    pending: Vec<String>,
    lost: Vec<String>,
    pending_ranges: Vec<HourRange>,
}

impl StatusDocument {
    fn of(status: &SiteStatus) -> StatusDocument {
        let rfc3339 = |hours: &[String]| {
            hours
                .iter()
                .filter_map(|h| hour_start(h))
                .map(|h| h.to_rfc3339())
                .collect()
        };
        StatusDocument {
            site: status.site.clone(),
            ledger_found: status.ledger_found,
            complete: rfc3339(&status.complete),
            pending: rfc3339(&status.pending),
            lost: rfc3339(&status.lost),
            pending_ranges: hour_ranges(&status.pending),
        }
    }
}

#[derive(serde::Serialize, Debug, PartialEq)]
struct HourRange {
    from: chrono::DateTime<chrono::Utc>,
    until: chrono::DateTime<chrono::Utc>,
    hours: usize,
}

impl std::fmt::Display for HourRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let start = self.from.format("%Y-%m-%dT%H:00Z");
        if self.hours == 1 {
            write!(f, "{start}")
        } else {
            let last = (self.until - chrono::TimeDelta::hours(1)).format("%Y-%m-%dT%H:00Z");
            write!(f, "{start}..{last} ({}h)", self.hours)
        }
    }
}

/// An hour as `feed_export::status` names it (`2026-11-26T08:00Z`).
fn hour_start(hour: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::NaiveDateTime::parse_from_str(hour, "%Y-%m-%dT%H:%MZ")
        .ok()
        .map(|t| t.and_utc())
}

/// Runs of consecutive hours collapsed into ranges, so a day behind reads as one line.
fn hour_ranges(hours: &[String]) -> Vec<HourRange> {
    let mut starts: Vec<_> = hours.iter().filter_map(|h| hour_start(h)).collect();
    starts.sort();
    let mut ranges: Vec<HourRange> = Vec::new();
    for start in starts {
        match ranges.last_mut() {
            Some(range) if range.until == start => {
                range.until = start + chrono::TimeDelta::hours(1);
                range.hours += 1;
            }
            _ => ranges.push(HourRange {
                from: start,
                until: start + chrono::TimeDelta::hours(1),
                hours: 1,
            }),
        }
    }
    ranges
}

fn joined(ranges: &[HourRange]) -> String {
    if ranges.is_empty() {
        return "-".to_string();
    }
    ranges
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn status_table(statuses: &[SiteStatus], wide: bool) -> String {
    let mut headers = vec!["SITE", "COMPLETE", "PENDING", "LOST", "PENDING HOURS"];
    if wide {
        headers.push("LOST HOURS");
    }
    let mut table = Table::new(headers);
    for status in statuses {
        if !status.ledger_found {
            // Without a ledger every retained hour would show as pending: say what it means.
            table.row(vec![
                status.site.clone(),
                "-".into(),
                "-".into(),
                "-".into(),
                "never exported to this --out (no ledger)".into(),
            ]);
            continue;
        }
        let mut row = vec![
            status.site.clone(),
            status.complete.len().to_string(),
            status.pending.len().to_string(),
            status.lost.len().to_string(),
            joined(&hour_ranges(&status.pending)),
        ];
        if wide {
            row.push(joined(&hour_ranges(&status.lost)));
        }
        table.row(row);
    }
    table.render()
}

async fn verify(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let store = args.destination.open()?;
    // An OCSF store that cannot be opened (a role given for a directory) only matters to an hour
    // that lists OCSF parts.
    let (ocsf, ocsf_error) = match args.ocsf.open(&args.destination) {
        Ok(ocsf) => (Some(ocsf), None),
        Err(error) => (None, Some(error)),
    };
    let hour = Hour::containing(
        times::parse("--hour", &args.hour, chrono::Utc::now(), Relative::Ago)?.timestamp(),
    );
    let result = feed_export::verify::verify_hour(
        store.as_ref(),
        ocsf.as_deref(),
        &args.corp,
        &args.site,
        hour,
    )
    .await?;
    outln!(
        "{} {} {}: {} parts, {} records (manifest {})",
        args.corp,
        args.site,
        hour,
        result.parts,
        result.records,
        result.manifest_records
    );
    if let (Some(error), Some(_)) = (ocsf_error, &result.ocsf) {
        return Err(error);
    }
    if let (Some(checked), Some(ocsf)) = (&result.ocsf, &ocsf) {
        outln!(
            "ocsf ({}): {} parts, {} events, {:.1} KiB",
            ocsf.location(),
            checked.parts,
            checked.records,
            checked.bytes as f64 / 1024.0
        );
    }
    if result.ok() {
        let what = if result.ocsf.is_some() {
            ", the OCSF parts parse and hold the same ids"
        } else {
            ""
        };
        outln!("OK: counts and sha256 match the manifest, no duplicates, no stray parts{what}");
        Ok(ExitCode::SUCCESS)
    } else {
        for problem in &result.problems {
            outln!("problem: {problem}");
        }
        bail!(
            "{} {hour}: {} problem(s) found",
            args.site,
            result.problems.len()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consecutive_pending_hours_collapse_into_ranges() {
        let hours: Vec<String> = [
            "2026-11-26T08:00Z",
            "2026-11-26T09:00Z",
            "2026-11-26T10:00Z",
            "2026-11-26T13:00Z",
        ]
        .iter()
        .map(ToString::to_string)
        .collect();
        assert_eq!(
            joined(&hour_ranges(&hours)),
            "2026-11-26T08:00Z..2026-11-26T10:00Z (3h), 2026-11-26T13:00Z"
        );
        assert_eq!(joined(&hour_ranges(&[])), "-");
    }
}

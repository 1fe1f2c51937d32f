//! A run: for each site, every incomplete hour (in retention, or in the requested range), oldest
//! first, within the deadline; hours that fell out of retention are recorded as lost.

use std::sync::Arc;
use std::time::Duration;

use kit_storage::ObjectStore;
use sigsci::Client;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::clock::SharedClock;
use crate::error::{ExportError, Result};
use crate::hour::HourJob;
use crate::lease::Lease;
use crate::ledger::{self, HourState, Ledger, LedgerChanges};
use crate::manifest::Manifest;
use crate::pipeline::PipelineSettings;
use crate::progress::{Progress, Quiet};
use crate::reachability::Reachability;
use crate::report::{HourSummary, RunReport, SiteReport};
use crate::window::{Hour, check_range, keys};

pub const LOST_REASON: &str = "not exported before it left the API's retention (24 h 5 min)";

#[derive(Clone, Debug)]
pub struct ExportSettings {
    /// Concurrent cursors per site (the API allows 2).
    pub cursors_per_site: usize,
    /// Concurrent cursors across the corp's sites (the API allows 5).
    pub cursors_per_corp: usize,
    pub pipeline: PipelineSettings,
    pub lease_ttl_secs: i64,
    /// Attempts per sub-window before the hour is given up for this run.
    pub max_window_attempts: u32,
    /// Stop this long before the deadline (at most a quarter of the run's time).
    pub deadline_margin: Duration,
}

impl Default for ExportSettings {
    fn default() -> Self {
        ExportSettings {
            cursors_per_site: 2,
            cursors_per_corp: 5,
            pipeline: PipelineSettings {
                gzip_level: DEFAULT_GZIP_LEVEL,
                page_limit: sigsci::MAX_PAGE_SIZE,
                max_window_records: 50_000,
                outputs: crate::ocsf_output::Outputs::default(),
            },
            lease_ttl_secs: 600,
            max_window_attempts: 8,
            deadline_margin: Duration::from_secs(20),
        }
    }
}

/// gzip level of the parts: with zlib-rs, compression stays the bulk of the CPU cost while being
/// cheap enough (see the benchmark).
pub const DEFAULT_GZIP_LEVEL: u32 = 5;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SiteSelection {
    /// Every site of the corp, as the API lists them.
    All,
    Only(Vec<String>),
}

/// What to export: scheduled (`range: None`, every incomplete hour in retention) or a backfill of
/// every hour that `[from, until)` touches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportRequest {
    pub sites: SiteSelection,
    pub range: Option<(i64, i64)>,
}

/// What the sites of one run share.
#[derive(Clone)]
struct RunShared {
    /// Cursors the whole corp may hold.
    corp_cursors: Arc<Semaphore>,
    reachability: Arc<Reachability>,
}

pub struct Exporter {
    client: Client,
    store: Arc<dyn ObjectStore>,
    clock: SharedClock,
    settings: ExportSettings,
    run_id: String,
    progress: Arc<dyn Progress>,
}

enum HourResult {
    Exported(Box<Manifest>, f64),
    AlreadyComplete,
    Busy,
    Lost,
    /// The API refused the hour as out of retention while our clock still has it in: the API's
    /// clock runs ahead. Retried next run, recorded lost once our clock agrees.
    RefusedBySkewedApi,
}

pub fn new_run_id(now: i64) -> String {
    format!("{now}-{:08x}", rand::random::<u32>())
}

impl Exporter {
    pub fn new(client: Client, store: Arc<dyn ObjectStore>, clock: SharedClock) -> Exporter {
        let run_id = new_run_id(clock.now());
        Exporter {
            client,
            store,
            clock,
            settings: ExportSettings::default(),
            run_id,
            progress: Arc::new(Quiet),
        }
    }

    pub fn with_settings(mut self, settings: ExportSettings) -> Exporter {
        self.settings = settings;
        self
    }

    pub fn with_progress(mut self, progress: Arc<dyn Progress>) -> Exporter {
        self.progress = progress;
        self
    }

    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// Runs until done or `deadline`. Errors that no rerun can fix (credentials, configuration,
    /// permissions) fail the run; per-site transient failures are in the report.
    pub async fn run(
        &self,
        request: &ExportRequest,
        deadline: Option<Instant>,
    ) -> Result<RunReport> {
        let corp = self.client.corp().to_string();
        let now = self.clock.now();
        if let Some((from, until)) = request.range {
            check_range(from, until, now, ["from", "until"])?;
        }
        let sites = self.resolve_sites(&request.sites).await?;
        let shared = RunShared {
            corp_cursors: Arc::new(Semaphore::new(self.settings.cursors_per_corp.max(1))),
            reachability: Arc::default(),
        };
        let runs = sites
            .iter()
            .map(|site| self.run_site(site, request.range, deadline, shared.clone()));
        let outcomes = futures::future::join_all(runs).await;
        let mut report = RunReport {
            run_id: self.run_id.clone(),
            corp,
            now,
            sites: Vec::new(),
            stopped_for_deadline: false,
        };
        let mut fatal = None;
        for (site, stopped, error) in outcomes {
            report.stopped_for_deadline |= stopped;
            if let Some(error) = error
                && !error.is_transient()
                && fatal.is_none()
            {
                fatal = Some(error);
            }
            report.sites.push(site);
        }
        match fatal {
            Some(error) => Err(error),
            None => Ok(report),
        }
    }

    async fn resolve_sites(&self, selection: &SiteSelection) -> Result<Vec<String>> {
        let corp = self.client.corp();
        let listed = self
            .client
            .list_sites()
            .await
            .map_err(|e| ExportError::api(format!("listing the sites of corp {corp}"), e))?;
        let names: Vec<String> = listed.into_iter().map(|s| s.name).collect();
        match selection {
            SiteSelection::All => Ok(names),
            SiteSelection::Only(wanted) => {
                if let Some(unknown) = wanted.iter().find(|w| !names.contains(w)) {
                    return Err(ExportError::Config {
                        setting: "sites".into(),
                        message: format!(
                            "site {unknown:?} is not a site of corp {corp} (it has: {})",
                            names.join(", ")
                        ),
                    });
                }
                Ok(wanted.clone())
            }
        }
    }

    fn job(&self, site: &str, shared: RunShared) -> HourJob {
        HourJob {
            client: self.client.clone(),
            store: self.store.clone(),
            clock: self.clock.clone(),
            corp: self.client.corp().to_string(),
            site: site.to_string(),
            run_id: self.run_id.clone(),
            settings: self.settings.pipeline.clone(),
            cursors_per_site: self.settings.cursors_per_site.max(1),
            corp_cursors: shared.corp_cursors,
            max_window_attempts: self.settings.max_window_attempts.max(1),
            progress: self.progress.clone(),
            reachability: shared.reachability,
        }
    }

    async fn manifest_exists(&self, site: &str, hour: Hour) -> Result<bool> {
        Ok(self
            .store
            .get(&keys::manifest(self.client.corp(), site, hour))
            .await?
            .is_some())
    }

    /// Returns the site's report, whether it stopped for the deadline, and its error if any.
    async fn run_site(
        &self,
        site: &str,
        range: Option<(i64, i64)>,
        deadline: Option<Instant>,
        shared: RunShared,
    ) -> (SiteReport, bool, Option<ExportError>) {
        let mut report = SiteReport {
            site: site.to_string(),
            ..SiteReport::default()
        };
        let mut changes = LedgerChanges::default();
        let (stopped, mut error) = match self
            .export_site(site, range, deadline, shared, &mut report, &mut changes)
            .await
        {
            Ok(stopped) => (stopped, None),
            Err(error) => (false, Some(error)),
        };
        let corp = self.client.corp();
        let now = self.clock.now();
        let final_ledger = if changes.is_empty() {
            ledger::load(self.store.as_ref(), corp, site)
                .await
                .ok()
                .flatten()
                .map(|(l, _)| l)
        } else {
            match ledger::update(
                self.store.as_ref(),
                corp,
                site,
                Hour::oldest_retained(now),
                &changes,
                now,
                &self.run_id,
            )
            .await
            {
                Ok(ledger) => Some(ledger),
                Err(e) => {
                    error.get_or_insert(e);
                    None
                }
            }
        };
        report.newest_complete_until = final_ledger
            .as_ref()
            .and_then(|l| newest_complete(l, now))
            .map(Hour::end);
        if let Some(error) = &error {
            tracing::error!(site, error = %error, "site export stopped");
            report.error = Some(error.to_string());
        }
        (report, stopped, error)
    }

    async fn export_site(
        &self,
        site: &str,
        range: Option<(i64, i64)>,
        deadline: Option<Instant>,
        shared: RunShared,
        report: &mut SiteReport,
        changes: &mut LedgerChanges,
    ) -> Result<bool> {
        let corp = self.client.corp();
        let now = self.clock.now();
        let stored = ledger::load(self.store.as_ref(), corp, site)
            .await?
            .map(|(l, _)| l);
        let view =
            stored.unwrap_or_else(|| Ledger::new(corp, site, Hour::oldest_retained(now), now));
        let newest = Hour::newest_ready(now);
        let oldest = Hour::oldest_retained(now);
        let candidates: Vec<Hour> = match range {
            None => Hour::range(view.resolved_before(), newest.next()).collect(),
            Some((from, until)) => {
                Hour::range(Hour::containing(from), Hour::containing(until - 1).next()).collect()
            }
        };
        let mut todo = Vec::new();
        for hour in candidates
            .into_iter()
            .filter(|h| view.state(*h) == HourState::Unknown)
        {
            if hour > newest {
                report.pending.push(hour.to_string());
            } else if hour < oldest {
                if self.manifest_exists(site, hour).await? {
                    changes.complete.insert(hour);
                    report.already_complete.push(hour.to_string());
                } else {
                    self.record_lost(site, hour, report, changes);
                }
            } else {
                todo.push(hour);
            }
        }
        self.progress.planned(site, todo.len());
        // Stop a margin before the deadline, at most a quarter of the time this run has.
        let stop_at = deadline.map(|d| {
            let left = d.saturating_duration_since(Instant::now());
            d.checked_sub(self.settings.deadline_margin.min(left / 4))
                .unwrap_or(d)
        });
        let job = self.job(site, shared);
        for (index, hour) in todo.iter().enumerate() {
            let outcome = match stop_at {
                Some(stop_at) if Instant::now() >= stop_at => Err(ExportError::DeadlineReached),
                _ => self.export_hour(&job, *hour, stop_at).await,
            };
            match outcome {
                Ok(HourResult::Exported(manifest, seconds)) => {
                    changes.complete.insert(*hour);
                    let summary = HourSummary::from_manifest(&manifest, seconds);
                    tracing::info!(
                        site, hour = %hour, records = summary.records, parts = summary.parts, bytes = summary.bytes,
                        pages = summary.pages, retries = summary.retries, restarts = summary.restarts, seconds = summary.seconds,
                        "hour exported"
                    );
                    self.progress.hour_done(&summary);
                    report.exported.push(summary);
                }
                Ok(HourResult::AlreadyComplete) => {
                    changes.complete.insert(*hour);
                    report.already_complete.push(hour.to_string());
                    self.progress.hour_skipped(site, *hour);
                }
                Ok(HourResult::Busy) => {
                    report.busy.push(hour.to_string());
                    self.progress.hour_skipped(site, *hour);
                }
                Ok(HourResult::Lost) => self.record_lost(site, *hour, report, changes),
                Ok(HourResult::RefusedBySkewedApi) => report.pending.push(hour.to_string()),
                Err(ExportError::DeadlineReached) => {
                    tracing::warn!(
                        site,
                        left = todo.len() - index,
                        "stopping before the deadline; the next run continues"
                    );
                    report
                        .pending
                        .extend(todo[index..].iter().map(Hour::to_string));
                    return Ok(true);
                }
                Err(error) => {
                    report
                        .pending
                        .extend(todo[index..].iter().map(Hour::to_string));
                    return Err(error);
                }
            }
        }
        Ok(false)
    }

    fn record_lost(
        &self,
        site: &str,
        hour: Hour,
        report: &mut SiteReport,
        changes: &mut LedgerChanges,
    ) {
        tracing::error!(site, hour = %hour, "hour lost: {LOST_REASON}");
        changes.lost.push((hour, LOST_REASON.to_string()));
        report.lost.push(hour.to_string());
    }

    /// One hour under its lease, with the lease renewed while the export runs.
    async fn export_hour(
        &self,
        job: &HourJob,
        hour: Hour,
        stop_at: Option<Instant>,
    ) -> Result<HourResult> {
        let corp = self.client.corp();
        if self.manifest_exists(&job.site, hour).await? {
            return Ok(HourResult::AlreadyComplete);
        }
        let now = self.clock.now();
        if !hour.in_retention(now) {
            return Ok(HourResult::Lost);
        }
        let ttl = self.settings.lease_ttl_secs.max(10);
        let lease_key = keys::lease(corp, &job.site, hour);
        let Some(mut lease) =
            Lease::acquire(self.store.as_ref(), &lease_key, &self.run_id, now, ttl).await?
        else {
            return Ok(HourResult::Busy);
        };
        // The previous holder may have committed the hour just before we took the lease.
        if self.manifest_exists(&job.site, hour).await? {
            lease.remove(self.store.as_ref()).await?;
            return Ok(HourResult::AlreadyComplete);
        }
        let started = std::time::Instant::now();
        let hour_text = hour.to_string();
        let renew_every = Duration::from_secs((ttl / 5).max(1) as u64);
        let result = {
            let renewing = async {
                loop {
                    tokio::time::sleep(renew_every).await;
                    if let Err(lost) = lease
                        .renew(
                            self.store.as_ref(),
                            self.clock.now(),
                            ttl,
                            &job.site,
                            &hour_text,
                        )
                        .await
                    {
                        break lost;
                    }
                }
            };
            let until_deadline = async {
                match stop_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                exported = job.export(hour) => exported,
                lost = renewing => Err::<Manifest, ExportError>(lost),
                () = until_deadline => Err(ExportError::DeadlineReached),
            }
        };
        match result {
            Ok(manifest) => {
                lease.remove(self.store.as_ref()).await?;
                Ok(HourResult::Exported(
                    Box::new(manifest),
                    started.elapsed().as_secs_f64(),
                ))
            }
            Err(error) => {
                // Another exporter holds the hour now and may be writing its parts; otherwise
                // nothing of the unfinished hour stays behind.
                if !matches!(error, ExportError::LeaseLost { .. })
                    && let Err(cleanup) = job.discard_parts(hour).await
                {
                    tracing::warn!(site = %job.site, %hour, error = %cleanup, "could not remove the parts of an unfinished hour; the next run replaces them");
                }
                if let Err(release) = lease.release(self.store.as_ref()).await {
                    tracing::warn!(site = %job.site, %hour, error = %release, "could not release the lease; it expires by itself");
                }
                let rejected = matches!(
                    &error,
                    ExportError::Api {
                        source: sigsci::Error::Validation { .. },
                        ..
                    }
                );
                let now = self.clock.now();
                if rejected && !hour.in_retention(now) {
                    return Ok(HourResult::Lost);
                }
                // Only this hour is affected: the site's newer hours are well inside retention.
                if rejected && hour.near_retention_edge(now) {
                    tracing::warn!(site = %job.site, %hour, error = %error, "the API refused the oldest hour still in retention (its clock runs ahead); leaving it for the next run");
                    return Ok(HourResult::RefusedBySkewedApi);
                }
                Err(error)
            }
        }
    }
}

/// The newest hour the ledger knows complete, looking back over the retention window.
fn newest_complete(ledger: &Ledger, now: i64) -> Option<Hour> {
    let mut hour = Hour::newest_ready(now);
    let oldest = ledger.since().min(Hour::oldest_retained(now));
    while hour >= oldest {
        if ledger.state(hour) == HourState::Complete {
            return Some(hour);
        }
        hour = Hour(hour.start() - crate::window::HOUR);
    }
    None
}

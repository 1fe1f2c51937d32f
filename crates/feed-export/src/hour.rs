//! Exporting one (site, hour): sub-windows on up to two cursors, restarts, stray-part cleanup and
//! the manifest, written last and create-only.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kit_storage::{ObjectStore, PutCondition, PutOutcome};
use sigsci::Client;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::clock::SharedClock;
use crate::error::{ExportError, Result};
use crate::manifest::{ApiStats, MANIFEST_FORMAT, Manifest, PartInfo};
use crate::pipeline::{PartTarget, PipelineSettings, WindowFailure, WindowOutcome, export_window};
use crate::progress::Progress;
use crate::reachability::Reachability;
use crate::window::{Hour, SubWindow, keys};

pub const EXPORTER_VERSION: &str = concat!("feed-export ", env!("CARGO_PKG_VERSION"));

/// Everything an hour export needs; shared by the hours of a run.
#[derive(Clone)]
pub struct HourJob {
    pub client: Client,
    pub store: Arc<dyn ObjectStore>,
    pub clock: SharedClock,
    pub corp: String,
    pub site: String,
    pub run_id: String,
    pub settings: PipelineSettings,
    pub cursors_per_site: usize,
    /// Cursors the whole corp may hold (shared by all sites of the run).
    pub corp_cursors: Arc<Semaphore>,
    pub max_window_attempts: u32,
    pub progress: Arc<dyn Progress>,
    /// Whether the API still answers (shared by all sites of the run).
    pub(crate) reachability: Arc<Reachability>,
}

/// How a sub-window's task ended.
enum Attempt {
    Ran(std::result::Result<WindowOutcome, WindowFailure>),
    /// Not started: the API stopped answering while it waited for a cursor.
    SkippedApiAway,
}

/// A window waiting to run: how often it failed so far, and whether it may still be split.
#[derive(Clone, Copy, Debug)]
struct Pending {
    window: SubWindow,
    failures: u32,
    cursor_expiries: u32,
}

fn earliest<T: Ord>(a: Option<T>, b: Option<T>) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn backoff(failures: u32) -> Duration {
    Duration::from_millis(250u64.saturating_mul(1 << failures.min(6))).min(Duration::from_secs(10))
}

impl HourJob {
    /// Fetches and writes every part of `hour`, removes stray parts, and writes the manifest.
    /// The caller holds the hour's lease.
    pub async fn export(&self, hour: Hour) -> Result<Manifest> {
        let prefix = keys::hour_prefix(&self.corp, &self.site, hour);
        let swept = self.store.sweep_incomplete(&prefix).await?;
        if swept > 0 {
            tracing::info!(site = %self.site, %hour, swept, "removed uploads a killed run left");
        }
        if let Some(output) = &self.settings.outputs.ocsf {
            // Also the first call to the OCSF store: one it cannot reach (credentials, the role's
            // STS) fails the hour here, not each window after its pages were fetched.
            let ocsf_prefix = output.layout.hour_prefix(&self.corp, &self.site, hour);
            let swept = output.store.sweep_incomplete(&ocsf_prefix).await?;
            if swept > 0 {
                tracing::info!(site = %self.site, %hour, swept, "removed OCSF uploads a killed run left");
            }
        }
        let (parts, ocsf_parts, api, min, max) = self.export_parts(hour, &prefix).await?;
        // Both outputs hold the same records; the NDJSON counts them unless it is off.
        let counted = if self.settings.outputs.ndjson {
            &parts
        } else {
            &ocsf_parts
        };
        let records = counted.iter().map(|p| p.records).sum();

        // A crashed earlier attempt may have used other window boundaries: remove its parts so a
        // scan of the partition sees every record once.
        self.remove_parts_except(hour, &parts, "a stray part from an earlier attempt")
            .await?;
        let ocsf = match &self.settings.outputs.ocsf {
            Some(output) => {
                output
                    .remove_parts_except(&self.corp, &self.site, hour, &ocsf_parts)
                    .await?;
                Some(output.manifest_entry(ocsf_parts))
            }
            None => None,
        };
        let manifest = Manifest {
            format: MANIFEST_FORMAT.to_string(),
            corp: self.corp.clone(),
            site: self.site.clone(),
            from: hour.start(),
            until: hour.end(),
            hour: hour.datetime(),
            records,
            min_timestamp: min,
            max_timestamp: max,
            parts,
            ocsf,
            api,
            run_id: self.run_id.clone(),
            exporter_version: EXPORTER_VERSION.to_string(),
            written_at: chrono::DateTime::from_timestamp(self.clock.now(), 0).unwrap_or_default(),
        };
        let key = keys::manifest(&self.corp, &self.site, hour);
        match self
            .store
            .put(
                &key,
                Bytes::from(manifest.to_json()),
                PutCondition::CreateOnly,
            )
            .await?
        {
            PutOutcome::Written { .. } => Ok(manifest),
            PutOutcome::PreconditionFailed => Err(ExportError::Pipeline {
                site: self.site.clone(),
                hour: hour.to_string(),
                message: format!(
                    "{key} appeared while this run held the lease; not overwriting it"
                ),
            }),
        }
    }

    /// Removes every part of an hour this run gives up (deadline, error, hour lost): without a
    /// manifest they are invisible to readers who follow the manifests, but a plain scan of the
    /// partition would count them. The caller still holds the hour's lease.
    pub async fn discard_parts(&self, hour: Hour) -> Result<()> {
        self.remove_parts_except(hour, &[], "a part of an hour this run gave up")
            .await?;
        if let Some(output) = &self.settings.outputs.ocsf {
            output
                .remove_parts_except(&self.corp, &self.site, hour, &[])
                .await?;
        }
        Ok(())
    }

    async fn remove_parts_except(&self, hour: Hour, keep: &[PartInfo], what: &str) -> Result<()> {
        let prefix = keys::hour_prefix(&self.corp, &self.site, hour);
        for object in self.store.list(&prefix).await? {
            let name = object.key.strip_prefix(&prefix).unwrap_or(&object.key);
            if keys::is_part_name(name) && !keep.iter().any(|p| p.name == name) {
                tracing::info!(site = %self.site, %hour, part = name, "removing {what}");
                self.store.delete(&object.key).await?;
            }
        }
        Ok(())
    }

    #[allow(clippy::type_complexity)]
    async fn export_parts(
        &self,
        hour: Hour,
        prefix: &str,
    ) -> Result<(
        Vec<PartInfo>,
        Vec<PartInfo>,
        ApiStats,
        Option<chrono::DateTime<chrono::Utc>>,
        Option<chrono::DateTime<chrono::Utc>>,
    )> {
        let whole = SubWindow {
            from: hour.start(),
            until: hour.end(),
        };
        let mut queue: VecDeque<Pending> = whole
            .split(self.cursors_per_site as i64)
            .into_iter()
            .map(|window| Pending {
                window,
                failures: 0,
                cursor_expiries: 0,
            })
            .collect();
        let mut running: JoinSet<(Pending, Attempt)> = JoinSet::new();
        let mut parts: HashMap<String, PartInfo> = HashMap::new();
        let mut ocsf_parts: HashMap<String, PartInfo> = HashMap::new();
        let mut api = ApiStats::default();
        let (mut min, mut max) = (None, None);
        loop {
            if self.reachability.is_away() {
                running.abort_all();
                return Err(self.api_away(hour));
            }
            while running.len() < self.cursors_per_site.max(1) {
                let Some(pending) = queue.pop_front() else {
                    break;
                };
                running.spawn(self.clone().run_window(hour, prefix.to_string(), pending));
            }
            let Some(joined) = running.join_next().await else {
                break;
            };
            let (pending, attempt) = joined
                .map_err(|e| self.pipeline_error(hour, format!("window task failed: {e}")))?;
            let outcome = match attempt {
                Attempt::Ran(outcome) => outcome,
                Attempt::SkippedApiAway => {
                    running.abort_all();
                    return Err(self.api_away(hour));
                }
            };
            let away = self.reachability.record(outcome.as_ref().map(|_| ()));
            if away {
                running.abort_all();
                return Err(self.api_away(hour));
            }
            match outcome {
                Ok(WindowOutcome::Done {
                    part,
                    ocsf,
                    stats,
                    min: lo,
                    max: hi,
                }) => {
                    api.pages += stats.pages;
                    api.retries += stats.retries;
                    api.duplicates += stats.duplicates;
                    api.out_of_window += stats.out_of_window;
                    min = earliest(min, lo);
                    max = max.max(hi);
                    if let Some(part) = part {
                        parts.insert(part.name.clone(), part);
                    }
                    if let Some(part) = ocsf {
                        ocsf_parts.insert(part.name.clone(), *part);
                    }
                }
                Ok(WindowOutcome::Split(pieces)) => {
                    api.restarts += 1;
                    for window in pieces.into_iter().rev() {
                        queue.push_front(Pending {
                            window,
                            failures: 0,
                            cursor_expiries: 0,
                        });
                    }
                }
                Err(failure)
                    if failure.is_retryable()
                        && pending.failures + 1 < self.max_window_attempts =>
                {
                    api.restarts += 1;
                    let expired = matches!(
                        failure,
                        WindowFailure::Api(sigsci::Error::CursorExpired { .. })
                    );
                    api.cursor_expiries += u64::from(expired);
                    tracing::warn!(site = %self.site, %hour, window = %pending.window, error = %failure, "restarting sub-window");
                    let next = Pending {
                        window: pending.window,
                        failures: pending.failures + 1,
                        cursor_expiries: pending.cursor_expiries + u32::from(expired),
                    };
                    // A window whose cursor keeps expiring is halved: less to redo per restart.
                    if next.cursor_expiries >= 2 && next.window.minutes() >= 2 {
                        for window in next.window.split(2).into_iter().rev() {
                            queue.push_front(Pending { window, ..next });
                        }
                    } else {
                        queue.push_back(next);
                    }
                }
                Err(failure) => {
                    running.abort_all();
                    return Err(self.window_error(hour, pending, failure));
                }
            }
        }
        let mut parts: Vec<PartInfo> = parts.into_values().collect();
        parts.sort_by(|a, b| a.name.cmp(&b.name));
        let mut ocsf_parts: Vec<PartInfo> = ocsf_parts.into_values().collect();
        ocsf_parts.sort_by(|a, b| a.name.cmp(&b.name));
        // Windows are split or halved only before they write anything, so parts never overlap.
        Ok((parts, ocsf_parts, api, min, max))
    }

    async fn run_window(self, hour: Hour, prefix: String, pending: Pending) -> (Pending, Attempt) {
        if pending.failures > 0 {
            tokio::time::sleep(backoff(pending.failures)).await;
        }
        let _permit = match self.corp_cursors.clone().acquire_owned().await {
            Ok(permit) => permit,
            Err(_) => {
                return (
                    pending,
                    Attempt::Ran(Err(WindowFailure::Pipeline(
                        "corp cursor limiter closed".into(),
                    ))),
                );
            }
        };
        if self.reachability.is_away() {
            return (pending, Attempt::SkippedApiAway);
        }
        let name = keys::part_name(hour, pending.window);
        let ocsf = self
            .settings
            .outputs
            .ocsf
            .as_ref()
            .map(|output| output.part_target(&self.corp, &self.site, hour, &name));
        let target = PartTarget {
            store: self.store.clone(),
            prefix,
            name,
            ocsf,
        };
        // A window that already failed is not split by estimate again: its size is known to fit.
        let may_split = pending.failures == 0;
        let outcome = export_window(
            &self.client,
            &self.site,
            pending.window,
            may_split,
            &target,
            &self.settings,
            self.progress.as_ref(),
        )
        .await;
        (pending, Attempt::Ran(outcome))
    }

    fn api_away(&self, hour: Hour) -> ExportError {
        ExportError::ApiAway {
            site: self.site.clone(),
            hour: hour.to_string(),
            failures: self.reachability.silent_failures(),
            last: self.reachability.last_silence(),
        }
    }

    fn pipeline_error(&self, hour: Hour, message: String) -> ExportError {
        ExportError::Pipeline {
            site: self.site.clone(),
            hour: hour.to_string(),
            message,
        }
    }

    fn window_error(&self, hour: Hour, pending: Pending, failure: WindowFailure) -> ExportError {
        match failure {
            WindowFailure::Api(source)
                if !source.is_transient()
                    && !matches!(source, sigsci::Error::CursorExpired { .. }) =>
            {
                ExportError::api(
                    format!("{} {hour} window {}", self.site, pending.window),
                    source,
                )
            }
            WindowFailure::Storage(error) if !error.is_transient() => ExportError::Storage(error),
            other => ExportError::GaveUp {
                site: self.site.clone(),
                hour: hour.to_string(),
                window: pending.window.to_string(),
                attempts: pending.failures + 1,
                last: other.to_string(),
            },
        }
    }
}

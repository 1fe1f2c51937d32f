//! What a run did, per site and hour: for the CLI's output, the Lambda's logs and the metrics.

use serde::Serialize;

use crate::manifest::Manifest;
use crate::window::Hour;

/// One exported hour.
#[derive(Clone, Debug, Serialize)]
pub struct HourSummary {
    pub site: String,
    pub hour: String,
    pub records: u64,
    pub parts: usize,
    pub bytes: u64,
    pub pages: u64,
    pub retries: u64,
    pub restarts: u64,
    /// Restarts because the window's cursor expired.
    pub cursor_expiries: u64,
    pub seconds: f64,
    /// The hour's OCSF Parquet output, when the run wrote it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ocsf: Option<OcsfSummary>,
}

/// An hour's OCSF Parquet parts, as its manifest lists them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OcsfSummary {
    pub parts: usize,
    pub records: u64,
    pub bytes: u64,
}

impl HourSummary {
    pub fn from_manifest(manifest: &Manifest, seconds: f64) -> HourSummary {
        HourSummary {
            site: manifest.site.clone(),
            hour: Hour(manifest.from).to_string(),
            records: manifest.records,
            parts: manifest.parts.len(),
            bytes: manifest.compressed_bytes(),
            pages: manifest.api.pages,
            retries: manifest.api.retries,
            restarts: manifest.api.restarts,
            cursor_expiries: manifest.api.cursor_expiries,
            seconds,
            ocsf: manifest.ocsf.as_ref().map(|ocsf| OcsfSummary {
                parts: ocsf.parts.len(),
                records: ocsf.parts.iter().map(|p| p.records).sum(),
                bytes: ocsf.parts.iter().map(|p| p.bytes).sum(),
            }),
        }
    }
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct SiteReport {
    pub site: String,
    pub exported: Vec<HourSummary>,
    /// Hours found complete (manifest present) that the ledger did not know yet.
    pub already_complete: Vec<String>,
    /// Hours another exporter holds the lease on right now.
    pub busy: Vec<String>,
    /// Hours recorded as lost by this run.
    pub lost: Vec<String>,
    /// Hours still to do after this run (deadline, or a failure).
    pub pending: Vec<String>,
    /// Why the site stopped early, if it did.
    pub error: Option<String>,
    /// End of the newest complete hour, epoch seconds.
    pub newest_complete_until: Option<i64>,
}

impl SiteReport {
    pub fn records(&self) -> u64 {
        self.exported.iter().map(|h| h.records).sum()
    }
    pub fn bytes(&self) -> u64 {
        self.exported.iter().map(|h| h.bytes).sum()
    }
    pub fn pages(&self) -> u64 {
        self.exported.iter().map(|h| h.pages).sum()
    }
    pub fn retries(&self) -> u64 {
        self.exported.iter().map(|h| h.retries).sum()
    }
    pub fn restarts(&self) -> u64 {
        self.exported.iter().map(|h| h.restarts).sum()
    }
    pub fn cursor_expiries(&self) -> u64 {
        self.exported.iter().map(|h| h.cursor_expiries).sum()
    }
    pub fn hours_pending(&self) -> usize {
        self.pending.len() + self.busy.len()
    }
}

/// How far a run got with the hours it was asked for; the CLI's exit code and the Lambda's result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunOutcome {
    /// Every requested hour is complete.
    Complete,
    /// Some hours are still to do (busy, not yet served, or stopped at the deadline): run again later.
    Pending,
    /// Some hours left the API's retention unexported: their data is gone.
    Lost,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct RunReport {
    pub run_id: String,
    pub corp: String,
    /// The clock's "now" when the run started.
    pub now: i64,
    pub sites: Vec<SiteReport>,
    /// The run stopped before its deadline and left work for the next run.
    pub stopped_for_deadline: bool,
}

impl RunReport {
    pub fn hours_exported(&self) -> usize {
        self.sites.iter().map(|s| s.exported.len()).sum()
    }
    pub fn hours_lost(&self) -> usize {
        self.sites.iter().map(|s| s.lost.len()).sum()
    }
    /// Hours another exporter held the lease on (a live run, or a crashed one until its lease expires).
    pub fn hours_busy(&self) -> usize {
        self.sites.iter().map(|s| s.busy.len()).sum()
    }
    /// Requested hours left for a later run: busy ones included, since nobody committed them yet.
    pub fn hours_pending(&self) -> usize {
        self.sites.iter().map(SiteReport::hours_pending).sum()
    }
    pub fn outcome(&self) -> RunOutcome {
        if self.hours_lost() > 0 {
            RunOutcome::Lost
        } else if self.hours_pending() > 0 {
            RunOutcome::Pending
        } else {
            RunOutcome::Complete
        }
    }
    pub fn errors(&self) -> Vec<String> {
        self.sites
            .iter()
            .filter_map(|s| s.error.as_ref().map(|e| format!("{}: {e}", s.site)))
            .collect()
    }
}

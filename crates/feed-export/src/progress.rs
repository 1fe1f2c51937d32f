//! Hooks for showing progress (the CLI's progress bar); the Lambda uses none.

use crate::report::HourSummary;
use crate::window::Hour;

pub trait Progress: Send + Sync {
    /// The run will try to export `hours` hours of `site`.
    fn planned(&self, _site: &str, _hours: usize) {}
    /// Records were received for `site` (they may still be dropped if their window restarts).
    fn records(&self, _site: &str, _count: u64) {}
    fn hour_done(&self, _summary: &HourSummary) {}
    fn hour_skipped(&self, _site: &str, _hour: Hour) {}
}

/// Shows nothing.
pub struct Quiet;

impl Progress for Quiet {}

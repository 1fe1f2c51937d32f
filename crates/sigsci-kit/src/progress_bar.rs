//! The feed export's progress on stderr, for `feed export|backfill` and the demo.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use feed_export::window::Hour;
use feed_export::{HourSummary, Progress};

/// Progress on stderr: a bar redrawn in place on a terminal; elsewhere (CI logs, pipes) one line
/// per finished hour instead of a stream of carriage returns.
pub struct ProgressBar {
    redraw_in_place: bool,
    planned: AtomicUsize,
    done: AtomicUsize,
    records: AtomicU64,
}

impl ProgressBar {
    pub fn for_stderr() -> ProgressBar {
        ProgressBar {
            redraw_in_place: std::io::stderr().is_terminal(),
            planned: AtomicUsize::new(0),
            done: AtomicUsize::new(0),
            records: AtomicU64::new(0),
        }
    }

    fn line(&self) -> String {
        let (done, planned) = (
            self.done.load(Ordering::Relaxed),
            self.planned.load(Ordering::Relaxed).max(1),
        );
        let width = 30;
        let filled = (done * width / planned).min(width);
        format!(
            "[{}{}] {done}/{planned} hours, {} records",
            "#".repeat(filled),
            " ".repeat(width - filled),
            self.records.load(Ordering::Relaxed)
        )
    }

    /// `milestone`: an hour finished (the only updates printed when not redrawing in place).
    fn draw(&self, milestone: bool) {
        let mut stderr = std::io::stderr();
        if self.redraw_in_place {
            let _ = write!(stderr, "\r{}", self.line());
            let _ = stderr.flush();
        } else if milestone {
            let _ = writeln!(stderr, "{}", self.line());
        }
    }

    pub fn finish(&self) {
        if self.redraw_in_place {
            self.draw(false);
            eprintln!();
        }
    }
}

impl Progress for ProgressBar {
    fn planned(&self, _site: &str, hours: usize) {
        self.planned.fetch_add(hours, Ordering::Relaxed);
        self.draw(false);
    }
    fn records(&self, _site: &str, count: u64) {
        self.records.fetch_add(count, Ordering::Relaxed);
        self.draw(false);
    }
    fn hour_done(&self, _summary: &HourSummary) {
        self.done.fetch_add(1, Ordering::Relaxed);
        self.draw(true);
    }
    fn hour_skipped(&self, _site: &str, _hour: Hour) {
        self.done.fetch_add(1, Ordering::Relaxed);
        self.draw(true);
    }
}

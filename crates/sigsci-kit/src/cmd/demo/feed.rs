//! The feed-export scenario of `sigsci-kit demo`: the newest complete hours into a directory.

use std::path::Path;
use std::sync::Arc;

use anyhow::bail;
use feed_export::window::{Hour, keys};
use feed_export::{ExportRequest, Exporter, SharedClock, SiteSelection};
use kit_storage::ObjectStore;

use crate::output::outln;
use crate::progress_bar::ProgressBar;

/// Exports the last `hours` complete hours of every site into `out` (a directory) with a progress
/// bar, then prints each hour's manifest summary. `clock` gives "now" (the simulator's).
pub async fn run(
    client: sigsci::Client,
    clock: SharedClock,
    out: &Path,
    hours: i64,
) -> anyhow::Result<()> {
    let store: Arc<dyn ObjectStore> = Arc::new(kit_storage::LocalStore::new(out));
    let newest = Hour::newest_ready(clock.now());
    let range = (
        newest.start() - (hours.max(1) - 1) * feed_export::window::HOUR,
        newest.end(),
    );
    let corp = client.corp().to_string();
    let bar = Arc::new(ProgressBar::for_stderr());
    let exporter = Exporter::new(client, store.clone(), clock).with_progress(bar.clone());
    let report = exporter
        .run(
            &ExportRequest {
                sites: SiteSelection::All,
                range: Some(range),
            },
            None,
        )
        .await?;
    bar.finish();
    if !report.errors().is_empty() {
        bail!("feed export: {}", report.errors().join("; "));
    }
    outln!("feed export into {}:", out.display());
    for site in &report.sites {
        let mut hour = Hour(range.0);
        while hour.start() < range.1 {
            let key = keys::manifest(&corp, &site.site, hour);
            if let Some(object) = store.get(&key).await? {
                let manifest = feed_export::Manifest::parse(&key, &object.body)?;
                outln!(
                    "  {key}  {:>7} records  {} parts  {:>8.1} KiB  {} pages  {} retries",
                    manifest.records,
                    manifest.parts.len(),
                    manifest.compressed_bytes() as f64 / 1024.0,
                    manifest.api.pages,
                    manifest.api.retries
                );
            }
            hour = hour.next();
        }
    }
    Ok(())
}

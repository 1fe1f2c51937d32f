//! The exporter against the simulator (in-process), a local directory and S3 on moto.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use feed_export::ledger;
use feed_export::window::{HOUR, Hour, keys};
use feed_export::{ExportError, ExportRequest, Exporter, RunOutcome, SiteSelection};
use kit_storage::{LocalStore, MemoryStore, ObjectStore, PutCondition, StorageError};
use sigsci_sim::{ClockUpdate, Faults};

fn backfill(sites: &[&str], hours: &[Hour]) -> ExportRequest {
    let from = hours.first().map(|h| h.start()).unwrap_or_default();
    let until = hours.last().map(|h| h.end()).unwrap_or_default();
    ExportRequest {
        sites: SiteSelection::Only(sites.iter().map(|s| s.to_string()).collect()),
        range: Some((from, until)),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exact_under_faults_across_sites_and_hours() -> TestResult {
    let sim = sim(3, 5.0).await;
    sim.state.set_faults(Faults {
        rate_limit_429: 0.10,
        rate_limit_400: 0.10,
        server_error: 0.05,
        html_502: 0.03,
        reset: 0.03,
        malformed: 0.03,
        page_latency_ms: 20,
        cursor_ttl_secs: 1,
        ..Faults::default()
    })?;
    let dir = tempfile::tempdir()?;
    let store: Arc<dyn ObjectStore> = Arc::new(LocalStore::new(dir.path()));
    let hours = last_hours(&sim, 2);
    let mut settings = settings();
    // Small windows (several per hour) so the cursor TTL and restarts come into play.
    settings.pipeline.max_window_records = 3_000;
    settings.pipeline.page_limit = 500;
    let exporter = Exporter::new(client(&sim), store.clone(), clock(&sim)).with_settings(settings);
    let report = exporter
        .run(&backfill(&["site-1", "site-2", "site-3"], &hours), None)
        .await?;
    assert!(report.errors().is_empty(), "{:?}", report.errors());
    assert_eq!(report.hours_exported(), 6);
    let restarts: u64 = report
        .sites
        .iter()
        .flat_map(|s| &s.exported)
        .map(|h| h.restarts)
        .sum();
    let retries: u64 = report
        .sites
        .iter()
        .flat_map(|s| &s.exported)
        .map(|h| h.retries)
        .sum();
    assert!(
        retries > 0,
        "faults were on, so some pages must have been retried"
    );
    eprintln!("retries {retries}, restarts {restarts}");
    for site in ["site-1", "site-2", "site-3"] {
        for hour in &hours {
            assert_exact(&sim, store.as_ref(), site, *hour).await;
        }
    }
    let log = sim.state.call_log();
    assert!(
        log.feed.max_concurrent_per_site.values().all(|n| *n <= 2),
        "{:?}",
        log.feed
    );
    assert!(log.feed.max_concurrent_corp <= 5, "{:?}", log.feed);
    sim.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_cursors_restart_their_windows_are_counted_and_the_hour_is_exact() -> TestResult {
    let sim = sim(1, 5.0).await;
    // `latency_ms` holds every request before the simulator checks its cursor, so a window's next
    // cursor is nearly always waiting there; a clock jump past the TTL then expires it for sure.
    sim.state.set_faults(Faults {
        latency_ms: 200,
        cursor_ttl_secs: 5,
        ..Faults::default()
    })?;
    let store = Arc::new(MemoryStore::new());
    let hour = last_hours(&sim, 1)[0];
    let mut settings = settings();
    settings.pipeline.page_limit = 500;
    let exporter = Exporter::new(client(&sim), store.clone(), clock(&sim)).with_settings(settings);
    let state = sim.state.clone();
    let jumps = tokio::spawn(async move {
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_millis(400)).await;
            state.update_clock(&ClockUpdate {
                advance_secs: Some(10),
                ..ClockUpdate::default()
            })?;
        }
        Ok::<_, sigsci_sim::SimError>(())
    });
    let report = exporter.run(&backfill(&["site-1"], &[hour]), None).await?;
    jumps.await??;
    assert!(report.errors().is_empty(), "{:?}", report.errors());
    let site = &report.sites[0];
    assert_eq!(site.exported.len(), 1);
    assert!(
        site.cursor_expiries() > 0 && site.restarts() >= site.cursor_expiries(),
        "cursors were expired under the exporter: {:?}",
        site.exported
    );
    let key = keys::manifest(CORP, "site-1", hour);
    let body = store.get(&key).await?.ok_or("no manifest")?.body;
    let manifest = feed_export::Manifest::parse(&key, &body)?;
    assert_eq!(
        (manifest.api.restarts, manifest.api.cursor_expiries),
        (site.restarts(), site.cursor_expiries())
    );
    let line: serde_json::Value =
        serde_json::from_str(&feed_export::metrics::emf_line(&report, site, 0))?;
    assert_eq!(
        (line["Restarts"].as_u64(), line["CursorExpiries"].as_u64()),
        (Some(site.restarts()), Some(site.cursor_expiries()))
    );
    assert_exact(&sim, store.as_ref(), "site-1", hour).await;
    sim.shutdown().await;
    Ok(())
}

/// Every file under `root`, hidden ones included.
fn files_under(root: &std::path::Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    let mut files = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                dirs.push(entry.path());
            } else {
                files.push(entry.path());
            }
        }
    }
    files.sort();
    Ok(files)
}

/// Files a reader of the directory would not expect: anything but parts, manifests and the ledgers.
fn unexpected_files(root: &std::path::Path, sites: &[&str]) -> std::io::Result<Vec<String>> {
    let ledgers: Vec<String> = sites.iter().map(|site| keys::ledger(CORP, site)).collect();
    Ok(files_under(root)?
        .into_iter()
        .filter_map(|path| {
            let key = path.strip_prefix(root).ok()?.to_string_lossy().into_owned();
            let name = path.file_name()?.to_string_lossy().into_owned();
            let expected =
                keys::is_part_name(&name) || name == "_manifest.json" || ledgers.contains(&key);
            (!expected).then_some(key)
        })
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_export_leaves_only_parts_manifests_and_ledgers() -> TestResult {
    let sim = sim(2, 5.0).await;
    let dir = tempfile::tempdir()?;
    let store: Arc<dyn ObjectStore> = Arc::new(LocalStore::new(dir.path()));
    let hours = last_hours(&sim, 2);
    let mut settings = settings();
    // Several parts per hour.
    settings.pipeline.max_window_records = 3_000;
    let exporter = Exporter::new(client(&sim), store.clone(), clock(&sim)).with_settings(settings);
    let report = exporter
        .run(&backfill(&["site-1", "site-2"], &hours), None)
        .await?;
    assert_eq!(report.hours_exported(), 4, "{:?}", report.errors());
    let unexpected = unexpected_files(dir.path(), &["site-1", "site-2"])?;
    assert!(unexpected.is_empty(), "left behind: {unexpected:?}");
    sim.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parts_of_a_killed_run_are_swept_by_the_next_export_of_the_hour() -> TestResult {
    let sim = sim(1, 5.0).await;
    let dir = tempfile::tempdir()?;
    let store: Arc<dyn ObjectStore> = Arc::new(LocalStore::new(dir.path()));
    let hour = last_hours(&sim, 1)[0];
    // A killed run leaves finished parts of its own window boundaries and no manifest.
    let partition = dir.path().join(keys::hour_prefix(CORP, "site-1", hour));
    std::fs::create_dir_all(&partition)?;
    let killed = ["part-00017.ndjson.gz", "part-00053.ndjson.gz"];
    for name in killed {
        std::fs::write(partition.join(name), b"from a killed run")?;
    }
    let exporter =
        Exporter::new(client(&sim), store.clone(), clock(&sim)).with_settings(settings());
    let report = exporter.run(&backfill(&["site-1"], &[hour]), None).await?;
    assert_eq!(report.hours_exported(), 1, "{:?}", report.errors());
    for name in killed {
        assert!(!partition.join(name).exists(), "{name} was not swept");
    }
    assert_exact(&sim, store.as_ref(), "site-1", hour).await;
    let unexpected = unexpected_files(dir.path(), &["site-1"])?;
    assert!(unexpected.is_empty(), "left behind: {unexpected:?}");
    sim.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_site_splits_its_hour_and_keeps_memory_bounded() -> TestResult {
    let sim = sim(1, 20.0).await;
    let store = Arc::new(MemoryStore::new());
    let hour = last_hours(&sim, 1)[0];
    let mut settings = settings();
    settings.pipeline.max_window_records = 10_000;
    let exporter = Exporter::new(client(&sim), store.clone(), clock(&sim)).with_settings(settings);
    let report = exporter.run(&backfill(&["site-1"], &[hour]), None).await?;
    let summary = &report.sites[0].exported[0];
    // ~72k records at ≤ 10k per window: the two half-hour windows were split by estimate.
    assert!(
        summary.parts >= 7,
        "expected the hour in ≥ 7 parts, got {}",
        summary.parts
    );
    assert_exact(&sim, store.as_ref(), "site-1", hour).await;
    sim.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rerun_after_a_crash_overwrites_partial_parts_and_removes_strays() -> TestResult {
    let sim = sim(1, 5.0).await;
    let dir = tempfile::tempdir()?;
    let store: Arc<dyn ObjectStore> = Arc::new(LocalStore::new(dir.path()));
    let hour = last_hours(&sim, 1)[0];
    // What a crashed run with other window boundaries leaves: a truncated part, a stray part, and
    // a lease that was never released.
    let prefix = keys::hour_prefix(CORP, "site-1", hour);
    store
        .put(
            &format!("{prefix}part-00000.ndjson.gz"),
            Bytes::from_static(b"garbage"),
            PutCondition::Always,
        )
        .await?;
    store
        .put(
            &format!("{prefix}part-00045.ndjson.gz"),
            Bytes::from_static(b"stray"),
            PutCondition::Always,
        )
        .await?;
    let stale = serde_json::json!({"owner": "crashed-run", "acquired_at": sim.state.now() - 900, "expires_at": sim.state.now() - 300});
    store
        .put(
            &keys::lease(CORP, "site-1", hour),
            Bytes::from(stale.to_string()),
            PutCondition::CreateOnly,
        )
        .await?;

    let exporter =
        Exporter::new(client(&sim), store.clone(), clock(&sim)).with_settings(settings());
    let report = exporter.run(&backfill(&["site-1"], &[hour]), None).await?;
    assert_eq!(report.hours_exported(), 1, "{report:?}");
    assert_exact(&sim, store.as_ref(), "site-1", hour).await;
    assert!(
        store
            .get(&format!("{prefix}part-00045.ndjson.gz"))
            .await?
            .is_none()
    );
    assert!(
        store
            .get(&keys::lease(CORP, "site-1", hour))
            .await?
            .is_none(),
        "the lease is removed once the hour is complete"
    );
    sim.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rerunning_complete_hours_reads_only_the_ledger_and_writes_nothing() -> TestResult {
    let sim = sim(2, 1.0).await;
    let memory: Arc<dyn ObjectStore> = Arc::new(MemoryStore::new());
    let request = ExportRequest {
        sites: SiteSelection::All,
        range: None,
    };
    let first = Exporter::new(client(&sim), memory.clone(), clock(&sim)).with_settings(settings());
    let report = first.run(&request, None).await?;
    // At hh:07:30 the API serves 23 whole hours (from ≥ now − 24 h 5 min, until ≤ now − 5 min).
    assert_eq!(
        report.hours_exported(),
        2 * 23,
        "a new ledger starts with every hour in retention"
    );
    let before = snapshot(memory.as_ref()).await;

    let counting = CountingStore::new(memory.clone());
    let again =
        Exporter::new(client(&sim), counting.clone(), clock(&sim)).with_settings(settings());
    let report = again.run(&request, None).await?;
    assert_eq!(report.hours_exported(), 0);
    assert_eq!(
        counting.counts(),
        (4, 0),
        "two ledger reads per site (plan + report) and no writes"
    );
    assert_eq!(snapshot(memory.as_ref()).await, before);

    // An explicit backfill of complete hours writes nothing either.
    let hours = last_hours(&sim, 3);
    let report = again.run(&backfill(&["site-1"], &hours), None).await?;
    assert_eq!(report.hours_exported(), 0);
    assert_eq!(counting.counts().1, 0);
    sim.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catch_up_after_clock_jumps_exports_in_order_and_records_lost_hours() -> TestResult {
    let sim = sim(1, 1.0).await;
    let store: Arc<dyn ObjectStore> = Arc::new(MemoryStore::new());
    let request = ExportRequest {
        sites: SiteSelection::All,
        range: None,
    };
    let run = || Exporter::new(client(&sim), store.clone(), clock(&sim)).with_settings(settings());
    assert_eq!(run().run(&request, None).await?.hours_exported(), 23);

    sim.state.update_clock(&ClockUpdate {
        advance_secs: Some(6 * HOUR),
        ..ClockUpdate::default()
    })?;
    let report = run().run(&request, None).await?;
    let exported: Vec<String> = report.sites[0]
        .exported
        .iter()
        .map(|h| h.hour.clone())
        .collect();
    let expected: Vec<String> = last_hours(&sim, 6).iter().map(Hour::to_string).collect();
    assert_eq!(exported, expected, "the six new hours, oldest first");
    assert!(report.sites[0].lost.is_empty());
    for hour in last_hours(&sim, 6) {
        assert_exact(&sim, store.as_ref(), "site-1", hour).await;
    }

    let newest_before = Hour::newest_ready(sim.state.now());
    sim.state.update_clock(&ClockUpdate {
        advance_secs: Some(30 * HOUR),
        ..ClockUpdate::default()
    })?;
    let now = sim.state.now();
    let report = run().run(&request, None).await?;
    let site = &report.sites[0];
    let oldest = Hour::oldest_retained(now);
    let expected_lost: Vec<String> = Hour::range(newest_before.next(), oldest)
        .map(|h| h.to_string())
        .collect();
    assert_eq!(
        site.lost, expected_lost,
        "hours that left retention are reported lost"
    );
    assert_eq!(
        expected_lost.len(),
        7,
        "30 hours later, 23 are still served"
    );
    assert_eq!(site.exported.len(), 23);
    assert_eq!(
        site.newest_complete_until,
        Some(Hour::newest_ready(now).end())
    );
    let (stored, _) = ledger::load(store.as_ref(), CORP, "site-1")
        .await?
        .ok_or("no ledger")?;
    assert_eq!(
        stored
            .lost_hours()
            .map(|h| h.to_string())
            .collect::<Vec<_>>(),
        expected_lost
    );
    let line = feed_export::metrics::emf_line(&report, site, 0);
    assert!(
        line.contains("\"HoursLost\":7") && line.contains("\"HoursExported\":23"),
        "{line}"
    );
    let status = feed_export::status::site_status(store.as_ref(), CORP, "site-1", now).await?;
    assert_eq!(
        (
            status.complete.len(),
            status.pending.len(),
            status.lost.len()
        ),
        (23, 0, 7)
    );
    sim.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_exporters_at_once_write_each_hour_once() -> TestResult {
    let sim = sim(2, 5.0).await;
    sim.state.set_faults(Faults {
        page_latency_ms: 10,
        ..Faults::default()
    })?;
    let dir = tempfile::tempdir()?;
    let local: Arc<dyn ObjectStore> = Arc::new(LocalStore::new(dir.path()));
    let hours = last_hours(&sim, 3);
    overlap(&sim, local, &hours).await?;
    sim.shutdown().await;
    Ok(())
}

async fn overlap(
    sim: &sigsci_sim::RunningSim,
    store: Arc<dyn ObjectStore>,
    hours: &[Hour],
) -> TestResult {
    let request = backfill(&["site-1", "site-2"], hours);
    let a = Exporter::new(client(sim), store.clone(), clock(sim)).with_settings(settings());
    let b = Exporter::new(client(sim), store.clone(), clock(sim)).with_settings(settings());
    let (ra, rb) = tokio::join!(a.run(&request, None), b.run(&request, None));
    let (ra, rb) = (ra?, rb?);
    for site in ["site-1", "site-2"] {
        for hour in hours {
            assert_exact(sim, store.as_ref(), site, *hour).await;
            let manifest = store
                .get(&keys::manifest(CORP, site, *hour))
                .await?
                .ok_or("manifest missing")?;
            let manifest = feed_export::Manifest::parse("m", &manifest.body)?;
            assert!(manifest.run_id == a.run_id() || manifest.run_id == b.run_id());
        }
    }
    let written = ra.hours_exported() + rb.hours_exported();
    assert_eq!(
        written,
        2 * hours.len(),
        "each hour exported by exactly one run: a {ra:?} b {rb:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_on_moto_exact_and_overlapping_exporters() -> TestResult {
    let bucket = create_bucket("feed").await;
    let sim = sim(2, 5.0).await;
    sim.state.set_faults(Faults {
        page_latency_ms: 10,
        ..Faults::default()
    })?;
    let store = kit_storage::open(&format!("s3://{bucket}/feeds/sigsci"), Some(&moto_url()))?;
    overlap(&sim, store.clone(), &last_hours(&sim, 2)).await?;
    let listed = store.list("").await?;
    assert!(
        listed
            .iter()
            .all(|m| m.key.starts_with("corp=testcorp/site=")),
        "{listed:?}"
    );
    sim.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_token_fails_clearly_and_changes_nothing() -> TestResult {
    let sim = sim(1, 1.0).await;
    let store = CountingStore::new(Arc::new(MemoryStore::new()));
    let exporter = Exporter::new(
        client_with_token(&sim, "wrong-token"),
        store.clone(),
        clock(&sim),
    );
    let error = exporter
        .run(
            &ExportRequest {
                sites: SiteSelection::All,
                range: None,
            },
            None,
        )
        .await
        .err()
        .ok_or("must fail")?;
    assert!(
        matches!(&error, ExportError::Api { source, .. } if source.status() == Some(401)),
        "{error}"
    );
    assert!(!error.is_transient());
    assert_eq!(store.counts(), (0, 0), "nothing read or written");
    sim.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_site_and_missing_bucket_are_clear_errors() -> TestResult {
    let sim = sim(1, 1.0).await;
    let exporter = Exporter::new(client(&sim), Arc::new(MemoryStore::new()), clock(&sim));
    let request = ExportRequest {
        sites: SiteSelection::Only(vec!["nope".into()]),
        range: None,
    };
    let error = exporter
        .run(&request, None)
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        error.contains("\"nope\"") && error.contains("site-1"),
        "{error}"
    );

    set_test_aws_env();
    let missing = kit_storage::open("s3://no-such-feed-bucket/x", Some(&moto_url()))?;
    let exporter = Exporter::new(client(&sim), missing, clock(&sim));
    let error = exporter
        .run(
            &ExportRequest {
                sites: SiteSelection::All,
                range: None,
            },
            None,
        )
        .await
        .err()
        .ok_or("must fail")?;
    assert!(
        matches!(&error, ExportError::Storage(StorageError::BucketMissing { bucket }) if bucket == "no-such-feed-bucket"),
        "{error}"
    );
    sim.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_pages_are_retried_and_never_half_committed() -> TestResult {
    let sim = sim(1, 5.0).await;
    let hours = last_hours(&sim, 2);
    let store: Arc<dyn ObjectStore> = Arc::new(MemoryStore::new());
    // Every page truncated: the hour cannot be fetched, so nothing of it may become visible.
    sim.state.set_faults(Faults {
        malformed: 1.0,
        ..Faults::default()
    })?;
    let mut settings = settings();
    settings.max_window_attempts = 2;
    let exporter = Exporter::new(client(&sim), store.clone(), clock(&sim)).with_settings(settings);
    let report = exporter
        .run(&backfill(&["site-1"], &hours[..1]), None)
        .await?;
    assert_eq!(report.hours_exported(), 0);
    assert!(
        report.errors().iter().any(|e| e.contains("failed 2 times")),
        "{:?}",
        report.errors()
    );
    let prefix = keys::hour_prefix(CORP, "site-1", hours[0]);
    let left: Vec<_> = store
        .list(&prefix)
        .await?
        .into_iter()
        .map(|m| m.key)
        .filter(|k| !k.ends_with("_lease.json"))
        .collect();
    assert!(left.is_empty(), "nothing committed: {left:?}");

    // With some malformed pages, the windows are retried and the result is exact.
    sim.state.set_faults(Faults {
        malformed: 0.3,
        ..Faults::default()
    })?;
    let exporter = Exporter::new(client(&sim), store.clone(), clock(&sim))
        .with_settings(settings_with_retries());
    let report = exporter.run(&backfill(&["site-1"], &hours), None).await?;
    assert_eq!(report.hours_exported(), 2, "{:?}", report.errors());
    for hour in &hours {
        assert_exact(&sim, store.as_ref(), "site-1", *hour).await;
    }
    sim.shutdown().await;
    Ok(())
}

fn settings_with_retries() -> feed_export::ExportSettings {
    feed_export::ExportSettings {
        max_window_attempts: 20,
        ..settings()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stops_before_the_deadline_and_leaves_the_rest() -> TestResult {
    let sim = sim(1, 5.0).await;
    sim.state.set_faults(Faults {
        page_latency_ms: 200,
        ..Faults::default()
    })?;
    let store: Arc<dyn ObjectStore> = Arc::new(MemoryStore::new());
    let mut settings = settings();
    settings.deadline_margin = Duration::from_millis(500);
    let exporter = Exporter::new(client(&sim), store.clone(), clock(&sim)).with_settings(settings);
    let hours = last_hours(&sim, 4);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    let report = exporter
        .run(&backfill(&["site-1"], &hours), Some(deadline))
        .await?;
    assert!(report.stopped_for_deadline);
    assert!(
        tokio::time::Instant::now() <= deadline,
        "returned after the deadline"
    );
    let site = &report.sites[0];
    assert_eq!(site.exported.len() + site.pending.len(), 4, "{site:?}");
    assert!(!site.pending.is_empty());
    // What was not finished is not visible, and its lease is free for the next run.
    for hour in &hours {
        if site.pending.contains(&hour.to_string()) {
            assert!(
                store
                    .get(&keys::manifest(CORP, "site-1", *hour))
                    .await?
                    .is_none()
            );
            assert!(
                exported_ids(store.as_ref(), "site-1", *hour)
                    .await
                    .is_empty()
            );
        }
    }
    sim.state.set_faults(Faults::default())?;
    let next =
        Exporter::new(client(&sim), store.clone(), clock(&sim)).with_settings(self::settings());
    let report = next.run(&backfill(&["site-1"], &hours), None).await?;
    assert_eq!(report.sites[0].exported.len(), site.pending.len());
    for hour in &hours {
        assert_exact(&sim, store.as_ref(), "site-1", *hour).await;
    }
    sim.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hours_under_a_crashed_runs_lease_are_pending_not_success() -> TestResult {
    let sim = sim(1, 1.0).await;
    let store: Arc<dyn ObjectStore> = Arc::new(MemoryStore::new());
    let hours = last_hours(&sim, 2);
    // A crashed run still holds the first hour's lease until it expires.
    let held = feed_export::lease::Lease::acquire(
        store.as_ref(),
        &keys::lease(CORP, "site-1", hours[0]),
        "crashed-run",
        sim.state.now(),
        600,
    )
    .await?;
    assert!(held.is_some());
    let exporter =
        Exporter::new(client(&sim), store.clone(), clock(&sim)).with_settings(settings());
    let report = exporter.run(&backfill(&["site-1"], &hours), None).await?;
    assert_eq!(report.sites[0].busy, [hours[0].to_string()]);
    assert_eq!(
        (
            report.hours_exported(),
            report.hours_busy(),
            report.hours_pending()
        ),
        (1, 1, 1)
    );
    assert_eq!(report.outcome(), RunOutcome::Pending);
    let line = feed_export::metrics::emf_line(&report, &report.sites[0], 0);
    assert!(
        line.contains("\"HoursPending\":1") && line.contains("\"HoursBusy\":1"),
        "{line}"
    );
    sim.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranges_out_of_bounds_fail_before_any_work() -> TestResult {
    let sim = sim(1, 1.0).await;
    let store = CountingStore::new(Arc::new(MemoryStore::new()));
    let now = sim.state.now();
    let newest = Hour::newest_ready(now);
    let cases = [
        ((0, HOUR), "until"),                        // 1970: before the retention
        ((newest.start(), newest.start()), "until"), // empty
        ((newest.start(), newest.start() + 3 * HOUR), "until"), // in the future
        ((newest.start() - 30 * HOUR, newest.start()), "from/until"), // longer than the retention
    ];
    for ((from, until), setting) in cases {
        let request = ExportRequest {
            sites: SiteSelection::All,
            range: Some((from, until)),
        };
        let exporter =
            Exporter::new(client(&sim), store.clone(), clock(&sim)).with_settings(settings());
        match exporter.run(&request, None).await {
            Err(ExportError::Config { setting: got, .. }) => assert_eq!(got, setting),
            other => panic!("{from}..{until}: {other:?}"),
        }
    }
    assert_eq!(store.counts(), (0, 0), "nothing read or written");
    sim.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_reaching_past_retention_records_the_lost_hours_once() -> TestResult {
    let sim = sim(1, 1.0).await;
    let store: Arc<dyn ObjectStore> = Arc::new(MemoryStore::new());
    let oldest = Hour::oldest_retained(sim.state.now());
    let request = ExportRequest {
        sites: SiteSelection::All,
        range: Some((oldest.start() - 3 * HOUR, oldest.end())),
    };
    let run = || Exporter::new(client(&sim), store.clone(), clock(&sim)).with_settings(settings());
    let report = run().run(&request, None).await?;
    let unreachable: Vec<String> = Hour::range(Hour(oldest.start() - 3 * HOUR), oldest)
        .map(|h| h.to_string())
        .collect();
    assert_eq!(report.sites[0].lost, unreachable);
    assert_eq!(report.hours_exported(), 1);
    assert_eq!(report.outcome(), RunOutcome::Lost);
    let again = run().run(&request, None).await?;
    assert!(again.sites[0].lost.is_empty(), "{:?}", again.sites[0]);
    assert_eq!(again.outcome(), RunOutcome::Complete);
    let (stored, _) = ledger::load(store.as_ref(), CORP, "site-1")
        .await?
        .ok_or("no ledger")?;
    assert_eq!(stored.lost.len(), 3);
    sim.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exact_when_pages_come_out_of_order_and_records_repeat_across_boundaries() -> TestResult {
    let sim = sim(1, 5.0).await;
    sim.state.set_faults(Faults {
        pages_out_of_order: true,
        repeat_across_boundaries: true,
        ..Faults::default()
    })?;
    let store: Arc<dyn ObjectStore> = Arc::new(MemoryStore::new());
    let hours = last_hours(&sim, 2);
    let mut settings = settings();
    // Several sub-windows per hour, so records repeat across their boundaries.
    settings.pipeline.max_window_records = 3_000;
    settings.pipeline.page_limit = 500;
    let exporter = Exporter::new(client(&sim), store.clone(), clock(&sim)).with_settings(settings);
    let report = exporter.run(&backfill(&["site-1"], &hours), None).await?;
    assert!(report.errors().is_empty(), "{:?}", report.errors());
    assert_eq!(report.hours_exported(), 2);
    for hour in &hours {
        assert_exact(&sim, store.as_ref(), "site-1", *hour).await;
        let key = keys::manifest(CORP, "site-1", *hour);
        let body = store.get(&key).await?.ok_or("no manifest")?.body;
        let manifest = feed_export::manifest::Manifest::parse(&key, &body)?;
        assert!(
            manifest.parts.len() >= 2,
            "{hour}: {} parts",
            manifest.parts.len()
        );
        assert!(
            manifest.api.duplicates > 0 && manifest.api.out_of_window > 0,
            "{hour}: the faults must have been exercised: {:?}",
            manifest.api
        );
    }
    sim.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_clock_ahead_costs_only_the_oldest_hour_never_the_newer_ones() -> TestResult {
    let sim = sim(1, 1.0).await;
    let store: Arc<dyn ObjectStore> = Arc::new(MemoryStore::new());
    // The API's clock runs 20 minutes ahead of the exporter's: it has already dropped the start
    // of the oldest hour the exporter still counts in retention.
    let skew = 20 * 60;
    let state = sim.state.clone();
    let behind: feed_export::SharedClock = Arc::new(move || state.now() - skew);
    let exporter_now = behind.now();
    let oldest = Hour::oldest_retained(exporter_now);
    assert!(oldest.start() < sim.state.now() - feed_export::window::API_MAX_AGE);
    let request = ExportRequest {
        sites: SiteSelection::All,
        range: None,
    };
    let report = Exporter::new(client(&sim), store.clone(), behind)
        .with_settings(settings())
        .run(&request, None)
        .await?;
    let site = &report.sites[0];
    assert!(report.errors().is_empty(), "{:?}", report.errors());
    assert_eq!(site.pending, vec![oldest.to_string()]);
    assert!(site.lost.is_empty(), "{:?}", site.lost);
    assert_eq!(report.outcome(), RunOutcome::Pending);
    let newer: Vec<Hour> =
        Hour::range(oldest.next(), Hour::newest_ready(exporter_now).next()).collect();
    let exported: Vec<String> = site.exported.iter().map(|h| h.hour.clone()).collect();
    assert_eq!(
        exported,
        newer.iter().map(Hour::to_string).collect::<Vec<_>>()
    );
    assert_eq!(newer.len(), 22);
    for hour in &newer {
        assert_exact(&sim, store.as_ref(), "site-1", *hour).await;
    }
    assert!(
        exported_ids(store.as_ref(), "site-1", oldest)
            .await
            .is_empty()
    );
    assert!(
        store
            .get(&keys::manifest(CORP, "site-1", oldest))
            .await?
            .is_none()
    );

    // Once the exporter's clock agrees, the refused hour is lost and nothing else.
    let report = Exporter::new(client(&sim), store.clone(), clock(&sim))
        .with_settings(settings())
        .run(&request, None)
        .await?;
    let site = &report.sites[0];
    assert_eq!(site.lost, vec![oldest.to_string()]);
    assert!(site.pending.is_empty(), "{:?}", site.pending);
    assert_eq!(report.hours_exported(), 1);
    sim.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_that_goes_away_mid_run_stops_the_run_soon_and_leaves_every_hour_pending()
-> TestResult {
    let sim = sim(3, 20.0).await;
    let store = Arc::new(MemoryStore::new());
    let sites = ["site-1", "site-2", "site-3"];
    let hours = last_hours(&sim, 2);
    let offset = sim.state.clock().offset_secs;
    // ~72k records an hour at ≤ 2k per window: dozens of windows per hour still to go when the
    // API goes away, each of which would be restarted 8 times without the run-wide check.
    let mut settings = settings();
    settings.pipeline.max_window_records = 2_000;
    let exporter = Exporter::new(client(&sim), store.clone(), clock(&sim)).with_settings(settings);

    // The API goes away once the first part is written.
    let watched: Arc<dyn ObjectStore> = store.clone();
    let outage = tokio::spawn(async move {
        loop {
            let objects = watched.list("").await?;
            if objects.iter().any(|o| o.key.contains("/part-")) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        sim.shutdown().await;
        Ok::<_, StorageError>(())
    });
    let started = tokio::time::Instant::now();
    let report = tokio::time::timeout(
        Duration::from_secs(60),
        exporter.run(&backfill(&sites, &hours), None),
    )
    .await
    .map_err(|_| "the run kept going for 60 s after the API went away")??;
    outage.await??;
    let took = started.elapsed();

    assert_eq!(report.outcome(), RunOutcome::Pending, "{report:?}");
    for site in &report.sites {
        let error = site.error.as_deref().unwrap_or_default();
        assert!(
            error.contains("the API did not answer for") && error.contains("transport error"),
            "{}: {error:?}",
            site.site
        );
        assert_eq!(
            site.exported.len() + site.pending.len(),
            hours.len(),
            "{site:?}"
        );
        for hour in &hours {
            if site.pending.contains(&hour.to_string()) {
                assert!(
                    store
                        .get(&keys::manifest(CORP, &site.site, *hour))
                        .await?
                        .is_none()
                );
                assert!(
                    exported_ids(store.as_ref(), &site.site, *hour)
                        .await
                        .is_empty(),
                    "parts of a pending hour stayed behind"
                );
            }
        }
    }
    assert!(report.hours_pending() > 0);
    eprintln!("the run stopped {took:?} after it started");

    // The API is back (the same seed serves the same records): the next run completes every
    // hour exactly.
    let back = common::sim(3, 20.0).await;
    back.state.update_clock(&ClockUpdate {
        offset_secs: Some(offset),
        ..ClockUpdate::default()
    })?;
    let next =
        Exporter::new(client(&back), store.clone(), clock(&back)).with_settings(self::settings());
    let report = next.run(&backfill(&sites, &hours), None).await?;
    assert_eq!(report.outcome(), RunOutcome::Complete, "{report:?}");
    for site in sites {
        for hour in &hours {
            assert_exact(&back, store.as_ref(), site, *hour).await;
        }
    }
    back.shutdown().await;
    Ok(())
}

//! The OCSF Parquet output: the same records as the NDJSON (or instead of it), exactly once, under
//! both layouts, with a killed run's leftovers swept.

use crate::common;

use std::sync::Arc;

use arrow_array::Array;
use arrow_array::cast::AsArray;
use bytes::Bytes;
use common::*;
use feed_export::window::{Hour, keys};
use feed_export::{
    ExportRequest, ExportSettings, Exporter, Format, Layout, Manifest, OcsfOutput, Outputs,
    SiteSelection,
};
use kit_storage::{LocalStore, ObjectStore, PutCondition};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use sigsci_sim::Faults;

fn backfill(sites: &[&str], hours: &[Hour]) -> ExportRequest {
    ExportRequest {
        sites: SiteSelection::Only(sites.iter().map(|s| s.to_string()).collect()),
        range: Some((
            hours.first().map(|h| h.start()).unwrap_or_default(),
            hours.last().map(|h| h.end()).unwrap_or_default(),
        )),
    }
}

fn security_lake() -> Layout {
    Layout::parse(
        "security-lake",
        Some("sigsci"),
        Some("eu-west-1"),
        Some("123456789012"),
        ["layout", "source", "region", "account"],
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

fn with_outputs(format: Format, ocsf: &Arc<dyn ObjectStore>, layout: Layout) -> ExportSettings {
    let mut settings = settings();
    settings.pipeline.outputs = Outputs::new(
        format,
        Some(OcsfOutput {
            store: ocsf.clone(),
            layout,
        }),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    settings
}

async fn manifest(store: &dyn ObjectStore, site: &str, hour: Hour) -> Manifest {
    let key = keys::manifest(CORP, site, hour);
    let object = store
        .get(&key)
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("no {key}"));
    Manifest::parse(&key, &object.body).unwrap_or_else(|e| panic!("{e}"))
}

/// The event ids (`metadata.uid`) of every Parquet part of the hour, as a scan of the layout's
/// prefix would read them; also checks each listed part's size and row count.
async fn ocsf_ids(
    ocsf: &dyn ObjectStore,
    layout: &Layout,
    manifest: &Manifest,
    site: &str,
    hour: Hour,
) -> Vec<String> {
    let listed = manifest
        .ocsf
        .as_ref()
        .unwrap_or_else(|| panic!("{site} {hour}: the manifest has no ocsf entry"));
    assert_eq!(listed.version, ocsf::OCSF_VERSION);
    assert_eq!(listed.layout, layout.name());
    let prefix = layout.hour_prefix(CORP, site, hour);
    let mut ids = Vec::new();
    let mut keys_found = Vec::new();
    for object in ocsf.list(&prefix).await.unwrap_or_default() {
        keys_found.push(object.key.clone());
        let body = ocsf
            .get(&object.key)
            .await
            .ok()
            .flatten()
            .map(|o| o.body)
            .unwrap_or_default();
        let part = listed
            .parts
            .iter()
            .find(|p| p.name == object.key)
            .unwrap_or_else(|| panic!("{} is not in the manifest", object.key));
        assert_eq!(body.len() as u64, part.bytes, "{}", object.key);
        let reader = ParquetRecordBatchReaderBuilder::try_new(body)
            .and_then(|b| b.build())
            .unwrap_or_else(|e| panic!("{}: {e}", object.key));
        let mut rows = 0;
        for batch in reader {
            let batch = batch.unwrap_or_else(|e| panic!("{}: {e}", object.key));
            rows += batch.num_rows() as u64;
            let metadata = batch
                .column_by_name("metadata")
                .unwrap_or_else(|| panic!("no metadata column"))
                .as_struct();
            let uid = metadata
                .column_by_name("uid")
                .unwrap_or_else(|| panic!("no metadata.uid"))
                .as_string::<i32>();
            ids.extend((0..uid.len()).map(|i| uid.value(i).to_string()));
        }
        assert_eq!(rows, part.records, "{}", object.key);
    }
    let mut listed_keys: Vec<String> = listed.parts.iter().map(|p| p.name.clone()).collect();
    listed_keys.sort();
    keys_found.sort();
    assert_eq!(
        keys_found, listed_keys,
        "{site} {hour}: parts on disk vs manifest"
    );
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_formats_hold_the_same_records_exactly_under_faults() -> TestResult {
    let sim = sim(2, 5.0).await;
    sim.state.set_faults(Faults {
        rate_limit_429: 0.10,
        server_error: 0.05,
        html_502: 0.03,
        reset: 0.03,
        malformed: 0.03,
        cursor_ttl_secs: 1,
        page_latency_ms: 20,
        ..Faults::default()
    })?;
    let dir = tempfile::tempdir()?;
    let store: Arc<dyn ObjectStore> = Arc::new(LocalStore::new(dir.path()));
    let ocsf: Arc<dyn ObjectStore> = Arc::new(LocalStore::new(dir.path().join("ocsf")));
    let hours = last_hours(&sim, 2);
    let mut settings = with_outputs(Format::Both, &ocsf, Layout::Hive);
    settings.pipeline.max_window_records = 3_000;
    settings.pipeline.page_limit = 500;
    let exporter = Exporter::new(client(&sim), store.clone(), clock(&sim)).with_settings(settings);
    let report = exporter
        .run(&backfill(&["site-1", "site-2"], &hours), None)
        .await?;
    assert!(report.errors().is_empty(), "{:?}", report.errors());
    assert_eq!(report.hours_exported(), 4);
    for site in ["site-1", "site-2"] {
        for hour in &hours {
            assert_exact_with(&sim, store.as_ref(), Some(ocsf.as_ref()), site, *hour).await;
            let manifest = manifest(store.as_ref(), site, *hour).await;
            let ids = ocsf_ids(ocsf.as_ref(), &Layout::Hive, &manifest, site, *hour).await;
            assert_eq!(ids, sim.state.truth(site, hour.start(), hour.end()));
            let parquet_records: u64 = manifest
                .ocsf
                .iter()
                .flat_map(|o| &o.parts)
                .map(|p| p.records)
                .sum();
            assert_eq!(parquet_records, manifest.records);
        }
    }
    sim.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ocsf_only_into_the_security_lake_layout_writes_no_ndjson() -> TestResult {
    let sim = sim(1, 5.0).await;
    let dir = tempfile::tempdir()?;
    let store: Arc<dyn ObjectStore> = Arc::new(LocalStore::new(dir.path().join("feed")));
    let ocsf: Arc<dyn ObjectStore> = Arc::new(LocalStore::new(dir.path().join("lake")));
    let hour = last_hours(&sim, 1)[0];
    let mut settings = with_outputs(Format::OcsfParquet, &ocsf, security_lake());
    settings.pipeline.max_window_records = 3_000;
    let exporter = Exporter::new(client(&sim), store.clone(), clock(&sim)).with_settings(settings);
    let report = exporter.run(&backfill(&["site-1"], &[hour]), None).await?;
    assert_eq!(report.hours_exported(), 1, "{:?}", report.errors());
    let manifest = manifest(store.as_ref(), "site-1", hour).await;
    assert!(manifest.parts.is_empty(), "{:?}", manifest.parts);
    assert!(
        exported_ids(store.as_ref(), "site-1", hour)
            .await
            .is_empty()
    );
    let ids = ocsf_ids(ocsf.as_ref(), &security_lake(), &manifest, "site-1", hour).await;
    let truth = sim.state.truth("site-1", hour.start(), hour.end());
    assert_eq!(ids, truth);
    assert_eq!(manifest.records, truth.len() as u64);
    let day = hour.datetime().format("%Y%m%d");
    let first = &manifest.ocsf.as_ref().map(|o| o.parts[0].name.clone());
    assert!(
        first.as_deref().is_some_and(|k| k.starts_with(&format!(
            "ext/sigsci/region=eu-west-1/accountId=123456789012/eventDay={day}/testcorp~site-1~"
        ))),
        "{first:?}"
    );
    let verification =
        feed_export::verify::verify_hour(store.as_ref(), Some(ocsf.as_ref()), CORP, "site-1", hour)
            .await?;
    assert!(verification.ok(), "{:?}", verification.problems);
    sim.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_runs_parquet_parts_are_swept_and_the_hour_is_exact() -> TestResult {
    let sim = sim(1, 5.0).await;
    let dir = tempfile::tempdir()?;
    let store: Arc<dyn ObjectStore> = Arc::new(LocalStore::new(dir.path()));
    let ocsf: Arc<dyn ObjectStore> = Arc::new(LocalStore::new(dir.path().join("ocsf")));
    let hour = last_hours(&sim, 1)[0];
    for layout in [Layout::Hive, security_lake()] {
        // A killed run with other window boundaries: finished parts and no manifest.
        let prefix = layout.hour_prefix(CORP, "site-1", hour);
        for name in ["part-00017.parquet", "part-00053.parquet"] {
            ocsf.put(
                &format!("{prefix}{name}"),
                Bytes::from_static(b"from a killed run"),
                PutCondition::Always,
            )
            .await?;
        }
    }
    // Another hour's and another site's objects in the shared Security Lake directory stay.
    let neighbour = format!(
        "{}part-00000.parquet",
        security_lake().hour_prefix(CORP, "site-10", hour)
    );
    ocsf.put(&neighbour, Bytes::from_static(b"x"), PutCondition::Always)
        .await?;
    for (index, layout) in [Layout::Hive, security_lake()].into_iter().enumerate() {
        let settings = with_outputs(Format::Both, &ocsf, layout.clone());
        let exporter =
            Exporter::new(client(&sim), store.clone(), clock(&sim)).with_settings(settings);
        if index == 1 {
            // The hour is complete after the first run; start it over for the second layout.
            store.delete(&keys::manifest(CORP, "site-1", hour)).await?;
            store.delete(&keys::ledger(CORP, "site-1")).await?;
        }
        let report = exporter.run(&backfill(&["site-1"], &[hour]), None).await?;
        assert_eq!(report.hours_exported(), 1, "{:?}", report.errors());
        let manifest = manifest(store.as_ref(), "site-1", hour).await;
        let ids = ocsf_ids(ocsf.as_ref(), &layout, &manifest, "site-1", hour).await;
        assert_eq!(ids, sim.state.truth("site-1", hour.start(), hour.end()));
        assert_exact_with(&sim, store.as_ref(), Some(ocsf.as_ref()), "site-1", hour).await;
    }
    assert!(ocsf.get(&neighbour).await?.is_some());
    sim.shutdown().await;
    Ok(())
}

#[test]
fn formats_and_layouts_refuse_bad_settings() {
    assert_eq!("both".parse::<Format>(), Ok(Format::Both));
    assert!("parquet".parse::<Format>().is_err());
    assert!(Outputs::new(Format::OcsfParquet, None).is_err());
    let names = ["layout", "source", "region", "account"];
    for (layout, source, region, account, bad) in [
        ("lake", None, None, None, "layout"),
        (
            "security-lake",
            None,
            Some("eu-west-1"),
            Some("123456789012"),
            "source",
        ),
        (
            "security-lake",
            Some("a/b"),
            Some("eu-west-1"),
            Some("123456789012"),
            "source",
        ),
        (
            "security-lake",
            Some("s"),
            Some("EU West"),
            Some("123456789012"),
            "region",
        ),
        (
            "security-lake",
            Some("s"),
            Some("eu-west-1"),
            Some("1234"),
            "account",
        ),
    ] {
        let error = Layout::parse(layout, source, region, account, names)
            .err()
            .unwrap_or_else(|| panic!("{layout} {source:?} {region:?} {account:?} was accepted"));
        assert!(error.to_string().contains(bad), "{error}");
    }
}

/// Exports one hour as NDJSON and OCSF (Hive) into `dir`, checks that verify passes and reports the
/// OCSF parts, and returns the stores, the hour and its manifest.
async fn exported_both(
    sim: &sigsci_sim::RunningSim,
    dir: &std::path::Path,
) -> (Arc<dyn ObjectStore>, Arc<dyn ObjectStore>, Hour, Manifest) {
    let store: Arc<dyn ObjectStore> = Arc::new(LocalStore::new(dir));
    let ocsf: Arc<dyn ObjectStore> = Arc::new(LocalStore::new(dir.join("ocsf")));
    let hour = last_hours(sim, 1)[0];
    let mut settings = with_outputs(Format::Both, &ocsf, Layout::Hive);
    settings.pipeline.max_window_records = 3_000;
    let exporter = Exporter::new(client(sim), store.clone(), clock(sim)).with_settings(settings);
    let report = exporter
        .run(&backfill(&["site-1"], &[hour]), None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.hours_exported(), 1, "{:?}", report.errors());
    let manifest = manifest(store.as_ref(), "site-1", hour).await;
    let listed = manifest.ocsf.clone().unwrap_or_else(|| panic!("no ocsf"));
    assert!(listed.parts.len() >= 2, "{:?}", listed.parts);
    // The run's summary reports the OCSF output as the manifest lists it.
    let summary = report.sites[0].exported[0].ocsf.clone();
    assert_eq!(
        summary,
        Some(feed_export::OcsfSummary {
            parts: listed.parts.len(),
            records: manifest.records,
            bytes: listed.parts.iter().map(|p| p.bytes).sum(),
        })
    );
    let verification = verify(&store, Some(&ocsf), hour).await;
    assert!(verification.ok(), "{:?}", verification.problems);
    let checked = verification
        .ocsf
        .unwrap_or_else(|| panic!("ocsf not checked"));
    assert_eq!(
        (checked.parts, checked.records),
        (listed.parts.len(), manifest.records)
    );
    (store, ocsf, hour, manifest)
}

async fn verify(
    store: &Arc<dyn ObjectStore>,
    ocsf: Option<&Arc<dyn ObjectStore>>,
    hour: Hour,
) -> feed_export::verify::Verification {
    feed_export::verify::verify_hour(
        store.as_ref(),
        ocsf.map(|o| o.as_ref()),
        CORP,
        "site-1",
        hour,
    )
    .await
    .unwrap_or_else(|e| panic!("verify: {e}"))
}

/// Asserts verify fails with a problem naming `part` and containing each of `what`.
fn assert_problem(verification: &feed_export::verify::Verification, part: &str, what: &[&str]) {
    assert!(!verification.ok(), "verify passed");
    for what in what {
        assert!(
            verification
                .problems
                .iter()
                .any(|p| p.contains(part) && p.contains(what)),
            "no problem naming {part} with {what:?}: {:?}",
            verification.problems
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_finds_corrupt_missing_and_stray_parquet_parts() -> TestResult {
    let sim = sim(1, 5.0).await;
    let dir = tempfile::tempdir()?;
    let (store, ocsf, hour, manifest) = exported_both(&sim, dir.path()).await;
    let listed = manifest.ocsf.clone().unwrap_or_else(|| panic!("no ocsf"));
    let part = listed.parts[0].name.clone();
    let original = ocsf.get(&part).await?.map(|o| o.body).unwrap_or_default();
    let put = |body: Bytes| {
        let ocsf = ocsf.clone();
        let part = part.clone();
        async move {
            ocsf.put(&part, body, PutCondition::Always)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        }
    };

    // Truncated: the footer is gone.
    put(original.slice(..original.len() / 2)).await;
    let truncated = verify(&store, Some(&ocsf), hour).await;
    assert_problem(
        &truncated,
        &part,
        &[
            "bytes, manifest says",
            "sha256",
            "not a readable Parquet file",
        ],
    );

    // Bytes flipped in the footer's metadata, the length kept.
    let mut flipped = original.to_vec();
    let at = flipped.len() - 40;
    for byte in &mut flipped[at..at + 16] {
        *byte ^= 0xa5;
    }
    put(Bytes::from(flipped)).await;
    let flipped = verify(&store, Some(&ocsf), hour).await;
    assert_problem(&flipped, &part, &["sha256", "not a readable Parquet file"]);
    assert!(
        !flipped
            .problems
            .iter()
            .any(|p| p.contains("bytes, manifest says")),
        "{:?}",
        flipped.problems
    );

    // Missing.
    ocsf.delete(&part).await?;
    assert_problem(
        &verify(&store, Some(&ocsf), hour).await,
        &part,
        &["missing"],
    );
    // No OCSF store to check against is a failure too, not a silent pass.
    put(original.clone()).await;
    assert!(verify(&store, Some(&ocsf), hour).await.ok());
    let unchecked = verify(&store, None, hour).await;
    assert!(
        !unchecked.ok() && unchecked.problems[0].contains("no OCSF store"),
        "{:?}",
        unchecked.problems
    );

    // A stray part of another attempt beside the listed ones.
    let stray = format!(
        "{}part-00099.parquet",
        Layout::Hive.hour_prefix(CORP, "site-1", hour)
    );
    ocsf.put(&stray, original.clone(), PutCondition::Always)
        .await?;
    assert_problem(&verify(&store, Some(&ocsf), hour).await, &stray, &["stray"]);
    ocsf.delete(&stray).await?;
    assert!(verify(&store, Some(&ocsf), hour).await.ok());
    sim.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_compares_the_ocsf_ids_with_the_ndjson() -> TestResult {
    let sim = sim(1, 5.0).await;
    let dir = tempfile::tempdir()?;
    let (store, ocsf, hour, mut manifest) = exported_both(&sim, dir.path()).await;
    // A well-formed Parquet part that lacks one of its window's records, with a manifest that
    // records it consistently (size, sha256, rows): only the ids tell.
    let listed = manifest.ocsf.as_mut().unwrap_or_else(|| panic!("no ocsf"));
    let entry = &mut listed.parts[0];
    let stem = entry
        .name
        .rsplit('/')
        .next()
        .and_then(|n| n.strip_suffix(".parquet"))
        .unwrap_or_default()
        .to_string();
    let ndjson = store
        .get(&format!(
            "{}{stem}.ndjson.gz",
            keys::hour_prefix(CORP, "site-1", hour)
        ))
        .await?
        .map(|o| o.body)
        .unwrap_or_default();
    let lines: Vec<String> = std::io::BufRead::lines(std::io::BufReader::new(
        flate2::read::MultiGzDecoder::new(ndjson.as_ref()),
    ))
    .collect::<Result<_, _>>()?;
    let dropped: serde_json::Value = serde_json::from_str(&lines[0])?;
    let mut writer = ocsf::OcsfWriter::new(
        Vec::new(),
        ocsf::Source {
            corp: CORP.into(),
            site: "site-1".into(),
        },
    )?;
    for line in &lines[1..] {
        writer.push_record(line)?;
    }
    let (body, rows) = writer.finish()?;
    entry.records = rows;
    entry.bytes = body.len() as u64;
    entry.sha256 = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&body))
    };
    ocsf.put(&entry.name, Bytes::from(body), PutCondition::Always)
        .await?;
    store
        .put(
            &keys::manifest(CORP, "site-1", hour),
            Bytes::from(manifest.to_json()),
            PutCondition::Always,
        )
        .await?;
    let verification = verify(&store, Some(&ocsf), hour).await;
    let id = dropped["id"].as_str().unwrap_or_default();
    assert!(!verification.ok());
    assert!(
        verification.problems.iter().any(|p| p
            .contains("1 record ids are in the NDJSON but not the OCSF")
            && p.contains(id)),
        "{:?}",
        verification.problems
    );
    assert!(
        verification
            .problems
            .iter()
            .any(|p| p.contains("events in the OCSF parts, manifest says")),
        "{:?}",
        verification.problems
    );
    sim.shutdown().await;
    Ok(())
}

/// The OCSF store on moto with credentials from moto's STS; tests/feed/test_ocsf.py checks through a
/// recording proxy that every request to the lake is signed with the key STS issued for the role
/// (moto's own data.json breaks once another suite has deleted a bucket).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lake_is_written_through_the_assumed_role_on_moto() -> TestResult {
    set_test_aws_env();
    // SAFETY: only the STS endpoint, which nothing else in this binary reads, to the same value.
    unsafe { std::env::set_var("AWS_ENDPOINT_URL_STS", moto_url()) };
    let bucket = create_bucket("lake").await;
    let role = format!("arn:aws:iam::123456789012:role/{}", unique("lake-writer"));
    assert!(
        kit_storage::open_as("lake-dir", None, Some(&role)).is_err(),
        "a role on a directory must be refused"
    );
    let sim = sim(1, 5.0).await;
    let dir = tempfile::tempdir()?;
    let store: Arc<dyn ObjectStore> = Arc::new(LocalStore::new(dir.path()));
    let lake = kit_storage::open_as(&format!("s3://{bucket}"), Some(&moto_url()), Some(&role))?;
    let hour = last_hours(&sim, 1)[0];
    let mut settings = with_outputs(Format::Both, &lake, security_lake());
    settings.pipeline.max_window_records = 3_000;
    let exporter = Exporter::new(client(&sim), store.clone(), clock(&sim)).with_settings(settings);
    let report = exporter.run(&backfill(&["site-1"], &[hour]), None).await?;
    assert_eq!(report.hours_exported(), 1, "{:?}", report.errors());
    assert_exact_with(&sim, store.as_ref(), Some(lake.as_ref()), "site-1", hour).await;
    let manifest = manifest(store.as_ref(), "site-1", hour).await;
    let ids = ocsf_ids(lake.as_ref(), &security_lake(), &manifest, "site-1", hour).await;
    assert_eq!(ids, sim.state.truth("site-1", hour.start(), hour.end()));
    let keys: Vec<String> = kit_storage::testing::s3_client()
        .list_objects_v2()
        .bucket(&bucket)
        .send()
        .await?
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_string))
        .collect();
    let prefix = format!(
        "ext/sigsci/region=eu-west-1/accountId=123456789012/eventDay={}/{CORP}~site-1~{}~part-",
        hour.datetime().format("%Y%m%d"),
        hour.datetime().format("%Y%m%d%H")
    );
    assert!(
        !keys.is_empty() && keys.iter().all(|k| k.starts_with(&prefix)),
        "{keys:?}"
    );
    sim.shutdown().await;
    Ok(())
}

/// An OCSF store that cannot be reached (here S3 on a closed port; in the field missing
/// credentials or the role's STS) fails the hour before a page is fetched, not each window after
/// its pages were: nothing is read from the API and nothing is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_ocsf_store_fails_the_hour_before_any_page_is_fetched() -> TestResult {
    kit_storage::testing::set_test_aws_env();
    let sim = sim(1, 5.0).await;
    let dir = tempfile::tempdir()?;
    let store: Arc<dyn ObjectStore> = Arc::new(LocalStore::new(dir.path()));
    let lake = kit_storage::open_as("s3://lake", Some("http://127.0.0.1:9"), None)?;
    let hours = last_hours(&sim, 2);
    let exporter = Exporter::new(client(&sim), store.clone(), clock(&sim))
        .with_settings(with_outputs(Format::Both, &lake, Layout::Hive));
    sim.state.reset_call_log();
    let report = exporter.run(&backfill(&["site-1"], &hours), None).await?;
    let site = &report.sites[0];
    let error = site.error.as_deref().unwrap_or_default();
    assert!(
        error.contains("ListMultipartUploads s3://lake/"),
        "the error names the OCSF store: {error:?}"
    );
    assert_eq!(site.pending.len(), hours.len(), "{site:?}");
    let feed_pages: u64 = sim
        .state
        .call_log()
        .calls
        .iter()
        .filter(|(call, _)| call.contains("/feed/requests"))
        .map(|(_, count)| count)
        .sum();
    assert_eq!(
        feed_pages, 0,
        "pages were fetched for an hour that could not be stored"
    );
    for hour in &hours {
        assert!(
            exported_ids(store.as_ref(), "site-1", *hour)
                .await
                .is_empty()
        );
    }
    sim.shutdown().await;
    Ok(())
}

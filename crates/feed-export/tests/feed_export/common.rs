//! Shared set-up: the simulator in-process, a client with quick retries, a clock that reads the
//! simulator's clock, and helpers that read back what was exported.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use feed_export::window::{HOUR, Hour, keys};
use feed_export::{ExportSettings, SharedClock};
pub use kit_storage::testing::{create_bucket, create_secret, moto_url, set_test_aws_env, unique};
use kit_storage::{ObjectMeta, ObjectStore, PutCondition, PutOutcome, StoredObject, Upload};
use secrecy::SecretString;
use sigsci::{Client, CredentialSecret, Credentials, RetryPolicy};
use sigsci_sim::{ClockUpdate, RunningSim, SimConfig};

pub type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;
pub const CORP: &str = "testcorp";

pub async fn sim(sites: usize, rps: f64) -> RunningSim {
    let config = SimConfig {
        corp: CORP.into(),
        sites,
        rps,
        seed: 7,
        ..SimConfig::default()
    };
    let sim = sigsci_sim::start(
        config,
        "127.0.0.1:0".parse().unwrap_or_else(|_| unreachable!()),
    )
    .await
    .unwrap_or_else(|e| panic!("simulator: {e}"));
    // Put "now" at 07:30 past an hour so a few minutes of test time never cross an hour boundary.
    let now = sim.state.now();
    let target = now.div_euclid(HOUR) * HOUR + 7 * 60 + 30;
    sim.state
        .update_clock(&ClockUpdate {
            offset_secs: Some(target - now + sim.state.clock().offset_secs),
            ..ClockUpdate::default()
        })
        .unwrap_or_else(|e| panic!("clock: {e}"));
    sim
}

pub fn clock(sim: &RunningSim) -> SharedClock {
    let state = sim.state.clone();
    Arc::new(move || state.now())
}

pub fn client_with_token(sim: &RunningSim, token: &str) -> Client {
    let credentials = Credentials {
        email: "sim@example.com".into(),
        secret: CredentialSecret::Token(SecretString::from(token.to_string())),
    };
    Client::builder(sim.base_url.clone(), CORP, credentials)
        .retry(RetryPolicy {
            max_attempts: 6,
            min_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(400),
            max_retry_after: Duration::from_secs(1),
        })
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap_or_else(|e| panic!("client: {e}"))
}

pub fn client(sim: &RunningSim) -> Client {
    client_with_token(sim, "sim-token")
}

pub fn settings() -> ExportSettings {
    ExportSettings {
        lease_ttl_secs: 120,
        ..ExportSettings::default()
    }
}

/// The newest `count` exportable hours, oldest first.
pub fn last_hours(sim: &RunningSim, count: i64) -> Vec<Hour> {
    let newest = Hour::newest_ready(sim.state.now());
    (0..count)
        .rev()
        .map(|i| Hour(newest.start() - i * HOUR))
        .collect()
}

/// Every record id in the hour's partition (all `part-*` objects, as a scan would read them).
pub async fn exported_ids(store: &dyn ObjectStore, site: &str, hour: Hour) -> Vec<String> {
    let prefix = keys::hour_prefix(CORP, site, hour);
    let mut ids = Vec::new();
    // A store that fails here must fail the test, not read as "nothing exported".
    let listed = store
        .list(&prefix)
        .await
        .unwrap_or_else(|e| panic!("listing {prefix}: {e}"));
    for object in listed {
        if !keys::is_part_name(object.key.strip_prefix(&prefix).unwrap_or_default()) {
            continue;
        }
        let body = store
            .get(&object.key)
            .await
            .unwrap_or_else(|e| panic!("reading {}: {e}", object.key))
            .unwrap_or_else(|| panic!("{} was listed but is gone", object.key))
            .body;
        for line in BufReader::new(flate2::read::MultiGzDecoder::new(body.as_ref())).lines() {
            let line = line.unwrap_or_else(|e| panic!("{}: {e}", object.key));
            let value: serde_json::Value =
                serde_json::from_str(&line).unwrap_or_else(|e| panic!("{}: {e}", object.key));
            ids.push(value["id"].as_str().unwrap_or_default().to_string());
        }
    }
    ids
}

/// Asserts the partition holds exactly the simulator's truth, once each, and verifies.
pub async fn assert_exact(sim: &RunningSim, store: &dyn ObjectStore, site: &str, hour: Hour) {
    assert_exact_with(sim, store, None, site, hour).await;
}

/// As [`assert_exact`], verifying the OCSF parts in `ocsf` too.
pub async fn assert_exact_with(
    sim: &RunningSim,
    store: &dyn ObjectStore,
    ocsf: Option<&dyn ObjectStore>,
    site: &str,
    hour: Hour,
) {
    let mut ids = exported_ids(store, site, hour).await;
    let count = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(
        ids.len(),
        count,
        "{site} {hour}: duplicates in the partition"
    );
    let truth = sim.state.truth(site, hour.start(), hour.end());
    assert_eq!(
        ids.len(),
        truth.len(),
        "{site} {hour}: exported {} records, truth has {}",
        ids.len(),
        truth.len()
    );
    assert_eq!(ids, truth, "{site} {hour}: ids differ from the truth");
    let verification = feed_export::verify::verify_hour(store, ocsf, CORP, site, hour)
        .await
        .unwrap_or_else(|e| panic!("verify: {e}"));
    assert!(
        verification.ok(),
        "{site} {hour}: {:?}",
        verification.problems
    );
}

/// Counts the calls that reach a store (to prove a run wrote nothing).
pub struct CountingStore {
    pub inner: Arc<dyn ObjectStore>,
    pub reads: AtomicUsize,
    pub writes: AtomicUsize,
}

impl CountingStore {
    pub fn new(inner: Arc<dyn ObjectStore>) -> Arc<CountingStore> {
        Arc::new(CountingStore {
            inner,
            reads: AtomicUsize::new(0),
            writes: AtomicUsize::new(0),
        })
    }
    pub fn counts(&self) -> (usize, usize) {
        (
            self.reads.load(Ordering::SeqCst),
            self.writes.load(Ordering::SeqCst),
        )
    }
}

#[async_trait]
impl ObjectStore for CountingStore {
    async fn get(&self, key: &str) -> kit_storage::Result<Option<StoredObject>> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.inner.get(key).await
    }
    async fn put(
        &self,
        key: &str,
        body: Bytes,
        condition: PutCondition,
    ) -> kit_storage::Result<PutOutcome> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.inner.put(key, body, condition).await
    }
    async fn delete(&self, key: &str) -> kit_storage::Result<()> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.inner.delete(key).await
    }
    async fn list(&self, prefix: &str) -> kit_storage::Result<Vec<ObjectMeta>> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.inner.list(prefix).await
    }
    async fn upload(&self, key: &str) -> kit_storage::Result<Box<dyn Upload>> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.inner.upload(key).await
    }
    async fn sweep_incomplete(&self, prefix: &str) -> kit_storage::Result<usize> {
        self.inner.sweep_incomplete(prefix).await
    }
    fn location(&self) -> String {
        self.inner.location()
    }
}

/// Snapshot of every object (key → size) for before/after comparisons.
pub async fn snapshot(store: &dyn ObjectStore) -> BTreeMap<String, u64> {
    store
        .list("")
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|m| (m.key, m.size))
        .collect()
}

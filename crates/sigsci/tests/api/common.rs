//! Simulator fixture, fast retry policy and small control-API helpers.

use std::collections::HashSet;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use futures::TryStreamExt;
use serde_json::{Value, json};
use sigsci::{Client, Credentials, FeedPage, FeedQuery, RetryPolicy};
use sigsci_sim::{RunningSim, SimConfig};

/// Retries fast so fault tests take milliseconds; plenty of attempts so a 30% fault rate
/// cannot exhaust them by chance.
pub fn fast_retries() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 25,
        min_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(20),
        max_retry_after: Duration::from_millis(50),
    }
}

pub struct Sim {
    pub running: RunningSim,
    pub control: reqwest::Client,
}

impl Sim {
    pub async fn start(config: SimConfig) -> Result<Sim> {
        let running = sigsci_sim::start(config, "127.0.0.1:0".parse()?).await?;
        Ok(Sim {
            running,
            control: reqwest::Client::new(),
        })
    }

    pub async fn default() -> Result<Sim> {
        Sim::start(SimConfig::default()).await
    }

    pub fn config(&self) -> &SimConfig {
        self.running.state.config()
    }

    pub fn base_url(&self) -> &str {
        &self.running.base_url
    }

    /// A token client with fast retries.
    pub fn client(&self) -> Result<Client> {
        let config = self.config();
        Ok(Client::builder(
            self.base_url(),
            &config.corp,
            Credentials::token(&config.email, &config.token),
        )
        .retry(fast_retries())
        .build()?)
    }

    async fn put(&self, path: &str, body: Value) -> Result<Value> {
        let response = self
            .control
            .put(format!("{}{path}", self.base_url()))
            .json(&body)
            .send()
            .await?;
        let status = response.status();
        let text = response.text().await?;
        ensure!(status.is_success(), "PUT {path}: {status} {text}");
        Ok(if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)?
        })
    }

    pub async fn get(&self, path: &str) -> Result<Value> {
        let response = self
            .control
            .get(format!("{}{path}", self.base_url()))
            .send()
            .await?;
        let status = response.status();
        let text = response.text().await?;
        ensure!(status.is_success(), "GET {path}: {status} {text}");
        Ok(serde_json::from_str(&text)?)
    }

    pub async fn set_faults(&self, faults: Value) -> Result<()> {
        self.put("/__sim/faults", faults).await.map(drop)
    }

    pub async fn advance_clock(&self, secs: i64) -> Result<()> {
        self.put("/__sim/clock", json!({ "advance_secs": secs }))
            .await
            .map(drop)
    }

    pub async fn set_fleet(&self, site: &str, fleet: Value) -> Result<()> {
        self.put(&format!("/__sim/sites/{site}/agents"), fleet)
            .await
            .map(drop)
    }

    pub async fn log(&self) -> Result<Value> {
        self.get("/__sim/log").await
    }

    pub async fn reset_log(&self) -> Result<()> {
        let response = self
            .control
            .delete(format!("{}/__sim/log", self.base_url()))
            .send()
            .await?;
        ensure!(
            response.status().is_success(),
            "DELETE /__sim/log: {}",
            response.status()
        );
        Ok(())
    }

    /// How often the API saw `key` ("GET /corps/{corp}/sites/{site}/alerts").
    pub async fn calls(&self, key: &str) -> Result<u64> {
        Ok(self.log().await?["calls"][key].as_u64().unwrap_or(0))
    }

    /// The newest feed window of `minutes` the API serves (ends 5+ minutes ago, minute aligned).
    pub fn window(&self, minutes: i64) -> FeedQuery {
        let until = (self.running.state.now() - 300) / 60 * 60 - 60;
        FeedQuery::new(until - minutes * 60, until)
    }

    pub fn truth(&self, site: &str, query: &FeedQuery) -> Vec<String> {
        self.running.state.truth(site, query.from, query.until)
    }
}

/// Pages the whole feed and returns the pages.
pub async fn collect_pages(client: &Client, site: &str, query: FeedQuery) -> Result<Vec<FeedPage>> {
    client
        .feed(site, query)
        .try_collect()
        .await
        .with_context(|| format!("paging {site}"))
}

/// Sorted ids of `pages`, failing on a duplicate.
pub fn sorted_ids(pages: &[FeedPage]) -> Result<Vec<String>> {
    let mut seen = HashSet::new();
    let mut ids = Vec::new();
    for record in pages.iter().flat_map(|p| &p.records) {
        ensure!(
            seen.insert(record.id().to_owned()),
            "duplicate record {}",
            record.id()
        );
        ids.push(record.id().to_owned());
    }
    ids.sort();
    Ok(ids)
}

/// Asserts that paging `site` yields exactly the simulator's ground truth; returns the pages.
pub async fn assert_feed_matches_truth(
    sim: &Sim,
    client: &Client,
    site: &str,
    query: FeedQuery,
) -> Result<Vec<FeedPage>> {
    let truth = sim.truth(site, &query);
    ensure!(
        !truth.is_empty(),
        "window holds no records; test is vacuous"
    );
    let pages = collect_pages(client, site, query).await?;
    let ids = sorted_ids(&pages)?;
    ensure!(
        ids == truth,
        "{site}: paged {} records, truth has {}",
        ids.len(),
        truth.len()
    );
    Ok(pages)
}

//! The opening scenario of `sigsci-kit demo`: the corp's sites and agents, and one feed page.

use crate::output::outln;
use anyhow::Context;
use futures::StreamExt;
use sigsci::{Client, FeedQuery};

/// Sites, agents and one feed page: what every later job is built on.
pub async fn run(client: &Client, now: i64) -> anyhow::Result<()> {
    let sites = client.list_sites().await.context("listing sites")?;
    outln!("\nsites: {}", sites.len());
    for site in &sites {
        let agents = client
            .list_agents(&site.name)
            .await
            .with_context(|| format!("listing agents of {}", site.name))?;
        let online = agents.iter().filter(|agent| agent.is_online()).count();
        outln!(
            "  {:<10} {:>2} agents, {:>2} online",
            site.name,
            agents.len(),
            online
        );
    }

    let first = sites.first().context("the simulator serves no site")?;
    // The newest window the API will serve: minute-aligned and at least five minutes old.
    let until = (now / 60) * 60 - 300;
    let from = until - 600;
    let query = FeedQuery {
        from,
        until,
        tags: Vec::new(),
        limit: 1000,
    };
    let mut pages = client.feed(&first.name, query);
    let page = pages
        .next()
        .await
        .context("the feed returned no page")?
        .context("fetching a feed page")?;
    outln!(
        "\nfeed of {} from {} to {}: first page has {} records",
        first.name,
        format_epoch(from),
        format_epoch(until),
        page.records.len()
    );
    if let Some(record) = page.records.first() {
        let preview: String = record.raw.get().chars().take(160).collect();
        outln!("  e.g. {} at {}: {preview}…", record.id(), record.timestamp);
    }
    Ok(())
}

fn format_epoch(epoch: i64) -> String {
    chrono::DateTime::from_timestamp(epoch, 0)
        .map(|time| time.to_rfc3339())
        .unwrap_or_else(|| epoch.to_string())
}

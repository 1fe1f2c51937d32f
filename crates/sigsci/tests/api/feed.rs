//! Feed paging: completeness, 414 fallback to POST, cursor expiry, concurrency limits.

use std::time::Duration;

use anyhow::{Result, bail, ensure};
use futures::StreamExt;
use serde_json::json;
use sigsci::{Error, FeedQuery};
use sigsci_sim::SimConfig;

use crate::common::{Sim, assert_feed_matches_truth, collect_pages, sorted_ids};

const FEED_GET: &str = "GET /corps/{corp}/sites/{site}/feed/requests";
const FEED_POST: &str = "POST /corps/{corp}/sites/{site}/feed/requests";

#[tokio::test]
async fn full_paging_equals_ground_truth() -> Result<()> {
    let sim = Sim::default().await?;
    let client = sim.client()?;
    let pages = assert_feed_matches_truth(&sim, &client, "site-1", sim.window(10)).await?;
    ensure!(pages.len() > 10, "expected many pages, got {}", pages.len());
    ensure!(
        pages.iter().all(|p| p.attempts == 1),
        "retries without faults"
    );
    // Raw records are the API's JSON, complete.
    let record = &pages[0].records[0];
    let raw: serde_json::Value = serde_json::from_str(record.raw.get())?;
    ensure!(raw["id"] == record.id() && raw.get("headersIn").is_some());
    ensure!(sim.calls(FEED_POST).await? == 0, "short cursors go by GET");

    // A tag filter travels with the first request and narrows the result.
    let tagged = FeedQuery {
        tags: vec!["SQLI".into()],
        ..sim.window(10)
    };
    let truth = sim
        .running
        .state
        .truth_tagged("site-1", tagged.from, tagged.until, &["SQLI"]);
    let ids = sorted_ids(&collect_pages(&client, "site-1", tagged).await?)?;
    ensure!(
        ids == truth,
        "tagged: {} vs truth {}",
        ids.len(),
        truth.len()
    );
    sim.running.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn uri_too_long_falls_back_to_post() -> Result<()> {
    let sim = Sim::default().await?;
    let client = sim.client()?;
    let query = FeedQuery {
        limit: 500,
        ..sim.window(5)
    };

    // Cursors of ~1.2 KB: the URL is short enough to try GET, the server allows only 1000 bytes.
    sim.set_faults(json!({ "max_uri_len": 1000, "cursor_pad": 1200 }))
        .await?;
    let pages = assert_feed_matches_truth(&sim, &client, "site-1", query.clone()).await?;
    let log = sim.log().await?;
    let (gets, posts) = (
        log["calls"][FEED_GET].as_u64().unwrap_or(0),
        log["calls"][FEED_POST].as_u64().unwrap_or(0),
    );
    // First page and one rejected cursor GET; after the 414 every cursor goes by POST.
    ensure!(gets == 2, "GETs {gets}");
    ensure!(
        posts as usize == pages.len() - 1,
        "POSTs {posts} for {} pages",
        pages.len()
    );
    ensure!(pages[1].attempts == 2, "414 + POST count as two attempts");

    // Cursors beyond the GET budget go straight to POST, no 414 needed.
    sim.set_faults(json!({ "cursor_pad": 3000 })).await?;
    sim.reset_log().await?;
    let pages = assert_feed_matches_truth(&sim, &client, "site-1", query).await?;
    ensure!(
        sim.calls(FEED_GET).await? == 1,
        "only the first page by GET"
    );
    ensure!(pages.iter().all(|p| p.attempts == 1));
    sim.running.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn expired_cursor_ends_the_stream_with_cursor_expired() -> Result<()> {
    let sim = Sim::default().await?;
    let client = sim.client()?;
    let query = FeedQuery {
        limit: 100,
        ..sim.window(5)
    };
    let mut pages = client.feed("site-1", query);
    let first = pages.next().await;
    ensure!(matches!(first, Some(Ok(_))), "first page: {first:?}");
    // The consumer stalls past the cursor lifetime.
    sim.advance_clock(120).await?;
    let mut delivered = 1;
    loop {
        match pages.next().await {
            Some(Ok(_)) => delivered += 1,
            Some(Err(Error::CursorExpired { message })) => {
                ensure!(message.contains("expired"), "{message}");
                break;
            }
            Some(Err(other)) => bail!("expected CursorExpired, got {other:?}"),
            None => bail!("stream ended without CursorExpired"),
        }
    }
    // Only pre-fetched pages arrive before the error (one queued, one being handed over, one
    // in flight), then the stream is over.
    ensure!(delivered <= 4, "{delivered} pages after the stall");
    ensure!(
        pages.next().await.is_none(),
        "stream continues after CursorExpired"
    );
    sim.running.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn concurrency_stays_within_two_per_site_and_five_per_corp() -> Result<()> {
    let sim = Sim::start(SimConfig {
        sites: 4,
        rps: 20.0,
        ..SimConfig::default()
    })
    .await?;
    // Slow pages make streams overlap for real.
    sim.set_faults(json!({ "page_latency_ms": 15 })).await?;
    let client = sim.client()?;
    let query = FeedQuery {
        limit: 200,
        ..sim.window(5)
    };
    let mut streams = Vec::new();
    for site in sim.running.state.site_names() {
        for _ in 0..3 {
            let (client, site, query) = (client.clone(), site.clone(), query.clone());
            streams.push(tokio::spawn(async move {
                let ids = sorted_ids(&collect_pages(&client, &site, query).await?)?;
                anyhow::Ok((site, ids))
            }));
        }
    }
    for stream in streams {
        let (site, ids) = stream.await??;
        ensure!(ids == sim.truth(&site, &query), "{site}: incomplete feed");
    }
    let feed = sim.log().await?["feed"].clone();
    ensure!(
        feed["rejected_concurrency"] == 0,
        "429 concurrency rejections: {feed}"
    );
    ensure!(
        feed["max_concurrent_corp"] == 5,
        "corp limit not reached/overshot: {feed}"
    );
    let per_site: Vec<u64> = sim
        .running
        .state
        .site_names()
        .iter()
        .map(|site| feed["max_concurrent_per_site"][site].as_u64().unwrap_or(0))
        .collect();
    ensure!(
        per_site.iter().all(|&n| n <= 2),
        "site limit overshot: {feed}"
    );
    ensure!(per_site.contains(&2), "site limit never reached: {feed}");
    sim.running.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn dropping_the_stream_stops_prefetching() -> Result<()> {
    let sim = Sim::default().await?;
    let client = sim.client()?;
    let query = FeedQuery {
        limit: 100,
        ..sim.window(10)
    };
    let mut pages = client.feed("site-1", query);
    ensure!(matches!(pages.next().await, Some(Ok(_))));
    drop(pages);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let fetched = sim.calls(FEED_GET).await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    ensure!(sim.calls(FEED_GET).await? == fetched, "pager kept fetching");
    ensure!(fetched <= 4, "{fetched} pages fetched for one consumed");
    sim.running.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn a_consumer_keeping_its_page_has_only_one_more_fetched() -> Result<()> {
    let sim = Sim::default().await?;
    let client = sim.client()?;
    let query = FeedQuery {
        limit: 100,
        ..sim.window(10)
    };
    let truth = sim.truth("site-1", &query);
    ensure!(truth.len() > 500, "too few records for many pages");
    let mut pages = client.feed("site-1", query);
    let Some(Ok(first)) = pages.next().await else {
        bail!("no first page");
    };
    // Not asking for the next page: the window's two places are this page and the next one.
    // Once that one was requested, a third request would follow at once without the budget.
    let started = std::time::Instant::now();
    while sim.calls(FEED_GET).await? < 2 {
        ensure!(
            started.elapsed() < Duration::from_secs(10),
            "the next page was never fetched ahead"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let fetched = sim.calls(FEED_GET).await?;
    ensure!(
        fetched == 2,
        "{fetched} pages fetched while the consumer kept one"
    );
    // Asking again frees the first page's place, and paging goes on to the end.
    let mut pages_read = vec![first];
    while let Some(page) = pages.next().await {
        pages_read.push(page?);
    }
    let ids = sorted_ids(&pages_read)?;
    ensure!(ids == truth, "{} records, truth {}", ids.len(), truth.len());
    sim.running.shutdown().await;
    Ok(())
}

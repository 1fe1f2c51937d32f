//! The request feed via `oneshot`: validation, paging against ground truth, cursors, filters,
//! concurrency limits and determinism.

use crate::common;

use std::collections::HashSet;

use axum::Router;
use axum::http::{Method, StatusCode};
use common::{NOW, Reply, api, frozen_state, router};
use serde_json::Value;
use sigsci_sim::{ClockUpdate, Faults, SimConfig, SimState};

const FEED: &str = "/api/v0/corps/testcorp/sites/site-1/feed/requests";

fn small_config() -> SimConfig {
    SimConfig {
        rps: 5.0,
        ..SimConfig::default()
    }
}

async fn get(app: &Router, query: &str) -> Reply {
    api(Method::GET, &format!("{FEED}?{query}")).send(app).await
}

fn ids(page: &Value) -> Vec<String> {
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Follows `next.uri` to the end; returns every id and the page sizes.
async fn drain(app: &Router, first_query: &str) -> (Vec<String>, Vec<usize>) {
    let mut reply = get(app, first_query).await;
    let mut all = Vec::new();
    let mut sizes = Vec::new();
    loop {
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "{}",
            String::from_utf8_lossy(&reply.bytes)
        );
        let page = reply.json();
        let page_ids = ids(&page);
        sizes.push(page_ids.len());
        all.extend(page_ids);
        let next = page["next"]["uri"].as_str().unwrap().to_owned();
        if next.is_empty() {
            return (all, sizes);
        }
        assert!(next.starts_with(&format!("{FEED}?next=")), "{next}");
        reply = api(Method::GET, &next).send(app).await;
    }
}

#[tokio::test]
async fn window_validation_messages() {
    let app = router(&frozen_state(small_config()));
    let cases = [
        (format!("until={}", NOW - 600), "from is required"),
        (
            format!("from={}&until={}", NOW - 3630, NOW - 600),
            "full minute",
        ),
        (
            format!("from={}&until={}", NOW - 3600, NOW - 590),
            "full minute",
        ),
        (
            format!("from={}&until={}", NOW - 3600, NOW - 240),
            "at least 5 minutes in the past",
        ),
        (
            format!("from={}&until={}", NOW - 86_760, NOW - 600),
            "24 hours and 5 minutes",
        ),
        (
            format!("from={}&until={}", NOW - 600, NOW - 600),
            "from must be before until",
        ),
        (
            format!("from={}&until={}", NOW - 600, NOW - 1200),
            "from must be before until",
        ),
        (
            format!("from={}&until={}&limit=1001", NOW - 3600, NOW - 600),
            "limit must be",
        ),
        (
            format!("from={}&until={}&limit=0", NOW - 3600, NOW - 600),
            "limit must be",
        ),
        (
            format!("from=abc&until={}", NOW - 600),
            "from must be Unix epoch seconds",
        ),
        ("next=bogus".to_owned(), "invalid next cursor"),
    ];
    for (query, message) in cases {
        let reply = get(&app, &query).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(reply.content_type(), "application/json");
        assert!(
            reply.message().contains(message),
            "{query}: {}",
            reply.message()
        );
    }
    // The exact bounds are accepted, and unknown parameters (pysigsci's `tag`) are ignored.
    let edge = get(
        &app,
        &format!(
            "from={}&until={}&tag=SQLI&pretty=true",
            NOW - 86_700 + 60,
            NOW - 300
        ),
    )
    .await;
    assert_eq!(edge.status, StatusCode::OK, "{}", edge.message());
}

#[tokio::test]
async fn paging_covers_exactly_the_truth() {
    let state = frozen_state(small_config());
    let app = router(&state);
    let (from, until) = (NOW - 3600, NOW - 1800);
    let (seen, sizes) = drain(&app, &format!("from={from}&until={until}&limit=250")).await;
    let truth = state.truth("site-1", from, until);
    assert!(truth.len() > 5000, "{}", truth.len());
    assert!(sizes.iter().all(|n| *n <= 250));
    assert!(sizes[..sizes.len() - 1].iter().all(|n| *n == 250));
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "duplicates across pages");
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(sorted, truth);
    // Pages are shuffled, not delivered in id order.
    assert_ne!(seen, truth);

    let control = common::call(
        Method::GET,
        &format!("/__sim/truth?corp=testcorp&site=site-1&from={from}&until={until}"),
    )
    .send(&app)
    .await
    .json();
    assert_eq!(control["count"].as_u64().unwrap() as usize, truth.len());
    assert_eq!(control["ids"][0].as_str().unwrap(), truth[0]);
}

#[tokio::test]
async fn default_limit_is_1000_and_records_are_complete() {
    let app = router(&frozen_state(small_config()));
    let page = get(&app, &format!("from={}&until={}", NOW - 3600, NOW - 600))
        .await
        .json();
    assert_eq!(page["data"].as_array().unwrap().len(), 1000);
    let record = &page["data"][0];
    for field in [
        "id",
        "serverHostname",
        "remoteIP",
        "timestamp",
        "uri",
        "responseCode",
        "headersIn",
        "headersOut",
        "tags",
    ] {
        assert!(record.get(field).is_some(), "{field}");
    }
    assert!(page.get("totalCount").is_none());
}

#[tokio::test]
async fn tags_filter_matches_truth() {
    let state = frozen_state(small_config());
    let app = router(&state);
    let (from, until) = (NOW - 3600, NOW - 2400);
    let (seen, _) = drain(
        &app,
        &format!("from={from}&until={until}&tags=SQLI,XSS&limit=100"),
    )
    .await;
    let mut sorted = seen;
    sorted.sort();
    assert_eq!(
        sorted,
        state.truth_tagged("site-1", from, until, &["SQLI", "XSS"])
    );
    assert!(!sorted.is_empty() && sorted.len() < state.truth("site-1", from, until).len() / 2);
    let bad = get(&app, &format!("from={from}&until={until}&tags=SQLI;DROP")).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn cursor_via_post_form_with_limit_in_query() {
    let state = frozen_state(small_config());
    let app = router(&state);
    let (from, until) = (NOW - 1200, NOW - 600);
    let first = get(&app, &format!("from={from}&until={until}&limit=400"))
        .await
        .json();
    let next_uri = first["next"]["uri"].as_str().unwrap();
    let cursor = next_uri.split_once("next=").unwrap().1;
    let mut seen = ids(&first);
    let mut body = format!("next={cursor}");
    loop {
        let reply = api(Method::POST, &format!("{FEED}?limit=700"))
            .form(&body)
            .send(&app)
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.message());
        let page = reply.json();
        assert!(ids(&page).len() <= 700);
        seen.extend(ids(&page));
        let next = page["next"]["uri"].as_str().unwrap();
        if next.is_empty() {
            break;
        }
        body = format!("next={}", next.split_once("next=").unwrap().1);
    }
    seen.sort();
    assert_eq!(seen, state.truth("site-1", from, until));
}

#[tokio::test]
async fn cursors_expire_on_the_simulator_clock() {
    let state = frozen_state(small_config());
    let app = router(&state);
    let first = get(
        &app,
        &format!("from={}&until={}&limit=10", NOW - 3600, NOW - 600),
    )
    .await
    .json();
    let next = first["next"]["uri"].as_str().unwrap().to_owned();
    state
        .update_clock(&ClockUpdate {
            advance_secs: Some(60),
            ..ClockUpdate::default()
        })
        .unwrap();
    assert_eq!(
        api(Method::GET, &next).send(&app).await.status,
        StatusCode::OK
    );
    state
        .update_clock(&ClockUpdate {
            advance_secs: Some(1),
            ..ClockUpdate::default()
        })
        .unwrap();
    let expired = api(Method::GET, &next).send(&app).await;
    assert_eq!(expired.status, StatusCode::BAD_REQUEST);
    assert_eq!(expired.message(), "next cursor has expired");

    // A longer TTL from the fault set applies to cursors already issued.
    state
        .set_faults(Faults {
            cursor_ttl_secs: 600,
            ..Faults::default()
        })
        .unwrap();
    assert_eq!(
        api(Method::GET, &next).send(&app).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn cursor_of_another_site_is_rejected() {
    let app = router(&frozen_state(small_config()));
    let first = get(
        &app,
        &format!("from={}&until={}&limit=10", NOW - 3600, NOW - 600),
    )
    .await
    .json();
    let next = first["next"]["uri"]
        .as_str()
        .unwrap()
        .replace("site-1", "site-2");
    let reply = api(Method::GET, &next).send(&app).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(reply.message().contains("another site"));
}

#[tokio::test]
async fn cursor_padding_and_uri_limit() {
    let state = frozen_state(small_config());
    let app = router(&state);
    state
        .set_faults(Faults {
            cursor_pad: 10_000,
            ..Faults::default()
        })
        .unwrap();
    let first = get(
        &app,
        &format!("from={}&until={}&limit=10", NOW - 3600, NOW - 600),
    )
    .await
    .json();
    let next = first["next"]["uri"].as_str().unwrap().to_owned();
    assert!(next.len() > 10_000);
    let too_long = api(Method::GET, &next).send(&app).await;
    assert_eq!(too_long.status, StatusCode::URI_TOO_LONG);
    assert_eq!(too_long.content_type(), "application/json");
    // The POST form variant keeps the URI short.
    let cursor = next.split_once("next=").unwrap().1;
    let posted = api(Method::POST, &format!("{FEED}?limit=10"))
        .form(&format!("next={cursor}"))
        .send(&app)
        .await;
    assert_eq!(posted.status, StatusCode::OK, "{}", posted.message());
}

#[tokio::test]
async fn concurrency_limits_answer_429_immediately() {
    let state = frozen_state(SimConfig {
        rps: 1.0,
        sites: 4,
        ..SimConfig::default()
    });
    let app = router(&state);
    state
        .set_faults(Faults {
            page_latency_ms: 300,
            ..Faults::default()
        })
        .unwrap();
    let query = format!("from={}&until={}", NOW - 1200, NOW - 600);
    let site_get = |site: &str| {
        api(
            Method::GET,
            &format!("/api/v0/corps/testcorp/sites/{site}/feed/requests?{query}"),
        )
        .send(&app)
    };
    let started = std::time::Instant::now();
    let (a, b, c) = tokio::join!(site_get("site-1"), site_get("site-1"), async {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        site_get("site-1").await
    });
    let mut statuses = [a.status, b.status, c.status];
    statuses.sort();
    assert_eq!(
        statuses,
        [
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
    assert_eq!(c.message(), "Too many concurrent requests");
    assert!(started.elapsed() < std::time::Duration::from_millis(600));

    let replies = six_feed_calls(&app, &query).await;
    let rejected = replies
        .iter()
        .filter(|r| r.status == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!(
        rejected, 1,
        "6 requests over 4 sites (2+2+1+1): one over the corp limit of 5"
    );
    let log = state.call_log();
    assert_eq!(log.feed.max_concurrent_corp, 5);
    assert_eq!(log.feed.max_concurrent_per_site["site-1"], 2);
    assert_eq!(log.feed.rejected_concurrency, 2);
}

async fn six_feed_calls(app: &Router, query: &str) -> Vec<Reply> {
    let call = |site: &'static str, delay: u64| {
        let uri = format!("/api/v0/corps/testcorp/sites/{site}/feed/requests?{query}");
        async move {
            tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
            api(Method::GET, &uri).send(app).await
        }
    };
    let (a, b, c, d, e, f) = tokio::join!(
        call("site-1", 0),
        call("site-1", 0),
        call("site-2", 0),
        call("site-2", 0),
        call("site-3", 0),
        call("site-4", 50)
    );
    vec![a, b, c, d, e, f]
}

#[tokio::test]
async fn deterministic_across_restarts() {
    let query = format!("from={}&until={}&limit=300", NOW - 3600, NOW - 3000);
    let one = get(&router(&frozen_state(small_config())), &query).await;
    let two = get(&router(&frozen_state(small_config())), &query).await;
    assert_eq!(one.bytes, two.bytes);
    let other_seed = get(
        &router(&frozen_state(SimConfig {
            seed: 2,
            ..small_config()
        })),
        &query,
    )
    .await;
    assert_ne!(one.bytes, other_seed.bytes);
}

/// A 1M-record hour (rps ≈ 278) is served page by page without storing it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn million_record_hour() {
    let state = SimState::new(SimConfig {
        rps: 278.0,
        sites: 1,
        ..SimConfig::default()
    });
    state
        .update_clock(&ClockUpdate {
            frozen_at: Some(NOW + 600),
            ..ClockUpdate::default()
        })
        .unwrap();
    let app = router(&state);
    let (from, until) = (NOW - 3600, NOW);
    let started = std::time::Instant::now();
    let mut reply = get(&app, &format!("from={from}&until={until}")).await;
    let mut count = 0usize;
    let mut bytes = 0usize;
    let mut xor = 0u64;
    loop {
        assert_eq!(reply.status, StatusCode::OK);
        bytes += reply.bytes.len();
        #[derive(serde::Deserialize)]
        struct Page {
            next: Next,
            data: Vec<Id>,
        }
        #[derive(serde::Deserialize)]
        struct Next {
            uri: String,
        }
        #[derive(serde::Deserialize)]
        struct Id {
            id: String,
        }
        let page: Page = serde_json::from_slice(&reply.bytes).unwrap();
        count += page.data.len();
        for record in &page.data {
            xor ^= u64::from_str_radix(&record.id[8..], 16).unwrap();
        }
        if page.next.uri.is_empty() {
            break;
        }
        reply = api(Method::GET, &page.next.uri).send(&app).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "{count} records, {} MB in {elapsed:.1} s ({:.0} records/s incl. client parsing)",
        bytes >> 20,
        count as f64 / elapsed
    );
    let truth = state.truth("site-1", from, until);
    assert!(
        (950_000..1_050_000).contains(&truth.len()),
        "{}",
        truth.len()
    );
    assert_eq!(count, truth.len());
    let truth_xor = truth
        .iter()
        .fold(0u64, |x, id| x ^ u64::from_str_radix(&id[8..], 16).unwrap());
    assert_eq!(xor, truth_xor);
}

/// Follows `next.uri` to the end; returns each page's `(id, timestamp)` records.
async fn drain_pages(app: &Router, first_query: &str) -> Vec<Vec<(String, String)>> {
    let mut reply = get(app, first_query).await;
    let mut pages = Vec::new();
    loop {
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.message());
        let page = reply.json();
        let records = page["data"].as_array().unwrap().iter();
        pages.push(
            records
                .map(|r| {
                    let field = |name: &str| r[name].as_str().unwrap().to_owned();
                    (field("id"), field("timestamp"))
                })
                .collect(),
        );
        let next = page["next"]["uri"].as_str().unwrap().to_owned();
        if next.is_empty() {
            return pages;
        }
        reply = api(Method::GET, &next).send(app).await;
    }
}

#[tokio::test]
async fn out_of_order_fault_serves_the_truth_with_pages_going_back_in_time() {
    let state = frozen_state(small_config());
    let app = router(&state);
    let set = common::call(Method::PUT, "/__sim/faults")
        .json(&serde_json::json!({"pages_out_of_order": true}))
        .send(&app)
        .await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.message());
    let (from, until) = (NOW - 3600, NOW - 1800);
    let pages = drain_pages(&app, &format!("from={from}&until={until}&limit=250")).await;
    let newest = |page: &Vec<(String, String)>| page.iter().map(|r| r.1.clone()).max();
    let oldest = |page: &Vec<(String, String)>| page.iter().map(|r| r.1.clone()).min();
    assert!(
        pages.windows(2).any(|w| newest(&w[1]) < oldest(&w[0])),
        "some page must be wholly older than the page before it"
    );
    let mut seen: Vec<String> = pages.into_iter().flatten().map(|r| r.0).collect();
    let count = seen.len();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), count, "duplicates across pages");
    assert_eq!(seen, state.truth("site-1", from, until));
}

#[tokio::test]
async fn repeat_fault_serves_the_next_minute_and_each_page_edge_twice() {
    let state = frozen_state(small_config());
    let app = router(&state);
    state
        .set_faults(Faults {
            repeat_across_boundaries: true,
            ..Faults::default()
        })
        .unwrap();
    let (from, until) = (NOW - 3600, NOW - 3000);
    let pages = drain_pages(&app, &format!("from={from}&until={until}&limit=250")).await;
    // Every page but the last ends on the record that opens the next one.
    let mut seen: Vec<String> = pages.iter().flatten().map(|r| r.0.clone()).collect();
    let count = seen.len();
    seen.sort();
    seen.dedup();
    assert_eq!(count - seen.len(), pages.len() - 1);
    // The minute after `until` is served too, so the next window's first minute comes twice.
    assert_eq!(seen, state.truth("site-1", from, until + 60));
    assert!(state.truth("site-1", until, until + 60).len() > 100);
    // Off (the default), the same window is served exactly.
    state.set_faults(Faults::default()).unwrap();
    let (plain, _) = drain(&app, &format!("from={from}&until={until}&limit=250")).await;
    let mut plain_sorted = plain.clone();
    plain_sorted.sort();
    plain_sorted.dedup();
    assert_eq!(
        plain.len(),
        plain_sorted.len(),
        "duplicates with the fault off"
    );
    assert_eq!(plain_sorted, state.truth("site-1", from, until));
}

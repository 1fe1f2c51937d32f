//! Fault injection via `oneshot`, and the reset fault over real TCP with reqwest.

use crate::common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use common::{NOW, api, call, frozen_state, router};
use serde_json::json;
use sigsci_sim::{Faults, ResetConnection, SimConfig, start};

const SITES: &str = "/api/v0/corps/testcorp/sites";

#[tokio::test]
async fn faults_round_trip_and_validate() {
    let app = router(&frozen_state(SimConfig::default()));
    let defaults = call(Method::GET, "/__sim/faults").send(&app).await.json();
    assert_eq!(defaults["cursor_ttl_secs"], 60);
    assert_eq!(defaults["max_uri_len"], 8192);
    let set = call(Method::PUT, "/__sim/faults")
        .json(&json!({"rate_limit_429": 0.5, "latency_ms": 1}))
        .send(&app)
        .await;
    assert_eq!(set.status, StatusCode::OK);
    let now = call(Method::GET, "/__sim/faults").send(&app).await.json();
    assert_eq!(
        (
            now["rate_limit_429"].as_f64(),
            now["latency_ms"].as_u64(),
            now["cursor_ttl_secs"].as_u64()
        ),
        (Some(0.5), Some(1), Some(60))
    );
    // PUT replaces the whole set: omitted knobs go back to their defaults.
    call(Method::PUT, "/__sim/faults")
        .json(&json!({"html_502": 0.1}))
        .send(&app)
        .await;
    let replaced = call(Method::GET, "/__sim/faults").send(&app).await.json();
    assert_eq!(
        (
            replaced["rate_limit_429"].as_f64(),
            replaced["html_502"].as_f64()
        ),
        (Some(0.0), Some(0.1))
    );
    for bad in [
        json!({"reset": 2.0}),
        json!({"rate_limit_429": -0.1}),
        json!({"no_such_fault": 1}),
    ] {
        let reply = call(Method::PUT, "/__sim/faults")
            .json(&bad)
            .send(&app)
            .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(!reply.message().is_empty());
    }
}

#[tokio::test]
async fn response_faults() {
    let state = frozen_state(SimConfig::default());
    let app = router(&state);

    state
        .set_faults(Faults {
            rate_limit_429: 1.0,
            ..Faults::default()
        })
        .unwrap();
    let reply = api(Method::GET, SITES).send(&app).await;
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(reply.content_type(), "application/json");

    state
        .set_faults(Faults {
            rate_limit_400: 1.0,
            ..Faults::default()
        })
        .unwrap();
    let reply = api(Method::GET, SITES).send(&app).await;
    assert_eq!(
        (reply.status, reply.message()),
        (StatusCode::BAD_REQUEST, "Rate limit exceeded".to_owned())
    );

    state
        .set_faults(Faults {
            server_error: 1.0,
            ..Faults::default()
        })
        .unwrap();
    let reply = api(Method::GET, SITES).send(&app).await;
    assert!(reply.status.is_server_error());
    assert_eq!(reply.content_type(), "application/json");
    assert!(!reply.message().is_empty());

    state
        .set_faults(Faults {
            html_502: 1.0,
            ..Faults::default()
        })
        .unwrap();
    let reply = api(Method::GET, SITES).send(&app).await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    assert_eq!(reply.content_type(), "text/html");
    assert!(String::from_utf8_lossy(&reply.bytes).contains("<html>"));

    // The control API is never faulted.
    assert_eq!(
        call(Method::GET, "/__sim/log").send(&app).await.status,
        StatusCode::OK
    );
    // Faulted calls are still counted.
    assert_eq!(state.call_log().calls["GET /corps/{corp}/sites"], 4);
}

#[tokio::test]
async fn reset_marks_the_response_for_the_server() {
    let state = frozen_state(SimConfig::default());
    state
        .set_faults(Faults {
            reset: 1.0,
            ..Faults::default()
        })
        .unwrap();
    let request = axum::http::Request::builder()
        .uri(SITES)
        .header("x-api-user", "sim@example.com")
        .header("x-api-token", "sim-token")
        .body(axum::body::Body::empty())
        .unwrap();
    let response = tower::ServiceExt::oneshot(router(&state), request)
        .await
        .unwrap();
    assert!(response.extensions().get::<ResetConnection>().is_some());
}

#[tokio::test]
async fn malformed_feed_page_is_truncated_json() {
    let state = frozen_state(SimConfig {
        rps: 2.0,
        ..SimConfig::default()
    });
    state
        .set_faults(Faults {
            malformed: 1.0,
            ..Faults::default()
        })
        .unwrap();
    let reply = api(
        Method::GET,
        &format!(
            "{SITES}/site-1/feed/requests?from={}&until={}",
            NOW - 1200,
            NOW - 600
        ),
    )
    .send(&router(&state))
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.content_type(), "application/json");
    assert!(reply.bytes.starts_with(b"{\"next\""));
    assert!(serde_json::from_slice::<serde_json::Value>(&reply.bytes).is_err());
}

#[tokio::test]
async fn latency_delays_calls() {
    let state = frozen_state(SimConfig::default());
    state
        .set_faults(Faults {
            latency_ms: 150,
            ..Faults::default()
        })
        .unwrap();
    let started = Instant::now();
    assert_eq!(
        api(Method::GET, SITES).send(&router(&state)).await.status,
        StatusCode::OK
    );
    assert!(started.elapsed() >= Duration::from_millis(150));
}

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

#[tokio::test]
async fn reset_is_a_transport_error_for_reqwest() {
    let sim = start(SimConfig::default(), loopback()).await.unwrap();
    let client = reqwest::Client::new();
    let get = || {
        client
            .get(format!("{}{SITES}", sim.base_url))
            .header("x-api-user", "sim@example.com")
            .header("x-api-token", "sim-token")
            .send()
    };
    assert_eq!(get().await.unwrap().status(), 200);
    sim.state
        .set_faults(Faults {
            reset: 1.0,
            ..Faults::default()
        })
        .unwrap();
    let err = get().await.unwrap_err();
    assert!(err.status().is_none(), "{err:?}");
    assert!(
        err.is_request() || err.is_connect() || err.is_body(),
        "{err:?}"
    );
    sim.state.set_faults(Faults::default()).unwrap();
    assert_eq!(get().await.unwrap().status(), 200);
    sim.shutdown().await;
}

#[tokio::test]
async fn served_over_tcp_and_shuts_down() {
    let sim = start(SimConfig::default(), loopback()).await.unwrap();
    assert!(sim.base_url.starts_with("http://127.0.0.1:"));
    let client = reqwest::Client::new();
    let reply = client
        .get(format!("{}/api/v0/corps/testcorp", sim.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 401);
    assert_eq!(reply.headers()["content-type"], "application/json");
    let login = client
        .post(format!("{}/api/v0/auth", sim.base_url))
        .form(&[("email", "sim@example.com"), ("password", "sim-password")])
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    let base = sim.base_url.clone();
    sim.shutdown().await;
    assert!(
        reqwest::Client::new()
            .get(format!("{base}/__sim/log"))
            .send()
            .await
            .is_err()
    );
}

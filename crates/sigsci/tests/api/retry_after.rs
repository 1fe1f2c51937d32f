//! `Retry-After` against a real socket (the exact schedule is unit-tested under paused time).

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use sigsci::{Client, Credentials, RetryPolicy};

/// Answers the first `limited` calls with 429 + `Retry-After: <secs>`, then an empty site list.
#[derive(Clone)]
struct Throttle {
    calls: Arc<AtomicU32>,
    limited: u32,
    retry_after_secs: u64,
    user_agents: Arc<std::sync::Mutex<Vec<String>>>,
}

async fn sites(State(t): State<Throttle>, headers: HeaderMap) -> impl IntoResponse {
    let agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    t.user_agents.lock().expect("lock").push(agent);
    let json = [(header::CONTENT_TYPE, "application/json")];
    if t.calls.fetch_add(1, Ordering::SeqCst) < t.limited {
        let wait = t.retry_after_secs.to_string();
        (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, wait)],
            json,
            r#"{"message":"Too Many Requests"}"#,
        )
            .into_response()
    } else {
        (json, r#"{"data":[]}"#).into_response()
    }
}

async fn serve(limited: u32, retry_after_secs: u64) -> Result<(String, Throttle)> {
    let throttle = Throttle {
        calls: Arc::new(AtomicU32::new(0)),
        limited,
        retry_after_secs,
        user_agents: Arc::default(),
    };
    let app = axum::Router::new()
        .route("/api/v0/corps/{corp}/sites", axum::routing::get(sites))
        .with_state(throttle.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((url, throttle))
}

fn client(base: &str, max_retry_after: Duration) -> Result<Client> {
    Ok(
        Client::builder(base, "corp", Credentials::token("me@example.com", "t"))
            .retry(RetryPolicy {
                max_attempts: 5,
                min_delay: Duration::from_millis(1),
                max_delay: Duration::from_millis(5),
                max_retry_after,
            })
            .build()?,
    )
}

#[tokio::test]
async fn retry_after_is_waited_for() -> Result<()> {
    let (base, throttle) = serve(1, 1).await?;
    let started = Instant::now();
    client(&base, Duration::from_secs(5))?.list_sites().await?;
    let waited = started.elapsed();
    ensure!(throttle.calls.load(Ordering::SeqCst) == 2);
    ensure!(
        waited >= Duration::from_secs(1) && waited < Duration::from_millis(1800),
        "waited {waited:?} for Retry-After: 1"
    );
    let agents = throttle.user_agents.lock().expect("lock").clone();
    ensure!(
        agents.iter().all(|a| a.starts_with("sigsci-kit/")),
        "{agents:?}"
    );
    Ok(())
}

#[tokio::test]
async fn retry_after_is_capped() -> Result<()> {
    let (base, throttle) = serve(2, 3600).await?;
    let started = Instant::now();
    client(&base, Duration::from_millis(200))?
        .list_sites()
        .await?;
    let waited = started.elapsed();
    ensure!(throttle.calls.load(Ordering::SeqCst) == 3);
    ensure!(
        waited >= Duration::from_millis(400) && waited < Duration::from_secs(2),
        "waited {waited:?}, cap is 2 x 200 ms"
    );
    Ok(())
}

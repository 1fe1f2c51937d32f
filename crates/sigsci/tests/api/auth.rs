//! Password login (Bearer session) and the single re-login after the session is revoked.

use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, ensure};
use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::response::Response;
use sigsci::{Client, Credentials, Error};

use crate::common::{Sim, fast_retries};

/// A pass-through proxy in front of the simulator that remembers the last `Authorization`
/// header, so the test can revoke the client's session with the API's own logout call.
#[derive(Clone)]
struct RecordingProxy {
    upstream: String,
    http: reqwest::Client,
    last_authorization: Arc<Mutex<Option<String>>>,
}

async fn forward(State(proxy): State<RecordingProxy>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    if let Some(value) = parts
        .headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        *proxy.last_authorization.lock().expect("lock") = Some(value.to_string());
    }
    let body = to_bytes(body, usize::MAX).await.expect("request body");
    let path = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let mut upstream = proxy
        .http
        .request(parts.method.clone(), format!("{}{path}", proxy.upstream))
        .body(body);
    for (name, value) in &parts.headers {
        if name != "host" {
            upstream = upstream.header(name, value);
        }
    }
    let reply = upstream.send().await.expect("upstream reply");
    let mut response = Response::builder().status(reply.status());
    for (name, value) in reply.headers() {
        response = response.header(name, value);
    }
    let bytes = reply.bytes().await.expect("upstream body");
    response.body(Body::from(bytes)).expect("response")
}

async fn start_proxy(upstream: &str) -> Result<(String, RecordingProxy)> {
    let proxy = RecordingProxy {
        upstream: upstream.to_string(),
        http: reqwest::Client::new(),
        last_authorization: Arc::new(Mutex::new(None)),
    };
    let app = axum::Router::new()
        .fallback(forward)
        .with_state(proxy.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((url, proxy))
}

fn password_client(base_url: &str, password: &str) -> Result<Client> {
    Ok(Client::builder(
        base_url,
        "testcorp",
        Credentials::password("sim@example.com", password),
    )
    .retry(fast_retries())
    .build()?)
}

#[tokio::test]
async fn password_login_creates_one_shared_session() -> Result<()> {
    let sim = Sim::default().await?;
    let client = password_client(sim.base_url(), "sim-password")?;
    let clone = client.clone();
    ensure!(client.list_sites().await?.len() == 3);
    ensure!(clone.list_alerts("site-1").await?.len() >= 2);
    ensure!(
        sim.calls("POST /auth").await? == 1,
        "clones must share the session"
    );
    sim.running.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn wrong_password_is_unauthorized() -> Result<()> {
    let sim = Sim::default().await?;
    let client = password_client(sim.base_url(), "not-the-password")?;
    let err = client.list_sites().await.expect_err("login must fail");
    ensure!(
        matches!(err, Error::Unauthorized { status: 401, .. }),
        "{err:?}"
    );
    ensure!(
        sim.calls("POST /auth").await? == 1,
        "retried a failed login"
    );
    ensure!(sim.calls("GET /corps/{corp}/sites").await? == 0);
    sim.running.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn revoked_session_is_renewed_once() -> Result<()> {
    let sim = Sim::default().await?;
    let (proxy_url, proxy) = start_proxy(sim.base_url()).await?;
    let client = password_client(&proxy_url, "sim-password")?;
    ensure!(client.list_sites().await?.len() == 3);

    // Revoke the session the client uses.
    let bearer = proxy
        .last_authorization
        .lock()
        .expect("lock")
        .clone()
        .context("client sent no Authorization header")?;
    ensure!(bearer.starts_with("Bearer "), "not a bearer session");
    let logout = sim
        .control
        .get(format!("{}/api/v0/auth/logout", sim.base_url()))
        .header("authorization", &bearer)
        .send()
        .await?;
    ensure!(logout.status().is_success());
    let revoked = sim
        .control
        .get(format!("{}/api/v0/corps/testcorp/sites", sim.base_url()))
        .header("authorization", &bearer)
        .send()
        .await?;
    ensure!(revoked.status() == 401, "logout did not revoke the session");

    sim.reset_log().await?;
    ensure!(client.list_sites().await?.len() == 3, "call after re-login");
    ensure!(sim.calls("POST /auth").await? == 1, "exactly one re-login");
    ensure!(
        sim.calls("GET /corps/{corp}/sites").await? == 2,
        "401 then success"
    );
    let renewed = proxy.last_authorization.lock().expect("lock").clone();
    ensure!(
        renewed.is_some_and(|b| b != bearer),
        "new session token in use"
    );

    // If the password changed meanwhile, the re-login fails once and the error surfaces.
    let latest = proxy
        .last_authorization
        .lock()
        .expect("lock")
        .clone()
        .context("token")?;
    sim.control
        .get(format!("{}/api/v0/auth/logout", sim.base_url()))
        .header("authorization", &latest)
        .send()
        .await?;
    sim.running
        .state
        .set_credentials(&sigsci_sim::CredentialsUpdate {
            token: None,
            password: Some("rotated-password".into()),
        })?;
    sim.reset_log().await?;
    let err = client.list_sites().await.expect_err("password rotated");
    ensure!(
        matches!(err, Error::Unauthorized { status: 401, .. }),
        "{err:?}"
    );
    ensure!(
        sim.calls("POST /auth").await? == 1,
        "one re-login attempt only"
    );
    sim.running.shutdown().await;
    Ok(())
}

//! Helpers shared by the integration tests: a frozen-clock simulator and a `oneshot` caller.

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use serde_json::Value;
use sigsci_sim::{ClockUpdate, SimConfig, SimState, app};
use tower::ServiceExt;

/// On a minute boundary, so `NOW - k * 60` is a valid feed bound.
pub const NOW: i64 = 1_700_003_640;

pub fn frozen_state(config: SimConfig) -> SimState {
    let state = SimState::new(config);
    state
        .update_clock(&ClockUpdate {
            frozen_at: Some(NOW),
            ..ClockUpdate::default()
        })
        .unwrap();
    state
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub bytes: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.bytes)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.bytes)))
    }

    pub fn message(&self) -> String {
        self.json()["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    pub fn content_type(&self) -> &str {
        self.headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }
}

pub struct Call {
    method: Method,
    uri: String,
    headers: Vec<(String, String)>,
    body: Option<(String, Vec<u8>)>,
}

pub fn call(method: Method, uri: &str) -> Call {
    Call {
        method,
        uri: uri.to_owned(),
        headers: Vec::new(),
        body: None,
    }
}

/// An authenticated call (token headers).
pub fn api(method: Method, uri: &str) -> Call {
    call(method, uri)
        .header("x-api-user", "sim@example.com")
        .header("x-api-token", "sim-token")
}

impl Call {
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn json(mut self, body: &Value) -> Self {
        self.body = Some((
            "application/json".to_owned(),
            serde_json::to_vec(body).unwrap(),
        ));
        self
    }

    pub fn form(mut self, body: &str) -> Self {
        self.body = Some((
            "application/x-www-form-urlencoded".to_owned(),
            body.as_bytes().to_vec(),
        ));
        self
    }

    pub async fn send(self, router: &Router) -> Reply {
        let mut builder = Request::builder().method(self.method).uri(&self.uri);
        for (name, value) in &self.headers {
            builder = builder.header(name, value);
        }
        let request = match self.body {
            Some((content_type, bytes)) => builder
                .header(header::CONTENT_TYPE, content_type)
                .body(Body::from(bytes)),
            None => builder.body(Body::empty()),
        }
        .unwrap();
        let response = router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap()
            .to_vec();
        Reply {
            status,
            headers,
            bytes,
        }
    }
}

pub fn router(state: &SimState) -> Router {
    app(state.clone())
}

//! Authentication: `x-api-user`/`x-api-token` headers, or `Authorization: Bearer` with a token from
//! `POST /auth` (form login).

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Value, json};

use crate::error::SimError;
use crate::extract::QueryPairs;
use crate::state::SimState;

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = header_str(headers, header::AUTHORIZATION.as_str())?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

impl SimState {
    /// Whether the headers carry valid credentials (header names are case-insensitive).
    pub(crate) fn is_authorized(&self, headers: &HeaderMap) -> bool {
        if let (Some(user), Some(token)) = (
            header_str(headers, "x-api-user"),
            header_str(headers, "x-api-token"),
        ) {
            return self.token_matches(user, token);
        }
        bearer(headers).is_some_and(|token| self.store().sessions.contains(token))
    }
}

/// Route layer on every authenticated route.
pub(crate) async fn require_auth(
    State(state): State<SimState>,
    request: Request,
    next: Next,
) -> Response {
    if state.is_authorized(request.headers()) {
        next.run(request).await
    } else {
        state.record_refused_credentials();
        SimError::Unauthorized.into_response()
    }
}

/// `POST /auth` with form fields `email` and `password`.
pub(crate) async fn login(
    State(state): State<SimState>,
    body: Bytes,
) -> Result<Json<Value>, SimError> {
    let form = QueryPairs::parse(&body);
    let (Some(email), Some(password)) = (form.get("email"), form.get("password")) else {
        return Err(SimError::bad_request(
            "email and password form fields are required",
        ));
    };
    if !state.password_matches(email, password) {
        state.record_refused_credentials();
        return Err(SimError::LoginFailed);
    }
    let mut store = state.store();
    let token = store.new_session_token();
    store.sessions.insert(token.clone());
    Ok(Json(json!({ "token": token })))
}

/// `GET /auth/logout`: ends the bearer session, if any.
pub(crate) async fn logout(State(state): State<SimState>, headers: HeaderMap) -> Json<Value> {
    if let Some(token) = bearer(&headers) {
        state.store().sessions.remove(token);
    }
    Json(json!({ "message": "Logged out" }))
}

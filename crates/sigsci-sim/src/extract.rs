//! Extractors whose rejections are JSON `{"message": ...}` like every other error.

use std::collections::HashMap;

use axum::extract::{FromRequest, FromRequestParts, Path, RawQuery, Request};
use axum::http::request::Parts;
use bytes::Bytes;
use serde::de::DeserializeOwned;

use crate::error::SimError;
use crate::state::SimState;

/// A JSON body, parsed whatever the `Content-Type` says.
#[derive(Debug)]
pub(crate) struct JsonBody<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = SimError;

    async fn from_request(request: Request, state: &S) -> Result<Self, SimError> {
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|e| SimError::bad_request(format!("cannot read request body: {e}")))?;
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|e| SimError::bad_request(format!("invalid JSON body: {e}")))
    }
}

/// Query-string pairs in order (repeated keys kept).
#[derive(Debug, Default)]
pub(crate) struct QueryPairs(pub(crate) Vec<(String, String)>);

impl QueryPairs {
    pub(crate) fn parse(raw: &[u8]) -> Self {
        Self(url::form_urlencoded::parse(raw).into_owned().collect())
    }

    /// The last value of `key` (later values override earlier ones).
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn all(&self, key: &str) -> impl Iterator<Item = &str> {
        self.0
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for QueryPairs {
    type Rejection = SimError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, SimError> {
        let RawQuery(raw) = RawQuery::from_request_parts(parts, state)
            .await
            .map_err(|e| SimError::bad_request(e.to_string()))?;
        Ok(Self::parse(raw.unwrap_or_default().as_bytes()))
    }
}

async fn path_params(
    parts: &mut Parts,
    state: &SimState,
) -> Result<HashMap<String, String>, SimError> {
    let Path(params) = Path::<HashMap<String, String>>::from_request_parts(parts, state)
        .await
        .map_err(|e| SimError::bad_request(e.body_text()))?;
    Ok(params)
}

fn check_corp(state: &SimState, params: &HashMap<String, String>) -> Result<String, SimError> {
    let corp = params.get("corp").map(String::as_str).unwrap_or_default();
    if corp == state.config().corp {
        Ok(corp.to_owned())
    } else {
        Err(SimError::not_found(format!("corp {corp} not found")))
    }
}

/// A path under `/corps/{corp}` naming the simulated corp; 404 otherwise.
#[derive(Debug)]
pub(crate) struct CorpPath {
    pub(crate) corp: String,
    params: HashMap<String, String>,
}

impl CorpPath {
    /// Another path parameter of the route (e.g. `id`).
    pub(crate) fn param(&self, name: &str) -> &str {
        self.params
            .get(name)
            .map(String::as_str)
            .unwrap_or_default()
    }
}

impl FromRequestParts<SimState> for CorpPath {
    type Rejection = SimError;

    async fn from_request_parts(parts: &mut Parts, state: &SimState) -> Result<Self, SimError> {
        let params = path_params(parts, state).await?;
        let corp = check_corp(state, &params)?;
        Ok(Self { corp, params })
    }
}

/// A path under `/corps/{corp}/sites/{site}` naming an existing site; 404 otherwise.
#[derive(Debug)]
pub(crate) struct SitePath {
    pub(crate) corp: String,
    pub(crate) site: String,
    params: HashMap<String, String>,
}

impl SitePath {
    /// Another path parameter of the route (e.g. `id`).
    pub(crate) fn param(&self, name: &str) -> &str {
        self.params
            .get(name)
            .map(String::as_str)
            .unwrap_or_default()
    }
}

impl FromRequestParts<SimState> for SitePath {
    type Rejection = SimError;

    async fn from_request_parts(parts: &mut Parts, state: &SimState) -> Result<Self, SimError> {
        let params = path_params(parts, state).await?;
        let corp = check_corp(state, &params)?;
        let site = params.get("site").map(String::as_str).unwrap_or_default();
        state.require_site(site)?;
        Ok(Self {
            corp,
            site: site.to_owned(),
            params,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_pairs_decode_and_keep_repeats() {
        let q = QueryPairs::parse(b"tag=SQLI&tag=XSS&next=a%2Bb&limit=5&limit=7");
        assert_eq!(q.all("tag").collect::<Vec<_>>(), ["SQLI", "XSS"]);
        assert_eq!(q.get("next"), Some("a+b"));
        assert_eq!(q.get("limit"), Some("7"));
        assert_eq!(q.get("missing"), None);
    }
}

//! The control API under `/__sim/` (JSON, no auth): ground truth, faults, fleets, counters, clock
//! and credentials.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::agents::FleetUpdate;
use crate::calllog::CallLog;
use crate::clock::{ClockStatus, ClockUpdate};
use crate::error::SimError;
use crate::extract::{JsonBody, QueryPairs};
use crate::faults::Faults;
use crate::state::{CredentialsUpdate, SimState};

fn required_epoch(query: &QueryPairs, name: &str) -> Result<i64, SimError> {
    let raw = query
        .get(name)
        .ok_or_else(|| SimError::bad_request(format!("{name} is required (epoch seconds)")))?;
    raw.parse()
        .map_err(|_| SimError::bad_request(format!("{name} must be epoch seconds, got {raw:?}")))
}

/// `GET /__sim/truth?corp=&site=&from=&until=[&tags=SQLI,XSS]`.
pub(crate) async fn truth(
    State(state): State<SimState>,
    query: QueryPairs,
) -> Result<Json<Value>, SimError> {
    if let Some(corp) = query.get("corp").filter(|c| !c.is_empty())
        && corp != state.config().corp
    {
        return Err(SimError::not_found(format!("corp {corp} not found")));
    }
    let site = query
        .get("site")
        .ok_or_else(|| SimError::bad_request("site is required"))?;
    state.require_site(site)?;
    let from = required_epoch(&query, "from")?;
    let until = required_epoch(&query, "until")?;
    let tags: Vec<&str> = query
        .get("tags")
        .unwrap_or_default()
        .split(',')
        .filter(|t| !t.is_empty())
        .collect();
    let ids = if tags.is_empty() {
        state.truth(site, from, until)
    } else {
        state.truth_tagged(site, from, until, &tags)
    };
    Ok(Json(json!({ "count": ids.len(), "ids": ids })))
}

/// `GET /__sim/faults`.
pub(crate) async fn get_faults(State(state): State<SimState>) -> Json<Faults> {
    Json(state.faults())
}

/// `PUT /__sim/faults`: replaces the whole set.
pub(crate) async fn put_faults(
    State(state): State<SimState>,
    JsonBody(faults): JsonBody<Faults>,
) -> Result<Json<Faults>, SimError> {
    state.set_faults(faults)?;
    Ok(Json(state.faults()))
}

/// `PUT /__sim/sites/{site}/agents`.
pub(crate) async fn put_agents(
    State(state): State<SimState>,
    Path(site): Path<String>,
    JsonBody(update): JsonBody<FleetUpdate>,
) -> Result<StatusCode, SimError> {
    state.set_fleet(&site, &update)?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /__sim/log`.
pub(crate) async fn get_log(State(state): State<SimState>) -> Json<CallLog> {
    Json(state.call_log())
}

/// `DELETE /__sim/log`.
pub(crate) async fn delete_log(State(state): State<SimState>) -> StatusCode {
    state.reset_call_log();
    StatusCode::NO_CONTENT
}

/// `GET /__sim/clock`.
pub(crate) async fn get_clock(State(state): State<SimState>) -> Json<ClockStatus> {
    Json(state.clock())
}

/// `PUT /__sim/clock`.
pub(crate) async fn put_clock(
    State(state): State<SimState>,
    JsonBody(update): JsonBody<ClockUpdate>,
) -> Result<Json<Value>, SimError> {
    let now = state.update_clock(&update)?;
    Ok(Json(json!({ "now": now })))
}

/// `PUT /__sim/credentials`.
pub(crate) async fn put_credentials(
    State(state): State<SimState>,
    JsonBody(update): JsonBody<CredentialsUpdate>,
) -> Result<StatusCode, SimError> {
    state.set_credentials(&update)?;
    Ok(StatusCode::NO_CONTENT)
}

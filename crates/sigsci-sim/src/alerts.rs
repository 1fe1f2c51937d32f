//! Site alerts: custom signal thresholds and the two agent alerts (`requests_total`,
//! `agent_scoreboards`), seeded disabled on every site.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::config::SimConfig;
use crate::error::SimError;
use crate::extract::{JsonBody, SitePath};
use crate::feed::vocab::SIGNALS;
use crate::state::SimState;
use crate::util::rfc3339;

/// An alert as the API returns it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Alert {
    pub(crate) id: String,
    pub(crate) site_id: String,
    pub(crate) tag_name: String,
    pub(crate) long_name: String,
    pub(crate) interval: i64,
    pub(crate) threshold: i64,
    pub(crate) enabled: bool,
    pub(crate) action: String,
    #[serde(rename = "type")]
    pub(crate) kind: String,
    pub(crate) block_duration_seconds: i64,
    pub(crate) skip_notifications: bool,
    pub(crate) field_name: String,
    pub(crate) operator: String,
    pub(crate) created_by: String,
    pub(crate) created: String,
}

pub(crate) const METRIC_TAGS: [&str; 2] = ["requests_total", "agent_scoreboards"];
const METRIC_OPERATORS: [&str; 4] = ["lessThan", "greaterThan", "equalTo", "notEqualTo"];

fn site_id(config: &SimConfig, site: &str) -> String {
    format!(
        "{:024x}",
        crate::rng::mix(config.seed ^ crate::rng::hash_str(site)) as u128
    )
}

/// The agent alerts every site starts with (disabled, as in the dashboard).
pub(crate) fn seeded_alerts(config: &SimConfig, site: &str, now: i64) -> Vec<Alert> {
    let seeded = [
        ("requests_total", "Low request rate", "lessThan", 10),
        ("agent_scoreboards", "No agents online", "equalTo", 0),
    ];
    seeded
        .iter()
        .enumerate()
        .map(|(i, (tag, long_name, operator, threshold))| Alert {
            id: format!(
                "{:016x}{:08x}",
                crate::rng::mix(config.seed ^ crate::rng::hash_str(site) ^ i as u64),
                i
            ),
            site_id: site_id(config, site),
            tag_name: (*tag).to_owned(),
            long_name: (*long_name).to_owned(),
            interval: 5,
            threshold: *threshold,
            enabled: false,
            action: "siteMetricInfo".to_owned(),
            kind: "siteMetric".to_owned(),
            block_duration_seconds: 0,
            skip_notifications: false,
            field_name: "siteMetric".to_owned(),
            operator: (*operator).to_owned(),
            created_by: config.email.clone(),
            created: rfc3339(now - 86_400 * 30),
        })
        .collect()
}

fn string_field(body: &Map<String, Value>, key: &str) -> Result<Option<String>, SimError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(SimError::bad_request(format!("{key} must be a string"))),
    }
}

fn int_field(body: &Map<String, Value>, key: &str) -> Result<Option<i64>, SimError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_i64()
            .map(Some)
            .ok_or_else(|| SimError::bad_request(format!("{key} must be an integer"))),
    }
}

fn bool_field(body: &Map<String, Value>, key: &str) -> Result<Option<bool>, SimError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(SimError::bad_request(format!("{key} must be a boolean"))),
    }
}

/// Copies the writable fields present in `body` onto `alert`. Read-only keys (`id`, `siteId`,
/// `type`, `created`, `createdBy`) and unknown keys are ignored: pysigsci PATCHes whole alerts.
fn apply_body(alert: &mut Alert, body: &Map<String, Value>) -> Result<(), SimError> {
    if let Some(v) = string_field(body, "tagName")? {
        alert.tag_name = v;
    }
    if let Some(v) = string_field(body, "longName")? {
        alert.long_name = v;
    }
    if let Some(v) = int_field(body, "interval")? {
        alert.interval = v;
    }
    if let Some(v) = int_field(body, "threshold")? {
        alert.threshold = v;
    }
    if let Some(v) = bool_field(body, "enabled")? {
        alert.enabled = v;
    }
    if let Some(v) = string_field(body, "action")? {
        alert.action = v;
    }
    if let Some(v) = int_field(body, "blockDurationSeconds")? {
        alert.block_duration_seconds = v;
    }
    if let Some(v) = bool_field(body, "skipNotifications")? {
        alert.skip_notifications = v;
    }
    if let Some(v) = string_field(body, "fieldName")? {
        alert.field_name = v;
    }
    if let Some(v) = string_field(body, "operator")? {
        alert.operator = v;
    }
    Ok(())
}

fn known_signal(tag: &str) -> bool {
    SIGNALS.iter().any(|s| s.name == tag) || (tag.starts_with("site.") && tag.len() > 5)
}

/// Validates the alert against the rules of its kind and sets its `type`.
fn validate(alert: &mut Alert) -> Result<(), SimError> {
    if alert.tag_name.is_empty() {
        return Err(SimError::bad_request("tagName is required"));
    }
    let long_len = alert.long_name.chars().count();
    if !alert.long_name.is_empty() && !(3..=25).contains(&long_len) {
        return Err(SimError::bad_request(
            "longName must be between 3 and 25 characters",
        ));
    }
    if METRIC_TAGS.contains(&alert.tag_name.as_str()) {
        if ![5, 10, 60].contains(&alert.interval) {
            return Err(SimError::bad_request(format!(
                "interval must be 5, 10 or 60 for {} alerts, got {}",
                alert.tag_name, alert.interval
            )));
        }
        if !(0..=3_600_000).contains(&alert.threshold) {
            return Err(SimError::bad_request(
                "threshold must be between 0 and 3600000",
            ));
        }
        if alert.action != "siteMetricInfo" {
            return Err(SimError::bad_request(format!(
                "action must be siteMetricInfo for {} alerts, got {:?}",
                alert.tag_name, alert.action
            )));
        }
        if alert.field_name != "siteMetric" {
            return Err(SimError::bad_request(
                "fieldName must be siteMetric for agent alerts",
            ));
        }
        if !METRIC_OPERATORS.contains(&alert.operator.as_str()) {
            return Err(SimError::bad_request(format!(
                "operator must be one of {}, got {:?}",
                METRIC_OPERATORS.join(", "),
                alert.operator
            )));
        }
        alert.kind = "siteMetric".to_owned();
    } else {
        if !known_signal(&alert.tag_name) {
            return Err(SimError::bad_request(format!(
                "tagName {} is not a known signal",
                alert.tag_name
            )));
        }
        if ![1, 10, 60].contains(&alert.interval) {
            return Err(SimError::bad_request(format!(
                "interval must be 1, 10 or 60, got {}",
                alert.interval
            )));
        }
        if !(1..=100_000).contains(&alert.threshold) {
            return Err(SimError::bad_request(
                "threshold must be between 1 and 100000",
            ));
        }
        if !["info", "flagged"].contains(&alert.action.as_str()) {
            return Err(SimError::bad_request(format!(
                "action must be info or flagged, got {:?}",
                alert.action
            )));
        }
        alert.kind = "siteAlert".to_owned();
    }
    if alert.block_duration_seconds < 0 {
        return Err(SimError::bad_request(
            "blockDurationSeconds must not be negative",
        ));
    }
    Ok(())
}

fn require_object(body: Value) -> Result<Map<String, Value>, SimError> {
    match body {
        Value::Object(map) => Ok(map),
        _ => Err(SimError::bad_request("alert body must be a JSON object")),
    }
}

fn alert_not_found(id: &str) -> SimError {
    SimError::not_found(format!("alert {id} not found"))
}

/// `GET .../alerts`.
pub(crate) async fn list(State(state): State<SimState>, path: SitePath) -> Json<Value> {
    let store = state.store();
    let alerts = store.alerts.get(&path.site).cloned().unwrap_or_default();
    Json(json!({ "data": alerts }))
}

/// `GET .../alerts/{id}`.
pub(crate) async fn get_one(
    State(state): State<SimState>,
    path: SitePath,
) -> Result<Json<Alert>, SimError> {
    let id = path.param("id");
    let store = state.store();
    store
        .alerts
        .get(&path.site)
        .and_then(|alerts| alerts.iter().find(|a| a.id == id))
        .cloned()
        .map(Json)
        .ok_or_else(|| alert_not_found(id))
}

/// `POST .../alerts`.
pub(crate) async fn create(
    State(state): State<SimState>,
    path: SitePath,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<Alert>, SimError> {
    let body = require_object(body)?;
    for required in ["tagName", "interval", "threshold"] {
        if body.get(required).is_none_or(Value::is_null) {
            return Err(SimError::bad_request(format!("{required} is required")));
        }
    }
    let metric = body
        .get("tagName")
        .and_then(Value::as_str)
        .is_some_and(|t| METRIC_TAGS.contains(&t));
    let now = state.now();
    let mut store = state.store();
    let mut alert = Alert {
        id: store.new_id(),
        site_id: site_id(state.config(), &path.site),
        tag_name: String::new(),
        long_name: String::new(),
        interval: 0,
        threshold: 0,
        enabled: true,
        action: if metric {
            "siteMetricInfo".to_owned()
        } else {
            String::new()
        },
        kind: String::new(),
        block_duration_seconds: 0,
        skip_notifications: false,
        field_name: if metric {
            "siteMetric".to_owned()
        } else {
            String::new()
        },
        operator: String::new(),
        created_by: state.config().email.clone(),
        created: rfc3339(now),
    };
    apply_body(&mut alert, &body)?;
    validate(&mut alert)?;
    store
        .alerts
        .entry(path.site.clone())
        .or_default()
        .push(alert.clone());
    Ok(Json(alert))
}

/// `PATCH .../alerts/{id}`: partial update; read-only fields in the body are ignored.
pub(crate) async fn update(
    State(state): State<SimState>,
    path: SitePath,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<Alert>, SimError> {
    let body = require_object(body)?;
    let id = path.param("id");
    let mut store = state.store();
    let alert = store
        .alerts
        .get_mut(&path.site)
        .and_then(|alerts| alerts.iter_mut().find(|a| a.id == id))
        .ok_or_else(|| alert_not_found(id))?;
    let mut updated = alert.clone();
    apply_body(&mut updated, &body)?;
    validate(&mut updated)?;
    *alert = updated.clone();
    Ok(Json(updated))
}

/// `DELETE .../alerts/{id}`.
pub(crate) async fn delete(
    State(state): State<SimState>,
    path: SitePath,
) -> Result<StatusCode, SimError> {
    let id = path.param("id");
    let mut store = state.store();
    let alerts = store.alerts.entry(path.site.clone()).or_default();
    let before = alerts.len();
    alerts.retain(|a| a.id != id);
    if alerts.len() == before {
        return Err(alert_not_found(id));
    }
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seeded() -> Vec<Alert> {
        seeded_alerts(&SimConfig::default(), "site-1", 1_700_000_000)
    }

    #[test]
    fn seeded_agent_alerts_are_valid_and_disabled() {
        for mut alert in seeded() {
            assert!(!alert.enabled);
            let before = alert.clone();
            validate(&mut alert).unwrap();
            assert_eq!(alert, before);
        }
    }

    #[test]
    fn read_only_fields_are_ignored_on_patch() {
        let mut alert = seeded().remove(0);
        let mut body = serde_json::to_value(&alert)
            .unwrap()
            .as_object()
            .unwrap()
            .clone();
        body.insert("id".into(), json!("other"));
        body.insert("type".into(), json!("template"));
        body.insert("created".into(), json!("1999-01-01T00:00:00Z"));
        body.insert("enabled".into(), json!(true));
        apply_body(&mut alert, &body).unwrap();
        validate(&mut alert).unwrap();
        assert!(alert.enabled);
        assert_eq!(alert.kind, "siteMetric");
        assert_ne!(alert.id, "other");
    }

    #[test]
    fn metric_rules() {
        let mut alert = seeded().remove(0);
        alert.interval = 1;
        assert!(
            validate(&mut alert)
                .unwrap_err()
                .to_string()
                .contains("interval must be 5, 10 or 60")
        );
        let mut alert = seeded().remove(0);
        alert.operator = "between".into();
        assert!(
            validate(&mut alert)
                .unwrap_err()
                .to_string()
                .contains("operator")
        );
        let mut alert = seeded().remove(1);
        alert.threshold = 3_600_001;
        assert!(validate(&mut alert).is_err());
    }

    #[test]
    fn custom_rules() {
        let mut alert = seeded().remove(0);
        alert.tag_name = "SQLI".into();
        alert.action = "info".into();
        alert.interval = 10;
        alert.threshold = 5;
        validate(&mut alert).unwrap();
        assert_eq!(alert.kind, "siteAlert");
        alert.threshold = 0;
        assert!(
            validate(&mut alert)
                .unwrap_err()
                .to_string()
                .contains("threshold")
        );
        alert.threshold = 5;
        alert.tag_name = "NOPE".into();
        assert!(
            validate(&mut alert)
                .unwrap_err()
                .to_string()
                .contains("not a known signal")
        );
        alert.tag_name = "site.login-failure".into();
        alert.long_name = "ab".into();
        assert!(
            validate(&mut alert)
                .unwrap_err()
                .to_string()
                .contains("longName")
        );
    }

    #[test]
    fn wrong_types_are_named() {
        let mut alert = seeded().remove(0);
        let body = json!({"interval": "5"});
        let err = apply_body(&mut alert, body.as_object().unwrap()).unwrap_err();
        assert_eq!(err.to_string(), "interval must be an integer");
    }
}

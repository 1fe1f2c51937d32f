//! Site and corp integrations (notification targets).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::SimError;
use crate::extract::{CorpPath, JsonBody, SitePath};
use crate::state::{SimState, Store};
use crate::util::rfc3339;

const SITE_TYPES: [&str; 11] = [
    "mailingList",
    "slack",
    "datadog",
    "generic",
    "pagerduty",
    "microsoftTeams",
    "microsoftTeamsWorkflow",
    "jira",
    "opsgenie",
    "victorops",
    "pivotaltracker",
];
const CORP_TYPES: [&str; 4] = [
    "mailingList",
    "slack",
    "microsoftTeams",
    "microsoftTeamsWorkflow",
];

/// An integration as the API returns it (`fields` is write-only).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Integration {
    pub(crate) id: String,
    pub(crate) name: String,
    #[serde(rename = "type")]
    pub(crate) kind: String,
    pub(crate) url: String,
    pub(crate) events: Vec<String>,
    pub(crate) active: bool,
    pub(crate) note: String,
    pub(crate) created_by: String,
    pub(crate) created: String,
    #[serde(skip)]
    pub(crate) fields: BTreeMap<String, String>,
}

/// POST body.
#[derive(Debug, Deserialize)]
pub(crate) struct CreateBody {
    #[serde(rename = "type")]
    kind: Option<String>,
    url: Option<String>,
    events: Option<Vec<String>>,
    fields: Option<BTreeMap<String, String>>,
    note: Option<String>,
}

/// PATCH body: `type` may only repeat the current type.
#[derive(Debug, Deserialize)]
pub(crate) struct UpdateBody {
    #[serde(rename = "type")]
    kind: Option<String>,
    url: Option<String>,
    events: Option<Vec<String>>,
    fields: Option<BTreeMap<String, String>>,
    note: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    Site,
    Corp,
}

fn display_name(kind: &str) -> &'static str {
    match kind {
        "mailingList" => "Email",
        "slack" => "Slack",
        "datadog" => "Datadog",
        "generic" => "Generic Webhook",
        "pagerduty" => "PagerDuty",
        "microsoftTeams" => "Microsoft Teams",
        "microsoftTeamsWorkflow" => "Microsoft Teams Workflow",
        "jira" => "Jira",
        "opsgenie" => "Opsgenie",
        "victorops" => "VictorOps",
        _ => "Pivotal Tracker",
    }
}

fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !s.chars().any(char::is_whitespace)
}

/// Applies the per-type rules to a complete integration.
fn validate(integration: &Integration) -> Result<(), SimError> {
    if integration.events.iter().any(String::is_empty) {
        return Err(SimError::bad_request("events must be non-empty strings"));
    }
    match integration.kind.as_str() {
        "datadog" => {
            if !integration.url.is_empty() {
                return Err(SimError::bad_request(
                    "datadog integrations take url \"\" (use fields.site and fields.apiKey)",
                ));
            }
            for key in ["site", "apiKey"] {
                if integration.fields.get(key).is_none_or(String::is_empty) {
                    return Err(SimError::bad_request(format!(
                        "datadog integrations need fields.{key}"
                    )));
                }
            }
        }
        "mailingList" => {
            if !is_email(&integration.url) {
                return Err(SimError::bad_request(format!(
                    "mailingList url must be an e-mail address, got {:?}",
                    integration.url
                )));
            }
        }
        kind => {
            if integration.url.is_empty() {
                return Err(SimError::bad_request(format!(
                    "url is required for {kind} integrations"
                )));
            }
            let parsed = url::Url::parse(&integration.url)
                .map_err(|e| SimError::bad_request(format!("url is not a valid URL: {e}")))?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(SimError::bad_request("url must be an http or https URL"));
            }
        }
    }
    Ok(())
}

fn new_integration(
    state: &SimState,
    store: &mut Store,
    scope: Scope,
    body: CreateBody,
) -> Result<Integration, SimError> {
    let allowed: &[&str] = match scope {
        Scope::Site => &SITE_TYPES,
        Scope::Corp => &CORP_TYPES,
    };
    let kind = body
        .kind
        .ok_or_else(|| SimError::bad_request("type is required"))?;
    if !allowed.contains(&kind.as_str()) {
        return Err(SimError::bad_request(format!(
            "invalid integration type {kind:?}; expected one of {}",
            allowed.join(", ")
        )));
    }
    let integration = Integration {
        id: store.new_id(),
        name: display_name(&kind).to_owned(),
        url: body.url.unwrap_or_default(),
        events: body.events.unwrap_or_default(),
        active: true,
        note: body.note.unwrap_or_default(),
        created_by: state.config().email.clone(),
        created: rfc3339(state.now()),
        fields: body.fields.unwrap_or_default(),
        kind,
    };
    validate(&integration)?;
    Ok(integration)
}

fn apply_update(integration: &mut Integration, body: UpdateBody) -> Result<(), SimError> {
    if let Some(kind) = body.kind
        && kind != integration.kind
    {
        return Err(SimError::bad_request(format!(
            "type cannot be changed (is {}, got {kind}); delete and re-create the integration",
            integration.kind
        )));
    }
    let mut updated = integration.clone();
    if let Some(url) = body.url {
        updated.url = url;
    }
    if let Some(events) = body.events {
        updated.events = events;
    }
    if let Some(fields) = body.fields {
        updated.fields = fields;
    }
    if let Some(note) = body.note {
        updated.note = note;
    }
    validate(&updated)?;
    *integration = updated;
    Ok(())
}

fn not_found(id: &str) -> SimError {
    SimError::not_found(format!("integration {id} not found"))
}

fn site_list<'a>(store: &'a mut Store, site: &str) -> &'a mut Vec<Integration> {
    store.site_integrations.entry(site.to_owned()).or_default()
}

/// `GET /corps/{corp}/sites/{site}/integrations`.
pub(crate) async fn list_site(State(state): State<SimState>, path: SitePath) -> Json<Value> {
    let mut store = state.store();
    Json(json!({ "data": site_list(&mut store, &path.site) }))
}

/// `POST /corps/{corp}/sites/{site}/integrations`: answers with the whole list, new one last.
pub(crate) async fn create_site(
    State(state): State<SimState>,
    path: SitePath,
    JsonBody(body): JsonBody<CreateBody>,
) -> Result<Json<Value>, SimError> {
    let mut store = state.store();
    let integration = new_integration(&state, &mut store, Scope::Site, body)?;
    let list = site_list(&mut store, &path.site);
    list.push(integration);
    Ok(Json(json!({ "data": list })))
}

/// `GET .../integrations/{id}`.
pub(crate) async fn get_site(
    State(state): State<SimState>,
    path: SitePath,
) -> Result<Json<Integration>, SimError> {
    let id = path.param("id");
    let mut store = state.store();
    site_list(&mut store, &path.site)
        .iter()
        .find(|i| i.id == id)
        .cloned()
        .map(Json)
        .ok_or_else(|| not_found(id))
}

/// `PATCH .../integrations/{id}`.
pub(crate) async fn update_site(
    State(state): State<SimState>,
    path: SitePath,
    JsonBody(body): JsonBody<UpdateBody>,
) -> Result<Json<Integration>, SimError> {
    let id = path.param("id");
    let mut store = state.store();
    let integration = site_list(&mut store, &path.site)
        .iter_mut()
        .find(|i| i.id == id)
        .ok_or_else(|| not_found(id))?;
    apply_update(integration, body)?;
    Ok(Json(integration.clone()))
}

/// `DELETE .../integrations/{id}`.
pub(crate) async fn delete_site(
    State(state): State<SimState>,
    path: SitePath,
) -> Result<StatusCode, SimError> {
    let id = path.param("id");
    let mut store = state.store();
    let list = site_list(&mut store, &path.site);
    let before = list.len();
    list.retain(|i| i.id != id);
    if list.len() == before {
        return Err(not_found(id));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /corps/{corp}/integrations`.
pub(crate) async fn list_corp(State(state): State<SimState>, _path: CorpPath) -> Json<Value> {
    Json(json!({ "data": state.store().corp_integrations }))
}

/// `POST /corps/{corp}/integrations`: answers with the new integration.
pub(crate) async fn create_corp(
    State(state): State<SimState>,
    _path: CorpPath,
    JsonBody(body): JsonBody<CreateBody>,
) -> Result<Json<Integration>, SimError> {
    let mut store = state.store();
    let integration = new_integration(&state, &mut store, Scope::Corp, body)?;
    store.corp_integrations.push(integration.clone());
    Ok(Json(integration))
}

/// `GET /corps/{corp}/integrations/{id}`.
pub(crate) async fn get_corp(
    State(state): State<SimState>,
    path: CorpPath,
) -> Result<Json<Integration>, SimError> {
    let id = path.param("id");
    state
        .store()
        .corp_integrations
        .iter()
        .find(|i| i.id == id)
        .cloned()
        .map(Json)
        .ok_or_else(|| not_found(id))
}

/// `PATCH /corps/{corp}/integrations/{id}`.
pub(crate) async fn update_corp(
    State(state): State<SimState>,
    path: CorpPath,
    JsonBody(body): JsonBody<UpdateBody>,
) -> Result<Json<Integration>, SimError> {
    let id = path.param("id");
    let mut store = state.store();
    let integration = store
        .corp_integrations
        .iter_mut()
        .find(|i| i.id == id)
        .ok_or_else(|| not_found(id))?;
    apply_update(integration, body)?;
    Ok(Json(integration.clone()))
}

/// `DELETE /corps/{corp}/integrations/{id}`.
pub(crate) async fn delete_corp(
    State(state): State<SimState>,
    path: CorpPath,
) -> Result<StatusCode, SimError> {
    let id = path.param("id");
    let mut store = state.store();
    let before = store.corp_integrations.len();
    store.corp_integrations.retain(|i| i.id != id);
    if store.corp_integrations.len() == before {
        return Err(not_found(id));
    }
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn integration(kind: &str, url: &str) -> Integration {
        Integration {
            id: "x".into(),
            name: display_name(kind).into(),
            kind: kind.into(),
            url: url.into(),
            events: vec!["flag".into()],
            active: true,
            note: String::new(),
            created_by: "sim@example.com".into(),
            created: rfc3339(0),
            fields: BTreeMap::new(),
        }
    }

    #[test]
    fn email_rule() {
        assert!(validate(&integration("mailingList", "ops@example.com")).is_ok());
        for bad in [
            "",
            "ops",
            "ops@example",
            "a b@example.com",
            "https://example.com",
        ] {
            let err = validate(&integration("mailingList", bad)).unwrap_err();
            assert!(err.to_string().contains("e-mail"), "{bad}");
        }
    }

    #[test]
    fn datadog_rule() {
        let mut dd = integration("datadog", "");
        assert!(
            validate(&dd)
                .unwrap_err()
                .to_string()
                .contains("fields.site")
        );
        dd.fields.insert("site".into(), "us1".into());
        dd.fields.insert("apiKey".into(), "k".into());
        assert!(validate(&dd).is_ok());
        dd.url = "https://x".into();
        assert!(validate(&dd).is_err());
    }

    #[test]
    fn url_rule() {
        assert!(validate(&integration("slack", "https://hooks.example.com/x")).is_ok());
        assert!(
            validate(&integration("generic", ""))
                .unwrap_err()
                .to_string()
                .contains("url is required")
        );
        assert!(validate(&integration("generic", "ftp://x")).is_err());
    }

    #[test]
    fn type_is_immutable() {
        let mut slack = integration("slack", "https://hooks.example.com/x");
        let body = UpdateBody {
            kind: Some("generic".into()),
            url: None,
            events: None,
            fields: None,
            note: None,
        };
        assert!(
            apply_update(&mut slack, body)
                .unwrap_err()
                .to_string()
                .contains("type cannot be changed")
        );
        let body = UpdateBody {
            kind: Some("slack".into()),
            url: None,
            events: Some(vec![]),
            fields: None,
            note: None,
        };
        apply_update(&mut slack, body).unwrap();
        assert!(slack.events.is_empty());
    }
}

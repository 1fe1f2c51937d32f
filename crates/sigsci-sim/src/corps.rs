//! Corps and sites (read-only, seeded from the configuration).

use axum::Json;
use axum::extract::State;
use serde_json::{Map, Value, json};

use crate::error::SimError;
use crate::extract::{CorpPath, SitePath};
use crate::state::{SimState, SiteInfo};

/// Creation time of the seeded corp and sites.
pub(crate) const SEEDED_CREATED: &str = "2023-03-14T09:26:53Z";

fn corp_json(state: &SimState) -> Value {
    let corp = &state.config().corp;
    let mut display = corp.clone();
    if let Some(first) = display.get_mut(0..1) {
        first.make_ascii_uppercase();
    }
    json!({
        "name": corp,
        "displayName": display,
        "smallIconURI": "",
        "created": SEEDED_CREATED,
        "siteLimit": state.config().sites.max(100),
        "sites": { "uri": format!("/api/v0/corps/{corp}/sites") },
        "authType": "builtin",
        "sessionMaxAgeDashboard": 2_592_000,
        "mfaEnforced": false,
    })
}

/// Link names and their path under the site.
const SITE_LINKS: [(&str, &str); 16] = [
    ("whitelist", "whitelist"),
    ("blacklist", "blacklist"),
    ("events", "events"),
    ("requests", "requests"),
    ("redactions", "redactions"),
    ("suspiciousIPs", "suspiciousIPs"),
    ("monitors", "monitors"),
    ("pathwhitelist", "pathwhitelist"),
    ("paramwhitelist", "paramwhitelist"),
    ("integrations", "integrations"),
    ("headerLinks", "headerLinks"),
    ("agents", "agents"),
    ("alerts", "alerts"),
    ("analyticsEvents", "analytics/events"),
    ("topAttacks", "top/attacks"),
    ("members", "members"),
];

fn site_json(corp: &str, site: &SiteInfo) -> Value {
    let mut object = Map::new();
    object.insert("name".into(), json!(site.name));
    object.insert("displayName".into(), json!(site.display_name));
    object.insert("agentLevel".into(), json!("log"));
    object.insert("agentAnonMode".into(), json!(""));
    object.insert("blockHTTPCode".into(), json!(406));
    object.insert("blockDurationSeconds".into(), json!(86400));
    object.insert("blockRedirectURL".into(), json!(""));
    object.insert("immediateBlock".into(), json!(false));
    object.insert("clientIPRules".into(), json!([]));
    object.insert(
        "attackThresholds".into(),
        json!([
            {"interval": 1, "threshold": 25},
            {"interval": 10, "threshold": 50},
            {"interval": 60, "threshold": 200},
        ]),
    );
    object.insert("created".into(), json!(SEEDED_CREATED));
    for (name, path) in SITE_LINKS {
        let uri = format!("/api/v0/corps/{corp}/sites/{}/{path}", site.name);
        object.insert(name.into(), json!({ "uri": uri }));
    }
    Value::Object(object)
}

/// `GET /corps`.
pub(crate) async fn list_corps(State(state): State<SimState>) -> Json<Value> {
    Json(json!({ "data": [corp_json(&state)] }))
}

/// `GET /corps/{corp}`.
pub(crate) async fn get_corp(State(state): State<SimState>, _corp: CorpPath) -> Json<Value> {
    Json(corp_json(&state))
}

/// `GET /corps/{corp}/sites`: every site in one unpaged list.
pub(crate) async fn list_sites(State(state): State<SimState>, path: CorpPath) -> Json<Value> {
    let sites: Vec<Value> = state.sites().map(|s| site_json(&path.corp, s)).collect();
    Json(json!({ "data": sites }))
}

/// `GET /corps/{corp}/sites/{site}`.
pub(crate) async fn get_site(
    State(state): State<SimState>,
    path: SitePath,
) -> Result<Json<Value>, SimError> {
    let site = state.require_site(&path.site)?;
    Ok(Json(site_json(&path.corp, site)))
}

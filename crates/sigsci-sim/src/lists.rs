//! Site and corp lists (IP, country, string, wildcard, signal) that request rules refer to.
//! Ids are `site.NAME` / `corp.NAME` with the name lower-cased and dashed, as the API makes them;
//! PATCH adds and removes entries (`{"entries": {"additions": [], "deletions": []}}`) so
//! concurrent writers never drop each other's entries, PUT replaces the whole list.

use std::net::IpAddr;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::SimError;
use crate::extract::{CorpPath, JsonBody, SitePath};
use crate::state::{SimState, Store};
use crate::util::rfc3339;

const TYPES: [&str; 5] = ["ip", "country", "string", "wildcard", "signal"];
/// The dashboard's limits on a list's name, description, entries and entry values.
const MAX_NAME: usize = 32;
const MAX_DESCRIPTION: usize = 140;
const MAX_ENTRIES: usize = 10_000;
const MAX_ENTRY: usize = 256;

/// A list as the API returns it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RuleList {
    pub(crate) id: String,
    pub(crate) name: String,
    #[serde(rename = "type")]
    pub(crate) kind: String,
    pub(crate) description: String,
    pub(crate) entries: Vec<String>,
    pub(crate) created_by: String,
    pub(crate) created: String,
    pub(crate) updated: String,
}

/// POST body.
#[derive(Debug, Deserialize)]
pub(crate) struct CreateBody {
    name: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    description: Option<String>,
    entries: Option<Vec<String>>,
}

/// PATCH body: entries are a difference, never the whole list.
#[derive(Debug, Deserialize)]
pub(crate) struct UpdateBody {
    description: Option<String>,
    entries: Option<EntryChanges>,
}

#[derive(Debug, Default, Deserialize)]
struct EntryChanges {
    #[serde(default)]
    additions: Vec<String>,
    #[serde(default)]
    deletions: Vec<String>,
}

/// PUT body: the whole list of entries.
#[derive(Debug, Deserialize)]
pub(crate) struct ReplaceBody {
    description: Option<String>,
    entries: Option<Vec<String>>,
}

#[derive(Debug, Clone, Copy)]
enum Scope {
    Site,
    Corp,
}

/// `site.Name Of List` -> `site.name-of-list`.
fn list_id(scope: Scope, name: &str) -> String {
    let prefix = match scope {
        Scope::Site => "site",
        Scope::Corp => "corp",
    };
    let slug: String = name
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    format!("{prefix}.{slug}")
}

/// An IPv4/IPv6 address or a CIDR range whose prefix fits the address family.
fn is_ip_or_cidr(value: &str) -> bool {
    let (address, prefix) = match value.split_once('/') {
        Some((address, prefix)) => (address, Some(prefix)),
        None => (value, None),
    };
    let Ok(address) = address.parse::<IpAddr>() else {
        return false;
    };
    let Some(prefix) = prefix else {
        return true;
    };
    let max = if address.is_ipv4() { 32 } else { 128 };
    !prefix.starts_with('+') && prefix.parse::<u8>().is_ok_and(|bits| bits <= max)
}

/// An ISO 3166-1 alpha-2 code's shape (two capital letters).
fn is_country_code(value: &str) -> bool {
    value.len() == 2 && value.bytes().all(|b| b.is_ascii_uppercase())
}

fn validate_entry(kind: &str, entry: &str) -> Result<(), SimError> {
    if entry.trim().is_empty() {
        return Err(SimError::bad_request("list entries must not be empty"));
    }
    if entry.len() > MAX_ENTRY {
        return Err(SimError::bad_request(format!(
            "list entries must be at most {MAX_ENTRY} characters"
        )));
    }
    let valid = match kind {
        "ip" => is_ip_or_cidr(entry),
        "country" => is_country_code(entry),
        _ => true,
    };
    if valid {
        Ok(())
    } else {
        let expected = match kind {
            "ip" => "an IP address or CIDR range",
            _ => "an ISO 3166-1 alpha-2 country code",
        };
        Err(SimError::bad_request(format!(
            "invalid {kind} list entry {entry:?}: expected {expected}"
        )))
    }
}

fn validate_description(description: &str) -> Result<(), SimError> {
    if description.chars().count() > MAX_DESCRIPTION {
        return Err(SimError::bad_request(format!(
            "description must be at most {MAX_DESCRIPTION} characters"
        )));
    }
    Ok(())
}

/// Validated entries, duplicates dropped (first occurrence kept).
fn checked_entries(kind: &str, entries: Vec<String>) -> Result<Vec<String>, SimError> {
    let mut kept: Vec<String> = Vec::with_capacity(entries.len());
    for entry in entries {
        validate_entry(kind, &entry)?;
        if !kept.contains(&entry) {
            kept.push(entry);
        }
    }
    check_count(kept.len())?;
    Ok(kept)
}

fn check_count(count: usize) -> Result<(), SimError> {
    if count > MAX_ENTRIES {
        return Err(SimError::bad_request(format!(
            "a list holds at most {MAX_ENTRIES} entries"
        )));
    }
    Ok(())
}

fn new_list(
    state: &SimState,
    existing: &[RuleList],
    scope: Scope,
    body: CreateBody,
) -> Result<RuleList, SimError> {
    let name = body
        .name
        .filter(|name| !name.trim().is_empty())
        .ok_or_else(|| SimError::bad_request("name is required"))?;
    if name.chars().count() > MAX_NAME {
        return Err(SimError::bad_request(format!(
            "name must be at most {MAX_NAME} characters"
        )));
    }
    let kind = body
        .kind
        .ok_or_else(|| SimError::bad_request("type is required"))?;
    if !TYPES.contains(&kind.as_str()) {
        return Err(SimError::bad_request(format!(
            "invalid list type {kind:?}; expected one of {}",
            TYPES.join(", ")
        )));
    }
    let description = body.description.unwrap_or_default();
    validate_description(&description)?;
    let id = list_id(scope, &name);
    if existing.iter().any(|list| list.id == id) {
        return Err(SimError::bad_request(format!(
            "a list named {name:?} already exists"
        )));
    }
    let entries = checked_entries(&kind, body.entries.unwrap_or_default())?;
    let now = rfc3339(state.now());
    Ok(RuleList {
        id,
        name,
        kind,
        description,
        entries,
        created_by: state.config().email.clone(),
        created: now.clone(),
        updated: now,
    })
}

fn apply_update(list: &mut RuleList, body: UpdateBody, now: String) -> Result<(), SimError> {
    if let Some(description) = &body.description {
        validate_description(description)?;
    }
    let changes = body.entries.unwrap_or_default();
    for entry in changes.additions.iter().chain(&changes.deletions) {
        validate_entry(&list.kind, entry)?;
    }
    if let Some(both) = changes
        .additions
        .iter()
        .find(|entry| changes.deletions.contains(entry))
    {
        return Err(SimError::bad_request(format!(
            "entry {both:?} is both added and deleted"
        )));
    }
    // Adding a present entry or deleting an absent one is a no-op: retries stay harmless.
    let mut entries: Vec<String> = list
        .entries
        .iter()
        .filter(|entry| !changes.deletions.contains(entry))
        .cloned()
        .collect();
    for entry in changes.additions {
        if !entries.contains(&entry) {
            entries.push(entry);
        }
    }
    check_count(entries.len())?;
    list.entries = entries;
    if let Some(description) = body.description {
        list.description = description;
    }
    list.updated = now;
    Ok(())
}

fn apply_replace(list: &mut RuleList, body: ReplaceBody, now: String) -> Result<(), SimError> {
    if let Some(description) = &body.description {
        validate_description(description)?;
    }
    let entries = checked_entries(&list.kind, body.entries.unwrap_or_default())?;
    list.entries = entries;
    if let Some(description) = body.description {
        list.description = description;
    }
    list.updated = now;
    Ok(())
}

fn not_found(id: &str) -> SimError {
    SimError::not_found(format!("list {id} not found"))
}

fn site_lists<'a>(store: &'a mut Store, site: &str) -> &'a mut Vec<RuleList> {
    store.site_lists.entry(site.to_owned()).or_default()
}

fn find<'a>(lists: &'a mut [RuleList], id: &str) -> Result<&'a mut RuleList, SimError> {
    lists
        .iter_mut()
        .find(|list| list.id == id)
        .ok_or_else(|| not_found(id))
}

fn remove(lists: &mut Vec<RuleList>, id: &str) -> Result<StatusCode, SimError> {
    let before = lists.len();
    lists.retain(|list| list.id != id);
    if lists.len() == before {
        return Err(not_found(id));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /corps/{corp}/sites/{site}/lists`.
pub(crate) async fn list_site(State(state): State<SimState>, path: SitePath) -> Json<Value> {
    let mut store = state.store();
    Json(json!({ "data": site_lists(&mut store, &path.site) }))
}

/// `POST /corps/{corp}/sites/{site}/lists`: answers with the new list.
pub(crate) async fn create_site(
    State(state): State<SimState>,
    path: SitePath,
    JsonBody(body): JsonBody<CreateBody>,
) -> Result<Json<RuleList>, SimError> {
    let mut store = state.store();
    let lists = site_lists(&mut store, &path.site);
    let list = new_list(&state, lists, Scope::Site, body)?;
    lists.push(list.clone());
    Ok(Json(list))
}

/// `GET .../lists/{id}`.
pub(crate) async fn get_site(
    State(state): State<SimState>,
    path: SitePath,
) -> Result<Json<RuleList>, SimError> {
    let mut store = state.store();
    find(site_lists(&mut store, &path.site), path.param("id")).map(|list| Json(list.clone()))
}

/// `PATCH .../lists/{id}`: entry additions and deletions.
pub(crate) async fn update_site(
    State(state): State<SimState>,
    path: SitePath,
    JsonBody(body): JsonBody<UpdateBody>,
) -> Result<Json<RuleList>, SimError> {
    let now = rfc3339(state.now());
    let mut store = state.store();
    let list = find(site_lists(&mut store, &path.site), path.param("id"))?;
    apply_update(list, body, now)?;
    Ok(Json(list.clone()))
}

/// `PUT .../lists/{id}`: the whole entry list.
pub(crate) async fn replace_site(
    State(state): State<SimState>,
    path: SitePath,
    JsonBody(body): JsonBody<ReplaceBody>,
) -> Result<Json<RuleList>, SimError> {
    let now = rfc3339(state.now());
    let mut store = state.store();
    let list = find(site_lists(&mut store, &path.site), path.param("id"))?;
    apply_replace(list, body, now)?;
    Ok(Json(list.clone()))
}

/// `DELETE .../lists/{id}`.
pub(crate) async fn delete_site(
    State(state): State<SimState>,
    path: SitePath,
) -> Result<StatusCode, SimError> {
    let mut store = state.store();
    remove(site_lists(&mut store, &path.site), path.param("id"))
}

/// `GET /corps/{corp}/lists`.
pub(crate) async fn list_corp(State(state): State<SimState>, _path: CorpPath) -> Json<Value> {
    Json(json!({ "data": state.store().corp_lists }))
}

/// `POST /corps/{corp}/lists`: answers with the new list.
pub(crate) async fn create_corp(
    State(state): State<SimState>,
    _path: CorpPath,
    JsonBody(body): JsonBody<CreateBody>,
) -> Result<Json<RuleList>, SimError> {
    let mut store = state.store();
    let list = new_list(&state, &store.corp_lists, Scope::Corp, body)?;
    store.corp_lists.push(list.clone());
    Ok(Json(list))
}

/// `GET /corps/{corp}/lists/{id}`.
pub(crate) async fn get_corp(
    State(state): State<SimState>,
    path: CorpPath,
) -> Result<Json<RuleList>, SimError> {
    let mut store = state.store();
    find(&mut store.corp_lists, path.param("id")).map(|list| Json(list.clone()))
}

/// `PATCH /corps/{corp}/lists/{id}`.
pub(crate) async fn update_corp(
    State(state): State<SimState>,
    path: CorpPath,
    JsonBody(body): JsonBody<UpdateBody>,
) -> Result<Json<RuleList>, SimError> {
    let now = rfc3339(state.now());
    let mut store = state.store();
    let list = find(&mut store.corp_lists, path.param("id"))?;
    apply_update(list, body, now)?;
    Ok(Json(list.clone()))
}

/// `PUT /corps/{corp}/lists/{id}`.
pub(crate) async fn replace_corp(
    State(state): State<SimState>,
    path: CorpPath,
    JsonBody(body): JsonBody<ReplaceBody>,
) -> Result<Json<RuleList>, SimError> {
    let now = rfc3339(state.now());
    let mut store = state.store();
    let list = find(&mut store.corp_lists, path.param("id"))?;
    apply_replace(list, body, now)?;
    Ok(Json(list.clone()))
}

/// `DELETE /corps/{corp}/lists/{id}`.
pub(crate) async fn delete_corp(
    State(state): State<SimState>,
    path: CorpPath,
) -> Result<StatusCode, SimError> {
    remove(&mut state.store().corp_lists, path.param("id"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(kind: &str, entries: &[&str]) -> RuleList {
        RuleList {
            id: "site.x".into(),
            name: "x".into(),
            kind: kind.into(),
            description: String::new(),
            entries: entries.iter().map(|e| e.to_string()).collect(),
            created_by: "sim@example.com".into(),
            created: rfc3339(0),
            updated: rfc3339(0),
        }
    }

    fn changes(additions: &[&str], deletions: &[&str]) -> UpdateBody {
        UpdateBody {
            description: None,
            entries: Some(EntryChanges {
                additions: additions.iter().map(|e| e.to_string()).collect(),
                deletions: deletions.iter().map(|e| e.to_string()).collect(),
            }),
        }
    }

    #[test]
    fn ids_are_scope_and_dashed_lower_case_name() {
        assert_eq!(list_id(Scope::Site, "Bad Bots 2"), "site.bad-bots-2");
        assert_eq!(list_id(Scope::Corp, "tor_exit"), "corp.tor-exit");
    }

    #[test]
    fn ip_entries_are_addresses_or_ranges() {
        for good in ["198.51.100.7", "198.51.100.0/24", "2001:db8::/32", "::1"] {
            assert!(is_ip_or_cidr(good), "{good}");
        }
        for bad in [
            "198.51.100.0/33",
            "2001:db8::/129",
            "198.51.100",
            "host",
            "1.2.3.4/",
            "1.2.3.4/+8",
        ] {
            assert!(!is_ip_or_cidr(bad), "{bad}");
        }
        assert!(validate_entry("country", "DE").is_ok());
        let err = validate_entry("country", "de").unwrap_err().to_string();
        assert!(err.contains("ISO 3166-1"), "{err}");
    }

    #[test]
    fn patch_adds_and_removes_only_the_difference() {
        let mut ip = list("ip", &["10.0.0.1", "10.0.0.2"]);
        apply_update(
            &mut ip,
            changes(&["10.0.0.3", "10.0.0.1"], &["10.0.0.2", "10.9.9.9"]),
            rfc3339(5),
        )
        .unwrap();
        assert_eq!(ip.entries, ["10.0.0.1", "10.0.0.3"]);
        assert_eq!(ip.updated, rfc3339(5));
        let err = apply_update(&mut ip, changes(&["10.0.0.4"], &["10.0.0.4"]), rfc3339(6))
            .unwrap_err()
            .to_string();
        assert!(err.contains("both added and deleted"), "{err}");
        let err = apply_update(&mut ip, changes(&["nope"], &[]), rfc3339(6))
            .unwrap_err()
            .to_string();
        assert!(err.contains("invalid ip list entry"), "{err}");
        assert_eq!(
            ip.entries,
            ["10.0.0.1", "10.0.0.3"],
            "a refused PATCH changes nothing"
        );
    }
}

//! Site and corp lists: create, entry additions/deletions, replace, delete, validation errors.

use crate::common;

use axum::http::{Method, StatusCode};
use common::{api, frozen_state, router};
use serde_json::json;
use sigsci_sim::SimConfig;

const SITE_LISTS: &str = "/api/v0/corps/testcorp/sites/site-1/lists";
const CORP_LISTS: &str = "/api/v0/corps/testcorp/lists";

#[tokio::test]
async fn site_list_lifecycle() {
    let app = router(&frozen_state(SimConfig::default()));
    let created = api(Method::POST, SITE_LISTS)
        .json(
            &json!({"name": "Blocked Ranges", "type": "ip", "description": "incident 42",
                      "entries": ["198.51.100.0/24", "203.0.113.7", "203.0.113.7"]}),
        )
        .send(&app)
        .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.message());
    let list = created.json();
    assert_eq!(list["id"], "site.blocked-ranges");
    assert_eq!(list["entries"], json!(["198.51.100.0/24", "203.0.113.7"]));
    assert_eq!(list["createdBy"], "sim@example.com");

    let one = format!("{SITE_LISTS}/site.blocked-ranges");
    let patched = api(Method::PATCH, &one)
        .json(&json!({"entries": {"additions": ["192.0.2.1"], "deletions": ["203.0.113.7"]}}))
        .send(&app)
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.message());
    assert_eq!(
        patched.json()["entries"],
        json!(["198.51.100.0/24", "192.0.2.1"])
    );
    assert_eq!(patched.json()["description"], "incident 42");

    let replaced = api(Method::PUT, &one)
        .json(&json!({"entries": ["10.0.0.0/8"]}))
        .send(&app)
        .await;
    assert_eq!(replaced.json()["entries"], json!(["10.0.0.0/8"]));

    let listed = api(Method::GET, SITE_LISTS).send(&app).await.json();
    assert_eq!(listed["data"].as_array().map(Vec::len), Some(1));
    let other_site = api(Method::GET, "/api/v0/corps/testcorp/sites/site-2/lists")
        .send(&app)
        .await
        .json();
    assert_eq!(other_site["data"], json!([]));

    assert_eq!(
        api(Method::DELETE, &one).send(&app).await.status,
        StatusCode::NO_CONTENT
    );
    let gone = api(Method::GET, &one).send(&app).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert_eq!(gone.message(), "list site.blocked-ranges not found");
}

#[tokio::test]
async fn corp_lists_are_separate_and_validated() {
    let app = router(&frozen_state(SimConfig::default()));
    let created = api(Method::POST, CORP_LISTS)
        .json(&json!({"name": "embargo", "type": "country", "entries": ["KP", "IR"]}))
        .send(&app)
        .await;
    assert_eq!(created.json()["id"], "corp.embargo");
    let cases = [
        (json!({"type": "ip"}), "name is required"),
        (
            json!({"name": "x", "type": "cidr"}),
            "invalid list type \"cidr\"",
        ),
        (
            json!({"name": "embargo", "type": "country"}),
            "already exists",
        ),
        (
            json!({"name": "c", "type": "country", "entries": ["Germany"]}),
            "invalid country list entry \"Germany\"",
        ),
        (
            json!({"name": "i", "type": "ip", "entries": ["10.0.0.0/40"]}),
            "invalid ip list entry",
        ),
        (
            json!({"name": "s", "type": "string", "entries": [""]}),
            "must not be empty",
        ),
        (
            json!({"name": "a-name-that-is-longer-than-32-chars", "type": "string"}),
            "at most 32",
        ),
    ];
    for (body, message) in cases {
        let reply = api(Method::POST, CORP_LISTS).json(&body).send(&app).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body}");
        assert!(
            reply.message().contains(message),
            "{body}: {}",
            reply.message()
        );
    }
    let both = api(Method::PATCH, &format!("{CORP_LISTS}/corp.embargo"))
        .json(&json!({"entries": {"additions": ["CU"], "deletions": ["CU"]}}))
        .send(&app)
        .await;
    assert_eq!(both.status, StatusCode::BAD_REQUEST);
    let site_view = api(Method::GET, SITE_LISTS).send(&app).await.json();
    assert_eq!(
        site_view["data"],
        json!([]),
        "corp lists are not site lists"
    );
}

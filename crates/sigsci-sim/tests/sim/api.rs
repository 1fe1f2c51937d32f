//! Auth, corps/sites, agents, alerts, integrations, timeseries and the control API, via `oneshot`.

use crate::common;

use axum::http::{Method, StatusCode};
use common::{NOW, api, call, frozen_state, router};
use serde_json::{Value, json};
use sigsci_sim::{CredentialsUpdate, FleetUpdate, SimConfig};

const SITE: &str = "/api/v0/corps/testcorp/sites/site-1";

#[tokio::test]
async fn token_headers_in_any_case() {
    let app = router(&frozen_state(SimConfig::default()));
    for (user, token) in [
        ("x-api-user", "x-api-token"),
        ("X-API-User", "X-API-Token"),
        ("X-Api-User", "X-Api-Token"),
    ] {
        let reply = call(Method::GET, "/api/v0/corps")
            .header(user, "sim@example.com")
            .header(token, "sim-token")
            .send(&app)
            .await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.json()["data"][0]["name"], "testcorp");
    }
}

#[tokio::test]
async fn bad_or_missing_credentials_get_json_401() {
    let app = router(&frozen_state(SimConfig::default()));
    let missing = call(Method::GET, "/api/v0/corps").send(&app).await;
    assert_eq!(missing.status, StatusCode::UNAUTHORIZED);
    assert_eq!(missing.content_type(), "application/json");
    assert_eq!(missing.message(), "Unauthorized");
    let wrong = call(Method::GET, "/api/v0/corps")
        .header("x-api-user", "sim@example.com")
        .header("x-api-token", "nope")
        .send(&app)
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    let bogus_bearer = call(Method::GET, "/api/v0/corps")
        .header("authorization", "Bearer made-up")
        .send(&app)
        .await;
    assert_eq!(bogus_bearer.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn password_login_bearer_and_logout() {
    let app = router(&frozen_state(SimConfig::default()));
    let failed = call(Method::POST, "/api/v0/auth")
        .form("email=sim%40example.com&password=wrong")
        .send(&app)
        .await;
    assert_eq!(failed.status, StatusCode::UNAUTHORIZED);
    assert_eq!(failed.message(), "Login failed");
    let missing = call(Method::POST, "/api/v0/auth")
        .form("email=sim%40example.com")
        .send(&app)
        .await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST);

    let login = call(Method::POST, "/api/v0/auth")
        .form("email=sim%40example.com&password=sim-password")
        .send(&app)
        .await;
    assert_eq!(login.status, StatusCode::OK);
    let token = login.json()["token"].as_str().unwrap().to_owned();
    assert_eq!(token.len(), 36);
    assert_eq!(token.matches('-').count(), 4);

    let bearer = format!("Bearer {token}");
    let ok = call(Method::GET, "/api/v0/corps/testcorp")
        .header("Authorization", &bearer)
        .send(&app)
        .await;
    assert_eq!(ok.status, StatusCode::OK);
    let logout = call(Method::GET, "/api/v0/auth/logout")
        .header("Authorization", &bearer)
        .send(&app)
        .await;
    assert_eq!(logout.status, StatusCode::OK);
    let after = call(Method::GET, "/api/v0/corps/testcorp")
        .header("Authorization", &bearer)
        .send(&app)
        .await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn credentials_rotation() {
    let state = frozen_state(SimConfig::default());
    let app = router(&state);
    let rotate = call(Method::PUT, "/__sim/credentials")
        .json(&json!({"token": "new-token"}))
        .send(&app)
        .await;
    assert_eq!(rotate.status, StatusCode::NO_CONTENT);
    assert_eq!(
        api(Method::GET, "/api/v0/corps").send(&app).await.status,
        StatusCode::UNAUTHORIZED
    );
    let new = call(Method::GET, "/api/v0/corps")
        .header("x-api-user", "sim@example.com")
        .header("x-api-token", "new-token")
        .send(&app)
        .await;
    assert_eq!(new.status, StatusCode::OK);
    state
        .set_credentials(&CredentialsUpdate {
            token: Some("sim-token".into()),
            password: None,
        })
        .unwrap();
    assert_eq!(
        api(Method::GET, "/api/v0/corps").send(&app).await.status,
        StatusCode::OK
    );
    let empty = call(Method::PUT, "/__sim/credentials")
        .json(&json!({}))
        .send(&app)
        .await;
    assert_eq!(empty.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn corps_and_sites() {
    let app = router(&frozen_state(SimConfig::default()));
    let corp = api(Method::GET, "/api/v0/corps/testcorp")
        .send(&app)
        .await
        .json();
    assert_eq!(corp["sites"]["uri"], "/api/v0/corps/testcorp/sites");
    let sites = api(Method::GET, "/api/v0/corps/testcorp/sites")
        .send(&app)
        .await
        .json();
    let names: Vec<&str> = sites["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["site-1", "site-2", "site-3"]);
    let site = api(Method::GET, SITE).send(&app).await.json();
    assert_eq!(site["displayName"], "Site 1");
    assert_eq!(
        site["agents"]["uri"],
        "/api/v0/corps/testcorp/sites/site-1/agents"
    );

    for path in [
        "/api/v0/corps/other",
        "/api/v0/corps/other/sites",
        "/api/v0/corps/testcorp/sites/site-9",
        "/api/v0/corps/testcorp/sites/site-9/alerts",
        "/api/v0/no/such/path",
    ] {
        let reply = api(Method::GET, path).send(&app).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(reply.content_type(), "application/json", "{path}");
        assert!(!reply.message().is_empty());
    }
}

#[tokio::test]
async fn wrong_method_is_json_405() {
    let app = router(&frozen_state(SimConfig::default()));
    for (method, path) in [
        (Method::PUT, format!("{SITE}/alerts")),
        (Method::DELETE, "/api/v0/corps".to_owned()),
        (Method::POST, "/__sim/log".to_owned()),
    ] {
        let reply = api(method, &path).send(&app).await;
        assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED, "{path}");
        assert_eq!(reply.content_type(), "application/json");
        assert_eq!(reply.message(), "Method not allowed");
    }
}

#[tokio::test]
async fn seeded_agent_alerts_can_be_patched_whole() {
    let app = router(&frozen_state(SimConfig::default()));
    let alerts = api(Method::GET, &format!("{SITE}/alerts"))
        .send(&app)
        .await
        .json();
    let alerts = alerts["data"].as_array().unwrap().clone();
    assert_eq!(alerts.len(), 2);
    let total = alerts
        .iter()
        .find(|a| a["tagName"] == "requests_total")
        .unwrap();
    assert_eq!(
        (
            total["operator"].as_str(),
            total["threshold"].as_i64(),
            total["enabled"].as_bool()
        ),
        (Some("lessThan"), Some(10), Some(false))
    );
    assert_eq!(
        (
            total["type"].as_str(),
            total["action"].as_str(),
            total["fieldName"].as_str()
        ),
        (
            Some("siteMetric"),
            Some("siteMetricInfo"),
            Some("siteMetric")
        )
    );
    let boards = alerts
        .iter()
        .find(|a| a["tagName"] == "agent_scoreboards")
        .unwrap();
    assert_eq!(
        (boards["operator"].as_str(), boards["threshold"].as_i64()),
        (Some("equalTo"), Some(0))
    );

    // pysigsci --enable agent-alerts sends the listed object back, read-only fields included.
    for alert in &alerts {
        let mut body = alert.clone();
        body["enabled"] = json!(true);
        let id = alert["id"].as_str().unwrap();
        let reply = api(Method::PATCH, &format!("{SITE}/alerts/{id}"))
            .json(&body)
            .send(&app)
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.message());
        let patched = reply.json();
        assert_eq!(patched["enabled"], true);
        assert_eq!(patched["id"], alert["id"]);
        assert_eq!(patched["created"], alert["created"]);
    }
    let again = api(Method::GET, &format!("{SITE}/alerts"))
        .send(&app)
        .await
        .json();
    assert!(
        again["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["enabled"] == true)
    );
    // Other sites are untouched.
    let other = api(Method::GET, "/api/v0/corps/testcorp/sites/site-2/alerts")
        .send(&app)
        .await
        .json();
    assert!(
        other["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["enabled"] == false)
    );
}

#[tokio::test]
async fn custom_alert_crud_and_validation() {
    let app = router(&frozen_state(SimConfig::default()));
    let url = format!("{SITE}/alerts");
    let cases = [
        (
            json!({"interval": 10, "threshold": 5, "action": "info"}),
            "tagName is required",
        ),
        (
            json!({"tagName": "SQLI", "interval": 7, "threshold": 5, "action": "info"}),
            "interval must be 1, 10 or 60",
        ),
        (
            json!({"tagName": "SQLI", "interval": 10, "threshold": 0, "action": "info"}),
            "threshold must be between 1 and 100000",
        ),
        (
            json!({"tagName": "SQLI", "interval": 10, "threshold": 5, "action": "block"}),
            "action must be info or flagged",
        ),
        (
            json!({"tagName": "SQLI", "longName": "no", "interval": 10, "threshold": 5, "action": "info"}),
            "longName",
        ),
        (
            json!({"tagName": "requests_total", "interval": 1, "threshold": 5, "operator": "lessThan"}),
            "interval must be 5, 10 or 60",
        ),
        (
            json!({"tagName": "requests_total", "interval": 5, "threshold": 5}),
            "operator must be one of",
        ),
        (
            json!({"tagName": "requests_total", "interval": 5, "threshold": 5, "operator": "lessThan", "action": "info"}),
            "action must be siteMetricInfo",
        ),
        (json!([1, 2]), "must be a JSON object"),
    ];
    for (body, message) in cases {
        let reply = api(Method::POST, &url).json(&body).send(&app).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body}");
        assert!(
            reply.message().contains(message),
            "{body}: {}",
            reply.message()
        );
    }
    let broken = api(Method::POST, &url)
        .header("content-type", "application/json")
        .form("{not json")
        .send(&app)
        .await;
    assert_eq!(broken.status, StatusCode::BAD_REQUEST);
    assert!(broken.message().contains("invalid JSON"));

    let created = api(Method::POST, &url)
        .json(&json!({"tagName": "SQLI", "longName": "SQLi burst", "interval": 10, "threshold": 25, "action": "flagged", "blockDurationSeconds": 3600}))
        .send(&app)
        .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.message());
    let created = created.json();
    assert_eq!(created["type"], "siteAlert");
    assert_eq!(created["createdBy"], "sim@example.com");
    let id = created["id"].as_str().unwrap();
    let one = format!("{url}/{id}");
    let patched = api(Method::PATCH, &one)
        .json(&json!({"threshold": 50}))
        .send(&app)
        .await
        .json();
    assert_eq!(
        (patched["threshold"].as_i64(), patched["action"].as_str()),
        (Some(50), Some("flagged"))
    );
    let bad_patch = api(Method::PATCH, &one)
        .json(&json!({"threshold": 500_000}))
        .send(&app)
        .await;
    assert_eq!(bad_patch.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        api(Method::GET, &one).send(&app).await.json()["threshold"],
        50
    );
    let deleted = api(Method::DELETE, &one).send(&app).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert!(deleted.bytes.is_empty());
    let gone = api(Method::GET, &one).send(&app).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert!(gone.message().contains("not found"));
    assert_eq!(
        api(Method::DELETE, &one).send(&app).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn site_integrations() {
    let app = router(&frozen_state(SimConfig::default()));
    let url = format!("{SITE}/integrations");
    let first = api(Method::POST, &url)
        .json(&json!({"type": "slack", "url": "https://hooks.example.com/a", "events": ["agentAlert", "flag"]}))
        .send(&app)
        .await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.message());
    assert_eq!(first.json()["data"].as_array().unwrap().len(), 1);
    let second = api(Method::POST, &url)
        .json(&json!({"type": "mailingList", "url": "ops@example.com", "events": ["agentAlert"]}))
        .send(&app)
        .await
        .json();
    let list = second["data"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    let newest = &list[1];
    assert_eq!(
        (newest["type"].as_str(), newest["url"].as_str()),
        (Some("mailingList"), Some("ops@example.com"))
    );
    assert!(newest["id"].as_str().is_some_and(|id| id.len() == 24));

    let datadog = api(Method::POST, &url)
        .json(&json!({"type": "datadog", "url": "", "events": [], "fields": {"site": "us1", "apiKey": "k"}}))
        .send(&app)
        .await;
    assert_eq!(datadog.status, StatusCode::OK, "{}", datadog.message());

    let cases = [
        (
            json!({"type": "webhook", "url": "https://x.example.com", "events": []}),
            "invalid integration type",
        ),
        (json!({"url": "https://x.example.com"}), "type is required"),
        (
            json!({"type": "mailingList", "url": "not-an-email", "events": []}),
            "e-mail",
        ),
        (json!({"type": "generic", "events": []}), "url is required"),
        (
            json!({"type": "datadog", "url": "", "events": []}),
            "fields.site",
        ),
    ];
    for (body, message) in cases {
        let reply = api(Method::POST, &url).json(&body).send(&app).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body}");
        assert!(
            reply.message().contains(message),
            "{body}: {}",
            reply.message()
        );
    }

    let id = newest["id"].as_str().unwrap();
    let one = format!("{url}/{id}");
    let retype = api(Method::PATCH, &one)
        .json(&json!({"type": "slack"}))
        .send(&app)
        .await;
    assert_eq!(retype.status, StatusCode::BAD_REQUEST);
    assert!(retype.message().contains("type cannot be changed"));
    let patched = api(Method::PATCH, &one)
        .json(&json!({"url": "sec@example.com", "events": ["flag"]}))
        .send(&app)
        .await;
    assert_eq!(patched.status, StatusCode::OK);
    let got = api(Method::GET, &one).send(&app).await.json();
    assert_eq!(
        (got["url"].as_str(), got["events"].clone()),
        (Some("sec@example.com"), json!(["flag"]))
    );
    assert_eq!(
        api(Method::DELETE, &one).send(&app).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        api(Method::GET, &one).send(&app).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        api(Method::GET, &url).send(&app).await.json()["data"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[tokio::test]
async fn corp_integrations() {
    let app = router(&frozen_state(SimConfig::default()));
    let url = "/api/v0/corps/testcorp/integrations";
    let created = api(Method::POST, url)
        .json(&json!({"type": "microsoftTeams", "url": "https://teams.example.com/x", "events": ["newSite"]}))
        .send(&app)
        .await;
    assert_eq!(created.status, StatusCode::OK);
    let created: Value = created.json();
    assert_eq!(created["type"], "microsoftTeams");
    let id = created["id"].as_str().unwrap();
    let site_only = api(Method::POST, url)
        .json(&json!({"type": "generic", "url": "https://x.example.com", "events": []}))
        .send(&app)
        .await;
    assert_eq!(site_only.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        api(Method::GET, url).send(&app).await.json()["data"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let patched = api(Method::PATCH, &format!("{url}/{id}"))
        .json(&json!({"events": ["corpUpdated"]}))
        .send(&app)
        .await;
    assert_eq!(patched.json()["events"], json!(["corpUpdated"]));
    assert_eq!(
        api(Method::DELETE, &format!("{url}/{id}"))
            .send(&app)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
}

#[tokio::test]
async fn agents_and_fleet_control() {
    let state = frozen_state(SimConfig::default());
    let app = router(&state);
    let agents = api(Method::GET, &format!("{SITE}/agents"))
        .send(&app)
        .await
        .json();
    let agents = agents["data"].as_array().unwrap().clone();
    assert_eq!(agents.len(), 3);
    let first = &agents[0];
    assert_eq!(first["agent.name"], "site-1-agent-0");
    assert_eq!(first["agent.status"], "online");
    assert_eq!(first["agent.active"], true);
    assert_eq!(first["agent.version"], "4.57.0");
    assert_eq!(first["agent.versions_behind"], 0);
    assert_eq!(first["agent.timestamp"], NOW - 15);
    assert_eq!(first["agent.last_seen"], "2023-11-14T23:13:45Z");
    let total: i64 = agents
        .iter()
        .map(|a| a["agent.current_requests"].as_i64().unwrap())
        .sum();
    assert_eq!(total, 1500);

    let one = api(Method::GET, &format!("{SITE}/agents/site-1-agent-2"))
        .send(&app)
        .await;
    assert_eq!(one.json()["agent.name"], "site-1-agent-2");
    let missing = api(Method::GET, &format!("{SITE}/agents/nope"))
        .send(&app)
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.content_type(), "application/json");
    let logs = api(Method::GET, &format!("{SITE}/agents/site-1-agent-0/logs"))
        .send(&app)
        .await
        .json();
    assert_eq!(
        (logs["corp"].as_str(), logs["site"].as_str()),
        (Some("testcorp"), Some("site-1"))
    );
    assert!(!logs["logs"].as_array().unwrap().is_empty());

    let put = call(Method::PUT, "/__sim/sites/site-1/agents")
        .json(&json!({"online": 0}))
        .send(&app)
        .await;
    assert_eq!(put.status, StatusCode::NO_CONTENT);
    let agents = api(Method::GET, &format!("{SITE}/agents"))
        .send(&app)
        .await
        .json();
    assert!(
        agents["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["agent.status"] == "offline" && a["agent.current_requests"] == 0)
    );

    let explicit = json!({"agents": [{"name": "edge-a", "status": "online", "version": "4.40.0", "versions_behind": 9, "last_seen_ago_secs": 5, "rps": 3.0}]});
    call(Method::PUT, "/__sim/sites/site-1/agents")
        .json(&explicit)
        .send(&app)
        .await;
    let agents = api(Method::GET, &format!("{SITE}/agents"))
        .send(&app)
        .await
        .json();
    let only = &agents["data"][0];
    assert_eq!(
        (
            only["agent.name"].as_str(),
            only["agent.current_requests"].as_i64()
        ),
        (Some("edge-a"), Some(90))
    );
    assert_eq!(only["agent.versions_behind"], 9);

    let bad = call(Method::PUT, "/__sim/sites/site-1/agents")
        .json(&json!({"count": 1, "online": 2}))
        .send(&app)
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let typo = call(Method::PUT, "/__sim/sites/site-1/agents")
        .json(&json!({"onlin": 2}))
        .send(&app)
        .await;
    assert_eq!(typo.status, StatusCode::BAD_REQUEST);
    let unknown = call(Method::PUT, "/__sim/sites/site-9/agents")
        .json(&json!({"online": 1}))
        .send(&app)
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    state
        .set_fleet(
            "site-1",
            &FleetUpdate {
                count: Some(2),
                online: Some(2),
                ..FleetUpdate::default()
            },
        )
        .unwrap();
    let agents = api(Method::GET, &format!("{SITE}/agents"))
        .send(&app)
        .await
        .json();
    assert_eq!(agents["data"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn timeseries_counts_match_the_feed_truth() {
    let state = frozen_state(SimConfig::default());
    let app = router(&state);
    let (from, until) = (NOW - 3600, NOW - 1800);
    let reply = api(Method::GET, &format!("{SITE}/timeseries/requests?tag=requests_total&tag=SQLI&from={from}&until={until}&rollup=600"))
        .send(&app)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.message());
    let series = reply.json();
    let total = &series["data"][0];
    assert_eq!(total["totalPoints"], 3);
    assert_eq!(
        total["summaryCount"].as_u64().unwrap(),
        state.truth("site-1", from, until).len() as u64
    );
    let sqli = &series["data"][1];
    assert_eq!(sqli["type"], "SQLI");
    assert_eq!(
        sqli["summaryCount"].as_u64().unwrap(),
        state.truth_tagged("site-1", from, until, &["SQLI"]).len() as u64
    );
    let no_tag = api(Method::GET, &format!("{SITE}/timeseries/requests"))
        .send(&app)
        .await;
    assert_eq!(no_tag.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn call_log_counts_templates() {
    let state = frozen_state(SimConfig::default());
    let app = router(&state);
    for _ in 0..3 {
        api(Method::GET, &format!("{SITE}/alerts")).send(&app).await;
    }
    api(Method::GET, "/api/v0/corps/testcorp/sites/site-2/alerts")
        .send(&app)
        .await;
    let log = call(Method::GET, "/__sim/log").send(&app).await.json();
    assert_eq!(log["calls"]["GET /corps/{corp}/sites/{site}/alerts"], 4);
    assert_eq!(log["feed"]["max_concurrent_corp"], 0);
    assert_eq!(
        call(Method::DELETE, "/__sim/log").send(&app).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(state.call_log().calls.len(), 0);
}

#[tokio::test]
async fn clock_control() {
    let state = frozen_state(SimConfig::default());
    let app = router(&state);
    let status = call(Method::GET, "/__sim/clock").send(&app).await.json();
    assert_eq!(
        status,
        json!({"now": NOW, "offset_secs": 0, "frozen": true})
    );
    let advanced = call(Method::PUT, "/__sim/clock")
        .json(&json!({"advance_secs": 90}))
        .send(&app)
        .await
        .json();
    assert_eq!(advanced["now"], NOW + 90);
    assert_eq!(state.now(), NOW + 90);
    let offset = call(Method::PUT, "/__sim/clock")
        .json(&json!({"offset_secs": -3600}))
        .send(&app)
        .await
        .json();
    let wall = sigsci_sim::system_wall_clock();
    assert!((offset["now"].as_i64().unwrap() - (wall - 3600)).abs() <= 2);
    let bad = call(Method::PUT, "/__sim/clock")
        .json(&json!({"rewind": 1}))
        .send(&app)
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}

//! Typed API records. Unknown fields are ignored and fields the API may omit default, so a
//! new or missing attribute never breaks decoding.

mod agent;
mod alert;
mod corp;
mod integration;
mod site;

pub use agent::Agent;
pub use alert::{Alert, AlertBody};
pub use corp::Corp;
pub use integration::{Integration, IntegrationBody, IntegrationUpdate};
pub use site::Site;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer};

/// `{"data": [...]}` collection envelope.
#[derive(Deserialize)]
pub(crate) struct DataList<T> {
    #[serde(default = "Vec::new")]
    pub(crate) data: Vec<T>,
}

/// An RFC3339 timestamp that the API may send as `""` or `null` (e.g. `agent.last_rule_update`).
pub(crate) fn optional_time<'de, D>(deserializer: D) -> Result<Option<DateTime<Utc>>, D::Error>
where
    D: Deserializer<'de>,
{
    let text = Option::<String>::deserialize(deserializer)?;
    match text.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(t) => DateTime::parse_from_rfc3339(t)
            .map(|d| Some(d.with_timezone(&Utc)))
            .map_err(|e| serde::de::Error::custom(format!("timestamp {t:?}: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_decodes_dotted_keys_and_empty_rule_update() {
        let text = r#"{
            "agent.name": "web-1", "agent.status": "online", "agent.active": true,
            "agent.enabled": true, "agent.last_seen": "2024-05-01T10:00:00Z",
            "agent.last_rule_update": "", "agent.version": "4.57.0", "agent.versions_behind": 2,
            "agent.current_requests": 1500, "agent.connections_open": 7, "agent.uptime": 3600,
            "host.remote_addr": "10.0.0.1", "module.type": "nginx", "runtime.gc_pause_millis": 0.3,
            "agent.some_future_key": {"nested": [1, 2]}
        }"#;
        let agent: Agent = serde_json::from_str(text).expect("agent");
        assert_eq!(agent.name, "web-1");
        assert_eq!(agent.status, "online");
        assert!(agent.active);
        assert_eq!(agent.version, "4.57.0");
        assert_eq!(agent.versions_behind, 2);
        assert_eq!(agent.current_requests, 1500);
        assert_eq!(agent.host_remote_addr, "10.0.0.1");
        assert_eq!(agent.last_rule_update, None);
        assert_eq!(
            agent.last_seen.map(|t| t.to_rfc3339()),
            Some("2024-05-01T10:00:00+00:00".to_string())
        );
    }

    #[test]
    fn agent_with_missing_fields_defaults() {
        let agent: Agent =
            serde_json::from_str(r#"{"agent.name": "a", "agent.last_rule_update": null}"#)
                .expect("agent");
        assert_eq!(agent.name, "a");
        assert_eq!(agent.status, "");
        assert!(!agent.active);
        assert_eq!(agent.last_seen, None);
        assert_eq!(agent.last_rule_update, None);
    }

    #[test]
    fn bad_timestamp_names_the_value() {
        let err = serde_json::from_str::<Agent>(r#"{"agent.last_seen": "yesterday"}"#)
            .expect_err("invalid timestamp");
        assert!(err.to_string().contains("yesterday"), "{err}");
    }

    #[test]
    fn alert_accepts_both_site_id_casings() {
        for key in ["siteId", "siteID"] {
            let text = format!(
                r#"{{"id":"a1","{key}":"s1","tagName":"requests_total","longName":"Low traffic",
                    "interval":10,"threshold":8400,"enabled":false,"action":"siteMetricInfo",
                    "type":"siteMetric","fieldName":"siteMetric","operator":"lessThan",
                    "created":"2024-05-01T10:00:00Z","unknownThing":[1]}}"#
            );
            let alert: Alert = serde_json::from_str(&text).expect("alert");
            assert_eq!(alert.site_id, "s1", "{key}");
            assert_eq!(alert.tag_name, "requests_total");
            assert_eq!(alert.alert_type, "siteMetric");
            assert_eq!(alert.operator, "lessThan");
            assert_eq!(alert.threshold, 8400);
        }
    }

    #[test]
    fn alert_body_sends_only_what_is_set() {
        let body = AlertBody {
            enabled: Some(true),
            threshold: Some(5),
            ..AlertBody::default()
        };
        assert_eq!(
            serde_json::to_string(&body).expect("json"),
            r#"{"threshold":5,"enabled":true}"#
        );
    }

    #[test]
    fn site_corp_and_integration_decode_with_unknown_fields() {
        let site: Site = serde_json::from_str(
            r#"{"name":"www","displayName":"WWW","agentLevel":"block","blockHTTPCode":406,
                "created":"2024-05-01T10:00:00Z","alerts":{"uri":"/api/v0/corps/c/sites/www/alerts"}}"#,
        )
        .expect("site");
        assert_eq!((site.name.as_str(), site.block_http_code), ("www", 406));
        let corp: Corp =
            serde_json::from_str(r#"{"name":"c","siteLimit":24,"sites":{"uri":"/x"}}"#)
                .expect("corp");
        assert_eq!(corp.site_limit, 24);
        let integration: Integration = serde_json::from_str(
            r#"{"id":"i1","name":"Slack","type":"slack","url":"https://hooks","events":["flag"],
                "active":true,"extra":1}"#,
        )
        .expect("integration");
        assert_eq!(integration.integration_type, "slack");
        assert_eq!(integration.events, ["flag"]);
        let list: DataList<Integration> = serde_json::from_str(r#"{"data":[]}"#).expect("list");
        assert!(list.data.is_empty());
    }

    #[test]
    fn integration_bodies_serialize_api_names() {
        let body = IntegrationBody {
            integration_type: "slack".into(),
            url: "https://hooks".into(),
            events: vec!["flag".into()],
            fields: None,
        };
        assert_eq!(
            serde_json::to_string(&body).expect("json"),
            r#"{"type":"slack","url":"https://hooks","events":["flag"]}"#
        );
        let update = IntegrationUpdate {
            events: Some(vec![]),
            ..IntegrationUpdate::default()
        };
        assert_eq!(
            serde_json::to_string(&update).expect("json"),
            r#"{"events":[]}"#
        );
    }
}

//! PagerDuty Events API v2: one trigger or resolve event per condition, `dedup_key` stable per
//! corp/site/check so PagerDuty groups repeats into one incident and the resolve closes it.

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use super::{Notification, Status, truncate};
use crate::checks::Severity;

pub const DEFAULT_BASE_URL: &str = "https://events.pagerduty.com";
pub const ENQUEUE_PATH: &str = "/v2/enqueue";

fn severity(severity: Severity) -> &'static str {
    // PagerDuty knows exactly these four.
    match severity {
        Severity::Critical => "critical",
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Info => "info",
    }
}

pub fn event(routing_key: &SecretString, item: &Notification) -> Value {
    let routing_key = routing_key.expose_secret();
    let dedup_key = item.dedup_key();
    if item.status == Status::Resolved {
        return json!({"routing_key": routing_key, "event_action": "resolve", "dedup_key": dedup_key});
    }
    let mut event = json!({
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": dedup_key,
        "client": "sigsci-kit agent health",
        "payload": {
            "summary": truncate(&item.headline(), 1024),
            "source": item.site_label(),
            "severity": severity(item.severity),
            "timestamp": item.since.to_rfc3339(),
            "component": item.check.site,
            "group": item.corp,
            "class": item.check.check.as_str(),
            "custom_details": {
                "check": item.check.to_string(),
                "summary": item.summary,
                "since": item.since.to_rfc3339(),
                "agents": item.agents,
                "episode": item.episode,
            },
        },
    });
    let mut links = Vec::new();
    if let Some(url) = &item.ack_url {
        links.push(
            json!({"href": url, "text": "Acknowledge in sigsci-kit (silences every channel)"}),
        );
    }
    if let Some(url) = &item.ack_channel_url {
        links.push(json!({"href": url, "text": "Acknowledge for PagerDuty only (the other channels keep notifying)"}));
    }
    for link in &item.links {
        links.push(json!({"href": link.url, "text": link.label}));
    }
    if !links.is_empty() {
        event["links"] = Value::Array(links);
    }
    event
}

/// Acknowledges the incident `dedup_key` opened (Events API v2 has no way back: an incident stays
/// acknowledged in PagerDuty until its service's acknowledgement timeout or a person changes it).
pub fn acknowledge_event(routing_key: &SecretString, dedup_key: &str) -> Value {
    json!({"routing_key": routing_key.expose_secret(), "event_action": "acknowledge", "dedup_key": dedup_key})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channels::fixtures::{firing, resolved};

    #[test]
    fn trigger_and_resolve_share_the_dedup_key() {
        let key = SecretString::from("R0UT1NG");
        let trigger = event(&key, &firing("www"));
        let resolve = event(&key, &resolved("www"));
        assert_eq!(trigger["event_action"], "trigger");
        assert_eq!(resolve["event_action"], "resolve");
        assert_eq!(
            trigger["dedup_key"],
            "sigsci-kit/testcorp/www/no_agents_online"
        );
        assert_eq!(trigger["dedup_key"], resolve["dedup_key"]);
        assert_eq!(trigger["routing_key"], "R0UT1NG");
        assert_eq!(trigger["payload"]["severity"], "critical");
        assert_eq!(trigger["payload"]["source"], "testcorp/www");
        assert_eq!(
            trigger["links"][0]["href"],
            firing("www").ack_url.unwrap().as_str()
        );
        assert_eq!(
            trigger["links"][1]["href"],
            firing("www").ack_channel_url.unwrap().as_str()
        );
        assert_eq!(trigger["links"][2]["text"], "Runbook");
        assert!(resolve.get("payload").is_none());
    }
}

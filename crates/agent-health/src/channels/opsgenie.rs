//! Opsgenie Alert API: create with an `alias` stable per corp/site/check (Opsgenie de-duplicates open
//! alerts by alias), close by alias when the condition clears.

use serde_json::{Value, json};

use super::{Notification, Status, truncate};
use crate::checks::Severity;
use crate::state::IncidentAction;

pub const DEFAULT_BASE_URL: &str = "https://api.opsgenie.com";

fn priority(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical => "P1",
        Severity::Error => "P2",
        Severity::Warning => "P3",
        Severity::Info => "P5",
    }
}

/// Path segments after the base URL, an optional query pair, and the JSON body of one API call.
pub type Request = (Vec<String>, Option<(&'static str, &'static str)>, Value);

/// The call that creates (or closes) the alert for one notification.
pub fn request(item: &Notification) -> Request {
    let alias = item.dedup_key();
    if item.status == Status::Resolved {
        let body = json!({"source": "sigsci-kit", "note": item.details()});
        let segments = vec!["v2".into(), "alerts".into(), alias, "close".into()];
        return (segments, Some(("identifierType", "alias")), body);
    }
    let mut description = format!("{}\n\n{}", item.headline(), item.summary);
    if let Some(url) = &item.ack_url {
        description.push_str(&format!("\n\nAcknowledge (silences every channel): {url}"));
    }
    if let Some(url) = &item.ack_channel_url {
        description.push_str(&format!(
            "\n\nAcknowledge for Opsgenie only (the other channels keep notifying): {url}"
        ));
    }
    for link in &item.links {
        description.push_str(&format!("\n\n{}: {}", link.label, link.url));
    }
    let mut details = json!({"check": item.check.to_string(), "since": item.since.to_rfc3339(), "episode": item.episode});
    for link in &item.links {
        details[link.label.to_lowercase()] = json!(link.url);
    }
    if let Some(url) = &item.ack_url {
        details["ack_url"] = json!(url);
    }
    if let Some(url) = &item.ack_channel_url {
        details["ack_channel_url"] = json!(url);
    }
    let body = json!({
        "message": truncate(&format!("{} · {}", item.site_label(), item.check.check.title()), 130),
        "alias": alias,
        "description": truncate(&description, 15_000),
        "priority": priority(item.severity),
        "source": "sigsci-kit",
        "entity": item.site_label(),
        "tags": ["sigsci-kit", "agent-health", item.check.check.as_str()],
        "details": details,
    });
    (vec!["v2".into(), "alerts".into()], None, body)
}

/// Path segments, query and body that acknowledge (or un-acknowledge) the alert with `alias`, in the
/// name of whoever did it in sigsci-kit.
pub fn incident_request(alias: &str, action: IncidentAction, by: &str) -> Request {
    let (verb, done) = match action {
        IncidentAction::Acknowledge => ("acknowledge", "Acknowledged"),
        IncidentAction::Unacknowledge => ("unacknowledge", "Acknowledgement withdrawn"),
    };
    let body = json!({
        "user": truncate(by, 100),
        "source": "sigsci-kit",
        "note": format!("{done} in sigsci-kit by {by}"),
    });
    let segments = vec!["v2".into(), "alerts".into(), alias.to_string(), verb.into()];
    (segments, Some(("identifierType", "alias")), body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channels::fixtures::{firing, resolved};

    #[test]
    fn creates_and_closes_by_alias() {
        let (path, query, body) = request(&firing("www"));
        assert_eq!(path, ["v2", "alerts"]);
        assert_eq!(query, None);
        assert_eq!(body["alias"], "sigsci-kit/testcorp/www/no_agents_online");
        assert_eq!(body["priority"], "P1");
        assert_eq!(body["message"], "testcorp/www · No agents online");
        assert!(
            body["description"]
                .as_str()
                .unwrap()
                .contains("Acknowledge")
        );
        assert_eq!(
            body["details"]["ack_channel_url"],
            firing("www").ack_channel_url.unwrap().as_str()
        );
        assert_eq!(
            body["details"]["runbook"],
            "https://wiki.example/agent-health#no_agents_online"
        );
        let (path, query, _) = request(&resolved("www"));
        assert_eq!(
            path,
            [
                "v2",
                "alerts",
                "sigsci-kit/testcorp/www/no_agents_online",
                "close"
            ]
        );
        assert_eq!(query, Some(("identifierType", "alias")));
    }
}

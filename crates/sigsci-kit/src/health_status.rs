//! The text of `sigsci-kit health status` (also printed at the end of the demo): the agent-health
//! state as an operator reads it.

use agent_health::{AckAction, AckMethod, ChannelState, Condition, ConditionKey, State};
use chrono::{DateTime, Utc};

use crate::output::{Colour, age, paint};

/// The state as `health status` prints it: heartbeat, conditions with their channels and
/// acknowledgements, and the recent acknowledgement log.
pub fn render(state: &State, now: DateTime<Utc>) -> String {
    let mut out = format!("corp {}\n", state.corp);
    match &state.heartbeat {
        None => out.push_str("evaluator: no run recorded\n"),
        Some(heartbeat) => {
            out.push_str(&format!(
                "evaluator: last run {} (run {}), {} of {} sites evaluated{}\n",
                ago(now, heartbeat.started_at),
                heartbeat.run_id,
                heartbeat.sites_evaluated,
                heartbeat.sites_total,
                if heartbeat.finished_at.is_some() {
                    ""
                } else {
                    ", deliveries not recorded yet"
                },
            ));
            if let Some(error) = &heartbeat.corp_error {
                out.push_str(&format!(
                    "  NOT EVALUATED: the site list could not be read: {error}\n"
                ));
            }
            for site in &heartbeat.sites_failed {
                let reason = state
                    .sites
                    .get(site)
                    .and_then(|s| s.last_error.clone())
                    .unwrap_or_default();
                out.push_str(&format!("  NOT EVALUATED: site {site}: {reason}\n"));
            }
        }
    }
    let firing = state.conditions.values().filter(|c| c.firing).count();
    out.push_str(&format!(
        "conditions: {firing} firing, {} resolving\n",
        state.conditions.len() - firing
    ));
    for (key, condition) in &state.conditions {
        out.push_str(&render_condition(key, condition, now));
    }
    if !state.ack_log.is_empty() {
        out.push_str("recent acknowledgements:\n");
        for event in state.ack_log.iter().rev().take(10) {
            let channels = if event.channels.is_empty() {
                "all channels".to_string()
            } else {
                event.channels.join(",")
            };
            // Pages record who as "NAME (link from CHANNEL)": the method is said only when `by` does not.
            let how = match event.how {
                AckMethod::Cli => " (command line)",
                AckMethod::Link if event.by.contains("(link") => "",
                AckMethod::Link => " (link)",
                AckMethod::LinkOneClick => " (one click)",
                AckMethod::Recovered => "",
            };
            out.push_str(&format!(
                "  {} {} {} [{channels}] by {}{how}{}\n",
                event.at.format("%Y-%m-%d %H:%M UTC"),
                match event.action {
                    AckAction::Ack => "acknowledged",
                    AckAction::Unack => "unacknowledged",
                    AckAction::Cleared => "cleared (recovered)",
                },
                event.check,
                event.by,
                event
                    .until
                    .map(|u| format!(" until {}", u.format("%Y-%m-%d %H:%M UTC")))
                    .unwrap_or_default(),
            ));
        }
    }
    out
}

fn render_condition(key: &ConditionKey, condition: &Condition, now: DateTime<Utc>) -> String {
    // Padded before painting, so the escape codes do not count towards the width.
    let label = if condition.firing {
        paint("FIRING  ", Colour::Red)
    } else {
        paint("RESOLVED", Colour::Green)
    };
    let mut out = format!(
        "  {label} {key} [{}] since {}: {}\n",
        condition.severity,
        ago(now, condition.since),
        condition.finding.summary
    );
    if let Some(whole) = condition.acks.whole.as_ref() {
        out.push_str(&format!(
            "           acknowledged (all channels) by {} at {}\n",
            whole.by,
            whole.at.format("%H:%M UTC")
        ));
    }
    for (channel, ack) in &condition.acks.channels {
        out.push_str(&format!(
            "           acknowledged on {channel} by {} at {}\n",
            ack.by,
            ack.at.format("%H:%M UTC")
        ));
    }
    for (name, channel) in &condition.channels {
        out.push_str(&format!(
            "           {name}: {}\n",
            render_channel(channel, now)
        ));
    }
    out
}

fn render_channel(channel: &ChannelState, now: DateTime<Utc>) -> String {
    let mut parts = vec![format!("sent {}×", channel.sent)];
    if let Some(last) = channel.last_sent {
        parts.push(format!("last {}", ago(now, last)));
    }
    if let Some(pending) = &channel.pending {
        parts.push(format!(
            "{} in flight (run {})",
            // The kind's serialized name (`trigger`/`resolve`): the library does not export the type.
            match serde_json::to_value(pending.kind)
                .ok()
                .as_ref()
                .and_then(|v| v.as_str())
            {
                Some("resolve") => "resolved notification",
                _ => "notification",
            },
            pending.run_id
        ));
    }
    if let Some(error) = &channel.last_error {
        parts.push(format!(
            "{} failed attempt(s), last: {error}",
            channel.failures
        ));
    }
    parts.join(", ")
}

fn ago(now: DateTime<Utc>, then: DateTime<Utc>) -> String {
    format!(
        "{} ({} ago)",
        then.format("%Y-%m-%d %H:%M:%S UTC"),
        age(now, then)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_names_unevaluated_sites_and_acknowledgements() {
        let now = Utc::now();
        let text = r#"{"version": 1, "corp": "testcorp",
            "heartbeat": {"run_id": "r1", "started_at": "2024-01-01T00:00:00Z", "sites_total": 2, "sites_evaluated": 1, "sites_failed": ["www"]},
            "sites": {"www": {"observed_at": "2024-01-01T00:00:00Z", "agents": 0, "online": 0, "rps": 0.0, "consecutive_failures": 1, "last_error": "503 server error: down"}},
            "conditions": {"api/no_agents_online": {"firing": true, "episode": "r0", "since": "2024-01-01T00:00:00Z", "severity": "critical",
                "finding": {"summary": "0 of 3 agents online", "value": 0.0, "threshold": 1.0}, "updated_at": "2024-01-01T00:00:00Z",
                "acks": {"whole": {"by": "ann", "at": "2024-01-01T00:01:00Z", "how": "link"}},
                "channels": {"slack": {"episode": "r0", "notified": true, "sent": 1, "last_sent": "2024-01-01T00:00:00Z"}}}}}"#;
        let state: State = serde_json::from_str(text).unwrap();
        let status = render(&state, now);
        assert!(
            status.contains("NOT EVALUATED: site www: 503 server error: down"),
            "{status}"
        );
        assert!(
            status.contains("FIRING   api/no_agents_online [critical]"),
            "{status}"
        );
        assert!(
            status.contains("acknowledged (all channels) by ann"),
            "{status}"
        );
        assert!(status.contains("slack: sent 1×"), "{status}");
        assert!(
            !status.contains("(Link)") && !status.contains("(Cli)"),
            "{status}"
        );
    }
}

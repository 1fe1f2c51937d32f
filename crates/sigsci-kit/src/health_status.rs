//! The text of `sigsci-kit health status` (also printed at the end of the demo): a short heading with
//! the evaluator's heartbeat and the sites it could not evaluate, then the conditions and the recent
//! acknowledgements as tables.

use agent_health::{AckAction, AckMethod, ChannelState, Condition, IncidentAction, State};
use chrono::{DateTime, Utc};

use crate::output::{Colour, Table, age, paint_when, rfc3339, stdout_colour};

/// The acknowledgement log shows this many most recent events.
const ACK_LOG_SHOWN: usize = 10;

/// The default table, coloured when stdout takes colour.
pub fn render(state: &State, now: DateTime<Utc>) -> String {
    render_with(state, now, false)
}

/// The table, with `wide` the columns `-o wide` adds (SINCE, ACK UNTIL, CHANNELS).
pub fn render_with(state: &State, now: DateTime<Utc>, wide: bool) -> String {
    layout(state, now, wide, stdout_colour())
}

fn layout(state: &State, now: DateTime<Utc>, wide: bool, colour: bool) -> String {
    let mut out = heading(state, now);
    if !state.conditions.is_empty() {
        out.push('\n');
        out.push_str(&conditions_table(state, now, wide, colour));
    }
    if !state.ack_log.is_empty() {
        out.push_str("\nrecent acknowledgements:\n");
        out.push_str(&ack_log_table(state, now));
    }
    out
}

/// Corp, the last run, the sites it evaluated (naming every one it could not: on-call needs them)
/// and the count of conditions.
fn heading(state: &State, now: DateTime<Utc>) -> String {
    let mut out = field("corp", &state.corp);
    match &state.heartbeat {
        None => out.push_str(&field("evaluator", "no run recorded")),
        Some(heartbeat) => {
            out.push_str(&field(
                "evaluator",
                &format!(
                    "last run {} ({} ago), run {}{}",
                    rfc3339(heartbeat.started_at),
                    age(now, heartbeat.started_at),
                    heartbeat.run_id,
                    if heartbeat.finished_at.is_some() {
                        ""
                    } else {
                        ", deliveries not recorded yet"
                    },
                ),
            ));
            out.push_str(&field(
                "sites",
                &format!(
                    "{} of {} evaluated",
                    heartbeat.sites_evaluated, heartbeat.sites_total
                ),
            ));
            if let Some(error) = &heartbeat.corp_error {
                out.push_str(&format!(
                    "  NOT EVALUATED: the site list could not be read: {}\n",
                    one_line(error)
                ));
            }
            for site in &heartbeat.sites_failed {
                let reason = state
                    .sites
                    .get(site)
                    .and_then(|s| s.last_error.as_deref())
                    .map(one_line)
                    .unwrap_or_default();
                out.push_str(&format!("  NOT EVALUATED: site {site}: {reason}\n"));
            }
        }
    }
    let firing = state.conditions.values().filter(|c| c.firing).count();
    let counts = if state.conditions.is_empty() {
        "none open".to_string()
    } else {
        format!(
            "{firing} firing, {} resolved",
            state.conditions.len() - firing
        )
    };
    out.push_str(&field("conditions", &counts));
    out
}

/// One `key: value` line of the heading, the values aligned.
fn field(key: &str, value: &str) -> String {
    format!("{:<12}{value}\n", format!("{key}:"))
}

fn conditions_table(state: &State, now: DateTime<Utc>, wide: bool, colour: bool) -> String {
    let mut headers = vec![
        "SITE", "CHECK", "STATUS", "SEVERITY", "AGE", "ACK", "SUMMARY",
    ];
    if wide {
        headers.extend(["SINCE", "ACK UNTIL", "CHANNELS"]);
    }
    let mut table = Table::new(headers);
    for (key, condition) in &state.conditions {
        let status = if condition.firing {
            paint_when(colour, "FIRING", Colour::Red)
        } else {
            paint_when(colour, "RESOLVED", Colour::Green)
        };
        let (by, until) = acknowledgement(condition, now);
        let mut row = vec![
            key.site.clone(),
            key.check.to_string(),
            status,
            condition.severity.to_string(),
            age(now, condition.since),
            by,
            one_line(&condition.finding.summary),
        ];
        if wide {
            row.extend([rfc3339(condition.since), until, channels(condition, now)]);
        }
        table.row(row);
    }
    table.render()
}

/// Who acknowledged the episode (`-` nobody, `partial` only some of its channels) and until when
/// (`-`: until it recovers). Acknowledgements past their `until` no longer count.
fn acknowledgement(condition: &Condition, now: DateTime<Utc>) -> (String, String) {
    let acks = &condition.acks;
    let until = |at: Option<DateTime<Utc>>| at.map_or_else(|| "-".to_string(), rfc3339);
    if let Some(whole) = acks.whole.as_ref().filter(|ack| ack.in_force(now)) {
        return (whole.by.clone(), until(whole.until));
    }
    let in_force: Vec<_> = acks
        .channels
        .iter()
        .filter(|(_, ack)| ack.in_force(now))
        .collect();
    if in_force.is_empty() {
        return ("-".to_string(), "-".to_string());
    }
    let every_channel = condition
        .channels
        .keys()
        .all(|name| in_force.iter().any(|(acked, _)| *acked == name));
    let by = if every_channel {
        let mut names: Vec<&str> = in_force.iter().map(|(_, ack)| ack.by.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        names.join(", ")
    } else {
        "partial".to_string()
    };
    // The first channel whose acknowledgement ends; the per-channel detail is in CHANNELS.
    (
        by,
        until(in_force.iter().filter_map(|(_, ack)| ack.until).min()),
    )
}

/// Per channel: deliveries, the one in flight, the last error, and its own acknowledgement.
fn channels(condition: &Condition, now: DateTime<Utc>) -> String {
    if condition.channels.is_empty() {
        return "-".to_string();
    }
    condition
        .channels
        .iter()
        .map(|(name, channel)| {
            let mut text = format!("{name}: {}", channel_summary(channel, now));
            if let Some(ack) = condition
                .acks
                .channels
                .get(name)
                .filter(|ack| ack.in_force(now))
            {
                text.push_str(&format!(", acknowledged by {}", ack.by));
            }
            text
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn channel_summary(channel: &ChannelState, now: DateTime<Utc>) -> String {
    let mut parts = vec![format!("{} sent", channel.sent)];
    if let Some(last) = channel.last_sent {
        parts[0].push_str(&format!(" (last {} ago)", age(now, last)));
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
        parts.push(format!("{} failed: {}", channel.failures, one_line(error)));
    }
    if let Some(update) = &channel.incident {
        let what = match update.action {
            IncidentAction::Acknowledge => "incident acknowledged",
            IncidentAction::Unacknowledge => "incident un-acknowledged",
        };
        parts.push(match (&update.done_at, &update.last_error) {
            (Some(_), _) => what.to_string(),
            (None, Some(error)) => format!(
                "{what}: owed, {} failed: {}",
                update.failures,
                one_line(error)
            ),
            (None, None) => format!("{what}: owed"),
        });
    }
    parts.join(", ")
}

/// The newest acknowledgement events first.
fn ack_log_table(state: &State, now: DateTime<Utc>) -> String {
    let mut table = Table::new(vec![
        "TIME", "AGE", "ACTION", "CHECK", "CHANNELS", "BY", "UNTIL",
    ]);
    for event in state.ack_log.iter().rev().take(ACK_LOG_SHOWN) {
        // Pages record who as "NAME (link from CHANNEL)": the method is said only when `by` does not.
        let how = match event.how {
            AckMethod::Cli => " (command line)",
            AckMethod::Link if event.by.contains("(link") => "",
            AckMethod::Link => " (link)",
            AckMethod::LinkOneClick => " (one click)",
            AckMethod::Recovered => "",
        };
        table.row(vec![
            rfc3339(event.at),
            age(now, event.at),
            match event.action {
                AckAction::Ack => "acknowledged",
                AckAction::Unack => "unacknowledged",
                AckAction::Cleared => "cleared (recovered)",
            }
            .to_string(),
            event.check.to_string(),
            if event.channels.is_empty() {
                "all".to_string()
            } else {
                event.channels.join(",")
            },
            format!("{}{how}", event.by),
            event.until.map_or_else(|| "-".to_string(), rfc3339),
        ]);
    }
    table.render()
}

/// A table cell or heading value on one line, whatever an API error or finding carried.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: &str = "2024-01-01T01:00:00Z";

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    /// A run that could not evaluate `www`; `api` firing and acknowledged as a whole; `shop`
    /// resolved, one of its two channels acknowledged, its resolve in flight on the other, which
    /// failed once.
    fn state() -> State {
        let text = r#"{"version": 1, "corp": "testcorp",
            "heartbeat": {"run_id": "r1", "started_at": "2024-01-01T00:59:15Z", "sites_total": 3, "sites_evaluated": 2, "sites_failed": ["www"]},
            "sites": {"www": {"observed_at": "2024-01-01T00:00:00Z", "agents": 0, "online": 0, "rps": 0.0, "consecutive_failures": 1, "last_error": "503 server error:\ndown"}},
            "conditions": {
              "api/no_agents_online": {"firing": true, "episode": "r0", "since": "2024-01-01T00:55:00Z", "severity": "critical",
                "finding": {"summary": "0 of 3 agents online", "value": 0.0, "threshold": 1.0}, "updated_at": "2024-01-01T00:59:15Z",
                "acks": {"whole": {"by": "ann", "at": "2024-01-01T00:56:00Z", "how": "link"}},
                "channels": {"slack": {"episode": "r0", "notified": true, "sent": 1, "last_sent": "2024-01-01T00:55:00Z"},
                  "pd": {"episode": "r0", "notified": true, "sent": 1, "last_sent": "2024-01-01T00:55:00Z",
                    "incident": {"action": "acknowledge", "by": "ann", "requested_at": "2024-01-01T00:56:00Z", "failures": 1, "last_error": "HTTP 503"}}}},
              "shop/low_traffic": {"firing": false, "episode": "r2", "since": "2023-12-31T22:00:00Z", "cleared_at": "2024-01-01T00:59:15Z",
                "severity": "warning", "finding": {"summary": "0.5 rps, under 1", "value": 0.5, "threshold": 1.0}, "updated_at": "2024-01-01T00:59:15Z",
                "acks": {"channels": {"slack": {"by": "bob", "at": "2023-12-31T22:10:00Z", "how": "cli", "until": "2024-01-01T02:00:00Z"}}},
                "channels": {
                  "pd": {"episode": "r2", "notified": true, "sent": 2, "last_sent": "2023-12-31T22:00:00Z", "failures": 1, "last_error": "HTTP 503",
                    "pending": {"run_id": "r1", "kind": "resolve", "episode": "r2", "claimed_at": "2024-01-01T00:59:15Z"}},
                  "slack": {"episode": "r2", "notified": true, "sent": 1, "last_sent": "2023-12-31T22:00:00Z"}}}},
            "ack_log": [
              {"at": "2023-12-31T22:10:00Z", "check": "shop/low_traffic", "action": "ack", "channels": ["slack"], "by": "bob", "how": "cli", "until": "2024-01-01T02:00:00Z"},
              {"at": "2024-01-01T00:56:00Z", "check": "api/no_agents_online", "action": "ack", "by": "ann (link from slack)", "how": "link"}]}"#;
        serde_json::from_str(text).unwrap()
    }

    /// Every column of `table` starts where its header does, two spaces after the one before.
    fn assert_aligned(table: &str) {
        let mut lines = table.lines();
        let header = lines.next().unwrap();
        assert_eq!(header, header.to_uppercase(), "{table}");
        let starts: Vec<usize> = header
            .match_indices("  ")
            .map(|(i, _)| i + 2)
            .filter(|&i| header.as_bytes().get(i).is_some_and(|b| *b != b' '))
            .collect();
        for line in lines {
            for &start in &starts {
                let bytes = line.as_bytes();
                assert!(
                    bytes[start - 2..start] == *b"  " && bytes[start] != b' ',
                    "column at {start} misaligned:\n{table}"
                );
            }
        }
    }

    #[test]
    fn the_table_has_a_heading_then_conditions_and_acknowledgements() {
        let text = layout(&state(), at(NOW), false, false);
        assert_eq!(
            text,
            "\
corp:       testcorp
evaluator:  last run 2024-01-01T00:59:15Z (45s ago), run r1, deliveries not recorded yet
sites:      2 of 3 evaluated
  NOT EVALUATED: site www: 503 server error: down
conditions: 1 firing, 1 resolved

SITE  CHECK             STATUS    SEVERITY  AGE  ACK      SUMMARY
api   no_agents_online  FIRING    critical  5m   ann      0 of 3 agents online
shop  low_traffic       RESOLVED  warning   3h   partial  0.5 rps, under 1

recent acknowledgements:
TIME                  AGE  ACTION        CHECK                 CHANNELS  BY                     UNTIL
2024-01-01T00:56:00Z  4m   acknowledged  api/no_agents_online  all       ann (link from slack)  -
2023-12-31T22:10:00Z  2h   acknowledged  shop/low_traffic      slack     bob (command line)     2024-01-01T02:00:00Z
"
        );
    }

    #[test]
    fn wide_adds_since_ack_until_and_the_channels() {
        let text = layout(&state(), at(NOW), true, false);
        let conditions = &format!("{}\n", text.split("\n\n").nth(1).unwrap());
        assert_aligned(conditions);
        let header = conditions.lines().next().unwrap();
        assert!(
            header.ends_with(
                "SUMMARY               SINCE                 ACK UNTIL             CHANNELS"
            ),
            "{header}"
        );
        assert!(
            conditions.contains(
                "2023-12-31T22:00:00Z  2024-01-01T02:00:00Z  \
                 pd: 2 sent (last 3h ago), resolved notification in flight (run r1), 1 failed: HTTP 503; \
                 slack: 1 sent (last 3h ago), acknowledged by bob\n"
            ),
            "{conditions}"
        );
        assert!(
            conditions.contains(
                "2024-01-01T00:55:00Z  -                     \
                 pd: 1 sent (last 5m ago), incident acknowledged: owed, 1 failed: HTTP 503; \
                 slack: 1 sent (last 5m ago)\n"
            ),
            "{conditions}"
        );
        assert_aligned(
            text.split("\n\n")
                .nth(2)
                .unwrap()
                .trim_start_matches("recent acknowledgements:\n"),
        );
    }

    #[test]
    fn status_is_coloured_only_when_asked_and_stays_aligned() {
        let plain = layout(&state(), at(NOW), true, false);
        assert!(!plain.contains('\x1b'), "{plain}");
        let coloured = layout(&state(), at(NOW), false, true);
        assert!(
            coloured.contains("\x1b[31mFIRING\x1b[0m    critical"),
            "{coloured}"
        );
        assert!(
            coloured.contains("\x1b[32mRESOLVED\x1b[0m  warning"),
            "{coloured}"
        );
        let stripped = coloured
            .replace("\x1b[31m", "")
            .replace("\x1b[32m", "")
            .replace("\x1b[0m", "");
        assert_eq!(stripped, layout(&state(), at(NOW), false, false));
    }

    #[test]
    fn acknowledgements_of_every_channel_name_who_and_expired_ones_do_not_count() {
        let mut state = state();
        let key = "shop/low_traffic".parse().unwrap();
        let condition = state.conditions.get_mut(&key).unwrap();
        condition.channels.remove("pd");
        assert_eq!(
            acknowledgement(condition, at(NOW)),
            ("bob".to_string(), "2024-01-01T02:00:00Z".to_string())
        );
        assert_eq!(
            acknowledgement(condition, at("2024-01-01T03:00:00Z")),
            ("-".to_string(), "-".to_string())
        );
    }

    #[test]
    fn a_run_that_could_not_list_the_sites_and_no_conditions() {
        let mut state = State::new("testcorp");
        let text = r#"{"run_id": "r9", "started_at": "2024-01-01T00:00:00Z", "finished_at": "2024-01-01T00:00:01Z",
            "sites_total": 0, "sites_evaluated": 0, "corp_error": "401 unauthorized"}"#;
        state.heartbeat = Some(serde_json::from_str(text).unwrap());
        assert_eq!(
            layout(&state, at(NOW), true, false),
            "\
corp:       testcorp
evaluator:  last run 2024-01-01T00:00:00Z (1h ago), run r9
sites:      0 of 0 evaluated
  NOT EVALUATED: the site list could not be read: 401 unauthorized
conditions: none open
"
        );
        state.heartbeat = None;
        assert!(layout(&state, at(NOW), false, false).contains("evaluator:  no run recorded\n"));
    }
}

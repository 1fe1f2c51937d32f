//! A terraform-style text rendering of a plan.

use std::fmt::Write;

use crate::change::{Change, FieldDiff, Op, Shown, Summary};

/// The plan as people read it: one block per change, field by field, and a summary line.
pub fn render_plan(changes: &[Change]) -> String {
    if changes.is_empty() {
        return "No changes. The remote configuration matches the manifests.\n".to_string();
    }
    let mut out = String::from("sigsci-kit will perform the following actions:\n");
    for change in changes {
        out.push('\n');
        render_change(&mut out, change);
    }
    // Writing to a String cannot fail.
    let _ = writeln!(out, "\nPlan: {}.", Summary::of(changes));
    out
}

/// The differences of `ObserveOnly` declarations, after the plan: empty when there are none.
pub fn render_observe_only(changes: &[Change]) -> String {
    if changes.is_empty() {
        return String::new();
    }
    let mut out =
        String::from("\nObserveOnly objects that differ from their manifests (never applied):\n");
    for change in changes {
        out.push('\n');
        render_change(&mut out, change);
    }
    out
}

pub(crate) fn render_change(out: &mut String, change: &Change) {
    let (object, fields) = match change {
        Change::Alert(alert) => (
            format!("site {} alert {}", alert.site, alert.tag_name),
            op_lines(&alert.op, |settings| settings.shown_fields()),
        ),
        Change::Integration(integration) => (
            format!("{} {} integration", integration.location, integration.kind),
            op_lines(&integration.op, |settings| settings.shown_fields()),
        ),
        Change::List(list) => (
            format!("{} list {:?}", list.location, list.name),
            op_lines(&list.op, |settings| settings.shown_fields()),
        ),
    };
    let (symbol, id, outcome) = fields.header;
    let id = id.map(|id| format!(" (id {id})")).unwrap_or_default();
    let _ = writeln!(out, "  # {}: {object}{id} {outcome}", change.address());
    let _ = writeln!(out, "  {symbol} {object} {{");
    let width = fields
        .lines
        .iter()
        .map(|(name, _)| name.len())
        .max()
        .unwrap_or(0);
    for (name, text) in fields.lines {
        let _ = writeln!(
            out,
            "      {name:<width$} {text}",
            name = format!("{name}:"),
            width = width + 1
        );
    }
    let _ = writeln!(out, "    }}");
}

struct Lines {
    header: (char, Option<String>, &'static str),
    lines: Vec<(String, String)>,
}

fn op_lines<T>(op: &Op<T>, shown: impl Fn(&T) -> Vec<(&'static str, Shown)>) -> Lines {
    match op {
        Op::Create(settings) => Lines {
            header: ('+', None, "will be created"),
            lines: shown(settings)
                .into_iter()
                .map(|(name, value)| (format!("+ {name}"), value.to_string()))
                .collect(),
        },
        Op::Update { id, diffs, .. } => Lines {
            header: ('~', Some(id.clone()), "will be updated in place"),
            lines: diffs.iter().map(diff_line).collect(),
        },
        Op::Delete { id } => Lines {
            header: ('-', Some(id.clone()), "will be deleted"),
            lines: Vec::new(),
        },
    }
}

fn diff_line(diff: &FieldDiff) -> (String, String) {
    (
        format!("~ {}", diff.field),
        format!("{} -> {}", diff.before, diff.after),
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::alert::AlertSettings;
    use crate::change::{AlertChange, IntegrationChange};
    use crate::integration::IntegrationSettings;
    use crate::model::{Address, IntegrationType, Location};
    use crate::sensitive::Sensitive;

    #[test]
    fn renders_each_verb_without_secrets() {
        let settings = AlertSettings {
            tag_name: "requests_total".into(),
            long_name: "Average RPS".into(),
            operator: "lessThan".into(),
            threshold: 25,
            interval: 10,
            enabled: true,
            skip_notifications: false,
        };
        let changes = vec![
            Change::Alert(AlertChange {
                address: Address::new("AgentAlert", Some("ops"), "low-traffic"),
                site: "site-1".into(),
                tag_name: "requests_total".into(),
                op: Op::Update {
                    id: "a2".into(),
                    diffs: vec![FieldDiff {
                        field: "threshold",
                        before: Shown::Value("10".into()),
                        after: Shown::Value("25".into()),
                    }],
                    desired: settings,
                },
            }),
            Change::Integration(IntegrationChange {
                address: Address::new("Integration", Some("ops"), "slack"),
                location: Location::Site("site-1".into()),
                kind: "slack".into(),
                op: Op::Create(IntegrationSettings {
                    kind: IntegrationType::Slack,
                    url: Sensitive::new("https://hooks.slack.test/T/B/very-secret"),
                    events: vec!["flag".into()],
                    fields: BTreeMap::new(),
                }),
            }),
            Change::Integration(IntegrationChange {
                address: Address::new("Integration", Some("ops"), "old-slack"),
                location: Location::Corp,
                kind: "slack".into(),
                op: Op::Delete { id: "c9".into() },
            }),
        ];
        let text = render_plan(&changes);
        let expected = r#"sigsci-kit will perform the following actions:

  # AgentAlert ops/low-traffic: site site-1 alert requests_total (id a2) will be updated in place
  ~ site site-1 alert requests_total {
      ~ threshold: 10 -> 25
    }

  # Integration ops/slack: site site-1 slack integration will be created
  + site site-1 slack integration {
      + type:   "slack"
      + url:    (sensitive value)
      + events: ["flag"]
    }

  # Integration ops/old-slack: corp slack integration (id c9) will be deleted
  - corp slack integration {
    }

Plan: 1 to create, 1 to change, 1 to delete.
"#;
        assert_eq!(text, expected);
        assert!(!text.contains("very-secret"));
        assert_eq!(
            render_plan(&[]),
            "No changes. The remote configuration matches the manifests.\n"
        );
    }
}

//! The acknowledgement pages: plain, accessible HTML that needs no JavaScript, light or dark as the
//! reader's system prefers.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};

use crate::checks::ConditionKey;
use crate::incidents::IncidentOutcome;
use crate::links::AckLink;
use crate::state::{Condition, IncidentAction};

pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            other => out.push(other),
        }
    }
    out
}

/// Colours as custom properties, swapped for `prefers-color-scheme: dark`. The focus ring contrasts
/// at least 3:1 with the page behind it in both schemes (WCAG 2.2 focus appearance); dates never wrap.
const STYLE: &str = ":root{color-scheme:light dark;--fg:#1b1b1b;--bg:#fff;--muted:#444;--border:#555;--button-bg:#0b4f9c;--button-fg:#fff;--ring:#0b4f9c;--error:#a4000f}\
@media (prefers-color-scheme:dark){:root{--fg:#e8e8e8;--bg:#121417;--muted:#b9bcc2;--border:#8d9199;--button-bg:#9cc3ff;--button-fg:#0b1a2e;--ring:#9cc3ff;--error:#ff9a9a}}\
body{font-family:system-ui,sans-serif;line-height:1.5;max-width:42rem;margin:2rem auto;padding:0 1rem;color:var(--fg);background:var(--bg)}\
h1{font-size:1.5rem}dl{display:grid;grid-template-columns:max-content 1fr;gap:.25rem 1rem}dt{font-weight:600}dd{margin:0}\
time{white-space:nowrap}a{color:inherit}fieldset{border:1px solid var(--border);margin-top:1rem;padding:.5rem 1rem}legend{font-weight:600}\
label.field{display:block;font-weight:600;margin-top:1rem}input[type=text]{font-size:1rem;padding:.4rem;width:100%;max-width:20rem;border:1px solid var(--border);color:var(--fg);background:var(--bg)}\
button{font-size:1rem;margin-top:1rem;padding:.5rem 1.25rem;border:2px solid var(--button-bg);background:var(--button-bg);color:var(--button-fg);cursor:pointer}\
button.secondary{background:transparent;color:var(--fg)}\
:focus-visible{outline:3px solid var(--ring);outline-offset:2px}.note{color:var(--muted)}.error{color:var(--error);font-weight:600}";

/// A whole page. `title` doubles as the `<h1>`; `body` is already-escaped HTML.
pub fn page(title: &str, body: &str) -> String {
    let title = escape(title);
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"color-scheme\" content=\"light dark\">\n\
         <meta name=\"robots\" content=\"noindex\">\n<title>{title} · sigsci-kit agent health</title>\n\
         <style>{STYLE}</style>\n</head>\n<body>\n<main>\n<h1>{title}</h1>\n{body}\n</main>\n</body>\n</html>\n"
    )
}

/// A time as people read it, machine-readable in `datetime`.
fn time(at: DateTime<Utc>) -> String {
    format!(
        "<time datetime=\"{}\">{}</time>",
        at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        at.format("%Y-%m-%d %H:%M UTC")
    )
}

/// What a page knows about the alert a verified link is for.
pub struct AlertView<'a> {
    pub link: &'a AckLink,
    /// The condition as stored now (absent once it recovered and was forgotten).
    pub condition: Option<&'a Condition>,
    /// The channels an acknowledgement through this link silences, by name.
    pub silences: Vec<String>,
    /// Those of them whose incident (PagerDuty, Opsgenie) is acknowledged there too.
    pub incident_channels: Vec<String>,
    /// Every check firing on the link's site, the link's own included.
    pub site_checks: Vec<ConditionKey>,
    /// Dashboard and runbook links from the rules, as (label, URL).
    pub links: Vec<(&'static str, String)>,
}

impl AlertView<'_> {
    /// `testcorp/site-1 · No agents online`: which alert, for refusals as much as for forms.
    pub fn title(&self) -> String {
        alert_title(&self.link.corp, &self.link.check)
    }
}

pub fn alert_title(corp: &str, check: &ConditionKey) -> String {
    format!("{corp}/{} · {}", check.site, check.check.title())
}

fn list(names: &[String]) -> String {
    match names {
        [] => "no channel (none accepts acknowledgements for this check)".to_string(),
        names => names.join(", "),
    }
}

fn details(view: &AlertView<'_>) -> String {
    let link = view.link;
    let mut rows: Vec<(&str, String)> = vec![
        ("Corp", escape(&link.corp)),
        ("Site", escape(&link.check.site)),
        ("Check", escape(link.check.check.title())),
    ];
    if let Some(condition) = view.condition {
        rows.push(("Severity", escape(&condition.severity.to_string())));
        rows.push(("Problem", escape(&condition.finding.summary)));
        rows.push(("Since", time(condition.since)));
    }
    rows.push(("Silences", escape(&list(&view.silences))));
    if !view.incident_channels.is_empty() {
        rows.push((
            "Incidents",
            format!(
                "acknowledged in {} as well",
                escape(&view.incident_channels.join(", "))
            ),
        ));
    }
    for (label, url) in &view.links {
        rows.push((
            label,
            format!(
                "<a href=\"{}\" rel=\"noreferrer\">{}</a>",
                escape(url),
                escape(url)
            ),
        ));
    }
    rows.push(("Link valid until", time(link.expires)));
    let mut html = String::from("<dl>\n");
    for (name, value) in rows {
        let _ = writeln!(html, "<dt>{name}</dt><dd>{value}</dd>");
    }
    html.push_str("</dl>");
    html
}

fn hidden(params: &[(&'static str, String)]) -> String {
    let mut html = String::new();
    for (name, value) in params {
        let _ = writeln!(
            html,
            "<input type=\"hidden\" name=\"{name}\" value=\"{}\">",
            escape(value)
        );
    }
    html
}

/// How long an acknowledgement lasts, as the form offers it: `for` values and their labels.
pub const DURATIONS: [(&str, &str); 3] = [
    ("recovery", "Until it recovers"),
    ("1h", "1 hour"),
    ("4h", "4 hours"),
];

fn radio(name: &str, value: &str, label: &str, checked: bool) -> String {
    let id = format!("{name}-{value}");
    format!(
        "<div><input type=\"radio\" id=\"{id}\" name=\"{name}\" value=\"{value}\"{}> <label for=\"{id}\">{label}</label></div>\n",
        if checked { " checked" } else { "" }
    )
}

/// The confirmation form: POSTs the signed link parameters back with the name (required, filled
/// from the cookie of an earlier acknowledgement), the duration and, when the site has several
/// firing checks, whether to acknowledge them all.
pub fn confirm(
    view: &AlertView<'_>,
    params: &[(&'static str, String)],
    name: &str,
    problem: Option<&str>,
) -> String {
    confirm_page("Acknowledge this alert?", "", view, params, name, problem)
}

/// The form under `title`, after `notice` (HTML, may be empty).
fn confirm_page(
    title: &str,
    notice: &str,
    view: &AlertView<'_>,
    params: &[(&'static str, String)],
    name: &str,
    problem: Option<&str>,
) -> String {
    let mut form = String::new();
    if let Some(problem) = problem {
        let _ = writeln!(
            form,
            "<p class=\"error\" role=\"alert\" id=\"by-problem\">{}</p>",
            escape(problem)
        );
    }
    let _ = write!(
        form,
        "<form method=\"post\" action=\"ack\">\n{}<label class=\"field\" for=\"by\">Your name</label>\n\
         <input id=\"by\" name=\"by\" type=\"text\" autocomplete=\"name\" maxlength=\"100\" required value=\"{}\"{}>\n",
        hidden(params),
        escape(name),
        if problem.is_some() {
            " aria-describedby=\"by-problem\" aria-invalid=\"true\""
        } else {
            ""
        }
    );
    form.push_str("<fieldset>\n<legend>For how long</legend>\n");
    for (index, (value, label)) in DURATIONS.iter().enumerate() {
        form.push_str(&radio("for", value, label, index == 0));
    }
    form.push_str("</fieldset>\n");
    if view.site_checks.len() > 1 {
        let others: Vec<String> = view
            .site_checks
            .iter()
            .map(|check| check.check.title().to_string())
            .collect();
        let _ = write!(
            form,
            "<fieldset>\n<legend>What</legend>\n{}{}</fieldset>\n",
            radio("scope", "check", "This check only", true),
            radio(
                "scope",
                "site",
                &escape(&format!(
                    "All {} firing checks of {}: {}",
                    view.site_checks.len(),
                    view.link.check.site,
                    others.join(", ")
                )),
                false,
            )
        );
    }
    form.push_str("<button type=\"submit\">Acknowledge</button>\n</form>");
    let body = format!(
        "{notice}<p>Acknowledging stops notifications about <strong>{}</strong> on {} for the time you choose.</p>\n{}\n{form}",
        escape(&view.title()),
        escape(&list(&view.silences)),
        details(view)
    );
    page(title, &body)
}

fn incident_lines(outcomes: &[IncidentOutcome]) -> String {
    let mut html = String::new();
    for outcome in outcomes {
        let what = match outcome.action {
            IncidentAction::Acknowledge => "acknowledged",
            IncidentAction::Unacknowledge => "un-acknowledged",
        };
        let line = match &outcome.error {
            None => format!("{}: incident of {} {what}.", outcome.channel, outcome.check),
            Some(error) => format!(
                "{}: incident of {} not {what} yet ({error}); it is retried within minutes.",
                outcome.channel, outcome.check
            ),
        };
        let _ = writeln!(html, "<li>{}</li>", escape(&line));
    }
    if html.is_empty() {
        html
    } else {
        format!("<ul>\n{html}</ul>")
    }
}

/// After an acknowledgement: who, until when, what the incident tools said, and an undo button.
pub fn acknowledged(
    view: &AlertView<'_>,
    checks: &[ConditionKey],
    by: &str,
    name: &str,
    until: Option<DateTime<Utc>>,
    incidents: &[IncidentOutcome],
    undo_params: &[(&'static str, String)],
) -> String {
    let how_long = match until {
        Some(until) => format!("until {}", time(until)),
        None => "until it recovers".to_string(),
    };
    let what = if checks.len() > 1 {
        let names: Vec<String> = checks
            .iter()
            .map(|check| check.check.title().to_string())
            .collect();
        format!(
            "{}: {} checks ({})",
            escape(&view.link.check.site),
            checks.len(),
            escape(&names.join(", "))
        )
    } else {
        escape(&view.title())
    };
    let body = format!(
        "<p role=\"status\">Acknowledged by {} {how_long}: {what}. Notifications to {} stop; \
         if it comes back after it recovers, you will be told again.</p>\n{}\n{}\n\
         <form method=\"post\" action=\"ack\">\n{}<input type=\"hidden\" name=\"action\" value=\"undo\">\n\
         <input type=\"hidden\" name=\"by\" value=\"{}\">\n\
         <button type=\"submit\" class=\"secondary\">Undo (notify again)</button>\n</form>",
        escape(by),
        escape(&list(&view.silences)),
        incident_lines(incidents),
        details(view),
        hidden(undo_params),
        escape(name),
    );
    page("Acknowledged", &body)
}

/// After an undo: notifications resume, and the link can acknowledge again.
pub fn withdrawn(
    view: &AlertView<'_>,
    incidents: &[IncidentOutcome],
    params: &[(&'static str, String)],
    name: &str,
) -> String {
    let notice = format!(
        "<p role=\"status\">The acknowledgement was withdrawn: {} notify again while it fires. \
         PagerDuty keeps an incident acknowledged until its own timeout; Opsgenie alerts are un-acknowledged.</p>\n{}\n",
        escape(&list(&view.silences)),
        incident_lines(incidents)
    );
    confirm_page(
        "Acknowledgement withdrawn",
        &notice,
        view,
        params,
        name,
        None,
    )
}

pub fn already_acknowledged(view: &AlertView<'_>, by: Option<(&str, DateTime<Utc>)>) -> String {
    let who = by
        .map(|(by, at)| format!(" by {} at {}", escape(by), time(at)))
        .unwrap_or_default();
    let body = format!(
        "<p role=\"status\"><strong>{}</strong> is already acknowledged{who}. Nothing was changed.</p>\n{}",
        escape(&view.title()),
        details(view)
    );
    page("Already acknowledged", &body)
}

pub fn gone(view: &AlertView<'_>) -> String {
    let body = format!(
        "<p><strong>{}</strong> has recovered since the link was sent, so there is nothing to acknowledge. \
         If it comes back, a new message with a new link is sent.</p>\n{}",
        escape(&view.title()),
        details(view)
    );
    page("Already recovered", &body)
}

/// Refusals (tampered, expired, used, not allowed). `reason` is plain text; `alert` names the
/// alert the link was for, when that much could be read from it.
pub fn refused(title: &str, reason: &str, alert: Option<&str>) -> String {
    let alert = alert
        .map(|alert| {
            format!(
                "<p>The link was for <strong>{}</strong>.</p>\n",
                escape(alert)
            )
        })
        .unwrap_or_default();
    let body = format!(
        "{alert}<p>{}</p>\n<p class=\"note\">Nothing was changed.</p>",
        escape(reason)
    );
    page(title, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_everything_that_could_break_out() {
        assert_eq!(
            escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        let html = refused(
            "Link refused",
            "<script>alert(1)</script>",
            Some("<b>corp</b>"),
        );
        assert!(!html.contains("<script>") && !html.contains("<b>corp"));
        assert!(html.starts_with("<!DOCTYPE html>\n<html lang=\"en\">"));
        assert!(html.contains("<main>") && html.contains("<h1>Link refused</h1>"));
    }

    #[test]
    fn dark_mode_and_unwrapped_dates_are_in_the_style() {
        assert!(STYLE.contains("@media (prefers-color-scheme:dark)"));
        assert!(STYLE.contains("time{white-space:nowrap}"));
        assert_eq!(
            time(DateTime::from_timestamp(1_700_000_000, 0).unwrap()),
            "<time datetime=\"2023-11-14T22:13:20Z\">2023-11-14 22:13 UTC</time>"
        );
    }
}

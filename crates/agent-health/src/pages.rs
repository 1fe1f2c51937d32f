//! The acknowledgement pages: plain, accessible HTML that needs no JavaScript.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};

use crate::links::AckLink;
use crate::state::Condition;

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

const STYLE: &str = "body{font-family:system-ui,sans-serif;line-height:1.5;max-width:40rem;margin:2rem auto;padding:0 1rem;color:#1b1b1b;background:#fff}\
h1{font-size:1.5rem}dl{display:grid;grid-template-columns:max-content 1fr;gap:.25rem 1rem}dt{font-weight:600}dd{margin:0}\
label{display:block;font-weight:600;margin-top:1rem}input{font-size:1rem;padding:.4rem;width:100%;max-width:20rem;border:1px solid #555}\
button{font-size:1rem;margin-top:1rem;padding:.5rem 1.25rem;border:2px solid #0b4f9c;background:#0b4f9c;color:#fff;cursor:pointer}\
button:focus,input:focus{outline:3px solid #f5a623;outline-offset:2px}.note{color:#444}";

/// A whole page. `title` doubles as the `<h1>`; `body` is already-escaped HTML.
pub fn page(title: &str, body: &str) -> String {
    let title = escape(title);
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"robots\" content=\"noindex\">\n<title>{title} · sigsci-kit agent health</title>\n\
         <style>{STYLE}</style>\n</head>\n<body>\n<main>\n<h1>{title}</h1>\n{body}\n</main>\n</body>\n</html>\n"
    )
}

fn scope(link: &AckLink) -> String {
    if link.channels.is_empty() {
        "every channel that accepts acknowledgements".to_string()
    } else {
        format!(
            "channel{} {}",
            if link.channels.len() == 1 { "" } else { "s" },
            link.channels.join(", ")
        )
    }
}

fn details(link: &AckLink, condition: Option<&Condition>) -> String {
    let mut rows = vec![
        ("Corp", link.corp.clone()),
        ("Site", link.check.site.clone()),
        ("Check", link.check.check.title().to_string()),
    ];
    if let Some(condition) = condition {
        rows.push(("Severity", condition.severity.to_string()));
        rows.push(("Problem", condition.finding.summary.clone()));
        rows.push((
            "Since",
            condition.since.format("%Y-%m-%d %H:%M UTC").to_string(),
        ));
    }
    rows.push(("Silences", scope(link)));
    let mut html = String::from("<dl>\n");
    for (name, value) in rows {
        let _ = writeln!(html, "<dt>{name}</dt><dd>{}</dd>", escape(&value));
    }
    html.push_str("</dl>");
    html
}

/// The confirmation form: POSTs the signed link parameters back, with an optional name.
pub fn confirm(
    link: &AckLink,
    params: &[(&'static str, String)],
    condition: Option<&Condition>,
) -> String {
    let mut hidden = String::new();
    for (name, value) in params {
        let _ = writeln!(
            hidden,
            "<input type=\"hidden\" name=\"{name}\" value=\"{}\">",
            escape(value)
        );
    }
    let body = format!(
        "<p>Acknowledging stops notifications about this problem until it recovers.</p>\n{}\n\
         <form method=\"post\" action=\"ack\">\n{hidden}<label for=\"by\">Your name (optional)</label>\n\
         <input id=\"by\" name=\"by\" type=\"text\" autocomplete=\"name\" maxlength=\"100\">\n\
         <button type=\"submit\">Acknowledge</button>\n</form>",
        details(link, condition)
    );
    page("Acknowledge this alert?", &body)
}

pub fn acknowledged(link: &AckLink, condition: Option<&Condition>, by: &str) -> String {
    let body = format!(
        "<p role=\"status\">Acknowledged by {}. Notifications about this problem stop until it recovers; \
         if it comes back after that, you will be told again.</p>\n{}",
        escape(by),
        details(link, condition)
    );
    page("Acknowledged", &body)
}

pub fn already_acknowledged(
    link: &AckLink,
    condition: Option<&Condition>,
    by: Option<(&str, DateTime<Utc>)>,
) -> String {
    let who = by
        .map(|(by, at)| format!(" by {} at {}", escape(by), at.format("%Y-%m-%d %H:%M UTC")))
        .unwrap_or_default();
    let body = format!(
        "<p role=\"status\">This alert is already acknowledged{who}. Nothing was changed.</p>\n{}",
        details(link, condition)
    );
    page("Already acknowledged", &body)
}

pub fn gone(link: &AckLink) -> String {
    let body = format!(
        "<p>This problem has recovered since the link was sent, so there is nothing to acknowledge. \
         If it comes back, a new message with a new link is sent.</p>\n{}",
        details(link, None)
    );
    page("Already recovered", &body)
}

/// Refusals (tampered, expired, used, not allowed). `reason` is plain text.
pub fn refused(title: &str, reason: &str) -> String {
    let body = format!(
        "<p>{}</p>\n<p class=\"note\">Nothing was changed.</p>",
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
        let html = refused("Link refused", "<script>alert(1)</script>");
        assert!(!html.contains("<script>"));
        assert!(html.starts_with("<!DOCTYPE html>\n<html lang=\"en\">"));
        assert!(html.contains("<main>") && html.contains("<h1>Link refused</h1>"));
    }
}

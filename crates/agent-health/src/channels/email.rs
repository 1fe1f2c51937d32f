//! Email: one message per run listing every condition for the channel, as plain text and HTML
//! alternatives carrying what Slack's message carries (status, site, check, severity, details, since
//! or cleared, and for firing conditions both acknowledgement links), plus the agents concerned.
//! [`super::Deliverer`] sends it over SMTP with STARTTLS, logging in with the channel secret's
//! `username` and `password`.

use secrecy::{ExposeSecret, SecretString};

use super::{Notification, group_headline, truncate};
use crate::pages::escape;

/// The submission port (RFC 6409), where servers offer STARTTLS and take logins.
pub const DEFAULT_PORT: u16 = 587;
/// Conditions listed in one message; the rest are counted.
const MAX_LISTED: usize = 100;
/// Agents named per condition; the rest are counted.
const MAX_AGENTS: usize = 20;
/// Long subjects get cut or folded badly by mail clients.
const MAX_SUBJECT: usize = 200;

#[derive(Clone, Debug, PartialEq)]
pub struct Email {
    pub subject: String,
    pub text: String,
    pub html: String,
}

pub fn message(corp: &str, channel: &str, items: &[Notification]) -> Email {
    let headline = group_headline(corp, items);
    // A single condition's own headline tells more in an inbox list than a count does.
    let subject = match items {
        [only] => only.headline(),
        _ => headline.clone(),
    };
    let subject = truncate(&subject.replace(['\r', '\n'], " "), MAX_SUBJECT);
    let mut text = format!("{headline}\n");
    let mut html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\"><title>{}</title></head>\n\
         <body>\n<h1>{}</h1>\n",
        escape(&subject),
        escape(&headline)
    );
    for item in items.iter().take(MAX_LISTED) {
        let title = format!(
            "{} {} · {} · {} ({})",
            item.status_icon(),
            item.status_label(),
            item.site_label(),
            item.check.check.title(),
            item.severity
        );
        let details = item.details();
        text.push_str(&format!("\n{title}\n{details}\n"));
        html.push_str(&format!(
            "<h2>{}</h2>\n<p>{}</p>\n",
            escape(&title),
            escape(&details)
        ));
        if let Some(agents) = agents(item) {
            text.push_str(&format!("Agents: {agents}\n"));
            html.push_str(&format!("<p>Agents: {}</p>\n", escape(&agents)));
        }
        let when = item.when();
        text.push_str(&format!("{when}\n"));
        html.push_str(&format!("<p><em>{}</em></p>\n", escape(&when)));
        if let Some(url) = &item.ack_url {
            text.push_str(&format!("Acknowledge (silences every channel): {url}\n"));
            html.push_str(&format!(
                "<p><a href=\"{}\">Acknowledge</a> (silences every channel)</p>\n",
                escape(url)
            ));
        }
        if let Some(url) = &item.ack_channel_url {
            text.push_str(&format!(
                "Acknowledge on {channel} only (the other channels keep notifying): {url}\n"
            ));
            html.push_str(&format!(
                "<p><a href=\"{}\">Acknowledge on {} only</a> (the other channels keep notifying)</p>\n",
                escape(url),
                escape(channel)
            ));
        }
        for link in &item.links {
            text.push_str(&format!("{}: {}\n", link.label, link.url));
            html.push_str(&format!(
                "<p><a href=\"{}\">{}</a></p>\n",
                escape(&link.url),
                link.label
            ));
        }
    }
    if items.len() > MAX_LISTED {
        let more = format!(
            "…and {} more; `sigsci-kit health status` lists them all",
            items.len() - MAX_LISTED
        );
        text.push_str(&format!("\n{more}\n"));
        html.push_str(&format!("<p>{}</p>\n", escape(&more)));
    }
    let footer = format!("sigsci-kit agent health · corp {corp} · channel {channel}");
    // "-- " starts a signature, which mail clients show apart from the message.
    text.push_str(&format!("\n-- \n{footer}\n"));
    html.push_str(&format!(
        "<hr>\n<p><small>{}</small></p>\n</body>\n</html>\n",
        escape(&footer)
    ));
    Email {
        subject,
        text,
        html,
    }
}

fn agents(item: &Notification) -> Option<String> {
    if item.agents.is_empty() {
        return None;
    }
    let mut listed = item
        .agents
        .iter()
        .take(MAX_AGENTS)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    if item.agents.len() > MAX_AGENTS {
        listed.push_str(&format!(" and {} more", item.agents.len() - MAX_AGENTS));
    }
    Some(listed)
}

/// The SMTP login: the channel's resolved secret, a JSON object holding `username` and `password`
/// (see [`crate::secrets::SMTP_LOGIN_FIELDS`]).
pub(crate) struct SmtpLogin {
    pub username: String,
    pub password: SecretString,
}

impl SmtpLogin {
    /// `None` when the secret holds no login; the caller says so without quoting it.
    pub(crate) fn from_secret(secret: &SecretString) -> Option<SmtpLogin> {
        let value: serde_json::Value = serde_json::from_str(secret.expose_secret()).ok()?;
        let field = |name: &str| value.get(name)?.as_str().map(str::to_string);
        Some(SmtpLogin {
            username: field("username")?,
            password: SecretString::from(field("password")?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channels::Status;
    use crate::channels::fixtures::{firing, resolved};
    use crate::channels::slack;

    #[test]
    fn carries_what_the_slack_message_carries_in_text_and_html() {
        let items = [firing("www"), resolved("shop")];
        let email = message("testcorp", "mail", &items);
        let slack = slack::message("testcorp", &items);
        let header = slack["blocks"][0]["text"]["text"].as_str().unwrap();
        assert_eq!(email.subject, header);
        assert!(
            email.text.starts_with(&format!("{header}\n")),
            "{}",
            email.text
        );
        assert!(email.html.contains(&format!("<h1>{header}</h1>")));

        let www = firing("www");
        let (ack, ack_channel) = (www.ack_url.unwrap(), www.ack_channel_url.unwrap());
        for expected in [
            "🔴 FIRING · testcorp/www · No agents online (critical)\n0 of 3 agents online\n",
            "Agents: agent-1\nsince 2023-11-14 22:13 UTC\n",
            &format!("Acknowledge (silences every channel): {ack}\n"),
            &format!(
                "Acknowledge on mail only (the other channels keep notifying): {ack_channel}\n"
            ),
            "✅ RESOLVED · testcorp/shop · No agents online (critical)\n\
             recovered (was: 0 of 3 agents online)\nAgents: agent-1\ncleared 2023-11-14 22:43 UTC\n",
            "\n-- \nsigsci-kit agent health · corp testcorp · channel mail\n",
        ] {
            assert!(
                email.text.contains(expected),
                "{expected:?} in\n{}",
                email.text
            );
        }
        // The Slack button and the link under it are these two URLs.
        assert_eq!(slack["blocks"][1]["accessory"]["url"], ack.as_str());
        assert!(
            slack["blocks"][1]["text"]["text"]
                .as_str()
                .unwrap()
                .contains(&ack_channel)
        );
        // One pair of links: the resolved condition has none.
        assert_eq!(email.text.matches("Acknowledge").count(), 2);
        assert!(email.html.contains(&format!(
            "<a href=\"{}\">Acknowledge</a> (silences every channel)",
            escape(&ack)
        )));
        assert!(email.html.contains(&format!(
            "<a href=\"{}\">Acknowledge on mail only</a>",
            escape(&ack_channel)
        )));
        // Both ack links, and each condition's runbook (a resolved one keeps it for the review).
        assert_eq!(email.html.matches("<a href=").count(), 4);
        assert!(
            email
                .text
                .contains("Runbook: https://wiki.example/agent-health#no_agents_online\n")
        );
    }

    #[test]
    fn one_condition_is_the_subject_and_a_missed_trigger_says_so() {
        let email = message("testcorp", "mail", &[firing("www")]);
        assert_eq!(
            email.subject,
            "[FIRING] testcorp/www · No agents online: 0 of 3 agents online"
        );
        let missed = Notification {
            trigger_missed: true,
            ..resolved("www")
        };
        let email = message("testcorp", "mail", &[missed]);
        assert!(
            email
                .subject
                .starts_with("[FIRED AND RESOLVED] testcorp/www · No agents online: fired at"),
            "{}",
            email.subject
        );
        assert!(email.text.contains(
            "⚠️ FIRED AND RESOLVED · testcorp/www · No agents online (critical)\n\
             fired at 2023-11-14 22:13 UTC and recovered before it could be delivered"
        ));
        let repeat = Notification {
            repeat: true,
            ..firing("www")
        };
        let email = message("testcorp", "mail", &[repeat]);
        assert!(email.subject.starts_with("[STILL FIRING]"));
    }

    #[test]
    fn escapes_html_bounds_lists_and_keeps_the_subject_on_one_line() {
        let mut odd = firing("www");
        odd.summary = "a <b> & \"c\"\nsecond line".into();
        odd.agents = (0..25).map(|i| format!("agent-{i}")).collect();
        let email = message("testcorp", "mail", &[odd]);
        assert!(!email.subject.contains('\n'));
        assert!(email.html.contains("a &lt;b&gt; &amp; &quot;c&quot;"));
        assert!(!email.html.contains("<b>"));
        assert!(
            email.text.contains("agent-19 and 5 more\n"),
            "{}",
            email.text
        );

        let many: Vec<Notification> = (0..105)
            .map(|i| Notification {
                status: if i % 2 == 0 {
                    Status::Firing
                } else {
                    Status::Resolved
                },
                ..firing(&format!("site-{i}"))
            })
            .collect();
        let email = message("testcorp", "mail", &many);
        assert_eq!(
            email.subject,
            "🔴 53 agent health problems in testcorp, 52 resolved"
        );
        assert_eq!(email.text.matches("· No agents online (").count(), 100);
        assert!(
            email
                .text
                .contains("…and 5 more; `sigsci-kit health status` lists them all")
        );
    }

    #[test]
    fn the_login_comes_from_the_resolved_secret() {
        let login = SmtpLogin::from_secret(&SecretString::from(
            r#"{"username": "mailer", "password": "pa55"}"#,
        ))
        .unwrap();
        assert_eq!(login.username, "mailer");
        assert_eq!(login.password.expose_secret(), "pa55");
        assert!(SmtpLogin::from_secret(&SecretString::from("pa55")).is_none());
        assert!(SmtpLogin::from_secret(&SecretString::from(r#"{"username": "mailer"}"#)).is_none());
    }
}

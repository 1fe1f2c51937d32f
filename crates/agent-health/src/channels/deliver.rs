//! Sends built payloads. Grouping channels (Slack, webhook, email, console) get one request or message
//! per run; PagerDuty and Opsgenie one per condition, since each keys its incident by the condition.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::{Notification, console, email, incident_key, opsgenie, pagerduty, slack, webhook};
use crate::checks::ConditionKey;
use crate::rules::{ChannelKind, ChannelRules};
use crate::state::IncidentAction;

/// Where console channels write (standard output in the CLI and Lambda, a buffer in tests).
pub type ConsoleSink = Arc<dyn Fn(&str) + Send + Sync>;

const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// A whole SMTP session (connect, STARTTLS, login, message): lettre bounds only the connect, and a
/// server that stops answering must cost one delivery, not the run.
const SMTP_SESSION_TIMEOUT: Duration = Duration::from_secs(30);
/// Response bodies quoted in errors are cut to this many characters.
const ERROR_BODY_CHARS: usize = 200;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    #[error("channel {channel}: HTTP {status}: {body}")]
    Status {
        channel: String,
        status: u16,
        body: String,
    },
    /// Connection, timeout or TLS failure. Never carries the URL: for Slack it is the secret.
    #[error("channel {channel}: request failed: {message}")]
    Transport { channel: String, message: String },
    #[error("channel {channel}: {message}")]
    Config { channel: String, message: String },
    /// Connection, STARTTLS, certificate, login or a refusal by the server named.
    #[error("channel {channel}: SMTP server {server}: {message}")]
    Smtp {
        channel: String,
        server: String,
        message: String,
    },
}

#[derive(Clone)]
pub struct Deliverer {
    http: reqwest::Client,
    console: ConsoleSink,
    smtp_session_timeout: Duration,
}

impl Deliverer {
    pub fn new(console: ConsoleSink) -> Result<Deliverer, DeliveryError> {
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!(
                "sigsci-kit-agent-health/",
                env!("CARGO_PKG_VERSION")
            ))
            .build()
            .map_err(|error| DeliveryError::Config {
                channel: "*".into(),
                message: format!("HTTP client: {error}"),
            })?;
        Ok(Deliverer {
            http,
            console,
            smtp_session_timeout: SMTP_SESSION_TIMEOUT,
        })
    }

    /// Delivers `items` to one channel; one result per item, in order.
    /// `secret` is the channel's resolved secret (webhook URL, routing key, API key or signing key).
    pub async fn deliver(
        &self,
        channel: &ChannelRules,
        secret: Option<&SecretString>,
        delivery_id: &str,
        now: DateTime<Utc>,
        items: &[Notification],
    ) -> Vec<Result<(), DeliveryError>> {
        if items.is_empty() {
            return Vec::new();
        }
        let corp = items[0].corp.as_str();
        let name = channel.name.as_str();
        let grouped = |result: Result<(), DeliveryError>| vec![result; items.len()];
        match channel.kind {
            ChannelKind::Console => {
                (self.console)(&console::text(corp, name, items));
                grouped(Ok(()))
            }
            ChannelKind::Slack => grouped(self.slack(channel, secret, corp, items).await),
            ChannelKind::Email => grouped(self.email(channel, secret, corp, items).await),
            ChannelKind::Webhook => {
                grouped(self.webhook(channel, secret, delivery_id, now, items).await)
            }
            ChannelKind::Pagerduty => {
                let mut results = Vec::with_capacity(items.len());
                for item in items {
                    let send =
                        async |event: &Notification| self.pagerduty(channel, secret, event).await;
                    results.push(incident(item, send).await);
                }
                results
            }
            ChannelKind::Opsgenie => {
                let mut results = Vec::with_capacity(items.len());
                for item in items {
                    let send =
                        async |event: &Notification| self.opsgenie(channel, secret, event).await;
                    results.push(incident(item, send).await);
                }
                results
            }
        }
    }

    async fn slack(
        &self,
        channel: &ChannelRules,
        secret: Option<&SecretString>,
        corp: &str,
        items: &[Notification],
    ) -> Result<(), DeliveryError> {
        let webhook_url = required(channel, secret)?;
        let url = endpoint(channel, webhook_url.expose_secret())?;
        let request = self.http.post(url).json(&slack::message(corp, items));
        self.send(channel, request).await
    }

    async fn email(
        &self,
        channel: &ChannelRules,
        secret: Option<&SecretString>,
        corp: &str,
        items: &[Notification],
    ) -> Result<(), DeliveryError> {
        let login = email::SmtpLogin::from_secret(required(channel, secret)?).ok_or_else(|| {
            config(
                channel,
                "its secret does not hold the SMTP username and password",
            )
        })?;
        let host = channel
            .smtp_host
            .as_deref()
            .ok_or_else(|| config(channel, "email channel without smtp_host"))?;
        let port = channel.smtp_port.unwrap_or(email::DEFAULT_PORT);
        let server = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        let smtp_error = |error: lettre::transport::smtp::Error| DeliveryError::Smtp {
            channel: channel.name.clone(),
            server: server.clone(),
            message: sigsci::with_causes(&error),
        };
        let content = email::message(corp, &channel.name, items);
        let mailbox = |raw: &str, field: &str| {
            raw.parse::<Mailbox>()
                .map_err(|error| config(channel, &format!("{field} {raw:?}: {error}")))
        };
        let mut builder = Message::builder()
            .from(mailbox(
                channel.from.as_deref().unwrap_or_default(),
                "from",
            )?)
            .subject(content.subject);
        for to in channel.to.iter().flatten() {
            builder = builder.to(mailbox(to, "to")?);
        }
        let message = builder
            .multipart(MultiPart::alternative_plain_html(
                content.text,
                content.html,
            ))
            .map_err(|error| config(channel, &format!("cannot build the message: {error}")))?;
        // STARTTLS or nothing (`starttls_relay` is `Tls::Required`): the session ends before the
        // login when the server does not offer it, so the password never crosses the network in
        // clear. The server's certificate is checked against the platform's roots
        // (rustls-native-certs), which SSL_CERT_FILE or SSL_CERT_DIR replace for a private CA
        // (internal relays, the tests).
        let transport = AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host)
            .map_err(smtp_error)?
            .port(port)
            .credentials(Credentials::new(
                login.username,
                login.password.expose_secret().to_string(),
            ))
            .timeout(Some(REQUEST_TIMEOUT))
            .build();
        match tokio::time::timeout(self.smtp_session_timeout, transport.send(message)).await {
            Ok(sent) => sent.map(|_| ()).map_err(smtp_error),
            Err(_) => Err(DeliveryError::Smtp {
                channel: channel.name.clone(),
                server: server.clone(),
                message: format!(
                    "no answer within {:?}; the session was abandoned",
                    self.smtp_session_timeout
                ),
            }),
        }
    }

    async fn webhook(
        &self,
        channel: &ChannelRules,
        secret: Option<&SecretString>,
        delivery_id: &str,
        now: DateTime<Utc>,
        items: &[Notification],
    ) -> Result<(), DeliveryError> {
        let key = required(channel, secret)?;
        let target = channel
            .url
            .as_deref()
            .ok_or_else(|| config(channel, "webhook channel without url"))?;
        let url = endpoint(channel, target)?;
        let body = webhook::body(&items[0].corp, delivery_id, now, items)
            .map_err(|error| config(channel, &format!("cannot encode the body: {error}")))?;
        let timestamp = now.timestamp();
        let request = self
            .http
            .post(url)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(webhook::TIMESTAMP_HEADER, timestamp.to_string())
            .header(
                webhook::SIGNATURE_HEADER,
                webhook::signature(key, timestamp, &body),
            )
            .body(body);
        self.send(channel, request).await
    }

    async fn pagerduty(
        &self,
        channel: &ChannelRules,
        secret: Option<&SecretString>,
        item: &Notification,
    ) -> Result<(), DeliveryError> {
        let routing_key = required(channel, secret)?;
        self.pagerduty_send(channel, pagerduty::event(routing_key, item))
            .await
    }

    async fn pagerduty_send(
        &self,
        channel: &ChannelRules,
        event: serde_json::Value,
    ) -> Result<(), DeliveryError> {
        let base = channel
            .base_url
            .as_deref()
            .unwrap_or(pagerduty::DEFAULT_BASE_URL);
        let url = format!("{}{}", base.trim_end_matches('/'), pagerduty::ENQUEUE_PATH);
        self.send(channel, self.http.post(url).json(&event)).await
    }

    async fn opsgenie(
        &self,
        channel: &ChannelRules,
        secret: Option<&SecretString>,
        item: &Notification,
    ) -> Result<(), DeliveryError> {
        self.opsgenie_send(channel, secret, opsgenie::request(item))
            .await
    }

    async fn opsgenie_send(
        &self,
        channel: &ChannelRules,
        secret: Option<&SecretString>,
        (segments, query, body): opsgenie::Request,
    ) -> Result<(), DeliveryError> {
        let api_key = required(channel, secret)?;
        let base = channel
            .base_url
            .as_deref()
            .unwrap_or(opsgenie::DEFAULT_BASE_URL);
        let mut url: url::Url = base
            .parse()
            .map_err(|_| config(channel, "base_url is not a URL"))?;
        url.path_segments_mut()
            .map_err(|_| config(channel, "base_url cannot take a path"))?
            .pop_if_empty()
            .extend(&segments);
        if let Some((name, value)) = query {
            url.query_pairs_mut().append_pair(name, value);
        }
        let request = self
            .http
            .post(url)
            .header(
                http::header::AUTHORIZATION,
                format!("GenieKey {}", api_key.expose_secret()),
            )
            .json(&body);
        self.send(channel, request).await
    }

    /// Acknowledges (or un-acknowledges) the incident a PagerDuty or Opsgenie channel opened for
    /// `check`. Other channels have no incident; PagerDuty cannot un-acknowledge, so that is a
    /// configuration error the caller never asks for.
    pub async fn incident(
        &self,
        channel: &ChannelRules,
        secret: Option<&SecretString>,
        corp: &str,
        check: &ConditionKey,
        action: IncidentAction,
        by: &str,
    ) -> Result<(), DeliveryError> {
        let key = incident_key(corp, check);
        match (channel.kind, action) {
            (ChannelKind::Pagerduty, IncidentAction::Acknowledge) => {
                let routing_key = required(channel, secret)?;
                self.pagerduty_send(channel, pagerduty::acknowledge_event(routing_key, &key))
                    .await
            }
            (ChannelKind::Opsgenie, action) => {
                self.opsgenie_send(
                    channel,
                    secret,
                    opsgenie::incident_request(&key, action, by),
                )
                .await
            }
            _ => Err(config(
                channel,
                "has no incident that can take this acknowledgement change",
            )),
        }
    }

    async fn send(
        &self,
        channel: &ChannelRules,
        request: reqwest::RequestBuilder,
    ) -> Result<(), DeliveryError> {
        let response = request
            .send()
            .await
            .map_err(|error| transport(channel, error))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let body = response.text().await.unwrap_or_default();
        Err(DeliveryError::Status {
            channel: channel.name.clone(),
            status: status.as_u16(),
            body: super::truncate(body.trim(), ERROR_BODY_CHARS),
        })
    }
}

/// One condition to PagerDuty or Opsgenie: a trigger the channel missed is opened first, so that
/// the resolution closes an incident people can see.
async fn incident(
    item: &Notification,
    send: impl AsyncFn(&Notification) -> Result<(), DeliveryError>,
) -> Result<(), DeliveryError> {
    if let Some(trigger) = item.missed_trigger() {
        send(&trigger).await?;
    }
    send(item).await
}

fn required<'a>(
    channel: &ChannelRules,
    secret: Option<&'a SecretString>,
) -> Result<&'a SecretString, DeliveryError> {
    secret.ok_or_else(|| config(channel, "its secret was not resolved"))
}

fn config(channel: &ChannelRules, message: &str) -> DeliveryError {
    DeliveryError::Config {
        channel: channel.name.clone(),
        message: message.to_string(),
    }
}

fn transport(channel: &ChannelRules, error: reqwest::Error) -> DeliveryError {
    // Slack webhook URLs are secrets: strip the URL before the error is logged or stored.
    let error = error.without_url();
    let mut message = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        message.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    DeliveryError::Transport {
        channel: channel.name.clone(),
        message,
    }
}

/// The channel's target URL with the scheme, host and port (and any path prefix) of `base_url`, if set.
fn endpoint(channel: &ChannelRules, target: &str) -> Result<url::Url, DeliveryError> {
    // Never echo `target` in errors: for Slack it is the secret webhook URL.
    let mut url: url::Url = target
        .trim()
        .parse()
        .map_err(|_| config(channel, "the endpoint URL is not a valid URL"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(config(channel, "the endpoint URL must be http or https"));
    }
    let Some(base) = &channel.base_url else {
        return Ok(url);
    };
    let base: url::Url = base
        .parse()
        .map_err(|_| config(channel, "base_url is not a URL"))?;
    let path = format!("{}{}", base.path().trim_end_matches('/'), url.path());
    let query = url.query().map(str::to_string);
    url = base;
    url.set_path(&path);
    url.set_query(query.as_deref());
    Ok(url)
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::channels::fixtures::firing;
    use crate::rules::Rules;

    fn channel(base_url: Option<&str>) -> ChannelRules {
        let rules = Rules::parse(
            "channels:\n  - {name: s, type: slack, secret: env:S, ack_enabled: false}\n",
            "t",
        )
        .unwrap();
        ChannelRules {
            base_url: base_url.map(str::to_string),
            ..rules.channels[0].clone()
        }
    }

    #[test]
    fn base_url_replaces_the_origin_and_keeps_path_and_query() {
        let target = "https://hooks.slack.example/services/T0/B0/XYZ?x=1";
        assert_eq!(endpoint(&channel(None), target).unwrap().as_str(), target);
        assert_eq!(
            endpoint(&channel(Some("http://127.0.0.1:8080/slack/")), target)
                .unwrap()
                .as_str(),
            "http://127.0.0.1:8080/slack/services/T0/B0/XYZ?x=1"
        );
    }

    #[test]
    fn errors_never_echo_the_endpoint() {
        let error = endpoint(&channel(None), "not a url with secret T0KEN").unwrap_err();
        assert!(!error.to_string().contains("T0KEN"), "{error}");
    }

    #[tokio::test]
    async fn an_smtp_server_that_stops_answering_costs_one_delivery_not_the_run() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            socket.write_all(b"220 mute.test ESMTP\r\n").await.unwrap();
            // Takes the EHLO and never answers it.
            let mut buffer = [0u8; 1024];
            while socket.read(&mut buffer).await.is_ok_and(|n| n > 0) {}
        });
        let rules = Rules::parse(
            &format!(
                "channels:\n  - {{name: mail, type: email, secret: env:S, ack_enabled: false, \
                 smtp_host: 127.0.0.1, smtp_port: {port}, from: a@example.com, to: b@example.com}}\n"
            ),
            "t",
        )
        .unwrap();
        let deliverer = Deliverer {
            smtp_session_timeout: Duration::from_millis(300),
            ..Deliverer::new(Arc::new(|_: &str| {})).unwrap()
        };
        let login = SecretString::from(r#"{"username": "u", "password": "p4ss-w0rd"}"#);
        let started = std::time::Instant::now();
        let results = deliverer
            .deliver(
                &rules.channels[0],
                Some(&login),
                "d1",
                Utc::now(),
                &[firing("www"), firing("api")],
            )
            .await;
        assert!(started.elapsed() < Duration::from_secs(5));
        let error = DeliveryError::Smtp {
            channel: "mail".into(),
            server: format!("127.0.0.1:{port}"),
            message: "no answer within 300ms; the session was abandoned".into(),
        };
        assert_eq!(results, vec![Err(error.clone()), Err(error)]);
    }
}

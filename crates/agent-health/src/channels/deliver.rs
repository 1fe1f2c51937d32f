//! Sends built payloads. Grouping channels (Slack, webhook, console) get one request per run; PagerDuty
//! and Opsgenie one per condition, since each keys its incident by the condition.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};

use super::{Notification, console, opsgenie, pagerduty, slack, webhook};
use crate::rules::{ChannelKind, ChannelRules};

/// Where console channels write (standard output in the CLI and Lambda, a buffer in tests).
pub type ConsoleSink = Arc<dyn Fn(&str) + Send + Sync>;

const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
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
}

#[derive(Clone)]
pub struct Deliverer {
    http: reqwest::Client,
    console: ConsoleSink,
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
        Ok(Deliverer { http, console })
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
        let base = channel
            .base_url
            .as_deref()
            .unwrap_or(pagerduty::DEFAULT_BASE_URL);
        let url = format!("{}{}", base.trim_end_matches('/'), pagerduty::ENQUEUE_PATH);
        let request = self
            .http
            .post(url)
            .json(&pagerduty::event(routing_key, item));
        self.send(channel, request).await
    }

    async fn opsgenie(
        &self,
        channel: &ChannelRules,
        secret: Option<&SecretString>,
        item: &Notification,
    ) -> Result<(), DeliveryError> {
        let api_key = required(channel, secret)?;
        let base = channel
            .base_url
            .as_deref()
            .unwrap_or(opsgenie::DEFAULT_BASE_URL);
        let (segments, query, body) = opsgenie::request(item);
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
    use super::*;
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
}

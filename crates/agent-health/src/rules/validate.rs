//! Rules that parse but cannot work: out-of-range values, missing or misplaced channel settings,
//! duplicate names. The first problem is reported, with the path of its key.

use std::collections::BTreeSet;

use super::{ChannelKind, ChannelRules, Rules, RulesError};
use crate::checks::CheckRules;

impl Rules {
    pub(super) fn validate(&self) -> Result<(), RulesError> {
        let concurrency = self.evaluation.concurrency;
        if !(1..=64).contains(&concurrency) {
            return Err(RulesError::at(
                "evaluation.concurrency",
                format!("must be 1..=64, got {concurrency}"),
            ));
        }
        validate_checks(&self.checks, "checks")?;
        self.links.validate()?;
        for (site, overrides) in &self.sites {
            if !sigsci::is_short_name(site) {
                return Err(RulesError::at(
                    format!("sites.{site}"),
                    format!(
                        "site short names use only {}",
                        sigsci::SHORT_NAME_CHARACTERS
                    ),
                ));
            }
            validate_checks(&overrides.checks, &format!("sites.{site}.checks"))?;
        }
        let mut names = BTreeSet::new();
        for (index, channel) in self.channels.iter().enumerate() {
            let path = format!("channels[{index}]");
            validate_channel(channel, &path)?;
            if !names.insert(channel.name.as_str()) {
                return Err(RulesError::at(
                    format!("{path}.name"),
                    format!("duplicate channel name {:?}", channel.name),
                ));
            }
        }
        if let Some(base_url) = &self.ack.base_url {
            validate_url(base_url, "ack.base_url")?;
        }
        if self.needs_ack_links() {
            let needing = self
                .channels
                .iter()
                .find(|c| c.ack_enabled)
                .map(|c| c.name.as_str())
                .unwrap_or_default();
            if self.ack.base_url.is_none() {
                return Err(RulesError::at(
                    "ack.base_url",
                    format!(
                        "required: channel {needing:?} carries acknowledgement links (or set its ack_enabled: false)"
                    ),
                ));
            }
            if self.ack.secret.is_none() {
                return Err(RulesError::at(
                    "ack.secret",
                    format!("required to sign the acknowledgement links of channel {needing:?}"),
                ));
            }
        }
        Ok(())
    }
}

fn validate_checks(checks: &CheckRules, prefix: &str) -> Result<(), RulesError> {
    match checks.refused_threshold() {
        Some(refused) => Err(RulesError::at(
            format!("{prefix}.{}", refused.path),
            refused.message,
        )),
        None => Ok(()),
    }
}

fn validate_channel(channel: &ChannelRules, path: &str) -> Result<(), RulesError> {
    let name = &channel.name;
    let name_ok = !name.is_empty()
        && name.len() <= 32
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if !name_ok {
        return Err(RulesError::at(
            format!("{path}.name"),
            format!("{name:?} is not a channel name: use 1-32 of a-z, 0-9, '_' and '-'"),
        ));
    }
    let kind = channel.kind.as_str();
    match channel.kind {
        ChannelKind::Slack
        | ChannelKind::Pagerduty
        | ChannelKind::Opsgenie
        | ChannelKind::Webhook
        | ChannelKind::Email => {
            if channel.secret.is_none() {
                let what = match channel.kind {
                    ChannelKind::Slack => "the webhook URL",
                    ChannelKind::Pagerduty => "the routing key",
                    ChannelKind::Opsgenie => "the API key",
                    ChannelKind::Email => "the SMTP username and password",
                    _ => "the signing key",
                };
                return Err(RulesError::at(
                    format!("{path}.secret"),
                    format!("required for {kind} channels ({what})"),
                ));
            }
        }
        ChannelKind::Console => {
            if channel.secret.is_some() {
                return Err(RulesError::at(
                    format!("{path}.secret"),
                    "console channels take no secret",
                ));
            }
        }
    }
    match (&channel.url, channel.kind) {
        (Some(url), ChannelKind::Webhook) => validate_url(url, &format!("{path}.url"))?,
        (None, ChannelKind::Webhook) => {
            return Err(RulesError::at(
                format!("{path}.url"),
                "required for webhook channels",
            ));
        }
        (Some(_), _) => {
            return Err(RulesError::at(
                format!("{path}.url"),
                format!("only webhook channels take a url, not {kind}"),
            ));
        }
        (None, _) => {}
    }
    validate_email(channel, path)?;
    if let Some(base_url) = &channel.base_url {
        if matches!(channel.kind, ChannelKind::Console | ChannelKind::Email) {
            return Err(RulesError::at(
                format!("{path}.base_url"),
                format!("{kind} channels have no HTTP endpoint"),
            ));
        }
        validate_url(base_url, &format!("{path}.base_url"))?;
    }
    if let Some(checks) = &channel.checks
        && checks.is_empty()
    {
        return Err(RulesError::at(
            format!("{path}.checks"),
            "an empty list would silence the channel; remove the channel instead",
        ));
    }
    Ok(())
}

/// The SMTP settings: required by email channels, refused by the others.
fn validate_email(channel: &ChannelRules, path: &str) -> Result<(), RulesError> {
    let kind = channel.kind.as_str();
    if channel.kind != ChannelKind::Email {
        let misplaced = [
            ("smtp_host", channel.smtp_host.is_some()),
            ("smtp_port", channel.smtp_port.is_some()),
            ("from", channel.from.is_some()),
            ("to", channel.to.is_some()),
        ];
        return match misplaced.iter().find(|(_, set)| *set) {
            Some((field, _)) => Err(RulesError::at(
                format!("{path}.{field}"),
                format!("only email channels take {field}, not {kind}"),
            )),
            None => Ok(()),
        };
    }
    let host = channel.smtp_host.as_deref().unwrap_or("");
    if host.trim().is_empty() {
        return Err(RulesError::at(
            format!("{path}.smtp_host"),
            "required for email channels (the SMTP server's host name)",
        ));
    }
    // A bare host: the port has its own key, and the scheme is always SMTP with STARTTLS.
    let ip = host.parse::<std::net::IpAddr>().is_ok();
    if !ip && (host.contains(['/', ':', '@', ' ']) || url::Host::parse(host).is_err()) {
        return Err(RulesError::at(
            format!("{path}.smtp_host"),
            format!("{host:?} is not a host name (no scheme or port: set smtp_port for the port)"),
        ));
    }
    match channel.smtp_port {
        Some(0) => {
            return Err(RulesError::at(
                format!("{path}.smtp_port"),
                "must be 1-65535",
            ));
        }
        Some(465) => {
            return Err(RulesError::at(
                format!("{path}.smtp_port"),
                "465 is SMTPS (TLS from the first byte); email channels upgrade with STARTTLS: \
                 use the server's submission port (587, the default)",
            ));
        }
        _ => {}
    }
    let from = channel.from.as_deref().unwrap_or("");
    if from.trim().is_empty() {
        return Err(RulesError::at(
            format!("{path}.from"),
            "required for email channels (the sender address)",
        ));
    }
    validate_mailbox(from, &format!("{path}.from"))?;
    let to = channel.to.as_deref().unwrap_or_default();
    if to.is_empty() {
        return Err(RulesError::at(
            format!("{path}.to"),
            "required for email channels: one recipient address or a list",
        ));
    }
    for (index, address) in to.iter().enumerate() {
        validate_mailbox(address, &format!("{path}.to[{index}]"))?;
    }
    Ok(())
}

fn validate_mailbox(raw: &str, path: &str) -> Result<(), RulesError> {
    raw.parse::<lettre::message::Mailbox>()
        .map(|_| ())
        .map_err(|error| {
            RulesError::at(
                path,
                format!(
                    "{raw:?} is not an email address ({error}): write a@example.com or Name <a@example.com>"
                ),
            )
        })
}

fn validate_url(raw: &str, path: &str) -> Result<(), RulesError> {
    let parsed: url::Url = raw
        .parse()
        .map_err(|e| RulesError::at(path, format!("{raw:?} is not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(RulesError::at(
            path,
            format!("{raw:?} must be an http or https URL"),
        ));
    }
    Ok(())
}

//! The Lambda's configuration, event and handler; `bin/bootstrap.rs` only wires them to the runtime.

use std::sync::Arc;

use kit_storage::{ObjectStore, S3Location, SecretSource};
use serde::Deserialize;
use sigsci::Client;
use tokio::time::Instant;

use crate::clock::SharedClock;
use crate::error::{ExportError, Result};
use crate::report::RunReport;
use crate::run::{DEFAULT_GZIP_LEVEL, ExportRequest, ExportSettings, Exporter, SiteSelection};
use crate::window::parse_time;

pub const DEFAULT_API_URL: &str = "https://dashboard.signalsciences.net";

/// From the function's environment.
#[derive(Clone, Debug)]
pub struct LambdaConfig {
    /// `SIGSCI_CORP`
    pub corp: String,
    /// `SIGSCI_API_URL` (default: the production API)
    pub api_url: String,
    /// `SIGSCI_SECRET_NAME`: Secrets Manager secret `{"email": …, "token": …}`
    pub secret_name: String,
    /// `FEED_DESTINATION`: `s3://bucket/prefix`
    pub destination: String,
    /// `FEED_S3_ENDPOINT`: an S3-compatible endpoint instead of AWS
    pub s3_endpoint: Option<String>,
    /// `SIGSCI_SITES`: comma-separated; default every site of the corp
    pub sites: SiteSelection,
    /// `FEED_GZIP_LEVEL` (0-9)
    pub settings: ExportSettings,
}

fn config_error(setting: &str, message: impl Into<String>) -> ExportError {
    ExportError::Config {
        setting: setting.to_string(),
        message: message.into(),
    }
}

pub fn parse_sites(raw: &str) -> SiteSelection {
    let sites: Vec<String> = raw
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    if sites.is_empty() {
        SiteSelection::All
    } else {
        SiteSelection::Only(sites)
    }
}

impl LambdaConfig {
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<LambdaConfig> {
        let required = |name: &str| {
            var(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
                .ok_or_else(|| config_error(name, "is not set"))
        };
        let corp = required("SIGSCI_CORP")?;
        if !corp
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_.-".contains(c))
        {
            return Err(config_error(
                "SIGSCI_CORP",
                format!("{corp:?} is not a corp short name ([0-9a-z_.-]+)"),
            ));
        }
        let destination = required("FEED_DESTINATION")?;
        S3Location::parse(&destination)
            .map_err(|e| config_error("FEED_DESTINATION", e.to_string()))?;
        let mut settings = ExportSettings::default();
        if let Some(level) = var("FEED_GZIP_LEVEL").filter(|v| !v.trim().is_empty()) {
            settings.pipeline.gzip_level = level
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|l| *l <= 9)
                .ok_or_else(|| {
                    config_error(
                        "FEED_GZIP_LEVEL",
                        format!("{level:?} is not a gzip level 0-9 (default {DEFAULT_GZIP_LEVEL})"),
                    )
                })?;
        }
        Ok(LambdaConfig {
            corp,
            api_url: var("SIGSCI_API_URL")
                .filter(|v| !v.trim().is_empty())
                .unwrap_or_else(|| DEFAULT_API_URL.to_string()),
            secret_name: required("SIGSCI_SECRET_NAME")?,
            destination,
            s3_endpoint: var("FEED_S3_ENDPOINT").filter(|v| !v.trim().is_empty()),
            sites: parse_sites(&var("SIGSCI_SITES").unwrap_or_default()),
            settings,
        })
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum TimeValue {
    Epoch(i64),
    Text(String),
}

/// The scheduler's event (any JSON; its fields are ignored) or a manual backfill
/// `{"sites": [...], "from": ..., "until": ...}` with RFC3339 or epoch times.
#[derive(Deserialize, Default)]
struct Payload {
    #[serde(default)]
    sites: Option<Vec<String>>,
    #[serde(default)]
    from: Option<TimeValue>,
    #[serde(default)]
    until: Option<TimeValue>,
}

pub fn parse_event(
    event: &serde_json::Value,
    default_sites: &SiteSelection,
) -> Result<ExportRequest> {
    let payload: Payload = if event.is_object() {
        serde_json::from_value(event.clone())
            .map_err(|e| config_error("event", format!("not a feed export request: {e}")))?
    } else {
        Payload::default()
    };
    let time = |name: &str, value: Option<TimeValue>| -> Result<Option<i64>> {
        match value {
            None => Ok(None),
            Some(TimeValue::Epoch(epoch)) => parse_time(name, &epoch.to_string()).map(Some),
            Some(TimeValue::Text(text)) => parse_time(name, &text).map(Some),
        }
    };
    let range = match (
        time("event.from", payload.from)?,
        time("event.until", payload.until)?,
    ) {
        (Some(from), Some(until)) => Some((from, until)),
        (None, None) => None,
        _ => {
            return Err(config_error(
                "event",
                "give both \"from\" and \"until\", or neither",
            ));
        }
    };
    let sites = match payload.sites {
        Some(sites) if !sites.is_empty() => SiteSelection::Only(sites),
        _ => default_sites.clone(),
    };
    Ok(ExportRequest { sites, range })
}

/// One invocation: credentials from the secret, then a run until `deadline`.
pub async fn handle(
    event: &serde_json::Value,
    deadline: Option<Instant>,
    store: Arc<dyn ObjectStore>,
    secrets: &dyn SecretSource,
    config: &LambdaConfig,
    clock: SharedClock,
) -> Result<RunReport> {
    let request = parse_event(event, &config.sites)?;
    let credentials = secrets
        .api_credentials(&config.secret_name)
        .await
        .map_err(|e| config_error("SIGSCI_SECRET_NAME", e.to_string()))?;
    let client = Client::builder(config.api_url.clone(), config.corp.clone(), credentials)
        .user_agent(concat!(
            "sigsci-kit-feed-export/",
            env!("CARGO_PKG_VERSION")
        ))
        .build()
        .map_err(|e| config_error("SIGSCI_API_URL", e.to_string()))?;
    let exporter = Exporter::new(client, store, clock).with_settings(config.settings.clone());
    exporter.run(&request, deadline).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |key| map.get(key).cloned()
    }

    #[test]
    fn config_errors_name_the_setting() {
        let full = [
            ("SIGSCI_CORP", "acme"),
            ("SIGSCI_SECRET_NAME", "sigsci/feed"),
            ("FEED_DESTINATION", "s3://feed-bucket/x"),
        ];
        assert!(LambdaConfig::from_env(env(&full)).is_ok());
        for (drop, setting) in [
            ("SIGSCI_CORP", "SIGSCI_CORP"),
            ("SIGSCI_SECRET_NAME", "SIGSCI_SECRET_NAME"),
            ("FEED_DESTINATION", "FEED_DESTINATION"),
        ] {
            let partial: Vec<_> = full.iter().copied().filter(|(k, _)| *k != drop).collect();
            let error = LambdaConfig::from_env(env(&partial))
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(error.starts_with(setting), "{error}");
        }
        let bad_bucket = [
            ("SIGSCI_CORP", "acme"),
            ("SIGSCI_SECRET_NAME", "s"),
            ("FEED_DESTINATION", "s3://Bad_Bucket"),
        ];
        let error = LambdaConfig::from_env(env(&bad_bucket))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            error.contains("FEED_DESTINATION") && error.contains("Bad_Bucket"),
            "{error}"
        );
    }

    #[test]
    fn events_are_scheduled_or_backfills() -> Result<()> {
        let scheduled = serde_json::json!({"version": "0", "detail-type": "Scheduled Event", "source": "aws.scheduler", "detail": {}});
        assert_eq!(
            parse_event(&scheduled, &SiteSelection::All)?,
            ExportRequest {
                sites: SiteSelection::All,
                range: None
            }
        );
        let manual = serde_json::json!({"sites": ["www"], "from": "2024-05-01T10:00:00Z", "until": 1_714_564_800});
        let request = parse_event(&manual, &SiteSelection::All)?;
        assert_eq!(
            request,
            ExportRequest {
                sites: SiteSelection::Only(vec!["www".into()]),
                range: Some((1_714_557_600, 1_714_564_800))
            }
        );
        assert!(
            parse_event(
                &serde_json::json!({"from": 1_714_557_600}),
                &SiteSelection::All
            )
            .is_err()
        );
        assert!(
            parse_event(
                &serde_json::json!({"from": 1_714_557_601, "until": 1_714_564_800}),
                &SiteSelection::All
            )
            .is_err()
        );
        Ok(())
    }
}

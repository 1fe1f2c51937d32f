//! The deployed job: its settings from the environment (one vocabulary with the other functions,
//! listed in docs/interfaces.md), the dependencies built from them, and one run per event. The
//! Lambda shell (`functions/feed-export`) adds only the runtime: deadline, metrics, result.

use std::sync::Arc;

use kit_storage::{ObjectStore, S3Location, SecretSource, SecretsManager};
use serde::Deserialize;
use sigsci::Client;
use tokio::time::Instant;

use crate::clock::{SharedClock, system_clock};
use crate::error::{ExportError, Result};
use crate::exporter::{DEFAULT_GZIP_LEVEL, ExportRequest, ExportSettings, Exporter, SiteSelection};
use crate::ocsf_output::{Format, Layout, OcsfOutput, Outputs, default_location};
use crate::report::RunReport;
use crate::window::{check_range, parse_time};

/// Every variable the function reads (docs/interfaces.md lists the same; a test keeps them equal).
/// The AWS SDK reads its own (`AWS_REGION`, `AWS_ENDPOINT_URL`, credentials) besides.
pub const VARIABLES: [&str; 13] = [
    CORP,
    API_URL,
    CREDENTIALS_SECRET,
    FEED_LOCATION,
    SITES,
    GZIP_LEVEL,
    FORMAT,
    OCSF_LOCATION,
    OCSF_LAYOUT,
    OCSF_SOURCE,
    OCSF_REGION,
    OCSF_ACCOUNT_ID,
    OCSF_ROLE_ARN,
];
const CORP: &str = "SIGSCI_CORP";
const API_URL: &str = "SIGSCI_API_URL";
const CREDENTIALS_SECRET: &str = "SIGSCI_KIT_CREDENTIALS_SECRET";
const FEED_LOCATION: &str = "SIGSCI_KIT_FEED_LOCATION";
const SITES: &str = "SIGSCI_KIT_SITES";
const GZIP_LEVEL: &str = "SIGSCI_KIT_FEED_GZIP_LEVEL";
const FORMAT: &str = "SIGSCI_KIT_FEED_FORMAT";
const OCSF_LOCATION: &str = "SIGSCI_KIT_OCSF_LOCATION";
const OCSF_LAYOUT: &str = "SIGSCI_KIT_OCSF_LAYOUT";
const OCSF_SOURCE: &str = "SIGSCI_KIT_OCSF_SOURCE";
const OCSF_REGION: &str = "SIGSCI_KIT_OCSF_REGION";
const OCSF_ACCOUNT_ID: &str = "SIGSCI_KIT_OCSF_ACCOUNT_ID";
const OCSF_ROLE_ARN: &str = "SIGSCI_KIT_OCSF_ROLE_ARN";

/// The function's settings.
#[derive(Clone, Debug)]
pub struct Env {
    /// `SIGSCI_CORP`
    pub corp: String,
    /// `SIGSCI_API_URL` (default: the production API)
    pub api_url: String,
    /// `SIGSCI_KIT_CREDENTIALS_SECRET`: Secrets Manager secret `{"email": …, "token": …}`
    pub credentials_secret: String,
    /// `SIGSCI_KIT_FEED_LOCATION`: `s3://bucket/prefix`
    pub feed_location: String,
    /// `SIGSCI_KIT_SITES`: comma-separated; default every site of the corp
    pub sites: SiteSelection,
    /// `SIGSCI_KIT_FEED_GZIP_LEVEL` (0-9)
    pub settings: ExportSettings,
    /// `SIGSCI_KIT_FEED_FORMAT`: ndjson (default), ocsf-parquet or both
    pub format: Format,
    /// Where the OCSF Parquet goes, when the format has it
    pub ocsf: Option<OcsfSettings>,
}

/// The OCSF output's settings.
#[derive(Clone, Debug)]
pub struct OcsfSettings {
    /// `SIGSCI_KIT_OCSF_LOCATION` (default `{feed location}/ocsf`)
    pub location: String,
    /// `SIGSCI_KIT_OCSF_LAYOUT`, `_SOURCE`, `_REGION`, `_ACCOUNT_ID`
    pub layout: Layout,
    /// `SIGSCI_KIT_OCSF_ROLE_ARN`: the role the OCSF store's S3 client assumes (a Security Lake's
    /// bucket is usually another account's, written through a role it grants)
    pub role_arn: Option<String>,
}

fn config_error(setting: &str, message: impl Into<String>) -> ExportError {
    ExportError::Config {
        setting: setting.to_string(),
        message: message.into(),
    }
}

/// `arn:PARTITION:iam::ACCOUNT:role/NAME` (a typo would only show as STS's refusal mid-run).
pub fn is_role_arn(arn: &str) -> bool {
    let fields: Vec<&str> = arn.splitn(6, ':').collect();
    matches!(fields[..], ["arn", partition, "iam", "", account, resource]
        if !partition.is_empty()
            && account.len() == 12
            && account.bytes().all(|b| b.is_ascii_digit())
            && resource.strip_prefix("role/").is_some_and(|name| !name.is_empty()))
}

fn parse_sites(raw: &str) -> SiteSelection {
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

impl Env {
    /// From an environment lookup (`std::env::var` in Lambda); a blank value counts as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Env> {
        let var = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let required = |name: &str| var(name).ok_or_else(|| config_error(name, "is not set"));
        let corp = required(CORP)?;
        if !sigsci::is_short_name(&corp) {
            return Err(config_error(
                CORP,
                format!(
                    "{corp:?} is not a corp short name ({})",
                    sigsci::SHORT_NAME_CHARACTERS
                ),
            ));
        }
        let feed_location = required(FEED_LOCATION)?;
        S3Location::parse(&feed_location)
            .map_err(|e| config_error(FEED_LOCATION, e.to_string()))?;
        let mut settings = ExportSettings::default();
        if let Some(level) = var(GZIP_LEVEL) {
            settings.pipeline.gzip_level = level
                .parse::<u32>()
                .ok()
                .filter(|l| *l <= 9)
                .ok_or_else(|| {
                    config_error(
                        GZIP_LEVEL,
                        format!("{level:?} is not a gzip level 0-9 (default {DEFAULT_GZIP_LEVEL})"),
                    )
                })?;
        }
        let format = match var(FORMAT) {
            Some(text) => text
                .parse::<Format>()
                .map_err(|m| config_error(FORMAT, m))?,
            None => Format::default(),
        };
        let ocsf = if format.ocsf() {
            let layout = Layout::parse(
                &var(OCSF_LAYOUT).unwrap_or_else(|| "hive".to_string()),
                var(OCSF_SOURCE).as_deref(),
                var(OCSF_REGION).as_deref(),
                var(OCSF_ACCOUNT_ID).as_deref(),
                [OCSF_LAYOUT, OCSF_SOURCE, OCSF_REGION, OCSF_ACCOUNT_ID],
            )?;
            let location = var(OCSF_LOCATION).unwrap_or_else(|| default_location(&feed_location));
            S3Location::parse(&location).map_err(|e| config_error(OCSF_LOCATION, e.to_string()))?;
            let role_arn = var(OCSF_ROLE_ARN);
            if let Some(arn) = role_arn.as_ref().filter(|arn| !is_role_arn(arn)) {
                return Err(config_error(
                    OCSF_ROLE_ARN,
                    format!(
                        "{arn:?} is not an IAM role ARN (arn:PARTITION:iam::ACCOUNT:role/NAME)"
                    ),
                ));
            }
            Some(OcsfSettings {
                location,
                layout,
                role_arn,
            })
        } else {
            None
        };
        Ok(Env {
            format,
            ocsf,
            corp,
            api_url: var(API_URL).unwrap_or_else(|| sigsci::DEFAULT_API_URL.to_string()),
            credentials_secret: required(CREDENTIALS_SECRET)?,
            feed_location,
            sites: parse_sites(&var(SITES).unwrap_or_default()),
            settings,
        })
    }
}

/// What a container keeps between invocations.
pub struct Deps {
    pub env: Env,
    store: Arc<dyn ObjectStore>,
    secrets: Arc<dyn SecretSource>,
    clock: SharedClock,
}

impl Deps {
    /// The real dependencies: S3 and Secrets Manager as the AWS environment configures them.
    pub fn new(mut env: Env) -> Result<Deps> {
        let store = kit_storage::open(&env.feed_location, None)
            .map_err(|e| config_error(FEED_LOCATION, e.to_string()))?;
        let ocsf = match &env.ocsf {
            Some(ocsf) => Some(OcsfOutput {
                store: kit_storage::open_as(&ocsf.location, None, ocsf.role_arn.as_deref())
                    .map_err(|e| config_error(OCSF_LOCATION, e.to_string()))?,
                layout: ocsf.layout.clone(),
            }),
            None => None,
        };
        env.settings.pipeline.outputs = Outputs::new(env.format, ocsf)?;
        Ok(Deps::with(
            env,
            store,
            Arc::new(SecretsManager::new(None)),
            system_clock(),
        ))
    }

    /// Given dependencies (tests).
    pub fn with(
        env: Env,
        store: Arc<dyn ObjectStore>,
        secrets: Arc<dyn SecretSource>,
        clock: SharedClock,
    ) -> Deps {
        Deps {
            env,
            store,
            secrets,
            clock,
        }
    }

    /// One invocation: the event's request, credentials from the secret, then a run until
    /// `deadline`.
    pub async fn run(
        &self,
        event: &serde_json::Value,
        deadline: Option<Instant>,
    ) -> Result<RunReport> {
        let request = parse_event(event, &self.env.sites)?;
        if let Some((from, until)) = request.range {
            check_range(from, until, self.clock.now(), ["event.from", "event.until"])?;
        }
        let credentials = self
            .secrets
            .api_credentials(&self.env.credentials_secret)
            .await
            .map_err(|e| config_error(CREDENTIALS_SECRET, e.to_string()))?;
        let client = Client::builder(self.env.api_url.clone(), self.env.corp.clone(), credentials)
            .user_agent(concat!(
                "sigsci-kit-feed-export/",
                env!("CARGO_PKG_VERSION")
            ))
            .build()
            .map_err(|e| config_error(API_URL, e.to_string()))?;
        let exporter = Exporter::new(client, Arc::clone(&self.store), self.clock.clone())
            .with_settings(self.env.settings.clone());
        exporter.run(&request, deadline).await
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
            ("SIGSCI_KIT_CREDENTIALS_SECRET", "sigsci/feed"),
            ("SIGSCI_KIT_FEED_LOCATION", "s3://feed-bucket/x"),
        ];
        assert!(Env::from_lookup(env(&full)).is_ok());
        for (drop, setting) in [
            ("SIGSCI_CORP", "SIGSCI_CORP"),
            (
                "SIGSCI_KIT_CREDENTIALS_SECRET",
                "SIGSCI_KIT_CREDENTIALS_SECRET",
            ),
            ("SIGSCI_KIT_FEED_LOCATION", "SIGSCI_KIT_FEED_LOCATION"),
        ] {
            let partial: Vec<_> = full.iter().copied().filter(|(k, _)| *k != drop).collect();
            let error = Env::from_lookup(env(&partial))
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(error.starts_with(setting), "{error}");
        }
        let bad_bucket = [
            ("SIGSCI_CORP", "acme"),
            ("SIGSCI_KIT_CREDENTIALS_SECRET", "s"),
            ("SIGSCI_KIT_FEED_LOCATION", "s3://Bad_Bucket"),
        ];
        let error = Env::from_lookup(env(&bad_bucket))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            error.contains("SIGSCI_KIT_FEED_LOCATION") && error.contains("Bad_Bucket"),
            "{error}"
        );
    }

    #[test]
    fn the_ocsf_role_is_an_iam_role_arn() -> Result<()> {
        let base = [
            ("SIGSCI_CORP", "acme"),
            ("SIGSCI_KIT_CREDENTIALS_SECRET", "s"),
            ("SIGSCI_KIT_FEED_LOCATION", "s3://feed-bucket/x"),
            ("SIGSCI_KIT_FEED_FORMAT", "both"),
        ];
        let role = "arn:aws:iam::123456789012:role/lake-writer";
        let with_role: Vec<_> = base
            .iter()
            .copied()
            .chain([("SIGSCI_KIT_OCSF_ROLE_ARN", role)])
            .collect();
        let parsed = Env::from_lookup(env(&with_role))?;
        assert_eq!(parsed.ocsf.and_then(|o| o.role_arn).as_deref(), Some(role));
        assert!(
            Env::from_lookup(env(&base))?
                .ocsf
                .is_some_and(|o| o.role_arn.is_none())
        );
        for bad in [
            "lake-writer",
            "arn:aws:iam::1234:role/x",
            "arn:aws:iam::123456789012:user/x",
            "arn:aws:s3:::bucket",
        ] {
            let lookup: Vec<_> = base
                .iter()
                .copied()
                .chain([("SIGSCI_KIT_OCSF_ROLE_ARN", bad)])
                .collect();
            let error = Env::from_lookup(env(&lookup))
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(
                error.starts_with("SIGSCI_KIT_OCSF_ROLE_ARN"),
                "{bad}: {error}"
            );
        }
        Ok(())
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

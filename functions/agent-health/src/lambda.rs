//! The Lambda shells' shared parts: configuration from the environment, the scheduled handler and the
//! acknowledgement service set-up. Start-up only parses the environment and builds SDK clients; the API
//! credentials and the rules are read on first use (rules on every invocation, so edits apply at once).
//!
//! Environment:
//! - `SIGSCI_CORP` (required), `SIGSCI_API_URL` (default the public API),
//! - `SIGSCI_KIT_API_SECRET`: Secrets Manager secret `{"email", "token"}`; without it `SIGSCI_EMAIL` +
//!   `SIGSCI_API_TOKEN` are read (local runs),
//! - `SIGSCI_KIT_STATE`: `s3://bucket/prefix` (or a `.json` key) for the state document,
//! - `SIGSCI_KIT_RULES` (the document inline) or `SIGSCI_KIT_RULES_URL` (`s3://bucket/key`); neither = defaults,
//! - `AWS_ENDPOINT_URL` etc. as the AWS SDK reads them.

use std::sync::Arc;

use kit_storage::{SecretSource, SecretsManager, StorageError};
use lambda_runtime::{Diagnostic, LambdaEvent};
use secrecy::SecretString;
use tokio::sync::OnceCell;

use crate::channels::{ConsoleSink, Deliverer, DeliveryError};
use crate::clock::{Clock, SystemClock};
use crate::job::{Evaluator, RunError, RunReport, new_run_id};
use crate::rules::{Rules, RulesError};
use crate::secrets::{ACK_KEY_FIELD, SecretError, SecretResolver};
use crate::store::{StateStore, StoreError};
use crate::web::AckService;

pub const DEFAULT_API_URL: &str = "https://dashboard.signalsciences.net";

#[derive(Debug, thiserror::Error)]
pub enum LambdaError {
    #[error("environment variable {name} {problem}")]
    Env { name: &'static str, problem: String },
    #[error(transparent)]
    Rules(#[from] RulesError),
    #[error("rules document {location}: {source}")]
    RulesUnreadable {
        location: String,
        source: StorageError,
    },
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    State(#[from] StoreError),
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error("API client: {0}")]
    Client(#[from] sigsci::Error),
    #[error(transparent)]
    Delivery(#[from] DeliveryError),
    #[error(transparent)]
    Run(#[from] RunError),
}

impl LambdaError {
    /// Whether the same invocation may succeed later (Lambda's retry and the next schedule).
    pub fn is_transient(&self) -> bool {
        match self {
            LambdaError::Storage(error) | LambdaError::RulesUnreadable { source: error, .. } => {
                error.is_transient()
            }
            LambdaError::State(error) => error.is_transient(),
            LambdaError::Secret(SecretError::Storage(error)) => error.is_transient(),
            LambdaError::Client(error) => error.is_transient(),
            LambdaError::Run(error) => error.is_transient(),
            _ => false,
        }
    }
}

impl From<LambdaError> for Diagnostic {
    fn from(error: LambdaError) -> Diagnostic {
        let error_type = if error.is_transient() {
            "Retryable"
        } else {
            "Fatal"
        };
        Diagnostic {
            error_type: error_type.to_string(),
            error_message: error.to_string(),
        }
    }
}

#[derive(Clone, Debug)]
pub enum RulesSource {
    Default,
    Inline(String),
    Object(String),
}

/// The configuration, read from an environment lookup (the process environment in Lambda).
#[derive(Clone, Debug)]
pub struct LambdaEnv {
    pub corp: String,
    pub api_url: String,
    pub api_secret: Option<String>,
    pub state: String,
    pub rules: RulesSource,
}

impl LambdaEnv {
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<LambdaEnv, LambdaError> {
        let get = |name: &str| {
            get(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let required = |name: &'static str| {
            get(name).ok_or(LambdaError::Env {
                name,
                problem: "is required".into(),
            })
        };
        let rules = match (get("SIGSCI_KIT_RULES"), get("SIGSCI_KIT_RULES_URL")) {
            (Some(_), Some(_)) => {
                return Err(LambdaError::Env {
                    name: "SIGSCI_KIT_RULES",
                    problem: "and SIGSCI_KIT_RULES_URL are both set; set one".into(),
                });
            }
            (Some(inline), None) => RulesSource::Inline(inline),
            (None, Some(url)) if url.starts_with("s3://") => RulesSource::Object(url),
            (None, Some(url)) => {
                return Err(LambdaError::Env {
                    name: "SIGSCI_KIT_RULES_URL",
                    problem: format!("must be s3://bucket/key, got {url:?}"),
                });
            }
            (None, None) => RulesSource::Default,
        };
        Ok(LambdaEnv {
            corp: required("SIGSCI_CORP")?,
            api_url: get("SIGSCI_API_URL").unwrap_or_else(|| DEFAULT_API_URL.to_string()),
            api_secret: get("SIGSCI_KIT_API_SECRET"),
            state: required("SIGSCI_KIT_STATE")?,
            rules,
        })
    }

    pub fn from_process() -> Result<LambdaEnv, LambdaError> {
        LambdaEnv::from_lookup(|name| std::env::var(name).ok())
    }
}

/// Reads a rules document from `s3://bucket/key` (or a local path, for local runs).
pub async fn read_rules_object(
    location: &str,
    s3_endpoint: Option<&str>,
) -> Result<Rules, LambdaError> {
    let unreadable = |source| LambdaError::RulesUnreadable {
        location: location.to_string(),
        source,
    };
    let (parent, key) = location
        .trim_end_matches('/')
        .rsplit_once('/')
        .filter(|(parent, _)| *parent != "s3:/" && !parent.is_empty())
        .ok_or_else(|| LambdaError::Env {
            name: "SIGSCI_KIT_RULES_URL",
            problem: format!("{location:?} names no object"),
        })?;
    let store = kit_storage::open(parent, s3_endpoint).map_err(unreadable)?;
    let object = store.get(key).await.map_err(unreadable)?.ok_or_else(|| {
        unreadable(StorageError::S3 {
            operation: "GetObject",
            bucket: parent.to_string(),
            key: key.to_string(),
            status: Some(404),
            message: "the rules document does not exist".into(),
        })
    })?;
    let text = String::from_utf8_lossy(&object.body);
    Ok(Rules::parse(&text, location)?)
}

/// What the functions keep per container. Nothing is built at start-up: TLS roots and SDK clients
/// cost milliseconds, so they are made on first use, inside the first invocation, keeping init short.
pub struct LambdaDeps {
    pub env: LambdaEnv,
    pub clock: Arc<dyn Clock>,
    /// S3 and Secrets Manager endpoint override (tests); in Lambda the SDK reads its own environment.
    endpoint: Option<String>,
    secrets_manager: OnceCell<Arc<dyn SecretSource>>,
    store: OnceCell<StateStore>,
    deliverer: OnceCell<Deliverer>,
    client: OnceCell<sigsci::Client>,
}

impl LambdaDeps {
    /// `secrets_manager`: a ready source (tests), or `None` for the real one, made on first use.
    pub fn new(
        env: LambdaEnv,
        secrets_manager: Option<Arc<dyn SecretSource>>,
        clock: Arc<dyn Clock>,
        endpoint: Option<String>,
    ) -> LambdaDeps {
        LambdaDeps {
            env,
            clock,
            endpoint,
            secrets_manager: OnceCell::new_with(secrets_manager),
            store: OnceCell::new(),
            deliverer: OnceCell::new(),
            client: OnceCell::new(),
        }
    }

    /// From the process environment with the real Secrets Manager.
    pub fn from_process() -> Result<LambdaDeps, LambdaError> {
        Ok(LambdaDeps::new(
            LambdaEnv::from_process()?,
            None,
            Arc::new(SystemClock),
            None,
        ))
    }

    pub async fn rules(&self) -> Result<Rules, LambdaError> {
        match &self.env.rules {
            RulesSource::Default => Ok(Rules::default()),
            RulesSource::Inline(text) => Ok(Rules::parse(text, "SIGSCI_KIT_RULES")?),
            RulesSource::Object(location) => {
                read_rules_object(location, self.endpoint.as_deref()).await
            }
        }
    }

    pub async fn store(&self) -> Result<&StateStore, LambdaError> {
        self.store
            .get_or_try_init(|| async {
                StateStore::open(&self.env.state, &self.env.corp, self.endpoint.as_deref())
                    .map_err(LambdaError::from)
            })
            .await
    }

    async fn deliverer(&self) -> Result<&Deliverer, LambdaError> {
        self.deliverer
            .get_or_try_init(|| async {
                let console: ConsoleSink = Arc::new(|text: &str| println!("{text}"));
                Deliverer::new(console).map_err(LambdaError::from)
            })
            .await
    }

    async fn secrets_manager(&self) -> &Arc<dyn SecretSource> {
        self.secrets_manager
            .get_or_init(|| async {
                let manager: Arc<dyn SecretSource> =
                    Arc::new(SecretsManager::new(self.endpoint.as_deref()));
                manager
            })
            .await
    }

    async fn client(&self) -> Result<&sigsci::Client, LambdaError> {
        self.client
            .get_or_try_init(|| async {
                let credentials = match &self.env.api_secret {
                    Some(name) => self.secrets_manager().await.api_credentials(name).await?,
                    None => credentials_from_env()?,
                };
                Ok::<_, LambdaError>(
                    sigsci::Client::builder(
                        self.env.api_url.clone(),
                        self.env.corp.clone(),
                        credentials,
                    )
                    .build()?,
                )
            })
            .await
    }

    pub async fn secret_resolver(&self) -> SecretResolver {
        SecretResolver::new(Some(Arc::clone(self.secrets_manager().await)))
    }

    /// The acknowledgement service for the function URL.
    pub async fn ack_service(&self) -> Result<AckService, LambdaError> {
        let rules = self.rules().await?;
        let reference = rules.ack.secret.clone().ok_or(LambdaError::Env {
            name: "SIGSCI_KIT_RULES",
            problem: "has no ack.secret, so acknowledgement links cannot be verified".into(),
        })?;
        let key: SecretString = self
            .secret_resolver()
            .await
            .resolve(&reference, ACK_KEY_FIELD)
            .await?;
        Ok(AckService {
            corp: self.env.corp.clone(),
            store: self.store().await?.clone(),
            rules: Arc::new(rules),
            key,
            clock: Arc::clone(&self.clock),
        })
    }
}

fn credentials_from_env() -> Result<sigsci::Credentials, LambdaError> {
    let email = std::env::var("SIGSCI_EMAIL")
        .ok()
        .filter(|v| !v.is_empty())
        .ok_or(LambdaError::Env {
            name: "SIGSCI_KIT_API_SECRET",
            problem: "is not set, and neither are SIGSCI_EMAIL + SIGSCI_API_TOKEN".into(),
        })?;
    let token = std::env::var("SIGSCI_API_TOKEN")
        .ok()
        .filter(|v| !v.is_empty())
        .ok_or(LambdaError::Env {
            name: "SIGSCI_API_TOKEN",
            problem: "is required when SIGSCI_KIT_API_SECRET is not set".into(),
        })?;
    Ok(sigsci::Credentials {
        email,
        secret: sigsci::CredentialSecret::Token(SecretString::from(token)),
    })
}

/// The scheduled evaluation (EventBridge Scheduler, every 5 minutes). The event body is not used.
pub async fn handle_scheduled(
    deps: &LambdaDeps,
    event: LambdaEvent<serde_json::Value>,
) -> Result<RunReport, LambdaError> {
    let rules = deps.rules().await?;
    let evaluator = Evaluator {
        client: deps.client().await?.clone(),
        store: deps.store().await?.clone(),
        secrets: deps.secret_resolver().await,
        deliverer: deps.deliverer().await?.clone(),
        clock: Arc::clone(&deps.clock),
    };
    let run_id = new_run_id();
    tracing::info!(run_id, request_id = %event.context.request_id, "evaluation started");
    let report = evaluator.run(&rules, &run_id).await?;
    // EMF goes to stdout as its own line; CloudWatch extracts the metrics from it.
    println!("{}", crate::metrics::emf(&report));
    tracing::info!(
        run_id,
        sites = report.sites_total,
        failed = report.sites_failed.len(),
        firing = report.conditions_firing,
        sent = report.notifications_sent,
        failed_notifications = report.notifications_failed,
        "evaluation finished"
    );
    Ok(report)
}

/// JSON logs to stdout; level from `AWS_LAMBDA_LOG_LEVEL`, then `RUST_LOG`, else info.
pub fn init_logging() {
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".into());
    let filter = tracing_subscriber::EnvFilter::try_new(level.to_lowercase())
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_target(false)
        .with_current_span(false)
        .init();
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Result<LambdaEnv, LambdaError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        LambdaEnv::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn reads_the_environment_and_names_what_is_missing() {
        let ok = env(&[
            ("SIGSCI_CORP", "c"),
            ("SIGSCI_KIT_STATE", "s3://b/p"),
            ("SIGSCI_KIT_RULES_URL", "s3://b/r.yaml"),
        ])
        .unwrap();
        assert!(matches!(ok.rules, RulesSource::Object(ref u) if u == "s3://b/r.yaml"));
        assert_eq!(ok.api_url, DEFAULT_API_URL);
        let error = env(&[("SIGSCI_KIT_STATE", "s3://b/p")]).unwrap_err();
        assert!(
            error.to_string().contains("SIGSCI_CORP is required"),
            "{error}"
        );
        let error = env(&[
            ("SIGSCI_CORP", "c"),
            ("SIGSCI_KIT_STATE", "x"),
            ("SIGSCI_KIT_RULES_URL", "http://x"),
        ])
        .unwrap_err();
        assert!(error.to_string().contains("s3://bucket/key"), "{error}");
    }
}

//! The deployed jobs that the Lambda shells run (`functions/agent-health`, `functions/ack-url`):
//! settings from the environment (one vocabulary with the other functions, listed in
//! docs/interfaces.md), the dependencies built from them, one evaluation, and the acknowledgement
//! service. Start-up only parses the environment; the API credentials and the rules are read on
//! first use (rules on every invocation, so edits apply at once; credentials again when their
//! secret has a new version or the API refuses them, as after a rotation).
//!
//! Environment:
//! - `SIGSCI_CORP` (required), `SIGSCI_API_URL` (default the public API),
//! - `SIGSCI_KIT_CREDENTIALS_SECRET`: Secrets Manager secret `{"email", "token"}`; without it
//!   `SIGSCI_EMAIL` + `SIGSCI_API_TOKEN` are read (local runs),
//! - `SIGSCI_KIT_STATE`: `s3://bucket/prefix` (or a `.json` key) for the state document,
//! - `SIGSCI_KIT_RULES` (the document inline) or `SIGSCI_KIT_RULES_URL` (`s3://bucket/key`); neither = defaults,
//! - `AWS_REGION`, `AWS_ENDPOINT_URL` etc. as the AWS SDK reads them.

use std::sync::Arc;

use kit_storage::{SecretSource, SecretsManager, StorageError};
use secrecy::SecretString;
use tokio::sync::{Mutex, OnceCell};

use crate::channels::{ConsoleSink, Deliverer, DeliveryError};
use crate::clock::{Clock, SystemClock};
use crate::evaluator::{Evaluator, RunError, RunReport, new_run_id};
use crate::incidents::IncidentSync;
use crate::rules::{Rules, RulesError, SecretRef};
use crate::secrets::{SecretError, SecretResolver, SigningKey};
use crate::store::{StateStore, StoreError};
use crate::web::AckService;

const CORP: &str = "SIGSCI_CORP";
const API_URL: &str = "SIGSCI_API_URL";
const CREDENTIALS_SECRET: &str = "SIGSCI_KIT_CREDENTIALS_SECRET";
const EMAIL: &str = "SIGSCI_EMAIL";
const API_TOKEN: &str = "SIGSCI_API_TOKEN";
const STATE: &str = "SIGSCI_KIT_STATE";
const RULES: &str = "SIGSCI_KIT_RULES";
const RULES_URL: &str = "SIGSCI_KIT_RULES_URL";

/// Every variable the evaluator function reads (docs/interfaces.md lists the same; a test keeps
/// them equal). `SIGSCI_EMAIL` and `SIGSCI_API_TOKEN` only stand in for the secret in local runs.
pub const EVALUATOR_VARIABLES: [&str; 8] = [
    CORP,
    API_URL,
    CREDENTIALS_SECRET,
    EMAIL,
    API_TOKEN,
    STATE,
    RULES,
    RULES_URL,
];

/// Every variable the acknowledgement function uses: it reads the state and the rules (for the
/// signing key and the channels), never the API.
pub const ACK_VARIABLES: [&str; 4] = [CORP, STATE, RULES, RULES_URL];

#[derive(Debug, thiserror::Error)]
pub enum Error {
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

impl Error {
    /// Whether the same invocation may succeed later (Lambda's retry and the next schedule).
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Storage(error) | Error::RulesUnreadable { source: error, .. } => {
                error.is_transient()
            }
            Error::State(error) => error.is_transient(),
            Error::Secret(SecretError::Storage(error)) => error.is_transient(),
            Error::Client(error) => error.is_transient(),
            Error::Run(error) => error.is_transient(),
            _ => false,
        }
    }
}

#[derive(Clone, Debug)]
pub enum RulesSource {
    Default,
    Inline(String),
    Object(String),
}

/// API credentials: a Secrets Manager secret, or (local runs) the variables pysigsci users have.
#[derive(Clone, Debug)]
pub enum CredentialsSource {
    Secret(String),
    Variables {
        email: Option<String>,
        token: Option<SecretString>,
    },
}

/// The settings, read from an environment lookup (the process environment in Lambda).
#[derive(Clone, Debug)]
pub struct Env {
    pub corp: String,
    pub api_url: String,
    pub credentials: CredentialsSource,
    pub state: String,
    pub rules: RulesSource,
}

impl Env {
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Env, Error> {
        let get = |name: &str| {
            get(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let required = |name: &'static str| {
            get(name).ok_or(Error::Env {
                name,
                problem: "is required".into(),
            })
        };
        let rules = match (get(RULES), get(RULES_URL)) {
            (Some(_), Some(_)) => {
                return Err(Error::Env {
                    name: RULES,
                    problem: format!("and {RULES_URL} are both set; set one"),
                });
            }
            (Some(inline), None) => RulesSource::Inline(inline),
            (None, Some(url)) if url.starts_with("s3://") => RulesSource::Object(url),
            (None, Some(url)) => {
                return Err(Error::Env {
                    name: RULES_URL,
                    problem: format!("must be s3://bucket/key, got {url:?}"),
                });
            }
            (None, None) => RulesSource::Default,
        };
        let credentials = match get(CREDENTIALS_SECRET) {
            Some(name) => CredentialsSource::Secret(name),
            None => CredentialsSource::Variables {
                email: get(EMAIL),
                token: get(API_TOKEN).map(SecretString::from),
            },
        };
        Ok(Env {
            corp: required(CORP)?,
            api_url: get(API_URL).unwrap_or_else(|| sigsci::DEFAULT_API_URL.to_string()),
            credentials,
            state: required(STATE)?,
            rules,
        })
    }
}

/// Reads a rules document from `s3://bucket/key` (or a local path, for local runs).
async fn read_rules_object(location: &str, s3_endpoint: Option<&str>) -> Result<Rules, Error> {
    let unreadable = |source| Error::RulesUnreadable {
        location: location.to_string(),
        source,
    };
    let (parent, key) = location
        .trim_end_matches('/')
        .rsplit_once('/')
        .filter(|(parent, _)| *parent != "s3:/" && !parent.is_empty())
        .ok_or_else(|| Error::Env {
            name: RULES_URL,
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
pub struct Deps {
    pub env: Env,
    pub clock: Arc<dyn Clock>,
    /// S3 and Secrets Manager endpoint override (tests); in Lambda the SDK reads its own environment.
    endpoint: Option<String>,
    secrets_manager: OnceCell<Arc<dyn SecretSource>>,
    store: OnceCell<StateStore>,
    deliverer: OnceCell<Deliverer>,
    /// Replaced when the secret holding its credentials has a new version, or the API refuses them.
    client: Mutex<Option<CachedClient>>,
}

struct CachedClient {
    client: sigsci::Client,
    /// The credentials secret's version the client was made with.
    secret_version: Option<String>,
}

impl Deps {
    /// The real dependencies (Secrets Manager, S3 and the API as the environment configures
    /// them), each made on first use.
    pub fn new(env: Env) -> Deps {
        Deps::with(env, None, Arc::new(SystemClock), None)
    }

    /// `secrets_manager`: a ready source (tests), or `None` for the real one, made on first use.
    pub fn with(
        env: Env,
        secrets_manager: Option<Arc<dyn SecretSource>>,
        clock: Arc<dyn Clock>,
        endpoint: Option<String>,
    ) -> Deps {
        Deps {
            env,
            clock,
            endpoint,
            secrets_manager: OnceCell::new_with(secrets_manager),
            store: OnceCell::new(),
            deliverer: OnceCell::new(),
            client: Mutex::new(None),
        }
    }

    pub async fn rules(&self) -> Result<Rules, Error> {
        match &self.env.rules {
            RulesSource::Default => Ok(Rules::default()),
            RulesSource::Inline(text) => Ok(Rules::parse(text, RULES)?),
            RulesSource::Object(location) => {
                read_rules_object(location, self.endpoint.as_deref()).await
            }
        }
    }

    pub async fn store(&self) -> Result<&StateStore, Error> {
        self.store
            .get_or_try_init(|| async {
                StateStore::open(&self.env.state, &self.env.corp, self.endpoint.as_deref())
                    .map_err(Error::from)
            })
            .await
    }

    async fn deliverer(&self) -> Result<&Deliverer, Error> {
        self.deliverer
            .get_or_try_init(|| async {
                let console: ConsoleSink = Arc::new(|text: &str| println!("{text}"));
                Deliverer::new(console).map_err(Error::from)
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

    /// The cached API client, made (credentials read) on first use and again when the
    /// credentials secret has been rotated since.
    async fn client(&self) -> Result<sigsci::Client, Error> {
        let mut cached = self.client.lock().await;
        let version = self.secret_version().await;
        if let Some(current) = cached.as_ref() {
            let rotated = version.is_some() && current.secret_version != version;
            if !rotated {
                return Ok(current.client.clone());
            }
            tracing::info!("the credentials secret has a new version; reading it again");
        }
        let fresh = self.new_client(version).await?;
        let client = fresh.client.clone();
        *cached = Some(fresh);
        Ok(client)
    }

    /// A client with the credentials read again, replacing the cached one.
    async fn renew_client(&self) -> Result<sigsci::Client, Error> {
        let fresh = self.new_client(self.secret_version().await).await?;
        let client = fresh.client.clone();
        *self.client.lock().await = Some(fresh);
        Ok(client)
    }

    /// The credentials secret's current version; `None` without a secret or when it cannot be
    /// read (then a refusal by the API still prompts a new read).
    async fn secret_version(&self) -> Option<String> {
        let CredentialsSource::Secret(name) = &self.env.credentials else {
            return None;
        };
        match self.secrets_manager().await.current_version(name).await {
            Ok(version) => version,
            Err(error) => {
                tracing::warn!(%error, "cannot tell whether the credentials secret was rotated");
                None
            }
        }
    }

    /// A client with the credentials read now; `secret_version` was read before them, so a
    /// rotation between the two reads only costs one more read later.
    async fn new_client(&self, secret_version: Option<String>) -> Result<CachedClient, Error> {
        let credentials = match &self.env.credentials {
            CredentialsSource::Secret(name) => {
                self.secrets_manager().await.api_credentials(name).await?
            }
            CredentialsSource::Variables { email, token } => {
                credentials_from_variables(email.as_deref(), token.as_ref())?
            }
        };
        let client =
            sigsci::Client::builder(self.env.api_url.clone(), self.env.corp.clone(), credentials)
                .build()?;
        Ok(CachedClient {
            client,
            secret_version,
        })
    }

    /// One evaluation of every site with the current rules (the scheduled function's work). When
    /// the API refuses the cached credentials they are read again and the sites read once more
    /// before anything is recorded, so a rotated token never pages as `evaluation_failed`.
    pub async fn evaluate(&self) -> Result<RunReport, Error> {
        let rules = self.rules().await?;
        let mut evaluator = Evaluator {
            client: self.client().await?,
            store: self.store().await?.clone(),
            secrets: self.secret_resolver().await,
            deliverer: self.deliverer().await?.clone(),
            clock: Arc::clone(&self.clock),
        };
        let run_id = new_run_id();
        let started_at = self.clock.now();
        let mut observation = evaluator.observe(&rules).await;
        if observation.credentials_refused()
            && matches!(self.env.credentials, CredentialsSource::Secret(_))
        {
            tracing::warn!("the API refused the credentials; reading the secret again");
            evaluator.client = self.renew_client().await?;
            observation = evaluator.observe(&rules).await;
        }
        Ok(evaluator
            .record(&rules, &run_id, started_at, observation)
            .await?)
    }

    pub async fn secret_resolver(&self) -> SecretResolver {
        SecretResolver::new(Some(Arc::clone(self.secrets_manager().await)))
    }

    /// What [`Deps::ack_service`] needs that can be checked without the network, so that the
    /// function URL can fail at start-up and make the service on its first request: the rules
    /// when they are inline (or the defaults) and their `ack.secret`. Rules on S3 are not read.
    pub async fn check_ack_settings(&self) -> Result<(), Error> {
        if matches!(self.env.rules, RulesSource::Object(_)) {
            return Ok(());
        }
        ack_secret(&self.rules().await?).map(drop)
    }

    /// The acknowledgement service for the function URL.
    pub async fn ack_service(&self) -> Result<AckService, Error> {
        let rules = self.rules().await?;
        let reference = ack_secret(&rules)?;
        let key =
            SigningKey::from_secret(self.secret_resolver().await, reference, self.clock.now())
                .await?;
        Ok(AckService {
            corp: self.env.corp.clone(),
            store: self.store().await?.clone(),
            rules: Arc::new(rules),
            key,
            clock: Arc::clone(&self.clock),
            incidents: IncidentSync {
                secrets: self.secret_resolver().await,
                deliverer: self.deliverer().await?.clone(),
            },
        })
    }
}

fn ack_secret(rules: &Rules) -> Result<SecretRef, Error> {
    rules.ack.secret.clone().ok_or(Error::Env {
        name: RULES,
        problem: "has no ack.secret, so acknowledgement links cannot be verified".into(),
    })
}

fn credentials_from_variables(
    email: Option<&str>,
    token: Option<&SecretString>,
) -> Result<sigsci::Credentials, Error> {
    let email = email.ok_or(Error::Env {
        name: CREDENTIALS_SECRET,
        problem: format!("is not set, and neither are {EMAIL} + {API_TOKEN}"),
    })?;
    let token = token.ok_or(Error::Env {
        name: API_TOKEN,
        problem: format!("is required when {CREDENTIALS_SECRET} is not set"),
    })?;
    Ok(sigsci::Credentials {
        email: email.to_string(),
        secret: sigsci::CredentialSecret::Token(token.clone()),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Result<Env, Error> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Env::from_lookup(|name| map.get(name).cloned())
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
        assert_eq!(ok.api_url, sigsci::DEFAULT_API_URL);
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

    #[tokio::test]
    async fn the_ack_settings_are_checked_without_reading_the_signing_key() {
        let state = std::env::temp_dir().to_string_lossy().into_owned();
        let check = |rules: Option<&str>| {
            let mut pairs = vec![("SIGSCI_CORP", "c"), ("SIGSCI_KIT_STATE", state.as_str())];
            pairs.extend(rules.map(|rules| ("SIGSCI_KIT_RULES", rules)));
            let deps = Deps::with(env(&pairs).unwrap(), None, Arc::new(SystemClock), None);
            async move { deps.check_ack_settings().await }
        };
        let error = check(None).await.unwrap_err();
        assert!(error.to_string().contains("ack.secret"), "{error}");
        let error = check(Some("ack: [")).await.unwrap_err();
        assert!(matches!(error, Error::Rules(_)), "{error}");
        // No Secrets Manager here: the key is read on the first request, not now.
        check(Some("ack: {secret: 'secretsmanager:ack'}\n"))
            .await
            .unwrap();
    }
}

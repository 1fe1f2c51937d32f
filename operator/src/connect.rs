//! From a `connectionRef` to an authenticated API client. Connections and Secrets are read
//! through [`Reader`]: from the apiserver whenever the watches saw a change, so a rotated token
//! is used by the reconcile the rotation triggers, without a restart.
//!
//! Every client of one API account (URL, corp, user, token) is the same [`Account`]: one HTTP
//! pool, one rate limiter and one set of short-lived listings, shared by all controllers.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use sigsci::{Credentials, RetryPolicy};
use sigsci_config::Sensitive;

use crate::cache::ListCache;
use crate::crd::connection::ConnectionTarget;
use crate::crd::{ConnectionKind, ConnectionRef};
use crate::lease::{Clock, system_clock};
use crate::limiter::{Rate, TokenBucket};
use crate::reads::Reader;
use crate::remote::Endpoint;
use crate::{Error, Result};

/// How the operator's API clients behave. Retries are few: the controller backs off itself.
#[derive(Clone, Debug)]
pub struct ApiSettings {
    pub timeout: Duration,
    pub retry: RetryPolicy,
    /// Calls per second per API account, shared by all controllers.
    pub rate: Rate,
    /// How long one listing of a site's alerts, integrations or lists serves other objects.
    pub list_ttl: Duration,
    /// The accounts in use; clones of these settings share them.
    pub accounts: Accounts,
}

impl Default for ApiSettings {
    fn default() -> Self {
        ApiSettings {
            timeout: Duration::from_secs(20),
            retry: RetryPolicy {
                max_attempts: 3,
                min_delay: Duration::from_millis(200),
                max_delay: Duration::from_secs(2),
                max_retry_after: Duration::from_secs(10),
            },
            rate: Rate::default(),
            list_ttl: Duration::from_secs(5),
            accounts: Accounts::new(system_clock()),
        }
    }
}

/// One API account: the client, its rate limiter and its listings.
pub struct Account {
    client: sigsci::Client,
    pub(crate) limiter: TokenBucket,
    pub(crate) alerts: ListCache<sigsci::Alert>,
    pub(crate) integrations: ListCache<sigsci::Integration>,
    pub(crate) lists: ListCache<sigsci::RuleList>,
    last_used: Mutex<Timestamp>,
}

/// Who an account is. The token is kept only as a hash: enough to tell a rotated token from the
/// old one, and nothing to leak.
#[derive(Clone, PartialEq, Eq, Hash)]
struct AccountKey {
    api_url: String,
    corp: String,
    email: String,
    token_hash: u64,
}

/// The accounts in use, by identity. Cheap to clone; clones share.
#[derive(Clone)]
pub struct Accounts {
    clock: Clock,
    known: Arc<Mutex<HashMap<AccountKey, Arc<Account>>>>,
}

impl std::fmt::Debug for Accounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let count = self.known.lock().map(|known| known.len()).unwrap_or(0);
        f.debug_struct("Accounts").field("count", &count).finish()
    }
}

/// An account nobody used for this long is forgotten (e.g. the one of a token rotated away).
const ACCOUNT_IDLE: SignedDuration = SignedDuration::from_secs(15 * 60);

impl Accounts {
    pub fn new(clock: Clock) -> Accounts {
        Accounts {
            clock,
            known: Arc::default(),
        }
    }

    fn get(
        &self,
        api_url: &str,
        corp: &str,
        email: &Sensitive,
        token: &Sensitive,
        settings: &ApiSettings,
    ) -> Result<Arc<Account>> {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        token.expose().hash(&mut hasher);
        let key = AccountKey {
            api_url: api_url.to_string(),
            corp: corp.to_string(),
            email: email.expose().to_string(),
            token_hash: hasher.finish(),
        };
        let now = (self.clock)();
        let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(account) = known.get(&key) {
            *account.last_used.lock().unwrap_or_else(|p| p.into_inner()) = now;
            return Ok(account.clone());
        }
        known.retain(|_, account| {
            let last_used = *account.last_used.lock().unwrap_or_else(|p| p.into_inner());
            Arc::strong_count(account) > 1
                || now.duration_since(last_used) < ACCOUNT_IDLE
                || !account.limiter.is_full()
        });
        let credentials = Credentials::token(email.expose(), token.expose());
        let account = Arc::new(Account {
            client: build_client(api_url, corp, credentials, settings)?,
            limiter: TokenBucket::new(settings.rate, self.clock.clone()),
            alerts: ListCache::new(settings.list_ttl, self.clock.clone()),
            integrations: ListCache::new(settings.list_ttl, self.clock.clone()),
            lists: ListCache::new(settings.list_ttl, self.clock.clone()),
            last_used: Mutex::new(now),
        });
        known.insert(key, account.clone());
        Ok(account)
    }
}

/// An API client of an [`Account`]: calls through [`crate::remote`] wait for the account's rate
/// limiter and share its listings. Derefs to the plain client for anything else.
#[derive(Clone)]
pub struct ApiClient(Arc<Account>);

impl ApiClient {
    /// The corp's sites, within the account's rate.
    pub async fn list_sites(&self) -> sigsci::Result<Vec<sigsci::Site>> {
        self.0.limiter.acquire().await;
        self.0.client.list_sites().await
    }
}

impl std::ops::Deref for ApiClient {
    type Target = sigsci::Client;

    fn deref(&self) -> &sigsci::Client {
        &self.0.client
    }
}

impl Endpoint for ApiClient {
    fn client(&self) -> &sigsci::Client {
        &self.0.client
    }

    fn account(&self) -> Option<&Account> {
        Some(&self.0)
    }
}

/// The connection an object in `namespace` refers to.
pub async fn connection_target(
    kube: &Reader<'_>,
    namespace: &str,
    reference: &ConnectionRef,
) -> Result<ConnectionTarget> {
    let missing = || Error::ConnectionNotFound {
        kind: reference.kind.as_str(),
        name: match reference.kind {
            ConnectionKind::SigSciConnection => format!("{namespace}/{}", reference.name),
            ConnectionKind::ClusterSigSciConnection => reference.name.clone(),
        },
    };
    match reference.kind {
        ConnectionKind::SigSciConnection => {
            let connection = kube
                .connection(namespace, &reference.name)
                .await?
                .ok_or_else(missing)?;
            Ok(connection.target(namespace))
        }
        ConnectionKind::ClusterSigSciConnection => {
            let connection = kube
                .cluster_connection(&reference.name)
                .await?
                .ok_or_else(missing)?;
            connection
                .target()
                .ok_or(Error::MissingMetadata("credentialsSecretRef.namespace"))
        }
    }
}

/// One key of a Secret, trimmed (tokens pasted from files often end in a newline).
pub async fn secret_value(
    kube: &Reader<'_>,
    namespace: &str,
    name: &str,
    key: &str,
) -> Result<Sensitive> {
    let secret = read_secret(kube, namespace, name).await?;
    key_value(&secret, namespace, name, key)
}

async fn read_secret(kube: &Reader<'_>, namespace: &str, name: &str) -> Result<Arc<Secret>> {
    kube.secret(namespace, name)
        .await?
        .ok_or_else(|| Error::Secret {
            namespace: namespace.to_string(),
            name: name.to_string(),
            problem: "not found".to_string(),
        })
}

/// `key` of the Secret `namespace/name` already read, trimmed.
fn key_value(secret: &Secret, namespace: &str, name: &str, key: &str) -> Result<Sensitive> {
    let problem = |problem: String| Error::Secret {
        namespace: namespace.to_string(),
        name: name.to_string(),
        problem,
    };
    let bytes = secret
        .data
        .as_ref()
        .and_then(|data| data.get(key))
        .ok_or_else(|| problem(format!("has no key {key:?}")))?;
    let text =
        std::str::from_utf8(&bytes.0).map_err(|_| problem(format!("key {key:?} is not UTF-8")))?;
    let text = text.trim();
    if text.is_empty() {
        return Err(problem(format!("key {key:?} is empty")));
    }
    Ok(Sensitive::new(text))
}

/// The API user's e-mail and token from the connection's Secret, read once for both keys.
async fn credentials(
    kube: &Reader<'_>,
    target: &ConnectionTarget,
) -> Result<(Sensitive, Sensitive)> {
    let (namespace, secret) = (&target.secret_namespace, &target.secret);
    let read = read_secret(kube, namespace, &secret.name).await?;
    let email = key_value(&read, namespace, &secret.name, &secret.email_key)?;
    let token = key_value(&read, namespace, &secret.name, &secret.token_key)?;
    Ok((email, token))
}

/// An API client for the connection, with fresh credentials.
pub async fn connect(
    kube: &Reader<'_>,
    namespace: &str,
    reference: &ConnectionRef,
    settings: &ApiSettings,
) -> Result<ApiClient> {
    let target = connection_target(kube, namespace, reference).await?;
    client_for(kube, &target, settings).await
}

pub async fn client_for(
    kube: &Reader<'_>,
    target: &ConnectionTarget,
    settings: &ApiSettings,
) -> Result<ApiClient> {
    let (email, token) = credentials(kube, target).await?;
    let account = settings
        .accounts
        .get(&target.api_url, &target.corp, &email, &token, settings)?;
    Ok(ApiClient(account))
}

fn build_client(
    api_url: &str,
    corp: &str,
    credentials: Credentials,
    settings: &ApiSettings,
) -> Result<sigsci::Client> {
    Ok(sigsci::Client::builder(api_url, corp, credentials)
        .retry(settings.retry.clone())
        .timeout(settings.timeout)
        .user_agent(concat!("sigsci-operator/", env!("CARGO_PKG_VERSION")))
        .build()?)
}

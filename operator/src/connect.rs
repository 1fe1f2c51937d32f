//! From a `connectionRef` to an authenticated API client. Credentials are read from the Secret
//! on every call, so a rotated token is used by the next reconcile without a restart.

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use sigsci::{Credentials, RetryPolicy};
use sigsci_config::Sensitive;

use crate::crd::connection::ConnectionTarget;
use crate::crd::{ClusterSigSciConnection, ConnectionKind, ConnectionRef, SigSciConnection};
use crate::{Error, Result};

/// How the operator's API clients behave. Retries are few: the controller backs off itself.
#[derive(Clone, Debug)]
pub struct ApiSettings {
    pub timeout: Duration,
    pub retry: RetryPolicy,
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
        }
    }
}

/// The connection an object in `namespace` refers to.
pub async fn connection_target(
    kube: &kube::Client,
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
            let api: Api<SigSciConnection> = Api::namespaced(kube.clone(), namespace);
            let connection = api.get_opt(&reference.name).await?.ok_or_else(missing)?;
            Ok(connection.target(namespace))
        }
        ConnectionKind::ClusterSigSciConnection => {
            let api: Api<ClusterSigSciConnection> = Api::all(kube.clone());
            let connection = api.get_opt(&reference.name).await?.ok_or_else(missing)?;
            connection
                .target()
                .ok_or(Error::MissingMetadata("credentialsSecretRef.namespace"))
        }
    }
}

/// One key of a Secret, trimmed (tokens pasted from files often end in a newline).
pub async fn secret_value(
    kube: &kube::Client,
    namespace: &str,
    name: &str,
    key: &str,
) -> Result<Sensitive> {
    let problem = |problem: String| Error::Secret {
        namespace: namespace.to_string(),
        name: name.to_string(),
        problem,
    };
    let api: Api<Secret> = Api::namespaced(kube.clone(), namespace);
    let secret = api
        .get_opt(name)
        .await?
        .ok_or_else(|| problem("not found".to_string()))?;
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

/// The API user's e-mail and token from the connection's Secret.
pub async fn credentials(kube: &kube::Client, target: &ConnectionTarget) -> Result<Credentials> {
    let secret = &target.secret;
    let email = secret_value(
        kube,
        &target.secret_namespace,
        &secret.name,
        &secret.email_key,
    )
    .await?;
    let token = secret_value(
        kube,
        &target.secret_namespace,
        &secret.name,
        &secret.token_key,
    )
    .await?;
    Ok(Credentials::token(email.expose(), token.expose()))
}

/// An API client for the connection, with fresh credentials.
pub async fn connect(
    kube: &kube::Client,
    namespace: &str,
    reference: &ConnectionRef,
    settings: &ApiSettings,
) -> Result<sigsci::Client> {
    let target = connection_target(kube, namespace, reference).await?;
    client_for(kube, &target, settings).await
}

pub async fn client_for(
    kube: &kube::Client,
    target: &ConnectionTarget,
    settings: &ApiSettings,
) -> Result<sigsci::Client> {
    let credentials = credentials(kube, target).await?;
    build_client(&target.api_url, &target.corp, credentials, settings)
}

pub fn build_client(
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

//! Where the jobs get their API credentials: AWS Secrets Manager in Lambda, a fixed map in tests.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_secretsmanager::config::BehaviorVersion;
use aws_sdk_secretsmanager::config::http::HttpResponse;
use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};
use secrecy::SecretString;
use sigsci::{CredentialSecret, Credentials};

use crate::{Result, StorageError, aws};

#[async_trait]
pub trait SecretSource: Send + Sync {
    /// The secret's JSON value.
    async fn json(&self, name: &str) -> Result<serde_json::Value>;

    /// API credentials from a JSON secret `{"email": "...", "token": "..."}` (or `"password"`
    /// instead of `"token"` for the legacy session login).
    async fn api_credentials(&self, name: &str) -> Result<Credentials> {
        credentials_from_json(name, &self.json(name).await?)
    }

    /// An id of the secret's current value that changes when the secret is rotated (Secrets
    /// Manager's `AWSCURRENT` version), read without fetching the value; `None` where the source
    /// has no versions.
    async fn current_version(&self, _name: &str) -> Result<Option<String>> {
        Ok(None)
    }
}

fn credentials_from_json(name: &str, value: &serde_json::Value) -> Result<Credentials> {
    let malformed = |reason: &str| StorageError::SecretMalformed {
        name: name.to_string(),
        reason: reason.to_string(),
    };
    let object = value
        .as_object()
        .ok_or_else(|| malformed("expected a JSON object {\"email\": ..., \"token\": ...}"))?;
    let field = |key: &str| {
        object
            .get(key)
            .and_then(|v| v.as_str())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let email =
        field("email").ok_or_else(|| malformed("missing or empty string field \"email\""))?;
    let secret = match (field("token"), field("password")) {
        (Some(token), _) => CredentialSecret::Token(SecretString::from(token.to_string())),
        (None, Some(password)) => {
            CredentialSecret::Password(SecretString::from(password.to_string()))
        }
        (None, None) => {
            return Err(malformed(
                "missing or empty string field \"token\" (or \"password\")",
            ));
        }
    };
    Ok(Credentials {
        email: email.to_string(),
        secret,
    })
}

fn parse_secret_json(name: &str, text: &str) -> Result<serde_json::Value> {
    // The parse error would echo secret material; say only where it failed.
    serde_json::from_str(text).map_err(|error| StorageError::SecretMalformed {
        name: name.to_string(),
        reason: format!(
            "not valid JSON (line {}, column {})",
            error.line(),
            error.column()
        ),
    })
}

/// AWS Secrets Manager (`GetSecretValue`, string secrets).
#[derive(Clone, Debug)]
pub struct SecretsManager {
    client: aws_sdk_secretsmanager::Client,
}

impl SecretsManager {
    /// Region and credentials from the AWS environment; `endpoint` (or
    /// `AWS_ENDPOINT_URL_SECRETS_MANAGER` / `AWS_ENDPOINT_URL`) overrides the endpoint.
    pub fn new(endpoint: Option<&str>) -> SecretsManager {
        let mut config = aws_sdk_secretsmanager::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(aws::region())
            .credentials_provider(aws::credentials());
        if let Some(url) = aws::endpoint(endpoint, "AWS_ENDPOINT_URL_SECRETS_MANAGER") {
            config = config.endpoint_url(url);
        }
        SecretsManager {
            client: aws_sdk_secretsmanager::Client::from_conf(config.build()),
        }
    }

    pub fn with_client(client: aws_sdk_secretsmanager::Client) -> SecretsManager {
        SecretsManager { client }
    }
}

#[async_trait]
impl SecretSource for SecretsManager {
    async fn json(&self, name: &str) -> Result<serde_json::Value> {
        let response = self
            .client
            .get_secret_value()
            .secret_id(name)
            .send()
            .await
            .map_err(|error| unreadable(name, error))?;
        let text = response
            .secret_string()
            .ok_or_else(|| StorageError::SecretMalformed {
                name: name.to_string(),
                reason: "the secret has no string value (binary secrets are not supported)"
                    .to_string(),
            })?;
        parse_secret_json(name, text)
    }

    async fn current_version(&self, name: &str) -> Result<Option<String>> {
        let response = self
            .client
            .describe_secret()
            .secret_id(name)
            .send()
            .await
            .map_err(|error| unreadable(name, error))?;
        Ok(response
            .version_ids_to_stages()
            .and_then(|versions| {
                versions
                    .iter()
                    .find(|(_, stages)| stages.iter().any(|stage| stage == "AWSCURRENT"))
            })
            .map(|(version, _)| version.clone()))
    }
}

/// A failed Secrets Manager call as an error that keeps the HTTP status and the service's code.
fn unreadable<E: ProvideErrorMetadata + std::error::Error + 'static>(
    name: &str,
    error: SdkError<E, HttpResponse>,
) -> StorageError {
    let message = match error.as_service_error() {
        Some(service) => format!(
            "{}: {}",
            service.code().unwrap_or("error"),
            service.message().unwrap_or_default()
        ),
        None => sigsci::with_causes(&error),
    };
    StorageError::SecretUnreadable {
        name: name.to_string(),
        status: error.raw_response().map(|r| r.status().as_u16()),
        message,
    }
}

/// Secrets held in memory, for tests and local runs.
#[derive(Clone, Default)]
pub struct StaticSecrets {
    secrets: HashMap<String, String>,
}

impl StaticSecrets {
    pub fn new() -> StaticSecrets {
        StaticSecrets::default()
    }

    /// Adds a secret given as its JSON text (malformed text is reported on read, like the real thing).
    pub fn with(mut self, name: impl Into<String>, json_text: impl Into<String>) -> StaticSecrets {
        self.secrets.insert(name.into(), json_text.into());
        self
    }
}

impl std::fmt::Debug for StaticSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticSecrets")
            .field("names", &self.secrets.keys().collect::<Vec<_>>())
            .finish()
    }
}

#[async_trait]
impl SecretSource for StaticSecrets {
    async fn json(&self, name: &str) -> Result<serde_json::Value> {
        let text = self
            .secrets
            .get(name)
            .ok_or_else(|| StorageError::SecretUnreadable {
                name: name.to_string(),
                status: Some(400),
                message: "ResourceNotFoundException: no such secret".to_string(),
            })?;
        parse_secret_json(name, text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[tokio::test]
    async fn reads_token_or_password_credentials() {
        let secrets = StaticSecrets::new()
            .with("token", r#"{"email": "soc@example.com", "token": "t-1"}"#)
            .with(
                "password",
                r#"{"email": "soc@example.com", "password": "p-1"}"#,
            );
        let token = secrets.api_credentials("token").await.ok();
        assert!(
            matches!(token.map(|c| c.secret), Some(CredentialSecret::Token(t)) if t.expose_secret() == "t-1")
        );
        let password = secrets.api_credentials("password").await.ok();
        assert!(
            matches!(password.map(|c| c.secret), Some(CredentialSecret::Password(p)) if p.expose_secret() == "p-1")
        );
    }

    #[tokio::test]
    async fn malformed_secrets_name_the_problem_without_echoing_it() {
        let secrets = StaticSecrets::new()
            .with("not-json", "email=x token=hunter2")
            .with("no-token", r#"{"email": "soc@example.com"}"#)
            .with("no-email", r#"{"token": "hunter2"}"#)
            .with("array", "[]");
        for (name, expected) in [
            ("not-json", "not valid JSON"),
            ("no-token", "\"token\""),
            ("no-email", "\"email\""),
            ("array", "JSON object"),
        ] {
            let error = secrets
                .api_credentials(name)
                .await
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(
                error.contains(name) && error.contains(expected),
                "{name}: {error}"
            );
            assert!(!error.contains("hunter2"), "{error}");
        }
        let missing = secrets.api_credentials("absent").await.err();
        assert!(matches!(
            missing,
            Some(StorageError::SecretUnreadable { .. })
        ));
    }
}

//! Resolves the secret references of the rules (`env:NAME`, `secretsmanager:NAME`). Values are JSON
//! objects holding the wanted field, or the bare value; a secret read for several fields (an email
//! channel's login) must be an object holding each. Nothing here ever puts a secret in an error.

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use kit_storage::{SecretSource, StorageError};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Mutex;

use crate::rules::{ChannelKind, ChannelRules, SecretRef};

/// The field a channel type reads from its secret (comma-separated when it reads several).
pub fn channel_field(kind: ChannelKind) -> &'static str {
    match kind {
        ChannelKind::Slack => "webhook_url",
        ChannelKind::Pagerduty => "routing_key",
        ChannelKind::Opsgenie => "api_key",
        ChannelKind::Webhook => "signing_key",
        ChannelKind::Email => SMTP_LOGIN_FIELDS,
        ChannelKind::Console => "",
    }
}

/// The fields of an email channel's secret: its SMTP login.
pub const SMTP_LOGIN_FIELDS: &str = "username,password";

/// The field of the acknowledgement link signing key.
pub const ACK_KEY_FIELD: &str = "key";

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("secret {reference}: the environment variable is not set or empty")]
    EnvMissing { reference: SecretRef },
    #[error("secret {reference}: Secrets Manager is not available here")]
    NoSecretsManager { reference: SecretRef },
    #[error("secret {reference}: {reason}")]
    Malformed {
        reference: SecretRef,
        reason: String,
    },
    #[error(transparent)]
    Storage(#[from] StorageError),
}

#[derive(Clone, Default)]
pub struct SecretResolver {
    secrets_manager: Option<Arc<dyn SecretSource>>,
}

impl SecretResolver {
    /// `secrets_manager` serves `secretsmanager:` references; without it they fail with a clear error.
    pub fn new(secrets_manager: Option<Arc<dyn SecretSource>>) -> SecretResolver {
        SecretResolver { secrets_manager }
    }

    /// The value of `field` in the secret `reference` names. Several comma-separated fields
    /// (`username,password`) come back together as one JSON object holding just those, so that a
    /// channel's whole login stays in one [`SecretString`] until the channel uses it.
    pub async fn resolve(
        &self,
        reference: &SecretRef,
        field: &str,
    ) -> Result<SecretString, SecretError> {
        let value = match reference {
            SecretRef::Env(name) => {
                let text = std::env::var(name).ok().filter(|v| !v.trim().is_empty());
                let text = text.ok_or_else(|| SecretError::EnvMissing {
                    reference: reference.clone(),
                })?;
                if text.trim_start().starts_with('{') {
                    // The parse error could quote the secret; report only the position.
                    serde_json::from_str(&text).map_err(|error| SecretError::Malformed {
                        reference: reference.clone(),
                        reason: format!(
                            "not valid JSON (line {}, column {})",
                            error.line(),
                            error.column()
                        ),
                    })?
                } else {
                    serde_json::Value::String(text)
                }
            }
            SecretRef::SecretsManager(name) => {
                let source =
                    self.secrets_manager
                        .as_ref()
                        .ok_or_else(|| SecretError::NoSecretsManager {
                            reference: reference.clone(),
                        })?;
                source.json(name).await?
            }
        };
        if field.contains(',') {
            return several_fields(reference, &value, field);
        }
        let text = match &value {
            serde_json::Value::String(text) => Some(text.as_str()),
            serde_json::Value::Object(object) => object.get(field).and_then(|v| v.as_str()),
            _ => None,
        };
        let text = text
            .map(str::trim)
            .filter(|text| !text.is_empty())
            .ok_or_else(|| SecretError::Malformed {
                reference: reference.clone(),
                reason: format!(
                    "expected a string or a JSON object with a non-empty string field {field:?}"
                ),
            })?;
        Ok(SecretString::from(text.to_string()))
    }
}

impl SecretResolver {
    /// What a channel needs from its secret (`None` for a console channel or one without a secret).
    pub async fn channel_secret(
        &self,
        channel: &ChannelRules,
    ) -> Result<Option<SecretString>, SecretError> {
        match (&channel.secret, channel.kind) {
            (_, ChannelKind::Console) | (None, _) => Ok(None),
            (Some(reference), kind) => self.resolve(reference, channel_field(kind)).await.map(Some),
        }
    }
}

/// The `fields` (comma-separated) of an object secret, as a JSON object of non-empty strings.
fn several_fields(
    reference: &SecretRef,
    value: &serde_json::Value,
    fields: &str,
) -> Result<SecretString, SecretError> {
    let names: Vec<&str> = fields.split(',').collect();
    let wanted = || {
        let quoted: Vec<String> = names.iter().map(|name| format!("{name:?}")).collect();
        format!(
            "expected a JSON object with non-empty string fields {}",
            quoted.join(" and ")
        )
    };
    let object = value.as_object().ok_or_else(|| SecretError::Malformed {
        reference: reference.clone(),
        reason: wanted(),
    })?;
    let mut picked = serde_json::Map::new();
    for name in &names {
        let text = object
            .get(*name)
            .and_then(|v| v.as_str())
            .filter(|text| !text.trim().is_empty())
            .ok_or_else(|| SecretError::Malformed {
                reference: reference.clone(),
                reason: format!("{}; {name:?} is missing or empty", wanted()),
            })?;
        picked.insert((*name).to_string(), text.into());
    }
    Ok(SecretString::from(
        serde_json::Value::Object(picked).to_string(),
    ))
}

/// Least time between two reads of the signing key prompted by links that did not verify, so
/// forged links cannot turn into a stream of Secrets Manager calls.
const KEY_REREAD_INTERVAL: TimeDelta = TimeDelta::seconds(10);

/// The key that verifies acknowledgement links. Read from a secret, it is read again when a link's
/// signature does not match (the secret was rotated while this process kept the old value); the
/// key it replaces still verifies the links sent before the rotation.
#[derive(Clone)]
pub struct SigningKey {
    source: Option<(SecretResolver, SecretRef)>,
    keys: Arc<Mutex<KnownKeys>>,
}

struct KnownKeys {
    current: SecretString,
    previous: Option<SecretString>,
    read_at: Option<DateTime<Utc>>,
}

impl SigningKey {
    /// A key that never changes (tests, the demo).
    pub fn fixed(key: SecretString) -> SigningKey {
        SigningKey {
            source: None,
            keys: Arc::new(Mutex::new(KnownKeys {
                current: key,
                previous: None,
                read_at: None,
            })),
        }
    }

    /// The key held by `reference` (its `key` field), read now and again after a rotation.
    pub async fn from_secret(
        resolver: SecretResolver,
        reference: SecretRef,
        now: DateTime<Utc>,
    ) -> Result<SigningKey, SecretError> {
        let current = resolver.resolve(&reference, ACK_KEY_FIELD).await?;
        Ok(SigningKey {
            source: Some((resolver, reference)),
            keys: Arc::new(Mutex::new(KnownKeys {
                current,
                previous: None,
                read_at: Some(now),
            })),
        })
    }

    /// The keys a link may be signed with, the current one first.
    pub async fn candidates(&self) -> Vec<SecretString> {
        let keys = self.keys.lock().await;
        std::iter::once(keys.current.clone())
            .chain(keys.previous.clone())
            .collect()
    }

    /// Reads the secret again unless it was read moments ago; true when the key changed.
    pub async fn reread(&self, now: DateTime<Utc>) -> Result<bool, SecretError> {
        let Some((resolver, reference)) = &self.source else {
            return Ok(false);
        };
        let mut keys = self.keys.lock().await;
        if keys
            .read_at
            .is_some_and(|read_at| now - read_at < KEY_REREAD_INTERVAL)
        {
            return Ok(false);
        }
        keys.read_at = Some(now);
        let fresh = resolver.resolve(reference, ACK_KEY_FIELD).await?;
        if fresh.expose_secret() == keys.current.expose_secret() {
            return Ok(false);
        }
        tracing::info!(secret = %reference, "the link signing key changed; links signed with it verify now");
        keys.previous = Some(std::mem::replace(&mut keys.current, fresh));
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use kit_storage::StaticSecrets;
    use secrecy::ExposeSecret;

    use super::*;

    #[tokio::test]
    async fn reads_objects_and_bare_strings_from_secrets_manager() {
        let source = StaticSecrets::new()
            .with("pd", r#"{"routing_key": "R1"}"#)
            .with("bare", r#""R2""#)
            .with("wrong", r#"{"other": "x"}"#);
        let resolver = SecretResolver::new(Some(Arc::new(source)));
        let pd = resolver
            .resolve(&SecretRef::SecretsManager("pd".into()), "routing_key")
            .await
            .unwrap();
        assert_eq!(pd.expose_secret(), "R1");
        let bare = resolver
            .resolve(&SecretRef::SecretsManager("bare".into()), "routing_key")
            .await
            .unwrap();
        assert_eq!(bare.expose_secret(), "R2");
        let error = resolver
            .resolve(&SecretRef::SecretsManager("wrong".into()), "routing_key")
            .await
            .unwrap_err();
        assert!(error.to_string().contains("\"routing_key\""), "{error}");
        let error = SecretResolver::default()
            .resolve(&SecretRef::SecretsManager("pd".into()), "x")
            .await
            .unwrap_err();
        assert!(matches!(error, SecretError::NoSecretsManager { .. }));
    }

    #[tokio::test]
    async fn an_smtp_login_needs_both_fields_and_never_echoes_them() {
        let source = StaticSecrets::new()
            .with(
                "smtp",
                r#"{"username": "mailer", "password": "pa55-w0rd", "note": "x"}"#,
            )
            .with("no-password", r#"{"username": "mailer", "password": ""}"#)
            .with("bare", r#""pa55-w0rd""#);
        let resolver = SecretResolver::new(Some(Arc::new(source)));
        let field = channel_field(ChannelKind::Email);
        let login = resolver
            .resolve(&SecretRef::SecretsManager("smtp".into()), field)
            .await
            .unwrap();
        let login: serde_json::Value = serde_json::from_str(login.expose_secret()).unwrap();
        assert_eq!(
            login,
            serde_json::json!({"username": "mailer", "password": "pa55-w0rd"})
        );
        let error = resolver
            .resolve(&SecretRef::SecretsManager("no-password".into()), field)
            .await
            .unwrap_err();
        assert!(
            error
                .to_string()
                .contains("\"password\" is missing or empty"),
            "{error}"
        );
        assert!(!error.to_string().contains("mailer"), "{error}");
        let error = resolver
            .resolve(&SecretRef::SecretsManager("bare".into()), field)
            .await
            .unwrap_err();
        assert!(
            error.to_string().contains(
                "a JSON object with non-empty string fields \"username\" and \"password\""
            ),
            "{error}"
        );
        assert!(!error.to_string().contains("pa55"), "{error}");
    }

    #[tokio::test]
    async fn env_secrets_missing_or_malformed_never_echo_the_value() {
        let resolver = SecretResolver::default();
        let error = resolver
            .resolve(
                &SecretRef::Env("AGENT_HEALTH_TEST_SURELY_UNSET".into()),
                "x",
            )
            .await
            .unwrap_err();
        assert!(matches!(error, SecretError::EnvMissing { .. }));
        assert!(
            error
                .to_string()
                .contains("env:AGENT_HEALTH_TEST_SURELY_UNSET")
        );
    }
}

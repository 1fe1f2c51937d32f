//! Credentials (secret, never printed) and the legacy password session.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Mutex;

/// Who calls the API: an e-mail plus either an API access token or a password.
#[derive(Clone)]
pub struct Credentials {
    pub email: String,
    pub secret: CredentialSecret,
}

/// The secret half of [`Credentials`].
#[derive(Clone)]
pub enum CredentialSecret {
    /// API access token, sent as `x-api-user` / `x-api-token` on every call.
    Token(SecretString),
    /// Password for `POST /auth`, exchanged for a Bearer session token.
    Password(SecretString),
}

impl Credentials {
    pub fn token(email: impl Into<String>, token: impl Into<String>) -> Credentials {
        Credentials {
            email: email.into(),
            secret: CredentialSecret::Token(SecretString::from(token.into())),
        }
    }

    pub fn password(email: impl Into<String>, password: impl Into<String>) -> Credentials {
        Credentials {
            email: email.into(),
            secret: CredentialSecret::Password(SecretString::from(password.into())),
        }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("email", &self.email)
            .field("secret", &self.secret)
            .finish()
    }
}

impl fmt::Debug for CredentialSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CredentialSecret::Token(_) => f.write_str("Token([REDACTED])"),
            CredentialSecret::Password(_) => f.write_str("Password([REDACTED])"),
        }
    }
}

/// A Bearer token from `POST /auth`, numbered so concurrent 401s trigger one re-login, not many.
#[derive(Clone)]
pub(crate) struct Session {
    pub(crate) token: SecretString,
    pub(crate) generation: u64,
}

/// The shared password session: `None` until the first login.
#[derive(Default)]
pub(crate) struct SessionCell {
    current: Mutex<Option<Session>>,
}

impl SessionCell {
    /// The current session, logging in with `login` if there is none yet.
    pub(crate) async fn get_or_login<F, Fut>(&self, login: F) -> crate::Result<Session>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = crate::Result<SecretString>>,
    {
        let mut current = self.current.lock().await;
        if let Some(session) = current.as_ref() {
            return Ok(session.clone());
        }
        let session = Session {
            token: login().await?,
            generation: 1,
        };
        *current = Some(session.clone());
        Ok(session)
    }

    /// Replaces a session the API rejected. If another caller already replaced `rejected`,
    /// its newer session is returned without logging in again.
    pub(crate) async fn renew<F, Fut>(&self, rejected: u64, login: F) -> crate::Result<Session>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = crate::Result<SecretString>>,
    {
        let mut current = self.current.lock().await;
        if let Some(session) = current.as_ref().filter(|s| s.generation != rejected) {
            return Ok(session.clone());
        }
        let session = Session {
            token: login().await?,
            generation: rejected + 1,
        };
        *current = Some(session.clone());
        Ok(session)
    }
}

/// Exposes a secret only to put it on the wire.
pub(crate) fn expose(secret: &SecretString) -> &str {
    secret.expose_secret()
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[test]
    fn debug_redacts_secrets() {
        for creds in [
            Credentials::token("me@example.com", "tok-SECRET-123"),
            Credentials::password("me@example.com", "pw-SECRET-456"),
        ] {
            let printed = format!("{creds:?} {:#?}", creds);
            assert!(!printed.contains("SECRET"), "{printed}");
            assert!(printed.contains("REDACTED"), "{printed}");
            assert!(printed.contains("me@example.com"), "{printed}");
        }
    }

    #[tokio::test]
    async fn concurrent_renewals_log_in_once() {
        let cell = SessionCell::default();
        let logins = AtomicUsize::new(0);
        let login = || async {
            let n = logins.fetch_add(1, Ordering::SeqCst);
            Ok(SecretString::from(format!("session-{n}")))
        };
        let first = cell.get_or_login(login).await.expect("login");
        assert_eq!(first.generation, 1);
        // Two callers saw generation 1 rejected; only the first logs in again.
        let a = cell.renew(first.generation, login).await.expect("renew");
        let b = cell.renew(first.generation, login).await.expect("renew");
        assert_eq!(a.generation, 2);
        assert_eq!(b.generation, 2);
        assert_eq!(expose(&b.token), "session-1");
        assert_eq!(logins.load(Ordering::SeqCst), 2);
    }
}

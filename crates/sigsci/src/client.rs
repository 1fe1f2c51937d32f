//! The client: configuration, authentication and the one `send` path every call goes through.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use secrecy::SecretString;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tracing::Instrument;
use url::Url;

use crate::auth::{CredentialSecret, Credentials, Session, SessionCell, expose};
use crate::buffers;
use crate::error::{Error, RequestKind, Result, classify, parse_retry_after};
use crate::limiter::FeedLimiter;
use crate::retry::{self, RetryPolicy};

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Signal Sciences v0 API client. Cheap to clone; clones share the HTTP pool, the password
/// session and the feed concurrency limits.
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    http: reqwest::Client,
    /// Base URL without a trailing slash, e.g. `http://127.0.0.1:8080`; API paths add `/api/v0`.
    pub(crate) base: Url,
    corp: String,
    credentials: Credentials,
    session: SessionCell,
    retry: RetryPolicy,
    pub(crate) feed_limiter: FeedLimiter,
}

// Debug shows where the client points; credentials print redacted.
impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.base_str())
            .field("corp", &self.inner.corp)
            .field("credentials", &self.inner.credentials)
            .finish_non_exhaustive()
    }
}

/// Configures a [`Client`]; see [`Client::builder`].
pub struct ClientBuilder {
    base_url: String,
    corp: String,
    credentials: Credentials,
    retry: RetryPolicy,
    timeout: Duration,
    user_agent: String,
}

impl ClientBuilder {
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// Whole-request timeout (connect, send, read the body).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.user_agent = user_agent.into();
        self
    }

    pub fn build(self) -> Result<Client> {
        let base = Url::parse(self.base_url.trim_end_matches('/'))
            .map_err(|e| Error::config(format!("base URL {:?}: {e}", self.base_url)))?;
        if !matches!(base.scheme(), "http" | "https")
            || base.cannot_be_a_base()
            || base.query().is_some()
            || base.fragment().is_some()
        {
            return Err(Error::config(format!(
                "base URL {:?} must be a plain http(s) URL such as {}",
                self.base_url,
                crate::DEFAULT_API_URL
            )));
        }
        if !crate::is_short_name(&self.corp) {
            return Err(Error::config(format!(
                "corp name {:?} must match [0-9a-z_.-]+",
                self.corp
            )));
        }
        if self.credentials.email.trim().is_empty() {
            return Err(Error::config("credentials email is empty"));
        }
        if self.retry.max_attempts == 0 {
            return Err(Error::config("retry max_attempts must be at least 1"));
        }
        if self.timeout.is_zero() {
            return Err(Error::config("timeout must be greater than zero"));
        }
        let http = reqwest::Client::builder()
            .user_agent(self.user_agent)
            .timeout(self.timeout)
            .connect_timeout(self.timeout.min(MAX_CONNECT_TIMEOUT))
            // The API never redirects a valid call; a redirect means a login page or a proxy.
            .redirect(reqwest::redirect::Policy::none())
            .tcp_nodelay(true)
            .build()
            .map_err(|e| Error::config(format!("HTTP client: {e}")))?;
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                base,
                corp: self.corp,
                credentials: self.credentials,
                session: SessionCell::default(),
                retry: self.retry,
                feed_limiter: FeedLimiter::default(),
            }),
        })
    }
}

/// Request body of one call.
pub(crate) enum Payload {
    Empty,
    Json(Vec<u8>),
    /// `application/x-www-form-urlencoded` text (login, feed cursors).
    Form(String),
}

/// One logical API call; `send` may perform it several times.
pub(crate) struct Call {
    pub(crate) method: Method,
    /// Path template for logs and metrics, never the concrete URL (cursors are secret-ish).
    pub(crate) template: &'static str,
    pub(crate) url: String,
    pub(crate) payload: Payload,
    pub(crate) kind: RequestKind,
    /// Feed calls hold a per-site/per-corp concurrency permit for the HTTP exchange.
    pub(crate) feed_site: Option<String>,
    /// Safe to repeat after an unclear failure (everything but creates).
    pub(crate) idempotent: bool,
}

impl Call {
    pub(crate) fn new(method: Method, template: &'static str, url: Url) -> Call {
        let idempotent = method != Method::POST;
        Call {
            method,
            template,
            url: url.into(),
            payload: Payload::Empty,
            kind: RequestKind::Plain,
            feed_site: None,
            idempotent,
        }
    }

    pub(crate) fn json<B: serde::Serialize>(mut self, body: &B) -> Result<Call> {
        let bytes = serde_json::to_vec(body)
            .map_err(|e| Error::config(format!("request body does not serialize: {e}")))?;
        self.payload = Payload::Json(bytes);
        Ok(self)
    }
}

/// A reply as read off the wire.
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) retry_after: Option<Duration>,
    pub(crate) body: Vec<u8>,
}

/// Which credentials go on a request.
enum Auth {
    None,
    Token,
    Bearer(Session),
}

#[derive(Deserialize)]
struct LoginReply {
    token: Option<String>,
    message: Option<String>,
}

impl Client {
    pub fn builder(
        base_url: impl Into<String>,
        corp: impl Into<String>,
        credentials: Credentials,
    ) -> ClientBuilder {
        ClientBuilder {
            base_url: base_url.into(),
            corp: corp.into(),
            credentials,
            retry: RetryPolicy::default(),
            timeout: DEFAULT_TIMEOUT,
            user_agent: format!("sigsci-kit/{}", env!("CARGO_PKG_VERSION")),
        }
    }

    pub fn corp(&self) -> &str {
        &self.inner.corp
    }

    /// `base/api/v0/<segments...>`, each segment percent-encoded.
    pub(crate) fn api_url(&self, segments: &[&str]) -> Result<Url> {
        let mut url = self.inner.base.clone();
        url.path_segments_mut()
            .map_err(|_| Error::config("base URL cannot take a path"))?
            .pop_if_empty()
            .extend(["api", "v0"])
            .extend(segments);
        Ok(url)
    }

    /// `base/api/v0/corps/{corp}/<segments...>`.
    pub(crate) fn corp_url(&self, segments: &[&str]) -> Result<Url> {
        let mut all = vec!["corps", self.inner.corp.as_str()];
        all.extend_from_slice(segments);
        self.api_url(&all)
    }

    /// The base URL as text without a trailing slash, for joining API-given absolute paths.
    pub(crate) fn base_str(&self) -> &str {
        self.inner.base.as_str().trim_end_matches('/')
    }

    /// Performs `call` with retries and decodes the reply; see [`Client::send_counted`].
    pub(crate) async fn send<T>(
        &self,
        call: &Call,
        decode: impl Fn(Reply) -> Result<T>,
    ) -> Result<T> {
        self.send_counted(call, decode, &AtomicU32::new(0)).await
    }

    /// The single path of every API call: auth headers, feed permits, retries with backoff,
    /// one re-login on a 401 in password mode, classification of failures, decoding.
    /// Decoding runs inside the retried attempt, so a truncated body is fetched again.
    /// `attempts` counts the HTTP attempts made.
    pub(crate) async fn send_counted<T>(
        &self,
        call: &Call,
        decode: impl Fn(Reply) -> Result<T>,
        attempts: &AtomicU32,
    ) -> Result<T> {
        let relogged = AtomicBool::new(false);
        let span =
            tracing::debug_span!("sigsci_call", method = %call.method, endpoint = call.template);
        let result = retry::run(&self.inner.retry, call.idempotent, call.template, || {
            self.attempt(call, &decode, attempts, &relogged)
        })
        .instrument(span)
        .await;
        if let Err(error) = &result {
            tracing::debug!(
                method = %call.method,
                endpoint = call.template,
                attempts = attempts.load(Ordering::Relaxed),
                error = %error,
                "sigsci call failed"
            );
        }
        result
    }

    async fn attempt<T>(
        &self,
        call: &Call,
        decode: &impl Fn(Reply) -> Result<T>,
        attempts: &AtomicU32,
        relogged: &AtomicBool,
    ) -> Result<T> {
        let mut auth = self.auth().await?;
        loop {
            let attempt = attempts.fetch_add(1, Ordering::Relaxed) + 1;
            let reply = self.exchange(call, &auth, attempt).await?;
            if reply.status == StatusCode::UNAUTHORIZED
                && let Auth::Bearer(session) = &auth
                && !relogged.swap(true, Ordering::Relaxed)
            {
                // The session expired or was revoked: log in again once, then repeat the call.
                tracing::debug!(
                    endpoint = call.template,
                    "session rejected, logging in again"
                );
                let renewed = self
                    .inner
                    .session
                    .renew(session.generation, || self.login())
                    .await?;
                auth = Auth::Bearer(renewed);
                continue;
            }
            if !reply.status.is_success() {
                return Err(classify(
                    reply.status,
                    reply.retry_after,
                    &reply.body,
                    call.kind,
                ));
            }
            return decode(reply);
        }
    }

    async fn auth(&self) -> Result<Auth> {
        match &self.inner.credentials.secret {
            CredentialSecret::Token(_) => Ok(Auth::Token),
            CredentialSecret::Password(_) => Ok(Auth::Bearer(
                self.inner.session.get_or_login(|| self.login()).await?,
            )),
        }
    }

    /// `POST /auth` with the password; the token becomes the shared session.
    async fn login(&self) -> Result<SecretString> {
        let CredentialSecret::Password(password) = &self.inner.credentials.secret else {
            return Err(Error::config("login needs password credentials"));
        };
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("email", &self.inner.credentials.email)
            .append_pair("password", expose(password))
            .finish();
        let call = Call {
            payload: Payload::Form(form),
            ..Call::new(Method::POST, "/auth", self.api_url(&["auth"])?)
        };
        let reply = self.exchange(&call, &Auth::None, 1).await?;
        if !reply.status.is_success() {
            return Err(classify(
                reply.status,
                reply.retry_after,
                &reply.body,
                RequestKind::Plain,
            ));
        }
        let status = reply.status;
        let parsed: LoginReply = json(reply)?;
        match (parsed.token, parsed.message) {
            (Some(token), _) if !token.is_empty() => Ok(SecretString::from(token)),
            (_, Some(message)) => Err(Error::Unauthorized {
                status: status.as_u16(),
                message,
            }),
            _ => Err(Error::BadResponse {
                status: status.as_u16(),
                snippet: "login reply has no token".into(),
            }),
        }
    }

    /// One HTTP request/response, body read in full. Logs method, template, status, attempt.
    async fn exchange(&self, call: &Call, auth: &Auth, attempt: u32) -> Result<Reply> {
        let _permit = match &call.feed_site {
            Some(site) => Some(self.inner.feed_limiter.acquire(site).await?),
            None => None,
        };
        let started = Instant::now();
        let mut request = self
            .inner
            .http
            .request(call.method.clone(), call.url.as_str())
            .header(ACCEPT, "application/json");
        request = match auth {
            Auth::None => request,
            Auth::Token => {
                let CredentialSecret::Token(token) = &self.inner.credentials.secret else {
                    return Err(Error::config("token auth without a token"));
                };
                request
                    .header(
                        "x-api-user",
                        header_value(&self.inner.credentials.email, false)?,
                    )
                    .header("x-api-token", header_value(expose(token), true)?)
            }
            Auth::Bearer(session) => request.header(
                AUTHORIZATION,
                header_value(&format!("Bearer {}", expose(&session.token)), true)?,
            ),
        };
        request = match &call.payload {
            Payload::Empty => request,
            Payload::Json(bytes) => request
                .header(CONTENT_TYPE, "application/json")
                .body(bytes.clone()),
            Payload::Form(text) => request
                .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(text.clone()),
        };
        let outcome = async {
            let response = request.send().await?;
            let status = response.status();
            let retry_after = parse_retry_after(response.headers().get(RETRY_AFTER));
            let body = read_body(response).await?;
            Ok::<_, reqwest::Error>(Reply {
                status,
                retry_after,
                body,
            })
        }
        .await;
        let elapsed_ms = started.elapsed().as_millis() as u64;
        match outcome {
            Ok(reply) => {
                tracing::debug!(
                    method = %call.method,
                    endpoint = call.template,
                    status = reply.status.as_u16(),
                    attempt,
                    elapsed_ms,
                    bytes = reply.body.len(),
                    "sigsci request"
                );
                Ok(reply)
            }
            Err(e) => {
                let error = Error::transport(e);
                tracing::debug!(
                    method = %call.method,
                    endpoint = call.template,
                    attempt,
                    elapsed_ms,
                    error = %error,
                    "sigsci request failed"
                );
                Err(error)
            }
        }
    }
}
/// A declared length larger than this is not trusted for the up-front allocation (a feed page of
/// 1000 records is well under 2 MiB).
const MAX_PRESIZED_BODY: u64 = 16 * 1024 * 1024;

/// The whole body in one buffer allocated at its declared length: collecting the chunks first
/// and joining them held a page twice (feed pages are the exporter's largest allocations).
async fn read_body(mut response: reqwest::Response) -> reqwest::Result<Vec<u8>> {
    let Some(length) = response.content_length() else {
        return Ok(response.bytes().await?.into());
    };
    let length = length.min(MAX_PRESIZED_BODY) as usize;
    let mut body = if length >= buffers::POOLED_BODY {
        buffers::take(length)
    } else {
        Vec::with_capacity(length)
    };
    while let Some(chunk) = response.chunk().await? {
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn header_value(text: &str, sensitive: bool) -> Result<HeaderValue> {
    let mut value = HeaderValue::from_str(text).map_err(|_| {
        Error::config("credential contains characters not allowed in an HTTP header")
    })?;
    value.set_sensitive(sensitive);
    Ok(value)
}

/// Decodes a JSON body; a body that does not fit is a (transient) bad response.
pub(crate) fn json<T: DeserializeOwned>(reply: Reply) -> Result<T> {
    serde_json::from_slice(&reply.body)
        .map_err(|e| Error::undecodable(reply.status, &reply.body, &e))
}

/// For calls whose reply body carries nothing we need (DELETE, PATCH of integrations).
pub(crate) fn ignore_body(_: Reply) -> Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds() -> Credentials {
        Credentials::token("me@example.com", "t")
    }

    #[test]
    fn builder_rejects_bad_input_with_a_clear_message() {
        let cases = [
            ("not a url", "corp", "base URL"),
            ("ftp://example.com", "corp", "plain http(s)"),
            ("http://example.com?x=1", "corp", "plain http(s)"),
            ("http://example.com", "Corp", "corp name"),
            ("http://example.com", "", "corp name"),
        ];
        for (base, corp, expected) in cases {
            match Client::builder(base, corp, creds()).build() {
                Err(Error::Config { message }) => assert!(message.contains(expected), "{message}"),
                Err(other) => panic!("{base} {corp}: unexpected error {other:?}"),
                Ok(_) => panic!("{base} {corp}: accepted"),
            }
        }
        let no_email = Credentials::token(" ", "t");
        assert!(matches!(
            Client::builder("http://example.com", "corp", no_email).build(),
            Err(Error::Config { .. })
        ));
    }

    #[test]
    fn debug_shows_target_but_not_secrets() {
        let client = Client::builder(
            "http://127.0.0.1:9",
            "corp",
            Credentials::password("me@example.com", "pw-SECRET"),
        )
        .build()
        .expect("client");
        let printed = format!("{client:?}");
        assert!(
            printed.contains("http://127.0.0.1:9") && printed.contains("corp"),
            "{printed}"
        );
        assert!(!printed.contains("SECRET"), "{printed}");
    }

    #[test]
    fn urls_are_built_under_api_v0_with_encoded_segments() {
        let client = Client::builder("http://127.0.0.1:9/", "corp", creds())
            .build()
            .expect("client");
        assert_eq!(client.base_str(), "http://127.0.0.1:9");
        let url = client.corp_url(&["sites", "a b/c", "alerts"]).expect("url");
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:9/api/v0/corps/corp/sites/a%20b%2Fc/alerts"
        );
    }
}

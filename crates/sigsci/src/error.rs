//! Typed API errors and the single function that classifies an HTTP reply into one.
//!
//! Classification only says *what* went wrong; whether and when to retry lives in `retry`.

use std::time::Duration;

use reqwest::StatusCode;
use serde::Deserialize;

/// Result alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Longest body excerpt kept in an error (characters).
const SNIPPET_CHARS: usize = 160;

/// Everything a call can fail with. Variants that came from an HTTP reply keep its status.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A real 404: the resource does not exist. Nothing else maps here.
    #[error("404 not found: {message}")]
    NotFound { message: String },
    #[error("{status} unauthorized: {message}")]
    Unauthorized { status: u16, message: String },
    #[error("{status} forbidden: {message}")]
    Forbidden { status: u16, message: String },
    /// 429, or the older API's 400 "Rate limit exceeded".
    #[error("{status} rate limited: {message}")]
    RateLimited {
        status: u16,
        retry_after: Option<Duration>,
        message: String,
    },
    /// The API rejected the request (400 or another 4xx with a `message`).
    #[error("{status} rejected: {message}")]
    Validation { status: u16, message: String },
    /// The feed cursor is older than the API keeps it; restart the window.
    #[error("400 feed cursor expired: {message}")]
    CursorExpired { message: String },
    #[error("414 URI too long")]
    UriTooLong,
    #[error("{status} server error: {message}")]
    Server { status: u16, message: String },
    /// The reply could not be used: not JSON, HTML, truncated, or missing what the call needs.
    #[error("unusable response (HTTP {status}): {snippet}")]
    BadResponse { status: u16, snippet: String },
    /// Connection, timeout or body-read failure (the URL is stripped so cursors never leak).
    /// reqwest keeps the reason (refused, timed out) in its causes: the message carries them all,
    /// so no `source()` repeats them under `{:#}`.
    #[error("transport error: {}", with_causes(.cause))]
    Transport { cause: reqwest::Error },
    /// Bad client configuration or bad input; names the problem.
    #[error("invalid configuration: {message}")]
    Config { message: String },
}

impl Error {
    /// The HTTP status this error came from, if any.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::NotFound { .. } => Some(404),
            Error::Unauthorized { status, .. }
            | Error::Forbidden { status, .. }
            | Error::RateLimited { status, .. }
            | Error::Validation { status, .. }
            | Error::Server { status, .. }
            | Error::BadResponse { status, .. } => Some(*status),
            Error::CursorExpired { .. } => Some(400),
            Error::UriTooLong => Some(414),
            Error::Transport { cause } => cause.status().map(|s| s.as_u16()),
            Error::Config { .. } => None,
        }
    }

    /// True when the same request may succeed later (rate limits, 5xx, garbled replies, network).
    pub fn is_transient(&self) -> bool {
        match self {
            Error::RateLimited { .. } | Error::Server { .. } | Error::BadResponse { .. } => true,
            Error::Transport { cause } => !cause.is_builder(),
            Error::NotFound { .. }
            | Error::Unauthorized { .. }
            | Error::Forbidden { .. }
            | Error::Validation { .. }
            | Error::CursorExpired { .. }
            | Error::UriTooLong
            | Error::Config { .. } => false,
        }
    }

    pub(crate) fn transport(cause: reqwest::Error) -> Error {
        Error::Transport {
            cause: cause.without_url(),
        }
    }

    pub(crate) fn config(message: impl Into<String>) -> Error {
        Error::Config {
            message: message.into(),
        }
    }

    /// A 2xx body that did not decode into what the call expects.
    pub(crate) fn undecodable(
        status: StatusCode,
        body: &[u8],
        cause: impl std::fmt::Display,
    ) -> Error {
        Error::BadResponse {
            status: status.as_u16(),
            snippet: format!("{cause}; body starts: {}", snippet(body)),
        }
    }
}

/// `error: cause: cause...` on one line, skipping a cause the text already holds (hyper, reqwest
/// and the AWS SDK sometimes repeat their cause in their own message). A transport error alone
/// says "error sending request", not whether the name, the connection or TLS failed.
pub fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut next = error.source();
    while let Some(cause) = next {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        next = cause.source();
    }
    text
}

/// What the request was, as far as classification cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RequestKind {
    Plain,
    /// A feed request that carries a `next` cursor: a 400 about expiry means the cursor died.
    FeedCursor,
}

#[derive(Deserialize)]
struct ErrorBody {
    message: Option<String>,
}

/// Turns a non-2xx reply into its typed error. `retry_after` is the parsed `Retry-After` header.
pub(crate) fn classify(
    status: StatusCode,
    retry_after: Option<Duration>,
    body: &[u8],
    kind: RequestKind,
) -> Error {
    let json_message = serde_json::from_slice::<ErrorBody>(body)
        .ok()
        .and_then(|b| b.message);
    let code = status.as_u16();
    let message = || json_message.clone().unwrap_or_else(|| snippet(body));
    match code {
        401 => Error::Unauthorized {
            status: code,
            message: message(),
        },
        403 => Error::Forbidden {
            status: code,
            message: message(),
        },
        404 => Error::NotFound { message: message() },
        414 => Error::UriTooLong,
        429 => Error::RateLimited {
            status: code,
            retry_after,
            message: message(),
        },
        500..=599 => Error::Server {
            status: code,
            message: message(),
        },
        400..=499 => match json_message {
            Some(m) if m.to_ascii_lowercase().contains("rate limit exceeded") => {
                Error::RateLimited {
                    status: code,
                    retry_after,
                    message: m,
                }
            }
            Some(m)
                if code == 400
                    && kind == RequestKind::FeedCursor
                    && m.to_ascii_lowercase().contains("expire") =>
            {
                Error::CursorExpired { message: m }
            }
            Some(m) => Error::Validation {
                status: code,
                message: m,
            },
            // A 4xx without the API's JSON error body came from something else (a proxy page).
            None => Error::BadResponse {
                status: code,
                snippet: snippet(body),
            },
        },
        // 1xx/3xx (redirects are not followed): not an API answer.
        _ => Error::BadResponse {
            status: code,
            snippet: snippet(body),
        },
    }
}

/// Parses `Retry-After` in its delta-seconds form; HTTP dates are not sent by this API.
pub(crate) fn parse_retry_after(value: Option<&reqwest::header::HeaderValue>) -> Option<Duration> {
    let text = value?.to_str().ok()?;
    text.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// A short, single-line excerpt of a body with any feed cursor masked.
pub(crate) fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let short: String = text
        .chars()
        .take(SNIPPET_CHARS)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let masked = mask_cursors(&short);
    if text.chars().count() > SNIPPET_CHARS {
        format!("{masked}…")
    } else if masked.is_empty() {
        "<empty body>".to_string()
    } else {
        masked
    }
}

/// Replaces the value of every `next=` query parameter with `…` so cursors never reach logs.
pub(crate) fn mask_cursors(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find("next=") {
        let (head, tail) = rest.split_at(pos + "next=".len());
        out.push_str(head);
        out.push('…');
        let end = tail
            .find(|c: char| c == '&' || c == '"' || c.is_whitespace())
            .unwrap_or(tail.len());
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// anyhow's `{:#}` prints the message, then each `source()`: every cause must show once.
    #[tokio::test]
    async fn transport_errors_print_each_cause_once() {
        let refused = reqwest::get("http://127.0.0.1:9/api/v0/corps")
            .await
            .expect_err("nothing listens on the discard port");
        let error = Error::transport(refused);
        let text = format!("{:#}", anyhow::Error::new(error));
        assert!(
            text.starts_with("transport error: error sending request"),
            "{text}"
        );
        assert!(text.contains("Connection refused"), "{text}");
        let parts: Vec<&str> = text.split(": ").collect();
        for (index, part) in parts.iter().enumerate() {
            assert!(
                !parts[index + 1..].contains(part),
                "{part:?} repeats in {text}"
            );
        }
    }

    #[test]
    fn http_errors_print_once() {
        let error = c(401, r#"{"message":"Unauthorized"}"#, RequestKind::Plain);
        assert_eq!(
            format!("{:#}", anyhow::Error::new(error)),
            "401 unauthorized: Unauthorized"
        );
    }

    fn c(status: u16, body: &str, kind: RequestKind) -> Error {
        let status = StatusCode::from_u16(status).expect("valid status");
        classify(status, Some(Duration::from_secs(3)), body.as_bytes(), kind)
    }

    /// One row: a reply, and what it must classify as.
    struct Case {
        status: u16,
        body: &'static str,
        kind: RequestKind,
        variant: &'static str,
        transient: bool,
    }

    const fn case(
        status: u16,
        body: &'static str,
        kind: RequestKind,
        variant: &'static str,
        transient: bool,
    ) -> Case {
        Case {
            status,
            body,
            kind,
            variant,
            transient,
        }
    }

    #[test]
    fn classification_table() {
        use RequestKind::{FeedCursor, Plain};
        const HTML: &str = "<html><body><h1>502 Bad Gateway</h1></body></html>";
        let cases = [
            case(
                401,
                r#"{"message":"Invalid credentials"}"#,
                Plain,
                "Unauthorized",
                false,
            ),
            case(403, r#"{"message":"Forbidden"}"#, Plain, "Forbidden", false),
            case(
                404,
                r#"{"message":"Site not found"}"#,
                Plain,
                "NotFound",
                false,
            ),
            case(404, HTML, Plain, "NotFound", false),
            case(414, "", Plain, "UriTooLong", false),
            case(
                429,
                r#"{"message":"Too many concurrent requests"}"#,
                Plain,
                "RateLimited",
                true,
            ),
            case(429, "", Plain, "RateLimited", true),
            case(
                400,
                r#"{"message":"Rate limit exceeded"}"#,
                Plain,
                "RateLimited",
                true,
            ),
            case(
                400,
                r#"{"message":"rate limit exceeded, slow down"}"#,
                FeedCursor,
                "RateLimited",
                true,
            ),
            case(
                400,
                r#"{"message":"next cursor has expired"}"#,
                FeedCursor,
                "CursorExpired",
                false,
            ),
            // Without a cursor an "expired" message is an ordinary validation error.
            case(
                400,
                r#"{"message":"next cursor has expired"}"#,
                Plain,
                "Validation",
                false,
            ),
            case(
                400,
                r#"{"message":"longName must be 3-25 characters"}"#,
                Plain,
                "Validation",
                false,
            ),
            case(
                409,
                r#"{"message":"already exists"}"#,
                Plain,
                "Validation",
                false,
            ),
            case(400, HTML, Plain, "BadResponse", true),
            case(500, r#"{"message":"internal"}"#, Plain, "Server", true),
            case(502, HTML, Plain, "Server", true),
            case(503, "", Plain, "Server", true),
            case(302, "", Plain, "BadResponse", true),
        ];
        for Case {
            status,
            body,
            kind,
            variant,
            transient,
        } in cases
        {
            let err = c(status, body, kind);
            let name = format!("{err:?}");
            assert!(
                name.starts_with(variant),
                "{status} {body} {kind:?}: got {name}, want {variant}"
            );
            assert_eq!(err.status(), Some(status), "{status} {body}");
            assert_eq!(err.is_transient(), transient, "{status} {body}");
        }
    }

    #[test]
    fn rate_limit_keeps_retry_after_and_message() {
        match c(
            429,
            r#"{"message":"Too Many Requests"}"#,
            RequestKind::Plain,
        ) {
            Error::RateLimited {
                retry_after,
                message,
                ..
            } => {
                assert_eq!(retry_after, Some(Duration::from_secs(3)));
                assert_eq!(message, "Too Many Requests");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn validation_keeps_message() {
        match c(
            400,
            r#"{"message":"tagName: unknown signal"}"#,
            RequestKind::Plain,
        ) {
            Error::Validation { status, message } => {
                assert_eq!(status, 400);
                assert_eq!(message, "tagName: unknown signal");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn retry_after_parses_seconds_only() {
        use reqwest::header::HeaderValue;
        let secs = HeaderValue::from_static(" 12 ");
        assert_eq!(
            parse_retry_after(Some(&secs)),
            Some(Duration::from_secs(12))
        );
        let date = HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT");
        assert_eq!(parse_retry_after(Some(&date)), None);
        assert_eq!(parse_retry_after(None), None);
    }

    #[test]
    fn snippets_are_short_and_mask_cursors() {
        let body = format!(
            r#"{{"next":{{"uri":"/api/v0/corps/c/sites/s/feed/requests?next={}&limit=5"}},"data":[{}"#,
            "C".repeat(40),
            "x".repeat(500)
        );
        let s = snippet(body.as_bytes());
        assert!(!s.contains("CCCC"), "cursor leaked: {s}");
        assert!(s.contains("next=…&limit=5"), "{s}");
        assert!(s.chars().count() <= SNIPPET_CHARS + 1, "{s}");
        assert_eq!(snippet(b""), "<empty body>");
        assert_eq!(mask_cursors("a?next=abc"), "a?next=…");
    }

    #[test]
    fn undecodable_body_is_transient_bad_response() {
        let body = br#"{"data":[{"id":"1""#;
        let cause = serde_json::from_slice::<serde_json::Value>(body).expect_err("truncated");
        let err = Error::undecodable(StatusCode::OK, body, &cause);
        assert_eq!(err.status(), Some(200));
        assert!(err.is_transient());
        assert!(err.to_string().contains("EOF"), "{err}");
    }
}

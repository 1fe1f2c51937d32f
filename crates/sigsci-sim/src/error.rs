//! The simulator's error type: every error is a JSON `{"message": ...}` body with the real status.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An API error as the real service reports it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SimError {
    /// 400 validation error.
    #[error("{0}")]
    BadRequest(String),
    /// 401 missing or wrong credentials.
    #[error("Unauthorized")]
    Unauthorized,
    /// 401 from `POST /auth`.
    #[error("Login failed")]
    LoginFailed,
    /// 404.
    #[error("{0}")]
    NotFound(String),
    /// 405.
    #[error("Method not allowed")]
    MethodNotAllowed,
    /// 414 (huge feed cursors).
    #[error("Request-URI Too Long")]
    UriTooLong,
    /// 429 from the feed concurrency limits.
    #[error("Too many concurrent requests")]
    TooManyConcurrent,
    /// 429 injected rate limit.
    #[error("Too Many Requests")]
    RateLimited,
    /// 400 rate limit, as the older API signalled it.
    #[error("Rate limit exceeded")]
    LegacyRateLimited,
    /// 5xx.
    #[error("{message}")]
    Server {
        /// A 5xx status.
        status: StatusCode,
        /// Human-readable text.
        message: String,
    },
}

impl SimError {
    /// The HTTP status this error is served with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) | Self::LegacyRateLimited => StatusCode::BAD_REQUEST,
            Self::Unauthorized | Self::LoginFailed => StatusCode::UNAUTHORIZED,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::UriTooLong => StatusCode::URI_TOO_LONG,
            Self::TooManyConcurrent | Self::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Self::Server { status, .. } => *status,
        }
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::BadRequest(message.into())
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::NotFound(message.into())
    }
}

impl IntoResponse for SimError {
    fn into_response(self) -> Response {
        (self.status(), Json(json!({ "message": self.to_string() }))).into_response()
    }
}

/// Fallback for unknown paths.
pub(crate) async fn not_found() -> SimError {
    SimError::not_found("Not Found")
}

/// Fallback for known paths called with the wrong method.
pub(crate) async fn method_not_allowed() -> SimError {
    SimError::MethodNotAllowed
}

//! Fault injection for `/api/v0` calls: rate limits, 5xx, HTML gateway pages, dropped connections,
//! latency and URI length limits. Draws come from a seeded PRNG, so a call sequence is reproducible.

use std::time::Duration;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::error::SimError;
use crate::rng::{SplitMix, mix};
use crate::state::SimState;
use crate::util::lock;

/// The fault set (`PUT /__sim/faults`). Probabilities are per API call, in `[0, 1]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// 429 `{"message":"Too Many Requests"}`.
    pub rate_limit_429: f64,
    /// 400 `{"message":"Rate limit exceeded"}` (the older API's rate limit).
    pub rate_limit_400: f64,
    /// A JSON 5xx (500/502/503/504).
    pub server_error: f64,
    /// A `text/html` 502 page, as a load balancer would send.
    pub html_502: f64,
    /// Connection dropped without any response.
    pub reset: f64,
    /// A feed page truncated mid-JSON (feed calls only).
    pub malformed: f64,
    /// Delay before every API call.
    pub latency_ms: u64,
    /// Extra delay of every feed page (while it holds its concurrency slot).
    pub page_latency_ms: u64,
    /// Lifetime of feed cursors, simulator-clock seconds.
    pub cursor_ttl_secs: u64,
    /// Longest accepted request URI (path + query); longer gets 414.
    pub max_uri_len: usize,
    /// Pads feed cursors to at least this many bytes.
    pub cursor_pad: usize,
    /// Feed pages run backwards in time within each 10-minute block of the window, as the real
    /// feed promises no order.
    pub pages_out_of_order: bool,
    /// A feed window also serves the minute after `until` (the next sub-window serves it again),
    /// and each page's last record opens the next page again.
    pub repeat_across_boundaries: bool,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            rate_limit_429: 0.0,
            rate_limit_400: 0.0,
            server_error: 0.0,
            html_502: 0.0,
            reset: 0.0,
            malformed: 0.0,
            latency_ms: 0,
            page_latency_ms: 0,
            cursor_ttl_secs: 60,
            max_uri_len: 8192,
            cursor_pad: 0,
            pages_out_of_order: false,
            repeat_across_boundaries: false,
        }
    }
}

impl Faults {
    pub(crate) fn validate(&self) -> Result<(), SimError> {
        let probabilities = [
            ("rate_limit_429", self.rate_limit_429),
            ("rate_limit_400", self.rate_limit_400),
            ("server_error", self.server_error),
            ("html_502", self.html_502),
            ("reset", self.reset),
            ("malformed", self.malformed),
        ];
        for (name, p) in probabilities {
            if !(0.0..=1.0).contains(&p) {
                return Err(SimError::bad_request(format!(
                    "{name} must be a probability in [0, 1], got {p}"
                )));
            }
        }
        let exclusive = self.rate_limit_429
            + self.rate_limit_400
            + self.server_error
            + self.html_502
            + self.reset;
        if exclusive > 1.0 + 1e-9 {
            return Err(SimError::bad_request(
                "rate_limit_429 + rate_limit_400 + server_error + html_502 + reset must not exceed 1",
            ));
        }
        Ok(())
    }
}

/// A fault answering a call instead of the handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ResponseFault {
    RateLimited,
    LegacyRateLimited,
    Server(StatusCode),
    Html502,
    Reset,
}

/// Marker extension: the server drops the connection instead of sending this response.
#[derive(Debug, Clone, Copy)]
pub struct ResetConnection;

const HTML_502: &str = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n";

impl IntoResponse for ResponseFault {
    fn into_response(self) -> Response {
        match self {
            Self::RateLimited => SimError::RateLimited.into_response(),
            Self::LegacyRateLimited => SimError::LegacyRateLimited.into_response(),
            Self::Server(status) => SimError::Server {
                status,
                message: "Internal server error (simulated)".to_owned(),
            }
            .into_response(),
            Self::Html502 => (
                StatusCode::BAD_GATEWAY,
                [(header::CONTENT_TYPE, "text/html")],
                HTML_502,
            )
                .into_response(),
            Self::Reset => {
                let mut response = StatusCode::INTERNAL_SERVER_ERROR.into_response();
                response.extensions_mut().insert(ResetConnection);
                response
            }
        }
    }
}

/// The fault set plus its draw sequence.
#[derive(Debug)]
pub(crate) struct FaultState {
    pub(crate) faults: Faults,
    rng: SplitMix,
}

const SERVER_ERRORS: [StatusCode; 4] = [
    StatusCode::INTERNAL_SERVER_ERROR,
    StatusCode::BAD_GATEWAY,
    StatusCode::SERVICE_UNAVAILABLE,
    StatusCode::GATEWAY_TIMEOUT,
];

impl FaultState {
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            faults: Faults::default(),
            rng: Self::rng(seed),
        }
    }

    fn rng(seed: u64) -> SplitMix {
        SplitMix::new(mix(seed ^ 0x6661_756c_7473))
    }

    pub(crate) fn replace(&mut self, faults: Faults, seed: u64) {
        self.faults = faults;
        self.rng = Self::rng(seed);
    }

    /// One draw decides which (if any) response fault hits this call.
    pub(crate) fn draw_response_fault(&mut self) -> Option<ResponseFault> {
        let f = &self.faults;
        if f.rate_limit_429 + f.rate_limit_400 + f.server_error + f.html_502 + f.reset <= 0.0 {
            return None;
        }
        let mut ticket = self.rng.unit();
        let table = [
            (f.rate_limit_429, ResponseFault::RateLimited),
            (f.rate_limit_400, ResponseFault::LegacyRateLimited),
            (
                f.server_error,
                ResponseFault::Server(StatusCode::INTERNAL_SERVER_ERROR),
            ),
            (f.html_502, ResponseFault::Html502),
            (f.reset, ResponseFault::Reset),
        ];
        for (p, fault) in table {
            if ticket < p {
                return Some(match fault {
                    ResponseFault::Server(_) => {
                        ResponseFault::Server(*self.rng.pick(&SERVER_ERRORS))
                    }
                    other => other,
                });
            }
            ticket -= p;
        }
        None
    }

    pub(crate) fn draw_malformed(&mut self) -> bool {
        self.faults.malformed > 0.0 && self.rng.chance(self.faults.malformed)
    }
}

impl SimState {
    pub(crate) fn draw_malformed(&self) -> bool {
        lock(&self.inner.faults).draw_malformed()
    }
}

/// Middleware on every `/api/v0` route: counts the call, then applies URI limit, latency and faults.
pub(crate) async fn api_middleware(
    State(state): State<SimState>,
    request: Request,
    next: Next,
) -> Response {
    let template = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| request.uri().path(), MatchedPath::as_str);
    let template = template.strip_prefix("/api/v0").unwrap_or(template);
    lock(&state.inner.log).record_call(request.method().as_str(), template);

    let (faults, fault) = {
        let mut fault_state = lock(&state.inner.faults);
        let fault = fault_state.draw_response_fault();
        (fault_state.faults.clone(), fault)
    };
    let uri_len = request
        .uri()
        .path_and_query()
        .map_or(0, |pq| pq.as_str().len());
    if uri_len > faults.max_uri_len {
        return SimError::UriTooLong.into_response();
    }
    if faults.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(faults.latency_ms)).await;
    }
    if let Some(fault) = fault {
        tracing::debug!(?fault, path = %request.uri().path(), "injecting fault");
        return fault.into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probabilities_are_validated() {
        let bad = Faults {
            reset: 1.5,
            ..Faults::default()
        };
        assert!(bad.validate().unwrap_err().to_string().contains("reset"));
        let too_much = Faults {
            rate_limit_429: 0.6,
            server_error: 0.6,
            ..Faults::default()
        };
        assert!(too_much.validate().is_err());
        assert!(Faults::default().validate().is_ok());
    }

    #[test]
    fn draws_are_reproducible_and_near_the_rate() {
        let faults = Faults {
            rate_limit_429: 0.25,
            ..Faults::default()
        };
        let run = || {
            let mut state = FaultState::new(9);
            state.replace(faults.clone(), 9);
            (0..4000)
                .map(|_| state.draw_response_fault())
                .collect::<Vec<_>>()
        };
        let first = run();
        assert_eq!(first, run());
        let hits = first
            .iter()
            .filter(|f| **f == Some(ResponseFault::RateLimited))
            .count();
        assert!((800..1200).contains(&hits), "hits {hits}");
    }

    #[test]
    fn certain_fault_always_hits() {
        let mut state = FaultState::new(1);
        state.replace(
            Faults {
                html_502: 1.0,
                ..Faults::default()
            },
            1,
        );
        assert!((0..100).all(|_| state.draw_response_fault() == Some(ResponseFault::Html502)));
    }
}

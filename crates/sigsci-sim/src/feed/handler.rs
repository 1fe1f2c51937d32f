//! `GET|POST /corps/{corp}/sites/{site}/feed/requests`.

use std::time::Duration;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use super::cursor::{Cursor, Position};
use super::generate::{SignalFilter, SiteTraffic, minute_prefix};
use crate::error::SimError;
use crate::extract::{QueryPairs, SitePath};
use crate::faults::Faults;
use crate::rng::{SplitMix, hash_str, mix};
use crate::state::SimState;

/// Data must be at least this old (ingestion delay).
const MIN_AGE_SECS: i64 = 300;
/// Data older than 24 h 5 min is gone.
const MAX_AGE_SECS: i64 = 86_700;
pub(crate) const MAX_LIMIT: u32 = 1000;

/// A validated page request (first page or follow-up).
#[derive(Debug, Clone, PartialEq, Eq)]
struct PageRequest {
    from: i64,
    until: i64,
    tags: Vec<String>,
    limit: u32,
    start: Position,
}

fn parse_limit(raw: Option<&str>) -> Result<Option<u32>, SimError> {
    let Some(raw) = raw.filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    match raw.parse::<u32>() {
        Ok(limit) if (1..=MAX_LIMIT).contains(&limit) => Ok(Some(limit)),
        _ => Err(SimError::bad_request(format!(
            "limit must be an integer between 1 and {MAX_LIMIT}, got {raw:?}"
        ))),
    }
}

fn parse_epoch(params: &QueryPairs, name: &str) -> Result<i64, SimError> {
    let raw = params
        .get(name)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| SimError::bad_request(format!("{name} is required (Unix epoch seconds)")))?;
    let value: i64 = raw.parse().map_err(|_| {
        SimError::bad_request(format!("{name} must be Unix epoch seconds, got {raw:?}"))
    })?;
    if value % 60 != 0 {
        return Err(SimError::bad_request(format!(
            "{name} must fall on a full minute boundary, got {value}"
        )));
    }
    Ok(value)
}

fn parse_tags(raw: Option<&str>) -> Result<Vec<String>, SimError> {
    let tags: Vec<String> = raw
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect();
    let valid = |t: &String| {
        t.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    };
    if let Some(bad) = tags.iter().find(|t| !valid(t)) {
        return Err(SimError::bad_request(format!(
            "tags must be comma-separated signal names, got {bad:?}"
        )));
    }
    Ok(tags)
}

impl PageRequest {
    fn from_params(
        state: &SimState,
        site: &str,
        params: &QueryPairs,
        now: i64,
        ttl: u64,
    ) -> Result<Self, SimError> {
        let limit = parse_limit(params.get("limit"))?;
        if let Some(next) = params.get("next").filter(|s| !s.is_empty()) {
            let cursor = Cursor::decode(next, &state.inner.cursor_key)?;
            if cursor.site != site {
                return Err(SimError::bad_request(
                    "next cursor was issued for another site",
                ));
            }
            if now
                > cursor
                    .issued_at
                    .saturating_add(i64::try_from(ttl).unwrap_or(i64::MAX))
            {
                return Err(SimError::bad_request("next cursor has expired"));
            }
            return Ok(Self {
                from: cursor.from,
                until: cursor.until,
                tags: cursor.tags,
                limit: limit.unwrap_or(cursor.limit),
                start: cursor.position,
            });
        }
        let from = parse_epoch(params, "from")?;
        let until = parse_epoch(params, "until")?;
        if until > now - MIN_AGE_SECS {
            return Err(SimError::bad_request(format!(
                "until must be at least 5 minutes in the past (until <= {})",
                now - MIN_AGE_SECS
            )));
        }
        if from < now - MAX_AGE_SECS {
            return Err(SimError::bad_request(format!(
                "from must be no more than 24 hours and 5 minutes in the past (from >= {})",
                now - MAX_AGE_SECS
            )));
        }
        if from >= until {
            return Err(SimError::bad_request("from must be before until"));
        }
        Ok(Self {
            from,
            until,
            tags: parse_tags(params.get("tags"))?,
            limit: limit.unwrap_or(MAX_LIMIT),
            start: Position {
                minute: from / 60,
                index: 0,
            },
        })
    }
}

/// One record of a page: `(minute, index, count of that minute)`.
type Slot = (i64, u32, u32);

/// Minutes per block that `pages_out_of_order` walks newest first.
const REVERSED_BLOCK_MINUTES: i64 = 10;

/// How the feed faults bend the walk over a window; both off is the plain walk in time order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Walk {
    out_of_order: bool,
    repeat: bool,
}

impl Walk {
    fn new(faults: &Faults) -> Self {
        Self {
            out_of_order: faults.pages_out_of_order,
            repeat: faults.repeat_across_boundaries,
        }
    }

    /// One past the last minute walked: the minute after `until` too when repeating.
    fn end_minute(self, until: i64) -> i64 {
        until / 60 + i64::from(self.repeat)
    }

    /// The minute served at walk step `step` (positions count steps, starting at `first`).
    fn minute_at(self, step: i64, first: i64, end: i64) -> i64 {
        if !self.out_of_order {
            return step;
        }
        let block_start = step - (step - first).rem_euclid(REVERSED_BLOCK_MINUTES);
        let block_end = (block_start + REVERSED_BLOCK_MINUTES).min(end);
        block_start + block_end - 1 - step
    }
}

/// Up to `limit` records from `start`, and where the next page starts (None = window done).
fn collect(
    traffic: &SiteTraffic,
    request: &PageRequest,
    walk: Walk,
) -> (Vec<Slot>, Option<Position>) {
    let filter = (!request.tags.is_empty())
        .then(|| SignalFilter::new(request.tags.iter().map(String::as_str)));
    if filter.is_some_and(|f| f.matches_nothing()) {
        return (Vec::new(), None);
    }
    let limit = request.limit as usize;
    let first_minute = request.from / 60;
    let end_minute = walk.end_minute(request.until);
    let mut slots = Vec::with_capacity(limit);
    let mut pos = request.start;
    while pos.minute < end_minute {
        let minute = walk.minute_at(pos.minute, first_minute, end_minute);
        let count = traffic.minute_count(minute);
        while pos.index < count {
            if slots.len() == limit {
                return (slots, Some(pos));
            }
            if filter.is_none_or(|f| f.matches(&traffic.signals(minute, pos.index))) {
                slots.push((minute, pos.index, count));
                // The next page starts on this record again (a page of one would never advance).
                if walk.repeat && limit >= 2 && slots.len() == limit {
                    return (slots, Some(pos));
                }
            }
            pos.index += 1;
        }
        pos = Position {
            minute: pos.minute + 1,
            index: 0,
        };
    }
    (slots, None)
}

fn render_page(
    traffic: &SiteTraffic,
    site: &str,
    request: &PageRequest,
    walk: Walk,
    next_uri: impl FnOnce(Position) -> String,
) -> Result<Vec<u8>, serde_json::Error> {
    let (mut slots, next) = collect(traffic, request, walk);
    // The real feed is "complete but not sorted": shuffle within the page, reproducibly.
    let mut rng = SplitMix::new(mix(hash_str(site)
        ^ (request.start.minute as u64) << 20
        ^ u64::from(request.start.index)));
    rng.shuffle(&mut slots);
    let next_uri = next.map(next_uri).unwrap_or_default();
    // Records average ~1.3 KB (generate's size test); a smaller guess copied full pages as they grew.
    let mut out = Vec::with_capacity(slots.len() * 1400 + next_uri.len() + 64);
    out.extend_from_slice(b"{\"next\":{\"uri\":");
    serde_json::to_writer(&mut out, &next_uri)?;
    out.extend_from_slice(b"},\"data\":[");
    let mut prefixes: Vec<(i64, String)> = Vec::new();
    for (k, (minute, index, count)) in slots.iter().enumerate() {
        if k > 0 {
            out.push(b',');
        }
        let prefix = match prefixes.iter().position(|(m, _)| m == minute) {
            Some(i) => &prefixes[i].1,
            None => {
                prefixes.push((*minute, minute_prefix(*minute)));
                &prefixes[prefixes.len() - 1].1
            }
        };
        traffic.write_record(&mut out, *minute, *index, *count, prefix)?;
    }
    out.extend_from_slice(b"]}");
    Ok(out)
}

async fn serve(state: SimState, path: SitePath, params: QueryPairs) -> Result<Response, SimError> {
    let _slot = state.acquire_feed_slot(&path.site)?;
    let faults = state.faults();
    let now = state.now();
    let request =
        PageRequest::from_params(&state, &path.site, &params, now, faults.cursor_ttl_secs)?;
    if faults.page_latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(faults.page_latency_ms)).await;
    }
    let malformed = state.draw_malformed();
    let walk = Walk::new(&faults);
    let render_state = state.clone();
    let page = tokio::task::spawn_blocking(move || {
        let site = render_state.require_site(&path.site)?;
        let next_uri = |position: Position| {
            let cursor = Cursor {
                site: path.site.clone(),
                from: request.from,
                until: request.until,
                tags: request.tags.clone(),
                limit: request.limit,
                position,
                issued_at: now,
            };
            format!(
                "/api/v0/corps/{}/sites/{}/feed/requests?next={}",
                path.corp,
                path.site,
                cursor.encode(&render_state.inner.cursor_key, faults.cursor_pad)
            )
        };
        render_page(&site.traffic, &path.site, &request, walk, next_uri).map_err(|e| {
            SimError::Server {
                status: axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                message: format!("cannot render page: {e}"),
            }
        })
    })
    .await
    .map_err(|e| SimError::Server {
        status: axum::http::StatusCode::INTERNAL_SERVER_ERROR,
        message: format!("page rendering failed: {e}"),
    })??;
    let mut body = page;
    if malformed {
        body.truncate(body.len() / 2);
    }
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        Bytes::from(body),
    )
        .into_response())
}

/// `GET .../feed/requests?from=&until=[&tags=][&limit=]` or `?next=`.
pub(crate) async fn get_page(
    State(state): State<SimState>,
    path: SitePath,
    query: QueryPairs,
) -> Result<Response, SimError> {
    serve(state, path, query).await
}

/// `POST .../feed/requests?limit=N` with form body `next=<cursor>` (avoids 414 on huge cursors).
pub(crate) async fn post_page(
    State(state): State<SimState>,
    path: SitePath,
    query: QueryPairs,
    body: Bytes,
) -> Result<Response, SimError> {
    let mut params = query;
    params.0.extend(QueryPairs::parse(&body).0);
    serve(state, path, params).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(limit: u32, tags: &[&str]) -> PageRequest {
        PageRequest {
            from: 1_700_000_040,
            until: 1_700_000_040 + 180,
            tags: tags.iter().map(|t| (*t).to_owned()).collect(),
            limit,
            start: Position {
                minute: 1_700_000_040 / 60,
                index: 0,
            },
        }
    }

    #[test]
    fn collect_walks_the_window_exactly_once() {
        let traffic = SiteTraffic::new(1, "site-1", 5.0);
        let mut req = request(97, &[]);
        let mut seen = Vec::new();
        loop {
            let (slots, next) = collect(&traffic, &req, Walk::default());
            assert!(slots.len() <= 97);
            seen.extend(slots.iter().map(|(m, i, c)| traffic.record_id(*m, *i, *c)));
            match next {
                Some(pos) => req.start = pos,
                None => break,
            }
        }
        seen.sort();
        assert_eq!(seen, traffic.ids_in(1_700_000_040, 1_700_000_220));
    }

    #[test]
    fn unknown_tag_yields_an_empty_last_page() {
        let traffic = SiteTraffic::new(1, "site-1", 5.0);
        assert_eq!(
            collect(&traffic, &request(10, &["NOPE"]), Walk::default()),
            (Vec::new(), None)
        );
    }

    #[test]
    fn limit_parsing() {
        assert_eq!(parse_limit(None), Ok(None));
        assert_eq!(parse_limit(Some("1000")), Ok(Some(1000)));
        for bad in ["0", "1001", "-1", "ten"] {
            assert!(
                parse_limit(Some(bad))
                    .unwrap_err()
                    .to_string()
                    .contains("limit must be"),
                "{bad}"
            );
        }
    }
}

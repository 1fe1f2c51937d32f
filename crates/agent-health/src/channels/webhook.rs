//! Generic webhook: one JSON document per run listing the channel's notifications, signed so receivers
//! can check origin and integrity and refuse replays.
//!
//! Signature algorithm (version 1):
//! - `X-SigSci-Kit-Timestamp`: the send time, Unix seconds.
//! - `X-SigSci-Kit-Signature`: `v1=` + lower-case hex of HMAC-SHA256(key, `"{timestamp}.{raw body}"`),
//!   the key being the channel secret's `signing_key` as UTF-8 bytes.
//!
//! Receivers recompute the HMAC over the raw body bytes, compare in constant time, reject timestamps more
//! than five minutes from their clock, and may de-duplicate by the body's `delivery_id`.

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use sha2::Sha256;

use super::Notification;

pub const TIMESTAMP_HEADER: &str = "x-sigsci-kit-timestamp";
pub const SIGNATURE_HEADER: &str = "x-sigsci-kit-signature";
/// How far a receiver should accept timestamps from its own clock.
pub const REPLAY_TOLERANCE_SECS: i64 = 300;

#[derive(Serialize)]
struct Body<'a> {
    version: u32,
    source: &'static str,
    delivery_id: &'a str,
    corp: &'a str,
    sent_at: DateTime<Utc>,
    notifications: &'a [Notification],
}

pub fn body(
    corp: &str,
    delivery_id: &str,
    sent_at: DateTime<Utc>,
    items: &[Notification],
) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(&Body {
        version: 1,
        source: "sigsci-kit/agent-health",
        delivery_id,
        corp,
        sent_at,
        notifications: items,
    })
}

fn mac(key: &SecretString, timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.expose_secret().as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts every key length"));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The `X-SigSci-Kit-Signature` header value for a body sent at `timestamp`.
pub fn signature(key: &SecretString, timestamp: i64, body: &[u8]) -> String {
    format!(
        "v1={}",
        hex::encode(mac(key, timestamp, body).finalize().into_bytes())
    )
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the timestamp header is not a Unix time in seconds")]
    BadTimestamp,
    #[error(
        "the timestamp is {0} s away from now, more than the {REPLAY_TOLERANCE_SECS} s allowed"
    )]
    Stale(i64),
    #[error("the signature header is not v1=<hex>")]
    BadFormat,
    #[error("the signature does not match the body")]
    Mismatch,
}

/// Checks a received delivery (for Rust receivers; the algorithm is in the module docs).
pub fn verify(
    key: &SecretString,
    timestamp: &str,
    signature: &str,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<(), SignatureError> {
    let timestamp: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| SignatureError::BadTimestamp)?;
    let skew = (now.timestamp() - timestamp).abs();
    if skew > REPLAY_TOLERANCE_SECS {
        return Err(SignatureError::Stale(skew));
    }
    let hex_digest = signature
        .trim()
        .strip_prefix("v1=")
        .ok_or(SignatureError::BadFormat)?;
    let digest = hex::decode(hex_digest).map_err(|_| SignatureError::BadFormat)?;
    mac(key, timestamp, body)
        .verify_slice(&digest)
        .map_err(|_| SignatureError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channels::fixtures::{firing, t};

    #[test]
    fn signature_matches_the_documented_construction() {
        // HMAC-SHA256("key", "1700000000.{}") computed independently (Python hmac module).
        let key = SecretString::from("key");
        assert_eq!(
            signature(&key, 1_700_000_000, b"{}"),
            "v1=9d713ed406bb7076d4123f0dc2c39d2df5c654ed4b0cd56b52c8b4c940bd63ae"
        );
    }

    #[test]
    fn verify_accepts_fresh_and_refuses_tampered_or_replayed() {
        let key = SecretString::from("whsec");
        let body = body("testcorp", "r1-hook", t(0), &[firing("www")]).unwrap();
        let now = t(0);
        let ts = now.timestamp().to_string();
        let sig = signature(&key, now.timestamp(), &body);
        assert_eq!(verify(&key, &ts, &sig, &body, now), Ok(()));
        let mut tampered = body.clone();
        tampered[10] ^= 1;
        assert_eq!(
            verify(&key, &ts, &sig, &tampered, now),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(&key, &ts, &sig, &body, t(6)),
            Err(SignatureError::Stale(360))
        );
        assert_eq!(
            verify(&key, &ts, "deadbeef", &body, now),
            Err(SignatureError::BadFormat)
        );
        let parsed: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(parsed["notifications"][0]["check"], "www/no_agents_online");
        assert_eq!(parsed["delivery_id"], "r1-hook");
    }
}

//! Feed `next` cursors: the window, filter, page size and position, plus the issue time, signed so
//! clients cannot forge them. Optionally padded (the `cursor_pad` fault) to provoke 414s.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use crate::error::SimError;

/// Where the next page starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Position {
    pub(crate) minute: i64,
    pub(crate) index: u32,
}

/// Everything a follow-up request needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cursor {
    pub(crate) site: String,
    pub(crate) from: i64,
    pub(crate) until: i64,
    pub(crate) tags: Vec<String>,
    pub(crate) limit: u32,
    pub(crate) position: Position,
    pub(crate) issued_at: i64,
}

const VERSION: &str = "v1";
/// Separates the padding; not in the base64url alphabet.
const PAD_MARK: char = '~';

fn mac(key: &[u8; 32], payload: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(key);
    hasher.update(payload.as_bytes());
    hex::encode(&hasher.finalize()[..8])
}

fn invalid() -> SimError {
    SimError::bad_request("invalid next cursor")
}

impl Cursor {
    /// URL-safe text (no percent-encoding needed), at least `pad_to` bytes long.
    pub(crate) fn encode(&self, key: &[u8; 32], pad_to: usize) -> String {
        let payload = format!(
            "{VERSION}|{}|{}|{}|{}|{}|{}|{}|{}",
            self.site,
            self.from,
            self.until,
            self.tags.join(","),
            self.limit,
            self.position.minute,
            self.position.index,
            self.issued_at
        );
        let mut text = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(&payload),
            mac(key, &payload)
        );
        if pad_to > text.len() {
            text.push(PAD_MARK);
            let missing = pad_to - text.len();
            text.extend(std::iter::repeat_n('0', missing));
        }
        text
    }

    pub(crate) fn decode(text: &str, key: &[u8; 32]) -> Result<Cursor, SimError> {
        let unpadded = text.split(PAD_MARK).next().unwrap_or_default();
        let (body, signature) = unpadded.split_once('.').ok_or_else(invalid)?;
        let payload = URL_SAFE_NO_PAD.decode(body).map_err(|_| invalid())?;
        let payload = String::from_utf8(payload).map_err(|_| invalid())?;
        if mac(key, &payload) != signature {
            return Err(invalid());
        }
        let fields: Vec<&str> = payload.split('|').collect();
        let [
            version,
            site,
            from,
            until,
            tags,
            limit,
            minute,
            index,
            issued_at,
        ] = fields[..]
        else {
            return Err(invalid());
        };
        if version != VERSION {
            return Err(invalid());
        }
        let number = |s: &str| s.parse::<i64>().map_err(|_| invalid());
        Ok(Cursor {
            site: site.to_owned(),
            from: number(from)?,
            until: number(until)?,
            tags: tags
                .split(',')
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
                .collect(),
            limit: limit.parse().map_err(|_| invalid())?,
            position: Position {
                minute: number(minute)?,
                index: index.parse().map_err(|_| invalid())?,
            },
            issued_at: number(issued_at)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cursor() -> Cursor {
        Cursor {
            site: "site-1".into(),
            from: 1_700_000_000,
            until: 1_700_003_600,
            tags: vec!["SQLI".into(), "XSS".into()],
            limit: 1000,
            position: Position {
                minute: 28_333_340,
                index: 17,
            },
            issued_at: 1_700_010_000,
        }
    }

    #[test]
    fn round_trip_with_and_without_padding() {
        let key = [7u8; 32];
        let plain = cursor().encode(&key, 0);
        assert!(
            plain
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        );
        assert_eq!(Cursor::decode(&plain, &key), Ok(cursor()));
        let padded = cursor().encode(&key, 5000);
        assert_eq!(padded.len(), 5000);
        assert_eq!(Cursor::decode(&padded, &key), Ok(cursor()));
    }

    #[test]
    fn tampering_and_foreign_keys_are_rejected() {
        let key = [7u8; 32];
        let text = cursor().encode(&key, 0);
        assert!(Cursor::decode(&text, &[8u8; 32]).is_err());
        let forged = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode("v1|site-1|0|60||1000|0|0|0"),
            "00"
        );
        assert!(Cursor::decode(&forged, &key).is_err());
        assert_eq!(
            Cursor::decode("garbage", &key).unwrap_err().to_string(),
            "invalid next cursor"
        );
    }
}

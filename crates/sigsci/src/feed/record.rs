//! Feed page decoding without JSON trees: each record is kept as raw text and only its
//! top-level `id` and `timestamp` are read.

use std::borrow::Cow;
use std::ops::Range;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::client::Reply;
use crate::error::{Error, Result};

/// One request record: the untouched JSON plus the two fields paging logic needs.
#[derive(Debug, Clone)]
pub struct FeedRecord {
    pub id: String,
    pub timestamp: DateTime<Utc>,
    /// The record exactly as the API sent it, so nothing a SIEM wants is dropped or reordered.
    pub raw: RawRecord,
}

/// A record's JSON text, kept as a slice of the page body it arrived in: one buffer per page
/// instead of an allocation and a copy per record (the exporter's hottest path). Keeping one record
/// keeps its whole page; copy the text out (`get().to_owned()`) to hold records for long.
#[derive(Clone)]
pub struct RawRecord {
    page: Arc<String>,
    range: Range<usize>,
}

impl RawRecord {
    /// The record's JSON text.
    pub fn get(&self) -> &str {
        // The range is a value serde_json found inside this very page.
        &self.page[self.range.clone()]
    }
}

impl std::fmt::Debug for RawRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.get())
    }
}

/// The serde route to `id`/`timestamp`, for records the fast scanner declines.
#[derive(Deserialize)]
struct RecordHead<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(borrow)]
    timestamp: Cow<'a, str>,
}

/// `id` and `timestamp` of one record, or why they cannot be had.
fn record_head(json: &str) -> std::result::Result<(String, DateTime<Utc>), String> {
    let (id, timestamp) = match scan_head(json) {
        Some((id, timestamp)) => (Cow::Borrowed(id), Cow::Borrowed(timestamp)),
        None => {
            let head: RecordHead<'_> =
                serde_json::from_str(json).map_err(|e| format!("feed record: {e}"))?;
            (head.id, head.timestamp)
        }
    };
    let timestamp = DateTime::parse_from_rfc3339(&timestamp)
        .map_err(|e| format!("feed record {id}: timestamp: {e}"))?
        .with_timezone(&Utc);
    Ok((id.into_owned(), timestamp))
}

#[derive(Deserialize)]
struct PageWire<'a> {
    #[serde(default, borrow)]
    next: NextLink<'a>,
    #[serde(borrow)]
    data: Vec<&'a RawValue>,
}

#[derive(Deserialize, Default)]
struct NextLink<'a> {
    #[serde(default, borrow)]
    uri: Cow<'a, str>,
}

/// Records of a page and where the feed continues (`None` after the last page).
pub(crate) type ParsedPage = (Vec<FeedRecord>, Option<String>);

/// Parses a whole page; a body that does not fit is a (transient) bad response.
pub(crate) fn parse_page(reply: Reply) -> Result<ParsedPage> {
    let Reply { status, body, .. } = reply;
    let page_text = match String::from_utf8(body) {
        Ok(text) => Arc::new(text),
        Err(e) => return Err(Error::undecodable(status, e.as_bytes(), e.utf8_error())),
    };
    let page: PageWire<'_> = serde_json::from_str(&page_text)
        .map_err(|e| Error::undecodable(status, page_text.as_bytes(), e))?;
    let page_start = page_text.as_ptr() as usize;
    let records = page
        .data
        .iter()
        .map(|raw| {
            let json = raw.get();
            let (id, timestamp) = record_head(json)
                .map_err(|cause| Error::undecodable(status, json.as_bytes(), cause))?;
            let start = json.as_ptr() as usize - page_start;
            Ok(FeedRecord {
                id,
                timestamp,
                raw: RawRecord {
                    page: Arc::clone(&page_text),
                    range: start..start + json.len(),
                },
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let next = Some(page.next.uri.into_owned()).filter(|uri| !uri.is_empty());
    Ok((records, next))
}

/// What the first bytes of a page say about the next page.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Peek<'a> {
    Next(&'a str),
    Last,
    /// Not in the usual `{"next":{"uri":"..."}` shape; only a full parse can tell.
    Unknown,
}

/// Reads `next.uri` from the start of a page without parsing the rest, so the next request can
/// start while this page is parsed. The full parse later confirms it.
pub(crate) fn peek_next_uri(body: &[u8]) -> Peek<'_> {
    const PREFIX: &[u8] = br#"{"next":{"uri":""#;
    let Some(rest) = body.strip_prefix(PREFIX) else {
        return Peek::Unknown;
    };
    let Some(end) = rest.iter().position(|&b| b == b'"' || b == b'\\') else {
        return Peek::Unknown;
    };
    match (rest[end], std::str::from_utf8(&rest[..end])) {
        (b'"', Ok("")) => Peek::Last,
        (b'"', Ok(uri)) => Peek::Next(uri),
        _ => Peek::Unknown,
    }
}

/// Finds the top-level `"id"` and `"timestamp"` strings of a record that serde_json has already
/// validated, stopping as soon as both are seen (a full serde pass would skip every other
/// field too). Returns `None` for anything unusual (escapes, non-string values, missing
/// fields) so the caller takes the serde route and its precise errors.
fn scan_head(json: &str) -> Option<(&str, &str)> {
    let bytes = json.as_bytes();
    let mut at = skip_ws(bytes, 0);
    if *bytes.get(at)? != b'{' {
        return None;
    }
    at += 1;
    let (mut id, mut timestamp) = (None, None);
    loop {
        at = skip_ws(bytes, at);
        if *bytes.get(at)? == b'}' {
            return None;
        }
        let (key, after_key) = plain_string(json, at)?;
        at = skip_ws(bytes, after_key);
        if *bytes.get(at)? != b':' {
            return None;
        }
        at = skip_ws(bytes, at + 1);
        let slot = match key {
            "id" => Some(&mut id),
            "timestamp" => Some(&mut timestamp),
            _ => None,
        };
        at = match slot {
            Some(slot) => {
                let (value, after_value) = plain_string(json, at)?;
                *slot = Some(value);
                after_value
            }
            None => skip_value(bytes, at)?,
        };
        if let (Some(id), Some(timestamp)) = (id, timestamp) {
            return Some((id, timestamp));
        }
        at = skip_ws(bytes, at);
        match bytes.get(at)? {
            b',' => at += 1,
            _ => return None,
        }
    }
}

fn skip_ws(bytes: &[u8], mut at: usize) -> usize {
    while bytes.get(at).is_some_and(|b| b.is_ascii_whitespace()) {
        at += 1;
    }
    at
}

/// A string without escapes starting at `at` (the opening quote): its text and the index
/// after the closing quote.
fn plain_string(json: &str, at: usize) -> Option<(&str, usize)> {
    let bytes = json.as_bytes();
    if *bytes.get(at)? != b'"' {
        return None;
    }
    let len = memchr::memchr2(b'"', b'\\', bytes.get(at + 1..)?)?;
    let end = at + 1 + len;
    (bytes[end] == b'"').then(|| (&json[at + 1..end], end + 1))
}

/// Skips any valid JSON value starting at `at`; returns the index after it.
fn skip_value(bytes: &[u8], mut at: usize) -> Option<usize> {
    match *bytes.get(at)? {
        b'"' => skip_string(bytes, at),
        b'{' | b'[' => {
            let mut depth = 0usize;
            loop {
                match *bytes.get(at)? {
                    b'"' => {
                        at = skip_string(bytes, at)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(at + 1);
                        }
                    }
                    _ => {}
                }
                at += 1;
            }
        }
        _ => {
            while !matches!(
                bytes.get(at),
                None | Some(b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r')
            ) {
                at += 1;
            }
            Some(at)
        }
    }
}

/// Skips a string (escapes allowed) starting at its opening quote.
fn skip_string(bytes: &[u8], mut at: usize) -> Option<usize> {
    at += 1;
    loop {
        at += memchr::memchr2(b'"', b'\\', bytes.get(at..)?)?;
        match bytes[at] {
            b'"' => return Some(at + 1),
            _ => at += 2,
        }
    }
}

#[cfg(test)]
mod tests {
    use reqwest::StatusCode;

    use super::*;

    fn reply(body: &[u8]) -> Reply {
        Reply {
            status: StatusCode::OK,
            retry_after: None,
            body: body.to_vec(),
        }
    }

    #[test]
    fn record_keeps_raw_json_and_parses_id_and_timestamp() {
        let text = r#"{"next":{"uri":"/api/v0/x?next=abc"},"data":[
            {"zeta":1,"id":"r\u00e9q1","timestamp":"2024-05-01T10:00:07Z","headersIn":[["a","b"]],"alpha":null},
            {"timestamp":"2024-05-01T10:00:09+02:00","id":"2"}]}"#;
        let (records, next) = parse_page(reply(text.as_bytes())).expect("page");
        assert_eq!(next.as_deref(), Some("/api/v0/x?next=abc"));
        assert_eq!(records.len(), 2);
        let first = &records[0];
        assert_eq!(first.id, "réq1");
        assert_eq!(first.timestamp.to_rfc3339(), "2024-05-01T10:00:07+00:00");
        // Field order and unknown fields survive byte for byte.
        assert_eq!(
            first.raw.get(),
            r#"{"zeta":1,"id":"r\u00e9q1","timestamp":"2024-05-01T10:00:07Z","headersIn":[["a","b"]],"alpha":null}"#
        );
        assert_eq!(
            records[1].timestamp.to_rfc3339(),
            "2024-05-01T08:00:09+00:00"
        );
    }

    #[test]
    fn scanner_agrees_with_serde_or_declines() {
        let cases = [
            r#"{"id":"a","timestamp":"t"}"#,
            r#" { "x" : [1, {"id":"nested"}, "s\"}]"], "timestamp" : "t2" , "id" : "b" } "#,
            r#"{"tags":[{"type":"SQLI","id":"inner"}],"n":-1.5e3,"b":true,"z":null,"id":"c","timestamp":"t3"}"#,
            r#"{"headersIn":[["id","spoof"]],"id":"d","timestamp":"t4"}"#,
            r#"{"k\"ey":"v","id":"e","timestamp":"t5"}"#,
            r#"{"id":"esc\"aped","timestamp":"t6"}"#,
            r#"{"id":7,"timestamp":"t7"}"#,
            r#"{"id":"only"}"#,
            r#"{}"#,
        ];
        for case in cases {
            let via_serde = serde_json::from_str::<RecordHead<'_>>(case)
                .ok()
                .map(|h| (h.id.into_owned(), h.timestamp.into_owned()));
            match scan_head(case) {
                Some((id, ts)) => {
                    assert_eq!(Some((id.to_string(), ts.to_string())), via_serde, "{case}")
                }
                // Declining is always safe: the serde route decides.
                None => assert!(case.contains('\\') || via_serde.is_none(), "{case}"),
            }
        }
        assert_eq!(
            scan_head(r#"{"x":[1,{"id":"nested"}],"timestamp":"t","id":"b"}"#),
            Some(("b", "t"))
        );
    }

    #[test]
    fn escaped_or_odd_records_still_decode_through_serde() {
        let text = r#"{"data":[{"id":"a\/b","timestamp":"2024-05-01T10:00:07Z"}]}"#;
        let (records, next) = parse_page(reply(text.as_bytes())).expect("page");
        assert_eq!(records[0].id, "a/b");
        assert_eq!(next, None);
    }

    #[test]
    fn truncated_or_bad_records_are_transient_bad_responses() {
        for body in [
            &br#"{"next":{"uri":"/a?next=x"},"data":[{"id":"1","timestamp":"2024-05-01T10:00:07Z"},{"id""#[..],
            br#"{"data":[{"id":"1","timestamp":"yesterday"}]}"#,
            br#"{"data":[{"timestamp":"2024-05-01T10:00:07Z"}]}"#,
            br#"{"data":[{"id":1,"timestamp":"2024-05-01T10:00:07Z"}]}"#,
            b"<html>502</html>",
        ] {
            let err = parse_page(reply(body)).expect_err("must fail");
            assert!(
                matches!(err, Error::BadResponse { status: 200, .. }),
                "{err:?}"
            );
            assert!(err.is_transient());
        }
    }

    #[test]
    fn peek_reads_only_the_usual_shape() {
        assert_eq!(
            peek_next_uri(br#"{"next":{"uri":"/api/v0/x?next=abc"},"data":[{"id""#),
            Peek::Next("/api/v0/x?next=abc")
        );
        assert_eq!(
            peek_next_uri(br#"{"next":{"uri":""},"data":[]}"#),
            Peek::Last
        );
        assert_eq!(
            peek_next_uri(br#"{"data":[],"next":{"uri":""}}"#),
            Peek::Unknown
        );
        assert_eq!(peek_next_uri(br#"{"next":{"uri":"/a\/b"}}"#), Peek::Unknown);
        assert_eq!(peek_next_uri(br#"{"next":{"uri":"/trunc"#), Peek::Unknown);
    }
}

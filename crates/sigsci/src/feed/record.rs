//! Feed page decoding without JSON trees: each record is kept as raw text and only its
//! top-level `id` and `timestamp` are read, in one scanning pass over the page; serde_json's
//! route decodes whatever the scanner leaves to it.

use std::borrow::Cow;
use std::ops::Range;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
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
    line_breaks: bool,
}

impl RawRecord {
    /// The record's JSON text.
    pub fn get(&self) -> &str {
        // The range is a record's bounds found inside this very page.
        &self.page[self.range.clone()]
    }

    /// Whether the text holds a raw line break (whitespace of a record sent pretty-printed).
    /// Known from decoding the page, so a line writer need not search every record again.
    pub fn has_line_breaks(&self) -> bool {
        self.line_breaks
    }
}

impl std::fmt::Debug for RawRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.get())
    }
}

/// The serde route to `id`/`timestamp`, for records the scanner leaves to it.
#[derive(Deserialize)]
struct RecordHead<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(borrow)]
    timestamp: Cow<'a, str>,
}

/// `id` and `timestamp` of one record (`head` when the scanner read them), or why they cannot be had.
fn record_head(
    json: &str,
    head: Option<(&str, &str)>,
) -> std::result::Result<(String, DateTime<Utc>), String> {
    let (id, timestamp) = match head {
        Some((id, timestamp)) => (Cow::Borrowed(id), Cow::Borrowed(timestamp)),
        None => {
            let head: RecordHead<'_> =
                serde_json::from_str(json).map_err(|e| format!("feed record: {e}"))?;
            (head.id, head.timestamp)
        }
    };
    let timestamp = match utc_seconds(&timestamp) {
        Some(timestamp) => timestamp,
        None => DateTime::parse_from_rfc3339(&timestamp)
            .map_err(|e| format!("feed record {id}: timestamp: {e}"))?
            .with_timezone(&Utc),
    };
    Ok((id.into_owned(), timestamp))
}

/// `YYYY-MM-DDTHH:MM:SSZ`, the form the API sends, read without the general RFC 3339 parser (a
/// tenth of the scan's time went there); `None` for anything else, which that parser decides.
fn utc_seconds(text: &str) -> Option<DateTime<Utc>> {
    let bytes: &[u8; 20] = text.as_bytes().try_into().ok()?;
    let separators = [
        (4, b'-'),
        (7, b'-'),
        (10, b'T'),
        (13, b':'),
        (16, b':'),
        (19, b'Z'),
    ];
    if separators.iter().any(|&(at, byte)| bytes[at] != byte) {
        return None;
    }
    let number = |range: Range<usize>| {
        bytes[range].iter().try_fold(0u32, |n, &digit| {
            digit
                .is_ascii_digit()
                .then(|| n * 10 + u32::from(digit - b'0'))
        })
    };
    let date = NaiveDate::from_ymd_opt(
        i32::try_from(number(0..4)?).ok()?,
        number(5..7)?,
        number(8..10)?,
    )?;
    // A leap second (60) is not a valid time here: the general parser takes it.
    let time = NaiveTime::from_hms_opt(number(11..13)?, number(14..16)?, number(17..19)?)?;
    Some(date.and_time(time).and_utc())
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
    // The scanner takes no page with a control character, so its records are single lines.
    let (found, next, single_lines) = match scan_page(&page_text) {
        Some((found, next)) => (found, next.to_owned(), true),
        None => {
            let (found, next) = serde_page(&page_text)
                .map_err(|e| Error::undecodable(status, page_text.as_bytes(), e))?;
            (found, next, false)
        }
    };
    let records = found
        .into_iter()
        .map(|Found { range, head }| {
            let json = &page_text[range.clone()];
            let (id, timestamp) = record_head(json, head)
                .map_err(|cause| Error::undecodable(status, json.as_bytes(), cause))?;
            Ok(FeedRecord {
                id,
                timestamp,
                raw: RawRecord {
                    page: Arc::clone(&page_text),
                    range,
                    line_breaks: !single_lines
                        && memchr::memchr2(b'\n', b'\r', json.as_bytes()).is_some(),
                },
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((records, Some(next).filter(|uri| !uri.is_empty())))
}

/// The serde route for a whole page: records' bounds only, their heads left to [`record_head`].
fn serde_page(text: &str) -> serde_json::Result<(Vec<Found<'_>>, String)> {
    let page: PageWire<'_> = serde_json::from_str(text)?;
    let page_start = text.as_ptr() as usize;
    let found = page
        .data
        .iter()
        .map(|raw| {
            // The value serde_json found inside this very text.
            let start = raw.get().as_ptr() as usize - page_start;
            Found {
                range: start..start + raw.get().len(),
                head: None,
            }
        })
        .collect();
    Ok((found, page.next.uri.into_owned()))
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

/// Where a record sits in its page, and its `id` and `timestamp` when the scanner could read them
/// as plain strings (`None`: the serde route reads them, with its precise errors).
struct Found<'a> {
    range: Range<usize>,
    head: Option<(&'a str, &'a str)>,
}

/// What a container is to the page: the scanner only looks inside the first three kinds.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Page,
    Next,
    Data,
    Record,
    Other,
}

/// What the value after the last key is for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Slot {
    None,
    Next,
    Data,
    Uri,
    Id,
    Timestamp,
}

/// The next token the JSON grammar allows.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Expect {
    Value,
    /// After `[`: a value or `]`.
    FirstValue,
    /// After `{`: a key or `}`.
    FirstKey,
    Key,
    Colon,
    /// After a value inside a container: `,` or its end.
    Comma,
    /// The page's object is complete: only spaces may follow.
    End,
}

/// Deeper than serde_json's own limit (128) is left to serde_json, which refuses it.
const MAX_DEPTH: usize = 128;

/// One pass over a page in the API's usual shape: a validating JSON scanner that jumps from quote
/// to quote ([`Specials`]) and finds every record's bounds and its top-level `id` and `timestamp`
/// on the way. `None` for anything it does not handle (control characters or line breaks anywhere,
/// escaped top-level keys, an unusual `next`, non-object records, invalid JSON): the serde route
/// then decides, so both routes accept exactly the same pages.
struct PageScan<'a> {
    text: &'a str,
    /// Open containers: their kind (`{` or `[`) and role.
    stack: Vec<(u8, Role)>,
    expect: Expect,
    slot: Slot,
    seen_next: bool,
    seen_data: bool,
    seen_uri: bool,
    next: &'a str,
    records: Vec<Found<'a>>,
    /// The record being scanned: where it starts, its head so far, and whether it needs serde.
    record_start: usize,
    id: Option<&'a str>,
    timestamp: Option<&'a str>,
    unusual: bool,
}

fn scan_page(text: &str) -> Option<(Vec<Found<'_>>, &str)> {
    let bytes = text.as_bytes();
    let mut scan = PageScan {
        text,
        stack: Vec::with_capacity(16),
        expect: Expect::Value,
        slot: Slot::None,
        seen_next: false,
        seen_data: false,
        seen_uri: false,
        next: "",
        records: Vec::with_capacity(1024),
        record_start: 0,
        id: None,
        timestamp: None,
        unusual: false,
    };
    let mut quotes = Specials::new(bytes);
    let mut at = 0;
    loop {
        let quote = quotes.find(|&p| p >= at);
        let Some(open) = quote else {
            scan.structure(at, bytes.len())?;
            break;
        };
        scan.gap(at, open)?;
        if bytes[open] != b'"' {
            return None; // A backslash outside a string.
        }
        let mut plain = true;
        let mut resume = open + 1;
        let close = loop {
            let p = quotes.find(|&p| p >= resume)?;
            if bytes[p] == b'"' {
                break p;
            }
            plain = false;
            resume = match *bytes.get(p + 1)? {
                b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => p + 2,
                b'u' if bytes.get(p + 2..p + 6)?.iter().all(u8::is_ascii_hexdigit) => p + 6,
                _ => return None,
            };
        };
        scan.string(&text[open + 1..close], plain)?;
        at = close + 1;
    }
    if quotes.refused {
        return None;
    }
    (scan.expect == Expect::End && scan.seen_data).then_some((scan.records, scan.next))
}

impl<'a> PageScan<'a> {
    /// The bytes between two strings, usually a lone `:` or `,`: those without the general loop.
    fn gap(&mut self, from: usize, to: usize) -> Option<()> {
        if to == from + 1 {
            match (self.text.as_bytes()[from], self.expect) {
                (b':', Expect::Colon) => {
                    self.expect = Expect::Value;
                    return Some(());
                }
                (b',', Expect::Comma) => {
                    self.expect = match self.stack.last()? {
                        (b'{', _) => Expect::Key,
                        _ => Expect::Value,
                    };
                    return Some(());
                }
                _ => {}
            }
        }
        self.structure(from, to)
    }

    /// The bytes between two strings: punctuation, numbers, literals, spaces.
    fn structure(&mut self, from: usize, to: usize) -> Option<()> {
        let text: &'a str = self.text;
        let bytes = &text.as_bytes()[..to];
        let mut at = from;
        while at < to {
            match bytes[at] {
                b' ' => {}
                b'{' | b'[' => self.open(at)?,
                b'}' | b']' => self.close(at)?,
                b':' if self.expect == Expect::Colon => self.expect = Expect::Value,
                b',' if self.expect == Expect::Comma => {
                    self.expect = match self.stack.last()? {
                        (b'{', _) => Expect::Key,
                        _ => Expect::Value,
                    }
                }
                b'-' | b'0'..=b'9' => {
                    at = number(bytes, at)?;
                    self.scalar()?;
                    continue;
                }
                b't' | b'f' | b'n' => {
                    let word: &[u8] = match bytes[at] {
                        b't' => b"true",
                        b'f' => b"false",
                        _ => b"null",
                    };
                    if !bytes[at..].starts_with(word) {
                        return None;
                    }
                    at += word.len();
                    self.scalar()?;
                    continue;
                }
                _ => return None,
            }
            at += 1;
        }
        Some(())
    }

    /// A value may start here; returns what it is for, given its container.
    fn value_start(&mut self) -> Option<(Role, Slot)> {
        if !matches!(self.expect, Expect::Value | Expect::FirstValue) {
            return None;
        }
        let slot = std::mem::replace(&mut self.slot, Slot::None);
        let parent = self.stack.last().map_or(Role::Other, |&(_, role)| role);
        Some((parent, slot))
    }

    fn value_end(&mut self) {
        self.expect = if self.stack.is_empty() {
            Expect::End
        } else {
            Expect::Comma
        };
    }

    fn open(&mut self, at: usize) -> Option<()> {
        let kind = self.text.as_bytes()[at];
        let (parent, slot) = self.value_start()?;
        let role = match (self.stack.is_empty(), parent, slot, kind) {
            (true, _, _, b'{') => Role::Page,
            (true, ..) => return None,
            (false, Role::Page, Slot::Next, b'{') => Role::Next,
            (false, Role::Page, Slot::Data, b'[') => Role::Data,
            (false, Role::Page, Slot::Next | Slot::Data, _) => return None,
            (false, Role::Next, Slot::Uri, _) => return None,
            (false, Role::Data, _, b'{') => {
                self.record_start = at;
                (self.id, self.timestamp, self.unusual) = (None, None, false);
                Role::Record
            }
            (false, Role::Data, ..) => return None,
            (false, Role::Record, Slot::Id | Slot::Timestamp, _) => {
                self.unusual = true;
                Role::Other
            }
            _ => Role::Other,
        };
        if self.stack.len() >= MAX_DEPTH {
            return None;
        }
        self.stack.push((kind, role));
        self.expect = if kind == b'{' {
            Expect::FirstKey
        } else {
            Expect::FirstValue
        };
        Some(())
    }

    fn close(&mut self, at: usize) -> Option<()> {
        let kind = self.text.as_bytes()[at];
        let (open, role) = *self.stack.last()?;
        let allowed = match kind {
            b'}' => open == b'{' && matches!(self.expect, Expect::FirstKey | Expect::Comma),
            _ => open == b'[' && matches!(self.expect, Expect::FirstValue | Expect::Comma),
        };
        if !allowed {
            return None;
        }
        self.stack.pop();
        if role == Role::Record {
            let head = match (self.unusual, self.id, self.timestamp) {
                (false, Some(id), Some(timestamp)) => Some((id, timestamp)),
                _ => None,
            };
            self.records.push(Found {
                range: self.record_start..at + 1,
                head,
            });
        }
        self.value_end();
        Some(())
    }

    /// A string's contents (between its quotes); `plain` when it holds no escapes.
    fn string(&mut self, text: &'a str, plain: bool) -> Option<()> {
        if matches!(self.expect, Expect::Key | Expect::FirstKey) {
            self.expect = Expect::Colon;
            let role = self.stack.last().map_or(Role::Other, |&(_, role)| role);
            self.slot = match (role, plain, text) {
                (Role::Page, false, _) | (Role::Next, false, _) => return None,
                (Role::Page, true, "next") if !self.seen_next => {
                    self.seen_next = true;
                    Slot::Next
                }
                (Role::Page, true, "data") if !self.seen_data => {
                    self.seen_data = true;
                    Slot::Data
                }
                (Role::Page, true, "next" | "data") => return None,
                (Role::Next, true, "uri") if !self.seen_uri => {
                    self.seen_uri = true;
                    Slot::Uri
                }
                (Role::Next, true, "uri") => return None,
                (Role::Record, true, "id") => Slot::Id,
                (Role::Record, true, "timestamp") => Slot::Timestamp,
                (Role::Record, false, _) => {
                    self.unusual = true; // An escaped key might spell `id`.
                    Slot::None
                }
                _ => Slot::None,
            };
            return Some(());
        }
        match self.value_start()? {
            (Role::Page, Slot::Next | Slot::Data) | (Role::Data, _) => return None,
            (Role::Next, Slot::Uri) if plain => self.next = text,
            (Role::Next, Slot::Uri) => return None,
            (Role::Record, Slot::Id) if plain && self.id.is_none() => self.id = Some(text),
            (Role::Record, Slot::Timestamp) if plain && self.timestamp.is_none() => {
                self.timestamp = Some(text)
            }
            (Role::Record, Slot::Id | Slot::Timestamp) => self.unusual = true,
            _ => {}
        }
        self.value_end();
        Some(())
    }

    /// A number or literal.
    fn scalar(&mut self) -> Option<()> {
        match self.value_start()? {
            (Role::Page, Slot::Next | Slot::Data) | (Role::Data, _) | (Role::Next, Slot::Uri) => {
                return None;
            }
            (Role::Record, Slot::Id | Slot::Timestamp) => self.unusual = true,
            _ => {}
        }
        self.value_end();
        Some(())
    }
}

/// Positions of `"` and `\` in a page, in order, found 64 bytes at a time by one branch-free
/// pass over the block. Records hold a string every dozen bytes or so, too short a
/// distance for a `memchr` call per string to pay off. The same pass looks for control bytes:
/// JSON strings hold none and a compact page holds none outside strings either, so the first
/// one ends the iteration and `refused` sends the page to the serde route (no separate pass).
struct Specials<'a> {
    bytes: &'a [u8],
    /// Start of the block `mask` describes.
    base: usize,
    /// The block's specials not yielded yet, one bit per byte.
    mask: u64,
    /// A control byte was found: the positions stopped there.
    refused: bool,
}

const BLOCK: usize = 64;

impl<'a> Specials<'a> {
    fn new(bytes: &'a [u8]) -> Specials<'a> {
        let mut specials = Specials {
            bytes,
            base: 0,
            mask: 0,
            refused: false,
        };
        specials.load(bytes);
        specials
    }

    /// Takes the block starting at `block`; `None` (and no more positions) on a control byte.
    fn load(&mut self, block: &[u8]) -> Option<()> {
        match block_mask(block) {
            Some(mask) => {
                self.mask = mask;
                Some(())
            }
            None => {
                self.refused = true;
                self.mask = 0;
                self.bytes = &[];
                None
            }
        }
    }
}

impl Iterator for Specials<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        while self.mask == 0 {
            self.base += BLOCK;
            let block = self
                .bytes
                .get(self.base..)
                .filter(|rest| !rest.is_empty())?;
            self.load(block)?;
        }
        let at = self.base + self.mask.trailing_zeros() as usize;
        self.mask &= self.mask - 1;
        Some(at)
    }
}

/// Bit `i` set when byte `i` of `bytes` (its first 64) is `"` or `\`; `None` when one of them
/// is a control byte (below 0x20).
fn block_mask(bytes: &[u8]) -> Option<u64> {
    let mut block = [b' '; BLOCK];
    let block = match bytes.first_chunk::<BLOCK>() {
        Some(full) => full,
        None => {
            block[..bytes.len()].copy_from_slice(bytes);
            &block
        }
    };
    let (mask, control) = block_bits(block);
    (!control).then_some(mask)
}

/// The specials of one block and whether it holds a control byte, 16 bytes per SSE2 compare
/// (about three times faster than the word-wise fallback below, and this runs on every block).
#[cfg(target_arch = "x86_64")]
fn block_bits(block: &[u8; BLOCK]) -> (u64, bool) {
    use std::arch::x86_64::{
        _mm_cmpeq_epi8, _mm_min_epu8, _mm_movemask_epi8, _mm_or_si128, _mm_set_epi64x,
        _mm_set1_epi8, _mm_setzero_si128,
    };
    let mut mask = 0;
    // SAFETY: SSE2 is part of the x86_64 baseline, so these intrinsics always exist; they only
    // compute on register values (the bytes are loaded by safe code).
    let control = unsafe {
        let quote = _mm_set1_epi8(b'"' as i8);
        let backslash = _mm_set1_epi8(b'\\' as i8);
        let below_space = _mm_set1_epi8(0x1f);
        let mut control = _mm_setzero_si128();
        for (i, lane) in block.chunks_exact(16).enumerate() {
            let mut bytes = [0; 16];
            bytes.copy_from_slice(lane);
            let value = u128::from_le_bytes(bytes);
            let lane = _mm_set_epi64x((value >> 64) as i64, value as i64);
            let hits = _mm_or_si128(_mm_cmpeq_epi8(lane, quote), _mm_cmpeq_epi8(lane, backslash));
            mask |= u64::from(_mm_movemask_epi8(hits) as u16) << (16 * i);
            // min(b, 0x1f) == b exactly when b <= 0x1f (unsigned).
            control = _mm_or_si128(
                control,
                _mm_cmpeq_epi8(_mm_min_epu8(lane, below_space), lane),
            );
        }
        _mm_movemask_epi8(control)
    };
    (mask, control != 0)
}

/// The specials of one block and whether it holds a control byte, a word at a time.
#[cfg(not(target_arch = "x86_64"))]
fn block_bits(block: &[u8; BLOCK]) -> (u64, bool) {
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut mask = 0;
    let mut control = 0;
    for (i, word) in block.chunks_exact(8).enumerate() {
        let mut le = [0; 8];
        le.copy_from_slice(word);
        let word = u64::from_le_bytes(le);
        let hits = bytes_equal(word, b'"') | bytes_equal(word, b'\\');
        // The high bit of each hit byte, gathered into the word's top byte in byte order.
        mask |= ((hits >> 7).wrapping_mul(0x0102_0408_1020_4080) >> 56) << (8 * i);
        // Non-zero exactly when some byte is below 0x20 (which byte it marks may be off).
        control |= word.wrapping_sub(0x2020_2020_2020_2020) & !word & HIGH;
    }
    (mask, control != 0)
}

/// The high bit of every byte of `word` equal to `byte` (no false hits: no carry crosses bytes).
#[cfg(not(target_arch = "x86_64"))]
fn bytes_equal(word: u64, byte: u8) -> u64 {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    let x = word ^ (u64::from(byte) * 0x0101_0101_0101_0101);
    !(((x & LOW7) + LOW7) | x) & !LOW7
}

/// A JSON number starting at `at` (serde_json's grammar: no leading zeros, no bare `.` or `e`);
/// the index after it.
fn number(bytes: &[u8], mut at: usize) -> Option<usize> {
    let digits = |at: usize| {
        bytes[at..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count()
    };
    if bytes[at] == b'-' {
        at += 1;
    }
    match bytes.get(at)? {
        b'0' => at += 1,
        b'1'..=b'9' => at += digits(at),
        _ => return None,
    }
    if bytes.get(at) == Some(&b'.') {
        let n = digits(at + 1);
        if n == 0 {
            return None;
        }
        at += 1 + n;
    }
    if matches!(bytes.get(at), Some(b'e' | b'E')) {
        at += 1;
        if matches!(bytes.get(at), Some(b'+' | b'-')) {
            at += 1;
        }
        let n = digits(at);
        if n == 0 {
            return None;
        }
        at += n;
    }
    Some(at)
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

    type Decoded = std::result::Result<(String, DateTime<Utc>), String>;

    /// Both routes on one page: whenever the scanner takes it, serde_json must accept it too and
    /// find the same records, the same `next` and the same heads. Returns whether it took it.
    fn routes_agree(text: &str) -> bool {
        let Some((found, next)) = scan_page(text) else {
            return false;
        };
        let (by_serde, serde_next) = match serde_page(text) {
            Ok(page) => page,
            Err(e) => panic!("scanner took a page serde_json refuses ({e}): {text}"),
        };
        assert_eq!(next, serde_next, "{text}");
        assert_eq!(found.len(), by_serde.len(), "{text}");
        for (fast, slow) in found.iter().zip(&by_serde) {
            assert_eq!(fast.range, slow.range, "{text}");
            let json = &text[fast.range.clone()];
            let via_scan: Decoded = record_head(json, fast.head);
            let via_serde: Decoded = record_head(json, None);
            assert_eq!(via_scan, via_serde, "{json}");
        }
        true
    }

    fn page(records: &[&str]) -> String {
        format!(
            r#"{{"next":{{"uri":"/api/v0/x?next=abc"}},"data":[{}]}}"#,
            records.join(",")
        )
    }

    /// Odd but valid records: escapes anywhere, unicode, nested `id` keys, spaces, every scalar.
    const ODD_RECORDS: &[&str] = &[
        r#"{"id":"a","timestamp":"2024-05-01T10:00:07Z"}"#,
        r#"{"ua":"say \"hi\" \\","id":"b","timestamp":"2024-05-01T10:00:07Z"}"#,
        r#"{"id":"esc\"aped","timestamp":"2024-05-01T10:00:07Z"}"#,
        r#"{"id":"r\u00e9q1","timestamp":"2024-05-01T10:00:07+02:00"}"#,
        r#"{"\u0069d":"spelt","timestamp":"2024-05-01T10:00:07Z"}"#,
        r#"{"k\"ey":"v","id":"c","timestamp":"2024-05-01T10:00:07Z"}"#,
        r#"{"path":"c:\\","id":"d","q":"\/\b\f\n\r\t","timestamp":"2024-05-01T10:00:07Z"}"#,
        r#"{"tags":[{"type":"SQLI","id":"inner"}],"headersIn":[["id","spoof"]],"x":{"id":"deep","timestamp":"1999-01-01T00:00:00Z"},"timestamp":"2024-05-01T10:00:08Z","id":"e"}"#,
        r#" { "id" : "f" , "timestamp" : "2024-05-01T10:00:09Z" , "e" : [ ] , "o" : { } } "#,
        r#"{"n":-1.5e3,"z":0,"p":10.25E+2,"b":true,"f":false,"nul":null,"id":"g","timestamp":"2024-05-01T10:00:07Z"}"#,
        r#"{"city":"Zürich 東京 😀","id":"h","timestamp":"2024-05-01T10:00:07Z"}"#,
        r#"{"id":"","timestamp":"2024-05-01T10:00:07Z"}"#,
        // Valid JSON whose head is wrong: the serde route must give its error on both routes.
        r#"{"id":7,"timestamp":"2024-05-01T10:00:07Z"}"#,
        r#"{"id":"i","id":"j","timestamp":"2024-05-01T10:00:07Z"}"#,
        r#"{"id":null,"timestamp":"2024-05-01T10:00:07Z"}"#,
        r#"{"id":{"id":"k"},"timestamp":"2024-05-01T10:00:07Z"}"#,
        r#"{"id":"l","timestamp":"yesterday"}"#,
        r#"{"id":"only"}"#,
        r#"{}"#,
    ];

    #[test]
    fn odd_but_valid_records_read_the_same_on_both_routes() {
        for record in ODD_RECORDS {
            assert!(routes_agree(&page(&[record])), "scanner declined {record}");
        }
        assert!(routes_agree(&page(ODD_RECORDS)));
        assert!(routes_agree(
            r#"{"data":[],"next":{"uri":""},"extra":[1,{"a":"b"}]}"#
        ));
        // Line breaks or tabs anywhere, escaped top-level keys, odd `next`: serde's route alone.
        for declined in [
            "{\"next\":{\"uri\":\"\"},\n\"data\":[]}",
            "{\"next\":{\"uri\":\"\"},\"data\":[{\"id\":\"a\tb\",\"timestamp\":\"t\"}]}",
            r#"{"next":{"uri":"/a\/b"},"data":[]}"#,
            r#"{"\u006eext":{"uri":""},"data":[]}"#,
            r#"{"next":null,"data":[]}"#,
            r#"{"next":{"uri":"a","uri":"b"},"data":[]}"#,
            r#"{"data":[1]}"#,
        ] {
            assert!(scan_page(declined).is_none(), "{declined}");
        }
    }

    #[test]
    fn scanner_never_takes_a_page_serde_refuses() {
        let base = page(&ODD_RECORDS[..11]);
        let mut taken = 0;
        let mut check = |bytes: Vec<u8>| {
            if let Ok(text) = String::from_utf8(bytes) {
                taken += usize::from(routes_agree(&text));
            }
        };
        for at in 0..base.len() {
            check(base.as_bytes()[..at].to_vec());
            let mut removed = base.as_bytes().to_vec();
            removed.remove(at);
            check(removed);
            for byte in *br#""\{}[],: 0-e.at"# {
                let mut changed = base.as_bytes().to_vec();
                changed[at] = byte;
                check(changed);
            }
        }
        // The mutations that stay valid JSON (inside strings, mostly) must still be taken.
        assert!(taken > base.len(), "{taken}");
    }

    #[test]
    fn pages_with_line_breaks_still_decode_through_serde() {
        let text = "{\n  \"next\": {\"uri\": \"/a?next=x\"},\n  \"data\": [\n    {\"id\": \"a\", \"timestamp\": \"2024-05-01T10:00:07Z\"}\n  ]\n}";
        let (records, next) = parse_page(reply(text.as_bytes())).expect("page");
        assert_eq!(next.as_deref(), Some("/a?next=x"));
        assert_eq!(records[0].id, "a");
        assert_eq!(
            records[0].raw.get(),
            r#"{"id": "a", "timestamp": "2024-05-01T10:00:07Z"}"#
        );
        assert!(!records[0].raw.has_line_breaks());
        let text = "{\"data\":[{\"id\":\"b\",\r\n\"timestamp\":\"2024-05-01T10:00:07Z\"},{\"id\":\"c\",\"timestamp\":\"2024-05-01T10:00:07Z\"}]}";
        let (records, _) = parse_page(reply(text.as_bytes())).expect("page");
        assert!(records[0].raw.has_line_breaks());
        assert!(!records[1].raw.has_line_breaks());
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
    fn specials_are_found_in_every_block_and_only_there() {
        // Near misses around `"` (0x22) and `\` (0x5c): high bit set, one bit off.
        let fill = [b'a', 0xa2, 0xdc, b'#', b']', 0x62, b'!', 0x7c];
        let mut text: Vec<u8> = (0..200).map(|i| fill[i % fill.len()]).collect();
        for at in [0, 7, 8, 63, 64, 65, 127, 128, 191, 192, 199] {
            text[at] = if at % 2 == 0 { b'"' } else { b'\\' };
        }
        for len in [0, 1, 63, 64, 65, 128, 199, 200] {
            let bytes = &text[..len];
            let expected: Vec<usize> = (0..len)
                .filter(|&i| matches!(bytes[i], b'"' | b'\\'))
                .collect();
            assert_eq!(Specials::new(bytes).collect::<Vec<_>>(), expected, "{len}");
        }
        // A control byte in any block ends the positions before that block.
        for control in [0x00, 0x09, 0x0a, 0x1f] {
            for at in [0, 63, 64, 130, 199] {
                let mut bytes = text.clone();
                bytes[at] = control;
                let mut specials = Specials::new(&bytes);
                let block_start = at / BLOCK * BLOCK;
                assert!(
                    specials.by_ref().all(|p| p < block_start),
                    "{control} at {at}"
                );
                assert!(specials.refused, "{control} at {at}");
            }
        }
        let mut specials = Specials::new(&text);
        specials.by_ref().count();
        assert!(!specials.refused);
    }

    #[test]
    fn api_timestamps_read_as_the_rfc3339_parser_reads_them() {
        for text in [
            "2024-05-01T10:00:07Z",
            "1970-01-01T00:00:00Z",
            "2024-02-29T23:59:59Z",
            "0000-01-01T00:00:00Z",
            "9999-12-31T23:59:59Z",
        ] {
            let general = DateTime::parse_from_rfc3339(text).map(|t| t.with_timezone(&Utc));
            assert_eq!(utc_seconds(text), general.ok(), "{text}");
        }
        // Other forms, and invalid dates and times, are left to the general parser.
        for text in [
            "2024-05-01T10:00:07+02:00",
            "2024-05-01t10:00:07z",
            "2024-05-01 10:00:07Z",
            "2024-05-01T10:00:07.5Z",
            "2016-12-31T23:59:60Z",
            "2023-02-29T10:00:07Z",
            "2024-13-01T10:00:07Z",
            "2024-05-01T24:00:00Z",
            "2024-05-01T10:0a:07Z",
            "+024-05-01T10:00:07Z",
            "yesterday",
        ] {
            assert_eq!(utc_seconds(text), None, "{text}");
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

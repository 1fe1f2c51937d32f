//! The mapping of one feed record to OCSF HTTP Activity: [`MAPPING`] is the table (mirrored in
//! `docs/ocsf-mapping.md`, which a test keeps equal), and [`Event::from_record`] applies it.
//!
//! Every vendor field lands in exactly one OCSF attribute, with an inverse stated in the table, so
//! the record can be read back whole; a field the table does not know, or whose value does not
//! fit its attribute's type, goes to `unmapped` verbatim. Nothing the vendor sent is lost.

use std::borrow::Cow;
use std::fmt;
use std::net::IpAddr;

use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::OcsfError;

/// The OCSF schema version of every event (stated once; `metadata.version`).
pub const OCSF_VERSION: &str = "1.1.0";
pub const CLASS_UID: i32 = 4002;
pub const CLASS_NAME: &str = "HTTP Activity";
pub const CATEGORY_UID: i32 = 4;
pub const CATEGORY_NAME: &str = "Network Activity";
pub const PRODUCT_NAME: &str = "Next-Gen WAF (Signal Sciences)";
pub const VENDOR_NAME: &str = "Fastly";
/// `enrichments[].provider` and `enrichments[].type` of the vendor's tags.
pub const TAG_PROVIDER: &str = "Signal Sciences";
pub const TAG_TYPE: &str = "signal";

/// One row of the mapping: the vendor's field, where it goes, and how to get it back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FieldMapping {
    pub vendor: &'static str,
    pub ocsf: &'static str,
    pub how: &'static str,
}

const fn row(vendor: &'static str, ocsf: &'static str, how: &'static str) -> FieldMapping {
    FieldMapping { vendor, ocsf, how }
}

/// The vendor's fields, each to one attribute (the order of `docs/ocsf-mapping.md`).
pub const MAPPING: &[FieldMapping] = &[
    row("id", "metadata.uid", "as given"),
    row(
        "timestamp",
        "time",
        "RFC 3339 → epoch milliseconds (the same instant)",
    ),
    row(
        "serverHostname",
        "dst_endpoint.hostname",
        "as given when a hostname, else as `dst_endpoint.name`",
    ),
    row(
        "serverName",
        "http_request.url.hostname",
        "as given when a hostname (no port), else to `unmapped`; also without `path` and `uri`",
    ),
    row(
        "remoteIP",
        "src_endpoint.ip",
        "as given when it parses as an IPv4/IPv6 address, else as `src_endpoint.name`",
    ),
    row(
        "remoteHostname",
        "src_endpoint.hostname",
        "as given when a hostname, else to `unmapped`",
    ),
    row(
        "remoteCountryCode",
        "src_endpoint.location.country",
        "as given",
    ),
    row("userAgent", "http_request.user_agent", "as given"),
    row(
        "method",
        "http_request.http_method",
        "as given when one of OCSF's eight methods in upper case, else to `unmapped` (either way it sets `activity_id`)",
    ),
    row("protocol", "http_request.version", "as given"),
    row(
        "scheme",
        "http_request.url.scheme",
        "as given; to `unmapped` without `path` and `uri`",
    ),
    row(
        "tlsProtocol",
        "tls.version",
        "as given; `tls` is null without it",
    ),
    row(
        "tlsCipher",
        "tls.cipher",
        "as given; to `unmapped` without a `tlsProtocol`",
    ),
    row("path", "http_request.url.path", "as given"),
    row(
        "uri",
        "http_request.url.url_string",
        "as given (path and query; `url.query_string` is the part after the first `?`)",
    ),
    row(
        "responseCode",
        "http_response.code",
        "integer; 0 when there was no response (also when absent or not an integer, which goes to `unmapped`)",
    ),
    row(
        "agentResponseCode",
        "status_code",
        "integer as text (also sets `status_id`, `severity_id`)",
    ),
    row("responseSize", "http_response.length", "integer"),
    row(
        "responseMillis",
        "http_response.latency",
        "integer (milliseconds)",
    ),
    row(
        "headersIn",
        "http_request.http_headers",
        "`[name, value]` pairs → `{name, value}` in order; null stays null",
    ),
    row(
        "headersOut",
        "http_response.http_headers",
        "`[name, value]` pairs → `{name, value}` in order; null stays null",
    ),
    row(
        "tags",
        "enrichments",
        "each tag → `{name: type, value, type: \"signal\", provider: \"Signal Sciences\", data: the tag's other members as JSON}`",
    ),
    row(
        "(any other field)",
        "unmapped",
        "a JSON object of every field not above, and of any value that does not fit its attribute's type, verbatim",
    ),
];

/// Attributes computed from the record or the export, not read back.
pub const DERIVED: &[FieldMapping] = &[
    row("", "class_uid / class_name", "4002 / HTTP Activity"),
    row("", "category_uid / category_name", "4 / Network Activity"),
    row(
        "method",
        "activity_id / activity_name",
        "CONNECT 1, DELETE 2, GET 3, HEAD 4, OPTIONS 5, POST 6, PUT 7, TRACE 8 (any case), else 99 Other",
    ),
    row(
        "",
        "type_uid / type_name",
        "400200 + activity_id / `HTTP Activity: {activity_name}`",
    ),
    row(
        "agentResponseCode",
        "status_id / status",
        "1 Success when below 400 (the agent let the request through), 2 Failure otherwise (blocked), 0 Unknown when absent",
    ),
    row(
        "tags, agentResponseCode",
        "severity_id / severity",
        "3 Medium when blocked, else 2 Low when tagged, else 1 Informational",
    ),
    row("", "metadata.version", "`OCSF_VERSION` (1.1.0)"),
    row(
        "",
        "metadata.product.name / vendor_name",
        "Next-Gen WAF (Signal Sciences) / Fastly",
    ),
    row("(export)", "metadata.tenant_uid", "the corp"),
    row("(export)", "metadata.log_name", "the site"),
    row(
        "uri",
        "http_request.url.query_string",
        "after the first `?`, null without one",
    ),
    row(
        "remoteIP, remoteHostname, userAgent",
        "observables",
        "IP Address (2) `src_endpoint.ip`, Hostname (1) `src_endpoint.hostname`, Other (99, `type` HTTP User-Agent) `http_request.user_agent`, each when present",
    ),
];

/// Who exported the record: the corp and the site of the feed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    pub corp: String,
    pub site: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header<'a> {
    pub name: Cow<'a, str>,
    pub value: Cow<'a, str>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Enrichment<'a> {
    pub name: Cow<'a, str>,
    pub value: Cow<'a, str>,
    /// The tag's other members (`location`, `detector`, …) as a JSON object.
    pub data: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Observable<'e> {
    pub name: &'static str,
    pub type_id: i32,
    pub type_name: &'static str,
    pub value: &'e str,
}

/// One OCSF HTTP Activity event, flat as the Parquet writer needs it. Its text borrows from the
/// record's JSON wherever the JSON holds it unescaped.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Event<'a> {
    pub activity_id: i32,
    pub activity_name: &'static str,
    pub severity_id: i32,
    pub status_id: i32,
    /// `agentResponseCode`; `status_code` is its text.
    pub status_code: Option<i32>,
    pub time: i64,
    pub uid: Cow<'a, str>,
    pub src_ip: Option<Cow<'a, str>>,
    pub src_name: Option<Cow<'a, str>>,
    pub src_hostname: Option<Cow<'a, str>>,
    pub src_country: Option<Cow<'a, str>>,
    pub dst_hostname: Option<Cow<'a, str>>,
    pub dst_name: Option<Cow<'a, str>>,
    pub http_method: Option<Cow<'a, str>>,
    pub http_version: Option<Cow<'a, str>>,
    pub user_agent: Option<Cow<'a, str>>,
    pub url_scheme: Option<Cow<'a, str>>,
    pub url_hostname: Option<Cow<'a, str>>,
    pub url_path: Option<Cow<'a, str>>,
    pub url_string: Option<Cow<'a, str>>,
    pub request_headers: Option<Vec<Header<'a>>>,
    pub response_code: Option<i32>,
    pub response_length: Option<i64>,
    pub response_latency: Option<i32>,
    pub response_headers: Option<Vec<Header<'a>>>,
    pub tls_version: Option<Cow<'a, str>>,
    pub tls_cipher: Option<Cow<'a, str>>,
    pub enrichments: Option<Vec<Enrichment<'a>>>,
    /// A JSON object, or `None` when every field was mapped.
    pub unmapped: Option<String>,
}

/// A DNS name as OCSF's `hostname_t` takes it: dot-separated labels of letters, digits and
/// inner hyphens.
fn is_hostname(name: &str) -> bool {
    name.split('.').all(|label| {
        let bytes = label.as_bytes();
        !bytes.is_empty()
            && bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
            && bytes.first() != Some(&b'-')
            && bytes.last() != Some(&b'-')
    })
}

/// `activity_id`, `activity_name` and `type_name` of a method.
const ACTIVITIES: [(&str, i32, &str, &str); 8] = [
    ("CONNECT", 1, "Connect", "HTTP Activity: Connect"),
    ("DELETE", 2, "Delete", "HTTP Activity: Delete"),
    ("GET", 3, "Get", "HTTP Activity: Get"),
    ("HEAD", 4, "Head", "HTTP Activity: Head"),
    ("OPTIONS", 5, "Options", "HTTP Activity: Options"),
    ("POST", 6, "Post", "HTTP Activity: Post"),
    ("PUT", 7, "Put", "HTTP Activity: Put"),
    ("TRACE", 8, "Trace", "HTTP Activity: Trace"),
];
const OTHER_TYPE_NAME: &str = "HTTP Activity: Other";

pub fn activity(method: &str) -> (i32, &'static str) {
    ACTIVITIES
        .iter()
        .find(|(m, ..)| m.eq_ignore_ascii_case(method))
        .map_or((99, "Other"), |&(_, id, name, _)| (id, name))
}

/// `type_name` of an `activity_id` (`{class_name}: {activity_name}`).
pub fn type_name(activity_id: i32) -> &'static str {
    ACTIVITIES
        .iter()
        .find(|(_, id, ..)| *id == activity_id)
        .map_or(OTHER_TYPE_NAME, |&(.., name)| name)
}

pub fn severity_name(id: i32) -> &'static str {
    match id {
        1 => "Informational",
        2 => "Low",
        3 => "Medium",
        _ => "Unknown",
    }
}

pub fn status_name(id: i32) -> &'static str {
    match id {
        1 => "Success",
        2 => "Failure",
        _ => "Unknown",
    }
}

/// A JSON string, borrowed from the record unless it holds escapes.
struct Text<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl<'de> Visitor<'de> for TextVisitor {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v.to_string())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(TextVisitor)
    }
}

/// The vendor fields [`MAPPING`] reads, in its order (a test keeps the two equal).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Vendor {
    Id,
    Timestamp,
    ServerHostname,
    ServerName,
    RemoteIp,
    RemoteHostname,
    RemoteCountryCode,
    UserAgent,
    Method,
    Protocol,
    Scheme,
    TlsProtocol,
    TlsCipher,
    Path,
    Uri,
    ResponseCode,
    AgentResponseCode,
    ResponseSize,
    ResponseMillis,
    HeadersIn,
    HeadersOut,
    Tags,
}

const VENDOR_FIELDS: usize = Vendor::Tags as usize + 1;

impl Vendor {
    fn of(name: &str) -> Option<Vendor> {
        use Vendor::*;
        Some(match name {
            "id" => Id,
            "timestamp" => Timestamp,
            "serverHostname" => ServerHostname,
            "serverName" => ServerName,
            "remoteIP" => RemoteIp,
            "remoteHostname" => RemoteHostname,
            "remoteCountryCode" => RemoteCountryCode,
            "userAgent" => UserAgent,
            "method" => Method,
            "protocol" => Protocol,
            "scheme" => Scheme,
            "tlsProtocol" => TlsProtocol,
            "tlsCipher" => TlsCipher,
            "path" => Path,
            "uri" => Uri,
            "responseCode" => ResponseCode,
            "agentResponseCode" => AgentResponseCode,
            "responseSize" => ResponseSize,
            "responseMillis" => ResponseMillis,
            "headersIn" => HeadersIn,
            "headersOut" => HeadersOut,
            "tags" => Tags,
            _ => return None,
        })
    }
}

/// Members of a JSON object by name, each value left as its JSON text.
type Rest<'a> = Vec<(Cow<'a, str>, &'a RawValue)>;

/// A JSON object's text from `members`, sorted by name, values verbatim; of a repeated name the
/// last counts, as in serde_json's maps.
fn object_text(mut members: Rest<'_>) -> String {
    // Stable, so a repeated name's members stay in order; the later value replaces the kept one.
    members.sort_by(|a, b| a.0.cmp(&b.0));
    members.dedup_by(|later, kept| {
        let same = later.0 == kept.0;
        if same {
            kept.1 = later.1;
        }
        same
    });
    let mut out = String::from("{");
    for (i, (name, value)) in members.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_json_string(&mut out, name);
        out.push(':');
        out.push_str(value.get());
    }
    out.push('}');
    out
}

/// A record's members: the vendor fields the mapping reads in slots (no tree of values is built;
/// each stays JSON text until asked for), every other member in `rest`.
struct Record<'a> {
    values: [Option<&'a RawValue>; VENDOR_FIELDS],
    taken: [bool; VENDOR_FIELDS],
    rest: Rest<'a>,
}

impl<'de> Deserialize<'de> for Record<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RecordVisitor;
        impl<'de> Visitor<'de> for RecordVisitor {
            type Value = Record<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Record<'de>, A::Error> {
                let mut record = Record {
                    values: [None; VENDOR_FIELDS],
                    taken: [false; VENDOR_FIELDS],
                    rest: Vec::new(),
                };
                while let Some((Text(name), value)) = map.next_entry::<Text, &RawValue>()? {
                    // The last of a repeated name counts, as in serde_json's maps.
                    match Vendor::of(&name) {
                        Some(field) => record.values[field as usize] = Some(value),
                        None => record.rest.push((name, value)),
                    }
                }
                Ok(record)
            }
        }
        deserializer.deserialize_map(RecordVisitor)
    }
}

impl<'a> Record<'a> {
    /// Takes the value of `field` out (it no longer belongs to the remainder).
    fn take(&mut self, field: Vendor) -> Option<&'a str> {
        let value = self.values[field as usize]?;
        self.taken[field as usize] = true;
        Some(value.get())
    }

    /// Puts `field`'s value back into the remainder.
    fn keep<T>(&mut self, field: Vendor) -> Option<T> {
        self.taken[field as usize] = false;
        None
    }

    /// The members not taken, as a JSON object's text; `None` when every one was.
    fn remainder(self) -> Option<String> {
        let Record {
            values,
            taken,
            mut rest,
        } = self;
        let vendor = MAPPING.iter().zip(values.iter().zip(taken));
        for (m, (value, taken)) in vendor {
            if let (Some(value), false) = (value, taken) {
                rest.push((Cow::Borrowed(m.vendor), value));
            }
        }
        (!rest.is_empty()).then(|| object_text(rest))
    }

    /// A string member: empty is absent (OCSF's types refuse empty values); `null` or a value of
    /// another type stays in the remainder.
    fn string(&mut self, field: Vendor) -> Option<Cow<'a, str>> {
        match serde_json::from_str::<Text>(self.take(field)?) {
            Ok(Text(s)) if s.is_empty() => None,
            Ok(Text(s)) => Some(s),
            Err(_) => self.keep(field),
        }
    }

    /// A string member that must also pass `valid` (an address, a hostname).
    fn checked(&mut self, field: Vendor, valid: fn(&str) -> bool) -> Option<Cow<'a, str>> {
        match self.string(field) {
            Some(value) if !valid(&value) => self.keep(field),
            other => other,
        }
    }

    fn int<T: TryFrom<i64>>(&mut self, field: Vendor) -> Option<T> {
        match serde_json::from_str::<i64>(self.take(field)?).map(T::try_from) {
            Ok(Ok(n)) => Some(n),
            _ => self.keep(field),
        }
    }

    /// A list member read as `T` (`null` is absent); a value that is not one stays in the
    /// remainder.
    fn list<T: Deserialize<'a>>(&mut self, field: Vendor) -> Option<Vec<T>> {
        match serde_json::from_str::<Option<Vec<T>>>(self.take(field)?) {
            Ok(list) => list,
            Err(_) => self.keep(field),
        }
    }
}

/// Appends `text` as a JSON string.
fn push_json_string(out: &mut String, text: &str) {
    let plain = text.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\');
    if plain {
        out.push('"');
        out.push_str(text);
        out.push('"');
    } else {
        out.push_str(&serde_json::Value::from(text).to_string());
    }
}

/// A `[name, value]` pair of strings.
struct Pair<'a>(Header<'a>);

impl<'de> Deserialize<'de> for Pair<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let (Text(name), Text(value)) = <(Text, Text)>::deserialize(deserializer)?;
        Ok(Pair(Header { name, value }))
    }
}

/// A tag: an object with string `type` and `value`; its other members are `data`.
struct Tag<'a>(Enrichment<'a>);

impl<'de> Deserialize<'de> for Tag<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TagVisitor;
        impl<'de> Visitor<'de> for TagVisitor {
            type Value = Tag<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a tag object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Tag<'de>, A::Error> {
                let (mut name, mut value, mut rest) = (None, None, Rest::new());
                while let Some((Text(key), raw)) = map.next_entry::<Text, &RawValue>()? {
                    match &*key {
                        "type" => name = Some(raw),
                        "value" => value = Some(raw),
                        _ => rest.push((key, raw)),
                    }
                }
                let text = |raw: Option<&'de RawValue>, key: &str| {
                    raw.and_then(|raw| serde_json::from_str::<Text>(raw.get()).ok())
                        .map(|Text(s)| s)
                        .ok_or_else(|| de::Error::custom(format!("a tag needs a string `{key}`")))
                };
                Ok(Tag(Enrichment {
                    name: text(name, "type")?,
                    value: text(value, "value")?,
                    data: object_text(rest),
                }))
            }
        }
        deserializer.deserialize_map(TagVisitor)
    }
}

impl<'a> Event<'a> {
    /// Maps one record (its JSON text, as the feed sent it); the event borrows from it.
    pub fn from_record(raw: &'a str) -> Result<Event<'a>, OcsfError> {
        let mut f = serde_json::from_str::<Record>(raw)
            .map_err(|e| OcsfError::Record(format!("not a JSON object: {e}")))?;
        let Some(uid) = f.string(Vendor::Id) else {
            return Err(OcsfError::Record("no string `id`".into()));
        };
        let Some(stamp) = f.string(Vendor::Timestamp) else {
            return Err(OcsfError::Record(format!("{uid}: no string `timestamp`")));
        };
        let time = chrono::DateTime::parse_from_rfc3339(&stamp)
            .map_err(|e| OcsfError::Record(format!("{uid}: timestamp {stamp:?}: {e}")))?
            .timestamp_millis();
        // An endpoint needs an address or a name (OCSF), so a value that is neither address nor
        // hostname names the endpoint.
        let (dst_hostname, dst_name) = match f.string(Vendor::ServerHostname) {
            Some(host) if is_hostname(&host) => (Some(host), None),
            other => (None, other),
        };
        let url_hostname = f.checked(Vendor::ServerName, is_hostname);
        let (src_ip, src_name) = match f.string(Vendor::RemoteIp) {
            Some(ip) if ip.parse::<IpAddr>().is_ok() => (Some(ip), None),
            other => (None, other),
        };
        let src_hostname = f.checked(Vendor::RemoteHostname, is_hostname);
        let src_country = f.string(Vendor::RemoteCountryCode);
        let user_agent = f.string(Vendor::UserAgent);
        // The activity from any spelling; the attribute only as OCSF 1.1.0 enumerates methods.
        let method = f.string(Vendor::Method);
        let (activity_id, activity_name) = activity(method.as_deref().unwrap_or(""));
        let http_method = match method {
            Some(m) if activity_id == 99 || !m.bytes().all(|b| b.is_ascii_uppercase()) => {
                f.keep(Vendor::Method)
            }
            other => other,
        };
        let http_version = f.string(Vendor::Protocol);
        let url_scheme = f.string(Vendor::Scheme);
        let tls_version = f.string(Vendor::TlsProtocol);
        // A TLS object needs its version: a cipher alone stays vendor data.
        let tls_cipher = match (f.string(Vendor::TlsCipher), &tls_version) {
            (Some(_), None) => f.keep(Vendor::TlsCipher),
            (cipher, _) => cipher,
        };
        let url_path = f.string(Vendor::Path);
        let url_string = f.string(Vendor::Uri);
        // A URL needs its path or string: without either, its other parts stay vendor data.
        let (url_scheme, url_hostname) = if url_path.is_none() && url_string.is_none() {
            if url_scheme.is_some() {
                f.keep::<()>(Vendor::Scheme);
            }
            if url_hostname.is_some() {
                f.keep::<()>(Vendor::ServerName);
            }
            (None, None)
        } else {
            (url_scheme, url_hostname)
        };
        // `http_response.code` is required: 0 stands for none (the vendor's own "no response").
        let response_code = Some(f.int::<i32>(Vendor::ResponseCode).unwrap_or(0));
        let agent_code = f.int::<i32>(Vendor::AgentResponseCode);
        let response_length = f.int::<i64>(Vendor::ResponseSize);
        let response_latency = f.int::<i32>(Vendor::ResponseMillis);
        let request_headers = f
            .list(Vendor::HeadersIn)
            .map(|p| p.into_iter().map(|Pair(h)| h).collect());
        let response_headers = f
            .list(Vendor::HeadersOut)
            .map(|p| p.into_iter().map(|Pair(h)| h).collect());
        let enrichments = f
            .list(Vendor::Tags)
            .map(|t| t.into_iter().map(|Tag(e)| e).collect::<Vec<_>>());

        let blocked = agent_code.is_some_and(|c| c >= 400);
        let status_id = match agent_code {
            None => 0,
            Some(_) if blocked => 2,
            Some(_) => 1,
        };
        let tagged = enrichments.as_ref().is_some_and(|t| !t.is_empty());
        let severity_id = if blocked {
            3
        } else if tagged {
            2
        } else {
            1
        };
        Ok(Event {
            activity_id,
            activity_name,
            severity_id,
            status_id,
            status_code: agent_code,
            time,
            uid,
            src_ip,
            src_name,
            src_hostname,
            src_country,
            dst_hostname,
            dst_name,
            http_method,
            http_version,
            user_agent,
            url_scheme,
            url_hostname,
            url_path,
            url_string,
            request_headers,
            response_code,
            response_length,
            response_latency,
            response_headers,
            tls_version,
            tls_cipher,
            enrichments,
            unmapped: f.remainder(),
        })
    }

    /// `http_request.url.query_string`: the part of `uri` after the first `?`.
    pub fn query_string(&self) -> Option<&str> {
        self.url_string
            .as_deref()
            .and_then(|uri| uri.split_once('?'))
            .map(|(_, query)| query)
    }

    /// The observables, each when its attribute is present.
    pub fn observables(&self) -> impl Iterator<Item = Observable<'_>> {
        // OCSF 1.1.0 has no user-agent observable type: Other, named in `type`.
        [
            ("src_endpoint.ip", 2, "IP Address", &self.src_ip),
            ("src_endpoint.hostname", 1, "Hostname", &self.src_hostname),
            (
                "http_request.user_agent",
                99,
                "HTTP User-Agent",
                &self.user_agent,
            ),
        ]
        .into_iter()
        .filter_map(|(name, type_id, type_name, value)| {
            value.as_deref().map(|value| Observable {
                name,
                type_id,
                type_name,
                value,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RECORD: &str = r#"{"id":"5f1c0ffee0ddba11ad5eed01","serverHostname":"web-1","serverName":"www.example.com","remoteIP":"2a02:123:4567::9","remoteHostname":"","remoteCountryCode":"DE","userAgent":"curl/8.0","timestamp":"2026-11-26T08:00:05Z","method":"post","protocol":"HTTP/1.1","scheme":"https","tlsProtocol":"TLSv1.3","tlsCipher":"TLS_AES_128_GCM_SHA256","path":"/login","uri":"/login?next=/a?b","responseCode":406,"agentResponseCode":406,"responseSize":120,"responseMillis":3,"headersIn":[["Host","www.example.com"],["X-Grüße","日本語 ✓"]],"headersOut":null,"tags":[{"type":"SQLI","location":"QUERY","value":"' or 1=1","detector":"SQLiRule"}],"newField":{"a":1}}"#;

    #[test]
    fn every_field_lands_where_the_table_says() {
        let event = Event::from_record(RECORD).unwrap();
        assert_eq!(event.uid, "5f1c0ffee0ddba11ad5eed01");
        assert_eq!(event.time, 1_795_680_005_000);
        assert_eq!(event.src_ip.as_deref(), Some("2a02:123:4567::9"));
        // Empty is absent: OCSF's types refuse empty values.
        assert_eq!(event.src_hostname, None);
        assert_eq!((event.activity_id, event.activity_name), (6, "Post"));
        assert_eq!(event.http_method, None);
        assert_eq!((event.status_id, event.severity_id), (2, 3));
        assert_eq!(event.status_code, Some(406));
        assert_eq!(event.query_string(), Some("next=/a?b"));
        assert_eq!(event.url_string.as_deref(), Some("/login?next=/a?b"));
        assert_eq!(
            event.request_headers.as_ref().unwrap()[1],
            Header {
                name: "X-Grüße".into(),
                value: "日本語 ✓".into()
            }
        );
        assert_eq!(event.response_headers, None);
        let tags = event.enrichments.as_ref().unwrap();
        assert_eq!((&*tags[0].name, &*tags[0].value), ("SQLI", "' or 1=1"));
        assert_eq!(
            tags[0].data,
            r#"{"detector":"SQLiRule","location":"QUERY"}"#
        );
        assert_eq!(
            event.unmapped.as_deref(),
            Some(r#"{"method":"post","newField":{"a":1}}"#)
        );
        // An absent hostname is no observable.
        let names: Vec<_> = event.observables().map(|o| o.type_id).collect();
        assert_eq!(names, [2, 99]);
    }

    #[test]
    fn values_of_the_wrong_type_go_to_unmapped() {
        let raw = r#"{"id":"a","timestamp":"2026-11-26T08:00:05Z","remoteIP":"not-an-ip","responseCode":"200","responseMillis":99999999999,"headersIn":[["only-a-name"]],"tags":"SQLI","method":"PATCH","tlsProtocol":"","tlsCipher":"","serverName":"www.example.com:8443","remoteHostname":"-bad-.example","userAgent":null,"responseSize":null}"#;
        let event = Event::from_record(raw).unwrap();
        assert_eq!(event.src_ip, None);
        assert_eq!(event.src_name.as_deref(), Some("not-an-ip"));
        assert_eq!(event.response_code, Some(0));
        assert_eq!(event.request_headers, None);
        assert_eq!(event.enrichments, None);
        assert_eq!((event.activity_id, event.status_id), (99, 0));
        assert_eq!((event.tls_version, event.tls_cipher), (None, None));
        let unmapped: serde_json::Value =
            serde_json::from_str(event.unmapped.as_deref().unwrap()).unwrap();
        assert_eq!(
            unmapped,
            serde_json::json!({"responseCode": "200",
                "responseMillis": 99999999999_i64, "headersIn": [["only-a-name"]], "tags": "SQLI", "method": "PATCH",
                "serverName": "www.example.com:8443", "remoteHostname": "-bad-.example",
                "userAgent": null, "responseSize": null})
        );
    }

    #[test]
    fn escapes_and_repeated_names_read_as_serde_json_reads_them() {
        let raw = r#"{"id":"a","timestamp":"2026-11-26T08:00:05Z","userAgent":"first","x\"y":[1, {"b": "\u00e9"}],"userAgent":"x\"y\u00e9","tags":[{"type":"T","value":"v","type":"U","n\tm":null}],"headersIn":[["a\nb","c"]],"uri":"/"}"#;
        let event = Event::from_record(raw).unwrap();
        // The last of a repeated name counts; escapes are decoded.
        assert_eq!(event.user_agent.as_deref(), Some("x\"yé"));
        let tags = event.enrichments.as_ref().unwrap();
        assert_eq!((&*tags[0].name, &*tags[0].value), ("U", "v"));
        let data: serde_json::Value = serde_json::from_str(&tags[0].data).unwrap();
        assert_eq!(data, serde_json::json!({"n\tm": null}));
        assert_eq!(&*event.request_headers.as_ref().unwrap()[0].name, "a\nb");
        let unmapped: serde_json::Value =
            serde_json::from_str(event.unmapped.as_deref().unwrap()).unwrap();
        assert_eq!(unmapped, serde_json::json!({"x\"y": [1, {"b": "é"}]}));
    }

    #[test]
    fn records_without_id_or_time_are_refused() {
        for raw in [
            "[]",
            "{",
            r#"{"timestamp":"2026-11-26T08:00:05Z"}"#,
            r#"{"id":"a"}"#,
            r#"{"id":"a","timestamp":"yesterday"}"#,
        ] {
            assert!(Event::from_record(raw).is_err(), "{raw}");
        }
    }

    #[test]
    fn the_slots_are_the_tables_fields() {
        for (i, m) in MAPPING[..VENDOR_FIELDS].iter().enumerate() {
            let field = Vendor::of(m.vendor).unwrap();
            assert_eq!(field as usize, i, "{}", m.vendor);
        }
        assert_eq!(
            MAPPING.len(),
            VENDOR_FIELDS + 1,
            "one row for any other field"
        );
    }

    #[test]
    fn the_docs_mirror_the_table() {
        let docs = include_str!("../../../docs/ocsf-mapping.md");
        for m in MAPPING.iter().chain(DERIVED) {
            let line = format!("| {} | `{}` | {} |", m.vendor, m.ocsf, m.how);
            assert!(
                docs.lines().any(|l| l == line),
                "docs/ocsf-mapping.md lacks the line\n{line}"
            );
        }
        assert!(docs.contains(&format!("OCSF {OCSF_VERSION}")));
    }
}

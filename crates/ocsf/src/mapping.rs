//! The mapping of one feed record to OCSF HTTP Activity: [`MAPPING`] is the table (mirrored in
//! `docs/ocsf-mapping.md`, which a test keeps equal), and [`Event::from_record`] applies it.
//!
//! Every vendor field lands in exactly one OCSF attribute, with an inverse stated in the table, so
//! the record can be read back whole; a field the table does not know, or whose value does not
//! fit its attribute's type, goes to `unmapped` verbatim. Nothing the vendor sent is lost.

use std::net::IpAddr;

use serde_json::{Map, Value};

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
pub struct Header {
    pub name: String,
    pub value: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Enrichment {
    pub name: String,
    pub value: String,
    /// The tag's other members (`location`, `detector`, …) as a JSON object.
    pub data: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observable {
    pub name: &'static str,
    pub type_id: i32,
    pub type_name: &'static str,
    pub value: String,
}

/// One OCSF HTTP Activity event, flat as the Parquet writer needs it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Event {
    pub activity_id: i32,
    pub activity_name: &'static str,
    pub severity_id: i32,
    pub status_id: i32,
    pub status_code: Option<String>,
    pub time: i64,
    pub uid: String,
    pub src_ip: Option<String>,
    pub src_name: Option<String>,
    pub src_hostname: Option<String>,
    pub src_country: Option<String>,
    pub dst_hostname: Option<String>,
    pub dst_name: Option<String>,
    pub http_method: Option<String>,
    pub http_version: Option<String>,
    pub user_agent: Option<String>,
    pub url_scheme: Option<String>,
    pub url_hostname: Option<String>,
    pub url_path: Option<String>,
    pub url_string: Option<String>,
    pub query_string: Option<String>,
    pub request_headers: Option<Vec<Header>>,
    pub response_code: Option<i32>,
    pub response_length: Option<i64>,
    pub response_latency: Option<i32>,
    pub response_headers: Option<Vec<Header>>,
    pub tls_version: Option<String>,
    pub tls_cipher: Option<String>,
    pub enrichments: Option<Vec<Enrichment>>,
    pub observables: Vec<Observable>,
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

pub fn activity(method: &str) -> (i32, &'static str) {
    const METHODS: [(&str, i32, &str); 8] = [
        ("CONNECT", 1, "Connect"),
        ("DELETE", 2, "Delete"),
        ("GET", 3, "Get"),
        ("HEAD", 4, "Head"),
        ("OPTIONS", 5, "Options"),
        ("POST", 6, "Post"),
        ("PUT", 7, "Put"),
        ("TRACE", 8, "Trace"),
    ];
    METHODS
        .iter()
        .find(|(m, _, _)| m.eq_ignore_ascii_case(method))
        .map_or((99, "Other"), |&(_, id, name)| (id, name))
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

/// Takes the fields of one record out of its JSON object; what is left is `unmapped`.
struct Fields {
    map: Map<String, Value>,
    unmapped: Map<String, Value>,
}

impl Fields {
    /// A string field: empty is absent (OCSF's types refuse empty values); `null` or a value of
    /// another type goes to `unmapped`.
    fn string(&mut self, key: &str) -> Option<String> {
        match self.map.remove(key)? {
            Value::String(s) if s.is_empty() => None,
            Value::String(s) => Some(s),
            other => self.keep(key, other),
        }
    }

    /// A string field that must also pass `valid` (an address, a hostname).
    fn checked(&mut self, key: &str, valid: fn(&str) -> bool) -> Option<String> {
        match self.string(key) {
            Some(value) if !valid(&value) => self.keep(key, Value::String(value)),
            other => other,
        }
    }

    fn int<T: TryFrom<i64>>(&mut self, key: &str) -> Option<T> {
        let value = self.map.remove(key)?;
        match value.as_i64().map(T::try_from) {
            Some(Ok(n)) => Some(n),
            _ => self.keep(key, value),
        }
    }

    fn headers(&mut self, key: &str) -> Option<Vec<Header>> {
        let value = self.map.remove(key)?;
        let pair = |p: &Value| {
            matches!(
                p.as_array().map(Vec::as_slice),
                Some([Value::String(_), Value::String(_)])
            )
        };
        // Checked first, then taken apart without copying the strings.
        match value {
            Value::Array(items) if items.iter().all(pair) => Some(
                items
                    .into_iter()
                    .filter_map(|p| match p {
                        Value::Array(pair) => {
                            let mut pair = pair.into_iter();
                            match (pair.next(), pair.next()) {
                                (Some(Value::String(name)), Some(Value::String(value))) => {
                                    Some(Header { name, value })
                                }
                                _ => None,
                            }
                        }
                        _ => None,
                    })
                    .collect(),
            ),
            Value::Null => None,
            other => self.keep(key, other),
        }
    }

    fn tags(&mut self) -> Option<Vec<Enrichment>> {
        let value = self.map.remove("tags")?;
        let tag = |t: &Value| {
            t.get("type").is_some_and(Value::is_string)
                && t.get("value").is_some_and(Value::is_string)
        };
        match value {
            Value::Array(items) if items.iter().all(tag) => Some(
                items
                    .into_iter()
                    .filter_map(|t| match t {
                        Value::Object(mut tag) => match (tag.remove("type"), tag.remove("value")) {
                            (Some(Value::String(name)), Some(Value::String(value))) => {
                                Some(Enrichment {
                                    name,
                                    value,
                                    data: Value::Object(tag).to_string(),
                                })
                            }
                            _ => None,
                        },
                        _ => None,
                    })
                    .collect(),
            ),
            Value::Null => None,
            other => self.keep("tags", other),
        }
    }

    fn keep<T>(&mut self, key: &str, value: Value) -> Option<T> {
        self.unmapped.insert(key.to_string(), value);
        None
    }
}

impl Event {
    /// Maps one record (its JSON text, as the feed sent it).
    pub fn from_record(raw: &str) -> Result<Event, OcsfError> {
        let map = match serde_json::from_str::<Value>(raw) {
            Ok(Value::Object(map)) => map,
            Ok(_) => return Err(OcsfError::Record("not a JSON object".into())),
            Err(e) => return Err(OcsfError::Record(format!("not JSON: {e}"))),
        };
        let mut f = Fields {
            map,
            unmapped: Map::new(),
        };
        let Some(uid) = f.string("id") else {
            return Err(OcsfError::Record("no string `id`".into()));
        };
        let Some(stamp) = f.string("timestamp") else {
            return Err(OcsfError::Record(format!("{uid}: no string `timestamp`")));
        };
        let time = chrono::DateTime::parse_from_rfc3339(&stamp)
            .map_err(|e| OcsfError::Record(format!("{uid}: timestamp {stamp:?}: {e}")))?
            .timestamp_millis();
        // An endpoint needs an address or a name (OCSF), so a value that is neither address nor
        // hostname names the endpoint.
        let (dst_hostname, dst_name) = match f.string("serverHostname") {
            Some(host) if is_hostname(&host) => (Some(host), None),
            other => (None, other),
        };
        let url_hostname = f.checked("serverName", is_hostname);
        let (src_ip, src_name) = match f.string("remoteIP") {
            Some(ip) if ip.parse::<IpAddr>().is_ok() => (Some(ip), None),
            other => (None, other),
        };
        let src_hostname = f.checked("remoteHostname", is_hostname);
        let src_country = f.string("remoteCountryCode");
        let user_agent = f.string("userAgent");
        // The activity from any spelling; the attribute only as OCSF 1.1.0 enumerates methods.
        let (activity_id, activity_name) =
            activity(f.map.get("method").and_then(Value::as_str).unwrap_or(""));
        let http_method = f.checked("method", |m| {
            activity(m).0 != 99 && m.bytes().all(|b| b.is_ascii_uppercase())
        });
        let http_version = f.string("protocol");
        let url_scheme = f.string("scheme");
        let tls_version = f.string("tlsProtocol");
        // A TLS object needs its version: a cipher alone stays vendor data.
        let tls_cipher = match (f.string("tlsCipher"), &tls_version) {
            (Some(cipher), None) => f.keep("tlsCipher", Value::String(cipher)),
            (cipher, _) => cipher,
        };
        let url_path = f.string("path");
        let url_string = f.string("uri");
        // A URL needs its path or string: without either, its other parts stay vendor data.
        let (url_scheme, url_hostname) = if url_path.is_none() && url_string.is_none() {
            for (key, value) in [("scheme", url_scheme), ("serverName", url_hostname)] {
                if let Some(value) = value {
                    f.keep::<()>(key, Value::String(value));
                }
            }
            (None, None)
        } else {
            (url_scheme, url_hostname)
        };
        // `http_response.code` is required: 0 stands for none (the vendor's own "no response").
        let response_code = Some(f.int::<i32>("responseCode").unwrap_or(0));
        let agent_code = f.int::<i32>("agentResponseCode");
        let response_length = f.int::<i64>("responseSize");
        let response_latency = f.int::<i32>("responseMillis");
        let request_headers = f.headers("headersIn");
        let response_headers = f.headers("headersOut");
        let enrichments = f.tags();

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
        let mut observables = Vec::new();
        let mut observe = |name, type_id, type_name, value: &Option<String>| {
            if let Some(value) = value {
                observables.push(Observable {
                    name,
                    type_id,
                    type_name,
                    value: value.clone(),
                });
            }
        };
        observe("src_endpoint.ip", 2, "IP Address", &src_ip);
        observe("src_endpoint.hostname", 1, "Hostname", &src_hostname);
        // OCSF 1.1.0 has no user-agent observable type: Other, named in `type`.
        observe(
            "http_request.user_agent",
            99,
            "HTTP User-Agent",
            &user_agent,
        );
        let query_string = url_string
            .as_deref()
            .and_then(|uri| uri.split_once('?'))
            .map(|(_, query)| query.to_string());
        f.unmapped.extend(f.map);
        Ok(Event {
            activity_id,
            activity_name,
            severity_id,
            status_id,
            status_code: agent_code.map(|c| c.to_string()),
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
            query_string,
            request_headers,
            response_code,
            response_length,
            response_latency,
            response_headers,
            tls_version,
            tls_cipher,
            enrichments,
            observables,
            unmapped: (!f.unmapped.is_empty()).then(|| Value::Object(f.unmapped).to_string()),
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
        assert_eq!(event.status_code.as_deref(), Some("406"));
        assert_eq!(event.query_string.as_deref(), Some("next=/a?b"));
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
        assert_eq!(
            (tags[0].name.as_str(), tags[0].value.as_str()),
            ("SQLI", "' or 1=1")
        );
        assert_eq!(
            tags[0].data,
            r#"{"detector":"SQLiRule","location":"QUERY"}"#
        );
        assert_eq!(
            event.unmapped.as_deref(),
            Some(r#"{"method":"post","newField":{"a":1}}"#)
        );
        // An absent hostname is no observable.
        let names: Vec<_> = event.observables.iter().map(|o| o.type_id).collect();
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
        let unmapped: Value = serde_json::from_str(event.unmapped.as_deref().unwrap()).unwrap();
        assert_eq!(
            unmapped,
            serde_json::json!({"responseCode": "200",
                "responseMillis": 99999999999_i64, "headersIn": [["only-a-name"]], "tags": "SQLI", "method": "PATCH",
                "serverName": "www.example.com:8443", "remoteHostname": "-bad-.example",
                "userAgent": null, "responseSize": null})
        );
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

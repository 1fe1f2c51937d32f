//! The parts of one synthetic feed record (peer, request line, target, response, headers, tags),
//! each drawn from the record's random stream, and the record's JSON shape.
//!
//! Every part draws from the same stream, so the callers must draw the parts in one fixed order:
//! reordering the calls (or the draws inside one) changes every record after the first.

use std::borrow::Cow;

use super::generate::SignalSet;
use super::vocab::{
    ACCEPTS, BROWSER_AGENTS, CACHE_CONTROLS, COUNTRIES, DATACENTER_HOSTS, ISP_DOMAINS, LANGUAGES,
    METHODS, OK_CODES, PATHS, SEARCH_WORDS, TLS_CIPHERS, TOOL_AGENTS, UTM_SOURCES,
};
use crate::rng::SplitMix;

/// The JSON shape of a record (field order as in the API reference).
pub(super) struct Record<'a> {
    pub(super) id: &'a str,
    pub(super) server_hostname: &'a str,
    pub(super) server_name: &'a str,
    pub(super) remote_ip: &'a str,
    pub(super) remote_hostname: &'a str,
    pub(super) remote_country_code: &'a str,
    pub(super) user_agent: &'a str,
    pub(super) timestamp: &'a str,
    pub(super) method: &'a str,
    pub(super) protocol: &'a str,
    pub(super) scheme: &'a str,
    pub(super) tls_protocol: &'a str,
    pub(super) tls_cipher: &'a str,
    pub(super) path: &'a str,
    pub(super) uri: &'a str,
    pub(super) response_code: u16,
    pub(super) agent_response_code: u16,
    pub(super) response_size: u64,
    pub(super) response_millis: u64,
    pub(super) headers_in: &'a [[&'a str; 2]],
    pub(super) headers_out: &'a [[&'a str; 2]],
    pub(super) tags: &'a [Tag<'a>],
}

pub(super) struct Tag<'a> {
    kind: &'a str,
    location: &'a str,
    value: &'a str,
    detector: &'a str,
}

impl Record<'_> {
    /// Appends the record as compact JSON: the bytes serde_json writes for this shape. Written by
    /// hand because serde_json checks strings for escapes a byte at a time, which was a quarter of
    /// the simulator's CPU while it served the feed; almost no string here needs an escape.
    pub(super) fn write_json(&self, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
        let strings = [
            ("id", self.id),
            ("serverHostname", self.server_hostname),
            ("serverName", self.server_name),
            ("remoteIP", self.remote_ip),
            ("remoteHostname", self.remote_hostname),
            ("remoteCountryCode", self.remote_country_code),
            ("userAgent", self.user_agent),
            ("timestamp", self.timestamp),
            ("method", self.method),
            ("protocol", self.protocol),
            ("scheme", self.scheme),
            ("tlsProtocol", self.tls_protocol),
            ("tlsCipher", self.tls_cipher),
            ("path", self.path),
            ("uri", self.uri),
        ];
        let numbers = [
            ("responseCode", u64::from(self.response_code)),
            ("agentResponseCode", u64::from(self.agent_response_code)),
            ("responseSize", self.response_size),
            ("responseMillis", self.response_millis),
        ];
        out.push(b'{');
        write_string_fields(out, &strings)?;
        for (name, value) in numbers {
            out.push(b',');
            write_key(out, name);
            serde_json::to_writer(&mut *out, &value)?;
        }
        for (name, headers) in [
            ("headersIn", self.headers_in),
            ("headersOut", self.headers_out),
        ] {
            out.push(b',');
            write_key(out, name);
            out.push(b'[');
            for (k, [header, value]) in headers.iter().enumerate() {
                if k > 0 {
                    out.push(b',');
                }
                out.push(b'[');
                write_str(out, header)?;
                out.push(b',');
                write_str(out, value)?;
                out.push(b']');
            }
            out.push(b']');
        }
        out.push(b',');
        write_key(out, "tags");
        out.push(b'[');
        for (k, tag) in self.tags.iter().enumerate() {
            if k > 0 {
                out.push(b',');
            }
            out.push(b'{');
            write_string_fields(
                out,
                &[
                    ("type", tag.kind),
                    ("location", tag.location),
                    ("value", tag.value),
                    ("detector", tag.detector),
                ],
            )?;
            out.push(b'}');
        }
        out.extend_from_slice(b"]}");
        Ok(())
    }
}

/// `"name":"value"` pairs, comma-separated.
fn write_string_fields(
    out: &mut Vec<u8>,
    fields: &[(&str, &str)],
) -> Result<(), serde_json::Error> {
    for (k, (name, value)) in fields.iter().enumerate() {
        if k > 0 {
            out.push(b',');
        }
        write_key(out, name);
        write_str(out, value)?;
    }
    Ok(())
}

/// `"name":` for a key known to need no escape.
fn write_key(out: &mut Vec<u8>, name: &str) {
    out.push(b'"');
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\":");
}

/// A JSON string: copied as it is when nothing in it needs an escape (checked without an early
/// exit, so the compiler can test many bytes at once), else escaped by serde_json.
fn write_str(out: &mut Vec<u8>, value: &str) -> Result<(), serde_json::Error> {
    let plain = value.bytes().fold(true, |plain, b| {
        plain & (b >= 0x20) & (b != b'"') & (b != b'\\')
    });
    if !plain {
        return serde_json::to_writer(out, value);
    }
    out.reserve(value.len() + 2);
    out.push(b'"');
    out.extend_from_slice(value.as_bytes());
    out.push(b'"');
    Ok(())
}

/// Who sent the request.
pub(super) struct Peer {
    pub(super) remote_ip: String,
    pub(super) remote_hostname: String,
    pub(super) country: &'static str,
    pub(super) user_agent: &'static str,
    /// Browsers send more headers than tools and scanners.
    browser: bool,
    /// The scanner a USERAGENT signal names; it is also that tag's value.
    scanner: Option<&'static str>,
}

impl Peer {
    pub(super) fn draw(rng: &mut SplitMix, signals: &SignalSet) -> Self {
        let (country, _, first_octets) = *rng.pick_by_weight(&COUNTRIES, |c| c.1);
        let octets = [
            u64::from(*rng.pick(first_octets)),
            rng.range(0, 255),
            rng.range(0, 255),
            rng.range(1, 254),
        ];
        let remote_ip = if rng.chance(0.08) {
            format!(
                "2a02:{:x}:{:x}::{:x}",
                rng.range(0x100, 0xfff),
                rng.range(1, 0xffff),
                rng.range(1, 0xff)
            )
        } else {
            format!("{}.{}.{}.{}", octets[0], octets[1], octets[2], octets[3])
        };
        let remote_hostname = if signals.has("DATACENTER") {
            format!(
                "ec2-{}-{}-{}-{}.{}",
                octets[0],
                octets[1],
                octets[2],
                octets[3],
                rng.pick(&DATACENTER_HOSTS)
            )
        } else if rng.chance(0.4) {
            format!(
                "{}-{}-{}-{}.{}",
                octets[3],
                octets[2],
                octets[1],
                octets[0],
                rng.pick(&ISP_DOMAINS)
            )
        } else {
            String::new()
        };

        let scanner = signals
            .iter()
            .find(|s| s.name == "USERAGENT")
            .map(|s| *rng.pick(s.values));
        let (user_agent, browser) = if signals.has("NOUA") {
            ("", false)
        } else if let Some(scanner) = scanner {
            (scanner, false)
        } else if rng.chance(0.75) {
            (*rng.weighted(&BROWSER_AGENTS), true)
        } else {
            (*rng.pick(&TOOL_AGENTS), false)
        };
        Peer {
            remote_ip,
            remote_hostname,
            country,
            user_agent,
            browser,
            scanner,
        }
    }
}

/// Method, protocol and TLS.
pub(super) struct RequestLine {
    pub(super) method: &'static str,
    https: bool,
    pub(super) protocol: &'static str,
    pub(super) tls_protocol: &'static str,
    pub(super) tls_cipher: &'static str,
}

impl RequestLine {
    pub(super) fn draw(rng: &mut SplitMix, signals: &SignalSet) -> Self {
        let posts = ["CMDEXE", "CODEINJECTION", "site.login-attempt"]
            .iter()
            .any(|n| signals.has(n));
        let method = if posts {
            "POST"
        } else {
            *rng.weighted(&METHODS)
        };
        let https = rng.chance(0.92);
        let protocol = if rng.chance(0.4) {
            "HTTP/2.0"
        } else {
            "HTTP/1.1"
        };
        let (tls_protocol, tls_cipher) = if https {
            let (p, c, _) = *rng.pick_by_weight(&TLS_CIPHERS, |t| t.2);
            (p, c)
        } else {
            ("", "")
        };
        RequestLine {
            method,
            https,
            protocol,
            tls_protocol,
            tls_cipher,
        }
    }

    pub(super) fn scheme(&self) -> &'static str {
        if self.https { "https" } else { "http" }
    }
}

/// Path and query, with the value each signal matched in them.
pub(super) struct Target {
    pub(super) path: Cow<'static, str>,
    pub(super) uri: String,
    /// One per signal, in the signals' order.
    tag_values: Vec<Cow<'static, str>>,
}

impl Target {
    /// Path, query and tag values follow the primary attack, like real flagged requests.
    pub(super) fn draw(rng: &mut SplitMix, signals: &SignalSet, peer: &Peer) -> Self {
        let mut tag_values: Vec<Cow<'static, str>> = Vec::with_capacity(3);
        let mut path: Cow<'static, str> = {
            let template = *rng.weighted(&PATHS);
            if template.contains("{n}") {
                Cow::Owned(template.replace("{n}", &rng.range(1, 99_999).to_string()))
            } else {
                Cow::Borrowed(template)
            }
        };
        let mut query = String::new();
        for signal in signals.iter() {
            let value = match (signal.name, peer.scanner) {
                ("USERAGENT", Some(scanner)) => scanner,
                _ => *rng.pick(signal.values),
            };
            let tag_value: Cow<'static, str> = match signal.name {
                "SQLI" => {
                    query = format!("id={}&sort=desc", encode_query_value(value));
                    Cow::Owned(format!("id={value}"))
                }
                "XSS" => {
                    query = format!("q={}", encode_query_value(value));
                    Cow::Owned(format!("q={value}"))
                }
                "AWS-SSRF" => {
                    query = format!("url={}", encode_query_value(value));
                    Cow::Owned(format!("url={value}"))
                }
                "DOUBLEENCODING" => {
                    query = format!("file={value}");
                    Cow::Owned(format!("file={value}"))
                }
                "TRAVERSAL" => {
                    path = Cow::Owned(format!("/static/{value}"));
                    Cow::Borrowed(value)
                }
                "BACKDOOR" | "ABNORMALPATH" => {
                    path = Cow::Borrowed(value);
                    Cow::Borrowed(value)
                }
                "site.login-attempt" => {
                    path = Cow::Borrowed("/login");
                    Cow::Borrowed(value)
                }
                _ => Cow::Borrowed(value),
            };
            tag_values.push(tag_value);
        }
        if query.is_empty() && rng.chance(0.55) {
            query = benign_query(rng);
        }
        let uri = if query.is_empty() {
            path.to_string()
        } else {
            format!("{path}?{query}")
        };
        Target {
            path,
            uri,
            tag_values,
        }
    }
}

/// The query string of an ordinary request: search, campaign links, ids, paging.
fn benign_query(rng: &mut SplitMix) -> String {
    match rng.below(5) {
        0 => format!(
            "q={}&page={}",
            encode_query_value(rng.pick::<&str>(&SEARCH_WORDS)),
            rng.range(1, 20)
        ),
        1 => format!(
            "utm_source={}&utm_medium=email&utm_campaign=spring-sale",
            rng.pick(&UTM_SOURCES)
        ),
        2 => format!("id={}", rng.range(1, 999_999)),
        3 => format!("sort=price&order=asc&page={}", rng.range(1, 40)),
        _ => "lang=en&currency=USD".to_owned(),
    }
}

fn encode_query_value(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// Status codes, size and time of the response.
pub(super) struct Response {
    pub(super) code: u16,
    pub(super) agent_code: u16,
    pub(super) size: u64,
    pub(super) millis: u64,
}

impl Response {
    pub(super) fn draw(rng: &mut SplitMix, signals: &SignalSet, line: &RequestLine) -> Self {
        let blocked = signals.has("BLOCKED");
        let code: u16 = if blocked {
            406
        } else if signals.has("HTTP404") {
            404
        } else if signals.has("HTTP403") {
            403
        } else if signals.has("HTTP500") {
            500
        } else if let Some(s) = signals.iter().find(|s| s.name == "HTTP4XX") {
            rng.pick(s.values).parse().unwrap_or(400)
        } else {
            *rng.weighted(&OK_CODES)
        };
        let agent_code = if blocked { 406 } else { 200 };
        let size: u64 = match code {
            204 | 304 => 0,
            _ if line.method == "HEAD" => 0,
            404 | 406 | 403 => rng.range(150, 1_600),
            _ => 200 + (rng.unit().powi(2) * 250_000.0) as u64,
        };
        let millis = 1 + (rng.unit().powi(3) * 3_000.0) as u64;
        Response {
            code,
            agent_code,
            size,
            millis,
        }
    }
}

/// Header values drawn before either header list, which borrow them.
pub(super) struct HeaderValues<'a> {
    host: &'a str,
    content_length: String,
    referer: String,
    cookie: String,
    request_body_length: String,
    request_id: String,
}

impl<'a> HeaderValues<'a> {
    /// `timestamp`: the record's epoch second (cookies were set some days before it).
    pub(super) fn draw(
        rng: &mut SplitMix,
        host: &'a str,
        peer: &Peer,
        response: &Response,
        timestamp: i64,
    ) -> Self {
        let referer = match rng.below(5) {
            0 => format!("https://{host}/"),
            1 => "https://www.google.com/".to_owned(),
            _ => String::new(),
        };
        let cookie = if peer.browser && rng.chance(0.3) {
            format!(
                "_ga=GA1.2.{}.{}; session_id={:012x}",
                rng.range(100_000_000, 999_999_999),
                timestamp - 86_400 * 3,
                rng.next_u64() >> 16
            )
        } else {
            String::new()
        };
        let request_body_length = rng.range(20, 2_000).to_string();
        let request_id = format!("{:016x}", rng.next_u64());
        HeaderValues {
            host,
            content_length: response.size.to_string(),
            referer,
            cookie,
            request_body_length,
            request_id,
        }
    }
}

pub(super) fn request_headers<'a>(
    rng: &mut SplitMix,
    signals: &SignalSet,
    peer: &'a Peer,
    line: &RequestLine,
    target: &'a Target,
    values: &'a HeaderValues<'a>,
) -> Vec<[&'a str; 2]> {
    let mut headers: Vec<[&str; 2]> = Vec::with_capacity(16);
    headers.push(["Host", values.host]);
    if !peer.user_agent.is_empty() {
        headers.push(["User-Agent", peer.user_agent]);
    }
    headers.push([
        "Accept",
        if peer.browser {
            ACCEPTS[0]
        } else {
            *rng.pick(&ACCEPTS)
        },
    ]);
    if peer.browser {
        headers.push(["Accept-Language", *rng.pick(&LANGUAGES)]);
    }
    headers.push(["Accept-Encoding", "gzip, deflate, br"]);
    if line.protocol == "HTTP/1.1" {
        let connection = if signals.has("BHH") {
            "close, X-Forwarded-For"
        } else {
            "keep-alive"
        };
        headers.push(["Connection", connection]);
    }
    if !values.referer.is_empty() {
        headers.push(["Referer", &values.referer]);
    }
    if !values.cookie.is_empty() {
        headers.push(["Cookie", &values.cookie]);
    }
    if line.method == "POST" || line.method == "PUT" {
        headers.push(["Content-Type", "application/x-www-form-urlencoded"]);
        headers.push(["Content-Length", &values.request_body_length]);
    }
    if let Some(jndi) = signals.iter().position(|s| s.name == "LOG4J-JNDI") {
        headers.push(["X-Api-Version", &target.tag_values[jndi]]);
    }
    headers.push(["X-Forwarded-For", &peer.remote_ip]);
    headers
}

pub(super) fn response_headers<'a>(
    rng: &mut SplitMix,
    line: &RequestLine,
    target: &Target,
    response: &Response,
    values: &'a HeaderValues<'a>,
) -> Vec<[&'a str; 2]> {
    let path: &str = &target.path;
    let content_type = if path.starts_with("/api") || path == "/graphql" {
        "application/json; charset=utf-8"
    } else if path.ends_with(".js") {
        "application/javascript"
    } else {
        "text/html; charset=utf-8"
    };
    let mut headers: Vec<[&str; 2]> = Vec::with_capacity(12);
    headers.push(["Content-Type", content_type]);
    headers.push(["Content-Length", &values.content_length]);
    headers.push(["Cache-Control", *rng.pick(&CACHE_CONTROLS)]);
    headers.push(["Server", "nginx"]);
    headers.push(["X-Request-Id", &values.request_id]);
    if line.https {
        headers.push(["Strict-Transport-Security", "max-age=31536000"]);
    }
    if matches!(response.code, 301 | 302) {
        headers.push(["Location", "/account/login?next=%2F"]);
    }
    headers
}

/// One tag per signal, with the value the target matched.
pub(super) fn tags<'a>(signals: &SignalSet, target: &'a Target) -> Vec<Tag<'a>> {
    signals
        .iter()
        .zip(&target.tag_values)
        .map(|(signal, value)| Tag {
            kind: signal.name,
            location: signal.location,
            value,
            detector: signal.detector,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_written_as_serde_json_writes_them() {
        for value in [
            "",
            "plain ASCII / with: punctuation, {braces} [and] 'quotes'",
            "say \"hi\"",
            "C:\\temp\\x",
            "line\nbreak\ttab\r\u{8}\u{c}",
            "\u{1}\u{1f}\u{7f} control bytes",
            "caf\u{e9} \u{2603} \u{1f600}",
            "${jndi:ldap://x/a} <script>alert(1)</script> ' OR 1=1--",
        ] {
            let mut ours = Vec::new();
            write_str(&mut ours, value).unwrap();
            assert_eq!(
                String::from_utf8(ours).unwrap(),
                serde_json::to_string(value).unwrap(),
                "{value:?}"
            );
        }
    }
}

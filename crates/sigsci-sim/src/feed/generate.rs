//! Deterministic synthetic feed traffic. Per-minute record counts come from `(seed, site, minute)`;
//! record `i` of minute `m` is a pure function of `(seed, site, m, i)`, so any window can be served
//! or counted without storing anything.

use chrono::DateTime;

use super::record::{
    HeaderValues, Peer, Record, RequestLine, Response, Target, request_headers, response_headers,
    tags,
};
use super::vocab::{SIGNALS, Signal};
use crate::rng::{SplitMix, hash_str, mix, unit};

const SALT_COUNT: u64 = 0x0063_6f75_6e74;
const SALT_SIGNALS: u64 = 0x7369_676e_616c;
const SALT_BODY: u64 = 0x626f_6479;
const MINUTE_MULT: u64 = 0xd6e8_feb8_6659_fd93;

/// Up to three distinct signals of one record (indexes into `SIGNALS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SignalSet {
    ids: [u8; 3],
    len: u8,
}

impl SignalSet {
    pub(crate) fn iter(&self) -> impl Iterator<Item = &'static Signal> + '_ {
        self.ids[..usize::from(self.len)]
            .iter()
            .map(|i| &SIGNALS[usize::from(*i)])
    }

    fn mask(&self) -> u32 {
        self.ids[..usize::from(self.len)]
            .iter()
            .fold(0, |m, i| m | (1 << i))
    }

    pub(super) fn has(&self, name: &str) -> bool {
        self.iter().any(|s| s.name == name)
    }
}

/// A `tags=` filter: records match when they carry any of the signals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SignalFilter {
    mask: u32,
}

impl SignalFilter {
    /// Names outside the vocabulary are valid but match nothing.
    pub(crate) fn new<'a>(names: impl IntoIterator<Item = &'a str>) -> Self {
        let mask = names.into_iter().fold(0, |m, name| {
            SIGNALS
                .iter()
                .position(|s| s.name == name)
                .map_or(m, |i| m | (1 << i))
        });
        Self { mask }
    }

    pub(crate) fn matches(&self, set: &SignalSet) -> bool {
        self.mask & set.mask() != 0
    }

    pub(crate) fn matches_nothing(&self) -> bool {
        self.mask == 0
    }
}

/// One site's traffic generator.
#[derive(Debug)]
pub(crate) struct SiteTraffic {
    key: u64,
    rps: f64,
    server_names: Vec<String>,
    server_hostnames: Vec<String>,
}

/// "YYYY-MM-DDTHH:MM:" of a minute, shared by all its records.
pub(crate) fn minute_prefix(minute: i64) -> String {
    DateTime::from_timestamp(minute * 60, 0)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:")
        .to_string()
}

/// A signal index, by weight.
fn pick_signal(rng: &mut SplitMix) -> u8 {
    let total: u32 = SIGNALS.iter().map(|s| s.weight).sum();
    let mut ticket = rng.below(total as usize) as u32;
    for (i, signal) in SIGNALS.iter().enumerate() {
        if ticket < signal.weight {
            return i as u8;
        }
        ticket -= signal.weight;
    }
    (SIGNALS.len() - 1) as u8
}

impl SiteTraffic {
    pub(crate) fn new(seed: u64, site: &str, rps: f64) -> Self {
        Self {
            key: mix(seed ^ mix(hash_str(site))),
            rps,
            server_names: ["www", "api", "shop"]
                .iter()
                .map(|sub| format!("{sub}.{site}.example.com"))
                .collect(),
            server_hostnames: (0..3).map(|k| format!("{site}-agent-{k}")).collect(),
        }
    }

    /// Records in `minute` (epoch minute): around `rps * 60`, ±20 %.
    pub(crate) fn minute_count(&self, minute: i64) -> u32 {
        if self.rps <= 0.0 {
            return 0;
        }
        let u = unit(mix(self.key
            ^ SALT_COUNT
            ^ (minute as u64).wrapping_mul(MINUTE_MULT)));
        (self.rps * 60.0 * (0.8 + 0.4 * u))
            .round()
            .min(f64::from(u32::MAX)) as u32
    }

    fn record_key(&self, minute: i64, index: u32) -> u64 {
        mix(mix(self.key ^ (minute as u64).wrapping_mul(MINUTE_MULT)) ^ u64::from(index))
    }

    /// Epoch second of record `index` of `count` in `minute`; records spread evenly over the minute.
    pub(crate) fn timestamp(minute: i64, index: u32, count: u32) -> i64 {
        minute * 60 + i64::from(index) * 60 / i64::from(count.max(1))
    }

    fn id_from(key: u64, timestamp: i64) -> String {
        format!("{:08x}{:016x}", timestamp as u32, key)
    }

    /// The record id of `(minute, index)`.
    pub(crate) fn record_id(&self, minute: i64, index: u32, count: u32) -> String {
        Self::id_from(
            self.record_key(minute, index),
            Self::timestamp(minute, index, count),
        )
    }

    fn signals_of_key(key: u64) -> SignalSet {
        let mut rng = SplitMix::new(key ^ SALT_SIGNALS);
        let wanted = *rng.weighted(&[(1u8, 75), (2, 20), (3, 5)]);
        let mut set = SignalSet {
            ids: [0; 3],
            len: 0,
        };
        for _ in 0..wanted * 2 {
            let pick = pick_signal(&mut rng);
            if !set.ids[..usize::from(set.len)].contains(&pick) {
                set.ids[usize::from(set.len)] = pick;
                set.len += 1;
                if set.len == wanted {
                    break;
                }
            }
        }
        set
    }

    /// The signals carried by `(minute, index)`; cheap, so filters need not build the record.
    pub(crate) fn signals(&self, minute: i64, index: u32) -> SignalSet {
        Self::signals_of_key(self.record_key(minute, index))
    }

    /// Sorted ids of the records with timestamp in `[from, until)`.
    pub(crate) fn ids_in(&self, from: i64, until: i64) -> Vec<String> {
        self.ids_matching(from, until, None)
    }

    /// Sorted ids of the records with timestamp in `[from, until)` that match `filter` (if any).
    pub(crate) fn ids_matching(
        &self,
        from: i64,
        until: i64,
        filter: Option<&SignalFilter>,
    ) -> Vec<String> {
        let mut ids = Vec::new();
        if from >= until {
            return ids;
        }
        for minute in from.div_euclid(60)..=(until - 1).div_euclid(60) {
            let count = self.minute_count(minute);
            for index in 0..count {
                let ts = Self::timestamp(minute, index, count);
                if (from..until).contains(&ts)
                    && filter.is_none_or(|f| f.matches(&self.signals(minute, index)))
                {
                    ids.push(self.record_id(minute, index, count));
                }
            }
        }
        ids.sort_unstable();
        ids
    }

    /// Records of `minute` (optionally only those matching `filter`).
    pub(crate) fn count_matching(&self, minute: i64, filter: Option<&SignalFilter>) -> u64 {
        let count = self.minute_count(minute);
        match filter {
            None => u64::from(count),
            Some(f) => (0..count)
                .filter(|i| f.matches(&self.signals(minute, *i)))
                .count() as u64,
        }
    }

    /// Appends record `(minute, index)` of `count` as JSON; `prefix` is `minute_prefix(minute)`.
    pub(crate) fn write_record(
        &self,
        out: &mut Vec<u8>,
        minute: i64,
        index: u32,
        count: u32,
        prefix: &str,
    ) -> Result<(), serde_json::Error> {
        let key = self.record_key(minute, index);
        let ts = Self::timestamp(minute, index, count);
        let id = Self::id_from(key, ts);
        let timestamp = format!("{prefix}{:02}Z", ts - minute * 60);
        let signals = Self::signals_of_key(key);
        // The parts share this stream: their draws must stay in this order.
        let mut rng = SplitMix::new(key ^ SALT_BODY);
        let server_hostname = rng.pick(&self.server_hostnames).as_str();
        let server_name = rng.pick(&self.server_names).as_str();
        let peer = Peer::draw(&mut rng, &signals);
        let line = RequestLine::draw(&mut rng, &signals);
        let target = Target::draw(&mut rng, &signals, &peer);
        let response = Response::draw(&mut rng, &signals, &line);
        let values = HeaderValues::draw(&mut rng, server_name, &peer, &response, ts);
        let headers_in = request_headers(&mut rng, &signals, &peer, &line, &target, &values);
        let headers_out = response_headers(&mut rng, &line, &target, &response, &values);
        let tags = tags(&signals, &target);

        let record = Record {
            id: &id,
            server_hostname,
            server_name,
            remote_ip: &peer.remote_ip,
            remote_hostname: &peer.remote_hostname,
            remote_country_code: peer.country,
            user_agent: peer.user_agent,
            timestamp: &timestamp,
            method: line.method,
            protocol: line.protocol,
            scheme: line.scheme(),
            tls_protocol: line.tls_protocol,
            tls_cipher: line.tls_cipher,
            path: &target.path,
            uri: &target.uri,
            response_code: response.code,
            agent_response_code: response.agent_code,
            response_size: response.size,
            response_millis: response.millis,
            headers_in: &headers_in,
            headers_out: &headers_out,
            tags: &tags,
        };
        record.write_json(out)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use serde_json::Value;

    use super::*;

    const MINUTE: i64 = 28_400_000; // an epoch minute (2023-12-31)

    fn traffic() -> SiteTraffic {
        SiteTraffic::new(1, "site-1", 50.0)
    }

    fn render(t: &SiteTraffic, minute: i64, index: u32) -> Vec<u8> {
        let mut out = Vec::new();
        let count = t.minute_count(minute);
        t.write_record(&mut out, minute, index, count, &minute_prefix(minute))
            .unwrap();
        out
    }

    #[test]
    fn counts_hover_around_rps() {
        let t = traffic();
        let total: u64 = (0..60).map(|m| u64::from(t.minute_count(MINUTE + m))).sum();
        assert!((170_000..190_000).contains(&total), "{total}");
        assert!((0..600).all(|m| (2_400..=3_600).contains(&t.minute_count(MINUTE + m))));
    }

    #[test]
    fn records_are_deterministic_and_distinct_per_site_and_seed() {
        let a = render(&traffic(), MINUTE, 7);
        assert_eq!(a, render(&traffic(), MINUTE, 7));
        assert_ne!(a, render(&traffic(), MINUTE, 8));
        assert_ne!(a, render(&SiteTraffic::new(1, "site-2", 50.0), MINUTE, 7));
        assert_ne!(a, render(&SiteTraffic::new(2, "site-1", 50.0), MINUTE, 7));
    }

    #[test]
    fn record_has_every_field_in_order_and_matches_id_and_time() {
        let t = traffic();
        let count = t.minute_count(MINUTE);
        let raw = render(&t, MINUTE, 100);
        let record: Value = serde_json::from_slice(&raw).unwrap();
        let text = String::from_utf8(raw).unwrap();
        let mut after = 0;
        for field in [
            "id",
            "serverHostname",
            "serverName",
            "remoteIP",
            "remoteHostname",
            "remoteCountryCode",
            "userAgent",
            "timestamp",
            "method",
            "protocol",
            "scheme",
            "tlsProtocol",
            "tlsCipher",
            "path",
            "uri",
            "responseCode",
            "agentResponseCode",
            "responseSize",
            "responseMillis",
            "headersIn",
            "headersOut",
            "tags",
        ] {
            assert!(record.get(field).is_some(), "missing {field}");
            // In the API reference's order, as the real feed writes them.
            let at = text.find(&format!("\"{field}\":")).unwrap();
            assert!(at >= after, "{field} out of order in {text}");
            after = at;
        }
        assert_eq!(record["id"], t.record_id(MINUTE, 100, count));
        let ts = SiteTraffic::timestamp(MINUTE, 100, count);
        let expected = DateTime::from_timestamp(ts, 0)
            .unwrap()
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
        assert_eq!(record["timestamp"], expected);
        let tag = &record["tags"][0];
        for key in ["type", "location", "value", "detector"] {
            assert!(tag[key].is_string(), "tag {key}");
        }
        assert!(record["headersIn"][0].as_array().unwrap().len() == 2);
    }

    #[test]
    fn ids_in_respects_bounds_and_is_sorted() {
        let t = traffic();
        let minute = t.ids_in(MINUTE * 60, MINUTE * 60 + 60);
        assert_eq!(minute.len() as u32, t.minute_count(MINUTE));
        let half = t.ids_in(MINUTE * 60, MINUTE * 60 + 30);
        assert!(half.len() < minute.len() && !half.is_empty());
        assert!(minute.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn filter_matches_signal_names() {
        let t = traffic();
        let sqli = SignalFilter::new(["SQLI"]);
        let hits = t.count_matching(MINUTE, Some(&sqli));
        let all = t.count_matching(MINUTE, None);
        assert!(hits > 0 && hits < all / 4, "{hits} of {all}");
        assert!(SignalFilter::new(["NOPE"]).matches_nothing());
        for i in 0..200 {
            let record: Value = serde_json::from_slice(&render(&t, MINUTE, i)).unwrap();
            let has_sqli = record["tags"]
                .as_array()
                .unwrap()
                .iter()
                .any(|tag| tag["type"] == "SQLI");
            assert_eq!(has_sqli, sqli.matches(&t.signals(MINUTE, i)));
        }
    }

    /// Real feed records are ~1 KB and gzip 8-15x; a repeated template would compress far better.
    #[test]
    fn size_and_gzip_ratio_resemble_real_traffic() {
        let t = traffic();
        let mut page = Vec::new();
        let count = t.minute_count(MINUTE);
        let prefix = minute_prefix(MINUTE);
        page.extend_from_slice(b"{\"next\":{\"uri\":\"\"},\"data\":[");
        for i in 0..1000 {
            if i > 0 {
                page.push(b',');
            }
            t.write_record(&mut page, MINUTE, i, count, &prefix)
                .unwrap();
        }
        page.extend_from_slice(b"]}");
        let per_record = page.len() / 1000;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
        gz.write_all(&page).unwrap();
        let compressed = gz.finish().unwrap().len();
        let ratio = page.len() as f64 / compressed as f64;
        println!("record {per_record} B, gzip ratio {ratio:.1}");
        assert!(
            (800..=1400).contains(&per_record),
            "record size {per_record}"
        );
        assert!((8.0..=15.0).contains(&ratio), "gzip ratio {ratio:.1}");
    }
}

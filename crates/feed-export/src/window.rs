//! Hours, sub-windows, the API's retention rules and the object key layout.

use chrono::{DateTime, TimeZone, Utc};

use crate::error::ExportError;

pub const HOUR: i64 = 3600;
pub const MINUTE: i64 = 60;
/// The feed serves `until <= now - 5 min` …
pub const API_MIN_AGE: i64 = 300;
/// … and `from >= now - 24 h 5 min`.
pub const API_MAX_AGE: i64 = 24 * HOUR + 300;
/// How far the API's clock may run ahead of ours before a refusal of the oldest hour is taken
/// for a real error rather than that hour leaving the API's retention early.
pub const API_CLOCK_SKEW: i64 = HOUR;

/// One unit of work: `[start, start + 1 h)` of one site.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Hour(pub i64);

impl Hour {
    pub fn containing(epoch: i64) -> Hour {
        Hour(epoch.div_euclid(HOUR) * HOUR)
    }

    pub fn start(self) -> i64 {
        self.0
    }

    pub fn end(self) -> i64 {
        self.0 + HOUR
    }

    pub fn next(self) -> Hour {
        Hour(self.0 + HOUR)
    }

    pub fn datetime(self) -> DateTime<Utc> {
        Utc.timestamp_opt(self.0, 0).single().unwrap_or_default()
    }

    /// All of it can still be read from the API at `now`.
    pub fn in_retention(self, now: i64) -> bool {
        self.start() >= now - API_MAX_AGE
    }

    /// Close enough to the retention edge at `now` that an API clock running ahead by up to
    /// `API_CLOCK_SKEW` has it out of retention already.
    pub fn near_retention_edge(self, now: i64) -> bool {
        self.start() < now - API_MAX_AGE + API_CLOCK_SKEW
    }

    /// All of it is old enough for the API to serve at `now`.
    pub fn is_ready(self, now: i64) -> bool {
        self.end() <= now - API_MIN_AGE
    }

    /// The oldest hour that is wholly inside retention at `now`.
    pub fn oldest_retained(now: i64) -> Hour {
        let earliest = now - API_MAX_AGE;
        Hour(
            earliest.div_euclid(HOUR) * HOUR
                + if earliest.rem_euclid(HOUR) == 0 {
                    0
                } else {
                    HOUR
                },
        )
    }

    /// The newest hour the API serves completely at `now` (may be older than `oldest_retained`
    /// never; both bounds are inclusive).
    pub fn newest_ready(now: i64) -> Hour {
        Hour((now - API_MIN_AGE).div_euclid(HOUR) * HOUR - HOUR)
    }

    /// Hours `[from, until)` stepping by one hour.
    pub fn range(from: Hour, until: Hour) -> impl Iterator<Item = Hour> {
        (from.0..until.0).step_by(HOUR as usize).map(Hour)
    }
}

impl std::fmt::Display for Hour {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.datetime().format("%Y-%m-%dT%H:00Z"))
    }
}

/// A minute-aligned piece of an hour fetched with one cursor: `[from, until)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SubWindow {
    pub from: i64,
    pub until: i64,
}

impl SubWindow {
    pub fn minutes(self) -> i64 {
        (self.until - self.from) / MINUTE
    }

    /// Splits into `pieces` minute-aligned windows of near-equal length (fewer if too short).
    pub fn split(self, pieces: i64) -> Vec<SubWindow> {
        let minutes = self.minutes();
        let pieces = pieces.clamp(1, minutes.max(1));
        (0..pieces)
            .map(|i| SubWindow {
                from: self.from + minutes * i / pieces * MINUTE,
                until: self.from + minutes * (i + 1) / pieces * MINUTE,
            })
            .collect()
    }

    pub fn contains(self, epoch: i64) -> bool {
        (self.from..self.until).contains(&epoch)
    }
}

impl std::fmt::Display for SubWindow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let at = |t: i64| {
            Utc.timestamp_opt(t, 0)
                .single()
                .unwrap_or_default()
                .format("%H:%M")
        };
        write!(f, "{}..{}", at(self.from), at(self.until))
    }
}

/// The key layout, relative to the store's root (the bucket prefix or the output directory).
/// Hive-style partitions; `_`-prefixed objects are bookkeeping that Athena skips.
pub mod keys {
    use super::{Hour, MINUTE, SubWindow};

    pub fn site_prefix(corp: &str, site: &str) -> String {
        format!("corp={corp}/site={site}/")
    }

    pub fn ledger(corp: &str, site: &str) -> String {
        format!("corp={corp}/site={site}/_ledger.json")
    }

    pub fn hour_prefix(corp: &str, site: &str, hour: Hour) -> String {
        let at = hour.datetime();
        format!(
            "corp={corp}/site={site}/dt={}/hour={}/",
            at.format("%Y-%m-%d"),
            at.format("%H")
        )
    }

    pub fn manifest(corp: &str, site: &str, hour: Hour) -> String {
        format!("{}_manifest.json", hour_prefix(corp, site, hour))
    }

    pub fn lease(corp: &str, site: &str, hour: Hour) -> String {
        format!("{}_lease.json", hour_prefix(corp, site, hour))
    }

    /// `part-NNNNN.ndjson.gz`, numbered by the sub-window's first minute within the hour, so a
    /// rerun of the same window writes the same key.
    pub fn part_name(hour: Hour, window: SubWindow) -> String {
        format!(
            "part-{:05}.ndjson.gz",
            (window.from - hour.start()) / MINUTE
        )
    }

    pub fn is_part_name(name: &str) -> bool {
        name.starts_with("part-") && name.ends_with(".ndjson.gz")
    }
}

/// Epoch seconds beyond this (year 2286) are taken for milliseconds: no feed time is that late.
const MAX_EPOCH_SECS: i64 = 9_999_999_999;

fn rfc3339(epoch: i64) -> String {
    DateTime::from_timestamp(epoch, 0).map_or_else(|| epoch.to_string(), |t| t.to_rfc3339())
}

/// Parses `--from/--until` style times: RFC3339 or epoch seconds, minute aligned.
pub fn parse_time(setting: &str, raw: &str) -> Result<i64, ExportError> {
    let raw = raw.trim();
    let epoch = match raw.parse::<i64>() {
        Ok(epoch) if !(0..=MAX_EPOCH_SECS).contains(&epoch) => {
            return Err(ExportError::Config {
                setting: setting.to_string(),
                message: format!(
                    "{raw:?} is not epoch seconds (milliseconds? {} seconds is {})",
                    epoch / 1000,
                    rfc3339(epoch / 1000)
                ),
            });
        }
        Ok(epoch) => epoch,
        Err(_) => DateTime::parse_from_rfc3339(raw)
            .map(|t| t.timestamp())
            .map_err(|_| ExportError::Config {
                setting: setting.to_string(),
                message: format!(
                    "{raw:?} is neither RFC3339 (2024-05-01T10:00:00Z) nor epoch seconds"
                ),
            })?,
    };
    if epoch % MINUTE != 0 {
        return Err(ExportError::Config {
            setting: setting.to_string(),
            message: format!("{raw:?} is not on a whole minute"),
        });
    }
    Ok(epoch)
}

/// Checks a requested range `[from, until)` at `now` before any work; `names` are the settings
/// that gave from and until (flags or event fields), for the messages.
pub fn check_range(from: i64, until: i64, now: i64, names: [&str; 2]) -> Result<(), ExportError> {
    let [from_name, until_name] = names;
    let error = |setting: &str, message: String| {
        Err(ExportError::Config {
            setting: setting.to_string(),
            message,
        })
    };
    if until <= from {
        return error(
            until_name,
            format!(
                "{} must be after {from_name} ({})",
                rfc3339(until),
                rfc3339(from)
            ),
        );
    }
    if until > now {
        return error(
            until_name,
            format!(
                "{} is in the future (now is {}); the API serves the feed up to 5 minutes ago",
                rfc3339(until),
                rfc3339(now)
            ),
        );
    }
    if until - from > API_MAX_AGE {
        return error(
            &format!("{from_name}/{until_name}"),
            format!(
                "the range spans {} minutes; the API keeps 24 h 5 min of the feed, so a range can span at most {} minutes",
                (until - from) / MINUTE,
                API_MAX_AGE / MINUTE
            ),
        );
    }
    if until <= now - API_MAX_AGE {
        return error(
            until_name,
            format!(
                "{} is older than the API's retention (24 h 5 min before now, {}): nothing in the range can be exported",
                rfc3339(until),
                rfc3339(now - API_MAX_AGE)
            ),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: i64 = 1_714_557_600; // 2024-05-01T10:00:00Z

    #[test]
    fn retention_bounds_follow_the_api() {
        // 10:07 → until ≤ 10:02, so the newest whole hour is 09:00; from ≥ 10:02 yesterday, so 11:00.
        let now = T + 7 * MINUTE;
        assert_eq!(Hour::newest_ready(now), Hour(T - HOUR));
        assert_eq!(Hour::oldest_retained(now), Hour(T - 23 * HOUR));
        assert!(Hour(T - HOUR).is_ready(now) && !Hour(T).is_ready(now));
        assert!(Hour(T - 23 * HOUR).in_retention(now) && !Hour(T - 24 * HOUR).in_retention(now));
        assert!(
            Hour(T - 23 * HOUR).near_retention_edge(now)
                && !Hour(T - 22 * HOUR).near_retention_edge(now)
        );
        // Exactly on the bound: 10:05 → from ≥ 10:00 yesterday, that hour is still whole.
        assert_eq!(Hour::oldest_retained(T + 5 * MINUTE), Hour(T - 24 * HOUR));
        assert_eq!(Hour::range(Hour(T), Hour(T + 3 * HOUR)).count(), 3);
    }

    #[test]
    fn sub_windows_are_minute_aligned_and_cover_the_hour() {
        let hour = SubWindow {
            from: T,
            until: T + HOUR,
        };
        for pieces in [1, 2, 7, 60, 500] {
            let parts = hour.split(pieces);
            assert_eq!(parts.first().map(|w| w.from), Some(T));
            assert_eq!(parts.last().map(|w| w.until), Some(T + HOUR));
            assert!(parts.windows(2).all(|p| p[0].until == p[1].from));
            assert!(
                parts
                    .iter()
                    .all(|w| w.from % MINUTE == 0 && w.minutes() >= 1)
            );
        }
        assert_eq!(hour.split(500).len(), 60);
    }

    #[test]
    fn keys_are_hive_partitions() {
        let hour = Hour(T);
        assert_eq!(
            keys::hour_prefix("acme", "www", hour),
            "corp=acme/site=www/dt=2024-05-01/hour=10/"
        );
        let window = SubWindow {
            from: T + 30 * MINUTE,
            until: T + HOUR,
        };
        assert_eq!(keys::part_name(hour, window), "part-00030.ndjson.gz");
        assert!(
            keys::is_part_name("part-00030.ndjson.gz") && !keys::is_part_name("_manifest.json")
        );
    }

    #[test]
    fn times_parse_as_rfc3339_or_epoch_on_minutes() {
        assert_eq!(parse_time("--from", "2024-05-01T10:00:00Z").ok(), Some(T));
        assert_eq!(parse_time("--from", &T.to_string()).ok(), Some(T));
        let error = parse_time("--until", "2024-05-01T10:00:30Z")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            error.contains("--until") && error.contains("whole minute"),
            "{error}"
        );
        assert!(parse_time("--from", "yesterday").is_err());
        let millis = parse_time("--from", "1714557600000")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            millis.starts_with("--from") && millis.contains("milliseconds"),
            "{millis}"
        );
        assert!(parse_time("--from", "-60").is_err());
    }

    #[test]
    fn ranges_are_checked_against_now_and_the_retention() {
        let now = T + 7 * MINUTE;
        let names = ["--from", "--until"];
        assert!(check_range(T - 3 * HOUR, T - HOUR, now, names).is_ok());
        // Starting before the retention is fine: those hours are recorded lost.
        assert!(check_range(T - 26 * HOUR, T - 20 * HOUR, now, names).is_ok());
        let message = |from, until| {
            check_range(from, until, now, names)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        let backwards = message(T - HOUR, T - 2 * HOUR);
        assert!(
            backwards.starts_with("--until") && backwards.contains("after --from"),
            "{backwards}"
        );
        assert!(message(T, T).starts_with("--until"));
        let future = message(T - HOUR, T + HOUR);
        assert!(
            future.starts_with("--until") && future.contains("future"),
            "{future}"
        );
        let long = message(T - 30 * HOUR, T - HOUR);
        assert!(
            long.starts_with("--from/--until") && long.contains("24 h 5 min"),
            "{long}"
        );
        let ancient = message(0, HOUR);
        assert!(
            ancient.starts_with("--until") && ancient.contains("retention"),
            "{ancient}"
        );
    }
}

//! The one parser behind every time flag: RFC 3339, a date (midnight UTC), epoch seconds, or a
//! duration (`6h`, `1h30m`, `2d`) counted back from now (`--from 6h`: six hours ago) or, for
//! flags that point ahead (`health ack --until 2h`), forward from now. Durations land on the start
//! of their minute, so relative range ends meet the feed's minute grid.

use agent_health::Period;
use chrono::{DateTime, NaiveDate, Utc};

/// Which way a duration counts from now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Relative {
    Ago,
    Ahead,
}

/// Epoch seconds beyond this (year 2286) are milliseconds by mistake.
const MAX_EPOCH_SECS: i64 = 9_999_999_999;

pub fn parse(
    flag: &str,
    text: &str,
    now: DateTime<Utc>,
    relative: Relative,
) -> anyhow::Result<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(at.with_timezone(&Utc));
    }
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(date.and_time(chrono::NaiveTime::MIN).and_utc());
    }
    if let Ok(epoch) = text.parse::<i64>() {
        return (0..=MAX_EPOCH_SECS)
            .contains(&epoch)
            .then(|| DateTime::from_timestamp(epoch, 0))
            .flatten()
            .ok_or_else(|| {
                let seconds = DateTime::from_timestamp(epoch / 1000, 0)
                    .map(|t| format!(" {} seconds is {}", epoch / 1000, t.to_rfc3339()))
                    .unwrap_or_default();
                anyhow::anyhow!("{flag}: {text:?} is not epoch seconds (milliseconds?{seconds})")
            });
    }
    match Period::parse(text) {
        Ok(period) => Ok(start_of_minute(match relative {
            Relative::Ago => now - period.delta(),
            Relative::Ahead => now + period.delta(),
        })),
        Err(_) => anyhow::bail!(
            "{flag}: {text:?} is not a time: write RFC 3339 (2026-11-26T08:00:00Z), a date (2026-11-26), \
             epoch seconds (1795680000) or a duration ({})",
            match relative {
                Relative::Ago => "6h: six hours ago",
                Relative::Ahead => "2h: two hours from now",
            }
        ),
    }
}

fn start_of_minute(at: DateTime<Utc>) -> DateTime<Utc> {
    let secs = at.timestamp();
    DateTime::from_timestamp(secs - secs.rem_euclid(60), 0).unwrap_or(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_is_accepted_and_a_bad_one_named() {
        let now = DateTime::parse_from_rfc3339("2026-11-26T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let at = |text: &str, relative| parse("--from", text, now, relative).unwrap().to_rfc3339();
        assert_eq!(
            at("2026-11-26T08:00:00+01:00", Relative::Ago),
            "2026-11-26T07:00:00+00:00"
        );
        assert_eq!(at("2026-11-25", Relative::Ago), "2026-11-25T00:00:00+00:00");
        assert_eq!(at("1795680000", Relative::Ago), "2026-11-26T08:00:00+00:00");
        assert_eq!(at("6h", Relative::Ago), "2026-11-26T06:00:00+00:00");
        assert_eq!(at("1h30m", Relative::Ahead), "2026-11-26T13:30:00+00:00");
        let late = now + chrono::TimeDelta::seconds(42);
        let relative = parse("--from", "6h", late, Relative::Ago).unwrap();
        assert_eq!(relative.to_rfc3339(), "2026-11-26T06:00:00+00:00");
        let error = parse("--from", "yesterday", now, Relative::Ago)
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("--from: \"yesterday\" is not a time"),
            "{error}"
        );
        let error = parse("--from", "1795680000000", now, Relative::Ago)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("milliseconds? 1795680000 seconds is 2026-11-26T08:00:00+00:00"),
            "{error}"
        );
    }
}

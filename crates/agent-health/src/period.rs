//! Human-written durations in rules documents (`90s`, `15m`, `1h30m`, `2d`).

use std::fmt;

use chrono::TimeDelta;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A positive length of time, written as a sum of `<number><unit>` parts with units `s`, `m`, `h`, `d`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Period(TimeDelta);

impl Period {
    pub const fn minutes(n: i64) -> Period {
        Period(TimeDelta::minutes(n))
    }

    pub const fn hours(n: i64) -> Period {
        Period(TimeDelta::hours(n))
    }

    pub fn delta(self) -> TimeDelta {
        self.0
    }

    pub fn parse(text: &str) -> Result<Period, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("empty duration: write e.g. \"30s\", \"15m\", \"1h30m\" or \"2d\"".into());
        }
        let mut total: i64 = 0;
        let mut digits = String::new();
        for ch in text.chars() {
            if ch.is_ascii_digit() {
                digits.push(ch);
                continue;
            }
            let unit_secs = match ch {
                's' => 1,
                'm' => 60,
                'h' => 3600,
                'd' => 86_400,
                other => {
                    return Err(format!(
                        "invalid duration {text:?}: unknown unit {other:?} (use s, m, h or d)"
                    ));
                }
            };
            if digits.is_empty() {
                return Err(format!(
                    "invalid duration {text:?}: unit {ch:?} has no number before it"
                ));
            }
            let amount: i64 = digits
                .parse()
                .map_err(|_| format!("invalid duration {text:?}: number too large"))?;
            total = amount
                .checked_mul(unit_secs)
                .and_then(|secs| total.checked_add(secs))
                .ok_or_else(|| format!("invalid duration {text:?}: too large"))?;
            digits.clear();
        }
        if !digits.is_empty() {
            return Err(format!(
                "invalid duration {text:?}: the number {digits} needs a unit (s, m, h or d)"
            ));
        }
        if total == 0 {
            return Err(format!(
                "invalid duration {text:?}: must be longer than zero"
            ));
        }
        // Ten years is far beyond any sensible throttle or expiry and keeps date arithmetic in range.
        if total > 10 * 365 * 86_400 {
            return Err(format!("invalid duration {text:?}: longer than ten years"));
        }
        Ok(Period(TimeDelta::seconds(total)))
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut secs = self.0.num_seconds();
        for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60)] {
            if secs >= size {
                write!(f, "{}{unit}", secs / size)?;
                secs %= size;
            }
        }
        if secs > 0 || self.0.num_seconds() == 0 {
            write!(f, "{secs}s")?;
        }
        Ok(())
    }
}

impl<'de> Deserialize<'de> for Period {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Period, D::Error> {
        let text = String::deserialize(deserializer)?;
        Period::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl Serialize for Period {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_compound_durations() {
        assert_eq!(
            Period::parse("90s").map(|p| p.delta().num_seconds()),
            Ok(90)
        );
        assert_eq!(
            Period::parse("1h30m").map(|p| p.delta().num_seconds()),
            Ok(5400)
        );
        assert_eq!(
            Period::parse("2d").map(|p| p.delta().num_seconds()),
            Ok(172_800)
        );
        assert_eq!(
            Period::parse("1h30m").map(|p| p.to_string()),
            Ok("1h30m".to_string())
        );
    }

    #[test]
    fn rejects_bad_durations_with_a_reason() {
        assert!(Period::parse("15").unwrap_err().contains("needs a unit"));
        assert!(Period::parse("5x").unwrap_err().contains("unknown unit"));
        assert!(
            Period::parse("0m")
                .unwrap_err()
                .contains("longer than zero")
        );
        assert!(Period::parse("m").unwrap_err().contains("no number"));
        assert!(Period::parse("").unwrap_err().contains("empty"));
    }
}

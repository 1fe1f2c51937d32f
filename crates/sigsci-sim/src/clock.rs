//! The simulator clock: wall time plus an adjustable offset, or frozen at an instant.
//! Every time-dependent rule (feed bounds, cursor expiry, agent `last_seen`) reads this clock.

use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::error::SimError;
use crate::util::lock;

/// Source of wall-clock epoch seconds; injectable so tests need not depend on real time.
pub type WallClock = fn() -> i64;

/// Epoch seconds from the system clock.
pub fn system_wall_clock() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// A `PUT /__sim/clock` body. Fields apply in order: offset, freeze, advance.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClockUpdate {
    /// now = wall + offset (unfreezes).
    pub offset_secs: Option<i64>,
    /// Freeze now at this epoch.
    pub frozen_at: Option<i64>,
    /// Add to the offset, or to the frozen instant.
    pub advance_secs: Option<i64>,
}

/// `GET /__sim/clock`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClockStatus {
    /// Simulator now, epoch seconds.
    pub now: i64,
    /// Offset from wall time (meaningful when not frozen).
    pub offset_secs: i64,
    /// Whether the clock is frozen.
    pub frozen: bool,
}

#[derive(Debug, Default)]
struct Setting {
    offset: i64,
    frozen_at: Option<i64>,
}

/// The adjustable clock.
#[derive(Debug)]
pub(crate) struct SimClock {
    wall: WallClock,
    setting: Mutex<Setting>,
}

impl SimClock {
    pub(crate) fn new(wall: WallClock) -> Self {
        Self {
            wall,
            setting: Mutex::new(Setting::default()),
        }
    }

    pub(crate) fn now(&self) -> i64 {
        let setting = lock(&self.setting);
        setting
            .frozen_at
            .unwrap_or_else(|| (self.wall)().saturating_add(setting.offset))
    }

    pub(crate) fn status(&self) -> ClockStatus {
        let setting = lock(&self.setting);
        ClockStatus {
            now: setting
                .frozen_at
                .unwrap_or_else(|| (self.wall)().saturating_add(setting.offset)),
            offset_secs: setting.offset,
            frozen: setting.frozen_at.is_some(),
        }
    }

    pub(crate) fn update(&self, update: &ClockUpdate) -> Result<i64, SimError> {
        if update.offset_secs.is_none()
            && update.frozen_at.is_none()
            && update.advance_secs.is_none()
        {
            return Err(SimError::bad_request(
                "clock update needs one of offset_secs, frozen_at, advance_secs",
            ));
        }
        {
            let mut setting = lock(&self.setting);
            if let Some(offset) = update.offset_secs {
                setting.offset = offset;
                setting.frozen_at = None;
            }
            if let Some(at) = update.frozen_at {
                setting.frozen_at = Some(at);
            }
            if let Some(delta) = update.advance_secs {
                match setting.frozen_at.as_mut() {
                    Some(at) => *at = at.saturating_add(delta),
                    None => setting.offset = setting.offset.saturating_add(delta),
                }
            }
        }
        Ok(self.now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixed_wall() -> i64 {
        1_700_000_000
    }

    #[test]
    fn offset_freeze_and_advance() {
        let clock = SimClock::new(fixed_wall);
        assert_eq!(clock.now(), 1_700_000_000);
        let offset = ClockUpdate {
            offset_secs: Some(-60),
            ..ClockUpdate::default()
        };
        assert_eq!(clock.update(&offset), Ok(1_699_999_940));
        let advance = ClockUpdate {
            advance_secs: Some(100),
            ..ClockUpdate::default()
        };
        assert_eq!(clock.update(&advance), Ok(1_700_000_040));
        let freeze = ClockUpdate {
            frozen_at: Some(5_000),
            ..ClockUpdate::default()
        };
        assert_eq!(clock.update(&freeze), Ok(5_000));
        assert_eq!(clock.update(&advance), Ok(5_100));
        let status = clock.status();
        assert!(status.frozen);
        assert_eq!(status.offset_secs, 40);
        assert_eq!(clock.update(&offset), Ok(1_699_999_940));
        assert!(!clock.status().frozen);
    }

    #[test]
    fn empty_update_is_rejected() {
        let clock = SimClock::new(fixed_wall);
        let err = clock.update(&ClockUpdate::default()).unwrap_err();
        assert!(err.to_string().contains("offset_secs"));
    }
}

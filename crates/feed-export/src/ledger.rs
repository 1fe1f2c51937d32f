//! The per-site ledger: which hours are complete and which were lost.
//!
//! Manifests are the truth (an hour is complete iff its manifest exists); the ledger is a compact
//! summary so that a run with nothing to do reads one object, plus the only record of lost hours.
//! Every hour from `since` on is tracked: hours before `resolved_before` are complete unless listed
//! as lost; hours after it are complete only if listed. Updates are read-modify-write with a
//! conditional put on the etag, retried on conflict; changes only add facts, so merging is safe.

use std::collections::BTreeSet;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use kit_storage::{ObjectStore, PutCondition, PutOutcome};
use serde::{Deserialize, Serialize};

use crate::error::{ExportError, Result};
use crate::window::{Hour, keys};

pub const LEDGER_FORMAT: &str = "sigsci-kit/feed-ledger/v1";
const MAX_UPDATE_ATTEMPTS: u32 = 10;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ledger {
    pub format: String,
    pub corp: String,
    pub site: String,
    /// The first hour this ledger tracks (the oldest retained hour when it was created).
    pub since: DateTime<Utc>,
    /// Every tracked hour before this one is resolved: complete, or listed in `lost`.
    pub resolved_before: DateTime<Utc>,
    /// Complete hours at or after `resolved_before` (and explicitly backfilled older ones).
    pub complete: BTreeSet<DateTime<Utc>>,
    /// Hours that left the API's retention before they were exported. Never pruned.
    pub lost: Vec<LostHour>,
    pub updated_at: DateTime<Utc>,
    pub updated_by: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LostHour {
    pub hour: DateTime<Utc>,
    pub recorded_at: DateTime<Utc>,
    pub reason: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HourState {
    Complete,
    Lost,
    /// Not known to the ledger: check the manifest.
    Unknown,
}

/// Facts a run learned, to be merged into the stored ledger.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LedgerChanges {
    pub complete: BTreeSet<Hour>,
    pub lost: Vec<(Hour, String)>,
}

impl LedgerChanges {
    pub fn is_empty(&self) -> bool {
        self.complete.is_empty() && self.lost.is_empty()
    }
}

fn at(epoch: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(epoch, 0).unwrap_or_default()
}

impl Ledger {
    pub fn new(corp: &str, site: &str, since: Hour, now: i64) -> Ledger {
        Ledger {
            format: LEDGER_FORMAT.to_string(),
            corp: corp.to_string(),
            site: site.to_string(),
            since: since.datetime(),
            resolved_before: since.datetime(),
            complete: BTreeSet::new(),
            lost: Vec::new(),
            updated_at: at(now),
            updated_by: String::new(),
        }
    }

    pub fn parse(key: &str, body: &[u8]) -> Result<Ledger> {
        let ledger: Ledger = serde_json::from_slice(body).map_err(|e| ExportError::Corrupt {
            key: key.to_string(),
            kind: "ledger",
            reason: e.to_string(),
        })?;
        if ledger.format != LEDGER_FORMAT {
            return Err(ExportError::Corrupt {
                key: key.to_string(),
                kind: "ledger",
                reason: format!("unknown format {:?}", ledger.format),
            });
        }
        Ok(ledger)
    }

    pub fn since(&self) -> Hour {
        Hour(self.since.timestamp())
    }

    pub fn resolved_before(&self) -> Hour {
        Hour(self.resolved_before.timestamp())
    }

    pub fn state(&self, hour: Hour) -> HourState {
        let when = hour.datetime();
        if self.lost.iter().any(|l| l.hour == when) {
            HourState::Lost
        } else if self.complete.contains(&when)
            || (self.since() <= hour && hour < self.resolved_before())
        {
            HourState::Complete
        } else {
            HourState::Unknown
        }
    }

    pub fn lost_hours(&self) -> impl Iterator<Item = Hour> + '_ {
        self.lost.iter().map(|l| Hour(l.hour.timestamp()))
    }

    /// Adds the facts and moves `resolved_before` over every resolved hour. Returns whether anything changed.
    pub fn apply(&mut self, changes: &LedgerChanges, now: i64, run_id: &str) -> bool {
        let before = self.clone();
        for hour in &changes.complete {
            if self.state(*hour) != HourState::Complete {
                self.complete.insert(hour.datetime());
            }
        }
        for (hour, reason) in &changes.lost {
            if self.state(*hour) == HourState::Unknown {
                self.lost.push(LostHour {
                    hour: hour.datetime(),
                    recorded_at: at(now),
                    reason: reason.clone(),
                });
            }
        }
        self.lost.sort_by_key(|l| l.hour);
        let mut watermark = self.resolved_before();
        while self.complete.remove(&watermark.datetime())
            || self.lost.iter().any(|l| l.hour == watermark.datetime())
        {
            watermark = watermark.next();
        }
        self.resolved_before = watermark.datetime();
        // Backfilled hours older than the ledger that the API no longer serves need no entry: their
        // manifests say they are complete.
        let since = self.since;
        self.complete
            .retain(|h| *h >= since || Hour(h.timestamp()).in_retention(now));
        let changed = *self != before;
        if changed {
            self.updated_at = at(now);
            self.updated_by = run_id.to_string();
        }
        changed
    }
}

/// The stored ledger and its etag, if there is one.
pub async fn load(
    store: &dyn ObjectStore,
    corp: &str,
    site: &str,
) -> Result<Option<(Ledger, String)>> {
    let key = keys::ledger(corp, site);
    match store.get(&key).await? {
        Some(object) => Ok(Some((Ledger::parse(&key, &object.body)?, object.etag))),
        None => Ok(None),
    }
}

/// Merges `changes` into the stored ledger (creating it with `since` if absent), retrying on
/// concurrent updates. Writes nothing when the changes are already known.
pub async fn update(
    store: &dyn ObjectStore,
    corp: &str,
    site: &str,
    since: Hour,
    changes: &LedgerChanges,
    now: i64,
    run_id: &str,
) -> Result<Ledger> {
    let key = keys::ledger(corp, site);
    for _ in 0..MAX_UPDATE_ATTEMPTS {
        let (mut ledger, condition) = match load(store, corp, site).await? {
            Some((ledger, etag)) => (ledger, PutCondition::IfMatch(etag)),
            None => (
                Ledger::new(corp, site, since, now),
                PutCondition::CreateOnly,
            ),
        };
        let created = condition == PutCondition::CreateOnly;
        if !ledger.apply(changes, now, run_id) && !created {
            return Ok(ledger);
        }
        let body = Bytes::from(serde_json::to_vec_pretty(&ledger).unwrap_or_default());
        match store.put(&key, body, condition).await? {
            PutOutcome::Written { .. } => return Ok(ledger),
            PutOutcome::PreconditionFailed => {
                tracing::debug!(key, "ledger changed concurrently, merging again")
            }
        }
    }
    Err(ExportError::Contended {
        key,
        attempts: MAX_UPDATE_ATTEMPTS,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::window::HOUR;
    use kit_storage::MemoryStore;

    const T: i64 = 1_714_557_600;

    #[test]
    fn the_watermark_moves_over_complete_and_lost_hours_only() {
        let mut ledger = Ledger::new("c", "s", Hour(T), T);
        let changes = LedgerChanges {
            complete: [Hour(T), Hour(T + 2 * HOUR)].into(),
            lost: vec![],
        };
        assert!(ledger.apply(&changes, T, "run"));
        assert_eq!(ledger.resolved_before(), Hour(T + HOUR));
        assert_eq!(ledger.state(Hour(T)), HourState::Complete);
        assert_eq!(ledger.state(Hour(T + HOUR)), HourState::Unknown);
        assert_eq!(ledger.state(Hour(T + 2 * HOUR)), HourState::Complete);
        let lost = LedgerChanges {
            complete: BTreeSet::new(),
            lost: vec![(Hour(T + HOUR), "out of retention".into())],
        };
        assert!(ledger.apply(&lost, T, "run"));
        assert_eq!(ledger.resolved_before(), Hour(T + 3 * HOUR));
        assert!(ledger.complete.is_empty());
        assert_eq!(ledger.state(Hour(T + HOUR)), HourState::Lost);
        // Hours before the ledger started are unknown, not complete.
        assert_eq!(ledger.state(Hour(T - HOUR)), HourState::Unknown);
        // Applying known facts again changes nothing.
        assert!(!ledger.apply(&lost, T + 5, "other"));
    }

    #[tokio::test]
    async fn concurrent_updates_merge() -> Result<()> {
        let store = MemoryStore::new();
        let a = LedgerChanges {
            complete: [Hour(T)].into(),
            lost: vec![],
        };
        let b = LedgerChanges {
            complete: [Hour(T + HOUR)].into(),
            lost: vec![],
        };
        let (ra, rb) = tokio::join!(
            update(&store, "c", "s", Hour(T), &a, T, "a"),
            update(&store, "c", "s", Hour(T), &b, T, "b")
        );
        ra?;
        rb?;
        let (ledger, _) = load(&store, "c", "s").await?.ok_or(ExportError::Pipeline {
            site: "s".into(),
            hour: "-".into(),
            message: "no ledger".into(),
        })?;
        assert_eq!(ledger.resolved_before(), Hour(T + 2 * HOUR));
        Ok(())
    }
}

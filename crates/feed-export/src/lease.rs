//! One writer per hour: a lease object next to the hour's data, taken with a create-only put,
//! renewed and released with a compare-and-swap on its etag, and taken over once expired (a
//! crashed owner never renews).

use bytes::Bytes;
use kit_storage::{ObjectStore, PutCondition, PutOutcome};
use serde::{Deserialize, Serialize};

use crate::error::{ExportError, Result};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct LeaseBody {
    owner: String,
    acquired_at: i64,
    /// Epoch seconds; 0 = released.
    expires_at: i64,
}

/// A held lease.
#[derive(Debug)]
pub struct Lease {
    key: String,
    owner: String,
    acquired_at: i64,
    etag: String,
}

fn encode(body: &LeaseBody) -> Bytes {
    Bytes::from(serde_json::to_vec(body).unwrap_or_default())
}

impl Lease {
    /// Takes the lease if it is free, released or expired at `now`; `None` if someone else holds it.
    pub async fn acquire(
        store: &dyn ObjectStore,
        key: &str,
        owner: &str,
        now: i64,
        ttl_secs: i64,
    ) -> Result<Option<Lease>> {
        let body = LeaseBody {
            owner: owner.to_string(),
            acquired_at: now,
            expires_at: now + ttl_secs,
        };
        let condition = match store.get(key).await? {
            None => PutCondition::CreateOnly,
            Some(current) => {
                let held: LeaseBody =
                    serde_json::from_slice(&current.body).map_err(|e| ExportError::Corrupt {
                        key: key.to_string(),
                        kind: "lease",
                        reason: e.to_string(),
                    })?;
                if held.expires_at > now && held.owner != owner {
                    tracing::debug!(key, holder = %held.owner, expires_at = held.expires_at, "hour is leased by another exporter");
                    return Ok(None);
                }
                if held.expires_at > 0 && held.owner != owner {
                    tracing::warn!(key, holder = %held.owner, "taking over an expired lease");
                }
                PutCondition::IfMatch(current.etag)
            }
        };
        Ok(match store.put(key, encode(&body), condition).await? {
            PutOutcome::Written { etag } => Some(Lease {
                key: key.to_string(),
                owner: owner.to_string(),
                acquired_at: now,
                etag,
            }),
            PutOutcome::PreconditionFailed => None,
        })
    }

    /// Extends the lease; fails with `LeaseLost` if another exporter took it.
    pub async fn renew(
        &mut self,
        store: &dyn ObjectStore,
        now: i64,
        ttl_secs: i64,
        site: &str,
        hour: &str,
    ) -> Result<()> {
        let body = LeaseBody {
            owner: self.owner.clone(),
            acquired_at: self.acquired_at,
            expires_at: now + ttl_secs,
        };
        match store
            .put(
                &self.key,
                encode(&body),
                PutCondition::IfMatch(self.etag.clone()),
            )
            .await?
        {
            PutOutcome::Written { etag } => {
                self.etag = etag;
                Ok(())
            }
            PutOutcome::PreconditionFailed => Err(ExportError::LeaseLost {
                site: site.to_string(),
                hour: hour.to_string(),
            }),
        }
    }

    /// Gives the hour back without committing it, so the next run need not wait for expiry.
    pub async fn release(self, store: &dyn ObjectStore) -> Result<()> {
        let body = LeaseBody {
            owner: self.owner,
            acquired_at: self.acquired_at,
            expires_at: 0,
        };
        store
            .put(&self.key, encode(&body), PutCondition::IfMatch(self.etag))
            .await?;
        Ok(())
    }

    /// Removes the lease once the hour's manifest exists (nobody will write the hour again).
    pub async fn remove(self, store: &dyn ObjectStore) -> Result<()> {
        store.delete(&self.key).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kit_storage::MemoryStore;

    #[tokio::test]
    async fn one_holder_until_expiry_or_release() -> Result<()> {
        let store = MemoryStore::new();
        let key = "corp=c/site=s/dt=2024-05-01/hour=10/_lease.json";
        let mut a = Lease::acquire(&store, key, "run-a", 1000, 600)
            .await?
            .ok_or(ExportError::DeadlineReached)?;
        assert!(
            Lease::acquire(&store, key, "run-b", 1500, 600)
                .await?
                .is_none(),
            "held and unexpired"
        );
        a.renew(&store, 1500, 600, "s", "h").await?;
        assert!(
            Lease::acquire(&store, key, "run-b", 2000, 600)
                .await?
                .is_none(),
            "renewed until 2100"
        );
        // run-a stalls; after expiry run-b takes over and run-a can no longer renew.
        let b = Lease::acquire(&store, key, "run-b", 2200, 600)
            .await?
            .ok_or(ExportError::DeadlineReached)?;
        assert!(matches!(
            a.renew(&store, 2201, 600, "s", "h").await,
            Err(ExportError::LeaseLost { .. })
        ));
        b.release(&store).await?;
        assert!(
            Lease::acquire(&store, key, "run-c", 2300, 600)
                .await?
                .is_some(),
            "released leases are free"
        );
        Ok(())
    }
}

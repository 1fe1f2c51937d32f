//! Leader election on a `coordination.k8s.io/v1` Lease: only the holder reconciles.
//!
//! Writes use the Lease's resourceVersion (optimistic concurrency), so two candidates never
//! both win a round. The decision itself is a pure function of the Lease and the clock.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Api;
use kube::api::PostParams;

/// Where the lease lives and who we are.
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    /// Unique per process (pod name, or host name plus pid).
    pub identity: String,
    /// How long a holder's claim lasts without renewal.
    pub lease_duration: Duration,
    /// How often the holder renews (and a candidate retries).
    pub retry_period: Duration,
}

impl LeaseConfig {
    /// Give up leadership when no renewal succeeded for this long, before anyone else may take over.
    fn renew_deadline(&self) -> Duration {
        self.lease_duration.mul_f64(2.0 / 3.0)
    }
}

/// What to do with the lease as it stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// No lease object yet.
    Create,
    /// We hold it: extend.
    Renew,
    /// Free or expired: claim it.
    TakeOver,
    /// Someone else holds a live claim.
    Follow,
}

pub fn decide(spec: Option<&LeaseSpec>, identity: &str, now: Timestamp) -> Decision {
    let Some(spec) = spec else {
        return Decision::Create;
    };
    match spec.holder_identity.as_deref() {
        Some(holder) if holder == identity => Decision::Renew,
        None | Some("") => Decision::TakeOver,
        Some(_) => {
            let expires = spec.renew_time.as_ref().map(|renewed| {
                let seconds = i64::from(spec.lease_duration_seconds.unwrap_or(0));
                renewed.0 + SignedDuration::from_secs(seconds)
            });
            match expires {
                Some(expires) if expires > now => Decision::Follow,
                _ => Decision::TakeOver,
            }
        }
    }
}

/// The clock the elector reads; tests inject a fixed or stepped one.
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

pub fn system_clock() -> Clock {
    Arc::new(Timestamp::now)
}

pub struct LeaderElector {
    api: Api<Lease>,
    config: LeaseConfig,
    clock: Clock,
}

impl LeaderElector {
    pub fn new(client: kube::Client, config: LeaseConfig, clock: Clock) -> LeaderElector {
        LeaderElector {
            api: Api::namespaced(client, &config.namespace),
            config,
            clock,
        }
    }

    pub fn identity(&self) -> &str {
        &self.config.identity
    }

    /// One round: claim or extend the lease. `Ok(true)` while we hold it; a lost write race is
    /// `Ok(false)`.
    pub async fn try_acquire_or_renew(&self) -> Result<bool, kube::Error> {
        let now = (self.clock)();
        let current = self.api.get_opt(&self.config.name).await?;
        let decision = decide(
            current.as_ref().and_then(|lease| lease.spec.as_ref()),
            &self.config.identity,
            now,
        );
        let outcome = match (decision, current) {
            (Decision::Follow, _) => return Ok(false),
            (Decision::Create, _) | (_, None) => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.config.name.clone()),
                        namespace: Some(self.config.namespace.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(self.claim(None, now)),
                };
                self.api.create(&PostParams::default(), &lease).await
            }
            (decision, Some(mut lease)) => {
                let previous = lease.spec.take();
                let mut spec = self.claim(previous.as_ref(), now);
                if decision == Decision::Renew {
                    // Keep the acquire time and transition count of our own term.
                    spec.acquire_time = previous
                        .as_ref()
                        .and_then(|p| p.acquire_time.clone())
                        .or(spec.acquire_time);
                    spec.lease_transitions = previous.as_ref().and_then(|p| p.lease_transitions);
                }
                lease.spec = Some(spec);
                // resourceVersion stays set: a concurrent writer makes this fail with 409.
                self.api
                    .replace(&self.config.name, &PostParams::default(), &lease)
                    .await
            }
        };
        match outcome {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
            Err(error) => Err(error),
        }
    }

    fn claim(&self, previous: Option<&LeaseSpec>, now: Timestamp) -> LeaseSpec {
        let seconds = i32::try_from(self.config.lease_duration.as_secs())
            .unwrap_or(i32::MAX)
            .max(1);
        LeaseSpec {
            holder_identity: Some(self.config.identity.clone()),
            lease_duration_seconds: Some(seconds),
            acquire_time: Some(MicroTime(now)),
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(previous.and_then(|p| p.lease_transitions).unwrap_or(0) + 1),
            ..LeaseSpec::default()
        }
    }

    /// Wait until we hold the lease.
    pub async fn acquire(&self) {
        loop {
            match self.try_acquire_or_renew().await {
                Ok(true) => {
                    tracing::info!(identity = %self.config.identity, lease = %self.config.name, "acquired leadership");
                    return;
                }
                Ok(false) => {
                    tracing::debug!(lease = %self.config.name, "lease held by another instance")
                }
                Err(error) => {
                    tracing::warn!(%error, lease = %self.config.name, "cannot read or claim the lease")
                }
            }
            tokio::time::sleep(self.config.retry_period).await;
        }
    }

    /// Keep renewing; returns when leadership is lost (another holder, or no successful renewal
    /// within the renew deadline).
    pub async fn hold(&self) {
        let mut last_renewed = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(self.config.retry_period).await;
            match self.try_acquire_or_renew().await {
                Ok(true) => last_renewed = tokio::time::Instant::now(),
                Ok(false) => {
                    tracing::warn!(lease = %self.config.name, "lease taken by another instance");
                    return;
                }
                Err(error) => {
                    tracing::warn!(%error, lease = %self.config.name, "cannot renew the lease")
                }
            }
            if last_renewed.elapsed() > self.config.renew_deadline() {
                tracing::warn!(lease = %self.config.name, "no renewal within the deadline");
                return;
            }
        }
    }

    /// Hand the lease back on shutdown so a successor need not wait for expiry.
    pub async fn release(&self) -> Result<(), kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.config.name).await? else {
            return Ok(());
        };
        let ours = lease
            .spec
            .as_ref()
            .and_then(|s| s.holder_identity.as_deref())
            == Some(self.config.identity.as_str());
        if !ours {
            return Ok(());
        }
        if let Some(spec) = lease.spec.as_mut() {
            spec.holder_identity = None;
            spec.renew_time = None;
        }
        match self
            .api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
            Err(error) => Err(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(seconds).expect("valid timestamp")
    }

    fn held_by(holder: &str, renewed: i64, duration: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.into()),
            renew_time: Some(MicroTime(at(renewed))),
            lease_duration_seconds: Some(duration),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn decisions() {
        assert_eq!(decide(None, "me", at(100)), Decision::Create);
        assert_eq!(
            decide(Some(&held_by("me", 0, 15)), "me", at(100)),
            Decision::Renew
        );
        assert_eq!(
            decide(Some(&held_by("other", 90, 15)), "me", at(100)),
            Decision::Follow
        );
        assert_eq!(
            decide(Some(&held_by("other", 80, 15)), "me", at(100)),
            Decision::TakeOver
        );
        assert_eq!(
            decide(Some(&held_by("other", 85, 15)), "me", at(100)),
            Decision::TakeOver,
            "expiry is exclusive"
        );
        assert_eq!(
            decide(Some(&LeaseSpec::default()), "me", at(100)),
            Decision::TakeOver,
            "released"
        );
        let no_renew_time = LeaseSpec {
            holder_identity: Some("other".into()),
            ..LeaseSpec::default()
        };
        assert_eq!(
            decide(Some(&no_renew_time), "me", at(100)),
            Decision::TakeOver
        );
    }

    #[test]
    fn renew_deadline_is_before_expiry() {
        let config = LeaseConfig {
            namespace: "ns".into(),
            name: "lease".into(),
            identity: "me".into(),
            lease_duration: Duration::from_secs(15),
            retry_period: Duration::from_secs(2),
        };
        assert_eq!(config.renew_deadline(), Duration::from_secs(10));
    }
}

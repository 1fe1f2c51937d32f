//! Conditions and status as pure functions of the previous status and one reconcile's outcome.
//! Unchanged conditions keep their transition time, so an unchanged outcome yields an equal
//! status and no write.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use sigsci_config::FieldDiff;

use crate::ErrorClass;
use crate::crd::{ConnectionStatus, DriftEntry, ManagedStatus, SyncStatus};

pub const READY: &str = "Ready";
pub const SYNCED: &str = "Synced";
/// Set (True) only while a permanent error blocks progress: kstatus reads it as "Failed".
pub const STALLED: &str = "Stalled";
/// Set (True) while the object is being deleted and its deletion policy cannot be applied.
pub const DELETION_BLOCKED: &str = "DeletionBlocked";
/// True while the remote object differs from the spec (`ObserveOnly` leaves it so); False once
/// it matches, saying what was corrected last under `Full`.
pub const DRIFTED: &str = "Drifted";

/// Reasons of successful outcomes; failures use [`crate::Error::reason`].
pub mod reason {
    pub const CREATED: &str = "Created";
    pub const UPDATED: &str = "Updated";
    pub const IN_SYNC: &str = "InSync";
    pub const ADOPTED: &str = "Adopted";
    /// `managementPolicy: ObserveOnly`: read and reported, never written.
    pub const OBSERVED: &str = "Observed";
    pub const AUTHENTICATED: &str = "Authenticated";
    /// The remote object differed from what was applied, and was written back (`Full`).
    pub const DRIFT_CORRECTED: &str = "DriftCorrected";
    /// `Drifted` reasons: differs now, matches, matches again.
    pub const DRIFTED: &str = "Drifted";
    pub const NO_DRIFT: &str = "NoDrift";
    pub const DRIFT_RESOLVED: &str = "DriftResolved";
}

/// Longest condition message kept; API messages can be long.
const MAX_MESSAGE: usize = 1024;

/// What one reconcile found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Succeeded {
        reason: &'static str,
        message: String,
        /// The remote object was written (created or updated).
        wrote: bool,
        remote_id: Option<String>,
    },
    Failed {
        reason: &'static str,
        message: String,
        class: ErrorClass,
        /// The failure keeps the object from being deleted (its finalizer stays).
        blocks_deletion: bool,
    },
}

impl Outcome {
    /// A sync that succeeded, worded for the condition and the event: what happened to `subject`
    /// (`change` is what was applied, if anything; `adopted`: the link to the remote object is new).
    pub fn synced(
        subject: &str,
        change: Option<&sigsci_config::Change>,
        adopted: bool,
        remote_id: Option<String>,
    ) -> Outcome {
        use sigsci_config::Verb;
        let id = remote_id.as_deref().unwrap_or_default();
        let (reason, message, wrote) = match change.map(|change| (change.verb(), change)) {
            Some((Verb::Create, _)) => (
                reason::CREATED,
                format!("created {subject} (id {id})"),
                true,
            ),
            Some((Verb::Update, change)) => (
                reason::UPDATED,
                format!(
                    "updated {} of {subject} (id {id})",
                    change.updated_fields().join(", ")
                ),
                true,
            ),
            _ if adopted => (
                reason::ADOPTED,
                format!("adopted {subject} (id {id}); it matches the spec"),
                false,
            ),
            _ => (
                reason::IN_SYNC,
                format!("{subject} (id {id}) matches the spec"),
                false,
            ),
        };
        Outcome::Succeeded {
            reason,
            message,
            wrote,
            remote_id,
        }
    }

    pub fn failed(error: &crate::Error) -> Outcome {
        Outcome::Failed {
            reason: error.reason(),
            message: error.to_string(),
            class: error.class(),
            blocks_deletion: false,
        }
    }

    /// A deletion held up because `deletion_policy` could not be applied to `subject`; the
    /// message names the cause and the way out.
    pub fn deletion_blocked(
        error: &crate::Error,
        subject: &str,
        deletion_policy: impl std::fmt::Debug,
    ) -> Outcome {
        Outcome::Failed {
            reason: error.reason(),
            message: format!(
                "cannot apply deletionPolicy {deletion_policy:?} to {subject}: {error}; the \
                 object stays until this succeeds, or set deletionPolicy: Orphan to delete it \
                 without touching {subject}"
            ),
            class: error.class(),
            blocks_deletion: true,
        }
    }
}

/// The common status part (`AgentAlert`, `Integration`, `SigSciList`) after `outcome`.
pub fn next_sync_status(
    current: Option<&SyncStatus>,
    generation: Option<i64>,
    outcome: &Outcome,
    now: &Time,
) -> SyncStatus {
    let previous = current
        .map(|status| status.conditions.as_slice())
        .unwrap_or_default();
    let mut conditions = Vec::new();
    let mut remote_id = current.and_then(|status| status.remote_id.clone());
    let mut last_sync_time = current.and_then(|status| status.last_sync_time.clone());
    let make = |type_: &str, status: &str, reason: &str, message: &str| {
        condition(previous, type_, status, reason, message, generation, now)
    };
    match outcome {
        Outcome::Succeeded {
            reason,
            message,
            wrote,
            remote_id: id,
        } => {
            let became_ready = !is_true(previous, READY);
            conditions.push(make(READY, "True", reason, message));
            conditions.push(make(SYNCED, "True", reason, message));
            if id.is_some() {
                remote_id.clone_from(id);
            }
            if *wrote || became_ready {
                last_sync_time = Some(now.clone());
            }
        }
        Outcome::Failed {
            reason,
            message,
            class,
            blocks_deletion,
        } => {
            match (class, find(previous, READY)) {
                // A passing outage says nothing about the remote object: keep Ready as it was,
                // with the generation it was established for.
                (ErrorClass::Transient, Some(ready)) => conditions.push(ready.clone()),
                _ => conditions.push(make(READY, "False", reason, message)),
            }
            conditions.push(make(SYNCED, "False", reason, message));
            if *class == ErrorClass::Permanent {
                conditions.push(make(STALLED, "True", reason, message));
            }
            if *blocks_deletion {
                conditions.push(make(DELETION_BLOCKED, "True", reason, message));
            }
        }
    }
    SyncStatus {
        observed_generation: generation,
        conditions,
        remote_id,
        last_sync_time,
    }
}

/// How the remote object compared with the spec in one successful reconcile.
#[derive(Clone, Debug, PartialEq)]
pub enum Drift {
    /// It matches (after any update the spec called for).
    Matches,
    /// These fields differ and were left as they are (`ObserveOnly`).
    Differs(Vec<SiteDiff>),
    /// These fields had drifted from what was applied and were written back (`Full`).
    Corrected(Vec<SiteDiff>),
}

/// A field difference, with the site it was found on for alerts declared on several sites.
#[derive(Clone, Debug, PartialEq)]
pub struct SiteDiff {
    pub site: Option<String>,
    pub diff: FieldDiff,
}

impl From<FieldDiff> for SiteDiff {
    fn from(diff: FieldDiff) -> SiteDiff {
        SiteDiff { site: None, diff }
    }
}

/// `field[ on site]: desired X, observed Y`, as conditions and Events word a difference.
pub fn describe_difference(
    field: &str,
    site: Option<&str>,
    desired: &str,
    observed: &str,
) -> String {
    let on = site.map(|site| format!(" on {site}")).unwrap_or_default();
    format!("{field}{on}: desired {desired}, observed {observed}")
}

/// The differences joined with `; `, secrets shown only as differing.
pub fn describe_differences(diffs: &[SiteDiff]) -> String {
    diffs
        .iter()
        .map(|SiteDiff { site, diff }| {
            describe_difference(
                diff.field,
                site.as_deref(),
                &diff.after.in_drift_report(),
                &diff.before.in_drift_report(),
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The status of an agent alert or integration: `sync` (the common part) with the drift entries
/// and the `Drifted` condition. `drift` is `None` after a failed reconcile, which says nothing
/// new about the remote object: the previous drift stays. An entry keeps its `since` while its
/// field keeps differing (on its site, for alerts declared on several sites).
pub fn next_managed_status(
    previous: Option<&ManagedStatus>,
    mut sync: SyncStatus,
    drift: Option<&Drift>,
    generation: Option<i64>,
    now: &Time,
) -> ManagedStatus {
    let previous_conditions = previous
        .map(|status| status.sync.conditions.as_slice())
        .unwrap_or_default();
    let previous_drift = previous
        .map(|status| status.drift.as_slice())
        .unwrap_or_default();
    let was = find(previous_conditions, DRIFTED);
    let make = |status: &str, reason: &str, message: &str| {
        condition(
            previous_conditions,
            DRIFTED,
            status,
            reason,
            message,
            generation,
            now,
        )
    };
    let (entries, drifted) = match drift {
        None => (previous_drift.to_vec(), was.cloned()),
        Some(Drift::Differs(diffs)) if !diffs.is_empty() => {
            let entries = diffs
                .iter()
                .map(|SiteDiff { site, diff }| DriftEntry {
                    field: diff.field.to_string(),
                    site: site.clone(),
                    desired: diff.after.in_drift_report(),
                    observed: diff.before.in_drift_report(),
                    since: previous_drift
                        .iter()
                        .find(|entry| entry.is_about(site.as_deref(), diff.field))
                        .map_or_else(|| now.clone(), |entry| entry.since.clone()),
                })
                .collect();
            let message = describe_differences(diffs);
            (entries, Some(make("True", reason::DRIFTED, &message)))
        }
        Some(Drift::Corrected(diffs)) => {
            let message = format!("corrected {}", describe_differences(diffs));
            (
                Vec::new(),
                Some(make("False", reason::DRIFT_CORRECTED, &message)),
            )
        }
        Some(Drift::Matches | Drift::Differs(_)) => {
            let condition = match was {
                Some(was) if was.status == "True" => make(
                    "False",
                    reason::DRIFT_RESOLVED,
                    "the remote object matches the spec again",
                ),
                // The last correction stays on record until the next drift.
                Some(was) => make("False", &was.reason, &was.message),
                None => make(
                    "False",
                    reason::NO_DRIFT,
                    "the remote object matches the spec",
                ),
            };
            (Vec::new(), Some(condition))
        }
    };
    sync.conditions.extend(drifted);
    ManagedStatus {
        sync,
        drift: entries,
        sites: previous
            .map(|status| status.sites.clone())
            .unwrap_or_default(),
    }
}

/// The status of a connection after `outcome`.
pub fn next_connection_status(
    current: Option<&ConnectionStatus>,
    generation: Option<i64>,
    outcome: &Outcome,
    now: &Time,
) -> ConnectionStatus {
    let previous = current
        .map(|status| status.conditions.as_slice())
        .unwrap_or_default();
    let mut conditions = Vec::new();
    match outcome {
        Outcome::Succeeded {
            reason, message, ..
        } => {
            conditions.push(condition(
                previous, READY, "True", reason, message, generation, now,
            ));
        }
        Outcome::Failed {
            reason,
            message,
            class,
            ..
        } => {
            conditions.push(condition(
                previous, READY, "False", reason, message, generation, now,
            ));
            if *class == ErrorClass::Permanent {
                conditions.push(condition(
                    previous, STALLED, "True", reason, message, generation, now,
                ));
            }
        }
    }
    ConnectionStatus {
        observed_generation: generation,
        conditions,
    }
}

fn is_true(conditions: &[Condition], type_: &str) -> bool {
    conditions
        .iter()
        .any(|c| c.type_ == type_ && c.status == "True")
}

/// A condition that keeps the previous transition time while its status stays the same.
fn condition(
    previous: &[Condition],
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: &Time,
) -> Condition {
    let last_transition_time = previous
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| now.clone());
    Condition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: reason.to_string(),
        message: truncate(message),
        observed_generation: generation,
        last_transition_time,
    }
}

fn truncate(message: &str) -> String {
    match message.char_indices().nth(MAX_MESSAGE) {
        Some((cut, _)) => format!("{}...", &message[..cut]),
        None => message.to_string(),
    }
}

/// The condition of `type_`, if present.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::jiff::Timestamp;

    use super::*;

    fn at(seconds: i64) -> Time {
        Time(Timestamp::from_second(seconds).expect("valid timestamp"))
    }

    fn created() -> Outcome {
        Outcome::Succeeded {
            reason: reason::CREATED,
            message: "created".into(),
            wrote: true,
            remote_id: Some("r1".into()),
        }
    }

    fn in_sync() -> Outcome {
        Outcome::Succeeded {
            reason: reason::IN_SYNC,
            message: "matches".into(),
            wrote: false,
            remote_id: Some("r1".into()),
        }
    }

    fn unauthorized() -> Outcome {
        Outcome::Failed {
            reason: "AuthenticationFailed",
            message: "401 unauthorized".into(),
            class: ErrorClass::Permanent,
            blocks_deletion: false,
        }
    }

    fn outage() -> Outcome {
        Outcome::Failed {
            reason: "APIUnavailable",
            message: "503".into(),
            class: ErrorClass::Transient,
            blocks_deletion: false,
        }
    }

    fn summary(status: &SyncStatus) -> Vec<(String, String, String)> {
        status
            .conditions
            .iter()
            .map(|c| (c.type_.clone(), c.status.clone(), c.reason.clone()))
            .collect()
    }

    fn triple(type_: &str, status: &str, reason: &str) -> (String, String, String) {
        (type_.into(), status.into(), reason.into())
    }

    #[test]
    fn success_sets_ready_synced_remote_id_and_sync_time() {
        let status = next_sync_status(None, Some(1), &created(), &at(100));
        assert_eq!(
            summary(&status),
            vec![
                triple(READY, "True", "Created"),
                triple(SYNCED, "True", "Created")
            ]
        );
        assert_eq!(status.remote_id.as_deref(), Some("r1"));
        assert_eq!(status.last_sync_time, Some(at(100)));
        assert!(
            status
                .conditions
                .iter()
                .all(|c| c.observed_generation == Some(1))
        );
    }

    #[test]
    fn unchanged_outcome_gives_an_equal_status() {
        let first = next_sync_status(None, Some(2), &in_sync(), &at(100));
        let second = next_sync_status(Some(&first), Some(2), &in_sync(), &at(500));
        assert_eq!(first, second, "nothing but the clock moved: no write");
    }

    #[test]
    fn permanent_failure_stalls_and_keeps_the_remote_id() {
        let ready = next_sync_status(None, Some(1), &created(), &at(100));
        let failed = next_sync_status(Some(&ready), Some(1), &unauthorized(), &at(200));
        assert_eq!(
            summary(&failed),
            vec![
                triple(READY, "False", "AuthenticationFailed"),
                triple(SYNCED, "False", "AuthenticationFailed"),
                triple(STALLED, "True", "AuthenticationFailed")
            ]
        );
        assert_eq!(failed.remote_id.as_deref(), Some("r1"));
        assert_eq!(
            find(&failed.conditions, READY).map(|c| c.last_transition_time.clone()),
            Some(at(200))
        );
        assert_eq!(failed.last_sync_time, Some(at(100)));

        let recovered = next_sync_status(Some(&failed), Some(1), &in_sync(), &at(300));
        assert_eq!(
            summary(&recovered),
            vec![
                triple(READY, "True", "InSync"),
                triple(SYNCED, "True", "InSync")
            ]
        );
        assert_eq!(
            recovered.last_sync_time,
            Some(at(300)),
            "becoming ready again counts as a sync"
        );
    }

    #[test]
    fn transient_failure_keeps_ready_as_it_was() {
        let ready = next_sync_status(None, Some(1), &created(), &at(100));
        let failed = next_sync_status(Some(&ready), Some(1), &outage(), &at(200));
        assert_eq!(
            summary(&failed),
            vec![
                triple(READY, "True", "Created"),
                triple(SYNCED, "False", "APIUnavailable")
            ]
        );
        let fresh = next_sync_status(None, Some(1), &outage(), &at(200));
        assert_eq!(summary(&fresh)[0], triple(READY, "False", "APIUnavailable"));
    }

    #[test]
    fn connection_status() {
        let failed = next_connection_status(None, Some(3), &unauthorized(), &at(10));
        let types: Vec<_> = failed
            .conditions
            .iter()
            .map(|c| (c.type_.as_str(), c.status.as_str()))
            .collect();
        assert_eq!(types, vec![(READY, "False"), (STALLED, "True")]);
        let ok = Outcome::Succeeded {
            reason: reason::AUTHENTICATED,
            message: "ok".into(),
            wrote: false,
            remote_id: None,
        };
        let ready = next_connection_status(Some(&failed), Some(3), &ok, &at(20));
        assert_eq!(ready.conditions.len(), 1);
        assert_eq!(ready.conditions[0].last_transition_time, at(20));
        assert_eq!(
            next_connection_status(Some(&ready), Some(3), &ok, &at(99)),
            ready
        );
    }

    #[test]
    fn a_failed_deletion_says_it_is_blocked_and_names_the_way_out() {
        let error = crate::Error::Api(sigsci::Error::Unauthorized {
            status: 401,
            message: "Unauthorized".into(),
        });
        let outcome = Outcome::deletion_blocked(
            &error,
            "alert x",
            sigsci_config::AlertDeletionPolicy::Disable,
        );
        let status = next_sync_status(None, Some(2), &outcome, &at(10));
        let blocked = find(&status.conditions, DELETION_BLOCKED).unwrap();
        assert_eq!(blocked.status, "True");
        assert!(
            blocked
                .message
                .contains("cannot apply deletionPolicy Disable to alert x")
                && blocked.message.contains("deletionPolicy: Orphan"),
            "{}",
            blocked.message
        );
        let plain = next_sync_status(None, Some(2), &Outcome::failed(&error), &at(10));
        assert!(find(&plain.conditions, DELETION_BLOCKED).is_none());
    }

    fn threshold(observed: i64, desired: i64) -> SiteDiff {
        FieldDiff {
            field: "threshold",
            before: sigsci_config::Shown::json(observed),
            after: sigsci_config::Shown::json(desired),
        }
        .into()
    }

    fn drifted(status: &ManagedStatus) -> (String, String) {
        let c = find(&status.sync.conditions, DRIFTED).expect("Drifted");
        (c.status.clone(), c.reason.clone())
    }

    #[test]
    fn drift_is_kept_with_its_first_sighting_until_it_is_gone() {
        let sync = |previous: Option<&ManagedStatus>, at_: i64| {
            next_sync_status(previous.map(|p| &p.sync), Some(1), &in_sync(), &at(at_))
        };
        let first = next_managed_status(
            None,
            sync(None, 10),
            Some(&Drift::Matches),
            Some(1),
            &at(10),
        );
        assert_eq!(drifted(&first), ("False".into(), reason::NO_DRIFT.into()));
        let differs = Drift::Differs(vec![threshold(99, 40)]);
        let second = next_managed_status(
            Some(&first),
            sync(Some(&first), 20),
            Some(&differs),
            Some(1),
            &at(20),
        );
        assert_eq!(drifted(&second), ("True".into(), reason::DRIFTED.into()));
        assert_eq!(
            second.drift,
            vec![DriftEntry {
                field: "threshold".into(),
                site: None,
                desired: "40".into(),
                observed: "99".into(),
                since: at(20)
            }]
        );
        let differs_more = Drift::Differs(vec![threshold(98, 40)]);
        let third = next_managed_status(
            Some(&second),
            sync(Some(&second), 30),
            Some(&differs_more),
            Some(1),
            &at(30),
        );
        assert_eq!(
            third.drift[0].since,
            at(20),
            "still drifted since the first sighting"
        );
        let failed =
            next_managed_status(Some(&third), sync(Some(&third), 35), None, Some(1), &at(35));
        assert_eq!(
            (failed.drift.clone(), drifted(&failed)),
            (third.drift.clone(), drifted(&third))
        );
        let gone = next_managed_status(
            Some(&third),
            sync(Some(&third), 40),
            Some(&Drift::Matches),
            Some(1),
            &at(40),
        );
        assert!(gone.drift.is_empty());
        assert_eq!(
            drifted(&gone),
            ("False".into(), reason::DRIFT_RESOLVED.into())
        );

        let corrected = Drift::Corrected(vec![threshold(99, 40)]);
        let fixed = next_managed_status(
            Some(&gone),
            sync(Some(&gone), 50),
            Some(&corrected),
            Some(1),
            &at(50),
        );
        let condition = find(&fixed.sync.conditions, DRIFTED).expect("Drifted");
        assert_eq!(condition.reason, reason::DRIFT_CORRECTED);
        assert_eq!(
            condition.message,
            "corrected threshold: desired 40, observed 99"
        );
        let later = next_managed_status(
            Some(&fixed),
            sync(Some(&fixed), 60),
            Some(&Drift::Matches),
            Some(1),
            &at(60),
        );
        assert_eq!(
            later, fixed,
            "the correction stays on record; nothing to write"
        );
    }

    #[test]
    fn drift_on_several_sites_is_kept_per_site() {
        let on = |site: &str, observed| SiteDiff {
            site: Some(site.into()),
            ..threshold(observed, 40)
        };
        let differs = |diffs| Some(Drift::Differs(diffs));
        let first = next_managed_status(
            None,
            SyncStatus::default(),
            differs(vec![on("a", 99), on("b", 98)]).as_ref(),
            Some(1),
            &at(10),
        );
        let condition = find(&first.sync.conditions, DRIFTED).expect("Drifted");
        assert_eq!(
            condition.message,
            "threshold on a: desired 40, observed 99; threshold on b: desired 40, observed 98"
        );
        let second = next_managed_status(
            Some(&first),
            SyncStatus::default(),
            differs(vec![on("b", 97), on("c", 99)]).as_ref(),
            Some(1),
            &at(20),
        );
        let entries: Vec<_> = second
            .drift
            .iter()
            .map(|e| (e.site.as_deref(), e.observed.as_str(), e.since.clone()))
            .collect();
        assert_eq!(
            entries,
            [(Some("b"), "97", at(10)), (Some("c"), "99", at(20))],
            "since is kept per site"
        );
    }

    #[test]
    fn secrets_in_drift_only_say_they_differ() {
        let diff = FieldDiff {
            field: "url",
            before: sigsci_config::Shown::Sensitive,
            after: sigsci_config::Shown::Sensitive,
        };
        let status = next_managed_status(
            None,
            SyncStatus::default(),
            Some(&Drift::Differs(vec![diff.into()])),
            None,
            &at(1),
        );
        assert_eq!(status.drift[0].desired, "(sensitive: differs)");
        assert_eq!(status.drift[0].observed, "(sensitive: differs)");
    }

    #[test]
    fn long_messages_are_truncated() {
        let outcome = Outcome::Failed {
            reason: "APIError",
            message: "x".repeat(5000),
            class: ErrorClass::Permanent,
            blocks_deletion: false,
        };
        let status = next_sync_status(None, None, &outcome, &at(1));
        assert_eq!(status.conditions[0].message.len(), MAX_MESSAGE + 3);
    }
}

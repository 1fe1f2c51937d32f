//! The drift entries this process last wrote to each object's status. A reconcile can start from a
//! cached object that does not hold that write yet (a resync or a watched Secret triggered it
//! before the write's own watch event arrived): judged against that copy, a difference already
//! reported would look new (a second `Drifted` Event, its `since` reset to now).

use crate::crd::DriftEntry;
use crate::per_object::PerObject;

#[derive(Default)]
pub struct DriftMemory(PerObject<Written>);

struct Written {
    /// A deleted and recreated object of the same name starts afresh.
    uid: Option<String>,
    drift: Vec<DriftEntry>,
}

impl DriftMemory {
    /// The drift last written to object `key` with `uid`, if this process wrote it.
    pub fn last_written(&self, key: &str, uid: Option<&str>) -> Option<Vec<DriftEntry>> {
        self.0.with(|entries| {
            entries
                .get(key)
                .filter(|written| written.uid.as_deref() == uid)
                .map(|written| written.drift.clone())
        })
    }

    /// The status of object `key` with `uid` now holds `drift`.
    pub fn wrote(&self, key: &str, uid: Option<&str>, drift: &[DriftEntry]) {
        self.0.with(|entries| {
            let unchanged = entries
                .get(key)
                .is_some_and(|written| written.uid.as_deref() == uid && written.drift == drift);
            if !unchanged {
                entries.insert(
                    key.to_owned(),
                    Written {
                        uid: uid.map(str::to_owned),
                        drift: drift.to_vec(),
                    },
                );
            }
        });
    }

    /// The object of `key` is gone.
    pub fn forget(&self, key: &str) {
        self.0.forget(key);
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::jiff::Timestamp;

    use super::*;

    fn entry(field: &str) -> DriftEntry {
        DriftEntry {
            field: field.to_owned(),
            site: None,
            desired: "1".to_owned(),
            observed: "2".to_owned(),
            since: Time(Timestamp::UNIX_EPOCH),
        }
    }

    #[test]
    fn what_was_written_is_kept_per_object_until_it_is_recreated_or_gone() {
        let memory = DriftMemory::default();
        assert_eq!(memory.last_written("AgentAlert/ns/a", Some("u1")), None);
        memory.wrote("AgentAlert/ns/a", Some("u1"), &[entry("threshold")]);
        assert_eq!(
            memory.last_written("AgentAlert/ns/a", Some("u1")),
            Some(vec![entry("threshold")])
        );
        assert_eq!(memory.last_written("AgentAlert/ns/a", Some("u2")), None);
        assert_eq!(memory.last_written("AgentAlert/ns/b", Some("u1")), None);
        memory.wrote("AgentAlert/ns/a", Some("u1"), &[]);
        assert_eq!(
            memory.last_written("AgentAlert/ns/a", Some("u1")),
            Some(vec![])
        );
        memory.forget("AgentAlert/ns/a");
        assert_eq!(memory.last_written("AgentAlert/ns/a", Some("u1")), None);
    }
}

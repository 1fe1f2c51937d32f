//! The echo of our own writes: a reconcile that patches an object's metadata or status makes
//! the watch deliver the object again, and the controller reconciles it once more. When that
//! reconcile sees a version the last successful one wrote (a resourceVersion one of its writes
//! returned), of the generation it worked on, and no watched Secret or connection changed
//! meanwhile, it would find nothing new: it is skipped. A version written before the last write
//! (the watch had not yet delivered the rest) is skipped too, and the last one is still awaited:
//! its event follows. Anything else runs: a change by anyone else (spec, status, labels,
//! deletion) makes another resourceVersion, a Secret or connection change bumps the object's
//! trigger count, a failed reconcile leaves nothing to skip, and the last write's marker is used
//! once, so the periodic resync that follows runs in full.

use kube::Resource;
use kube::runtime::reflector::ObjectRef;

use crate::per_object::{PerObject, key_of};

#[derive(Default)]
pub struct Echoes(PerObject<Entry>);

#[derive(Default)]
struct Entry {
    /// Reconciles requested by a Secret or connection change.
    triggers: u64,
    /// The reconcile in flight or last finished.
    last: Option<Last>,
}

struct Last {
    /// The trigger count when it started.
    triggers: u64,
    /// The generation it reconciled.
    generation: Option<i64>,
    /// The resourceVersions its writes returned, in order (`None`: not known).
    written: Vec<Option<String>>,
}

impl Echoes {
    /// A reconcile of `key` starts on the object at `version` and `generation`: whether it only
    /// echoes the last one's writes (then it is skipped).
    pub fn start(&self, key: &str, version: Option<&str>, generation: Option<i64>) -> bool {
        self.0.with(|entries| {
            let entry = entries.entry(key.to_string()).or_default();
            let last = entry.last.take();
            let ours = last.as_ref().and_then(|last| {
                let position = last
                    .written
                    .iter()
                    .position(|written| written.is_some() && written.as_deref() == version)?;
                (last.triggers == entry.triggers && last.generation == generation)
                    .then_some(position + 1 == last.written.len())
            });
            match ours {
                // The last write: its marker is used up.
                Some(true) => true,
                // An earlier write: the last one's event is still to come.
                Some(false) => {
                    entry.last = last;
                    true
                }
                None => {
                    entry.last = Some(Last {
                        triggers: entry.triggers,
                        generation,
                        written: Vec::new(),
                    });
                    false
                }
            }
        })
    }

    /// The reconcile of `key` in flight wrote the object, which is now at `version`.
    pub fn wrote(&self, key: &str, version: Option<String>) {
        self.0.with(|entries| {
            if let Some(last) = entries.get_mut(key).and_then(|entry| entry.last.as_mut()) {
                last.written.push(version);
            }
        });
    }

    /// The reconcile of `key` failed: its retry must run.
    pub fn failed(&self, key: &str) {
        self.0.with(|entries| {
            if let Some(entry) = entries.get_mut(key) {
                entry.last = None;
            }
        });
    }

    /// The object of `key` is gone.
    pub fn forget(&self, key: &str) {
        self.0.forget(key);
    }

    /// A watched Secret or connection changed: `objects` must reconcile in full.
    pub fn triggered<K>(&self, objects: Vec<ObjectRef<K>>) -> Vec<ObjectRef<K>>
    where
        K: Resource<DynamicType = ()>,
    {
        self.0.with(|entries| {
            for object in &objects {
                let key = key_of::<K>(object.namespace.as_deref(), &object.name);
                if let Some(entry) = entries.get_mut(&key) {
                    entry.triggers += 1;
                }
            }
        });
        objects
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::Integration;

    const KEY: &str = "Integration/ns/hook";

    const GENERATION: Option<i64> = Some(1);

    #[test]
    fn the_echoes_of_our_writes_are_skipped_until_the_last_one() {
        let echoes = Echoes::default();
        assert!(!echoes.start(KEY, Some("1"), GENERATION));
        echoes.wrote(KEY, Some("2".into()));
        echoes.wrote(KEY, Some("3".into()));
        assert!(echoes.start(KEY, Some("2"), GENERATION), "an earlier write");
        assert!(
            echoes.start(KEY, Some("2"), GENERATION),
            "still awaiting the last"
        );
        assert!(echoes.start(KEY, Some("3"), GENERATION), "the last write");
        assert!(
            !echoes.start(KEY, Some("3"), GENERATION),
            "the resync after it runs"
        );

        echoes.wrote(KEY, Some("4".into()));
        assert!(
            !echoes.start(KEY, Some("5"), GENERATION),
            "someone else's write"
        );
        assert!(
            !echoes.start(KEY, Some("4"), GENERATION),
            "nothing written since"
        );
    }

    #[test]
    fn failures_dependency_and_spec_changes_are_never_skipped() {
        let echoes = Echoes::default();
        assert!(!echoes.start(KEY, Some("1"), GENERATION));
        echoes.wrote(KEY, Some("2".into()));
        echoes.failed(KEY);
        assert!(
            !echoes.start(KEY, Some("2"), GENERATION),
            "a retry after a failure"
        );

        echoes.wrote(KEY, Some("3".into()));
        let triggered = echoes.triggered(vec![ObjectRef::<Integration>::new("hook").within("ns")]);
        assert_eq!(triggered.len(), 1);
        assert!(
            !echoes.start(KEY, Some("3"), GENERATION),
            "a Secret or connection changed"
        );

        echoes.wrote(KEY, Some("4".into()));
        assert!(
            !echoes.start(KEY, Some("4"), Some(2)),
            "the spec changed, or the object is being deleted"
        );

        echoes.wrote(KEY, None);
        echoes.wrote(KEY, Some("6".into()));
        assert!(
            !echoes.start(KEY, Some("5"), Some(2)),
            "an unknown version is never taken for ours"
        );
    }
}

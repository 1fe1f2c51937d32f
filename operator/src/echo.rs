//! The echo of our own writes: a reconcile that patches an object's metadata or status makes
//! the watch deliver the object again, and the controller reconciles it once more. When that
//! reconcile sees exactly what the last successful one wrote (the resourceVersion its last write
//! returned) and no watched Secret or connection changed meanwhile, it would find nothing new:
//! it is skipped. Anything else runs: a change by anyone else (spec, status, labels, deletion)
//! makes another resourceVersion, a Secret or connection change bumps the object's trigger
//! count, a failed reconcile leaves nothing to skip, and a marker is used once, so the periodic
//! resync that follows runs in full.

use std::collections::HashMap;
use std::sync::Mutex;

use kube::Resource;
use kube::runtime::reflector::ObjectRef;

#[derive(Default)]
pub struct Echoes(Mutex<HashMap<String, Entry>>);

#[derive(Default)]
struct Entry {
    /// Reconciles requested by a Secret or connection change.
    triggers: u64,
    /// The reconcile in flight or last finished: the trigger count when it started, and the
    /// resourceVersion its last write returned.
    last: Option<(u64, Option<String>)>,
}

impl Echoes {
    /// A reconcile of `key` starts on the object at `version`: whether it only echoes the last
    /// one's writes (then it is skipped).
    pub fn start(&self, key: &str, version: Option<&str>) -> bool {
        let mut entries = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let entry = entries.entry(key.to_string()).or_default();
        let echo = match entry.last.take() {
            Some((triggers, Some(written))) => {
                triggers == entry.triggers && version == Some(written.as_str())
            }
            _ => false,
        };
        if !echo {
            entry.last = Some((entry.triggers, None));
        }
        echo
    }

    /// The reconcile of `key` in flight wrote the object, which is now at `version`.
    pub fn wrote(&self, key: &str, version: Option<String>) {
        let mut entries = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, written)) = entries.get_mut(key).and_then(|entry| entry.last.as_mut()) {
            *written = version;
        }
    }

    /// The reconcile of `key` failed: its retry must run.
    pub fn failed(&self, key: &str) {
        if let Some(entry) = self
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(key)
        {
            entry.last = None;
        }
    }

    /// The object of `key` is gone.
    pub fn forget(&self, key: &str) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
    }

    /// A watched Secret or connection changed: `objects` must reconcile in full.
    pub fn triggered<K>(&self, objects: Vec<ObjectRef<K>>) -> Vec<ObjectRef<K>>
    where
        K: Resource<DynamicType = ()>,
    {
        let mut entries = self.0.lock().unwrap_or_else(|p| p.into_inner());
        for object in &objects {
            let key = key_of::<K>(object.namespace.as_deref(), &object.name);
            if let Some(entry) = entries.get_mut(&key) {
                entry.triggers += 1;
            }
        }
        objects
    }
}

/// How the echoes (and the backoff) name an object: `Kind/namespace/name`.
pub fn key_of<K: Resource<DynamicType = ()>>(namespace: Option<&str>, name: &str) -> String {
    format!("{}/{}/{name}", K::kind(&()), namespace.unwrap_or(""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::Integration;

    const KEY: &str = "Integration/ns/hook";

    #[test]
    fn only_the_echo_of_the_last_write_is_skipped_and_only_once() {
        let echoes = Echoes::default();
        assert!(!echoes.start(KEY, Some("1")));
        echoes.wrote(KEY, Some("2".into()));
        echoes.wrote(KEY, Some("3".into()));
        assert!(!echoes.start(KEY, Some("2")), "not the last write");
        assert!(!echoes.start(KEY, Some("2")), "nothing written since");

        assert!(!echoes.start(KEY, Some("3")));
        echoes.wrote(KEY, Some("4".into()));
        assert!(echoes.start(KEY, Some("4")), "the echo");
        assert!(!echoes.start(KEY, Some("4")), "the resync after it runs");
    }

    #[test]
    fn failures_and_dependency_changes_are_never_skipped() {
        let echoes = Echoes::default();
        assert!(!echoes.start(KEY, Some("1")));
        echoes.wrote(KEY, Some("2".into()));
        echoes.failed(KEY);
        assert!(!echoes.start(KEY, Some("2")), "a retry after a failure");

        echoes.wrote(KEY, Some("3".into()));
        let triggered = echoes.triggered(vec![ObjectRef::<Integration>::new("hook").within("ns")]);
        assert_eq!(triggered.len(), 1);
        assert!(
            !echoes.start(KEY, Some("3")),
            "a Secret or connection changed"
        );
    }
}

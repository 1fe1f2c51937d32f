//! What the controllers keep about each object between its reconciles (the echoes of their own
//! writes, the failures behind the backoff, the drift last written), keyed `Kind/namespace/name`.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use kube::Resource;

pub struct PerObject<T>(Mutex<HashMap<String, T>>);

impl<T> Default for PerObject<T> {
    fn default() -> Self {
        PerObject(Mutex::new(HashMap::new()))
    }
}

impl<T> PerObject<T> {
    /// Runs `f` on the entries under the lock. Every update is one insert, change or removal of
    /// an entry, so a panic elsewhere while the lock was held left nothing half-done: a poisoned
    /// lock is taken over.
    pub fn with<R>(&self, f: impl FnOnce(&mut HashMap<String, T>) -> R) -> R {
        f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// The object of `key` is gone.
    pub fn forget(&self, key: &str) {
        self.with(|entries| entries.remove(key));
    }
}

/// How the per-object state names an object: `Kind/namespace/name`.
pub fn key_of<K: Resource<DynamicType = ()>>(namespace: Option<&str>, name: &str) -> String {
    format!("{}/{}/{name}", K::kind(&()), namespace.unwrap_or(""))
}

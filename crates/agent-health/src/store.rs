//! Loads and updates the per-corp state document with optimistic concurrency: read with its etag,
//! change in memory, write back with `If-Match` (or create-only), and start over on a 412.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kit_storage::{ObjectStore, PutCondition, PutOutcome, StorageError};

use crate::state::{STATE_VERSION, State};

/// Compare-and-swap attempts before giving up; contention comes from a handful of overlapping runs
/// and acknowledgement clicks, so this is generous.
const MAX_ATTEMPTS: u32 = 16;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("state document {location} is not valid: {message}")]
    Corrupt { location: String, message: String },
    #[error(
        "state document {location} was written by a newer version (format {found}, this build reads {STATE_VERSION})"
    )]
    TooNew { location: String, found: u32 },
    #[error("state document {location} belongs to corp {found:?}, not {expected:?}")]
    WrongCorp {
        location: String,
        found: String,
        expected: String,
    },
    #[error(
        "state document {location} kept changing under us ({MAX_ATTEMPTS} attempts); try again"
    )]
    Contended { location: String },
}

impl StoreError {
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Storage(error) => error.is_transient(),
            StoreError::Contended { .. } => true,
            _ => false,
        }
    }
}

/// Where the state lives: a store plus the key of the document inside it.
#[derive(Clone)]
pub struct StateStore {
    store: Arc<dyn ObjectStore>,
    key: String,
}

impl StateStore {
    /// The document `agent-health/{corp}.json` inside `store`.
    pub fn for_corp(store: Arc<dyn ObjectStore>, corp: &str) -> StateStore {
        StateStore {
            store,
            key: format!("agent-health/{corp}.json"),
        }
    }

    /// A document at an explicit key.
    pub fn at_key(store: Arc<dyn ObjectStore>, key: impl Into<String>) -> StateStore {
        StateStore {
            store,
            key: key.into(),
        }
    }

    /// Opens `LOCATION` as given on the command line or in `SIGSCI_KIT_STATE`: a location ending in
    /// `.json` is the document itself; anything else is a directory or `s3://bucket/prefix` that holds
    /// `agent-health/{corp}.json`.
    pub fn open(
        location: &str,
        corp: &str,
        s3_endpoint: Option<&str>,
    ) -> Result<StateStore, StoreError> {
        let trimmed = location.trim_end_matches('/');
        if let Some((parent, file)) = trimmed
            .rsplit_once('/')
            .filter(|_| trimmed.ends_with(".json"))
            && !parent.is_empty()
            && parent != "s3:/"
        {
            return Ok(StateStore::at_key(
                kit_storage::open(parent, s3_endpoint)?,
                file,
            ));
        }
        if trimmed.ends_with(".json") && !trimmed.contains('/') {
            return Ok(StateStore::at_key(
                kit_storage::open(".", s3_endpoint)?,
                trimmed,
            ));
        }
        Ok(StateStore::for_corp(
            kit_storage::open(location, s3_endpoint)?,
            corp,
        ))
    }

    pub fn location(&self) -> String {
        format!(
            "{}/{}",
            self.store.location().trim_end_matches('/'),
            self.key
        )
    }

    /// The current document and its etag (`None` if it does not exist yet: a fresh state is returned).
    pub async fn load(&self, corp: &str) -> Result<(State, Option<String>), StoreError> {
        match self.store.get(&self.key).await? {
            None => Ok((State::new(corp), None)),
            Some(object) => {
                let state = self.decode(&object.body, corp)?;
                Ok((state, Some(object.etag)))
            }
        }
    }

    fn decode(&self, body: &[u8], corp: &str) -> Result<State, StoreError> {
        let location = self.location();
        let state: State = serde_json::from_slice(body).map_err(|error| StoreError::Corrupt {
            location: location.clone(),
            message: error.to_string(),
        })?;
        if state.version > STATE_VERSION {
            return Err(StoreError::TooNew {
                location,
                found: state.version,
            });
        }
        if state.corp != corp {
            return Err(StoreError::WrongCorp {
                location,
                found: state.corp,
                expected: corp.to_string(),
            });
        }
        Ok(state)
    }

    /// Applies `change` to the current document and writes it back if it changed, retrying from a fresh
    /// read whenever another writer got in between. `change` must therefore be safe to run repeatedly;
    /// its result from the attempt that was written (or found nothing to change) is returned.
    pub async fn update<T, E>(
        &self,
        corp: &str,
        mut change: impl FnMut(&mut State) -> Result<T, E>,
    ) -> Result<T, UpdateError<E>> {
        for attempt in 0..MAX_ATTEMPTS {
            let (mut state, etag) = self.load(corp).await?;
            let before = serde_json::to_vec(&state).map_err(|e| self.encode_error(e))?;
            let result = change(&mut state).map_err(UpdateError::Change)?;
            state.version = STATE_VERSION;
            let after = serde_json::to_vec_pretty(&state).map_err(|e| self.encode_error(e))?;
            if etag.is_some()
                && serde_json::to_vec(&state).map_err(|e| self.encode_error(e))? == before
            {
                return Ok(result);
            }
            let condition = match etag {
                Some(etag) => PutCondition::IfMatch(etag),
                None => PutCondition::CreateOnly,
            };
            match self
                .store
                .put(&self.key, Bytes::from(after), condition)
                .await
                .map_err(StoreError::from)?
            {
                PutOutcome::Written { .. } => return Ok(result),
                PutOutcome::PreconditionFailed => {
                    tracing::debug!(attempt, key = %self.key, "state changed concurrently; retrying");
                    // Spread the retries of colliding writers.
                    let jitter = rand::random_range(5..25u64) * u64::from(attempt + 1);
                    tokio::time::sleep(Duration::from_millis(jitter)).await;
                }
            }
        }
        Err(UpdateError::Store(StoreError::Contended {
            location: self.location(),
        }))
    }

    fn encode_error(&self, error: serde_json::Error) -> StoreError {
        StoreError::Corrupt {
            location: self.location(),
            message: format!("cannot encode: {error}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum UpdateError<E> {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The change itself refused (e.g. an acknowledgement that is not allowed).
    #[error(transparent)]
    Change(E),
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use kit_storage::MemoryStore;

    use super::*;

    #[tokio::test]
    async fn creates_then_updates_and_skips_unchanged_writes() {
        let store = StateStore::for_corp(Arc::new(MemoryStore::new()), "corp");
        store
            .update("corp", |state| {
                state.list_failures = 1;
                Ok::<_, Infallible>(())
            })
            .await
            .unwrap();
        let (state, etag) = store.load("corp").await.unwrap();
        assert_eq!((state.list_failures, state.corp.as_str()), (1, "corp"));
        store
            .update("corp", |_| Ok::<_, Infallible>(()))
            .await
            .unwrap();
        assert_eq!(
            store.load("corp").await.unwrap().1,
            etag,
            "an unchanged document is not rewritten"
        );
        let error = store.load("other").await.unwrap_err();
        assert!(matches!(error, StoreError::WrongCorp { .. }), "{error}");
    }

    #[tokio::test]
    async fn concurrent_updates_all_land() {
        let store = StateStore::for_corp(Arc::new(MemoryStore::new()), "corp");
        let attempts = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (store, attempts) = (store.clone(), Arc::clone(&attempts));
            tasks.push(tokio::spawn(async move {
                store
                    .update("corp", |state| {
                        attempts.fetch_add(1, Ordering::SeqCst);
                        state.list_failures += 1;
                        Ok::<_, Infallible>(())
                    })
                    .await
            }));
        }
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        assert_eq!(store.load("corp").await.unwrap().0.list_failures, 8);
        assert!(attempts.load(Ordering::SeqCst) >= 8);
    }

    #[tokio::test]
    async fn refuses_documents_it_cannot_read() {
        let memory = Arc::new(MemoryStore::new());
        let store = StateStore::for_corp(memory.clone(), "corp");
        memory
            .put(
                "agent-health/corp.json",
                Bytes::from_static(b"{\"version\": 9, \"corp\": \"corp\"}"),
                PutCondition::Always,
            )
            .await
            .unwrap();
        assert!(matches!(
            store.load("corp").await,
            Err(StoreError::TooNew { found: 9, .. })
        ));
        memory
            .put(
                "agent-health/corp.json",
                Bytes::from_static(b"nope"),
                PutCondition::Always,
            )
            .await
            .unwrap();
        assert!(matches!(
            store.load("corp").await,
            Err(StoreError::Corrupt { .. })
        ));
    }

    #[test]
    fn open_tells_documents_from_directories() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().display().to_string();
        let store = StateStore::open(&root, "corp", None).unwrap();
        assert!(
            store.location().ends_with("/agent-health/corp.json"),
            "{}",
            store.location()
        );
        let store = StateStore::open(&format!("{root}/mine.json"), "corp", None).unwrap();
        assert!(
            store.location().ends_with("/mine.json") && !store.location().contains("agent-health"),
            "{}",
            store.location()
        );
    }
}

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};

use crate::{
    ObjectMeta, ObjectStore, PutCondition, PutOutcome, Result, StorageError, StoredObject, Upload,
};
use crate::{content_etag, validate_key};

/// An in-process store with the same conditional-write semantics as S3; for tests.
#[derive(Clone, Default)]
pub struct MemoryStore {
    objects: Arc<Mutex<BTreeMap<String, StoredObject>>>,
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    fn objects(&self) -> MutexGuard<'_, BTreeMap<String, StoredObject>> {
        // A panic while holding the lock cannot leave the map half-updated (each change is one insert).
        self.objects
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[async_trait]
impl ObjectStore for MemoryStore {
    async fn get(&self, key: &str) -> Result<Option<StoredObject>> {
        validate_key(key)?;
        Ok(self.objects().get(key).cloned())
    }

    async fn put(&self, key: &str, body: Bytes, condition: PutCondition) -> Result<PutOutcome> {
        validate_key(key)?;
        let mut objects = self.objects();
        let allowed = match (&condition, objects.get(key)) {
            (PutCondition::Always, _) | (PutCondition::CreateOnly, None) => true,
            (PutCondition::CreateOnly, Some(_)) | (PutCondition::IfMatch(_), None) => false,
            (PutCondition::IfMatch(expected), Some(current)) => &current.etag == expected,
        };
        if !allowed {
            return Ok(PutOutcome::PreconditionFailed);
        }
        let etag = content_etag(&body);
        objects.insert(
            key.to_string(),
            StoredObject {
                body,
                etag: etag.clone(),
            },
        );
        Ok(PutOutcome::Written { etag })
    }

    async fn delete(&self, key: &str) -> Result<()> {
        validate_key(key)?;
        self.objects().remove(key);
        Ok(())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        Ok(self
            .objects()
            .range(prefix.to_string()..)
            .take_while(|(key, _)| key.starts_with(prefix))
            .map(|(key, object)| ObjectMeta {
                key: key.clone(),
                size: object.body.len() as u64,
            })
            .collect())
    }

    async fn upload(&self, key: &str) -> Result<Box<dyn Upload>> {
        validate_key(key)?;
        Ok(Box::new(MemoryUpload {
            store: self.clone(),
            key: key.to_string(),
            buffer: BytesMut::new(),
        }))
    }

    fn location(&self) -> String {
        "memory://".to_string()
    }
}

struct MemoryUpload {
    store: MemoryStore,
    key: String,
    buffer: BytesMut,
}

#[async_trait]
impl Upload for MemoryUpload {
    async fn write(&mut self, chunk: Bytes) -> Result<()> {
        self.buffer.extend_from_slice(&chunk);
        Ok(())
    }

    async fn finish(self: Box<Self>) -> Result<ObjectMeta> {
        let size = self.buffer.len() as u64;
        match self
            .store
            .put(&self.key, self.buffer.freeze(), PutCondition::Always)
            .await?
        {
            PutOutcome::Written { .. } => Ok(ObjectMeta {
                key: self.key,
                size,
            }),
            PutOutcome::PreconditionFailed => Err(StorageError::UploadClosed { key: self.key }),
        }
    }

    async fn abort(self: Box<Self>) -> Result<()> {
        Ok(())
    }
}

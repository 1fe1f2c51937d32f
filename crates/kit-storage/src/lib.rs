//! Object storage and secret sources shared by the sigsci-kit jobs (feed export, agent health).
//!
//! One small trait, [`ObjectStore`], with conditional writes (create-only and compare-and-swap on the
//! etag) so that manifests, ledgers and leases can be written safely by concurrent runs, and a
//! streaming [`Upload`] so large objects never sit in memory. Implementations: [`S3Store`] (any
//! S3-compatible endpoint), [`LocalStore`] (a directory, same key layout) and [`MemoryStore`] (tests).

mod aws;
mod error;
mod local;
mod memory;
mod s3;
mod secrets;
#[cfg(feature = "testing")]
pub mod testing;

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

pub use error::{Result, StorageError};
pub use local::LocalStore;
pub use memory::MemoryStore;
pub use s3::{S3Location, S3Store};
pub use secrets::{SecretSource, SecretsManager, StaticSecrets};

/// An object's body and the etag to use for a later `PutCondition::IfMatch`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredObject {
    pub body: Bytes,
    pub etag: String,
}

/// A listed object: key relative to the store's root, size in bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectMeta {
    pub key: String,
    pub size: u64,
}

/// When a `put` may replace what is stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PutCondition {
    /// Unconditional write.
    Always,
    /// Only if no object exists at the key (S3 `If-None-Match: *`).
    CreateOnly,
    /// Only if the stored object still has this etag (S3 `If-Match`).
    IfMatch(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PutOutcome {
    Written {
        etag: String,
    },
    /// The condition did not hold; nothing was written.
    PreconditionFailed,
}

/// Keys are `/`-separated, relative to the store's root (an S3 prefix or a directory).
#[async_trait]
pub trait ObjectStore: Send + Sync {
    /// `None` when the key does not exist.
    async fn get(&self, key: &str) -> Result<Option<StoredObject>>;
    async fn put(&self, key: &str, body: Bytes, condition: PutCondition) -> Result<PutOutcome>;
    /// Deleting an absent key is not an error.
    async fn delete(&self, key: &str) -> Result<()>;
    /// Every object whose key starts with `prefix`, sorted by key.
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>>;
    /// A streaming writer; the object appears only when `finish` succeeds.
    async fn upload(&self, key: &str) -> Result<Box<dyn Upload>>;
    /// Removes what writers killed mid-upload left under `prefix`: never visible as objects, but
    /// they cost storage (S3 multipart uploads) or litter the directory (hidden temp files).
    /// The caller must be the only writer under `prefix` (it holds the lease); returns how many
    /// were removed. Stores whose writes are atomic keep nothing to remove.
    async fn sweep_incomplete(&self, _prefix: &str) -> Result<usize> {
        Ok(0)
    }
    /// Where this store writes, for messages (`s3://bucket/prefix` or a path).
    fn location(&self) -> String;
}

/// A streaming object writer. Dropping it without `finish` leaves nothing visible at the key
/// (S3 keeps the incomplete multipart upload until `abort` or a bucket lifecycle rule removes it).
#[async_trait]
pub trait Upload: Send {
    async fn write(&mut self, chunk: Bytes) -> Result<()>;
    async fn finish(self: Box<Self>) -> Result<ObjectMeta>;
    async fn abort(self: Box<Self>) -> Result<()>;
}

/// Opens `s3://bucket/prefix` (S3, endpoint overridable for moto or other S3-compatible stores) or a
/// local directory path. The directory is created on first write.
pub fn open(location: &str, s3_endpoint: Option<&str>) -> Result<Arc<dyn ObjectStore>> {
    open_as(location, s3_endpoint, None)
}

/// As [`open`]; on S3 with the credentials of `role_arn` (STS AssumeRole) when given, which a
/// local directory cannot use.
pub fn open_as(
    location: &str,
    s3_endpoint: Option<&str>,
    role_arn: Option<&str>,
) -> Result<Arc<dyn ObjectStore>> {
    if location.starts_with("s3://") {
        let parsed = S3Location::parse(location)?;
        Ok(Arc::new(S3Store::with_role(parsed, s3_endpoint, role_arn)?))
    } else if role_arn.is_some() {
        Err(StorageError::InvalidLocation {
            location: location.to_string(),
            reason: "a role to assume needs an s3:// location".to_string(),
        })
    } else if location.contains("://") {
        Err(StorageError::InvalidLocation {
            location: location.to_string(),
            reason: "only s3://bucket/prefix or a local directory path is supported".to_string(),
        })
    } else if location.trim().is_empty() {
        Err(StorageError::InvalidLocation {
            location: location.to_string(),
            reason: "empty path".to_string(),
        })
    } else {
        Ok(Arc::new(LocalStore::new(location)))
    }
}

/// Checks a key before it reaches a backend: relative, no empty or `.`/`..` segments.
pub(crate) fn validate_key(key: &str) -> Result<()> {
    let bad = key.is_empty()
        || key.starts_with('/')
        || key
            .split('/')
            .any(|segment| segment.is_empty() || segment == "." || segment == "..");
    if bad {
        return Err(StorageError::InvalidKey {
            key: key.to_string(),
        });
    }
    Ok(())
}

/// Etag for stores that have none of their own: the body's SHA-256, hex.
pub(crate) fn content_etag(body: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_must_be_relative_and_clean() {
        assert!(validate_key("corp=a/site=b/_ledger.json").is_ok());
        for bad in ["", "/abs", "a//b", "a/../b", "./a", "a/"] {
            assert!(
                matches!(validate_key(bad), Err(StorageError::InvalidKey { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn open_rejects_unknown_schemes_and_bad_buckets() {
        assert!(matches!(
            open("gs://bucket/x", None),
            Err(StorageError::InvalidLocation { .. })
        ));
        assert!(matches!(
            open("", None),
            Err(StorageError::InvalidLocation { .. })
        ));
        let error = open("s3://Bad_Bucket/x", None)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(error.contains("Bad_Bucket"), "{error}");
    }
}

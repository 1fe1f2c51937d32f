use std::path::PathBuf;

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// Every variant names the bucket, key, path or setting at fault.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("invalid storage location {location:?}: {reason}")]
    InvalidLocation { location: String, reason: String },
    #[error(
        "invalid object key {key:?}: keys are relative, `/`-separated, without empty, `.` or `..` segments"
    )]
    InvalidKey { key: String },
    #[error("S3 bucket {bucket:?} does not exist")]
    BucketMissing { bucket: String },
    #[error("access denied by S3 ({operation} s3://{bucket}/{key}): {message}")]
    AccessDenied {
        operation: &'static str,
        bucket: String,
        key: String,
        message: String,
    },
    #[error("S3 {operation} s3://{bucket}/{key} failed{}: {message}", status.map(|s| format!(" (HTTP {s})")).unwrap_or_default())]
    S3 {
        operation: &'static str,
        bucket: String,
        key: String,
        status: Option<u16>,
        message: String,
    },
    #[error("{operation} {}: {source}", path.display())]
    Io {
        operation: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("upload of {key:?} was already finished or aborted")]
    UploadClosed { key: String },
    #[error("secret {name:?} cannot be read{}: {message}", status.map(|s| format!(" (HTTP {s})")).unwrap_or_default())]
    SecretUnreadable {
        name: String,
        status: Option<u16>,
        message: String,
    },
    #[error("secret {name:?} is malformed: {reason}")]
    SecretMalformed { name: String, reason: String },
}

impl StorageError {
    /// The HTTP status of the failed call, when there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            StorageError::S3 { status, .. } | StorageError::SecretUnreadable { status, .. } => {
                *status
            }
            StorageError::BucketMissing { .. } => Some(404),
            StorageError::AccessDenied { .. } => Some(403),
            _ => None,
        }
    }

    /// Worth retrying later (throttling, 5xx, I/O hiccups); config and permission errors are not.
    pub fn is_transient(&self) -> bool {
        match self {
            StorageError::S3 { status, .. } => status.is_none_or(|s| s == 429 || s >= 500),
            StorageError::SecretUnreadable { status, .. } => {
                status.is_none_or(|s| s == 429 || s >= 500)
            }
            StorageError::Io { .. } => true,
            _ => false,
        }
    }
}

use async_trait::async_trait;
use aws_sdk_s3::config::{BehaviorVersion, RequestChecksumCalculation, ResponseChecksumValidation};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use bytes::{Bytes, BytesMut};

use crate::{
    ObjectMeta, ObjectStore, PutCondition, PutOutcome, Result, StorageError, StoredObject, Upload,
};
use crate::{aws, validate_key};

/// Every multipart part but the last is exactly this large: S3's floor, so an upload in
/// progress holds as little as it can (an hour's part of 200 MB is still only 40 calls).
pub const PART_SIZE: usize = 5 * 1024 * 1024;

/// `s3://bucket/prefix`, parsed and checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Location {
    pub bucket: String,
    /// Without leading or trailing `/`; may be empty.
    pub prefix: String,
}

impl S3Location {
    pub fn parse(url: &str) -> Result<S3Location> {
        let invalid = |reason: &str| StorageError::InvalidLocation {
            location: url.to_string(),
            reason: reason.to_string(),
        };
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| invalid("must start with s3://"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        check_bucket_name(bucket)
            .map_err(|reason| invalid(&format!("bucket name {bucket:?} {reason}")))?;
        let prefix = prefix.trim_matches('/').to_string();
        if !prefix.is_empty() {
            validate_key(&prefix)
                .map_err(|_| invalid("the prefix has an empty, `.` or `..` segment"))?;
        }
        Ok(S3Location {
            bucket: bucket.to_string(),
            prefix,
        })
    }
}

impl std::fmt::Display for S3Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.prefix.is_empty() {
            write!(f, "s3://{}", self.bucket)
        } else {
            write!(f, "s3://{}/{}", self.bucket, self.prefix)
        }
    }
}

/// S3 bucket naming rules (general purpose buckets).
fn check_bucket_name(bucket: &str) -> std::result::Result<(), &'static str> {
    if !(3..=63).contains(&bucket.len()) {
        return Err("must be 3 to 63 characters long");
    }
    if !bucket
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
    {
        return Err("may hold only lower-case letters, digits, '.' and '-'");
    }
    let edges_ok = |b: Option<u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if !edges_ok(bucket.bytes().next()) || !edges_ok(bucket.bytes().last()) {
        return Err("must begin and end with a letter or digit");
    }
    if bucket.contains("..") {
        return Err("must not contain '..'");
    }
    Ok(())
}

/// A bucket + prefix on S3 or an S3-compatible endpoint.
#[derive(Clone, Debug)]
pub struct S3Store {
    client: aws_sdk_s3::Client,
    location: S3Location,
}

impl S3Store {
    /// Region and credentials come from the standard AWS environment; `endpoint` (or
    /// `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL`) overrides the endpoint and switches to path-style
    /// addressing, which S3-compatible servers need.
    pub fn new(location: S3Location, endpoint: Option<&str>) -> Result<S3Store> {
        S3Store::with_role(location, endpoint, None)
    }

    /// As [`S3Store::new`], with the credentials of `role_arn` (assumed through STS) when given.
    pub fn with_role(
        location: S3Location,
        endpoint: Option<&str>,
        role_arn: Option<&str>,
    ) -> Result<S3Store> {
        let credentials = match role_arn {
            Some(arn) => aws::assumed_role(arn),
            None => aws::credentials(),
        };
        let mut config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(aws::region())
            .credentials_provider(credentials)
            // Checksums only where S3 requires them: S3-compatible stores differ in what they accept.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        if let Some(url) = aws::endpoint(endpoint, "AWS_ENDPOINT_URL_S3") {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(StorageError::InvalidLocation {
                    location: url,
                    reason: "the S3 endpoint must be an http:// or https:// URL".to_string(),
                });
            }
            config = config.endpoint_url(url).force_path_style(true);
        }
        Ok(S3Store::with_client(
            aws_sdk_s3::Client::from_conf(config.build()),
            location,
        ))
    }

    pub fn with_client(client: aws_sdk_s3::Client, location: S3Location) -> S3Store {
        S3Store { client, location }
    }

    fn full_key(&self, key: &str) -> Result<String> {
        validate_key(key)?;
        Ok(if self.location.prefix.is_empty() {
            key.to_string()
        } else {
            format!("{}/{key}", self.location.prefix)
        })
    }

    /// A listing prefix below the store's own (not validated as a key: it may end mid-name).
    fn full_prefix(&self, prefix: &str) -> String {
        if self.location.prefix.is_empty() {
            prefix.to_string()
        } else {
            format!("{}/{prefix}", self.location.prefix)
        }
    }

    fn relative_key<'a>(&self, full: &'a str) -> &'a str {
        if self.location.prefix.is_empty() {
            full
        } else {
            full.strip_prefix(&self.location.prefix)
                .and_then(|k| k.strip_prefix('/'))
                .unwrap_or(full)
        }
    }

    fn error<E: ProvideErrorMetadata + std::error::Error + 'static>(
        &self,
        operation: &'static str,
        key: &str,
        error: &SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
    ) -> StorageError {
        classify(operation, &self.location.bucket, key, error)
    }
}

fn status_of<E>(error: &SdkError<E, aws_sdk_s3::config::http::HttpResponse>) -> Option<u16> {
    error
        .raw_response()
        .map(|response| response.status().as_u16())
}

fn classify<E: ProvideErrorMetadata + std::error::Error + 'static>(
    operation: &'static str,
    bucket: &str,
    key: &str,
    error: &SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> StorageError {
    let status = status_of(error);
    let code = error
        .as_service_error()
        .and_then(|e| e.code())
        .unwrap_or_default()
        .to_string();
    let message = match error.as_service_error().and_then(|e| e.message()) {
        Some(message) if !code.is_empty() => format!("{code}: {message}"),
        Some(message) => message.to_string(),
        None if !code.is_empty() => code.clone(),
        // Transport-level failures carry their cause in the source chain.
        None => sigsci::with_causes(error),
    };
    match (code.as_str(), status) {
        ("NoSuchBucket", _) => StorageError::BucketMissing {
            bucket: bucket.to_string(),
        },
        ("AccessDenied" | "InvalidAccessKeyId" | "SignatureDoesNotMatch", _) | (_, Some(403)) => {
            StorageError::AccessDenied {
                operation,
                bucket: bucket.to_string(),
                key: key.to_string(),
                message,
            }
        }
        _ => StorageError::S3 {
            operation,
            bucket: bucket.to_string(),
            key: key.to_string(),
            status,
            message,
        },
    }
}

/// 412 (condition false) and 409 (a concurrent conditional write won) both mean "not written".
fn is_precondition_failure<E: ProvideErrorMetadata>(
    error: &SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> bool {
    let code = error.as_service_error().and_then(|e| e.code());
    matches!(status_of(error), Some(412 | 409))
        || matches!(
            code,
            Some("PreconditionFailed" | "ConditionalRequestConflict")
        )
}

#[async_trait]
impl ObjectStore for S3Store {
    async fn get(&self, key: &str) -> Result<Option<StoredObject>> {
        let full = self.full_key(key)?;
        let response = match self
            .client
            .get_object()
            .bucket(&self.location.bucket)
            .key(&full)
            .send()
            .await
        {
            Ok(response) => response,
            Err(error) => {
                let code = error.as_service_error().and_then(|e| e.code());
                if code == Some("NoSuchKey")
                    || (status_of(&error) == Some(404) && code != Some("NoSuchBucket"))
                {
                    return Ok(None);
                }
                return Err(self.error("GetObject", &full, &error));
            }
        };
        let etag = response.e_tag().unwrap_or_default().to_string();
        let body = response
            .body
            .collect()
            .await
            .map_err(|error| StorageError::S3 {
                operation: "GetObject",
                bucket: self.location.bucket.clone(),
                key: full.clone(),
                status: None,
                message: format!("reading the body: {error}"),
            })?;
        Ok(Some(StoredObject {
            body: body.into_bytes(),
            etag,
        }))
    }

    async fn put(&self, key: &str, body: Bytes, condition: PutCondition) -> Result<PutOutcome> {
        let full = self.full_key(key)?;
        let mut request = self
            .client
            .put_object()
            .bucket(&self.location.bucket)
            .key(&full)
            .body(ByteStream::from(body));
        request = match &condition {
            PutCondition::Always => request,
            PutCondition::CreateOnly => request.if_none_match("*"),
            PutCondition::IfMatch(etag) => request.if_match(etag),
        };
        match request.send().await {
            Ok(response) => Ok(PutOutcome::Written {
                etag: response.e_tag().unwrap_or_default().to_string(),
            }),
            Err(error) if condition != PutCondition::Always && is_precondition_failure(&error) => {
                Ok(PutOutcome::PreconditionFailed)
            }
            // If-Match on a missing key is a 404 NoSuchKey on S3: the condition did not hold.
            Err(error)
                if matches!(condition, PutCondition::IfMatch(_))
                    && error.as_service_error().and_then(|e| e.code()) == Some("NoSuchKey") =>
            {
                Ok(PutOutcome::PreconditionFailed)
            }
            Err(error) => Err(self.error("PutObject", &full, &error)),
        }
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let full = self.full_key(key)?;
        match self
            .client
            .delete_object()
            .bucket(&self.location.bucket)
            .key(&full)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(error)
                if status_of(&error) == Some(404)
                    && error.as_service_error().and_then(|e| e.code()) != Some("NoSuchBucket") =>
            {
                Ok(())
            }
            Err(error) => Err(self.error("DeleteObject", &full, &error)),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        let full_prefix = self.full_prefix(prefix);
        let mut found = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let response = self
                .client
                .list_objects_v2()
                .bucket(&self.location.bucket)
                .prefix(&full_prefix)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|error| self.error("ListObjectsV2", &full_prefix, &error))?;
            for object in response.contents() {
                if let Some(key) = object.key() {
                    found.push(ObjectMeta {
                        key: self.relative_key(key).to_string(),
                        size: object.size().unwrap_or(0).max(0) as u64,
                    });
                }
            }
            match response.next_continuation_token() {
                Some(next) if response.is_truncated() == Some(true) => {
                    token = Some(next.to_string())
                }
                _ => break,
            }
        }
        found.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(found)
    }

    async fn sweep_incomplete(&self, prefix: &str) -> Result<usize> {
        let full_prefix = self.full_prefix(prefix);
        let mut abandoned = Vec::new();
        let (mut key_marker, mut upload_id_marker) = (None, None);
        loop {
            let response = self
                .client
                .list_multipart_uploads()
                .bucket(&self.location.bucket)
                .prefix(&full_prefix)
                .set_key_marker(key_marker.take())
                .set_upload_id_marker(upload_id_marker.take())
                .send()
                .await
                .map_err(|error| self.error("ListMultipartUploads", &full_prefix, &error))?;
            for upload in response.uploads() {
                if let (Some(key), Some(id)) = (upload.key(), upload.upload_id()) {
                    abandoned.push((key.to_string(), id.to_string()));
                }
            }
            if response.is_truncated() != Some(true) {
                break;
            }
            key_marker = response.next_key_marker().map(str::to_string);
            upload_id_marker = response.next_upload_id_marker().map(str::to_string);
            if key_marker.is_none() {
                break;
            }
        }
        for (key, upload_id) in &abandoned {
            tracing::info!(key, "aborting a multipart upload a killed writer left");
            self.client
                .abort_multipart_upload()
                .bucket(&self.location.bucket)
                .key(key)
                .upload_id(upload_id)
                .send()
                .await
                .map_err(|error| self.error("AbortMultipartUpload", key, &error))?;
        }
        Ok(abandoned.len())
    }

    async fn upload(&self, key: &str) -> Result<Box<dyn Upload>> {
        let full = self.full_key(key)?;
        Ok(Box::new(S3Upload {
            store: self.clone(),
            key: key.to_string(),
            full_key: full,
            buffer: BytesMut::new(),
            upload_id: None,
            parts: Vec::new(),
            size: 0,
        }))
    }

    fn location(&self) -> String {
        self.location.to_string()
    }
}

/// Buffers a part (`PART_SIZE`), then streams parts of a multipart upload; a small object (one
/// buffer) becomes a single PutObject. Peak memory: one part.
struct S3Upload {
    store: S3Store,
    key: String,
    full_key: String,
    buffer: BytesMut,
    upload_id: Option<String>,
    parts: Vec<CompletedPart>,
    size: u64,
}

impl S3Upload {
    async fn flush_part(&mut self) -> Result<()> {
        let bucket = self.store.location.bucket.clone();
        let upload_id = match &self.upload_id {
            Some(id) => id.clone(),
            None => {
                let created = self
                    .store
                    .client
                    .create_multipart_upload()
                    .bucket(&bucket)
                    .key(&self.full_key)
                    .send()
                    .await
                    .map_err(|error| {
                        self.store
                            .error("CreateMultipartUpload", &self.full_key, &error)
                    })?;
                let id = created.upload_id().unwrap_or_default().to_string();
                self.upload_id = Some(id.clone());
                id
            }
        };
        let part_number = i32::try_from(self.parts.len() + 1).unwrap_or(i32::MAX);
        let body = self.buffer.split().freeze();
        let uploaded = self
            .store
            .client
            .upload_part()
            .bucket(&bucket)
            .key(&self.full_key)
            .upload_id(&upload_id)
            .part_number(part_number)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|error| self.store.error("UploadPart", &self.full_key, &error))?;
        self.parts.push(
            CompletedPart::builder()
                .part_number(part_number)
                .set_e_tag(uploaded.e_tag().map(str::to_string))
                .build(),
        );
        Ok(())
    }
}

#[async_trait]
impl Upload for S3Upload {
    async fn write(&mut self, mut chunk: Bytes) -> Result<()> {
        self.size += chunk.len() as u64;
        while !chunk.is_empty() {
            if self.buffer.is_empty() {
                // One allocation of exactly a part (reclaimed once the last part's body is
                // dropped): growing by doubling overshot to twice a part while copying.
                self.buffer.reserve(PART_SIZE);
            }
            let room = PART_SIZE - self.buffer.len();
            self.buffer
                .extend_from_slice(&chunk.split_to(room.min(chunk.len())));
            if self.buffer.len() == PART_SIZE {
                self.flush_part().await?;
            }
        }
        Ok(())
    }

    async fn finish(mut self: Box<Self>) -> Result<ObjectMeta> {
        if self.upload_id.is_none() {
            let body = self.buffer.split().freeze();
            self.store
                .put(&self.key, body, PutCondition::Always)
                .await?;
            return Ok(ObjectMeta {
                key: self.key.clone(),
                size: self.size,
            });
        }
        if !self.buffer.is_empty() {
            self.flush_part().await?;
        }
        let upload_id = self.upload_id.take().unwrap_or_default();
        let parts = CompletedMultipartUpload::builder()
            .set_parts(Some(std::mem::take(&mut self.parts)))
            .build();
        self.store
            .client
            .complete_multipart_upload()
            .bucket(&self.store.location.bucket)
            .key(&self.full_key)
            .upload_id(&upload_id)
            .multipart_upload(parts)
            .send()
            .await
            .map_err(|error| {
                self.store
                    .error("CompleteMultipartUpload", &self.full_key, &error)
            })?;
        Ok(ObjectMeta {
            key: self.key.clone(),
            size: self.size,
        })
    }

    async fn abort(mut self: Box<Self>) -> Result<()> {
        let Some(upload_id) = self.upload_id.take() else {
            return Ok(());
        };
        self.store
            .client
            .abort_multipart_upload()
            .bucket(&self.store.location.bucket)
            .key(&self.full_key)
            .upload_id(&upload_id)
            .send()
            .await
            .map_err(|error| {
                self.store
                    .error("AbortMultipartUpload", &self.full_key, &error)
            })?;
        Ok(())
    }
}

impl Drop for S3Upload {
    fn drop(&mut self) {
        // Dropped mid-way: abort in the background so the parts do not linger (best effort).
        let (Some(upload_id), Ok(runtime)) =
            (self.upload_id.take(), tokio::runtime::Handle::try_current())
        else {
            return;
        };
        let client = self.store.client.clone();
        let bucket = self.store.location.bucket.clone();
        let key = self.full_key.clone();
        runtime.spawn(async move {
            if let Err(error) = client.abort_multipart_upload().bucket(bucket).key(&key).upload_id(upload_id).send().await {
                tracing::warn!(key = %key, error = %sigsci::with_causes(&error), "could not abort an abandoned multipart upload");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bucket_and_prefix() {
        assert_eq!(
            S3Location::parse("s3://feed-bucket").ok(),
            Some(S3Location {
                bucket: "feed-bucket".into(),
                prefix: String::new()
            })
        );
        assert_eq!(
            S3Location::parse("s3://feed-bucket/a/b/").ok(),
            Some(S3Location {
                bucket: "feed-bucket".into(),
                prefix: "a/b".into()
            })
        );
        for bad in [
            "s3://",
            "s3://ab",
            "s3://Upper",
            "s3://-lead",
            "s3://a..b",
            "s3://under_score/x",
            "s3://ok-bucket/a//b",
        ] {
            assert!(S3Location::parse(bad).is_err(), "{bad}");
        }
    }
}

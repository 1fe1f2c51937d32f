//! moto fixtures for the test suites of this crate and of the jobs that store through it
//! (feature `testing`, taken only as a dev-dependency). moto's address comes from
//! `SIGSCI_KIT_TEST_MOTO_URL`, which tests/run.sh sets after starting it. Failures panic with
//! what went wrong: these helpers only ever run inside tests.

use std::sync::atomic::{AtomicUsize, Ordering};

const REGION: &str = "us-east-1";
const KEY: &str = "testing";

/// moto's base URL.
pub fn moto_url() -> String {
    std::env::var("SIGSCI_KIT_TEST_MOTO_URL").unwrap_or_else(|_| {
        panic!(
            "SIGSCI_KIT_TEST_MOTO_URL is not set: `tests/services.sh up DIR moto`, then `source DIR/env` (tests/run.sh does both)"
        )
    })
}

/// Dummy credentials and region for the code under test, which builds its AWS clients from the
/// environment as in Lambda.
pub fn set_test_aws_env() {
    // SAFETY: every test sets the same values before building any AWS client.
    unsafe {
        for (key, value) in [
            ("AWS_ACCESS_KEY_ID", KEY),
            ("AWS_SECRET_ACCESS_KEY", KEY),
            ("AWS_REGION", REGION),
        ] {
            if std::env::var(key).is_err() {
                std::env::set_var(key, value);
            }
        }
    }
}

/// A name no other test (of this process or a concurrent one) uses.
pub fn unique(name: &str) -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{name}-{}-{nanos}-{count}", std::process::id())
}

fn credentials() -> aws_credential_types::Credentials {
    aws_credential_types::Credentials::new(KEY, KEY, None, None, "test")
}

/// An S3 client on moto, for arranging and inspecting what the code under test stores.
pub fn s3_client() -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .region(aws_sdk_s3::config::Region::new(REGION))
        .credentials_provider(credentials())
        .endpoint_url(moto_url())
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

/// A fresh bucket on moto named after `prefix`; returns its name.
pub async fn create_bucket(prefix: &str) -> String {
    set_test_aws_env();
    let bucket = unique(prefix);
    s3_client()
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .unwrap_or_else(|e| panic!("create bucket {bucket} on moto: {e:?}"));
    bucket
}

fn secrets_client() -> aws_sdk_secretsmanager::Client {
    set_test_aws_env();
    let config = aws_sdk_secretsmanager::Config::builder()
        .behavior_version(aws_sdk_secretsmanager::config::BehaviorVersion::latest())
        .region(aws_sdk_secretsmanager::config::Region::new(REGION))
        .credentials_provider(credentials())
        .endpoint_url(moto_url())
        .build();
    aws_sdk_secretsmanager::Client::from_conf(config)
}

/// Stores a Secrets Manager secret on moto.
pub async fn create_secret(name: &str, value: &str) {
    secrets_client()
        .create_secret()
        .name(name)
        .secret_string(value)
        .send()
        .await
        .unwrap_or_else(|e| panic!("create secret {name} on moto: {e:?}"));
}

/// Gives a secret on moto a new value (a new version), as a rotation does.
pub async fn rotate_secret(name: &str, value: &str) {
    secrets_client()
        .put_secret_value()
        .secret_id(name)
        .secret_string(value)
        .send()
        .await
        .unwrap_or_else(|e| panic!("rotate secret {name} on moto: {e:?}"));
}

//! One conformance suite run against every store: memory, a local directory, and S3 on moto.

use std::sync::Arc;

use bytes::Bytes;
use kit_storage::testing::{create_bucket, create_secret, moto_url, set_test_aws_env, unique};
use kit_storage::{
    LocalStore, MemoryStore, ObjectStore, PutCondition, PutOutcome, S3Location, S3Store,
    SecretSource, SecretsManager, StorageError,
};

type TestResult = Result<(), Box<dyn std::error::Error>>;

async fn moto_bucket(prefix: &str) -> Result<S3Store, Box<dyn std::error::Error>> {
    let bucket = create_bucket("kit-storage").await;
    let location = S3Location::parse(&format!("s3://{bucket}/{prefix}"))?;
    Ok(S3Store::new(location, Some(&moto_url()))?)
}

async fn conformance(store: Arc<dyn ObjectStore>) -> TestResult {
    let key = "corp=c/site=s/dt=2024-01-01/hour=00/_manifest.json";
    assert_eq!(store.get(key).await?, None);

    let first = store
        .put(key, Bytes::from_static(b"one"), PutCondition::CreateOnly)
        .await?;
    let PutOutcome::Written { etag } = first else {
        panic!("create-only on an absent key must write")
    };
    assert_eq!(
        store
            .put(key, Bytes::from_static(b"two"), PutCondition::CreateOnly)
            .await?,
        PutOutcome::PreconditionFailed
    );
    let stored = store.get(key).await?.ok_or("written object is missing")?;
    assert_eq!(
        (stored.body.as_ref(), stored.etag.as_str()),
        (&b"one"[..], etag.as_str())
    );

    let wrong = PutCondition::IfMatch("\"not-the-etag\"".to_string());
    assert_eq!(
        store.put(key, Bytes::from_static(b"three"), wrong).await?,
        PutOutcome::PreconditionFailed
    );
    let swapped = store
        .put(
            key,
            Bytes::from_static(b"four"),
            PutCondition::IfMatch(etag.clone()),
        )
        .await?;
    assert!(matches!(swapped, PutOutcome::Written { etag: ref new } if *new != etag));
    assert_eq!(
        store.get(key).await?.map(|o| o.body),
        Some(Bytes::from_static(b"four"))
    );
    let absent = PutCondition::IfMatch(etag);
    assert_eq!(
        store
            .put("corp=c/absent.json", Bytes::new(), absent)
            .await?,
        PutOutcome::PreconditionFailed
    );

    // Concurrent create-only writers: exactly one wins.
    let race_key = "corp=c/site=s/lease.json";
    let racers = (0..6).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .put(
                    race_key,
                    Bytes::from(format!("writer {i}")),
                    PutCondition::CreateOnly,
                )
                .await
        })
    });
    let mut winners = 0;
    for racer in racers {
        if matches!(racer.await??, PutOutcome::Written { .. }) {
            winners += 1;
        }
    }
    assert_eq!(winners, 1);

    // Streaming upload across more than one S3 part; nothing visible until finish.
    let big_key = "corp=c/site=s/dt=2024-01-01/hour=00/part-00000.ndjson.gz";
    // Chunks that straddle part boundaries, each with its own bytes, so the parts' order and
    // cut points show in the object.
    let chunks: Vec<Bytes> = (0..3u8)
        .map(|i| Bytes::from(vec![b'a' + i; 3 * 1024 * 1024 + 17]))
        .collect();
    let chunk = chunks[0].clone();
    let mut upload = store.upload(big_key).await?;
    for chunk in &chunks {
        upload.write(chunk.clone()).await?;
    }
    assert_eq!(
        store.get(big_key).await?,
        None,
        "an unfinished upload must not be visible"
    );
    let meta = upload.finish().await?;
    assert_eq!(meta.size, 3 * chunk.len() as u64);
    let body = store
        .get(big_key)
        .await?
        .ok_or("uploaded object is missing")?
        .body;
    assert!(
        body == chunks.concat(),
        "the object is not the chunks in order"
    );

    let aborted_key = "corp=c/site=s/dt=2024-01-01/hour=00/part-00030.ndjson.gz";
    let mut aborted = store.upload(aborted_key).await?;
    aborted.write(chunk.clone()).await?;
    aborted.abort().await?;
    assert_eq!(store.get(aborted_key).await?, None);

    let listed: Vec<String> = store
        .list("corp=c/site=s/")
        .await?
        .into_iter()
        .map(|m| m.key)
        .collect();
    assert_eq!(
        listed,
        vec![key.to_string(), big_key.to_string(), race_key.to_string()]
    );
    let hour: Vec<_> = store
        .list("corp=c/site=s/dt=2024-01-01/hour=00/part-")
        .await?;
    assert_eq!(hour.len(), 1);
    assert_eq!(hour[0].size, meta.size);
    assert!(store.list("corp=other/").await?.is_empty());

    store.delete(big_key).await?;
    store.delete(big_key).await?;
    assert_eq!(store.get(big_key).await?, None);
    assert!(matches!(
        store.get("../escape").await,
        Err(StorageError::InvalidKey { .. })
    ));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_store_conforms() -> TestResult {
    conformance(Arc::new(MemoryStore::new())).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_store_conforms_and_hides_its_bookkeeping() -> TestResult {
    let dir = tempfile::tempdir()?;
    conformance(Arc::new(LocalStore::new(dir.path()))).await?;
    // Lock and temp files live beside the objects but are never listed.
    let hour_dir = dir.path().join("corp=c/site=s/dt=2024-01-01/hour=00");
    let names: Vec<String> = std::fs::read_dir(&hour_dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names
            .iter()
            .all(|n| n == "_manifest.json" || (n.starts_with('.') && n.ends_with(".lock"))),
        "{names:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_store_conforms_on_moto() -> TestResult {
    conformance(Arc::new(moto_bucket("exports/feed").await?)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_missing_bucket_is_a_clear_error() -> TestResult {
    set_test_aws_env();
    let store = kit_storage::open("s3://no-such-bucket-here/feed", Some(&moto_url()))?;
    let error = store
        .get("corp=c/site=s/_ledger.json")
        .await
        .err()
        .ok_or("reading from a missing bucket must fail")?;
    assert!(
        matches!(error, StorageError::BucketMissing { ref bucket } if bucket == "no-such-bucket-here"),
        "{error}"
    );
    assert!(error.to_string().contains("no-such-bucket-here"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_manager_reads_credentials_on_moto() -> TestResult {
    let good = unique("sigsci/feed");
    let bad = unique("sigsci/bad");
    create_secret(&good, r#"{"email":"soc@example.com","token":"tok"}"#).await;
    create_secret(&bad, "not json").await;

    let secrets = SecretsManager::new(Some(&moto_url()));
    let credentials = secrets.api_credentials(&good).await?;
    assert_eq!(credentials.email, "soc@example.com");
    assert!(matches!(
        secrets.api_credentials(&bad).await,
        Err(StorageError::SecretMalformed { .. })
    ));
    let missing = secrets
        .api_credentials("sigsci/absent")
        .await
        .err()
        .ok_or("a missing secret must fail")?;
    assert!(
        matches!(missing, StorageError::SecretUnreadable { .. })
            && missing.to_string().contains("sigsci/absent"),
        "{missing}"
    );
    Ok(())
}

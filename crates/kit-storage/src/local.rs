use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use bytes::Bytes;

use crate::{
    ObjectMeta, ObjectStore, PutCondition, PutOutcome, Result, StorageError, StoredObject, Upload,
};
use crate::{content_etag, validate_key};

/// A directory laid out like the S3 bucket (`key` = relative path).
///
/// Writes go to a hidden temp file in the target directory and are renamed into place, so readers
/// never see a partial object. Conditional puts hold an advisory lock (`flock`) on a hidden
/// `.<name>.lock` file beside the object, which the kernel releases if the process dies and the
/// holder removes when done; the etag is the SHA-256 of the content. Names starting with `.` are
/// internal and never listed.
#[derive(Clone, Debug)]
pub struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    pub fn new(root: impl Into<PathBuf>) -> LocalStore {
        LocalStore { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, key: &str) -> Result<PathBuf> {
        validate_key(key)?;
        Ok(self.root.join(key))
    }
}

fn io_error<'a>(
    operation: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> StorageError + 'a {
    move |source| StorageError::Io {
        operation,
        path: path.to_path_buf(),
        source,
    }
}

/// `dir/.name.suffix-PID-N`: hidden, unique per process and call.
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let unique = if suffix == "lock" {
        String::new()
    } else {
        format!(
            "-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        )
    };
    path.with_file_name(format!(".{name}.{suffix}{unique}"))
}

fn ensure_parent(path: &Path) -> Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(io_error("create directory", parent))?;
    }
    Ok(())
}

fn read_object(path: &Path) -> Result<Option<StoredObject>> {
    match fs::read(path) {
        Ok(body) => {
            let etag = content_etag(&body);
            Ok(Some(StoredObject {
                body: Bytes::from(body),
                etag,
            }))
        }
        Err(error) if error.kind() == ErrorKind::NotFound => Ok(None),
        Err(error) => Err(io_error("read", path)(error)),
    }
}

fn write_temp(path: &Path, body: &[u8]) -> Result<PathBuf> {
    ensure_parent(path)?;
    let temp = sibling(path, "tmp");
    let mut file = File::create(&temp).map_err(io_error("create", &temp))?;
    file.write_all(body).map_err(io_error("write", &temp))?;
    file.sync_all().map_err(io_error("sync", &temp))?;
    Ok(temp)
}

fn put_blocking(path: &Path, body: &[u8], condition: &PutCondition) -> Result<PutOutcome> {
    let temp = write_temp(path, body)?;
    let outcome = commit(path, &temp, body, condition);
    if !matches!(outcome, Ok(PutOutcome::Written { .. })) {
        let _ = fs::remove_file(&temp);
    }
    outcome
}

fn commit(path: &Path, temp: &Path, body: &[u8], condition: &PutCondition) -> Result<PutOutcome> {
    let etag = content_etag(body);
    if *condition == PutCondition::Always {
        fs::rename(temp, path).map_err(io_error("rename into", path))?;
        return Ok(PutOutcome::Written { etag });
    }
    let lock_path = sibling(path, "lock");
    let lock = lock_file(&lock_path)?;
    let outcome = commit_locked(path, temp, condition, etag);
    // Removed while still held, so no lock file is left beside the object; a waiter on this one
    // sees it is gone and locks a fresh one. A failed removal only leaves a reusable lock file.
    let _ = fs::remove_file(&lock_path);
    // The lock is released when `lock` is dropped, after the rename is visible.
    drop(lock);
    outcome
}

/// Opens and locks the lock file at `lock_path`, retrying until the locked file is the one at the
/// path: its previous holder removes it, and a lock on a removed file excludes nobody.
fn lock_file(lock_path: &Path) -> Result<File> {
    use std::os::unix::fs::MetadataExt;
    loop {
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(lock_path)
            .map_err(io_error("open lock", lock_path))?;
        lock.lock().map_err(io_error("lock", lock_path))?;
        let held = lock.metadata().map_err(io_error("stat", lock_path))?;
        match fs::metadata(lock_path) {
            Ok(current) if (current.dev(), current.ino()) == (held.dev(), held.ino()) => {
                return Ok(lock);
            }
            Ok(_) => continue,
            Err(error) if error.kind() == ErrorKind::NotFound => continue,
            Err(error) => return Err(io_error("stat", lock_path)(error)),
        }
    }
}

fn commit_locked(
    path: &Path,
    temp: &Path,
    condition: &PutCondition,
    etag: String,
) -> Result<PutOutcome> {
    let current = read_object(path)?;
    let allowed = match (condition, &current) {
        (PutCondition::CreateOnly, None) => true,
        (PutCondition::IfMatch(expected), Some(current)) => &current.etag == expected,
        _ => false,
    };
    if !allowed {
        return Ok(PutOutcome::PreconditionFailed);
    }
    fs::rename(temp, path).map_err(io_error("rename into", path))?;
    Ok(PutOutcome::Written { etag })
}

fn list_blocking(root: &Path, prefix: &str) -> Result<Vec<ObjectMeta>> {
    let mut found = Vec::new();
    walk_prefix(root, prefix, |entry, key| {
        // Hidden names are the store's own (temp and lock files), never objects.
        if entry.file_name().to_string_lossy().starts_with('.') {
            return Ok(());
        }
        let size = entry
            .metadata()
            .map_err(io_error("stat", &entry.path()))?
            .len();
        found.push(ObjectMeta { key, size });
        Ok(())
    })?;
    found.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(found)
}

/// Removes the hidden temp files of dead processes and unheld lock files under `prefix`.
fn sweep_blocking(root: &Path, prefix: &str) -> Result<usize> {
    // Without /proc no process can be told dead, so nothing is removed.
    if !Path::new("/proc/self").exists() {
        return Ok(0);
    }
    let mut removed = 0;
    walk_prefix(root, prefix, |entry, _| {
        if remove_if_abandoned(&entry.path(), &entry.file_name().to_string_lossy())? {
            removed += 1;
        }
        Ok(())
    })?;
    Ok(removed)
}

/// Calls `visit` with every file whose key starts with `prefix`, hidden ones included, walking
/// only the directories that can hold such keys (below the deepest one the prefix names whole).
fn walk_prefix(
    root: &Path,
    prefix: &str,
    mut visit: impl FnMut(&fs::DirEntry, String) -> Result<()>,
) -> Result<()> {
    let base = match prefix.rfind('/') {
        Some(end) => &prefix[..end],
        None => "",
    };
    let mut pending = vec![(root.join(base), base.to_string())];
    while let Some((dir, key_prefix)) = pending.pop() {
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(error) if error.kind() == ErrorKind::NotFound => continue,
            Err(error) => return Err(io_error("list", &dir)(error)),
        };
        for entry in entries {
            let entry = entry.map_err(io_error("list", &dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let key = if key_prefix.is_empty() {
                name.clone()
            } else {
                format!("{key_prefix}/{name}")
            };
            let file_type = entry.file_type().map_err(io_error("stat", &entry.path()))?;
            if file_type.is_dir() {
                let wanted = key.starts_with(prefix) || prefix.starts_with(&format!("{key}/"));
                if wanted && !name.starts_with('.') {
                    pending.push((entry.path(), key));
                }
            } else if key.starts_with(prefix) {
                visit(&entry, key)?;
            }
        }
    }
    Ok(())
}

/// Removes a hidden file if it is a temp file of a process that no longer runs, or a lock file
/// no one holds (its holder died between taking and removing it); true when it did.
fn remove_if_abandoned(path: &Path, name: &str) -> Result<bool> {
    let Some(hidden) = name.strip_prefix('.') else {
        return Ok(false);
    };
    // Held while removing, as a lock's holder does, so a waiter never locks a removed file.
    let mut held_lock = None;
    if let Some((_, owner)) = hidden.rsplit_once(".tmp-") {
        let pid = owner.split('-').next().unwrap_or_default();
        let dead = pid.parse::<u32>().is_ok_and(|pid| {
            pid != std::process::id() && !Path::new("/proc").join(pid.to_string()).exists()
        });
        if !dead {
            return Ok(false);
        }
    } else if hidden.ends_with(".lock") {
        let Ok(file) = OpenOptions::new().write(true).open(path) else {
            return Ok(false);
        };
        // Held by someone: a live writer is committing.
        if file.try_lock().is_err() {
            return Ok(false);
        }
        held_lock = Some(file);
    } else {
        return Ok(false);
    }
    let outcome = match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(error) if error.kind() == ErrorKind::NotFound => Ok(false),
        Err(error) => Err(io_error("delete", path)(error)),
    };
    drop(held_lock);
    outcome
}

async fn blocking<T: Send + 'static>(
    job: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(job)
        .await
        .map_err(|join| StorageError::Io {
            operation: "run file operation",
            path: PathBuf::new(),
            source: std::io::Error::other(join.to_string()),
        })?
}

#[async_trait]
impl ObjectStore for LocalStore {
    async fn get(&self, key: &str) -> Result<Option<StoredObject>> {
        let path = self.path(key)?;
        blocking(move || read_object(&path)).await
    }

    async fn put(&self, key: &str, body: Bytes, condition: PutCondition) -> Result<PutOutcome> {
        let path = self.path(key)?;
        blocking(move || put_blocking(&path, &body, &condition)).await
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let path = self.path(key)?;
        blocking(move || match fs::remove_file(&path) {
            Err(error) if error.kind() != ErrorKind::NotFound => {
                Err(io_error("delete", &path)(error))
            }
            _ => Ok(()),
        })
        .await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        let root = self.root.clone();
        let prefix = prefix.to_string();
        blocking(move || list_blocking(&root, &prefix)).await
    }

    async fn sweep_incomplete(&self, prefix: &str) -> Result<usize> {
        let root = self.root.clone();
        let prefix = prefix.to_string();
        blocking(move || sweep_blocking(&root, &prefix)).await
    }

    async fn upload(&self, key: &str) -> Result<Box<dyn Upload>> {
        let path = self.path(key)?;
        let temp = sibling(&path, "tmp");
        let file = {
            let temp = temp.clone();
            let path = path.clone();
            blocking(move || {
                ensure_parent(&path)?;
                File::create(&temp).map_err(io_error("create", &temp))
            })
            .await?
        };
        Ok(Box::new(LocalUpload {
            key: key.to_string(),
            path,
            temp,
            file: Some(file),
            size: 0,
            settled: false,
        }))
    }

    fn location(&self) -> String {
        self.root.display().to_string()
    }
}

/// Chunks are written as they come, each on a blocking thread: they arrive in sizes worth a
/// write call, so no buffer (nor tokio's file buffer, which copies every chunk) stands between.
struct LocalUpload {
    key: String,
    path: PathBuf,
    temp: PathBuf,
    /// Out while a write or the finish holds it, and for good after a failed write.
    file: Option<File>,
    size: u64,
    /// Finished or aborted: nothing left to remove when dropped.
    settled: bool,
}

impl LocalUpload {
    fn take_file(&mut self) -> Result<File> {
        self.file.take().ok_or_else(|| StorageError::UploadClosed {
            key: self.key.clone(),
        })
    }
}

#[async_trait]
impl Upload for LocalUpload {
    async fn write(&mut self, chunk: Bytes) -> Result<()> {
        let mut file = self.take_file()?;
        let temp = self.temp.clone();
        let length = chunk.len() as u64;
        // A failed write leaves the file out, so the upload is closed; its temp file goes when
        // the upload is dropped, as after a cancelled write.
        self.file = Some(
            blocking(move || {
                file.write_all(&chunk).map_err(io_error("write", &temp))?;
                Ok(file)
            })
            .await?,
        );
        self.size += length;
        Ok(())
    }

    async fn finish(mut self: Box<Self>) -> Result<ObjectMeta> {
        let file = self.take_file()?;
        let (temp, path) = (self.temp.clone(), self.path.clone());
        blocking(move || {
            file.sync_all().map_err(io_error("sync", &temp))?;
            drop(file);
            fs::rename(&temp, &path).map_err(io_error("rename into", &path))
        })
        .await?;
        self.settled = true;
        Ok(ObjectMeta {
            key: self.key.clone(),
            size: self.size,
        })
    }

    async fn abort(mut self: Box<Self>) -> Result<()> {
        self.file.take();
        self.settled = true;
        match tokio::fs::remove_file(&self.temp).await {
            Err(error) if error.kind() != ErrorKind::NotFound => {
                Err(io_error("delete", &self.temp)(error))
            }
            _ => Ok(()),
        }
    }
}

impl Drop for LocalUpload {
    fn drop(&mut self) {
        // Dropped mid-way (cancelled or failed): do not leave the temp file behind.
        if !self.settled {
            let _ = fs::remove_file(&self.temp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sweep_removes_only_what_dead_or_finished_writers_left_under_the_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path());
        let hour = dir.path().join("site=a/hour=01");
        let other_hour = dir.path().join("site=a/hour=02");
        fs::create_dir_all(&hour).unwrap();
        fs::create_dir_all(&other_hour).unwrap();
        let file = |dir: &Path, name: &str| {
            let path = dir.join(name);
            fs::write(&path, b"x").unwrap();
            path
        };
        // No process has this id (above the kernel's pid_max).
        let dead = file(&hour, ".part-1.ndjson.gz.tmp-4294967295-3");
        let mine = file(
            &hour,
            &format!(".part-2.ndjson.gz.tmp-{}-0", std::process::id()),
        );
        let alive = file(&hour, ".part-3.ndjson.gz.tmp-1-0");
        let free_lock = file(&hour, "._manifest.json.lock");
        let held_lock = file(&hour, "._lease.json.lock");
        let holder = File::open(&held_lock).unwrap();
        holder.lock().unwrap();
        let visible = file(&hour, "part-4.ndjson.gz");
        let elsewhere = file(&other_hour, ".part-1.ndjson.gz.tmp-4294967295-3");

        assert_eq!(store.sweep_incomplete("site=a/hour=01/").await.unwrap(), 2);
        assert!(!dead.exists() && !free_lock.exists());
        for kept in [&mine, &alive, &held_lock, &visible, &elsewhere] {
            assert!(kept.exists(), "{} was removed", kept.display());
        }
        assert_eq!(store.sweep_incomplete("site=a/hour=01/").await.unwrap(), 0);
    }

    #[tokio::test]
    async fn an_upload_is_visible_only_when_finished_and_leaves_nothing_otherwise() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path());
        let entries = || {
            let hour = dir.path().join("site=a/hour=01");
            let mut names: Vec<String> = fs::read_dir(hour)
                .map(|entries| {
                    entries
                        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default();
            names.sort();
            names
        };

        let mut upload = store
            .upload("site=a/hour=01/part-1.ndjson.gz")
            .await
            .unwrap();
        upload.write(Bytes::from_static(b"one ")).await.unwrap();
        upload.write(Bytes::from_static(b"two")).await.unwrap();
        assert_eq!(
            entries().len(),
            1,
            "only the hidden temp file while writing"
        );
        assert!(entries()[0].starts_with(".part-1.ndjson.gz.tmp-"));
        let meta = upload.finish().await.unwrap();
        assert_eq!(meta.size, 7);
        assert_eq!(entries(), ["part-1.ndjson.gz"]);
        let stored = dir.path().join("site=a/hour=01/part-1.ndjson.gz");
        assert_eq!(fs::read(stored).unwrap(), b"one two");

        // Dropped mid-way (a cancelled window) or aborted: no temp file, no object.
        let mut dropped = store
            .upload("site=a/hour=01/part-2.ndjson.gz")
            .await
            .unwrap();
        dropped.write(Bytes::from_static(b"half")).await.unwrap();
        drop(dropped);
        let mut aborted = store
            .upload("site=a/hour=01/part-3.ndjson.gz")
            .await
            .unwrap();
        aborted.write(Bytes::from_static(b"half")).await.unwrap();
        aborted.abort().await.unwrap();
        assert_eq!(entries(), ["part-1.ndjson.gz"]);
    }

    #[test]
    fn temp_and_lock_names_are_hidden_siblings() {
        let path = Path::new("/d/hour=01/_manifest.json");
        let temp = sibling(path, "tmp");
        assert_eq!(temp.parent(), path.parent());
        assert!(
            temp.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("._manifest.json.tmp-"))
        );
        assert_eq!(
            sibling(path, "lock"),
            Path::new("/d/hour=01/._manifest.json.lock")
        );
    }
}

//! Blobs as files in a directory of this node: `<data_dir>/files/<id>`, written to a temp file,
//! synced and renamed, so a reader sees either no file or the whole file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;

use super::{BlobError, BlobStream};
use crate::report::Cause;

/// Names of temp files start with this. Ids can never start with it.
pub(super) const TMP_PREFIX: &str = ".tmp-";
/// Bytes a streamed read takes from the file at once.
const READ_CHUNK: usize = 1 << 16;
/// `check()` removes temp files older than this, which were left by a crash.
const STALE_TMP_AGE: Duration = Duration::from_secs(3600);

/// A directory of blobs.
pub(super) struct Dir {
    path: PathBuf,
}

impl Dir {
    /// Creates `<data_dir>/files/` if needed.
    pub(super) fn open(data_dir: &Path) -> Result<Dir, BlobError> {
        let path = data_dir.join("files");
        std::fs::create_dir_all(&path).map_err(|e| io_err("create directory", &path, e))?;
        Ok(Dir { path })
    }

    /// The directory is writable; stale temp files are removed.
    pub(super) async fn check(&self) -> Result<(), BlobError> {
        let dir = self.path.clone();
        blocking(move || check(&dir)).await
    }

    pub(super) async fn put(&self, id: &str, bytes: Bytes) -> Result<(), BlobError> {
        let (dir, id) = (self.path.clone(), id.to_owned());
        blocking(move || put(&dir, &id, &bytes)).await
    }

    /// Moves a finished spool file into place as blob `id` (the same file system: both are
    /// in the data directory).
    pub(super) async fn put_file(&self, id: &str, file: PathBuf) -> Result<(), BlobError> {
        let (dir, id) = (self.path.clone(), id.to_owned());
        blocking(move || {
            let dest = dir.join(&id);
            if let Err(e) = std::fs::rename(&file, &dest) {
                let _ = std::fs::remove_file(&file);
                return Err(io_err("rename to", &dest, e));
            }
            sync_dir(&dir)
        })
        .await
    }

    pub(super) async fn get(&self, id: &str) -> Result<Bytes, BlobError> {
        let path = self.path.join(id);
        blocking(move || match std::fs::read(&path) {
            Ok(v) => Ok(Bytes::from(v)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(BlobError::NotFound),
            Err(e) => Err(io_err("read", &path, e)),
        })
        .await
    }

    /// The blob's bytes as a stream of chunks of [`READ_CHUNK`].
    pub(super) async fn stream(&self, id: &str) -> Result<BlobStream, BlobError> {
        use tokio::io::AsyncReadExt;
        let path = self.path.join(id);
        let file = match tokio::fs::File::open(&path).await {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(BlobError::NotFound),
            Err(e) => return Err(io_err("open", &path, e)),
        };
        let chunks = futures_util::stream::unfold(Some((file, path)), |state| async move {
            let (mut file, path) = state?;
            let mut chunk = bytes::BytesMut::with_capacity(READ_CHUNK);
            match file.read_buf(&mut chunk).await {
                Ok(0) => None,
                Ok(_) => Some((Ok(chunk.freeze()), Some((file, path)))),
                Err(e) => Some((Err(io_err("read", &path, e)), None)),
            }
        });
        Ok(Box::pin(chunks))
    }

    pub(super) async fn delete(&self, id: &str) -> Result<(), BlobError> {
        let (dir, id) = (self.path.clone(), id.to_owned());
        blocking(move || delete(&dir, &id)).await
    }

    pub(super) fn describe(&self) -> String {
        format!("directory {}", self.path.display())
    }
}

pub(super) async fn blocking<T, F>(f: F) -> Result<T, BlobError>
where
    F: FnOnce() -> Result<T, BlobError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| BlobError::Io(Cause::context("file storage task failed", e)))?
}

pub(super) fn io_err(what: &str, path: &Path, e: std::io::Error) -> BlobError {
    BlobError::Io(Cause::context(format!("{what} {}", path.display()), e))
}

/// A temp file name in `dir` that no other writer, in this process or in
/// another one, is using.
fn temp_path(dir: &Path, tag: &str) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    dir.join(format!(
        "{TMP_PREFIX}{tag}-{}-{n}-{nanos}",
        std::process::id()
    ))
}

fn sync_dir(dir: &Path) -> Result<(), BlobError> {
    #[cfg(unix)]
    {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io_err("fsync directory", dir, e))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

fn put(dir: &Path, id: &str, bytes: &[u8]) -> Result<(), BlobError> {
    use std::io::Write;
    let tmp = temp_path(dir, id);
    let write = || -> Result<(), BlobError> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| io_err("create", &tmp, e))?;
        f.write_all(bytes).map_err(|e| io_err("write", &tmp, e))?;
        f.sync_all().map_err(|e| io_err("fsync", &tmp, e))?;
        drop(f);
        let dest = dir.join(id);
        std::fs::rename(&tmp, &dest).map_err(|e| io_err("rename to", &dest, e))
    };
    if let Err(e) = write() {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir(dir)
}

fn delete(dir: &Path, id: &str) -> Result<(), BlobError> {
    let path = dir.join(id);
    match std::fs::remove_file(&path) {
        Ok(()) => sync_dir(dir),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err("delete", &path, e)),
    }
}

fn check(dir: &Path) -> Result<(), BlobError> {
    use std::io::Write;
    let meta = std::fs::metadata(dir).map_err(|e| io_err("stat", dir, e))?;
    if !meta.is_dir() {
        let message = format!("{} is not a directory", dir.display());
        return Err(BlobError::Io(Cause::message(message)));
    }
    let probe = temp_path(dir, "check");
    let result = std::fs::File::create(&probe)
        .and_then(|mut f| f.write_all(b"ok").and_then(|()| f.sync_all()))
        .map_err(|e| io_err("directory is not writable: create", &probe, e));
    let _ = std::fs::remove_file(&probe);
    result?;

    remove_stale_temp_files(dir)
}

/// Removes the temp files in `dir` left behind by a crash. Only old ones, so that a put
/// running right now is never disturbed.
pub(super) fn remove_stale_temp_files(dir: &Path) -> Result<(), BlobError> {
    let mut removed = 0usize;
    let entries = std::fs::read_dir(dir).map_err(|e| io_err("list", dir, e))?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !name.to_string_lossy().starts_with(TMP_PREFIX) {
            continue;
        }
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > STALE_TMP_AGE);
        if old && std::fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    if removed > 0 {
        tracing::info!(dir = %dir.display(), removed, "removed stale temporary files");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::TMP_PREFIX;
    use crate::files::blobs::{BlobConfig, BlobError, Blobs};
    use bytes::Bytes;
    use std::time::Duration;

    const ID: &str = "0190f6c2-7a3b-7c1d-9e2f-0123456789ab";

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn local_readers_never_see_partial_files() {
        let dir = tempfile::tempdir().unwrap();
        let b = Blobs::open(&BlobConfig::Local, dir.path()).unwrap();
        const LEN: usize = 4 * 1024 * 1024;
        let versions = [Bytes::from(vec![b'a'; LEN]), Bytes::from(vec![b'b'; LEN])];

        let writer = {
            let b = b.clone();
            let versions = versions.clone();
            tokio::spawn(async move {
                for i in 0..40 {
                    b.put("atomic", versions[i % 2].clone()).await.unwrap();
                }
            })
        };
        let mut reads = 0;
        let mut not_found = 0;
        while !writer.is_finished() {
            match b.get("atomic").await {
                Ok(got) => {
                    reads += 1;
                    assert_eq!(got.len(), LEN, "partial file seen");
                    let first = got[0];
                    assert!(got.iter().all(|&c| c == first), "mixed content seen");
                }
                Err(BlobError::NotFound) => not_found += 1,
                Err(e) => panic!("{e}"),
            }
        }
        writer.await.unwrap();
        assert!(reads > 0, "reader never overlapped the writer");
        eprintln!("atomicity: {reads} complete reads, {not_found} not-yet-created, 0 partial");
        // Only the final file is in the directory.
        let names: Vec<_> = std::fs::read_dir(dir.path().join("files"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("atomic")]);
    }

    #[tokio::test]
    async fn local_temp_files_are_ignored_and_swept() {
        let dir = tempfile::tempdir().unwrap();
        let b = Blobs::open(&BlobConfig::Local, dir.path()).unwrap();
        let files = dir.path().join("files");
        // A crash left a partial temp file for ID behind.
        let stale = files.join(format!("{TMP_PREFIX}{ID}-1-0-0"));
        std::fs::write(&stale, b"partial").unwrap();
        let fresh = files.join(format!("{TMP_PREFIX}{ID}-2-0-0"));
        std::fs::write(&fresh, b"in progress").unwrap();
        let old = std::time::SystemTime::now() - Duration::from_secs(2 * 3600);
        std::fs::File::options()
            .write(true)
            .open(&stale)
            .unwrap()
            .set_modified(old)
            .unwrap();

        // It is not the blob, and cannot be read under its own name.
        assert!(matches!(b.get(ID).await, Err(BlobError::NotFound)));
        let stale_name = stale.file_name().unwrap().to_str().unwrap().to_string();
        assert!(matches!(
            b.get(&stale_name).await,
            Err(BlobError::InvalidId(_))
        ));
        // A put for the same id is unaffected by the leftover.
        b.put(ID, Bytes::from_static(b"whole")).await.unwrap();
        assert_eq!(&b.get(ID).await.unwrap()[..], b"whole");

        // check() removes the old leftover but not a temp file that may be in use.
        b.check().await.unwrap();
        assert!(!stale.exists());
        assert!(fresh.exists());
    }

    #[tokio::test]
    async fn local_check_reports_unwritable_dir() {
        let dir = tempfile::tempdir().unwrap();
        let b = Blobs::open(&BlobConfig::Local, dir.path()).unwrap();
        std::fs::remove_dir(dir.path().join("files")).unwrap();
        let err = b.check().await.unwrap_err();
        assert!(
            matches!(err, BlobError::Io(_)) && err.to_string().contains("files"),
            "{err}"
        );
        // Local open fails clearly when the data dir cannot hold the directory.
        let file = dir.path().join("plain-file");
        std::fs::write(&file, b"x").unwrap();
        let err = Blobs::open(&BlobConfig::Local, &file).unwrap_err();
        assert!(err.to_string().contains("plain-file"), "{err}");
    }
}

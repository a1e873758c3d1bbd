//! Uploads on their way in: written to a temporary file in `<data_dir>/uploads/` as they
//! stream, so an upload never sits in memory while it arrives and an upload over the limit
//! costs nothing but the bytes read before it was refused. [`Blobs::put_spooled`] then makes
//! the file a blob (a rename on local storage); a batch's inline body is read back from it
//! ([`Spool::into_chunks`]). A spool dropped before that is deleted; the temp files of a
//! crashed process are removed by [`Blobs::check`] at the next start.
//!
//! [`Blobs::put_spooled`]: super::Blobs::put_spooled
//! [`Blobs::check`]: super::Blobs::check

use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};
use futures_util::stream::{self, BoxStream};
use tempfile::TempPath;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};

use super::BlobError;
use super::local::{TMP_PREFIX, io_err};
use crate::report::Cause;

/// How much a spool gathers before it writes: a body arrives in chunks of a few KiB, and each
/// write to a `tokio::fs::File` is a trip to the blocking pool.
const WRITE_BUFFER: usize = 256 * 1024;
/// How much [`Spool::into_chunks`] reads at a time.
const READ_CHUNK: usize = 64 * 1024;

/// An upload being written to a temporary file.
pub struct Spool {
    file: BufWriter<tokio::fs::File>,
    path: TempPath,
    size: u64,
}

impl Spool {
    /// A new, empty temporary file in `dir`.
    pub(super) fn create(dir: &Path) -> Result<Self, BlobError> {
        let (file, path) = tempfile::Builder::new()
            .prefix(&format!("{TMP_PREFIX}upload-"))
            .tempfile_in(dir)
            .map_err(|e| io_err("create a temporary file in", dir, e))?
            .into_parts();
        Ok(Self {
            file: BufWriter::with_capacity(WRITE_BUFFER, tokio::fs::File::from_std(file)),
            path,
            size: 0,
        })
    }

    /// Appends `chunk`.
    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), BlobError> {
        self.file
            .write_all(chunk)
            .await
            .map_err(|e| io_err("write", &self.path, e))?;
        self.size += chunk.len() as u64;
        Ok(())
    }

    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Everything written, read back (to look at the file's contents).
    pub async fn read(&mut self) -> Result<Bytes, BlobError> {
        self.file
            .flush()
            .await
            .map_err(|e| io_err("write", &self.path, e))?;
        tokio::fs::read(&self.path)
            .await
            .map(Bytes::from)
            .map_err(|e| io_err("read", &self.path, e))
    }

    /// Everything written, read back as a stream of chunks; the file is deleted once the
    /// stream is dropped.
    pub async fn into_chunks(
        mut self,
    ) -> Result<BoxStream<'static, Result<Bytes, BlobError>>, BlobError> {
        self.file
            .flush()
            .await
            .map_err(|e| io_err("write", &self.path, e))?;
        let file = tokio::fs::File::open(&self.path)
            .await
            .map_err(|e| io_err("open", &self.path, e))?;
        let chunks = stream::unfold((file, self.path), |(mut file, path)| async move {
            let mut chunk = BytesMut::with_capacity(READ_CHUNK);
            match file.read_buf(&mut chunk).await {
                Ok(0) => None,
                Ok(_) => Some((Ok(chunk.freeze()), (file, path))),
                Err(e) => Some((Err(io_err("read", &path, e)), (file, path))),
            }
        });
        Ok(Box::pin(chunks))
    }

    /// Makes the file durable and answers its path, which is no longer deleted on drop.
    pub(super) async fn finish(mut self) -> Result<PathBuf, BlobError> {
        let sync = async {
            self.file.flush().await?;
            self.file.get_ref().sync_all().await
        };
        sync.await.map_err(|e| io_err("fsync", &self.path, e))?;
        drop(self.file);
        self.path
            .keep()
            .map_err(|e| BlobError::Io(Cause::context("keep a temporary file", e)))
    }
}

/// Creates `<data_dir>/uploads/` if needed.
pub(super) fn open_dir(data_dir: &Path) -> Result<PathBuf, BlobError> {
    let dir = data_dir.join("uploads");
    std::fs::create_dir_all(&dir).map_err(|e| io_err("create directory", &dir, e))?;
    Ok(dir)
}

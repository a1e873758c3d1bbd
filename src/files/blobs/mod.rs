//! Storage for the bytes of uploaded files (`crate::files::blobs`).
//!
//! File bytes never live in the database. On a single node they are files in
//! `<data_dir>/files/`; in a cluster they are objects in an S3-compatible
//! store so that every node can read every file. Either way a blob is named by
//! the file id chosen by the caller (a UUID string), never by the user's file
//! name, and ids are checked to be plain `[A-Za-z0-9-]+` before they are used
//! to build a path or a key.
//!
//! # Configuration
//!
//! The `[file_storage]` table of the server config deserializes into [`BlobConfig`],
//! an internally tagged enum keyed by `kind`. When the table is absent use
//! `BlobConfig::default()`, which is `Local`.
//!
//! ```toml
//! [file_storage]
//! kind = "local"          # bytes in <data_dir>/files/
//! ```
//!
//! ```toml
//! [file_storage]
//! kind = "s3"
//! bucket = "scriptorium"
//! endpoint = "http://minio:9000"   # optional; omit for AWS
//! region = "us-east-1"             # optional; else AWS_REGION / AWS_DEFAULT_REGION, else us-east-1
//! access_key_id = "..."            # optional; else AWS_ACCESS_KEY_ID
//! secret_access_key = "..."        # optional; else AWS_SECRET_ACCESS_KEY
//! prefix = "files/"                # optional key prefix, default "files/"
//! allow_http = true                # required for an http:// endpoint
//! ```
//!
//! For S3, anything not set in the table is taken from the standard `AWS_*`
//! environment variables (object_store's `AmazonS3Builder::from_env`), so
//! `AWS_ENDPOINT_URL`, `AWS_SESSION_TOKEN`, web identity and container
//! credentials also work. Values in the table win over the environment. If no
//! credentials are found anywhere, object_store falls back to the EC2 instance
//! metadata service. Requests always use path-style URLs
//! (`endpoint/bucket/key`), which every S3 emulator understands.
//!
//! # Local layout and atomicity
//!
//! `put` writes `<dir>/.tmp-<id>-<unique>`, fsyncs it, renames it to
//! `<dir>/<id>`, then fsyncs the directory. Readers see either no file or the
//! whole file, never a partial one. Ids cannot start with `.`, so a temp file
//! left behind by a crash can never be read as a blob. `check()` removes temp
//! files older than an hour.
//!
//! # Errors
//!
//! `get` returns [`BlobError::NotFound`] when S3 answers 404, which it does
//! both for a missing key and for a missing bucket; run [`Blobs::check`] at
//! startup to rule out the second. Any other failure is `Store` (S3) or `Io`
//! (local): the operation and the location, with the error that stopped it as the
//! source (show it with [`Chain`](crate::report::Chain)).

mod local;
mod s3;
mod spool;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
pub use spool::Spool;

use crate::report::Cause;

/// A blob's bytes, chunk by chunk ([`Blobs::stream`]).
pub type BlobStream = futures_util::stream::BoxStream<'static, Result<Bytes, BlobError>>;

/// Longest id accepted. UUIDs are 36 characters, and this stays far below
/// file name limits.
const MAX_ID_LEN: usize = 128;

/// Where file bytes live: the `[file_storage]` table of the server config.
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum BlobConfig {
    /// Files in `<data_dir>/files/` on this node.
    #[default]
    Local,
    /// Objects in an S3-compatible bucket that every node of a cluster shares.
    S3(S3Config),
}

/// S3-compatible object store settings. `Debug` never prints the secret key.
#[derive(Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    /// The bucket's name.
    pub bucket: String,
    /// Such as `http://127.0.0.1:9000` for MinIO or an emulator. `None` means AWS.
    pub endpoint: Option<String>,
    /// Default: `AWS_REGION` / `AWS_DEFAULT_REGION`, else `us-east-1`.
    pub region: Option<String>,
    /// Default: `AWS_ACCESS_KEY_ID`.
    pub access_key_id: Option<String>,
    /// Default: `AWS_SECRET_ACCESS_KEY`.
    pub secret_access_key: Option<String>,
    /// Key prefix. Default `files/`. Use `""` for the bucket root.
    pub prefix: Option<String>,
    /// Allow a plain `http://` endpoint. Default false.
    #[serde(default)]
    pub allow_http: bool,
}

impl fmt::Debug for S3Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Config")
            .field("bucket", &self.bucket)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "<redacted>"),
            )
            .field("prefix", &self.prefix)
            .field("allow_http", &self.allow_http)
            .finish()
    }
}

/// Why a blob could not be stored, read or deleted, or the storage not opened.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// No blob with this id.
    #[error("file content not found")]
    NotFound,
    /// The id is not a plain `[A-Za-z0-9-]+` string of at most 128 characters.
    #[error("invalid file id {0:?}: only ASCII letters, digits and '-' are allowed")]
    InvalidId(String),
    /// Bad configuration, found at `open`.
    #[error("file storage config: {0}")]
    Config(#[source] Cause),
    /// Local disk I/O failed. The cause says which operation and which path.
    #[error("file storage I/O: {0}")]
    Io(#[source] Cause),
    /// The object store failed or could not be reached. The cause says which
    /// operation and which bucket/key.
    #[error("object store: {0}")]
    Store(#[source] Cause),
}

/// Storage for file bytes. Cloning is cheap; clones share one client.
#[derive(Clone)]
pub struct Blobs {
    inner: Arc<Inner>,
    /// Where uploads are spooled: `<data_dir>/uploads/`.
    spool_dir: Arc<PathBuf>,
}

enum Inner {
    Local(local::Dir),
    S3(s3::Bucket),
}

impl fmt::Debug for Blobs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Blobs").field(&self.describe()).finish()
    }
}

impl Blobs {
    /// Local: creates `<data_dir>/files/`. S3: builds the client. There is no
    /// network call; use [`Blobs::check`] for that.
    pub fn open(config: &BlobConfig, data_dir: &Path) -> Result<Blobs, BlobError> {
        let inner = match config {
            BlobConfig::Local => Inner::Local(local::Dir::open(data_dir)?),
            BlobConfig::S3(s3) => Inner::S3(s3::Bucket::open(s3)?),
        };
        Ok(Blobs {
            inner: Arc::new(inner),
            spool_dir: Arc::new(spool::open_dir(data_dir)?),
        })
    }

    /// A quick check to run at startup so the server fails with a clear
    /// message. Local: the directory is writable, and stale temp files are
    /// removed. S3: the bucket can be listed, with one request, no retries and
    /// a 10 s timeout.
    pub async fn check(&self) -> Result<(), BlobError> {
        let spool_dir = self.spool_dir.clone();
        local::blocking(move || local::remove_stale_temp_files(&spool_dir)).await?;
        match &*self.inner {
            Inner::Local(dir) => dir.check().await,
            Inner::S3(bucket) => bucket.check().await,
        }
    }

    /// Stores `bytes` under `id`, replacing any blob with that id. Once this
    /// returns Ok, the blob is durable, and no reader ever sees part of it.
    pub async fn put(&self, id: &str, bytes: Bytes) -> Result<(), BlobError> {
        check_id(id)?;
        match &*self.inner {
            Inner::Local(dir) => dir.put(id, bytes).await,
            Inner::S3(bucket) => bucket.put(id, bytes).await,
        }
    }

    /// A temporary file for an upload to stream into (see [`spool`]).
    pub fn spool(&self) -> Result<Spool, BlobError> {
        Spool::create(&self.spool_dir)
    }

    /// Stores a spooled upload under `id`, as [`Blobs::put`] does; `bytes` are its contents,
    /// already read (an object store sends them; a directory renames the spool file).
    pub async fn put_spooled(&self, id: &str, spool: Spool, bytes: Bytes) -> Result<(), BlobError> {
        check_id(id)?;
        match &*self.inner {
            Inner::Local(dir) => dir.put_file(id, spool.finish().await?).await,
            Inner::S3(bucket) => bucket.put(id, bytes).await,
        }
    }

    /// Returns the blob's bytes, or [`BlobError::NotFound`].
    pub async fn get(&self, id: &str) -> Result<Bytes, BlobError> {
        check_id(id)?;
        match &*self.inner {
            Inner::Local(dir) => dir.get(id).await,
            Inner::S3(bucket) => bucket.get(id).await,
        }
    }

    /// Returns the blob's bytes as a stream of chunks, or [`BlobError::NotFound`]: a blob of
    /// any size is read without holding it in memory.
    pub async fn stream(&self, id: &str) -> Result<BlobStream, BlobError> {
        check_id(id)?;
        match &*self.inner {
            Inner::Local(dir) => dir.stream(id).await,
            Inner::S3(bucket) => bucket.stream(id).await,
        }
    }

    /// Removes the blob. Deleting a blob that does not exist is Ok.
    pub async fn delete(&self, id: &str) -> Result<(), BlobError> {
        check_id(id)?;
        match &*self.inner {
            Inner::Local(dir) => dir.delete(id).await,
            Inner::S3(bucket) => bucket.delete(id).await,
        }
    }

    /// For the startup log: `directory /x/files` or
    /// `s3://bucket/files/ at http://endpoint` or `s3://bucket/files/ (AWS, region us-east-1)`.
    pub fn describe(&self) -> String {
        match &*self.inner {
            Inner::Local(dir) => dir.describe(),
            Inner::S3(bucket) => bucket.describe(),
        }
    }
}

/// Accepts only `[A-Za-z0-9-]{1,128}`: no separators, no dots, nothing that
/// could climb out of the directory or the key prefix.
fn check_id(id: &str) -> Result<(), BlobError> {
    let ok = !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(BlobError::InvalidId(id.chars().take(MAX_ID_LEN).collect()))
    }
}

#[cfg(test)]
mod tests {
    //! Config parsing. Each kind's own guarantees are tested in `local.rs` and `s3.rs`; the
    //! behaviour both share, and everything against a real S3 server, in tests/api/blobs.rs.
    use super::*;

    #[test]
    fn config_from_toml() {
        #[derive(serde::Deserialize)]
        struct Server {
            #[serde(default)]
            file_storage: BlobConfig,
        }
        let s: Server = toml::from_str("").unwrap();
        assert!(matches!(s.file_storage, BlobConfig::Local));
        let s: Server = toml::from_str("[file_storage]\nkind = \"local\"\n").unwrap();
        assert!(matches!(s.file_storage, BlobConfig::Local));

        let s: Server = toml::from_str(
            "[file_storage]\nkind = \"s3\"\nbucket = \"b\"\nendpoint = \"http://h:9000\"\n\
             secret_access_key = \"hunter2\"\naccess_key_id = \"AKIA\"\nallow_http = true\n",
        )
        .unwrap();
        let BlobConfig::S3(c) = &s.file_storage else {
            panic!("not s3")
        };
        assert_eq!(c.bucket, "b");
        assert_eq!(c.endpoint.as_deref(), Some("http://h:9000"));
        assert!(c.allow_http && c.region.is_none() && c.prefix.is_none());

        // The secret never shows in Debug output, of the config or of anything holding it.
        let dbg = format!("{:?} {:#?}", s.file_storage, c);
        assert!(!dbg.contains("hunter2"), "{dbg}");
        assert!(dbg.contains("<redacted>") && dbg.contains("AKIA"), "{dbg}");

        // Typos are errors, not silently ignored.
        let err = toml::from_str::<Server>(
            "[file_storage]\nkind = \"s3\"\nbucket = \"b\"\nacess_key_id = \"x\"\n",
        )
        .err()
        .expect("unknown field rejected");
        assert!(err.to_string().contains("acess_key_id"), "{err}");
        assert!(toml::from_str::<Server>("[file_storage]\nkind = \"ftp\"\n").is_err());
        assert!(
            toml::from_str::<Server>("[file_storage]\nkind = \"s3\"\n").is_err(),
            "bucket is required"
        );
    }
}

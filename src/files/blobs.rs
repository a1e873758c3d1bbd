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
//! (local) with the operation, the location and the cause in the message.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path as ObjectPath;
use object_store::{ClientConfigKey, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig};

/// Longest id accepted. UUIDs are 36 characters, and this stays far below
/// file name limits.
const MAX_ID_LEN: usize = 128;
/// Names of local temp files start with this. Ids can never start with it.
const TMP_PREFIX: &str = ".tmp-";
/// `check()` removes local temp files older than this, which were left by a crash.
const STALE_TMP_AGE: Duration = Duration::from_secs(3600);
const DEFAULT_REGION: &str = "us-east-1";
const DEFAULT_PREFIX: &str = "files/";

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
    Config(String),
    /// Local disk I/O failed. The message says which operation and which path.
    #[error("file storage I/O: {0}")]
    Io(String),
    /// The object store failed or could not be reached. The message says which
    /// operation and which bucket/key.
    #[error("object store: {0}")]
    Store(String),
}

/// Storage for file bytes. Cloning is cheap; clones share one client.
#[derive(Clone)]
pub struct Blobs {
    inner: Arc<Inner>,
}

enum Inner {
    Local {
        dir: PathBuf,
    },
    S3 {
        store: AmazonS3,
        /// Same settings, but no retries and short timeouts, so that `check()`
        /// fails fast when the endpoint is unreachable.
        probe: AmazonS3,
        bucket: String,
        prefix: ObjectPath,
        description: String,
    },
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
            BlobConfig::Local => {
                let dir = data_dir.join("files");
                std::fs::create_dir_all(&dir).map_err(|e| {
                    BlobError::Io(format!("create directory {}: {e}", dir.display()))
                })?;
                Inner::Local { dir }
            }
            BlobConfig::S3(s3) => open_s3(s3)?,
        };
        Ok(Blobs {
            inner: Arc::new(inner),
        })
    }

    /// A quick check to run at startup so the server fails with a clear
    /// message. Local: the directory is writable, and stale temp files are
    /// removed. S3: the bucket can be listed, with one request, no retries and
    /// a 10 s timeout.
    pub async fn check(&self) -> Result<(), BlobError> {
        match &*self.inner {
            Inner::Local { dir } => {
                let dir = dir.clone();
                blocking(move || local_check(&dir)).await
            }
            Inner::S3 {
                probe,
                bucket,
                prefix,
                description,
                ..
            } => {
                let prefix = (!prefix.as_ref().is_empty()).then_some(prefix);
                let first = probe.list(prefix).next().await;
                match first {
                    None | Some(Ok(_)) => Ok(()),
                    Some(Err(e)) => Err(BlobError::Store(format!(
                        "cannot list bucket {bucket:?} ({description}): {}",
                        explain_store_error(&e)
                    ))),
                }
            }
        }
    }

    /// Stores `bytes` under `id`, replacing any blob with that id. Once this
    /// returns Ok, the blob is durable, and no reader ever sees part of it.
    pub async fn put(&self, id: &str, bytes: Bytes) -> Result<(), BlobError> {
        check_id(id)?;
        match &*self.inner {
            Inner::Local { dir } => {
                let dir = dir.clone();
                let id = id.to_owned();
                blocking(move || local_put(&dir, &id, &bytes)).await
            }
            Inner::S3 {
                store,
                bucket,
                prefix,
                ..
            } => {
                let key = prefix.clone().join(id);
                store
                    .put(&key, PutPayload::from(bytes))
                    .await
                    .map(|_| ())
                    .map_err(|e| store_error("put", bucket, &key, e))
            }
        }
    }

    /// Returns the blob's bytes, or [`BlobError::NotFound`].
    pub async fn get(&self, id: &str) -> Result<Bytes, BlobError> {
        check_id(id)?;
        match &*self.inner {
            Inner::Local { dir } => {
                let path = dir.join(id);
                blocking(move || match std::fs::read(&path) {
                    Ok(v) => Ok(Bytes::from(v)),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(BlobError::NotFound),
                    Err(e) => Err(BlobError::Io(format!("read {}: {e}", path.display()))),
                })
                .await
            }
            Inner::S3 {
                store,
                bucket,
                prefix,
                ..
            } => {
                let key = prefix.clone().join(id);
                let result = store
                    .get(&key)
                    .await
                    .map_err(|e| store_error("get", bucket, &key, e))?;
                result
                    .bytes()
                    .await
                    .map_err(|e| store_error("get", bucket, &key, e))
            }
        }
    }

    /// Removes the blob. Deleting a blob that does not exist is Ok.
    pub async fn delete(&self, id: &str) -> Result<(), BlobError> {
        check_id(id)?;
        match &*self.inner {
            Inner::Local { dir } => {
                let dir = dir.clone();
                let id = id.to_owned();
                blocking(move || local_delete(&dir, &id)).await
            }
            Inner::S3 {
                store,
                bucket,
                prefix,
                ..
            } => {
                let key = prefix.clone().join(id);
                match store.delete(&key).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                    Err(e) => Err(store_error("delete", bucket, &key, e)),
                }
            }
        }
    }

    /// For the startup log: `directory /x/files` or
    /// `s3://bucket/files/ at http://endpoint` or `s3://bucket/files/ (AWS, region us-east-1)`.
    pub fn describe(&self) -> String {
        match &*self.inner {
            Inner::Local { dir } => format!("directory {}", dir.display()),
            Inner::S3 { description, .. } => description.clone(),
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

async fn blocking<T, F>(f: F) -> Result<T, BlobError>
where
    F: FnOnce() -> Result<T, BlobError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| BlobError::Io(format!("file storage task failed: {e}")))?
}

// ---------------------------------------------------------------- local disk

fn io_err(what: &str, path: &Path, e: std::io::Error) -> BlobError {
    BlobError::Io(format!("{what} {}: {e}", path.display()))
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

fn local_put(dir: &Path, id: &str, bytes: &[u8]) -> Result<(), BlobError> {
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

fn local_delete(dir: &Path, id: &str) -> Result<(), BlobError> {
    let path = dir.join(id);
    match std::fs::remove_file(&path) {
        Ok(()) => sync_dir(dir),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err("delete", &path, e)),
    }
}

fn local_check(dir: &Path) -> Result<(), BlobError> {
    use std::io::Write;
    let meta = std::fs::metadata(dir).map_err(|e| io_err("stat", dir, e))?;
    if !meta.is_dir() {
        return Err(BlobError::Io(format!(
            "{} is not a directory",
            dir.display()
        )));
    }
    let probe = temp_path(dir, "check");
    let result = std::fs::File::create(&probe)
        .and_then(|mut f| f.write_all(b"ok").and_then(|()| f.sync_all()))
        .map_err(|e| io_err("directory is not writable: create", &probe, e));
    let _ = std::fs::remove_file(&probe);
    result?;

    // Remove temp files left behind by a crash. Only old ones, so that a put
    // running right now is never disturbed.
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

// ---------------------------------------------------------------- S3

fn open_s3(cfg: &S3Config) -> Result<Inner, BlobError> {
    if cfg.bucket.trim().is_empty() {
        return Err(BlobError::Config(
            "[file_storage] kind = \"s3\" needs a bucket".into(),
        ));
    }
    let prefix_str = cfg
        .prefix
        .as_deref()
        .unwrap_or(DEFAULT_PREFIX)
        .trim_matches('/');
    let prefix = ObjectPath::parse(prefix_str)
        .map_err(|e| BlobError::Config(format!("invalid S3 prefix {prefix_str:?}: {e}")))?;

    let mut b = AmazonS3Builder::from_env()
        .with_bucket_name(&cfg.bucket)
        .with_virtual_hosted_style_request(false)
        // The default 30 s limit for a whole request is too short for a large
        // upload on a slow link.
        .with_config(AmazonS3ConfigKey::Client(ClientConfigKey::Timeout), "300s");
    if let Some(endpoint) = &cfg.endpoint {
        b = b.with_endpoint(endpoint.trim_end_matches('/'));
    }
    match &cfg.region {
        Some(r) => b = b.with_region(r),
        None if b.get_config_value(&AmazonS3ConfigKey::Region).is_none() => {
            b = b.with_region(DEFAULT_REGION)
        }
        None => {}
    }
    if let Some(k) = &cfg.access_key_id {
        b = b.with_access_key_id(k);
    }
    if let Some(s) = &cfg.secret_access_key {
        b = b.with_secret_access_key(s);
    }
    if cfg.allow_http {
        b = b.with_allow_http(true);
    }
    let has_key_id = b
        .get_config_value(&AmazonS3ConfigKey::AccessKeyId)
        .is_some();
    let has_secret = b
        .get_config_value(&AmazonS3ConfigKey::SecretAccessKey)
        .is_some();
    if has_key_id != has_secret {
        return Err(BlobError::Config(
            "S3 access_key_id and secret_access_key must be set together \
             (in [file_storage] or as AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)"
                .into(),
        ));
    }

    let endpoint = b.get_config_value(&AmazonS3ConfigKey::Endpoint);
    let region = b
        .get_config_value(&AmazonS3ConfigKey::Region)
        .unwrap_or_else(|| DEFAULT_REGION.into());
    let allow_http = b
        .get_config_value(&AmazonS3ConfigKey::Client(ClientConfigKey::AllowHttp))
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    if let Some(ep) = &endpoint
        && ep.starts_with("http://")
        && !allow_http
    {
        return Err(BlobError::Config(format!(
            "S3 endpoint {ep} is plain HTTP: set allow_http = true in [file_storage] to permit it"
        )));
    }

    let shown_prefix = if prefix_str.is_empty() {
        String::new()
    } else {
        format!("{prefix_str}/")
    };
    let description = match &endpoint {
        Some(ep) => format!("s3://{}/{shown_prefix} at {ep}", cfg.bucket),
        None => format!("s3://{}/{shown_prefix} (AWS, region {region})", cfg.bucket),
    };

    let probe_retry = RetryConfig {
        max_retries: 0,
        retry_timeout: Duration::from_secs(10),
        ..Default::default()
    };
    let probe = b
        .clone()
        .with_retry(probe_retry)
        .with_config(AmazonS3ConfigKey::Client(ClientConfigKey::Timeout), "10s")
        .with_config(
            AmazonS3ConfigKey::Client(ClientConfigKey::ConnectTimeout),
            "5s",
        )
        .build()
        .map_err(|e| BlobError::Config(format!("S3 client for {description}: {e}")))?;
    let store = b
        .build()
        .map_err(|e| BlobError::Config(format!("S3 client for {description}: {e}")))?;

    Ok(Inner::S3 {
        store,
        probe,
        bucket: cfg.bucket.clone(),
        prefix,
        description,
    })
}

fn store_error(op: &str, bucket: &str, key: &ObjectPath, e: object_store::Error) -> BlobError {
    match e {
        // Only a read can mean "no such blob". A 404 on put is a missing bucket.
        object_store::Error::NotFound { .. } if op == "get" => BlobError::NotFound,
        e => BlobError::Store(format!(
            "{op} s3://{bucket}/{key}: {}",
            explain_store_error(&e)
        )),
    }
}

/// One line for the log: the S3 error code and message first when the server
/// sent them, then object_store's description of the failed request with its
/// causes (such as "connection refused").
fn explain_store_error(e: &object_store::Error) -> String {
    let mut detail = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let s_msg = s.to_string();
        if !detail.contains(&s_msg) {
            detail.push_str(": ");
            detail.push_str(&s_msg);
        }
        source = s.source();
    }
    let detail = detail.split_whitespace().collect::<Vec<_>>().join(" ");
    let tag = |name: &str| {
        let open = format!("<{name}>");
        let start = detail.find(&open)? + open.len();
        let len = detail[start..].find(&format!("</{name}>"))?;
        Some(detail[start..start + len].to_string())
    };
    match tag("Code") {
        Some(code) => {
            let hint = match code.as_str() {
                "NoSuchBucket" => {
                    " (the bucket does not exist: create it or fix `bucket` in [file_storage])"
                }
                "AccessDenied" | "InvalidAccessKeyId" | "SignatureDoesNotMatch" => {
                    " (check the credentials and the region)"
                }
                _ => "",
            };
            let message = tag("Message").unwrap_or_default();
            format!("{code}: {message}{hint}; {detail}")
        }
        None => detail,
    }
}

#[cfg(test)]
mod tests {
    //! Config parsing and the local directory's own guarantees. The behaviour shared by both
    //! kinds, and everything against a real S3 server, is tested in tests/api/blobs.rs.
    use super::*;

    const ID: &str = "0190f6c2-7a3b-7c1d-9e2f-0123456789ab";

    // ------------------------------------------------------------ config

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

    #[test]
    fn s3_open_validates_without_network() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = |endpoint: Option<&str>, allow_http: bool, prefix: Option<&str>| {
            BlobConfig::S3(S3Config {
                bucket: "bkt".into(),
                endpoint: endpoint.map(Into::into),
                region: Some("eu-west-1".into()),
                access_key_id: Some("id".into()),
                secret_access_key: Some("secret".into()),
                prefix: prefix.map(Into::into),
                allow_http,
            })
        };
        let b = Blobs::open(&cfg(Some("http://127.0.0.1:1/"), true, None), dir.path()).unwrap();
        assert_eq!(b.describe(), "s3://bkt/files/ at http://127.0.0.1:1");
        let b = Blobs::open(
            &cfg(Some("http://127.0.0.1:1"), true, Some("/tenant/a/")),
            dir.path(),
        )
        .unwrap();
        assert_eq!(b.describe(), "s3://bkt/tenant/a/ at http://127.0.0.1:1");
        let b = Blobs::open(&cfg(Some("http://127.0.0.1:1"), true, Some("")), dir.path()).unwrap();
        assert_eq!(b.describe(), "s3://bkt/ at http://127.0.0.1:1");
        let b = Blobs::open(&cfg(None, false, None), dir.path()).unwrap();
        assert_eq!(b.describe(), "s3://bkt/files/ (AWS, region eu-west-1)");
        assert!(!format!("{b:?}").contains("secret"));

        let err =
            Blobs::open(&cfg(Some("http://127.0.0.1:1"), false, None), dir.path()).unwrap_err();
        assert!(
            matches!(err, BlobError::Config(_)) && err.to_string().contains("allow_http"),
            "{err}"
        );
        let err = Blobs::open(&cfg(None, false, Some("a/../b")), dir.path()).unwrap_err();
        assert!(matches!(err, BlobError::Config(_)), "{err}");
        let mut c = cfg(None, false, None);
        if let BlobConfig::S3(s) = &mut c {
            s.bucket = " ".into();
        }
        assert!(matches!(
            Blobs::open(&c, dir.path()),
            Err(BlobError::Config(_))
        ));
        // Nothing was created for S3.
        assert!(!dir.path().join("files").exists());
    }

    #[tokio::test]
    async fn s3_check_reports_an_unreachable_endpoint() {
        // A port nothing listens on: connection refused.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = tempfile::tempdir().unwrap();
        let cfg = BlobConfig::S3(S3Config {
            bucket: "bkt".into(),
            endpoint: Some(format!("http://127.0.0.1:{port}")),
            region: None,
            access_key_id: Some("id".into()),
            secret_access_key: Some("secret".into()),
            prefix: None,
            allow_http: true,
        });
        let b = Blobs::open(&cfg, dir.path()).unwrap();
        let err = b.check().await.unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("bkt") && msg.contains(&format!("127.0.0.1:{port}")),
            "{msg}"
        );
    }

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

//! Blobs as objects in an S3-compatible bucket (object_store), shared by every node of a
//! cluster: the object key is the configured prefix and the id.

use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path as ObjectPath;
use object_store::{ClientConfigKey, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig};

use super::{BlobError, BlobStream, S3Config};
use crate::report::{Cause, Chain};

const DEFAULT_REGION: &str = "us-east-1";
const DEFAULT_PREFIX: &str = "files/";

/// A bucket (and key prefix) of blobs.
pub(super) struct Bucket {
    store: AmazonS3,
    /// Same settings, but no retries and short timeouts, so that `check()`
    /// fails fast when the endpoint is unreachable.
    probe: AmazonS3,
    bucket: String,
    prefix: ObjectPath,
    description: String,
}

impl Bucket {
    /// Builds the clients from `cfg` and the `AWS_*` environment; no network call.
    pub(super) fn open(cfg: &S3Config) -> Result<Bucket, BlobError> {
        if cfg.bucket.trim().is_empty() {
            return Err(BlobError::Config(Cause::message(
                "[file_storage] kind = \"s3\" needs a bucket",
            )));
        }
        let prefix_str = cfg
            .prefix
            .as_deref()
            .unwrap_or(DEFAULT_PREFIX)
            .trim_matches('/');
        let prefix = ObjectPath::parse(prefix_str).map_err(|e| {
            BlobError::Config(Cause::context(
                format!("invalid S3 prefix {prefix_str:?}"),
                e,
            ))
        })?;

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
            return Err(BlobError::Config(Cause::message(
                "S3 access_key_id and secret_access_key must be set together \
                 (in [file_storage] or as AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)",
            )));
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
            return Err(BlobError::Config(Cause::message(format!(
                "S3 endpoint {ep} is plain HTTP: set allow_http = true in [file_storage] to permit it"
            ))));
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
        let client_error =
            |e| BlobError::Config(Cause::context(format!("S3 client for {description}"), e));
        let probe = b
            .clone()
            .with_retry(probe_retry)
            .with_config(AmazonS3ConfigKey::Client(ClientConfigKey::Timeout), "10s")
            .with_config(
                AmazonS3ConfigKey::Client(ClientConfigKey::ConnectTimeout),
                "5s",
            )
            .build()
            .map_err(client_error)?;
        let store = b.build().map_err(client_error)?;

        Ok(Bucket {
            store,
            probe,
            bucket: cfg.bucket.clone(),
            prefix,
            description,
        })
    }

    /// The bucket can be listed: one request, no retries, a 10 s timeout.
    pub(super) async fn check(&self) -> Result<(), BlobError> {
        let prefix = (!self.prefix.as_ref().is_empty()).then_some(&self.prefix);
        match self.probe.list(prefix).next().await {
            None | Some(Ok(_)) => Ok(()),
            Some(Err(e)) => {
                let listing = format!(
                    "cannot list bucket {:?} ({})",
                    self.bucket, self.description
                );
                Err(BlobError::Store(Cause::context(
                    with_answer(listing, &e),
                    e,
                )))
            }
        }
    }

    pub(super) async fn put(&self, id: &str, bytes: Bytes) -> Result<(), BlobError> {
        let key = self.key(id);
        self.store
            .put(&key, PutPayload::from(bytes))
            .await
            .map(|_| ())
            .map_err(|e| self.error("put", &key, e))
    }

    pub(super) async fn get(&self, id: &str) -> Result<Bytes, BlobError> {
        let key = self.key(id);
        let result = self
            .store
            .get(&key)
            .await
            .map_err(|e| self.error("get", &key, e))?;
        result.bytes().await.map_err(|e| self.error("get", &key, e))
    }

    /// The blob's bytes as the stream of chunks the object store answers with.
    pub(super) async fn stream(&self, id: &str) -> Result<BlobStream, BlobError> {
        let key = self.key(id);
        let result = self
            .store
            .get(&key)
            .await
            .map_err(|e| self.error("get", &key, e))?;
        let (bucket, at) = (self.bucket.clone(), key.to_string());
        Ok(Box::pin(result.into_stream().map(move |chunk| {
            chunk.map_err(|e| {
                let request = format!("get s3://{bucket}/{at}");
                BlobError::Store(Cause::context(with_answer(request, &e), e))
            })
        })))
    }

    pub(super) async fn delete(&self, id: &str) -> Result<(), BlobError> {
        let key = self.key(id);
        match self.store.delete(&key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.error("delete", &key, e)),
        }
    }

    pub(super) fn describe(&self) -> String {
        self.description.clone()
    }

    fn key(&self, id: &str) -> ObjectPath {
        self.prefix.clone().join(id)
    }

    fn error(&self, op: &str, key: &ObjectPath, e: object_store::Error) -> BlobError {
        match e {
            // Only a read can mean "no such blob". A 404 on put is a missing bucket.
            object_store::Error::NotFound { .. } if op == "get" => BlobError::NotFound,
            e => {
                let request = format!("{op} s3://{}/{key}", self.bucket);
                BlobError::Store(Cause::context(with_answer(request, &e), e))
            }
        }
    }
}

/// `context`, then the S3 error code and message when the server sent them, with a hint for
/// the usual mistakes: one line that says what went wrong, ahead of the error's own text
/// (long, and spanning lines when it holds the XML body of an S3 answer).
fn with_answer(context: String, e: &object_store::Error) -> String {
    let detail = Chain(e).to_string();
    let detail = detail.split_whitespace().collect::<Vec<_>>().join(" ");
    let tag = |name: &str| {
        let open = format!("<{name}>");
        let start = detail.find(&open)? + open.len();
        let len = detail[start..].find(&format!("</{name}>"))?;
        Some(detail[start..start + len].to_string())
    };
    let Some(code) = tag("Code") else {
        return context;
    };
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
    format!("{context}: {code}: {message}{hint}")
}

#[cfg(test)]
mod tests {
    use crate::files::blobs::{BlobConfig, BlobError, Blobs, S3Config};

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
}

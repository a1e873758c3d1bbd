//! Blob storage, the same contract in both kinds: a directory, and a real S3-compatible server
//! (moto's `moto_server`, from `pip install 'moto[server]'`), which these tests start
//! themselves. Also the whole server with its files in S3.

use std::path::Path;

use bytes::Bytes;
use scriptorium::config::ServeOptions;
use scriptorium::files::blobs::{BlobConfig, BlobError, Blobs};
use serde_json::json;

use crate::helpers::{fixture_file, spawn_with};
use crate::pg::Schema;

use moto::MotoServer;

const ID: &str = "0190f6c2-7a3b-7c1d-9e2f-0123456789ab";

fn pattern(len: usize, seed: u8) -> Bytes {
    Bytes::from(
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect::<Vec<u8>>(),
    )
}

/// The behaviour every backend must have.
async fn contract(b: &Blobs) {
    b.check().await.expect("check");

    // Round trips: small, 5 MB, empty.
    for (id, data) in [
        ("small-1", Bytes::from_static(b"hello, world")),
        ("big-5mb", pattern(5 * 1024 * 1024, 7)),
        ("empty-0", Bytes::new()),
    ] {
        b.put(id, data.clone()).await.expect("put");
        let got = b.get(id).await.expect("get");
        assert_eq!(got.len(), data.len(), "{id} length");
        assert!(got == data, "{id} content differs");
    }

    // Overwrite replaces.
    b.put("small-1", Bytes::from_static(b"second"))
        .await
        .unwrap();
    assert_eq!(&b.get("small-1").await.unwrap()[..], b"second");

    // Missing id.
    assert!(matches!(b.get(ID).await, Err(BlobError::NotFound)));

    // Delete, then NotFound; deleting twice and deleting a never-stored id are Ok.
    b.delete("small-1").await.expect("delete");
    assert!(matches!(b.get("small-1").await, Err(BlobError::NotFound)));
    b.delete("small-1").await.expect("second delete");
    b.delete(ID).await.expect("delete of absent id");

    // Bad ids are rejected by every operation, before any I/O.
    for bad in [
        "",
        "../etc/passwd",
        "a/b",
        "a.b",
        ".tmp-x",
        "a b",
        "é",
        "a\0b",
        "..",
        &"x".repeat(129),
    ] {
        assert!(
            matches!(b.put(bad, Bytes::new()).await, Err(BlobError::InvalidId(_))),
            "put {bad:?}"
        );
        assert!(
            matches!(b.get(bad).await, Err(BlobError::InvalidId(_))),
            "get {bad:?}"
        );
        assert!(
            matches!(b.delete(bad).await, Err(BlobError::InvalidId(_))),
            "delete {bad:?}"
        );
    }
    b.put(&"x".repeat(128), Bytes::from_static(b"max"))
        .await
        .expect("128-char id");

    // Clones share the store.
    let c = b.clone();
    c.put(ID, Bytes::from_static(b"via clone")).await.unwrap();
    assert_eq!(&b.get(ID).await.unwrap()[..], b"via clone");
}

#[tokio::test]
async fn local_contract() {
    let dir = tempfile::tempdir().unwrap();
    let b = Blobs::open(&BlobConfig::Local, dir.path()).unwrap();
    let files = dir.path().join("files");
    assert!(files.is_dir());
    assert_eq!(b.describe(), format!("directory {}", files.display()));
    contract(&b).await;

    // The file on disk is named by the id and holds exactly the bytes.
    b.put(ID, Bytes::from_static(b"on disk")).await.unwrap();
    assert_eq!(std::fs::read(files.join(ID)).unwrap(), b"on disk");
    // No temp files are left behind, and nothing else is in the directory.
    let mut names: Vec<String> = std::fs::read_dir(&files)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut want = vec![
        ID.to_string(),
        "big-5mb".into(),
        "empty-0".into(),
        "x".repeat(128),
    ];
    want.sort();
    assert_eq!(names, want);
    // Nothing escaped the directory.
    let mut outside: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    outside.sort();
    assert_eq!(outside, ["files", "uploads"].map(std::ffi::OsString::from));
    b.delete(ID).await.unwrap();
    assert!(!files.join(ID).exists());
}

// ------------------------------------------------------------ S3 (moto)

#[tokio::test]
async fn s3_contract() {
    let Some(moto) = MotoServer::start_or_skip() else {
        return;
    };
    moto.create_bucket("contract");
    let b = Blobs::open(&moto.config("contract", None), Path::new("/nonexistent")).unwrap();
    assert_eq!(
        b.describe(),
        format!("s3://contract/files/ at {}", moto.endpoint())
    );
    contract(&b).await;

    // The object is named prefix + id, and holds exactly the bytes.
    b.put(ID, Bytes::from_static(b"in bucket")).await.unwrap();
    let (status, body) = moto
        .request("GET", &format!("/contract/files/{ID}"), b"")
        .unwrap();
    assert_eq!((status, &body[..]), (200, &b"in bucket"[..]));
    b.delete(ID).await.unwrap();
    let (status, _) = moto
        .request("GET", &format!("/contract/files/{ID}"), b"")
        .unwrap();
    assert_eq!(status, 404);
}

#[tokio::test]
async fn s3_custom_prefix() {
    let Some(moto) = MotoServer::start_or_skip() else {
        return;
    };
    moto.create_bucket("prefixed");
    let b = Blobs::open(
        &moto.config("prefixed", Some("tenant-a/blobs/")),
        Path::new("."),
    )
    .unwrap();
    b.check().await.unwrap();
    b.put(ID, Bytes::from_static(b"x")).await.unwrap();
    let (status, _) = moto
        .request("GET", &format!("/prefixed/tenant-a/blobs/{ID}"), b"")
        .unwrap();
    assert_eq!(status, 200);
    let root = Blobs::open(&moto.config("prefixed", Some("")), Path::new(".")).unwrap();
    root.put(ID, Bytes::from_static(b"y")).await.unwrap();
    let (status, body) = moto
        .request("GET", &format!("/prefixed/{ID}"), b"")
        .unwrap();
    assert_eq!((status, &body[..]), (200, &b"y"[..]));
    assert_eq!(
        &b.get(ID).await.unwrap()[..],
        b"x",
        "prefixes keep stores apart"
    );
}

#[tokio::test]
async fn s3_two_nodes_share_a_bucket() {
    let Some(moto) = MotoServer::start_or_skip() else {
        return;
    };
    moto.create_bucket("cluster");
    // Two independent clients, as on two nodes with the same config.
    let node1 = Blobs::open(&moto.config("cluster", None), Path::new("/node1")).unwrap();
    let node2 = Blobs::open(&moto.config("cluster", None), Path::new("/node2")).unwrap();
    node1.check().await.unwrap();
    node2.check().await.unwrap();

    node1
        .put(ID, Bytes::from_static(b"written on node 1"))
        .await
        .unwrap();
    assert_eq!(&node2.get(ID).await.unwrap()[..], b"written on node 1");
    node2.put("other", pattern(1024 * 1024, 3)).await.unwrap();
    assert_eq!(node1.get("other").await.unwrap(), pattern(1024 * 1024, 3));
    node2.delete(ID).await.unwrap();
    assert!(matches!(node1.get(ID).await, Err(BlobError::NotFound)));
}

#[tokio::test]
async fn s3_check_reports_missing_bucket() {
    let Some(moto) = MotoServer::start_or_skip() else {
        return;
    };
    let b = Blobs::open(&moto.config("no-such-bucket", None), Path::new(".")).unwrap();
    let err = b.check().await.unwrap_err();
    let msg = err.to_string();
    eprintln!("check error: {msg}");
    assert!(matches!(err, BlobError::Store(_)), "{err:?}");
    assert!(
        msg.contains("no-such-bucket") && msg.contains(&moto.endpoint()),
        "{msg}"
    );
    assert!(
        msg.contains(
            "NoSuchBucket: The specified bucket does not exist (the bucket does not exist"
        ),
        "{msg}"
    );
    assert!(!msg.contains('\n'), "one line: {msg}");
    // A put into the missing bucket is a Store error, not NotFound. (A get
    // is NotFound: S3 answers 404 both for a missing key and a missing
    // bucket, which is why the server runs check() at startup.)
    let err = b.put(ID, Bytes::from_static(b"x")).await.unwrap_err();
    assert!(matches!(err, BlobError::Store(_)), "{err:?}");
}

/// The whole server with its files in S3: upload, download, a job that reads a document
/// and an image, and delete, with the bytes checked in the bucket itself.
#[tokio::test]
async fn a_server_keeps_its_files_in_s3() {
    let Some(moto) = MotoServer::start_or_skip() else {
        return;
    };
    moto.create_bucket("server");
    let app = spawn_with(ServeOptions {
        file_storage: Some(moto.config("server", None)),
        ..ServeOptions::default()
    })
    .await;
    let png = fixture_file("dot.png");
    let image = app.upload_fixture("dot.png").await;
    let doc = app.upload_fixture("notes.txt").await;
    assert_eq!(
        (&image["status"], &doc["status"]),
        (&json!("completed"), &json!("completed"))
    );
    let (image_id, doc_id) = (image["id"].as_str().unwrap(), doc["id"].as_str().unwrap());
    let (status, body) = moto
        .request("GET", &format!("/server/files/{image_id}"), b"")
        .unwrap();
    assert_eq!(
        (status, body),
        (200, png.clone()),
        "the bytes are in the bucket, named by id"
    );
    assert!(
        !app.data_dir().join("files").join(image_id).exists(),
        "and not on disk"
    );

    let response = app
        .get(&format!("/v1/files/{image_id}/download"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.bytes().await.unwrap().as_ref(), png.as_slice());
    let job = app
        .create_job(
            "uploads",
            &[("Contract", &[doc_id]), ("Picture", &[image_id])],
        )
        .await;
    let done = app.wait_finished(job["id"].as_str().unwrap()).await;
    let text = done["data"]["suggestion"].as_str().unwrap();
    assert!(
        text.contains("ship the beta") && text.contains("[image image/png"),
        "{text}"
    );

    app.delete(&format!("/v1/files/{image_id}"))
        .send()
        .await
        .unwrap();
    let (status, _) = moto
        .request("GET", &format!("/server/files/{image_id}"), b"")
        .unwrap();
    assert_eq!(status, 404, "deleting the file deletes its object");
}

/// Two nodes on one PostgreSQL database and one bucket: a file uploaded to one is read,
/// downloaded and used by jobs on the other.
#[tokio::test]
async fn two_nodes_share_files_through_the_bucket() {
    let Some(schema) = Schema::create().await else {
        return;
    };
    let Some(moto) = MotoServer::start_or_skip() else {
        return;
    };
    moto.create_bucket("cluster-files");
    let node = |who: &str| {
        spawn_with(ServeOptions {
            database_url: Some(schema.url(who)),
            file_storage: Some(moto.config("cluster-files", None)),
            ..ServeOptions::default()
        })
    };
    let (one, two) = (node("one").await, node("two").await);
    let uploaded = one.upload_fixture("report.pdf").await;
    let id = uploaded["id"].as_str().unwrap();
    let seen = two.wait_processed(id).await;
    assert_eq!(seen["status"], "completed", "{seen}");
    let response = two
        .get(&format!("/v1/files/{id}/download"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.bytes().await.unwrap().as_ref(),
        fixture_file("report.pdf").as_slice()
    );
    let job = two.create_job("uploads", &[("Contract", &[id])]).await;
    let done = two.wait_finished(job["id"].as_str().unwrap()).await;
    let text = done["data"]["suggestion"].as_str().unwrap();
    assert!(text.contains("Quarterly revenue grew"), "{text}");
}

pub mod moto {
    // A real S3-compatible server for tests: moto's `moto_server`, from
    //! `pip install 'moto[server]'`. Each [`MotoServer`] is a child process on
    //! its own free port, killed when dropped.
    //!
    //! When `moto_server` is not installed, [`MotoServer::start_or_skip`]
    //! prints a notice and returns None, unless `SCRIPTORIUM_REQUIRE_S3=1`, in
    //! which case it panics (`.ci/run` sets it). `SCRIPTORIUM_MOTO_SERVER` can name the command
    //! (default `moto_server`).

    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::path::PathBuf;
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    use scriptorium::files::blobs::{BlobConfig, S3Config};

    pub struct MotoServer {
        child: Child,
        pub port: u16,
        log: PathBuf,
    }

    enum StartError {
        NotInstalled(String),
        Failed(String),
    }

    impl MotoServer {
        /// Starts moto, or returns None (after printing why) when moto is not
        /// installed and S3 is not required.
        pub fn start_or_skip() -> Option<MotoServer> {
            let mut last = String::new();
            // Retry in case another process took the free port before moto bound it.
            for _ in 0..3 {
                match Self::try_start() {
                    Ok(s) => return Some(s),
                    Err(StartError::NotInstalled(why)) => {
                        if std::env::var("SCRIPTORIUM_REQUIRE_S3").as_deref() == Ok("1") {
                            panic!("SCRIPTORIUM_REQUIRE_S3=1 but moto_server cannot run: {why}");
                        }
                        // Straight to stderr, past the test harness's capture, so
                        // the skip is visible in a normal `cargo test` run.
                        let _ = writeln!(
                            std::io::stderr(),
                            "skipping: moto_server not found; pip install 'moto[server]' ({why})"
                        );
                        return None;
                    }
                    Err(StartError::Failed(why)) => last = why,
                }
            }
            panic!("moto_server did not start: {last}");
        }

        fn try_start() -> Result<MotoServer, StartError> {
            let cmd =
                std::env::var("SCRIPTORIUM_MOTO_SERVER").unwrap_or_else(|_| "moto_server".into());
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map_err(|e| StartError::Failed(format!("no free port: {e}")))?
                .port();
            let log = std::env::temp_dir().join(format!("moto-{}-{port}.log", std::process::id()));
            let log_file = std::fs::File::create(&log)
                .map_err(|e| StartError::Failed(format!("create {}: {e}", log.display())))?;
            let log_err = log_file
                .try_clone()
                .map_err(|e| StartError::Failed(e.to_string()))?;
            let child = Command::new(&cmd)
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdin(Stdio::null())
                .stdout(log_file)
                .stderr(log_err)
                .spawn();
            let child = match child {
                Ok(c) => c,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    let _ = std::fs::remove_file(&log);
                    return Err(StartError::NotInstalled(format!("{cmd}: {e}")));
                }
                Err(e) => return Err(StartError::Failed(format!("spawn {cmd}: {e}"))),
            };
            let mut server = MotoServer { child, port, log };
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                if let Ok(Some(status)) = server.child.try_wait() {
                    let out = server.log_text();
                    // 127: a shell or pyenv shim found no such command.
                    return Err(if status.code() == Some(127) {
                        StartError::NotInstalled(out.trim().to_string())
                    } else {
                        StartError::Failed(format!("exited with {status}: {out}"))
                    });
                }
                if server.request("GET", "/", b"").is_ok() {
                    return Ok(server);
                }
                if Instant::now() > deadline {
                    return Err(StartError::Failed(format!(
                        "no answer after 60 s: {}",
                        server.log_text()
                    )));
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }

        fn log_text(&self) -> String {
            std::fs::read_to_string(&self.log).unwrap_or_default()
        }

        pub fn endpoint(&self) -> String {
            format!("http://127.0.0.1:{}", self.port)
        }

        /// One plain HTTP/1.1 request; returns (status, body). moto does not
        /// check signatures, but treats a request without an Authorization
        /// header as anonymous (403 on private objects), so a dummy one is sent.
        pub fn request(
            &self,
            method: &str,
            path: &str,
            body: &[u8],
        ) -> std::io::Result<(u16, Vec<u8>)> {
            let mut s = TcpStream::connect(("127.0.0.1", self.port))?;
            s.set_read_timeout(Some(Duration::from_secs(30)))?;
            let head = format!(
                "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n\
                 Authorization: AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/s3/aws4_request, \
                 SignedHeaders=host, Signature=0\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                self.port,
                body.len()
            );
            s.write_all(head.as_bytes())?;
            s.write_all(body)?;
            let mut raw = Vec::new();
            s.read_to_end(&mut raw)?;
            let split = raw
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .ok_or_else(|| std::io::Error::other("no HTTP header end"))?;
            let head = String::from_utf8_lossy(&raw[..split]);
            let status = head
                .split_whitespace()
                .nth(1)
                .and_then(|c| c.parse().ok())
                .ok_or_else(|| std::io::Error::other(format!("bad status line: {head}")))?;
            Ok((status, raw[split + 4..].to_vec()))
        }

        pub fn create_bucket(&self, bucket: &str) {
            let (status, body) = self
                .request("PUT", &format!("/{bucket}"), b"")
                .expect("PUT bucket");
            assert_eq!(
                status,
                200,
                "create bucket {bucket}: {}",
                String::from_utf8_lossy(&body)
            );
        }

        /// A config for this server with static test credentials.
        pub fn config(&self, bucket: &str, prefix: Option<&str>) -> BlobConfig {
            BlobConfig::S3(S3Config {
                bucket: bucket.into(),
                endpoint: Some(self.endpoint()),
                region: Some("us-east-1".into()),
                access_key_id: Some("testing".into()),
                secret_access_key: Some("testing".into()),
                prefix: prefix.map(Into::into),
                allow_http: true,
            })
        }
    }

    impl Drop for MotoServer {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
            let _ = std::fs::remove_file(&self.log);
        }
    }
}

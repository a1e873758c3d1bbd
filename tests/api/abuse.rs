//! Poison and abuse, as an outsider would try them: unstorable text, overflowing numbers and
//! very long values sent to every route (a 4xx in Writer's shape each time, never a 500, on
//! whichever backend the API tests run on); slow and idle clients (closed by the server's
//! timeouts while others are served); requests hyper refuses before routing (still Writer's
//! shape); and a chunked upload over the limit (refused while it streams, never held in
//! memory).

use std::time::Duration;

use scriptorium::config::ServeOptions;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{KEY, TestApp, spawn_app, spawn_with};
use crate::process::Serve;

/// How long a test waits for the server to close a connection before calling it a hang.
const HANG: Duration = Duration::from_secs(30);

/// One malformed request: method, path with query, and a JSON body (raw bytes) if any.
struct Case {
    method: &'static str,
    path: String,
    body: Option<Vec<u8>>,
}

fn case(method: &'static str, path: impl Into<String>) -> Case {
    Case {
        method,
        path: path.into(),
        body: None,
    }
}

fn with_body(method: &'static str, path: impl Into<String>, body: impl Into<Vec<u8>>) -> Case {
    Case {
        method,
        path: path.into(),
        body: Some(body.into()),
    }
}

/// Values no id, cursor or query parameter accepts: NUL, invalid UTF-8 (percent-encoded, as
/// HTTP carries them), and a very long value.
fn bad_values() -> Vec<String> {
    vec![
        "%00".into(),
        "a%00b".into(),
        "%FF%FE".into(),
        "%C3%28".into(),
        "x".repeat(20_000),
    ]
}

/// JSON bodies holding NUL, invalid UTF-8, and numbers no field can take.
fn bad_bodies(field: &str) -> Vec<Vec<u8>> {
    let mut invalid_utf8 = format!(r#"{{"{field}": ["abc"#).into_bytes();
    invalid_utf8.extend_from_slice(&[0xff, 0xfe]);
    invalid_utf8.extend_from_slice(b"\"]}");
    vec![
        format!(r#"{{"{field}": ["a\u0000b"]}}"#).into_bytes(),
        invalid_utf8,
        format!(r#"{{"{field}": 1e999}}"#).into_bytes(),
        format!(r#"{{"{field}": 18446744073709551616}}"#).into_bytes(),
        br#"{"inputs": [{"id": "Text", "value": ["\u0000"]}]}"#.to_vec(),
        br#"{"inputs": [{"id": "Text\u0000", "value": ["x"]}]}"#.to_vec(),
        br#"{"inputs": [{"id": "Text", "value": ["\ud800"]}]}"#.to_vec(),
        br#"{"inputs": 99999999999999999999}"#.to_vec(),
    ]
}

/// Every route, with bad ids, cursors, query values and bodies.
fn matrix() -> Vec<Case> {
    let mut cases = Vec::new();
    for v in bad_values() {
        cases.push(case("GET", format!("/v1/applications/jobs/{v}")));
        cases.push(case("POST", format!("/v1/applications/jobs/{v}/retry")));
        cases.push(case("GET", format!("/v1/files/{v}")));
        cases.push(case("DELETE", format!("/v1/files/{v}")));
        cases.push(case("GET", format!("/v1/files/{v}/download")));
        cases.push(case("GET", format!("/v1/applications/{v}")));
        cases.push(with_body(
            "POST",
            format!("/v1/applications/{v}"),
            br#"{"inputs": []}"#.to_vec(),
        ));
        cases.push(case("GET", format!("/v1/applications/{v}/jobs")));
        cases.push(with_body(
            "POST",
            format!("/v1/applications/{v}/jobs"),
            br#"{"inputs": []}"#.to_vec(),
        ));
        cases.push(case("GET", format!("/v1/applications/{v}/graphs")));
        for param in [
            "after",
            "before",
            "graph_id",
            "status",
            "file_types",
            "order",
        ] {
            cases.push(case("GET", format!("/v1/files?{param}={v}")));
        }
        for param in ["after", "before", "order"] {
            cases.push(case("GET", format!("/v1/applications?{param}={v}")));
        }
        for param in ["status", "offset", "limit"] {
            cases.push(case(
                "GET",
                format!("/v1/applications/echo/jobs?{param}={v}"),
            ));
        }
        cases.push(with_body(
            "POST",
            format!("/v1/files?graphId={v}"),
            b"hello".to_vec(),
        ));
        if v.len() < 100 {
            // A route without parameters ignores a long one, but not unstorable text.
            cases.push(case("GET", format!("/v1/scriptorium/providers?x={v}")));
        }
    }
    for number in [
        "18446744073709551616",
        "-1",
        "1e3",
        "99999999999999999999999",
    ] {
        cases.push(case(
            "GET",
            format!("/v1/applications/echo/jobs?offset={number}"),
        ));
        cases.push(case(
            "GET",
            format!("/v1/applications/echo/jobs?limit={number}"),
        ));
        cases.push(case("GET", format!("/v1/files?limit={number}")));
        cases.push(case("GET", format!("/v1/applications?limit={number}")));
    }
    for body in bad_bodies("file_ids") {
        cases.push(with_body("POST", "/v1/files/retry", body));
    }
    for body in bad_bodies("graph_ids") {
        cases.push(with_body("PUT", "/v1/applications/echo/graphs", body));
    }
    for body in bad_bodies("inputs") {
        cases.push(with_body(
            "POST",
            "/v1/applications/echo/jobs",
            body.clone(),
        ));
        cases.push(with_body("POST", "/v1/applications/echo", body));
    }
    // A long value where a field has a limit, and one over the body limit.
    let long = "y".repeat(2 << 20);
    cases.push(with_body(
        "POST",
        "/v1/applications/echo/jobs",
        json!({"inputs": [{"id": "Text", "value": [long]}]}).to_string(),
    ));
    cases
}

/// Sends a case and answers its status and JSON body.
async fn send(app: &TestApp, case: &Case) -> (u16, Value) {
    let url = format!("{}{}", app.base, case.path);
    let method = reqwest::Method::from_bytes(case.method.as_bytes()).unwrap();
    let mut request = app.client.request(method, &url).bearer_auth(KEY);
    if let Some(body) = &case.body {
        let content_type = if case.path.starts_with("/v1/files?") {
            "text/plain"
        } else {
            "application/json"
        };
        request = request
            .header("content-type", content_type)
            .header("content-disposition", "attachment; filename=\"a.txt\"")
            .body(body.clone());
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or_else(|_| json!({"not json": text}));
    (status, body)
}

#[tokio::test]
async fn every_route_answers_bad_input_with_a_writer_error_never_a_500() {
    let app = spawn_app().await;
    let cases = matrix();
    let mut wrong = Vec::new();
    for case in &cases {
        let (status, body) = send(&app, case).await;
        let shaped = body["tpe"].is_string()
            && body["errors"][0]["key"].is_string()
            && body["errors"][0]["description"].is_string()
            && body["extras"].is_object();
        if !(400..500).contains(&status) || !shaped {
            let path: String = case.path.chars().take(120).collect();
            wrong.push(format!("{} {path}: {status} {body}", case.method));
        }
    }
    println!("bad-input matrix: {} cases sent", cases.len());
    assert!(
        wrong.is_empty(),
        "{} of {} cases were not a 4xx in Writer's shape:\n{}",
        wrong.len(),
        cases.len(),
        wrong.join("\n")
    );
    // Nothing of it was stored: the application still has no jobs.
    let page: Value = app
        .get("/v1/applications/echo/jobs")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["totalCount"], 0, "{page}");
}

#[tokio::test]
async fn an_offset_beyond_what_a_store_can_count_is_past_the_end_on_every_backend() {
    let app = spawn_app().await;
    app.create_job("echo", &[("Text", &["one"])]).await;
    for offset in ["9223372036854775807", "18446744073709551615"] {
        let page: Value = app
            .get(&format!("/v1/applications/echo/jobs?offset={offset}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(page["result"], json!([]), "{offset}: {page}");
        assert_eq!(page["totalCount"], 1);
        assert_eq!(
            page["pagination"]["offset"],
            i64::MAX,
            "clamped to the largest offset"
        );
    }
}

/// Opens a connection and sends `bytes` without finishing the request.
async fn open(app: &TestApp, bytes: &[u8]) -> TcpStream {
    let address = app.base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    stream
}

/// Reads until the server closes the connection; answers what it sent.
async fn read_until_closed(stream: &mut TcpStream) -> String {
    let mut answer = Vec::new();
    tokio::time::timeout(HANG, stream.read_to_end(&mut answer))
        .await
        .expect("the server never closed the connection")
        .unwrap_or_default();
    String::from_utf8_lossy(&answer).into_owned()
}

fn timeouts(header: u64, idle: u64, body: u64) -> ServeOptions {
    ServeOptions {
        header_timeout: Some(Duration::from_millis(header)),
        idle_timeout: Some(Duration::from_millis(idle)),
        body_timeout: Some(Duration::from_millis(body)),
        ..ServeOptions::default()
    }
}

#[tokio::test]
async fn slowloris_connections_are_closed_while_other_clients_are_served() {
    let app = spawn_with(timeouts(500, 60_000, 60_000)).await;
    let mut slow = Vec::new();
    for _ in 0..50 {
        slow.push(open(&app, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ").await);
    }
    // Opened and never sent a byte: owes its head just the same.
    slow.push(open(&app, b"").await);
    let ok = app.get("/v1/applications").send().await.unwrap();
    assert_eq!(ok.status(), 200, "others are served meanwhile");
    for stream in &mut slow {
        assert_eq!(
            read_until_closed(stream).await,
            "",
            "closed without an answer"
        );
    }
    let ok = app.get("/v1/applications").send().await.unwrap();
    assert_eq!(ok.status(), 200);
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout_only() {
    // The head timeout is short and the idle timeout long: a connection idle after a request
    // outlives the head timeout, then is closed by the idle one.
    let app = spawn_with(timeouts(200, 5_000, 60_000)).await;
    let mut stream = open(&app, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let mut first = [0u8; 512];
    let n = stream.read(&mut first).await.unwrap();
    assert!(String::from_utf8_lossy(&first[..n]).starts_with("HTTP/1.1 200"));
    tokio::time::sleep(Duration::from_millis(600)).await;
    // Still open past the head timeout: a second request on it is answered.
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let n = stream.read(&mut first).await.unwrap();
    assert!(String::from_utf8_lossy(&first[..n]).starts_with("HTTP/1.1 200"));
    assert_eq!(read_until_closed(&mut stream).await, "");
}

#[tokio::test]
async fn a_body_shorter_than_its_content_length_answers_408() {
    let app = spawn_with(timeouts(10_000, 60_000, 300)).await;
    let head = format!(
        "POST /v1/applications/echo/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"inputs\""
    );
    let mut stream = open(&app, head.as_bytes()).await;
    let answer = read_until_closed(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains(r#""key":"request.timeout""#), "{answer}");
    // The same for an upload that stalls.
    let head = format!(
        "POST /v1/files HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n\
         Content-Disposition: attachment; filename=\"a.txt\"\r\nContent-Length: 100\r\n\r\nabc"
    );
    let mut stream = open(&app, head.as_bytes()).await;
    let answer = read_until_closed(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
}

#[tokio::test]
async fn requests_refused_before_routing_still_get_a_writer_error() {
    let app = spawn_app().await;
    let big_header = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(1 << 20)
    );
    let cases: [(&[u8], &str); 3] = [
        (b"GARBAGE\r\n\r\n", "HTTP/1.1 400"),
        (
            b"GET /healthz HTTP/1.1\r\nBad Header\r\n\r\n",
            "HTTP/1.1 400",
        ),
        (big_header.as_bytes(), "HTTP/1.1 431"),
    ];
    for (request, status) in cases {
        let mut stream = open(&app, request).await;
        let answer = read_until_closed(&mut stream).await;
        assert!(answer.starts_with(status), "{answer}");
        let body: Value = serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap()).unwrap();
        assert!(
            body["tpe"].is_string() && body["errors"][0]["key"].is_string(),
            "{body}"
        );
    }
}

/// `VmRSS` or `VmHWM` (peak) of a process, in KiB.
fn memory_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"));
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Streams `total` bytes as a chunked upload, reading the answer as it comes; answers it.
fn chunked_upload(address: &str, total: usize) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(HANG)).unwrap();
    let mut reader = stream.try_clone().unwrap();
    let answer = std::thread::spawn(move || {
        let mut answer = Vec::new();
        let _ = reader.read_to_end(&mut answer);
        String::from_utf8_lossy(&answer).into_owned()
    });
    let head = format!(
        "POST /v1/files HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n\
         Content-Disposition: attachment; filename=\"big.txt\"\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).unwrap();
    let chunk = vec![b'a'; 64 << 10];
    let mut sent = 0;
    while sent < total {
        let framed = [format!("{:x}\r\n", chunk.len()).as_bytes(), &chunk, b"\r\n"].concat();
        if stream.write_all(&framed).is_err() {
            break; // The server answered and closed.
        }
        sent += chunk.len();
    }
    let _ = stream.write_all(b"0\r\n\r\n");
    answer.join().unwrap()
}

#[test]
fn a_chunked_upload_over_the_limit_is_refused_without_being_held_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    let mut serve = Serve::new(dir.path());
    serve.api_key = Some(KEY);
    serve.args = vec!["--max-upload-mb", "50"];
    let server = serve.start();
    let pid = server.child.pid();
    let address = server.base.trim_start_matches("http://").to_owned();
    // Warm up (a first upload within the limit), then measure the peak across a 60 MB one.
    let small = chunked_upload(&address, 1 << 20);
    assert!(small.starts_with("HTTP/1.1 200"), "{small}");
    let before = memory_kib(pid, "VmHWM");
    let answer = chunked_upload(&address, 60 << 20);
    let after = memory_kib(pid, "VmHWM");
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("files.too_large"), "{answer}");
    let grown_mib = (after.saturating_sub(before)) as f64 / 1024.0;
    println!(
        "60 MB chunked upload over a 50 MB limit: peak resident memory {:.1} MiB before, \
         {:.1} MiB after (grew {grown_mib:.1} MiB)",
        before as f64 / 1024.0,
        after as f64 / 1024.0
    );
    assert!(
        grown_mib < 20.0,
        "the server's peak memory grew by {grown_mib:.1} MiB for a refused 60 MB upload"
    );
    // Nothing of it was kept: no temporary file is left.
    let uploads: Vec<_> = std::fs::read_dir(dir.path().join("uploads"))
        .unwrap()
        .collect();
    assert!(uploads.is_empty(), "{uploads:?}");
}

/// An application whose prompt holds a NUL character when its input says `nul`: the mock
/// echoes the prompt, as a model may return NUL.
const NUL_APP: &str = r#"
id = "nul"
name = "NUL"
status = "deployed"
created_at = "2025-01-01T00:00:00Z"
prompt = """{% if inputs["Text"][0] == "nul" %}before\u0000after {% endif %}{{ inputs["Text"][0] }}"""

[[inputs]]
name = "Text"
input_type = "text"
required = true
"#;

#[tokio::test]
async fn a_nul_from_the_model_is_stored_as_a_replacement_character_and_fails_no_other_job() {
    let apps = tempfile::tempdir().unwrap();
    std::fs::write(apps.path().join("nul.toml"), NUL_APP).unwrap();
    let app = spawn_with(ServeOptions {
        apps_dir: Some(apps.path().to_path_buf()),
        ..ServeOptions::default()
    })
    .await;
    let other = app.key_for("org-b").await;
    let poisoned = app.create_job("nul", &[("Text", &["nul"])]).await;
    let mut others = Vec::new();
    for n in 0..63 {
        let response = app
            .client
            .post(format!("{}/v1/applications/nul/jobs", app.base))
            .bearer_auth(&other)
            .json(&json!({"inputs": [{"id": "Text", "value": [format!("job {n}")]}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
        others.push(
            response.json::<Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let job = app.wait_finished(poisoned["id"].as_str().unwrap()).await;
    assert_eq!(job["status"], "completed", "{job}");
    let suggestion = job["data"]["suggestion"].as_str().unwrap();
    assert!(suggestion.contains("before\u{FFFD}after"), "{suggestion}");
    for (n, id) in others.iter().enumerate() {
        let url = format!("{}/v1/applications/jobs/{id}", app.base);
        let finished = async {
            loop {
                let response = app.client.get(&url).bearer_auth(&other).send().await;
                let job: Value = response.unwrap().json().await.unwrap();
                if job["status"] != "in_progress" {
                    return job;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        let job = tokio::time::timeout(HANG, finished)
            .await
            .expect("the job never finished");
        assert_eq!(job["status"], "completed", "{job}");
        assert!(
            job["data"]["suggestion"]
                .as_str()
                .unwrap()
                .ends_with(&format!("job {n}"))
        );
    }
}

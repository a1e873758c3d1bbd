//! The command line, run as the real binary: `keys` beside a running server, `apps validate`,
//! and `serve` refusing a broken applications folder. Also the child-process helpers the
//! crash tests share (`crate::cli::ServerProcess`, `crate::cli::run_cli`).

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{fixture_apps, inputs_body};

/// The binary under test.
pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_scriptorium");

/// How long a child may take to start serving before the test gives up.
pub(crate) const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A command for the binary with a clean environment: no inherited `SCRIPTORIUM_*` variable
/// (so the developer's shell cannot change what a test sees), info logs, no backtraces.
pub(crate) fn command(args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("SCRIPTORIUM_") {
            cmd.env_remove(name);
        }
    }
    cmd.args(args)
        .env("SCRIPTORIUM_LOG", "info")
        .env("RUST_BACKTRACE", "0")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Lines read from a child's pipe by a thread, so the child never blocks on a full pipe.
pub(crate) struct Lines {
    seen: Arc<Mutex<Vec<String>>>,
    rx: Receiver<String>,
    thread: Option<JoinHandle<()>>,
}

impl Lines {
    fn drain(pipe: impl Read + Send + 'static) -> Self {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let store = seen.clone();
        let thread = std::thread::spawn(move || {
            let mut reader = BufReader::new(pipe);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match reader.read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let line = String::from_utf8_lossy(&buf)
                            .trim_end_matches(['\n', '\r'])
                            .to_owned();
                        store.lock().unwrap().push(line.clone());
                        let _ = tx.send(line);
                    }
                }
            }
        });
        Self {
            seen,
            rx,
            thread: Some(thread),
        }
    }

    /// Everything read so far, one line each.
    pub(crate) fn text(&self) -> String {
        self.seen.lock().unwrap().join("\n")
    }

    /// Waits for the first line (not yet waited past) for which `found` answers something.
    /// `None` if the pipe closed (the child exited) or `timeout` passed.
    fn wait_for<T>(
        &self,
        timeout: Duration,
        mut found: impl FnMut(&str) -> Option<T>,
    ) -> Option<T> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(value) = found(&line) {
                        return Some(value);
                    }
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return None,
            }
        }
    }

    /// Waits until the pipe is closed and answers every line.
    fn finish(&mut self) -> String {
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.text()
    }
}

/// What a finished child printed.
#[derive(Debug)]
pub(crate) struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    /// Both streams, for messages and for searching.
    pub fn all(&self) -> String {
        format!(
            "--- stdout ---\n{}\n--- stderr ---\n{}",
            self.stdout, self.stderr
        )
    }
}

/// A child process that is killed (and reaped) when dropped, even when the test panics.
pub(crate) struct ChildGuard {
    child: Child,
    pub stdout: Lines,
    pub stderr: Lines,
}

impl ChildGuard {
    /// Starts `cmd` (whose stdout and stderr must be piped) and drains both pipes.
    pub(crate) fn spawn(mut cmd: Command) -> Self {
        let mut child = cmd.spawn().expect("cannot start the scriptorium binary");
        let stdout = Lines::drain(child.stdout.take().expect("stdout is piped"));
        let stderr = Lines::drain(child.stderr.take().expect("stderr is piped"));
        Self {
            child,
            stdout,
            stderr,
        }
    }

    /// The process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the child to exit by itself; panics (and kills it) after `timeout`.
    pub(crate) fn wait(mut self, timeout: Duration) -> Finished {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("cannot wait for the child") {
                return Finished {
                    status,
                    stdout: self.stdout.finish(),
                    stderr: self.stderr.finish(),
                };
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "the child did not exit within {timeout:?}; it printed:\n--- stdout ---\n{}\n--- stderr ---\n{}",
                    self.stdout.finish(),
                    self.stderr.finish()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `kill -9`, then reaps the child and answers what it printed.
    pub(crate) fn kill_9(mut self) -> Finished {
        self.child.kill().expect("cannot SIGKILL the child");
        let status = self.child.wait().expect("cannot wait for the child");
        Finished {
            status,
            stdout: self.stdout.finish(),
            stderr: self.stderr.finish(),
        }
    }

    /// Sends SIGTERM (through `kill`, as `libc` is not a dependency).
    pub(crate) fn sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("cannot run kill");
        assert!(status.success(), "kill -TERM {} failed", self.pid());
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// Runs a short-lived subcommand to its end (at most 60 s).
pub(crate) fn run_cli(args: &[&str]) -> Finished {
    ChildGuard::spawn(command(args)).wait(Duration::from_secs(60))
}

/// How to start `scriptorium serve`.
pub(crate) struct Serve<'a> {
    pub data_dir: &'a Path,
    pub apps: PathBuf,
    /// `SCRIPTORIUM_API_KEY`, if any.
    pub api_key: Option<&'a str>,
    /// More flags, e.g. `["--mock-latency", "200ms"]`.
    pub args: Vec<&'a str>,
}

impl<'a> Serve<'a> {
    /// The fixture applications on `data_dir`, no key, no extra flags.
    pub(crate) fn new(data_dir: &'a Path) -> Self {
        Self {
            data_dir,
            apps: fixture_apps(),
            api_key: None,
            args: Vec::new(),
        }
    }

    /// The command line this describes.
    pub(crate) fn command(&self) -> Command {
        let data_dir = self.data_dir.to_str().expect("utf-8 temp path");
        let apps = self.apps.to_str().expect("utf-8 apps path");
        let mut args = vec![
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data_dir,
            "--apps",
            apps,
        ];
        args.extend(self.args.iter().copied());
        let mut cmd = command(&args);
        if let Some(key) = self.api_key {
            cmd.env("SCRIPTORIUM_API_KEY", key);
        }
        cmd
    }

    /// Starts the server and waits until it logs its address.
    pub(crate) fn start(&self) -> ServerProcess {
        let started = Instant::now();
        let child = ChildGuard::spawn(self.command());
        let address = child.stderr.wait_for(START_TIMEOUT, |line| {
            let (_, rest) = line.split_once("scriptorium is serving")?;
            let (_, address) = rest.split_once("address=")?;
            Some(address.split_whitespace().next()?.to_owned())
        });
        let Some(address) = address else {
            let finished = child.kill_9();
            panic!(
                "the server did not log `scriptorium is serving address=...` within {START_TIMEOUT:?} \
                 (it exited or hung: {}); it printed:\n{}",
                finished.status,
                finished.all()
            );
        };
        ServerProcess {
            base: format!("http://{address}"),
            child,
            started_in: started.elapsed(),
        }
    }
}

/// A running `scriptorium serve` child.
pub(crate) struct ServerProcess {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    pub child: ChildGuard,
    /// From spawning to the "serving" log line.
    pub started_in: Duration,
}

impl ServerProcess {
    /// `base` + `path`.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Waits for a stdout line for which `found` answers something.
    pub(crate) fn wait_stdout<T>(
        &self,
        timeout: Duration,
        found: impl FnMut(&str) -> Option<T>,
    ) -> Option<T> {
        self.child.stdout.wait_for(timeout, found)
    }

    /// `kill -9` and answers what it printed.
    pub(crate) fn kill_9(self) -> Finished {
        self.child.kill_9()
    }
}

/// A client for tests against a child server.
pub(crate) fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// Asserts a Writer error body: `{"tpe", "errors": [{description, key, extras}], "extras": {}}`.
pub(crate) async fn assert_writer_error(
    response: reqwest::Response,
    status: u16,
    tpe: &str,
) -> Value {
    assert_eq!(response.status().as_u16(), status);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["tpe"], tpe, "{body}");
    assert_eq!(body["extras"], json!({}), "{body}");
    let errors = body["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("no errors array: {body}"));
    assert!(!errors.is_empty(), "{body}");
    for e in errors {
        assert!(e["description"].is_string(), "{body}");
        assert!(e["key"].is_string(), "{body}");
        assert!(e["extras"].is_object(), "{body}");
    }
    body
}

/// The key in a first start's stdout: the one line that is a `scr_` key.
fn key_line(line: &str) -> Option<String> {
    let t = line.trim();
    (t.starts_with("scr_") && !t.contains(char::is_whitespace)).then(|| t.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_create_prints_the_key_alone_on_the_last_line_and_it_works_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap().to_owned();
    let http = client();

    // A first start without SCRIPTORIUM_API_KEY prints a key once, and it works.
    let server = Serve::new(dir.path()).start();
    let first_key = server
        .wait_stdout(Duration::from_secs(10), key_line)
        .unwrap_or_else(|| {
            panic!(
                "no first-start key on stdout:\n{}",
                server.child.stdout.text()
            )
        });
    let apps = http
        .get(server.url("/v1/applications"))
        .bearer_auth(&first_key)
        .send()
        .await
        .unwrap();
    assert_eq!(apps.status(), StatusCode::OK);

    // `keys create` beside the running server: the key alone on the last line, usable at once.
    let created = run_cli(&[
        "keys",
        "create",
        "--name",
        "ci",
        "--org",
        "acme",
        "--data-dir",
        &data_dir,
    ]);
    assert!(
        created.status.success(),
        "keys create failed:\n{}",
        created.all()
    );
    let last = created.stdout.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("scr_"),
        "the last line is not a key: {last:?}\n{}",
        created.all()
    );
    assert_eq!(
        last,
        last.trim(),
        "the key is not alone on its line: {last:?}"
    );
    assert!(
        !last.contains(char::is_whitespace),
        "the key is not alone on its line: {last:?}"
    );
    let acme_key = last.to_owned();
    assert_eq!(
        created.stdout.matches(&acme_key).count(),
        1,
        "the key is printed more than once"
    );
    let acme_id = &acme_key[..12];
    let first_id = &first_key[..12];
    assert!(
        created.stdout.contains(acme_id),
        "the key id is not named:\n{}",
        created.stdout
    );
    let apps = http
        .get(server.url("/v1/applications"))
        .bearer_auth(&acme_key)
        .send()
        .await
        .unwrap();
    assert_eq!(
        apps.status(),
        StatusCode::OK,
        "a new key is not accepted at once"
    );

    // `keys list`: both ids and orgs, never a secret.
    let listed = run_cli(&["keys", "list", "--data-dir", &data_dir]);
    assert!(
        listed.status.success(),
        "keys list failed:\n{}",
        listed.all()
    );
    let row = |id: &str| {
        listed
            .stdout
            .lines()
            .find(|l| l.starts_with(id))
            .unwrap_or_else(|| panic!("no row for key {id} in:\n{}", listed.stdout))
            .to_owned()
    };
    let first_row = row(first_id);
    let acme_row = row(acme_id);
    assert!(
        first_row.split_whitespace().any(|w| w == "default"),
        "{first_row}"
    );
    assert!(
        acme_row.split_whitespace().any(|w| w == "acme"),
        "{acme_row}"
    );
    assert!(acme_row.split_whitespace().any(|w| w == "ci"), "{acme_row}");
    assert!(
        acme_row.trim_end().ends_with(" -"),
        "a fresh key is listed as revoked: {acme_row}"
    );
    for secret in [&first_key, &acme_key] {
        assert!(
            !listed.all().contains(secret.as_str()),
            "keys list shows a secret"
        );
    }

    // Organisations are isolated: a default-org job is invisible to acme.
    let created_job = http
        .post(server.url("/v1/applications/echo/jobs"))
        .bearer_auth(&first_key)
        .json(&inputs_body(&[("Text", &["for the default org only"])]))
        .send()
        .await
        .unwrap();
    assert_eq!(created_job.status(), StatusCode::ACCEPTED);
    let job: Value = created_job.json().await.unwrap();
    let job_id = job["id"].as_str().unwrap();
    let own = http
        .get(server.url(&format!("/v1/applications/jobs/{job_id}")))
        .bearer_auth(&first_key)
        .send()
        .await
        .unwrap();
    assert_eq!(own.status(), StatusCode::OK);
    let other = http
        .get(server.url(&format!("/v1/applications/jobs/{job_id}")))
        .bearer_auth(&acme_key)
        .send()
        .await
        .unwrap();
    assert_writer_error(other, 404, "NotFound").await;
    let acme_list: Value = http
        .get(server.url("/v1/applications/echo/jobs"))
        .bearer_auth(&acme_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(acme_list["totalCount"], 0, "{acme_list}");
    assert_eq!(acme_list["result"], json!([]), "{acme_list}");
    let default_list: Value = http
        .get(server.url("/v1/applications/echo/jobs"))
        .bearer_auth(&first_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(default_list["totalCount"], 1, "{default_list}");

    // `keys revoke`: the key is refused at once, in Writer's error shape; the other still works.
    let revoked = run_cli(&["keys", "revoke", acme_id, "--data-dir", &data_dir]);
    assert!(
        revoked.status.success(),
        "keys revoke failed:\n{}",
        revoked.all()
    );
    let refused = http
        .get(server.url("/v1/applications"))
        .bearer_auth(&acme_key)
        .send()
        .await
        .unwrap();
    assert_writer_error(refused, 401, "Unauthorized").await;
    let still = http
        .get(server.url("/v1/applications"))
        .bearer_auth(&first_key)
        .send()
        .await
        .unwrap();
    assert_eq!(still.status(), StatusCode::OK);
    let again = run_cli(&["keys", "revoke", acme_id, "--data-dir", &data_dir]);
    assert!(
        !again.status.success(),
        "revoking a revoked key succeeded:\n{}",
        again.all()
    );
    let listed = run_cli(&["keys", "list", "--data-dir", &data_dir]);
    let acme_row = listed
        .stdout
        .lines()
        .find(|l| l.starts_with(acme_id))
        .unwrap_or_default()
        .to_owned();
    assert!(
        !acme_row.trim_end().ends_with(" -"),
        "a revoked key is not listed as revoked: {acme_row}"
    );

    // The first start printed exactly one key; a restart prints none and the keys persist.
    let first_run = server.kill_9();
    let keys_printed: Vec<String> = first_run.stdout.lines().filter_map(key_line).collect();
    assert_eq!(
        keys_printed,
        vec![first_key.clone()],
        "first start stdout:\n{}",
        first_run.stdout
    );

    let server = Serve::new(dir.path()).start();
    let works = http
        .get(server.url("/v1/applications"))
        .bearer_auth(&first_key)
        .send()
        .await
        .unwrap();
    assert_eq!(
        works.status(),
        StatusCode::OK,
        "the first key does not survive a restart"
    );
    let refused = http
        .get(server.url("/v1/applications"))
        .bearer_auth(&acme_key)
        .send()
        .await
        .unwrap();
    assert_writer_error(refused, 401, "Unauthorized").await;
    let second_run = server.kill_9();
    assert!(
        !second_run.stdout.contains("scr_") && !second_run.stdout.contains("No API key existed"),
        "a restart printed a new first-start key:\n{}",
        second_run.stdout
    );
}

#[test]
fn apps_validate_accepts_the_shipped_examples() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/apps");
    let count = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.ends_with(".toml") && !name.starts_with('.')
        })
        .count();
    assert!(count > 0, "no shipped examples in {dir}");
    let out = run_cli(&["apps", "validate", dir]);
    assert!(
        out.status.success(),
        "apps validate failed on the shipped examples:\n{}",
        out.all()
    );
    assert!(
        out.stdout.contains(&format!("{count} applications OK")),
        "expected `{count} applications OK`:\n{}",
        out.all()
    );
}

/// A folder with two broken applications: `broken.toml` (an unclosed `{{` on line 5) and
/// `undeclared.toml` (an undeclared input on line 5).
fn broken_apps() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let app = |id: &str, prompt: &str| {
        format!(
            "id = \"{id}\"\nname = \"{id}\"\nstatus = \"deployed\"\ncreated_at = \"2025-01-01T00:00:00Z\"\n\
             prompt = '{prompt}'\n\n[[inputs]]\nname = \"Text\"\ninput_type = \"text\"\nrequired = true\n"
        )
    };
    std::fs::write(
        dir.path().join("broken.toml"),
        app("broken", r#"{{ inputs["Text"] "#),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("undeclared.toml"),
        app("undeclared", r#"{{ inputs["Missing"] | join(" ") }}"#),
    )
    .unwrap();
    dir
}

#[test]
fn apps_validate_names_the_file_and_line_of_a_broken_template() {
    let dir = broken_apps();
    let out = run_cli(&["apps", "validate", dir.path().to_str().unwrap()]);
    assert!(
        !out.status.success(),
        "apps validate accepted broken files:\n{}",
        out.all()
    );
    let all = out.all();
    for file in ["broken.toml", "undeclared.toml"] {
        let named = all.lines().any(|l| {
            l.split_once(&format!("{file}:")).is_some_and(|(_, rest)| {
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                digits == "5" && rest[digits.len()..].starts_with(": ")
            })
        });
        assert!(named, "no `{file}:5: reason` line:\n{all}");
    }
    assert!(
        all.contains("Missing"),
        "the undeclared input is not named:\n{all}"
    );
}

#[test]
fn serve_refuses_to_start_on_an_invalid_apps_folder() {
    let apps = broken_apps();
    let data = tempfile::tempdir().unwrap();
    let serve = Serve {
        apps: apps.path().to_path_buf(),
        ..Serve::new(data.path())
    };
    let out = ChildGuard::spawn(serve.command()).wait(START_TIMEOUT);
    assert!(
        !out.status.success(),
        "serve started on broken applications:\n{}",
        out.all()
    );
    assert!(
        !out.stderr.contains("scriptorium is serving"),
        "{}",
        out.all()
    );
    let all = out.all();
    assert!(
        all.contains("broken.toml:5:"),
        "the broken file is not named:\n{all}"
    );
    assert!(
        all.contains("undeclared.toml:5:"),
        "the broken file is not named:\n{all}"
    );
}

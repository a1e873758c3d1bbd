//! Running the real binary as a child process: a clean environment, pipes drained by
//! threads, the port read from the "serving" log line, and a guard that kills the child
//! (even when a test panics). Used by the CLI, crash and cluster tests.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use reqwest::Client;
use serde_json::{Value, json};

use crate::helpers::fixture_apps;

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

//! The official Python SDK (`writer-sdk`, `import writerai`) against a real server: the
//! script `tests/sdk/test_writer_sdk.py` drives every application, file and batch route and
//! fails loudly.
//!
//! Without Python or the SDK the test prints a notice and passes, so `cargo test` works on a
//! laptop; CI sets `SCRIPTORIUM_REQUIRE_SDK`, which turns a missing SDK into a failure.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::{self, KEY};

const SCRIPT: &str = "tests/sdk/test_writer_sdk.py";

/// The script takes a few seconds; past this it is killed and the test fails.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(180);

/// Whether `python3` can import `writerai`.
fn sdk_installed() -> bool {
    Command::new("python3")
        .args(["-c", "import writerai"])
        .output()
        .is_ok_and(|out| out.status.success())
}

/// What the script did: its exit status (`None` if killed at the timeout) and its output.
struct Run {
    status: Option<ExitStatus>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

/// Runs the script against `base` with the test key (and `other_key`, a key of another
/// organisation); blocking, killed at [`SCRIPT_TIMEOUT`]. Output goes to files rather than
/// pipes, so a chatty script can never block on a full pipe.
fn run_script(base: &str, other_key: &str) -> Run {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = tempfile::tempfile().unwrap();
    let err = tempfile::tempfile().unwrap();
    let mut child = Command::new("python3")
        .arg(root.join(SCRIPT))
        .current_dir(root)
        .env("WRITER_BASE_URL", base)
        .env("WRITER_API_KEY", KEY)
        .env("SCRIPTORIUM_OTHER_API_KEY", other_key)
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(err.try_clone().unwrap())
        .spawn()
        .expect("python3 could not be started");
    let deadline = Instant::now() + SCRIPT_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Run {
        status,
        stdout: read_all(out),
        stderr: read_all(err),
    }
}

fn read_all(mut file: File) -> Vec<u8> {
    let mut bytes = Vec::new();
    file.seek(SeekFrom::Start(0)).unwrap();
    file.read_to_end(&mut bytes).unwrap();
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_python_sdk_drives_every_route() {
    let installed = tokio::task::spawn_blocking(sdk_installed).await.unwrap();
    if !installed {
        assert!(
            std::env::var_os("SCRIPTORIUM_REQUIRE_SDK").is_none(),
            "SCRIPTORIUM_REQUIRE_SDK is set but `python3 -c \"import writerai\"` fails; \
             pip install writer-sdk==3.0.0"
        );
        eprintln!("skipping: the Python SDK is not installed; pip install writer-sdk");
        return;
    }

    let app = helpers::spawn_app().await;
    let base = app.base.clone();
    let other_key = app.key_for("other").await;
    let output = tokio::task::spawn_blocking(move || run_script(&base, &other_key))
        .await
        .unwrap();

    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    let Some(status) = output.status else {
        panic!(
            "{SCRIPT} did not finish within {SCRIPT_TIMEOUT:?}:\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}"
        );
    };
    assert!(
        status.success(),
        "{SCRIPT} failed ({status}):\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}"
    );
    assert!(
        stdout.lines().any(|line| line == "SDK OK"),
        "{SCRIPT} exited 0 without printing `SDK OK`:\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}"
    );
    app.stop().await;
}

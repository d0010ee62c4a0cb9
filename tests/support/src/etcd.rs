//! A throwaway single-member etcd: Debian's `etcd` (package `etcd-server`,
//! which `cargo xtask tools` installs) on free loopback ports, with its data
//! in a fresh temporary directory, killed and removed when dropped.
//!
//! It is ready once it answers a linearizable read: a count-only range
//! through etcd's JSON gateway (`POST /v3/kv/range`), the same read a
//! store's first request makes, so the test's first request does not race
//! etcd's election. A missing etcd fails the test with the command that
//! installs it: the tests that use it never pass by skipping.

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::free_port;

/// Where Debian's etcd-server puts the binary; `MXJOB_TEST_ETCD` overrides.
const ETCD: &str = "/usr/bin/etcd";
/// How long etcd may take to elect itself and answer.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one readiness probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);

/// A running etcd; killed (SIGKILL) and its data removed when dropped.
pub struct Etcd {
    /// The client URL, `http://127.0.0.1:PORT`.
    pub endpoint: String,
    child: Child,
    /// Holds etcd's data and log; removed after the process is killed.
    _dir: tempfile::TempDir,
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn binary() -> PathBuf {
    let path = std::env::var_os("MXJOB_TEST_ETCD")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(ETCD));
    assert!(
        path.exists(),
        "{} is missing: run `cargo xtask tools` (it installs Debian's etcd-server) \
         or point MXJOB_TEST_ETCD at an etcd binary",
        path.display()
    );
    path
}

impl Etcd {
    /// Starts etcd and waits until it answers. Ports are chosen by binding
    /// port 0 and letting go; a port taken in between shows as an early
    /// exit, and then it tries other ports with a fresh data directory.
    pub async fn start() -> Etcd {
        let binary = binary();
        let dir = tempfile::tempdir().expect("temporary directory");
        let log_path = dir.path().join("etcd.log");
        for attempt in 0..3 {
            let client = format!("http://127.0.0.1:{}", free_port());
            let peer = format!("http://127.0.0.1:{}", free_port());
            let log = File::options()
                .create(true)
                .append(true)
                .open(&log_path)
                .expect("etcd log file");
            let mut child = Command::new(&binary)
                .arg("--name")
                .arg("test")
                .arg("--data-dir")
                .arg(dir.path().join(format!("data-{attempt}")))
                .args(["--listen-client-urls", &client])
                .args(["--advertise-client-urls", &client])
                .args(["--listen-peer-urls", &peer])
                .args(["--initial-advertise-peer-urls", &peer])
                .arg("--initial-cluster")
                .arg(format!("test={peer}"))
                .args(["--logger", "zap", "--log-level", "error"])
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("etcd log file"))
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
            if answers(&mut child, &client).await {
                return Etcd {
                    endpoint: client,
                    child,
                    _dir: dir,
                };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        panic!("etcd did not come up; its log:\n{log}");
    }
}

/// Whether etcd answered a linearizable read (so it has elected itself)
/// before it exited or the timeout passed.
async fn answers(child: &mut Child, endpoint: &str) -> bool {
    let http = crate::http_client(PROBE_TIMEOUT);
    let range = format!("{endpoint}/v3/kv/range");
    // The key "\0" (base64), counted rather than read; linearizable is
    // the default.
    let body = r#"{"key":"AA==","count_only":true}"#;
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    while Instant::now() < deadline {
        if child.try_wait().ok().flatten().is_some() {
            return false;
        }
        let answer = http.post(&range).body(body).send().await;
        if answer.is_ok_and(|response| response.status().is_success()) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

//! A throwaway single-member etcd for tests: Debian's `etcd` (package
//! `etcd-server`, which `cargo xtask tools` installs) on free loopback ports,
//! with its data in a fresh temporary directory, killed and removed when
//! dropped.
//!
//! Shared by `server/tests/replicas.rs` and `tests/tests/store_conformance.rs`
//! (each includes this file as a module). A missing etcd fails the test with
//! the command that installs it: these tests never pass by skipping.

use std::fs::File;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mxjob_server::store::etcd::{EtcdOptions, EtcdStore};

/// Where Debian's etcd-server puts the binary; `MXJOB_TEST_ETCD` overrides.
const ETCD: &str = "/usr/bin/etcd";
/// How long etcd may take to elect itself and answer.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

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

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free loopback port")
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

    /// A store over this etcd (the conformance suite's fixture uses it).
    #[allow(dead_code)]
    pub async fn store(&self) -> EtcdStore {
        EtcdStore::connect(EtcdOptions::new(vec![self.endpoint.clone()]))
            .await
            .expect("the store connects to the test etcd")
    }
}

/// Whether etcd answered a linearizable read (so it has elected itself)
/// before it exited or the timeout passed.
async fn answers(child: &mut Child, endpoint: &str) -> bool {
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    while Instant::now() < deadline {
        if child.try_wait().ok().flatten().is_some() {
            return false;
        }
        let mut options = EtcdOptions::new(vec![endpoint.to_string()]);
        options.connect_timeout = Duration::from_millis(500);
        if EtcdStore::connect(options).await.is_ok() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

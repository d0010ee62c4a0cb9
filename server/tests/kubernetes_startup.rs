//! `--executor kubernetes` with no cluster to reach: the server does not
//! start, and says which API server did not answer and why.
//!
//! The binary is the one cargo builds for this package's tests
//! (`CARGO_BIN_EXE_mxjob-server`); the kubeconfig names a loopback port
//! nothing listens on, so the answer is immediate.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mxjob_test_support::free_port;

/// How long the server may take to give up.
const EXIT_TIMEOUT: Duration = Duration::from_secs(60);

#[test]
fn the_server_exits_naming_the_api_server_it_could_not_reach() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = format!("https://127.0.0.1:{}", free_port());
    let kubeconfig = dir.path().join("kubeconfig");
    let config = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "gone", "cluster": {"server": server, "insecure-skip-tls-verify": true}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "gone", "context": {"cluster": "gone", "user": "u"}}],
        "current-context": "gone",
    });
    std::fs::write(&kubeconfig, config.to_string()).expect("kubeconfig");
    let mut child = Command::new(env!("CARGO_BIN_EXE_mxjob-server"))
        .args(["--store", "memory", "--executor", "kubernetes", "--listen"])
        .arg(format!("127.0.0.1:{}", free_port()))
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the server starts");
    let deadline = Instant::now() + EXIT_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("waits") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the server did not exit within {EXIT_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut stderr = String::new();
    use std::io::Read;
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("reads stderr");
    assert!(!status.success(), "{stderr}");
    let line = stderr
        .lines()
        .find(|l| l.starts_with("mxjob-server: "))
        .unwrap_or_else(|| panic!("no error line in {stderr}"));
    assert!(
        line.contains(&format!(
            "the Kubernetes API server at {server}/ did not answer"
        )),
        "{line}"
    );
    assert!(line.contains("onnection refused"), "{line}");
}

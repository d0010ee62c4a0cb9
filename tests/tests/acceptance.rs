//! Real Kubernetes clients against the server: Debian's kubectl and the
//! official Python `kubernetes` package, both installed by `cargo xtask
//! tools`. Neither knows it is not talking to a cluster.

use std::path::{Path, PathBuf};
use std::time::Duration;

use mxjob_tests::kubectl::Kubectl;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_creates_gets_replaces_patches_watches_and_deletes() {
    let server = TestServer::start().await;
    let kubectl = Kubectl::debian(&server.url, "flow");

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
    let kubectl = Kubectl::current(&server.url, "dry-delete");
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

//! A current kubectl (1.37) against the server, as users run it today:
//! the everyday commands, server-side apply with conflicts, lists and
//! watches across namespaces, `wait`, `diff`, `explain` (through OpenAPI
//! v3), namespaces, and `auth can-i` against a policy. kubectl does not
//! know it is not talking to a cluster.

use std::sync::Arc;
use std::time::Duration;

use mxjob_server::auth::{Auth, Policy, TokenFile};
use mxjob_server::controller::{ControllerSettings, ExecutorKind};
use mxjob_server::registry::Registry;
use mxjob_server::server::Settings;
use mxjob_server::store::memory::MemoryStore;
use mxjob_tests::kubectl::Kubectl;
use mxjob_tests::{discard, new_job_value, TestServer};
use serde_json::Value;

/// A server with the job controller (executor `none`), which writes the
/// `Created` condition that `kubectl wait` waits for.
async fn server_with_controller() -> (TestServer, tempfile::TempDir) {
    let logs = tempfile::tempdir().expect("log dir");
    let mut settings = Settings::new("127.0.0.1:0".parse().expect("address"));
    settings.controller = Some(ControllerSettings::new(
        ExecutorKind::None,
        logs.path().to_path_buf(),
    ));
    let server =
        TestServer::start_configured(Arc::new(MemoryStore::new()), settings, discard()).await;
    (server, logs)
}

/// The seed's job as kubectl reads a file: no namespace (the context's).
fn job(name: &str) -> Value {
    let mut job = new_job_value("kube-test", name);
    job["metadata"]
        .as_object_mut()
        .map(|m| m.remove("namespace"));
    job
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("kubectl printed no JSON ({e}): {text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn current_kubectl_runs_the_everyday_commands() {
    let (server, _logs) = server_with_controller().await;
    let kubectl = Kubectl::current(&server.url, "everyday");

    let resources = kubectl.run(&["api-resources"]).await;
    let mxjobs = resources
        .lines()
        .find(|l| l.starts_with("mxjobs"))
        .unwrap_or_else(|| panic!("no mxjobs in api-resources: {resources}"));
    let columns: Vec<&str> = mxjobs.split_whitespace().collect();
    assert_eq!(columns, ["mxjobs", "kubeflow.org/v1", "true", "MXJob"]);
    assert!(
        resources.lines().any(|l| l.starts_with("namespaces")),
        "{resources}"
    );

    let file = kubectl.write("job.json", &job("daily"));
    assert_eq!(
        kubectl.run(&["create", "-f", &file]).await.trim(),
        "mxjob.kubeflow.org/daily created"
    );
    let table = kubectl.run(&["get", "mxjobs"]).await;
    assert!(table.starts_with("NAME"), "{table}");
    assert!(table.contains("daily"), "{table}");
    let yaml = kubectl.run(&["get", "mxjob", "daily", "-o", "yaml"]).await;
    assert!(
        yaml.contains("kind: MXJob") && yaml.contains("name: daily"),
        "{yaml}"
    );

    // The controller admits it: `wait` sees the condition.
    let waited = kubectl
        .run(&[
            "wait",
            "--for=condition=Created",
            "mxjob/daily",
            "--timeout=60s",
        ])
        .await;
    assert_eq!(waited.trim(), "mxjob.kubeflow.org/daily condition met");

    // Replace, and the 409 of a stale copy.
    let stale = json(&kubectl.run(&["get", "mxjob", "daily", "-o", "json"]).await);
    let mut changed = stale.clone();
    changed["spec"]["ttlSecondsAfterFinished"] = 600.into();
    let file = kubectl.write("changed.json", &changed);
    assert_eq!(
        kubectl.run(&["replace", "-f", &file]).await.trim(),
        "mxjob.kubeflow.org/daily replaced"
    );
    let mut late = stale.clone();
    late["spec"]["ttlSecondsAfterFinished"] = 700.into();
    let file = kubectl.write("late.json", &late);
    let refused = kubectl.fail(&["replace", "-f", &file]).await;
    assert!(
        refused.contains("the object has been modified"),
        "{refused}"
    );

    // `diff` shows what an apply would change, and nothing when nothing would.
    let current = json(&kubectl.run(&["get", "mxjob", "daily", "-o", "json"]).await);
    let mut wanted = current.clone();
    wanted["spec"]["ttlSecondsAfterFinished"] = 900.into();
    let file = kubectl.write("wanted.json", &wanted);
    let output = kubectl
        .command(&["diff", "-f", &file])
        .output()
        .await
        .expect("kubectl diff runs");
    assert_eq!(output.status.code(), Some(1), "diff reports a difference");
    let shown = String::from_utf8_lossy(&output.stdout);
    assert!(shown.contains("ttlSecondsAfterFinished: 900"), "{shown}");

    // Client-side apply, merge patch, label.
    let mut labelled = job("daily");
    labelled["spec"]["ttlSecondsAfterFinished"] = 600.into();
    labelled["metadata"]["labels"] = serde_json::json!({"stage": "train"});
    let file = kubectl.write("applied.json", &labelled);
    let applied = kubectl.run(&["apply", "-f", &file]).await;
    assert!(
        applied
            .trim()
            .starts_with("mxjob.kubeflow.org/daily configured"),
        "{applied}"
    );
    assert_eq!(
        kubectl
            .run(&[
                "patch",
                "mxjob",
                "daily",
                "--type",
                "merge",
                "-p",
                r#"{"spec":{"ttlSecondsAfterFinished":300}}"#,
            ])
            .await
            .trim(),
        "mxjob.kubeflow.org/daily patched"
    );
    assert_eq!(
        kubectl
            .run(&["label", "mxjob", "daily", "owner=vision"])
            .await
            .trim(),
        "mxjob.kubeflow.org/daily labeled"
    );
    let labelled = kubectl
        .run(&[
            "get",
            "mxjobs",
            "-l",
            "stage=train,owner=vision",
            "-o",
            "name",
        ])
        .await;
    assert_eq!(labelled.trim(), "mxjob.kubeflow.org/daily");

    // `explain` reads the schema through OpenAPI v3.
    let explained = kubectl.run(&["explain", "mxjob.spec.mxReplicaSpecs"]).await;
    assert!(
        explained.contains("KIND:") && explained.contains("MXJob"),
        "{explained}"
    );
    assert!(explained.contains("Worker"), "{explained}");
    let described = kubectl.run(&["describe", "mxjob", "daily"]).await;
    assert!(
        described.contains("Name:") && described.contains("daily"),
        "{described}"
    );

    // A server-side dry run stores nothing.
    let file = kubectl.write("dry.json", &job("dry"));
    let dry = kubectl
        .run(&["create", "--dry-run=server", "-f", &file])
        .await;
    assert_eq!(
        dry.trim(),
        "mxjob.kubeflow.org/dry created (server dry run)"
    );
    let missing = kubectl.fail(&["get", "mxjob", "dry"]).await;
    assert!(missing.contains("not found"), "{missing}");

    let deleted = kubectl.run(&["delete", "mxjob", "daily"]).await;
    assert_eq!(
        deleted.trim(),
        "mxjob.kubeflow.org \"daily\" deleted from kube-test namespace"
    );
    let raw = json(&kubectl.run(&["get", "--raw", "/openapi/v3"]).await);
    assert!(
        raw["paths"]["apis/kubeflow.org/v1"]["serverRelativeURL"]
            .as_str()
            .is_some_and(|u| u.starts_with("/openapi/v3/apis/kubeflow.org/v1?hash=")),
        "{raw:#}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn current_kubectl_applies_server_side_and_resolves_conflicts() {
    let server = TestServer::start().await;
    let kubectl = Kubectl::current(&server.url, "server-side");

    let mut config = job("gitops");
    config["spec"]["ttlSecondsAfterFinished"] = 600.into();
    let file = kubectl.write("config.json", &config);
    let applied = kubectl.run(&["apply", "--server-side", "-f", &file]).await;
    assert_eq!(
        applied.trim(),
        "mxjob.kubeflow.org/gitops serverside-applied"
    );

    // A replaceable field changes.
    config["spec"]["ttlSecondsAfterFinished"] = 1200.into();
    let file = kubectl.write("config.json", &config);
    kubectl.run(&["apply", "--server-side", "-f", &file]).await;
    // kubectl hides managedFields unless asked.
    let stored = json(
        &kubectl
            .run(&[
                "get",
                "mxjob",
                "gitops",
                "-o",
                "json",
                "--show-managed-fields",
            ])
            .await,
    );
    assert_eq!(stored["spec"]["ttlSecondsAfterFinished"], 1200);
    let managers: Vec<&str> = stored["metadata"]["managedFields"]
        .as_array()
        .expect("managed fields")
        .iter()
        .filter_map(|e| e["manager"].as_str())
        .collect();
    assert!(managers.contains(&"kubectl"), "{managers:?}");

    // Another manager wants another value: a conflict, until forced.
    let mut theirs = config.clone();
    theirs["spec"]["ttlSecondsAfterFinished"] = 60.into();
    let file = kubectl.write("theirs.json", &theirs);
    let refused = kubectl
        .fail(&[
            "apply",
            "--server-side",
            "--field-manager=autoscaler",
            "-f",
            &file,
        ])
        .await;
    assert!(
        refused.contains("conflict") && refused.contains(".spec.ttlSecondsAfterFinished"),
        "{refused}"
    );
    kubectl
        .run(&[
            "apply",
            "--server-side",
            "--field-manager=autoscaler",
            "--force-conflicts",
            "-f",
            &file,
        ])
        .await;
    let stored = json(&kubectl.run(&["get", "mxjob", "gitops", "-o", "json"]).await);
    assert_eq!(stored["spec"]["ttlSecondsAfterFinished"], 60);

    // A change the replace rules forbid is refused with its path.
    let mut bigger = config.clone();
    bigger["spec"]["mxReplicaSpecs"]["Worker"]["replicas"] = 8.into();
    let file = kubectl.write("bigger.json", &bigger);
    let refused = kubectl
        .fail(&["apply", "--server-side", "--force-conflicts", "-f", &file])
        .await;
    assert!(
        refused.contains("spec.mxReplicaSpecs.Worker.replicas"),
        "{refused}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn current_kubectl_lists_and_watches_across_namespaces() {
    let server = TestServer::start().await;
    let kubectl = Kubectl::current(&server.url, "all-namespaces");
    for namespace in ["team-a", "team-b"] {
        let file = kubectl.write(&format!("{namespace}.json"), &job("shared-name"));
        kubectl.run(&["create", "-n", namespace, "-f", &file]).await;
    }
    let table = kubectl.run(&["get", "mxjobs", "-A"]).await;
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().expect("header").split_whitespace().collect();
    assert_eq!(header, ["NAMESPACE", "NAME", "STATE", "AGE"]);
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split_whitespace().collect()).collect();
    let placed: Vec<(&str, &str)> = rows.iter().map(|r| (r[0], r[1])).collect();
    assert_eq!(
        placed,
        [("team-a", "shared-name"), ("team-b", "shared-name")]
    );

    let mut watcher = kubectl
        .command(&[
            "get",
            "mxjobs",
            "-A",
            "-w",
            "-o",
            "name",
            "--request-timeout",
            "30s",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("kubectl get -A -w starts");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let file = kubectl.write("team-c.json", &job("late"));
    kubectl.run(&["create", "-n", "team-c", "-f", &file]).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    watcher.start_kill().expect("stop the watch");
    let seen = watcher.wait_with_output().await.expect("watch output");
    let seen = String::from_utf8_lossy(&seen.stdout);
    assert!(
        seen.lines().any(|l| l.trim() == "mxjob.kubeflow.org/late"),
        "{seen}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn current_kubectl_creates_lists_and_deletes_namespaces() {
    let server = TestServer::start().await;
    let kubectl = Kubectl::current(&server.url, "namespaces");
    assert_eq!(
        kubectl
            .run(&["create", "namespace", "research"])
            .await
            .trim(),
        "namespace/research created"
    );
    let refused = kubectl.fail(&["create", "namespace", "research"]).await;
    assert!(refused.contains("already exists"), "{refused}");
    let file = kubectl.write("job.json", &job("in-research"));
    kubectl
        .run(&["create", "-n", "research", "-f", &file])
        .await;
    let file = kubectl.write("job.json", &job("elsewhere"));
    kubectl.run(&["create", "-n", "implied", "-f", &file]).await;

    let table = kubectl.run(&["get", "namespaces"]).await;
    let names: Vec<&str> = table
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(names, ["implied", "research"], "{table}");
    // A namespace that holds jobs is as old as its first job.
    assert!(!table.contains("<unknown>"), "{table}");

    let deleted = kubectl.run(&["delete", "namespace", "research"]).await;
    assert_eq!(deleted.trim(), "namespace \"research\" deleted");
    let gone = kubectl
        .fail(&["get", "mxjob", "in-research", "-n", "research"])
        .await;
    assert!(gone.contains("not found"), "{gone}");
    let missing = kubectl.fail(&["get", "namespace", "research"]).await;
    assert!(missing.contains("not found"), "{missing}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn current_kubectl_auth_can_i_follows_the_policy() {
    let mut settings = Settings::new("127.0.0.1:0".parse().expect("address"));
    settings.auth = Auth::new(
        Some(TokenFile::parse("alice-token,alice,1001,\"team-a\"\n").expect("tokens")),
        Some(
            Policy::parse(
                r#"{"rules": [{"groups": ["team-a"], "namespaces": ["a"], "verbs": ["get", "list", "create"]}]}"#,
            )
            .expect("policy"),
        ),
        None,
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let (cert, key, ca_pem) = mxjob_tests::self_signed_localhost(dir.path());
    settings.tls = Some((cert, key));
    let server = mxjob_server::server::start_with(
        Registry::new(Arc::new(MemoryStore::new())),
        settings,
        &discard(),
    )
    .expect("TLS server starts");
    let url = format!("https://localhost:{}", server.local_addr().port());
    let kubectl = Kubectl::current_with_token(&url, "can-i", "alice-token", &ca_pem);
    assert_eq!(
        kubectl
            .run(&["auth", "can-i", "create", "mxjobs", "-n", "a"])
            .await
            .trim(),
        "yes"
    );
    let output = kubectl
        .command(&["auth", "can-i", "delete", "mxjobs", "-n", "a"])
        .output()
        .await
        .expect("kubectl runs");
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "no");
    let output = kubectl
        .command(&["auth", "can-i", "create", "mxjobs", "-n", "b"])
        .output()
        .await
        .expect("kubectl runs");
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "no");
    // Across namespaces only with a grant for every namespace.
    let refused = kubectl.fail(&["get", "mxjobs", "-A"]).await;
    assert!(
        refused.contains("forbidden") && refused.contains("at the cluster scope"),
        "{refused}"
    );
    server.close().await.expect("server stops");
}

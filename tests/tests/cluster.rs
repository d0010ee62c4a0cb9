//! The throwaway Kubernetes API of `mxjob_tests::cluster` (upstream
//! kube-apiserver over etcd), driven with kubectl 1.37 and raw HTTP, and
//! the manifests of `deploy/` checked against it.

use std::path::PathBuf;
use std::process::Output;
use std::time::{Duration, Instant};

use mxjob_tests::cluster::{Cluster, ADMIN_CONTEXT, LIMITED_CONTEXT, LIMITED_USER};
use serde_json::{json, Value};

/// How long one kubectl command may take.
const KUBECTL_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs kubectl in `context`, writing `stdin` to it when given.
async fn kubectl_raw(
    cluster: &Cluster,
    context: &str,
    args: &[&str],
    stdin: Option<&str>,
) -> Output {
    let mut command = cluster.kubectl(context);
    command.args(args);
    if stdin.is_some() {
        command.stdin(std::process::Stdio::piped());
    }
    command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = command.spawn().expect("kubectl starts");
    if let Some(text) = stdin {
        use tokio::io::AsyncWriteExt;
        let mut pipe = child.stdin.take().expect("kubectl's stdin");
        pipe.write_all(text.as_bytes())
            .await
            .expect("writing to kubectl");
        drop(pipe);
    }
    tokio::time::timeout(KUBECTL_TIMEOUT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("kubectl {args:?} did not finish in {KUBECTL_TIMEOUT:?}"))
        .expect("kubectl runs")
}

/// Runs kubectl as the administrator; panics unless it succeeds. Returns
/// its standard output.
async fn kubectl(cluster: &Cluster, args: &[&str]) -> String {
    kubectl_ok(cluster, ADMIN_CONTEXT, args, None).await
}

async fn kubectl_ok(
    cluster: &Cluster,
    context: &str,
    args: &[&str],
    stdin: Option<&str>,
) -> String {
    let output = kubectl_raw(cluster, context, args, stdin).await;
    assert!(
        output.status.success(),
        "kubectl --context {context} {args:?} failed: {}{}\nkube-apiserver's log ends:\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
        cluster.apiserver_log()
    );
    String::from_utf8(output.stdout).expect("kubectl prints UTF-8")
}

/// `kubectl get ... -o json` as JSON.
async fn get_json(cluster: &Cluster, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["-o", "json"]);
    serde_json::from_str(&kubectl(cluster, &all).await).expect("kubectl prints JSON")
}

fn pod(name: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": { "name": name, "labels": { "app": "smoke" } },
        "spec": {
            "restartPolicy": "Never",
            "containers": [{ "name": "main", "image": "busybox:1.36", "command": ["true"] }]
        }
    })
}

/// A Pod is created and stays Pending (nothing runs it); the test writes its
/// status through `pods/status` as a kubelet would, once over HTTP and once
/// with kubectl, and reads it back with kubectl, HTTP and the Python client.
/// The main resource ignores a status change and the status subresource a
/// spec change, as the real API server does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_s_status_is_written_through_the_status_subresource_and_read_back() {
    let cluster = Cluster::start().await;
    kubectl(&cluster, &["create", "namespace", "team-a"]).await;
    let created = kubectl_ok(
        &cluster,
        ADMIN_CONTEXT,
        &["create", "-n", "team-a", "-f", "-", "-o", "json"],
        Some(&pod("worker-0").to_string()),
    )
    .await;
    let created: Value = serde_json::from_str(&created).expect("JSON");
    assert_eq!(created["metadata"]["namespace"], "team-a");
    assert_eq!(created["status"]["phase"], "Pending", "{created}");
    assert!(
        created["spec"]["nodeName"].is_null(),
        "nothing schedules it"
    );

    // The main resource keeps the status it has.
    kubectl(
        &cluster,
        &[
            "patch",
            "pod",
            "worker-0",
            "-n",
            "team-a",
            "--type=merge",
            "-p",
            r#"{"status":{"phase":"Failed"}}"#,
        ],
    )
    .await;
    let read = get_json(&cluster, &["get", "pod", "worker-0", "-n", "team-a"]).await;
    assert_eq!(read["status"]["phase"], "Pending", "{read}");

    // The kubelet's part, over HTTP with the administrator's token.
    let status_url = format!(
        "{}/api/v1/namespaces/team-a/pods/worker-0/status",
        cluster.url
    );
    let response = cluster
        .http()
        .patch(&status_url)
        .bearer_auth(&cluster.admin_token)
        .header("Content-Type", "application/merge-patch+json")
        .body(json!({"status": {"phase": "Running"}}).to_string())
        .send()
        .await
        .expect("PATCH pods/status");
    assert_eq!(response.status(), 200);
    let patched: Value = response.json().await.expect("a Pod");
    assert_eq!(patched["status"]["phase"], "Running", "{patched}");
    assert_eq!(patched["spec"]["containers"][0]["image"], "busybox:1.36");

    // And with kubectl's --subresource.
    kubectl(
        &cluster,
        &[
            "patch",
            "pod",
            "worker-0",
            "-n",
            "team-a",
            "--subresource=status",
            "--type=merge",
            "-p",
            r#"{"status":{"phase":"Succeeded","message":"done"}}"#,
        ],
    )
    .await;
    let read = get_json(&cluster, &["get", "pod", "worker-0", "-n", "team-a"]).await;
    assert_eq!(read["status"]["phase"], "Succeeded", "{read}");
    assert_eq!(read["status"]["message"], "done", "{read}");
    let phase = kubectl(
        &cluster,
        &[
            "get",
            "pod",
            "worker-0",
            "-n",
            "team-a",
            "--subresource=status",
            "-o",
            "jsonpath={.status.phase}",
        ],
    )
    .await;
    assert_eq!(phase, "Succeeded");
    let response = cluster
        .http()
        .get(&status_url)
        .bearer_auth(&cluster.admin_token)
        .send()
        .await
        .expect("GET pods/status");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("a Pod");
    assert_eq!(body["status"]["phase"], "Succeeded");

    // The kubeconfig is an ordinary one: the Python client (its own
    // kubeconfig loader, OpenSSL's TLS) reads the Pod with it too.
    let script = "import sys\n\
        from kubernetes import client, config\n\
        config.load_kube_config(config_file=sys.argv[1], context='admin')\n\
        pod = client.CoreV1Api().read_namespaced_pod_status('worker-0', 'team-a')\n\
        print(pod.status.phase)\n";
    let output = tokio::process::Command::new(mxjob_tests::acceptance_tool("venv/bin/python"))
        .arg("-c")
        .arg(script)
        .arg(&cluster.kubeconfig)
        .output()
        .await
        .expect("python runs");
    assert!(
        output.status.success(),
        "python: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "Succeeded");

    // The status subresource changes only the status: a spec in the same
    // patch is dropped.
    kubectl(
        &cluster,
        &[
            "patch",
            "pod",
            "worker-0",
            "-n",
            "team-a",
            "--subresource=status",
            "--type=merge",
            "-p",
            r#"{"spec":{"activeDeadlineSeconds":60},"status":{"message":"again"}}"#,
        ],
    )
    .await;
    let read = get_json(&cluster, &["get", "pod", "worker-0", "-n", "team-a"]).await;
    assert_eq!(read["status"]["message"], "again", "{read}");
    assert!(read["spec"]["activeDeadlineSeconds"].is_null(), "{read}");
}

/// Polls `kubectl auth can-i` until it says `want` (RBAC changes reach the
/// authorizer through a watch, a moment after they are written).
async fn eventually_can(cluster: &Cluster, context: &str, args: &[&str], want: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut all = vec!["auth", "can-i"];
    all.extend(args);
    loop {
        let output = kubectl_raw(cluster, context, &all, None).await;
        let said = String::from_utf8_lossy(&output.stdout).trim().to_string();
        if said == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "kubectl --context {context} {all:?} still says {said:?}, not {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// RBAC is really enforced: the limited user is refused (403, and kubectl
/// says Forbidden) until a Role and RoleBinding grant it pods in one
/// namespace, and then may use pods there and nowhere else. A token nobody
/// issued is 401.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rbac_refuses_the_limited_user_until_a_role_binding_grants_pods_in_one_namespace() {
    let cluster = Cluster::start().await;
    kubectl(&cluster, &["create", "namespace", "team-a"]).await;
    kubectl(&cluster, &["create", "namespace", "team-b"]).await;
    let pods_url = |namespace: &str| format!("{}/api/v1/namespaces/{namespace}/pods", cluster.url);
    let http = cluster.http();

    let refused = kubectl_raw(
        &cluster,
        LIMITED_CONTEXT,
        &["get", "pods", "-n", "team-a"],
        None,
    )
    .await;
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        said.contains("Forbidden") && said.contains(&format!("User \"{LIMITED_USER}\"")),
        "{said}"
    );
    let response = http
        .get(pods_url("team-a"))
        .bearer_auth(&cluster.limited_token)
        .send()
        .await
        .expect("GET pods");
    assert_eq!(response.status(), 403);
    let status: Value = response.json().await.expect("a Status");
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["reason"], "Forbidden");
    let response = http
        .get(pods_url("team-a"))
        .bearer_auth("not-a-token-anyone-issued")
        .send()
        .await
        .expect("GET pods");
    assert_eq!(response.status(), 401);
    let response = http
        .get(pods_url("team-a"))
        .bearer_auth(&cluster.admin_token)
        .send()
        .await
        .expect("GET pods");
    assert_eq!(response.status(), 200, "the administrator may");

    kubectl(
        &cluster,
        &[
            "create",
            "role",
            "pod-editor",
            "-n",
            "team-a",
            "--verb=get,list,watch,create,delete",
            "--resource=pods",
        ],
    )
    .await;
    kubectl(
        &cluster,
        &[
            "create",
            "rolebinding",
            "pod-editor",
            "-n",
            "team-a",
            "--role=pod-editor",
            &format!("--user={LIMITED_USER}"),
        ],
    )
    .await;
    eventually_can(
        &cluster,
        LIMITED_CONTEXT,
        &["list", "pods", "-n", "team-a"],
        "yes",
    )
    .await;

    let listed = kubectl_ok(
        &cluster,
        LIMITED_CONTEXT,
        &["get", "pods", "-n", "team-a", "-o", "json"],
        None,
    )
    .await;
    let listed: Value = serde_json::from_str(&listed).expect("JSON");
    assert_eq!(listed["items"], json!([]));
    kubectl_ok(
        &cluster,
        LIMITED_CONTEXT,
        &["create", "-n", "team-a", "-f", "-"],
        Some(&pod("granted").to_string()),
    )
    .await;
    let response = http
        .get(format!("{}/granted", pods_url("team-a")))
        .bearer_auth(&cluster.limited_token)
        .send()
        .await
        .expect("GET pod");
    assert_eq!(response.status(), 200);

    // Only pods, only in team-a.
    let response = http
        .get(pods_url("team-b"))
        .bearer_auth(&cluster.limited_token)
        .send()
        .await
        .expect("GET pods");
    assert_eq!(response.status(), 403, "team-b is not granted");
    let response = http
        .get(format!("{}/api/v1/namespaces/team-a/secrets", cluster.url))
        .bearer_auth(&cluster.limited_token)
        .send()
        .await
        .expect("GET secrets");
    assert_eq!(response.status(), 403, "secrets are not granted");
    let response = http
        .patch(format!("{}/granted/status", pods_url("team-a")))
        .bearer_auth(&cluster.limited_token)
        .header("Content-Type", "application/merge-patch+json")
        .body(r#"{"status":{"phase":"Running"}}"#)
        .send()
        .await
        .expect("PATCH pods/status");
    assert_eq!(response.status(), 403, "pods/status is not granted");
    let refused = kubectl_raw(
        &cluster,
        LIMITED_CONTEXT,
        &["get", "pods", "-n", "team-b"],
        None,
    )
    .await;
    assert!(
        !refused.status.success(),
        "kubectl is refused in team-b too"
    );
}

/// The folder `deploy/`.
fn deploy_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

/// What `kubectl auth can-i` says for the ServiceAccount of `deploy/`.
async fn service_account_can(cluster: &Cluster, args: &[&str]) -> String {
    let mut all = vec![
        "auth",
        "can-i",
        "--as=system:serviceaccount:mxjob-system:mxjob",
    ];
    all.extend(args);
    let output = kubectl_raw(cluster, ADMIN_CONTEXT, &all, None).await;
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// `deploy/` is accepted by the real API server (a server-side dry run,
/// then for real), its pod template passes the namespace's `restricted` Pod
/// Security level, the Deployment runs `--executor kubernetes`, and its
/// ServiceAccount may do with pods and services what the executor needs, in
/// any namespace, and nothing more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deploy_manifests_apply_and_grant_the_service_account_what_the_executor_needs() {
    let cluster = Cluster::start().await;
    let dir = deploy_dir();
    let dir = dir.to_str().expect("a UTF-8 path");
    let as_account = "--as=system:serviceaccount:mxjob-system:mxjob";

    // A dry run does not create the namespace the other objects go in, so
    // it goes first, for real.
    let namespace = format!("{dir}/00-namespace.yaml");
    kubectl(&cluster, &["apply", "-f", &namespace]).await;
    let dry = kubectl_raw(
        &cluster,
        ADMIN_CONTEXT,
        &["apply", "--dry-run=server", "-f", dir],
        None,
    )
    .await;
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&dry.stdout),
        String::from_utf8_lossy(&dry.stderr)
    );
    assert!(dry.status.success(), "server-side dry run failed: {said}");
    for object in [
        "serviceaccount/mxjob",
        "clusterrole.rbac.authorization.k8s.io/mxjob",
        "clusterrolebinding.rbac.authorization.k8s.io/mxjob",
        "persistentvolumeclaim/mxjob-data",
        "deployment.apps/mxjob",
        "service/mxjob",
    ] {
        assert!(
            said.contains(&format!("{object} created (server dry run)")),
            "{said}"
        );
    }
    assert!(!said.contains("Warning"), "the dry run warns: {said}");
    // It stored nothing.
    let missing = kubectl_raw(
        &cluster,
        ADMIN_CONTEXT,
        &["get", "serviceaccount", "mxjob", "-n", "mxjob-system"],
        None,
    )
    .await;
    assert!(
        !missing.status.success(),
        "the dry run created the ServiceAccount"
    );
    assert_eq!(
        service_account_can(&cluster, &["create", "pods", "-n", "team-a"]).await,
        "no",
        "nothing is granted before the manifests are applied"
    );

    // For real, the whole folder at once (the namespace is unchanged).
    kubectl(
        &cluster,
        &[
            "-n",
            "mxjob-system",
            "create",
            "secret",
            "generic",
            "mxjob-tokens",
            "--from-literal=tokens.csv=a-token,operator,uid-operator,\"ops\"",
        ],
    )
    .await;
    let applied = kubectl_raw(&cluster, ADMIN_CONTEXT, &["apply", "-f", dir], None).await;
    assert!(
        applied.status.success() && applied.stderr.is_empty(),
        "apply: {}{}",
        String::from_utf8_lossy(&applied.stdout),
        String::from_utf8_lossy(&applied.stderr)
    );

    let deployment = get_json(
        &cluster,
        &["get", "deployment", "mxjob", "-n", "mxjob-system"],
    )
    .await;
    let template = &deployment["spec"]["template"];
    let container = &template["spec"]["containers"][0];
    assert_eq!(container["image"], "mxjob-server:latest");
    let args: Vec<&str> = container["args"]
        .as_array()
        .expect("args")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        args,
        [
            "--store",
            "sqlite",
            "--data-dir",
            "/data",
            "--executor",
            "kubernetes",
            "--listen",
            "0.0.0.0:8080",
            "--token-auth-file",
            "/etc/mxjob/tokens.csv",
        ]
    );
    assert_eq!(template["spec"]["serviceAccountName"], "mxjob");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/version");
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/version");
    let service = get_json(&cluster, &["get", "service", "mxjob", "-n", "mxjob-system"]).await;
    assert_eq!(service["spec"]["selector"], template["metadata"]["labels"]);
    assert!(
        service["spec"]["clusterIP"]
            .as_str()
            .is_some_and(|ip| ip.starts_with("10.96.")),
        "{service}"
    );

    // No controller makes the Deployment's pod here, so the test makes it
    // from the template: the namespace's `restricted` level admits it.
    let mut pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": { "name": "from-template", "labels": template["metadata"]["labels"] },
        "spec": template["spec"]
    });
    kubectl_ok(
        &cluster,
        ADMIN_CONTEXT,
        &["create", "-n", "mxjob-system", "-f", "-"],
        Some(&pod.to_string()),
    )
    .await;
    // While the same pod run as root is refused there.
    pod["metadata"]["name"] = json!("as-root");
    pod["spec"]["securityContext"]["runAsNonRoot"] = json!(false);
    pod["spec"]["securityContext"]["runAsUser"] = json!(0);
    let refused = kubectl_raw(
        &cluster,
        ADMIN_CONTEXT,
        &["create", "-n", "mxjob-system", "-f", "-"],
        Some(&pod.to_string()),
    )
    .await;
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("PodSecurity"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    // What the executor needs, in namespaces that did not exist when mxjob
    // was deployed.
    eventually_can(
        &cluster,
        ADMIN_CONTEXT,
        &[as_account, "create", "pods", "-n", "team-a"],
        "yes",
    )
    .await;
    for (args, want) in [
        (vec!["create", "pods", "-n", "team-a"], "yes"),
        (vec!["delete", "pods", "-n", "team-b"], "yes"),
        (vec!["patch", "pods", "-n", "team-a"], "yes"),
        (vec!["watch", "pods", "--all-namespaces"], "yes"),
        (vec!["list", "pods", "--all-namespaces"], "yes"),
        (
            vec!["get", "pods", "--subresource=log", "-n", "team-a"],
            "yes",
        ),
        (vec!["get", "pods", "-n", "team-b"], "yes"),
        (vec!["create", "services", "-n", "team-a"], "yes"),
        (vec!["delete", "services", "-n", "team-a"], "yes"),
        (vec!["patch", "services", "-n", "team-a"], "yes"),
        (vec!["list", "services", "--all-namespaces"], "yes"),
        // Services are listed, never watched.
        (vec!["watch", "services", "--all-namespaces"], "no"),
        // And nothing more.
        (vec!["create", "secrets", "-n", "team-a"], "no"),
        (vec!["get", "secrets", "-n", "mxjob-system"], "no"),
        (
            vec!["patch", "pods", "--subresource=status", "-n", "team-a"],
            "no",
        ),
        (vec!["update", "pods", "-n", "team-a"], "no"),
        (
            vec!["create", "pods", "--subresource=exec", "-n", "team-a"],
            "no",
        ),
        (vec!["create", "deployments.apps", "-n", "team-a"], "no"),
        (vec!["create", "configmaps", "-n", "team-a"], "no"),
        (vec!["create", "namespaces"], "no"),
    ] {
        assert_eq!(
            service_account_can(&cluster, &args).await,
            want,
            "can the ServiceAccount {args:?}?"
        );
    }
}

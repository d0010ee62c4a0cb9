//! The Kubernetes executor against a real API server: upstream
//! kube-apiserver over etcd (`mxjob_tests::cluster`), with mxjob-server in
//! this process driving it through kube-rs.
//!
//! Nothing runs Pods here — there is no scheduler and no kubelet — so the
//! tests play the kubelet: they write a Pod's phase, its `mxnet`
//! container's state, exit code and restart count through the `pods/status`
//! subresource with the administrator's token, as a kubelet reports them,
//! and then check what mxjob made of it, in the cluster and in the job's
//! status. These are the local executor's tests of meaning
//! (`tests/controller.rs`) told in Pods.
//!
//! Every wait polls with a generous deadline; no test measures time.

use std::sync::Arc;
use std::time::Duration;

use mxjob_server::controller::kubernetes::KubernetesSettings;
use mxjob_server::controller::ControllerSettings;
use mxjob_server::server::Settings;
use mxjob_server::store::memory::MemoryStore;
use mxjob_server::store::Store;
use mxjob_tests::cluster::{Cluster, ADMIN_CONTEXT, LIMITED_CONTEXT, LIMITED_USER};
use mxjob_tests::{discard, TestServer};
use serde_json::{json, Value};
use tokio::time::Instant;

/// The longest any single wait may take (two busy cores, a real API server).
const WAIT: Duration = Duration::from_secs(60);
const INSTALLATION: &str = "test";
const INSTALLATION_LABEL: &str = "mxjob.kubeflow.org/installation";
const UID_ANNOTATION: &str = "mxjob.kubeflow.org/job-uid";

/// One role of a test job.
#[derive(Clone)]
struct Role {
    kind: &'static str,
    replicas: i32,
    restart: &'static str,
}

fn role(kind: &'static str, replicas: i32, restart: &'static str) -> Role {
    Role {
        kind,
        replicas,
        restart,
    }
}

fn train(workers: i32, restart: &'static str) -> Vec<Role> {
    vec![
        role("Scheduler", 1, "Never"),
        role("Server", 1, "Never"),
        role("Worker", workers, restart),
    ]
}

/// A job whose replicas run an image nothing will pull; `spec` is merged
/// into its spec.
fn mxjob(name: &str, roles: &[Role], spec: Value) -> Value {
    let mut specs = serde_json::Map::new();
    for role in roles {
        specs.insert(
            role.kind.to_string(),
            json!({
                "replicas": role.replicas,
                "restartPolicy": role.restart,
                "template": {
                    "metadata": {"labels": {"team": "vision"}},
                    "spec": {
                        "schedulerName": "volcano",
                        "nodeSelector": {"accelerator": "gpu"},
                        "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
                        "containers": [{
                            "name": "mxnet",
                            "image": "mxnet/python:1.9.1",
                            "command": ["python3", "train.py"],
                            "env": [{"name": "DMLC_ROLE", "value": "overridden"}, {"name": "MODEL", "value": "resnet"}],
                            "resources": {"limits": {"cpu": "2", "memory": "1Gi"}},
                            "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                        }],
                        "volumes": [{"name": "data", "emptyDir": {}}],
                    },
                },
            }),
        );
    }
    let mut job = json!({
        "apiVersion": "kubeflow.org/v1",
        "kind": "MXJob",
        "metadata": {"name": name},
        "spec": {"jobMode": "MXTrain", "mxReplicaSpecs": specs},
    });
    if let (Some(target), Value::Object(extra)) = (job["spec"].as_object_mut(), spec) {
        target.extend(extra);
    }
    job
}

/// What a kubelet would write: the Pod and its `mxnet` container running.
fn running() -> Value {
    json!({"phase": "Running", "containerStatuses": [container(0, json!({"running": {}}))]})
}

/// The Pod finished (`Succeeded` or `Failed`) with the container's `code`.
fn exited(phase: &str, code: i32) -> Value {
    json!({"phase": phase, "containerStatuses": [container(0, json!({"terminated": {"exitCode": code}}))]})
}

/// Running again after `restarts` restarts.
fn running_after(restarts: i32) -> Value {
    json!({"phase": "Running", "containerStatuses": [container(restarts, json!({"running": {}}))]})
}

/// The container failed `restarts` times and waits to be started again.
fn crash_looping(restarts: i32) -> Value {
    let mut status = container(restarts, json!({"waiting": {"reason": "CrashLoopBackOff"}}));
    status["lastState"] = json!({"terminated": {"exitCode": 1}});
    json!({"phase": "Running", "containerStatuses": [status]})
}

fn container(restarts: i32, state: Value) -> Value {
    json!({
        "name": "mxnet", "image": "mxnet/python:1.9.1", "imageID": "",
        "ready": state.get("running").is_some(), "restartCount": restarts, "state": state,
    })
}

/// A cluster, a store, and mxjob-server(s) over them.
struct Harness {
    cluster: Cluster,
    /// The kubeconfig mxjob-server reads (the cluster's, or one through a relay).
    kubeconfig: std::path::PathBuf,
    store: Arc<dyn Store>,
    context: &'static str,
    lease: Duration,
    dir: tempfile::TempDir,
    server: Option<TestServer>,
    http: reqwest::Client,
    kube: reqwest::Client,
}

impl Harness {
    async fn start() -> Self {
        Self::start_as(ADMIN_CONTEXT, Duration::from_secs(15)).await
    }

    async fn start_as(context: &'static str, lease: Duration) -> Self {
        let mut harness = Self::without_server(context, lease).await;
        harness.server = Some(harness.start_another().await);
        harness
    }

    /// The cluster and the store; start a server with [`Self::start_another`].
    async fn without_server(context: &'static str, lease: Duration) -> Self {
        let cluster = Cluster::start().await;
        let kube = cluster.http();
        Harness {
            kubeconfig: cluster.kubeconfig.clone(),
            cluster,
            store: Arc::new(MemoryStore::new()),
            context,
            lease,
            dir: tempfile::tempdir().expect("temp dir"),
            server: None,
            http: reqwest::Client::new(),
            kube,
        }
    }

    /// Another mxjob-server over the same store and cluster.
    async fn start_another(&self) -> TestServer {
        let cluster = KubernetesSettings::connect(
            Some(self.kubeconfig.clone()),
            Some(self.context.to_string()),
            INSTALLATION.to_string(),
        )
        .await
        .expect("the test cluster answers");
        let mut controller = ControllerSettings::in_cluster(cluster, self.dir.path().join("logs"));
        controller.lease_duration = self.lease;
        let mut settings = Settings::new("127.0.0.1:0".parse().expect("address"));
        settings.controller = Some(controller);
        TestServer::start_configured(self.store.clone(), settings, discard()).await
    }

    /// A server without the controller: it changes the store and nothing else.
    async fn start_bystander(&self) -> TestServer {
        TestServer::start_with(self.store.clone()).await
    }

    fn server(&self) -> &TestServer {
        self.server.as_ref().expect("a server runs")
    }

    async fn stop(mut self) {
        if let Some(server) = self.server.take() {
            server.stop().await;
        }
    }

    // --- the cluster, as the administrator ---

    fn api(&self, path: &str) -> String {
        format!("{}{path}", self.cluster.url)
    }

    async fn namespace(&self, name: &str) {
        let response = self
            .kube
            .post(self.api("/api/v1/namespaces"))
            .bearer_auth(&self.cluster.admin_token)
            .json(&json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}))
            .send()
            .await
            .expect("POST namespace");
        assert_eq!(response.status(), 201, "creating namespace {name}");
    }

    async fn kube_json(&self, request: reqwest::RequestBuilder, what: &str) -> Value {
        let response = request
            .bearer_auth(&self.cluster.admin_token)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let code = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert!(code.is_success(), "{what}: {code}: {body}");
        body
    }

    /// The Pods (or Services: `kind`) labelled with a job's name, by name.
    async fn objects(&self, kind: &str, ns: &str, job: &str) -> Vec<Value> {
        let url = self.api(&format!(
            "/api/v1/namespaces/{ns}/{kind}?labelSelector=job-name%3D{job}"
        ));
        let list = self.kube_json(self.kube.get(url), "list").await;
        let mut items = list["items"].as_array().cloned().unwrap_or_default();
        items.sort_by_key(|o| name_of(o).to_string());
        items
    }

    async fn pods(&self, ns: &str, job: &str) -> Vec<Value> {
        self.objects("pods", ns, job).await
    }

    async fn services(&self, ns: &str, job: &str) -> Vec<Value> {
        self.objects("services", ns, job).await
    }

    /// The kubelet's part: writes a Pod's status.
    async fn kubelet(&self, ns: &str, pod: &str, status: Value) {
        let url = self.api(&format!("/api/v1/namespaces/{ns}/pods/{pod}/status"));
        self.kube_json(
            self.kube
                .patch(url)
                .header("Content-Type", "application/merge-patch+json")
                .body(json!({ "status": status }).to_string()),
            &format!("status of {pod}"),
        )
        .await;
    }

    /// Polls the Pods of a job until `test` holds.
    async fn wait_pods(
        &self,
        ns: &str,
        job: &str,
        what: &str,
        test: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let deadline = Instant::now() + WAIT;
        loop {
            let pods = self.pods(ns, job).await;
            if test(&pods) {
                return pods;
            }
            assert!(
                Instant::now() < deadline,
                "{job}: no {what} within {WAIT:?}; pods: {:?}",
                pods.iter().map(summary).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits until the job has all its `count` Pods and returns them.
    async fn wait_created(&self, ns: &str, job: &str, count: usize) -> Vec<Value> {
        self.wait_pods(ns, job, &format!("{count} pods"), |pods| {
            pods.len() == count
        })
        .await
    }

    /// Waits until no Pod or Service of the job is left.
    async fn wait_all_gone(&self, ns: &str, job: &str) {
        self.wait_pods(ns, job, "deletion of every pod", |pods| pods.is_empty())
            .await;
        let deadline = Instant::now() + WAIT;
        while !self.services(ns, job).await.is_empty() {
            assert!(Instant::now() < deadline, "{job}: services left");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    // --- mxjob ---

    fn collection(&self, ns: &str) -> String {
        self.server().collection_url(ns)
    }

    async fn create(&self, ns: &str, job: Value) -> Value {
        let response = self
            .http
            .post(self.collection(ns))
            .json(&job)
            .send()
            .await
            .expect("POST");
        assert_eq!(response.status().as_u16(), 201, "create");
        response.json().await.expect("JSON")
    }

    async fn get(&self, ns: &str, name: &str) -> Option<Value> {
        let response = self
            .http
            .get(self.server().object_url(ns, name))
            .send()
            .await
            .expect("GET");
        match response.status().as_u16() {
            200 => Some(response.json().await.expect("JSON")),
            404 => None,
            code => panic!("GET {name}: {code}"),
        }
    }

    /// Read, change, replace; again when the controller wrote in between.
    async fn update(&self, ns: &str, name: &str, change: impl Fn(&mut Value)) {
        for _ in 0..20 {
            let mut job = self.get(ns, name).await.expect("the job exists");
            change(&mut job);
            let url = self.server().object_url(ns, name);
            let response = self.http.put(url).json(&job).send().await.expect("PUT");
            match response.status().as_u16() {
                200 => return,
                409 => continue,
                code => panic!("PUT {name}: {code}"),
            }
        }
        panic!("PUT {name} kept conflicting")
    }

    async fn delete(&self, ns: &str, name: &str, options: Value) {
        let response = self
            .http
            .delete(self.server().object_url(ns, name))
            .json(&options)
            .send()
            .await
            .expect("DELETE");
        assert_eq!(response.status().as_u16(), 200, "delete {name}");
    }

    /// Polls the job until `test` holds; panics with the last state.
    async fn wait_for(
        &self,
        ns: &str,
        name: &str,
        what: &str,
        test: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + WAIT;
        let mut last = None;
        loop {
            if let Some(job) = self.get(ns, name).await {
                if test(&job) {
                    return job;
                }
                last = Some(job);
            }
            assert!(
                Instant::now() < deadline,
                "{name}: no {what} within {WAIT:?}; last seen: {:#}",
                last.unwrap_or(Value::Null)["status"]
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// `GET …/log?QUERY`: code, media type, body.
    async fn log(&self, ns: &str, name: &str, query: &str) -> (u16, String, String) {
        let url = format!("{}/log?{query}", self.server().object_url(ns, name));
        let response = self.http.get(url).send().await.expect("GET log");
        let code = response.status().as_u16();
        let media = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        (code, media, response.text().await.unwrap_or_default())
    }

    async fn wait_gone(&self, ns: &str, name: &str) {
        let deadline = Instant::now() + WAIT;
        while self.get(ns, name).await.is_some() {
            assert!(Instant::now() < deadline, "{name} is still there");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

fn name_of(object: &Value) -> &str {
    object["metadata"]["name"].as_str().unwrap_or_default()
}

fn uid_of(object: &Value) -> String {
    object["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn summary(pod: &Value) -> String {
    format!(
        "{} {} deleting={}",
        name_of(pod),
        pod["status"]["phase"].as_str().unwrap_or("-"),
        !pod["metadata"]["deletionTimestamp"].is_null()
    )
}

fn names(objects: &[Value]) -> Vec<&str> {
    objects.iter().map(name_of).collect()
}

fn condition<'a>(job: &'a Value, type_: &str) -> Option<&'a Value> {
    job["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

fn holds(job: &Value, type_: &str) -> bool {
    condition(job, type_).is_some_and(|c| c["status"] == "True")
}

fn message(job: &Value, type_: &str) -> String {
    condition(job, type_)
        .and_then(|c| c["message"].as_str())
        .unwrap_or_default()
        .to_string()
}

fn env_of(pod: &Value) -> Vec<(String, String)> {
    pod["spec"]["containers"][0]["env"]
        .as_array()
        .expect("env")
        .iter()
        .map(|v| {
            (
                v["name"].as_str().unwrap_or_default().to_string(),
                v["value"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn env(pod: &Value, name: &str) -> String {
    let all = env_of(pod);
    let mut found = all.iter().filter(|(n, _)| n == name);
    let value = found
        .next()
        .unwrap_or_else(|| panic!("{}: no {name} in {all:?}", name_of(pod)))
        .1
        .clone();
    assert!(found.next().is_none(), "{name} twice");
    value
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_become_pods_and_services_with_the_operators_names_variables_and_template() {
    let h = Harness::start().await;
    h.namespace("team-a").await;
    let created = h
        .create("team-a", mxjob("mnist", &train(2, "Never"), json!({})))
        .await;
    let uid = created["metadata"]["uid"]
        .as_str()
        .expect("uid")
        .to_string();
    let pods = h.wait_created("team-a", "mnist", 4).await;
    assert_eq!(
        names(&pods),
        [
            "mnist-scheduler-0",
            "mnist-server-0",
            "mnist-worker-0",
            "mnist-worker-1"
        ]
    );
    let worker = &pods[3];
    let labels = &worker["metadata"]["labels"];
    assert_eq!(labels["group-name"], "kubeflow.org");
    assert_eq!(labels["job-name"], "mnist");
    assert_eq!(labels["replica-type"], "worker");
    assert_eq!(labels["replica-index"], "1");
    assert_eq!(labels[INSTALLATION_LABEL], INSTALLATION);
    assert_eq!(labels["team"], "vision", "the template's labels stay");
    assert_eq!(
        worker["metadata"]["annotations"][UID_ANNOTATION],
        uid.as_str()
    );
    assert_eq!(worker["metadata"]["namespace"], "team-a");
    // The template passes through.
    let spec = &worker["spec"];
    assert_eq!(spec["schedulerName"], "volcano");
    assert_eq!(spec["nodeSelector"]["accelerator"], "gpu");
    assert_eq!(spec["tolerations"][0]["key"], "gpu");
    assert_eq!(spec["volumes"][0]["name"], "data");
    let container = &spec["containers"][0];
    assert_eq!(container["image"], "mxnet/python:1.9.1");
    assert_eq!(container["resources"]["limits"]["memory"], "1Gi");
    assert_eq!(container["volumeMounts"][0]["mountPath"], "/data");
    assert_eq!(spec["restartPolicy"], "Never");
    assert!(
        container["ports"]
            .as_array()
            .expect("ports")
            .iter()
            .any(|p| p["name"] == "mxjob-port" && p["containerPort"] == 9091),
        "{container}"
    );
    // The operator's variables, with the replicas' DNS names.
    assert_eq!(
        env(worker, "DMLC_ROLE"),
        "worker",
        "the operator's value wins"
    );
    assert_eq!(env(worker, "MODEL"), "resnet");
    assert_eq!(env(worker, "DMLC_PS_ROOT_URI"), "mnist-scheduler-0");
    assert_eq!(env(worker, "DMLC_PS_ROOT_PORT"), "9091");
    assert_eq!(env(worker, "DMLC_NUM_SERVER"), "1");
    assert_eq!(env(worker, "DMLC_NUM_WORKER"), "2");
    assert_eq!(env(worker, "DMLC_USE_KUBERNETES"), "1");
    assert_eq!(env(worker, "DMLC_WORKER_ID"), "1");
    let config: Value = serde_json::from_str(&env(worker, "MX_CONFIG")).expect("JSON");
    assert_eq!(config["task"], json!({"type": "worker", "index": 1}));
    assert_eq!(
        config["cluster"]["server"],
        json!([{"url": "mnist-server-0", "port": 9091}])
    );
    assert_eq!(env(&pods[0], "DMLC_ROLE"), "scheduler");

    // One headless Service per replica, selecting its Pod.
    let services = h.services("team-a", "mnist").await;
    assert_eq!(names(&services), names(&pods));
    let service = &services[0];
    assert_eq!(service["spec"]["clusterIP"], "None");
    assert_eq!(
        service["spec"]["selector"],
        json!({"group-name": "kubeflow.org", "job-name": "mnist", "replica-type": "scheduler", "replica-index": "0"})
    );
    assert_eq!(service["spec"]["ports"][0]["port"], 9091);
    assert_eq!(
        service["metadata"]["annotations"][UID_ANNOTATION],
        uid.as_str()
    );

    // Pending Pods are not active; running ones are.
    let job = h
        .wait_for("team-a", "mnist", "Created", |j| holds(j, "Created"))
        .await;
    assert!(condition(&job, "Running").is_none(), "{job:#}");
    for pod in &pods {
        h.kubelet("team-a", name_of(pod), running()).await;
    }
    let job = h
        .wait_for("team-a", "mnist", "Running", |j| {
            holds(j, "Running") && j["status"]["mxReplicaStatuses"]["Worker"]["active"] == 2
        })
        .await;
    assert_eq!(message(&job, "Running"), "MXJob mnist is running.");

    // The log comes from the cluster (which has no node to ask here, so
    // it is empty).
    let (code, media, body) = h.log("team-a", "mnist", "replicaType=Worker&index=1").await;
    assert_eq!((code, body.as_str()), (200, ""), "{media}");
    assert!(media.starts_with("text/plain"), "{media}");

    // The scheduler finishes: the job succeeds, and cleanPodPolicy Running
    // (the default) deletes the Pods still running and their Services.
    h.kubelet("team-a", "mnist-scheduler-0", exited("Succeeded", 0))
        .await;
    let job = h
        .wait_for("team-a", "mnist", "Succeeded", |j| holds(j, "Succeeded"))
        .await;
    assert_eq!(
        message(&job, "Succeeded"),
        "MXJob mnist is successfully completed."
    );
    assert_eq!(
        condition(&job, "Running").expect("Running")["status"],
        "False"
    );
    assert!(job["status"]["completionTime"].is_string());
    let left = h
        .wait_pods("team-a", "mnist", "clean-up", |pods| pods.len() == 1)
        .await;
    assert_eq!(names(&left), ["mnist-scheduler-0"]);
    assert_eq!(
        names(&h.services("team-a", "mnist").await),
        ["mnist-scheduler-0"]
    );
    // A replica whose Pod is gone has no log: the cluster's 404, as a Status.
    let (code, media, body) = h.log("team-a", "mnist", "replicaType=Worker&index=1").await;
    assert_eq!(code, 404, "{body}");
    assert!(media.starts_with("application/json"), "{media}");
    let status: Value = serde_json::from_str(&body).expect("a Status");
    assert_eq!(status["kind"], "Status");
    assert!(
        status["message"]
            .as_str()
            .unwrap_or_default()
            .starts_with("no pod for Worker 1 of MXJob mnist"),
        "{status}"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exit_code_recreates_pods_that_exit_retryably_and_on_failure_counts_kubelet_restarts() {
    let h = Harness::start().await;
    h.namespace("ns").await;
    h.create("ns", mxjob("retry", &train(1, "ExitCode"), json!({})))
        .await;
    h.create(
        "ns",
        mxjob(
            "counted",
            &train(1, "OnFailure"),
            json!({"backoffLimit": 1}),
        ),
    )
    .await;
    let pods = h.wait_created("ns", "retry", 3).await;
    assert_eq!(
        pods[2]["spec"]["restartPolicy"], "Never",
        "ExitCode is the controller's"
    );
    let first = uid_of(&pods[2]);
    for pod in &pods {
        h.kubelet("ns", name_of(pod), running()).await;
    }
    h.wait_for("ns", "retry", "Running", |j| holds(j, "Running"))
        .await;

    // 137 (SIGKILL) is retryable: the Pod is deleted and made again.
    h.kubelet("ns", "retry-worker-0", exited("Failed", 137))
        .await;
    let again = h
        .wait_pods("ns", "retry", "a new worker pod", |pods| {
            pods.iter()
                .any(|p| name_of(p) == "retry-worker-0" && uid_of(p) != first)
        })
        .await;
    let second = again
        .iter()
        .find(|p| name_of(p) == "retry-worker-0")
        .map(uid_of)
        .expect("the worker");
    let job = h.get("ns", "retry").await.expect("retry");
    assert!(!holds(&job, "Failed"), "{job:#}");
    // 1 is permanent: the job fails.
    h.kubelet("ns", "retry-worker-0", exited("Failed", 1)).await;
    let job = h
        .wait_for("ns", "retry", "Failed", |j| holds(j, "Failed"))
        .await;
    assert_eq!(message(&job, "Failed"), "MXJob retry is failed.");
    assert_eq!(
        job["status"]["mxReplicaStatuses"]["Worker"],
        json!({"failed": 1})
    );
    let left = h.pods("ns", "retry").await;
    assert!(
        left.iter()
            .all(|p| name_of(p) != "retry-worker-0" || uid_of(p) == second),
        "no third worker pod"
    );

    // OnFailure is the kubelet's; its restarts count against backoffLimit.
    let pods = h.wait_created("ns", "counted", 3).await;
    assert_eq!(pods[2]["spec"]["restartPolicy"], "OnFailure");
    for pod in &pods {
        h.kubelet("ns", name_of(pod), running()).await;
    }
    h.wait_for("ns", "counted", "Running", |j| holds(j, "Running"))
        .await;
    h.kubelet("ns", "counted-worker-0", crash_looping(1)).await;
    let job = h
        .wait_for("ns", "counted", "Restarting", |j| holds(j, "Restarting"))
        .await;
    assert_eq!(
        condition(&job, "Restarting").expect("Restarting")["reason"],
        "MXJobRestarting"
    );
    assert!(!holds(&job, "Failed"));
    h.kubelet("ns", "counted-worker-0", running_after(1)).await;
    h.wait_for("ns", "counted", "Running again", |j| holds(j, "Running"))
        .await;
    h.kubelet("ns", "counted-worker-0", crash_looping(2)).await;
    let job = h
        .wait_for("ns", "counted", "Failed", |j| holds(j, "Failed"))
        .await;
    assert_eq!(
        message(&job, "Failed"),
        "MXJob counted has failed because it has reached the specified backoff limit"
    );
    // The backoff limit stops everything, whatever cleanPodPolicy says.
    h.wait_all_gone("ns", "counted").await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shortening_the_deadline_of_a_running_job_fails_it_and_deletes_its_pods() {
    let h = Harness::start().await;
    h.namespace("ns").await;
    h.create(
        "ns",
        mxjob(
            "slow",
            &train(1, "Never"),
            json!({"activeDeadlineSeconds": 3600, "cleanPodPolicy": "None"}),
        ),
    )
    .await;
    for pod in h.wait_created("ns", "slow", 3).await {
        h.kubelet("ns", name_of(&pod), running()).await;
    }
    h.wait_for("ns", "slow", "Running", |j| holds(j, "Running"))
        .await;
    h.update("ns", "slow", |job| {
        job["spec"]["activeDeadlineSeconds"] = json!(2)
    })
    .await;
    let job = h
        .wait_for("ns", "slow", "Failed", |j| holds(j, "Failed"))
        .await;
    assert_eq!(
        message(&job, "Failed"),
        "MXJob slow has failed because it was active longer than specified deadline"
    );
    h.wait_all_gone("ns", "slow").await;

    // A namespace that does not exist yet: refused, then made.
    h.create("later", mxjob("early", &train(1, "Never"), json!({})))
        .await;
    let job = h
        .wait_for("later", "early", "a refusal on Running", |j| {
            condition(j, "Running").is_some_and(|c| c["reason"] == "FailedCreate")
        })
        .await;
    assert!(
        message(&job, "Running").contains("namespaces \"later\" not found"),
        "{job:#}"
    );
    h.namespace("later").await;
    h.wait_created("later", "early", 3).await;
    h.wait_for("later", "early", "the refusal gone", |j| {
        condition(j, "Running").is_none()
    })
    .await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn clean_pod_policy_decides_which_pods_outlive_the_job_and_the_ttl_deletes_the_rest() {
    let h = Harness::start().await;
    h.namespace("ns").await;
    for (name, policy) in [("all", "All"), ("running", "Running"), ("none", "None")] {
        h.create(
            "ns",
            mxjob(name, &train(1, "Never"), json!({"cleanPodPolicy": policy})),
        )
        .await;
    }
    for name in ["all", "running", "none"] {
        let pods = h.wait_created("ns", name, 3).await;
        // The server finished; the worker still runs.
        h.kubelet("ns", &format!("{name}-worker-0"), running())
            .await;
        h.kubelet("ns", &format!("{name}-server-0"), exited("Succeeded", 0))
            .await;
        h.kubelet("ns", &format!("{name}-scheduler-0"), exited("Succeeded", 0))
            .await;
        assert_eq!(pods.len(), 3);
    }
    for name in ["all", "running", "none"] {
        h.wait_for("ns", name, "Succeeded", |j| holds(j, "Succeeded"))
            .await;
    }
    h.wait_all_gone("ns", "all").await;
    let left = h
        .wait_pods("ns", "running", "the running worker deleted", |pods| {
            pods.len() == 2
        })
        .await;
    assert_eq!(names(&left), ["running-scheduler-0", "running-server-0"]);
    assert_eq!(
        names(&h.services("ns", "running").await),
        ["running-scheduler-0", "running-server-0"]
    );
    // None leaves everything, and the worker still counts as active.
    assert_eq!(h.pods("ns", "none").await.len(), 3);
    assert_eq!(h.services("ns", "none").await.len(), 3);
    let job = h.get("ns", "none").await.expect("none");
    assert_eq!(
        job["status"]["mxReplicaStatuses"]["Worker"],
        json!({"active": 1})
    );

    // The TTL deletes the job, and with it what it left.
    h.update("ns", "none", |job| {
        job["spec"]["ttlSecondsAfterFinished"] = json!(1)
    })
    .await;
    h.wait_gone("ns", "none").await;
    h.wait_all_gone("ns", "none").await;
    assert_eq!(h.pods("ns", "running").await.len(), 2, "only its own");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deleting_a_job_deletes_its_pods_with_the_grace_period_given_or_orphans_them() {
    let h = Harness::start().await;
    h.namespace("ns").await;
    for name in ["graceful", "orphaned"] {
        h.create("ns", mxjob(name, &train(1, "Never"), json!({})))
            .await;
        for pod in h.wait_created("ns", name, 3).await {
            // Bound to a node, a Pod waits for its kubelet when deleted
            // gracefully, so the grace period shows.
            let url = h.api(&format!(
                "/api/v1/namespaces/ns/pods/{}/binding",
                name_of(&pod)
            ));
            let binding = json!({
                "apiVersion": "v1", "kind": "Binding",
                "metadata": {"name": name_of(&pod)},
                "target": {"apiVersion": "v1", "kind": "Node", "name": "node-1"},
            });
            h.kube_json(h.kube.post(url).json(&binding), "binding")
                .await;
            h.kubelet("ns", name_of(&pod), running()).await;
        }
        h.wait_for("ns", name, "Running", |j| holds(j, "Running"))
            .await;
    }

    h.delete("ns", "graceful", json!({"gracePeriodSeconds": 7}))
        .await;
    let pods = h
        .wait_pods("ns", "graceful", "graceful deletion", |pods| {
            pods.iter()
                .all(|p| !p["metadata"]["deletionTimestamp"].is_null())
        })
        .await;
    for pod in &pods {
        assert_eq!(
            pod["metadata"]["deletionGracePeriodSeconds"],
            7,
            "{}",
            summary(pod)
        );
    }
    let deadline = Instant::now() + WAIT;
    while !h.services("ns", "graceful").await.is_empty() {
        assert!(Instant::now() < deadline, "services left");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let before: Vec<String> = h.pods("ns", "orphaned").await.iter().map(uid_of).collect();
    h.delete("ns", "orphaned", json!({"propagationPolicy": "Orphan"}))
        .await;
    h.wait_gone("ns", "orphaned").await;
    let pods = h
        .wait_pods("ns", "orphaned", "pods let go of", |pods| {
            pods.iter()
                .all(|p| p["metadata"]["labels"][INSTALLATION_LABEL].is_null())
        })
        .await;
    assert_eq!(pods.iter().map(uid_of).collect::<Vec<_>>(), before);
    assert!(pods
        .iter()
        .all(|p| p["metadata"]["deletionTimestamp"].is_null()));
    assert_eq!(h.services("ns", "orphaned").await.len(), 3);

    // A later server's garbage collection leaves the orphans alone.
    let mut h = h;
    if let Some(server) = h.server.take() {
        server.stop().await;
    }
    h.server = Some(h.start_another().await);
    h.create("ns", mxjob("later", &train(1, "Never"), json!({})))
        .await;
    h.wait_created("ns", "later", 3).await;
    assert_eq!(h.pods("ns", "orphaned").await.len(), 3);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restarted_server_adopts_its_pods_and_catches_up_with_what_happened_meanwhile() {
    let mut h = Harness::start().await;
    h.namespace("ns").await;
    h.create("ns", mxjob("resume", &train(2, "Never"), json!({})))
        .await;
    h.create("ns", mxjob("doomed", &train(1, "Never"), json!({})))
        .await;
    let pods = h.wait_created("ns", "resume", 4).await;
    for pod in &pods {
        h.kubelet("ns", name_of(pod), running()).await;
    }
    h.wait_created("ns", "doomed", 3).await;
    h.wait_for("ns", "resume", "Running", |j| holds(j, "Running"))
        .await;
    let uids: Vec<String> = pods.iter().map(uid_of).collect();

    // The server stops; its Pods run on.
    if let Some(server) = h.server.take() {
        server.stop().await;
    }
    assert_eq!(h.pods("ns", "resume").await.len(), 4);
    // Meanwhile a worker finishes, another worker's Pod vanishes, and the
    // other job is deleted.
    h.kubelet("ns", "resume-worker-0", exited("Succeeded", 0))
        .await;
    let url = h.api("/api/v1/namespaces/ns/pods/resume-worker-1");
    h.kube_json(h.kube.delete(url), "delete pod").await;
    let bystander = h.start_bystander().await;
    let response = h
        .http
        .delete(bystander.object_url("ns", "doomed"))
        .send()
        .await
        .expect("DELETE");
    assert_eq!(response.status(), 200);
    bystander.stop().await;

    h.server = Some(h.start_another().await);
    let pods = h
        .wait_pods("ns", "resume", "the vanished pod made again", |pods| {
            pods.len() == 4 && pods.iter().all(|p| !uid_of(p).is_empty())
        })
        .await;
    let now: Vec<String> = pods.iter().map(uid_of).collect();
    assert_eq!(now[0], uids[0], "the scheduler's pod was adopted");
    assert_eq!(now[1], uids[1], "the server's pod was adopted");
    assert_eq!(now[2], uids[2], "the finished worker's pod was adopted");
    assert_ne!(now[3], uids[3], "the vanished worker's pod is new");
    let job = h
        .wait_for("ns", "resume", "the finished worker counted", |j| {
            j["status"]["mxReplicaStatuses"]["Worker"]["succeeded"] == 1
        })
        .await;
    assert!(
        !holds(&job, "Succeeded") && !holds(&job, "Failed"),
        "{job:#}"
    );
    // The deleted job's objects went with it.
    h.wait_all_gone("ns", "doomed").await;
    // No duplicates, a while later.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(h.pods("ns", "resume").await.len(), 4);

    h.kubelet("ns", "resume-scheduler-0", exited("Succeeded", 0))
        .await;
    h.wait_for("ns", "resume", "Succeeded", |j| holds(j, "Succeeded"))
        .await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn only_the_lease_holder_creates_pods_and_a_standby_adopts_them() {
    let mut h = Harness::start_as(ADMIN_CONTEXT, Duration::from_secs(2)).await;
    let standby = h.start_another().await;
    h.namespace("ns").await;
    h.create("ns", mxjob("once", &train(2, "Never"), json!({})))
        .await;
    let pods = h.wait_created("ns", "once", 4).await;
    let uids: Vec<String> = pods.iter().map(uid_of).collect();
    // Two lease durations: the standby makes nothing meanwhile.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let pods = h.pods("ns", "once").await;
    assert_eq!(pods.iter().map(uid_of).collect::<Vec<_>>(), uids);

    // The holder stops; the standby takes over the same Pods.
    if let Some(holder) = h.server.replace(standby) {
        holder.stop().await;
    }
    for pod in &pods {
        h.kubelet("ns", name_of(pod), running()).await;
    }
    h.wait_for("ns", "once", "Running", |j| holds(j, "Running"))
        .await;
    h.kubelet("ns", "once-scheduler-0", exited("Succeeded", 0))
        .await;
    h.wait_for("ns", "once", "Succeeded", |j| holds(j, "Succeeded"))
        .await;
    let left = h.pods("ns", "once").await;
    assert_eq!(names(&left), ["once-scheduler-0"]);
    assert_eq!(uid_of(&left[0]), uids[0]);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pods_the_cluster_refuses_are_told_on_the_job_with_the_cluster_s_reason() {
    let mut h = Harness::without_server(LIMITED_CONTEXT, Duration::from_secs(15)).await;
    // The limited user may watch Pods and list Services everywhere, as the
    // executor needs, but may create nothing anywhere yet.
    let role = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "mxjob-watch"},
        "rules": [{"apiGroups": [""], "resources": ["pods", "services"], "verbs": ["get", "list", "watch"]}],
    });
    h.kube_json(
        h.kube
            .post(h.api("/apis/rbac.authorization.k8s.io/v1/clusterroles"))
            .json(&role),
        "cluster role",
    )
    .await;
    let binding = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": "mxjob-watch"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "mxjob-watch"},
        "subjects": [{"kind": "User", "name": LIMITED_USER}],
    });
    h.kube_json(
        h.kube
            .post(h.api("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings"))
            .json(&binding),
        "cluster role binding",
    )
    .await;
    h.server = Some(h.start_another().await);
    h.namespace("locked").await;
    h.create("locked", mxjob("denied", &train(1, "Never"), json!({})))
        .await;
    let job = h
        .wait_for("locked", "denied", "a refusal on Running", |j| {
            condition(j, "Running").is_some_and(|c| c["reason"] == "FailedCreate")
        })
        .await;
    let running = condition(&job, "Running").expect("Running");
    assert_eq!(running["status"], "False");
    let said = message(&job, "Running");
    assert!(said.starts_with("MXJob denied cannot create "), "{said}");
    assert!(said.contains("Forbidden"), "{said}");
    assert!(
        said.contains(&format!("User \"{LIMITED_USER}\" cannot create resource")),
        "{said}"
    );
    assert!(
        holds(&job, "Created") && !holds(&job, "Failed"),
        "not finished: {job:#}"
    );

    // A Role and RoleBinding in the namespace (no controller manager
    // aggregates the built-in `edit` here): the retries succeed and the
    // condition goes.
    let role = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "mxjob", "namespace": "locked"},
        "rules": [{"apiGroups": [""], "resources": ["pods", "services"],
                   "verbs": ["get", "list", "watch", "create", "delete", "patch"]}],
    });
    h.kube_json(
        h.kube
            .post(h.api("/apis/rbac.authorization.k8s.io/v1/namespaces/locked/roles"))
            .json(&role),
        "role",
    )
    .await;
    let edit = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "mxjob", "namespace": "locked"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "mxjob"},
        "subjects": [{"kind": "User", "name": LIMITED_USER}],
    });
    h.kube_json(
        h.kube
            .post(h.api("/apis/rbac.authorization.k8s.io/v1/namespaces/locked/rolebindings"))
            .json(&edit),
        "role binding",
    )
    .await;
    h.wait_created("locked", "denied", 3).await;
    let job = h
        .wait_for("locked", "denied", "the refusal gone", |j| {
            condition(j, "Running").is_none()
        })
        .await;
    assert!(holds(&job, "Created"));

    // A quantity the cluster finds invalid: that never changes, so the job fails.
    let mut bad = mxjob("invalid", &train(1, "Never"), json!({}));
    bad["spec"]["mxReplicaSpecs"]["Worker"]["template"]["spec"]["containers"][0]["resources"] =
        json!({"requests": {"cpu": "-1"}});
    h.create("locked", bad).await;
    let job = h
        .wait_for("locked", "invalid", "Failed", |j| holds(j, "Failed"))
        .await;
    let said = message(&job, "Failed");
    assert!(
        said.starts_with(
            "MXJob invalid has failed because the cluster refused invalid-worker-0: Invalid:"
        ),
        "{said}"
    );
    assert!(
        said.contains("spec.containers[0].resources.requests[cpu]"),
        "{said}"
    );
    h.wait_all_gone("locked", "invalid").await;
    h.stop().await;
}

/// A TCP relay in front of the API server that a test can cut and mend:
/// the cluster going away and coming back, for mxjob only.
struct Relay {
    port: u16,
    target: std::net::SocketAddr,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Relay {
    async fn start(target: std::net::SocketAddr) -> Relay {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a relay port");
        let port = listener.local_addr().expect("address").port();
        let mut relay = Relay {
            port,
            target,
            task: None,
        };
        relay.serve(listener);
        relay
    }

    fn serve(&mut self, listener: tokio::net::TcpListener) {
        let target = self.target;
        self.task = Some(tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((mut inbound, _)) = listener.accept().await {
                connections.spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        }));
    }

    /// Closes the port and every connection through it.
    fn cut(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }

    /// Listens on the same port again.
    async fn mend(&mut self) {
        let deadline = Instant::now() + WAIT;
        let listener = loop {
            match tokio::net::TcpListener::bind(("127.0.0.1", self.port)).await {
                Ok(listener) => break listener,
                Err(e) => {
                    assert!(Instant::now() < deadline, "rebinding the relay: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        };
        self.serve(listener);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.cut();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cluster_that_goes_away_is_told_on_the_job_and_work_resumes_when_it_returns() {
    let mut h = Harness::without_server(ADMIN_CONTEXT, Duration::from_secs(15)).await;
    let target: std::net::SocketAddr = h
        .cluster
        .url
        .trim_start_matches("https://")
        .parse()
        .expect("the API server's address");
    let mut relay = Relay::start(target).await;
    let relayed = format!("https://127.0.0.1:{}", relay.port);
    let text = std::fs::read_to_string(&h.cluster.kubeconfig).expect("kubeconfig");
    let mut config: Value = serde_json::from_str(&text).expect("JSON");
    config["clusters"][0]["cluster"]["server"] = json!(relayed);
    h.kubeconfig = h.dir.path().join("relayed-kubeconfig");
    std::fs::write(&h.kubeconfig, config.to_string()).expect("kubeconfig");
    h.server = Some(h.start_another().await);

    h.namespace("ns").await;
    h.create("ns", mxjob("steady", &train(1, "Never"), json!({})))
        .await;
    for pod in h.wait_created("ns", "steady", 3).await {
        h.kubelet("ns", name_of(&pod), running()).await;
    }
    let before = h
        .wait_for("ns", "steady", "every replica active", |j| {
            holds(j, "Running") && j["status"]["mxReplicaStatuses"]["Worker"]["active"] == 1
        })
        .await;

    // The cluster goes away: the job keeps its last status, and says why.
    relay.cut();
    let job = h
        .wait_for("ns", "steady", "the cluster's absence told", |j| {
            condition(j, "Running").is_some_and(|c| c["reason"] == "ClusterUnreachable")
        })
        .await;
    let running = condition(&job, "Running").expect("Running");
    assert_eq!(running["status"], "Unknown");
    let said = message(&job, "Running");
    assert!(
        said.starts_with(&format!(
            "MXJob steady is as last seen: the Kubernetes API server at {relayed}/"
        )),
        "{said}"
    );
    assert_eq!(
        job["status"]["mxReplicaStatuses"],
        before["status"]["mxReplicaStatuses"]
    );
    assert!(holds(&job, "Created") && !holds(&job, "Failed"), "{job:#}");
    // What happens meanwhile is seen once it is back.
    h.kubelet("ns", "steady-scheduler-0", exited("Succeeded", 0))
        .await;
    relay.mend().await;
    let job = h
        .wait_for("ns", "steady", "Succeeded", |j| holds(j, "Succeeded"))
        .await;
    assert_eq!(
        message(&job, "Succeeded"),
        "MXJob steady is successfully completed."
    );
    h.wait_pods("ns", "steady", "clean-up", |pods| pods.len() == 1)
        .await;
    h.stop().await;
}

/// The folder `deploy/`.
fn deploy(file: &str) -> String {
    format!("{}/../deploy/{file}", env!("CARGO_MANIFEST_DIR"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_rights_deploy_grants_its_service_account_are_all_the_executor_needs() {
    let mut h = Harness::without_server(ADMIN_CONTEXT, Duration::from_secs(15)).await;
    for file in [
        "00-namespace.yaml",
        "10-serviceaccount.yaml",
        "20-clusterrole.yaml",
        "21-clusterrolebinding.yaml",
    ] {
        let output = h
            .cluster
            .kubectl(ADMIN_CONTEXT)
            .args(["apply", "-f", &deploy(file)])
            .output()
            .await
            .expect("kubectl runs");
        assert!(
            output.status.success(),
            "kubectl apply {file}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    // mxjob talks to the cluster as the ServiceAccount of deploy/.
    let text = std::fs::read_to_string(&h.cluster.kubeconfig).expect("kubeconfig");
    let mut config: Value = serde_json::from_str(&text).expect("JSON");
    config["users"][0]["user"]["as"] = json!("system:serviceaccount:mxjob-system:mxjob");
    h.kubeconfig = h.dir.path().join("service-account-kubeconfig");
    std::fs::write(&h.kubeconfig, config.to_string()).expect("kubeconfig");
    h.server = Some(h.start_another().await);
    h.namespace("team-a").await;

    h.create(
        "team-a",
        mxjob("deployed", &train(1, "ExitCode"), json!({})),
    )
    .await;
    h.create("team-a", mxjob("kept", &train(1, "Never"), json!({})))
        .await;
    let pods = h.wait_created("team-a", "deployed", 3).await;
    for pod in &pods {
        h.kubelet("team-a", name_of(pod), running()).await;
    }
    h.wait_created("team-a", "kept", 3).await;
    h.wait_for("team-a", "deployed", "Running", |j| holds(j, "Running"))
        .await;
    let (code, _, body) = h.log("team-a", "deployed", "replicaType=Scheduler").await;
    assert_eq!(code, 200, "{body}");
    h.kubelet("team-a", "deployed-worker-0", exited("Failed", 143))
        .await;
    let first = uid_of(&pods[2]);
    h.wait_pods("team-a", "deployed", "the worker made again", |pods| {
        pods.iter()
            .any(|p| name_of(p) == "deployed-worker-0" && uid_of(p) != first)
    })
    .await;
    h.kubelet("team-a", "deployed-scheduler-0", exited("Succeeded", 0))
        .await;
    h.wait_for("team-a", "deployed", "Succeeded", |j| holds(j, "Succeeded"))
        .await;
    h.wait_pods("team-a", "deployed", "clean-up", |pods| pods.len() == 1)
        .await;

    h.delete("team-a", "kept", json!({"propagationPolicy": "Orphan"}))
        .await;
    h.wait_pods("team-a", "kept", "pods let go of", |pods| {
        pods.iter()
            .all(|p| p["metadata"]["labels"][INSTALLATION_LABEL].is_null())
    })
    .await;
    h.delete("team-a", "deployed", json!({})).await;
    h.wait_all_gone("team-a", "deployed").await;
    h.stop().await;
}

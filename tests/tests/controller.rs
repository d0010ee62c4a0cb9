//! The job controller with real processes: the server runs in this test
//! process with the controller on and (mostly) the local executor, and the
//! replicas are the small Python programs in `tests/controller/`.
//!
//! Every wait polls the API (or follows a watch) with a deadline, the
//! replicas listen only on loopback, and each test's teardown kills what its
//! replicas left running, found through the pid files they write.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use mxjob_server::controller::{ControllerSettings, ExecutorKind};
use mxjob_server::server::Settings;
use mxjob_server::store::memory::MemoryStore;
use mxjob_server::store::Store;
use mxjob_tests::{discard, TestServer};
use serde_json::{json, Value};
use tokio::time::Instant;

const NS: &str = "ctl";
/// The longest any single wait may take.
const WAIT: Duration = Duration::from_secs(20);

fn script(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("controller")
        .join(name)
        .display()
        .to_string()
}

/// One role of a test job: its replicas run `python3 -u ARGS…`.
#[derive(Clone)]
struct Role {
    kind: &'static str,
    replicas: i32,
    args: Vec<String>,
    restart: &'static str,
}

fn role(kind: &'static str, args: &[&str]) -> Role {
    Role {
        kind,
        replicas: 1,
        args: args.iter().map(|a| a.to_string()).collect(),
        restart: "Never",
    }
}

impl Role {
    fn replicas(mut self, n: i32) -> Self {
        self.replicas = n;
        self
    }

    fn restart(mut self, policy: &'static str) -> Self {
        self.restart = policy;
        self
    }
}

/// Every role running the rendezvous program.
fn rendezvous(servers: i32, workers: i32) -> Vec<Role> {
    let node = script("dmlc_node.py");
    vec![
        role("Scheduler", &[&node]),
        role("Server", &[&node]).replicas(servers),
        role("Worker", &[&node]).replicas(workers),
    ]
}

/// A Scheduler, a Server and a Worker all running `replica.py ARGS…`.
fn all_roles(args: &[&str]) -> Vec<Role> {
    let mut argv = vec![script("replica.py")];
    argv.extend(args.iter().map(|a| a.to_string()));
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    vec![
        role("Scheduler", &argv),
        role("Server", &argv),
        role("Worker", &argv),
    ]
}

fn replica_args(args: &[&str]) -> Vec<String> {
    let mut argv = vec![script("replica.py")];
    argv.extend(args.iter().map(|a| a.to_string()));
    argv
}

/// A server (or several, one after the other) with the controller on, over
/// one store, with a scratch directory for logs, pid files and markers.
struct Harness {
    store: Arc<dyn Store>,
    executor: ExecutorKind,
    lease: Duration,
    dir: tempfile::TempDir,
    server: Option<TestServer>,
    http: reqwest::Client,
}

impl Harness {
    async fn start(executor: ExecutorKind) -> Self {
        Self::start_with_lease(executor, Duration::from_secs(15)).await
    }

    async fn start_with_lease(executor: ExecutorKind, lease: Duration) -> Self {
        let mut harness = Harness {
            store: Arc::new(MemoryStore::new()),
            executor,
            lease,
            dir: tempfile::tempdir().expect("temp dir"),
            server: None,
            http: reqwest::Client::new(),
        };
        harness.server = Some(harness.start_another().await);
        harness
    }

    fn log_dir(&self) -> PathBuf {
        self.dir.path().join("logs")
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// Another server over the same store and log directory.
    async fn start_another(&self) -> TestServer {
        let mut controller = ControllerSettings::new(self.executor, self.log_dir());
        controller.lease_duration = self.lease;
        controller.kill_grace = Duration::from_secs(2);
        let mut settings = Settings::new("127.0.0.1:0".parse().expect("address"));
        settings.controller = Some(controller);
        TestServer::start_configured(self.store.clone(), settings, discard()).await
    }

    fn server(&self) -> &TestServer {
        self.server.as_ref().expect("a server runs")
    }

    /// Stops the server and starts a new one over the same store.
    async fn restart(&mut self) {
        if let Some(server) = self.server.take() {
            server.stop().await;
        }
        self.server = Some(self.start_another().await);
    }

    async fn stop(mut self) {
        if let Some(server) = self.server.take() {
            server.stop().await;
        }
    }

    /// A job of `roles`; `spec` is merged into its spec.
    fn job(&self, name: &str, roles: &[Role], spec: Value) -> Value {
        let pids = self.path(&format!("pids-{name}"));
        let mut specs = serde_json::Map::new();
        for role in roles {
            specs.insert(
                role.kind.to_string(),
                json!({
                    "replicas": role.replicas,
                    "restartPolicy": role.restart,
                    "template": {"spec": {"containers": [{
                        "name": "mxnet",
                        "image": "mxnet/python:ignored-by-the-local-executor",
                        "command": ["python3", "-u"],
                        "args": role.args,
                        "env": [{"name": "MXJOB_TEST_PIDS", "value": pids}],
                    }]}},
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

    async fn create(&self, job: Value) -> Value {
        let response = self
            .http
            .post(self.server().collection_url(NS))
            .json(&job)
            .send()
            .await
            .expect("POST");
        assert_eq!(response.status().as_u16(), 201, "create");
        response.json().await.expect("JSON")
    }

    async fn get(&self, name: &str) -> Option<Value> {
        let response = self
            .http
            .get(self.server().object_url(NS, name))
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
    async fn update(&self, name: &str, suffix: &str, change: impl Fn(&mut Value)) -> Value {
        for _ in 0..20 {
            let mut job = self.get(name).await.expect("the job exists");
            change(&mut job);
            let url = format!("{}{suffix}", self.server().object_url(NS, name));
            let response = self.http.put(url).json(&job).send().await.expect("PUT");
            match response.status().as_u16() {
                200 => return response.json().await.expect("JSON"),
                409 => continue,
                code => panic!(
                    "PUT {name}{suffix}: {code}: {}",
                    response.text().await.unwrap_or_default()
                ),
            }
        }
        panic!("PUT {name}{suffix} kept conflicting")
    }

    /// A sample of `/metrics` without labels other than the controller's.
    async fn metric(&self, name: &str) -> f64 {
        let text = self
            .http
            .get(format!("{}/metrics", self.server().url))
            .send()
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("metrics");
        text.lines()
            .filter(|line| !line.starts_with('#'))
            .find_map(|line| {
                let (key, value) = line.rsplit_once(' ')?;
                let key = key.split('{').next()?;
                (key == name).then(|| value.parse().ok()).flatten()
            })
            .unwrap_or_else(|| panic!("{name} in /metrics"))
    }

    /// Waits until no job task runs: every job is parked.
    async fn wait_parked(&self) {
        for _ in 0..200 {
            if self.metric("mxjob_controller_job_tasks").await == 0.0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("job tasks still run");
    }

    async fn delete(&self, name: &str) {
        let response = self
            .http
            .delete(self.server().object_url(NS, name))
            .send()
            .await
            .expect("DELETE");
        assert_eq!(response.status().as_u16(), 200, "delete");
    }

    /// Polls the job until `test` holds; panics with the last state after [`WAIT`].
    async fn wait_for(&self, name: &str, what: &str, test: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + WAIT;
        let mut last = None;
        loop {
            if let Some(job) = self.get(name).await {
                if test(&job) {
                    return job;
                }
                last = Some(job);
            }
            assert!(
                Instant::now() < deadline,
                "{name}: no {what} within {WAIT:?}; last seen: {last:#?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn wait_gone(&self, name: &str) {
        let deadline = Instant::now() + WAIT;
        while self.get(name).await.is_some() {
            assert!(
                Instant::now() < deadline,
                "{name} is still there after {WAIT:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Follows a watch from `from` until the job satisfies `test`; for
    /// states that pass too quickly to be polled.
    async fn watch_for(&self, name: &str, from: &str, what: &str, test: impl Fn(&Value) -> bool) {
        let url = format!(
            "{}?watch=true&resourceVersion={from}&fieldSelector=metadata.name%3D{name}",
            self.server().collection_url(NS)
        );
        let response = self.http.get(url).send().await.expect("watch");
        let mut stream = response.bytes_stream();
        let found = tokio::time::timeout(WAIT, async {
            let mut buffer = Vec::new();
            while let Some(Ok(chunk)) = stream.next().await {
                buffer.extend_from_slice(&chunk);
                while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = buffer.drain(..=end).collect();
                    let event: Value = serde_json::from_slice(&line).expect("a watch event");
                    if test(&event["object"]) {
                        return true;
                    }
                }
            }
            false
        })
        .await;
        assert_eq!(found, Ok(true), "{name}: no {what} in the watch");
    }

    async fn log(&self, name: &str, query: &str) -> (u16, String, String) {
        let url = format!("{}/log?{query}", self.server().object_url(NS, name));
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

    /// The replicas a job has started: (role, index, pid).
    fn pids(&self, name: &str) -> Vec<(String, i64, i32)> {
        let text = std::fs::read_to_string(self.path(&format!("pids-{name}"))).unwrap_or_default();
        text.lines()
            .filter_map(|line| {
                let mut words = line.split_whitespace();
                Some((
                    words.next()?.to_string(),
                    words.next()?.parse().ok()?,
                    words.next()?.parse().ok()?,
                ))
            })
            .collect()
    }

    fn alive(&self, name: &str, role: &str) -> Vec<i32> {
        self.pids(name)
            .into_iter()
            .filter(|(r, _, pid)| r == role && alive(*pid))
            .map(|(_, _, pid)| pid)
            .collect()
    }

    async fn wait_started(&self, name: &str, count: usize) {
        let deadline = Instant::now() + WAIT;
        while self.pids(name).len() < count {
            assert!(
                Instant::now() < deadline,
                "{name}: fewer than {count} replicas started"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn runs(&self, file: &str) -> usize {
        std::fs::read_to_string(self.path(file))
            .map(|t| t.lines().count())
            .unwrap_or(0)
    }
}

impl Drop for Harness {
    /// Kills every replica the test started that is still running (only
    /// processes carrying this test's pid-file variable, never a recycled pid).
    fn drop(&mut self) {
        let marker = format!("MXJOB_TEST_PIDS={}", self.dir.path().display());
        for entry in std::fs::read_dir(self.dir.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = entry.file_name().to_string_lossy().to_string();
            let Some(job) = name.strip_prefix("pids-") else {
                continue;
            };
            for (_, _, pid) in self.pids(job) {
                let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
                let ours = environ
                    .split(|b| *b == 0)
                    .any(|v| v.starts_with(marker.as_bytes()));
                if ours {
                    let _ = std::process::Command::new("kill")
                        .args(["-KILL", "--", &format!("-{pid}")])
                        .status();
                }
            }
        }
    }
}

/// Whether a process exists and is not a zombie.
fn alive(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.trim_start().chars().next());
    !matches!(state, Some('Z' | 'X') | None)
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

fn finished(job: &Value) -> bool {
    holds(job, "Succeeded") || holds(job, "Failed")
}

fn message(job: &Value, type_: &str) -> String {
    condition(job, type_)
        .and_then(|c| c["message"].as_str())
        .unwrap_or_default()
        .to_string()
}

fn version(job: &Value) -> String {
    job["metadata"]["resourceVersion"]
        .as_str()
        .expect("resourceVersion")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_mxtrain_job_whose_replicas_rendezvous_succeeds() {
    let h = Harness::start(ExecutorKind::Local).await;
    h.create(h.job("train", &rendezvous(2, 2), json!({}))).await;
    let job = h.wait_for("train", "Succeeded", finished).await;

    assert!(holds(&job, "Succeeded"), "{job:#}");
    let succeeded = condition(&job, "Succeeded").expect("Succeeded");
    assert_eq!(succeeded["reason"], "MXJobSucceeded");
    assert_eq!(
        succeeded["message"],
        "MXJob train is successfully completed."
    );
    let created = condition(&job, "Created").expect("Created");
    assert_eq!(
        (&created["reason"], &created["message"]),
        (&json!("MXJobCreated"), &json!("MXJob train is created."))
    );
    assert_eq!(
        condition(&job, "Running").expect("Running")["status"],
        "False"
    );
    let status = &job["status"];
    for field in ["startTime", "completionTime", "lastReconcileTime"] {
        assert!(status[field].is_string(), "{field} in {status:#}");
    }
    assert_eq!(
        status["mxReplicaStatuses"]["Scheduler"],
        json!({"succeeded": 1})
    );

    // Every node's log says it registered; the scheduler's that all did.
    let (code, media, log) = h.log("train", "replicaType=Scheduler").await;
    assert_eq!((code, media.as_str()), (200, "text/plain; charset=utf-8"));
    assert!(
        log.contains("all nodes registered: 2 servers, 2 workers"),
        "{log}"
    );
    assert!(log.contains("exited with code 0"), "{log}");
    let (_, _, log) = h.log("train", "replicaType=Worker&index=1").await;
    assert!(log.contains("worker 1 registered"), "{log}");
    let (_, _, log) = h.log("train", "replicaType=Server&index=0").await;
    assert!(log.contains("server 0 registered"), "{log}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_log_endpoint_answers_404_and_400_with_a_status() {
    let h = Harness::start(ExecutorKind::Local).await;
    h.create(h.job("logs", &all_roles(&["--sleep", "600"]), json!({})))
        .await;
    h.wait_started("logs", 3).await;
    for (query, code) in [
        ("replicaType=Worker&index=1", 404),
        ("replicaType=Tuner", 404),
        ("replicaType=Chief", 400),
        ("index=0", 400),
        ("replicaType=Worker&index=-1", 400),
    ] {
        let (got, media, body) = h.log("logs", query).await;
        assert_eq!(got, code, "{query}: {body}");
        assert!(media.starts_with("application/json"), "{query}: {media}");
        let status: Value = serde_json::from_str(&body).expect("a Status");
        assert_eq!(status["kind"], "Status", "{query}");
    }
    let (code, _, _) = h.log("nothing", "replicaType=Worker").await;
    assert_eq!(code, 404);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_exiting_1_with_backoff_limit_0_fails_the_job() {
    let h = Harness::start(ExecutorKind::Local).await;
    let mut roles = all_roles(&["--sleep", "600"]);
    roles[2] = Role {
        args: replica_args(&["--exits", "1"]),
        ..roles[2].clone()
    }
    .restart("OnFailure");
    h.create(h.job("fail", &roles, json!({"backoffLimit": 0})))
        .await;
    let job = h.wait_for("fail", "Failed", finished).await;
    assert!(holds(&job, "Failed"), "{job:#}");
    assert_eq!(
        condition(&job, "Failed").expect("Failed")["reason"],
        "MXJobFailed"
    );
    assert_eq!(
        message(&job, "Failed"),
        "MXJob fail has failed because it has reached the specified backoff limit"
    );
    assert!(job["status"]["completionTime"].is_string());
    for role in ["scheduler", "server", "worker"] {
        assert_eq!(
            h.alive("fail", role),
            Vec::<i32>::new(),
            "{role} left running"
        );
    }
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_that_fails_under_restart_policy_never_fails_the_job() {
    let h = Harness::start(ExecutorKind::Local).await;
    let mut roles = all_roles(&["--sleep", "600"]);
    roles[2].args = replica_args(&["--exits", "3"]);
    h.create(h.job("never", &roles, json!({}))).await;
    let job = h.wait_for("never", "Failed", finished).await;
    assert_eq!(message(&job, "Failed"), "MXJob never is failed.");
    assert_eq!(
        job["status"]["mxReplicaStatuses"]["Worker"],
        json!({"failed": 1})
    );
    // cleanPodPolicy Running (the default) stopped the others.
    assert_eq!(job["status"]["mxReplicaStatuses"]["Server"], json!({}));
    assert_eq!(h.alive("never", "server"), Vec::<i32>::new());
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_failure_restarts_a_replica_until_the_backoff_limit() {
    let h = Harness::start(ExecutorKind::Local).await;
    let count = h.path("count-worker");
    let mut roles = all_roles(&["--sleep", "600"]);
    roles[2] = Role {
        args: replica_args(&["--count", &count, "--exits", "1"]),
        ..roles[2].clone()
    }
    .restart("OnFailure");
    let created = h
        .create(h.job("retry", &roles, json!({"backoffLimit": 2})))
        .await;
    h.watch_for("retry", &version(&created), "Restarting", |job| {
        holds(job, "Restarting")
            && condition(job, "Restarting").is_some_and(|c| c["reason"] == "MXJobRestarting")
    })
    .await;
    let job = h.wait_for("retry", "Failed", finished).await;
    assert_eq!(
        message(&job, "Failed"),
        "MXJob retry has failed because it has reached the specified backoff limit"
    );
    assert_eq!(h.runs("count-worker"), 3, "the first run and two restarts");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exit_code_policy_retries_codes_from_128_and_not_below() {
    let h = Harness::start(ExecutorKind::Local).await;
    // 137 (as after SIGKILL) is retried; the second run succeeds.
    let mut roles = all_roles(&["--sleep", "600"]);
    roles[2] = Role {
        args: replica_args(&["--count", &h.path("count-137"), "--exits", "137,0"]),
        ..roles[2].clone()
    }
    .restart("ExitCode");
    h.create(h.job("retryable", &roles, json!({}))).await;
    // 1 is permanent: the job fails at once.
    let mut roles = all_roles(&["--sleep", "600"]);
    roles[2] = Role {
        args: replica_args(&["--count", &h.path("count-1"), "--exits", "1,0"]),
        ..roles[2].clone()
    }
    .restart("ExitCode");
    h.create(h.job("permanent", &roles, json!({}))).await;

    let job = h
        .wait_for("retryable", "a succeeded worker", |job| {
            job["status"]["mxReplicaStatuses"]["Worker"]["succeeded"] == 1
        })
        .await;
    assert!(holds(&job, "Running") && !finished(&job), "{job:#}");
    assert_eq!(h.runs("count-137"), 2);
    let job = h.wait_for("permanent", "Failed", finished).await;
    assert_eq!(message(&job, "Failed"), "MXJob permanent is failed.");
    assert_eq!(h.runs("count-1"), 1);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shortening_the_deadline_of_a_running_job_fails_it_and_kills_its_processes() {
    let h = Harness::start(ExecutorKind::Local).await;
    h.create(h.job(
        "slow",
        &all_roles(&["--sleep", "600"]),
        json!({"activeDeadlineSeconds": 3600}),
    ))
    .await;
    h.wait_for("slow", "Running", |job| holds(job, "Running"))
        .await;
    h.wait_started("slow", 3).await;
    let replaced = Instant::now();
    h.update("slow", "", |job| {
        job["spec"]["activeDeadlineSeconds"] = json!(2)
    })
    .await;
    let job = h.wait_for("slow", "Failed", finished).await;
    assert!(
        replaced.elapsed() < Duration::from_secs(8),
        "{:?}",
        replaced.elapsed()
    );
    assert_eq!(
        message(&job, "Failed"),
        "MXJob slow has failed because it was active longer than specified deadline"
    );
    assert_eq!(
        condition(&job, "Running").expect("Running")["status"],
        "False"
    );
    for (role, _, pid) in h.pids("slow") {
        assert!(!alive(pid), "{role} {pid} is still running");
    }
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lengthening_the_ttl_keeps_a_finished_job_and_shortening_it_deletes_it() {
    let h = Harness::start(ExecutorKind::Local).await;
    h.create(h.job(
        "done",
        &all_roles(&[]),
        json!({"ttlSecondsAfterFinished": 4}),
    ))
    .await;
    h.wait_for("done", "Succeeded", |job| holds(job, "Succeeded"))
        .await;
    h.update("done", "", |job| {
        job["spec"]["ttlSecondsAfterFinished"] = json!(3600)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(h.get("done").await.is_some(), "the new TTL holds");
    let job_dir = h.log_dir().join(NS).join("done");
    assert!(job_dir.exists());

    let replaced = Instant::now();
    h.update("done", "", |job| {
        job["spec"]["ttlSecondsAfterFinished"] = json!(1)
    })
    .await;
    h.wait_gone("done").await;
    assert!(replaced.elapsed() < Duration::from_secs(8));
    let deadline = Instant::now() + WAIT;
    while job_dir.exists() {
        assert!(
            Instant::now() < deadline,
            "a deleted job's files go with it"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn clean_pod_policy_decides_which_processes_outlive_the_job() {
    let h = Harness::start(ExecutorKind::Local).await;
    let scheduler = replica_args(&["--sleep", "1"]);
    for (name, policy) in [("all", "All"), ("running", "Running"), ("none", "None")] {
        let mut roles = all_roles(&["--sleep", "600"]);
        roles[0].args = scheduler.clone();
        h.create(h.job(name, &roles, json!({"cleanPodPolicy": policy})))
            .await;
    }
    for name in ["all", "running", "none"] {
        h.wait_for(name, "Succeeded", |job| holds(job, "Succeeded"))
            .await;
    }
    for name in ["all", "running"] {
        for role in ["server", "worker"] {
            assert_eq!(h.alive(name, role), Vec::<i32>::new(), "{name}: {role}");
        }
    }
    // None: the server and the worker run on, and count as active.
    assert_eq!(h.alive("none", "server").len(), 1);
    assert_eq!(h.alive("none", "worker").len(), 1);
    let job = h.get("none").await.expect("none");
    assert_eq!(
        job["status"]["mxReplicaStatuses"]["Server"],
        json!({"active": 1})
    );
    // All also removed the logs, as deleting pods does; Running kept them.
    assert_eq!(h.log("all", "replicaType=Scheduler").await.0, 404);
    assert_eq!(h.log("running", "replicaType=Scheduler").await.0, 200);
    assert_eq!(h.log("none", "replicaType=Server").await.0, 200);

    // Deleting the job stops what it left running.
    let left: Vec<i32> = h.pids("none").into_iter().map(|(_, _, p)| p).collect();
    h.delete("none").await;
    let deadline = Instant::now() + WAIT;
    while left.iter().any(|p| alive(*p)) {
        assert!(Instant::now() < deadline, "processes outlived their job");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restarted_server_restarts_the_jobs_it_was_running() {
    let mut h = Harness::start(ExecutorKind::Local).await;
    let go = h.path("go");
    let count = h.path("count-$(HOSTNAME)");
    h.create(h.job(
        "resume",
        &all_roles(&["--count", &count, "--wait-file", &go]),
        json!({}),
    ))
    .await;
    let running = h
        .wait_for("resume", "Running", |job| holds(job, "Running"))
        .await;
    h.wait_started("resume", 3).await;
    let first: Vec<i32> = h.pids("resume").into_iter().map(|(_, _, p)| p).collect();

    h.restart().await;
    // The old server stopped its processes; the new one starts them again.
    for pid in &first {
        assert!(!alive(*pid), "{pid} outlived its server");
    }
    h.watch_for("resume", &version(&running), "Restarting", |job| {
        holds(job, "Restarting")
    })
    .await;
    let job = h
        .wait_for("resume", "Running again", |job| holds(job, "Running"))
        .await;
    assert_eq!(job["status"]["startTime"], running["status"]["startTime"]);
    h.wait_started("resume", 6).await;
    // A replica records its pid before its run: wait for the runs too.
    let deadline = Instant::now() + WAIT;
    for replica in ["scheduler", "server", "worker"] {
        let file = format!("count-resume-{replica}-0");
        while h.runs(&file) < 2 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(h.runs(&file), 2, "{replica}");
    }
    std::fs::write(&go, "").expect("marker");
    h.wait_for("resume", "Succeeded", |job| holds(job, "Succeeded"))
        .await;
    let (_, _, log) = h.log("resume", "replicaType=Worker").await;
    assert_eq!(log.matches("starting").count(), 2, "{log}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_an_executor_deadline_and_ttl_still_hold() {
    let h = Harness::start(ExecutorKind::None).await;
    // Admission, then the deadline, with nothing running.
    h.create(h.job(
        "deadline",
        &all_roles(&[]),
        json!({"activeDeadlineSeconds": 2}),
    ))
    .await;
    let job = h
        .wait_for("deadline", "Created", |job| holds(job, "Created"))
        .await;
    assert!(job["status"]["startTime"].is_string());
    let job = h.wait_for("deadline", "Failed", finished).await;
    assert_eq!(
        message(&job, "Failed"),
        "MXJob deadline has failed because it was active longer than specified deadline"
    );
    assert!(job["status"].get("mxReplicaStatuses").is_none(), "{job:#}");
    assert_eq!(h.pids("deadline"), Vec::new(), "nothing was started");
    assert_eq!(h.log("deadline", "replicaType=Worker").await.0, 404);

    // Status written from outside: the controller leaves it alone…
    h.create(h.job(
        "outside",
        &all_roles(&[]),
        json!({"ttlSecondsAfterFinished": 1}),
    ))
    .await;
    h.wait_for("outside", "Created", |job| holds(job, "Created"))
        .await;
    let written = h
        .update("outside", "/status", |job| {
            let conditions = job["status"]["conditions"]
                .as_array_mut()
                .expect("conditions");
            conditions.push(json!({"type": "Running", "status": "True", "reason": "MXJobRunning"}));
        })
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let job = h.get("outside").await.expect("outside");
    assert_eq!(
        version(&job),
        version(&written),
        "the controller did not rewrite it"
    );
    // …until it says the job finished: then the TTL deletes it.
    h.update("outside", "/status", |job| {
        let conditions = job["status"]["conditions"]
            .as_array_mut()
            .expect("conditions");
        conditions.push(json!({"type": "Succeeded", "status": "True", "reason": "MXJobSucceeded"}));
    })
    .await;
    h.wait_gone("outside").await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_an_executor_a_replace_that_leaves_nothing_to_do_starts_no_task() {
    let h = Harness::start(ExecutorKind::None).await;
    h.create(h.job("quiet", &all_roles(&[]), json!({}))).await;
    h.wait_for("quiet", "Created", |job| holds(job, "Created"))
        .await;
    h.wait_parked().await;
    let reconciles = "controller_runtime_reconcile_time_seconds_count";
    let before = h.metric(reconciles).await;
    // The TTL of a running job and its labels: nothing for a task.
    for ttl in 1..=5 {
        h.update("quiet", "", |job| {
            job["spec"]["ttlSecondsAfterFinished"] = json!(100 + ttl);
            job["metadata"]["labels"]["round"] = json!(ttl.to_string());
        })
        .await;
    }
    // A status from outside is something to look at: one task, one
    // reconcile, parked again. The controller takes changes in order, so
    // the replaces above were seen before it.
    h.update("quiet", "/status", |job| {
        let conditions = job["status"]["conditions"]
            .as_array_mut()
            .expect("conditions");
        conditions.push(json!({"type": "Running", "status": "True", "reason": "MXJobRunning"}));
    })
    .await;
    for _ in 0..200 {
        if h.metric(reconciles).await > before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    h.wait_parked().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(h.metric(reconciles).await, before + 1.0);
    // A deadline is: the job fails by it.
    h.update("quiet", "", |job| {
        job["spec"]["activeDeadlineSeconds"] = json!(1);
    })
    .await;
    let job = h.wait_for("quiet", "Failed", finished).await;
    assert!(holds(&job, "Failed"), "{job:#}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn only_the_lease_holder_runs_jobs_and_a_standby_takes_over() {
    let mut h = Harness::start_with_lease(ExecutorKind::Local, Duration::from_secs(2)).await;
    let standby = h.start_another().await;
    let go = h.path("go");
    let count = h.path("count-$(HOSTNAME)");
    h.create(h.job(
        "once",
        &all_roles(&["--count", &count, "--wait-file", &go]),
        json!({}),
    ))
    .await;
    let running = h
        .wait_for("once", "Running", |job| holds(job, "Running"))
        .await;
    h.wait_started("once", 3).await;
    // Two lease durations: the standby never starts anything meanwhile.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(h.pids("once").len(), 3, "every replica ran once");

    // The holder stops; the standby takes over and restarts the job.
    if let Some(holder) = h.server.replace(standby) {
        holder.stop().await;
    }
    h.watch_for("once", &version(&running), "Restarting", |job| {
        holds(job, "Restarting")
    })
    .await;
    h.wait_started("once", 6).await;
    std::fs::write(&go, "").expect("marker");
    h.wait_for("once", "Succeeded", |job| holds(job, "Succeeded"))
        .await;
    assert_eq!(h.runs("count-once-worker-0"), 2);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deleting_a_running_job_kills_its_processes_and_removes_its_files() {
    let h = Harness::start(ExecutorKind::Local).await;
    h.create(h.job("doomed", &all_roles(&["--sleep", "600"]), json!({})))
        .await;
    h.wait_started("doomed", 3).await;
    let job_dir = h.log_dir().join(NS).join("doomed");
    assert!(job_dir.exists());
    h.delete("doomed").await;
    let deadline = Instant::now() + WAIT;
    while h.pids("doomed").iter().any(|(_, _, p)| alive(*p)) || job_dir.exists() {
        assert!(
            Instant::now() < deadline,
            "the deleted job left processes or files"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    h.stop().await;
}

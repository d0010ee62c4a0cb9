//! What an operator relies on, proven on the real binary over SQLite:
//!
//! * `/metrics` parses with Prometheus' own parser (the Python
//!   `prometheus_client` package that `cargo xtask tools` installs in
//!   `target/acceptance/venv`), and its counters move with traffic:
//!   requests by verb, resource and code, their latencies, store calls,
//!   SQLite commits, open watches, the controller's reconciles and jobs by
//!   condition;
//! * under `--executor none` an idle job keeps no controller task, and a
//!   change wakes it;
//! * `/livez` and `/readyz` answer as kube-apiserver's do, to anyone;
//! * no audit line is dropped when whatever reads the log lags behind;
//! * `/metrics` and `/backup` follow the policy's `nonResourceURLs` rules;
//! * a backup taken in the middle of a storm of writes, restored with
//!   `mxjob-server restore` into a fresh directory and served again, holds
//!   every write acknowledged at or before the backup's revision and none
//!   after it, and passes `PRAGMA integrity_check`; `restore` refuses a
//!   directory a server is using.
//!
//! Every loop is bounded in count and time; all traffic stays on 127.0.0.1.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mxjob_test_support::new_job_value;
use mxjob_test_support::process::{ServerCommand, ServerProcess};
use serde_json::{json, Value};

const SERVER: &str = env!("CARGO_BIN_EXE_mxjob-server");
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

fn jobs_url(server: &ServerProcess, namespace: &str) -> String {
    server.url_for(&format!(
        "/apis/kubeflow.org/v1/namespaces/{namespace}/mxjobs"
    ))
}

fn http() -> reqwest::Client {
    mxjob_test_support::http_client(REQUEST_TIMEOUT)
}

/// The Python of `target/acceptance/venv`, where `cargo xtask tools`
/// installs `prometheus_client`.
fn python() -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/acceptance/venv/bin/python");
    assert!(
        path.exists(),
        "{} is missing: run `cargo xtask tools` first",
        path.display()
    );
    path
}

/// One sample: name, labels, value.
type Sample = (String, HashMap<String, String>, f64);

/// `text` as Prometheus' Python parser reads it.
fn parse_metrics(text: &str) -> Vec<Sample> {
    let script = "import json, sys\n\
        from prometheus_client.parser import text_string_to_metric_families\n\
        print(json.dumps([[s.name, s.labels, s.value]\n\
            for f in text_string_to_metric_families(sys.stdin.read()) for s in f.samples]))\n";
    let mut child = Command::new(python())
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python runs");
    let mut stdin = child.stdin.take().expect("stdin");
    let text = text.to_string();
    let writer = std::thread::spawn(move || std::io::Write::write_all(&mut stdin, text.as_bytes()));
    let output = child.wait_with_output().expect("python finishes");
    writer.join().expect("writer").expect("written");
    assert!(
        output.status.success(),
        "prometheus_client could not parse /metrics: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice::<Vec<(String, HashMap<String, String>, f64)>>(&output.stdout)
        .expect("the parser's samples")
}

/// Scrapes `/metrics` (with `token`, if any) and parses it.
async fn scrape(server: &ServerProcess, token: Option<&str>) -> Vec<Sample> {
    let mut request = http().get(server.url_for("/metrics"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("GET /metrics");
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .expect("a content type")
        .to_string();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    parse_metrics(&response.text().await.expect("the metrics"))
}

/// The sum of the samples named `name` whose labels include `labels`.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|(n, l, _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, _, v)| v)
        .sum()
}

/// `GET url`'s JSON body.
async fn get_json(url: &str) -> Value {
    let response = http().get(url).send().await.expect("GET");
    response.json().await.expect("a JSON body")
}

/// mxjob-server on the memory store, logging into `scratch`, once `/readyz`
/// answers 200.
async fn memory_server(scratch: &Path) -> ServerProcess {
    ServerCommand::new(SERVER, scratch.join("server.log"))
        .args(["--store", "memory"])
        .ready_path("/readyz")
        .start()
        .await
}

async fn create(server: &ServerProcess, namespace: &str, name: &str) -> Value {
    let response = http()
        .post(jobs_url(server, namespace))
        .json(&new_job_value(namespace, name))
        .send()
        .await
        .expect("create");
    assert_eq!(response.status(), 201, "create {name}");
    response.json().await.expect("the created job")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_move_with_traffic_and_parse_with_the_prometheus_parser() {
    let scratch = tempfile::tempdir().expect("temporary directory");
    let data = scratch.path().join("data");
    // Ready only once the store answers and the controller has listed.
    let server = ServerCommand::new(SERVER, scratch.path().join("server.log"))
        .args(["--store", "sqlite", "--data-dir"])
        .args([&data])
        .ready_path("/readyz")
        .start()
        .await;
    let before = scrape(&server, None).await;
    let requests = |samples: &[Sample], verb: &str, code: &str| {
        value(
            samples,
            "apiserver_request_total",
            &[("verb", verb), ("resource", "mxjobs"), ("code", code)],
        )
    };

    for name in ["a", "b", "c"] {
        create(&server, "metrics", name).await;
    }
    let missing = http()
        .get(format!("{}/nothing", jobs_url(&server, "metrics")))
        .send()
        .await
        .expect("get");
    assert_eq!(missing.status(), 404);
    let list = http()
        .get(jobs_url(&server, "metrics"))
        .send()
        .await
        .expect("list");
    assert_eq!(list.status(), 200);
    // A watch held open while the next scrape is taken.
    let watch = http()
        .get(format!(
            "{}?watch=true&timeoutSeconds=30",
            jobs_url(&server, "metrics")
        ))
        .send()
        .await
        .expect("watch");
    assert_eq!(watch.status(), 200);

    // The controller admits each job (condition Created) through its watch.
    let deadline = Instant::now() + Duration::from_secs(20);
    let after = loop {
        let samples = scrape(&server, None).await;
        if value(&samples, "mxjob_jobs", &[("condition", "Created")]) == 3.0 {
            break samples;
        }
        assert!(
            Instant::now() < deadline,
            "mxjob_jobs never counted the 3 jobs as Created: {:?}",
            samples
                .iter()
                .filter(|(n, _, _)| n == "mxjob_jobs")
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    let moved = |name: &str, labels: &[(&str, &str)]| {
        value(&after, name, labels) - value(&before, name, labels)
    };
    assert_eq!(
        requests(&after, "POST", "201") - requests(&before, "POST", "201"),
        3.0
    );
    assert_eq!(
        requests(&after, "GET", "404") - requests(&before, "GET", "404"),
        1.0
    );
    assert_eq!(
        requests(&after, "LIST", "200") - requests(&before, "LIST", "200"),
        1.0
    );
    assert_eq!(
        requests(&after, "WATCH", "200") - requests(&before, "WATCH", "200"),
        1.0
    );
    assert_eq!(
        moved(
            "apiserver_request_duration_seconds_count",
            &[
                ("verb", "POST"),
                ("resource", "mxjobs"),
                ("scope", "namespace")
            ]
        ),
        3.0
    );
    assert!(
        moved(
            "apiserver_request_total",
            &[
                ("verb", "GET"),
                ("subresource", "/metrics"),
                ("code", "200")
            ]
        ) >= 1.0
    );
    assert!(
        moved(
            "mxjob_storage_request_duration_seconds_count",
            &[("backend", "sqlite"), ("operation", "create")]
        ) >= 3.0
    );
    // Three creates and the controller's status writes, one commit each.
    let commits = moved("mxjob_sqlite_commit_writes_count", &[]);
    assert!(commits >= 6.0, "{commits} commits");
    assert_eq!(moved("mxjob_sqlite_commit_writes_sum", &[]), commits);
    assert_eq!(
        moved("mxjob_sqlite_commit_duration_seconds_count", &[]),
        commits
    );
    assert_eq!(
        value(
            &after,
            "apiserver_longrunning_requests",
            &[("verb", "WATCH")]
        ),
        1.0
    );
    assert!(
        value(
            &after,
            "controller_runtime_reconcile_time_seconds_count",
            &[("controller", "mxjob")]
        ) >= 3.0
    );
    assert!(after
        .iter()
        .any(|(n, l, _)| n == "workqueue_depth"
            && l.get("name").map(String::as_str) == Some("mxjob")));

    drop(watch);
    let deadline = Instant::now() + Duration::from_secs(10);
    while value(
        &scrape(&server, None).await,
        "apiserver_longrunning_requests",
        &[],
    ) != 0.0
    {
        assert!(
            Instant::now() < deadline,
            "the closed watch is still counted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls `/metrics` until `check` holds for the samples; panics with `what`
/// and the last samples' value of `name` after 20 seconds.
async fn scrape_until(
    server: &ServerProcess,
    what: &str,
    name: &str,
    check: impl Fn(&[Sample]) -> bool,
) -> Vec<Sample> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let samples = scrape(server, None).await;
        if check(&samples) {
            return samples;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: never happened; {name} is {:?}",
            samples
                .iter()
                .filter(|(n, _, _)| n == name)
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Under `--executor none` (the default) a job with nothing due keeps no
/// task in the controller, and a change to it brings one back, which then
/// does what the change asks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_jobs_keep_no_task_until_a_change_wakes_them() {
    let scratch = tempfile::tempdir().expect("temporary directory");
    let server = memory_server(scratch.path()).await;
    for name in ["a", "b", "c"] {
        create(&server, "parked", name).await;
    }
    // One job with a deadline far away: its task waits for it.
    let mut waiting = new_job_value("parked", "waiting");
    waiting["spec"]["activeDeadlineSeconds"] = json!(3600);
    let response = http()
        .post(jobs_url(&server, "parked"))
        .json(&waiting)
        .send()
        .await
        .expect("create");
    assert_eq!(response.status(), 201);

    let tasks = |samples: &[Sample]| value(samples, "mxjob_controller_job_tasks", &[]);
    scrape_until(
        &server,
        "four jobs admitted, one task left",
        "mxjob_controller_job_tasks",
        |samples| {
            value(samples, "mxjob_jobs", &[("condition", "Created")]) == 4.0
                && tasks(samples) == 1.0
        },
    )
    .await;

    // A parked job whose deadline is shortened fails at it.
    let url = format!("{}/a", jobs_url(&server, "parked"));
    let mut job = get_json(&url).await;
    job["spec"]["activeDeadlineSeconds"] = json!(1);
    let response = http().put(&url).json(&job).send().await.expect("replace");
    assert_eq!(response.status(), 200);
    scrape_until(
        &server,
        "the woken job failed at its deadline",
        "mxjob_jobs",
        |samples| value(samples, "mxjob_jobs", &[("condition", "Failed")]) == 1.0,
    )
    .await;
    let failed = get_json(&url).await;
    let reasons: Vec<&str> = failed["status"]["conditions"]
        .as_array()
        .expect("conditions")
        .iter()
        .filter_map(|c| c["reason"].as_str())
        .collect();
    assert_eq!(reasons, ["MXJobCreated", "MXJobFailed"], "{failed:#}");
    // Failed, it waits for its TTL: two tasks now.
    scrape_until(
        &server,
        "two tasks",
        "mxjob_controller_job_tasks",
        |samples| tasks(samples) == 2.0,
    )
    .await;
}

/// A burst of creates while nothing reads the server's stderr (a pipe
/// whose reader starts two seconds late): every create is answered, and
/// every one has its audit line once the reader catches up. The log waits
/// for its reader, as kube-apiserver's audit log does in its default
/// blocking mode, instead of dropping records.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_audit_line_is_dropped_when_the_log_reader_lags() {
    const CREATES: usize = 1500;
    const CLIENTS: usize = 32;
    let scratch = tempfile::tempdir().expect("temporary directory");
    let (reader, writer) = std::io::pipe().expect("a pipe");
    let command = ServerCommand::new(SERVER, scratch.path().join("server.log"))
        .args(["--store", "memory", "--executor", "none"])
        .ready_path("/readyz")
        .configure(move |command| {
            command.stderr(writer.try_clone().expect("the pipe's write end"));
        });
    let server = command.start().await;
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let read_lines = lines.clone();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(2));
        for line in std::io::BufRead::lines(std::io::BufReader::new(reader)) {
            let Ok(line) = line else { break };
            read_lines.lock().expect("lock").push(line);
        }
    });
    let url = jobs_url(&server, "audited");
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let url = url.clone();
            tokio::spawn(async move {
                let http = http();
                for i in (client..CREATES).step_by(CLIENTS) {
                    let response = http
                        .post(&url)
                        .json(&new_job_value("audited", &format!("job-{i}")))
                        .send()
                        .await
                        .expect("create");
                    assert_eq!(response.status(), 201);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("a client");
    }
    let audited = || {
        lines
            .lock()
            .expect("lock")
            .iter()
            .filter(|line| line.contains("verb: create") && line.contains("namespace: audited"))
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while audited() < CREATES && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let dropped: Vec<String> = lines
        .lock()
        .expect("lock")
        .iter()
        .filter(|line| line.contains("dropped"))
        .cloned()
        .collect();
    assert_eq!(
        audited(),
        CREATES,
        "audit lines of the creates; {dropped:?}"
    );
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn livez_and_readyz_answer_as_kube_apiserver_does() {
    let scratch = tempfile::tempdir().expect("temporary directory");
    let server = memory_server(scratch.path()).await;
    let get = |path: &str| {
        let url = server.url_for(path);
        async move {
            let response = http().get(url).send().await.expect("GET");
            let code = response.status().as_u16();
            (code, response.text().await.expect("body"))
        }
    };
    assert_eq!(get("/livez").await, (200, "ok".to_string()));
    assert_eq!(get("/readyz").await, (200, "ok".to_string()));
    assert_eq!(
        get("/livez?verbose").await,
        (200, "[+]ping ok\nlivez check passed\n".to_string())
    );
    assert_eq!(
        get("/readyz?verbose").await,
        (
            200,
            "[+]ping ok\n[+]store ok\n[+]controller-synced ok\n[+]shutdown ok\nreadyz check passed\n"
                .to_string()
        )
    );
    let (code, body) = get("/readyz?verbose&exclude=store").await;
    assert_eq!(code, 200);
    assert!(body.contains("[+]store excluded: ok\n"), "{body}");
}

/// A token file and a policy: `prom` may read `/metrics`, `ops` may take
/// backups, `dev` may do anything to MXJobs and nothing else.
fn write_access(dir: &Path) -> (PathBuf, PathBuf) {
    let tokens = dir.join("tokens.csv");
    std::fs::write(
        &tokens,
        "prom-token,prom,1,\"monitoring\"\nops-token,ops,2\ndev-token,dev,3\n",
    )
    .expect("token file");
    let policy = dir.join("policy.json");
    std::fs::write(
        &policy,
        json!({"rules": [
            {"groups": ["monitoring"], "nonResourceURLs": ["/metrics"], "verbs": ["get"]},
            {"users": ["ops"], "nonResourceURLs": ["/backup", "/metrics"], "verbs": ["get"]},
            {"users": ["dev"], "namespaces": ["*"], "verbs": ["*"]}
        ]})
        .to_string(),
    )
    .expect("policy file");
    (tokens, policy)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_backups_follow_the_policy_and_health_is_open() {
    let scratch = tempfile::tempdir().expect("temporary directory");
    let (tokens, policy) = write_access(scratch.path());
    let server = ServerCommand::new(SERVER, scratch.path().join("server.log"))
        .args(["--store", "sqlite", "--data-dir"])
        .args([scratch.path().join("data")])
        .args(["--token-auth-file".as_ref(), tokens.as_os_str()])
        .args(["--authorization-policy-file".as_ref(), policy.as_os_str()])
        .start()
        .await;
    let status = |path: &str, token: Option<&str>| {
        let mut request = http().get(server.url_for(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        async move {
            let response = request.send().await.expect("GET");
            let code = response.status().as_u16();
            let body = response.bytes().await.expect("body");
            (code, body)
        }
    };
    for (path, token, expected) in [
        ("/livez", None, 200),
        ("/readyz", None, 200),
        ("/metrics", None, 401),
        ("/backup", None, 401),
        ("/metrics", Some("prom-token"), 200),
        ("/backup", Some("prom-token"), 403),
        ("/metrics", Some("dev-token"), 403),
        ("/backup", Some("dev-token"), 403),
        ("/metrics", Some("ops-token"), 200),
        ("/backup", Some("ops-token"), 200),
    ] {
        let (code, body) = status(path, token).await;
        assert_eq!(code, expected, "GET {path} as {token:?}");
        if code == 403 {
            let status: Value = serde_json::from_slice(&body).expect("a Status");
            assert_eq!(status["kind"], "Status");
            assert_eq!(status["reason"], "Forbidden");
            assert!(
                status["message"]
                    .as_str()
                    .is_some_and(|m| m.contains(&format!("cannot get path \"{path}\""))),
                "{status}"
            );
        }
    }
}

/// One acknowledged write: the object's name, its resourceVersion, its
/// content (`None` for a delete, whose answer carries no revision), and
/// when it was sent and answered.
#[derive(Clone, Debug)]
struct Acked {
    name: String,
    version: u64,
    object: Option<Value>,
    sent: Instant,
    answered: Instant,
}

fn version_of(object: &Value) -> u64 {
    object["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|v| v.parse().ok())
        .expect("a numeric resourceVersion")
}

const STORM_NAMESPACE: &str = "storm";
/// Concurrent writers.
const WRITERS: usize = 4;
/// Writes per writer, at most.
const MAX_WRITES: usize = 400;
/// How long the storm may last, at most.
const STORM_TIME: Duration = Duration::from_secs(60);

/// One writer: creates an object, replaces it twice, deletes every third
/// one, and starts over, until `stop` or its bound.
async fn writer(url: String, id: usize, ledger: Arc<Mutex<Vec<Acked>>>, stop: Arc<Mutex<bool>>) {
    let client = http();
    let started = Instant::now();
    let mut current: Option<Value> = None;
    for write in 0..MAX_WRITES {
        if *stop.lock().expect("stop") || started.elapsed() > STORM_TIME {
            return;
        }
        let sent = Instant::now();
        let (name, response) = match current.take() {
            None => {
                let name = format!("w{id}-{write}");
                let body = new_job_value(STORM_NAMESPACE, &name);
                (name, client.post(&url).json(&body).send().await)
            }
            Some(last) => {
                let name = last["metadata"]["name"]
                    .as_str()
                    .expect("a name")
                    .to_string();
                let object_url = format!("{url}/{name}");
                if write % 9 == 3 {
                    (name, client.delete(object_url).send().await)
                } else {
                    let mut body = last;
                    body["metadata"]["annotations"] = json!({ "storm/write": write.to_string() });
                    (name, client.put(object_url).json(&body).send().await)
                }
            }
        };
        let response = response.expect("the server answers every write");
        let code = response.status().as_u16();
        let body: Value = response.json().await.expect("a JSON answer");
        assert!(matches!(code, 200 | 201), "{name}: {code} {body}");
        let answered = Instant::now();
        let acked = if body["kind"] == "Status" {
            Acked {
                name: name.clone(),
                version: 0,
                object: None,
                sent,
                answered,
            }
        } else {
            current = (write % 3 != 2).then(|| body.clone());
            Acked {
                name: name.clone(),
                version: version_of(&body),
                object: Some(body),
                sent,
                answered,
            }
        };
        ledger.lock().expect("ledger").push(acked);
    }
}

/// Runs `mxjob-server restore` with `args`; its exit and output.
fn restore(args: &[&std::ffi::OsStr]) -> (bool, String) {
    let output = Command::new(SERVER)
        .arg("restore")
        .args(args)
        .output()
        .expect("mxjob-server restore runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_mid_storm_restores_exactly_the_writes_up_to_its_revision() {
    let scratch = tempfile::tempdir().expect("temporary directory");
    let data = scratch.path().join("data");
    let server = ServerCommand::new(SERVER, scratch.path().join("server.log"))
        .args(["--store", "sqlite", "--controller=false", "--data-dir"])
        .args([&data])
        .start()
        .await;
    let url = jobs_url(&server, STORM_NAMESPACE);
    let ledger = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(Mutex::new(false));
    let writers: Vec<_> = (0..WRITERS)
        .map(|id| {
            tokio::spawn(writer(
                url.clone(),
                id,
                Arc::clone(&ledger),
                Arc::clone(&stop),
            ))
        })
        .collect();

    // Mid-storm: after some writes, with writers still going.
    let deadline = Instant::now() + STORM_TIME;
    while ledger.lock().expect("ledger").len() < 150 {
        assert!(Instant::now() < deadline, "the storm did not get going");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let requested = Instant::now();
    let backup = http()
        .get(server.url_for("/backup"))
        .send()
        .await
        .expect("GET /backup");
    assert_eq!(backup.status(), 200);
    assert_eq!(backup.headers()["content-type"], "application/vnd.sqlite3");
    let revision: u64 = backup.headers()["mxjob-backup-revision"]
        .to_str()
        .ok()
        .and_then(|v| v.parse().ok())
        .expect("the backup's revision");
    let bytes = backup.bytes().await.expect("the backup");
    let backed_up = Instant::now();
    let during = ledger.lock().expect("ledger").len();
    // Then the storm goes on a while before it stops.
    while ledger.lock().expect("ledger").len() < during + 150 {
        assert!(
            Instant::now() < deadline,
            "the storm stopped after the backup"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    *stop.lock().expect("stop") = true;
    for writer in writers {
        writer.await.expect("a writer does not panic");
    }
    let file = scratch.path().join("backup.db");
    std::fs::write(&file, &bytes).expect("the backup file");
    let ok: String = rusqlite::Connection::open(&file)
        .and_then(|c| c.query_row("PRAGMA integrity_check", [], |row| row.get(0)))
        .expect("integrity_check runs on the backup");
    assert_eq!(ok, "ok");

    // Not into the directory the running server holds.
    let (restored, output) = restore(&[
        "--from".as_ref(),
        file.as_os_str(),
        "--data-dir".as_ref(),
        data.as_os_str(),
        "--force".as_ref(),
    ]);
    assert!(!restored && output.contains("locked"), "{output}");

    let fresh = scratch.path().join("restored");
    let (restored, output) = restore(&[
        "--from".as_ref(),
        file.as_os_str(),
        "--data-dir".as_ref(),
        fresh.as_os_str(),
    ]);
    assert!(restored, "{output}");
    assert!(
        output.contains(&format!("at revision {revision}")),
        "{output}"
    );
    let ok: String = rusqlite::Connection::open(fresh.join("mxjob.db"))
        .and_then(|c| c.query_row("PRAGMA integrity_check", [], |row| row.get(0)))
        .expect("integrity_check runs on the restored file");
    assert_eq!(ok, "ok");

    // What each object was at the backup's revision, by the acknowledged
    // writes: the newest create or replace at or before it. A delete's
    // answer carries no revision, so deletes are placed by time: one
    // answered before the backup was asked for is before its revision,
    // one sent after the backup was answered is after it, and only one in
    // between may be either.
    let ledger = ledger.lock().expect("ledger").clone();
    let after = ledger.iter().filter(|a| a.version > revision).count();
    assert!(after > 0, "no write was acknowledged after the backup");
    let mut expected: HashMap<String, &Acked> = HashMap::new();
    for acked in ledger.iter().filter(|a| a.object.is_some()) {
        let newer = expected
            .get(&acked.name)
            .is_none_or(|known| known.version < acked.version);
        if acked.version <= revision && newer {
            expected.insert(acked.name.clone(), acked);
        }
    }
    let deletes = |name: &str| {
        ledger
            .iter()
            .filter(|a| a.object.is_none() && a.name == name)
            .cloned()
            .collect::<Vec<_>>()
    };

    let server = ServerCommand::new(SERVER, scratch.path().join("restored.log"))
        .args(["--store", "sqlite", "--controller=false", "--data-dir"])
        .args([&fresh])
        .start()
        .await;
    let list: Value = http()
        .get(jobs_url(&server, STORM_NAMESPACE))
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("the list");
    assert_eq!(
        version_of(&list),
        revision,
        "the restored server's revision"
    );
    let items = list["items"].as_array().expect("items");
    let mut present = HashMap::new();
    for item in items {
        let name = item["metadata"]["name"]
            .as_str()
            .expect("a name")
            .to_string();
        assert!(
            version_of(item) <= revision,
            "{name} has resourceVersion {} after the backup's {revision}",
            version_of(item)
        );
        let known = expected.get(&name).unwrap_or_else(|| {
            panic!("{name} is restored but no write of it was acknowledged by {revision}")
        });
        assert_eq!(
            Some(item),
            known.object.as_ref(),
            "{name}: the acknowledged write"
        );
        assert!(
            deletes(&name).iter().all(|d| d.answered >= requested),
            "{name} is restored though its delete was acknowledged before the backup"
        );
        present.insert(name, item);
    }
    for (name, known) in &expected {
        if !present.contains_key(name) {
            assert!(
                deletes(name).iter().any(|d| d.sent <= backed_up),
                "{name}, acknowledged at {} before the backup's {revision}, is missing",
                known.version
            );
        }
    }
    // The restored server goes on from the revision after the backup's.
    let next = create(&server, STORM_NAMESPACE, "after-restore").await;
    assert_eq!(version_of(&next), revision + 1);
    eprintln!(
        "backup at revision {revision} ({} bytes): {} objects restored, {} writes acknowledged in all, {after} after it",
        bytes.len(),
        present.len(),
        ledger.len()
    );
}

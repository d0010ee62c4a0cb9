//! A full disk under the SQLite store, proven on the real binary.
//!
//! The test runs `mxjob-server --store sqlite` as a child process on a
//! free loopback port whose files may not grow past 8 MiB: the child gets
//! a soft `RLIMIT_FSIZE` between fork and exec, with `SIGXFSZ` ignored, so
//! a write that would take a file past the limit fails with `EFBIG`
//! instead of killing the process. That needs no privileges (no tmpfs to
//! mount), so it runs on any Linux machine, and the test can lift the
//! limit of the running process later (`prlimit`), as if space had been
//! freed. The server's log goes through a pipe to this process, so it is
//! not held to the limit.
//!
//! SQLite's Unix layer reports a write that fails with `EFBIG` as a write
//! I/O error (`SQLITE_IOERR_WRITE`, "disk I/O error"); only `ENOSPC` is
//! reported as `SQLITE_FULL` ("database or disk is full"). Both make the
//! commit fail and roll the transaction back, and the server answers both
//! the same way: `500 InternalError`, a Kubernetes `v1 Status` naming the
//! SQLite error.
//!
//! Two clients create jobs with 64 KiB annotations and replace them until
//! the files can grow no more. On the way the database file reaches the
//! limit first, so SQLite can no longer checkpoint the write-ahead log into
//! it (those failures are SQLite's own and invisible); then the log reaches
//! it too, and commits fail. The test checks:
//!
//! * every write is either acknowledged (200/201) or refused with a 5xx
//!   `v1 Status` whose `code` is the HTTP status — never a dropped
//!   connection, a hang or another kind of body — and writes were refused
//!   (the disk did fill);
//! * while the disk is full the process is alive, `GET /version` answers
//!   200, every acknowledged object reads back exactly as it was
//!   acknowledged, a list holds exactly the acknowledged objects, and a
//!   refused write left no trace (a refused create is absent, a refused
//!   replace left the previous version);
//! * once there is room again, the same process acknowledges large writes
//!   again, with resourceVersions above every earlier one;
//! * after a SIGKILL, the file as it was left passes `PRAGMA
//!   integrity_check` (opened read-only), and a server restarted on the same
//!   directory has every acknowledged write exactly as acknowledged and
//!   nothing that was refused, acknowledges new writes with resourceVersions
//!   above every earlier one, and leaves a file that passes the check again.
//!
//! It lives in the server package because only there does Cargo build the
//! binary for a test and tell it where (`CARGO_BIN_EXE_mxjob-server`).
//! Every loop is bounded in count and time, and all traffic stays on
//! 127.0.0.1.

use std::collections::{HashMap, HashSet};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mxjob_test_support::new_job_value;
use mxjob_test_support::process::{ServerCommand, ServerProcess};
use serde_json::{json, Value};

const NAMESPACE: &str = "disk-full";
/// The largest file the limited server may write: room for about 120 of
/// the test's writes in the database file and 60 more in the write-ahead
/// log, which SQLite checkpoints into the file every 1000 pages (4 MiB).
const FILE_SIZE_LIMIT: libc::rlim_t = 8 * 1024 * 1024;
/// The size of each write's padding annotation.
const PAD_BYTES: usize = 64 * 1024;
/// Concurrent clients.
const WORKERS: usize = 2;
/// Writes per client, at most; the limit is reached after a few hundred.
const MAX_WRITES: usize = 1000;
/// A client stops after this many refusals.
const REFUSALS_PER_WORKER: usize = 8;
/// Large creates once there is room again, and after the restart.
const WRITES_AFTER: usize = 16;
/// Replaces of one object before a client creates the next.
const REPLACES_PER_OBJECT: usize = 3;
/// How long the clients may take to fill the disk.
const FILL_TIMEOUT: Duration = Duration::from_secs(180);
/// How long one request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The annotation each write sets to its sequence number, and the padding.
const SEQ: &str = "disk-full-test/seq";
const PAD: &str = "disk-full-test/pad";

fn http_client() -> reqwest::Client {
    mxjob_test_support::http_client(REQUEST_TIMEOUT)
}

/// Limits the files the process may write to `limit` bytes, and has a
/// write past it fail with `EFBIG` rather than kill the process. Only the
/// soft limit is set, so that [`lift_file_size_limit`] can lift it again
/// without privileges.
fn limit_file_size(command: &mut Command, limit: libc::rlim_t) {
    let apply = move || {
        let rlimit = libc::rlimit {
            rlim_cur: limit,
            rlim_max: libc::RLIM_INFINITY,
        };
        // SAFETY: runs in the forked child before exec, where only
        // async-signal-safe calls are allowed; setrlimit(2) and signal(2)
        // are, and they touch nothing but the pointer to `rlimit` on this
        // stack. An ignored signal stays ignored across exec.
        unsafe {
            if libc::setrlimit(libc::RLIMIT_FSIZE, &rlimit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::signal(libc::SIGXFSZ, libc::SIG_IGN) == libc::SIG_ERR {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(())
    };
    // SAFETY: `apply` only makes async-signal-safe calls (see above) and
    // allocates nothing.
    unsafe {
        command.pre_exec(apply);
    }
}

/// Lifts the file size limit of the running server: the disk has room
/// again.
fn lift_file_size_limit(server: &ServerProcess) {
    let pid = i32::try_from(server.pid())
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .expect("the server's pid");
    let unlimited = rustix::process::Rlimit {
        current: None,
        maximum: None,
    };
    rustix::process::prlimit(Some(pid), rustix::process::Resource::Fsize, unlimited)
        .expect("lifting the server's file size limit");
}

/// Starts the server on `data`, with its files limited to `limit` bytes
/// if given, and waits until it answers. Its log is appended to `log` by
/// a thread of this process.
async fn start(data: &Path, log: &Path, limit: Option<libc::rlim_t>) -> ServerProcess {
    let mut command = ServerCommand::new(env!("CARGO_BIN_EXE_mxjob-server"), log)
        .args(["--store", "sqlite", "--data-dir"])
        .args([data])
        // No job controller: its status writes would make the clients'
        // replaces stale.
        .args(["--controller=false"])
        .ready_path(format!(
            "/apis/kubeflow.org/v1/namespaces/{NAMESPACE}/mxjobs"
        ))
        .log_through_pipe();
    if let Some(limit) = limit {
        command = command.configure(move |command| limit_file_size(command, limit));
    }
    command.start().await
}

fn collection(url: &str) -> String {
    format!("{url}/apis/kubeflow.org/v1/namespaces/{NAMESPACE}/mxjobs")
}

fn object_url(url: &str, name: &str) -> String {
    format!("{}/{name}", collection(url))
}

/// Padding that differs from write to write.
fn padding(seq: u64) -> String {
    let unit = format!("{seq:08}-");
    unit.repeat(PAD_BYTES / unit.len())
}

/// A job to create: the seed with a fresh name and the annotations.
fn new_job(name: &str, seq: u64) -> Value {
    let mut job = new_job_value(NAMESPACE, name);
    job["metadata"]["annotations"] = json!({ SEQ: seq.to_string(), PAD: padding(seq) });
    job
}

/// The same object with new annotations, for a replace.
fn next_version(last: &Value, seq: u64) -> Value {
    let mut job = last.clone();
    job["metadata"]["annotations"][SEQ] = json!(seq.to_string());
    job["metadata"]["annotations"][PAD] = json!(padding(seq));
    job
}

fn version_of(job: &Value) -> u64 {
    job["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("a stored job has a numeric resourceVersion: {job}"))
}

#[derive(Clone, Default)]
struct Ledger {
    /// The last acknowledged response for each object.
    acked: HashMap<String, Value>,
    /// Objects whose create was refused (and never acknowledged since).
    refused_creates: HashSet<String>,
    writes_acked: usize,
    /// The refusals, as (HTTP status, Status reason, Status message).
    refusals: Vec<(u16, String, String)>,
}

/// Checks that a refusal is a Kubernetes `v1 Status` with a 5xx code that
/// matches the HTTP status; returns its reason and message.
fn check_refusal(what: &str, status: u16, content_type: &str, body: &str) -> (String, String) {
    assert!(
        (500..600).contains(&status),
        "{what}: refused with {status}, not a 5xx: {body}"
    );
    assert!(
        content_type.starts_with("application/json"),
        "{what}: a refusal of type {content_type:?}: {body}"
    );
    let status_body: Value = serde_json::from_str(body)
        .unwrap_or_else(|e| panic!("{what}: a refusal that is not JSON ({e}): {body}"));
    assert_eq!(status_body["apiVersion"], "v1", "{what}: {body}");
    assert_eq!(status_body["kind"], "Status", "{what}: {body}");
    assert_eq!(status_body["status"], "Failure", "{what}: {body}");
    assert_eq!(status_body["code"], status, "{what}: {body}");
    let reason = status_body["reason"].as_str().unwrap_or_default();
    let message = status_body["message"].as_str().unwrap_or_default();
    assert!(
        !reason.is_empty() && !message.is_empty(),
        "{what}: a Status without reason or message: {body}"
    );
    (reason.to_string(), message.to_string())
}

/// One client: creates an object, replaces it a few times, moves on,
/// until the server has refused it enough writes. Fails the test on
/// anything but an acknowledgement or a 5xx Status.
async fn worker(url: String, id: usize, ledger: Arc<Mutex<Ledger>>, deadline: Instant) {
    let http = http_client();
    let mut current: Option<(String, Value)> = None;
    let mut refusals = 0;
    for write in 0..MAX_WRITES {
        if refusals >= REFUSALS_PER_WORKER {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "client {id}: the disk did not fill within {FILL_TIMEOUT:?} ({write} writes)"
        );
        let seq = write as u64;
        let (name, create, request) = match &current {
            Some((name, last)) if write % (REPLACES_PER_OBJECT + 1) != 0 => (
                name.clone(),
                false,
                http.put(object_url(&url, name))
                    .json(&next_version(last, seq)),
            ),
            _ => {
                let name = format!("w{id}-{write}");
                let job = new_job(&name, seq);
                (name, true, http.post(collection(&url)).json(&job))
            }
        };
        let what = format!("{} of {name}", if create { "create" } else { "replace" });
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{what}: no answer from the server: {e:?}"));
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let body = response
            .text()
            .await
            .unwrap_or_else(|e| panic!("{what}: the answer was cut off: {e:?}"));
        if status == 200 || status == 201 {
            let job: Value = serde_json::from_str(&body).expect("an acknowledged write is JSON");
            let mut ledger = ledger.lock().expect("ledger");
            ledger.writes_acked += 1;
            ledger.refused_creates.remove(&name);
            ledger.acked.insert(name.clone(), job.clone());
            current = Some((name, job));
        } else {
            let (reason, message) = check_refusal(&what, status, &content_type, &body);
            let mut ledger = ledger.lock().expect("ledger");
            ledger.refusals.push((status, reason, message));
            if create {
                ledger.refused_creates.insert(name);
                // Go on replacing the last acknowledged object.
            }
            refusals += 1;
        }
    }
}

/// Every acknowledged object reads back exactly as acknowledged, a list
/// holds exactly those, and no refused create is there. Returns the
/// highest acknowledged resourceVersion.
async fn check_acknowledged(server: &ServerProcess, ledger: &Ledger, when: &str) -> u64 {
    let http = http_client();
    let mut highest = 0;
    for (name, acked) in &ledger.acked {
        highest = highest.max(version_of(acked));
        let response = http
            .get(object_url(server.url(), name))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{when}: reading {name}: {e:?}"));
        assert_eq!(response.status(), 200, "{when}: reading {name}");
        let stored: Value = response.json().await.expect("a job");
        assert!(
            stored == *acked,
            "{when}: {name} is not as acknowledged: resourceVersion {} (seq {}), acknowledged {} \
             (seq {})",
            version_of(&stored),
            stored["metadata"]["annotations"][SEQ],
            version_of(acked),
            acked["metadata"]["annotations"][SEQ],
        );
    }
    for name in &ledger.refused_creates {
        let response = http
            .get(object_url(server.url(), name))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{when}: reading {name}: {e:?}"));
        assert_eq!(
            response.status(),
            404,
            "{when}: {name}, whose create was refused, is there"
        );
    }
    let response = http
        .get(collection(server.url()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{when}: listing: {e:?}"));
    assert_eq!(response.status(), 200, "{when}: listing");
    let list: Value = response.json().await.expect("a list");
    let items = list["items"].as_array().expect("list items");
    let listed: HashMap<&str, &Value> = items
        .iter()
        .map(|item| (item["metadata"]["name"].as_str().unwrap_or_default(), item))
        .collect();
    assert_eq!(
        listed.len(),
        ledger.acked.len(),
        "{when}: the list does not hold exactly the acknowledged objects"
    );
    for (name, acked) in &ledger.acked {
        let item = listed
            .get(name.as_str())
            .unwrap_or_else(|| panic!("{when}: {name} is not listed"));
        // List items carry no apiVersion and kind of their own.
        let mut expected = acked.clone();
        let mut item = (*item).clone();
        for object in [&mut expected, &mut item] {
            if let Some(object) = object.as_object_mut() {
                object.remove("apiVersion");
                object.remove("kind");
            }
        }
        assert!(
            item == expected,
            "{when}: {name} is listed as another version"
        );
    }
    highest
}

/// Creates a few more large jobs named `prefix-N`, which must all be
/// acknowledged with increasing resourceVersions above `highest`; records
/// them in `ledger` and returns the last resourceVersion.
async fn write_more(
    server: &ServerProcess,
    prefix: &str,
    highest: u64,
    ledger: &mut Ledger,
) -> u64 {
    let http = http_client();
    let mut last = highest;
    for i in 0..WRITES_AFTER {
        let name = format!("{prefix}-{i}");
        let response = http
            .post(collection(server.url()))
            .json(&new_job(&name, i as u64))
            .send()
            .await
            .unwrap_or_else(|e| panic!("creating {name}: {e:?}"));
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        assert_eq!(status, 201, "creating {name}: {body}");
        let created: Value = serde_json::from_str(&body).expect("a job");
        let version = version_of(&created);
        assert!(
            version > last,
            "{name} got resourceVersion {version}, not above {last}"
        );
        last = version;
        ledger.acked.insert(name, created);
    }
    last
}

async fn check_version_endpoint(server: &ServerProcess, when: &str) {
    let response = http_client()
        .get(server.url_for("/version"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{when}: GET /version: {e:?}"));
    assert_eq!(response.status(), 200, "{when}: GET /version");
}

/// The file passes SQLite's own integrity check (opened read-only).
fn check_integrity(data: &Path, when: &str) {
    let conn = rusqlite::Connection::open_with_flags(
        data.join("mxjob.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("the database opens read-only");
    let result: String = conn
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .expect("integrity_check runs");
    assert_eq!(result, "ok", "{when}: integrity_check");
}

/// The files in `dir` and their sizes, to show what the limit stopped.
fn file_sizes(dir: &Path) -> Vec<(String, u64)> {
    let mut sizes: Vec<_> = std::fs::read_dir(dir)
        .expect("the data directory")
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let size = entry.metadata().ok()?.len();
            Some((entry.file_name().to_string_lossy().into_owned(), size))
        })
        .collect();
    sizes.sort();
    sizes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_disk_refuses_writes_with_status_and_loses_no_acknowledged_write() {
    let scratch = tempfile::tempdir().expect("temporary directory");
    let data = scratch.path().join("data");
    let log: PathBuf = scratch.path().join("server.log");
    let ledger = Arc::new(Mutex::new(Ledger::default()));

    // Fill the disk.
    let mut server = start(&data, &log, Some(FILE_SIZE_LIMIT)).await;
    let deadline = Instant::now() + FILL_TIMEOUT;
    let workers: Vec<_> = (0..WORKERS)
        .map(|id| {
            tokio::spawn(worker(
                server.url().to_string(),
                id,
                Arc::clone(&ledger),
                deadline,
            ))
        })
        .collect();
    for worker in workers {
        if let Err(error) = worker.await {
            server.assert_alive("with the disk full");
            std::panic::resume_unwind(error.into_panic());
        }
    }
    {
        let ledger = ledger.lock().expect("ledger");
        let mut answers: Vec<_> = ledger.refusals.clone();
        answers.sort();
        answers.dedup();
        eprintln!(
            "{} writes acknowledged, {} refused; files {:?}; refusals: {answers:?}",
            ledger.writes_acked,
            ledger.refusals.len(),
            file_sizes(&data)
        );
        assert!(ledger.writes_acked > 0, "no write was acknowledged");
        assert!(!ledger.refusals.is_empty(), "no write was refused");
        let largest = file_sizes(&data).iter().map(|(_, size)| *size).max();
        assert!(
            largest.is_some_and(|size| size + PAD_BYTES as u64 >= FILE_SIZE_LIMIT),
            "the writes were refused before a file reached the limit: {:?}",
            file_sizes(&data)
        );
    }

    // While full: alive, reads and lists work, refusals left no trace.
    server.assert_alive("with the disk full");
    check_version_endpoint(&server, "while full").await;
    let snapshot = ledger.lock().expect("ledger").clone();
    let highest = check_acknowledged(&server, &snapshot, "while full").await;
    server.assert_alive("with the disk full");

    // Room again: the same process takes large writes again.
    lift_file_size_limit(&server);
    let mut snapshot = snapshot;
    let highest = write_more(&server, "room-again", highest, &mut snapshot).await;
    check_acknowledged(&server, &snapshot, "with room again").await;

    // Kill it where it stands, check the file, restart without the limit.
    server.kill();
    check_integrity(&data, "after the kill");
    let server = start(&data, &log, None).await;
    check_acknowledged(&server, &snapshot, "after the restart").await;
    check_version_endpoint(&server, "after the restart").await;
    write_more(&server, "after-restart", highest, &mut snapshot).await;
    drop(server);
    check_integrity(&data, "after the writes that followed the restart");
}

//! Crash safety of the SQLite store, proven on the real binary.
//!
//! The test runs `mxjob-server --store sqlite` as a child process on a
//! free loopback port, has several clients create and replace jobs as fast
//! as it answers, and kills it with SIGKILL in the middle of that storm —
//! a different moment in each round. Then it checks the data directory:
//!
//! * SQLite's `PRAGMA integrity_check` passes on the file as the kill left
//!   it (opened read-only);
//! * after a restart on the same directory, every acknowledged write is
//!   there: an object's resourceVersion is at least the last one a client
//!   was told, and where it is equal the object is exactly what the server
//!   answered; where it is greater, it is the write that was in flight at
//!   the kill, never anything else;
//! * revisions go on increasing: a new write after the restart gets a
//!   resourceVersion above every acknowledged one.
//!
//! It runs twice: with a few clients, and with many, so that the writes
//! the SQLite store commits together (group commit: one transaction and one
//! fsync for the writes that arrived meanwhile) are killed in every state
//! — queued, in a transaction, committing, committed but not yet answered.
//! A batch is answered only after its commit, so every acknowledged write
//! must be there, and a write that was not acknowledged may or may not be.
//!
//! The rounds share one data directory, so each restart also re-checks
//! everything acknowledged in earlier rounds. The server keeps a short
//! history and compacts every second, so kills can also land in a
//! compaction. It lives in the server
//! package because only there does Cargo build the binary for a test and
//! tell it where (`CARGO_BIN_EXE_mxjob-server`). Every loop is bounded in
//! count and time, and all traffic stays on 127.0.0.1.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mxjob_client::types;
use mxjob_test_support::new_job_value;
use mxjob_test_support::process::{ServerCommand, ServerProcess};
use serde_json::json;

const NAMESPACE: &str = "crash";
/// Kill points, one per round: how long after the first acknowledged
/// write the server is killed.
const KILL_DELAYS: [Duration; 5] = [
    Duration::from_millis(0),
    Duration::from_millis(60),
    Duration::from_millis(250),
    Duration::from_millis(700),
    Duration::from_millis(1500),
];
/// A small history window, compacted every second, so that compactions
/// run during the storms and the kills can land in one. No job controller:
/// its status writes would make the clients' replaces stale.
const SERVER_ARGS: [&str; 7] = [
    "--controller=false",
    "--history-revisions",
    "100",
    "--history-seconds",
    "0",
    "--compaction-interval-seconds",
    "1",
];
/// Concurrent clients in the storm, and writes per client per round at
/// most (a create, then replaces): a few clients writing long...
const FEW_WORKERS: usize = 4;
const FEW_WORKERS_WRITES: usize = 600;
/// ... and many, each writing less, so that commits take many writes each.
const MANY_WORKERS: usize = 64;
const MANY_WORKERS_WRITES: usize = 60;
/// Kill points of the storms of many clients.
const MANY_WORKERS_KILL_DELAYS: [Duration; 5] = [
    Duration::from_millis(0),
    Duration::from_millis(40),
    Duration::from_millis(200),
    Duration::from_millis(800),
    Duration::from_millis(2000),
];
/// Replaces of one object before a client moves on to a new one.
const REPLACES_PER_OBJECT: usize = 4;
/// How long one request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a restarted server may take to acknowledge its first write.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// The annotation each write sets to its sequence number.
const SEQ: &str = "crash-test/seq";

fn http_client() -> reqwest::Client {
    mxjob_test_support::http_client(REQUEST_TIMEOUT)
}

/// Starts the server on `data` and waits until it answers.
async fn start(data: &Path, log: &Path) -> ServerProcess {
    ServerCommand::new(env!("CARGO_BIN_EXE_mxjob-server"), log)
        .args(["--store", "sqlite", "--data-dir"])
        .args([data])
        .args(SERVER_ARGS)
        .ready_path(format!(
            "/apis/kubeflow.org/v1/namespaces/{NAMESPACE}/mxjobs"
        ))
        .start()
        .await
}

/// What a client was told about one object, and what it had sent since.
#[derive(Clone, Debug)]
struct Known {
    /// The last acknowledged response.
    acked: types::MxJob,
    acked_version: u64,
    acked_seq: u64,
    /// A write sent after it and not acknowledged (in flight at the kill).
    in_flight_seq: Option<u64>,
}

#[derive(Default)]
struct Ledger {
    objects: HashMap<String, Known>,
    /// Writes acknowledged this round.
    acked_this_round: usize,
    /// Error statuses the server answered (none are expected).
    failures: Vec<String>,
}

fn version_of(job: &types::MxJob) -> u64 {
    job.metadata
        .resource_version
        .as_deref()
        .and_then(|v| v.parse().ok())
        .expect("a stored job has a numeric resourceVersion")
}

fn seq_of(job: &types::MxJob) -> Option<u64> {
    job.metadata
        .annotations
        .get(SEQ)
        .and_then(|s| s.parse().ok())
}

/// A job to create: the seed with a fresh name and the sequence annotation.
fn new_job(name: &str, seq: u64) -> types::MxJob {
    let mut job = new_job_value(NAMESPACE, name);
    job["metadata"]["annotations"] = json!({ SEQ: seq.to_string() });
    serde_json::from_value(job).expect("the seed is an MXJob")
}

/// Whether an error means "the server is gone" (expected after the kill)
/// rather than an answer.
fn is_answer<E: std::fmt::Debug>(error: &mxjob_client::Error<E>) -> bool {
    matches!(
        error,
        mxjob_client::Error::ErrorResponse(_) | mxjob_client::Error::UnexpectedResponse(_)
    )
}

/// One client of the storm: creates an object, replaces it a few times,
/// moves on; stops at the first request the server does not answer.
async fn worker(
    url: String,
    round: usize,
    id: usize,
    max_writes: usize,
    ledger: Arc<Mutex<Ledger>>,
) {
    let client = mxjob_client::Client::new_with_client(&url, http_client());
    let mut current: Option<(String, types::MxJob)> = None;
    for write in 0..max_writes {
        let seq = write as u64;
        let (name, result) = match current.take() {
            Some((name, last)) if write % (REPLACES_PER_OBJECT + 1) != 0 => {
                let mut body = last;
                body.metadata
                    .annotations
                    .insert(SEQ.to_string(), seq.to_string());
                record_in_flight(&ledger, &name, seq);
                let result = client
                    .replace_mxjob()
                    .namespace(NAMESPACE)
                    .name(name.clone())
                    .body(body)
                    .send()
                    .await;
                (name, result)
            }
            _ => {
                let name = format!("r{round}-w{id}-{write}");
                let result = client
                    .create_mxjob()
                    .namespace(NAMESPACE)
                    .body(new_job(&name, seq))
                    .send()
                    .await;
                (name, result)
            }
        };
        match result {
            Ok(response) => {
                let job = response.into_inner();
                let mut ledger = ledger.lock().expect("ledger");
                ledger.acked_this_round += 1;
                ledger.objects.insert(
                    name.clone(),
                    Known {
                        acked_version: version_of(&job),
                        acked_seq: seq,
                        acked: job.clone(),
                        in_flight_seq: None,
                    },
                );
                current = Some((name, job));
            }
            Err(error) if is_answer(&error) => {
                let mut ledger = ledger.lock().expect("ledger");
                ledger.failures.push(format!("{name}: {error:?}"));
                return;
            }
            // The server is gone.
            Err(_) => return,
        }
    }
}

fn record_in_flight(ledger: &Mutex<Ledger>, name: &str, seq: u64) {
    let mut ledger = ledger.lock().expect("ledger");
    if let Some(known) = ledger.objects.get_mut(name) {
        known.in_flight_seq = Some(seq);
    }
}

/// The file as the kill left it passes SQLite's own integrity check;
/// returns the revision history was compacted to.
fn check_integrity(data: &Path) -> u64 {
    let conn = rusqlite::Connection::open_with_flags(
        data.join("mxjob.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("the database opens read-only");
    let result: String = conn
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .expect("integrity_check runs");
    assert_eq!(result, "ok", "integrity_check");
    let compacted: i64 = conn
        .query_row(
            "SELECT value FROM meta WHERE name = 'compacted'",
            [],
            |row| row.get(0),
        )
        .expect("the compacted revision");
    u64::try_from(compacted).expect("a revision")
}

/// Every acknowledged write is on the restarted server; returns the
/// highest acknowledged resourceVersion.
async fn check_acknowledged(server: &ServerProcess, objects: &HashMap<String, Known>) -> u64 {
    let client = mxjob_client::Client::new_with_client(server.url(), http_client());
    let mut highest = 0;
    for (name, known) in objects {
        highest = highest.max(known.acked_version);
        let stored = client
            .read_mxjob()
            .namespace(NAMESPACE)
            .name(name.clone())
            .send()
            .await
            .unwrap_or_else(|e| panic!("acknowledged object {name} is missing: {e:?}"))
            .into_inner();
        let version = version_of(&stored);
        assert!(
            version >= known.acked_version,
            "{name}: resourceVersion {version} is older than the acknowledged {}",
            known.acked_version
        );
        if version == known.acked_version {
            assert_eq!(
                stored, known.acked,
                "{name}: content of the acknowledged write"
            );
            assert_eq!(seq_of(&stored), Some(known.acked_seq));
        } else {
            // Only the write in flight at the kill may have landed after it.
            assert_eq!(
                seq_of(&stored),
                known.in_flight_seq,
                "{name}: at {version}, newer than the acknowledged {}, is not the write in flight",
                known.acked_version
            );
        }
    }
    highest
}

/// A new write after the restart gets a revision above every
/// acknowledged one; returns what it was told, for later checks.
async fn check_revisions_go_on(server: &ServerProcess, name: &str, highest: u64) -> Known {
    let client = mxjob_client::Client::new_with_client(server.url(), http_client());
    let created = client
        .create_mxjob()
        .namespace(NAMESPACE)
        .body(new_job(name, 0))
        .send()
        .await
        .expect("a write after the restart")
        .into_inner();
    let version = version_of(&created);
    assert!(
        version > highest,
        "a new write got resourceVersion {version}, not above the acknowledged {highest}"
    );
    Known {
        acked_version: version,
        acked_seq: 0,
        acked: created,
        in_flight_seq: None,
    }
}

/// Checks a restarted server against everything acknowledged so far,
/// then writes one more object (`probe`) and records it.
async fn check_restart(server: &ServerProcess, ledger: &Mutex<Ledger>, probe: &str) {
    let objects = ledger.lock().expect("ledger").objects.clone();
    let highest = check_acknowledged(server, &objects).await;
    let known = check_revisions_go_on(server, probe, highest).await;
    ledger
        .lock()
        .expect("ledger")
        .objects
        .insert(probe.to_string(), known);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_sigkill_mid_storm() {
    storms(FEW_WORKERS, FEW_WORKERS_WRITES, &KILL_DELAYS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_sigkill_with_many_concurrent_writers() {
    storms(MANY_WORKERS, MANY_WORKERS_WRITES, &MANY_WORKERS_KILL_DELAYS).await;
}

/// One storm of `workers` clients, each writing at most `max_writes`, per
/// kill delay, all on one data directory; checks after each kill and after
/// the last one.
async fn storms(workers: usize, max_writes: usize, kill_delays: &[Duration]) {
    let scratch = tempfile::tempdir().expect("temporary directory");
    let data = scratch.path().join("data");
    let log: PathBuf = scratch.path().join("server.log");
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let test_started = Instant::now();

    for (round, delay) in kill_delays.iter().enumerate() {
        let mut server = start(&data, &log).await;
        if round > 0 {
            check_restart(&server, &ledger, &format!("probe-{round}")).await;
        }

        ledger.lock().expect("ledger").acked_this_round = 0;
        let workers: Vec<_> = (0..workers)
            .map(|id| {
                tokio::spawn(worker(
                    server.url().to_string(),
                    round,
                    id,
                    max_writes,
                    Arc::clone(&ledger),
                ))
            })
            .collect();
        // Kill at this round's point after the first acknowledged write.
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        while ledger.lock().expect("ledger").acked_this_round == 0 {
            assert!(Instant::now() < deadline, "no write was acknowledged");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        tokio::time::sleep(*delay).await;
        server.kill();
        for worker in workers {
            tokio::time::timeout(REQUEST_TIMEOUT * 2, worker)
                .await
                .expect("a client stops once the server is gone")
                .expect("a client does not panic");
        }
        let acked = ledger.lock().expect("ledger").acked_this_round;
        let failures = ledger.lock().expect("ledger").failures.clone();
        assert!(
            failures.is_empty(),
            "the server answered errors: {failures:?}"
        );
        eprintln!("round {round}: killed after {delay:?}, {acked} writes acknowledged");

        check_integrity(&data);
    }

    // After the last kill: everything from every round is still there.
    let server = start(&data, &log).await;
    check_restart(&server, &ledger, "probe-final").await;
    // Give the compactor one more period, so that it has surely run.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    drop(server);
    let compacted = check_integrity(&data);
    assert!(compacted > 0, "the compactor never ran");
    eprintln!(
        "{} objects checked in {:?}",
        ledger.lock().expect("ledger").objects.len(),
        test_started.elapsed()
    );
}

//! Several `mxjob-server` replicas over one etcd, proven on the real binary.
//!
//! Each test starts a throwaway etcd (`mxjob_test_support::etcd`) and two
//! `mxjob-server --store etcd` child processes on free loopback ports, and
//! drives them through the generated client:
//!
//! * what is written through one replica is read, listed and watched
//!   through the other — a watch opened on replica B reports a create made
//!   through replica A exactly as A answered it — and a delete through B
//!   is gone through A and reported by B's watch;
//! * replaces racing through both replicas from one resourceVersion let
//!   exactly one win (200) and answer every other 409 Conflict, because the
//!   compare-and-swap happens in etcd, not in either process (a round that
//!   some other write, such as a controller's status update, overtook
//!   before any racer got there has no winner and is run again; no round
//!   may have two);
//! * a replica pointed at an etcd that is not there exits at startup,
//!   within its connect timeout, naming the endpoints.
//!
//! It lives in the server package because only there does Cargo build the
//! binary for a test and say where it is (`CARGO_BIN_EXE_mxjob-server`).
//! Every wait is bounded, and all traffic stays on 127.0.0.1. Built only
//! with the `etcd` feature (which the test crate turns on).

#![cfg(feature = "etcd")]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;
use mxjob_client::types;
use mxjob_test_support::etcd::Etcd;
use mxjob_test_support::process::{ServerCommand, ServerProcess};
use mxjob_test_support::{free_port, http_client, new_job_value};
use serde_json::Value;

const NAMESPACE: &str = "replicas";
/// How long one request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const EVENT_TIMEOUT: Duration = Duration::from_secs(20);
/// Replaces racing from one resourceVersion, spread over both replicas.
const RACERS: usize = 8;
/// Races to run before giving up on one that no other write disturbs.
const ROUNDS: usize = 5;

/// A running replica; killed and reaped when dropped.
struct Replica {
    _server: ServerProcess,
    client: mxjob_client::Client,
}

/// Starts `mxjob-server --store etcd` against `etcd` and waits until its
/// store answers.
async fn start_replica(etcd: &Etcd, log: &Path) -> Replica {
    let server = ServerCommand::new(env!("CARGO_BIN_EXE_mxjob-server"), log)
        .args(["--store", "etcd", "--etcd-endpoints", &etcd.endpoint])
        .ready_path(format!(
            "/apis/kubeflow.org/v1/namespaces/{NAMESPACE}/mxjobs"
        ))
        .start()
        .await;
    Replica {
        client: mxjob_client::Client::new_with_client(server.url(), http_client(REQUEST_TIMEOUT)),
        _server: server,
    }
}

/// An etcd and two replicas over it (and the directory of their logs).
async fn cluster() -> (Etcd, Replica, Replica, tempfile::TempDir) {
    let etcd = Etcd::start().await;
    let logs = tempfile::tempdir().expect("temporary directory");
    let a = start_replica(&etcd, &logs.path().join("a.log")).await;
    let b = start_replica(&etcd, &logs.path().join("b.log")).await;
    (etcd, a, b, logs)
}

fn new_job(name: &str) -> types::MxJob {
    serde_json::from_value(new_job_value(NAMESPACE, name)).expect("the seed is an MXJob")
}

fn resource_version(job: &types::MxJob) -> String {
    job.metadata
        .resource_version
        .clone()
        .expect("a stored job has a resourceVersion")
}

/// The HTTP status of a call's answer, success or error.
fn status<T, E: std::fmt::Debug>(
    result: &Result<mxjob_client::ResponseValue<T>, mxjob_client::Error<E>>,
) -> u16 {
    match result {
        Ok(response) => response.status().as_u16(),
        Err(mxjob_client::Error::ErrorResponse(response)) => response.status().as_u16(),
        Err(mxjob_client::Error::UnexpectedResponse(response)) => response.status().as_u16(),
        Err(other) => panic!("no answer: {other}"),
    }
}

/// The next event of a watch that is not a MODIFIED one (a controller may
/// write a job's status at any time), failing if none comes in time.
async fn next_event_but_status<S>(events: &mut S) -> types::WatchEvent
where
    S: futures::Stream<Item = Result<types::WatchEvent, mxjob_client::WatchError>> + Unpin,
{
    let deadline = tokio::time::Instant::now() + EVENT_TIMEOUT;
    loop {
        let event = tokio::time::timeout_at(deadline, events.next())
            .await
            .expect("an event arrives in time")
            .expect("the watch goes on")
            .expect("the event decodes");
        if event.type_.to_string() != "MODIFIED" {
            return event;
        }
    }
}

fn metadata_field(event: &types::WatchEvent, name: &str) -> String {
    event.object["metadata"][name]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn number(version: &str) -> u64 {
    version.parse().expect("a numeric resourceVersion")
}

// Both replicas run with their defaults, so whatever else a server writes
// to a job (a controller reporting status) may land between the steps:
// the checks below hold whatever else is written.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_written_through_one_replica_is_read_listed_and_watched_through_the_other() {
    let (_etcd, a, b, _logs) = cluster().await;

    let before = b
        .client
        .list_mxjobs()
        .namespace(NAMESPACE)
        .send()
        .await
        .expect("list through B")
        .into_inner();
    let from = before
        .metadata
        .resource_version
        .clone()
        .expect("a list has a resourceVersion");
    let body = b
        .client
        .watch_mxjobs()
        .namespace(NAMESPACE)
        .resource_version(from)
        .timeout_seconds(60)
        .send()
        .await
        .expect("watch through B")
        .into_inner();
    let mut events = Box::pin(mxjob_client::watch_events(body));

    let created = a
        .client
        .create_mxjob()
        .namespace(NAMESPACE)
        .body(new_job("shared"))
        .send()
        .await
        .expect("create through A")
        .into_inner();
    let version = resource_version(&created);

    let added = next_event_but_status(&mut events).await;
    assert_eq!(
        added.type_.to_string(),
        "ADDED",
        "B's watch sees A's create"
    );
    assert_eq!(
        Value::Object(added.object),
        serde_json::to_value(&created).expect("jobs serialize"),
        "B's watch reports exactly what A stored"
    );

    let read = b
        .client
        .read_mxjob()
        .namespace(NAMESPACE)
        .name("shared")
        .send()
        .await
        .expect("read through B")
        .into_inner();
    assert_eq!(read.metadata.uid, created.metadata.uid);
    assert_eq!(read.spec, created.spec);
    assert!(number(&resource_version(&read)) >= number(&version));

    let list = b
        .client
        .list_mxjobs()
        .namespace(NAMESPACE)
        .send()
        .await
        .expect("list through B")
        .into_inner();
    let uids: Vec<_> = list.items.iter().map(|j| j.metadata.uid.clone()).collect();
    assert_eq!(uids, vec![created.metadata.uid.clone()]);
    let listed_at = list
        .metadata
        .resource_version
        .expect("a list has a resourceVersion");
    assert!(number(&listed_at) >= number(&version));

    // And the other way round: a delete through B is gone through A, and
    // the watch on B reports it at a later revision.
    b.client
        .delete_mxjob()
        .namespace(NAMESPACE)
        .name("shared")
        .send()
        .await
        .expect("delete through B");
    let gone = a
        .client
        .read_mxjob()
        .namespace(NAMESPACE)
        .name("shared")
        .send()
        .await;
    assert_eq!(status(&gone), 404, "A no longer finds what B deleted");
    let deleted = next_event_but_status(&mut events).await;
    assert_eq!(deleted.type_.to_string(), "DELETED");
    assert_eq!(metadata_field(&deleted, "name"), "shared");
    assert!(number(&metadata_field(&deleted, "resourceVersion")) > number(&version));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaces_racing_through_both_replicas_from_one_version_let_exactly_one_win() {
    let (_etcd, a, b, _logs) = cluster().await;
    a.client
        .create_mxjob()
        .namespace(NAMESPACE)
        .body(new_job("contended"))
        .send()
        .await
        .expect("create through A");

    // A round whose version another write overtook before any racer got
    // there has no winner; that may happen a few times, never two winners.
    for round in 0..ROUNDS {
        let base = b
            .client
            .read_mxjob()
            .namespace(NAMESPACE)
            .name("contended")
            .send()
            .await
            .expect("read through B")
            .into_inner();
        let racers: Vec<_> = (0..RACERS)
            .map(|i| {
                let client = if i % 2 == 0 {
                    a.client.clone()
                } else {
                    b.client.clone()
                };
                let mut body = base.clone();
                body.metadata
                    .labels
                    .insert("writer".to_string(), format!("{round}-{i}"));
                tokio::spawn(async move {
                    let result = client
                        .replace_mxjob()
                        .namespace(NAMESPACE)
                        .name("contended")
                        .body(body)
                        .send()
                        .await;
                    (status(&result), result.ok().map(|r| r.into_inner()))
                })
            })
            .collect();
        let mut codes = Vec::new();
        let mut winners = Vec::new();
        for racer in racers {
            let (code, job) = racer.await.expect("racer");
            codes.push(code);
            winners.extend(job);
        }
        assert!(
            codes.iter().all(|c| *c == 200 || *c == 409),
            "every replace is 200 or 409: {codes:?}"
        );
        assert!(winners.len() <= 1, "two replaces won: {codes:?}");
        let Some(winner) = winners.pop() else {
            continue;
        };
        let label = winner.metadata.labels.get("writer").cloned();
        for replica in [&a, &b] {
            let read = replica
                .client
                .read_mxjob()
                .namespace(NAMESPACE)
                .name("contended")
                .send()
                .await
                .expect("read")
                .into_inner();
            assert_eq!(
                read.metadata.labels.get("writer").cloned(),
                label,
                "both replicas read the winning replace"
            );
        }
        return;
    }
    panic!("no round of {ROUNDS} had a winner");
}

#[test]
fn a_replica_pointed_at_no_etcd_exits_at_startup_naming_the_endpoints() {
    // Nothing listens on a port just let go of.
    let endpoint = format!("http://127.0.0.1:{}", free_port());
    let mut child = Command::new(env!("CARGO_BIN_EXE_mxjob-server"))
        .args(["--store", "etcd", "--etcd-endpoints", &endpoint])
        .arg("--listen")
        .arg(format!("127.0.0.1:{}", free_port()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the server starts");
    let deadline = Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(exit) = child.try_wait().expect("waiting for the server") {
            break exit;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the server kept running without etcd");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        std::io::Read::read_to_string(&mut pipe, &mut stderr).expect("the server's stderr");
    }
    assert!(!exit.success(), "the server failed: {stderr}");
    assert!(
        stderr.contains(&format!("etcd at {endpoint} did not answer")),
        "the error names etcd and its endpoints: {stderr}"
    );
}

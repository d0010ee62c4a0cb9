//! Clients in other languages, generated from `openapi/mxjob.json` by
//! `cargo xtask clients`: a program per language (`tests/clients/`) creates
//! the seed's job, reads it, replaces its TTL, merge-patches a label, lists
//! by that label, provokes and recognises a 409 Conflict, and deletes it,
//! against a server started here. Each prints one `ok: STEP ...` line per
//! step and exits non-zero at the first answer it did not expect.
//!
//! A client-go program (`tests/clients/informer`) runs an informer on the
//! server's MXJobs with client-go's WatchList feature on and reports how it
//! filled its cache: from a streaming list, not a LIST.
//!
//! The clients are not generated here: when they are missing, or were
//! generated from another version of the document, or a program changed
//! since it was built, these tests fail and say to run `cargo xtask
//! clients` (which `cargo xtask test` runs too).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use mxjob_tests::{new_job_value, TestServer};
use tokio::process::Command;

/// The steps every program prints, in order.
const STEPS: [&str; 7] = [
    "create", "read", "replace", "patch", "list", "conflict", "delete",
];

/// How long a program may take.
const TIMEOUT: Duration = Duration::from_secs(120);

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn clients_dir() -> PathBuf {
    workspace().join("target/clients")
}

/// Fails unless `cargo xtask clients` has run to the end on the current
/// `openapi/mxjob.json`.
fn assert_clients_generated_from_current_spec() {
    let source = clients_dir().join("source.json");
    let generated_from = std::fs::read_to_string(&source).unwrap_or_else(|_| {
        panic!(
            "{} is missing: the generated clients are not there. Run `cargo xtask clients` \
             (or `cargo xtask test`) first",
            source.display()
        )
    });
    let current =
        std::fs::read_to_string(workspace().join("openapi/mxjob.json")).expect("the spec");
    assert!(
        generated_from == current,
        "openapi/mxjob.json changed since the clients in target/clients were generated: \
         run `cargo xtask clients`"
    );
}

fn modified(path: &Path) -> SystemTime {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `artifact` (relative to `target/clients`), failing with the fix when it
/// is missing or older than one of `sources` (relative to the workspace),
/// or when the clients were generated from another document.
fn built(artifact: &str, sources: &[&str]) -> PathBuf {
    assert_clients_generated_from_current_spec();
    built_from(artifact, sources)
}

/// [`built`] for a program that does not use the generated clients.
fn built_from(artifact: &str, sources: &[&str]) -> PathBuf {
    let path = clients_dir().join(artifact);
    assert!(
        path.exists(),
        "{} is missing: run `cargo xtask clients` (or `cargo xtask test`) first",
        path.display()
    );
    for source in sources {
        assert!(
            modified(&workspace().join(source)) <= modified(&path),
            "{source} changed since {artifact} was built: run `cargo xtask clients`"
        );
    }
    path
}

/// A tool `cargo xtask clients` installed under `target/acceptance/`.
fn installed(relative: &str) -> PathBuf {
    let path = workspace().join("target/acceptance").join(relative);
    assert!(
        path.exists(),
        "{} is missing: run `cargo xtask clients` (or `cargo xtask test`) first",
        path.display()
    );
    path
}

/// Runs a language's program against a fresh server and checks that it
/// succeeded and printed the steps in order.
async fn run_program(language: &str, mut command: Command) {
    let server = TestServer::start().await;
    command
        .arg(&server.url)
        .arg(workspace().join("openapi/examples/replace-mxjob.json"))
        .kill_on_drop(true);
    let output = tokio::time::timeout(TIMEOUT, command.output())
        .await
        .unwrap_or_else(|_| panic!("the {language} program ran longer than {TIMEOUT:?}"))
        .unwrap_or_else(|e| panic!("the {language} program does not start: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the {language} program failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    let steps: Vec<&str> = stdout
        .lines()
        .map(|line| {
            line.strip_prefix("ok: ")
                .and_then(|rest| rest.split_whitespace().next())
                .unwrap_or_else(|| panic!("unexpected line from {language}: {line:?}"))
        })
        .collect();
    assert_eq!(steps, STEPS, "{stdout}");
    assert!(
        stdout.contains("ok: conflict 409 Conflict"),
        "the {language} program did not report the Conflict: {stdout}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_python_client_runs_the_job_lifecycle_and_recognises_a_conflict() {
    let package = built("python/mxjob_client/__init__.py", &[]);
    let python = installed("clients-venv/bin/python");
    let mut command = Command::new(python);
    command
        .arg(workspace().join("tests/clients/python/main.py"))
        .env(
            "PYTHONPATH",
            package.parent().and_then(Path::parent).expect("dir"),
        )
        .env("PYTHONDONTWRITEBYTECODE", "1");
    run_program("python", command).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_typescript_types_with_openapi_fetch_run_the_job_lifecycle() {
    let program = built(
        "typescript/dist/main.js",
        &[
            "tests/clients/typescript/main.ts",
            "tests/clients/typescript/tsconfig.json",
        ],
    );
    let mut command = Command::new("node");
    command.arg(program);
    run_program("typescript", command).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_go_client_runs_the_job_lifecycle_and_recognises_a_conflict() {
    let program = built(
        "bin/mxjob-go-client",
        &["tests/clients/go/main.go", "tests/clients/go/go.mod"],
    );
    run_program("go", Command::new(program)).await;
}

/// The namespace the informer watches.
const INFORMER_NS: &str = "informed";

/// client-go's informer (dynamic client, `dynamicinformer`, WatchListClient
/// on) syncs its cache with the jobs that existed, then sees the create,
/// update and delete it makes; and it got there through a streaming list
/// (a watch with `sendInitialEvents=true`) without any LIST. Without the
/// initial-events-end bookmark the informer does not sync while the watch
/// stays open (the wait fails after 30 s), and falls back to a LIST once the
/// watch ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_go_informer_syncs_from_a_streaming_list_without_a_list_and_sees_changes() {
    let program = built_from(
        "bin/mxjob-informer",
        &[
            "tests/clients/informer/main.go",
            "tests/clients/informer/go.mod",
            "tests/clients/informer/go.sum",
        ],
    );
    let server = TestServer::start().await;
    for name in ["existing-1", "existing-2"] {
        let response = server
            .http
            .post(server.collection_url(INFORMER_NS))
            .json(&new_job_value(INFORMER_NS, name))
            .send()
            .await
            .expect("create");
        assert_eq!(response.status().as_u16(), 201, "create {name}");
    }
    // Another namespace's job must not reach the informer's cache.
    let response = server
        .http
        .post(server.collection_url("elsewhere"))
        .json(&new_job_value("elsewhere", "not-informed"))
        .send()
        .await
        .expect("create");
    assert_eq!(response.status().as_u16(), 201);

    let mut command = Command::new(program);
    command
        .arg(&server.url)
        .arg(INFORMER_NS)
        .arg(workspace().join("openapi/examples/replace-mxjob.json"))
        .args(["existing-1", "existing-2"])
        // Explicit, so that a change of client-go's default cannot change
        // what is tested; the inconsistency detector would add a LIST.
        .env("KUBE_FEATURE_WatchListClient", "true")
        .env_remove("KUBE_WATCHLIST_INCONSISTENCY_DETECTOR")
        .kill_on_drop(true);
    let output = tokio::time::timeout(TIMEOUT, command.output())
        .await
        .unwrap_or_else(|_| panic!("the informer ran longer than {TIMEOUT:?}"))
        .expect("the informer starts");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the informer failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    let summary: serde_json::Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("the informer's summary is not JSON ({e}): {stdout}"));
    assert_eq!(summary["watchListClient"], true, "{summary}");
    assert_eq!(
        summary["synced"],
        serde_json::json!(["existing-1", "existing-2"]),
        "{summary}"
    );
    let events: Vec<&str> = summary["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e.as_str())
        .collect();
    let made = [
        "add informer-made",
        "update informer-made",
        "delete informer-made",
    ];
    let seen: Vec<&str> = events
        .iter()
        .copied()
        .filter(|e| e.ends_with(" informer-made"))
        .collect();
    assert_eq!(seen, made, "{summary}");
    assert!(events.contains(&"add existing-1") && events.contains(&"add existing-2"));
    assert_eq!(
        summary["sendInitialEvents"], true,
        "the informer asked for a streaming list: {summary}"
    );
    assert_eq!(
        summary["plainList"], false,
        "the informer made no LIST, so it did not fall back: {summary}"
    );
    server.stop().await;
}

//! Streaming lists (Kubernetes' WatchList): a watch with
//! `sendInitialEvents=true&resourceVersionMatch=NotOlderThan` that starts
//! with the current objects as ADDED events, ends them with a BOOKMARK
//! annotated `k8s.io/initial-events-end: "true"` at the resourceVersion they
//! were read at, then follows changes; what `sendInitialEvents=false` means;
//! and the option combinations refused with `422 Invalid` on `ListOptions`.
//!
//! The expectations are kube-apiserver 1.37's: the validation is
//! `ValidateListOptions` (k8s.io/apimachinery
//! `pkg/apis/meta/internalversion/validation`), the defaulting
//! `SetListOptionsDefaults` (the WatchList feature is on by default since
//! 1.34), and the initial events and their bookmark come from the watch
//! cache (k8s.io/apiserver `pkg/storage/cacher`), which sends the bookmark
//! only to a watch that allows bookmarks. The refusals' messages, the replay
//! of `sendInitialEvents=false` from a resourceVersion and the absence of
//! any bookmark without `allowWatchBookmarks` were also compared with the
//! answers of a kube-apiserver v1.37.2 serving an MXJob custom resource.
//!
//! Events are read from the raw HTTP stream, one JSON document per line,
//! as client-go reads them.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use mxjob_server::store::memory::MemoryStore;
use mxjob_tests::{new_job_value, TestServer};
use serde_json::{json, Value};

const NS: &str = "streaming";
const OTHER_NS: &str = "streaming-other";

/// The annotation that marks the end of the initial events.
const INITIAL_EVENTS_END: &str = "k8s.io/initial-events-end";

/// The query of a streaming list as client-go's reflector sends it.
const STREAMING: &str =
    "watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true";

/// How long one event may take to arrive.
const EVENT_TIMEOUT: Duration = Duration::from_secs(10);

async fn create(server: &TestServer, namespace: &str, name: &str, labels: Value) -> Value {
    let mut job = new_job_value(namespace, name);
    job["metadata"]["labels"] = labels;
    let response = server
        .http
        .post(server.collection_url(namespace))
        .json(&job)
        .send()
        .await
        .expect("create");
    assert_eq!(response.status().as_u16(), 201, "create {namespace}/{name}");
    response.json().await.expect("the created job")
}

/// Replaces `job`'s labels (a PUT of the job as read); the stored job.
async fn relabel(server: &TestServer, job: &Value, labels: Value) -> Value {
    let mut changed = job.clone();
    changed["metadata"]["labels"] = labels;
    let namespace = job["metadata"]["namespace"].as_str().expect("namespace");
    let name = job["metadata"]["name"].as_str().expect("name");
    let response = server
        .http
        .put(server.object_url(namespace, name))
        .json(&changed)
        .send()
        .await
        .expect("replace");
    assert_eq!(
        response.status().as_u16(),
        200,
        "replace {namespace}/{name}"
    );
    response.json().await.expect("the replaced job")
}

/// An object's (or a list's) resourceVersion as a number.
fn version_of(object: &Value) -> u64 {
    object["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no numeric resourceVersion in {object}"))
}

/// The resourceVersion of a list of every namespace read now: the store's
/// newest revision.
async fn current_version(server: &TestServer) -> u64 {
    let list: Value = server
        .http
        .get(format!("{}/apis/kubeflow.org/v1/mxjobs", server.url))
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("a list");
    version_of(&list)
}

/// `namespace/name` of an event's object.
fn key(event: &Value) -> String {
    let metadata = &event["object"]["metadata"];
    format!(
        "{}/{}",
        metadata["namespace"].as_str().unwrap_or_default(),
        metadata["name"].as_str().unwrap_or_default()
    )
}

fn is_initial_events_end(event: &Value) -> bool {
    event["type"] == "BOOKMARK"
        && event["object"]["metadata"]["annotations"][INITIAL_EVENTS_END] == "true"
}

/// A watch's response, read one event (one line) at a time.
struct Events {
    response: reqwest::Response,
    buffer: Vec<u8>,
}

impl Events {
    /// Starts the watch at `url`; it must answer 200.
    async fn start(server: &TestServer, url: &str) -> Events {
        let response = server.http.get(url).send().await.expect("watch");
        assert_eq!(response.status().as_u16(), 200, "{url}");
        Events {
            response,
            buffer: Vec::new(),
        }
    }

    /// The next event, or `None` when the stream has ended.
    async fn next(&mut self) -> Option<Value> {
        loop {
            if let Some(end) = self.buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buffer.drain(..=end).collect();
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return Some(serde_json::from_slice(&line).expect("one JSON event per line"));
            }
            let chunk = tokio::time::timeout(EVENT_TIMEOUT, self.response.chunk())
                .await
                .expect("an event, or the end of the stream, in time")
                .expect("the stream reads");
            match chunk {
                Some(bytes) => self.buffer.extend_from_slice(&bytes),
                None if self.buffer.iter().all(u8::is_ascii_whitespace) => return None,
                None => self.buffer.push(b'\n'),
            }
        }
    }

    async fn expect_event(&mut self) -> Value {
        self.next().await.expect("the stream goes on")
    }

    /// The next event that is not a periodic bookmark (which a watch that
    /// allows bookmarks may get at any time, without the annotation).
    async fn next_change(&mut self) -> Value {
        loop {
            let event = self.expect_event().await;
            if event["type"] != "BOOKMARK" || is_initial_events_end(&event) {
                return event;
            }
        }
    }

    /// The events up to and including the first BOOKMARK: the initial
    /// events and the bookmark that ends them.
    async fn initial_events(&mut self) -> (Vec<Value>, Value) {
        let mut added = Vec::new();
        loop {
            let event = self.expect_event().await;
            if event["type"] == "BOOKMARK" {
                return (added, event);
            }
            added.push(event);
        }
    }
}

/// Checks that `added` are ADDED events of exactly `expected` (as
/// `namespace/name`), none newer than `list_version`, and that `bookmark`
/// ends them as kube-apiserver ends them: annotated, with nothing but the
/// kind, the annotation and the list's resourceVersion.
fn assert_initial_events(added: &[Value], bookmark: &Value, expected: &[&str], list_version: u64) {
    assert!(
        added.iter().all(|e| e["type"] == "ADDED"),
        "initial events are ADDED: {added:?}"
    );
    let keys: Vec<String> = added.iter().map(key).collect();
    let unique: BTreeSet<&str> = keys.iter().map(String::as_str).collect();
    assert_eq!(keys.len(), unique.len(), "no object twice: {keys:?}");
    assert_eq!(
        unique,
        expected.iter().copied().collect::<BTreeSet<_>>(),
        "the initial events are the objects that existed"
    );
    assert_eq!(bookmark["type"], "BOOKMARK");
    assert_eq!(
        bookmark["object"]["metadata"]["annotations"],
        json!({ INITIAL_EVENTS_END: "true" }),
        "{bookmark}"
    );
    assert_eq!(bookmark["object"]["apiVersion"], "kubeflow.org/v1");
    assert_eq!(bookmark["object"]["kind"], "MXJob");
    assert_eq!(
        version_of(&bookmark["object"]),
        list_version,
        "the bookmark carries the resourceVersion of the list"
    );
    for event in added {
        assert!(
            version_of(&event["object"]) <= list_version,
            "an initial object is no newer than the list: {event}"
        );
    }
}

#[tokio::test]
async fn a_streaming_list_sends_the_current_objects_then_the_initial_events_end_bookmark_then_changes(
) {
    let server = TestServer::start().await;
    let a = create(&server, NS, "a", json!({})).await;
    create(&server, NS, "b", json!({})).await;
    create(&server, NS, "c", json!({})).await;
    // Another namespace's job is no part of this namespace's list.
    create(&server, OTHER_NS, "elsewhere", json!({})).await;
    let list_version = current_version(&server).await;

    let url = format!(
        "{}?{STREAMING}&timeoutSeconds=30",
        server.collection_url(NS)
    );
    let mut events = Events::start(&server, &url).await;
    let (added, bookmark) = events.initial_events().await;
    assert_initial_events(
        &added,
        &bookmark,
        &["streaming/a", "streaming/b", "streaming/c"],
        list_version,
    );

    // Writes after the watch started arrive after the bookmark, newer than
    // it.
    let a2 = relabel(&server, &a, json!({"phase": "changed"})).await;
    let d = create(&server, NS, "d", json!({})).await;
    let modified = events.next_change().await;
    assert_eq!(
        (modified["type"].as_str(), key(&modified).as_str()),
        (Some("MODIFIED"), "streaming/a")
    );
    assert_eq!(version_of(&modified["object"]), version_of(&a2));
    assert!(version_of(&a2) > list_version);
    assert_eq!(modified["object"]["metadata"]["labels"]["phase"], "changed");
    let created = events.next_change().await;
    assert_eq!(
        (created["type"].as_str(), key(&created).as_str()),
        (Some("ADDED"), "streaming/d")
    );
    assert_eq!(version_of(&created["object"]), version_of(&d));
    server.stop().await;
}

/// Both cluster-wide watch paths (`/mxjobs?watch=true` and the deprecated
/// `/watch/mxjobs`, which kube-apiserver also treats as a watch only with
/// `watch=true` when it checks the options) stream the selected objects of
/// every namespace, then the changes that enter or stay in the selection.
#[tokio::test]
async fn a_cluster_wide_streaming_list_holds_the_selected_objects_of_every_namespace() {
    for path in ["mxjobs", "watch/mxjobs"] {
        let server = TestServer::start().await;
        create(&server, NS, "vision-1", json!({"team": "vision"})).await;
        let speech = create(&server, NS, "speech", json!({"team": "speech"})).await;
        let vision_2 = create(&server, OTHER_NS, "vision-2", json!({"team": "vision"})).await;
        create(&server, OTHER_NS, "unlabelled", json!({})).await;
        let list_version = current_version(&server).await;

        let url = format!(
            "{}/apis/kubeflow.org/v1/{path}?{STREAMING}&labelSelector=team%3Dvision&timeoutSeconds=30",
            server.url
        );
        let mut events = Events::start(&server, &url).await;
        let (added, bookmark) = events.initial_events().await;
        assert_initial_events(
            &added,
            &bookmark,
            &["streaming/vision-1", "streaming-other/vision-2"],
            list_version,
        );

        // Outside the selection: not seen. Entering it: ADDED. In it: MODIFIED.
        create(&server, OTHER_NS, "speech-2", json!({"team": "speech"})).await;
        relabel(&server, &speech, json!({"team": "vision"})).await;
        relabel(&server, &vision_2, json!({"team": "vision", "x": "y"})).await;
        let mut live = Vec::new();
        for _ in 0..2 {
            let event = events.next_change().await;
            live.push(format!(
                "{} {}",
                event["type"].as_str().unwrap_or(""),
                key(&event)
            ));
        }
        assert_eq!(
            live,
            [
                "ADDED streaming/speech",
                "MODIFIED streaming-other/vision-2"
            ],
            "{path}"
        );
        server.stop().await;
    }
}

/// kube-apiserver sends the initial-events-end bookmark only to a watch
/// that allows bookmarks (client-go's reflector always allows them): without
/// `allowWatchBookmarks` the initial events are followed directly by the
/// changes, and no BOOKMARK is ever sent.
#[tokio::test]
async fn without_allow_watch_bookmarks_a_streaming_list_sends_no_bookmark() {
    let server = TestServer::start().await;
    create(&server, NS, "a", json!({})).await;
    create(&server, NS, "b", json!({})).await;
    let url = format!(
        "{}?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&timeoutSeconds=3",
        server.collection_url(NS)
    );
    let mut events = Events::start(&server, &url).await;
    let mut initial = BTreeSet::new();
    for _ in 0..2 {
        let event = events.expect_event().await;
        assert_eq!(event["type"], "ADDED", "{event}");
        initial.insert(key(&event));
    }
    assert_eq!(
        initial,
        BTreeSet::from(["streaming/a".to_string(), "streaming/b".to_string()])
    );
    create(&server, NS, "c", json!({})).await;
    let mut rest = Vec::new();
    while let Some(event) = events.next().await {
        rest.push(format!(
            "{} {}",
            event["type"].as_str().unwrap_or(""),
            key(&event)
        ));
    }
    assert_eq!(
        rest,
        ["ADDED streaming/c"],
        "the change, and no bookmark until the watch ends"
    );
    server.stop().await;
}

/// With a resourceVersion, `sendInitialEvents=true` still starts with every
/// current object (not the changes after that version), and the bookmark
/// carries the newest resourceVersion, which is not older than the one
/// asked for.
#[tokio::test]
async fn a_streaming_list_from_an_older_resource_version_starts_with_every_current_object() {
    let server = TestServer::start().await;
    let first = create(&server, NS, "first", json!({})).await;
    create(&server, NS, "second", json!({})).await;
    let list_version = current_version(&server).await;
    let url = format!(
        "{}?{STREAMING}&resourceVersion={}&timeoutSeconds=30",
        server.collection_url(NS),
        version_of(&first)
    );
    let mut events = Events::start(&server, &url).await;
    let (added, bookmark) = events.initial_events().await;
    assert_initial_events(
        &added,
        &bookmark,
        &["streaming/first", "streaming/second"],
        list_version,
    );
    server.stop().await;
}

/// `sendInitialEvents=false` sends no current objects: from a
/// resourceVersion it sends the changes after it (those already made too,
/// as kube-apiserver's watch cache replays them), and without one the
/// changes from now on.
#[tokio::test]
async fn send_initial_events_false_sends_only_the_changes_after_the_resource_version() {
    let server = TestServer::start().await;
    let a = create(&server, NS, "a", json!({})).await;
    let b = create(&server, NS, "b", json!({})).await;

    let from_a = format!(
        "{}?watch=true&sendInitialEvents=false&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&resourceVersion={}&timeoutSeconds=30",
        server.collection_url(NS),
        version_of(&a)
    );
    let mut replayed = Events::start(&server, &from_a).await;
    let from_now = format!(
        "{}?watch=true&sendInitialEvents=false&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=30",
        server.collection_url(NS)
    );
    let mut live = Events::start(&server, &from_now).await;

    let event = replayed.next_change().await;
    assert_eq!(
        (event["type"].as_str(), key(&event).as_str()),
        (Some("ADDED"), "streaming/b"),
        "the change after the resourceVersion, made before the watch"
    );
    assert_eq!(version_of(&event["object"]), version_of(&b));

    let c = create(&server, NS, "c", json!({})).await;
    for events in [&mut replayed, &mut live] {
        let event = events.next_change().await;
        assert!(
            !is_initial_events_end(&event),
            "no initial events to end: {event}"
        );
        assert_eq!(
            (event["type"].as_str(), key(&event).as_str()),
            (Some("ADDED"), "streaming/c")
        );
        assert_eq!(version_of(&event["object"]), version_of(&c));
    }
    server.stop().await;
}

#[tokio::test]
async fn send_initial_events_false_from_a_compacted_resource_version_is_expired() {
    let server = TestServer::start_with(Arc::new(MemoryStore::with_window(3))).await;
    for i in 0..8 {
        create(&server, NS, &format!("job-{i}"), json!({})).await;
    }
    let url = format!(
        "{}?watch=true&sendInitialEvents=false&resourceVersionMatch=NotOlderThan&resourceVersion=1&timeoutSeconds=30",
        server.collection_url(NS)
    );
    let mut events = Events::start(&server, &url).await;
    let event = events.expect_event().await;
    assert_eq!(event["type"], "ERROR");
    assert_eq!(event["object"]["code"], 410);
    assert_eq!(event["object"]["reason"], "Expired");
    assert!(events.next().await.is_none(), "the stream ends after it");
    server.stop().await;
}

/// kube-apiserver serves a `watch=true` from no resourceVersion (or "0")
/// that sets neither `sendInitialEvents` nor `resourceVersionMatch` as a
/// streaming list (`SetListOptionsDefaults`), so with `allowWatchBookmarks`
/// its initial events end with the annotated bookmark. The defaulting keys
/// on the `watch` parameter: on the deprecated `/watch/` path without it
/// the watch is the classic one, whose initial events end unmarked.
#[tokio::test]
async fn a_watch_from_no_resource_version_ends_its_initial_events_with_the_bookmark() {
    let server = TestServer::start().await;
    create(&server, NS, "a", json!({})).await;
    let list_version = current_version(&server).await;
    for version in ["", "&resourceVersion=0"] {
        let url = format!(
            "{}?watch=true&allowWatchBookmarks=true{version}&timeoutSeconds=30",
            server.collection_url(NS)
        );
        let mut events = Events::start(&server, &url).await;
        let (added, bookmark) = events.initial_events().await;
        assert_initial_events(&added, &bookmark, &["streaming/a"], list_version);
    }

    let url = format!(
        "{}/apis/kubeflow.org/v1/watch/namespaces/{NS}/mxjobs?allowWatchBookmarks=true&timeoutSeconds=30",
        server.url
    );
    let mut classic = Events::start(&server, &url).await;
    let first = classic.next_change().await;
    assert_eq!(
        (first["type"].as_str(), key(&first).as_str()),
        (Some("ADDED"), "streaming/a")
    );
    create(&server, NS, "b", json!({})).await;
    let next = classic.next_change().await;
    assert_eq!(
        (next["type"].as_str(), key(&next).as_str()),
        (Some("ADDED"), "streaming/b"),
        "no initial-events-end bookmark before the change"
    );
    server.stop().await;
}

/// Each URL's answer: `422 Invalid` on `ListOptions.meta.k8s.io` with
/// kube-apiserver's message and causes (`field: message`).
async fn assert_invalid(server: &TestServer, url: &str, causes: &[&str]) {
    let response = server.http.get(url).send().await.expect("an answer");
    assert_eq!(response.status().as_u16(), 422, "{url}");
    let status: Value = response.json().await.expect("a Status");
    assert_eq!(
        (
            status["kind"].as_str(),
            status["reason"].as_str(),
            status["code"].as_i64()
        ),
        (Some("Status"), Some("Invalid"), Some(422)),
        "{url}"
    );
    assert_eq!(status["details"]["group"], "meta.k8s.io", "{url}");
    assert_eq!(status["details"]["kind"], "ListOptions", "{url}");
    let got: Vec<String> = status["details"]["causes"]
        .as_array()
        .expect("causes")
        .iter()
        .map(|c| {
            format!(
                "{}: {}",
                c["field"].as_str().unwrap_or_default(),
                c["message"].as_str().unwrap_or_default()
            )
        })
        .collect();
    assert_eq!(got, causes, "{url}");
    let summary = if causes.len() == 1 {
        causes[0].to_string()
    } else {
        format!("[{}]", causes.join(", "))
    };
    assert_eq!(
        status["message"],
        format!("ListOptions.meta.k8s.io \"\" is invalid: {summary}"),
        "{url}"
    );
}

#[tokio::test]
async fn streaming_list_options_that_go_against_each_other_are_refused_as_kube_apiserver_does() {
    let server = TestServer::start().await;
    let job = create(&server, NS, "refused", json!({})).await;
    let version = version_of(&job);
    let namespaced = server.collection_url(NS);
    let cluster = format!("{}/apis/kubeflow.org/v1/mxjobs", server.url);
    let watch_path = format!(
        "{}/apis/kubeflow.org/v1/watch/namespaces/{NS}/mxjobs",
        server.url
    );
    const FOR_LIST: &str = "sendInitialEvents: Forbidden: sendInitialEvents is forbidden for list";
    const NEEDS_NOT_OLDER_THAN: &str = "resourceVersionMatch: Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan";
    const NEEDS_VERSION: &str = "resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided";
    const NOT_WITH_CONTINUE: &str =
        "resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden when continue is provided";
    const EXACT_UNSUPPORTED: &str =
        "resourceVersionMatch: Unsupported value: \"Exact\": supported values: \"NotOlderThan\"";
    let cases: Vec<(String, Vec<&str>)> = vec![
        // On a list (no watch=true), sendInitialEvents is refused whatever
        // its value, beside the list's own rules.
        (format!("{namespaced}?sendInitialEvents=true"), vec![FOR_LIST]),
        (format!("{cluster}?sendInitialEvents=false"), vec![FOR_LIST]),
        (
            format!("{namespaced}?sendInitialEvents=true&resourceVersionMatch=NotOlderThan"),
            vec![NEEDS_VERSION, FOR_LIST],
        ),
        // The deprecated watch path is checked as a list without watch=true.
        (
            format!("{watch_path}?sendInitialEvents=true&resourceVersionMatch=NotOlderThan"),
            vec![NEEDS_VERSION, FOR_LIST],
        ),
        // A watch: sendInitialEvents needs resourceVersionMatch=NotOlderThan.
        (
            format!("{namespaced}?watch=true&sendInitialEvents=true"),
            vec![NEEDS_NOT_OLDER_THAN],
        ),
        (
            format!("{cluster}?watch=true&sendInitialEvents=true&resourceVersionMatch=Exact&resourceVersion={version}"),
            vec![NEEDS_NOT_OLDER_THAN, EXACT_UNSUPPORTED],
        ),
        (
            format!("{watch_path}?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&continue=e30"),
            vec![NOT_WITH_CONTINUE],
        ),
        (
            format!("{namespaced}?watch=true&sendInitialEvents=false&resourceVersionMatch=Exact&resourceVersion={version}&continue=e30"),
            vec![NEEDS_NOT_OLDER_THAN, EXACT_UNSUPPORTED, NOT_WITH_CONTINUE],
        ),
    ];
    for (url, causes) in &cases {
        assert_invalid(&server, &format!("{url}&timeoutSeconds=1"), causes).await;
    }
    server.stop().await;
}

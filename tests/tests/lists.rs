//! Lists, selectors, consistent pagination and watch, through the
//! generated client.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use mxjob_client::types;
use mxjob_server::store::memory::MemoryStore;
use mxjob_tests::{from_value, new_job_value, resource_version, status_of, TestServer};
use serde_json::json;

const NS: &str = "lists";

async fn create_labelled(
    server: &TestServer,
    name: &str,
    labels: serde_json::Value,
) -> types::MxJob {
    let mut job = new_job_value(NS, name);
    job["metadata"]["labels"] = labels;
    server
        .client
        .create_mxjob()
        .namespace(NS)
        .body(from_value(job))
        .send()
        .await
        .expect("create")
        .into_inner()
}

fn names(list: &types::MxJobList) -> Vec<String> {
    list.items
        .iter()
        .filter_map(|j| j.metadata.name.clone())
        .collect()
}

async fn list_with(server: &TestServer, labels: &str, fields: &str) -> Vec<String> {
    let list = server
        .client
        .list_mxjobs()
        .namespace(NS)
        .label_selector(labels)
        .field_selector(fields)
        .send()
        .await
        .expect("list")
        .into_inner();
    names(&list)
}

#[tokio::test]
async fn label_and_field_selectors_filter_lists() {
    let server = TestServer::start().await;
    create_labelled(&server, "a", json!({"team": "vision", "stage": "train"})).await;
    create_labelled(&server, "b", json!({"team": "speech", "stage": "tune"})).await;
    create_labelled(&server, "c", json!({"team": "vision"})).await;
    assert_eq!(list_with(&server, "team=vision", "").await, ["a", "c"]);
    assert_eq!(list_with(&server, "team!=vision", "").await, ["b"]);
    assert_eq!(
        list_with(&server, "stage in (train,tune)", "").await,
        ["a", "b"]
    );
    assert_eq!(
        list_with(&server, "stage notin (train)", "").await,
        ["b", "c"]
    );
    assert_eq!(list_with(&server, "!stage", "").await, ["c"]);
    assert_eq!(list_with(&server, "team=vision,stage", "").await, ["a"]);
    assert_eq!(list_with(&server, "", "metadata.name=b").await, ["b"]);
    assert_eq!(
        list_with(&server, "", "metadata.name!=b,metadata.namespace=lists").await,
        ["a", "c"]
    );
    assert!(list_with(&server, "", "metadata.namespace=elsewhere")
        .await
        .is_empty());
    server.stop().await;
}

#[tokio::test]
async fn malformed_selectors_are_bad_requests() {
    let server = TestServer::start().await;
    for (labels, fields) in [
        ("team in (a", ""),
        ("Bad Key=1", ""),
        ("", "spec.jobMode=MXTrain"),
        ("", "metadata.name"),
    ] {
        let result = server
            .client
            .list_mxjobs()
            .namespace(NS)
            .label_selector(labels)
            .field_selector(fields)
            .send()
            .await;
        let (code, status) = status_of(result);
        assert_eq!(
            (code, status.reason.as_deref()),
            (400, Some("BadRequest")),
            "{labels:?} {fields:?}"
        );
        assert!(status
            .message
            .unwrap_or_default()
            .contains("unable to parse"));
    }
    server.stop().await;
}

#[tokio::test]
async fn delete_collection_honours_selectors() {
    let server = TestServer::start().await;
    create_labelled(&server, "keep", json!({"phase": "prod"})).await;
    create_labelled(&server, "drop1", json!({"phase": "test"})).await;
    create_labelled(&server, "drop2", json!({"phase": "test"})).await;
    let deleted = server
        .client
        .delete_mxjob_collection()
        .namespace(NS)
        .label_selector("phase=test")
        .send()
        .await
        .expect("delete collection")
        .into_inner();
    assert_eq!(names(&deleted), ["drop1", "drop2"]);
    assert_eq!(list_with(&server, "", "").await, ["keep"]);
    server.stop().await;
}

async fn page(
    server: &TestServer,
    limit: i64,
    token: Option<String>,
    labels: &str,
) -> Result<types::MxJobList, (u16, types::Status)> {
    let mut request = server
        .client
        .list_mxjobs()
        .namespace(NS)
        .limit(limit)
        .label_selector(labels);
    if let Some(token) = token {
        request = request.continue_(token);
    }
    match request.send().await {
        Ok(list) => Ok(list.into_inner()),
        Err(error) => Err(status_of::<types::MxJobList>(Err(error))),
    }
}

/// Pages read while objects are created, replaced and deleted in between
/// add up to exactly one list at the first page's resourceVersion.
#[tokio::test]
async fn pages_form_one_consistent_snapshot_under_concurrent_writes() {
    let server = TestServer::start().await;
    for i in 0..20 {
        create_labelled(
            &server,
            &format!("job-{i:02}"),
            json!({"parity": if i % 2 == 0 { "even" } else { "odd" }}),
        )
        .await;
    }
    let first = page(&server, 3, None, "").await.expect("first page");
    let snapshot_version = first.metadata.resource_version.clone().expect("rv");
    let mut seen = names(&first);
    let mut token = first.metadata.continue_.clone();
    let mut round = 0;
    while let Some(next) = token {
        // Writes between pages: a delete, a replace and a create.
        let victim = format!("job-{:02}", 19 - round);
        server
            .client
            .delete_mxjob()
            .namespace(NS)
            .name(&victim)
            .send()
            .await
            .expect("delete");
        let mut changed = server
            .client
            .read_mxjob()
            .namespace(NS)
            .name("job-00")
            .send()
            .await
            .expect("read")
            .into_inner();
        changed
            .metadata
            .labels
            .insert("round".into(), round.to_string());
        server
            .client
            .replace_mxjob()
            .namespace(NS)
            .name("job-00")
            .body(changed)
            .send()
            .await
            .expect("replace");
        create_labelled(&server, &format!("new-{round:02}"), json!({})).await;
        round += 1;

        let list = page(&server, 3, Some(next), "").await.expect("next page");
        assert_eq!(
            list.metadata.resource_version.as_deref(),
            Some(snapshot_version.as_str())
        );
        seen.extend(names(&list));
        token = list.metadata.continue_.clone();
        assert!(round < 20, "pagination terminates");
    }
    let expected: Vec<String> = (0..20).map(|i| format!("job-{i:02}")).collect();
    assert_eq!(
        seen, expected,
        "the pages are the list at the first page's revision"
    );

    // The same snapshot, asked for exactly.
    let exact = server
        .client
        .list_mxjobs()
        .namespace(NS)
        .resource_version(&snapshot_version)
        .resource_version_match(types::ResourceVersionMatch::Exact)
        .send()
        .await
        .expect("exact list")
        .into_inner();
    assert_eq!(names(&exact), expected);
    let now = names(&page(&server, 100, None, "").await.expect("list now"));
    assert_ne!(now, expected, "the store did change meanwhile");
    server.stop().await;
}

#[tokio::test]
async fn pages_with_a_selector_fill_up_to_the_limit() {
    let server = TestServer::start().await;
    for i in 0..9 {
        create_labelled(
            &server,
            &format!("job-{i}"),
            json!({"parity": if i % 3 == 0 { "three" } else { "other" }}),
        )
        .await;
    }
    let first = page(&server, 2, None, "parity=three").await.expect("page");
    assert_eq!(names(&first), ["job-0", "job-3"]);
    let second = page(&server, 2, first.metadata.continue_.clone(), "parity=three")
        .await
        .expect("page");
    assert_eq!(names(&second), ["job-6"]);
    assert_eq!(second.metadata.continue_, None);
    server.stop().await;
}

#[tokio::test]
async fn forged_continue_tokens_are_bad_requests() {
    let server = TestServer::start().await;
    create_labelled(&server, "a", json!({})).await;
    for token in [
        "garbage",
        "eyJ2IjoibXhqb2IuY29udGludWUvdjEiLCJydiI6MSwic3RhcnQiOiIuLi8ifQ",
        "e30",
    ] {
        let (code, status) = page(&server, 1, Some(token.to_string()), "")
            .await
            .expect_err(token);
        assert_eq!(
            (code, status.reason.as_deref()),
            (400, Some("BadRequest")),
            "{token}"
        );
    }
    // continue and resourceVersion together.
    let first = page(&server, 1, None, "").await.expect("page");
    let _ = first;
    let result = server
        .client
        .list_mxjobs()
        .namespace(NS)
        .continue_("e30")
        .resource_version("1")
        .send()
        .await;
    assert_eq!(status_of(result).0, 400);
    server.stop().await;
}

#[tokio::test]
async fn a_continue_token_whose_revision_was_compacted_is_expired() {
    let server = TestServer::start_with(Arc::new(MemoryStore::with_window(5))).await;
    for i in 0..4 {
        create_labelled(&server, &format!("job-{i}"), json!({})).await;
    }
    let first = page(&server, 1, None, "").await.expect("page");
    let token = first.metadata.continue_.clone().expect("more pages");
    for i in 0..20 {
        create_labelled(&server, &format!("late-{i:02}"), json!({})).await;
    }
    let (code, status) = page(&server, 1, Some(token), "")
        .await
        .expect_err("compacted");
    assert_eq!((code, status.reason.as_deref()), (410, Some("Expired")));

    let exact = server
        .client
        .list_mxjobs()
        .namespace(NS)
        .resource_version(first.metadata.resource_version.clone().expect("rv"))
        .resource_version_match(types::ResourceVersionMatch::Exact)
        .send()
        .await;
    assert_eq!(status_of(exact).0, 410);
    server.stop().await;
}

/// A list's `resourceVersionMatch` goes with a `resourceVersion`, is
/// `Exact` or `NotOlderThan`, and is not `Exact` at "0": otherwise
/// kube-apiserver answers `422 Invalid` on `ListOptions`, with one cause.
#[tokio::test]
async fn resource_version_match_needs_a_resource_version() {
    let server = TestServer::start().await;
    let result = server
        .client
        .list_mxjobs()
        .namespace(NS)
        .resource_version_match(types::ResourceVersionMatch::Exact)
        .send()
        .await;
    let (code, status) = status_of(result);
    assert_eq!((code, status.reason.as_deref()), (422, Some("Invalid")));
    assert_eq!(
        status.message.as_deref(),
        Some(
            "ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Forbidden: \
             resourceVersionMatch is forbidden unless resourceVersion is provided"
        )
    );
    for (query, cause) in [
        (
            "resourceVersion=1&resourceVersionMatch=Newest",
            "Unsupported value: \"Newest\": supported values: \"Exact\", \"NotOlderThan\", \"\"",
        ),
        (
            "resourceVersion=0&resourceVersionMatch=Exact",
            "Forbidden: resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
        ),
    ] {
        let response = server
            .http
            .get(format!("{}?{query}", server.collection_url(NS)))
            .send()
            .await
            .expect("list");
        assert_eq!(response.status().as_u16(), 422, "{query}");
        let status: serde_json::Value = response.json().await.expect("a Status");
        assert_eq!(
            status["details"]["causes"],
            json!([{
                "reason": if cause.starts_with("Forbidden") { "FieldValueForbidden" } else { "FieldValueNotSupported" },
                "message": cause,
                "field": "resourceVersionMatch"
            }]),
            "{query}"
        );
    }
    let future = server
        .client
        .list_mxjobs()
        .namespace(NS)
        .resource_version("999999")
        .send()
        .await;
    assert_eq!(
        status_of(future).0,
        504,
        "a resourceVersion the store has not reached"
    );
    server.stop().await;
}

async fn watch(
    server: &TestServer,
    resource_version: Option<&str>,
    labels: &str,
    timeout: i64,
) -> impl futures::Stream<Item = Result<types::WatchEvent, mxjob_client::WatchError>> {
    let mut request = server
        .client
        .watch_mxjobs()
        .namespace(NS)
        .label_selector(labels)
        .timeout_seconds(timeout);
    if let Some(rv) = resource_version {
        request = request.resource_version(rv);
    }
    let body = request.send().await.expect("watch starts").into_inner();
    Box::pin(mxjob_client::watch_events(body))
}

fn summary(event: &types::WatchEvent) -> (String, String, String) {
    let metadata = &event.object["metadata"];
    (
        event.type_.to_string(),
        metadata["name"].as_str().unwrap_or_default().to_string(),
        metadata["resourceVersion"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

async fn next_event<S>(events: &mut S) -> types::WatchEvent
where
    S: futures::Stream<Item = Result<types::WatchEvent, mxjob_client::WatchError>> + Unpin,
{
    tokio::time::timeout(Duration::from_secs(10), events.next())
        .await
        .expect("an event arrives in time")
        .expect("the stream goes on")
        .expect("the event decodes")
}

#[tokio::test]
async fn watch_without_version_starts_with_the_current_objects_then_follows_changes() {
    let server = TestServer::start().await;
    let a = create_labelled(&server, "a", json!({})).await;
    let mut events = watch(&server, None, "", 30).await;
    assert_eq!(
        summary(&next_event(&mut events).await),
        ("ADDED".into(), "a".into(), resource_version(&a))
    );

    let b = create_labelled(&server, "b", json!({})).await;
    let mut changed = a.clone();
    changed.metadata.labels.insert("x".into(), "y".into());
    let a2 = server
        .client
        .replace_mxjob()
        .namespace(NS)
        .name("a")
        .body(changed)
        .send()
        .await
        .expect("replace")
        .into_inner();
    server
        .client
        .delete_mxjob()
        .namespace(NS)
        .name("b")
        .send()
        .await
        .expect("delete");

    let got: Vec<_> = vec![
        summary(&next_event(&mut events).await),
        summary(&next_event(&mut events).await),
        summary(&next_event(&mut events).await),
    ];
    let b_rv: u64 = resource_version(&b).parse().expect("rv");
    let a2_rv: u64 = resource_version(&a2).parse().expect("rv");
    assert_eq!(
        got,
        vec![
            ("ADDED".into(), "b".into(), b_rv.to_string()),
            ("MODIFIED".into(), "a".into(), a2_rv.to_string()),
            ("DELETED".into(), "b".into(), (a2_rv + 1).to_string()),
        ]
    );
    server.stop().await;
}

/// A watch from a resourceVersion sees every later change exactly once, in
/// order; a client that loses its connection resumes from the last
/// resourceVersion it saw and misses nothing.
#[tokio::test]
async fn watch_resumes_after_a_dropped_connection_without_gaps_or_duplicates() {
    let server = TestServer::start().await;
    let start = create_labelled(&server, "seed", json!({})).await;
    let mut events = watch(&server, Some(&resource_version(&start)), "", 30).await;
    for i in 0..5 {
        create_labelled(&server, &format!("first-{i}"), json!({})).await;
    }
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(summary(&next_event(&mut events).await));
    }
    drop(events);
    for i in 0..5 {
        create_labelled(&server, &format!("second-{i}"), json!({})).await;
    }
    let last = seen.last().map(|s| s.2.clone()).expect("events were seen");
    let mut resumed = watch(&server, Some(&last), "", 30).await;
    for _ in 0..7 {
        seen.push(summary(&next_event(&mut resumed).await));
    }
    let names: Vec<&str> = seen.iter().map(|s| s.1.as_str()).collect();
    assert_eq!(
        names,
        [
            "first-0", "first-1", "first-2", "first-3", "first-4", "second-0", "second-1",
            "second-2", "second-3", "second-4"
        ]
    );
    let versions: Vec<u64> = seen.iter().map(|s| s.2.parse().expect("rv")).collect();
    assert!(
        versions.windows(2).all(|w| w[1] == w[0] + 1),
        "consecutive revisions: {versions:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn watch_with_a_selector_reports_objects_entering_and_leaving_it() {
    let server = TestServer::start().await;
    let job = create_labelled(&server, "mover", json!({"stage": "train"})).await;
    let mut events = watch(&server, Some(&resource_version(&job)), "stage=tune", 30).await;
    let mut tuned = job.clone();
    tuned.metadata.labels.insert("stage".into(), "tune".into());
    let tuned = server
        .client
        .replace_mxjob()
        .namespace(NS)
        .name("mover")
        .body(tuned)
        .send()
        .await
        .expect("replace")
        .into_inner();
    let mut back = tuned.clone();
    back.metadata.labels.insert("stage".into(), "train".into());
    server
        .client
        .replace_mxjob()
        .namespace(NS)
        .name("mover")
        .body(back)
        .send()
        .await
        .expect("replace");
    create_labelled(&server, "never", json!({"stage": "train"})).await;
    create_labelled(&server, "tuner", json!({"stage": "tune"})).await;
    let got: Vec<(String, String)> = {
        let mut got = Vec::new();
        for _ in 0..3 {
            let (kind, name, _) = summary(&next_event(&mut events).await);
            got.push((kind, name));
        }
        got
    };
    assert_eq!(
        got,
        vec![
            ("ADDED".into(), "mover".into()),
            ("DELETED".into(), "mover".into()),
            ("ADDED".into(), "tuner".into())
        ]
    );
    server.stop().await;
}

#[tokio::test]
async fn watch_from_a_compacted_version_gets_a_410_error_event() {
    let server = TestServer::start_with(Arc::new(MemoryStore::with_window(3))).await;
    for i in 0..12 {
        create_labelled(&server, &format!("job-{i:02}"), json!({})).await;
    }
    let mut events = watch(&server, Some("1"), "", 30).await;
    let event = next_event(&mut events).await;
    assert_eq!(event.type_, types::WatchEventType::Error);
    assert_eq!(event.object["code"], 410);
    assert_eq!(event.object["reason"], "Expired");
    assert!(
        events.next().await.is_none(),
        "the stream ends after the error"
    );
    server.stop().await;
}

#[tokio::test]
async fn watch_ends_after_timeout_seconds() {
    let server = TestServer::start().await;
    let started = std::time::Instant::now();
    let mut events = watch(&server, Some("0"), "", 1).await;
    let end = tokio::time::timeout(Duration::from_secs(10), events.next())
        .await
        .expect("ends in time");
    assert!(end.is_none());
    assert!(started.elapsed() >= Duration::from_millis(900));
    server.stop().await;
}

#[tokio::test]
async fn list_path_watch_streams_json_lines_like_kubernetes() {
    let server = TestServer::start().await;
    create_labelled(&server, "a", json!({})).await;
    let response = server
        .http
        .get(format!(
            "{}?watch=True&timeoutSeconds=1",
            server.collection_url(NS)
        ))
        .send()
        .await
        .expect("watch");
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let text = response
        .text()
        .await
        .expect("stream ends after the timeout");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON document per line"))
        .collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["type"], "ADDED");
    assert_eq!(lines[0]["object"]["metadata"]["name"], "a");
    server.stop().await;
}

#[tokio::test]
async fn kubectl_table_requests_get_a_meta_v1_table() {
    let server = TestServer::start().await;
    create_labelled(&server, "tabled", json!({})).await;
    let accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";
    for url in [server.collection_url(NS), server.object_url(NS, "tabled")] {
        let table: serde_json::Value = server
            .http
            .get(&url)
            .header("accept", accept)
            .send()
            .await
            .expect("get")
            .json()
            .await
            .expect("json");
        assert_eq!(table["kind"], "Table");
        assert_eq!(table["apiVersion"], "meta.k8s.io/v1");
        let columns: Vec<&str> = table["columnDefinitions"]
            .as_array()
            .expect("columns")
            .iter()
            .filter_map(|c| c["name"].as_str())
            .collect();
        assert_eq!(columns, ["Name", "State", "Age"]);
        assert_eq!(table["rows"][0]["cells"][0], "tabled");
        assert!(table["rows"][0]["cells"][2]
            .as_str()
            .expect("age")
            .ends_with('s'));
        assert_eq!(table["rows"][0]["object"]["metadata"]["name"], "tabled");
    }
    server.stop().await;
}

#[tokio::test]
async fn bookmarks_carry_the_resource_version_a_watch_reached() {
    let server = TestServer::start().await;
    let job = create_labelled(&server, "marked", json!({"a": "b"})).await;
    let body = server
        .client
        .watch_mxjobs()
        .namespace(NS)
        .resource_version(resource_version(&job))
        .label_selector("a=nothing")
        .allow_watch_bookmarks(true)
        .timeout_seconds(30)
        .send()
        .await
        .expect("watch")
        .into_inner();
    let mut events = Box::pin(mxjob_client::watch_events(body));
    // A change the selector filters out still moves the bookmark on.
    let other = create_labelled(&server, "unmatched", json!({})).await;
    let event = next_event(&mut events).await;
    assert_eq!(event.type_, types::WatchEventType::Bookmark);
    assert_eq!(
        event.object["metadata"]["resourceVersion"],
        resource_version(&other)
    );
    server.stop().await;
}

/// kube-apiserver refuses `resourceVersionMatch` on a watch unless
/// `sendInitialEvents` is set (a streaming list, see `watch_list.rs`), and
/// any value but `NotOlderThan`: a `watch=true` on either watch path
/// answers `422 Invalid` on `ListOptions` instead of streaming. Whether
/// the options are a watch's is decided by `watch=true` alone, as
/// kube-apiserver decides it: the deprecated `/watch/` path without it
/// checks them as a list's, where `resourceVersionMatch` with a
/// `resourceVersion` is allowed, and streams.
#[tokio::test]
async fn watches_refuse_resource_version_match() {
    let server = TestServer::start().await;
    let job = create_labelled(&server, "watched", json!({})).await;
    let version = resource_version(&job);
    let list_path = server.collection_url(NS);
    let watch_path = format!(
        "{}/apis/kubeflow.org/v1/watch/namespaces/{NS}/mxjobs",
        server.url
    );
    let cases = [
        (
            "NotOlderThan",
            "",
            vec!["resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided"],
        ),
        (
            "Exact",
            "",
            vec![
                "resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
                "resourceVersionMatch: Unsupported value: \"Exact\": supported values: \"NotOlderThan\"",
            ],
        ),
        (
            "NotOlderThan",
            "&continue=e30",
            vec![
                "resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
                "resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden when continue is provided",
            ],
        ),
    ];
    for (version_match, extra, causes) in cases {
        for url in [
            format!("{list_path}?watch=true&resourceVersion={version}&resourceVersionMatch={version_match}{extra}&timeoutSeconds=5"),
            format!("{watch_path}?watch=true&resourceVersion={version}&resourceVersionMatch={version_match}{extra}&timeoutSeconds=5"),
        ] {
            let response = server.http.get(&url).send().await.expect("answer");
            assert_eq!(response.status().as_u16(), 422, "{url}");
            let status: serde_json::Value = response.json().await.expect("a Status");
            assert_eq!(status["kind"], "Status");
            assert_eq!(status["reason"], "Invalid");
            let message = status["message"].as_str().expect("message");
            assert!(
                message.starts_with("ListOptions.meta.k8s.io \"\" is invalid: "),
                "{message}"
            );
            let got: Vec<String> = status["details"]["causes"]
                .as_array()
                .expect("causes")
                .iter()
                .map(|c| format!("{}: {}", c["field"].as_str().unwrap_or(""), c["message"].as_str().unwrap_or("")))
                .collect();
            assert_eq!(got, causes, "{url}");
        }
    }
    // Without resourceVersionMatch the same watch streams, and so does the
    // deprecated path without watch=true, even with resourceVersionMatch.
    for url in [
        format!("{list_path}?watch=true&resourceVersion={version}&timeoutSeconds=1"),
        format!(
            "{watch_path}?resourceVersion={version}&resourceVersionMatch=Exact&timeoutSeconds=1"
        ),
    ] {
        let response = server.http.get(&url).send().await.expect("watch");
        assert_eq!(response.status().as_u16(), 200, "{url}");
    }
    server.stop().await;
}

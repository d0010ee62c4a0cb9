//! Hostile input: generated bodies, patches, selectors, tokens, versions
//! and query strings thrown at a live server. Whatever arrives, the server
//! answers with a `Status` (never a 500, never a crash), and a refused
//! request changes nothing stored.

use std::sync::OnceLock;

use mxjob_tests::{new_job_value, seed_value, TestServer};
use proptest::prelude::*;
use serde_json::Value;

const NS: &str = "hostile";

/// One server (and runtime) for all cases of a test binary: cases are many
/// and cheap, a server per case is not.
struct Shared {
    runtime: tokio::runtime::Runtime,
    server: TestServer,
}

fn shared() -> &'static Shared {
    static SHARED: OnceLock<Shared> = OnceLock::new();
    SHARED.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let server = runtime.block_on(async {
            let server = TestServer::start().await;
            let response = server
                .http
                .post(server.collection_url(NS))
                .json(&new_job_value(NS, "target"))
                .send()
                .await
                .expect("create the target");
            assert_eq!(response.status().as_u16(), 201);
            server
        });
        Shared { runtime, server }
    })
}

/// The stored state: the list's resourceVersion moves on any write.
async fn state(server: &TestServer) -> String {
    let list: Value = server
        .http
        .get(server.collection_url(NS))
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Sends a request and checks the invariants; returns the status code.
fn exercise(method: &str, url_tail: &str, content_type: &str, body: Vec<u8>) -> u16 {
    let shared = shared();
    let server = &shared.server;
    shared.runtime.block_on(async {
        let before = state(server).await;
        let url = format!("{}{url_tail}", server.url);
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let response = server
            .http
            .request(method, url)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("the server answers");
        let code = response.status().as_u16();
        let text = response.text().await.expect("body");
        assert!(code < 500, "{code}: {text}");
        if code >= 400 {
            let status: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            assert_eq!(status["kind"], "Status", "error body is a Status: {text}");
            assert_eq!(status["code"], code);
            assert_eq!(
                state(server).await,
                before,
                "a refused request changed the store"
            );
        }
        code
    })
}

/// Arbitrary JSON, shallow enough to stay fast.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map("[a-zA-Z]{1,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// The seed with one field, somewhere, replaced by arbitrary JSON.
fn mutated_job() -> impl Strategy<Value = Value> {
    let paths: &[&[&str]] = &[
        &["metadata"],
        &["metadata", "name"],
        &["metadata", "labels"],
        &["metadata", "annotations"],
        &["spec"],
        &["spec", "jobMode"],
        &["spec", "mxReplicaSpecs"],
        &["spec", "mxReplicaSpecs", "Worker"],
        &["spec", "mxReplicaSpecs", "Worker", "replicas"],
        &[
            "spec",
            "mxReplicaSpecs",
            "Worker",
            "template",
            "spec",
            "containers",
        ],
        &["spec", "activeDeadlineSeconds"],
        &["spec", "cleanPodPolicy"],
        &["status"],
        &["apiVersion"],
        &["kind"],
    ];
    (prop::sample::select(paths.to_vec()), json_value()).prop_map(|(path, value)| {
        let mut job = seed_value();
        job["metadata"] = serde_json::json!({"name": "generated"});
        let mut slot = &mut job;
        for key in &path[..path.len() - 1] {
            slot = &mut slot[*key];
        }
        if let Some(object) = slot.as_object_mut() {
            object.insert(path[path.len() - 1].to_string(), value);
        }
        job
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn mutated_bodies_are_stored_or_refused_with_a_status(job in mutated_job()) {
        let path = format!("/apis/kubeflow.org/v1/namespaces/{NS}/mxjobs?fieldValidation=Strict");
        let code = exercise("POST", &path, "application/json", serde_json::to_vec(&job).expect("json"));
        if code == 201 {
            let name = job["metadata"]["name"].as_str().unwrap_or("generated").to_string();
            exercise("DELETE", &format!("/apis/kubeflow.org/v1/namespaces/{NS}/mxjobs/{name}"), "application/json", Vec::new());
        }
    }

    #[test]
    fn arbitrary_bytes_never_break_a_write(body in prop::collection::vec(any::<u8>(), 0..256), put in any::<bool>()) {
        let (method, path) = if put {
            ("PUT", format!("/apis/kubeflow.org/v1/namespaces/{NS}/mxjobs/target"))
        } else {
            ("POST", format!("/apis/kubeflow.org/v1/namespaces/{NS}/mxjobs"))
        };
        exercise(method, &path, "application/json", body);
    }

    #[test]
    fn arbitrary_merge_patches_keep_the_rules(patch in json_value()) {
        let path = format!("/apis/kubeflow.org/v1/namespaces/{NS}/mxjobs/target");
        exercise("PATCH", &path, "application/merge-patch+json", serde_json::to_vec(&patch).expect("json"));
    }

    #[test]
    fn arbitrary_json_patches_keep_the_rules(
        ops in prop::collection::vec(
            (prop::sample::select(vec!["add", "remove", "replace", "move", "copy", "test", "bogus"]),
             "(/[a-zA-Z~01]{0,10}){0,4}", json_value()),
            0..4,
        )
    ) {
        let ops: Vec<Value> = ops
            .into_iter()
            .map(|(op, path, value)| serde_json::json!({"op": op, "path": path, "from": "/metadata", "value": value}))
            .collect();
        let path = format!("/apis/kubeflow.org/v1/namespaces/{NS}/mxjobs/target");
        exercise("PATCH", &path, "application/json-patch+json", serde_json::to_vec(&ops).expect("json"));
    }

    #[test]
    fn arbitrary_query_strings_are_answered_with_a_status(
        labels in ".{0,24}",
        fields in ".{0,24}",
        token in "[A-Za-z0-9_=-]{0,40}",
        version in ".{0,12}",
        limit in ".{0,6}",
    ) {
        let encode = |s: &str| s.bytes().map(|b| format!("%{b:02X}")).collect::<String>();
        let path = format!(
            "/apis/kubeflow.org/v1/namespaces/{NS}/mxjobs?labelSelector={}&fieldSelector={}&continue={}&resourceVersion={}&limit={}",
            encode(&labels), encode(&fields), encode(&token), encode(&version), encode(&limit)
        );
        exercise("GET", &path, "application/json", Vec::new());
    }

    #[test]
    fn arbitrary_resource_versions_in_a_replace_are_refused_cleanly(version in ".{0,24}") {
        let mut job = new_job_value(NS, "target");
        job["metadata"]["resourceVersion"] = Value::from(version);
        let path = format!("/apis/kubeflow.org/v1/namespaces/{NS}/mxjobs/target");
        exercise("PUT", &path, "application/json", serde_json::to_vec(&job).expect("json"));
    }
}

// ------------------------------------------------------------ bounded work

/// Sends `patch` to `name` in `NS` with `media_type`; returns the code and
/// the body as JSON. A generous bound keeps a server that does unbounded
/// work from hanging the test (it is not a timing assertion: a bounded
/// server answers in milliseconds).
async fn patch_within_bound(
    server: &TestServer,
    name: &str,
    media_type: &str,
    patch: &Value,
) -> (u16, Value) {
    let request = server
        .http
        .patch(server.object_url(NS, name))
        .header("content-type", media_type)
        .body(serde_json::to_vec(patch).expect("json"))
        .send();
    let response = tokio::time::timeout(std::time::Duration::from_secs(120), request)
        .await
        .expect("the server answers a hostile patch without unbounded work")
        .expect("the server answers");
    let code = response.status().as_u16();
    let body = response.json().await.expect("a JSON answer");
    (code, body)
}

/// Creates `name` in `NS` from `job`; returns the stored object.
async fn create_value(server: &TestServer, job: &Value) -> Value {
    let response = server
        .http
        .post(server.collection_url(NS))
        .json(job)
        .send()
        .await
        .expect("create");
    assert_eq!(response.status().as_u16(), 201);
    response.json().await.expect("json")
}

/// Eighteen `copy` operations, each copying `/spec` into itself, double the
/// object eighteen times: a body under a kilobyte asks for gigabytes. The
/// copies are measured before they are made, so the patch is refused (422,
/// as kube-apiserver refuses a patch over its copy limit) once they would
/// add more than the object bound, and nothing is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_json_patch_that_doubles_the_object_is_refused_before_it_grows() {
    let server = TestServer::start().await;
    let created = create_value(&server, &new_job_value(NS, "doubled")).await;
    let patch: Vec<Value> = (0..18)
        .map(|i| serde_json::json!({"op": "copy", "from": "/spec", "path": format!("/spec/copy{i}")}))
        .collect();
    let patch = Value::from(patch);
    assert!(serde_json::to_vec(&patch).expect("json").len() < 1024);
    let (code, status) = patch_within_bound(&server, "doubled", JSON_PATCH, &patch).await;
    assert_eq!(code, 422, "{status:#}");
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["reason"], "Invalid");
    let message = status["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("more than the limit of 3145728"),
        "{message}"
    );
    assert_eq!(
        server.read_value(NS, "doubled").await,
        created,
        "nothing changed"
    );
    server.stop().await;
}

/// More operations than kube-apiserver's 10000 are refused as it refuses
/// them: 413, before any is applied.
#[tokio::test]
async fn a_json_patch_with_more_than_10000_operations_is_a_413() {
    let server = TestServer::start().await;
    let created = create_value(&server, &new_job_value(NS, "many-ops")).await;
    let operation = serde_json::json!({"op": "test", "path": "/kind", "value": "MXJob"});
    let (code, status) = patch_within_bound(
        &server,
        "many-ops",
        JSON_PATCH,
        &Value::from(vec![operation.clone(); 10_001]),
    )
    .await;
    assert_eq!(code, 413, "{status:#}");
    assert_eq!(status["reason"], "RequestEntityTooLarge");
    assert_eq!(
        status["message"],
        "Request entity too large: The allowed maximum operations in a JSON patch is 10000, got 10001"
    );
    assert_eq!(server.read_value(NS, "many-ops").await, created);
    // 10000 are fine.
    let (code, status) = patch_within_bound(
        &server,
        "many-ops",
        JSON_PATCH,
        &Value::from(vec![operation; 10_000]),
    )
    .await;
    assert_eq!(code, 200, "{status:#}");
    server.stop().await;
}

/// A patch can make an object larger than the body that carried it; the
/// result is measured before it is kept, and one over the bound (the
/// request body limit, 64 KiB on this server) is a 413 and is not stored.
#[tokio::test]
async fn patches_that_would_make_an_object_over_the_limit_are_a_413() {
    let mut settings = mxjob_server::server::Settings::new("127.0.0.1:0".parse().expect("addr"));
    settings.max_body_bytes = 64 * 1024;
    let server = TestServer::start_configured(
        std::sync::Arc::new(mxjob_server::store::memory::MemoryStore::new()),
        settings,
        mxjob_tests::discard(),
    )
    .await;
    let mut job = new_job_value(NS, "grown");
    job["metadata"]["annotations"] = serde_json::json!({"example.com/a": "x".repeat(40 * 1024)});
    let created = create_value(&server, &job).await;
    let copy = serde_json::json!([
        {"op": "copy", "from": "/metadata/annotations/example.com~1a", "path": "/metadata/annotations/example.com~1b"}
    ]);
    let merge =
        serde_json::json!({"metadata": {"annotations": {"example.com/b": "y".repeat(40 * 1024)}}});
    for (media_type, patch) in [(JSON_PATCH, &copy), (MERGE_PATCH, &merge)] {
        let (code, status) = patch_within_bound(&server, "grown", media_type, patch).await;
        assert_eq!(code, 413, "{media_type}: {status:#}");
        assert_eq!(status["reason"], "RequestEntityTooLarge");
        assert_eq!(
            status["message"],
            "Request entity too large: the object would be larger than the limit of 65536 bytes"
        );
        assert_eq!(
            server.read_value(NS, "grown").await,
            created,
            "{media_type}"
        );
    }
    // A dry run answers what the write would.
    let response = server
        .http
        .patch(format!("{}?dryRun=All", server.object_url(NS, "grown")))
        .header("content-type", MERGE_PATCH)
        .body(serde_json::to_vec(&merge).expect("json"))
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status().as_u16(), 413);
    server.stop().await;
}

const JSON_PATCH: &str = "application/json-patch+json";
const MERGE_PATCH: &str = "application/merge-patch+json";

/// A client that sends its headers and part of a body, then stalls, is
/// answered 408 once the body deadline passes, and the server answers
/// others meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_body_is_cut_off_at_its_deadline() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut settings = mxjob_server::server::Settings::new("127.0.0.1:0".parse().expect("addr"));
    settings.body_timeout = std::time::Duration::from_secs(1);
    let server = TestServer::start_configured(
        std::sync::Arc::new(mxjob_server::store::memory::MemoryStore::new()),
        settings,
        mxjob_tests::discard(),
    )
    .await;
    let address = server.url.trim_start_matches("http://").to_string();
    let mut stalled = tokio::net::TcpStream::connect(&address)
        .await
        .expect("connect");
    let head = format!(
        "POST /apis/kubeflow.org/v1/namespaces/slow/mxjobs HTTP/1.1\r\nHost: {address}\r\n\
         Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"kind\":"
    );
    stalled.write_all(head.as_bytes()).await.expect("write");

    // Others are served while it stalls.
    let version = server
        .http
        .get(format!("{}/version", server.url))
        .send()
        .await
        .expect("answer");
    assert_eq!(version.status().as_u16(), 200);

    let mut answer = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        stalled.read_to_end(&mut answer),
    )
    .await;
    assert!(read.is_ok(), "the stalled connection was never answered");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"reason\":\"Timeout\""), "{answer}");
    server.stop().await;
}

/// Kubernetes list parameters take every value; other parameters take the
/// first, as Go reads a query. A repeated parameter is never a 400.
#[tokio::test]
async fn repeated_query_parameters_are_read_as_kubernetes_reads_them() {
    let server = TestServer::start().await;
    let url = server.collection_url("repeat");
    let body = serde_json::to_vec(&mxjob_tests::new_job_value("repeat", "twice")).expect("json");
    let post = |query: &'static str| {
        server
            .http
            .post(format!("{url}{query}"))
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
    };
    let answer = post("?dryRun=All&dryRun=All").await.expect("answer");
    assert_eq!(answer.status().as_u16(), 201);
    let answer = post("?dryRun=All&dryRun=Nope").await.expect("answer");
    assert_eq!(answer.status().as_u16(), 422);
    let listed = server
        .http
        .get(format!("{url}?limit=1&limit=abc&pretty=true&pretty=false"))
        .send()
        .await
        .expect("answer");
    assert_eq!(listed.status().as_u16(), 200);
    assert!(
        listed.text().await.expect("text").contains("\n  "),
        "pretty=true counts"
    );
    let stored = server.http.get(&url).send().await.expect("list");
    let stored: serde_json::Value = stored.json().await.expect("json");
    assert_eq!(
        stored["items"].as_array().map(Vec::len),
        Some(0),
        "dry runs stored nothing"
    );
    server.stop().await;
}

/// HTTP/1.1 pipelining: a hundred requests written at once on one
/// connection are all answered, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_are_all_answered_in_order() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = TestServer::start().await;
    let address = server.url.trim_start_matches("http://").to_string();
    let mut connection = tokio::net::TcpStream::connect(&address)
        .await
        .expect("connect");
    let mut requests = Vec::new();
    for i in 0..100 {
        let request = match i % 4 {
            0 => format!("GET /version HTTP/1.1\r\nHost: {address}\r\n\r\n"),
            1 => format!(
                "GET /apis/kubeflow.org/v1/namespaces/pipe/mxjobs/job-{i} HTTP/1.1\r\nHost: {address}\r\n\r\n"
            ),
            2 => {
                let body = serde_json::to_string(&new_job_value("pipe", &format!("job-{}", i + 1)))
                    .expect("json");
                format!(
                    "POST /apis/kubeflow.org/v1/namespaces/pipe/mxjobs HTTP/1.1\r\nHost: {address}\r\n\
                     Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                )
            }
            _ => format!(
                "POST /apis/kubeflow.org/v1/namespaces/pipe/mxjobs HTTP/1.1\r\nHost: {address}\r\n\
                 Content-Type: text/plain\r\nContent-Length: 2\r\n\r\n{{}}"
            ),
        };
        requests.extend_from_slice(request.as_bytes());
    }
    connection.write_all(&requests).await.expect("write");
    let mut answers = Vec::new();
    let mut buffer = vec![0u8; 65536];
    let expected: Vec<&str> = (0..100)
        .map(|i| match i % 4 {
            0 => "200",
            1 => "404",
            2 => "201",
            _ => "415",
        })
        .collect();
    let codes = |answers: &[u8]| -> Vec<String> {
        String::from_utf8_lossy(answers)
            .match_indices("HTTP/1.1 ")
            .map(|(at, _)| String::from_utf8_lossy(&answers[at + 9..at + 12]).into_owned())
            .collect()
    };
    while codes(&answers).len() < 100 {
        let read = tokio::time::timeout(
            std::time::Duration::from_secs(30),
            connection.read(&mut buffer),
        )
        .await
        .expect("answers keep coming")
        .expect("read");
        assert!(read > 0, "closed after {} answers", codes(&answers).len());
        answers.extend_from_slice(&buffer[..read]);
    }
    assert_eq!(codes(&answers), expected);
    server.stop().await;
}

/// Bodies being received share a byte budget: of two stalled uploads that
/// together need more than the budget, one is answered 429 at once instead
/// of adding to what the server holds, while the other waits for the rest
/// of its body; once that one is done, the budget is free again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_in_flight_share_a_byte_budget() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut settings = mxjob_server::server::Settings::new("127.0.0.1:0".parse().expect("addr"));
    settings.body_bytes_in_flight = 64 * 1024;
    let server = TestServer::start_configured(
        std::sync::Arc::new(mxjob_server::store::memory::MemoryStore::new()),
        settings,
        mxjob_tests::discard(),
    )
    .await;
    let address = server.url.trim_start_matches("http://").to_string();
    let head = |length: usize| {
        format!(
            "POST /apis/kubeflow.org/v1/namespaces/budget/mxjobs HTTP/1.1\r\nHost: {address}\r\n\
             Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
        )
    };
    let padding = vec![b' '; 48 * 1024];
    let mut uploads = Vec::new();
    for _ in 0..2 {
        let mut upload = tokio::net::TcpStream::connect(&address)
            .await
            .expect("connect");
        upload
            .write_all(head(padding.len() + 2).as_bytes())
            .await
            .expect("write");
        upload.write_all(&padding).await.expect("write");
        uploads.push(upload);
    }
    // The refused one is answered; the other is still waiting for its body.
    let mut refused = None;
    for _ in 0..300 {
        for (index, upload) in uploads.iter_mut().enumerate() {
            let mut answer = vec![0u8; 4096];
            let read = tokio::time::timeout(
                std::time::Duration::from_millis(100),
                upload.read(&mut answer),
            )
            .await;
            if let Ok(read) = read {
                let answer = String::from_utf8_lossy(&answer[..read.expect("read")]).into_owned();
                assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
                assert!(
                    answer.contains("\"reason\":\"TooManyRequests\""),
                    "{answer}"
                );
                refused = Some(index);
            }
        }
        if refused.is_some() {
            break;
        }
    }
    let refused = refused.expect("one of the uploads is refused while the other stalls");
    let mut waiting = uploads.remove(1 - refused);

    // The waiting one finishes (an empty object is not an MXJob: 400) and
    // frees its share; a new upload of the same size is read in full.
    waiting.write_all(b"{}").await.expect("write");
    let mut answer = vec![0u8; 4096];
    let read = waiting.read(&mut answer).await.expect("read");
    let answer = String::from_utf8_lossy(&answer[..read]);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    let mut third = tokio::net::TcpStream::connect(&address)
        .await
        .expect("connect");
    third
        .write_all(head(padding.len() + 2).as_bytes())
        .await
        .expect("write");
    third.write_all(&padding).await.expect("write");
    third.write_all(b"{}").await.expect("write");
    let mut answer = vec![0u8; 4096];
    let read = third.read(&mut answer).await.expect("read");
    let answer = String::from_utf8_lossy(&answer[..read]);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    server.stop().await;
}

//! Every bad input is answered with a Kubernetes `v1 Status` error body
//! (`kind: Status`, `apiVersion: v1`, `status: Failure`, a `reason`, a
//! `code` equal to the HTTP code and a `message`) and changes nothing
//! stored: after each refused write the test reads the namespace back and
//! finds the same store revision and the same objects at the same
//! resourceVersions.
//!
//! Requests the generated client can express go through it; the others
//! (bodies that are not MXJobs, other media types, query values outside
//! the documented enums) are sent as raw HTTP.

use std::num::NonZeroU32;

use mxjob_client::types;
use mxjob_tests::{new_job, new_job_value, resource_version, status_of, to_value, TestServer};
use reqwest::header::{HeaderMap, CONTENT_TYPE, WARNING};
use reqwest::Method;
use serde_json::{json, Value};

const NS: &str = "errors";
const JSON: &str = "application/json";
const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

// ------------------------------------------------------------------ helpers

/// Sends a raw request; returns the HTTP code, the headers and the body
/// parsed as JSON (every answer of this API is JSON).
async fn send(
    server: &TestServer,
    method: Method,
    url: &str,
    content_type: Option<&str>,
    body: Option<Vec<u8>>,
) -> (u16, HeaderMap, Value) {
    let mut request = server.http.request(method, url);
    if let Some(content_type) = content_type {
        request = request.header(CONTENT_TYPE, content_type);
    }
    if let Some(body) = body {
        request = request.body(body);
    }
    let response = request.send().await.expect("the server answers");
    let code = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.expect("the body can be read");
    let body = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        panic!(
            "the {code} answer is not JSON ({e}): {}",
            String::from_utf8_lossy(&bytes)
        )
    });
    (code, headers, body)
}

/// Raw POST of `body` (as JSON) to the collection, with `query` (`""` or `?…`).
async fn create_raw(server: &TestServer, query: &str, body: &Value) -> (u16, HeaderMap, Value) {
    let url = format!("{}{query}", server.collection_url(NS));
    let bytes = serde_json::to_vec(body).expect("JSON encodes");
    send(server, Method::POST, &url, Some(JSON), Some(bytes)).await
}

/// Raw PATCH of `body` (bytes as given) with the media type `content_type`.
async fn patch_raw(
    server: &TestServer,
    name: &str,
    content_type: &str,
    body: &[u8],
) -> (u16, HeaderMap, Value) {
    let url = server.object_url(NS, name);
    send(
        server,
        Method::PATCH,
        &url,
        Some(content_type),
        Some(body.to_vec()),
    )
    .await
}

/// Asserts that `body` is a failure `Status` with `code` and `reason`.
fn assert_status(body: &Value, code: u16, reason: &str) {
    assert_eq!(body["kind"], "Status", "{body:#}");
    assert_eq!(body["apiVersion"], "v1", "{body:#}");
    assert!(body["metadata"].is_object(), "{body:#}");
    assert_eq!(body["status"], "Failure", "{body:#}");
    assert_eq!(body["reason"], reason, "{body:#}");
    assert_eq!(body["code"], code, "{body:#}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "a Status carries a message: {body:#}"
    );
}

/// Asserts that a raw answer is a failure `Status` sent as JSON with HTTP
/// code `code`; returns its body.
fn expect_status(answer: (u16, HeaderMap, Value), code: u16, reason: &str) -> Value {
    let (actual, headers, body) = answer;
    assert_eq!(actual, code, "HTTP code; body: {body:#}");
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(
        content_type.starts_with(JSON),
        "error bodies are JSON, got Content-Type {content_type:?}"
    );
    assert_status(&body, code, reason);
    body
}

/// Asserts that a call of the generated client failed with a `Status` of
/// `code` and `reason`; returns the Status as JSON.
fn expect_client_status<T: std::fmt::Debug>(
    result: Result<mxjob_client::ResponseValue<T>, mxjob_client::Error<types::Status>>,
    code: u16,
    reason: &str,
) -> Value {
    let (actual, status) = status_of(result);
    let body = serde_json::to_value(&status).expect("a Status encodes");
    assert_eq!(actual, code, "HTTP code; body: {body:#}");
    assert_status(&body, code, reason);
    body
}

/// The message of a Status.
fn message(body: &Value) -> &str {
    body["message"].as_str().unwrap_or_default()
}

/// The causes of an Invalid Status as (reason, field) pairs.
fn causes(body: &Value) -> Vec<(String, String)> {
    body["details"]["causes"]
        .as_array()
        .unwrap_or_else(|| panic!("an Invalid Status lists causes: {body:#}"))
        .iter()
        .map(|cause| {
            assert!(
                cause["message"].as_str().is_some_and(|m| !m.is_empty()),
                "every cause has a message: {cause:#}"
            );
            (
                cause["reason"].as_str().unwrap_or_default().to_string(),
                cause["field"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(reason, field)| (reason.to_string(), field.to_string()))
        .collect()
}

/// Asserts a 422 on an MXJob named `name`: exactly the causes `expected`
/// ((reason, field) pairs, in order), details naming the MXJob, and the
/// aggregated message `MXJob.kubeflow.org "NAME" is invalid: field: cause`
/// (several causes in brackets, separated by ", ").
fn assert_invalid_job(body: &Value, name: &str, expected: &[(&str, &str)]) {
    assert_status(body, 422, "Invalid");
    let details = &body["details"];
    assert_eq!(details["kind"], "MXJob", "{body:#}");
    assert_eq!(details["group"], "kubeflow.org", "{body:#}");
    assert_eq!(details["name"], name, "{body:#}");
    assert_eq!(causes(body), pairs(expected), "{body:#}");

    let listed: Vec<String> = details["causes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            format!(
                "{}: {}",
                c["field"].as_str().unwrap_or_default(),
                c["message"].as_str().unwrap_or_default()
            )
        })
        .collect();
    let summary = if listed.len() == 1 {
        listed[0].clone()
    } else {
        format!("[{}]", listed.join(", "))
    };
    assert_eq!(
        message(body),
        format!("MXJob.kubeflow.org \"{name}\" is invalid: {summary}")
    );
}

/// What the namespace holds: the list's resourceVersion (the store
/// revision, which any write raises) and each object's name and
/// resourceVersion.
async fn stored(server: &TestServer) -> (String, Vec<(String, String)>) {
    let list = server
        .client
        .list_mxjobs()
        .namespace(NS)
        .send()
        .await
        .expect("list answers")
        .into_inner();
    let revision = list
        .metadata
        .resource_version
        .expect("a list has a resourceVersion");
    let items = list
        .items
        .iter()
        .map(|job| {
            (
                job.metadata.name.clone().unwrap_or_default(),
                resource_version(job),
            )
        })
        .collect();
    (revision, items)
}

/// Creates a valid job through the generated client.
async fn create(server: &TestServer, name: &str) -> types::MxJob {
    server
        .client
        .create_mxjob()
        .namespace(NS)
        .body(new_job(NS, name))
        .send()
        .await
        .expect("a valid job is created")
        .into_inner()
}

/// Reads a job through the generated client.
async fn read(server: &TestServer, name: &str) -> types::MxJob {
    server
        .client
        .read_mxjob()
        .namespace(NS)
        .name(name)
        .send()
        .await
        .expect("the job exists")
        .into_inner()
}

/// Creates `job` with the generated client, expects 422 with `expected`
/// causes, and checks that nothing was stored.
async fn assert_client_create_invalid(
    server: &TestServer,
    job: types::MxJob,
    name: &str,
    expected: &[(&str, &str)],
) -> Value {
    let before = stored(server).await;
    let result = server
        .client
        .create_mxjob()
        .namespace(NS)
        .body(job)
        .send()
        .await;
    let body = expect_client_status(result, 422, "Invalid");
    assert_invalid_job(&body, name, expected);
    assert_eq!(
        stored(server).await,
        before,
        "a refused create stores nothing"
    );
    body
}

/// Creates the raw `job`, expects 422 with `expected` causes, and checks
/// that nothing was stored.
async fn assert_raw_create_invalid(
    server: &TestServer,
    job: &Value,
    name: &str,
    expected: &[(&str, &str)],
) -> Value {
    let before = stored(server).await;
    let body = expect_status(create_raw(server, "", job).await, 422, "Invalid");
    assert_invalid_job(&body, name, expected);
    assert_eq!(
        stored(server).await,
        before,
        "a refused create stores nothing"
    );
    body
}

/// The first container of a replica type of a typed job.
fn first_container(
    job: &mut types::MxJob,
    replica: fn(&mut types::MxReplicaSpecs) -> &mut Option<types::ReplicaSpec>,
) -> &mut types::IoK8sApiCoreV1Container {
    let spec = replica(&mut job.spec.mx_replica_specs)
        .as_mut()
        .expect("the seed has this replica type");
    spec.template
        .spec
        .as_mut()
        .expect("the seed's templates have a spec")
        .containers
        .first_mut()
        .expect("the seed's templates have a container")
}

/// A valid job with an annotation of `bytes` bytes.
fn job_with_annotation(name: &str, bytes: usize) -> Value {
    let mut job = new_job_value(NS, name);
    job["metadata"]["annotations"] = json!({ "example.com/blob": "x".repeat(bytes) });
    job
}

// ------------------------------------------------------------ body decoding

#[tokio::test]
async fn malformed_json_body_is_a_400_status() {
    let server = TestServer::start().await;
    let before = stored(&server).await;
    let url = server.collection_url(NS);
    let answer = send(
        &server,
        Method::POST,
        &url,
        Some(JSON),
        Some(br#"{"apiVersion": "kubeflow.org/v1", "kind": "#.to_vec()),
    )
    .await;
    let body = expect_status(answer, 400, "BadRequest");
    assert!(message(&body).contains("not valid JSON"), "{body:#}");
    assert_eq!(stored(&server).await, before);
    server.stop().await;
}

#[tokio::test]
async fn json_array_body_is_a_400_status() {
    let server = TestServer::start().await;
    let before = stored(&server).await;
    let body = expect_status(
        create_raw(&server, "", &json!([new_job_value(NS, "in-a-list")])).await,
        400,
        "BadRequest",
    );
    assert!(message(&body).contains("JSON object"), "{body:#}");
    assert_eq!(stored(&server).await, before);
    server.stop().await;
}

#[tokio::test]
async fn wrong_api_version_is_a_400_naming_the_expected_version() {
    let server = TestServer::start().await;
    let before = stored(&server).await;
    let mut job = new_job_value(NS, "wrong-version");
    job["apiVersion"] = json!("v2");
    let body = expect_status(create_raw(&server, "", &job).await, 400, "BadRequest");
    assert!(
        message(&body).contains("expected API version (kubeflow.org/v1)"),
        "{body:#}"
    );
    assert!(message(&body).contains("v2"), "{body:#}");
    assert_eq!(stored(&server).await, before);
    server.stop().await;
}

#[tokio::test]
async fn wrong_kind_is_a_400_naming_the_expected_kind() {
    let server = TestServer::start().await;
    let before = stored(&server).await;
    let mut job = new_job_value(NS, "wrong-kind");
    job["kind"] = json!("TFJob");
    let body = expect_status(create_raw(&server, "", &job).await, 400, "BadRequest");
    assert!(message(&body).contains("TFJob"), "{body:#}");
    assert!(message(&body).contains("MXJob"), "{body:#}");
    assert_eq!(stored(&server).await, before);
    server.stop().await;
}

#[tokio::test]
async fn text_plain_create_is_a_415_status() {
    let server = TestServer::start().await;
    let before = stored(&server).await;
    let url = server.collection_url(NS);
    let bytes = serde_json::to_vec(&new_job_value(NS, "plain")).expect("JSON encodes");
    let answer = send(&server, Method::POST, &url, Some("text/plain"), Some(bytes)).await;
    let body = expect_status(answer, 415, "UnsupportedMediaType");
    assert!(message(&body).contains("text/plain"), "{body:#}");
    assert_eq!(stored(&server).await, before);
    server.stop().await;
}

/// A body without `Content-Type` from a client that is not a browser is
/// JSON, as the Kubernetes API server reads it (the Python `kubernetes`
/// client sends custom objects that way).
#[tokio::test]
async fn create_without_content_type_is_read_as_json() {
    let server = TestServer::start().await;
    let url = server.collection_url(NS);
    let bytes = serde_json::to_vec(&new_job_value(NS, "untyped")).expect("JSON encodes");
    let (code, _, body) = send(&server, Method::POST, &url, None, Some(bytes)).await;
    assert_eq!(code, 201, "{body:#}");
    assert_eq!(body["metadata"]["name"], "untyped");
    assert_eq!(
        read(&server, "untyped").await.metadata.resource_version,
        body["metadata"]["resourceVersion"]
            .as_str()
            .map(String::from)
    );
    server.stop().await;
}

/// From a browser (a request with `Origin`) a body must declare its type:
/// a cross-site "simple" request has none, so it is never read as JSON.
#[tokio::test]
async fn browser_writes_without_content_type_are_a_415_status_and_store_nothing() {
    let server = TestServer::start().await;
    let created = server
        .client
        .create_mxjob()
        .namespace(NS)
        .body(new_job(NS, "kept"))
        .send()
        .await
        .expect("create")
        .into_inner();
    let before = stored(&server).await;
    let collection = server.collection_url(NS);
    let object = server.object_url(NS, "kept");
    let job = serde_json::to_vec(&new_job_value(NS, "untyped")).expect("JSON encodes");
    let mut replacement = to_value(&created);
    replacement["metadata"]["labels"] = serde_json::json!({"changed": "yes"});
    let replacement = serde_json::to_vec(&replacement).expect("JSON encodes");
    let patch = br#"{"metadata":{"labels":{"changed":"yes"}}}"#.to_vec();
    let delete = br#"{"kind":"DeleteOptions","apiVersion":"v1"}"#.to_vec();
    for (method, url, body) in [
        (Method::POST, &collection, job),
        (Method::PUT, &object, replacement),
        (Method::PATCH, &object, patch),
        (Method::DELETE, &object, delete.clone()),
        (Method::DELETE, &collection, delete),
    ] {
        let response = server
            .http
            .request(method.clone(), url.as_str())
            .header("origin", &server.url)
            .body(body)
            .send()
            .await
            .expect("answer");
        assert_eq!(response.status().as_u16(), 415, "{method} {url}");
        let status: Value = response.json().await.expect("a Status");
        assert_eq!(status["reason"], "UnsupportedMediaType");
        assert!(message(&status).contains("no Content-Type"), "{status:#}");
    }
    assert_eq!(stored(&server).await, before);
    server.stop().await;
}

#[tokio::test]
async fn body_over_3_mib_is_a_413_and_the_server_keeps_answering() {
    let server = TestServer::start().await;
    let before = stored(&server).await;
    let job = job_with_annotation("too-large", 3 * 1024 * 1024 + 512 * 1024);
    let body = expect_status(
        create_raw(&server, "", &job).await,
        413,
        "RequestEntityTooLarge",
    );
    assert_eq!(message(&body), "Request entity too large: limit is 3145728");
    // The next request (on the same client, so likely the same connection)
    // is answered normally.
    assert_eq!(stored(&server).await, before);
    let (code, _, list) = send(&server, Method::GET, &server.collection_url(NS), None, None).await;
    assert_eq!(code, 200, "{list:#}");
    assert_eq!(list["items"], json!([]));
    create(&server, "after-too-large").await;
    server.stop().await;
}

#[tokio::test]
async fn annotations_over_256_kib_in_a_body_under_the_limit_are_a_422() {
    let server = TestServer::start().await;
    let job = job_with_annotation("big-annotations", MAX_BODY_BYTES - 64 * 1024);
    let size = serde_json::to_vec(&job).expect("JSON encodes").len();
    assert!(
        size < MAX_BODY_BYTES,
        "the body ({size} bytes) is under the limit"
    );
    assert_raw_create_invalid(
        &server,
        &job,
        "big-annotations",
        &[("FieldValueTooLong", "metadata.annotations")],
    )
    .await;
    server.stop().await;
}

#[tokio::test]
async fn typed_field_of_the_wrong_type_is_a_400_naming_its_path() {
    let server = TestServer::start().await;
    let before = stored(&server).await;
    let mut job = new_job_value(NS, "wrong-type");
    job["spec"]["backoffLimit"] = json!("three");
    let body = expect_status(create_raw(&server, "", &job).await, 400, "BadRequest");
    assert!(message(&body).contains("spec.backoffLimit"), "{body:#}");
    assert_eq!(stored(&server).await, before);
    server.stop().await;
}

// --------------------------------------------------------- fieldValidation

/// A valid job with the unknown field `spec.foo`.
fn job_with_unknown_field(name: &str) -> Value {
    let mut job = new_job_value(NS, name);
    job["spec"]["foo"] = json!("bar");
    job
}

const UNKNOWN_FIELD_WARNING: &str = r#"299 - "unknown field \"spec.foo\"""#;

#[tokio::test]
async fn strict_field_validation_rejects_an_unknown_field_with_a_400() {
    let server = TestServer::start().await;
    let before = stored(&server).await;
    let answer = create_raw(
        &server,
        "?fieldValidation=Strict",
        &job_with_unknown_field("strict"),
    )
    .await;
    let body = expect_status(answer, 400, "BadRequest");
    assert!(
        message(&body).contains(r#"unknown field "spec.foo""#),
        "{body:#}"
    );
    assert_eq!(stored(&server).await, before);
    server.stop().await;
}

#[tokio::test]
async fn unknown_field_is_dropped_with_a_warning_header_under_warn_and_by_default() {
    let server = TestServer::start().await;
    for (query, name) in [
        ("?fieldValidation=Warn", "warned"),
        ("", "warned-by-default"),
    ] {
        let (code, headers, body) = create_raw(&server, query, &job_with_unknown_field(name)).await;
        assert_eq!(code, 201, "{query}: {body:#}");
        let warnings: Vec<&str> = headers
            .get_all(WARNING)
            .iter()
            .map(|v| v.to_str().expect("a Warning header is text"))
            .collect();
        assert_eq!(warnings, vec![UNKNOWN_FIELD_WARNING], "{query}");
        assert!(body["spec"].get("foo").is_none(), "{query}: {body:#}");
        let stored = to_value(&read(&server, name).await);
        assert!(stored["spec"].get("foo").is_none(), "{query}: {stored:#}");
    }
    server.stop().await;
}

#[tokio::test]
async fn ignore_field_validation_drops_an_unknown_field_silently() {
    let server = TestServer::start().await;
    let (code, headers, body) = create_raw(
        &server,
        "?fieldValidation=Ignore",
        &job_with_unknown_field("ignored"),
    )
    .await;
    assert_eq!(code, 201, "{body:#}");
    assert!(headers.get(WARNING).is_none(), "{headers:?}");
    assert!(body["spec"].get("foo").is_none(), "{body:#}");
    server.stop().await;
}

#[tokio::test]
async fn unsupported_field_validation_value_is_a_400() {
    let server = TestServer::start().await;
    let before = stored(&server).await;
    let answer = create_raw(
        &server,
        "?fieldValidation=Bogus",
        &new_job_value(NS, "bogus-validation"),
    )
    .await;
    let body = expect_status(answer, 400, "BadRequest");
    assert!(message(&body).contains("Bogus"), "{body:#}");
    assert_eq!(stored(&server).await, before);
    server.stop().await;
}

/// `job` as JSON text with a key repeated: `"metadata":{` gets a
/// `"name":"first",` in front of the real name, and the Worker a
/// `"replicas":5,` in front of its own; the last value of each is the one
/// that counts.
fn with_duplicate_keys(job: &Value) -> Vec<u8> {
    let text = serde_json::to_string(job).expect("JSON encodes");
    let text = text.replacen(r#""metadata":{"#, r#""metadata":{"name":"first","#, 1);
    let text = text.replacen(r#""Worker":{"#, r#""Worker":{"replicas":5,"#, 1);
    assert!(text.contains(r#""name":"first""#) && text.contains(r#""replicas":5,"#));
    text.into_bytes()
}

const DUPLICATE_FIELDS: &str =
    r#"duplicate field "metadata.name", duplicate field "spec.mxReplicaSpecs.Worker.replicas""#;

/// The `Warning` headers of an answer.
fn warnings(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(WARNING)
        .iter()
        .map(|v| v.to_str().expect("a Warning header is text").to_string())
        .collect()
}

#[tokio::test]
async fn strict_field_validation_rejects_duplicate_fields_with_a_400_naming_them() {
    let server = TestServer::start().await;
    let job = create(&server, "duplicated").await;
    let before = stored(&server).await;
    let collection = format!("{}?fieldValidation=Strict", server.collection_url(NS));
    let object = format!(
        "{}?fieldValidation=Strict",
        server.object_url(NS, "duplicated")
    );
    let mut replaced = to_value(&job);
    replaced["metadata"]["labels"] = json!({"team": "ml"});
    let requests: [(Method, &str, &str, Vec<u8>, String); 4] = [
        (
            Method::POST,
            &collection,
            JSON,
            with_duplicate_keys(&new_job_value(NS, "duplicated-too")),
            format!("strict decoding error: {DUPLICATE_FIELDS}"),
        ),
        (
            Method::PUT,
            &object,
            JSON,
            with_duplicate_keys(&replaced),
            format!("strict decoding error: {DUPLICATE_FIELDS}"),
        ),
        (
            Method::PATCH,
            &object,
            mxjob_client::MERGE_PATCH,
            br#"{"metadata":{"labels":{"team":"a","team":"b"}}}"#.to_vec(),
            r#"strict decoding error: duplicate field "metadata.labels.team""#.to_string(),
        ),
        (
            Method::PATCH,
            &object,
            mxjob_client::JSON_PATCH,
            br#"[{"op":"add","path":"/metadata/labels","path":"/metadata/annotations","value":{},"extra":1}]"#.to_vec(),
            r#"strict decoding error: json patch duplicate field "[0].path", json patch unknown field "[0].extra""#.to_string(),
        ),
    ];
    for (method, url, media_type, body, expected) in requests {
        let answer = send(&server, method.clone(), url, Some(media_type), Some(body)).await;
        let status = expect_status(answer, 400, "BadRequest");
        assert_eq!(message(&status), expected, "{method} {media_type}");
        assert_eq!(stored(&server).await, before, "{method} {media_type}");
    }
    server.stop().await;
}

#[tokio::test]
async fn duplicate_fields_are_accepted_with_a_warning_under_warn_and_by_default() {
    let server = TestServer::start().await;
    let expected = [
        r#"299 - "duplicate field \"metadata.name\"""#,
        r#"299 - "duplicate field \"spec.mxReplicaSpecs.Worker.replicas\"""#,
    ];
    for (query, name) in [("?fieldValidation=Warn", "dup-warned"), ("", "dup-default")] {
        let url = format!("{}{query}", server.collection_url(NS));
        let body = with_duplicate_keys(&new_job_value(NS, name));
        let (code, headers, created) =
            send(&server, Method::POST, &url, Some(JSON), Some(body)).await;
        assert_eq!(code, 201, "{query}: {created:#}");
        assert_eq!(warnings(&headers), expected, "{query}");
        // The last value of a repeated key is the one kept.
        assert_eq!(created["metadata"]["name"], name);
        assert_ne!(created["spec"]["mxReplicaSpecs"]["Worker"]["replicas"], 5);

        let patch = br#"{"metadata":{"labels":{"team":"a","team":"b"}}}"#;
        let url = format!("{}{query}", server.object_url(NS, name));
        let (code, headers, patched) = send(
            &server,
            Method::PATCH,
            &url,
            Some(mxjob_client::MERGE_PATCH),
            Some(patch.to_vec()),
        )
        .await;
        assert_eq!(code, 200, "{query}: {patched:#}");
        assert_eq!(
            warnings(&headers),
            [r#"299 - "duplicate field \"metadata.labels.team\"""#],
            "{query}"
        );
        assert_eq!(patched["metadata"]["labels"], json!({"team": "b"}));
    }
    server.stop().await;
}

#[tokio::test]
async fn ignore_field_validation_accepts_duplicate_fields_silently() {
    let server = TestServer::start().await;
    let url = format!("{}?fieldValidation=Ignore", server.collection_url(NS));
    let body = with_duplicate_keys(&new_job_value(NS, "dup-ignored"));
    let (code, headers, created) = send(&server, Method::POST, &url, Some(JSON), Some(body)).await;
    assert_eq!(code, 201, "{created:#}");
    assert!(warnings(&headers).is_empty(), "{headers:?}");
    assert_eq!(created["metadata"]["name"], "dup-ignored");
    server.stop().await;
}

// ------------------------------------------------------------ write options

#[tokio::test]
async fn unsupported_dry_run_value_is_a_422() {
    let server = TestServer::start().await;
    let before = stored(&server).await;
    let answer = create_raw(
        &server,
        "?dryRun=Bogus",
        &new_job_value(NS, "bogus-dry-run"),
    )
    .await;
    let body = expect_status(answer, 422, "Invalid");
    assert_eq!(
        causes(&body),
        pairs(&[("FieldValueNotSupported", "dryRun")])
    );
    assert_eq!(
        message(&body),
        r#"CreateOptions.meta.k8s.io "" is invalid: dryRun: Unsupported value: "Bogus": supported values: "All""#
    );
    assert_eq!(body["details"]["kind"], "CreateOptions");
    assert_eq!(body["details"]["group"], "meta.k8s.io");
    assert_eq!(stored(&server).await, before);
    server.stop().await;
}

#[tokio::test]
async fn field_manager_over_128_characters_is_a_422() {
    let server = TestServer::start().await;
    let before = stored(&server).await;
    let result = server
        .client
        .create_mxjob()
        .namespace(NS)
        .field_manager("m".repeat(129))
        .body(new_job(NS, "long-manager"))
        .send()
        .await;
    let body = expect_client_status(result, 422, "Invalid");
    assert_eq!(
        causes(&body),
        pairs(&[("FieldValueTooLong", "fieldManager")])
    );
    assert!(
        message(&body).starts_with(r#"CreateOptions.meta.k8s.io "" is invalid: fieldManager: "#),
        "{body:#}"
    );
    assert_eq!(stored(&server).await, before);

    // 128 characters are fine.
    server
        .client
        .create_mxjob()
        .namespace(NS)
        .field_manager("m".repeat(128))
        .body(new_job(NS, "long-manager"))
        .send()
        .await
        .expect("a 128-character fieldManager is accepted");
    server.stop().await;
}

// ----------------------------------------------------------- delete options

#[tokio::test]
async fn grace_period_that_is_not_a_number_is_a_400_status() {
    let server = TestServer::start().await;
    create(&server, "kept").await;
    let before = stored(&server).await;
    let url = format!("{}?gracePeriodSeconds=abc", server.object_url(NS, "kept"));
    let body = expect_status(
        send(&server, Method::DELETE, &url, None, None).await,
        400,
        "BadRequest",
    );
    assert!(message(&body).contains("query string"), "{body:#}");
    assert_eq!(stored(&server).await, before);
    server.stop().await;
}

#[tokio::test]
async fn negative_grace_period_is_a_422() {
    let server = TestServer::start().await;
    create(&server, "kept").await;
    let before = stored(&server).await;
    let result = server
        .client
        .delete_mxjob()
        .namespace(NS)
        .name("kept")
        .grace_period_seconds(-1)
        .send()
        .await;
    let body = expect_client_status(result, 422, "Invalid");
    assert_eq!(
        causes(&body),
        pairs(&[("FieldValueInvalid", "gracePeriodSeconds")])
    );
    assert!(
        message(&body).starts_with(r#"DeleteOptions.meta.k8s.io "" is invalid: "#),
        "{body:#}"
    );
    assert_eq!(stored(&server).await, before);
    server.stop().await;
}

#[tokio::test]
async fn propagation_policy_with_orphan_dependents_is_a_422() {
    let server = TestServer::start().await;
    create(&server, "kept").await;
    let before = stored(&server).await;
    let result = server
        .client
        .delete_mxjob()
        .namespace(NS)
        .name("kept")
        .propagation_policy(types::PropagationPolicy::Orphan)
        .orphan_dependents(true)
        .send()
        .await;
    let body = expect_client_status(result, 422, "Invalid");
    assert_eq!(
        causes(&body),
        pairs(&[("FieldValueInvalid", "propagationPolicy")])
    );
    assert_eq!(stored(&server).await, before);
    server.stop().await;
}

#[tokio::test]
async fn unsupported_propagation_policy_is_a_422() {
    let server = TestServer::start().await;
    create(&server, "kept").await;
    let before = stored(&server).await;
    let url = format!(
        "{}?propagationPolicy=Sideways",
        server.object_url(NS, "kept")
    );
    let body = expect_status(
        send(&server, Method::DELETE, &url, None, None).await,
        422,
        "Invalid",
    );
    assert_eq!(
        causes(&body),
        pairs(&[("FieldValueNotSupported", "propagationPolicy")])
    );
    assert!(message(&body).contains("Sideways"), "{body:#}");
    assert_eq!(stored(&server).await, before);
    server.stop().await;
}

#[tokio::test]
async fn delete_collection_with_invalid_options_deletes_nothing() {
    let server = TestServer::start().await;
    create(&server, "first").await;
    create(&server, "second").await;
    let before = stored(&server).await;
    let result = server
        .client
        .delete_mxjob_collection()
        .namespace(NS)
        .grace_period_seconds(-1)
        .send()
        .await;
    let body = expect_client_status(result, 422, "Invalid");
    assert_eq!(
        causes(&body),
        pairs(&[("FieldValueInvalid", "gracePeriodSeconds")])
    );
    assert_eq!(stored(&server).await, before);
    assert_eq!(before.1.len(), 2);
    server.stop().await;
}

// ------------------------------------------------------- create validation

#[tokio::test]
async fn name_with_upper_case_letters_is_invalid() {
    let server = TestServer::start().await;
    let body = assert_client_create_invalid(
        &server,
        new_job(NS, "Train-Job"),
        "Train-Job",
        &[("FieldValueInvalid", "metadata.name")],
    )
    .await;
    assert!(
        message(&body).starts_with(
            r#"MXJob.kubeflow.org "Train-Job" is invalid: metadata.name: Invalid value: "Train-Job": "#
        ),
        "{body:#}"
    );
    server.stop().await;
}

#[tokio::test]
async fn job_without_name_or_generate_name_is_invalid() {
    let server = TestServer::start().await;
    let mut job = new_job(NS, "unnamed");
    job.metadata.name = None;
    job.metadata.generate_name = None;
    let body =
        assert_client_create_invalid(&server, job, "", &[("FieldValueRequired", "metadata.name")])
            .await;
    assert!(
        message(&body)
            .starts_with(r#"MXJob.kubeflow.org "" is invalid: metadata.name: Required value"#),
        "{body:#}"
    );
    server.stop().await;
}

#[tokio::test]
async fn unsupported_job_mode_is_invalid() {
    let server = TestServer::start().await;
    let mut job = new_job_value(NS, "foo-mode");
    job["spec"]["jobMode"] = json!("MXFoo");
    let body = assert_raw_create_invalid(
        &server,
        &job,
        "foo-mode",
        &[("FieldValueNotSupported", "spec.jobMode")],
    )
    .await;
    assert_eq!(
        message(&body),
        r#"MXJob.kubeflow.org "foo-mode" is invalid: spec.jobMode: Unsupported value: "MXFoo": supported values: "MXTrain", "MXTune""#
    );
    server.stop().await;
}

#[tokio::test]
async fn zero_worker_replicas_are_invalid() {
    let server = TestServer::start().await;
    let mut job = new_job_value(NS, "no-workers");
    job["spec"]["mxReplicaSpecs"]["Worker"]["replicas"] = json!(0);
    assert_raw_create_invalid(
        &server,
        &job,
        "no-workers",
        &[("FieldValueInvalid", "spec.mxReplicaSpecs.Worker.replicas")],
    )
    .await;
    server.stop().await;
}

#[tokio::test]
async fn two_scheduler_replicas_are_invalid() {
    let server = TestServer::start().await;
    let mut job = new_job(NS, "two-schedulers");
    job.spec
        .mx_replica_specs
        .scheduler
        .as_mut()
        .expect("the seed has a Scheduler")
        .replicas = NonZeroU32::new(2);
    assert_client_create_invalid(
        &server,
        job,
        "two-schedulers",
        &[(
            "FieldValueInvalid",
            "spec.mxReplicaSpecs.Scheduler.replicas",
        )],
    )
    .await;
    server.stop().await;
}

#[tokio::test]
async fn container_without_image_is_invalid() {
    let server = TestServer::start().await;
    let mut job = new_job(NS, "no-image");
    first_container(&mut job, |s| &mut s.worker).image = None;
    assert_client_create_invalid(
        &server,
        job,
        "no-image",
        &[(
            "FieldValueRequired",
            "spec.mxReplicaSpecs.Worker.template.spec.containers[0].image",
        )],
    )
    .await;
    server.stop().await;
}

#[tokio::test]
async fn replica_without_an_mxnet_container_is_invalid() {
    let server = TestServer::start().await;
    let mut job = new_job(NS, "no-mxnet");
    first_container(&mut job, |s| &mut s.server).name = "main".to_string();
    assert_client_create_invalid(
        &server,
        job,
        "no-mxnet",
        &[(
            "FieldValueRequired",
            "spec.mxReplicaSpecs.Server.template.spec.containers",
        )],
    )
    .await;
    server.stop().await;
}

#[tokio::test]
async fn zero_active_deadline_is_invalid() {
    let server = TestServer::start().await;
    let mut job = new_job_value(NS, "no-deadline");
    job["spec"]["activeDeadlineSeconds"] = json!(0);
    assert_raw_create_invalid(
        &server,
        &job,
        "no-deadline",
        &[("FieldValueInvalid", "spec.activeDeadlineSeconds")],
    )
    .await;
    server.stop().await;
}

#[tokio::test]
async fn negative_ttl_after_finished_is_invalid() {
    let server = TestServer::start().await;
    let mut job = new_job(NS, "negative-ttl");
    job.spec.ttl_seconds_after_finished = Some(-1);
    assert_client_create_invalid(
        &server,
        job,
        "negative-ttl",
        &[("FieldValueInvalid", "spec.ttlSecondsAfterFinished")],
    )
    .await;
    server.stop().await;
}

#[tokio::test]
async fn negative_backoff_limit_is_invalid() {
    let server = TestServer::start().await;
    let mut job = new_job(NS, "negative-backoff");
    job.spec.backoff_limit = Some(-1);
    let body = assert_client_create_invalid(
        &server,
        job,
        "negative-backoff",
        &[("FieldValueInvalid", "spec.backoffLimit")],
    )
    .await;
    assert_eq!(
        message(&body),
        r#"MXJob.kubeflow.org "negative-backoff" is invalid: spec.backoffLimit: Invalid value: -1: must be greater than or equal to 0"#
    );
    server.stop().await;
}

#[tokio::test]
async fn unsupported_clean_pod_policy_is_invalid() {
    let server = TestServer::start().await;
    let mut job = new_job_value(NS, "sometimes");
    job["spec"]["cleanPodPolicy"] = json!("Sometimes");
    assert_raw_create_invalid(
        &server,
        &job,
        "sometimes",
        &[("FieldValueNotSupported", "spec.cleanPodPolicy")],
    )
    .await;
    server.stop().await;
}

#[tokio::test]
async fn unsupported_restart_policy_is_invalid() {
    let server = TestServer::start().await;
    let mut job = new_job_value(NS, "maybe");
    job["spec"]["mxReplicaSpecs"]["Worker"]["restartPolicy"] = json!("Maybe");
    assert_raw_create_invalid(
        &server,
        &job,
        "maybe",
        &[(
            "FieldValueNotSupported",
            "spec.mxReplicaSpecs.Worker.restartPolicy",
        )],
    )
    .await;
    server.stop().await;
}

#[tokio::test]
async fn label_value_with_a_space_is_invalid() {
    let server = TestServer::start().await;
    let mut job = new_job(NS, "spaced-label");
    job.metadata
        .labels
        .insert("team".to_string(), "ml ops".to_string());
    assert_client_create_invalid(
        &server,
        job,
        "spaced-label",
        &[("FieldValueInvalid", "metadata.labels")],
    )
    .await;
    server.stop().await;
}

#[tokio::test]
async fn training_job_without_a_worker_is_invalid() {
    let server = TestServer::start().await;
    let mut job = new_job(NS, "no-worker");
    job.spec.mx_replica_specs.worker = None;
    assert_client_create_invalid(
        &server,
        job,
        "no-worker",
        &[("FieldValueRequired", "spec.mxReplicaSpecs.Worker")],
    )
    .await;
    server.stop().await;
}

#[tokio::test]
async fn several_field_errors_are_listed_in_one_bracketed_message() {
    let server = TestServer::start().await;
    let mut job = new_job_value(NS, "many-errors");
    job["spec"]["backoffLimit"] = json!(-1);
    job["spec"]["cleanPodPolicy"] = json!("Sometimes");
    let body = assert_raw_create_invalid(
        &server,
        &job,
        "many-errors",
        &[
            ("FieldValueInvalid", "spec.backoffLimit"),
            ("FieldValueNotSupported", "spec.cleanPodPolicy"),
        ],
    )
    .await;
    assert_eq!(
        message(&body),
        r#"MXJob.kubeflow.org "many-errors" is invalid: [spec.backoffLimit: Invalid value: -1: must be greater than or equal to 0, spec.cleanPodPolicy: Unsupported value: "Sometimes": supported values: "All", "Running", "None"]"#
    );
    server.stop().await;
}

// ------------------------------------------------------- names and identity

#[tokio::test]
async fn generate_name_completes_the_name_with_five_characters() {
    let server = TestServer::start().await;
    let mut job = new_job(NS, "ignored");
    job.metadata.name = None;
    job.metadata.generate_name = Some("train-".to_string());
    let created = server
        .client
        .create_mxjob()
        .namespace(NS)
        .body(job)
        .send()
        .await
        .expect("a job with only a generateName is created");
    assert_eq!(created.status().as_u16(), 201);
    let name = created
        .into_inner()
        .metadata
        .name
        .expect("the server sets the name");
    assert!(name.starts_with("train-"), "{name}");
    assert_eq!(name.len(), 11, "{name}");
    assert_eq!(
        read(&server, &name).await.metadata.name.as_deref(),
        Some(name.as_str())
    );
    server.stop().await;
}

/// A generateName is judged whenever it is set, as Kubernetes judges it,
/// even beside a name that leaves it unused.
#[tokio::test]
async fn invalid_generate_name_beside_a_name_is_a_422() {
    let server = TestServer::start().await;
    let mut job = new_job_value(NS, "named");
    job["metadata"]["generateName"] = json!("Not_A_Prefix-");
    assert_raw_create_invalid(
        &server,
        &job,
        "named",
        &[("FieldValueInvalid", "metadata.generateName")],
    )
    .await;
    server.stop().await;
}

#[tokio::test]
async fn creating_a_taken_name_is_a_409_already_exists() {
    let server = TestServer::start().await;
    let first = create(&server, "taken").await;
    let before = stored(&server).await;
    let mut second = new_job(NS, "taken");
    second
        .metadata
        .labels
        .insert("attempt".to_string(), "second".to_string());
    let result = server
        .client
        .create_mxjob()
        .namespace(NS)
        .body(second)
        .send()
        .await;
    let body = expect_client_status(result, 409, "AlreadyExists");
    assert_eq!(
        message(&body),
        r#"mxjobs.kubeflow.org "taken" already exists"#
    );
    assert_eq!(body["details"]["name"], "taken");
    assert_eq!(body["details"]["group"], "kubeflow.org");
    assert_eq!(body["details"]["kind"], "mxjobs");
    assert_eq!(stored(&server).await, before);
    let kept = read(&server, "taken").await;
    assert_eq!(kept.metadata.uid, first.metadata.uid);
    assert!(
        kept.metadata.labels.is_empty(),
        "{:?}",
        kept.metadata.labels
    );
    server.stop().await;
}

/// Asserts the NotFound Status of `name`.
fn assert_not_found(body: &Value, name: &str) {
    assert_eq!(
        message(body),
        format!(r#"mxjobs.kubeflow.org "{name}" not found"#)
    );
    let details = &body["details"];
    assert_eq!(details["name"], name, "{body:#}");
    assert_eq!(details["group"], "kubeflow.org", "{body:#}");
    assert_eq!(details["kind"], "mxjobs", "{body:#}");
}

#[tokio::test]
async fn reading_a_missing_job_is_a_404_not_found() {
    let server = TestServer::start().await;
    let result = server
        .client
        .read_mxjob()
        .namespace(NS)
        .name("missing")
        .send()
        .await;
    let body = expect_client_status(result, 404, "NotFound");
    assert_not_found(&body, "missing");
    server.stop().await;
}

#[tokio::test]
async fn deleting_a_missing_job_is_a_404_not_found() {
    let server = TestServer::start().await;
    create(&server, "other").await;
    let before = stored(&server).await;
    let result = server
        .client
        .delete_mxjob()
        .namespace(NS)
        .name("missing")
        .send()
        .await;
    let body = expect_client_status(result, 404, "NotFound");
    assert_not_found(&body, "missing");
    assert_eq!(stored(&server).await, before);
    server.stop().await;
}

// -------------------------------------------------------------------- patch

#[tokio::test]
async fn strategic_merge_patch_is_a_415() {
    let server = TestServer::start().await;
    create(&server, "patched").await;
    let before = stored(&server).await;
    let answer = patch_raw(
        &server,
        "patched",
        "application/strategic-merge-patch+json",
        br#"{"metadata":{"labels":{"team":"ml"}}}"#,
    )
    .await;
    let body = expect_status(answer, 415, "UnsupportedMediaType");
    assert!(
        message(&body).contains("application/strategic-merge-patch+json"),
        "{body:#}"
    );
    assert_eq!(stored(&server).await, before);
    assert!(read(&server, "patched").await.metadata.labels.is_empty());
    server.stop().await;
}

#[tokio::test]
async fn malformed_json_patch_body_is_a_400() {
    let server = TestServer::start().await;
    create(&server, "patched").await;
    let before = stored(&server).await;
    let answer = patch_raw(
        &server,
        "patched",
        mxjob_client::MERGE_PATCH,
        br#"{"metadata":{"labels":"#,
    )
    .await;
    expect_status(answer, 400, "BadRequest");
    assert_eq!(stored(&server).await, before);
    server.stop().await;
}

#[tokio::test]
async fn json_patch_with_a_failing_test_is_a_422_and_changes_nothing() {
    let server = TestServer::start().await;
    create(&server, "patched").await;
    let before = stored(&server).await;
    let patch = json!([
        { "op": "add", "path": "/metadata/labels", "value": { "team": "ml" } },
        { "op": "test", "path": "/spec/jobMode", "value": "MXTune" },
    ]);
    let answer = patch_raw(
        &server,
        "patched",
        mxjob_client::JSON_PATCH,
        &serde_json::to_vec(&patch).expect("JSON encodes"),
    )
    .await;
    let body = expect_status(answer, 422, "Invalid");
    assert_eq!(body["details"]["name"], "patched", "{body:#}");
    assert_eq!(stored(&server).await, before);
    assert!(read(&server, "patched").await.metadata.labels.is_empty());
    server.stop().await;
}

#[tokio::test]
async fn json_patch_that_is_not_a_list_of_operations_is_a_400() {
    let server = TestServer::start().await;
    create(&server, "patched").await;
    let before = stored(&server).await;
    for patch in [
        json!({ "metadata": { "labels": { "team": "ml" } } }),
        json!([{ "op": "frobnicate", "path": "/metadata/labels" }]),
    ] {
        let answer = patch_raw(
            &server,
            "patched",
            mxjob_client::JSON_PATCH,
            &serde_json::to_vec(&patch).expect("JSON encodes"),
        )
        .await;
        expect_status(answer, 400, "BadRequest");
        assert_eq!(stored(&server).await, before, "{patch}");
    }
    server.stop().await;
}

/// A merge patch through the generated client.
async fn merge_patch(
    server: &TestServer,
    name: &str,
    patch: Value,
) -> Result<mxjob_client::ResponseValue<types::MxJob>, mxjob_client::Error<types::Status>> {
    let Value::Object(patch) = patch else {
        panic!("a merge patch is an object")
    };
    server
        .client
        .patch_mxjob()
        .namespace(NS)
        .name(name)
        .body(types::MxJobPatch::Object(patch))
        .send()
        .await
}

#[tokio::test]
async fn merge_patch_changing_the_job_mode_is_a_422_naming_spec_job_mode() {
    let server = TestServer::start().await;
    create(&server, "patched").await;
    let before = stored(&server).await;
    let result = merge_patch(
        &server,
        "patched",
        json!({ "spec": { "jobMode": "MXTune" } }),
    )
    .await;
    let body = expect_client_status(result, 422, "Invalid");
    assert_eq!(body["details"]["kind"], "MXJob", "{body:#}");
    assert_eq!(body["details"]["name"], "patched", "{body:#}");
    assert!(
        causes(&body).contains(&("FieldValueInvalid".to_string(), "spec.jobMode".to_string())),
        "{body:#}"
    );
    assert!(
        message(&body).contains(r#"spec.jobMode: Invalid value: "MXTune": field is immutable"#),
        "{body:#}"
    );
    assert_eq!(stored(&server).await, before);
    server.stop().await;
}

#[tokio::test]
async fn merge_patch_with_a_stale_resource_version_is_a_409_conflict() {
    let server = TestServer::start().await;
    let created = create(&server, "patched").await;
    let stale = resource_version(&created);
    merge_patch(
        &server,
        "patched",
        json!({ "metadata": { "labels": { "team": "ml" } } }),
    )
    .await
    .expect("a label patch succeeds");
    let before = stored(&server).await;
    assert_ne!(before.1[0].1, stale);

    let result = merge_patch(
        &server,
        "patched",
        json!({ "metadata": { "resourceVersion": stale, "labels": { "team": "ops" } } }),
    )
    .await;
    let body = expect_client_status(result, 409, "Conflict");
    assert_eq!(
        message(&body),
        r#"Operation cannot be fulfilled on mxjobs.kubeflow.org "patched": the object has been modified; please apply your changes to the latest version and try again"#
    );
    assert_eq!(stored(&server).await, before);
    let kept = read(&server, "patched").await;
    assert_eq!(
        kept.metadata.labels.get("team").map(String::as_str),
        Some("ml")
    );
    server.stop().await;
}

#[tokio::test]
async fn merge_patch_changing_the_name_is_a_400() {
    let server = TestServer::start().await;
    create(&server, "patched").await;
    let before = stored(&server).await;
    let result = merge_patch(
        &server,
        "patched",
        json!({ "metadata": { "name": "renamed" } }),
    )
    .await;
    let body = expect_client_status(result, 400, "BadRequest");
    assert_eq!(
        message(&body),
        "the name of the object (renamed) does not match the name on the URL (patched)"
    );
    assert_eq!(stored(&server).await, before);
    server.stop().await;
}

// ---------------------------------------------------------------- replace

#[tokio::test]
async fn replace_without_resource_version_is_a_422() {
    let server = TestServer::start().await;
    let mut job = create(&server, "replaced").await;
    let before = stored(&server).await;
    job.metadata.resource_version = None;
    job.metadata
        .labels
        .insert("team".to_string(), "ml".to_string());
    let result = server
        .client
        .replace_mxjob()
        .namespace(NS)
        .name("replaced")
        .body(job)
        .send()
        .await;
    let body = expect_client_status(result, 422, "Invalid");
    assert!(
        message(&body).contains(
            "metadata.resourceVersion: Invalid value: 0: must be specified for an update"
        ),
        "{body:#}"
    );
    assert_eq!(
        causes(&body),
        pairs(&[("FieldValueInvalid", "metadata.resourceVersion")])
    );
    assert_eq!(stored(&server).await, before);
    assert!(read(&server, "replaced").await.metadata.labels.is_empty());
    server.stop().await;
}

#[tokio::test]
async fn replace_with_a_non_numeric_resource_version_is_a_400() {
    let server = TestServer::start().await;
    let mut job = create(&server, "replaced").await;
    let before = stored(&server).await;
    job.metadata.resource_version = Some("abc".to_string());
    job.metadata
        .labels
        .insert("team".to_string(), "ml".to_string());
    let result = server
        .client
        .replace_mxjob()
        .namespace(NS)
        .name("replaced")
        .body(job)
        .send()
        .await;
    let body = expect_client_status(result, 400, "BadRequest");
    assert!(message(&body).contains("abc"), "{body:#}");
    assert_eq!(stored(&server).await, before);
    assert!(read(&server, "replaced").await.metadata.labels.is_empty());
    server.stop().await;
}

#[tokio::test]
async fn a_body_without_kind_or_api_version_is_a_400() {
    let server = TestServer::start().await;
    for field in ["kind", "apiVersion"] {
        let mut job = new_job_value(NS, "no-type");
        job.as_object_mut().map(|o| o.remove(field));
        let response = server
            .http
            .post(server.collection_url(NS))
            .json(&job)
            .send()
            .await
            .expect("post");
        assert_eq!(response.status().as_u16(), 400, "{field}");
        let status: serde_json::Value = response.json().await.expect("json");
        assert_eq!(status["reason"], "BadRequest");
        assert!(status["message"]
            .as_str()
            .unwrap_or_default()
            .contains(field));
    }
    let missing = server
        .http
        .get(server.object_url(NS, "no-type"))
        .send()
        .await
        .expect("get");
    assert_eq!(missing.status().as_u16(), 404, "nothing was stored");
    server.stop().await;
}

#[tokio::test]
async fn a_json_patch_operation_with_a_null_from_is_read_as_without_it() {
    let server = TestServer::start().await;
    server
        .http
        .post(server.collection_url(NS))
        .json(&new_job_value(NS, "nullfrom"))
        .send()
        .await
        .expect("create");
    let ops = serde_json::json!([{"op": "add", "path": "/metadata/labels", "value": {"a": "b"}, "from": null}]);
    let response = server
        .http
        .patch(server.object_url(NS, "nullfrom"))
        .header("content-type", "application/json-patch+json")
        .body(ops.to_string())
        .send()
        .await
        .expect("patch");
    assert_eq!(response.status().as_u16(), 200);
    server.stop().await;
}

#[tokio::test]
async fn arrays_where_the_status_has_objects_are_a_400() {
    let server = TestServer::start().await;
    for status in [
        serde_json::json!([]),
        serde_json::json!({"mxReplicaStatuses": {"Worker": [1, 2]}}),
    ] {
        let mut job = new_job_value(NS, "arrays");
        job["status"] = status.clone();
        let response = server
            .http
            .post(server.collection_url(NS))
            .json(&job)
            .send()
            .await
            .expect("post");
        assert_eq!(response.status().as_u16(), 400, "{status}");
        let body: serde_json::Value = response.json().await.expect("json");
        assert!(
            body["message"]
                .as_str()
                .unwrap_or_default()
                .ends_with("must be an object"),
            "{body}"
        );
    }
    server.stop().await;
}

/// A method a path does not have is 405 `MethodNotAllowed` as a `Status`,
/// with the methods it has in `Allow`.
#[tokio::test]
async fn methods_a_path_lacks_are_a_405_status_with_allow() {
    let server = TestServer::start().await;
    let object = server.object_url(NS, "x");
    let collection = server.collection_url(NS);
    let cases = [
        (Method::POST, object.clone(), "GET, PUT, PATCH, DELETE"),
        (Method::PUT, collection.clone(), "GET, POST, DELETE"),
        (Method::OPTIONS, collection, "GET, POST, DELETE"),
        (Method::DELETE, format!("{}/version", server.url), "GET"),
        (Method::POST, format!("{}/apis", server.url), "GET"),
        (Method::PATCH, format!("{object}/log"), "GET"),
        (Method::POST, format!("{object}/status"), "GET, PUT, PATCH"),
        (
            Method::PUT,
            format!("{}/api/v1/namespaces/ns", server.url),
            "GET, DELETE",
        ),
        (
            Method::PUT,
            format!("{}/api/v1/namespaces", server.url),
            "GET, POST",
        ),
        (Method::DELETE, format!("{}/openapi/v2", server.url), "GET"),
    ];
    for (method, url, allow) in cases {
        let (code, headers, body) = send(&server, method.clone(), &url, Some(JSON), None).await;
        assert_eq!(code, 405, "{method} {url}: {body:#}");
        assert_eq!(body["kind"], "Status", "{method} {url}");
        assert_eq!(body["reason"], "MethodNotAllowed");
        assert_eq!(body["code"], 405);
        assert_eq!(
            headers.get("allow").and_then(|v| v.to_str().ok()),
            Some(allow),
            "{method} {url}"
        );
    }
    server.stop().await;
}

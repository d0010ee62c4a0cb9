//! Delete options sent in the body, as kubectl and client-go send them:
//! a dry run deletes nothing, preconditions protect what changed, a bad
//! body is refused before anything is deleted, and the choices that decide
//! how the job's replicas go are recorded on the object before it goes.

use futures::StreamExt;
use mxjob_client::types;
use mxjob_tests::{new_job, resource_version, TestServer};
use reqwest::header::CONTENT_TYPE;
use reqwest::Method;
use serde_json::{json, Value};

const NS: &str = "deletes";

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

/// The names and resourceVersions the namespace holds.
async fn stored(server: &TestServer) -> Vec<(String, String)> {
    let list = server
        .client
        .list_mxjobs()
        .namespace(NS)
        .send()
        .await
        .expect("list answers")
        .into_inner();
    list.items
        .iter()
        .map(|job| {
            (
                job.metadata.name.clone().unwrap_or_default(),
                resource_version(job),
            )
        })
        .collect()
}

/// A raw DELETE with a JSON body; the code and the body as JSON.
async fn delete_raw(server: &TestServer, url: &str, body: &[u8]) -> (u16, Value) {
    let response = server
        .http
        .request(Method::DELETE, url)
        .header(CONTENT_TYPE, "application/json")
        .body(body.to_vec())
        .send()
        .await
        .expect("the server answers");
    let code = response.status().as_u16();
    let bytes = response.bytes().await.expect("body");
    let body = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        panic!(
            "{code}: not JSON ({e}): {}",
            String::from_utf8_lossy(&bytes)
        )
    });
    (code, body)
}

fn options(value: Value) -> Vec<u8> {
    serde_json::to_vec(&value).expect("JSON encodes")
}

#[tokio::test]
async fn a_dry_run_in_the_body_deletes_nothing() {
    let server = TestServer::start().await;
    create(&server, "kept").await;
    let before = stored(&server).await;
    // What kubectl 1.37 sends for `delete --dry-run=server`.
    let body = options(json!({
        "kind": "DeleteOptions",
        "apiVersion": "meta.k8s.io/v1",
        "propagationPolicy": "Background",
        "dryRun": ["All"]
    }));
    let (code, answer) = delete_raw(&server, &server.object_url(NS, "kept"), &body).await;
    assert_eq!(code, 200, "{answer:#}");
    assert_eq!(answer["status"], "Success");
    assert_eq!(stored(&server).await, before);
    server.stop().await;
}

#[tokio::test]
async fn a_dry_run_collection_delete_in_the_body_deletes_nothing() {
    let server = TestServer::start().await;
    for name in ["one", "two", "three"] {
        create(&server, name).await;
    }
    let before = stored(&server).await;
    let body = options(json!({"dryRun": ["All"]}));
    let (code, answer) = delete_raw(&server, &server.collection_url(NS), &body).await;
    assert_eq!(code, 200, "{answer:#}");
    assert_eq!(answer["items"].as_array().map(Vec::len), Some(3));
    assert_eq!(stored(&server).await, before);
    server.stop().await;
}

#[tokio::test]
async fn the_generated_client_sends_delete_options_in_the_body() {
    let server = TestServer::start().await;
    create(&server, "client-kept").await;
    let before = stored(&server).await;
    let dry_run = types::IoK8sApimachineryPkgApisMetaV1DeleteOptions {
        dry_run: vec!["All".to_string()],
        ..Default::default()
    };
    let status = server
        .client
        .delete_mxjob()
        .namespace(NS)
        .name("client-kept")
        .body(dry_run)
        .send()
        .await
        .expect("a dry-run delete answers")
        .into_inner();
    assert_eq!(status.status.as_deref(), Some("Success"));
    assert_eq!(stored(&server).await, before);

    // A `null` body (what generated Go clients send) is no options.
    create(&server, "null-body").await;
    let (code, _) = delete_raw(&server, &server.object_url(NS, "null-body"), b"null").await;
    assert_eq!(code, 200);
    assert_eq!(stored(&server).await, before);

    // Without a body the client sends empty options: a real delete.
    server
        .client
        .delete_mxjob()
        .namespace(NS)
        .name("client-kept")
        .send()
        .await
        .expect("the delete answers");
    assert!(stored(&server).await.is_empty());
    server.stop().await;
}

#[tokio::test]
async fn preconditions_that_do_not_match_are_a_409_and_delete_nothing() {
    let server = TestServer::start().await;
    let job = create(&server, "guarded").await;
    let uid = job.metadata.uid.clone().expect("uid");
    let version = resource_version(&job);
    let before = stored(&server).await;
    let url = server.object_url(NS, "guarded");

    for (preconditions, says) in [
        (
            json!({"uid": "0e6c1f4e-0000-4000-8000-000000000000"}),
            "UID in precondition",
        ),
        (
            json!({"resourceVersion": "999999"}),
            "ResourceVersion in precondition",
        ),
    ] {
        let body = options(json!({"preconditions": preconditions}));
        let (code, answer) = delete_raw(&server, &url, &body).await;
        assert_eq!(code, 409, "{answer:#}");
        assert_eq!(answer["reason"], "Conflict");
        let message = answer["message"].as_str().unwrap_or_default();
        assert!(
            message.starts_with("Operation cannot be fulfilled on mxjobs.kubeflow.org \"guarded\": Precondition failed: ")
                && message.contains(says),
            "{message}"
        );
        assert_eq!(stored(&server).await, before);
    }

    // The collection delete checks every selected job before deleting any.
    let body = options(json!({"preconditions": {"uid": "not-this-one"}}));
    let (code, _) = delete_raw(&server, &server.collection_url(NS), &body).await;
    assert_eq!(code, 409);
    assert_eq!(stored(&server).await, before);

    let body = options(json!({"preconditions": {"uid": uid, "resourceVersion": version}}));
    let (code, answer) = delete_raw(&server, &url, &body).await;
    assert_eq!(code, 200, "{answer:#}");
    assert!(stored(&server).await.is_empty());
    server.stop().await;
}

#[tokio::test]
async fn bodies_that_are_not_delete_options_are_refused_and_delete_nothing() {
    let server = TestServer::start().await;
    create(&server, "kept").await;
    let before = stored(&server).await;
    let object = server.object_url(NS, "kept");
    let collection = server.collection_url(NS);
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)).into_bytes();
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("not JSON", b"{dryRun: All".to_vec(), 400),
        ("100 000 levels deep", deep, 400),
        ("an array", b"[]".to_vec(), 400),
        ("another kind", options(json!({"kind": "MXJob"})), 400),
        (
            "a wrong type",
            options(json!({"gracePeriodSeconds": "soon"})),
            400,
        ),
        (
            "an unknown policy",
            options(json!({"propagationPolicy": "Bogus"})),
            422,
        ),
        (
            "an unknown dry run",
            options(json!({"dryRun": ["Some"]})),
            422,
        ),
        (
            "both orphan options",
            options(json!({"orphanDependents": true, "propagationPolicy": "Orphan"})),
            422,
        ),
        (
            "a negative grace period",
            options(json!({"gracePeriodSeconds": -1})),
            422,
        ),
    ];
    for (what, body, expected) in cases {
        for url in [&object, &collection] {
            let (code, answer) = delete_raw(&server, url, &body).await;
            assert_eq!(code, expected, "{what} at {url}: {answer:#}");
            assert_eq!(answer["kind"], "Status", "{what}");
            assert_eq!(stored(&server).await, before, "{what} deleted something");
        }
    }
    let (_, answer) = delete_raw(
        &server,
        &object,
        &options(json!({"propagationPolicy": "Bogus"})),
    )
    .await;
    assert_eq!(
        answer["message"],
        "DeleteOptions.meta.k8s.io \"\" is invalid: propagationPolicy: Unsupported value: \
         \"Bogus\": supported values: \"Orphan\", \"Background\", \"Foreground\""
    );
    server.stop().await;
}

#[tokio::test]
async fn the_query_and_the_body_count_together_and_must_agree() {
    let server = TestServer::start().await;
    create(&server, "kept").await;
    let before = stored(&server).await;
    let url = server.object_url(NS, "kept");

    // A dry run in the query is not dropped because a body came along.
    let body = options(json!({"kind": "DeleteOptions", "apiVersion": "v1"}));
    let (code, _) = delete_raw(&server, &format!("{url}?dryRun=All"), &body).await;
    assert_eq!(code, 200);
    assert_eq!(stored(&server).await, before);

    let body = options(json!({"propagationPolicy": "Orphan"}));
    let (code, answer) = delete_raw(
        &server,
        &format!("{url}?propagationPolicy=Background"),
        &body,
    )
    .await;
    assert_eq!(code, 400, "{answer:#}");
    assert!(
        answer["message"]
            .as_str()
            .unwrap_or_default()
            .contains("propagationPolicy"),
        "{answer:#}"
    );
    assert_eq!(stored(&server).await, before);
    server.stop().await;
}

#[tokio::test]
async fn an_orphaning_delete_records_how_it_deletes_before_the_job_goes() {
    let server = TestServer::start().await;
    let job = create(&server, "orphaned").await;
    let watch = server
        .client
        .watch_mxjobs()
        .namespace(NS)
        .resource_version(resource_version(&job))
        .send()
        .await
        .expect("watch opens");
    let mut events = Box::pin(mxjob_client::watch_events(watch.into_inner()));

    let body = options(json!({"propagationPolicy": "Orphan", "gracePeriodSeconds": 7}));
    let (code, answer) = delete_raw(&server, &server.object_url(NS, "orphaned"), &body).await;
    assert_eq!(code, 200, "{answer:#}");
    assert!(stored(&server).await.is_empty());

    let mut seen = Vec::new();
    while seen.len() < 2 {
        let event = events
            .next()
            .await
            .expect("the watch goes on")
            .expect("events decode");
        seen.push(event);
    }
    let types: Vec<String> = seen.iter().map(|e| format!("{:?}", e.type_)).collect();
    assert_eq!(types, ["Modified", "Deleted"]);
    for event in &seen {
        let metadata = &event.object["metadata"];
        assert!(metadata["deletionTimestamp"].is_string(), "{metadata:#}");
        assert_eq!(metadata["deletionGracePeriodSeconds"], 7);
        assert_eq!(metadata["finalizers"], json!(["orphan"]));
    }

    server.stop().await;
}

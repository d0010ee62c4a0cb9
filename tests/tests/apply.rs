//! Server-side apply and managed fields, as kube-apiserver keeps them: an
//! apply creates or merges, records who owns what, refuses to take a field
//! from another manager unless forced, removes what its manager stops
//! applying, and still follows the replace rules; every other write keeps
//! an `Update` entry for its manager.

use mxjob_tests::{new_job_value, TestServer};
use reqwest::header::{CONTENT_TYPE, USER_AGENT};
use serde_json::{json, Value};

const NS: &str = "apply";
const APPLY: &str = "application/apply-patch+yaml";

/// A raw apply of `body` (JSON or YAML) with `query`; the code and body.
async fn apply_raw(server: &TestServer, name: &str, query: &str, body: &[u8]) -> (u16, Value) {
    let response = server
        .http
        .patch(format!("{}{query}", server.object_url(NS, name)))
        .header(CONTENT_TYPE, APPLY)
        .body(body.to_vec())
        .send()
        .await
        .expect("the server answers");
    let code = response.status().as_u16();
    (code, response.json().await.expect("a JSON answer"))
}

async fn apply(server: &TestServer, name: &str, manager: &str, config: &Value) -> (u16, Value) {
    let body = serde_json::to_vec(config).expect("json");
    apply_raw(server, name, &format!("?fieldManager={manager}"), &body).await
}

/// An applied configuration: the seed's job named `name`, with `ttl`.
fn config(name: &str, ttl: i64) -> Value {
    let mut job = new_job_value(NS, name);
    job["spec"]["ttlSecondsAfterFinished"] = json!(ttl);
    job
}

fn managed_fields(object: &Value) -> Vec<Value> {
    object["metadata"]["managedFields"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn entry<'a>(entries: &'a [Value], manager: &str, operation: &str) -> Option<&'a Value> {
    entries
        .iter()
        .find(|e| e["manager"] == manager && e["operation"] == operation)
}

#[tokio::test]
async fn an_apply_creates_the_job_and_owns_its_configuration() {
    let server = TestServer::start().await;
    let (code, created) = apply(&server, "applied", "gitops", &config("applied", 600)).await;
    assert_eq!(code, 201, "{created:#}");
    assert_eq!(created["spec"]["ttlSecondsAfterFinished"], 600);
    let entries = managed_fields(&created);
    assert_eq!(entries.len(), 1, "{entries:#?}");
    let owned = entry(&entries, "gitops", "Apply").expect("an Apply entry");
    assert_eq!(owned["apiVersion"], "kubeflow.org/v1");
    assert_eq!(owned["fieldsType"], "FieldsV1");
    assert!(owned["time"].is_string());
    let fields = &owned["fieldsV1"];
    assert_eq!(fields["f:spec"]["f:ttlSecondsAfterFinished"], json!({}));
    assert!(
        fields["f:spec"]["f:mxReplicaSpecs"]["f:Worker"]["f:template"]["f:spec"]["f:containers"]
            ["k:{\"name\":\"mxnet\"}"]
            .is_object()
    );
    assert!(
        fields["f:metadata"].get("f:name").is_none(),
        "identity is not owned"
    );

    // Reading it back gives every applied field.
    let read = server.read_value(NS, "applied").await;
    assert_eq!(read["spec"]["ttlSecondsAfterFinished"], 600);
    assert_eq!(
        read["metadata"]["managedFields"],
        created["metadata"]["managedFields"]
    );
    server.stop().await;
}

#[tokio::test]
async fn applying_the_same_configuration_again_writes_nothing() {
    let server = TestServer::start().await;
    let (_, first) = apply(&server, "same", "gitops", &config("same", 600)).await;
    let (code, second) = apply(&server, "same", "gitops", &config("same", 600)).await;
    assert_eq!(code, 200);
    assert_eq!(
        second["metadata"]["resourceVersion"],
        first["metadata"]["resourceVersion"]
    );
    assert_eq!(second, first);
    server.stop().await;
}

#[tokio::test]
async fn a_yaml_configuration_applies_like_its_json() {
    let server = TestServer::start().await;
    let yaml = "apiVersion: kubeflow.org/v1\nkind: MXJob\nmetadata:\n  name: yaml-job\n  labels:\n    team: vision\nspec:\n  jobMode: MXTrain\n  mxReplicaSpecs:\n    Scheduler:\n      template:\n        spec:\n          containers:\n          - name: mxnet\n            image: mxnet:1\n    Server:\n      template:\n        spec:\n          containers:\n          - name: mxnet\n            image: mxnet:1\n    Worker:\n      replicas: 2\n      template:\n        spec:\n          containers:\n          - name: mxnet\n            image: mxnet:1\n";
    let (code, created) =
        apply_raw(&server, "yaml-job", "?fieldManager=helm", yaml.as_bytes()).await;
    assert_eq!(code, 201, "{created:#}");
    assert_eq!(created["metadata"]["labels"]["team"], "vision");
    assert_eq!(created["spec"]["mxReplicaSpecs"]["Worker"]["replicas"], 2);
    let (code, refused) = apply_raw(
        &server,
        "yaml-job",
        "?fieldManager=helm",
        b"spec: [unclosed",
    )
    .await;
    assert_eq!(code, 400, "{refused:#}");
    server.stop().await;
}

#[tokio::test]
async fn a_field_another_manager_owns_conflicts_unless_forced() {
    let server = TestServer::start().await;
    let (code, _) = apply(&server, "shared", "alice", &config("shared", 600)).await;
    assert_eq!(code, 201);

    // Bob applies a different TTL: Alice owns it.
    let (code, conflict) = apply(&server, "shared", "bob", &config("shared", 60)).await;
    assert_eq!(code, 409, "{conflict:#}");
    assert_eq!(conflict["reason"], "Conflict");
    let message = conflict["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("Apply failed with 1 conflict: conflict with \"alice\"")
            && message.contains(".spec.ttlSecondsAfterFinished"),
        "{message}"
    );
    let causes = conflict["details"]["causes"].as_array().expect("causes");
    assert_eq!(causes.len(), 1);
    assert_eq!(causes[0]["reason"], "FieldManagerConflict");
    assert_eq!(causes[0]["field"], ".spec.ttlSecondsAfterFinished");

    // Forced, Bob takes the field and Alice no longer owns it.
    let body = serde_json::to_vec(&config("shared", 60)).expect("json");
    let (code, forced) = apply_raw(&server, "shared", "?fieldManager=bob&force=true", &body).await;
    assert_eq!(code, 200, "{forced:#}");
    assert_eq!(forced["spec"]["ttlSecondsAfterFinished"], 60);
    let entries = managed_fields(&forced);
    let bob = entry(&entries, "bob", "Apply").expect("bob applies");
    assert_eq!(
        bob["fieldsV1"]["f:spec"]["f:ttlSecondsAfterFinished"],
        json!({})
    );
    let alice = entry(&entries, "alice", "Apply").expect("alice still applies");
    assert!(alice["fieldsV1"]["f:spec"]
        .get("f:ttlSecondsAfterFinished")
        .is_none());
    server.stop().await;
}

#[tokio::test]
async fn managers_of_different_fields_never_conflict_and_each_keeps_its_own() {
    let server = TestServer::start().await;
    apply(&server, "split", "infra", &config("split", 600)).await;
    let labels = json!({
        "apiVersion": "kubeflow.org/v1",
        "kind": "MXJob",
        "metadata": {"name": "split", "labels": {"owner": "team-b"}}
    });
    let (code, merged) = apply(&server, "split", "labels-bot", &labels).await;
    assert_eq!(code, 200, "{merged:#}");
    assert_eq!(merged["metadata"]["labels"]["owner"], "team-b");
    assert_eq!(merged["spec"]["ttlSecondsAfterFinished"], 600);

    // The labels bot stops applying its label: it goes (nobody else owns it).
    let nothing = json!({
        "apiVersion": "kubeflow.org/v1",
        "kind": "MXJob",
        "metadata": {"name": "split"}
    });
    let (code, dropped) = apply(&server, "split", "labels-bot", &nothing).await;
    assert_eq!(code, 200, "{dropped:#}");
    assert!(
        dropped["metadata"]["labels"].get("owner").is_none(),
        "{dropped:#}"
    );
    assert_eq!(dropped["spec"]["ttlSecondsAfterFinished"], 600);
    server.stop().await;
}

#[tokio::test]
async fn an_apply_still_follows_the_replace_rules() {
    let server = TestServer::start().await;
    apply(&server, "rules", "gitops", &config("rules", 600)).await;
    let mut changed = config("rules", 600);
    changed["spec"]["mxReplicaSpecs"]["Worker"]["replicas"] = json!(5);
    let (code, refused) = apply(&server, "rules", "gitops", &changed).await;
    assert_eq!(code, 422, "{refused:#}");
    assert_eq!(refused["reason"], "Invalid");
    let causes = refused["details"]["causes"].as_array().expect("causes");
    assert!(
        causes
            .iter()
            .any(|c| c["field"] == "spec.mxReplicaSpecs.Worker.replicas"),
        "{causes:#?}"
    );
    server.stop().await;
}

/// A configuration with repeated items in a keyed list or a set is the
/// request's fault: a 400 in kube-apiserver's words (it answers 500), and
/// nothing is written.
#[tokio::test]
async fn a_configuration_with_repeated_list_items_is_a_400_and_writes_nothing() {
    let server = TestServer::start().await;
    let (code, created) = apply(&server, "repeated", "gitops", &config("repeated", 600)).await;
    assert_eq!(code, 201, "{created:#}");
    let mut repeated = config("repeated", 700);
    repeated["metadata"]["finalizers"] = json!(["", "a", ""]);
    let (code, refused) = apply(&server, "repeated", "gitops", &repeated).await;
    assert_eq!(code, 400, "{refused:#}");
    assert_eq!(refused["reason"], "BadRequest");
    let message = refused["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("failed to create typed patch object (")
            && message.contains(".metadata.finalizers: duplicate entries for key"),
        "{message}"
    );
    let stored: Value = server
        .http
        .get(server.object_url(NS, "repeated"))
        .send()
        .await
        .expect("the server answers")
        .json()
        .await
        .expect("a JSON answer");
    assert_eq!(stored["spec"]["ttlSecondsAfterFinished"], 600);
    assert_eq!(
        stored["metadata"]["resourceVersion"],
        created["metadata"]["resourceVersion"]
    );
    server.stop().await;
}

#[tokio::test]
async fn patch_options_are_checked_as_kubernetes_checks_them() {
    let server = TestServer::start().await;
    let body = serde_json::to_vec(&config("opts", 1)).expect("json");
    let (code, refused) = apply_raw(&server, "opts", "", &body).await;
    assert_eq!(code, 422, "{refused:#}");
    assert!(refused["message"]
        .as_str()
        .unwrap_or_default()
        .contains("fieldManager: Required value: is required for apply patch"));

    apply(&server, "opts", "gitops", &config("opts", 1)).await;
    let response = server
        .http
        .patch(format!("{}?force=true", server.object_url(NS, "opts")))
        .header(CONTENT_TYPE, "application/merge-patch+json")
        .body(r#"{"metadata":{"labels":{"a":"b"}}}"#)
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status().as_u16(), 422);
    let refused: Value = response.json().await.expect("json");
    assert!(refused["message"]
        .as_str()
        .unwrap_or_default()
        .contains("force: Forbidden: may not be specified for non-apply patch"));
    server.stop().await;
}

#[tokio::test]
async fn ordinary_writes_keep_an_update_entry_for_their_manager() {
    let server = TestServer::start().await;
    // Create without fieldManager: the manager is the User-Agent's product.
    let response = server
        .http
        .post(server.collection_url(NS))
        .header(
            USER_AGENT,
            "kubectl/v1.37.1 (linux/amd64) kubernetes/abcdef",
        )
        .json(&new_job_value(NS, "updated"))
        .send()
        .await
        .expect("create");
    assert_eq!(response.status().as_u16(), 201);
    let created: Value = response.json().await.expect("json");
    let entries = managed_fields(&created);
    let kubectl = entry(&entries, "kubectl", "Update").expect("kubectl's Update entry");
    assert!(kubectl["fieldsV1"]["f:spec"]["f:jobMode"].is_object());

    // A merge patch by another manager takes the field it changed.
    let response = server
        .http
        .patch(format!(
            "{}?fieldManager=tuner",
            server.object_url(NS, "updated")
        ))
        .header(CONTENT_TYPE, "application/merge-patch+json")
        .body(r#"{"spec":{"ttlSecondsAfterFinished":30}}"#)
        .send()
        .await
        .expect("patch");
    assert_eq!(response.status().as_u16(), 200);
    let patched: Value = response.json().await.expect("json");
    let entries = managed_fields(&patched);
    let tuner = entry(&entries, "tuner", "Update").expect("the tuner's Update entry");
    assert_eq!(
        tuner["fieldsV1"],
        json!({"f:spec": {"f:ttlSecondsAfterFinished": {}}})
    );
    server.stop().await;
}

/// Replaces `object` with `ttl` as the manager `tuner`.
async fn replace_as_tuner(
    server: &TestServer,
    url: &str,
    mut object: Value,
    ttl: i64,
) -> reqwest::Response {
    object["spec"]["ttlSecondsAfterFinished"] = json!(ttl);
    server
        .http
        .put(format!("{url}?fieldManager=tuner"))
        .json(&object)
        .send()
        .await
        .expect("replace")
}

/// [`replace_as_tuner`], answered 200: the answer and its managed fields,
/// the maker's and the tuner's.
async fn replaced_by_tuner(
    server: &TestServer,
    url: &str,
    object: Value,
    ttl: i64,
) -> (Value, Vec<Value>) {
    let response = replace_as_tuner(server, url, object, ttl).await;
    assert_eq!(response.status().as_u16(), 200);
    let answer: Value = response.json().await.expect("json");
    let entries = managed_fields(&answer);
    assert_eq!(entries.len(), 2, "{entries:?}");
    (answer, entries)
}

/// A client that replaces an object it read sends its managed fields back:
/// as read, or (read earlier) with older times. Either way the entries are
/// the stored ones, the times those sent, and only the writer's entry moves;
/// a time that is not a time is still refused.
#[tokio::test]
async fn managed_fields_sent_back_on_a_replace_keep_the_entries_and_the_times_sent() {
    let server = TestServer::start().await;
    let url = server.object_url(NS, "sent-back");
    let response = server
        .http
        .post(format!("{}?fieldManager=maker", server.collection_url(NS)))
        .json(&new_job_value(NS, "sent-back"))
        .send()
        .await
        .expect("create");
    assert_eq!(response.status().as_u16(), 201);
    let read = server.read_value(NS, "sent-back").await;

    // As read. The tuner takes the field it changes from the maker.
    let (first, entries) = replaced_by_tuner(&server, &url, read.clone(), 30).await;
    let maker = entry(&entries, "maker", "Update").expect("the maker's entry");
    let read_entries = managed_fields(&read);
    let maker_read = entry(&read_entries, "maker", "Update").expect("read");
    assert_eq!(maker["time"], maker_read["time"]);
    assert!(maker_read["fieldsV1"]["f:spec"]["f:ttlSecondsAfterFinished"].is_object());
    assert!(maker["fieldsV1"]["f:spec"]["f:ttlSecondsAfterFinished"].is_null());
    assert_eq!(
        entry(&entries, "tuner", "Update").map(|e| &e["fieldsV1"]),
        Some(&json!({"f:spec": {"f:ttlSecondsAfterFinished": {}}}))
    );

    // Read earlier: the stored entries but for their times.
    let mut earlier = read;
    earlier["metadata"]["resourceVersion"] = first["metadata"]["resourceVersion"].clone();
    earlier["metadata"]["managedFields"] = first["metadata"]["managedFields"].clone();
    for entry in earlier["metadata"]["managedFields"]
        .as_array_mut()
        .expect("entries")
    {
        entry["time"] = json!("2020-01-02T03:04:05Z");
    }
    let (second, entries) = replaced_by_tuner(&server, &url, earlier.clone(), 40).await;
    let maker = entry(&entries, "maker", "Update").expect("the maker's entry");
    assert_eq!(
        maker["time"],
        json!("2020-01-02T03:04:05Z"),
        "the time sent"
    );
    let first_entries = managed_fields(&first);
    let maker_first = entry(&first_entries, "maker", "Update").expect("first");
    assert_eq!(maker["fieldsV1"], maker_first["fieldsV1"]);
    let tuner = entry(&entries, "tuner", "Update").expect("the tuner's entry");
    assert_ne!(
        tuner["time"],
        json!("2020-01-02T03:04:05Z"),
        "the writer's time moves"
    );
    assert_eq!(second["spec"]["ttlSecondsAfterFinished"], json!(40));

    // Not a time.
    let mut broken = earlier;
    broken["metadata"]["resourceVersion"] = second["metadata"]["resourceVersion"].clone();
    broken["metadata"]["managedFields"][0]["time"] = json!("yesterday");
    let response = replace_as_tuner(&server, &url, broken, 50).await;
    assert_eq!(response.status().as_u16(), 400);

    // Read earlier by another manager that changes the tuner's field: the
    // field moves to it, and the tuner's entry, left empty, goes.
    let mut other = second;
    for entry in other["metadata"]["managedFields"]
        .as_array_mut()
        .expect("entries")
    {
        entry["time"] = json!("2020-01-02T03:04:05Z");
    }
    other["spec"]["ttlSecondsAfterFinished"] = json!(60);
    let response = server
        .http
        .put(format!("{url}?fieldManager=maker"))
        .json(&other)
        .send()
        .await
        .expect("replace");
    assert_eq!(response.status().as_u16(), 200);
    let third: Value = response.json().await.expect("json");
    let entries = managed_fields(&third);
    assert_eq!(entry(&entries, "tuner", "Update"), None, "{entries:?}");
    let maker = entry(&entries, "maker", "Update").expect("the maker's entry");
    assert!(maker["fieldsV1"]["f:spec"]["f:ttlSecondsAfterFinished"].is_object());
    assert_ne!(
        maker["time"],
        json!("2020-01-02T03:04:05Z"),
        "it took a field"
    );
    server.stop().await;
}

//! Replace, as the seed documents it and as the Kubernetes API server does
//! it for a custom resource (name and namespace checks, the uid
//! precondition, resourceVersion as compare-and-swap, immutable fields,
//! generation, no-op writes), driven through the generated client.

use std::collections::HashSet;
use std::num::NonZeroU64;
use std::sync::Arc;

use mxjob_client::types;
use mxjob_tests::{
    from_value, new_job, new_job_value, resource_version, seed_value, status_of, to_value,
    TestServer,
};
use serde_json::{json, Value};

const NS: &str = "kube-test";

async fn create(server: &TestServer, job: types::MxJob) -> types::MxJob {
    server
        .client
        .create_mxjob()
        .namespace(NS)
        .body(job)
        .send()
        .await
        .expect("create succeeds")
        .into_inner()
}

async fn read(server: &TestServer, name: &str) -> types::MxJob {
    server
        .client
        .read_mxjob()
        .namespace(NS)
        .name(name)
        .send()
        .await
        .expect("read succeeds")
        .into_inner()
}

async fn replace(
    server: &TestServer,
    name: &str,
    job: types::MxJob,
) -> Result<mxjob_client::ResponseValue<types::MxJob>, mxjob_client::Error<types::Status>> {
    server
        .client
        .replace_mxjob()
        .namespace(NS)
        .name(name)
        .body(job)
        .send()
        .await
}

#[tokio::test]
async fn seed_replace_sets_ttl_and_bumps_generation() {
    let server = TestServer::start().await;
    // The job as it stood before the seed's change: no TTL yet.
    let mut original = new_job_value(NS, "mxnet-job");
    original["spec"]
        .as_object_mut()
        .map(|s| s.remove("ttlSecondsAfterFinished"));
    let created = create(&server, from_value(original)).await;
    assert_eq!(created.metadata.generation, Some(1));
    assert_eq!(created.spec.ttl_seconds_after_finished, None);

    // The seed's PUT body, carrying this server's uid and resourceVersion
    // instead of the ones its cluster had.
    let mut body = seed_value();
    body["metadata"]["resourceVersion"] = json!(resource_version(&created));
    body["metadata"]["uid"] = json!(created.metadata.uid.clone());
    let replaced = replace(&server, "mxnet-job", from_value(body))
        .await
        .expect("200");
    assert_eq!(replaced.status().as_u16(), 200);
    let replaced = replaced.into_inner();

    assert_eq!(replaced.spec.ttl_seconds_after_finished, Some(10000));
    assert_eq!(replaced.metadata.generation, Some(2));
    assert_eq!(replaced.metadata.uid, created.metadata.uid);
    assert_eq!(
        replaced.metadata.creation_timestamp,
        created.metadata.creation_timestamp
    );
    assert_ne!(resource_version(&replaced), resource_version(&created));
    assert_eq!(
        replaced.metadata.self_link.as_deref(),
        Some("/apis/kubeflow.org/v1/namespaces/kube-test/mxjobs/mxnet-job")
    );
    // The seed's status is the controller's business; the body's is ignored.
    assert_eq!(to_value(&replaced)["status"], json!({}));
    assert_eq!(read(&server, "mxnet-job").await, replaced);
    server.stop().await;
}

/// Each replaceable field, changed alone, is accepted; only spec changes
/// move the generation.
#[tokio::test]
async fn each_replaceable_field_can_change_alone() {
    let server = TestServer::start().await;
    let mut current = create(&server, new_job(NS, "alone")).await;
    type Edit = fn(&mut types::MxJob);
    let edits: [(&str, Edit, bool); 5] = [
        (
            "metadata.labels",
            |j| {
                j.metadata.labels.insert("team".into(), "vision".into());
            },
            false,
        ),
        (
            "metadata.annotations",
            |j| {
                j.metadata
                    .annotations
                    .insert("note".into(), "first run".into());
            },
            false,
        ),
        (
            "spec.activeDeadlineSeconds",
            |j| j.spec.active_deadline_seconds = NonZeroU64::new(3600),
            true,
        ),
        (
            "spec.ttlSecondsAfterFinished",
            |j| j.spec.ttl_seconds_after_finished = Some(60),
            true,
        ),
        (
            "spec.cleanPodPolicy",
            |j| j.spec.clean_pod_policy = Some(types::CleanPodPolicy::All),
            true,
        ),
    ];
    for (field, edit, spec_change) in edits {
        let mut changed = current.clone();
        edit(&mut changed);
        let replaced = replace(&server, "alone", changed.clone())
            .await
            .unwrap_or_else(|e| panic!("changing {field} alone is allowed: {e:?}"))
            .into_inner();
        let expected_generation = current
            .metadata
            .generation
            .map(|g| g + i64::from(spec_change));
        assert_eq!(replaced.metadata.generation, expected_generation, "{field}");
        assert_eq!(replaced.spec, changed.spec, "{field}");
        assert_eq!(replaced.metadata.labels, changed.metadata.labels, "{field}");
        assert_eq!(
            replaced.metadata.annotations, changed.metadata.annotations,
            "{field}"
        );
        assert_ne!(
            resource_version(&replaced),
            resource_version(&current),
            "{field}"
        );
        current = replaced;
    }
    server.stop().await;
}

/// Every change outside the five replaceable fields is refused with 422,
/// one cause per field path, and the stored object stays as it was.
#[tokio::test]
async fn non_replaceable_changes_are_refused_with_their_field_paths() {
    let server = TestServer::start().await;
    let created = create(&server, new_job(NS, "frozen")).await;
    let base = to_value(&created);
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (
            json!({"spec": {"backoffLimit": 3}}),
            vec!["spec.backoffLimit"],
        ),
        (
            json!({"spec": {"mxReplicaSpecs": {"Worker": {"replicas": 2}}}}),
            vec!["spec.mxReplicaSpecs.Worker.replicas"],
        ),
        (
            json!({"spec": {"mxReplicaSpecs": {"Server": {"restartPolicy": "OnFailure"}}}}),
            vec!["spec.mxReplicaSpecs.Server.restartPolicy"],
        ),
        (
            json!({"spec": {"mxReplicaSpecs": {"Worker": {"replicas": 3}, "Server": {"replicas": 2}}}}),
            vec![
                "spec.mxReplicaSpecs.Server.replicas",
                "spec.mxReplicaSpecs.Worker.replicas",
            ],
        ),
        (
            json!({"metadata": {"ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": "8c5e2a4e-0000-4000-8000-000000000001"}]}}),
            vec!["metadata.ownerReferences"],
        ),
    ];
    for (patch, fields) in cases {
        let mut body = base.clone();
        merge(&mut body, &patch);
        let (code, status) = status_of(replace(&server, "frozen", from_value(body)).await);
        assert_eq!(code, 422, "{patch}");
        assert_eq!(status.reason.as_deref(), Some("Invalid"));
        let causes = status.details.expect("details").causes;
        let got: Vec<&str> = causes.iter().filter_map(|c| c.field.as_deref()).collect();
        assert_eq!(got, fields, "{patch}");
        for cause in &causes {
            assert_eq!(cause.reason.as_deref(), Some("FieldValueInvalid"));
            assert!(cause
                .message
                .as_deref()
                .unwrap_or("")
                .contains("field is immutable"));
        }
        assert!(status
            .message
            .as_deref()
            .unwrap_or("")
            .starts_with("MXJob.kubeflow.org \"frozen\" is invalid: "));
    }
    // An image change inside the pod template is reported where it differs.
    let mut body = base.clone();
    body["spec"]["mxReplicaSpecs"]["Worker"]["template"]["spec"]["containers"][0]["image"] =
        json!("mxnet:other");
    let (code, status) = status_of(replace(&server, "frozen", from_value(body)).await);
    assert_eq!(code, 422);
    let fields: Vec<String> = status
        .details
        .expect("details")
        .causes
        .into_iter()
        .filter_map(|c| c.field)
        .collect();
    assert_eq!(
        fields,
        vec!["spec.mxReplicaSpecs.Worker.template.spec.containers"]
    );

    assert_eq!(read(&server, "frozen").await, created);
    server.stop().await;
}

fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                merge(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (t, p) => *t = p.clone(),
    }
}

#[tokio::test]
async fn stale_resource_version_is_a_conflict() {
    let server = TestServer::start().await;
    let created = create(&server, new_job(NS, "stale")).await;
    let mut first = created.clone();
    first.metadata.labels.insert("round".into(), "1".into());
    replace(&server, "stale", first)
        .await
        .expect("first replace wins");

    let mut second = created.clone();
    second.metadata.labels.insert("round".into(), "2".into());
    let (code, status) = status_of(replace(&server, "stale", second).await);
    assert_eq!(code, 409);
    assert_eq!(status.reason.as_deref(), Some("Conflict"));
    assert_eq!(
        status.message.as_deref(),
        Some(
            "Operation cannot be fulfilled on mxjobs.kubeflow.org \"stale\": the object has \
             been modified; please apply your changes to the latest version and try again"
        )
    );
    assert_eq!(
        read(&server, "stale")
            .await
            .metadata
            .labels
            .get("round")
            .map(String::as_str),
        Some("1")
    );
    server.stop().await;
}

#[tokio::test]
async fn missing_resource_version_is_invalid() {
    let server = TestServer::start().await;
    let mut job = create(&server, new_job(NS, "norv")).await;
    job.metadata.resource_version = None;
    let (code, status) = status_of(replace(&server, "norv", job).await);
    assert_eq!(code, 422);
    assert_eq!(
        status.message.as_deref(),
        Some(
            "MXJob.kubeflow.org \"norv\" is invalid: metadata.resourceVersion: Invalid value: 0: \
             must be specified for an update"
        )
    );
    server.stop().await;
}

#[tokio::test]
async fn name_or_namespace_mismatch_is_a_bad_request() {
    let server = TestServer::start().await;
    let created = create(&server, new_job(NS, "named")).await;

    let mut renamed = created.clone();
    renamed.metadata.name = Some("other".into());
    let (code, status) = status_of(replace(&server, "named", renamed).await);
    assert_eq!(code, 400);
    assert_eq!(
        status.message.as_deref(),
        Some("the name of the object (other) does not match the name on the URL (named)")
    );

    let mut moved = created.clone();
    moved.metadata.namespace = Some("elsewhere".into());
    let (code, status) = status_of(replace(&server, "named", moved).await);
    assert_eq!(code, 400);
    assert_eq!(
        status.message.as_deref(),
        Some(
            "the namespace of the provided object does not match the namespace sent on the request"
        )
    );

    // An empty namespace in the body is taken from the URL.
    let mut unset = created.clone();
    unset.metadata.namespace = None;
    unset.metadata.labels.insert("ok".into(), "yes".into());
    let replaced = replace(&server, "named", unset)
        .await
        .expect("namespace defaults")
        .into_inner();
    assert_eq!(replaced.metadata.namespace.as_deref(), Some(NS));
    server.stop().await;
}

#[tokio::test]
async fn replace_never_creates() {
    let server = TestServer::start().await;
    let mut job = new_job(NS, "ghost");
    job.metadata.resource_version = Some("1".into());
    let (code, status) = status_of(replace(&server, "ghost", job).await);
    assert_eq!(code, 404);
    assert_eq!(
        status.message.as_deref(),
        Some("mxjobs.kubeflow.org \"ghost\" not found")
    );
    let details = status.details.expect("details");
    assert_eq!(details.name.as_deref(), Some("ghost"));
    assert_eq!(details.group.as_deref(), Some("kubeflow.org"));
    assert_eq!(details.kind.as_deref(), Some("mxjobs"));
    server.stop().await;
}

#[tokio::test]
async fn uid_mismatch_is_a_conflict() {
    let server = TestServer::start().await;
    let mut job = create(&server, new_job(NS, "uid")).await;
    job.metadata.uid = Some("c82e664f-b1b1-11e9-b310-b44326d0c915".into());
    let (code, status) = status_of(replace(&server, "uid", job).await);
    assert_eq!(code, 409);
    assert!(status
        .message
        .as_deref()
        .unwrap_or("")
        .contains("Precondition failed: UID"));
    server.stop().await;
}

#[tokio::test]
async fn server_owned_metadata_and_status_come_from_storage() {
    let server = TestServer::start().await;
    let created = create(&server, new_job(NS, "owned")).await;
    let mut body = to_value(&created);
    body["metadata"]["generation"] = json!(99);
    body["metadata"]["creationTimestamp"] = json!("2001-01-01T00:00:00Z");
    body["metadata"]["selfLink"] = json!("/somewhere/else");
    body["metadata"]["labels"] = json!({"changed": "yes"});
    body["status"] = json!({"conditions": [{"type": "Succeeded", "status": "True"}]});
    let replaced = replace(&server, "owned", from_value(body))
        .await
        .expect("200")
        .into_inner();
    assert_eq!(replaced.metadata.generation, Some(1));
    assert_eq!(
        replaced.metadata.creation_timestamp,
        created.metadata.creation_timestamp
    );
    assert_eq!(replaced.metadata.self_link, created.metadata.self_link);
    assert_eq!(to_value(&replaced)["status"], json!({}));
    server.stop().await;
}

#[tokio::test]
async fn no_op_replace_keeps_resource_version_and_writes_nothing() {
    let server = TestServer::start().await;
    let created = create(&server, new_job(NS, "same")).await;
    let before = list_version(&server).await;
    let replaced = replace(&server, "same", created.clone())
        .await
        .expect("200")
        .into_inner();
    assert_eq!(replaced, created);
    assert_eq!(
        list_version(&server).await,
        before,
        "the store revision did not move"
    );
    server.stop().await;
}

async fn list_version(server: &TestServer) -> String {
    let list = server
        .client
        .list_mxjobs()
        .namespace(NS)
        .send()
        .await
        .expect("list")
        .into_inner();
    list.metadata
        .resource_version
        .expect("a list has a resourceVersion")
}

#[tokio::test]
async fn dry_run_create_stores_nothing() {
    let server = TestServer::start().await;
    let dry = server
        .client
        .create_mxjob()
        .namespace(NS)
        .dry_run(types::DryRun::All)
        .body(new_job(NS, "dry"))
        .send()
        .await
        .expect("dry-run create answers");
    assert_eq!(dry.status().as_u16(), 201);
    assert_eq!(dry.into_inner().metadata.name.as_deref(), Some("dry"));
    let (code, _) = status_of(
        server
            .client
            .read_mxjob()
            .namespace(NS)
            .name("dry")
            .send()
            .await,
    );
    assert_eq!(code, 404, "a dry-run create stores nothing");
    server.stop().await;
}

#[tokio::test]
async fn dry_run_replace_and_delete_store_nothing() {
    let server = TestServer::start().await;
    let created = create(&server, new_job(NS, "dry")).await;
    let mut changed = created.clone();
    changed.spec.ttl_seconds_after_finished = Some(5);
    let answered = server
        .client
        .replace_mxjob()
        .namespace(NS)
        .name("dry")
        .dry_run(types::DryRun::All)
        .body(changed)
        .send()
        .await
        .expect("dry-run replace answers")
        .into_inner();
    assert_eq!(answered.spec.ttl_seconds_after_finished, Some(5));
    assert_eq!(answered.metadata.generation, Some(2));
    assert_eq!(
        read(&server, "dry").await,
        created,
        "a dry-run replace stores nothing"
    );

    server
        .client
        .delete_mxjob()
        .namespace(NS)
        .name("dry")
        .dry_run(types::DryRun::All)
        .send()
        .await
        .expect("dry-run delete answers");
    assert_eq!(
        read(&server, "dry").await,
        created,
        "a dry-run delete deletes nothing"
    );
    server.stop().await;
}

#[tokio::test]
async fn pretty_output_is_indented_and_default_is_compact() {
    let server = TestServer::start().await;
    create(&server, new_job(NS, "pretty")).await;
    let url = server.object_url(NS, "pretty");
    let pretty = server
        .http
        .get(format!("{url}?pretty=true"))
        .send()
        .await
        .expect("get");
    let pretty = pretty.text().await.expect("body");
    assert!(
        pretty.starts_with("{\n  \"apiVersion\": \"kubeflow.org/v1\",\n"),
        "{pretty}"
    );
    let compact = server
        .http
        .get(&url)
        .send()
        .await
        .expect("get")
        .text()
        .await
        .expect("body");
    assert!(
        compact.starts_with("{\"apiVersion\":\"kubeflow.org/v1\","),
        "{compact}"
    );
    assert_eq!(
        serde_json::from_str::<Value>(&pretty).expect("json"),
        serde_json::from_str::<Value>(&compact).expect("json")
    );
    server.stop().await;
}

/// Sixteen replaces from one resourceVersion: exactly one wins, the rest
/// are told they are stale, and the stored object is the winner's.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_replaces_from_one_version_have_exactly_one_winner() {
    let server = Arc::new(TestServer::start().await);
    let created = create(&server, new_job(NS, "race")).await;
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let server = Arc::clone(&server);
            let mut job = created.clone();
            job.metadata.labels.insert("writer".into(), i.to_string());
            job.spec.ttl_seconds_after_finished = Some(i);
            tokio::spawn(async move {
                server
                    .client
                    .replace_mxjob()
                    .namespace(NS)
                    .name("race")
                    .body(job)
                    .send()
                    .await
            })
        })
        .collect();
    let mut winners = Vec::new();
    let mut conflicts = 0;
    for task in tasks {
        match task.await.expect("task runs") {
            Ok(response) => winners.push(response.into_inner()),
            Err(error) => {
                let (code, status) = status_of::<types::MxJob>(Err(error));
                assert_eq!((code, status.reason.as_deref()), (409, Some("Conflict")));
                conflicts += 1;
            }
        }
    }
    assert_eq!(winners.len(), 1, "exactly one replace wins");
    assert_eq!(conflicts, 15);
    assert_eq!(read(&server, "race").await, winners[0]);
    let server = Arc::into_inner(server).expect("tasks are done");
    server.stop().await;
}

#[tokio::test]
async fn merge_patch_through_the_client_changes_a_label() {
    let server = TestServer::start().await;
    let created = create(&server, new_job(NS, "patched")).await;
    let patch: serde_json::Map<String, Value> =
        serde_json::from_value(json!({"metadata": {"labels": {"stage": "tuning"}}, "spec": {"ttlSecondsAfterFinished": 30}}))
            .expect("object");
    let patched = server
        .client
        .patch_mxjob()
        .namespace(NS)
        .name("patched")
        .body(types::MxJobPatch::Object(patch))
        .send()
        .await
        .expect("merge patch applies")
        .into_inner();
    assert_eq!(
        patched.metadata.labels.get("stage").map(String::as_str),
        Some("tuning")
    );
    assert_eq!(patched.spec.ttl_seconds_after_finished, Some(30));
    assert_eq!(patched.metadata.generation, Some(2));
    assert_ne!(resource_version(&patched), resource_version(&created));
    server.stop().await;
}

#[tokio::test]
async fn merge_and_json_patch_media_types_are_honoured() {
    let server = TestServer::start().await;
    create(&server, new_job(NS, "media")).await;
    let merge =
        json!({"metadata": {"annotations": {"a": "1"}}, "spec": {"cleanPodPolicy": "None"}});
    let merged = server
        .client
        .patch_mxjob_as(NS, "media", mxjob_client::MERGE_PATCH, &merge)
        .await
        .expect("merge patch applies")
        .into_inner();
    assert_eq!(
        merged.metadata.annotations.get("a").map(String::as_str),
        Some("1")
    );
    assert_eq!(
        merged.spec.clean_pod_policy,
        Some(types::CleanPodPolicy::None)
    );

    let ops = json!([
        {"op": "test", "path": "/spec/cleanPodPolicy", "value": "None"},
        {"op": "add", "path": "/metadata/labels", "value": {"via": "json-patch"}},
        {"op": "remove", "path": "/metadata/annotations/a"}
    ]);
    let patched = server
        .client
        .patch_mxjob_as(NS, "media", mxjob_client::JSON_PATCH, &ops)
        .await
        .expect("JSON patch applies")
        .into_inner();
    assert_eq!(
        patched.metadata.labels.get("via").map(String::as_str),
        Some("json-patch")
    );
    assert!(!patched.metadata.annotations.contains_key("a"));

    // A patch naming a stale resourceVersion is a precondition that fails.
    let stale =
        json!({"metadata": {"resourceVersion": resource_version(&merged), "labels": {"x": "y"}}});
    let (code, status) = status_of(
        server
            .client
            .patch_mxjob_as(NS, "media", mxjob_client::MERGE_PATCH, &stale)
            .await,
    );
    assert_eq!((code, status.reason.as_deref()), (409, Some("Conflict")));
    server.stop().await;
}

#[tokio::test]
async fn delete_answers_a_success_status_and_removes_the_object() {
    let server = TestServer::start().await;
    let created = create(&server, new_job(NS, "doomed")).await;
    let status = server
        .client
        .delete_mxjob()
        .namespace(NS)
        .name("doomed")
        .send()
        .await
        .expect("delete")
        .into_inner();
    assert_eq!(status.status.as_deref(), Some("Success"));
    let details = status.details.expect("details");
    assert_eq!(details.name.as_deref(), Some("doomed"));
    assert_eq!(details.group.as_deref(), Some("kubeflow.org"));
    assert_eq!(details.kind.as_deref(), Some("mxjobs"));
    assert_eq!(details.uid, created.metadata.uid);
    let (code, _) = status_of(
        server
            .client
            .read_mxjob()
            .namespace(NS)
            .name("doomed")
            .send()
            .await,
    );
    assert_eq!(code, 404);
    server.stop().await;
}

#[tokio::test]
async fn delete_collection_returns_what_it_deleted_and_spares_other_namespaces() {
    let server = TestServer::start().await;
    for name in ["a", "b", "c"] {
        create(&server, new_job(NS, name)).await;
    }
    server
        .client
        .create_mxjob()
        .namespace("other")
        .body(new_job("other", "kept"))
        .send()
        .await
        .expect("create in other namespace");
    let deleted = server
        .client
        .delete_mxjob_collection()
        .namespace(NS)
        .send()
        .await
        .expect("delete collection")
        .into_inner();
    let names: HashSet<String> = deleted
        .items
        .iter()
        .filter_map(|j| j.metadata.name.clone())
        .collect();
    assert_eq!(
        names,
        ["a", "b", "c"].into_iter().map(String::from).collect()
    );
    assert_eq!(deleted.kind, "MXJobList");
    let left = server
        .client
        .list_mxjobs()
        .namespace(NS)
        .send()
        .await
        .expect("list")
        .into_inner();
    assert!(left.items.is_empty());
    let other = server
        .client
        .list_mxjobs()
        .namespace("other")
        .send()
        .await
        .expect("list")
        .into_inner();
    assert_eq!(other.items.len(), 1);
    server.stop().await;
}

#[tokio::test]
async fn list_is_ordered_by_name_and_read_at_the_store_revision() {
    let server = TestServer::start().await;
    for name in ["zeta", "alpha", "mid"] {
        create(&server, new_job(NS, name)).await;
    }
    let list = server
        .client
        .list_mxjobs()
        .namespace(NS)
        .send()
        .await
        .expect("list")
        .into_inner();
    let names: Vec<&str> = list
        .items
        .iter()
        .filter_map(|j| j.metadata.name.as_deref())
        .collect();
    assert_eq!(names, vec!["alpha", "mid", "zeta"]);
    let newest = list
        .items
        .iter()
        .map(|j| resource_version(j).parse::<u64>().expect("decimal"))
        .max();
    let at: u64 = list
        .metadata
        .resource_version
        .expect("rv")
        .parse()
        .expect("decimal");
    assert_eq!(Some(at), newest);
    assert_eq!(list.api_version, "kubeflow.org/v1");
    server.stop().await;
}

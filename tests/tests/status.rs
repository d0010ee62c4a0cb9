//! The `status` subresource: how a controller reports progress.

use mxjob_client::types;
use mxjob_tests::{from_value, new_job, resource_version, status_of, to_value, TestServer};
use serde_json::json;

const NS: &str = "status";

async fn create(server: &TestServer, name: &str) -> types::MxJob {
    server
        .client
        .create_mxjob()
        .namespace(NS)
        .body(new_job(NS, name))
        .send()
        .await
        .expect("create")
        .into_inner()
}

fn running_status() -> serde_json::Value {
    json!({
        "conditions": [
            {"type": "Created", "status": "True", "reason": "MXJobCreated", "message": "MXJob s is created.",
             "lastUpdateTime": "2019-07-29T03:34:33Z", "lastTransitionTime": "2019-07-29T03:34:33Z"},
            {"type": "Running", "status": "True", "reason": "MXJobRunning", "message": "MXJob s is running.",
             "lastUpdateTime": "2019-07-29T03:35:22Z", "lastTransitionTime": "2019-07-29T03:34:33Z"}
        ],
        "mxReplicaStatuses": {"Scheduler": {"active": 1}, "Server": {"active": 1}, "Worker": {"active": 1}},
        "startTime": "2019-07-29T03:34:33Z"
    })
}

#[tokio::test]
async fn replacing_status_changes_only_the_status() {
    let server = TestServer::start().await;
    let created = create(&server, "s").await;
    let mut body = to_value(&created);
    body["status"] = running_status();
    body["spec"]["backoffLimit"] = json!(7);
    body["metadata"]["labels"] = json!({"ignored": "yes"});
    let updated = server
        .client
        .replace_mxjob_status()
        .namespace(NS)
        .name("s")
        .body(from_value(body))
        .send()
        .await
        .expect("status replace")
        .into_inner();
    assert_eq!(to_value(&updated)["status"], running_status());
    assert_eq!(
        updated.spec, created.spec,
        "the spec in the body is ignored"
    );
    assert!(
        updated.metadata.labels.is_empty(),
        "metadata in the body is ignored"
    );
    assert_eq!(
        updated.metadata.generation,
        Some(1),
        "status does not move the generation"
    );
    assert_ne!(resource_version(&updated), resource_version(&created));
    let read = server
        .client
        .read_mxjob_status()
        .namespace(NS)
        .name("s")
        .send()
        .await
        .expect("status read")
        .into_inner();
    assert_eq!(read, updated);
    server.stop().await;
}

#[tokio::test]
async fn status_replace_from_a_stale_version_conflicts() {
    let server = TestServer::start().await;
    let created = create(&server, "s").await;
    let mut body = to_value(&created);
    body["status"] = running_status();
    server
        .client
        .replace_mxjob_status()
        .namespace(NS)
        .name("s")
        .body(from_value(body.clone()))
        .send()
        .await
        .expect("first");
    body["status"]["conditions"][1]["type"] = json!("Succeeded");
    let (code, status) = status_of(
        server
            .client
            .replace_mxjob_status()
            .namespace(NS)
            .name("s")
            .body(from_value(body))
            .send()
            .await,
    );
    assert_eq!((code, status.reason.as_deref()), (409, Some("Conflict")));
    server.stop().await;
}

#[tokio::test]
async fn status_merge_patch_sets_a_condition_and_keeps_the_spec() {
    let server = TestServer::start().await;
    let created = create(&server, "s").await;
    let patch = json!({"status": {"conditions": [{"type": "Succeeded", "status": "True"}]}, "spec": {"backoffLimit": 9}});
    let response = server
        .http
        .patch(format!("{}/status", server.object_url(NS, "s")))
        .header("content-type", "application/merge-patch+json")
        .body(patch.to_string())
        .send()
        .await
        .expect("patch");
    assert_eq!(response.status().as_u16(), 200);
    let patched: serde_json::Value = response.json().await.expect("json");
    assert_eq!(patched["status"]["conditions"][0]["type"], "Succeeded");
    assert_eq!(patched["spec"], to_value(&created)["spec"]);
    server.stop().await;
}

#[tokio::test]
async fn unsupported_condition_values_in_a_status_are_invalid() {
    let server = TestServer::start().await;
    create(&server, "s").await;
    let patch = json!({"status": {"conditions": [{"type": "Exploded", "status": "Maybe"}], "mxReplicaStatuses": {"Worker": {"failed": -1}}}});
    let response = server
        .http
        .patch(format!("{}/status", server.object_url(NS, "s")))
        .header("content-type", "application/merge-patch+json")
        .body(patch.to_string())
        .send()
        .await
        .expect("patch");
    assert_eq!(response.status().as_u16(), 422);
    let status: serde_json::Value = response.json().await.expect("json");
    let fields: Vec<&str> = status["details"]["causes"]
        .as_array()
        .expect("causes")
        .iter()
        .filter_map(|c| c["field"].as_str())
        .collect();
    assert_eq!(
        fields,
        [
            "status.conditions[0].type",
            "status.conditions[0].status",
            "status.mxReplicaStatuses.Worker.failed"
        ]
    );
    server.stop().await;
}

#[tokio::test]
async fn discovery_lists_mxjobs_and_its_status_subresource() {
    let server = TestServer::start().await;
    let resources: serde_json::Value = server
        .http
        .get(format!("{}/apis/kubeflow.org/v1", server.url))
        .send()
        .await
        .expect("discovery")
        .json()
        .await
        .expect("json");
    assert_eq!(resources["kind"], "APIResourceList");
    assert_eq!(resources["groupVersion"], "kubeflow.org/v1");
    let names: Vec<&str> = resources["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert_eq!(names, ["mxjobs", "mxjobs/status"]);
    assert_eq!(resources["resources"][0]["kind"], "MXJob");
    assert_eq!(resources["resources"][0]["singularName"], "mxjob");
    assert_eq!(resources["resources"][0]["namespaced"], true);
    let groups: serde_json::Value = server
        .http
        .get(format!("{}/apis", server.url))
        .send()
        .await
        .expect("apis")
        .json()
        .await
        .expect("json");
    assert_eq!(
        groups["groups"][0]["preferredVersion"]["groupVersion"],
        "kubeflow.org/v1"
    );
    let version = server
        .client
        .get_version()
        .send()
        .await
        .expect("version")
        .into_inner();
    assert_eq!(version.major, "1");
    server.stop().await;
}

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

//! OpenAPI v3 discovery, as the Kubernetes API server serves it: an index
//! at `/openapi/v3` naming one document per group version, each with a
//! hash of its content, and the document of `kubeflow.org/v1`.
//!
//! The document is `openapi/mxjob.json` (this crate's [`document`]) with
//! what Kubernetes clients look schemas up by: the
//! `x-kubernetes-group-version-kind` extension on the schema of each kind
//! (`MXJob`, `MXJobList`, `Status`, `DeleteOptions`, `WatchEvent`).
//! `kubectl explain mxjob.spec` finds the kind through the
//! `x-kubernetes-group-version-kind` of the operations on `mxjobs` paths
//! and then the schema through that of the schema, as it does in a
//! cluster; each operation also names its `x-kubernetes-action`.
//!
//! [`document`]: crate::openapi::document

use std::sync::OnceLock;

use serde_json::{json, Value};

use crate::model::{GROUP, VERSION};
use crate::openapi::DocumentError;

/// Where the index points for `kubeflow.org/v1`.
pub const GROUP_PATH: &str = "apis/kubeflow.org/v1";

/// The schemas that are kinds, with their group, version and kind.
const KINDS: &[(&str, &str, &str, &str)] = &[
    ("MXJob", GROUP, VERSION, "MXJob"),
    ("MXJobList", GROUP, VERSION, "MXJobList"),
    ("Status", "", "v1", "Status"),
    ("WatchEvent", "meta.k8s.io", "v1", "WatchEvent"),
    (
        "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions",
        "meta.k8s.io",
        "v1",
        "DeleteOptions",
    ),
];

/// The `kubeflow.org/v1` document and its hash, built once.
fn built() -> &'static Result<(Vec<u8>, String), DocumentError> {
    static BUILT: OnceLock<Result<(Vec<u8>, String), DocumentError>> = OnceLock::new();
    BUILT.get_or_init(|| {
        let mut document = crate::openapi::document()?;
        let schemas = document
            .pointer_mut("/components/schemas")
            .and_then(Value::as_object_mut)
            .ok_or("the document has no schemas")?;
        for (schema, group, version, kind) in KINDS {
            let object = schemas
                .get_mut(*schema)
                .and_then(Value::as_object_mut)
                .ok_or_else(|| format!("the document has no schema {schema}"))?;
            object.insert(
                "x-kubernetes-group-version-kind".to_string(),
                json!([{"group": group, "kind": kind, "version": version}]),
            );
        }
        let paths = document
            .pointer_mut("/paths")
            .and_then(Value::as_object_mut)
            .ok_or("the document has no paths")?;
        for (path, item) in paths.iter_mut() {
            if !path.contains("/mxjobs") {
                continue;
            }
            let Some(item) = item.as_object_mut() else {
                continue;
            };
            for (method, operation) in item.iter_mut() {
                let (Some(action), Some(operation)) =
                    (action(path, method), operation.as_object_mut())
                else {
                    continue;
                };
                operation.insert("x-kubernetes-action".to_string(), json!(action));
                operation.insert(
                    "x-kubernetes-group-version-kind".to_string(),
                    json!({"group": GROUP, "kind": "MXJob", "version": VERSION}),
                );
            }
        }
        let bytes = serde_json::to_vec(&document).map_err(DocumentError::of)?;
        let hash = hash(&bytes);
        Ok((bytes, hash))
    })
}

/// The `x-kubernetes-action` the API server writes on an operation on
/// `path` with `method`; `None` for what is not an operation.
fn action(path: &str, method: &str) -> Option<&'static str> {
    let named = path.ends_with("{name}") || path.contains("{name}/");
    let watch = path.contains("/watch/");
    Some(match (method, named, watch) {
        ("get", true, true) => "watch",
        ("get", false, true) => "watchlist",
        ("get", true, false) => "get",
        ("get", false, false) => "list",
        ("post", _, _) => "post",
        ("put", _, _) => "put",
        ("patch", _, _) => "patch",
        ("delete", true, _) => "delete",
        ("delete", false, _) => "deletecollection",
        _ => return None,
    })
}

/// The document of `kubeflow.org/v1`, as JSON bytes.
pub fn group_document() -> Result<&'static [u8], DocumentError> {
    match built() {
        Ok((bytes, _)) => Ok(bytes),
        Err(error) => Err(error.clone()),
    }
}

/// The index at `/openapi/v3`.
pub fn index() -> Result<Value, DocumentError> {
    let (_, hash) = built().as_ref().map_err(Clone::clone)?;
    Ok(json!({
        "paths": {
            GROUP_PATH: {"serverRelativeURL": format!("/openapi/v3/{GROUP_PATH}?hash={hash}")}
        }
    }))
}

/// A content hash for the index (FNV-1a, 64 bits, upper-case hex): it
/// changes with the document, so clients know when to fetch it again.
fn hash(bytes: &[u8]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{hash:016X}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mxjob_schema_carries_its_group_version_kind() {
        let document: Value =
            serde_json::from_slice(group_document().expect("built")).expect("JSON");
        assert_eq!(
            document["components"]["schemas"]["MXJob"]["x-kubernetes-group-version-kind"],
            json!([{"group": "kubeflow.org", "kind": "MXJob", "version": "v1"}])
        );
    }

    #[test]
    fn mxjob_operations_carry_their_kind_and_action() {
        let document: Value =
            serde_json::from_slice(group_document().expect("built")).expect("JSON");
        let item = &document["paths"]["/apis/kubeflow.org/v1/namespaces/{namespace}/mxjobs/{name}"];
        assert_eq!(item["put"]["x-kubernetes-action"], "put");
        assert_eq!(
            item["put"]["x-kubernetes-group-version-kind"],
            json!({"group": "kubeflow.org", "kind": "MXJob", "version": "v1"})
        );
        let collection = &document["paths"]["/apis/kubeflow.org/v1/namespaces/{namespace}/mxjobs"];
        assert_eq!(collection["get"]["x-kubernetes-action"], "list");
        assert_eq!(
            collection["delete"]["x-kubernetes-action"],
            "deletecollection"
        );
    }

    #[test]
    fn the_index_points_at_the_document_with_its_hash() {
        let index = index().expect("index");
        let url = index["paths"][GROUP_PATH]["serverRelativeURL"]
            .as_str()
            .expect("a URL");
        let (_, hash) = built().as_ref().expect("built");
        assert_eq!(url, format!("/openapi/v3/apis/kubeflow.org/v1?hash={hash}"));
    }
}

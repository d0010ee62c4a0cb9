//! The rules of admission that a JSON schema can state, written into the
//! document so that it says which bodies the server accepts: a client (or
//! a contract test) that generates values from the schema then generates
//! values the server takes, and the values the schema refuses are the
//! ones the server refuses.
//!
//! The MXJob types carry theirs as `schemars` attributes where they are
//! this crate's own (`model`, `params`); the rules on Kubernetes types
//! (`ObjectMeta`, `Container`, `IntOrString`, `DeleteOptions`, …), which
//! this crate cannot annotate, are added here. Each is a rule the server
//! enforces at the same place, no wider and no narrower: `metadata` is
//! constrained where it is the MXJob's own, not in the pod template, whose
//! metadata the server does not judge.
//!
//! What no schema of this document can state stays in the server alone,
//! and each such rule is listed with its reason in `RULES` of
//! `tests/conformance/hooks.py`, which holds the contract tests' allowances
//! to them: rules across fields (the replica roles of a job mode, a
//! container named `mxnet`), between the body and the URL or the query (a
//! body's name and namespace, `fieldValidation=Strict`, DeleteOptions in
//! both), between query parameters or the media type and the query, what
//! only the server knows (continue tokens and the revisions it keeps), and
//! label and annotation keys (OpenAPI 3.0 has no `propertyNames`).

use serde_json::{json, Value};

use crate::openapi::DocumentError;

/// A DNS-1123 label: names of objects, namespaces and containers.
pub const DNS_LABEL: &str = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";

/// A name or namespace in `metadata`, where empty means absent (a create
/// takes `generateName`, and the namespace comes from the URL).
pub const OPTIONAL_DNS_LABEL: &str = "^([a-z0-9]([-a-z0-9]*[a-z0-9])?)?$";

/// A `generateName` prefix: a DNS-1123 label that may end in `-`, or
/// empty (absent).
pub const GENERATE_NAME: &str = "^([a-z0-9]([-a-z0-9]*[a-z0-9])?-?)?$";

/// A label value: empty, or letters and digits with `-`, `_` and `.` inside.
pub const LABEL_VALUE: &str = "^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$";

/// An RFC 6901 JSON pointer.
pub const JSON_POINTER: &str = "^(/([^/~]|~[01])*)*$";

const SCHEMAS: &str = "/components/schemas";
const META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1";
const CORE: &str = "io.k8s.api.core.v1";

/// Merges `extra` into the schema at `pointer` (object keys are merged one
/// level deep: `properties` gains entries, other keys are set).
fn merge(doc: &mut Value, pointer: &str, extra: Value) -> Result<(), DocumentError> {
    let target = doc
        .pointer_mut(pointer)
        .and_then(Value::as_object_mut)
        .ok_or_else(|| format!("no schema at {pointer} to constrain"))?;
    let Value::Object(extra) = extra else {
        return Err(DocumentError::of(format!("constraints of {pointer}")));
    };
    for (key, value) in extra {
        match (target.get_mut(&key), value) {
            (Some(Value::Object(existing)), Value::Object(added)) => {
                for (k, v) in added {
                    match (existing.get_mut(&k), v) {
                        (Some(Value::Object(inner)), Value::Object(more)) => inner.extend(more),
                        (_, v) => {
                            existing.insert(k, v);
                        }
                    }
                }
            }
            (_, value) => {
                target.insert(key, value);
            }
        }
    }
    Ok(())
}

fn schema(name: &str) -> String {
    format!("{SCHEMAS}/{}", name.replace('/', "~1"))
}

/// Adds the constraints of the module documentation.
pub fn add_constraints(doc: &mut Value) -> Result<(), DocumentError> {
    // The MXJob's own metadata (not ObjectMeta everywhere: the pod
    // template's metadata is not judged by the server).
    merge(
        doc,
        &format!("{}/properties/metadata", schema("MXJob")),
        json!({
            "properties": {
                "name": {
                    "type": "string",
                    "nullable": true,
                    "maxLength": 63,
                    "pattern": OPTIONAL_DNS_LABEL,
                },
                "generateName": {
                    "type": "string",
                    "nullable": true,
                    "maxLength": 63,
                    "pattern": GENERATE_NAME,
                },
                "namespace": {
                    "type": "string",
                    "nullable": true,
                    "maxLength": 63,
                    "pattern": OPTIONAL_DNS_LABEL,
                },
                "labels": {
                    "type": "object",
                    "nullable": true,
                    "additionalProperties": {
                        "type": "string",
                        "maxLength": 63,
                        "pattern": LABEL_VALUE,
                    },
                },
                "finalizers": {
                    "type": "array",
                    "nullable": true,
                    "items": { "type": "string" },
                    "maxItems": 0,
                },
            },
            "anyOf": [
                {
                    "required": ["name"],
                    "properties": { "name": { "type": "string", "minLength": 1 } },
                },
                {
                    "required": ["generateName"],
                    "properties": { "generateName": { "type": "string", "minLength": 1 } },
                },
            ],
        }),
    )?;
    for (property, value) in [
        ("apiVersion", crate::model::API_VERSION),
        ("kind", crate::model::KIND),
    ] {
        merge(
            doc,
            &format!("{}/properties/{property}", schema("MXJob")),
            json!({ "enum": [value] }),
        )?;
    }
    // Every container, init containers included: a name that is a DNS
    // label and an image that is not blank.
    merge(
        doc,
        &schema(&format!("{CORE}.Container")),
        json!({
            "required": ["name", "image"],
            "properties": {
                "name": { "maxLength": 63, "pattern": DNS_LABEL },
                "image": { "pattern": "\\S" },
            },
        }),
    )?;
    merge(
        doc,
        &schema(&format!("{CORE}.PodTemplateSpec")),
        json!({ "required": ["spec"] }),
    )?;
    merge(
        doc,
        &format!(
            "{}/properties/containers",
            schema(&format!("{CORE}.PodSpec"))
        ),
        json!({ "minItems": 1 }),
    )?;
    // The roles that run as exactly one replica.
    for role in ["Scheduler", "TunerTracker", "Tuner"] {
        merge(
            doc,
            &format!("{}/properties/{role}", schema("MXReplicaSpecs")),
            json!({ "properties": { "replicas": { "maximum": 1 } } }),
        )?;
    }
    // Replica counts by role: the roles are the keys, the counts are not
    // negative.
    let roles: serde_json::Map<String, Value> = crate::model::ReplicaType::SUPPORTED
        .iter()
        .map(|role| {
            (
                role.to_string(),
                json!({ "$ref": format!("#{}", schema("ReplicaStatus")) }),
            )
        })
        .collect();
    merge(
        doc,
        &format!("{}/properties/mxReplicaStatuses", schema("JobStatus")),
        json!({ "properties": roles, "additionalProperties": false }),
    )?;
    merge(
        doc,
        &schema("ReplicaStatus"),
        json!({
            "properties": {
                "active": { "minimum": 0 },
                "succeeded": { "minimum": 0 },
                "failed": { "minimum": 0 },
            },
        }),
    )?;
    // An int32 or a string, as Kubernetes decodes it.
    merge(
        doc,
        &schema("io.k8s.apimachinery.pkg.util.intstr.IntOrString"),
        json!({
            "anyOf": [
                { "type": "integer", "format": "int32" },
                { "type": "string" },
            ],
        }),
    )?;
    // Its own kind and a version the server reads (empty or null: none);
    // `orphanDependents` and `propagationPolicy` not both given (null is
    // not given).
    let mut delete_options_versions = vec![json!(""), Value::Null];
    delete_options_versions.extend(crate::params::DELETE_OPTIONS_VERSIONS.map(Value::from));
    merge(
        doc,
        &schema(&format!("{META}.DeleteOptions")),
        json!({
            "properties": {
                "propagationPolicy": { "enum": ["Orphan", "Background", "Foreground"] },
                "gracePeriodSeconds": { "minimum": 0 },
                "dryRun": { "items": { "enum": ["All"] } },
                "kind": { "nullable": true, "enum": ["", "DeleteOptions", null] },
                "apiVersion": { "nullable": true, "enum": delete_options_versions },
            },
            "not": {
                "required": ["orphanDependents", "propagationPolicy"],
                "properties": {
                    "orphanDependents": { "type": "boolean" },
                    "propagationPolicy": { "type": "string" },
                },
            },
        }),
    )?;
    let patch = schema("JsonPatchOperation");
    merge(
        doc,
        &patch,
        json!({
            "properties": {
                "path": { "pattern": JSON_POINTER },
                "from": { "pattern": JSON_POINTER },
            },
            // What each operation needs beside its path (RFC 6902 section 4).
            "anyOf": [
                {
                    "properties": { "op": { "enum": ["add", "replace", "test"] } },
                    "required": ["value"],
                },
                { "properties": { "op": { "enum": ["remove"] } } },
                {
                    "properties": {
                        "op": { "enum": ["move", "copy"] },
                        "from": { "type": "string" },
                    },
                    "required": ["from"],
                },
            ],
        }),
    )?;
    Ok(())
}

//! The rules of admission that a JSON schema can state, written into the
//! document so that it says which bodies the server accepts: a client (or
//! a contract test) that generates values from the schema then generates
//! values the server takes, and the values the schema refuses are the
//! ones the server refuses.
//!
//! The MXJob types carry theirs as `schemars` attributes where they are
//! this crate's own (`params`); the rules on Kubernetes types (`Container`,
//! `IntOrString`, `DeleteOptions`, …), which this crate cannot annotate, are
//! added here. Each is a rule the server enforces at the same place, no
//! wider and no narrower, and each is added to a named schema, so that
//! clients generated from the document keep their types.
//!
//! What the document does not state stays in the server alone, and each
//! such rule is listed with its reason in `RULES` of
//! `tests/conformance/hooks.py`, which holds the contract tests' allowances
//! to them: rules across fields (the replica roles of a job mode, a
//! container named `mxnet`, name or generateName), between the body and the
//! URL or the query, between query parameters or the media type and the
//! query, what only the server knows (continue tokens, the revisions it
//! keeps, the stored object a JSON patch applies to), map keys (OpenAPI
//! 3.0 has no `propertyNames`), and the rules that would have to be stated
//! inline, on a schema Kubernetes shares between places the server judges
//! differently (the job's own `metadata`, but not the pod template's; the
//! replicas of a single-replica role), or by splitting a type into
//! variants (a JSON patch operation per `op`; DeleteOptions' kind and
//! version, which may be null): there generators would emit new types for
//! the same JSON, and the Go client generated from such a document does
//! not compile.

use serde_json::{json, Value};

use crate::openapi::DocumentError;

/// A DNS-1123 label: names of objects, namespaces and containers.
pub const DNS_LABEL: &str = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";

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
    // Replica counts are not negative.
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
    merge(
        doc,
        &schema(&format!("{META}.DeleteOptions")),
        json!({
            "properties": {
                "propagationPolicy": { "enum": ["Orphan", "Background", "Foreground"] },
                "gracePeriodSeconds": { "minimum": 0 },
                "dryRun": { "items": { "enum": ["All"] } },
            },
        }),
    )?;
    merge(
        doc,
        &schema("JsonPatchOperation"),
        json!({
            "properties": {
                "path": { "pattern": JSON_POINTER },
                "from": { "pattern": JSON_POINTER },
            },
        }),
    )?;
    Ok(())
}

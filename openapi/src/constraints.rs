//! The rules of admission that a JSON schema can state, written into the
//! document so that it says which bodies the server accepts: a client (or
//! a contract test) that generates values from the schema then generates
//! values the server takes, and the values the schema refuses are the
//! ones the server refuses.
//!
//! The MXJob types carry theirs as `schemars` attributes where they are
//! this crate's own (`params`); the rules on Kubernetes types (`Container`,
//! `IntOrString`, `DeleteOptions`, …), which this crate cannot annotate, are
//! added here, and so are the grammars of the `labelSelector` and
//! `fieldSelector` query parameters, which `params` refers to. Each is a
//! rule the server enforces at the same place, no wider and no narrower
//! (the one exception, a label key prefix's length, is said at
//! [`LABEL_SELECTOR`]), and each is added to a named schema or a
//! parameter, so that clients generated from the document keep their
//! types.
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
//! variants (a JSON patch operation per `op`): there generators would emit
//! new types for the same JSON, and the Go client generated from such a
//! document does not compile.

use std::sync::LazyLock;

use serde_json::{json, Value};

use crate::openapi::DocumentError;

/// A DNS-1123 label: names of objects, namespaces and containers.
pub const DNS_LABEL: &str = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";

/// An RFC 6901 JSON pointer.
pub const JSON_POINTER: &str = "^(/([^/~]|~[01])*)*$";

/// Whitespace as the server's selector parsers skip and trim it: Unicode's
/// `White_Space`, Rust's `char::is_whitespace` (not `\s`, which differs
/// between regular expression engines).
const WHITESPACE: &str = r"[\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]";

/// The `fieldSelector` query parameter: comma-separated terms
/// `metadata.name` or `metadata.namespace`, then `=`, `==` or `!=`, then a
/// value in which `\\`, `\,` and `\=` are the only escapes and `,` and `=`
/// appear only escaped; whitespace around the field and the value is
/// ignored, and blank text selects everything.
pub static FIELD_SELECTOR: LazyLock<String> = LazyLock::new(|| {
    let ws = WHITESPACE;
    let term = format!(r"{ws}*metadata\.name(?:space)?{ws}*(?:!=|==|=)(?:[^\\,=]|\\[\\,=])*");
    format!("^(?:{ws}*|{term}(?:,{term})*)$")
});

/// The `labelSelector` query parameter: Kubernetes' grammar of
/// comma-separated requirements (`k`, `!k`, `k=v`, `k==v`, `k!=v`,
/// `k in (v,…)`, `k notin (v,…)`, `k>n`, `k<n`) with label keys and values
/// as the server checks them, and integers that fit an `i64`. The one bound
/// it does not state is a key prefix's 253 characters: a regular expression
/// without lookahead (which not every engine has) cannot bound the length
/// of a repeated group.
pub static LABEL_SELECTOR: LazyLock<String> = LazyLock::new(|| {
    let ws = WHITESPACE;
    let name = "[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?";
    let dns = "[a-z0-9](?:[-a-z0-9]*[a-z0-9])?";
    let key = format!(r"(?:{dns}(?:\.{dns})*/)?{name}");
    let item = format!("(?:{name}{ws}*)?");
    let set = format!(r"\({ws}*(?:{name}{ws}*(?:,{ws}*{item})*|(?:,{ws}*{item})+)\)");
    let int = i64_digits();
    let requirement = format!(
        "(?:!{ws}*{key}|{key}(?:{ws}*(?:==?|!=)(?:{ws}*{name})?\
         |{ws}+(?:in|notin){ws}*{set}|{ws}*[<>]{ws}*{int})?)"
    );
    format!("^{ws}*(?:{requirement}(?:{ws}*,{ws}*{requirement})*{ws}*)?$")
});

/// A `DeleteOptions` body's `kind`: empty or `DeleteOptions`.
pub const DELETE_OPTIONS_KIND: &str = "^(DeleteOptions)?$";

/// A `DeleteOptions` body's `apiVersion`: empty or one the server reads.
pub fn delete_options_versions() -> String {
    let versions: Vec<String> = crate::params::DELETE_OPTIONS_VERSIONS
        .iter()
        .map(|v| v.replace('.', "\\."))
        .collect();
    format!("^({})?$", versions.join("|"))
}

/// Decimal digits that are a label value (at most 63 characters) and whose
/// value fits an `i64`: leading zeros, then at most 18 digits, or 19 up to
/// `i64::MAX`.
fn i64_digits() -> String {
    let max = i64::MAX.to_string();
    let last = max.len() - 1;
    let mut nineteen = Vec::new();
    for (i, digit) in max.bytes().enumerate() {
        let digit = digit - b'0';
        let lowest = u8::from(i == 0);
        if digit > lowest {
            let rest = last - i;
            let tail = if rest > 0 {
                format!("[0-9]{{{rest}}}")
            } else {
                String::new()
            };
            nineteen.push(format!("{}[{lowest}-{}]{tail}", &max[..i], digit - 1));
        }
    }
    nineteen.push(max.clone());
    let short = last;
    let zeros = 63 - max.len();
    format!(
        "(?:0{{0,{}}}[0-9]{{1,{short}}}|0{{0,{zeros}}}(?:{}))",
        zeros + 1,
        nineteen.join("|")
    )
}

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
                // Patterns, not enums: empty is allowed, and a string
                // stays a string in generated clients.
                "kind": { "pattern": DELETE_OPTIONS_KIND },
                "apiVersion": { "pattern": delete_options_versions() },
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

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::params::DeleteQuery;

    /// Whether the server reads a `DeleteOptions` body with this `kind`
    /// and `apiVersion`.
    fn read(kind: &str, api_version: &str) -> bool {
        let body = json!({ "kind": kind, "apiVersion": api_version }).to_string();
        DeleteQuery::default()
            .options(body.as_bytes(), Some("application/json"))
            .is_ok()
    }

    fn stated(pattern: &str, value: &str) -> bool {
        regex::Regex::new(pattern)
            .expect("the document's pattern compiles")
            .is_match(value)
    }

    const KINDS: &[&str] = &[
        "",
        "DeleteOptions",
        "deleteoptions",
        "Status",
        "DeleteOptionsX",
        " ",
    ];
    const VERSIONS: &[&str] = &[
        "",
        "v1",
        "meta.k8s.io/v1",
        "kubeflow.org/v1",
        "metaXk8s.io/v1",
        "v2",
        "meta.k8s.io/v1beta1",
        "v1 ",
    ];

    proptest! {
        /// The document states a DeleteOptions body's `kind` and
        /// `apiVersion` as patterns: what they take is what the server
        /// reads, and the other way round.
        #[test]
        fn document_delete_options_patterns_take_exactly_what_the_server_reads(
            kind in prop_oneof![proptest::sample::select(KINDS).prop_map(String::from), "[A-Za-z.]{0,14}"],
            api_version in prop_oneof![
                proptest::sample::select(VERSIONS).prop_map(String::from),
                "[a-z0-9./]{0,16}",
            ],
        ) {
            prop_assert_eq!(
                stated(DELETE_OPTIONS_KIND, &kind) && stated(&delete_options_versions(), &api_version),
                read(&kind, &api_version),
                "kind {:?}, apiVersion {:?}", kind, api_version
            );
        }
    }

    #[test]
    fn the_document_gives_delete_options_the_patterns_the_tests_hold() {
        let doc = crate::openapi::document().expect("the document builds");
        let properties =
            &doc["components"]["schemas"][format!("{META}.DeleteOptions")]["properties"];
        assert_eq!(properties["kind"]["pattern"], DELETE_OPTIONS_KIND);
        assert_eq!(
            properties["apiVersion"]["pattern"],
            delete_options_versions()
        );
    }
}

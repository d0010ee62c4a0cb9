//! Admission validation of MXJob objects.
//!
//! Upstream mxnet-operator accepted any MXJob and found problems only later,
//! in its controller (a job without a Scheduler, a replica without an image,
//! no container named `mxnet`), where they surfaced as a failed job or a log
//! line. This server checks those rules at admission instead, so a client
//! learns at once, from a `422 Invalid` whose causes name each field at
//! fault.
//!
//! Decisions:
//! - Errors come out in a fixed order: metadata first, then `spec` in the
//!   order its fields are declared (and serialized), replica types in
//!   `BTreeMap` order. Identical input always yields identical output.
//! - A missing required piece is `Required` (including the missing `mxnet`
//!   container); a present but malformed value is `Invalid` with the value.
//! - Finalizers are refused: no controller of this server removes them and a
//!   replace may not change them, so such an object could never go away.
//! - On update, only labels, annotations and three run-policy fields may
//!   change. Everything else is compared as JSON; absent, `null`, `[]` and
//!   `{}` count as equal (as Kubernetes' semantic equality treats nil and
//!   empty), and each difference is reported once, at the deepest path where
//!   both sides are still objects.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::{Map, Value};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use mxjob_api::error::FieldError;
use mxjob_api::model::{
    CleanPodPolicy, ConditionStatus, JobConditionType, JobMode, JobStatus, MXJob, MXJobSpec,
    ReplicaSpec, ReplicaType, RestartPolicy,
};

use crate::names::{
    dns1123_label, label_shape_ok, label_value, qualified_name, LABEL_MAX, LABEL_SHAPE,
};

/// Largest total size of all annotation keys and values, in bytes.
const ANNOTATIONS_MAX: usize = 256 * 1024;
/// Container that must exist in every replica; MXNet runs in it.
const MXNET_CONTAINER: &str = "mxnet";
/// Detail of every immutability error.
const IMMUTABLE: &str = "field is immutable";

/// Rules every stored object must satisfy (create, and the new object of an update).
pub fn validate_object(job: &MXJob) -> Vec<FieldError> {
    let mut errors = Vec::new();
    validate_metadata(job, &mut errors);
    validate_spec(job, &mut errors);
    errors
}

/// The rules for an update: validate_object(new) plus immutability against the stored object.
///
/// The typed comparison decides first: equal typed values encode to equal
/// JSON, so only a difference pays for the JSON walk that words it.
pub fn validate_update(new: &MXJob, old: &MXJob) -> Vec<FieldError> {
    let mut errors = validate_object(new);
    if !immutable_metadata_equal(&new.metadata, &old.metadata) {
        immutable_metadata_errors(new, old, &mut errors);
    }
    if !immutable_spec_equal(&new.spec, &old.spec) {
        immutable_spec_errors(new, old, &mut errors);
    }
    errors
}

/// The metadata that may not change: `name`, `namespace`, `generateName`,
/// `ownerReferences` and `finalizers`.
const IMMUTABLE_METADATA: [&str; 5] = [
    "name",
    "namespace",
    "generateName",
    "ownerReferences",
    "finalizers",
];

/// Whether the immutable metadata is equal as typed values (an absent list
/// equals an empty one).
fn immutable_metadata_equal(new: &ObjectMeta, old: &ObjectMeta) -> bool {
    fn list<T>(v: &Option<Vec<T>>) -> &[T] {
        v.as_deref().unwrap_or_default()
    }
    new.name == old.name
        && new.namespace == old.namespace
        && new.generate_name == old.generate_name
        && list(&new.owner_references) == list(&old.owner_references)
        && list(&new.finalizers) == list(&old.finalizers)
}

fn immutable_metadata_errors(new: &MXJob, old: &MXJob, errors: &mut Vec<FieldError>) {
    let new_meta = serde_json::to_value(&new.metadata).unwrap_or(Value::Null);
    let old_meta = serde_json::to_value(&old.metadata).unwrap_or(Value::Null);
    for key in IMMUTABLE_METADATA {
        let (n, o) = (field(&new_meta, key), field(&old_meta, key));
        if !same(n, o) {
            errors.push(FieldError::invalid(
                format!("metadata.{key}"),
                n.clone(),
                IMMUTABLE,
            ));
        }
    }
}

/// The spec fields a replace may change.
const REPLACEABLE_SPEC: [&str; 3] = [
    "activeDeadlineSeconds",
    "ttlSecondsAfterFinished",
    "cleanPodPolicy",
];

/// Whether the spec, but for its replaceable fields, is equal as typed
/// values. Destructured whole, so a new spec field must be placed here.
fn immutable_spec_equal(new: &MXJobSpec, old: &MXJobSpec) -> bool {
    let MXJobSpec {
        active_deadline_seconds: _,
        ttl_seconds_after_finished: _,
        clean_pod_policy: _,
        backoff_limit,
        job_mode,
        mx_replica_specs,
    } = new;
    *backoff_limit == old.backoff_limit
        && *job_mode == old.job_mode
        && (Arc::ptr_eq(mx_replica_specs, &old.mx_replica_specs)
            || *mx_replica_specs == old.mx_replica_specs)
}

fn immutable_spec_errors(new: &MXJob, old: &MXJob, errors: &mut Vec<FieldError>) {
    let mut new_spec = serde_json::to_value(&new.spec).unwrap_or(Value::Null);
    let mut old_spec = serde_json::to_value(&old.spec).unwrap_or(Value::Null);
    for spec in [&mut new_spec, &mut old_spec] {
        if let Value::Object(map) = spec {
            for replaceable in REPLACEABLE_SPEC {
                map.remove(replaceable);
            }
        }
    }
    diff("spec", &new_spec, &old_spec, errors);
}

/// Rules for a status written through the `/status` subresource: enum
/// values are supported ones and replica counts are not negative.
pub fn validate_status(status: &JobStatus) -> Vec<FieldError> {
    let mut errors = Vec::new();
    for (i, condition) in status.conditions.iter().enumerate() {
        let path = format!("status.conditions[{i}]");
        if let JobConditionType::Unsupported(value) = &condition.type_ {
            errors.push(FieldError::not_supported(
                format!("{path}.type"),
                value,
                JobConditionType::SUPPORTED,
            ));
        }
        if let ConditionStatus::Unsupported(value) = &condition.status {
            errors.push(FieldError::not_supported(
                format!("{path}.status"),
                value,
                ConditionStatus::SUPPORTED,
            ));
        }
    }
    for (replica_type, counts) in &status.mx_replica_statuses {
        let path = format!("status.mxReplicaStatuses.{replica_type}");
        if let ReplicaType::Unsupported(value) = replica_type {
            errors.push(FieldError::not_supported(
                "status.mxReplicaStatuses",
                value,
                ReplicaType::SUPPORTED,
            ));
        }
        for (name, count) in [
            ("active", counts.active),
            ("succeeded", counts.succeeded),
            ("failed", counts.failed),
        ] {
            if let Some(n) = count.filter(|n| *n < 0) {
                errors.push(FieldError::invalid(
                    format!("{path}.{name}"),
                    n,
                    "must be greater than or equal to 0",
                ));
            }
        }
    }
    errors
}

// ---------------------------------------------------------------- metadata

fn validate_metadata(job: &MXJob, errors: &mut Vec<FieldError>) {
    let meta = &job.metadata;
    match meta.name.as_deref() {
        None | Some("") => errors.push(FieldError::required(
            "metadata.name",
            "set a name, or a generateName for the server to complete",
        )),
        Some(name) => check_label_field("metadata.name", name, errors),
    }
    match meta.namespace.as_deref() {
        None | Some("") => errors.push(FieldError::required(
            "metadata.namespace",
            "the job needs a namespace",
        )),
        Some(namespace) => check_label_field("metadata.namespace", namespace, errors),
    }

    for (key, value) in meta.labels.iter().flatten() {
        let problems = qualified_name(key);
        if !problems.is_empty() {
            errors.push(FieldError::invalid(
                "metadata.labels",
                key.as_str(),
                problems.join("; "),
            ));
        }
        let problems = label_value(value);
        if !problems.is_empty() {
            errors.push(FieldError::invalid(
                "metadata.labels",
                value.as_str(),
                problems.join("; "),
            ));
        }
    }

    let mut annotation_bytes = 0usize;
    for (key, value) in meta.annotations.iter().flatten() {
        // Kubernetes checks annotation keys lower-cased, so "Example.com/x" passes.
        let problems = qualified_name(&key.to_lowercase());
        if !problems.is_empty() {
            errors.push(FieldError::invalid(
                "metadata.annotations",
                key.as_str(),
                problems.join("; "),
            ));
        }
        annotation_bytes = annotation_bytes
            .saturating_add(key.len())
            .saturating_add(value.len());
    }
    if annotation_bytes > ANNOTATIONS_MAX {
        errors.push(FieldError::too_long(
            "metadata.annotations",
            ANNOTATIONS_MAX,
        ));
    }

    if meta.finalizers.as_ref().is_some_and(|f| !f.is_empty()) {
        errors.push(FieldError::forbidden(
            "metadata.finalizers",
            "no controller of this server removes finalizers and a replace may not change them, \
             so a job carrying one could never be deleted",
        ));
    }
}

/// A name or namespace: too long and badly shaped are reported separately.
fn check_label_field(path: &str, value: &str, errors: &mut Vec<FieldError>) {
    if value.len() > LABEL_MAX {
        errors.push(FieldError::too_long(path, LABEL_MAX));
    }
    if !label_shape_ok(value) {
        errors.push(FieldError::invalid(path, value, LABEL_SHAPE));
    }
}

// -------------------------------------------------------------------- spec

fn validate_spec(job: &MXJob, errors: &mut Vec<FieldError>) {
    let spec = &job.spec;
    // Declaration order of MXJobSpec.
    if let Some(n) = spec.active_deadline_seconds {
        if n <= 0 {
            errors.push(FieldError::invalid(
                "spec.activeDeadlineSeconds",
                n,
                "must be greater than 0",
            ));
        }
    }
    if let Some(n) = spec.backoff_limit {
        if n < 0 {
            errors.push(FieldError::invalid(
                "spec.backoffLimit",
                n,
                "must be greater than or equal to 0",
            ));
        }
    }
    if let Some(CleanPodPolicy::Unsupported(v)) = &spec.clean_pod_policy {
        errors.push(FieldError::not_supported(
            "spec.cleanPodPolicy",
            v,
            CleanPodPolicy::SUPPORTED,
        ));
    }
    if let Some(n) = spec.ttl_seconds_after_finished {
        if n < 0 {
            errors.push(FieldError::invalid(
                "spec.ttlSecondsAfterFinished",
                n,
                "must be greater than or equal to 0",
            ));
        }
    }
    if let JobMode::Unsupported(v) = &spec.job_mode {
        errors.push(FieldError::not_supported(
            "spec.jobMode",
            v,
            JobMode::SUPPORTED,
        ));
    }

    let specs = &spec.mx_replica_specs;
    if specs.is_empty() {
        errors.push(FieldError::required(
            "spec.mxReplicaSpecs",
            "a job needs at least one replica type",
        ));
        return;
    }
    let roles = ReplicaType::required_for(&spec.job_mode);
    for role in roles {
        if !specs.contains_key(role) {
            errors.push(FieldError::required(
                format!("spec.mxReplicaSpecs.{role}"),
                format!("{} jobs need a {role} replica", spec.job_mode),
            ));
        }
    }
    for (replica_type, replica) in specs.iter() {
        let path = format!("spec.mxReplicaSpecs.{replica_type}");
        if let ReplicaType::Unsupported(v) = replica_type {
            errors.push(FieldError::not_supported(
                "spec.mxReplicaSpecs",
                v,
                ReplicaType::SUPPORTED,
            ));
        } else if !roles.is_empty() && !roles.contains(replica_type) {
            let names: Vec<&str> = roles.iter().map(ReplicaType::as_str).collect();
            errors.push(FieldError::forbidden(
                path.as_str(),
                format!(
                    "{replica_type} is not a role of {} jobs, which use {}",
                    spec.job_mode,
                    names.join(", ")
                ),
            ));
        }
        validate_replica(&path, replica_type, replica, errors);
    }
}

fn validate_replica(
    path: &str,
    replica_type: &ReplicaType,
    replica: &ReplicaSpec,
    errors: &mut Vec<FieldError>,
) {
    if let Some(n) = replica.replicas {
        if n < 1 {
            errors.push(FieldError::invalid(
                format!("{path}.replicas"),
                n,
                "must be at least 1",
            ));
        } else if replica_type.is_singleton() && n != 1 {
            errors.push(FieldError::invalid(
                format!("{path}.replicas"),
                n,
                format!("must be 1: a job runs exactly one {replica_type}"),
            ));
        }
    }
    if let Some(RestartPolicy::Unsupported(v)) = &replica.restart_policy {
        errors.push(FieldError::not_supported(
            format!("{path}.restartPolicy"),
            v,
            RestartPolicy::SUPPORTED,
        ));
    }

    let Some(pod) = &replica.template.spec else {
        errors.push(FieldError::required(
            format!("{path}.template.spec"),
            "the pod template needs a spec with its containers",
        ));
        return;
    };
    let containers_path = format!("{path}.template.spec.containers");
    if pod.containers.is_empty() {
        errors.push(FieldError::required(
            containers_path,
            "at least one container is needed",
        ));
        return;
    }
    let mut seen = BTreeSet::new();
    // Init containers as Kubernetes validates them: a name unique among
    // all the pod's containers, and an image.
    let init_path = format!("{path}.template.spec.initContainers");
    let init = pod.init_containers.iter().flatten();
    let all = pod
        .containers
        .iter()
        .enumerate()
        .map(|(i, c)| (format!("{containers_path}[{i}]"), c))
        .chain(
            init.enumerate()
                .map(|(i, c)| (format!("{init_path}[{i}]"), c)),
        );
    for (at, container) in all {
        let name = container.name.as_str();
        if name.is_empty() {
            errors.push(FieldError::required(
                format!("{at}.name"),
                "every container needs a name",
            ));
        } else {
            let problems = dns1123_label(name);
            if !problems.is_empty() {
                errors.push(FieldError::invalid(
                    format!("{at}.name"),
                    name,
                    problems.join("; "),
                ));
            }
            if !seen.insert(name) {
                errors.push(FieldError::duplicate(format!("{at}.name"), name));
            }
        }
        if container
            .image
            .as_deref()
            .is_none_or(|image| image.trim().is_empty())
        {
            errors.push(FieldError::required(
                format!("{at}.image"),
                "every container needs an image",
            ));
        }
    }
    if !pod.containers.iter().any(|c| c.name == MXNET_CONTAINER) {
        errors.push(FieldError::required(
            containers_path,
            "each replica needs a container named \"mxnet\", in which MXNet runs",
        ));
    }
}

// -------------------------------------------------------------- immutability

/// `value[key]`, or null when absent.
fn field<'a>(value: &'a Value, key: &str) -> &'a Value {
    value.get(key).unwrap_or(&Value::Null)
}

/// Absent, null, `[]` and `{}` all mean "nothing here".
fn is_nothing(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Array(items) => items.is_empty(),
        Value::Object(map) => map.is_empty(),
        _ => false,
    }
}

/// Equality that treats every form of "nothing" alike, at any depth.
fn same(a: &Value, b: &Value) -> bool {
    if is_nothing(a) && is_nothing(b) {
        return true;
    }
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => keys(x, y).all(|k| {
            same(
                x.get(k).unwrap_or(&Value::Null),
                y.get(k).unwrap_or(&Value::Null),
            )
        }),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q))
        }
        _ => a == b,
    }
}

/// The keys of both maps, sorted, each once.
fn keys<'a>(
    x: &'a Map<String, Value>,
    y: &'a Map<String, Value>,
) -> impl Iterator<Item = &'a String> {
    x.keys()
        .chain(y.keys())
        .collect::<BTreeSet<_>>()
        .into_iter()
}

/// Reports each difference between `new` and `old` under `path`.
fn diff(path: &str, new: &Value, old: &Value, errors: &mut Vec<FieldError>) {
    if same(new, old) {
        return;
    }
    match (new, old) {
        (Value::Object(n), Value::Object(o)) => {
            for key in keys(n, o) {
                let n = n.get(key).unwrap_or(&Value::Null);
                let o = o.get(key).unwrap_or(&Value::Null);
                diff(&child_path(path, key), n, o, errors);
            }
        }
        _ => errors.push(FieldError::invalid(path, new.clone(), IMMUTABLE)),
    }
}

/// `path.key` for identifier-like keys, else `path[key]` (label keys with dots or '/').
fn child_path(path: &str, key: &str) -> String {
    let plain = key
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if plain {
        format!("{path}.{key}")
    } else {
        format!("{path}[{key}]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mxjob_api::error::FieldErrorKind;
    use serde_json::json;

    const EXAMPLE: &str = mxjob_api::openapi::REPLACE_EXAMPLE;

    fn base() -> Value {
        serde_json::from_str(EXAMPLE).unwrap()
    }

    fn job(value: Value) -> MXJob {
        serde_json::from_value(value).unwrap()
    }

    /// The example with `edit` applied.
    fn edited(edit: impl FnOnce(&mut Value)) -> MXJob {
        let mut value = base();
        edit(&mut value);
        job(value)
    }

    fn at<'a>(value: &'a mut Value, pointer: &str) -> &'a mut Value {
        value
            .pointer_mut(pointer)
            .unwrap_or_else(|| panic!("no {pointer}"))
    }

    fn obj(value: &mut Value) -> &mut Map<String, Value> {
        value.as_object_mut().unwrap()
    }

    fn summary(errors: &[FieldError]) -> Vec<(FieldErrorKind, String)> {
        errors.iter().map(|e| (e.kind, e.field.clone())).collect()
    }

    fn one(errors: &[FieldError], kind: FieldErrorKind, field: &str) {
        assert_eq!(
            summary(errors),
            vec![(kind, field.to_string())],
            "{errors:#?}"
        );
    }

    fn object_errors(edit: impl FnOnce(&mut Value)) -> Vec<FieldError> {
        validate_object(&edited(edit))
    }

    fn update_errors(edit: impl FnOnce(&mut Value)) -> Vec<FieldError> {
        validate_update(&edited(edit), &job(base()))
    }

    const WORKER: &str = "/spec/mxReplicaSpecs/Worker";
    const WORKER_CONTAINERS: &str = "/spec/mxReplicaSpecs/Worker/template/spec/containers";

    use FieldErrorKind::*;

    // ------------------------------------------------------------ helpers

    // ------------------------------------------------------------ objects

    #[test]
    fn example_job_is_valid() {
        assert_eq!(validate_object(&job(base())), vec![]);
    }

    #[test]
    fn mxtune_job_with_its_three_roles_is_valid() {
        let errors = object_errors(|v| {
            at(v, "/spec/jobMode").clone_from(&json!("MXTune"));
            let specs = obj(at(v, "/spec/mxReplicaSpecs"));
            let scheduler = specs.remove("Scheduler").unwrap();
            let server = specs.remove("Server").unwrap();
            let worker = specs.remove("Worker").unwrap();
            specs.insert("TunerTracker".into(), scheduler);
            specs.insert("TunerServer".into(), server);
            specs.insert("Tuner".into(), worker);
        });
        assert_eq!(errors, vec![]);
    }

    #[test]
    fn missing_name_is_required() {
        let errors = object_errors(|v| {
            obj(at(v, "/metadata")).remove("name");
        });
        one(&errors, Required, "metadata.name");
    }

    #[test]
    fn empty_name_is_required() {
        let errors = object_errors(|v| *at(v, "/metadata/name") = json!(""));
        one(&errors, Required, "metadata.name");
    }

    #[test]
    fn uppercase_name_is_invalid_with_its_value() {
        let errors = object_errors(|v| *at(v, "/metadata/name") = json!("MXNet-Job"));
        one(&errors, Invalid, "metadata.name");
        assert_eq!(errors[0].value, Some(json!("MXNet-Job")));
    }

    #[test]
    fn name_with_dot_is_invalid() {
        let errors = object_errors(|v| *at(v, "/metadata/name") = json!("mxnet.job"));
        one(&errors, Invalid, "metadata.name");
    }

    #[test]
    fn name_of_63_characters_is_valid() {
        let errors = object_errors(|v| *at(v, "/metadata/name") = json!("a".repeat(63)));
        assert_eq!(errors, vec![]);
    }

    #[test]
    fn name_of_64_characters_is_too_long() {
        let errors = object_errors(|v| *at(v, "/metadata/name") = json!("a".repeat(64)));
        one(&errors, TooLong, "metadata.name");
    }

    #[test]
    fn long_and_badly_shaped_name_gets_both_errors() {
        let errors = object_errors(|v| *at(v, "/metadata/name") = json!("A".repeat(64)));
        assert_eq!(
            summary(&errors),
            vec![
                (TooLong, "metadata.name".into()),
                (Invalid, "metadata.name".into())
            ]
        );
    }

    #[test]
    fn missing_namespace_is_required() {
        let errors = object_errors(|v| {
            obj(at(v, "/metadata")).remove("namespace");
        });
        one(&errors, Required, "metadata.namespace");
    }

    #[test]
    fn namespace_with_underscore_is_invalid() {
        let errors = object_errors(|v| *at(v, "/metadata/namespace") = json!("kube_test"));
        one(&errors, Invalid, "metadata.namespace");
        assert_eq!(errors[0].value, Some(json!("kube_test")));
    }

    #[test]
    fn well_formed_labels_are_valid() {
        let errors = object_errors(|v| {
            obj(at(v, "/metadata")).insert(
                "labels".into(),
                json!({"app": "mxnet", "app.kubernetes.io/name": "Train_1.0", "empty": ""}),
            );
        });
        assert_eq!(errors, vec![]);
    }

    #[test]
    fn bad_label_key_is_invalid_at_labels_with_the_key() {
        let errors = object_errors(|v| {
            obj(at(v, "/metadata")).insert("labels".into(), json!({"a/b/c": "x"}));
        });
        one(&errors, Invalid, "metadata.labels");
        assert_eq!(errors[0].value, Some(json!("a/b/c")));
    }

    #[test]
    fn label_key_with_uppercase_prefix_is_invalid() {
        let errors = object_errors(|v| {
            obj(at(v, "/metadata")).insert("labels".into(), json!({"Example.com/app": "x"}));
        });
        one(&errors, Invalid, "metadata.labels");
    }

    #[test]
    fn bad_label_value_is_invalid_with_the_value() {
        let errors = object_errors(|v| {
            obj(at(v, "/metadata")).insert("labels".into(), json!({"app": "-mxnet"}));
        });
        one(&errors, Invalid, "metadata.labels");
        assert_eq!(errors[0].value, Some(json!("-mxnet")));
    }

    #[test]
    fn label_value_longer_than_63_is_invalid() {
        let errors = object_errors(|v| {
            obj(at(v, "/metadata")).insert("labels".into(), json!({"app": "a".repeat(64)}));
        });
        one(&errors, Invalid, "metadata.labels");
    }

    #[test]
    fn bad_annotation_key_is_invalid_at_annotations() {
        let errors = object_errors(|v| {
            obj(at(v, "/metadata")).insert("annotations".into(), json!({"not valid": "x"}));
        });
        one(&errors, Invalid, "metadata.annotations");
        assert_eq!(errors[0].value, Some(json!("not valid")));
    }

    #[test]
    fn annotation_values_may_be_anything() {
        let errors = object_errors(|v| {
            obj(at(v, "/metadata")).insert(
                "annotations".into(),
                json!({"Example.com/note": "any text: {\"x\": 1} ", "empty": ""}),
            );
        });
        assert_eq!(errors, vec![]);
    }

    #[test]
    fn annotations_at_the_size_limit_are_valid() {
        let errors = object_errors(|v| {
            obj(at(v, "/metadata")).insert(
                "annotations".into(),
                json!({"note": "x".repeat(ANNOTATIONS_MAX - 4)}),
            );
        });
        assert_eq!(errors, vec![]);
    }

    #[test]
    fn annotations_over_the_size_limit_are_too_long() {
        let errors = object_errors(|v| {
            obj(at(v, "/metadata")).insert(
                "annotations".into(),
                json!({"note": "x".repeat(ANNOTATIONS_MAX - 3)}),
            );
        });
        one(&errors, TooLong, "metadata.annotations");
        assert!(errors[0].detail.contains("262144"));
    }

    #[test]
    fn finalizers_are_forbidden() {
        let errors = object_errors(|v| {
            obj(at(v, "/metadata")).insert("finalizers".into(), json!(["example.com/cleanup"]));
        });
        one(&errors, Forbidden, "metadata.finalizers");
    }

    #[test]
    fn empty_finalizers_are_fine() {
        let errors = object_errors(|v| {
            obj(at(v, "/metadata")).insert("finalizers".into(), json!([]));
        });
        assert_eq!(errors, vec![]);
    }

    #[test]
    fn unsupported_job_mode_is_not_supported() {
        let errors = object_errors(|v| *at(v, "/spec/jobMode") = json!("MXServe"));
        one(&errors, NotSupported, "spec.jobMode");
        assert_eq!(errors[0].value, Some(json!("MXServe")));
        assert!(errors[0].detail.contains("\"MXTrain\", \"MXTune\""));
    }

    #[test]
    fn unsupported_job_mode_skips_role_checks() {
        let errors = object_errors(|v| {
            *at(v, "/spec/jobMode") = json!("Other");
            obj(at(v, "/spec/mxReplicaSpecs")).remove("Worker");
        });
        one(&errors, NotSupported, "spec.jobMode");
    }

    #[test]
    fn empty_replica_specs_are_required_once() {
        let errors = object_errors(|v| *at(v, "/spec/mxReplicaSpecs") = json!({}));
        one(&errors, Required, "spec.mxReplicaSpecs");
    }

    #[test]
    fn unsupported_replica_type_is_not_supported() {
        let errors = object_errors(|v| {
            let worker = at(v, WORKER).clone();
            obj(at(v, "/spec/mxReplicaSpecs")).insert("Chief".into(), worker);
        });
        one(&errors, NotSupported, "spec.mxReplicaSpecs");
        assert_eq!(errors[0].value, Some(json!("Chief")));
    }

    #[test]
    fn unsupported_replica_type_contents_are_still_checked() {
        let errors = object_errors(|v| {
            let mut worker = at(v, WORKER).clone();
            worker["replicas"] = json!(0);
            obj(at(v, "/spec/mxReplicaSpecs")).insert("Chief".into(), worker);
        });
        assert_eq!(
            summary(&errors),
            vec![
                (NotSupported, "spec.mxReplicaSpecs".into()),
                (Invalid, "spec.mxReplicaSpecs.Chief.replicas".into()),
            ]
        );
    }

    #[test]
    fn train_job_without_worker_requires_worker() {
        let errors = object_errors(|v| {
            obj(at(v, "/spec/mxReplicaSpecs")).remove("Worker");
        });
        one(&errors, Required, "spec.mxReplicaSpecs.Worker");
        assert!(errors[0].detail.contains("MXTrain"));
    }

    #[test]
    fn train_job_without_scheduler_and_server_requires_both_in_role_order() {
        let errors = object_errors(|v| {
            let specs = obj(at(v, "/spec/mxReplicaSpecs"));
            specs.remove("Scheduler");
            specs.remove("Server");
        });
        assert_eq!(
            summary(&errors),
            vec![
                (Required, "spec.mxReplicaSpecs.Scheduler".into()),
                (Required, "spec.mxReplicaSpecs.Server".into()),
            ]
        );
    }

    #[test]
    fn tune_role_in_train_job_is_forbidden() {
        let errors = object_errors(|v| {
            let worker = at(v, WORKER).clone();
            obj(at(v, "/spec/mxReplicaSpecs")).insert("TunerServer".into(), worker);
        });
        one(&errors, Forbidden, "spec.mxReplicaSpecs.TunerServer");
    }

    #[test]
    fn tune_job_with_train_roles_needs_tune_roles_and_forbids_train_roles() {
        let errors = object_errors(|v| *at(v, "/spec/jobMode") = json!("MXTune"));
        assert_eq!(
            summary(&errors),
            vec![
                (Required, "spec.mxReplicaSpecs.TunerTracker".into()),
                (Required, "spec.mxReplicaSpecs.TunerServer".into()),
                (Required, "spec.mxReplicaSpecs.Tuner".into()),
                (Forbidden, "spec.mxReplicaSpecs.Scheduler".into()),
                (Forbidden, "spec.mxReplicaSpecs.Server".into()),
                (Forbidden, "spec.mxReplicaSpecs.Worker".into()),
            ]
        );
    }

    #[test]
    fn worker_with_zero_replicas_is_invalid() {
        let errors = object_errors(|v| *at(v, &format!("{WORKER}/replicas")) = json!(0));
        one(&errors, Invalid, "spec.mxReplicaSpecs.Worker.replicas");
        assert_eq!(errors[0].value, Some(json!(0)));
        assert_eq!(errors[0].detail, "must be at least 1");
    }

    #[test]
    fn worker_with_negative_replicas_is_invalid() {
        let errors = object_errors(|v| *at(v, &format!("{WORKER}/replicas")) = json!(-3));
        one(&errors, Invalid, "spec.mxReplicaSpecs.Worker.replicas");
    }

    #[test]
    fn many_workers_and_servers_are_valid() {
        let errors = object_errors(|v| {
            *at(v, &format!("{WORKER}/replicas")) = json!(8);
            *at(v, "/spec/mxReplicaSpecs/Server/replicas") = json!(2);
        });
        assert_eq!(errors, vec![]);
    }

    #[test]
    fn absent_replicas_are_valid() {
        let errors = object_errors(|v| {
            obj(at(v, WORKER)).remove("replicas");
            obj(at(v, "/spec/mxReplicaSpecs/Scheduler")).remove("replicas");
        });
        assert_eq!(errors, vec![]);
    }

    #[test]
    fn scheduler_with_two_replicas_is_invalid() {
        let errors =
            object_errors(|v| *at(v, "/spec/mxReplicaSpecs/Scheduler/replicas") = json!(2));
        one(&errors, Invalid, "spec.mxReplicaSpecs.Scheduler.replicas");
        assert_eq!(errors[0].value, Some(json!(2)));
    }

    #[test]
    fn scheduler_with_zero_replicas_is_reported_once() {
        let errors =
            object_errors(|v| *at(v, "/spec/mxReplicaSpecs/Scheduler/replicas") = json!(0));
        one(&errors, Invalid, "spec.mxReplicaSpecs.Scheduler.replicas");
        assert_eq!(errors[0].detail, "must be at least 1");
    }

    #[test]
    fn unsupported_restart_policy_is_not_supported() {
        let errors =
            object_errors(|v| *at(v, &format!("{WORKER}/restartPolicy")) = json!("Sometimes"));
        one(
            &errors,
            NotSupported,
            "spec.mxReplicaSpecs.Worker.restartPolicy",
        );
        assert_eq!(errors[0].value, Some(json!("Sometimes")));
    }

    #[test]
    fn every_supported_restart_policy_is_valid() {
        for policy in RestartPolicy::SUPPORTED {
            let errors =
                object_errors(|v| *at(v, &format!("{WORKER}/restartPolicy")) = json!(policy));
            assert_eq!(errors, vec![], "{policy}");
        }
    }

    #[test]
    fn missing_template_spec_is_required() {
        let errors = object_errors(|v| *at(v, &format!("{WORKER}/template")) = json!({}));
        one(
            &errors,
            Required,
            "spec.mxReplicaSpecs.Worker.template.spec",
        );
    }

    #[test]
    fn empty_containers_are_required() {
        let errors = object_errors(|v| *at(v, WORKER_CONTAINERS) = json!([]));
        one(
            &errors,
            Required,
            "spec.mxReplicaSpecs.Worker.template.spec.containers",
        );
    }

    #[test]
    fn container_without_image_requires_image() {
        let errors = object_errors(|v| {
            obj(at(v, &format!("{WORKER_CONTAINERS}/0"))).remove("image");
        });
        one(
            &errors,
            Required,
            "spec.mxReplicaSpecs.Worker.template.spec.containers[0].image",
        );
    }

    #[test]
    fn blank_image_is_required() {
        let errors =
            object_errors(|v| *at(v, &format!("{WORKER_CONTAINERS}/0/image")) = json!("  \t"));
        one(
            &errors,
            Required,
            "spec.mxReplicaSpecs.Worker.template.spec.containers[0].image",
        );
    }

    #[test]
    fn container_without_name_requires_name_and_mxnet_container() {
        let errors = object_errors(|v| {
            obj(at(v, &format!("{WORKER_CONTAINERS}/0"))).remove("name");
        });
        assert_eq!(
            summary(&errors),
            vec![
                (
                    Required,
                    "spec.mxReplicaSpecs.Worker.template.spec.containers[0].name".into()
                ),
                (
                    Required,
                    "spec.mxReplicaSpecs.Worker.template.spec.containers".into()
                ),
            ]
        );
    }

    #[test]
    fn badly_named_container_is_invalid() {
        let errors = object_errors(|v| {
            let containers = at(v, WORKER_CONTAINERS).as_array_mut().unwrap();
            let mut sidecar = containers[0].clone();
            sidecar["name"] = json!("Side_Car");
            containers.push(sidecar);
        });
        one(
            &errors,
            Invalid,
            "spec.mxReplicaSpecs.Worker.template.spec.containers[1].name",
        );
        assert_eq!(errors[0].value, Some(json!("Side_Car")));
    }

    #[test]
    fn duplicate_container_names_are_duplicate() {
        let errors = object_errors(|v| {
            let containers = at(v, WORKER_CONTAINERS).as_array_mut().unwrap();
            let copy = containers[0].clone();
            containers.push(copy);
        });
        one(
            &errors,
            Duplicate,
            "spec.mxReplicaSpecs.Worker.template.spec.containers[1].name",
        );
        assert_eq!(errors[0].value, Some(json!("mxnet")));
    }

    /// Gives the Worker's pod these init containers.
    fn worker_init_containers(v: &mut Value, containers: Value) {
        let spec = obj(at(v, "/spec/mxReplicaSpecs/Worker/template/spec"));
        spec.insert("initContainers".into(), containers);
    }

    #[test]
    fn init_containers_need_a_label_name_and_an_image() {
        let errors = object_errors(|v| {
            worker_init_containers(v, json!([{"name": "Fetch_Data", "image": " "}]));
        });
        assert_eq!(
            summary(&errors),
            vec![
                (
                    Invalid,
                    "spec.mxReplicaSpecs.Worker.template.spec.initContainers[0].name".into()
                ),
                (
                    Required,
                    "spec.mxReplicaSpecs.Worker.template.spec.initContainers[0].image".into()
                ),
            ],
            "{errors:#?}"
        );
    }

    #[test]
    fn init_container_named_like_a_container_is_duplicate() {
        let errors = object_errors(|v| {
            worker_init_containers(v, json!([{"name": "mxnet", "image": "busybox"}]));
        });
        one(
            &errors,
            Duplicate,
            "spec.mxReplicaSpecs.Worker.template.spec.initContainers[0].name",
        );
    }

    #[test]
    fn init_container_named_mxnet_is_not_the_mxnet_container() {
        let errors = object_errors(|v| {
            *at(v, &format!("{WORKER_CONTAINERS}/0/name")) = json!("trainer");
            worker_init_containers(v, json!([{"name": "mxnet", "image": "busybox"}]));
        });
        one(
            &errors,
            Required,
            "spec.mxReplicaSpecs.Worker.template.spec.containers",
        );
    }

    #[test]
    fn replica_without_mxnet_container_requires_one() {
        let errors =
            object_errors(|v| *at(v, &format!("{WORKER_CONTAINERS}/0/name")) = json!("trainer"));
        one(
            &errors,
            Required,
            "spec.mxReplicaSpecs.Worker.template.spec.containers",
        );
        assert!(errors[0].detail.contains("\"mxnet\""));
    }

    #[test]
    fn extra_sidecar_beside_mxnet_is_valid() {
        let errors = object_errors(|v| {
            let containers = at(v, WORKER_CONTAINERS).as_array_mut().unwrap();
            let mut sidecar = containers[0].clone();
            sidecar["name"] = json!("logger");
            containers.push(sidecar);
        });
        assert_eq!(errors, vec![]);
    }

    #[test]
    fn unsupported_clean_pod_policy_is_not_supported() {
        let errors = object_errors(|v| *at(v, "/spec/cleanPodPolicy") = json!("Some"));
        one(&errors, NotSupported, "spec.cleanPodPolicy");
    }

    #[test]
    fn zero_active_deadline_is_invalid() {
        let errors = object_errors(|v| {
            obj(at(v, "/spec")).insert("activeDeadlineSeconds".into(), json!(0));
        });
        one(&errors, Invalid, "spec.activeDeadlineSeconds");
        assert_eq!(errors[0].value, Some(json!(0)));
    }

    #[test]
    fn positive_active_deadline_is_valid() {
        let errors = object_errors(|v| {
            obj(at(v, "/spec")).insert("activeDeadlineSeconds".into(), json!(1));
        });
        assert_eq!(errors, vec![]);
    }

    #[test]
    fn negative_ttl_is_invalid_and_zero_is_valid() {
        let errors = object_errors(|v| *at(v, "/spec/ttlSecondsAfterFinished") = json!(-1));
        one(&errors, Invalid, "spec.ttlSecondsAfterFinished");
        let errors = object_errors(|v| *at(v, "/spec/ttlSecondsAfterFinished") = json!(0));
        assert_eq!(errors, vec![]);
    }

    #[test]
    fn negative_backoff_limit_is_invalid_and_zero_is_valid() {
        let errors = object_errors(|v| {
            obj(at(v, "/spec")).insert("backoffLimit".into(), json!(-1));
        });
        one(&errors, Invalid, "spec.backoffLimit");
        let errors = object_errors(|v| {
            obj(at(v, "/spec")).insert("backoffLimit".into(), json!(0));
        });
        assert_eq!(errors, vec![]);
    }

    #[test]
    fn errors_come_metadata_first_then_spec_in_field_order() {
        let errors = object_errors(|v| {
            *at(v, "/metadata/name") = json!("Bad");
            obj(at(v, "/metadata")).insert("finalizers".into(), json!(["x"]));
            *at(v, "/spec/jobMode") = json!("Nope");
            *at(v, "/spec/cleanPodPolicy") = json!("Nope");
            *at(v, "/spec/ttlSecondsAfterFinished") = json!(-5);
            obj(at(v, "/spec")).insert("backoffLimit".into(), json!(-1));
            obj(at(v, "/spec")).insert("activeDeadlineSeconds".into(), json!(-1));
            *at(v, &format!("{WORKER}/replicas")) = json!(0);
            *at(v, "/spec/mxReplicaSpecs/Scheduler/restartPolicy") = json!("Nope");
        });
        assert_eq!(
            summary(&errors),
            vec![
                (Invalid, "metadata.name".into()),
                (Forbidden, "metadata.finalizers".into()),
                (Invalid, "spec.activeDeadlineSeconds".into()),
                (Invalid, "spec.backoffLimit".into()),
                (NotSupported, "spec.cleanPodPolicy".into()),
                (Invalid, "spec.ttlSecondsAfterFinished".into()),
                (NotSupported, "spec.jobMode".into()),
                (
                    NotSupported,
                    "spec.mxReplicaSpecs.Scheduler.restartPolicy".into()
                ),
                (Invalid, "spec.mxReplicaSpecs.Worker.replicas".into()),
            ]
        );
    }

    #[test]
    fn the_same_input_gives_the_same_errors() {
        let make = || {
            object_errors(|v| {
                *at(v, WORKER_CONTAINERS) = json!([]);
                *at(v, "/metadata/namespace") = json!("NS");
            })
        };
        assert_eq!(make(), make());
    }

    // ------------------------------------------------------------ updates

    #[test]
    fn unchanged_update_is_valid() {
        assert_eq!(validate_update(&job(base()), &job(base())), vec![]);
    }

    #[test]
    fn update_reports_object_errors_of_the_new_object() {
        let errors = update_errors(|v| {
            obj(at(v, "/metadata")).insert("labels".into(), json!({"bad key": "x"}));
        });
        one(&errors, Invalid, "metadata.labels");
    }

    #[test]
    fn changing_labels_is_allowed() {
        let errors = update_errors(|v| {
            obj(at(v, "/metadata")).insert("labels".into(), json!({"team": "vision"}));
        });
        assert_eq!(errors, vec![]);
    }

    #[test]
    fn changing_annotations_is_allowed() {
        let errors = update_errors(|v| {
            obj(at(v, "/metadata")).insert("annotations".into(), json!({"note": "rerun"}));
        });
        assert_eq!(errors, vec![]);
    }

    #[test]
    fn changing_run_policy_fields_is_allowed() {
        let errors = update_errors(|v| {
            let spec = obj(at(v, "/spec"));
            spec.insert("activeDeadlineSeconds".into(), json!(3600));
            spec.remove("ttlSecondsAfterFinished");
            spec.insert("cleanPodPolicy".into(), json!("All"));
        });
        assert_eq!(errors, vec![]);
    }

    #[test]
    fn changing_server_owned_metadata_and_status_is_ignored() {
        let errors = update_errors(|v| {
            *at(v, "/metadata/uid") = json!("other");
            *at(v, "/metadata/resourceVersion") = json!("1");
            *at(v, "/metadata/generation") = json!(9);
            *at(v, "/status") = json!({});
        });
        assert_eq!(errors, vec![]);
    }

    #[test]
    fn changing_jobmode_is_immutable() {
        let errors = update_errors(|v| *at(v, "/spec/jobMode") = json!("MXTune"));
        let immutable: Vec<_> = errors.iter().filter(|e| e.detail == IMMUTABLE).collect();
        assert_eq!(immutable.len(), 1, "{errors:#?}");
        assert_eq!(immutable[0].kind, Invalid);
        assert_eq!(immutable[0].field, "spec.jobMode");
        assert_eq!(immutable[0].value, Some(json!("MXTune")));
    }

    #[test]
    fn changing_worker_replicas_is_immutable() {
        let errors = update_errors(|v| *at(v, &format!("{WORKER}/replicas")) = json!(4));
        one(&errors, Invalid, "spec.mxReplicaSpecs.Worker.replicas");
        assert_eq!(errors[0].value, Some(json!(4)));
        assert_eq!(errors[0].detail, "field is immutable");
    }

    #[test]
    fn changing_an_image_is_reported_at_the_containers_list() {
        let errors =
            update_errors(|v| *at(v, &format!("{WORKER_CONTAINERS}/0/image")) = json!("mxnet:2"));
        one(
            &errors,
            Invalid,
            "spec.mxReplicaSpecs.Worker.template.spec.containers",
        );
        let value = errors[0].value.as_ref().unwrap();
        assert_eq!(value[0]["image"], json!("mxnet:2"));
    }

    #[test]
    fn removing_backoff_limit_is_immutable_with_null_value() {
        let mut old = base();
        obj(at(&mut old, "/spec")).insert("backoffLimit".into(), json!(3));
        let errors = validate_update(&job(base()), &job(old));
        one(&errors, Invalid, "spec.backoffLimit");
        assert_eq!(errors[0].value, Some(Value::Null));
    }

    #[test]
    fn adding_restart_policy_is_reported_at_its_own_path() {
        let mut old = base();
        obj(at(&mut old, WORKER)).remove("restartPolicy");
        let errors = validate_update(&job(base()), &job(old));
        one(&errors, Invalid, "spec.mxReplicaSpecs.Worker.restartPolicy");
        assert_eq!(errors[0].value, Some(json!("Never")));
    }

    #[test]
    fn a_key_added_on_one_side_is_reported_whole_at_its_path() {
        let errors = update_errors(|v| {
            obj(at(v, &format!("{WORKER}/template")))
                .insert("metadata".into(), json!({"labels": {"app": "x"}}));
        });
        one(
            &errors,
            Invalid,
            "spec.mxReplicaSpecs.Worker.template.metadata",
        );
        assert_eq!(errors[0].value, Some(json!({"labels": {"app": "x"}})));
    }

    #[test]
    fn removing_a_replica_type_is_reported_at_its_key() {
        let errors = update_errors(|v| {
            obj(at(v, "/spec/mxReplicaSpecs")).remove("Server");
        });
        let immutable: Vec<_> = summary(&errors)
            .into_iter()
            .filter(|(k, _)| *k == Invalid)
            .collect();
        assert_eq!(
            immutable,
            vec![(Invalid, "spec.mxReplicaSpecs.Server".into())]
        );
        let error = errors.iter().find(|e| e.kind == Invalid).unwrap();
        assert_eq!(error.value, Some(Value::Null));
    }

    #[test]
    fn several_changes_give_one_error_each_in_path_order() {
        let errors = update_errors(|v| {
            *at(v, &format!("{WORKER}/replicas")) = json!(2);
            *at(v, "/spec/mxReplicaSpecs/Server/replicas") = json!(2);
            obj(at(v, "/spec")).insert("backoffLimit".into(), json!(1));
        });
        assert_eq!(
            summary(&errors),
            vec![
                (Invalid, "spec.backoffLimit".into()),
                (Invalid, "spec.mxReplicaSpecs.Server.replicas".into()),
                (Invalid, "spec.mxReplicaSpecs.Worker.replicas".into()),
            ]
        );
    }

    #[test]
    fn changing_name_or_namespace_is_immutable() {
        let errors = update_errors(|v| {
            *at(v, "/metadata/name") = json!("other");
            *at(v, "/metadata/namespace") = json!("elsewhere");
        });
        assert_eq!(
            summary(&errors),
            vec![
                (Invalid, "metadata.name".into()),
                (Invalid, "metadata.namespace".into())
            ]
        );
        assert_eq!(errors[0].value, Some(json!("other")));
    }

    #[test]
    fn adding_generate_name_is_immutable() {
        let errors = update_errors(|v| {
            obj(at(v, "/metadata")).insert("generateName".into(), json!("mxnet-"));
        });
        one(&errors, Invalid, "metadata.generateName");
        assert_eq!(errors[0].value, Some(json!("mxnet-")));
    }

    #[test]
    fn adding_owner_references_is_immutable_as_a_whole() {
        let errors = update_errors(|v| {
            obj(at(v, "/metadata")).insert(
                "ownerReferences".into(),
                json!([{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": "u1"}]),
            );
        });
        one(&errors, Invalid, "metadata.ownerReferences");
    }

    #[test]
    fn adding_finalizers_is_forbidden_and_immutable() {
        let errors = update_errors(|v| {
            obj(at(v, "/metadata")).insert("finalizers".into(), json!(["x"]));
        });
        assert_eq!(
            summary(&errors),
            vec![
                (Forbidden, "metadata.finalizers".into()),
                (Invalid, "metadata.finalizers".into())
            ]
        );
    }

    #[test]
    fn empty_and_absent_values_count_as_unchanged() {
        let errors = update_errors(|v| {
            obj(at(v, "/metadata")).insert("ownerReferences".into(), json!([]));
            obj(at(v, &format!("{WORKER}/template"))).insert("metadata".into(), json!({}));
            obj(at(v, &format!("{WORKER_CONTAINERS}/0"))).insert("env".into(), json!([]));
        });
        assert_eq!(errors, vec![]);
    }

    #[test]
    fn map_keys_that_are_not_identifiers_use_brackets() {
        let with_labels = |labels: Value| {
            edited(|v| {
                obj(at(v, &format!("{WORKER}/template")))
                    .insert("metadata".into(), json!({ "labels": labels }));
            })
        };
        let old = with_labels(json!({"team": "a"}));
        let new = with_labels(json!({"team": "a", "app.kubernetes.io/name": "x"}));
        let errors = validate_update(&new, &old);
        one(
            &errors,
            Invalid,
            "spec.mxReplicaSpecs.Worker.template.metadata.labels[app.kubernetes.io/name]",
        );
        assert_eq!(errors[0].value, Some(json!("x")));
    }
}

//! Behaviour of apply and update, example by example, each mirroring what
//! kube-apiserver does in the same situation.

use super::*;
use chrono::{DateTime, TimeZone, Utc};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry, Time};
use serde_json::{json, Value};

/// A stored object and its managed fields.
#[derive(Clone, Debug)]
pub(super) struct Stored {
    pub value: Value,
    pub entries: Vec<ManagedFieldsEntry>,
}

pub(super) fn at(seconds: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000 + seconds, 0)
        .single()
        .expect("a valid time")
}

pub(super) fn writer(manager: &str, seconds: i64) -> Writer<'_> {
    Writer {
        manager,
        subresource: Subresource::Main,
        now: at(seconds),
    }
}

/// An MXJob named `job` with the given spec.
pub(super) fn job(spec: Value) -> Value {
    json!({
        "apiVersion": "kubeflow.org/v1",
        "kind": "MXJob",
        "metadata": {"name": "job", "namespace": "ns"},
        "spec": spec
    })
}

/// What the registry stores: the object with its identity and entries.
pub(super) fn stored(mut value: Value, entries: Vec<ManagedFieldsEntry>) -> Stored {
    value["metadata"]["uid"] = json!("0b7f3c1e");
    value["metadata"]["resourceVersion"] = json!("1");
    if entries.is_empty() {
        if let Some(meta) = value["metadata"].as_object_mut() {
            meta.remove("managedFields");
        }
    } else {
        value["metadata"]["managedFields"] = serde_json::to_value(&entries).expect("entries");
    }
    Stored { value, entries }
}

/// Creates `object` through an ordinary write by `manager`.
pub(super) fn create(object: Value, manager: &str) -> Stored {
    let entries = update(
        Value::Null,
        object.clone(),
        Start::Sent(&[]),
        &writer(manager, 0),
    );
    stored(object, entries)
}

pub(super) fn apply_as(
    live: &Stored,
    config: &Value,
    manager: &str,
    seconds: i64,
    force: bool,
) -> Result<Stored, ApplyError> {
    let applied = apply(
        &live.value,
        config,
        &live.entries,
        &writer(manager, seconds),
        force,
    )?;
    Ok(stored(applied.object, applied.managed_fields))
}

/// An ordinary write of `new` over `live` by `w`, checked to give the same
/// entries from the stored entries (which may skip the full walk) as from
/// the same entries read afresh.
pub(super) fn update_as(live: &Stored, new: Value, w: &Writer<'_>) -> Stored {
    let entries = update(
        live.value.clone(),
        new.clone(),
        Start::Stored(&live.entries),
        w,
    );
    let walked = update(
        live.value.clone(),
        new.clone(),
        Start::Sent(&live.entries),
        w,
    );
    assert_eq!(entries, walked, "stored entries and the full walk differ");
    stored(new, entries)
}

/// The paths owned by one entry.
pub(super) fn owned_by(entries: &[ManagedFieldsEntry], manager: &str, op: Operation) -> FieldSet {
    entries
        .iter()
        .filter(|e| {
            e.manager.as_deref() == Some(manager) && e.operation.as_deref() == Some(op.as_str())
        })
        .map(|e| {
            let doc = e
                .fields_v1
                .as_ref()
                .map(|f| f.0.clone())
                .unwrap_or(json!({}));
            FieldSet::from_fields_v1(&doc).expect("valid fieldsV1")
        })
        .fold(FieldSet::new(), |all, s| all.union(&s))
}

fn texts(set: &FieldSet) -> Vec<String> {
    set.paths().iter().map(ToString::to_string).collect()
}

fn conflicts(result: Result<Stored, ApplyError>) -> Conflicts {
    match result {
        Err(ApplyError::Conflicts(c)) => c,
        other => panic!("expected conflicts, got {other:?}"),
    }
}

fn worker(template_spec: Value) -> Value {
    json!({"mxReplicaSpecs": {"Worker": {"template": {"spec": template_spec}}}})
}

#[test]
fn create_owns_what_it_wrote_but_not_identity_fields() {
    let mut object = job(json!({"backoffLimit": 1}));
    object["metadata"]["labels"] = json!({"team": "a"});
    object["metadata"]["generation"] = json!(1);
    let entries = update(
        Value::Null,
        object.clone(),
        Start::Sent(&[]),
        &writer("kubectl-create", 0),
    );
    assert_eq!(entries.len(), 1);
    let entry = &entries[0];
    assert_eq!(entry.manager.as_deref(), Some("kubectl-create"));
    assert_eq!(entry.operation.as_deref(), Some("Update"));
    assert_eq!(entry.api_version.as_deref(), Some("kubeflow.org/v1"));
    assert_eq!(entry.fields_type.as_deref(), Some("FieldsV1"));
    assert_eq!(entry.subresource, None);
    assert_eq!(entry.time.as_ref().map(|t| t.0), Some(at(0)));
    assert_eq!(
        entry.fields_v1.as_ref().map(|f| &f.0),
        Some(&json!({
            "f:metadata": {"f:labels": {".": {}, "f:team": {}}},
            "f:spec": {".": {}, "f:backoffLimit": {}}
        }))
    );
}

#[test]
fn apply_creates_and_owns_its_configuration() {
    let config = job(
        json!({"mxReplicaSpecs": {"Worker": {"replicas": 2, "template": {"spec": {
            "containers": [{"name": "mxnet", "image": "mxnet:1.9"}]
        }}}}}),
    );
    let applied = apply(&Value::Null, &config, &[], &writer("kubectl", 5), false).unwrap();
    assert!(applied.changed);
    let mut expected = config.clone();
    expected["metadata"]["managedFields"] = serde_json::to_value(&applied.managed_fields).unwrap();
    assert_eq!(applied.object, expected);
    assert_eq!(applied.managed_fields.len(), 1);
    assert_eq!(
        applied.managed_fields[0].operation.as_deref(),
        Some("Apply")
    );
    let fields =
        FieldSet::from_fields_v1(&applied.managed_fields[0].fields_v1.as_ref().unwrap().0).unwrap();
    assert_eq!(
        fields.to_fields_v1_string(),
        r#"{"f:spec":{"f:mxReplicaSpecs":{"f:Worker":{".":{},"f:replicas":{},"f:template":{"f:spec":{"f:containers":{"k:{\"name\":\"mxnet\"}":{".":{},"f:image":{},"f:name":{}}}}}}}}}"#
    );
}

#[test]
fn a_conflict_with_an_updater_reads_like_kubernetes() {
    let live = create(
        job(json!({"ttlSecondsAfterFinished": 100})),
        "kubectl-client-side-apply",
    );
    let err = conflicts(apply_as(
        &live,
        &job(json!({"ttlSecondsAfterFinished": 200})),
        "kubectl",
        1,
        false,
    ));
    assert_eq!(
        err.message(),
        "Apply failed with 1 conflict: conflict with \"kubectl-client-side-apply\" using kubeflow.org/v1: .spec.ttlSecondsAfterFinished"
    );
    let causes = err.causes();
    assert_eq!(causes.len(), 1);
    assert_eq!(causes[0].reason.as_deref(), Some("FieldManagerConflict"));
    assert_eq!(
        causes[0].field.as_deref(),
        Some(".spec.ttlSecondsAfterFinished")
    );
    assert_eq!(
        causes[0].message.as_deref(),
        Some("conflict with \"kubectl-client-side-apply\" using kubeflow.org/v1")
    );
    assert_eq!(ApplyError::Conflicts(err).code(), 409);
}

#[test]
fn many_conflicts_are_grouped_by_owner() {
    let live = create(job(json!({"ttlSecondsAfterFinished": 1})), "b");
    let live = apply_as(
        &live,
        &job(json!({"backoffLimit": 1, "cleanPodPolicy": "All"})),
        "a",
        1,
        false,
    )
    .unwrap();
    let change =
        job(json!({"ttlSecondsAfterFinished": 2, "backoffLimit": 2, "cleanPodPolicy": "None"}));
    let err = conflicts(apply_as(&live, &change, "c", 2, false));
    assert_eq!(err.len(), 3);
    assert_eq!(
        err.message(),
        "Apply failed with 3 conflicts: conflicts with \"a\":\n- .spec.backoffLimit\n- .spec.cleanPodPolicy\nconflicts with \"b\" using kubeflow.org/v1:\n- .spec.ttlSecondsAfterFinished"
    );
}

#[test]
fn applying_the_live_value_shares_ownership() {
    let live = create(job(json!({"backoffLimit": 3})), "creator");
    let after = apply_as(&live, &job(json!({"backoffLimit": 3})), "kubectl", 1, false).unwrap();
    let path = [".spec.backoffLimit".to_string()];
    assert_eq!(
        texts(&owned_by(&after.entries, "kubectl", Operation::Apply)),
        path
    );
    assert!(texts(&owned_by(&after.entries, "creator", Operation::Update)).contains(&path[0]));
    // Now both own it: changing it conflicts with the other.
    let err = conflicts(apply_as(
        &after,
        &job(json!({"backoffLimit": 4})),
        "kubectl",
        2,
        false,
    ));
    assert_eq!(
        err.iter().next().map(|c| c.manager.as_str()),
        Some("creator")
    );
}

#[test]
fn force_takes_the_field_from_its_owners() {
    let live = create(
        job(json!({"ttlSecondsAfterFinished": 100, "backoffLimit": 1})),
        "creator",
    );
    let after = apply_as(
        &live,
        &job(json!({"ttlSecondsAfterFinished": 200})),
        "kubectl",
        1,
        true,
    )
    .unwrap();
    assert_eq!(after.value["spec"]["ttlSecondsAfterFinished"], json!(200));
    assert_eq!(after.value["spec"]["backoffLimit"], json!(1));
    let creator = texts(&owned_by(&after.entries, "creator", Operation::Update));
    assert!(!creator.contains(&".spec.ttlSecondsAfterFinished".to_string()));
    assert!(creator.contains(&".spec.backoffLimit".to_string()));
    assert_eq!(
        texts(&owned_by(&after.entries, "kubectl", Operation::Apply)),
        [".spec.ttlSecondsAfterFinished"]
    );
}

#[test]
fn a_dropped_field_goes_unless_someone_else_owns_it() {
    let mut first = job(json!({"backoffLimit": 1}));
    first["metadata"]["labels"] = json!({"a": "1", "b": "2"});
    let live = apply_as(
        &Stored {
            value: Value::Null,
            entries: vec![],
        },
        &first,
        "kubectl",
        0,
        false,
    )
    .unwrap();
    // Another applier shares label b.
    let mut share = job(json!({}));
    share["metadata"]["labels"] = json!({"b": "2"});
    share.as_object_mut().unwrap().remove("spec");
    let live = apply_as(&live, &share, "other", 1, false).unwrap();
    // kubectl drops both labels and the backoff limit.
    let mut second = job(json!({}));
    second.as_object_mut().unwrap().remove("spec");
    let after = apply_as(&live, &second, "kubectl", 2, false).unwrap();
    assert_eq!(after.value["metadata"]["labels"], json!({"b": "2"}));
    assert_eq!(after.value.get("spec"), None);
    assert!(owned_by(&after.entries, "kubectl", Operation::Apply).is_empty());
    assert_eq!(
        texts(&owned_by(&after.entries, "other", Operation::Apply)),
        [".metadata.labels.b"]
    );
    // kubectl owns nothing any more, so its entry is gone.
    assert!(after
        .entries
        .iter()
        .all(|e| e.manager.as_deref() != Some("kubectl")));
}

#[test]
fn an_updaters_field_survives_the_applier_dropping_it() {
    let live = apply_as(
        &Stored {
            value: Value::Null,
            entries: vec![],
        },
        &job(json!({"backoffLimit": 1, "cleanPodPolicy": "All"})),
        "kubectl",
        0,
        false,
    )
    .unwrap();
    // An ordinary write changes the backoff limit: it now belongs to "edit".
    let mut edited = live.value.clone();
    edited["spec"]["backoffLimit"] = json!(5);
    let live = update_as(&live, edited, &writer("edit", 1));
    let after = apply_as(
        &live,
        &job(json!({"cleanPodPolicy": "All"})),
        "kubectl",
        2,
        false,
    )
    .unwrap();
    assert_eq!(
        after.value["spec"],
        json!({"backoffLimit": 5, "cleanPodPolicy": "All"})
    );
}

#[test]
fn associative_list_items_merge_and_go_by_key() {
    let a = job(worker(
        json!({"containers": [{"name": "mxnet", "image": "mxnet:1"}]}),
    ));
    let live = apply_as(
        &Stored {
            value: Value::Null,
            entries: vec![],
        },
        &a,
        "a",
        0,
        false,
    )
    .unwrap();
    let b = job(worker(json!({"containers": [
        {"name": "sidecar", "image": "proxy:1"},
        {"name": "mxnet", "env": [{"name": "DEBUG", "value": "1"}]}
    ]})));
    let live = apply_as(&live, &b, "b", 1, false).unwrap();
    let containers = |s: &Stored| {
        s.value["spec"]["mxReplicaSpecs"]["Worker"]["template"]["spec"]["containers"].clone()
    };
    assert_eq!(
        containers(&live),
        json!([
            {"name": "sidecar", "image": "proxy:1"},
            {"name": "mxnet", "image": "mxnet:1", "env": [{"name": "DEBUG", "value": "1"}]}
        ])
    );
    // b drops its sidecar and its env var: both go; a's container stays.
    let b2 = job(worker(json!({"containers": [{"name": "mxnet"}]})));
    let after = apply_as(&live, &b2, "b", 2, false).unwrap();
    assert_eq!(
        containers(&after),
        json!([{"name": "mxnet", "image": "mxnet:1"}])
    );
}

#[test]
fn ports_are_keyed_with_the_default_protocol() {
    let config = job(worker(json!({"containers": [{"name": "mxnet", "ports": [
        {"containerPort": 9091},
        {"containerPort": 9091, "protocol": "UDP"}
    ]}]})));
    let set = fields_of(&config);
    let text = texts(&set);
    let prefix = ".spec.mxReplicaSpecs.Worker.template.spec.containers[name=\"mxnet\"].ports";
    assert!(text.contains(&format!("{prefix}[containerPort=9091,protocol=\"TCP\"]")));
    assert!(text.contains(&format!("{prefix}[containerPort=9091,protocol=\"UDP\"]")));
    assert!(set.to_fields_v1_string().contains(
        r#""k:{\"containerPort\":9091,\"protocol\":\"TCP\"}":{".":{},"f:containerPort":{}}"#
    ));
}

#[test]
fn atomic_lists_are_replaced_and_owned_whole() {
    let a = job(worker(
        json!({"tolerations": [{"key": "gpu"}, {"key": "spot"}]}),
    ));
    let live = apply_as(
        &Stored {
            value: Value::Null,
            entries: vec![],
        },
        &a,
        "a",
        0,
        false,
    )
    .unwrap();
    let tolerations = ".spec.mxReplicaSpecs.Worker.template.spec.tolerations";
    assert!(
        texts(&owned_by(&live.entries, "a", Operation::Apply)).contains(&tolerations.to_string())
    );
    let b = job(worker(json!({"tolerations": [{"key": "gpu"}]})));
    let err = conflicts(apply_as(&live, &b, "b", 1, false));
    assert_eq!(
        err.iter().map(|c| c.path.to_string()).collect::<Vec<_>>(),
        [tolerations]
    );
    let after = apply_as(&live, &b, "b", 1, true).unwrap();
    assert_eq!(
        after.value["spec"]["mxReplicaSpecs"]["Worker"]["template"]["spec"]["tolerations"],
        json!([{"key": "gpu"}])
    );
}

#[test]
fn a_replica_type_dropped_from_the_configuration_is_removed() {
    let both =
        job(json!({"mxReplicaSpecs": {"Worker": {"replicas": 2}, "Server": {"replicas": 1}}}));
    let live = apply_as(
        &Stored {
            value: Value::Null,
            entries: vec![],
        },
        &both,
        "kubectl",
        0,
        false,
    )
    .unwrap();
    let one = job(json!({"mxReplicaSpecs": {"Worker": {"replicas": 2}}}));
    let after = apply_as(&live, &one, "kubectl", 1, false).unwrap();
    assert_eq!(
        after.value["spec"],
        json!({"mxReplicaSpecs": {"Worker": {"replicas": 2}}})
    );
}

#[test]
fn applying_the_same_configuration_again_changes_nothing() {
    let config = job(json!({"backoffLimit": 2}));
    let first = apply_as(
        &create(job(json!({"jobMode": "MXTrain"})), "creator"),
        &config,
        "kubectl",
        1,
        false,
    )
    .unwrap();
    let again = apply(
        &first.value,
        &config,
        &first.entries,
        &writer("kubectl", 99),
        false,
    )
    .unwrap();
    assert!(!again.changed);
    assert_eq!(again.managed_fields, first.entries);
    assert_eq!(again.object, first.value);
}

#[test]
fn main_resource_writes_neither_set_nor_own_status() {
    let mut live = create(job(json!({"backoffLimit": 1})), "creator");
    live.value["status"] = json!({"conditions": [{"type": "Running", "status": "True"}]});
    let mut config = job(json!({"backoffLimit": 1}));
    config["status"] = json!({"conditions": []});
    let after = apply_as(&live, &config, "kubectl", 1, false).unwrap();
    assert_eq!(after.value["status"], live.value["status"]);
    assert!(
        !texts(&owned_by(&after.entries, "kubectl", Operation::Apply))
            .iter()
            .any(|p| p.starts_with(".status"))
    );
}

#[test]
fn status_writes_have_their_own_entry_and_own_only_status() {
    let live = create(job(json!({"backoffLimit": 1})), "kubectl-create");
    let mut new = live.value.clone();
    new["status"] = json!({"startTime": "2024-01-01T00:00:00Z"});
    new["spec"]["backoffLimit"] = json!(9);
    let status_writer = Writer {
        manager: "mxjob-controller",
        subresource: Subresource::Status,
        now: at(1),
    };
    let after = update_as(&live, new, &status_writer);
    let entry = after
        .entries
        .iter()
        .find(|e| e.manager.as_deref() == Some("mxjob-controller"))
        .expect("a status entry");
    assert_eq!(entry.subresource.as_deref(), Some("status"));
    // The object had no status: the writer created it, so owns it too.
    assert_eq!(
        texts(&owned_by(
            &after.entries,
            "mxjob-controller",
            Operation::Update
        )),
        [".status", ".status.startTime"]
    );
    // The spec change is not the status writer's, and its owner keeps it.
    assert!(texts(&owned_by(
        &after.entries,
        "kubectl-create",
        Operation::Update
    ))
    .contains(&".spec.backoffLimit".to_string()));
    // Applies through the main resource never conflict on status.
    let mut config = job(json!({"backoffLimit": 9}));
    config["status"] = json!({"startTime": "2025-01-01T00:00:00Z"});
    assert!(apply_as(&after, &config, "kubectl", 2, true).is_ok());
}

#[test]
fn the_first_apply_to_an_untracked_object_keeps_existing_owners_apart() {
    let live = stored(
        job(json!({"backoffLimit": 1, "cleanPodPolicy": "All"})),
        vec![],
    );
    let after = apply_as(&live, &job(json!({"backoffLimit": 1})), "kubectl", 1, false).unwrap();
    let before = texts(&owned_by(
        &after.entries,
        "before-first-apply",
        Operation::Update,
    ));
    assert_eq!(
        before,
        [".spec", ".spec.backoffLimit", ".spec.cleanPodPolicy"]
    );
    // Changing what existed before is a conflict with that owner.
    let err = conflicts(apply_as(
        &after,
        &job(json!({"cleanPodPolicy": "None"})),
        "kubectl",
        2,
        false,
    ));
    assert_eq!(
        err.iter().next().map(|c| c.owner()),
        Some("\"before-first-apply\" using kubeflow.org/v1".to_string())
    );
}

#[test]
fn updates_to_an_untracked_existing_object_stay_untracked() {
    let live = stored(job(json!({"backoffLimit": 1})), vec![]);
    let mut new = live.value.clone();
    new["spec"]["backoffLimit"] = json!(2);
    assert!(update(
        live.value.clone(),
        new.clone(),
        Start::Stored(&[]),
        &writer("kubectl-edit", 1)
    )
    .is_empty());
}

#[test]
fn updates_take_changed_fields_from_everyone_and_removed_fields_leave() {
    let live = apply_as(
        &Stored {
            value: Value::Null,
            entries: vec![],
        },
        &job(json!({"backoffLimit": 1, "cleanPodPolicy": "All", "ttlSecondsAfterFinished": 5})),
        "kubectl",
        0,
        false,
    )
    .unwrap();
    let mut new = live.value.clone();
    new["spec"]["backoffLimit"] = json!(2);
    new["spec"]
        .as_object_mut()
        .unwrap()
        .remove("cleanPodPolicy");
    let after = update_as(&live, new, &writer("kubectl-edit", 1));
    assert_eq!(
        texts(&owned_by(&after.entries, "kubectl", Operation::Apply)),
        [".spec.ttlSecondsAfterFinished"]
    );
    assert_eq!(
        texts(&owned_by(&after.entries, "kubectl-edit", Operation::Update)),
        [".spec.backoffLimit"]
    );
}

#[test]
fn entries_are_ordered_apply_first_then_by_time() {
    let live = create(job(json!({"backoffLimit": 1})), "z-creator");
    let live = apply_as(
        &live,
        &job(json!({"cleanPodPolicy": "All"})),
        "b",
        30,
        false,
    )
    .unwrap();
    let live = apply_as(
        &live,
        &job(json!({"ttlSecondsAfterFinished": 1})),
        "a",
        40,
        false,
    )
    .unwrap();
    let mut new = live.value.clone();
    new["spec"]["activeDeadlineSeconds"] = json!(60);
    let live = update_as(&live, new, &writer("a-editor", 20));
    let order: Vec<(String, String)> = live
        .entries
        .iter()
        .map(|e| (e.operation.clone().unwrap(), e.manager.clone().unwrap()))
        .collect();
    let order: Vec<(&str, &str)> = order
        .iter()
        .map(|(o, m)| (o.as_str(), m.as_str()))
        .collect();
    assert_eq!(
        order,
        [
            ("Apply", "b"),
            ("Apply", "a"),
            ("Update", "z-creator"),
            ("Update", "a-editor")
        ]
    );
}

#[test]
fn the_oldest_updaters_fold_into_ancient_changes() {
    let mut live = create(job(json!({"backoffLimit": 0})), "m00");
    for i in 1..=10 {
        let mut new = live.value.clone();
        new["metadata"]["labels"][format!("l{i}")] = json!("x");
        live = update_as(&live, new, &writer(&format!("m{i:02}"), i));
    }
    let managers: Vec<String> = live
        .entries
        .iter()
        .filter_map(|e| e.manager.clone())
        .collect();
    assert_eq!(managers.len(), 10);
    assert!(managers.contains(&"ancient-changes".to_string()));
    assert!(!managers.contains(&"m00".to_string()) && !managers.contains(&"m01".to_string()));
    let ancient = texts(&owned_by(
        &live.entries,
        "ancient-changes",
        Operation::Update,
    ));
    assert!(ancient.contains(&".spec.backoffLimit".to_string()));
    assert!(ancient.contains(&".metadata.labels.l1".to_string()));
}

#[test]
fn bad_configurations_are_refused() {
    let live = Value::Null;
    let w = writer("kubectl", 0);
    let mut wrong = job(json!({}));
    wrong["kind"] = json!("TFJob");
    let err = apply(&live, &wrong, &[], &w, false).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid object type: kubeflow.org/v1, Kind=TFJob"
    );
    assert_eq!(err.code(), 400);
    let mut with_fields = job(json!({}));
    with_fields["metadata"]["managedFields"] = json!([]);
    assert_eq!(
        apply(&live, &with_fields, &[], &w, false).unwrap_err(),
        ApplyError::ManagedFieldsInConfig
    );
    let duplicate = job(worker(
        json!({"containers": [{"name": "a"}, {"name": "a"}]}),
    ));
    let err = apply(&live, &duplicate, &[], &w, false).unwrap_err();
    assert_eq!(
        err.to_string(),
        ".spec.mxReplicaSpecs.Worker.template.spec.containers: duplicate entries for key [name=\"a\"]"
    );
    assert_eq!(err.code(), 400);
    assert_eq!(
        apply(&live, &json!([]), &[], &w, false).unwrap_err(),
        ApplyError::NotAnObject
    );
    let broken = vec![ManagedFieldsEntry {
        operation: Some("Apply".into()),
        ..Default::default()
    }];
    assert!(matches!(
        apply(&live, &job(json!({})), &broken, &w, false),
        Err(ApplyError::ManagedFields(
            ManagedFieldsError::MissingApiVersion { index: 0 }
        ))
    ));
}

#[test]
fn unknown_fields_are_atomic_leaves() {
    let a = job(json!({"extra": {"x": 1, "y": 2}}));
    let live = apply_as(
        &Stored {
            value: Value::Null,
            entries: vec![],
        },
        &a,
        "a",
        0,
        false,
    )
    .unwrap();
    assert_eq!(
        texts(&owned_by(&live.entries, "a", Operation::Apply)),
        [".spec.extra"]
    );
    let b = job(json!({"extra": {"x": 1}}));
    let after = apply_as(&live, &b, "b", 1, true).unwrap();
    assert_eq!(after.value["spec"]["extra"], json!({"x": 1}));
}

#[test]
fn applying_null_clears_a_field_and_conflicts_like_a_change() {
    let live = create(job(json!({"ttlSecondsAfterFinished": 5})), "creator");
    let config = job(json!({"ttlSecondsAfterFinished": null}));
    let err = conflicts(apply_as(&live, &config, "kubectl", 1, false));
    assert_eq!(
        err.iter().map(|c| c.path.to_string()).collect::<Vec<_>>(),
        [".spec.ttlSecondsAfterFinished"]
    );
    let after = apply_as(&live, &config, "kubectl", 1, true).unwrap();
    assert_eq!(after.value["spec"].get("ttlSecondsAfterFinished"), None);
    // The applier owns the field it set to null; applying again is a no-op.
    assert_eq!(
        texts(&owned_by(&after.entries, "kubectl", Operation::Apply)),
        [".spec.ttlSecondsAfterFinished"]
    );
    let again = apply(
        &after.value,
        &config,
        &after.entries,
        &writer("kubectl", 2),
        false,
    )
    .unwrap();
    assert!(!again.changed);
    assert_eq!(again.managed_fields, after.entries);
}

/// A job created by `kubectl-create`, then its ttl set by `kubectl-edit`
/// at second 10: both stored versions.
fn created_then_edited() -> (Stored, Stored) {
    let live = create(job(json!({"backoffLimit": 1})), "kubectl-create");
    let mut edit = live.value.clone();
    edit["spec"]["ttlSecondsAfterFinished"] = json!(5);
    let edited = update_as(&live, edit, &writer("kubectl-edit", 10));
    (live, edited)
}

#[test]
fn a_writer_changing_only_its_own_fields_moves_only_its_time() {
    let (_, edited) = created_then_edited();
    let mut again = edited.value.clone();
    again["spec"]["ttlSecondsAfterFinished"] = json!(6);
    again["metadata"]["generation"] = json!(3);
    let after = update_as(&edited, again, &writer("kubectl-edit", 20));

    let managers: Vec<_> = after.entries.iter().map(|e| e.manager.clone()).collect();
    assert_eq!(
        managers,
        [Some("kubectl-create".into()), Some("kubectl-edit".into())]
    );
    let fields = |s: &Stored| -> Vec<_> { s.entries.iter().map(|e| e.fields_v1.clone()).collect() };
    assert_eq!(fields(&after), fields(&edited));
    assert_eq!(after.entries[1].time, Some(Time(at(20))));
    assert_eq!(after.entries[0].time, edited.entries[0].time);
}

#[test]
fn a_moved_time_reorders_the_entries() {
    // The creator writes again later, only fields it owns: its entry's
    // time passes the editor's, so it now comes second.
    let (_, edited) = created_then_edited();
    let mut again = edited.value.clone();
    again["spec"]["backoffLimit"] = json!(2);
    let after = update_as(&edited, again, &writer("kubectl-create", 20));
    let managers: Vec<_> = after.entries.iter().map(|e| e.manager.clone()).collect();
    assert_eq!(
        managers,
        [Some("kubectl-edit".into()), Some("kubectl-create".into())]
    );
}

#[test]
fn a_field_taken_from_another_manager_moves_its_owner() {
    let live = create(job(json!({"backoffLimit": 1})), "kubectl-create");
    let mut edit = live.value.clone();
    edit["spec"]["backoffLimit"] = json!(2);
    let after = update_as(&live, edit, &writer("kubectl-edit", 10));
    let path: Vec<PathElement> = ["spec", "backoffLimit"]
        .iter()
        .map(|n| PathElement::Field((*n).into()))
        .collect();
    assert!(owned_by(&after.entries, "kubectl-edit", Operation::Update).contains(&path));
    assert!(!owned_by(&after.entries, "kubectl-create", Operation::Update).contains(&path));
}

#[test]
fn entries_sent_back_with_older_times_give_what_the_full_walk_gives() {
    let (_, edited) = created_then_edited();
    // What a client read before the edit's last write: older times, and
    // so another order.
    let mut sent = edited.entries.clone();
    sent[1].time = Some(Time(at(-5)));
    sent.reverse();
    let start = managed_fields_for_update(Some(&edited.entries), Some(&sent), Subresource::Main);
    assert!(matches!(start, Start::Stored(_)));
    let mut again = edited.value.clone();
    again["spec"]["ttlSecondsAfterFinished"] = json!(6);
    let w = writer("kubectl-edit", 20);
    let quick = update(edited.value.clone(), again.clone(), start, &w);
    let walked = update(edited.value.clone(), again, Start::Sent(&sent), &w);
    assert_eq!(quick, walked);

    // Sent entries whose fields differ are read afresh.
    let mut other = edited.entries.clone();
    other[0].fields_v1 = Some(FieldsV1(json!({"f:metadata": {"f:labels": {}}})));
    let start = managed_fields_for_update(Some(&edited.entries), Some(&other), Subresource::Main);
    assert!(matches!(start, Start::Sent(_)));
}

//! What an update changes, read from the typed objects where that is easy.
//!
//! Managed fields need the fields an ordinary write added, modified and
//! removed. The general answer ([`crate::apply::changes`]) compares the two
//! objects as JSON, which costs about as much as decoding them both. Most
//! replaces and patches of a job change only scalar fields of `spec` (the
//! run-policy fields a job may change while it runs) and, with them,
//! `metadata.generation`; such changes are read here from the typed
//! objects. Anything else gives `None`, and the JSON comparison decides.
//! Debug builds check every answer given here against it.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use mxjob_api::model::{MXJob, MXJobSpec};

use crate::apply::{Changes, Path, PathElement};

/// The changes from `old` to `new` through the main resource when they
/// are all scalar fields of `spec` and `metadata.generation`; `None` when
/// anything else may differ. `status` is not compared: the main resource
/// does not write it.
pub(super) fn scalar_changes(old: &MXJob, new: &MXJob) -> Option<Changes> {
    if old.api_version != new.api_version
        || old.kind != new.kind
        || !equal_but_bookkeeping(&old.metadata, &new.metadata)
    {
        return None;
    }
    let MXJobSpec {
        active_deadline_seconds,
        backoff_limit,
        clean_pod_policy,
        ttl_seconds_after_finished,
        job_mode,
        mx_replica_specs,
    } = &new.spec;
    let was = &old.spec;
    let same_replicas = std::sync::Arc::ptr_eq(mx_replica_specs, &was.mx_replica_specs)
        || *mx_replica_specs == was.mx_replica_specs;
    if *job_mode != was.job_mode || !same_replicas {
        return None;
    }
    let mut changes = Changes::default();
    let generation = (&old.metadata.generation, &new.metadata.generation);
    leaf(&mut changes, ["metadata", "generation"], generation);
    let spec = |name| ["spec", name];
    leaf(
        &mut changes,
        spec("activeDeadlineSeconds"),
        (&was.active_deadline_seconds, active_deadline_seconds),
    );
    leaf(
        &mut changes,
        spec("backoffLimit"),
        (&was.backoff_limit, backoff_limit),
    );
    leaf(
        &mut changes,
        spec("cleanPodPolicy"),
        (&was.clean_pod_policy, clean_pod_policy),
    );
    leaf(
        &mut changes,
        spec("ttlSecondsAfterFinished"),
        (&was.ttl_seconds_after_finished, ttl_seconds_after_finished),
    );
    Some(changes)
}

/// Whether the metadata is equal but for what the walk leaves out or the
/// server keeps (`managedFields`; `resourceVersion`, copied from the
/// stored object; `generation`, compared as a field). Destructured whole,
/// so a new field of `ObjectMeta` must be placed here.
fn equal_but_bookkeeping(old: &ObjectMeta, new: &ObjectMeta) -> bool {
    let ObjectMeta {
        annotations,
        creation_timestamp,
        deletion_grace_period_seconds,
        deletion_timestamp,
        finalizers,
        generate_name,
        generation: _,
        labels,
        managed_fields: _,
        name,
        namespace,
        owner_references,
        resource_version,
        self_link,
        uid,
    } = new;
    *annotations == old.annotations
        && *creation_timestamp == old.creation_timestamp
        && *deletion_grace_period_seconds == old.deletion_grace_period_seconds
        && *deletion_timestamp == old.deletion_timestamp
        && *finalizers == old.finalizers
        && *generate_name == old.generate_name
        && *labels == old.labels
        && *name == old.name
        && *namespace == old.namespace
        && *owner_references == old.owner_references
        && *resource_version == old.resource_version
        && *self_link == old.self_link
        && *uid == old.uid
}

/// A scalar field: added, modified or removed as its JSON would be (an
/// absent `Option` is not written).
fn leaf<T: PartialEq>(
    changes: &mut Changes,
    names: [&str; 2],
    (old, new): (&Option<T>, &Option<T>),
) {
    let path = || {
        Path(
            names
                .iter()
                .map(|n| PathElement::Field((*n).to_string()))
                .collect(),
        )
    };
    match (old, new) {
        (None, Some(_)) => changes.added.push(path()),
        (Some(_), None) => changes.removed.push(path()),
        (Some(a), Some(b)) if a != b => changes.modified.push(path()),
        _ => {}
    }
}

/// Whether two answers name the same paths, whatever their order.
#[cfg(debug_assertions)]
pub(super) fn same(a: &Changes, b: &Changes) -> bool {
    let sorted = |v: &[Path]| {
        let mut v = v.to_vec();
        v.sort();
        v
    };
    sorted(&a.added) == sorted(&b.added)
        && sorted(&a.modified) == sorted(&b.modified)
        && sorted(&a.removed) == sorted(&b.removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seed() -> MXJob {
        serde_json::from_str(mxjob_api::openapi::REPLACE_EXAMPLE).expect("the example decodes")
    }

    fn texts(paths: &[Path]) -> Vec<String> {
        paths.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn run_policy_fields_and_generation_are_read_from_the_typed_objects() {
        let mut old = seed();
        old.spec.ttl_seconds_after_finished = Some(5);
        old.spec.active_deadline_seconds = None;
        old.metadata.generation = Some(1);
        let mut new = old.clone();
        new.spec.ttl_seconds_after_finished = Some(6);
        new.spec.active_deadline_seconds = Some(60);
        new.spec.backoff_limit = None;
        new.metadata.generation = Some(2);
        let changes = scalar_changes(&old, &new).expect("scalar changes");
        assert_eq!(texts(&changes.added), [".spec.activeDeadlineSeconds"]);
        assert_eq!(
            texts(&changes.modified),
            [".metadata.generation", ".spec.ttlSecondsAfterFinished"]
        );
        let removed = if old.spec.backoff_limit.is_some() {
            vec![".spec.backoffLimit".to_string()]
        } else {
            vec![]
        };
        assert_eq!(texts(&changes.removed), removed);
    }

    #[test]
    fn other_changes_are_left_to_the_json_comparison() {
        let old = seed();
        let mut labelled = old.clone();
        labelled
            .metadata
            .labels
            .get_or_insert_with(Default::default)
            .insert("team".into(), "a".into());
        assert_eq!(scalar_changes(&old, &labelled), None);
        let mut replicas = old.clone();
        if let Some(replica) = std::sync::Arc::make_mut(&mut replicas.spec.mx_replica_specs)
            .values_mut()
            .next()
        {
            replica.replicas = Some(replica.replicas.unwrap_or(1) + 1);
        }
        assert_eq!(scalar_changes(&old, &replicas), None);
        assert_eq!(scalar_changes(&old, &old), Some(Changes::default()));
    }
}

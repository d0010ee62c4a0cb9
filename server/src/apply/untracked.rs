//! Fields no manager owns.
//!
//! Two rules of kube-apiserver, both applied here:
//!
//! * Identity and bookkeeping fields are taken out of the set of the
//!   manager that just wrote: `apiVersion`, `kind`, `metadata` itself, and
//!   `metadata.{name, namespace, creationTimestamp, selfLink, uid,
//!   clusterName, generation, managedFields, resourceVersion}`. Only those
//!   exact paths go (fields under `metadata` stay owned), and only from the
//!   writer's set. `deletionTimestamp` and `generateName` are not on the
//!   list upstream, so they are not here either.
//! * Reset fields: a write through one endpoint cannot set what another
//!   endpoint owns, so those fields are left out of the writer's set and of
//!   the comparison that moves ownership. For a custom resource with a
//!   status subresource, as MXJob is, the main resource resets `status`,
//!   and `status` resets `metadata` and `spec` (everything below them).

use super::path::PathElement;
use super::set::FieldSet;
use super::Subresource;
use std::sync::LazyLock;

fn field_path(names: &[&str]) -> Vec<PathElement> {
    names
        .iter()
        .map(|n| PathElement::Field((*n).to_string()))
        .collect()
}

/// The paths taken out of the writer's set after every write.
pub(crate) fn stripped() -> &'static FieldSet {
    static STRIPPED: LazyLock<FieldSet> = LazyLock::new(stripped_set);
    &STRIPPED
}

fn stripped_set() -> FieldSet {
    let mut set = FieldSet::new();
    for top in ["apiVersion", "kind", "metadata"] {
        set.insert(&field_path(&[top]));
    }
    for meta in [
        "name",
        "namespace",
        "creationTimestamp",
        "selfLink",
        "uid",
        "clusterName",
        "generation",
        "managedFields",
        "resourceVersion",
    ] {
        set.insert(&field_path(&["metadata", meta]));
    }
    set
}

/// The fields a write through `subresource` neither sets nor owns; taken
/// away with [`FieldSet::recursive_difference`].
pub(crate) fn reset(subresource: Subresource) -> FieldSet {
    let mut set = FieldSet::new();
    match subresource {
        Subresource::Main => set.insert(&field_path(&["status"])),
        Subresource::Status => {
            set.insert(&field_path(&["metadata"]));
            set.insert(&field_path(&["spec"]));
        }
    }
    set
}

//! Server-side apply for MXJobs: managed fields, and the merge of applied
//! configurations, as kube-apiserver does them.
//!
//! Clients such as `kubectl apply --server-side`, Argo CD, Flux, Helm 4 and
//! kube-rs send an *applied configuration*: the part of the object they
//! have an opinion on. The server merges it into the stored object and
//! records, per manager, which fields each one owns
//! (`metadata.managedFields`), so that managers can share an object
//! without undoing each other: changing a field someone else owns is a
//! conflict, and a field a manager stops applying is removed only if
//! nobody else holds it. No Rust crate implements this, so this module does,
//! as a pure library over `serde_json::Value`: no I/O, no store, no HTTP.
//!
//! Behaviour follows Kubernetes' structured-merge-diff (`fieldpath`,
//! `typed`, `merge`) and the field manager of k8s.io/apimachinery
//! (`pkg/util/managedfields/internal`), so that managed fields written here
//! read the same in a cluster and clients see the same conflicts:
//!
//! * [`apply`]: the applier's `Apply` entry becomes exactly the fields of
//!   its configuration; fields it applied before and no longer applies are
//!   removed unless another manager owns them; a field whose value would
//!   change and that another manager owns is a conflict ([`Conflicts`])
//!   unless forced, and forcing takes the field from its owners.
//! * [`update`]: ordinary writes (create, replace, patch, status writes)
//!   never conflict; the writer's `Update` entry takes every field it
//!   changed, from whoever owned it.
//! * Field sets ([`FieldSet`]) read and write the `fieldsV1` format.
//! * Which parts merge field by field and which are replaced whole comes
//!   from a hand-written schema (`schema.rs`) following the list and map
//!   markers of the core types.
//! * Identity fields (`apiVersion`, `kind`, `metadata.name`, `uid`, …) are
//!   never owned, and a write through the main resource neither sets nor
//!   owns `status` while a status write owns nothing else (`untracked.rs`).
//!
//! Decisions where a pure library over JSON has to choose:
//!
//! * `null`s left by the merge (configuration `null`s, maps emptied by
//!   removal) are dropped from the returned object, as decoding into the
//!   typed MXJob drops them. Ownership is decided before they go, as in
//!   Kubernetes: setting a field to `null` changes it (a conflict if
//!   someone else owns it), and the applier owns the field afterwards.
//! * An `Apply` entry's time changes when the object changes (Kubernetes'
//!   rule) and also when the entry's field set changes, so a new entry
//!   always has a time; applying the same configuration twice changes
//!   nothing, time included. An `Update` entry's time changes when the
//!   write took fields.
//! * Times are stored to the second, as `metav1.Time` serializes them.
//!
//! Files: `value.rs` (order and text of JSON values), `path.rs` (field
//! paths), `set.rs` (field sets), `fieldsv1.rs` (their JSON form),
//! `schema.rs` (how MXJob merges), `typed.rs` (values read through the
//! schema), `merge.rs`, `compare.rs`, `remove.rs` (the three walks over
//! values), `untracked.rs` (fields nobody owns), `managers.rs` (managed
//! fields entries), `conflict.rs` (conflicts and their message),
//! `operations.rs` ([`apply`] and [`update`]).

mod compare;
mod conflict;
mod fieldsv1;
mod managers;
mod merge;
mod operations;
mod path;
mod remove;
mod schema;
mod set;
mod shared;
mod typed;
mod untracked;
mod value;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

pub use conflict::{Conflict, Conflicts};
pub use fieldsv1::FieldsV1Error;
pub use managers::{
    managed_fields_for_update, manager_from_user_agent, ManagedFieldsError, Operation, Start,
    Subresource,
};
pub use operations::{
    apply, changes, retimed, update, update_unmoved, update_unmoved_retimed, Applied, ApplyError,
    Changes, Writer,
};
pub use path::{Path, PathElement};
pub use set::FieldSet;
pub use shared::{SharedEntries, SharedEntry, SharedFields};
pub use typed::{InvalidConfig, ItemProblem};

/// The fields an MXJob value holds, as its applier would own them (before
/// the identity fields are taken out).
pub fn fields_of(object: &serde_json::Value) -> FieldSet {
    typed::fields_of(&schema::MXJOB, object)
}

//! Server-side apply for MXJobs: managed fields, and the merge of applied
//! configurations, as kube-apiserver does them.
//!
//! Clients such as `kubectl apply --server-side`, Argo CD, Flux, Helm 4 and
//! kube-rs send an *applied configuration*: the part of the object they
//! have an opinion on. The server merges it into the stored object and
//! records, per manager, which fields each one owns
//! (`metadata.managedFields`). No Rust crate implements this, so this
//! module does, as a pure library over `serde_json::Value`.
//!
//! Files: `value.rs` (order and text of JSON values), `path.rs` (field
//! paths), `set.rs` (field sets), `fieldsv1.rs` (their JSON form),
//! `schema.rs` (how MXJob merges), `typed.rs` (values read through the
//! schema), `merge.rs`, `compare.rs`, `remove.rs` (the three walks over
//! values).

#![allow(dead_code)] // The walks are used by the operations to come.

mod compare;
mod fieldsv1;
mod merge;
mod path;
mod remove;
mod schema;
mod set;
mod typed;
mod value;

pub use fieldsv1::FieldsV1Error;
pub use path::{Path, PathElement};
pub use set::FieldSet;
pub use typed::{InvalidConfig, ItemProblem};

/// The fields an MXJob value holds, as its applier would own them (before
/// the identity fields are taken out).
pub fn fields_of(object: &serde_json::Value) -> FieldSet {
    typed::fields_of(&schema::MXJOB, object)
}

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
//! This first part holds field paths and field sets, and their `fieldsV1`
//! form: `value.rs` (order and text of JSON values), `path.rs` (field
//! paths), `set.rs` (field sets), `fieldsv1.rs` (their JSON form).

mod fieldsv1;
mod path;
mod set;
mod value;

pub use fieldsv1::FieldsV1Error;
pub use path::{Path, PathElement};
pub use set::FieldSet;

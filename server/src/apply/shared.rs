//! Managed fields as a stored object holds them: each entry's field set
//! (`fieldsV1`) behind an `Arc`, so that the revisions that keep a set
//! share one copy of it.
//!
//! `k8s-openapi` holds `fieldsV1` as a `serde_json::Value`, a tree of a
//! few hundred small allocations for an MXJob's spec. Most writes move no
//! ownership and only change an entry's time (see
//! [`update_unmoved_retimed`](super::update_unmoved_retimed)); copying the
//! trees into every new revision and freeing them with every old one cost
//! more than the rest of such a write. A shared set also keeps its JSON
//! once encoded ([`SharedFields`]), so the stored form of each revision
//! copies it. kube-apiserver keeps `fieldsV1` as raw bytes for the same
//! reason: a set is data to carry, and is only decoded by a write that
//! moves ownership.

use std::sync::{Arc, OnceLock};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use serde_json::value::RawValue;

/// Managed-fields entries whose field sets are shared. Encodes as the
/// entries themselves.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SharedEntries(Vec<SharedEntry>);

/// One entry: everything but its field set, and the set.
#[derive(Clone, Debug, PartialEq)]
pub struct SharedEntry {
    /// The entry, its `fields_v1` always `None`.
    pub entry: ManagedFieldsEntry,
    pub fields: Option<Arc<SharedFields>>,
}

/// A field set, and its compact JSON once it has been encoded: every
/// revision that shares the set copies those bytes instead of encoding
/// the tree again.
#[derive(Debug)]
pub struct SharedFields {
    pub set: FieldsV1,
    json: OnceLock<Option<Box<RawValue>>>,
}

impl SharedFields {
    pub fn new(set: FieldsV1) -> Self {
        SharedFields {
            set,
            json: OnceLock::new(),
        }
    }

    /// The set's compact JSON, made the first time it is asked for.
    fn json(&self) -> Option<&RawValue> {
        self.json
            .get_or_init(|| serde_json::value::to_raw_value(&self.set).ok())
            .as_deref()
    }
}

impl PartialEq for SharedFields {
    fn eq(&self, other: &Self) -> bool {
        self.set == other.set
    }
}

impl SharedEntries {
    /// `entries`, their field sets moved behind `Arc`s (not copied).
    pub fn from_entries(entries: Vec<ManagedFieldsEntry>) -> Self {
        SharedEntries(
            entries
                .into_iter()
                .map(|mut entry| SharedEntry {
                    fields: entry
                        .fields_v1
                        .take()
                        .map(|set| Arc::new(SharedFields::new(set))),
                    entry,
                })
                .collect(),
        )
    }

    /// The entries as `k8s-openapi` holds them (a copy of every set).
    pub fn to_entries(&self) -> Vec<ManagedFieldsEntry> {
        self.0
            .iter()
            .map(|shared| ManagedFieldsEntry {
                fields_v1: shared.fields.as_ref().map(|fields| fields.set.clone()),
                ..shared.entry.clone()
            })
            .collect()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, SharedEntry> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(super) fn from_vec(entries: Vec<SharedEntry>) -> Self {
        SharedEntries(entries)
    }
}

impl Serialize for SharedEntries {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        for entry in &self.0 {
            seq.serialize_element(entry)?;
        }
        seq.end()
    }
}

/// As `ManagedFieldsEntry` encodes: its members in the order of their
/// names, absent ones left out.
impl Serialize for SharedEntry {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let ManagedFieldsEntry {
            api_version,
            fields_type,
            fields_v1: _,
            manager,
            operation,
            subresource,
            time,
        } = &self.entry;
        let mut map = serializer.serialize_map(None)?;
        if let Some(v) = api_version {
            map.serialize_entry("apiVersion", v)?;
        }
        if let Some(v) = fields_type {
            map.serialize_entry("fieldsType", v)?;
        }
        if let Some(fields) = &self.fields {
            match fields.json() {
                Some(json) => map.serialize_entry("fieldsV1", json)?,
                None => map.serialize_entry("fieldsV1", &fields.set)?,
            }
        }
        if let Some(v) = manager {
            map.serialize_entry("manager", v)?;
        }
        if let Some(v) = operation {
            map.serialize_entry("operation", v)?;
        }
        if let Some(v) = subresource {
            map.serialize_entry("subresource", v)?;
        }
        if let Some(v) = time {
            map.serialize_entry("time", v)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn entries() -> Vec<ManagedFieldsEntry> {
        let time = "2026-12-06T08:48:24Z".parse().expect("a time");
        vec![
            ManagedFieldsEntry {
                api_version: Some("kubeflow.org/v1".into()),
                fields_type: Some("FieldsV1".into()),
                fields_v1: Some(FieldsV1(serde_json::json!({
                    "f:spec": {".": {}, "f:ttlSecondsAfterFinished": {}}
                }))),
                manager: Some("kubectl".into()),
                operation: Some("Update".into()),
                subresource: Some("status".into()),
                time: Some(Time(time)),
            },
            ManagedFieldsEntry::default(),
            ManagedFieldsEntry {
                manager: Some("\"quoted\"".into()),
                ..Default::default()
            },
        ]
    }

    #[test]
    fn shared_entries_encode_as_the_entries_do() {
        let entries = entries();
        let shared = SharedEntries::from_entries(entries.clone());
        for _ in 0..2 {
            // The second time from the sets' kept encoding.
            assert_eq!(
                serde_json::to_string(&shared).expect("encodes"),
                serde_json::to_string(&entries).expect("encodes")
            );
        }
    }

    #[test]
    fn shared_entries_give_back_the_entries_they_were_made_from() {
        let entries = entries();
        let shared = SharedEntries::from_entries(entries.clone());
        assert!(shared.iter().all(|s| s.entry.fields_v1.is_none()));
        assert_eq!(shared.to_entries(), entries);
        let copy = shared.clone();
        assert!(Arc::ptr_eq(
            shared
                .iter()
                .next()
                .and_then(|s| s.fields.as_ref())
                .expect("a set"),
            copy.iter()
                .next()
                .and_then(|s| s.fields.as_ref())
                .expect("a set"),
        ));
    }
}

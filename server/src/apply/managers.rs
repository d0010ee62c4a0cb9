//! Managed fields entries: who owns which fields, as stored in
//! `metadata.managedFields`.
//!
//! An owner is identified by its manager name, operation and subresource,
//! and for updates also by the API version (appliers keep one entry however
//! the version changes; with one served version that never matters here).
//! Entries are written in kube-apiserver's order: `Apply` entries before
//! `Update` entries, then by time (whole seconds), manager, API version and
//! subresource. Reading follows kube-apiserver too: an entry must have an
//! operation of `Apply` or `Update`, an API version and `fieldsType:
//! FieldsV1`; when two entries share an identity the later one wins.

use super::fieldsv1::FieldsV1Error;
use super::set::FieldSet;
use super::value;
use chrono::{DateTime, Timelike, Utc};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry, Time};
use std::fmt;

/// The API version every entry is written with.
pub(crate) const API_VERSION: &str = "kubeflow.org/v1";

/// The manager name of a write that gave no name.
const UNKNOWN_MANAGER: &str = "unknown";

/// The longest manager name derived from a user agent.
const MAX_MANAGER_LEN: usize = 128;

/// How an owner came by its fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Operation {
    /// Server-side apply: the fields of the applied configuration.
    Apply,
    /// Any other write: the fields it changed.
    Update,
}

impl Operation {
    /// The name used in managed fields entries.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Apply => "Apply",
            Operation::Update => "Update",
        }
    }
}

/// The endpoint a write went through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Subresource {
    /// The MXJob itself.
    Main,
    /// `…/mxjobs/{name}/status`.
    Status,
}

impl Subresource {
    fn as_str(self) -> &'static str {
        match self {
            Subresource::Main => "",
            Subresource::Status => "status",
        }
    }
}

/// The identity of an owner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ManagerKey {
    pub manager: String,
    pub operation: Operation,
    /// Part of the identity of updaters only; empty for appliers.
    pub api_version: String,
    pub subresource: String,
}

impl ManagerKey {
    pub(crate) fn new(manager: &str, operation: Operation, subresource: Subresource) -> Self {
        let manager = if manager.is_empty() {
            UNKNOWN_MANAGER
        } else {
            manager
        };
        ManagerKey {
            manager: manager.to_string(),
            operation,
            api_version: match operation {
                Operation::Apply => String::new(),
                Operation::Update => API_VERSION.to_string(),
            },
            subresource: subresource.as_str().to_string(),
        }
    }

    /// The identity as the JSON text kube-apiserver uses for it, which also
    /// orders managers in conflict messages.
    pub(crate) fn identifier(&self) -> String {
        let mut out = String::from("{");
        let field = |name: &str, v: &str, out: &mut String| {
            if v.is_empty() {
                return;
            }
            if out.len() > 1 {
                out.push(',');
            }
            value::json_string(name, out);
            out.push(':');
            value::json_string(v, out);
        };
        field("manager", &self.manager, &mut out);
        field("operation", self.operation.as_str(), &mut out);
        field("apiVersion", &self.api_version, &mut out);
        field("subresource", &self.subresource, &mut out);
        out.push('}');
        out
    }

    /// The owner as conflict messages name it: `"kubectl"`, or
    /// `"mxjob-controller" with subresource "status" using kubeflow.org/v1`.
    pub(crate) fn describe(&self) -> String {
        let mut out = value::go_quote(&self.manager);
        if !self.subresource.is_empty() {
            out.push_str(" with subresource ");
            out.push_str(&value::go_quote(&self.subresource));
        }
        if self.operation == Operation::Update {
            out.push_str(" using ");
            out.push_str(&self.api_version);
        }
        out
    }
}

/// One owner and its fields.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Owner {
    pub key: ManagerKey,
    /// The version the fields are in.
    pub api_version: String,
    pub set: FieldSet,
    pub time: Option<Time>,
}

/// Every owner of an object.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Managed {
    pub owners: Vec<Owner>,
}

/// Why stored managed fields could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ManagedFieldsError {
    /// `operation` is neither `Apply` nor `Update`.
    Operation { index: usize },
    /// `apiVersion` is missing or empty.
    MissingApiVersion { index: usize },
    /// `fieldsType` is missing.
    MissingFieldsType { index: usize },
    /// `fieldsType` is not `FieldsV1`.
    FieldsType { index: usize, value: String },
    /// `fieldsV1` is malformed.
    Fields { index: usize, error: FieldsV1Error },
}

impl fmt::Display for ManagedFieldsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ManagedFieldsError::Operation { .. } => {
                f.write_str("operation must be `Apply` or `Update`")
            }
            ManagedFieldsError::MissingApiVersion { .. } => {
                f.write_str("apiVersion must not be empty")
            }
            ManagedFieldsError::MissingFieldsType { index } => {
                write!(f, "missing fieldsType in managed fields entry {index}")
            }
            ManagedFieldsError::FieldsType { index, value } => {
                write!(
                    f,
                    "invalid fieldsType {} in managed fields entry {index}",
                    value::go_quote(value)
                )
            }
            ManagedFieldsError::Fields { index, error } => {
                write!(f, "error decoding managed fields entry {index}: {error}")
            }
        }
    }
}

impl std::error::Error for ManagedFieldsError {}

fn seconds(time: &Option<Time>) -> i64 {
    time.as_ref().map_or(0, |t| t.0.timestamp())
}

impl Managed {
    /// Reads stored entries.
    pub(crate) fn decode(entries: &[ManagedFieldsEntry]) -> Result<Managed, ManagedFieldsError> {
        let mut managed = Managed::default();
        for (index, entry) in entries.iter().enumerate() {
            let operation = match entry.operation.as_deref() {
                Some("Apply") => Operation::Apply,
                Some("Update") => Operation::Update,
                _ => return Err(ManagedFieldsError::Operation { index }),
            };
            let api_version = match entry.api_version.as_deref() {
                Some(v) if !v.is_empty() => v.to_string(),
                _ => return Err(ManagedFieldsError::MissingApiVersion { index }),
            };
            match entry.fields_type.as_deref() {
                Some("FieldsV1") => {}
                None | Some("") => return Err(ManagedFieldsError::MissingFieldsType { index }),
                Some(other) => {
                    return Err(ManagedFieldsError::FieldsType {
                        index,
                        value: other.to_string(),
                    })
                }
            }
            let set = match &entry.fields_v1 {
                Some(FieldsV1(doc)) => FieldSet::from_fields_v1(doc)
                    .map_err(|error| ManagedFieldsError::Fields { index, error })?,
                None => FieldSet::new(),
            };
            let key = ManagerKey {
                manager: entry.manager.clone().unwrap_or_default(),
                operation,
                api_version: match operation {
                    Operation::Apply => String::new(),
                    Operation::Update => api_version.clone(),
                },
                subresource: entry.subresource.clone().unwrap_or_default(),
            };
            managed.put(Owner {
                key,
                api_version,
                set,
                time: entry.time.clone(),
            });
        }
        Ok(managed)
    }

    /// The entries to store, in kube-apiserver's order.
    pub(crate) fn encode(&self) -> Vec<ManagedFieldsEntry> {
        let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_string());
        let mut entries: Vec<ManagedFieldsEntry> = self
            .owners
            .iter()
            .map(|o| ManagedFieldsEntry {
                api_version: Some(o.api_version.clone()),
                fields_type: Some("FieldsV1".to_string()),
                fields_v1: Some(FieldsV1(o.set.to_fields_v1())),
                manager: non_empty(&o.key.manager),
                operation: Some(o.key.operation.as_str().to_string()),
                subresource: non_empty(&o.key.subresource),
                time: o.time.clone(),
            })
            .collect();
        sort_entries(&mut entries);
        entries
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.owners.is_empty()
    }

    pub(crate) fn get(&self, key: &ManagerKey) -> Option<&Owner> {
        self.owners.iter().find(|o| &o.key == key)
    }

    pub(crate) fn get_mut(&mut self, key: &ManagerKey) -> Option<&mut Owner> {
        self.owners.iter_mut().find(|o| &o.key == key)
    }

    pub(crate) fn remove(&mut self, key: &ManagerKey) -> Option<Owner> {
        let at = self.owners.iter().position(|o| &o.key == key)?;
        Some(self.owners.remove(at))
    }

    /// Adds an owner, replacing one of the same identity.
    pub(crate) fn put(&mut self, owner: Owner) {
        match self.get_mut(&owner.key) {
            Some(existing) => *existing = owner,
            None => self.owners.push(owner),
        }
    }

    /// Forgets owners that own nothing.
    pub(crate) fn drop_empty(&mut self) {
        self.owners.retain(|o| !o.set.is_empty());
    }

    /// Every owned field.
    pub(crate) fn all_fields(&self) -> FieldSet {
        self.owners
            .iter()
            .fold(FieldSet::new(), |all, o| all.union(&o.set))
    }
}

/// `now` to the second, the precision managed fields are stored with, so
/// the entries returned equal the entries read back.
pub(crate) fn stamp(now: DateTime<Utc>) -> Time {
    Time(now.with_nanosecond(0).unwrap_or(now))
}

/// The manager name kube-apiserver gives a write without `fieldManager`:
/// the user agent up to its first `/` (`kubectl/v1.33.0 (linux/amd64)`
/// gives `kubectl`), without unprintable characters, at most 128 bytes.
/// Apply requests must name their manager instead.
pub fn manager_from_user_agent(user_agent: &str) -> String {
    let prefix = user_agent.split('/').next().unwrap_or_default();
    let mut out = String::new();
    for c in prefix.chars().filter(|c| value::printable(*c)) {
        if out.len() + c.len_utf8() > MAX_MANAGER_LEN {
            break;
        }
        out.push(c);
    }
    out
}

/// The entries an ordinary write starts from.
#[derive(Clone, Copy, Debug)]
pub enum Start<'a> {
    /// Entries in this module's form: one entry per owner, none empty,
    /// `fieldsV1` as [`FieldSet::to_fields_v1`] writes it. The stored
    /// entries are (this module wrote them), and so are sent ones that
    /// differ from them only in their times (a client sending back an
    /// object it read before the last write), in whatever order.
    Stored(&'a [ManagedFieldsEntry]),
    /// Entries from a request, read afresh.
    Sent(&'a [ManagedFieldsEntry]),
}

impl<'a> Start<'a> {
    /// The entries themselves.
    pub fn entries(self) -> &'a [ManagedFieldsEntry] {
        match self {
            Start::Stored(entries) | Start::Sent(entries) => entries,
        }
    }
}

/// The entries an ordinary write starts from, chosen as kube-apiserver
/// chooses them: a status write always keeps the stored entries; otherwise
/// entries the client sent replace the stored ones when they are valid and
/// non-empty, an empty list (or one empty entry) clears them, and anything
/// else (absent or invalid) keeps the stored entries. Sent entries equal to
/// the stored ones (a client sending back what it read) count as stored.
pub fn managed_fields_for_update<'a>(
    stored: Option<&'a [ManagedFieldsEntry]>,
    sent: Option<&'a [ManagedFieldsEntry]>,
    subresource: Subresource,
) -> Start<'a> {
    let stored = stored.unwrap_or_default();
    if subresource == Subresource::Status {
        return Start::Stored(stored);
    }
    match sent {
        Some([]) => Start::Sent(&[]),
        Some([only]) if *only == ManagedFieldsEntry::default() => Start::Sent(&[]),
        Some(sent) if same_times(sent, stored) && sent == stored => Start::Stored(stored),
        Some(sent) if same_but_times(sent, stored) => Start::Stored(sent),
        Some(sent) if Managed::decode(sent).is_ok() => Start::Sent(sent),
        _ => Start::Stored(stored),
    }
}

/// Whether `sent` are the `stored` entries, each with its time perhaps
/// changed, perhaps in another order: each sent entry matches a stored
/// one not matched before, and the lengths are equal, so the matching is
/// one to one. Each pair is compared once (`fieldsV1` last).
fn same_but_times(sent: &[ManagedFieldsEntry], stored: &[ManagedFieldsEntry]) -> bool {
    if sent.len() != stored.len() {
        return false;
    }
    let mut matched = vec![false; stored.len()];
    sent.iter().all(|entry| {
        let found = stored
            .iter()
            .enumerate()
            .position(|(i, other)| !matched[i] && same_but_time(entry, other));
        found.map(|i| matched[i] = true).is_some()
    })
}

/// Whether the lists are as long and their entries' times equal, pair by
/// pair: a cheap test before comparing them whole.
fn same_times(sent: &[ManagedFieldsEntry], stored: &[ManagedFieldsEntry]) -> bool {
    sent.len() == stored.len() && sent.iter().zip(stored).all(|(a, b)| a.time == b.time)
}

/// Whether two entries are equal but for their time.
fn same_but_time(a: &ManagedFieldsEntry, b: &ManagedFieldsEntry) -> bool {
    let ManagedFieldsEntry {
        api_version,
        fields_type,
        fields_v1,
        manager,
        operation,
        subresource,
        time: _,
    } = a;
    *api_version == b.api_version
        && *fields_type == b.fields_type
        && *manager == b.manager
        && *operation == b.operation
        && *subresource == b.subresource
        && *fields_v1 == b.fields_v1
}

/// Puts entries in kube-apiserver's order: `Apply` before `Update`, then
/// by time (whole seconds), manager, API version and subresource.
pub(crate) fn sort_entries(entries: &mut [ManagedFieldsEntry]) {
    sort_entries_by(entries, |e| e);
}

/// [`sort_entries`] of items that each hold an entry.
pub(crate) fn sort_entries_by<T>(items: &mut [T], entry: impl Fn(&T) -> &ManagedFieldsEntry) {
    fn text(v: &Option<String>) -> &str {
        v.as_deref().unwrap_or_default()
    }
    items.sort_by(|p, q| {
        let (p, q) = (entry(p), entry(q));
        let operation = |e: &ManagedFieldsEntry| text(&e.operation) != Operation::Apply.as_str();
        operation(p)
            .cmp(&operation(q))
            .then_with(|| seconds(&p.time).cmp(&seconds(&q.time)))
            .then_with(|| text(&p.manager).cmp(text(&q.manager)))
            .then_with(|| text(&p.api_version).cmp(text(&q.api_version)))
            .then_with(|| text(&p.subresource).cmp(text(&q.subresource)))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_and_descriptions() {
        let apply = ManagerKey::new("kubectl", Operation::Apply, Subresource::Main);
        assert_eq!(
            apply.identifier(),
            r#"{"manager":"kubectl","operation":"Apply"}"#
        );
        assert_eq!(apply.describe(), "\"kubectl\"");
        let status = ManagerKey::new("ctl", Operation::Update, Subresource::Status);
        assert_eq!(
            status.identifier(),
            r#"{"manager":"ctl","operation":"Update","apiVersion":"kubeflow.org/v1","subresource":"status"}"#
        );
        assert_eq!(
            status.describe(),
            "\"ctl\" with subresource \"status\" using kubeflow.org/v1"
        );
        assert_eq!(
            ManagerKey::new("", Operation::Apply, Subresource::Main).manager,
            "unknown"
        );
    }

    #[test]
    fn decoding_checks_what_kubernetes_checks() {
        let good = ManagedFieldsEntry {
            api_version: Some(API_VERSION.into()),
            fields_type: Some("FieldsV1".into()),
            manager: Some("m".into()),
            operation: Some("Update".into()),
            ..Default::default()
        };
        assert_eq!(
            Managed::decode(std::slice::from_ref(&good))
                .unwrap()
                .owners
                .len(),
            1
        );
        let bad_op = ManagedFieldsEntry {
            operation: Some("Patch".into()),
            ..good.clone()
        };
        assert_eq!(
            Managed::decode(&[bad_op]).unwrap_err(),
            ManagedFieldsError::Operation { index: 0 }
        );
        let no_type = ManagedFieldsEntry {
            fields_type: None,
            ..good.clone()
        };
        assert_eq!(
            Managed::decode(&[good.clone(), no_type])
                .unwrap_err()
                .to_string(),
            "missing fieldsType in managed fields entry 1"
        );
    }

    #[test]
    fn user_agents_give_manager_names() {
        assert_eq!(
            manager_from_user_agent("kubectl/v1.33.0 (linux/amd64)"),
            "kubectl"
        );
        assert_eq!(manager_from_user_agent("a\u{7}b/1"), "ab");
        assert_eq!(manager_from_user_agent(&"x".repeat(200)).len(), 128);
    }

    #[test]
    fn sent_entries_replace_stored_ones_only_when_usable() {
        let stored = vec![ManagedFieldsEntry {
            manager: Some("stored".into()),
            ..Default::default()
        }];
        let sent = vec![ManagedFieldsEntry {
            api_version: Some(API_VERSION.into()),
            fields_type: Some("FieldsV1".into()),
            manager: Some("sent".into()),
            operation: Some("Update".into()),
            ..Default::default()
        }];
        let pick = |s: Option<&[ManagedFieldsEntry]>, sub| {
            managed_fields_for_update(Some(&stored), s, sub)
                .entries()
                .first()
                .and_then(|e| e.manager.clone())
        };
        assert_eq!(
            pick(Some(&sent), Subresource::Main).as_deref(),
            Some("sent")
        );
        assert_eq!(
            pick(Some(&sent), Subresource::Status).as_deref(),
            Some("stored")
        );
        assert_eq!(pick(None, Subresource::Main).as_deref(), Some("stored"));
        assert_eq!(pick(Some(&[]), Subresource::Main), None);
        let invalid = vec![ManagedFieldsEntry::default(), ManagedFieldsEntry::default()];
        assert_eq!(
            pick(Some(&invalid), Subresource::Main).as_deref(),
            Some("stored")
        );
    }
}

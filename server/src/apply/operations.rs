//! The two writes that move ownership: apply and update.
//!
//! Both follow kube-apiserver's field manager; the module docs of
//! [`super`] list the rules. The steps of an apply:
//!
//! 1. Check the configuration: an MXJob (`kubeflow.org/v1`, `MXJob`)
//!    without `metadata.managedFields`, every list item keyed once.
//! 2. If the object has no managed fields yet, record its current fields as
//!    owned by `before-first-apply` (an `Update` owner), so that they are
//!    neither silently claimed nor removed.
//! 3. Merge the configuration into the live object; the applier now owns
//!    exactly the configuration's fields.
//! 4. Remove what the applier owned before and no longer applies, unless
//!    another owner (or the new configuration) still holds it.
//! 5. Compare live and result: fields the result changes that others own
//!    are conflicts; without `force` the apply fails, with it the others
//!    lose them. Fields the result removes leave every owner.

use super::compare::{compare, Comparison};
use super::conflict::{Conflict, Conflicts};
use super::fieldsv1;
use super::managers::{
    sort_entries, sort_entries_by, stamp, Managed, ManagedFieldsError, ManagerKey, Operation,
    Owner, Start, Subresource, API_VERSION,
};
use super::merge::merge;
use super::path::Path;
use super::remove::remove;
use super::schema::MXJOB;
use super::set::FieldSet;
use super::shared::{SharedEntries, SharedEntry};
use super::typed::{drop_nulls, fields_of, validate_config, with_named_fields, InvalidConfig};
use super::untracked::{reset, stripped};
use super::value;
use chrono::{DateTime, Utc};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, Time};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::fmt;

/// The kind of object this module merges.
const KIND: &str = "MXJob";

/// The owner of the fields an object had before its first apply.
const BEFORE_FIRST_APPLY: &str = "before-first-apply";

/// The owner oldest updaters are folded into past [`MAX_UPDATERS`].
const ANCIENT_CHANGES: &str = "ancient-changes";

/// The most `Update` owners an object keeps.
const MAX_UPDATERS: usize = 10;

/// Who writes, through which endpoint, and when.
#[derive(Clone, Copy, Debug)]
pub struct Writer<'a> {
    /// The field manager: the `fieldManager` parameter, or for writes other
    /// than apply [`super::manager_from_user_agent`]; empty means `unknown`.
    pub manager: &'a str,
    /// The endpoint written through.
    pub subresource: Subresource,
    /// The time of the write, stored to the second.
    pub now: DateTime<Utc>,
}

/// The result of an apply.
#[derive(Clone, Debug, PartialEq)]
pub struct Applied {
    /// The object to store, `metadata.managedFields` included.
    pub object: Value,
    /// The entries also found in `object.metadata.managedFields`.
    pub managed_fields: Vec<ManagedFieldsEntry>,
    /// Whether anything but the managed fields differs from the live
    /// object. When it does not and the entries equal the stored ones, the
    /// apply changed nothing.
    pub changed: bool,
}

/// Why an apply failed.
#[derive(Clone, Debug, PartialEq)]
pub enum ApplyError {
    /// Fields owned by others would change (409 `Conflict` upstream).
    Conflicts(Conflicts),
    /// The configuration is not a JSON object (400).
    NotAnObject,
    /// The configuration is not a `kubeflow.org/v1` `MXJob` (400).
    WrongKind { api_version: String, kind: String },
    /// The configuration sets `metadata.managedFields` (400).
    ManagedFieldsInConfig,
    /// A list of the configuration has unkeyed or repeated items (400,
    /// the text prefixed with `failed to create typed patch object
    /// (<ns>/<name>; <gvk>): ` as kube-apiserver words it; kube-apiserver
    /// answers 500, which tells a client the fault is the server's when it
    /// is the request's).
    Invalid(InvalidConfig),
    /// The stored managed fields cannot be read (500).
    ManagedFields(ManagedFieldsError),
}

impl ApplyError {
    /// The HTTP status of the answer (kube-apiserver's, but 400 for an
    /// invalid configuration: see [`ApplyError::Invalid`]).
    pub fn code(&self) -> u16 {
        match self {
            ApplyError::Conflicts(_) => 409,
            ApplyError::NotAnObject
            | ApplyError::WrongKind { .. }
            | ApplyError::ManagedFieldsInConfig
            | ApplyError::Invalid(_) => 400,
            ApplyError::ManagedFields(_) => 500,
        }
    }
}

impl fmt::Display for ApplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApplyError::Conflicts(c) => f.write_str(&c.message()),
            ApplyError::NotAnObject => f.write_str("the applied configuration must be an object"),
            ApplyError::WrongKind { api_version, kind } => {
                let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
                write!(f, "invalid object type: {group}/{version}, Kind={kind}")
            }
            ApplyError::ManagedFieldsInConfig => f.write_str("metadata.managedFields must be nil"),
            ApplyError::Invalid(e) => write!(f, "{e}"),
            ApplyError::ManagedFields(e) => write!(f, "failed to decode managed fields: {e}"),
        }
    }
}

impl std::error::Error for ApplyError {}

/// Server-side apply of `config` (the applied configuration, a partial
/// MXJob) to `live` (the stored object, or `null`/`{}` when the apply
/// creates it), given the stored `managed_fields`.
pub fn apply(
    live: &Value,
    config: &Value,
    managed_fields: &[ManagedFieldsEntry],
    writer: &Writer<'_>,
    force: bool,
) -> Result<Applied, ApplyError> {
    check_config(config)?;
    let mut managed = Managed::decode(managed_fields).map_err(ApplyError::ManagedFields)?;
    let live = without_managed_fields(live);
    let reset = reset(writer.subresource);
    let now = stamp(writer.now);

    if managed.is_empty() {
        let empty = json!({"apiVersion": API_VERSION, "kind": KIND});
        let key = ManagerKey::new(BEFORE_FIRST_APPLY, Operation::Update, writer.subresource);
        record_update(&empty, &live, &mut managed, &key, &reset, &now);
    }

    let key = ManagerKey::new(writer.manager, Operation::Apply, writer.subresource);
    let merged = merge(&MXJOB, Some(&live), Some(config)).unwrap_or_else(|| live.clone());
    let previous = managed.remove(&key);
    managed.put(Owner {
        key: key.clone(),
        api_version: API_VERSION.to_string(),
        set: fields_of(&MXJOB, config).recursive_difference(&reset),
        time: previous.as_ref().and_then(|p| p.time.clone()),
    });
    let pruned = prune(&merged, &managed, previous.as_ref().map(|p| &p.set));
    let mut object = reset_object(&live, pruned, writer.subresource);
    // Compared before its nulls go: setting a field to null changes it.
    let diff = compare(&MXJOB, &live, &object).without(&reset);
    drop_nulls(&mut object);
    let changed_fields = diff.changed();
    let conflicts: Vec<Conflict> = managed
        .owners
        .iter()
        .filter(|o| o.key != key)
        .flat_map(|o| {
            let clash = o.set.intersection(&changed_fields);
            clash
                .paths()
                .into_iter()
                .map(|path| Conflict::new(&o.key, path))
                .collect::<Vec<_>>()
        })
        .collect();
    if !force && !conflicts.is_empty() {
        return Err(ApplyError::Conflicts(Conflicts::new(conflicts)));
    }
    for owner in managed.owners.iter_mut().filter(|o| o.key != key) {
        owner.set = owner
            .set
            .difference(&changed_fields)
            .difference(&diff.removed);
    }
    if let Some(mine) = managed.get_mut(&key) {
        mine.set = mine.set.difference(stripped());
    }
    managed.drop_empty();

    let changed = !value::equal(&live, &object);
    if let Some(mine) = managed.get_mut(&key) {
        let set_changed = previous.as_ref().is_none_or(|p| p.set != mine.set);
        if changed || set_changed || mine.time.is_none() {
            mine.time = Some(now);
        }
    }
    let managed_fields = managed.encode();
    set_managed_fields(&mut object, &managed_fields);
    Ok(Applied {
        object,
        managed_fields,
        changed,
    })
}

/// The managed fields after an ordinary write (create, replace, patch, or
/// a status write) changed `old` into `new`, starting from `start`
/// ([`super::managed_fields_for_update`] picks it); `old` is `null` or `{}`
/// for a create.
///
/// The writer's entry gains every field whose value it set (added or
/// modified), and those fields leave every other entry: an update takes
/// ownership without conflict. Removed fields leave every entry. Entries
/// left empty are dropped. Unreadable entries are discarded, and an
/// existing object (one with a `uid`) without entries stays untracked until
/// its first apply, as in kube-apiserver.
///
/// Most writes move no ownership: a client changes fields it already owns
/// alone. For stored entries that case is answered from the entries as
/// they are ([`unmoved`]), without reading every entry's fields into sets
/// and writing them back, which costs more than the rest of a replace.
pub fn update(
    old: Value,
    new: Value,
    start: Start<'_>,
    writer: &Writer<'_>,
) -> Vec<ManagedFieldsEntry> {
    let old = into_without_managed_fields(old);
    let new = into_without_managed_fields(new);
    let key = ManagerKey::new(writer.manager, Operation::Update, writer.subresource);
    let diff = compare(&MXJOB, &old, &new).without(&reset(writer.subresource));
    let now = stamp(writer.now);
    if let Start::Stored(entries) = start {
        if let Some(entries) = unmoved(entries, &Changes::from(&diff), &key, &now) {
            return entries;
        }
    }
    let mut managed = Managed::decode(start.entries()).unwrap_or_default();
    let has_uid = old
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .is_some_and(|uid| !uid.is_empty());
    if managed.is_empty() && has_uid {
        return Vec::new();
    }
    take_changed(&diff, &mut managed, &key, &now);
    cap_updaters(&mut managed);
    managed.encode()
}

/// The fields an ordinary write added, modified and removed, as
/// [`changes`] finds them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    pub added: Vec<Path>,
    pub modified: Vec<Path>,
    pub removed: Vec<Path>,
}

impl From<&Comparison> for Changes {
    fn from(diff: &Comparison) -> Self {
        Changes {
            added: diff.added.paths(),
            modified: diff.modified.paths(),
            removed: diff.removed.paths(),
        }
    }
}

/// What an ordinary write through `subresource` changes from `old` to
/// `new`, the fields it cannot set (see `untracked.rs`) left out.
pub fn changes(old: &Value, new: &Value, subresource: Subresource) -> Changes {
    let old = without_managed_fields(old);
    let new = without_managed_fields(new);
    Changes::from(&compare(&MXJOB, &old, &new).without(&reset(subresource)))
}

/// [`update`] for a caller that knows what the write changed without the
/// objects' JSON: the entries when the write moves no ownership (see
/// [`unmoved`]), `None` when [`update`] must decide.
pub fn update_unmoved(
    changes: &Changes,
    start: Start<'_>,
    writer: &Writer<'_>,
) -> Option<Vec<ManagedFieldsEntry>> {
    let Start::Stored(entries) = start else {
        return None;
    };
    let key = ManagerKey::new(writer.manager, Operation::Update, writer.subresource);
    unmoved(entries, changes, &key, &stamp(writer.now))
}

/// [`update_unmoved`] for a replace that sent back the `stored` entries
/// with other times, `times` (one per entry, in the stored order): what
/// [`update_unmoved`] gives starting from those entries
/// (`Start::Stored`), the field sets shared with the stored entries, not
/// copied. Which entry is whose and what each holds does not depend on the
/// times, so the stored entries answer the question; only the result
/// carries the times sent.
pub fn update_unmoved_retimed(
    changes: &Changes,
    stored: &SharedEntries,
    times: &[Option<Time>],
    writer: &Writer<'_>,
) -> Option<SharedEntries> {
    if stored.len() != times.len() {
        return None;
    }
    let key = ManagerKey::new(writer.manager, Operation::Update, writer.subresource);
    let view: Vec<_> = stored
        .iter()
        .map(|s| (&s.entry, s.fields.as_deref().map(|f| &f.set.0)))
        .collect();
    let unmoved = Unmoved::of(&view, changes, &key)?;
    let mut entries: Vec<SharedEntry> = stored
        .iter()
        .zip(times)
        .map(|(shared, time)| SharedEntry {
            entry: ManagedFieldsEntry {
                time: time.clone(),
                ..shared.entry.clone()
            },
            fields: shared.fields.clone(),
        })
        .collect();
    if unmoved.sets_anything {
        entries[unmoved.writer].entry.time = Some(stamp(writer.now));
    }
    sort_entries_by(&mut entries, |s| &s.entry);
    Some(SharedEntries::from_vec(entries))
}

/// The `stored` entries with the `times` sent for them (one per entry, in
/// order), each with a copy of its field set.
pub fn retimed(stored: &SharedEntries, times: &[Option<Time>]) -> Vec<ManagedFieldsEntry> {
    stored
        .to_entries()
        .into_iter()
        .zip(times)
        .map(|(entry, time)| ManagedFieldsEntry {
            time: time.clone(),
            ..entry
        })
        .collect()
}

/// The entries after an update that moves no ownership: every field it
/// sets is already the writer's alone (identity fields, which nobody owns,
/// aside) and no field it removes is anyone's. Then the sets stay as they
/// are and only the writer's time moves, which is what decoding the sets,
/// [`take_changed`] and encoding them again would give. `None` when
/// ownership moves, or when the entries are not as this module writes them
/// (see [`Start::Stored`]): the full walk decides then.
fn unmoved(
    entries: &[ManagedFieldsEntry],
    diff: &Changes,
    key: &ManagerKey,
    now: &Time,
) -> Option<Vec<ManagedFieldsEntry>> {
    let view: Vec<_> = entries
        .iter()
        .map(|e| (e, e.fields_v1.as_ref().map(|f| &f.0)))
        .collect();
    let unmoved = Unmoved::of(&view, diff, key)?;
    Some(unmoved.entries(entries.to_vec(), now))
}

/// An update that moves no ownership (see [`unmoved`]): the writer's
/// entry, and whether its time moves.
struct Unmoved {
    writer: usize,
    sets_anything: bool,
}

impl Unmoved {
    /// `None` when the update moves ownership or the entries are not as
    /// this module writes them.
    /// `entries`: each entry and its field set.
    fn of(
        entries: &[(&ManagedFieldsEntry, Option<&Value>)],
        diff: &Changes,
        key: &ManagerKey,
    ) -> Option<Self> {
        let docs: Vec<&Value> = entries
            .iter()
            .map(|&(entry, fields)| stored_fields(entry, fields))
            .collect::<Option<_>>()?;
        let updaters = entries
            .iter()
            .filter(|(e, _)| e.operation.as_deref() == Some(Operation::Update.as_str()))
            .count();
        if updaters > MAX_UPDATERS {
            return None;
        }
        let writer = entries.iter().position(|(e, _)| is_entry_of(e, key))?;
        let mut sets_anything = false;
        for path in diff.added.iter().chain(&diff.modified) {
            let mine = !stripped().contains(&path.0);
            for (i, doc) in docs.iter().enumerate() {
                let expected = i == writer && mine;
                if fieldsv1::holds(doc, &path.0)? != expected {
                    return None;
                }
            }
            sets_anything |= mine;
        }
        for path in &diff.removed {
            for doc in &docs {
                if fieldsv1::holds(doc, &path.0)? {
                    return None;
                }
            }
        }
        Some(Unmoved {
            writer,
            sets_anything,
        })
    }

    /// `entries` (those it was found for, or a copy with other times) after
    /// the update, sorted.
    fn entries(&self, mut entries: Vec<ManagedFieldsEntry>, now: &Time) -> Vec<ManagedFieldsEntry> {
        if self.sets_anything {
            entries[self.writer].time = Some(now.clone());
        }
        sort_entries(&mut entries);
        entries
    }
}

/// An entry's `fieldsV1` if the entry is one this module could have
/// written: a known operation, an API version, `FieldsV1` fields that are
/// not empty, no empty names.
fn stored_fields<'a>(entry: &ManagedFieldsEntry, fields: Option<&'a Value>) -> Option<&'a Value> {
    let operation = entry.operation.as_deref();
    let known = operation == Some(Operation::Apply.as_str())
        || operation == Some(Operation::Update.as_str());
    let named = |v: &Option<String>| v.as_deref() != Some("");
    let well_formed = known
        && entry.api_version.as_deref().is_some_and(|v| !v.is_empty())
        && entry.fields_type.as_deref() == Some("FieldsV1")
        && named(&entry.manager)
        && named(&entry.subresource);
    fields.filter(|doc| well_formed && doc.as_object().is_some_and(|d| !d.is_empty()))
}

/// Whether `entry` is the one of the owner `key`.
fn is_entry_of(entry: &ManagedFieldsEntry, key: &ManagerKey) -> bool {
    let text = |v: &Option<String>| v.as_deref().unwrap_or_default().to_string();
    entry.operation.as_deref() == Some(key.operation.as_str())
        && text(&entry.manager) == key.manager
        && text(&entry.subresource) == key.subresource
        && (key.operation == Operation::Apply
            || entry.api_version.as_deref() == Some(key.api_version.as_str()))
}

fn check_config(config: &Value) -> Result<(), ApplyError> {
    let Value::Object(fields) = config else {
        return Err(ApplyError::NotAnObject);
    };
    let text = |name: &str| {
        fields
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let (api_version, kind) = (text("apiVersion"), text("kind"));
    if api_version != API_VERSION || kind != KIND {
        return Err(ApplyError::WrongKind { api_version, kind });
    }
    if config
        .pointer("/metadata/managedFields")
        .is_some_and(|v| !v.is_null())
    {
        return Err(ApplyError::ManagedFieldsInConfig);
    }
    validate_config(&MXJOB, config).map_err(ApplyError::Invalid)
}

/// A copy of an object without its managed fields; `null` becomes `{}`.
fn without_managed_fields(v: &Value) -> Value {
    into_without_managed_fields(v.clone())
}

/// An object without its managed fields, taken out in place; `null`
/// becomes `{}`.
fn into_without_managed_fields(mut v: Value) -> Value {
    if v.is_null() {
        return Value::Object(Map::new());
    }
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
    v
}

fn set_managed_fields(object: &mut Value, entries: &[ManagedFieldsEntry]) {
    let Some(fields) = object.as_object_mut() else {
        return;
    };
    let meta = fields
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    let Some(meta) = meta.as_object_mut() else {
        return;
    };
    match serde_json::to_value(entries) {
        Ok(list) if !entries.is_empty() => {
            meta.insert("managedFields".to_string(), list);
        }
        _ => {
            meta.remove("managedFields");
        }
    }
}

/// Removes what the applier owned in `last` and no longer applies, unless
/// someone still owns it. Fields under a removed named struct field that
/// nobody owns are kept: only fields of `last` ever go.
fn prune(merged: &Value, managed: &Managed, last: Option<&FieldSet>) -> Value {
    let Some(last) = last.filter(|s| !s.is_empty()) else {
        return merged.clone();
    };
    let ty = &MXJOB;
    let holds = |v: &Value| with_named_fields(ty, &fields_of(ty, v));
    let last = with_named_fields(ty, last);
    // Everything the applier owned, gone.
    let without_last = remove(ty, merged, &last);
    // Back: what anyone owns. The identity fields count as owned, so the
    // object keeps its metadata even when a configuration omits it.
    let owned = with_named_fields(ty, &managed.all_fields().union(stripped()));
    let merged_holds = holds(merged);
    let owned_back = remove(
        ty,
        merged,
        &merged_holds.difference(&holds(&without_last).union(&owned)),
    );
    // Back: what the applier did not own (fields its removal took along).
    let gone = merged_holds
        .difference(&holds(&owned_back))
        .intersection(&last);
    match remove(ty, merged, &gone) {
        Value::Null => Value::Object(Map::new()),
        v => v,
    }
}

/// Resets what the endpoint may not write: the main resource keeps the
/// live `status`; the status subresource keeps everything else.
fn reset_object(live: &Value, new: Value, subresource: Subresource) -> Value {
    let (mut base, status) = match subresource {
        Subresource::Main => (new, live.get("status").cloned()),
        Subresource::Status => (live.clone(), new.get("status").cloned()),
    };
    if let Some(fields) = base.as_object_mut() {
        match status {
            Some(status) => fields.insert("status".to_string(), status),
            None => fields.remove("status"),
        };
    }
    base
}

/// Moves ownership for an ordinary write from `old` to `new` by `key`.
fn record_update(
    old: &Value,
    new: &Value,
    managed: &mut Managed,
    key: &ManagerKey,
    reset: &FieldSet,
    now: &Time,
) {
    let diff = compare(&MXJOB, old, new).without(reset);
    take_changed(&diff, managed, key, now);
}

/// Moves ownership for an ordinary write that made `diff` by `key`.
fn take_changed(diff: &Comparison, managed: &mut Managed, key: &ManagerKey, now: &Time) {
    let changed = diff.changed();
    for owner in &mut managed.owners {
        owner.set = owner.set.difference(&changed).difference(&diff.removed);
    }
    managed.drop_empty();
    let mine = changed.difference(stripped());
    if mine.is_empty() {
        return;
    }
    match managed.get_mut(key) {
        Some(owner) => {
            owner.set = owner.set.union(&mine);
            owner.api_version = API_VERSION.to_string();
            owner.time = Some(now.clone());
        }
        None => managed.put(Owner {
            key: key.clone(),
            api_version: API_VERSION.to_string(),
            set: mine,
            time: Some(now.clone()),
        }),
    }
}

/// Folds the oldest `Update` owners into `ancient-changes` (one per API
/// version) while there are more than [`MAX_UPDATERS`].
fn cap_updaters(managed: &mut Managed) {
    let mut updaters: Vec<(i64, String, ManagerKey)> = managed
        .owners
        .iter()
        .filter(|o| o.key.operation == Operation::Update)
        .map(|o| {
            let secs = o.time.as_ref().map_or(0, |t| t.0.timestamp());
            (secs, o.key.identifier(), o.key.clone())
        })
        .collect();
    if updaters.len() <= MAX_UPDATERS {
        return;
    }
    updaters.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    let mut remaining = updaters.len();
    let mut first_of_version: BTreeMap<String, ManagerKey> = BTreeMap::new();
    for (_, _, key) in updaters {
        if remaining <= MAX_UPDATERS {
            break;
        }
        let Some(owner) = managed.get(&key).cloned() else {
            continue;
        };
        let bucket = ManagerKey {
            manager: ANCIENT_CHANGES.to_string(),
            operation: Operation::Update,
            api_version: owner.api_version.clone(),
            subresource: String::new(),
        };
        if key == bucket {
            continue;
        }
        let Some(first) = first_of_version.get(&owner.api_version) else {
            first_of_version.insert(owner.api_version.clone(), key);
            continue;
        };
        if managed.get(&bucket).is_none() {
            if let Some(mut moved) = managed.remove(first) {
                moved.key = bucket.clone();
                managed.put(moved);
            }
        }
        if let Some(b) = managed.get_mut(&bucket) {
            b.set = owner.set.union(&b.set);
            b.time = owner.time.clone();
        }
        managed.remove(&key);
        remaining -= 1;
    }
}

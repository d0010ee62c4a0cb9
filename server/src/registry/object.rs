//! An MXJob as the registry hands it out: decoded once per stored revision
//! and answered from its stored bytes.
//!
//! **One decode per revision.** The registry decodes a stored value into an
//! [`Object`] and puts it in the value's shared slot (`store::Blob`): the
//! store puts the object a write made there before it publishes the write
//! (`Registry::prepare`), so the answer, the
//! next replace's `load`, the job controller and every watcher of that
//! revision read the same `Arc<Object>` without decoding. An object is never
//! changed once shared; a write works on a copy of the job.
//!
//! **Answers without encoding.** The stored bytes are the object's compact
//! JSON without its `resourceVersion` (the store's revision, put back on
//! every read). This registry writes them with `serde_json` from
//! [`MXJob`], whose first fields are always `apiVersion`, `kind` and
//! `metadata`, and `ObjectMeta` writes its members in alphabetical order;
//! so the answer is the stored bytes with `"resourceVersion":"N"` spliced
//! into `metadata` where the serializer would have written it (before
//! `selfLink` and `uid`): a copy, not a serialization, and byte for byte
//! what encoding the object would give. Where that place is, and where the
//! managed fields, the replica specs and the status are, the encoder notes
//! while it writes the bytes ([`encode`], [`Layout`]); for bytes read from
//! storage one pass finds the first two, once per object. Bytes that do not start as this registry writes
//! them are encoded from the decoded object instead.
//! The answer is made once and shared ([`Object::json`]), and so is each
//! watch event line built from it ([`Object::event_line`]): a thousand
//! watchers of a change cost one answer and one line, not a thousand
//! encodings.
//!
//! **Managed fields apart.** An object holds its job without
//! `metadata.managedFields` and the entries beside it, their field sets
//! shared with the revisions that keep them (`apply::SharedEntries`): a
//! write that moves no ownership copies no set, and freeing a revision
//! frees none. [`Object::job`] puts them back, once, for what reads the
//! whole job; the write path, the job controller, selectors and the
//! audit line read [`Object::job_without_managed_fields`].

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use chrono::Timelike;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use mxjob_api::model::{
    JobStatus, MXJob, ReplicaSpec, ReplicaType, WatchEventType, API_VERSION, KIND,
};

use super::Error;
use crate::apply::SharedEntries;
use crate::decode;
use crate::store::{KeyValue, Revision};

/// An object of one revision. See the module documentation.
#[derive(Debug)]
pub struct Object {
    /// The job, with its `resourceVersion`, without its managed fields.
    job: MXJob,
    /// Its `metadata.managedFields`, the field sets shared with the other
    /// revisions that keep them (see `apply::SharedEntries`).
    managed: Option<SharedEntries>,
    /// The job with its managed fields, made the first time it is asked
    /// for ([`Object::job`]).
    whole: OnceLock<MXJob>,
    /// The stored form: compact JSON without `resourceVersion`.
    stored: Arc<[u8]>,
    /// The answer: compact JSON with `resourceVersion`, and a newline.
    json: OnceLock<Bytes>,
    /// The watch lines of ADDED and MODIFIED.
    lines: [OnceLock<Bytes>; 2],
    /// The object as a DELETED event shows it: with the delete's revision.
    deleted: OnceLock<Arc<Object>>,
    /// Where things are in `stored`; `None` when it is not as this
    /// registry writes it.
    layout: OnceLock<Option<Layout>>,
}

impl Object {
    /// `job` (with the `resourceVersion` its answer carries, if any) and
    /// its stored form.
    pub(crate) fn new(mut job: MXJob, stored: Arc<[u8]>) -> Self {
        let managed = job
            .metadata
            .managed_fields
            .take()
            .map(SharedEntries::from_entries);
        Object::with_managed(job, managed, stored)
    }

    /// [`Object::new`] of a job without managed fields, and `managed`.
    pub(crate) fn with_managed(
        job: MXJob,
        managed: Option<SharedEntries>,
        stored: Arc<[u8]>,
    ) -> Self {
        debug_assert!(job.metadata.managed_fields.is_none());
        Object {
            job,
            managed,
            whole: OnceLock::new(),
            stored,
            json: OnceLock::new(),
            lines: Default::default(),
            deleted: OnceLock::new(),
            layout: OnceLock::new(),
        }
    }

    /// Decodes a stored value written at `revision`.
    pub(crate) fn decode(stored: Arc<[u8]>, revision: Revision, key: &str) -> Result<Self, Error> {
        let mut job: MXJob = serde_json::from_slice(&stored)
            .map_err(|e| Error::Internal(format!("decoding stored object {key}: {e}")))?;
        job.metadata.resource_version = Some(revision.to_string());
        Ok(Object::new(job, stored))
    }

    /// The object just written as `stored` at `revision` from `job`: what
    /// decoding the bytes would give, without decoding them. Encoding loses
    /// nothing but the fraction of a second of a `Time` (written to the
    /// second), so a job holding such a fraction is decoded back instead.
    /// Debug builds check the claim on every write.
    pub(crate) fn written(
        mut job: MXJob,
        managed: Option<SharedEntries>,
        stored: Arc<[u8]>,
        layout: Option<Layout>,
        revision: Revision,
        key: &str,
    ) -> Result<Self, Error> {
        if !whole_seconds(&job, managed.as_ref()) {
            return Object::decode(stored, revision, key).map(|o| o.laid_out(layout));
        }
        job.metadata.resource_version = Some(revision.to_string());
        debug_assert_eq!(
            Object::decode(stored.clone(), revision, key).map(|o| (o.job, o.managed)),
            Ok((job.clone(), managed.clone())),
            "a written job differs from its stored bytes decoded"
        );
        Ok(Object::with_managed(job, managed, stored).laid_out(layout))
    }

    /// This object, with the layout of its stored bytes when it is known
    /// (see [`encode`]).
    pub(crate) fn laid_out(self, layout: Option<Layout>) -> Self {
        if let Some(layout) = layout {
            debug_assert_eq!(
                Layout::of(&self.stored).map(|found| found.of_metadata()),
                Some(layout.of_metadata())
            );
            let _ = self.layout.set(Some(layout));
        }
        self
    }

    /// The job, with its managed fields. Made (a copy of the job and of
    /// its managed fields) the first time it is asked for: what reads
    /// no managed fields reads [`Object::job_without_managed_fields`].
    pub fn job(&self) -> &MXJob {
        match &self.managed {
            None => &self.job,
            Some(managed) => self.whole.get_or_init(|| {
                let mut job = self.job.clone();
                job.metadata.managed_fields = Some(managed.to_entries());
                job
            }),
        }
    }

    /// The job without `metadata.managedFields`, which
    /// [`Object::managed_fields`] holds.
    pub fn job_without_managed_fields(&self) -> &MXJob {
        &self.job
    }

    /// The job's `metadata.managedFields`.
    pub fn managed_fields(&self) -> Option<&SharedEntries> {
        self.managed.as_ref()
    }

    /// The job, taken out when this is its only holder, else copied
    /// (without keeping the whole job made for the copy).
    pub fn into_job(self: Arc<Self>) -> MXJob {
        match Arc::try_unwrap(self) {
            Ok(mut object) => match object.whole.take() {
                Some(whole) => whole,
                None => {
                    object.job.metadata.managed_fields =
                        object.managed.as_ref().map(SharedEntries::to_entries);
                    object.job
                }
            },
            Err(shared) => match shared.whole.get() {
                Some(whole) => whole.clone(),
                None => {
                    let mut job = shared.job.clone();
                    job.metadata.managed_fields =
                        shared.managed.as_ref().map(SharedEntries::to_entries);
                    job
                }
            },
        }
    }

    /// The stored bytes (compact JSON without `resourceVersion`).
    pub fn stored(&self) -> &Arc<[u8]> {
        &self.stored
    }

    /// The stored bytes of `metadata.managedFields`' value; `None` when
    /// there are none, or the stored bytes are not as this registry writes
    /// them.
    pub fn stored_managed_fields(&self) -> Option<&[u8]> {
        let range = self.layout()?.managed_fields.clone()?;
        self.stored.get(range)
    }

    /// What a replace of this object is decoded over
    /// ([`decode::replacement`]). The stored bytes of `spec.mxReplicaSpecs`
    /// and `status` are given only when [`encode`] wrote them from the job
    /// (their places are in its layout), so that they hold nothing the job
    /// lost in decoding (a field an older version stored, a repeated key):
    /// a body sending them back then decodes into the job's values.
    pub fn replaced(&self) -> decode::Over<'_> {
        let layout = self.layout();
        let stored = |span: Option<&std::ops::Range<usize>>| self.stored.get(span?.clone());
        decode::Over {
            job: &self.job,
            entries: self.managed.as_ref(),
            managed_fields: self.stored_managed_fields(),
            replica_specs: layout.and_then(|l| stored(l.replica_specs.as_ref())),
            status: layout.and_then(|l| stored(l.status.as_ref())),
        }
    }

    /// The stored bytes of this object's replica specs, when `job` shares
    /// them (a write that kept them) and [`encode`] wrote them.
    pub(crate) fn kept_replica_specs(&self, job: &MXJob) -> Option<&[u8]> {
        if !Arc::ptr_eq(&job.spec.mx_replica_specs, &self.job.spec.mx_replica_specs) {
            return None;
        }
        let span = self.layout()?.replica_specs.clone()?;
        self.stored.get(span)
    }

    fn layout(&self) -> Option<&Layout> {
        self.layout
            .get_or_init(|| Layout::of(&self.stored))
            .as_ref()
    }

    /// The compact JSON answer, followed by a newline (as
    /// [`mxjob_api::wire::to_json`] writes it).
    pub fn json(&self) -> Result<Bytes, Error> {
        if let Some(json) = self.json.get() {
            return Ok(json.clone());
        }
        let version = self.job.metadata.resource_version.as_deref();
        let spliced = match version {
            Some(version) => self.layout().and_then(|l| l.splice(&self.stored, version)),
            None => Some(answer_bytes(&self.stored)),
        };
        let json = match spliced {
            Some(json) => json,
            None => mxjob_api::wire::to_json(self.job(), false)
                .map_err(|e| Error::Internal(format!("encoding object: {e}")))?,
        };
        Ok(self.json.get_or_init(|| Bytes::from(json)).clone())
    }

    /// The object's line in a watch stream (`{"type":…,"object":…}` and a
    /// newline), made once per type and shared by every watcher.
    pub fn event_line(&self, type_: WatchEventType) -> Result<Bytes, Error> {
        let cell = match type_ {
            WatchEventType::ADDED => Some(&self.lines[0]),
            WatchEventType::MODIFIED => Some(&self.lines[1]),
            _ => None,
        };
        if let Some(line) = cell.and_then(OnceLock::get) {
            return Ok(line.clone());
        }
        let line = Bytes::from(event_line(type_, &self.json()?));
        Ok(match cell {
            Some(cell) => cell.get_or_init(|| line).clone(),
            None => line,
        })
    }

    /// The object as the DELETED event of a delete at `revision` shows it
    /// (the delete's revision as its `resourceVersion`); made once.
    pub fn deleted_at(&self, revision: Revision) -> Arc<Object> {
        self.deleted
            .get_or_init(|| {
                let mut job = self.job.clone();
                job.metadata.resource_version = Some(revision.to_string());
                let managed = self.managed.clone();
                Arc::new(Object::with_managed(job, managed, self.stored.clone()))
            })
            .clone()
    }
}

/// The answer for a stored key-value (compact JSON and a newline): from
/// its shared decoded object when a reader made one, else spliced from
/// the stored bytes without decoding, else decoded and encoded.
pub(crate) fn item_json(kv: &KeyValue) -> Result<Bytes, Error> {
    if let Some(object) = kv.value.decoded::<Object>() {
        return object.json();
    }
    match splice(&kv.value, Some(&kv.mod_revision.to_string())) {
        Some(json) => Ok(Bytes::from(json)),
        None => super::Registry::decode_stored(kv)?.json(),
    }
}

/// `{"type":"T","object":OBJECT}` and a newline, from an answer (`json`,
/// which ends with a newline).
fn event_line(type_: WatchEventType, json: &[u8]) -> Vec<u8> {
    let object = json.strip_suffix(b"\n").unwrap_or(json);
    let type_ = type_.as_str();
    let mut line = Vec::with_capacity(object.len() + type_.len() + 24);
    line.extend_from_slice(b"{\"type\":\"");
    line.extend_from_slice(type_.as_bytes());
    line.extend_from_slice(b"\",\"object\":");
    line.extend_from_slice(object);
    line.extend_from_slice(b"}\n");
    line
}

/// How this registry's stored objects begin (see the module
/// documentation): up to the inside of `metadata`.
fn stored_prefix() -> &'static [u8] {
    static PREFIX: OnceLock<Vec<u8>> = OnceLock::new();
    PREFIX.get_or_init(|| {
        format!("{{\"apiVersion\":\"{API_VERSION}\",\"kind\":\"{KIND}\",\"metadata\":{{")
            .into_bytes()
    })
}

/// The answer made from stored bytes: `resourceVersion` spliced into
/// `metadata` where `ObjectMeta`'s serializer writes it, and a newline;
/// `None` when the bytes do not begin as this registry writes them.
fn splice(stored: &[u8], version: Option<&str>) -> Option<Vec<u8>> {
    match version {
        None => Some(answer_bytes(stored)),
        Some(version) => Layout::of(stored)?.splice(stored, version),
    }
}

/// `stored` and a newline.
fn answer_bytes(stored: &[u8]) -> Vec<u8> {
    let mut json = Vec::with_capacity(stored.len() + 1);
    json.extend_from_slice(stored);
    json.push(b'\n');
    json
}

/// Where the answer's `resourceVersion` goes in stored bytes that begin as
/// this registry writes them, and where their managed fields, replica
/// specs and status are: noted by [`encode`], or found by one pass over
/// `metadata` (without the replica specs and status), made once per object
/// and used by its answer and by the replace that loads it (`decode::Over`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Layout {
    /// Where `"resourceVersion"` goes: before the first member of
    /// `metadata` whose key sorts after it, or at its end.
    version_at: usize,
    /// Whether a comma goes before it (at the end of a `metadata` with
    /// members).
    comma_before: bool,
    /// The value of `metadata.managedFields`.
    managed_fields: Option<std::ops::Range<usize>>,
    /// The values of `spec.mxReplicaSpecs` and `status`: known when
    /// [`encode`] wrote the bytes, `None` from [`Layout::of`] (see
    /// [`Object::replaced`]).
    replica_specs: Option<std::ops::Range<usize>>,
    status: Option<std::ops::Range<usize>>,
}

impl Layout {
    /// `None` when the bytes do not begin as this registry writes them,
    /// end first, or already hold a `resourceVersion`.
    fn of(stored: &[u8]) -> Option<Layout> {
        const KEY: &[u8] = b"resourceVersion";
        const MANAGED_FIELDS: &[u8] = b"managedFields";
        let start = stored_prefix().len();
        if !stored.starts_with(stored_prefix()) {
            return None;
        }
        let mut managed_start = None;
        let mut managed_fields = None;
        let mut depth = 0usize;
        let mut expect_key = true;
        let mut i = start;
        let at = |i: usize, comma_before: bool, managed_fields| Layout {
            version_at: i,
            comma_before,
            managed_fields,
            replica_specs: None,
            status: None,
        };
        while let Some(&byte) = stored.get(i) {
            match byte {
                b'"' => {
                    let end = string_end(stored, i)?;
                    if depth == 0 && expect_key {
                        let key = stored.get(i + 1..end - 1)?;
                        if key == KEY {
                            return None;
                        }
                        if key > KEY {
                            return Some(at(i, false, managed_fields));
                        }
                        if key == MANAGED_FIELDS && stored.get(end) == Some(&b':') {
                            managed_start = Some(end + 1);
                        }
                        expect_key = false;
                    }
                    i = end;
                    continue;
                }
                b'{' | b'[' => depth += 1,
                b'}' | b']' if depth == 0 => {
                    if let Some(from) = managed_start.take() {
                        managed_fields = Some(from..i);
                    }
                    return Some(at(i, i > start, managed_fields));
                }
                b'}' | b']' => depth -= 1,
                b',' if depth == 0 => {
                    if let Some(from) = managed_start.take() {
                        managed_fields = Some(from..i);
                    }
                    expect_key = true;
                }
                _ => {}
            }
            i += 1;
        }
        None
    }

    /// What [`Layout::of`] finds too: the places in `metadata`.
    fn of_metadata(&self) -> (usize, bool, Option<std::ops::Range<usize>>) {
        (
            self.version_at,
            self.comma_before,
            self.managed_fields.clone(),
        )
    }

    /// The answer: `stored` with `"resourceVersion":"VERSION"` where this
    /// layout puts it, and a newline.
    fn splice(&self, stored: &[u8], version: &str) -> Option<Vec<u8>> {
        let (before, after) = stored.split_at_checked(self.version_at)?;
        let mut json = Vec::with_capacity(stored.len() + version.len() + 24);
        json.extend_from_slice(before);
        if self.comma_before {
            json.push(b',');
        }
        json.extend_from_slice(b"\"resourceVersion\":");
        serde_json::to_writer(&mut json, version).ok()?;
        if !self.comma_before && !after.starts_with(b"}") {
            json.push(b',');
        }
        json.extend_from_slice(after);
        json.push(b'\n');
        Some(json)
    }
}

/// A job's stored form, and its layout when the encoding knows it.
pub(crate) struct Encoded {
    pub bytes: Vec<u8>,
    pub layout: Option<Layout>,
}

/// `job`'s stored form: its compact JSON (it must hold no
/// `resourceVersion`), with its [`Layout`] found while writing it instead
/// of by a pass over the bytes. `metadata` is written in parts — the
/// members before `managedFields`, the managed fields, the members up to
/// where `resourceVersion` goes, the rest — in the order `ObjectMeta`'s
/// serializer writes them — and the replica specs and the status apart, where
/// `MXJob`'s serializer writes them; so the bytes are the same (debug builds
/// check it on every encode). A job whose bytes would not begin as this
/// registry writes them is encoded whole, without a layout.
///
/// `managed` are the job's managed fields (`job` holds none).
pub(crate) fn encode(
    job: &mut MXJob,
    managed: Option<&SharedEntries>,
    kept: Option<&[u8]>,
) -> serde_json::Result<Encoded> {
    debug_assert!(job.metadata.managed_fields.is_none());
    let ObjectMeta {
        annotations,
        creation_timestamp,
        deletion_grace_period_seconds,
        deletion_timestamp,
        finalizers,
        generate_name,
        generation,
        labels,
        managed_fields: _,
        name,
        namespace,
        owner_references,
        resource_version,
        self_link,
        uid,
    } = std::mem::take(&mut job.metadata);
    let before = ObjectMeta {
        annotations,
        creation_timestamp,
        deletion_grace_period_seconds,
        deletion_timestamp,
        finalizers,
        generate_name,
        generation,
        labels,
        ..Default::default()
    };
    let after = ObjectMeta {
        name,
        namespace,
        owner_references,
        ..Default::default()
    };
    let last = ObjectMeta {
        self_link,
        uid,
        ..Default::default()
    };
    let replica_specs = std::mem::take(&mut job.spec.mx_replica_specs);
    let status = std::mem::take(&mut job.status);
    let parts = InParts {
        before: &before,
        managed_fields: managed,
        after: &after,
        last: &last,
        replica_specs: &replica_specs,
        kept,
        status: &status,
    };
    let laid_out = serde_json::to_vec(&*job).and_then(|rest| parts.write(&rest));
    job.spec.mx_replica_specs = replica_specs;
    job.status = status;
    job.metadata = ObjectMeta {
        resource_version,
        self_link: last.self_link,
        uid: last.uid,
        name: after.name,
        namespace: after.namespace,
        owner_references: after.owner_references,
        ..before
    };
    let encoded = match laid_out? {
        Some(encoded) => encoded,
        None => Encoded {
            bytes: serde_json::to_vec(&whole(job, managed))?,
            layout: None,
        },
    };
    debug_assert!(job.metadata.resource_version.is_none());
    debug_assert_eq!(
        serde_json::to_vec(&whole(job, managed)).ok().as_ref(),
        Some(&encoded.bytes),
        "the stored form written in parts differs from the job encoded whole"
    );
    #[cfg(debug_assertions)]
    if let Some(layout) = &encoded.layout {
        assert_eq!(
            Layout::of(&encoded.bytes).map(|found| found.of_metadata()),
            Some(layout.of_metadata())
        );
        let parts = decode::Parts::of(&encoded.bytes);
        assert_eq!(
            (&parts.replica_specs, &parts.status),
            (&layout.replica_specs, &layout.status)
        );
    }
    Ok(encoded)
}

/// `job` with `managed` as its managed fields.
fn whole(job: &MXJob, managed: Option<&SharedEntries>) -> MXJob {
    let mut whole = job.clone();
    whole.metadata.managed_fields = managed.map(SharedEntries::to_entries);
    whole
}

/// A job in the parts [`encode`] writes: its `metadata` in four, its
/// replica specs and its status.
struct InParts<'a> {
    before: &'a ObjectMeta,
    managed_fields: Option<&'a SharedEntries>,
    after: &'a ObjectMeta,
    last: &'a ObjectMeta,
    replica_specs: &'a BTreeMap<ReplicaType, ReplicaSpec>,
    /// The replica specs' encoding, when known.
    kept: Option<&'a [u8]>,
    status: &'a JobStatus,
}

impl InParts<'_> {
    /// The stored form, from `rest`: the job encoded with an empty
    /// `metadata`, no replica specs and an empty status. `None` when `rest`
    /// does not begin and end as this registry writes it.
    ///
    /// `rest` ends `"mxReplicaSpecs":{}` and the rest of `spec` (numbers),
    /// then `,"status":{}}`: `MXJob` writes `status` last, always, and the
    /// members of `spec` before `mxReplicaSpecs` are numbers and strings,
    /// in which that text cannot occur (their quotes are escaped).
    fn write(&self, rest: &[u8]) -> serde_json::Result<Option<Encoded>> {
        const REPLICA_SPECS: &[u8] = b"\"mxReplicaSpecs\":";
        const STATUS: &[u8] = b",\"status\":{}}";
        let prefix = stored_prefix();
        let Some(tail) = rest.strip_prefix(prefix).and_then(|r| r.strip_prefix(b"}")) else {
            return Ok(None);
        };
        let Some(spec) = tail.strip_suffix(STATUS) else {
            return Ok(None);
        };
        let Some(specs_at) =
            memchr::memmem::find(spec, REPLICA_SPECS).map(|at| at + REPLICA_SPECS.len())
        else {
            return Ok(None);
        };
        let Some(after_specs) = spec[specs_at..].strip_prefix(b"{}") else {
            return Ok(None);
        };
        let mut out = Vec::with_capacity(rest.len() + 4096);
        out.extend_from_slice(prefix);
        let start = out.len();
        members(&mut out, start, self.before)?;
        let mut managed_fields = None;
        if let Some(entries) = self.managed_fields {
            if out.len() > start {
                out.push(b',');
            }
            out.extend_from_slice(b"\"managedFields\":");
            let from = out.len();
            serde_json::to_writer(&mut out, entries)?;
            managed_fields = Some(from..out.len());
        }
        members(&mut out, start, self.after)?;
        let (at, comma) = (out.len(), out.len() > start);
        members(&mut out, start, self.last)?;
        let (version_at, comma_before) = match out.get(at) {
            // The first of the last members: the version goes before its key.
            Some(b',') => (at + 1, false),
            Some(_) => (at, false),
            None => (at, comma),
        };
        out.push(b'}');
        out.extend_from_slice(&spec[..specs_at]);
        let from = out.len();
        match self.kept {
            Some(kept) => out.extend_from_slice(kept),
            None => serde_json::to_writer(&mut out, self.replica_specs)?,
        }
        let replica_specs = from..out.len();
        out.extend_from_slice(after_specs);
        out.extend_from_slice(&STATUS[..STATUS.len() - 3]);
        let from = out.len();
        serde_json::to_writer(&mut out, self.status)?;
        let status = from..out.len();
        out.push(b'}');
        Ok(Some(Encoded {
            bytes: out,
            layout: Some(Layout {
                version_at,
                comma_before,
                managed_fields,
                replica_specs: Some(replica_specs),
                status: Some(status),
            }),
        }))
    }
}

/// Appends the members of `meta` (its JSON without the braces) to `out`,
/// after a comma when `out` has members since `start`.
fn members(out: &mut Vec<u8>, start: usize, meta: &ObjectMeta) -> serde_json::Result<()> {
    let at = out.len();
    serde_json::to_writer(&mut *out, meta)?;
    out.pop();
    if out.len() == at + 1 {
        out.truncate(at);
    } else if at > start {
        out[at] = b',';
    } else {
        out.remove(at);
    }
    Ok(())
}

/// The index just after the string that starts at `start` (a quote).
fn string_end(bytes: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    loop {
        match bytes.get(i)? {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
}

/// Whether every `Time` of `job` is a whole second: those of its metadata,
/// its status, and the metadata of each replica's pod template and of the
/// claim templates of its ephemeral volumes (the pod spec has no others).
fn whole_seconds(job: &MXJob, managed: Option<&SharedEntries>) -> bool {
    fn time(t: &Option<Time>) -> bool {
        t.as_ref().is_none_or(|t| t.0.nanosecond() == 0)
    }
    fn meta(m: &ObjectMeta) -> bool {
        time(&m.creation_timestamp)
            && time(&m.deletion_timestamp)
            && m.managed_fields.iter().flatten().all(|e| time(&e.time))
    }
    let status = &job.status;
    let status_whole = time(&status.start_time)
        && time(&status.completion_time)
        && time(&status.last_reconcile_time)
        && status
            .conditions
            .iter()
            .all(|c| time(&c.last_update_time) && time(&c.last_transition_time));
    let templates_whole = job.spec.mx_replica_specs.values().all(|replica| {
        let template = &replica.template;
        template.metadata.as_ref().is_none_or(meta)
            && template
                .spec
                .iter()
                .flat_map(|spec| spec.volumes.iter().flatten())
                .filter_map(|v| v.ephemeral.as_ref()?.volume_claim_template.as_ref())
                .all(|claim| claim.metadata.as_ref().is_none_or(meta))
    });
    let managed_whole = managed
        .iter()
        .flat_map(|m| m.iter())
        .all(|s| time(&s.entry.time));
    meta(&job.metadata) && managed_whole && status_whole && templates_whole
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [`encode`] of a job that holds its managed fields.
    fn encode_whole(job: &mut MXJob, kept: Option<&[u8]>) -> serde_json::Result<Encoded> {
        let managed = job
            .metadata
            .managed_fields
            .take()
            .map(SharedEntries::from_entries);
        let encoded = encode(job, managed.as_ref(), kept);
        job.metadata.managed_fields = managed.as_ref().map(SharedEntries::to_entries);
        encoded
    }

    fn seed() -> MXJob {
        serde_json::from_str(mxjob_api::openapi::REPLACE_EXAMPLE).expect("the example decodes")
    }

    #[test]
    fn the_spliced_answer_is_the_encoded_object() {
        let mut job = seed();
        job.metadata.resource_version = None;
        let stored: Arc<[u8]> = serde_json::to_vec(&job).expect("encodes").into();
        job.metadata.resource_version = Some("1234".to_string());
        let object = Object::new(job.clone(), stored.clone());
        let answer = object.json().expect("answers");
        assert!(answer.ends_with(b"\n"));
        assert_eq!(
            answer,
            mxjob_api::wire::to_json(&job, false).expect("encodes"),
            "byte for byte what encoding the object gives"
        );
        assert!(
            splice(&stored, Some("1")).is_some(),
            "the stored bytes begin as the registry writes them"
        );

        let decoded = Object::decode(stored, 1234, "/k").expect("decodes");
        assert_eq!(decoded.job(), &job);
    }

    #[test]
    fn the_whole_job_has_its_managed_fields_back() {
        let mut job = seed();
        job.metadata.managed_fields = serde_json::from_value(serde_json::json!([
            {"apiVersion": "kubeflow.org/v1", "fieldsType": "FieldsV1",
             "fieldsV1": {"f:spec": {"f:runPolicy": {}}}, "manager": "m",
             "operation": "Update", "time": "2026-12-05T10:00:00Z"}
        ]))
        .expect("entries");
        let stored: Arc<[u8]> = serde_json::to_vec(&job).expect("encodes").into();
        let object = Arc::new(Object::new(job.clone(), stored));
        assert_eq!(
            object.job_without_managed_fields().metadata.managed_fields,
            None
        );
        assert_eq!(object.managed_fields().map(SharedEntries::len), Some(1));
        let shared = Arc::clone(&object);
        assert_eq!(shared.into_job(), job, "copied");
        assert!(object.whole.get().is_none(), "a copy keeps no whole job");
        assert_eq!(object.job(), &job);
        assert_eq!(object.into_job(), job, "taken out");
    }

    #[test]
    fn a_written_object_is_what_its_bytes_decode_to() {
        let mut job = seed();
        let at =
            |nanos| Time(chrono::DateTime::from_timestamp(1_700_000_000, nanos).expect("time"));
        let template_created = |job: &mut MXJob, nanos| {
            let worker = Arc::make_mut(&mut job.spec.mx_replica_specs)
                .values_mut()
                .next();
            let worker = worker.expect("a replica");
            let meta = worker
                .template
                .metadata
                .get_or_insert_with(Default::default);
            meta.creation_timestamp = Some(at(nanos));
        };
        template_created(&mut job, 0);
        let stored: Arc<[u8]> = serde_json::to_vec(&job).expect("encodes").into();
        let written =
            Object::written(job.clone(), None, stored.clone(), None, 9, "/k").expect("written");
        assert_eq!(
            written.job().metadata.resource_version.as_deref(),
            Some("9")
        );
        let decoded = Object::decode(stored, 9, "/k").expect("decodes");
        assert_eq!(written.job(), decoded.job());

        // A fraction of a second is not stored: the object comes from the bytes.
        template_created(&mut job, 500_000_000);
        let stored: Arc<[u8]> = serde_json::to_vec(&job).expect("encodes").into();
        let written =
            Object::written(job.clone(), None, stored.clone(), None, 9, "/k").expect("written");
        let decoded = Object::decode(stored, 9, "/k").expect("decodes");
        assert_eq!(written.job(), decoded.job());
        assert_ne!(written.job(), &job);
    }

    #[test]
    fn bytes_written_otherwise_are_encoded_from_the_object() {
        let mut job = seed();
        job.metadata.resource_version = Some("7".to_string());
        let odd: Arc<[u8]> = br#"{"kind":"MXJob"}"#.to_vec().into();
        let answer = Object::new(job.clone(), odd).json().expect("answers");
        assert_eq!(
            answer,
            mxjob_api::wire::to_json(&job, false).expect("encodes")
        );
        assert_eq!(
            splice(b"{\"apiVersion\":\"kubeflow.org/v1\",\"kind\":\"MXJob\",\"metadata\":{}}", Some("3")),
            Some(
                b"{\"apiVersion\":\"kubeflow.org/v1\",\"kind\":\"MXJob\",\"metadata\":{\"resourceVersion\":\"3\"}}\n"
                    .to_vec()
            )
        );
    }

    #[test]
    fn a_job_encoded_in_parts_is_the_job_encoded_whole_and_knows_its_layout() {
        let entries: Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry> =
            serde_json::from_value(serde_json::json!([
                {"apiVersion": "kubeflow.org/v1", "fieldsType": "FieldsV1",
                 "fieldsV1": {"f:spec": {"f:runPolicy": {}}}, "manager": "m",
                 "operation": "Update", "time": "2026-12-05T10:00:00Z"}
            ]))
            .expect("entries");
        let mut cases = 0;
        for before in [false, true] {
            for managed_fields in [None, Some(Vec::new()), Some(entries.clone())] {
                for after in [false, true] {
                    for last in [false, true] {
                        let mut job = seed();
                        job.metadata = ObjectMeta {
                            labels: before.then(|| [("a".into(), "b".into())].into()),
                            generation: before.then_some(2),
                            managed_fields: managed_fields.clone(),
                            name: after.then(|| "n".into()),
                            namespace: after.then(|| "ns".into()),
                            uid: last.then(|| "u".into()),
                            ..Default::default()
                        };
                        let whole = serde_json::to_vec(&job).expect("encodes");
                        let expected = job.clone();
                        let encoded = encode_whole(&mut job, None).expect("encodes");
                        assert_eq!(job, expected, "the job is left as it was");
                        assert_eq!(encoded.bytes, whole);
                        let layout = encoded.layout.expect("a layout");
                        assert_eq!(
                            Some(layout.of_metadata()),
                            Layout::of(&whole).map(|found| found.of_metadata())
                        );
                        let part = |span: &Option<std::ops::Range<usize>>| {
                            span.clone().map(|span| whole[span].to_vec())
                        };
                        assert_eq!(
                            part(&layout.replica_specs),
                            serde_json::to_vec(&job.spec.mx_replica_specs).ok()
                        );
                        assert_eq!(part(&layout.status), serde_json::to_vec(&job.status).ok());
                        job.metadata.resource_version = Some("5".to_string());
                        assert_eq!(
                            layout.splice(&whole, "5"),
                            Some(mxjob_api::wire::to_json(&job, false).expect("encodes"))
                        );
                        cases += 1;
                    }
                }
            }
        }
        assert_eq!(cases, 24);
        let mut other = seed();
        other.api_version = "kubeflow.org/v2".to_string();
        other.metadata.resource_version = None;
        let encoded = encode_whole(&mut other, None).expect("encodes");
        assert_eq!(encoded.bytes, serde_json::to_vec(&other).expect("encodes"));
        assert_eq!(encoded.layout, None, "not as this registry writes");
    }

    #[test]
    fn replica_specs_a_write_shares_are_copied_from_the_stored_bytes() {
        let mut job = seed();
        job.metadata.resource_version = None;
        let encoded = encode_whole(&mut job, None).expect("encodes");
        let stored = Object::written(
            job.clone(),
            None,
            encoded.bytes.clone().into(),
            encoded.layout,
            7,
            "k",
        )
        .expect("written");
        let mut next = stored.job().clone();
        next.metadata.resource_version = None;
        next.spec.ttl_seconds_after_finished = Some(99);
        let kept = stored.kept_replica_specs(&next).expect("shared");
        let encoded = encode_whole(&mut next, Some(kept)).expect("encodes");
        assert_eq!(encoded.bytes, serde_json::to_vec(&next).expect("encodes"));
        assert!(next.spec.same(&stored.job().spec) == (next.spec == stored.job().spec));

        let mut copied = next.clone();
        copied.spec.mx_replica_specs = Arc::new((*next.spec.mx_replica_specs).clone());
        assert_eq!(
            stored.kept_replica_specs(&copied),
            None,
            "equal, not shared"
        );
        assert!(copied.spec.same(&next.spec));
        Arc::make_mut(&mut copied.spec.mx_replica_specs).clear();
        assert!(!copied.spec.same(&next.spec));
        let decoded = Object::decode(encoded.bytes.into(), 8, "k").expect("decodes");
        assert_eq!(
            decoded.kept_replica_specs(decoded.job()),
            None,
            "no layout known"
        );
    }

    #[test]
    fn the_replica_specs_are_found_past_spec_members_that_spell_them() {
        let mut job = seed();
        job.metadata.resource_version = None;
        for mode in ["\"mxReplicaSpecs\":{}", "\\\"mxReplicaSpecs\":{}"] {
            job.spec.job_mode = mxjob_api::model::JobMode::Unsupported(mode.to_string());
            job.spec.clean_pod_policy = Some(mxjob_api::model::CleanPodPolicy::Unsupported(
                mode.to_string(),
            ));
            let whole = serde_json::to_vec(&job).expect("encodes");
            let encoded = encode_whole(&mut job, None).expect("encodes");
            assert_eq!(encoded.bytes, whole);
            let span = encoded.layout.and_then(|l| l.replica_specs).expect("found");
            assert_eq!(
                whole[span].to_vec(),
                serde_json::to_vec(&job.spec.mx_replica_specs).expect("encodes")
            );
        }
    }

    #[test]
    fn the_layout_finds_the_managed_fields_where_a_json_walk_does() {
        let mut job = seed();
        job.metadata.resource_version = None;
        let entries: Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry> =
            serde_json::from_value(serde_json::json!([
                {"apiVersion": "kubeflow.org/v1", "fieldsType": "FieldsV1",
                 "fieldsV1": {"f:metadata": {"f:labels": {"f:a]},\"": {}}}},
                 "manager": "m\"}", "operation": "Update", "time": "2026-12-05T10:00:00Z"}
            ]))
            .expect("entries");
        let tricky = [(
            "managedFields".to_string(),
            "\"managedFields\":[]".to_string(),
        )];
        for managed_fields in [None, Some(Vec::new()), Some(entries)] {
            for labels in [None, Some(tricky.clone().into_iter().collect())] {
                for uid in [None, Some("u".to_string())] {
                    job.metadata.managed_fields = managed_fields.clone();
                    job.metadata.labels = labels.clone();
                    job.metadata.uid = uid;
                    let stored = serde_json::to_vec(&job).expect("encodes");
                    let layout = Layout::of(&stored).expect("as the registry writes it");
                    assert_eq!(
                        layout.managed_fields,
                        crate::json::member_span(&stored, &["metadata", "managedFields"]),
                        "{}",
                        String::from_utf8_lossy(&stored)
                    );
                }
            }
        }
        job.metadata.resource_version = Some("1".to_string());
        let with_version = serde_json::to_vec(&job).expect("encodes");
        assert_eq!(Layout::of(&with_version), None, "a resourceVersion already");
        assert_eq!(Layout::of(br#"{"kind":"MXJob"}"#), None, "not as written");
    }

    #[test]
    fn the_version_goes_where_the_serializer_writes_it() {
        let mut job = seed();
        let metadata = &mut job.metadata;
        metadata.labels = Some(
            [("uid".to_string(), "{\"x\\\"]".to_string())]
                .into_iter()
                .collect(),
        );
        for (uid, self_link) in [
            (None, None),
            (Some("u"), None),
            (None, Some("/s")),
            (Some("u"), Some("/s")),
        ] {
            job.metadata.uid = uid.map(str::to_string);
            job.metadata.self_link = self_link.map(str::to_string);
            job.metadata.resource_version = None;
            let stored = serde_json::to_vec(&job).expect("encodes");
            job.metadata.resource_version = Some("12".to_string());
            assert_eq!(
                splice(&stored, Some("12")),
                Some(mxjob_api::wire::to_json(&job, false).expect("encodes")),
                "uid {uid:?}, selfLink {self_link:?}"
            );
        }
        job.metadata = Default::default();
        let stored = serde_json::to_vec(&job).expect("encodes");
        job.metadata.resource_version = Some("1".to_string());
        assert_eq!(
            splice(&stored, Some("1")),
            Some(mxjob_api::wire::to_json(&job, false).expect("encodes"))
        );
    }

    #[test]
    fn an_event_line_is_the_watch_event_of_the_answer() {
        let mut job = seed();
        job.metadata.resource_version = None;
        let stored: Arc<[u8]> = serde_json::to_vec(&job).expect("encodes").into();
        job.metadata.resource_version = Some("9".to_string());
        let object = Object::new(job.clone(), stored);
        let line = object.event_line(WatchEventType::MODIFIED).expect("a line");
        assert!(line.ends_with(b"}\n"));
        let event: mxjob_api::model::WatchEvent = serde_json::from_slice(&line).expect("an event");
        assert_eq!(event.type_, WatchEventType::MODIFIED);
        assert_eq!(
            serde_json::Value::Object(event.object),
            serde_json::to_value(&job).expect("encodes")
        );
        let again = object.event_line(WatchEventType::MODIFIED).expect("a line");
        assert_eq!(again.as_ptr(), line.as_ptr(), "made once, shared");
        let deleted = object.deleted_at(10);
        assert_eq!(
            deleted.job().metadata.resource_version.as_deref(),
            Some("10")
        );
        assert!(Arc::ptr_eq(&deleted, &object.deleted_at(10)));
    }
}

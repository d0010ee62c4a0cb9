//! Request bodies into typed values: an MXJob, or a patch.
//!
//! Decoding follows the Kubernetes API server for a custom resource:
//!
//! * the body must be JSON of the media type it declares (415 otherwise;
//!   a patch names its algorithm by media type);
//! * `apiVersion` and `kind` must be there and be `kubeflow.org/v1` and
//!   `MXJob` (400);
//! * a value of the wrong type is 400 naming its path
//!   (`spec.mxReplicaSpecs.Worker.replicas`);
//! * fields the schema does not know, and keys given twice, are findings
//!   that `fieldValidation` turns into a 400 (`Strict`), `Warning` headers
//!   (`Warn`, the default) or nothing (`Ignore`); repeated keys come first,
//!   as they do in kube-apiserver's messages.
//!
//! A body is read straight into an `MXJob` when one pass over its bytes
//! ([`crate::json::scan_plain`], or [`crate::json::scan`] for a body with
//! escapes) finds no repeated key and no misshapen status,
//! and the typed decode succeeds; anything else — an error, a repeated
//! key, an unknown field under `Strict` — goes the full way through a
//! `Value`, which words every error and finding as described above. The
//! two ways answer the same; the first does not build the `Value`.
//!
//! A replace's body is decoded over the stored object
//! ([`replacement`]): the managed fields, replica specs and status it sends
//! back as stored are not decoded again.
//!
//! What is decoded is still only a request: the registry applies the
//! Kubernetes rules to it.

use std::ops::Range;

use json_patch::PatchOperation;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, Time};
use mxjob_api::model::{MXJob, API_VERSION, KIND};
use mxjob_api::params::{require_json, FieldValidation};
use serde_json::Value;

use crate::apply::SharedEntries;

/// Why a body could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Not JSON, not an MXJob, or refused by strict field validation: 400.
    #[error("{0}")]
    Malformed(String),
    /// Not a media type this body may come in: 415.
    #[error("{0}")]
    UnsupportedMediaType(String),
}

impl From<DecodeError> for mxjob_api::error::ApiError {
    fn from(error: DecodeError) -> Self {
        match error {
            DecodeError::Malformed(message) => Self::bad_request(message),
            DecodeError::UnsupportedMediaType(message) => Self::unsupported_media_type(message),
        }
    }
}

/// A decoded object and the warnings to send with the answer.
#[derive(Debug)]
pub struct Decoded<T> {
    pub object: T,
    pub warnings: Vec<String>,
}

/// A patch, by algorithm (the shape of kube-rs's `Patch`).
#[derive(Clone, Debug)]
pub enum Patch {
    /// An RFC 7386 merge patch: an object.
    Merge(Value),
    /// An RFC 6902 JSON patch: operations applied in order.
    Json(json_patch::Patch),
    /// A server-side apply: the applier's configuration.
    Apply(Value),
}

/// The media type of a server-side apply.
pub const APPLY_PATCH: &str = "application/apply-patch+yaml";

/// A decoded patch and what strict decoding found in it (repeated keys,
/// members an operation does not have), reported once the patched object
/// is decoded.
#[derive(Clone, Debug)]
pub struct PatchRequest {
    pub patch: Patch,
    pub findings: Vec<String>,
    /// For an apply: take fields other managers own (the `force` option).
    pub force: bool,
}

impl PatchRequest {
    /// Whether the patch names a resourceVersion — a precondition: such a
    /// patch applies only to that version and is not retried on a newer one.
    pub fn carries_version(&self) -> bool {
        match &self.patch {
            Patch::Merge(patch) => patch
                .pointer("/metadata/resourceVersion")
                .is_some_and(|v| !v.is_null()),
            Patch::Json(operations) => operations.0.iter().any(|operation| {
                let path = match operation {
                    PatchOperation::Add(o) => o.path.as_str(),
                    PatchOperation::Replace(o) => o.path.as_str(),
                    PatchOperation::Test(o) => o.path.as_str(),
                    _ => "",
                };
                path == "/metadata/resourceVersion" || path == "/metadata"
            }),
            Patch::Apply(config) => config
                .pointer("/metadata/resourceVersion")
                .is_some_and(|v| !v.is_null()),
        }
    }
}

/// An MXJob body of a create or replace.
pub fn object(
    bytes: &[u8],
    media_type: Option<&str>,
    validation: &FieldValidation,
) -> Result<Decoded<MXJob>, DecodeError> {
    require_json(media_type)
        .map_err(|e| DecodeError::UnsupportedMediaType(e.message().to_string()))?;
    if let Some(decoded) = fast_object(bytes, validation) {
        return Ok(decoded);
    }
    let (value, duplicates) = parse_json(bytes)?;
    job(value, duplicate_findings("", &duplicates), validation)
}

/// A request body as read, and the media type it declares.
#[derive(Clone, Copy, Debug)]
pub struct Body<'a> {
    pub bytes: &'a [u8],
    pub media_type: Option<&'a str>,
}

/// Where the parts of an MXJob's JSON lie that a client sending back an
/// object it read sends byte for byte: `metadata.managedFields`,
/// `spec.mxReplicaSpecs` and `status` (each `None` when missing or not
/// found).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Parts {
    pub managed_fields: Option<Range<usize>>,
    pub replica_specs: Option<Range<usize>>,
    pub status: Option<Range<usize>>,
}

/// The [`Parts`] as marks of the body's one pass.
static PARTS: &[crate::json::Mark] = &[
    crate::json::Mark {
        key: "metadata",
        slot: None,
        inner: &[crate::json::Mark {
            key: "managedFields",
            slot: Some(0),
            inner: &[],
        }],
    },
    crate::json::Mark {
        key: "spec",
        slot: None,
        inner: &[crate::json::Mark {
            key: "mxReplicaSpecs",
            slot: Some(1),
            inner: &[],
        }],
    },
    crate::json::Mark {
        key: "status",
        slot: Some(2),
        inner: &[],
    },
];

impl Parts {
    /// The parts of `bytes` and what the pass found, as
    /// [`crate::json::scan_plain_marked`] finds them: the parts are passed
    /// over, as the `expected` bytes when they begin with them.
    fn scan<'a>(
        bytes: &'a [u8],
        expected: [Option<&'a [u8]>; 3],
    ) -> Option<(crate::json::Scanned, Parts)> {
        let (scanned, [managed_fields, replica_specs, status]) =
            crate::json::scan_plain_marked(bytes, &MXJOB_SHAPE, PARTS, expected)?;
        Some((
            scanned,
            Parts {
                managed_fields,
                replica_specs,
                status,
            },
        ))
    }

    /// The parts of `bytes` (none of a document the pass does not take).
    pub fn of(bytes: &[u8]) -> Parts {
        Parts::scan(bytes, [None; 3])
            .map(|(_, parts)| parts)
            .unwrap_or_default()
    }
}

/// The stored object a replace is made over: the job (without its managed
/// fields), its managed fields, and the stored bytes of the [`Parts`] of
/// its stored form.
#[derive(Clone, Copy, Debug)]
pub struct Over<'a> {
    pub job: &'a MXJob,
    pub entries: Option<&'a SharedEntries>,
    pub managed_fields: Option<&'a [u8]>,
    pub replica_specs: Option<&'a [u8]>,
    pub status: Option<&'a [u8]>,
}

/// A replace's body, decoded (see [`replacement`]).
#[derive(Debug)]
pub struct Replacement {
    pub decoded: Decoded<MXJob>,
    /// When the body's managed fields were the stored entries but for
    /// their times: the time sent for each stored entry, in the stored
    /// order (`None` for an entry without one). The job's
    /// `metadata.managedFields` are then `None`.
    pub sent_times: Option<Vec<Option<Time>>>,
}

/// An MXJob body of a replace of `over`: [`object`], but the parts of the
/// body that are the stored ones byte for byte — what a client sends back
/// after a read — are not decoded again: `spec.mxReplicaSpecs` and
/// `status` (the pod templates and the status: most of a body, and its
/// deepest types) are copied from the stored job, and the managed fields
/// (sent as stored, or but for the entries' times) are not decoded nor
/// copied. Sent as they are stored, they are left out (`None`): the update
/// rules keep the stored entries (`apply::managed_fields_for_update`).
/// Sent but for their times, the decoded job is the one [`object`] gives
/// but for its managed fields, which are the stored entries with
/// [`Replacement::sent_times`].
pub fn replacement(
    body: Body<'_>,
    validation: &FieldValidation,
    over: Option<Over<'_>>,
) -> Result<Replacement, DecodeError> {
    if let Some(replacement) = over.and_then(|over| parts_as_stored(body, validation, over)) {
        #[cfg(debug_assertions)]
        if let Ok(whole) = object(body.bytes, body.media_type, validation) {
            let taken = &replacement.decoded;
            assert_eq!(taken.object.spec, whole.object.spec, "spec decoded over");
            assert_eq!(
                taken.object.status, whole.object.status,
                "status decoded over"
            );
            assert_eq!(taken.warnings, whole.warnings, "warnings decoded over");
        } else {
            panic!("a body decoded over the stored object fails to decode whole");
        }
        return Ok(replacement);
    }
    Ok(Replacement {
        decoded: object(body.bytes, body.media_type, validation)?,
        sent_times: None,
    })
}

/// See [`replacement`]. `None` when no part sent is the stored one or
/// anything else declines (the caller then decodes the body as it came,
/// so errors are worded from it).
///
/// The stored bytes are this server's encoding of the stored job, which
/// decodes into it; so a part sent equal to its stored bytes decodes into
/// the stored value (managed fields: but for the time strings, each a valid
/// `Time`, into the stored entries with the sent times), and holds no
/// unknown field nor repeated key. The body is decoded with each such part
/// replaced by a value that decodes and holds nothing (`null` for the
/// managed fields, `{}` for the others), then the stored values are put in.
fn parts_as_stored(
    body: Body<'_>,
    validation: &FieldValidation,
    over: Over<'_>,
) -> Option<Replacement> {
    require_json(body.media_type).ok()?;
    let expected = [over.managed_fields, over.replica_specs, over.status];
    if expected.iter().all(Option::is_none) {
        return None;
    }
    let (scanned, sent) = Parts::scan(body.bytes, expected)?;
    if scanned.repeated_keys || scanned.not_objects {
        return None;
    }
    let same = |sent: &Option<Range<usize>>, stored: Option<&[u8]>| {
        let sent = sent.as_ref()?;
        (body.bytes.get(sent.clone())? == stored?).then(|| sent.clone())
    };
    let mut holes: Vec<(Range<usize>, &[u8])> = Vec::with_capacity(3);
    let mut sent_times = None;
    if let Some(span) = &sent.managed_fields {
        if let Some(times) = managed_fields_as_stored(&body.bytes[span.clone()], over) {
            sent_times = times;
            holes.push((span.clone(), b"null"));
        }
    }
    let replica_specs = same(&sent.replica_specs, over.replica_specs);
    if let Some(span) = &replica_specs {
        holes.push((span.clone(), b"{}"));
    }
    let status = same(&sent.status, over.status);
    if let Some(span) = &status {
        holes.push((span.clone(), b"{}"));
    }
    // The pass skipped the parts: those not taken are scanned now.
    let parts = [
        (&sent.managed_fields, &crate::json::Shape::Any),
        (&sent.replica_specs, &crate::json::Shape::Any),
        (&sent.status, &STATUS_SHAPE),
    ];
    for (span, shape) in parts {
        let Some(span) = span else { continue };
        if holes.iter().any(|(hole, _)| hole == span) {
            continue;
        }
        let part = crate::json::scan_plain(&body.bytes[span.clone()], shape)?;
        if part.repeated_keys || part.not_objects {
            return None;
        }
    }
    if holes.is_empty() {
        // Nothing taken: the body, scanned in all, is decoded as it came.
        return Some(Replacement {
            decoded: typed(body.bytes, validation)?,
            sent_times: None,
        });
    }
    holes.sort_by_key(|(span, _)| span.start);
    let mut rest = Vec::with_capacity(body.bytes.len());
    let mut from = 0;
    for (span, filler) in &holes {
        rest.extend_from_slice(&body.bytes[from..span.start]);
        rest.extend_from_slice(filler);
        from = span.end;
    }
    rest.extend_from_slice(&body.bytes[from..]);
    // What the passes found holds for `rest`: a part replaced by an empty
    // value repeats no key and leaves every object an object.
    let mut decoded = typed(&rest, validation)?;
    if replica_specs.is_some() {
        decoded.object.spec.mx_replica_specs = over.job.spec.mx_replica_specs.clone();
    }
    if status.is_some() {
        decoded.object.status = over.job.status.clone();
    }
    Some(Replacement {
        decoded,
        sent_times,
    })
}

/// Whether managed fields sent (`sent`, their value's bytes) are the
/// stored ones: `Some(None)` byte for byte, `Some(Some(times))` but for
/// the entries' times, `None` otherwise — and for an empty list or a lone
/// empty entry, which resets the managed fields where leaving them out
/// would not.
fn managed_fields_as_stored(sent: &[u8], over: Over<'_>) -> Option<Option<Vec<Option<Time>>>> {
    let stored_bytes = over.managed_fields?;
    let stored_entries = over.entries?;
    if sent == stored_bytes {
        let resets = stored_entries
            .iter()
            .all(|s| s.fields.is_none() && s.entry == ManagedFieldsEntry::default());
        return (!resets).then_some(None);
    }
    let mut times = same_but_times(sent, stored_bytes)?.into_iter();
    let mut sent_times = Vec::with_capacity(stored_entries.len());
    for shared in stored_entries.iter() {
        sent_times.push(match shared.entry.time {
            Some(_) => Some(time(times.next()?)?),
            None => None,
        });
    }
    if times.next().is_some() {
        return None;
    }
    Some(Some(sent_times))
}

/// Whether `sent` is `stored` but for the values of the `"time"` members
/// (the contents of their strings), and if so the sent values in order.
/// In managed fields' JSON only an entry's time is such a member:
/// `fieldsV1` keys carry a prefix (`f:`, `k:`, ...).
fn same_but_times<'a>(sent: &'a [u8], stored: &[u8]) -> Option<Vec<&'a [u8]>> {
    const TIME: &[u8] = b"\"time\":\"";
    let finder = memchr::memmem::Finder::new(TIME);
    let mut times = Vec::new();
    let (mut i, mut j) = (0, 0);
    loop {
        let next = finder.find(&stored[j..]).map(|n| j + n + TIME.len());
        let upto = next.unwrap_or(stored.len());
        let length = upto - j;
        if sent.get(i..i + length)? != &stored[j..upto] {
            return None;
        }
        i += length;
        j = upto;
        if next.is_none() {
            return (i == sent.len()).then_some(times);
        }
        let sent_end = i + memchr::memchr(b'"', &sent[i..])?;
        let value = &sent[i..sent_end];
        if value.contains(&b'\\') {
            return None;
        }
        times.push(value);
        i = sent_end;
        j += memchr::memchr(b'"', &stored[j..])?;
    }
}

/// A managed-fields time as `Time` decodes it from JSON.
fn time(text: &[u8]) -> Option<Time> {
    let mut quoted = Vec::with_capacity(text.len() + 2);
    quoted.push(b'"');
    quoted.extend_from_slice(text);
    quoted.push(b'"');
    serde_json::from_slice(&quoted).ok()
}

/// Where a body must have objects, as [`require_objects`] checks.
static STATUS_COUNTS: crate::json::Shape = crate::json::Shape::Members;
static STATUS_SHAPE: crate::json::Shape = crate::json::Shape::Member {
    key: "mxReplicaStatuses",
    inner: &STATUS_COUNTS,
};
static MXJOB_SHAPE: crate::json::Shape = crate::json::Shape::Member {
    key: "status",
    inner: &STATUS_SHAPE,
};

/// The common case of [`object`], decoded straight from the bytes: a body
/// without repeated keys, of the right shape, that decodes into an MXJob
/// of the right `apiVersion` and `kind`. `None` sends everything else to
/// the full path, which words the errors and findings — so both paths
/// answer the same, and only the first is fast.
///
/// The scan costs a fraction of building a `Value`; the typed decode is
/// the one the full path makes too, through serde_ignored for unknown
/// fields, minus serde_path_to_error (an error goes the full path, which
/// names its place).
fn fast_object(bytes: &[u8], validation: &FieldValidation) -> Option<Decoded<MXJob>> {
    let scanned = crate::json::scan_plain(bytes, &MXJOB_SHAPE)
        .or_else(|| crate::json::scan(bytes, &MXJOB_SHAPE).ok())?;
    if scanned.repeated_keys || scanned.not_objects {
        return None;
    }
    typed(bytes, validation)
}

/// The typed decode of [`fast_object`], for bytes whose pass found no
/// repeated key and no misshapen status.
fn typed(bytes: &[u8], validation: &FieldValidation) -> Option<Decoded<MXJob>> {
    let mut unknown = Vec::new();
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let job: MXJob =
        serde_ignored::deserialize(&mut deserializer, |path| unknown.push(field_path(&path)))
            .ok()?;
    deserializer.end().ok()?;
    if job.api_version != API_VERSION || job.kind != KIND {
        return None;
    }
    let warnings = match validation {
        // The full path finds unknown fields in the `Value`'s key order
        // (sorted), this one in the document's: the same only for one.
        FieldValidation::Warn if unknown.len() > 1 => return None,
        FieldValidation::Warn => unknown
            .iter()
            .map(|f| format!("unknown field {f:?}"))
            .collect(),
        FieldValidation::Strict if !unknown.is_empty() => return None,
        _ => Vec::new(),
    };
    Some(Decoded {
        object: job,
        warnings,
    })
}

/// A patch body: its algorithm from `media_type`, its operations checked.
pub fn patch(bytes: &[u8], media_type: Option<&str>) -> Result<PatchRequest, DecodeError> {
    if media_type == Some(APPLY_PATCH) {
        return Ok(PatchRequest {
            patch: Patch::Apply(parse_yaml(bytes)?),
            findings: Vec::new(),
            force: false,
        });
    }
    let (value, duplicates) = parse_json(bytes)?;
    let json = match media_type {
        Some("application/merge-patch+json") => false,
        Some("application/json-patch+json") => true,
        // The one JSON media type OpenAPI clients generated from the spec send.
        Some("application/json") => value.is_array(),
        other => {
            return Err(DecodeError::UnsupportedMediaType(format!(
                "the body of the request was in an unknown format ({}) - accepted media types \
                 include: application/merge-patch+json, application/json-patch+json, \
                 application/apply-patch+yaml, application/json",
                other.unwrap_or("no Content-Type")
            )))
        }
    };
    if !json {
        if !value.is_object() {
            return Err(DecodeError::Malformed(
                "a merge patch must be a JSON object".to_string(),
            ));
        }
        // A merge patch has the object's shape: its repeated keys carry the
        // object's field paths.
        return Ok(PatchRequest {
            findings: duplicate_findings("", &duplicates),
            patch: Patch::Merge(value),
            force: false,
        });
    }
    let findings = json_patch_findings(&value, &duplicates);
    let operations = serde_json::from_value(without_null_from(value))
        .map_err(|e| DecodeError::Malformed(format!("the body is not a valid JSON patch: {e}")))?;
    Ok(PatchRequest {
        patch: Patch::Json(operations),
        findings,
        force: false,
    })
}

/// Parses a request body as JSON; also returns the path of every key the
/// body names twice (see [`crate::json`]).
fn parse_json(bytes: &[u8]) -> Result<(Value, Vec<String>), DecodeError> {
    crate::json::parse(bytes)
        .map_err(|e| DecodeError::Malformed(format!("the request body is not valid JSON: {e}")))
}

/// Parses an applied configuration: YAML, of which JSON is a part (what
/// kubectl and kube-rs send). A key given twice is an error in YAML.
fn parse_yaml(bytes: &[u8]) -> Result<Value, DecodeError> {
    serde_yaml_ng::from_slice(bytes).map_err(|e| {
        DecodeError::Malformed(format!("the applied configuration is not valid YAML: {e}"))
    })
}

/// What strict decoding reports about repeated keys, as the Kubernetes API
/// server words it: `duplicate field "metadata.name"`, with `prefix` before
/// it (`json patch ` for the operations of a JSON patch).
fn duplicate_findings(prefix: &str, paths: &[String]) -> Vec<String> {
    paths
        .iter()
        .map(|path| format!("{prefix}duplicate field {path:?}"))
        .collect()
}

/// The members an operation of a JSON patch may have.
const JSON_PATCH_MEMBERS: [&str; 4] = ["op", "path", "from", "value"];

/// What strict decoding reports about a JSON patch itself: repeated keys
/// and members an operation does not have, each as `json patch …` with its
/// path (`[1].path`), as kube-apiserver reports them.
fn json_patch_findings(patch: &Value, duplicates: &[String]) -> Vec<String> {
    let mut findings = duplicate_findings("json patch ", duplicates);
    let operations = patch.as_array().map(Vec::as_slice).unwrap_or_default();
    for (index, operation) in operations.iter().enumerate() {
        let members = operation.as_object().into_iter().flatten();
        for (member, _) in members.filter(|(m, _)| !JSON_PATCH_MEMBERS.contains(&m.as_str())) {
            findings.push(format!("json patch unknown field \"[{index}].{member}\""));
        }
    }
    findings
}

/// A JSON patch without `"from": null` members, which the document allows
/// (the member is optional) and the patch library does not.
fn without_null_from(mut patch: Value) -> Value {
    if let Some(operations) = patch.as_array_mut() {
        for operation in operations.iter_mut().filter_map(Value::as_object_mut) {
            if operation.get("from").is_some_and(Value::is_null) {
                operation.remove("from");
            }
        }
    }
    patch
}

/// Formats a serde_ignored path as a Kubernetes field path.
fn field_path(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", field_path(parent)),
        Path::Map { parent, key } => {
            let parent = field_path(parent);
            if parent.is_empty() {
                key.to_string()
            } else {
                format!("{parent}.{key}")
            }
        }
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => field_path(parent),
    }
}

/// Decodes a JSON value into an MXJob: `apiVersion` and `kind` must be
/// there and match; unknown fields are handled by `validation`, together
/// with `findings`, what strict decoding already found in the request
/// (repeated keys), which come first as they do in kube-apiserver's
/// messages.
pub fn job(
    mut value: Value,
    findings: Vec<String>,
    validation: &FieldValidation,
) -> Result<Decoded<MXJob>, DecodeError> {
    let malformed = DecodeError::Malformed;
    let Some(object) = value.as_object_mut() else {
        return Err(malformed(
            "the request body must be a JSON object describing an MXJob".to_string(),
        ));
    };
    // Both are required, as the API server requires them of a custom
    // resource body: a client that leaves them out is talking about
    // something else, or about nothing in particular.
    for (field, expected) in [("apiVersion", API_VERSION), ("kind", KIND)] {
        let what = if field == "kind" {
            "kind"
        } else {
            "API version"
        };
        match object.get(field) {
            Some(Value::String(s)) if s == expected => {}
            None | Some(Value::Null) => {
                return Err(malformed(format!(
                    "the body has no {field:?}: it must be {expected:?}"
                )))
            }
            Some(Value::String(s)) if s.is_empty() => {
                return Err(malformed(format!(
                    "the body has an empty {field:?}: it must be {expected:?}"
                )))
            }
            Some(other) => {
                let shown = other
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| other.to_string());
                return Err(malformed(format!(
                    "the {what} in the data ({shown}) does not match the expected {what} ({expected})"
                )));
            }
        }
    }
    // The document declares each role of `spec.mxReplicaSpecs` nullable
    // (they are optional, one property each), and generated clients send
    // null for the roles a job does not use: null reads as absent there.
    // Elsewhere a null is what the schema says it is.
    require_objects(&value)?;
    if let Some(roles) = value
        .pointer_mut("/spec/mxReplicaSpecs")
        .and_then(Value::as_object_mut)
    {
        roles.retain(|_, role| !role.is_null());
    }
    let mut unknown = Vec::new();
    let mut record = |path: serde_ignored::Path<'_>| unknown.push(field_path(&path));
    let ignoring = serde_ignored::Deserializer::new(&value, &mut record);
    let job: MXJob = serde_path_to_error::deserialize(ignoring).map_err(|e| {
        let path = e.path().to_string();
        malformed(format!(
            "the body is not a valid MXJob: {path}: {}",
            e.inner()
        ))
    })?;
    let mut messages = findings;
    messages.extend(unknown.iter().map(|f| format!("unknown field {f:?}")));
    match validation {
        FieldValidation::Strict if !messages.is_empty() => Err(malformed(format!(
            "strict decoding error: {}",
            messages.join(", ")
        ))),
        FieldValidation::Warn => Ok(Decoded {
            object: job,
            warnings: messages,
        }),
        _ => Ok(Decoded {
            object: job,
            warnings: Vec::new(),
        }),
    }
}

/// serde reads a JSON array as a struct whose fields are all optional
/// (`JobStatus`, `ReplicaStatus`); the schema says these are objects, so
/// anything else there is refused before decoding.
fn require_objects(value: &Value) -> Result<(), DecodeError> {
    let not_object = |path: &str| {
        DecodeError::Malformed(format!(
            "the body is not a valid MXJob: {path}: must be an object"
        ))
    };
    if value.get("status").is_some_and(|s| !s.is_object()) {
        return Err(not_object("status"));
    }
    if let Some(counts) = value.pointer("/status/mxReplicaStatuses") {
        let counts = counts
            .as_object()
            .ok_or_else(|| not_object("status.mxReplicaStatuses"))?;
        if let Some((role, _)) = counts.iter().find(|(_, c)| !c.is_object()) {
            return Err(not_object(&format!("status.mxReplicaStatuses.{role}")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// The document states a JSON patch path as a pattern
        /// (`mxjob_api::constraints::JSON_POINTER`): a path the schema takes
        /// is one the server reads, and the other way round.
        #[test]
        fn json_pointer_pattern_takes_exactly_the_paths_a_patch_reads(
            path in "(/|~|~0|~1|~2|a|0|-| ){0,6}"
        ) {
            let pattern = regex::Regex::new(mxjob_api::constraints::JSON_POINTER)
                .expect("the document's pattern compiles");
            let body = serde_json::json!([{ "op": "remove", "path": path }]).to_string();
            let read = patch(body.as_bytes(), Some("application/json-patch+json")).is_ok();
            proptest::prop_assert_eq!(pattern.is_match(&path), read);
        }
    }

    /// What the full path (through a `Value`) answers for `bytes`.
    fn full(bytes: &[u8], validation: &FieldValidation) -> Result<Decoded<MXJob>, DecodeError> {
        let (value, duplicates) = parse_json(bytes)?;
        job(value, duplicate_findings("", &duplicates), validation)
    }

    fn same(bytes: &[u8]) {
        for validation in [
            FieldValidation::Strict,
            FieldValidation::Warn,
            FieldValidation::Ignore,
        ] {
            let fast = object(bytes, Some("application/json"), &validation);
            let full = full(bytes, &validation);
            match (fast, full) {
                (Ok(fast), Ok(full)) => {
                    assert_eq!(fast.object, full.object, "{validation:?}");
                    assert_eq!(fast.warnings, full.warnings, "{validation:?}");
                }
                (Err(fast), Err(full)) => assert_eq!(fast, full, "{validation:?}"),
                (fast, full) => panic!("{validation:?}: {fast:?} against {full:?}"),
            }
        }
    }

    #[test]
    fn the_fast_path_answers_as_the_full_one() {
        let seed: Value =
            serde_json::from_str(mxjob_api::openapi::REPLACE_EXAMPLE).expect("the example");
        same(seed.to_string().as_bytes());
        let with = |edit: &dyn Fn(&mut Value)| {
            let mut body = seed.clone();
            edit(&mut body);
            body.to_string()
        };
        same(with(&|b| b["zzz"] = Value::Bool(true)).as_bytes());
        same(
            with(&|b| {
                b["zzz"] = Value::Bool(true);
                b["aaa"] = Value::Bool(true);
                b["spec"]["bbb"] = Value::from(1);
            })
            .as_bytes(),
        );
        same(with(&|b| b["status"] = Value::Null).as_bytes());
        same(
            with(&|b| b["status"] = serde_json::json!({"mxReplicaStatuses": {"Worker": 1}}))
                .as_bytes(),
        );
        same(with(&|b| b["spec"]["mxReplicaSpecs"]["Server"] = Value::Null).as_bytes());
        same(with(&|b| b["kind"] = Value::from("Pod")).as_bytes());
        same(
            with(&|b| {
                b.as_object_mut().map(|o| o.remove("apiVersion"));
            })
            .as_bytes(),
        );
        same(with(&|b| b["spec"]["runPolicy"] = Value::from("x")).as_bytes());
        // Repeated keys and trailing bytes.
        let body = seed.to_string();
        same(body.replacen("{", "{\"kind\":\"MXJob\",", 1).as_bytes());
        same(format!("{body} x").as_bytes());
        same(b"[]");
        same(b"{");
    }

    /// `replacement` over `stored` answers as `object` does for `body`;
    /// the replacement, and which parts were taken from `stored` (managed
    /// fields, replica specs, status).
    fn same_over(body: &[u8], stored: &MXJob) -> (Option<Replacement>, [bool; 3]) {
        let bytes = serde_json::to_vec(stored).expect("encodes");
        let parts = Parts::of(&bytes);
        let part = |span: &Option<Range<usize>>| span.clone().map(|span| &bytes[span]);
        let entries = stored
            .metadata
            .managed_fields
            .clone()
            .map(SharedEntries::from_entries);
        let over = Over {
            job: stored,
            entries: entries.as_ref(),
            managed_fields: part(&parts.managed_fields),
            replica_specs: part(&parts.replica_specs),
            status: part(&parts.status),
        };
        let body = Body {
            bytes: body,
            media_type: Some("application/json"),
        };
        for validation in [
            FieldValidation::Strict,
            FieldValidation::Warn,
            FieldValidation::Ignore,
        ] {
            let over = replacement(body, &validation, Some(over));
            let plain = object(body.bytes, body.media_type, &validation);
            match (over, plain) {
                (Ok(over), Ok(plain)) => {
                    let mut over = over.decoded_whole(stored);
                    if over.object.metadata.managed_fields.is_none() {
                        // Left out: sent as stored.
                        assert_eq!(
                            plain.object.metadata.managed_fields,
                            stored.metadata.managed_fields
                        );
                        over.object.metadata.managed_fields =
                            plain.object.metadata.managed_fields.clone();
                    }
                    assert_eq!(over.object, plain.object, "{validation:?}");
                    assert_eq!(over.warnings, plain.warnings, "{validation:?}");
                }
                (Err(over), Err(plain)) => assert_eq!(over, plain, "{validation:?}"),
                (over, plain) => panic!("{validation:?}: {over:?} against {plain:?}"),
            }
        }
        let taken = parts_as_stored(body, &FieldValidation::Strict, over);
        let sent = Parts::of(body.bytes);
        let same = |sent: &Option<Range<usize>>, stored: Option<&[u8]>| {
            taken.is_some()
                && sent.clone().map(|span| &body.bytes[span]) == stored
                && stored.is_some()
        };
        let managed = sent.managed_fields.is_some()
            && taken.as_ref().is_some_and(|t| {
                t.sent_times.is_some() || t.decoded.object.metadata.managed_fields.is_none()
            });
        let which = [
            managed,
            same(&sent.replica_specs, over.replica_specs),
            same(&sent.status, over.status),
        ];
        (taken, which)
    }

    impl Replacement {
        /// The job as [`object`] decodes it: the stored entries with the
        /// times sent put back.
        fn decoded_whole(self, stored: &MXJob) -> Decoded<MXJob> {
            let mut decoded = self.decoded;
            if let Some(times) = &self.sent_times {
                let entries = stored
                    .metadata
                    .managed_fields
                    .as_deref()
                    .unwrap_or_default();
                let entries = SharedEntries::from_entries(entries.to_vec());
                decoded.object.metadata.managed_fields =
                    Some(crate::apply::retimed(&entries, times));
            }
            decoded
        }
    }

    #[test]
    fn managed_fields_sent_back_are_taken_from_the_stored_object() {
        let mut stored: MXJob =
            serde_json::from_str(mxjob_api::openapi::REPLACE_EXAMPLE).expect("the example");
        stored.metadata.managed_fields = Some(
            serde_json::from_value(serde_json::json!([
                {"apiVersion": "kubeflow.org/v1", "fieldsType": "FieldsV1",
                 "fieldsV1": {"f:spec": {"f:runPolicy": {"f:ttlSecondsAfterFinished": {}}}},
                 "manager": "bench", "operation": "Update", "time": "2026-12-05T10:00:00Z"},
                {"apiVersion": "kubeflow.org/v1", "fieldsType": "FieldsV1",
                 "fieldsV1": {"f:status": {".": {}, "f:conditions": {}}},
                 "manager": "mxjob-controller", "operation": "Update",
                 "subresource": "status"},
                {"apiVersion": "kubeflow.org/v1", "fieldsType": "FieldsV1",
                 "fieldsV1": {"f:metadata": {"f:labels": {"f:time": {}}}},
                 "manager": "time", "operation": "Update", "time": "2026-12-05T11:00:00Z"}
            ]))
            .expect("entries"),
        );
        let body = serde_json::to_string(&stored).expect("encodes");
        let (taken, which) = same_over(body.as_bytes(), &stored);
        let taken = taken.expect("the stored entries, as they are");
        assert_eq!(which, [true; 3], "everything sent back as stored");
        assert_eq!(
            taken.decoded.object.metadata.managed_fields, None,
            "left out"
        );
        assert_eq!(taken.sent_times, None);
        let mut reset = stored.clone();
        reset.metadata.managed_fields = Some(Vec::new());
        let empty = serde_json::to_string(&reset).expect("encodes");
        let (_, which) = same_over(empty.as_bytes(), &reset);
        assert!(!which[0], "a reset");

        let older = body
            .replace("2026-12-05T10:00:00Z", "2026-12-01T09:00:00Z")
            .replace("2026-12-05T11:00:00Z", "2026-12-01T09:30:00.25Z");
        let taken = same_over(older.as_bytes(), &stored)
            .0
            .expect("the stored entries, sent times");
        assert_eq!(taken.decoded.object.metadata.managed_fields, None);
        let times: Vec<_> = taken
            .sent_times
            .iter()
            .flatten()
            .map(|t| t.as_ref().map(|t| t.0.to_rfc3339()))
            .collect();
        assert_eq!(
            times,
            [
                Some("2026-12-01T09:00:00+00:00".to_string()),
                None,
                Some("2026-12-01T09:30:00.250+00:00".to_string())
            ]
        );

        // Everything else is decoded from the body as it came.
        for other in [
            body.replace("2026-12-05T10:00:00Z", "yesterday"),
            body.replace("2026-12-05T10:00:00Z", "2026-12-05T10:00:00\\u005a"),
            body.replace("f:ttlSecondsAfterFinished", "f:backoffLimit"),
            body.replace("\"manager\":\"bench\"", "\"manager\":\"bench\",\"zzz\":1"),
            body.replacen("\"managedFields\":[", "\"managedFields\":[ ", 1),
            body.replacen("\"managedFields\":[", "\"managedFields\":7,\"x\":[", 1),
            body.replacen("{", "{\"zzz\":1,", 1),
            body.replace(
                "\"manager\":\"bench\"",
                "\"manager\":\"bench\",\"manager\":\"x\"",
            ),
        ] {
            let (_, which) = same_over(other.as_bytes(), &stored);
            assert!(!which[0], "{other}");
        }
        // Fields elsewhere keep their checks when the managed fields are taken.
        let unknown = body.replacen("\"spec\":{", "\"spec\":{\"zzz\":1,", 1);
        assert!(
            same_over(unknown.as_bytes(), &stored).0.is_none(),
            "strict: full path"
        );
        let broken = body.replacen("\"spec\":{", "\"spec\":{{", 1);
        assert!(same_over(broken.as_bytes(), &stored).0.is_none());
    }

    #[test]
    fn replica_specs_and_status_sent_back_are_taken_from_the_stored_object() {
        let stored: MXJob =
            serde_json::from_str(mxjob_api::openapi::REPLACE_EXAMPLE).expect("the example");
        let body = serde_json::to_string(&stored).expect("encodes");
        let (taken, which) = same_over(body.as_bytes(), &stored);
        assert!(taken.is_some());
        assert_eq!(which, [false, true, true], "no managed fields stored");

        // A changed part is decoded from the body; the others are taken.
        let changed = body.replace("train_imagenet.py --benchmark", "train.py --benchmark");
        assert_eq!(
            same_over(changed.as_bytes(), &stored).1,
            [false, false, true]
        );
        let changed = body.replace("\"active\":1", "\"active\":2");
        assert_eq!(
            same_over(changed.as_bytes(), &stored).1,
            [false, true, false]
        );
        // Spacing, order and escapes are not the stored bytes.
        let spaced = body.replacen("\"Scheduler\":{", "\"Scheduler\": {", 1);
        assert_eq!(
            same_over(spaced.as_bytes(), &stored).1,
            [false, false, true]
        );
        let escaped = body.replacen("\"startTime\"", "\"start\\u0054ime\"", 1);
        assert_eq!(
            same_over(escaped.as_bytes(), &stored).1,
            [false, true, false]
        );

        // Errors and findings elsewhere are those of the whole body.
        for other in [
            body.replacen("\"spec\":{", "\"spec\":{\"zzz\":1,", 1),
            body.replacen("\"spec\":{", "\"spec\":{\"jobMode\":\"MXTune\",", 1),
            body.replacen("\"status\":{", "\"status\":{\"startTime\":1,\"x\":{},", 1),
            body.replacen("{", "{\"status\":{},", 1),
            body.replacen("{", "{\"spec\":7,", 1),
            body.replace("\"kind\":\"MXJob\"", "\"kind\":\"Job\""),
            format!("{body} x"),
            body.replacen("\"status\":{", "\"status\":[{", 1),
            body.replacen("{\"active\":1}", "7", 1),
            body.replacen("\"replicas\":1", "\"replicas\":1,\"replicas\":2", 1),
        ] {
            let (taken, _) = same_over(other.as_bytes(), &stored);
            assert!(taken.is_none(), "{other}");
        }
        // Unknown fields under Warn: the same warnings as the whole body.
        let unknown = body.replacen("\"jobMode\"", "\"zzz\":1,\"jobMode\"", 1);
        assert_eq!(
            same_over(unknown.as_bytes(), &stored).1,
            [false, false, false]
        );
    }
}

//! Kubernetes object semantics for MXJobs, over any [`Store`].
//!
//! This is where the rules of the Kubernetes API server for a custom
//! resource live, independent of HTTP: how a body is decoded (`apiVersion`
//! and `kind` defaulted from the URL, unknown fields handled by
//! `fieldValidation`), which metadata the server owns, the replace
//! algorithm (name and namespace checks, uid precondition, resourceVersion
//! as compare-and-swap, immutable fields, generation, no-op detection),
//! merge and JSON patch on top of it, `dryRun`, and delete.
//!
//! Objects are stored as JSON under `/registry/kubeflow.org/mxjobs/{ns}/{name}`
//! — the key the Kubernetes API server uses for custom resources — without
//! their `resourceVersion`, which is the store's `mod_revision` and is put
//! back on every read, as the API server does with etcd.
//!
//! Decisions where Kubernetes has no single answer for this resource:
//! * Create ignores server-owned metadata in the body (`uid`,
//!   `resourceVersion`, `creationTimestamp`, `generation`, `selfLink`) so
//!   that an object read from one server can be created on another.
//! * Delete is immediate (MXJobs carry no finalizers here, see
//!   [`validation`](crate::validation)), so it always answers 200.
//! * `fieldManager` is validated but managed fields are not tracked.
//!
//! The work of a write is bounded before it is done, with kube-apiserver's
//! limits: a JSON patch has at most [`MAX_JSON_PATCH_OPERATIONS`]
//! operations, its copies add at most the object bound, and no object
//! larger than the object bound (the request body limit) is computed to the
//! end or stored; see [`Registry::with_max_object_bytes`]. Repeated keys in
//! a body are reported by `fieldValidation` like unknown fields.

use std::sync::Arc;
use std::time::Duration;

use futures::stream::BoxStream;
use futures::StreamExt;

use chrono::{SubsecRound, Utc};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use serde_json::Value;

use crate::api::{
    DeleteQuery, DryRun, FieldValidation, PropagationPolicy, ResourceVersionMatch, WriteQuery,
};
use crate::model::{MXJob, MXJobList, WatchEvent, WatchEventType, API_VERSION, KIND};
use crate::pagination::ContinueToken;
use crate::selectors::{FieldSelector, LabelSelector};
use crate::status::{ApiError, FieldError, Status};
use crate::store::{Event, KeyValue, ListOptions, Revision, Store, StoreError};
use crate::validation;
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;

/// The finalizer that tells the job controller to leave a deleted job's
/// replicas running (Kubernetes' `orphan` finalizer).
pub const ORPHAN_FINALIZER: &str = "orphan";

/// How often a patch or delete is retried when another write got in first.
const MAX_RETRIES: usize = 8;
/// The most operations one JSON patch may have, as in kube-apiserver
/// (`maxJSONPatchOperations`); more are `413 RequestEntityTooLarge`.
pub const MAX_JSON_PATCH_OPERATIONS: usize = 10_000;
/// The longest `fieldManager` accepted.
const MAX_FIELD_MANAGER_LEN: usize = 128;

/// The storage key of one MXJob.
pub fn object_key(namespace: &str, name: &str) -> String {
    format!("{}{name}", namespace_prefix(namespace))
}

/// The storage prefix of a namespace's MXJobs.
pub fn namespace_prefix(namespace: &str) -> String {
    format!("/registry/kubeflow.org/mxjobs/{namespace}/")
}

/// `selfLink` of an object.
pub fn self_link(namespace: &str, name: &str) -> String {
    format!("/apis/kubeflow.org/v1/namespaces/{namespace}/mxjobs/{name}")
}

/// What a replace or patch may change: the object (everything the
/// replace rules allow, never the status) or, through the `/status`
/// subresource, only the status — the split Kubernetes makes for custom
/// resources with a status subresource, so that clients and the controller
/// reporting progress cannot overwrite each other's half.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    Object,
    Status,
}

/// A written (or dry-run) object and the warnings to send with it.
#[derive(Debug)]
pub struct Written {
    pub object: MXJob,
    pub warnings: Vec<String>,
}

/// Validated write options.
#[derive(Clone, Debug)]
pub struct WriteOptions {
    pub dry_run: bool,
    pub field_validation: FieldValidation,
}

impl WriteOptions {
    /// Validates the query of a write; `options` is `CreateOptions`,
    /// `UpdateOptions` or `PatchOptions`, for messages.
    pub fn parse(query: &WriteQuery, options: &str) -> Result<Self, ApiError> {
        let dry_run = dry_run(query.dry_run.as_ref(), options)?;
        if let Some(manager) = &query.field_manager {
            if manager.len() > MAX_FIELD_MANAGER_LEN {
                return Err(ApiError::invalid_options(
                    options,
                    &[FieldError::too_long("fieldManager", MAX_FIELD_MANAGER_LEN)],
                ));
            }
            if manager.chars().any(|c| c.is_control()) {
                return Err(ApiError::invalid_options(
                    options,
                    &[FieldError::invalid(
                        "fieldManager",
                        manager.as_str(),
                        "must not contain control characters",
                    )],
                ));
            }
        }
        let field_validation = match &query.field_validation {
            None => FieldValidation::Warn,
            Some(FieldValidation::Unsupported(other)) => {
                return Err(ApiError::bad_request(format!(
                    "invalid fieldValidation {other:?}: must be one of Ignore, Warn or Strict"
                )))
            }
            Some(v) => v.clone(),
        };
        Ok(WriteOptions {
            dry_run,
            field_validation,
        })
    }
}

/// How a delete treats the replicas of the jobs it deletes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Propagation {
    /// Stop them after the job is gone (the default for custom resources).
    #[default]
    Background,
    /// Stop them; the job goes at once, as it owns no API objects to wait for.
    Foreground,
    /// Leave them running.
    Orphan,
}

/// Validated delete options: the query's and the body's `DeleteOptions`
/// together.
///
/// The Kubernetes API server reads `DeleteOptions` from the body when there
/// is one and from the query otherwise, ignoring the query when both are
/// sent. Here both count, and a field they give different values is 400:
/// a `dryRun` in a query that a body made the server ignore would delete
/// what the client meant only to try.
#[derive(Clone, Debug, Default)]
pub struct DeleteOptions {
    pub dry_run: bool,
    /// `preconditions.uid`: the object must still have this uid.
    pub uid: Option<String>,
    /// `preconditions.resourceVersion`: the object must still be at this version.
    pub resource_version: Option<String>,
    /// How long the replicas get to stop; `None` is the executor's default.
    pub grace_period_seconds: Option<i64>,
    pub propagation: Propagation,
}

/// The `apiVersion`s a `DeleteOptions` body may name, as in Kubernetes:
/// `meta.k8s.io/v1`, the legacy `v1`, and the resource's own group version.
const DELETE_OPTIONS_VERSIONS: [&str; 3] = ["meta.k8s.io/v1", "v1", API_VERSION];

impl DeleteOptions {
    /// The options of a delete from its query and its body (empty when none
    /// was sent). A body must be JSON (415), decode as `DeleteOptions`
    /// (400) and agree with the query (400); the result is validated as
    /// Kubernetes validates `DeleteOptions` (422).
    pub fn from_request(
        query: &DeleteQuery,
        body: &[u8],
        media_type: Option<&str>,
    ) -> Result<Self, ApiError> {
        let from_query = meta::DeleteOptions {
            dry_run: query.dry_run.as_ref().map(|d| vec![d.as_str().to_string()]),
            grace_period_seconds: query.grace_period_seconds,
            orphan_dependents: query.orphan_dependents.map(|o| o.0),
            propagation_policy: query
                .propagation_policy
                .as_ref()
                .map(|p| p.as_str().to_string()),
            ..Default::default()
        };
        let options = if body.iter().all(u8::is_ascii_whitespace) {
            from_query
        } else {
            require_json_body(media_type)?;
            merge_delete_options(decode_delete_options(body)?, from_query)?
        };
        Self::validate(options)
    }

    /// Kubernetes' `ValidateDeleteOptions`, plus a grace period that is
    /// not negative.
    fn validate(options: meta::DeleteOptions) -> Result<Self, ApiError> {
        let mut errors = Vec::new();
        let dry_run = match options.dry_run.as_deref() {
            None | Some([]) => false,
            Some(values) => {
                for value in values.iter().filter(|v| *v != "All") {
                    errors.push(FieldError::not_supported(
                        "dryRun",
                        value,
                        DryRun::SUPPORTED,
                    ));
                }
                true
            }
        };
        if let Some(grace) = options.grace_period_seconds.filter(|g| *g < 0) {
            errors.push(FieldError::invalid(
                "gracePeriodSeconds",
                grace,
                "must be greater than or equal to 0",
            ));
        }
        let mut propagation = match options.orphan_dependents {
            Some(true) => Propagation::Orphan,
            _ => Propagation::Background,
        };
        match options.propagation_policy.as_deref() {
            None => {}
            Some(policy) if options.orphan_dependents.is_some() => {
                errors.push(FieldError::invalid(
                    "propagationPolicy",
                    policy,
                    "orphanDependents and deletionPropagation cannot be both set",
                ))
            }
            Some("Orphan") => propagation = Propagation::Orphan,
            Some("Background") => propagation = Propagation::Background,
            Some("Foreground") => propagation = Propagation::Foreground,
            Some(other) => errors.push(FieldError::not_supported(
                "propagationPolicy",
                other,
                PropagationPolicy::SUPPORTED,
            )),
        }
        if !errors.is_empty() {
            return Err(ApiError::invalid_options("DeleteOptions", &errors));
        }
        let preconditions = options.preconditions.unwrap_or_default();
        Ok(DeleteOptions {
            dry_run,
            uid: preconditions.uid.filter(|u| !u.is_empty()),
            resource_version: preconditions.resource_version.filter(|v| !v.is_empty()),
            grace_period_seconds: options.grace_period_seconds,
            propagation,
        })
    }

    /// Whether the delete must first record how it deletes (see
    /// [`Registry::delete`]).
    fn records_deletion(&self) -> bool {
        self.propagation == Propagation::Orphan || self.grace_period_seconds.is_some()
    }

    /// 409 unless `job` meets the preconditions.
    fn check_preconditions(&self, job: &MXJob) -> Result<(), ApiError> {
        let name = job.metadata.name.as_deref().unwrap_or_default();
        if let Some(uid) = &self.uid {
            let current = job.metadata.uid.as_deref().unwrap_or_default();
            if uid != current {
                return Err(ApiError::conflict(
                    name,
                    &format!(
                        "Precondition failed: UID in precondition: {uid}, UID in object meta: {current}"
                    ),
                ));
            }
        }
        if let Some(version) = &self.resource_version {
            let current = job.metadata.resource_version.as_deref().unwrap_or_default();
            if version != current {
                return Err(ApiError::conflict(
                    name,
                    &format!(
                        "Precondition failed: ResourceVersion in precondition: {version}, \
                         ResourceVersion in object meta: {current}"
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// A `DeleteOptions` body: JSON of that kind (400 otherwise). Unknown
/// fields are dropped, as Kubernetes decodes options leniently.
fn decode_delete_options(body: &[u8]) -> Result<meta::DeleteOptions, ApiError> {
    let bad = |why: String| {
        ApiError::bad_request(format!("the body is not a valid DeleteOptions: {why}"))
    };
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let options: meta::DeleteOptions = serde_path_to_error::deserialize(&mut deserializer)
        .map_err(|e| bad(format!("{}: {}", e.path(), e.inner())))?;
    deserializer.end().map_err(|e| bad(e.to_string()))?;
    if let Some(kind) = options.kind.as_deref().filter(|k| !k.is_empty()) {
        if kind != "DeleteOptions" {
            return Err(ApiError::bad_request(format!(
                "decoded object cannot be converted to DeleteOptions (kind {kind:?})"
            )));
        }
    }
    if let Some(version) = options.api_version.as_deref().filter(|v| !v.is_empty()) {
        if !DELETE_OPTIONS_VERSIONS.contains(&version) {
            return Err(ApiError::bad_request(format!(
                "DeleteOptions in apiVersion {version:?} are not understood: use one of {}",
                DELETE_OPTIONS_VERSIONS.join(", ")
            )));
        }
    }
    Ok(options)
}

/// The body's options with the query's added; 400 where they disagree.
fn merge_delete_options(
    body: meta::DeleteOptions,
    query: meta::DeleteOptions,
) -> Result<meta::DeleteOptions, ApiError> {
    fn pick<T: PartialEq + std::fmt::Debug>(
        field: &str,
        body: Option<T>,
        query: Option<T>,
    ) -> Result<Option<T>, ApiError> {
        match (body, query) {
            (Some(b), Some(q)) if b != q => Err(ApiError::bad_request(format!(
                "the body's DeleteOptions and the query disagree on {field} ({b:?} and {q:?})"
            ))),
            (Some(b), _) => Ok(Some(b)),
            (None, q) => Ok(q),
        }
    }
    Ok(meta::DeleteOptions {
        dry_run: pick("dryRun", body.dry_run, query.dry_run)?,
        grace_period_seconds: pick(
            "gracePeriodSeconds",
            body.grace_period_seconds,
            query.grace_period_seconds,
        )?,
        orphan_dependents: pick(
            "orphanDependents",
            body.orphan_dependents,
            query.orphan_dependents,
        )?,
        propagation_policy: pick(
            "propagationPolicy",
            body.propagation_policy,
            query.propagation_policy,
        )?,
        ..body
    })
}

fn dry_run(value: Option<&DryRun>, options: &str) -> Result<bool, ApiError> {
    match value {
        None => Ok(false),
        Some(DryRun::All) => Ok(true),
        Some(DryRun::Unsupported(other)) => Err(ApiError::invalid_options(
            options,
            &[FieldError::not_supported(
                "dryRun",
                other,
                DryRun::SUPPORTED,
            )],
        )),
    }
}

/// `pretty` is true for the spellings Go's `strconv.ParseBool` accepts as true.
pub fn is_pretty(value: Option<&str>) -> bool {
    matches!(value, Some("1" | "t" | "T" | "true" | "TRUE" | "True"))
}

/// Which patch algorithm a request asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PatchKind {
    Merge,
    Json,
}

fn patch_kind(media_type: Option<&str>, patch: &Value) -> Result<PatchKind, ApiError> {
    match media_type {
        Some("application/merge-patch+json") => Ok(PatchKind::Merge),
        Some("application/json-patch+json") => Ok(PatchKind::Json),
        // The one JSON media type OpenAPI clients generated from the spec send.
        Some("application/json") if patch.is_array() => Ok(PatchKind::Json),
        Some("application/json") => Ok(PatchKind::Merge),
        other => Err(ApiError::unsupported_media_type(format!(
            "the body of the request was in an unknown format ({}) - accepted media types \
             include: application/merge-patch+json, application/json-patch+json, \
             application/json",
            other.unwrap_or("no Content-Type")
        ))),
    }
}

/// A body must be JSON: any other media type, or none (the extractor
/// leaves it unset only for a browser's request, see
/// [`JsonBody`](crate::wire::JsonBody)), is 415.
fn require_json_body(media_type: Option<&str>) -> Result<(), ApiError> {
    match media_type {
        Some("application/json") => Ok(()),
        other => Err(ApiError::unsupported_media_type(format!(
            "the body of the request was in an unknown format ({}) - accepted media \
             types include: application/json",
            other.unwrap_or("no Content-Type")
        ))),
    }
}

/// Parses a request body as JSON; also returns the path of every key the
/// body names twice (see [`crate::json`]).
fn parse_json(bytes: &[u8]) -> Result<(Value, Vec<String>), ApiError> {
    crate::json::parse(bytes)
        .map_err(|e| ApiError::bad_request(format!("the request body is not valid JSON: {e}")))
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

/// Decodes a JSON value into an MXJob: `apiVersion` and `kind` are taken
/// from the URL when missing and must match when present; unknown fields
/// are handled by `validation`, together with `findings`, what strict
/// decoding already found in the request (repeated keys), which come first
/// as they do in kube-apiserver's messages. Returns the object and its
/// warnings.
pub fn decode_job(
    mut value: Value,
    findings: Vec<String>,
    validation: &FieldValidation,
) -> Result<(MXJob, Vec<String>), ApiError> {
    let Some(object) = value.as_object_mut() else {
        return Err(ApiError::bad_request(
            "the request body must be a JSON object describing an MXJob",
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
                return Err(ApiError::bad_request(format!(
                    "the body has no {field:?}: it must be {expected:?}"
                )))
            }
            Some(Value::String(s)) if s.is_empty() => {
                return Err(ApiError::bad_request(format!(
                    "the body has an empty {field:?}: it must be {expected:?}"
                )))
            }
            Some(other) => {
                let shown = other
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| other.to_string());
                return Err(ApiError::bad_request(format!(
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
        ApiError::bad_request(format!(
            "the body is not a valid MXJob: {path}: {}",
            e.inner()
        ))
    })?;
    let mut messages = findings;
    messages.extend(unknown.iter().map(|f| format!("unknown field {f:?}")));
    match validation {
        FieldValidation::Strict if !messages.is_empty() => Err(ApiError::bad_request(format!(
            "strict decoding error: {}",
            messages.join(", ")
        ))),
        FieldValidation::Warn => Ok((job, messages)),
        _ => Ok((job, Vec::new())),
    }
}

/// A JSON patch without `"from": null` members, which the document allows
/// (the member is optional) and the patch library does not.
fn without_null_from(patch: &Value) -> Value {
    let mut patch = patch.clone();
    if let Some(operations) = patch.as_array_mut() {
        for operation in operations.iter_mut().filter_map(Value::as_object_mut) {
            if operation.get("from").is_some_and(Value::is_null) {
                operation.remove("from");
            }
        }
    }
    patch
}

/// serde reads a JSON array as a struct whose fields are all optional
/// (`JobStatus`, `ReplicaStatus`); the schema says these are objects, so
/// anything else there is refused before decoding.
fn require_objects(value: &Value) -> Result<(), ApiError> {
    let not_object = |path: &str| {
        ApiError::bad_request(format!(
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

/// A stored object and the key-value it came from.
struct Stored {
    job: MXJob,
    kv: KeyValue,
}

fn store_error(error: StoreError, name: &str) -> ApiError {
    match error {
        StoreError::AlreadyExists => ApiError::already_exists(name),
        StoreError::NotFound => ApiError::not_found(name),
        StoreError::Conflict { .. } => ApiError::stale(name),
        StoreError::Compacted { compacted } => ApiError::gone(format!(
            "the requested resourceVersion is too old; the oldest available is {compacted}"
        )),
        StoreError::FutureRevision { current } => ApiError::timeout(format!(
            "Too large resource version: the newest resourceVersion is {current}"
        )),
        StoreError::Backend(message) => ApiError::internal(message),
    }
}

/// A generated-name suffix: five characters from the alphabet Kubernetes
/// uses (no vowels, no look-alike digits).
fn name_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    uuid::Uuid::new_v4()
        .as_bytes()
        .iter()
        .take(5)
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect()
}

/// The Kubernetes registry for MXJobs. See the module documentation.
#[derive(Clone)]
pub struct Registry {
    store: Arc<dyn Store>,
    /// The largest object (its JSON) the registry computes or stores, and
    /// the most a JSON patch's copies may add; see [`Registry::with_max_object_bytes`].
    max_object_bytes: usize,
}

impl Registry {
    /// A registry over `store` whose objects may be as large as a request
    /// body may be by default ([`MAX_BODY_BYTES`](crate::wire::MAX_BODY_BYTES)).
    pub fn new(store: Arc<dyn Store>) -> Self {
        Registry {
            store,
            max_object_bytes: crate::wire::MAX_BODY_BYTES,
        }
    }

    /// The same registry with another bound on objects: the server passes
    /// its request body limit, the bound kube-apiserver uses too. An object
    /// a create, replace or patch would make larger than this (as compact
    /// JSON) is `413 RequestEntityTooLarge` and is never stored — a patch
    /// can make an object larger than the body that carried it — and the
    /// `copy` operations of one JSON patch may add at most this much
    /// (kube-apiserver's `JSONPatchMaxCopyBytes`, which it sets to its body
    /// limit), checked before each copy is made.
    pub fn with_max_object_bytes(mut self, max_object_bytes: usize) -> Self {
        self.max_object_bytes = max_object_bytes;
        self
    }

    /// The backend behind the registry.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    fn decode_stored(kv: &KeyValue) -> Result<MXJob, ApiError> {
        let mut job: MXJob = serde_json::from_slice(&kv.value)
            .map_err(|e| ApiError::internal(format!("decoding stored object {}: {e}", kv.key)))?;
        job.metadata.resource_version = Some(kv.mod_revision.to_string());
        Ok(job)
    }

    /// The stored form of `job`; `413` when it is over the object bound.
    fn encode_for_store(&self, job: &MXJob) -> Result<Vec<u8>, ApiError> {
        let mut job = job.clone();
        job.metadata.resource_version = None;
        let bytes = serde_json::to_vec(&job)
            .map_err(|e| ApiError::internal(format!("encoding object: {e}")))?;
        if bytes.len() > self.max_object_bytes {
            return Err(self.object_too_large());
        }
        Ok(bytes)
    }

    fn object_too_large(&self) -> ApiError {
        ApiError::entity_too_large(format!(
            "the object would be larger than the limit of {} bytes",
            self.max_object_bytes
        ))
    }

    /// Refuses a computed document over the object bound before anything
    /// more is done with it.
    fn check_document_size(&self, document: &Value) -> Result<(), ApiError> {
        match crate::json::encoded_len_within(document, self.max_object_bytes) {
            Some(_) => Ok(()),
            None => Err(self.object_too_large()),
        }
    }

    /// Applies a JSON patch one operation at a time, so that its work is
    /// bounded before it is done: the value a `copy` duplicates is measured
    /// first, and once the copies of the patch would add more than the
    /// object bound the patch is refused with `422 Invalid` — what
    /// kube-apiserver answers when its JSON patch library stops at
    /// `AccumulatedCopySizeLimit`. `add` and `replace` only bring values the
    /// body carried, which the body limit already bounds; `move`, `remove`
    /// and `test` add nothing. Errors name the failed operation by index.
    fn apply_json_patch(
        &self,
        document: &mut Value,
        operations: &[json_patch::PatchOperation],
        name: &str,
    ) -> Result<(), ApiError> {
        let failed = |message: String| {
            ApiError::invalid_patch(
                name,
                format!("the JSON patch could not be applied: {message}"),
            )
        };
        let limit = self.max_object_bytes;
        let mut copied = 0usize;
        for (index, operation) in operations.iter().enumerate() {
            if let json_patch::PatchOperation::Copy(copy) = operation {
                if let Some(source) = document.pointer(copy.from.as_str()) {
                    // The document is bounded (earlier copies passed), so
                    // measuring the whole source is bounded too.
                    let size =
                        crate::json::encoded_len_within(source, usize::MAX).unwrap_or(usize::MAX);
                    copied = copied.saturating_add(size);
                    if copied > limit {
                        return Err(failed(format!(
                            "operation '/{index}' failed at path '{}': the copies of this patch \
                             would add {copied} bytes, more than the limit of {limit}",
                            copy.path
                        )));
                    }
                }
            }
            json_patch::patch_unsafe(document, std::slice::from_ref(operation)).map_err(
                |mut error| {
                    error.operation = index;
                    failed(error.to_string())
                },
            )?;
        }
        Ok(())
    }

    async fn load(&self, namespace: &str, name: &str) -> Result<Stored, ApiError> {
        if !validation::dns1123_label(namespace).is_empty()
            || !validation::dns1123_label(name).is_empty()
        {
            // No object with such a name can have been created.
            return Err(ApiError::not_found(name));
        }
        let kv = self
            .store
            .get(&object_key(namespace, name))
            .await
            .map_err(|e| store_error(e, name))?
            .ok_or_else(|| ApiError::not_found(name))?;
        Ok(Stored {
            job: Self::decode_stored(&kv)?,
            kv,
        })
    }

    /// Creates an MXJob from a request body.
    pub async fn create(
        &self,
        namespace: &str,
        body: &[u8],
        media_type: Option<&str>,
        options: &WriteOptions,
    ) -> Result<Written, ApiError> {
        require_json_body(media_type)?;
        let (value, duplicates) = parse_json(body)?;
        let findings = duplicate_findings("", &duplicates);
        let (mut job, warnings) = decode_job(value, findings, &options.field_validation)?;
        check_namespace(&mut job.metadata, namespace)?;

        let mut errors = Vec::new();
        let name = match (
            job.metadata.name.as_deref(),
            job.metadata.generate_name.as_deref(),
        ) {
            (Some(name), _) if !name.is_empty() => name.to_string(),
            (_, Some(prefix)) if !prefix.is_empty() => {
                errors.extend(
                    validation::generate_name_prefix(prefix)
                        .into_iter()
                        .map(|e| FieldError::invalid("metadata.generateName", prefix, e)),
                );
                let base: String = prefix.chars().take(58).collect();
                format!("{base}{}", name_suffix())
            }
            _ => {
                let error =
                    FieldError::required("metadata.name", "name or generateName is required");
                return Err(ApiError::invalid("", &[error]));
            }
        };

        let now = Time(Utc::now().trunc_subsecs(0));
        let metadata = &mut job.metadata;
        metadata.name = Some(name.clone());
        metadata.uid = Some(uuid::Uuid::new_v4().to_string());
        metadata.creation_timestamp = Some(now);
        metadata.generation = Some(1);
        metadata.self_link = Some(self_link(namespace, &name));
        metadata.resource_version = None;
        metadata.managed_fields = None;
        metadata.deletion_timestamp = None;
        metadata.deletion_grace_period_seconds = None;
        // The status a client sends is dropped, but it must still be a
        // status the schema allows.
        let status_errors = validation::validate_status(&job.status);
        if !status_errors.is_empty() {
            return Err(ApiError::invalid(&name, &status_errors));
        }
        job.status = Default::default();

        errors.extend(validation::validate_object(&job));
        if !errors.is_empty() {
            return Err(ApiError::invalid(&name, &errors));
        }
        // Encoded (and measured) for a dry run too: it answers what the
        // write would.
        let encoded = self.encode_for_store(&job)?;
        if options.dry_run {
            return Ok(Written {
                object: job,
                warnings,
            });
        }
        let kv = self
            .store
            .create(&object_key(namespace, &name), encoded)
            .await
            .map_err(|e| store_error(e, &name))?;
        Ok(Written {
            object: Self::decode_stored(&kv)?,
            warnings,
        })
    }

    /// Reads one MXJob.
    pub async fn get(&self, namespace: &str, name: &str) -> Result<MXJob, ApiError> {
        Ok(self.load(namespace, name).await?.job)
    }

    /// Lists the MXJobs of a namespace that match `params.selection`: all
    /// of them, or one page of at most `limit`, at one store revision.
    pub async fn list(&self, namespace: &str, params: &ListParams) -> Result<MXJobList, ApiError> {
        let (revision, start_after) = self.list_start(params).await?;
        if !validation::dns1123_label(namespace).is_empty() {
            let revision = match revision {
                Some(r) => r,
                None => self
                    .store
                    .current_revision()
                    .await
                    .map_err(|e| store_error(e, ""))?,
            };
            return Ok(MXJobList::new(Vec::new(), revision.to_string()));
        }
        let prefix = namespace_prefix(namespace);
        let limit = params.limit.filter(|l| *l > 0);
        let mut items = Vec::new();
        let mut cursor = start_after.map(|name| format!("{prefix}{name}"));
        let mut revision = revision;
        let mut more = false;
        let mut last_examined = None;
        'pages: loop {
            // One more than still wanted, to see whether another page follows.
            let wanted = limit.map(|l| l - items.len() + 1);
            let page = self
                .store
                .list(
                    &prefix,
                    ListOptions {
                        revision,
                        start_after: cursor.clone(),
                        limit: wanted,
                    },
                )
                .await
                .map_err(|e| list_error(e, params))?;
            // Every page is read at the first page's revision.
            revision = Some(page.revision);
            for (index, kv) in page.items.iter().enumerate() {
                let job = Self::decode_stored(kv)?;
                last_examined = job.metadata.name.clone();
                if params.selection.matches(&job) {
                    items.push(job);
                }
                if limit.is_some_and(|l| items.len() >= l) {
                    // Another page only if something after this one could
                    // still be selected: a page never ends up empty because
                    // of what this one already examined.
                    more = page.more
                        || page.items[index + 1..].iter().any(|kv| {
                            Self::decode_stored(kv).is_ok_and(|j| params.selection.matches(&j))
                        });
                    break 'pages;
                }
            }
            match page.items.last() {
                Some(last) if page.more => cursor = Some(last.key.clone()),
                _ => break,
            }
        }
        let revision = revision.unwrap_or_default();
        let mut list = MXJobList::new(items, revision.to_string());
        if more {
            if let Some(start_after) = last_examined {
                list.metadata.continue_ = Some(
                    ContinueToken {
                        revision,
                        start_after,
                    }
                    .encode(),
                );
            }
        }
        Ok(list)
    }

    /// The revision and start position a list reads at, from its
    /// `continue`, `resourceVersion` and `resourceVersionMatch`.
    async fn list_start(
        &self,
        params: &ListParams,
    ) -> Result<(Option<Revision>, Option<String>), ApiError> {
        let version = params.resource_version.as_deref().filter(|v| !v.is_empty());
        if let Some(token) = params.continue_token.as_deref().filter(|t| !t.is_empty()) {
            if version.is_some() {
                return Err(ApiError::bad_request(
                    "specifying resourceVersion is not allowed when using continue",
                ));
            }
            let token = ContinueToken::decode(token)?;
            return Ok((Some(token.revision), Some(token.start_after)));
        }
        let Some(version) = version else {
            if params.version_match.is_some() {
                return Err(ApiError::bad_request(
                    "resourceVersionMatch is forbidden unless resourceVersion is provided",
                ));
            }
            return Ok((None, None));
        };
        let requested = parse_resource_version(version)?;
        match &params.version_match {
            Some(ResourceVersionMatch::Unsupported(other)) => Err(ApiError::bad_request(format!(
                "invalid resourceVersionMatch {other:?}: must be NotOlderThan or Exact"
            ))),
            Some(ResourceVersionMatch::Exact) if requested == 0 => Err(ApiError::bad_request(
                "resourceVersionMatch=Exact needs a resourceVersion other than 0",
            )),
            Some(ResourceVersionMatch::Exact) => Ok((Some(requested), None)),
            // NotOlderThan (the default): the newest state is never older,
            // unless the client has seen a revision this store has not.
            _ => {
                let current = self
                    .store
                    .current_revision()
                    .await
                    .map_err(|e| store_error(e, ""))?;
                if requested > current {
                    return Err(store_error(StoreError::FutureRevision { current }, ""));
                }
                Ok((None, None))
            }
        }
    }

    /// Watches the MXJobs of a namespace that match `params.selection`.
    ///
    /// Without a resourceVersion (or with "0") the stream starts with an
    /// ADDED event for every matching object, then follows changes; with
    /// one, it follows every change after it. An object that starts or
    /// stops matching the selection is ADDED or DELETED, as in Kubernetes.
    /// A resourceVersion older than the kept history is answered with one
    /// ERROR event carrying `410 Expired`.
    pub async fn watch(
        &self,
        namespace: &str,
        params: WatchParams,
    ) -> Result<BoxStream<'static, WatchEvent>, ApiError> {
        check_watch_options(&params)?;
        let prefix = namespace_prefix(namespace);
        let version = params
            .resource_version
            .as_deref()
            .filter(|v| !v.is_empty() && *v != "0");
        let (initial, after) = match version {
            Some(version) => (Vec::new(), parse_resource_version(version)?),
            None => {
                let page = self
                    .store
                    .list(&prefix, ListOptions::default())
                    .await
                    .map_err(|e| store_error(e, ""))?;
                let mut initial = Vec::new();
                for kv in &page.items {
                    let job = Self::decode_stored(kv)?;
                    if params.selection.matches(&job) {
                        initial.push(watch_event(WatchEventType::ADDED, &job)?);
                    }
                }
                (initial, page.revision)
            }
        };
        let mut events = match self.store.watch(&prefix, after).await {
            Ok(events) => events,
            Err(StoreError::Compacted { compacted }) => {
                let error = ApiError::gone(format!(
                    "too old resource version: {after} (the oldest kept is {compacted})"
                ));
                return Ok(futures::stream::iter([error_event(&error)]).boxed());
            }
            Err(e) => return Err(store_error(e, "")),
        };
        let selection = params.selection;
        let stream = async_stream::stream! {
            for event in initial {
                yield event;
            }
            let deadline = tokio::time::sleep(params.timeout);
            tokio::pin!(deadline);
            let mut bookmarks = tokio::time::interval_at(
                tokio::time::Instant::now() + BOOKMARK_INTERVAL,
                BOOKMARK_INTERVAL,
            );
            let mut reached = after;
            loop {
                tokio::select! {
                    _ = &mut deadline => break,
                    _ = bookmarks.tick(), if params.bookmarks => yield bookmark(reached),
                    next = events.next() => match next {
                        None => break,
                        Some(Err(e)) => {
                            yield error_event(&store_error(e, ""));
                            break;
                        }
                        Some(Ok(event)) => {
                            reached = event.revision();
                            match convert_event(&event, &selection) {
                                Ok(Some(event)) => yield event,
                                Ok(None) => {}
                                Err(e) => {
                                    yield error_event(&e);
                                    break;
                                }
                            }
                        }
                    }
                }
            }
        };
        Ok(Box::pin(stream))
    }

    /// Replaces an MXJob with a request body (semantics.md, steps 1-12).
    pub async fn replace(
        &self,
        namespace: &str,
        name: &str,
        body: &[u8],
        media_type: Option<&str>,
        options: &WriteOptions,
        part: Part,
    ) -> Result<Written, ApiError> {
        require_json_body(media_type)?;
        let (value, duplicates) = parse_json(body)?;
        let findings = duplicate_findings("", &duplicates);
        let (mut job, warnings) = decode_job(value, findings, &options.field_validation)?;
        check_namespace(&mut job.metadata, namespace)?;
        check_name(&job.metadata, name)?;
        let stored = self.load(namespace, name).await?;
        let object = self.update(stored, job, options, true, part).await?;
        Ok(Written { object, warnings })
    }

    /// Patches an MXJob (merge or JSON patch), then applies the replace rules.
    pub async fn patch(
        &self,
        namespace: &str,
        name: &str,
        body: &[u8],
        media_type: Option<&str>,
        options: &WriteOptions,
        part: Part,
    ) -> Result<Written, ApiError> {
        let (patch, duplicates) = parse_json(body)?;
        let kind = patch_kind(media_type, &patch)?;
        // A merge patch has the object's shape, so its repeated keys are
        // reported with the object's field paths; a JSON patch's are its own.
        let findings = match kind {
            PatchKind::Merge => duplicate_findings("", &duplicates),
            PatchKind::Json => json_patch_findings(&patch, &duplicates),
        };
        let operations: Option<json_patch::Patch> = match kind {
            PatchKind::Merge if !patch.is_object() => {
                return Err(ApiError::bad_request("a merge patch must be a JSON object"))
            }
            PatchKind::Merge => None,
            PatchKind::Json => Some(serde_json::from_value(without_null_from(&patch)).map_err(
                |e| ApiError::bad_request(format!("the body is not a valid JSON patch: {e}")),
            )?),
        };
        if let Some(operations) = &operations {
            if operations.len() > MAX_JSON_PATCH_OPERATIONS {
                // kube-apiserver's answer, word for word: clients match on it.
                return Err(ApiError::entity_too_large(format!(
                    "The allowed maximum operations in a JSON patch is \
                     {MAX_JSON_PATCH_OPERATIONS}, got {}",
                    operations.len()
                )));
            }
        }
        // A patch that names a resourceVersion is a precondition and is not
        // retried; one that does not applies to whatever version is newest.
        let carries_version = match &operations {
            None => patch
                .pointer("/metadata/resourceVersion")
                .is_some_and(|v| !v.is_null()),
            Some(ops) => ops.0.iter().any(|op| {
                let path = match op {
                    json_patch::PatchOperation::Add(o) => o.path.as_str(),
                    json_patch::PatchOperation::Replace(o) => o.path.as_str(),
                    json_patch::PatchOperation::Test(o) => o.path.as_str(),
                    _ => "",
                };
                path == "/metadata/resourceVersion" || path == "/metadata"
            }),
        };

        let mut attempt = 0;
        loop {
            attempt += 1;
            let stored = self.load(namespace, name).await?;
            let mut document = serde_json::to_value(&stored.job)
                .map_err(|e| ApiError::internal(format!("encoding object: {e}")))?;
            // `document` is a fresh copy that is dropped when the patch
            // fails, so no undo is needed — and json-patch's own undo can
            // panic on some operation sequences.
            match &operations {
                // A merge patch can only bring what the body carried.
                None => json_patch::merge(&mut document, &patch),
                Some(ops) => self.apply_json_patch(&mut document, &ops.0, name)?,
            }
            self.check_document_size(&document)?;
            let (mut job, warnings) =
                decode_job(document, findings.clone(), &options.field_validation)?;
            if job
                .metadata
                .resource_version
                .as_deref()
                .is_none_or(str::is_empty)
            {
                job.metadata.resource_version = Some(stored.kv.mod_revision.to_string());
            }
            check_namespace(&mut job.metadata, namespace)?;
            check_name(&job.metadata, name)?;
            match self.update(stored, job, options, false, part).await {
                Err(e) if e.reason() == "Conflict" && !carries_version && attempt < MAX_RETRIES => {
                    continue
                }
                result => return result.map(|object| Written { object, warnings }),
            }
        }
    }

    /// The shared part of replace and patch: steps 7-12.
    async fn update(
        &self,
        stored: Stored,
        mut job: MXJob,
        options: &WriteOptions,
        version_required: bool,
        part: Part,
    ) -> Result<MXJob, ApiError> {
        let Stored { job: old, kv } = stored;
        let name = old.metadata.name.clone().unwrap_or_default();

        if let Some(uid) = job.metadata.uid.as_deref().filter(|u| !u.is_empty()) {
            let current = old.metadata.uid.as_deref().unwrap_or_default();
            if uid != current {
                return Err(ApiError::conflict(
                    &name,
                    &format!("Precondition failed: UID in precondition: {uid}, UID in object meta: {current}"),
                ));
            }
        }
        let expected = match job.metadata.resource_version.as_deref() {
            None | Some("") if version_required => {
                let error = FieldError::invalid(
                    "metadata.resourceVersion",
                    0,
                    "must be specified for an update",
                );
                return Err(ApiError::invalid(&name, &[error]));
            }
            None | Some("") => kv.mod_revision,
            Some(text) => text.parse::<Revision>().map_err(|_| {
                ApiError::bad_request(format!(
                    "invalid resourceVersion {text:?}: must be a decimal number"
                ))
            })?,
        };
        if expected != kv.mod_revision {
            return Err(ApiError::stale(&name));
        }

        if part == Part::Status {
            // Through /status only the status changes; the rest is stored.
            let status = std::mem::take(&mut job.status);
            job = old.clone();
            job.status = status;
            let errors = validation::validate_status(&job.status);
            if !errors.is_empty() {
                return Err(ApiError::invalid(&name, &errors));
            }
            return self.write_update(kv, old, job, options, &name).await;
        }

        // Server-owned metadata and status come from storage.
        let (new_meta, old_meta) = (&mut job.metadata, &old.metadata);
        new_meta.uid = old_meta.uid.clone();
        new_meta.resource_version = old_meta.resource_version.clone();
        new_meta.creation_timestamp = old_meta.creation_timestamp.clone();
        new_meta.generation = old_meta.generation;
        new_meta.self_link = old_meta.self_link.clone();
        new_meta.managed_fields = old_meta.managed_fields.clone();
        new_meta.deletion_timestamp = old_meta.deletion_timestamp.clone();
        new_meta.deletion_grace_period_seconds = old_meta.deletion_grace_period_seconds;
        // The status in the body is replaced by the stored one, but it
        // must still be a status the schema allows.
        let status_errors = validation::validate_status(&job.status);
        if !status_errors.is_empty() {
            return Err(ApiError::invalid(&name, &status_errors));
        }
        job.status = old.status.clone();

        let errors = validation::validate_update(&job, &old);
        if !errors.is_empty() {
            return Err(ApiError::invalid(&name, &errors));
        }
        if job.spec != old.spec {
            job.metadata.generation = Some(old.metadata.generation.unwrap_or(0) + 1);
        }
        self.write_update(kv, old, job, options, &name).await
    }

    /// Step 12: stores `job` over `old` unless nothing changed.
    async fn write_update(
        &self,
        kv: KeyValue,
        old: MXJob,
        job: MXJob,
        options: &WriteOptions,
        name: &str,
    ) -> Result<MXJob, ApiError> {
        if job == old {
            return Ok(old);
        }
        let encoded = self.encode_for_store(&job)?;
        if options.dry_run {
            return Ok(job);
        }
        let kv = self
            .store
            .update(&kv.key, kv.mod_revision, encoded)
            .await
            .map_err(|e| store_error(e, name))?;
        Self::decode_stored(&kv)
    }

    /// Deletes one MXJob.
    ///
    /// A delete that says how the job's replicas go (`Orphan`, or a grace
    /// period) first records it on the object — `deletionTimestamp`,
    /// `deletionGracePeriodSeconds` and the `orphan` finalizer, the fields
    /// Kubernetes uses for the same purpose — and then deletes that
    /// version, so the job controller, wherever it runs, reads the choice
    /// from the object's last state. Watchers see the MODIFIED event
    /// before the DELETED one, as for a graceful deletion in Kubernetes.
    pub async fn delete(
        &self,
        namespace: &str,
        name: &str,
        options: &DeleteOptions,
    ) -> Result<Status, ApiError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let Stored { job, kv } = self.load(namespace, name).await?;
            options.check_preconditions(&job)?;
            let uid = job.metadata.uid.clone();
            if options.dry_run {
                return Ok(Status::deleted(name, uid));
            }
            match self.delete_version(&kv.key, job, options).await {
                Ok(()) => return Ok(Status::deleted(name, uid)),
                // A resourceVersion precondition pins the version: no retry.
                Err(StoreError::Conflict { .. })
                    if options.resource_version.is_none() && attempt < MAX_RETRIES =>
                {
                    continue
                }
                Err(e) => return Err(store_error(e, name)),
            }
        }
    }

    /// Deletes `job` (as read, with its resourceVersion) under `key`,
    /// recording the deletion first when `options` ask for it.
    async fn delete_version(
        &self,
        key: &str,
        mut job: MXJob,
        options: &DeleteOptions,
    ) -> Result<(), StoreError> {
        let mut revision = job
            .metadata
            .resource_version
            .as_deref()
            .and_then(|rv| rv.parse::<Revision>().ok())
            .unwrap_or_default();
        if options.records_deletion() {
            let metadata = &mut job.metadata;
            metadata.deletion_timestamp = Some(Time(Utc::now().trunc_subsecs(0)));
            metadata.deletion_grace_period_seconds = options.grace_period_seconds;
            if options.propagation == Propagation::Orphan {
                metadata.finalizers = Some(vec![ORPHAN_FINALIZER.to_string()]);
            }
            let value = self
                .encode_for_store(&job)
                .map_err(|e| StoreError::Backend(e.message().to_string()))?;
            revision = self.store.update(key, revision, value).await?.mod_revision;
        }
        self.store.delete(key, revision).await.map(|_| ())
    }

    /// Deletes every MXJob of a namespace that `params` select; returns
    /// what was deleted. Preconditions are checked on every selected job
    /// before any is deleted.
    pub async fn delete_collection(
        &self,
        namespace: &str,
        params: &ListParams,
        options: &DeleteOptions,
    ) -> Result<MXJobList, ApiError> {
        let listed = self.list(namespace, params).await?;
        for job in &listed.items {
            options.check_preconditions(job)?;
        }
        let mut deleted = Vec::with_capacity(listed.items.len());
        for job in listed.items {
            let name = job.metadata.name.clone().unwrap_or_default();
            match self.delete_one_listed(namespace, &name, job, options).await {
                Ok(Some(job)) => deleted.push(job),
                Ok(None) => {}
                Err(e) => return Err(e),
            }
        }
        let revision = self
            .store
            .current_revision()
            .await
            .map_err(|e| store_error(e, ""))?;
        Ok(MXJobList::new(deleted, revision.to_string()))
    }

    /// Deletes one object found by a collection delete; `None` when another
    /// request deleted it first.
    async fn delete_one_listed(
        &self,
        namespace: &str,
        name: &str,
        job: MXJob,
        options: &DeleteOptions,
    ) -> Result<Option<MXJob>, ApiError> {
        if options.dry_run {
            return Ok(Some(job));
        }
        let key = object_key(namespace, name);
        let mut current = job;
        for _ in 0..MAX_RETRIES {
            match self.delete_version(&key, current.clone(), options).await {
                Ok(()) => return Ok(Some(current)),
                Err(StoreError::NotFound) => return Ok(None),
                Err(StoreError::Conflict { .. }) if options.resource_version.is_none() => {
                    match self.load(namespace, name).await {
                        Ok(stored) => {
                            options.check_preconditions(&stored.job)?;
                            current = stored.job;
                        }
                        Err(e) if e.reason() == "NotFound" => return Ok(None),
                        Err(e) => return Err(e),
                    }
                }
                Err(e) => return Err(store_error(e, name)),
            }
        }
        Err(ApiError::stale(name))
    }
}

/// Step 4: the body's namespace is taken from the URL or must equal it.
fn check_namespace(metadata: &mut ObjectMeta, namespace: &str) -> Result<(), ApiError> {
    match metadata.namespace.as_deref() {
        None | Some("") => {
            metadata.namespace = Some(namespace.to_string());
            Ok(())
        }
        Some(ns) if ns == namespace => Ok(()),
        Some(_) => Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        )),
    }
}

/// Step 5: the body's name must equal the URL's.
fn check_name(metadata: &ObjectMeta, name: &str) -> Result<(), ApiError> {
    let body_name = metadata.name.as_deref().unwrap_or_default();
    if body_name == name {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({name})"
        )))
    }
}

/// How often an idle watch that asked for bookmarks gets one.
const BOOKMARK_INTERVAL: Duration = Duration::from_secs(5);

/// Which objects a list, watch or delete collection applies to.
#[derive(Clone, Debug, Default)]
pub struct Selection {
    pub labels: LabelSelector,
    pub fields: FieldSelector,
}

impl Selection {
    /// Parses `labelSelector` and `fieldSelector`; a malformed one is 400.
    pub fn parse(labels: Option<&str>, fields: Option<&str>) -> Result<Self, ApiError> {
        let labels = LabelSelector::parse(labels.unwrap_or_default())
            .map_err(|e| ApiError::bad_request(format!("unable to parse labelSelector: {e}")))?;
        let fields = FieldSelector::parse(fields.unwrap_or_default())
            .map_err(|e| ApiError::bad_request(format!("unable to parse fieldSelector: {e}")))?;
        Ok(Selection { labels, fields })
    }

    /// Whether `job` is selected.
    pub fn matches(&self, job: &MXJob) -> bool {
        let empty = std::collections::BTreeMap::new();
        let metadata = &job.metadata;
        self.labels
            .matches(metadata.labels.as_ref().unwrap_or(&empty))
            && self.fields.matches(
                metadata.name.as_deref().unwrap_or_default(),
                metadata.namespace.as_deref().unwrap_or_default(),
            )
    }
}

/// Validated list parameters.
#[derive(Clone, Debug, Default)]
pub struct ListParams {
    pub selection: Selection,
    pub limit: Option<usize>,
    pub continue_token: Option<String>,
    pub resource_version: Option<String>,
    pub version_match: Option<ResourceVersionMatch>,
}

/// Validated watch parameters.
#[derive(Clone, Debug)]
pub struct WatchParams {
    pub selection: Selection,
    pub resource_version: Option<String>,
    /// `resourceVersionMatch` as sent: a watch refuses it (see
    /// [`check_watch_options`]).
    pub version_match: Option<ResourceVersionMatch>,
    /// `continue` as sent; a watch has no pages and ignores it, except that
    /// it may not come with `resourceVersionMatch`.
    pub continue_token: Option<String>,
    pub bookmarks: bool,
    /// The stream ends after this long.
    pub timeout: Duration,
}

/// The options a watch refuses, as kube-apiserver's `ValidateListOptions`
/// does for a watch: `resourceVersionMatch` only goes with
/// `sendInitialEvents`, and then only as `NotOlderThan`, never with
/// `continue`. This server does not take `sendInitialEvents` (yet), so every
/// `resourceVersionMatch` on a watch is refused: `422 Invalid` on
/// `ListOptions.meta.k8s.io`, one cause per rule broken, as Kubernetes
/// answers.
fn check_watch_options(params: &WatchParams) -> Result<(), ApiError> {
    const FIELD: &str = "resourceVersionMatch";
    let Some(version_match) = params
        .version_match
        .as_ref()
        .filter(|m| !m.as_str().is_empty())
    else {
        return Ok(());
    };
    let mut errors = vec![FieldError::forbidden(
        FIELD,
        "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
    )];
    if *version_match != ResourceVersionMatch::NotOlderThan {
        errors.push(FieldError::not_supported(
            FIELD,
            version_match.as_str(),
            &["NotOlderThan"],
        ));
    }
    if params
        .continue_token
        .as_deref()
        .is_some_and(|c| !c.is_empty())
    {
        errors.push(FieldError::forbidden(
            FIELD,
            "resourceVersionMatch is forbidden when continue is provided",
        ));
    }
    Err(ApiError::invalid_options("ListOptions", &errors))
}

fn parse_resource_version(text: &str) -> Result<Revision, ApiError> {
    text.parse::<Revision>().map_err(|_| {
        ApiError::bad_request(format!(
            "invalid resourceVersion {text:?}: must be a decimal number"
        ))
    })
}

/// Store errors of a list: a compacted continue token is `410 Expired`.
fn list_error(error: StoreError, params: &ListParams) -> ApiError {
    match (error, params.continue_token.is_some()) {
        (StoreError::Compacted { compacted }, true) => ApiError::gone(format!(
            "the continue token is too old to give a consistent list: its resourceVersion has \
             been compacted (the oldest kept is {compacted}); start a new list without it"
        )),
        (error, _) => store_error(error, ""),
    }
}

fn watch_event(type_: WatchEventType, job: &MXJob) -> Result<WatchEvent, ApiError> {
    match serde_json::to_value(job) {
        Ok(Value::Object(object)) => Ok(WatchEvent { type_, object }),
        _ => Err(ApiError::internal("encoding a watch event")),
    }
}

fn error_event(error: &ApiError) -> WatchEvent {
    let object = match serde_json::to_value(error) {
        Ok(Value::Object(object)) => object,
        _ => serde_json::Map::new(),
    };
    WatchEvent {
        type_: WatchEventType::ERROR,
        object,
    }
}

fn bookmark(revision: Revision) -> WatchEvent {
    let object = serde_json::json!({
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"resourceVersion": revision.to_string()},
    });
    WatchEvent {
        type_: WatchEventType::BOOKMARK,
        object: object.as_object().cloned().unwrap_or_default(),
    }
}

/// A store event as the watcher of `selection` sees it, if at all.
fn convert_event(event: &Event, selection: &Selection) -> Result<Option<WatchEvent>, ApiError> {
    match event {
        Event::Put { kv, prev } => {
            let job = Registry::decode_stored(kv)?;
            let was = match prev {
                Some(prev) => selection.matches(&Registry::decode_stored(prev)?),
                None => false,
            };
            let type_ = match (was, selection.matches(&job)) {
                (false, true) => WatchEventType::ADDED,
                (true, true) => WatchEventType::MODIFIED,
                (true, false) => WatchEventType::DELETED,
                (false, false) => return Ok(None),
            };
            watch_event(type_, &job).map(Some)
        }
        Event::Delete { prev, revision } => {
            let mut job = Registry::decode_stored(prev)?;
            if !selection.matches(&job) {
                return Ok(None);
            }
            job.metadata.resource_version = Some(revision.to_string());
            watch_event(WatchEventType::DELETED, &job).map(Some)
        }
    }
}

/// The storage prefix of the MXJobs of every namespace.
pub const ALL_NAMESPACES_PREFIX: &str = "/registry/kubeflow.org/mxjobs/";

/// One change to an MXJob of any namespace, as the job controller sees it.
#[derive(Debug)]
pub struct Change {
    /// The revision of the write.
    pub revision: Revision,
    /// Whether the object was deleted; `job` is then its last state.
    pub deleted: bool,
    /// The object, or why it could not be decoded.
    pub job: Result<MXJob, ApiError>,
}

/// What the job controller needs beyond the API's operations.
impl Registry {
    /// Every MXJob of every namespace, read at one revision, and that revision.
    pub async fn list_all(&self) -> Result<(Vec<Result<MXJob, ApiError>>, Revision), StoreError> {
        const PAGE: usize = 500;
        let mut jobs = Vec::new();
        let mut options = ListOptions {
            limit: Some(PAGE),
            ..Default::default()
        };
        loop {
            let page = self
                .store
                .list(ALL_NAMESPACES_PREFIX, options.clone())
                .await?;
            jobs.extend(page.items.iter().map(Self::decode_stored));
            match page.items.last() {
                Some(last) if page.more => {
                    options.revision = Some(page.revision);
                    options.start_after = Some(last.key.clone());
                }
                _ => return Ok((jobs, page.revision)),
            }
        }
    }

    /// Every change to MXJobs of every namespace after revision `after`.
    pub async fn watch_all(
        &self,
        after: Revision,
    ) -> Result<BoxStream<'static, Result<Change, StoreError>>, StoreError> {
        let events = self.store.watch(ALL_NAMESPACES_PREFIX, after).await?;
        Ok(events
            .map(|event| {
                event.map(|event| match event {
                    Event::Put { kv, .. } => Change {
                        revision: kv.mod_revision,
                        deleted: false,
                        job: Self::decode_stored(&kv),
                    },
                    Event::Delete { prev, revision } => Change {
                        revision,
                        deleted: true,
                        job: Self::decode_stored(&prev).map(|mut job| {
                            job.metadata.resource_version = Some(revision.to_string());
                            job
                        }),
                    },
                })
            })
            .boxed())
    }

    /// Writes `job.status` as the job controller: only the status changes,
    /// and only if the stored object still has `job`'s uid and
    /// resourceVersion (409 otherwise).
    pub async fn write_status(&self, job: &MXJob) -> Result<MXJob, ApiError> {
        let namespace = job.metadata.namespace.as_deref().unwrap_or_default();
        let name = job.metadata.name.as_deref().unwrap_or_default();
        let stored = self.load(namespace, name).await?;
        let options = WriteOptions {
            dry_run: false,
            field_validation: FieldValidation::Ignore,
        };
        self.update(stored, job.clone(), &options, true, Part::Status)
            .await
    }

    /// Deletes `job` only if the stored object still has its uid and
    /// resourceVersion (409 otherwise): how the job controller removes a
    /// job whose TTL ran out without racing a replace that changed it.
    pub async fn delete_unchanged(&self, job: &MXJob) -> Result<(), ApiError> {
        let namespace = job.metadata.namespace.as_deref().unwrap_or_default();
        let name = job.metadata.name.as_deref().unwrap_or_default();
        let stored = self.load(namespace, name).await?;
        if stored.job.metadata.uid != job.metadata.uid {
            return Err(ApiError::conflict(
                name,
                "Precondition failed: the object has another UID",
            ));
        }
        let expected = job
            .metadata
            .resource_version
            .as_deref()
            .and_then(|v| v.parse::<Revision>().ok());
        if expected != Some(stored.kv.mod_revision) {
            return Err(ApiError::stale(name));
        }
        self.store
            .delete(&stored.kv.key, stored.kv.mod_revision)
            .await
            .map_err(|e| store_error(e, name))?;
        Ok(())
    }
}

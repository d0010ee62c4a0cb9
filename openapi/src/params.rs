//! The path and query parameters of the operations, and what they mean:
//! each query type validates itself into the options the server acts on
//! ([`WriteOptions`], [`DeleteOptions`], [`pretty`]), with the messages
//! and codes the Kubernetes API server answers. Validation happens at the
//! HTTP edge, once the caller is authorized; what lies behind it receives
//! only validated options.

use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::{ApiError, FieldError};
use crate::model::{string_enum, MXJob, ReplicaType, API_VERSION};

/// The longest `fieldManager` accepted.
const MAX_FIELD_MANAGER_LEN: usize = 128;

/// A boolean as Go's `strconv.ParseBool` reads it — how the Kubernetes API
/// server reads boolean query parameters; `None` for anything else.
pub fn parse_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// `pretty`: true for the spellings [`parse_bool`] reads as true; anything
/// else is false, as in Kubernetes.
pub fn pretty(value: Option<&str>) -> bool {
    value.and_then(parse_bool) == Some(true)
}

/// The collection of MXJobs in one namespace.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
pub struct NamespacePath {
    /// Object name and auth scope, such as for teams and projects.
    pub namespace: String,
}

/// One MXJob.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
pub struct ObjectPath {
    /// Object name and auth scope, such as for teams and projects.
    pub namespace: String,
    /// Name of the MXJob.
    pub name: String,
}

string_enum! {
    /// `dryRun` values.
    pub enum DryRun { All }
}
impl crate::model::EnumDoc for DryRun {
    const DOC: &'static str = "When present, the request is processed in full but nothing is \
        stored. The only accepted value is `All`.";
}

string_enum! {
    /// `fieldValidation` values.
    pub enum FieldValidation { Ignore, Warn, Strict }
}
impl crate::model::EnumDoc for FieldValidation {
    const DOC: &'static str = "What to do with fields of the body that the MXJob schema does \
        not know: `Ignore` drops them silently, `Warn` (the default) drops them and names each \
        in a `Warning` response header, `Strict` rejects the request with 400.";
}

string_enum! {
    /// `propagationPolicy` values.
    pub enum PropagationPolicy { Orphan, Background, Foreground }
}
impl crate::model::EnumDoc for PropagationPolicy {
    const DOC: &'static str = "Whether and how garbage collection removes dependents: \
        `Orphan`, `Background` or `Foreground`. MXJobs own no dependents in this server, so \
        the value is validated and recorded but changes nothing.";
}

string_enum! {
    /// `resourceVersionMatch` values.
    pub enum ResourceVersionMatch { NotOlderThan, Exact }
}
impl crate::model::EnumDoc for ResourceVersionMatch {
    const DOC: &'static str = "How `resourceVersion` applies to a list: `NotOlderThan` (the \
        default) reads a state at least that new, `Exact` reads the state at exactly that \
        revision (410 when it has been compacted).";
}

/// A boolean query parameter, read as the Kubernetes API server reads them
/// (`true`, `True`, `1`, `t`, … and their false forms), because clients
/// differ: kubectl sends `true`, the Python client `True`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct QueryBool(pub bool);

impl<'de> Deserialize<'de> for QueryBool {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        parse_bool(&text)
            .map(QueryBool)
            .ok_or_else(|| serde::de::Error::custom(format!("invalid boolean {text:?}")))
    }
}

impl JsonSchema for QueryBool {
    fn schema_name() -> String {
        "Boolean".to_string()
    }
    fn is_referenceable() -> bool {
        false
    }
    fn json_schema(generator: &mut schemars::gen::SchemaGenerator) -> schemars::schema::Schema {
        bool::json_schema(generator)
    }
}

impl QueryBool {
    /// The value, `false` when absent.
    pub fn of(value: Option<QueryBool>) -> bool {
        value.is_some_and(|v| v.0)
    }
}

/// Query parameters of list (and of watch, which is a list that follows
/// changes).
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListQuery {
    /// If 'true', then the output is pretty printed.
    pub pretty: Option<String>,
    /// Only objects whose labels match, e.g. `team=vision,stage in (train,tune),!paused`.
    #[schemars(regex(path = "crate::constraints::LABEL_SELECTOR"))]
    pub label_selector: Option<String>,
    /// Only objects whose fields match: `metadata.name` and
    /// `metadata.namespace` with `=`, `==` or `!=`.
    #[schemars(regex(path = "crate::constraints::FIELD_SELECTOR"))]
    pub field_selector: Option<String>,
    /// At most this many objects; `metadata.continue` then fetches the rest.
    pub limit: Option<i64>,
    /// The `metadata.continue` of the previous page. Every page is read at
    /// the first page's resourceVersion.
    #[serde(rename = "continue")]
    pub continue_: Option<String>,
    /// For a list: read a state at least this new (or exactly this one,
    /// with `resourceVersionMatch=Exact`). For a watch: follow the changes
    /// after it; without it the watch starts with the current objects.
    pub resource_version: Option<String>,
    /// How `resourceVersion` applies to a list.
    pub resource_version_match: Option<ResourceVersionMatch>,
    /// End a watch after this many seconds (default 1800).
    #[schemars(range(min = 0))]
    pub timeout_seconds: Option<i64>,
    /// Stream `WatchEvent`s, one JSON document per line, instead of
    /// answering a list (see `watch_mxjobs` for the typed form).
    pub watch: Option<QueryBool>,
    /// Ask a watch for BOOKMARK events carrying the resourceVersion it has
    /// reached.
    pub allow_watch_bookmarks: Option<QueryBool>,
    /// For a watch (with `resourceVersionMatch=NotOlderThan`): `true`
    /// starts with an ADDED event per current object and then a BOOKMARK
    /// annotated `k8s.io/initial-events-end: "true"` (with
    /// `allowWatchBookmarks`), as a streaming list; `false` sends only the
    /// changes after `resourceVersion` (from now without one). A watch
    /// from no resourceVersion that sets neither this nor
    /// `resourceVersionMatch` is taken as `true`. Refused on a list.
    pub send_initial_events: Option<QueryBool>,
}

/// Query parameters of delete collection: which objects, and how.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeleteCollectionQuery {
    /// If 'true', then the output is pretty printed.
    pub pretty: Option<String>,
    /// Only objects whose labels match.
    #[schemars(regex(path = "crate::constraints::LABEL_SELECTOR"))]
    pub label_selector: Option<String>,
    /// Only objects whose fields match (`metadata.name`, `metadata.namespace`).
    #[schemars(regex(path = "crate::constraints::FIELD_SELECTOR"))]
    pub field_selector: Option<String>,
    /// `All` processes the request in full without deleting anything.
    pub dry_run: Option<DryRun>,
    /// Seconds before the objects are deleted; must not be negative.
    #[schemars(range(min = 0))]
    pub grace_period_seconds: Option<i64>,
    /// Deprecated form of `propagationPolicy=Orphan`; not to be combined with it.
    pub orphan_dependents: Option<QueryBool>,
    /// How dependents are garbage collected.
    pub propagation_policy: Option<PropagationPolicy>,
}

impl DeleteCollectionQuery {
    /// The delete options part.
    pub fn delete_query(&self) -> DeleteQuery {
        DeleteQuery {
            pretty: self.pretty.clone(),
            dry_run: self.dry_run.clone(),
            grace_period_seconds: self.grace_period_seconds,
            orphan_dependents: self.orphan_dependents,
            propagation_policy: self.propagation_policy.clone(),
        }
    }
}

/// Query parameters of reads.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReadQuery {
    /// If 'true', then the output is pretty printed.
    pub pretty: Option<String>,
}

/// Query parameters of create, replace and patch.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WriteQuery {
    /// If 'true', then the output is pretty printed.
    pub pretty: Option<String>,
    /// `All` processes the request in full without storing anything.
    pub dry_run: Option<DryRun>,
    /// Name of the actor making the change (at most 128 bytes, no
    /// control characters).
    #[schemars(
        length(max = 128),
        regex(pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$")
    )]
    pub field_manager: Option<String>,
    /// How unknown fields in the body are treated (default `Warn`).
    pub field_validation: Option<FieldValidation>,
}

/// Query parameters of patch: those of every write, and `force`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PatchQuery {
    /// If 'true', then the output is pretty printed.
    pub pretty: Option<String>,
    /// `All` processes the request in full without storing anything.
    pub dry_run: Option<DryRun>,
    /// Name of the actor making the change (at most 128 bytes, no
    /// control characters); required for a server-side apply
    /// (`application/apply-patch+yaml`).
    #[schemars(
        length(max = 128),
        regex(pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$")
    )]
    pub field_manager: Option<String>,
    /// How unknown fields in the body are treated (default `Warn`).
    pub field_validation: Option<FieldValidation>,
    /// For a server-side apply only: take the fields the configuration
    /// sets from the managers that own them, instead of answering 409.
    pub force: Option<QueryBool>,
}

impl PatchQuery {
    /// The options every write takes, and `force`.
    pub fn options(&self) -> Result<(WriteOptions, bool), ApiError> {
        let write = WriteQuery {
            pretty: self.pretty.clone(),
            dry_run: self.dry_run.clone(),
            field_manager: self.field_manager.clone(),
            field_validation: self.field_validation.clone(),
        };
        Ok((write.options(WriteKind::Patch)?, QueryBool::of(self.force)))
    }

    /// `pretty`.
    pub fn pretty(&self) -> bool {
        pretty(self.pretty.as_deref())
    }
}

/// Query parameters of delete and delete collection.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeleteQuery {
    /// If 'true', then the output is pretty printed.
    pub pretty: Option<String>,
    /// `All` processes the request in full without deleting anything.
    pub dry_run: Option<DryRun>,
    /// Seconds before the object is deleted; must not be negative. MXJobs
    /// have no graceful termination of their own, so they go at once.
    #[schemars(range(min = 0))]
    pub grace_period_seconds: Option<i64>,
    /// Deprecated form of `propagationPolicy=Orphan`; not to be combined with it.
    pub orphan_dependents: Option<QueryBool>,
    /// How dependents are garbage collected.
    pub propagation_policy: Option<PropagationPolicy>,
}

/// Query parameters of reading a replica's log.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LogQuery {
    /// The role of the replica, such as `Worker`.
    pub replica_type: ReplicaType,
    /// Which replica of the role, counting from 0 (default 0).
    pub index: Option<u32>,
    /// Accepted as on every operation; a log is sent as it was written.
    pub pretty: Option<String>,
}

/// A patch document: an RFC 7386 merge patch (an object, sent as
/// `application/merge-patch+json` or `application/json`) or an RFC 6902
/// JSON patch (an array of operations, sent as `application/json-patch+json`).
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
#[schemars(rename = "MXJobPatch")]
pub enum MXJobPatch {
    /// Fields to set; `null` removes a field.
    Merge(serde_json::Map<String, serde_json::Value>),
    /// Operations applied in order.
    Json(Vec<JsonPatchOperation>),
}

/// One operation of an RFC 6902 JSON patch.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
pub struct JsonPatchOperation {
    /// What to do.
    pub op: JsonPatchOp,
    /// JSON pointer to the target, such as `/metadata/labels/team`.
    pub path: String,
    /// Source pointer, for `move` and `copy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// The value, for `add`, `replace` and `test`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<serde_json::Value>,
}

/// The operations of RFC 6902.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum JsonPatchOp {
    Add,
    Remove,
    Replace,
    Move,
    Copy,
    Test,
}

/// Which write an option set belongs to, for messages
/// (`CreateOptions.meta.k8s.io "" is invalid: …`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteKind {
    Create,
    Update,
    Patch,
}

impl WriteKind {
    fn options_kind(self) -> &'static str {
        match self {
            WriteKind::Create => "CreateOptions",
            WriteKind::Update => "UpdateOptions",
            WriteKind::Patch => "PatchOptions",
        }
    }
}

/// Validated options of a create, replace or patch.
#[derive(Clone, Debug)]
pub struct WriteOptions {
    pub dry_run: bool,
    pub field_validation: FieldValidation,
    /// `fieldManager`, when given.
    pub field_manager: Option<String>,
}

impl WriteQuery {
    /// The options of a write of `kind`: 422 for an unsupported `dryRun` or
    /// a bad `fieldManager`, 400 for an unknown `fieldValidation`.
    pub fn options(&self, kind: WriteKind) -> Result<WriteOptions, ApiError> {
        let options = kind.options_kind();
        let dry_run = dry_run(self.dry_run.as_ref(), options)?;
        if let Some(manager) = &self.field_manager {
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
        let field_validation = match &self.field_validation {
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
            field_manager: self.field_manager.clone().filter(|m| !m.is_empty()),
        })
    }

    /// `pretty`.
    pub fn pretty(&self) -> bool {
        pretty(self.pretty.as_deref())
    }
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
pub const DELETE_OPTIONS_VERSIONS: [&str; 3] = ["meta.k8s.io/v1", "v1", API_VERSION];

impl DeleteQuery {
    /// The options of a delete from this query and the request's body
    /// (empty when none was sent) read as `media_type`. A body must be JSON
    /// (415), decode as `DeleteOptions` (400) and agree with the query
    /// (400); the result is validated as Kubernetes validates
    /// `DeleteOptions` (422).
    pub fn options(
        &self,
        body: &[u8],
        media_type: Option<&str>,
    ) -> Result<DeleteOptions, ApiError> {
        let from_query = meta::DeleteOptions {
            dry_run: self.dry_run.as_ref().map(|d| vec![d.as_str().to_string()]),
            grace_period_seconds: self.grace_period_seconds,
            orphan_dependents: self.orphan_dependents.map(|o| o.0),
            propagation_policy: self
                .propagation_policy
                .as_ref()
                .map(|p| p.as_str().to_string()),
            ..Default::default()
        };
        let options = if body.iter().all(u8::is_ascii_whitespace) {
            from_query
        } else {
            require_json(media_type)?;
            merge_delete_options(decode_delete_options(body)?, from_query)?
        };
        DeleteOptions::validate(options)
    }

    /// `pretty`.
    pub fn pretty(&self) -> bool {
        pretty(self.pretty.as_deref())
    }
}

/// A body must be JSON: any other media type, or none (the body extractor
/// leaves it unset only for a browser's request, see
/// [`JsonBody`](crate::wire::JsonBody)), is 415.
pub fn require_json(media_type: Option<&str>) -> Result<(), ApiError> {
    match media_type {
        Some("application/json") => Ok(()),
        other => Err(ApiError::unsupported_media_type(format!(
            "the body of the request was in an unknown format ({}) - accepted media \
             types include: application/json",
            other.unwrap_or("no Content-Type")
        ))),
    }
}

impl DeleteOptions {
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

    /// Whether the delete must record how it deletes before it deletes.
    pub fn records_deletion(&self) -> bool {
        self.propagation == Propagation::Orphan || self.grace_period_seconds.is_some()
    }

    /// Which precondition `job` fails, if any, as the Kubernetes API server
    /// words it (`Precondition failed: UID in precondition: …`).
    pub fn failed_precondition(&self, job: &MXJob) -> Option<String> {
        if let Some(uid) = &self.uid {
            let current = job.metadata.uid.as_deref().unwrap_or_default();
            if uid != current {
                return Some(format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {current}"
                ));
            }
        }
        if let Some(version) = &self.resource_version {
            let current = job.metadata.resource_version.as_deref().unwrap_or_default();
            if version != current {
                return Some(format!(
                    "Precondition failed: ResourceVersion in precondition: {version}, \
                     ResourceVersion in object meta: {current}"
                ));
            }
        }
        None
    }
}

/// A `DeleteOptions` body: JSON of that kind (400 otherwise). Unknown
/// fields are dropped, as Kubernetes decodes options leniently, and a
/// `null` body is no options, as Go decodes it (generated Go clients send
/// one).
fn decode_delete_options(body: &[u8]) -> Result<meta::DeleteOptions, ApiError> {
    let bad = |why: String| {
        ApiError::bad_request(format!("the body is not a valid DeleteOptions: {why}"))
    };
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let options: Option<meta::DeleteOptions> = serde_path_to_error::deserialize(&mut deserializer)
        .map_err(|e| bad(format!("{}: {}", e.path(), e.inner())))?;
    let options = options.unwrap_or_default();
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

impl ListQuery {
    /// `pretty`.
    pub fn pretty(&self) -> bool {
        pretty(self.pretty.as_deref())
    }

    /// The options a watch refuses, as kube-apiserver's
    /// `ValidateListOptions` does for a watch (the WatchList feature on):
    /// `sendInitialEvents` needs `resourceVersionMatch=NotOlderThan`, and
    /// `resourceVersionMatch` needs `sendInitialEvents`, may only be
    /// `NotOlderThan`, and never goes with `continue`. `422 Invalid` on
    /// `ListOptions.meta.k8s.io`, one cause per rule broken.
    pub fn check_watch(&self) -> Result<(), ApiError> {
        const FIELD: &str = "resourceVersionMatch";
        let version_match = self
            .resource_version_match
            .as_ref()
            .filter(|m| !m.as_str().is_empty());
        let mut errors = Vec::new();
        if self.send_initial_events.is_some()
            && version_match != Some(&ResourceVersionMatch::NotOlderThan)
        {
            errors.push(FieldError::forbidden(
                FIELD,
                "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
            ));
        }
        if let Some(version_match) = version_match {
            if self.send_initial_events.is_none() {
                errors.push(FieldError::forbidden(
                    FIELD,
                    "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
                ));
            }
            if *version_match != ResourceVersionMatch::NotOlderThan {
                errors.push(FieldError::not_supported(
                    FIELD,
                    version_match.as_str(),
                    &["NotOlderThan"],
                ));
            }
            if self.continue_.as_deref().is_some_and(|c| !c.is_empty()) {
                errors.push(FieldError::forbidden(
                    FIELD,
                    "resourceVersionMatch is forbidden when continue is provided",
                ));
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::invalid_options("ListOptions", &errors))
        }
    }

    /// What a list refuses, as kube-apiserver's `ValidateListOptions` does
    /// for a request without `watch=true`: `resourceVersionMatch` without
    /// `resourceVersion` or with `continue`, a value other than `Exact` or
    /// `NotOlderThan`, `Exact` with resourceVersion "0", and any
    /// `sendInitialEvents`. `422 Invalid` on `ListOptions.meta.k8s.io`, one
    /// cause per rule broken, in kube-apiserver's order.
    ///
    /// kube-apiserver chooses between these rules and the watch's by the
    /// `watch` parameter alone, so the deprecated `/watch/` paths without
    /// `watch=true` are checked by these (the handlers do the same).
    pub fn check_list(&self) -> Result<(), ApiError> {
        const FIELD: &str = "resourceVersionMatch";
        let mut errors = Vec::new();
        let version_match = self
            .resource_version_match
            .as_ref()
            .filter(|m| !m.as_str().is_empty());
        if let Some(version_match) = version_match {
            let version = self.resource_version.as_deref().unwrap_or_default();
            if version.is_empty() {
                errors.push(FieldError::forbidden(
                    FIELD,
                    "resourceVersionMatch is forbidden unless resourceVersion is provided",
                ));
            }
            if self.continue_.as_deref().is_some_and(|c| !c.is_empty()) {
                errors.push(FieldError::forbidden(
                    FIELD,
                    "resourceVersionMatch is forbidden when continue is provided",
                ));
            }
            if let ResourceVersionMatch::Unsupported(other) = version_match {
                errors.push(FieldError::not_supported(
                    FIELD,
                    other,
                    &["Exact", "NotOlderThan", ""],
                ));
            }
            if *version_match == ResourceVersionMatch::Exact && version == "0" {
                errors.push(FieldError::forbidden(
                    FIELD,
                    "resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
                ));
            }
        }
        if self.send_initial_events.is_some() {
            errors.push(FieldError::forbidden(
                "sendInitialEvents",
                "sendInitialEvents is forbidden for list",
            ));
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::invalid_options("ListOptions", &errors))
        }
    }

    /// kube-apiserver's defaulting of a watch's options
    /// (`SetListOptionsDefaults`, applied when the WatchList feature is on,
    /// as it is by default since Kubernetes 1.34): a `watch=true` from no
    /// resourceVersion (or "0") that sets neither `sendInitialEvents` nor
    /// `resourceVersionMatch` is served as a streaming list, as if it had
    /// asked for `sendInitialEvents=true&resourceVersionMatch=NotOlderThan`.
    /// What a client sees change is only that, with `allowWatchBookmarks`,
    /// its initial events end with the `k8s.io/initial-events-end`
    /// bookmark; it got the current objects first either way.
    pub fn default_watch_options(&mut self) {
        let version_match_set = self
            .resource_version_match
            .as_ref()
            .is_some_and(|m| !m.as_str().is_empty());
        if self.send_initial_events.is_some() || version_match_set {
            return;
        }
        if matches!(self.resource_version.as_deref(), None | Some("" | "0")) {
            self.send_initial_events = Some(QueryBool(true));
            self.resource_version_match = Some(ResourceVersionMatch::NotOlderThan);
        }
    }
}

impl ReadQuery {
    /// `pretty`.
    pub fn pretty(&self) -> bool {
        pretty(self.pretty.as_deref())
    }
}

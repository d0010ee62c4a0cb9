//! The MXJob HTTP API as a dropshot trait: the one place the contract is
//! written in code.
//!
//! `openapi/mxjob.json` is generated from this trait (`cargo xtask openapi
//! generate`), the Rust client is generated from that file, and the server
//! implements the trait — so the document, the client and the server cannot
//! drift apart without `cargo xtask openapi check` failing.
//!
//! The shape follows the Kubernetes API server rather than a generic REST
//! style, because the clients this API serves are Kubernetes clients:
//!
//! * Paths are `/apis/{group}/{version}/namespaces/{namespace}/{resource}`.
//! * Every error is a `v1 Status` ([`ApiError`]), whatever rejected the
//!   request.
//! * Writes take the Kubernetes write options (`dryRun`, `fieldManager`,
//!   `fieldValidation`) and every operation takes `pretty`.
//! * Bodies are read as bytes ([`JsonBody`]) and decoded by the registry,
//!   because decoding depends on options (`fieldValidation`) and patch
//!   bodies come in media types dropshot cannot declare.
//! * Replace never creates (custom resources do not create on PUT), so it
//!   documents one success code, 200.

use dropshot::{Path, RequestContext};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    APIGroup, APIGroupList, APIResourceList, APIVersions, DeleteOptions,
};
use k8s_openapi::apimachinery::pkg::version::Info;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::controller::logs::TextResponse;
use crate::model::{string_enum, MXJob, MXJobList, ReplicaType};
use crate::status::{ApiError, Status};
use crate::wire::{
    Created201, JsonBody, ListResponse, OptionalJsonBody, QueryString, Reply, WatchResponse,
};

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
        match text.as_str() {
            "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(QueryBool(true)),
            "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(QueryBool(false)),
            other => Err(serde::de::Error::custom(format!(
                "invalid boolean {other:?}"
            ))),
        }
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
    pub label_selector: Option<String>,
    /// Only objects whose fields match: `metadata.name` and
    /// `metadata.namespace` with `=`, `==` or `!=`.
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
    pub timeout_seconds: Option<i64>,
    /// Stream `WatchEvent`s, one JSON document per line, instead of
    /// answering a list (see `watch_mxjobs` for the typed form).
    pub watch: Option<QueryBool>,
    /// Ask a watch for BOOKMARK events carrying the resourceVersion it has
    /// reached.
    pub allow_watch_bookmarks: Option<QueryBool>,
}

/// Query parameters of delete collection: which objects, and how.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeleteCollectionQuery {
    /// If 'true', then the output is pretty printed.
    pub pretty: Option<String>,
    /// Only objects whose labels match.
    pub label_selector: Option<String>,
    /// Only objects whose fields match (`metadata.name`, `metadata.namespace`).
    pub field_selector: Option<String>,
    /// `All` processes the request in full without deleting anything.
    pub dry_run: Option<DryRun>,
    /// Seconds before the objects are deleted; must not be negative.
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
    /// Name of the actor making the change (at most 128 characters).
    pub field_manager: Option<String>,
    /// How unknown fields in the body are treated (default `Warn`).
    pub field_validation: Option<FieldValidation>,
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

/// The MXJob API.
#[dropshot::api_description]
pub trait MxjobApi {
    /// Shared server state.
    type Context;

    /// Create an MXJob
    ///
    /// Creates an MXJob in the namespace. The server sets `uid`,
    /// `resourceVersion`, `generation` (1), `creationTimestamp` and
    /// `selfLink`, ignores any `status` sent, and answers 201 with the stored
    /// object. A name already taken is 409 `AlreadyExists`; an invalid object
    /// is 422 `Invalid` with one cause per field.
    #[endpoint {
        method = POST,
        path = "/apis/kubeflow.org/v1/namespaces/{namespace}/mxjobs",
        tags = ["mxjobs"],
    }]
    async fn create_mxjob(
        rqctx: RequestContext<Self::Context>,
        path: Path<NamespacePath>,
        query: QueryString<WriteQuery>,
        body: JsonBody<MXJob>,
    ) -> Result<Reply<MXJob, Created201>, ApiError>;

    /// Read an MXJob
    ///
    /// Returns the MXJob with its current `resourceVersion`; 404 `NotFound`
    /// when it does not exist.
    #[endpoint {
        method = GET,
        path = "/apis/kubeflow.org/v1/namespaces/{namespace}/mxjobs/{name}",
        tags = ["mxjobs"],
    }]
    async fn read_mxjob(
        rqctx: RequestContext<Self::Context>,
        path: Path<ObjectPath>,
        query: QueryString<ReadQuery>,
    ) -> Result<Reply<MXJob>, ApiError>;

    /// List or watch MXJobs
    ///
    /// Returns the MXJobs of the namespace that match the selectors, ordered
    /// by name, with the `resourceVersion` the list was read at. With
    /// `limit`, one page and a `metadata.continue` token for the next; all
    /// pages of one listing are read at the first page's resourceVersion.
    /// With `watch=true` the answer is instead a stream of `WatchEvent`s,
    /// one JSON document per line, as `watch_mxjobs` describes.
    #[endpoint {
        method = GET,
        path = "/apis/kubeflow.org/v1/namespaces/{namespace}/mxjobs",
        tags = ["mxjobs"],
    }]
    async fn list_mxjobs(
        rqctx: RequestContext<Self::Context>,
        path: Path<NamespacePath>,
        query: QueryString<ListQuery>,
    ) -> Result<ListResponse, ApiError>;

    /// Watch MXJobs
    ///
    /// Streams the changes to the namespace's MXJobs that match the
    /// selectors as `WatchEvent`s, one JSON document per line, in
    /// resourceVersion order without gaps. Without `resourceVersion` the
    /// stream starts with an ADDED event per existing object; with one, it
    /// starts after it, and a resourceVersion older than the kept history
    /// is answered with one ERROR event carrying a 410 `Status`. The stream
    /// ends after `timeoutSeconds`. This is the list operation's
    /// `watch=true`, at the path Kubernetes keeps for watches.
    #[endpoint {
        method = GET,
        path = "/apis/kubeflow.org/v1/watch/namespaces/{namespace}/mxjobs",
        tags = ["mxjobs"],
    }]
    async fn watch_mxjobs(
        rqctx: RequestContext<Self::Context>,
        path: Path<NamespacePath>,
        query: QueryString<ListQuery>,
    ) -> Result<WatchResponse, ApiError>;

    /// Replace an MXJob
    ///
    /// Replaces the MXJob with the body, which must carry the
    /// `resourceVersion` it was read at (stale: 409 `Conflict`; missing: 422).
    /// Only `metadata.labels`, `metadata.annotations`,
    /// `spec.activeDeadlineSeconds`, `spec.ttlSecondsAfterFinished` and
    /// `spec.cleanPodPolicy` may change; changing anything else is 422
    /// `Invalid` naming each field. Server-owned metadata and `status` come
    /// from the stored object. `metadata.generation` rises by one when the
    /// spec changes; a replace that changes nothing writes nothing and keeps
    /// the `resourceVersion`. Replace never creates: a missing object is 404.
    #[endpoint {
        method = PUT,
        path = "/apis/kubeflow.org/v1/namespaces/{namespace}/mxjobs/{name}",
        tags = ["mxjobs"],
    }]
    async fn replace_mxjob(
        rqctx: RequestContext<Self::Context>,
        path: Path<ObjectPath>,
        query: QueryString<WriteQuery>,
        body: JsonBody<MXJob>,
    ) -> Result<Reply<MXJob>, ApiError>;

    /// Patch an MXJob
    ///
    /// Applies a merge patch (`application/merge-patch+json`, or
    /// `application/json` with an object) or a JSON patch
    /// (`application/json-patch+json`, or `application/json` with an array) to
    /// the stored MXJob, then follows the rules of replace. A patch that sets
    /// `metadata.resourceVersion` is applied only to that version (409 when
    /// stale); otherwise it applies to the newest one.
    #[endpoint {
        method = PATCH,
        path = "/apis/kubeflow.org/v1/namespaces/{namespace}/mxjobs/{name}",
        tags = ["mxjobs"],
    }]
    async fn patch_mxjob(
        rqctx: RequestContext<Self::Context>,
        path: Path<ObjectPath>,
        query: QueryString<WriteQuery>,
        body: JsonBody<MXJobPatch>,
    ) -> Result<Reply<MXJob>, ApiError>;

    /// Delete an MXJob
    ///
    /// Deletes the MXJob at once and answers a `Status` with
    /// `status: Success` and the deleted object's name, group, kind and uid.
    /// The options come from the query, from an optional `DeleteOptions`
    /// body (what kubectl and client-go send), or from both when they
    /// agree: `dryRun`, `preconditions` (a uid or resourceVersion that no
    /// longer matches is 409 `Conflict` and deletes nothing),
    /// `gracePeriodSeconds` for stopping the job's replicas, and
    /// `propagationPolicy` (`Orphan` leaves them running).
    #[endpoint {
        method = DELETE,
        path = "/apis/kubeflow.org/v1/namespaces/{namespace}/mxjobs/{name}",
        tags = ["mxjobs"],
    }]
    async fn delete_mxjob(
        rqctx: RequestContext<Self::Context>,
        path: Path<ObjectPath>,
        query: QueryString<DeleteQuery>,
        body: OptionalJsonBody<DeleteOptions>,
    ) -> Result<Reply<Status>, ApiError>;

    /// Delete a collection of MXJobs
    ///
    /// Deletes every MXJob of the namespace that matches the selectors and
    /// answers an `MXJobList` of what was deleted. Takes the delete options
    /// as delete does, applied to each object.
    #[endpoint {
        method = DELETE,
        path = "/apis/kubeflow.org/v1/namespaces/{namespace}/mxjobs",
        tags = ["mxjobs"],
    }]
    async fn delete_mxjob_collection(
        rqctx: RequestContext<Self::Context>,
        path: Path<NamespacePath>,
        query: QueryString<DeleteCollectionQuery>,
        body: OptionalJsonBody<DeleteOptions>,
    ) -> Result<Reply<MXJobList>, ApiError>;

    /// Read the status of an MXJob
    ///
    /// The `status` subresource: the same object as read, at the path
    /// through which the job controller reports progress.
    #[endpoint {
        method = GET,
        path = "/apis/kubeflow.org/v1/namespaces/{namespace}/mxjobs/{name}/status",
        tags = ["mxjobs"],
    }]
    async fn read_mxjob_status(
        rqctx: RequestContext<Self::Context>,
        path: Path<ObjectPath>,
        query: QueryString<ReadQuery>,
    ) -> Result<Reply<MXJob>, ApiError>;

    /// Replace the status of an MXJob
    ///
    /// Replaces only `status`: everything else in the body is ignored and
    /// kept as stored, and `metadata.generation` does not move. The body must
    /// carry the `resourceVersion` it was read at (stale: 409). This is how a
    /// job controller reports conditions, replica counts and times.
    #[endpoint {
        method = PUT,
        path = "/apis/kubeflow.org/v1/namespaces/{namespace}/mxjobs/{name}/status",
        tags = ["mxjobs"],
    }]
    async fn replace_mxjob_status(
        rqctx: RequestContext<Self::Context>,
        path: Path<ObjectPath>,
        query: QueryString<WriteQuery>,
        body: JsonBody<MXJob>,
    ) -> Result<Reply<MXJob>, ApiError>;

    /// Patch the status of an MXJob
    ///
    /// Applies a merge or JSON patch (as for patch) and keeps only the
    /// resulting `status`.
    #[endpoint {
        method = PATCH,
        path = "/apis/kubeflow.org/v1/namespaces/{namespace}/mxjobs/{name}/status",
        tags = ["mxjobs"],
    }]
    async fn patch_mxjob_status(
        rqctx: RequestContext<Self::Context>,
        path: Path<ObjectPath>,
        query: QueryString<WriteQuery>,
        body: JsonBody<MXJobPatch>,
    ) -> Result<Reply<MXJob>, ApiError>;

    /// Read the log of a replica
    ///
    /// The output (stdout and stderr) of one replica of the job, as plain
    /// text: every attempt of it, with one `[mxjob]` line before each start
    /// and one at each exit. Logs exist only on a server that runs replicas as local
    /// processes (`--executor local`); 404 when the job, the replica or its
    /// log does not exist (not started yet, or removed by `cleanPodPolicy:
    /// All`).
    #[endpoint {
        method = GET,
        path = "/apis/kubeflow.org/v1/namespaces/{namespace}/mxjobs/{name}/log",
        tags = ["mxjobs"],
    }]
    async fn read_mxjob_log(
        rqctx: RequestContext<Self::Context>,
        path: Path<ObjectPath>,
        query: QueryString<LogQuery>,
    ) -> Result<TextResponse, ApiError>;

    /// List the core API versions
    ///
    /// Discovery: the versions of the core group — none, as this server has
    /// no core resources.
    #[endpoint { method = GET, path = "/api", tags = ["discovery"] }]
    async fn get_core_api_versions(
        rqctx: RequestContext<Self::Context>,
    ) -> Result<Reply<APIVersions>, ApiError>;

    /// List the core v1 resources
    ///
    /// Discovery: the resources of the core group's v1 (none here).
    #[endpoint { method = GET, path = "/api/v1", tags = ["discovery"] }]
    async fn get_core_api_resources(
        rqctx: RequestContext<Self::Context>,
    ) -> Result<Reply<APIResourceList>, ApiError>;

    /// List the API groups
    ///
    /// Discovery: the API groups this server serves (`kubeflow.org`) and their
    /// preferred versions.
    #[endpoint { method = GET, path = "/apis", tags = ["discovery"] }]
    async fn get_api_groups(
        rqctx: RequestContext<Self::Context>,
    ) -> Result<Reply<APIGroupList>, ApiError>;

    /// Describe the kubeflow.org group
    ///
    /// Discovery: the versions of the `kubeflow.org` group.
    #[endpoint { method = GET, path = "/apis/kubeflow.org", tags = ["discovery"] }]
    async fn get_kubeflow_api_group(
        rqctx: RequestContext<Self::Context>,
    ) -> Result<Reply<APIGroup>, ApiError>;

    /// List the kubeflow.org/v1 resources
    ///
    /// Discovery: the resources of `kubeflow.org/v1` — `mxjobs`, kind MXJob,
    /// namespaced — with the verbs this server supports on them.
    #[endpoint { method = GET, path = "/apis/kubeflow.org/v1", tags = ["discovery"] }]
    async fn get_kubeflow_api_resources(
        rqctx: RequestContext<Self::Context>,
    ) -> Result<Reply<APIResourceList>, ApiError>;

    /// Get the server version
    ///
    /// The Kubernetes version whose API machinery the server follows, with
    /// mxjob's own version in `gitVersion`.
    #[endpoint { method = GET, path = "/version", tags = ["discovery"] }]
    async fn get_version(rqctx: RequestContext<Self::Context>) -> Result<Reply<Info>, ApiError>;

    /// The OpenAPI document, `openapi/mxjob.json`, byte for byte.
    #[endpoint { method = GET, path = "/openapi.json", unpublished = true }]
    async fn get_openapi_document(
        rqctx: RequestContext<Self::Context>,
    ) -> Result<http::Response<dropshot::Body>, ApiError>;

    /// The API reference as a self-contained page (built by `cargo xtask docs`).
    #[endpoint { method = GET, path = "/docs", unpublished = true }]
    async fn get_docs(
        rqctx: RequestContext<Self::Context>,
    ) -> Result<http::Response<dropshot::Body>, ApiError>;

    /// The document as Swagger 2.0, where kubectl looks for it: protobuf when
    /// asked for, JSON otherwise.
    #[endpoint { method = GET, path = "/openapi/v2", unpublished = true }]
    async fn get_openapi_v2(
        rqctx: RequestContext<Self::Context>,
    ) -> Result<http::Response<dropshot::Body>, ApiError>;

    /// A namespace. Namespaces exist implicitly here (any valid name holds
    /// MXJobs); kubectl reads one to phrase its "not found" messages.
    #[endpoint { method = GET, path = "/api/v1/namespaces/{namespace}", unpublished = true }]
    async fn get_namespace(
        rqctx: RequestContext<Self::Context>,
        path: Path<NamespacePath>,
    ) -> Result<http::Response<dropshot::Body>, ApiError>;
}

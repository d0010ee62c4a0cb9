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

use dropshot::{Path, Query, RequestContext};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::model::{string_enum, MXJob, MXJobList};
use crate::status::{ApiError, Status};
use crate::wire::{Created201, JsonBody, Reply};

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
    pub orphan_dependents: Option<bool>,
    /// How dependents are garbage collected.
    pub propagation_policy: Option<PropagationPolicy>,
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
        query: Query<WriteQuery>,
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
        query: Query<ReadQuery>,
    ) -> Result<Reply<MXJob>, ApiError>;

    /// List MXJobs
    ///
    /// Returns the MXJobs of the namespace, ordered by name, with the
    /// `resourceVersion` of the store the list was read at.
    #[endpoint {
        method = GET,
        path = "/apis/kubeflow.org/v1/namespaces/{namespace}/mxjobs",
        tags = ["mxjobs"],
    }]
    async fn list_mxjobs(
        rqctx: RequestContext<Self::Context>,
        path: Path<NamespacePath>,
        query: Query<ReadQuery>,
    ) -> Result<Reply<MXJobList>, ApiError>;

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
        query: Query<WriteQuery>,
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
        query: Query<WriteQuery>,
        body: JsonBody<MXJobPatch>,
    ) -> Result<Reply<MXJob>, ApiError>;

    /// Delete an MXJob
    ///
    /// Deletes the MXJob at once and answers a `Status` with
    /// `status: Success` and the deleted object's name, group, kind and uid.
    #[endpoint {
        method = DELETE,
        path = "/apis/kubeflow.org/v1/namespaces/{namespace}/mxjobs/{name}",
        tags = ["mxjobs"],
    }]
    async fn delete_mxjob(
        rqctx: RequestContext<Self::Context>,
        path: Path<ObjectPath>,
        query: Query<DeleteQuery>,
    ) -> Result<Reply<Status>, ApiError>;

    /// Delete a collection of MXJobs
    ///
    /// Deletes every MXJob of the namespace and answers an `MXJobList` of what
    /// was deleted.
    #[endpoint {
        method = DELETE,
        path = "/apis/kubeflow.org/v1/namespaces/{namespace}/mxjobs",
        tags = ["mxjobs"],
    }]
    async fn delete_mxjob_collection(
        rqctx: RequestContext<Self::Context>,
        path: Path<NamespacePath>,
        query: Query<DeleteQuery>,
    ) -> Result<Reply<MXJobList>, ApiError>;
}

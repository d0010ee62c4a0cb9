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
//! * Bodies are read as bytes ([`JsonBody`]) and decoded by the server,
//!   because decoding depends on options (`fieldValidation`) and patch
//!   bodies come in media types dropshot cannot declare. Query strings are
//!   parsed, and their options validated ([`crate::params`]), only once
//!   the caller is authorized ([`QueryString`]).
//! * Replace never creates (custom resources do not create on PUT), so it
//!   documents one success code, 200.

use dropshot::{Path, RequestContext};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    APIGroup, APIGroupList, APIResourceList, APIVersions, DeleteOptions,
};
use k8s_openapi::apimachinery::pkg::version::Info;

use crate::error::{ApiError, Status};
use crate::model::{MXJob, MXJobList};
use crate::params::{
    DeleteCollectionQuery, DeleteQuery, ListQuery, LogQuery, MXJobPatch, NamespacePath, ObjectPath,
    PatchQuery, ReadQuery, WriteQuery,
};
use crate::wire::{
    Created201, JsonBody, ListResponse, OptionalJsonBody, QueryString, Reply, TextResponse,
    WatchResponse,
};

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

    /// List or watch MXJobs of every namespace
    ///
    /// The list operation across namespaces, with the same selectors,
    /// paging and resourceVersion rules (`metadata.namespace` can be
    /// selected on); `watch=true` streams as `watch_mxjobs_for_all_namespaces`
    /// describes. Only a caller granted `list` (or `watch`) in every
    /// namespace may ask: anyone else gets 403, never a filtered list.
    #[endpoint {
        method = GET,
        path = "/apis/kubeflow.org/v1/mxjobs",
        tags = ["mxjobs"],
    }]
    async fn list_mxjobs_for_all_namespaces(
        rqctx: RequestContext<Self::Context>,
        query: QueryString<ListQuery>,
    ) -> Result<ListResponse, ApiError>;

    /// Watch MXJobs of every namespace
    ///
    /// The watch operation across namespaces: `WatchEvent`s, one JSON
    /// document per line, as `watch_mxjobs` describes.
    #[endpoint {
        method = GET,
        path = "/apis/kubeflow.org/v1/watch/mxjobs",
        tags = ["mxjobs"],
    }]
    async fn watch_mxjobs_for_all_namespaces(
        rqctx: RequestContext<Self::Context>,
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
    ///
    /// `application/apply-patch+yaml` is a server-side apply: the body (YAML
    /// or JSON) is the applier's configuration, merged into the object by
    /// the MXJob schema, with `metadata.managedFields` recording who owns
    /// what. `fieldManager` is required; changing a field another manager
    /// owns is 409 `Conflict` naming each field and owner, unless `force`.
    /// An apply to a missing MXJob creates it (201).
    #[endpoint {
        method = PATCH,
        path = "/apis/kubeflow.org/v1/namespaces/{namespace}/mxjobs/{name}",
        tags = ["mxjobs"],
    }]
    async fn patch_mxjob(
        rqctx: RequestContext<Self::Context>,
        path: Path<ObjectPath>,
        query: QueryString<PatchQuery>,
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
        query: QueryString<PatchQuery>,
        body: JsonBody<MXJobPatch>,
    ) -> Result<Reply<MXJob>, ApiError>;

    /// Read the log of a replica
    ///
    /// The output (stdout and stderr) of one replica of the job, as plain
    /// text. With `--executor local`: every attempt of it, with one
    /// `[mxjob]` line before each start and one at each exit. With
    /// `--executor kubernetes`: the log of the replica Pod's `mxnet`
    /// container, read through the Kubernetes API (400 with the cluster's
    /// message while it has none to give). 404 when the job, the replica or
    /// its log does not exist (not started yet, or removed by
    /// `cleanPodPolicy`), or the server runs no replicas.
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
    /// Discovery: the versions of the core group: `v1`, which serves
    /// namespaces.
    #[endpoint { method = GET, path = "/api", tags = ["discovery"] }]
    async fn get_core_api_versions(
        rqctx: RequestContext<Self::Context>,
    ) -> Result<Reply<APIVersions>, ApiError>;

    /// List the core v1 resources
    ///
    /// Discovery: the resources of the core group's v1: namespaces.
    #[endpoint { method = GET, path = "/api/v1", tags = ["discovery"] }]
    async fn get_core_api_resources(
        rqctx: RequestContext<Self::Context>,
    ) -> Result<Reply<APIResourceList>, ApiError>;

    /// List the API groups
    ///
    /// Discovery: the API groups this server serves (`kubeflow.org`, and
    /// `authorization.k8s.io` for access reviews) and their preferred
    /// versions.
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

    /// The API reference as a self-contained page: `openapi/mxjob.html`,
    /// compiled in (`--docs-file` serves another).
    #[endpoint { method = GET, path = "/docs", unpublished = true }]
    async fn get_docs(
        rqctx: RequestContext<Self::Context>,
    ) -> Result<http::Response<dropshot::Body>, ApiError>;

    /// The server's metrics in the Prometheus text format (OpenMetrics when
    /// asked for), for callers the policy grants `get` on the non-resource
    /// URL `/metrics`.
    #[endpoint { method = GET, path = "/metrics", unpublished = true }]
    async fn get_metrics(
        rqctx: RequestContext<Self::Context>,
    ) -> Result<http::Response<dropshot::Body>, ApiError>;

    /// Liveness, as kube-apiserver answers it: `ok`, or with `?verbose`
    /// each check. Open to everyone.
    #[endpoint { method = GET, path = "/livez", unpublished = true }]
    async fn get_livez(
        rqctx: RequestContext<Self::Context>,
    ) -> Result<http::Response<dropshot::Body>, ApiError>;

    /// Readiness: the store answers and the job controller has synced;
    /// 500 with the failed checks otherwise. Open to everyone.
    #[endpoint { method = GET, path = "/readyz", unpublished = true }]
    async fn get_readyz(
        rqctx: RequestContext<Self::Context>,
    ) -> Result<http::Response<dropshot::Body>, ApiError>;

    /// An online backup of the SQLite store, consistent at one revision,
    /// streamed as a SQLite file, for callers the policy grants `get` on
    /// the non-resource URL `/backup`.
    #[endpoint { method = GET, path = "/backup", unpublished = true }]
    async fn get_backup(
        rqctx: RequestContext<Self::Context>,
    ) -> Result<http::Response<dropshot::Body>, ApiError>;

    /// The document as Swagger 2.0, where kubectl looks for it: protobuf when
    /// asked for, JSON otherwise.
    #[endpoint { method = GET, path = "/openapi/v2", unpublished = true }]
    async fn get_openapi_v2(
        rqctx: RequestContext<Self::Context>,
    ) -> Result<http::Response<dropshot::Body>, ApiError>;

    /// The OpenAPI v3 index: one entry per group version, with a hash
    /// that changes with the document (what kubectl reads first).
    #[endpoint { method = GET, path = "/openapi/v3", unpublished = true }]
    async fn get_openapi_v3_index(
        rqctx: RequestContext<Self::Context>,
    ) -> Result<http::Response<dropshot::Body>, ApiError>;

    /// The OpenAPI v3 document of `kubeflow.org/v1`: `openapi/mxjob.json`
    /// with the `x-kubernetes-group-version-kind` of each kind, which
    /// `kubectl explain` looks schemas up by.
    #[endpoint { method = GET, path = "/openapi/v3/apis/kubeflow.org/v1", unpublished = true }]
    async fn get_openapi_v3_group(
        rqctx: RequestContext<Self::Context>,
    ) -> Result<http::Response<dropshot::Body>, ApiError>;

    /// Create a namespace (`v1 Namespace`), as `kubectl create namespace`
    /// does.
    #[endpoint { method = POST, path = "/api/v1/namespaces", unpublished = true }]
    async fn create_namespace(
        rqctx: RequestContext<Self::Context>,
        query: QueryString<WriteQuery>,
        body: JsonBody<serde_json::Value>,
    ) -> Result<http::Response<dropshot::Body>, ApiError>;

    /// The namespaces: those created, and those holding MXJobs.
    #[endpoint { method = GET, path = "/api/v1/namespaces", unpublished = true }]
    async fn list_namespaces(
        rqctx: RequestContext<Self::Context>,
        query: QueryString<ReadQuery>,
    ) -> Result<http::Response<dropshot::Body>, ApiError>;

    /// A namespace: it exists once created or once it holds an MXJob.
    #[endpoint { method = GET, path = "/api/v1/namespaces/{namespace}", unpublished = true }]
    async fn get_namespace(
        rqctx: RequestContext<Self::Context>,
        path: Path<NamespacePath>,
        query: QueryString<ReadQuery>,
    ) -> Result<http::Response<dropshot::Body>, ApiError>;

    /// Delete a namespace and every MXJob in it.
    #[endpoint { method = DELETE, path = "/api/v1/namespaces/{namespace}", unpublished = true }]
    async fn delete_namespace(
        rqctx: RequestContext<Self::Context>,
        path: Path<NamespacePath>,
        query: QueryString<DeleteQuery>,
    ) -> Result<http::Response<dropshot::Body>, ApiError>;

    /// Discovery of `authorization.k8s.io`, for `kubectl auth can-i`.
    #[endpoint { method = GET, path = "/apis/authorization.k8s.io", unpublished = true }]
    async fn get_authorization_api_group(
        rqctx: RequestContext<Self::Context>,
    ) -> Result<Reply<APIGroup>, ApiError>;

    /// The resources of `authorization.k8s.io/v1`: self subject access
    /// reviews.
    #[endpoint { method = GET, path = "/apis/authorization.k8s.io/v1", unpublished = true }]
    async fn get_authorization_api_resources(
        rqctx: RequestContext<Self::Context>,
    ) -> Result<Reply<APIResourceList>, ApiError>;

    /// Whether the caller may do something (`kubectl auth can-i`): the
    /// review comes back with `status.allowed`.
    #[endpoint {
        method = POST,
        path = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
        unpublished = true
    }]
    async fn create_self_subject_access_review(
        rqctx: RequestContext<Self::Context>,
        body: JsonBody<serde_json::Value>,
    ) -> Result<http::Response<dropshot::Body>, ApiError>;
}

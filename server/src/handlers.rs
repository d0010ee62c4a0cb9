//! The server's implementation of the API trait ([`MxjobApi`]).
//!
//! Every handler has the same four steps: **extract** (path, and the raw
//! query and body, which dropshot hands over unread), **authorize** (the
//! [`Gate`](crate::edge::Gate), then the caller's token and the policy —
//! before anything beyond the headers is read), then parse the query
//! ([`mxjob_api::params`]) and decode the body ([`decode`]; a replace's
//! body goes to the registry as read, which decodes it against the stored
//! object, `decode::replacement`), call the **registry**, and **respond**
//! with a [`Reply`]. Registry errors become
//! `v1 Status` bodies here, through `From<registry::Error> for ApiError`.
//! Mutating requests also leave one audit line each, whatever their
//! outcome.

use std::future::Future;
use std::time::Duration;

use dropshot::{Path, RequestContext};
use futures::stream::BoxStream;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    APIGroup, APIGroupList, APIResourceList, APIVersions, DeleteOptions,
};
use k8s_openapi::apimachinery::pkg::version::Info;
use mxjob_api::api::MxjobApi;
use mxjob_api::error::{ApiError, FieldError, Status};
use mxjob_api::model::{MXJob, MXJobList, WatchEvent, WatchEventType};
use mxjob_api::params::{
    DeleteCollectionQuery, DeleteQuery, ListQuery, LogQuery, MXJobPatch, NamespacePath, ObjectPath,
    PatchQuery, QueryBool, ReadQuery, WriteKind, WriteOptions, WriteQuery,
};
use mxjob_api::wire::{
    stream_bytes, Created201, JsonBody, ListResponse, OptionalJsonBody, QueryString, Reply,
    TextResponse, WatchResponse, WATCH_CONTENT_TYPE,
};
use mxjob_api::{discovery, openapi, openapi_v2, openapi_v3};
use slog::info;

use crate::auth::{User, Verb, WatchSlot, NAMESPACES};
use crate::controller::logs::{self, LogError};
use crate::decode;
use crate::protobuf;
use crate::registry::{self, ListParams, Part, Selection, WatchParams, Watched, Written};
use crate::selectors::{FieldSelector, LabelSelector};
use crate::server::ServerState;
use crate::table;

/// The resource names authorization knows.
const MXJOBS: &str = "mxjobs";
const MXJOBS_STATUS: &str = "mxjobs/status";

/// The default and the longest duration of a watch.
const WATCH_TIMEOUT: Duration = Duration::from_secs(1800);

/// The server's implementation of the API trait.
pub enum MxjobServer {}

impl MxjobApi for MxjobServer {
    type Context = ServerState;

    async fn create_mxjob(
        rqctx: RequestContext<ServerState>,
        path: Path<NamespacePath>,
        query: QueryString<WriteQuery>,
        body: JsonBody<MXJob>,
    ) -> Result<Reply<MXJob, Created201>, ApiError> {
        let NamespacePath { namespace } = path.into_inner();
        let context = rqctx.context();
        let agent = user_agent(&rqctx);
        let mut pretty = false;
        let pretty_out = &mut pretty;
        let ns = namespace.as_str();
        let written = mutate(&rqctx, Verb::Create, MXJOBS, ns, None, move || async move {
            let query = query.parse()?;
            *pretty_out = query.pretty();
            let mut options = query.options(WriteKind::Create)?;
            default_manager(&mut options, agent);
            let media_type = body.media_type().map(str::to_string);
            let bytes = body.read(&context.body_limits).await?;
            let job = decode::object(&bytes, media_type.as_deref(), &options.field_validation)?;
            Ok(context.registry.create(ns, job, &options).await?)
        })
        .await?;
        object_reply(written.object, pretty, written.warnings)
    }

    async fn read_mxjob(
        rqctx: RequestContext<ServerState>,
        path: Path<ObjectPath>,
        query: QueryString<ReadQuery>,
    ) -> Result<Reply<MXJob>, ApiError> {
        let ObjectPath { namespace, name } = path.into_inner();
        authorize(&rqctx, Verb::Get, MXJOBS, &namespace, Some(&name))?;
        let pretty = query.parse()?.pretty();
        let object = rqctx.context().registry.get(&namespace, &name).await?;
        match table::requested(rqctx.request.headers()) {
            Some(version) => Ok(Reply::other(
                table::for_object(object.job(), version),
                pretty,
            )),
            None => object_reply(object, pretty, Vec::new()),
        }
    }

    async fn list_mxjobs(
        rqctx: RequestContext<ServerState>,
        path: Path<NamespacePath>,
        query: QueryString<ListQuery>,
    ) -> Result<ListResponse, ApiError> {
        let NamespacePath { namespace } = path.into_inner();
        list(&rqctx, Some(&namespace), &query).await
    }

    async fn watch_mxjobs(
        rqctx: RequestContext<ServerState>,
        path: Path<NamespacePath>,
        query: QueryString<ListQuery>,
    ) -> Result<WatchResponse, ApiError> {
        let NamespacePath { namespace } = path.into_inner();
        Ok(WatchResponse(
            watch(&rqctx, Some(&namespace), &query, WATCH_CONTENT_TYPE).await?,
        ))
    }

    async fn list_mxjobs_for_all_namespaces(
        rqctx: RequestContext<ServerState>,
        query: QueryString<ListQuery>,
    ) -> Result<ListResponse, ApiError> {
        list(&rqctx, None, &query).await
    }

    async fn watch_mxjobs_for_all_namespaces(
        rqctx: RequestContext<ServerState>,
        query: QueryString<ListQuery>,
    ) -> Result<WatchResponse, ApiError> {
        Ok(WatchResponse(
            watch(&rqctx, None, &query, WATCH_CONTENT_TYPE).await?,
        ))
    }

    async fn replace_mxjob(
        rqctx: RequestContext<ServerState>,
        path: Path<ObjectPath>,
        query: QueryString<WriteQuery>,
        body: JsonBody<MXJob>,
    ) -> Result<Reply<MXJob>, ApiError> {
        replace(rqctx, path, query, body, Part::Object).await
    }

    async fn patch_mxjob(
        rqctx: RequestContext<ServerState>,
        path: Path<ObjectPath>,
        query: QueryString<PatchQuery>,
        body: JsonBody<MXJobPatch>,
    ) -> Result<Reply<MXJob>, ApiError> {
        patch(rqctx, path, query, body, Part::Object).await
    }

    async fn delete_mxjob(
        rqctx: RequestContext<ServerState>,
        path: Path<ObjectPath>,
        query: QueryString<DeleteQuery>,
        body: OptionalJsonBody<DeleteOptions>,
    ) -> Result<Reply<Status>, ApiError> {
        let ObjectPath { namespace, name } = path.into_inner();
        let context = rqctx.context();
        let mut pretty = false;
        let pretty_out = &mut pretty;
        let (ns, object) = (namespace.as_str(), name.as_str());
        let status = mutate(
            &rqctx,
            Verb::Delete,
            MXJOBS,
            ns,
            Some(object),
            move || async move {
                let query = query.parse()?;
                *pretty_out = query.pretty();
                let options = delete_options(context, &query, body).await?;
                Ok(context.registry.delete(ns, object, &options).await?)
            },
        )
        .await?;
        Ok(Reply::new(status, pretty, Vec::new()))
    }

    async fn delete_mxjob_collection(
        rqctx: RequestContext<ServerState>,
        path: Path<NamespacePath>,
        query: QueryString<DeleteCollectionQuery>,
        body: OptionalJsonBody<DeleteOptions>,
    ) -> Result<Reply<MXJobList>, ApiError> {
        let NamespacePath { namespace } = path.into_inner();
        let context = rqctx.context();
        let mut pretty = false;
        let pretty_out = &mut pretty;
        let ns = namespace.as_str();
        let list = mutate(
            &rqctx,
            Verb::DeleteCollection,
            MXJOBS,
            ns,
            None,
            move || async move {
                let query = query.parse()?;
                let delete = query.delete_query();
                *pretty_out = delete.pretty();
                let options = delete_options(context, &delete, body).await?;
                let params = ListParams {
                    selection: selection(
                        query.label_selector.as_deref(),
                        query.field_selector.as_deref(),
                    )?,
                    ..Default::default()
                };
                Ok(context
                    .registry
                    .delete_collection(ns, &params, &options)
                    .await?)
            },
        )
        .await?;
        Ok(Reply::new(list, pretty, Vec::new()))
    }

    async fn read_mxjob_status(
        rqctx: RequestContext<ServerState>,
        path: Path<ObjectPath>,
        query: QueryString<ReadQuery>,
    ) -> Result<Reply<MXJob>, ApiError> {
        let ObjectPath { namespace, name } = path.into_inner();
        authorize(&rqctx, Verb::Get, MXJOBS_STATUS, &namespace, Some(&name))?;
        let pretty = query.parse()?.pretty();
        let object = rqctx.context().registry.get(&namespace, &name).await?;
        object_reply(object, pretty, Vec::new())
    }

    async fn replace_mxjob_status(
        rqctx: RequestContext<ServerState>,
        path: Path<ObjectPath>,
        query: QueryString<WriteQuery>,
        body: JsonBody<MXJob>,
    ) -> Result<Reply<MXJob>, ApiError> {
        replace(rqctx, path, query, body, Part::Status).await
    }

    async fn patch_mxjob_status(
        rqctx: RequestContext<ServerState>,
        path: Path<ObjectPath>,
        query: QueryString<PatchQuery>,
        body: JsonBody<MXJobPatch>,
    ) -> Result<Reply<MXJob>, ApiError> {
        patch(rqctx, path, query, body, Part::Status).await
    }

    async fn read_mxjob_log(
        rqctx: RequestContext<ServerState>,
        path: Path<ObjectPath>,
        query: QueryString<LogQuery>,
    ) -> Result<TextResponse, ApiError> {
        let ObjectPath { namespace, name } = path.into_inner();
        authorize(&rqctx, Verb::Get, MXJOBS, &namespace, Some(&name))?;
        let query = query.parse()?;
        let context = rqctx.context();
        let object = context.registry.get(&namespace, &name).await?;
        let log = logs::open(
            &context.replica_logs,
            object.job_without_managed_fields(),
            &query.replica_type,
            query.index,
        )
        .await
        .map_err(|e| match e {
            LogError::BadReplicaType(message) | LogError::NotReady(message) => {
                ApiError::bad_request(message)
            }
            LogError::Missing(message) => ApiError::not_found_message(message),
            LogError::Unavailable(message) => ApiError::internal(message),
        })?;
        let response = http::Response::builder()
            .status(http::StatusCode::OK)
            .header(http::header::CONTENT_TYPE, logs::LOG_CONTENT_TYPE)
            .body(log.into_body())
            .map_err(ApiError::internal)?;
        Ok(TextResponse(response))
    }

    async fn get_openapi_document(
        rqctx: RequestContext<ServerState>,
    ) -> Result<http::Response<dropshot::Body>, ApiError> {
        admit(&rqctx)?;
        let document = openapi::COMMITTED_DOCUMENT.as_bytes().to_vec();
        raw_response("application/json", document)
    }

    async fn get_openapi_v2(
        rqctx: RequestContext<ServerState>,
    ) -> Result<http::Response<dropshot::Body>, ApiError> {
        admit(&rqctx)?;
        let accept = rqctx.request.headers().get(http::header::ACCEPT);
        let wants_protobuf = accept
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains(openapi_v2::PROTOBUF_MEDIA_TYPE));
        if wants_protobuf {
            let bytes = openapi_v2::document_protobuf().map_err(ApiError::internal)?;
            // What the Kubernetes API server answers too: Go's media type
            // parser rejects the `@` of the type kubectl asks for.
            raw_response(openapi_v2::PROTOBUF_CONTENT_TYPE, bytes)
        } else {
            let document = openapi_v2::document_json().map_err(ApiError::internal)?;
            let bytes = serde_json::to_vec(&document).map_err(ApiError::internal)?;
            raw_response("application/json", bytes)
        }
    }

    async fn get_openapi_v3_index(
        rqctx: RequestContext<ServerState>,
    ) -> Result<http::Response<dropshot::Body>, ApiError> {
        admit(&rqctx)?;
        let index = openapi_v3::index().map_err(ApiError::internal)?;
        json_response(http::StatusCode::OK, &index, false)
    }

    async fn get_openapi_v3_group(
        rqctx: RequestContext<ServerState>,
    ) -> Result<http::Response<dropshot::Body>, ApiError> {
        admit(&rqctx)?;
        let document = openapi_v3::group_document().map_err(ApiError::internal)?;
        raw_response("application/json", document.to_vec())
    }

    async fn create_namespace(
        rqctx: RequestContext<ServerState>,
        query: QueryString<WriteQuery>,
        body: JsonBody<serde_json::Value>,
    ) -> Result<http::Response<dropshot::Body>, ApiError> {
        let context = rqctx.context();
        let mut pretty = false;
        let pretty_out = &mut pretty;
        let created = mutate(
            &rqctx,
            Verb::Create,
            NAMESPACES,
            "",
            None,
            move || async move {
                let query = query.parse()?;
                *pretty_out = query.pretty();
                let options = query.options(WriteKind::Create)?;
                let value =
                    builtin_body(body, &context.body_limits, protobuf::Kind::Namespace).await?;
                Ok(context.registry.create_namespace(value, &options).await?)
            },
        )
        .await?;
        json_response(http::StatusCode::CREATED, &created, pretty)
    }

    async fn list_namespaces(
        rqctx: RequestContext<ServerState>,
        query: QueryString<ReadQuery>,
    ) -> Result<http::Response<dropshot::Body>, ApiError> {
        authorize(&rqctx, Verb::List, NAMESPACES, "", None)?;
        let pretty = query.parse()?.pretty();
        let list = rqctx.context().registry.list_namespaces().await?;
        match table::requested(rqctx.request.headers()) {
            Some(version) => json_response(
                http::StatusCode::OK,
                &table::for_namespaces(&list.items, version),
                pretty,
            ),
            None => json_response(http::StatusCode::OK, &list, pretty),
        }
    }

    async fn get_namespace(
        rqctx: RequestContext<ServerState>,
        path: Path<NamespacePath>,
        query: QueryString<ReadQuery>,
    ) -> Result<http::Response<dropshot::Body>, ApiError> {
        let NamespacePath { namespace } = path.into_inner();
        // For namespaces, the namespace authorization sees is the one named.
        authorize(&rqctx, Verb::Get, NAMESPACES, &namespace, Some(&namespace))?;
        let pretty = query.parse()?.pretty();
        let found = rqctx.context().registry.get_namespace(&namespace).await?;
        match table::requested(rqctx.request.headers()) {
            Some(version) => json_response(
                http::StatusCode::OK,
                &table::for_namespaces(std::slice::from_ref(&found), version),
                pretty,
            ),
            None => json_response(http::StatusCode::OK, &found, pretty),
        }
    }

    async fn delete_namespace(
        rqctx: RequestContext<ServerState>,
        path: Path<NamespacePath>,
        query: QueryString<DeleteQuery>,
    ) -> Result<http::Response<dropshot::Body>, ApiError> {
        let NamespacePath { namespace } = path.into_inner();
        let context = rqctx.context();
        let mut pretty = false;
        let pretty_out = &mut pretty;
        let ns = namespace.as_str();
        let deleted = mutate(
            &rqctx,
            Verb::Delete,
            NAMESPACES,
            ns,
            Some(ns),
            move || async move {
                let query = query.parse()?;
                *pretty_out = query.pretty();
                let options = query.options(&[], None)?;
                Ok(context.registry.delete_namespace(ns, &options).await?)
            },
        )
        .await?;
        json_response(http::StatusCode::OK, &deleted, pretty)
    }

    async fn get_authorization_api_group(
        rqctx: RequestContext<ServerState>,
    ) -> Result<Reply<APIGroup>, ApiError> {
        admit(&rqctx)?;
        Ok(Reply::new(
            discovery::authorization_group(),
            false,
            Vec::new(),
        ))
    }

    async fn get_authorization_api_resources(
        rqctx: RequestContext<ServerState>,
    ) -> Result<Reply<APIResourceList>, ApiError> {
        admit(&rqctx)?;
        Ok(Reply::new(
            discovery::authorization_resources(),
            false,
            Vec::new(),
        ))
    }

    async fn create_self_subject_access_review(
        rqctx: RequestContext<ServerState>,
        body: JsonBody<serde_json::Value>,
    ) -> Result<http::Response<dropshot::Body>, ApiError> {
        admit(&rqctx)?;
        let context = rqctx.context();
        let user = context.auth.authenticate(rqctx.request.headers())?;
        let mut review = builtin_body(
            body,
            &context.body_limits,
            protobuf::Kind::SelfSubjectAccessReview,
        )
        .await?;
        let allowed = access_review(&context.auth, &user, &review);
        review["status"] = serde_json::json!({ "allowed": allowed });
        json_response(http::StatusCode::CREATED, &review, false)
    }

    async fn get_docs(
        rqctx: RequestContext<ServerState>,
    ) -> Result<http::Response<dropshot::Body>, ApiError> {
        admit(&rqctx)?;
        let page = match &rqctx.context().docs_file {
            Some(path) => tokio::fs::read(path).await.map_err(|e| {
                ApiError::not_found_message(format!(
                    "the --docs-file page {} cannot be read: {e}",
                    path.display()
                ))
            })?,
            None => mxjob_api::docs::PAGE.to_vec(),
        };
        raw_response("text/html; charset=utf-8", page)
    }

    async fn get_metrics(
        rqctx: RequestContext<ServerState>,
    ) -> Result<http::Response<dropshot::Body>, ApiError> {
        authorize_path(&rqctx, "/metrics")?;
        let accept = rqctx.request.headers().get(http::header::ACCEPT);
        let openmetrics = accept
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("application/openmetrics-text"));
        let text = rqctx
            .context()
            .metrics
            .encode(openmetrics)
            .map_err(ApiError::internal)?;
        let content_type = if openmetrics {
            crate::metrics::OPENMETRICS_CONTENT_TYPE
        } else {
            crate::metrics::TEXT_CONTENT_TYPE
        };
        raw_response(content_type, text.into_bytes())
    }

    async fn get_livez(
        rqctx: RequestContext<ServerState>,
    ) -> Result<http::Response<dropshot::Body>, ApiError> {
        admit(&rqctx)?;
        crate::health::livez(&rqctx)
    }

    async fn get_readyz(
        rqctx: RequestContext<ServerState>,
    ) -> Result<http::Response<dropshot::Body>, ApiError> {
        admit(&rqctx)?;
        crate::health::readyz(&rqctx).await
    }

    async fn get_backup(
        rqctx: RequestContext<ServerState>,
    ) -> Result<http::Response<dropshot::Body>, ApiError> {
        let user = authorize_path(&rqctx, "/backup")?;
        crate::backup::respond(&rqctx, &user).await
    }

    async fn get_core_api_versions(
        rqctx: RequestContext<ServerState>,
    ) -> Result<Reply<APIVersions>, ApiError> {
        admit(&rqctx)?;
        Ok(Reply::new(discovery::core_versions(), false, Vec::new()))
    }

    async fn get_core_api_resources(
        rqctx: RequestContext<ServerState>,
    ) -> Result<Reply<APIResourceList>, ApiError> {
        admit(&rqctx)?;
        Ok(Reply::new(discovery::core_resources(), false, Vec::new()))
    }

    async fn get_api_groups(
        rqctx: RequestContext<ServerState>,
    ) -> Result<Reply<APIGroupList>, ApiError> {
        admit(&rqctx)?;
        Ok(Reply::new(discovery::groups(), false, Vec::new()))
    }

    async fn get_kubeflow_api_group(
        rqctx: RequestContext<ServerState>,
    ) -> Result<Reply<APIGroup>, ApiError> {
        admit(&rqctx)?;
        Ok(Reply::new(discovery::group(), false, Vec::new()))
    }

    async fn get_kubeflow_api_resources(
        rqctx: RequestContext<ServerState>,
    ) -> Result<Reply<APIResourceList>, ApiError> {
        admit(&rqctx)?;
        Ok(Reply::new(discovery::resources(), false, Vec::new()))
    }

    async fn get_version(rqctx: RequestContext<ServerState>) -> Result<Reply<Info>, ApiError> {
        admit(&rqctx)?;
        Ok(Reply::new(discovery::version(), false, Vec::new()))
    }
}

/// The checks every request passes first ([`Gate`](crate::edge::Gate)).
fn admit(rqctx: &RequestContext<ServerState>) -> Result<(), ApiError> {
    let request = &rqctx.request;
    rqctx.context().gate.check(request.uri(), request.headers())
}

/// Admits and authenticates the caller and checks that it may `verb` the
/// resource — before anything of the request beyond its headers is read.
fn authorize(
    rqctx: &RequestContext<ServerState>,
    verb: Verb,
    resource: &str,
    namespace: &str,
    name: Option<&str>,
) -> Result<User, ApiError> {
    admit(rqctx)?;
    let auth = &rqctx.context().auth;
    let user = auth.authenticate(rqctx.request.headers())?;
    auth.authorize(&user, verb, resource, namespace, name)?;
    Ok(user)
}

/// Admits and authenticates the caller and checks that it may `get`
/// `path`, a URL outside the resources (`nonResourceURLs` in the policy).
fn authorize_path(rqctx: &RequestContext<ServerState>, path: &str) -> Result<User, ApiError> {
    admit(rqctx)?;
    let auth = &rqctx.context().auth;
    let user = auth.authenticate(rqctx.request.headers())?;
    auth.authorize_path(&user, "get", path)?;
    Ok(user)
}

/// What an audit line says about a successful outcome.
trait Audited {
    /// The object's name and its resourceVersion after the change.
    fn audit_fields(&self) -> (Option<String>, Option<String>);

    /// The success code answered.
    fn code(&self) -> u16 {
        200
    }
}

impl Audited for Written {
    fn audit_fields(&self) -> (Option<String>, Option<String>) {
        let metadata = &self.object.job_without_managed_fields().metadata;
        (metadata.name.clone(), metadata.resource_version.clone())
    }

    fn code(&self) -> u16 {
        if self.created {
            201
        } else {
            200
        }
    }
}

impl Audited for Status {
    fn audit_fields(&self) -> (Option<String>, Option<String>) {
        (self.details.as_ref().and_then(|d| d.name.clone()), None)
    }
}

impl Audited for Namespace {
    fn audit_fields(&self) -> (Option<String>, Option<String>) {
        let metadata = &self.metadata;
        (metadata.name.clone(), metadata.resource_version.clone())
    }

    fn code(&self) -> u16 {
        // Created once it has a resourceVersion and no deletion timestamp.
        if self.metadata.deletion_timestamp.is_none() {
            201
        } else {
            200
        }
    }
}

impl Audited for MXJobList {
    fn audit_fields(&self) -> (Option<String>, Option<String>) {
        (None, self.metadata.resource_version.clone())
    }
}

/// Authorizes and runs a mutating request, then writes its audit line:
/// time (from the logger), user, verb, namespace, name, outcome code and
/// the resourceVersion after the change.
async fn mutate<T, F, Fut>(
    rqctx: &RequestContext<ServerState>,
    verb: Verb,
    resource: &str,
    namespace: &str,
    name: Option<&str>,
    run: F,
) -> Result<T, ApiError>
where
    T: Audited,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<T, ApiError>>,
{
    let auth = &rqctx.context().auth;
    let user = admit(rqctx).and_then(|()| auth.authenticate(rqctx.request.headers()));
    let result = match &user {
        Ok(user) => match auth.authorize(user, verb, resource, namespace, name) {
            Ok(()) => run().await,
            Err(denied) => Err(denied),
        },
        Err(error) => Err(error.clone()),
    };
    let (object, version, code) = match &result {
        Ok(outcome) => {
            let (object, version) = outcome.audit_fields();
            (object.or(name.map(String::from)), version, outcome.code())
        }
        Err(error) => (name.map(String::from), None, error.code()),
    };
    let user = user.map(|u| u.name).unwrap_or_default();
    info!(rqctx.context().audit, "audit";
        "user" => user,
        "verb" => verb.as_str(),
        "resource" => resource,
        "namespace" => namespace,
        "name" => object.unwrap_or_default(),
        "code" => code,
        "resourceVersion" => version.unwrap_or_default(),
        "requestId" => &rqctx.request_id,
    );
    result
}

/// Whether a list request is a watch: the verb authorization checks, and
/// so decided before the query is parsed, leniently, as the Kubernetes API
/// server decides it (any first `watch` value but `false` or `0`).
fn is_watch(query: &QueryString<ListQuery>) -> bool {
    query
        .values("watch")
        .first()
        .is_some_and(|v| !v.eq_ignore_ascii_case("false") && v != "0")
}

/// The options of a delete, from its query and its optional body.
async fn delete_options(
    context: &ServerState,
    query: &DeleteQuery,
    body: OptionalJsonBody<DeleteOptions>,
) -> Result<mxjob_api::params::DeleteOptions, ApiError> {
    let OptionalJsonBody(body) = body;
    let media_type = body.media_type().map(str::to_string);
    let bytes = body.read(&context.body_limits).await?;
    query.options(&bytes, media_type.as_deref())
}

/// The manager a write without `fieldManager` is recorded as: the
/// product of its `User-Agent`, as the Kubernetes API server names it
/// (`kubectl/v1.37.1 (linux/amd64)` is `kubectl`).
fn default_manager(options: &mut WriteOptions, agent: &str) {
    if options.field_manager.is_none() {
        options.field_manager = Some(crate::apply::manager_from_user_agent(agent));
    }
}

/// The request's `User-Agent` (empty when it has none).
fn user_agent(rqctx: &RequestContext<ServerState>) -> &str {
    rqctx
        .request
        .headers()
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

/// What Kubernetes' `ValidatePatchOptions` refuses: an apply needs a
/// `fieldManager`, and only an apply may `force`.
fn check_patch_options(options: &WriteOptions, force: bool, apply: bool) -> Result<(), ApiError> {
    let error = match (apply, force, options.field_manager.is_some()) {
        (true, _, false) => FieldError::required("fieldManager", "is required for apply patch"),
        (false, true, _) => {
            FieldError::forbidden("force", "may not be specified for non-apply patch")
        }
        _ => return Ok(()),
    };
    Err(ApiError::invalid_options("PatchOptions", &[error]))
}

/// The resource authorization checks for `part`.
fn resource_of(part: Part) -> &'static str {
    match part {
        Part::Object => MXJOBS,
        Part::Status => MXJOBS_STATUS,
    }
}

/// Replace of the object or of its status.
async fn replace(
    rqctx: RequestContext<ServerState>,
    path: Path<ObjectPath>,
    query: QueryString<WriteQuery>,
    body: JsonBody<MXJob>,
    part: Part,
) -> Result<Reply<MXJob>, ApiError> {
    let ObjectPath { namespace, name } = path.into_inner();
    let context = rqctx.context();
    let agent = user_agent(&rqctx);
    let mut pretty = false;
    let pretty_out = &mut pretty;
    let (ns, object) = (namespace.as_str(), name.as_str());
    let written = mutate(
        &rqctx,
        Verb::Update,
        resource_of(part),
        ns,
        Some(object),
        move || async move {
            let query = query.parse()?;
            *pretty_out = query.pretty();
            let mut options = query.options(WriteKind::Update)?;
            default_manager(&mut options, agent);
            let media_type = body.media_type().map(str::to_string);
            let bytes = body.read(&context.body_limits).await?;
            let body = decode::Body {
                bytes: &bytes,
                media_type: media_type.as_deref(),
            };
            Ok(context
                .registry
                .replace(ns, object, body, &options, part)
                .await?)
        },
    )
    .await?;
    object_reply(written.object, pretty, written.warnings)
}

/// Patch of the object or of its status.
async fn patch(
    rqctx: RequestContext<ServerState>,
    path: Path<ObjectPath>,
    query: QueryString<PatchQuery>,
    body: JsonBody<MXJobPatch>,
    part: Part,
) -> Result<Reply<MXJob>, ApiError> {
    let ObjectPath { namespace, name } = path.into_inner();
    let context = rqctx.context();
    let agent = user_agent(&rqctx);
    let mut pretty = false;
    let pretty_out = &mut pretty;
    let (ns, object) = (namespace.as_str(), name.as_str());
    let written = mutate(
        &rqctx,
        Verb::Patch,
        resource_of(part),
        ns,
        Some(object),
        move || async move {
            let query = query.parse()?;
            *pretty_out = query.pretty();
            let (mut options, force) = query.options()?;
            let media_type = body.media_type().map(str::to_string);
            let apply = media_type.as_deref() == Some(decode::APPLY_PATCH);
            check_patch_options(&options, force, apply)?;
            default_manager(&mut options, agent);
            let bytes = body.read(&context.body_limits).await?;
            let mut request = decode::patch(&bytes, media_type.as_deref())?;
            request.force = force;
            Ok(context
                .registry
                .patch(ns, object, &request, &options, part)
                .await?)
        },
    )
    .await?;
    let reply = object_reply(written.object, pretty, written.warnings)?;
    Ok(if written.created {
        reply.created()
    } else {
        reply
    })
}

/// A list (or, with `watch=true`, a watch) of one namespace's MXJobs, or
/// of every namespace's (`None`: authorized at the cluster scope, so only a
/// caller granted every namespace may ask).
async fn list(
    rqctx: &RequestContext<ServerState>,
    namespace: Option<&str>,
    query: &QueryString<ListQuery>,
) -> Result<ListResponse, ApiError> {
    if is_watch(query) {
        let response = watch(rqctx, namespace, query, "application/json").await?;
        return Ok(ListResponse::Watch(response));
    }
    authorize(
        rqctx,
        Verb::List,
        MXJOBS,
        namespace.unwrap_or_default(),
        None,
    )?;
    let query = query.parse()?;
    query.check_list()?;
    let listing = rqctx
        .context()
        .registry
        .list(namespace, &list_params(&query)?)
        .await?;
    let pretty = query.pretty();
    Ok(match table::requested(rqctx.request.headers()) {
        Some(version) => ListResponse::List(Reply::other(
            table::for_list(&listing.to_list()?, version),
            pretty,
        )),
        None if pretty => ListResponse::List(Reply::new(listing.to_list()?, pretty, Vec::new())),
        // Written as it is made: a list of everything is never held whole.
        None => {
            let log = rqctx.log.clone();
            let chunks = listing.json_chunks().map_while(move |chunk| match chunk {
                Ok(chunk) => Some(chunk),
                // Headers are sent: the answer can only be cut short.
                Err(e) => {
                    slog::error!(log, "writing a list"; "error" => %e);
                    None
                }
            });
            ListResponse::Stream(stream_bytes(
                futures::stream::iter(chunks),
                dropshot::CONTENT_TYPE_JSON,
            ))
        }
    })
}

/// The answer of a write or read of one object: its shared compact JSON,
/// or, for `pretty`, the object encoded with indentation.
fn object_reply<C>(
    object: std::sync::Arc<registry::Object>,
    pretty: bool,
    warnings: Vec<String>,
) -> Result<Reply<MXJob, C>, ApiError> {
    Ok(if pretty {
        Reply::new(object.into_job(), true, warnings)
    } else {
        Reply::encoded(object.json()?, warnings)
    })
}

/// A watch: authorized, counted against the user's watch limit while it
/// runs, and ended when the server stops.
///
/// Its options are checked and defaulted as kube-apiserver does it, by the
/// `watch` parameter rather than by the path: with `watch=true` they are a
/// watch's (a watch from no resourceVersion becomes a streaming list, see
/// [`ListQuery::default_watch_options`]); on a deprecated `/watch/` path
/// without it they are checked as a list's, so that there, for instance,
/// `sendInitialEvents` is refused as it is on a list.
async fn watch(
    rqctx: &RequestContext<ServerState>,
    namespace: Option<&str>,
    query: &QueryString<ListQuery>,
    content_type: &'static str,
) -> Result<http::Response<dropshot::Body>, ApiError> {
    let user = authorize(
        rqctx,
        Verb::Watch,
        MXJOBS,
        namespace.unwrap_or_default(),
        None,
    )?;
    let watch_requested = is_watch(query);
    let mut query = query.parse()?;
    if watch_requested {
        query.default_watch_options();
        query.check_watch()?;
    } else {
        query.check_list()?;
    }
    let context = rqctx.context();
    let slot = context.auth.start_watch(&user)?;
    let events = context
        .registry
        .watch(namespace, watch_params(&query)?)
        .await?;
    let table = table::requested(rqctx.request.headers());
    Ok(watch_stream(
        events,
        content_type,
        table,
        context.stopping.clone(),
        slot,
    ))
}

fn raw_response(
    content_type: &str,
    body: Vec<u8>,
) -> Result<http::Response<dropshot::Body>, ApiError> {
    http::Response::builder()
        .status(http::StatusCode::OK)
        .header(http::header::CONTENT_TYPE, content_type)
        .body(dropshot::Body::from(body))
        .map_err(ApiError::internal)
}

/// `labelSelector` and `fieldSelector`; a malformed one is 400.
fn selection(labels: Option<&str>, fields: Option<&str>) -> Result<Selection, ApiError> {
    let labels = LabelSelector::parse(labels.unwrap_or_default())
        .map_err(|e| ApiError::bad_request(format!("unable to parse labelSelector: {e}")))?;
    let fields = FieldSelector::parse(fields.unwrap_or_default())
        .map_err(|e| ApiError::bad_request(format!("unable to parse fieldSelector: {e}")))?;
    Ok(Selection { labels, fields })
}

fn list_params(query: &ListQuery) -> Result<ListParams, ApiError> {
    Ok(ListParams {
        selection: selection(
            query.label_selector.as_deref(),
            query.field_selector.as_deref(),
        )?,
        limit: query
            .limit
            .and_then(|l| usize::try_from(l).ok())
            .filter(|l| *l > 0),
        continue_token: query.continue_.clone(),
        resource_version: query.resource_version.clone(),
        version_match: query.resource_version_match.clone(),
    })
}

fn watch_params(query: &ListQuery) -> Result<WatchParams, ApiError> {
    let timeout = match query.timeout_seconds {
        Some(s) if s < 0 => {
            return Err(ApiError::bad_request(format!(
                "invalid timeoutSeconds {s}: must not be negative"
            )))
        }
        Some(s) if s > 0 => Duration::from_secs(s.unsigned_abs()).min(WATCH_TIMEOUT),
        _ => WATCH_TIMEOUT,
    };
    Ok(WatchParams {
        selection: selection(
            query.label_selector.as_deref(),
            query.field_selector.as_deref(),
        )?,
        resource_version: query.resource_version.clone(),
        initial_events: query.send_initial_events.map(|b| b.0),
        bookmarks: QueryBool::of(query.allow_watch_bookmarks),
        timeout,
    })
}

/// The ERROR event that ends a watch: the error's `Status` as its object,
/// as the Kubernetes API server sends it.
fn error_event(error: registry::Error) -> WatchEvent {
    let object = match serde_json::to_value(ApiError::from(error)) {
        Ok(serde_json::Value::Object(object)) => object,
        _ => serde_json::Map::new(),
    };
    WatchEvent {
        type_: WatchEventType::ERROR,
        object,
    }
}

/// The HTTP stream of a watch; objects become one-row tables for kubectl.
/// An object event is the line shared by every watcher of that change
/// ([`registry::Object::event_line`]); only tables are made per watcher.
fn watch_stream(
    events: BoxStream<'static, Result<Watched, registry::Error>>,
    content_type: &'static str,
    table: Option<&'static str>,
    mut stopping: tokio::sync::watch::Receiver<bool>,
    slot: WatchSlot,
) -> http::Response<dropshot::Body> {
    let lines = events
        .take_until(async move {
            let _ = stopping.wait_for(|stopping| *stopping).await;
        })
        // The slot is released when the stream is dropped.
        .map(move |event| {
            let _held = &slot;
            watch_line(event, table)
        })
        // A line that cannot be encoded ends the stream.
        .take_while(|line| std::future::ready(line.is_some()))
        .filter_map(std::future::ready);
    stream_bytes(lines, content_type)
}

/// One event of a watch in its wire form.
fn watch_line(
    event: Result<Watched, registry::Error>,
    table: Option<&'static str>,
) -> Option<bytes::Bytes> {
    let event = match event {
        Ok(Watched::Object { type_, object }) => match table {
            None => return object.event_line(type_).ok(),
            Some(version) => match table::for_object(object.job(), version) {
                serde_json::Value::Object(object) => WatchEvent { type_, object },
                _ => return None,
            },
        },
        Ok(Watched::Event(event)) => event,
        Err(error) => error_event(error),
    };
    mxjob_api::wire::to_json(&event, false)
        .ok()
        .map(bytes::Bytes::from)
}

/// A JSON answer with `code`, compact or indented.
fn json_response<T: serde::Serialize>(
    code: http::StatusCode,
    body: &T,
    pretty: bool,
) -> Result<http::Response<dropshot::Body>, ApiError> {
    let bytes = mxjob_api::wire::to_json(body, pretty).map_err(ApiError::internal)?;
    http::Response::builder()
        .status(code)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(dropshot::Body::from(bytes))
        .map_err(ApiError::internal)
}

/// The body of a built-in kind: JSON, or the protobuf client-go sends
/// for built-in kinds (see [`protobuf`]).
async fn builtin_body(
    body: JsonBody<serde_json::Value>,
    limits: &mxjob_api::wire::BodyLimits,
    kind: protobuf::Kind,
) -> Result<serde_json::Value, ApiError> {
    let media_type = body.media_type().map(str::to_string);
    if media_type.as_deref() == Some(protobuf::MEDIA_TYPE) {
        let bytes = body.read(limits).await?;
        return protobuf::decode(&bytes, kind).map_err(|e| {
            ApiError::bad_request(format!("the request body is not a protobuf {kind:?}: {e}"))
        });
    }
    mxjob_api::params::require_json(media_type.as_deref())?;
    let bytes = body.read(limits).await?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(format!("the request body is not valid JSON: {e}")))
}

/// Whether `user` may do what a `SelfSubjectAccessReview` asks about:
/// its `spec.resourceAttributes` (verb, group, resource, subresource,
/// namespace, name) against the policy. Anything this server does not
/// serve is not allowed.
fn access_review(auth: &crate::auth::Auth, user: &User, review: &serde_json::Value) -> bool {
    let attributes = &review["spec"]["resourceAttributes"];
    let text = |key: &str| attributes[key].as_str().unwrap_or_default();
    let Some(verb) = Verb::parse(text("verb")) else {
        return false;
    };
    let resource = match (text("group"), text("resource"), text("subresource")) {
        ("kubeflow.org", MXJOBS, "") => MXJOBS,
        ("kubeflow.org", MXJOBS, "status") => MXJOBS_STATUS,
        ("", NAMESPACES, "") => NAMESPACES,
        _ => return false,
    };
    let name = Some(text("name")).filter(|n| !n.is_empty());
    auth.authorize(user, verb, resource, text("namespace"), name)
        .is_ok()
}

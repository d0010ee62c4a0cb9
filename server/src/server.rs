//! The implementation of [`MxjobApi`] and the HTTP server around it.
//!
//! Handlers stay thin: take the path, query and body apart, validate the
//! options, call the [`Registry`], and wrap the answer in a [`Reply`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use futures::stream::BoxStream;
use futures::StreamExt;

use dropshot::{
    ApiDescription, ConfigDropshot, HandlerTaskMode, HttpServer, Path, Query, RequestContext,
    ServerBuilder,
};
use slog::Logger;

use crate::api::{
    mxjob_api_mod, DeleteCollectionQuery, DeleteQuery, ListQuery, MXJobPatch, MxjobApi,
    NamespacePath, ObjectPath, QueryBool, ReadQuery, WriteQuery,
};
use crate::model::{MXJob, MXJobList, WatchEvent, WatchEventType};
use crate::registry::{
    is_pretty, DeleteOptions, ListParams, Part, Registry, Selection, WatchParams, WriteOptions,
};
use crate::status::{ApiError, Status};
use crate::wire::{
    stream_response, Created201, JsonBody, ListResponse, Reply, WatchResponse, MAX_BODY_BYTES,
    WATCH_CONTENT_TYPE,
};
use crate::{discovery, table};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    APIGroup, APIGroupList, APIResourceList, APIVersions,
};
use k8s_openapi::apimachinery::pkg::version::Info;

/// What every handler shares.
pub struct ServerState {
    pub registry: Registry,
    /// Becomes `true` when the server shuts down; open watches end then,
    /// instead of holding the shutdown up until they time out.
    pub stopping: tokio::sync::watch::Receiver<bool>,
    /// The page `/docs` serves, if one was built.
    pub docs_file: Option<PathBuf>,
}

/// How the server runs, beyond its store.
#[derive(Clone, Debug)]
pub struct Settings {
    pub listen: SocketAddr,
    /// The HTML page `/docs` serves (`cargo xtask docs` builds it).
    pub docs_file: Option<PathBuf>,
}

impl Settings {
    pub fn new(listen: SocketAddr) -> Self {
        Settings {
            listen,
            docs_file: None,
        }
    }
}

/// The server's implementation of the API trait.
pub enum MxjobServer {}

impl MxjobApi for MxjobServer {
    type Context = ServerState;

    async fn create_mxjob(
        rqctx: RequestContext<ServerState>,
        path: Path<NamespacePath>,
        query: Query<WriteQuery>,
        body: JsonBody<MXJob>,
    ) -> Result<Reply<MXJob, Created201>, ApiError> {
        let NamespacePath { namespace } = path.into_inner();
        let query = query.into_inner();
        let options = WriteOptions::parse(&query, "CreateOptions")?;
        let written = rqctx
            .context()
            .registry
            .create(
                &namespace,
                &body.bytes,
                body.media_type.as_deref(),
                &options,
            )
            .await?;
        Ok(Reply::new(
            written.object,
            is_pretty(query.pretty.as_deref()),
            written.warnings,
        ))
    }

    async fn read_mxjob(
        rqctx: RequestContext<ServerState>,
        path: Path<ObjectPath>,
        query: Query<ReadQuery>,
    ) -> Result<Reply<MXJob>, ApiError> {
        let ObjectPath { namespace, name } = path.into_inner();
        let pretty = is_pretty(query.into_inner().pretty.as_deref());
        let job = rqctx.context().registry.get(&namespace, &name).await?;
        Ok(match table::requested(rqctx.request.headers()) {
            Some(version) => Reply::other(table::for_object(&job, version), pretty),
            None => Reply::new(job, pretty, Vec::new()),
        })
    }

    async fn list_mxjobs(
        rqctx: RequestContext<ServerState>,
        path: Path<NamespacePath>,
        query: Query<ListQuery>,
    ) -> Result<ListResponse, ApiError> {
        let NamespacePath { namespace } = path.into_inner();
        let query = query.into_inner();
        let table = table::requested(rqctx.request.headers());
        let registry = &rqctx.context().registry;
        if QueryBool::of(query.watch) {
            let events = registry.watch(&namespace, watch_params(&query)?).await?;
            let stopping = rqctx.context().stopping.clone();
            let response = watch_stream(events, "application/json", table, stopping);
            return Ok(ListResponse::Watch(response));
        }
        let list = registry.list(&namespace, &list_params(&query)?).await?;
        let pretty = is_pretty(query.pretty.as_deref());
        Ok(ListResponse::List(match table {
            Some(version) => Reply::other(table::for_list(&list, version), pretty),
            None => Reply::new(list, pretty, Vec::new()),
        }))
    }

    async fn watch_mxjobs(
        rqctx: RequestContext<ServerState>,
        path: Path<NamespacePath>,
        query: Query<ListQuery>,
    ) -> Result<WatchResponse, ApiError> {
        let NamespacePath { namespace } = path.into_inner();
        let query = query.into_inner();
        let table = table::requested(rqctx.request.headers());
        let events = rqctx
            .context()
            .registry
            .watch(&namespace, watch_params(&query)?)
            .await?;
        let stopping = rqctx.context().stopping.clone();
        Ok(WatchResponse(watch_stream(
            events,
            WATCH_CONTENT_TYPE,
            table,
            stopping,
        )))
    }

    async fn replace_mxjob(
        rqctx: RequestContext<ServerState>,
        path: Path<ObjectPath>,
        query: Query<WriteQuery>,
        body: JsonBody<MXJob>,
    ) -> Result<Reply<MXJob>, ApiError> {
        let ObjectPath { namespace, name } = path.into_inner();
        let query = query.into_inner();
        let options = WriteOptions::parse(&query, "UpdateOptions")?;
        let written = rqctx
            .context()
            .registry
            .replace(
                &namespace,
                &name,
                &body.bytes,
                body.media_type.as_deref(),
                &options,
                Part::Object,
            )
            .await?;
        Ok(Reply::new(
            written.object,
            is_pretty(query.pretty.as_deref()),
            written.warnings,
        ))
    }

    async fn patch_mxjob(
        rqctx: RequestContext<ServerState>,
        path: Path<ObjectPath>,
        query: Query<WriteQuery>,
        body: JsonBody<MXJobPatch>,
    ) -> Result<Reply<MXJob>, ApiError> {
        let ObjectPath { namespace, name } = path.into_inner();
        let query = query.into_inner();
        let options = WriteOptions::parse(&query, "PatchOptions")?;
        let written = rqctx
            .context()
            .registry
            .patch(
                &namespace,
                &name,
                &body.bytes,
                body.media_type.as_deref(),
                &options,
                Part::Object,
            )
            .await?;
        Ok(Reply::new(
            written.object,
            is_pretty(query.pretty.as_deref()),
            written.warnings,
        ))
    }

    async fn delete_mxjob(
        rqctx: RequestContext<ServerState>,
        path: Path<ObjectPath>,
        query: Query<DeleteQuery>,
    ) -> Result<Reply<Status>, ApiError> {
        let ObjectPath { namespace, name } = path.into_inner();
        let query = query.into_inner();
        let options = DeleteOptions::try_from(&query)?;
        let status = rqctx
            .context()
            .registry
            .delete(&namespace, &name, &options)
            .await?;
        Ok(Reply::new(
            status,
            is_pretty(query.pretty.as_deref()),
            Vec::new(),
        ))
    }

    async fn delete_mxjob_collection(
        rqctx: RequestContext<ServerState>,
        path: Path<NamespacePath>,
        query: Query<DeleteCollectionQuery>,
    ) -> Result<Reply<MXJobList>, ApiError> {
        let NamespacePath { namespace } = path.into_inner();
        let query = query.into_inner();
        let options = DeleteOptions::try_from(&query.delete_query())?;
        let params = ListParams {
            selection: Selection::parse(
                query.label_selector.as_deref(),
                query.field_selector.as_deref(),
            )?,
            ..Default::default()
        };
        let list = rqctx
            .context()
            .registry
            .delete_collection(&namespace, &params, &options)
            .await?;
        Ok(Reply::new(
            list,
            is_pretty(query.pretty.as_deref()),
            Vec::new(),
        ))
    }

    async fn read_mxjob_status(
        rqctx: RequestContext<ServerState>,
        path: Path<ObjectPath>,
        query: Query<ReadQuery>,
    ) -> Result<Reply<MXJob>, ApiError> {
        let ObjectPath { namespace, name } = path.into_inner();
        let job = rqctx.context().registry.get(&namespace, &name).await?;
        Ok(Reply::new(
            job,
            is_pretty(query.into_inner().pretty.as_deref()),
            Vec::new(),
        ))
    }

    async fn replace_mxjob_status(
        rqctx: RequestContext<ServerState>,
        path: Path<ObjectPath>,
        query: Query<WriteQuery>,
        body: JsonBody<MXJob>,
    ) -> Result<Reply<MXJob>, ApiError> {
        let ObjectPath { namespace, name } = path.into_inner();
        let query = query.into_inner();
        let options = WriteOptions::parse(&query, "UpdateOptions")?;
        let media_type = body.media_type.as_deref();
        let registry = &rqctx.context().registry;
        let written = registry
            .replace(
                &namespace,
                &name,
                &body.bytes,
                media_type,
                &options,
                Part::Status,
            )
            .await?;
        Ok(Reply::new(
            written.object,
            is_pretty(query.pretty.as_deref()),
            written.warnings,
        ))
    }

    async fn patch_mxjob_status(
        rqctx: RequestContext<ServerState>,
        path: Path<ObjectPath>,
        query: Query<WriteQuery>,
        body: JsonBody<MXJobPatch>,
    ) -> Result<Reply<MXJob>, ApiError> {
        let ObjectPath { namespace, name } = path.into_inner();
        let query = query.into_inner();
        let options = WriteOptions::parse(&query, "PatchOptions")?;
        let media_type = body.media_type.as_deref();
        let registry = &rqctx.context().registry;
        let written = registry
            .patch(
                &namespace,
                &name,
                &body.bytes,
                media_type,
                &options,
                Part::Status,
            )
            .await?;
        Ok(Reply::new(
            written.object,
            is_pretty(query.pretty.as_deref()),
            written.warnings,
        ))
    }

    async fn get_openapi_document(
        _rqctx: RequestContext<ServerState>,
    ) -> Result<http::Response<dropshot::Body>, ApiError> {
        raw_response(
            "application/json",
            crate::openapi::COMMITTED_DOCUMENT.as_bytes().to_vec(),
        )
    }

    async fn get_docs(
        rqctx: RequestContext<ServerState>,
    ) -> Result<http::Response<dropshot::Body>, ApiError> {
        let missing = || {
            ApiError::not_found_message(
                "the API reference page has not been built: run `cargo xtask docs` and start \
                 the server with --docs-file target/docs/mxjob.html",
            )
        };
        let path = rqctx.context().docs_file.as_ref().ok_or_else(missing)?;
        let page = tokio::fs::read(path).await.map_err(|_| missing())?;
        raw_response("text/html; charset=utf-8", page)
    }

    async fn get_core_api_versions(
        _rqctx: RequestContext<ServerState>,
    ) -> Result<Reply<APIVersions>, ApiError> {
        Ok(Reply::new(discovery::core_versions(), false, Vec::new()))
    }

    async fn get_core_api_resources(
        _rqctx: RequestContext<ServerState>,
    ) -> Result<Reply<APIResourceList>, ApiError> {
        Ok(Reply::new(discovery::core_resources(), false, Vec::new()))
    }

    async fn get_api_groups(
        _rqctx: RequestContext<ServerState>,
    ) -> Result<Reply<APIGroupList>, ApiError> {
        Ok(Reply::new(discovery::groups(), false, Vec::new()))
    }

    async fn get_kubeflow_api_group(
        _rqctx: RequestContext<ServerState>,
    ) -> Result<Reply<APIGroup>, ApiError> {
        Ok(Reply::new(discovery::group(), false, Vec::new()))
    }

    async fn get_kubeflow_api_resources(
        _rqctx: RequestContext<ServerState>,
    ) -> Result<Reply<APIResourceList>, ApiError> {
        Ok(Reply::new(discovery::resources(), false, Vec::new()))
    }

    async fn get_version(_rqctx: RequestContext<ServerState>) -> Result<Reply<Info>, ApiError> {
        Ok(Reply::new(discovery::version(), false, Vec::new()))
    }
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

/// The default and the longest duration of a watch.
const WATCH_TIMEOUT: Duration = Duration::from_secs(1800);

fn list_params(query: &ListQuery) -> Result<ListParams, ApiError> {
    Ok(ListParams {
        selection: Selection::parse(
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
        selection: Selection::parse(
            query.label_selector.as_deref(),
            query.field_selector.as_deref(),
        )?,
        resource_version: query.resource_version.clone(),
        bookmarks: QueryBool::of(query.allow_watch_bookmarks),
        timeout,
    })
}

/// The HTTP stream of a watch; objects become one-row tables for kubectl.
fn watch_stream(
    events: BoxStream<'static, WatchEvent>,
    content_type: &'static str,
    table: Option<&'static str>,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) -> http::Response<dropshot::Body> {
    let events = events.take_until(async move {
        let _ = stopping.wait_for(|stopping| *stopping).await;
    });
    stream_response(events, content_type, move |mut event| {
        let is_object = matches!(
            event.type_,
            WatchEventType::ADDED | WatchEventType::MODIFIED | WatchEventType::DELETED
        );
        if let (Some(version), true) = (table, is_object) {
            if let Ok(job) = serde_json::from_value::<MXJob>(event.object.clone().into()) {
                if let serde_json::Value::Object(object) = table::for_object(&job, version) {
                    event.object = object;
                }
            }
        }
        event
    })
}

/// The API with the server's handlers.
pub fn api() -> Result<ApiDescription<ServerState>, String> {
    mxjob_api_mod::api_description::<MxjobServer>().map_err(|e| e.to_string())
}

/// Starts serving `registry` on `listen`.
/// A running server.
pub struct Server {
    http: HttpServer<ServerState>,
    stopping: tokio::sync::watch::Sender<bool>,
}

impl Server {
    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.http.local_addr()
    }

    /// Ends open watches, then waits for the other requests to finish.
    pub async fn close(self) -> Result<(), String> {
        self.stopping.send_replace(true);
        self.http.close().await
    }
}

pub fn start(registry: Registry, listen: SocketAddr, log: &Logger) -> Result<Server, String> {
    start_with(registry, Settings::new(listen), log)
}

/// Starts serving `registry` as `settings` say.
pub fn start_with(registry: Registry, settings: Settings, log: &Logger) -> Result<Server, String> {
    let listen = settings.listen;
    let config = ConfigDropshot {
        bind_address: listen,
        default_request_body_max_bytes: MAX_BODY_BYTES,
        // A client that hangs up must not abort a write half-way.
        default_handler_task_mode: HandlerTaskMode::Detached,
        ..Default::default()
    };
    let (stopping, stopping_receiver) = tokio::sync::watch::channel(false);
    let state = ServerState {
        registry,
        stopping: stopping_receiver,
        docs_file: settings.docs_file,
    };
    let http = ServerBuilder::new(api()?, state, log.clone())
        .config(config)
        .start()
        .map_err(|e| format!("starting the HTTP server on {listen}: {e}"))?;
    Ok(Server { http, stopping })
}

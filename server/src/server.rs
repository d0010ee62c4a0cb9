//! The implementation of [`MxjobApi`] and the HTTP server around it.
//!
//! Handlers stay thin: take the path, query and body apart, validate the
//! options, call the [`Registry`], and wrap the answer in a [`Reply`].

use std::net::SocketAddr;

use dropshot::{
    ApiDescription, ConfigDropshot, HandlerTaskMode, HttpServer, Path, Query, RequestContext,
    ServerBuilder,
};
use slog::Logger;

use crate::api::{
    mxjob_api_mod, DeleteQuery, MXJobPatch, MxjobApi, NamespacePath, ObjectPath, ReadQuery,
    WriteQuery,
};
use crate::model::{MXJob, MXJobList};
use crate::registry::{is_pretty, DeleteOptions, Registry, WriteOptions};
use crate::status::{ApiError, Status};
use crate::wire::{Created201, JsonBody, Reply, MAX_BODY_BYTES};

/// What every handler shares.
pub struct ServerState {
    pub registry: Registry,
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
        let job = rqctx.context().registry.get(&namespace, &name).await?;
        Ok(Reply::new(
            job,
            is_pretty(query.into_inner().pretty.as_deref()),
            Vec::new(),
        ))
    }

    async fn list_mxjobs(
        rqctx: RequestContext<ServerState>,
        path: Path<NamespacePath>,
        query: Query<ReadQuery>,
    ) -> Result<Reply<MXJobList>, ApiError> {
        let NamespacePath { namespace } = path.into_inner();
        let list = rqctx.context().registry.list(&namespace).await?;
        Ok(Reply::new(
            list,
            is_pretty(query.into_inner().pretty.as_deref()),
            Vec::new(),
        ))
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
        query: Query<DeleteQuery>,
    ) -> Result<Reply<MXJobList>, ApiError> {
        let NamespacePath { namespace } = path.into_inner();
        let query = query.into_inner();
        let options = DeleteOptions::try_from(&query)?;
        let list = rqctx
            .context()
            .registry
            .delete_collection(&namespace, &options)
            .await?;
        Ok(Reply::new(
            list,
            is_pretty(query.pretty.as_deref()),
            Vec::new(),
        ))
    }
}

/// The API with the server's handlers.
pub fn api() -> Result<ApiDescription<ServerState>, String> {
    mxjob_api_mod::api_description::<MxjobServer>().map_err(|e| e.to_string())
}

/// Starts serving `registry` on `listen`.
pub fn start(
    registry: Registry,
    listen: SocketAddr,
    log: &Logger,
) -> Result<HttpServer<ServerState>, String> {
    let config = ConfigDropshot {
        bind_address: listen,
        default_request_body_max_bytes: MAX_BODY_BYTES,
        // A client that hangs up must not abort a write half-way.
        default_handler_task_mode: HandlerTaskMode::Detached,
        ..Default::default()
    };
    ServerBuilder::new(api()?, ServerState { registry }, log.clone())
        .config(config)
        .start()
        .map_err(|e| format!("starting the HTTP server on {listen}: {e}"))
}

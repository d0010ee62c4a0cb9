//! Reading a replica's log: what `GET …/mxjobs/{name}/log` answers.
//!
//! The log is streamed from its file as it is at the time of the request,
//! as `text/plain`. Errors are `Status` objects like everywhere else: 404
//! when the job, the replica or its log does not exist.

use std::path::Path;

use bytes::Bytes;
use dropshot::{ApiEndpointResponse, Body, HttpError, HttpResponse, HttpResponseOk};
use http::{header, Response, StatusCode};
use tokio::io::AsyncReadExt;

use super::local;
use crate::api::LogQuery;
use crate::model::{MXJob, ReplicaType};
use crate::status::ApiError;

/// The media type of a log.
pub const LOG_CONTENT_TYPE: &str = "text/plain; charset=utf-8";

/// A plain-text response, documented as a string (the OpenAPI document
/// declares it as `text/plain`).
pub struct TextResponse(pub Response<Body>);

impl HttpResponse for TextResponse {
    fn to_result(self) -> Result<Response<Body>, HttpError> {
        Ok(self.0)
    }

    fn response_metadata() -> ApiEndpointResponse {
        HttpResponseOk::<String>::response_metadata()
    }

    fn status_code(&self) -> StatusCode {
        StatusCode::OK
    }
}

/// The log of the replica `query` names, from the logs under `root`
/// (`None` when this server runs no processes).
pub async fn replica_log(
    root: Option<&Path>,
    job: &MXJob,
    query: &LogQuery,
) -> Result<TextResponse, ApiError> {
    let meta = &job.metadata;
    let name = meta.name.as_deref().unwrap_or_default();
    let replica_type = &query.replica_type;
    if let ReplicaType::Unsupported(other) = replica_type {
        return Err(ApiError::bad_request(format!(
            "invalid replicaType {other:?}: must be one of {}",
            ReplicaType::SUPPORTED.join(", ")
        )));
    }
    let index = query.index.unwrap_or(0);
    let count = local::replicas(job, replica_type);
    if count == 0 {
        return Err(ApiError::not_found_message(format!(
            "MXJob {name} has no {replica_type} replicas"
        )));
    }
    let index = i32::try_from(index)
        .ok()
        .filter(|i| *i < count)
        .ok_or_else(|| {
            ApiError::not_found_message(format!(
                "MXJob {name} has {count} {replica_type} replica(s): there is no index {index}"
            ))
        })?;
    let root = root.ok_or_else(|| {
        ApiError::not_found_message(
            "this server runs no replica processes (it was not started with --executor local), \
             so it keeps no logs",
        )
    })?;
    let dir = local::job_dir(
        root,
        meta.namespace.as_deref().unwrap_or_default(),
        name,
        meta.uid.as_deref().unwrap_or_default(),
    );
    let file = tokio::fs::File::open(local::log_file(&dir, replica_type, index))
        .await
        .map_err(|_| {
            ApiError::not_found_message(format!(
                "no log for {replica_type} {index} of MXJob {name}: it has not started yet, \
                 or cleanPodPolicy All removed it"
            ))
        })?;
    let response = Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, LOG_CONTENT_TYPE)
        .body(Body::wrap(FileBody::new(file)))
        .map_err(ApiError::internal)?;
    Ok(TextResponse(response))
}

/// A response body that reads a file in chunks, without holding it all.
struct FileBody(tokio::sync::mpsc::Receiver<Bytes>);

impl FileBody {
    fn new(mut file: tokio::fs::File) -> Self {
        let (sender, receiver) = tokio::sync::mpsc::channel(4);
        tokio::spawn(async move {
            let mut buffer = vec![0u8; 64 * 1024];
            loop {
                match file.read(&mut buffer).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if sender
                            .send(Bytes::copy_from_slice(&buffer[..n]))
                            .await
                            .is_err()
                        {
                            break;
                        }
                    }
                }
            }
        });
        FileBody(receiver)
    }
}

impl http_body::Body for FileBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|bytes| Ok(http_body::Frame::data(bytes))))
    }
}

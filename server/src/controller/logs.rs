//! Where a replica's log is: what `GET …/mxjobs/{name}/log` serves.
//!
//! The local executor writes each replica's output to a file under its log
//! directory; under the Kubernetes executor the log is the replica Pod's
//! `mxnet` container's, read through the Kubernetes API. [`open`] finds
//! the one a request names, or says why there is none. The HTTP handler
//! sends it as it is at the time of the request, as `text/plain`.
//!
//! What the cluster answers keeps its meaning: no such Pod is 404, a Pod
//! that has no log to give yet (not scheduled, its container still
//! starting) is 400 with the cluster's message, as kube-apiserver answers
//! it; a cluster that cannot be reached, or fails otherwise, is 500.

use std::path::{Path, PathBuf};

use mxjob_api::model::{MXJob, ReplicaType};

use super::kubernetes::error::ClusterError;
use super::kubernetes::KubernetesExecutor;
use super::local;

/// Where logs come from.
#[derive(Clone, Debug, Default)]
pub enum LogSource {
    /// This server runs no replicas.
    #[default]
    None,
    /// The local executor's log directory.
    Local(PathBuf),
    /// The Pods of a cluster.
    Kubernetes(KubernetesExecutor),
}

/// A log to send.
pub enum Log {
    File(tokio::fs::File),
    Text(String),
}

/// The media type of a log.
pub const LOG_CONTENT_TYPE: &str = "text/plain; charset=utf-8";

/// Why there is no log to serve.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LogError {
    /// The request names no replica type: 400.
    #[error("{0}")]
    BadReplicaType(String),
    /// The replica or its log does not exist: 404.
    #[error("{0}")]
    Missing(String),
    /// The cluster has no log for it yet: 400, with the cluster's message.
    #[error("{0}")]
    NotReady(String),
    /// The cluster could not give it: 500.
    #[error("{0}")]
    Unavailable(String),
}

/// The log of replica `index` (default 0) of `replica_type`, from `source`.
pub async fn open(
    source: &LogSource,
    job: &MXJob,
    replica_type: &ReplicaType,
    index: Option<u32>,
) -> Result<Log, LogError> {
    let name = job.metadata.name.as_deref().unwrap_or_default();
    if let ReplicaType::Unsupported(other) = replica_type {
        return Err(LogError::BadReplicaType(format!(
            "invalid replicaType {other:?}: must be one of {}",
            ReplicaType::SUPPORTED.join(", ")
        )));
    }
    let index = index.unwrap_or(0);
    let count = local::replicas(job, replica_type);
    if count == 0 {
        return Err(LogError::Missing(format!(
            "MXJob {name} has no {replica_type} replicas"
        )));
    }
    let index = i32::try_from(index)
        .ok()
        .filter(|i| *i < count)
        .ok_or_else(|| {
            LogError::Missing(format!(
                "MXJob {name} has {count} {replica_type} replica(s): there is no index {index}"
            ))
        })?;
    match source {
        LogSource::None => Err(LogError::Missing(
            "this server runs no replicas (it was not started with --executor local or \
             kubernetes), so it keeps no logs"
                .to_string(),
        )),
        LogSource::Local(root) => open_file(root, job, replica_type, index)
            .await
            .map(Log::File),
        LogSource::Kubernetes(executor) => executor
            .log(job, replica_type, index)
            .await
            .map(Log::Text)
            .map_err(|error| match error {
                ClusterError::NotFound { .. } => LogError::Missing(format!(
                    "no pod for {replica_type} {index} of MXJob {name}: it has not been \
                     created yet, or cleanPodPolicy removed it ({error})"
                )),
                ClusterError::Invalid { message, .. } => LogError::NotReady(message),
                other => LogError::Unavailable(format!(
                    "the log of {replica_type} {index} of MXJob {name}: {other}"
                )),
            }),
    }
}

async fn open_file(
    root: &Path,
    job: &MXJob,
    replica_type: &ReplicaType,
    index: i32,
) -> Result<tokio::fs::File, LogError> {
    let meta = &job.metadata;
    let name = meta.name.as_deref().unwrap_or_default();
    let dir = local::job_dir(
        root,
        meta.namespace.as_deref().unwrap_or_default(),
        name,
        meta.uid.as_deref().unwrap_or_default(),
    );
    tokio::fs::File::open(local::log_file(&dir, replica_type, index))
        .await
        .map_err(|_| {
            LogError::Missing(format!(
                "no log for {replica_type} {index} of MXJob {name}: it has not started yet, \
                 or cleanPodPolicy All removed it"
            ))
        })
}

impl Log {
    /// The log as a response body (a file is streamed).
    pub fn into_body(self) -> dropshot::Body {
        use futures::StreamExt;
        match self {
            Log::File(file) => dropshot::Body::wrap(http_body_util::StreamBody::new(
                tokio_util::io::ReaderStream::new(file)
                    .map(|chunk| chunk.map(http_body::Frame::data)),
            )),
            Log::Text(text) => dropshot::Body::from(text),
        }
    }
}

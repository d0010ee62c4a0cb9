//! Where a replica's log is: what `GET …/mxjobs/{name}/log` serves.
//!
//! The local executor writes each replica's output to a file under its log
//! directory; [`open`] finds the one a request names, or says why there is
//! none. The HTTP handler streams the file as it is at the time of the
//! request, as `text/plain`.

use std::path::Path;

use mxjob_api::model::{MXJob, ReplicaType};

use super::local;

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
}

/// The log of replica `index` (default 0) of `replica_type`, from the logs
/// under `root` (`None` when this server runs no processes).
pub async fn open(
    root: Option<&Path>,
    job: &MXJob,
    replica_type: &ReplicaType,
    index: Option<u32>,
) -> Result<tokio::fs::File, LogError> {
    let meta = &job.metadata;
    let name = meta.name.as_deref().unwrap_or_default();
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
    let root = root.ok_or_else(|| {
        LogError::Missing(
            "this server runs no replica processes (it was not started with --executor local), \
             so it keeps no logs"
                .to_string(),
        )
    })?;
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

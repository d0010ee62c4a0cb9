//! Why a registry operation failed, by variant: what the controller and
//! the registry itself match on. The HTTP edge turns each into the
//! Kubernetes `v1 Status` with the reason and message kube-apiserver uses
//! (`From<Error> for ApiError`), and nothing below it sees a Status.

use mxjob_api::error::{ApiError, FieldError, StatusCause};

use crate::decode::DecodeError;
use crate::store::{Revision, StoreError};

/// Why a registry operation failed.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum Error {
    /// No namespace of this name: 404 `NotFound`.
    #[error("namespaces {name:?} not found")]
    NamespaceNotFound { name: String },
    /// The namespace exists: 409 `AlreadyExists`.
    #[error("namespaces {name:?} already exists")]
    NamespaceExists { name: String },
    /// A namespace that failed validation: 422 `Invalid`.
    #[error("namespace {name:?} is invalid")]
    InvalidNamespace {
        name: String,
        causes: Vec<FieldError>,
    },
    /// No object of this name: 404 `NotFound`.
    #[error("mxjobs.kubeflow.org {name:?} not found")]
    NotFound { name: String },
    /// The name is taken: 409 `AlreadyExists`.
    #[error("mxjobs.kubeflow.org {name:?} already exists")]
    AlreadyExists { name: String },
    /// The object is no longer what the request expected: 409 `Conflict`.
    #[error("conflict on {name:?}: {cause}")]
    Conflict { name: String, cause: Conflict },
    /// A server-side apply would change fields other managers own: 409
    /// `Conflict`, one cause per field.
    #[error("{message}")]
    ApplyConflict {
        message: String,
        causes: Vec<StatusCause>,
    },
    /// The request reaches back into compacted history: 410 `Expired`.
    #[error("{0}")]
    Gone(String),
    /// The object (or the options) failed validation: 422 `Invalid`.
    #[error("{name:?} is invalid")]
    Invalid {
        name: String,
        causes: Vec<FieldError>,
    },
    /// A patch that cannot be applied to the object: 422 `Invalid`.
    #[error("{message}")]
    PatchFailed { name: String, message: String },
    /// A request that cannot mean anything: 400 `BadRequest`.
    #[error("{0}")]
    BadRequest(String),
    /// A body in a media type it may not come in: 415.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// An object or patch beyond the bounds: 413 `RequestEntityTooLarge`
    /// (`Request entity too large: {0}`).
    #[error("{0}")]
    TooLarge(String),
    /// A resourceVersion newer than the store: 504 `Timeout`, as Kubernetes
    /// answers a read it would have to wait for.
    #[error("Too large resource version: the newest resourceVersion is {current}")]
    TooNew { current: Revision },
    /// The store or an invariant failed: 500 `InternalError`.
    #[error("{0}")]
    Internal(String),
}

/// What made a write conflict.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Conflict {
    /// The object has a newer resourceVersion than the request named.
    #[error("the object has been modified; please apply your changes to the latest version and try again")]
    Stale,
    /// A precondition (uid, resourceVersion) did not hold.
    #[error("{0}")]
    Precondition(String),
}

impl Error {
    /// A stale write of `name`.
    pub fn stale(name: &str) -> Self {
        Error::Conflict {
            name: name.to_string(),
            cause: Conflict::Stale,
        }
    }

    /// The store's failure, for the object `name` (empty when none).
    pub fn from_store(error: StoreError, name: &str) -> Self {
        match error {
            StoreError::AlreadyExists => Error::AlreadyExists {
                name: name.to_string(),
            },
            StoreError::NotFound => Error::NotFound {
                name: name.to_string(),
            },
            StoreError::Conflict { .. } => Error::stale(name),
            StoreError::Compacted { compacted } => Error::Gone(format!(
                "the requested resourceVersion is too old; the oldest available is {compacted}"
            )),
            StoreError::FutureRevision { current } => Error::TooNew { current },
            StoreError::Backend(message) => Error::Internal(message),
        }
    }
}

impl From<DecodeError> for Error {
    fn from(error: DecodeError) -> Self {
        match error {
            DecodeError::Malformed(message) => Error::BadRequest(message),
            DecodeError::UnsupportedMediaType(message) => Error::UnsupportedMediaType(message),
        }
    }
}

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        match error {
            Error::NotFound { name } => ApiError::not_found(&name),
            Error::NamespaceNotFound { name } => ApiError::namespace_not_found(&name),
            Error::NamespaceExists { name } => ApiError::namespace_exists(&name),
            Error::InvalidNamespace { name, causes } => {
                ApiError::invalid_kind(("", "Namespace"), &name, &causes)
            }
            Error::AlreadyExists { name } => ApiError::already_exists(&name),
            Error::Conflict { name, cause } => ApiError::conflict(&name, &cause.to_string()),
            Error::ApplyConflict { message, causes } => ApiError::apply_conflict(message, causes),
            Error::Gone(message) => ApiError::gone(message),
            Error::Invalid { name, causes } => ApiError::invalid(&name, &causes),
            Error::PatchFailed { name, message } => ApiError::invalid_patch(&name, message),
            Error::BadRequest(message) => ApiError::bad_request(message),
            Error::UnsupportedMediaType(message) => ApiError::unsupported_media_type(message),
            Error::TooLarge(message) => ApiError::entity_too_large(message),
            error @ Error::TooNew { .. } => ApiError::timeout(error.to_string()),
            Error::Internal(message) => ApiError::internal(message),
        }
    }
}

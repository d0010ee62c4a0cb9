//! What went wrong talking to the cluster, in the terms the controller
//! decides by.
//!
//! This is the one place that reads a foreign API's answers: kube-rs hands
//! over the Kubernetes `Status` of a refused request (code, reason,
//! message), and everything else — connection refused, TLS, timeouts — as
//! transport errors. The controller never looks at codes itself; it asks
//! [`ClusterError`] whether retrying can help and what to tell the user.

/// A request the cluster did not carry out.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ClusterError {
    /// The object is malformed (400 `BadRequest`, 422 `Invalid`): the same
    /// request will never be accepted.
    #[error("{reason}: {message}")]
    Invalid { reason: String, message: String },
    /// Refused for now (`Forbidden` by RBAC, a quota or an admission
    /// plugin; `Unauthorized`; a missing namespace): someone can fix it, and
    /// the request is tried again.
    #[error("{reason}: {message}")]
    Refused { reason: String, message: String },
    /// No such object (404), where the object, not its namespace, was asked for.
    #[error("{reason}: {message}")]
    NotFound { reason: String, message: String },
    /// The name is taken, or a precondition failed (409).
    #[error("{reason}: {message}")]
    Conflict { reason: String, message: String },
    /// The API server could not be reached, or answered that it cannot
    /// serve now (429, 5xx).
    #[error("the Kubernetes API server at {server} cannot be reached: {detail}")]
    Unreachable { server: String, detail: String },
}

impl ClusterError {
    /// Classifies what kube-rs returned for a request to `server`.
    pub fn from_kube(error: kube::Error, server: &str) -> Self {
        match error {
            kube::Error::Api(status) => {
                let reason = if status.reason.is_empty() {
                    status.status.clone()
                } else {
                    status.reason.clone()
                };
                let message = status.message.clone();
                match status.code {
                    400 | 422 => ClusterError::Invalid { reason, message },
                    404 => ClusterError::NotFound { reason, message },
                    409 => ClusterError::Conflict { reason, message },
                    429 | 500..=599 => ClusterError::Unreachable {
                        server: server.to_string(),
                        detail: format!("{reason}: {message}"),
                    },
                    _ => ClusterError::Refused { reason, message },
                }
            }
            other => ClusterError::Unreachable {
                server: server.to_string(),
                detail: describe_chain(&other),
            },
        }
    }

    /// A 404 on a create names the namespace, which someone may still make:
    /// a refusal, not a missing object.
    pub fn on_create(self) -> Self {
        match self {
            ClusterError::NotFound { reason, message } => ClusterError::Refused { reason, message },
            other => other,
        }
    }

    /// Whether trying again later can succeed.
    pub fn is_permanent(&self) -> bool {
        matches!(self, ClusterError::Invalid { .. })
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, ClusterError::NotFound { .. })
    }

    pub fn is_conflict(&self) -> bool {
        matches!(self, ClusterError::Conflict { .. })
    }

    pub fn is_unreachable(&self) -> bool {
        matches!(self, ClusterError::Unreachable { .. })
    }
}

/// An error and its causes on one line (transport errors nest deeply, and
/// the useful part — "connection refused" — is at the bottom).
pub fn describe_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let line = cause.to_string();
        if !text.contains(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::ErrorResponse;

    fn api(code: u16, reason: &str) -> kube::Error {
        kube::Error::Api(ErrorResponse {
            status: "Failure".into(),
            message: format!("refused with {code}"),
            reason: reason.into(),
            code,
        })
    }

    #[test]
    fn invalid_objects_are_permanent_and_the_rest_retried() {
        let server = "https://k";
        let invalid = ClusterError::from_kube(api(422, "Invalid"), server);
        assert!(invalid.is_permanent());
        assert_eq!(invalid.to_string(), "Invalid: refused with 422");
        assert!(ClusterError::from_kube(api(400, "BadRequest"), server).is_permanent());
        let forbidden = ClusterError::from_kube(api(403, "Forbidden"), server);
        assert!(!forbidden.is_permanent());
        assert_eq!(forbidden.to_string(), "Forbidden: refused with 403");
        let missing = ClusterError::from_kube(api(404, "NotFound"), server);
        assert!(missing.is_not_found());
        assert!(!missing.on_create().is_not_found());
        assert!(ClusterError::from_kube(api(409, "AlreadyExists"), server).is_conflict());
        assert!(ClusterError::from_kube(api(503, "ServiceUnavailable"), server).is_unreachable());
    }
}

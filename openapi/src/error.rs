//! The Kubernetes `v1 Status` object: every error body, and the body of a
//! successful delete.
//!
//! [`ApiError`] is the error type of every endpoint. Dropshot converts the
//! errors of its own extractors (a bad query string, a path that does not
//! parse) into it through `From<HttpError>`, so a client never sees a body
//! that is not a `Status`. Messages follow the shapes the Kubernetes API
//! server uses (`mxjobs.kubeflow.org "x" not found`, `… is invalid: …`),
//! because clients and people match on them.

use dropshot::{ErrorStatusCode, HttpError, HttpResponseError};
use http::StatusCode;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ListMeta;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::{GROUP, KIND, RESOURCE};

/// `mxjobs.kubeflow.org`, the qualified resource in messages.
pub const QUALIFIED_RESOURCE: &str = "mxjobs.kubeflow.org";

/// The outcome of an operation that returns no object (table 72).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    /// Always `v1`.
    pub api_version: String,
    /// Always `Status`.
    pub kind: String,
    /// Empty list metadata.
    #[serde(default)]
    pub metadata: ListMeta,
    /// `Success` or `Failure`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// A human-readable description of the outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// A machine-readable, CamelCase reason for a failure, such as
    /// `NotFound`, `Conflict` or `Invalid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// More about the object the outcome concerns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<StatusDetails>,
    /// The HTTP status code of the outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<i32>,
}

/// The object an outcome concerns (table 73).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatusDetails {
    /// Name of the object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// API group of the object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Resource or kind of the object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// UID of the object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// One entry per field that failed validation.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub causes: Vec<StatusCause>,
    /// Seconds the client should wait before retrying.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_seconds: Option<i32>,
}

/// One reason an operation failed (table 74).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatusCause {
    /// Machine-readable cause, such as `FieldValueInvalid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Human-readable cause.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The field at fault, as a path such as `spec.mxReplicaSpecs.Worker.replicas`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl Status {
    fn new(status: &str, code: StatusCode, reason: &str, message: String) -> Self {
        Status {
            api_version: "v1".to_string(),
            kind: "Status".to_string(),
            metadata: ListMeta::default(),
            status: Some(status.to_string()),
            message: Some(message),
            reason: (!reason.is_empty()).then(|| reason.to_string()),
            details: None,
            code: Some(i32::from(code.as_u16())),
        }
    }

    /// The body of a successful delete (as the CCI reference shows it).
    pub fn deleted(name: &str, uid: Option<String>) -> Self {
        let mut status = Status::new("Success", StatusCode::OK, "", String::new());
        status.message = None;
        status.details = Some(StatusDetails {
            name: Some(name.to_string()),
            group: Some(GROUP.to_string()),
            kind: Some(RESOURCE.to_string()),
            uid,
            ..Default::default()
        });
        status
    }
}

/// How a field failed validation, with the Kubernetes cause reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldErrorKind {
    Required,
    Invalid,
    NotSupported,
    Forbidden,
    TooLong,
    Duplicate,
}

impl FieldErrorKind {
    fn reason(self) -> &'static str {
        match self {
            FieldErrorKind::Required => "FieldValueRequired",
            FieldErrorKind::Invalid => "FieldValueInvalid",
            FieldErrorKind::NotSupported => "FieldValueNotSupported",
            FieldErrorKind::Forbidden => "FieldValueForbidden",
            FieldErrorKind::TooLong => "FieldValueTooLong",
            FieldErrorKind::Duplicate => "FieldValueDuplicate",
        }
    }
}

/// One field that failed validation.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldError {
    pub kind: FieldErrorKind,
    /// Path of the field, e.g. `spec.mxReplicaSpecs.Worker.replicas`.
    pub field: String,
    /// The offending value, where there is one.
    pub value: Option<Value>,
    /// What is wrong.
    pub detail: String,
}

impl FieldError {
    pub fn required(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            kind: FieldErrorKind::Required,
            field: field.into(),
            value: None,
            detail: detail.into(),
        }
    }
    pub fn invalid(
        field: impl Into<String>,
        value: impl Into<Value>,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            kind: FieldErrorKind::Invalid,
            field: field.into(),
            value: Some(value.into()),
            detail: detail.into(),
        }
    }
    pub fn not_supported(field: impl Into<String>, value: &str, supported: &[&str]) -> Self {
        let list: Vec<String> = supported.iter().map(|s| format!("{s:?}")).collect();
        Self {
            kind: FieldErrorKind::NotSupported,
            field: field.into(),
            value: Some(Value::from(value)),
            detail: format!("supported values: {}", list.join(", ")),
        }
    }
    pub fn forbidden(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            kind: FieldErrorKind::Forbidden,
            field: field.into(),
            value: None,
            detail: detail.into(),
        }
    }
    pub fn too_long(field: impl Into<String>, max: usize) -> Self {
        Self {
            kind: FieldErrorKind::TooLong,
            field: field.into(),
            value: None,
            detail: format!("may not be more than {max} bytes"),
        }
    }
    pub fn duplicate(field: impl Into<String>, value: impl Into<Value>) -> Self {
        Self {
            kind: FieldErrorKind::Duplicate,
            field: field.into(),
            value: Some(value.into()),
            detail: String::new(),
        }
    }

    /// The message without the field path, as a `StatusCause` carries it.
    pub fn body(&self) -> String {
        let value = self
            .value
            .as_ref()
            .map(|v| v.to_string())
            .unwrap_or_default();
        let with_detail = |head: String| {
            if self.detail.is_empty() {
                head
            } else {
                format!("{head}: {}", self.detail)
            }
        };
        match self.kind {
            FieldErrorKind::Required => with_detail("Required value".to_string()),
            FieldErrorKind::Invalid => with_detail(format!("Invalid value: {value}")),
            FieldErrorKind::NotSupported => with_detail(format!("Unsupported value: {value}")),
            FieldErrorKind::Forbidden => with_detail("Forbidden".to_string()),
            FieldErrorKind::TooLong => with_detail("Too long".to_string()),
            FieldErrorKind::Duplicate => format!("Duplicate value: {value}"),
        }
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.body())
    }
}

/// An error answered as a Kubernetes `Status`.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiError(pub Box<Status>);

impl ApiError {
    fn new(code: StatusCode, reason: &str, message: impl Into<String>) -> Self {
        ApiError(Box::new(Status::new(
            "Failure",
            code,
            reason,
            message.into(),
        )))
    }

    fn with_details(mut self, name: &str, kind: &str) -> Self {
        self.0.details = Some(StatusDetails {
            name: Some(name.to_string()),
            group: Some(GROUP.to_string()),
            kind: Some(kind.to_string()),
            ..Default::default()
        });
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }

    pub fn not_found(name: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("{QUALIFIED_RESOURCE} {name:?} not found"),
        )
        .with_details(name, RESOURCE)
    }

    /// 404 for something other than an MXJob.
    pub fn not_found_message(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NotFound", message)
    }

    /// 401: no or unknown credentials.
    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized")
    }

    /// 403 with a message naming who may not do what.
    pub fn forbidden(name: &str, message: String) -> Self {
        Self::new(StatusCode::FORBIDDEN, "Forbidden", message).with_details(name, RESOURCE)
    }

    /// 403 for a request refused before it names an object.
    pub fn forbidden_message(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "Forbidden", message)
    }

    /// 405, for a path that exists with other methods.
    pub fn method_not_allowed(method: &str) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            format!("the server does not allow this method on the requested resource ({method})"),
        )
    }

    /// 429 TooManyRequests.
    pub fn too_many_requests(message: impl Into<String>) -> Self {
        let mut error = Self::new(StatusCode::TOO_MANY_REQUESTS, "TooManyRequests", message);
        error.0.details = Some(StatusDetails {
            retry_after_seconds: Some(1),
            ..Default::default()
        });
        error
    }

    pub fn already_exists(name: &str) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "AlreadyExists",
            format!("{QUALIFIED_RESOURCE} {name:?} already exists"),
        )
        .with_details(name, RESOURCE)
    }

    /// 404 for a namespace (`namespaces "x" not found`).
    pub fn namespace_not_found(name: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("namespaces {name:?} not found"),
        )
        .with_details(name, "namespaces")
    }

    /// 409 for a namespace that exists (`namespaces "x" already exists`).
    pub fn namespace_exists(name: &str) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "AlreadyExists",
            format!("namespaces {name:?} already exists"),
        )
        .with_details(name, "namespaces")
    }

    /// 409 Conflict: `Operation cannot be fulfilled on …: {why}`.
    pub fn conflict(name: &str, why: &str) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "Conflict",
            format!("Operation cannot be fulfilled on {QUALIFIED_RESOURCE} {name:?}: {why}"),
        )
        .with_details(name, RESOURCE)
    }

    /// 409 for a server-side apply that would change fields other
    /// managers own: the message and one cause per field, as the
    /// Kubernetes API server words them.
    pub fn apply_conflict(message: String, causes: Vec<StatusCause>) -> Self {
        let mut error = Self::new(StatusCode::CONFLICT, "Conflict", message);
        error.0.details = Some(StatusDetails {
            causes,
            ..Default::default()
        });
        error
    }

    /// The conflict a stale resourceVersion causes.
    pub fn stale(name: &str) -> Self {
        Self::conflict(
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// 422 Invalid with one cause per field error.
    pub fn invalid(name: &str, errors: &[FieldError]) -> Self {
        Self::invalid_kind((GROUP, KIND), name, errors)
    }

    /// 422 Invalid for an object of `(group, kind)` (`""` for the core
    /// group, whose kinds go without one: `Namespace "x" is invalid`).
    pub fn invalid_kind((group, kind): (&str, &str), name: &str, errors: &[FieldError]) -> Self {
        let listed: Vec<String> = errors.iter().map(ToString::to_string).collect();
        let summary = if listed.len() == 1 {
            listed[0].clone()
        } else {
            format!("[{}]", listed.join(", "))
        };
        let qualified = if group.is_empty() {
            kind.to_string()
        } else {
            format!("{kind}.{group}")
        };
        let mut error = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid",
            format!("{qualified} {name:?} is invalid: {summary}"),
        )
        .with_details(name, kind);
        if let Some(details) = error.0.details.as_mut() {
            details.group = Some(group.to_string());
            details.causes = errors
                .iter()
                .map(|e| StatusCause {
                    reason: Some(e.kind.reason().to_string()),
                    message: Some(e.body()),
                    field: Some(e.field.clone()),
                })
                .collect();
        }
        error
    }

    /// 422 for invalid request options; `options` names them as
    /// Kubernetes does (`CreateOptions`, `DeleteOptions`, …).
    pub fn invalid_options(options: &str, errors: &[FieldError]) -> Self {
        Self::invalid_kind(("meta.k8s.io", options), "", errors)
    }

    /// 422 for a patch that could not be applied to the object.
    pub fn invalid_patch(name: &str, message: String) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", message).with_details(name, KIND)
    }

    /// 504 Timeout.
    pub fn timeout(message: impl Into<String>) -> Self {
        Self::new(StatusCode::GATEWAY_TIMEOUT, "Timeout", message)
    }

    /// 408: the request body did not arrive in time.
    pub fn body_timeout(timeout: std::time::Duration) -> Self {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            "Timeout",
            format!(
                "the request body was not received within {} seconds",
                timeout.as_secs()
            ),
        )
    }

    /// 413 for a request body over `limit` bytes.
    pub fn too_large(limit: usize) -> Self {
        Self::entity_too_large(format!("limit is {limit}"))
    }

    /// 413 `Request entity too large: {detail}`.
    pub fn entity_too_large(detail: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLarge",
            format!("Request entity too large: {detail}"),
        )
    }

    pub fn unsupported_media_type(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            message,
        )
    }

    pub fn internal(message: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            format!("Internal error occurred: {message}"),
        )
    }

    pub fn gone(message: impl Into<String>) -> Self {
        Self::new(StatusCode::GONE, "Expired", message)
    }

    pub fn code(&self) -> u16 {
        self.0
            .code
            .and_then(|c| u16::try_from(c).ok())
            .unwrap_or(500)
    }

    pub fn reason(&self) -> &str {
        self.0.reason.as_deref().unwrap_or("")
    }

    pub fn message(&self) -> &str {
        self.0.message.as_deref().unwrap_or("")
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.code(), self.reason(), self.message())
    }
}

impl std::error::Error for ApiError {}

impl Serialize for ApiError {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl JsonSchema for ApiError {
    fn schema_name() -> String {
        Status::schema_name()
    }
    fn schema_id() -> std::borrow::Cow<'static, str> {
        // The same id as `Status`, so both share one schema in the document.
        Status::schema_id()
    }
    fn json_schema(generator: &mut schemars::gen::SchemaGenerator) -> schemars::schema::Schema {
        Status::json_schema(generator)
    }
}

/// The Kubernetes reason for an HTTP status code.
fn reason_for(code: StatusCode) -> &'static str {
    match code.as_u16() {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        406 => "NotAcceptable",
        408 => "Timeout",
        409 => "Conflict",
        410 => "Expired",
        413 => "RequestEntityTooLarge",
        415 => "UnsupportedMediaType",
        422 => "Invalid",
        429 => "TooManyRequests",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "InternalError",
    }
}

/// Errors dropshot raises before a handler runs (query and path parsing,
/// unknown routes, wrong methods) become `Status` bodies with the same code.
impl From<HttpError> for ApiError {
    fn from(error: HttpError) -> Self {
        let code = error.status_code.as_status();
        ApiError::new(code, reason_for(code), error.external_message)
    }
}

impl HttpResponseError for ApiError {
    fn status_code(&self) -> ErrorStatusCode {
        ErrorStatusCode::from_u16(self.code()).unwrap_or(ErrorStatusCode::INTERNAL_SERVER_ERROR)
    }
}

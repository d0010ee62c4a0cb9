//! 405 as a `v1 Status`.
//!
//! Dropshot answers a method a path does not have before any handler runs,
//! with a body of its own. Every path of the API therefore gets an
//! unpublished endpoint for each method it lacks, which answers 405
//! `MethodNotAllowed` as a `Status` with the `Allow` header, like every
//! other error here.
//!
//! Unknown paths (and paths dropshot cannot decode, such as `..`
//! segments) are still answered by dropshot itself: its router allows no
//! catch-all route beside literal ones and offers no hook for the answer.

use std::collections::BTreeMap;

use dropshot::{ApiDescription, ApiEndpoint, ApiEndpointVersions, Path, RequestContext};
use http::Method;
use schemars::JsonSchema;
use serde_json::Value;

use crate::server::ServerState;
use mxjob_api::error::ApiError;
use mxjob_api::params::{NamespacePath, ObjectPath};

/// The methods a path may be asked with.
const METHODS: [Method; 7] = [
    Method::GET,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
    Method::HEAD,
    Method::OPTIONS,
];

/// Paths served but not published in the OpenAPI document, with their
/// methods.
pub const UNPUBLISHED_PATHS: [(&str, &[Method]); 9] = [
    ("/openapi.json", &[Method::GET]),
    ("/docs", &[Method::GET]),
    ("/openapi/v2", &[Method::GET]),
    ("/openapi/v3", &[Method::GET]),
    ("/openapi/v3/apis/kubeflow.org/v1", &[Method::GET]),
    ("/api/v1/namespaces", &[Method::GET, Method::POST]),
    (
        "/api/v1/namespaces/{namespace}",
        &[Method::GET, Method::DELETE],
    ),
    ("/apis/authorization.k8s.io", &[Method::GET]),
    ("/apis/authorization.k8s.io/v1", &[Method::GET]),
];

/// The prefix of the operation ids of the fallback endpoints; the rest of
/// the id is the `Allow` header.
const OPERATION_PREFIX: &str = "method_not_allowed:";

/// Every path and its methods: the published ones from `document` (an
/// OpenAPI document of the API), and [`UNPUBLISHED_PATHS`].
pub fn routes(document: &Value) -> BTreeMap<String, Vec<Method>> {
    let mut routes: BTreeMap<String, Vec<Method>> = BTreeMap::new();
    if let Some(paths) = document.get("paths").and_then(Value::as_object) {
        for (path, item) in paths {
            let methods = item
                .as_object()
                .into_iter()
                .flat_map(|item| item.keys())
                .filter_map(|m| m.to_ascii_uppercase().parse::<Method>().ok())
                .filter(|m| METHODS.contains(m));
            routes.entry(path.clone()).or_default().extend(methods);
        }
    }
    for (path, methods) in UNPUBLISHED_PATHS {
        routes
            .entry(path.to_string())
            .or_default()
            .extend(methods.iter().cloned());
    }
    routes
        .entry("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews".to_string())
        .or_default()
        .push(Method::POST);
    routes
}

/// Why the 405 endpoints could not be added.
#[derive(Debug, thiserror::Error)]
pub enum FallbackError {
    #[error(transparent)]
    Register(#[from] dropshot::ApiDescriptionRegisterError),
    #[error("{path}: no fallback for the path variables {variables:?}")]
    Variables {
        path: String,
        variables: Vec<String>,
    },
}

/// Registers a 405 endpoint for every method each of `routes` lacks.
pub fn register(
    api: &mut ApiDescription<ServerState>,
    routes: &BTreeMap<String, Vec<Method>>,
) -> Result<(), FallbackError> {
    for (path, methods) in routes {
        let allow: Vec<&str> = METHODS
            .iter()
            .filter(|m| methods.contains(m))
            .map(Method::as_str)
            .collect();
        let variables: Vec<&str> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .collect();
        for method in METHODS.iter().filter(|m| !methods.contains(m)) {
            let operation = format!("{OPERATION_PREFIX}{}", allow.join(", "));
            // One handler per set of path variables: dropshot requires an
            // endpoint to declare each, and does not name its handler traits.
            macro_rules! endpoint {
                ($handler:expr) => {
                    ApiEndpoint::new(
                        operation,
                        $handler,
                        method.clone(),
                        "application/json",
                        path,
                        ApiEndpointVersions::All,
                    )
                    .visible(false)
                };
            }
            let endpoint = match variables.as_slice() {
                [] => endpoint!(method_not_allowed),
                ["namespace"] => endpoint!(method_not_allowed_in::<NamespacePath>),
                ["namespace", "name"] => endpoint!(method_not_allowed_in::<ObjectPath>),
                other => {
                    return Err(FallbackError::Variables {
                        path: path.clone(),
                        variables: other.iter().map(|v| v.to_string()).collect(),
                    })
                }
            };
            api.register(endpoint)?;
        }
    }
    Ok(())
}

/// [`method_not_allowed`] at a path with variables (which dropshot requires
/// an endpoint to declare).
async fn method_not_allowed_in<P>(
    rqctx: RequestContext<ServerState>,
    _path: Path<P>,
) -> Result<http::Response<dropshot::Body>, ApiError>
where
    P: JsonSchema + serde::de::DeserializeOwned + Send + Sync + 'static,
{
    method_not_allowed(rqctx).await
}

async fn method_not_allowed(
    rqctx: RequestContext<ServerState>,
) -> Result<http::Response<dropshot::Body>, ApiError> {
    let allow = rqctx
        .endpoint
        .operation_id
        .strip_prefix(OPERATION_PREFIX)
        .unwrap_or_default();
    let error = ApiError::method_not_allowed(rqctx.request.method().as_str());
    let body = serde_json::to_vec(&error).map_err(ApiError::internal)?;
    http::Response::builder()
        .status(http::StatusCode::METHOD_NOT_ALLOWED)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::ALLOW, allow)
        .body(dropshot::Body::from(body))
        .map_err(ApiError::internal)
}

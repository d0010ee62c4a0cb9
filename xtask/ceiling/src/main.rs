//! `bench-ceiling ADDRESS`: the least a dropshot server of the project's
//! dropshot version can do for a replace of an MXJob.
//!
//! It has one endpoint, `PUT /apis/kubeflow.org/v1/namespaces/{namespace}/mxjobs/{name}`,
//! which decodes the JSON body into a `serde_json::Value` (dropshot's own
//! `TypedBody`), changes nothing, and answers it back with 200 (dropshot's
//! `HttpResponseOk`). Nothing is stored, validated or watched, and it logs
//! at level warn, so its throughput is what HTTP, dropshot and one JSON
//! decode and encode of the body cost on this machine: `cargo xtask bench`
//! runs it beside `mxjob-server` under the same load and reports
//! mxjob-server's numbers as a fraction of it.
//!
//! The dropshot settings that matter for a replace are mxjob-server's: the
//! same body limit (3 MiB) and detached handler tasks.

use dropshot::{
    endpoint, ApiDescription, ConfigDropshot, ConfigLogging, ConfigLoggingLevel, HandlerTaskMode,
    HttpError, HttpResponseOk, Path, RequestContext, ServerBuilder, TypedBody,
};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

/// mxjob-server's request body limit.
const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

#[derive(Deserialize, JsonSchema)]
struct ObjectPath {
    #[allow(dead_code)]
    namespace: String,
    #[allow(dead_code)]
    name: String,
}

/// Answers the body it was sent.
#[endpoint {
    method = PUT,
    path = "/apis/kubeflow.org/v1/namespaces/{namespace}/mxjobs/{name}",
}]
async fn replace(
    _rqctx: RequestContext<()>,
    _path: Path<ObjectPath>,
    body: TypedBody<Value>,
) -> Result<HttpResponseOk<Value>, HttpError> {
    Ok(HttpResponseOk(body.into_inner()))
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let listen = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8081".to_string())
        .parse()
        .map_err(|e| format!("the address to listen on: {e}"))?;
    let log = ConfigLogging::StderrTerminal {
        level: ConfigLoggingLevel::Warn,
    }
    .to_logger("bench-ceiling")
    .map_err(|e| format!("starting the log: {e}"))?;
    let mut api = ApiDescription::new();
    api.register(replace).map_err(|e| e.to_string())?;
    let config = ConfigDropshot {
        bind_address: listen,
        default_request_body_max_bytes: MAX_BODY_BYTES,
        default_handler_task_mode: HandlerTaskMode::Detached,
        ..Default::default()
    };
    ServerBuilder::new(api, (), log)
        .config(config)
        .start()
        .map_err(|e| format!("starting the server on {listen}: {e}"))?
        .await
}

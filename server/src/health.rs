//! `/livez` and `/readyz`, as kube-apiserver answers them: `200 ok` when
//! every check passes; with `?verbose`, one `[+]name ok` line per check and
//! `livez check passed`; on a failure `500` with `[-]name failed: reason
//! withheld` for the failing checks (the reason goes to the server's log,
//! not to the caller) and `readyz check failed`. `?exclude=name` leaves a
//! check out. Both are open to everyone, as kube-apiserver's are to
//! `system:unauthenticated`: they say nothing about the objects.
//!
//! * **livez**: `ping` — the server answers. A store that does not answer
//!   makes the server unready, not dead: restarting it would not help.
//! * **readyz**: `ping`; `store` — the store answers a read of its newest
//!   revision within [`STORE_TIMEOUT`]; `controller-synced`, when the job
//!   controller runs — it has listed every job once (it sees each later
//!   change through its watch) and, with `--executor kubernetes`, the
//!   installation's Pods once, or another server holds the controller
//!   lease and this one stands by, with nothing to sync; `shutdown` —
//!   fails once the server is stopping, so that load balancers stop
//!   sending it requests while open watches end.

use std::time::Duration;

use dropshot::RequestContext;
use mxjob_api::error::ApiError;
use slog::warn;

use crate::controller::lease::LEASE_KEY;
use crate::metrics::ControllerMetrics;
use crate::server::ServerState;

/// How long the store may take to answer the readiness check.
pub const STORE_TIMEOUT: Duration = Duration::from_secs(5);

/// What the readiness checks need beyond the registry.
#[derive(Clone, Debug, Default)]
pub struct Health {
    /// The controller's identity in the lease and its sync flag, when one runs.
    controller: Option<(String, ControllerMetrics)>,
}

impl Health {
    pub fn new(controller: Option<(String, ControllerMetrics)>) -> Self {
        Health { controller }
    }
}

/// One check's outcome: `Err` carries the reason for the log.
type Check = (&'static str, Result<(), String>);

/// The answer to `/livez`.
pub fn livez(
    rqctx: &RequestContext<ServerState>,
) -> Result<http::Response<dropshot::Body>, ApiError> {
    report(rqctx, "livez", vec![("ping", Ok(()))])
}

/// The answer to `/readyz`.
pub async fn readyz(
    rqctx: &RequestContext<ServerState>,
) -> Result<http::Response<dropshot::Body>, ApiError> {
    let state = rqctx.context();
    let store = state.registry.store();
    let mut checks: Vec<Check> = vec![("ping", Ok(()))];
    let answered = tokio::time::timeout(STORE_TIMEOUT, store.current_revision()).await;
    checks.push((
        "store",
        match answered {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(error)) => Err(error.to_string()),
            Err(_) => Err(format!("no answer within {STORE_TIMEOUT:?}")),
        },
    ));
    if let Some((identity, metrics)) = &state.health.controller {
        let synced = if metrics.is_synced() {
            Ok(())
        } else {
            standing_by(state, identity).await
        };
        checks.push(("controller-synced", synced));
    }
    let stopping = *state.stopping.borrow();
    checks.push((
        "shutdown",
        if stopping {
            Err("the server is stopping".to_string())
        } else {
            Ok(())
        },
    ));
    report(rqctx, "readyz", checks)
}

/// `Ok` when another server holds the controller lease (this one has
/// nothing to sync while it stands by).
async fn standing_by(state: &ServerState, identity: &str) -> Result<(), String> {
    let not_yet = || "the job controller has not listed the jobs yet".to_string();
    let record = state
        .registry
        .store()
        .get(LEASE_KEY)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(not_yet)?;
    let holder = serde_json::from_slice::<serde_json::Value>(&record.value)
        .ok()
        .and_then(|v| v["holderIdentity"].as_str().map(str::to_string))
        .unwrap_or_default();
    if !holder.is_empty() && holder != identity {
        Ok(())
    } else {
        Err(not_yet())
    }
}

/// The query's `verbose` flag and `exclude` names.
fn options(query: Option<&str>) -> (bool, Vec<String>) {
    let mut verbose = false;
    let mut excluded = Vec::new();
    for pair in query.unwrap_or_default().split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "verbose" => verbose = true,
            "exclude" => excluded.push(value.to_string()),
            _ => {}
        }
    }
    (verbose, excluded)
}

fn report(
    rqctx: &RequestContext<ServerState>,
    name: &str,
    checks: Vec<Check>,
) -> Result<http::Response<dropshot::Body>, ApiError> {
    let (verbose, excluded) = options(rqctx.request.uri().query());
    let mut lines = String::new();
    let mut failed = false;
    for (check, outcome) in &checks {
        if excluded.iter().any(|e| e == check) {
            lines.push_str(&format!("[+]{check} excluded: ok\n"));
            continue;
        }
        match outcome {
            Ok(()) => lines.push_str(&format!("[+]{check} ok\n")),
            Err(reason) => {
                failed = true;
                warn!(rqctx.log, "{name} check failed"; "check" => *check, "reason" => reason);
                lines.push_str(&format!("[-]{check} failed: reason withheld\n"));
            }
        }
    }
    let (code, body) = match (failed, verbose) {
        (true, _) => (
            http::StatusCode::INTERNAL_SERVER_ERROR,
            format!("{lines}{name} check failed\n"),
        ),
        (false, true) => (
            http::StatusCode::OK,
            format!("{lines}{name} check passed\n"),
        ),
        (false, false) => (http::StatusCode::OK, "ok".to_string()),
    };
    http::Response::builder()
        .status(code)
        .header(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .header("x-content-type-options", "nosniff")
        .body(dropshot::Body::from(body))
        .map_err(ApiError::internal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbose_and_exclude_are_read_as_kube_apiserver_reads_them() {
        assert_eq!(options(None), (false, vec![]));
        assert_eq!(options(Some("verbose")), (true, vec![]));
        assert_eq!(
            options(Some("verbose=1&exclude=store&exclude=shutdown")),
            (true, vec!["store".to_string(), "shutdown".to_string()])
        );
    }
}

//! The HTTP server: what the handlers share ([`ServerState`]), how the
//! server is configured ([`Settings`]), and starting and stopping it with
//! the job controller beside it. The handlers are [`crate::handlers`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use dropshot::{
    ApiDescription, ConfigDropshot, ConfigTls, HandlerTaskMode, HttpServer, ServerBuilder,
};
use mxjob_api::api::mxjob_api_mod;
use mxjob_api::wire::{BodyLimits, BODY_BYTES_IN_FLIGHT, BODY_TIMEOUT, MAX_BODY_BYTES};
use slog::{o, Logger};

use crate::auth::Auth;
use crate::controller::{Controller, ControllerSettings};
use crate::edge::Gate;
use crate::handlers::MxjobServer;
use crate::health::Health;
use crate::metrics::Metrics;
use crate::registry::Registry;
use crate::store::sqlite::SqliteStore;

/// What every handler shares.
pub struct ServerState {
    pub registry: Registry,
    pub auth: Auth,
    /// The checks every request passes first.
    pub gate: Gate,
    /// How request bodies are received: their deadline and byte budget.
    pub body_limits: BodyLimits,
    /// Where audit lines go.
    pub audit: Logger,
    /// Becomes `true` when the server shuts down; open watches end then,
    /// instead of holding the shutdown up until they time out.
    pub stopping: tokio::sync::watch::Receiver<bool>,
    /// The page `/docs` serves instead of the compiled-in one.
    pub docs_file: Option<PathBuf>,
    /// Where replica logs are read (the executor's).
    pub replica_logs: crate::controller::logs::LogSource,
    /// What `/metrics` exposes.
    pub metrics: Metrics,
    /// What `/readyz` checks beyond the store.
    pub health: Health,
    /// The store `/backup` copies, when it is SQLite.
    pub backup: Option<Arc<SqliteStore>>,
}

/// How the server runs, beyond its store.
#[derive(Clone, Debug)]
pub struct Settings {
    pub listen: SocketAddr,
    /// An HTML page `/docs` serves instead of `openapi/mxjob.html`.
    pub docs_file: Option<PathBuf>,
    /// Authentication, authorization and per-user limits.
    pub auth: Auth,
    /// PEM certificate chain and private key, to serve HTTPS.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// The largest request body, in bytes.
    pub max_body_bytes: usize,
    /// How long a request body may take to arrive.
    pub body_timeout: Duration,
    /// The bytes all request bodies being received may hold together.
    pub body_bytes_in_flight: usize,
    /// Host names anonymous callers may use beyond addresses and
    /// loopback names (see [`Gate`]).
    pub allowed_hosts: Vec<String>,
    /// The job controller; `None` (the default here) runs none.
    pub controller: Option<ControllerSettings>,
    /// Where requests, the store (when it was wrapped in
    /// [`MeteredStore`](crate::store::metered::MeteredStore) with them) and
    /// the controller are counted.
    pub metrics: Metrics,
    /// The SQLite store, for `/backup` (`None`: `/backup` answers 404).
    pub backup: Option<Arc<SqliteStore>>,
}

impl Settings {
    pub fn new(listen: SocketAddr) -> Self {
        Settings {
            listen,
            docs_file: None,
            auth: Auth::default(),
            tls: None,
            max_body_bytes: MAX_BODY_BYTES,
            body_timeout: BODY_TIMEOUT,
            body_bytes_in_flight: BODY_BYTES_IN_FLIGHT,
            allowed_hosts: Vec::new(),
            controller: None,
            metrics: Metrics::new(),
            backup: None,
        }
    }
}

/// Why the server did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("describing the API: {0}")]
    Api(#[from] dropshot::ApiDescriptionBuildErrors),
    #[error("describing the API: {0}")]
    Document(#[from] mxjob_api::openapi::DocumentError),
    #[error("adding the 405 answers: {0}")]
    Fallback(#[from] crate::fallback::FallbackError),
    #[error("starting the HTTP server on {listen}: {source}")]
    Http {
        listen: SocketAddr,
        source: dropshot::BuildError,
    },
}

/// Why the server did not stop cleanly (dropshot's words).
#[derive(Debug, thiserror::Error)]
#[error("stopping the HTTP server: {0}")]
pub struct StopError(String);

/// The API with the server's handlers, and a 405 `Status` for every
/// method a path lacks ([`fallback`](crate::fallback)).
pub fn api() -> Result<ApiDescription<ServerState>, StartError> {
    let mut api = mxjob_api_mod::api_description::<MxjobServer>()?;
    let routes = crate::fallback::routes(&mxjob_api::openapi::document()?);
    crate::fallback::register(&mut api, &routes)?;
    Ok(api)
}

/// A running server.
pub struct Server {
    http: HttpServer<ServerState>,
    stopping: tokio::sync::watch::Sender<bool>,
    controller: Option<Controller>,
}

impl Server {
    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.http.local_addr()
    }

    /// Ends open watches, stops the controller (and the processes it
    /// runs), then waits for the other requests to finish.
    pub async fn close(self) -> Result<(), StopError> {
        self.stopping.send_replace(true);
        if let Some(controller) = self.controller {
            controller.stop().await;
        }
        self.http.close().await.map_err(StopError)
    }
}

/// Starts serving `registry` on `listen`.
pub fn start(registry: Registry, listen: SocketAddr, log: &Logger) -> Result<Server, StartError> {
    start_with(registry, Settings::new(listen), log)
}

/// Starts serving `registry` as `settings` say.
pub fn start_with(
    registry: Registry,
    settings: Settings,
    log: &Logger,
) -> Result<Server, StartError> {
    // No object may be larger than a body may be.
    let registry = registry.with_max_object_bytes(settings.max_body_bytes);
    let listen = settings.listen;
    let config = ConfigDropshot {
        bind_address: listen,
        default_request_body_max_bytes: settings.max_body_bytes,
        // A client that hangs up must not abort a write half-way.
        default_handler_task_mode: HandlerTaskMode::Detached,
        ..Default::default()
    };
    let tls = settings.tls.map(|(cert_file, key_file)| ConfigTls::AsFile {
        cert_file,
        key_file,
    });
    let (stopping, stopping_receiver) = tokio::sync::watch::channel(false);
    let replica_logs = settings
        .controller
        .as_ref()
        .map(|c| c.log_source())
        .unwrap_or_default();
    let controller_registry = registry.clone();
    let metrics = settings.metrics;
    metrics.count_watches(&settings.auth);
    let controller_settings = settings.controller.map(|mut c| {
        c.metrics = metrics.controller();
        c
    });
    let health = Health::new(
        controller_settings
            .as_ref()
            .map(|c| (c.identity.clone(), c.metrics.clone())),
    );
    let gate = Gate::new(!settings.auth.requires_tokens(), &settings.allowed_hosts);
    let state = ServerState {
        replica_logs,
        registry,
        gate,
        body_limits: BodyLimits::new(settings.body_timeout, settings.body_bytes_in_flight),
        auth: settings.auth,
        audit: log.new(o!("log" => "audit")),
        stopping: stopping_receiver,
        docs_file: settings.docs_file,
        metrics: metrics.clone(),
        health,
        backup: settings.backup,
    };
    let http = ServerBuilder::new(api()?, state, metrics.request_logger(log))
        .config(config)
        .tls(tls)
        .start()
        .map_err(|source| StartError::Http { listen, source })?;
    let controller = controller_settings.map(|c| {
        Controller::spawn(
            controller_registry,
            c,
            log.new(o!("component" => "controller")),
        )
    });
    Ok(Server {
        http,
        stopping,
        controller,
    })
}

//! Shared harness of the integration tests: an `mxjob-server` running in
//! this process on an ephemeral loopback port, over a real store, reached
//! through the generated client (and raw HTTP where the client cannot say
//! what a test needs to send). [`cluster`] starts a real Kubernetes API
//! (kube-apiserver over etcd) for the tests that need one.

use std::sync::Arc;

pub mod cluster;
pub mod kubectl;

use mxjob_client::types;
use mxjob_server::registry::Registry;
use mxjob_server::server::{Server, Settings};
use mxjob_server::store::memory::MemoryStore;
use mxjob_server::store::Store;
use serde_json::Value;

/// The seed: CCI's example body for "Replace MXJob".
pub const SEED: &str = mxjob_api::openapi::REPLACE_EXAMPLE;

/// A running server.
pub struct TestServer {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The generated client.
    pub client: mxjob_client::Client,
    /// A plain HTTP client for raw requests.
    pub http: reqwest::Client,
    server: Server,
}

impl TestServer {
    /// Starts a server over a fresh in-memory store.
    pub async fn start() -> Self {
        Self::start_with(Arc::new(MemoryStore::new())).await
    }

    /// Starts a server over `store`.
    pub async fn start_with(store: Arc<dyn Store>) -> Self {
        Self::start_configured(store, Settings::new(loopback()), discard()).await
    }

    /// Starts a server over `store` with `settings` (its `listen` is
    /// replaced by an ephemeral loopback port), logging to `log`.
    pub async fn start_configured(
        store: Arc<dyn Store>,
        mut settings: Settings,
        log: slog::Logger,
    ) -> Self {
        settings.listen = loopback();
        let server = mxjob_server::server::start_with(Registry::new(store), settings, &log)
            .expect("server starts");
        let url = format!("http://{}", server.local_addr());
        TestServer {
            client: mxjob_client::Client::new(&url),
            http: reqwest::Client::new(),
            url,
            server,
        }
    }

    /// The URL of a namespace's collection.
    pub fn collection_url(&self, namespace: &str) -> String {
        format!(
            "{}/apis/kubeflow.org/v1/namespaces/{namespace}/mxjobs",
            self.url
        )
    }

    /// The URL of one object.
    pub fn object_url(&self, namespace: &str, name: &str) -> String {
        format!("{}/{name}", self.collection_url(namespace))
    }

    /// One object as JSON, read over plain HTTP.
    pub async fn read_value(&self, namespace: &str, name: &str) -> Value {
        self.http
            .get(self.object_url(namespace, name))
            .send()
            .await
            .expect("read")
            .json()
            .await
            .expect("json")
    }

    /// Stops the server.
    pub async fn stop(self) {
        self.server.close().await.expect("server stops");
    }
}

fn loopback() -> std::net::SocketAddr {
    "127.0.0.1:0".parse().expect("loopback address")
}

/// A logger that drops everything.
pub fn discard() -> slog::Logger {
    slog::Logger::root(slog::Discard, slog::o!())
}

/// The seed's body as JSON, and a job made from it (shared with the
/// server's own tests).
pub use mxjob_test_support::{new_job_value, seed_value};

/// [`new_job_value`] as the generated type.
pub fn new_job(namespace: &str, name: &str) -> types::MxJob {
    serde_json::from_value(new_job_value(namespace, name)).expect("the seed is an MXJob")
}

/// A job as a JSON value (for editing in tests).
pub fn to_value(job: &types::MxJob) -> Value {
    serde_json::to_value(job).expect("jobs serialize")
}

/// A JSON value as the generated job type.
pub fn from_value(value: Value) -> types::MxJob {
    serde_json::from_value(value).expect("value is an MXJob")
}

/// The `Status` of a failed call, with its HTTP code.
pub fn status_of<T>(
    result: Result<mxjob_client::ResponseValue<T>, mxjob_client::Error<types::Status>>,
) -> (u16, types::Status) {
    match result {
        Err(mxjob_client::Error::ErrorResponse(response)) => {
            let code = response.status().as_u16();
            (code, response.into_inner())
        }
        Err(other) => panic!("expected an error Status, got {other}"),
        Ok(response) => panic!("expected an error Status, got {}", response.status()),
    }
}

/// The resourceVersion of a job.
pub fn resource_version(job: &types::MxJob) -> String {
    job.metadata
        .resource_version
        .clone()
        .expect("a stored job has a resourceVersion")
}

/// A client program installed by `cargo xtask tools` under
/// `target/acceptance/`. Panics with the fix when it is missing: these
/// tests must fail, not pass quietly, on a machine without the tools.
pub fn acceptance_tool(relative: &str) -> std::path::PathBuf {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/acceptance")
        .join(relative);
    assert!(
        path.exists(),
        "{} is missing: run `cargo xtask tools` (or `cargo xtask test`) first",
        path.display()
    );
    path
}

/// A self-signed certificate for `localhost` written into `dir`: the
/// certificate and key files `Settings::tls` takes, and the certificate's
/// PEM for clients to trust.
pub fn self_signed_localhost(
    dir: &std::path::Path,
) -> (std::path::PathBuf, std::path::PathBuf, String) {
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("certificate");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).expect("cert");
    std::fs::write(&key, certified.signing_key.serialize_pem()).expect("key");
    (cert, key, certified.cert.pem())
}

//! What `GET /metrics` exposes, in the Prometheus text format (version
//! 0.0.4, what kube-apiserver answers by default; OpenMetrics when the
//! `Accept` header asks for it), through the `prometheus-client` crate.
//!
//! | metric | type | labels | what |
//! |---|---|---|---|
//! | `apiserver_request_total` | counter | `verb`, `dry_run`, `group`, `version`, `resource`, `subresource`, `scope`, `component`, `code` | requests answered |
//! | `apiserver_request_duration_seconds` | histogram | the same but `code` | time to the response's head (for a watch: until its stream starts) |
//! | `apiserver_longrunning_requests` | gauge | `verb="WATCH"`, `group`, `version`, `resource`, `component` | open watches |
//! | `mxjob_storage_request_duration_seconds` | histogram | `backend`, `operation` | each call into the store |
//! | `mxjob_sqlite_commit_writes` | histogram | | writes made durable by one commit |
//! | `mxjob_sqlite_commit_duration_seconds` | histogram | | one `COMMIT`, which writes the write-ahead log and fsyncs it |
//! | `workqueue_depth` | gauge | `name="mxjob"` | changes the job controller has handed to job tasks that have not taken them yet |
//! | `controller_runtime_reconcile_time_seconds` | histogram | `controller="mxjob"` | one reconcile of one job |
//! | `mxjob_controller_job_tasks` | gauge | | job tasks running (a parked job has none; see [`crate::controller`]) |
//! | `mxjob_jobs` | gauge | `condition` | jobs by their newest condition (`None` before the first) |
//!
//! The label names and values of the request metrics are kube-apiserver's:
//! verbs are `GET`, `LIST`, `WATCH`, `POST`, `PUT`, `PATCH`, `DELETE`,
//! `DELETECOLLECTION` for resources and the HTTP method for other paths;
//! `scope` is `resource`, `namespace` or `cluster`; `dry_run` is `All` for
//! a dry run. Every label takes values from a fixed set (names and
//! namespaces are never labels), so the number of series is bounded
//! whatever clients send.
//!
//! **Where requests are counted.** Dropshot has no middleware, but it
//! logs one `request completed` record per request with the method, the
//! URI, the status code and the latency it measured — including the 404s
//! and 405s its router answers before any handler runs. The server hands
//! dropshot a logger whose first drain ([`RequestTap`]) reads those four
//! values from that record, counts it, and passes every record on
//! unchanged. So the handlers carry no instrumentation, and the cost per
//! request is reading four values of a record that is built anyway, two
//! label lookups under `prometheus-client`'s read locks, and atomic adds.
//!
//! **Jobs by condition** is kept by the job controller, which sees every
//! job's every version through its watch anyway: one map entry per job,
//! changed when a job's newest condition changes. Without a controller
//! (`--controller=false`) it stays empty.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use mxjob_api::model::MXJob;

/// The `component` label of the request metrics, as kube-apiserver sets it.
const COMPONENT: &str = "apiserver";

/// kube-apiserver's buckets of `apiserver_request_duration_seconds`.
const REQUEST_BUCKETS: [f64; 23] = [
    0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0,
    10.0, 15.0, 20.0, 30.0, 45.0, 60.0,
];

/// The media type of the Prometheus text format.
pub const TEXT_CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// The media type of OpenMetrics text.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

fn request_histogram() -> Histogram {
    Histogram::new(REQUEST_BUCKETS)
}

/// 0.5 ms to about 16 s: a store call, a commit, a reconcile.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// The labels of `apiserver_request_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    verb: &'static str,
    dry_run: &'static str,
    group: &'static str,
    version: &'static str,
    resource: &'static str,
    subresource: &'static str,
    scope: &'static str,
    component: &'static str,
    code: u16,
}

/// The labels of `apiserver_request_duration_seconds`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DurationLabels {
    verb: &'static str,
    dry_run: &'static str,
    group: &'static str,
    version: &'static str,
    resource: &'static str,
    subresource: &'static str,
    scope: &'static str,
    component: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StorageLabels {
    backend: &'static str,
    operation: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConditionLabels {
    condition: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueLabels {
    name: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ControllerLabels {
    controller: &'static str,
}

/// The request metrics.
#[derive(Clone, Debug)]
struct RequestMetrics {
    total: Family<RequestLabels, prometheus_client::metrics::counter::Counter>,
    duration: Family<DurationLabels, Histogram, fn() -> Histogram>,
}

impl RequestMetrics {
    fn record(&self, method: &str, uri: &str, code: u16, latency: Duration) {
        let request = classify(method, uri);
        self.total
            .get_or_create(&RequestLabels {
                verb: request.verb,
                dry_run: request.dry_run,
                group: request.group,
                version: request.version,
                resource: request.resource,
                subresource: request.subresource,
                scope: request.scope,
                component: COMPONENT,
                code,
            })
            .inc();
        self.duration
            .get_or_create(&DurationLabels {
                verb: request.verb,
                dry_run: request.dry_run,
                group: request.group,
                version: request.version,
                resource: request.resource,
                subresource: request.subresource,
                scope: request.scope,
                component: COMPONENT,
            })
            .observe(latency.as_secs_f64());
    }
}

/// What a request was, in the request metrics' labels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestKind {
    pub verb: &'static str,
    pub dry_run: &'static str,
    pub group: &'static str,
    pub version: &'static str,
    pub resource: &'static str,
    pub subresource: &'static str,
    pub scope: &'static str,
}

/// The paths outside the resources that are labelled by their path (as
/// kube-apiserver labels `/healthz` and its like); any other is `""`.
const PATHS: &[&str] = &[
    "/api",
    "/api/v1",
    "/apis",
    "/apis/kubeflow.org",
    "/apis/kubeflow.org/v1",
    "/apis/authorization.k8s.io",
    "/apis/authorization.k8s.io/v1",
    "/version",
    "/openapi.json",
    "/openapi/v2",
    "/openapi/v3",
    "/openapi/v3/apis/kubeflow.org/v1",
    "/docs",
    "/metrics",
    "/livez",
    "/readyz",
    "/backup",
];

/// The HTTP methods that are their own verb label; any other is `other`.
const METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE",
];

fn method_label(method: &str) -> &'static str {
    METHODS
        .iter()
        .find(|m| **m == method)
        .copied()
        .unwrap_or("other")
}

/// Whether the query asks for `watch` (any first value but `false`/`0`,
/// as the handlers decide) and for a dry run.
fn query_flags(query: &str) -> (bool, bool) {
    let (mut watch, mut dry_run) = (None, false);
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "watch" if watch.is_none() => {
                watch = Some(!value.eq_ignore_ascii_case("false") && value != "0")
            }
            "dryRun" if value == "All" => dry_run = true,
            _ => {}
        }
    }
    (watch.unwrap_or(false), dry_run)
}

/// The labels of a request, from its method and URI.
pub fn classify(method: &str, uri: &str) -> RequestKind {
    let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
    let path = path.trim_end_matches('/');
    let (watch_query, dry_run) = query_flags(query);
    let dry_run = if dry_run { "All" } else { "" };
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let resource = |verb, group, version, resource, subresource, scope| RequestKind {
        verb,
        dry_run,
        group,
        version,
        resource,
        subresource,
        scope,
    };
    let read = |collection: bool| match (method, collection) {
        ("GET", true) if watch_query => "WATCH",
        ("GET", true) => "LIST",
        ("GET", false) => "GET",
        ("DELETE", true) => "DELETECOLLECTION",
        (other, _) => method_label(other),
    };
    let kubeflow = |verb, subresource, scope| {
        resource(verb, "kubeflow.org", "v1", "mxjobs", subresource, scope)
    };
    match segments.as_slice() {
        ["apis", "kubeflow.org", "v1", "namespaces", _, "mxjobs"] => {
            kubeflow(read(true), "", "namespace")
        }
        ["apis", "kubeflow.org", "v1", "namespaces", _, "mxjobs", _] => {
            kubeflow(read(false), "", "resource")
        }
        ["apis", "kubeflow.org", "v1", "namespaces", _, "mxjobs", _, "status"] => {
            kubeflow(read(false), "status", "resource")
        }
        ["apis", "kubeflow.org", "v1", "namespaces", _, "mxjobs", _, "log"] => {
            kubeflow(read(false), "log", "resource")
        }
        ["apis", "kubeflow.org", "v1", "mxjobs"] => kubeflow(read(true), "", "cluster"),
        ["apis", "kubeflow.org", "v1", "watch", "namespaces", _, "mxjobs"] => {
            kubeflow(watch_verb(method), "", "namespace")
        }
        ["apis", "kubeflow.org", "v1", "watch", "mxjobs"] => {
            kubeflow(watch_verb(method), "", "cluster")
        }
        ["api", "v1", "namespaces"] => resource(read(true), "", "v1", "namespaces", "", "cluster"),
        ["api", "v1", "namespaces", _] => {
            resource(read(false), "", "v1", "namespaces", "", "resource")
        }
        ["apis", "authorization.k8s.io", "v1", "selfsubjectaccessreviews"] => resource(
            method_label(method),
            "authorization.k8s.io",
            "v1",
            "selfsubjectaccessreviews",
            "",
            "cluster",
        ),
        _ => {
            let path = if path.is_empty() { "/" } else { path };
            let known = PATHS.iter().find(|p| **p == path).copied().unwrap_or("");
            resource(method_label(method), "", "", "", known, "")
        }
    }
}

fn watch_verb(method: &str) -> &'static str {
    if method == "GET" {
        "WATCH"
    } else {
        method_label(method)
    }
}

/// The SQLite store's commits.
#[derive(Clone, Debug)]
pub struct CommitMetrics {
    writes: Histogram,
    duration: Histogram,
}

impl CommitMetrics {
    /// One commit that made `writes` writes durable in `took`.
    pub fn committed(&self, writes: usize, took: Duration) {
        self.writes.observe(writes as f64);
        self.duration.observe(took.as_secs_f64());
    }
}

/// What the job controller reports; see [`crate::controller`]. A default
/// one records into metrics nobody exposes.
#[derive(Clone, Debug)]
pub struct ControllerMetrics {
    queue: Gauge,
    reconcile: Histogram,
    tasks: Gauge,
    jobs: Family<ConditionLabels, Gauge>,
    conditions: Arc<Mutex<HashMap<(String, String), &'static str>>>,
    synced: Arc<AtomicBool>,
}

impl Default for ControllerMetrics {
    fn default() -> Self {
        ControllerMetrics {
            queue: Gauge::default(),
            reconcile: latency_histogram(),
            tasks: Gauge::default(),
            jobs: Family::default(),
            conditions: Arc::default(),
            synced: Arc::default(),
        }
    }
}

/// Counts a running job task in `mxjob_controller_job_tasks` while it lives.
#[derive(Debug)]
pub struct TaskGuard(Gauge);

impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The condition label of a job: its newest condition's type, as
/// `kubectl get mxjobs` shows it in the State column.
fn condition_of(job: &MXJob) -> &'static str {
    use mxjob_api::model::JobConditionType as C;
    match job.status.conditions.last().map(|c| &c.type_) {
        None => "None",
        Some(C::Created) => "Created",
        Some(C::Running) => "Running",
        Some(C::Restarting) => "Restarting",
        Some(C::Succeeded) => "Succeeded",
        Some(C::Failed) => "Failed",
        Some(C::Unsupported(_)) => "Unsupported",
    }
}

impl ControllerMetrics {
    /// A change was handed to a job task.
    pub fn queued(&self) {
        self.queue.inc();
    }

    /// A job task took a change.
    pub fn dequeued(&self) {
        self.queue.dec();
    }

    /// One reconcile took `took`.
    pub fn reconciled(&self, took: Duration) {
        self.reconcile.observe(took.as_secs_f64());
    }

    /// A job task started; it counts until the guard is dropped.
    pub fn task_started(&self) -> TaskGuard {
        self.tasks.inc();
        TaskGuard(self.tasks.clone())
    }

    /// The controller saw this version of a job.
    pub fn observed(&self, job: &MXJob) {
        let key = (
            job.metadata.namespace.clone().unwrap_or_default(),
            job.metadata.name.clone().unwrap_or_default(),
        );
        let condition = condition_of(job);
        let mut conditions = crate::store::lock(&self.conditions);
        let before = conditions.insert(key, condition);
        if before != Some(condition) {
            if let Some(before) = before {
                self.jobs
                    .get_or_create(&ConditionLabels { condition: before })
                    .dec();
            }
            self.jobs
                .get_or_create(&ConditionLabels { condition })
                .inc();
        }
    }

    /// The job `namespace/name` is gone.
    pub fn forgotten(&self, namespace: &str, name: &str) {
        let mut conditions = crate::store::lock(&self.conditions);
        if let Some(before) = conditions.remove(&(namespace.to_string(), name.to_string())) {
            self.jobs
                .get_or_create(&ConditionLabels { condition: before })
                .dec();
        }
    }

    /// The controller has listed every job once (since it last took the lease).
    pub fn synced(&self) {
        self.synced.store(true, Ordering::Release);
    }

    /// Whether [`synced`](Self::synced) has been called.
    pub fn is_synced(&self) -> bool {
        self.synced.load(Ordering::Acquire)
    }
}

/// Counts what a scrape asks for at scrape time: open watches.
struct Watches(crate::auth::Auth);

impl fmt::Debug for Watches {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Watches")
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LongRunningLabels {
    verb: &'static str,
    group: &'static str,
    version: &'static str,
    resource: &'static str,
    component: &'static str,
}

impl Collector for Watches {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let open = i64::try_from(self.0.open_watches()).unwrap_or(i64::MAX);
        let gauge = ConstGauge::new(open);
        let mut family = encoder.encode_descriptor(
            "apiserver_longrunning_requests",
            "Gauge of all active long-running apiserver requests (open watches of MXJobs).",
            None,
            MetricType::Gauge,
        )?;
        let labels = LongRunningLabels {
            verb: "WATCH",
            group: "kubeflow.org",
            version: "v1",
            resource: "mxjobs",
            component: COMPONENT,
        };
        gauge.encode(family.encode_family(&labels)?)
    }
}

/// The metrics of one server; cheap to clone.
#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

struct Inner {
    registry: Mutex<Registry>,
    requests: RequestMetrics,
    storage: Family<StorageLabels, Histogram, fn() -> Histogram>,
    commits: CommitMetrics,
    controller: ControllerMetrics,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let requests = RequestMetrics {
            total: Family::default(),
            duration: Family::new_with_constructor(request_histogram),
        };
        registry.register(
            "apiserver_request",
            "Counter of apiserver requests broken out for each verb, dry run value, group, \
             version, resource, scope, component, and HTTP response code",
            requests.total.clone(),
        );
        registry.register(
            "apiserver_request_duration_seconds",
            "Response latency distribution in seconds for each verb, dry run value, group, \
             version, resource, subresource, scope and component",
            requests.duration.clone(),
        );
        let storage: Family<StorageLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(latency_histogram);
        registry.register(
            "mxjob_storage_request_duration_seconds",
            "Latency of each call into the store, by backend and operation",
            storage.clone(),
        );
        let commits = CommitMetrics {
            writes: Histogram::new(exponential_buckets(1.0, 2.0, 10)),
            duration: latency_histogram(),
        };
        registry.register(
            "mxjob_sqlite_commit_writes",
            "Writes made durable by one SQLite commit",
            commits.writes.clone(),
        );
        registry.register(
            "mxjob_sqlite_commit_duration_seconds",
            "Duration of one SQLite COMMIT, which appends the transaction to the write-ahead \
             log and fsyncs it",
            commits.duration.clone(),
        );
        let controller = ControllerMetrics::default();
        let queue: Family<QueueLabels, Gauge> = Family::default();
        registry.register(
            "workqueue_depth",
            "Changes the job controller has handed to job tasks that have not taken them yet",
            queue.clone(),
        );
        let reconcile: Family<ControllerLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(latency_histogram);
        registry.register(
            "controller_runtime_reconcile_time_seconds",
            "Length of time per reconciliation of one MXJob",
            reconcile.clone(),
        );
        registry.register(
            "mxjob_controller_job_tasks",
            "Job tasks the job controller runs (a job with nothing due under --executor none \
             has none)",
            controller.tasks.clone(),
        );
        registry.register(
            "mxjob_jobs",
            "MXJobs by their newest condition (None before the first), as the job controller \
             sees them",
            controller.jobs.clone(),
        );
        // The controller's queue and histogram, under their labels.
        let controller = ControllerMetrics {
            queue: queue.get_or_create_owned(&QueueLabels { name: "mxjob" }),
            reconcile: reconcile.get_or_create_owned(&ControllerLabels {
                controller: "mxjob",
            }),
            ..controller
        };
        Metrics(Arc::new(Inner {
            registry: Mutex::new(registry),
            requests,
            storage,
            commits,
            controller,
        }))
    }

    /// Counts open watches, read from `auth` at each scrape.
    pub fn count_watches(&self, auth: &crate::auth::Auth) {
        crate::store::lock(&self.0.registry).register_collector(Box::new(Watches(auth.clone())));
    }

    /// The logger to hand dropshot: every record goes on to `log`, and
    /// each request's `request completed` record is counted first.
    pub fn request_logger(&self, log: &slog::Logger) -> slog::Logger {
        slog::Logger::root(
            RequestTap {
                next: log.clone(),
                requests: std::panic::AssertUnwindSafe(self.0.requests.clone()),
            },
            slog::o!(),
        )
    }

    /// The histogram a store call records into.
    pub fn storage(&self, backend: &'static str, operation: &'static str) -> Histogram {
        self.0
            .storage
            .get_or_create_owned(&StorageLabels { backend, operation })
    }

    /// What the SQLite store records its commits into.
    pub fn commits(&self) -> CommitMetrics {
        self.0.commits.clone()
    }

    /// What the job controller records into.
    pub fn controller(&self) -> ControllerMetrics {
        self.0.controller.clone()
    }

    /// Every metric in the Prometheus text format, or OpenMetrics.
    pub fn encode(&self, openmetrics: bool) -> Result<String, fmt::Error> {
        let registry = crate::store::lock(&self.0.registry);
        let mut text = String::new();
        if openmetrics {
            prometheus_client::encoding::text::encode(&mut text, &registry)?;
        } else {
            prometheus_client::encoding::prometheus_text::encode(&mut text, &registry)?;
        }
        Ok(text)
    }
}

/// The values of a `request completed` record that the metrics need.
#[derive(Default)]
struct Completed {
    method: Option<String>,
    uri: Option<String>,
    code: Option<u16>,
    latency_us: Option<u128>,
}

impl slog::Serializer for Completed {
    fn emit_arguments(&mut self, _: slog::Key, _: &fmt::Arguments) -> slog::Result {
        Ok(())
    }

    fn emit_str(&mut self, key: slog::Key, value: &str) -> slog::Result {
        match AsRef::<str>::as_ref(&key) {
            "method" => self.method = Some(value.to_string()),
            "uri" => self.uri = Some(value.to_string()),
            _ => {}
        }
        Ok(())
    }

    fn emit_u16(&mut self, key: slog::Key, value: u16) -> slog::Result {
        if AsRef::<str>::as_ref(&key) == "response_code" {
            self.code = Some(value);
        }
        Ok(())
    }

    fn emit_u128(&mut self, key: slog::Key, value: u128) -> slog::Result {
        if AsRef::<str>::as_ref(&key) == "latency_us" {
            self.latency_us = Some(value);
        }
        Ok(())
    }
}

/// The drain that counts requests; see the module documentation.
struct RequestTap {
    next: slog::Logger,
    /// Counters and histograms are atomics and locks that a panic cannot
    /// leave half-updated, so a logger holding them may cross
    /// `catch_unwind` (which slog asks of every drain).
    requests: std::panic::AssertUnwindSafe<RequestMetrics>,
}

impl slog::Drain for RequestTap {
    type Ok = ();
    type Err = slog::Never;

    fn log(
        &self,
        record: &slog::Record<'_>,
        values: &slog::OwnedKVList,
    ) -> Result<(), slog::Never> {
        if record.msg().as_str() == Some("request completed") {
            let mut completed = Completed::default();
            let _ = slog::KV::serialize(&record.kv(), record, &mut completed);
            let _ = slog::KV::serialize(values, record, &mut completed);
            if let Completed {
                method: Some(method),
                uri: Some(uri),
                code: Some(code),
                latency_us: Some(latency),
            } = completed
            {
                let latency = Duration::from_micros(u64::try_from(latency).unwrap_or(u64::MAX));
                self.requests.record(&method, &uri, code, latency);
            }
        }
        slog::Drain::log(&self.next, record, values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_classified_as_kube_apiserver_labels_them() {
        let ns = "/apis/kubeflow.org/v1/namespaces/a/mxjobs";
        let cases = [
            ("GET", ns.to_string(), ("LIST", "mxjobs", "", "namespace")),
            (
                "GET",
                format!("{ns}?watch=true"),
                ("WATCH", "mxjobs", "", "namespace"),
            ),
            (
                "GET",
                format!("{ns}?watch=false"),
                ("LIST", "mxjobs", "", "namespace"),
            ),
            ("POST", ns.to_string(), ("POST", "mxjobs", "", "namespace")),
            (
                "DELETE",
                ns.to_string(),
                ("DELETECOLLECTION", "mxjobs", "", "namespace"),
            ),
            ("GET", format!("{ns}/x"), ("GET", "mxjobs", "", "resource")),
            (
                "PUT",
                format!("{ns}/x/status"),
                ("PUT", "mxjobs", "status", "resource"),
            ),
            (
                "PATCH",
                format!("{ns}/x"),
                ("PATCH", "mxjobs", "", "resource"),
            ),
            (
                "DELETE",
                format!("{ns}/x"),
                ("DELETE", "mxjobs", "", "resource"),
            ),
            (
                "GET",
                format!("{ns}/x/log"),
                ("GET", "mxjobs", "log", "resource"),
            ),
            (
                "GET",
                "/apis/kubeflow.org/v1/mxjobs".into(),
                ("LIST", "mxjobs", "", "cluster"),
            ),
            (
                "GET",
                "/apis/kubeflow.org/v1/watch/namespaces/a/mxjobs".into(),
                ("WATCH", "mxjobs", "", "namespace"),
            ),
            (
                "GET",
                "/api/v1/namespaces/a".into(),
                ("GET", "namespaces", "", "resource"),
            ),
            ("GET", "/metrics".into(), ("GET", "", "/metrics", "")),
            ("GET", "/nothing/here".into(), ("GET", "", "", "")),
            ("BREW", "/livez".into(), ("other", "", "/livez", "")),
        ];
        for (method, uri, (verb, resource, subresource, scope)) in cases {
            let kind = classify(method, &uri);
            assert_eq!(
                (kind.verb, kind.resource, kind.subresource, kind.scope),
                (verb, resource, subresource, scope),
                "{method} {uri}"
            );
        }
        assert_eq!(classify("POST", &format!("{ns}?dryRun=All")).dry_run, "All");
        assert_eq!(classify("POST", ns).dry_run, "");
    }

    #[test]
    fn completed_requests_are_counted_from_the_log_record() {
        let metrics = Metrics::new();
        let log = metrics.request_logger(&slog::Logger::root(slog::Discard, slog::o!()));
        let request_log = log.new(slog::o!(
            "method" => "GET".to_string(),
            "uri" => "/apis/kubeflow.org/v1/namespaces/a/mxjobs/x".to_string(),
        ));
        slog::info!(request_log, "request completed";
            "response_code" => 404u16, "latency_us" => 1500u128);
        slog::info!(request_log, "something else"; "response_code" => 200u16);
        let text = metrics.encode(false).expect("encodes");
        let line = text
            .lines()
            .find(|l| l.starts_with("apiserver_request_total{"))
            .expect("a request counted");
        assert!(line.contains("verb=\"GET\""), "{line}");
        assert!(line.contains("code=\"404\""), "{line}");
        assert!(line.ends_with(" 1"), "{line}");
        assert!(text.contains("apiserver_request_duration_seconds_count{"));
    }

    #[test]
    fn jobs_are_counted_by_their_newest_condition() {
        let controller = ControllerMetrics::default();
        let mut job: MXJob = serde_json::from_str(mxjob_api::openapi::REPLACE_EXAMPLE)
            .expect("the seed is an MXJob");
        let seed_condition = condition_of(&job);
        controller.observed(&job);
        controller.observed(&job);
        let count = |c: &'static str| {
            controller
                .jobs
                .get_or_create(&ConditionLabels { condition: c })
                .get()
        };
        assert_eq!(count(seed_condition), 1);
        job.status.conditions.clear();
        controller.observed(&job);
        assert_eq!((count(seed_condition), count("None")), (0, 1));
        controller.forgotten(
            job.metadata.namespace.as_deref().unwrap_or_default(),
            job.metadata.name.as_deref().unwrap_or_default(),
        );
        assert_eq!(count("None"), 0);
    }
}

//! `mxjob-server`: serves the MXJob API.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use mxjob_server::auth::{Auth, Policy, TokenFile};
use mxjob_server::controller::kubernetes::KubernetesSettings;
use mxjob_server::controller::{ControllerSettings, ExecutorKind};
use mxjob_server::logging::{Format, Lines};
use mxjob_server::registry::Registry;
use mxjob_server::server::Settings;
use mxjob_server::store::memory::MemoryStore;
use mxjob_server::store::metered::MeteredStore;
use mxjob_server::store::sqlite::{SqliteOptions, SqliteStore};
use mxjob_server::store::{Durability, Store};
use slog::{info, o, Drain, Logger};

/// mimalloc instead of glibc's allocator: under concurrent requests
/// glibc's arenas contend (a fifth of a replace's CPU went to malloc and
/// free, with futex waits on their locks, in `perf` of the replace bench),
/// and replaces ran at half the rate they do with mimalloc.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (its option enum is part of its
/// stable ABI: retired options keep their numbers).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Freed memory goes back to the system within about a third of a
/// second: mimalloc purges a free range [`PURGE_DELAY_MS`] after it was
/// freed, and a thread of its own asks it every [`COLLECT_INTERVAL`] to
/// purge what is due, since mimalloc itself only looks at a later
/// allocation and an idle server would keep its peak after a burst (a
/// flood of connections, a huge list).
///
/// Not at once (a delay of 0): under load, pages emptied and filled again
/// within milliseconds were returned and faulted back each time. In `perf`
/// of the replace bench with the controller on, `madvise` and the TLB
/// shootdowns it sends the other core took 7% of the server's samples, and
/// page faults another 1.5%.
fn return_freed_memory_soon() {
    // SAFETY: sets one of mimalloc's documented options to a valid value.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) };
    let collector = std::thread::Builder::new()
        .name("mimalloc".to_string())
        .spawn(|| {
            // mimalloc collects only for a thread that has allocated.
            std::hint::black_box(Box::new(0u64));
            loop {
                std::thread::sleep(COLLECT_INTERVAL);
                // SAFETY: no arguments to uphold; purges ranges that are due.
                unsafe { libmimalloc_sys::mi_collect(false) };
            }
        });
    if let Err(error) = collector {
        eprintln!("mxjob-server: not returning freed memory while idle: {error}");
    }
}

/// How long a freed range stays mapped before it is returned.
const PURGE_DELAY_MS: std::ffi::c_long = 100;

/// How often the ranges that are due are returned.
const COLLECT_INTERVAL: Duration = Duration::from_millis(250);

#[derive(Clone, Copy, Debug, ValueEnum)]
enum StoreKind {
    /// Keep objects in `DATA_DIR/mxjob.db`; acknowledged writes survive
    /// crashes and power loss.
    Sqlite,
    /// Keep objects in memory; everything is lost when the server stops.
    Memory,
    /// Keep objects in etcd (--etcd-endpoints); several servers may share
    /// one etcd.
    #[cfg(feature = "etcd")]
    Etcd,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Terminal,
    /// Bunyan JSON, one object per line.
    Json,
}

/// Serves the Kubeflow MXJob API (kubeflow.org/v1 mxjobs).
#[derive(Debug, Parser)]
#[command(version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Subcommand>,
    #[command(flatten)]
    serve: Args,
}

#[derive(Debug, clap::Subcommand)]
enum Subcommand {
    /// Restore a backup (from `GET /backup`) into a data directory, with
    /// the server stopped: refuses a directory a server is using, and one
    /// holding a database unless --force; checks the file with
    /// `PRAGMA integrity_check` before it replaces anything.
    Restore {
        /// The backup file.
        #[arg(long)]
        from: PathBuf,
        /// The data directory to restore into (created if missing).
        #[arg(long, default_value = "./mxjob-data")]
        data_dir: PathBuf,
        /// Replace the database the directory holds.
        #[arg(long)]
        force: bool,
    },
}

/// The server's options.
#[derive(Debug, clap::Args)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Where objects are kept.
    #[arg(long, value_enum, default_value = "sqlite")]
    store: StoreKind,
    /// etcd client URLs for --store etcd, comma-separated.
    #[cfg(feature = "etcd")]
    #[arg(long, value_delimiter = ',', default_value = mxjob_server::store::etcd::DEFAULT_ENDPOINT)]
    etcd_endpoints: Vec<String>,
    /// Directory of the SQLite database (created if missing).
    #[arg(long, default_value = "./mxjob-data")]
    data_dir: PathBuf,
    /// Revisions of history always kept for lists at a resourceVersion,
    /// continue tokens and watches (older ones answer 410 Gone).
    #[arg(long, default_value_t = 1000)]
    history_revisions: u64,
    /// Bytes of history kept in memory at most: the memory store compacts
    /// earlier rather than keep more old versions; SQLite keeps this much
    /// of recent events for watchers and reads older ones from its file.
    #[arg(long, default_value_t = mxjob_server::store::DEFAULT_HISTORY_BYTES)]
    history_bytes: usize,
    /// Seconds of history always kept (SQLite only: a revision is compacted
    /// only when it is outside both this window and --history-revisions).
    #[arg(long, default_value_t = 300)]
    history_seconds: u64,
    /// Seconds between compactions of the SQLite history.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    compaction_interval_seconds: u64,
    /// Log format.
    #[arg(long, value_enum, default_value = "terminal")]
    log_format: LogFormat,
    /// Tokens that authenticate callers, one `token,user,uid,"group1,group2"`
    /// per line (kube-apiserver's format). Without it callers are anonymous.
    #[arg(long)]
    token_auth_file: Option<PathBuf>,
    /// JSON rules granting verbs in namespaces to users and groups. Without
    /// it every authenticated caller may do everything.
    #[arg(long)]
    authorization_policy_file: Option<PathBuf>,
    /// Serve anonymous callers on a non-loopback address (by default the
    /// server refuses to start that way).
    #[arg(long)]
    allow_anonymous: bool,
    /// PEM certificate chain; with --tls-private-key-file, serve HTTPS.
    #[arg(long, requires = "tls_private_key_file")]
    tls_cert_file: Option<PathBuf>,
    /// PEM private key of --tls-cert-file.
    #[arg(long, requires = "tls_cert_file")]
    tls_private_key_file: Option<PathBuf>,
    /// Concurrent watches one user may hold; more are answered 429.
    #[arg(long, default_value_t = 100)]
    max_watches_per_user: usize,
    /// The largest request body in bytes; larger ones are answered 413.
    #[arg(long, default_value_t = mxjob_api::wire::MAX_BODY_BYTES)]
    max_request_body_bytes: usize,
    /// Seconds a request body may take to arrive; slower ones are answered
    /// 408 and their connection closed.
    #[arg(long, default_value_t = mxjob_api::wire::BODY_TIMEOUT.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..))]
    request_body_timeout_seconds: u64,
    /// The bytes all request bodies being received may hold together;
    /// beyond it, writes are answered 429 until some have arrived.
    #[arg(long, default_value_t = mxjob_api::wire::BODY_BYTES_IN_FLIGHT)]
    max_body_bytes_in_flight: usize,
    /// A host name anonymous callers may reach the server by, beyond IP
    /// addresses and localhost (repeatable). Requests naming another host
    /// are refused, which stops DNS-rebinding pages.
    #[arg(long = "allowed-host", value_name = "NAME")]
    allowed_hosts: Vec<String>,
    /// An HTML page `/docs` serves instead of the API reference compiled
    /// in (openapi/mxjob.html).
    #[arg(long)]
    docs_file: Option<PathBuf>,
    /// Run the job controller (status, deadlines, TTL); `--controller=false`
    /// leaves status entirely to outside writers.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    controller: bool,
    /// What runs each job's replicas: `none` starts nothing (status comes
    /// from outside), `local` runs them as processes of this machine, which
    /// means running whatever commands clients send (see the README),
    /// `kubernetes` as Pods in a cluster.
    #[arg(long, value_enum, default_value = "none")]
    executor: Executor,
    /// The kubeconfig of --executor kubernetes (default: the in-cluster
    /// configuration, then $KUBECONFIG, then ~/.kube/config).
    #[arg(long, value_name = "FILE")]
    kubeconfig: Option<PathBuf>,
    /// The kubeconfig context of --executor kubernetes (default: its
    /// current context).
    #[arg(long, value_name = "NAME")]
    kube_context: Option<String>,
    /// The value of the label mxjob.kubeflow.org/installation on every Pod
    /// and Service this server makes; servers sharing a store share it, and
    /// each other mxjob installation in the same cluster needs its own.
    #[arg(long, default_value = mxjob_server::controller::kubernetes::DEFAULT_INSTALLATION)]
    installation: String,
    /// Where the local executor keeps replica logs (default DATA_DIR/logs).
    #[arg(long)]
    log_dir: Option<PathBuf>,
    /// This server's name in the controller lease (default: random per
    /// start). A fixed one lets a restarted server take its lease back at once.
    #[arg(long)]
    controller_identity: Option<String>,
    /// Seconds the controller lease lasts without renewal; a standby server
    /// takes over that long after the holder stops.
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u64).range(1..))]
    lease_duration_seconds: u64,
    /// Seconds a replica has between SIGTERM and SIGKILL when it is stopped.
    #[arg(long, default_value_t = 5)]
    kill_grace_seconds: u64,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Executor {
    /// Start nothing.
    None,
    /// Run every replica as a local process.
    Local,
    /// Run every replica as a Pod in a Kubernetes cluster.
    Kubernetes,
}

/// The settings the flags describe; refuses anonymous access beyond
/// loopback unless asked for explicitly.
fn settings(args: &Args) -> Result<Settings, String> {
    let tokens = args
        .token_auth_file
        .as_deref()
        .map(TokenFile::load)
        .transpose()
        .map_err(|e| e.to_string())?;
    if tokens.is_none() && !args.listen.ip().is_loopback() && !args.allow_anonymous {
        return Err(format!(
            "refusing to serve anonymous callers on {}: pass --token-auth-file FILE to \
             authenticate them, listen on a loopback address, or pass --allow-anonymous",
            args.listen
        ));
    }
    let policy = args
        .authorization_policy_file
        .as_deref()
        .map(Policy::load)
        .transpose()
        .map_err(|e| e.to_string())?;
    let mut settings = Settings::new(args.listen);
    settings.auth = Auth::new(tokens, policy, Some(args.max_watches_per_user));
    settings.tls = args
        .tls_cert_file
        .clone()
        .zip(args.tls_private_key_file.clone());
    settings.max_body_bytes = args.max_request_body_bytes;
    settings.body_timeout = Duration::from_secs(args.request_body_timeout_seconds);
    settings.body_bytes_in_flight = args.max_body_bytes_in_flight;
    settings.allowed_hosts = args.allowed_hosts.clone();
    settings.docs_file = args.docs_file.clone();
    settings.controller = args.controller.then(|| {
        let executor = match args.executor {
            Executor::None => ExecutorKind::None,
            Executor::Local => ExecutorKind::Local,
            Executor::Kubernetes => ExecutorKind::Kubernetes,
        };
        let log_dir = args
            .log_dir
            .clone()
            .unwrap_or_else(|| args.data_dir.join("logs"));
        let mut controller = ControllerSettings::new(executor, log_dir);
        if let Some(identity) = &args.controller_identity {
            controller.identity = identity.clone();
        }
        controller.lease_duration = Duration::from_secs(args.lease_duration_seconds);
        controller.kill_grace = Duration::from_secs(args.kill_grace_seconds);
        controller
    });
    Ok(settings)
}

/// Drops dropshot's per-connection line so that each request logs one line.
struct RequestLinesOnly<D>(D);

impl<D: Drain> Drain for RequestLinesOnly<D> {
    type Ok = Option<D::Ok>;
    type Err = D::Err;
    fn log(
        &self,
        record: &slog::Record<'_>,
        values: &slog::OwnedKVList,
    ) -> Result<Self::Ok, D::Err> {
        if record.msg().as_str() == Some("accepted connection") {
            return Ok(None);
        }
        self.0.log(record, values).map(Some)
    }
}

fn logger(format: LogFormat) -> Result<Logger, String> {
    let format = match format {
        LogFormat::Terminal => Format::Plain {
            colour: std::io::stderr().is_terminal(),
        },
        LogFormat::Json => Format::bunyan("mxjob-server"),
    };
    let lines = Lines::new(format, std::io::stderr())
        .map_err(|e| format!("starting the log thread: {e}"))?;
    Ok(Logger::root(
        RequestLinesOnly(lines.fuse())
            .fuse()
            .filter_level(slog::Level::Info)
            .fuse(),
        o!(),
    ))
}

async fn shutdown_signal() -> std::io::Result<&'static str> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result.map(|_| "SIGINT"),
        _ = term.recv() => Ok("SIGTERM"),
    }
}

/// `mxjob-server restore`: see `mxjob_server::backup`.
fn restore(from: &std::path::Path, data_dir: &std::path::Path, force: bool) -> Result<(), String> {
    let restored =
        mxjob_server::backup::restore(from, data_dir, force).map_err(|e| e.to_string())?;
    println!(
        "restored {} into {}: {} objects at revision {}; start mxjob-server --data-dir {}",
        from.display(),
        restored.path.display(),
        restored.objects,
        restored.revision,
        data_dir.display()
    );
    Ok(())
}

fn main() -> std::process::ExitCode {
    return_freed_memory_soon();
    let cli = Cli::parse();
    let args = match cli.command {
        Some(Subcommand::Restore {
            from,
            data_dir,
            force,
        }) => {
            return match restore(&from, &data_dir, force) {
                Ok(()) => std::process::ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("mxjob-server restore: {error}");
                    std::process::ExitCode::FAILURE
                }
            };
        }
        None => cli.serve,
    };
    // Decoding a pod template nests deeply; debug builds need more than
    // tokio's default 2 MiB per worker thread.
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(8 * 1024 * 1024)
        .build()
        .map_err(|e| format!("starting the runtime: {e}"))
        .and_then(|runtime| runtime.block_on(run(args)));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("mxjob-server: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Raises the soft limit on open files to the hard limit, so that idle or
/// slow connections (each a file descriptor until its deadline) do not
/// leave the server unable to accept new ones; returns the new limit.
fn raise_open_file_limit() -> Option<u64> {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        limit.current = limit.maximum;
        setrlimit(Resource::Nofile, limit).ok()?;
    }
    limit.current
}

async fn run(args: Args) -> Result<(), String> {
    let log = logger(args.log_format)?;
    let mut settings = settings(&args)?;
    if let Some(controller) = settings
        .controller
        .as_mut()
        .filter(|c| c.executor == ExecutorKind::Kubernetes)
    {
        let cluster = KubernetesSettings::connect(
            args.kubeconfig.clone(),
            args.kube_context.clone(),
            args.installation.clone(),
        )
        .await
        .map_err(|e| e.to_string())?;
        info!(log, "connected to Kubernetes";
            "server" => &cluster.server, "installation" => &cluster.installation);
        controller.kubernetes = Some(cluster);
    }
    let open_files = raise_open_file_limit();
    let metrics = settings.metrics.clone();
    let store: Arc<dyn Store> = match args.store {
        StoreKind::Memory => Arc::new(MemoryStore::with_limits(
            args.history_revisions,
            args.history_bytes,
        )),
        StoreKind::Sqlite => {
            let options = SqliteOptions {
                window_revisions: args.history_revisions,
                window_duration: Duration::from_secs(args.history_seconds),
                compaction_interval: Duration::from_secs(args.compaction_interval_seconds),
                history_bytes: args.history_bytes,
            };
            // Opening reads a little of the file; once, before serving.
            let store = Arc::new(
                SqliteStore::open(&args.data_dir, options)
                    .map_err(|e| format!("opening the store: {e}"))?,
            );
            info!(log, "opened the SQLite store"; "file" => %store.path().display());
            let stale = mxjob_server::backup::remove_stale_copies(&args.data_dir);
            if stale > 0 {
                info!(log, "removed copies an interrupted backup left"; "files" => stale);
            }
            store
                .record_commits(metrics.commits())
                .await
                .map_err(|e| format!("opening the store: {e}"))?;
            store.spawn_compactor(log.new(o!("component" => "compactor")));
            settings.backup = Some(store.clone());
            store
        }
        #[cfg(feature = "etcd")]
        StoreKind::Etcd => {
            use mxjob_server::store::etcd::{EtcdOptions, EtcdStore};
            let endpoints = args.etcd_endpoints.join(",");
            info!(log, "connecting to etcd"; "endpoints" => &endpoints);
            let store = EtcdStore::connect(EtcdOptions::new(args.etcd_endpoints.clone()))
                .await
                .map_err(|e| format!("opening the store: {e}"))?;
            info!(log, "connected to etcd"; "endpoints" => &endpoints);
            Arc::new(store)
        }
    };
    let store = MeteredStore::wrap(store, &metrics);
    let revision = store
        .current_revision()
        .await
        .map_err(|e| format!("reading the store: {e}"))?;
    let durable = store.durability() == Durability::Durable;
    info!(log, "starting";
        "store" => store.name(),
        "durable" => durable,
        "data_dir" => if matches!(args.store, StoreKind::Sqlite) { args.data_dir.display().to_string() } else { "-".to_string() },
        "revision" => revision,
        "history_revisions" => args.history_revisions,
        "history_bytes" => args.history_bytes,
        "authentication" => if args.token_auth_file.is_some() { "tokens" } else { "anonymous" },
        "tls" => args.tls_cert_file.is_some(),
        "controller" => if args.controller { format!("{:?}", args.executor).to_lowercase() } else { "off".to_string() },
        "open_files" => open_files.map_or_else(|| "unlimited".to_string(), |n| n.to_string()),
        "listen" => %args.listen);
    let server = mxjob_server::server::start_with(Registry::new(store), settings, &log)
        .map_err(|e| e.to_string())?;
    let signal = shutdown_signal()
        .await
        .map_err(|e| format!("waiting for signals: {e}"))?;
    info!(log, "shutting down"; "signal" => signal);
    server.close().await.map_err(|e| e.to_string())
}

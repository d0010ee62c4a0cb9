//! `mxjob-server`: serves the MXJob API.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use mxjob_server::registry::Registry;
use mxjob_server::store::memory::MemoryStore;
use mxjob_server::store::sqlite::{SqliteOptions, SqliteStore};
use mxjob_server::store::{Durability, Store};
use slog::{info, o, Drain, Logger};

#[derive(Clone, Copy, Debug, ValueEnum)]
enum StoreKind {
    /// Keep objects in `DATA_DIR/mxjob.db`; acknowledged writes survive
    /// crashes and power loss.
    Sqlite,
    /// Keep objects in memory; everything is lost when the server stops.
    Memory,
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
#[command(version)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Where objects are kept.
    #[arg(long, value_enum, default_value = "sqlite")]
    store: StoreKind,
    /// Directory of the SQLite database (created if missing).
    #[arg(long, default_value = "./mxjob-data")]
    data_dir: PathBuf,
    /// Revisions of history always kept for lists at a resourceVersion,
    /// continue tokens and watches (older ones answer 410 Gone).
    #[arg(long, default_value_t = 1000)]
    history_revisions: u64,
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

fn logger(format: LogFormat) -> Logger {
    let drain = match format {
        LogFormat::Terminal => {
            let decorator = slog_term::TermDecorator::new().stderr().build();
            let drain = slog_term::FullFormat::new(decorator).build().fuse();
            RequestLinesOnly(slog_async::Async::new(drain).build().fuse()).fuse()
        }
        LogFormat::Json => {
            let drain = slog_bunyan::with_name("mxjob-server", std::io::stderr())
                .build()
                .fuse();
            RequestLinesOnly(slog_async::Async::new(drain).build().fuse()).fuse()
        }
    };
    Logger::root(drain.filter_level(slog::Level::Info).fuse(), o!())
}

async fn shutdown_signal() -> std::io::Result<&'static str> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result.map(|_| "SIGINT"),
        _ = term.recv() => Ok("SIGTERM"),
    }
}

fn main() -> Result<(), String> {
    let args = Args::parse();
    // Decoding a pod template nests deeply; debug builds need more than
    // tokio's default 2 MiB per worker thread.
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(8 * 1024 * 1024)
        .build()
        .map_err(|e| format!("starting the runtime: {e}"))?
        .block_on(run(args))
}

async fn run(args: Args) -> Result<(), String> {
    let log = logger(args.log_format);
    let store: Arc<dyn Store> = match args.store {
        StoreKind::Memory => Arc::new(MemoryStore::with_window(args.history_revisions)),
        StoreKind::Sqlite => {
            let options = SqliteOptions {
                window_revisions: args.history_revisions,
                window_duration: Duration::from_secs(args.history_seconds),
                compaction_interval: Duration::from_secs(args.compaction_interval_seconds),
            };
            // Opening reads a little of the file; once, before serving.
            let store = Arc::new(
                SqliteStore::open(&args.data_dir, options)
                    .map_err(|e| format!("opening the store: {e}"))?,
            );
            info!(log, "opened the SQLite store"; "file" => %store.path().display());
            store.spawn_compactor(log.new(o!("component" => "compactor")));
            store
        }
    };
    let revision = store
        .current_revision()
        .await
        .map_err(|e| format!("reading the store: {e}"))?;
    let durable = store.durability() == Durability::Durable;
    info!(log, "starting";
        "store" => store.name(),
        "durable" => durable,
        "data_dir" => if durable { args.data_dir.display().to_string() } else { "-".to_string() },
        "revision" => revision,
        "history_revisions" => args.history_revisions,
        "listen" => %args.listen);
    let server = mxjob_server::server::start(Registry::new(store), args.listen, &log)?;
    let signal = shutdown_signal()
        .await
        .map_err(|e| format!("waiting for signals: {e}"))?;
    info!(log, "shutting down"; "signal" => signal);
    server.close().await
}

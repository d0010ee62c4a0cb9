//! `mxjob-server`: serves the MXJob API.

use std::net::SocketAddr;
use std::sync::Arc;

use clap::{Parser, ValueEnum};
use mxjob_server::registry::Registry;
use mxjob_server::store::memory::MemoryStore;
use mxjob_server::store::Store;
use slog::{info, o, Drain, Logger};

#[derive(Clone, Copy, Debug, ValueEnum)]
enum StoreKind {
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
    #[arg(long, value_enum, default_value = "memory")]
    store: StoreKind,
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
        StoreKind::Memory => Arc::new(MemoryStore::new()),
    };
    info!(log, "starting"; "store" => store.name(), "listen" => %args.listen);
    let server = mxjob_server::server::start(Registry::new(store), args.listen, &log)?;
    let signal = shutdown_signal()
        .await
        .map_err(|e| format!("waiting for signals: {e}"))?;
    info!(log, "shutting down"; "signal" => signal);
    server.close().await
}

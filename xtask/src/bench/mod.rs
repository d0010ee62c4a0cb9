//! `cargo xtask bench`: what a replace costs in `mxjob-server`, as a
//! fraction of what the same dropshot can do at all on the same machine at
//! the same time.
//!
//! The machine is shared and small, so absolute numbers move with whatever
//! else runs; a ratio to a ceiling measured in the same run moves much
//! less. The ceiling is `bench-ceiling` (`xtask/ceiling`): a bare dropshot
//! server of the project's dropshot version whose one endpoint decodes a
//! replace's body into a `serde_json::Value` and answers it back. Both run
//! as release builds on loopback, mxjob-server as users run it (the job
//! controller on, `--executor none`), with `--store memory`, the default
//! SQLite store in a temporary data directory, and etcd (Debian's, started
//! here on free loopback ports with a temporary data directory).
//!
//! Parts, each reported as a Markdown table with the command line and the
//! machine's load:
//!
//! * **replace**: the same load against every target: chains of real
//!   replaces from Debian's `wrk` ([`wrk`]), one object per connection,
//!   each request carrying the resourceVersion of the previous answer and a
//!   new `spec.ttlSecondsAfterFinished`. Throughput, wrk's per-request p50
//!   and p99, the ratio to the ceiling, and the CPU the server, wrk and
//!   the rest of the machine used meanwhile.
//! * **rate**: the same chains paced to a fixed rate (`--rate`, 1,000
//!   replaces/s offered by default) against every target: the latency of a
//!   modest load rather than the most the server can do, and whether any
//!   request left late because every connection was still waiting.
//! * **memory**: resident memory of mxjob-server after creating N
//!   seed-sized jobs (the controller admits each), one paged listing
//!   (`limit=500`) and one unpaged list, beside the total JSON size of the
//!   jobs.
//! * **watch**: 1,000 watchers of one namespace, and the delay from a
//!   replace's acknowledgement to each watcher reading its event ([`watch`]).
//!
//! `--profile` instead counts the instructions of replaces under callgrind
//! ([`profile`]).

mod api;
pub mod kubernetes;
mod machine;
mod profile;
mod watch;
mod wrk;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::local_server::{self, free_loopback_address, LocalServer, Ready};
use crate::system;
use api::Api;
use machine::{Killed, TempDir};

/// What to measure.
pub struct Options {
    pub targets: Vec<Target>,
    pub connections: Vec<usize>,
    pub seconds: u64,
    pub wrk_threads: usize,
    /// Replaces per second the rate part offers.
    pub rate: u32,
    pub parts: Vec<Part>,
    pub jobs: usize,
    pub watchers: usize,
    pub watch_rounds: usize,
    pub profile: bool,
    pub profile_replaces: usize,
}

/// A server under load.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// bench-ceiling.
    Ceiling,
    Memory,
    Sqlite,
    Etcd,
}

impl Target {
    fn parse(name: &str) -> Result<Self> {
        Ok(match name {
            "ceiling" => Target::Ceiling,
            "memory" => Target::Memory,
            "sqlite" => Target::Sqlite,
            "etcd" => Target::Etcd,
            other => bail!("unknown target {other:?} (ceiling, memory, sqlite, etcd)"),
        })
    }

    fn name(self) -> &'static str {
        match self {
            Target::Ceiling => "ceiling",
            Target::Memory => "memory",
            Target::Sqlite => "sqlite",
            Target::Etcd => "etcd",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Target::Ceiling => "bare dropshot (ceiling)",
            Target::Memory => "mxjob, `--store memory`",
            Target::Sqlite => "mxjob, SQLite (default)",
            Target::Etcd => "mxjob, `--store etcd`",
        }
    }
}

/// A part of the bench.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    Replace,
    Rate,
    Memory,
    Watch,
}

impl Part {
    fn parse(name: &str) -> Result<Self> {
        Ok(match name {
            "replace" => Part::Replace,
            "rate" => Part::Rate,
            "memory" => Part::Memory,
            "watch" => Part::Watch,
            other => bail!("unknown part {other:?} (replace, rate, memory, watch)"),
        })
    }
}

fn list<T>(text: &str, parse: impl Fn(&str) -> Result<T>) -> Result<Vec<T>> {
    text.split(',')
        .filter(|s| !s.is_empty())
        .map(parse)
        .collect()
}

impl Options {
    pub fn parse(args: &[&str]) -> Result<Self> {
        let mut options = Options {
            targets: vec![
                Target::Ceiling,
                Target::Memory,
                Target::Sqlite,
                Target::Etcd,
            ],
            connections: vec![16, 64],
            seconds: 10,
            wrk_threads: 2,
            rate: 1000,
            parts: vec![Part::Replace, Part::Rate, Part::Memory, Part::Watch],
            jobs: 10_000,
            watchers: 1000,
            watch_rounds: 5,
            profile: false,
            profile_replaces: 2000,
        };
        let mut args = args.iter();
        while let Some(flag) = args.next() {
            let mut value = || args.next().context(format!("{flag} needs a value"));
            match *flag {
                "--targets" => options.targets = list(value()?, Target::parse)?,
                "--connections" => {
                    options.connections = list(value()?, |c| Ok(c.parse::<usize>()?))?
                }
                "--seconds" => options.seconds = value()?.parse()?,
                "--wrk-threads" => options.wrk_threads = value()?.parse()?,
                "--rate" => options.rate = value()?.parse()?,
                "--parts" => options.parts = list(value()?, Part::parse)?,
                "--jobs" => options.jobs = value()?.parse()?,
                "--watchers" => options.watchers = value()?.parse()?,
                "--watch-rounds" => options.watch_rounds = value()?.parse()?,
                "--profile" => options.profile = true,
                "--replaces" => options.profile_replaces = value()?.parse()?,
                other => bail!("unknown bench flag {other}\n{USAGE}"),
            }
        }
        if !options.targets.contains(&Target::Ceiling) {
            options.targets.insert(0, Target::Ceiling);
        }
        Ok(options)
    }
}

pub const USAGE: &str = "cargo xtask bench [--targets ceiling,memory,sqlite,etcd] \
[--connections 16,64] [--seconds 10] [--wrk-threads 2] [--rate 1000] \
[--parts replace,rate,memory,watch] \
[--jobs 10000] [--watchers 1000] [--watch-rounds 5]\n\
cargo xtask bench --profile [--replaces 2000]";

/// `target/bench/`, where logs, scripts and profiles go.
fn bench_dir(workspace: &Path) -> Result<PathBuf> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"));
    let dir = target.join("bench");
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// The binaries under test.
struct Binaries {
    mxjob: PathBuf,
    ceiling: PathBuf,
}

fn build(with_etcd: bool) -> Result<Binaries> {
    let mut args = vec![
        "--release",
        "--package",
        "mxjob-server",
        "--bin",
        "mxjob-server",
        "--package",
        "bench-ceiling",
        "--bin",
        "bench-ceiling",
    ];
    if with_etcd {
        args.extend(["--features", "mxjob-server/etcd"]);
    }
    let built = local_server::build_binaries(&args)?;
    Ok(Binaries {
        mxjob: local_server::executable(&built, "mxjob-server")?,
        ceiling: local_server::executable(&built, "bench-ceiling")?,
    })
}

/// A single-member etcd on free loopback ports, killed and its data
/// removed when dropped.
struct Etcd {
    endpoint: String,
    process: Killed,
    _data: TempDir,
}

impl Etcd {
    async fn start(log: &Path) -> Result<Self> {
        let data = TempDir::new("etcd")?;
        let client = format!("http://{}", free_loopback_address()?);
        let peer = format!("http://{}", free_loopback_address()?);
        let output = std::fs::File::create(log)?;
        let child = Command::new("/usr/bin/etcd")
            .args(["--name", "bench", "--data-dir"])
            .arg(data.path().join("data"))
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .arg("--initial-cluster")
            .arg(format!("bench={peer}"))
            // 8 GiB: the memory part writes many jobs, and their history.
            .args(["--quota-backend-bytes", "8589934592"])
            .args(["--logger", "zap", "--log-level", "error"])
            .stdin(Stdio::null())
            .stdout(output.try_clone()?)
            .stderr(output)
            .spawn()
            .context("starting /usr/bin/etcd")?;
        let mut etcd = Etcd {
            endpoint: client,
            process: Killed(child),
            _data: data,
        };
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = etcd.process.0.try_wait()? {
                bail!("etcd exited with {status}; see {}", log.display());
            }
            let healthy = http
                .get(format!("{}/health", etcd.endpoint))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if healthy {
                return Ok(etcd);
            }
            if Instant::now() > deadline {
                bail!("etcd was not healthy within 30 s; see {}", log.display());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn pid(&self) -> u32 {
        self.process.0.id()
    }
}

/// A target running.
struct Running {
    server: LocalServer,
    etcd: Option<Etcd>,
    _data: Option<TempDir>,
}

impl Running {
    /// The processes whose CPU counts as the target's.
    fn pids(&self) -> Vec<u32> {
        let mut pids = vec![self.server.pid()];
        pids.extend(self.etcd.as_ref().map(Etcd::pid));
        pids
    }

    fn url(&self) -> &str {
        &self.server.url
    }

    fn address(&self) -> SocketAddr {
        self.server.address()
    }
}

/// Starts `target`; `extra` goes to mxjob-server after the store options.
async fn start(
    target: Target,
    binaries: &Binaries,
    logs: &Path,
    part: &str,
    extra: &[&str],
) -> Result<Running> {
    let log = |what: &str| logs.join(format!("{part}-{}-{what}.log", target.name()));
    if target == Target::Ceiling {
        let address = free_loopback_address()?;
        let server = LocalServer::start_program(
            &binaries.ceiling,
            &[address.to_string()],
            address,
            &log("server"),
            Ready::Answers,
            Duration::from_secs(30),
        )?;
        return Ok(Running {
            server,
            etcd: None,
            _data: None,
        });
    }
    let mut args: Vec<String> = vec!["--executor".into(), "none".into()];
    let (mut etcd, mut data) = (None, None);
    match target {
        Target::Memory => args.extend(["--store".into(), "memory".into()]),
        Target::Sqlite => {
            let dir = TempDir::new("sqlite")?;
            args.extend(["--store".into(), "sqlite".into(), "--data-dir".into()]);
            args.push(dir.path().display().to_string());
            data = Some(dir);
        }
        Target::Etcd => {
            let started = Etcd::start(&log("etcd")).await?;
            args.extend(["--store".into(), "etcd".into(), "--etcd-endpoints".into()]);
            args.push(started.endpoint.clone());
            etcd = Some(started);
        }
        Target::Ceiling => unreachable!(),
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    let server = LocalServer::start(&binaries.mxjob, &args, &log("server"))?;
    Ok(Running {
        server,
        etcd,
        _data: data,
    })
}

fn seed() -> Result<Value> {
    Ok(serde_json::from_str(mxjob_api::openapi::REPLACE_EXAMPLE)?)
}

/// The namespace of the replace chains.
const CHAINS_NAMESPACE: &str = "bench";

/// The objects of `connections` chains on `running`: for mxjob the jobs as
/// it last answered them (created first, once, and admitted by the
/// controller, or without one given the status it would write); for the
/// ceiling the seed job under the same names.
async fn chain_objects(
    target: Target,
    running: &Running,
    controller: bool,
    connections: usize,
    created: &mut usize,
) -> Result<Vec<Value>> {
    let seed = seed()?;
    let name = |i: usize| format!("chain-{i}");
    if target == Target::Ceiling {
        return Ok((0..connections)
            .map(|i| {
                let mut object = seed.clone();
                object["metadata"]["name"] = Value::from(name(i));
                object["metadata"]["namespace"] = Value::from(CHAINS_NAMESPACE);
                object["metadata"]["resourceVersion"] = Value::from("1");
                object
            })
            .collect());
    }
    let api = Api::new(running.url());
    for i in *created..connections {
        api.create(&seed, CHAINS_NAMESPACE, &name(i)).await?;
    }
    for i in *created..connections {
        if controller {
            api.admitted(CHAINS_NAMESPACE, &name(i)).await?;
        } else {
            api.admit_as_controller(CHAINS_NAMESPACE, &name(i)).await?;
        }
    }
    *created = (*created).max(connections);
    let mut objects = Vec::new();
    for i in 0..connections {
        objects.push(api.get(CHAINS_NAMESPACE, &name(i)).await?);
    }
    Ok(objects)
}

/// The wrk chains of `connections` objects on `running` (see
/// [`chain_objects`]).
async fn chains(
    target: Target,
    running: &Running,
    controller: bool,
    connections: usize,
    created: &mut usize,
) -> Result<Vec<wrk::Chain>> {
    let objects = chain_objects(target, running, controller, connections, created).await?;
    let collection = api::collection(CHAINS_NAMESPACE);
    objects
        .iter()
        .map(|o| wrk::Chain::new(&collection, o))
        .collect()
}

/// One wrk run over chains on a running target.
struct Load<'a> {
    target: Target,
    running: &'a Running,
    /// Whether the server runs its job controller (see [`chain_objects`]).
    controller: bool,
    connections: usize,
    threads: usize,
    rate: Option<u32>,
    /// Where wrk's script and report go, without an extension.
    files: PathBuf,
}

/// Runs `load` and prints its line; also gives the mean request body size.
async fn drive(
    options: &Options,
    load: Load<'_>,
    created: &mut usize,
) -> Result<(wrk::Measured, usize)> {
    let Load {
        target,
        running,
        controller,
        connections,
        threads,
        rate,
        files,
    } = load;
    let chains = chains(target, running, controller, connections, created).await?;
    let measured = wrk::run(&wrk::Run {
        url: running.url(),
        chains: &chains,
        threads,
        seconds: options.seconds,
        rate,
        pids: &running.pids(),
        files: &files,
    })?;
    let offered = rate.map_or_else(String::new, |rate| format!(" at {rate}/s offered"));
    println!(
        "{}{offered} (wrk -t{threads} -c{connections}): {:.0} replaces/s, p50 {:.2} ms, \
         p99 {:.2} ms, max {:.1} ms, late: {}, not 200: {}, without a free object: {}",
        target.name(),
        measured.per_second(),
        measured.p50_ms,
        measured.p99_ms,
        measured.max_ms,
        measured.late,
        measured.failed,
        measured.lost
    );
    let body_bytes = chains.iter().map(|c| c.body_bytes).sum::<usize>() / chains.len().max(1);
    Ok((measured, body_bytes))
}

/// The etcd column of a row: etcd's CPU, when the target has one.
fn etcd_cpu(m: &wrk::Measured) -> String {
    m.target_cpu
        .get(1)
        .map_or_else(|| "-".to_string(), |cpu| format!("{:.0}%", m.percent(*cpu)))
}

/// One row of the replace table.
struct ReplaceRow {
    target: Target,
    /// What sets the row apart from the target's other rows.
    note: &'static str,
    /// Whether the row is one the ratios are taken against.
    reference: bool,
    connections: usize,
    threads: usize,
    body_bytes: usize,
    measured: wrk::Measured,
}

/// A pass of the replace part over one target.
struct Pass {
    target: Target,
    note: &'static str,
    /// wrk threads, when not `--wrk-threads`.
    threads: Option<usize>,
    reference: bool,
    /// Arguments for mxjob-server beyond the target's.
    extra: &'static [&'static str],
}

/// The note of the memory pass without the job controller, whose
/// throughput beside the memory pass's shows what the controller costs.
const WITHOUT_CONTROLLER: &str = "`--controller=false`";

/// The ceiling runs first, with `--wrk-threads` and with one wrk thread
/// (which shows whether wrk itself limits it), then every mxjob target,
/// then the ceiling again: the ratios are to the mean of the two ceiling
/// runs with `--wrk-threads`, which also shows how much the machine
/// drifted meanwhile.
fn passes(options: &Options) -> Vec<Pass> {
    let pass = |target, note, threads, reference| Pass {
        target,
        note,
        threads,
        reference,
        extra: &[],
    };
    let mut passes = vec![pass(Target::Ceiling, "first", None, true)];
    if options.wrk_threads != 1 {
        passes.push(pass(Target::Ceiling, "first, 1 wrk thread", Some(1), false));
    }
    for &target in options.targets.iter().filter(|t| **t != Target::Ceiling) {
        passes.push(pass(target, "", None, false));
        if target == Target::Memory {
            passes.push(Pass {
                extra: &["--controller=false"],
                ..pass(target, WITHOUT_CONTROLLER, None, false)
            });
        }
    }
    passes.push(pass(Target::Ceiling, "again, last", None, true));
    passes
}

async fn replace_part(
    options: &Options,
    binaries: &Binaries,
    logs: &Path,
) -> Result<Vec<ReplaceRow>> {
    let mut rows = Vec::new();
    for (index, pass) in passes(options).iter().enumerate() {
        let target = pass.target;
        let threads = pass.threads.unwrap_or(options.wrk_threads);
        let running = start(target, binaries, logs, "replace", pass.extra).await?;
        let mut created = 0;
        for &connections in &options.connections {
            let load = Load {
                target,
                running: &running,
                controller: !pass.extra.contains(&"--controller=false"),
                connections,
                threads,
                rate: None,
                files: logs.join(format!(
                    "replace-{index}-{}-t{threads}-c{connections}",
                    target.name()
                )),
            };
            let (measured, body_bytes) = drive(options, load, &mut created).await?;
            rows.push(ReplaceRow {
                target,
                note: pass.note,
                reference: pass.reference,
                connections,
                threads,
                body_bytes,
                measured,
            });
        }
    }
    Ok(rows)
}

fn replace_table(rows: &[ReplaceRow]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| target | wrk threads × connections | replaces/s | ratio to ceiling | p50 ms | p99 ms | \
         not 200 | server CPU (tokio threads + others) | etcd CPU | wrk CPU | other processes' CPU |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|---|");
    for row in rows {
        let references: Vec<f64> = rows
            .iter()
            .filter(|r| r.reference && r.connections == row.connections)
            .map(|r| r.measured.per_second())
            .collect();
        let ceiling = references.iter().sum::<f64>() / references.len().max(1) as f64;
        let m = &row.measured;
        let ratio = if ceiling > 0.0 {
            format!("{:.3}", m.per_second() / ceiling)
        } else {
            "-".to_string()
        };
        let etcd = etcd_cpu(m);
        let label = if row.note.is_empty() {
            row.target.label().to_string()
        } else {
            format!("{} ({})", row.target.label(), row.note)
        };
        let _ = writeln!(
            out,
            "| {label} | {} × {} | {:.0} | {ratio} | {:.2} | {:.2} | {} | {:.0}% ({:.0}% + {:.0}%) \
             | {etcd} | {:.0}% | {:.0}% |",
            row.threads,
            row.connections,
            m.per_second(),
            m.p50_ms,
            m.p99_ms,
            m.failed + m.lost,
            m.percent(m.target_cpu[0]),
            m.percent(m.worker_cpu),
            m.percent(m.target_cpu[0] - m.worker_cpu),
            m.percent(m.wrk_cpu),
            m.others_percent(),
        );
    }
    if let Some(row) = rows.first() {
        let busy: f64 = rows.iter().map(|r| r.measured.machine_busy).sum();
        let total: f64 = rows.iter().map(|r| r.measured.machine_total).sum();
        let _ = writeln!(
            out,
            "\nRequest bodies of about {} bytes. CPU is in percent of one core over each run; the \
             machine has {:.0} cores, busy {:.0}% of the time over all the runs. The ratio is to the \
             mean of the two ceiling runs with {} wrk threads at the same connections.",
            row.body_bytes,
            row.measured.machine_total / row.measured.wall,
            100.0 * busy / total.max(f64::MIN_POSITIVE),
            row.threads,
        );
    }
    for row in rows
        .iter()
        .filter(|r| r.target == Target::Memory && r.note.is_empty())
    {
        let without = rows.iter().find(|r| {
            r.target == Target::Memory
                && r.note == WITHOUT_CONTROLLER
                && r.connections == row.connections
        });
        if let Some(without) = without {
            let (on, off) = (row.measured.per_second(), without.measured.per_second());
            let _ = writeln!(
                out,
                "\nThe job controller (`--executor none`) costs {:.1}% of the memory store's \
                 replaces at {} connections ({on:.0}/s with it, {off:.0}/s without).",
                100.0 * (1.0 - on / off.max(f64::MIN_POSITIVE)),
                row.connections,
            );
        }
    }
    out
}

/// One row of the rate table.
struct RateRow {
    target: Target,
    connections: usize,
    threads: usize,
    measured: wrk::Measured,
}

/// Every target once, the ceiling first, each at every `--connections`
/// with `options.rate` replaces per second offered.
async fn rate_part(options: &Options, binaries: &Binaries, logs: &Path) -> Result<Vec<RateRow>> {
    let threads = options.wrk_threads;
    let mut rows = Vec::new();
    for &target in &options.targets {
        let running = start(target, binaries, logs, "rate", &[]).await?;
        let mut created = 0;
        for &connections in &options.connections {
            let load = Load {
                target,
                running: &running,
                controller: true,
                connections,
                threads,
                rate: Some(options.rate),
                files: logs.join(format!(
                    "rate-{}-{}-t{threads}-c{connections}",
                    options.rate,
                    target.name()
                )),
            };
            let (measured, _) = drive(options, load, &mut created).await?;
            rows.push(RateRow {
                target,
                connections,
                threads,
                measured,
            });
        }
    }
    Ok(rows)
}

fn rate_table(rows: &[RateRow]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| target | wrk threads × connections | replaces/s answered | p50 ms | p99 ms | max ms | \
         late | not 200 | server CPU | etcd CPU |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|");
    for row in rows {
        let m = &row.measured;
        let etcd = etcd_cpu(m);
        let _ = writeln!(
            out,
            "| {} | {} × {} | {:.0} | {:.2} | {:.2} | {:.1} | {} | {} | {:.0}% | {etcd} |",
            row.target.label(),
            row.threads,
            row.connections,
            m.per_second(),
            m.p50_ms,
            m.p99_ms,
            m.max_ms,
            m.late,
            m.failed + m.lost,
            m.percent(m.target_cpu[0]),
        );
    }
    out
}

/// The memory part's numbers for one target.
struct MemoryRow {
    target: Target,
    controller: bool,
    jobs: usize,
    json_bytes: usize,
    list_bytes: usize,
    pages: usize,
    empty_kib: u64,
    created_kib: u64,
    listed_kib: u64,
    etcd_kib: Option<u64>,
    create_seconds: f64,
}

async fn memory_part(
    options: &Options,
    binaries: &Binaries,
    logs: &Path,
) -> Result<Vec<MemoryRow>> {
    let seed = seed()?;
    let mut rows = Vec::new();
    // Every mxjob target as users run it; and the memory store without the
    // controller, which shows what the controller holds.
    let mut runs: Vec<(Target, bool)> = options
        .targets
        .iter()
        .filter(|t| **t != Target::Ceiling)
        .map(|t| (*t, true))
        .collect();
    if options.targets.contains(&Target::Memory) {
        runs.insert(1, (Target::Memory, false));
    }
    for (target, controller) in runs {
        let extra: &[&str] = if controller {
            &[]
        } else {
            &["--controller=false"]
        };
        let part = if controller {
            "memory"
        } else {
            "memory-no-controller"
        };
        let running = start(target, binaries, logs, part, extra).await?;
        let pid = running.server.pid();
        let api = Api::new(running.url());
        tokio::time::sleep(Duration::from_millis(500)).await;
        let empty_kib = machine::resident_kib(pid)?;
        let started = Instant::now();
        api.create_many(&seed, "memory", "job", options.jobs, 16)
            .await?;
        api.settle("memory").await?;
        let create_seconds = started.elapsed().as_secs_f64();
        let created_kib = machine::resident_kib(pid)?;
        let (pages, paged_items) = api.list_paged("memory", 500).await?;
        let (items, list_bytes) = api.list_all("memory").await?;
        if paged_items != options.jobs || items.len() != options.jobs {
            bail!(
                "{}: listed {paged_items} and {} jobs, not {}",
                target.name(),
                items.len(),
                options.jobs
            );
        }
        let admitted = items
            .iter()
            .filter(|j| !j["status"]["startTime"].is_null())
            .count();
        if controller && admitted != options.jobs {
            bail!("{}: only {admitted} jobs were admitted", target.name());
        }
        let json_bytes = items
            .iter()
            .map(|item| serde_json::to_vec(item).map(|v| v.len()))
            .sum::<Result<usize, _>>()?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let listed_kib = machine::resident_kib(pid)?;
        let etcd_kib = match &running.etcd {
            Some(etcd) => Some(machine::resident_kib(etcd.pid())?),
            None => None,
        };
        println!(
            "{}: {} jobs, {:.1} MiB of JSON, resident {:.0} MiB after the lists",
            target.name(),
            options.jobs,
            mib(json_bytes as u64),
            listed_kib as f64 / 1024.0
        );
        rows.push(MemoryRow {
            target,
            controller,
            jobs: options.jobs,
            json_bytes,
            list_bytes,
            pages,
            empty_kib,
            created_kib,
            listed_kib,
            etcd_kib,
            create_seconds,
        });
    }
    Ok(rows)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn memory_table(rows: &[MemoryRow]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| target | jobs | their JSON | resident: empty | after creating (and admission) | \
         after the lists | (after the lists − empty) / JSON | etcd resident | creates (and \
         admissions) took |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|");
    for row in rows {
        let grown = row.listed_kib.saturating_sub(row.empty_kib) * 1024;
        let _ =
            writeln!(
            out,
            "| {}{} | {} | {:.1} MiB | {:.0} MiB | {:.0} MiB | {:.0} MiB | {:.1} | {} | {:.1} s |",
            row.target.label(),
            if row.controller {
                ""
            } else {
                ", `--controller=false`"
            },
            row.jobs,
            mib(row.json_bytes as u64),
            row.empty_kib as f64 / 1024.0,
            row.created_kib as f64 / 1024.0,
            row.listed_kib as f64 / 1024.0,
            grown as f64 / row.json_bytes as f64,
            row.etcd_kib
                .map_or_else(|| "-".to_string(), |k| format!("{:.0} MiB", k as f64 / 1024.0)),
            row.create_seconds,
        );
    }
    if let Some(row) = rows.first() {
        let _ = writeln!(
            out,
            "\nThe paged listing took {} pages; the unpaged list's body was {:.1} MiB.",
            row.pages,
            mib(row.list_bytes as u64)
        );
    }
    out
}

struct WatchRow {
    target: Target,
    fan_out: watch::FanOut,
}

async fn watch_part(options: &Options, binaries: &Binaries, logs: &Path) -> Result<Vec<WatchRow>> {
    machine::raise_open_file_limit();
    let limit = (options.watchers + 10).to_string();
    let mut rows = Vec::new();
    for &target in options.targets.iter().filter(|t| **t != Target::Ceiling) {
        let running = start(
            target,
            binaries,
            logs,
            "watch",
            &["--max-watches-per-user", &limit],
        )
        .await?;
        let api = Api::new(running.url());
        api.create(&seed()?, "watched", "job").await?;
        let object = api.admitted("watched", "job").await?;
        let fan_out = watch::fan_out(
            running.address(),
            object,
            options.watchers,
            options.watch_rounds,
        )
        .await
        .with_context(|| format!("watch fan-out on {}", target.name()))?;
        println!(
            "{}: {} watchers, p50 {:.1} ms, p99 {:.1} ms",
            target.name(),
            fan_out.watchers,
            fan_out.percentile(0.5),
            fan_out.percentile(0.99)
        );
        rows.push(WatchRow { target, fan_out });
    }
    Ok(rows)
}

fn watch_table(rows: &[WatchRow]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| target | watchers | replaces | delays | p50 ms | p99 ms | max ms | events read before the acknowledgement |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|");
    for row in rows {
        let f = &row.fan_out;
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {:.1} | {:.1} | {:.1} | {} |",
            row.target.label(),
            f.watchers,
            f.rounds,
            f.delays_ms.len(),
            f.percentile(0.5),
            f.percentile(0.99),
            f.percentile(1.0),
            f.before_acknowledgement(),
        );
    }
    out
}

pub fn bench(workspace: &Path, options: &Options, command_line: &str) -> Result<()> {
    let with_etcd = options.targets.contains(&Target::Etcd);
    let mut packages = vec!["wrk"];
    if with_etcd {
        packages.extend(["etcd-server", "protobuf-compiler", "libprotobuf-dev"]);
    }
    if options.profile {
        packages.push("valgrind");
    }
    system::ensure(&packages)?;
    let logs = bench_dir(workspace)?;
    if options.profile {
        return profile::profile(options, &logs);
    }
    let binaries = build(with_etcd)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let load_before = machine::load_average();
    let started = Instant::now();
    let mut report = String::new();
    runtime.block_on(async {
        if options.parts.contains(&Part::Replace) {
            let rows = replace_part(options, &binaries, &logs).await?;
            let _ = writeln!(
                report,
                "\nReplaces, {} s per row, wrk with {} threads:\n\n{}",
                options.seconds,
                options.wrk_threads,
                replace_table(&rows)
            );
        }
        if options.parts.contains(&Part::Rate) {
            let rows = rate_part(options, &binaries, &logs).await?;
            let _ = writeln!(
                report,
                "\nReplaces at {} per second offered, {} s per row (late: requests that left more \
                 than 2 ms after their time, because every connection of their wrk thread was \
                 waiting for an answer or wrk's timer fired late):\n\n{}",
                options.rate,
                options.seconds,
                rate_table(&rows)
            );
        }
        if options.parts.contains(&Part::Memory) {
            let rows = memory_part(options, &binaries, &logs).await?;
            let _ = writeln!(
                report,
                "\nResident memory of mxjob-server holding {} jobs:\n\n{}",
                options.jobs,
                memory_table(&rows)
            );
        }
        if options.parts.contains(&Part::Watch) {
            let rows = watch_part(options, &binaries, &logs).await?;
            let _ = writeln!(
                report,
                "\nWatch fan-out: delay from a replace's acknowledgement to each watcher reading \
                 its event:\n\n{}",
                watch_table(&rows)
            );
        }
        Ok::<_, anyhow::Error>(())
    })?;
    println!(
        "\n`{command_line}` on {} ({} minutes; load average {load_before} before, {} after):",
        machine::cpu_description(),
        (started.elapsed().as_secs_f64() / 60.0).round(),
        machine::load_average()
    );
    println!("{report}");
    Ok(())
}

//! `cargo xtask bench`: create and replace throughput and latency per
//! storage backend, and the server's resident memory holding many MXJobs.
//!
//! The server is the release build of `mxjob-server`, run as its own
//! process on loopback, so the numbers include HTTP, JSON, validation and
//! storage — what a client sees. The load comes from this process: a fixed
//! number of concurrent clients, each creating its own objects and then
//! replacing each of them once with the resourceVersion it got back (no
//! conflicts, so every request is a real write). Results are printed as a
//! Markdown table with the command line that produced them.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::Value;

/// What to measure.
pub struct Options {
    pub backends: Vec<String>,
    pub objects: usize,
    pub clients: usize,
    pub memory_objects: usize,
}

impl Options {
    pub fn parse(args: &[&str]) -> Result<Self> {
        let mut options = Options {
            backends: vec!["memory".into(), "sqlite".into()],
            objects: 2000,
            clients: 16,
            memory_objects: 100_000,
        };
        let mut args = args.iter();
        while let Some(flag) = args.next() {
            let mut value = || args.next().context(format!("{flag} needs a value"));
            match *flag {
                "--backends" => options.backends = value()?.split(',').map(String::from).collect(),
                "--objects" => options.objects = value()?.parse()?,
                "--clients" => options.clients = value()?.parse()?,
                "--memory-objects" => options.memory_objects = value()?.parse()?,
                other => bail!("unknown bench flag {other}"),
            }
        }
        Ok(options)
    }
}

struct Server {
    child: Child,
    url: String,
    _data: Option<PathBuf>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(dir) = &self._data {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn start(binary: &Path, backend: &str) -> Result<Server> {
    let port = crate::local_server::free_loopback_address()?.port();
    let mut command = Command::new(binary);
    command
        .args(["--store", backend, "--listen", &format!("127.0.0.1:{port}")])
        .args(["--history-revisions", "1000"])
        // Measure the API alone: the controller's own status writes would
        // make the replaces (which reuse the create's resourceVersion) 409.
        .arg("--controller=false")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let data = if backend == "sqlite" {
        let dir = std::env::temp_dir().join(format!("mxjob-bench-{}-{port}", std::process::id()));
        command.arg("--data-dir").arg(&dir);
        Some(dir)
    } else {
        None
    };
    let child = command
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    let server = Server {
        child,
        url: format!("http://127.0.0.1:{port}"),
        _data: data,
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            bail!("the server did not start listening");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(server)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// One phase's numbers.
struct Phase {
    requests: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Phase {
    fn row(&mut self, backend: &str, operation: &str) -> String {
        self.latencies.sort();
        format!(
            "| {backend} | {operation} | {} | {:.0} | {:.2} | {:.2} |",
            self.requests,
            self.requests as f64 / self.elapsed.as_secs_f64(),
            percentile(&self.latencies, 0.50).as_secs_f64() * 1000.0,
            percentile(&self.latencies, 0.99).as_secs_f64() * 1000.0,
        )
    }
}

fn job(seed: &Value, name: &str) -> Value {
    let mut job = seed.clone();
    job["metadata"] = serde_json::json!({ "name": name });
    if let Some(object) = job.as_object_mut() {
        object.remove("status");
    }
    job
}

/// Creates `objects` jobs from `clients` concurrent clients, then replaces
/// each once. Returns the create and replace phases.
async fn load(
    url: &str,
    seed: &Value,
    objects: usize,
    clients: usize,
    prefix: &str,
) -> Result<(Phase, Phase)> {
    let http = reqwest::Client::new();
    let collection = format!("{url}/apis/kubeflow.org/v1/namespaces/bench/mxjobs");
    let per_client = objects.div_ceil(clients);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for client in 0..clients {
        let (http, collection, seed, prefix) = (
            http.clone(),
            collection.clone(),
            seed.clone(),
            prefix.to_string(),
        );
        tasks.push(tokio::spawn(async move {
            let mut created = Vec::new();
            let mut latencies = Vec::new();
            for i in 0..per_client {
                let name = format!("{prefix}-{client}-{i}");
                let begun = Instant::now();
                let response = http
                    .post(&collection)
                    .json(&job(&seed, &name))
                    .send()
                    .await?;
                if response.status().as_u16() != 201 {
                    bail!("create answered {}", response.status());
                }
                let body: Value = response.json().await?;
                latencies.push(begun.elapsed());
                created.push(body);
            }
            Ok::<_, anyhow::Error>((created, latencies))
        }));
    }
    let mut all = Vec::new();
    let mut latencies = Vec::new();
    for task in tasks {
        let (created, times) = task.await??;
        all.push(created);
        latencies.extend(times);
    }
    let creates = Phase {
        requests: latencies.len(),
        elapsed: started.elapsed(),
        latencies,
    };

    let started = Instant::now();
    let mut tasks = Vec::new();
    for created in all {
        let (http, collection) = (http.clone(), collection.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            for mut object in created {
                let name = object["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                object["spec"]["ttlSecondsAfterFinished"] = Value::from(1);
                let begun = Instant::now();
                let response = http
                    .put(format!("{collection}/{name}"))
                    .json(&object)
                    .send()
                    .await?;
                if response.status().as_u16() != 200 {
                    bail!("replace answered {}", response.status());
                }
                response.bytes().await?;
                latencies.push(begun.elapsed());
            }
            Ok::<_, anyhow::Error>(latencies)
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await??);
    }
    let replaces = Phase {
        requests: latencies.len(),
        elapsed: started.elapsed(),
        latencies,
    };
    Ok((creates, replaces))
}

fn resident_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("no VmRSS")
}

pub fn bench(workspace: &Path, options: &Options, command_line: &str) -> Result<()> {
    let mut build = Command::new(env!("CARGO"));
    build.args(["build", "--release", "-p", "mxjob-server"]);
    if options.backends.iter().any(|b| b == "etcd") {
        build.args(["--features", "etcd"]);
    }
    let status = build.current_dir(workspace).status()?;
    if !status.success() {
        bail!("building the release server failed");
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"));
    let binary = target.join("release/mxjob-server");
    let seed: Value = serde_json::from_str(mxjob_api::openapi::REPLACE_EXAMPLE)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;

    println!(
        "`{command_line}` on this machine ({} cores):\n",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("| backend | operation | requests | per second | p50 ms | p99 ms |");
    println!("|---|---|---|---|---|---|");
    for backend in &options.backends {
        let server = start(&binary, backend)?;
        let (mut creates, mut replaces) = runtime.block_on(load(
            &server.url,
            &seed,
            options.objects,
            options.clients,
            "load",
        ))?;
        println!("{}", creates.row(backend, "create"));
        println!("{}", replaces.row(backend, "replace"));
    }
    println!();
    println!("| backend | MXJobs stored | resident memory |");
    println!("|---|---|---|");
    for backend in &options.backends {
        let server = start(&binary, backend)?;
        let before = resident_kib(server.child.id())?;
        runtime.block_on(load(
            &server.url,
            &seed,
            options.memory_objects,
            options.clients,
            "mem",
        ))?;
        let after = resident_kib(server.child.id())?;
        println!(
            "| {backend} | {} | {:.0} MiB (empty: {:.0} MiB) |",
            options.memory_objects,
            after as f64 / 1024.0,
            before as f64 / 1024.0
        );
    }
    Ok(())
}

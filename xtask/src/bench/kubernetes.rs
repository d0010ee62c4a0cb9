//! `cargo xtask bench --kubernetes`: how fast the Kubernetes executor makes
//! a job's Pods, alone and with many jobs at once, and what the controller
//! holds per job.
//!
//! Everything runs as it would for a user: the test cluster (kube-apiserver
//! over etcd, from `mxjob-tests`'s `mxjob-test-cluster` program, so the
//! harness is the tests' own), and the release `mxjob-server` with
//! `--executor kubernetes` pointed at it, as separate processes. The load
//! comes from this process over HTTP. A watch on the namespace's Pods,
//! opened before the first create, timestamps every Pod as the API server
//! announces it; a job counts as made when its last Pod is announced. No
//! kubelet runs, so the Pods stay Pending: this measures the executor, not
//! a scheduler. Memory is the server's resident set (`VmRSS`) before the
//! jobs and once all their Pods exist, with the jobs in the memory store.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

/// Replicas of the measured job: 1 scheduler, 2 servers, 4 workers.
const PODS_PER_JOB: usize = 7;
const NAMESPACE: &str = "bench";
const INSTALLATION: &str = "bench";
/// How long all the jobs' Pods may take to appear.
const MAKE_TIMEOUT: Duration = Duration::from_secs(1800);

/// What to measure.
pub struct Options {
    /// Jobs created at once.
    pub jobs: usize,
    /// Concurrent clients creating them.
    pub clients: usize,
    /// Jobs created one at a time, for the single-job latency.
    pub single: usize,
}

impl Options {
    pub fn parse(args: &[&str]) -> Result<Self> {
        let mut options = Options {
            jobs: 500,
            clients: 16,
            single: 10,
        };
        let mut args = args.iter();
        while let Some(flag) = args.next() {
            let mut value = || args.next().context(format!("{flag} needs a value"));
            match *flag {
                "--jobs" => options.jobs = value()?.parse()?,
                "--clients" => options.clients = value()?.parse()?,
                "--single" => options.single = value()?.parse()?,
                other => bail!("unknown bench --kubernetes flag {other}"),
            }
        }
        Ok(options)
    }
}

/// A child process killed on drop.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Builds with cargo and returns the executable of `bin`.
fn build(args: &[&str], bin: &str) -> Result<PathBuf> {
    let output = Command::new(env!("CARGO"))
        .arg("build")
        .args(args)
        .args(["--bin", bin, "--message-format=json-render-diagnostics"])
        .current_dir(crate::workspace())
        .stderr(Stdio::inherit())
        .output()
        .context("running cargo build")?;
    if !output.status.success() {
        bail!("building {bin} failed");
    }
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == bin)
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .with_context(|| format!("cargo reported no {bin} executable"))
}

/// The cluster program's answer.
struct ClusterInfo {
    url: String,
    kubeconfig: PathBuf,
    ca: PathBuf,
    token: String,
}

fn start_cluster(binary: &Path) -> Result<(Process, ClusterInfo)> {
    let mut child = Command::new(binary)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting mxjob-test-cluster")?;
    let stdout = child.stdout.take().context("its stdout")?;
    let process = Process(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let info: Value = serde_json::from_str(&line).context("the cluster's JSON line")?;
    let text = |key: &str| info[key].as_str().unwrap_or_default().to_string();
    Ok((
        process,
        ClusterInfo {
            url: text("url"),
            kubeconfig: PathBuf::from(text("kubeconfig")),
            ca: PathBuf::from(text("ca")),
            token: text("token"),
        },
    ))
}

fn start_server(binary: &Path, kubeconfig: &Path) -> Result<(Process, String)> {
    let port = crate::local_server::free_loopback_address()?.port();
    let child = Command::new(binary)
        .args(["--store", "memory", "--executor", "kubernetes"])
        .args(["--installation", INSTALLATION])
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting mxjob-server")?;
    let process = Process(child);
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            bail!("mxjob-server did not start listening");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok((process, format!("http://127.0.0.1:{port}")))
}

fn job(name: &str) -> Value {
    let role = |replicas: i32| {
        json!({
            "replicas": replicas,
            "restartPolicy": "Never",
            "template": {"spec": {"containers": [{
                "name": "mxnet",
                "image": "mxnet/python:1.9.1",
                "command": ["python3", "train.py"],
            }]}},
        })
    };
    json!({
        "apiVersion": "kubeflow.org/v1",
        "kind": "MXJob",
        "metadata": {"name": name},
        "spec": {
            "jobMode": "MXTrain",
            "mxReplicaSpecs": {"Scheduler": role(1), "Server": role(2), "Worker": role(4)},
        },
    })
}

/// When each job's Pods were announced, by job name.
type Seen = Arc<Mutex<HashMap<String, Vec<Instant>>>>;

/// Follows the namespace's Pods; records each ADDED Pod's arrival.
async fn watch_pods(kube: reqwest::Client, info: &ClusterInfo, seen: Seen) -> Result<()> {
    let url = format!(
        "{}/api/v1/namespaces/{NAMESPACE}/pods?watch=true&labelSelector=mxjob.kubeflow.org%2Finstallation%3D{INSTALLATION}",
        info.url
    );
    let mut response = kube.get(url).bearer_auth(&info.token).send().await?;
    if !response.status().is_success() {
        bail!("watching pods: {}", response.status());
    }
    let mut buffer = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let now = Instant::now();
        buffer.extend_from_slice(&chunk);
        while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buffer.drain(..=end).collect();
            let event: Value = serde_json::from_slice(&line)?;
            if event["type"] == "ADDED" {
                let job = event["object"]["metadata"]["labels"]["job-name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
                seen.entry(job).or_default().push(now);
            }
        }
    }
    Ok(())
}

/// When the last of a job's Pods was announced, once all were.
fn made(seen: &Seen, job: &str) -> Option<Instant> {
    let seen = seen.lock().unwrap_or_else(|e| e.into_inner());
    let times = seen.get(job)?;
    (times.len() >= PODS_PER_JOB).then(|| times.iter().max().copied())?
}

async fn create(http: &reqwest::Client, url: &str, name: &str) -> Result<Instant> {
    let begun = Instant::now();
    let response = http
        .post(format!(
            "{url}/apis/kubeflow.org/v1/namespaces/{NAMESPACE}/mxjobs"
        ))
        .json(&job(name))
        .send()
        .await?;
    if response.status().as_u16() != 201 {
        bail!("create answered {}", response.status());
    }
    Ok(begun)
}

async fn wait_made(seen: &Seen, jobs: &[String], timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    while jobs.iter().any(|j| made(seen, j).is_none()) {
        if Instant::now() > deadline {
            let missing = jobs.iter().filter(|j| made(seen, j).is_none()).count();
            bail!("{missing} jobs still lack pods after {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

fn millis(d: Duration) -> String {
    format!("{:.0}", d.as_secs_f64() * 1000.0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

pub fn bench(options: &Options, command_line: &str) -> Result<()> {
    let server_binary = build(&["--release", "-p", "mxjob-server"], "mxjob-server")?;
    let cluster_binary = build(&["-p", "mxjob-tests"], "mxjob-test-cluster")?;
    let (mut cluster, info) = start_cluster(&cluster_binary)?;
    let (server, url) = start_server(&server_binary, &info.kubeconfig)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(measure(options, &info, &url, server.0.id()));
    drop(server);
    // Closing its input stops the cluster.
    drop(cluster.0.stdin.take().map(|mut stdin| stdin.flush()));
    let result = result?;
    println!(
        "`{command_line}` on this machine ({} cores):\n",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("{result}");
    Ok(())
}

async fn measure(options: &Options, info: &ClusterInfo, url: &str, pid: u32) -> Result<String> {
    let ca = reqwest::Certificate::from_pem(&std::fs::read(&info.ca)?)?;
    let kube = reqwest::Client::builder()
        .add_root_certificate(ca)
        .build()?;
    let response = kube
        .post(format!("{}/api/v1/namespaces", info.url))
        .bearer_auth(&info.token)
        .json(&json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}))
        .send()
        .await?;
    if !response.status().is_success() {
        bail!("creating the namespace: {}", response.status());
    }
    let seen: Seen = Arc::default();
    let watcher = tokio::spawn({
        let (kube, seen) = (kube.clone(), seen.clone());
        let info = ClusterInfo {
            url: info.url.clone(),
            kubeconfig: info.kubeconfig.clone(),
            ca: info.ca.clone(),
            token: info.token.clone(),
        };
        async move { watch_pods(kube, &info, seen).await }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let http = reqwest::Client::new();

    // One job at a time.
    let mut single = Vec::new();
    for i in 0..options.single {
        let name = format!("single-{i}");
        let begun = create(&http, url, &name).await?;
        wait_made(&seen, std::slice::from_ref(&name), Duration::from_secs(120)).await?;
        single.push(made(&seen, &name).context("made")? - begun);
    }
    single.sort();

    // Many at once.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = resident_kib(pid)?;
    let names: Vec<String> = (0..options.jobs).map(|i| format!("many-{i}")).collect();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for chunk in names.chunks(names.len().div_ceil(options.clients.max(1)).max(1)) {
        let (http, url, chunk) = (http.clone(), url.to_string(), chunk.to_vec());
        tasks.push(tokio::spawn(async move {
            let mut begun = Vec::new();
            for name in chunk {
                begun.push((name.clone(), create(&http, &url, &name).await?));
            }
            Ok::<_, anyhow::Error>(begun)
        }));
    }
    let mut begun = HashMap::new();
    for task in tasks {
        begun.extend(task.await??);
    }
    wait_made(&seen, &names, MAKE_TIMEOUT).await?;
    let last = names
        .iter()
        .filter_map(|n| made(&seen, n))
        .max()
        .context("no pods")?;
    let mut each: Vec<Duration> = names
        .iter()
        .filter_map(|n| Some(made(&seen, n)? - *begun.get(n)?))
        .collect();
    each.sort();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = resident_kib(pid)?;
    watcher.abort();

    let mut out = String::new();
    out.push_str("| jobs (1 scheduler, 2 servers, 4 workers each) | all pods made after | per job p50 ms | per job p99 ms |\n");
    out.push_str("|---|---|---|---|\n");
    out.push_str(&format!(
        "| 1 at a time ({} jobs) | {} ms (p50) | {} | {} |\n",
        options.single,
        millis(percentile(&single, 0.5)),
        millis(percentile(&single, 0.5)),
        millis(percentile(&single, 0.99)),
    ));
    out.push_str(&format!(
        "| {} at once ({} clients) | {:.1} s | {} | {} |\n\n",
        options.jobs,
        options.clients,
        (last - started).as_secs_f64(),
        millis(percentile(&each, 0.5)),
        millis(percentile(&each, 0.99)),
    ));
    out.push_str(
        "| server resident memory | before | with the jobs | per job |\n|---|---|---|---|\n",
    );
    out.push_str(&format!(
        "| `--store memory --executor kubernetes` | {:.1} MiB | {:.1} MiB | {:.1} KiB |\n",
        before as f64 / 1024.0,
        after as f64 / 1024.0,
        after.saturating_sub(before) as f64 / options.jobs.max(1) as f64,
    ));
    Ok(out)
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

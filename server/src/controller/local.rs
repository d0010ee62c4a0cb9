//! The local executor: every replica of a job is a process on this machine.
//!
//! A replica runs the `command` and `args` of its pod template's `mxnet`
//! container (the image is ignored: there is no container runtime here),
//! with the container's `env` after `$(VAR)` expansion, in its `workingDir`
//! (default: the job's directory), and with the variables the MXNet
//! operator gives its pods: `MX_CONFIG`, and for MXTrain the `DMLC_*` set.
//! Every replica gets its own loopback port; `MX_CONFIG` lists them all, as
//! the operator lists each replica's service, and the scheduler's is
//! `DMLC_PS_ROOT_PORT`.
//!
//! Files live under `LOG_DIR/{namespace}/{name}/{uid}/`: `{Type}-{index}.log`
//! holds stdout and stderr of every attempt of a replica (with one
//! `[mxjob]` line before each start and one at each exit),
//! `{Type}-{index}.pid` the process id while it runs.
//!
//! Each replica is the leader of its own process group, and is stopped as a
//! group: SIGTERM, then SIGKILL after a grace period — and when the leader
//! exits by itself, whatever it left behind in the group is killed, as a
//! container's processes end with it. A server that dies without stopping
//! its replicas leaves them running; the pid files let the next leader kill
//! them. Before it signals a recorded pid it checks, in
//! `/proc/{pid}/environ`, that the process still carries the replica's
//! `MXJOB_REPLICA_ID`, so that a recycled pid is never shot.

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use k8s_openapi::api::core::v1::Container;
use slog::{warn, Logger};

use super::environment::{self, operator_variables, Addresses};

use mxjob_api::model::{MXJob, ReplicaType};
use rustix::process::{Pid, Signal};

/// The variable that marks a process as a replica of a job (see module docs).
pub const REPLICA_ID_VAR: &str = "MXJOB_REPLICA_ID";

/// The address every replica listens on.
const LOOPBACK: &str = "127.0.0.1";

/// `PATH` for replicas when the server has none.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Where a job's files live.
pub fn job_dir(root: &Path, namespace: &str, name: &str, uid: &str) -> PathBuf {
    root.join(namespace).join(name).join(uid)
}

/// The log file of one replica.
pub fn log_file(job_dir: &Path, replica_type: &ReplicaType, index: i32) -> PathBuf {
    job_dir.join(format!("{replica_type}-{index}.log"))
}

fn pid_file(job_dir: &Path, replica_type: &ReplicaType, index: i32) -> PathBuf {
    job_dir.join(format!("{replica_type}-{index}.pid"))
}

pub use super::environment::{replicas, role};

/// One loopback port per replica, by role.
#[derive(Clone, Debug, Default)]
pub struct Ports(BTreeMap<ReplicaType, Vec<u16>>);

impl Ports {
    /// Finds a free port for every replica of `job`. The listeners are held
    /// until all are chosen, so no two replicas get the same port.
    pub fn allocate(job: &MXJob) -> std::io::Result<Self> {
        let mut held = Vec::new();
        let mut ports = BTreeMap::new();
        for replica_type in job.spec.mx_replica_specs.keys() {
            let mut list = Vec::new();
            for _ in 0..replicas(job, replica_type) {
                let listener = std::net::TcpListener::bind((LOOPBACK, 0))?;
                list.push(listener.local_addr()?.port());
                held.push(listener);
            }
            ports.insert(replica_type.clone(), list);
        }
        Ok(Ports(ports))
    }

    fn get(&self, replica_type: &ReplicaType, index: i32) -> u16 {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.0.get(replica_type)?.get(i).copied())
            .unwrap_or(0)
    }
}

impl Addresses for Ports {
    fn address(&self, replica_type: &ReplicaType, index: i32) -> (String, i32) {
        (
            LOOPBACK.to_string(),
            i32::from(self.get(replica_type, index)),
        )
    }
}

/// `MX_CONFIG` with every replica on loopback at its own port.
pub fn mx_config(
    job: &MXJob,
    ports: &Ports,
    replica_type: &ReplicaType,
    index: i32,
) -> serde_json::Value {
    environment::mx_config(job, ports, replica_type, index)
}

/// Expands `$(NAME)` references as Kubernetes does: a defined variable is
/// replaced, an undefined one is left as written, and `$$` is a `$`.
pub fn expand(text: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let tail = &rest[at + 1..];
        if let Some(after) = tail.strip_prefix('$') {
            out.push('$');
            rest = after;
        } else if let Some(reference) = tail.strip_prefix('(') {
            match reference.find(')') {
                Some(end) => {
                    let name = &reference[..end];
                    match lookup(name) {
                        Some(value) => out.push_str(&value),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &reference[end + 1..];
                }
                None => {
                    out.push('$');
                    rest = tail;
                }
            }
        } else {
            out.push('$');
            rest = tail;
        }
    }
    out.push_str(rest);
    out
}

/// An ordered environment in which a later value of a name replaces an
/// earlier one, as in a pod.
#[derive(Clone, Debug, Default)]
pub struct Environment(Vec<(String, String)>);

impl Environment {
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        let value = value.into();
        match self.0.iter_mut().find(|(n, _)| n == name) {
            Some(entry) => entry.1 = value,
            None => self.0.push((name.to_string(), value)),
        }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }
}

/// The `mxnet` container of a role.
pub fn mxnet_container<'a>(job: &'a MXJob, replica_type: &ReplicaType) -> Option<&'a Container> {
    job.spec
        .mx_replica_specs
        .get(replica_type)?
        .template
        .spec
        .as_ref()?
        .containers
        .iter()
        .find(|c| c.name == "mxnet")
}

/// What a replica process is given. `notes` are lines for its log
/// (settings the local executor cannot honour).
#[derive(Debug)]
pub struct Plan {
    pub argv: Vec<String>,
    pub env: Environment,
    pub working_dir: PathBuf,
    pub notes: Vec<String>,
}

/// Why a replica did not start (written to its log, and to the
/// controller's).
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("{0} has no container named mxnet")]
    NoMxnetContainer(ReplicaType),
    #[error(
        "the mxnet container has neither command nor args; the local executor ignores \
         images, so it needs a command"
    )]
    NoCommand,
    #[error("creating {path}: {source}")]
    Directory {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("opening {path}: {source}")]
    Log {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("starting {program:?}: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
}

/// Works out how to run one replica.
pub fn plan(
    job: &MXJob,
    ports: &Ports,
    replica_type: &ReplicaType,
    index: i32,
    job_dir: &Path,
) -> Result<Plan, LaunchError> {
    let name = job.metadata.name.as_deref().unwrap_or_default();
    let uid = job.metadata.uid.as_deref().unwrap_or_default();
    let container = mxnet_container(job, replica_type)
        .ok_or_else(|| LaunchError::NoMxnetContainer(replica_type.clone()))?;
    let mut notes = Vec::new();
    let mut env = Environment::default();
    env.set(
        "PATH",
        std::env::var("PATH").unwrap_or_else(|_| DEFAULT_PATH.to_string()),
    );
    env.set("HOSTNAME", format!("{name}-{}-{index}", role(replica_type)));
    for var in container.env.iter().flatten() {
        match &var.value {
            Some(value) => {
                let value = expand(value, |n| env.get(n).map(str::to_string));
                env.set(&var.name, value);
            }
            None if var.value_from.is_some() => notes.push(format!(
                "env {}: valueFrom is not supported by the local executor; left unset",
                var.name
            )),
            None => env.set(&var.name, ""),
        }
    }
    if container.env_from.as_ref().is_some_and(|e| !e.is_empty()) {
        notes.push("envFrom is not supported by the local executor; ignored".to_string());
    }
    // The operator's variables come last and so win, as in its pods.
    for (name, value) in operator_variables(job, ports, replica_type, index, false) {
        env.set(&name, value);
    }
    env.set(REPLICA_ID_VAR, format!("{uid}/{replica_type}/{index}"));

    let lookup = |n: &str| env.get(n).map(str::to_string);
    let argv: Vec<String> = container
        .command
        .iter()
        .flatten()
        .chain(container.args.iter().flatten())
        .map(|a| expand(a, lookup))
        .collect();
    if argv.is_empty() {
        return Err(LaunchError::NoCommand);
    }
    let working_dir = match container.working_dir.as_deref() {
        Some(dir) if !dir.is_empty() => job_dir.join(dir),
        _ => job_dir.to_path_buf(),
    };
    Ok(Plan {
        argv,
        env,
        working_dir,
        notes,
    })
}

/// Appends one `[mxjob]` line to a replica's log.
fn note(log: &Path, text: &str) {
    let line = format!(
        "[mxjob] {} {text}\n",
        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    if let Ok(mut file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
    {
        let _ = file.write_all(line.as_bytes());
    }
}

/// Sends `signal` to the process group `pgid`. A group that is gone
/// (ESRCH) is fine: there is nothing left to stop.
fn signal_group(pgid: i32, signal: Signal) {
    if let Some(group) = Pid::from_raw(pgid).filter(|_| pgid > 1) {
        let _ = rustix::process::kill_process_group(group, signal);
    }
}

/// The exit code a container runtime reports: the code, or 128 + signal.
fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(255)
}

/// A running replica process.
#[derive(Debug)]
pub struct Process {
    pub pid: i32,
    exited: tokio::sync::watch::Receiver<Option<i32>>,
}

impl Process {
    /// A process that could not start, as if it had exited with `code`.
    pub fn exited_with(code: i32) -> Self {
        let (_, exited) = tokio::sync::watch::channel(Some(code));
        Process { pid: 0, exited }
    }

    pub fn has_exited(&self) -> bool {
        self.exited.borrow().is_some()
    }
}

/// Starts and stops replica processes; see the module documentation.
#[derive(Clone, Debug)]
pub struct LocalExecutor {
    root: PathBuf,
    grace: Duration,
    log: Logger,
}

impl LocalExecutor {
    pub fn new(root: PathBuf, grace: Duration, log: Logger) -> Self {
        LocalExecutor { root, grace, log }
    }

    /// The directory of a job's files.
    pub fn job_dir(&self, job: &MXJob) -> PathBuf {
        let meta = &job.metadata;
        job_dir(
            &self.root,
            meta.namespace.as_deref().unwrap_or_default(),
            meta.name.as_deref().unwrap_or_default(),
            meta.uid.as_deref().unwrap_or_default(),
        )
    }

    /// Starts attempt `attempt` of a replica; `on_exit` gets its exit code.
    /// An error means nothing was started (the reason is in the log too).
    pub fn launch(
        &self,
        job: &MXJob,
        ports: &Ports,
        replica_type: &ReplicaType,
        index: i32,
        attempt: u32,
        on_exit: impl FnOnce(i32) + Send + 'static,
    ) -> Result<Process, LaunchError> {
        let dir = self.job_dir(job);
        std::fs::create_dir_all(&dir).map_err(|source| LaunchError::Directory {
            path: dir.clone(),
            source,
        })?;
        let log_path = log_file(&dir, replica_type, index);
        let started = plan(job, ports, replica_type, index, &dir).and_then(|plan| {
            for line in &plan.notes {
                note(&log_path, line);
            }
            // Before the process can write anything.
            note(&log_path, &format!("attempt {attempt} starting"));
            self.spawn(&plan, &log_path)
        });
        let child = match started {
            Ok(child) => child,
            Err(error) => {
                note(
                    &log_path,
                    &format!("attempt {attempt} did not start: {error}"),
                );
                return Err(error);
            }
        };
        let pid = child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .unwrap_or_default();
        let pid_path = pid_file(&dir, replica_type, index);
        let _ = std::fs::write(&pid_path, pid.to_string());
        let (exited_tx, exited) = tokio::sync::watch::channel(None);
        tokio::spawn(async move {
            let mut child = child;
            let code = match child.wait().await {
                Ok(status) => exit_code(status),
                Err(_) => 128 + Signal::KILL.as_raw(),
            };
            // What the leader left behind in its group ends with it.
            signal_group(pid, Signal::KILL);
            let _ = std::fs::remove_file(&pid_path);
            note(
                &log_path,
                &format!("attempt {attempt} (pid {pid}) exited with code {code}"),
            );
            exited_tx.send_replace(Some(code));
            on_exit(code);
        });
        Ok(Process { pid, exited })
    }

    fn spawn(&self, plan: &Plan, log_path: &Path) -> Result<tokio::process::Child, LaunchError> {
        let open = || {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log_path)
                .map_err(|source| LaunchError::Log {
                    path: log_path.to_path_buf(),
                    source,
                })
        };
        let (stdout, stderr) = (open()?, open()?);
        let mut command = tokio::process::Command::new(&plan.argv[0]);
        command
            .args(&plan.argv[1..])
            .env_clear()
            .envs(plan.env.iter())
            .current_dir(&plan.working_dir)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .process_group(0)
            .kill_on_drop(false);
        command.spawn().map_err(|source| LaunchError::Spawn {
            program: plan.argv[0].clone(),
            source,
        })
    }

    /// Stops processes: SIGTERM to each group, SIGKILL to those still there
    /// after the grace period (`grace`, or the executor's); returns once all
    /// have exited.
    pub async fn terminate(&self, processes: Vec<&mut Process>, grace: Option<Duration>) {
        let grace = grace.unwrap_or(self.grace);
        let stops = processes.into_iter().map(|process| async move {
            if process.has_exited() {
                return;
            }
            signal_group(process.pid, Signal::TERM);
            let exited = |p: &mut Process| {
                let mut receiver = p.exited.clone();
                async move {
                    let _ = receiver.wait_for(Option::is_some).await;
                }
            };
            if tokio::time::timeout(grace, exited(process)).await.is_err() {
                signal_group(process.pid, Signal::KILL);
                let _ = tokio::time::timeout(Duration::from_secs(5), exited(process)).await;
            }
        });
        futures::future::join_all(stops).await;
    }

    /// Kills the replicas a previous server left running for `job`.
    pub fn kill_orphans(&self, job: &MXJob) {
        let uid = job.metadata.uid.as_deref().unwrap_or_default();
        kill_orphans_in(&self.job_dir(job), uid, &self.log);
    }

    /// Removes the log files of a job (its processes must be gone).
    pub fn remove_logs(&self, job: &MXJob) {
        let dir = self.job_dir(job);
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            if entry.path().extension().is_some_and(|e| e == "log") {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }

    /// Removes everything of a deleted job (its processes must be gone).
    pub fn remove_job(&self, job: &MXJob) {
        let dir = self.job_dir(job);
        if let Err(error) = std::fs::remove_dir_all(&dir) {
            if error.kind() != std::io::ErrorKind::NotFound {
                warn!(self.log, "removing a deleted job's files";
                    "dir" => %dir.display(), "error" => %error);
            }
        }
        remove_empty_parents(&dir, &self.root);
    }

    /// Kills the orphaned processes and removes the files of every job not
    /// in `live` (uids): jobs deleted while no server ran them.
    pub fn collect_garbage(&self, live: &HashSet<String>) {
        let entries = |dir: &Path| {
            std::fs::read_dir(dir)
                .into_iter()
                .flatten()
                .flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path())
                .collect::<Vec<_>>()
        };
        for namespace in entries(&self.root) {
            for name in entries(&namespace) {
                for job in entries(&name) {
                    let uid = job
                        .file_name()
                        .and_then(|n| n.to_str())
                        .unwrap_or_default()
                        .to_string();
                    if live.contains(&uid) {
                        continue;
                    }
                    kill_orphans_in(&job, &uid, &self.log);
                    let _ = std::fs::remove_dir_all(&job);
                    remove_empty_parents(&job, &self.root);
                }
            }
        }
    }
}

/// Removes the directories between `dir` and `root` that became empty.
fn remove_empty_parents(dir: &Path, root: &Path) {
    let mut current = dir.parent();
    while let Some(parent) = current {
        if parent == root || !parent.starts_with(root) || std::fs::remove_dir(parent).is_err() {
            break;
        }
        current = parent.parent();
    }
}

fn kill_orphans_in(dir: &Path, uid: &str, log: &Logger) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "pid") {
            continue;
        }
        let pid = std::fs::read_to_string(&path)
            .ok()
            .and_then(|text| text.trim().parse::<i32>().ok());
        if let Some(pid) = pid.filter(|pid| carries_marker(*pid, uid)) {
            warn!(log, "killing a replica a previous server left running";
                "pid" => pid, "uid" => uid);
            signal_group(pid, Signal::KILL);
        }
        let _ = std::fs::remove_file(&path);
    }
}

/// Whether process `pid` is a replica of the job `uid` (see module docs).
fn carries_marker(pid: i32, uid: &str) -> bool {
    let marker = format!("{REPLICA_ID_VAR}={uid}/");
    std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|environ| {
        environ
            .split(|b| *b == 0)
            .any(|var| var.starts_with(marker.as_bytes()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn job() -> MXJob {
        let mut job: MXJob =
            serde_json::from_str(mxjob_api::openapi::REPLACE_EXAMPLE).expect("the seed decodes");
        job.metadata.uid = Some("u-1".to_string());
        let worker = std::sync::Arc::make_mut(&mut job.spec.mx_replica_specs)
            .get_mut(&ReplicaType::Worker)
            .expect("the seed has workers");
        worker.replicas = Some(2);
        let container = worker
            .template
            .spec
            .as_mut()
            .and_then(|s| s.containers.iter_mut().find(|c| c.name == "mxnet"))
            .expect("an mxnet container");
        container.command = Some(vec!["python3".into()]);
        container.args = Some(vec![
            "train.py".into(),
            "--port=$(DMLC_PS_ROOT_PORT)".into(),
        ]);
        container.env = Some(vec![
            k8s_openapi::api::core::v1::EnvVar {
                name: "A".into(),
                value: Some("a".into()),
                value_from: None,
            },
            k8s_openapi::api::core::v1::EnvVar {
                name: "B".into(),
                value: Some("$(A)-$(MISSING)-$$".into()),
                value_from: None,
            },
        ]);
        job
    }

    #[test]
    fn expansion_follows_kubernetes() {
        let lookup = |n: &str| (n == "X").then(|| "1".to_string());
        assert_eq!(expand("$(X)/$(Y)/$$(X)/$/$(", lookup), "1/$(Y)/$(X)/$/$(");
    }

    #[test]
    fn a_worker_gets_the_operators_environment() {
        let job = job();
        let ports = Ports::allocate(&job).expect("ports");
        let plan = plan(&job, &ports, &ReplicaType::Worker, 1, Path::new("/tmp/j")).expect("plan");
        let env = &plan.env;
        let root_port = ports.get(&ReplicaType::Scheduler, 0).to_string();
        assert_eq!(env.get("DMLC_ROLE"), Some("worker"));
        assert_eq!(env.get("DMLC_PS_ROOT_URI"), Some("127.0.0.1"));
        assert_eq!(env.get("DMLC_PS_ROOT_PORT"), Some(root_port.as_str()));
        assert_eq!(env.get("DMLC_NUM_WORKER"), Some("2"));
        assert_eq!(env.get("DMLC_NUM_SERVER"), Some("1"));
        assert_eq!(env.get("DMLC_WORKER_ID"), Some("1"));
        assert_eq!(env.get("DMLC_USE_KUBERNETES"), Some("0"));
        assert_eq!(env.get("B"), Some("a-$(MISSING)-$"));
        assert_eq!(env.get(REPLICA_ID_VAR), Some("u-1/Worker/1"));
        assert_eq!(
            plan.argv,
            ["python3", "train.py", &format!("--port={root_port}")]
        );
        let config: serde_json::Value =
            serde_json::from_str(env.get("MX_CONFIG").expect("MX_CONFIG")).expect("JSON");
        assert_eq!(config["task"], json!({"type": "worker", "index": 1}));
        assert_eq!(
            config["cluster"]["worker"].as_array().map(Vec::len),
            Some(2)
        );
        assert_eq!(
            config["cluster"]["scheduler"][0]["port"].to_string(),
            root_port
        );
        assert_eq!(config["labels"]["server"], "");
    }

    #[test]
    fn every_replica_gets_its_own_port() {
        let job = job();
        let ports = Ports::allocate(&job).expect("ports");
        let mut all: Vec<u16> = ports.0.values().flatten().copied().collect();
        let count = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), count);
        assert_eq!(count, 4);
    }
}

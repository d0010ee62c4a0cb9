//! One task per job: it owns the job's replicas and timers and is the only
//! writer of the job's status in this server.
//!
//! The task wakes for four things — a newer version of the job from the
//! watch, a replica process exiting, a change to one of its Pods, and its
//! one timer (the earliest of the active deadline, the TTL and a pending
//! replica start) — and then reconciles: it works out the status the job should have, writes it if it
//! differs from the stored one (compare-and-swap on the resourceVersion; on
//! a conflict it re-reads and works it out again), and starts the replicas
//! whose time has come. Decisions with side effects (a replica failed for
//! good, the deadline passed) are kept in memory, so working the status out
//! again after a conflict never undoes them.
//!
//! **One state machine, two executors.** A replica is waiting to start,
//! running (a [`Handle`]: a process, or a Pod), succeeded, failed, or
//! stopped. The local executor reports a process's exit code; the
//! Kubernetes executor's Pods report their phase, the `mxnet` container's
//! exit code and their restart counts, which [`Worker::sync_pods`] turns
//! into the same transitions: a Pod that `Succeeded` is an exit with 0; one
//! that `Failed` is an exit whose meaning the restart policy decides as the
//! operator decides it (`ExitCode`: 128–255 retried by deleting and
//! re-creating the Pod, 1–127 fatal; the other policies: fatal, since the
//! kubelet restarts what they restart and a Pod fails only when it gives
//! up); and restarts the kubelet made count against `backoffLimit` as the
//! controller's own restarts do. A Pod that vanished is made again, as the
//! operator makes a missing Pod.
//!
//! **Parked jobs.** Under `--executor none` a task whose job has nothing
//! due (no deadline, no TTL, no status to write) tells the controller it is
//! [`Idle`]; if the controller has sent it nothing since, it answers
//! [`JobEvent::Park`], drops its end of the inbox, and the task ends. A
//! stored job then costs the controller a map entry instead of a task
//! holding the decoded job, and the next change to the job starts a fresh
//! task from the job it brings, unless it leaves what the task decided
//! from ([`DecidedFrom`]) as it was. Nothing is lost: such a task holds no
//! decision the stored status does not already say. The handshake goes
//! through the controller, the one sender of changes, so a change is
//! never sent to a task that has gone.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use slog::{info, o, warn, Logger};
use tokio::sync::{mpsc, watch};

use super::conditions::{self as cond, finished, finished_at};
use super::environment::replicas;
use super::executor::{Executor, Handle, PodHandle};
use super::kubernetes::error::ClusterError;
use super::kubernetes::objects::{owner_uid, pod_state, replica_name, replica_of, Phase};
use super::kubernetes::{KubernetesExecutor, PodRef};
use super::local::{LocalExecutor, Ports, Process};
use crate::metrics::ControllerMetrics;
use crate::registry::{Error, Object, Registry, ORPHAN_FINALIZER};
use mxjob_api::model::{
    CleanPodPolicy, ConditionStatus, JobConditionType, JobMode, JobStatus, MXJob, ReplicaStatus,
    ReplicaType, RestartPolicy,
};

/// How many times one reconcile writes before it waits for the next wake.
const MAX_PASSES: usize = 16;
/// How soon a failed store call is retried.
const RETRY: Duration = Duration::from_secs(1);
/// How soon a deleted job's objects are tried again while the cluster
/// cannot be reached.
const REMOVE_RETRY: Duration = Duration::from_secs(5);
/// The exit code of a failed Pod whose `mxnet` container reported none
/// (evicted, say): not retryable.
const NO_EXIT_CODE: i32 = -1;

/// What the job tasks share.
pub struct Shared {
    pub registry: Registry,
    /// `None` with `--executor none`.
    pub executor: Option<Executor>,
    pub log: Logger,
    /// Queue depth, reconcile time, jobs by condition, sync.
    pub metrics: ControllerMetrics,
}

impl Shared {
    /// Hands a change from the watch to a job task, counted in the queue
    /// depth until the task takes it ([`taken`]).
    pub fn send(&self, inbox: &mpsc::UnboundedSender<JobEvent>, event: JobEvent) {
        if inbox.send(event).is_ok() {
            self.metrics.queued();
        }
    }
}

/// A job task took `event` from its inbox: a change [`Shared::send`]
/// counted leaves the queue (process exits are not counted).
fn taken(metrics: &ControllerMetrics, event: &JobEvent) {
    if !matches!(event, JobEvent::Exited { .. }) {
        metrics.dequeued();
    }
}

/// What wakes a job task.
#[derive(Debug)]
pub enum JobEvent {
    /// The job as the store has it now.
    Observed(Arc<Object>),
    /// The job was deleted; its last state when known (it says how its
    /// replicas are to go: see [`Registry::delete`](crate::registry::Registry::delete)).
    Deleted(Option<Arc<Object>>),
    /// Attempt `attempt` of a replica exited with `code`.
    Exited {
        replica: (ReplicaType, i32),
        attempt: u32,
        code: i32,
    },
    /// Every Pod labelled with the job's name, after a (re)list of the
    /// cluster: whatever of the job's is not here is gone.
    Pods(Vec<Arc<Pod>>),
    /// One of them changed.
    Pod(Arc<Pod>),
    /// One of them was deleted.
    PodGone(Arc<Pod>),
    /// The cluster cannot be reached (why), or can again (`None`).
    Cluster(Option<String>),
    /// The answer to [`Idle`]: nothing was sent since, so end the task.
    Park,
}

/// A job task has nothing to do: it has taken `taken` changes from the
/// controller, and asks to be parked (see the module doc).
#[derive(Debug)]
pub struct Idle {
    pub key: (String, String),
    pub uid: String,
    pub taken: u64,
    /// What the task decided from when it found nothing to do.
    pub decided_from: DecidedFrom,
}

/// What a task under `--executor none` decides from: the status, the
/// active deadline (counted from `startTime`) and, once the job finished,
/// the TTL. A parked job whose new version gives the same is one a task
/// would find nothing to do for, such as a replace of its labels or of
/// the TTL of a running job, so it stays parked.
///
/// Kept as a 64-bit hash (std's `DefaultHasher`, over the status as JSON)
/// so that a parked job costs the controller 8 bytes more, not a
/// copy of its status nor the decoded job (holding the job's object kept
/// 10,000 decoded jobs alive: 58 KiB each). Two different inputs share a
/// hash with odds of 2⁻⁶⁴.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecidedFrom(u64);

impl DecidedFrom {
    /// The stored bytes of the status when the object has them at hand
    /// (they are its compact JSON), else the status encoded.
    pub fn of(object: &Object) -> DecidedFrom {
        Self::from_parts(
            object.job_without_managed_fields(),
            object.replaced().status,
        )
    }

    fn from_parts(job: &MXJob, status_json: Option<&[u8]>) -> DecidedFrom {
        use std::hash::{Hash, Hasher};
        // Compared only within this process, so any fixed hasher does.
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        match status_json {
            Some(bytes) => hasher.write(bytes),
            // Encoding a status cannot fail; an error would only hash less.
            None => {
                let _ = serde_json::to_writer(HashWriter(&mut hasher), &job.status);
            }
        }
        job.spec.active_deadline_seconds.hash(&mut hasher);
        if finished(&job.status).is_some() {
            job.spec.ttl_seconds_after_finished.hash(&mut hasher);
        }
        DecidedFrom(hasher.finish())
    }
}

/// Bytes written into a hasher.
struct HashWriter<'a, H>(&'a mut H);

impl<H: std::hash::Hasher> std::io::Write for HashWriter<'_, H> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Runs the task of `job` until the job is gone or `stop` fires; what is
/// left in its inbox then leaves the queue.
pub async fn run(
    shared: Arc<Shared>,
    job: Arc<Object>,
    events: mpsc::UnboundedSender<JobEvent>,
    mut inbox: mpsc::UnboundedReceiver<JobEvent>,
    idle: mpsc::UnboundedSender<Idle>,
    stop: watch::Receiver<bool>,
) {
    let metrics = shared.metrics.clone();
    let _counted = metrics.task_started();
    serve(shared, job, events, &mut inbox, idle, stop).await;
    inbox.close();
    while let Ok(event) = inbox.try_recv() {
        taken(&metrics, &event);
    }
}

async fn serve(
    shared: Arc<Shared>,
    job: Arc<Object>,
    events: mpsc::UnboundedSender<JobEvent>,
    inbox: &mut mpsc::UnboundedReceiver<JobEvent>,
    idle: mpsc::UnboundedSender<Idle>,
    mut stop: watch::Receiver<bool>,
) {
    let current = job.job_without_managed_fields();
    let log = shared.log.new(o!(
        "namespace" => current.metadata.namespace.clone().unwrap_or_default(),
        "job" => current.metadata.name.clone().unwrap_or_default(),
    ));
    let adopted = current.status.start_time.is_some() && finished(&current.status).is_none();
    if let Some(Executor::Local(executor)) = &shared.executor {
        // Whatever a previous server left running of this job is not ours to manage.
        executor.kill_orphans(current);
    }
    // Changes taken from the controller, and that count when it last heard
    // this task was idle.
    let mut taken_from_controller: u64 = 0;
    let mut told_idle: Option<u64> = None;
    let mut worker = Worker {
        shared,
        job,
        events,
        log,
        adopted,
        run: None,
        verdict: None,
        cleaned: false,
        pods: None,
        discarded: HashSet::new(),
        discard: Vec::new(),
        trouble: None,
        unreachable: None,
        refusals: 0,
    };
    loop {
        let reconciling = std::time::Instant::now();
        let reconciled = worker.reconcile().await;
        worker.shared.metrics.reconciled(reconciling.elapsed());
        let wake = match reconciled {
            Some(wake) => wake,
            None => return worker.remove(&mut stop).await,
        };
        if wake.is_none()
            && worker.shared.executor.is_none()
            && told_idle != Some(taken_from_controller)
        {
            told_idle = Some(taken_from_controller);
            let _ = idle.send(Idle {
                key: (worker.namespace().to_string(), worker.name().to_string()),
                uid: worker
                    .job
                    .job_without_managed_fields()
                    .metadata
                    .uid
                    .clone()
                    .unwrap_or_default(),
                taken: taken_from_controller,
                decided_from: DecidedFrom::of(&worker.job),
            });
        }
        let sleep = async {
            match wake {
                Some(at) => {
                    let left = (at - Utc::now()).to_std().unwrap_or_default();
                    tokio::time::sleep(left).await
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = super::stopped(&mut stop) => return worker.stop().await,
            event = inbox.recv() => {
                let Some(event) = event else { return worker.stop().await };
                let mut next = Some(event);
                while let Some(event) = next {
                    taken(&worker.shared.metrics, &event);
                    match event {
                        JobEvent::Park => return,
                        JobEvent::Exited { .. } => {}
                        _ => taken_from_controller += 1,
                    }
                    if !worker.handle(event) {
                        return worker.remove(&mut stop).await;
                    }
                    next = inbox.try_recv().ok();
                }
            }
            _ = sleep => {}
        }
    }
}

/// How the job ends, once decided.
#[derive(Clone, Debug)]
struct Verdict {
    type_: JobConditionType,
    reason: &'static str,
    message: String,
    /// Kill every process whatever `cleanPodPolicy` says (deadline, backoff limit).
    kill_all: bool,
}

/// Why the job cannot go on as it should, told on `Running` (see
/// [`conditions`](super::conditions)).
#[derive(Clone, Debug)]
struct Trouble {
    status: ConditionStatus,
    reason: &'static str,
    message: String,
}

/// The replicas of a job that runs.
struct Run {
    ports: Ports,
    replicas: BTreeMap<(ReplicaType, i32), Replica>,
    /// Restarts of all replicas, counted against `backoffLimit`.
    restarts: i32,
    /// A replica failed for good, or the backoff limit was reached.
    failure: Option<Verdict>,
}

struct Replica {
    attempt: u32,
    restarts: u32,
    state: State,
}

enum State {
    /// To be started at this time.
    Waiting(DateTime<Utc>),
    Running(Handle),
    Succeeded,
    Failed,
    /// Killed when the job finished.
    Stopped,
}

/// What a replica's exit means under its restart policy.
#[derive(Debug, PartialEq, Eq)]
pub enum Exit {
    Succeeded,
    /// Failed for good: the job fails.
    Failed,
    /// Start it again (counted against `backoffLimit`).
    Restart,
}

/// Applies a restart policy to an exit code (ExitCode: 1-127 are
/// permanent, 128-255 retryable).
pub fn exit_meaning(policy: &RestartPolicy, code: i32) -> Exit {
    match (policy, code) {
        (RestartPolicy::Always, _) => Exit::Restart,
        (_, 0) => Exit::Succeeded,
        (RestartPolicy::OnFailure, _) => Exit::Restart,
        (RestartPolicy::ExitCode, 128..=255) => Exit::Restart,
        _ => Exit::Failed,
    }
}

/// What a Pod that finished means under its replica's restart policy, as
/// the operator reads it (see the module documentation).
fn pod_exit(policy: &RestartPolicy, phase: Phase, code: Option<i32>) -> Option<(Exit, i32)> {
    match phase {
        Phase::Succeeded => Some((Exit::Succeeded, code.unwrap_or(0))),
        Phase::Failed => {
            let code = code.unwrap_or(NO_EXIT_CODE);
            let meaning = match (policy, exit_meaning(policy, code)) {
                (RestartPolicy::ExitCode, Exit::Restart) => Exit::Restart,
                _ => Exit::Failed,
            };
            Some((meaning, code))
        }
        Phase::Pending | Phase::Running => None,
    }
}

/// The wait before a replica's `n`th restart: 0.5 s, doubling, at most 30 s.
fn restart_delay(n: u32) -> chrono::Duration {
    let millis = 500u64.saturating_mul(1 << n.saturating_sub(1).min(10));
    chrono::Duration::milliseconds(i64::try_from(millis.min(30_000)).unwrap_or(30_000))
}

/// The role whose completion completes the job.
fn leader(mode: &JobMode) -> ReplicaType {
    match mode {
        JobMode::MXTune => ReplicaType::Tuner,
        _ => ReplicaType::Scheduler,
    }
}

fn count(n: i32) -> Option<i32> {
    (n > 0).then_some(n)
}

struct Worker {
    shared: Arc<Shared>,
    /// The job as last read, shared with the registry (never copied).
    job: Arc<Object>,
    events: mpsc::UnboundedSender<JobEvent>,
    log: Logger,
    /// The job had started before this task saw it: under the local
    /// executor its processes (if any) belong to a previous server.
    adopted: bool,
    run: Option<Run>,
    verdict: Option<Verdict>,
    /// `cleanPodPolicy` has been applied.
    cleaned: bool,
    /// Kubernetes: the job's Pods as the watch shows them, by name (`None`
    /// until the first list of the cluster arrived).
    pods: Option<BTreeMap<String, Arc<Pod>>>,
    /// Kubernetes: uids of Pods given up for a re-created one (never adopted).
    discarded: HashSet<String>,
    /// Kubernetes: Pods still to delete for a restart.
    discard: Vec<PodRef>,
    /// The cluster refuses the job's objects.
    trouble: Option<Trouble>,
    /// The cluster cannot be reached: why.
    unreachable: Option<String>,
    /// Refused creates in a row (for their back-off).
    refusals: u32,
}

/// A role's restart policy (default `Never`, as the operator defaults it).
fn policy_of(job: &MXJob, replica_type: &ReplicaType) -> RestartPolicy {
    job.spec
        .mx_replica_specs
        .get(replica_type)
        .and_then(|s| s.restart_policy.clone())
        .unwrap_or(RestartPolicy::Never)
}

/// The resourceVersion as a number, for ordering versions.
fn version(job: &MXJob) -> u64 {
    job.metadata
        .resource_version
        .as_deref()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

impl Worker {
    fn name(&self) -> &str {
        self.job
            .job_without_managed_fields()
            .metadata
            .name
            .as_deref()
            .unwrap_or_default()
    }

    fn namespace(&self) -> &str {
        self.job
            .job_without_managed_fields()
            .metadata
            .namespace
            .as_deref()
            .unwrap_or_default()
    }

    /// Takes an event in; `false` when the job is gone.
    fn handle(&mut self, event: JobEvent) -> bool {
        match event {
            JobEvent::Deleted(last) => {
                if let Some(last) = last {
                    self.job = last;
                }
                return false;
            }
            JobEvent::Observed(job) => {
                if version(job.job_without_managed_fields())
                    > version(self.job.job_without_managed_fields())
                {
                    self.job = job;
                }
            }
            JobEvent::Exited {
                replica,
                attempt,
                code,
            } => self.exited(replica, attempt, code),
            JobEvent::Pods(pods) => {
                let uid = self
                    .job
                    .job_without_managed_fields()
                    .metadata
                    .uid
                    .as_deref();
                self.pods = Some(
                    pods.into_iter()
                        .filter(|p| owner_uid(&p.metadata) == uid)
                        .map(|p| (p.name_any(), p))
                        .collect(),
                );
                self.sync_pods();
            }
            JobEvent::Pod(pod) => {
                if owner_uid(&pod.metadata)
                    == self
                        .job
                        .job_without_managed_fields()
                        .metadata
                        .uid
                        .as_deref()
                {
                    if let Some(pods) = self.pods.as_mut() {
                        pods.insert(pod.name_any(), pod);
                    }
                    self.sync_pods();
                }
            }
            JobEvent::PodGone(pod) => {
                if let Some(pods) = self.pods.as_mut() {
                    if pods
                        .get(&pod.name_any())
                        .is_some_and(|p| p.uid() == pod.uid())
                    {
                        pods.remove(&pod.name_any());
                    }
                }
                self.sync_pods();
            }
            JobEvent::Cluster(unreachable) => self.unreachable = unreachable,
            JobEvent::Park => {}
        }
        true
    }

    fn policy(&self, replica_type: &ReplicaType) -> RestartPolicy {
        policy_of(self.job.job_without_managed_fields(), replica_type)
    }

    /// Whether the job's outcome is decided.
    fn over(&self) -> bool {
        self.verdict.is_some() || finished(&self.job.job_without_managed_fields().status).is_some()
    }

    /// A replica process exited.
    fn exited(&mut self, key: (ReplicaType, i32), attempt: u32, code: i32) {
        let policy = self.policy(&key.0);
        let Some(run) = self.run.as_mut() else { return };
        let Some(replica) = run.replicas.get(&key) else {
            return;
        };
        if replica.attempt != attempt || !matches!(replica.state, State::Running(_)) {
            return;
        }
        info!(self.log, "replica exited";
            "replica" => %key.0, "index" => key.1, "attempt" => attempt, "code" => code);
        self.settle(key, exit_meaning(&policy, code), code);
    }

    /// A running replica ended: `meaning` decides what comes next.
    fn settle(&mut self, key: (ReplicaType, i32), meaning: Exit, code: i32) {
        let over = self.over();
        let backoff_limit = self.job.job_without_managed_fields().spec.backoff_limit;
        let name = self.name().to_string();
        let Some(run) = self.run.as_mut() else { return };
        let Some(replica) = run.replicas.get_mut(&key) else {
            return;
        };
        let next = match meaning {
            _ if over => {
                if code == 0 {
                    State::Succeeded
                } else {
                    State::Failed
                }
            }
            Exit::Succeeded => State::Succeeded,
            Exit::Failed => {
                run.failure.get_or_insert(Verdict {
                    type_: JobConditionType::Failed,
                    reason: cond::FAILED,
                    message: cond::failed_message(&name),
                    kill_all: false,
                });
                State::Failed
            }
            Exit::Restart if backoff_limit.is_some_and(|limit| run.restarts >= limit) => {
                run.failure.get_or_insert(Verdict {
                    type_: JobConditionType::Failed,
                    reason: cond::FAILED,
                    message: cond::backoff_message(&name),
                    kill_all: true,
                });
                State::Failed
            }
            Exit::Restart => {
                run.restarts += 1;
                replica.restarts += 1;
                State::Waiting(Utc::now() + restart_delay(replica.restarts))
            }
        };
        let restart = matches!(next, State::Waiting(_));
        let previous = std::mem::replace(&mut replica.state, next);
        if let (true, State::Running(Handle::Pod(pod))) = (restart, previous) {
            // The operator's way to restart under ExitCode: a new Pod.
            self.discarded.insert(pod.pod.uid.clone());
            self.discard.push(pod.pod);
        }
    }

    /// The kubelet restarted containers of a replica `count` more times:
    /// they count against `backoffLimit` like the controller's restarts.
    fn restarted(&mut self, key: &(ReplicaType, i32), count: i32) {
        let over = self.over();
        let backoff_limit = self.job.job_without_managed_fields().spec.backoff_limit;
        let name = self.name().to_string();
        let Some(run) = self.run.as_mut() else { return };
        run.restarts += count;
        if let Some(replica) = run.replicas.get_mut(key) {
            replica.restarts += u32::try_from(count).unwrap_or_default();
        }
        info!(self.log, "the kubelet restarted a replica";
            "replica" => %key.0, "index" => key.1, "restarts" => run.restarts);
        if !over && backoff_limit.is_some_and(|limit| run.restarts > limit) {
            run.failure.get_or_insert(Verdict {
                type_: JobConditionType::Failed,
                reason: cond::FAILED,
                message: cond::backoff_message(&name),
                kill_all: true,
            });
        }
    }

    /// Brings the replicas in line with the job's Pods as the watch shows
    /// them: adopts the Pods of replicas waiting to start (made by an
    /// earlier server, or by a create whose answer was lost), and turns
    /// phase changes, exits and restart counts into transitions.
    fn sync_pods(&mut self) {
        let (Some(pods), Some(run)) = (self.pods.as_ref(), self.run.as_mut()) else {
            return;
        };
        let over = self.verdict.is_some()
            || finished(&self.job.job_without_managed_fields().status).is_some();
        let job_name = self
            .job
            .job_without_managed_fields()
            .metadata
            .name
            .clone()
            .unwrap_or_default();
        let mut exits = Vec::new();
        let mut restarts = Vec::new();
        for (key, replica) in run.replicas.iter_mut() {
            let name = replica_name(&job_name, &key.0, key.1);
            let pod = pods.get(&name).filter(|p| {
                replica_of(p, self.job.job_without_managed_fields()).as_ref() == Some(key)
            });
            if let (State::Waiting(_), Some(pod)) = (&replica.state, pod) {
                let uid = pod.uid().unwrap_or_default();
                if !over
                    && !self.discarded.contains(&uid)
                    && pod.metadata.deletion_timestamp.is_none()
                {
                    info!(self.log, "adopted a pod"; "pod" => &name);
                    replica.attempt += 1;
                    replica.state = State::Running(Handle::Pod(PodHandle::new(PodRef::of(pod))));
                }
            }
            let State::Running(Handle::Pod(handle)) = &mut replica.state else {
                continue;
            };
            match pod.filter(|p| p.uid().as_deref() == Some(handle.pod.uid.as_str())) {
                Some(pod) => {
                    let state = pod_state(pod);
                    handle.observed = true;
                    handle.running = state.phase == Phase::Running;
                    handle.restarting = state.restarting;
                    if state.restarts > handle.restarts_seen {
                        restarts.push((key.clone(), state.restarts - handle.restarts_seen));
                        handle.restarts_seen = state.restarts;
                    }
                    if let Some(exit) = pod_exit(
                        &policy_of(self.job.job_without_managed_fields(), &key.0),
                        state.phase,
                        state.exit_code,
                    ) {
                        exits.push((key.clone(), exit));
                    }
                }
                None if handle.observed => {
                    info!(self.log, "a replica's pod vanished"; "pod" => &name);
                    replica.state = if over {
                        State::Stopped
                    } else {
                        State::Waiting(Utc::now())
                    };
                }
                None => {}
            }
        }
        for (key, count) in restarts {
            self.restarted(&key, count);
        }
        for (key, (meaning, code)) in exits {
            info!(self.log, "replica pod finished";
                "replica" => %key.0, "index" => key.1, "code" => code);
            self.settle(key, meaning, code);
        }
    }

    /// Brings the stored status and the processes in line with the job.
    /// Returns when to wake next (`Some(None)`: only for an event), or
    /// `None` when the job is gone.
    async fn reconcile(&mut self) -> Option<Option<DateTime<Utc>>> {
        for _ in 0..MAX_PASSES {
            let (status, wake) = self.desired().await;
            if status != self.job.job_without_managed_fields().status {
                let mut job = self.job.job_without_managed_fields().clone();
                job.status = status;
                job.status.last_reconcile_time = Some(Time(cond::now()));
                match self.shared.registry.write_status(&job).await {
                    // Worked out again from what was written: a status that
                    // finished the job brings its TTL, which the wake worked
                    // out before the write did not have (the task would
                    // report itself idle and be parked past its TTL).
                    Ok(written) => {
                        self.job = written;
                        continue;
                    }
                    Err(Error::NotFound { .. }) => return None,
                    Err(Error::Conflict { .. }) => {
                        if !self.reread().await? {
                            return Some(Some(Utc::now() + RETRY));
                        }
                        continue;
                    }
                    Err(e) => {
                        warn!(self.log, "writing the job status"; "error" => %e);
                        return Some(Some(Utc::now() + RETRY));
                    }
                }
            }
            if let Some(expiry) = self.ttl_expiry() {
                if Utc::now() >= expiry {
                    match self
                        .shared
                        .registry
                        .delete_unchanged(self.job.job_without_managed_fields())
                        .await
                    {
                        Ok(()) => {
                            info!(
                                self.log,
                                "deleted the job: its ttlSecondsAfterFinished passed"
                            );
                            return None;
                        }
                        Err(Error::NotFound { .. }) => return None,
                        Err(Error::Conflict { .. }) => {
                            if !self.reread().await? {
                                return Some(Some(Utc::now() + RETRY));
                            }
                            continue;
                        }
                        Err(e) => {
                            warn!(self.log, "deleting the job after its TTL"; "error" => %e);
                            return Some(Some(Utc::now() + RETRY));
                        }
                    }
                }
            }
            // Replicas start only after the status saying so is stored,
            // so that `Restarting` is seen before the restart.
            if !self.launch_due().await {
                return Some(wake);
            }
        }
        Some(Some(Utc::now() + RETRY))
    }

    /// Reads the job again after a conflict: `Some(true)` when read,
    /// `Some(false)` on a transient error, `None` when the job is gone
    /// (or is another object of the same name now).
    async fn reread(&mut self) -> Option<bool> {
        let (namespace, name) = (self.namespace().to_string(), self.name().to_string());
        match self.shared.registry.get(&namespace, &name).await {
            Ok(fresh)
                if fresh.job_without_managed_fields().metadata.uid
                    == self.job.job_without_managed_fields().metadata.uid =>
            {
                self.job = fresh;
                Some(true)
            }
            Ok(_) => None,
            Err(Error::NotFound { .. }) => None,
            Err(e) => {
                warn!(self.log, "reading the job"; "error" => %e);
                Some(false)
            }
        }
    }

    /// When a finished job is to be deleted.
    fn ttl_expiry(&self) -> Option<DateTime<Utc>> {
        finished(&self.job.job_without_managed_fields().status)?;
        let ttl = self
            .job
            .job_without_managed_fields()
            .spec
            .ttl_seconds_after_finished?;
        let at = finished_at(&self.job.job_without_managed_fields().status)?;
        Some(at + chrono::Duration::seconds(i64::from(ttl)))
    }

    /// The status the job should have now, and when to look again. Applies
    /// the decisions that cannot wait for the write (killing processes).
    async fn desired(&mut self) -> (JobStatus, Option<DateTime<Utc>>) {
        let clock = Utc::now();
        let now = cond::now();
        let name = self.name().to_string();
        let mut status = self.job.job_without_managed_fields().status.clone();
        let mut wake: Option<DateTime<Utc>> = None;
        let mut earliest = |at: DateTime<Utc>| {
            wake = Some(wake.map_or(at, |w| w.min(at)));
        };

        if finished(&status).is_some() {
            // Finished (by this task or by a status written from outside).
            if !self.cleaned {
                self.cleaned = self.clean_up(false).await;
                if !self.cleaned {
                    earliest(clock + chrono::Duration::from_std(RETRY).unwrap_or_default());
                }
                if let Some(run) = &self.run {
                    status.mx_replica_statuses = run.counts(self.job.job_without_managed_fields());
                }
            }
            if status.completion_time.is_none() {
                status.completion_time = Some(Time(finished_at(&status).unwrap_or(now)));
            }
            if let Some(ttl) = self
                .job
                .job_without_managed_fields()
                .spec
                .ttl_seconds_after_finished
            {
                let at = status.completion_time.as_ref().map_or(now, |t| t.0);
                earliest(at + chrono::Duration::seconds(i64::from(ttl)));
            }
            return (status, wake);
        }

        if status.start_time.is_none() {
            status.start_time = Some(Time(now));
            cond::set(
                &mut status,
                JobConditionType::Created,
                cond::CREATED,
                cond::created_message(&name),
                now,
            );
        }
        if let (Some(seconds), Some(start)) = (
            self.job
                .job_without_managed_fields()
                .spec
                .active_deadline_seconds,
            status.start_time.as_ref(),
        ) {
            let deadline = start.0 + chrono::Duration::seconds(seconds);
            if clock >= deadline {
                self.verdict.get_or_insert(Verdict {
                    type_: JobConditionType::Failed,
                    reason: cond::FAILED,
                    message: cond::deadline_message(&name),
                    kill_all: true,
                });
            } else {
                earliest(deadline);
            }
        }

        if self.verdict.is_none() && self.shared.executor.is_some() {
            if self.run.is_none() {
                self.run = self.start_run();
                self.sync_pods();
                if self.run.is_none() {
                    earliest(clock + chrono::Duration::from_std(RETRY).unwrap_or_default());
                }
            }
            if let Some(run) = &self.run {
                self.verdict = run.verdict(self.job.job_without_managed_fields(), &name);
            }
        }

        if let Some(verdict) = self.verdict.clone() {
            if !self.cleaned {
                self.cleaned = self.clean_up(verdict.kill_all).await;
                if !self.cleaned {
                    earliest(clock + chrono::Duration::from_std(RETRY).unwrap_or_default());
                }
            }
            cond::clear_trouble(&mut status);
            cond::set(
                &mut status,
                verdict.type_,
                verdict.reason,
                verdict.message,
                now,
            );
            status.completion_time = Some(Time(now));
        } else {
            if let Some(trouble) = self.current_trouble() {
                cond::set_status(
                    &mut status,
                    JobConditionType::Running,
                    trouble.status,
                    trouble.reason,
                    trouble.message,
                    now,
                );
            } else {
                cond::clear_trouble(&mut status);
                if let Some(run) = &self.run {
                    if run.restarting(self.adopted) {
                        cond::set(
                            &mut status,
                            JobConditionType::Restarting,
                            cond::RESTARTING,
                            cond::restarting_message(&name),
                            now,
                        );
                    } else if run.active(&leader(
                        &self.job.job_without_managed_fields().spec.job_mode,
                    )) > 0
                    {
                        cond::set(
                            &mut status,
                            JobConditionType::Running,
                            cond::RUNNING,
                            cond::running_message(&name),
                            now,
                        );
                    }
                }
            }
            if let Some(at) = self.run.as_ref().and_then(Run::next_start) {
                earliest(at);
            }
        }
        if let Some(run) = &self.run {
            status.mx_replica_statuses = run.counts(self.job.job_without_managed_fields());
        }
        (status, wake)
    }

    /// What to tell on `Running`: the cluster cannot be reached, or
    /// refuses the job's objects.
    fn current_trouble(&self) -> Option<Trouble> {
        match &self.unreachable {
            Some(detail) => Some(Trouble {
                status: ConditionStatus::Unknown,
                reason: cond::CLUSTER_UNREACHABLE,
                message: cond::unreachable_message(self.name(), detail),
            }),
            None => self.trouble.clone(),
        }
    }

    /// Sets up the replicas of the job (none started yet; under
    /// Kubernetes, those whose Pods exist are adopted at once).
    fn start_run(&mut self) -> Option<Run> {
        let ports = match &self.shared.executor {
            Some(Executor::Local(_)) => {
                match Ports::allocate(self.job.job_without_managed_fields()) {
                    Ok(ports) => ports,
                    Err(error) => {
                        warn!(self.log, "finding free ports"; "error" => %error);
                        return None;
                    }
                }
            }
            // Nothing is started before the cluster's Pods are known.
            Some(Executor::Kubernetes(_)) if self.pods.is_none() => return None,
            _ => Ports::default(),
        };
        let now = Utc::now();
        let mut replicas_by_key = BTreeMap::new();
        for replica_type in self
            .job
            .job_without_managed_fields()
            .spec
            .mx_replica_specs
            .keys()
        {
            for index in 0..replicas(self.job.job_without_managed_fields(), replica_type) {
                replicas_by_key.insert(
                    (replica_type.clone(), index),
                    Replica {
                        attempt: 0,
                        restarts: 0,
                        state: State::Waiting(now),
                    },
                );
            }
        }
        Some(Run {
            ports,
            replicas: replicas_by_key,
            restarts: 0,
            failure: None,
        })
    }

    /// Starts the replicas whose time has come; whether any state changed.
    async fn launch_due(&mut self) -> bool {
        if self.over() {
            return false;
        }
        let Some(executor) = self.shared.executor.clone() else {
            return false;
        };
        let Some(run) = self.run.as_ref() else {
            return false;
        };
        let now = Utc::now();
        let due: Vec<(ReplicaType, i32)> = run
            .replicas
            .iter()
            .filter(|(_, r)| matches!(r.state, State::Waiting(at) if at <= now))
            .map(|(key, _)| key.clone())
            .collect();
        match executor {
            Executor::Local(executor) => self.launch_processes(&executor, &due),
            Executor::Kubernetes(executor) => {
                let discarded = self.discard_pods(&executor).await;
                self.create_pods(&executor, &due).await || discarded
            }
        }
    }

    fn launch_processes(&mut self, executor: &LocalExecutor, due: &[(ReplicaType, i32)]) -> bool {
        let Some(run) = self.run.as_mut() else {
            return false;
        };
        let mut failed_to_start = Vec::new();
        for key in due {
            let Some(replica) = run.replicas.get_mut(key) else {
                continue;
            };
            replica.attempt += 1;
            let attempt = replica.attempt;
            let events = self.events.clone();
            let replica_key = key.clone();
            let on_exit = move |code| {
                let _ = events.send(JobEvent::Exited {
                    replica: replica_key,
                    attempt,
                    code,
                });
            };
            match executor.launch(
                self.job.job_without_managed_fields(),
                &run.ports,
                &key.0,
                key.1,
                attempt,
                on_exit,
            ) {
                Ok(process) => {
                    info!(self.log, "replica started";
                        "replica" => %key.0, "index" => key.1, "attempt" => attempt, "pid" => process.pid);
                    replica.state = State::Running(Handle::Process(process));
                }
                Err(error) => {
                    warn!(self.log, "replica did not start";
                        "replica" => %key.0, "index" => key.1, "error" => %error);
                    // As a container whose command cannot run.
                    replica.state = State::Running(Handle::Process(Process::exited_with(127)));
                    failed_to_start.push((key.clone(), attempt));
                }
            }
        }
        for (key, attempt) in failed_to_start {
            self.exited(key, attempt, 127);
        }
        !due.is_empty()
    }

    /// Deletes the Pods given up for new ones; whether all are gone.
    async fn discard_pods(&mut self, executor: &KubernetesExecutor) -> bool {
        if self.discard.is_empty() {
            return false;
        }
        let pods = std::mem::take(&mut self.discard);
        match executor.delete_pods(self.namespace(), &pods, None).await {
            Ok(()) => true,
            Err(error) => {
                warn!(self.log, "deleting pods to re-create them"; "error" => %error);
                self.discard = pods;
                false
            }
        }
    }

    /// Makes the Pods (and Services) of the replicas that are due.
    async fn create_pods(
        &mut self,
        executor: &KubernetesExecutor,
        due: &[(ReplicaType, i32)],
    ) -> bool {
        if due.is_empty() {
            return false;
        }
        let job = self.job.job_without_managed_fields();
        let results = futures::future::join_all(
            due.iter()
                .map(|(replica_type, index)| executor.create_replica(job, replica_type, *index)),
        )
        .await;
        let name = self.name().to_string();
        let mut refused: Option<(String, ClusterError)> = None;
        let mut invalid: Option<(String, ClusterError)> = None;
        let Some(run) = self.run.as_mut() else {
            return false;
        };
        for (key, result) in due.iter().zip(results) {
            let Some(replica) = run.replicas.get_mut(key) else {
                continue;
            };
            let pod_name = replica_name(&name, &key.0, key.1);
            match result {
                Ok(pod) => {
                    replica.attempt += 1;
                    info!(self.log, "replica pod created";
                        "pod" => pod.name_any(), "attempt" => replica.attempt);
                    replica.state = State::Running(Handle::Pod(PodHandle::new(PodRef::of(&pod))));
                }
                Err(error) if error.is_permanent() => {
                    warn!(self.log, "the cluster refused a replica for good";
                        "pod" => &pod_name, "error" => %error);
                    replica.state = State::Failed;
                    invalid.get_or_insert((pod_name, error));
                }
                Err(error) => {
                    warn!(self.log, "the cluster refused a replica";
                        "pod" => &pod_name, "error" => %error);
                    refused.get_or_insert((pod_name, error));
                }
            }
        }
        if let Some((pod, error)) = invalid {
            run.failure.get_or_insert(Verdict {
                type_: JobConditionType::Failed,
                reason: cond::FAILED,
                message: cond::invalid_message(&name, &pod, &error),
                kill_all: true,
            });
        }
        match refused {
            Some((pod, error)) => {
                self.refusals = self.refusals.saturating_add(1);
                let retry = Utc::now() + restart_delay(self.refusals);
                for replica in run.replicas.values_mut() {
                    if matches!(replica.state, State::Waiting(at) if at <= retry) {
                        replica.state = State::Waiting(retry);
                    }
                }
                self.trouble = Some(if error.is_unreachable() {
                    Trouble {
                        status: ConditionStatus::Unknown,
                        reason: cond::CLUSTER_UNREACHABLE,
                        message: cond::unreachable_message(&name, &error.to_string()),
                    }
                } else {
                    Trouble {
                        status: ConditionStatus::False,
                        reason: cond::FAILED_CREATE,
                        message: cond::refused_message(&name, &pod, &error),
                    }
                });
            }
            None => {
                self.refusals = 0;
                self.trouble = None;
            }
        }
        true
    }

    /// Applies `cleanPodPolicy` (or kills everything) as the job finishes;
    /// `false` when it could not be done yet (tried again later).
    async fn clean_up(&mut self, kill_all: bool) -> bool {
        let policy = self
            .job
            .job_without_managed_fields()
            .spec
            .clean_pod_policy
            .clone()
            .unwrap_or(CleanPodPolicy::Running);
        match self.shared.executor.clone() {
            None => true,
            Some(Executor::Local(executor)) => {
                let Some(run) = self.run.as_mut() else {
                    return true;
                };
                if kill_all || policy != CleanPodPolicy::None {
                    run.stop_all(&executor).await;
                }
                if policy == CleanPodPolicy::All {
                    executor.remove_logs(self.job.job_without_managed_fields());
                }
                true
            }
            Some(Executor::Kubernetes(executor)) => {
                self.clean_up_pods(&executor, kill_all, policy).await
            }
        }
    }

    /// `cleanPodPolicy` on Pods, as the operator applies it: `None` leaves
    /// them; `Running` deletes those not finished (Pending ones too, which
    /// would otherwise start after the job ended) with their Services;
    /// `All` deletes every Pod and Service of the job.
    async fn clean_up_pods(
        &mut self,
        executor: &KubernetesExecutor,
        kill_all: bool,
        policy: CleanPodPolicy,
    ) -> bool {
        if !kill_all && policy == CleanPodPolicy::None {
            return true;
        }
        let Some(pods) = self.pods.as_ref() else {
            return false;
        };
        let everything = kill_all || policy == CleanPodPolicy::All;
        let mut doomed: Vec<PodRef> = pods
            .values()
            .filter(|pod| {
                everything || !matches!(pod_state(pod).phase, Phase::Succeeded | Phase::Failed)
            })
            .map(|pod| PodRef::of(pod))
            .collect();
        if let Some(run) = &self.run {
            for replica in run.replicas.values() {
                if let State::Running(Handle::Pod(handle)) = &replica.state {
                    if !doomed.contains(&handle.pod) {
                        doomed.push(handle.pod.clone());
                    }
                }
            }
        }
        let names: HashSet<String> = doomed.iter().map(|p| p.name.clone()).collect();
        let deleted = match executor.delete_pods(self.namespace(), &doomed, None).await {
            Ok(()) => {
                executor
                    .delete_services(
                        self.job.job_without_managed_fields(),
                        (!everything).then_some(&names),
                    )
                    .await
            }
            Err(error) => Err(error),
        };
        if let Err(error) = deleted {
            warn!(self.log, "deleting the job's pods"; "error" => %error);
            return false;
        }
        if let Some(run) = self.run.as_mut() {
            for replica in run.replicas.values_mut() {
                if matches!(replica.state, State::Running(_) | State::Waiting(_)) {
                    replica.state = State::Stopped;
                }
            }
        }
        true
    }

    /// The server stops or lost the lease: kill the processes, keep the
    /// files. Pods run on; the next leader adopts them.
    async fn stop(mut self) {
        if let (Some(Executor::Local(executor)), Some(run)) =
            (self.shared.executor.clone(), self.run.as_mut())
        {
            run.stop_all(&executor).await;
        }
    }

    /// The job is gone: stop its replicas — with the grace period the
    /// delete gave, or not at all when it orphaned them — and remove its
    /// files (so no later server takes orphans for its own), or its Pods
    /// and Services.
    async fn remove(mut self, stop: &mut watch::Receiver<bool>) {
        let metadata = &self.job.job_without_managed_fields().metadata;
        let orphaned = metadata
            .finalizers
            .as_ref()
            .is_some_and(|f| f.iter().any(|f| f == ORPHAN_FINALIZER));
        let grace = metadata
            .deletion_grace_period_seconds
            .and_then(|s| u64::try_from(s).ok());
        match self.shared.executor.clone() {
            None => {}
            Some(Executor::Local(executor)) => {
                if let (Some(run), false) = (self.run.as_mut(), orphaned) {
                    run.stop_all_within(&executor, grace.map(Duration::from_secs))
                        .await;
                }
                executor.remove_job(self.job.job_without_managed_fields());
            }
            Some(Executor::Kubernetes(executor)) => loop {
                let grace = grace.map(|s| u32::try_from(s).unwrap_or(u32::MAX));
                let result = executor
                    .remove(self.job.job_without_managed_fields(), orphaned, grace)
                    .await;
                match result {
                    Ok(()) => {
                        info!(self.log, "removed the job's pods and services"; "orphaned" => orphaned);
                        return;
                    }
                    Err(error) => {
                        warn!(self.log, "removing a deleted job's pods"; "error" => %error);
                        tokio::select! {
                            _ = super::stopped(stop) => return,
                            _ = tokio::time::sleep(REMOVE_RETRY) => {}
                        }
                    }
                }
            },
        }
    }
}

impl Run {
    /// The job's outcome, when the processes have decided it.
    fn verdict(&self, job: &MXJob, name: &str) -> Option<Verdict> {
        if let Some(failure) = &self.failure {
            return Some(failure.clone());
        }
        let leader = leader(&job.spec.job_mode);
        let mut leaders = self.replicas.iter().filter(|((t, _), _)| *t == leader);
        let done = leaders.all(|(_, r)| matches!(r.state, State::Succeeded));
        (done && replicas(job, &leader) > 0).then(|| Verdict {
            type_: JobConditionType::Succeeded,
            reason: cond::SUCCEEDED,
            message: cond::succeeded_message(name),
            kill_all: false,
        })
    }

    /// Whether a replica waits to be started again (or, for a job taken
    /// over from a previous server, to be started at all), or for the
    /// kubelet to start its container again.
    fn restarting(&self, adopted: bool) -> bool {
        self.replicas.values().any(|r| match &r.state {
            State::Waiting(_) => r.restarts > 0 || (adopted && r.attempt == 0),
            State::Running(handle) => handle.restarting(),
            _ => false,
        })
    }

    fn active(&self, replica_type: &ReplicaType) -> usize {
        self.replicas
            .iter()
            .filter(|((t, _), r)| {
                t == replica_type && matches!(&r.state, State::Running(h) if h.active())
            })
            .count()
    }

    fn next_start(&self) -> Option<DateTime<Utc>> {
        self.replicas
            .values()
            .filter_map(|r| match r.state {
                State::Waiting(at) => Some(at),
                _ => None,
            })
            .min()
    }

    /// `mxReplicaStatuses`: an entry per role, zero counts omitted.
    fn counts(&self, job: &MXJob) -> BTreeMap<ReplicaType, ReplicaStatus> {
        let mut counts = BTreeMap::new();
        for replica_type in job.spec.mx_replica_specs.keys() {
            let (mut active, mut succeeded, mut failed) = (0, 0, 0);
            for ((t, _), replica) in &self.replicas {
                if t != replica_type {
                    continue;
                }
                match &replica.state {
                    State::Running(handle) if handle.active() => active += 1,
                    State::Succeeded => succeeded += 1,
                    State::Failed => failed += 1,
                    State::Running(_) | State::Waiting(_) | State::Stopped => {}
                }
            }
            counts.insert(
                replica_type.clone(),
                ReplicaStatus {
                    active: count(active),
                    succeeded: count(succeeded),
                    failed: count(failed),
                },
            );
        }
        counts
    }

    /// Stops every running process; they count as stopped, not failed.
    async fn stop_all(&mut self, executor: &LocalExecutor) {
        self.stop_all_within(executor, None).await
    }

    /// [`Run::stop_all`] with a grace period other than the executor's.
    async fn stop_all_within(&mut self, executor: &LocalExecutor, grace: Option<Duration>) {
        let running: Vec<&mut Process> = self
            .replicas
            .values_mut()
            .filter_map(|r| match &mut r.state {
                State::Running(Handle::Process(process)) => Some(process),
                _ => None,
            })
            .collect();
        executor.terminate(running, grace).await;
        for replica in self.replicas.values_mut() {
            if matches!(replica.state, State::Running(_) | State::Waiting(_)) {
                replica.state = State::Stopped;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_policies_read_exit_codes_as_documented() {
        use RestartPolicy::*;
        assert_eq!(exit_meaning(&Never, 0), Exit::Succeeded);
        assert_eq!(exit_meaning(&Never, 1), Exit::Failed);
        assert_eq!(exit_meaning(&OnFailure, 0), Exit::Succeeded);
        assert_eq!(exit_meaning(&OnFailure, 1), Exit::Restart);
        assert_eq!(exit_meaning(&Always, 0), Exit::Restart);
        assert_eq!(exit_meaning(&ExitCode, 0), Exit::Succeeded);
        assert_eq!(exit_meaning(&ExitCode, 1), Exit::Failed);
        assert_eq!(exit_meaning(&ExitCode, 127), Exit::Failed);
        assert_eq!(exit_meaning(&ExitCode, 128), Exit::Restart);
        assert_eq!(exit_meaning(&ExitCode, 137), Exit::Restart);
        assert_eq!(exit_meaning(&ExitCode, 255), Exit::Restart);
    }

    #[test]
    fn a_parked_job_wakes_for_its_status_its_deadline_and_a_finished_jobs_ttl() {
        let now = cond::now();
        let mut running: MXJob = serde_json::from_value(serde_json::json!({
            "apiVersion": "kubeflow.org/v1",
            "kind": "MXJob",
            "metadata": {"name": "a", "namespace": "n"},
            "spec": {"jobMode": "MXTrain", "mxReplicaSpecs": {}, "ttlSecondsAfterFinished": 10},
        }))
        .expect("a job");
        cond::set(
            &mut running.status,
            JobConditionType::Created,
            cond::CREATED,
            cond::created_message("a"),
            now,
        );
        let of = |job: &MXJob| DecidedFrom::from_parts(job, None);
        let parked = of(&running);
        let status_json = serde_json::to_vec(&running.status).expect("status");
        assert_eq!(
            DecidedFrom::from_parts(&running, Some(&status_json)),
            parked,
            "the stored bytes of the status hash as the status does"
        );

        let mut relabelled = running.clone();
        relabelled.metadata.labels = Some([("a".to_string(), "b".to_string())].into());
        relabelled.spec.ttl_seconds_after_finished = Some(20);
        assert_eq!(of(&relabelled), parked, "labels, a running job's TTL");

        let mut deadline = running.clone();
        deadline.spec.active_deadline_seconds = Some(5);
        assert_ne!(of(&deadline), parked, "the deadline");

        let mut finished = running.clone();
        cond::set(
            &mut finished.status,
            JobConditionType::Succeeded,
            cond::SUCCEEDED,
            cond::succeeded_message("a"),
            now,
        );
        let done = of(&finished);
        assert_ne!(done, parked, "the status");
        finished.spec.ttl_seconds_after_finished = Some(20);
        assert_ne!(of(&finished), done, "a finished job's TTL");
    }

    #[test]
    fn restarts_back_off_up_to_thirty_seconds() {
        assert_eq!(restart_delay(1).num_milliseconds(), 500);
        assert_eq!(restart_delay(2).num_milliseconds(), 1000);
        assert_eq!(restart_delay(4).num_milliseconds(), 4000);
        assert_eq!(restart_delay(40).num_milliseconds(), 30_000);
    }
}

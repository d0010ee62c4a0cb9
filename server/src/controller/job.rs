//! One task per job: it owns the job's processes and timers and is the only
//! writer of the job's status in this server.
//!
//! The task wakes for three things — a newer version of the job from the
//! watch, a replica process exiting, and its one timer (the earliest of the
//! active deadline, the TTL and a pending replica restart) — and then
//! reconciles: it works out the status the job should have, writes it if it
//! differs from the stored one (compare-and-swap on the resourceVersion; on
//! a conflict it re-reads and works it out again), and starts the replicas
//! whose time has come. Decisions with side effects (a replica failed for
//! good, the deadline passed) are kept in memory, so working the status out
//! again after a conflict never undoes them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use slog::{info, o, warn, Logger};
use tokio::sync::{mpsc, watch};

use super::conditions::{self as cond, finished, finished_at};
use super::local::{replicas, LocalExecutor, Ports, Process};
use crate::registry::{Error, Registry, ORPHAN_FINALIZER};
use mxjob_api::model::{
    CleanPodPolicy, JobConditionType, JobMode, JobStatus, MXJob, ReplicaStatus, ReplicaType,
    RestartPolicy,
};

/// How many times one reconcile writes before it waits for the next wake.
const MAX_PASSES: usize = 16;
/// How soon a failed store call is retried.
const RETRY: Duration = Duration::from_secs(1);

/// What the job tasks share.
pub struct Shared {
    pub registry: Registry,
    /// `None` with `--executor none`.
    pub executor: Option<LocalExecutor>,
    pub log: Logger,
}

/// What wakes a job task.
#[derive(Debug)]
pub enum JobEvent {
    /// The job as the store has it now.
    Observed(Box<MXJob>),
    /// The job was deleted; its last state when known (it says how its
    /// replicas are to go: see [`Registry::delete`](crate::registry::Registry::delete)).
    Deleted(Option<Box<MXJob>>),
    /// Attempt `attempt` of a replica exited with `code`.
    Exited {
        replica: (ReplicaType, i32),
        attempt: u32,
        code: i32,
    },
}

/// Runs the task of `job` until the job is gone or `stop` fires.
pub async fn run(
    shared: Arc<Shared>,
    job: MXJob,
    events: mpsc::UnboundedSender<JobEvent>,
    mut inbox: mpsc::UnboundedReceiver<JobEvent>,
    mut stop: watch::Receiver<bool>,
) {
    let log = shared.log.new(o!(
        "namespace" => job.metadata.namespace.clone().unwrap_or_default(),
        "job" => job.metadata.name.clone().unwrap_or_default(),
    ));
    let adopted = job.status.start_time.is_some() && finished(&job.status).is_none();
    if let Some(executor) = &shared.executor {
        // Whatever a previous server left running of this job is not ours to manage.
        executor.kill_orphans(&job);
    }
    let mut worker = Worker {
        shared,
        job,
        events,
        log,
        adopted,
        run: None,
        verdict: None,
        cleaned: false,
    };
    loop {
        let wake = match worker.reconcile().await {
            Some(wake) => wake,
            None => return worker.remove().await,
        };
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
                    if !worker.handle(event) {
                        return worker.remove().await;
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

/// The processes of a job under the local executor.
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
    Running(Process),
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
    job: MXJob,
    events: mpsc::UnboundedSender<JobEvent>,
    log: Logger,
    /// The job had started before this task saw it: under the local
    /// executor its processes (if any) belong to a previous server.
    adopted: bool,
    run: Option<Run>,
    verdict: Option<Verdict>,
    /// `cleanPodPolicy` has been applied.
    cleaned: bool,
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
        self.job.metadata.name.as_deref().unwrap_or_default()
    }

    fn namespace(&self) -> &str {
        self.job.metadata.namespace.as_deref().unwrap_or_default()
    }

    /// Takes an event in; `false` when the job is gone.
    fn handle(&mut self, event: JobEvent) -> bool {
        match event {
            JobEvent::Deleted(last) => {
                if let Some(last) = last {
                    self.job = *last;
                }
                return false;
            }
            JobEvent::Observed(job) => {
                if version(&job) > version(&self.job) {
                    self.job = *job;
                }
            }
            JobEvent::Exited {
                replica,
                attempt,
                code,
            } => self.exited(replica, attempt, code),
        }
        true
    }

    /// A replica process exited.
    fn exited(&mut self, key: (ReplicaType, i32), attempt: u32, code: i32) {
        let policy = self
            .job
            .spec
            .mx_replica_specs
            .get(&key.0)
            .and_then(|s| s.restart_policy.clone())
            .unwrap_or(RestartPolicy::Never);
        let over = self.verdict.is_some() || finished(&self.job.status).is_some();
        let backoff_limit = self.job.spec.backoff_limit;
        let name = self.name().to_string();
        let Some(run) = self.run.as_mut() else { return };
        let Some(replica) = run.replicas.get_mut(&key) else {
            return;
        };
        if replica.attempt != attempt || !matches!(replica.state, State::Running(_)) {
            return;
        }
        info!(self.log, "replica exited";
            "replica" => %key.0, "index" => key.1, "attempt" => attempt, "code" => code);
        let meaning = exit_meaning(&policy, code);
        replica.state = match meaning {
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
    }

    /// Brings the stored status and the processes in line with the job.
    /// Returns when to wake next (`Some(None)`: only for an event), or
    /// `None` when the job is gone.
    async fn reconcile(&mut self) -> Option<Option<DateTime<Utc>>> {
        for _ in 0..MAX_PASSES {
            let (status, wake) = self.desired().await;
            if status != self.job.status {
                let mut job = self.job.clone();
                job.status = status;
                job.status.last_reconcile_time = Some(Time(cond::now()));
                match self.shared.registry.write_status(&job).await {
                    Ok(written) => self.job = written.into_job(),
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
                    match self.shared.registry.delete_unchanged(&self.job).await {
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
            if !self.launch_due() {
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
            Ok(fresh) if fresh.job().metadata.uid == self.job.metadata.uid => {
                self.job = fresh.into_job();
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
        finished(&self.job.status)?;
        let ttl = self.job.spec.ttl_seconds_after_finished?;
        let at = finished_at(&self.job.status)?;
        Some(at + chrono::Duration::seconds(i64::from(ttl)))
    }

    /// The status the job should have now, and when to look again. Applies
    /// the decisions that cannot wait for the write (killing processes).
    async fn desired(&mut self) -> (JobStatus, Option<DateTime<Utc>>) {
        let clock = Utc::now();
        let now = cond::now();
        let name = self.name().to_string();
        let mut status = self.job.status.clone();
        let mut wake: Option<DateTime<Utc>> = None;
        let mut earliest = |at: DateTime<Utc>| {
            wake = Some(wake.map_or(at, |w| w.min(at)));
        };

        if finished(&status).is_some() {
            // Finished (by this task or by a status written from outside).
            if !self.cleaned {
                self.clean_up(false).await;
                self.cleaned = true;
                if let Some(run) = &self.run {
                    status.mx_replica_statuses = run.counts(&self.job);
                }
            }
            if status.completion_time.is_none() {
                status.completion_time = Some(Time(finished_at(&status).unwrap_or(now)));
            }
            if let Some(ttl) = self.job.spec.ttl_seconds_after_finished {
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
            self.job.spec.active_deadline_seconds,
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
                if self.run.is_none() {
                    earliest(clock + chrono::Duration::from_std(RETRY).unwrap_or_default());
                }
            }
            if let Some(run) = &self.run {
                self.verdict = run.verdict(&self.job, &name);
            }
        }

        if let Some(verdict) = self.verdict.clone() {
            if !self.cleaned {
                self.clean_up(verdict.kill_all).await;
                self.cleaned = true;
            }
            cond::set(
                &mut status,
                verdict.type_,
                verdict.reason,
                verdict.message,
                now,
            );
            status.completion_time = Some(Time(now));
        } else if let Some(run) = &self.run {
            if run.restarting(self.adopted) {
                cond::set(
                    &mut status,
                    JobConditionType::Restarting,
                    cond::RESTARTING,
                    cond::restarting_message(&name),
                    now,
                );
            } else if run.active(&leader(&self.job.spec.job_mode)) > 0 {
                cond::set(
                    &mut status,
                    JobConditionType::Running,
                    cond::RUNNING,
                    cond::running_message(&name),
                    now,
                );
            }
            if let Some(at) = run.next_start() {
                earliest(at);
            }
        }
        if let Some(run) = &self.run {
            status.mx_replica_statuses = run.counts(&self.job);
        }
        (status, wake)
    }

    /// Sets up the processes of the job (none started yet).
    fn start_run(&mut self) -> Option<Run> {
        let ports = match Ports::allocate(&self.job) {
            Ok(ports) => ports,
            Err(error) => {
                warn!(self.log, "finding free ports"; "error" => %error);
                return None;
            }
        };
        let now = Utc::now();
        let mut replicas_by_key = BTreeMap::new();
        for replica_type in self.job.spec.mx_replica_specs.keys() {
            for index in 0..replicas(&self.job, replica_type) {
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
    fn launch_due(&mut self) -> bool {
        if self.verdict.is_some() || finished(&self.job.status).is_some() {
            return false;
        }
        let (Some(executor), Some(run)) = (self.shared.executor.clone(), self.run.as_mut()) else {
            return false;
        };
        let now = Utc::now();
        let due: Vec<(ReplicaType, i32)> = run
            .replicas
            .iter()
            .filter(|(_, r)| matches!(r.state, State::Waiting(at) if at <= now))
            .map(|(key, _)| key.clone())
            .collect();
        let mut failed_to_start = Vec::new();
        for key in &due {
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
            match executor.launch(&self.job, &run.ports, &key.0, key.1, attempt, on_exit) {
                Ok(process) => {
                    info!(self.log, "replica started";
                        "replica" => %key.0, "index" => key.1, "attempt" => attempt, "pid" => process.pid);
                    replica.state = State::Running(process);
                }
                Err(error) => {
                    warn!(self.log, "replica did not start";
                        "replica" => %key.0, "index" => key.1, "error" => %error);
                    // As a container whose command cannot run.
                    replica.state = State::Running(Process::exited_with(127));
                    failed_to_start.push((key.clone(), attempt));
                }
            }
        }
        for (key, attempt) in failed_to_start {
            self.exited(key, attempt, 127);
        }
        !due.is_empty()
    }

    /// Applies `cleanPodPolicy` (or kills everything) as the job finishes.
    async fn clean_up(&mut self, kill_all: bool) {
        let (Some(executor), Some(run)) = (self.shared.executor.clone(), self.run.as_mut()) else {
            return;
        };
        let policy = self
            .job
            .spec
            .clean_pod_policy
            .clone()
            .unwrap_or(CleanPodPolicy::Running);
        if kill_all || policy != CleanPodPolicy::None {
            run.stop_all(&executor).await;
        }
        if policy == CleanPodPolicy::All {
            executor.remove_logs(&self.job);
        }
    }

    /// The server stops or lost the lease: kill the processes, keep the files.
    async fn stop(mut self) {
        if let (Some(executor), Some(run)) = (self.shared.executor.clone(), self.run.as_mut()) {
            run.stop_all(&executor).await;
        }
    }

    /// The job is gone: stop its processes — with the grace period the
    /// delete gave, or not at all when it orphaned them — and remove its
    /// files (so no later server takes orphans for its own).
    async fn remove(mut self) {
        if let Some(executor) = self.shared.executor.clone() {
            let metadata = &self.job.metadata;
            let orphaned = metadata
                .finalizers
                .as_ref()
                .is_some_and(|f| f.iter().any(|f| f == ORPHAN_FINALIZER));
            let grace = metadata
                .deletion_grace_period_seconds
                .and_then(|s| u64::try_from(s).ok())
                .map(Duration::from_secs);
            if let (Some(run), false) = (self.run.as_mut(), orphaned) {
                run.stop_all_within(&executor, grace).await;
            }
            executor.remove_job(&self.job);
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
    /// over from a previous server, to be started at all).
    fn restarting(&self, adopted: bool) -> bool {
        self.replicas.values().any(|r| {
            matches!(r.state, State::Waiting(_)) && (r.restarts > 0 || (adopted && r.attempt == 0))
        })
    }

    fn active(&self, replica_type: &ReplicaType) -> usize {
        self.replicas
            .iter()
            .filter(|((t, _), r)| t == replica_type && matches!(r.state, State::Running(_)))
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
                match replica.state {
                    State::Running(_) => active += 1,
                    State::Succeeded => succeeded += 1,
                    State::Failed => failed += 1,
                    State::Waiting(_) | State::Stopped => {}
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
                State::Running(process) => Some(process),
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
    fn restarts_back_off_up_to_thirty_seconds() {
        assert_eq!(restart_delay(1).num_milliseconds(), 500);
        assert_eq!(restart_delay(2).num_milliseconds(), 1000);
        assert_eq!(restart_delay(4).num_milliseconds(), 4000);
        assert_eq!(restart_delay(40).num_milliseconds(), 30_000);
    }
}

//! The job controller: it runs MXJobs and reports their progress in
//! `status`, as mxnet-operator does in a cluster.
//!
//! **Driven by the store, not by polling.** The controller lists every
//! MXJob of every namespace (the store prefix
//! `/registry/kubeflow.org/mxjobs/`) and then watches the prefix from the
//! revision of that list, so after a restart it picks each job up where
//! the store says it is, and sees every later change in order. Each job
//! with something to do gets a task of its own ([`job`]; under
//! `--executor none` an idle job's task is parked until a change gives it
//! something to do) that owns its processes and its one timer (the active
//! deadline, the TTL, or a pending restart, whichever comes first); a replace that changes `activeDeadlineSeconds` or
//! `ttlSecondsAfterFinished` reaches the task as a MODIFIED object and moves
//! the timer at once. A watch that ends is resumed from the last revision;
//! one whose revision was compacted starts over with a new list.
//!
//! **Status goes through the registry.** The controller writes only the
//! status (as the `/status` subresource does), with compare-and-swap on the
//! resourceVersion it last read; on a conflict it reads the job again and
//! works the status out again. It deletes a job whose TTL ran out the same
//! way, conditional on the uid and resourceVersion it judged, so a replace
//! that moved the TTL in the meantime wins.
//!
//! **What it writes**, with mxnet-operator's reasons and messages
//! ([`conditions`]): on admission `startTime` and `Created`; then, from the
//! processes, `Running`, `Restarting`, `Succeeded` or `Failed`,
//! `mxReplicaStatuses`, `completionTime`; and `lastReconcileTime` with every
//! write. It enforces `activeDeadlineSeconds` (counted from `startTime`),
//! `backoffLimit`, each replica's `restartPolicy`, `cleanPodPolicy`
//! (default `Running`) when the job finishes, and `ttlSecondsAfterFinished`.
//! An MXTrain job succeeds when its Scheduler does, an MXTune job when its
//! Tuner does (the roles that coordinate the rest).
//!
//! **Executors** ([`executor`]). With [`ExecutorKind::None`] nothing is
//! started: the status comes from outside through the subresource, and the
//! controller only admits jobs, fails those past their deadline and deletes
//! finished ones after their TTL. With [`ExecutorKind::Local`] every replica
//! is a process on this machine ([`local`]); with
//! [`ExecutorKind::Kubernetes`] a Pod in a cluster ([`kubernetes`]). Both
//! feed one state machine (`job.rs`): the same conditions, counts, restart
//! policies, deadline, clean-up and TTL.
//!
//! **Pods reach the job tasks through one watch.** Under Kubernetes the
//! leading controller watches every Pod of its installation
//! ([`kubernetes::feed`]), keeps them in an index by job, and hands each
//! job task its own: all of them when the task starts or the watch lists
//! again, then each change. A task starts no Pod before it has had that
//! first list, so a restarted server adopts what exists instead of making
//! duplicates. After each list the Pods and Services of jobs that no longer
//! exist (deleted while no server of the installation led) are deleted.
//!
//! **A restarted server** finds jobs that had started but not finished.
//! Under the local executor their processes belonged to the previous
//! server: it killed them when it shut down (or, if it died, this one kills
//! them from their pid files), and the controller marks such a job
//! `Restarting` and starts all its replicas again from scratch, as the
//! operator recreates pods that vanished; this does not count against
//! `backoffLimit`, since no replica failed. Under Kubernetes the Pods run
//! on: the new server adopts them and catches up with what they did
//! meanwhile, and only makes those that are missing.
//!
//! **One controller per store** ([`lease`]): servers sharing a store take a
//! lease through it, and only the holder reconciles. The others wait and
//! take over when the holder stops renewing it or releases it on shutdown;
//! the new holder then treats the running jobs as a restarted server does.

pub mod conditions;
pub mod environment;
pub mod executor;
mod job;
pub mod kubernetes;
pub mod lease;
pub mod local;
pub mod logs;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use slog::{error, info, o, warn, Logger};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::metrics::ControllerMetrics;
use crate::registry::Error;
use crate::registry::Object;
use crate::registry::Registry;
use crate::store::Revision;
use executor::Executor;
use job::{DecidedFrom, Idle, JobEvent, Shared};
use kubernetes::feed::{Feed, PodFeed, PodIndex};
use kubernetes::{KubernetesExecutor, KubernetesSettings};
use lease::{Ended, Lease};
use local::LocalExecutor;
use logs::LogSource;
use mxjob_api::model::MXJob;

/// What runs a job's replicas.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExecutorKind {
    /// Nothing: status is written from outside.
    None,
    /// Local processes.
    Local,
    /// Pods in a Kubernetes cluster ([`ControllerSettings::kubernetes`]).
    Kubernetes,
}

/// How the controller runs.
#[derive(Clone, Debug)]
pub struct ControllerSettings {
    pub executor: ExecutorKind,
    /// Where the local executor keeps each replica's log (and runs it,
    /// unless its container names a `workingDir`).
    pub log_dir: PathBuf,
    /// This server's name in the lease.
    pub identity: String,
    /// How long the lease lasts without renewal.
    pub lease_duration: Duration,
    /// How long a replica has between SIGTERM and SIGKILL.
    pub kill_grace: Duration,
    /// The cluster of [`ExecutorKind::Kubernetes`].
    pub kubernetes: Option<KubernetesSettings>,
    /// What the controller reports to `/metrics` and `/readyz`.
    pub metrics: ControllerMetrics,
}

impl ControllerSettings {
    pub fn new(executor: ExecutorKind, log_dir: PathBuf) -> Self {
        let uid = uuid::Uuid::new_v4().simple().to_string();
        ControllerSettings {
            executor,
            log_dir,
            identity: format!("mxjob-server-{}-{}", std::process::id(), &uid[..8]),
            lease_duration: Duration::from_secs(15),
            kill_grace: Duration::from_secs(5),
            kubernetes: None,
            metrics: ControllerMetrics::default(),
        }
    }

    /// Settings for [`ExecutorKind::Kubernetes`] in the cluster `kubernetes`.
    pub fn in_cluster(kubernetes: KubernetesSettings, log_dir: PathBuf) -> Self {
        let mut settings = ControllerSettings::new(ExecutorKind::Kubernetes, log_dir);
        settings.kubernetes = Some(kubernetes);
        settings
    }

    /// The directory replica logs are read from, when processes run here.
    pub fn replica_log_dir(&self) -> Option<&Path> {
        (self.executor == ExecutorKind::Local).then_some(self.log_dir.as_path())
    }

    /// Where `GET …/log` reads replica logs.
    pub fn log_source(&self) -> LogSource {
        match (self.executor, &self.kubernetes) {
            (ExecutorKind::Local, _) => LogSource::Local(self.log_dir.clone()),
            (ExecutorKind::Kubernetes, Some(kubernetes)) => LogSource::Kubernetes(
                KubernetesExecutor::new(kubernetes.clone(), Logger::root(slog::Discard, o!())),
            ),
            _ => LogSource::None,
        }
    }
}

/// A running controller.
pub struct Controller {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Controller {
    /// Starts the controller over `registry` (on the current runtime).
    pub fn spawn(registry: Registry, settings: ControllerSettings, log: Logger) -> Self {
        let executor = match (settings.executor, settings.kubernetes.clone()) {
            (ExecutorKind::None, _) => None,
            (ExecutorKind::Local, _) => Some(Executor::Local(LocalExecutor::new(
                settings.log_dir.clone(),
                settings.kill_grace,
                log.new(o!("executor" => "local")),
            ))),
            (ExecutorKind::Kubernetes, Some(kubernetes)) => Some(Executor::Kubernetes(
                KubernetesExecutor::new(kubernetes, log.new(o!("executor" => "kubernetes"))),
            )),
            (ExecutorKind::Kubernetes, None) => {
                error!(log, "the Kubernetes executor has no cluster: running none");
                None
            }
        };
        let lease = Lease::new(
            registry.store().clone(),
            settings.identity.clone(),
            settings.lease_duration,
            log.clone(),
        );
        let shared = Arc::new(Shared {
            registry,
            executor,
            log,
            metrics: settings.metrics.clone(),
        });
        let (stop, stopping) = watch::channel(false);
        let task = tokio::spawn(serve(shared, lease, stopping));
        Controller { stop, task }
    }

    /// Stops reconciling, kills the processes it runs, and releases the lease.
    pub async fn stop(self) {
        self.stop.send_replace(true);
        let _ = self.task.await;
    }
}

/// Resolves once `stop` is set (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Takes the lease, reconciles while holding it, and starts over when it
/// is lost.
async fn serve(shared: Arc<Shared>, mut lease: Lease, mut stop: watch::Receiver<bool>) {
    loop {
        if !lease.acquire(&mut stop).await {
            return;
        }
        let (end_leading, leading_ends) = watch::channel(false);
        let leading = tokio::spawn(lead(shared.clone(), leading_ends));
        let ended = lease.hold(&mut stop).await;
        end_leading.send_replace(true);
        if let Err(e) = leading.await {
            error!(shared.log, "the controller failed"; "error" => %e);
        }
        if ended == Ended::Stopped {
            // Only now that its processes are gone may another server start them.
            lease.release().await;
            return;
        }
    }
}

/// The job tasks of a leading controller.
struct Jobs {
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
    workers: HashMap<(String, String), Worker>,
    tasks: JoinSet<()>,
    /// Where job tasks say they are idle.
    idle: mpsc::UnboundedSender<Idle>,
    /// Kubernetes: the installation's Pods by job, and whether the cluster
    /// can be reached (why not).
    pods: PodIndex,
    unreachable: Option<String>,
}

struct Worker {
    uid: String,
    /// `None` while the job is parked (it has no task).
    inbox: Option<mpsc::UnboundedSender<JobEvent>>,
    /// Changes sent to the task, for the parking handshake.
    sent: u64,
    /// While parked, what its task decided from when it found nothing
    /// to do.
    parked: Option<DecidedFrom>,
}

impl Worker {
    /// Hands `event` to the job's task, if it has one.
    fn send(&mut self, shared: &Shared, event: JobEvent) {
        if let Some(inbox) = &self.inbox {
            shared.send(inbox, event);
            self.sent += 1;
        }
    }

    /// Whether a task takes changes for the job.
    fn running(&self) -> bool {
        self.inbox.as_ref().is_some_and(|inbox| !inbox.is_closed())
    }
}

fn key_of(job: &MXJob) -> (String, String) {
    (
        job.metadata.namespace.clone().unwrap_or_default(),
        job.metadata.name.clone().unwrap_or_default(),
    )
}

impl Jobs {
    /// Hands a job's newest state to its task, starting one if needed.
    fn observe(&mut self, job: Arc<Object>) {
        let key = key_of(job.job_without_managed_fields());
        let uid = job
            .job_without_managed_fields()
            .metadata
            .uid
            .clone()
            .unwrap_or_default();
        self.shared
            .metrics
            .observed(job.job_without_managed_fields());
        if let Some(worker) = self.workers.get_mut(&key) {
            if worker.uid == uid && worker.running() {
                worker.send(&self.shared, JobEvent::Observed(job));
                return;
            }
            if worker.uid == uid
                && worker
                    .parked
                    .is_some_and(|parked| parked == DecidedFrom::of(&job))
            {
                return;
            }
            if worker.uid != uid {
                // Another object under the same name: the old one is gone.
                worker.send(&self.shared, JobEvent::Deleted(None));
            }
        }
        let (inbox, received) = mpsc::unbounded_channel();
        self.tasks.spawn(job::run(
            self.shared.clone(),
            job,
            inbox.clone(),
            received,
            self.idle.clone(),
            self.stop.clone(),
        ));
        let mut worker = Worker {
            uid,
            inbox: Some(inbox),
            sent: 0,
            parked: None,
        };
        if self.pods.synced {
            worker.send(&self.shared, JobEvent::Pods(self.pods.of(&key)));
        }
        if let Some(why) = &self.unreachable {
            worker.send(&self.shared, JobEvent::Cluster(Some(why.clone())));
        }
        self.workers.insert(key, worker);
        while let Some(result) = self.tasks.try_join_next() {
            if let Err(e) = result {
                error!(self.shared.log, "a job task failed"; "error" => %e);
            }
        }
    }

    fn deleted(&mut self, object: Arc<Object>) {
        let job = object.job_without_managed_fields();
        let key = key_of(job);
        let uid = job.metadata.uid.as_deref().unwrap_or_default();
        if self.workers.get(&key).is_some_and(|w| w.uid == uid) {
            self.shared.metrics.forgotten(&key.0, &key.1);
            if let Some(mut worker) = self.workers.remove(&key) {
                worker.send(&self.shared, JobEvent::Deleted(Some(object.clone())));
            }
        }
    }

    /// Lists every job and brings the tasks in line with the list; returns
    /// the list's revision, or `None` when stopped first.
    async fn relist(&mut self) -> Option<Revision> {
        loop {
            match self.shared.registry.list_all().await {
                Ok((jobs, revision)) => {
                    let mut live = HashSet::new();
                    let mut listed = HashSet::new();
                    for kv in jobs {
                        match Registry::decode_stored(&kv) {
                            Ok(job) => {
                                live.insert(
                                    job.job_without_managed_fields()
                                        .metadata
                                        .uid
                                        .clone()
                                        .unwrap_or_default(),
                                );
                                listed.insert(key_of(job.job_without_managed_fields()));
                                self.observe(job);
                            }
                            Err(e) => warn!(self.shared.log, "skipping an undecodable job";
                                "error" => %e),
                        }
                    }
                    let gone: Vec<_> = self
                        .workers
                        .keys()
                        .filter(|k| !listed.contains(*k))
                        .cloned()
                        .collect();
                    for key in gone {
                        self.shared.metrics.forgotten(&key.0, &key.1);
                        if let Some(mut worker) = self.workers.remove(&key) {
                            worker.send(&self.shared, JobEvent::Deleted(None));
                        }
                    }
                    if let Some(Executor::Local(executor)) = self.shared.executor.clone() {
                        let _ = tokio::task::spawn_blocking(move || {
                            executor.collect_garbage(&live);
                        })
                        .await;
                    }
                    return Some(revision);
                }
                Err(e) => {
                    warn!(self.shared.log, "listing jobs"; "error" => %e);
                    if !self.pause().await {
                        return None;
                    }
                }
            }
        }
    }

    /// Takes in a change to the installation's Pods and passes it on.
    fn pod_feed(&mut self, message: PodFeed) {
        match message {
            PodFeed::Applied(pod) => {
                if let Some(key) = self.pods.apply(&pod) {
                    self.tell(&key, JobEvent::Pod(pod));
                }
            }
            PodFeed::Deleted(pod) => {
                if let Some(key) = self.pods.delete(&pod) {
                    self.tell(&key, JobEvent::PodGone(pod));
                }
            }
            PodFeed::Synced(pods) => {
                self.pods.replace(pods);
                self.shared.metrics.synced();
                for (key, worker) in &mut self.workers {
                    worker.send(&self.shared, JobEvent::Pods(self.pods.of(key)));
                }
                self.collect_garbage();
            }
            PodFeed::Unreachable(why) => {
                self.unreachable = Some(why.clone());
                for worker in self.workers.values_mut() {
                    worker.send(&self.shared, JobEvent::Cluster(Some(why.clone())));
                }
            }
            PodFeed::Reachable => {
                self.unreachable = None;
                for worker in self.workers.values_mut() {
                    worker.send(&self.shared, JobEvent::Cluster(None));
                }
            }
        }
    }

    fn tell(&mut self, key: &(String, String), event: JobEvent) {
        if let Some(worker) = self.workers.get_mut(key) {
            worker.send(&self.shared, event);
        }
    }

    /// A job task is idle: park it if it has taken everything sent to it.
    fn parked(&mut self, idle: Idle) {
        if let Some(worker) = self.workers.get_mut(&idle.key) {
            if worker.uid == idle.uid && worker.sent == idle.taken && worker.running() {
                worker.send(&self.shared, JobEvent::Park);
                worker.inbox = None;
                worker.parked = Some(idle.decided_from);
            }
        }
    }

    /// Deletes, in the background, the Pods and Services of jobs this
    /// controller does not know: every existing job has a task by now.
    fn collect_garbage(&mut self) {
        let Some(Executor::Kubernetes(executor)) = self.shared.executor.clone() else {
            return;
        };
        let live: HashSet<String> = self.workers.values().map(|w| w.uid.clone()).collect();
        let pods: Vec<_> = self.pods.all().cloned().collect();
        let log = self.shared.log.clone();
        self.tasks.spawn(async move {
            if let Err(error) = executor.collect_garbage(pods, &live).await {
                warn!(log, "deleting the pods of deleted jobs"; "error" => %error);
            }
        });
    }

    /// Waits a moment before retrying; `false` when stopped meanwhile.
    async fn pause(&mut self) -> bool {
        tokio::select! {
            _ = stopped(&mut self.stop) => false,
            _ = tokio::time::sleep(Duration::from_secs(1)) => true,
        }
    }
}

/// The next change of the Pod feed; never, without one.
async fn next_pod_change(feed: &mut Option<Feed>) -> Option<PodFeed> {
    match feed {
        Some(feed) => feed.events.recv().await,
        None => std::future::pending().await,
    }
}

/// Reconciles every job until `stop` fires, then waits for the job tasks
/// to stop their processes.
async fn lead(shared: Arc<Shared>, stop: watch::Receiver<bool>) {
    info!(shared.log, "reconciling jobs");
    let (idle, mut idling) = mpsc::unbounded_channel();
    let mut jobs = Jobs {
        shared: shared.clone(),
        stop: stop.clone(),
        workers: HashMap::new(),
        tasks: JoinSet::new(),
        idle,
        pods: PodIndex::default(),
        unreachable: None,
    };
    let mut feed = match &shared.executor {
        Some(Executor::Kubernetes(executor)) => Some(executor.feed()),
        _ => None,
    };
    let mut stopping = stop;
    let mut resume = jobs.relist().await;
    // With Kubernetes, ready waits for the Pods' first list as well.
    if resume.is_some() && feed.is_none() {
        shared.metrics.synced();
    }
    while let Some(after) = resume {
        resume = match shared.registry.watch_all(after).await {
            Ok(mut events) => {
                let mut last = after;
                loop {
                    let next = tokio::select! {
                        _ = stopped(&mut stopping) => break None,
                        Some(message) = next_pod_change(&mut feed) => {
                            jobs.pod_feed(message);
                            continue;
                        }
                        Some(idle) = idling.recv() => {
                            jobs.parked(idle);
                            continue;
                        }
                        next = events.next() => next,
                    };
                    match next {
                        // The stream ended (the watcher fell behind): resume.
                        None => break Some(last),
                        Some(Ok(change)) => {
                            last = change.revision;
                            match change.job {
                                Ok(job) if change.deleted => jobs.deleted(job),
                                Ok(job) => jobs.observe(job),
                                Err(e) => warn!(shared.log, "skipping an undecodable job";
                                    "error" => %e),
                            }
                        }
                        Some(Err(Error::Gone(_))) => break jobs.relist().await,
                        Some(Err(e)) => {
                            warn!(shared.log, "watching jobs"; "error" => %e);
                            break Some(last);
                        }
                    }
                }
            }
            Err(Error::Gone(_)) => jobs.relist().await,
            Err(e) => {
                warn!(shared.log, "watching jobs"; "error" => %e);
                if jobs.pause().await {
                    Some(after)
                } else {
                    None
                }
            }
        };
    }
    drop(feed);
    // The tasks see the same stop signal; wait until their processes are gone.
    while let Some(result) = jobs.tasks.join_next().await {
        if let Err(e) = result {
            error!(shared.log, "a job task failed"; "error" => %e);
        }
    }
    info!(shared.log, "stopped reconciling jobs");
}

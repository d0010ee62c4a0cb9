//! What runs a job's replicas, as the job task sees it.
//!
//! An enum, not a trait object: there are two executors, the job task
//! needs to know which one it drives where they differ in kind (a process
//! exits and is gone; a Pod is watched, outlives this server, and is adopted
//! by the next one), and everything they share — which replicas to start
//! when, what an exit means, the conditions — lives once, in the state
//! machine of `job.rs`. Each variant's own work is in its module:
//! [`local`](super::local) and [`kubernetes`](super::kubernetes).

use super::kubernetes::{KubernetesExecutor, PodRef};
use super::local::{LocalExecutor, Process};

/// The executor of a controller (none with `--executor none`).
#[derive(Clone, Debug)]
pub enum Executor {
    Local(LocalExecutor),
    Kubernetes(KubernetesExecutor),
}

/// A started replica.
#[derive(Debug)]
pub enum Handle {
    /// A process of this server.
    Process(Process),
    /// A Pod in the cluster.
    Pod(PodHandle),
}

/// A replica's Pod as last seen through the watch.
#[derive(Debug)]
pub struct PodHandle {
    pub pod: PodRef,
    /// The watch has shown it (until then, its absence means nothing).
    pub observed: bool,
    /// In phase `Running`: what the operator counts as active.
    pub running: bool,
    /// A container exited and waits for the kubelet to start it again.
    pub restarting: bool,
    /// The restart count already counted against `backoffLimit`.
    pub restarts_seen: i32,
}

impl PodHandle {
    pub fn new(pod: PodRef) -> Self {
        PodHandle {
            pod,
            observed: false,
            running: false,
            restarting: false,
            restarts_seen: 0,
        }
    }
}

impl Handle {
    /// Whether the replica counts as active: a process as long as it runs,
    /// a Pod while it is in phase `Running` (a Pending Pod is not, as the
    /// operator counts).
    pub fn active(&self) -> bool {
        match self {
            Handle::Process(_) => true,
            Handle::Pod(pod) => pod.running,
        }
    }

    /// Whether it waits for the kubelet to restart a container.
    pub fn restarting(&self) -> bool {
        match self {
            Handle::Process(_) => false,
            Handle::Pod(pod) => pod.restarting,
        }
    }
}

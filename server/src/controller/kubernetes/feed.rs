//! One watch on every Pod this installation manages, and the index that
//! hands each job task its own.
//!
//! **One watch, not one per job.** kube-runtime's `watcher` lists and
//! watches Pods cluster-wide, selected by [`INSTALLATION_LABEL`]; it
//! resumes from the last resourceVersion after an interruption and lists
//! again (the `Init` … `InitDone` sequence) when that is too old. Each
//! change reaches the controller as a [`PodFeed`] message through a
//! channel, and the [`PodIndex`] groups the Pods by job, so a job task
//! never lists anything. `managedFields` are dropped on arrival: the
//! controller never reads them, and they are a good part of a Pod's size.
//!
//! **Trouble is reported once, and so is its end.** While the watch fails
//! (the API server is gone, or refuses the list), the feed says
//! [`PodFeed::Unreachable`] once, then asks the API server for its version
//! every few seconds; the first answer, or the next Pod event, is
//! [`PodFeed::Reachable`]. A watch that resumed without listing would
//! otherwise not say that anything got better.
//!
//! [`INSTALLATION_LABEL`]: super::objects::INSTALLATION_LABEL

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Api, Client, ResourceExt};
use slog::{info, warn, Logger};
use tokio::sync::mpsc;

use super::error::describe_chain;
use super::objects::{installation_selector, job_key};

/// How often a troubled feed asks whether the API server is back.
const PROBE_EVERY: Duration = Duration::from_secs(2);

/// A change to the Pods of this installation.
#[derive(Debug)]
pub enum PodFeed {
    Applied(Arc<Pod>),
    Deleted(Arc<Pod>),
    /// Every Pod, after a (re)list: whatever is not here is gone.
    Synced(Vec<Arc<Pod>>),
    /// The watch fails; why.
    Unreachable(String),
    /// It works again.
    Reachable,
}

/// A running feed; dropping it stops the watch.
pub struct Feed {
    pub events: mpsc::UnboundedReceiver<PodFeed>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Feed {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts watching the Pods labelled with `installation`.
pub fn spawn(client: Client, installation: &str, server: String, log: Logger) -> Feed {
    let (sender, events) = mpsc::unbounded_channel();
    let selector = installation_selector(installation);
    let task = tokio::spawn(run(client, selector, server, sender, log));
    Feed { events, task }
}

async fn run(
    client: Client,
    selector: String,
    server: String,
    sender: mpsc::UnboundedSender<PodFeed>,
    log: Logger,
) {
    let api: Api<Pod> = Api::all(client.clone());
    let config = watcher::Config::default().labels(&selector);
    let mut stream = watcher::watcher(api, config)
        .modify(|pod| pod.managed_fields_mut().clear())
        .default_backoff()
        .boxed();
    let mut listing: Option<Vec<Arc<Pod>>> = None;
    let mut troubled = false;
    let send = |message| sender.send(message).is_ok();
    loop {
        let next = tokio::select! {
            next = stream.next() => next,
            _ = tokio::time::sleep(PROBE_EVERY), if troubled => {
                if client.apiserver_version().await.is_ok() {
                    info!(log, "the Kubernetes API server answers again");
                    troubled = false;
                    if !send(PodFeed::Reachable) {
                        return;
                    }
                }
                continue;
            }
        };
        let Some(next) = next else { return };
        let event = match next {
            Ok(event) => event,
            Err(error) => {
                if !troubled {
                    let detail = describe_chain(&error);
                    warn!(log, "watching pods"; "error" => &detail);
                    troubled = true;
                    let message = format!(
                        "the Kubernetes API server at {server} cannot be watched: {detail}"
                    );
                    if !send(PodFeed::Unreachable(message)) {
                        return;
                    }
                }
                continue;
            }
        };
        if troubled {
            troubled = false;
            if !send(PodFeed::Reachable) {
                return;
            }
        }
        let delivered = match event {
            Event::Init => {
                listing = Some(Vec::new());
                true
            }
            Event::InitApply(pod) => {
                listing.get_or_insert_with(Vec::new).push(Arc::new(pod));
                true
            }
            Event::InitDone => send(PodFeed::Synced(listing.take().unwrap_or_default())),
            Event::Apply(pod) => send(PodFeed::Applied(Arc::new(pod))),
            Event::Delete(pod) => send(PodFeed::Deleted(Arc::new(pod))),
        };
        if !delivered {
            return;
        }
    }
}

/// The Pods of this installation by job (namespace, name), then by Pod name.
#[derive(Default)]
pub struct PodIndex {
    jobs: HashMap<(String, String), BTreeMap<String, Arc<Pod>>>,
    /// A full list has arrived.
    pub synced: bool,
}

impl PodIndex {
    /// Takes a change in; returns the job it concerns.
    pub fn apply(&mut self, pod: &Arc<Pod>) -> Option<(String, String)> {
        let key = job_key(pod)?;
        self.jobs
            .entry(key.clone())
            .or_default()
            .insert(pod.name_any(), pod.clone());
        Some(key)
    }

    pub fn delete(&mut self, pod: &Pod) -> Option<(String, String)> {
        let key = job_key(pod)?;
        if let Some(pods) = self.jobs.get_mut(&key) {
            pods.remove(&pod.name_any());
            if pods.is_empty() {
                self.jobs.remove(&key);
            }
        }
        Some(key)
    }

    /// Replaces everything with a full list.
    pub fn replace(&mut self, pods: Vec<Arc<Pod>>) {
        self.jobs.clear();
        for pod in &pods {
            self.apply(pod);
        }
        self.synced = true;
    }

    /// The Pods labelled with a job's name (its earlier namesakes' too).
    pub fn of(&self, key: &(String, String)) -> Vec<Arc<Pod>> {
        self.jobs
            .get(key)
            .map(|pods| pods.values().cloned().collect())
            .unwrap_or_default()
    }

    pub fn all(&self) -> impl Iterator<Item = &Arc<Pod>> {
        self.jobs.values().flat_map(|pods| pods.values())
    }
}

//! The Kubernetes executor: every replica of a job is a Pod, with a
//! headless Service for its DNS name, in the namespace of the MXJob's name.
//!
//! **The cluster does the running; the controller keeps the books.** What
//! the executor writes is as mxnet-operator v1 writes it ([`objects`]).
//! What happens to the Pods comes back through one label-selected watch of
//! the whole installation ([`feed`]); the job tasks turn Pod phases, exit
//! codes and restart counts into the same state machine the local
//! executor's processes feed (see `job.rs`). The kubelet restarts
//! containers under `OnFailure` and `Always`, and the controller counts its
//! restarts against `backoffLimit`; under `ExitCode` the Pod never restarts
//! and the controller deletes and re-creates it when its exit code is
//! retryable.
//!
//! **Everything is found by label and told apart by uid.** The executor
//! deletes only objects carrying this installation's label, by name, with
//! the Pod's (or Service's) uid as a precondition, after checking the job
//! uid annotation — never by a bare selector, which could catch a later job
//! of the same name. A server that stops leaves the Pods running: its
//! successor (after a restart, or the next lease holder) finds them in its
//! first list and adopts them, and deletes those whose MXJob is gone
//! ([`KubernetesExecutor::collect_garbage`]).
//!
//! **Orphans leave the installation.** A job deleted with
//! `propagationPolicy: Orphan` keeps its Pods and Services; the executor
//! removes their installation label (as Kubernetes removes an orphan's
//! owner reference), so that no later garbage collection takes them.
//!
//! **Bounded pressure on the API server.** All mutating calls share one
//! semaphore of [`CONCURRENT_CALLS`] permits, however many jobs start at
//! once.

pub mod error;
pub mod feed;
pub mod objects;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{
    DeleteParams, ListParams, LogParams, Patch, PatchParams, PostParams, Preconditions,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config, ResourceExt};
use serde_json::json;
use slog::{info, Logger};
use tokio::sync::Semaphore;

use error::ClusterError;
use mxjob_api::model::{MXJob, ReplicaType};
use objects::{owner_uid, replica_name, INSTALLATION_LABEL};

/// Mutating calls in flight at once, across all jobs.
pub const CONCURRENT_CALLS: usize = 32;
/// The installation name when none is given.
pub const DEFAULT_INSTALLATION: &str = "mxjob";
/// How long the startup check waits for the API server.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// Where the cluster is and who this installation is in it.
#[derive(Clone)]
pub struct KubernetesSettings {
    pub client: Client,
    /// The API server's URL, for messages.
    pub server: String,
    /// The value of [`INSTALLATION_LABEL`] on everything this server makes.
    pub installation: String,
}

impl std::fmt::Debug for KubernetesSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubernetesSettings")
            .field("server", &self.server)
            .field("installation", &self.installation)
            .finish()
    }
}

/// Why the executor could not connect at startup.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("reading the kubeconfig {path}: {detail}")]
    Kubeconfig { path: PathBuf, detail: String },
    #[error("configuring the Kubernetes client: {0}")]
    Config(String),
    #[error("the Kubernetes API server at {server} did not answer: {detail}")]
    Unanswered { server: String, detail: String },
}

impl KubernetesSettings {
    /// Connects as client-go would: `kubeconfig` (with `context`) when
    /// given; else, without a context, the in-cluster configuration, then
    /// `$KUBECONFIG`, then `~/.kube/config`. Checks that the API server
    /// answers.
    pub async fn connect(
        kubeconfig: Option<PathBuf>,
        context: Option<String>,
        installation: String,
    ) -> Result<Self, ConnectError> {
        let options = KubeConfigOptions {
            context,
            ..Default::default()
        };
        let describe = |e: &dyn std::error::Error| ConnectError::Config(error::describe_chain(e));
        let config = match kubeconfig {
            Some(path) => {
                let file = Kubeconfig::read_from(&path).map_err(|e| ConnectError::Kubeconfig {
                    path: path.clone(),
                    detail: error::describe_chain(&e),
                })?;
                Config::from_custom_kubeconfig(file, &options)
                    .await
                    .map_err(|e| describe(&e))?
            }
            None if options.context.is_some() => Config::from_kubeconfig(&options)
                .await
                .map_err(|e| describe(&e))?,
            None => Config::infer().await.map_err(|e| describe(&e))?,
        };
        let server = config.cluster_url.to_string();
        let client = Client::try_from(config).map_err(|e| describe(&e))?;
        let unanswered = |detail: String| ConnectError::Unanswered {
            server: server.clone(),
            detail,
        };
        match tokio::time::timeout(CONNECT_TIMEOUT, client.apiserver_version()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(unanswered(error::describe_chain(&e))),
            Err(_) => return Err(unanswered(format!("no answer within {CONNECT_TIMEOUT:?}"))),
        }
        Ok(KubernetesSettings {
            client,
            server,
            installation,
        })
    }
}

/// A Pod to delete: its name and uid.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PodRef {
    pub name: String,
    pub uid: String,
}

impl PodRef {
    pub fn of(pod: &Pod) -> Self {
        PodRef {
            name: pod.name_any(),
            uid: pod.uid().unwrap_or_default(),
        }
    }
}

/// Makes and removes the Pods and Services of jobs; see the module docs.
#[derive(Clone)]
pub struct KubernetesExecutor {
    settings: KubernetesSettings,
    calls: Arc<Semaphore>,
    log: Logger,
}

impl std::fmt::Debug for KubernetesExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.settings.fmt(f)
    }
}

fn namespace(job: &MXJob) -> &str {
    job.metadata.namespace.as_deref().unwrap_or_default()
}

impl KubernetesExecutor {
    pub fn new(settings: KubernetesSettings, log: Logger) -> Self {
        KubernetesExecutor {
            settings,
            calls: Arc::new(Semaphore::new(CONCURRENT_CALLS)),
            log,
        }
    }

    pub fn settings(&self) -> &KubernetesSettings {
        &self.settings
    }

    /// Starts the watch of this installation's Pods.
    pub fn feed(&self) -> feed::Feed {
        feed::spawn(
            self.settings.client.clone(),
            &self.settings.installation,
            self.settings.server.clone(),
            self.log.clone(),
        )
    }

    fn error(&self, error: kube::Error) -> ClusterError {
        ClusterError::from_kube(error, &self.settings.server)
    }

    fn pods(&self, namespace: &str) -> Api<Pod> {
        Api::namespaced(self.settings.client.clone(), namespace)
    }

    fn services(&self, namespace: &str) -> Api<Service> {
        Api::namespaced(self.settings.client.clone(), namespace)
    }

    async fn permit(&self) -> tokio::sync::SemaphorePermit<'_> {
        // The semaphore is never closed.
        self.calls
            .acquire()
            .await
            .unwrap_or_else(|_| unreachable!("the call semaphore is never closed"))
    }

    /// Makes replica `index` of `replica_type`: its Service, then its Pod.
    /// A Service this installation made earlier under the same name is
    /// taken over; a Pod of this job that exists already (made by a
    /// predecessor, or by a create whose answer was lost) is adopted.
    pub async fn create_replica(
        &self,
        job: &MXJob,
        replica_type: &ReplicaType,
        index: i32,
    ) -> Result<Pod, ClusterError> {
        let installation = &self.settings.installation;
        let pod = objects::pod(job, replica_type, index, installation).map_err(|e| {
            ClusterError::Invalid {
                reason: "Invalid".to_string(),
                message: e.to_string(),
            }
        })?;
        let service = objects::service(job, replica_type, index, installation);
        self.create_service(job, &service).await?;
        let name = pod.name_any();
        let api = self.pods(namespace(job));
        let created = {
            let _permit = self.permit().await;
            api.create(&PostParams::default(), &pod).await
        };
        match created.map_err(|e| self.error(e).on_create()) {
            Ok(pod) => Ok(pod),
            Err(error) if error.is_conflict() => {
                let existing = api.get(&name).await.map_err(|e| self.error(e))?;
                let ours = owner_uid(&existing.metadata) == job.metadata.uid.as_deref()
                    && existing.metadata.deletion_timestamp.is_none();
                if ours {
                    Ok(existing)
                } else {
                    Err(error)
                }
            }
            Err(error) => Err(error),
        }
    }

    async fn create_service(&self, job: &MXJob, service: &Service) -> Result<(), ClusterError> {
        let api = self.services(namespace(job));
        let name = service.name_any();
        let created = {
            let _permit = self.permit().await;
            api.create(&PostParams::default(), service).await
        };
        match created.map_err(|e| self.error(e).on_create()) {
            Ok(_) => Ok(()),
            Err(error) if error.is_conflict() => {
                let existing = api.get(&name).await.map_err(|e| self.error(e))?;
                let installation = existing.labels().get(INSTALLATION_LABEL);
                if installation != Some(&self.settings.installation) {
                    return Err(error);
                }
                if owner_uid(&existing.metadata) == job.metadata.uid.as_deref() {
                    return Ok(());
                }
                // An earlier namesake's: make it this job's.
                let patch = json!({
                    "metadata": {
                        "uid": existing.uid(),
                        "labels": service.metadata.labels,
                        "annotations": service.metadata.annotations,
                    },
                    "spec": {"selector": service.spec.as_ref().and_then(|s| s.selector.clone()),
                             "ports": service.spec.as_ref().and_then(|s| s.ports.clone())},
                });
                let _permit = self.permit().await;
                api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .map(|_| ())
                    .map_err(|e| self.error(e))
            }
            Err(error) => Err(error),
        }
    }

    /// Deletes Pods of a job's namespace, each only if it is still the Pod
    /// of that uid; `grace` is the delete's grace period (the Pod's own
    /// when `None`). Pods already gone are fine.
    pub async fn delete_pods(
        &self,
        namespace: &str,
        pods: &[PodRef],
        grace: Option<u32>,
    ) -> Result<(), ClusterError> {
        let api = self.pods(namespace);
        let deletes = pods.iter().map(|pod| {
            let api = api.clone();
            async move {
                let params = DeleteParams {
                    grace_period_seconds: grace,
                    preconditions: Some(Preconditions {
                        uid: Some(pod.uid.clone()),
                        resource_version: None,
                    }),
                    ..Default::default()
                };
                let _permit = self.permit().await;
                match api
                    .delete(&pod.name, &params)
                    .await
                    .map_err(|e| self.error(e))
                {
                    Ok(_) => Ok(()),
                    // Gone, or another Pod has the name now.
                    Err(e) if e.is_not_found() || e.is_conflict() => Ok(()),
                    Err(e) => Err(e),
                }
            }
        });
        futures::future::join_all(deletes)
            .await
            .into_iter()
            .collect::<Result<Vec<()>, _>>()
            .map(|_| ())
    }

    /// The Services of this job (not of a namesake).
    async fn services_of(&self, job: &MXJob) -> Result<Vec<Service>, ClusterError> {
        let selector = objects::job_selector(
            &self.settings.installation,
            job.metadata.name.as_deref().unwrap_or_default(),
        );
        let list = self
            .services(namespace(job))
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(|e| self.error(e))?;
        Ok(list
            .items
            .into_iter()
            .filter(|s| owner_uid(&s.metadata) == job.metadata.uid.as_deref())
            .collect())
    }

    /// Deletes the job's Services, or only those named in `only`.
    pub async fn delete_services(
        &self,
        job: &MXJob,
        only: Option<&HashSet<String>>,
    ) -> Result<(), ClusterError> {
        let services = self.services_of(job).await?;
        let api = self.services(namespace(job));
        for service in services {
            let name = service.name_any();
            if only.is_some_and(|names| !names.contains(&name)) {
                continue;
            }
            let params = DeleteParams {
                preconditions: Some(Preconditions {
                    uid: service.uid(),
                    resource_version: None,
                }),
                ..Default::default()
            };
            let _permit = self.permit().await;
            match api.delete(&name, &params).await.map_err(|e| self.error(e)) {
                Ok(_) => {}
                Err(e) if e.is_not_found() || e.is_conflict() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// The Pods of this job (not of a namesake), listed from the cluster.
    async fn pods_of(&self, job: &MXJob) -> Result<Vec<PodRef>, ClusterError> {
        let selector = objects::job_selector(
            &self.settings.installation,
            job.metadata.name.as_deref().unwrap_or_default(),
        );
        let list = self
            .pods(namespace(job))
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(|e| self.error(e))?;
        Ok(list
            .items
            .iter()
            .filter(|p| owner_uid(&p.metadata) == job.metadata.uid.as_deref())
            .map(PodRef::of)
            .collect())
    }

    /// What deleting an MXJob does to its objects: deletes its Pods (with
    /// `grace`, the delete's grace period) and Services, or, when the
    /// delete orphaned them, leaves them and lets go of them.
    pub async fn remove(
        &self,
        job: &MXJob,
        orphaned: bool,
        grace: Option<u32>,
    ) -> Result<(), ClusterError> {
        let pods = self.pods_of(job).await?;
        if orphaned {
            return self.orphan(job, &pods).await;
        }
        self.delete_pods(namespace(job), &pods, grace).await?;
        self.delete_services(job, None).await
    }

    /// Leaves a deleted job's Pods and Services running, and no longer
    /// this installation's (see the module docs).
    async fn orphan(&self, job: &MXJob, pods: &[PodRef]) -> Result<(), ClusterError> {
        let release =
            |uid: &str| json!({"metadata": {"uid": uid, "labels": {INSTALLATION_LABEL: null}}});
        let api = self.pods(namespace(job));
        for pod in pods {
            let _permit = self.permit().await;
            let patched = api
                .patch(
                    &pod.name,
                    &PatchParams::default(),
                    &Patch::Merge(&release(&pod.uid)),
                )
                .await;
            match patched.map_err(|e| self.error(e)) {
                Ok(_) => {}
                Err(e) if e.is_not_found() || e.is_conflict() => {}
                Err(e) => return Err(e),
            }
        }
        let services = self.services_of(job).await?;
        let api = self.services(namespace(job));
        for service in services {
            let uid = service.uid().unwrap_or_default();
            let _permit = self.permit().await;
            let patched = api
                .patch(
                    &service.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(&release(&uid)),
                )
                .await;
            match patched.map_err(|e| self.error(e)) {
                Ok(_) => {}
                Err(e) if e.is_not_found() || e.is_conflict() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Deletes the Pods (from the feed's index) and Services of this
    /// installation whose MXJob is not among `live` (uids): jobs deleted
    /// while no server of the installation was leading.
    pub async fn collect_garbage(
        &self,
        pods: Vec<Arc<Pod>>,
        live: &HashSet<String>,
    ) -> Result<(), ClusterError> {
        let dead = |meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
            owner_uid(meta).is_none_or(|uid| !live.contains(uid))
        };
        let mut by_namespace: std::collections::BTreeMap<String, Vec<PodRef>> = Default::default();
        for pod in pods.iter().filter(|p| dead(&p.metadata)) {
            by_namespace
                .entry(pod.namespace().unwrap_or_default())
                .or_default()
                .push(PodRef::of(pod));
        }
        for (namespace, pods) in &by_namespace {
            info!(self.log, "deleting the pods of deleted jobs";
                "namespace" => namespace, "pods" => pods.len());
            self.delete_pods(namespace, pods, None).await?;
        }
        let services: Api<Service> = Api::all(self.settings.client.clone());
        let selector = objects::installation_selector(&self.settings.installation);
        let list = services
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(|e| self.error(e))?;
        for service in list.items.iter().filter(|s| dead(&s.metadata)) {
            let params = DeleteParams {
                preconditions: Some(Preconditions {
                    uid: service.uid(),
                    resource_version: None,
                }),
                ..Default::default()
            };
            let api = self.services(&service.namespace().unwrap_or_default());
            let _permit = self.permit().await;
            match api
                .delete(&service.name_any(), &params)
                .await
                .map_err(|e| self.error(e))
            {
                Ok(_) => {}
                Err(e) if e.is_not_found() || e.is_conflict() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// The `mxnet` container's log of replica `index` of `replica_type`.
    pub async fn log(
        &self,
        job: &MXJob,
        replica_type: &ReplicaType,
        index: i32,
    ) -> Result<String, ClusterError> {
        let name = replica_name(
            job.metadata.name.as_deref().unwrap_or_default(),
            replica_type,
            index,
        );
        let api = self.pods(namespace(job));
        let pod = api.get(&name).await.map_err(|e| self.error(e))?;
        if owner_uid(&pod.metadata) != job.metadata.uid.as_deref() {
            return Err(ClusterError::NotFound {
                reason: "NotFound".to_string(),
                message: format!("pods \"{name}\" belongs to another job"),
            });
        }
        let params = LogParams {
            container: Some(objects::CONTAINER.to_string()),
            ..Default::default()
        };
        api.logs(&name, &params).await.map_err(|e| self.error(e))
    }
}

//! The Pods and Services of a job, and what a Pod says about its replica.
//!
//! **Names and labels are mxnet-operator v1's** (it used kubeflow/common's
//! keys): replica `i` of role `Worker` of job `j` is the Pod and the
//! headless Service `j-worker-i`, labelled `group-name: kubeflow.org`,
//! `job-name: j`, `replica-type: worker`, `replica-index: i`; the Service
//! selects the Pod by those four. So clients and dashboards written for the
//! operator find the replicas where they expect them. Two marks are this
//! server's own: the label [`INSTALLATION_LABEL`] (which mxjob installation
//! manages the object — the one label the executor watches and deletes by),
//! and the annotation [`JOB_UID_ANNOTATION`] with the MXJob's uid, which
//! takes the place of the operator's owner reference (the MXJob lives in
//! this server, not in the cluster) and tells a job's objects from those of
//! an earlier job of the same name.
//!
//! **The template passes through**: the Pod is the replica's template —
//! scheduler name, node selector, tolerations, resources, volumes, every
//! container — with the name, the labels, the annotation, the restart
//! policy and the operator's variables added. As the operator does, the
//! variables go into every container (a user's variable of the same name is
//! replaced), the `mxnet` container gets the port `mxjob-port` (9091) when
//! it has none, and the replica's `restartPolicy` becomes the Pod's, except
//! `ExitCode`, which the controller itself implements on Pods that never
//! restart (`Never`).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar, Pod, Service, ServicePort, ServiceSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::super::environment::{operator_variables, role, Addresses};
use mxjob_api::model::{MXJob, ReplicaType, RestartPolicy};

pub const GROUP_NAME_LABEL: &str = "group-name";
pub const GROUP_NAME: &str = "kubeflow.org";
pub const JOB_NAME_LABEL: &str = "job-name";
pub const REPLICA_TYPE_LABEL: &str = "replica-type";
pub const REPLICA_INDEX_LABEL: &str = "replica-index";
/// Which mxjob installation manages the object.
pub const INSTALLATION_LABEL: &str = "mxjob.kubeflow.org/installation";
/// The uid of the MXJob the object belongs to.
pub const JOB_UID_ANNOTATION: &str = "mxjob.kubeflow.org/job-uid";
/// The container the operator configures, and whose exit code counts.
pub const CONTAINER: &str = "mxnet";
pub const PORT_NAME: &str = "mxjob-port";
pub const DEFAULT_PORT: i32 = 9091;

/// The Pod's and the Service's name: `{job}-{role}-{index}`.
pub fn replica_name(job_name: &str, replica_type: &ReplicaType, index: i32) -> String {
    format!("{job_name}-{}-{index}", role(replica_type))
}

fn job_name(job: &MXJob) -> &str {
    job.metadata.name.as_deref().unwrap_or_default()
}

fn job_uid(job: &MXJob) -> &str {
    job.metadata.uid.as_deref().unwrap_or_default()
}

/// The four labels the operator puts on a replica's objects (and selects
/// its Pod by).
pub fn selector(job: &MXJob, replica_type: &ReplicaType, index: i32) -> BTreeMap<String, String> {
    BTreeMap::from([
        (GROUP_NAME_LABEL.to_string(), GROUP_NAME.to_string()),
        (JOB_NAME_LABEL.to_string(), job_name(job).to_string()),
        (REPLICA_TYPE_LABEL.to_string(), role(replica_type)),
        (REPLICA_INDEX_LABEL.to_string(), index.to_string()),
    ])
}

/// The label selector of every object of `installation`.
pub fn installation_selector(installation: &str) -> String {
    format!("{INSTALLATION_LABEL}={installation}")
}

/// The label selector of one job's objects in its namespace (its earlier
/// namesakes' too: tell them apart by [`JOB_UID_ANNOTATION`]).
pub fn job_selector(installation: &str, job_name: &str) -> String {
    format!(
        "{},{GROUP_NAME_LABEL}={GROUP_NAME},{JOB_NAME_LABEL}={job_name}",
        installation_selector(installation)
    )
}

fn metadata(job: &MXJob, name: String, labels: BTreeMap<String, String>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: job.metadata.namespace.clone(),
        labels: Some(labels),
        annotations: Some(BTreeMap::from([(
            JOB_UID_ANNOTATION.to_string(),
            job_uid(job).to_string(),
        )])),
        ..Default::default()
    }
}

/// The role's port: its `mxnet` container's `mxjob-port`, 9091 without one.
pub fn port(job: &MXJob, replica_type: &ReplicaType) -> i32 {
    mxnet_container(job, replica_type)
        .and_then(|c| c.ports.as_ref())
        .and_then(|ports| ports.iter().find(|p| p.name.as_deref() == Some(PORT_NAME)))
        .map_or(DEFAULT_PORT, |p| p.container_port)
}

fn mxnet_container<'a>(job: &'a MXJob, replica_type: &ReplicaType) -> Option<&'a Container> {
    job.spec
        .mx_replica_specs
        .get(replica_type)?
        .template
        .spec
        .as_ref()?
        .containers
        .iter()
        .find(|c| c.name == CONTAINER)
}

/// Every replica at its Service's name, on its role's port.
struct ServiceAddresses<'a>(&'a MXJob);

impl Addresses for ServiceAddresses<'_> {
    fn address(&self, replica_type: &ReplicaType, index: i32) -> (String, i32) {
        (
            replica_name(job_name(self.0), replica_type, index),
            port(self.0, replica_type),
        )
    }
}

/// Why a replica's Pod cannot be made from its template.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    #[error("the MXJob has no {0} replicas")]
    NoReplicaSpec(ReplicaType),
    #[error("the pod template of {0} has no spec")]
    NoPodSpec(ReplicaType),
}

/// The Pod of replica `index` of `replica_type`.
pub fn pod(
    job: &MXJob,
    replica_type: &ReplicaType,
    index: i32,
    installation: &str,
) -> Result<Pod, BuildError> {
    let spec = job
        .spec
        .mx_replica_specs
        .get(replica_type)
        .ok_or_else(|| BuildError::NoReplicaSpec(replica_type.clone()))?;
    let template = spec.template.clone();
    let mut pod_spec = template
        .spec
        .ok_or_else(|| BuildError::NoPodSpec(replica_type.clone()))?;
    let template_meta = template.metadata.unwrap_or_default();

    let mut labels = template_meta.labels.unwrap_or_default();
    labels.extend(selector(job, replica_type, index));
    labels.insert(INSTALLATION_LABEL.to_string(), installation.to_string());
    let mut meta = metadata(
        job,
        replica_name(job_name(job), replica_type, index),
        labels,
    );
    let mut annotations = template_meta.annotations.unwrap_or_default();
    annotations.extend(meta.annotations.take().unwrap_or_default());
    meta.annotations = Some(annotations);

    let variables = operator_variables(job, &ServiceAddresses(job), replica_type, index, true);
    let own_port = port(job, replica_type);
    for container in &mut pod_spec.containers {
        let mut env: Vec<EnvVar> = container
            .env
            .take()
            .unwrap_or_default()
            .into_iter()
            .filter(|var| !variables.iter().any(|(name, _)| *name == var.name))
            .collect();
        env.extend(variables.iter().map(|(name, value)| EnvVar {
            name: name.clone(),
            value: Some(value.clone()),
            value_from: None,
        }));
        container.env = Some(env);
        if container.name == CONTAINER {
            let ports = container.ports.get_or_insert_with(Vec::new);
            if !ports.iter().any(|p| p.name.as_deref() == Some(PORT_NAME)) {
                ports.push(ContainerPort {
                    name: Some(PORT_NAME.to_string()),
                    container_port: own_port,
                    ..Default::default()
                });
            }
        }
    }
    pod_spec.restart_policy = Some(pod_restart_policy(spec.restart_policy.as_ref()).to_string());
    Ok(Pod {
        metadata: meta,
        spec: Some(pod_spec),
        status: None,
    })
}

/// The Pod's `restartPolicy` for a replica's (default `Never`, as the
/// operator defaults it): `ExitCode` is the controller's to implement, on
/// a Pod the kubelet does not restart.
pub fn pod_restart_policy(policy: Option<&RestartPolicy>) -> &str {
    match policy {
        None | Some(RestartPolicy::ExitCode) => "Never",
        Some(other) => other.as_str(),
    }
}

/// The headless Service that gives replica `index` its DNS name.
pub fn service(job: &MXJob, replica_type: &ReplicaType, index: i32, installation: &str) -> Service {
    let mut labels = selector(job, replica_type, index);
    labels.insert(INSTALLATION_LABEL.to_string(), installation.to_string());
    let port = port(job, replica_type);
    Service {
        metadata: metadata(
            job,
            replica_name(job_name(job), replica_type, index),
            labels,
        ),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".to_string()),
            selector: Some(selector(job, replica_type, index)),
            ports: Some(vec![ServicePort {
                name: Some(PORT_NAME.to_string()),
                port,
                target_port: Some(IntOrString::Int(port)),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        status: None,
    }
}

/// The MXJob uid an object carries.
pub fn owner_uid(meta: &ObjectMeta) -> Option<&str> {
    meta.annotations
        .as_ref()?
        .get(JOB_UID_ANNOTATION)
        .map(String::as_str)
}

/// The job (namespace, name) a Pod of this installation belongs to.
pub fn job_key(pod: &Pod) -> Option<(String, String)> {
    let namespace = pod.metadata.namespace.clone()?;
    let name = pod.metadata.labels.as_ref()?.get(JOB_NAME_LABEL)?.clone();
    Some((namespace, name))
}

/// Which replica of `job` a Pod is, when it is one.
pub fn replica_of(pod: &Pod, job: &MXJob) -> Option<(ReplicaType, i32)> {
    if owner_uid(&pod.metadata) != job.metadata.uid.as_deref() {
        return None;
    }
    let labels = pod.metadata.labels.as_ref()?;
    let type_label = labels.get(REPLICA_TYPE_LABEL)?;
    let index: i32 = labels.get(REPLICA_INDEX_LABEL)?.parse().ok()?;
    let replica_type = job
        .spec
        .mx_replica_specs
        .keys()
        .find(|rt| role(rt) == *type_label)?
        .clone();
    (pod.metadata.name.as_deref() == Some(&replica_name(job_name(job), &replica_type, index)))
        .then_some((replica_type, index))
}

/// A Pod's phase, as far as the controller cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Not running yet (Pending, or a phase this server does not know).
    Pending,
    Running,
    Succeeded,
    Failed,
}

/// What a Pod says about its replica.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodState {
    pub phase: Phase,
    /// The `mxnet` container's exit code, once it terminated.
    pub exit_code: Option<i32>,
    /// Restarts of all its containers, init containers included (what the
    /// operator counts against `backoffLimit`).
    pub restarts: i32,
    /// A container exited and waits for the kubelet to start it again.
    pub restarting: bool,
    /// The Pod is being deleted.
    pub deleting: bool,
}

/// Reads a Pod's status.
pub fn pod_state(pod: &Pod) -> PodState {
    let status = pod.status.as_ref();
    let phase = match status.and_then(|s| s.phase.as_deref()) {
        Some("Running") => Phase::Running,
        Some("Succeeded") => Phase::Succeeded,
        Some("Failed") => Phase::Failed,
        _ => Phase::Pending,
    };
    let containers = status.and_then(|s| s.container_statuses.as_ref());
    let init = status.and_then(|s| s.init_container_statuses.as_ref());
    let exit_code = containers
        .and_then(|list| list.iter().find(|c| c.name == CONTAINER))
        .and_then(|c| c.state.as_ref()?.terminated.as_ref())
        .map(|t| t.exit_code);
    let restarts = containers
        .into_iter()
        .chain(init)
        .flatten()
        .map(|c| c.restart_count)
        .sum();
    let restarting = phase == Phase::Running
        && containers.into_iter().flatten().any(|c| {
            c.restart_count > 0
                && c.state
                    .as_ref()
                    .is_some_and(|s| s.running.is_none() && s.waiting.is_some())
        });
    PodState {
        phase,
        exit_code,
        restarts,
        restarting,
        deleting: pod.metadata.deletion_timestamp.is_some(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn job() -> MXJob {
        let mut job: MXJob =
            serde_json::from_str(mxjob_api::openapi::REPLACE_EXAMPLE).expect("the seed decodes");
        job.metadata.uid = Some("u-1".to_string());
        job.metadata.namespace = Some("team".to_string());
        let worker = std::sync::Arc::make_mut(&mut job.spec.mx_replica_specs)
            .get_mut(&ReplicaType::Worker)
            .expect("the seed has workers");
        worker.replicas = Some(2);
        worker.restart_policy = Some(RestartPolicy::ExitCode);
        job
    }

    fn env(pod: &Value) -> BTreeMap<String, String> {
        pod["spec"]["containers"][0]["env"]
            .as_array()
            .expect("env")
            .iter()
            .map(|v| {
                (
                    v["name"].as_str().unwrap_or_default().to_string(),
                    v["value"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    }

    #[test]
    fn a_worker_pod_is_its_template_with_the_operators_names_labels_and_variables() {
        let job = job();
        let name = job.metadata.name.clone().expect("named");
        let pod = pod(&job, &ReplicaType::Worker, 1, "prod").expect("a pod");
        let value = serde_json::to_value(&pod).expect("serializes");
        assert_eq!(value["metadata"]["name"], format!("{name}-worker-1"));
        assert_eq!(value["metadata"]["namespace"], "team");
        let labels = &value["metadata"]["labels"];
        assert_eq!(labels["group-name"], "kubeflow.org");
        assert_eq!(labels["job-name"], name.as_str());
        assert_eq!(labels["replica-type"], "worker");
        assert_eq!(labels["replica-index"], "1");
        assert_eq!(labels[INSTALLATION_LABEL], "prod");
        assert_eq!(value["metadata"]["annotations"][JOB_UID_ANNOTATION], "u-1");
        assert_eq!(value["spec"]["restartPolicy"], "Never", "ExitCode");
        let env = env(&value);
        assert_eq!(env["DMLC_ROLE"], "worker");
        assert_eq!(env["DMLC_PS_ROOT_URI"], format!("{name}-scheduler-0"));
        assert_eq!(env["DMLC_PS_ROOT_PORT"], "9091");
        assert_eq!(env["DMLC_NUM_WORKER"], "2");
        assert_eq!(env["DMLC_USE_KUBERNETES"], "1");
        assert_eq!(env["DMLC_WORKER_ID"], "1");
        let config: Value = serde_json::from_str(&env["MX_CONFIG"]).expect("JSON");
        assert_eq!(config["task"], json!({"type": "worker", "index": 1}));
        assert_eq!(
            config["cluster"]["worker"][1],
            json!({"url": format!("{name}-worker-1"), "port": 9091})
        );
        let ports = &value["spec"]["containers"][0]["ports"];
        assert!(
            ports
                .as_array()
                .expect("ports")
                .iter()
                .any(|p| p["name"] == PORT_NAME && p["containerPort"] == DEFAULT_PORT),
            "{ports}"
        );
        assert_eq!(replica_of(&pod, &job), Some((ReplicaType::Worker, 1)));
    }

    #[test]
    fn the_service_is_headless_and_selects_its_replica_by_the_operators_labels() {
        let job = job();
        let service = serde_json::to_value(service(&job, &ReplicaType::Scheduler, 0, "prod"))
            .expect("serializes");
        assert_eq!(service["spec"]["clusterIP"], "None");
        assert_eq!(service["spec"]["ports"][0]["name"], PORT_NAME);
        assert_eq!(service["spec"]["ports"][0]["port"], 9091);
        let selector = service["spec"]["selector"].as_object().expect("selector");
        assert_eq!(selector.len(), 4, "the installation is not part of it");
        assert_eq!(selector["replica-type"], "scheduler");
    }

    #[test]
    fn a_pod_s_status_gives_phase_exit_code_and_restarts() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p"},
            "status": {
                "phase": "Running",
                "initContainerStatuses": [{"name": "init", "image": "i", "imageID": "", "ready": true, "restartCount": 1}],
                "containerStatuses": [{
                    "name": "mxnet", "image": "i", "imageID": "", "ready": false, "restartCount": 2,
                    "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                    "lastState": {"terminated": {"exitCode": 3}}
                }]
            }
        }))
        .expect("a pod");
        let state = pod_state(&pod);
        assert_eq!(state.phase, Phase::Running);
        assert_eq!(state.restarts, 3);
        assert!(state.restarting);
        assert_eq!(state.exit_code, None);
    }
}

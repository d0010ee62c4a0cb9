//! The variables the MXNet operator gives every replica, computed once for
//! both executors.
//!
//! Only the addresses differ: the local executor hands each replica a
//! loopback port of its own, the Kubernetes executor the replica's Service
//! name (a DNS name in the job's namespace) and its role's `mxjob-port`.
//! Everything else — `MX_CONFIG`'s shape, which `DMLC_*` variables a role
//! gets and with which values — is this one function, so the two executors
//! cannot drift apart.

use serde_json::json;

use mxjob_api::model::{JobMode, MXJob, ReplicaType};

/// The annotation of a role's pod template that the operator copies into
/// `MX_CONFIG`'s `labels` (the TVM tuner's server key).
pub const TUNER_SERVER_KEY_ANNOTATION: &str = "tuner-server-key";

/// The role's name in `DMLC_ROLE`, `MX_CONFIG` and the operator's labels:
/// the type in lower case.
pub fn role(replica_type: &ReplicaType) -> String {
    replica_type.as_str().to_ascii_lowercase()
}

/// The number of replicas of a role (1 when unset, 0 when absent).
pub fn replicas(job: &MXJob, replica_type: &ReplicaType) -> i32 {
    job.spec
        .mx_replica_specs
        .get(replica_type)
        .map_or(0, |spec| spec.replicas.unwrap_or(1))
}

/// Where replica `index` of a role listens: host and port.
pub trait Addresses {
    fn address(&self, replica_type: &ReplicaType, index: i32) -> (String, i32);
}

/// `MX_CONFIG` as the operator writes it: every replica's address by role,
/// each role's `tuner-server-key` template annotation (empty when absent)
/// and the replica's own role and index.
pub fn mx_config(
    job: &MXJob,
    addresses: &dyn Addresses,
    replica_type: &ReplicaType,
    index: i32,
) -> serde_json::Value {
    let mut cluster = serde_json::Map::new();
    let mut labels = serde_json::Map::new();
    for (rt, spec) in job.spec.mx_replica_specs.iter() {
        let list: Vec<_> = (0..replicas(job, rt))
            .map(|i| {
                let (url, port) = addresses.address(rt, i);
                json!({"url": url, "port": port})
            })
            .collect();
        cluster.insert(role(rt), list.into());
        let key = spec
            .template
            .metadata
            .as_ref()
            .and_then(|m| m.annotations.as_ref())
            .and_then(|a| a.get(TUNER_SERVER_KEY_ANNOTATION))
            .cloned()
            .unwrap_or_default();
        labels.insert(role(rt), key.into());
    }
    json!({
        "cluster": cluster,
        "labels": labels,
        "task": {"type": role(replica_type), "index": index},
    })
}

/// The operator's variables for replica `index` of `replica_type`, in the
/// order they are set: `MX_CONFIG`; for MXTrain `DMLC_PS_ROOT_URI` and
/// `DMLC_PS_ROOT_PORT` (the scheduler's address), `DMLC_NUM_SERVER` and
/// `DMLC_NUM_WORKER`; `DMLC_ROLE`; `DMLC_USE_KUBERNETES` (`1` when the
/// replica runs in a cluster); and `DMLC_WORKER_ID` for workers.
pub fn operator_variables(
    job: &MXJob,
    addresses: &dyn Addresses,
    replica_type: &ReplicaType,
    index: i32,
    in_kubernetes: bool,
) -> Vec<(String, String)> {
    let mut vars = Vec::new();
    let mut set = |name: &str, value: String| vars.push((name.to_string(), value));
    let config = mx_config(job, addresses, replica_type, index);
    set("MX_CONFIG", config.to_string());
    if job.spec.job_mode == JobMode::MXTrain {
        let (host, port) = addresses.address(&ReplicaType::Scheduler, 0);
        set("DMLC_PS_ROOT_URI", host);
        set("DMLC_PS_ROOT_PORT", port.to_string());
        set(
            "DMLC_NUM_SERVER",
            replicas(job, &ReplicaType::Server).to_string(),
        );
        set(
            "DMLC_NUM_WORKER",
            replicas(job, &ReplicaType::Worker).to_string(),
        );
    }
    set("DMLC_ROLE", role(replica_type));
    set(
        "DMLC_USE_KUBERNETES",
        if in_kubernetes { "1" } else { "0" }.to_string(),
    );
    if *replica_type == ReplicaType::Worker {
        set("DMLC_WORKER_ID", index.to_string());
    }
    vars
}

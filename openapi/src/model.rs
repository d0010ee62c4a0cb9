//! The MXJob resource as it travels on the wire (`kubeflow.org/v1`).
//!
//! These types are the contract: their JSON schemas become
//! `openapi/mxjob.json`, from which every client is generated. The layout
//! follows mxnet-operator v1 as CCI documents it — the run-policy fields
//! (`activeDeadlineSeconds`, `backoffLimit`, `cleanPodPolicy`,
//! `ttlSecondsAfterFinished`) sit directly under `spec`, and replica
//! statuses are keyed `mxReplicaStatuses`, as in the seed's examples.
//!
//! Enumerated strings are decoded leniently: a value outside the enum is
//! kept as [`Unsupported`](JobMode::Unsupported) so that admission can
//! answer `422 Invalid` with a `FieldValueNotSupported` cause naming the
//! field, the way the Kubernetes API server answers for a CRD enum, instead
//! of a bare decoding error. Their schemas list only the supported values.
//!
//! An object's members are declared in the order of their JSON names, and
//! enum-keyed maps order their keys by spelling, so an MXJob encodes with
//! its keys sorted at every level (k8s-openapi's types write theirs sorted
//! too). That is how kube-apiserver answers for a custom resource (it
//! encodes an unstructured map), and what a client gets when it decodes an
//! answer into a generic map and encodes it again: such a client sending
//! back an object it read sends the stored bytes, which a replace need not
//! decode again.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ListMeta, ObjectMeta, Time};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// API group of the resource.
pub const GROUP: &str = "kubeflow.org";
/// API version of the resource.
pub const VERSION: &str = "v1";
/// `apiVersion` as it appears on the wire.
pub const API_VERSION: &str = "kubeflow.org/v1";
/// Kind of a single object.
pub const KIND: &str = "MXJob";
/// Kind of a list of objects.
pub const LIST_KIND: &str = "MXJobList";
/// Plural resource name, as used in URLs and messages.
pub const RESOURCE: &str = "mxjobs";

/// Declares a string enum that keeps unsupported values (see module docs).
macro_rules! string_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident { $( $(#[$vmeta:meta])* $variant:ident ),+ $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
            /// A value outside the enum; admission rejects it.
            Unsupported(String),
        }

        /// By wire spelling, so that maps keyed by the enum encode their
        /// keys sorted (see the module documentation).
        impl Ord for $name {
            fn cmp(&self, other: &Self) -> std::cmp::Ordering {
                let unsupported = |v: &Self| matches!(v, Self::Unsupported(_));
                self.as_str()
                    .cmp(other.as_str())
                    .then_with(|| unsupported(self).cmp(&unsupported(other)))
            }
        }

        impl PartialOrd for $name {
            fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
                Some(self.cmp(other))
            }
        }

        impl $name {
            /// Every supported value, in documentation order.
            pub const SUPPORTED: &'static [&'static str] = &[$(stringify!($variant)),+];

            /// The wire spelling.
            pub fn as_str(&self) -> &str {
                match self {
                    $( Self::$variant => stringify!($variant), )+
                    Self::Unsupported(other) => other,
                }
            }
        }

        impl std::str::FromStr for $name {
            type Err = std::convert::Infallible;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Ok(match s {
                    $( stringify!($variant) => Self::$variant, )+
                    other => Self::Unsupported(other.to_string()),
                })
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Ok(s.parse().unwrap_or_else(|never| match never {}))
            }
        }

        impl JsonSchema for $name {
            fn schema_name() -> String {
                stringify!($name).to_string()
            }
            fn json_schema(_: &mut schemars::gen::SchemaGenerator) -> schemars::schema::Schema {
                schemars::schema::SchemaObject {
                    instance_type: Some(schemars::schema::InstanceType::String.into()),
                    enum_values: Some(
                        Self::SUPPORTED.iter().map(|v| serde_json::Value::from(*v)).collect(),
                    ),
                    metadata: Some(Box::new(schemars::schema::Metadata {
                        description: Some(<$name as $crate::model::EnumDoc>::DOC.to_string()),
                        ..Default::default()
                    })),
                    ..Default::default()
                }
                .into()
            }
        }
    };
}

pub(crate) use string_enum;

/// The description an enum's schema carries.
pub(crate) trait EnumDoc {
    const DOC: &'static str;
}

string_enum! {
    /// How the job trains.
    pub enum JobMode { MXTrain, MXTune }
}
impl EnumDoc for JobMode {
    const DOC: &'static str = "What the job does. `MXTrain` is distributed training and needs the \
        replica types Scheduler, Server and Worker; `MXTune` is auto-tuning and needs \
        TunerTracker, TunerServer and Tuner.";
}

string_enum! {
    /// Which pods are removed when the job finishes.
    pub enum CleanPodPolicy { All, Running, None }
}
impl EnumDoc for CleanPodPolicy {
    const DOC: &'static str = "Which of the job's pods are deleted once the job has finished: \
        `All` of them, only those still `Running` (the default), or `None`.";
}

string_enum! {
    /// When a replica's pods are restarted.
    pub enum RestartPolicy { Always, OnFailure, Never, ExitCode }
}
impl EnumDoc for RestartPolicy {
    const DOC: &'static str = "When a replica's pod is restarted; it overrides the restart \
        policy of the pod template. `ExitCode` treats exit codes 1-127 as permanent failures \
        and 128-255 as retryable. Defaults to `Never`.";
}

string_enum! {
    /// The role a group of replicas plays.
    pub enum ReplicaType { Scheduler, Server, Worker, TunerTracker, TunerServer, Tuner }
}
impl EnumDoc for ReplicaType {
    const DOC: &'static str = "The role of a group of replicas. MXTrain jobs use Scheduler, \
        Server and Worker; MXTune jobs use TunerTracker, TunerServer and Tuner.";
}

string_enum! {
    /// The kind of a job condition.
    pub enum JobConditionType { Created, Running, Restarting, Succeeded, Failed }
}
impl EnumDoc for JobConditionType {
    const DOC: &'static str = "The kind of condition: the job was `Created`, is `Running` or \
        `Restarting`, or has `Succeeded` or `Failed`.";
}

string_enum! {
    /// Whether a condition holds.
    pub enum ConditionStatus { True, False, Unknown }
}
impl EnumDoc for ConditionStatus {
    const DOC: &'static str = "Whether the condition holds: `True`, `False` or `Unknown`.";
}

impl ReplicaType {
    /// The replica types a job mode requires, in the order they are reported.
    pub fn required_for(mode: &JobMode) -> &'static [ReplicaType] {
        match mode {
            JobMode::MXTrain => &[
                ReplicaType::Scheduler,
                ReplicaType::Server,
                ReplicaType::Worker,
            ],
            JobMode::MXTune => &[
                ReplicaType::TunerTracker,
                ReplicaType::TunerServer,
                ReplicaType::Tuner,
            ],
            JobMode::Unsupported(_) => &[],
        }
    }

    /// Roles that run as exactly one replica.
    pub fn is_singleton(&self) -> bool {
        matches!(
            self,
            ReplicaType::Scheduler | ReplicaType::TunerTracker | ReplicaType::Tuner
        )
    }
}

/// An MXNet training or tuning job (table 162).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "MXJob")]
pub struct MXJob {
    /// Versioned schema of this representation: always `kubeflow.org/v1`.
    pub api_version: String,
    /// The kind of object: always `MXJob`.
    pub kind: String,
    /// Standard object metadata. Clients set `name` (or `generateName`),
    /// `labels` and `annotations`; the server sets `uid`, `resourceVersion`,
    /// `generation`, `creationTimestamp` and `selfLink`.
    pub metadata: ObjectMeta,
    /// The desired state of the job.
    pub spec: MXJobSpec,
    /// The observed state of the job, written by the job controller. It is
    /// ignored when sent through create, replace or patch.
    #[serde(default)]
    pub status: JobStatus,
}

/// The desired state of an MXJob (table 163).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MXJobSpec {
    /// Seconds, counted from `status.startTime`, that the job may stay active
    /// before the system terminates it. Must be positive. Replaceable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub active_deadline_seconds: Option<i64>,
    /// Number of retries before the job is marked failed. Must not be negative.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub backoff_limit: Option<i32>,
    /// Which pods are deleted once the job has finished. Defaults to
    /// `Running`. Replaceable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clean_pod_policy: Option<CleanPodPolicy>,
    /// Training (`MXTrain`) or tuning (`MXTune`).
    pub job_mode: JobMode,
    /// The replicas of the job by role. `MXTrain` needs Scheduler, Server and
    /// Worker; `MXTune` needs TunerTracker, TunerServer and Tuner.
    // Shared: a write that keeps them (a replace sending them back as
    // stored) shares the stored revision's instead of copying them.
    #[schemars(with = "ReplicaSpecs")]
    pub mx_replica_specs: Arc<BTreeMap<ReplicaType, ReplicaSpec>>,
    /// Seconds after the job finished (succeeded or failed) when it is
    /// deleted; unset means never. Must not be negative. Replaceable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub ttl_seconds_after_finished: Option<i32>,
}

impl MXJobSpec {
    /// `==`, without comparing replica specs both share (`Arc::ptr_eq`).
    pub fn same(&self, other: &MXJobSpec) -> bool {
        let MXJobSpec {
            active_deadline_seconds,
            backoff_limit,
            clean_pod_policy,
            job_mode,
            mx_replica_specs,
            ttl_seconds_after_finished,
        } = self;
        *active_deadline_seconds == other.active_deadline_seconds
            && *backoff_limit == other.backoff_limit
            && *clean_pod_policy == other.clean_pod_policy
            && *job_mode == other.job_mode
            && *ttl_seconds_after_finished == other.ttl_seconds_after_finished
            && (Arc::ptr_eq(mx_replica_specs, &other.mx_replica_specs)
                || *mx_replica_specs == other.mx_replica_specs)
    }
}

/// The schema of `spec.mxReplicaSpecs`: one optional entry per role.
#[allow(dead_code)]
#[derive(JsonSchema)]
#[schemars(rename = "MXReplicaSpecs")]
#[schemars(deny_unknown_fields)]
struct ReplicaSpecs {
    /// The scheduler of an MXTrain job (exactly one replica).
    #[serde(rename = "Scheduler")]
    scheduler: Option<ReplicaSpec>,
    /// The parameter servers of an MXTrain job.
    #[serde(rename = "Server")]
    server: Option<ReplicaSpec>,
    /// The workers of an MXTrain job.
    #[serde(rename = "Worker")]
    worker: Option<ReplicaSpec>,
    /// The tuner tracker of an MXTune job (exactly one replica).
    #[serde(rename = "TunerTracker")]
    tuner_tracker: Option<ReplicaSpec>,
    /// The tuner servers of an MXTune job.
    #[serde(rename = "TunerServer")]
    tuner_server: Option<ReplicaSpec>,
    /// The tuner of an MXTune job (exactly one replica).
    #[serde(rename = "Tuner")]
    tuner: Option<ReplicaSpec>,
}

/// How one role of the job runs (table 158).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaSpec {
    /// Number of replicas of this role; defaults to 1. Scheduler,
    /// TunerTracker and Tuner take exactly 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub replicas: Option<i32>,
    /// When a replica's pod is restarted; overrides the template's policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<RestartPolicy>,
    /// The pod each replica runs. Each replica needs at least one container
    /// with an image, and one container named `mxnet`.
    pub template: PodTemplateSpec,
}

/// The observed state of a job (table 159).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobStatus {
    /// When the job finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
    /// What the job went through, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<JobCondition>,
    /// When the job controller last reconciled the job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_reconcile_time: Option<Time>,
    /// Replica counts by role.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(with = "BTreeMap<String, ReplicaStatus>")]
    pub mx_replica_statuses: BTreeMap<ReplicaType, ReplicaStatus>,
    /// When the job controller acknowledged the job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
}

/// One observation about a job (table 160).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobCondition {
    /// When the condition last changed status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
    /// When the condition was last updated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_update_time: Option<Time>,
    /// A human-readable account of the last transition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// A one-word, CamelCase reason for the last transition, such as
    /// `MXJobRunning`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Whether the condition holds.
    pub status: ConditionStatus,
    /// The kind of condition.
    #[serde(rename = "type")]
    pub type_: JobConditionType,
}

/// Replica counts of one role (table 161). Zero counts are omitted.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaStatus {
    /// Replicas running now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<i32>,
    /// Replicas that failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<i32>,
    /// Replicas that completed successfully.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub succeeded: Option<i32>,
}

/// A list of MXJobs (table 169).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "MXJobList")]
pub struct MXJobList {
    /// Always `kubeflow.org/v1`.
    pub api_version: String,
    /// Always `MXJobList`.
    pub kind: String,
    /// `resourceVersion` is the store revision the list was read at;
    /// `continue` is set when more items remain.
    pub metadata: ListMeta,
    /// The jobs.
    pub items: Vec<MXJob>,
}

impl MXJobList {
    /// A list of `items` read at `resource_version`.
    pub fn new(items: Vec<MXJob>, resource_version: String) -> Self {
        MXJobList {
            api_version: API_VERSION.to_string(),
            kind: LIST_KIND.to_string(),
            metadata: ListMeta {
                resource_version: Some(resource_version),
                ..Default::default()
            },
            items,
        }
    }
}

string_enum! {
    /// The kind of a watch event.
    pub enum WatchEventType { ADDED, MODIFIED, DELETED, BOOKMARK, ERROR }
}
impl EnumDoc for WatchEventType {
    const DOC: &'static str = "What happened: an object was `ADDED`, `MODIFIED` or `DELETED`; \
        `BOOKMARK` carries only a resourceVersion the watch has reached; `ERROR` carries a \
        `Status`, after which the stream ends.";
}

/// One event of a watch (table 78), sent as one JSON document per line.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "WatchEvent")]
pub struct WatchEvent {
    /// What happened.
    #[serde(rename = "type")]
    pub type_: WatchEventType,
    /// The object: an `MXJob` for ADDED, MODIFIED and DELETED (for DELETED,
    /// its last state, with the resourceVersion of the delete); for
    /// BOOKMARK an object whose only meaningful field is
    /// `metadata.resourceVersion`; for ERROR a `Status`.
    pub object: serde_json::Map<String, serde_json::Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether every object in `text` has its keys in sorted order.
    fn keys_sorted(value: &serde_json::Value, text: &str) -> Result<(), String> {
        // serde_json's `Value` sorts keys: equal text means sorted text.
        let sorted = serde_json::to_string(value).map_err(|e| e.to_string())?;
        if sorted == text {
            Ok(())
        } else {
            Err(format!("{text}\nsorted:\n{sorted}"))
        }
    }

    #[test]
    fn a_job_encodes_with_its_keys_sorted_at_every_level() {
        let value = serde_json::json!({
            "apiVersion": API_VERSION,
            "kind": KIND,
            "metadata": {"name": "j", "namespace": "n", "labels": {"b": "1", "a": "2"}},
            "spec": {
                "activeDeadlineSeconds": 5, "backoffLimit": 1, "cleanPodPolicy": "All",
                "ttlSecondsAfterFinished": 3, "jobMode": "MXTune",
                "mxReplicaSpecs": {
                    "TunerTracker": {"replicas": 1, "restartPolicy": "Never", "template": {
                        "metadata": {"labels": {"x": "y"}},
                        "spec": {"restartPolicy": "Never", "containers": [{
                            "name": "mxnet", "image": "i", "env": [{"value": "v", "name": "n"}],
                            "ports": [{"protocol": "TCP", "containerPort": 9091}],
                            "resources": {"requests": {"memory": "1Gi", "cpu": "1"}}}]}}},
                    "TunerServer": {"template": {"spec": {"containers": [{"name": "mxnet", "image": "i"}]}}},
                    "Tuner": {"replicas": 1, "template": {"spec": {"containers": [{"name": "mxnet", "image": "i"}]}}},
                    "Extra": {"template": {"spec": {"containers": []}}}
                }
            },
            "status": {
                "startTime": "2026-12-05T10:00:00Z", "completionTime": "2026-12-05T11:00:00Z",
                "lastReconcileTime": "2026-12-05T11:00:00Z",
                "conditions": [{"type": "Created", "status": "True", "reason": "R", "message": "m",
                    "lastUpdateTime": "2026-12-05T10:00:00Z", "lastTransitionTime": "2026-12-05T10:00:00Z"}],
                "mxReplicaStatuses": {"Tuner": {"succeeded": 1, "failed": 2, "active": 3},
                    "TunerTracker": {"active": 1}, "Other": {}}
            }
        });
        let job: MXJob = serde_json::from_value(value).expect("an MXJob");
        let text = serde_json::to_string(&job).expect("encodes");
        let back: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        keys_sorted(&back, &text).expect("sorted keys");
    }

    #[test]
    fn string_enums_order_by_spelling_and_stay_apart_from_unsupported_twins() {
        let mut types = [
            ReplicaType::TunerTracker,
            ReplicaType::Worker,
            ReplicaType::Unsupported("Ab".into()),
            ReplicaType::Tuner,
            ReplicaType::Unsupported("Tuner".into()),
            ReplicaType::TunerServer,
        ];
        types.sort();
        let spelled: Vec<_> = types.iter().map(ReplicaType::as_str).collect();
        assert_eq!(
            spelled,
            [
                "Ab",
                "Tuner",
                "Tuner",
                "TunerServer",
                "TunerTracker",
                "Worker"
            ]
        );
        assert_eq!(types[1], ReplicaType::Tuner, "the supported one first");
        assert_ne!(types[1], types[2]);
    }
}

//! Job conditions and the messages the MXNet operator writes with them.
//!
//! The rules follow mxnet-operator's `setCondition`: a condition whose
//! status and reason are unchanged is left alone (its times do not move);
//! `Running` and `Restarting` replace each other; once the job has
//! `Succeeded` or `Failed`, `Running` turns `False`.
//!
//! **Trouble with the cluster** has no condition type of its own in this
//! API, so it is told on `Running`, as Kubernetes tells a node it has lost
//! touch with (`Ready: Unknown`): `Running` is `False` with reason
//! [`FAILED_CREATE`] (the reason a ReplicaSet gives) while the cluster
//! refuses the job's Pods, and `Unknown` with reason
//! [`CLUSTER_UNREACHABLE`] while it cannot be reached — the other
//! conditions and the replica counts stay as last seen. Either goes away
//! when the trouble does.

use chrono::{DateTime, SubsecRound, Utc};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use mxjob_api::model::{ConditionStatus, JobCondition, JobConditionType, JobStatus};

pub const CREATED: &str = "MXJobCreated";
pub const RUNNING: &str = "MXJobRunning";
pub const RESTARTING: &str = "MXJobRestarting";
pub const SUCCEEDED: &str = "MXJobSucceeded";
pub const FAILED: &str = "MXJobFailed";
/// The cluster refuses to create a replica's Pod or Service.
pub const FAILED_CREATE: &str = "FailedCreate";
/// The cluster cannot be reached.
pub const CLUSTER_UNREACHABLE: &str = "ClusterUnreachable";

pub fn created_message(name: &str) -> String {
    format!("MXJob {name} is created.")
}

pub fn running_message(name: &str) -> String {
    format!("MXJob {name} is running.")
}

pub fn restarting_message(name: &str) -> String {
    format!("MXJob {name} is restarting.")
}

pub fn succeeded_message(name: &str) -> String {
    format!("MXJob {name} is successfully completed.")
}

pub fn failed_message(name: &str) -> String {
    format!("MXJob {name} is failed.")
}

pub fn backoff_message(name: &str) -> String {
    format!("MXJob {name} has failed because it has reached the specified backoff limit")
}

pub fn deadline_message(name: &str) -> String {
    format!("MXJob {name} has failed because it was active longer than specified deadline")
}

/// The cluster refuses a replica's objects (and is asked again later).
pub fn refused_message(name: &str, replica: &str, error: &dyn std::fmt::Display) -> String {
    format!("MXJob {name} cannot create {replica}: {error}")
}

/// The cluster refused a replica's objects for good.
pub fn invalid_message(name: &str, replica: &str, error: &dyn std::fmt::Display) -> String {
    format!("MXJob {name} has failed because the cluster refused {replica}: {error}")
}

/// The cluster cannot be reached; the status is as last seen.
pub fn unreachable_message(name: &str, detail: &str) -> String {
    format!("MXJob {name} is as last seen: {detail}")
}

/// Now, at the precision the wire keeps (seconds), so that a status
/// computed here compares equal to the same status read back.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(0)
}

/// Whether the job has finished: `Succeeded` or `Failed` holds.
pub fn finished(status: &JobStatus) -> Option<JobConditionType> {
    status
        .conditions
        .iter()
        .find(|c| {
            c.status == ConditionStatus::True
                && matches!(
                    c.type_,
                    JobConditionType::Succeeded | JobConditionType::Failed
                )
        })
        .map(|c| c.type_.clone())
}

/// When the job finished: its `completionTime`, else when its final
/// condition turned true (a status written from outside may lack the time).
pub fn finished_at(status: &JobStatus) -> Option<DateTime<Utc>> {
    status.completion_time.as_ref().map(|t| t.0).or_else(|| {
        status
            .conditions
            .iter()
            .filter(|c| {
                c.status == ConditionStatus::True
                    && matches!(
                        c.type_,
                        JobConditionType::Succeeded | JobConditionType::Failed
                    )
            })
            .find_map(|c| c.last_transition_time.as_ref().map(|t| t.0))
    })
}

/// Sets a condition to `True` with `reason` and `message`, as described in
/// the module documentation.
pub fn set(
    status: &mut JobStatus,
    type_: JobConditionType,
    reason: &str,
    message: String,
    now: DateTime<Utc>,
) {
    set_status(status, type_, ConditionStatus::True, reason, message, now)
}

/// [`set`] with any condition status.
pub fn set_status(
    status: &mut JobStatus,
    type_: JobConditionType,
    value: ConditionStatus,
    reason: &str,
    message: String,
    now: DateTime<Utc>,
) {
    let current = status.conditions.iter().find(|c| c.type_ == type_);
    if let Some(current) = current {
        if current.status == value && current.reason.as_deref() == Some(reason) {
            return;
        }
    }
    let transition = match current {
        Some(c) if c.status == value => c.last_transition_time.clone(),
        _ => Some(Time(now)),
    };
    let finishing = value == ConditionStatus::True
        && matches!(
            type_,
            JobConditionType::Succeeded | JobConditionType::Failed
        );
    let mut kept = Vec::with_capacity(status.conditions.len() + 1);
    for mut condition in std::mem::take(&mut status.conditions) {
        let replaced = condition.type_ == type_
            || matches!(
                (&type_, &condition.type_),
                (JobConditionType::Running, JobConditionType::Restarting)
                    | (JobConditionType::Restarting, JobConditionType::Running)
            );
        if replaced {
            continue;
        }
        if finishing
            && condition.type_ == JobConditionType::Running
            && condition.status == ConditionStatus::True
        {
            condition.status = ConditionStatus::False;
            condition.last_update_time = Some(Time(now));
            condition.last_transition_time = Some(Time(now));
        }
        kept.push(condition);
    }
    kept.push(JobCondition {
        type_,
        status: value,
        reason: Some(reason.to_string()),
        message: Some(message),
        last_update_time: Some(Time(now)),
        last_transition_time: transition,
    });
    status.conditions = kept;
}

/// Removes the trouble told on `Running` (see the module documentation).
pub fn clear_trouble(status: &mut JobStatus) {
    status.conditions.retain(|c| {
        !(c.type_ == JobConditionType::Running
            && c.status != ConditionStatus::True
            && matches!(
                c.reason.as_deref(),
                Some(FAILED_CREATE | CLUSTER_UNREACHABLE)
            ))
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(second: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, second)
            .single()
            .expect("a valid time")
    }

    fn types(status: &JobStatus) -> Vec<(String, String)> {
        status
            .conditions
            .iter()
            .map(|c| (c.type_.to_string(), c.status.to_string()))
            .collect()
    }

    #[test]
    fn an_unchanged_condition_keeps_its_times() {
        let mut status = JobStatus::default();
        set(
            &mut status,
            JobConditionType::Created,
            CREATED,
            created_message("j"),
            at(1),
        );
        set(
            &mut status,
            JobConditionType::Created,
            CREATED,
            created_message("j"),
            at(2),
        );
        assert_eq!(status.conditions.len(), 1);
        assert_eq!(status.conditions[0].last_update_time, Some(Time(at(1))));
    }

    #[test]
    fn running_and_restarting_replace_each_other() {
        let mut status = JobStatus::default();
        set(
            &mut status,
            JobConditionType::Created,
            CREATED,
            created_message("j"),
            at(1),
        );
        set(
            &mut status,
            JobConditionType::Running,
            RUNNING,
            running_message("j"),
            at(2),
        );
        set(
            &mut status,
            JobConditionType::Restarting,
            RESTARTING,
            restarting_message("j"),
            at(3),
        );
        assert_eq!(
            types(&status),
            [
                ("Created".into(), "True".into()),
                ("Restarting".into(), "True".into())
            ]
        );
        set(
            &mut status,
            JobConditionType::Running,
            RUNNING,
            running_message("j"),
            at(4),
        );
        assert_eq!(
            types(&status),
            [
                ("Created".into(), "True".into()),
                ("Running".into(), "True".into())
            ]
        );
    }

    #[test]
    fn finishing_turns_running_false() {
        let mut status = JobStatus::default();
        set(
            &mut status,
            JobConditionType::Running,
            RUNNING,
            running_message("j"),
            at(2),
        );
        set(
            &mut status,
            JobConditionType::Failed,
            FAILED,
            deadline_message("j"),
            at(5),
        );
        assert_eq!(
            types(&status),
            [
                ("Running".into(), "False".into()),
                ("Failed".into(), "True".into())
            ]
        );
        assert_eq!(finished(&status), Some(JobConditionType::Failed));
        assert_eq!(finished_at(&status), Some(at(5)));
    }
}

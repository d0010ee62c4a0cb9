//! Apply conflicts: fields an apply would change that others own.
//!
//! kube-apiserver answers such an apply with `409 Conflict`, reason
//! `Conflict`, one cause per field (`reason: FieldManagerConflict`,
//! `message: conflict with "<manager>"…`, `field: <path>`) and a message
//! listing them grouped by owner, which [`Conflicts::message`] reproduces:
//!
//! ```text
//! Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using kubeflow.org/v1: .spec.ttlSecondsAfterFinished
//! ```
//!
//! ```text
//! Apply failed with 2 conflicts: conflicts with "a":
//! - .spec.backoffLimit
//! conflicts with "b" using kubeflow.org/v1:
//! - .spec.ttlSecondsAfterFinished
//! ```

use super::managers::{ManagerKey, Operation};
use super::path::Path;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::StatusCause;
use std::fmt;

/// One field an apply would change, and one of its owners.
#[derive(Clone, Debug, PartialEq)]
pub struct Conflict {
    /// The owner's manager name.
    pub manager: String,
    /// How the owner came by the field.
    pub operation: Operation,
    /// The owner's subresource (`""` for the main resource).
    pub subresource: String,
    /// The field.
    pub path: Path,
    owner: ManagerKey,
}

impl Conflict {
    pub(crate) fn new(owner: &ManagerKey, path: Path) -> Conflict {
        Conflict {
            manager: owner.manager.clone(),
            operation: owner.operation,
            subresource: owner.subresource.clone(),
            path,
            owner: owner.clone(),
        }
    }

    /// The owner as the message names it (`"kubectl"`, or
    /// `"kubectl-edit" using kubeflow.org/v1` for an updater).
    pub fn owner(&self) -> String {
        self.owner.describe()
    }
}

/// Every conflict of an apply, ordered by owner then field.
#[derive(Clone, Debug, PartialEq)]
pub struct Conflicts(Vec<Conflict>);

impl Conflicts {
    pub(crate) fn new(mut conflicts: Vec<Conflict>) -> Conflicts {
        conflicts.sort_by(|a, b| {
            a.owner
                .identifier()
                .cmp(&b.owner.identifier())
                .then_with(|| a.path.cmp(&b.path))
        });
        Conflicts(conflicts)
    }

    /// The conflicts.
    pub fn iter(&self) -> impl Iterator<Item = &Conflict> {
        self.0.iter()
    }

    /// How many there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The `message` of the 409 `Status`.
    pub fn message(&self) -> String {
        if let [only] = self.0.as_slice() {
            return format!(
                "Apply failed with 1 conflict: conflict with {}: {}",
                only.owner(),
                only.path
            );
        }
        let mut lines = Vec::new();
        let mut current: Option<&ManagerKey> = None;
        for c in &self.0 {
            if current != Some(&c.owner) {
                lines.push(format!("conflicts with {}:", c.owner()));
                current = Some(&c.owner);
            }
            lines.push(format!("- {}", c.path));
        }
        format!(
            "Apply failed with {} conflicts: {}",
            self.0.len(),
            lines.join("\n")
        )
    }

    /// The `details.causes` of the 409 `Status`.
    pub fn causes(&self) -> Vec<StatusCause> {
        self.0
            .iter()
            .map(|c| StatusCause {
                field: Some(c.path.to_string()),
                message: Some(format!("conflict with {}", c.owner())),
                reason: Some("FieldManagerConflict".to_string()),
            })
            .collect()
    }
}

impl fmt::Display for Conflicts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for Conflicts {}

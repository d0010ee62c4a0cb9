//! Namespaces, as kubectl and test suites expect them: `kubectl create
//! namespace`, `get namespaces`, `delete namespace`.
//!
//! MXJobs may be created in any namespace whose name is a DNS-1123 label,
//! as before; a namespace *exists* once it was created here, or once it
//! holds an MXJob. Created namespaces are stored as `v1 Namespace` objects
//! under `/registry/namespaces/{name}`, the key the Kubernetes API server
//! uses. Deleting a namespace deletes every MXJob in it and then the
//! namespace, as Kubernetes' namespace controller does (without the
//! `Terminating` phase lasting: the jobs go at once), and answers the
//! namespace as `Terminating`, as kube-apiserver answers the delete.

use chrono::{SubsecRound, Utc};
use k8s_openapi::api::core::v1::{Namespace, NamespaceSpec, NamespaceStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ListMeta, ObjectMeta, Time};
use mxjob_api::error::FieldError;
use mxjob_api::params::{DeleteOptions, WriteOptions};
use serde_json::Value;

use super::{Error, ListParams, Registry, ALL_NAMESPACES_PREFIX};
use crate::store::{KeyValue, ListOptions};

/// The storage prefix of namespaces.
pub const NAMESPACES_PREFIX: &str = "/registry/namespaces/";

/// A list of namespaces (`v1 NamespaceList`).
#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceList {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub metadata: ListMeta,
    pub items: Vec<Namespace>,
}

fn key(name: &str) -> String {
    format!("{NAMESPACES_PREFIX}{name}")
}

fn not_found(name: &str) -> Error {
    Error::NamespaceNotFound {
        name: name.to_string(),
    }
}

/// A namespace that exists because it holds MXJobs, `job` one of them
/// (the first by name). It is as old as that job: kubectl shows an age,
/// and a namespace is never younger than what it holds.
fn implicit(name: &str, job: &KeyValue) -> Namespace {
    let created = serde_json::from_slice::<Value>(&job.value)
        .ok()
        .and_then(|job| {
            serde_json::from_value::<Time>(job["metadata"]["creationTimestamp"].clone()).ok()
        });
    active(Namespace {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            creation_timestamp: created,
            ..Default::default()
        },
        ..Default::default()
    })
}

/// `namespace` with the spec and status of a live namespace.
fn active(mut namespace: Namespace) -> Namespace {
    namespace.spec = Some(NamespaceSpec {
        finalizers: Some(vec!["kubernetes".to_string()]),
    });
    namespace.status = Some(NamespaceStatus {
        phase: Some("Active".to_string()),
        ..Default::default()
    });
    namespace
}

impl Registry {
    fn decode_namespace(kv: &KeyValue) -> Result<Namespace, Error> {
        let mut namespace: Namespace = serde_json::from_slice(&kv.value)
            .map_err(|e| Error::Internal(format!("decoding stored namespace {}: {e}", kv.key)))?;
        namespace.metadata.resource_version = Some(kv.mod_revision.to_string());
        Ok(namespace)
    }

    /// The first MXJob (by name) in `name`, if it holds any.
    async fn first_job(&self, name: &str) -> Result<Option<KeyValue>, Error> {
        let page = self
            .store
            .list(
                &super::namespace_prefix(name),
                ListOptions {
                    limit: Some(1),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| Error::from_store(e, name))?;
        Ok(page.items.into_iter().next())
    }

    /// Creates a namespace from a `v1 Namespace` body.
    pub async fn create_namespace(
        &self,
        body: Value,
        options: &WriteOptions,
    ) -> Result<Namespace, Error> {
        let namespace: Namespace = serde_json::from_value(body)
            .map_err(|e| Error::BadRequest(format!("the body is not a valid Namespace: {e}")))?;
        let name = namespace.metadata.name.clone().unwrap_or_default();
        let problems = crate::names::dns1123_label(&name);
        if !problems.is_empty() {
            let causes = problems
                .into_iter()
                .map(|p| FieldError::invalid("metadata.name", name.as_str(), p))
                .collect();
            return Err(Error::InvalidNamespace { name, causes });
        }
        if self.first_job(&name).await?.is_some() {
            return Err(Error::NamespaceExists { name });
        }
        let stored = active(Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: namespace.metadata.labels,
                annotations: namespace.metadata.annotations,
                uid: Some(uuid::Uuid::new_v4().to_string()),
                creation_timestamp: Some(Time(Utc::now().trunc_subsecs(0))),
                ..Default::default()
            },
            ..Default::default()
        });
        if options.dry_run {
            return Ok(stored);
        }
        let bytes = serde_json::to_vec(&stored)
            .map_err(|e| Error::Internal(format!("encoding namespace: {e}")))?;
        let kv =
            self.store.create(&key(&name), bytes).await.map_err(|e| {
                match Error::from_store(e, &name) {
                    Error::AlreadyExists { name } => Error::NamespaceExists { name },
                    other => other,
                }
            })?;
        Self::decode_namespace(&kv)
    }

    /// A namespace: created, or holding MXJobs.
    pub async fn get_namespace(&self, name: &str) -> Result<Namespace, Error> {
        if !crate::names::is_dns1123_label(name) {
            return Err(not_found(name));
        }
        let stored = self
            .store
            .get(&key(name))
            .await
            .map_err(|e| Error::from_store(e, name))?;
        match stored {
            Some(kv) => Self::decode_namespace(&kv),
            None => match self.first_job(name).await? {
                Some(job) => Ok(implicit(name, &job)),
                None => Err(not_found(name)),
            },
        }
    }

    /// Every namespace, by name: those created and those holding MXJobs.
    pub async fn list_namespaces(&self) -> Result<NamespaceList, Error> {
        let created = self
            .store
            .list(NAMESPACES_PREFIX, ListOptions::default())
            .await
            .map_err(|e| Error::from_store(e, ""))?;
        let revision = created.revision;
        let mut items: std::collections::BTreeMap<String, Namespace> = created
            .items
            .iter()
            .map(Self::decode_namespace)
            .map(|n| n.map(|n| (n.metadata.name.clone().unwrap_or_default(), n)))
            .collect::<Result<_, _>>()?;
        // One read per namespace holding jobs: after the first job of
        // `ns`, skip past every key under `ns/` (`/` sorts before `0`).
        let mut after = None;
        loop {
            let page = self
                .store
                .list(
                    ALL_NAMESPACES_PREFIX,
                    ListOptions {
                        revision: Some(revision),
                        start_after: after.take(),
                        limit: Some(1),
                    },
                )
                .await
                .map_err(|e| Error::from_store(e, ""))?;
            let Some(kv) = page.items.first() else { break };
            let rest = kv
                .key
                .strip_prefix(ALL_NAMESPACES_PREFIX)
                .unwrap_or_default();
            let namespace = rest.split('/').next().unwrap_or_default().to_string();
            after = Some(format!("{ALL_NAMESPACES_PREFIX}{namespace}0"));
            items
                .entry(namespace.clone())
                .or_insert_with(|| implicit(&namespace, kv));
        }
        Ok(NamespaceList {
            api_version: "v1",
            kind: "NamespaceList",
            metadata: ListMeta {
                resource_version: Some(revision.to_string()),
                ..Default::default()
            },
            items: items.into_values().collect(),
        })
    }

    /// Deletes every MXJob in `name`, then the namespace; answers it as
    /// `Terminating`.
    pub async fn delete_namespace(
        &self,
        name: &str,
        options: &DeleteOptions,
    ) -> Result<Namespace, Error> {
        let mut namespace = self.get_namespace(name).await?;
        if !options.dry_run {
            self.delete_collection(name, &ListParams::default(), options)
                .await?;
            if let Some(kv) = self
                .store
                .get(&key(name))
                .await
                .map_err(|e| Error::from_store(e, name))?
            {
                match self.store.delete(&kv.key, kv.mod_revision).await {
                    Ok(_) | Err(crate::store::StoreError::NotFound) => {}
                    Err(e) => return Err(Error::from_store(e, name)),
                }
            }
        }
        namespace.metadata.deletion_timestamp = Some(Time(Utc::now().trunc_subsecs(0)));
        if let Some(status) = namespace.status.as_mut() {
            status.phase = Some("Terminating".to_string());
        }
        Ok(namespace)
    }
}

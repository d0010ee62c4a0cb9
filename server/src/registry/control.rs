//! What the job controller needs beyond the API's operations: every job of
//! every namespace, every change to them, and writes conditional on the
//! version the controller judged — the controller is a second client of
//! the registry, beside the HTTP handlers.

use futures::stream::BoxStream;
use futures::StreamExt;
use mxjob_api::model::MXJob;
use mxjob_api::params::{FieldValidation, WriteOptions};

use std::sync::Arc;

use super::{Conflict, Error, Object, Part, Registry, ALL_NAMESPACES_PREFIX};
use crate::store::{Event, KeyValue, ListOptions, Revision};

/// One change to an MXJob of any namespace, as the job controller sees it.
#[derive(Debug)]
pub struct Change {
    /// The revision of the write.
    pub revision: Revision,
    /// Whether the object was deleted; `job` is then its last state.
    pub deleted: bool,
    /// The object (shared with every other reader of this revision), or
    /// why it could not be decoded.
    pub job: Result<Arc<Object>, Error>,
}

impl Registry {
    /// Every MXJob of every namespace, read at one revision, and that
    /// revision; decoded one at a time by the caller
    /// ([`Registry::decode_stored`]).
    pub async fn list_all(&self) -> Result<(Vec<KeyValue>, Revision), Error> {
        const PAGE: usize = 500;
        let mut jobs = Vec::new();
        let mut options = ListOptions {
            limit: Some(PAGE),
            ..Default::default()
        };
        loop {
            let page = self
                .store
                .list(ALL_NAMESPACES_PREFIX, options.clone())
                .await
                .map_err(|e| Error::from_store(e, ""))?;
            let last = page.items.last().map(|kv| kv.key.clone());
            jobs.extend(page.items);
            match last {
                Some(last) if page.more => {
                    options.revision = Some(page.revision);
                    options.start_after = Some(last);
                }
                _ => return Ok((jobs, page.revision)),
            }
        }
    }

    /// Every change to MXJobs of every namespace after revision `after`.
    /// [`Error::Gone`] when `after` has been compacted away.
    pub async fn watch_all(
        &self,
        after: Revision,
    ) -> Result<BoxStream<'static, Result<Change, Error>>, Error> {
        let events = self
            .store
            .watch(ALL_NAMESPACES_PREFIX, after)
            .await
            .map_err(|e| Error::from_store(e, ""))?;
        Ok(events
            .map(|event| match event {
                Err(e) => Err(Error::from_store(e, "")),
                Ok(Event::Put { kv, .. }) => Ok(Change {
                    revision: kv.mod_revision,
                    deleted: false,
                    job: Self::decode_stored(&kv),
                }),
                Ok(Event::Delete { prev, revision }) => Ok(Change {
                    revision,
                    deleted: true,
                    job: Self::decode_stored(&prev).map(|object| object.deleted_at(revision)),
                }),
            })
            .boxed())
    }

    /// Writes `job.status` as the job controller: only the status changes,
    /// and only if the stored object still has `job`'s uid and
    /// resourceVersion ([`Error::Conflict`] otherwise).
    pub async fn write_status(&self, job: &MXJob) -> Result<Arc<Object>, Error> {
        let namespace = job.metadata.namespace.as_deref().unwrap_or_default();
        let name = job.metadata.name.as_deref().unwrap_or_default();
        let stored = self.load(namespace, name).await?;
        let options = WriteOptions {
            dry_run: false,
            field_validation: FieldValidation::Ignore,
            field_manager: Some(super::CONTROLLER_MANAGER.to_string()),
        };
        self.update(
            stored,
            job.clone(),
            &options,
            true,
            Part::Status,
            super::write::Managed::Update,
        )
        .await
    }

    /// Deletes `job` only if the stored object still has its uid and
    /// resourceVersion ([`Error::Conflict`] otherwise): how the job
    /// controller removes a job whose TTL ran out without racing a replace
    /// that changed it.
    pub async fn delete_unchanged(&self, job: &MXJob) -> Result<(), Error> {
        let namespace = job.metadata.namespace.as_deref().unwrap_or_default();
        let name = job.metadata.name.as_deref().unwrap_or_default();
        let stored = self.load(namespace, name).await?;
        if stored.object.job_without_managed_fields().metadata.uid != job.metadata.uid {
            return Err(Error::Conflict {
                name: name.to_string(),
                cause: Conflict::Precondition(
                    "Precondition failed: the object has another UID".to_string(),
                ),
            });
        }
        let expected = job
            .metadata
            .resource_version
            .as_deref()
            .and_then(|v| v.parse::<Revision>().ok());
        if expected != Some(stored.kv.mod_revision) {
            return Err(Error::stale(name));
        }
        self.store
            .delete(&stored.kv.key, stored.kv.mod_revision)
            .await
            .map_err(|e| Error::from_store(e, name))?;
        Ok(())
    }
}

//! Writes: create, replace, patch and delete, with the Kubernetes rules
//! for a custom resource.

use chrono::{SubsecRound, Utc};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, ObjectMeta, Time};
use mxjob_api::error::{FieldError, Status};
use mxjob_api::model::{MXJob, MXJobList};
use mxjob_api::params::{DeleteOptions, Propagation, WriteOptions};

use std::sync::Arc;

use super::{
    changes, object_key, self_link, Conflict, Encoded, Error, ListParams, Object, Part, Registry,
    Stored, Written, MAX_JSON_PATCH_OPERATIONS, ORPHAN_FINALIZER,
};
use crate::apply::{self as ssa, ApplyError, SharedEntries, Subresource, Writer};
use crate::decode::{self, Decoded, Patch, PatchRequest};
use crate::store::{KeyValue, Revision, StoreError};
use crate::validation;

/// How often a patch or delete is retried when another write got in first.
const MAX_RETRIES: usize = 8;

/// A generated-name suffix: five characters from the alphabet Kubernetes
/// uses (no vowels, no look-alike digits).
fn name_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    uuid::Uuid::new_v4()
        .as_bytes()
        .iter()
        .take(5)
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect()
}

/// The manager the job controller writes status as.
pub const CONTROLLER_MANAGER: &str = "mxjob-controller";

/// Where the managed fields of a write come from.
pub(super) enum Managed {
    /// An ordinary write: the writer takes the fields it changed.
    Update,
    /// An ordinary write whose body sent back the stored entries with other
    /// times (`decode::Replacement::sent_times`): one per stored entry.
    Retimed(Vec<Option<Time>>),
    /// A server-side apply: the entries the apply computed.
    Applied(Vec<ManagedFieldsEntry>),
}

fn subresource(part: Part) -> Subresource {
    match part {
        Part::Object => Subresource::Main,
        Part::Status => Subresource::Status,
    }
}

/// `job` as JSON without `metadata.managedFields`, for the managed-fields
/// walks, which leave them out: encoding them only to drop them would cost
/// as much as the rest of the object.
fn to_value(job: &MXJob) -> Result<serde_json::Value, Error> {
    let encode = |e: serde_json::Error| Error::Internal(format!("encoding object: {e}"));
    let m = &job.metadata;
    let metadata = ObjectMeta {
        annotations: m.annotations.clone(),
        creation_timestamp: m.creation_timestamp.clone(),
        deletion_grace_period_seconds: m.deletion_grace_period_seconds,
        deletion_timestamp: m.deletion_timestamp.clone(),
        finalizers: m.finalizers.clone(),
        generate_name: m.generate_name.clone(),
        generation: m.generation,
        labels: m.labels.clone(),
        managed_fields: None,
        name: m.name.clone(),
        namespace: m.namespace.clone(),
        owner_references: m.owner_references.clone(),
        resource_version: m.resource_version.clone(),
        self_link: m.self_link.clone(),
        uid: m.uid.clone(),
    };
    let mut object = serde_json::Map::new();
    object.insert("apiVersion".into(), job.api_version.clone().into());
    object.insert("kind".into(), job.kind.clone().into());
    object.insert(
        "metadata".into(),
        serde_json::to_value(metadata).map_err(encode)?,
    );
    object.insert(
        "spec".into(),
        serde_json::to_value(&job.spec).map_err(encode)?,
    );
    object.insert(
        "status".into(),
        serde_json::to_value(&job.status).map_err(encode)?,
    );
    Ok(serde_json::Value::Object(object))
}

/// No entries is no `managedFields`, as Kubernetes stores it.
fn entries(entries: Vec<ManagedFieldsEntry>) -> Option<SharedEntries> {
    (!entries.is_empty()).then(|| SharedEntries::from_entries(entries))
}

/// What a failed apply answers.
fn apply_error(error: ApplyError, namespace: &str, name: &str) -> Error {
    match error {
        ApplyError::Conflicts(conflicts) => Error::ApplyConflict {
            message: conflicts.message(),
            causes: conflicts
                .causes()
                .into_iter()
                .map(|c| mxjob_api::error::StatusCause {
                    reason: c.reason,
                    message: c.message,
                    field: c.field,
                })
                .collect(),
        },
        error @ (ApplyError::NotAnObject
        | ApplyError::WrongKind { .. }
        | ApplyError::ManagedFieldsInConfig) => Error::BadRequest(error.to_string()),
        // kube-apiserver's words for a configuration it cannot type; a
        // 400, as the fault is the request's (see `ApplyError::Invalid`).
        error @ ApplyError::Invalid(_) => {
            Error::BadRequest(typed_patch_failure(namespace, name, &error))
        }
        error @ ApplyError::ManagedFields(_) => {
            Error::Internal(typed_patch_failure(namespace, name, &error))
        }
    }
}

fn typed_patch_failure(namespace: &str, name: &str, error: &ApplyError) -> String {
    format!(
        "failed to create typed patch object ({namespace}/{name}; kubeflow.org/v1, Kind=MXJob): \
         {error}"
    )
}

/// The managed fields after an ordinary write changed `object` into `job`:
/// the writer's `Update` entry takes what it changed, starting from the
/// entries `sent` where Kubernetes lets the request set them.
fn update_entries(
    object: &Object,
    job: &mut MXJob,
    sent: Option<&[ManagedFieldsEntry]>,
    writer: &Writer<'_>,
    part: Part,
) -> Result<Vec<ManagedFieldsEntry>, Error> {
    let subresource = writer.subresource;
    // Managed fields are not tracked, so `old` needs none to compare.
    let old = object.job_without_managed_fields();
    let stored = object.managed_fields().map(SharedEntries::to_entries);
    let start = ssa::managed_fields_for_update(stored.as_deref(), sent, subresource);
    job.metadata.managed_fields = None;
    let known = match part {
        Part::Object => changes::scalar_changes(old, job),
        Part::Status => None,
    };
    #[cfg(debug_assertions)]
    if let Some(known) = &known {
        let walked = ssa::changes(&to_value(old)?, &to_value(job)?, subresource);
        debug_assert!(changes::same(known, &walked), "{known:?} != {walked:?}");
    }
    Ok(
        match known.and_then(|known| ssa::update_unmoved(&known, start, writer)) {
            Some(entries) => entries,
            None => ssa::update(to_value(old)?, to_value(job)?, start, writer),
        },
    )
}

/// [`update_entries`] for a replace that sent back the stored entries with
/// the `times` sent: the same entries, without first making the sent ones
/// (a copy of every entry's `fieldsV1`) when the write moves no ownership.
/// Debug builds check it against [`update_entries`] on every such write.
fn retimed_entries(
    object: &Object,
    job: &mut MXJob,
    times: &[Option<Time>],
    writer: &Writer<'_>,
    part: Part,
) -> Result<Option<SharedEntries>, Error> {
    let none = SharedEntries::default();
    let stored = object.managed_fields().unwrap_or(&none);
    let unmoved = match part {
        Part::Object => changes::scalar_changes(object.job_without_managed_fields(), job)
            .and_then(|known| ssa::update_unmoved_retimed(&known, stored, times, writer)),
        // A status write keeps the stored entries whatever was sent.
        Part::Status => return update_entries(object, job, None, writer, part).map(entries),
    };
    let Some(shared) = unmoved else {
        let sent = ssa::retimed(stored, times);
        return update_entries(object, job, Some(&sent), writer, part).map(entries);
    };
    #[cfg(debug_assertions)]
    {
        let sent = ssa::retimed(stored, times);
        let walked = update_entries(object, &mut job.clone(), Some(&sent), writer, part)?;
        debug_assert_eq!(
            shared.to_entries(),
            walked,
            "retimed entries differ from the sent ones'"
        );
    }
    job.metadata.managed_fields = None;
    Ok((!shared.is_empty()).then_some(shared))
}

fn invalid(name: &str, causes: Vec<FieldError>) -> Error {
    Error::Invalid {
        name: name.to_string(),
        causes,
    }
}

impl Registry {
    /// Creates an MXJob in `namespace`.
    pub async fn create(
        &self,
        namespace: &str,
        request: Decoded<MXJob>,
        options: &WriteOptions,
    ) -> Result<Written, Error> {
        self.create_job(namespace, request, options, Managed::Update)
            .await
    }

    /// Creates `request`'s object, with managed fields as `managed` says.
    async fn create_job(
        &self,
        namespace: &str,
        request: Decoded<MXJob>,
        options: &WriteOptions,
        managed: Managed,
    ) -> Result<Written, Error> {
        let Decoded {
            object: mut job,
            warnings,
        } = request;
        check_namespace(&mut job.metadata, namespace)?;

        let mut errors = Vec::new();
        // A generateName is judged whenever it is set, as Kubernetes
        // judges it, even beside a name that makes it unused.
        if let Some(prefix) = job.metadata.generate_name.as_deref() {
            errors.extend(
                crate::names::generate_name_prefix(prefix)
                    .into_iter()
                    .filter(|_| !prefix.is_empty())
                    .map(|e| FieldError::invalid("metadata.generateName", prefix, e)),
            );
        }
        let name = match (
            job.metadata.name.as_deref(),
            job.metadata.generate_name.as_deref(),
        ) {
            (Some(name), _) if !name.is_empty() => name.to_string(),
            (_, Some(prefix)) if !prefix.is_empty() => {
                let base: String = prefix.chars().take(58).collect();
                format!("{base}{}", name_suffix())
            }
            _ => {
                let error =
                    FieldError::required("metadata.name", "name or generateName is required");
                return Err(invalid("", vec![error]));
            }
        };

        let now = Time(Utc::now().trunc_subsecs(0));
        let sent = job.metadata.managed_fields.take();
        let metadata = &mut job.metadata;
        metadata.name = Some(name.clone());
        metadata.uid = Some(uuid::Uuid::new_v4().to_string());
        metadata.creation_timestamp = Some(now.clone());
        metadata.generation = Some(1);
        metadata.self_link = Some(self_link(namespace, &name));
        metadata.resource_version = None;
        metadata.deletion_timestamp = None;
        metadata.deletion_grace_period_seconds = None;
        // The status a client sends is dropped, but it must still be a
        // status the schema allows.
        let status_errors = validation::validate_status(&job.status);
        if !status_errors.is_empty() {
            return Err(invalid(&name, status_errors));
        }
        job.status = Default::default();

        errors.extend(validation::validate_object(&job));
        if !errors.is_empty() {
            return Err(invalid(&name, errors));
        }
        let managed = entries(match managed {
            Managed::Applied(entries) => entries,
            // Nothing is stored yet, so no create sends stored entries back.
            Managed::Update | Managed::Retimed(_) => {
                let start =
                    ssa::managed_fields_for_update(None, sent.as_deref(), Subresource::Main);
                let writer = Writer {
                    manager: options.field_manager.as_deref().unwrap_or_default(),
                    subresource: Subresource::Main,
                    now: now.0,
                };
                ssa::update(serde_json::Value::Null, to_value(&job)?, start, &writer)
            }
        });
        // Encoded (and measured) for a dry run too: it answers what the
        // write would.
        let Encoded { bytes, layout } = self.encode_for_store(&mut job, managed.as_ref())?;
        if options.dry_run {
            return Ok(Written {
                object: Arc::new(Object::with_managed(job, managed, bytes.into()).laid_out(layout)),
                warnings,
                created: true,
            });
        }
        let kv = self
            .store
            .create_prepared(
                &object_key(namespace, &name),
                bytes,
                Self::prepare(job, managed, layout),
            )
            .await
            .map_err(|e| Error::from_store(e, &name))?;
        Ok(Written {
            object: Self::decode_stored(&kv)?,
            warnings,
            created: true,
        })
    }

    /// Replaces an MXJob (or, for [`Part::Status`], its status) with
    /// `request`: the Kubernetes replace algorithm for a custom resource.
    pub async fn replace(
        &self,
        namespace: &str,
        name: &str,
        body: decode::Body<'_>,
        options: &WriteOptions,
        part: Part,
    ) -> Result<Written, Error> {
        // Loaded first so that the parts of the body sent back as stored are
        // not decoded again (`decode::replacement`); its
        // errors still come after the body's, as the API server's do.
        let stored = self.load(namespace, name).await;
        let over = stored.as_ref().ok().map(|stored| stored.object.replaced());
        let decode::Replacement {
            decoded:
                Decoded {
                    object: mut job,
                    warnings,
                },
            sent_times,
        } = decode::replacement(body, &options.field_validation, over)?;
        check_namespace(&mut job.metadata, namespace)?;
        check_name(&job.metadata, name)?;
        let stored = stored?;
        let managed = sent_times.map_or(Managed::Update, Managed::Retimed);
        let object = self
            .update(stored, job, options, true, part, managed)
            .await?;
        Ok(Written {
            object,
            warnings,
            created: false,
        })
    }

    /// Patches an MXJob (merge or JSON patch), then applies the replace
    /// rules. A patch that names a resourceVersion applies only to that
    /// version; one that does not applies to whatever version is newest,
    /// retried when another write gets in first.
    pub async fn patch(
        &self,
        namespace: &str,
        name: &str,
        request: &PatchRequest,
        options: &WriteOptions,
        part: Part,
    ) -> Result<Written, Error> {
        if let Patch::Json(operations) = &request.patch {
            if operations.len() > MAX_JSON_PATCH_OPERATIONS {
                // kube-apiserver's answer, word for word: clients match on it.
                return Err(Error::TooLarge(format!(
                    "The allowed maximum operations in a JSON patch is \
                     {MAX_JSON_PATCH_OPERATIONS}, got {}",
                    operations.len()
                )));
            }
        }
        let carries_version = request.carries_version();
        if let Patch::Apply(config) = &request.patch {
            return self
                .apply(
                    namespace,
                    name,
                    config,
                    carries_version,
                    options,
                    part,
                    request.force,
                )
                .await;
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            let stored = self.load(namespace, name).await?;
            let mut document = serde_json::to_value(stored.object.job())
                .map_err(|e| Error::Internal(format!("encoding object: {e}")))?;
            // `document` is a fresh copy that is dropped when the patch
            // fails, so no undo is needed — and json-patch's own undo can
            // panic on some operation sequences.
            match &request.patch {
                // A merge patch can only bring what the body carried.
                Patch::Merge(patch) => json_patch::merge(&mut document, patch),
                Patch::Json(operations) => {
                    self.apply_json_patch(&mut document, &operations.0, name)?
                }
                Patch::Apply(_) => unreachable!("applied above"),
            }
            self.check_document_size(&document)?;
            let Decoded {
                object: mut job,
                warnings,
            } = decode::job(
                document,
                request.findings.clone(),
                &options.field_validation,
            )?;
            if job
                .metadata
                .resource_version
                .as_deref()
                .is_none_or(str::is_empty)
            {
                job.metadata.resource_version = Some(stored.kv.mod_revision.to_string());
            }
            check_namespace(&mut job.metadata, namespace)?;
            check_name(&job.metadata, name)?;
            match self
                .update(stored, job, options, false, part, Managed::Update)
                .await
            {
                Err(Error::Conflict {
                    cause: Conflict::Stale,
                    ..
                }) if !carries_version && attempt < MAX_RETRIES => continue,
                result => {
                    return result.map(|object| Written {
                        object,
                        warnings,
                        created: false,
                    })
                }
            }
        }
    }

    /// A server-side apply of `config` (see [`crate::apply`]): merged into
    /// the stored object, or creating it when there is none (the main
    /// resource only), then the rules of replace. `options.field_manager`
    /// names the applier (the HTTP edge requires one).
    #[allow(clippy::too_many_arguments)]
    async fn apply(
        &self,
        namespace: &str,
        name: &str,
        config: &serde_json::Value,
        carries_version: bool,
        options: &WriteOptions,
        part: Part,
        force: bool,
    ) -> Result<Written, Error> {
        let writer = Writer {
            manager: options.field_manager.as_deref().unwrap_or_default(),
            subresource: subresource(part),
            now: Utc::now(),
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let stored = match self.load(namespace, name).await {
                Ok(stored) => Some(stored),
                Err(Error::NotFound { .. }) if part == Part::Object => None,
                Err(e) => return Err(e),
            };
            let (live, managed) = match &stored {
                Some(stored) => (
                    to_value(stored.object.job())?,
                    stored
                        .object
                        .job()
                        .metadata
                        .managed_fields
                        .clone()
                        .unwrap_or_default(),
                ),
                None => (serde_json::Value::Null, Vec::new()),
            };
            let applied = ssa::apply(&live, config, &managed, &writer, force)
                .map_err(|e| apply_error(e, namespace, name))?;
            self.check_document_size(&applied.object)?;
            let decoded = decode::job(applied.object, Vec::new(), &options.field_validation)?;
            let Some(stored) = stored else {
                check_name(&decoded.object.metadata, name)?;
                let managed = Managed::Applied(applied.managed_fields);
                return match self.create_job(namespace, decoded, options, managed).await {
                    // Created by someone else meanwhile: apply to theirs.
                    Err(Error::AlreadyExists { .. }) if attempt < MAX_RETRIES => continue,
                    result => result,
                };
            };
            let Decoded {
                object: mut job,
                warnings,
            } = decoded;
            if job
                .metadata
                .resource_version
                .as_deref()
                .is_none_or(str::is_empty)
            {
                job.metadata.resource_version = Some(stored.kv.mod_revision.to_string());
            }
            check_namespace(&mut job.metadata, namespace)?;
            check_name(&job.metadata, name)?;
            let managed = Managed::Applied(applied.managed_fields);
            match self
                .update(stored, job, options, false, part, managed)
                .await
            {
                Err(Error::Conflict {
                    cause: Conflict::Stale,
                    ..
                }) if !carries_version && attempt < MAX_RETRIES => continue,
                result => {
                    return result.map(|object| Written {
                        object,
                        warnings,
                        created: false,
                    })
                }
            }
        }
    }

    /// Applies a JSON patch one operation at a time, so that its work is
    /// bounded before it is done: the value a `copy` duplicates is measured
    /// first, and once the copies of the patch would add more than the
    /// object bound the patch is refused with `422 Invalid` — what
    /// kube-apiserver answers when its JSON patch library stops at
    /// `AccumulatedCopySizeLimit`. `add` and `replace` only bring values the
    /// body carried, which the body limit already bounds; `move`, `remove`
    /// and `test` add nothing. Errors name the failed operation by index.
    fn apply_json_patch(
        &self,
        document: &mut serde_json::Value,
        operations: &[json_patch::PatchOperation],
        name: &str,
    ) -> Result<(), Error> {
        let failed = |message: String| Error::PatchFailed {
            name: name.to_string(),
            message: format!("the JSON patch could not be applied: {message}"),
        };
        let limit = self.max_object_bytes;
        let mut copied = 0usize;
        for (index, operation) in operations.iter().enumerate() {
            if let json_patch::PatchOperation::Copy(copy) = operation {
                if let Some(source) = document.pointer(copy.from.as_str()) {
                    // The document is bounded (earlier copies passed), so
                    // measuring the whole source is bounded too.
                    let size =
                        crate::json::encoded_len_within(source, usize::MAX).unwrap_or(usize::MAX);
                    copied = copied.saturating_add(size);
                    if copied > limit {
                        return Err(failed(format!(
                            "operation '/{index}' failed at path '{}': the copies of this patch \
                             would add {copied} bytes, more than the limit of {limit}",
                            copy.path
                        )));
                    }
                }
            }
            json_patch::patch_unsafe(document, std::slice::from_ref(operation)).map_err(
                |mut error| {
                    error.operation = index;
                    failed(error.to_string())
                },
            )?;
        }
        Ok(())
    }

    /// The shared part of replace and patch: the uid precondition, the
    /// resourceVersion as compare-and-swap, server-owned metadata, the
    /// immutable fields, generation, and the write (unless nothing changed).
    pub(super) async fn update(
        &self,
        stored: Stored,
        mut job: MXJob,
        options: &WriteOptions,
        version_required: bool,
        part: Part,
        managed: Managed,
    ) -> Result<Arc<Object>, Error> {
        let Stored { object, kv } = stored;
        // The managed fields are the object's to compute (set_managed_fields).
        let old = object.job_without_managed_fields();
        let name = old.metadata.name.clone().unwrap_or_default();
        let sent_managed_fields = job.metadata.managed_fields.take();

        if let Some(uid) = job.metadata.uid.as_deref().filter(|u| !u.is_empty()) {
            let current = old.metadata.uid.as_deref().unwrap_or_default();
            if uid != current {
                return Err(Error::Conflict {
                    name,
                    cause: Conflict::Precondition(format!(
                        "Precondition failed: UID in precondition: {uid}, UID in object meta: {current}"
                    )),
                });
            }
        }
        let expected = match job.metadata.resource_version.as_deref() {
            None | Some("") if version_required => {
                let error = FieldError::invalid(
                    "metadata.resourceVersion",
                    0,
                    "must be specified for an update",
                );
                return Err(invalid(&name, vec![error]));
            }
            None | Some("") => kv.mod_revision,
            Some(text) => super::parse_resource_version(text)?,
        };
        if expected != kv.mod_revision {
            return Err(Error::stale(&name));
        }

        if part == Part::Status {
            // Through /status only the status changes; the rest is stored.
            let status = std::mem::take(&mut job.status);
            job = old.clone();
            job.status = status;
            let errors = validation::validate_status(&job.status);
            if !errors.is_empty() {
                return Err(invalid(&name, errors));
            }
        } else {
            // Server-owned metadata and status come from storage.
            let (new_meta, old_meta) = (&mut job.metadata, &old.metadata);
            new_meta.uid = old_meta.uid.clone();
            new_meta.resource_version = old_meta.resource_version.clone();
            new_meta.creation_timestamp = old_meta.creation_timestamp.clone();
            new_meta.generation = old_meta.generation;
            new_meta.self_link = old_meta.self_link.clone();
            new_meta.deletion_timestamp = old_meta.deletion_timestamp.clone();
            new_meta.deletion_grace_period_seconds = old_meta.deletion_grace_period_seconds;
            // The status in the body is replaced by the stored one, but it
            // must still be a status the schema allows.
            let status_errors = validation::validate_status(&job.status);
            if !status_errors.is_empty() {
                return Err(invalid(&name, status_errors));
            }
            job.status = old.status.clone();

            let errors = validation::validate_update(&job, old);
            if !errors.is_empty() {
                return Err(invalid(&name, errors));
            }
            if !job.spec.same(&old.spec) {
                job.metadata.generation = Some(old.metadata.generation.unwrap_or(0) + 1);
            }
        }
        let sent = sent_managed_fields;
        let managed = self.set_managed_fields(&object, &mut job, sent, options, part, managed)?;
        self.write_update(kv, &object, job, managed, options, &name)
            .await
    }

    /// `job`'s managed fields after a write over `object`: the applied
    /// ones, or the writer's `Update` entry taking what it changed, starting
    /// from the ones the request sent where Kubernetes lets it set them.
    fn set_managed_fields(
        &self,
        object: &Object,
        job: &mut MXJob,
        sent: Option<Vec<ManagedFieldsEntry>>,
        options: &WriteOptions,
        part: Part,
        managed: Managed,
    ) -> Result<Option<SharedEntries>, Error> {
        let writer = Writer {
            manager: options.field_manager.as_deref().unwrap_or_default(),
            subresource: subresource(part),
            now: Utc::now(),
        };
        Ok(match managed {
            Managed::Applied(computed) => entries(computed),
            // Sending none keeps the stored entries, as sending them back does.
            Managed::Update
                if sent.is_none()
                    && part == Part::Object
                    && object.managed_fields().is_some_and(|m| !m.is_empty()) =>
            {
                let times: Vec<_> = object
                    .managed_fields()
                    .iter()
                    .flat_map(|m| m.iter())
                    .map(|s| s.entry.time.clone())
                    .collect();
                retimed_entries(object, job, &times, &writer, part)?
            }
            Managed::Update => {
                entries(update_entries(object, job, sent.as_deref(), &writer, part)?)
            }
            Managed::Retimed(times) => retimed_entries(object, job, &times, &writer, part)?,
        })
    }

    /// Stores `job` over `old` unless its stored form is unchanged (as
    /// kube-apiserver compares the encoded object with the stored bytes
    /// and then writes nothing); answers the object written (see
    /// [`Registry::prepare`]).
    async fn write_update(
        &self,
        kv: KeyValue,
        old: &Arc<Object>,
        mut job: MXJob,
        managed: Option<SharedEntries>,
        options: &WriteOptions,
        name: &str,
    ) -> Result<Arc<Object>, Error> {
        let Encoded { bytes, layout } = self.encode(&mut job, managed.as_ref(), Some(old))?;
        if bytes[..] == old.stored()[..] {
            return Ok(Arc::clone(old));
        }
        self.check_size(&bytes)?;
        if options.dry_run {
            let object = Object::with_managed(job, managed, bytes.into());
            return Ok(Arc::new(object.laid_out(layout)));
        }
        let prepare = Self::prepare(job, managed, layout);
        let kv = self
            .store
            .update_prepared(&kv.key, kv.mod_revision, bytes, prepare)
            .await
            .map_err(|e| Error::from_store(e, name))?;
        Self::decode_stored(&kv)
    }

    /// Deletes one MXJob.
    ///
    /// A delete that says how the job's replicas go (`Orphan`, or a grace
    /// period) first records it on the object — `deletionTimestamp`,
    /// `deletionGracePeriodSeconds` and the `orphan` finalizer, the fields
    /// Kubernetes uses for the same purpose — and then deletes that
    /// version, so the job controller, wherever it runs, reads the choice
    /// from the object's last state. Watchers see the MODIFIED event
    /// before the DELETED one, as for a graceful deletion in Kubernetes.
    pub async fn delete(
        &self,
        namespace: &str,
        name: &str,
        options: &DeleteOptions,
    ) -> Result<Status, Error> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let Stored { object, kv } = self.load(namespace, name).await?;
            let job = object.job();
            check_preconditions(options, job)?;
            let uid = job.metadata.uid.clone();
            if options.dry_run {
                return Ok(Status::deleted(name, uid));
            }
            match self.delete_version(&kv.key, job, options).await {
                Ok(()) => return Ok(Status::deleted(name, uid)),
                // A resourceVersion precondition pins the version: no retry.
                Err(StoreError::Conflict { .. })
                    if options.resource_version.is_none() && attempt < MAX_RETRIES =>
                {
                    continue
                }
                Err(e) => return Err(Error::from_store(e, name)),
            }
        }
    }

    /// Deletes `job` (as read, with its resourceVersion) under `key`,
    /// recording the deletion first when `options` ask for it.
    async fn delete_version(
        &self,
        key: &str,
        job: &MXJob,
        options: &DeleteOptions,
    ) -> Result<(), StoreError> {
        let mut revision = job
            .metadata
            .resource_version
            .as_deref()
            .and_then(|rv| rv.parse::<Revision>().ok())
            .unwrap_or_default();
        if options.records_deletion() {
            let mut job = job.clone();
            let metadata = &mut job.metadata;
            metadata.deletion_timestamp = Some(Time(Utc::now().trunc_subsecs(0)));
            metadata.deletion_grace_period_seconds = options.grace_period_seconds;
            if options.propagation == Propagation::Orphan {
                metadata.finalizers = Some(vec![ORPHAN_FINALIZER.to_string()]);
            }
            let managed = job
                .metadata
                .managed_fields
                .take()
                .map(SharedEntries::from_entries);
            let value = self
                .encode_for_store(&mut job, managed.as_ref())
                .map_err(|e| StoreError::Backend(e.to_string()))?
                .bytes;
            revision = self.store.update(key, revision, value).await?.mod_revision;
        }
        self.store.delete(key, revision).await.map(|_| ())
    }

    /// Deletes every MXJob of a namespace that `params` select; returns
    /// what was deleted. Preconditions are checked on every selected job
    /// before any is deleted.
    pub async fn delete_collection(
        &self,
        namespace: &str,
        params: &ListParams,
        options: &DeleteOptions,
    ) -> Result<MXJobList, Error> {
        let listed = self.list(Some(namespace), params).await?.objects()?;
        for object in &listed {
            check_preconditions(options, object.job_without_managed_fields())?;
        }
        let mut deleted = Vec::with_capacity(listed.len());
        for object in listed {
            let job = object.into_job();
            let name = job.metadata.name.clone().unwrap_or_default();
            if let Some(job) = self
                .delete_one_listed(namespace, &name, job, options)
                .await?
            {
                deleted.push(job);
            }
        }
        let revision = self.current_revision().await?;
        Ok(MXJobList::new(deleted, revision.to_string()))
    }

    /// Deletes one object found by a collection delete; `None` when another
    /// request deleted it first.
    async fn delete_one_listed(
        &self,
        namespace: &str,
        name: &str,
        job: MXJob,
        options: &DeleteOptions,
    ) -> Result<Option<MXJob>, Error> {
        if options.dry_run {
            return Ok(Some(job));
        }
        let key = object_key(namespace, name);
        let mut current = job;
        for _ in 0..MAX_RETRIES {
            match self.delete_version(&key, &current, options).await {
                Ok(()) => return Ok(Some(current)),
                Err(StoreError::NotFound) => return Ok(None),
                Err(StoreError::Conflict { .. }) if options.resource_version.is_none() => {
                    match self.load(namespace, name).await {
                        Ok(stored) => {
                            check_preconditions(
                                options,
                                stored.object.job_without_managed_fields(),
                            )?;
                            current = stored.object.into_job();
                        }
                        Err(Error::NotFound { .. }) => return Ok(None),
                        Err(e) => return Err(e),
                    }
                }
                Err(e) => return Err(Error::from_store(e, name)),
            }
        }
        Err(Error::stale(name))
    }
}

/// 409 unless `job` meets the delete's preconditions.
fn check_preconditions(options: &DeleteOptions, job: &MXJob) -> Result<(), Error> {
    match options.failed_precondition(job) {
        None => Ok(()),
        Some(why) => Err(Error::Conflict {
            name: job.metadata.name.clone().unwrap_or_default(),
            cause: Conflict::Precondition(why),
        }),
    }
}

/// The body's namespace is taken from the URL or must equal it.
fn check_namespace(metadata: &mut ObjectMeta, namespace: &str) -> Result<(), Error> {
    match metadata.namespace.as_deref() {
        None | Some("") => {
            metadata.namespace = Some(namespace.to_string());
            Ok(())
        }
        Some(ns) if ns == namespace => Ok(()),
        Some(_) => Err(Error::BadRequest(
            "the namespace of the provided object does not match the namespace sent on the request"
                .to_string(),
        )),
    }
}

/// The body's name must equal the URL's.
fn check_name(metadata: &ObjectMeta, name: &str) -> Result<(), Error> {
    let body_name = metadata.name.as_deref().unwrap_or_default();
    if body_name == name {
        Ok(())
    } else {
        Err(Error::BadRequest(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({name})"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;
    use mxjob_api::params::FieldValidation;

    fn options() -> WriteOptions {
        WriteOptions {
            dry_run: false,
            field_validation: FieldValidation::Strict,
            field_manager: Some("tester".to_string()),
        }
    }

    /// The `Arc`s of `object`'s field sets, by manager.
    fn field_sets(object: &Object) -> Vec<(String, Arc<ssa::SharedFields>)> {
        object
            .managed_fields()
            .into_iter()
            .flat_map(|m| m.iter())
            .filter_map(|s| Some((s.entry.manager.clone()?, s.fields.clone()?)))
            .collect()
    }

    /// A replace of `name` in `default` with `body`, as JSON.
    async fn replace(registry: &Registry, name: &str, body: &serde_json::Value) -> Written {
        let bytes = serde_json::to_vec(body).expect("encodes");
        let body = decode::Body {
            bytes: &bytes,
            media_type: Some("application/json"),
        };
        registry
            .replace("default", name, body, &options(), Part::Object)
            .await
            .expect("replaced")
    }

    #[tokio::test]
    async fn a_replace_that_moves_no_ownership_shares_the_stored_field_sets() {
        let registry = Registry::new(Arc::new(MemoryStore::new()));
        let mut job: MXJob =
            serde_json::from_str(mxjob_api::openapi::REPLACE_EXAMPLE).expect("the example");
        job.metadata.resource_version = None;
        job.metadata.namespace = None;
        let name = job.metadata.name.clone().expect("a name");
        let request = Decoded {
            object: job,
            warnings: Vec::new(),
        };
        let created = registry
            .create("default", request, &options())
            .await
            .expect("created");

        // The answer sent back, its entries a day older, another TTL.
        let mut body: serde_json::Value =
            serde_json::from_slice(&created.object.json().expect("answers")).expect("JSON");
        for entry in body["metadata"]["managedFields"]
            .as_array_mut()
            .expect("managed fields")
        {
            entry["time"] = "2020-01-01T00:00:00Z".into();
        }
        body["spec"]["ttlSecondsAfterFinished"] = 4321.into();
        let replaced = replace(&registry, &name, &body).await;

        let (before, after) = (field_sets(&created.object), field_sets(&replaced.object));
        assert!(!before.is_empty());
        assert_eq!(before.len(), after.len());
        for ((manager, set), (manager_after, set_after)) in before.iter().zip(&after) {
            assert_eq!(manager, manager_after);
            assert!(Arc::ptr_eq(set, set_after), "{manager}'s set is shared");
        }
        // A body without managed fields keeps the stored entries too.
        let mut body: serde_json::Value =
            serde_json::from_slice(&replaced.object.json().expect("answers")).expect("JSON");
        body["metadata"]
            .as_object_mut()
            .expect("metadata")
            .remove("managedFields");
        body["spec"]["ttlSecondsAfterFinished"] = 4322.into();
        let again = replace(&registry, &name, &body).await;
        let sets = field_sets(&again.object);
        assert_eq!(after.len(), sets.len());
        for ((manager, set), (_, set_again)) in after.iter().zip(&sets) {
            assert!(Arc::ptr_eq(set, set_again), "{manager}'s set is shared");
        }

        let job = replaced.object.job();
        assert_eq!(job.spec.ttl_seconds_after_finished, Some(4321));
        let entries = job.metadata.managed_fields.as_deref().expect("entries");
        assert!(entries.iter().all(|e| e.fields_v1.is_some()));
        let writer = entries
            .iter()
            .find(|e| e.manager.as_deref() == Some("tester"))
            .expect("the writer's entry");
        assert!(
            writer
                .time
                .as_ref()
                .is_some_and(|t| t.0.timestamp() > 1_735_689_600), // 2025-01-01
            "the writer's time moved to now"
        );
    }
}

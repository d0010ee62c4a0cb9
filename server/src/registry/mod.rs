//! Kubernetes object semantics for MXJobs, over any [`Store`].
//!
//! This is where the rules of the Kubernetes API server for a custom
//! resource live, independent of HTTP. The registry takes typed, decoded
//! requests ([`decode`](crate::decode) turns bodies into them; the query
//! options arrive validated from [`mxjob_api::params`]) and answers typed
//! results or an [`Error`] by variant, which the HTTP edge turns into a
//! `v1 Status`. Its parts, one job each:
//!
//! * [`write`] — create, replace, patch and delete: which metadata the
//!   server owns, the replace algorithm (name and namespace checks, uid
//!   precondition, resourceVersion as compare-and-swap, immutable fields,
//!   generation, no-op detection), merge and JSON patch on top of it,
//!   `dryRun`, delete options;
//! * [`read`] — get, consistent paged lists, watches, and their conversion
//!   from store events;
//! * [`namespaces`] — namespaces: created, or implied by the MXJobs in
//!   them;
//! * [`control`] — what the job controller needs beyond the API: every
//!   job of every namespace, every change to them, status writes and
//!   deletes conditional on the version it judged.
//!
//! Objects are stored as JSON under `/registry/kubeflow.org/mxjobs/{ns}/{name}`
//! — the key the Kubernetes API server uses for custom resources — without
//! their `resourceVersion`, which is the store's `mod_revision` and is put
//! back on every read, as the API server does with etcd.
//!
//! Decisions where Kubernetes has no single answer for this resource:
//! * Create ignores server-owned metadata in the body (`uid`,
//!   `resourceVersion`, `creationTimestamp`, `generation`, `selfLink`) so
//!   that an object read from one server can be created on another.
//! * Delete is immediate (MXJobs carry no finalizers here, see
//!   [`validation`](crate::validation)), so it always answers 200.
//! * Every write keeps `metadata.managedFields` as Kubernetes does
//!   ([`crate::apply`]): `Update` entries for create, replace, patch and
//!   status writes, `Apply` entries for server-side apply.
//!
//! The work of a write is bounded before it is done, with kube-apiserver's
//! limits: a JSON patch has at most [`MAX_JSON_PATCH_OPERATIONS`]
//! operations, its copies add at most the object bound, and no object
//! larger than the object bound (the request body limit) is computed to the
//! end or stored; see [`Registry::with_max_object_bytes`].

mod changes;
mod control;
mod error;
mod namespaces;
mod object;
mod read;
mod write;

use std::sync::Arc;
use std::time::Duration;

use mxjob_api::model::MXJob;
use mxjob_api::params::ResourceVersionMatch;
use serde_json::Value;

use crate::apply::SharedEntries;
use crate::selectors::{FieldSelector, LabelSelector};
use crate::store::{Decoded, KeyValue, Prepare, Revision, Store};

pub use control::Change;
pub use error::{Conflict, Error};
pub use namespaces::{NamespaceList, NAMESPACES_PREFIX};
pub use object::Object;
use object::{Encoded, Layout};
pub use read::{Listing, Watched, INITIAL_EVENTS_END};
pub use write::CONTROLLER_MANAGER;

/// The finalizer that tells the job controller to leave a deleted job's
/// replicas running (Kubernetes' `orphan` finalizer).
pub const ORPHAN_FINALIZER: &str = "orphan";

/// The most operations one JSON patch may have, as in kube-apiserver
/// (`maxJSONPatchOperations`); more are `413 RequestEntityTooLarge`.
pub const MAX_JSON_PATCH_OPERATIONS: usize = 10_000;

/// The storage prefix of the MXJobs of every namespace.
pub const ALL_NAMESPACES_PREFIX: &str = "/registry/kubeflow.org/mxjobs/";

/// The storage key of one MXJob.
pub fn object_key(namespace: &str, name: &str) -> String {
    format!("{}{name}", namespace_prefix(namespace))
}

/// The storage prefix of a namespace's MXJobs.
pub fn namespace_prefix(namespace: &str) -> String {
    format!("{ALL_NAMESPACES_PREFIX}{namespace}/")
}

/// `selfLink` of an object.
pub fn self_link(namespace: &str, name: &str) -> String {
    format!("/apis/kubeflow.org/v1/namespaces/{namespace}/mxjobs/{name}")
}

/// What a replace or patch may change: the object (everything the
/// replace rules allow, never the status) or, through the `/status`
/// subresource, only the status — the split Kubernetes makes for custom
/// resources with a status subresource, so that clients and the controller
/// reporting progress cannot overwrite each other's half.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    Object,
    Status,
}

/// A written (or dry-run) object and the warnings to send with it.
#[derive(Debug)]
pub struct Written {
    pub object: Arc<Object>,
    pub warnings: Vec<String>,
    /// Whether the write created the object (a create, or an apply to a
    /// missing object): 201 rather than 200.
    pub created: bool,
}

/// Which objects a list, watch or delete collection applies to.
#[derive(Clone, Debug, Default)]
pub struct Selection {
    pub labels: LabelSelector,
    pub fields: FieldSelector,
}

impl Selection {
    /// Whether `job` is selected.
    pub fn matches(&self, job: &MXJob) -> bool {
        let empty = std::collections::BTreeMap::new();
        let metadata = &job.metadata;
        self.matches_parts(
            metadata.name.as_deref().unwrap_or_default(),
            metadata.namespace.as_deref().unwrap_or_default(),
            metadata.labels.as_ref().unwrap_or(&empty),
        )
    }

    /// Whether an object of this name, namespace and labels is selected.
    pub fn matches_parts(
        &self,
        name: &str,
        namespace: &str,
        labels: &std::collections::BTreeMap<String, String>,
    ) -> bool {
        self.labels.matches(labels) && self.fields.matches(name, namespace)
    }

    /// Whether every object is selected (no selector).
    pub fn is_everything(&self) -> bool {
        self.labels.is_empty() && self.fields.is_empty()
    }
}

/// What a list reads.
#[derive(Clone, Debug, Default)]
pub struct ListParams {
    pub selection: Selection,
    pub limit: Option<usize>,
    pub continue_token: Option<String>,
    pub resource_version: Option<String>,
    pub version_match: Option<ResourceVersionMatch>,
}

/// What a watch follows.
#[derive(Clone, Debug)]
pub struct WatchParams {
    pub selection: Selection,
    pub resource_version: Option<String>,
    /// `sendInitialEvents`: whether to start with the current objects
    /// (and a bookmark ending them); `None` is the classic watch.
    pub initial_events: Option<bool>,
    pub bookmarks: bool,
    /// The stream ends after this long.
    pub timeout: Duration,
}

/// A stored object and the key-value it came from.
struct Stored {
    object: Arc<Object>,
    kv: KeyValue,
}

/// The Kubernetes registry for MXJobs. See the module documentation.
#[derive(Clone)]
pub struct Registry {
    store: Arc<dyn Store>,
    /// The largest object (compact JSON) a write may make.
    max_object_bytes: usize,
}

impl Registry {
    /// A registry over `store` whose objects may be as large as a request
    /// body may be by default ([`MAX_BODY_BYTES`](mxjob_api::wire::MAX_BODY_BYTES)).
    pub fn new(store: Arc<dyn Store>) -> Self {
        Registry {
            store,
            max_object_bytes: mxjob_api::wire::MAX_BODY_BYTES,
        }
    }

    /// The same registry with another bound on objects: the server passes
    /// its request body limit, the bound kube-apiserver uses too. An object
    /// a create, replace or patch would make larger than this (as compact
    /// JSON) is `413 RequestEntityTooLarge` and is never stored — a patch
    /// can make an object larger than the body that carried it — and the
    /// `copy` operations of one JSON patch may add at most this much
    /// (kube-apiserver's `JSONPatchMaxCopyBytes`, which it sets to its body
    /// limit), checked before each copy is made.
    pub fn with_max_object_bytes(mut self, max_object_bytes: usize) -> Self {
        self.max_object_bytes = max_object_bytes;
        self
    }

    /// The backend behind the registry.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The object a stored key-value holds, with its resourceVersion:
    /// the one in the value's shared slot, or decoded and put there (see
    /// [`object`]).
    pub fn decode_stored(kv: &KeyValue) -> Result<Arc<Object>, Error> {
        if let Some(object) = kv.value.decoded::<Object>() {
            return Ok(object);
        }
        let object = Object::decode(kv.value.bytes().clone(), kv.mod_revision, &kv.key)?;
        Ok(kv.value.share(Arc::new(object)))
    }

    /// What puts the object a write makes from `job` in the written
    /// value's slot: built without decoding the bytes (see
    /// [`Object::written`]), by the store before it publishes the write
    /// ([`Store::update_prepared`]), so that no other reader of this
    /// revision — the answer, the next write's `load`, the job controller,
    /// every watcher — decodes it.
    fn prepare(job: MXJob, managed: Option<SharedEntries>, layout: Option<Layout>) -> Prepare {
        Box::new(move |kv: &KeyValue| {
            let stored = kv.value.bytes().clone();
            let object = Object::written(job, managed, stored, layout, kv.mod_revision, &kv.key);
            Some(Arc::new(object.ok()?) as Decoded)
        })
    }

    /// The stored form of `job` (without its resourceVersion, which is
    /// left as it was); [`Error::TooLarge`] over the object bound.
    fn encode_for_store(
        &self,
        job: &mut MXJob,
        managed: Option<&SharedEntries>,
    ) -> Result<Encoded, Error> {
        let encoded = self.encode(job, managed, None)?;
        self.check_size(&encoded.bytes)?;
        Ok(encoded)
    }

    /// The stored form of `job`, whatever its size; over the stored
    /// object `over`, whose stored replica specs are copied when `job`
    /// shares them ([`Object::kept_replica_specs`]).
    fn encode(
        &self,
        job: &mut MXJob,
        managed: Option<&SharedEntries>,
        over: Option<&Object>,
    ) -> Result<Encoded, Error> {
        let version = job.metadata.resource_version.take();
        let kept = over.and_then(|over| over.kept_replica_specs(job));
        let encoded = object::encode(job, managed, kept);
        job.metadata.resource_version = version;
        encoded.map_err(|e| Error::Internal(format!("encoding object: {e}")))
    }

    /// [`Error::TooLarge`] when `bytes` are over the object bound.
    fn check_size(&self, bytes: &[u8]) -> Result<(), Error> {
        if bytes.len() > self.max_object_bytes {
            return Err(self.object_too_large());
        }
        Ok(())
    }

    fn object_too_large(&self) -> Error {
        Error::TooLarge(format!(
            "the object would be larger than the limit of {} bytes",
            self.max_object_bytes
        ))
    }

    /// Refuses a computed document over the object bound before anything
    /// more is done with it.
    fn check_document_size(&self, document: &Value) -> Result<(), Error> {
        match crate::json::encoded_len_within(document, self.max_object_bytes) {
            Some(_) => Ok(()),
            None => Err(self.object_too_large()),
        }
    }

    /// The stored object `name` of `namespace`.
    async fn load(&self, namespace: &str, name: &str) -> Result<Stored, Error> {
        let not_found = || Error::NotFound {
            name: name.to_string(),
        };
        if !crate::names::is_dns1123_label(namespace) || !crate::names::is_dns1123_label(name) {
            // No object with such a name can have been created.
            return Err(not_found());
        }
        let kv = self
            .store
            .get(&object_key(namespace, name))
            .await
            .map_err(|e| Error::from_store(e, name))?
            .ok_or_else(not_found)?;
        Ok(Stored {
            object: Self::decode_stored(&kv)?,
            kv,
        })
    }
}

/// A resourceVersion from the wire; 400 when it is not a number.
fn parse_resource_version(text: &str) -> Result<Revision, Error> {
    text.parse::<Revision>().map_err(|_| {
        Error::BadRequest(format!(
            "invalid resourceVersion {text:?}: must be a decimal number"
        ))
    })
}

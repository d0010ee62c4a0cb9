//! Revisioned key-value storage, shaped like etcd and the Kubernetes
//! storage interface.
//!
//! The registry keeps each object under one key. Every write gets the next
//! value of a single, store-wide revision counter; that revision is the
//! object's `resourceVersion`, and a list is "the keys under a prefix as of
//! revision R". Updates and deletes are compare-and-swap on the revision
//! the caller last read, which is how optimistic concurrency reaches all the
//! way down: two replaces from the same resourceVersion cannot both win,
//! whichever backend holds the data.
//!
//! A backend states its [`Durability`] so that nobody mistakes the
//! in-memory store for one that survives a restart.
//!
//! Backends: [`memory`] (volatile, for tests and throwaway servers),
//! [`sqlite`] (durable, the server's default: a revision log in one SQLite
//! file) and `etcd` (durable and shared by several replicas; cargo feature
//! `etcd`). All pass the same conformance suite,
//! `tests/tests/store_conformance.rs`.
//!
//! What the backends have in common is written once, beside this contract:
//! the compare-and-swap writes (`cas`: the preconditions and their errors
//! for all three, the whole read-check-append for memory and SQLite), the
//! key ranges (`keys`, all three), and for the two in-process backends
//! which revisions a read may ask for (`Kept`; etcd decides that itself)
//! and how they serve watches (`feed`). [`metered`] wraps any backend to
//! time its calls for `/metrics`.

mod blob;
mod cas;
mod checkpoint;
#[cfg(feature = "etcd")]
pub mod etcd;
mod feed;
mod keys;
mod latest;
pub mod memory;
pub mod metered;
pub mod sqlite;
mod vfs;
#[cfg(feature = "etcd")]
mod watch_cache;

use std::pin::Pin;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use futures::Stream;

pub use blob::{Blob, Decoded, Prepare};

/// A store-wide revision: etcd's revision, the Kubernetes resourceVersion.
pub type Revision = u64;

/// The most bytes of history a backend keeps in memory, by default
/// (`--history-bytes`): the memory store's superseded values, SQLite's
/// buffer of recent events for watchers.
pub const DEFAULT_HISTORY_BYTES: usize = 256 * 1024 * 1024;

/// The most events a backend holds in memory for watchers, whatever their
/// size (each backend bounds their bytes too): SQLite's buffer of recent
/// events, which watchers that keep up read from, and how many events an
/// etcd watcher may fall behind before it is cut off. The memory store's
/// events are its history and bounded as such.
pub const WATCH_BUFFER: usize = 1024;

/// One key at one revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    /// The bytes, and the slot for their decoded form ([`Blob`]).
    pub value: Blob,
    /// The revision that created the key (the start of its current life).
    pub create_revision: Revision,
    /// The revision of the last write to the key.
    pub mod_revision: Revision,
}

/// Whether an acknowledged write survives a restart of the process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// Lost when the process exits.
    Volatile,
    /// Kept on stable storage before the write is acknowledged.
    Durable,
}

/// What a list reads.
#[derive(Clone, Debug, Default)]
pub struct ListOptions {
    /// The revision to read at; `None` reads the newest state.
    pub revision: Option<Revision>,
    /// Only keys strictly after this one (for continuing a paged list).
    pub start_after: Option<String>,
    /// At most this many items.
    pub limit: Option<usize>,
}

/// One page of a list.
#[derive(Clone, Debug)]
pub struct ListPage {
    pub items: Vec<KeyValue>,
    /// The revision the page was read at.
    pub revision: Revision,
    /// Whether keys remain after the last item.
    pub more: bool,
}

/// One change to one key, as a watch reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The key was created (`prev` is `None`) or updated; `kv` is its new
    /// value and `prev` the one it replaced (watchers with a selector need
    /// both, to tell an object leaving the selection from one changing in it).
    Put {
        kv: KeyValue,
        prev: Option<KeyValue>,
    },
    /// The key was deleted at `revision`; `prev` is its last value.
    Delete { prev: KeyValue, revision: Revision },
}

impl Event {
    /// The revision of the write.
    pub fn revision(&self) -> Revision {
        match self {
            Event::Put { kv, .. } => kv.mod_revision,
            Event::Delete { revision, .. } => *revision,
        }
    }

    /// The key written.
    pub fn key(&self) -> &str {
        match self {
            Event::Put { kv, .. } => &kv.key,
            Event::Delete { prev, .. } => &prev.key,
        }
    }
}

/// The events of a watch, in revision order. The stream ends with
/// [`StoreError::Compacted`] when the watcher falls behind the history the
/// backend keeps (it may neither hold writers up nor make the backend keep
/// memory for it), or when the backend cuts a slow watcher off; the consumer
/// then resumes from the last revision it saw, or lists again.
pub type EventStream = Pin<Box<dyn Stream<Item = Result<Event, StoreError>> + Send>>;

/// Why a storage operation failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// `create` found the key.
    #[error("key already exists")]
    AlreadyExists,
    /// The key does not exist.
    #[error("key not found")]
    NotFound,
    /// The key's revision is no longer the expected one.
    #[error("revision conflict (current revision {current})")]
    Conflict { current: Revision },
    /// The requested revision was compacted away.
    #[error("revision has been compacted (oldest kept is {compacted})")]
    Compacted { compacted: Revision },
    /// The requested revision is newer than the store.
    #[error("revision is newer than the store (current revision {current})")]
    FutureRevision { current: Revision },
    /// The backend itself failed.
    #[error("storage backend failed: {0}")]
    Backend(String),
}

/// The revisions an in-process backend can read: from `compacted` to
/// `newest`, both included.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Kept {
    /// Reads before this revision fail with [`StoreError::Compacted`].
    pub compacted: Revision,
    /// The newest revision.
    pub newest: Revision,
}

impl Kept {
    /// The revision a list asked for `requested` reads at: the newest when
    /// none (or 0) is asked for.
    pub(crate) fn list_at(self, requested: Option<Revision>) -> Result<Revision, StoreError> {
        match requested {
            Some(0) | None => Ok(self.newest),
            Some(r) if r < self.compacted => Err(StoreError::Compacted {
                compacted: self.compacted,
            }),
            Some(r) if r > self.newest => Err(StoreError::FutureRevision {
                current: self.newest,
            }),
            Some(r) => Ok(r),
        }
    }

    /// Fails with [`StoreError::Compacted`] when the events after `after`
    /// are no longer all kept. A revision still to come is fine: the watch
    /// waits for it.
    pub(crate) fn check_watch(self, after: Revision) -> Result<(), StoreError> {
        if after < self.compacted {
            return Err(StoreError::Compacted {
                compacted: self.compacted,
            });
        }
        Ok(())
    }

    /// Fails with [`StoreError::FutureRevision`] when compacting to
    /// `revision` would forget revisions not written yet.
    pub(crate) fn check_compact(self, revision: Revision) -> Result<(), StoreError> {
        if revision > self.newest {
            return Err(StoreError::FutureRevision {
                current: self.newest,
            });
        }
        Ok(())
    }
}

/// Locks a backend's mutex, using the state of a poisoned one: each
/// backend changes what it locks only in steps that leave it consistent
/// (see their documentation), so a panic under the lock leaves nothing a
/// later read trips over.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Runs a future to completion on a fresh single-threaded runtime (the
/// backends' unit tests).
#[cfg(test)]
pub(crate) fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(future)
}

/// A revisioned key-value store.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Short name for logs (`memory`, `sqlite`, `etcd`).
    fn name(&self) -> &'static str;

    /// Whether acknowledged writes survive a restart.
    fn durability(&self) -> Durability;

    /// The newest revision.
    async fn current_revision(&self) -> Result<Revision, StoreError>;

    /// The key's newest value, if it exists.
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError>;

    /// Creates a key that must not exist.
    async fn create(&self, key: &str, value: Vec<u8>) -> Result<KeyValue, StoreError>;

    /// Replaces a key whose `mod_revision` must equal `expected`.
    async fn update(
        &self,
        key: &str,
        expected: Revision,
        value: Vec<u8>,
    ) -> Result<KeyValue, StoreError>;

    /// [`create`](Store::create), `prepare` filling the value's shared
    /// slot (see `store::blob`) from the version written. The in-process
    /// backends call it before the write is published, so a watcher never
    /// decodes what the writer has decoded already; this default, once the
    /// write has returned.
    async fn create_prepared(
        &self,
        key: &str,
        value: Vec<u8>,
        prepare: Prepare,
    ) -> Result<KeyValue, StoreError> {
        let kv = self.create(key, value).await?;
        Blob::prepare(&kv, prepare);
        Ok(kv)
    }

    /// [`update`](Store::update), with `prepare` as for
    /// [`create_prepared`](Store::create_prepared).
    async fn update_prepared(
        &self,
        key: &str,
        expected: Revision,
        value: Vec<u8>,
        prepare: Prepare,
    ) -> Result<KeyValue, StoreError> {
        let kv = self.update(key, expected, value).await?;
        Blob::prepare(&kv, prepare);
        Ok(kv)
    }

    /// Deletes a key whose `mod_revision` must equal `expected`; returns the
    /// deleted value and the revision of the delete.
    async fn delete(
        &self,
        key: &str,
        expected: Revision,
    ) -> Result<(KeyValue, Revision), StoreError>;

    /// The keys under `prefix`, in key order, as of one revision.
    async fn list(&self, prefix: &str, options: ListOptions) -> Result<ListPage, StoreError>;

    /// Forgets history older than `revision`; reads before it fail with
    /// [`StoreError::Compacted`].
    async fn compact(&self, revision: Revision) -> Result<(), StoreError>;

    /// Every write under `prefix` after revision `after` (exclusive), in
    /// order, without gaps or repeats: first those already made, then those
    /// still to come. Fails with [`StoreError::Compacted`] when `after` is
    /// older than the history the backend keeps.
    async fn watch(&self, prefix: &str, after: Revision) -> Result<EventStream, StoreError>;
}

//! The in-memory backend (`--store memory`): a multi-version map, for tests
//! and throwaway servers. Nothing survives the process.
//!
//! It keeps every version of every key until compaction drops the ones no
//! read can reach any more, so lists at a past revision behave as they do
//! on etcd. Like the Kubernetes API server's watch cache, it keeps a window
//! of recent history: older revisions are compacted automatically, and
//! lists, continue tokens and watches that reach further back fail with
//! [`StoreError::Compacted`] (410 at the API).
//!
//! Writes are the shared compare-and-swap of `store::cas`, with the state's
//! one lock held from the check of the current version to the append.
//!
//! # How much history
//!
//! The window is bounded twice: by revisions (by default the last
//! [`DEFAULT_WINDOW`], kept between one and two windows so that compaction
//! runs once per window rather than on every write) and by bytes (by default
//! [`DEFAULT_HISTORY_BYTES`](super::DEFAULT_HISTORY_BYTES)). History is
//! every value that is no longer the current one of its key — replaced or
//! deleted — and is accounted at the write that superseded it: its length
//! plus its key's and a fixed overhead per version. When a write takes the
//! accounted bytes over the bound, the store compacts at once to the oldest
//! revision that brings them back under it; a single value larger than the
//! bound is history for no revision at all. A revision count alone does
//! not bound memory: a thousand revisions of a 3 MiB object are 3 GiB.
//!
//! Compaction to R drops what superseded versions the writes up to R
//! replaced, found through a queue of those writes in revision order, so
//! its cost is the history it drops, not the number of keys.
//!
//! Watches read the event history itself (see `store::feed`): the
//! events share their values with the versions, so the byte bound covers
//! them too, and a watcher that falls behind the window gets
//! [`StoreError::Compacted`] instead of pinning memory.

use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use tokio::sync::watch;

use super::blob::WeakSlot;
use super::cas::{self, Change, RevisionLog};
use super::feed::{follow, Batch, EventLog, EventSource, Released};
use super::keys::{list_start, Start};
use super::{
    lock, Blob, Durability, EventStream, Kept, KeyValue, ListOptions, ListPage, Prepare, Revision,
    Store, StoreError, DEFAULT_HISTORY_BYTES,
};

/// Revisions kept for lists at a revision and for watches, by default.
pub const DEFAULT_WINDOW: u64 = 1000;
/// What a version costs beyond its value and key, for the byte bound.
const VERSION_OVERHEAD: usize = 64;

/// One version of a key; `value: None` marks a delete.
#[derive(Clone, Debug)]
struct Version {
    revision: Revision,
    create_revision: Revision,
    value: Option<Arc<[u8]>>,
    /// The slot of the value's decoded form, held weakly: only the newest
    /// events keep it alive (see `store::blob`).
    decoded: WeakSlot,
}

/// A write that made an older version of `key` history.
#[derive(Debug)]
struct Superseded {
    /// The write's revision: compacting to it drops the older version.
    revision: Revision,
    key: String,
    /// The older version's accounted size.
    bytes: usize,
}

#[derive(Debug)]
struct State {
    revision: Revision,
    compacted: Revision,
    /// Versions of each key, oldest first.
    keys: BTreeMap<String, Vec<Version>>,
    /// Every event after `compacted`, oldest first.
    events: EventLog,
    /// The writes after `compacted` that superseded a version, oldest first.
    superseded: VecDeque<Superseded>,
    /// The accounted size of the superseded versions still kept.
    history_bytes: usize,
    /// Revisions to keep before compacting automatically.
    window: u64,
    /// Bytes of history to keep at most.
    max_history_bytes: usize,
    /// Publishes each new revision to watchers.
    written: watch::Sender<Revision>,
    /// What the event history let go of in a write, freed once the lock
    /// is released (see [`MemoryStore::write`]).
    released: Released,
}

/// Writes go through [`cas`]: the caller holds the state's lock from the
/// read of the current version to the append.
impl RevisionLog for State {
    fn latest(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        Ok(self.current(key))
    }

    fn next_revision(&self) -> Revision {
        self.revision + 1
    }

    fn append(&mut self, change: Change<'_>) -> Result<Revision, StoreError> {
        Ok(self.write(change))
    }
}

impl State {
    fn current(&self, key: &str) -> Option<KeyValue> {
        let version = self.keys.get(key)?.last()?;
        to_key_value(key, version)
    }

    fn kept(&self) -> Kept {
        Kept {
            compacted: self.compacted,
            newest: self.revision,
        }
    }

    fn write(&mut self, change: Change<'_>) -> Revision {
        self.revision += 1;
        let revision = self.revision;
        let key = change.key();
        let versions = self.keys.entry(key.to_string()).or_default();
        // Read from the versions, not the change: a create after a delete
        // supersedes the delete marker, which is history too.
        let replaced = versions.last().map(|v| {
            v.value.as_ref().map_or(0, |value| value.len()) + key.len() + VERSION_OVERHEAD
        });
        versions.push(Version {
            revision,
            create_revision: change.create_revision(revision),
            value: change.value().map(|value| value.bytes().clone()),
            decoded: change.value().map(Blob::downgrade).unwrap_or_default(),
        });
        if let Some(bytes) = replaced {
            self.history_bytes += bytes;
            self.superseded.push_back(Superseded {
                revision,
                key: key.to_string(),
                bytes,
            });
        }
        self.events
            .push_releasing(change.event(revision), &mut self.released);
        // Published once the event is readable (see `feed::follow`).
        self.written.send_replace(revision);
        if revision - self.compacted > 2 * self.window {
            self.compact_to(revision - self.window);
        }
        if self.history_bytes > self.max_history_bytes {
            self.compact_to(self.revision_within_bytes());
        }
        revision
    }

    /// The oldest revision whose compaction brings the history within its
    /// byte bound.
    fn revision_within_bytes(&self) -> Revision {
        let mut bytes = self.history_bytes;
        let mut target = self.compacted;
        for entry in &self.superseded {
            if bytes <= self.max_history_bytes {
                break;
            }
            bytes -= entry.bytes;
            target = entry.revision;
        }
        target
    }

    fn compact_to(&mut self, revision: Revision) {
        if revision <= self.compacted {
            return;
        }
        self.compacted = revision;
        while self
            .superseded
            .front()
            .is_some_and(|s| s.revision <= revision)
        {
            let Some(entry) = self.superseded.pop_front() else {
                break;
            };
            self.history_bytes -= entry.bytes;
            let Some(versions) = self.keys.get_mut(&entry.key) else {
                continue;
            };
            // Keep the newest version at or before `revision` (what a read
            // at `revision` sees) and everything after it.
            let keep_from = versions
                .iter()
                .rposition(|v| v.revision <= revision)
                .unwrap_or(0);
            versions.drain(..keep_from);
            if versions.len() == 1
                && versions[0].value.is_none()
                && versions[0].revision <= revision
            {
                self.keys.remove(&entry.key);
            }
        }
        self.events.trim_through(revision);
    }
}

fn to_key_value(key: &str, version: &Version) -> Option<KeyValue> {
    version.value.as_ref().map(|value| KeyValue {
        key: key.to_string(),
        value: Blob::with_weak_slot(Arc::clone(value), &version.decoded),
        create_revision: version.create_revision,
        mod_revision: version.revision,
    })
}

/// The state, shared with the watches reading its events.
#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave `State` half-written
        // in a way reads trip over, so a poisoned lock is usable.
        lock(&self.state)
    }
}

#[async_trait]
impl EventSource for Shared {
    async fn events_after(&self, prefix: &str, after: Revision) -> Result<Batch, StoreError> {
        let state = self.state();
        state
            .events
            .read(prefix, after)
            .ok_or(StoreError::Compacted {
                compacted: state.compacted,
            })
    }
}

/// See the module documentation.
#[derive(Debug)]
pub struct MemoryStore {
    shared: Arc<Shared>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::with_window(DEFAULT_WINDOW)
    }
}

impl MemoryStore {
    /// A store that keeps [`DEFAULT_WINDOW`] revisions of history.
    pub fn new() -> Self {
        Self::default()
    }

    /// A store that keeps `window` revisions of history (at least 1) and
    /// the default bytes of it.
    pub fn with_window(window: u64) -> Self {
        Self::with_limits(window, DEFAULT_HISTORY_BYTES)
    }

    /// A store that keeps `window` revisions of history (at least 1), but
    /// never more than `max_history_bytes` of it.
    pub fn with_limits(window: u64, max_history_bytes: usize) -> Self {
        let (written, _) = watch::channel(0);
        MemoryStore {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    revision: 0,
                    compacted: 0,
                    keys: BTreeMap::new(),
                    events: EventLog::new(0, usize::MAX, usize::MAX),
                    superseded: VecDeque::new(),
                    history_bytes: 0,
                    window: window.max(1),
                    max_history_bytes,
                    written,
                    released: Released::default(),
                }),
            }),
        }
    }

    /// The bytes of history held now, as the bound counts them: every kept
    /// value that is no longer the current one of its key.
    pub fn history_bytes(&self) -> usize {
        self.state().history_bytes
    }

    /// The oldest revision reads can still reach.
    pub fn compacted_revision(&self) -> Revision {
        self.state().compacted
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.shared.state()
    }

    /// Runs `write` under the state's lock, then frees the decoded jobs
    /// the event history let go of once the lock is released: freeing one
    /// takes longer than the write, and other requests wait for the lock.
    fn write<T>(&self, write: impl FnOnce(&mut State) -> T) -> T {
        let mut state = self.state();
        let written = write(&mut state);
        let released = std::mem::take(&mut state.released);
        drop(state);
        drop(released);
        written
    }
}

#[async_trait]
impl Store for MemoryStore {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn durability(&self) -> Durability {
        Durability::Volatile
    }

    async fn current_revision(&self) -> Result<Revision, StoreError> {
        Ok(self.state().revision)
    }

    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        Ok(self.state().current(key))
    }

    async fn create(&self, key: &str, value: Vec<u8>) -> Result<KeyValue, StoreError> {
        self.write(|state| cas::create(state, key, value, None))
    }

    async fn update(
        &self,
        key: &str,
        expected: Revision,
        value: Vec<u8>,
    ) -> Result<KeyValue, StoreError> {
        self.write(|state| cas::update(state, key, expected, value, None))
    }

    async fn create_prepared(
        &self,
        key: &str,
        value: Vec<u8>,
        prepare: Prepare,
    ) -> Result<KeyValue, StoreError> {
        self.write(|state| cas::create(state, key, value, Some(prepare)))
    }

    async fn update_prepared(
        &self,
        key: &str,
        expected: Revision,
        value: Vec<u8>,
        prepare: Prepare,
    ) -> Result<KeyValue, StoreError> {
        self.write(|state| cas::update(state, key, expected, value, Some(prepare)))
    }

    async fn delete(
        &self,
        key: &str,
        expected: Revision,
    ) -> Result<(KeyValue, Revision), StoreError> {
        self.write(|state| cas::delete(state, key, expected))
    }

    async fn list(&self, prefix: &str, options: ListOptions) -> Result<ListPage, StoreError> {
        let state = self.state();
        let revision = state.kept().list_at(options.revision)?;
        let start = match list_start(prefix, options.start_after.as_deref()) {
            Start::At(key) => Bound::Included(key),
            Start::After(key) => Bound::Excluded(key),
        };
        let limit = options.limit.filter(|l| *l > 0).unwrap_or(usize::MAX);
        let mut items = Vec::new();
        let mut more = false;
        for (key, versions) in state.keys.range::<str, _>((start, Bound::Unbounded)) {
            if !key.starts_with(prefix) {
                break;
            }
            let visible = versions.iter().rev().find(|v| v.revision <= revision);
            if let Some(kv) = visible.and_then(|v| to_key_value(key, v)) {
                if items.len() == limit {
                    more = true;
                    break;
                }
                items.push(kv);
            }
        }
        Ok(ListPage {
            items,
            revision,
            more,
        })
    }

    async fn compact(&self, revision: Revision) -> Result<(), StoreError> {
        let mut state = self.state();
        state.kept().check_compact(revision)?;
        state.compact_to(revision);
        Ok(())
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<EventStream, StoreError> {
        let written = {
            let state = self.state();
            state.kept().check_watch(after)?;
            state.written.subscribe()
        };
        let source: Arc<dyn EventSource> = self.shared.clone();
        Ok(follow(source, written, prefix.to_string(), after))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::block_on as block;

    /// What the byte bound should count, recomputed from the versions:
    /// every version that has a newer one.
    fn recount(store: &MemoryStore) -> usize {
        let state = store.state();
        state
            .keys
            .iter()
            .flat_map(|(key, versions)| {
                versions[..versions.len().saturating_sub(1)]
                    .iter()
                    .map(move |v| {
                        v.value.as_ref().map_or(0, |value| value.len())
                            + key.len()
                            + VERSION_OVERHEAD
                    })
            })
            .sum()
    }

    /// The accounted history is what a recount of the kept versions gives,
    /// after updates, deletes, re-creates and both kinds of compaction, and
    /// it never passes its bound.
    #[test]
    fn history_bytes_count_exactly_the_superseded_versions_kept() {
        block(async {
            const BOUND: usize = 2_000;
            let store = MemoryStore::with_limits(1_000_000, BOUND);
            let mut a = store.create("/a", vec![1; 100]).await.expect("create");
            for i in 0..50u8 {
                a = store
                    .update("/a", a.mod_revision, vec![i; 100 + usize::from(i)])
                    .await
                    .expect("update");
                assert!(store.history_bytes() <= BOUND);
                assert_eq!(store.history_bytes(), recount(&store));
            }
            assert!(store.compacted_revision() > 0, "the bound compacted");
            let b = store.create("/b", vec![0; 10]).await.expect("create");
            let (_, deleted) = store.delete("/b", b.mod_revision).await.expect("delete");
            assert_eq!(store.history_bytes(), recount(&store));
            store.create("/b", vec![0; 20]).await.expect("re-create");
            assert_eq!(store.history_bytes(), recount(&store));
            store.compact(deleted).await.expect("compact");
            assert_eq!(store.history_bytes(), recount(&store));
            let newest = store.current_revision().await.expect("revision");
            store.compact(newest).await.expect("compact");
            assert_eq!(store.history_bytes(), 0);
            assert_eq!(recount(&store), 0);
            // A value larger than the bound is history for no revision.
            let big = store
                .update("/a", a.mod_revision, vec![0; 3 * BOUND])
                .await
                .expect("update");
            store
                .update("/a", big.mod_revision, vec![1; 10])
                .await
                .expect("update");
            assert_eq!(store.history_bytes(), 0);
            assert_eq!(store.compacted_revision(), newest + 2);
        });
    }
}

//! The in-memory backend (`--store memory`): a multi-version map, for tests
//! and throwaway servers. Nothing survives the process.
//!
//! It keeps every version of every key until compaction drops the ones no
//! read can reach any more, so lists at a past revision behave as they do
//! on etcd. Like the Kubernetes API server's watch cache, it keeps a window
//! of recent revisions (by default the last 1000): older ones are compacted
//! automatically, and lists, continue tokens and watches that reach further
//! back fail with [`StoreError::Compacted`].
//!
//! Watches get the recent events from the same window and new ones from a
//! bounded broadcast channel subscribed under the store's lock, so nothing
//! falls between the two. A watcher that lets the channel overflow is cut
//! off rather than slowing writers down.

use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use tokio::sync::broadcast;

use super::{
    backlog_then_live, Durability, Event, EventStream, KeyValue, ListOptions, ListPage, Revision,
    Store, StoreError,
};

/// Revisions kept for lists at a revision and for watches, by default.
pub const DEFAULT_WINDOW: u64 = 1000;
/// Events a watcher may fall behind before it is cut off.
const WATCH_BUFFER: usize = 1024;

/// One version of a key; `value: None` marks a delete.
#[derive(Clone, Debug)]
struct Version {
    revision: Revision,
    create_revision: Revision,
    value: Option<Arc<[u8]>>,
}

#[derive(Debug)]
struct State {
    revision: Revision,
    compacted: Revision,
    /// Versions of each key, oldest first.
    keys: BTreeMap<String, Vec<Version>>,
    /// Every event after `compacted`, oldest first.
    events: VecDeque<Event>,
    /// Revisions to keep before compacting automatically.
    window: u64,
    sender: broadcast::Sender<Event>,
}

impl State {
    fn latest(&self, key: &str) -> Option<KeyValue> {
        let version = self.keys.get(key)?.last()?;
        to_key_value(key, version)
    }

    fn write(
        &mut self,
        key: &str,
        create_revision: Option<Revision>,
        value: Option<Arc<[u8]>>,
    ) -> Revision {
        self.revision += 1;
        let revision = self.revision;
        let versions = self.keys.entry(key.to_string()).or_default();
        let prev = versions.last().and_then(|v| to_key_value(key, v));
        let version = Version {
            revision,
            create_revision: create_revision.unwrap_or(revision),
            value,
        };
        let event = match (to_key_value(key, &version), prev) {
            (Some(kv), prev) => Some(Event::Put { kv, prev }),
            (None, Some(prev)) => Some(Event::Delete { prev, revision }),
            (None, None) => None,
        };
        versions.push(version);
        if let Some(event) = event {
            self.events.push_back(event.clone());
            // No receivers is not an error: nobody is watching.
            let _ = self.sender.send(event);
        }
        if revision - self.compacted > 2 * self.window {
            self.compact_to(revision - self.window);
        }
        revision
    }

    fn compact_to(&mut self, revision: Revision) {
        if revision <= self.compacted {
            return;
        }
        self.compacted = revision;
        self.keys.retain(|_, versions| {
            // Keep the newest version at or before `revision` (what a read
            // at `revision` sees) and everything after it.
            let keep_from = versions
                .iter()
                .rposition(|v| v.revision <= revision)
                .unwrap_or(0);
            versions.drain(..keep_from);
            !(versions.len() == 1
                && versions[0].value.is_none()
                && versions[0].revision <= revision)
        });
        while self
            .events
            .front()
            .is_some_and(|e| e.revision() <= revision)
        {
            self.events.pop_front();
        }
    }
}

fn to_key_value(key: &str, version: &Version) -> Option<KeyValue> {
    version.value.as_ref().map(|value| KeyValue {
        key: key.to_string(),
        value: Arc::clone(value),
        create_revision: version.create_revision,
        mod_revision: version.revision,
    })
}

/// See the module documentation.
#[derive(Debug)]
pub struct MemoryStore {
    state: Mutex<State>,
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

    /// A store that keeps `window` revisions of history (at least 1).
    pub fn with_window(window: u64) -> Self {
        let (sender, _) = broadcast::channel(WATCH_BUFFER);
        MemoryStore {
            state: Mutex::new(State {
                revision: 0,
                compacted: 0,
                keys: BTreeMap::new(),
                events: VecDeque::new(),
                window: window.max(1),
                sender,
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave `State` half-written
        // (every mutation is a single push), so a poisoned lock is usable.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
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
        Ok(self.state().latest(key))
    }

    async fn create(&self, key: &str, value: Vec<u8>) -> Result<KeyValue, StoreError> {
        let mut state = self.state();
        if state.latest(key).is_some() {
            return Err(StoreError::AlreadyExists);
        }
        let value: Arc<[u8]> = value.into();
        let revision = state.write(key, None, Some(Arc::clone(&value)));
        Ok(KeyValue {
            key: key.to_string(),
            value,
            create_revision: revision,
            mod_revision: revision,
        })
    }

    async fn update(
        &self,
        key: &str,
        expected: Revision,
        value: Vec<u8>,
    ) -> Result<KeyValue, StoreError> {
        let mut state = self.state();
        let current = state.latest(key).ok_or(StoreError::NotFound)?;
        if current.mod_revision != expected {
            return Err(StoreError::Conflict {
                current: current.mod_revision,
            });
        }
        let value: Arc<[u8]> = value.into();
        let revision = state.write(key, Some(current.create_revision), Some(Arc::clone(&value)));
        Ok(KeyValue {
            key: key.to_string(),
            value,
            create_revision: current.create_revision,
            mod_revision: revision,
        })
    }

    async fn delete(
        &self,
        key: &str,
        expected: Revision,
    ) -> Result<(KeyValue, Revision), StoreError> {
        let mut state = self.state();
        let current = state.latest(key).ok_or(StoreError::NotFound)?;
        if current.mod_revision != expected {
            return Err(StoreError::Conflict {
                current: current.mod_revision,
            });
        }
        let revision = state.write(key, Some(current.create_revision), None);
        Ok((current, revision))
    }

    async fn list(&self, prefix: &str, options: ListOptions) -> Result<ListPage, StoreError> {
        let state = self.state();
        let revision = match options.revision {
            Some(0) | None => state.revision,
            Some(r) if r < state.compacted => {
                return Err(StoreError::Compacted {
                    compacted: state.compacted,
                })
            }
            Some(r) if r > state.revision => {
                return Err(StoreError::FutureRevision {
                    current: state.revision,
                })
            }
            Some(r) => r,
        };
        let start = match &options.start_after {
            Some(after) if after.as_str() >= prefix => Bound::Excluded(after.clone()),
            _ => Bound::Included(prefix.to_string()),
        };
        let limit = options.limit.filter(|l| *l > 0).unwrap_or(usize::MAX);
        let mut items = Vec::new();
        let mut more = false;
        for (key, versions) in state.keys.range((start, Bound::Unbounded)) {
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
        if revision > state.revision {
            return Err(StoreError::FutureRevision {
                current: state.revision,
            });
        }
        state.compact_to(revision);
        Ok(())
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<EventStream, StoreError> {
        let state = self.state();
        if after < state.compacted {
            return Err(StoreError::Compacted {
                compacted: state.compacted,
            });
        }
        let backlog: Vec<Event> = state
            .events
            .iter()
            .filter(|e| e.revision() > after && e.key().starts_with(prefix))
            .cloned()
            .collect();
        // Subscribed under the lock: the next write is the first the
        // receiver sees, and the backlog holds everything before it.
        let receiver = state.sender.subscribe();
        drop(state);
        Ok(backlog_then_live(
            backlog,
            receiver,
            prefix.to_string(),
            after,
        ))
    }
}

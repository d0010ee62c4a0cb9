//! The in-memory backend (`--store memory`): a multi-version map, for tests
//! and throwaway servers. It keeps every version of every key until
//! [`Store::compact`] drops the ones no read can reach any more, so lists at
//! a past revision behave as they do on etcd. Nothing survives the process.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;

use super::{Durability, KeyValue, ListOptions, ListPage, Revision, Store, StoreError};

/// One version of a key; `value: None` marks a delete.
#[derive(Clone, Debug)]
struct Version {
    revision: Revision,
    create_revision: Revision,
    value: Option<Arc<[u8]>>,
}

#[derive(Debug, Default)]
struct State {
    revision: Revision,
    compacted: Revision,
    /// Versions of each key, oldest first.
    keys: BTreeMap<String, Vec<Version>>,
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
        self.keys.entry(key.to_string()).or_default().push(Version {
            revision,
            create_revision: create_revision.unwrap_or(revision),
            value,
        });
        revision
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
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
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
        if revision <= state.compacted {
            return Ok(());
        }
        state.compacted = revision;
        state.keys.retain(|_, versions| {
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
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(f)
    }

    #[test]
    fn every_write_takes_the_next_revision() {
        block(async {
            let store = MemoryStore::new();
            let a = store.create("/a", b"1".to_vec()).await.expect("create");
            let b = store.create("/b", b"1".to_vec()).await.expect("create");
            let a2 = store
                .update("/a", a.mod_revision, b"2".to_vec())
                .await
                .expect("update");
            assert_eq!((a.mod_revision, b.mod_revision, a2.mod_revision), (1, 2, 3));
            assert_eq!(a2.create_revision, 1);
            assert_eq!(store.current_revision().await, Ok(3));
        });
    }

    #[test]
    fn update_from_a_stale_revision_conflicts() {
        block(async {
            let store = MemoryStore::new();
            let a = store.create("/a", b"1".to_vec()).await.expect("create");
            store
                .update("/a", a.mod_revision, b"2".to_vec())
                .await
                .expect("update");
            let stale = store.update("/a", a.mod_revision, b"3".to_vec()).await;
            assert_eq!(stale, Err(StoreError::Conflict { current: 2 }));
            assert_eq!(
                &*store.get("/a").await.expect("get").expect("present").value,
                b"2"
            );
        });
    }

    #[test]
    fn create_of_an_existing_key_fails_and_recreate_after_delete_works() {
        block(async {
            let store = MemoryStore::new();
            let a = store.create("/a", b"1".to_vec()).await.expect("create");
            assert_eq!(
                store.create("/a", b"x".to_vec()).await,
                Err(StoreError::AlreadyExists)
            );
            let (deleted, at) = store.delete("/a", a.mod_revision).await.expect("delete");
            assert_eq!((deleted.mod_revision, at), (1, 2));
            assert_eq!(store.get("/a").await, Ok(None));
            let again = store.create("/a", b"2".to_vec()).await.expect("recreate");
            assert_eq!(again.create_revision, 3);
        });
    }

    #[test]
    fn list_at_a_past_revision_sees_that_snapshot() {
        block(async {
            let store = MemoryStore::new();
            let a = store.create("/p/a", b"a1".to_vec()).await.expect("create");
            store.create("/p/b", b"b1".to_vec()).await.expect("create");
            store.create("/q/c", b"c1".to_vec()).await.expect("create");
            store
                .update("/p/a", a.mod_revision, b"a2".to_vec())
                .await
                .expect("update");
            let b = store.get("/p/b").await.expect("get").expect("present");
            store.delete("/p/b", b.mod_revision).await.expect("delete");

            let then = store
                .list(
                    "/p/",
                    ListOptions {
                        revision: Some(3),
                        ..Default::default()
                    },
                )
                .await
                .expect("list");
            let values: Vec<&[u8]> = then.items.iter().map(|kv| &*kv.value).collect();
            assert_eq!(values, vec![&b"a1"[..], &b"b1"[..]]);

            let now = store
                .list("/p/", ListOptions::default())
                .await
                .expect("list");
            let values: Vec<&[u8]> = now.items.iter().map(|kv| &*kv.value).collect();
            assert_eq!(values, vec![&b"a2"[..]]);
            assert_eq!(now.revision, 5);
        });
    }

    #[test]
    fn list_pages_with_limit_and_start_after() {
        block(async {
            let store = MemoryStore::new();
            for k in ["a", "b", "c"] {
                store
                    .create(&format!("/p/{k}"), k.as_bytes().to_vec())
                    .await
                    .expect("create");
            }
            let first = store
                .list(
                    "/p/",
                    ListOptions {
                        limit: Some(2),
                        ..Default::default()
                    },
                )
                .await
                .expect("list");
            assert_eq!(first.items.len(), 2);
            assert!(first.more);
            let rest = store
                .list(
                    "/p/",
                    ListOptions {
                        start_after: Some("/p/b".to_string()),
                        limit: Some(2),
                        revision: Some(first.revision),
                    },
                )
                .await
                .expect("list");
            assert_eq!(rest.items.len(), 1);
            assert_eq!(rest.items[0].key, "/p/c");
            assert!(!rest.more);
        });
    }

    #[test]
    fn compaction_forgets_old_revisions_but_keeps_current_state() {
        block(async {
            let store = MemoryStore::new();
            let a = store.create("/p/a", b"a1".to_vec()).await.expect("create");
            let b = store.create("/p/b", b"b1".to_vec()).await.expect("create");
            store
                .update("/p/a", a.mod_revision, b"a2".to_vec())
                .await
                .expect("update");
            store.delete("/p/b", b.mod_revision).await.expect("delete");
            store.compact(3).await.expect("compact");
            let old = store
                .list(
                    "/p/",
                    ListOptions {
                        revision: Some(2),
                        ..Default::default()
                    },
                )
                .await;
            assert_eq!(
                old.map(|p| p.revision),
                Err(StoreError::Compacted { compacted: 3 })
            );
            let at3 = store
                .list(
                    "/p/",
                    ListOptions {
                        revision: Some(3),
                        ..Default::default()
                    },
                )
                .await
                .expect("list");
            assert_eq!(at3.items.len(), 2);
            let now = store
                .list("/p/", ListOptions::default())
                .await
                .expect("list");
            assert_eq!(now.items.len(), 1);
            assert_eq!(&*now.items[0].value, b"a2");
        });
    }
}

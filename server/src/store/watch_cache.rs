//! The etcd backend's watch cache: the recent events of one etcd watch,
//! followed by every watcher of the server, as kube-apiserver's cacher does.
//!
//! Without it every watch was an etcd watch of its own: etcd sent each event
//! (with its previous value) once per watcher, and the server decoded it once
//! per watcher. With a thousand watchers of one namespace that put the last
//! of them about 100 ms behind a replace.
//!
//! The etcd backend feeds the cache from one watch of all its keys, opened
//! at the revision that was current when the first watch arrived, and the
//! cache keeps the newest events in an [`EventLog`]. Watchers follow that
//! log as they follow the in-process backends' history (`store::feed`), so
//! the bytes of an event and its decoded object are shared by all of them.
//!
//! * A watch from a revision the log covers follows the log. A watch from
//!   an older revision (the cache started later, or dropped it) is an etcd
//!   watch of its own, as before.
//! * A follower that falls behind the log's window gets
//!   [`StoreError::Compacted`] (410 at the API), as kube-apiserver answers
//!   "too old resource version" past its watch cache; it relists.
//! * When the etcd watch behind the cache ends (a failed connection,
//!   etcd's compaction or cancelation), the backend closes the cache: every
//!   follower's stream ends after what was published, the watchers resume
//!   from the last revision they saw, and the next watch opens a new cache.
//! * The backend's own compactions trim the log, so a follower behind
//!   them is cut off as on the other backends. Compactions by etcd itself or
//!   by another replica do not: the log still serves what it holds, as
//!   kube-apiserver's cache does.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tokio::sync::watch;

use super::feed::{follow, Batch, EventLog, EventSource};
use super::{lock, Event, EventStream, Revision, StoreError};

/// Events the log keeps, at most.
pub(crate) const WINDOW_EVENTS: usize = 1000;
/// Bytes of events (as `feed::event_bytes` counts them) the log keeps, at
/// most.
pub(crate) const WINDOW_BYTES: usize = 64 * 1024 * 1024;

/// See the module documentation.
#[derive(Debug)]
pub(crate) struct WatchCache {
    log: Mutex<EventLog>,
    /// Announces each newest revision published; `None` once closed.
    written: Mutex<Option<watch::Sender<Revision>>>,
    /// Followers subscribe through a clone of this.
    subscribe: watch::Receiver<Revision>,
}

impl WatchCache {
    /// An open cache of the events after `start`.
    pub fn new(start: Revision) -> Arc<Self> {
        let (sender, receiver) = watch::channel(start);
        Arc::new(WatchCache {
            log: Mutex::new(EventLog::new(start, WINDOW_EVENTS, WINDOW_BYTES)),
            written: Mutex::new(Some(sender)),
            subscribe: receiver,
        })
    }

    /// Appends `events` (in revision order, all newer than what the log
    /// holds), then announces the newest to the followers.
    pub fn publish(&self, events: Vec<Event>) {
        let Some(newest) = events.last().map(Event::revision) else {
            return;
        };
        {
            let mut log = lock(&self.log);
            for event in events {
                log.push(event);
            }
        }
        if let Some(written) = lock(&self.written).as_ref() {
            written.send_replace(newest);
        }
    }

    /// Ends every follower's stream after what was published.
    pub fn close(&self) {
        lock(&self.written).take();
    }

    /// Whether the cache still takes events.
    pub fn is_open(&self) -> bool {
        lock(&self.written).is_some()
    }

    /// The events under `prefix` after `after`, if the log holds them all.
    pub fn follow(self: &Arc<Self>, prefix: &str, after: Revision) -> Option<EventStream> {
        if after < lock(&self.log).start() || !self.is_open() {
            return None;
        }
        let source: Arc<dyn EventSource> = self.clone();
        Some(follow(
            source,
            self.subscribe.clone(),
            prefix.to_string(),
            after,
        ))
    }

    /// Drops the events at or before `revision` (the store compacted them).
    pub fn trim_through(&self, revision: Revision) {
        lock(&self.log).trim_through(revision);
    }
}

#[async_trait]
impl EventSource for WatchCache {
    async fn events_after(&self, prefix: &str, after: Revision) -> Result<Batch, StoreError> {
        let log = lock(&self.log);
        log.read(prefix, after).ok_or(StoreError::Compacted {
            compacted: log.start(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{block_on as block, Blob, KeyValue};
    use futures::StreamExt;

    fn put(key: &str, revision: Revision) -> Event {
        Event::Put {
            kv: KeyValue {
                key: key.to_string(),
                value: Blob::from(b"v".as_slice()),
                create_revision: revision,
                mod_revision: revision,
            },
            prev: None,
        }
    }

    /// The revisions of the next `n` events of `stream`.
    async fn next_revisions(stream: &mut EventStream, n: usize) -> Vec<Revision> {
        let events: Vec<Event> = stream
            .by_ref()
            .take(n)
            .map(|e| e.expect("event"))
            .collect()
            .await;
        events.iter().map(Event::revision).collect()
    }

    #[test]
    fn followers_read_what_is_published_under_their_prefix() {
        block(async {
            let cache = WatchCache::new(10);
            let mut all = cache.follow("/p/", 10).expect("covered");
            let mut one = cache.follow("/p/a/", 10).expect("covered");
            cache.publish(vec![put("/p/a/x", 11), put("/p/b/y", 12)]);
            cache.publish(vec![put("/p/a/z", 13)]);
            assert_eq!(next_revisions(&mut all, 3).await, vec![11, 12, 13]);
            assert_eq!(next_revisions(&mut one, 2).await, vec![11, 13]);
            cache.close();
            assert!(
                all.next().await.is_none(),
                "a closed cache ends its followers"
            );
            assert!(cache.follow("/p/", 13).is_none(), "nor takes new ones");
        });
    }

    #[test]
    fn revisions_before_the_cache_or_its_compaction_are_not_followed() {
        block(async {
            let cache = WatchCache::new(10);
            assert!(cache.follow("/p/", 9).is_none());
            let mut behind = cache.follow("/p/", 10).expect("covered");
            cache.publish(vec![put("/p/a", 11), put("/p/a", 12), put("/p/a", 13)]);
            cache.trim_through(12);
            assert!(cache.follow("/p/", 11).is_none());
            assert!(cache.follow("/p/", 12).is_some());
            assert_eq!(
                behind.next().await.map(|e| e.err()),
                Some(Some(StoreError::Compacted { compacted: 12 }))
            );
            assert!(behind.next().await.is_none());
        });
    }
}

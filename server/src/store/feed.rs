//! How the in-process backends (memory, SQLite) serve watches.
//!
//! A watcher is not sent events; it keeps only the revision it has reached
//! and reads the events after it from the backend's own history, in bounded
//! batches, waking when a write publishes a newer revision on a
//! `tokio::sync::watch` channel — one number, however many watchers there
//! are. A watcher that falls behind therefore holds no memory of its own: it
//! falls behind only the history the backend keeps, and then its stream
//! yields [`StoreError::Compacted`] (410 at the API) and ends, as a watch
//! from a compacted revision does. The backlog of a watch from an old
//! revision is read the same way, a batch at a time.
//!
//! The alternative, a broadcast channel of events, was dropped because
//! memory is what matters here: tokio's broadcast ring keeps the last N
//! events alive until they are overwritten, watched or not, so a ring of
//! 1024 events of 3 MiB objects (each event carries the value and the one
//! it replaced) could pin 6 GiB that no history bound accounts for.
//!
//! [`EventLog`] is the in-memory run of recent events both backends read
//! from: the memory store's whole event history (trimmed by its
//! compaction), SQLite's bounded buffer of recent writes (older ones are
//! read back from the file).

use std::collections::VecDeque;
use std::sync::Arc;

use async_trait::async_trait;
use futures::StreamExt;
use tokio::sync::watch;

use super::blob::Forgotten;
use super::{Event, EventStream, Revision, StoreError};

/// The most events one read hands a watcher.
pub(crate) const BATCH_EVENTS: usize = 256;
/// The most bytes (as [`event_bytes`] counts them) one read hands a
/// watcher, unless a single event is larger.
pub(crate) const BATCH_BYTES: usize = 4 * 1024 * 1024;
/// The newest events whose values keep their decoded form alive (see
/// `store::blob`): enough for a value to be read back by its writer, the
/// job controller and every watcher while it is new.
pub(crate) const HOT_EVENTS: usize = 256;
/// The most bytes (as [`event_bytes`] counts them, JSON) of those events:
/// a decoded object is several times its JSON, so large objects keep
/// theirs for fewer events.
pub(crate) const HOT_BYTES: usize = 8 * 1024 * 1024;
/// The most events one read examines, matching or not, so that a watcher
/// of a quiet prefix holds a backend's lock only briefly.
const SCAN_EVENTS: usize = 4096;

/// What an event costs in memory, as history accounting counts it: the
/// values it carries, its key, and a fixed overhead.
pub(crate) fn event_bytes(event: &Event) -> usize {
    const OVERHEAD: usize = 128;
    match event {
        Event::Put { kv, prev } => {
            kv.value.len() + kv.key.len() + prev.as_ref().map_or(0, |p| p.value.len()) + OVERHEAD
        }
        Event::Delete { prev, .. } => prev.value.len() + prev.key.len() + OVERHEAD,
    }
}

/// Lets the values an event carries forget their decoded forms.
fn forget_decoded(event: &mut Event, released: &mut Released) {
    match event {
        Event::Put { kv, prev } => {
            released.decoded.push(kv.value.forget_decoded());
            if let Some(prev) = prev {
                released.decoded.push(prev.value.forget_decoded());
            }
        }
        Event::Delete { prev, .. } => released.decoded.push(prev.value.forget_decoded()),
    }
}

/// What an [`EventLog`] let go of: the events it dropped and the decoded
/// forms it forgot. A decoded job is a tree of allocations that takes far
/// longer to free than the push that let go of it, so a caller holding a
/// lock, or with writers waiting for their answers, frees these later
/// ([`clear`](Self::clear), or dropping them).
#[derive(Debug, Default)]
pub(crate) struct Released {
    events: Vec<Event>,
    decoded: Vec<Forgotten>,
}

impl Released {
    /// Frees what was let go of, keeping the room for the next time.
    pub fn clear(&mut self) {
        self.events.clear();
        self.decoded.clear();
    }
}

/// Some events under a prefix, and how far the read got.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    /// The events, oldest first.
    pub events: Vec<Event>,
    /// Every event up to this revision was examined: the next read starts
    /// after it.
    pub through: Revision,
}

/// Where a watcher reads its events.
#[async_trait]
pub(crate) trait EventSource: Send + Sync + 'static {
    /// The events under `prefix` after `after`, oldest first, a batch at a
    /// time; [`StoreError::Compacted`] when `after` is older than the
    /// history the backend keeps.
    async fn events_after(&self, prefix: &str, after: Revision) -> Result<Batch, StoreError>;
}

/// The events under `prefix` after `after`, read from `source` whenever
/// `written` announces a newer revision. A backend publishes a revision on
/// `written` only once `source` holds its event. The stream ends after a
/// failed read (with the error as its last item) or when the backend is
/// dropped.
pub(crate) fn follow(
    source: Arc<dyn EventSource>,
    mut written: watch::Receiver<Revision>,
    prefix: String,
    after: Revision,
) -> EventStream {
    async_stream::stream! {
        let mut cursor = after;
        loop {
            // Marked seen before reading: a write after this point wakes
            // the wait below.
            let newest = *written.borrow_and_update();
            if newest > cursor {
                match source.events_after(&prefix, cursor).await {
                    Err(error) => {
                        yield Err(error);
                        break;
                    }
                    Ok(batch) => {
                        let progressed = batch.through > cursor;
                        cursor = cursor.max(batch.through);
                        for event in batch.events {
                            yield Ok(event);
                        }
                        if progressed {
                            continue;
                        }
                    }
                }
            }
            if written.changed().await.is_err() {
                break;
            }
        }
    }
    .boxed()
}

/// A run of consecutive recent events in memory: every event after
/// [`start`](Self::start) up to the newest one pushed, bounded in count and
/// in bytes (older events are dropped from the front when a bound is
/// passed, and `start` moves past them).
#[derive(Debug)]
pub(crate) struct EventLog {
    events: VecDeque<(Event, usize)>,
    start: Revision,
    newest: Revision,
    bytes: usize,
    max_events: usize,
    max_bytes: usize,
    /// How many of the newest events keep their values' decoded forms.
    hot: usize,
    /// Their bytes, as [`event_bytes`] counts them.
    hot_bytes: usize,
}

impl EventLog {
    /// An empty log of the events after `start`.
    pub fn new(start: Revision, max_events: usize, max_bytes: usize) -> Self {
        EventLog {
            events: VecDeque::new(),
            start,
            newest: start,
            bytes: 0,
            max_events,
            max_bytes,
            hot: 0,
            hot_bytes: 0,
        }
    }

    /// Every event after this revision is in the log.
    #[cfg(any(test, feature = "etcd"))]
    pub fn start(&self) -> Revision {
        self.start
    }

    /// The bytes of the events held, as [`event_bytes`] counts them.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Appends the newest event, then drops the oldest while a bound is
    /// passed, and lets the values of events older than the hot ones
    /// forget their decoded forms.
    #[cfg(any(test, feature = "etcd"))]
    pub fn push(&mut self, event: Event) {
        self.push_releasing(event, &mut Released::default());
    }

    /// [`push`](Self::push), handing what the log lets go of to
    /// `released` rather than freeing it.
    pub fn push_releasing(&mut self, event: Event, released: &mut Released) {
        let size = event_bytes(&event);
        self.newest = self.newest.max(event.revision());
        self.bytes += size;
        self.events.push_back((event, size));
        self.hot += 1;
        self.hot_bytes += size;
        while self.events.len() > self.max_events || self.bytes > self.max_bytes {
            released.events.extend(self.pop_front());
        }
        while self.hot > 1 && (self.hot > HOT_EVENTS || self.hot_bytes > HOT_BYTES) {
            let index = self.events.len() - self.hot;
            if let Some((event, size)) = self.events.get_mut(index) {
                forget_decoded(event, released);
                self.hot_bytes -= *size;
            }
            self.hot -= 1;
        }
    }

    /// Drops the events at or before `revision`.
    pub fn trim_through(&mut self, revision: Revision) {
        while self
            .events
            .front()
            .is_some_and(|(e, _)| e.revision() <= revision)
        {
            drop(self.pop_front());
        }
        self.start = self.start.max(revision);
    }

    fn pop_front(&mut self) -> Option<Event> {
        if self.hot > self.events.len().saturating_sub(1) {
            // The oldest event is a hot one.
            if let Some((_, size)) = self.events.front() {
                self.hot_bytes -= size;
            }
            self.hot = self.hot.saturating_sub(1);
        }
        let (event, size) = self.events.pop_front()?;
        self.bytes -= size;
        self.start = self.start.max(event.revision());
        Some(event)
    }

    /// The next batch of events under `prefix` after `after`; `None` when
    /// some of them are no longer (or never were) in the log.
    pub fn read(&self, prefix: &str, after: Revision) -> Option<Batch> {
        if after < self.start {
            return None;
        }
        let first = self.events.partition_point(|(e, _)| e.revision() <= after);
        let mut batch = Batch {
            events: Vec::new(),
            through: self.newest.max(after),
        };
        let mut bytes = 0;
        for (scanned, (event, size)) in self.events.range(first..).enumerate() {
            let full = batch.events.len() >= BATCH_EVENTS || bytes >= BATCH_BYTES;
            if full || scanned >= SCAN_EVENTS {
                batch.through = event.revision() - 1;
                break;
            }
            if event.key().starts_with(prefix) {
                bytes += size;
                batch.events.push(event.clone());
            }
        }
        Some(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::blob::WeakSlot;
    use crate::store::{Blob, KeyValue};

    fn put(key: &str, revision: Revision, bytes: usize) -> Event {
        Event::Put {
            kv: KeyValue {
                key: key.to_string(),
                value: vec![b'x'; bytes].into(),
                create_revision: revision,
                mod_revision: revision,
            },
            prev: None,
        }
    }

    /// A put at revision 1 whose value holds `decoded`, and a weak handle
    /// on its slot.
    fn put_decoded(decoded: u32) -> (Event, WeakSlot) {
        let event = put("/a", 1, 10);
        let Event::Put { kv, .. } = &event else {
            unreachable!("a put")
        };
        kv.value.share(Arc::new(decoded));
        let weak = kv.value.downgrade();
        (event, weak)
    }

    /// Whether the slot `weak` reaches still holds a decoded form.
    fn held(weak: &WeakSlot) -> bool {
        Blob::with_weak_slot(Arc::from(&b"x"[..]), weak)
            .decoded::<u32>()
            .is_some()
    }

    #[test]
    fn the_log_drops_its_oldest_events_to_stay_within_its_bounds() {
        let mut log = EventLog::new(0, 3, 10_000);
        for revision in 1..=5 {
            log.push(put("/a", revision, 10));
        }
        assert_eq!(log.start(), 2);
        assert!(log.read("/", 1).is_none());
        let batch = log.read("/", 2).expect("held");
        assert_eq!(batch.events.len(), 3);
        assert_eq!(batch.through, 5);

        let mut log = EventLog::new(0, 100, 3 * event_bytes(&put("/a", 1, 1000)));
        for revision in 1..=5 {
            log.push(put("/a", revision, 1000));
        }
        assert_eq!(log.start(), 2);
        assert!(log.bytes() <= 3 * event_bytes(&put("/a", 1, 1000)));
    }

    #[test]
    fn only_the_newest_events_keep_their_decoded_forms() {
        let mut log = EventLog::new(0, usize::MAX, usize::MAX);
        let (first, weak) = put_decoded(1);
        log.push(first);
        assert!(held(&weak), "the newest event holds it");
        for revision in 2..=HOT_EVENTS as u64 {
            log.push(put("/a", revision, 10));
        }
        assert!(held(&weak), "still among the hot ones");
        log.push(put("/a", HOT_EVENTS as u64 + 1, 10));
        assert!(!held(&weak), "forgotten past them");
        assert_eq!(log.hot, HOT_EVENTS);

        let mut log = EventLog::new(0, 3, usize::MAX);
        for revision in 1..=10 {
            log.push(put("/a", revision, 10));
        }
        assert_eq!(log.hot, 3, "dropped events are no longer hot");
        assert_eq!(log.hot_bytes, 3 * event_bytes(&put("/a", 1, 10)));
    }

    #[test]
    fn what_a_push_lets_go_of_lives_until_the_caller_frees_it() {
        let mut log = EventLog::new(0, 2, usize::MAX);
        let mut released = Released::default();
        let (first, weak) = put_decoded(1);
        log.push_releasing(first, &mut released);
        for revision in 2..=HOT_EVENTS as u64 + 1 {
            log.push_releasing(put("/a", revision, 10), &mut released);
        }
        assert_eq!(
            log.start(),
            HOT_EVENTS as u64 - 1,
            "the oldest were dropped"
        );
        assert!(log.read("/", 1).is_none());
        assert!(
            held(&weak),
            "a dropped event's decoded form lives on in what was released"
        );
        assert_eq!(released.events.len(), HOT_EVENTS - 1);
        released.clear();
        assert!(!held(&weak), "freed by clear");

        let mut log = EventLog::new(0, usize::MAX, usize::MAX);
        let (first, weak) = put_decoded(2);
        log.push_releasing(first, &mut released);
        for revision in 2..=HOT_EVENTS as u64 + 1 {
            log.push_releasing(put("/a", revision, 10), &mut released);
        }
        assert_eq!(
            released.decoded.len(),
            1,
            "the first event left the hot end"
        );
        assert!(
            held(&weak),
            "a forgotten decoded form lives on in what was released"
        );
        drop(released);
        assert!(!held(&weak), "freed by a drop");
    }

    #[test]
    fn reads_are_batched_and_filtered_by_prefix() {
        let mut log = EventLog::new(0, usize::MAX, usize::MAX);
        for revision in 1..=(BATCH_EVENTS as u64 * 2) {
            let key = if revision % 2 == 0 { "/p/a" } else { "/q/a" };
            log.push(put(key, revision, 1));
        }
        let first = log.read("/p/", 0).expect("held");
        assert_eq!(first.events.len(), BATCH_EVENTS);
        assert!(first.events.iter().all(|e| e.key() == "/p/a"));
        let second = log.read("/p/", first.through).expect("held");
        assert_eq!(
            first.events.len() + second.events.len(),
            BATCH_EVENTS,
            "half the events are under the prefix"
        );
        assert_eq!(second.through, BATCH_EVENTS as u64 * 2);
        log.trim_through(10);
        assert!(log.read("/p/", 9).is_none());
        assert_eq!(log.read("/p/", 10).expect("held").events[0].revision(), 12);
    }
}

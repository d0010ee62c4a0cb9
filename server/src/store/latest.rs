//! The newest version of recently written keys, for a backend whose reads
//! otherwise go to its database (SQLite).
//!
//! A replace reads its object (`get`) just before writing it. From SQLite
//! that read is a query on a reader connection, and its value arrives as
//! fresh bytes, so the registry decodes it again although it decoded (and
//! shared) that very version when it wrote it. This map keeps, for keys
//! written recently, the newest version's bytes and a weak reference to
//! the slot of its decoded form (`store::blob`), so a `get` of such a key
//! is a map lookup and usually finds the object decoded.
//!
//! Correctness rests on one writer: the writer records each batch's
//! versions after the batch committed and before any of its writes is
//! answered or published, so the map never holds a version older than an
//! acknowledged one. A key not in the map is read from the database. The
//! map forgets everything when it grows past [`MAX_KEYS`], which costs
//! only later reads going to the database.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::blob::WeakSlot;
use super::{Blob, Event, KeyValue, Revision};

/// The most keys remembered.
pub(crate) const MAX_KEYS: usize = 16 * 1024;

/// The newest versions of recently written keys.
#[derive(Debug, Default)]
pub(crate) struct Latest {
    keys: Mutex<HashMap<String, Version>>,
}

#[derive(Debug)]
struct Version {
    bytes: Arc<[u8]>,
    decoded: WeakSlot,
    create_revision: Revision,
    mod_revision: Revision,
}

impl Latest {
    /// The key's newest version if it was written recently; `None` when
    /// the database must say (the key may or may not exist).
    pub(crate) fn get(&self, key: &str) -> Option<KeyValue> {
        let keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        let version = keys.get(key)?;
        Some(KeyValue {
            key: key.to_string(),
            value: Blob::with_weak_slot(Arc::clone(&version.bytes), &version.decoded),
            create_revision: version.create_revision,
            mod_revision: version.mod_revision,
        })
    }

    /// Takes in a committed batch's events, in revision order.
    pub(crate) fn record(&self, events: &[Event]) {
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        for event in events {
            match event {
                Event::Put { kv, .. } => {
                    if keys.len() >= MAX_KEYS && !keys.contains_key(&kv.key) {
                        keys.clear();
                    }
                    let version = Version {
                        bytes: Arc::clone(kv.value.bytes()),
                        decoded: kv.value.downgrade(),
                        create_revision: kv.create_revision,
                        mod_revision: kv.mod_revision,
                    };
                    keys.insert(kv.key.clone(), version);
                }
                Event::Delete { prev, .. } => {
                    keys.remove(&prev.key);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: &str, revision: Revision, bytes: &[u8]) -> Event {
        Event::Put {
            kv: KeyValue {
                key: key.to_string(),
                value: Blob::new(bytes.to_vec().into()),
                create_revision: 1,
                mod_revision: revision,
            },
            prev: None,
        }
    }

    #[test]
    fn the_newest_write_wins_and_a_delete_forgets() {
        let latest = Latest::default();
        assert!(latest.get("/a").is_none());
        latest.record(&[put("/a", 2, b"one"), put("/a", 3, b"two")]);
        let kv = latest.get("/a").expect("recorded");
        assert_eq!((kv.mod_revision, &kv.value[..]), (3, &b"two"[..]));
        let deleted = Event::Delete {
            prev: kv,
            revision: 4,
        };
        latest.record(&[deleted]);
        assert!(latest.get("/a").is_none());
    }

    #[test]
    fn the_decoded_form_is_shared_while_someone_holds_it() {
        let latest = Latest::default();
        let event = put("/a", 2, b"{}");
        latest.record(std::slice::from_ref(&event));
        let Event::Put { kv, .. } = &event else {
            unreachable!()
        };
        kv.value.share(Arc::new(7_u32));
        let read = latest.get("/a").expect("recorded");
        assert_eq!(read.value.decoded::<u32>().as_deref(), Some(&7));
        drop((event, read));
        assert!(latest
            .get("/a")
            .expect("recorded")
            .value
            .decoded::<u32>()
            .is_none());
    }
}

//! A stored value: its bytes, and a slot for what a reader decoded them
//! into, shared by every copy of the value.
//!
//! A write's value reaches many readers: the writer's own answer, the
//! next `get` of the key, the job controller's watch, every other watcher.
//! Each used to decode the same bytes again. A [`Blob`] carries, beside
//! its bytes, one slot that the first reader fills with what it decoded
//! (the registry has the object it writes put there by the store — a
//! [`Prepare`] — before the write is published, so usually nobody decodes
//! at all; when a watcher's task ran first, the SQLite store's watchers
//! decoded most writes); every copy of the blob — the backend's current
//! version, the event in its history, the key-values it hands out — sees
//! the same slot. The store does not know what is in the slot: the
//! registry owns its type, and the store only bounds how long it lives.
//!
//! **How long a decoded value lives.** Decoded objects are several times
//! larger than their JSON, so keeping one per stored key would multiply
//! the memory the store needs. Only recent writes keep theirs: the
//! in-process backends' event history holds the slots of its newest events
//! ([`HOT_EVENTS`](super::feed::HOT_EVENTS), at most
//! [`HOT_BYTES`](super::feed::HOT_BYTES) of their JSON) and forgets the
//! older ones; the memory store's versions hold their slot only weakly
//! ([`Blob::downgrade`]), so a key written long ago is decoded again when it
//! is read, as before. A blob without a slot ([`Blob::bare`]) is decoded by
//! every reader.

use std::any::Any;
use std::fmt;
use std::ops::Deref;
use std::sync::{Arc, OnceLock, Weak};

/// What a slot holds: the reader's decoded form, of the reader's type.
pub type Decoded = Arc<dyn Any + Send + Sync>;

/// A writer's decoded form of the version it writes, made from the version
/// (its key, value and revision) by the store before the write is
/// published, so that no watcher decodes the value first (see
/// [`Store::update_prepared`](super::Store::update_prepared)).
pub type Prepare = Box<dyn FnOnce(&super::KeyValue) -> Option<Decoded> + Send>;

/// The shared slot of a blob.
type Slot = OnceLock<Decoded>;

/// A stored value and the shared slot for its decoded form. Equality,
/// ordering of bytes and `Debug` are those of the bytes.
#[derive(Clone)]
pub struct Blob {
    bytes: Arc<[u8]>,
    slot: Option<Arc<Slot>>,
}

impl Blob {
    /// A blob with an empty slot.
    pub fn new(bytes: Arc<[u8]>) -> Self {
        Blob {
            bytes,
            slot: Some(Arc::default()),
        }
    }

    /// A blob without a slot: what is decoded from it is not shared.
    pub fn bare(bytes: Arc<[u8]>) -> Self {
        Blob { bytes, slot: None }
    }

    /// The bytes.
    pub fn bytes(&self) -> &Arc<[u8]> {
        &self.bytes
    }

    /// What a reader of type `T` decoded these bytes into, if one has.
    pub fn decoded<T: Any + Send + Sync>(&self) -> Option<Arc<T>> {
        let decoded = self.slot.as_ref()?.get()?;
        Arc::clone(decoded).downcast::<T>().ok()
    }

    /// Offers `value` as the decoded form of these bytes and returns the
    /// one the slot holds: `value`, or what another reader put there first
    /// (both read the same bytes). Without a slot, `value` itself.
    pub fn share<T: Any + Send + Sync>(&self, value: Arc<T>) -> Arc<T> {
        let Some(slot) = &self.slot else {
            return value;
        };
        let offered: Decoded = value.clone();
        let held = slot.get_or_init(|| offered);
        Arc::clone(held).downcast::<T>().unwrap_or(value)
    }

    /// Fills the empty slot of `kv`'s value with what `prepare` makes of
    /// `kv`.
    pub fn prepare(kv: &super::KeyValue, prepare: Prepare) {
        if let Some(slot) = kv.value.slot.as_ref().filter(|slot| slot.get().is_none()) {
            if let Some(decoded) = prepare(kv) {
                let _ = slot.set(decoded);
            }
        }
    }

    /// The same bytes, no longer keeping the decoded form alive.
    /// Returns the slot let go of: dropping it frees the decoded form
    /// unless another copy still holds it.
    pub fn forget_decoded(&mut self) -> Forgotten {
        Forgotten {
            _slot: self.slot.take(),
        }
    }

    /// A weak handle on the slot, for a holder that should see the decoded
    /// form while others keep it alive, without keeping it alive itself.
    pub fn downgrade(&self) -> WeakSlot {
        WeakSlot(self.slot.as_ref().map_or_else(Weak::new, Arc::downgrade))
    }

    /// A blob of `bytes` with the slot `weak` still reaches, if any.
    pub fn with_weak_slot(bytes: Arc<[u8]>, weak: &WeakSlot) -> Self {
        Blob {
            bytes,
            slot: weak.0.upgrade(),
        }
    }
}

/// A slot a blob let go of (see [`Blob::forget_decoded`]).
#[derive(Debug)]
pub struct Forgotten {
    _slot: Option<Arc<Slot>>,
}

/// A weak reference to a blob's slot (see [`Blob::downgrade`]).
#[derive(Clone, Debug, Default)]
pub struct WeakSlot(Weak<Slot>);

impl Deref for Blob {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.bytes
    }
}

impl AsRef<[u8]> for Blob {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

impl From<Vec<u8>> for Blob {
    fn from(bytes: Vec<u8>) -> Self {
        Blob::new(bytes.into())
    }
}

impl From<&[u8]> for Blob {
    fn from(bytes: &[u8]) -> Self {
        Blob::new(bytes.into())
    }
}

impl From<Arc<[u8]>> for Blob {
    fn from(bytes: Arc<[u8]>) -> Self {
        Blob::new(bytes)
    }
}

impl PartialEq for Blob {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}

impl Eq for Blob {}

impl fmt::Debug for Blob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.bytes, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_of_a_blob_share_what_the_first_reader_decoded() {
        let blob = Blob::from(b"42".to_vec());
        let copy = blob.clone();
        assert!(copy.decoded::<u32>().is_none());
        let first = blob.share(Arc::new(42u32));
        let second = copy.share(Arc::new(7u32));
        assert!(Arc::ptr_eq(&first, &second), "the first offer wins");
        assert_eq!(copy.decoded::<u32>().as_deref(), Some(&42));
        assert!(copy.decoded::<String>().is_none(), "another type is not it");
    }

    #[test]
    fn a_weak_slot_sees_the_decoded_form_only_while_a_blob_holds_it() {
        let mut blob = Blob::from(b"1".to_vec());
        blob.share(Arc::new(1u8));
        let weak = blob.downgrade();
        let again = Blob::with_weak_slot(blob.bytes().clone(), &weak);
        assert_eq!(again.decoded::<u8>().as_deref(), Some(&1));
        drop(again);
        drop(blob.forget_decoded());
        assert!(blob.decoded::<u8>().is_none());
        let cold = Blob::with_weak_slot(blob.bytes().clone(), &weak);
        assert!(
            cold.decoded::<u8>().is_none(),
            "nobody holds the slot any more"
        );
        assert_eq!(
            cold.share(Arc::new(2u8)).as_ref(),
            &2,
            "a bare blob shares nothing"
        );
        assert_eq!(&*cold, b"1");
    }
}

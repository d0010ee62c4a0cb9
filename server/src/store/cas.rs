//! Compare-and-swap writes, written once for every backend.
//!
//! `create`, `update` and `delete` are each the same three steps: read the
//! key's current version, compare it with what the caller expects (absent
//! for a create, a `mod_revision` for an update or a delete), and append
//! one new revision — or fail with the error the comparison gives. The
//! idea is kine's "log-structured" layer (k3s-io/kine): the writes are
//! defined once over a log that can only read a key's newest version and
//! append, and each backend supplies just that log.
//!
//! What is shared, and by whom:
//!
//! * [`Precondition`] — what a write expects and the [`StoreError`] a key
//!   that is not as expected gives (`AlreadyExists`, `NotFound`,
//!   `Conflict { current }`) — by every backend, etcd included.
//! * [`create`], [`update`] and [`delete`] — the read, the check and the
//!   append, and what each answers — by the backends that run in this
//!   process (memory, SQLite) through [`RevisionLog`]. They hold one lock
//!   from the read to the append (the caller passes the log it locked), so
//!   two writes from one revision cannot both pass the check.
//!
//! etcd cannot use the second part: its read and append would be two
//! requests, and another replica may write in between. It sends the
//! comparison to etcd inside a transaction, where etcd does it atomically,
//! has the transaction read the key when the comparison fails, and gives
//! what it read to [`Precondition::check`]; so the errors are the same
//! ones, decided by the same code.

use super::{Blob, Event, KeyValue, Prepare, Revision, StoreError};

/// What a compare-and-swap write expects of its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Precondition {
    /// The key does not exist (a create).
    Absent,
    /// The key exists and was last written at this revision (an update or
    /// a delete).
    ModRevision(Revision),
}

impl Precondition {
    /// Whether a key last written at `current` (`None`: absent) is as
    /// expected; otherwise the error the write fails with.
    pub(crate) fn check(self, current: Option<Revision>) -> Result<(), StoreError> {
        match (self, current) {
            (Precondition::Absent, None) => Ok(()),
            (Precondition::Absent, Some(_)) => Err(StoreError::AlreadyExists),
            (Precondition::ModRevision(_), None) => Err(StoreError::NotFound),
            (Precondition::ModRevision(expected), Some(current)) if current == expected => Ok(()),
            (Precondition::ModRevision(_), Some(current)) => Err(StoreError::Conflict { current }),
        }
    }
}

/// One write that passed its check, for a [`RevisionLog`] to append.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Change<'a> {
    /// Creates `key` with `value`.
    Create { key: &'a str, value: &'a Blob },
    /// Replaces `prev`, the key's current version, with `value`.
    Update { prev: &'a KeyValue, value: &'a Blob },
    /// Deletes `prev`, the key's current version.
    Delete { prev: &'a KeyValue },
}

impl Change<'_> {
    /// The key written.
    pub(crate) fn key(&self) -> &str {
        match self {
            Change::Create { key, .. } => key,
            Change::Update { prev, .. } | Change::Delete { prev } => &prev.key,
        }
    }

    /// The new value; `None` for a delete.
    pub(crate) fn value(&self) -> Option<&Blob> {
        match self {
            Change::Create { value, .. } | Change::Update { value, .. } => Some(value),
            Change::Delete { .. } => None,
        }
    }

    /// The version the write replaces; `None` for a create.
    pub(crate) fn prev(&self) -> Option<&KeyValue> {
        match self {
            Change::Create { .. } => None,
            Change::Update { prev, .. } | Change::Delete { prev } => Some(prev),
        }
    }

    /// The revision that started the key's current life, for the write at
    /// `revision`.
    pub(crate) fn create_revision(&self, revision: Revision) -> Revision {
        self.prev().map_or(revision, |prev| prev.create_revision)
    }

    /// What the write at `revision` is to watchers.
    pub(crate) fn event(&self, revision: Revision) -> Event {
        match self {
            Change::Create { .. } | Change::Update { .. } => Event::Put {
                kv: self.written(revision),
                prev: self.prev().cloned(),
            },
            Change::Delete { prev } => Event::Delete {
                prev: (*prev).clone(),
                revision,
            },
        }
    }

    /// The key's version after the write at `revision` (for a delete, the
    /// deleted version).
    fn written(&self, revision: Revision) -> KeyValue {
        match self {
            Change::Create { key, value } => KeyValue {
                key: key.to_string(),
                value: (*value).clone(),
                create_revision: revision,
                mod_revision: revision,
            },
            Change::Update { prev, value } => KeyValue {
                key: prev.key.clone(),
                value: (*value).clone(),
                create_revision: prev.create_revision,
                mod_revision: revision,
            },
            Change::Delete { prev } => (*prev).clone(),
        }
    }
}

/// A backend's revision log, locked by the caller for one write: a key's
/// newest version, and the append of the next revision.
pub(crate) trait RevisionLog {
    /// The key's newest version, if it exists.
    fn latest(&self, key: &str) -> Result<Option<KeyValue>, StoreError>;

    /// The revision the next append takes.
    fn next_revision(&self) -> Revision;

    /// Appends `change` as the next revision, makes its event readable by
    /// watchers, and returns that revision. Writes nothing when it fails.
    fn append(&mut self, change: Change<'_>) -> Result<Revision, StoreError>;
}

/// The key's current version, if the key meets `precondition`.
fn current<L: RevisionLog + ?Sized>(
    log: &L,
    key: &str,
    precondition: Precondition,
) -> Result<Option<KeyValue>, StoreError> {
    let current = log.latest(key)?;
    precondition.check(current.as_ref().map(|kv| kv.mod_revision))?;
    Ok(current)
}

/// The key's current version, if it was last written at `expected`.
fn version_at<L: RevisionLog + ?Sized>(
    log: &L,
    key: &str,
    expected: Revision,
) -> Result<KeyValue, StoreError> {
    current(log, key, Precondition::ModRevision(expected))?.ok_or(StoreError::NotFound)
}

/// [`Store::create`](super::Store::create) on `log`.
/// `prepare`, if any, fills the value's slot before the append publishes it.
pub(crate) fn create<L: RevisionLog + ?Sized>(
    log: &mut L,
    key: &str,
    value: Vec<u8>,
    prepare: Option<Prepare>,
) -> Result<KeyValue, StoreError> {
    current(log, key, Precondition::Absent)?;
    let value = Blob::from(value);
    let change = Change::Create { key, value: &value };
    prepared(log, change, prepare);
    Ok(change.written(log.append(change)?))
}

/// Fills the slot of `change`'s value with what `prepare` makes of the
/// version it is about to write.
fn prepared<L: RevisionLog + ?Sized>(log: &L, change: Change<'_>, prepare: Option<Prepare>) {
    if let Some(prepare) = prepare {
        Blob::prepare(&change.written(log.next_revision()), prepare);
    }
}

/// [`Store::update`](super::Store::update) on `log`.
pub(crate) fn update<L: RevisionLog + ?Sized>(
    log: &mut L,
    key: &str,
    expected: Revision,
    value: Vec<u8>,
    prepare: Option<Prepare>,
) -> Result<KeyValue, StoreError> {
    let prev = version_at(log, key, expected)?;
    let value = Blob::from(value);
    let change = Change::Update {
        prev: &prev,
        value: &value,
    };
    prepared(log, change, prepare);
    Ok(change.written(log.append(change)?))
}

/// [`Store::delete`](super::Store::delete) on `log`.
pub(crate) fn delete<L: RevisionLog + ?Sized>(
    log: &mut L,
    key: &str,
    expected: Revision,
) -> Result<(KeyValue, Revision), StoreError> {
    let prev = version_at(log, key, expected)?;
    let revision = log.append(Change::Delete { prev: &prev })?;
    Ok((prev, revision))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_precondition_fails_with_the_error_of_what_the_key_is() {
        use Precondition::{Absent, ModRevision};
        assert_eq!(Absent.check(None), Ok(()));
        assert_eq!(Absent.check(Some(3)), Err(StoreError::AlreadyExists));
        assert_eq!(ModRevision(3).check(Some(3)), Ok(()));
        assert_eq!(ModRevision(3).check(None), Err(StoreError::NotFound));
        assert_eq!(
            ModRevision(3).check(Some(5)),
            Err(StoreError::Conflict { current: 5 })
        );
    }

    /// A log that keeps only each key's newest version.
    #[derive(Default)]
    struct Latest {
        revision: Revision,
        keys: std::collections::BTreeMap<String, KeyValue>,
        events: Vec<Event>,
        /// What each appended value held in its slot when appended.
        decoded_when_appended: Vec<Option<String>>,
    }

    impl RevisionLog for Latest {
        fn latest(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
            Ok(self.keys.get(key).cloned())
        }

        fn next_revision(&self) -> Revision {
            self.revision + 1
        }

        fn append(&mut self, change: Change<'_>) -> Result<Revision, StoreError> {
            let decoded = change.value().and_then(|v| v.decoded::<String>());
            self.decoded_when_appended
                .push(decoded.map(|text| text.to_string()));
            self.revision += 1;
            match change {
                Change::Delete { prev } => {
                    self.keys.remove(&prev.key);
                }
                _ => {
                    let kv = change.written(self.revision);
                    self.keys.insert(kv.key.clone(), kv);
                }
            }
            self.events.push(change.event(self.revision));
            Ok(self.revision)
        }
    }

    #[test]
    fn writes_append_what_they_answer_and_failed_ones_append_nothing() {
        let mut log = Latest::default();
        let a = create(&mut log, "/a", b"1".to_vec(), None).expect("create");
        assert_eq!((a.create_revision, a.mod_revision), (1, 1));
        assert_eq!(
            create(&mut log, "/a", b"2".to_vec(), None),
            Err(StoreError::AlreadyExists)
        );
        let b = update(&mut log, "/a", 1, b"2".to_vec(), None).expect("update");
        assert_eq!(
            (b.create_revision, b.mod_revision, &*b.value),
            (1, 2, &b"2"[..])
        );
        assert_eq!(
            update(&mut log, "/a", 1, b"3".to_vec(), None),
            Err(StoreError::Conflict { current: 2 })
        );
        assert_eq!(delete(&mut log, "/b", 1), Err(StoreError::NotFound));
        assert_eq!(delete(&mut log, "/a", 2), Ok((b.clone(), 3)));
        assert_eq!(
            log.events,
            vec![
                Event::Put {
                    kv: a.clone(),
                    prev: None
                },
                Event::Put {
                    kv: b.clone(),
                    prev: Some(a)
                },
                Event::Delete {
                    prev: b,
                    revision: 3
                },
            ]
        );
    }

    #[test]
    fn a_prepared_write_holds_its_decoded_form_before_it_is_appended() {
        fn prepare() -> Option<Prepare> {
            Some(Box::new(|kv: &KeyValue| {
                let text = format!("{}@{}", kv.key, kv.mod_revision);
                Some(std::sync::Arc::new(text) as super::super::Decoded)
            }))
        }
        let mut log = Latest::default();
        create(&mut log, "/a", b"1".to_vec(), prepare()).expect("create");
        let refused = create(&mut log, "/a", b"1".to_vec(), prepare());
        assert_eq!(refused, Err(StoreError::AlreadyExists));
        let b = update(&mut log, "/a", 1, b"2".to_vec(), prepare()).expect("update");
        update(&mut log, "/a", 2, b"3".to_vec(), None).expect("update");
        assert_eq!(
            log.decoded_when_appended,
            [Some("/a@1".to_string()), Some("/a@2".to_string()), None]
        );
        assert_eq!(
            b.value.decoded::<String>().as_deref(),
            Some(&"/a@2".to_string())
        );
    }
}

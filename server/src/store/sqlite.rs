//! The SQLite backend (`--store sqlite`, the default): durable storage in
//! one file, `DIR/mxjob.db`, with the bundled SQLite.
//!
//! # One revision log
//!
//! The database holds a single append-only table, `log`. Every write —
//! create, update or delete — appends one row, and the row's `id` *is* the
//! new revision, so the `resourceVersion` a client sees is a row number. A
//! row records the key, the revision that created the key's current life,
//! the revision of the version it replaced (`prev_revision`, 0 for a
//! create), whether it is a delete, and the value (none for a delete).
//! Everything reads this one log:
//!
//! * `get` is the key's newest row (a delete row means "absent");
//! * a list at revision R is, for each key under the prefix, the newest row
//!   with `id <= R`, unless that row is a delete — so lists at a past
//!   revision and continue tokens (a revision plus the last key) are
//!   consistent snapshots without any extra bookkeeping;
//! * a watch from revision R is the rows with `id > R` in `id` order, then
//!   the live writes (below). Update and delete events carry the version
//!   they replaced, read by joining on `prev_revision`.
//!
//! Revisions start at 1 and never repeat: the table is `AUTOINCREMENT`, so
//! SQLite remembers the highest id ever used even after compaction deleted
//! the newest rows, and it survives restarts with the rest of the file.
//!
//! Keys are stored as BLOBs so that comparisons are plain byte order (the
//! order the memory store and etcd use), and a prefix is the range
//! `prefix <= key < prefix_end` (see `store::keys`). No `LIKE`, so `%` and
//! `_` in a key mean nothing special.
//!
//! `create`, `update` and `delete` are the shared compare-and-swap of
//! `store::cas` over this log: the key's newest row is read and checked,
//! and the new row appended, under the one connection's mutex (below), so
//! no other write comes between the check and the append.
//!
//! # Durability
//!
//! The file is in WAL mode with `synchronous=FULL`. A commit appends the
//! transaction's pages and a commit frame to the write-ahead log and fsyncs
//! the log before `COMMIT` returns, and a write is acknowledged only after
//! its commit returned. After a power loss, SQLite replays the log up to the
//! last complete commit frame, so every acknowledged write is there; a write
//! in flight at the crash is either wholly there or wholly absent. (With
//! `synchronous=NORMAL`, WAL mode syncs only at checkpoints: still
//! consistent, but the last acknowledged writes could vanish.) `fullfsync`
//! is on as well so that macOS flushes the drive's cache too; on Linux
//! `fsync` already does. The data directory is fsynced after the file is
//! created so that the file's name itself survives.
//!
//! The connection uses `locking_mode=EXCLUSIVE`: it holds the file lock for
//! as long as the store is open, so a second server on the same directory
//! fails at startup instead of writing revisions this one does not know of.
//! (It also keeps the WAL index in process memory; there is no `-shm` file
//! while the server runs.)
//!
//! # Concurrency
//!
//! One connection behind a mutex, used only from `spawn_blocking` threads:
//! SQLite serialises writers anyway, one connection makes "the newest
//! revision" a plain field next to it, and no SQLite call ever blocks the
//! async runtime. A write is committed, then added to a buffer of recent
//! events in memory, then its revision is published to watchers, all while
//! the mutex is still held.
//!
//! # Watches
//!
//! A watcher reads the events after the revision it has reached (see
//! `store::feed`): from the buffer of recent events when it holds them all,
//! which is where a watcher that keeps up always reads, and otherwise from
//! the log itself, a batch at a time — a watch from an old revision, or a
//! watcher that fell behind. So a slow watcher is never cut off while its
//! revisions are still in the log, and costs no memory while it is slow.
//! The buffer is bounded by [`WATCH_BUFFER`](super::WATCH_BUFFER) events and by
//! [`SqliteOptions::history_bytes`] (`--history-bytes`); nothing else is
//! kept in memory per revision.
//!
//! # Compaction
//!
//! History is kept for a window, like the Kubernetes API server's watch
//! cache: by default 1000 revisions *and* 5 minutes. A revision is compacted
//! only when it is both more than `window_revisions` behind the newest and
//! older than `window_duration` — so a burst of writes does not cut off a
//! watcher that is a few seconds behind, and an idle server keeps its last
//! 1000 changes. [`SqliteStore::spawn_compactor`] runs this every
//! `compaction_interval`; [`Store::compact`] compacts to a given revision
//! on demand. Compacting to R deletes every row that no read at R or later
//! can reach: versions superseded at or before R, and deletes at or before
//! R. Reads before R then fail with [`StoreError::Compacted`] (410 Gone at
//! the API). Compaction works in batches of revisions, each its own
//! transaction, so writers are never held up for long. Freed pages are
//! reused by later writes; the file does not shrink.
//!
//! # Schema version
//!
//! The file carries `PRAGMA application_id` (so another program's SQLite
//! file is refused rather than written to) and `PRAGMA user_version`, the
//! schema version. A file with a newer schema version than this build
//! knows is refused with a message naming both versions; there is only
//! version 1 so far, so no migrations yet.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, TransactionBehavior};
use tokio::sync::watch;

use super::cas::{self, Change, RevisionLog};
use super::feed::{event_bytes, follow, Batch, EventLog, EventSource, BATCH_BYTES, BATCH_EVENTS};
use super::keys::{list_start, prefix_end, Start};
use super::{
    lock, Durability, Event, EventStream, Kept, KeyValue, ListOptions, ListPage, Revision, Store,
    StoreError, DEFAULT_HISTORY_BYTES, WATCH_BUFFER,
};
use crate::metrics::CommitMetrics;

/// The database file inside the data directory.
pub const FILE_NAME: &str = "mxjob.db";
/// The schema version this build writes and reads.
pub const SCHEMA_VERSION: i64 = 1;
/// `PRAGMA application_id` of an mxjob database ("mxjb").
pub const APPLICATION_ID: i64 = 0x6d78_6a62;
/// The most events one read of the log hands a watcher: as many as one
/// read of the buffer.
const LOG_BATCH: i64 = BATCH_EVENTS as i64;
/// Above every key under the empty prefix: keys are UTF-8, which never
/// contains 0xFF.
const KEYS_END: &[u8] = &[0xff];
/// Revisions compacted per transaction.
const COMPACTION_BATCH: u64 = 10_000;

const SCHEMA: &str = "
CREATE TABLE log (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    key             BLOB    NOT NULL,
    create_revision INTEGER NOT NULL,
    prev_revision   INTEGER NOT NULL,
    deleted         INTEGER NOT NULL CHECK (deleted IN (0, 1)),
    value           BLOB,
    written_at_ms   INTEGER NOT NULL
);
CREATE INDEX log_key_id ON log (key, id);
CREATE TABLE meta (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO meta (name, value) VALUES ('compacted', 0);
";

/// How much history the store keeps, and how often it trims it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SqliteOptions {
    /// Revisions behind the newest that are always kept.
    pub window_revisions: u64,
    /// How long a revision is always kept.
    pub window_duration: Duration,
    /// How often [`SqliteStore::spawn_compactor`] compacts.
    pub compaction_interval: Duration,
    /// The most bytes of recent events kept in memory for watchers (see
    /// the module documentation); history beyond them is read from the file.
    pub history_bytes: usize,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            window_revisions: 1000,
            window_duration: Duration::from_secs(5 * 60),
            compaction_interval: Duration::from_secs(30),
            history_bytes: DEFAULT_HISTORY_BYTES,
        }
    }
}

/// See the module documentation.
pub struct SqliteStore {
    inner: Arc<Mutex<Inner>>,
    feed: Arc<Feed>,
    path: PathBuf,
    options: SqliteOptions,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// The connection and what is cached beside it; only touched under the
/// mutex, on blocking threads.
struct Inner {
    conn: Connection,
    /// The newest revision (the log's highest id ever).
    revision: Revision,
    /// Reads before this revision fail with `Compacted`.
    compacted: Revision,
    /// `written_at_ms` of the newest row; timestamps never go backwards,
    /// so "older than the time window" is a prefix of the log.
    last_written_ms: i64,
    /// Recent events, for watchers (shared with [`Feed`]).
    recent: Arc<Mutex<EventLog>>,
    /// Publishes each new revision to watchers.
    written: watch::Sender<Revision>,
    /// Where commits are counted and timed, once [`SqliteStore::record_commits`] says.
    commits: Option<CommitMetrics>,
}

/// Where watchers read: the recent events, or the log behind them.
struct Feed {
    inner: Arc<Mutex<Inner>>,
    recent: Arc<Mutex<EventLog>>,
}

#[async_trait]
impl EventSource for Feed {
    async fn events_after(&self, prefix: &str, after: Revision) -> Result<Batch, StoreError> {
        if let Some(batch) = lock(&self.recent).read(prefix, after) {
            return Ok(batch);
        }
        let prefix = prefix.to_string();
        run(&self.inner, move |inner| {
            inner.kept().check_watch(after)?;
            inner.events_after(&prefix, after)
        })
        .await
    }
}

/// A row of the log joined with the version it replaced.
struct Row {
    id: Revision,
    create_revision: Revision,
    prev_revision: Revision,
    deleted: bool,
    value: Option<Vec<u8>>,
    prev_value: Option<Vec<u8>>,
}

fn db_error(error: rusqlite::Error) -> StoreError {
    StoreError::Backend(format!("sqlite: {error}"))
}

fn to_sql(revision: Revision) -> Result<i64, StoreError> {
    i64::try_from(revision)
        .map_err(|_| StoreError::Backend(format!("revision {revision} is out of range")))
}

fn from_sql(value: i64) -> Revision {
    // Ids and revisions written by this module are never negative.
    Revision::try_from(value).unwrap_or(0)
}

fn key_string(bytes: Vec<u8>) -> Result<String, StoreError> {
    String::from_utf8(bytes)
        .map_err(|_| StoreError::Backend("a stored key is not valid UTF-8".to_string()))
}

/// The end of the range of keys under `prefix` (exclusive).
fn keys_end(prefix: &str) -> Vec<u8> {
    prefix_end(prefix.as_bytes()).unwrap_or_else(|| KEYS_END.to_vec())
}

fn unix_millis(time: SystemTime) -> i64 {
    let millis = time
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    i64::try_from(millis).unwrap_or(i64::MAX)
}

/// The log under the connection's mutex, which [`cas`] holds from the read
/// of the newest row to the append.
impl RevisionLog for Inner {
    fn latest(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        let row = self
            .conn
            .prepare_cached(
                "SELECT id, create_revision, deleted, value FROM log
                 WHERE key = ?1 ORDER BY id DESC LIMIT 1",
            )
            .and_then(|mut statement| {
                statement
                    .query_row([key.as_bytes()], |r| {
                        Ok((
                            r.get::<_, i64>(0)?,
                            r.get::<_, i64>(1)?,
                            r.get::<_, bool>(2)?,
                            r.get::<_, Option<Vec<u8>>>(3)?,
                        ))
                    })
                    .optional()
            })
            .map_err(db_error)?;
        Ok(match row {
            Some((id, create_revision, false, Some(value))) => Some(KeyValue {
                key: key.to_string(),
                value: value.into(),
                create_revision: from_sql(create_revision),
                mod_revision: from_sql(id),
            }),
            _ => None,
        })
    }

    /// Appends one row in its own transaction and publishes its event once
    /// it is committed.
    fn append(&mut self, change: Change<'_>) -> Result<Revision, StoreError> {
        let revision = self.revision + 1;
        let written_at_ms = unix_millis(SystemTime::now()).max(self.last_written_ms);
        let (id, create_revision, prev_revision) = (
            to_sql(revision)?,
            to_sql(change.create_revision(revision))?,
            to_sql(change.prev().map_or(0, |prev| prev.mod_revision))?,
        );
        let (key, value) = (change.key(), change.value().map(|value| &value[..]));
        let transaction = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db_error)?;
        transaction
            .prepare_cached(
                "INSERT INTO log
                 (id, key, create_revision, prev_revision, deleted, value, written_at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )
            .and_then(|mut statement| {
                statement.execute(params![
                    id,
                    key.as_bytes(),
                    create_revision,
                    prev_revision,
                    value.is_none(),
                    value,
                    written_at_ms,
                ])
            })
            .map_err(db_error)?;
        // Once this returns, the write is on stable storage (see the
        // module documentation); only then is it acknowledged or published.
        let committing = Instant::now();
        transaction.commit().map_err(db_error)?;
        if let Some(commits) = &self.commits {
            commits.committed(1, committing.elapsed());
        }
        self.revision = revision;
        self.last_written_ms = written_at_ms;
        lock(&self.recent).push(change.event(revision));
        // Published once the event is readable (see `feed::follow`).
        self.written.send_replace(revision);
        Ok(revision)
    }
}

impl Inner {
    fn kept(&self) -> Kept {
        Kept {
            compacted: self.compacted,
            newest: self.revision,
        }
    }

    fn list(&self, prefix: &str, options: &ListOptions) -> Result<ListPage, StoreError> {
        let revision = self.kept().list_at(options.revision)?;
        let (lower_op, lower) = match list_start(prefix, options.start_after.as_deref()) {
            Start::At(key) => (">=", key.as_bytes()),
            Start::After(key) => (">", key.as_bytes()),
        };
        let upper = keys_end(prefix);
        let limit = options.limit.filter(|l| *l > 0);
        // One more than asked for tells whether there are more.
        let sql_limit = limit.map_or(-1, |l| i64::try_from(l).unwrap_or(i64::MAX - 1) + 1);
        let sql = format!(
            "SELECT l.key, l.id, l.create_revision, l.value FROM log AS l
             WHERE l.key {lower_op} ?1 AND l.key < ?2 AND l.id <= ?3 AND l.deleted = 0
               AND l.id = (SELECT MAX(n.id) FROM log AS n WHERE n.key = l.key AND n.id <= ?3)
             ORDER BY l.key LIMIT ?4"
        );
        let mut statement = self.conn.prepare_cached(&sql).map_err(db_error)?;
        let rows = statement
            .query_map(params![lower, upper, to_sql(revision)?, sql_limit], |r| {
                Ok((
                    r.get::<_, Vec<u8>>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, Vec<u8>>(3)?,
                ))
            })
            .map_err(db_error)?;
        let mut items = Vec::new();
        for row in rows {
            let (key, id, create_revision, value) = row.map_err(db_error)?;
            items.push(KeyValue {
                key: key_string(key)?,
                value: value.into(),
                create_revision: from_sql(create_revision),
                mod_revision: from_sql(id),
            });
        }
        let more = limit.is_some_and(|l| items.len() > l);
        if let Some(l) = limit {
            items.truncate(l);
        }
        Ok(ListPage {
            items,
            revision,
            more,
        })
    }

    /// The next batch of writes under `prefix` after `after`, in revision
    /// order: at most [`LOG_BATCH`] of them, and no more once they carry
    /// [`BATCH_BYTES`].
    fn events_after(&self, prefix: &str, after: Revision) -> Result<Batch, StoreError> {
        let mut statement = self
            .conn
            .prepare_cached(
                "SELECT l.key, l.id, l.create_revision, l.prev_revision, l.deleted, l.value,
                        p.value
                 FROM log AS l LEFT JOIN log AS p ON p.id = l.prev_revision
                 WHERE l.id > ?1 AND l.key >= ?2 AND l.key < ?3
                 ORDER BY l.id LIMIT ?4",
            )
            .map_err(db_error)?;
        let rows = statement
            .query_map(
                params![
                    to_sql(after)?,
                    prefix.as_bytes(),
                    keys_end(prefix),
                    LOG_BATCH,
                ],
                |r| {
                    Ok((
                        r.get::<_, Vec<u8>>(0)?,
                        Row {
                            id: from_sql(r.get(1)?),
                            create_revision: from_sql(r.get(2)?),
                            prev_revision: from_sql(r.get(3)?),
                            deleted: r.get(4)?,
                            value: r.get(5)?,
                            prev_value: r.get(6)?,
                        },
                    ))
                },
            )
            .map_err(db_error)?;
        let mut events = Vec::new();
        let mut bytes = 0;
        for row in rows {
            let (key, row) = row.map_err(db_error)?;
            let event = to_event(key_string(key)?, row)?;
            bytes += event_bytes(&event);
            events.push(event);
            if bytes >= BATCH_BYTES {
                break;
            }
        }
        // A full batch ends at its last event; a short one read the log to
        // its end.
        let full = bytes >= BATCH_BYTES || events.len() as i64 >= LOG_BATCH;
        let through = match events.last() {
            Some(last) if full => last.revision(),
            _ => self.revision.max(after),
        };
        Ok(Batch { events, through })
    }

    /// Compacts up to `target` in one transaction. Only keys written after
    /// the previous compaction can hold rows that became unreachable.
    fn compact_batch(&mut self, target: Revision) -> Result<(), StoreError> {
        if target <= self.compacted {
            return Ok(());
        }
        let transaction = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db_error)?;
        transaction
            .execute(
                "DELETE FROM log
                 WHERE id <= ?1
                   AND key IN (SELECT key FROM log WHERE id > ?2 AND id <= ?1)
                   AND (deleted = 1
                        OR EXISTS (SELECT 1 FROM log AS n
                                   WHERE n.key = log.key AND n.id > log.id AND n.id <= ?1))",
                params![to_sql(target)?, to_sql(self.compacted)?],
            )
            .map_err(db_error)?;
        transaction
            .execute(
                "UPDATE meta SET value = ?1 WHERE name = 'compacted'",
                [to_sql(target)?],
            )
            .map_err(db_error)?;
        transaction.commit().map_err(db_error)?;
        self.compacted = target;
        Ok(())
    }

    /// The newest revision that is outside both windows at `now`.
    fn window_target(
        &self,
        options: &SqliteOptions,
        now: SystemTime,
    ) -> Result<Revision, StoreError> {
        let by_count = self.revision.saturating_sub(options.window_revisions);
        if by_count <= self.compacted {
            return Ok(self.compacted);
        }
        let cutoff = now
            .checked_sub(options.window_duration)
            .map_or(i64::MIN, unix_millis);
        // Rows after `compacted` are all still there, and their timestamps
        // never decrease, so this is the last revision written by `cutoff`.
        let by_time: Option<i64> = self
            .conn
            .query_row(
                "SELECT MAX(id) FROM log WHERE id > ?1 AND id <= ?2 AND written_at_ms <= ?3",
                params![to_sql(self.compacted)?, to_sql(by_count)?, cutoff],
                |r| r.get(0),
            )
            .map_err(db_error)?;
        Ok(by_time.map_or(self.compacted, from_sql))
    }
}

fn to_event(key: String, row: Row) -> Result<Event, StoreError> {
    let prev = if row.prev_revision == 0 {
        None
    } else {
        // Compaction keeps the version every later row replaced, so a
        // missing one means the file was changed behind our back.
        let value = row.prev_value.ok_or_else(|| {
            StoreError::Backend(format!(
                "the log is missing revision {} (replaced by revision {})",
                row.prev_revision, row.id
            ))
        })?;
        Some(KeyValue {
            key: key.clone(),
            value: value.into(),
            create_revision: row.create_revision,
            mod_revision: row.prev_revision,
        })
    };
    match (row.deleted, row.value, prev) {
        (false, Some(value), prev) => Ok(Event::Put {
            kv: KeyValue {
                key,
                value: value.into(),
                create_revision: row.create_revision,
                mod_revision: row.id,
            },
            prev,
        }),
        (true, _, Some(prev)) => Ok(Event::Delete {
            prev,
            revision: row.id,
        }),
        _ => Err(StoreError::Backend(format!(
            "revision {} of the log is malformed",
            row.id
        ))),
    }
}

/// Sets up a fresh file, or checks that an existing one is ours and not
/// newer than this build.
fn prepare_schema(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let transaction = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| open_error(path, e))?;
    let read_pragma = |name: &str| -> Result<i64, StoreError> {
        transaction
            .pragma_query_value(None, name, |r| r.get(0))
            .map_err(|e| open_error(path, e))
    };
    let application_id = read_pragma("application_id")?;
    let version = read_pragma("user_version")?;
    let objects: i64 = transaction
        .query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))
        .map_err(|e| open_error(path, e))?;
    let foreign = || {
        StoreError::Backend(format!(
            "{} is not an mxjob database (application_id {application_id:#x}, \
             user_version {version}); use another --data-dir",
            path.display()
        ))
    };
    if application_id == 0 && version == 0 && objects == 0 {
        transaction
            .execute_batch(SCHEMA)
            .and_then(|()| transaction.pragma_update(None, "application_id", APPLICATION_ID))
            .and_then(|()| transaction.pragma_update(None, "user_version", SCHEMA_VERSION))
            .map_err(|e| open_error(path, e))?;
    } else if application_id != APPLICATION_ID {
        return Err(foreign());
    } else if version > SCHEMA_VERSION {
        return Err(StoreError::Backend(format!(
            "{} has schema version {version}, written by a newer mxjob-server; this build \
             supports schema version {SCHEMA_VERSION} at most. Run a newer mxjob-server on \
             this data directory.",
            path.display()
        )));
    } else if version < 1 {
        return Err(foreign());
    }
    transaction.commit().map_err(|e| open_error(path, e))
}

fn open_error(path: &Path, error: rusqlite::Error) -> StoreError {
    let hint = match error.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
            " (is another mxjob-server using this data directory?)"
        }
        _ => "",
    };
    StoreError::Backend(format!("opening {}: {error}{hint}", path.display()))
}

impl SqliteStore {
    /// Opens (creating if needed) the store in `dir/mxjob.db`, creating
    /// `dir` too. Fails if another process has the file open, if the file
    /// is not an mxjob database, or if a newer mxjob-server wrote it.
    pub fn open(dir: &Path, options: SqliteOptions) -> Result<SqliteStore, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| {
            StoreError::Backend(format!(
                "creating the data directory {}: {e}",
                dir.display()
            ))
        })?;
        let path = dir.join(FILE_NAME);
        let created = !path.exists();
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut conn =
            Connection::open_with_flags(&path, flags).map_err(|e| open_error(&path, e))?;
        // Another process holding the lock is an error right away, not a wait.
        conn.busy_timeout(Duration::ZERO)
            .and_then(|()| conn.pragma_update(None, "locking_mode", "EXCLUSIVE"))
            .map_err(|e| open_error(&path, e))?;
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
            .map_err(|e| open_error(&path, e))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Backend(format!(
                "opening {}: the file would not switch to WAL mode (it is in {mode} mode)",
                path.display()
            )));
        }
        conn.pragma_update(None, "synchronous", "FULL")
            .and_then(|()| conn.pragma_update(None, "fullfsync", true))
            .map_err(|e| open_error(&path, e))?;
        prepare_schema(&mut conn, &path)?;
        if created {
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| {
                    StoreError::Backend(format!(
                        "syncing the data directory {}: {e}",
                        dir.display()
                    ))
                })?;
        }
        let (revision, compacted, last_written_ms) = conn
            .query_row(
                "SELECT
                   max(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'log'), 0),
                       COALESCE((SELECT MAX(id) FROM log), 0)),
                   (SELECT value FROM meta WHERE name = 'compacted'),
                   COALESCE((SELECT written_at_ms FROM log ORDER BY id DESC LIMIT 1), 0)",
                [],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, i64>(2)?,
                    ))
                },
            )
            .map_err(|e| open_error(&path, e))?;
        let revision = from_sql(revision);
        let (written, _) = watch::channel(revision);
        let recent = Arc::new(Mutex::new(EventLog::new(
            revision,
            WATCH_BUFFER,
            options.history_bytes,
        )));
        let inner = Arc::new(Mutex::new(Inner {
            conn,
            revision,
            compacted: from_sql(compacted),
            last_written_ms,
            recent: Arc::clone(&recent),
            written,
            commits: None,
        }));
        Ok(SqliteStore {
            feed: Arc::new(Feed {
                inner: Arc::clone(&inner),
                recent,
            }),
            inner,
            path,
            options,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Counts and times every commit of a write into `commits`.
    pub async fn record_commits(&self, commits: CommitMetrics) -> Result<(), StoreError> {
        self.run(move |inner| {
            inner.commits = Some(commits);
            Ok(())
        })
        .await
    }

    /// Copies the database into a new file at `destination` with SQLite's
    /// online backup API, in one step under the connection's lock, so the
    /// copy holds exactly the revision it returns; writes wait meanwhile
    /// (see `crate::backup`).
    pub async fn backup_into(&self, destination: PathBuf) -> Result<Revision, StoreError> {
        self.run(move |inner| {
            let fail = |e: rusqlite::Error| {
                StoreError::Backend(format!("backing up into {}: {e}", destination.display()))
            };
            let mut copy = Connection::open(&destination).map_err(fail)?;
            let step = rusqlite::backup::Backup::new(&inner.conn, &mut copy)
                .and_then(|backup| backup.step(-1))
                .map_err(fail)?;
            if step != rusqlite::backup::StepResult::Done {
                return Err(StoreError::Backend(format!(
                    "backing up into {}: SQLite answered {step:?}",
                    destination.display()
                )));
            }
            copy.close().map_err(|(_, e)| fail(e))?;
            Ok(inner.revision)
        })
        .await
    }

    /// The options the store was opened with.
    pub fn options(&self) -> &SqliteOptions {
        &self.options
    }

    /// The bytes of recent events held in memory for watchers.
    pub fn history_bytes(&self) -> usize {
        lock(&self.feed.recent).bytes()
    }

    /// The oldest revision reads can still reach.
    pub async fn compacted_revision(&self) -> Result<Revision, StoreError> {
        self.run(|inner| Ok(inner.compacted)).await
    }

    /// Compacts what lies outside the history window now; returns the new
    /// compacted revision if it moved.
    pub async fn compact_window(&self) -> Result<Option<Revision>, StoreError> {
        self.compact_window_at(SystemTime::now()).await
    }

    async fn compact_window_at(&self, now: SystemTime) -> Result<Option<Revision>, StoreError> {
        let options = self.options.clone();
        let (before, target) = self
            .run(move |inner| Ok((inner.compacted, inner.window_target(&options, now)?)))
            .await?;
        if target <= before {
            return Ok(None);
        }
        self.compact_to(target).await?;
        Ok(Some(target))
    }

    /// Compacts to `target` in batches, letting writers in between.
    async fn compact_to(&self, target: Revision) -> Result<(), StoreError> {
        self.compact_in_batches(target, COMPACTION_BATCH).await
    }

    async fn compact_in_batches(&self, target: Revision, batch: u64) -> Result<(), StoreError> {
        let batch = batch.max(1);
        loop {
            let done = self
                .run(move |inner| {
                    let step = target.min(inner.compacted.saturating_add(batch));
                    inner.compact_batch(step)?;
                    Ok(inner.compacted >= target)
                })
                .await?;
            if done {
                return Ok(());
            }
        }
    }

    /// Runs [`compact_window`](Self::compact_window) every
    /// `compaction_interval` until the store is dropped (the task holds
    /// only a weak reference between runs). Failures are logged and
    /// retried at the next tick.
    pub fn spawn_compactor(self: &Arc<Self>, log: slog::Logger) -> tokio::task::JoinHandle<()> {
        let store = Arc::downgrade(self);
        let period = self
            .options
            .compaction_interval
            .max(Duration::from_millis(10));
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(period);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            // The first tick is immediate; compaction waits a full period.
            ticker.tick().await;
            loop {
                ticker.tick().await;
                let Some(store) = store.upgrade() else {
                    return;
                };
                match store.compact_window().await {
                    Ok(Some(revision)) => {
                        slog::debug!(log, "compacted history"; "revision" => revision)
                    }
                    Ok(None) => {}
                    Err(error) => {
                        slog::warn!(log, "compaction failed"; "error" => %error)
                    }
                }
            }
        })
    }

    /// Runs `f` on a blocking thread with the connection.
    async fn run<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Inner) -> Result<T, StoreError> + Send + 'static,
    {
        run(&self.inner, f).await
    }
}

/// Runs `f` on a blocking thread with the connection, locked. A panic under
/// the lock rolls back its transaction (the transaction is dropped), the
/// cached fields change only after a commit, and the event log changes by
/// whole pushes, so a poisoned lock still guards a consistent state.
async fn run<T, F>(inner: &Arc<Mutex<Inner>>, f: F) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: FnOnce(&mut Inner) -> Result<T, StoreError> + Send + 'static,
{
    let inner = Arc::clone(inner);
    tokio::task::spawn_blocking(move || f(&mut lock(&inner)))
        .await
        .map_err(|e| StoreError::Backend(format!("storage task failed: {e}")))?
}

#[async_trait]
impl Store for SqliteStore {
    fn name(&self) -> &'static str {
        "sqlite"
    }

    fn durability(&self) -> Durability {
        Durability::Durable
    }

    async fn current_revision(&self) -> Result<Revision, StoreError> {
        self.run(|inner| Ok(inner.revision)).await
    }

    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        let key = key.to_string();
        self.run(move |inner| inner.latest(&key)).await
    }

    async fn create(&self, key: &str, value: Vec<u8>) -> Result<KeyValue, StoreError> {
        let key = key.to_string();
        self.run(move |inner| cas::create(inner, &key, value)).await
    }

    async fn update(
        &self,
        key: &str,
        expected: Revision,
        value: Vec<u8>,
    ) -> Result<KeyValue, StoreError> {
        let key = key.to_string();
        self.run(move |inner| cas::update(inner, &key, expected, value))
            .await
    }

    async fn delete(
        &self,
        key: &str,
        expected: Revision,
    ) -> Result<(KeyValue, Revision), StoreError> {
        let key = key.to_string();
        self.run(move |inner| cas::delete(inner, &key, expected))
            .await
    }

    async fn list(&self, prefix: &str, options: ListOptions) -> Result<ListPage, StoreError> {
        let prefix = prefix.to_string();
        self.run(move |inner| inner.list(&prefix, &options)).await
    }

    async fn compact(&self, revision: Revision) -> Result<(), StoreError> {
        self.run(move |inner| inner.kept().check_compact(revision))
            .await?;
        self.compact_to(revision).await
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<EventStream, StoreError> {
        let written = self
            .run(move |inner| {
                inner.kept().check_watch(after)?;
                Ok(inner.written.subscribe())
            })
            .await?;
        let source: Arc<dyn EventSource> = self.feed.clone();
        Ok(follow(source, written, prefix.to_string(), after))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::block_on as block;

    fn open(dir: &Path) -> SqliteStore {
        SqliteStore::open(dir, SqliteOptions::default()).expect("open")
    }

    fn backend_message<T: fmt::Debug>(result: Result<T, StoreError>) -> String {
        match result {
            Err(StoreError::Backend(message)) => message,
            other => panic!("expected a backend error, got {other:?}"),
        }
    }

    #[test]
    fn the_keys_under_the_empty_prefix_end_above_every_utf8_key() {
        assert_eq!(keys_end("/a/"), b"/a0".to_vec());
        assert_eq!(keys_end(""), vec![0xff]);
        assert!(keys_end("").as_slice() > "\u{10ffff}".as_bytes());
    }

    #[test]
    fn data_and_revisions_survive_reopening() {
        let dir = tempfile::tempdir().expect("tempdir");
        block(async {
            let store = open(dir.path());
            let a = store.create("/a", b"1".to_vec()).await.expect("create");
            store
                .update("/a", a.mod_revision, b"2".to_vec())
                .await
                .expect("update");
            let b = store.create("/b", b"x".to_vec()).await.expect("create");
            store.delete("/b", b.mod_revision).await.expect("delete");
            drop(store);

            let store = open(dir.path());
            assert_eq!(store.current_revision().await, Ok(4));
            let a = store.get("/a").await.expect("get").expect("present");
            assert_eq!(
                (&*a.value, a.create_revision, a.mod_revision),
                (&b"2"[..], 1, 2)
            );
            assert_eq!(store.get("/b").await, Ok(None));
            let c = store.create("/c", b"c".to_vec()).await.expect("create");
            assert_eq!(c.mod_revision, 5);
        });
    }

    #[test]
    fn revisions_are_not_reused_after_compacting_away_the_newest_rows_and_reopening() {
        let dir = tempfile::tempdir().expect("tempdir");
        block(async {
            let store = open(dir.path());
            let a = store.create("/a", b"1".to_vec()).await.expect("create");
            store.delete("/a", a.mod_revision).await.expect("delete");
            // The delete is the newest row; compaction removes it and the
            // create it replaced, leaving the log empty.
            store.compact(2).await.expect("compact");
            drop(store);

            let store = open(dir.path());
            assert_eq!(store.current_revision().await, Ok(2));
            assert_eq!(store.compacted_revision().await, Ok(2));
            let again = store.create("/a", b"2".to_vec()).await.expect("create");
            assert_eq!(again.mod_revision, 3);
        });
    }

    #[test]
    fn a_second_store_on_the_same_directory_is_refused_while_the_first_is_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = open(dir.path());
        let message = backend_message(SqliteStore::open(dir.path(), SqliteOptions::default()));
        assert!(
            message.contains("another mxjob-server"),
            "unexpected message: {message}"
        );
        drop(first);
        open(dir.path());
    }

    #[test]
    fn a_file_from_a_newer_schema_version_is_refused_with_both_versions_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        drop(open(dir.path()));
        let conn = Connection::open(dir.path().join(FILE_NAME)).expect("open");
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .expect("set version");
        drop(conn);
        let message = backend_message(SqliteStore::open(dir.path(), SqliteOptions::default()));
        assert!(
            message.contains(&format!("schema version {}", SCHEMA_VERSION + 1))
                && message.contains(&format!("supports schema version {SCHEMA_VERSION}")),
            "unexpected message: {message}"
        );
    }

    #[test]
    fn a_sqlite_file_of_another_program_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let conn = Connection::open(dir.path().join(FILE_NAME)).expect("open");
        conn.execute_batch("CREATE TABLE notes (text TEXT)")
            .expect("create");
        drop(conn);
        let message = backend_message(SqliteStore::open(dir.path(), SqliteOptions::default()));
        assert!(
            message.contains("not an mxjob database"),
            "unexpected message: {message}"
        );
    }

    #[test]
    fn the_file_has_the_durable_settings_and_the_schema_version() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(dir.path());
        let inner = lock(&store.inner);
        let pragma = |name: &str| -> String {
            inner
                .conn
                .pragma_query_value(None, name, |r| r.get::<_, rusqlite::types::Value>(0))
                .map(|v| format!("{v:?}"))
                .expect("pragma")
        };
        assert_eq!(pragma("journal_mode"), "Text(\"wal\")");
        // 2 is FULL.
        assert_eq!(pragma("synchronous"), "Integer(2)");
        assert_eq!(pragma("user_version"), format!("Integer({SCHEMA_VERSION})"));
        assert_eq!(
            pragma("application_id"),
            format!("Integer({APPLICATION_ID})")
        );
    }

    /// A store whose one key was written 20 times (revisions 1 to 20).
    fn store_with_history(dir: &Path, options: SqliteOptions) -> SqliteStore {
        let store = SqliteStore::open(dir, options).expect("open");
        block(async {
            let mut kv = store.create("/k", b"0".to_vec()).await.expect("create");
            for i in 1..20u32 {
                kv = store
                    .update("/k", kv.mod_revision, i.to_string().into_bytes())
                    .await
                    .expect("update");
            }
        });
        store
    }

    #[test]
    fn window_compaction_keeps_the_revision_window_when_everything_is_old() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = store_with_history(
            dir.path(),
            SqliteOptions {
                window_revisions: 5,
                window_duration: Duration::from_secs(60),
                ..Default::default()
            },
        );
        block(async {
            let later = SystemTime::now() + Duration::from_secs(3600);
            assert_eq!(store.compact_window_at(later).await, Ok(Some(15)));
            assert_eq!(store.compacted_revision().await, Ok(15));
            let old = store
                .list(
                    "/",
                    ListOptions {
                        revision: Some(14),
                        ..Default::default()
                    },
                )
                .await;
            assert_eq!(
                old.map(|p| p.revision),
                Err(StoreError::Compacted { compacted: 15 })
            );
            // Nothing more to do until more is written.
            assert_eq!(store.compact_window_at(later).await, Ok(None));
        });
    }

    #[test]
    fn window_compaction_keeps_recent_revisions_even_beyond_the_revision_window() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = store_with_history(
            dir.path(),
            SqliteOptions {
                window_revisions: 5,
                window_duration: Duration::from_secs(60),
                ..Default::default()
            },
        );
        block(async {
            assert_eq!(store.compact_window_at(SystemTime::now()).await, Ok(None));
            assert_eq!(store.compacted_revision().await, Ok(0));
            let first = store
                .list(
                    "/",
                    ListOptions {
                        revision: Some(1),
                        ..Default::default()
                    },
                )
                .await
                .expect("list");
            assert_eq!(&*first.items[0].value, b"0");
        });
    }

    #[test]
    fn compaction_in_batches_reaches_the_target_and_keeps_the_current_state() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = store_with_history(dir.path(), SqliteOptions::default());
        block(async {
            store.compact_in_batches(20, 3).await.expect("compact");
            assert_eq!(store.compacted_revision().await, Ok(20));
            let rows: i64 = lock(&store.inner)
                .conn
                .query_row("SELECT count(*) FROM log", [], |r| r.get(0))
                .expect("count");
            assert_eq!(rows, 1);
            let kv = store.get("/k").await.expect("get").expect("present");
            assert_eq!((&*kv.value, kv.mod_revision), (&b"19"[..], 20));
        });
    }

    #[test]
    fn the_compactor_stops_when_the_store_is_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let store = Arc::new(
                SqliteStore::open(
                    dir.path(),
                    SqliteOptions {
                        compaction_interval: Duration::from_millis(10),
                        ..Default::default()
                    },
                )
                .expect("open"),
            );
            let log = slog::Logger::root(slog::Discard, slog::o!());
            let task = store.spawn_compactor(log);
            tokio::time::sleep(Duration::from_millis(30)).await;
            assert!(!task.is_finished());
            drop(store);
            tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .expect("the compactor stops")
                .expect("the compactor does not panic");
        });
    }
}

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
//! * `get` is the key's newest row (a delete row means "absent"); for a
//!   key written recently the writer remembered that version after its
//!   commit, and `get` answers from memory (`store::latest`);
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
//! Group commit (below) changes none of this: several writes share one
//! transaction, so they share its one commit frame and its one fsync, and
//! none of them is answered or published before that commit returned. A
//! crash before it loses only writes nobody was told about, all of the
//! batch together; a crash after it loses nothing. (A commit that fails
//! in its fsync is reported as failed; as with any database, whether such
//! a write is found after a later crash is up to the operating system, but
//! it was never acknowledged.)
//!
//! # One writer, group commit
//!
//! A commit costs one fsync, a fraction of a millisecond or more, while
//! appending a row costs microseconds; one transaction per write would make
//! the disk the limit. So all writes go to one thread, the writer, which
//! owns the only connection that writes. `create`, `update` and `delete`
//! send their write down the writer's channel and wait for its answer. The
//! writer takes the first write waiting and every other one already queued
//! behind it (at most `BATCH_WRITES` writes and `BATCH_BYTES_WRITTEN` of
//! keys and values), and in one transaction:
//!
//! 1. runs each write, in the order they arrived, as the shared
//!    compare-and-swap of `store::cas` — the key's newest row is read and
//!    checked, and the new row appended, in the transaction, so each check
//!    sees the batch's earlier writes, each write that passes takes the
//!    next revision, and a write whose check fails (`Conflict`,
//!    `NotFound`, `AlreadyExists`) fails alone and appends nothing;
//! 2. commits, once;
//! 3. then moves the newest revision, adds the batch's events to the buffer
//!    of recent events, publishes the newest revision to watchers, and
//!    answers every write of the batch, in revision order;
//! 4. only then frees the decoded jobs the buffer let go of (see
//!    `store::feed::Released`), which took about a third of its time.
//!
//! The writer never waits for a batch to fill: it commits whatever is
//! pending as soon as it is free. At low load a batch is one write, which
//! costs what it always did; under load, the writes that arrive during one
//! commit's fsync share the next one.
//!
//! When SQLite fails anywhere in a batch — a statement, or the commit itself
//! (a full disk shows up there, as `SQLITE_FULL`) — the transaction is
//! rolled back and every write of the batch is answered with that error,
//! including those whose check had failed (they were checked against writes
//! that never happened). The revision, the buffer of events and the
//! published revision change only after a commit succeeded, so nothing of a
//! failed batch is visible, and the next batch takes the same revisions.
//!
//! Compaction runs on the writer too, between batches, as its own
//! transactions (below).
//!
//! Why it is built this way:
//!
//! * A dedicated OS thread with a plain channel, not an async task: every
//!   SQLite call blocks, the commit for as long as the fsync takes, and the
//!   writer must never hold a runtime worker while it does.
//! * Each write's compare-and-swap is checked inside the batch's
//!   transaction, after the writes before it, not before the batch is
//!   formed: two replaces of one object from the same `resourceVersion`
//!   in one batch must give one success and one conflict, exactly as if
//!   they had been committed one by one. A failed check appends nothing,
//!   so it needs no savepoint and costs the others nothing.
//! * A failed commit fails the whole batch rather than retrying the writes
//!   one by one: SQLite rolled the transaction back, and the error (a full
//!   disk, an I/O error) would most likely fail each retry too. Failing
//!   all of them keeps "acknowledged means fsynced" without guessing.
//! * No waiting for company: a writer that delayed a commit to gather
//!   more writes would add that delay to every write at low load. Batches
//!   form by themselves under load, because writes queue while the
//!   previous commit's fsync runs.
//! * The batch bounds (`BATCH_WRITES`, `BATCH_BYTES_WRITTEN`) keep one
//!   transaction, and so the latency of its first write, bounded.
//! * A write's check reads the key's newest version from the batch's own
//!   writes, then from the versions the writer recorded after its earlier
//!   commits (`store::latest`), and only then from the database: a query
//!   per write was a tenth of the writer's time.
//! * Checkpoints run on their own thread and connection
//!   (`store::checkpoint`), not inside the commit that grows the log.
//!
//! # Readers
//!
//! Reads do not go through the writer: `get`, `list` and the log reads of
//! watchers run on a small pool of read connections (`READERS`), on
//! blocking threads, so no SQLite call blocks the async runtime and no read
//! waits for a commit's fsync. In WAL mode a reader sees the last commit
//! before its read began and never sees an uncommitted batch. A list or a
//! log read takes the newest revision and the compacted one from the same
//! snapshot as its rows (`sqlite_sequence` and the `meta` row in one read
//! transaction), so it is consistent even while the writer commits or
//! compacts. A reader may see a commit a moment before the writer has
//! published it; such a revision is durable, only its answer is still on
//! its way.
//!
//! # Locking
//!
//! Every connection uses SQLite's `unix-excl` VFS (through `store::vfs`,
//! which gathers the writes of a commit to the log): the first to touch the
//! file takes an exclusive lock on it for the whole process, held until the
//! last one closes. Another process — a second mxjob-server, the `sqlite3`
//! shell — can neither read nor write the file while the store is open,
//! and a second server fails at startup instead of writing revisions this
//! one does not know of. Within the process the connections coordinate in
//! memory, where the WAL index lives too: there is no `-shm` file. That
//! lock cannot tell two stores of one process apart, so the writer also
//! holds an exclusive `flock` on the data directory.
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
//! transaction on the writer, so writers are never held up for long. Freed
//! pages are reused by later writes; the file does not shrink.
//!
//! # Schema version
//!
//! The file carries `PRAGMA application_id` (so another program's SQLite
//! file is refused rather than written to) and `PRAGMA user_version`, the
//! schema version. A file with a newer schema version than this build
//! knows is refused with a message naming both versions; there is only
//! version 1 so far, so no migrations yet.

use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, TransactionBehavior};
use tokio::sync::{oneshot, watch, Semaphore};

use super::cas::{self, Change, RevisionLog};
use super::checkpoint::Checkpointer;
use super::feed::{
    event_bytes, follow, Batch, EventLog, EventSource, Released, BATCH_BYTES, BATCH_EVENTS,
};
use super::keys::{list_start, prefix_end, Start};
use super::latest::Latest;
use super::vfs;
use super::{
    lock, Durability, Event, EventStream, Kept, KeyValue, ListOptions, ListPage, Prepare, Revision,
    Store, StoreError, DEFAULT_HISTORY_BYTES, WATCH_BUFFER,
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
/// The most writes one commit takes.
const BATCH_WRITES: usize = 512;
/// The most bytes of keys and values one commit takes, unless its first
/// write alone is larger.
const BATCH_BYTES_WRITTEN: usize = 16 * 1024 * 1024;
/// Read connections, and so reads running at once; more wait for one.
const READERS: usize = 4;
/// How long a read waits for a lock another connection of this process
/// holds (in WAL mode only briefly, around the log's restart) before it
/// fails with "database is locked".
const READ_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

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

/// How many commits wrote how many writes since the store opened. With
/// concurrent writers, group commit makes the first smaller than the
/// second.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CommitStats {
    /// Transactions that committed at least one write.
    pub commits: u64,
    /// The writes those transactions held.
    pub writes: u64,
}

/// See the module documentation.
pub struct SqliteStore {
    writer: WriterHandle,
    readers: Arc<Readers>,
    /// The newest revision the writer has published.
    written: watch::Receiver<Revision>,
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

/// What the writer shares with the readers and the store, besides the
/// revision it publishes on its `watch` channel. Each field changes only
/// after the commit it reports.
struct Shared {
    /// Recent events, for watchers.
    recent: Mutex<EventLog>,
    /// The newest versions of recently written keys, for `get`.
    latest: Latest,
    /// The compacted revision.
    compacted: AtomicU64,
    /// See [`CommitStats`].
    commits: AtomicU64,
    committed_writes: AtomicU64,
}

/// One write, as sent to the writer.
enum Op {
    Create {
        key: String,
        value: Vec<u8>,
        prepare: Option<Prepare>,
    },
    Update {
        key: String,
        expected: Revision,
        value: Vec<u8>,
        prepare: Option<Prepare>,
    },
    Delete {
        key: String,
        expected: Revision,
    },
}

/// What a write answers: the version written (for a delete, the version
/// deleted) and the revision of the write.
type Written = (KeyValue, Revision);

impl Op {
    fn create(key: &str, value: Vec<u8>, prepare: Option<Prepare>) -> Self {
        let key = key.to_string();
        Op::Create {
            key,
            value,
            prepare,
        }
    }

    fn update(key: &str, expected: Revision, value: Vec<u8>, prepare: Option<Prepare>) -> Self {
        let key = key.to_string();
        Op::Update {
            key,
            expected,
            value,
            prepare,
        }
    }

    /// The bytes the write adds to a batch.
    fn bytes(&self) -> usize {
        match self {
            Op::Create { key, value, .. } | Op::Update { key, value, .. } => {
                key.len() + value.len()
            }
            Op::Delete { key, .. } => key.len(),
        }
    }

    /// The compare-and-swap of `store::cas` on the batch's log.
    fn apply(self, log: &mut BatchLog<'_>) -> Result<Written, StoreError> {
        match self {
            Op::Create {
                key,
                value,
                prepare,
            } => cas::create(log, &key, value, prepare).map(|kv| (kv.clone(), kv.mod_revision)),
            Op::Update {
                key,
                expected,
                value,
                prepare,
            } => cas::update(log, &key, expected, value, prepare)
                .map(|kv| (kv.clone(), kv.mod_revision)),
            Op::Delete { key, expected } => cas::delete(log, &key, expected),
        }
    }
}

/// A write waiting for the writer, and where its answer goes.
struct Write {
    op: Op,
    reply: oneshot::Sender<Result<Written, StoreError>>,
}

/// What the writer thread is sent.
enum Job {
    /// A write, to be committed with whatever else is waiting.
    Write(Write),
    /// Something else that needs the write connection (compaction), run
    /// alone, between batches.
    Run(Box<dyn FnOnce(&mut Writer) + Send>),
}

fn writer_stopped() -> StoreError {
    StoreError::Backend("sqlite: the writer thread has stopped".to_string())
}

/// The store's end of the writer: its channel, and its thread, which is
/// joined when the store is dropped so that the file and the directory's
/// lock are released by then.
struct WriterHandle {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl WriterHandle {
    fn send(&self, job: Job) -> Result<(), StoreError> {
        self.jobs
            .as_ref()
            .and_then(|jobs| jobs.send(job).ok())
            .ok_or_else(writer_stopped)
    }
}

impl Drop for WriterHandle {
    fn drop(&mut self) {
        // A closed channel stops the writer once it has done what it was sent.
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            // A writer that panicked has nothing left to release.
            let _ = thread.join();
        }
    }
}

/// The writer thread's state: the one connection that writes, and what is
/// cached beside it.
struct Writer {
    conn: Connection,
    /// The newest committed revision (the log's highest id ever).
    revision: Revision,
    /// Reads before this revision fail with `Compacted`.
    compacted: Revision,
    /// `written_at_ms` of the newest row; timestamps never go backwards,
    /// so "older than the time window" is a prefix of the log.
    last_written_ms: i64,
    shared: Arc<Shared>,
    /// Publishes each new revision to watchers.
    written: watch::Sender<Revision>,
    /// Where commits are counted and timed, once [`SqliteStore::record_commits`] says.
    commits: Option<CommitMetrics>,
    /// What the recent events let go of in a batch, freed once the batch
    /// is answered (freeing decoded jobs took about a third of this
    /// thread's time, and the writers waited for it).
    released: Released,
    /// Copies the write-ahead log into the file beside the writer
    /// (`store::checkpoint`).
    checkpointer: Checkpointer,
    /// The data directory's lock (see the module documentation), released
    /// when the writer stops.
    _directory_lock: File,
}

impl Writer {
    /// Serves jobs until the store closes the channel.
    fn serve(mut self, jobs: mpsc::Receiver<Job>) {
        let mut held = None;
        while let Some(job) = held.take().or_else(|| jobs.recv().ok()) {
            match job {
                Job::Run(task) => task(&mut self),
                Job::Write(first) => {
                    let mut bytes = first.op.bytes();
                    let mut batch = vec![first];
                    // What has arrived meanwhile, without waiting for more.
                    while batch.len() < BATCH_WRITES {
                        match jobs.try_recv() {
                            Ok(Job::Write(write))
                                if bytes + write.op.bytes() <= BATCH_BYTES_WRITTEN =>
                            {
                                bytes += write.op.bytes();
                                batch.push(write);
                            }
                            Ok(job) => {
                                held = Some(job);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    self.commit(batch);
                }
            }
        }
    }

    /// Applies `batch` in one transaction, commits it, and answers every
    /// write; when SQLite fails anywhere in it, answers every write with
    /// that error and leaves nothing of the batch behind.
    fn commit(&mut self, batch: Vec<Write>) {
        let (ops, replies): (Vec<Op>, Vec<_>) = batch.into_iter().map(|w| (w.op, w.reply)).unzip();
        // A caller that went away needs no answer: hence the ignored sends.
        match self.apply(ops) {
            Ok(answers) => {
                for (reply, answer) in replies.into_iter().zip(answers) {
                    let _ = reply.send(answer);
                }
                self.released.clear();
                self.checkpointer.committed(&self.conn);
            }
            Err(error) => {
                self.end_failed_transaction();
                for reply in replies {
                    let _ = reply.send(Err(error.clone()));
                }
            }
        }
    }

    /// Runs `ops` in one transaction and commits it, then publishes what
    /// was written; returns each write's answer. Fails, having rolled back,
    /// when SQLite does.
    fn apply(&mut self, ops: Vec<Op>) -> Result<Vec<Result<Written, StoreError>>, StoreError> {
        let written_at_ms = unix_millis(SystemTime::now()).max(self.last_written_ms);
        // Dropped without a commit, it rolls back.
        let transaction = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db_error)?;
        let mut log = BatchLog {
            conn: &transaction,
            latest: &self.shared.latest,
            revision: self.revision,
            written_at_ms,
            events: Vec::new(),
        };
        let mut answers = Vec::with_capacity(ops.len());
        for op in ops {
            match op.apply(&mut log) {
                // SQLite failed, not the write's check: the batch fails.
                Err(StoreError::Backend(message)) => return Err(StoreError::Backend(message)),
                answer => answers.push(answer),
            }
        }
        let BatchLog {
            revision, events, ..
        } = log;
        if events.is_empty() {
            // Every check failed; there is nothing to commit.
            return Ok(answers);
        }
        // Once this returns, every write of the batch is on stable storage
        // (see the module documentation); only then is any of them
        // published or answered.
        let committing = Instant::now();
        transaction.commit().map_err(db_error)?;
        if let Some(commits) = &self.commits {
            commits.committed(events.len(), committing.elapsed());
        }
        self.revision = revision;
        self.last_written_ms = written_at_ms;
        self.publish(events);
        Ok(answers)
    }

    /// Makes the batch's committed events readable, then publishes the
    /// newest revision.
    fn publish(&mut self, events: Vec<Event>) {
        let Some(newest) = events.last().map(Event::revision) else {
            return;
        };
        let count = events.len() as u64;
        self.shared.latest.record(&events);
        {
            let mut recent = lock(&self.shared.recent);
            for event in events {
                recent.push_releasing(event, &mut self.released);
            }
        }
        // Published once the events are readable (see `feed::follow`).
        self.written.send_replace(newest);
        self.shared.commits.fetch_add(1, Ordering::Relaxed);
        self.shared
            .committed_writes
            .fetch_add(count, Ordering::Relaxed);
    }

    /// Leaves no transaction open after a failure: SQLite rolls some back
    /// by itself, and a dropped `Transaction` rolls back the others, but a
    /// failed rollback would leave one open.
    fn end_failed_transaction(&self) {
        if !self.conn.is_autocommit() {
            // Nothing more to do if even this fails; the next batch's BEGIN
            // will then fail and say so.
            let _ = self.conn.execute_batch("ROLLBACK");
        }
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
        self.shared.compacted.store(target, Ordering::SeqCst);
        Ok(())
    }
}

/// The log as one batch's transaction sees it: what was committed and the
/// batch's earlier writes. [`cas`] runs each write of the batch on it.
struct BatchLog<'t> {
    conn: &'t Connection,
    /// The newest committed versions of recently written keys.
    latest: &'t Latest,
    /// The newest revision, the batch's writes so far included.
    revision: Revision,
    written_at_ms: i64,
    /// The events of the batch's writes, published after the commit.
    events: Vec<Event>,
}

impl RevisionLog for BatchLog<'_> {
    /// The batch's own newest write of `key`, else the committed version
    /// [`Latest`] remembers (the writer records every batch it commits),
    /// else the database's: most writes replace a key written recently,
    /// and a query per write was a tenth of the writer's time.
    fn latest(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        if let Some(event) = self.events.iter().rev().find(|e| e.key() == key) {
            return Ok(match event {
                Event::Put { kv, .. } => Some(kv.clone()),
                Event::Delete { .. } => None,
            });
        }
        match self.latest.get(key) {
            Some(kv) => {
                debug_assert_eq!(latest(self.conn, key).ok().flatten(), Some(kv.clone()));
                Ok(Some(kv))
            }
            None => latest(self.conn, key),
        }
    }

    fn next_revision(&self) -> Revision {
        self.revision + 1
    }

    /// Appends one row to the batch's transaction. Its event becomes
    /// readable once the batch has committed.
    fn append(&mut self, change: Change<'_>) -> Result<Revision, StoreError> {
        let revision = self.revision + 1;
        let (id, create_revision, prev_revision) = (
            to_sql(revision)?,
            to_sql(change.create_revision(revision))?,
            to_sql(change.prev().map_or(0, |prev| prev.mod_revision))?,
        );
        let (key, value) = (change.key(), change.value().map(|value| &value[..]));
        self.conn
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
                    self.written_at_ms,
                ])
            })
            .map_err(db_error)?;
        self.revision = revision;
        self.events.push(change.event(revision));
        Ok(revision)
    }
}

/// The read connections, and what the writer shares with them.
struct Readers {
    path: PathBuf,
    /// Connections not in use; opened when first needed.
    idle: Mutex<Vec<Connection>>,
    /// One per connection that may be in use.
    permits: Semaphore,
    shared: Arc<Shared>,
}

impl Readers {
    /// Runs `f` on a blocking thread with a read connection.
    async fn run<T, F>(self: &Arc<Self>, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| StoreError::Backend("sqlite: the readers are closed".to_string()))?;
        let readers = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let idle = lock(&readers.idle).pop();
            let conn = match idle {
                Some(conn) => conn,
                None => open_reader(&readers.path)?,
            };
            let result = f(&conn);
            lock(&readers.idle).push(conn);
            result
        })
        .await
        .map_err(|e| StoreError::Backend(format!("storage task failed: {e}")))?
    }
}

/// Where watchers read: the recent events, or the log behind them.
struct Feed {
    readers: Arc<Readers>,
}

#[async_trait]
impl EventSource for Feed {
    async fn events_after(&self, prefix: &str, after: Revision) -> Result<Batch, StoreError> {
        if let Some(batch) = lock(&self.readers.shared.recent).read(prefix, after) {
            return Ok(batch);
        }
        let prefix = prefix.to_string();
        self.readers
            .run(move |conn| events_after(conn, &prefix, after))
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

/// The revisions the current read transaction on `conn` can reach: the
/// compacted and the newest revision as of its snapshot.
fn snapshot(conn: &Connection) -> Result<Kept, StoreError> {
    conn.prepare_cached(
        "SELECT
           (SELECT value FROM meta WHERE name = 'compacted'),
           max(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'log'), 0),
               COALESCE((SELECT MAX(id) FROM log), 0))",
    )
    .and_then(|mut statement| {
        statement.query_row([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))
    })
    .map(|(compacted, newest)| Kept {
        compacted: from_sql(compacted),
        newest: from_sql(newest),
    })
    .map_err(db_error)
}

/// The key's newest version, if it exists: the reads' `get`, and the
/// writer's read in its transaction.
fn latest(conn: &Connection, key: &str) -> Result<Option<KeyValue>, StoreError> {
    let row = conn
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

/// [`Store::list`], in one read transaction.
fn list(conn: &Connection, prefix: &str, options: &ListOptions) -> Result<ListPage, StoreError> {
    let transaction = conn.unchecked_transaction().map_err(db_error)?;
    let revision = snapshot(&transaction)?.list_at(options.revision)?;
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
    let mut statement = transaction.prepare_cached(&sql).map_err(db_error)?;
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
/// order, in one read transaction: at most [`LOG_BATCH`] of them, and no
/// more once they carry [`BATCH_BYTES`].
fn events_after(conn: &Connection, prefix: &str, after: Revision) -> Result<Batch, StoreError> {
    let transaction = conn.unchecked_transaction().map_err(db_error)?;
    let kept = snapshot(&transaction)?;
    kept.check_watch(after)?;
    let mut statement = transaction
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
    // the end of the snapshot.
    let full = bytes >= BATCH_BYTES || events.len() as i64 >= LOG_BATCH;
    let through = match events.last() {
        Some(last) if full => last.revision(),
        _ => kept.newest.max(after),
    };
    Ok(Batch { events, through })
}

/// The compacted revision, and the newest revision that is outside both
/// windows at `now`, in one read transaction.
fn window_target(
    conn: &Connection,
    options: &SqliteOptions,
    now: SystemTime,
) -> Result<(Revision, Revision), StoreError> {
    let transaction = conn.unchecked_transaction().map_err(db_error)?;
    let kept = snapshot(&transaction)?;
    let by_count = kept.newest.saturating_sub(options.window_revisions);
    if by_count <= kept.compacted {
        return Ok((kept.compacted, kept.compacted));
    }
    let cutoff = now
        .checked_sub(options.window_duration)
        .map_or(i64::MIN, unix_millis);
    // Rows after `compacted` are all still there, and their timestamps
    // never decrease, so this is the last revision written by `cutoff`.
    let by_time: Option<i64> = transaction
        .query_row(
            "SELECT MAX(id) FROM log WHERE id > ?1 AND id <= ?2 AND written_at_ms <= ?3",
            params![to_sql(kept.compacted)?, to_sql(by_count)?, cutoff],
            |r| r.get(0),
        )
        .map_err(db_error)?;
    Ok((kept.compacted, by_time.map_or(kept.compacted, from_sql)))
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

/// Opens a connection to `path` on the store's VFS.
fn open_connection(path: &Path, flags: OpenFlags) -> Result<Connection, StoreError> {
    vfs::register().map_err(StoreError::Backend)?;
    Connection::open_with_flags_and_vfs(path, flags | OpenFlags::SQLITE_OPEN_NO_MUTEX, vfs::NAME)
        .map_err(|e| open_error(path, e))
}

/// Opens a read connection; it cannot write.
fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let conn = open_connection(path, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
    conn.busy_timeout(READ_BUSY_TIMEOUT)
        .and_then(|()| conn.pragma_update(None, "query_only", true))
        .map_err(|e| open_error(path, e))?;
    Ok(conn)
}

/// Takes the data directory's lock (see the module documentation), held
/// as long as the returned handle; `None` when another store holds it.
/// `mxjob-server restore` takes it too.
pub(crate) fn try_lock_directory(dir: &Path) -> std::io::Result<Option<File>> {
    let directory = File::open(dir)?;
    match rustix::fs::flock(
        &directory,
        rustix::fs::FlockOperation::NonBlockingLockExclusive,
    ) {
        Ok(()) => Ok(Some(directory)),
        Err(e) if e == rustix::io::Errno::WOULDBLOCK => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Locks the data directory for one store.
fn lock_directory(dir: &Path) -> Result<File, StoreError> {
    match try_lock_directory(dir) {
        Ok(Some(directory)) => Ok(directory),
        Ok(None) => Err(StoreError::Backend(format!(
            "opening {}: the data directory is locked (is another mxjob-server using this \
             data directory?)",
            dir.join(FILE_NAME).display()
        ))),
        Err(e) => Err(StoreError::Backend(format!(
            "locking the data directory {}: {e}",
            dir.display()
        ))),
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the store in `dir/mxjob.db`, creating
    /// `dir` too, and starts its writer thread. Fails if another store or
    /// process has the file open, if the file is not an mxjob database, or
    /// if a newer mxjob-server wrote it.
    pub fn open(dir: &Path, options: SqliteOptions) -> Result<SqliteStore, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| {
            StoreError::Backend(format!(
                "creating the data directory {}: {e}",
                dir.display()
            ))
        })?;
        let directory_lock = lock_directory(dir)?;
        let path = dir.join(FILE_NAME);
        let created = !path.exists();
        let mut conn = open_connection(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
        )?;
        // Another process holding the lock is an error right away, not a
        // wait; within this process nothing else writes.
        conn.busy_timeout(Duration::ZERO)
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
            directory_lock.sync_all().map_err(|e| {
                StoreError::Backend(format!("syncing the data directory {}: {e}", dir.display()))
            })?;
        }
        let kept = snapshot(&conn)?;
        let last_written_ms = conn
            .query_row(
                "SELECT COALESCE((SELECT written_at_ms FROM log ORDER BY id DESC LIMIT 1), 0)",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map_err(|e| open_error(&path, e))?;
        let shared = Arc::new(Shared {
            recent: Mutex::new(EventLog::new(
                kept.newest,
                WATCH_BUFFER,
                options.history_bytes,
            )),
            latest: Latest::default(),
            compacted: AtomicU64::new(kept.compacted),
            commits: AtomicU64::new(0),
            committed_writes: AtomicU64::new(0),
        });
        let own = open_connection(&path, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
        let checkpointer = Checkpointer::start(&conn, own)
            .map_err(|e| StoreError::Backend(format!("starting the SQLite checkpointer: {e}")))?;
        let (written, watching) = watch::channel(kept.newest);
        let writer = Writer {
            conn,
            revision: kept.newest,
            compacted: kept.compacted,
            last_written_ms,
            shared: Arc::clone(&shared),
            written,
            commits: None,
            released: Released::default(),
            checkpointer,
            _directory_lock: directory_lock,
        };
        let (jobs, inbox) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("sqlite-writer".to_string())
            .spawn(move || writer.serve(inbox))
            .map_err(|e| StoreError::Backend(format!("starting the SQLite writer: {e}")))?;
        Ok(SqliteStore {
            writer: WriterHandle {
                jobs: Some(jobs),
                thread: Some(thread),
            },
            readers: Arc::new(Readers {
                path: path.clone(),
                idle: Mutex::new(Vec::new()),
                permits: Semaphore::new(READERS),
                shared,
            }),
            written: watching,
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
        self.on_writer(move |writer| {
            writer.commits = Some(commits);
            Ok(())
        })
        .await
    }

    /// Copies the database into a new file at `destination` with SQLite's
    /// online backup API, in one step on the writer thread between two
    /// batches, so the copy holds exactly the revision it returns; writes
    /// wait meanwhile (see `crate::backup`).
    pub async fn backup_into(&self, destination: PathBuf) -> Result<Revision, StoreError> {
        self.on_writer(move |inner| {
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
        lock(&self.readers.shared.recent).bytes()
    }

    /// How many commits have written how many writes.
    pub fn commit_stats(&self) -> CommitStats {
        let shared = &self.readers.shared;
        CommitStats {
            commits: shared.commits.load(Ordering::Relaxed),
            writes: shared.committed_writes.load(Ordering::Relaxed),
        }
    }

    /// The oldest revision reads can still reach.
    pub async fn compacted_revision(&self) -> Result<Revision, StoreError> {
        Ok(self.kept().compacted)
    }

    /// What the writer has published.
    fn kept(&self) -> Kept {
        Kept {
            compacted: self.readers.shared.compacted.load(Ordering::SeqCst),
            newest: *self.written.borrow(),
        }
    }

    /// Compacts what lies outside the history window now; returns the new
    /// compacted revision if it moved.
    pub async fn compact_window(&self) -> Result<Option<Revision>, StoreError> {
        self.compact_window_at(SystemTime::now()).await
    }

    async fn compact_window_at(&self, now: SystemTime) -> Result<Option<Revision>, StoreError> {
        let options = self.options.clone();
        let (before, target) = self
            .readers
            .run(move |conn| window_target(conn, &options, now))
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
                .on_writer(move |writer| {
                    let step = target.min(writer.compacted.saturating_add(batch));
                    writer.compact_batch(step)?;
                    Ok(writer.compacted >= target)
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

    /// Sends `op` to the writer and waits for its answer.
    async fn write(&self, op: Op) -> Result<Written, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.writer.send(Job::Write(Write { op, reply }))?;
        answer.await.map_err(|_| writer_stopped())?
    }

    /// [`write`](Self::write) of a create or an update: the version written.
    async fn write_op(&self, op: Op) -> Result<KeyValue, StoreError> {
        Ok(self.write(op).await?.0)
    }

    /// Runs `f` on the writer thread, between batches.
    async fn on_writer<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Writer) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        self.writer.send(Job::Run(Box::new(move |writer| {
            // A caller that went away needs no answer.
            let _ = reply.send(f(writer));
        })))?;
        answer.await.map_err(|_| writer_stopped())?
    }
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
        Ok(self.kept().newest)
    }

    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        if let Some(kv) = self.readers.shared.latest.get(key) {
            return Ok(Some(kv));
        }
        let key = key.to_string();
        self.readers.run(move |conn| latest(conn, &key)).await
    }

    async fn create(&self, key: &str, value: Vec<u8>) -> Result<KeyValue, StoreError> {
        self.write_op(Op::create(key, value, None)).await
    }

    async fn update(
        &self,
        key: &str,
        expected: Revision,
        value: Vec<u8>,
    ) -> Result<KeyValue, StoreError> {
        self.write_op(Op::update(key, expected, value, None)).await
    }

    async fn create_prepared(
        &self,
        key: &str,
        value: Vec<u8>,
        prepare: Prepare,
    ) -> Result<KeyValue, StoreError> {
        self.write_op(Op::create(key, value, Some(prepare))).await
    }

    async fn update_prepared(
        &self,
        key: &str,
        expected: Revision,
        value: Vec<u8>,
        prepare: Prepare,
    ) -> Result<KeyValue, StoreError> {
        let op = Op::update(key, expected, value, Some(prepare));
        self.write_op(op).await
    }

    async fn delete(
        &self,
        key: &str,
        expected: Revision,
    ) -> Result<(KeyValue, Revision), StoreError> {
        let key = key.to_string();
        self.write(Op::Delete { key, expected }).await
    }

    async fn list(&self, prefix: &str, options: ListOptions) -> Result<ListPage, StoreError> {
        let prefix = prefix.to_string();
        self.readers
            .run(move |conn| list(conn, &prefix, &options))
            .await
    }

    async fn compact(&self, revision: Revision) -> Result<(), StoreError> {
        self.kept().check_compact(revision)?;
        self.compact_to(revision).await
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<EventStream, StoreError> {
        self.kept().check_watch(after)?;
        let source: Arc<dyn EventSource> = Arc::new(Feed {
            readers: Arc::clone(&self.readers),
        });
        Ok(follow(
            source,
            self.written.clone(),
            prefix.to_string(),
            after,
        ))
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
    fn the_log_is_copied_into_the_file_beside_the_writer() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join(FILE_NAME);
        block(async {
            let store = open(dir.path());
            let before = std::fs::metadata(&file).expect("the file").len();
            // About 2,600 pages of values: past the checkpointer's start
            // and past its second wake.
            for i in 0..1300 {
                let key = format!("/k{i}");
                store.create(&key, vec![b'x'; 8000]).await.expect("create");
            }
            // The writer copies nothing itself below its bound, and SQLite
            // no longer does inside a commit: the file grows only as the
            // checkpointer copies the log into it.
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                let len = std::fs::metadata(&file).expect("the file").len();
                if len > before + 4 * 1024 * 1024 {
                    break;
                }
                assert!(Instant::now() < deadline, "the file stayed at {len} bytes");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let value = store.get("/k1299").await.expect("get").expect("the key");
            assert_eq!(value.value.len(), 8000);
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
        let pragmas = block(store.on_writer(|writer| {
            let pragma = |name: &str| -> String {
                writer
                    .conn
                    .pragma_query_value(None, name, |r| r.get::<_, rusqlite::types::Value>(0))
                    .map(|v| format!("{v:?}"))
                    .expect("pragma")
            };
            Ok([
                "journal_mode",
                "synchronous",
                "user_version",
                "application_id",
            ]
            .map(pragma))
        }))
        .expect("the writer answers");
        assert_eq!(pragmas[0], "Text(\"wal\")");
        // 2 is FULL.
        assert_eq!(pragmas[1], "Integer(2)");
        assert_eq!(pragmas[2], format!("Integer({SCHEMA_VERSION})"));
        assert_eq!(pragmas[3], format!("Integer({APPLICATION_ID})"));
        // The WAL index is in memory (`unix-excl`), not in a `-shm` file.
        assert!(!dir.path().join(format!("{FILE_NAME}-shm")).exists());
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
            let rows: i64 = store
                .readers
                .run(|conn| {
                    conn.query_row("SELECT count(*) FROM log", [], |r| r.get(0))
                        .map_err(db_error)
                })
                .await
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

    /// Holds the writer in a job (after running `f` on it) until the
    /// returned sender is dropped: writes sent meanwhile queue up behind it
    /// and are then committed together.
    fn hold_writer_with(
        store: &SqliteStore,
        f: impl FnOnce(&mut Writer) + Send + 'static,
    ) -> mpsc::Sender<()> {
        let (release, released) = mpsc::channel::<()>();
        let (entered, has_entered) = mpsc::channel::<()>();
        store
            .writer
            .send(Job::Run(Box::new(move |writer| {
                f(writer);
                let _ = entered.send(());
                let _ = released.recv();
            })))
            .expect("the writer takes jobs");
        has_entered.recv().expect("the writer holds");
        release
    }

    fn hold_writer(store: &SqliteStore) -> mpsc::Sender<()> {
        hold_writer_with(store, |_| ())
    }

    type Pending<'a, T> = futures::future::BoxFuture<'a, Result<T, StoreError>>;

    /// Polls each write once, which sends it to the writer; none can be
    /// answered yet while the writer is held.
    async fn send_all<T>(writes: &mut [Pending<'_, T>]) {
        for write in writes.iter_mut() {
            assert!(futures::poll!(write.as_mut()).is_pending());
        }
    }

    fn revision_of<'a>(
        write: impl std::future::Future<Output = Result<KeyValue, StoreError>> + Send + 'a,
    ) -> Pending<'a, Revision> {
        use futures::FutureExt;
        write.map(|r| r.map(|kv| kv.mod_revision)).boxed()
    }

    fn value(i: usize) -> Vec<u8> {
        i.to_string().into_bytes()
    }

    #[test]
    fn writes_waiting_together_commit_in_one_transaction_in_arrival_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(dir.path());
        block(async {
            let release = hold_writer(&store);
            let keys: Vec<_> = (0..20).map(|i| format!("/k/{i:02}")).collect();
            let mut writes: Vec<_> = keys
                .iter()
                .enumerate()
                .map(|(i, key)| revision_of(store.create(key, value(i))))
                .collect();
            send_all(&mut writes).await;
            drop(release);
            let answers = futures::future::join_all(writes).await;
            assert_eq!(answers, (1..=20).map(Ok).collect::<Vec<_>>());
            assert_eq!(
                store.commit_stats(),
                CommitStats {
                    commits: 1,
                    writes: 20
                }
            );
            let page = store
                .list("/k/", ListOptions::default())
                .await
                .expect("list");
            assert_eq!(page.revision, 20);
            assert_eq!(page.items.len(), 20);
        });
    }

    #[test]
    fn concurrent_writers_share_commits() {
        const WRITERS: usize = 64;
        const WRITES_EACH: usize = 10;
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(open(dir.path()));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            // Each writer creates its key, then updates it: every write
            // depends on the one before it, as a client's replaces do.
            let tasks: Vec<_> = (0..WRITERS)
                .map(|w| {
                    let store = Arc::clone(&store);
                    tokio::spawn(async move {
                        let key = format!("/w/{w:02}");
                        let mut kv = store.create(&key, value(0)).await?;
                        for i in 1..WRITES_EACH {
                            kv = store.update(&key, kv.mod_revision, value(i)).await?;
                        }
                        Ok::<_, StoreError>(kv)
                    })
                })
                .collect();
            for task in tasks {
                let kv = task.await.expect("no panic").expect("every write succeeds");
                assert_eq!(&*kv.value, &value(WRITES_EACH - 1)[..]);
            }
        });
        let total = (WRITERS * WRITES_EACH) as u64;
        let stats = store.commit_stats();
        assert_eq!(stats.writes, total);
        assert!(
            stats.commits < stats.writes,
            "{} writes took {} commits",
            stats.writes,
            stats.commits
        );
        eprintln!("{} writes took {} commits", stats.writes, stats.commits);
        runtime.block_on(async {
            assert_eq!(store.current_revision().await, Ok(total));
            let page = store
                .list("/w/", ListOptions::default())
                .await
                .expect("list");
            assert_eq!((page.revision, page.items.len()), (total, WRITERS));
        });
    }

    #[test]
    fn a_batch_takes_at_most_its_bound_of_writes_and_of_bytes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(dir.path());
        block(async {
            let release = hold_writer(&store);
            let keys: Vec<_> = (0..BATCH_WRITES + 1).map(|i| format!("/n/{i}")).collect();
            let mut writes: Vec<_> = keys
                .iter()
                .enumerate()
                .map(|(i, key)| revision_of(store.create(key, value(i))))
                .collect();
            send_all(&mut writes).await;
            drop(release);
            for answer in futures::future::join_all(writes).await {
                answer.expect("create");
            }
            assert_eq!(store.commit_stats().commits, 2);

            // Two of these fit in one batch, three do not.
            let big = BATCH_BYTES_WRITTEN / 3;
            let release = hold_writer(&store);
            let keys: Vec<_> = (0..3).map(|i| format!("/b/{i}")).collect();
            let mut writes: Vec<_> = keys
                .iter()
                .map(|key| revision_of(store.create(key, vec![b'x'; big])))
                .collect();
            send_all(&mut writes).await;
            drop(release);
            for answer in futures::future::join_all(writes).await {
                answer.expect("create");
            }
            assert_eq!(
                store.commit_stats(),
                CommitStats {
                    commits: 4,
                    writes: BATCH_WRITES as u64 + 4
                }
            );
        });
    }

    #[test]
    fn a_failed_check_inside_a_batch_fails_only_that_write() {
        use futures::{FutureExt, StreamExt};
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(dir.path());
        block(async {
            store.create("/a", b"a1".to_vec()).await.expect("create"); // 1
            store.create("/b", b"b1".to_vec()).await.expect("create"); // 2
            let release = hold_writer(&store);
            let mut writes = vec![
                revision_of(store.update("/a", 1, b"a2".to_vec())), // 3
                // Checked against the write before it in the same batch.
                revision_of(store.update("/a", 1, b"a3".to_vec())),
                revision_of(store.create("/b", b"b2".to_vec())),
                revision_of(store.create("/c", b"c1".to_vec())), // 4
                store.delete("/b", 2).map(|r| r.map(|(_, r)| r)).boxed(), // 5
                // The create of /c in this batch is what it expects.
                revision_of(store.update("/c", 4, b"c2".to_vec())), // 6
                revision_of(store.update("/d", 1, b"d1".to_vec())),
            ];
            send_all(&mut writes).await;
            drop(release);
            assert_eq!(
                futures::future::join_all(writes).await,
                vec![
                    Ok(3),
                    Err(StoreError::Conflict { current: 3 }),
                    Err(StoreError::AlreadyExists),
                    Ok(4),
                    Ok(5),
                    Ok(6),
                    Err(StoreError::NotFound),
                ]
            );
            assert_eq!(
                store.commit_stats(),
                CommitStats {
                    commits: 3,
                    writes: 6
                }
            );
            let a = store.get("/a").await.expect("get").expect("present");
            assert_eq!((&*a.value, a.mod_revision), (&b"a2"[..], 3));
            assert_eq!(store.get("/b").await, Ok(None));
            let c = store.get("/c").await.expect("get").expect("present");
            assert_eq!(
                (&*c.value, c.create_revision, c.mod_revision),
                (&b"c2"[..], 4, 6)
            );
            let events: Vec<_> = store
                .watch("/", 2)
                .await
                .expect("watch")
                .take(4)
                .map(|e| e.expect("event").revision())
                .collect()
                .await;
            assert_eq!(events, vec![3, 4, 5, 6]);
        });
    }

    #[test]
    fn a_failed_commit_fails_every_write_of_its_batch_and_leaves_nothing_visible() {
        use futures::StreamExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(dir.path());
        block(async {
            store.create("/a", b"a1".to_vec()).await.expect("create"); // 1
            store.create("/b", b"b1".to_vec()).await.expect("create"); // 2
            let mut watch = store.watch("/", 0).await.expect("watch");
            for revision in 1..=2 {
                let event = watch.next().await.expect("an event").expect("no error");
                assert_eq!(event.revision(), revision);
            }
            let (stats, history) = (store.commit_stats(), store.history_bytes());
            // The next commit is turned into a rollback: COMMIT fails.
            let release = hold_writer_with(&store, |writer| {
                let mut fail = true;
                writer
                    .conn
                    .commit_hook(Some(move || std::mem::replace(&mut fail, false)))
                    .expect("commit hook");
            });
            let mut writes = vec![
                revision_of(store.update("/a", 1, b"a2".to_vec())),
                revision_of(store.create("/c", b"c1".to_vec())),
                // A failed check in a failed batch gets the batch's error.
                revision_of(store.create("/a", b"a3".to_vec())),
            ];
            send_all(&mut writes).await;
            drop(release);
            for answer in futures::future::join_all(writes).await {
                let message = backend_message(answer);
                assert!(message.contains("sqlite"), "unexpected message: {message}");
            }

            assert_eq!(store.current_revision().await, Ok(2));
            assert_eq!(
                (store.commit_stats(), store.history_bytes()),
                (stats, history)
            );
            let a = store.get("/a").await.expect("get").expect("present");
            assert_eq!((&*a.value, a.mod_revision), (&b"a1"[..], 1));
            assert_eq!(store.get("/c").await, Ok(None));
            let page = store.list("/", ListOptions::default()).await.expect("list");
            assert_eq!((page.revision, page.items.len()), (2, 2));
            let writer = store
                .on_writer(|writer| Ok((writer.conn.is_autocommit(), writer.revision)))
                .await;
            assert_eq!(writer, Ok((true, 2)));

            // The next write takes the revision the failed batch did not,
            // and it is the next event the watcher sees.
            let c = store.create("/c", b"c2".to_vec()).await.expect("create");
            assert_eq!(c.mod_revision, 3);
            let event = watch.next().await.expect("an event").expect("no error");
            assert_eq!((event.revision(), event.key()), (3, "/c"));
        });
    }

    #[test]
    fn a_full_disk_fails_the_whole_batch_and_writes_succeed_again_once_there_is_room() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(dir.path());
        block(async {
            store.create("/a", b"a1".to_vec()).await.expect("create"); // 1
                                                                       // No page beyond those the file has: SQLITE_FULL.
            let release = hold_writer_with(&store, |writer| {
                let pages: i64 = writer
                    .conn
                    .pragma_query_value(None, "page_count", |r| r.get(0))
                    .expect("page_count");
                writer
                    .conn
                    .pragma_update(None, "max_page_count", pages)
                    .expect("max_page_count");
            });
            let big = || vec![b'x'; 256 * 1024];
            let mut writes = vec![
                revision_of(store.update("/a", 1, b"a2".to_vec())),
                revision_of(store.create("/big/1", big())),
                revision_of(store.create("/big/2", big())),
            ];
            send_all(&mut writes).await;
            drop(release);
            for answer in futures::future::join_all(writes).await {
                let message = backend_message(answer);
                assert!(message.contains("full"), "unexpected message: {message}");
            }
            assert_eq!(store.current_revision().await, Ok(1));
            let a = store.get("/a").await.expect("get").expect("present");
            assert_eq!(a.mod_revision, 1);
            assert_eq!(store.get("/big/1").await, Ok(None));

            store
                .on_writer(|writer| {
                    writer
                        .conn
                        .pragma_update(None, "max_page_count", i64::from(u32::MAX - 1))
                        .map_err(db_error)
                })
                .await
                .expect("room again");
            let written = store.create("/big/1", big()).await.expect("create");
            assert_eq!(written.mod_revision, 2);
        });
    }

    #[test]
    fn reads_do_not_wait_for_the_writer() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(dir.path());
        block(async {
            store.create("/a", b"a1".to_vec()).await.expect("create");
            let release = hold_writer(&store);
            let mut writes = vec![revision_of(store.update("/a", 1, b"a2".to_vec()))];
            send_all(&mut writes).await;
            let reads = async {
                let a = store.get("/a").await.expect("get").expect("present");
                let page = store.list("/", ListOptions::default()).await.expect("list");
                (a.mod_revision, page.revision)
            };
            let read = tokio::time::timeout(Duration::from_secs(10), reads).await;
            assert_eq!(read, Ok((1, 1)), "reads waited for the busy writer");
            drop(release);
            assert_eq!(futures::future::join_all(writes).await, vec![Ok(2)]);
            let a = store.get("/a").await.expect("get").expect("present");
            assert_eq!(a.mod_revision, 2);
        });
    }
}

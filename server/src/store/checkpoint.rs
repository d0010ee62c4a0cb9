//! The SQLite store's checkpoints, run beside its writer.
//!
//! In WAL mode a commit appends pages to the log, and a checkpoint copies
//! them back into the database file. SQLite runs one inside the commit
//! that grows the log past 1000 pages, so that commit — and every write
//! waiting for the writer — also waits for the copy and for an fsync of
//! the database file: a fifth of the writer's time under load. The writer
//! turns that off (`wal_autocheckpoint=0`). After a commit that leaves the
//! log past [`START_PAGES`] (and again each [`START_PAGES`] more), it
//! wakes this module's thread, which runs
//! passive checkpoints on its own connection: they copy what is committed
//! without blocking the writer or the readers. Durability does not change:
//! a write is on disk once its commit fsynced the log.
//!
//! A passive checkpoint cannot start the log over while writes keep
//! coming: the log restarts only at a write that begins after everything
//! in it was copied. So under unbroken load the log would grow; once it
//! passes [`WRITER_PAGES`], the writer runs a passive checkpoint itself,
//! between batches, when little is left to copy, and the next batch starts
//! the log over.

use std::cell::Cell;
use std::ffi::c_int;
use std::sync::mpsc::{self, SyncSender};
use std::thread::JoinHandle;

use rusqlite::hooks::Wal;
use rusqlite::Connection;

/// The log's pages past which the checkpointer is woken (SQLite's own
/// default for its automatic checkpoints), and again each time as many
/// more were appended.
const START_PAGES: c_int = 1000;

/// The log's pages past which the writer checkpoints itself (64 MiB of
/// 4 KiB pages).
const WRITER_PAGES: c_int = 16 * 1024;

thread_local! {
    /// The pages in the log after the last commit on this thread (each
    /// store's writer is its own thread).
    static LOG_PAGES: Cell<c_int> = const { Cell::new(0) };
}

/// SQLite's hook after each commit on the writer's connection, on the
/// committing thread.
fn note_pages(_wal: &Wal, pages: c_int) -> rusqlite::Result<()> {
    LOG_PAGES.with(|p| p.set(pages));
    Ok(())
}

/// The checkpointer thread, stopped and joined when dropped.
pub(super) struct Checkpointer {
    wake: Option<SyncSender<()>>,
    thread: Option<JoinHandle<()>>,
    /// The log's pages when the checkpointer was last woken.
    woken_at: Cell<c_int>,
}

impl Checkpointer {
    /// Turns off `writer`'s automatic checkpoints and starts the thread,
    /// which checkpoints on `own`, a read-write connection to the file.
    pub(super) fn start(writer: &Connection, own: Connection) -> std::io::Result<Self> {
        writer
            .pragma_update(None, "wal_autocheckpoint", 0)
            .map_err(std::io::Error::other)?;
        writer.wal_hook(Some(note_pages));
        let (wake, woken) = mpsc::sync_channel::<()>(1);
        let thread = std::thread::Builder::new()
            .name("sqlite-checkpoint".to_string())
            .spawn(move || {
                while woken.recv().is_ok() {
                    // A failure is tried again at the next wake, and the
                    // writer's own checkpoint bounds the log meanwhile.
                    let _ = checkpoint(&own);
                }
            })?;
        Ok(Checkpointer {
            wake: Some(wake),
            thread: Some(thread),
            woken_at: Cell::new(0),
        })
    }

    /// Called by the writer, on its thread, after each batch it answered:
    /// wakes the checkpointer when the log is long and has grown by
    /// [`START_PAGES`] since the last wake, or checkpoints on `writer`
    /// itself when the log is too long.
    ///
    /// Not after every batch once the log is long: under load the log
    /// does not start over, and a checkpointer woken per batch copied the
    /// same few pages of the jobs being written, and fsynced the file,
    /// hundreds of times a second (a fifth of the server's samples in
    /// `perf` of the replace load).
    pub(super) fn committed(&self, writer: &Connection) {
        let pages = LOG_PAGES.with(Cell::get);
        if pages < self.woken_at.get() {
            // The log started over.
            self.woken_at.set(0);
        }
        if pages >= WRITER_PAGES {
            // Busy when the checkpointer is at it: tried after the next batch.
            let _ = checkpoint(writer);
        } else if pages >= START_PAGES && pages - self.woken_at.get() >= START_PAGES {
            if let Some(wake) = &self.wake {
                // Full: the checkpointer has a wake pending already.
                let _ = wake.try_send(());
                self.woken_at.set(pages);
            }
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.wake = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One passive checkpoint on `conn`: whether it copied the whole log.
fn checkpoint(conn: &Connection) -> rusqlite::Result<bool> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
        let (busy, log, copied): (i64, i64, i64) = (row.get(0)?, row.get(1)?, row.get(2)?);
        Ok(busy == 0 && log == copied)
    })
}

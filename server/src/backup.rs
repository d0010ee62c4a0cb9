//! Online backup and restore of the SQLite store.
//!
//! **Backup: `GET /backup`.** The server copies its database with SQLite's
//! online backup API into a temporary file beside it, and streams that
//! file to the caller as `application/vnd.sqlite3`; the
//! `Mxjob-Backup-Revision` header says the revision it holds. The copy is
//! made in one backup step under the store's connection lock, the lock
//! every write takes from its compare to its commit, so it holds exactly
//! the writes acknowledged up to that revision and none after; writes wait
//! while the pages are copied (a memory-speed copy of the file, not the
//! time the caller takes to download it). The temporary file is unlinked
//! as soon as it is open, so an aborted download leaves nothing behind; a
//! crash in the middle of a copy can leave one `.backup-*.db` file, which
//! the next start removes.
//!
//! Why the caller gets the file rather than the server writing it to a
//! path of its own: this is how etcd's snapshot works (`etcdctl snapshot
//! save` streams it to the client), it needs no writable backup volume on
//! the server and no second flag, and the file ends up where the operator
//! is — `kubectl get --raw /backup > mxjob.db` is a backup.
//!
//! Who may: as for every path outside the API's resources, the policy's
//! `nonResourceURLs` rules (Kubernetes RBAC's shape): a rule granting
//! `get` on `/backup`. Without a policy file every authenticated caller
//! may, as they may read every job anyway; without a token file, anonymous
//! callers on loopback may, as for the rest of the API.
//!
//! **Restore: `mxjob-server restore --from FILE --data-dir DIR`**, with the
//! server stopped. It refuses a data directory whose database is locked
//! (a server is using it), and one that already holds a database unless
//! `--force` is given. The file is copied into the directory under a
//! temporary name, checked there — `PRAGMA integrity_check` must answer
//! `ok`, and it must be an mxjob database of a schema version this build
//! reads — made durable, and only then renamed over `mxjob.db`, after the
//! old database's write-ahead log is removed (a log left beside a new
//! file would be replayed onto it). A server started on the directory then
//! serves the objects as they were at the backup's revision and goes on
//! from the revision after it.

use std::path::{Path, PathBuf};

use dropshot::RequestContext;
use futures::StreamExt;
use mxjob_api::error::ApiError;
use rusqlite::{Connection, OpenFlags};
use slog::info;

use crate::auth::User;
use crate::server::ServerState;
use crate::store::sqlite::{try_lock_directory, APPLICATION_ID, FILE_NAME, SCHEMA_VERSION};
use crate::store::Revision;

/// The media type of a backup.
pub const CONTENT_TYPE: &str = "application/vnd.sqlite3";

/// The response header that carries a backup's revision.
pub const REVISION_HEADER: &str = "mxjob-backup-revision";

/// The names of the temporary copies, in the data directory.
const COPY_PREFIX: &str = ".backup-";

/// Where a new temporary copy of the database in `data_dir` goes.
pub fn copy_path(data_dir: &Path) -> PathBuf {
    let id = uuid::Uuid::new_v4().simple().to_string();
    data_dir.join(format!("{COPY_PREFIX}{id}.db"))
}

/// Removes copies a crash left in `data_dir` (run while this server holds
/// the store, so no other server is making one). Returns how many.
pub fn remove_stale_copies(data_dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(data_dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .filter(|entry| {
            entry
                .file_name()
                .to_str()
                .is_some_and(|name| name.starts_with(COPY_PREFIX))
        })
        .filter(|entry| std::fs::remove_file(entry.path()).is_ok())
        .count()
}

/// Answers `GET /backup` for `user`, whom the handler has authorized.
pub async fn respond(
    rqctx: &RequestContext<ServerState>,
    user: &User,
) -> Result<http::Response<dropshot::Body>, ApiError> {
    let store = rqctx.context().backup.as_ref().ok_or_else(|| {
        ApiError::not_found_message(
            "this server keeps no SQLite database to back up: with --store etcd, back etcd up \
             with `etcdctl snapshot save`; --store memory keeps nothing",
        )
    })?;
    let dir = store.path().parent().unwrap_or(Path::new("."));
    let copy = copy_path(dir);
    let revision = match store.backup_into(copy.clone()).await {
        Ok(revision) => revision,
        Err(error) => {
            let _ = tokio::fs::remove_file(&copy).await;
            return Err(ApiError::internal(error));
        }
    };
    let opened = tokio::fs::File::open(&copy).await;
    // Open or not, the name goes now: an open file lives on unnamed.
    let _ = tokio::fs::remove_file(&copy).await;
    let file = opened.map_err(ApiError::internal)?;
    let bytes = file.metadata().await.map_err(ApiError::internal)?.len();
    info!(rqctx.log, "backup"; "user" => &user.name, "revision" => revision, "bytes" => bytes);
    let body = http_body_util::StreamBody::new(
        tokio_util::io::ReaderStream::new(file).map(|chunk| chunk.map(http_body::Frame::data)),
    );
    http::Response::builder()
        .status(http::StatusCode::OK)
        .header(http::header::CONTENT_TYPE, CONTENT_TYPE)
        .header(http::header::CONTENT_LENGTH, bytes)
        .header(
            http::header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"mxjob-{revision}.db\""),
        )
        .header(REVISION_HEADER, revision)
        .body(dropshot::Body::wrap(body))
        .map_err(ApiError::internal)
}

/// What a restore did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Restored {
    /// The database written.
    pub path: PathBuf,
    /// The newest revision it holds; the server goes on after it.
    pub revision: Revision,
    /// The objects (of every kind) it holds.
    pub objects: u64,
}

/// Why a restore refused or failed; each says what to do.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("{0} is locked: a server is using this data directory; stop it first")]
    Locked(PathBuf),
    #[error("{0} already holds a database; pass --force to replace it")]
    Exists(PathBuf),
    #[error("{path} fails PRAGMA integrity_check: {report}")]
    Corrupt { path: PathBuf, report: String },
    #[error(
        "{path} is not an mxjob database of a schema version this build reads \
         (application_id {application_id:#x}, schema version {version}; this build reads \
         1 to {SCHEMA_VERSION})"
    )]
    Foreign {
        path: PathBuf,
        application_id: i64,
        version: i64,
    },
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("reading {path}: {source}")]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> RestoreError + 'a {
    move |source| RestoreError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

fn sqlite<'a>(path: &'a Path) -> impl FnOnce(rusqlite::Error) -> RestoreError + 'a {
    move |source| RestoreError::Sqlite {
        path: path.to_path_buf(),
        source,
    }
}

/// Fails when a server holds `path` (the store keeps an exclusive lock
/// while it runs). Opening and closing it also folds a stopped server's
/// write-ahead log into the file.
fn check_unlocked(path: &Path) -> Result<(), RestoreError> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE)
        .map_err(sqlite(path))?;
    let locked = |e: &rusqlite::Error| {
        matches!(
            e.sqlite_error_code(),
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
        )
    };
    let probe = conn
        .busy_timeout(std::time::Duration::ZERO)
        .and_then(|()| conn.execute_batch("BEGIN IMMEDIATE; ROLLBACK;"));
    match probe {
        Err(e) if locked(&e) => Err(RestoreError::Locked(path.to_path_buf())),
        Err(e) => Err(sqlite(path)(e)),
        Ok(()) => conn.close().map_err(|(_, e)| sqlite(path)(e)),
    }
}

/// Checks the copy at `path` and reads its revision and object count.
fn inspect(path: &Path) -> Result<(Revision, u64), RestoreError> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE)
        .map_err(sqlite(path))?;
    let report: Vec<String> = conn
        .prepare("PRAGMA integrity_check")
        .and_then(|mut statement| {
            statement
                .query_map([], |row| row.get::<_, String>(0))?
                .collect::<Result<_, _>>()
        })
        .map_err(sqlite(path))?;
    if report != ["ok"] {
        return Err(RestoreError::Corrupt {
            path: path.to_path_buf(),
            report: report.join("; "),
        });
    }
    let pragma = |name: &str| -> Result<i64, RestoreError> {
        conn.pragma_query_value(None, name, |row| row.get(0))
            .map_err(sqlite(path))
    };
    let (application_id, version) = (pragma("application_id")?, pragma("user_version")?);
    if application_id != APPLICATION_ID || !(1..=SCHEMA_VERSION).contains(&version) {
        return Err(RestoreError::Foreign {
            path: path.to_path_buf(),
            application_id,
            version,
        });
    }
    let (revision, objects): (i64, i64) = conn
        .query_row(
            "SELECT
               max(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'log'), 0),
                   COALESCE((SELECT MAX(id) FROM log), 0)),
               (SELECT count(*) FROM log AS l WHERE l.deleted = 0
                  AND l.id = (SELECT MAX(n.id) FROM log AS n WHERE n.key = l.key))",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .map_err(sqlite(path))?;
    conn.close().map_err(|(_, e)| sqlite(path)(e))?;
    Ok((
        Revision::try_from(revision).unwrap_or(0),
        u64::try_from(objects).unwrap_or(0),
    ))
}

/// Restores the backup `from` into `data_dir`; see the module documentation.
pub fn restore(from: &Path, data_dir: &Path, force: bool) -> Result<Restored, RestoreError> {
    std::fs::create_dir_all(data_dir).map_err(io("creating", data_dir))?;
    let target = data_dir.join(FILE_NAME);
    // A running server holds this lock; holding it keeps one from starting
    // while the file is replaced.
    let _lock = try_lock_directory(data_dir)
        .map_err(io("locking", data_dir))?
        .ok_or_else(|| RestoreError::Locked(target.clone()))?;
    if target.exists() {
        check_unlocked(&target)?;
        if !force {
            return Err(RestoreError::Exists(target));
        }
    }
    let staging = data_dir.join(format!("{FILE_NAME}.restoring"));
    let result = stage(from, &staging).and_then(|(revision, objects)| {
        for suffix in ["-wal", "-shm", "-journal"] {
            let stale = data_dir.join(format!("{FILE_NAME}{suffix}"));
            match std::fs::remove_file(&stale) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(io("removing", &stale)(e))
                }
                _ => {}
            }
        }
        std::fs::rename(&staging, &target).map_err(io("renaming into", &target))?;
        std::fs::File::open(data_dir)
            .and_then(|dir| dir.sync_all())
            .map_err(io("syncing", data_dir))?;
        Ok(Restored {
            path: target.clone(),
            revision,
            objects,
        })
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&staging);
    }
    result
}

/// Copies `from` to `staging`, checks the copy and makes it durable.
fn stage(from: &Path, staging: &Path) -> Result<(Revision, u64), RestoreError> {
    std::fs::copy(from, staging).map_err(io("copying the backup to", staging))?;
    let inspected = inspect(staging)?;
    std::fs::File::open(staging)
        .and_then(|file| file.sync_all())
        .map_err(io("syncing", staging))?;
    Ok(inspected)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::{SqliteOptions, SqliteStore};
    use crate::store::{block_on, Store};

    fn store_with(dir: &Path, keys: &[&str]) -> SqliteStore {
        let store = SqliteStore::open(dir, SqliteOptions::default()).expect("open");
        block_on(async {
            for key in keys {
                store.create(key, b"v".to_vec()).await.expect("create");
            }
        });
        store
    }

    #[test]
    fn a_backup_restores_into_an_empty_directory_at_its_revision() {
        let (live, restored) = (
            tempfile::tempdir().expect("dir"),
            tempfile::tempdir().expect("dir"),
        );
        let store = store_with(live.path(), &["/a", "/b"]);
        let copy = copy_path(live.path());
        let revision = block_on(store.backup_into(copy.clone())).expect("backup");
        assert_eq!(revision, 2);
        block_on(store.create("/c", b"v".to_vec())).expect("a write after the backup");
        let done = restore(&copy, restored.path(), false).expect("restore");
        assert_eq!((done.revision, done.objects), (2, 2));
        let reopened = SqliteStore::open(restored.path(), SqliteOptions::default()).expect("open");
        block_on(async {
            assert_eq!(reopened.current_revision().await, Ok(2));
            assert!(reopened.get("/c").await.expect("get").is_none());
            let next = reopened.create("/d", b"v".to_vec()).await.expect("create");
            assert_eq!(next.mod_revision, 3);
        });
        assert_eq!(remove_stale_copies(live.path()), 1);
    }

    #[test]
    fn restore_refuses_a_directory_in_use_or_already_holding_a_database() {
        let (live, other) = (
            tempfile::tempdir().expect("dir"),
            tempfile::tempdir().expect("dir"),
        );
        let store = store_with(live.path(), &["/a"]);
        let copy = other.path().join("backup.db");
        block_on(store.backup_into(copy.clone())).expect("backup");
        assert!(matches!(
            restore(&copy, live.path(), true),
            Err(RestoreError::Locked(_))
        ));
        drop(store);
        assert!(matches!(
            restore(&copy, live.path(), false),
            Err(RestoreError::Exists(_))
        ));
        let done = restore(&copy, live.path(), true).expect("forced");
        assert_eq!(done.revision, 1);
    }

    #[test]
    fn restore_refuses_files_that_are_not_sound_mxjob_databases() {
        let dir = tempfile::tempdir().expect("dir");
        let foreign = dir.path().join("foreign.db");
        Connection::open(&foreign)
            .and_then(|c| c.execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);"))
            .expect("a foreign database");
        let target = dir.path().join("data");
        assert!(matches!(
            restore(&foreign, &target, false),
            Err(RestoreError::Foreign { .. })
        ));
        let garbage = dir.path().join("garbage.db");
        std::fs::write(&garbage, vec![7u8; 8192]).expect("write");
        assert!(restore(&garbage, &target, false).is_err());
        assert!(!target.join(FILE_NAME).exists());
        assert!(!target.join(format!("{FILE_NAME}.restoring")).exists());
    }
}

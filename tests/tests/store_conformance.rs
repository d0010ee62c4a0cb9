//! One conformance suite for every storage backend.
//!
//! The registry relies on the [`Store`] contract, not on a backend, so each
//! backend must behave the same: compare-and-swap writes, one revision
//! counter, snapshot lists at a revision with paging, gap-free watches that
//! resume from a revision, and compaction that fails old reads with
//! `Compacted`. The cases are plain async functions over `Arc<dyn Store>`
//! in [`cases`]; [`conformance_suite!`] turns them into one `#[tokio::test]`
//! per case for a backend, so adding a backend (etcd, say) is one line:
//!
//! ```ignore
//! conformance_suite!(etcd, etcd_fixture());
//! ```
//!
//! Stores are built with history windows far larger than any case writes,
//! so that only the compaction the cases ask for happens.

use std::any::Any;
use std::sync::Arc;

use mxjob_server::store::etcd::{EtcdOptions, EtcdStore};
use mxjob_server::store::memory::MemoryStore;
use mxjob_server::store::sqlite::{SqliteOptions, SqliteStore};
use mxjob_server::store::Store;
use mxjob_test_support::etcd::Etcd;

/// A store under test, and whatever must outlive it (a temporary directory).
pub struct Fixture {
    pub store: Arc<dyn Store>,
    _keep: Option<Box<dyn Any + Send>>,
}

/// History windows no case gets near.
const LARGE_WINDOW: u64 = 1_000_000;

async fn memory_fixture() -> Fixture {
    Fixture {
        store: Arc::new(MemoryStore::with_window(LARGE_WINDOW)),
        _keep: None,
    }
}

async fn sqlite_fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("temporary directory");
    let options = SqliteOptions {
        window_revisions: LARGE_WINDOW,
        ..SqliteOptions::default()
    };
    let store = SqliteStore::open(dir.path(), options).expect("the store opens");
    Fixture {
        store: Arc::new(store),
        _keep: Some(Box::new(dir)),
    }
}

/// A fresh etcd per test (each case counts revisions from an empty store),
/// started by the same launcher as the server's replica tests.
async fn etcd_fixture() -> Fixture {
    let etcd = Etcd::start().await;
    let store = EtcdStore::connect(EtcdOptions::new(vec![etcd.endpoint.clone()]))
        .await
        .expect("the store connects to the test etcd");
    Fixture {
        store: Arc::new(store),
        _keep: Some(Box::new(etcd)),
    }
}

/// `conformance_suite!(module, fixture_future)` runs every case in
/// [`cases`] against the store the future builds, each in its own test.
macro_rules! conformance_suite {
    ($backend:ident, $fixture:expr) => {
        mod $backend {
            use super::*;
            conformance_suite!(@cases $fixture;
                revisions_start_at_one_and_each_write_takes_the_next,
                create_of_an_existing_key_fails_and_writes_nothing,
                stale_updates_and_deletes_conflict_and_write_nothing,
                updates_and_deletes_of_missing_keys_are_not_found,
                delete_returns_the_last_value_and_a_recreate_starts_a_new_life,
                concurrent_updates_from_one_revision_let_exactly_one_win,
                concurrent_creates_of_one_key_let_exactly_one_win,
                concurrent_writers_get_distinct_consecutive_revisions,
                values_are_kept_byte_for_byte,
                a_list_at_a_past_revision_sees_that_snapshot,
                a_list_reads_only_its_prefix_in_byte_order,
                pages_at_one_revision_form_a_consistent_snapshot,
                a_list_without_a_revision_reads_and_reports_the_newest,
                a_list_at_a_future_revision_fails,
                a_watch_replays_history_then_follows_live_writes,
                watch_events_describe_creates_updates_and_deletes,
                a_watch_resumes_after_a_revision_without_gaps_or_repeats,
                a_watch_sees_only_its_prefix,
                a_watcher_that_falls_behind_the_kept_history_is_cut_off,
                lists_and_watches_before_the_compacted_revision_fail,
                compaction_keeps_the_current_state,
                compaction_keeps_what_later_events_replaced,
                compaction_never_lets_a_revision_repeat,
                compaction_beyond_the_newest_revision_fails,
            );
        }
    };
    (@cases $fixture:expr; $($case:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let fixture: Fixture = $fixture.await;
                cases::$case(&fixture.store).await;
            }
        )+
    };
}

conformance_suite!(memory, memory_fixture());
conformance_suite!(sqlite, sqlite_fixture());
conformance_suite!(etcd, etcd_fixture());

mod cases {
    use std::collections::HashSet;
    use std::sync::Arc;
    use std::time::Duration;

    use futures::StreamExt;
    use mxjob_server::store::{
        Event, EventStream, KeyValue, ListOptions, ListPage, Revision, Store, StoreError,
    };

    /// How long a case waits for an event before failing.
    const EVENT_TIMEOUT: Duration = Duration::from_secs(20);

    fn bytes(s: &str) -> Vec<u8> {
        s.as_bytes().to_vec()
    }

    async fn create(store: &Arc<dyn Store>, key: &str, value: &str) -> KeyValue {
        store.create(key, bytes(value)).await.expect("create")
    }

    async fn update(store: &Arc<dyn Store>, kv: &KeyValue, value: &str) -> KeyValue {
        store
            .update(&kv.key, kv.mod_revision, bytes(value))
            .await
            .expect("update")
    }

    async fn list_at(
        store: &Arc<dyn Store>,
        prefix: &str,
        revision: Revision,
    ) -> Result<ListPage, StoreError> {
        store
            .list(
                prefix,
                ListOptions {
                    revision: Some(revision),
                    ..Default::default()
                },
            )
            .await
    }

    fn pairs(page: &ListPage) -> Vec<(String, String)> {
        page.items
            .iter()
            .map(|kv| {
                (
                    kv.key.clone(),
                    String::from_utf8_lossy(&kv.value).into_owned(),
                )
            })
            .collect()
    }

    fn pair(key: &str, value: &str) -> (String, String) {
        (key.to_string(), value.to_string())
    }

    /// The next `n` events; fails if the stream ends, errs or stalls.
    async fn take(stream: &mut EventStream, n: usize) -> Vec<Event> {
        let mut events = Vec::with_capacity(n);
        while events.len() < n {
            match tokio::time::timeout(EVENT_TIMEOUT, stream.next()).await {
                Ok(Some(Ok(event))) => events.push(event),
                Ok(Some(Err(error))) => panic!("the watch failed: {error}"),
                Ok(None) => panic!("the watch ended after {} events", events.len()),
                Err(_) => panic!("no event within {EVENT_TIMEOUT:?}"),
            }
        }
        events
    }

    fn revisions(events: &[Event]) -> Vec<Revision> {
        events.iter().map(Event::revision).collect()
    }

    pub async fn revisions_start_at_one_and_each_write_takes_the_next(store: &Arc<dyn Store>) {
        assert_eq!(store.current_revision().await, Ok(0));
        let a = create(store, "/a", "1").await;
        let b = create(store, "/b", "1").await;
        let a2 = update(store, &a, "2").await;
        let (_, deleted_at) = store.delete("/b", b.mod_revision).await.expect("delete");
        assert_eq!(
            (a.mod_revision, b.mod_revision, a2.mod_revision, deleted_at),
            (1, 2, 3, 4)
        );
        assert_eq!((a.create_revision, a2.create_revision), (1, 1));
        assert_eq!(store.current_revision().await, Ok(4));
    }

    pub async fn create_of_an_existing_key_fails_and_writes_nothing(store: &Arc<dyn Store>) {
        create(store, "/a", "first").await;
        assert_eq!(
            store.create("/a", bytes("second")).await,
            Err(StoreError::AlreadyExists)
        );
        let kv = store.get("/a").await.expect("get").expect("present");
        assert_eq!(&*kv.value, b"first");
        assert_eq!(store.current_revision().await, Ok(1));
    }

    pub async fn stale_updates_and_deletes_conflict_and_write_nothing(store: &Arc<dyn Store>) {
        let a = create(store, "/a", "1").await;
        let a2 = update(store, &a, "2").await;
        assert_eq!(
            store.update("/a", a.mod_revision, bytes("3")).await,
            Err(StoreError::Conflict {
                current: a2.mod_revision
            })
        );
        assert_eq!(
            store.delete("/a", a.mod_revision).await,
            Err(StoreError::Conflict {
                current: a2.mod_revision
            })
        );
        assert_eq!(store.get("/a").await, Ok(Some(a2)));
        assert_eq!(store.current_revision().await, Ok(2));
    }

    pub async fn updates_and_deletes_of_missing_keys_are_not_found(store: &Arc<dyn Store>) {
        assert_eq!(
            store.update("/never", 1, bytes("x")).await,
            Err(StoreError::NotFound)
        );
        assert_eq!(store.delete("/never", 1).await, Err(StoreError::NotFound));
        let a = create(store, "/a", "1").await;
        store.delete("/a", a.mod_revision).await.expect("delete");
        assert_eq!(
            store.update("/a", a.mod_revision, bytes("x")).await,
            Err(StoreError::NotFound)
        );
        assert_eq!(
            store.delete("/a", a.mod_revision).await,
            Err(StoreError::NotFound)
        );
        assert_eq!(store.current_revision().await, Ok(2));
    }

    pub async fn delete_returns_the_last_value_and_a_recreate_starts_a_new_life(
        store: &Arc<dyn Store>,
    ) {
        let a = create(store, "/a", "1").await;
        let a2 = update(store, &a, "2").await;
        let (deleted, at) = store.delete("/a", a2.mod_revision).await.expect("delete");
        assert_eq!(deleted, a2);
        assert_eq!(at, 3);
        assert_eq!(store.get("/a").await, Ok(None));
        let again = create(store, "/a", "new").await;
        assert_eq!((again.create_revision, again.mod_revision), (4, 4));
        let updated = update(store, &again, "newer").await;
        assert_eq!((updated.create_revision, updated.mod_revision), (4, 5));
    }

    pub async fn concurrent_updates_from_one_revision_let_exactly_one_win(store: &Arc<dyn Store>) {
        let base = create(store, "/race", "base").await;
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let store = Arc::clone(store);
                let expected = base.mod_revision;
                tokio::spawn(async move {
                    store
                        .update("/race", expected, format!("writer {i}").into_bytes())
                        .await
                })
            })
            .collect();
        let mut winners = Vec::new();
        let mut conflicts = Vec::new();
        for task in tasks {
            match task.await.expect("task") {
                Ok(kv) => winners.push(kv),
                Err(StoreError::Conflict { current }) => conflicts.push(current),
                Err(other) => panic!("unexpected error {other:?}"),
            }
        }
        assert_eq!(winners.len(), 1, "exactly one writer wins");
        let winner = &winners[0];
        assert!(conflicts.iter().all(|c| *c == winner.mod_revision));
        assert_eq!(store.get("/race").await, Ok(Some(winner.clone())));
        assert_eq!(store.current_revision().await, Ok(2));
    }

    pub async fn concurrent_creates_of_one_key_let_exactly_one_win(store: &Arc<dyn Store>) {
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let store = Arc::clone(store);
                tokio::spawn(async move {
                    store
                        .create("/once", format!("writer {i}").into_bytes())
                        .await
                })
            })
            .collect();
        let mut created = 0;
        for task in tasks {
            match task.await.expect("task") {
                Ok(_) => created += 1,
                Err(StoreError::AlreadyExists) => {}
                Err(other) => panic!("unexpected error {other:?}"),
            }
        }
        assert_eq!(created, 1);
        assert_eq!(store.current_revision().await, Ok(1));
    }

    pub async fn concurrent_writers_get_distinct_consecutive_revisions(store: &Arc<dyn Store>) {
        let tasks: Vec<_> = (0..8)
            .map(|writer| {
                let store = Arc::clone(store);
                tokio::spawn(async move {
                    let mut revisions = Vec::new();
                    for i in 0..20 {
                        let kv = store
                            .create(&format!("/w{writer}/{i}"), b"v".to_vec())
                            .await
                            .expect("create");
                        revisions.push(kv.mod_revision);
                    }
                    revisions
                })
            })
            .collect();
        let mut all = Vec::new();
        for task in tasks {
            let revisions = task.await.expect("task");
            assert!(
                revisions.windows(2).all(|w| w[0] < w[1]),
                "one writer's revisions increase"
            );
            all.extend(revisions);
        }
        all.sort_unstable();
        assert_eq!(all, (1..=160).collect::<Vec<_>>());
    }

    pub async fn values_are_kept_byte_for_byte(store: &Arc<dyn Store>) {
        let binary: Vec<u8> = (0..=255).collect();
        let kv = store.create("/bin", binary.clone()).await.expect("create");
        assert_eq!(&*kv.value, &binary[..]);
        let empty = store.create("/empty", Vec::new()).await.expect("create");
        assert_eq!(&*empty.value, b"");
        let got = store.get("/bin").await.expect("get").expect("present");
        assert_eq!(&*got.value, &binary[..]);
        let got = store.get("/empty").await.expect("get").expect("present");
        assert_eq!(&*got.value, b"");
        let page = store.list("/", ListOptions::default()).await.expect("list");
        assert_eq!(page.items.len(), 2);
        let updated = store
            .update("/empty", empty.mod_revision, Vec::new())
            .await
            .expect("an empty value is a value");
        assert_eq!(updated.create_revision, empty.create_revision);
    }

    pub async fn a_list_at_a_past_revision_sees_that_snapshot(store: &Arc<dyn Store>) {
        let a = create(store, "/p/a", "a1").await; // 1
        let b = create(store, "/p/b", "b1").await; // 2
        create(store, "/q/c", "c1").await; // 3
        update(store, &a, "a2").await; // 4
        store.delete("/p/b", b.mod_revision).await.expect("delete"); // 5
        create(store, "/p/b", "b2").await; // 6

        let at =
            |revision| async move { pairs(&list_at(store, "/p/", revision).await.expect("list")) };
        assert_eq!(at(1).await, vec![pair("/p/a", "a1")]);
        assert_eq!(at(3).await, vec![pair("/p/a", "a1"), pair("/p/b", "b1")]);
        assert_eq!(at(4).await, vec![pair("/p/a", "a2"), pair("/p/b", "b1")]);
        assert_eq!(at(5).await, vec![pair("/p/a", "a2")]);
        assert_eq!(at(6).await, vec![pair("/p/a", "a2"), pair("/p/b", "b2")]);
        let page = list_at(store, "/p/", 3).await.expect("list");
        assert_eq!(page.revision, 3);
        assert_eq!(
            page.items
                .iter()
                .map(|kv| (kv.create_revision, kv.mod_revision))
                .collect::<Vec<_>>(),
            vec![(1, 1), (2, 2)]
        );
        let now = list_at(store, "/p/", 6).await.expect("list");
        assert_eq!(now.items[1].create_revision, 6, "the recreated key");
    }

    pub async fn a_list_reads_only_its_prefix_in_byte_order(store: &Arc<dyn Store>) {
        for key in [
            "/p/z", "/p/é", "/p/a", "/p", "/p0", "/o/x", "/q/a", "/a_b/1", "/axb/1", "/a%b/1",
            "/aab/1",
        ] {
            create(store, key, "v").await;
        }
        let keys =
            |page: ListPage| -> Vec<String> { page.items.into_iter().map(|kv| kv.key).collect() };
        let page = store
            .list("/p/", ListOptions::default())
            .await
            .expect("list");
        // Byte order: 'é' (0xC3 0xA9) sorts after 'z'.
        assert_eq!(keys(page), vec!["/p/a", "/p/z", "/p/é"]);
        // `_` and `%` are not wildcards.
        let page = store
            .list("/a_b/", ListOptions::default())
            .await
            .expect("list");
        assert_eq!(keys(page), vec!["/a_b/1"]);
        let page = store
            .list("/a%b/", ListOptions::default())
            .await
            .expect("list");
        assert_eq!(keys(page), vec!["/a%b/1"]);
        // The empty prefix is everything.
        let page = store.list("", ListOptions::default()).await.expect("list");
        assert_eq!(page.items.len(), 11);
    }

    pub async fn pages_at_one_revision_form_a_consistent_snapshot(store: &Arc<dyn Store>) {
        let mut kvs = Vec::new();
        for k in ["a", "b", "c", "d", "e"] {
            kvs.push(create(store, &format!("/p/{k}"), &format!("{k}1")).await);
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
        assert_eq!(pairs(&first), vec![pair("/p/a", "a1"), pair("/p/b", "b1")]);
        assert!(first.more);
        let snapshot = first.revision;

        // Writes between the pages must not show in later pages.
        update(store, &kvs[2], "c2").await;
        store
            .delete("/p/d", kvs[3].mod_revision)
            .await
            .expect("delete");
        create(store, "/p/bb", "new").await;
        create(store, "/p/f", "new").await;

        let next = |after: &str| {
            store.list(
                "/p/",
                ListOptions {
                    revision: Some(snapshot),
                    start_after: Some(after.to_string()),
                    limit: Some(2),
                },
            )
        };
        let second = next("/p/b").await.expect("list");
        assert_eq!(pairs(&second), vec![pair("/p/c", "c1"), pair("/p/d", "d1")]);
        assert!(second.more);
        assert_eq!(second.revision, snapshot);
        let third = next("/p/d").await.expect("list");
        assert_eq!(pairs(&third), vec![pair("/p/e", "e1")]);
        assert!(!third.more);

        // A limit that exactly fits the rest has no more.
        let exact = next("/p/c").await.expect("list");
        assert_eq!(exact.items.len(), 2);
        assert!(!exact.more);
        // A continue key before the prefix starts at the prefix.
        let before = store
            .list(
                "/p/",
                ListOptions {
                    start_after: Some("/a".to_string()),
                    limit: Some(1),
                    revision: Some(snapshot),
                },
            )
            .await
            .expect("list");
        assert_eq!(pairs(&before), vec![pair("/p/a", "a1")]);
    }

    pub async fn a_list_without_a_revision_reads_and_reports_the_newest(store: &Arc<dyn Store>) {
        let a = create(store, "/p/a", "1").await;
        update(store, &a, "2").await;
        let page = store
            .list("/p/", ListOptions::default())
            .await
            .expect("list");
        assert_eq!(page.revision, 2);
        assert_eq!(pairs(&page), vec![pair("/p/a", "2")]);
        let zero = list_at(store, "/p/", 0).await.expect("list");
        assert_eq!(zero.revision, 2, "revision 0 means the newest");
    }

    pub async fn a_list_at_a_future_revision_fails(store: &Arc<dyn Store>) {
        create(store, "/p/a", "1").await;
        assert_eq!(
            list_at(store, "/p/", 2).await.map(|p| p.revision),
            Err(StoreError::FutureRevision { current: 1 })
        );
    }

    pub async fn a_watch_replays_history_then_follows_live_writes(store: &Arc<dyn Store>) {
        let a = create(store, "/p/a", "1").await;
        create(store, "/p/b", "1").await;
        update(store, &a, "2").await;
        let mut watch = store.watch("/p/", 0).await.expect("watch");
        let history = take(&mut watch, 3).await;
        assert_eq!(revisions(&history), vec![1, 2, 3]);

        let writer = {
            let store = Arc::clone(store);
            tokio::spawn(async move {
                for i in 0..5 {
                    store
                        .create(&format!("/p/live{i}"), b"v".to_vec())
                        .await
                        .expect("create");
                }
            })
        };
        let live = take(&mut watch, 5).await;
        assert_eq!(revisions(&live), vec![4, 5, 6, 7, 8]);
        writer.await.expect("writer");
    }

    pub async fn watch_events_describe_creates_updates_and_deletes(store: &Arc<dyn Store>) {
        let mut watch = store.watch("/p/", 0).await.expect("watch");
        let a = create(store, "/p/a", "1").await;
        let a2 = update(store, &a, "2").await;
        let (_, deleted_at) = store.delete("/p/a", a2.mod_revision).await.expect("delete");
        let again = create(store, "/p/a", "3").await;
        let expected = vec![
            Event::Put {
                kv: a.clone(),
                prev: None,
            },
            Event::Put {
                kv: a2.clone(),
                prev: Some(a.clone()),
            },
            Event::Delete {
                prev: a2.clone(),
                revision: deleted_at,
            },
            Event::Put {
                kv: again.clone(),
                prev: None,
            },
        ];
        assert_eq!(take(&mut watch, 4).await, expected, "live events");
        // The same history, read back from storage rather than live.
        let mut replay = store.watch("/p/", 0).await.expect("watch");
        assert_eq!(take(&mut replay, 4).await, expected, "replayed events");
    }

    pub async fn a_watch_resumes_after_a_revision_without_gaps_or_repeats(store: &Arc<dyn Store>) {
        const WRITES: u64 = 200;
        let mut kv = create(store, "/p/k", "0").await;
        let writer = {
            let store = Arc::clone(store);
            tokio::spawn(async move {
                for i in 1..WRITES {
                    kv = store
                        .update("/p/k", kv.mod_revision, i.to_string().into_bytes())
                        .await
                        .expect("update");
                    // Pauses keep the writer going while the watches start.
                    if i % 10 == 0 {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                }
            })
        };
        // Start watches while the writer runs, each from wherever the store
        // is: the backlog/live seam falls at a different place each time.
        let mut watches = Vec::new();
        for _ in 0..4 {
            let after = store.current_revision().await.expect("revision");
            watches.push((after, store.watch("/p/", after).await.expect("watch")));
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        writer.await.expect("writer");
        assert!(
            watches.iter().any(|(after, _)| *after < WRITES),
            "no watch started while the writer ran"
        );
        for (after, mut watch) in watches {
            let events = take(&mut watch, usize::try_from(WRITES - after).expect("count")).await;
            assert_eq!(
                revisions(&events),
                ((after + 1)..=WRITES).collect::<Vec<_>>(),
                "watch after {after}"
            );
            for event in &events {
                let Event::Put { kv, .. } = event else {
                    panic!("only updates were written");
                };
                assert_eq!(
                    kv.value.as_ref(),
                    (kv.mod_revision - 1).to_string().as_bytes()
                );
            }
        }
    }

    pub async fn a_watch_sees_only_its_prefix(store: &Arc<dyn Store>) {
        let mut watch = store.watch("/p/", 0).await.expect("watch");
        create(store, "/p", "not under /p/").await;
        create(store, "/p0", "not under /p/").await;
        create(store, "/q/a", "other").await;
        create(store, "/p/a", "mine").await;
        let events = take(&mut watch, 1).await;
        assert_eq!(events[0].key(), "/p/a");
        assert_eq!(events[0].revision(), 4);
        let mut replay = store.watch("/p/", 0).await.expect("watch");
        assert_eq!(take(&mut replay, 1).await, events);
    }

    /// A watcher that does not read while history moves past it is cut
    /// off: its stream yields a gap-free run of events (whatever the backend
    /// could still give it), then ends, with `Compacted` when it fell behind
    /// the compaction. Resuming from the last revision it saw then fails
    /// with `Compacted`, and from the compacted revision catches up. (The
    /// in-process backends keep nothing per watcher, so they cut a watcher
    /// off only there; etcd's per-watch buffer may cut it off earlier.)
    pub async fn a_watcher_that_falls_behind_the_kept_history_is_cut_off(store: &Arc<dyn Store>) {
        // More than any backend buffers for one watcher (1024 today).
        const WRITES: u64 = 3000;
        const KEPT: u64 = 10;
        let mut watch = store.watch("/p/", 0).await.expect("watch");
        let mut kv = create(store, "/p/k", "0").await;
        for i in 1..WRITES {
            kv = store
                .update("/p/k", kv.mod_revision, i.to_string().into_bytes())
                .await
                .expect("update");
        }
        store.compact(WRITES - KEPT).await.expect("compact");
        let mut seen = Vec::new();
        loop {
            match tokio::time::timeout(EVENT_TIMEOUT, watch.next()).await {
                Ok(Some(Ok(event))) => seen.push(event.revision()),
                Ok(Some(Err(StoreError::Compacted { .. }))) => {
                    assert!(
                        tokio::time::timeout(EVENT_TIMEOUT, watch.next())
                            .await
                            .expect("the stream ends")
                            .is_none(),
                        "nothing follows Compacted"
                    );
                    break;
                }
                Ok(Some(Err(error))) => panic!("the watch failed: {error}"),
                Ok(None) => break,
                Err(_) => panic!("a lagging watch neither ended nor delivered"),
            }
        }
        assert!((seen.len() as u64) < WRITES, "the watcher was not cut off");
        assert_eq!(seen, (1..=seen.len() as u64).collect::<Vec<_>>());
        let last = seen.last().copied().unwrap_or(0);
        assert_eq!(
            store.watch("/p/", last).await.err(),
            Some(StoreError::Compacted {
                compacted: WRITES - KEPT
            })
        );
        let mut resumed = store.watch("/p/", WRITES - KEPT).await.expect("watch");
        let rest = take(&mut resumed, usize::try_from(KEPT).expect("count")).await;
        assert_eq!(
            revisions(&rest),
            ((WRITES - KEPT + 1)..=WRITES).collect::<Vec<_>>()
        );
    }

    pub async fn lists_and_watches_before_the_compacted_revision_fail(store: &Arc<dyn Store>) {
        let a = create(store, "/p/a", "1").await; // 1
        let a2 = update(store, &a, "2").await; // 2
        update(store, &a2, "3").await; // 3
        create(store, "/p/b", "1").await; // 4
        store.compact(3).await.expect("compact");

        let compacted = Err(StoreError::Compacted { compacted: 3 });
        assert_eq!(
            list_at(store, "/p/", 2).await.map(|p| p.revision),
            compacted
        );
        assert_eq!(
            store
                .list(
                    "/p/",
                    ListOptions {
                        revision: Some(1),
                        start_after: Some("/p/a".to_string()),
                        limit: Some(1),
                    },
                )
                .await
                .map(|p| p.revision),
            compacted,
            "a continue token from before the compaction"
        );
        assert_eq!(store.watch("/p/", 2).await.err(), compacted.err());
        assert_eq!(
            pairs(
                &list_at(store, "/p/", 3)
                    .await
                    .expect("list at the compacted revision")
            ),
            vec![pair("/p/a", "3")]
        );
        let mut watch = store
            .watch("/p/", 3)
            .await
            .expect("watch from the compacted revision");
        assert_eq!(revisions(&take(&mut watch, 1).await), vec![4]);
        // Compacting to where the store already is changes nothing.
        store.compact(2).await.expect("compact backwards");
        assert!(list_at(store, "/p/", 3).await.is_ok());
    }

    pub async fn compaction_keeps_the_current_state(store: &Arc<dyn Store>) {
        let a = create(store, "/p/a", "a1").await;
        let b = create(store, "/p/b", "b1").await;
        let a2 = update(store, &a, "a2").await;
        store.delete("/p/b", b.mod_revision).await.expect("delete");
        create(store, "/p/c", "c1").await;
        let newest = store.current_revision().await.expect("revision");
        store.compact(newest).await.expect("compact");

        assert_eq!(store.get("/p/a").await, Ok(Some(a2.clone())));
        assert_eq!(store.get("/p/b").await, Ok(None));
        let page = store
            .list("/p/", ListOptions::default())
            .await
            .expect("list");
        assert_eq!(pairs(&page), vec![pair("/p/a", "a2"), pair("/p/c", "c1")]);
        assert_eq!(page.items[0].create_revision, 1);
        // Writes go on from the compacted state.
        let a3 = update(store, &a2, "a3").await;
        assert_eq!((a3.create_revision, a3.mod_revision), (1, newest + 1));
        assert_eq!(
            store.create("/p/a", bytes("x")).await,
            Err(StoreError::AlreadyExists)
        );
    }

    pub async fn compaction_keeps_what_later_events_replaced(store: &Arc<dyn Store>) {
        let a = create(store, "/p/a", "a1").await; // 1
        let b = create(store, "/p/b", "b1").await; // 2
        let a2 = update(store, &a, "a2").await; // 3
        store.compact(3).await.expect("compact");
        let a3 = update(store, &a2, "a3").await; // 4
        let (_, deleted_at) = store.delete("/p/b", b.mod_revision).await.expect("delete"); // 5
        let mut watch = store.watch("/p/", 3).await.expect("watch");
        assert_eq!(
            take(&mut watch, 2).await,
            vec![
                Event::Put {
                    kv: a3,
                    prev: Some(a2),
                },
                Event::Delete {
                    prev: b,
                    revision: deleted_at,
                },
            ]
        );
    }

    pub async fn compaction_never_lets_a_revision_repeat(store: &Arc<dyn Store>) {
        let a = create(store, "/p/a", "1").await;
        let (_, deleted_at) = store.delete("/p/a", a.mod_revision).await.expect("delete");
        store.compact(deleted_at).await.expect("compact");
        assert_eq!(store.current_revision().await, Ok(deleted_at));
        let page = list_at(store, "/p/", deleted_at).await.expect("list");
        assert!(page.items.is_empty());
        let again = create(store, "/p/a", "2").await;
        assert_eq!(again.mod_revision, deleted_at + 1);
        let mut seen = HashSet::new();
        assert!(seen.insert(a.mod_revision) && seen.insert(deleted_at));
        assert!(seen.insert(again.mod_revision));
    }

    pub async fn compaction_beyond_the_newest_revision_fails(store: &Arc<dyn Store>) {
        create(store, "/p/a", "1").await;
        assert_eq!(
            store.compact(2).await,
            Err(StoreError::FutureRevision { current: 1 })
        );
        assert!(list_at(store, "/p/", 1).await.is_ok());
    }
}

/// The API server over SQLite keeps objects and their resourceVersions
/// across a restart of the server on the same directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_over_sqlite_keeps_objects_across_a_restart() {
    use mxjob_tests::{new_job, resource_version, TestServer};

    let dir = tempfile::tempdir().expect("temporary directory");
    let open = || -> Arc<dyn Store> {
        Arc::new(SqliteStore::open(dir.path(), SqliteOptions::default()).expect("the store opens"))
    };
    let server = TestServer::start_with(open()).await;
    let created = server
        .client
        .create_mxjob()
        .namespace("kube-test")
        .body(new_job("kube-test", "durable"))
        .send()
        .await
        .expect("create")
        .into_inner();
    server.stop().await;

    let server = TestServer::start_with(open()).await;
    let read = server
        .client
        .read_mxjob()
        .namespace("kube-test")
        .name("durable")
        .send()
        .await
        .expect("read after restart")
        .into_inner();
    assert_eq!(read, created);
    assert_eq!(resource_version(&read), resource_version(&created));
    server.stop().await;
}

/// The memory store bounds its history in bytes as well as in revisions:
/// many small patches to a large object (each revision keeps a whole copy
/// of the object) keep the accounted history within the bound, compacting
/// earlier than the revision window would, and a watch or an exact list
/// from a revision compacted that way gets 410 Expired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_memory_store_keeps_its_history_within_its_byte_bound() {
    use mxjob_tests::{new_job_value, TestServer};

    const BOUND: usize = 1024 * 1024;
    let store = Arc::new(MemoryStore::with_limits(1000, BOUND));
    let server = TestServer::start_with(store.clone()).await;
    let mut job = new_job_value("history", "large");
    job["metadata"]["annotations"] =
        serde_json::json!({"example.com/blob": "x".repeat(200 * 1024)});
    let response = server
        .http
        .post(server.collection_url("history"))
        .json(&job)
        .send()
        .await
        .expect("create");
    assert_eq!(response.status().as_u16(), 201);
    let created: serde_json::Value = response.json().await.expect("json");
    let first = created["metadata"]["resourceVersion"]
        .as_str()
        .expect("resourceVersion")
        .to_string();
    // 40 revisions of a 200 KiB object: 8 MiB without a byte bound.
    for i in 0..40 {
        let patch = serde_json::json!({"metadata": {"labels": {"step": i.to_string()}}});
        let response = server
            .http
            .patch(server.object_url("history", "large"))
            .header("content-type", "application/merge-patch+json")
            .body(serde_json::to_vec(&patch).expect("json"))
            .send()
            .await
            .expect("patch");
        assert_eq!(response.status().as_u16(), 200);
        assert!(
            store.history_bytes() <= BOUND,
            "{} bytes of history after {} patches",
            store.history_bytes(),
            i + 1
        );
    }
    assert!(store.history_bytes() > 0, "recent history is kept");
    assert!(store.compacted_revision() > 1, "the byte bound compacted");

    let list = server
        .http
        .get(format!(
            "{}?resourceVersion={first}&resourceVersionMatch=Exact",
            server.collection_url("history")
        ))
        .send()
        .await
        .expect("list");
    assert_eq!(list.status().as_u16(), 410);
    let status: serde_json::Value = list.json().await.expect("json");
    assert_eq!(status["reason"], "Expired");

    let watch = server
        .http
        .get(format!(
            "{}?watch=true&resourceVersion={first}&timeoutSeconds=5",
            server.collection_url("history")
        ))
        .send()
        .await
        .expect("watch");
    assert_eq!(watch.status().as_u16(), 200);
    let text = watch.text().await.expect("the stream ends after the error");
    let event: serde_json::Value =
        serde_json::from_str(text.lines().next().expect("one event")).expect("json");
    assert_eq!(event["type"], "ERROR");
    assert_eq!(event["object"]["code"], 410);
    assert_eq!(event["object"]["reason"], "Expired");
    server.stop().await;
}

/// SQLite keeps its history on disk: only its buffer of recent events for
/// watchers is in memory, and that stays within its byte bound. A watcher
/// further behind than the buffer reads the rest from the file, without a
/// gap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sqlite_event_buffer_stays_within_its_byte_bound() {
    use futures::StreamExt;

    const BOUND: usize = 256 * 1024;
    let dir = tempfile::tempdir().expect("temporary directory");
    let options = SqliteOptions {
        history_bytes: BOUND,
        ..SqliteOptions::default()
    };
    let store = Arc::new(SqliteStore::open(dir.path(), options).expect("the store opens"));
    let value = |i: u8| vec![i; 64 * 1024];
    let mut kv = store.create("/p/k", value(0)).await.expect("create");
    for i in 1..40 {
        kv = store
            .update("/p/k", kv.mod_revision, value(i))
            .await
            .expect("update");
        assert!(store.history_bytes() <= BOUND, "{}", store.history_bytes());
    }
    let mut watch = store.watch("/p/", 0).await.expect("watch");
    for revision in 1..=40 {
        let event = tokio::time::timeout(std::time::Duration::from_secs(20), watch.next())
            .await
            .expect("an event")
            .expect("the stream goes on")
            .expect("no error");
        assert_eq!(event.revision(), revision);
    }
}

/// Two stores on one etcd are two replicas of the server: watches through
/// one (many at once, sharing its watch cache, from the revision each
/// watcher last saw) see every write made through the other, in order,
/// each from where it started.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watchers_of_one_etcd_replica_see_the_writes_of_another() {
    use futures::StreamExt;
    use mxjob_server::store::Event;

    let etcd = Etcd::start().await;
    let connect = || EtcdStore::connect(EtcdOptions::new(vec![etcd.endpoint.clone()]));
    let reader = connect().await.expect("the first replica connects");
    let writer = connect().await.expect("the second replica connects");
    let first = writer.create("/p/a", b"0".to_vec()).await.expect("create");
    let mut watches = Vec::new();
    for _ in 0..20 {
        watches.push(
            reader
                .watch("/p/", first.mod_revision)
                .await
                .expect("watch"),
        );
    }
    let mut kv = first;
    let mut written = Vec::new();
    for i in 1..=5 {
        kv = writer
            .update("/p/a", kv.mod_revision, i.to_string().into_bytes())
            .await
            .expect("update");
        written.push(kv.mod_revision);
    }
    // A watcher that starts partway sees the rest.
    let late = reader.watch("/p/", written[1]).await.expect("watch");
    watches.push(late);
    for (i, watch) in watches.iter_mut().enumerate() {
        let expected: &[u64] = if i == 20 { &written[2..] } else { &written };
        let mut seen = Vec::new();
        while seen.len() < expected.len() {
            let next = tokio::time::timeout(std::time::Duration::from_secs(20), watch.next())
                .await
                .expect("an event within 20 s")
                .expect("the watch goes on")
                .expect("an event");
            let Event::Put { kv, prev } = &next else {
                panic!("only updates were written: {next:?}");
            };
            assert_eq!(
                prev.as_ref().map(|p| p.mod_revision),
                Some(kv.mod_revision - 1)
            );
            seen.push(next.revision());
        }
        assert_eq!(seen, expected, "watcher {i}");
    }
}

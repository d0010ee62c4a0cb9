//! The etcd backend (`--store etcd`, cargo feature `etcd`):
//! objects live in an etcd cluster, where several `mxjob-server` replicas
//! can share them.
//!
//! # Layout
//!
//! The store writes the keys the registry gives it unchanged, so objects sit
//! where the Kubernetes API server keeps custom resources:
//! `/registry/kubeflow.org/mxjobs/{namespace}/{name}`, one JSON document per
//! key. Nothing else is written to etcd: no lock keys, no bookkeeping keys,
//! so every etcd revision is an object write.
//!
//! # Revisions
//!
//! The store's revision is etcd's store-wide revision **minus one**. etcd
//! counts its empty keyspace as revision 1, so its first write is revision
//! 2; the [`Store`] contract (and every other backend) counts the empty
//! store as revision 0 and its first write as 1. A constant shift keeps
//! everything that matters — order, the absence of gaps, one counter shared
//! by every key and every replica — and makes this backend pass the same
//! conformance suite as the others. So an object's `resourceVersion` is its
//! etcd `mod_revision - 1`, and `create_revision` likewise; clients treat
//! resourceVersions as opaque, and only this server writes the keys.
//!
//! * `create`, `update` and `delete` are each one transaction whose
//!   comparison is the write's precondition: the key's `create_revision` is
//!   0 (it does not exist) for a create, its `mod_revision` is the expected
//!   one for an update or a delete. The failure branch reads the key
//!   (without its value), and the shared precondition of `store::cas` turns
//!   what it read into `AlreadyExists`, `NotFound` or `Conflict`, as on the
//!   other backends. A transaction whose comparison fails writes nothing and
//!   does not move the revision. The read-check-append of the other
//!   backends is not used here: its read and its append would be two
//!   requests, and another replica could write in between; etcd does the
//!   comparison and the write atomically.
//! * `get`, `list` and `current_revision` are linearizable ranges, so a read
//!   through one replica sees every write acknowledged through another.
//!   `list` is a range over the prefix at the requested revision with
//!   etcd's `limit`, starting at the smallest key after `start_after`; etcd's
//!   `more` says whether keys remain. `current_revision` is the revision in
//!   the header of a count-only range.
//!
//! # Compaction
//!
//! `compact(r)` is etcd's compaction at `r + 1`. After it, etcd fails a
//! range at an older revision with "required revision has been compacted",
//! which becomes [`StoreError::Compacted`]. That error does not say which
//! revision etcd kept; a watch does (etcd cancels a watch that starts before
//! its compaction and names the compacted revision), so on that error path
//! the store opens a short watch from revision 1 to learn it. Compacting to
//! or below what etcd already compacted is not an error.
//!
//! This server does not compact etcd on its own (several replicas would
//! race to do it); run etcd with `--auto-compaction-mode` and
//! `--auto-compaction-retention` as one does under Kubernetes.
//!
//! # Watches
//!
//! A watch is etcd's watch over the prefix with `prev_kv`, from revision
//! `after + 1`. Before opening it, a count-only range at `after` checks that
//! `after` is not compacted, so a watch from a compacted revision fails
//! up front with [`StoreError::Compacted`], like the other backends. etcd
//! events become [`Event::Put`] (with `prev` unless the put created the key)
//! and [`Event::Delete`] (with the deleted value), in revision order.
//!
//! etcd never drops a slow watcher; it buffers for it. The store instead
//! forwards each watch through a buffer bounded by
//! [`WATCH_BUFFER`](super::WATCH_BUFFER) events
//! and [`WATCH_BUFFER_BYTES`] (an event carries up to two objects, so a
//! count alone does not bound memory) and ends the stream when the consumer
//! lets it fill: a consumer resumes from the last revision it saw. The
//! stream also ends when etcd cancels the watch — after a
//! [`StoreError::Compacted`] item when etcd compacted past it — when the
//! connection fails (after a [`StoreError::Backend`] item), and when an
//! event lacks the previous value it needs because that was compacted.
//!
//! # Durability and failures
//!
//! etcd acknowledges a write once a quorum has it in its fsynced write-ahead
//! log, so the store is [`Durability::Durable`]. Every call is bounded by a
//! request timeout; an etcd that does not answer becomes a
//! [`StoreError::Backend`] (500) rather than a request that hangs.
//! [`EtcdStore::connect`] fails within its connect timeout when no endpoint
//! answers, so a server started against a dead etcd exits at once.
//!
//! etcd refuses requests over `--max-request-bytes` (1.5 MiB by default, as
//! under Kubernetes); the API accepts bodies up to 3 MiB, so run etcd with a
//! larger limit to store the largest objects.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, DeleteOptions, EventType, GetOptions, KvClient,
    Txn, TxnOp, TxnOpResponse, TxnResponse, WatchClient, WatchOptions, WatchStream,
};
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::cas::Precondition;
use super::feed::event_bytes;
use super::keys::{list_start, prefix_end, Start};
use super::watch_cache::WatchCache;
use super::{
    Blob, Durability, Event, EventStream, KeyValue, ListOptions, ListPage, Revision, Store,
    StoreError, WATCH_BUFFER,
};

/// The endpoint `--etcd-endpoints` defaults to.
pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:2379";
/// Bytes of events a watcher may fall behind before it is cut off (as
/// many events: [`WATCH_BUFFER`](super::WATCH_BUFFER)).
pub const WATCH_BUFFER_BYTES: usize = 64 * 1024 * 1024;
/// The largest etcd response the store accepts (a list of many large
/// objects is one response); gRPC's default of 4 MiB is too small.
const MAX_RESPONSE_BYTES: usize = 256 * 1024 * 1024;
/// A key the store never writes: count-only ranges on it read the
/// revision, and watches on it learn the compacted revision.
const PROBE_KEY: &[u8] = b"\0";

/// How to reach etcd.
#[derive(Clone, Debug)]
pub struct EtcdOptions {
    /// Client URLs such as `http://127.0.0.1:2379`.
    pub endpoints: Vec<String>,
    /// How long [`EtcdStore::connect`] waits for etcd to answer.
    pub connect_timeout: Duration,
    /// How long one request may take.
    pub request_timeout: Duration,
}

impl EtcdOptions {
    /// Options for `endpoints` with default timeouts (5 s to connect, 30 s
    /// per request).
    pub fn new(endpoints: Vec<String>) -> Self {
        EtcdOptions {
            endpoints,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// See the module documentation.
#[derive(Clone)]
pub struct EtcdStore {
    kv: KvClient,
    watch: WatchClient,
    endpoints: Vec<String>,
    request_timeout: Duration,
    /// The watch cache (`store::watch_cache`) and what stops the etcd watch
    /// that fills it; shared by the store's clones, opened by the first watch.
    cache: Arc<tokio::sync::Mutex<Option<OpenCache>>>,
}

/// An open watch cache, and the token that stops the task filling it when
/// the store goes away.
struct OpenCache {
    cache: Arc<WatchCache>,
    _stop: DropGuard,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore")
            .field("endpoints", &self.endpoints)
            .field("request_timeout", &self.request_timeout)
            .finish_non_exhaustive()
    }
}

/// Why an etcd call failed, before the store turns it into a
/// [`StoreError`] (the first two need another request for their details).
#[derive(Debug)]
enum Failure {
    /// "required revision has been compacted".
    Compacted,
    /// "required revision is a future revision".
    Future,
    Store(StoreError),
}

impl From<StoreError> for Failure {
    fn from(error: StoreError) -> Self {
        Failure::Store(error)
    }
}

fn classify(error: etcd_client::Error) -> Failure {
    if let etcd_client::Error::GRpcStatus(status) = &error {
        // etcd's own wording (rpctypes.ErrGRPCCompacted / ErrGRPCFutureRev);
        // both come with the same gRPC code, so the message tells them apart.
        if status
            .message()
            .contains("required revision has been compacted")
        {
            return Failure::Compacted;
        }
        if status
            .message()
            .contains("required revision is a future revision")
        {
            return Failure::Future;
        }
    }
    Failure::Store(StoreError::Backend(format!("etcd: {error}")))
}

/// etcd's revision of the store's revision `revision`.
fn to_etcd(revision: Revision) -> i64 {
    i64::try_from(revision)
        .ok()
        .and_then(|r| r.checked_add(1))
        .unwrap_or(i64::MAX)
}

/// The store's revision of etcd's revision `revision`.
fn from_etcd(revision: i64) -> Revision {
    Revision::try_from(revision.saturating_sub(1)).unwrap_or(0)
}

fn header_revision(header: Option<&etcd_client::ResponseHeader>) -> Result<Revision, StoreError> {
    header
        .map(|h| from_etcd(h.revision()))
        .ok_or_else(|| StoreError::Backend("etcd answered without a response header".to_string()))
}

fn key_value(kv: &etcd_client::KeyValue) -> Result<KeyValue, StoreError> {
    let key = std::str::from_utf8(kv.key())
        .map_err(|_| StoreError::Backend("etcd holds a key that is not UTF-8".to_string()))?;
    Ok(KeyValue {
        key: key.to_string(),
        value: Blob::from(kv.value()),
        create_revision: from_etcd(kv.create_revision()),
        mod_revision: from_etcd(kv.mod_revision()),
    })
}

/// The etcd range `[start, end)` of the keys under `prefix` that sort
/// after `start_after`. etcd has no empty key, so the empty start is `"\0"`,
/// and an end of `"\0"` means "to the end of the keyspace".
fn key_range(prefix: &str, start_after: Option<&str>) -> (Vec<u8>, Vec<u8>) {
    let mut start = match list_start(prefix, start_after) {
        Start::At(key) => key.as_bytes().to_vec(),
        Start::After(key) => {
            // The smallest key greater than `key`.
            let mut start = key.as_bytes().to_vec();
            start.push(0);
            start
        }
    };
    if start.is_empty() {
        start.push(0);
    }
    let end = prefix_end(prefix.as_bytes()).unwrap_or_else(|| vec![0]);
    (start, end)
}

/// The comparison that makes a transaction's write conditional on
/// `precondition`.
fn compare(key: &str, precondition: Precondition) -> Compare {
    match precondition {
        Precondition::Absent => Compare::create_revision(key, CompareOp::Equal, 0),
        Precondition::ModRevision(expected) => {
            Compare::mod_revision(key, CompareOp::Equal, to_etcd(expected))
        }
    }
}

/// A read of the key's revisions, without its value.
fn read_revisions(key: &str) -> TxnOp {
    TxnOp::get(key, Some(GetOptions::new().with_keys_only()))
}

/// The single range response of a transaction's branch.
fn only_range(response: &TxnResponse) -> Option<etcd_client::GetResponse> {
    response.op_responses().into_iter().find_map(|op| match op {
        TxnOpResponse::Get(get) => Some(get),
        _ => None,
    })
}

/// The error of a write whose comparison failed: the one `precondition`
/// gives for the key as the failure branch read it.
fn precondition_failed(response: &TxnResponse, precondition: Precondition) -> StoreError {
    let current = only_range(response)
        .as_ref()
        .and_then(|get| get.kvs().first().map(|kv| from_etcd(kv.mod_revision())));
    match precondition.check(current) {
        Err(error) => error,
        // etcd compared what it read and found it not as expected.
        Ok(()) => StoreError::Backend(format!(
            "etcd refused a write whose precondition {precondition:?} held"
        )),
    }
}

impl EtcdStore {
    /// Connects to etcd and checks that it answers within
    /// `options.connect_timeout`.
    pub async fn connect(options: EtcdOptions) -> Result<Self, StoreError> {
        if options.endpoints.is_empty() {
            return Err(StoreError::Backend(
                "no etcd endpoints were given".to_string(),
            ));
        }
        let unreachable = |detail: String| {
            StoreError::Backend(format!(
                "etcd at {} did not answer: {detail}",
                options.endpoints.join(",")
            ))
        };
        // Keep-alive pings find a dead connection under a watch; they are
        // sent only while streams are open, because etcd answers pings on
        // an idle connection with "too many pings" and closes it.
        let connect = ConnectOptions::new()
            .with_connect_timeout(options.connect_timeout)
            .with_keep_alive(Duration::from_secs(10), Duration::from_secs(10))
            .with_keep_alive_while_idle(false);
        // The client connects lazily; the first request shows whether etcd
        // is there, so both are bounded by the connect timeout.
        let client = tokio::time::timeout(
            options.connect_timeout,
            Client::connect(&options.endpoints, Some(connect)),
        )
        .await
        .map_err(|_| {
            unreachable(format!(
                "no connection within {:?}",
                options.connect_timeout
            ))
        })?
        .map_err(|e| unreachable(e.to_string()))?;
        let store = EtcdStore {
            kv: client
                .kv_client()
                .max_decoding_message_size(MAX_RESPONSE_BYTES),
            watch: client
                .watch_client()
                .max_decoding_message_size(MAX_RESPONSE_BYTES),
            endpoints: options.endpoints.clone(),
            request_timeout: options.connect_timeout,
            cache: Arc::default(),
        };
        store.current_revision().await.map_err(|e| match e {
            StoreError::Backend(message) => unreachable(message),
            other => unreachable(other.to_string()),
        })?;
        Ok(EtcdStore {
            request_timeout: options.request_timeout,
            ..store
        })
    }

    /// The endpoints the store was given.
    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    /// Runs one etcd call within the request timeout.
    async fn call<T>(
        &self,
        request: impl Future<Output = Result<T, etcd_client::Error>>,
    ) -> Result<T, Failure> {
        match tokio::time::timeout(self.request_timeout, request).await {
            Ok(result) => result.map_err(classify),
            Err(_) => Err(Failure::Store(StoreError::Backend(format!(
                "etcd at {} did not answer within {:?}",
                self.endpoints.join(","),
                self.request_timeout
            )))),
        }
    }

    /// The [`StoreError`] of a failure, asking etcd for the details that
    /// its errors leave out.
    async fn explain(&self, failure: Failure) -> StoreError {
        match failure {
            Failure::Store(error) => error,
            Failure::Compacted => match self.compacted_revision().await {
                Ok(compacted) => StoreError::Compacted { compacted },
                Err(error) => error,
            },
            Failure::Future => match self.current_revision().await {
                Ok(current) => StoreError::FutureRevision { current },
                Err(error) => error,
            },
        }
    }

    /// The revision etcd compacted to, in the store's numbering: etcd names
    /// it when it cancels a watch that starts before it.
    async fn compacted_revision(&self) -> Result<Revision, StoreError> {
        let mut client = self.watch.clone();
        let probe = async move {
            let options = WatchOptions::new().with_start_revision(1);
            let mut stream = client.watch(PROBE_KEY, Some(options)).await?;
            while let Some(response) = stream.message().await? {
                if response.compact_revision() > 0 {
                    return Ok(Some(response.compact_revision()));
                }
                if response.canceled() {
                    break;
                }
            }
            Ok(None)
        };
        match self.call(probe).await {
            Ok(Some(revision)) => Ok(from_etcd(revision)),
            Ok(None) => Err(StoreError::Backend(
                "etcd reported a compacted revision but did not say which".to_string(),
            )),
            Err(failure) => Err(match failure {
                Failure::Store(error) => error,
                _ => StoreError::Backend("etcd failed to report its compaction".to_string()),
            }),
        }
    }

    /// Fails with [`StoreError::Compacted`] when `revision` is compacted.
    async fn check_not_compacted(&self, revision: Revision) -> Result<(), StoreError> {
        let options = GetOptions::new()
            .with_revision(to_etcd(revision))
            .with_count_only();
        let mut kv = self.kv.clone();
        match self.call(kv.get(PROBE_KEY, Some(options))).await {
            // A revision still to come is not compacted: the watch waits.
            Ok(_) | Err(Failure::Future) => Ok(()),
            Err(failure) => Err(self.explain(failure).await),
        }
    }

    /// The open watch cache, opening one (from the current revision) when
    /// there is none or the last one closed. A cache that cannot be opened
    /// is returned closed: its watches go to etcd directly.
    async fn watch_cache(&self) -> Arc<WatchCache> {
        let mut open = self.cache.lock().await;
        if let Some(current) = open.as_ref().filter(|o| o.cache.is_open()) {
            return Arc::clone(&current.cache);
        }
        *open = None;
        let opened = async {
            let start = self.current_revision().await?;
            let (from, end) = key_range("", None);
            let options = WatchOptions::new()
                .with_range(end)
                .with_start_revision(to_etcd(start.saturating_add(1)))
                .with_prev_key();
            let mut client = self.watch.clone();
            match self.call(client.watch(from, Some(options))).await {
                Ok(stream) => Ok((start, stream)),
                Err(failure) => Err(self.explain(failure).await),
            }
        }
        .await;
        let Ok((start, stream)) = opened else {
            let closed = WatchCache::new(0);
            closed.close();
            return closed;
        };
        let cache = WatchCache::new(start);
        let stop = CancellationToken::new();
        tokio::spawn(fill(Arc::downgrade(&cache), stream, stop.clone()));
        *open = Some(OpenCache {
            cache: Arc::clone(&cache),
            _stop: stop.drop_guard(),
        });
        cache
    }

    /// Runs `then` in one transaction if `key` meets `precondition`;
    /// otherwise fails with the error the precondition gives for the key.
    async fn compare_and_swap(
        &self,
        key: &str,
        precondition: Precondition,
        then: Vec<TxnOp>,
    ) -> Result<TxnResponse, StoreError> {
        let txn = Txn::new()
            .when([compare(key, precondition)])
            .and_then(then)
            .or_else([read_revisions(key)]);
        let mut kv = self.kv.clone();
        let response = match self.call(kv.txn(txn)).await {
            Ok(response) => response,
            Err(failure) => return Err(self.explain(failure).await),
        };
        if !response.succeeded() {
            return Err(precondition_failed(&response, precondition));
        }
        Ok(response)
    }
}

#[async_trait]
impl Store for EtcdStore {
    fn name(&self) -> &'static str {
        "etcd"
    }

    fn durability(&self) -> Durability {
        Durability::Durable
    }

    async fn current_revision(&self) -> Result<Revision, StoreError> {
        let mut kv = self.kv.clone();
        let options = GetOptions::new().with_count_only();
        match self.call(kv.get(PROBE_KEY, Some(options))).await {
            Ok(response) => header_revision(response.header()),
            Err(Failure::Store(error)) => Err(error),
            Err(_) => Err(StoreError::Backend(
                "etcd refused to read its newest revision".to_string(),
            )),
        }
    }

    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        let mut kv = self.kv.clone();
        match self.call(kv.get(key, None)).await {
            Ok(response) => response.kvs().first().map(key_value).transpose(),
            Err(failure) => Err(self.explain(failure).await),
        }
    }

    async fn create(&self, key: &str, value: Vec<u8>) -> Result<KeyValue, StoreError> {
        let value: Arc<[u8]> = value.into();
        let put = TxnOp::put(key, value.to_vec(), None);
        let response = self
            .compare_and_swap(key, Precondition::Absent, vec![put])
            .await?;
        // A write transaction's header carries the revision it wrote.
        let revision = header_revision(response.header())?;
        Ok(KeyValue {
            key: key.to_string(),
            value: value.into(),
            create_revision: revision,
            mod_revision: revision,
        })
    }

    async fn update(
        &self,
        key: &str,
        expected: Revision,
        value: Vec<u8>,
    ) -> Result<KeyValue, StoreError> {
        let value: Arc<[u8]> = value.into();
        // Reading back after the put (in the same transaction) gives the
        // key's create_revision without sending the value again.
        let then = vec![TxnOp::put(key, value.to_vec(), None), read_revisions(key)];
        let response = self
            .compare_and_swap(key, Precondition::ModRevision(expected), then)
            .await?;
        let written = only_range(&response)
            .and_then(|get| get.kvs().first().cloned())
            .ok_or_else(|| {
                StoreError::Backend("etcd did not return the key it wrote".to_string())
            })?;
        Ok(KeyValue {
            key: key.to_string(),
            value: value.into(),
            create_revision: from_etcd(written.create_revision()),
            mod_revision: from_etcd(written.mod_revision()),
        })
    }

    async fn delete(
        &self,
        key: &str,
        expected: Revision,
    ) -> Result<(KeyValue, Revision), StoreError> {
        let delete = TxnOp::delete(key, Some(DeleteOptions::new().with_prev_key()));
        let response = self
            .compare_and_swap(key, Precondition::ModRevision(expected), vec![delete])
            .await?;
        let revision = header_revision(response.header())?;
        let deleted = response
            .op_responses()
            .into_iter()
            .find_map(|op| match op {
                TxnOpResponse::Delete(delete) => delete.prev_kvs().first().cloned(),
                _ => None,
            })
            .ok_or_else(|| {
                StoreError::Backend("etcd did not return the value it deleted".to_string())
            })?;
        Ok((key_value(&deleted)?, revision))
    }

    async fn list(&self, prefix: &str, options: ListOptions) -> Result<ListPage, StoreError> {
        let (start, end) = key_range(prefix, options.start_after.as_deref());
        let mut get = GetOptions::new().with_range(end);
        let at = options.revision.filter(|r| *r > 0);
        if let Some(revision) = at {
            get = get.with_revision(to_etcd(revision));
        }
        if let Some(limit) = options.limit.filter(|l| *l > 0) {
            get = get.with_limit(i64::try_from(limit).unwrap_or(i64::MAX));
        }
        let mut kv = self.kv.clone();
        let response = match self.call(kv.get(start, Some(get))).await {
            Ok(response) => response,
            Err(failure) => return Err(self.explain(failure).await),
        };
        let items = response
            .kvs()
            .iter()
            .map(key_value)
            .collect::<Result<Vec<_>, _>>()?;
        let revision = match at {
            Some(revision) => revision,
            None => header_revision(response.header())?,
        };
        Ok(ListPage {
            items,
            revision,
            more: response.more(),
        })
    }

    async fn compact(&self, revision: Revision) -> Result<(), StoreError> {
        let mut kv = self.kv.clone();
        match self.call(kv.compact(to_etcd(revision), None)).await {
            // Already compacted at or beyond `revision`: nothing to do.
            Ok(_) | Err(Failure::Compacted) => {
                if let Some(open) = self.cache.lock().await.as_ref() {
                    open.cache.trim_through(revision);
                }
                Ok(())
            }
            Err(failure) => Err(self.explain(failure).await),
        }
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<EventStream, StoreError> {
        self.check_not_compacted(after).await?;
        if let Some(followed) = self.watch_cache().await.follow(prefix, after) {
            return Ok(followed);
        }
        let (start, end) = key_range(prefix, None);
        let options = WatchOptions::new()
            .with_range(end)
            .with_start_revision(to_etcd(after.saturating_add(1)))
            .with_prev_key();
        let mut client = self.watch.clone();
        let stream = match self.call(client.watch(start, Some(options))).await {
            Ok(stream) => stream,
            Err(failure) => return Err(self.explain(failure).await),
        };
        let (sender, receiver) = mpsc::channel(WATCH_BUFFER);
        let buffered = Arc::new(AtomicUsize::new(0));
        tokio::spawn(forward(stream, sender, Arc::clone(&buffered), after));
        Ok(futures::stream::unfold(receiver, move |mut receiver| {
            let buffered = Arc::clone(&buffered);
            async move {
                let item = receiver.recv().await?;
                if let Ok(event) = &item {
                    buffered.fetch_sub(event_bytes(event), Ordering::Relaxed);
                }
                Some((item, receiver))
            }
        })
        .boxed())
    }
}

/// What one etcd event becomes: an event, or the end of the watch because
/// the previous value it needs was compacted away.
fn convert(event: &etcd_client::Event) -> Result<Option<Event>, StoreError> {
    let kv = event
        .kv()
        .ok_or_else(|| StoreError::Backend("etcd sent an event without a key".to_string()))?;
    let prev = event.prev_kv().map(key_value).transpose()?;
    Ok(match event.event_type() {
        EventType::Put => {
            let kv = key_value(kv)?;
            let created = kv.create_revision == kv.mod_revision;
            match (created, prev) {
                (true, _) => Some(Event::Put { kv, prev: None }),
                (false, Some(prev)) => Some(Event::Put {
                    kv,
                    prev: Some(prev),
                }),
                (false, None) => None,
            }
        }
        EventType::Delete => prev.map(|prev| Event::Delete {
            prev,
            revision: from_etcd(kv.mod_revision()),
        }),
    })
}

/// Moves the events of the watch cache's etcd watch into the cache until
/// the watch ends or `stop` (the store went away), then closes the cache.
async fn fill(
    cache: std::sync::Weak<WatchCache>,
    mut stream: WatchStream,
    stop: CancellationToken,
) {
    loop {
        let message = tokio::select! {
            _ = stop.cancelled() => break,
            message = stream.message() => message,
        };
        let Ok(Some(response)) = message else {
            break;
        };
        if response.compact_revision() > 0 {
            break;
        }
        let Some(open) = cache.upgrade() else {
            return;
        };
        let mut events = Vec::with_capacity(response.events().len());
        let mut complete = true;
        for event in response.events() {
            match convert(event) {
                Ok(Some(event)) => events.push(event),
                // A previous value compacted away, or a malformed event:
                // the cache cannot go on past it.
                Ok(None) | Err(_) => {
                    complete = false;
                    break;
                }
            }
        }
        open.publish(events);
        if !complete || response.canceled() {
            break;
        }
    }
    if let Some(open) = cache.upgrade() {
        open.close();
    }
}

/// Moves a watch's events from etcd to the consumer's buffer until the
/// consumer goes away or falls [`WATCH_BUFFER`] events or
/// [`WATCH_BUFFER_BYTES`] behind (`buffered` counts the bytes it has not
/// taken yet), or the watch ends. Dropping `stream` closes the gRPC stream,
/// which cancels the watch in etcd.
async fn forward(
    mut stream: WatchStream,
    sender: mpsc::Sender<Result<Event, StoreError>>,
    buffered: Arc<AtomicUsize>,
    after: Revision,
) {
    loop {
        let message = tokio::select! {
            _ = sender.closed() => return,
            message = stream.message() => message,
        };
        let response = match message {
            Ok(Some(response)) => response,
            Ok(None) => return,
            Err(error) => {
                let _ = sender.try_send(Err(StoreError::Backend(format!(
                    "the etcd watch failed: {error}"
                ))));
                return;
            }
        };
        if response.compact_revision() > 0 {
            let _ = sender.try_send(Err(StoreError::Compacted {
                compacted: from_etcd(response.compact_revision()),
            }));
            return;
        }
        for event in response.events() {
            let event = match convert(event) {
                Ok(Some(event)) => event,
                // The previous value was compacted away: the consumer resumes
                // and learns that from `watch`.
                Ok(None) => return,
                Err(error) => {
                    let _ = sender.try_send(Err(error));
                    return;
                }
            };
            if event.revision() <= after {
                continue;
            }
            let size = event_bytes(&event);
            let before = buffered.fetch_add(size, Ordering::Relaxed);
            if before > 0 && before + size > WATCH_BUFFER_BYTES {
                // The consumer fell too far behind (one event always fits).
                return;
            }
            // Full: the consumer fell too far behind. Closed: it is gone.
            if sender.try_send(Ok(event)).is_err() {
                return;
            }
        }
        if response.canceled() {
            if !response.cancel_reason().is_empty() {
                let _ = sender.try_send(Err(StoreError::Backend(format!(
                    "etcd canceled the watch: {}",
                    response.cancel_reason()
                ))));
            }
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revisions_are_shifted_by_etcds_initial_revision() {
        assert_eq!(to_etcd(0), 1);
        assert_eq!(to_etcd(41), 42);
        assert_eq!(from_etcd(1), 0);
        assert_eq!(from_etcd(42), 41);
        assert_eq!(from_etcd(0), 0, "etcd's 0 (no key) stays 0");
        assert_eq!(to_etcd(u64::MAX), i64::MAX);
    }

    #[test]
    fn a_range_starts_just_after_start_after_or_at_the_prefix() {
        assert_eq!(key_range("/p/", None), (b"/p/".to_vec(), b"/p0".to_vec()));
        assert_eq!(
            key_range("/p/", Some("/p/b")),
            (b"/p/b\0".to_vec(), b"/p0".to_vec())
        );
        assert_eq!(
            key_range("/p/", Some("/a")),
            (b"/p/".to_vec(), b"/p0".to_vec()),
            "a continue key before the prefix starts at the prefix"
        );
        assert_eq!(key_range("", None), (vec![0], vec![0]));
    }
}

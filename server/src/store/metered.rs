//! A [`Store`] that times every call into another one, for the
//! `mxjob_storage_request_duration_seconds` histogram (by backend and
//! operation; see [`crate::metrics`]). It adds a clock read and an atomic
//! histogram update per call and changes nothing else: results, errors
//! and watch streams pass through as they are. A watch is timed until its
//! stream is set up, not for as long as it runs.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use prometheus_client::metrics::histogram::Histogram;

use super::{
    Durability, EventStream, KeyValue, ListOptions, ListPage, Prepare, Revision, Store, StoreError,
};
use crate::metrics::Metrics;

/// One histogram per operation.
struct Timers {
    current_revision: Histogram,
    get: Histogram,
    create: Histogram,
    update: Histogram,
    delete: Histogram,
    list: Histogram,
    compact: Histogram,
    watch: Histogram,
}

/// See the module documentation.
pub struct MeteredStore {
    inner: Arc<dyn Store>,
    timers: Timers,
}

impl MeteredStore {
    /// `inner`, timed into `metrics` under its backend's name.
    pub fn wrap(inner: Arc<dyn Store>, metrics: &Metrics) -> Arc<dyn Store> {
        let backend = inner.name();
        let timer = |operation| metrics.storage(backend, operation);
        let timers = Timers {
            current_revision: timer("current_revision"),
            get: timer("get"),
            create: timer("create"),
            update: timer("update"),
            delete: timer("delete"),
            list: timer("list"),
            compact: timer("compact"),
            watch: timer("watch"),
        };
        Arc::new(MeteredStore { inner, timers })
    }
}

/// Runs `call`, recording how long it took into `histogram`.
async fn timed<T>(histogram: &Histogram, call: impl std::future::Future<Output = T>) -> T {
    let started = Instant::now();
    let result = call.await;
    histogram.observe(started.elapsed().as_secs_f64());
    result
}

#[async_trait]
impl Store for MeteredStore {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn durability(&self) -> Durability {
        self.inner.durability()
    }

    async fn current_revision(&self) -> Result<Revision, StoreError> {
        timed(&self.timers.current_revision, self.inner.current_revision()).await
    }

    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        timed(&self.timers.get, self.inner.get(key)).await
    }

    async fn create(&self, key: &str, value: Vec<u8>) -> Result<KeyValue, StoreError> {
        timed(&self.timers.create, self.inner.create(key, value)).await
    }

    async fn update(
        &self,
        key: &str,
        expected: Revision,
        value: Vec<u8>,
    ) -> Result<KeyValue, StoreError> {
        timed(&self.timers.update, self.inner.update(key, expected, value)).await
    }

    async fn create_prepared(
        &self,
        key: &str,
        value: Vec<u8>,
        prepare: Prepare,
    ) -> Result<KeyValue, StoreError> {
        let created = self.inner.create_prepared(key, value, prepare);
        timed(&self.timers.create, created).await
    }

    async fn update_prepared(
        &self,
        key: &str,
        expected: Revision,
        value: Vec<u8>,
        prepare: Prepare,
    ) -> Result<KeyValue, StoreError> {
        let updated = self.inner.update_prepared(key, expected, value, prepare);
        timed(&self.timers.update, updated).await
    }

    async fn delete(
        &self,
        key: &str,
        expected: Revision,
    ) -> Result<(KeyValue, Revision), StoreError> {
        timed(&self.timers.delete, self.inner.delete(key, expected)).await
    }

    async fn list(&self, prefix: &str, options: ListOptions) -> Result<ListPage, StoreError> {
        timed(&self.timers.list, self.inner.list(prefix, options)).await
    }

    async fn compact(&self, revision: Revision) -> Result<(), StoreError> {
        timed(&self.timers.compact, self.inner.compact(revision)).await
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<EventStream, StoreError> {
        timed(&self.timers.watch, self.inner.watch(prefix, after)).await
    }
}

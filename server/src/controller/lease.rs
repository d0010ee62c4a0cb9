//! Leader election through the store, so that servers sharing one store
//! run each job once.
//!
//! The lease is one key, [`LEASE_KEY`], holding a JSON record: the holder's
//! identity, how long the lease lasts, and when it was acquired and last
//! renewed. It is taken with `create` (no record) or a compare-and-swap
//! `update` on the record's revision, and renewed with compare-and-swap
//! too, so two candidates can never both win the same revision.
//!
//! Expiry is judged as client-go's leader election judges it, without
//! trusting anyone's wall clock: a candidate notes, on its own monotonic
//! clock, when it first saw the record at its current revision, and takes
//! it over only when that revision has stayed unchanged for the lease
//! duration. A holder steps down when it has not managed to renew for two
//! thirds of the duration, before anyone can take over. The times in the
//! record are for people reading it.
//!
//! A waiting candidate watches the key, so a lease released on shutdown
//! (the record is deleted) is taken at once; a record naming the
//! candidate's own identity (a restarted server with a fixed
//! `--controller-identity`) is taken at once too.

use std::time::Duration;

use chrono::Utc;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use slog::{info, warn, Logger};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::store::{KeyValue, Revision, Store, StoreError};

/// The store key of the controller's lease. It is outside the MXJob
/// prefix, so no MXJob list or watch ever shows it.
pub const LEASE_KEY: &str = "/registry/mxjob/leases/controller";

/// The record stored under [`LEASE_KEY`].
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Record {
    holder_identity: String,
    lease_duration_milliseconds: u64,
    acquire_time: String,
    renew_time: String,
}

/// Why holding the lease ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    /// Another server took it, or renewing failed for too long.
    Lost,
    /// The server is stopping.
    Stopped,
}

/// One server's side of the lease.
pub struct Lease {
    store: std::sync::Arc<dyn Store>,
    identity: String,
    duration: Duration,
    log: Logger,
    /// The revision of the record this server holds.
    held: Option<Revision>,
    acquired: String,
}

impl Lease {
    pub fn new(
        store: std::sync::Arc<dyn Store>,
        identity: String,
        duration: Duration,
        log: Logger,
    ) -> Self {
        Lease {
            store,
            identity,
            duration,
            log,
            held: None,
            acquired: String::new(),
        }
    }

    fn record(&self) -> Result<Vec<u8>, StoreError> {
        let now = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let record = Record {
            holder_identity: self.identity.clone(),
            lease_duration_milliseconds: u64::try_from(self.duration.as_millis())
                .unwrap_or(u64::MAX),
            acquire_time: if self.acquired.is_empty() {
                now.clone()
            } else {
                self.acquired.clone()
            },
            renew_time: now,
        };
        serde_json::to_vec(&record).map_err(|e| StoreError::Backend(e.to_string()))
    }

    /// Waits until this server holds the lease; `false` when `stop` fired first.
    pub async fn acquire(&mut self, stop: &mut watch::Receiver<bool>) -> bool {
        // The record's revision and when this server first saw it.
        let mut seen: Option<(Revision, Instant)> = None;
        loop {
            if *stop.borrow() {
                return false;
            }
            let wait = match self.try_acquire(&mut seen).await {
                Ok(None) => {
                    info!(self.log, "acquired the controller lease"; "identity" => &self.identity);
                    return true;
                }
                Ok(Some(wait)) => wait,
                Err(error) => {
                    warn!(self.log, "reading the controller lease"; "error" => %error);
                    Wait {
                        until: Instant::now() + Duration::from_secs(1),
                        after: None,
                    }
                }
            };
            // Until the lease may be taken, or its record changes.
            let changed = async {
                match wait.after {
                    Some(after) => match self.store.watch(LEASE_KEY, after).await {
                        Ok(mut events) => loop {
                            match events.next().await {
                                Some(Ok(event)) if event.key() == LEASE_KEY => break,
                                Some(Ok(_)) => continue,
                                _ => std::future::pending::<()>().await,
                            }
                        },
                        Err(_) => std::future::pending::<()>().await,
                    },
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = super::stopped(stop) => return false,
                _ = tokio::time::sleep_until(wait.until) => {}
                _ = changed => {}
            }
        }
    }

    /// One attempt; `None` when acquired, else how long to wait.
    async fn try_acquire(
        &mut self,
        seen: &mut Option<(Revision, Instant)>,
    ) -> Result<Option<Wait>, StoreError> {
        let Some(kv) = self.store.get(LEASE_KEY).await? else {
            self.acquired = String::new();
            return match self.store.create(LEASE_KEY, self.record()?).await {
                Ok(kv) => self.won(kv),
                Err(StoreError::AlreadyExists) => Ok(Some(Wait::now())),
                Err(e) => Err(e),
            };
        };
        let record: Option<Record> = serde_json::from_slice(&kv.value).ok();
        let (holder, duration) = match &record {
            Some(r) => (
                r.holder_identity.as_str(),
                Duration::from_millis(r.lease_duration_milliseconds),
            ),
            // An unreadable record is treated as an expired one.
            None => ("", Duration::ZERO),
        };
        let now = Instant::now();
        let first_seen = match *seen {
            Some((revision, at)) if revision == kv.mod_revision => at,
            _ => {
                *seen = Some((kv.mod_revision, now));
                now
            }
        };
        let expired = now.duration_since(first_seen) >= duration;
        if holder == self.identity || holder.is_empty() || expired {
            self.acquired = String::new();
            return match self
                .store
                .update(LEASE_KEY, kv.mod_revision, self.record()?)
                .await
            {
                Ok(kv) => self.won(kv),
                Err(StoreError::Conflict { .. } | StoreError::NotFound) => Ok(Some(Wait::now())),
                Err(e) => Err(e),
            };
        }
        Ok(Some(Wait {
            until: first_seen + duration,
            after: Some(kv.mod_revision),
        }))
    }

    fn won(&mut self, kv: KeyValue) -> Result<Option<Wait>, StoreError> {
        if let Ok(record) = serde_json::from_slice::<Record>(&kv.value) {
            self.acquired = record.acquire_time;
        }
        self.held = Some(kv.mod_revision);
        Ok(None)
    }

    /// Renews the lease until it is lost or `stop` fires. On stop the lease
    /// is still held: the caller releases it once its processes are gone.
    pub async fn hold(&mut self, stop: &mut watch::Receiver<bool>) -> Ended {
        let renew_every = self.duration / 3;
        let give_up_after = self.duration * 2 / 3;
        let mut renewed = Instant::now();
        loop {
            tokio::select! {
                _ = super::stopped(stop) => return Ended::Stopped,
                _ = tokio::time::sleep(renew_every) => {}
            }
            match self.renew().await {
                Ok(()) => renewed = Instant::now(),
                Err(StoreError::Conflict { .. } | StoreError::NotFound) => {
                    warn!(self.log, "another server took the controller lease");
                    self.held = None;
                    return Ended::Lost;
                }
                Err(error) => {
                    warn!(self.log, "renewing the controller lease"; "error" => %error);
                    if renewed.elapsed() >= give_up_after {
                        self.held = None;
                        return Ended::Lost;
                    }
                }
            }
        }
    }

    async fn renew(&mut self) -> Result<(), StoreError> {
        let held = self.held.ok_or(StoreError::NotFound)?;
        let kv = self.store.update(LEASE_KEY, held, self.record()?).await?;
        self.held = Some(kv.mod_revision);
        Ok(())
    }

    /// Gives the lease up (deletes the record if this server still holds it).
    pub async fn release(&mut self) {
        if let Some(held) = self.held.take() {
            match self.store.delete(LEASE_KEY, held).await {
                Ok(_) => info!(self.log, "released the controller lease"),
                Err(error) => {
                    warn!(self.log, "releasing the controller lease"; "error" => %error)
                }
            }
        }
    }
}

/// How long a candidate waits before trying again.
struct Wait {
    until: Instant,
    /// Watch the record for changes after this revision meanwhile.
    after: Option<Revision>,
}

impl Wait {
    fn now() -> Self {
        Wait {
            until: Instant::now(),
            after: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;
    use std::sync::Arc;

    fn lease(store: &Arc<dyn Store>, identity: &str, millis: u64) -> Lease {
        Lease::new(
            store.clone(),
            identity.to_string(),
            Duration::from_millis(millis),
            Logger::root(slog::Discard, slog::o!()),
        )
    }

    #[tokio::test]
    async fn a_second_candidate_waits_until_the_holder_stops_renewing() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let (_never, mut stop) = watch::channel(false);
        let mut first = lease(&store, "a", 300);
        assert!(first.acquire(&mut stop).await);
        let mut second = lease(&store, "b", 300);
        let mut seen = None;
        assert!(
            second
                .try_acquire(&mut seen)
                .await
                .expect("reads")
                .is_some(),
            "held by a"
        );
        // a never renews: b takes over once the record has aged a lease duration.
        let started = Instant::now();
        assert!(second.acquire(&mut stop).await);
        assert!(started.elapsed() >= Duration::from_millis(250));
        assert!(matches!(
            first.renew().await,
            Err(StoreError::Conflict { .. })
        ));
    }

    #[tokio::test]
    async fn a_released_lease_is_taken_at_once() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let (_never, mut stop) = watch::channel(false);
        let mut first = lease(&store, "a", 60_000);
        assert!(first.acquire(&mut stop).await);
        let waiter = tokio::spawn({
            let store = store.clone();
            let mut stop = stop.clone();
            async move {
                let mut second = lease(&store, "b", 60_000);
                second.acquire(&mut stop).await
            }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        first.release().await;
        let taken = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("taken well before the minute")
            .expect("joins");
        assert!(taken);
    }
}

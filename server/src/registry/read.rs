//! Reads: one object, consistent paged lists, and watches — with the
//! conversion of store events into what a watcher of a selection sees.

use std::time::Duration;

use futures::stream::BoxStream;
use futures::StreamExt;
use mxjob_api::model::{MXJob, MXJobList, WatchEvent, WatchEventType, API_VERSION, KIND};
use mxjob_api::params::ResourceVersionMatch;
use serde_json::Value;

use super::{
    namespace_prefix, parse_resource_version, Error, ListParams, Registry, Selection, WatchParams,
    ALL_NAMESPACES_PREFIX,
};
use crate::pagination::ContinueToken;
use crate::store::{Event, ListOptions, Revision, StoreError};

/// The annotation of the bookmark that ends a streaming list's initial
/// events.
pub const INITIAL_EVENTS_END: &str = "k8s.io/initial-events-end";

/// How often an idle watch that asked for bookmarks gets one.
const BOOKMARK_INTERVAL: Duration = Duration::from_secs(5);

impl Registry {
    /// Reads one MXJob.
    pub async fn get(&self, namespace: &str, name: &str) -> Result<MXJob, Error> {
        Ok(self.load(namespace, name).await?.job)
    }

    /// Lists the MXJobs of a namespace (of every namespace for `None`)
    /// that match `params.selection`: all of them, or one page of at most
    /// `limit`, at one store revision.
    pub async fn list(
        &self,
        namespace: Option<&str>,
        params: &ListParams,
    ) -> Result<MXJobList, Error> {
        let (revision, start_after) = self.list_start(params).await?;
        if namespace.is_some_and(|ns| !crate::names::is_dns1123_label(ns)) {
            let revision = match revision {
                Some(r) => r,
                None => self.current_revision().await?,
            };
            return Ok(MXJobList::new(Vec::new(), revision.to_string()));
        }
        let prefix = prefix_of(namespace);
        let limit = params.limit.filter(|l| *l > 0);
        let mut items = Vec::new();
        let mut cursor = start_after.map(|name| format!("{prefix}{name}"));
        let mut revision = revision;
        let mut more = false;
        let mut last_examined = None;
        'pages: loop {
            // One more than still wanted, to see whether another page follows.
            let wanted = limit.map(|l| l - items.len() + 1);
            let page = self
                .store
                .list(
                    &prefix,
                    ListOptions {
                        revision,
                        start_after: cursor.clone(),
                        limit: wanted,
                    },
                )
                .await
                .map_err(|e| list_error(e, params))?;
            // Every page is read at the first page's revision.
            revision = Some(page.revision);
            for (index, kv) in page.items.iter().enumerate() {
                let job = Self::decode_stored(kv)?;
                // Where the next page starts: the name, or for a list of
                // every namespace `namespace/name`.
                last_examined = kv.key.strip_prefix(&prefix).map(str::to_string);
                if params.selection.matches(&job) {
                    items.push(job);
                }
                if limit.is_some_and(|l| items.len() >= l) {
                    // Another page only if something after this one could
                    // still be selected: a page never ends up empty because
                    // of what this one already examined.
                    more = page.more
                        || page.items[index + 1..].iter().any(|kv| {
                            Self::decode_stored(kv).is_ok_and(|j| params.selection.matches(&j))
                        });
                    break 'pages;
                }
            }
            match page.items.last() {
                Some(last) if page.more => cursor = Some(last.key.clone()),
                _ => break,
            }
        }
        let revision = revision.unwrap_or_default();
        let mut list = MXJobList::new(items, revision.to_string());
        if more {
            if let Some(start_after) = last_examined {
                list.metadata.continue_ = Some(
                    ContinueToken {
                        revision,
                        start_after,
                    }
                    .encode(),
                );
            }
        }
        Ok(list)
    }

    /// The store's newest revision.
    pub(super) async fn current_revision(&self) -> Result<Revision, Error> {
        self.store
            .current_revision()
            .await
            .map_err(|e| Error::from_store(e, ""))
    }

    /// The revision and start position a list reads at, from its
    /// `continue`, `resourceVersion` and `resourceVersionMatch`.
    async fn list_start(
        &self,
        params: &ListParams,
    ) -> Result<(Option<Revision>, Option<String>), Error> {
        let version = params.resource_version.as_deref().filter(|v| !v.is_empty());
        if let Some(token) = params.continue_token.as_deref().filter(|t| !t.is_empty()) {
            if version.is_some() {
                return Err(Error::BadRequest(
                    "specifying resourceVersion is not allowed when using continue".to_string(),
                ));
            }
            let token =
                ContinueToken::decode(token).map_err(|e| Error::BadRequest(e.to_string()))?;
            return Ok((Some(token.revision), Some(token.start_after)));
        }
        let Some(version) = version else {
            if params.version_match.is_some() {
                return Err(Error::BadRequest(
                    "resourceVersionMatch is forbidden unless resourceVersion is provided"
                        .to_string(),
                ));
            }
            return Ok((None, None));
        };
        let requested = parse_resource_version(version)?;
        match &params.version_match {
            Some(ResourceVersionMatch::Unsupported(other)) => Err(Error::BadRequest(format!(
                "invalid resourceVersionMatch {other:?}: must be NotOlderThan or Exact"
            ))),
            Some(ResourceVersionMatch::Exact) if requested == 0 => Err(Error::BadRequest(
                "resourceVersionMatch=Exact needs a resourceVersion other than 0".to_string(),
            )),
            Some(ResourceVersionMatch::Exact) => Ok((Some(requested), None)),
            // NotOlderThan (the default): the newest state is never older,
            // unless the client has seen a revision this store has not.
            _ => {
                let current = self.current_revision().await?;
                if requested > current {
                    return Err(Error::TooNew { current });
                }
                Ok((None, None))
            }
        }
    }

    /// Watches the MXJobs of a namespace that match `params.selection`.
    ///
    /// Without a resourceVersion (or with "0") the stream starts with an
    /// ADDED event for every matching object, then follows changes; with
    /// one, it follows every change after it. `sendInitialEvents=true`
    /// starts with the current objects whatever the resourceVersion (one
    /// the store has not reached is [`Error::TooNew`]), followed, when
    /// bookmarks are allowed, by the bookmark annotated
    /// [`INITIAL_EVENTS_END`] at the revision the objects were read at;
    /// `sendInitialEvents=false` never sends the current objects. An object that starts or
    /// stops matching the selection is ADDED or DELETED, as in Kubernetes.
    /// A resourceVersion older than the kept history is answered with one
    /// [`Error::Gone`]; an error ends the stream (the HTTP edge sends it as
    /// the watch's ERROR event, as Kubernetes does).
    pub async fn watch(
        &self,
        namespace: Option<&str>,
        params: WatchParams,
    ) -> Result<BoxStream<'static, Result<WatchEvent, Error>>, Error> {
        let prefix = prefix_of(namespace);
        let version = params
            .resource_version
            .as_deref()
            .filter(|v| !v.is_empty() && *v != "0");
        let (initial, after) = match (params.initial_events, version) {
            // The changes after a resourceVersion, without initial events:
            // the classic watch from a version, and `sendInitialEvents=false`
            // with one. kube-apiserver's watch cache serves the latter from
            // the version given, replaying the changes after it (410 when
            // they are no longer kept) and waiting for those after a
            // version it has not reached, rather than from its newest state.
            (None | Some(false), Some(version)) => (Vec::new(), parse_resource_version(version)?),
            // `sendInitialEvents=false` without a resourceVersion (or with
            // "0"): the changes from the newest state on.
            (Some(false), None) => (Vec::new(), self.current_revision().await?),
            // The current objects first: without a resourceVersion, or as a
            // streaming list (sendInitialEvents).
            (Some(true), _) | (None, None) => {
                let page = self
                    .store
                    .list(&prefix, ListOptions::default())
                    .await
                    .map_err(|e| Error::from_store(e, ""))?;
                if let Some(requested) = version.map(parse_resource_version).transpose()? {
                    if requested > page.revision {
                        return Err(Error::TooNew {
                            current: page.revision,
                        });
                    }
                }
                let mut initial = Vec::new();
                for kv in &page.items {
                    let job = Self::decode_stored(kv)?;
                    if params.selection.matches(&job) {
                        initial.push(watch_event(WatchEventType::ADDED, &job)?);
                    }
                }
                // A streaming list ends its initial events with a bookmark
                // saying so, which informers wait for before they sync.
                if params.initial_events == Some(true) && params.bookmarks {
                    initial.push(initial_events_end(page.revision));
                }
                (initial, page.revision)
            }
        };
        let mut events = match self.store.watch(&prefix, after).await {
            Ok(events) => events,
            Err(StoreError::Compacted { compacted }) => {
                let error = Error::Gone(format!(
                    "too old resource version: {after} (the oldest kept is {compacted})"
                ));
                return Ok(futures::stream::iter([Err(error)]).boxed());
            }
            Err(e) => return Err(Error::from_store(e, "")),
        };
        let selection = params.selection;
        let stream = async_stream::stream! {
            for event in initial {
                yield Ok(event);
            }
            let deadline = tokio::time::sleep(params.timeout);
            tokio::pin!(deadline);
            let mut bookmarks = tokio::time::interval_at(
                tokio::time::Instant::now() + BOOKMARK_INTERVAL,
                BOOKMARK_INTERVAL,
            );
            let mut reached = after;
            loop {
                tokio::select! {
                    _ = &mut deadline => break,
                    _ = bookmarks.tick(), if params.bookmarks => yield Ok(bookmark(reached)),
                    next = events.next() => match next {
                        None => break,
                        Some(Err(e)) => {
                            yield Err(Error::from_store(e, ""));
                            break;
                        }
                        Some(Ok(event)) => {
                            reached = event.revision();
                            match convert_event(&event, &selection) {
                                Ok(Some(event)) => yield Ok(event),
                                Ok(None) => {}
                                Err(e) => {
                                    yield Err(e);
                                    break;
                                }
                            }
                        }
                    }
                }
            }
        };
        Ok(Box::pin(stream))
    }
}

/// Store errors of a list: a compacted continue token is `410 Expired`.
fn list_error(error: StoreError, params: &ListParams) -> Error {
    match (error, params.continue_token.is_some()) {
        (StoreError::Compacted { compacted }, true) => Error::Gone(format!(
            "the continue token is too old to give a consistent list: its resourceVersion has \
             been compacted (the oldest kept is {compacted}); start a new list without it"
        )),
        (error, _) => Error::from_store(error, ""),
    }
}

fn watch_event(type_: WatchEventType, job: &MXJob) -> Result<WatchEvent, Error> {
    match serde_json::to_value(job) {
        Ok(Value::Object(object)) => Ok(WatchEvent { type_, object }),
        _ => Err(Error::Internal("encoding a watch event".to_string())),
    }
}

/// The storage prefix of a namespace, or of every namespace.
fn prefix_of(namespace: Option<&str>) -> String {
    match namespace {
        Some(namespace) => namespace_prefix(namespace),
        None => ALL_NAMESPACES_PREFIX.to_string(),
    }
}

/// The bookmark that ends the initial events of a streaming list, annotated
/// as the Kubernetes API server annotates it.
fn initial_events_end(revision: Revision) -> WatchEvent {
    let mut event = bookmark(revision);
    if let Some(metadata) = event
        .object
        .get_mut("metadata")
        .and_then(Value::as_object_mut)
    {
        metadata.insert(
            "annotations".to_string(),
            serde_json::json!({ INITIAL_EVENTS_END: "true" }),
        );
    }
    event
}

fn bookmark(revision: Revision) -> WatchEvent {
    let object = serde_json::json!({
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"resourceVersion": revision.to_string()},
    });
    WatchEvent {
        type_: WatchEventType::BOOKMARK,
        object: object.as_object().cloned().unwrap_or_default(),
    }
}

/// A store event as the watcher of `selection` sees it, if at all.
fn convert_event(event: &Event, selection: &Selection) -> Result<Option<WatchEvent>, Error> {
    match event {
        Event::Put { kv, prev } => {
            let job = Registry::decode_stored(kv)?;
            let was = match prev {
                Some(prev) => selection.matches(&Registry::decode_stored(prev)?),
                None => false,
            };
            let type_ = match (was, selection.matches(&job)) {
                (false, true) => WatchEventType::ADDED,
                (true, true) => WatchEventType::MODIFIED,
                (true, false) => WatchEventType::DELETED,
                (false, false) => return Ok(None),
            };
            watch_event(type_, &job).map(Some)
        }
        Event::Delete { prev, revision } => {
            let mut job = Registry::decode_stored(prev)?;
            if !selection.matches(&job) {
                return Ok(None);
            }
            job.metadata.resource_version = Some(revision.to_string());
            watch_event(WatchEventType::DELETED, &job).map(Some)
        }
    }
}

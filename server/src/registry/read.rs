//! Reads: one object, consistent paged lists, and watches — with the
//! conversion of store events into what a watcher of a selection sees.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use mxjob_api::model::{MXJobList, WatchEvent, WatchEventType, API_VERSION, KIND};
use mxjob_api::params::ResourceVersionMatch;
use serde_json::Value;

use super::{
    namespace_prefix, object, parse_resource_version, Error, ListParams, Object, Registry,
    Selection, WatchParams, ALL_NAMESPACES_PREFIX,
};
use crate::pagination::ContinueToken;
use crate::store::{Event, KeyValue, ListOptions, Revision, StoreError};

/// The annotation of the bookmark that ends a streaming list's initial
/// events.
pub const INITIAL_EVENTS_END: &str = "k8s.io/initial-events-end";

/// How often an idle watch that asked for bookmarks gets one.
const BOOKMARK_INTERVAL: Duration = Duration::from_secs(5);

impl Registry {
    /// Reads one MXJob.
    pub async fn get(&self, namespace: &str, name: &str) -> Result<Arc<Object>, Error> {
        Ok(self.load(namespace, name).await?.object)
    }

    /// Lists the MXJobs of a namespace (of every namespace for `None`)
    /// that match `params.selection`: all of them, or one page of at most
    /// `limit`, at one store revision. The items stay as stored (see
    /// [`Listing`]): a list decodes only what its selection needs.
    pub async fn list(
        &self,
        namespace: Option<&str>,
        params: &ListParams,
    ) -> Result<Listing, Error> {
        let (revision, start_after) = self.list_start(params).await?;
        if namespace.is_some_and(|ns| !crate::names::is_dns1123_label(ns)) {
            let revision = match revision {
                Some(r) => r,
                None => self.current_revision().await?,
            };
            return Ok(Listing {
                items: Vec::new(),
                revision,
                continue_: None,
            });
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
            let mut kvs = page.items.into_iter();
            let mut last_key = None;
            while let Some(kv) = kvs.next() {
                // Where the next page starts: the name, or for a list of
                // every namespace `namespace/name`.
                last_examined = kv.key.strip_prefix(&prefix).map(str::to_string);
                last_key = Some(kv.key.clone());
                if selects(&params.selection, &kv)? {
                    items.push(kv);
                }
                if limit.is_some_and(|l| items.len() >= l) {
                    // Another page only if something after this one could
                    // still be selected: a page never ends up empty because
                    // of what this one already examined.
                    more =
                        page.more || kvs.any(|kv| selects(&params.selection, &kv).unwrap_or(false));
                    break 'pages;
                }
            }
            match last_key {
                Some(last) if page.more => cursor = Some(last),
                _ => break,
            }
        }
        let revision = revision.unwrap_or_default();
        let continue_ = match (more, last_examined) {
            (true, Some(start_after)) => Some(
                ContinueToken {
                    revision,
                    start_after,
                }
                .encode(),
            ),
            _ => None,
        };
        Ok(Listing {
            items,
            revision,
            continue_,
        })
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
    ) -> Result<BoxStream<'static, Result<Watched, Error>>, Error> {
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
            (None | Some(false), Some(version)) => {
                (Initial::default(), parse_resource_version(version)?)
            }
            // `sendInitialEvents=false` without a resourceVersion (or with
            // "0"): the changes from the newest state on.
            (Some(false), None) => (Initial::default(), self.current_revision().await?),
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
                // Decoded (and selected) one at a time as they are sent,
                // so the current objects are never all decoded at once.
                let end = (params.initial_events == Some(true) && params.bookmarks)
                    .then(|| initial_events_end(page.revision));
                (
                    Initial {
                        items: page.items,
                        end,
                    },
                    page.revision,
                )
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
            for kv in initial.items {
                let object = match Self::decode_stored(&kv) {
                    Ok(object) => object,
                    Err(e) => {
                        yield Err(e);
                        return;
                    }
                };
                if selection.matches(object.job_without_managed_fields()) {
                    yield Ok(Watched::Object { type_: WatchEventType::ADDED, object });
                }
            }
            if let Some(end) = initial.end {
                yield Ok(Watched::Event(end));
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
                    _ = bookmarks.tick(), if params.bookmarks => yield Ok(Watched::Event(bookmark(reached))),
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

/// One event of a watch: an object (shared with every other watcher of
/// the same change, see [`Object::event_line`]), or a bookmark.
#[derive(Debug)]
pub enum Watched {
    Object {
        type_: WatchEventType,
        object: Arc<Object>,
    },
    Event(WatchEvent),
}

/// What a watch sends before the changes: the current objects, then
/// (for a streaming list) the bookmark that ends them.
#[derive(Default)]
struct Initial {
    items: Vec<KeyValue>,
    end: Option<WatchEvent>,
}

/// A list's answer: the selected items as stored, the revision they were
/// read at, and where the next page starts.
///
/// Items are not decoded to be answered: each item's JSON is its stored
/// bytes with its resourceVersion spliced in (see [`Object::json`]), made
/// as the answer is written ([`Listing::json_chunks`]), so that a list of
/// everything holds references to the stored values and one chunk of
/// JSON at a time, not every object decoded and encoded at once.
#[derive(Debug)]
pub struct Listing {
    pub items: Vec<KeyValue>,
    pub revision: Revision,
    pub continue_: Option<String>,
}

/// How many bytes of a list's JSON [`Listing::json_chunks`] gathers into one chunk.
const LIST_CHUNK_BYTES: usize = 256 * 1024;

impl Listing {
    /// The items, decoded.
    pub fn objects(&self) -> Result<Vec<Arc<Object>>, Error> {
        self.items.iter().map(Registry::decode_stored).collect()
    }

    /// The list as an [`MXJobList`] (decoded: tables, indented answers).
    pub fn to_list(&self) -> Result<MXJobList, Error> {
        let items = self.objects()?.into_iter().map(Object::into_job).collect();
        let mut list = MXJobList::new(items, self.revision.to_string());
        list.metadata.continue_ = self.continue_.clone();
        Ok(list)
    }

    /// The compact JSON answer (an `MXJobList`, and a newline), in chunks
    /// of about [`LIST_CHUNK_BYTES`], made one at a time as they are taken.
    pub fn json_chunks(self) -> impl Iterator<Item = Result<Bytes, Error>> + Send {
        let head = self.head();
        let mut items = self.items.into_iter().peekable();
        let mut head = Some(head);
        let mut done = false;
        std::iter::from_fn(move || {
            if done {
                return None;
            }
            let mut chunk = match head.take() {
                Some(Ok(head)) => head,
                Some(Err(e)) => {
                    done = true;
                    return Some(Err(e));
                }
                None => Vec::with_capacity(LIST_CHUNK_BYTES + 4096),
            };
            while chunk.len() < LIST_CHUNK_BYTES {
                let Some(kv) = items.next() else {
                    chunk.extend_from_slice(b"]}\n");
                    done = true;
                    break;
                };
                match object::item_json(&kv) {
                    Ok(json) => chunk.extend_from_slice(json.strip_suffix(b"\n").unwrap_or(&json)),
                    Err(e) => {
                        done = true;
                        return Some(Err(e));
                    }
                }
                if items.peek().is_some() {
                    chunk.push(b',');
                }
            }
            Some(Ok(Bytes::from(chunk)))
        })
    }

    /// The list's JSON up to its first item: `…,"items":[`.
    fn head(&self) -> Result<Vec<u8>, Error> {
        let mut empty = MXJobList::new(Vec::new(), self.revision.to_string());
        empty.metadata.continue_ = self.continue_.clone();
        let mut head = serde_json::to_vec(&empty)
            .map_err(|e| Error::Internal(format!("encoding a list: {e}")))?;
        if !head.ends_with(b"[]}") {
            return Err(Error::Internal("a list encodes its items last".to_string()));
        }
        head.truncate(head.len() - 2);
        Ok(head)
    }
}

/// Whether the object `kv` holds is in `selection`: without decoding when
/// the selection takes everything, from the shared decoded object when a
/// reader made one, and otherwise from its metadata alone.
fn selects(selection: &Selection, kv: &KeyValue) -> Result<bool, Error> {
    if selection.is_everything() {
        return Ok(true);
    }
    if let Some(object) = kv.value.decoded::<Object>() {
        return Ok(selection.matches(object.job_without_managed_fields()));
    }
    #[derive(serde::Deserialize)]
    struct Selected {
        metadata: SelectedMeta,
    }
    #[derive(serde::Deserialize)]
    struct SelectedMeta {
        #[serde(default)]
        name: String,
        #[serde(default)]
        namespace: String,
        #[serde(default)]
        labels: std::collections::BTreeMap<String, String>,
    }
    let Selected { metadata } = serde_json::from_slice(&kv.value)
        .map_err(|e| Error::Internal(format!("decoding stored object {}: {e}", kv.key)))?;
    Ok(selection.matches_parts(&metadata.name, &metadata.namespace, &metadata.labels))
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

/// A store event as the watcher of `selection` sees it, if at all. The
/// objects are the shared decoded ones: no watcher decodes what another
/// (or the writer) already did.
fn convert_event(event: &Event, selection: &Selection) -> Result<Option<Watched>, Error> {
    match event {
        Event::Put { kv, prev } => {
            let object = Registry::decode_stored(kv)?;
            let was = match prev {
                None => false,
                Some(_) if selection.is_everything() => true,
                Some(prev) => selects(selection, prev)?,
            };
            let type_ = match (was, selection.matches(object.job_without_managed_fields())) {
                (false, true) => WatchEventType::ADDED,
                (true, true) => WatchEventType::MODIFIED,
                (true, false) => WatchEventType::DELETED,
                (false, false) => return Ok(None),
            };
            Ok(Some(Watched::Object { type_, object }))
        }
        Event::Delete { prev, revision } => {
            let object = Registry::decode_stored(prev)?;
            if !selection.matches(object.job_without_managed_fields()) {
                return Ok(None);
            }
            Ok(Some(Watched::Object {
                type_: WatchEventType::DELETED,
                object: object.deleted_at(*revision),
            }))
        }
    }
}

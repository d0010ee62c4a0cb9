//! How request bodies come in and responses go out.
//!
//! Dropshot's own `TypedBody` and `HttpResponseOk` do not fit a
//! Kubernetes-style API in three ways, so this module replaces them:
//!
//! * **Errors.** A body that is too large must be `413` and every bad body
//!   a `Status`; [`JsonBody`] reads the bytes itself and leaves decoding to
//!   the registry, which knows about `fieldValidation`.
//! * **Order.** Kubernetes authenticates and authorizes a request before
//!   it reads the body or parses the query, so a refused caller costs
//!   nothing and learns nothing from a 400. Dropshot runs extractors before
//!   the handler, so [`JsonBody`] and [`QueryString`] only capture the body
//!   stream and the raw query; the handler reads and parses them after
//!   authorization. Reading a body has a deadline ([`BODY_TIMEOUT`]).
//! * **Media types.** Patch bodies arrive as `application/merge-patch+json`
//!   or `application/json-patch+json`, which dropshot cannot declare; the
//!   extractor records the media type and the registry chooses the patch
//!   algorithm from it. The OpenAPI document still describes the body
//!   schema (as `application/json`, the one JSON type it can declare).
//! * **Output.** `pretty=true` and `Warning` headers need control over the
//!   response bytes; [`Reply`] serializes the body itself while reporting
//!   the same schema dropshot would.

use std::marker::PhantomData;

use async_trait::async_trait;
use bytes::Bytes;
use std::time::Duration;

use dropshot::{
    ApiEndpointBodyContentType, ApiEndpointResponse, Body, ExclusiveExtractor, ExtractorMetadata,
    HttpError, HttpResponse, HttpResponseCreated, HttpResponseOk, Query, RequestContext,
    ServerContext, SharedExtractor, StreamingBody, TypedBody,
};
use futures::StreamExt;
use http::{header, HeaderValue, Response, StatusCode};
use http_body::Frame;
use http_body_util::StreamBody;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::ApiError;
use crate::model::{MXJobList, WatchEvent};

/// The largest request body accepted, as in the Kubernetes API server (3 MiB).
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// How long a request body may take to arrive, by default: the Kubernetes
/// API server's default request timeout. A client that sends its headers
/// and then stalls is answered 408 and its connection closed after this.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(60);

/// A JSON request body, documented as `T`, and read only when the handler
/// asks for it ([`JsonBody::read`]) — after the caller has been
/// authenticated and authorized, so that a refused caller costs no more
/// than its headers.
pub struct JsonBody<T> {
    source: BodySource,
    /// The media type without parameters, lower-cased (`application/json`).
    media_type: Option<String>,
    _schema: PhantomData<fn() -> T>,
}

enum BodySource {
    /// Still on the connection.
    Request { body: StreamingBody, limit: usize },
    /// Built in process.
    Bytes(Vec<u8>),
}

impl<T> JsonBody<T> {
    /// A body built in process (tests, internal callers).
    pub fn new(bytes: Vec<u8>, media_type: Option<&str>) -> Self {
        JsonBody {
            source: BodySource::Bytes(bytes),
            media_type: media_type.map(str::to_string),
            _schema: PhantomData,
        }
    }

    /// The declared media type, without parameters, lower-cased.
    pub fn media_type(&self) -> Option<&str> {
        self.media_type.as_deref()
    }

    /// Reads the body within `limits`: 413 past the size limit, 408 when it
    /// has not all arrived within the deadline, 429 when the bodies being
    /// received at once already hold the most bytes the server allows.
    pub async fn read(self, limits: &BodyLimits) -> Result<Vec<u8>, ApiError> {
        let (body, limit) = match self.source {
            BodySource::Bytes(bytes) => return Ok(bytes),
            BodySource::Request { body, limit } => (body, limit),
        };
        let reading = async {
            let mut stream = std::pin::pin!(body.into_stream());
            let mut bytes = Vec::new();
            // Held until the body is read: what it has taken of the budget.
            let mut held: Option<tokio::sync::OwnedSemaphorePermit> = None;
            while let Some(chunk) = stream.next().await {
                match chunk {
                    Ok(chunk) => {
                        let size = u32::try_from(chunk.len()).unwrap_or(u32::MAX);
                        let permit = limits
                            .in_flight
                            .clone()
                            .try_acquire_many_owned(size)
                            .map_err(|_| ApiError::too_many_requests(BUSY))?;
                        match held.as_mut() {
                            Some(held) => held.merge(permit),
                            None => held = Some(permit),
                        }
                        bytes.extend_from_slice(&chunk)
                    }
                    // Dropshot ends the stream with this error once the body
                    // passes the cap.
                    Err(error) if error.external_message.contains("exceeded maximum size") => {
                        return Err(ApiError::too_large(limit))
                    }
                    Err(error) => return Err(ApiError::from(error)),
                }
            }
            Ok(bytes)
        };
        tokio::time::timeout(limits.timeout, reading)
            .await
            .unwrap_or_else(|_| Err(ApiError::body_timeout(limits.timeout)))
    }
}

/// What [`BodyLimits`] answers a body that would pass the budget.
const BUSY: &str = "the server is receiving too many request bodies at once; retry later";

/// The bytes request bodies may hold while they are being received, all
/// together, by default. A stalled upload holds what it has sent until its
/// deadline; without a bound, enough of them (each under the body limit)
/// would take the server's memory.
pub const BODY_BYTES_IN_FLIGHT: usize = 256 * 1024 * 1024;

/// How request bodies are received: a deadline for each, and a budget of
/// bytes for all of them at once (beyond it, 429, as the Kubernetes API
/// server answers when it has too many requests in flight).
#[derive(Clone, Debug)]
pub struct BodyLimits {
    pub timeout: Duration,
    in_flight: std::sync::Arc<tokio::sync::Semaphore>,
}

impl BodyLimits {
    /// Bodies must arrive within `timeout`, and hold at most `in_flight`
    /// bytes together while they arrive.
    pub fn new(timeout: Duration, in_flight: usize) -> Self {
        let permits = in_flight.min(tokio::sync::Semaphore::MAX_PERMITS);
        BodyLimits {
            timeout,
            in_flight: std::sync::Arc::new(tokio::sync::Semaphore::new(permits)),
        }
    }
}

impl Default for BodyLimits {
    fn default() -> Self {
        BodyLimits::new(BODY_TIMEOUT, BODY_BYTES_IN_FLIGHT)
    }
}

/// The media type a request body is read as, without parameters,
/// lower-cased: the declared one; or, when none is declared, JSON for a
/// client that is not a browser — the Kubernetes API server reads such
/// bodies as its first media type, JSON, and the Python `kubernetes`
/// client sends custom objects that way. A browser always sends `Origin`
/// with a write, and its cross-site "simple" requests are the ones without
/// a declared type: from a browser an undeclared body stays undeclared, and
/// is refused (415).
fn effective_media_type(headers: &http::HeaderMap) -> Option<String> {
    match headers.get(header::CONTENT_TYPE) {
        Some(value) => value.to_str().ok().map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        }),
        None if headers.contains_key(header::ORIGIN) => None,
        None => Some("application/json".to_string()),
    }
}

#[async_trait]
impl<T> ExclusiveExtractor for JsonBody<T>
where
    T: JsonSchema + DeserializeOwned + Send + Sync + 'static,
{
    async fn from_request<Context: ServerContext>(
        rqctx: &RequestContext<Context>,
        request: http::Request<Body>,
    ) -> Result<Self, HttpError> {
        let media_type = effective_media_type(request.headers());
        let limit = rqctx.request_body_max_bytes();
        let body = StreamingBody::from_request(rqctx, request).await?;
        Ok(JsonBody {
            source: BodySource::Request { body, limit },
            media_type,
            _schema: PhantomData,
        })
    }

    fn metadata(content_type: ApiEndpointBodyContentType) -> ExtractorMetadata {
        TypedBody::<T>::metadata(content_type)
    }
}

/// A request body that may be left out, documented as an optional `T`
/// (the `DeleteOptions` of a delete). An empty body reads as no body.
pub struct OptionalJsonBody<T>(pub JsonBody<T>);

#[async_trait]
impl<T> ExclusiveExtractor for OptionalJsonBody<T>
where
    T: JsonSchema + DeserializeOwned + Send + Sync + 'static,
{
    async fn from_request<Context: ServerContext>(
        rqctx: &RequestContext<Context>,
        request: http::Request<Body>,
    ) -> Result<Self, HttpError> {
        JsonBody::from_request(rqctx, request)
            .await
            .map(OptionalJsonBody)
    }

    fn metadata(content_type: ApiEndpointBodyContentType) -> ExtractorMetadata {
        let mut metadata = TypedBody::<T>::metadata(content_type);
        for parameter in &mut metadata.parameters {
            parameter.required = false;
        }
        metadata
    }
}

/// Query parameters documented as `T`, kept as the raw query string until
/// the handler parses them ([`QueryString::parse`]) — after authorization,
/// as the Kubernetes API server does, so that an unauthenticated
/// `?limit=abc` is 401, not 400.
pub struct QueryString<T> {
    raw: String,
    _schema: PhantomData<fn() -> T>,
}

/// Query parameters that are lists in Kubernetes (`dryRun` is `[]string`
/// in its options types), with their one valid value: every value given
/// counts. Every other parameter is a single value, and when one is
/// repeated the first counts, as Go's `url.Values.Get` reads it.
const LIST_PARAMETERS: [(&str, &str); 1] = [("dryRun", "All")];

impl<T: DeserializeOwned> QueryString<T> {
    /// A query built in process (tests, internal callers).
    pub fn new(raw: impl Into<String>) -> Self {
        QueryString {
            raw: raw.into(),
            _schema: PhantomData,
        }
    }

    /// The raw values of parameter `name`, decoded, in order.
    pub fn values(&self, name: &str) -> Vec<String> {
        serde_urlencoded::from_str::<Vec<(String, String)>>(&self.raw)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(key, value)| (key == name).then_some(value))
            .collect()
    }

    /// The parameters; 400 when they do not parse.
    pub fn parse(&self) -> Result<T, ApiError> {
        let bad = |e: serde_urlencoded::de::Error| {
            ApiError::bad_request(format!("unable to parse query string: {e}"))
        };
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(&self.raw).map_err(bad)?;
        let mut kept: Vec<(String, String)> = Vec::with_capacity(pairs.len());
        for (key, value) in pairs {
            match kept.iter_mut().find(|(k, _)| *k == key) {
                None => kept.push((key, value)),
                // A list parameter takes every value: the first one that is
                // not valid stands for all, so that it is the one refused.
                Some((k, first)) => {
                    let valid = LIST_PARAMETERS
                        .iter()
                        .find(|(name, _)| name == k)
                        .map(|(_, valid)| *valid);
                    if valid.is_some_and(|valid| first == valid && value != valid) {
                        *first = value;
                    }
                }
            }
        }
        let deduplicated = serde_urlencoded::to_string(&kept)
            .map_err(|e| ApiError::internal(format!("re-encoding the query: {e}")))?;
        serde_urlencoded::from_str(&deduplicated).map_err(bad)
    }
}

#[async_trait]
impl<T> SharedExtractor for QueryString<T>
where
    T: JsonSchema + DeserializeOwned + Send + Sync + 'static,
{
    async fn from_request<Context: ServerContext>(
        rqctx: &RequestContext<Context>,
    ) -> Result<Self, HttpError> {
        Ok(QueryString::new(
            rqctx.request.uri().query().unwrap_or_default(),
        ))
    }

    fn metadata(content_type: ApiEndpointBodyContentType) -> ExtractorMetadata {
        <Query<T> as SharedExtractor>::metadata(content_type)
    }
}

/// The success code of a [`Reply`].
pub trait SuccessCode: Send + Sync + 'static {
    const CODE: StatusCode;
}

/// `200 OK`.
pub struct Ok200;
impl SuccessCode for Ok200 {
    const CODE: StatusCode = StatusCode::OK;
}

/// `201 Created`.
pub struct Created201;
impl SuccessCode for Created201 {
    const CODE: StatusCode = StatusCode::CREATED;
}

/// A JSON response: compact or pretty, with optional `Warning` headers.
pub struct Reply<T, C = Ok200> {
    body: ReplyBody<T>,
    pretty: bool,
    warnings: Vec<String>,
    /// Another success code than `C`'s, where an operation documents two
    /// (a patch that is an apply creating the object answers 201).
    code: Option<StatusCode>,
    _code: PhantomData<fn() -> C>,
}

enum ReplyBody<T> {
    /// The documented type.
    Typed(T),
    /// The documented type, already encoded as [`to_json`] would (compact).
    Encoded(Bytes),
    /// Another representation the client asked for (a `Table`).
    Other(serde_json::Value),
}

impl<T, C> Reply<T, C> {
    pub fn new(body: T, pretty: bool, warnings: Vec<String>) -> Self {
        Reply {
            body: ReplyBody::Typed(body),
            pretty,
            warnings,
            code: None,
            _code: PhantomData,
        }
    }

    /// The same reply, answered `201 Created`: for the operation that
    /// documents both (an apply that created the object).
    pub fn created(mut self) -> Self {
        self.code = Some(StatusCode::CREATED);
        self
    }

    /// A compact reply of the documented type, already encoded (as
    /// [`to_json`] writes it, newline included).
    pub fn encoded(body: Bytes, warnings: Vec<String>) -> Self {
        Reply {
            body: ReplyBody::Encoded(body),
            pretty: false,
            warnings,
            code: None,
            _code: PhantomData,
        }
    }

    /// A reply in another representation the client negotiated.
    pub fn other(body: serde_json::Value, pretty: bool) -> Self {
        Reply {
            body: ReplyBody::Other(body),
            pretty,
            warnings: Vec::new(),
            code: None,
            _code: PhantomData,
        }
    }
}

/// `Warning: 299 - "text"`, the form the Kubernetes API server sends.
pub fn warning_header(text: &str) -> Option<HeaderValue> {
    let escaped = text.replace('\\', "\\\\").replace('"', "\\\"");
    HeaderValue::from_str(&format!("299 - \"{escaped}\"")).ok()
}

/// Serializes a response body as the Kubernetes API server does: compact,
/// or indented when `pretty`, followed by a newline.
pub fn to_json<T: Serialize>(body: &T, pretty: bool) -> Result<Vec<u8>, serde_json::Error> {
    let mut bytes = if pretty {
        serde_json::to_vec_pretty(body)?
    } else {
        serde_json::to_vec(body)?
    };
    bytes.push(b'\n');
    Ok(bytes)
}

impl<T, C> HttpResponse for Reply<T, C>
where
    T: JsonSchema + Serialize + Send + Sync + 'static,
    C: SuccessCode,
{
    fn to_result(self) -> Result<Response<Body>, HttpError> {
        let bytes = match self.body {
            ReplyBody::Typed(body) => to_json(&body, self.pretty).map(Bytes::from),
            ReplyBody::Encoded(bytes) => Ok(bytes),
            ReplyBody::Other(body) => to_json(&body, self.pretty).map(Bytes::from),
        }
        .map_err(|e| HttpError::for_internal_error(format!("encoding response: {e}")))?;
        let mut builder = Response::builder()
            .status(self.code.unwrap_or(C::CODE))
            .header(header::CONTENT_TYPE, dropshot::CONTENT_TYPE_JSON);
        for warning in self.warnings.iter().filter_map(|w| warning_header(w)) {
            builder = builder.header(header::WARNING, warning);
        }
        builder
            .body(Body::from(bytes))
            .map_err(|e| HttpError::for_internal_error(format!("building response: {e}")))
    }

    fn response_metadata() -> ApiEndpointResponse {
        if C::CODE == StatusCode::CREATED {
            HttpResponseCreated::<T>::response_metadata()
        } else {
            HttpResponseOk::<T>::response_metadata()
        }
    }

    fn status_code(&self) -> StatusCode {
        self.code.unwrap_or(C::CODE)
    }
}

/// Streams `events` as JSON lines with `content_type`. Each event is turned
/// into its wire form by `encode` (tables for kubectl, objects otherwise).
/// The stream stops when the client goes away (hyper drops the body).
pub fn stream_response<S, F>(events: S, content_type: &'static str, encode: F) -> Response<Body>
where
    S: futures::Stream<Item = WatchEvent> + Send + 'static,
    F: Fn(WatchEvent) -> WatchEvent + Send + Sync + 'static,
{
    let chunks = events
        .map(move |event| to_json(&encode(event), false))
        // An event that cannot be encoded ends the stream.
        .take_while(|encoded| std::future::ready(encoded.is_ok()))
        .filter_map(|encoded| std::future::ready(encoded.ok().map(Bytes::from)));
    stream_bytes(chunks, content_type)
}

/// Streams `chunks`, each already in its wire form (watch event lines, or
/// the parts of a list), with `content_type`. The stream stops when the
/// client goes away (hyper drops the body).
pub fn stream_bytes<S>(chunks: S, content_type: &'static str) -> Response<Body>
where
    S: futures::Stream<Item = Bytes> + Send + 'static,
{
    let frames = chunks.map(|bytes| Ok::<_, std::convert::Infallible>(Frame::data(bytes)));
    // Dropshot's bodies must be `Sync`; a stream is polled by one task only.
    let frames = sync_wrapper::SyncStream::new(frames);
    let mut response = Response::new(Body::wrap(StreamBody::new(frames)));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// A plain-text response, documented as a string (the OpenAPI document
/// declares it as `text/plain`).
pub struct TextResponse(pub Response<Body>);

impl HttpResponse for TextResponse {
    fn to_result(self) -> Result<Response<Body>, HttpError> {
        Ok(self.0)
    }

    fn response_metadata() -> ApiEndpointResponse {
        HttpResponseOk::<String>::response_metadata()
    }

    fn status_code(&self) -> StatusCode {
        StatusCode::OK
    }
}

/// The answer of the list operation: a list (or its table), or, for
/// `watch=true`, a stream. Documented as the list.
pub enum ListResponse {
    List(Reply<MXJobList>),
    /// A list written as it is made (see [`stream_bytes`]).
    Stream(Response<Body>),
    Watch(Response<Body>),
}

impl HttpResponse for ListResponse {
    fn to_result(self) -> Result<Response<Body>, HttpError> {
        match self {
            ListResponse::List(reply) => reply.to_result(),
            ListResponse::Stream(response) | ListResponse::Watch(response) => Ok(response),
        }
    }

    fn response_metadata() -> ApiEndpointResponse {
        Reply::<MXJobList>::response_metadata()
    }

    fn status_code(&self) -> StatusCode {
        StatusCode::OK
    }
}

/// The media type of the watch operation's stream: newline-delimited JSON.
/// (The list operation's `watch=true` answers `application/json`, as the
/// Kubernetes API server does; this path can say precisely what it sends,
/// and generated clients then hand over the stream instead of decoding one
/// document.)
pub const WATCH_CONTENT_TYPE: &str = dropshot::CONTENT_TYPE_NDJSON;

/// The answer of the watch operation: a stream of `WatchEvent`s.
pub struct WatchResponse(pub Response<Body>);

impl HttpResponse for WatchResponse {
    fn to_result(self) -> Result<Response<Body>, HttpError> {
        Ok(self.0)
    }

    fn response_metadata() -> ApiEndpointResponse {
        HttpResponseOk::<WatchEvent>::response_metadata()
    }

    fn status_code(&self) -> StatusCode {
        StatusCode::OK
    }
}

//! How request bodies come in and responses go out.
//!
//! Dropshot's own `TypedBody` and `HttpResponseOk` do not fit a
//! Kubernetes-style API in three ways, so this module replaces them:
//!
//! * **Errors.** A body that is too large must be `413` and every bad body
//!   a `Status`; [`JsonBody`] reads the bytes itself and leaves decoding to
//!   the registry, which knows about `fieldValidation`.
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
use dropshot::{
    ApiEndpointBodyContentType, ApiEndpointResponse, Body, ExclusiveExtractor, ExtractorMetadata,
    HttpError, HttpResponse, HttpResponseCreated, HttpResponseOk, RequestContext, ServerContext,
    StreamingBody, TypedBody,
};
use futures::StreamExt;
use http::{header, HeaderValue, Response, StatusCode};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::model::{MXJobList, WatchEvent};
use crate::status::ApiError;

/// The largest request body accepted, as in the Kubernetes API server (3 MiB).
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// A JSON request body, kept as bytes, documented as `T`.
pub struct JsonBody<T> {
    /// The body as sent.
    pub bytes: Vec<u8>,
    /// The media type without parameters, lower-cased (`application/json`).
    pub media_type: Option<String>,
    _schema: PhantomData<fn() -> T>,
}

impl<T> JsonBody<T> {
    /// A body built in process (tests, internal callers).
    pub fn new(bytes: Vec<u8>, media_type: Option<&str>) -> Self {
        JsonBody {
            bytes,
            media_type: media_type.map(str::to_string),
            _schema: PhantomData,
        }
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
        let media_type = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            });
        let limit = rqctx.request_body_max_bytes();
        let mut stream = std::pin::pin!(StreamingBody::from_request(rqctx, request)
            .await?
            .into_stream());
        let mut bytes = Vec::new();
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(chunk) => bytes.extend_from_slice(&chunk),
                // Dropshot ends the stream with this error once the body passes
                // the cap, having read and dropped the rest of it, so the
                // connection stays usable.
                Err(error) if error.external_message.contains("exceeded maximum size") => {
                    return Err(too_large(limit))
                }
                Err(error) => return Err(error),
            }
        }
        Ok(JsonBody {
            bytes,
            media_type,
            _schema: PhantomData,
        })
    }

    fn metadata(content_type: ApiEndpointBodyContentType) -> ExtractorMetadata {
        TypedBody::<T>::metadata(content_type)
    }
}

fn too_large(limit: usize) -> HttpError {
    let status = ApiError::too_large(limit);
    let mut error = HttpError::for_client_error(
        None,
        dropshot::ClientErrorStatusCode::PAYLOAD_TOO_LARGE,
        status.message().to_string(),
    );
    error.internal_message = "request body over the limit".to_string();
    error
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
    _code: PhantomData<fn() -> C>,
}

enum ReplyBody<T> {
    /// The documented type.
    Typed(T),
    /// Another representation the client asked for (a `Table`).
    Other(serde_json::Value),
}

impl<T, C> Reply<T, C> {
    pub fn new(body: T, pretty: bool, warnings: Vec<String>) -> Self {
        Reply {
            body: ReplyBody::Typed(body),
            pretty,
            warnings,
            _code: PhantomData,
        }
    }

    /// A reply in another representation the client negotiated.
    pub fn other(body: serde_json::Value, pretty: bool) -> Self {
        Reply {
            body: ReplyBody::Other(body),
            pretty,
            warnings: Vec::new(),
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
        let bytes = match &self.body {
            ReplyBody::Typed(body) => to_json(body, self.pretty),
            ReplyBody::Other(body) => to_json(body, self.pretty),
        }
        .map_err(|e| HttpError::for_internal_error(format!("encoding response: {e}")))?;
        let mut builder = Response::builder()
            .status(C::CODE)
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
        C::CODE
    }
}

/// A response body fed from a channel: what a watch streams.
pub struct ChannelBody(tokio::sync::mpsc::Receiver<Bytes>);

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|bytes| Ok(http_body::Frame::data(bytes))))
    }
}

/// Streams `events` as JSON lines with `content_type`. Each event is turned
/// into its wire form by `encode` (tables for kubectl, objects otherwise).
/// The stream stops when the client goes away.
pub fn stream_response<S, F>(events: S, content_type: &'static str, encode: F) -> Response<Body>
where
    S: futures::Stream<Item = WatchEvent> + Send + 'static,
    F: Fn(WatchEvent) -> WatchEvent + Send + 'static,
{
    let (sender, receiver) = tokio::sync::mpsc::channel::<Bytes>(16);
    tokio::spawn(async move {
        let mut events = std::pin::pin!(events);
        loop {
            let event = tokio::select! {
                // The client went away: stop (and release what the stream holds).
                _ = sender.closed() => break,
                event = events.next() => event,
            };
            let Some(event) = event else { break };
            let Ok(bytes) = to_json(&encode(event), false) else {
                break;
            };
            if sender.send(Bytes::from(bytes)).await.is_err() {
                break;
            }
        }
    });
    let mut response = Response::new(Body::wrap(ChannelBody(receiver)));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// The answer of the list operation: a list (or its table), or, for
/// `watch=true`, a stream. Documented as the list.
pub enum ListResponse {
    List(Reply<MXJobList>),
    Watch(Response<Body>),
}

impl HttpResponse for ListResponse {
    fn to_result(self) -> Result<Response<Body>, HttpError> {
        match self {
            ListResponse::List(reply) => reply.to_result(),
            ListResponse::Watch(response) => Ok(response),
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

//! The Rust client of the MXJob API, generated at build time from
//! `openapi/mxjob.json` by progenitor (see `build.rs`).
//!
//! Everything in [`Client`] and [`types`] is generated. The helpers below
//! add only what generation cannot express: sending a patch with the
//! merge-patch or JSON-patch media type (the document can declare one media
//! type per body, `application/json`), reading a watch stream as typed
//! events, and authentication headers.

include!(concat!(env!("OUT_DIR"), "/mxjob_client.rs"));

/// Media type of an RFC 7386 merge patch.
pub const MERGE_PATCH: &str = "application/merge-patch+json";
/// Media type of an RFC 6902 JSON patch.
pub const JSON_PATCH: &str = "application/json-patch+json";
/// Media type of a server-side apply.
pub const APPLY_PATCH: &str = "application/apply-patch+yaml";

impl Client {
    /// Patches an MXJob with an explicit patch media type ([`MERGE_PATCH`]
    /// or [`JSON_PATCH`]); otherwise like [`Client::patch_mxjob`].
    pub async fn patch_mxjob_as(
        &self,
        namespace: &str,
        name: &str,
        media_type: &str,
        patch: &serde_json::Value,
    ) -> Result<ResponseValue<types::MxJob>, Error<types::Status>> {
        let url = format!(
            "{}/apis/kubeflow.org/v1/namespaces/{}/mxjobs/{}",
            self.baseurl(),
            encode_path(namespace),
            encode_path(name),
        );
        let body = serde_json::to_vec(patch).map_err(|e| Error::InvalidRequest(e.to_string()))?;
        let response = self
            .client()
            .patch(url)
            .header(reqwest::header::CONTENT_TYPE, media_type)
            .header(reqwest::header::ACCEPT, "application/json")
            .body(body)
            .send()
            .await
            .map_err(Error::CommunicationError)?;
        if response.status().is_success() {
            ResponseValue::from_response(response).await
        } else {
            Err(Error::ErrorResponse(
                ResponseValue::from_response(response).await?,
            ))
        }
    }
}

impl Client {
    /// A server-side apply of `config` (an applied configuration: the parts
    /// of an MXJob `field_manager` has an opinion on) to the MXJob `name`,
    /// creating it when it does not exist; `force` takes fields other
    /// managers own instead of failing with 409.
    pub async fn apply_mxjob(
        &self,
        namespace: &str,
        name: &str,
        field_manager: &str,
        force: bool,
        config: &serde_json::Value,
    ) -> Result<ResponseValue<types::MxJob>, Error<types::Status>> {
        let url = format!(
            "{}/apis/kubeflow.org/v1/namespaces/{}/mxjobs/{}",
            self.baseurl(),
            encode_path(namespace),
            encode_path(name),
        );
        let body = serde_json::to_vec(config).map_err(|e| Error::InvalidRequest(e.to_string()))?;
        let mut query = vec![("fieldManager", field_manager)];
        if force {
            query.push(("force", "true"));
        }
        let response = self
            .client()
            .patch(url)
            .query(&query)
            .header(reqwest::header::CONTENT_TYPE, APPLY_PATCH)
            .header(reqwest::header::ACCEPT, "application/json")
            .body(body)
            .send()
            .await
            .map_err(Error::CommunicationError)?;
        if response.status().is_success() {
            ResponseValue::from_response(response).await
        } else {
            Err(Error::ErrorResponse(
                ResponseValue::from_response(response).await?,
            ))
        }
    }
}

/// Why a watch stream could not give its next event.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// The connection failed; the stream ends.
    #[error("reading the watch: {0}")]
    Read(#[from] reqwest::Error),
    /// A line is not a `WatchEvent`.
    #[error("decoding a watch event: {0}")]
    Decode(#[from] serde_json::Error),
}

/// The `WatchEvent`s of a watch response (`watch_mxjobs`), one per line of
/// the stream. The stream ends when the server ends the watch.
pub fn watch_events(
    body: ByteStream,
) -> impl futures::Stream<Item = Result<types::WatchEvent, WatchError>> + Send {
    use futures::StreamExt;
    let state = (body.into_inner(), Vec::<u8>::new(), false);
    futures::stream::unfold(state, |(mut inner, mut buffer, mut ended)| async move {
        loop {
            if let Some(end) = buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buffer.drain(..=end).collect();
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                let event = serde_json::from_slice(&line).map_err(WatchError::from);
                return Some((event, (inner, buffer, ended)));
            }
            if ended {
                return None;
            }
            match inner.next().await {
                Some(Ok(chunk)) => buffer.extend_from_slice(&chunk),
                Some(Err(error)) => {
                    ended = true;
                    buffer.clear();
                    return Some((Err(WatchError::from(error)), (inner, buffer, ended)));
                }
                None => {
                    ended = true;
                    buffer.push(b'\n');
                }
            }
        }
    })
}

/// Why a client for a token could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TokenClientError {
    #[error("the token cannot be sent in a header: {0}")]
    Header(#[from] reqwest::header::InvalidHeaderValue),
    #[error("building the HTTP client: {0}")]
    Build(#[from] reqwest::Error),
}

/// A `reqwest::Client` that sends `token` as `Authorization: Bearer` on
/// every request, for [`Client::new_with_client`].
pub fn http_client_with_bearer_token(token: &str) -> Result<reqwest::Client, TokenClientError> {
    let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))?;
    value.set_sensitive(true);
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(reqwest::header::AUTHORIZATION, value);
    Ok(reqwest::Client::builder()
        .default_headers(headers)
        .build()?)
}

//! The Rust client of the MXJob API, generated at build time from
//! `openapi/mxjob.json` by progenitor (see `build.rs`).
//!
//! Everything in [`Client`] and [`types`] is generated. The few helpers
//! below add what generation cannot: the patch media types and
//! authentication headers.

include!(concat!(env!("OUT_DIR"), "/mxjob_client.rs"));

/// Media type of an RFC 7386 merge patch.
pub const MERGE_PATCH: &str = "application/merge-patch+json";
/// Media type of an RFC 6902 JSON patch.
pub const JSON_PATCH: &str = "application/json-patch+json";

/// A `reqwest::Client` that sends `token` as `Authorization: Bearer`, for
/// [`Client::new_with_client`].
pub fn http_client_with_bearer_token(token: &str) -> reqwest::Result<reqwest::Client> {
    let mut headers = reqwest::header::HeaderMap::new();
    let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|_| ())
        .unwrap_or_else(|()| reqwest::header::HeaderValue::from_static(""));
    value.set_sensitive(true);
    headers.insert(reqwest::header::AUTHORIZATION, value);
    reqwest::Client::builder().default_headers(headers).build()
}

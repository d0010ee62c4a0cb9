//! Continue tokens for paged lists.
//!
//! A token names the store revision the first page was read at and the
//! last object the previous page examined, so every later page is read at
//! that same revision: the pages together are exactly one list at that
//! revision, whatever was written in between. When the revision has been
//! compacted away the list cannot be continued consistently and the client
//! gets `410 Expired`, as from the Kubernetes API server.
//!
//! Tokens are opaque to clients (base64url of a small JSON document) but
//! not trusted: a token that does not decode, names another format version
//! or carries a name that could not be an object's is `400`, never `500`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::names;
use crate::store::Revision;

/// A `continue` token that was not written by this server (400).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("continue key is not valid: {0}")]
pub struct InvalidToken(&'static str);

/// The format version inside tokens.
const TOKEN_VERSION: &str = "mxjob.continue/v1";
/// Longer tokens are refused before decoding.
const MAX_TOKEN_LEN: usize = 1024;

/// Where a paged list continues.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContinueToken {
    /// The revision every page is read at.
    pub revision: Revision,
    /// The name of the last object already examined.
    pub start_after: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    v: String,
    rv: Revision,
    start: String,
}

impl ContinueToken {
    /// The token text.
    pub fn encode(&self) -> String {
        let wire = Wire {
            v: TOKEN_VERSION.to_string(),
            rv: self.revision,
            start: self.start_after.clone(),
        };
        // Serializing two strings and a number cannot fail.
        let json = serde_json::to_vec(&wire).unwrap_or_default();
        URL_SAFE_NO_PAD.encode(json)
    }

    /// Parses and checks a token a client sent back.
    pub fn decode(text: &str) -> Result<Self, InvalidToken> {
        let invalid = InvalidToken;
        if text.len() > MAX_TOKEN_LEN {
            return Err(invalid("too long"));
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(text.trim_end_matches('='))
            .map_err(|_| invalid("not base64url"))?;
        let wire: Wire = serde_json::from_slice(&bytes).map_err(|_| invalid("malformed"))?;
        if wire.v != TOKEN_VERSION {
            return Err(invalid("unknown version"));
        }
        if wire.rv == 0 {
            return Err(invalid("no resourceVersion"));
        }
        // A name, or for a list of every namespace `namespace/name`.
        let labels_ok = match wire.start.split_once('/') {
            Some((namespace, name)) => {
                names::is_dns1123_label(namespace) && names::is_dns1123_label(name)
            }
            None => names::is_dns1123_label(&wire.start),
        };
        if !labels_ok {
            return Err(invalid("bad start position"));
        }
        Ok(ContinueToken {
            revision: wire.rv,
            start_after: wire.start,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_round_trips() {
        let token = ContinueToken {
            revision: 42,
            start_after: "job-7".to_string(),
        };
        assert_eq!(ContinueToken::decode(&token.encode()), Ok(token));
    }

    #[test]
    fn forged_or_corrupt_tokens_are_bad_requests() {
        let forged = |json: &str| URL_SAFE_NO_PAD.encode(json);
        let cases = [
            String::new(),
            "!!!".to_string(),
            "x".repeat(2000),
            forged("not json"),
            forged(r#"{"v":"other/v9","rv":3,"start":"a"}"#),
            forged(r#"{"v":"mxjob.continue/v1","rv":0,"start":"a"}"#),
            forged(r#"{"v":"mxjob.continue/v1","rv":-1,"start":"a"}"#),
            forged(r#"{"v":"mxjob.continue/v1","rv":3,"start":"../../etc"}"#),
            forged(r#"{"v":"mxjob.continue/v1","rv":3,"start":"a/b/c"}"#),
            forged(r#"{"v":"mxjob.continue/v1","rv":3,"start":"A/b"}"#),
            forged(r#"{"v":"mxjob.continue/v1","rv":3,"start":""}"#),
            forged(r#"{"v":"mxjob.continue/v1","rv":3,"start":"a","x":1}"#),
            forged(r#"{"v":"mxjob.continue/v1","rv":"3","start":"a"}"#),
        ];
        for case in cases {
            let error = ContinueToken::decode(&case).expect_err(&case);
            assert!(
                error.to_string().starts_with("continue key is not valid"),
                "{case}"
            );
        }
    }
}

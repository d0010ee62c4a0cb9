//! The API reference page, `openapi/mxjob.html`: Redoc's rendering of
//! `openapi/mxjob.json` with Redoc's scripts inlined, committed beside
//! the document and compiled into the server, which serves it at `/docs`
//! with no flag, no Node.js and no network.
//!
//! `cargo xtask docs` builds the page (Redocly CLI, which needs Node.js)
//! and writes into its `<head>` the SHA-256 of the document it was built
//! from, as `<meta name="mxjob-openapi-sha256" content="…">`. Whether the
//! committed page is fresh is then a comparison of two hashes, which needs
//! nothing but this crate: `cargo xtask openapi check` makes it, and so
//! does this crate's test under plain `cargo test`. Regenerating the page
//! is the only step that needs Node.js.

use sha2::{Digest, Sha256};

/// `openapi/mxjob.html` as committed.
pub const PAGE: &[u8] = include_bytes!("../mxjob.html");

/// The name of the `<meta>` element that carries the document's hash.
pub const SOURCE_META: &str = "mxjob-openapi-sha256";

/// The SHA-256 of a document's text, in lowercase hex.
pub fn document_sha256(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// The `<meta>` element [`stamp`] writes.
fn meta_element(hash: &str) -> String {
    format!("<meta name=\"{SOURCE_META}\" content=\"{hash}\">")
}

/// The hash of the document `page` was built from, if it carries one.
pub fn source_hash(page: &[u8]) -> Option<&str> {
    let marker = format!("<meta name=\"{SOURCE_META}\" content=\"");
    let start = page
        .windows(marker.len())
        .position(|window| window == marker.as_bytes())?
        + marker.len();
    let length = page[start..].iter().position(|&b| b == b'"')?;
    std::str::from_utf8(&page[start..start + length]).ok()
}

/// Why a page does not fit the document.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Stale {
    #[error(
        "openapi/mxjob.html carries no {SOURCE_META} (it was not built by `cargo xtask docs`)"
    )]
    Unstamped,
    #[error(
        "openapi/mxjob.html was built from another openapi/mxjob.json (sha256 {built}, the \
         document's is {current}): run `cargo xtask docs` (it needs Node.js 20.19+) and commit \
         openapi/mxjob.html"
    )]
    Outdated { built: String, current: String },
    #[error("the page has no <head> to stamp")]
    NoHead,
}

/// `page` with the hash of `document` in its `<head>` (replacing any
/// earlier stamp).
pub fn stamp(page: &str, document: &str) -> Result<String, Stale> {
    let element = meta_element(&document_sha256(document));
    if let Some(old) = source_hash(page.as_bytes()) {
        return Ok(page.replacen(&meta_element(old), &element, 1));
    }
    let head = page.find("<head>").ok_or(Stale::NoHead)? + "<head>".len();
    Ok(format!("{}{element}{}", &page[..head], &page[head..]))
}

/// Whether `page` was built from `document`.
pub fn check(page: &[u8], document: &str) -> Result<(), Stale> {
    let built = source_hash(page).ok_or(Stale::Unstamped)?;
    let current = document_sha256(document);
    if built != current {
        return Err(Stale::Outdated {
            built: built.to_string(),
            current,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed page was built from the committed document, so
    /// plain `cargo test` catches a page left behind a changed API.
    #[test]
    fn the_committed_page_was_built_from_the_committed_document() {
        if let Err(stale) = check(PAGE, crate::openapi::COMMITTED_DOCUMENT) {
            panic!("{stale}");
        }
    }

    #[test]
    fn a_stamp_is_found_and_replaced() {
        let page = "<html><head><title>x</title></head></html>";
        let once = stamp(page, "{}").expect("stamped");
        assert_eq!(source_hash(once.as_bytes()), Some(&*document_sha256("{}")));
        assert_eq!(check(once.as_bytes(), "{}"), Ok(()));
        assert!(matches!(
            check(once.as_bytes(), "{ }"),
            Err(Stale::Outdated { .. })
        ));
        let twice = stamp(&once, "{ }").expect("restamped");
        assert_eq!(twice.matches(SOURCE_META).count(), 1);
        assert_eq!(check(twice.as_bytes(), "{ }"), Ok(()));
        assert_eq!(check(page.as_bytes(), "{}"), Err(Stale::Unstamped));
    }
}

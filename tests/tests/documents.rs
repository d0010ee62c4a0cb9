//! The documents the server serves about itself.

use std::sync::Arc;

use mxjob_server::registry::Registry;
use mxjob_server::server::{start_with, Settings};
use mxjob_server::store::memory::MemoryStore;
use mxjob_tests::TestServer;

#[tokio::test]
async fn openapi_json_is_the_committed_document_byte_for_byte() {
    let server = TestServer::start().await;
    let response = server
        .http
        .get(format!("{}/openapi.json", server.url))
        .send()
        .await
        .expect("get");
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let served = response.bytes().await.expect("body");
    let committed = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../openapi/mxjob.json"
    ))
    .expect("openapi/mxjob.json");
    assert!(
        served == committed,
        "/openapi.json differs from openapi/mxjob.json"
    );
    server.stop().await;
}

/// Without `--docs-file`, `/docs` serves the page compiled into the
/// binary: the committed `openapi/mxjob.html`, built from the document.
#[tokio::test]
async fn docs_without_a_docs_file_serves_the_compiled_page() {
    let server = TestServer::start().await;
    let response = server
        .http
        .get(format!("{}/docs", server.url))
        .send()
        .await
        .expect("get");
    assert_eq!(response.status().as_u16(), 200);
    let page = response.bytes().await.expect("body");
    assert_eq!(&page[..], mxjob_api::docs::PAGE);
    server.stop().await;
}

#[tokio::test]
async fn docs_serves_the_built_page() {
    let page = std::env::temp_dir().join(format!("mxjob-docs-{}.html", std::process::id()));
    std::fs::write(&page, "<html><body>MXJob API</body></html>").expect("write page");
    let log = slog::Logger::root(slog::Discard, slog::o!());
    let mut settings = Settings::new("127.0.0.1:0".parse().expect("address"));
    settings.docs_file = Some(page.clone());
    let server =
        start_with(Registry::new(Arc::new(MemoryStore::new())), settings, &log).expect("starts");
    let response = reqwest::get(format!("http://{}/docs", server.local_addr()))
        .await
        .expect("get");
    assert_eq!(response.status().as_u16(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap_or_default()
        .starts_with("text/html"));
    assert!(response.text().await.expect("body").contains("MXJob API"));
    server.close().await.expect("stops");
    let _ = std::fs::remove_file(page);
}

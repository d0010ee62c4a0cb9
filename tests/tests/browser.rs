//! A web page cannot use a server that serves anonymous callers: real
//! headless Chromium (Debian's, installed by `cargo xtask tools`) loads an
//! attacker's page from another origin that tries to create a job with a
//! cross-site request, and with a host name re-pointed at 127.0.0.1 (DNS
//! rebinding, simulated with Chromium's host resolver rules). Neither
//! stores anything; the page reports back that it did run.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use mxjob_tests::{new_job_value, TestServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::process::Command;

const CHROMIUM: &str = "/usr/bin/chromium";
const NS: &str = "web";

/// A tiny web server for the attacker's page: `/` is `page`; any other
/// path is recorded (the page reports there) and answered empty.
async fn attacker_site(page: String) -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("address").port();
    let reports = Arc::new(Mutex::new(Vec::new()));
    let seen = reports.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let page = page.clone();
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buffer = vec![0u8; 16 * 1024];
                let Ok(read) = stream.read(&mut buffer).await else {
                    return;
                };
                let head = String::from_utf8_lossy(&buffer[..read]).into_owned();
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
                let body = if path == "/" {
                    page
                } else {
                    if let Ok(mut seen) = seen.lock() {
                        seen.push(path);
                    }
                    String::new()
                };
                let answer = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\
                     Connection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(answer.as_bytes()).await;
            });
        }
    });
    (port, reports)
}

/// Loads `url` in headless Chromium, where `*.test` names resolve to
/// 127.0.0.1, and returns the DOM once the page's scripts are done.
async fn chromium_dom(url: &str) -> String {
    assert!(
        std::path::Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: run `cargo xtask tools`"
    );
    let profile = tempfile::tempdir().expect("profile dir");
    let output = tokio::time::timeout(
        Duration::from_secs(90),
        Command::new(CHROMIUM)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--host-resolver-rules=MAP *.test 127.0.0.1",
                "--virtual-time-budget=10000",
                "--dump-dom",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(url)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("chromium finishes")
    .expect("chromium runs");
    assert!(
        output.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

async fn stored_names(server: &TestServer) -> Vec<String> {
    let list: serde_json::Value = server
        .http
        .get(server.collection_url(NS))
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|job| job["metadata"]["name"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_web_page_cannot_create_jobs_on_an_anonymous_server() {
    let server = TestServer::start().await;
    let port = server.url.rsplit(':').next().expect("port").to_string();
    let job = |name: &str| new_job_value(NS, name).to_string();
    let page = format!(
        r#"<!doctype html><html><body><p id="out">running</p><script>
const attempts = [
  // Cross-site: a "simple" request, no Content-Type, no preflight.
  ["cross-site", "http://127.0.0.1:{port}/apis/kubeflow.org/v1/namespaces/{NS}/mxjobs", {job_a}],
  // DNS rebinding: a host name of the attacker's that resolves to 127.0.0.1.
  ["rebinding", "http://rebound.test:{port}/apis/kubeflow.org/v1/namespaces/{NS}/mxjobs", {job_b}],
];
(async () => {{
  for (const [what, url, body] of attempts) {{
    try {{
      await fetch(url, {{method: "POST", mode: "no-cors", body: new Blob([JSON.stringify(body)])}});
    }} catch (e) {{}}
    await fetch("/report/" + what);
  }}
  document.getElementById("out").textContent = "finished";
}})();
</script></body></html>"#,
        job_a = job("from-cross-site"),
        job_b = job("from-rebinding"),
    );
    let (site, reports) = attacker_site(page).await;

    let dom = chromium_dom(&format!("http://attacker.test:{site}/")).await;
    assert!(dom.contains("finished"), "the page did not run: {dom}");
    let reported: Vec<String> = reports
        .lock()
        .expect("reports")
        .iter()
        .filter(|path| path.starts_with("/report/"))
        .cloned()
        .collect();
    assert_eq!(reported, ["/report/cross-site", "/report/rebinding"]);
    assert!(
        stored_names(&server).await.is_empty(),
        "a page created a job"
    );

    // A rebound name does not even get the server's own pages.
    let dom = chromium_dom(&format!("http://rebound.test:{port}/version")).await;
    assert!(dom.contains("Forbidden"), "{dom}");

    // The server itself is still served, by address and by localhost.
    let dom = chromium_dom(&format!("http://localhost:{port}/version")).await;
    assert!(dom.contains("gitVersion"), "{dom}");
    server.stop().await;
}

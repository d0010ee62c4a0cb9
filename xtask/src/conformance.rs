//! `cargo xtask conformance`: the contract tests. Does the server do what
//! `openapi/mxjob.json` says, for requests nobody wrote by hand?
//!
//! It builds `mxjob-server`, starts it on a free loopback port over the
//! memory store with a token file holding one fresh token, and runs
//! schemathesis against it with the committed document:
//!
//! * every operation, with every check schemathesis has (`--checks all`):
//!   no 5xx; status codes, content types, headers and bodies as documented;
//!   schema-valid requests accepted and schema-invalid ones rejected;
//!   undocumented methods refused (authentication is optional in the
//!   document: no token is an alternative, as for a server without a
//!   token file);
//! * every phase: the document's examples, the coverage phase's boundary
//!   values, random fuzzing, and the stateful phase, which follows the
//!   document's links from a created job to read, replace, patch and
//!   delete it (see `add_links` in `openapi/src/openapi.rs`).
//!
//! Everything that bounds or narrows the run — seed, examples per
//! operation, the statuses some checks accept and why — is in one file,
//! `tests/conformance/schemathesis.toml`; `tests/conformance/hooks.py` gives
//! the stateful phase valid creates, and counts the schema-valid requests
//! that passed only through the file's allowances, which the command prints
//! per operation and status. Any failure makes the command exit non-zero;
//! the JUnit report, those counts and the server's log are kept under
//! `target/conformance/`.
//!
//! Requests outside the API's routes never reach the server's handlers:
//! dropshot answers an unknown path with 404 and a known path with an
//! undeclared method with 405 and an `Allow` header, both with its own
//! `{"request_id", "message"}` JSON body rather than a Kubernetes Status.
//! Schemathesis's `unsupported_method` check asks only for the 405 (and the
//! `Allow` header), which dropshot gives.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::local_server::{self, LocalServer};
use crate::{spec_path, toolchain, workspace};

/// The schemathesis configuration: bounds, seed, and every narrowing.
const CONFIG: &str = "tests/conformance/schemathesis.toml";

/// The phases run, all of them.
const PHASES: &str = "examples,coverage,fuzzing,stateful";

fn output_dir() -> PathBuf {
    workspace().join("target/conformance")
}

/// A token nobody can guess, for this run only.
fn fresh_token() -> Result<String> {
    let mut bytes = [0u8; 16];
    let mut random = std::fs::File::open("/dev/urandom").context("opening /dev/urandom")?;
    std::io::Read::read_exact(&mut random, &mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

pub fn conformance() -> Result<()> {
    let started = Instant::now();
    let bin = toolchain::python_tools()?;
    let server_binary = local_server::build()?;
    let dir = output_dir();
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("clearing {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir)?;

    let token = fresh_token()?;
    let tokens = dir.join("tokens.csv");
    std::fs::write(
        &tokens,
        format!("{token},conformance,conformance,\"system:masters\"\n"),
    )?;
    let server = LocalServer::start(
        &server_binary,
        &[
            "--store".as_ref(),
            "memory".as_ref(),
            "--token-auth-file".as_ref(),
            tokens.as_os_str(),
        ],
        &dir.join("server.log"),
    )?;

    let suppressed = dir.join("suppressed.json");
    let status = Command::new(bin.join("schemathesis"))
        .arg("--config-file")
        .arg(CONFIG)
        .arg("run")
        .arg(spec_path())
        .args(["--url", &server.url])
        .args(["--checks", "all", "--phases", PHASES, "--no-color"])
        .args(["--report", "junit", "--report-dir"])
        .arg(dir.join("report"))
        .env("MXJOB_CONFORMANCE_TOKEN", &token)
        .env("MXJOB_CONFORMANCE_SUPPRESSED", &suppressed)
        .current_dir(workspace())
        .status()
        .context("running schemathesis")?;
    drop(server);
    let printed = print_suppressed(&suppressed);
    if !status.success() {
        bail!(
            "schemathesis found failures ({status}); the server's log is {}",
            dir.join("server.log").display()
        );
    }
    printed?;
    println!(
        "conformance: mxjob-server matches openapi/mxjob.json ({:.0?})",
        started.elapsed()
    );
    Ok(())
}

/// Prints what the allowances of the configuration let pass, as
/// `tests/conformance/hooks.py` classified it: the schema-valid requests the
/// server refused with a status only an allowance admits, per rule of the
/// API no schema can state, and each refusal no rule explains (the
/// document then admits what the server refuses, or a rule is missing from
/// the list). Those are reported, not failed: the fuzzing and stateful
/// phases vary from run to run, and a refusal is no wrong answer.
fn print_suppressed(path: &std::path::Path) -> Result<()> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading {} (written by hooks.py)", path.display()))?;
    let report: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let rules = report["rules"].as_array().cloned().unwrap_or_default();
    let requests = |rule: &serde_json::Value| rule["requests"].as_u64().unwrap_or_default();
    let total: u64 = rules.iter().map(requests).sum();
    println!(
        "conformance: the allowances in {CONFIG} let {total} schema-valid requests pass that the \
         server refused, each by a rule no schema can state (tests/conformance/hooks.py):"
    );
    for rule in &rules {
        let text = |key: &str| rule[key].as_str().unwrap_or_default().to_string();
        println!(
            "  {:>7}  {}: {}",
            requests(rule),
            text("name"),
            text("reason")
        );
    }
    let unexplained = report["unexplained"].as_u64().unwrap_or_default();
    if unexplained > 0 {
        println!(
            "conformance: {unexplained} schema-valid requests were refused by no listed rule \
             (the document admits what the server refuses, or a rule is missing); the first:"
        );
        for example in report["examples"].as_array().into_iter().flatten() {
            println!("  unexplained: {example}");
        }
    }
    Ok(())
}

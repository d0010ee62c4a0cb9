//! `cargo xtask lint`: is `openapi/mxjob.json` a document the tools that
//! read it can trust?
//!
//! * openapi-spec-validator checks it against the OpenAPI 3.0 specification
//!   (structure, references, parameter and schema shapes);
//! * Redocly CLI's `lint` applies the rules of `openapi/redocly.yaml`:
//!   Redocly's recommended set, plus what this project asks of every
//!   operation (a summary, a description, a snake_case operationId that
//!   starts with a verb, a tag, examples for every request body and success
//!   response, and examples that match their schemas).
//!
//! A warning fails the lint as much as an error does: the JSON report is
//! counted, and on any problem the readable report is printed before the
//! command exits non-zero. A rule that is turned off is turned off in
//! `openapi/redocly.yaml`, with the reason beside it.

use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::{run, spec_path, toolchain};

/// The Redocly configuration (rules, and the reference page's options).
pub const REDOCLY_CONFIG: &str = "openapi/redocly.yaml";

pub fn lint() -> Result<()> {
    let spec = spec_path();
    let bin = toolchain::python_tools()?;
    run(Command::new(bin.join("openapi-spec-validator")).arg(&spec))?;

    let redocly = toolchain::redocly()?;
    let output = toolchain::redocly_command(&redocly)
        .arg("lint")
        .arg(&spec)
        .args(["--config", REDOCLY_CONFIG, "--format", "json"])
        .output()
        .context("running redocly lint")?;
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).with_context(|| {
        format!(
            "redocly lint ({}) printed no JSON report:\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )
    })?;
    let count = |kind: &str| report["totals"][kind].as_u64().unwrap_or(0);
    let (errors, warnings) = (count("errors"), count("warnings"));
    if !output.status.success() || errors + warnings > 0 {
        // The same lint again, for people.
        let _ = toolchain::redocly_command(&redocly)
            .arg("lint")
            .arg(&spec)
            .args(["--config", REDOCLY_CONFIG, "--format", "stylish"])
            .status();
        bail!(
            "redocly lint: {errors} errors and {warnings} warnings in openapi/mxjob.json \
             ({}); fix the document (server/src/openapi.rs) or, with a reason, the rules in \
             {REDOCLY_CONFIG}",
            output.status
        );
    }
    println!("lint: openapi/mxjob.json passes openapi-spec-validator and redocly lint");
    Ok(())
}

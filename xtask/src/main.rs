//! Project tasks: `cargo xtask openapi generate | check`.
//!
//! `openapi/mxjob.json` is the contract every client is generated from, and
//! it is generated itself, from the dropshot API trait. `generate` rewrites
//! the file; `check` fails with a diff when the file and the code disagree,
//! so a change to the API always shows up as a diff of the file.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};

const USAGE: &str = "usage: cargo xtask openapi <generate|check>";

fn spec_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../openapi/mxjob.json")
}

fn generated() -> Result<String> {
    mxjob_server::openapi::document_text().map_err(anyhow::Error::msg)
}

fn generate() -> Result<()> {
    let path = spec_path();
    let text = generated()?;
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    println!("wrote {}", path.display());
    Ok(())
}

fn check() -> Result<bool> {
    let path = spec_path();
    let expected = generated()?;
    let actual = std::fs::read_to_string(&path).unwrap_or_default();
    if actual == expected {
        println!("openapi/mxjob.json matches the API the code describes");
        return Ok(true);
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

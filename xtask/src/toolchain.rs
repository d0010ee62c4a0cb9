//! The outside tools behind `cargo xtask conformance`, `lint` and `docs`,
//! each at a pinned version and installed where nothing else can see it.
//!
//! * schemathesis and openapi-spec-validator from PyPI, together in one
//!   virtualenv, `target/acceptance/openapi-venv` (one `pip install` of both
//!   pins, so pip checks that their dependencies agree);
//! * Redocly CLI from npm, in `target/acceptance/node` (`npm install
//!   --prefix`, never global). Its 2.x releases ship as one bundled package,
//!   so the version pin fixes everything it runs. It needs Node.js 20.19 or
//!   newer, which the machine image has; a missing or older node is an
//!   error that says so, since Debian's own nodejs is too old;
//! * Debian's `chromium`, installed when missing (see [`crate::system`]),
//!   for the page test of `docs --check`.
//!
//! Each function installs only when the pinned version is not there yet,
//! so a second run starts at once. Nothing is downloaded but packages from
//! PyPI, npm and Debian, by name.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use crate::{run, system, workspace};

/// The Python packages, as `(name, version)`.
pub const PYTHON_PACKAGES: [(&str, &str); 2] = [
    ("schemathesis", "4.32.5"),
    ("openapi-spec-validator", "0.9.0"),
];

/// The npm package of Redocly CLI and its version.
pub const REDOCLY_CLI: (&str, &str) = ("@redocly/cli", "2.77.0");

/// The oldest Node.js that Redocly CLI 2.x runs on.
const NODE_MINIMUM: (u32, u32) = (20, 19);

/// Where the tools live.
fn acceptance_dir() -> PathBuf {
    workspace().join("target/acceptance")
}

/// The virtualenv with [`PYTHON_PACKAGES`] installed; returns its `bin`
/// directory.
pub fn python_tools() -> Result<PathBuf> {
    let venv = acceptance_dir().join("openapi-venv");
    let python = venv.join("bin/python");
    if !python.exists() {
        run(Command::new("python3").arg("-m").arg("venv").arg(&venv))?;
    }
    pip_install_pinned(&python, &PYTHON_PACKAGES)?;
    for (name, version) in PYTHON_PACKAGES {
        println!("{name} {version}: {}", venv.join("bin").display());
    }
    Ok(venv.join("bin"))
}

/// Installs the pinned `(name, version)` packages with `python`'s pip
/// unless exactly those versions are there already (one `pip install` of
/// all, so that pip checks that their dependencies agree).
pub fn pip_install_pinned(python: &Path, pins: &[(&str, &str)]) -> Result<()> {
    let mut check = Command::new(python);
    check.args([
        "-c",
        "import importlib.metadata as m, sys\n\
         pins = dict(zip(sys.argv[1::2], sys.argv[2::2]))\n\
         def version(name):\n\
         \x20   try:\n\
         \x20       return m.version(name)\n\
         \x20   except m.PackageNotFoundError:\n\
         \x20       return None\n\
         sys.exit(any(version(n) != v for n, v in pins.items()))",
    ]);
    for (name, version) in pins {
        check.arg(name).arg(version);
    }
    let installed = check
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !installed {
        let pins: Vec<String> = pins
            .iter()
            .map(|(name, version)| format!("{name}=={version}"))
            .collect();
        run(Command::new(python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .args(&pins))?;
    }
    Ok(())
}

/// Redocly CLI, installed under `target/acceptance/node`; returns the path
/// of its `redocly` program. Run it through [`redocly_command`].
pub fn redocly() -> Result<PathBuf> {
    let prefix = acceptance_dir().join("node");
    let (package, version) = REDOCLY_CLI;
    let manifest = prefix
        .join("node_modules")
        .join(package)
        .join("package.json");
    let installed = std::fs::read_to_string(&manifest)
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .is_some_and(|m| m["version"] == version);
    if !installed {
        require_node()?;
        std::fs::create_dir_all(&prefix)?;
        run(Command::new("npm")
            .arg("install")
            .arg("--prefix")
            .arg(&prefix)
            .args(["--no-fund", "--no-audit", "--save-exact"])
            .arg(format!("{package}@{version}")))?;
    }
    let program = prefix.join("node_modules/.bin/redocly");
    if !program.exists() {
        bail!(
            "npm installed {package} but {} is missing",
            program.display()
        );
    }
    println!("{package} {version}: {}", program.display());
    Ok(program)
}

/// A command running Redocly CLI with its usage reports and update notices
/// off: no run sends anything anywhere.
pub fn redocly_command(program: &Path) -> Command {
    let mut command = Command::new(program);
    command
        .env("REDOCLY_TELEMETRY", "off")
        .env("REDOCLY_SUPPRESS_UPDATE_NOTICE", "true")
        .current_dir(workspace());
    command
}

/// Fails unless `node` is at least [`NODE_MINIMUM`].
fn require_node() -> Result<()> {
    let output = Command::new("node")
        .arg("--version")
        .output()
        .context("Redocly CLI needs Node.js (`node` is not on PATH)")?;
    let text = String::from_utf8_lossy(&output.stdout);
    let mut parts = text.trim().trim_start_matches('v').split('.');
    let mut number = || {
        parts
            .next()
            .and_then(|p| p.parse::<u32>().ok())
            .unwrap_or(0)
    };
    let found = (number(), number());
    if found < NODE_MINIMUM {
        bail!(
            "Redocly CLI {} needs Node.js {}.{} or newer; found {}",
            REDOCLY_CLI.1,
            NODE_MINIMUM.0,
            NODE_MINIMUM.1,
            text.trim()
        );
    }
    Ok(())
}

/// Debian's chromium, installed when missing; returns its path.
pub fn chromium() -> Result<PathBuf> {
    system::ensure(&["chromium"])?;
    Ok(PathBuf::from("/usr/bin/chromium"))
}

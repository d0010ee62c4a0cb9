//! The outside tools behind `cargo xtask conformance`, `lint` and `docs`,
//! each at a pinned version and installed where nothing else can see it.
//!
//! * schemathesis and openapi-spec-validator from PyPI, together in one
//!   virtualenv, `target/acceptance/openapi-venv` (one `pip install` of both
//!   pins, so pip checks that their dependencies agree), made with Python
//!   3.13 or newer ([`modern_python`]): on 3.11 and 3.12, CPython's
//!   `ast.parse` can raise `SystemError: AST constructor recursion depth
//!   mismatch` when called at a deep stack, which Hypothesis does when it
//!   describes a strategy's lambdas while generating a case — a spurious
//!   error that Hypothesis then reports as a flaky test ("Inconsistent
//!   results: A test case failed on the first run but now succeeds") when
//!   the replay, at another depth, passes. 3.13 reworked how the compiler
//!   counts its recursion and does not raise it;
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

/// The oldest Python the contract tools' virtualenv is made with (see the
/// module documentation).
const PYTHON_MINIMUM: (u32, u32) = (3, 13);

/// The `(major, minor)` version of the Python `program`, if it runs.
fn python_version(program: &Path) -> Option<(u32, u32)> {
    let output = Command::new(program)
        .args([
            "-c",
            "import sys; print(sys.version_info[0], sys.version_info[1])",
        ])
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    let text = String::from_utf8_lossy(&output.stdout);
    let mut parts = text.split_whitespace().map(|p| p.parse::<u32>().ok());
    Some((parts.next()??, parts.next()??))
}

/// A Python of at least [`PYTHON_MINIMUM`]: `$MXJOB_PYTHON` if set, else
/// the first that runs of `python3.14`, `python3.13` and `python3` on the
/// PATH, then of pyenv's installed versions, newest first (a pyenv shim on
/// the PATH fails for a version that is installed but not selected, so the
/// interpreters themselves are looked at too).
pub fn modern_python() -> Result<PathBuf> {
    if let Some(chosen) = std::env::var_os("MXJOB_PYTHON") {
        let chosen = PathBuf::from(chosen);
        return match python_version(&chosen) {
            Some(version) if version >= PYTHON_MINIMUM => Ok(chosen),
            found => bail!(
                "MXJOB_PYTHON={} is Python {found:?}; the contract tools need {}.{} or newer",
                chosen.display(),
                PYTHON_MINIMUM.0,
                PYTHON_MINIMUM.1
            ),
        };
    }
    let mut candidates: Vec<PathBuf> = ["python3.14", "python3.13", "python3"]
        .iter()
        .map(PathBuf::from)
        .collect();
    let pyenv_root = Command::new("pyenv")
        .arg("root")
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    if let Some(root) = pyenv_root {
        let mut versions: Vec<PathBuf> = std::fs::read_dir(root.join("versions"))
            .into_iter()
            .flatten()
            .filter_map(|entry| entry.ok().map(|e| e.path().join("bin/python3")))
            .filter(|path| path.exists())
            .collect();
        versions.sort_by_key(|path| std::cmp::Reverse(python_version(path)));
        candidates.extend(versions);
    }
    candidates
        .into_iter()
        .find(|candidate| python_version(candidate).is_some_and(|v| v >= PYTHON_MINIMUM))
        .with_context(|| {
            format!(
                "schemathesis needs Python {}.{} or newer (on 3.11 and 3.12 Hypothesis hits \
                 CPython's \"AST constructor recursion depth mismatch\" bug); none was found on \
                 the PATH or in pyenv: install one (`pyenv install 3.13`, or Debian's \
                 python3.13 where it has one) or point MXJOB_PYTHON at it",
                PYTHON_MINIMUM.0, PYTHON_MINIMUM.1
            )
        })
}

/// The virtualenv with [`PYTHON_PACKAGES`] installed; returns its `bin`
/// directory. A virtualenv made with an older Python is made again.
pub fn python_tools() -> Result<PathBuf> {
    let venv = acceptance_dir().join("openapi-venv");
    let python = venv.join("bin/python");
    let current = python_version(&python);
    if current.is_some_and(|v| v < PYTHON_MINIMUM) || (current.is_none() && venv.exists()) {
        std::fs::remove_dir_all(&venv)
            .with_context(|| format!("removing {} to make it again", venv.display()))?;
    }
    if !python.exists() {
        let interpreter = modern_python()?;
        run(Command::new(&interpreter).arg("-m").arg("venv").arg(&venv))?;
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

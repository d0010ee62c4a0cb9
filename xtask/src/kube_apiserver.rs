//! Upstream `kube-apiserver`, built from source out of the Go module proxy,
//! for the tests that need a real Kubernetes API (see
//! `tests/src/cluster.rs`).
//!
//! No release binary can be downloaded here, but `k8s.io/kubernetes` is a
//! Go module like any other, so a scratch module that requires it can build
//! `k8s.io/kubernetes/cmd/kube-apiserver` with the `go` on the `PATH`. One
//! wrinkle: `k8s.io/kubernetes`'s own `go.mod` points every `k8s.io/*`
//! library it develops in the same repository (api, apimachinery,
//! client-go, …) at `./staging/src/...`, a directory its module zip does not
//! contain. Replace directives only count in the main module, so the
//! scratch module's `go.mod` replaces each of them with the published
//! `v0.Y.Z` of the same release. The list is read from `k8s.io/kubernetes`'s
//! `go.mod` at the pinned version, never written out by hand, so a new
//! release with a new staging library needs no change here.
//!
//! Where it goes: `$XDG_CACHE_HOME/mxjob/kube-apiserver/<version>/` (or
//! `~/.cache/...`), outside the repository. A cold build took 4½ minutes
//! on two idle cores, 16 to 18½ on two busy ones; a cache outside `target/` survives `cargo clean`
//! and is shared by every clone and worktree on the machine (CI runs in a
//! fresh clone). The binary is then linked as
//! `target/acceptance/bin/kube-apiserver`, where the tests look for it like
//! for the other acceptance tools. A second run finds the binary, checks
//! that it reports the pinned version, and is done at once.
//!
//! The build uses the machine's Go settings for the proxy and the checksum
//! database (both reached through the proxy), `GOFLAGS=-mod=mod` so that
//! `go build` resolves and records the dependencies itself, and
//! `GOTOOLCHAIN=local` unless the caller set `GOTOOLCHAIN`: the pinned
//! release asks for Go 1.26, which the machine has.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::{run, workspace};

/// The pinned Kubernetes release: the newest that the Go module proxy
/// serves and that builds with the machine's Go 1.26. All `k8s.io/*`
/// modules are taken at this one release.
pub const KUBERNETES: &str = "v1.37.2";

/// The module the scratch build is named as; it is never published.
const SCRATCH_MODULE: &str = "mxjob.test/kube-apiserver-build";

/// Libraries that every release lists among its staging modules: a
/// `go.mod` that lists none of them was not read right.
const EXPECTED_STAGING: [&str; 4] = [
    "k8s.io/api",
    "k8s.io/apimachinery",
    "k8s.io/apiserver",
    "k8s.io/client-go",
];

/// `$XDG_CACHE_HOME/mxjob`, or `~/.cache/mxjob`.
fn cache_root() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir).join("mxjob"));
    }
    let home = std::env::var_os("HOME").context("neither XDG_CACHE_HOME nor HOME is set")?;
    Ok(PathBuf::from(home).join(".cache/mxjob"))
}

/// Makes sure the pinned `kube-apiserver` is built and linked as
/// `target/acceptance/bin/kube-apiserver`; returns the cached binary.
pub fn kube_apiserver() -> Result<PathBuf> {
    let dir = cache_root()?.join("kube-apiserver").join(KUBERNETES);
    let binary = dir.join("kube-apiserver");
    if !reports_pinned_version(&binary) {
        build(&dir, &binary)?;
        if !reports_pinned_version(&binary) {
            bail!(
                "{} was built but does not report Kubernetes {KUBERNETES}",
                binary.display()
            );
        }
    }
    link(&binary)?;
    println!("kube-apiserver {KUBERNETES}: {}", binary.display());
    Ok(binary)
}

/// Whether `binary` runs and prints `Kubernetes <KUBERNETES>`.
fn reports_pinned_version(binary: &Path) -> bool {
    Command::new(binary)
        .arg("--version")
        .output()
        .is_ok_and(|o| {
            o.status.success()
                && String::from_utf8_lossy(&o.stdout).trim() == format!("Kubernetes {KUBERNETES}")
        })
}

/// `go` with the settings every step of the build shares.
fn go(dir: &Path) -> Command {
    let mut command = Command::new("go");
    command
        .current_dir(dir)
        // -buildvcs=false: the scratch module is no repository's, even
        // when the cache directory lies inside one.
        .env("GOFLAGS", "-mod=mod -buildvcs=false")
        .env("GOWORK", "off")
        .env("GO111MODULE", "on");
    if std::env::var_os("GOTOOLCHAIN").is_none() {
        command.env("GOTOOLCHAIN", "local");
    }
    command
}

fn build(dir: &Path, binary: &Path) -> Result<()> {
    println!(
        "building kube-apiserver {KUBERNETES} from the Go module proxy into {} \
         (5 minutes on two idle cores when Go's caches are cold, up to 20 on busy ones; later runs reuse it)",
        dir.display()
    );
    let started = Instant::now();
    // A build directory of this process's own, so that two builds at once
    // (two worktrees, say) cannot write into each other's files; the
    // binary is moved into place whole.
    let scratch = dir.join(format!("build-{}", std::process::id()));
    if scratch.exists() {
        std::fs::remove_dir_all(&scratch)?;
    }
    std::fs::create_dir_all(&scratch).with_context(|| format!("creating {}", scratch.display()))?;

    let upstream = upstream_go_mod(&scratch)?;
    let go_mod = scratch_go_mod(&upstream)?;
    std::fs::write(scratch.join("go.mod"), &go_mod)?;

    let staged = scratch.join("kube-apiserver.new");
    let minor = KUBERNETES
        .trim_start_matches('v')
        .split('.')
        .nth(1)
        .context("the pinned version has no minor number")?;
    // The version the binary reports (and serves at /version), as a
    // release build sets it; without it, it reports v0.0.0-master.
    let ldflags = [
        "-s".to_string(),
        "-w".to_string(),
        format!("-X k8s.io/component-base/version.gitVersion={KUBERNETES}"),
        "-X k8s.io/component-base/version.gitMajor=1".to_string(),
        format!("-X k8s.io/component-base/version.gitMinor={minor}"),
        "-X k8s.io/component-base/version.gitTreeState=clean".to_string(),
    ]
    .join(" ");
    run(go(&scratch)
        .args(["build", "-trimpath", "-ldflags", &ldflags, "-o"])
        .arg(&staged)
        .arg("k8s.io/kubernetes/cmd/kube-apiserver"))?;

    // The module files that made it, kept beside the binary as its record.
    std::fs::copy(scratch.join("go.mod"), dir.join("go.mod"))?;
    if scratch.join("go.sum").exists() {
        std::fs::copy(scratch.join("go.sum"), dir.join("go.sum"))?;
    }
    std::fs::rename(&staged, binary)
        .with_context(|| format!("moving the binary to {}", binary.display()))?;
    std::fs::remove_dir_all(&scratch)?;
    let elapsed = started.elapsed().as_secs();
    println!(
        "built kube-apiserver {KUBERNETES} in {}m{:02}s",
        elapsed / 60,
        elapsed % 60
    );
    Ok(())
}

/// The text of `k8s.io/kubernetes`'s `go.mod` at [`KUBERNETES`], as the
/// module proxy serves it.
fn upstream_go_mod(scratch: &Path) -> Result<String> {
    let output = go(scratch)
        .args(["mod", "download", "-json"])
        .arg(format!("k8s.io/kubernetes@{KUBERNETES}"))
        .output()
        .context(
            "running `go mod download` (is Go on the PATH? `cargo xtask tools` installs it)",
        )?;
    let info: serde_json::Value = serde_json::from_slice(&output.stdout).with_context(|| {
        format!(
            "`go mod download k8s.io/kubernetes@{KUBERNETES}` printed no JSON: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    })?;
    if let Some(error) = info["Error"].as_str() {
        bail!("downloading k8s.io/kubernetes@{KUBERNETES}: {error}");
    }
    let path = info["GoMod"]
        .as_str()
        .context("`go mod download -json` named no go.mod")?;
    std::fs::read_to_string(path).with_context(|| format!("reading {path}"))
}

/// The scratch module's `go.mod`: the same Go version as upstream, a
/// requirement of `k8s.io/kubernetes` at the pinned release, and each of
/// its staging modules replaced with the published release of the same
/// minor version.
fn scratch_go_mod(upstream: &str) -> Result<String> {
    let go_version = upstream
        .lines()
        .find_map(|line| line.trim().strip_prefix("go "))
        .context("k8s.io/kubernetes's go.mod has no go line")?
        .trim();
    let staging = staging_modules(upstream);
    for expected in EXPECTED_STAGING {
        if !staging.iter().any(|m| m == expected) {
            bail!(
                "k8s.io/kubernetes's go.mod at {KUBERNETES} lists no staging module {expected}; \
                 found {staging:?}"
            );
        }
    }
    let library_version = format!("v0.{}", KUBERNETES.trim_start_matches("v1."));
    let mut text = format!(
        "// Generated by `cargo xtask tools`: builds kube-apiserver {KUBERNETES}.\n\
         module {SCRATCH_MODULE}\n\n\
         go {go_version}\n\n\
         require k8s.io/kubernetes {KUBERNETES}\n\n\
         replace (\n"
    );
    for module in &staging {
        text.push_str(&format!("\t{module} => {module} {library_version}\n"));
    }
    text.push_str(")\n");
    Ok(text)
}

/// The modules that a `go.mod` replaces with a `./staging/` directory,
/// whether in a `replace ( … )` block or on `replace` lines of their own.
fn staging_modules(go_mod: &str) -> Vec<String> {
    let mut modules = Vec::new();
    let mut in_block = false;
    for line in go_mod.lines() {
        let line = line.split("//").next().unwrap_or("").trim();
        let directive = if in_block {
            if line == ")" {
                in_block = false;
                continue;
            }
            line
        } else if line == "replace (" {
            in_block = true;
            continue;
        } else if let Some(rest) = line.strip_prefix("replace ") {
            rest.trim()
        } else {
            continue;
        };
        if let Some((from, to)) = directive.split_once("=>") {
            if to.trim().starts_with("./staging/") {
                // `from` may carry a version: `module v1.2.3 => ...`.
                if let Some(module) = from.split_whitespace().next() {
                    modules.push(module.to_string());
                }
            }
        }
    }
    modules
}

/// Links `target/acceptance/bin/kube-apiserver` to the cached binary.
fn link(binary: &Path) -> Result<()> {
    let bin = workspace().join("target/acceptance/bin");
    std::fs::create_dir_all(&bin)?;
    let link = bin.join("kube-apiserver");
    if std::fs::read_link(&link).is_ok_and(|target| target == binary) {
        return Ok(());
    }
    if link.symlink_metadata().is_ok() {
        std::fs::remove_file(&link)?;
    }
    std::os::unix::fs::symlink(binary, &link).with_context(|| format!("linking {}", link.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staging_modules_are_read_from_blocks_and_single_lines() {
        let go_mod = "module k8s.io/kubernetes\n\ngo 1.26.0\n\n\
                      require (\n\tk8s.io/api v0.0.0\n)\n\n\
                      replace (\n\
                      \tk8s.io/api => ./staging/src/k8s.io/api\n\
                      \tk8s.io/apimachinery => ./staging/src/k8s.io/apimachinery // comment\n\
                      \tgithub.com/x/y => github.com/x/y v1.0.0\n\
                      )\n\
                      replace k8s.io/client-go v0.0.0 => ./staging/src/k8s.io/client-go\n";
        assert_eq!(
            staging_modules(go_mod),
            ["k8s.io/api", "k8s.io/apimachinery", "k8s.io/client-go"]
        );
    }

    #[test]
    fn the_scratch_module_replaces_every_staging_module_with_the_release() {
        let go_mod = "module k8s.io/kubernetes\n\ngo 1.26.0\n\nreplace (\n\
                      \tk8s.io/api => ./staging/src/k8s.io/api\n\
                      \tk8s.io/apimachinery => ./staging/src/k8s.io/apimachinery\n\
                      \tk8s.io/apiserver => ./staging/src/k8s.io/apiserver\n\
                      \tk8s.io/client-go => ./staging/src/k8s.io/client-go\n)\n";
        let text = scratch_go_mod(go_mod).expect("a go.mod");
        let minor = KUBERNETES.trim_start_matches("v1.");
        assert!(text.contains("\ngo 1.26.0\n"), "{text}");
        assert!(
            text.contains(&format!("require k8s.io/kubernetes {KUBERNETES}\n")),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "\tk8s.io/client-go => k8s.io/client-go v0.{minor}\n"
            )),
            "{text}"
        );
        assert_eq!(text.matches(" => ").count(), 4, "{text}");
        assert!(scratch_go_mod("module m\n\ngo 1.26.0\n").is_err());
    }
}

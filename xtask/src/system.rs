//! The Debian packages that building and testing mxjob need, and the one
//! place that installs them.
//!
//! Each package is known by a file it must leave behind, not only by a
//! program on the `PATH`: `protoc` alone compiles nothing of etcd's
//! protocol, which imports `google/protobuf/descriptor.proto` from the
//! include directory of `libprotobuf-dev` — a package that
//! `--no-install-recommends` leaves out, so it is named here itself. A
//! package whose file is missing is installed with `apt-get` (as root, with
//! its recommended packages: Chromium renders text with the fonts it
//! recommends; the package lists are refreshed once when the first try
//! fails), and the file is checked again afterwards.
//!
//! Go and Java are wanted as programs: any `go` or `java` on the `PATH` will
//! do (the machine image brings its own Go), and Debian's package is the
//! fallback.

use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{bail, Result};

use crate::run;

/// How to tell that a package is there.
#[derive(Clone, Copy)]
enum Probe {
    /// This file exists.
    File(&'static str),
    /// This program, run with this argument, succeeds.
    Program(&'static str, &'static str),
}

/// A Debian package and its probe.
pub struct Package {
    pub name: &'static str,
    probe: Probe,
    /// What needs it, for the log and the README.
    pub for_what: &'static str,
}

/// Everything `cargo xtask tools` makes sure of.
pub const PACKAGES: [Package; 8] = [
    Package {
        name: "protobuf-compiler",
        probe: Probe::File("/usr/bin/protoc"),
        for_what: "protoc, which builds the etcd client of the test crate",
    },
    Package {
        name: "libprotobuf-dev",
        probe: Probe::File("/usr/include/google/protobuf/descriptor.proto"),
        for_what: "the well-known .proto files that etcd's protocol imports",
    },
    Package {
        name: "etcd-server",
        probe: Probe::File("/usr/bin/etcd"),
        for_what: "the etcd the etcd tests start",
    },
    Package {
        name: "wrk",
        probe: Probe::File("/usr/bin/wrk"),
        for_what: "the HTTP load generator of `cargo xtask bench`",
    },
    Package {
        name: "valgrind",
        probe: Probe::File("/usr/bin/valgrind"),
        for_what: "callgrind, which `cargo xtask bench --profile` counts instructions with",
    },
    Package {
        name: "chromium",
        probe: Probe::File("/usr/bin/chromium"),
        for_what: "the browser that `docs --check` opens the API page in",
    },
    Package {
        name: "golang-go",
        probe: Probe::Program("go", "version"),
        for_what: "Go, which builds the generated Go client",
    },
    Package {
        name: "openjdk-17-jre-headless",
        probe: Probe::Program("java", "-version"),
        for_what: "Java, which runs openapi-generator",
    },
];

impl Probe {
    fn present(self) -> bool {
        match self {
            Probe::File(path) => Path::new(path).exists(),
            Probe::Program(program, arg) => Command::new(program)
                .arg(arg)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success()),
        }
    }

    fn describe(self) -> String {
        match self {
            Probe::File(path) => path.to_string(),
            Probe::Program(program, _) => format!("`{program}` on the PATH"),
        }
    }
}

/// Installs every package of [`PACKAGES`] whose probe fails.
pub fn packages() -> Result<()> {
    let all: Vec<&str> = PACKAGES.iter().map(|p| p.name).collect();
    ensure(&all)?;
    for package in &PACKAGES {
        println!(
            "{}: {} ({})",
            package.name,
            package.probe.describe(),
            package.for_what
        );
    }
    Ok(())
}

/// Installs those of the named packages whose probe fails, in one
/// `apt-get install`, then checks their probes again.
pub fn ensure(names: &[&str]) -> Result<()> {
    let wanted: Vec<&Package> = PACKAGES
        .iter()
        .filter(|p| names.contains(&p.name))
        .collect();
    if wanted.len() != names.len() {
        bail!("xtask knows no package among {names:?}");
    }
    let missing: Vec<&str> = wanted
        .iter()
        .filter(|p| !p.probe.present())
        .map(|p| p.name)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    println!("installing Debian packages: {}", missing.join(" "));
    let install = || {
        run(Command::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["install", "-y", "-qq"])
            .args(&missing))
    };
    if install().is_err() {
        run(Command::new("apt-get").args(["update", "-qq"]))?;
        install()?;
    }
    let still: Vec<String> = wanted
        .iter()
        .filter(|p| !p.probe.present())
        .map(|p| format!("{} ({} is missing)", p.name, p.probe.describe()))
        .collect();
    if !still.is_empty() {
        bail!(
            "after apt-get, still missing: {}; install them by hand",
            still.join(", ")
        );
    }
    Ok(())
}

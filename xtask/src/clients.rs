//! `cargo xtask clients` — clients of the API in Python, TypeScript and Go,
//! generated from `openapi/mxjob.json` into `target/clients/` (never
//! committed), each compiled or type-checked, and the small programs in
//! `tests/clients/` built against them for `tests/tests/clients.rs`.
//!
//! The generators, all pinned and installed under `target/acceptance/`:
//!
//! * openapi-generator, from the PyPI package `openapi-generator-cli` (it
//!   bundles the jar and runs on the machine's Java 17), in the virtualenv
//!   `clients-venv` together with the generated Python client's runtime
//!   dependencies. It writes the Python client (`python` generator) and the
//!   Go client (`go` generator).
//! * openapi-typescript, which turns the document into TypeScript types
//!   that the openapi-fetch client is parameterised with (openapi-generator's
//!   `typescript-fetch` writes the patch body, an object or an array, as code
//!   that does not parse), with `typescript` and `@types/node`: `npm ci` in
//!   `clients-node` from the manifest and lockfile in
//!   `tests/clients/typescript/tools/`.
//! * Go (the machine's, or Debian's `golang-go` when there is none) compiles
//!   the Go client offline: the generated code uses only the standard
//!   library.
//! * The same Go builds the client-go informer program
//!   (`tests/clients/informer`), a module of its own whose dependencies
//!   (`k8s.io/client-go` and `k8s.io/apimachinery` at kubectl 1.37's
//!   release) come from the Go module proxy into the machine's module cache,
//!   checked against the committed `go.sum`, and compiled with the
//!   machine's build cache. It needs Go 1.26, as the kube-apiserver build
//!   does. With an empty build cache (the modules already downloaded) the
//!   build took 5½ minutes on two cores shared with other builds (under 3
//!   minutes of CPU); the machine's caches, unlike `target/`, outlive a
//!   fresh clone, so later runs take seconds.
//!
//! What lands in `target/clients/`:
//!
//! | path | what |
//! |---|---|
//! | `source.json` | the committed document as it was when generated (the tests compare) |
//! | `mxjob.json` | the document the generators read (see [`adjust`]) |
//! | `python/mxjob_client/` | the Python package |
//! | `typescript/mxjob.d.ts`, `typescript/dist/main.js` | the types; the compiled test program |
//! | `go/` | the Go module `mxjob.test/client` |
//! | `bin/mxjob-go-client` | the Go test program |
//! | `bin/mxjob-informer` | the client-go informer program |
//! | `warnings.txt` | what the generators and compilers said about the document |
//!
//! Every generated client is checked the way its users would build it:
//! Python byte-compiled and every module imported with warnings as errors,
//! TypeScript through `tsc` with `strict`, Go through `go vet` and `go
//! build`. The generators' validation of the document stays on.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::{run, spec_path, system, workspace};

/// The workspace, without the `xtask/..` that [`workspace`] has.
fn root() -> PathBuf {
    workspace().canonicalize().unwrap_or_else(|_| workspace())
}

/// The openapi-generator release (PyPI `openapi-generator-cli`).
const OPENAPI_GENERATOR: &str = "openapi-generator-cli==7.26.0";

/// What the generated Python client imports, with what they import, pinned.
const PYTHON_CLIENT_DEPENDENCIES: [&str; 8] = [
    "annotated-types==0.8.0",
    "pydantic==2.14.3",
    "pydantic-core==2.50.4",
    "python-dateutil==4.0.0",
    "typing-extensions==4.16.0",
    "typing-inspection==0.4.5",
    "tzdata==2026.6",
    "urllib3==2.8.0",
];

/// The npm manifest and lockfile of the TypeScript tools (exact versions,
/// every transitive package pinned by its integrity hash).
const NPM_TOOLS: &str = "tests/clients/typescript/tools";

/// The Go package and module the Go client is generated as.
const GO_PACKAGE: &str = "mxjob";
const GO_MODULE: &str = "mxjob.test/client";
/// The `go` line of the generated module: Debian bookworm's Go.
const GO_VERSION: &str = "1.19";

/// The client-go informer program's module, relative to the workspace.
const INFORMER: &str = "tests/clients/informer";

/// Options every openapi-generator run shares: no tests, no docs, no
/// timestamps that would make two runs differ.
const GENERATOR_GLOBALS: &str = "apiTests=false,modelTests=false,apiDocs=false,modelDocs=false";

/// Where the generated clients go.
fn clients_dir() -> PathBuf {
    root().join("target/clients")
}

fn tools_dir() -> PathBuf {
    root().join("target/acceptance")
}

/// Installs the generators, generates the three clients, checks them and
/// builds the test programs.
pub fn clients() -> Result<()> {
    let started = std::time::Instant::now();
    let tools = Tools::install()?;
    let out = clients_dir();
    std::fs::create_dir_all(&out)?;
    // Removed first, written last: its presence says the clients are whole
    // and which document they came from.
    let source = out.join("source.json");
    if source.exists() {
        std::fs::remove_file(&source)?;
    }

    let original = std::fs::read_to_string(spec_path()).context("reading openapi/mxjob.json")?;
    let mut document: Value = serde_json::from_str(&original)?;
    let adjustments = adjust(&mut document);
    let input = out.join("mxjob.json");
    std::fs::write(&input, serde_json::to_string_pretty(&document)?)?;

    let mut warnings = Warnings::default();
    for adjustment in &adjustments {
        warnings.add("xtask", adjustment);
    }
    let validation = tools.capture(
        "openapi-generator validate",
        tools
            .generator()
            .args(["validate", "--recommend", "-i"])
            .arg(spec_path()),
    )?;
    warnings.add_lines("openapi-generator validate", &validation, |line| {
        !line.starts_with("Validating spec") && line != "No validation issues detected."
    });

    let languages: [(&str, Generate); 3] = [
        ("python", generate_python),
        ("go", generate_go),
        ("typescript", generate_typescript),
    ];
    for (language, generate) in languages {
        let phase = std::time::Instant::now();
        generate(&tools, &input, &out, &mut warnings)
            .with_context(|| format!("the {language} client"))?;
        println!(
            "{language}: generated, checked and built in {:.1?}",
            phase.elapsed()
        );
    }

    let phase = std::time::Instant::now();
    build_informer(&tools, &out).context("the client-go informer")?;
    println!("informer: vetted and built in {:.1?}", phase.elapsed());

    std::fs::write(&source, &original)?;
    std::fs::write(out.join("warnings.txt"), warnings.text())?;
    if warnings.lines.is_empty() {
        println!("no warnings about openapi/mxjob.json");
    } else {
        println!("warnings about openapi/mxjob.json (also in target/clients/warnings.txt):");
        print!("{}", warnings.text());
    }
    println!("clients: {} ({:.0?})", out.display(), started.elapsed());
    Ok(())
}

/// Generates one language's client from the document, checks it, and
/// builds its test program.
type Generate = fn(&Tools, &Path, &Path, &mut Warnings) -> Result<()>;

/// Adjusts the document where a generator would otherwise produce code
/// that does not compile or types that reject valid bodies, and says what
/// it changed; a document that needs none comes through unchanged.
///
/// A request body declared with several media types keeps only
/// `application/json`: openapi-generator takes the schema of the first
/// media type (alphabetically `application/apply-patch+yaml`, the
/// server-side apply of the patch operations) and sends it as the
/// `Content-Type`, so every patch of its clients would become an apply.
/// Applies are for clients that choose the media type themselves.
///
/// And `default: {}` on a property that refers to an object
/// schema (`MXJob.status`, `Status.metadata`). It tells a client nothing
/// (an absent object is empty), but openapi-generator's Go output turns it
/// into `var status JobStatus = {}`, which is not Go, and openapi-typescript
/// makes every property with a default required, so a create body would
/// need a `status`. The default is dropped.
fn adjust(document: &mut Value) -> Vec<String> {
    let mut changes = only_json_bodies(document);
    let Some(schemas) = document
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    else {
        return changes;
    };
    for (schema_name, schema) in schemas.iter_mut() {
        let Some(properties) = schema.get_mut("properties").and_then(Value::as_object_mut) else {
            continue;
        };
        for (property_name, property) in properties.iter_mut() {
            let Some(property) = property.as_object_mut() else {
                continue;
            };
            let refers = property.contains_key("$ref") || property.contains_key("allOf");
            let empty_default = property
                .get("default")
                .is_some_and(|d| d.as_object().is_some_and(|o| o.is_empty()));
            if refers && empty_default {
                property.remove("default");
                changes.push(format!(
                    "dropped `default: {{}}` from {schema_name}.properties.{property_name} \
                     (the Go client would not compile; TypeScript would require the field)"
                ));
            }
        }
    }
    changes
}

/// See [`adjust`]: request bodies keep `application/json` alone.
fn only_json_bodies(document: &mut Value) -> Vec<String> {
    let mut changes = Vec::new();
    let Some(paths) = document.get_mut("paths").and_then(Value::as_object_mut) else {
        return changes;
    };
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for (method, operation) in item.iter_mut() {
            let Some(content) = operation
                .pointer_mut("/requestBody/content")
                .and_then(Value::as_object_mut)
            else {
                continue;
            };
            if content.len() > 1 && content.contains_key("application/json") {
                let dropped: Vec<String> = content
                    .keys()
                    .filter(|m| *m != "application/json")
                    .cloned()
                    .collect();
                content.retain(|media_type, _| media_type == "application/json");
                changes.push(format!(
                    "dropped {} from the request body of {} {path} (generated clients \
                     would send it for every call)",
                    dropped.join(", "),
                    method.to_uppercase()
                ));
            }
        }
    }
    changes
}

/// openapi-generator remarks that have been looked into: (text, finding).
const KNOWN_GENERATOR_REMARKS: [(&str, &str); 3] = [
    (
        "Failed to get the schema name: null",
        "printed for any document, even one with a single schema: not about ours",
    ),
    (
        "(reserved word) cannot be used as",
        "the list parameter `continue`, as Kubernetes names it; only the identifier changes",
    ),
    (
        "Codegen property is null",
        "io.k8s.apimachinery.pkg.apis.meta.v1.FieldsV1, an object without declared \
         properties as in Kubernetes' own document",
    ),
];

/// Lines the generators and compilers printed about the document.
#[derive(Default)]
struct Warnings {
    lines: Vec<String>,
}

impl Warnings {
    fn add(&mut self, source: &str, line: &str) {
        let line = format!("{source}: {}", line.trim());
        if !self.lines.contains(&line) {
            self.lines.push(line);
        }
    }

    fn add_lines(&mut self, source: &str, output: &str, keep: impl Fn(&str) -> bool) {
        for line in output.lines().map(str::trim) {
            if !line.is_empty() && keep(line) {
                self.add(source, line);
            }
        }
    }

    /// openapi-generator's `WARN` lines, without the logger's prefix, with
    /// what is known about each.
    fn add_generator_log(&mut self, source: &str, output: &str) {
        for line in output.lines() {
            if let Some(at) = line.find("WARN ") {
                let line = &line[at..];
                match KNOWN_GENERATOR_REMARKS
                    .iter()
                    .find(|(text, _)| line.contains(text))
                {
                    Some((_, note)) => self.add(source, &format!("{line} [{note}]")),
                    None => self.add(source, line),
                }
            }
        }
    }

    fn text(&self) -> String {
        self.lines.iter().map(|l| format!("{l}\n")).collect()
    }
}

/// The installed generators and toolchains.
struct Tools {
    python: PathBuf,
    generator: PathBuf,
    node_bin: PathBuf,
    go: GoEnv,
}

/// How Go is run: offline, with its caches under `target/acceptance/go`.
struct GoEnv {
    cache: PathBuf,
    path: PathBuf,
}

impl GoEnv {
    /// `go` offline, for modules that need nothing but the standard library.
    fn command(&self, dir: &Path) -> Command {
        let mut command = Command::new("go");
        command
            .current_dir(dir)
            .env("GOFLAGS", "-mod=mod")
            .env("GOPROXY", "off")
            .env("GOSUMDB", "off")
            .env("GOTOOLCHAIN", "local")
            .env("GOWORK", "off")
            .env("GO111MODULE", "on")
            .env("GOCACHE", &self.cache)
            .env("GOPATH", &self.path);
        command
    }

    /// `go` for a module with dependencies from the Go module proxy. It
    /// runs with the machine's Go settings (the proxy, the checksum
    /// database, and the module and build caches that the kube-apiserver
    /// build uses too): compiling client-go takes minutes, and caches
    /// outside `target/` make that a one-time cost per machine rather than
    /// per clone. `-mod=readonly` takes exactly what the committed `go.mod`
    /// and `go.sum` say, failing rather than changing them;
    /// `GOTOOLCHAIN=local` unless the caller set it, so that no other Go is
    /// fetched behind the caller's back.
    fn with_modules(dir: &Path) -> Command {
        let mut command = Command::new("go");
        command
            .current_dir(dir)
            // -buildvcs=false: the program is built from a worktree, whose
            // state is no part of it.
            .env("GOFLAGS", "-mod=readonly -buildvcs=false")
            .env("GOWORK", "off")
            .env("GO111MODULE", "on");
        if std::env::var_os("GOTOOLCHAIN").is_none() {
            command.env("GOTOOLCHAIN", "local");
        }
        command
    }
}

impl Tools {
    fn install() -> Result<Tools> {
        let dir = tools_dir();
        std::fs::create_dir_all(&dir)?;
        system::ensure(&["openjdk-17-jre-headless", "golang-go"])?;

        let venv = dir.join("clients-venv");
        let python = venv.join("bin/python");
        if !python.exists() {
            run(Command::new("python3").arg("-m").arg("venv").arg(&venv))?;
        }
        let mut pins = vec![OPENAPI_GENERATOR];
        pins.extend(PYTHON_CLIENT_DEPENDENCIES);
        let stamp = venv.join("mxjob-pins.txt");
        let wanted = pins.join("\n");
        if std::fs::read_to_string(&stamp).ok().as_deref() != Some(wanted.as_str()) {
            run(Command::new(&python)
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                ])
                .args(&pins))?;
            std::fs::write(&stamp, &wanted)?;
        }

        let node = dir.join("clients-node");
        std::fs::create_dir_all(&node)?;
        let mut changed = !node.join("node_modules/.bin/tsc").exists();
        for file in ["package.json", "package-lock.json"] {
            let wanted = std::fs::read(root().join(NPM_TOOLS).join(file))
                .with_context(|| format!("reading {NPM_TOOLS}/{file}"))?;
            if std::fs::read(node.join(file)).ok().as_ref() != Some(&wanted) {
                std::fs::write(node.join(file), wanted)?;
                changed = true;
            }
        }
        if changed {
            run(Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
                .current_dir(&node))?;
        }

        let go = GoEnv {
            cache: dir.join("go/cache"),
            path: dir.join("go/path"),
        };
        let version = capture_plain(Command::new("go").arg("version"))?;
        println!("go: {}", version.trim());
        Ok(Tools {
            generator: venv.join("bin/openapi-generator-cli"),
            python,
            node_bin: node.join("node_modules/.bin"),
            go,
        })
    }

    fn generator(&self) -> Command {
        Command::new(&self.generator)
    }

    fn node_tool(&self, name: &str) -> Command {
        Command::new(self.node_bin.join(name))
    }

    /// Runs a command and returns what it printed (both streams); fails
    /// with that output when the command fails.
    fn capture(&self, what: &str, command: &mut Command) -> Result<String> {
        let output = command
            .output()
            .with_context(|| format!("running {what}"))?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        if !output.status.success() {
            bail!("{what} failed with {}:\n{text}", output.status);
        }
        Ok(text)
    }
}

fn capture_plain(command: &mut Command) -> Result<String> {
    let output = command
        .output()
        .with_context(|| format!("running {command:?}"))?;
    if !output.status.success() {
        bail!("{command:?} failed with {}", output.status);
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Empties (or makes) a directory the generator writes into.
fn fresh_dir(dir: &Path) -> Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir)?;
    Ok(())
}

fn generate_python(tools: &Tools, input: &Path, out: &Path, warnings: &mut Warnings) -> Result<()> {
    let dir = out.join("python");
    fresh_dir(&dir)?;
    let log = tools.capture(
        "openapi-generator (python)",
        tools
            .generator()
            .args(["generate", "-g", "python", "-i"])
            .arg(input)
            .arg("-o")
            .arg(&dir)
            .args(["--global-property", GENERATOR_GLOBALS])
            .args([
                "--additional-properties",
                "packageName=mxjob_client,projectName=mxjob-client,packageVersion=0.1.0,\
                 hideGenerationTimestamp=true",
            ]),
    )?;
    warnings.add_generator_log("openapi-generator python", &log);

    // Byte-compile the package and the program, then import every module,
    // with Python's warnings as errors.
    let pycache = out.join("pycache");
    let compiled = tools.capture(
        "python -m compileall",
        Command::new(&tools.python)
            .args(["-W", "error", "-m", "compileall", "-q"])
            .arg(dir.join("mxjob_client"))
            .arg(root().join("tests/clients/python"))
            .env("PYTHONPYCACHEPREFIX", &pycache),
    )?;
    warnings.add_lines("python compileall", &compiled, |_| true);
    let imported = tools.capture(
        "importing mxjob_client",
        Command::new(&tools.python)
            .args(["-W", "error", "-c", IMPORT_EVERY_MODULE])
            .env("PYTHONPATH", &dir)
            .env("PYTHONPYCACHEPREFIX", &pycache),
    )?;
    warnings.add_lines("python import", &imported, |l| !l.starts_with("imported "));
    println!("python: {}", imported.trim());
    Ok(())
}

/// Imports every module of the generated Python package.
const IMPORT_EVERY_MODULE: &str = "
import importlib, pkgutil, mxjob_client
names = [m.name for m in pkgutil.walk_packages(mxjob_client.__path__, 'mxjob_client.')]
for name in names:
    importlib.import_module(name)
print(f'imported {len(names)} modules of mxjob_client')
";

fn generate_go(tools: &Tools, input: &Path, out: &Path, warnings: &mut Warnings) -> Result<()> {
    let dir = out.join("go");
    fresh_dir(&dir)?;
    let log = tools.capture(
        "openapi-generator (go)",
        tools
            .generator()
            .args(["generate", "-g", "go", "-i"])
            .arg(input)
            .arg("-o")
            .arg(&dir)
            .args(["--global-property", GENERATOR_GLOBALS])
            .arg("--additional-properties")
            // enumClassPrefix: CleanPodPolicy and DryRun both have `All`.
            // withGoMod=false: the module file is written below, naming the
            // Go it is built with and no test-only dependencies.
            .arg(format!(
                "packageName={GO_PACKAGE},enumClassPrefix=true,withGoMod=false,\
                 hideGenerationTimestamp=true"
            )),
    )?;
    warnings.add_generator_log("openapi-generator go", &log);
    std::fs::write(
        dir.join("go.mod"),
        format!("module {GO_MODULE}\n\ngo {GO_VERSION}\n"),
    )?;

    let vet = tools.capture(
        "go vet (client)",
        tools.go.command(&dir).args(["vet", "./..."]),
    )?;
    warnings.add_lines("go vet (client)", &vet, |_| true);
    let build = tools.capture(
        "go build (client)",
        tools.go.command(&dir).args(["build", "./..."]),
    )?;
    warnings.add_lines("go build (client)", &build, |_| true);

    let program = root().join("tests/clients/go");
    let vet = tools.capture(
        "go vet (program)",
        tools.go.command(&program).args(["vet", "."]),
    )?;
    warnings.add_lines("go vet (program)", &vet, |_| true);
    let binary = out.join("bin/mxjob-go-client");
    // Built anew every time, so that its age tells the tests it is current.
    if binary.exists() {
        std::fs::remove_file(&binary)?;
    }
    tools.capture(
        "go build (program)",
        tools
            .go
            .command(&program)
            .args(["build", "-o"])
            .arg(&binary)
            .arg("."),
    )?;
    println!("go: {}", binary.display());
    Ok(())
}

/// Vets and builds the client-go informer program that
/// `tests/tests/clients.rs` runs against the server (see its `main.go`).
/// It does not read the document, so what Go prints (the modules it
/// downloads) is no warning about it; a finding of `go vet` fails the step.
fn build_informer(tools: &Tools, out: &Path) -> Result<()> {
    let program = root().join(INFORMER);
    tools.capture(
        "go vet (informer)",
        GoEnv::with_modules(&program).args(["vet", "."]),
    )?;
    let binary = out.join("bin/mxjob-informer");
    // Built anew every time, so that its age tells the tests it is current.
    if binary.exists() {
        std::fs::remove_file(&binary)?;
    }
    tools.capture(
        "go build (informer)",
        GoEnv::with_modules(&program)
            .args(["build", "-o"])
            .arg(&binary)
            .arg("."),
    )?;
    println!("informer: {}", binary.display());
    Ok(())
}

fn generate_typescript(
    tools: &Tools,
    input: &Path,
    out: &Path,
    warnings: &mut Warnings,
) -> Result<()> {
    let dir = out.join("typescript");
    fresh_dir(&dir)?;
    let log = tools.capture(
        "openapi-typescript",
        tools
            .node_tool("openapi-typescript")
            .arg(input)
            .arg("-o")
            .arg(dir.join("mxjob.d.ts")),
    )?;
    // It prints a banner and the file it wrote; anything else is a remark.
    warnings.add_lines("openapi-typescript", &log, |l| {
        !l.starts_with('✨') && !l.starts_with('🚀')
    });

    // The compiled program is an ES module that imports openapi-fetch.
    std::fs::write(dir.join("package.json"), "{ \"type\": \"module\" }\n")?;
    let modules = tools_dir().join("clients-node/node_modules");
    let link = dir.join("node_modules");
    #[cfg(unix)]
    std::os::unix::fs::symlink(&modules, &link)
        .with_context(|| format!("linking {}", link.display()))?;

    // tsconfig.json beside the program: strict, the generated types as
    // `mxjob-client`, output into target/clients/typescript/dist.
    let tsc = tools.capture(
        "tsc (strict)",
        tools
            .node_tool("tsc")
            .arg("-p")
            .arg(root().join("tests/clients/typescript")),
    )?;
    warnings.add_lines("tsc", &tsc, |_| true);
    println!("typescript: {}", dir.join("dist/main.js").display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::adjust;
    use serde_json::json;

    #[test]
    fn adjust_drops_empty_defaults_of_object_references_and_nothing_else() {
        let mut document = json!({"components": {"schemas": {
            "Job": {"properties": {
                "status": {"allOf": [{"$ref": "#/components/schemas/S"}], "default": {}},
                "meta": {"$ref": "#/components/schemas/M", "default": {}},
                "labels": {"type": "object", "default": {}},
                "replicas": {"type": "integer", "default": 1},
                "spec": {"allOf": [{"$ref": "#/components/schemas/Spec"}], "default": {"a": 1}}
            }}
        }}});
        let changes = adjust(&mut document);
        assert_eq!(changes.len(), 2, "{changes:?}");
        for property in ["Job.properties.meta", "Job.properties.status"] {
            assert!(changes.iter().any(|c| c.contains(property)), "{changes:?}");
        }
        let properties = &document["components"]["schemas"]["Job"]["properties"];
        assert!(properties["status"].get("default").is_none());
        assert!(properties["meta"].get("default").is_none());
        assert_eq!(properties["labels"]["default"], json!({}));
        assert_eq!(properties["replicas"]["default"], 1);
        assert_eq!(properties["spec"]["default"], json!({"a": 1}));
    }

    #[test]
    fn adjust_keeps_only_json_request_bodies_where_there_are_several() {
        let mut document = json!({"paths": {
            "/jobs/{name}": {
                "patch": {"requestBody": {"content": {
                    "application/apply-patch+yaml": {"schema": {"$ref": "#/components/schemas/Job"}},
                    "application/json": {"schema": {"$ref": "#/components/schemas/Patch"}}
                }}},
                "put": {"requestBody": {"content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/Job"}}
                }}}
            }
        }});
        let before_put = document["paths"]["/jobs/{name}"]["put"].clone();
        let changes = adjust(&mut document);
        assert_eq!(changes.len(), 1, "{changes:?}");
        assert!(
            changes[0].contains("application/apply-patch+yaml"),
            "{changes:?}"
        );
        let content = &document["paths"]["/jobs/{name}"]["patch"]["requestBody"]["content"];
        assert_eq!(
            content
                .as_object()
                .map(|c| c.keys().cloned().collect::<Vec<_>>()),
            Some(vec!["application/json".to_string()])
        );
        assert_eq!(document["paths"]["/jobs/{name}"]["put"], before_put);
    }

    #[test]
    fn adjust_leaves_a_document_without_such_defaults_unchanged() {
        let mut document = json!({"openapi": "3.0.3", "components": {"schemas": {
            "Job": {"properties": {"name": {"type": "string"}}}
        }}});
        let before = document.clone();
        assert!(adjust(&mut document).is_empty());
        assert_eq!(document, before);
    }
}

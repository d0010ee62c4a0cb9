//! `cargo xtask bench --profile`: where the instructions of a replace go,
//! counted by callgrind (instruction counts do not depend on what else the
//! machine is doing).
//!
//! mxjob-server is built with the `profiling` profile (release with debug
//! symbols, in `target/profiling/`, so the release build is left alone),
//! started under `valgrind --tool=callgrind` with `--store memory
//! --executor none`, once with the job controller and once with
//! `--controller=false`. One job is created (and admitted), a few replaces
//! warm the server up, the counters are zeroed (`callgrind_control
//! --zero`), then `--replaces N` replaces run one after another over one
//! connection, each the object as the warm-up left it with the previous
//! answer's resourceVersion and a new `spec.ttlSecondsAfterFinished` — as
//! the `wrk` load sends them: managed fields read earlier, whose times (a
//! second older at least) are not the stored ones — and the counters are
//! dumped
//! (`callgrind_control --dump`). So the dump holds the replaces and
//! whatever the server did meanwhile (its log thread, the controller, the
//! controller lease), and nothing of its start.
//!
//! Written to `target/bench/`: the dumps (`callgrind.controller-on.out.*`,
//! `callgrind.controller-off.out.*`) and `callgrind_annotate
//! --inclusive=yes` of each (`*.inclusive.txt`). Printed: the instructions
//! per replace of the functions of [`PROBES`], by category.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::Value;

use super::api::Api;
use super::Options;
use crate::local_server::{self, free_loopback_address, LocalServer, Ready};

/// Replaces before the counters are zeroed.
const WARM_UP: usize = 100;

/// Functions whose inclusive cost is reported, by category: (category,
/// what, the function's name as callgrind names it — a trailing `*` makes
/// it a prefix, `<*>` stands for any generic arguments). Inclusive costs
/// nest: a row's cost includes what the functions it calls cost, so rows
/// of one request overlap (the replace handler includes the registry,
/// which includes the decodes). A function that reaches itself through
/// others (serde's visitors of nested values) is over-counted, so none is
/// listed here.
pub const PROBES: &[(&str, &str, &str)] = &[
    ("all", "every instruction of the process", "TOTAL"),
    (
        "threads",
        "the tokio worker threads (the rest: the log thread)",
        "tokio::runtime::scheduler::multi_thread::worker::run",
    ),
    (
        "HTTP/dropshot",
        "hyper's connection task: reading, parsing, writing",
        "<hyper_util::server::graceful::GracefulConnectionFuture<C,F> as core::future::future::Future>::poll",
    ),
    (
        "HTTP/dropshot",
        "dropshot's request task: routing, extractors, handler, response",
        "dropshot::server::http_request_handle::{{closure}}::{{closure}}",
    ),
    (
        "HTTP/dropshot",
        "routing",
        "dropshot::router::HttpRouter<Context>::lookup_route",
    ),
    (
        "HTTP/dropshot",
        "extractors and the handler",
        "<FuncType as dropshot::handler::HttpHandlerFunc<*>::handle_request::{{closure}}",
    ),
    (
        "handler",
        "mxjob's replace handler: authorization, body, registry, audit line",
        "mxjob_server::handlers::replace::{{closure}}",
    ),
    (
        "handler",
        "reading the body",
        "mxjob_api::wire::JsonBody<T>::read::{{closure}}",
    ),
    (
        "JSON decode",
        "the ceiling: body → Value (dropshot's TypedBody)",
        "<dropshot::extractor::body::TypedBody<BodyType> as dropshot::extractor::common::ExclusiveExtractor>::from_request::{{closure}}",
    ),
    (
        "JSON decode",
        "serde_json::from_slice, every caller",
        "serde_json::de::from_trait",
    ),
    (
        "JSON decode",
        "body → MXJob (decode::replacement: the parts sent back as stored taken from the stored object, the rest decoded straight into MXJob)",
        "mxjob_server::decode::replacement",
    ),
    (
        "JSON decode",
        "the body's one pass: repeated keys, misshapen status, where the parts are (decode::Parts::scan, through json::scan_plain_marked, which passes over them)",
        "mxjob_server::decode::Parts::scan",
    ),
    (
        "JSON decode",
        "the rest of the body (the parts replaced by empty values) decoded through serde_ignored (decode::typed)",
        "mxjob_server::decode::typed",
    ),
    (
        "JSON decode",
        "parts not taken from the stored object scanned (json::scan_plain; calls = parts)",
        "mxjob_server::json::scan_plain",
    ),
    (
        "JSON decode",
        "stored bytes → MXJob (decode_stored; calls = reads, most find it decoded)",
        "mxjob_server::registry::Registry::decode_stored",
    ),
    (
        "registry",
        "load: the store's get and a decode",
        "mxjob_server::registry::Registry::load::{{closure}}",
    ),
    (
        "registry",
        "update: checks, validation, managed fields, write_update",
        "mxjob_server::registry::write::<impl mxjob_server::registry::Registry>::update::{{closure}}",
    ),
    (
        "validation",
        "validate_update: validate_object, the immutable fields compared as typed values",
        "mxjob_server::validation::validate_update",
    ),
    (
        "validation",
        "validate_object",
        "mxjob_server::validation::validate_object",
    ),
    (
        "validation",
        "diff of the two specs as Values (only when they differ)",
        "mxjob_server::validation::diff",
    ),
    (
        "registry",
        "write_update: encode, compare with the stored bytes, store",
        "mxjob_server::registry::write::<impl mxjob_server::registry::Registry>::write_update::{{closure}}",
    ),
    (
        "managed fields",
        "set_managed_fields: the Update entry of the writer, as Kubernetes keeps it",
        "mxjob_server::registry::write::<impl mxjob_server::registry::Registry>::set_managed_fields",
    ),
    (
        "managed fields",
        "registry::changes::scalar_changes: the fields changed, from the typed objects",
        "mxjob_server::registry::changes::scalar_changes",
    ),
    (
        "managed fields",
        "apply::operations::update_unmoved: the entries kept, the writer's time moved",
        "mxjob_server::apply::operations::update_unmoved",
    ),
    (
        "managed fields",
        "apply::operations::update_unmoved_retimed: the same for entries sent back with other times",
        "mxjob_server::apply::operations::update_unmoved_retimed",
    ),
    (
        "managed fields",
        "apply::operations::update: the JSON walk, when ownership moves",
        "mxjob_server::apply::operations::update",
    ),
    (
        "managed fields",
        "managedFields entries decoded (calls = objects)",
        "mxjob_server::apply::managers::Managed::decode",
    ),
    (
        "JSON encode",
        "encode: the object's stored form, in parts (object::encode; replica specs the job shares with the stored object copied from its bytes)",
        "mxjob_server::registry::Registry::encode",
    ),
    (
        "JSON encode",
        "the managed fields encoded (their field sets copied as the JSON they keep)",
        "<mxjob_server::apply::shared::SharedEntries as serde_core::ser::Serialize>::serialize",
    ),
    (
        "JSON encode",
        "MXJob serialized (with an empty metadata, no replica specs and an empty status, whose parts follow)",
        "mxjob_api::model::_::<impl serde_core::ser::Serialize for mxjob_api::model::MXJob>::serialize",
    ),
    (
        "JSON encode",
        "MXJobSpec serialized (in MXJob)",
        "mxjob_api::model::_::<impl serde_core::ser::Serialize for mxjob_api::model::MXJobSpec>::serialize",
    ),
    (
        "JSON encode",
        "ObjectMeta serialized (calls = parts)",
        "<k8s_openapi::v1_33::apimachinery::pkg::apis::meta::v1::object_meta::ObjectMeta as serde_core::ser::Serialize>::serialize",
    ),
    (
        "clones",
        "MXJob cloned",
        "<mxjob_api::model::MXJob as core::clone::Clone>::clone",
    ),
    (
        "clones",
        "JobStatus cloned (the stored status, taken for the one sent)",
        "<mxjob_api::model::JobStatus as core::clone::Clone>::clone",
    ),
    (
        "drops",
        "Values dropped",
        "core::ptr::drop_in_place<serde_json::value::Value>",
    ),
    (
        "drops",
        "MXJobs dropped",
        "core::ptr::drop_in_place<mxjob_api::model::MXJob>",
    ),
    ("allocation", "mimalloc's malloc (mxjob-server)", "mi_malloc_aligned"),
    ("allocation", "mimalloc's free (mxjob-server)", "mi_free"),
    ("allocation", "glibc's malloc (the ceiling)", "malloc"),
    ("allocation", "glibc's free (the ceiling)", "free"),
    (
        "store",
        "MemoryStore::update_prepared (the written object built and put in the value's slot included)",
        "<mxjob_server::store::memory::MemoryStore as mxjob_server::store::Store>::update_prepared::{{closure}}",
    ),
    (
        "response",
        "mxjob's Reply → bytes (to_json, and the object dropped)",
        "<mxjob_api::wire::Reply<T,C> as dropshot::handler::HttpResponse>::to_result",
    ),
    (
        "response",
        "the ceiling: Value → bytes",
        "<T as dropshot::handler::HttpResponseContent>::to_response",
    ),
    (
        "logging",
        "formatting each record into a line and queueing it",
        "<mxjob_server::logging::Lines as slog::Drain>::log",
    ),
    (
        "logging",
        "the log thread: taking the queued lines, writing them",
        "mxjob_server::logging::Queue::write_to",
    ),
    (
        "logging",
        "its writes to stderr (calls = write(2) calls)",
        "<std::io::stdio::Stderr as std::io::Write>::write_all",
    ),
    (
        "watch fan-out",
        "the store's event log read by watchers (the controller's)",
        "mxjob_server::store::feed::EventLog::read",
    ),
    (
        "controller",
        "the controller's watch loop: decoding each change, handing it over",
        "mxjob_server::controller::lead::{{closure}}",
    ),
    (
        "controller",
        "the job's task: taking the new object, reconciling",
        "mxjob_server::controller::job::run::{{closure}}",
    ),
];

/// Builds mxjob-server and bench-ceiling with debug symbols
/// (`target/profiling/`).
fn build() -> Result<(PathBuf, PathBuf)> {
    let built = local_server::build_binaries(&[
        "--config",
        "profile.profiling.inherits=\"release\"",
        "--config",
        "profile.profiling.debug=true",
        "--profile",
        "profiling",
        "--package",
        "mxjob-server",
        "--bin",
        "mxjob-server",
        "--package",
        "bench-ceiling",
        "--bin",
        "bench-ceiling",
    ])?;
    Ok((
        local_server::executable(&built, "mxjob-server")?,
        local_server::executable(&built, "bench-ceiling")?,
    ))
}

fn callgrind_control(args: &[&str]) -> Result<()> {
    let output = Command::new("callgrind_control")
        .args(args)
        .output()
        .context("running callgrind_control")?;
    if !output.status.success() {
        bail!(
            "callgrind_control {} failed: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

/// `count` replaces of `object`, one after another, each `object` with
/// the previous answer's resourceVersion and a new ttl.
async fn replaces(api: &Api, mut object: Value, count: usize) -> Result<Value> {
    let mut answer = object.clone();
    for _ in 0..count {
        let ttl = answer["spec"]["ttlSecondsAfterFinished"]
            .as_i64()
            .unwrap_or(0);
        object["spec"]["ttlSecondsAfterFinished"] = Value::from(ttl + 1);
        object["metadata"]["resourceVersion"] = answer["metadata"]["resourceVersion"].clone();
        answer = api.replace(&object).await?.0;
    }
    Ok(answer)
}

/// The costs of a callgrind dump by function name, summed over the source
/// files a function's code comes from (callgrind_annotate lists a function
/// once per file its inlined code comes from, with overlapping inclusive
/// costs).
#[derive(Default)]
struct Costs {
    total: u64,
    /// Own instructions and those of what it calls (recursive calls counted once).
    inclusive: HashMap<String, u64>,
    /// Calls into each function from other functions.
    calls: HashMap<String, u64>,
}

/// A function name without callgrind's recursion-depth suffix (`'2`).
fn base_name(name: &str) -> &str {
    match name.rsplit_once('\'') {
        Some((base, depth)) if !depth.is_empty() && depth.bytes().all(|b| b.is_ascii_digit()) => {
            base
        }
        _ => name,
    }
}

impl Costs {
    /// Reads a callgrind output file (one event, `Ir`).
    fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)?;
        let mut costs = Costs::default();
        let mut names: HashMap<String, String> = HashMap::new();
        // `fn=(12) name` defines a name, `fn=(12)` refers to it again.
        let mut resolve = |spec: &str| -> String {
            let spec = spec.trim();
            if let Some(rest) = spec.strip_prefix('(') {
                if let Some((id, name)) = rest.split_once(')') {
                    let name = name.trim();
                    if name.is_empty() {
                        return names.get(id).cloned().unwrap_or_default();
                    }
                    names.insert(id.to_string(), name.to_string());
                    return name.to_string();
                }
            }
            spec.to_string()
        };
        let mut function = String::new();
        let mut callee: Option<String> = None;
        let mut call_pending = false;
        for line in text.lines() {
            if let Some(spec) = line.strip_prefix("fn=") {
                function = base_name(&resolve(spec)).to_string();
            } else if let Some(spec) = line.strip_prefix("cfn=") {
                callee = Some(base_name(&resolve(spec)).to_string());
            } else if let Some(spec) = line.strip_prefix("calls=") {
                let count: u64 = spec
                    .split_whitespace()
                    .next()
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(0);
                if let Some(callee) = &callee {
                    if *callee != function {
                        *costs.calls.entry(callee.clone()).or_default() += count;
                    }
                }
                call_pending = true;
            } else if let Some(total) = line.strip_prefix("summary:") {
                costs.total = total.trim().parse().unwrap_or(0);
            } else if line.starts_with(|c: char| c.is_ascii_digit() || "+-*".contains(c)) {
                let cost: u64 = line
                    .split_whitespace()
                    .nth(1)
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(0);
                let recursive = call_pending && callee.as_deref() == Some(function.as_str());
                if !recursive {
                    *costs.inclusive.entry(function.clone()).or_default() += cost;
                }
                call_pending = false;
            }
        }
        Ok(costs)
    }

    /// The functions `pattern` names: exactly, or by prefix with a
    /// trailing `*`, or with `<*>` standing for generic arguments.
    fn matching<'a>(&'a self, pattern: &'a str) -> impl Iterator<Item = &'a String> + 'a {
        self.inclusive.keys().filter(move |name| {
            if let Some((before, after)) = pattern.split_once("<*>") {
                name.starts_with(before) && name.ends_with(after)
            } else if let Some(prefix) = pattern.strip_suffix('*') {
                name.starts_with(prefix)
            } else {
                name.as_str() == pattern
            }
        })
    }

    /// Inclusive cost and calls of what `pattern` names, summed.
    fn of(&self, pattern: &str) -> (u64, u64) {
        if pattern == "TOTAL" {
            return (self.total, 0);
        }
        self.matching(pattern).fold((0, 0), |(cost, calls), name| {
            (
                cost + self.inclusive[name],
                calls + self.calls.get(name).copied().unwrap_or(0),
            )
        })
    }

    /// Every function with its inclusive cost and calls per replace,
    /// costliest first.
    fn listing(&self, replaces: u64) -> String {
        let mut rows: Vec<(&String, &u64)> = self.inclusive.iter().collect();
        rows.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let mut out = format!(
            "instructions per replace (inclusive)  calls per replace  function\n{:>12}  total\n",
            self.total / replaces
        );
        for (name, cost) in rows.into_iter().filter(|(_, c)| **c >= replaces) {
            let calls = self.calls.get(name).copied().unwrap_or(0);
            out.push_str(&format!(
                "{:>12}  {:>8.2}  {name}\n",
                cost / replaces,
                calls as f64 / replaces as f64
            ));
        }
        out
    }
}

/// One program profiled.
struct Profiled {
    label: &'static str,
    program: PathBuf,
    /// Its arguments after `--listen ADDRESS` (mxjob-server) or the
    /// address (the ceiling).
    args: Vec<String>,
    /// The ceiling: no `/version`, no objects to create.
    ceiling: bool,
}

/// Runs `profiled` under callgrind with `count` replaces and returns the
/// costs of the replaces.
fn profile_one(
    profiled: &Profiled,
    count: usize,
    dir: &Path,
    runtime: &tokio::runtime::Runtime,
) -> Result<Costs> {
    let label = profiled.label;
    let out = dir.join(format!("callgrind.{label}.out"));
    for old in std::fs::read_dir(dir)?.filter_map(|e| e.ok()) {
        let name = old.file_name().to_string_lossy().to_string();
        if name.starts_with(&format!("callgrind.{label}.out")) {
            std::fs::remove_file(old.path())?;
        }
    }
    let address = free_loopback_address()?;
    let mut args: Vec<String> = vec![
        "--tool=callgrind".into(),
        format!("--callgrind-out-file={}", out.display()),
        profiled.program.display().to_string(),
    ];
    if profiled.ceiling {
        args.push(address.to_string());
    } else {
        args.extend(["--listen".to_string(), address.to_string()]);
    }
    args.extend(profiled.args.iter().cloned());
    let server = LocalServer::start_program(
        Path::new("/usr/bin/valgrind"),
        &args,
        address,
        &dir.join(format!("callgrind.{label}.log")),
        if profiled.ceiling {
            Ready::Answers
        } else {
            Ready::Version
        },
        Duration::from_secs(600),
    )?;
    let pid = server.pid().to_string();
    let api = Api::new(&server.url);
    runtime.block_on(async {
        let seed: Value = serde_json::from_str(mxjob_api::openapi::REPLACE_EXAMPLE)?;
        let object = if profiled.ceiling {
            let mut object = seed;
            object["metadata"]["name"] = Value::from("job");
            object["metadata"]["namespace"] = Value::from("profiled");
            object
        } else {
            api.create(&seed, "profiled", "job").await?;
            // With the controller, the status it writes first.
            if profiled.args.iter().any(|a| a == "--controller=false") {
                api.get("profiled", "job").await?
            } else {
                api.admitted("profiled", "job").await?
            }
        };
        let object = replaces(&api, object, WARM_UP).await?;
        // Managed fields' times are to the second: after one, those of the
        // object sent are older than the stored ones.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        callgrind_control(&["--zero", &pid])?;
        let started = std::time::Instant::now();
        replaces(&api, object, count).await?;
        println!(
            "{label}: {count} replaces under callgrind in {:.0} s",
            started.elapsed().as_secs_f64()
        );
        callgrind_control(&["--dump=replaces", &pid])?;
        Ok::<_, anyhow::Error>(())
    })?;
    server.stop(Duration::from_secs(300));
    // The dump of the replaces is the first one (`.1`); the rest of the
    // run is written to the file itself at exit.
    let dump = PathBuf::from(format!("{}.1", out.display()));
    if !dump.exists() {
        bail!("callgrind left no {}", dump.display());
    }
    let annotated = Command::new("callgrind_annotate")
        .args(["--inclusive=yes", "--threshold=100"])
        .arg(&dump)
        .output()
        .context("running callgrind_annotate")?;
    if !annotated.status.success() {
        bail!(
            "callgrind_annotate failed: {}",
            String::from_utf8_lossy(&annotated.stderr)
        );
    }
    let annotated_path = dir.join(format!("callgrind.{label}.inclusive.txt"));
    std::fs::write(&annotated_path, &annotated.stdout)?;
    let costs = Costs::read(&dump)?;
    let listing_path = dir.join(format!("callgrind.{label}.functions.txt"));
    std::fs::write(&listing_path, costs.listing(count as u64))?;
    println!(
        "{label}: {} and {}",
        annotated_path.display(),
        listing_path.display()
    );
    Ok(costs)
}

pub fn profile(options: &Options, dir: &Path) -> Result<()> {
    let (server, ceiling) = build()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let count = options.profile_replaces;
    let mxjob = |label, controller: &str| Profiled {
        label,
        program: server.clone(),
        args: ["--store", "memory", "--executor", "none", controller]
            .map(String::from)
            .to_vec(),
        ceiling: false,
    };
    let runs = [
        mxjob("controller-on", "--controller=true"),
        mxjob("controller-off", "--controller=false"),
        Profiled {
            label: "ceiling",
            program: ceiling,
            args: Vec::new(),
            ceiling: true,
        },
    ];
    let mut costs = Vec::new();
    for run in &runs {
        costs.push(profile_one(run, count, dir, &runtime)?);
    }
    println!(
        "\nInstructions per replace (inclusive, user space only), {count} replaces one after \
         another, mxjob-server with `--store memory --executor none`:\n"
    );
    println!(
        "| category | what | function | controller on | calls | controller off | calls | ceiling | calls |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let n = count as u64;
    for (category, what, function) in PROBES {
        let cells: Vec<String> = costs
            .iter()
            .map(|costs| {
                let (cost, calls) = costs.of(function);
                if cost == 0 {
                    "- | -".to_string()
                } else {
                    format!("{} | {:.2}", cost / n, calls as f64 / n as f64)
                }
            })
            .collect();
        println!(
            "| {category} | {what} | `{function}` | {} |",
            cells.join(" | ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn costs_are_summed_by_function_across_files_and_recursion() {
        let dump = "\
version: 1
positions: line
events: Ir
summary: 1000

fl=(1) a.rs
fn=(1) outer
1 100
cfl=(2) b.rs
cfn=(2) inner
calls=2 10
1 300
fi=(3) c.rs
2 50
cfn=(2)
calls=1 10
3 200

fl=(2)
fn=(2)
10 400
cfn=(4) inner'2
calls=1 10
11 40

fn=(4)
10 40
";
        let path = std::env::temp_dir().join(format!("costs-test-{}.out", std::process::id()));
        std::fs::write(&path, dump).unwrap();
        let costs = Costs::read(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(costs.total, 1000);
        // outer: 100 + 50 of its own, 300 + 200 in the calls to inner.
        assert_eq!(costs.of("outer"), (650, 0));
        // inner: 400 + its recursion level's 40, the recursive call not twice.
        assert_eq!(costs.of("inner"), (440, 3));
        assert_eq!(costs.of("inn*"), (440, 3));
        assert_eq!(base_name("same'2"), "same");
        assert_eq!(base_name("f<'a>"), "f<'a>");
    }
}

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
//! connection, each with the resourceVersion of the previous answer and a
//! new `spec.ttlSecondsAfterFinished`, and the counters are dumped
//! (`callgrind_control --dump`). So the dump holds the replaces and
//! whatever the server did meanwhile (its log thread, the controller, the
//! controller lease), and nothing of its start.
//!
//! Written to `target/bench/`: the dumps (`callgrind.controller-on.out.*`,
//! `callgrind.controller-off.out.*`) and `callgrind_annotate
//! --inclusive=yes` of each (`*.inclusive.txt`). Printed: the instructions
//! per replace of the functions of [`PROBES`], by category.

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
/// what, the function's name as callgrind_annotate prints it, or a prefix
/// of it ending in `*`). Inclusive costs nest: a category's first row is
/// its whole, the rows under it are parts of it.
pub const PROBES: &[(&str, &str, &str)] = &[
    ("all", "every instruction of the process", "TOTAL"),
    (
        "HTTP/dropshot",
        "a connection's task: hyper, dropshot, the handler",
        "hyper::proto::h1::dispatch::Dispatcher<*>::poll_catch",
    ),
    (
        "HTTP/dropshot",
        "dropshot's handling of one request (handler included)",
        "dropshot::server::http_request_handle::{{closure}}",
    ),
    (
        "handler",
        "the replace handler (registry included)",
        "mxjob_server::server::replace::{{closure}}",
    ),
    (
        "handler",
        "reading the body",
        "mxjob_server::wire::JsonBody<T>::read::{{closure}}",
    ),
    (
        "registry",
        "Registry::replace (decode, load, update, store)",
        "mxjob_server::registry::Registry::replace::{{closure}}",
    ),
    (
        "JSON decode",
        "body → Value (json::parse)",
        "mxjob_server::json::parse",
    ),
    (
        "JSON decode",
        "Value → MXJob (decode_job)",
        "mxjob_server::registry::decode_job",
    ),
    (
        "JSON decode",
        "stored bytes → MXJob (decode_stored), every caller",
        "mxjob_server::registry::Registry::decode_stored",
    ),
    (
        "registry",
        "Registry::update (checks, validation, write)",
        "mxjob_server::registry::Registry::update::{{closure}}",
    ),
    (
        "validation",
        "validate_update",
        "mxjob_server::validation::validate_update",
    ),
    (
        "validation",
        "validate_status",
        "mxjob_server::validation::validate_status",
    ),
    (
        "registry",
        "write_update (compare, encode, store, decode back)",
        "mxjob_server::registry::Registry::write_update::{{closure}}",
    ),
    (
        "JSON encode",
        "MXJob → stored bytes (encode_for_store, with its clone)",
        "mxjob_server::registry::Registry::encode_for_store",
    ),
    (
        "store",
        "MemoryStore::update",
        "<mxjob_server::store::memory::MemoryStore as mxjob_server::store::Store>::update::{{closure}}",
    ),
    (
        "store",
        "MemoryStore::get",
        "<mxjob_server::store::memory::MemoryStore as mxjob_server::store::Store>::get::{{closure}}",
    ),
    (
        "response",
        "Reply → bytes (to_result)",
        "<mxjob_server::wire::Reply<T,C> as dropshot::handler::HttpResponse>::to_result",
    ),
    (
        "logging",
        "the audit line (mutate, after the write)",
        "slog::Logger::log",
    ),
    (
        "logging",
        "the log thread (slog-async → slog-term → stderr)",
        "slog_async::AsyncCore::spawn_thread::{{closure}}",
    ),
    (
        "watch fan-out",
        "store events to watchers (feed::follow)",
        "mxjob_server::store::feed::follow::{{closure}}",
    ),
    (
        "controller",
        "the controller's watch loop (lead)",
        "mxjob_server::controller::lead::{{closure}}",
    ),
    (
        "controller",
        "Registry::watch_all's decode of each change",
        "mxjob_server::registry::Registry::watch_all::{{closure}}::{{closure}}",
    ),
    (
        "controller",
        "the job tasks (job::run)",
        "mxjob_server::controller::job::run::{{closure}}",
    ),
];

/// Builds mxjob-server with debug symbols (`target/profiling/`).
fn build() -> Result<PathBuf> {
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
    ])?;
    local_server::executable(&built, "mxjob-server")
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

/// `count` replaces of `object`, one after another.
async fn replaces(api: &Api, mut object: Value, count: usize) -> Result<Value> {
    for _ in 0..count {
        let ttl = object["spec"]["ttlSecondsAfterFinished"]
            .as_i64()
            .unwrap_or(0);
        object["spec"]["ttlSecondsAfterFinished"] = Value::from(ttl + 1);
        object = api.replace(&object).await?.0;
    }
    Ok(object)
}

/// The inclusive costs callgrind_annotate printed, by function.
fn inclusive_costs(annotated: &str) -> (u64, Vec<(u64, String)>) {
    let number = |text: &str| text.replace(',', "").parse::<u64>().ok();
    let mut total = 0;
    let mut functions = Vec::new();
    for line in annotated.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_suffix("PROGRAM TOTALS") {
            total = number(rest.split_whitespace().next().unwrap_or("")).unwrap_or(0);
            continue;
        }
        let Some((cost, rest)) = line.split_once(' ') else {
            continue;
        };
        let Some(cost) = number(cost) else { continue };
        // `1,234 (12.3%)  file:function [binary]`
        let rest = rest.trim_start();
        let rest = match rest.strip_prefix('(') {
            Some(r) => r.split_once(')').map_or(r, |(_, after)| after).trim_start(),
            None => rest,
        };
        let function = rest
            .split_once(':')
            .map_or(rest, |(_, f)| f)
            .trim_end_matches(|c| c != ']')
            .rsplit_once(" [")
            .map_or(rest, |(f, _)| f)
            .to_string();
        functions.push((cost, function));
    }
    (total, functions)
}

/// The cost of the function `pattern` names (a trailing `*` is a prefix;
/// `<*>` stands for generic arguments), summed over its instances.
fn cost_of(functions: &[(u64, String)], pattern: &str) -> u64 {
    let matches = |name: &str| -> bool {
        if let Some((before, after)) = pattern.split_once("<*>") {
            name.starts_with(before) && name.ends_with(after)
        } else if let Some(prefix) = pattern.strip_suffix('*') {
            name.starts_with(prefix)
        } else {
            name == pattern
        }
    };
    // A function that shows up once per binary or file is summed; the
    // same name twice with the same cost is one function seen twice.
    let mut costs: Vec<u64> = functions
        .iter()
        .filter(|(_, name)| matches(name))
        .map(|(cost, _)| *cost)
        .collect();
    costs.dedup();
    costs.iter().sum()
}

pub fn profile(options: &Options, dir: &Path) -> Result<()> {
    let binary = build()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let replaces_count = options.profile_replaces;
    let mut summaries = Vec::new();
    for controller in [true, false] {
        let label = if controller {
            "controller-on"
        } else {
            "controller-off"
        };
        let out = dir.join(format!("callgrind.{label}.out"));
        for old in std::fs::read_dir(dir)?.filter_map(|e| e.ok()) {
            let name = old.file_name().to_string_lossy().to_string();
            if name.starts_with(&format!("callgrind.{label}.out")) {
                std::fs::remove_file(old.path())?;
            }
        }
        let address = free_loopback_address()?;
        let args: Vec<String> = vec![
            "--tool=callgrind".into(),
            format!("--callgrind-out-file={}", out.display()),
            binary.display().to_string(),
            "--listen".into(),
            address.to_string(),
            "--store".into(),
            "memory".into(),
            "--executor".into(),
            "none".into(),
            format!("--controller={controller}"),
        ];
        let server = LocalServer::start_program(
            Path::new("/usr/bin/valgrind"),
            &args,
            address,
            &dir.join(format!("callgrind.{label}.log")),
            Ready::Version,
            Duration::from_secs(600),
        )?;
        let pid = server.pid().to_string();
        let api = Api::new(&server.url);
        runtime.block_on(async {
            let seed: Value = serde_json::from_str(mxjob_server::openapi::REPLACE_EXAMPLE)?;
            let mut object = api.create(&seed, "profiled", "job").await?;
            if controller {
                object = api.admitted("profiled", "job").await?;
            }
            let object = replaces(&api, object, WARM_UP).await?;
            callgrind_control(&["--zero", &pid])?;
            let started = std::time::Instant::now();
            replaces(&api, object, replaces_count).await?;
            println!(
                "{label}: {replaces_count} replaces under callgrind in {:.0} s",
                started.elapsed().as_secs_f64()
            );
            callgrind_control(&["--dump=replaces", &pid])?;
            Ok::<_, anyhow::Error>(())
        })?;
        server.stop(Duration::from_secs(300));
        // The dump of the replaces is the first one (`.1`); the rest of
        // the run is written to the file itself at exit.
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
        let text = String::from_utf8_lossy(&annotated.stdout).to_string();
        let annotated_path = dir.join(format!("callgrind.{label}.inclusive.txt"));
        std::fs::write(&annotated_path, &text)?;
        println!("{label}: {}", annotated_path.display());
        summaries.push((label, inclusive_costs(&text)));
    }

    println!(
        "\nInstructions per replace (inclusive), {replaces_count} replaces, `--store memory`:\n"
    );
    println!("| category | what | function | controller on | controller off |");
    println!("|---|---|---|---|---|");
    for (category, what, function) in PROBES {
        let per_replace: Vec<String> = summaries
            .iter()
            .map(|(_, (total, functions))| {
                let cost = if *function == "TOTAL" {
                    *total
                } else {
                    cost_of(functions, function)
                };
                format!("{}", cost / replaces_count as u64)
            })
            .collect();
        println!(
            "| {category} | {what} | `{function}` | {} | {} |",
            per_replace[0], per_replace[1]
        );
    }
    Ok(())
}

//! Chains of replaces driven by Debian's `wrk`, with a Lua script that
//! carries each object's resourceVersion from one answer to the next
//! request.
//!
//! wrk runs `-t` threads with `-c / -t` connections each, and tells a
//! script neither which connection a request goes out on nor which one an
//! answer came back on. So each thread's script holds as many objects as
//! the thread has connections, in a queue of free ones: `request()` takes
//! the next free object, sets the resourceVersion the last answer for it
//! carried and a new `spec.ttlSecondsAfterFinished`, and `response()`
//! finds the object by the name in the answer, keeps the answer's
//! resourceVersion and puts the object back. wrk calls `response()` for a
//! connection before it asks that connection's next request, so a free
//! object is always there, no object ever has two requests in flight, and
//! every request is a real write that cannot conflict: as many chains of
//! replaces as connections. (wrk also asks the first thread for one
//! request before it starts, which it never sends: that one takes no
//! object.) Answers other than 200 are counted (a
//! measurement with any is reported as such), and so are requests that
//! found no free object (none are expected).
//!
//! With a rate ([`Run::rate`]) the script paces its requests: it defines
//! `delay()`, which wrk calls before each request of a connection, and
//! hands out send times on a fixed schedule per wrk thread, read from
//! `CLOCK_MONOTONIC` through LuaJIT's FFI (wrk's timers count whole
//! milliseconds, so a request leaves within half a millisecond of its
//! time). The schedule does not wait for answers: when every connection of
//! a thread is busy at a request's time, the request leaves late, and the
//! script counts it as late (more than 2 ms after its time; wrk's own
//! timers firing late count too). wrk's latencies run from when a request
//! left, so they hide the wait of a late request; a run with few late
//! requests has little to hide.
//!
//! A request body is the object the server last answered for it (uid,
//! status and all), as a client that reads, changes and writes back sends
//! it: the Rust side renders it with two markers, and the script only
//! concatenates five strings per request.

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde_json::Value;

use super::machine::{self, MachineCpu};

const RV_MARK: &str = "@RV@";
const TTL_MARK: &str = "@TTL@";

/// One chain: an object and the pieces of its request body.
pub struct Chain {
    name: String,
    path: String,
    /// The body up to the resourceVersion, from there to the TTL, and the rest.
    parts: [String; 3],
    resource_version: String,
    ttl: i64,
    pub body_bytes: usize,
}

impl Chain {
    /// A chain for `object` (as the server answered it) at `collection`
    /// (`/apis/kubeflow.org/v1/namespaces/NS/mxjobs`).
    pub fn new(collection: &str, object: &Value) -> Result<Self> {
        let name = object["metadata"]["name"]
            .as_str()
            .context("the object has no name")?
            .to_string();
        let resource_version = object["metadata"]["resourceVersion"]
            .as_str()
            .context("the object has no resourceVersion")?
            .to_string();
        let ttl = object["spec"]["ttlSecondsAfterFinished"]
            .as_i64()
            .unwrap_or(0);
        let mut marked = object.clone();
        marked["metadata"]["resourceVersion"] = Value::from(RV_MARK);
        marked["spec"]["ttlSecondsAfterFinished"] = Value::from(TTL_MARK);
        let text = serde_json::to_string(&marked)?.replace(&format!("\"{TTL_MARK}\""), TTL_MARK);
        let rv_at = text.find(RV_MARK).context("no resourceVersion marker")?;
        let ttl_at = text.find(TTL_MARK).context("no TTL marker")?;
        if ttl_at < rv_at {
            bail!("the body names spec before metadata");
        }
        let parts = [
            text[..rv_at].to_string(),
            text[rv_at + RV_MARK.len()..ttl_at].to_string(),
            text[ttl_at + TTL_MARK.len()..].to_string(),
        ];
        let body_bytes = text.len() - RV_MARK.len() - TTL_MARK.len()
            + resource_version.len()
            + ttl.to_string().len();
        Ok(Chain {
            path: format!("{collection}/{name}"),
            name,
            parts,
            resource_version,
            ttl,
            body_bytes,
        })
    }
}

/// A Lua string literal.
fn lua_string(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('"');
    for c in text.chars() {
        match c {
            '\\' => quoted.push_str("\\\\"),
            '"' => quoted.push_str("\\\""),
            '\n' => quoted.push_str("\\n"),
            '\r' => quoted.push_str("\\r"),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

/// The script for `chains`, `per_thread` of them per wrk thread, each
/// thread sending a request every `interval_us` microseconds when paced.
fn script(chains: &[Chain], per_thread: usize, interval_us: Option<f64>) -> String {
    let mut lua =
        String::from("-- Written by `cargo xtask bench`: chains of MXJob replaces.\nobjects = {\n");
    for chain in chains {
        let _ = writeln!(
            lua,
            "  {{name = {}, path = {}, a = {}, b = {}, c = {}, rv = {}, ttl = {}}},",
            lua_string(&chain.name),
            lua_string(&chain.path),
            lua_string(&chain.parts[0]),
            lua_string(&chain.parts[1]),
            lua_string(&chain.parts[2]),
            lua_string(&chain.resource_version),
            chain.ttl,
        );
    }
    let _ = write!(lua, "}}\nper_thread = {per_thread}\n");
    lua.push_str(
        r#"
threads = {}
local assigned = 0

function setup(thread)
  thread:set("first", assigned + 1)
  thread:set("number", #threads + 1)
  assigned = assigned + per_thread
  table.insert(threads, thread)
end

function init(args)
  -- A queue of free objects: free[head .. tail - 1].
  free = {}
  head, tail = 1, 1
  by_name = {}
  for i = first, first + per_thread - 1 do
    free[tail] = i
    tail = tail + 1
    by_name[objects[i].name] = i
  end
  replaced = 0
  failed = 0
  lost = 0
  late = 0
  -- Send times handed out by delay() and not yet taken by request().
  due = {}
  due_head, due_tail = 1, 1
  headers = {["Content-Type"] = "application/json"}
  -- wrk asks the first thread for one request before it starts, to see
  -- what requests look like, and never sends it.
  trial = number == 1
end

function request()
  if trial then
    trial = false
    local o = objects[first]
    return wrk.format("PUT", o.path, headers, o.a .. o.rv .. o.b .. o.ttl .. o.c)
  end
  local i
  if head < tail then
    i = free[head]
    free[head] = nil
    head = head + 1
  else
    lost = lost + 1
    i = first
  end
  if due_head < due_tail then
    local slot = due[due_head]
    due[due_head] = nil
    due_head = due_head + 1
    if now_us() - slot > 2000 then late = late + 1 end
  end
  local o = objects[i]
  o.ttl = o.ttl + 1
  return wrk.format("PUT", o.path, headers, o.a .. o.rv .. o.b .. o.ttl .. o.c)
end

function response(status, hdrs, body)
  local name = string.match(body, '"name":"([^"]*)"')
  local i = name and by_name[name]
  if i == nil then
    failed = failed + 1
    return
  end
  if status == 200 then
    local rv = string.match(body, '"resourceVersion":"([0-9]+)"')
    if rv then objects[i].rv = rv end
    replaced = replaced + 1
  else
    failed = failed + 1
  end
  free[tail] = i
  tail = tail + 1
end

function done(summary, latency, requests)
  local r, f, l, z = 0, 0, 0, 0
  for _, t in ipairs(threads) do
    r = r + t:get("replaced")
    f = f + t:get("failed")
    l = l + t:get("lost")
    z = z + t:get("late")
  end
  io.write(string.format("WRK-RESULT %d %d %d %d %d %d %d %d %d\n",
    summary.duration, summary.requests, r, f, l,
    latency:percentile(50), latency:percentile(99), latency.max, z))
end
"#,
    );
    match interval_us {
        None => lua.push_str("\nfunction now_us() return 0 end\n"),
        Some(interval) => {
            let _ = write!(lua, "\ninterval = {interval:.3}\n");
            lua.push_str(
                r#"
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clock, bench_timespec *t);
]]
local clock = ffi.new("bench_timespec")

-- CLOCK_MONOTONIC, in microseconds.
function now_us()
  ffi.C.clock_gettime(1, clock)
  return tonumber(clock.tv_sec) * 1e6 + tonumber(clock.tv_nsec) / 1e3
end

-- The next send time of this thread, and how many milliseconds until it.
function delay()
  local now = now_us()
  if next_due == nil then next_due = now end
  local slot = next_due
  next_due = next_due + interval
  due[due_tail] = slot
  due_tail = due_tail + 1
  local wait = (slot - now) / 1000
  if wait <= 0 then return 0 end
  return math.floor(wait + 0.5)
end
"#,
            );
        }
    }
    lua
}

/// One wrk run's numbers.
#[derive(Clone, Debug)]
pub struct Measured {
    pub seconds: f64,
    /// Wall time from wrk's start to its exit.
    pub wall: f64,
    /// Answers of 200.
    pub replaced: u64,
    /// Answers that were not 200, or named no object of the run.
    pub failed: u64,
    /// Requests that found no free object.
    pub lost: u64,
    /// Paced requests that left more than 2 ms after their time.
    pub late: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// CPU seconds of wrk itself.
    pub wrk_cpu: f64,
    /// CPU seconds of each process of the target.
    pub target_cpu: Vec<f64>,
    /// CPU seconds of the server's tokio threads (the rest of its CPU is
    /// its other threads': mxjob-server's log thread).
    pub worker_cpu: f64,
    /// Busy CPU seconds of the whole machine.
    pub machine_busy: f64,
    /// CPU seconds the machine had (cores × wall time).
    pub machine_total: f64,
}

impl Measured {
    pub fn per_second(&self) -> f64 {
        self.replaced as f64 / self.seconds
    }

    /// A share of one core, in percent, over the run's wall time.
    pub fn percent(&self, cpu_seconds: f64) -> f64 {
        100.0 * cpu_seconds / self.wall
    }

    /// The CPU the rest of the machine used meanwhile, in percent of one core.
    pub fn others_percent(&self) -> f64 {
        let ours = self.wrk_cpu + self.target_cpu.iter().sum::<f64>();
        self.percent((self.machine_busy - ours).max(0.0))
    }
}

/// How wrk is run.
pub struct Run<'a> {
    pub url: &'a str,
    pub chains: &'a [Chain],
    pub threads: usize,
    pub seconds: u64,
    /// Requests per second offered in all, on a schedule; `None` sends each
    /// connection's next request as soon as its answer is read.
    pub rate: Option<u32>,
    /// The processes whose CPU time is measured (the server, its etcd).
    pub pids: &'a [u32],
    /// Where the script and wrk's own report are kept.
    pub files: &'a Path,
}

/// Runs wrk once and reads its numbers.
pub fn run(run: &Run<'_>) -> Result<Measured> {
    let connections = run.chains.len();
    if run.threads == 0 || !connections.is_multiple_of(run.threads) {
        bail!(
            "{connections} connections do not split evenly over {} wrk threads",
            run.threads
        );
    }
    let script_path = run.files.with_extension("lua");
    let interval_us = run
        .rate
        .map(|rate| 1e6 * run.threads as f64 / f64::from(rate.max(1)));
    std::fs::write(
        &script_path,
        script(run.chains, connections / run.threads, interval_us),
    )?;
    let before: Vec<f64> = run
        .pids
        .iter()
        .map(|pid| machine::cpu_seconds(*pid))
        .collect::<Result<_>>()?;
    let threads_before = machine::thread_cpu_seconds(run.pids[0])?;
    let machine_before = MachineCpu::now()?;
    let started = Instant::now();
    let report = std::fs::File::create(run.files.with_extension("wrk.txt"))?;
    let child = Command::new("/usr/bin/wrk")
        .arg("-t")
        .arg(run.threads.to_string())
        .arg("-c")
        .arg(connections.to_string())
        .arg("-d")
        .arg(format!("{}s", run.seconds))
        .args(["--timeout", "10s", "--latency", "-s"])
        .arg(&script_path)
        .arg(run.url)
        .stdin(Stdio::null())
        .stdout(report.try_clone()?)
        .stderr(report)
        .spawn()
        .context("starting /usr/bin/wrk")?;
    let finished = machine::wait_with_usage(child.id())?;
    let wall = started.elapsed().as_secs_f64();
    let machine_after = MachineCpu::now()?;
    let target_cpu: Vec<f64> = run
        .pids
        .iter()
        .zip(&before)
        .map(|(pid, before)| machine::cpu_seconds(*pid).map(|after| after - before))
        .collect::<Result<_>>()?;
    let threads_after = machine::thread_cpu_seconds(run.pids[0])?;
    let worker_cpu: f64 = threads_after
        .iter()
        .filter(|(name, _)| name.starts_with("tokio-r"))
        .map(|(name, after)| after - threads_before.get(name).copied().unwrap_or(0.0))
        .sum();
    let text = std::fs::read_to_string(run.files.with_extension("wrk.txt"))?;
    if !finished.success {
        bail!("wrk failed:\n{text}");
    }
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("WRK-RESULT "))
        .with_context(|| format!("wrk printed no result:\n{text}"))?;
    let numbers: Vec<u64> = line
        .split_whitespace()
        .map(|n| n.parse::<f64>().map(|n| n as u64))
        .collect::<Result<_, _>>()
        .with_context(|| format!("reading {line:?}"))?;
    let [duration_us, _requests, replaced, failed, lost, p50, p99, max, late] = numbers[..] else {
        bail!("unexpected wrk result {line:?}");
    };
    Ok(Measured {
        seconds: duration_us as f64 / 1e6,
        wall,
        replaced,
        failed,
        lost,
        late,
        p50_ms: p50 as f64 / 1000.0,
        p99_ms: p99 as f64 / 1000.0,
        max_ms: max as f64 / 1000.0,
        wrk_cpu: finished.cpu_seconds,
        worker_cpu,
        target_cpu,
        machine_busy: machine_after.busy_since(&machine_before),
        machine_total: machine_after.total_since(&machine_before),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chain_splits_the_body_around_the_version_and_the_ttl() {
        let object = serde_json::json!({
            "apiVersion": "kubeflow.org/v1",
            "kind": "MXJob",
            "metadata": {"name": "a", "namespace": "n", "resourceVersion": "17"},
            "spec": {"ttlSecondsAfterFinished": 5, "jobMode": "MXTrain"},
            "status": {"conditions": []},
        });
        let chain = Chain::new("/c", &object).expect("a chain");
        assert_eq!(chain.path, "/c/a");
        assert_eq!((chain.resource_version.as_str(), chain.ttl), ("17", 5));
        let body = format!(
            "{}{}{}{}{}",
            chain.parts[0], "18", chain.parts[1], 6, chain.parts[2]
        );
        let mut expected = object.clone();
        expected["metadata"]["resourceVersion"] = Value::from("18");
        expected["spec"]["ttlSecondsAfterFinished"] = Value::from(6);
        assert_eq!(serde_json::from_str::<Value>(&body).unwrap(), expected);
        assert_eq!(
            chain.body_bytes,
            serde_json::to_string(&object).unwrap().len()
        );
    }

    #[test]
    fn only_a_paced_script_defines_delay() {
        let object = serde_json::json!({
            "metadata": {"name": "a", "resourceVersion": "1"},
            "spec": {"ttlSecondsAfterFinished": 5},
        });
        let chains = [Chain::new("/c", &object).expect("a chain")];
        // wrk waits before a request only when the script has `delay`.
        assert!(!script(&chains, 1, None).contains("function delay()"));
        let paced = script(&chains, 1, Some(2000.0));
        assert!(paced.contains("function delay()"));
        assert!(paced.contains("interval = 2000.000"));
    }

    #[test]
    fn lua_strings_escape_quotes_and_backslashes() {
        assert_eq!(lua_string(r#"{"a":"b\"c"}"#), r#""{\"a\":\"b\\\"c\"}""#);
        assert_eq!(lua_string("x\ny"), "\"x\\ny\"");
    }
}

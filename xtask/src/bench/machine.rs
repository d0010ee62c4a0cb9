//! What the bench reads about the machine and its processes from `/proc`:
//! CPU time, resident memory, load, and the other processes' share of the
//! CPU while a measurement ran (the machine is shared, so every number
//! says how busy it was).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// Clock ticks per second of `/proc` times (USER_HZ, 100 on Linux).
fn ticks_per_second() -> f64 {
    // SAFETY: sysconf only reads a constant of the system.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

/// CPU seconds (user and system, all threads) a live process has used.
pub fn cpu_seconds(pid: u32) -> Result<f64> {
    stat_cpu_seconds(Path::new(&format!("/proc/{pid}/stat")))
}

/// The user and system CPU seconds of a `/proc/…/stat` file.
fn stat_cpu_seconds(path: &Path) -> Result<f64> {
    let stat = std::fs::read_to_string(path)?;
    // The command name (field 2) is in parentheses and may hold spaces.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("no ')' in /proc/PID/stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of the line; `rest` starts at field 3.
    let utime: f64 = fields.get(11).context("no utime")?.parse()?;
    let stime: f64 = fields.get(12).context("no stime")?.parse()?;
    Ok((utime + stime) / ticks_per_second())
}

/// CPU seconds of each thread of a live process, summed by thread name
/// (`tokio-rt-worker`, …; threads without a name of their own carry the
/// program's).
pub fn thread_cpu_seconds(pid: u32) -> Result<HashMap<String, f64>> {
    let mut by_name = HashMap::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let task = task?.path();
        let (Ok(name), Ok(seconds)) = (
            std::fs::read_to_string(task.join("comm")),
            stat_cpu_seconds(&task.join("stat")),
        ) else {
            // The thread ended meanwhile.
            continue;
        };
        *by_name.entry(name.trim().to_string()).or_default() += seconds;
    }
    Ok(by_name)
}

/// Resident memory of a process, in KiB.
pub fn resident_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("no VmRSS")
}

/// The machine's CPU seconds so far: busy and total, over all cores.
#[derive(Clone, Copy, Debug)]
pub struct MachineCpu {
    busy: f64,
    total: f64,
}

impl MachineCpu {
    pub fn now() -> Result<Self> {
        let stat = std::fs::read_to_string("/proc/stat")?;
        let line = stat.lines().next().context("empty /proc/stat")?;
        let values: Vec<f64> = line
            .split_whitespace()
            .skip(1)
            .filter_map(|v| v.parse().ok())
            .collect();
        if values.len() < 8 {
            bail!("unexpected /proc/stat: {line}");
        }
        // user nice system idle iowait irq softirq steal (guest is in user).
        let idle = values[3] + values[4];
        let total: f64 = values[..8].iter().sum();
        let ticks = ticks_per_second();
        Ok(MachineCpu {
            busy: (total - idle) / ticks,
            total: total / ticks,
        })
    }

    /// Busy CPU seconds since `earlier`.
    pub fn busy_since(&self, earlier: &MachineCpu) -> f64 {
        self.busy - earlier.busy
    }

    /// CPU seconds of all cores (busy or idle) since `earlier`.
    pub fn total_since(&self, earlier: &MachineCpu) -> f64 {
        self.total - earlier.total
    }
}

/// `/proc/loadavg`'s first three numbers.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "?".to_string())
}

/// The CPU model and the number of cores.
pub fn cpu_description() -> String {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown CPU".to_string());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cores} cores, {model}")
}

/// Raises this process's soft limit on open files to its hard limit (the
/// watch fan-out holds one connection per watcher).
pub fn raise_open_file_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit write and read only `limit`.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 0;
        }
        if limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
    limit.rlim_cur
}

/// A child process that has exited, with the CPU it used.
pub struct Finished {
    pub success: bool,
    pub cpu_seconds: f64,
}

/// Waits for the child `pid` (spawned by this process and not yet waited
/// for) and returns its exit status and CPU time, from `wait4`.
pub fn wait_with_usage(pid: u32) -> Result<Finished> {
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value to be overwritten.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 writes only `status` and `usage`.
    let waited = unsafe { libc::wait4(pid as libc::pid_t, &mut status, 0, &mut usage) };
    if waited < 0 {
        bail!("wait4({pid}): {}", std::io::Error::last_os_error());
    }
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Ok(Finished {
        success: libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        cpu_seconds: seconds(usage.ru_utime) + seconds(usage.ru_stime),
    })
}

/// A directory under the system's temporary directory, removed when
/// dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(what: &str) -> Result<Self> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let path =
            std::env::temp_dir().join(format!("mxjob-bench-{what}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path)?;
        Ok(TempDir(path))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A process killed (and waited for) when dropped.
pub struct Killed(pub std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

//! `mxjob-server` as a separate process on a loopback port, for the tools
//! that test it from outside (schemathesis, a browser) and for the bench
//! (which also runs other servers this way, and mxjob-server under
//! valgrind: [`LocalServer::start_program`]).
//!
//! The binary is built with the `cargo` that runs the xtask, so
//! `CARGO_TARGET_DIR` and any other target-dir setting apply; its path comes
//! from cargo's own build report rather than from a guess about the target
//! directory. The port is one the kernel hands out for `127.0.0.1:0`, given
//! back before the server binds it (a short race nothing else on a build
//! machine runs into). The server is ready when `GET /version` answers 200.
//! Dropping a [`LocalServer`] stops it: SIGTERM, then SIGKILL if it has not
//! exited within a few seconds.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::workspace;

/// How long a server may take to answer its first request.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a server may take to stop after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Builds `mxjob-server` and returns the path of the binary.
pub fn build() -> Result<PathBuf> {
    let built = build_binaries(&["--package", "mxjob-server", "--bin", "mxjob-server"])?;
    executable(&built, "mxjob-server")
}

/// Runs `cargo build` with `args` and returns the executables it reports,
/// as (target name, path).
pub fn build_binaries(args: &[&str]) -> Result<Vec<(String, PathBuf)>> {
    let output = Command::new(env!("CARGO"))
        .arg("build")
        .args(args)
        .arg("--message-format=json-render-diagnostics")
        .current_dir(workspace())
        .stderr(Stdio::inherit())
        .output()
        .context("running cargo build")?;
    if !output.status.success() {
        bail!(
            "cargo build {} failed with {}",
            args.join(" "),
            output.status
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|message| message["reason"] == "compiler-artifact")
        .filter_map(|message| {
            let name = message["target"]["name"].as_str()?.to_string();
            let path = message["executable"].as_str()?;
            Some((name, PathBuf::from(path)))
        })
        .collect())
}

/// The executable of target `name` among what [`build_binaries`] reported.
pub fn executable(built: &[(String, PathBuf)], name: &str) -> Result<PathBuf> {
    built
        .iter()
        .find(|(target, _)| target == name)
        .map(|(_, path)| path.clone())
        .with_context(|| format!("cargo build reported no {name} executable"))
}

/// When a started server counts as ready.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ready {
    /// `GET /version` answers 200 (mxjob-server).
    Version,
    /// Anything answers HTTP (a server without `/version`).
    Answers,
}

/// A running `mxjob-server` (or another HTTP server).
pub struct LocalServer {
    child: Child,
    name: String,
    ready: Ready,
    address: SocketAddr,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// Where its output goes.
    pub log: PathBuf,
}

impl LocalServer {
    /// Starts `binary` on a free loopback port with `args` (besides
    /// `--listen`), its output in `log`, and waits until it answers.
    pub fn start<S: AsRef<OsStr>>(binary: &Path, args: &[S], log: &Path) -> Result<Self> {
        let address = free_loopback_address()?;
        let mut all: Vec<&OsStr> = vec![OsStr::new("--listen")];
        let listen = address.to_string();
        all.push(OsStr::new(&listen));
        all.extend(args.iter().map(AsRef::as_ref));
        Self::start_program(binary, &all, address, log, Ready::Version, READY_TIMEOUT)
    }

    /// Starts `program` with exactly `args`, which must make it listen on
    /// `address` (see [`free_loopback_address`]), its output in `log`, and
    /// waits up to `timeout` until it is `ready`.
    pub fn start_program<S: AsRef<OsStr>>(
        program: &Path,
        args: &[S],
        address: SocketAddr,
        log: &Path,
        ready: Ready,
        timeout: Duration,
    ) -> Result<Self> {
        let output = File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(output.try_clone()?)
            .stderr(output)
            .spawn()
            .with_context(|| format!("starting {}", program.display()))?;
        let name = program
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        let mut server = LocalServer {
            child,
            name,
            ready,
            address,
            url: format!("http://{address}"),
            log: log.to_path_buf(),
        };
        server.wait_until_ready(timeout)?;
        println!("{} at {} (log: {})", server.name, server.url, log.display());
        Ok(server)
    }

    fn wait_until_ready(&mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let (path, what) = match self.ready {
            Ready::Version => ("/version", "answer GET /version"),
            Ready::Answers => ("/", "answer HTTP"),
        };
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "{} exited with {status} before answering; its log:\n{}",
                    self.name,
                    self.log_text()
                );
            }
            let answer = self.get(path);
            let ready = match self.ready {
                Ready::Version => answer.is_ok_and(|(code, _)| code == 200),
                Ready::Answers => answer.is_ok(),
            };
            if ready {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "{} did not {what} within {timeout:?}; its log:\n{}",
                    self.name,
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The address it listens on.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Stops it as dropping it does, and waits up to `timeout` for it to
    /// exit after SIGTERM (a program under valgrind writes its profile
    /// then).
    pub fn stop(mut self, timeout: Duration) {
        self.terminate(timeout);
    }

    /// `GET path` over a fresh connection: the status code and the body.
    pub fn get(&self, path: &str) -> Result<(u16, Vec<u8>)> {
        let mut stream = TcpStream::connect_timeout(&self.address, Duration::from_secs(5))?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        write!(
            stream,
            "GET {path} HTTP/1.0\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.address
        )?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response)?;
        let head_end = response
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .context("the response has no end of headers")?;
        let head = String::from_utf8_lossy(&response[..head_end]);
        let code = head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .context("the response has no status code")?;
        Ok((code, response[head_end + 4..].to_vec()))
    }

    /// The server's output so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl LocalServer {
    fn terminate(&mut self, timeout: Duration) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let terminated = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .is_ok_and(|s| s.success());
        if terminated {
            let deadline = Instant::now() + timeout;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        self.terminate(STOP_TIMEOUT);
    }
}

/// A loopback address with a port nothing listens on (the benchmark's
/// servers take theirs here too).
pub fn free_loopback_address() -> Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0")?;
    Ok(listener.local_addr()?)
}

//! `mxjob-server` as a separate process on a loopback port, for the tools
//! that test it from outside (schemathesis, a browser).
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
    let output = Command::new(env!("CARGO"))
        .args([
            "build",
            "--package",
            "mxjob-server",
            "--bin",
            "mxjob-server",
            "--message-format=json-render-diagnostics",
        ])
        .current_dir(workspace())
        .stderr(Stdio::inherit())
        .output()
        .context("running cargo build")?;
    if !output.status.success() {
        bail!("cargo build -p mxjob-server failed with {}", output.status);
    }
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|message| message["reason"] == "compiler-artifact")
        .filter(|message| message["target"]["name"] == "mxjob-server")
        .find_map(|message| message["executable"].as_str().map(PathBuf::from))
        .context("cargo build reported no mxjob-server executable")
}

/// A running `mxjob-server`.
pub struct LocalServer {
    child: Child,
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
        let output = File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let child = Command::new(binary)
            .arg("--listen")
            .arg(address.to_string())
            .args(args)
            .stdin(Stdio::null())
            .stdout(output.try_clone()?)
            .stderr(output)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let mut server = LocalServer {
            child,
            address,
            url: format!("http://{address}"),
            log: log.to_path_buf(),
        };
        server.wait_until_ready()?;
        println!("mxjob-server at {} (log: {})", server.url, log.display());
        Ok(server)
    }

    fn wait_until_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "mxjob-server exited with {status} before answering; its log:\n{}",
                    self.log_text()
                );
            }
            if self.get("/version").is_ok_and(|(code, _)| code == 200) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "mxjob-server did not answer GET /version within {READY_TIMEOUT:?}; its log:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
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

impl Drop for LocalServer {
    fn drop(&mut self) {
        let terminated = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .is_ok_and(|s| s.success());
        if terminated {
            let deadline = Instant::now() + STOP_TIMEOUT;
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

/// A loopback address with a port nothing listens on (the benchmark's
/// servers take theirs here too).
pub fn free_loopback_address() -> Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0")?;
    Ok(listener.local_addr()?)
}

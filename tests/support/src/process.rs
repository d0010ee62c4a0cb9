//! `mxjob-server` as a child process, for the tests that need the real
//! binary: a crash, a full disk, HTTP/2 floods, several replicas.
//!
//! [`ServerCommand`] says how to run it; [`ServerCommand::start`] runs it
//! with `--listen 127.0.0.1:PORT` on a [`free_port`] and waits until a
//! `GET` of the ready path answers 2xx. A port taken between choosing and
//! binding it shows as an early exit, and then it tries another (three
//! times in all). A [`ServerProcess`] is killed with SIGKILL — no shutdown
//! code runs — and reaped when dropped or [`kill`](ServerProcess::kill)ed.
//!
//! The server's stderr is appended to a log file the test names, which
//! every failure here quotes. With [`ServerCommand::log_through_pipe`] it
//! goes through a pipe and a thread of the test process instead, for a
//! server whose own file writes are limited.

use std::ffi::OsString;
use std::fs::File;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::free_port;

/// How long the server may take to answer its first request.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one readiness probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);
/// Ports tried before giving up.
const ATTEMPTS: usize = 3;

/// Changes the command before each spawn (such as limits set between fork
/// and exec).
type Configure = Box<dyn Fn(&mut Command) + Send + Sync>;

/// How to run the server.
pub struct ServerCommand {
    binary: PathBuf,
    args: Vec<OsString>,
    log: PathBuf,
    ready_path: String,
    pipe_log: bool,
    configure: Option<Configure>,
}

impl ServerCommand {
    /// Runs `binary` with its stderr appended to `log`; ready when
    /// `GET /version` answers.
    pub fn new(binary: impl Into<PathBuf>, log: impl Into<PathBuf>) -> Self {
        ServerCommand {
            binary: binary.into(),
            args: Vec::new(),
            log: log.into(),
            ready_path: "/version".to_string(),
            pipe_log: false,
            configure: None,
        }
    }

    /// Adds arguments (besides `--listen`, which [`start`](Self::start)
    /// adds).
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// The path whose `GET` must answer 2xx before the server counts as up
    /// (one that reads the store, to know that the store answers too).
    pub fn ready_path(mut self, path: impl Into<String>) -> Self {
        self.ready_path = path.into();
        self
    }

    /// Copies the server's stderr to the log from this process, so that a
    /// limit on the files the server may write does not reach its log.
    pub fn log_through_pipe(mut self) -> Self {
        self.pipe_log = true;
        self
    }

    /// Calls `configure` on the command before each spawn.
    pub fn configure(mut self, configure: impl Fn(&mut Command) + Send + Sync + 'static) -> Self {
        self.configure = Some(Box::new(configure));
        self
    }

    /// Starts the server on a free loopback port and waits until it
    /// answers; panics with its log when it does not.
    pub async fn start(&self) -> ServerProcess {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .timeout(PROBE_TIMEOUT)
            .build()
            .expect("HTTP client");
        for _attempt in 0..ATTEMPTS {
            let mut server = self.spawn(free_port());
            let probe = server.url_for(&self.ready_path);
            let deadline = Instant::now() + STARTUP_TIMEOUT;
            while Instant::now() < deadline {
                if server.exit_status().is_some() {
                    break;
                }
                let answer = http.get(&probe).send().await;
                if answer.is_ok_and(|response| response.status().is_success()) {
                    return server;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            server.kill();
        }
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        panic!("{} did not come up; its log:\n{log}", self.binary.display());
    }

    fn spawn(&self, port: u16) -> ServerProcess {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("server log file");
        let mut command = Command::new(&self.binary);
        command
            .arg("--listen")
            .arg(addr.to_string())
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        if self.pipe_log {
            command.stderr(Stdio::piped());
        } else {
            command.stderr(log.try_clone().expect("server log file"));
        }
        if let Some(configure) = &self.configure {
            configure(&mut command);
        }
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", self.binary.display()));
        let log_copier = child.stderr.take().map(|stderr| copy_log(stderr, log));
        ServerProcess {
            child,
            addr,
            url: format!("http://{addr}"),
            log: self.log.clone(),
            log_copier,
        }
    }
}

/// Copies `from` to `to` on a thread until `from` ends.
fn copy_log(mut from: impl Read + Send + 'static, mut to: File) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buffer = [0u8; 8192];
        while let Ok(n) = from.read(&mut buffer) {
            if n == 0 {
                break;
            }
            let _ = to.write_all(&buffer[..n]);
        }
    })
}

/// A running server; killed (SIGKILL) and reaped when dropped.
pub struct ServerProcess {
    child: Child,
    addr: SocketAddr,
    url: String,
    log: PathBuf,
    log_copier: Option<std::thread::JoinHandle<()>>,
}

impl ServerProcess {
    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// `path` on the server: `http://127.0.0.1:PORT{path}`.
    pub fn url_for(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The log file.
    pub fn log(&self) -> &Path {
        &self.log
    }

    /// The server's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// How the process exited, if it has.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Fails the test, quoting the log, if the process has exited; `when`
    /// says at what point of the test.
    pub fn assert_alive(&mut self, when: &str) {
        if let Some(status) = self.child.try_wait().expect("the server's state") {
            panic!(
                "{when}: the server exited ({status}); its log:\n{}",
                self.log_text()
            );
        }
    }

    /// Kills the process with SIGKILL (`Child::kill` on Unix: no shutdown
    /// code runs) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(copier) = self.log_copier.take() {
            let _ = copier.join();
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

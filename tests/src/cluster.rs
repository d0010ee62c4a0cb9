//! A throwaway Kubernetes API for a test: upstream `kube-apiserver` over
//! Debian's `etcd`, both on free loopback ports with their files in a fresh
//! temporary directory, and both killed (with their process groups) when
//! the [`Cluster`] is dropped.
//!
//! ```no_run
//! # async fn example() {
//! let cluster = mxjob_tests::cluster::Cluster::start().await;
//! let pods = cluster
//!     .kubectl(mxjob_tests::cluster::ADMIN_CONTEXT)
//!     .args(["get", "pods", "-A"])
//!     .output()
//!     .await;
//! # }
//! ```
//!
//! What runs is only the API: no controller manager, no scheduler, no
//! kubelet. Nothing schedules or runs a Pod, no ServiceAccount `default`
//! is created in a new namespace, and a Deployment makes no ReplicaSet. A
//! test plays the missing parts itself, for instance writing a Pod's status
//! through `pods/status` as a kubelet would. Because no controller creates
//! the `default` ServiceAccount, the `ServiceAccount` admission plugin is
//! off (it would refuse every Pod of a new namespace); every other default
//! admission plugin is on.
//!
//! Security is as in a real cluster: TLS with a certificate made for the
//! test (a CA of its own, which the kubeconfig trusts), bearer tokens from
//! a static token file, and RBAC authorization. There are two users:
//! `admin`, in the group `system:masters`, and [`LIMITED_USER`], in no group
//! but `system:authenticated`, who may do nothing until a test binds a role
//! to it. The kubeconfig at [`Cluster::kubeconfig`] has a context for each
//! ([`ADMIN_CONTEXT`], the current one, and [`LIMITED_CONTEXT`]). It is an
//! ordinary kubeconfig (JSON, the CA inline): the tests read it with
//! kubectl (client-go) and the Python client, and the harness itself checks
//! the server's certificate with rustls, the TLS of kube-rs.
//!
//! The binaries: `target/acceptance/bin/kube-apiserver`, which `cargo xtask
//! tools` builds from the Go module proxy, and `/usr/bin/etcd`
//! (`MXJOB_TEST_ETCD` overrides), which it installs. A missing one fails the
//! test with that command: these tests never pass by skipping.
//!
//! Both processes are started with a parent-death signal, so they die with
//! the test process even when it is killed without running destructors
//! (the signal follows the thread that started them: start a cluster on a
//! thread that outlives it, such as a test's own thread).

use std::ffi::OsString;
use std::fs::File;
use std::io::Read;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustix::process::{Pid, Signal};
use serde_json::json;

/// The context of the administrator (group `system:masters`), the
/// kubeconfig's current context.
pub const ADMIN_CONTEXT: &str = "admin";
/// The context of [`LIMITED_USER`].
pub const LIMITED_CONTEXT: &str = "limited";
/// A user with no rights but those RBAC gives every authenticated user.
pub const LIMITED_USER: &str = "limited-user";
/// The administrator's user name.
pub const ADMIN_USER: &str = "admin";
/// The range Services' cluster IPs are allocated from (bookkeeping only:
/// nothing routes to it).
pub const SERVICE_CLUSTER_IP_RANGE: &str = "10.96.0.0/16";

/// Where Debian's etcd-server puts etcd.
const ETCD: &str = "/usr/bin/etcd";
/// How long etcd may take to answer its health check.
const ETCD_TIMEOUT: Duration = Duration::from_secs(60);
/// How long kube-apiserver may take to be ready: it runs its bootstrap
/// (RBAC roles, priority levels, the `kubernetes` Service) before `/readyz`
/// says ok, and on two busy cores that can take a while.
const APISERVER_TIMEOUT: Duration = Duration::from_secs(240);
/// How often a start is tried with fresh ports, when a process exits early
/// (a port chosen was taken in between, say).
const ATTEMPTS: usize = 3;

/// A running API server and its etcd. Dropping it kills both.
pub struct Cluster {
    /// `https://127.0.0.1:PORT`.
    pub url: String,
    /// A kubeconfig file with both users' contexts.
    pub kubeconfig: PathBuf,
    /// The PEM of the CA that signed the serving certificate.
    pub ca_pem: String,
    /// The administrator's bearer token.
    pub admin_token: String,
    /// [`LIMITED_USER`]'s bearer token.
    pub limited_token: String,
    /// etcd's client URL, `http://127.0.0.1:PORT`.
    pub etcd_url: String,
    apiserver: Process,
    etcd: Process,
    dir: tempfile::TempDir,
}

/// A child in a process group of its own, killed with the group on drop.
struct Process {
    child: Child,
    log: PathBuf,
}

impl Process {
    fn spawn(program: &Path, args: &[OsString], log: PathBuf) -> Process {
        let file = File::create(&log).expect("log file");
        let mut command = Command::new(program);
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log file"))
            .stderr(file)
            .process_group(0);
        // SAFETY: the closure only makes one system call, which is
        // async-signal-safe, and touches no memory of the parent.
        unsafe {
            command.pre_exec(|| {
                rustix::process::set_parent_process_death_signal(Some(Signal::KILL))
                    .map_err(std::io::Error::from)
            });
        }
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", program.display()));
        Process { child, log }
    }

    fn exited(&mut self) -> bool {
        self.child.try_wait().ok().flatten().is_some()
    }

    /// The last lines of the log.
    fn log_tail(&self) -> String {
        let mut text = String::new();
        let _ = File::open(&self.log).and_then(|mut f| f.read_to_string(&mut text));
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let pid = Pid::from_child(&self.child);
        let _ = rustix::process::kill_process_group(pid, Signal::KILL);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The kube-apiserver that `cargo xtask tools` built.
fn apiserver_binary() -> PathBuf {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/acceptance/bin/kube-apiserver");
    assert!(
        path.exists(),
        "{} is missing: run `cargo xtask tools` (it builds kube-apiserver from the Go module proxy)",
        path.display()
    );
    path
}

/// Debian's etcd, or `MXJOB_TEST_ETCD`.
fn etcd_binary() -> PathBuf {
    let path = std::env::var_os("MXJOB_TEST_ETCD")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(ETCD));
    assert!(
        path.exists(),
        "{} is missing: run `cargo xtask tools` (it installs Debian's etcd-server) \
         or point MXJOB_TEST_ETCD at an etcd binary",
        path.display()
    );
    path
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free loopback port")
}

/// A random token: 32 hex digits from the kernel's generator.
fn token() -> String {
    let mut bytes = [0u8; 16];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .expect("random bytes");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The files the API server is started with.
struct Credentials {
    ca_pem: String,
    admin_token: String,
    limited_token: String,
}

/// Writes the CA, the serving certificate and key, the service-account
/// key pair and the token file into `dir`.
fn write_credentials(dir: &Path) -> Credentials {
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "mxjob test cluster CA");
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca.self_signed(&ca_key).expect("CA certificate");
    let issuer = Issuer::new(ca, &ca_key);

    let serving_key = KeyPair::generate().expect("serving key");
    let mut serving = CertificateParams::new(vec![
        "127.0.0.1".to_string(),
        "localhost".to_string(),
        "kubernetes".to_string(),
        "kubernetes.default".to_string(),
        "kubernetes.default.svc".to_string(),
    ])
    .expect("serving parameters");
    serving
        .distinguished_name
        .push(DnType::CommonName, "kube-apiserver");
    serving.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    serving.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let serving_cert = serving
        .signed_by(&serving_key, &issuer)
        .expect("serving certificate");

    // Service-account tokens are signed with this key and checked with its
    // public half; kube-apiserver does not start without both.
    let account_key = KeyPair::generate().expect("service-account key");

    let admin_token = token();
    let limited_token = token();
    let files = [
        ("ca.crt", ca_cert.pem()),
        ("serving.crt", serving_cert.pem()),
        ("serving.key", serving_key.serialize_pem()),
        ("service-account.key", account_key.serialize_pem()),
        ("service-account.pub", account_key.public_key_pem()),
        (
            // token,user,uid,"groups"
            "tokens.csv",
            format!(
                "{admin_token},{ADMIN_USER},uid-admin,\"system:masters\"\n\
                 {limited_token},{LIMITED_USER},uid-limited\n"
            ),
        ),
    ];
    for (name, text) in files {
        std::fs::write(dir.join(name), text).unwrap_or_else(|e| panic!("writing {name}: {e}"));
    }
    Credentials {
        ca_pem: ca_cert.pem(),
        admin_token,
        limited_token,
    }
}

/// The kubeconfig, as JSON (which is YAML to every reader of kubeconfigs).
fn kubeconfig_json(url: &str, credentials: &Credentials) -> serde_json::Value {
    let ca = base64::engine::general_purpose::STANDARD.encode(&credentials.ca_pem);
    json!({
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [{
            "name": "mxjob-test",
            "cluster": { "server": url, "certificate-authority-data": ca }
        }],
        "users": [
            { "name": ADMIN_USER, "user": { "token": credentials.admin_token } },
            { "name": LIMITED_USER, "user": { "token": credentials.limited_token } }
        ],
        "contexts": [
            {
                "name": ADMIN_CONTEXT,
                "context": { "cluster": "mxjob-test", "user": ADMIN_USER, "namespace": "default" }
            },
            {
                "name": LIMITED_CONTEXT,
                "context": { "cluster": "mxjob-test", "user": LIMITED_USER, "namespace": "default" }
            }
        ],
        "current-context": ADMIN_CONTEXT
    })
}

impl Cluster {
    /// Starts etcd and kube-apiserver and waits until `/readyz` says ok.
    /// Panics, with the end of the failing process's log, when it cannot.
    pub async fn start() -> Cluster {
        let apiserver_binary = apiserver_binary();
        let etcd_binary = etcd_binary();
        let dir = tempfile::Builder::new()
            .prefix("mxjob-cluster-")
            .tempdir()
            .expect("temporary directory");
        let credentials = write_credentials(dir.path());
        let http = client_trusting(&credentials.ca_pem, Some(Duration::from_secs(10)));
        let mut failures = Vec::new();
        for attempt in 0..ATTEMPTS {
            let etcd_url = format!("http://127.0.0.1:{}", free_port());
            let peer_url = format!("http://127.0.0.1:{}", free_port());
            let mut etcd = Process::spawn(
                &etcd_binary,
                &args(&[
                    "--name=test",
                    &format!(
                        "--data-dir={}",
                        dir.path().join(format!("etcd-{attempt}")).display()
                    ),
                    &format!("--listen-client-urls={etcd_url}"),
                    &format!("--advertise-client-urls={etcd_url}"),
                    &format!("--listen-peer-urls={peer_url}"),
                    &format!("--initial-advertise-peer-urls={peer_url}"),
                    &format!("--initial-cluster=test={peer_url}"),
                    "--logger=zap",
                    "--log-level=warn",
                ]),
                dir.path().join(format!("etcd-{attempt}.log")),
            );
            if !wait_until(&mut etcd, ETCD_TIMEOUT, || etcd_healthy(&http, &etcd_url)).await {
                failures.push(format!("etcd (attempt {attempt}):\n{}", etcd.log_tail()));
                continue;
            }

            let port = free_port();
            let url = format!("https://127.0.0.1:{port}");
            let file = |name: &str| dir.path().join(name).display().to_string();
            let mut apiserver = Process::spawn(
                &apiserver_binary,
                &args(&[
                    &format!("--etcd-servers={etcd_url}"),
                    "--bind-address=127.0.0.1",
                    "--advertise-address=127.0.0.1",
                    // The endpoint reconciler refuses a loopback address;
                    // with no pods to reach it from, none is needed.
                    "--endpoint-reconciler-type=none",
                    &format!("--secure-port={port}"),
                    &format!("--cert-dir={}", file("certs")),
                    &format!("--tls-cert-file={}", file("serving.crt")),
                    &format!("--tls-private-key-file={}", file("serving.key")),
                    &format!("--token-auth-file={}", file("tokens.csv")),
                    "--authorization-mode=RBAC",
                    "--service-account-issuer=https://kubernetes.default.svc",
                    &format!("--service-account-key-file={}", file("service-account.pub")),
                    &format!(
                        "--service-account-signing-key-file={}",
                        file("service-account.key")
                    ),
                    &format!("--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}"),
                    "--allow-privileged=true",
                    "--disable-admission-plugins=ServiceAccount",
                ]),
                dir.path().join(format!("kube-apiserver-{attempt}.log")),
            );
            let token = credentials.admin_token.clone();
            let ready = wait_until(&mut apiserver, APISERVER_TIMEOUT, || {
                apiserver_ready(&http, &url, &token)
            })
            .await;
            if !ready {
                failures.push(format!(
                    "kube-apiserver (attempt {attempt}):\n{}",
                    apiserver.log_tail()
                ));
                if !apiserver.exited() {
                    // It neither died nor became ready: fresh ports would not
                    // help.
                    break;
                }
                continue;
            }

            let kubeconfig = dir.path().join("kubeconfig");
            let text = serde_json::to_string_pretty(&kubeconfig_json(&url, &credentials))
                .expect("kubeconfig serializes");
            std::fs::write(&kubeconfig, text).expect("writing the kubeconfig");
            return Cluster {
                url,
                kubeconfig,
                ca_pem: credentials.ca_pem,
                admin_token: credentials.admin_token,
                limited_token: credentials.limited_token,
                etcd_url,
                apiserver,
                etcd,
                dir,
            };
        }
        panic!("the test cluster did not start:\n{}", failures.join("\n\n"));
    }

    /// An HTTP client that trusts the cluster's CA (send a token with
    /// `bearer_auth`). Its requests have no overall timeout, so a watch
    /// may last.
    pub fn http(&self) -> reqwest::Client {
        client_trusting(&self.ca_pem, None)
    }

    /// `kubectl` 1.37 (installed by `cargo xtask tools`) with the cluster's
    /// kubeconfig, in `context`, with a discovery cache of the cluster's
    /// own.
    pub fn kubectl(&self, context: &str) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(crate::acceptance_tool("venv/bin/kubectl"));
        command
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--context")
            .arg(context)
            .arg("--cache-dir")
            .arg(self.dir.path().join("kube-cache"))
            .stdin(Stdio::null())
            .kill_on_drop(true);
        command
    }

    /// The directory that holds the cluster's files (credentials, logs,
    /// etcd's data, the kubeconfig); removed on drop.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The end of kube-apiserver's log, for a failing test's message.
    pub fn apiserver_log(&self) -> String {
        self.apiserver.log_tail()
    }

    /// The end of etcd's log.
    pub fn etcd_log(&self) -> String {
        self.etcd.log_tail()
    }
}

fn args(list: &[&str]) -> Vec<OsString> {
    list.iter().map(OsString::from).collect()
}

/// A client that trusts the CA; with `timeout`, every request is cut off
/// after it (the readiness checks), without one it may last (watches).
fn client_trusting(ca_pem: &str, timeout: Option<Duration>) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(ca_pem.as_bytes()).expect("the CA is PEM");
    let mut builder = reqwest::Client::builder()
        .add_root_certificate(ca)
        .connect_timeout(Duration::from_secs(10));
    if let Some(timeout) = timeout {
        builder = builder.timeout(timeout);
    }
    builder.build().expect("an HTTP client")
}

/// Polls `check` until it says yes (true), the process exits or the time
/// is up (false).
async fn wait_until<F, Fut>(process: &mut Process, timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if process.exited() {
            return false;
        }
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

async fn etcd_healthy(http: &reqwest::Client, url: &str) -> bool {
    match http.get(format!("{url}/health")).send().await {
        Ok(response) => response
            .json::<serde_json::Value>()
            .await
            .is_ok_and(|v| v["health"] == "true"),
        Err(_) => false,
    }
}

async fn apiserver_ready(http: &reqwest::Client, url: &str, token: &str) -> bool {
    match http
        .get(format!("{url}/readyz"))
        .bearer_auth(token)
        .send()
        .await
    {
        Ok(response) => {
            response.status().is_success()
                && response.text().await.is_ok_and(|body| body.trim() == "ok")
        }
        Err(_) => false,
    }
}

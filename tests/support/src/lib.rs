//! What the tests of several packages share, and nothing that depends on
//! `mxjob-server`: the server's own integration tests use this crate as a
//! dev-dependency, which a dependency on the server would make a cycle.
//!
//! * [`free_port`] and [`http_client`];
//! * [`etcd::Etcd`], a throwaway single-member etcd (Debian's);
//! * [`process::ServerCommand`] and [`process::ServerProcess`],
//!   `mxjob-server` as a child process on a free loopback port, killed when
//!   dropped (the server's tests get the binary's path from Cargo,
//!   `CARGO_BIN_EXE_mxjob-server`, and pass it in);
//! * the seed job ([`seed_value`], [`new_job_value`]).
//!
//! Everything here panics on failure, as test code does, with a message
//! that says what to fix. `xtask` does not use it: its `local_server`
//! builds the binary, returns errors instead of panicking, runs without an
//! async runtime and stops the server with SIGTERM, so what the two could
//! share is a port number.

pub mod etcd;
pub mod process;

use std::net::TcpListener;
use std::time::Duration;

use serde_json::Value;

/// A loopback port nothing listens on now: the kernel's choice for
/// `127.0.0.1:0`, given back at once. Something else may take it before
/// the caller binds it; the launchers here retry on another port when
/// their process exits early.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free loopback port")
}

/// An HTTP client whose requests fail after `timeout`.
pub fn http_client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .expect("HTTP client")
}

/// The seed, CCI's example body for "Replace MXJob", as JSON.
pub fn seed_value() -> Value {
    serde_json::from_str(mxjob_api::openapi::REPLACE_EXAMPLE).expect("the seed is JSON")
}

/// A valid job named `name` in `namespace`, made from the seed without the
/// server-owned metadata and status a client would not send on create.
pub fn new_job_value(namespace: &str, name: &str) -> Value {
    let mut job = seed_value();
    job["metadata"] = serde_json::json!({ "name": name, "namespace": namespace });
    if let Some(object) = job.as_object_mut() {
        object.remove("status");
    }
    job
}

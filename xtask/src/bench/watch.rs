//! Watch fan-out: many watchers of one namespace, one replace at a time,
//! and how long after the replace was acknowledged each watcher read its
//! event.
//!
//! Each watcher is a task with its own connection that sends a raw
//! HTTP/1.1 `GET …/mxjobs?watch=true&resourceVersion=RV` and reads the
//! chunked answer without decoding it: every line of the stream is one
//! event, and the task notes when it read the first line naming each
//! `resourceVersion`. A round replaces the watched object once (through
//! another connection) and waits until every watcher has read the event of
//! the new resourceVersion; a delay is the time from reading the replace's
//! whole answer to a watcher reading the event (negative when the event came
//! first).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::api::{collection, Api};

/// The delays of every round.
pub struct FanOut {
    pub watchers: usize,
    pub rounds: usize,
    /// Milliseconds, one per watcher and round.
    pub delays_ms: Vec<f64>,
}

impl FanOut {
    pub fn percentile(&self, p: f64) -> f64 {
        let mut sorted = self.delays_ms.clone();
        sorted.sort_by(f64::total_cmp);
        if sorted.is_empty() {
            return 0.0;
        }
        let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
        sorted[index.min(sorted.len() - 1)]
    }

    pub fn before_acknowledgement(&self) -> usize {
        self.delays_ms.iter().filter(|d| **d < 0.0).count()
    }
}

/// `"resourceVersion":"`
const MARK: &[u8] = b"\"resourceVersion\":\"";

/// Every resourceVersion a chunk of complete lines names. The search is
/// memchr's: the bench runs unoptimized (`cargo xtask`), and a byte-by-byte
/// search of every event, a thousand watchers at a time, delayed the
/// reading of the last watchers by tens of milliseconds.
fn resource_versions(lines: &[u8]) -> Vec<u64> {
    memchr::memmem::find_iter(lines, MARK)
        .filter_map(|at| {
            let rest = &lines[at + MARK.len()..];
            let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
            std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()
        })
        .collect()
}

/// One watcher: connects, reports when its watch is answered, then reports
/// each resourceVersion it reads, with when it read it.
async fn watcher(
    address: SocketAddr,
    path: String,
    ready: mpsc::UnboundedSender<Result<()>>,
    seen: mpsc::UnboundedSender<(u64, Instant)>,
) {
    let result = async {
        let mut stream = TcpStream::connect(address).await?;
        stream.set_nodelay(true)?;
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nAccept: application/json\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut buffer = Vec::with_capacity(16 * 1024);
        let mut chunk = vec![0u8; 64 * 1024];
        let head_end = loop {
            let read = stream.read(&mut chunk).await?;
            if read == 0 {
                bail!("the watch closed before its headers");
            }
            buffer.extend_from_slice(&chunk[..read]);
            if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
        };
        let head = String::from_utf8_lossy(&buffer[..head_end]).to_string();
        if !head.starts_with("HTTP/1.1 200") {
            bail!("the watch answered {}", head.lines().next().unwrap_or(""));
        }
        buffer.drain(..head_end);
        Ok::<_, anyhow::Error>((stream, buffer, chunk))
    }
    .await;
    let (mut stream, mut buffer, mut chunk) = match result {
        Ok(parts) => {
            let _ = ready.send(Ok(()));
            parts
        }
        Err(error) => {
            let _ = ready.send(Err(error));
            return;
        }
    };
    loop {
        // Lines end in '\n' (the events' own, and the chunk framing's):
        // only complete lines are searched.
        if let Some(last) = memchr::memrchr(b'\n', &buffer) {
            let now = Instant::now();
            for version in resource_versions(&buffer[..=last]) {
                if seen.send((version, now)).is_err() {
                    return;
                }
            }
            buffer.drain(..=last);
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(read) => buffer.extend_from_slice(&chunk[..read]),
        }
    }
}

/// Opens `watchers` watches of the namespace of `object` (an admitted job,
/// as last read), then replaces it `rounds` times.
pub async fn fan_out(
    address: SocketAddr,
    object: Value,
    watchers: usize,
    rounds: usize,
) -> Result<FanOut> {
    let api = Api::new(&format!("http://{address}"));
    let namespace = object["metadata"]["namespace"]
        .as_str()
        .context("no namespace")?
        .to_string();
    let version = object["metadata"]["resourceVersion"]
        .as_str()
        .context("no resourceVersion")?
        .to_string();
    let path = format!(
        "{}?watch=true&resourceVersion={version}",
        collection(&namespace)
    );
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel();
    let (seen_tx, mut seen_rx) = mpsc::unbounded_channel();
    let mut tasks = Vec::new();
    for _ in 0..watchers {
        tasks.push(tokio::spawn(watcher(
            address,
            path.clone(),
            ready_tx.clone(),
            seen_tx.clone(),
        )));
    }
    drop(seen_tx);
    let result = async {
        for _ in 0..watchers {
            let answered = tokio::time::timeout(Duration::from_secs(120), ready_rx.recv())
                .await
                .context("the watches were not all answered within two minutes")?;
            answered.context("a watcher stopped")??;
        }
        let mut delays_ms = Vec::with_capacity(watchers * rounds);
        let mut object = object;
        for _ in 0..rounds {
            tokio::time::sleep(Duration::from_millis(300)).await;
            // Anything read before this round is of earlier rounds.
            while seen_rx.try_recv().is_ok() {}
            let ttl = object["spec"]["ttlSecondsAfterFinished"]
                .as_i64()
                .unwrap_or(0);
            object["spec"]["ttlSecondsAfterFinished"] = Value::from(ttl + 1);
            let (written, acknowledged) = api.replace(&object).await?;
            let target: u64 = written["metadata"]["resourceVersion"]
                .as_str()
                .and_then(|v| v.parse().ok())
                .context("the replace answered no resourceVersion")?;
            let mut arrived = 0;
            let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
            while arrived < watchers {
                let (version, at) = tokio::time::timeout_at(deadline, seen_rx.recv())
                    .await
                    .context("not every watcher saw the replace within a minute")?
                    .context("the watchers stopped")?;
                if version == target {
                    arrived += 1;
                    let delay = if at >= acknowledged {
                        (at - acknowledged).as_secs_f64()
                    } else {
                        -(acknowledged - at).as_secs_f64()
                    };
                    delays_ms.push(delay * 1000.0);
                }
            }
            object = written;
        }
        Ok(FanOut {
            watchers,
            rounds,
            delays_ms,
        })
    }
    .await;
    for task in tasks {
        task.abort();
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_resource_version_of_the_lines_is_found() {
        let lines = b"1f5\r\n{\"type\":\"MODIFIED\",\"object\":{\"metadata\":{\"resourceVersion\":\"42\"}}}\n\r\n\
                      {\"object\":{\"metadata\":{\"resourceVersion\":\"43\"}}}\n";
        assert_eq!(resource_versions(lines), vec![42, 43]);
        assert!(resource_versions(b"{}\n").is_empty());
    }
}

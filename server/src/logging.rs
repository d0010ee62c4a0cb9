//! The server's log: each record becomes one line on the thread that logs
//! it, and one thread writes whatever lines are waiting with one
//! `write(2)`.
//!
//! slog-async and slog-term did this before, and under the replace
//! benchmark their log thread took an eighth of the server's CPU: half in
//! one `write(2)` per record, the rest in formatting records that had
//! first been copied into owned values to cross the queue. Here a record
//! is formatted where it is logged, into a buffer the thread keeps, and
//! the queue holds bytes: lines wait in one buffer, and the writer swaps
//! it for an empty one and writes it whole, at most once per [`GATHER`].
//!
//! When more than [`QUEUE_BYTES`] wait (whatever reads stderr lags), a
//! logging thread waits for room rather than dropping its line, as
//! kube-apiserver's audit log waits in its default `blocking` mode: an
//! audit line is never lost to a burst. Dropping the last logger writes
//! what is queued and stops the writer.
//!
//! Two formats: [`Format::Plain`], one line of `time LEVEL message, key:
//! value, …` (the layout slog-term used, with the time in UTC and RFC 3339
//! so that lines from servers in different zones sort together), and
//! [`Format::Bunyan`], bunyan's JSON object per line.

use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::io::Write;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use slog::{Drain, Key, Level, OwnedKVList, Record, KV};

/// Bytes of lines that may wait for the writer before loggers wait.
pub const QUEUE_BYTES: usize = 1 << 20;

/// How long the writer lets lines gather once one is waiting: a line
/// reaches stderr this much later, and under load the writer wakes and
/// writes at most once per interval. Waking it for each line cost more
/// than the writes saved (a futex wake per request in `perf`).
pub const GATHER: Duration = Duration::from_millis(5);

/// How records are written.
#[derive(Clone, Debug)]
pub enum Format {
    /// `2026-12-06T12:28:58.771Z INFO message, key: value, …`; the level
    /// in colour when `colour` (a terminal).
    Plain { colour: bool },
    /// Bunyan's fields (`msg`, `level`, `time`, `hostname`, `pid`, `name`,
    /// `v`) and the record's key-values, one JSON object per line.
    Bunyan { name: String, hostname: String },
}

impl Format {
    /// Bunyan JSON naming this host.
    pub fn bunyan(name: &str) -> Format {
        let hostname = rustix::system::uname()
            .nodename()
            .to_string_lossy()
            .into_owned();
        Format::Bunyan {
            name: name.to_string(),
            hostname,
        }
    }
}

/// A drain that formats each record into a line and queues it for the
/// writer thread.
pub struct Lines {
    format: Format,
    queue: Arc<Queue>,
    /// Only joined, when the drain is dropped.
    writer: AssertUnwindSafe<Option<JoinHandle<()>>>,
}

impl Lines {
    /// Starts the writer thread, which writes to `out`.
    pub fn new(format: Format, out: impl Write + Send + 'static) -> std::io::Result<Lines> {
        let queue = Arc::new(Queue::default());
        let writer = {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name("log".to_string())
                .spawn(move || queue.write_to(out))?
        };
        Ok(Lines {
            format,
            queue,
            writer: AssertUnwindSafe(Some(writer)),
        })
    }
}

impl Drain for Lines {
    type Ok = ();
    type Err = slog::Never;

    fn log(&self, record: &Record<'_>, values: &OwnedKVList) -> Result<(), slog::Never> {
        LINE.with(|line| match line.try_borrow_mut() {
            Ok(mut line) => {
                line.clear();
                self.format.line(record, values, &mut line);
                self.queue.push(&line);
            }
            // Only if formatting a value logged something itself.
            Err(_) => {
                let mut line = String::new();
                self.format.line(record, values, &mut line);
                self.queue.push(&line);
            }
        });
        Ok(())
    }
}

impl Drop for Lines {
    fn drop(&mut self) {
        self.queue.close();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

thread_local! {
    /// Each thread's line being formatted, kept for its next record.
    static LINE: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Lines waiting for the writer.
#[derive(Default)]
struct Queue {
    state: Mutex<Waiting>,
    /// The writer waits here for lines.
    lines: Condvar,
    /// Loggers wait here for room.
    room: Condvar,
}

#[derive(Default)]
struct Waiting {
    bytes: Vec<u8>,
    closed: bool,
    writer_asleep: bool,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, Waiting> {
        // A panic while holding the lock leaves whole lines behind.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn push(&self, line: &str) {
        let mut waiting = self.lock();
        while waiting.bytes.len() >= QUEUE_BYTES && !waiting.closed {
            waiting = self
                .room
                .wait(waiting)
                .unwrap_or_else(PoisonError::into_inner);
        }
        waiting.bytes.extend_from_slice(line.as_bytes());
        if waiting.writer_asleep {
            waiting.writer_asleep = false;
            self.lines.notify_one();
        }
    }

    fn close(&self) {
        let mut waiting = self.lock();
        waiting.closed = true;
        self.lines.notify_one();
        self.room.notify_all();
    }

    /// The writer thread: takes all waiting lines at once and writes them
    /// until the queue is closed and empty.
    fn write_to(&self, mut out: impl Write) {
        let mut batch = Vec::new();
        loop {
            {
                let mut waiting = self.lock();
                while waiting.bytes.is_empty() {
                    if waiting.closed {
                        return;
                    }
                    waiting.writer_asleep = true;
                    waiting = self
                        .lines
                        .wait(waiting)
                        .unwrap_or_else(PoisonError::into_inner);
                }
                if !waiting.closed {
                    // Lines logged meanwhile join this write, and their
                    // loggers wake no one.
                    drop(waiting);
                    std::thread::sleep(GATHER);
                    waiting = self.lock();
                }
                std::mem::swap(&mut batch, &mut waiting.bytes);
                if batch.len() >= QUEUE_BYTES {
                    self.room.notify_all();
                }
            }
            // A log that cannot be written has nowhere to report it.
            let _ = out.write_all(&batch).and_then(|()| out.flush());
            batch.clear();
        }
    }
}

impl Format {
    fn line(&self, record: &Record<'_>, values: &OwnedKVList, line: &mut String) {
        let now = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
        match self {
            Format::Plain { colour } => {
                let level = record.level().as_short_str();
                match colour.then(|| colour_of(record.level())).flatten() {
                    Some(code) => {
                        let _ = write!(line, "{now} \x1b[{code}m{level}\x1b[0m ");
                    }
                    None => {
                        let _ = write!(line, "{now} {level} ");
                    }
                }
                let _ = write!(line, "{}", record.msg());
                let mut plain = Plain(line);
                let _ = record.kv().serialize(record, &mut plain);
                let _ = values.serialize(record, &mut plain);
            }
            Format::Bunyan { name, hostname } => {
                line.push_str("{\"msg\":");
                match record.msg().as_str() {
                    Some(msg) => json_string(line, msg),
                    None => json_string(line, &record.msg().to_string()),
                }
                let _ = write!(line, ",\"level\":{}", bunyan_level(record.level()));
                line.push_str(",\"time\":");
                json_string(line, &now);
                line.push_str(",\"hostname\":");
                json_string(line, hostname);
                let _ = write!(line, ",\"pid\":{}", std::process::id());
                line.push_str(",\"name\":");
                json_string(line, name);
                line.push_str(",\"v\":0");
                let mut json = Json(line);
                let _ = record.kv().serialize(record, &mut json);
                let _ = values.serialize(record, &mut json);
                line.push('}');
            }
        }
        line.push('\n');
    }
}

/// ANSI colour of a level's name, as slog-term coloured them.
fn colour_of(level: Level) -> Option<u8> {
    match level {
        Level::Critical => Some(35),
        Level::Error => Some(31),
        Level::Warning => Some(33),
        Level::Info => Some(32),
        Level::Debug => Some(36),
        Level::Trace => None,
    }
}

/// Bunyan's level numbers.
fn bunyan_level(level: Level) -> u8 {
    match level {
        Level::Critical => 60,
        Level::Error => 50,
        Level::Warning => 40,
        Level::Info => 30,
        Level::Debug => 20,
        Level::Trace => 10,
    }
}

/// `s` as a JSON string.
fn json_string(line: &mut String, s: &str) {
    // serde_json's escaping; a `String` cannot fail to take it.
    if let Ok(quoted) = serde_json::to_string(s) {
        line.push_str(&quoted);
    }
}

/// `, key: value` for each key-value.
struct Plain<'a>(&'a mut String);

impl slog::Serializer for Plain<'_> {
    fn emit_arguments(&mut self, key: Key, value: &fmt::Arguments<'_>) -> slog::Result {
        let _ = write!(self.0, ", {key}: {value}");
        Ok(())
    }

    fn emit_str(&mut self, key: Key, value: &str) -> slog::Result {
        self.0.push_str(", ");
        self.0.push_str(key.as_ref());
        self.0.push_str(": ");
        self.0.push_str(value);
        Ok(())
    }
}

/// `,"key":value` for each key-value, numbers and booleans as JSON's.
struct Json<'a>(&'a mut String);

impl Json<'_> {
    fn key(&mut self, key: Key) {
        self.0.push(',');
        json_string(self.0, key.as_ref());
        self.0.push(':');
    }

    fn number(&mut self, key: Key, value: impl fmt::Display) -> slog::Result {
        self.key(key);
        let _ = write!(self.0, "{value}");
        Ok(())
    }
}

impl slog::Serializer for Json<'_> {
    fn emit_arguments(&mut self, key: Key, value: &fmt::Arguments<'_>) -> slog::Result {
        self.key(key);
        match value.as_str() {
            Some(s) => json_string(self.0, s),
            None => json_string(self.0, &value.to_string()),
        }
        Ok(())
    }
    fn emit_str(&mut self, key: Key, value: &str) -> slog::Result {
        self.key(key);
        json_string(self.0, value);
        Ok(())
    }
    fn emit_unit(&mut self, key: Key) -> slog::Result {
        self.key(key);
        self.0.push_str("null");
        Ok(())
    }
    fn emit_none(&mut self, key: Key) -> slog::Result {
        self.emit_unit(key)
    }
    fn emit_bool(&mut self, key: Key, value: bool) -> slog::Result {
        self.number(key, value)
    }
    fn emit_u8(&mut self, key: Key, value: u8) -> slog::Result {
        self.number(key, value)
    }
    fn emit_i8(&mut self, key: Key, value: i8) -> slog::Result {
        self.number(key, value)
    }
    fn emit_u16(&mut self, key: Key, value: u16) -> slog::Result {
        self.number(key, value)
    }
    fn emit_i16(&mut self, key: Key, value: i16) -> slog::Result {
        self.number(key, value)
    }
    fn emit_u32(&mut self, key: Key, value: u32) -> slog::Result {
        self.number(key, value)
    }
    fn emit_i32(&mut self, key: Key, value: i32) -> slog::Result {
        self.number(key, value)
    }
    fn emit_u64(&mut self, key: Key, value: u64) -> slog::Result {
        self.number(key, value)
    }
    fn emit_i64(&mut self, key: Key, value: i64) -> slog::Result {
        self.number(key, value)
    }
    fn emit_usize(&mut self, key: Key, value: usize) -> slog::Result {
        self.number(key, value)
    }
    fn emit_isize(&mut self, key: Key, value: isize) -> slog::Result {
        self.number(key, value)
    }
    fn emit_u128(&mut self, key: Key, value: u128) -> slog::Result {
        self.number(key, value)
    }
    fn emit_i128(&mut self, key: Key, value: i128) -> slog::Result {
        self.number(key, value)
    }
    fn emit_f32(&mut self, key: Key, value: f32) -> slog::Result {
        self.emit_f64(key, f64::from(value))
    }
    fn emit_f64(&mut self, key: Key, value: f64) -> slog::Result {
        if value.is_finite() {
            self.number(key, value)
        } else {
            // JSON has no NaN or infinities.
            self.key(key);
            json_string(self.0, &value.to_string());
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use slog::{o, Logger};

    /// A writer the test can read back, counting its writes.
    #[derive(Clone, Default)]
    struct Written(Arc<Mutex<(Vec<u8>, usize)>>);

    impl Write for Written {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let mut written = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            written.0.extend_from_slice(buf);
            written.1 += 1;
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Written {
        fn lines(&self) -> Vec<String> {
            let written = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            String::from_utf8_lossy(&written.0)
                .lines()
                .map(str::to_string)
                .collect()
        }
        fn writes(&self) -> usize {
            self.0.lock().unwrap_or_else(PoisonError::into_inner).1
        }
    }

    fn logger(format: Format, out: &Written) -> Logger {
        let lines = Lines::new(format, out.clone()).expect("log thread");
        Logger::root(lines.fuse(), o!("component" => "test"))
    }

    #[test]
    fn a_plain_line_has_the_time_level_message_and_values() {
        let out = Written::default();
        let log = logger(Format::Plain { colour: false }, &out);
        slog::info!(log, "request completed"; "code" => 200u16, "uri" => "/a b", "ok" => true);
        drop(log);
        let lines = out.lines();
        assert_eq!(lines.len(), 1);
        let (time, rest) = lines[0].split_once(' ').expect("time");
        assert!(chrono::DateTime::parse_from_rfc3339(time).is_ok(), "{time}");
        assert_eq!(
            rest,
            "INFO request completed, ok: true, uri: /a b, code: 200, component: test"
        );
    }

    #[test]
    fn a_bunyan_line_is_one_json_object_with_typed_values() {
        let out = Written::default();
        let log = logger(Format::bunyan("mxjob-server"), &out);
        slog::warn!(log, "said \"hi\"\n"; "code" => 409u16, "reason" => "Conflict", "ratio" => f64::NAN, "none" => None::<u8>);
        drop(log);
        let lines = out.lines();
        assert_eq!(lines.len(), 1);
        let line: serde_json::Value = serde_json::from_str(&lines[0]).expect("JSON");
        assert_eq!(line["msg"], "said \"hi\"\n");
        assert_eq!(line["level"], 40);
        assert_eq!(line["name"], "mxjob-server");
        assert_eq!(line["v"], 0);
        assert_eq!(line["pid"], std::process::id());
        assert_eq!(line["code"], 409);
        assert_eq!(line["reason"], "Conflict");
        assert_eq!(line["ratio"], "NaN");
        assert_eq!(line["none"], serde_json::Value::Null);
        assert_eq!(line["component"], "test");
        assert!(line["hostname"].as_str().is_some_and(|h| !h.is_empty()));
        assert!(line["time"]
            .as_str()
            .is_some_and(|t| chrono::DateTime::parse_from_rfc3339(t).is_ok()));
    }

    #[test]
    fn lines_logged_while_the_writer_is_busy_go_out_together_in_order() {
        let out = Written::default();
        let log = logger(Format::Plain { colour: false }, &out);
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let log = log.clone();
                std::thread::spawn(move || {
                    for i in 0..2_000 {
                        slog::info!(log, "line"; "thread" => t, "i" => i);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().expect("logging thread");
        }
        drop(log);
        let lines = out.lines();
        assert_eq!(lines.len(), 8_000, "every line is written once");
        for t in 0..4 {
            let order: Vec<u32> = lines
                .iter()
                .filter(|l| l.contains(&format!("thread: {t},")))
                .map(|l| {
                    let i = l.split("i: ").nth(1).and_then(|i| i.split(',').next());
                    i.and_then(|i| i.parse().ok()).expect("i")
                })
                .collect();
            assert_eq!(order, (0..2_000).collect::<Vec<_>>(), "thread {t} in order");
        }
        assert!(
            out.writes() < lines.len(),
            "{} writes for {} lines",
            out.writes(),
            lines.len()
        );
    }

    #[test]
    fn a_full_queue_makes_the_logger_wait_instead_of_dropping_lines() {
        /// A writer that does not return until the test lets it.
        struct Gate(Arc<(Mutex<bool>, Condvar)>, Written);
        impl Write for Gate {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                let (open, opened) = &*self.0;
                let mut open = open.lock().unwrap_or_else(PoisonError::into_inner);
                while !*open {
                    open = opened.wait(open).unwrap_or_else(PoisonError::into_inner);
                }
                self.1.write(buf)
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let gate = Arc::new((Mutex::new(false), Condvar::new()));
        let out = Written::default();
        let lines = Lines::new(
            Format::Plain { colour: false },
            Gate(gate.clone(), out.clone()),
        )
        .expect("log thread");
        let log = Logger::root(lines.fuse(), o!());
        let value = "x".repeat(4096);
        let count = 2 * QUEUE_BYTES / value.len() + 10;
        let (done_tx, done) = std::sync::mpsc::channel();
        let logging = {
            let log = log.clone();
            let value = value.clone();
            std::thread::spawn(move || {
                for i in 0..count {
                    slog::info!(log, "big"; "i" => i, "value" => &value);
                }
                let _ = done_tx.send(());
            })
        };
        assert!(
            done.recv_timeout(std::time::Duration::from_millis(300))
                .is_err(),
            "the logger waits while the queue is full"
        );
        *gate.0.lock().unwrap_or_else(PoisonError::into_inner) = true;
        gate.1.notify_all();
        logging.join().expect("logging thread");
        drop(log);
        assert_eq!(out.lines().len(), count, "no line was dropped");
    }
}

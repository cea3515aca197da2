//! A small `log` backend that never makes the logging thread wait for I/O.
//!
//! ```text
//!  any thread: log::info!(..) -> format one line -> try_send ──full──> count a drop
//!                                                      │
//!                                 bounded queue (LOG_QUEUE_LINES)
//!                                                      │
//!  "petrel-log" thread: recv -> write to stderr or the file (appended),
//!                       flush when the queue is empty
//! ```
//!
//! One line per record, UTC timestamp. A worker pays for formatting the line
//! and a non-blocking push; when the writer falls behind (a slow disk, a
//! stalled stderr pipe) lines are dropped and counted (`petrel_log_*`
//! metrics), never waited for. [`Log::flush`] (used before exit) waits, with
//! a bound, for the queue to be written.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::Path;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use log::{Level, LevelFilter, Log, Metadata, Record};

/// Lines the queue holds before new ones are dropped.
pub const LOG_QUEUE_LINES: usize = 8192;
/// Longest [`Log::flush`] waits for the writer.
const FLUSH_WAIT: Duration = Duration::from_secs(2);

petrel_core::metrics! {
    /// The debug log's figures.
    pub struct LogStats {
        lines_queued: Counter("lines") "log lines handed to the writer thread",
        lines_written: Counter("lines") "log lines written to stderr or the log file",
        lines_dropped: Counter("lines") "log lines dropped because the writer's queue was full (never waited for)",
        write_errors: Counter("errors") "failed writes of log lines",
        reopens: Counter("reopens") "times the log file was reopened (SIGHUP)",
    }
}

static STATS: LogStats = LogStats::new();

/// The debug log's counters.
pub fn stats() -> &'static LogStats {
    &STATS
}

enum Msg {
    Line(String),
    /// Close the log file and open its path again (after a rename by
    /// logrotate: new lines go to the new file).
    Reopen,
    /// Write everything queued before this, then answer.
    Flush(SyncSender<()>),
}

struct Logger {
    level: LevelFilter,
    queue: SyncSender<Msg>,
}

/// The level for a `-v` count: 0 info, 1 debug, 2 or more trace.
pub fn level_for(verbosity: u8) -> LevelFilter {
    match verbosity {
        0 => LevelFilter::Info,
        1 => LevelFilter::Debug,
        _ => LevelFilter::Trace,
    }
}

/// Installs the logger and starts its writer thread; `file` None logs to
/// stderr. Fails if the file cannot be opened or a logger is already
/// installed.
pub fn init(verbosity: u8, file: Option<&Path>) -> io::Result<()> {
    let sink: Box<dyn Write + Send> = match file {
        Some(p) => Box::new(OpenOptions::new().create(true).append(true).open(p)?),
        None => Box::new(io::stderr()),
    };
    let level = level_for(verbosity);
    let (tx, rx) = sync_channel(LOG_QUEUE_LINES);
    let path = file.map(Path::to_path_buf);
    std::thread::Builder::new()
        .name("petrel-log".into())
        .spawn(move || write_lines(rx, sink, path))?;
    let _ = REOPEN.set(tx.clone());
    let logger = Box::new(Logger { level, queue: tx });
    log::set_logger(Box::leak(logger)).map_err(|e| io::Error::other(e.to_string()))?;
    log::set_max_level(level);
    Ok(())
}

/// The writer's queue, for [`reopen`].
static REOPEN: std::sync::OnceLock<SyncSender<Msg>> = std::sync::OnceLock::new();

/// Asks the writer to reopen the log file (SIGHUP); lines queued before are
/// written to the old file. Does nothing when logging to stderr. Never
/// blocks: with the queue full the request is dropped and counted.
pub fn reopen() {
    if let Some(q) = REOPEN.get() {
        if q.try_send(Msg::Reopen).is_err() {
            STATS.write_errors.incr();
        }
    }
}

/// The writer thread: writes lines in arrival order until every sender is
/// gone; flushes the sink whenever the queue runs empty. `path` is the log
/// file's, reopened on [`Msg::Reopen`] (None: stderr).
fn write_lines(rx: Receiver<Msg>, sink: Box<dyn Write + Send>, path: Option<std::path::PathBuf>) {
    let mut out = io::BufWriter::with_capacity(64 * 1024, sink);
    let mut next = rx.recv().ok();
    while let Some(msg) = next {
        match msg {
            Msg::Reopen => {
                if let Some(p) = &path {
                    if out.flush().is_err() {
                        STATS.write_errors.incr();
                    }
                    match OpenOptions::new().create(true).append(true).open(p) {
                        Ok(f) => {
                            out = io::BufWriter::with_capacity(64 * 1024, Box::new(f));
                            STATS.reopens.incr();
                        }
                        Err(_) => STATS.write_errors.incr(),
                    }
                }
            }
            Msg::Line(line) => match out.write_all(line.as_bytes()) {
                Ok(()) => STATS.lines_written.incr(),
                Err(_) => STATS.write_errors.incr(),
            },
            Msg::Flush(done) => {
                if out.flush().is_err() {
                    STATS.write_errors.incr();
                }
                let _ = done.try_send(());
            }
        }
        next = match rx.try_recv() {
            Ok(m) => Some(m),
            Err(_) => {
                if out.flush().is_err() {
                    STATS.write_errors.incr();
                }
                rx.recv().ok()
            }
        };
    }
    let _ = out.flush();
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` for a duration since the Unix epoch.
pub fn format_utc(secs: u64, millis: u32) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil-from-days (Howard Hinnant's algorithm), proleptic Gregorian.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= self.level
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let level = match record.level() {
            Level::Error => "ERROR",
            Level::Warn => "WARN ",
            Level::Info => "INFO ",
            Level::Debug => "DEBUG",
            Level::Trace => "TRACE",
        };
        let line = format!(
            "{} {level} {}: {}\n",
            format_utc(now.as_secs(), now.subsec_millis()),
            record.target(),
            record.args()
        );
        self.push(line);
    }

    fn flush(&self) {
        let (tx, rx) = sync_channel(1);
        // waits for room (bounded), then for the writer (bounded)
        let deadline = std::time::Instant::now() + FLUSH_WAIT;
        let mut msg = Msg::Flush(tx);
        loop {
            match self.queue.try_send(msg) {
                Ok(()) => break,
                Err(TrySendError::Full(m)) if std::time::Instant::now() < deadline => {
                    msg = m;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(_) => return,
            }
        }
        let _ = rx.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()));
    }
}

impl Logger {
    /// Queues one line without waiting; counts it dropped when the queue is full.
    fn push(&self, line: String) {
        match self.queue.try_send(Msg::Line(line)) {
            Ok(()) => STATS.lines_queued.incr(),
            Err(_) => STATS.lines_dropped.incr(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_formatting() {
        assert_eq!(format_utc(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_utc(951_782_400, 5), "2000-02-29T00:00:00.005Z");
        assert_eq!(format_utc(1_795_603_714, 999), "2026-11-25T10:48:34.999Z");
    }

    #[test]
    fn verbosity_levels() {
        assert_eq!(level_for(0), LevelFilter::Info);
        assert_eq!(level_for(1), LevelFilter::Debug);
        assert_eq!(level_for(2), LevelFilter::Trace);
        assert_eq!(level_for(9), LevelFilter::Trace);
    }

    #[test]
    fn a_stalled_writer_drops_lines_instead_of_blocking() {
        // A sink that blocks on its first write until released, like a
        // stalled stderr pipe; it says when the writer thread is stuck in it.
        struct Stall {
            entered: Option<std::sync::mpsc::Sender<()>>,
            gate: std::sync::Arc<std::sync::Barrier>,
        }
        impl Write for Stall {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                if let Some(entered) = self.entered.take() {
                    let _ = entered.send(());
                    self.gate.wait();
                }
                Ok(b.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        const QUEUE: usize = 16;
        let gate = std::sync::Arc::new(std::sync::Barrier::new(2));
        let (entered_tx, entered_rx) = std::sync::mpsc::channel();
        let (tx, rx) = sync_channel(QUEUE);
        let sink = Box::new(Stall {
            entered: Some(entered_tx),
            gate: gate.clone(),
        });
        let t = std::thread::spawn(move || write_lines(rx, sink, None));
        let logger = Logger {
            level: LevelFilter::Info,
            queue: tx,
        };
        // One line gets the writer stuck in the sink (it writes when the
        // queue runs dry); however long that takes, nothing below waits.
        logger.push("first\n".to_string());
        entered_rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the writer reaches the sink");
        let before = STATS.lines_dropped.get();
        for i in 0..10_000 {
            logger.push(format!("line {i}\n"));
        }
        // 10k pushes against a stuck writer: the queue's worth is kept, the
        // rest dropped and counted (other tests may add drops, never remove).
        assert!(STATS.lines_dropped.get() - before >= (10_000 - QUEUE) as u64);
        gate.wait();
        drop(logger);
        t.join().unwrap();
    }

    /// Benchmark (not a timed test): `get` requests per second through the
    /// engine on one thread, logging a line every 16 requests while two
    /// more threads flood the log (200k lines/s each), into a sink that
    /// takes 100 us per write plus 1 us per byte
    /// (a slow disk): with this logger, and with a synchronous one that
    /// writes under a lock (what this logger replaced). Run with
    /// `cargo test --release -p petrel logger::tests::bench_log_flood -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn bench_log_flood() {
        use petrel_core::engine::{Engine, EngineConfig, Session, Transport};
        use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
        use std::sync::{Arc, Mutex};
        use std::time::Instant;

        struct Slow;
        impl Write for Slow {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                // 1 MB/s: 100 us a call plus 1 us a byte
                std::thread::sleep(Duration::from_micros(100 + b.len() as u64));
                Ok(b.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        /// The old design: format, lock, write.
        struct SyncLogger(Mutex<Box<dyn Write + Send>>);
        impl SyncLogger {
            fn push(&self, line: String) {
                let _ = self.0.lock().unwrap().write_all(line.as_bytes());
            }
        }
        enum Which {
            None,
            Async(Logger),
            Sync(SyncLogger),
        }
        impl Which {
            fn line(&self, i: u64) {
                match self {
                    Which::None => {}
                    Which::Async(l) => l.push(format!("request {i} did something worth a line\n")),
                    Which::Sync(l) => l.push(format!("request {i} did something worth a line\n")),
                }
            }
        }

        let cfg = EngineConfig::default();
        let arena: &'static mut [u8] =
            Box::leak(vec![0u8; Engine::required_bytes(&cfg).unwrap()].into_boxed_slice());
        let engine = Engine::new(&cfg, arena).unwrap();
        let mut out = vec![0u8; 4096];
        let mut s = Session::new(Transport::Tcp);
        engine.process(
            &mut s,
            b"set k 0 0 32\r\n01234567890123456789012345678901\r\n",
            &mut out,
            1,
        );
        let run = |name: &str, which: Arc<Which>| {
            let stop = Arc::new(AtomicBool::new(false));
            let flood: Vec<_> = (0..2)
                .map(|_| {
                    let (w, stop) = (which.clone(), stop.clone());
                    std::thread::spawn(move || {
                        // bursts of 200 lines a millisecond: 200k lines/s a
                        // thread, 20x what the sink takes, leaving the
                        // worker its CPU (2 cores here)
                        let mut i = 0;
                        while !stop.load(Relaxed) {
                            for _ in 0..200 {
                                w.line(i);
                                i += 1;
                            }
                            std::thread::sleep(Duration::from_millis(1));
                        }
                    })
                })
                .collect();
            let mut s = Session::new(Transport::Tcp);
            let mut out = vec![0u8; 4096];
            let started = Instant::now();
            let mut n = 0u64;
            while started.elapsed() < Duration::from_secs(1) {
                for _ in 0..16 {
                    engine.process(&mut s, b"get k\r\n", &mut out, 1);
                    n += 1;
                }
                which.line(n);
            }
            let rate = n as f64 / started.elapsed().as_secs_f64();
            stop.store(true, Relaxed);
            for t in flood {
                t.join().unwrap();
            }
            println!("{name:<45} {rate:>12.0} gets/s");
            rate
        };
        let base = run("no logging", Arc::new(Which::None));
        let dropped = STATS.lines_dropped.get();
        let (tx, rx) = sync_channel(LOG_QUEUE_LINES);
        let writer = std::thread::spawn(move || write_lines(rx, Box::new(Slow), None));
        let a = run(
            "this logger, flood into a 1 MB/s sink",
            Arc::new(Which::Async(Logger {
                level: LevelFilter::Info,
                queue: tx,
            })),
        );
        println!(
            "  lines dropped (counted, not waited for): {}",
            STATS.lines_dropped.get() - dropped
        );
        writer.join().unwrap();
        let b = run(
            "synchronous logger, same flood and sink",
            Arc::new(Which::Sync(SyncLogger(Mutex::new(Box::new(Slow))))),
        );
        println!(
            "relative to no logging: this logger {:.2}, synchronous {:.4}",
            a / base,
            b / base
        );
    }
}

//! A small `log` backend: one line per record, UTC timestamp, to stderr or
//! a file (appended). Lines are written whole with one `write` each, so
//! concurrent threads never interleave within a line.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use log::{Level, LevelFilter, Log, Metadata, Record};

enum Sink {
    Stderr,
    File(File),
}

struct Logger {
    level: LevelFilter,
    sink: Mutex<Sink>,
}

/// The level for a `-v` count: 0 info, 1 debug, 2 or more trace.
pub fn level_for(verbosity: u8) -> LevelFilter {
    match verbosity {
        0 => LevelFilter::Info,
        1 => LevelFilter::Debug,
        _ => LevelFilter::Trace,
    }
}

/// Installs the logger; `file` None logs to stderr. Fails if the file cannot
/// be opened or a logger is already installed.
pub fn init(verbosity: u8, file: Option<&Path>) -> io::Result<()> {
    let sink = match file {
        Some(p) => Sink::File(OpenOptions::new().create(true).append(true).open(p)?),
        None => Sink::Stderr,
    };
    let level = level_for(verbosity);
    let logger = Box::new(Logger {
        level,
        sink: Mutex::new(sink),
    });
    log::set_logger(Box::leak(logger)).map_err(|e| io::Error::other(e.to_string()))?;
    log::set_max_level(level);
    Ok(())
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
        let mut sink = self.sink.lock().unwrap_or_else(|p| p.into_inner());
        let _ = match &mut *sink {
            Sink::Stderr => io::stderr().lock().write_all(line.as_bytes()),
            Sink::File(f) => f.write_all(line.as_bytes()),
        };
    }

    fn flush(&self) {
        let mut sink = self.sink.lock().unwrap_or_else(|p| p.into_inner());
        let _ = match &mut *sink {
            Sink::Stderr => io::stderr().flush(),
            Sink::File(f) => f.flush(),
        };
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
}

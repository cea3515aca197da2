//! The process's own figures under Prometheus' standard names
//! (`process_cpu_seconds_total`, `process_resident_memory_bytes`, ...), read
//! the way Prometheus' Go and Python clients read them: `getrusage(2)` for
//! CPU time (microsecond resolution, the source of memcached's
//! `rusage_user` / `rusage_system`), `/proc/self/stat` for memory and the
//! start time, `/proc/self/fd` and `RLIMIT_NOFILE` for descriptors. Read on
//! the admin thread at each collection; never on a worker.

use petrel_core::engine::ProcessUsage;

/// User and system CPU time of the whole process, in microseconds
/// (`getrusage(RUSAGE_SELF)`).
pub fn cpu_time_us() -> (u64, u64) {
    // SAFETY: getrusage writes one plain struct that we own.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF and a valid pointer; it cannot fail with these.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return (0, 0);
    }
    let us = |t: libc::timeval| (t.tv_sec.max(0) as u64) * 1_000_000 + t.tv_usec.max(0) as u64;
    (us(ru.ru_utime), us(ru.ru_stime))
}

/// `stats`' `rusage_user` / `rusage_system` for the engine.
pub struct Rusage;

impl ProcessUsage for Rusage {
    fn cpu_time_us(&self) -> (u64, u64) {
        cpu_time_us()
    }
}

/// One reading of the process's figures.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ProcessFigures {
    /// User + system CPU time, seconds.
    pub cpu_seconds: f64,
    /// Resident set size, bytes (`/proc/self/stat` field 24 x page size).
    pub resident_bytes: u64,
    /// Virtual memory size, bytes (`/proc/self/stat` field 23).
    pub virtual_bytes: u64,
    /// Open file descriptors (entries of `/proc/self/fd`).
    pub open_fds: u64,
    /// The soft limit on open file descriptors (`RLIMIT_NOFILE`).
    pub max_fds: u64,
    /// When the process started, Unix seconds (`/proc/self/stat` field 22
    /// over the clock tick, plus `btime` of `/proc/stat`).
    pub start_time_seconds: f64,
}

/// The fields of a `/proc/PID/stat` line after the command name (which may
/// hold spaces and parentheses): `fields[0]` is field 3 (`state`).
fn stat_fields(stat: &str) -> Vec<&str> {
    match stat.rfind(')') {
        Some(i) => stat[i + 1..].split_ascii_whitespace().collect(),
        None => Vec::new(),
    }
}

/// `btime` of `/proc/stat`: boot time, Unix seconds.
fn boot_time() -> Option<u64> {
    std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// Reads the process's figures now; a source that cannot be read gives 0.
pub fn read() -> ProcessFigures {
    let (user, system) = cpu_time_us();
    let mut f = ProcessFigures {
        cpu_seconds: (user + system) as f64 / 1e6,
        ..ProcessFigures::default()
    };
    // SAFETY: sysconf has no memory effects.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(0) as u64;
    // SAFETY: as above.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
        let w = stat_fields(&stat);
        // field N is w[N - 3]
        let field = |n: usize| w.get(n - 3).and_then(|v| v.parse::<u64>().ok());
        f.virtual_bytes = field(23).unwrap_or(0);
        f.resident_bytes = field(24).unwrap_or(0) * page;
        if let (Some(start), Some(boot)) = (field(22), boot_time()) {
            f.start_time_seconds = boot as f64 + start as f64 / ticks;
        }
    }
    f.open_fds = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64);
    // SAFETY: getrlimit writes one plain struct that we own.
    let mut lim: libc::rlimit = unsafe { std::mem::zeroed() };
    // SAFETY: a valid resource and pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 {
        f.max_fds = lim.rlim_cur;
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_skip_a_command_name_with_spaces_and_parens() {
        let w = stat_fields("42 (a (b) c) S 1 2 3");
        assert_eq!(w, ["S", "1", "2", "3"]);
        assert!(stat_fields("garbage").is_empty());
    }

    #[test]
    fn figures_of_this_process_are_plausible() {
        let f = read();
        // this test process has run some code, holds some memory and files
        assert!(f.resident_bytes > 1 << 20, "{f:?}");
        assert!(f.virtual_bytes >= f.resident_bytes, "{f:?}");
        assert!(f.open_fds >= 3 && f.open_fds <= f.max_fds, "{f:?}");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(
            f.start_time_seconds > now - 3600.0 && f.start_time_seconds <= now + 1.0,
            "{f:?}"
        );
        // burn a little CPU: the counter moves
        let before = cpu_time_us();
        let mut x = 1u64;
        let t = std::time::Instant::now();
        while t.elapsed() < std::time::Duration::from_millis(30) {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        let after = cpu_time_us();
        assert!(after.0 + after.1 > before.0 + before.1);
    }
}

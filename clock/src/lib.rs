//! The host clocks of Petrel's front ends, in one place.
//!
//! The core never reads a clock: every call that depends on time takes it
//! as an argument. The front ends (kernel sockets, AF_XDP queues) read
//! these two and pass them in:
//!
//! - [`unix_now`]: Unix seconds, the engine's `now` (item expiry, `stats`
//!   time), read once per event-loop iteration or poll round;
//! - [`monotonic_ms`]: milliseconds of `CLOCK_MONOTONIC`, the clock of the
//!   UDP amplification guard's token buckets. One guard serves every UDP
//!   path of the process, so every path must read the same clock: this one.
//!
//! A loop that reads `CLOCK_MONOTONIC` anyway (the AF_XDP workers, once per
//! batch: [`monotonic_ns`]) derives both from that one read: the guard's
//! milliseconds by division, Unix seconds through [`UnixSeconds`], which
//! reads the wall clock only when a new second may have begun.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use petrel_core::Time;

/// Current Unix time in whole seconds (0 before 1970, saturating after 2106).
pub fn unix_now() -> Time {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => u32::try_from(d.as_secs()).unwrap_or(u32::MAX),
        Err(_) => 0,
    }
}

/// Milliseconds of `CLOCK_MONOTONIC` (never goes back; the same value on
/// every thread). Equal to [`monotonic_ns`]` / 1_000_000`.
pub fn monotonic_ms() -> u64 {
    monotonic_ns() / 1_000_000
}

/// Nanoseconds of `CLOCK_MONOTONIC` (never goes back; the same clock on
/// every thread).
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec to write into; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64
}

/// Unix seconds ([`unix_now`]) for a loop that reads [`monotonic_ns`]
/// anyway: the wall clock is read only when the monotonic time passes the
/// point where the second last read ends, so about once a second. A step
/// of the wall clock is seen at the next such read (within a second).
#[derive(Debug, Clone, Copy, Default)]
pub struct UnixSeconds {
    secs: Time,
    /// Monotonic nanoseconds at which `secs` ends (0: never read).
    until_ns: u64,
}

impl UnixSeconds {
    /// Not read yet: the first [`UnixSeconds::at`] reads the wall clock.
    pub const fn new() -> Self {
        UnixSeconds {
            secs: 0,
            until_ns: 0,
        }
    }

    /// Unix seconds at monotonic time `mono_ns` (a [`monotonic_ns`] read
    /// just now).
    pub fn at(&mut self, mono_ns: u64) -> Time {
        self.at_with(mono_ns, || {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or(Duration::ZERO)
        })
    }

    /// [`UnixSeconds::at`] with the wall clock (time since the epoch) read
    /// by `wall`.
    fn at_with(&mut self, mono_ns: u64, wall: impl FnOnce() -> Duration) -> Time {
        if mono_ns < self.until_ns {
            return self.secs;
        }
        let d = wall();
        self.secs = u32::try_from(d.as_secs()).unwrap_or(u32::MAX);
        self.until_ns = mono_ns + u64::from(1_000_000_000 - d.subsec_nanos());
        self.secs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clocks_read_plausible_values() {
        // After 2020-01-01 and before the u32 end of 2106.
        assert!(unix_now() > 1_577_836_800);
        let a = monotonic_ms();
        let b = monotonic_ms();
        assert!(a > 0 && b >= a);
        let n = monotonic_ns();
        assert!(n / 1_000_000 >= b);
        let mut u = UnixSeconds::new();
        let s = u.at(monotonic_ns());
        assert!(s > 1_577_836_800 && s <= unix_now());
    }

    #[test]
    fn unix_seconds_read_the_wall_clock_once_per_second() {
        let mut u = UnixSeconds::new();
        let reads = std::cell::Cell::new(0);
        let wall = |secs: u64, nanos: u32| {
            reads.set(reads.get() + 1);
            Duration::new(secs, nanos)
        };
        // At monotonic 5 s the wall clock says 1000.75 s: second 1000
        // lasts until monotonic 5.25 s.
        assert_eq!(u.at_with(5_000_000_000, || wall(1000, 750_000_000)), 1000);
        let unused = || -> Duration { panic!("read within the second") };
        assert_eq!(u.at_with(5_100_000_000, unused), 1000);
        assert_eq!(u.at_with(5_249_999_999, unused), 1000);
        assert_eq!(reads.get(), 1);
        assert_eq!(u.at_with(5_250_000_000, || wall(1001, 0)), 1001);
        assert_eq!(u.at_with(6_249_999_999, unused), 1001);
        // A wall clock stepped back is seen at the next read.
        assert_eq!(u.at_with(6_250_000_000, || wall(900, 500_000_000)), 900);
        assert_eq!(u.at_with(6_700_000_000, unused), 900);
        assert_eq!(reads.get(), 3);
    }
}

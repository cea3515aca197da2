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

use std::time::{SystemTime, UNIX_EPOCH};

use petrel_core::Time;

/// Current Unix time in whole seconds (0 before 1970, saturating after 2106).
pub fn unix_now() -> Time {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => u32::try_from(d.as_secs()).unwrap_or(u32::MAX),
        Err(_) => 0,
    }
}

/// Milliseconds of `CLOCK_MONOTONIC` (never goes back; the same value on
/// every thread).
pub fn monotonic_ms() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec to write into; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64) * 1000 + (ts.tv_nsec as u64) / 1_000_000
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
    }
}

//! Waiting on a condition with a bounded timeout, instead of sleeping and hoping.

use std::time::{Duration, Instant};

/// Polls `cond` every 20 ms until it returns true; panics naming `what` when `timeout` passes
/// first. The timeout bounds a wait on a loaded machine; it is never the thing measured.
#[track_caller]
pub fn wait_until(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: not within {timeout:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

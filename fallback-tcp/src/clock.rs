//! The host clocks (`petrel-clock`), read once per event-loop iteration.

pub use petrel_clock::{monotonic_ms, unix_now};

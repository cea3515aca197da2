//! Petrel's core: a `#![no_std]`, allocation-free cache engine.
//!
//! The core is sans-I/O: hosts hand it one byte region at construction, pass
//! the current time into every call, and move bytes in and out of it. It never
//! allocates, never performs a syscall and never reads a clock.
#![no_std]
#![forbid(unsafe_op_in_unsafe_fn)]

#[cfg(test)]
extern crate std;

pub mod arena;
pub mod engine;
pub mod proto;
pub mod stats;
pub mod store;
pub mod wire;

/// Seconds of the host's clock (Unix seconds). The core never reads a clock:
/// every call that depends on time takes `now: Time`. An absolute expiry
/// time of `0` means "never expires".
pub type Time = u32;

//! Petrel's core: a `#![no_std]`, allocation-free cache engine.
//!
//! The core is sans-I/O: hosts hand it one byte region at construction, pass
//! the current time into every call, and move bytes in and out of it. It never
//! allocates, never performs a syscall and never reads a clock.
#![no_std]
#![forbid(unsafe_op_in_unsafe_fn)]

pub mod arena;
pub mod stats;
pub mod store;

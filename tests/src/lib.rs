//! Helpers of Petrel's end-to-end tests and the `petrel-load` generator.
//!
//! * [`tcp`]: a raw TCP connection with exact-bytes assertions.
//! * [`udp`]: a small memcache-over-UDP client written from memcached's `protocol.txt`.
//! * [`server`], [`rng`], [`escape`], [`skip`], [`net`], [`diff`], [`binary`]: from `petrel-testkit`, the
//!   helpers every test of the workspace shares (server launcher, seeded generator, byte
//!   rendering, visible skips, free ports, the differential harness).

pub use petrel_testkit::{binary, diff, escape, net, rng, server, skip, wait};

pub mod tcp;
pub mod udp;

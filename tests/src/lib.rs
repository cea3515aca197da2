//! Helpers shared by Petrel's end-to-end tests and the `petrel-load` generator.
//!
//! * [`server`]: start the server under test (petrel, or Debian's memcached as the reference)
//!   on free loopback ports, wait until it accepts, kill it by PID on drop.
//! * [`tcp`]: a raw TCP connection with exact-bytes assertions.
//! * [`udp`]: a small memcache-over-UDP client written from memcached's `protocol.txt`.
//! * [`rng`]: a seeded, reproducible pseudo-random generator (no dependency).
//! * [`diff`]: seeded random command streams and the differential runner that compares two
//!   servers' replies byte for byte, with CAS values mapped through a bijection.
//! * [`escape`]: printable rendering of protocol bytes for failure messages.

pub mod diff;
pub mod escape;
pub mod rng;
pub mod server;
pub mod tcp;
pub mod udp;

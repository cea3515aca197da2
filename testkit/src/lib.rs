//! Test-only helpers shared by every test of the workspace: the core's tests, the front ends'
//! tests and the end-to-end tests in `tests/`. Never a dependency of non-test code.
//!
//! * [`skip`]: a test that cannot run in its environment says so in the summary of
//!   `scripts/test` and fails instead under `CI=true`, naming what is missing.
//! * [`net`]: free loopback ports.
//! * [`server`]: start the server under test (petrel, or Debian's memcached as the reference)
//!   on free loopback ports, check that the process it started is the one answering, kill it by
//!   PID on drop.
//! * [`diff`]: the differential harness: seeded random command streams sent to memcached and to
//!   a candidate (Petrel's engine in-process, or the petrel binary over TCP), replies compared
//!   byte for byte with CAS values through a bijection.
//! * [`rng`]: a seeded, reproducible pseudo-random generator (no dependency).
//! * [`escape`]: printable rendering of protocol bytes for failure messages.
//! * [`wait`]: waiting on a condition with a bounded timeout.
//! * [`binary`]: memcached binary-protocol request frames.

pub mod binary;
pub mod diff;
pub mod escape;
pub mod net;
pub mod rng;
pub mod server;
pub mod skip;
pub mod wait;

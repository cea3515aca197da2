//! The seam between the AF_XDP workers and the cache engine.
//!
//! Workers hand the payload of each request datagram to a [`UdpService`]
//! with a fresh session, through the core's datagram layer
//! (`petrel_core::udp::Responder`), which gives it an output area of at
//! most one datagram's payload and calls again while the service reports
//! the area full. The types at the seam are the core's ([`Progress`],
//! [`Status`], [`Time`]). `petrel_core::engine::Engine` implements it;
//! tests may use small services of their own that follow the same contract.

use petrel_core::histogram::ClassCounts;
pub use petrel_core::{Progress, Status, Time};

/// A request/response engine shared by all workers.
///
/// Contract: `process_udp` never blocks and never allocates; it may run on
/// many threads at once with distinct sessions.
pub trait UdpService: Sync {
    /// Per-datagram protocol state.
    type Session;

    /// A fresh session for one request datagram.
    fn udp_session(&self) -> Self::Session;

    /// The requests whose replies `process_udp` finished writing for
    /// `session`, by command class; resets them. The worker records their
    /// latency once the replies are on the TX ring. The default reports none.
    fn take_completed(&self, session: &mut Self::Session) -> ClassCounts {
        let _ = session;
        ClassCounts::new()
    }

    /// Adds to the service's `bytes_read` / `bytes_written`, as memcached
    /// counts UDP: `read`, the UDP payloads (frame header included) of the
    /// request datagrams longer than the 8-byte frame header, whether or
    /// not answered; `written`, the UDP payloads of the reply datagrams put
    /// on the TX ring. Called once per receive batch. The default ignores
    /// them.
    fn count_bytes(&self, read: u64, written: u64) {
        let _ = (read, written);
    }

    /// Executes the complete requests at the start of `input` at time `now`,
    /// writing replies into `out` (the engine's contract: see [`Status`];
    /// `NeedInput` once every complete request is answered).
    fn process_udp(
        &self,
        session: &mut Self::Session,
        input: &[u8],
        out: &mut [u8],
        now: Time,
    ) -> Progress;
}

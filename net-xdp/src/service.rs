//! The seam between the AF_XDP workers and the cache engine.
//!
//! Workers hand the payload of each request datagram to a [`UdpService`]
//! with a fresh session and an output area of at most one datagram's
//! payload, calling again while the service reports the area full.
//! `petrel_core::engine::Engine` implements it; tests may use small services
//! of their own that follow the same contract.

use petrel_core::histogram::ClassCounts;

/// Unix seconds, as the core expects them.
pub type Time = u32;

/// What the service wants next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UdpStatus {
    /// Every complete request in the input was answered.
    Done,
    /// The output area is full: send it, then call again with the input
    /// after `consumed` and a fresh area (the session remembers where a
    /// partly written reply stopped).
    OutputFull,
    /// The service asks to end the exchange (e.g. `quit`): send what was
    /// written and stop.
    Close,
}

/// The result of one [`UdpService::process_udp`] call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UdpProgress {
    /// Bytes of input fully handled (never more than its length).
    pub consumed: usize,
    /// Bytes written at the start of the output area (never more than its length).
    pub written: usize,
    /// What to do next.
    pub status: UdpStatus,
}

/// A request/response engine shared by all workers.
///
/// Contract: `process` never blocks and never allocates; it may run on many
/// threads at once with distinct sessions.
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

    /// Executes the complete requests at the start of `input` at time `now`,
    /// writing replies into `out`.
    fn process_udp(
        &self,
        session: &mut Self::Session,
        input: &[u8],
        out: &mut [u8],
        now: Time,
    ) -> UdpProgress;
}

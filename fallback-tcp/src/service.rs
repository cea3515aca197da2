//! The seam between the front ends and the cache engine.
//!
//! The front ends never look inside requests: they hand bytes to a
//! [`Service`] and send back what it writes. `petrel_core::engine::Engine`
//! implements it (see `engine_service.rs`); tests use small services of their
//! own that follow the same contract.

use petrel_core::histogram::ClassCounts;
/// The seam types are the core's, used as they are.
pub use petrel_core::{Progress, Status, Time, Transport};

/// Events the front ends report so the service can keep memcached's
/// connection statistics (`curr_connections`, `total_connections`, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectionEvent {
    /// A TCP connection was accepted and handed to a worker.
    Opened,
    /// A TCP connection that was `Opened` was closed.
    Closed,
    /// A TCP connection was refused because of the connection limit.
    Rejected,
    /// A connection gave up its turn after using its per-event budget.
    Yielded,
    /// Bytes read from a TCP client, reported as the read returns, before
    /// the service is given them (memcached counts them at the read too);
    /// or received UDP datagrams longer than the 8-byte frame header, header
    /// included, reported per receive batch before they are answered.
    BytesRead(u64),
    /// Bytes written to a TCP client, reported as the write returns; or
    /// UDP reply datagrams sent, frame headers included.
    BytesWritten(u64),
}

/// A request/response engine shared by every worker thread.
///
/// Contract: `process` never blocks on I/O and holds no lock when it returns;
/// it may be called concurrently from many threads with distinct sessions.
pub trait Service: Sync {
    /// Per-connection (TCP) or per-datagram (UDP) protocol state.
    type Session: Send;

    /// A fresh session for `transport`. Called once per accepted connection
    /// and once per UDP request datagram; must not allocate.
    fn session(&self, transport: Transport) -> Self::Session;

    /// Parses and executes the complete requests at the start of `input` at
    /// time `now`, writing replies into `out` (see [`Status`]: the engine's
    /// contract, `consumed` never beyond `input`, `written` never beyond
    /// `out`).
    fn process(
        &self,
        session: &mut Self::Session,
        input: &[u8],
        out: &mut [u8],
        now: Time,
    ) -> Progress;

    /// Proactive expiry: reclaims at most `budget` units of expired storage.
    /// Called about every 100 ms from one thread. Returns the units reclaimed.
    fn expire(&self, now: Time, budget: usize) -> usize;

    /// The requests whose replies `process` finished writing for `session`
    /// since the last call, by command class; resets them. The front end
    /// calls it after each `process` and records their latency once the
    /// replies are handed to the socket. The default reports none.
    fn take_completed(&self, session: &mut Self::Session) -> ClassCounts {
        let _ = session;
        ClassCounts::new()
    }

    /// Tells `session` which peer it serves (for the command log). Called
    /// once per accepted TCP connection. The default ignores it.
    fn set_client(&self, session: &mut Self::Session, peer: std::net::SocketAddr) {
        let _ = (session, peer);
    }

    /// Records a connection event in the service's statistics.
    fn connection_event(&self, event: ConnectionEvent) {
        let _ = event;
    }
}

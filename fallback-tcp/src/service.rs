//! The seam between the front ends and the cache engine.
//!
//! The front ends never look inside requests: they hand bytes to a
//! [`Service`] and send back what it writes. `petrel_core::engine::Engine`
//! implements it (see `engine_service.rs`); tests use small services of their
//! own that follow the same contract.

use petrel_core::histogram::ClassCounts;

/// Seconds of the host's clock (Unix seconds), as the core expects them.
pub type Time = u32;

/// Which transport a session serves; the engine words some replies
/// differently (and refuses some commands) per transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// A TCP connection: one session for its whole life.
    Tcp,
    /// One memcache-over-UDP request datagram: a fresh session per datagram.
    Udp,
}

/// What the service wants next from the front end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Every complete request in the input was answered; keep
    /// `input[consumed..]` and call again once more bytes arrived.
    NeedInput,
    /// `out` is full: send `out[..written]`, then call again with
    /// `input[consumed..]`. A request whose reply is only partly written is not
    /// counted in `consumed`; the session remembers where the reply stopped.
    OutputFull,
    /// `quit` or a fatal protocol error: send `out[..written]`, then close.
    Close,
}

/// The result of one [`Service::process`] call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Bytes of `input` fully handled; never more than `input.len()`.
    pub consumed: usize,
    /// Bytes written at the start of `out`; never more than `out.len()`.
    pub written: usize,
    /// What to do next.
    pub status: Status,
}

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
    /// Bytes read from clients (reported in batches).
    BytesRead(u64),
    /// Bytes written to clients (reported in batches).
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
    /// time `now`, writing replies into `out` (see [`Status`]).
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

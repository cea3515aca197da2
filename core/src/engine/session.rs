//! Per-connection protocol state and what [`Engine::process`](super::Engine::process)
//! tells its caller.

use crate::histogram::ClassCounts;
use crate::klog::Client;
use crate::store::{ValueLocation, WalkCursor};
use crate::Transport;

/// A value partly copied into earlier output buffers.
#[derive(Clone, Copy, Debug)]
pub(super) struct PartialValue {
    pub(super) loc: ValueLocation,
    /// Bytes of `value ++ "\r\n"` already written.
    pub(super) offset: usize,
}

/// Where the reply to the request at the start of the input stopped.
#[derive(Clone, Copy, Debug)]
pub(super) struct Resume {
    /// Key (get), line (stats) or 0 (mg) to continue at.
    pub(super) item: u32,
    /// A value still being copied for `item`.
    pub(super) value: Option<PartialValue>,
}

/// Per-connection (or per-datagram) protocol state. Fixed size, no heap.
#[derive(Clone, Copy, Debug)]
pub struct Session {
    pub(super) transport: Transport,
    /// Incoming bytes still to discard (data of a refused value).
    pub(super) swallow: usize,
    pub(super) resume: Option<Resume>,
    /// Requests answered since [`Session::take_completed`], by class.
    pub(super) completed: ClassCounts,
    /// The peer, for the command log (set by front ends that know it).
    pub(super) client: Option<Client>,
    /// Where a `lru_crawler metadump` continues (while `resume` is set).
    pub(super) walk: WalkCursor,
    /// The session speaks memcached's binary protocol; `None` until its
    /// first byte arrived.
    pub(super) binary: Option<bool>,
}

impl Session {
    /// A fresh session.
    pub const fn new(transport: Transport) -> Self {
        Session {
            transport,
            swallow: 0,
            resume: None,
            completed: ClassCounts::new(),
            client: None,
            walk: WalkCursor::new(),
            binary: None,
        }
    }

    /// Records the peer this session serves, for the command log.
    pub fn set_client(&mut self, client: Client) {
        self.client = Some(client);
    }

    /// The requests whose replies [`Engine::process`](super::Engine::process) finished writing since
    /// the last call, by [`CommandClass`](crate::histogram::CommandClass); resets them. A front end records
    /// their latency once it has handed those replies to the socket.
    #[inline]
    pub fn take_completed(&mut self) -> ClassCounts {
        self.completed.take()
    }

    /// The transport this session serves.
    pub fn transport(&self) -> Transport {
        self.transport
    }

    /// True when a reply is half written (the caller must call `process`
    /// again with the same unconsumed input after draining the output).
    pub fn reply_pending(&self) -> bool {
        self.resume.is_some()
    }

    /// The session speaks memcached's binary protocol (`None`: no byte has
    /// arrived yet to tell).
    pub fn is_binary(&self) -> Option<bool> {
        self.binary
    }

    /// Incoming bytes the session will still discard.
    pub fn swallow_pending(&self) -> usize {
        self.swallow
    }
}

/// What the caller should do after [`Engine::process`](super::Engine::process).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Every complete request in the input was answered; keep
    /// `input[consumed..]` and read more.
    NeedInput,
    /// `out` is full: send `out[..written]`, then call again with
    /// `input[consumed..]`.
    OutputFull,
    /// Send `out[..written]` and close the connection (`quit`, an over-long
    /// line, an HTTP request, or a reply that could not be completed).
    Close,
}

/// Result of [`Engine::process`](super::Engine::process).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Input bytes fully handled (never more than the input).
    pub consumed: usize,
    /// Bytes of `out` written.
    pub written: usize,
    /// What next.
    pub status: Status,
}

//! Per-connection protocol state and what [`Engine::process`](super::Engine::process)
//! tells its caller.

use super::{Engine, Exec};
use crate::histogram::{ClassCounts, CommandClass};
use crate::klog::Client;
use crate::store::{ValueLocation, WalkCursor};
use crate::Transport;

/// A value partly copied into earlier output buffers.
#[derive(Clone, Copy, Debug)]
pub(super) struct PartialValue {
    pub(super) loc: ValueLocation,
    /// Bytes of the value already written: the stored bytes, then (text
    /// protocol) its `\r\n`.
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
    /// The connection has authenticated (only consulted when the engine
    /// requires authentication).
    pub(super) authenticated: bool,
    /// Where the SASL exchange stands (binary sessions with `-S`).
    pub(super) sasl: super::auth::SaslState,
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
            authenticated: false,
            sasl: super::auth::SaslState::Idle,
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

    /// The connection has authenticated (always false while the engine
    /// requires no authentication: nothing to authenticate).
    pub fn is_authenticated(&self) -> bool {
        self.authenticated
    }

    /// Incoming bytes the session will still discard.
    pub fn swallow_pending(&self) -> usize {
        self.swallow
    }

    /// Keeps a value cut by a full output buffer (the one value of an `mg`
    /// or binary get reply) to continue at the next call; `Exec::Full`.
    pub(super) fn hold_value(&mut self, pv: PartialValue) -> Exec {
        self.resume = Some(Resume {
            item: 0,
            value: Some(pv),
        });
        Exec::Full
    }

    /// Steps `*pos` over the `skip` bytes of a refused request in `input`;
    /// what `input` does not hold yet is discarded from later input.
    pub(super) fn skip(&mut self, input: &[u8], pos: &mut usize, skip: usize) {
        let avail = input.len() - *pos;
        if skip > avail {
            self.swallow = skip - avail;
            *pos = input.len();
        } else {
            *pos += skip;
        }
    }
}

/// The request loop's bookkeeping, the same for both protocols.
impl Engine<'_> {
    /// Discards, from `input[*pos..]`, the bytes of a refused value the
    /// session still owes (counted in `swallowed_bytes`); `false` when no
    /// request is left to parse (the caller needs more input).
    #[inline]
    pub(super) fn swallow_owed(
        &self,
        session: &mut Session,
        input: &[u8],
        pos: &mut usize,
    ) -> bool {
        if session.swallow > 0 {
            let n = session.swallow.min(input.len() - *pos);
            *pos += n;
            session.swallow -= n;
            self.stats.swallowed_bytes.add(n as u64);
            if session.swallow > 0 {
                return false;
            }
        }
        *pos < input.len()
    }

    /// Settles a request that ran with outcome `exec`, its `consumed` bytes
    /// at `*pos`, `written` bytes of output in all so far; `Some` ends the
    /// loop with that status. A finished request (`Done`, `Close`) counts in
    /// `class` and is stepped over. `Full` leaves it (and the session's
    /// resume point) for the next call, or closes when nothing at all was
    /// written: the caller's buffer cannot hold one reply unit.
    #[inline]
    pub(super) fn settle(
        &self,
        session: &mut Session,
        exec: Exec,
        class: CommandClass,
        consumed: usize,
        pos: &mut usize,
        written: usize,
    ) -> Option<Status> {
        match exec {
            Exec::Done | Exec::Close => {
                session.resume = None;
                session.completed.add(class);
                *pos += consumed;
                matches!(exec, Exec::Close).then_some(Status::Close)
            }
            Exec::Full if written == 0 => {
                session.resume = None;
                Some(Status::Close)
            }
            Exec::Full => {
                if session.resume.is_some() {
                    self.stats.replies_resumed.incr();
                }
                Some(Status::OutputFull)
            }
        }
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

//! The command log seam ("klog", as in Pelikan): which requests the engine
//! hands to a host's command logger, and what it tells about each.
//!
//! The engine never formats, buffers or writes a log line. For each request
//! it executes it asks the installed [`CommandLog`] whether to sample it (the
//! host decides, e.g. 1 in N with a per-thread random number), and for a
//! sampled one hands over a [`CommandRecord`] borrowing the key and the
//! start of the reply. The host copies what it needs into a bounded queue and
//! returns; a background thread formats and writes.
//!
//! ```text
//!  Engine::process ── sample()? ──no──▶ (nothing more)
//!                        │yes
//!                        ▼
//!                 record(&CommandRecord) ──▶ host: copy into a bounded queue (or count a drop)
//! ```
//!
//! This module also names requests for logs and metrics:
//! [`describe`] gives a parsed request's [`CommandClass`], command name and
//! first key.

use crate::histogram::CommandClass;
use crate::proto::storage::Mode;
use crate::proto::Request;
use crate::{Time, Transport};

/// Bytes of the reply a [`CommandRecord`] carries at most: enough for any
/// status line and a `VALUE <key> <flags> <bytes>` header of a short key.
pub const REPLY_HEAD_BYTES: usize = 96;

/// A peer's address as a front end knows it (fixed size, no allocation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Client {
    /// IPv4 in the first 4 bytes (when `v4`), else IPv6.
    pub ip: [u8; 16],
    /// The address is IPv4.
    pub v4: bool,
    /// The port.
    pub port: u16,
}

/// What the engine reports about one sampled request.
#[derive(Clone, Copy, Debug)]
pub struct CommandRecord<'r> {
    /// The time the request was executed at (Unix seconds).
    pub now: Time,
    /// TCP or UDP.
    pub transport: Transport,
    /// The peer, when the front end told the session
    /// ([`Session::set_client`](crate::engine::Session::set_client)).
    pub client: Option<Client>,
    /// The command as the client spelled it (`get`, `gats`, `ms`, ...).
    pub command: &'static str,
    /// The first key as sent (base64 for meta commands with `b`); empty for
    /// commands without a key.
    pub key: &'r [u8],
    /// Value bytes a storage command carried (`None` for other commands).
    pub value_bytes: Option<usize>,
    /// The first bytes of the reply (at most [`REPLY_HEAD_BYTES`]); empty
    /// when there was none (`noreply`, quiet mode).
    pub reply_head: &'r [u8],
}

/// A host's command logger.
///
/// Contract: both methods are called on the request path of every worker
/// thread; they must never block and never take a lock another thread can
/// hold for long. `record` may drop the record (and should count that).
pub trait CommandLog: Sync {
    /// Should the request about to run be logged? Called once per request.
    fn sample(&self) -> bool;
    /// Logs a sampled request.
    fn record(&self, record: &CommandRecord<'_>);
}

/// A parsed request's [`CommandClass`] (what the engine computes for every
/// request; [`describe`] is for sampled ones).
#[inline]
pub fn class_of(req: &Request<'_>) -> CommandClass {
    match req {
        Request::Get { touch: None, .. } => CommandClass::Get,
        Request::Get { .. } => CommandClass::Gat,
        Request::Store(_) | Request::TooLarge { .. } => CommandClass::Set,
        Request::Delete { .. } => CommandClass::Delete,
        Request::Arith { .. } => CommandClass::Arith,
        Request::Touch { .. } => CommandClass::Touch,
        Request::FlushAll { .. }
        | Request::Version
        | Request::Verbosity { .. }
        | Request::SlabsAutomove { .. }
        | Request::Quit
        | Request::Shutdown(_)
        | Request::CacheMemlimit { .. }
        | Request::LruCrawlerMetadump(_)
        | Request::RefreshCerts { .. }
        | Request::Stats(_) => CommandClass::Admin,
        Request::MetaNoop | Request::MetaDebug { .. } => CommandClass::MetaOther,
        Request::MetaGet(_) => CommandClass::MetaGet,
        Request::MetaSet(..) => CommandClass::MetaSet,
        Request::MetaDelete(_) => CommandClass::MetaDelete,
        Request::MetaArith(_) => CommandClass::MetaArith,
    }
}

/// A parsed request's class, command name, first key and stored value
/// bytes.
pub fn describe<'r>(req: &Request<'r>) -> (CommandClass, &'static str, &'r [u8], Option<usize>) {
    match req {
        Request::Get { keys, cas, touch } => {
            let key = keys.iter().next().unwrap_or(&[]);
            match (touch.is_some(), cas) {
                (false, false) => (CommandClass::Get, "get", key, None),
                (false, true) => (CommandClass::Get, "gets", key, None),
                (true, false) => (CommandClass::Gat, "gat", key, None),
                (true, true) => (CommandClass::Gat, "gats", key, None),
            }
        }
        Request::Store(c) => {
            let name = match c.mode {
                Mode::Set => "set",
                Mode::Add => "add",
                Mode::Replace => "replace",
                Mode::Append => "append",
                Mode::Prepend => "prepend",
                Mode::Cas => "cas",
            };
            (CommandClass::Set, name, c.key, Some(c.data.len()))
        }
        Request::TooLarge { key, .. } => (CommandClass::Set, "set", key, None),
        Request::Delete { key, .. } => (CommandClass::Delete, "delete", key, None),
        Request::Arith { incr, key, .. } => (
            CommandClass::Arith,
            if *incr { "incr" } else { "decr" },
            key,
            None,
        ),
        Request::Touch { key, .. } => (CommandClass::Touch, "touch", key, None),
        Request::FlushAll { .. } => (CommandClass::Admin, "flush_all", &[], None),
        Request::Version => (CommandClass::Admin, "version", &[], None),
        Request::Verbosity { .. } => (CommandClass::Admin, "verbosity", &[], None),
        Request::SlabsAutomove { .. } => (CommandClass::Admin, "slabs", &[], None),
        Request::Quit => (CommandClass::Admin, "quit", &[], None),
        Request::Stats(_) => (CommandClass::Admin, "stats", &[], None),
        Request::Shutdown(_) => (CommandClass::Admin, "shutdown", &[], None),
        Request::CacheMemlimit { .. } => (CommandClass::Admin, "cache_memlimit", &[], None),
        Request::LruCrawlerMetadump(_) => (CommandClass::Admin, "lru_crawler", &[], None),
        Request::RefreshCerts { .. } => (CommandClass::Admin, "refresh_certs", &[], None),
        Request::MetaNoop => (CommandClass::MetaOther, "mn", &[], None),
        Request::MetaGet(m) => (CommandClass::MetaGet, "mg", m.key, None),
        Request::MetaSet(m, data) => (CommandClass::MetaSet, "ms", m.key, Some(data.len())),
        Request::MetaDelete(m) => (CommandClass::MetaDelete, "md", m.key, None),
        Request::MetaArith(m) => (CommandClass::MetaArith, "ma", m.key, None),
        Request::MetaDebug { key, .. } => (CommandClass::MetaOther, "me", key, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{parse, ParseConfig, Parsed};

    fn of(line: &[u8]) -> (CommandClass, &'static str, std::vec::Vec<u8>, Option<usize>) {
        match parse(line, &ParseConfig::default()) {
            Parsed::Request { request, .. } => {
                let (c, n, k, v) = describe(&request);
                assert_eq!(class_of(&request), c);
                (c, n, k.to_vec(), v)
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn requests_are_named_and_classed() {
        assert_eq!(
            of(b"get a b\r\n"),
            (CommandClass::Get, "get", b"a".to_vec(), None)
        );
        assert_eq!(
            of(b"gats 5 k\r\n"),
            (CommandClass::Gat, "gats", b"k".to_vec(), None)
        );
        assert_eq!(
            of(b"cas k 0 0 2 7\r\nhi\r\n"),
            (CommandClass::Set, "cas", b"k".to_vec(), Some(2))
        );
        assert_eq!(of(b"incr n 1\r\n").0, CommandClass::Arith);
        assert_eq!(
            of(b"mg k v\r\n"),
            (CommandClass::MetaGet, "mg", b"k".to_vec(), None)
        );
        assert_eq!(
            of(b"ms k 3\r\nabc\r\n"),
            (CommandClass::MetaSet, "ms", b"k".to_vec(), Some(3))
        );
        assert_eq!(of(b"mn\r\n").0, CommandClass::MetaOther);
        assert_eq!(
            of(b"stats\r\n"),
            (CommandClass::Admin, "stats", std::vec::Vec::new(), None)
        );
    }
}

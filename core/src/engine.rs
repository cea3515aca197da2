//! The engine: the one place where the memcache protocol meets the store.
//!
//! [`Engine::process`] parses complete requests from the bytes a connection
//! (or datagram) delivered, executes them against the [`Store`] at the time
//! the caller passes in, and writes memcached 1.6's replies into the caller's
//! output buffer. It never allocates, never blocks, and never reads a clock.
//!
//! ```text
//!  input  ──parse──▶ Request ──execute──▶ Store
//!    ▲                                     │
//!    └── consumed            out ◀──compose┘  (resumable: Session)
//! ```
//!
//! Replies longer than `out` are resumable: a multi-key `get` remembers the
//! key it stopped at, a large value the byte offset it reached (continued with
//! [`Store::read_value`], never copied whole), `stats` the line. The request
//! whose reply is incomplete is not counted as consumed: the caller drains
//! `out`, keeps `input[consumed..]` and calls again; the [`Session`] knows
//! where the reply stopped. Side effects of a request (hits, touches, stores)
//! happen exactly once.
//!
//! `out` must hold at least [`MIN_OUTPUT_BYTES`]; a UDP datagram's payload
//! area (1392 bytes) does.

use core::sync::atomic::{AtomicU32, Ordering};

use crate::histogram::{ClassCounts, CommandClass};
use crate::klog::{self, Client, CommandLog, CommandRecord, REPLY_HEAD_BYTES};
use crate::proto::admin::StatsCommand;
use crate::proto::compose::{Full, Writer};
use crate::proto::meta::decode_key;
use crate::proto::{
    self, base64, ErrorKind, Keys, MetaRequest, ParseConfig, Parsed, Request, StoreCommand,
    KEY_MAX_BYTES, RELATIVE_EXPTIME_MAX_SECONDS,
};
use crate::store::{
    ArithRequest, AttachError, ConfigError, Eviction, GetOptions, ItemRef, PersistSummary, Store,
    StoreConfig, StoreError, StoreMode, StoreRequest, ValueLocation,
};
use crate::Time;

/// Smallest output buffer [`Engine::process`] works with: any single reply
/// line (a `VALUE`/`VA` header with every meta flag, an error) fits.
pub const MIN_OUTPUT_BYTES: usize = 1024;

/// An absolute expiry in the past: memcached's "already expired".
const EXPIRED: Time = 1;

/// Most [`StatsSource`]s one engine prints in `stats`.
pub const MAX_STATS_SOURCES: usize = 4;

/// Figures kept outside the engine (e.g. a front end's counters) that
/// `stats` prints after the engine's own, as `STAT <prefix><name> <value>`.
///
/// Contract: every call reports the same figures in the same order (a
/// `stats` reply that spans several output areas resumes by position); it
/// never blocks and never allocates.
pub trait StatsSource: Sync {
    /// Calls `f(prefix, name, value)` for every figure.
    fn for_each_stat(&self, f: &mut dyn FnMut(&str, &str, u64));
}

/// Engine configuration.
#[derive(Clone, Copy, Debug)]
pub struct EngineConfig {
    /// The store.
    pub store: StoreConfig,
    /// Reported by `version` and `stats`.
    pub version: &'static str,
    /// Process id, for `stats`.
    pub pid: u32,
    /// When the server started (Unix seconds), for `stats uptime`.
    pub started_at: Time,
    /// Worker threads, for `stats`.
    pub threads: u32,
    /// Connection limit, for `stats`.
    pub max_connections: u32,
    /// TCP port, for `stats settings` (0 = off).
    pub tcp_port: u16,
    /// UDP port, for `stats settings` (0 = off).
    pub udp_port: u16,
    /// memcached's `-I`: item size limit in memcached's accounting (see
    /// [`proto::item_too_large`]). Should not exceed what the store holds.
    pub item_size_max_bytes: usize,
    /// Longest `get` line accepted while waiting for its newline (never
    /// below `line_max_bytes`).
    pub get_line_max_bytes: usize,
    /// Longest other request line accepted while waiting for its newline;
    /// a longer one closes the connection without a reply and counts
    /// `error_closed`. Default [`proto::LINE_MAX_BYTES`], memcached's fixed
    /// 2048. See [`ParseConfig::line_max_bytes`].
    pub line_max_bytes: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            store: StoreConfig::default(),
            version: env!("CARGO_PKG_VERSION"),
            pid: 0,
            started_at: 0,
            threads: 1,
            max_connections: 1024,
            tcp_port: 11211,
            udp_port: 0,
            item_size_max_bytes: proto::ITEM_SIZE_MAX_BYTES,
            get_line_max_bytes: proto::GET_LINE_MAX_BYTES,
            line_max_bytes: proto::LINE_MAX_BYTES,
        }
    }
}

crate::metrics! {
    /// Protocol-level counters of one [`Engine`], named as memcached's `stats`
    /// where memcached has the statistic. Front ends update the connection
    /// gauges and counters.
    pub struct EngineStats {
        curr_connections: Gauge("connections") "open connections (front ends update)",
        total_connections: Counter("connections") "connections accepted (front ends update)",
        rejected_connections: Counter("connections") "connections refused at the limit (front ends update)",
        conn_yields: Counter("yields") "times a connection yielded to others with input left (front ends update)",
        bytes_read: Counter("bytes") "bytes received from clients (front ends update)",
        bytes_written: Counter("bytes") "bytes sent to clients (front ends update)",
        cmd_get: Counter("keys") "keys looked up by get/gets/mg",
        cmd_set: Counter("requests") "storage commands (set add replace append prepend cas ms)",
        cmd_flush: Counter("requests") "flush_all commands",
        cmd_touch: Counter("keys") "keys touched by touch/gat/gats/mg T",
        cmd_meta: Counter("requests") "meta commands (mg ms md ma mn me)",
        get_hits: Counter("keys") "lookups that found the key",
        get_misses: Counter("keys") "lookups that did not find the key",
        delete_hits: Counter("requests") "deletes of a present key",
        delete_misses: Counter("requests") "deletes of an absent key (or CAS mismatch)",
        incr_hits: Counter("requests") "incr of a present key",
        incr_misses: Counter("requests") "incr of an absent key",
        decr_hits: Counter("requests") "decr of a present key",
        decr_misses: Counter("requests") "decr of an absent key",
        cas_hits: Counter("requests") "cas stores that matched",
        cas_misses: Counter("requests") "cas on an absent key",
        cas_badval: Counter("requests") "cas with a stale value",
        touch_hits: Counter("keys") "touches of a present key",
        touch_misses: Counter("keys") "touches of an absent key",
        store_stored: Counter("requests") "storage commands that stored",
        store_not_stored: Counter("requests") "storage commands answered NOT_STORED/NS",
        store_exists: Counter("requests") "storage commands answered EXISTS/EX",
        store_not_found: Counter("requests") "storage commands answered NOT_FOUND/NF",
        store_too_large: Counter("requests") "values refused as too large (data swallowed)",
        store_no_memory: Counter("requests") "stores that failed for lack of memory",
        arith_non_numeric: Counter("requests") "incr/decr/ma on a non-numeric value",
        error_unknown_command: Counter("requests") "requests answered ERROR",
        error_bad_format: Counter("requests") "requests answered CLIENT_ERROR bad command line format (or delete usage)",
        error_bad_data_chunk: Counter("requests") "data blocks not ending in \\r\\n",
        error_bad_argument: Counter("requests") "invalid exptime/delta/stats arguments",
        error_meta_flags: Counter("requests") "meta commands with invalid flags or tokens",
        error_closed: Counter("connections") "connections closed for an over-long line or an HTTP request",
        swallowed_bytes: Counter("bytes") "bytes of refused values discarded",
        resume_gone: Counter("replies") "replies cut (connection closed) because a value vanished while being sent",
        replies_resumed: Counter("replies") "times a reply continued in a new output buffer",
    }
}

/// Which transport a [`Session`] serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// A TCP connection (long-lived session).
    Tcp,
    /// One UDP datagram (fresh session per request datagram).
    Udp,
}

/// A value partly copied into earlier output buffers.
#[derive(Clone, Copy, Debug)]
struct PartialValue {
    loc: ValueLocation,
    /// Bytes of `value ++ "\r\n"` already written.
    offset: usize,
}

/// Where the reply to the request at the start of the input stopped.
#[derive(Clone, Copy, Debug)]
struct Resume {
    /// Key (get), line (stats) or 0 (mg) to continue at.
    item: u32,
    /// A value still being copied for `item`.
    value: Option<PartialValue>,
}

/// Per-connection (or per-datagram) protocol state. Fixed size, no heap.
#[derive(Clone, Copy, Debug)]
pub struct Session {
    transport: Transport,
    /// Incoming bytes still to discard (data of a refused value).
    swallow: usize,
    resume: Option<Resume>,
    /// Requests answered since [`Session::take_completed`], by class.
    completed: ClassCounts,
    /// The peer, for the command log (set by front ends that know it).
    client: Option<Client>,
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
        }
    }

    /// Records the peer this session serves, for the command log.
    pub fn set_client(&mut self, client: Client) {
        self.client = Some(client);
    }

    /// The requests whose replies [`Engine::process`] finished writing since
    /// the last call, by [`CommandClass`]; resets them. A front end records
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

    /// Incoming bytes the session will still discard.
    pub fn swallow_pending(&self) -> usize {
        self.swallow
    }
}

/// What the caller should do after [`Engine::process`].
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

/// Result of [`Engine::process`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Input bytes fully handled (never more than the input).
    pub consumed: usize,
    /// Bytes of `out` written.
    pub written: usize,
    /// What next.
    pub status: Status,
}

/// Outcome of executing one request.
enum Exec {
    /// Reply complete.
    Done,
    /// Out of output space; the session holds the resume point (or nothing
    /// was done yet).
    Full,
    /// Close the connection after sending what was written.
    Close,
}

impl From<Full> for Exec {
    fn from(_: Full) -> Self {
        Exec::Full
    }
}

/// The engine: one per process, shared by every worker (`Sync`).
pub struct Engine<'a> {
    store: Store<'a>,
    cfg: EngineConfig,
    parse: ParseConfig,
    stats: EngineStats,
    verbosity: AtomicU32,
    /// Extra figures for `stats` (see [`Engine::add_stats_source`]).
    sources: spin::Mutex<heapless::Vec<&'a dyn StatsSource, MAX_STATS_SOURCES>>,
    /// The command log, if one is installed ([`Engine::set_command_log`]).
    klog: Option<&'a dyn CommandLog>,
}

/// Converts a memcached exptime to an absolute expiry (0 = never).
pub fn expire_at(exptime: i32, now: Time) -> Time {
    if exptime == 0 {
        0
    } else if exptime < 0 {
        EXPIRED
    } else if exptime > RELATIVE_EXPTIME_MAX_SECONDS {
        let at = exptime as u32;
        if at <= now {
            EXPIRED
        } else {
            at
        }
    } else {
        now.saturating_add(exptime as u32)
    }
}

/// A key, base64-decoded when needed, on the stack.
struct KeyBuf {
    buf: [u8; KEY_MAX_BYTES],
    len: usize,
}

impl KeyBuf {
    fn new(raw: &[u8], base64: bool) -> Option<KeyBuf> {
        let mut k = KeyBuf {
            buf: [0; KEY_MAX_BYTES],
            len: 0,
        };
        if base64 {
            let mut tmp = [0u8; KEY_MAX_BYTES];
            let d = decode_key(raw, &mut tmp)?;
            k.buf[..d.len()].copy_from_slice(d);
            k.len = d.len();
        } else {
            let n = raw.len().min(KEY_MAX_BYTES);
            k.buf[..n].copy_from_slice(&raw[..n]);
            k.len = n;
        }
        Some(k)
    }
    fn get(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// Writes ` k<key>` (base64 plus ` b` for binary keys).
fn put_meta_key(w: &mut Writer<'_>, key: &[u8], binary: bool) -> Result<(), Full> {
    w.put(b" k")?;
    if binary {
        let mut enc = [0u8; base64::encoded_len(KEY_MAX_BYTES)];
        let n = base64::encode(key, &mut enc).ok_or(Full)?;
        w.put(&enc[..n])?;
        w.put(b" b")
    } else {
        w.put(key)
    }
}

/// Writes ` O...` and ` k...` flags in request order (the miss/status path).
fn put_opaque_and_key(w: &mut Writer<'_>, m: &MetaRequest<'_>, key: &[u8]) -> Result<(), Full> {
    for f in m.flag_words {
        match f[0] {
            b'O' => {
                w.put_byte(b' ')?;
                w.put(f)?;
            }
            b'k' => put_meta_key(w, key, m.flags.base64)?,
            _ => {}
        }
    }
    Ok(())
}

/// The exptime a new (vivified) item ends with: memcached applies `T` and
/// `N` in request order, so the later of the two wins.
fn last_ttl(m: &MetaRequest<'_>, vivify: i32) -> i32 {
    let t_last = m
        .flag_words
        .filter(|w| matches!(w[0], b'T' | b'N'))
        .last()
        .is_some_and(|w| w[0] == b'T');
    match (t_last, m.flags.ttl) {
        (true, Some(t)) => t,
        _ => vivify,
    }
}

/// Remaining TTL as memcached's meta `t` flag prints it.
fn ttl_left(expire_at: Time, now: Time) -> i64 {
    if expire_at == 0 {
        -1
    } else {
        i64::from(expire_at.wrapping_sub(now))
    }
}

/// Copies the rest of `value ++ "\r\n"` from `offset`; returns the new offset.
fn put_value_from(w: &mut Writer<'_>, value: &[u8], offset: usize) -> usize {
    let mut off = offset;
    if off < value.len() {
        off += w.put_partial(&value[off..]);
    }
    if off >= value.len() {
        let crlf_done = off - value.len();
        if crlf_done < 2 {
            off += w.put_partial(&b"\r\n"[crlf_done..]);
        }
    }
    off
}

impl<'a> Engine<'a> {
    /// Arena bytes [`Engine::new`] needs for `cfg`.
    pub fn required_bytes(cfg: &EngineConfig) -> Result<usize, ConfigError> {
        cfg.store.required_bytes()
    }

    /// Builds the engine and its store inside `arena`.
    pub fn new(cfg: &EngineConfig, arena: &'a mut [u8]) -> Result<Self, ConfigError> {
        let store = Store::new(&cfg.store, arena)?;
        Ok(Self::with_store(cfg, store))
    }

    /// Reattaches to an arena saved by [`Engine::persist`] (see
    /// [`Store::attach`]): the items, their expiries and cas values come
    /// back; protocol counters start from zero. On error nothing in the
    /// arena was written and the caller starts cold with [`Engine::new`].
    pub fn attach(cfg: &EngineConfig, arena: &'a mut [u8], now: Time) -> Result<Self, AttachError> {
        let store = Store::attach(&cfg.store, arena, now)?;
        Ok(Self::with_store(cfg, store))
    }

    /// Saves the store for a warm restart ([`Store::persist`]) and gives
    /// up the arena. Call after every front end has stopped.
    pub fn persist(self, now: Time) -> PersistSummary {
        self.store.persist(now)
    }

    fn with_store(cfg: &EngineConfig, store: Store<'a>) -> Self {
        Engine {
            store,
            cfg: *cfg,
            parse: ParseConfig {
                item_size_max_bytes: cfg.item_size_max_bytes,
                get_line_max_bytes: cfg.get_line_max_bytes,
                line_max_bytes: cfg.line_max_bytes,
            },
            stats: EngineStats::new(),
            verbosity: AtomicU32::new(0),
            sources: spin::Mutex::new(heapless::Vec::new()),
            klog: None,
        }
    }

    /// Installs the command log: from now on every request is offered to
    /// `log.sample()`, and sampled ones are given to `log.record()`.
    pub fn set_command_log(&mut self, log: &'a dyn CommandLog) {
        self.klog = Some(log);
    }

    /// Adds figures kept elsewhere to what `stats` prints, after the
    /// engine's own. Returns `false` (and adds nothing) when
    /// [`MAX_STATS_SOURCES`] are already registered.
    pub fn add_stats_source(&self, source: &'a dyn StatsSource) -> bool {
        self.sources.lock().push(source).is_ok()
    }

    /// Calls `f(prefix, name, value)` for every figure of every registered
    /// [`StatsSource`], in the order `stats` prints them (for exporters
    /// other than `stats`, e.g. an admin endpoint).
    pub fn for_each_source_stat(&self, f: &mut dyn FnMut(&str, &str, u64)) {
        for source in self.sources.lock().iter() {
            source.for_each_stat(f);
        }
    }

    /// Protocol counters and connection gauges.
    pub fn stats(&self) -> &EngineStats {
        &self.stats
    }

    /// The store.
    pub fn store(&self) -> &Store<'a> {
        &self.store
    }

    /// The configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    /// Reclaims up to `max_segments` expired segments (bounded work).
    pub fn expire(&self, now: Time, max_segments: usize) -> usize {
        self.store.expire(now, max_segments)
    }

    /// Parses and executes the complete requests at the start of `input` at
    /// time `now`, writing replies into `out`. See [`Status`] for what the
    /// caller does next. Never panics; `consumed <= input.len()`.
    pub fn process(
        &self,
        session: &mut Session,
        input: &[u8],
        out: &mut [u8],
        now: Time,
    ) -> Progress {
        let mut w = Writer::new(out);
        let mut pos = 0usize;
        let status = loop {
            if session.swallow > 0 {
                let n = session.swallow.min(input.len() - pos);
                pos += n;
                session.swallow -= n;
                self.stats.swallowed_bytes.add(n as u64);
                if session.swallow > 0 {
                    break Status::NeedInput;
                }
            }
            if pos >= input.len() {
                break Status::NeedInput;
            }
            match proto::parse(&input[pos..], &self.parse) {
                Parsed::NeedMore => break Status::NeedInput,
                Parsed::Error(e) => {
                    if e.kind.closes() {
                        self.stats.error_closed.incr();
                        session.completed.add(CommandClass::Invalid);
                        session.resume = None;
                        break Status::Close;
                    }
                    if !e.noreply && w.remaining() < e.kind.message().len() + 2 {
                        break Status::OutputFull;
                    }
                    self.count_error(e.kind);
                    session.completed.add(CommandClass::Invalid);
                    if !e.noreply {
                        // space was checked above
                        let _ = w.line(e.kind.message());
                    }
                    let avail = input.len() - pos;
                    if e.skip > avail {
                        session.swallow = e.skip - avail;
                        pos = input.len();
                    } else {
                        pos += e.skip;
                    }
                }
                Parsed::Request { request, consumed } => {
                    let class = klog::class_of(&request);
                    // a resumed reply was offered to the log when it began
                    let sampled = session.resume.is_none() && self.klog.is_some_and(|k| k.sample());
                    let mark = w.pos();
                    let exec = self.execute(session, request, &mut w, now);
                    if sampled && (w.pos() > mark || !matches!(exec, Exec::Full)) {
                        if let Some(log) = self.klog {
                            let (_, command, key, value_bytes) = klog::describe(&request);
                            let reply = &w.written()[mark..];
                            log.record(&CommandRecord {
                                now,
                                transport: session.transport,
                                client: session.client,
                                command,
                                key,
                                value_bytes,
                                reply_head: &reply[..reply.len().min(REPLY_HEAD_BYTES)],
                            });
                        }
                    }
                    match exec {
                        Exec::Done => {
                            session.resume = None;
                            session.completed.add(class);
                            pos += consumed;
                        }
                        Exec::Full => {
                            if w.pos() == 0 {
                                // not even one reply unit fits: the caller's buffer is too small
                                session.resume = None;
                                break Status::Close;
                            }
                            if session.resume.is_some() {
                                self.stats.replies_resumed.incr();
                            }
                            break Status::OutputFull;
                        }
                        Exec::Close => {
                            session.resume = None;
                            session.completed.add(class);
                            pos += consumed;
                            break Status::Close;
                        }
                    }
                }
            }
        };
        Progress {
            consumed: pos,
            written: w.pos(),
            status,
        }
    }

    fn count_error(&self, kind: ErrorKind) {
        let s = &self.stats;
        match kind {
            ErrorKind::UnknownCommand | ErrorKind::ShutdownDisabled => {
                s.error_unknown_command.incr()
            }
            ErrorKind::BadFormat | ErrorKind::DeleteUsage => s.error_bad_format.incr(),
            ErrorKind::BadDataChunk => {
                s.error_bad_data_chunk.incr();
                s.cmd_set.incr();
            }
            ErrorKind::InvalidExptime | ErrorKind::InvalidDelta | ErrorKind::StatsDetailUsage => {
                s.error_bad_argument.incr()
            }
            ErrorKind::LineTooLong | ErrorKind::Http => s.error_closed.incr(),
            _ => s.error_meta_flags.incr(),
        }
    }

    /// Executes one request. Small replies are written whole or not at all
    /// (space is checked before any side effect); get/mg/stats replies are
    /// resumable.
    fn execute(
        &self,
        session: &mut Session,
        req: Request<'_>,
        w: &mut Writer<'_>,
        now: Time,
    ) -> Exec {
        if !matches!(
            req,
            Request::Get { .. } | Request::MetaGet(_) | Request::Stats(_)
        ) && w.remaining() < MIN_OUTPUT_BYTES
        {
            return Exec::Full;
        }
        match self.execute_small(session, req, w, now) {
            Ok(e) => e,
            Err(Full) => Exec::Full,
        }
    }

    /// [`Engine::execute`] after the space check; `Full` cannot happen for
    /// small replies once [`MIN_OUTPUT_BYTES`] are free.
    fn execute_small(
        &self,
        session: &mut Session,
        req: Request<'_>,
        w: &mut Writer<'_>,
        now: Time,
    ) -> Result<Exec, Full> {
        Ok(match req {
            Request::Get { keys, cas, touch } => self.exec_get(session, keys, cas, touch, w, now),
            Request::Store(cmd) => self.exec_store(&cmd, w, now),
            Request::TooLarge {
                key,
                base64,
                unlink,
                noreply,
                swallow,
            } => {
                if unlink {
                    if let Some(k) = KeyBuf::new(key, base64) {
                        let _ = self.store.delete(k.get(), 0, now);
                    }
                }
                self.stats.store_too_large.incr();
                self.stats.cmd_set.incr();
                if !noreply {
                    w.line(b"SERVER_ERROR object too large for cache")?;
                }
                session.swallow = swallow;
                Exec::Done
            }
            Request::Delete { key, noreply } => {
                let reply: &[u8] = match self.store.delete(key, 0, now) {
                    Ok(()) => {
                        self.stats.delete_hits.incr();
                        b"DELETED"
                    }
                    Err(_) => {
                        self.stats.delete_misses.incr();
                        b"NOT_FOUND"
                    }
                };
                if !noreply {
                    w.line(reply)?;
                }
                Exec::Done
            }
            Request::Arith {
                incr,
                key,
                delta,
                noreply,
            } => {
                let op = ArithRequest {
                    incr,
                    delta,
                    cas: 0,
                    vivify: None,
                    expire_at: None,
                };
                let r = self.store.arith(key, &op, now);
                self.count_arith(incr, &r);
                if noreply {
                    return Ok(Exec::Done);
                }
                match r {
                    Ok((v, _)) => {
                        w.put_u64(v)?;
                        w.put(b"\r\n")?;
                    }
                    Err(StoreError::NotFound) => w.line(b"NOT_FOUND")?,
                    Err(StoreError::NonNumeric) => {
                        w.line(b"CLIENT_ERROR cannot increment or decrement non-numeric value")?
                    }
                    Err(StoreError::BadKey) => w.line(b"CLIENT_ERROR bad command line format")?,
                    Err(_) => w.line(b"SERVER_ERROR out of memory")?,
                }
                Exec::Done
            }
            Request::Touch {
                key,
                exptime,
                noreply,
            } => {
                self.stats.cmd_touch.incr();
                let reply: &[u8] = match self.store.touch(key, expire_at(exptime, now), now) {
                    Ok(()) => {
                        self.stats.touch_hits.incr();
                        b"TOUCHED"
                    }
                    Err(_) => {
                        self.stats.touch_misses.incr();
                        b"NOT_FOUND"
                    }
                };
                if !noreply {
                    w.line(reply)?;
                }
                Exec::Done
            }
            Request::FlushAll { delay, noreply } => {
                self.stats.cmd_flush.incr();
                let at = if delay > 0 {
                    expire_at(delay, now)
                } else {
                    now
                };
                self.store.flush(at, now);
                if !noreply {
                    w.line(b"OK")?;
                }
                Exec::Done
            }
            Request::Version => {
                w.put(b"VERSION ")?;
                w.line(self.cfg.version.as_bytes())?;
                Exec::Done
            }
            Request::Verbosity { level, noreply } => {
                self.verbosity.store(level.min(2), Ordering::Relaxed);
                if !noreply {
                    w.line(b"OK")?;
                }
                Exec::Done
            }
            Request::Quit => Exec::Close,
            Request::Stats(cmd) => self.exec_stats(session, cmd, w, now),
            Request::MetaNoop => {
                self.stats.cmd_meta.incr();
                w.line(b"MN")?;
                Exec::Done
            }
            Request::MetaGet(m) => self.exec_mg(session, &m, w, now),
            Request::MetaSet(m, data) => self.exec_ms(&m, data, w, now),
            Request::MetaDelete(m) => self.exec_md(&m, w, now),
            Request::MetaArith(m) => self.exec_ma(&m, w, now),
            Request::MetaDebug { key, base64 } => self.exec_me(key, base64, w, now),
        })
    }

    fn count_arith<T>(&self, incr: bool, r: &Result<T, StoreError>) {
        let s = &self.stats;
        match (incr, r) {
            (true, Ok(_)) => s.incr_hits.incr(),
            (false, Ok(_)) => s.decr_hits.incr(),
            (true, Err(StoreError::NotFound)) => s.incr_misses.incr(),
            (false, Err(StoreError::NotFound)) => s.decr_misses.incr(),
            (_, Err(StoreError::NonNumeric)) => s.arith_non_numeric.incr(),
            _ => {}
        }
    }

    /// Does `key` exist (without counting or bumping it)?
    fn exists(&self, key: &[u8], now: Time) -> bool {
        let opts = GetOptions {
            update_access: false,
            count: false,
            ..GetOptions::default()
        };
        self.store.get(key, now, opts, |_| ()).is_some()
    }

    /// Does memcached refuse arithmetic on `key` before comparing its CAS? It
    /// does for an empty value and for a value it stores chunked (items over
    /// half the item size limit).
    fn value_is_empty(&self, key: &[u8], now: Time) -> bool {
        let opts = GetOptions {
            update_access: false,
            count: false,
            ..GetOptions::default()
        };
        let chunked = self.cfg.item_size_max_bytes / 2;
        self.store
            .get(key, now, opts, |i| {
                i.value().is_empty()
                    || i.key().len() + i.value().len() + proto::ITEM_OVERHEAD_BYTES > chunked
            })
            .unwrap_or(false)
    }

    /// Stores, with memcached's rule that a CAS compare against 0 never
    /// matches (EXISTS if present, NOT_FOUND if absent).
    fn store_item(
        &self,
        req: &StoreRequest<'_>,
        compare_zero: bool,
        now: Time,
    ) -> Result<u64, StoreError> {
        if compare_zero {
            return Err(if self.exists(req.key, now) {
                StoreError::Exists
            } else {
                StoreError::NotFound
            });
        }
        self.store.store(req, now)
    }

    fn count_store(&self, r: &Result<u64, StoreError>, cas_mode: bool) {
        let s = &self.stats;
        match r {
            Ok(_) => {
                s.store_stored.incr();
                if cas_mode {
                    s.cas_hits.incr();
                }
            }
            Err(StoreError::NotStored) => s.store_not_stored.incr(),
            Err(StoreError::Exists) => {
                s.store_exists.incr();
                if cas_mode {
                    s.cas_badval.incr();
                }
            }
            Err(StoreError::NotFound) => {
                s.store_not_found.incr();
                if cas_mode {
                    s.cas_misses.incr();
                }
            }
            Err(StoreError::TooLarge) => s.store_too_large.incr(),
            Err(StoreError::NoMemory) => s.store_no_memory.incr(),
            Err(_) => {}
        }
    }

    fn exec_store(&self, cmd: &StoreCommand<'_>, w: &mut Writer<'_>, now: Time) -> Exec {
        use proto::storage::Mode;
        self.stats.cmd_set.incr();
        let mode = match cmd.mode {
            Mode::Set | Mode::Cas => StoreMode::Set,
            Mode::Add => StoreMode::Add,
            Mode::Replace => StoreMode::Replace,
            Mode::Append => StoreMode::Append,
            Mode::Prepend => StoreMode::Prepend,
        };
        let cas_mode = cmd.mode == Mode::Cas;
        let req = StoreRequest {
            mode,
            key: cmd.key,
            value: cmd.data,
            flags: cmd.flags,
            expire_at: expire_at(cmd.exptime, now),
            cas: cmd.cas,
            invalidate: false,
        };
        let r = self.store_item(&req, cas_mode && cmd.cas == 0, now);
        self.count_store(&r, cas_mode);
        if cmd.noreply {
            return Exec::Done;
        }
        let reply: &[u8] = match r {
            Ok(_) => b"STORED",
            Err(StoreError::NotStored) => b"NOT_STORED",
            Err(StoreError::Exists) => b"EXISTS",
            Err(StoreError::NotFound) => b"NOT_FOUND",
            Err(StoreError::TooLarge) => b"SERVER_ERROR object too large for cache",
            Err(StoreError::BadKey) => b"CLIENT_ERROR bad command line format",
            Err(_) => b"SERVER_ERROR out of memory storing object",
        };
        w.line(reply).ok();
        Exec::Done
    }

    /// Continues a value saved in the session; `Ok(true)` when complete.
    fn continue_value(
        &self,
        pv: &mut PartialValue,
        w: &mut Writer<'_>,
        now: Time,
    ) -> Result<bool, Exec> {
        let len = pv.loc.len();
        while pv.offset < len {
            if w.remaining() == 0 {
                return Ok(false);
            }
            match self.store.read_value(pv.loc, pv.offset, w.spare(), now) {
                Ok(0) | Err(_) => {
                    self.stats.resume_gone.incr();
                    return Err(Exec::Close);
                }
                Ok(n) => {
                    w.advance(n);
                    pv.offset += n;
                }
            }
        }
        pv.offset = put_value_from(w, &[], pv.offset - len) + len;
        Ok(pv.offset == len + 2)
    }

    /// memcached's counters for one key of a get/gets (or gat/gats).
    fn count_get(&self, touch: bool, hit: bool) {
        let s = &self.stats;
        match (touch, hit) {
            (true, true) => {
                s.cmd_touch.incr();
                s.touch_hits.incr();
            }
            (true, false) => {
                s.cmd_touch.incr();
                s.touch_misses.incr();
            }
            (false, true) => {
                s.cmd_get.incr();
                s.get_hits.incr();
            }
            (false, false) => {
                s.cmd_get.incr();
                s.get_misses.incr();
            }
        }
    }

    fn exec_get(
        &self,
        session: &mut Session,
        keys: Keys<'_>,
        cas: bool,
        touch: Option<i32>,
        w: &mut Writer<'_>,
        now: Time,
    ) -> Exec {
        let mut start = 0u32;
        if let Some(r) = session.resume {
            start = r.item;
            if let Some(mut pv) = r.value {
                match self.continue_value(&mut pv, w, now) {
                    Ok(true) => start += 1,
                    Ok(false) => {
                        session.resume = Some(Resume {
                            item: r.item,
                            value: Some(pv),
                        });
                        return Exec::Full;
                    }
                    Err(e) => return e,
                }
            }
        }
        let opts = GetOptions {
            touch: touch.map(|e| expire_at(e, now)),
            ..GetOptions::default()
        };
        if let Some(bad) = keys.first_too_long() {
            // As memcached: the keys before the long one are fetched (and
            // touched, and counted), then the error replaces the values.
            let err = ErrorKind::BadFormat.message();
            if w.remaining() < err.len() + 2 {
                return Exec::Full;
            }
            for key in keys.iter().take(bad) {
                let hit = self.store.get(key, now, opts, |_| ()).is_some();
                self.count_get(touch.is_some(), hit);
            }
            self.count_error(ErrorKind::BadFormat);
            // space was checked above
            let _ = w.line(err);
            return Exec::Done;
        }
        let mut index = 0u32;
        for key in keys.iter() {
            if index < start {
                index += 1;
                continue;
            }
            // a header line: "VALUE " key " " flags " " len " " cas "\r\n"
            if w.remaining() < key.len() + 64 {
                session.resume = Some(Resume {
                    item: index,
                    value: None,
                });
                return Exec::Full;
            }
            let hit = self.store.get(key, now, opts, |item: &ItemRef<'_>| {
                let value = item.value();
                let _ = w.put(b"VALUE ");
                let _ = w.put(item.key());
                let _ = w.put_byte(b' ');
                let _ = w.put_u64(u64::from(item.flags()));
                let _ = w.put_byte(b' ');
                let _ = w.put_u64(value.len() as u64);
                if cas {
                    let _ = w.put_byte(b' ');
                    let _ = w.put_u64(item.cas());
                }
                let _ = w.put(b"\r\n");
                let off = put_value_from(w, value, 0);
                if off == value.len() + 2 {
                    None
                } else {
                    Some(PartialValue {
                        loc: item.location(),
                        offset: off,
                    })
                }
            });
            self.count_get(touch.is_some(), hit.is_some());
            if let Some(Some(pv)) = hit {
                session.resume = Some(Resume {
                    item: index,
                    value: Some(pv),
                });
                return Exec::Full;
            }
            index += 1;
        }
        if w.put(b"END\r\n").is_err() {
            session.resume = Some(Resume {
                item: index,
                value: None,
            });
            return Exec::Full;
        }
        Exec::Done
    }

    fn exec_mg(
        &self,
        session: &mut Session,
        m: &MetaRequest<'_>,
        w: &mut Writer<'_>,
        now: Time,
    ) -> Exec {
        if let Some(r) = session.resume {
            if let Some(mut pv) = r.value {
                return match self.continue_value(&mut pv, w, now) {
                    Ok(true) => Exec::Done,
                    Ok(false) => {
                        session.resume = Some(Resume {
                            item: 0,
                            value: Some(pv),
                        });
                        Exec::Full
                    }
                    Err(e) => e,
                };
            }
        }
        if w.remaining() < MIN_OUTPUT_BYTES {
            return Exec::Full;
        }
        self.stats.cmd_meta.incr();
        let Some(key) = KeyBuf::new(m.key, m.flags.base64) else {
            w.line(ErrorKind::MetaKeyDecode.message()).ok();
            return Exec::Done;
        };
        let key = key.get();
        let f = &m.flags;
        let mut recache_below = f.recache.map(|r| {
            let at = expire_at(r, now);
            if at == 0 || at <= now {
                0
            } else {
                at - now
            }
        });
        let r_before_t = f.ttl.is_some()
            && m.flag_words
                .into_iter()
                .find(|w| matches!(w[0], b'R' | b'T'))
                .is_some_and(|w| w[0] == b'R');
        if let (Some(below), true) = (recache_below, r_before_t) {
            // memcached judges R against the TTL before a later T applies
            let peek = GetOptions {
                update_access: false,
                count: false,
                ..GetOptions::default()
            };
            let wins = self
                .store
                .get(key, now, peek, |i| {
                    !i.token_sent()
                        && i.expire_at() != 0
                        && i.expire_at() < now.saturating_add(below)
                })
                .unwrap_or(false);
            recache_below = if wins { Some(u32::MAX) } else { None };
        }
        // with R before T, judge R first and touch afterwards
        let late_touch = if r_before_t {
            f.ttl.map(|t| expire_at(t, now))
        } else {
            None
        };
        let opts = GetOptions {
            touch: if r_before_t {
                None
            } else {
                f.ttl.map(|t| expire_at(t, now))
            },
            update_access: !f.no_update,
            vivify: f.vivify.map(|n| expire_at(last_ttl(m, n), now)),
            recache_below,
            count: true,
        };
        let late_error = m.late_error;
        let mut created = false;
        let hit = self.store.get(key, now, opts, |item: &ItemRef<'_>| {
            created = item.created();
            if late_error.is_some() {
                return None;
            }
            let value = item.value();
            if f.value {
                let _ = w.put(b"VA ");
                let _ = w.put_u64(value.len() as u64);
            } else {
                let _ = w.put(b"HD");
            }
            // the TTL as memcached sees it at each flag: a new item starts
            // at 0 and takes T and N in order
            let mut exp = if item.created() { 0 } else { item.expire_at() };
            for word in m.flag_words {
                let _ = match word[0] {
                    b'T' => {
                        exp = f.ttl.map_or(exp, |t| expire_at(t, now));
                        Ok(())
                    }
                    b'N' if item.created() => {
                        exp = f.vivify.map_or(exp, |t| expire_at(t, now));
                        Ok(())
                    }
                    b's' => w.put(b" s").and_then(|_| w.put_u64(value.len() as u64)),
                    b't' => w.put(b" t").and_then(|_| w.put_i64(ttl_left(exp, now))),
                    b'c' => w.put(b" c").and_then(|_| w.put_u64(item.cas())),
                    b'f' => w
                        .put(b" f")
                        .and_then(|_| w.put_u64(u64::from(item.flags()))),
                    b'l' => w
                        .put(b" l")
                        .and_then(|_| w.put_u64(u64::from(now.saturating_sub(item.last_access())))),
                    b'h' => w.put(if item.fetched() { b" h1" } else { b" h0" }),
                    b'O' => w.put_byte(b' ').and_then(|_| w.put(word)),
                    // memcached marks only items stored with `b` as binary;
                    // one created by N prints its key raw
                    b'k' => put_meta_key(w, item.key(), f.base64 && !item.created()),
                    _ => Ok(()),
                };
            }
            if item.token_sent() {
                let _ = w.put(b" Z");
            }
            if item.stale() {
                let _ = w.put(b" X");
            }
            if item.won() {
                let _ = w.put(b" W");
            }
            let _ = w.put(b"\r\n");
            if f.value {
                let off = put_value_from(w, value, 0);
                if off != value.len() + 2 {
                    return Some(PartialValue {
                        loc: item.location(),
                        offset: off,
                    });
                }
            }
            None
        });
        if let (Some(at), Some(_), false) = (late_touch, hit, created) {
            let _ = self.store.touch(key, at, now);
        }
        if created && !f.no_update {
            // memcached bumps (marks fetched) the item it just created
            let bump = GetOptions {
                update_access: true,
                count: false,
                ..GetOptions::default()
            };
            let _ = self.store.get(key, now, bump, |_| ());
        }
        let touched = f.ttl.is_some();
        match (touched, hit.is_some()) {
            (true, true) => {
                self.stats.cmd_touch.incr();
                self.stats.touch_hits.incr();
            }
            (true, false) => {
                self.stats.cmd_touch.incr();
                self.stats.touch_misses.incr();
            }
            (false, true) => {
                self.stats.cmd_get.incr();
                self.stats.get_hits.incr();
            }
            (false, false) => {
                self.stats.cmd_get.incr();
                self.stats.get_misses.incr();
            }
        }
        if let Some(e) = late_error {
            self.stats.error_meta_flags.incr();
            w.line(e.message()).ok();
            return Exec::Done;
        }
        match hit {
            Some(Some(pv)) => {
                session.resume = Some(Resume {
                    item: 0,
                    value: Some(pv),
                });
                Exec::Full
            }
            Some(None) => Exec::Done,
            None => {
                if !f.quiet {
                    let _ = w.put(b"EN");
                    let _ = put_opaque_and_key(w, m, key);
                    let _ = w.put(b"\r\n");
                }
                Exec::Done
            }
        }
    }

    fn exec_ms(&self, m: &MetaRequest<'_>, data: &[u8], w: &mut Writer<'_>, now: Time) -> Exec {
        self.stats.cmd_meta.incr();
        self.stats.cmd_set.incr();
        let Some(key) = KeyBuf::new(m.key, m.flags.base64) else {
            w.line(ErrorKind::MetaKeyDecode.message()).ok();
            return Exec::Done;
        };
        let key = key.get();
        let f = &m.flags;
        let mode = match f.mode {
            b'E' => StoreMode::Add,
            b'A' => StoreMode::Append,
            b'P' => StoreMode::Prepend,
            b'R' => StoreMode::Replace,
            _ => StoreMode::Set,
        };
        let cas_mode = f.cas.is_some() && matches!(mode, StoreMode::Set | StoreMode::Replace);
        let cas = match mode {
            StoreMode::Add => 0,
            _ => f.cas.unwrap_or(0),
        };
        let invalidate = f.invalidate && cas_mode;
        let mut expire = f.ttl.map_or(0, |t| expire_at(t, now));
        if invalidate && cas != 0 {
            // memcached keeps the TTL of the item a stale value replaces
            let peek = GetOptions {
                update_access: false,
                count: false,
                ..GetOptions::default()
            };
            if let Some((old_cas, old_expire)) =
                self.store.get(key, now, peek, |i| (i.cas(), i.expire_at()))
            {
                if cas < old_cas {
                    expire = old_expire;
                }
            }
        }
        let req = StoreRequest {
            mode,
            key,
            value: data,
            flags: f.client_flags,
            expire_at: expire,
            cas,
            invalidate,
        };
        let mut r = self.store_item(&req, cas_mode && cas == 0, now);
        if r == Err(StoreError::NotFound) && matches!(mode, StoreMode::Append | StoreMode::Prepend)
        {
            // memcached: appending to a missing item is NOT_STORED, CAS or not
            r = Err(StoreError::NotStored);
        }
        self.count_store(&r, cas_mode);
        let code: &[u8] = match r {
            Ok(_) if f.quiet => return Exec::Done,
            Ok(_) => b"HD",
            Err(StoreError::NotStored) => b"NS",
            Err(StoreError::Exists) => b"EX",
            Err(StoreError::NotFound) => b"NF",
            Err(StoreError::TooLarge) => {
                w.line(b"SERVER_ERROR object too large for cache").ok();
                return Exec::Done;
            }
            Err(_) => {
                w.line(b"SERVER_ERROR out of memory storing object").ok();
                return Exec::Done;
            }
        };
        let _ = w.put(code);
        for word in m.flag_words {
            let _ = match word[0] {
                b'O' => w.put_byte(b' ').and_then(|_| w.put(word)),
                b'k' => put_meta_key(w, key, f.base64),
                b'c' => w
                    .put(b" c")
                    .and_then(|_| w.put_u64(*r.as_ref().unwrap_or(&0))),
                _ => Ok(()),
            };
        }
        let _ = w.put(b"\r\n");
        Exec::Done
    }

    fn exec_md(&self, m: &MetaRequest<'_>, w: &mut Writer<'_>, now: Time) -> Exec {
        self.stats.cmd_meta.incr();
        let Some(key) = KeyBuf::new(m.key, m.flags.base64) else {
            w.line(ErrorKind::MetaInvalidOrDuplicateFlag.message()).ok();
            return Exec::Done;
        };
        let key = key.get();
        let f = &m.flags;
        let r = match f.cas {
            Some(0) => Err(if self.exists(key, now) {
                StoreError::Exists
            } else {
                StoreError::NotFound
            }),
            // md I: mark stale (new cas, optional new TTL) instead of deleting
            cas if f.invalidate => self
                .store
                .invalidate(key, cas.unwrap_or(0), f.ttl.map(|t| expire_at(t, now)), now)
                .map(|_| ()),
            cas => self.store.delete(key, cas.unwrap_or(0), now),
        };
        let code: &[u8] = match r {
            Ok(()) => {
                if !f.invalidate {
                    self.stats.delete_hits.incr();
                }
                if f.quiet {
                    return Exec::Done;
                }
                b"HD"
            }
            Err(StoreError::Exists) => {
                self.stats.delete_misses.incr();
                b"EX"
            }
            Err(_) => {
                self.stats.delete_misses.incr();
                b"NF"
            }
        };
        let _ = w.put(code);
        let _ = put_opaque_and_key(w, m, key);
        let _ = w.put(b"\r\n");
        Exec::Done
    }

    fn exec_ma(&self, m: &MetaRequest<'_>, w: &mut Writer<'_>, now: Time) -> Exec {
        self.stats.cmd_meta.incr();
        let Some(key) = KeyBuf::new(m.key, m.flags.base64) else {
            w.line(ErrorKind::MetaInvalidOrDuplicateFlag.message()).ok();
            return Exec::Done;
        };
        let key = key.get();
        let f = &m.flags;
        let incr = !matches!(f.mode, b'D' | b'-');
        let op = ArithRequest {
            incr,
            delta: f.delta.unwrap_or(1),
            cas: f.cas.unwrap_or(0),
            vivify: f.vivify.map(|n| (f.initial, expire_at(n, now))),
            // protocol.txt: T updates the TTL (memcached 1.6.18 keeps it only
            // when the number is updated in place)
            expire_at: f.ttl.map(|t| expire_at(t, now)),
        };
        // memcached answers a vivifying miss even in quiet mode
        let existed = f.vivify.is_none() || self.exists(key, now);
        let mut r = self.store.arith(key, &op, now);
        if r == Err(StoreError::Exists) && self.value_is_empty(key, now) {
            // memcached rejects an empty value before comparing the CAS
            r = Err(StoreError::NonNumeric);
        }
        self.count_arith(incr, &r);
        if let (Some(e), false) = (
            m.late_error,
            matches!(r, Err(StoreError::NonNumeric) | Err(StoreError::NoMemory)),
        ) {
            // memcached reports an arithmetic failure before looking at flags
            self.stats.error_meta_flags.incr();
            w.line(e.message()).ok();
            return Exec::Done;
        }
        match r {
            Ok((value, cas)) => {
                if f.quiet && existed {
                    return Exec::Done;
                }
                let mut digits = [0u8; proto::number::U64_DIGITS_MAX];
                let n = proto::number::write_u64(value, &mut digits).unwrap_or(0);
                if f.value {
                    let _ = w.put(b"VA ");
                    let _ = w.put_u64(n as u64);
                } else {
                    let _ = w.put(b"HD");
                }
                // the TTL as memcached sees it at each flag: a new item
                // starts at 0 and takes T and N in order
                let mut exp: Option<Time> = if existed { None } else { Some(0) };
                for word in m.flag_words {
                    let _ = match word[0] {
                        b'T' => {
                            exp = f.ttl.map(|t| expire_at(t, now)).or(exp);
                            Ok(())
                        }
                        b'N' if !existed => {
                            exp = f.vivify.map(|t| expire_at(t, now)).or(exp);
                            Ok(())
                        }
                        b'c' => w.put(b" c").and_then(|_| w.put_u64(cas)),
                        b't' => {
                            let e = *exp.get_or_insert_with(|| {
                                let opts = GetOptions {
                                    update_access: false,
                                    count: false,
                                    ..GetOptions::default()
                                };
                                self.store
                                    .get(key, now, opts, |i| i.expire_at())
                                    .unwrap_or(0)
                            });
                            w.put(b" t").and_then(|_| w.put_i64(ttl_left(e, now)))
                        }
                        b'O' => w.put_byte(b' ').and_then(|_| w.put(word)),
                        b'k' => put_meta_key(w, key, f.base64),
                        _ => Ok(()),
                    };
                }
                let _ = w.put(b"\r\n");
                if f.value {
                    let _ = w.put(&digits[..n]);
                    let _ = w.put(b"\r\n");
                }
            }
            Err(StoreError::NonNumeric) => {
                w.line(b"CLIENT_ERROR cannot increment or decrement non-numeric value")
                    .ok();
            }
            Err(StoreError::NotFound) | Err(StoreError::Exists) => {
                let _ = w.put(if r == Err(StoreError::NotFound) {
                    b"NF"
                } else {
                    b"EX"
                });
                let _ = put_opaque_and_key(w, m, key);
                let _ = w.put(b"\r\n");
            }
            Err(StoreError::NotStored) => {
                let _ = w.put(b"NS");
                let _ = put_opaque_and_key(w, m, key);
                let _ = w.put(b"\r\n");
            }
            Err(_) => {
                w.line(b"SERVER_ERROR out of memory").ok();
            }
        }
        Exec::Done
    }

    fn exec_me(&self, raw: &[u8], base64: bool, w: &mut Writer<'_>, now: Time) -> Exec {
        self.stats.cmd_meta.incr();
        let Some(key) = KeyBuf::new(raw, base64) else {
            w.line(b"CLIENT_ERROR bad command line format").ok();
            return Exec::Done;
        };
        let key = key.get();
        let opts = GetOptions {
            update_access: false,
            count: false,
            ..GetOptions::default()
        };
        let found = self.store.get(key, now, opts, |item: &ItemRef<'_>| {
            let _ = w.put(b"ME ");
            if base64 {
                let mut enc = [0u8; base64::encoded_len(KEY_MAX_BYTES)];
                let n = base64::encode(item.key(), &mut enc).unwrap_or(0);
                let _ = w.put(&enc[..n]);
            } else {
                let _ = w.put(item.key());
            }
            let _ = w.put(b" exp=");
            let exp = if item.expire_at() == 0 {
                -1
            } else {
                i64::from(now) - i64::from(item.expire_at())
            };
            let _ = w.put_i64(exp);
            let _ = w.put(b" la=");
            let _ = w.put_u64(u64::from(now.saturating_sub(item.last_access())));
            let _ = w.put(b" cas=");
            let _ = w.put_u64(item.cas());
            let _ = w.put(if item.fetched() {
                &b" fetch=yes"[..]
            } else {
                b" fetch=no"
            });
            let _ = w.put(b" cls=1 size=");
            let _ = w.put_u64(
                (item.key().len() + item.value().len() + proto::ITEM_OVERHEAD_BYTES) as u64,
            );
            let _ = w.put(b"\r\n");
        });
        if found.is_none() {
            w.line(b"EN").ok();
        }
        Exec::Done
    }

    fn exec_stats(
        &self,
        session: &mut Session,
        cmd: StatsCommand,
        w: &mut Writer<'_>,
        now: Time,
    ) -> Exec {
        match cmd {
            StatsCommand::Reset => {
                if w.remaining() < MIN_OUTPUT_BYTES {
                    return Exec::Full;
                }
                w.line(b"RESET").ok();
                Exec::Done
            }
            StatsCommand::DetailToggle => {
                if w.remaining() < MIN_OUTPUT_BYTES {
                    return Exec::Full;
                }
                w.line(b"OK").ok();
                Exec::Done
            }
            StatsCommand::DetailDump | StatsCommand::Empty => {
                if w.remaining() < MIN_OUTPUT_BYTES {
                    return Exec::Full;
                }
                w.line(b"END").ok();
                Exec::Done
            }
            StatsCommand::General | StatsCommand::Settings => {
                let skip = session.resume.map_or(0, |r| r.item);
                let mut sink = StatSink {
                    w,
                    skip,
                    index: 0,
                    full: false,
                };
                if cmd == StatsCommand::General {
                    self.general_stats(&mut sink, now);
                } else {
                    self.settings_stats(&mut sink);
                }
                if !sink.full && sink.index >= sink.skip && sink.w.put(b"END\r\n").is_err() {
                    sink.full = true;
                }
                if sink.full {
                    session.resume = Some(Resume {
                        item: sink.index,
                        value: None,
                    });
                    return Exec::Full;
                }
                Exec::Done
            }
        }
    }

    fn general_stats(&self, s: &mut StatSink<'_, '_>, now: Time) {
        let e = &self.stats;
        let st = self.store.stats();
        s.num(b"pid", u64::from(self.cfg.pid));
        s.num(
            b"uptime",
            u64::from(now.saturating_sub(self.cfg.started_at)),
        );
        s.num(b"time", u64::from(now));
        s.text(b"version", self.cfg.version.as_bytes());
        s.num(b"pointer_size", (usize::BITS) as u64);
        s.num(b"max_connections", u64::from(self.cfg.max_connections));
        s.num(b"curr_connections", e.curr_connections.get());
        s.num(b"total_connections", e.total_connections.get());
        s.num(b"rejected_connections", e.rejected_connections.get());
        s.num(b"cmd_get", e.cmd_get.get());
        s.num(b"cmd_set", e.cmd_set.get());
        s.num(b"cmd_flush", e.cmd_flush.get());
        s.num(b"cmd_touch", e.cmd_touch.get());
        s.num(b"cmd_meta", e.cmd_meta.get());
        s.num(b"get_hits", e.get_hits.get());
        s.num(b"get_misses", e.get_misses.get());
        s.num(b"get_expired", st.expired_lazy.get());
        s.num(b"delete_misses", e.delete_misses.get());
        s.num(b"delete_hits", e.delete_hits.get());
        s.num(b"incr_misses", e.incr_misses.get());
        s.num(b"incr_hits", e.incr_hits.get());
        s.num(b"decr_misses", e.decr_misses.get());
        s.num(b"decr_hits", e.decr_hits.get());
        s.num(b"cas_misses", e.cas_misses.get());
        s.num(b"cas_hits", e.cas_hits.get());
        s.num(b"cas_badval", e.cas_badval.get());
        s.num(b"touch_hits", e.touch_hits.get());
        s.num(b"touch_misses", e.touch_misses.get());
        s.num(b"store_too_large", e.store_too_large.get());
        s.num(b"store_no_memory", e.store_no_memory.get());
        s.num(b"bytes_read", e.bytes_read.get());
        s.num(b"bytes_written", e.bytes_written.get());
        s.num(b"limit_maxbytes", self.cfg.store.item_memory_bytes as u64);
        s.num(b"threads", u64::from(self.cfg.threads));
        s.num(b"conn_yields", e.conn_yields.get());
        s.num(b"bytes", st.item_bytes.get());
        s.num(b"curr_items", st.items.get());
        s.num(b"total_items", st.stores.get() + st.ariths.get());
        // memcached's `evictions`: live items removed to make room, whatever
        // the cause (segment eviction or a full hash chain).
        s.num(
            b"evictions",
            st.evicted_items.get() + st.hash_full_evictions.get(),
        );
        s.num(
            b"reclaimed",
            st.expired_lazy.get() + st.expired_segment_items.get(),
        );
        // Petrel's own counters, prefixed to keep memcached's namespace clean.
        e.for_each(|name, _, _, v| s.prefixed(b"petrel_", name.as_bytes(), v));
        st.for_each(|name, _, _, v| s.prefixed(b"store_", name.as_bytes(), v));
        for source in self.sources.lock().iter() {
            source.for_each_stat(&mut |prefix, name, v| {
                s.prefixed(prefix.as_bytes(), name.as_bytes(), v)
            });
        }
    }

    fn settings_stats(&self, s: &mut StatSink<'_, '_>) {
        let c = &self.cfg;
        s.num(b"maxbytes", c.store.item_memory_bytes as u64);
        s.num(b"maxconns", u64::from(c.max_connections));
        s.num(b"tcpport", u64::from(c.tcp_port));
        s.num(b"udpport", u64::from(c.udp_port));
        s.num(
            b"verbosity",
            u64::from(self.verbosity.load(Ordering::Relaxed)),
        );
        s.text(
            b"evictions",
            if c.store.eviction == Eviction::None {
                b"off"
            } else {
                b"on"
            },
        );
        s.num(b"num_threads", u64::from(c.threads));
        s.text(b"cas_enabled", b"yes");
        s.num(b"item_size_max", c.item_size_max_bytes as u64);
        s.text(b"flush_enabled", b"yes");
        s.num(b"hashpower_init", u64::from(c.store.hash_power));
        s.num(b"segment_bytes", c.store.segment_bytes as u64);
        s.num(b"shards", c.store.shards as u64);
        s.text(
            b"eviction_policy",
            match c.store.eviction {
                Eviction::None => b"none",
                Eviction::Fifo => b"fifo",
                Eviction::Random => b"random",
                Eviction::Cte => b"cte",
                Eviction::Merge { .. } => b"merge",
            },
        );
    }
}

/// Writes `STAT name value` lines, skipping the first `skip` (already sent)
/// and stopping at the first that does not fit.
struct StatSink<'w, 'o> {
    w: &'w mut Writer<'o>,
    skip: u32,
    index: u32,
    full: bool,
}

impl StatSink<'_, '_> {
    fn emit(&mut self, f: impl FnOnce(&mut Writer<'_>) -> Result<(), Full>) {
        if self.full {
            return;
        }
        if self.index >= self.skip {
            let mark = self.w.pos();
            if f(self.w).is_err() {
                self.w.rewind(mark);
                self.full = true;
                return;
            }
        }
        self.index += 1;
    }
    fn num(&mut self, name: &[u8], v: u64) {
        self.emit(|w| {
            w.put(b"STAT ")?;
            w.put(name)?;
            w.put_byte(b' ')?;
            w.put_u64(v)?;
            w.put(b"\r\n")
        })
    }
    fn text(&mut self, name: &[u8], v: &[u8]) {
        self.emit(|w| {
            w.put(b"STAT ")?;
            w.put(name)?;
            w.put_byte(b' ')?;
            w.put(v)?;
            w.put(b"\r\n")
        })
    }
    fn prefixed(&mut self, prefix: &[u8], name: &[u8], v: u64) {
        self.emit(|w| {
            w.put(b"STAT ")?;
            w.put(prefix)?;
            w.put(name)?;
            w.put_byte(b' ')?;
            w.put_u64(v)?;
            w.put(b"\r\n")
        })
    }
}

#[allow(dead_code)]
fn _assert_sync() {
    fn is_sync<T: Sync>() {}
    is_sync::<Engine<'static>>();
}

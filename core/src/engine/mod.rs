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
//!
//! The execution is split by command family, one file each, mirroring
//! [`crate::proto`]: `get.rs` (get/gets/gat/gats), `storage.rs`
//! (set/add/replace/append/prepend/cas), `delete.rs`, `touch.rs`, `arith.rs`
//! (incr/decr), `meta_get.rs`, `meta_set.rs`, `meta_delete.rs`,
//! `meta_arith.rs`, `meta.rs` (what the meta commands share, `mn`, `me`) and
//! `admin.rs` (flush_all, version, verbosity, stats). This file holds the
//! engine, its request loop and the dispatch; `session.rs` the per-connection
//! state.

mod admin;
mod arith;
mod auth;
mod binary;
mod delete;
mod get;
mod maintenance;
mod meta;
mod meta_arith;
mod meta_delete;
mod meta_get;
mod meta_set;
mod session;
mod storage;
mod touch;

pub use crate::proto::binary::BindingProtocol;
pub use crate::Transport;
pub use auth::{constant_time_eq, Authentication, Authenticator, ASCII_AUTH_LINE_MAX_BYTES};
pub use binary::expire_at_u32;
pub use maintenance::{CertReload, ShutdownHook};
pub use session::{Progress, Session, Status};

use core::sync::atomic::{AtomicU32, AtomicUsize};

use crate::histogram::CommandClass;
use crate::klog::{self, CommandLog, CommandRecord, REPLY_HEAD_BYTES};
use crate::proto::compose::{Full, Room, Writer};
use crate::proto::{self, ErrorKind, ParseConfig, Parsed, Request, RELATIVE_EXPTIME_MAX_SECONDS};
use crate::stats::StoreStats;
use crate::store::{AttachError, ConfigError, GetOptions, PersistSummary, Store, StoreConfig};
use crate::Time;

/// Smallest output buffer [`Engine::process`] works with: any single reply
/// line (a `VALUE`/`VA` header with every meta flag, an error) fits.
pub const MIN_OUTPUT_BYTES: usize = 1024;

/// An absolute expiry in the past: memcached's "already expired".
pub(super) const EXPIRED: Time = 1;

/// Most [`StatsSource`]s one engine prints in `stats`.
pub const MAX_STATS_SOURCES: usize = 8;

/// Figures kept outside the engine (e.g. a front end's counters) that
/// `stats` prints after the engine's own, as `STAT <prefix><name> <value>`.
///
/// Contract: every call reports the same figures in the same order (a
/// `stats` reply that spans several output areas resumes by position); it
/// never blocks and never allocates.
pub trait StatsSource: Sync {
    /// Calls `f(prefix, name, value)` for every figure.
    fn for_each_stat(&self, f: &mut dyn FnMut(&str, &str, u64));

    /// Calls `f(name, value)` for every line the source adds to `stats settings`, after the
    /// engine's own (`STAT <name> <value>`); none unless overridden. The same contract as
    /// [`StatsSource::for_each_stat`].
    fn for_each_setting(&self, _f: &mut dyn FnMut(&str, &[u8])) {}
}

/// The process's CPU time, which `stats` prints as memcached does
/// (`rusage_user`, `rusage_system`). The host reads it (`getrusage(2)` on
/// Linux): the core makes no syscalls.
///
/// Contract: never blocks and never allocates.
pub trait ProcessUsage: Sync {
    /// User and system CPU time used by the process so far, in microseconds.
    fn cpu_time_us(&self) -> (u64, u64);
}

/// Engine configuration.
#[derive(Clone, Copy, Debug)]
pub struct EngineConfig {
    /// The store.
    pub store: StoreConfig,
    /// Reported by `version` and `stats` `version`: the memcached version
    /// clients should see (default [`crate::MEMCACHED_VERSION`]).
    pub version: &'static str,
    /// Petrel's own version, reported by `stats` `petrel_version`.
    pub petrel_version: &'static str,
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
    /// `lru_crawler metadump` lists the keys (memcached's default; `-X`
    /// turns it off: `ERROR metadump not allowed`).
    pub dump_enabled: bool,
    /// memcached's `-B`: which protocols connections may speak (default:
    /// told apart by the first byte).
    pub protocol: BindingProtocol,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            store: StoreConfig::default(),
            version: crate::MEMCACHED_VERSION,
            petrel_version: env!("CARGO_PKG_VERSION"),
            pid: 0,
            started_at: 0,
            threads: 1,
            max_connections: 1024,
            tcp_port: 11211,
            udp_port: 0,
            item_size_max_bytes: proto::ITEM_SIZE_MAX_BYTES,
            get_line_max_bytes: proto::GET_LINE_MAX_BYTES,
            line_max_bytes: proto::LINE_MAX_BYTES,
            dump_enabled: true,
            protocol: BindingProtocol::Auto,
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
        memlimit_set: Counter("requests") "cache_memlimit commands that set a new memory limit",
        memlimit_refused: Counter("requests") "cache_memlimit commands refused (under 8 MiB, a byte count, or above the arena)",
        metadump_items: Counter("items") "items listed by lru_crawler metadump",
        shutdown_requests: Counter("requests") "shutdown commands obeyed (with -A)",
        binary_requests: Counter("requests") "requests in memcached's binary protocol (also counted in cmd_get, cmd_set, ...)",
        binary_errors: Counter("requests") "binary requests answered Unknown command or Invalid arguments, or closed for a bad magic byte",
        auth_cmds: Counter("requests") "authentication attempts (ASCII set or SASL auth/step), as memcached counts them",
        auth_errors: Counter("requests") "authentication attempts refused (unknown user or wrong password)",
        auth_unauthenticated: Counter("requests") "requests refused because the connection has not authenticated",
        auth_malformed: Counter("requests") "authentication requests that were malformed (bad token format or termination)",
    }
}

/// Outcome of executing one request.
pub(super) enum Exec {
    /// Reply complete.
    Done,
    /// Out of output space; the session holds the resume point (or nothing
    /// was done yet).
    Full,
    /// Close the connection after sending what was written.
    Close,
}

/// The engine: one per process, shared by every worker (`Sync`).
pub struct Engine<'a> {
    store: Store<'a>,
    cfg: EngineConfig,
    parse: ParseConfig,
    stats: EngineStats,
    /// The counters' values at the last `stats reset`: `stats` prints each
    /// counter less its mark, while [`Engine::stats`] (what metrics export)
    /// keeps counting from start.
    stats_mark: EngineStats,
    /// The store's counters at the last `stats reset`.
    store_mark: StoreStats,
    verbosity: AtomicU32,
    /// Extra figures for `stats` (see [`Engine::add_stats_source`]).
    sources: spin::Mutex<heapless::Vec<&'a dyn StatsSource, MAX_STATS_SOURCES>>,
    /// The command log, if one is installed ([`Engine::set_command_log`]).
    klog: Option<&'a dyn CommandLog>,
    /// The process's CPU time for `stats` ([`Engine::set_process_usage`]).
    usage: Option<&'a dyn ProcessUsage>,
    /// Called on `shutdown` ([`Engine::set_shutdown_hook`]); `None` = not
    /// allowed.
    shutdown: Option<&'a dyn ShutdownHook>,
    /// Called on `refresh_certs` ([`Engine::set_cert_reload`]); `None` = no TLS.
    cert_reload: Option<&'a dyn CertReload>,
    /// Bytes of item memory in use as the limit (`cache_memlimit`).
    memory_limit: AtomicUsize,
    /// Authentication required of connections ([`Engine::set_authentication`]).
    auth: Option<Authentication<'a>>,
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

/// Lookup options that only look: no access update, no counting, no touch,
/// vivify or recache (meta flag checks, CAS probes, `me`).
fn peek() -> GetOptions {
    GetOptions {
        update_access: false,
        count: false,
        ..GetOptions::default()
    }
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

    /// Builds the engine around a store the caller built (for example
    /// with [`Store::with_fill`] on memory known to be zero).
    pub fn with_store(cfg: &EngineConfig, store: Store<'a>) -> Self {
        Engine {
            store,
            cfg: *cfg,
            parse: ParseConfig {
                item_size_max_bytes: cfg.item_size_max_bytes,
                get_line_max_bytes: cfg.get_line_max_bytes,
                line_max_bytes: cfg.line_max_bytes,
            },
            stats: EngineStats::new(),
            stats_mark: EngineStats::new(),
            store_mark: StoreStats::new(),
            verbosity: AtomicU32::new(0),
            sources: spin::Mutex::new(heapless::Vec::new()),
            klog: None,
            usage: None,
            shutdown: None,
            cert_reload: None,
            memory_limit: AtomicUsize::new(cfg.store.item_memory_bytes),
            auth: None,
        }
    }

    /// Installs the command log: from now on every request is offered to
    /// `log.sample()`, and sampled ones are given to `log.record()`.
    pub fn set_command_log(&mut self, log: &'a dyn CommandLog) {
        self.klog = Some(log);
    }

    /// Installs the source of `rusage_user` / `rusage_system` in `stats`
    /// (printed after `pointer_size`, as memcached does; absent without one).
    pub fn set_process_usage(&mut self, usage: &'a dyn ProcessUsage) {
        self.usage = Some(usage);
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

    /// Protocol counters and connection gauges, counted from start: `stats
    /// reset` does not lower them (see [`Engine::reset_stats`]).
    pub fn stats(&self) -> &EngineStats {
        &self.stats
    }

    /// memcached's `stats reset`: from now on every counter that `stats`
    /// prints from the engine and the store (`cmd_get`, `total_items`,
    /// `evictions`, ..., `petrel_*` and `store_*` counters) reads what it
    /// counted since this call. Gauges (`curr_items`, `bytes`,
    /// `curr_connections`, ...) are kept, and so are the figures of
    /// [`StatsSource`]s. The counters themselves (`Engine::stats`,
    /// `Store::stats`) are not lowered: exporters of monotonic counters
    /// keep reading them.
    pub fn reset_stats(&self) {
        self.stats_mark.mark_counters(&self.stats);
        self.store_mark.mark_counters(self.store.stats());
    }

    /// The store.
    pub fn store(&self) -> &Store<'a> {
        &self.store
    }

    /// See [`Store::set_pause_recorder`].
    pub fn set_pause_recorder(
        &mut self,
        histogram: &'a crate::histogram::Histogram,
        clock: fn() -> u64,
    ) {
        self.store.set_pause_recorder(histogram, clock);
    }

    /// See [`Store::set_lock_wait`].
    pub fn set_lock_wait(&mut self, wait: fn()) {
        self.store.set_lock_wait(wait);
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
        match session.binary {
            Some(false) => {}
            Some(true) => return self.process_binary(session, input, out, now),
            None => match input.first() {
                None => {
                    return Progress {
                        consumed: 0,
                        written: 0,
                        status: Status::NeedInput,
                    }
                }
                Some(&first) => {
                    let binary = self.cfg.protocol.is_binary(first);
                    session.binary = Some(binary);
                    if binary {
                        return self.process_binary(session, input, out, now);
                    }
                }
            },
        }
        let mut w = Writer::new(out);
        let mut pos = 0usize;
        let status = loop {
            if !self.swallow_owed(session, input, &mut pos) {
                break Status::NeedInput;
            }
            if self.ascii_auth_required(session) {
                match self.ascii_auth(session, &input[pos..], &mut w) {
                    auth::AuthStep::NeedInput => break Status::NeedInput,
                    auth::AuthStep::Full => break Status::OutputFull,
                    auth::AuthStep::Close => break Status::Close,
                    auth::AuthStep::Done { consumed } => {
                        pos += consumed;
                        continue;
                    }
                }
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
                    if !e.noreply {
                        let message = e.kind.message();
                        let Ok(mut room) = w.reserve(message.len() + 2) else {
                            break Status::OutputFull;
                        };
                        room.line(message);
                    }
                    self.count_error(e.kind);
                    session.completed.add(CommandClass::Invalid);
                    session.skip(input, &mut pos, e.skip);
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
                    if let Some(status) =
                        self.settle(session, exec, class, consumed, &mut pos, w.pos())
                    {
                        break status;
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

    /// Executes one request. Small replies are written whole or not at all:
    /// [`MIN_OUTPUT_BYTES`] are reserved before any side effect, which holds
    /// the longest of them. get/mg/stats replies are resumable and reserve
    /// as they go.
    fn execute(
        &self,
        session: &mut Session,
        req: Request<'_>,
        w: &mut Writer<'_>,
        now: Time,
    ) -> Exec {
        match req {
            Request::Get { keys, cas, touch } => self.exec_get(session, keys, cas, touch, w, now),
            Request::MetaGet(m) => self.exec_mg(session, &m, w, now),
            Request::Stats(cmd) => self.exec_stats(session, cmd, w, now),
            Request::LruCrawlerMetadump(scope) => self.exec_metadump(session, scope, w, now),
            small => match w.reserve(MIN_OUTPUT_BYTES) {
                Ok(mut room) => self.execute_small(session, small, &mut room, now),
                Err(Full) => Exec::Full,
            },
        }
    }

    /// Executes a request whose reply fits in [`MIN_OUTPUT_BYTES`].
    fn execute_small(
        &self,
        session: &mut Session,
        req: Request<'_>,
        r: &mut Room<'_, '_>,
        now: Time,
    ) -> Exec {
        match req {
            Request::Store(cmd) => self.exec_store(&cmd, r, now),
            Request::TooLarge {
                key,
                base64,
                unlink,
                noreply,
                swallow,
            } => {
                session.swallow = swallow;
                self.exec_too_large(key, base64, unlink, noreply, r, now)
            }
            Request::Delete { key, noreply } => self.exec_delete(key, noreply, r, now),
            Request::Arith {
                incr,
                key,
                delta,
                noreply,
            } => self.exec_arith(incr, key, delta, noreply, r, now),
            Request::Touch {
                key,
                exptime,
                noreply,
            } => self.exec_touch(key, exptime, noreply, r, now),
            Request::FlushAll { delay, noreply } => self.exec_flush_all(delay, noreply, r, now),
            Request::Version => self.exec_version(r),
            Request::Verbosity { level, noreply } => self.exec_verbosity(level, noreply, r),
            Request::SlabsAutomove { noreply } => {
                if !noreply {
                    r.line(b"OK");
                }
                Exec::Done
            }
            Request::Quit => Exec::Close,
            Request::MetaNoop => self.exec_mn(r),
            Request::MetaSet(m, data) => self.exec_ms(&m, data, r, now),
            Request::MetaDelete(m) => self.exec_md(&m, r, now),
            Request::MetaArith(m) => self.exec_ma(&m, r, now),
            Request::MetaDebug { key, base64 } => self.exec_me(key, base64, r, now),
            // resumable, handled by `execute`
            Request::Shutdown(mode) => self.exec_shutdown(mode, r),
            Request::CacheMemlimit { megabytes, noreply } => {
                self.exec_cache_memlimit(megabytes, noreply, r, now)
            }
            Request::RefreshCerts { noreply } => self.exec_refresh_certs(noreply, r),
            Request::Get { .. }
            | Request::MetaGet(_)
            | Request::Stats(_)
            | Request::LruCrawlerMetadump(_) => Exec::Done,
        }
    }
}

#[allow(dead_code)]
fn _assert_sync() {
    fn is_sync<T: Sync>() {}
    is_sync::<Engine<'static>>();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::histogram::CommandClass;
    use crate::klog::CommandLog;

    /// (command, key, value bytes, reply head) of each record.
    type Seen = std::vec::Vec<(
        &'static str,
        std::vec::Vec<u8>,
        Option<usize>,
        std::vec::Vec<u8>,
    )>;

    struct Collect {
        every: bool,
        seen: std::sync::Mutex<Seen>,
    }

    impl CommandLog for Collect {
        fn sample(&self) -> bool {
            self.every
        }
        fn record(&self, r: &CommandRecord<'_>) {
            self.seen.lock().unwrap().push((
                r.command,
                r.key.to_vec(),
                r.value_bytes,
                r.reply_head.to_vec(),
            ));
        }
    }

    #[test]
    fn engine_reports_completed_classes_and_sampled_records() {
        use crate::store::StoreConfig;
        let cfg = EngineConfig {
            store: StoreConfig {
                item_memory_bytes: 4 << 20,
                ..StoreConfig::default()
            },
            ..EngineConfig::default()
        };
        let mut arena = std::vec![0u8; Engine::required_bytes(&cfg).unwrap()];
        let log = Collect {
            every: true,
            seen: Default::default(),
        };
        let mut e = Engine::new(&cfg, &mut arena).unwrap();
        e.set_command_log(&log);
        let mut s = Session::new(Transport::Tcp);
        let mut out = [0u8; 4096];
        let input =
            b"set k 0 0 3\r\nabc\r\nget k\r\nget k\r\nbogus\r\nmn\r\nset q 0 0 1 noreply\r\nx\r\n";
        let p = e.process(&mut s, input, &mut out, 100);
        assert_eq!(p.consumed, input.len());
        let done = s.take_completed();
        assert_eq!(done.get(CommandClass::Set), 2);
        assert_eq!(done.get(CommandClass::Get), 2);
        assert_eq!(done.get(CommandClass::Invalid), 1);
        assert_eq!(done.get(CommandClass::MetaOther), 1);
        assert_eq!(done.total(), 6);
        assert!(s.take_completed().is_empty());
        let seen = log.seen.lock().unwrap();
        assert_eq!(seen.len(), 5, "parse errors are not logged");
        assert_eq!(
            seen[0],
            ("set", b"k".to_vec(), Some(3), b"STORED\r\n".to_vec())
        );
        assert_eq!(seen[1].0, "get");
        assert_eq!(seen[1].3, b"VALUE k 0 3\r\nabc\r\nEND\r\n".to_vec());
        assert_eq!(seen[3].0, "mn");
        assert_eq!(
            seen[4],
            ("set", b"q".to_vec(), Some(1), std::vec::Vec::new())
        );
    }

    #[test]
    fn resumed_replies_are_logged_once_and_counted_when_complete() {
        let cfg = EngineConfig::default();
        let mut arena = std::vec![0u8; Engine::required_bytes(&cfg).unwrap()];
        let log = Collect {
            every: true,
            seen: Default::default(),
        };
        let mut e = Engine::new(&cfg, &mut arena).unwrap();
        e.set_command_log(&log);
        let mut s = Session::new(Transport::Udp);
        let mut out = [0u8; MIN_OUTPUT_BYTES];
        let mut set = b"set big 0 0 5000\r\n".to_vec();
        set.extend(core::iter::repeat_n(b'v', 5000));
        set.extend_from_slice(b"\r\n");
        let p = e.process(&mut s, &set, &mut std::vec![0u8; 8192], 100);
        assert_eq!(p.consumed, set.len());
        s.take_completed();
        let input = b"get big\r\n";
        let mut consumed = 0;
        let mut rounds = 0;
        loop {
            let p = e.process(&mut s, &input[consumed..], &mut out, 100);
            consumed += p.consumed;
            rounds += 1;
            if p.status != Status::OutputFull {
                break;
            }
            assert!(s.take_completed().is_empty(), "not complete yet");
        }
        assert!(rounds > 4);
        assert_eq!(s.take_completed().get(CommandClass::Get), 1);
        let seen = log.seen.lock().unwrap();
        assert_eq!(seen.len(), 2);
        assert!(seen[1].3.starts_with(b"VALUE big 0 5000\r\n"));
        assert_eq!(seen[1].3.len(), REPLY_HEAD_BYTES);
    }
}

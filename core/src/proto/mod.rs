//! The memcache ASCII protocol (memcached 1.6): an incremental, zero-copy
//! request parser and reply-writing helpers.
//!
//! [`parse`] looks at the bytes received so far and returns one of
//! - [`Parsed::NeedMore`]: no complete request yet (nothing consumed),
//! - [`Parsed::Request`]: one request borrowing its keys and data from the
//!   input, and how many input bytes it used,
//! - [`Parsed::Error`]: a request memcached answers with an error line, and how
//!   many bytes to skip (which may exceed the input: the caller then discards
//!   the remainder as it arrives).
//!
//! Pipelined requests parse one after another from `input[consumed..]`. The
//! parser never allocates and never panics; `consumed`/`skip` never exceed what
//! the request occupies.
//!
//! Behaviour follows memcached 1.6.18's `proto_text.c` exactly where a client
//! can see it: lines end at `\n` (a preceding `\r` is dropped), tokens are
//! separated by single spaces, a NUL ends the line, keys are 1..=250 bytes of
//! anything but a space (memcached does not reject control characters either),
//! numbers follow C's `strtol` family, errors are the same strings, and the
//! data of a too-large value is swallowed.
//!
//! One file per command family: [`get`], [`storage`], [`delete`], [`arith`],
//! [`touch`], [`admin`], [`meta`]; replies are composed with [`compose`].

pub mod admin;
pub mod arith;
pub mod base64;
pub mod binary;
pub mod compose;
pub mod delete;
pub mod get;
pub mod meta;
pub mod number;
pub mod storage;
pub mod token;
pub mod touch;

pub use get::Keys;
pub use meta::{MetaFlags, MetaRequest};
pub use storage::StoreCommand;
use token::Tokens;

/// memcached's `KEY_MAX_LENGTH`.
pub const KEY_MAX_BYTES: usize = 250;
/// memcached's fixed request line limit, the default of
/// [`ParseConfig::line_max_bytes`]: a request line longer than this (without
/// its `\n`) closes the connection, except for `get`/`gets`, which may be
/// longer. memcached closes when more than this arrived without a newline
/// (Petrel applies the rule however the bytes were split into reads, so a
/// longer line is refused even when its newline arrived in the same read).
pub const LINE_MAX_BYTES: usize = 2048;
/// Default bound on a `get`/`gets` line still waiting for its `\n`.
pub const GET_LINE_MAX_BYTES: usize = 64 * 1024;
/// memcached's `REALTIME_MAXDELTA`: larger exptimes are absolute Unix times.
pub const RELATIVE_EXPTIME_MAX_SECONDS: i32 = 60 * 60 * 24 * 30;
/// memcached's default `-I` (item size limit).
pub const ITEM_SIZE_MAX_BYTES: usize = 1024 * 1024;
/// memcached's per-item overhead counted against the item size limit: a
/// 48-byte header, the 8-byte CAS, the key's NUL, and the data's `\r\n`.
pub const ITEM_OVERHEAD_BYTES: usize = 48 + 8 + 1 + 2;

/// Parser settings.
#[derive(Clone, Copy, Debug)]
pub struct ParseConfig {
    /// Items (memcached's accounting, see [`item_too_large`]) above this size
    /// are refused with `SERVER_ERROR object too large for cache`.
    pub item_size_max_bytes: usize,
    /// Longest `get`/`gets` line accepted while waiting for its `\n` (the
    /// bound is never below [`line_max_bytes`](Self::line_max_bytes)).
    pub get_line_max_bytes: usize,
    /// Longest other request line (without its `\n`): when more than this
    /// arrived without a newline the request is [`ErrorKind::LineTooLong`]
    /// (the connection is closed, no reply). Default [`LINE_MAX_BYTES`],
    /// memcached's fixed limit.
    pub line_max_bytes: usize,
}

impl Default for ParseConfig {
    fn default() -> Self {
        ParseConfig {
            item_size_max_bytes: ITEM_SIZE_MAX_BYTES,
            get_line_max_bytes: GET_LINE_MAX_BYTES,
            line_max_bytes: LINE_MAX_BYTES,
        }
    }
}

/// memcached's `item_size_ok`: would an item of this key, client flags and
/// value length exceed `item_size_max` bytes?
pub fn item_too_large(key_len: usize, flags: u32, value_len: usize, item_size_max: usize) -> bool {
    let suffix = if flags == 0 { 0 } else { 4 };
    key_len
        .saturating_add(value_len)
        .saturating_add(ITEM_OVERHEAD_BYTES + suffix)
        > item_size_max
}

/// One parsed request, borrowing from the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request<'a> {
    /// `get`/`gets`/`gat`/`gats` (and memcached's legacy `bget`).
    Get {
        /// The keys, all validated to be 1..=250 bytes.
        keys: Keys<'a>,
        /// `gets`/`gats`: include the CAS value.
        cas: bool,
        /// `gat`/`gats`: the exptime to apply (memcached semantics).
        touch: Option<i32>,
    },
    /// `set add replace append prepend cas`.
    Store(StoreCommand<'a>),
    /// A storage command whose value exceeds the item size limit: reply
    /// `SERVER_ERROR object too large for cache` (unless `noreply`), discard
    /// `swallow` bytes of data that follow the line, and when `unlink` remove
    /// the existing item (memcached does so for `set` and every `ms`).
    TooLarge {
        /// The key (still base64 when `base64`).
        key: &'a [u8],
        /// The key is base64 (ms `b`).
        base64: bool,
        /// Remove the old item.
        unlink: bool,
        /// Classic `noreply` (meta commands always report this error).
        noreply: bool,
        /// Bytes of data to discard after the request line.
        swallow: usize,
    },
    /// `delete <key> [0] [noreply]`.
    Delete {
        /// The key.
        key: &'a [u8],
        /// No reply.
        noreply: bool,
    },
    /// `incr`/`decr <key> <delta> [noreply]`.
    Arith {
        /// `incr` (else `decr`).
        incr: bool,
        /// The key.
        key: &'a [u8],
        /// The delta.
        delta: u64,
        /// No reply.
        noreply: bool,
    },
    /// `touch <key> <exptime> [noreply]`.
    Touch {
        /// The key.
        key: &'a [u8],
        /// memcached exptime.
        exptime: i32,
        /// No reply.
        noreply: bool,
    },
    /// `flush_all [delay] [noreply]`.
    FlushAll {
        /// Delay as memcached exptime (0 = now).
        delay: i32,
        /// No reply.
        noreply: bool,
    },
    /// `version`.
    Version,
    /// `verbosity <level> [noreply]` (accepted and ignored, like a level change).
    Verbosity {
        /// The level (memcached caps it at 2).
        level: u32,
        /// No reply.
        noreply: bool,
    },
    /// `quit`: close the connection without a reply.
    Quit,
    /// `slabs automove <0|1|2>` or `slabs automove ratio <x>`, valid:
    /// answered `OK`. Petrel has no slab classes, so there is nothing to move.
    SlabsAutomove {
        /// No reply.
        noreply: bool,
    },
    /// `stats [subcommand]`.
    Stats(admin::StatsCommand),
    /// `mn`.
    MetaNoop,
    /// `mg`.
    MetaGet(MetaRequest<'a>),
    /// `ms` with its data block.
    MetaSet(MetaRequest<'a>, &'a [u8]),
    /// `md`.
    MetaDelete(MetaRequest<'a>),
    /// `ma`.
    MetaArith(MetaRequest<'a>),
    /// `me <key> [b]`.
    MetaDebug {
        /// The key (base64 when `base64`).
        key: &'a [u8],
        /// The key is base64.
        base64: bool,
    },
    /// `shutdown [graceful]`.
    Shutdown(admin::ShutdownMode),
    /// `cache_memlimit <megabytes> [noreply]`.
    CacheMemlimit {
        /// The new limit in MiB, as memcached reads it (truncated to 32
        /// bits).
        megabytes: u32,
        /// No reply.
        noreply: bool,
    },
    /// `lru_crawler metadump <all|hash|class ids>`.
    LruCrawlerMetadump(admin::MetadumpScope),
    /// `refresh_certs [noreply]`: reload the TLS certificates.
    RefreshCerts {
        /// No reply on success (an error is still answered, as memcached does).
        noreply: bool,
    },
}

/// Why a request failed to parse; each maps to memcached's exact reply line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// `ERROR`
    UnknownCommand,
    /// `CLIENT_ERROR bad command line format`
    BadFormat,
    /// `CLIENT_ERROR bad data chunk`
    BadDataChunk,
    /// `CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]`
    DeleteUsage,
    /// `CLIENT_ERROR invalid exptime argument`
    InvalidExptime,
    /// `CLIENT_ERROR invalid numeric delta argument`
    InvalidDelta,
    /// `CLIENT_ERROR usage: stats detail on|off|dump`
    StatsDetailUsage,
    /// `ERROR: shutdown not enabled`
    ShutdownDisabled,
    /// `CLIENT_ERROR invalid flag`
    MetaInvalidFlag,
    /// `CLIENT_ERROR duplicate flag`
    MetaDuplicateFlag,
    /// `CLIENT_ERROR invalid or duplicate flag` (md, ma)
    MetaInvalidOrDuplicateFlag,
    /// `CLIENT_ERROR bad token in command line format`
    MetaBadToken,
    /// `CLIENT_ERROR incorrect length for M token`
    MetaModeLength,
    /// `CLIENT_ERROR invalid numeric initial value`
    MetaBadInitial,
    /// `CLIENT_ERROR invalid numeric delta value`
    MetaBadDelta,
    /// `CLIENT_ERROR options flags are too long` (mg)
    MetaTooManyFlagsGet,
    /// `CLIENT_ERROR options flags too long` (ms md ma)
    MetaTooManyFlags,
    /// `CLIENT_ERROR opaque token too long`
    MetaOpaqueTooLong,
    /// `CLIENT_ERROR invalid mode for ms M token`
    MetaSetMode,
    /// `CLIENT_ERROR invalid mode for ma M token`
    MetaArithMode,
    /// `CLIENT_ERROR error decoding key`
    MetaKeyDecode,
    /// No newline within [`ParseConfig::line_max_bytes`] (or the get line
    /// bound): close.
    LineTooLong,
    /// An HTTP request line: memcached closes the connection silently.
    Http,
}

impl ErrorKind {
    /// The reply line without `\r\n`; empty for kinds that close instead.
    pub fn message(self) -> &'static [u8] {
        match self {
            ErrorKind::UnknownCommand => b"ERROR",
            ErrorKind::BadFormat => b"CLIENT_ERROR bad command line format",
            ErrorKind::BadDataChunk => b"CLIENT_ERROR bad data chunk",
            ErrorKind::DeleteUsage => {
                b"CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]"
            }
            ErrorKind::InvalidExptime => b"CLIENT_ERROR invalid exptime argument",
            ErrorKind::InvalidDelta => b"CLIENT_ERROR invalid numeric delta argument",
            ErrorKind::StatsDetailUsage => b"CLIENT_ERROR usage: stats detail on|off|dump",
            ErrorKind::ShutdownDisabled => b"ERROR: shutdown not enabled",
            ErrorKind::MetaInvalidFlag => b"CLIENT_ERROR invalid flag",
            ErrorKind::MetaDuplicateFlag => b"CLIENT_ERROR duplicate flag",
            ErrorKind::MetaInvalidOrDuplicateFlag => b"CLIENT_ERROR invalid or duplicate flag",
            ErrorKind::MetaBadToken => b"CLIENT_ERROR bad token in command line format",
            ErrorKind::MetaModeLength => b"CLIENT_ERROR incorrect length for M token",
            ErrorKind::MetaBadInitial => b"CLIENT_ERROR invalid numeric initial value",
            ErrorKind::MetaBadDelta => b"CLIENT_ERROR invalid numeric delta value",
            ErrorKind::MetaTooManyFlagsGet => b"CLIENT_ERROR options flags are too long",
            ErrorKind::MetaTooManyFlags => b"CLIENT_ERROR options flags too long",
            ErrorKind::MetaOpaqueTooLong => b"CLIENT_ERROR opaque token too long",
            ErrorKind::MetaSetMode => b"CLIENT_ERROR invalid mode for ms M token",
            ErrorKind::MetaArithMode => b"CLIENT_ERROR invalid mode for ma M token",
            ErrorKind::MetaKeyDecode => b"CLIENT_ERROR error decoding key",
            ErrorKind::LineTooLong | ErrorKind::Http => b"",
        }
    }

    /// The connection must be closed (no reply is written).
    pub fn closes(self) -> bool {
        matches!(self, ErrorKind::LineTooLong | ErrorKind::Http)
    }

    /// Every kind, for counters and tests.
    pub const ALL: [ErrorKind; 23] = [
        ErrorKind::UnknownCommand,
        ErrorKind::BadFormat,
        ErrorKind::BadDataChunk,
        ErrorKind::DeleteUsage,
        ErrorKind::InvalidExptime,
        ErrorKind::InvalidDelta,
        ErrorKind::StatsDetailUsage,
        ErrorKind::ShutdownDisabled,
        ErrorKind::MetaInvalidFlag,
        ErrorKind::MetaDuplicateFlag,
        ErrorKind::MetaInvalidOrDuplicateFlag,
        ErrorKind::MetaBadToken,
        ErrorKind::MetaModeLength,
        ErrorKind::MetaBadInitial,
        ErrorKind::MetaBadDelta,
        ErrorKind::MetaTooManyFlagsGet,
        ErrorKind::MetaTooManyFlags,
        ErrorKind::MetaOpaqueTooLong,
        ErrorKind::MetaSetMode,
        ErrorKind::MetaArithMode,
        ErrorKind::MetaKeyDecode,
        ErrorKind::LineTooLong,
        ErrorKind::Http,
    ];
}

/// A parse error: the reply, whether `noreply` suppresses it, and the bytes
/// to skip (the request line, plus data memcached swallows; may exceed the
/// input).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// What went wrong.
    pub kind: ErrorKind,
    /// A classic command's `noreply` was seen: write nothing.
    pub noreply: bool,
    /// Bytes to discard from the start of the request.
    pub skip: usize,
}

/// Result of one parse step of either protocol: `R` is its request, `E`
/// what it says about a request it refuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step<R, E> {
    /// No complete request yet; nothing consumed.
    NeedMore,
    /// One request and the input bytes it occupies.
    Request {
        /// The request.
        request: R,
        /// Bytes consumed (never more than the input).
        consumed: usize,
    },
    /// A refused request.
    Error(E),
}

/// Result of one [`parse`] step.
pub type Parsed<'a> = Step<Request<'a>, ParseError>;

/// Shorthand used by the command parsers.
#[inline]
pub(crate) fn err<'a>(kind: ErrorKind, noreply: bool, skip: usize) -> Parsed<'a> {
    Parsed::Error(ParseError {
        kind,
        noreply,
        skip,
    })
}

/// A request line located in the input.
pub(crate) struct Line<'a> {
    /// The whole input (for data blocks that follow the line).
    pub input: &'a [u8],
    /// Bytes of the line including its `\n`.
    pub len: usize,
}

fn find_newline(input: &[u8]) -> Option<usize> {
    input.iter().position(|&b| b == b'\n')
}

fn is_long_get(input: &[u8]) -> bool {
    let spaces = input.iter().take_while(|&&b| b == b' ').count();
    if spaces > 100 {
        return false;
    }
    let s = &input[spaces..];
    s.starts_with(b"get ") || s.starts_with(b"gets ")
}

/// Parses the first request in `input`. See the module docs for the contract.
pub fn parse<'a>(input: &'a [u8], cfg: &ParseConfig) -> Parsed<'a> {
    // memcached closes a connection that sent more than 2048 bytes (here
    // `line_max_bytes`) without a newline, unless the line is a get/gets.
    // Searching only that far also keeps the work per call bounded.
    let limit = if is_long_get(input) {
        cfg.get_line_max_bytes.max(cfg.line_max_bytes)
    } else {
        cfg.line_max_bytes
    };
    let nl = match find_newline(&input[..input.len().min(limit.saturating_add(1))]) {
        Some(nl) => nl,
        None => {
            if input.len() > limit {
                return err(ErrorKind::LineTooLong, false, input.len());
            }
            return Parsed::NeedMore;
        }
    };
    let mut end = nl;
    if nl > 1 && input[nl - 1] == b'\r' {
        end = nl - 1;
    }
    let mut text = &input[..end];
    if let Some(nul) = text.iter().position(|&b| b == 0) {
        text = &text[..nul];
    }
    let line = Line { input, len: nl + 1 };
    let t = Tokens::new(text);
    dispatch(&t, &line, cfg)
}

fn dispatch<'a>(t: &Tokens<'a>, line: &Line<'a>, cfg: &ParseConfig) -> Parsed<'a> {
    let n = line.len;
    let cmd = t.get(0);
    if t.ntokens() < 2 || cmd.len() < 2 {
        return err(ErrorKind::UnknownCommand, false, n);
    }
    if cmd[0] == b'm' && cmd.len() == 2 {
        return meta::parse(cmd[1], t, line, cfg);
    }
    match cmd {
        b"get" | b"bget" => get::parse(t, n, false, false),
        b"gets" => get::parse(t, n, true, false),
        b"gat" => get::parse(t, n, false, true),
        b"gats" => get::parse(t, n, true, true),
        b"set" => storage::parse(t, line, storage::Mode::Set, cfg),
        b"add" => storage::parse(t, line, storage::Mode::Add, cfg),
        b"replace" => storage::parse(t, line, storage::Mode::Replace, cfg),
        b"append" => storage::parse(t, line, storage::Mode::Append, cfg),
        b"prepend" => storage::parse(t, line, storage::Mode::Prepend, cfg),
        b"cas" => storage::parse(t, line, storage::Mode::Cas, cfg),
        b"delete" => delete::parse(t, n),
        b"incr" => arith::parse(t, n, true),
        b"decr" => arith::parse(t, n, false),
        b"touch" => touch::parse(t, n),
        b"flush_all" => admin::parse_flush_all(t, n),
        b"version" => Parsed::Request {
            request: Request::Version,
            consumed: n,
        },
        b"quit" => Parsed::Request {
            request: Request::Quit,
            consumed: n,
        },
        b"verbosity" => admin::parse_verbosity(t, n),
        b"slabs" => admin::parse_slabs(t, n),
        b"stats" => admin::parse_stats(t, n),
        b"shutdown" => admin::parse_shutdown(t, n),
        b"cache_memlimit" => admin::parse_cache_memlimit(t, n),
        b"lru_crawler" => admin::parse_lru_crawler(t, n),
        b"refresh_certs" => Parsed::Request {
            request: Request::RefreshCerts {
                noreply: noreply_last(t),
            },
            consumed: n,
        },
        _ => {
            // memcached only checks for HTTP in its final branch, reached by
            // commands not starting with one of these letters.
            if !b"gsacidt".contains(&cmd[0]) && t.get(t.count() - 1).starts_with(b"HTTP/") {
                err(ErrorKind::Http, false, n)
            } else {
                err(ErrorKind::UnknownCommand, false, n)
            }
        }
    }
}

/// `set_noreply_maybe`: the last real token is exactly `noreply`.
#[inline]
pub(crate) fn noreply_last(t: &Tokens<'_>) -> bool {
    t.count() >= 1 && t.get(t.count() - 1) == b"noreply"
}

/// `<command> <key> <argument> [noreply]` (`incr`, `decr`, `touch`): the
/// request `build` makes of the key, the argument `arg` reads and `noreply`;
/// memcached's errors otherwise: `ERROR` for another number of tokens, a bad
/// format for a key over [`KEY_MAX_BYTES`], `bad_arg` for an argument `arg`
/// refuses (the last two with the request's `noreply`).
pub(crate) fn key_arg_request<'a, A>(
    t: &Tokens<'a>,
    n: usize,
    arg: impl FnOnce(&[u8]) -> Option<A>,
    bad_arg: ErrorKind,
    build: impl FnOnce(&'a [u8], A, bool) -> Request<'a>,
) -> Parsed<'a> {
    if t.ntokens() != 4 && t.ntokens() != 5 {
        return err(ErrorKind::UnknownCommand, false, n);
    }
    let noreply = noreply_last(t);
    let key = t.get(1);
    if key.len() > KEY_MAX_BYTES {
        return err(ErrorKind::BadFormat, noreply, n);
    }
    match arg(t.get(2)) {
        Some(a) => Parsed::Request {
            request: build(key, a, noreply),
            consumed: n,
        },
        None => err(bad_arg, noreply, n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(input: &[u8]) -> Parsed<'_> {
        parse(input, &ParseConfig::default())
    }

    fn error_of(input: &[u8]) -> ErrorKind {
        match p(input) {
            Parsed::Error(e) => e.kind,
            other => panic!("expected an error, got {other:?}"),
        }
    }

    #[test]
    fn needs_a_newline() {
        assert_eq!(p(b""), Parsed::NeedMore);
        assert_eq!(p(b"get a"), Parsed::NeedMore);
        assert_eq!(p(b"version\r"), Parsed::NeedMore);
    }

    #[test]
    fn empty_and_short_lines_are_errors() {
        for input in [
            &b"\r\n"[..],
            b"\n",
            b"x\r\n",
            b"  \r\n",
            b"GET a\r\n",
            b"get\r\n",
            b"mx\r\n",
            b"m\r\n",
        ] {
            assert_eq!(error_of(input), ErrorKind::UnknownCommand, "{input:?}");
        }
        assert_eq!(
            p(b"\r\n"),
            Parsed::Error(ParseError {
                kind: ErrorKind::UnknownCommand,
                noreply: false,
                skip: 2
            })
        );
    }

    #[test]
    fn long_lines_close() {
        let mut junk = [b'x'; LINE_MAX_BYTES + 1];
        assert_eq!(error_of(&junk), ErrorKind::LineTooLong);
        junk[..4].copy_from_slice(b"get ");
        assert_eq!(p(&junk), Parsed::NeedMore);
        assert_eq!(p(&junk[..LINE_MAX_BYTES]), Parsed::NeedMore);
        let mut long = [b'x'; 3000];
        long[2999] = b'\n';
        assert_eq!(error_of(&long), ErrorKind::LineTooLong);
        long[2048] = b'\n';
        assert_eq!(error_of(&long), ErrorKind::UnknownCommand);
    }

    /// A configured limit of `n`: a line of `n` bytes before its newline
    /// parses, one of `n + 1` closes, with or without its newline yet, and
    /// a `get` line may still be longer.
    #[test]
    fn configured_line_limit_on_both_sides() {
        for n in [300, 2047, 2049, 5000] {
            let cfg = ParseConfig {
                line_max_bytes: n,
                get_line_max_bytes: 1024,
                ..ParseConfig::default()
            };
            let line = |len: usize, tail: &[u8]| {
                let mut l = b"version ".to_vec();
                l.resize(len, b'x');
                l.extend_from_slice(tail);
                l
            };
            for tail in [&b"\n"[..], b"\r\n"] {
                // `\r` counts: it is part of what arrived before the `\n`.
                let at = line(n + 1 - tail.len(), tail);
                assert_eq!(at.len(), n + 1, "{n}");
                assert_eq!(
                    parse(&at, &cfg),
                    Parsed::Request {
                        request: Request::Version,
                        consumed: n + 1
                    },
                    "{n} {tail:?}"
                );
                let over = line(n + 2 - tail.len(), tail);
                assert_eq!(
                    parse(&over, &cfg),
                    Parsed::Error(ParseError {
                        kind: ErrorKind::LineTooLong,
                        noreply: false,
                        skip: over.len()
                    }),
                    "{n} {tail:?}"
                );
            }
            // No newline yet: waiting at `n` bytes, closed at `n + 1`.
            let partial = line(n + 1, b"");
            assert_eq!(parse(&partial[..n], &cfg), Parsed::NeedMore, "{n}");
            match parse(&partial, &cfg) {
                Parsed::Error(e) => {
                    assert_eq!((e.kind, e.skip), (ErrorKind::LineTooLong, n + 1), "{n}")
                }
                other => panic!("{n}: {other:?}"),
            }
            // A get line is bounded by the larger of the two limits: exactly
            // that many bytes before its newline parse, one more closes.
            let get_limit = n.max(1024);
            let mut get = b"get".to_vec();
            while get.len() < get_limit - 2 {
                get.extend_from_slice(b" k");
            }
            if get.len() == get_limit - 2 {
                get.push(b'k');
            }
            get.extend_from_slice(b"\r\n");
            assert_eq!(get.len(), get_limit + 1, "{n}");
            assert!(
                matches!(parse(&get, &cfg), Parsed::Request { consumed, .. } if consumed == get.len()),
                "{n}"
            );
            get.insert(4, b'k');
            assert!(
                matches!(parse(&get, &cfg), Parsed::Error(e) if e.kind == ErrorKind::LineTooLong),
                "{n}"
            );
        }
    }

    #[test]
    fn http_closes() {
        assert_eq!(error_of(b"GET / HTTP/1.1\r\n"), ErrorKind::Http);
    }

    #[test]
    fn admin_commands() {
        assert_eq!(
            p(b"version x\r\n"),
            Parsed::Request {
                request: Request::Version,
                consumed: 11
            }
        );
        assert_eq!(
            p(b"quit\n"),
            Parsed::Request {
                request: Request::Quit,
                consumed: 5
            }
        );
        // `-A` is the engine's to check: every form parses.
        assert_eq!(
            p(b"shutdown\r\n"),
            Parsed::Request {
                request: Request::Shutdown(admin::ShutdownMode::Immediate),
                consumed: 10
            }
        );
    }

    #[test]
    fn nul_ends_the_line() {
        match p(b"get a\0b c\r\n") {
            Parsed::Request {
                request: Request::Get { keys, .. },
                consumed,
            } => {
                assert_eq!(consumed, 11);
                assert_eq!(keys.iter().count(), 1);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn too_large_rule_matches_memcached() {
        // measured on memcached 1.6.18 -I 1m: 1048516 bytes with a 1-byte key
        assert!(!item_too_large(1, 0, 1_048_516, ITEM_SIZE_MAX_BYTES));
        assert!(item_too_large(1, 0, 1_048_517, ITEM_SIZE_MAX_BYTES));
        assert!(!item_too_large(250, 0, 1_048_267, ITEM_SIZE_MAX_BYTES));
        assert!(item_too_large(250, 0, 1_048_268, ITEM_SIZE_MAX_BYTES));
    }
}

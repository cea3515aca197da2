//! `flush_all [delay] [noreply]`, `verbosity <n> [noreply]`, `stats [sub]`,
//! `slabs automove ...`, `cache_memlimit <MiB> [noreply]`, `shutdown
//! [graceful]`, `lru_crawler metadump <all|hash|classes>`
//! (`version` and `quit` need no arguments and are handled by the dispatcher).

use super::number::{is_c_double, parse_i32_truncating, parse_u32_truncating};
use super::token::Tokens;
use super::{err, noreply_last, ErrorKind, Parsed, Request};

/// The `stats` subcommands Petrel answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatsCommand {
    /// `stats`: general statistics.
    General,
    /// `stats settings`.
    Settings,
    /// `stats reset`: the counters `stats` prints start again from zero;
    /// reply `RESET`.
    Reset,
    /// `stats detail on|off`: reply `OK` (per-prefix stats are not kept).
    DetailToggle,
    /// `stats detail dump`: an empty dump (`END`).
    DetailDump,
    /// `stats slabs`: Petrel has no slab classes: `active_slabs 0` and the
    /// segment memory in use as `total_malloced`.
    Slabs,
    /// `stats sizes`: `sizes_status disabled`, as memcached without `-o
    /// track_sizes`.
    Sizes,
    /// `stats items|conns|cachedump ...`: Petrel has no slab classes; an
    /// empty list (`END`).
    Empty,
}

/// What `shutdown` asked for (memcached 1.6.18 checks `-A` first).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShutdownMode {
    /// `shutdown`: stop now (memcached raises SIGINT).
    Immediate,
    /// `shutdown graceful` (memcached raises SIGUSR1).
    Graceful,
    /// Anything else: `CLIENT_ERROR invalid shutdown mode`.
    Invalid,
}

/// Which items `lru_crawler metadump` lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetadumpScope {
    /// `all` (memcached walks its LRUs) or `hash` (its hash table): every
    /// item.
    All,
    /// A comma-separated list of valid slab class ids (1..=63): the items
    /// of those classes (none in Petrel, which has no slab classes).
    Classes,
    /// Anything else: `BADCLASS invalid class id`.
    BadClass,
}

/// memcached's `MAX_NUMBER_OF_SLAB_CLASSES` (class ids are below it).
const SLAB_CLASSES_MAX: u32 = 64;

pub(super) fn parse_shutdown<'a>(t: &Tokens<'a>, n: usize) -> Parsed<'a> {
    let mode = match (t.ntokens(), t.get(1)) {
        (2, _) => ShutdownMode::Immediate,
        (3, b"graceful") => ShutdownMode::Graceful,
        _ => ShutdownMode::Invalid,
    };
    Parsed::Request {
        request: Request::Shutdown(mode),
        consumed: n,
    }
}

pub(super) fn parse_cache_memlimit<'a>(t: &Tokens<'a>, n: usize) -> Parsed<'a> {
    if t.ntokens() != 3 && t.ntokens() != 4 {
        return err(ErrorKind::UnknownCommand, false, n);
    }
    let noreply = noreply_last(t);
    match parse_u32_truncating(t.get(1)) {
        Some(megabytes) => Parsed::Request {
            request: Request::CacheMemlimit { megabytes, noreply },
            consumed: n,
        },
        None => err(ErrorKind::UnknownCommand, noreply, n),
    }
}

pub(super) fn parse_lru_crawler<'a>(t: &Tokens<'a>, n: usize) -> Parsed<'a> {
    if t.ntokens() != 4 || t.get(1) != b"metadump" {
        return err(ErrorKind::UnknownCommand, false, n);
    }
    let scope = match t.get(2) {
        b"all" | b"hash" => MetadumpScope::All,
        list => {
            let valid = list.split(|&b| b == b',').all(
                |id| matches!(parse_u32_truncating(id), Some(c) if c > 0 && c < SLAB_CLASSES_MAX),
            );
            if valid {
                MetadumpScope::Classes
            } else {
                MetadumpScope::BadClass
            }
        }
    };
    Parsed::Request {
        request: Request::LruCrawlerMetadump(scope),
        consumed: n,
    }
}

pub(super) fn parse_flush_all<'a>(t: &Tokens<'a>, n: usize) -> Parsed<'a> {
    let nt = t.ntokens();
    if !(2..=4).contains(&nt) {
        return err(ErrorKind::UnknownCommand, false, n);
    }
    let noreply = noreply_last(t);
    let mut delay = 0;
    if nt != if noreply { 3 } else { 2 } {
        match parse_i32_truncating(t.get(1)) {
            Some(d) => delay = d,
            None => return err(ErrorKind::InvalidExptime, noreply, n),
        }
    }
    Parsed::Request {
        request: Request::FlushAll { delay, noreply },
        consumed: n,
    }
}

pub(super) fn parse_verbosity<'a>(t: &Tokens<'a>, n: usize) -> Parsed<'a> {
    if t.ntokens() != 3 && t.ntokens() != 4 {
        return err(ErrorKind::UnknownCommand, false, n);
    }
    let noreply = noreply_last(t);
    match parse_u32_truncating(t.get(1)) {
        Some(level) => Parsed::Request {
            request: Request::Verbosity { level, noreply },
            consumed: n,
        },
        None => err(ErrorKind::BadFormat, noreply, n),
    }
}

/// memcached's `process_slabs_command` for `automove` (at least one argument;
/// anything else, `slabs reassign` included, is `ERROR`): a level must read
/// as `safe_strtoul` does (else `CLIENT_ERROR bad command line format`) and
/// be 0, 1 or 2 (else `ERROR`); `ratio` needs a `safe_strtod` number (else
/// `ERROR`). `noreply` silences all of these.
pub(super) fn parse_slabs<'a>(t: &Tokens<'a>, n: usize) -> Parsed<'a> {
    if t.ntokens() < 4 || t.get(1) != b"automove" {
        return err(ErrorKind::UnknownCommand, false, n);
    }
    let noreply = noreply_last(t);
    if t.get(2) == b"ratio" {
        if t.ntokens() < 5 || !is_c_double(t.get(3)) {
            return err(ErrorKind::UnknownCommand, noreply, n);
        }
    } else {
        match parse_u32_truncating(t.get(2)) {
            None => return err(ErrorKind::BadFormat, noreply, n),
            Some(0..=2) => {}
            Some(_) => return err(ErrorKind::UnknownCommand, noreply, n),
        }
    }
    Parsed::Request {
        request: Request::SlabsAutomove { noreply },
        consumed: n,
    }
}

pub(super) fn parse_stats<'a>(t: &Tokens<'a>, n: usize) -> Parsed<'a> {
    let req = |s| Parsed::Request {
        request: Request::Stats(s),
        consumed: n,
    };
    if t.ntokens() == 2 {
        return req(StatsCommand::General);
    }
    match t.get(1) {
        b"reset" => req(StatsCommand::Reset),
        b"settings" => req(StatsCommand::Settings),
        b"detail" => match t.get(2) {
            b"on" | b"off" if t.ntokens() >= 4 => req(StatsCommand::DetailToggle),
            b"dump" if t.ntokens() >= 4 => req(StatsCommand::DetailDump),
            _ => err(ErrorKind::StatsDetailUsage, false, n),
        },
        b"slabs" => req(StatsCommand::Slabs),
        b"sizes" => req(StatsCommand::Sizes),
        b"items" | b"conns" | b"cachedump" => req(StatsCommand::Empty),
        _ => err(ErrorKind::UnknownCommand, false, n),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{parse, ParseConfig};
    use super::*;

    fn p(input: &[u8]) -> Parsed<'_> {
        parse(input, &ParseConfig::default())
    }

    #[test]
    fn flush_all() {
        assert_eq!(
            p(b"flush_all\r\n"),
            Parsed::Request {
                request: Request::FlushAll {
                    delay: 0,
                    noreply: false
                },
                consumed: 11
            }
        );
        assert_eq!(
            p(b"flush_all 10 noreply\r\n"),
            Parsed::Request {
                request: Request::FlushAll {
                    delay: 10,
                    noreply: true
                },
                consumed: 22
            }
        );
        assert_eq!(
            p(b"flush_all noreply\r\n"),
            Parsed::Request {
                request: Request::FlushAll {
                    delay: 0,
                    noreply: true
                },
                consumed: 19
            }
        );
        assert_eq!(
            p(b"flush_all x\r\n"),
            err(ErrorKind::InvalidExptime, false, 13)
        );
        assert_eq!(
            p(b"flush_all 0 x\r\n"),
            Parsed::Request {
                request: Request::FlushAll {
                    delay: 0,
                    noreply: false
                },
                consumed: 15
            }
        );
        assert_eq!(
            p(b"flush_all 1 2 3\r\n"),
            err(ErrorKind::UnknownCommand, false, 17)
        );
    }

    #[test]
    fn verbosity() {
        assert_eq!(
            p(b"verbosity 1 2\r\n"),
            Parsed::Request {
                request: Request::Verbosity {
                    level: 1,
                    noreply: false
                },
                consumed: 15
            }
        );
        assert_eq!(
            p(b"verbosity\r\n"),
            err(ErrorKind::UnknownCommand, false, 11)
        );
        assert_eq!(p(b"verbosity x\r\n"), err(ErrorKind::BadFormat, false, 13));
    }

    #[test]
    fn shutdown_memlimit_metadump() {
        use super::{MetadumpScope as M, ShutdownMode as S};
        let req = |input: &'static [u8]| match p(input) {
            Parsed::Request { request, consumed } => {
                assert_eq!(consumed, input.len());
                request
            }
            other => panic!("{other:?}"),
        };
        assert_eq!(req(b"shutdown\r\n"), Request::Shutdown(S::Immediate));
        assert_eq!(
            req(b"shutdown graceful\r\n"),
            Request::Shutdown(S::Graceful)
        );
        assert_eq!(req(b"shutdown foo\r\n"), Request::Shutdown(S::Invalid));
        assert_eq!(
            req(b"shutdown graceful x\r\n"),
            Request::Shutdown(S::Invalid)
        );
        assert_eq!(
            req(b"cache_memlimit 9 9\r\n"),
            Request::CacheMemlimit {
                megabytes: 9,
                noreply: false
            }
        );
        assert_eq!(
            req(b"cache_memlimit 4294967296 noreply\r\n"),
            Request::CacheMemlimit {
                megabytes: 0,
                noreply: true
            }
        );
        assert_eq!(
            p(b"cache_memlimit -1\r\n"),
            err(ErrorKind::UnknownCommand, false, 19)
        );
        assert_eq!(
            p(b"cache_memlimit x noreply\r\n"),
            err(ErrorKind::UnknownCommand, true, 26)
        );
        assert_eq!(
            p(b"cache_memlimit\r\n"),
            err(ErrorKind::UnknownCommand, false, 16)
        );
        assert_eq!(
            p(b"cache_memlimit 1 2 3\r\n"),
            err(ErrorKind::UnknownCommand, false, 22)
        );
        for (input, scope) in [
            (&b"lru_crawler metadump all\r\n"[..], M::All),
            (b"lru_crawler metadump hash\r\n", M::All),
            (b"lru_crawler metadump 1,63\r\n", M::Classes),
            (b"lru_crawler metadump 0\r\n", M::BadClass),
            (b"lru_crawler metadump 64\r\n", M::BadClass),
            (b"lru_crawler metadump 1,x\r\n", M::BadClass),
        ] {
            assert_eq!(
                p(input),
                Parsed::Request {
                    request: Request::LruCrawlerMetadump(scope),
                    consumed: input.len()
                },
                "{input:?}"
            );
        }
        assert_eq!(
            p(b"lru_crawler metadump all noreply\r\n"),
            err(ErrorKind::UnknownCommand, false, 34)
        );
        assert_eq!(
            p(b"lru_crawler metadump\r\n"),
            err(ErrorKind::UnknownCommand, false, 22)
        );
    }

    #[test]
    fn stats() {
        assert_eq!(
            p(b"stats\r\n"),
            Parsed::Request {
                request: Request::Stats(StatsCommand::General),
                consumed: 7
            }
        );
        assert_eq!(
            p(b"stats settings\r\n"),
            Parsed::Request {
                request: Request::Stats(StatsCommand::Settings),
                consumed: 16
            }
        );
        assert_eq!(p(b"stats x\r\n"), err(ErrorKind::UnknownCommand, false, 9));
        assert_eq!(
            p(b"stats detail\r\n"),
            err(ErrorKind::StatsDetailUsage, false, 14)
        );
        assert_eq!(
            p(b"stats reset\r\n"),
            Parsed::Request {
                request: Request::Stats(StatsCommand::Reset),
                consumed: 13
            }
        );
    }

    #[test]
    fn slabs_automove() {
        let ok = |line: &[u8], noreply| {
            assert_eq!(
                p(line),
                Parsed::Request {
                    request: Request::SlabsAutomove { noreply },
                    consumed: line.len()
                },
                "{:?}",
                core::str::from_utf8(line)
            )
        };
        // replies checked against memcached 1.6.18
        ok(b"slabs automove 1\r\n", false);
        ok(b"slabs automove 0\r\n", false);
        ok(b"slabs automove 2 noreply\r\n", true);
        ok(b"slabs automove 1 2\r\n", false);
        ok(b"slabs automove 4294967297\r\n", false);
        ok(b"slabs automove -0\r\n", false);
        ok(b"slabs automove ratio 0.5\r\n", false);
        let e = |line: &[u8], kind, noreply| {
            assert_eq!(
                p(line),
                err(kind, noreply, line.len()),
                "{:?}",
                core::str::from_utf8(line)
            )
        };
        e(b"slabs automove invalid\r\n", ErrorKind::BadFormat, false);
        e(b"slabs automove -1\r\n", ErrorKind::BadFormat, false);
        e(b"slabs automove 1x\r\n", ErrorKind::BadFormat, false);
        e(
            b"slabs automove invalid noreply\r\n",
            ErrorKind::BadFormat,
            true,
        );
        e(b"slabs automove 3\r\n", ErrorKind::UnknownCommand, false);
        e(
            b"slabs automove 3 noreply\r\n",
            ErrorKind::UnknownCommand,
            true,
        );
        e(
            b"slabs automove ratio\r\n",
            ErrorKind::UnknownCommand,
            false,
        );
        e(
            b"slabs automove ratio x\r\n",
            ErrorKind::UnknownCommand,
            false,
        );
        e(b"slabs automove\r\n", ErrorKind::UnknownCommand, false);
        e(b"slabs\r\n", ErrorKind::UnknownCommand, false);
        e(b"slabs reassign 1 2\r\n", ErrorKind::UnknownCommand, false);
        e(b"slabs Automove 1\r\n", ErrorKind::UnknownCommand, false);
    }
}

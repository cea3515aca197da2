//! `set|add|replace|append|prepend <key> <flags> <exptime> <bytes> [noreply]`
//! and `cas <key> <flags> <exptime> <bytes> <cas unique> [noreply]`, each
//! followed by a `<bytes>`-long data block and `\r\n`.
//!
//! memcached's order of checks: token count (`ERROR`), `noreply`, key length,
//! numbers, negative length (all `CLIENT_ERROR bad command line format`, data
//! NOT swallowed: it is then read as a command line), item size
//! (`SERVER_ERROR object too large for cache`, data swallowed), then the data
//! block must end in `\r\n` (`CLIENT_ERROR bad data chunk`, exactly
//! `<bytes>` + 2 bytes consumed).

use super::number::{parse_i32_truncating, parse_u32_truncating, parse_u64};
use super::token::Tokens;
use super::{
    err, item_too_large, noreply_last, ErrorKind, Line, ParseConfig, Parsed, Request, KEY_MAX_BYTES,
};

/// Which storage command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `set`
    Set,
    /// `add`
    Add,
    /// `replace`
    Replace,
    /// `append`
    Append,
    /// `prepend`
    Prepend,
    /// `cas`
    Cas,
}

/// A parsed storage command with its data block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreCommand<'a> {
    /// Which command.
    pub mode: Mode,
    /// The key.
    pub key: &'a [u8],
    /// Client flags.
    pub flags: u32,
    /// memcached exptime.
    pub exptime: i32,
    /// `cas` unique (0 for other commands).
    pub cas: u64,
    /// The data, without its `\r\n`.
    pub data: &'a [u8],
    /// No reply.
    pub noreply: bool,
}

/// Where the data block of a request starting with a line of `line_len`
/// bytes is: `Ok(Some(data))`, `Ok(None)` if more input is needed, or
/// `Err(())` if it does not end in `\r\n`.
pub(super) fn data_block(input: &[u8], line_len: usize, vlen: usize) -> Result<Option<&[u8]>, ()> {
    let total = match line_len.checked_add(vlen).and_then(|v| v.checked_add(2)) {
        Some(t) => t,
        None => return Err(()),
    };
    if input.len() < total {
        return Ok(None);
    }
    if &input[total - 2..total] != b"\r\n" {
        return Err(());
    }
    Ok(Some(&input[line_len..total - 2]))
}

pub(super) fn parse<'a>(
    t: &Tokens<'a>,
    line: &Line<'a>,
    mode: Mode,
    cfg: &ParseConfig,
) -> Parsed<'a> {
    let n = line.len;
    let with_cas = mode == Mode::Cas;
    let want = if with_cas { 7 } else { 6 };
    if t.ntokens() != want && t.ntokens() != want + 1 {
        return err(ErrorKind::UnknownCommand, false, n);
    }
    let noreply = noreply_last(t);
    let key = t.get(1);
    if key.len() > KEY_MAX_BYTES {
        return err(ErrorKind::BadFormat, noreply, n);
    }
    let (Some(flags), Some(exptime), Some(vlen)) = (
        parse_u32_truncating(t.get(2)),
        parse_i32_truncating(t.get(3)),
        parse_i32_truncating(t.get(4)),
    ) else {
        return err(ErrorKind::BadFormat, noreply, n);
    };
    let cas = if with_cas {
        match parse_u64(t.get(5)) {
            Some(c) => c,
            None => return err(ErrorKind::BadFormat, noreply, n),
        }
    } else {
        0
    };
    if !(0..=i32::MAX - 2).contains(&vlen) {
        return err(ErrorKind::BadFormat, noreply, n);
    }
    let vlen = vlen as usize;
    if item_too_large(key.len(), flags, vlen, cfg.item_size_max_bytes) {
        return Parsed::Request {
            request: Request::TooLarge {
                key,
                base64: false,
                unlink: mode == Mode::Set,
                noreply,
                swallow: vlen + 2,
            },
            consumed: n,
        };
    }
    match data_block(line.input, n, vlen) {
        Ok(None) => Parsed::NeedMore,
        Err(()) => err(ErrorKind::BadDataChunk, noreply, n + vlen + 2),
        Ok(Some(data)) => Parsed::Request {
            request: Request::Store(StoreCommand {
                mode,
                key,
                flags,
                exptime,
                cas,
                data,
                noreply,
            }),
            consumed: n + vlen + 2,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::super::{parse, ParseConfig, ParseError};
    use super::*;

    fn p(input: &[u8]) -> Parsed<'_> {
        parse(input, &ParseConfig::default())
    }

    fn store(input: &[u8]) -> (StoreCommand<'_>, usize) {
        match p(input) {
            Parsed::Request {
                request: Request::Store(s),
                consumed,
            } => (s, consumed),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn set_and_friends() {
        let (s, n) = store(b"set foo 5 100 3\r\nbar\r\nget foo\r\n");
        assert_eq!(n, 22);
        assert_eq!(
            s,
            StoreCommand {
                mode: Mode::Set,
                key: b"foo",
                flags: 5,
                exptime: 100,
                cas: 0,
                data: b"bar",
                noreply: false
            }
        );
        for (cmd, mode) in [
            ("add", Mode::Add),
            ("replace", Mode::Replace),
            ("append", Mode::Append),
            ("prepend", Mode::Prepend),
        ] {
            let mut buf = [0u8; 64];
            let line = [cmd.as_bytes(), b" k 0 0 1 noreply\r\nx\r\n"].concat_into(&mut buf);
            let (s, _) = store(line);
            assert_eq!(s.mode, mode);
            assert!(s.noreply);
        }
        let (s, _) = store(b"cas k 1 2 0 99\r\n\r\n");
        assert_eq!((s.mode, s.cas, s.data), (Mode::Cas, 99, &b""[..]));
    }

    trait ConcatInto {
        fn concat_into<'b>(&self, buf: &'b mut [u8]) -> &'b [u8];
    }
    impl ConcatInto for [&[u8]; 2] {
        fn concat_into<'b>(&self, buf: &'b mut [u8]) -> &'b [u8] {
            let a = self[0].len();
            let b = self[1].len();
            buf[..a].copy_from_slice(self[0]);
            buf[a..a + b].copy_from_slice(self[1]);
            &buf[..a + b]
        }
    }

    #[test]
    fn waits_for_the_data() {
        assert_eq!(p(b"set a 0 0 5\r\nab"), Parsed::NeedMore);
        assert_eq!(p(b"set a 0 0 1\r\nx\n"), Parsed::NeedMore);
    }

    #[test]
    fn errors_like_memcached() {
        let e = |kind, noreply, skip| {
            Parsed::Error(ParseError {
                kind,
                noreply,
                skip,
            })
        };
        assert_eq!(
            p(b"set a 0 0 1\r\nabc\r\n"),
            e(ErrorKind::BadDataChunk, false, 16)
        );
        assert_eq!(
            p(b"set a 0 0 1 noreply\r\nabc\r\n"),
            e(ErrorKind::BadDataChunk, true, 24)
        );
        assert_eq!(p(b"set a 0 0 -1\r\n"), e(ErrorKind::BadFormat, false, 14));
        assert_eq!(p(b"set a -1 0 1\r\n"), e(ErrorKind::BadFormat, false, 14));
        assert_eq!(p(b"set a 5x 0 1\r\n"), e(ErrorKind::BadFormat, false, 14));
        assert_eq!(p(b"set a 0 0\r\n"), e(ErrorKind::UnknownCommand, false, 11));
        assert_eq!(
            p(b"set a 0 0 1 2 3\r\n"),
            e(ErrorKind::UnknownCommand, false, 17)
        );
        assert_eq!(
            p(b"cas a 0 0 1\r\n"),
            e(ErrorKind::UnknownCommand, false, 13)
        );
        assert_eq!(p(b"cas a 0 0 1 -1\r\n"), e(ErrorKind::BadFormat, false, 16));
        // the length token itself reads as noreply: the error is silent
        assert_eq!(
            p(b"set a 0 0 noreply\r\n"),
            e(ErrorKind::BadFormat, true, 19)
        );
    }

    #[test]
    fn numbers_like_memcached() {
        let (s, _) = store(b"set a 4294967296 4294967296 1\r\nx\r\n");
        assert_eq!((s.flags, s.exptime), (0, 0));
        let (s, _) = store(b"set a +5 -1 01 x\r\nx\r\n");
        assert_eq!((s.flags, s.exptime, s.noreply), (5, -1, false));
    }

    #[test]
    fn too_large_swallows() {
        match p(b"set a 0 0 2000000\r\n") {
            Parsed::Request {
                request:
                    Request::TooLarge {
                        key,
                        unlink,
                        noreply,
                        swallow,
                        ..
                    },
                consumed,
            } => {
                assert_eq!(
                    (key, unlink, noreply, swallow, consumed),
                    (&b"a"[..], true, false, 2_000_002, 19)
                );
            }
            other => panic!("{other:?}"),
        }
        match p(b"add a 0 0 2000000 noreply\r\n") {
            Parsed::Request {
                request:
                    Request::TooLarge {
                        unlink, noreply, ..
                    },
                ..
            } => assert!(!unlink && noreply),
            other => panic!("{other:?}"),
        }
    }
}

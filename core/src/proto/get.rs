//! `get <key>*`, `gets <key>*`, `gat <exptime> <key>*`, `gats <exptime> <key>*`.
//!
//! The keys stay in the input: [`Keys`] iterates the space-separated words of
//! the line without allocating. Every key is checked (1..=250 bytes) before
//! the request is returned, so a bad key anywhere yields one
//! `CLIENT_ERROR bad command line format` and no `VALUE` lines, as memcached.

use super::number::parse_i32_truncating;
use super::token::{Tokens, Words};
use super::{err, ErrorKind, Parsed, Request, KEY_MAX_BYTES};

/// The keys of a multi-key request, borrowed from the request line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Keys<'a> {
    words: &'a [u8],
}

impl<'a> Keys<'a> {
    /// Keys found in `words` (space separated).
    pub const fn new(words: &'a [u8]) -> Self {
        Keys { words }
    }

    /// Iterates the keys in request order.
    pub fn iter(&self) -> Words<'a> {
        Words::new(self.words)
    }

    /// Index of the first key longer than memcached's 250 bytes, if any.
    /// memcached processes the keys before it (counting, touching) and then
    /// answers `CLIENT_ERROR bad command line format` instead of the values.
    pub fn first_too_long(&self) -> Option<usize> {
        self.iter().position(|k| k.len() > KEY_MAX_BYTES)
    }
}

pub(super) fn parse<'a>(t: &Tokens<'a>, n: usize, cas: bool, touch: bool) -> Parsed<'a> {
    if t.ntokens() < 3 {
        return err(ErrorKind::UnknownCommand, false, n);
    }
    let (touch, first_key) = if touch {
        match parse_i32_truncating(t.get(1)) {
            Some(exptime) => (Some(exptime), 2),
            None => return err(ErrorKind::InvalidExptime, false, n),
        }
    } else {
        (None, 1)
    };
    let keys = Keys::new(t.from(first_key));
    // A key over the limit is an error; memcached has already fetched (and
    // for gat touched) the keys before it, so only a long first key is
    // rejected here: the engine serves the rest (`Keys::first_too_long`).
    if keys.iter().next().is_some_and(|k| k.len() > KEY_MAX_BYTES) {
        return err(ErrorKind::BadFormat, false, n);
    }
    Parsed::Request {
        request: Request::Get { keys, cas, touch },
        consumed: n,
    }
}

#[cfg(test)]
mod tests {
    use super::super::{parse, ParseConfig};
    use super::*;

    fn get(input: &[u8]) -> (Keys<'_>, bool, Option<i32>, usize) {
        match parse(input, &ParseConfig::default()) {
            Parsed::Request {
                request: Request::Get { keys, cas, touch },
                consumed,
            } => (keys, cas, touch, consumed),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn single_and_multi() {
        let (keys, cas, touch, n) = get(b"get foo\r\n");
        assert_eq!((cas, touch, n), (false, None, 9));
        assert!(keys.iter().eq([&b"foo"[..]]));
        let (keys, cas, _, _) = get(b"gets  a  b c \r\nget x\r\n");
        assert!(cas);
        assert!(keys.iter().eq([&b"a"[..], b"b", b"c"]));
    }

    #[test]
    fn many_keys_past_the_token_limit() {
        let mut line = [0u8; 4 + 30 * 2 + 2];
        line[..3].copy_from_slice(b"get");
        for i in 0..30 {
            line[3 + i * 2] = b' ';
            line[4 + i * 2] = b'a' + (i as u8 % 26);
        }
        line[64..].copy_from_slice(b"\r\n");
        let (keys, _, _, n) = get(&line);
        assert_eq!(keys.iter().count(), 30);
        assert_eq!(n, line.len());
    }

    #[test]
    fn gat_takes_exptime_first() {
        let (keys, cas, touch, _) = get(b"gats 100 k1 k2\r\n");
        assert!(cas);
        assert_eq!(touch, Some(100));
        assert_eq!(keys.iter().count(), 2);
        let (keys, _, touch, _) = get(b"gat 10\r\n");
        assert_eq!(touch, Some(10));
        assert_eq!(keys.iter().count(), 0);
        assert_eq!(
            parse(b"gat x a\r\n", &ParseConfig::default()),
            err(ErrorKind::InvalidExptime, false, 9)
        );
    }

    #[test]
    fn key_limits() {
        let mut line = [b'k'; 4 + 251 + 2];
        line[..4].copy_from_slice(b"get ");
        line[255..].copy_from_slice(b"\r\n");
        assert_eq!(
            parse(&line, &ParseConfig::default()),
            err(ErrorKind::BadFormat, false, 257)
        );
        let mut ok = [b'k'; 4 + 250 + 2];
        ok[..4].copy_from_slice(b"get ");
        ok[254..].copy_from_slice(b"\r\n");
        let (keys, _, _, _) = get(&ok);
        assert_eq!(keys.iter().next().map(|k| k.len()), Some(250));
        assert_eq!(keys.first_too_long(), None);
        // A long key after the first: parsed, the engine answers the error.
        let mut later = b"gat 0 a b ".to_vec();
        later.extend_from_slice(&[b'k'; 251]);
        later.extend_from_slice(b" c\r\n");
        let (keys, _, touch, _) = get(&later);
        assert_eq!((keys.first_too_long(), touch), (Some(2), Some(0)));
        assert_eq!(
            parse(b"get\r\n", &ParseConfig::default()),
            err(ErrorKind::UnknownCommand, false, 5)
        );
        // memcached does not reject control characters in keys
        let (keys, _, _, _) = get(b"get a\x01b\r\n");
        assert!(keys.iter().eq([&b"a\x01b"[..]]));
    }
}

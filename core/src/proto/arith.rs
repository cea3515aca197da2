//! `incr <key> <delta> [noreply]` and `decr <key> <delta> [noreply]`.

use super::number::parse_u64;
use super::token::Tokens;
use super::{key_arg_request, ErrorKind, Parsed, Request};

pub(super) fn parse<'a>(t: &Tokens<'a>, n: usize, incr: bool) -> Parsed<'a> {
    key_arg_request(
        t,
        n,
        parse_u64,
        ErrorKind::InvalidDelta,
        |key, delta, noreply| Request::Arith {
            incr,
            key,
            delta,
            noreply,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::super::{err, parse, ParseConfig};
    use super::*;

    fn p(input: &[u8]) -> Parsed<'_> {
        parse(input, &ParseConfig::default())
    }

    #[test]
    fn forms() {
        assert_eq!(
            p(b"incr a 18446744073709551615\r\n"),
            Parsed::Request {
                request: Request::Arith {
                    incr: true,
                    key: b"a",
                    delta: u64::MAX,
                    noreply: false
                },
                consumed: 29
            }
        );
        assert_eq!(
            p(b"decr a 1 noreply\r\n"),
            Parsed::Request {
                request: Request::Arith {
                    incr: false,
                    key: b"a",
                    delta: 1,
                    noreply: true
                },
                consumed: 18
            }
        );
    }

    #[test]
    fn errors() {
        assert_eq!(p(b"incr a -1\r\n"), err(ErrorKind::InvalidDelta, false, 11));
        assert_eq!(
            p(b"incr a 18446744073709551616\r\n"),
            err(ErrorKind::InvalidDelta, false, 29)
        );
        assert_eq!(p(b"incr a\r\n"), err(ErrorKind::UnknownCommand, false, 8));
        assert_eq!(
            p(b"decr a x noreply\r\n"),
            err(ErrorKind::InvalidDelta, true, 18)
        );
    }
}

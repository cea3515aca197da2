//! `touch <key> <exptime> [noreply]`.

use super::number::parse_i32_truncating;
use super::token::Tokens;
use super::{key_arg_request, ErrorKind, Parsed, Request};

pub(super) fn parse<'a>(t: &Tokens<'a>, n: usize) -> Parsed<'a> {
    key_arg_request(
        t,
        n,
        parse_i32_truncating,
        ErrorKind::InvalidExptime,
        |key, exptime, noreply| Request::Touch {
            key,
            exptime,
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
    fn forms_and_errors() {
        assert_eq!(
            p(b"touch a -1 noreply\r\n"),
            Parsed::Request {
                request: Request::Touch {
                    key: b"a",
                    exptime: -1,
                    noreply: true
                },
                consumed: 20
            }
        );
        assert_eq!(p(b"touch a\r\n"), err(ErrorKind::UnknownCommand, false, 9));
        assert_eq!(
            p(b"touch a x\r\n"),
            err(ErrorKind::InvalidExptime, false, 11)
        );
    }
}

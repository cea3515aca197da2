//! `touch <key> <exptime> [noreply]`.

use super::number::parse_i32_truncating;
use super::token::Tokens;
use super::{err, noreply_last, ErrorKind, Parsed, Request, KEY_MAX_BYTES};

pub(super) fn parse<'a>(t: &Tokens<'a>, n: usize) -> Parsed<'a> {
    if t.ntokens() != 4 && t.ntokens() != 5 {
        return err(ErrorKind::UnknownCommand, false, n);
    }
    let noreply = noreply_last(t);
    let key = t.get(1);
    if key.len() > KEY_MAX_BYTES {
        return err(ErrorKind::BadFormat, noreply, n);
    }
    match parse_i32_truncating(t.get(2)) {
        Some(exptime) => Parsed::Request {
            request: Request::Touch {
                key,
                exptime,
                noreply,
            },
            consumed: n,
        },
        None => err(ErrorKind::InvalidExptime, noreply, n),
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

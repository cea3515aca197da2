//! `delete <key> [0] [noreply]` (memcached still accepts a zero hold time).

use super::token::Tokens;
use super::{err, noreply_last, ErrorKind, Parsed, Request, KEY_MAX_BYTES};

pub(super) fn parse<'a>(t: &Tokens<'a>, n: usize) -> Parsed<'a> {
    let nt = t.ntokens();
    if !(3..=5).contains(&nt) {
        return err(ErrorKind::UnknownCommand, false, n);
    }
    let mut noreply = false;
    if nt > 3 {
        let hold_is_zero = t.get(2) == b"0";
        noreply = noreply_last(t);
        let valid = (nt == 4 && (hold_is_zero || noreply)) || (nt == 5 && hold_is_zero && noreply);
        if !valid {
            return err(ErrorKind::DeleteUsage, noreply, n);
        }
    }
    let key = t.get(1);
    if key.len() > KEY_MAX_BYTES {
        return err(ErrorKind::BadFormat, noreply, n);
    }
    Parsed::Request {
        request: Request::Delete { key, noreply },
        consumed: n,
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
    fn forms() {
        assert_eq!(
            p(b"delete a\r\n"),
            Parsed::Request {
                request: Request::Delete {
                    key: b"a",
                    noreply: false
                },
                consumed: 10
            }
        );
        assert_eq!(
            p(b"delete a 0\r\n"),
            Parsed::Request {
                request: Request::Delete {
                    key: b"a",
                    noreply: false
                },
                consumed: 12
            }
        );
        assert_eq!(
            p(b"delete a 0 noreply\r\n"),
            Parsed::Request {
                request: Request::Delete {
                    key: b"a",
                    noreply: true
                },
                consumed: 20
            }
        );
        assert_eq!(
            p(b"delete a noreply\r\n"),
            Parsed::Request {
                request: Request::Delete {
                    key: b"a",
                    noreply: true
                },
                consumed: 18
            }
        );
    }

    #[test]
    fn errors() {
        assert_eq!(p(b"delete a 1\r\n"), err(ErrorKind::DeleteUsage, false, 12));
        assert_eq!(
            p(b"delete a x noreply\r\n"),
            err(ErrorKind::DeleteUsage, true, 20)
        );
        assert_eq!(p(b"delete\r\n"), err(ErrorKind::UnknownCommand, false, 8));
        assert_eq!(
            p(b"delete a 0 noreply x\r\n"),
            err(ErrorKind::UnknownCommand, false, 22)
        );
        let mut line = [b'k'; 7 + 251 + 2];
        line[..7].copy_from_slice(b"delete ");
        line[258..].copy_from_slice(b"\r\n");
        assert_eq!(p(&line), err(ErrorKind::BadFormat, false, 260));
    }
}

//! Meta commands: `mg <key> <flags>*`, `ms <key> <datalen> <flags>*` + data,
//! `md <key> <flags>*`, `ma <key> <flags>*`, `mn`, `me <key> [b]`.
//!
//! Flags are single letters, some with a token attached (`T30`, `Oabc`).
//! They are validated here exactly as memcached's `_meta_flag_preparse` does
//! (same error precedence and strings); the flag words stay borrowed so the
//! engine can echo `O`, `k`, `c`, ... in request order.
//!
//! | flag | meaning | | flag | meaning |
//! |---|---|---|---|---|
//! | `b` | key is base64 | | `T<ttl>` | new TTL |
//! | `c` | return CAS | | `N<ttl>` | vivify on miss |
//! | `f` | return client flags | | `R<ttl>` | win recache below TTL |
//! | `h` | return hit-before | | `F<u32>` | client flags (ms) |
//! | `k` | return key | | `C<u64>` | compare CAS |
//! | `l` | return last access | | `M<c>` | mode (ms E A P R S, ma I + D -) |
//! | `O<s>` | opaque (<= 32 bytes incl. O) | | `J<u64>` | ma initial value |
//! | `q` | quiet: no nominal reply | | `D<u64>` | ma delta |
//! | `s` | return size | | `I` | invalidate (stale) |
//! | `t` | return TTL left | | `u` | don't bump LRU |
//! | `v` | return value | | `P` `L` | proxy hints, ignored |

use super::number::{parse_i32_truncating, parse_u32_truncating, parse_u64};
use super::storage::data_block;
use super::token::{Tokens, Words};
use super::{
    base64, err, item_too_large, ErrorKind, Line, ParseConfig, Parsed, Request, KEY_MAX_BYTES,
};

/// memcached's `MFLAG_MAX_OPT_LENGTH` (compared with its token count).
const META_TOKENS_MAX: usize = 20;
/// memcached's `MFLAG_MAX_OPAQUE_LENGTH` (the `O` included).
pub const OPAQUE_MAX_BYTES: usize = 32;

/// Parsed meta flags. Flags that only ask for something to be returned are
/// kept in [`MetaRequest::flag_words`] and read in order by the engine.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MetaFlags {
    /// `b`: the key is base64.
    pub base64: bool,
    /// `q`: suppress the nominal reply.
    pub quiet: bool,
    /// `v`: return the value.
    pub value: bool,
    /// `u`: do not bump the item.
    pub no_update: bool,
    /// `I`: invalidate.
    pub invalidate: bool,
    /// `T`: new TTL (memcached exptime).
    pub ttl: Option<i32>,
    /// `N`: vivify on miss with this exptime.
    pub vivify: Option<i32>,
    /// `R`: recache threshold (exptime).
    pub recache: Option<i32>,
    /// `F`: client flags.
    pub client_flags: u32,
    /// `C`: compare-and-swap value.
    pub cas: Option<u64>,
    /// `M`: mode character (0 = none).
    pub mode: u8,
    /// `J`: initial value for `ma` vivify.
    pub initial: u64,
    /// `D`: delta for `ma`.
    pub delta: Option<u64>,
}

/// A meta request: key, flags and the flag words for ordered echoing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MetaRequest<'a> {
    /// The key as sent (base64 when `flags.base64`).
    pub key: &'a [u8],
    /// Parsed flags.
    pub flags: MetaFlags,
    /// The flag words in request order.
    pub flag_words: Words<'a>,
    /// An error memcached reports only after executing the command (an
    /// over-long opaque in `mg`/`ma`): execute, then reply with this.
    pub late_error: Option<ErrorKind>,
}

/// `_meta_flag_preparse`: validate the flag words.
fn preparse(key: &[u8], words: Words<'_>) -> Result<MetaFlags, ErrorKind> {
    let mut f = MetaFlags::default();
    let mut seen = [false; 127];
    let mut error: Option<ErrorKind> = None;
    let mut has_error = false;
    for w in words {
        let o = w[0];
        if o >= 127 || seen[usize::from(o)] {
            return Err(ErrorKind::MetaDuplicateFlag);
        }
        seen[usize::from(o)] = true;
        let arg = &w[1..];
        match o {
            b'b' => {
                let mut tmp = [0u8; KEY_MAX_BYTES];
                if base64::decode(key, &mut tmp).is_none() {
                    error = Some(ErrorKind::MetaKeyDecode);
                    has_error = true;
                }
                f.base64 = true;
            }
            b'N' | b'T' | b'R' => match parse_i32_truncating(arg) {
                Some(v) => match o {
                    b'N' => f.vivify = Some(v),
                    b'T' => f.ttl = Some(v),
                    _ => f.recache = Some(v),
                },
                None => {
                    error = Some(ErrorKind::MetaBadToken);
                    has_error = true;
                }
            },
            b'l' | b'O' | b'P' | b'L' | b'k' | b's' | b't' | b'c' | b'f' | b'h' => {}
            b'v' => f.value = true,
            b'u' => f.no_update = true,
            b'q' => f.quiet = true,
            b'F' => match parse_u32_truncating(arg) {
                Some(v) => f.client_flags = v,
                None => has_error = true,
            },
            b'C' => match parse_u64(arg) {
                Some(v) => f.cas = Some(v),
                None => {
                    error = Some(ErrorKind::MetaBadToken);
                    has_error = true;
                }
            },
            b'M' => {
                if w.len() != 2 {
                    error = Some(ErrorKind::MetaModeLength);
                    has_error = true;
                } else {
                    f.mode = w[1];
                }
            }
            b'J' => match parse_u64(arg) {
                Some(v) => f.initial = v,
                None => {
                    error = Some(ErrorKind::MetaBadInitial);
                    has_error = true;
                }
            },
            b'D' => match parse_u64(arg) {
                Some(v) => f.delta = Some(v),
                None => {
                    error = Some(ErrorKind::MetaBadDelta);
                    has_error = true;
                }
            },
            b'I' => f.invalidate = true,
            _ => return Err(ErrorKind::MetaInvalidFlag),
        }
    }
    if has_error {
        return Err(error.unwrap_or(ErrorKind::BadFormat));
    }
    Ok(f)
}

fn opaque_too_long(words: Words<'_>) -> bool {
    words
        .into_iter()
        .any(|w| w[0] == b'O' && w.len() > OPAQUE_MAX_BYTES)
}

/// Decodes a base64 meta key into `buf`; `None` if it does not decode.
pub fn decode_key<'b>(key: &[u8], buf: &'b mut [u8; KEY_MAX_BYTES]) -> Option<&'b [u8]> {
    let n = base64::decode(key, buf)?;
    Some(&buf[..n])
}

pub(super) fn parse<'a>(
    which: u8,
    t: &Tokens<'a>,
    line: &Line<'a>,
    cfg: &ParseConfig,
) -> Parsed<'a> {
    let n = line.len;
    let nt = t.ntokens();
    match which {
        b'n' => {
            return Parsed::Request {
                request: Request::MetaNoop,
                consumed: n,
            }
        }
        b'e' => {
            if nt < 3 || t.get(1).len() > KEY_MAX_BYTES {
                return err(ErrorKind::BadFormat, false, n);
            }
            let base64 = nt >= 4 && t.get(2) == b"b";
            return Parsed::Request {
                request: Request::MetaDebug {
                    key: t.get(1),
                    base64,
                },
                consumed: n,
            };
        }
        b'g' | b's' | b'd' | b'a' => {}
        _ => return err(ErrorKind::UnknownCommand, false, n),
    }
    if nt < 3 {
        return err(ErrorKind::UnknownCommand, false, n);
    }
    let key = t.get(1);
    if key.len() > KEY_MAX_BYTES {
        return err(ErrorKind::BadFormat, false, n);
    }
    if which == b's' {
        return parse_set(t, line, cfg);
    }
    if nt > META_TOKENS_MAX {
        let kind = if which == b'g' {
            ErrorKind::MetaTooManyFlagsGet
        } else {
            ErrorKind::MetaTooManyFlags
        };
        return err(kind, false, n);
    }
    let words = Words::new(t.from(2));
    let flags = match preparse(key, words) {
        Ok(f) => f,
        Err(kind) => {
            let kind = if which == b'g' {
                kind
            } else {
                ErrorKind::MetaInvalidOrDuplicateFlag
            };
            return err(kind, false, n);
        }
    };
    let opaque_long = opaque_too_long(words);
    let mut req = MetaRequest {
        key,
        flags,
        flag_words: words,
        late_error: None,
    };
    match which {
        b'g' => {
            if opaque_long {
                req.late_error = Some(ErrorKind::MetaOpaqueTooLong);
            }
            Parsed::Request {
                request: Request::MetaGet(req),
                consumed: n,
            }
        }
        b'd' => {
            if opaque_long {
                return err(ErrorKind::MetaOpaqueTooLong, false, n);
            }
            Parsed::Request {
                request: Request::MetaDelete(req),
                consumed: n,
            }
        }
        _ => {
            if !matches!(flags.mode, 0 | b'I' | b'+' | b'D' | b'-') {
                return err(ErrorKind::MetaArithMode, false, n);
            }
            if opaque_long {
                req.late_error = Some(ErrorKind::MetaOpaqueTooLong);
                // memcached applies `T` and `N`'s TTL while writing the reply, in request
                // order, and stops at the over-long opaque: after it, `T` is dropped and
                // `N` still vivifies, keeping the TTL of a `T` before the opaque or none
                let (mut cut, mut n_cut) = (false, false);
                for w in words {
                    match w[0] {
                        b'O' if w.len() > OPAQUE_MAX_BYTES => cut = true,
                        b'T' if cut => req.flags.ttl = None,
                        b'N' if cut => n_cut = true,
                        _ => {}
                    }
                }
                if n_cut {
                    req.flags.vivify = Some(req.flags.ttl.unwrap_or(0));
                }
            }
            Parsed::Request {
                request: Request::MetaArith(req),
                consumed: n,
            }
        }
    }
}

fn parse_set<'a>(t: &Tokens<'a>, line: &Line<'a>, cfg: &ParseConfig) -> Parsed<'a> {
    let n = line.len;
    let nt = t.ntokens();
    let key = t.get(1);
    if nt == 3 {
        return err(ErrorKind::BadFormat, false, n);
    }
    if nt > META_TOKENS_MAX {
        return err(ErrorKind::MetaTooManyFlags, false, n);
    }
    let vlen = match parse_i32_truncating(t.get(2)) {
        Some(v) if (0..=i32::MAX - 2).contains(&v) => v as usize,
        _ => return err(ErrorKind::BadFormat, false, n),
    };
    let swallow_all = n + vlen + 2;
    let words = Words::new(t.from(3));
    let flags = match preparse(key, words) {
        Ok(f) => f,
        Err(kind) => return err(kind, false, swallow_all),
    };
    if opaque_too_long(words) {
        return err(ErrorKind::MetaOpaqueTooLong, false, swallow_all);
    }
    if !matches!(flags.mode, 0 | b'E' | b'A' | b'P' | b'R' | b'S') {
        return err(ErrorKind::MetaSetMode, false, swallow_all);
    }
    let key_len = if flags.base64 {
        let mut buf = [0u8; KEY_MAX_BYTES];
        decode_key(key, &mut buf).map_or(0, |k| k.len())
    } else {
        key.len()
    };
    if item_too_large(key_len, flags.client_flags, vlen, cfg.item_size_max_bytes) {
        return Parsed::Request {
            request: Request::TooLarge {
                key,
                base64: flags.base64,
                unlink: true,
                noreply: false,
                swallow: vlen + 2,
            },
            consumed: n,
        };
    }
    match data_block(line.input, n, vlen) {
        Ok(None) => Parsed::NeedMore,
        Err(()) => err(ErrorKind::BadDataChunk, false, swallow_all),
        Ok(Some(data)) => Parsed::Request {
            request: Request::MetaSet(
                MetaRequest {
                    key,
                    flags,
                    flag_words: words,
                    late_error: None,
                },
                data,
            ),
            consumed: swallow_all,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::super::{parse as parse_any, ParseConfig};
    use super::*;

    fn p(input: &[u8]) -> Parsed<'_> {
        parse_any(input, &ParseConfig::default())
    }

    fn meta(input: &[u8]) -> MetaRequest<'_> {
        match p(input) {
            Parsed::Request {
                request:
                    Request::MetaGet(m)
                    | Request::MetaDelete(m)
                    | Request::MetaArith(m)
                    | Request::MetaSet(m, _),
                ..
            } => m,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn mg_flags() {
        let m = meta(b"mg foo v k f t s c h l O123 q T30 N5 R10 u\r\n");
        assert_eq!(m.key, b"foo");
        assert!(m.flags.value && m.flags.quiet && m.flags.no_update);
        assert_eq!(
            (m.flags.ttl, m.flags.vivify, m.flags.recache),
            (Some(30), Some(5), Some(10))
        );
        assert!(m.flag_words.eq([
            &b"v"[..],
            b"k",
            b"f",
            b"t",
            b"s",
            b"c",
            b"h",
            b"l",
            b"O123",
            b"q",
            b"T30",
            b"N5",
            b"R10",
            b"u"
        ]));
        let m = meta(b"mg Zm9v b k\r\n");
        assert!(m.flags.base64);
        let mut buf = [0u8; KEY_MAX_BYTES];
        assert_eq!(decode_key(m.key, &mut buf), Some(&b"foo"[..]));
    }

    #[test]
    fn mg_errors_like_memcached() {
        assert_eq!(p(b"mg\r\n"), err(ErrorKind::UnknownCommand, false, 4));
        assert_eq!(p(b"mg a x\r\n"), err(ErrorKind::MetaInvalidFlag, false, 8));
        assert_eq!(
            p(b"mg a v v\r\n"),
            err(ErrorKind::MetaDuplicateFlag, false, 10)
        );
        assert_eq!(
            p(b"mg a \x80\r\n"),
            err(ErrorKind::MetaDuplicateFlag, false, 8)
        );
        assert_eq!(p(b"mg a T\r\n"), err(ErrorKind::MetaBadToken, false, 8));
        assert_eq!(p(b"mg a Fx\r\n"), err(ErrorKind::BadFormat, false, 9));
        assert_eq!(
            p(b"mg a Fx Tx\r\n"),
            err(ErrorKind::MetaBadToken, false, 12)
        );
        assert_eq!(p(b"mg ! b\r\n"), err(ErrorKind::MetaKeyDecode, false, 8));
        assert_eq!(
            p(b"mg a b c d e f g h i j k l m n o p q r\r\n"),
            err(ErrorKind::MetaInvalidFlag, false, 40)
        );
        assert_eq!(
            p(b"mg a b c d e f g h i j k l m n o p q r s\r\n"),
            err(ErrorKind::MetaTooManyFlagsGet, false, 42)
        );
        assert_eq!(p(b"mg a M\r\n"), err(ErrorKind::MetaModeLength, false, 8));
        assert_eq!(
            meta(b"mg a O123456789012345678901234567890123\r\n").late_error,
            Some(ErrorKind::MetaOpaqueTooLong)
        );
        assert_eq!(
            meta(b"mg a O1234567890123456789012345678901\r\n").late_error,
            None
        );
    }

    #[test]
    fn ms_forms_and_errors() {
        match p(b"ms k 2 T10 F5 MA c\r\nhi\r\n") {
            Parsed::Request {
                request: Request::MetaSet(m, data),
                consumed,
            } => {
                assert_eq!((data, consumed), (&b"hi"[..], 24));
                assert_eq!(
                    (m.flags.ttl, m.flags.client_flags, m.flags.mode),
                    (Some(10), 5, b'A')
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(p(b"ms a\r\n"), err(ErrorKind::BadFormat, false, 6));
        assert_eq!(p(b"ms a x\r\n"), err(ErrorKind::BadFormat, false, 8));
        assert_eq!(
            p(b"ms a 2 MX\r\nhi\r\n"),
            err(ErrorKind::MetaSetMode, false, 15)
        );
        assert_eq!(p(b"ms a 2 Fx\r\n"), err(ErrorKind::BadFormat, false, 15));
        assert_eq!(
            p(b"ms a 2 q\r\nhiX\r\n"),
            err(ErrorKind::BadDataChunk, false, 14)
        );
        assert_eq!(p(b"ms a 2\r\nh"), Parsed::NeedMore);
        match p(b"ms a 2000000 q\r\n") {
            Parsed::Request {
                request:
                    Request::TooLarge {
                        unlink,
                        noreply,
                        swallow,
                        ..
                    },
                consumed,
            } => {
                assert_eq!(
                    (unlink, noreply, swallow, consumed),
                    (true, false, 2_000_002, 16)
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn md_ma_me_mn() {
        assert_eq!(
            p(b"md a x\r\n"),
            err(ErrorKind::MetaInvalidOrDuplicateFlag, false, 8)
        );
        assert_eq!(
            p(b"ma a Dx\r\n"),
            err(ErrorKind::MetaInvalidOrDuplicateFlag, false, 9)
        );
        assert_eq!(p(b"ma a MX\r\n"), err(ErrorKind::MetaArithMode, false, 9));
        let m = meta(b"ma a MD D5 J7 N0\r\n");
        assert_eq!(
            (m.flags.mode, m.flags.delta, m.flags.initial, m.flags.vivify),
            (b'D', Some(5), 7, Some(0))
        );
        assert_eq!(
            p(b"mn\r\n"),
            Parsed::Request {
                request: Request::MetaNoop,
                consumed: 4
            }
        );
        assert_eq!(p(b"me\r\n"), err(ErrorKind::BadFormat, false, 4));
        assert_eq!(
            p(b"me a b\r\n"),
            Parsed::Request {
                request: Request::MetaDebug {
                    key: b"a",
                    base64: true
                },
                consumed: 8
            }
        );
        assert_eq!(
            p(b"md a O123456789012345678901234567890123\r\n"),
            err(ErrorKind::MetaOpaqueTooLong, false, 41)
        );
    }
}

//! Number parsing with the exact semantics memcached 1.6 gets from C's
//! `strtoul`/`strtol`/`strtoull` behind its `safe_strto*` helpers, and integer
//! formatting into caller buffers.
//!
//! memcached accepts leading C whitespace and a sign, truncates a 64-bit
//! `strtoul` result to 32 bits for flags and a 64-bit `strtol` result to 32
//! bits for exptimes and lengths, and rejects a negative number that wrapped
//! around. Replies only match memcached byte for byte if these quirks match.

/// C's `isspace` in the "C" locale.
#[inline]
pub fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// Outcome of a C `strto*` scan over a token.
struct Scan {
    magnitude: u64,
    negative: bool,
    /// Index of the first byte not converted (0 when nothing was converted).
    end: usize,
    overflow: bool,
}

fn scan(s: &[u8]) -> Scan {
    let mut i = 0;
    while i < s.len() && is_c_space(s[i]) {
        i += 1;
    }
    let mut negative = false;
    if i < s.len() && (s[i] == b'+' || s[i] == b'-') {
        negative = s[i] == b'-';
        i += 1;
    }
    let digits_start = i;
    let mut magnitude: u64 = 0;
    let mut overflow = false;
    while i < s.len() && s[i].is_ascii_digit() {
        let d = u64::from(s[i] - b'0');
        match magnitude.checked_mul(10).and_then(|m| m.checked_add(d)) {
            Some(m) => magnitude = m,
            None => overflow = true,
        }
        i += 1;
    }
    if i == digits_start {
        return Scan {
            magnitude: 0,
            negative: false,
            end: 0,
            overflow: false,
        };
    }
    Scan {
        magnitude,
        negative,
        end: i,
        overflow,
    }
}

/// The byte after the converted prefix as C sees it (0 = end of the string).
#[inline]
fn after(s: &[u8], end: usize) -> u8 {
    s.get(end).copied().unwrap_or(0)
}

/// memcached's `safe_strtoull`: an unsigned 64-bit number.
pub fn parse_u64(s: &[u8]) -> Option<u64> {
    let sc = scan(s);
    if sc.overflow || sc.end == 0 {
        return None;
    }
    let value = if sc.negative {
        sc.magnitude.wrapping_neg()
    } else {
        sc.magnitude
    };
    let next = after(s, sc.end);
    if is_c_space(next) || next == 0 {
        if (value as i64) < 0 && s[..sc.end].contains(&b'-') {
            return None;
        }
        return Some(value);
    }
    None
}

/// memcached's `safe_strtoul` into a `uint32_t`: a 64-bit `unsigned long`
/// truncated to 32 bits (so `4294967296` reads as 0, as in memcached).
pub fn parse_u32_truncating(s: &[u8]) -> Option<u32> {
    parse_u64(s).map(|v| v as u32)
}

/// memcached's `safe_strtol` into an `int32_t`: a 64-bit `long`, rejected on
/// 64-bit overflow, then truncated to 32 bits.
pub fn parse_i32_truncating(s: &[u8]) -> Option<i32> {
    let sc = scan(s);
    if sc.end == 0 {
        return None;
    }
    let limit = if sc.negative {
        1u64 << 63
    } else {
        (1u64 << 63) - 1
    };
    if sc.overflow || sc.magnitude > limit {
        return None;
    }
    let value = if sc.negative {
        (sc.magnitude as i64).wrapping_neg()
    } else {
        sc.magnitude as i64
    };
    let next = after(s, sc.end);
    if is_c_space(next) || next == 0 {
        return Some(value as i32);
    }
    None
}

/// Does memcached's `safe_strtod` accept `s`? glibc's `strtod` must read
/// all of it (a sign, then a decimal or `0x` hexadecimal number with an
/// optional exponent, `inf`, `infinity` or `nan[(...)]` in any case) without
/// `ERANGE` (a decimal whose value overflows to infinity or underflows below
/// the smallest normal double). Hexadecimal values are not range-checked.
pub fn is_c_double(s: &[u8]) -> bool {
    let body = match s.first() {
        Some(b'+' | b'-') => &s[1..],
        _ => s,
    };
    let lower = |i: usize| body.get(i).map(u8::to_ascii_lowercase);
    if body.eq_ignore_ascii_case(b"inf") || body.eq_ignore_ascii_case(b"infinity") {
        return true;
    }
    if body.len() >= 3 && body[..3].eq_ignore_ascii_case(b"nan") {
        let rest = &body[3..];
        return rest.is_empty()
            || (rest.len() >= 2
                && rest[0] == b'('
                && rest[rest.len() - 1] == b')'
                && rest[1..rest.len() - 1]
                    .iter()
                    .all(|c| c.is_ascii_alphanumeric() || *c == b'_'));
    }
    let hex = lower(0) == Some(b'0') && lower(1) == Some(b'x');
    let (digits, exp_mark): (fn(&u8) -> bool, u8) = if hex {
        (u8::is_ascii_hexdigit, b'p')
    } else {
        (u8::is_ascii_digit, b'e')
    };
    let mant = if hex { &body[2..] } else { body };
    let int_len = mant.iter().take_while(|c| digits(c)).count();
    let mut i = int_len;
    let mut frac_len = 0;
    if mant.get(i) == Some(&b'.') {
        frac_len = mant[i + 1..].iter().take_while(|c| digits(c)).count();
        i += 1 + frac_len;
    }
    if int_len + frac_len == 0 {
        return false;
    }
    if mant.get(i).map(u8::to_ascii_lowercase) == Some(exp_mark) {
        let mut j = i + 1;
        if matches!(mant.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        let exp_len = mant[j.min(mant.len())..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
        if exp_len == 0 {
            // strtod stops before the exponent mark, which is then left over
            return false;
        }
        i = j + exp_len;
    }
    if i != mant.len() {
        return false;
    }
    if hex {
        return true;
    }
    let Ok(text) = core::str::from_utf8(mant) else {
        return false;
    };
    match text.parse::<f64>() {
        Ok(v) => v.is_finite() && (v >= f64::MIN_POSITIVE || !has_nonzero_mantissa(mant)),
        Err(_) => false,
    }
}

/// A decimal mantissa (before any exponent) with a digit other than 0.
fn has_nonzero_mantissa(s: &[u8]) -> bool {
    s.iter()
        .take_while(|c| !matches!(c, b'e' | b'E'))
        .any(|c| (b'1'..=b'9').contains(c))
}

/// Longest decimal rendering of a `u64`.
pub const U64_DIGITS_MAX: usize = 20;

/// Writes `v` in decimal into the front of `dst`, returning the bytes used,
/// or `None` if `dst` is too short (nothing meaningful is written then).
#[inline]
pub fn write_u64(v: u64, dst: &mut [u8]) -> Option<usize> {
    let mut tmp = [0u8; U64_DIGITS_MAX];
    let mut i = U64_DIGITS_MAX;
    let mut n = v;
    loop {
        i -= 1;
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let len = U64_DIGITS_MAX - i;
    let out = dst.get_mut(..len)?;
    out.copy_from_slice(&tmp[i..]);
    Some(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn u64_like_strtoull() {
        assert_eq!(parse_u64(b"0"), Some(0));
        assert_eq!(parse_u64(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_u64(b"18446744073709551616"), None);
        assert_eq!(parse_u64(b"-1"), None);
        assert_eq!(parse_u64(b"+7"), Some(7));
        assert_eq!(parse_u64(b"\t7"), Some(7));
        assert_eq!(parse_u64(b"7\r"), Some(7));
        assert_eq!(parse_u64(b"7x"), None);
        assert_eq!(parse_u64(b""), None);
        assert_eq!(parse_u64(b"x"), None);
        assert_eq!(parse_u64(b"-"), None);
    }

    #[test]
    fn u32_truncates_like_memcached() {
        assert_eq!(parse_u32_truncating(b"4294967296"), Some(0));
        assert_eq!(parse_u32_truncating(b"4294967295"), Some(u32::MAX));
        assert_eq!(parse_u32_truncating(b"-5"), None);
    }

    #[test]
    fn i32_truncates_like_memcached() {
        assert_eq!(parse_i32_truncating(b"-1"), Some(-1));
        assert_eq!(parse_i32_truncating(b"4294967296"), Some(0));
        assert_eq!(parse_i32_truncating(b"2147483648"), Some(i32::MIN));
        assert_eq!(parse_i32_truncating(b"-2147483649"), Some(i32::MAX));
        assert_eq!(parse_i32_truncating(b"9223372036854775808"), None);
        assert_eq!(parse_i32_truncating(b"-9223372036854775808"), Some(0));
        assert_eq!(parse_i32_truncating(b"1a"), None);
    }

    #[test]
    fn formats_integers() {
        let mut b = [0u8; 20];
        assert_eq!(write_u64(0, &mut b), Some(1));
        assert_eq!(&b[..1], b"0");
        assert_eq!(write_u64(u64::MAX, &mut b), Some(20));
        assert_eq!(&b[..20], b"18446744073709551615");
        assert_eq!(write_u64(100, &mut b[..2]), None);
    }

    #[test]
    fn c_doubles_as_safe_strtod_reads_them() {
        // each checked against memcached 1.6.18's `slabs automove ratio`
        for ok in [
            &b"0.5"[..],
            b"0",
            b"5.",
            b"-.5",
            b"+1e3",
            b"0e999",
            b"INF",
            b"infinity",
            b"nan",
            b"nan(abc)",
            b"0x1p3",
            b"0X1.8P-2",
        ] {
            assert!(is_c_double(ok), "{:?}", core::str::from_utf8(ok));
        }
        for bad in [
            &b""[..],
            b".",
            b"x",
            b"1e",
            b"1e+",
            b"1x",
            b"1e400",
            b"1e-400",
            b"1e-310",
            b"0x",
            b"nan(",
            b"--1",
            b"infinit",
        ] {
            assert!(!is_c_double(bad), "{:?}", core::str::from_utf8(bad));
        }
    }
}

//! Item layout inside a segment.
//!
//! ```text
//! Item header (7 bytes, no alignment padding between items):
//!
//!  byte 0     bytes 1..4        byte 4     bytes 5..7
//! ┌─────────┬─────────────────┬──────────┬──────────────┐
//! │ KEY LEN │ VALUE LEN (u24) │   INFO   │  ATIME (u16) │
//! │  (u8)   │  little endian  │  (bits)  │ little endian│
//! └─────────┴─────────────────┴──────────┴──────────────┘
//!
//! INFO:
//!       7        6        5          4       3         2         1        0
//! ┌──────────┬───────┬──────────┬───────┬─────────┬─────────┬────────┬────────┐
//! │KEY_BINARY│DELETED│TOKEN_SENT│ STALE │ FETCHED │ EXPIRY  │  CAS   │ FLAGS  │
//! └──────────┴───────┴──────────┴───────┴─────────┴─────────┴────────┴────────┘
//!
//! followed by, in this order and only when the INFO bit is set:
//!   FLAGS:  u32 client flags (only stored when non-zero)
//!   EXPIRY: u16 seconds the item expires BEFORE its segment's expiry
//!   CAS:    u64 explicit cas (items moved by compaction/merge or re-appended
//!           by touch keep their cas); otherwise cas = segment cas_base + offset
//! then the key, then the value.
//! ```
//!
//! ATIME holds the low 16 bits of the Unix time of the last access (store or
//! fetch). The last access time is reconstructed as the latest time <= now
//! with those low bits: exact when the last access was less than 65536 s
//! (18.2 h) ago, otherwise it appears up to that much more recent.

use crate::Time;

/// Bytes of the fixed item header.
pub const HEADER_BYTES: usize = 7;
/// Largest value length the header can encode (u24).
pub const MAX_VALUE_BYTES: usize = (1 << 24) - 1;

/// INFO: a u32 client-flags field follows the header.
pub const INFO_FLAGS: u8 = 0x01;
/// INFO: an explicit u64 cas follows.
pub const INFO_CAS: u8 = 0x02;
/// INFO: a u16 expiry delta follows.
pub const INFO_EXPIRY: u8 = 0x04;
/// INFO: fetched at least once (meta `h`).
pub const INFO_FETCHED: u8 = 0x08;
/// INFO: marked stale by meta invalidation.
pub const INFO_STALE: u8 = 0x10;
/// INFO: a win token (meta `W`) has been handed out.
pub const INFO_TOKEN_SENT: u8 = 0x20;
/// INFO: unlinked from the hash table; the bytes are dead.
pub const INFO_DELETED: u8 = 0x40;
/// INFO: stored by a meta command with a base64 key (`ms ... b`): meta
/// replies print its key base64-encoded with ` b`, as memcached's
/// `ITEM_KEY_BINARY` does.
pub const INFO_KEY_BINARY: u8 = 0x80;
/// INFO bits that describe the client-visible state carried across a move.
pub const INFO_STATE_MASK: u8 = INFO_FETCHED | INFO_STALE | INFO_TOKEN_SENT | INFO_KEY_BINARY;

const OFF_KLEN: usize = 0;
const OFF_VLEN: usize = 1;
const OFF_INFO: usize = 4;
const OFF_ATIME: usize = 5;

/// Total size of an item with these optional fields and lengths.
#[inline]
pub fn item_bytes(info: u8, klen: usize, vlen: usize) -> usize {
    HEADER_BYTES + optional_bytes(info) + klen + vlen
}

/// Bytes of optional fields selected by `info`.
#[inline]
pub fn optional_bytes(info: u8) -> usize {
    (if info & INFO_FLAGS != 0 { 4 } else { 0 })
        + (if info & INFO_EXPIRY != 0 { 2 } else { 0 })
        + (if info & INFO_CAS != 0 { 8 } else { 0 })
}

/// A decoded item header at an absolute position in the segment data.
#[derive(Clone, Copy, Debug)]
pub struct ItemView {
    /// Absolute position of the header.
    pub at: usize,
    /// INFO bits.
    pub info: u8,
    /// Key length.
    pub klen: usize,
    /// Value length.
    pub vlen: usize,
    /// Client flags (0 when absent).
    pub flags: u32,
    /// Expiry delta before the segment's expiry (0 when absent).
    pub exp_delta: u16,
    /// Explicit cas, if stored.
    pub cas: Option<u64>,
    /// Stored low 16 bits of the last access time.
    pub atime: u16,
}

impl ItemView {
    /// Decode the item at `at`. The caller guarantees an item was written
    /// there; out-of-range reads yield zeros rather than panicking.
    #[inline(always)]
    pub fn read(data: &[u8], at: usize) -> Self {
        // The fixed header in one unaligned 8-byte load (the byte after it
        // is ignored); byte by byte only at the very end of the data.
        let h = match data.get(at..at + 8) {
            Some(s) => u64::from_le_bytes(get_array(s, 0)),
            None => {
                let mut b = [0u8; 8];
                for (i, x) in b.iter_mut().take(HEADER_BYTES).enumerate() {
                    *x = data.get(at + i).copied().unwrap_or(0);
                }
                u64::from_le_bytes(b)
            }
        };
        let info = (h >> (8 * OFF_INFO)) as u8;
        let mut p = at + HEADER_BYTES;
        let mut flags = 0;
        if info & INFO_FLAGS != 0 {
            flags = u32::from_le_bytes(get_array(data, p));
            p += 4;
        }
        let mut exp_delta = 0;
        if info & INFO_EXPIRY != 0 {
            exp_delta = u16::from_le_bytes(get_array(data, p));
            p += 2;
        }
        let mut cas = None;
        if info & INFO_CAS != 0 {
            cas = Some(u64::from_le_bytes(get_array(data, p)));
        }
        Self {
            at,
            info,
            klen: (h >> (8 * OFF_KLEN)) as u8 as usize,
            vlen: ((h >> (8 * OFF_VLEN)) & 0xFF_FFFF) as usize,
            flags,
            exp_delta,
            cas,
            atime: (h >> (8 * OFF_ATIME)) as u16,
        }
    }

    /// Absolute position of the key.
    #[inline]
    pub fn key_at(&self) -> usize {
        self.at + HEADER_BYTES + optional_bytes(self.info)
    }
    /// Absolute position of the value.
    #[inline]
    pub fn value_at(&self) -> usize {
        self.key_at() + self.klen
    }
    /// Total bytes of the item.
    #[inline]
    pub fn size(&self) -> usize {
        item_bytes(self.info, self.klen, self.vlen)
    }
    /// Whether the item has been unlinked.
    #[inline]
    pub fn deleted(&self) -> bool {
        self.info & INFO_DELETED != 0
    }
}

#[inline]
fn get_array<const N: usize>(data: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    if let Some(s) = data.get(at..at + N) {
        out.copy_from_slice(s);
    }
    out
}

/// `a == b`, inline for the short keys a cache sees most (up to 32 bytes:
/// overlapping 8-byte compares instead of a call to `memcmp`).
#[inline(always)]
pub fn bytes_eq(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let w = |s: &[u8], i: usize| u64::from_le_bytes(get_array(s, i));
    match n {
        0..=3 => a == b,
        4..=7 => {
            let v = |s: &[u8], i: usize| u32::from_le_bytes(get_array(s, i));
            v(a, 0) == v(b, 0) && v(a, n - 4) == v(b, n - 4)
        }
        8..=16 => w(a, 0) == w(b, 0) && w(a, n - 8) == w(b, n - 8),
        17..=32 => {
            w(a, 0) == w(b, 0)
                && w(a, 8) == w(b, 8)
                && w(a, n - 16) == w(b, n - 16)
                && w(a, n - 8) == w(b, n - 8)
        }
        _ => a == b,
    }
}

/// The fields of an item header to write.
#[derive(Clone, Copy, Debug)]
pub struct Header {
    /// Key length.
    pub klen: usize,
    /// Value length.
    pub vlen: usize,
    /// INFO bits (they select the optional fields).
    pub info: u8,
    /// Client flags (written with INFO_FLAGS).
    pub flags: u32,
    /// Expiry delta (written with INFO_EXPIRY).
    pub exp_delta: u16,
    /// Explicit cas (written with INFO_CAS).
    pub cas: u64,
    /// Low 16 bits of the last access time.
    pub atime: u16,
}

/// Write header `h` plus its optional fields at `at`; returns the key
/// position. The caller guarantees `at + item_bytes(..) <= data.len()`.
pub fn write_header(data: &mut [u8], at: usize, h: &Header) -> usize {
    let v = (h.vlen as u32).to_le_bytes();
    let t = h.atime.to_le_bytes();
    let fixed = [h.klen as u8, v[0], v[1], v[2], h.info, t[0], t[1]];
    data[at..at + HEADER_BYTES].copy_from_slice(&fixed);
    let mut p = at + HEADER_BYTES;
    if h.info & INFO_FLAGS != 0 {
        data[p..p + 4].copy_from_slice(&h.flags.to_le_bytes());
        p += 4;
    }
    if h.info & INFO_EXPIRY != 0 {
        data[p..p + 2].copy_from_slice(&h.exp_delta.to_le_bytes());
        p += 2;
    }
    if h.info & INFO_CAS != 0 {
        data[p..p + 8].copy_from_slice(&h.cas.to_le_bytes());
        p += 8;
    }
    p
}

/// Set or clear INFO bits of the item at `at` in place.
#[inline]
pub fn set_info(data: &mut [u8], at: usize, set: u8, clear: u8) {
    if let Some(b) = data.get_mut(at + OFF_INFO) {
        *b = (*b | set) & !clear;
    }
}

/// Store the access time of the item at `at` in place.
#[inline]
pub fn set_atime(data: &mut [u8], at: usize, now: Time) {
    if let Some(s) = data.get_mut(at + OFF_ATIME..at + OFF_ATIME + 2) {
        s.copy_from_slice(&(now as u16).to_le_bytes());
    }
}

/// Reconstruct the full last-access time from its low 16 bits.
#[inline]
pub fn last_access(atime: u16, now: Time) -> Time {
    now.wrapping_sub((now as u16).wrapping_sub(atime) as u32)
}

/// Parse a value the way memcached's `safe_strtoull` does for incr/decr
/// (the value is followed by "\r\n" in memcached's memory): optional leading
/// whitespace, optional sign, decimal digits, then whitespace or the end.
/// A negative number is accepted only if it does not wrap into the top half
/// (so "-0" parses as 0). Overflow is an error.
pub fn parse_u64(value: &[u8]) -> Option<u64> {
    let is_space = |c: u8| matches!(c, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r');
    let mut i = 0;
    while i < value.len() && is_space(value[i]) {
        i += 1;
    }
    let mut neg = false;
    if i < value.len() && (value[i] == b'+' || value[i] == b'-') {
        neg = value[i] == b'-';
        i += 1;
    }
    let digits_start = i;
    let mut v: u64 = 0;
    while i < value.len() && value[i].is_ascii_digit() {
        v = v.checked_mul(10)?.checked_add((value[i] - b'0') as u64)?;
        i += 1;
    }
    if i == digits_start {
        return None;
    }
    // After the digits: whitespace, or the end (memcached then sees '\r').
    if i < value.len() && !is_space(value[i]) && value[i] != 0 {
        return None;
    }
    let v = if neg { v.wrapping_neg() } else { v };
    if (v as i64) < 0 && neg {
        return None;
    }
    Some(v)
}

/// Write `v` in decimal into `buf`; returns the number of digits.
pub fn format_u64(mut v: u64, buf: &mut [u8; 20]) -> usize {
    let mut tmp = [0u8; 20];
    let mut n = 0;
    loop {
        tmp[n] = b'0' + (v % 10) as u8;
        n += 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    for i in 0..n {
        buf[i] = tmp[n - 1 - i];
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_roundtrip_with_all_fields() {
        let mut d = [0u8; 64];
        let info = INFO_FLAGS | INFO_EXPIRY | INFO_CAS | INFO_STALE;
        let h = Header {
            klen: 5,
            vlen: 70000,
            info,
            flags: 0xdead_beef,
            exp_delta: 513,
            cas: 1 << 40,
            atime: 70_000u32 as u16,
        };
        let k = write_header(&mut d, 3, &h);
        assert_eq!(k, 3 + HEADER_BYTES + 14);
        let v = ItemView::read(&d, 3);
        assert_eq!(
            (v.klen, v.vlen, v.flags, v.exp_delta),
            (5, 70000, 0xdead_beef, 513)
        );
        assert_eq!(v.cas, Some(1 << 40));
        assert_eq!(v.key_at(), k);
        assert_eq!(v.value_at(), k + 5);
        assert_eq!(v.size(), HEADER_BYTES + 14 + 5 + 70000);
        assert_eq!(last_access(v.atime, 70_005), 70_000);
        set_info(&mut d, 3, INFO_DELETED, INFO_STALE);
        let v = ItemView::read(&d, 3);
        assert!(v.deleted());
        assert_eq!(v.info & INFO_STALE, 0);
    }

    #[test]
    fn minimal_header_is_seven_bytes() {
        assert_eq!(item_bytes(0, 16, 32), 55);
        let mut d = [0u8; 16];
        let h = Header {
            klen: 1,
            vlen: 2,
            info: 0,
            flags: 0,
            exp_delta: 0,
            cas: 0,
            atime: 9,
        };
        write_header(&mut d, 0, &h);
        let v = ItemView::read(&d, 0);
        assert_eq!((v.flags, v.cas, v.size()), (0, None, 10));
    }

    #[test]
    fn bytes_eq_agrees_with_slice_eq_at_every_length_and_position() {
        let a: [u8; 48] = core::array::from_fn(|i| (i as u8).wrapping_mul(7).wrapping_add(1));
        for n in 0..=a.len() {
            assert!(bytes_eq(&a[..n], &a[..n]));
            for i in 0..n {
                let mut b = a;
                b[i] ^= 0x20;
                assert!(!bytes_eq(&a[..n], &b[..n]), "len {n}, byte {i}");
            }
            if n > 0 {
                assert!(!bytes_eq(&a[..n], &a[..n - 1]));
            }
        }
    }

    #[test]
    fn last_access_wraps() {
        assert_eq!(last_access(65530, 65536 + 3), 65530);
        assert_eq!(last_access(5, 5), 5);
    }

    #[test]
    fn parse_like_safe_strtoull() {
        assert_eq!(parse_u64(b"123"), Some(123));
        assert_eq!(parse_u64(b" 42 "), Some(42));
        assert_eq!(parse_u64(b"9 "), Some(9));
        assert_eq!(parse_u64(b"+7"), Some(7));
        assert_eq!(parse_u64(b"-0"), Some(0));
        assert_eq!(parse_u64(b"-1"), None);
        assert_eq!(parse_u64(b"12abc"), None);
        assert_eq!(parse_u64(b"12 abc"), Some(12));
        assert_eq!(parse_u64(b""), None);
        assert_eq!(parse_u64(b"abc"), None);
        assert_eq!(parse_u64(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_u64(b"18446744073709551616"), None);
    }

    #[test]
    fn format_digits() {
        let mut b = [0u8; 20];
        let n = format_u64(0, &mut b);
        assert_eq!(&b[..n], b"0");
        let n = format_u64(u64::MAX, &mut b);
        assert_eq!(&b[..n], b"18446744073709551615");
    }
}

//! XXH64 (Yann Collet's xxHash, 64-bit variant), used to checksum the
//! store's metadata when it is saved for a warm restart.
//!
//! Four independent lanes of multiply-rotate rounds over 32-byte stripes:
//! several GB/s on one core, so checksumming the hash table of a 1 GiB
//! cache takes tens of milliseconds. Not cryptographic: it detects
//! accidental corruption (a flipped byte, a torn or truncated file), not a
//! forger. Output is bit-for-bit `XXH64(input, seed)` (checked against the
//! reference `xxhsum -H1` in the tests).

const P1: u64 = 0x9E37_79B1_85EB_CA87;
const P2: u64 = 0xC2B2_AE3D_27D4_EB4F;
const P3: u64 = 0x1656_67B1_9E37_79F9;
const P4: u64 = 0x85EB_CA77_C2B2_AE63;
const P5: u64 = 0x27D4_EB2F_1656_67C5;

#[inline(always)]
fn read64(p: &[u8], i: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&p[i..i + 8]);
    u64::from_le_bytes(b)
}

#[inline(always)]
fn read32(p: &[u8], i: usize) -> u64 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&p[i..i + 4]);
    u32::from_le_bytes(b) as u64
}

#[inline(always)]
fn round(acc: u64, input: u64) -> u64 {
    acc.wrapping_add(input.wrapping_mul(P2))
        .rotate_left(31)
        .wrapping_mul(P1)
}

#[inline(always)]
fn merge(acc: u64, val: u64) -> u64 {
    (acc ^ round(0, val)).wrapping_mul(P1).wrapping_add(P4)
}

/// XXH64 of `input` with `seed`. Never panics.
pub fn xxh64(input: &[u8], seed: u64) -> u64 {
    let len = input.len();
    let mut i = 0;
    let mut h = if len >= 32 {
        let mut v1 = seed.wrapping_add(P1).wrapping_add(P2);
        let mut v2 = seed.wrapping_add(P2);
        let mut v3 = seed;
        let mut v4 = seed.wrapping_sub(P1);
        for stripe in input.chunks_exact(32) {
            v1 = round(v1, read64(stripe, 0));
            v2 = round(v2, read64(stripe, 8));
            v3 = round(v3, read64(stripe, 16));
            v4 = round(v4, read64(stripe, 24));
        }
        i = len & !31;
        let mut h = v1
            .rotate_left(1)
            .wrapping_add(v2.rotate_left(7))
            .wrapping_add(v3.rotate_left(12))
            .wrapping_add(v4.rotate_left(18));
        h = merge(h, v1);
        h = merge(h, v2);
        h = merge(h, v3);
        merge(h, v4)
    } else {
        seed.wrapping_add(P5)
    };
    h = h.wrapping_add(len as u64);
    while i + 8 <= len {
        h ^= round(0, read64(input, i));
        h = h.rotate_left(27).wrapping_mul(P1).wrapping_add(P4);
        i += 8;
    }
    if i + 4 <= len {
        h ^= read32(input, i).wrapping_mul(P1);
        h = h.rotate_left(23).wrapping_mul(P2).wrapping_add(P3);
        i += 4;
    }
    while i < len {
        h ^= (input[i] as u64).wrapping_mul(P5);
        h = h.rotate_left(11).wrapping_mul(P1);
        i += 1;
    }
    h ^= h >> 33;
    h = h.wrapping_mul(P2);
    h ^= h >> 29;
    h = h.wrapping_mul(P3);
    h ^ (h >> 32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_reference_xxhsum() {
        // Values printed by `xxhsum -H1` (Debian package xxhash).
        assert_eq!(xxh64(b"", 0), 0xef46_db37_51d8_e999);
        assert_eq!(xxh64(b"abc", 0), 0x44bc_2cf5_ad77_0999);
        assert_eq!(
            xxh64(b"Nobody inspects the spammish repetition", 0),
            0xfbce_a83c_8a37_8bf1
        );
        assert_eq!(xxh64(&[b'x'; 1000], 0), 0x4cb9_a3b6_9cb7_00e1);
    }

    #[test]
    fn seed_and_every_byte_matter() {
        let mut buf = [7u8; 100];
        let h = xxh64(&buf, 1);
        assert_ne!(h, xxh64(&buf, 2));
        for i in 0..buf.len() {
            buf[i] ^= 0x10;
            assert_ne!(xxh64(&buf, 1), h, "flip at {i} unnoticed");
            buf[i] ^= 0x10;
        }
    }
}
#[cfg(test)]
mod speed {
    #[test]
    #[ignore]
    fn xxh64_speed() {
        let buf = std::vec![7u8; 1 << 20];
        let t = std::time::Instant::now();
        let mut h = 0;
        for _ in 0..200 {
            h = super::xxh64(&buf, h);
        }
        std::eprintln!(
            "in cache: {:.2} GB/s",
            200.0 * (1u64 << 20) as f64 / t.elapsed().as_secs_f64() / 1e9
        );
        let big = std::vec![7u8; 160 << 20];
        let t = std::time::Instant::now();
        let h2 = super::xxh64(&big, h);
        std::eprintln!(
            "160 MB: {:.2} GB/s {h2}",
            (160u64 << 20) as f64 / t.elapsed().as_secs_f64() / 1e9
        );
    }
}

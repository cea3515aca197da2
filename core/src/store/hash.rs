//! A fast, seeded, `no_std` hash for keys (wyhash-style: 64x64->128 bit
//! multiply-and-fold mixing, unaligned little-endian loads).
//!
//! Not cryptographic. The store derives the shard, the bucket and the 12-bit
//! tag from disjoint bit ranges of one hash value.

const P0: u64 = 0xa076_1d64_78bd_642f;
const P1: u64 = 0xe703_7ed1_a0b4_28db;
const P2: u64 = 0x8ebc_6af0_9c88_c6e3;
const P3: u64 = 0x5899_65cc_7537_4cc3;

#[inline(always)]
fn mum(a: u64, b: u64) -> u64 {
    let r = (a as u128) * (b as u128);
    (r as u64) ^ ((r >> 64) as u64)
}

#[inline(always)]
fn r8(p: &[u8], i: usize) -> u64 {
    let mut b = [0u8; 8];
    if let Some(s) = p.get(i..i + 8) {
        b.copy_from_slice(s);
    }
    u64::from_le_bytes(b)
}

#[inline(always)]
fn r4(p: &[u8], i: usize) -> u64 {
    let mut b = [0u8; 4];
    if let Some(s) = p.get(i..i + 4) {
        b.copy_from_slice(s);
    }
    u32::from_le_bytes(b) as u64
}

/// Hash `key` with `seed`. Never panics; deterministic for a given seed.
#[inline]
pub fn hash(seed: u64, key: &[u8]) -> u64 {
    let len = key.len();
    let mut seed = seed ^ P0;
    let (a, b);
    if len <= 16 {
        if len >= 4 {
            let q = (len >> 3) << 2;
            a = (r4(key, 0) << 32) | r4(key, q);
            b = (r4(key, len - 4) << 32) | r4(key, len - 4 - q);
        } else if len > 0 {
            a = ((key[0] as u64) << 16) | ((key[len >> 1] as u64) << 8) | key[len - 1] as u64;
            b = 0;
        } else {
            a = 0;
            b = 0;
        }
    } else {
        let mut i = 0;
        let mut rem = len;
        if rem > 48 {
            let (mut s1, mut s2) = (seed, seed);
            while rem > 48 {
                seed = mum(r8(key, i) ^ P1, r8(key, i + 8) ^ seed);
                s1 = mum(r8(key, i + 16) ^ P2, r8(key, i + 24) ^ s1);
                s2 = mum(r8(key, i + 32) ^ P3, r8(key, i + 40) ^ s2);
                i += 48;
                rem -= 48;
            }
            seed ^= s1 ^ s2;
        }
        while rem > 16 {
            seed = mum(r8(key, i) ^ P1, r8(key, i + 8) ^ seed);
            i += 16;
            rem -= 16;
        }
        a = r8(key, len - 16);
        b = r8(key, len - 8);
    }
    mum(P1 ^ len as u64, mum(a ^ P1, b ^ seed))
}

#[cfg(test)]
mod tests {
    use super::hash;

    #[test]
    fn deterministic_and_seeded() {
        assert_eq!(hash(1, b"hello"), hash(1, b"hello"));
        assert_ne!(hash(1, b"hello"), hash(2, b"hello"));
        assert_ne!(hash(1, b"hello"), hash(1, b"hellp"));
    }

    #[test]
    fn all_lengths_distinct_and_spread() {
        let buf = [7u8; 300];
        let mut seen = [0u64; 300];
        for (len, s) in seen.iter_mut().enumerate() {
            *s = hash(9, &buf[..len]);
        }
        for i in 0..seen.len() {
            for j in i + 1..seen.len() {
                assert_ne!(seen[i], seen[j], "lengths {i} and {j} collide");
            }
        }
        // Low bits of sequential keys spread over buckets.
        let mut counts = [0u32; 16];
        for i in 0u32..16_000 {
            counts[(hash(3, &i.to_le_bytes()) & 15) as usize] += 1;
        }
        for c in counts {
            assert!((800..1200).contains(&c), "{counts:?}");
        }
    }
}

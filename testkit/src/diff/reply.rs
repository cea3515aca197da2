//! Reply streams split into units and compared exactly, CAS values through a bijection.
//!
//! The one tolerance: CAS values are each implementation's own numbering (memcached counts
//! from 1 per process, Petrel derives them from its segments), so a CAS token of memcached and
//! the one of the candidate in the same place are paired ([`CasMap`]), and every later
//! occurrence of either must respect the pairing. Every other byte must be equal.

use std::collections::HashMap;

/// One reply unit: a line (without `\r\n`), and the data block (with its `\r\n`) of a
/// `VALUE`/`VA` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unit {
    /// The line.
    pub line: Vec<u8>,
    /// The data block of `VALUE`/`VA`; empty otherwise.
    pub data: Vec<u8>,
}

/// Splits a reply stream into units; `None` if the last one is incomplete.
pub fn split_units(mut s: &[u8]) -> Option<Vec<Unit>> {
    let mut units = Vec::new();
    while !s.is_empty() {
        let nl = s.windows(2).position(|w| w == b"\r\n")?;
        let line = s[..nl].to_vec();
        s = &s[nl + 2..];
        let mut data = Vec::new();
        let toks: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
        let len = if line.starts_with(b"VALUE ") && toks.len() >= 4 {
            std::str::from_utf8(toks[3])
                .ok()
                .and_then(|t| t.parse::<usize>().ok())
        } else if line.starts_with(b"VA ") && toks.len() >= 2 {
            std::str::from_utf8(toks[1])
                .ok()
                .and_then(|t| t.parse::<usize>().ok())
        } else {
            None
        };
        if let Some(len) = len {
            if s.len() < len + 2 {
                return None;
            }
            data = s[..len + 2].to_vec();
            s = &s[len + 2..];
        }
        units.push(Unit { line, data });
    }
    Some(units)
}

/// Printable bytes for failure messages (first 600 bytes).
pub fn show(b: &[u8]) -> String {
    let mut s = String::new();
    for &c in b.iter().take(600) {
        match c {
            b'\r' => s.push_str("\\r"),
            b'\n' => s.push_str("\\n"),
            0x20..=0x7e => s.push(c as char),
            _ => s.push_str(&format!("\\x{c:02x}")),
        }
    }
    if b.len() > 600 {
        s.push_str(&format!("...({} bytes)", b.len()));
    }
    s
}

/// CAS bijection between memcached's (m) and the candidate's (p) numbering.
#[derive(Default, Debug)]
pub struct CasMap {
    m2p: HashMap<u64, u64>,
    p2m: HashMap<u64, u64>,
}

impl CasMap {
    /// Pairs `m` with `p`; false if either is already paired with another value.
    pub fn pair(&mut self, m: u64, p: u64) -> bool {
        match (self.m2p.get(&m), self.p2m.get(&p)) {
            (Some(&pp), Some(&mm)) => pp == p && mm == m,
            (None, None) => {
                self.m2p.insert(m, p);
                self.p2m.insert(p, m);
                true
            }
            _ => false,
        }
    }
    /// memcached's CAS for a candidate CAS argument (unpaired values pass through: neither
    /// side handed them out).
    pub fn to_memcached(&self, p: u64) -> u64 {
        self.p2m.get(&p).copied().unwrap_or(p)
    }
    /// The candidate's CAS for a memcached CAS (unpaired values pass through).
    pub fn to_candidate(&self, m: u64) -> u64 {
        self.m2p.get(&m).copied().unwrap_or(m)
    }
    /// Pairs recorded.
    pub fn len(&self) -> usize {
        self.m2p.len()
    }
    /// No pair recorded yet.
    pub fn is_empty(&self) -> bool {
        self.m2p.is_empty()
    }
}

fn num(t: &[u8]) -> Option<u64> {
    std::str::from_utf8(t).ok()?.parse().ok()
}

/// Compares memcached's line `m` with the candidate's `p`: equal bytes, except the CAS of a
/// `VALUE` line (5th token) and the `c<cas>` flag of a meta reply, which must pair in `cas`
/// (the pair is recorded even when both numbers happen to be equal, so a later occurrence
/// of either is held to it). The candidate's CAS values seen are pushed onto `seen`.
pub fn same_line(m: &[u8], p: &[u8], cas: &mut CasMap, seen: &mut Vec<u64>) -> bool {
    let mt: Vec<&[u8]> = m.split(|&b| b == b' ').collect();
    let pt: Vec<&[u8]> = p.split(|&b| b == b' ').collect();
    if mt.len() != pt.len() {
        return false;
    }
    let is_value = mt[0] == b"VALUE" && mt.len() == 5;
    let is_meta = matches!(mt[0], b"VA" | b"HD" | b"EN" | b"NF" | b"NS" | b"EX");
    for (i, (a, b)) in mt.iter().zip(pt.iter()).enumerate() {
        let pair = if is_value && i == 4 {
            Some((num(a), num(b)))
        } else if is_meta
            && i > 0
            && !(mt[0] == b"VA" && i == 1)
            && a.len() > 1
            && a[0] == b'c'
            && b.first() == Some(&b'c')
        {
            Some((num(&a[1..]), num(&b[1..])))
        } else {
            None
        };
        match pair {
            Some((Some(x), Some(y))) => {
                if !cas.pair(x, y) {
                    return false;
                }
                seen.push(y);
            }
            Some(_) => return false,
            None if a == b => {}
            None => return false,
        }
    }
    true
}

/// The (key, base64, CAS) of every unit that names both an item's key and its CAS: `VALUE`
/// lines of `gets`/`gats` (a plain key), and `VA`/`HD` meta replies with `k<key>` and
/// `c<cas>` (base64 when the reply carries the `b` flag).
pub fn key_cas(units: &[Unit]) -> Vec<(Vec<u8>, bool, u64)> {
    let mut out = Vec::new();
    for u in units {
        let t: Vec<&[u8]> = u.line.split(|&b| b == b' ').collect();
        if t[0] == b"VALUE" && t.len() == 5 {
            if let Some(c) = num(t[4]) {
                out.push((t[1].to_vec(), false, c));
            }
            continue;
        }
        let flags = match t[0] {
            b"VA" if t.len() > 2 => &t[2..],
            b"HD" => &t[1..],
            _ => continue,
        };
        let key = flags.iter().find(|f| f.first() == Some(&b'k'));
        let cas = flags
            .iter()
            .find(|f| f.first() == Some(&b'c'))
            .and_then(|f| num(&f[1..]));
        if let (Some(k), Some(c)) = (key, cas) {
            let base64 = flags.iter().any(|f| *f == b"b");
            out.push((k[1..].to_vec(), base64, c));
        }
    }
    out
}

/// Compares two unit lists; `Err(i)` names the first unit that differs (or the shorter
/// length when one is a prefix of the other).
pub fn compare_units(
    m: &[Unit],
    p: &[Unit],
    cas: &mut CasMap,
    seen: &mut Vec<u64>,
) -> Result<(), usize> {
    for (i, (a, b)) in m.iter().zip(p.iter()).enumerate() {
        if !(a.data == b.data && same_line(&a.line, &b.line, cas, seen)) {
            return Err(i);
        }
    }
    if m.len() != p.len() {
        return Err(m.len().min(p.len()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmp(m: &[u8], p: &[u8], cas: &mut CasMap) -> Result<(), usize> {
        let mu = split_units(m).expect("complete");
        let pu = split_units(p).expect("complete");
        compare_units(&mu, &pu, cas, &mut Vec::new())
    }

    #[test]
    fn equal_replies_pass_and_cas_pairs_through_a_bijection() {
        let mut cas = CasMap::default();
        cmp(
            b"VALUE k 0 1 7\r\na\r\nEND\r\nHD c7 s1\r\n",
            b"VALUE k 0 1 900\r\na\r\nEND\r\nHD c900 s1\r\n",
            &mut cas,
        )
        .unwrap();
        assert_eq!(cas.to_memcached(900), 7);
        // equal numbers are paired too: 5 <-> 5 holds 5 to 5 later
        cmp(b"HD c5\r\n", b"HD c5\r\n", &mut cas).unwrap();
        assert_eq!(cmp(b"HD c5\r\n", b"HD c6\r\n", &mut cas), Err(0));
        assert_eq!(cmp(b"HD c8\r\n", b"HD c5\r\n", &mut cas), Err(0));
        // a CAS paired once cannot pair with another
        assert_eq!(cmp(b"HD c7\r\n", b"HD c901\r\n", &mut cas), Err(0));
    }

    #[test]
    fn key_cas_reads_value_lines_and_meta_replies_with_k_and_c() {
        let units = split_units(
            b"VALUE a 0 1 7\r\nx\r\nEND\r\nHD c9 kb\r\nVA 2 kYw== c3 b\r\nhi\r\nHD c4\r\nVA 1 kz\r\n5\r\nEX c0 kq\r\n",
        )
        .expect("complete");
        assert_eq!(
            key_cas(&units),
            vec![
                (b"a".to_vec(), false, 7),
                (b"b".to_vec(), false, 9),
                (b"Yw==".to_vec(), true, 3),
            ]
        );
    }

    #[test]
    fn any_other_difference_is_rejected() {
        let mut cas = CasMap::default();
        // a bigger `s` (once tolerated up to 20 for space-padded numbers)
        assert_eq!(
            cmp(b"VA 2 s2\r\n17\r\n", b"VA 2 s3\r\n17\r\n", &mut cas),
            Err(0)
        );
        // trailing-space padding of a number (once stripped on both sides)
        assert_eq!(
            cmp(
                b"VALUE n 0 2\r\n17\r\n",
                b"VALUE n 0 3\r\n17 \r\n",
                &mut cas
            ),
            Err(0)
        );
        assert_eq!(cmp(b"VA 2\r\n17\r\n", b"VA 2\r\n18\r\n", &mut cas), Err(0));
        // TTL, flags, opaque, the CAS flag against a non-number
        assert_eq!(cmp(b"HD t30\r\n", b"HD t29\r\n", &mut cas), Err(0));
        assert_eq!(cmp(b"HD f1\r\n", b"HD f2\r\n", &mut cas), Err(0));
        assert_eq!(cmp(b"HD c1\r\n", b"HD cx\r\n", &mut cas), Err(0));
        // a missing or extra unit
        assert_eq!(cmp(b"HD\r\nEN\r\n", b"HD\r\n", &mut cas), Err(1));
        assert_eq!(cmp(b"HD\r\n", b"HD\r\nHD\r\n", &mut cas), Err(1));
        // the length token of VA is not a CAS even when it starts with a digit
        assert_eq!(cmp(b"VA 1\r\na\r\n", b"VA 1\r\nb\r\n", &mut cas), Err(0));
    }
}

//! Differential testing: the same seeded random command stream, pipelined over TCP to a
//! reference server (memcached) and to a candidate (petrel), must give the same reply bytes.
//!
//! CAS values differ between implementations, so they are compared through a bijection: the
//! first time a candidate CAS `p` is seen where the reference has `m`, the pair `p <-> m` is
//! recorded, and every later occurrence of either must pair with the same partner. Commands
//! that send a CAS (`cas`, `ms C`, `md C`, `ma C`) carry the reference's value; the candidate
//! receives its partner under the bijection. CAS values never observed are sent unchanged and
//! chosen far above any counter a server reaches in a test (`BOGUS_CAS_BASE`).
//!
//! The stream is sent in batches; each batch ends with `mn` so the runner knows when every
//! reply of the batch has arrived (keys and values never contain `MN`). Expiry times are only
//! 0, far in the future, or already past, and no command asks for a remaining TTL or an access
//! time, so the replies do not depend on the clock.

use crate::escape::escape;
use crate::rng::Rng;
use crate::tcp::find;
use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// CAS values sent that no server has handed out: `BOGUS_CAS_BASE + small random`.
pub const BOGUS_CAS_BASE: u64 = 1 << 50;
/// Largest value memcached accepts by default (`-I 1m`) is below this; used for "too large".
pub const TOO_LARGE_VALUE_BYTES: usize = 1024 * 1024 + 1;

/// One piece of a command: literal bytes, or a CAS value (reference numbering) to translate.
#[derive(Clone, Debug)]
enum Piece {
    Lit(Vec<u8>),
    Cas(u64),
}

/// A generated command, rendered differently for the reference and the candidate.
#[derive(Clone, Debug, Default)]
pub struct Cmd {
    pieces: Vec<Piece>,
}

impl Cmd {
    fn lit(&mut self, b: &[u8]) -> &mut Self {
        match self.pieces.last_mut() {
            Some(Piece::Lit(v)) => v.extend_from_slice(b),
            _ => self.pieces.push(Piece::Lit(b.to_vec())),
        }
        self
    }
    fn s(&mut self, s: &str) -> &mut Self {
        self.lit(s.as_bytes())
    }
    fn cas(&mut self, c: u64) -> &mut Self {
        self.pieces.push(Piece::Cas(c));
        self
    }
    /// The bytes for the reference server.
    pub fn reference_bytes(&self) -> Vec<u8> {
        self.render(Some).expect("identity")
    }
    /// The bytes with every CAS piece replaced by `map(cas)` (`None` = keep the value).
    fn render(&self, map: impl Fn(u64) -> Option<u64>) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        for p in &self.pieces {
            match p {
                Piece::Lit(b) => out.extend_from_slice(b),
                Piece::Cas(c) => {
                    out.extend_from_slice(map(*c).unwrap_or(*c).to_string().as_bytes())
                }
            }
        }
        Some(out)
    }
}

/// Shape of a generated stream.
#[derive(Clone, Debug)]
pub struct StreamConfig {
    /// Seed: the same seed and observations give the same stream.
    pub seed: u64,
    /// Number of distinct ordinary keys (small, so that commands interact).
    pub keys: usize,
    /// Commands per pipelined batch (plus the closing `mn`).
    pub batch: usize,
    /// Percentage of commands that are deliberately invalid.
    pub invalid_percent: u64,
    /// Percentage of commands (that support it) sent with `noreply` / `q`.
    pub noreply_percent: u64,
    /// Whether an occasional value over 1 MiB (rejected, swallowed) is included.
    pub too_large: bool,
}

impl StreamConfig {
    /// Defaults for a given seed.
    pub fn new(seed: u64) -> Self {
        StreamConfig {
            seed,
            keys: 24,
            batch: 64,
            invalid_percent: 4,
            noreply_percent: 12,
            too_large: true,
        }
    }
}

/// Generates commands; CAS values for `cas`-style commands come from what the reference
/// returned so far (see [`Generator::observe`]).
#[derive(Debug)]
pub struct Generator {
    cfg: StreamConfig,
    rng: Rng,
    keys: Vec<String>,
    /// Last CAS the reference reported for each key.
    seen_cas: HashMap<String, u64>,
    /// Keys whose value a retrieval in the current batch returns. memcached increments a
    /// number in place (padding with spaces) only while no pending reply references the item,
    /// which depends on how the pipeline is split into reads: memcached is not deterministic
    /// there, so `incr`/`decr`/`ma` avoid such keys until the next batch.
    fetched: std::collections::HashSet<String>,
}

const EXPTIMES: &[i64] = &[0, 0, 0, 0, 0, 0, 100_000, 2_000_000, -1, 4_102_444_800];
const MG_FLAGS: &[&str] = &["v", "f", "s", "h", "k", "q", "O", "c", "T", "N"];

impl Generator {
    /// A generator for `cfg`.
    pub fn new(cfg: StreamConfig) -> Self {
        let mut rng = Rng::new(cfg.seed);
        let mut keys: Vec<String> = (0..cfg.keys).map(|i| format!("k{i}")).collect();
        // A few unusual but valid keys: longest allowed, punctuation.
        keys.push("x".repeat(250));
        keys.push("key:with/punct.and-dash_0".into());
        let _ = rng.next_u64();
        Generator {
            cfg,
            rng,
            keys,
            seen_cas: HashMap::new(),
            fetched: Default::default(),
        }
    }

    /// Marks the start of a new pipelined batch (all earlier replies have been read).
    pub fn start_batch(&mut self) {
        self.fetched.clear();
    }

    /// A key for an arithmetic command: one not retrieved in this batch (see `fetched`).
    fn arith_key(&mut self) -> String {
        for _ in 0..8 {
            let k = self.key();
            if !self.fetched.contains(&k) {
                return k;
            }
        }
        format!("spare{}", self.rng.below(4))
    }

    fn fetch_key(&mut self) -> String {
        let k = self.key();
        self.fetched.insert(k.clone());
        k
    }

    /// Records a CAS the reference reported for `key`.
    pub fn observe(&mut self, key: &str, cas: u64) {
        self.seen_cas.insert(key.to_string(), cas);
    }

    fn key(&mut self) -> String {
        // Ordinary keys mostly; the special ones rarely.
        if self.rng.chance(3) {
            let n = self.keys.len();
            return self.keys[n - 1 - self.rng.below(2) as usize].clone();
        }
        let i = self.rng.below(self.cfg.keys as u64) as usize;
        self.keys[i].clone()
    }

    fn value(&mut self) -> Vec<u8> {
        let r = self.rng.below(100);
        if r < 35 {
            // Numbers, for incr/decr (some near 2^64, some with leading spaces/zeros).
            let n = match self.rng.below(6) {
                0 => u64::MAX - self.rng.below(3),
                1 => self.rng.below(10),
                2 => self.rng.below(1000),
                _ => self.rng.next_u64() >> self.rng.below(64),
            };
            let s = match self.rng.below(10) {
                0 => format!("00{n}"),
                1 => format!(" {n}"),
                _ => n.to_string(),
            };
            return s.into_bytes();
        }
        let len = if r < 85 {
            self.rng.below(40) as usize
        } else if r < 97 {
            self.rng.range(100, 3000) as usize
        } else {
            self.rng.range(3000, 40_000) as usize
        };
        self.letters(len)
    }

    /// Random letters, digits and inner spaces. Never starts or ends with a space, so that no
    /// value (nor a concatenation by append/prepend) is only whitespace: memcached's `incr`
    /// parses such a value with `strtoull`, which skips the `\r\n` and reads past the item.
    fn letters(&mut self, len: usize) -> Vec<u8> {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789 ";
        (0..len)
            .map(|i| {
                let n = if i == 0 || i + 1 == len { 36 } else { 37 };
                ALPHABET[self.rng.below(n) as usize]
            })
            .collect()
    }

    fn flags(&mut self) -> u32 {
        match self.rng.below(10) {
            0..=5 => 0,
            6 | 7 => self.rng.below(100) as u32,
            _ => self.rng.next_u64() as u32,
        }
    }

    fn exptime(&mut self) -> i64 {
        *self.rng.pick(EXPTIMES)
    }

    fn cas_value(&mut self, key: &str) -> u64 {
        match (self.seen_cas.get(key), self.rng.below(10)) {
            (Some(&c), 0..=6) => c,
            (_, 7) => 0,
            _ => BOGUS_CAS_BASE + self.rng.below(1000),
        }
    }

    fn noreply(&mut self) -> bool {
        self.rng.chance(self.cfg.noreply_percent)
    }

    /// The next command of the stream.
    pub fn next_cmd(&mut self) -> Cmd {
        let mut c = Cmd::default();
        if self.rng.chance(self.cfg.invalid_percent) {
            self.invalid(&mut c);
            return c;
        }
        let w = self.rng.below(1000);
        match w {
            0..=139 => self.storage(&mut c, "set"),
            140..=179 => self.storage(&mut c, "add"),
            180..=219 => self.storage(&mut c, "replace"),
            220..=254 => self.storage(&mut c, "append"),
            255..=289 => self.storage(&mut c, "prepend"),
            290..=349 => self.cas_cmd(&mut c),
            350..=459 => self.retrieval(&mut c),
            460..=499 => self.gat(&mut c),
            500..=559 => {
                let k = self.key();
                let nr = self.noreply();
                c.s(&format!(
                    "delete {k}{}\r\n",
                    if nr { " noreply" } else { "" }
                ));
            }
            560..=629 => {
                let k = self.arith_key();
                let op = if self.rng.chance(55) { "incr" } else { "decr" };
                let d = match self.rng.below(5) {
                    0 => u64::MAX,
                    1 => self.rng.next_u64(),
                    _ => self.rng.below(100),
                };
                let nr = self.noreply();
                c.s(&format!(
                    "{op} {k} {d}{}\r\n",
                    if nr { " noreply" } else { "" }
                ));
            }
            630..=659 => {
                let k = self.key();
                let e = self.exptime();
                let nr = self.noreply();
                c.s(&format!(
                    "touch {k} {e}{}\r\n",
                    if nr { " noreply" } else { "" }
                ));
            }
            660..=759 => self.meta_get(&mut c),
            760..=849 => self.meta_set(&mut c),
            850..=889 => self.meta_delete(&mut c),
            890..=959 => self.meta_arith(&mut c),
            960..=974 => {
                c.s("mn\r\n");
            }
            975..=989 => {
                let nr = self.noreply();
                // verbosity 0 only: higher levels make memcached log every command
                c.s(&format!(
                    "verbosity 0{}\r\n",
                    if nr { " noreply" } else { "" }
                ));
            }
            _ => {
                if self.rng.chance(30) {
                    let nr = self.noreply();
                    c.s(&format!(
                        "flush_all{}\r\n",
                        if nr { " noreply" } else { "" }
                    ));
                } else {
                    // multi-get of every ordinary key
                    c.s("get");
                    for k in self.keys.clone().iter().take(self.cfg.keys) {
                        c.s(" ").s(k);
                        self.fetched.insert(k.clone());
                    }
                    c.s("\r\n");
                }
            }
        }
        c
    }

    fn storage(&mut self, c: &mut Cmd, cmd: &str) {
        let k = self.key();
        let f = self.flags();
        let e = self.exptime();
        let v = self.value();
        let nr = self.noreply();
        c.s(&format!(
            "{cmd} {k} {f} {e} {}{}\r\n",
            v.len(),
            if nr { " noreply" } else { "" }
        ));
        c.lit(&v).lit(b"\r\n");
    }

    fn cas_cmd(&mut self, c: &mut Cmd) {
        let k = self.key();
        let f = self.flags();
        let e = self.exptime();
        let v = self.value();
        let cas = self.cas_value(&k);
        let nr = self.noreply();
        c.s(&format!("cas {k} {f} {e} {} ", v.len()));
        c.cas(cas);
        c.s(if nr { " noreply\r\n" } else { "\r\n" });
        c.lit(&v).lit(b"\r\n");
    }

    fn retrieval(&mut self, c: &mut Cmd) {
        let cmd = if self.rng.chance(50) { "get" } else { "gets" };
        c.s(cmd);
        for _ in 0..self.rng.range(1, 5) {
            let k = self.fetch_key();
            c.s(" ").s(&k);
        }
        c.s("\r\n");
    }

    fn gat(&mut self, c: &mut Cmd) {
        let cmd = if self.rng.chance(50) { "gat" } else { "gats" };
        let e = self.exptime();
        c.s(&format!("{cmd} {e}"));
        for _ in 0..self.rng.range(1, 3) {
            let k = self.fetch_key();
            c.s(" ").s(&k);
        }
        c.s("\r\n");
    }

    fn meta_get(&mut self, c: &mut Cmd) {
        let k = self.fetch_key();
        c.s(&format!("mg {k}"));
        let mut want_cas = false;
        for f in MG_FLAGS {
            if !self.rng.chance(30) {
                continue;
            }
            match *f {
                "O" => {
                    let o = self.rng.below(100_000);
                    c.s(&format!(" O{o}"));
                }
                "T" => {
                    let e = self.exptime();
                    c.s(&format!(" T{e}"));
                }
                "N" => {
                    if self.rng.chance(30) {
                        c.s(" N0");
                    }
                }
                "c" => want_cas = true,
                other => {
                    c.s(" ").s(other);
                }
            }
        }
        if want_cas {
            c.s(" c k");
        }
        c.s("\r\n");
    }

    fn meta_set(&mut self, c: &mut Cmd) {
        let k = self.key();
        let v = self.value();
        c.s(&format!("ms {k} {}", v.len()));
        if self.rng.chance(40) {
            let f = self.flags();
            c.s(&format!(" F{f}"));
        }
        if self.rng.chance(30) {
            let e = self.exptime();
            c.s(&format!(" T{e}"));
        }
        if self.rng.chance(25) {
            let cas = self.cas_value(&k);
            c.s(" C").cas(cas);
        }
        if self.rng.chance(40) {
            let m = *self.rng.pick(&["MS", "ME", "MA", "MP", "MR", "Ms", "Ma"]);
            c.s(" ").s(m);
        }
        if self.rng.chance(30) {
            c.s(" c k");
        }
        if self.rng.chance(20) {
            let o = self.rng.below(1000);
            c.s(&format!(" O{o}"));
        }
        if self.rng.chance(self.cfg.noreply_percent) {
            c.s(" q");
        }
        c.s("\r\n").lit(&v).lit(b"\r\n");
    }

    fn meta_delete(&mut self, c: &mut Cmd) {
        let k = self.key();
        c.s(&format!("md {k}"));
        if self.rng.chance(25) {
            let cas = self.cas_value(&k);
            c.s(" C").cas(cas);
        }
        if self.rng.chance(30) {
            c.s(" k");
        }
        if self.rng.chance(20) {
            let o = self.rng.below(1000);
            c.s(&format!(" O{o}"));
        }
        if self.rng.chance(self.cfg.noreply_percent) {
            c.s(" q");
        }
        c.s("\r\n");
    }

    fn meta_arith(&mut self, c: &mut Cmd) {
        let k = self.arith_key();
        c.s(&format!("ma {k}"));
        if self.rng.chance(40) {
            let m = *self.rng.pick(&["MI", "M+", "MD", "M-", "Mi", "Md"]);
            c.s(" ").s(m);
        }
        if self.rng.chance(50) {
            let d = match self.rng.below(4) {
                0 => u64::MAX,
                _ => self.rng.below(50),
            };
            c.s(&format!(" D{d}"));
        }
        if self.rng.chance(30) {
            c.s(" N0");
            if self.rng.chance(60) {
                let j = self.rng.below(1000);
                c.s(&format!(" J{j}"));
            }
        }
        if self.rng.chance(20) {
            let cas = self.cas_value(&k);
            c.s(" C").cas(cas);
        }
        if self.rng.chance(50) {
            c.s(" v");
        }
        if self.rng.chance(30) {
            c.s(" c k");
        }
        if self.rng.chance(self.cfg.noreply_percent) {
            c.s(" q");
        }
        c.s("\r\n");
    }

    fn invalid(&mut self, c: &mut Cmd) {
        match self.rng.below(12) {
            0 => {
                c.s("bogus_command k0\r\n");
            }
            1 => {
                c.s("\r\n");
            }
            2 => {
                // (`get` with a 251-byte key is left out: memcached 1.6.18 answers it with or
                // without a leading `END` depending on how the pipeline was split into reads.)
                c.s("get k8 \x01\r\n");
            }
            3 => {
                // non-numeric flags; memcached then reads the data line as a command
                c.s("set k0 abc 0 1\r\nx\r\n");
            }
            4 => {
                // bad data chunk: more bytes than announced
                c.s("set k1 0 0 3\r\nabcde\r\n");
            }
            5 => {
                c.s("incr k2 abc\r\n");
            }
            6 => {
                c.s("touch k3 abc\r\n");
            }
            7 => {
                c.s("mg k4 !\r\n");
            }
            8 => {
                c.s("GET k5\r\n");
            }
            9 => {
                if self.cfg.too_large && self.rng.chance(10) {
                    let v = vec![b'z'; TOO_LARGE_VALUE_BYTES];
                    c.s(&format!("set k6 0 0 {}\r\n", v.len()));
                    c.lit(&v).lit(b"\r\n");
                } else {
                    c.s("get\r\n");
                }
            }
            10 => {
                let k = "y".repeat(251);
                c.s(&format!("set {k} 0 0 1\r\nx\r\n"));
            }
            _ => {
                c.s("decr k7 -1\r\n");
            }
        }
    }
}

/// One token of a reply: literal bytes, or a CAS value.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Tok {
    Bytes(Vec<u8>),
    Cas(u64),
}

/// Splits a reply into literal bytes and CAS numbers, and collects `(key, cas)` pairs where
/// the reply names the key (`VALUE k f l cas`, meta replies with `k<key>` and `c<cas>`).
fn tokenize(reply: &[u8]) -> (Vec<Tok>, Vec<(String, u64)>) {
    let mut toks = Vec::new();
    let mut pairs = Vec::new();
    let mut i = 0;
    while i < reply.len() {
        let Some(eol) = find(&reply[i..], b"\r\n") else {
            toks.push(Tok::Bytes(reply[i..].to_vec()));
            break;
        };
        let line = &reply[i..i + eol];
        i += eol + 2;
        let words: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
        let num = |w: &[u8]| std::str::from_utf8(w).ok()?.parse::<u64>().ok();
        let mut data_len = None;
        if words[0] == b"VALUE" && words.len() >= 4 {
            data_len = num(words[3]);
            if words.len() == 5 {
                if let Some(c) = num(words[4]) {
                    let head = &line[..line.len() - words[4].len()];
                    toks.push(Tok::Bytes(head.to_vec()));
                    toks.push(Tok::Cas(c));
                    toks.push(Tok::Bytes(b"\r\n".to_vec()));
                    pairs.push((String::from_utf8_lossy(words[1]).into_owned(), c));
                } else {
                    toks.push(Tok::Bytes(reply[i - eol - 2..i].to_vec()));
                }
            } else {
                toks.push(Tok::Bytes(reply[i - eol - 2..i].to_vec()));
            }
        } else if matches!(words[0], b"VA" | b"HD" | b"EN" | b"NF" | b"NS" | b"EX") {
            if words[0] == b"VA" && words.len() >= 2 {
                data_len = num(words[1]);
            }
            let mut key = None;
            let mut cas = None;
            let mut lit = Vec::new();
            for (n, w) in words.iter().enumerate() {
                if n > 0 {
                    lit.push(b' ');
                }
                let is_flag = n > 0 && !(words[0] == b"VA" && n == 1);
                if is_flag && w.len() > 1 && w[0] == b'c' {
                    if let Some(c) = num(&w[1..]) {
                        lit.push(b'c');
                        toks.push(Tok::Bytes(std::mem::take(&mut lit)));
                        toks.push(Tok::Cas(c));
                        cas = Some(c);
                        continue;
                    }
                }
                if is_flag && w.len() > 1 && w[0] == b'k' {
                    key = Some(String::from_utf8_lossy(&w[1..]).into_owned());
                }
                lit.extend_from_slice(w);
            }
            lit.extend_from_slice(b"\r\n");
            toks.push(Tok::Bytes(lit));
            if let (Some(k), Some(c)) = (key, cas) {
                pairs.push((k, c));
            }
        } else {
            toks.push(Tok::Bytes(reply[i - eol - 2..i].to_vec()));
        }
        if let Some(n) = data_len {
            let end = (i + n as usize + 2).min(reply.len());
            toks.push(Tok::Bytes(reply[i..end].to_vec()));
            i = end;
        }
    }
    // Merge adjacent literal tokens so that token boundaries cannot differ spuriously.
    let mut merged: Vec<Tok> = Vec::new();
    for t in toks {
        match (merged.last_mut(), t) {
            (Some(Tok::Bytes(a)), Tok::Bytes(b)) => a.extend_from_slice(&b),
            (_, t) => merged.push(t),
        }
    }
    (merged, pairs)
}

/// The CAS bijection between candidate and reference numbering.
#[derive(Debug, Default)]
pub struct CasMap {
    ref_to_cand: HashMap<u64, u64>,
    cand_to_ref: HashMap<u64, u64>,
}

impl CasMap {
    /// Records `reference <-> candidate`; `Err` if either is already paired with another value.
    pub fn pair(&mut self, reference: u64, candidate: u64) -> Result<(), String> {
        match (self.ref_to_cand.get(&reference), self.cand_to_ref.get(&candidate)) {
            (None, None) => {
                self.ref_to_cand.insert(reference, candidate);
                self.cand_to_ref.insert(candidate, reference);
                Ok(())
            }
            (Some(&c), Some(&r)) if c == candidate && r == reference => Ok(()),
            (c, r) => Err(format!(
                "CAS mismatch: reference {reference} (paired with candidate {c:?}) vs candidate {candidate} (paired with reference {r:?})"
            )),
        }
    }
    /// The candidate's CAS for a reference CAS, if one was observed.
    pub fn to_candidate(&self, reference: u64) -> Option<u64> {
        self.ref_to_cand.get(&reference).copied()
    }
}

/// Totals of a differential run.
#[derive(Debug, Default, Clone)]
pub struct DiffStats {
    /// Commands sent to each server (excluding the batch-closing `mn`).
    pub commands: usize,
    /// Batches.
    pub batches: usize,
    /// Reply bytes from the reference.
    pub reply_bytes: usize,
    /// CAS pairs recorded in the bijection.
    pub cas_pairs: usize,
}

/// Reads from `stream` until `mn_count` `MN\r\n` replies arrived (keys and values never
/// contain `MN`), EOF, or `deadline`.
fn read_batch(
    stream: &mut TcpStream,
    mn_count: usize,
    deadline: Instant,
) -> (Vec<u8>, &'static str) {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut seen = 0;
    let mut scanned = 0;
    loop {
        while let Some(p) = find(&out[scanned..], b"MN\r\n") {
            seen += 1;
            scanned += p + 4;
        }
        if seen >= mn_count && out.ends_with(b"MN\r\n") {
            return (out, "complete");
        }
        let now = Instant::now();
        if now >= deadline {
            return (out, "timed out");
        }
        stream
            .set_read_timeout(Some(deadline - now))
            .expect("timeout");
        match stream.read(&mut buf) {
            Ok(0) => return (out, "connection closed"),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::TimedOut => {
                return (out, "timed out")
            }
            Err(_) => return (out, "read error"),
        }
    }
}

/// Sends `bytes` on a clone of `stream` from a helper thread while this thread reads the
/// replies, so that neither side can block the other.
fn exchange(
    stream: &mut TcpStream,
    bytes: Vec<u8>,
    mn_count: usize,
    timeout: Duration,
) -> (Vec<u8>, &'static str) {
    let mut w = stream.try_clone().expect("clone stream");
    let writer = std::thread::spawn(move || w.write_all(&bytes));
    let r = read_batch(stream, mn_count, Instant::now() + timeout);
    let _ = writer.join();
    r
}

/// Why a differential run stopped.
#[derive(Debug)]
pub enum DiffError {
    /// The two memcached references disagreed with each other: memcached is not deterministic
    /// for this stream (see the module docs); the stream proves nothing either way.
    ReferenceUnstable(String),
    /// The candidate's replies differ from the references' (which agree): a real divergence.
    Mismatch(String),
    /// Connecting failed, or a reference did not answer a batch completely.
    Setup(String),
}

/// Compares two tokenized replies, extending the CAS bijection; `Err` says where they differ.
fn compare(rt: &[Tok], ct: &[Tok], map: &mut CasMap) -> Result<(), String> {
    for (i, pair) in rt.iter().zip(ct.iter()).enumerate() {
        match pair {
            (Tok::Bytes(a), Tok::Bytes(b)) if a == b => {}
            (Tok::Cas(r), Tok::Cas(c)) => {
                map.pair(*r, *c).map_err(|e| format!("token {i}: {e}"))?
            }
            _ => {
                let at = rt[..i]
                    .iter()
                    .map(|t| match t {
                        Tok::Bytes(b) => b.len(),
                        Tok::Cas(c) => c.to_string().len(),
                    })
                    .sum::<usize>();
                return Err(format!(
                    "replies differ after reference byte {at}: {}",
                    show_difference(&rt[i], pair.1)
                ));
            }
        }
    }
    if rt.len() != ct.len() {
        return Err(format!(
            "reply lengths differ ({} vs {} tokens)",
            rt.len(),
            ct.len()
        ));
    }
    Ok(())
}

/// Runs `commands` commands of the stream for `cfg` against two memcached references and the
/// candidate. The candidate must match the first reference byte for byte (CAS through a
/// bijection); the second reference detects batches where memcached itself is not
/// deterministic ([`DiffError::ReferenceUnstable`]).
pub fn run(
    references: [SocketAddr; 2],
    candidate: SocketAddr,
    cfg: StreamConfig,
    commands: usize,
) -> Result<DiffStats, DiffError> {
    let connect = |a: SocketAddr| -> Result<TcpStream, DiffError> {
        let s = TcpStream::connect_timeout(&a, Duration::from_secs(5))
            .map_err(|e| DiffError::Setup(format!("connect {a}: {e}")))?;
        s.set_nodelay(true).ok();
        Ok(s)
    };
    let mut rs = connect(references[0])?;
    let mut r2s = connect(references[1])?;
    let mut cs = connect(candidate)?;
    let seed = cfg.seed;
    let batch = cfg.batch;
    let mut gen = Generator::new(cfg);
    let mut map = CasMap::default();
    let mut map2 = CasMap::default();
    let mut stats = DiffStats::default();
    while stats.commands < commands {
        let n = batch.min(commands - stats.commands);
        gen.start_batch();
        let cmds: Vec<Cmd> = (0..n).map(|_| gen.next_cmd()).collect();
        let mut rbytes = Vec::new();
        let mut r2bytes = Vec::new();
        let mut cbytes = Vec::new();
        for c in &cmds {
            rbytes.extend_from_slice(&c.reference_bytes());
            r2bytes.extend_from_slice(&c.render(|x| map2.to_candidate(x)).expect("render"));
            cbytes.extend_from_slice(&c.render(|x| map.to_candidate(x)).expect("render"));
        }
        for b in [&mut rbytes, &mut r2bytes, &mut cbytes] {
            b.extend_from_slice(b"mn\r\n");
        }
        let mn_count = 1 + cmds
            .iter()
            .filter(|c| c.reference_bytes() == b"mn\r\n")
            .count();
        if let Some(path) = std::env::var_os("PETREL_DIFF_DUMP") {
            // Append this batch's reference bytes, for replaying a failure by hand.
            use std::io::Write as _;
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .expect("open PETREL_DIFF_DUMP");
            f.write_all(&rbytes).expect("write dump");
        }
        let timeout = Duration::from_secs(20);
        let (rreply, rstate) = exchange(&mut rs, rbytes, mn_count, timeout);
        let (r2reply, r2state) = exchange(&mut r2s, r2bytes, mn_count, timeout);
        let (creply, cstate) = exchange(&mut cs, cbytes, mn_count, timeout);
        let describe = |why: &str, other: &[u8], other_state: &str, other_name: &str| {
            let mut s = format!(
                "differential stream seed {seed}, batch {} (commands {}..{}): {why}\n--- commands (reference bytes):\n",
                stats.batches,
                stats.commands,
                stats.commands + n
            );
            for (i, c) in cmds.iter().enumerate() {
                s.push_str(&format!("[{i}] {}\n", escape(&c.reference_bytes(), 200)));
            }
            s.push_str(&format!(
                "--- reference reply ({rstate}):\n{}\n--- {other_name} reply ({other_state}):\n{}\n",
                escape(&rreply, 6000),
                escape(other, 6000)
            ));
            s
        };
        if rstate != "complete" || r2state != "complete" {
            return Err(DiffError::Setup(describe(
                "a reference did not answer the batch completely (a test bug)",
                &r2reply,
                r2state,
                "second reference",
            )));
        }
        let (rt, rpairs) = tokenize(&rreply);
        let (r2t, _) = tokenize(&r2reply);
        let (ct, _) = tokenize(&creply);
        if let Err(e) = compare(&rt, &r2t, &mut map2) {
            return Err(DiffError::ReferenceUnstable(describe(
                &e,
                &r2reply,
                r2state,
                "second reference",
            )));
        }
        let verdict = compare(&rt, &ct, &mut map).and_then(|()| {
            if cstate == "complete" {
                Ok(())
            } else {
                Err(format!("candidate reply incomplete: {cstate}"))
            }
        });
        if let Err(e) = verdict {
            return Err(DiffError::Mismatch(describe(
                &e,
                &creply,
                cstate,
                "candidate",
            )));
        }
        for (k, c) in rpairs {
            gen.observe(&k, c);
        }
        stats.commands += n;
        stats.batches += 1;
        stats.reply_bytes += rreply.len();
    }
    stats.cas_pairs = map.ref_to_cand.len();
    Ok(stats)
}

/// The first differing byte of two tokens with some context on each side.
fn show_difference(a: &Tok, b: &Tok) -> String {
    match (a, b) {
        (Tok::Bytes(x), Tok::Bytes(y)) => {
            let d = x.iter().zip(y.iter()).take_while(|(p, q)| p == q).count();
            let from = d.saturating_sub(300);
            format!(
                "first difference at byte {d} of this part; reference ...{:?} vs candidate ...{:?}",
                escape(&x[from..(d + 200).min(x.len())], 600),
                escape(&y[from..(d + 200).min(y.len())], 600)
            )
        }
        _ => format!("reference {} vs candidate {}", tok_str(a), tok_str(b)),
    }
}

fn tok_str(t: &Tok) -> String {
    match t {
        Tok::Bytes(b) => escape(b, 300),
        Tok::Cas(c) => format!("<cas {c}>"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenize_extracts_cas_and_keys() {
        let reply =
            b"VALUE k1 5 3 17\r\nabc\r\nEND\r\nVA 2 c9 kk2 f0\r\nhi\r\nHD c10\r\nEN\r\nMN\r\n";
        let (toks, pairs) = tokenize(reply);
        let cas: Vec<u64> = toks
            .iter()
            .filter_map(|t| match t {
                Tok::Cas(c) => Some(*c),
                _ => None,
            })
            .collect();
        assert_eq!(cas, vec![17, 9, 10]);
        assert_eq!(pairs, vec![("k1".to_string(), 17), ("k2".to_string(), 9)]);
        // value bytes that look like a CAS line are data, not tokens
        let (toks, _) = tokenize(b"VA 6\r\nHD c1\r\n\r\nMN\r\n");
        assert!(toks.iter().all(|t| matches!(t, Tok::Bytes(_))));
    }

    #[test]
    fn cas_map_is_a_bijection() {
        let mut m = CasMap::default();
        m.pair(1, 100).unwrap();
        m.pair(1, 100).unwrap();
        assert!(m.pair(1, 101).is_err());
        assert!(m.pair(2, 100).is_err());
        assert_eq!(m.to_candidate(1), Some(100));
    }

    #[test]
    fn generator_is_deterministic() {
        let mut a = Generator::new(StreamConfig::new(5));
        let mut b = Generator::new(StreamConfig::new(5));
        for _ in 0..2000 {
            assert_eq!(
                a.next_cmd().reference_bytes(),
                b.next_cmd().reference_bytes()
            );
        }
    }
}

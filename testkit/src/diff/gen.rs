//! The command generator: seeded random pipelined batches of every text command memcached
//! 1.6.18 answers deterministically, valid and invalid, with the exclusions listed in
//! [`super`]'s documentation (each for one documented memcached behaviour).

use std::collections::HashMap;

use crate::rng::Rng;

/// What kind of candidate the stream is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    /// Petrel's engine in-process, run at memcached's `time` (given as `now`): the remaining
    /// TTL (`t`) and the recache window (`R`) are generated and compared exactly.
    Engine,
    /// A server process (the petrel binary over TCP). It keeps its own clock, whose second
    /// starts at another phase than memcached's, so `t` and `R`, which name that second, are
    /// not generated (expiry times still are; none expires within a run except those already
    /// in the past).
    Server,
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn b64(src: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for c in src.chunks(3) {
        let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
        out.push(B64[(b[0] >> 2) as usize]);
        out.push(B64[(((b[0] & 3) << 4) | (b[1] >> 4)) as usize]);
        out.push(if c.len() > 1 {
            B64[(((b[1] & 15) << 2) | (b[2] >> 6)) as usize]
        } else {
            b'='
        });
        out.push(if c.len() > 2 {
            B64[(b[2] & 63) as usize]
        } else {
            b'='
        });
    }
    out
}

/// One generated command: its bytes (with data) for both servers, and
/// whether it ends the connection (`quit`).
pub struct Cmd {
    /// The command, with its data block.
    pub bytes: Vec<u8>,
    /// `quit`: the server closes the connection after it.
    pub quits: bool,
}

/// The generator of one seed's stream.
pub struct Gen {
    /// The generator's randomness (seeded).
    pub rng: Rng,
    profile: Profile,
    keys: Vec<Vec<u8>>,
    bin_keys: Vec<Vec<u8>>,
    /// Petrel CAS values seen (for valid `cas`/`C` arguments).
    pub seen_cas: Vec<u64>,
    /// Petrel CAS values seen with their key (as a reply printed it, and
    /// whether base64 with `b`), the latest last: the `C` of `ms ... I`.
    cas_of_key: HashMap<(Vec<u8>, bool), Vec<u64>>,
    /// The next command starts a batch (nothing before it awaits a reply).
    pub first_in_batch: bool,
    /// Keys read earlier in this batch.
    read_in_batch: Vec<Vec<u8>>,
    /// The values of [`ARITH_KEYS`] at this point of the batch.
    nums: [Num; ARITH_KEYS.len()],
    /// incr/decr/ma not generated because no arith key was safe.
    pub arith_skipped: u64,
}

/// The keys incr/decr/ma are sent to (see [`Gen::arith_key`]).
pub const ARITH_KEYS: [&[u8]; 6] = [b"n1", b"n2", b"c1", b"c2", b"missing", b"arith-only"];

/// What the generator knows of an arith key's value at a point of a batch:
/// memcached answers incr/decr/ma deterministically unless the value is a
/// number of 2^63 or more (see the module docs), so those are
/// [`Num::Unsafe`], as is every value the generator cannot follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Num {
    /// No item.
    Missing,
    /// A number below 2^63, stored in `len` bytes (an incr/decr result
    /// shorter than the value is padded with spaces to its length).
    Small { v: u64, len: usize },
    /// Not a number (including one over u64::MAX): refused by both.
    Text,
    /// A number of 2^63 or more, or not known: no incr/decr/ma.
    Unsafe,
}

impl Num {
    /// A value as stored (Petrel pads incr results with spaces).
    fn of_value(v: &[u8]) -> Num {
        let digits = v.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 || v[digits..].iter().any(|&b| b != b' ') {
            return Num::Text;
        }
        match std::str::from_utf8(&v[..digits]).unwrap().parse::<u64>() {
            Ok(n) => Num::stored(n, v.len()),
            Err(_) => Num::Text, // over u64::MAX: ERANGE in memcached too
        }
    }

    /// `n` written over a value of `len` bytes: in place (padded) when its
    /// digits fit, else as a new item of exactly its digits.
    fn stored(n: u64, len: usize) -> Num {
        if n < 1 << 63 {
            Num::Small {
                v: n,
                len: len.max(digits(n)),
            }
        } else {
            Num::Unsafe
        }
    }

    /// `n` as a new item (`N` vivify with `J`).
    fn of_number(n: u64) -> Num {
        Num::stored(n, 0)
    }
}

/// Decimal digits of `n`.
fn digits(n: u64) -> usize {
    n.checked_ilog10().map_or(1, |l| l as usize + 1)
}

impl Gen {
    /// The stream of `seed` for a candidate of `profile`.
    pub fn new(seed: u64, profile: Profile) -> Self {
        let mut keys: Vec<Vec<u8>> = (0..24).map(|i| format!("k{i}").into_bytes()).collect();
        keys.push(b"n1".to_vec());
        keys.push(b"n2".to_vec());
        keys.push(b"c1".to_vec());
        keys.push(b"c2".to_vec());
        keys.push(b"key\x01ctl".to_vec());
        keys.push(vec![b'L'; 250]);
        let bin_keys = (0..4)
            .map(|i| format!("bin\x00key{i}").into_bytes())
            .collect();
        Gen {
            rng: Rng::new(seed),
            profile,
            keys,
            bin_keys,
            seen_cas: Vec::new(),
            cas_of_key: HashMap::new(),
            first_in_batch: true,
            read_in_batch: Vec::new(),
            nums: [Num::Unsafe; ARITH_KEYS.len()],
            arith_skipped: 0,
        }
    }

    /// Starts a batch: `value_of` gives each arith key's current value
    /// (from Petrel's store; `None` = no item).
    pub fn start_batch(&mut self, mut value_of: impl FnMut(&[u8]) -> Option<Vec<u8>>) {
        self.read_in_batch.clear();
        for (i, k) in ARITH_KEYS.iter().enumerate() {
            self.nums[i] = value_of(k).map_or(Num::Missing, |v| Num::of_value(&v));
        }
    }

    /// Records that a reply gave the item of `key` (base64 with `b` when
    /// `base64`) the candidate's CAS `cas`.
    pub fn saw_cas_of_key(&mut self, key: &[u8], base64: bool, cas: u64) {
        let seen = self.cas_of_key.entry((key.to_vec(), base64)).or_default();
        if seen.last() != Some(&cas) {
            seen.push(cas);
        }
        if seen.len() > 8 {
            seen.remove(0);
        }
    }

    fn num_index(key: &[u8]) -> Option<usize> {
        ARITH_KEYS.iter().position(|k| *k == key)
    }

    /// Follows what `cmd` (as generated, before CAS translation) does to
    /// the arith keys: incr/decr/ma are computed, `flush_all` empties, reads
    /// and touches change nothing, and anything else that names an arith
    /// key (a storage command, delete, garbage) makes it [`Num::Unsafe`]
    /// for the rest of the batch.
    fn note(&mut self, cmd: &[u8]) {
        let line = &cmd[..cmd
            .windows(2)
            .position(|w| w == b"\r\n")
            .unwrap_or(cmd.len())];
        let toks: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
        let key = toks.get(1).and_then(|k| Self::num_index(k));
        match (toks[0], key) {
            (b"incr" | b"decr", Some(i))
                if toks.len() == 3 || (toks.len() == 4 && toks[3] == b"noreply") =>
            {
                let delta = std::str::from_utf8(toks[2])
                    .ok()
                    .and_then(|d| d.parse::<u64>().ok());
                if let (Some(d), Num::Small { v, len }) = (delta, self.nums[i]) {
                    let n = if toks[0] == b"incr" {
                        v.wrapping_add(d)
                    } else {
                        v.saturating_sub(d)
                    };
                    self.nums[i] = Num::stored(n, len);
                }
            }
            (b"ma", Some(i)) => self.nums[i] = Self::after_ma(self.nums[i], &toks[2..]),
            (b"flush_all", _) => {
                if matches!(
                    line,
                    b"flush_all" | b"flush_all noreply" | b"flush_all 0" | b"flush_all -1"
                ) {
                    self.nums = [Num::Missing; ARITH_KEYS.len()];
                }
            }
            (b"get" | b"gets" | b"gat" | b"gats" | b"touch" | b"mg" | b"me" | b"mn", _) => {}
            _ => {
                for t in &toks[1..] {
                    if let Some(i) = Self::num_index(t) {
                        self.nums[i] = Num::Unsafe;
                    }
                }
            }
        }
    }

    /// An arith key's value after `ma <key> <flags>`; [`Num::Unsafe`] for a
    /// flag whose effect it does not follow (`C`: conditional; `T`, which
    /// may expire the item; a malformed token; an opaque token over 32
    /// bytes, which memcached refuses after doing the arithmetic).
    fn after_ma(before: Num, flags: &[&[u8]]) -> Num {
        let (mut incr, mut delta, mut initial, mut vivify) = (true, 1u64, 0u64, false);
        let num = |t: &[u8]| {
            std::str::from_utf8(t)
                .ok()
                .and_then(|t| t.parse::<u64>().ok())
        };
        for f in flags {
            match (f.first(), &f[1.min(f.len())..]) {
                (Some(b'q' | b'v' | b'k' | b'c' | b't'), b"") => {}
                (Some(b'O'), _) if f.len() <= 32 => {}
                (Some(b'N'), t)
                    if std::str::from_utf8(t)
                        .ok()
                        .and_then(|t| t.parse::<i32>().ok())
                        .is_some() =>
                {
                    vivify = true
                }
                (Some(b'J'), j) if num(j).is_some() => initial = num(j).unwrap(),
                (Some(b'D'), d) if num(d).is_some() => delta = num(d).unwrap(),
                (Some(b'M'), b"I" | b"+") => incr = true,
                (Some(b'M'), b"D" | b"-") => incr = false,
                _ => return Num::Unsafe,
            }
        }
        match before {
            Num::Small { v, len } if incr => Num::stored(v.wrapping_add(delta), len),
            Num::Small { v, len } => Num::stored(v.saturating_sub(delta), len),
            // created with the initial value, no arithmetic
            Num::Missing if vivify => Num::of_number(initial),
            other => other,
        }
    }

    /// Whether memcached 1.6.18 keeps a `T` of `ma <key> <flags>` on an
    /// arith key in state `before`: always unless the arithmetic writes a new
    /// item, which it does when the result has more digits than the stored
    /// value (an in-place update pads a shorter one). A miss (vivified or
    /// not) and a non-numeric value are safe; a state not followed is not.
    fn ma_ttl_kept(before: Num, flags: &[String]) -> bool {
        match before {
            Num::Missing | Num::Text => true,
            Num::Unsafe => false,
            Num::Small { len, .. } => {
                // the result whether or not a C matches, and whatever T does
                let arith: Vec<&[u8]> = flags
                    .iter()
                    .filter(|f| !f.starts_with(['C', 'T']))
                    .map(|f| f.as_bytes())
                    .collect();
                matches!(Self::after_ma(before, &arith), Num::Small { len: after, .. } if after == len)
            }
        }
    }

    /// A key for incr/decr/ma that no earlier command of this batch read:
    /// memcached updates a number in place (space padded) only while no
    /// pending reply references the item, else it writes a new, unpadded
    /// item; that depends on network timing.
    /// Nor one holding a number of 2^63 or more, or a value not known
    /// ([`Num::Unsafe`]): `None` when no arith key is left.
    fn arith_key(&mut self) -> Option<Vec<u8>> {
        let usable = |g: &Gen, k: &[u8]| {
            !g.read_in_batch.iter().any(|r| r == k)
                && g.nums[Self::num_index(k).unwrap()] != Num::Unsafe
        };
        for _ in 0..10 {
            let k = self
                .rng
                .pick(&[&b"n1"[..], b"n2", b"c1", b"c2", b"missing"])
                .to_vec();
            if usable(self, &k) {
                return Some(k);
            }
        }
        let k = b"arith-only".to_vec();
        if usable(self, &k) {
            Some(k)
        } else {
            self.arith_skipped += 1;
            None
        }
    }

    /// A key for append/prepend: never one incr/decr work on (a padded
    /// number extended by append would expose the padding difference).
    fn append_key(&mut self) -> Vec<u8> {
        loop {
            let k = self.key();
            if !matches!(k.as_slice(), b"n1" | b"n2" | b"c1" | b"c2") {
                return k;
            }
        }
    }

    fn key(&mut self) -> Vec<u8> {
        if self.rng.chance(2) {
            return vec![b'x'; 251]; // too long
        }
        if self.rng.chance(20) {
            return self.rng.pick(&[b"n1".to_vec(), b"n2".to_vec()]).clone();
        }
        self.rng.pick(&self.keys).clone()
    }

    fn exptime(&mut self, now: u32) -> String {
        match self.rng.below(100) {
            0..=59 => "0".into(),
            60..=74 => format!("{}", 1000 + self.rng.below(5000)),
            75..=82 => "-1".into(),
            83..=88 => format!("{}", now + 2000),
            89..=93 => format!("{}", now - 86_400 * 40),
            94..=96 => "4294967296".into(),
            _ => self
                .rng
                .pick(&["x", "1a", "+5", "99999999999999999999"])
                .to_string(),
        }
    }

    fn value(&mut self) -> Vec<u8> {
        match self.rng.below(1000) {
            0..=299 => {
                let n = self.rng.below(40) as usize;
                (0..n).map(|_| b'a' + self.rng.below(26) as u8).collect()
            }
            300..=599 => {
                let v = match self.rng.below(8) {
                    0 => u64::MAX,
                    1 => u64::MAX - self.rng.below(3),
                    2 => 0,
                    3 => self.rng.below(10),
                    4 => 99,
                    _ => self.rng.next_u64() >> self.rng.below(64),
                };
                v.to_string().into_bytes()
            }
            600..=649 => self
                .rng
                .pick(&[&b""[..], b"abc", b"12a", b"-5", b"a\r\nb"])
                .to_vec(),
            650..=989 => {
                let n = 100 + self.rng.below(4000) as usize;
                (0..n).map(|i| b"0123456789abcdef\r\n "[i % 19]).collect()
            }
            _ => {
                let n = 100_000 + self.rng.below(500_000) as usize;
                (0..n).map(|i| (i % 251) as u8).collect()
            }
        }
    }

    fn cas_arg(&mut self) -> u64 {
        if !self.seen_cas.is_empty() && self.rng.chance(70) {
            let i = self.seen_cas.len()
                - 1
                - self.rng.below(self.seen_cas.len().min(8) as u64) as usize;
            return self.seen_cas[i];
        }
        *self.rng.pick(&[0, 1 << 40, 987_654_321_012])
    }

    fn noreply(&mut self) -> &'static str {
        if self.rng.chance(12) {
            " noreply"
        } else {
            ""
        }
    }

    fn opaque(&mut self) -> String {
        if self.rng.chance(3) {
            format!("O{}", "z".repeat(32))
        } else {
            format!("O{}", self.rng.below(100_000))
        }
    }

    /// The next command of the batch; `now` is memcached's `time`.
    pub fn command(&mut self, now: u32) -> Cmd {
        let mut quits = false;
        let r = self.rng.below(1000);
        let bytes: Vec<u8> = match r {
            0..=179 => {
                let cmd = *self
                    .rng
                    .pick(&["get", "gets", "get", "gets", "gat", "gats"]);
                let mut line = cmd.as_bytes().to_vec();
                if cmd.starts_with("gat") {
                    line.push(b' ');
                    line.extend(self.exptime(now).as_bytes());
                }
                let many = self.rng.chance(20);
                let n = 1 + self.rng.below(if many { 12 } else { 3 });
                for _ in 0..n {
                    line.push(b' ');
                    let mut k = if self.rng.chance(10) {
                        self.rng.pick(&self.bin_keys).clone()
                    } else {
                        self.key()
                    };
                    if k.len() > 250 && !self.first_in_batch {
                        // memcached drops the unsent replies of earlier
                        // pipelined commands on this error (a divergence)
                        k.truncate(5);
                    }
                    self.read_in_batch.push(k.clone());
                    line.extend(k);
                }
                line.extend(b"\r\n");
                line
            }
            180..=399 => {
                let cmd = *self.rng.pick(&[
                    "set", "set", "set", "add", "replace", "append", "prepend", "cas",
                ]);
                let mut key = if matches!(cmd, "append" | "prepend") {
                    self.append_key()
                } else {
                    self.key()
                };
                let value = self.value();
                let mut flags =
                    *self
                        .rng
                        .pick(&["0", "0", "1", "4294967295", "4294967296", "-1", "x"]);
                let mut exp = self.exptime(now);
                let mut len = value.len().to_string();
                let mut data = value.clone();
                if self.rng.chance(3) {
                    len = self.rng.pick(&["-1", "x", "noreply"]).to_string();
                }
                if self.rng.chance(3) {
                    data.push(b'!'); // bad data chunk
                }
                if self.rng.chance(1) {
                    let big = 1_100_000 + self.rng.below(200_000) as usize;
                    len = big.to_string();
                    data = vec![b'B'; big];
                    // a valid header: if memcached read the data as a command
                    // line it would close the connection and drop replies it
                    // had not sent yet (timing dependent)
                    key.truncate(250);
                    flags = "0";
                    exp = "0".into();
                }
                let cas = if cmd == "cas" {
                    format!(" {}", self.cas_arg())
                } else {
                    String::new()
                };
                let nr = self.noreply();
                let mut out = format!("{cmd} ").into_bytes();
                out.extend(&key);
                out.extend(format!(" {flags} {exp} {len}{cas}{nr}\r\n").as_bytes());
                out.extend(&data);
                out.extend(b"\r\n");
                out
            }
            400..=459 => {
                let key = self.key();
                let form =
                    *self
                        .rng
                        .pick(&["", "", " 0", " noreply", " 0 noreply", " 1", " x noreply"]);
                [
                    b"delete ".to_vec(),
                    key,
                    form.as_bytes().to_vec(),
                    b"\r\n".to_vec(),
                ]
                .concat()
            }
            460..=559 => {
                let cmd = *self.rng.pick(&["incr", "decr"]);
                let Some(key) = self.arith_key() else {
                    return self.noted(b"mn\r\n".to_vec(), false);
                };
                let delta = match self.rng.below(10) {
                    0 => u64::MAX.to_string(),
                    1 => "18446744073709551616".into(),
                    2 => "-1".into(),
                    3 => "x".into(),
                    4 => self.rng.next_u64().to_string(),
                    _ => self.rng.below(200).to_string(),
                };
                let nr = self.noreply();
                [
                    format!("{cmd} ").into_bytes(),
                    key,
                    format!(" {delta}{nr}\r\n").into_bytes(),
                ]
                .concat()
            }
            560..=599 => {
                let key = self.key();
                let exp = self.exptime(now);
                let nr = self.noreply();
                [
                    b"touch ".to_vec(),
                    key,
                    format!(" {exp}{nr}\r\n").into_bytes(),
                ]
                .concat()
            }
            600..=719 => self.mg(now),
            720..=819 => self.ms(now),
            820..=859 => self.md(now),
            860..=909 => match self.ma(now) {
                Some(ma) => ma,
                None => b"mn\r\n".to_vec(),
            },
            910..=929 => {
                let mut k = b"me ".to_vec();
                k.extend(format!("never-stored-{}", self.rng.below(1000)).as_bytes());
                k.extend(b"\r\n");
                k
            }
            930..=939 => b"mn\r\n".to_vec(),
            940..=949 => self
                .rng
                .pick(&[
                    &b"version\r\n"[..],
                    b"verbosity 0\r\n",
                    b"verbosity\r\n",
                    b"verbosity x noreply\r\n",
                ])
                .to_vec(),
            950..=954 => self
                .rng
                .pick(&[
                    &b"flush_all\r\n"[..],
                    b"flush_all noreply\r\n",
                    b"flush_all 0\r\n",
                    b"flush_all x\r\n",
                    b"flush_all -1\r\n",
                ])
                .to_vec(),
            955..=995 => self.garbage(),
            _ => {
                quits = true;
                b"quit\r\n".to_vec()
            }
        };
        self.noted(bytes, quits)
    }

    fn noted(&mut self, bytes: Vec<u8>, quits: bool) -> Cmd {
        self.note(&bytes);
        Cmd { bytes, quits }
    }

    fn garbage(&mut self) -> Vec<u8> {
        let samples: &[&[u8]] = &[
            b"\r\n",
            b"\n",
            b"x\r\n",
            b"GET a\r\n",
            b"get\r\n",
            b"gat\r\n",
            b"gat x k1\r\n",
            b"gat 10\r\n",
            b"set k1 0 0\r\n",
            b"set k1 0 0 1 2 3\r\n",
            b"cas k1 0 0 1\r\n",
            b"incr k1\r\n",
            b"touch k1\r\n",
            b"delete\r\n",
            b"stats x\r\n",
            b"stats detail\r\n",
            b"mx\r\n",
            b"m\r\n",
            b"mg\r\n",
            b"ms k1\r\n",
            b"ms k1 x\r\n",
            b"mg k1 x\r\n",
            b"mg k1 v v\r\n",
            b"mg k1 T\r\n",
            b"mg k1 Fx\r\n",
            b"mg k1 Fx Tx\r\n",
            b"mg ! b\r\n",
            b"md k1 x\r\n",
            b"ma k1 Dx\r\n",
            b"ma k1 MX\r\n",
            b"ma k1 Mi\r\n",
            b"mg k1 \x80\r\n",
            b"mg k1 a b c d e f g h i j k l m n o p q r s\r\n",
            b"ms k1 2 MX\r\nhi\r\n",
            b"ms k1 2 Fx\r\nhi\r\n",
            b"ms k1 2 Ms\r\nhi\r\n",
            b"me\r\n",
            b"version x\r\n",
            b"get k1\0junk\r\n",
            b"set k1 0 0 1\r\nabc\r\n",
            b"shutdown\r\n",
            b"  get   k1   k2  \r\n",
            b"get k1\r\r\n",
            b"gets\tk1\r\n",
        ];
        if self.rng.chance(30) {
            let n = 1 + self.rng.below(30) as usize;
            let mut v: Vec<u8> = (0..n)
                .map(|_| *self.rng.pick(b"abcdefgkmnst 0123456789\x01\x7f\xff-+_"))
                .collect();
            v.extend(b"\r\n");
            return v;
        }
        self.rng.pick(samples).to_vec()
    }

    /// A meta key: plain, or a binary-keyspace key with `b`.
    fn meta_key(&mut self) -> (Vec<u8>, bool) {
        if self.rng.chance(15) {
            let k = self.rng.pick(&self.bin_keys).clone();
            (b64(&k), true)
        } else if self.rng.chance(8) {
            // a key of the plain keyspace in base64: memcached remembers per item whether
            // it was stored with `b` (the numbers stay plain for the arith bookkeeping)
            let k = self.append_key();
            (b64(&k), true)
        } else {
            (self.key(), false)
        }
    }

    fn meta_flags(&mut self, pool: &[&str], now: u32) -> Vec<String> {
        let mut flags: Vec<String> = Vec::new();
        for f in pool {
            if self.rng.chance(30) {
                let s = match *f {
                    "O" => self.opaque(),
                    "T" | "N" => format!("{f}{}", self.exptime(now)),
                    "R" => format!("R{}", self.rng.below(3000)),
                    "F" => format!("F{}", self.rng.pick(&[0u64, 1, 4294967295])),
                    "C" => format!("C{}", self.cas_arg()),
                    "D" => format!("D{}", self.rng.pick(&[0u64, 1, 7, u64::MAX])),
                    "J" => format!("J{}", self.rng.pick(&[0u64, 5, u64::MAX])),
                    other => other.to_string(),
                };
                flags.push(s);
            }
        }
        // random order
        for i in (1..flags.len()).rev() {
            let j = self.rng.below(i as u64 + 1) as usize;
            flags.swap(i, j);
        }
        flags
    }

    fn mg(&mut self, now: u32) -> Vec<u8> {
        let (key, bin) = self.meta_key();
        self.read_in_batch.push(key.clone());
        let pool: &[&str] = match self.profile {
            Profile::Engine => &[
                "v", "k", "f", "s", "c", "t", "O", "q", "T", "N", "R", "u", "h",
            ],
            Profile::Server => &["v", "k", "f", "s", "c", "O", "q", "T", "N", "u", "h"],
        };
        let mut flags = self.meta_flags(pool, now);
        if flags.iter().any(|f| f.starts_with('O') && f.len() > 32) {
            // memcached fails such a request half way through (after the
            // fetch, before marking a win token): keep it free of N/R/T
            flags.retain(|f| !f.starts_with(['N', 'R', 'T']));
        }
        meta_line("mg", &key, None, &flags, bin)
    }

    fn ms(&mut self, now: u32) -> Vec<u8> {
        let (key, bin) = self.meta_key();
        let value = if self.rng.chance(90) {
            self.value()
        } else {
            Vec::new()
        };
        let mut flags = self.meta_flags(&["T", "F", "c", "k", "O", "q", "C"], now);
        if self.rng.chance(25) {
            // `I` with no CAS, or with a CAS this key's item had (the current
            // one: a plain store; an older one: a stale store). memcached
            // stores as stale when the CAS is lower than the item's, Petrel
            // when it is not the item's: they agree on every CAS the key had
            // before (README's "Differences from memcached")
            flags.retain(|f| !f.starts_with('C'));
            let history = self.cas_of_key.get(&(key.clone(), bin)).cloned();
            if let Some(h) = history.filter(|_| self.rng.chance(75)) {
                let back = self.rng.below(h.len().min(3) as u64) as usize;
                flags.push(format!("C{}", h[h.len() - 1 - back]));
            }
            let at = self.rng.below(flags.len() as u64 + 1) as usize;
            flags.insert(at, "I".to_string());
        }
        if self.rng.chance(30) {
            let arith = matches!(key.as_slice(), b"n1" | b"n2" | b"c1" | b"c2");
            let modes: &[&str] = if bin || arith {
                &["ME", "MS", "MR"]
            } else {
                &["ME", "MA", "MP", "MR", "MS"]
            };
            flags.push(self.rng.pick(modes).to_string());
        }
        let mut line = meta_line("ms", &key, Some(value.len()), &flags, bin);
        line.extend(value);
        line.extend(b"\r\n");
        line
    }

    fn md(&mut self, now: u32) -> Vec<u8> {
        let (key, bin) = self.meta_key();
        let flags = self.meta_flags(&["q", "k", "O", "C", "I", "T"], now);
        meta_line("md", &key, None, &flags, bin)
    }

    fn ma(&mut self, now: u32) -> Option<Vec<u8>> {
        let key = self.arith_key()?;
        let pool: &[&str] = match self.profile {
            Profile::Engine => &["N", "J", "D", "v", "c", "q", "O", "k", "C", "T", "t"],
            Profile::Server => &["N", "J", "D", "v", "c", "q", "O", "k", "C", "T"],
        };
        let mut flags = self.meta_flags(pool, now);
        if self.rng.chance(40) {
            let mode = self.rng.pick(&["MI", "M+", "MD", "M-"]).to_string();
            let at = self.rng.below(flags.len() as u64 + 1) as usize;
            flags.insert(at, mode);
        }
        if flags.iter().any(|f| f.starts_with('O') && f.len() > 32) {
            // memcached refuses such an opaque after the arithmetic, part way
            // through applying the flags: an item it vivified then keeps no
            // TTL, and a T after the opaque is not applied (divergences)
            flags.retain(|f| !f.starts_with(['N', 'T']));
        }
        let before = self.nums[Self::num_index(&key).expect("arith key")];
        if !Self::ma_ttl_kept(before, &flags) {
            // memcached 1.6.18 would write a new item and drop the new TTL
            // (README's "Differences from memcached")
            flags.retain(|f| !f.starts_with('T'));
        }
        if flags.iter().any(|f| f == "v") {
            // the reply holds a reference to the item until it is sent, like a get's
            self.read_in_batch.push(key.clone());
        }
        Some(meta_line("ma", &key, None, &flags, false))
    }
}

/// A meta command's line: `CMD KEY [DATALEN] FLAG...\r\n`, with the flag `b` last when `bin`
/// (the key is base64).
fn meta_line(
    cmd: &str,
    key: &[u8],
    datalen: Option<usize>,
    flags: &[String],
    bin: bool,
) -> Vec<u8> {
    let mut line = cmd.as_bytes().to_vec();
    line.push(b' ');
    line.extend(key);
    if let Some(n) = datalen {
        line.extend(format!(" {n}").as_bytes());
    }
    for f in flags.iter().map(String::as_str).chain(bin.then_some("b")) {
        line.push(b' ');
        line.extend(f.as_bytes());
    }
    line.extend(b"\r\n");
    line
}

//! The driver: batches to memcached and to a [`Candidate`], compared unit by unit.

use std::io::{ErrorKind as IoErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use super::clock::{McClock, SEED_ATTEMPTS, TICK_GUARD};
use super::gen::{Gen, Profile, ARITH_KEYS};
use super::reply::{compare_units, key_cas, show, split_units, CasMap, Unit};

/// The implementation compared with memcached.
pub trait Candidate {
    /// What it is, for messages ("Petrel's engine", "petrel over TCP").
    fn name(&self) -> String;
    /// Sends `bytes` (one batch) at memcached's `time` `now` and returns every reply byte: up
    /// to a last unit whose line is `end`, or, when `expect_close`, up to the end of the
    /// connection; and whether the connection was closed.
    fn exchange(
        &mut self,
        bytes: &[u8],
        now: u32,
        end: &[u8],
        expect_close: bool,
    ) -> (Vec<u8>, bool);
    /// Replaces the connection by a new one (after `quit`).
    fn reconnect(&mut self);
    /// What the candidate logged, for a failure report.
    fn log(&self) -> String {
        String::new()
    }
}

/// What one differential run does.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// The seeds; each starts from an empty cache (`flush_all` on both sides).
    pub seeds: Vec<u64>,
    /// Commands in total, shared evenly among the seeds.
    pub commands: u64,
    /// The kind of candidate.
    pub profile: Profile,
}

impl RunConfig {
    /// `fixed` seeds plus one fresh random seed, `commands` in total, both overridable from the
    /// environment: `PETREL_DIFF_SEED=S` runs seed S alone, `PETREL_DIFF_COMMANDS=N` sets the
    /// total. Prints the seeds, so that a failure can be replayed.
    pub fn from_env(fixed: &[u64], commands: u64, profile: Profile) -> RunConfig {
        let commands = env_u64("PETREL_DIFF_COMMANDS").unwrap_or(commands);
        let seeds = match env_u64("PETREL_DIFF_SEED") {
            Some(s) => vec![s],
            None => {
                let mut v = fixed.to_vec();
                v.push(fresh_seed());
                v
            }
        };
        eprintln!(
            "differential: seeds {seeds:?} (the last is fresh for this run unless PETREL_DIFF_SEED is set), {commands} commands; replay one seed with PETREL_DIFF_SEED=<seed> PETREL_DIFF_COMMANDS=<its share>"
        );
        RunConfig {
            seeds,
            commands,
            profile,
        }
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// A seed that differs from run to run (clock and process id).
pub fn fresh_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut x = nanos ^ (u64::from(std::process::id()) << 32);
    // splitmix64 finaliser: nearby inputs give unrelated seeds
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (x ^ (x >> 31)) >> 1
}

/// Totals of a run.
#[derive(Default, Debug)]
pub struct Totals {
    /// Commands compared.
    pub commands: u64,
    /// Batches compared.
    pub batches: u64,
    /// Reply bytes compared.
    pub bytes_compared: u64,
    /// CAS pairs recorded.
    pub cas_pairs: usize,
    /// Seeds started over after a clock tick during a batch.
    pub restarts: u64,
    /// incr/decr/ma replaced by `mn` (no safe arith key).
    pub arith_skipped: u64,
    /// Longest batch, sending to the clock read after it.
    pub longest_batch: Duration,
    /// memcached `stats` reads for its clock, and polls waiting for a tick.
    pub clock_reads: u64,
    /// Polls waiting for memcached's clock to tick.
    pub clock_polls: u64,
}

/// Reads replies until a reply unit whose line is `end` (the answer to the batch's trailing
/// sentinel command) comes last, or EOF; panics after 30 s.
pub fn read_replies(sock: &mut TcpStream, expect_close: bool, end: &[u8]) -> (Vec<u8>, bool) {
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 1 << 16];
    let deadline = Instant::now() + Duration::from_secs(30);
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("set_read_timeout");
    loop {
        if !expect_close {
            if let Some(units) = split_units(&buf) {
                if units
                    .last()
                    .is_some_and(|u| u.line == end && u.data.is_empty())
                {
                    return (buf, false);
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "reply timeout (30 s); got {}",
            show(&buf)
        );
        match sock.read(&mut chunk) {
            Ok(0) => return (buf, true),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if e.kind() == IoErrorKind::WouldBlock
                    || e.kind() == IoErrorKind::TimedOut
                    || e.kind() == IoErrorKind::Interrupted => {}
            Err(e) if e.kind() == IoErrorKind::ConnectionReset => return (buf, true),
            Err(e) => panic!("read: {e}"),
        }
    }
}

/// Sends `bytes` from a helper thread while this one reads the replies (so that neither side
/// can block the other on a full socket buffer), as [`read_replies`].
pub fn exchange_tcp(
    sock: &mut TcpStream,
    bytes: &[u8],
    end: &[u8],
    expect_close: bool,
) -> (Vec<u8>, bool) {
    let mut w = sock.try_clone().expect("clone socket");
    let owned = bytes.to_vec();
    let writer = std::thread::spawn(move || {
        // a server that closes (quit, a fatal error) may leave the rest unread
        let _ = w.write_all(&owned);
    });
    let r = read_replies(sock, expect_close, end);
    writer.join().expect("writer thread");
    r
}

pub use crate::net::connect;

/// The values of `keys` in memcached, read with `mg <key> v u` (`u`: no LRU bump, no fetched
/// bit, no access time). The same requests go to the candidate at `now`, with the same replies
/// expected: an `mg` of a stale item hands out its win token (`W`), on both sides alike.
fn peek(
    sock: &mut TcpStream,
    candidate: &mut dyn Candidate,
    now: u32,
    keys: &[&[u8]],
) -> Vec<Option<Vec<u8>>> {
    let mut req = Vec::new();
    for k in keys {
        req.extend_from_slice(b"mg ");
        req.extend_from_slice(k);
        req.extend_from_slice(b" v u\r\n");
    }
    req.extend_from_slice(b"mn\r\n");
    let (reply, closed) = exchange_tcp(sock, &req, b"MN", false);
    assert!(!closed, "memcached closed the peek connection");
    let (theirs, _) = candidate.exchange(&req, now, b"MN", false);
    assert_eq!(
        show(&theirs),
        show(&reply),
        "{} answers the arith keys' peek {} unlike memcached",
        candidate.name(),
        show(&req)
    );
    let units = split_units(&reply).expect("complete peek reply");
    assert_eq!(units.len(), keys.len() + 1, "peek: {}", show(&reply));
    units[..keys.len()]
        .iter()
        .map(|u| {
            if u.line.starts_with(b"VA ") {
                Some(u.data[..u.data.len() - 2].to_vec())
            } else {
                assert_eq!(u.line, b"EN", "peek: {}", show(&reply));
                None
            }
        })
        .collect()
}

/// memcached's clock ticked while a batch was in flight: which second each of its commands saw
/// is not known, so neither is what the candidate should do.
struct ClockTicked {
    batch: u64,
    before: u32,
    after: u32,
}

/// Runs `cfg` against memcached on `port` (started by the caller, empty or not) and
/// `candidate`. Panics at the first difference with the seed, the batch, the commands and
/// the replies around the first differing unit (and writes `petrel-diff-*` files to the temp
/// directory); returns the totals otherwise.
pub fn run(port: u16, candidate: &mut dyn Candidate, cfg: &RunConfig) -> Totals {
    let mut cas = CasMap::default();
    let mut totals = Totals::default();
    let mut clock = McClock::new(port);
    let mut peek_sock = connect(port);
    let per_seed = cfg.commands.div_ceil(cfg.seeds.len() as u64);
    for &seed in &cfg.seeds {
        let mut attempt = 1;
        loop {
            // the same empty state on both sides
            let now = clock.settled();
            let flush = b"flush_all\r\nmd __petrel_batch_end__ O0\r\n";
            let (m, _) = exchange_tcp(&mut peek_sock, flush, b"NF O0", false);
            candidate.reconnect();
            let (p, _) = candidate.exchange(flush, now, b"NF O0", false);
            assert_eq!(show(&m), "OK\\r\\nNF O0\\r\\n", "memcached flush_all");
            assert_eq!(show(&p), show(&m), "{} flush_all", candidate.name());
            let r = run_seed(
                port,
                candidate,
                &mut clock,
                &mut peek_sock,
                seed,
                per_seed,
                cfg.profile,
                &mut cas,
                &mut totals,
            );
            match r {
                Ok(()) => break,
                Err(t) => {
                    totals.restarts += 1;
                    assert!(
                        attempt < SEED_ATTEMPTS,
                        "seed {seed}: memcached's clock ticked during a batch in {SEED_ATTEMPTS} attempts in a row (last: batch {}, `time` {} -> {}): this machine stalls longer than {TICK_GUARD:?} around the ticks",
                        t.batch,
                        t.before,
                        t.after
                    );
                    eprintln!(
                        "seed {seed}: memcached's clock ticked during batch {} (`time` {} -> {}), so which second its commands saw is not known; starting the seed over",
                        t.batch, t.before, t.after
                    );
                    attempt += 1;
                }
            }
        }
    }
    totals.cas_pairs = cas.len();
    totals.clock_reads = clock.reads;
    totals.clock_polls = clock.polls;
    totals
}

/// Runs `commands` commands of `seed` on both sides (from the state they are in), at
/// memcached's clock.
#[allow(clippy::too_many_arguments)]
fn run_seed(
    port: u16,
    candidate: &mut dyn Candidate,
    clock: &mut McClock,
    peek_sock: &mut TcpStream,
    seed: u64,
    commands: u64,
    profile: Profile,
    cas: &mut CasMap,
    totals: &mut Totals,
) -> Result<(), ClockTicked> {
    let mut gen = Gen::new(seed, profile);
    let mut sock = connect(port);
    let name = candidate.name();
    let mut done = 0u64;
    let mut batch_no = 0u64;
    let mut prev_log: Vec<Vec<u8>> = Vec::new();
    let mut prev_replies: Vec<u8> = Vec::new();
    let mut prev_batch_bytes: Vec<u8> = Vec::new();
    let mut history: Vec<String> = Vec::new();
    while done < commands {
        batch_no += 1;
        let n = 1 + gen.rng.below(40);
        let now = clock.settled();
        let values = peek(peek_sock, candidate, now, &ARITH_KEYS);
        gen.start_batch(|k| {
            let i = ARITH_KEYS.iter().position(|a| *a == k).expect("arith key");
            values[i].clone()
        });
        let mut batch = Vec::new();
        let mut quits = false;
        let mut log: Vec<Vec<u8>> = Vec::new();
        for i in 0..n {
            gen.first_in_batch = i == 0;
            let c = gen.command(now);
            log.push(c.bytes.clone());
            batch.extend_from_slice(&c.bytes);
            done += 1;
            if c.quits {
                quits = true;
                break;
            }
        }
        let memcached_batch: Vec<u8> = log.iter().flat_map(|c| translate_cas(c, cas)).collect();
        let mut mc_send = memcached_batch.clone();
        let mut pt_send = batch;
        // The batch ends with a command whose answer cannot come from anything generated (a
        // counted `mn` could: `mn 0`, or a value "mn" read as a command after a bad storage
        // line).
        let sentinel = format!("md __petrel_batch_end__ O{batch_no}\r\n");
        let end = format!("NF O{batch_no}");
        if !quits {
            mc_send.extend_from_slice(sentinel.as_bytes());
            pt_send.extend_from_slice(sentinel.as_bytes());
        }
        let sent = Instant::now();
        let (m_reply, m_closed) = exchange_tcp(&mut sock, &mc_send, end.as_bytes(), quits);
        let after = clock.read();
        totals.longest_batch = totals.longest_batch.max(sent.elapsed());
        if after != now {
            totals.arith_skipped += gen.arith_skipped;
            return Err(ClockTicked {
                batch: batch_no,
                before: now,
                after,
            });
        }
        let (p_reply, p_closed) = candidate.exchange(&pt_send, now, end.as_bytes(), quits);
        let failure = Failure {
            candidate: &name,
            seed,
            batch_no,
            per_seed: commands,
            before: now,
            after,
            prev_log: &prev_log,
            prev_replies: &prev_replies,
            prev_batch_bytes: &prev_batch_bytes,
            log: &log,
            mc_send: &mc_send,
            history: &history,
        };
        assert_eq!(
            m_closed,
            p_closed,
            "close mismatch\n{}\nmemcached: {}\n{name}: {}\n{name} log:\n{}",
            failure.context(),
            show(&m_reply),
            show(&p_reply),
            candidate.log()
        );
        let mu = split_units(&m_reply).unwrap_or_else(|| {
            panic!(
                "memcached reply incomplete\n{}\n{}",
                failure.context(),
                show(&m_reply)
            )
        });
        let pu = split_units(&p_reply).unwrap_or_else(|| {
            panic!(
                "{name} reply incomplete\n{}\n{}",
                failure.context(),
                show(&p_reply)
            )
        });
        let mut seen = Vec::new();
        if let Err(first_bad) = compare_units(&mu, &pu, cas, &mut seen) {
            report_difference(&failure, cas, &mu, &pu, first_bad);
        }
        gen.seen_cas.extend(seen);
        for (key, base64, c) in key_cas(&pu) {
            gen.saw_cas_of_key(&key, base64, c);
        }
        if gen.seen_cas.len() > 64 {
            let cut = gen.seen_cas.len() - 64;
            gen.seen_cas.drain(..cut);
        }
        for c in &log {
            history.push(format!("b{batch_no}: {}", show(&c[..c.len().min(400)])));
        }
        history.push(format!(
            "b{batch_no} replies: {}",
            show(&m_reply[..m_reply.len().min(2000)])
        ));
        prev_batch_bytes = mc_send.clone();
        prev_log = log.clone();
        prev_replies = m_reply.clone();
        totals.batches += 1;
        totals.bytes_compared += m_reply.len() as u64;
        if quits {
            sock = connect(port);
            candidate.reconnect();
        }
    }
    totals.commands += done;
    totals.arith_skipped += gen.arith_skipped;
    Ok(())
}

/// What a failing batch leaves for its report.
struct Failure<'a> {
    candidate: &'a str,
    seed: u64,
    batch_no: u64,
    per_seed: u64,
    /// memcached's `time` read before and after the batch; Petrel ran at
    /// `before` (the generator too).
    before: u32,
    after: u32,
    prev_log: &'a [Vec<u8>],
    prev_replies: &'a [u8],
    prev_batch_bytes: &'a [u8],
    log: &'a [Vec<u8>],
    mc_send: &'a [u8],
    history: &'a [String],
}

impl Failure<'_> {
    fn context(&self) -> String {
        let mut s = format!(
            "seed {} batch {}; memcached `time` {} before the batch and {} after it, {} `now` {} (wall clock {}); re-run this seed alone: PETREL_DIFF_SEED={} PETREL_DIFF_COMMANDS={}\n--- previous batch:\n",
            self.seed,
            self.batch_no,
            self.before,
            self.after,
            self.candidate,
            self.before,
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            self.seed,
            self.per_seed,
        );
        for c in self.prev_log {
            s.push_str(&show(c));
            s.push('\n');
        }
        s.push_str(&format!(
            "--- previous replies: {}\n",
            show(self.prev_replies)
        ));
        s.push_str("--- commands (candidate CAS values):\n");
        for c in self.log {
            s.push_str(&show(c));
            s.push('\n');
        }
        s
    }
}

/// Writes the failing batch's files to the temp directory and panics with
/// the replies around the first differing unit.
fn report_difference(
    f: &Failure<'_>,
    cas: &CasMap,
    mu: &[Unit],
    pu: &[Unit],
    first_bad: usize,
) -> ! {
    let around = |u: &[Unit]| {
        let lo = first_bad.saturating_sub(3);
        let hi = (first_bad + 3).min(u.len());
        u[lo..hi]
            .iter()
            .map(|x| {
                format!(
                    "  {} {}",
                    show(&x.line),
                    if x.data.is_empty() {
                        String::new()
                    } else {
                        format!(
                            "+{}B data {}",
                            x.data.len(),
                            show(&x.data[..x.data.len().min(40)])
                        )
                    }
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    let dump = |u: &[Unit]| {
        u.iter()
            .map(|x| format!("{} +{}B\n", show(&x.line), x.data.len()))
            .collect::<String>()
    };
    let tmp = std::env::temp_dir();
    let _ = std::fs::write(tmp.join("petrel-diff-prev-batch.bin"), f.prev_batch_bytes);
    let framed: Vec<u8> = f
        .prev_log
        .iter()
        .chain(f.log.iter())
        .flat_map(|c| {
            let t = translate_cas(c, cas);
            [(t.len() as u32).to_be_bytes().to_vec(), t].concat()
        })
        .collect();
    let _ = std::fs::write(tmp.join("petrel-diff-framed.bin"), framed);
    let _ = std::fs::write(tmp.join("petrel-diff-batch.bin"), f.mc_send);
    let _ = std::fs::write(tmp.join("petrel-diff-history.txt"), f.history.join("\n"));
    let _ = std::fs::write(
        tmp.join("petrel-diff-failure.txt"),
        format!(
            "{}\n=== memcached\n{}\n=== candidate\n{}",
            f.context(),
            dump(mu),
            dump(pu)
        ),
    );
    panic!(
        "DIFFERENCE at reply unit {first_bad}\n{}\n--- memcached ({} units):\n{}\n--- {} ({} units):\n{}\n(files: {}/petrel-diff-*)",
        f.context(),
        mu.len(),
        around(mu),
        f.candidate,
        pu.len(),
        around(pu),
        tmp.display()
    );
}

/// Rewrites `cas <key> <f> <e> <n> <CAS>` and meta `C<CAS>` arguments from
/// Petrel's CAS values to memcached's.
fn translate_cas(cmd: &[u8], cas: &CasMap) -> Vec<u8> {
    let Some(nl) = cmd.windows(2).position(|w| w == b"\r\n") else {
        return cmd.to_vec();
    };
    let line = &cmd[..nl];
    let rest = &cmd[nl..];
    let toks: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
    let mut out_toks: Vec<Vec<u8>> = toks.iter().map(|t| t.to_vec()).collect();
    let num = |t: &[u8]| {
        std::str::from_utf8(t)
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
    };
    if toks.first() == Some(&&b"cas"[..]) && toks.len() >= 6 {
        if let Some(v) = num(toks[5]) {
            out_toks[5] = cas.to_memcached(v).to_string().into_bytes();
        }
    }
    if toks.first().is_some_and(|t| t.len() == 2 && t[0] == b'm') {
        for (i, t) in toks.iter().enumerate().skip(2) {
            if t.first() == Some(&b'C') {
                if let Some(v) = num(&t[1..]) {
                    out_toks[i] = format!("C{}", cas.to_memcached(v)).into_bytes();
                }
            }
        }
    }
    let mut out = out_toks.join(&b' ');
    out.extend_from_slice(rest);
    out
}

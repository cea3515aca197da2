//! Differential test: Debian's `memcached` (1.6.18) and Petrel's engine, in-process, receive
//! the same seeded random streams of commands and must answer with the same bytes. The
//! harness (generator, memcached's clock, exact comparison with CAS through a bijection, the
//! exclusions and why) is `petrel_testkit::diff`; this file feeds the engine.
//!
//! - At least 100,000 commands over 8 fixed seeds and one fresh seed, printed for replay
//!   (`PETREL_DIFF_SEED=S PETREL_DIFF_COMMANDS=N` runs one seed).
//! - Each batch is fed to the engine in random-sized pieces with a random-sized output buffer
//!   (so incremental parsing and resumable replies are exercised), at memcached's `time`.
//! - Without memcached the tests skip visibly (`petrel_testkit::skip`), and fail under `CI`.

use petrel_core::engine::{Engine, EngineConfig, Session, Status, Transport, MIN_OUTPUT_BYTES};
use petrel_testkit::diff::clock::{stat_u64, stats_of, McClock, SEED_ATTEMPTS};
use petrel_testkit::diff::gen::Profile;
use petrel_testkit::diff::memcached_reference;
use petrel_testkit::diff::reply::{show, split_units};
use petrel_testkit::diff::run::{connect, exchange_tcp, run, Candidate, RunConfig};
use petrel_testkit::rng::Rng;
use std::time::{Duration, Instant};

/// A connection to Petrel's engine: input and output in random pieces.
struct EngineConn<'e, 'a> {
    engine: &'e Engine<'a>,
    session: Session,
    input: Vec<u8>,
    closed: bool,
    rng: Rng,
}

impl<'e, 'a> EngineConn<'e, 'a> {
    fn new(engine: &'e Engine<'a>, seed: u64) -> Self {
        EngineConn {
            engine,
            session: Session::new(Transport::Tcp),
            input: Vec::new(),
            closed: false,
            rng: Rng::new(seed),
        }
    }

    /// Feeds `bytes` in random pieces with random-sized output buffers, at time `now`, and
    /// returns every reply byte.
    fn feed(&mut self, bytes: &[u8], now: u32) -> Vec<u8> {
        let rng = &mut self.rng;
        let mut replies = Vec::new();
        let mut off = 0;
        let out_len = if rng.chance(30) {
            MIN_OUTPUT_BYTES + rng.below(2000) as usize
        } else {
            64 * 1024
        };
        let mut out = vec![0u8; out_len];
        while off < bytes.len() && !self.closed {
            let piece = if rng.chance(50) {
                bytes.len() - off
            } else {
                (1 + rng.below(3000) as usize).min(bytes.len() - off)
            };
            self.input.extend_from_slice(&bytes[off..off + piece]);
            off += piece;
            loop {
                let p = self
                    .engine
                    .process(&mut self.session, &self.input, &mut out, now);
                replies.extend_from_slice(&out[..p.written]);
                self.input.drain(..p.consumed);
                match p.status {
                    Status::NeedInput => break,
                    Status::OutputFull => continue,
                    Status::Close => {
                        self.closed = true;
                        break;
                    }
                }
            }
        }
        replies
    }
}

impl Candidate for EngineConn<'_, '_> {
    fn name(&self) -> String {
        "Petrel's engine".into()
    }
    fn exchange(&mut self, bytes: &[u8], now: u32, end: &[u8], close: bool) -> (Vec<u8>, bool) {
        let r = self.feed(bytes, now);
        if !close && !self.closed {
            let last = split_units(&r).and_then(|u| u.last().map(|u| u.line.clone()));
            assert_eq!(
                last.as_deref(),
                Some(end),
                "the engine did not answer the whole batch: {}",
                show(&r)
            );
        }
        (r, self.closed)
    }
    fn reconnect(&mut self) {
        self.session = Session::new(Transport::Tcp);
        self.input.clear();
        self.closed = false;
    }
}

fn engine_config() -> EngineConfig {
    EngineConfig {
        version: "1.6.18",
        ..EngineConfig::default()
    }
}

/// memcached's start as its `uptime` counts it (`time - uptime`): the engine started then
/// prints the same `t` as memcached for an item whose TTL is already over (memcached's
/// relative clock wrapped below zero).
fn memcached_started_at(port: u16) -> u32 {
    let mut sock = connect(port);
    let st = stats_of(&mut sock).expect("stats from memcached");
    let time = stat_u64(&st, "time").expect("STAT time");
    let uptime = stat_u64(&st, "uptime").expect("STAT uptime");
    (time - uptime) as u32
}

#[test]
fn petrel_answers_like_memcached() {
    let Some(mc) = memcached_reference() else {
        return;
    };
    let cfg = EngineConfig {
        started_at: memcached_started_at(mc.tcp_port),
        ..engine_config()
    };
    let mut arena = vec![0u8; Engine::required_bytes(&cfg).expect("config")];
    let engine = Engine::new(&cfg, &mut arena).expect("engine");
    let run_cfg = RunConfig::from_env(&[1, 2, 3, 4, 5, 6, 7, 8], 100_000, Profile::Engine);
    let mut conn = EngineConn::new(&engine, 0xfeed);
    let started = Instant::now();
    let totals = run(mc.tcp_port, &mut conn, &run_cfg);
    eprintln!(
        "differential: {totals:?} over {} seeds in {:.1}s",
        run_cfg.seeds.len(),
        started.elapsed().as_secs_f64()
    );
    let per_seed = run_cfg.commands.div_ceil(run_cfg.seeds.len() as u64);
    assert!(totals.commands >= per_seed * run_cfg.seeds.len() as u64);
    assert!(totals.cas_pairs > 0, "no CAS value was compared");
}

#[test]
fn short_ttls_expire_on_both() {
    let Some(mc) = memcached_reference() else {
        return;
    };
    let cfg = engine_config();
    let mut arena = vec![0u8; Engine::required_bytes(&cfg).expect("config")];
    let engine = Engine::new(&cfg, &mut arena).expect("engine");
    let mut clock = McClock::new(mc.tcp_port);
    let check = b"get a b c d e\r\nmg b t\r\nmn\r\n";
    for attempt in 1..=SEED_ATTEMPTS {
        let mut sock = connect(mc.tcp_port);
        let mut conn = EngineConn::new(&engine, 7);
        let t0 = clock.settled();
        let setup = format!(
            "flush_all\r\nset a 0 1 1\r\na\r\nset b 0 100 1\r\nb\r\nset c 0 {} 1\r\nc\r\nms d 1 T1\r\nd\r\nset e 0 1 1\r\ne\r\ntouch e 100\r\nmn\r\n",
            t0 + 1
        );
        let (m1, _) = exchange_tcp(&mut sock, setup.as_bytes(), b"MN", false);
        if clock.read() != t0 {
            eprintln!("attempt {attempt}: memcached's clock ticked during the set-up; again");
            continue;
        }
        let p1 = conn.feed(setup.as_bytes(), t0);
        assert_eq!(show(&m1), show(&p1));
        // three of memcached's seconds: a, c and d (1 s) are gone by then
        let deadline = Instant::now() + Duration::from_secs(10);
        while clock.read() < t0 + 3 {
            assert!(Instant::now() < deadline, "memcached's clock stands still");
            std::thread::sleep(Duration::from_millis(50));
        }
        let t1 = clock.settled();
        let (m2, _) = exchange_tcp(&mut sock, check, b"MN", false);
        if clock.read() != t1 {
            eprintln!("attempt {attempt}: memcached's clock ticked during the check; again");
            continue;
        }
        let p2 = conn.feed(check, t1);
        assert_eq!(
            show(&m2),
            format!(
                "VALUE b 0 1\\r\\nb\\r\\nVALUE e 0 1\\r\\ne\\r\\nEND\\r\\nHD t{}\\r\\nMN\\r\\n",
                100 - (t1 - t0)
            ),
            "memcached did not expire as this test expects"
        );
        assert_eq!(
            show(&m2),
            show(&p2),
            "at memcached's `time` {t1} (set-up at {t0})"
        );
        return;
    }
    panic!("memcached's clock ticked during a batch in {SEED_ATTEMPTS} attempts");
}

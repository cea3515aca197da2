//! The same seeded random command streams, pipelined over TCP to memcached (the reference)
//! and to the server under test, give the same reply bytes (CAS through a bijection).
//!
//! A second memcached runs the same stream: where the two memcached instances disagree with
//! each other (memcached 1.6.18 is not deterministic everywhere, e.g. in-place `incr` while
//! an item is referenced), the stream is abandoned and another seed is used. At least
//! `PETREL_DIFF_COMMANDS_TOTAL` (default 24,000) commands must be compared in full streams.
//!
//! `PETREL_DIFF_SEED` picks the first seed, `PETREL_DIFF_COMMANDS` the commands per stream.

use petrel_tests::diff::{run, DiffError, StreamConfig};
use petrel_tests::server::{Kind, Server, Target};

/// memcached's background LRU threads take item references at unpredictable moments, and an
/// `incr` then either pads the number in place or allocates a new item: off for the reference.
const MEMCACHED_QUIET: &str = "no_lru_crawler,no_lru_maintainer";

fn start(target: &Target) -> Server {
    match target.kind {
        Kind::Memcached => target.builder().arg("-o").arg(MEMCACHED_QUIET).start(),
        Kind::Petrel => target.start(),
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn differential_streams_match_memcached() {
    let Some(target) = Target::from_env() else {
        return;
    };
    let first_seed = env_u64("PETREL_DIFF_SEED", 0x5eed_0001);
    let per_stream = env_u64("PETREL_DIFF_COMMANDS", 6_000) as usize;
    let wanted = env_u64("PETREL_DIFF_COMMANDS_TOTAL", 24_000) as usize;
    let mut total = 0;
    let mut unstable = 0;
    let mut seed = first_seed;
    let mut streams = 0u64;
    while total < wanted {
        assert!(
            unstable <= 5,
            "memcached disagreed with itself on {unstable} streams; the stream generator needs fixing"
        );
        // Fresh servers per stream, so that every stream starts from an empty cache.
        let references = [start(&Target::memcached()), start(&Target::memcached())];
        let candidate = start(&target);
        let mut cfg = StreamConfig::new(seed);
        if streams % 4 == 3 {
            // small key space and big batches: heavy interaction, deep pipelines
            cfg.keys = 6;
            cfg.batch = 400;
        }
        let addrs = [references[0].tcp_addr(), references[1].tcp_addr()];
        match run(addrs, candidate.tcp_addr(), cfg, per_stream) {
            Ok(stats) => {
                eprintln!("seed {seed}: {stats:?}");
                total += stats.commands;
                streams += 1;
            }
            Err(DiffError::ReferenceUnstable(e)) => {
                eprintln!(
                    "seed {seed}: memcached is not deterministic here, stream skipped:\n{}",
                    &e[..e.len().min(3000)]
                );
                unstable += 1;
            }
            Err(DiffError::Mismatch(e)) => panic!("{e}\ncandidate log:\n{}", candidate.log()),
            Err(DiffError::Setup(e)) => panic!("{e}"),
        }
        seed += 1;
    }
    eprintln!("{total} commands compared in {streams} streams ({unstable} skipped)");
}

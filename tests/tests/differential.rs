//! The same seeded random command streams, pipelined over TCP to memcached (the reference)
//! and to the server under test, give the same reply bytes (CAS through a bijection).
//!
//! `PETREL_DIFF_SEED` picks the first seed, `PETREL_DIFF_COMMANDS` the commands per stream.

use petrel_tests::diff::{run, StreamConfig};
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
    let mut total = 0;
    // Several seeds, each on fresh servers, so that streams start from an empty cache.
    for i in 0..4 {
        let seed = first_seed + i;
        let reference = start(&Target::memcached());
        let candidate = start(&target);
        let mut cfg = StreamConfig::new(seed);
        if i == 3 {
            // one stream with a small key space and big batches: heavy interaction, deep pipelines
            cfg.keys = 6;
            cfg.batch = 400;
        }
        match run(reference.tcp_addr(), candidate.tcp_addr(), cfg, per_stream) {
            Ok(stats) => {
                eprintln!("seed {seed}: {stats:?}");
                total += stats.commands;
            }
            Err(e) => panic!("{e}\ncandidate log:\n{}", candidate.log()),
        }
    }
    assert!(total >= 20_000, "only {total} commands compared");
}

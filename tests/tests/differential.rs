//! The differential harness of `petrel-testkit` over TCP: the same seeded random streams of
//! pipelined commands go to memcached (the reference) and to the server under test over TCP,
//! and every reply byte must be equal (CAS through a bijection). At least 24,000 commands
//! (`PETREL_DIFF_COMMANDS` overrides), over fixed seeds and one fresh seed printed for replay.
//!
//! The server under test keeps its own clock, so the stream leaves out what names its second
//! (`t`, `R`, `l`; see `petrel_testkit::diff`); `core/tests/differential.rs` runs the engine
//! at memcached's clock and covers those.

use petrel_tests::diff::gen::Profile;
use petrel_tests::diff::run::{connect, exchange_tcp, run, Candidate, RunConfig};
use petrel_tests::diff::{memcached_reference, MEMCACHED_QUIET};
use petrel_tests::server::{Kind, Server, Target};
use std::net::TcpStream;

/// `-m` of the server under test.
const CACHE_MIB: u32 = 512;

struct OverTcp {
    server: Server,
    sock: TcpStream,
}

impl Candidate for OverTcp {
    fn name(&self) -> String {
        format!("{:?} over TCP", self.server.kind)
    }
    fn exchange(&mut self, bytes: &[u8], _now: u32, end: &[u8], close: bool) -> (Vec<u8>, bool) {
        exchange_tcp(&mut self.sock, bytes, end, close)
    }
    fn reconnect(&mut self) {
        self.sock = connect(self.server.tcp_port);
    }
    fn log(&self) -> String {
        self.server.log()
    }
}

#[test]
fn differential_streams_match_memcached() {
    let Some(target) = Target::from_env() else {
        return;
    };
    let Some(reference) = memcached_reference() else {
        return;
    };
    // Room for every item of a run on both sides: which items a full cache evicts is each
    // implementation's own (slab classes against segments), not a behaviour to compare.
    let builder = target.builder().memory_mib(CACHE_MIB);
    let server = match target.kind {
        Kind::Memcached => builder.arg("-o").arg(MEMCACHED_QUIET).start(),
        Kind::Petrel => builder.start(),
    };
    let sock = connect(server.tcp_port);
    let mut candidate = OverTcp { server, sock };
    let cfg = RunConfig::from_env(
        &[0x5eed_0001, 0x5eed_0002, 0x5eed_0003],
        24_000,
        Profile::Server,
    );
    let totals = run(reference.tcp_port, &mut candidate, &cfg);
    eprintln!("differential over TCP: {totals:?}");
    let per_seed = cfg.commands.div_ceil(cfg.seeds.len() as u64);
    assert!(totals.commands >= per_seed * cfg.seeds.len() as u64);
    assert!(totals.cas_pairs > 0, "no CAS value was compared");
}

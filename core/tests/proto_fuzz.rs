//! Property tests: arbitrary bytes (and byte soups made of protocol
//! fragments) never make the parser or the engine panic, and neither ever
//! reports more consumed input than it was given.

use petrel_core::engine::{
    Engine, EngineConfig, Progress, Session, Status, Transport, MIN_OUTPUT_BYTES,
};
use petrel_core::proto::{parse, ParseConfig, Parsed};
use petrel_core::store::StoreConfig;
use proptest::prelude::*;

/// Pieces that steer random input towards interesting parser states.
const FRAGMENTS: &[&[u8]] = &[
    b"get ",
    b"gets ",
    b"gat ",
    b"gats ",
    b"set ",
    b"add ",
    b"replace ",
    b"append ",
    b"prepend ",
    b"cas ",
    b"delete ",
    b"incr ",
    b"decr ",
    b"touch ",
    b"flush_all",
    b"version",
    b"verbosity ",
    b"stats",
    b" settings",
    b"mg ",
    b"ms ",
    b"md ",
    b"ma ",
    b"mn",
    b"me ",
    b"quit",
    b" noreply",
    b"\r\n",
    b"\n",
    b"\r",
    b" ",
    b"  ",
    b"k",
    b"key",
    b"0",
    b"1",
    b"5",
    b"-1",
    b"100",
    b"4294967296",
    b"18446744073709551615",
    b"99999999999999999999",
    b" v",
    b" k",
    b" c",
    b" f",
    b" t",
    b" s",
    b" q",
    b" b",
    b" O",
    b" T",
    b" N0",
    b" MA",
    b" ME",
    b" MX",
    b" D5",
    b" J7",
    b" C0",
    b" I",
    b" h",
    b" l",
    b"YWJj",
    b"\0",
    b"\x01",
    b"\xff",
    b"HTTP/1.1",
];

fn soup() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            3 => prop::sample::select(FRAGMENTS).prop_map(|f| f.to_vec()),
            1 => prop::collection::vec(any::<u8>(), 0..8),
        ],
        0..40,
    )
    .prop_map(|parts| parts.concat())
}

fn check_parser(input: &[u8]) {
    let cfg = ParseConfig {
        item_size_max_bytes: 4096,
        get_line_max_bytes: 4096,
        ..ParseConfig::default()
    };
    let mut pos = 0;
    let mut steps = 0;
    while pos < input.len() && steps < 10_000 {
        steps += 1;
        match parse(&input[pos..], &cfg) {
            Parsed::NeedMore => break,
            Parsed::Request { consumed, .. } => {
                assert!(
                    consumed > 0 && consumed <= input.len() - pos,
                    "consumed {consumed} of {}",
                    input.len() - pos
                );
                pos += consumed;
            }
            Parsed::Error(e) => {
                assert!(e.skip > 0);
                pos = pos.saturating_add(e.skip);
            }
        }
    }
}

fn engine_config() -> EngineConfig {
    EngineConfig {
        store: StoreConfig {
            item_memory_bytes: 4 << 20,
            segment_bytes: 64 << 10,
            max_item_bytes: 64 << 10,
            ..StoreConfig::default()
        },
        item_size_max_bytes: 8 << 10,
        ..EngineConfig::default()
    }
}

/// Drives the engine as a front end would, with a small output buffer.
fn check_engine(engine: &Engine<'_>, input: &[u8], out_len: usize) {
    let mut session = Session::new(Transport::Tcp);
    let mut out = vec![0u8; out_len];
    let mut pos = 0;
    for _ in 0..100_000 {
        let Progress {
            consumed,
            written,
            status,
        } = engine.process(&mut session, &input[pos..], &mut out, 1_000_000);
        assert!(consumed <= input.len() - pos);
        assert!(written <= out.len());
        pos += consumed;
        match status {
            Status::NeedInput | Status::Close => return,
            Status::OutputFull => assert!(written > 0 || consumed > 0, "no progress"),
        }
    }
    panic!("engine did not finish the input");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 20_000, ..ProptestConfig::default() })]

    #[test]
    fn parser_survives_random_bytes(input in prop::collection::vec(any::<u8>(), 0..512)) {
        check_parser(&input);
    }

    #[test]
    fn parser_survives_fragment_soup(input in soup()) {
        check_parser(&input);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1500, ..ProptestConfig::default() })]

    #[test]
    fn engine_survives_fragment_soup(input in soup(), out_len in MIN_OUTPUT_BYTES..MIN_OUTPUT_BYTES * 3) {
        let cfg = engine_config();
        let mut arena = vec![0u8; Engine::required_bytes(&cfg).unwrap()];
        let engine = Engine::new(&cfg, &mut arena).unwrap();
        // a few items so that gets hit
        let mut s = Session::new(Transport::Tcp);
        let mut out = vec![0u8; 4096];
        let seed = b"set k 0 0 5000\r\n";
        let mut pre = seed.to_vec();
        pre.extend(std::iter::repeat_n(b'x', 5000));
        pre.extend_from_slice(b"\r\nset key 1 0 2\r\n10\r\n");
        let p = engine.process(&mut s, &pre, &mut out, 1_000_000);
        prop_assert_eq!(p.status, Status::NeedInput);
        check_engine(&engine, &input, out_len);
    }
}

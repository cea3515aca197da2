//! The engine fed arbitrary request sequences the way a front end feeds it:
//! input arriving in chunks of arbitrary sizes, output areas of arbitrary
//! (legal) sizes, TCP or UDP sessions, time moving forward. A small arena
//! makes eviction and the out-of-memory paths reachable.
//!
//! Checks: never panics; `consumed <= input`, `written <= out`; an
//! `OutputFull` always made progress; a session whose reply is pending
//! resumes to completion; the store's accounting audits clean afterwards.
#![no_main]

use libfuzzer_sys::fuzz_target;
use petrel_core::engine::{
    Engine, EngineConfig, Progress, Session, Status, Transport, MIN_OUTPUT_BYTES,
};
use petrel_core::store::StoreConfig;

fn config() -> EngineConfig {
    EngineConfig {
        store: StoreConfig {
            item_memory_bytes: 256 << 10,
            segment_bytes: 16 << 10,
            max_item_bytes: 8 << 10,
            ..StoreConfig::default()
        },
        item_size_max_bytes: 8 << 10,
        get_line_max_bytes: 4 << 10,
        ..EngineConfig::default()
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let (ctl, input) = data.split_at(3);
    let transport = if ctl[0] & 1 == 0 {
        Transport::Tcp
    } else {
        Transport::Udp
    };
    // Output area: at least the documented minimum.
    let out_len = MIN_OUTPUT_BYTES + usize::from(ctl[1]) * 8;
    // Chunking of the input (1..=256 bytes per "read").
    let chunk = usize::from(ctl[2]) + 1;

    let cfg = config();
    let mut arena = vec![0u8; Engine::required_bytes(&cfg).expect("config")];
    let engine = Engine::new(&cfg, &mut arena).expect("engine");
    let mut session = Session::new(transport);
    let mut out = vec![0u8; out_len];
    let mut buf: Vec<u8> = Vec::new();
    let mut fed = 0;
    let mut now: u32 = 1_000_000;
    let mut calls = 0usize;
    loop {
        // Deliver the next chunk.
        if fed < input.len() {
            let n = chunk.min(input.len() - fed);
            buf.extend_from_slice(&input[fed..fed + n]);
            fed += n;
        }
        // Drive until the engine needs input.
        loop {
            calls += 1;
            assert!(calls < 1_000_000, "engine does not finish");
            let Progress {
                consumed,
                written,
                status,
            } = engine.process(&mut session, &buf, &mut out, now);
            assert!(
                consumed <= buf.len(),
                "consumed {consumed} of {}",
                buf.len()
            );
            assert!(written <= out.len(), "wrote {written} into {}", out.len());
            buf.drain(..consumed);
            match status {
                Status::NeedInput => {
                    assert!(!session.reply_pending(), "NeedInput with a reply pending");
                    break;
                }
                Status::OutputFull => {
                    assert!(written > 0 || consumed > 0, "OutputFull without progress");
                }
                Status::Close => {
                    // A closed TCP connection ends the stream; a UDP datagram
                    // ends its reply.
                    return check_store(&engine);
                }
            }
        }
        if fed >= input.len() {
            break;
        }
        now = now.wrapping_add(u32::from(input[fed - 1] & 3));
    }
    check_store(&engine);
});

fn check_store(engine: &Engine<'_>) {
    if let Err(e) = engine.store().audit() {
        panic!("store accounting broken: {e}");
    }
}

//! Parse + execute cost of `get`, `set` and a 10-key multi-get through the
//! engine (in-memory, no I/O), reported by criterion as time per request.
//!
//! Group `keys_600k`: 100 random keys out of 600,000 (a store larger than
//! the CPU caches), fetched as one 100-key `get` and as 100 one-key `get`
//! lines in one read; reported per key.

mod common;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use petrel_core::engine::{Engine, EngineConfig, Session, Status, Transport};
use petrel_core::proto::{parse, ParseConfig, Parsed};
use petrel_core::store::StoreConfig;

const NOW: u32 = 1_700_000_000;

fn run(engine: &Engine<'_>, input: &[u8], out: &mut [u8]) -> usize {
    let mut session = Session::new(Transport::Tcp);
    let p = engine.process(&mut session, input, out, NOW);
    assert_eq!(p.status, Status::NeedInput);
    assert_eq!(p.consumed, input.len());
    p.written
}

fn bench(c: &mut Criterion) {
    let cfg = EngineConfig {
        store: StoreConfig {
            item_memory_bytes: 64 << 20,
            ..StoreConfig::default()
        },
        ..EngineConfig::default()
    };
    let mut arena = vec![0u8; Engine::required_bytes(&cfg).expect("config")];
    let engine = Engine::new(&cfg, &mut arena).expect("engine");
    let mut out = vec![0u8; 64 * 1024];

    let mut preload = Vec::new();
    for i in 0..1000 {
        preload.extend_from_slice(
            format!("set key:{i:06} 0 0 32\r\n{}\r\n", "v".repeat(32)).as_bytes(),
        );
    }
    run(&engine, &preload, &mut out);

    let get = b"get key:000042\r\n".to_vec();
    let set = format!("set key:000043 0 0 32\r\n{}\r\n", "w".repeat(32)).into_bytes();
    let multi: Vec<u8> = {
        let mut l = b"get".to_vec();
        for i in 0..10 {
            l.extend_from_slice(format!(" key:{:06}", i * 7).as_bytes());
        }
        l.extend_from_slice(b"\r\n");
        l
    };

    let mut g = c.benchmark_group("proto");
    g.throughput(Throughput::Elements(1));
    g.bench_function("parse_get", |b| {
        let cfg = ParseConfig::default();
        b.iter(|| match parse(std::hint::black_box(&get), &cfg) {
            Parsed::Request { consumed, .. } => consumed,
            _ => unreachable!(),
        })
    });
    g.bench_function("get_hit", |b| {
        b.iter(|| run(&engine, std::hint::black_box(&get), &mut out))
    });
    g.bench_function("set_32B", |b| {
        b.iter(|| run(&engine, std::hint::black_box(&set), &mut out))
    });
    g.bench_function("multiget_10", |b| {
        b.iter(|| run(&engine, std::hint::black_box(&multi), &mut out))
    });
    g.finish();
}

fn bench_large(c: &mut Criterion) {
    const KEYS: u64 = 600_000;
    const PER_LINE: usize = 100;
    const LINES: usize = 64;
    let cfg = EngineConfig {
        store: StoreConfig {
            item_memory_bytes: 64 << 20,
            hash_power: 18,
            ..StoreConfig::default()
        },
        ..EngineConfig::default()
    };
    let arena = common::arena(Engine::required_bytes(&cfg).expect("config"));
    let engine = Engine::new(&cfg, arena).expect("engine");
    let mut out = vec![0u8; 64 * 1024];
    let value = "v".repeat(32);
    for chunk in 0..KEYS / 1000 {
        let mut preload = Vec::new();
        for i in chunk * 1000..(chunk + 1) * 1000 {
            preload.extend_from_slice(format!("set key:{i:08} 0 0 32\r\n{value}\r\n").as_bytes());
        }
        run(&engine, &preload, &mut out);
    }
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut next_key = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        format!("key:{:08}", x % KEYS)
    };
    let (mut multi, mut single) = (Vec::new(), Vec::new());
    for _ in 0..LINES {
        let (mut m, mut s) = (b"get".to_vec(), Vec::new());
        for _ in 0..PER_LINE {
            let k = next_key();
            m.extend_from_slice(format!(" {k}").as_bytes());
            s.extend_from_slice(format!("get {k}\r\n").as_bytes());
        }
        m.extend_from_slice(b"\r\n");
        multi.push(m);
        single.push(s);
    }
    let mut g = c.benchmark_group("keys_600k");
    g.throughput(Throughput::Elements(PER_LINE as u64));
    g.sample_size(20);
    for (name, inputs) in [("multiget_100", &multi), ("get_x100_lines", &single)] {
        let mut i = 0;
        g.bench_function(name, |b| {
            b.iter(|| {
                i = (i + 1) % LINES;
                let n = run(&engine, std::hint::black_box(&inputs[i]), &mut out);
                assert!(out[..n].ends_with(b"END\r\n"));
                n
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench, bench_large);
criterion_main!(benches);

//! Parse + execute cost of `get`, `set` and a 10-key multi-get through the
//! engine (in-memory, no I/O), reported by criterion as time per request.

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

criterion_group!(benches, bench);
criterion_main!(benches);

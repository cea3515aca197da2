//! What observability costs on the request path, reported by criterion (no
//! timed asserts):
//!
//! - `histogram/*`: recording one latency (one thread, and 2 threads on the
//!   same histogram), a batch's `LatencyStats::record`, and reading a
//!   summary (admin side);
//! - `engine/get_hit_*`: one `get` through the engine with no command log,
//!   with a command log that samples nothing (the cost of the per-request
//!   sampling decision), and one that samples 1 in 100 into a bounded queue
//!   (the cost a worker pays with `--klog-sample 100`), plus
//!   `Session::take_completed` as a front end calls it per batch.
//!
//! `cargo bench -p petrel-core --bench observe`

use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use petrel_core::engine::{Engine, EngineConfig, Session, Status, Transport};
use petrel_core::histogram::{ClassCounts, CommandClass, Histogram, LatencyStats};
use petrel_core::klog::{CommandLog, CommandRecord};
use petrel_core::store::StoreConfig;

const NOW: u32 = 1_700_000_000;

/// Samples nothing: measures the sampling decision alone.
struct Never;

impl CommandLog for Never {
    fn sample(&self) -> bool {
        false
    }
    fn record(&self, _: &CommandRecord<'_>) {}
}

/// 1 in N with a thread-local xorshift, copying sampled records into a
/// bounded queue (what the server's klog does).
struct OneIn {
    threshold: u64,
    queue: SyncSender<[u8; 400]>,
}

thread_local! {
    static RNG: std::cell::Cell<u64> = const { std::cell::Cell::new(0x9E37_79B9_7F4A_7C15) };
}

impl CommandLog for OneIn {
    fn sample(&self) -> bool {
        let r = RNG.with(|c| {
            let mut x = c.get();
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            c.set(x);
            x.wrapping_mul(0x2545_F491_4F6C_DD1D)
        });
        r < self.threshold
    }
    fn record(&self, r: &CommandRecord<'_>) {
        let mut e = [0u8; 400];
        e[..r.key.len()].copy_from_slice(r.key);
        let _ = self.queue.try_send(e);
    }
}

fn histogram(c: &mut Criterion) {
    let mut g = c.benchmark_group("histogram");
    g.throughput(Throughput::Elements(1));
    let h = Histogram::new();
    let mut v = 1u64;
    g.bench_function("record", |b| {
        b.iter(|| {
            v = v.wrapping_mul(6364136223846793005).wrapping_add(1);
            h.record(std::hint::black_box(v >> 44));
        })
    });
    g.bench_function("record_owned", |b| {
        b.iter(|| {
            v = v.wrapping_mul(6364136223846793005).wrapping_add(1);
            h.record_n_owned(std::hint::black_box(v >> 44), 1);
        })
    });
    // the same histogram written by this thread and a second one in a loop
    let shared = Arc::new(Histogram::new());
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let other = {
        let (h, stop) = (shared.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut x = 7u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                h.record(x >> 44);
            }
        })
    };
    g.bench_function("record_contended_2_threads", |b| {
        b.iter(|| {
            v = v.wrapping_mul(6364136223846793005).wrapping_add(1);
            shared.record(std::hint::black_box(v >> 44));
        })
    });
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = other.join();
    let l = LatencyStats::new();
    let mut counts = ClassCounts::new();
    for _ in 0..30 {
        counts.add(CommandClass::Get);
    }
    counts.add(CommandClass::Set);
    g.bench_function("latency_record_batch_of_31", |b| {
        b.iter(|| l.record(std::hint::black_box(&counts), 12_345))
    });
    g.bench_function("summary_read", |b| b.iter(|| h.summary()));
    g.finish();
}

fn engine(c: &mut Criterion) {
    let cfg = EngineConfig {
        store: StoreConfig {
            item_memory_bytes: 64 << 20,
            ..StoreConfig::default()
        },
        ..EngineConfig::default()
    };
    let (tx, rx) = sync_channel(4096);
    // drain the queue so it never stays full
    std::thread::spawn(move || while rx.recv().is_ok() {});
    let never = Never;
    let one_in_100 = OneIn {
        threshold: u64::MAX / 100,
        queue: tx,
    };
    let mut g = c.benchmark_group("engine");
    g.throughput(Throughput::Elements(1));
    for (name, log) in [
        ("get_hit_no_klog", None),
        (
            "get_hit_klog_sampling_nothing",
            Some(&never as &dyn CommandLog),
        ),
        (
            "get_hit_klog_1_in_100",
            Some(&one_in_100 as &dyn CommandLog),
        ),
    ] {
        let mut arena = vec![0u8; Engine::required_bytes(&cfg).expect("config")];
        let mut engine = Engine::new(&cfg, &mut arena).expect("engine");
        if let Some(l) = log {
            engine.set_command_log(l);
        }
        let mut out = vec![0u8; 64 * 1024];
        let mut s = Session::new(Transport::Tcp);
        let set = format!("set key:000042 0 0 32\r\n{}\r\n", "v".repeat(32));
        engine.process(&mut s, set.as_bytes(), &mut out, NOW);
        let get = b"get key:000042\r\n";
        g.bench_function(name, |b| {
            b.iter(|| {
                let p = engine.process(&mut s, std::hint::black_box(get), &mut out, NOW);
                debug_assert_eq!(p.status, Status::NeedInput);
                s.take_completed()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, histogram, engine);
criterion_main!(benches);

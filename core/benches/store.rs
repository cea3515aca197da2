//! Store benchmarks: Petrel's store against Pelikan's `segcache` crate (same
//! item memory, segment size, hash table size and eviction policy) and a
//! `hashbrown::HashMap<Vec<u8>, Vec<u8>>`.
//!
//! Groups: get hit, get miss, set (32 B, 1 KiB, 100 KiB values; the larger
//! sizes run in steady-state eviction), and a 90/10 get/set mix, over key
//! spaces larger than the CPU caches (random key order). Each iteration is a
//! batch of operations; throughput is reported per operation.
//!
//! Before the groups, a memory-efficiency report fills a 64 MiB store with
//! 16-byte keys and 32-byte values until the first eviction and prints the
//! bytes of overhead per item (segment memory only, and including the hash
//! table) for Petrel and segcache.
//!
//! Run: `cargo bench -p petrel-core --bench store -- --warm-up-time 1 --measurement-time 3`

mod common;

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkGroup, Criterion, Throughput};
use hashbrown::HashMap;
use petrel_core::store::{Eviction, GetOptions, Store, StoreConfig, StoreMode, StoreRequest};
use segcache::{Policy, Segcache};

const NOW: u32 = 1_700_000_000;
const ITEM_MEMORY_BYTES: usize = 64 << 20;
const SEGMENT_BYTES: usize = 1 << 20;
/// log2 of Petrel's main hash buckets (7 item slots each, 64 B).
const HASH_POWER: u8 = 18;
/// segcache 0.4's `hash_power` is log2 of its item slots (8 per 64 B
/// bucket): +3 gives it the same number of buckets, i.e. the same table
/// memory as Petrel's main table (Petrel adds 25% overflow buckets).
const SEGCACHE_HASH_POWER: u8 = HASH_POWER + 3;
const OVERFLOW_PERCENT: u8 = 25;
const BATCH: usize = 1024;
const KEY_BYTES: usize = 16;
const ORDER_LEN: usize = 1 << 21;

fn key_of(i: u64) -> [u8; KEY_BYTES] {
    let mut k = [b'k'; KEY_BYTES];
    k[..8].copy_from_slice(b"petrel:k");
    k[8..].copy_from_slice(&i.to_le_bytes());
    k
}

/// A pseudo-random sequence of key indices below `n`.
fn order(n: u64, seed: u64) -> Vec<u64> {
    let mut x = seed | 1;
    (0..ORDER_LEN)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        })
        .collect()
}

fn petrel_cfg(eviction: Eviction) -> StoreConfig {
    StoreConfig {
        item_memory_bytes: ITEM_MEMORY_BYTES,
        segment_bytes: SEGMENT_BYTES,
        shards: 1,
        hash_power: HASH_POWER,
        overflow_percent: OVERFLOW_PERCENT,
        max_item_bytes: SEGMENT_BYTES,
        eviction,
        seed: 0x1234_5678,
    }
}

fn petrel(eviction: Eviction) -> Store<'static> {
    let cfg = petrel_cfg(eviction);
    Store::new(&cfg, common::arena(cfg.required_bytes().unwrap())).unwrap()
}

fn segcache(policy: Policy) -> Segcache {
    Segcache::builder()
        .heap_size(ITEM_MEMORY_BYTES)
        .segment_size(SEGMENT_BYTES as i32)
        .hash_power(SEGCACHE_HASH_POWER)
        .eviction(policy)
        .build()
        .unwrap()
}

const MERGE: Eviction = Eviction::Merge {
    max: 8,
    merge: 4,
    compact: 2,
};
const SEG_MERGE: Policy = Policy::Merge {
    max: 8,
    merge: 4,
    compact: 2,
};

fn petrel_set(s: &Store<'_>, key: &[u8], value: &[u8]) {
    let req = StoreRequest {
        mode: StoreMode::Set,
        key,
        value,
        flags: 0,
        expire_at: 0,
        cas: 0,
        invalidate: false,
    };
    let _ = black_box(s.store(&req, NOW));
}

fn petrel_get(s: &Store<'_>, key: &[u8]) -> Option<usize> {
    s.get(key, NOW, GetOptions::default(), |it| it.value().len())
}

struct Three {
    petrel: Store<'static>,
    seg: Segcache,
    map: HashMap<Vec<u8>, Vec<u8>>,
}

fn preloaded(keys: u64, value_bytes: usize) -> Three {
    let petrel = petrel(MERGE);
    let seg = segcache(SEG_MERGE);
    let mut map = HashMap::with_capacity(keys as usize);
    let value = vec![b'v'; value_bytes];
    for i in 0..keys {
        let k = key_of(i);
        petrel_set(&petrel, &k, &value);
        let _ = seg.insert(&k, &value[..], None, Duration::ZERO);
        map.insert(k.to_vec(), value.clone());
    }
    // Every key must be resident for a fair hit benchmark.
    let (mut p, mut s) = (0, 0);
    for i in (0..keys).step_by(97) {
        let k = key_of(i);
        p += petrel_get(&petrel, &k).is_some() as u64;
        s += seg.get(&k).is_some() as u64;
    }
    let sampled = keys.div_ceil(97);
    assert_eq!(p, sampled, "petrel lost keys during preload");
    eprintln!("preload: segcache holds {s}/{sampled} sampled keys");
    Three { petrel, seg, map }
}

fn batch_loop(b: &mut criterion::Bencher<'_>, order: &[u64], mut op: impl FnMut(u64)) {
    let mut c = 0usize;
    b.iter(|| {
        for _ in 0..BATCH {
            op(order[c % ORDER_LEN]);
            c += 1;
        }
    });
}

/// Keys ahead that the `petrel_prefetch` variants hint: item of key i + D
/// and hash bucket of key i + 2D while key i is served (what a caller that
/// knows its next keys can do).
const LOOKAHEAD: usize = 8;

fn prefetch_loop(
    b: &mut criterion::Bencher<'_>,
    s: &Store<'_>,
    order: &[u64],
    offset: u64,
    mut op: impl FnMut(u64),
) {
    let mut c = 0usize;
    let at = |c: usize| order[c % ORDER_LEN] + offset;
    b.iter(|| {
        for _ in 0..BATCH {
            s.prefetch_bucket(&key_of(at(c + 2 * LOOKAHEAD)));
            s.prefetch_item(&key_of(at(c + LOOKAHEAD)));
            op(at(c));
            c += 1;
        }
    });
}

fn group<'c>(
    c: &'c mut Criterion,
    name: &str,
) -> BenchmarkGroup<'c, criterion::measurement::WallTime> {
    let mut g = c.benchmark_group(name);
    g.throughput(Throughput::Elements(BATCH as u64));
    g.sample_size(20);
    g
}

fn bench_get(c: &mut Criterion) {
    const KEYS: u64 = 700_000;
    let mut t = preloaded(KEYS, 32);
    let hit = order(KEYS, 0xabc);
    let mut g = group(c, "get_hit_32B_700k_keys");
    g.bench_function("petrel", |b| {
        batch_loop(b, &hit, |i| {
            black_box(petrel_get(&t.petrel, &key_of(i)));
        })
    });
    g.bench_function("petrel_prefetch", |b| {
        prefetch_loop(b, &t.petrel, &hit, 0, |i| {
            black_box(petrel_get(&t.petrel, &key_of(i)));
        })
    });
    g.bench_function("segcache", |b| {
        batch_loop(b, &hit, |i| {
            black_box(t.seg.get(&key_of(i)).map(|it| it.value().len()));
        })
    });
    g.bench_function("hashbrown", |b| {
        batch_loop(b, &hit, |i| {
            black_box(t.map.get(&key_of(i)[..]).map(|v| v.len()));
        })
    });
    // The same map shared the way a cache must be (a lock per lookup): the
    // locked instruction serializes lookups, as it does for Petrel's shard
    // lock, so misses no longer overlap across operations.
    let locked = spin::Mutex::new(core::mem::take(&mut t.map));
    g.bench_function("hashbrown_locked", |b| {
        batch_loop(b, &hit, |i| {
            black_box(locked.lock().get(&key_of(i)[..]).map(|v| v.len()));
        })
    });
    t.map = locked.into_inner();
    g.finish();

    let mut g = group(c, "get_miss_700k_keys");
    g.bench_function("petrel", |b| {
        batch_loop(b, &hit, |i| {
            black_box(petrel_get(&t.petrel, &key_of(i + KEYS)));
        })
    });
    g.bench_function("petrel_prefetch", |b| {
        prefetch_loop(b, &t.petrel, &hit, KEYS, |i| {
            black_box(petrel_get(&t.petrel, &key_of(i)));
        })
    });
    g.bench_function("segcache", |b| {
        batch_loop(b, &hit, |i| {
            black_box(t.seg.get(&key_of(i + KEYS)).map(|it| it.value().len()));
        })
    });
    g.bench_function("hashbrown", |b| {
        batch_loop(b, &hit, |i| {
            black_box(t.map.get(&key_of(i + KEYS)[..]).map(|v| v.len()));
        })
    });
    g.finish();

    let mix = order(KEYS, 0xdef);
    let value = [b'w'; 32];
    let Three {
        petrel,
        seg,
        mut map,
    } = t;
    // Every key fits in every store, so a get should always hit; the hit
    // ratios are printed after the group (an eviction policy that drops
    // live items shows up there, and its misses are cheaper than hits).
    let (mut p_hits, mut p_gets, mut s_hits, mut s_gets) = (0u64, 0u64, 0u64, 0u64);
    let mut g = group(c, "mix_90get_10set_32B_700k_keys");
    g.bench_function("petrel", |b| {
        batch_loop(b, &mix, |i| {
            let k = key_of(i);
            if i % 10 == 0 {
                petrel_set(&petrel, &k, &value);
            } else {
                p_gets += 1;
                p_hits += black_box(petrel_get(&petrel, &k)).is_some() as u64;
            }
        })
    });
    g.bench_function("segcache", |b| {
        batch_loop(b, &mix, |i| {
            let k = key_of(i);
            if i % 10 == 0 {
                let _ = black_box(seg.insert(&k, &value[..], None, Duration::ZERO));
            } else {
                s_gets += 1;
                s_hits += black_box(seg.get(&k).map(|it| it.value().len())).is_some() as u64;
            }
        })
    });
    g.bench_function("hashbrown", |b| {
        batch_loop(b, &mix, |i| {
            let k = key_of(i);
            if i % 10 == 0 {
                map.insert(k.to_vec(), value.to_vec());
            } else {
                black_box(map.get(&k[..]).map(|v| v.len()));
            }
        })
    });
    g.finish();
    eprintln!(
        "mix hit ratio: petrel {:.4} of {p_gets} gets, segcache {:.4} of {s_gets} gets, hashbrown 1 (never evicts)",
        p_hits as f64 / p_gets.max(1) as f64,
        s_hits as f64 / s_gets.max(1) as f64,
    );
}

fn bench_set(c: &mut Criterion) {
    // (value bytes, key space): 32 B fits; 1 KiB and 100 KiB run in
    // steady-state eviction (data ~3x the item memory).
    for (value_bytes, keys) in [(32usize, 700_000u64), (1024, 200_000), (100 << 10, 2_000)] {
        let value = vec![b's'; value_bytes];
        let ord = order(keys, 0x5e7 + value_bytes as u64);
        let mut g = group(c, &format!("set_{value_bytes}B_{keys}_keys"));
        {
            let p = petrel(MERGE);
            g.bench_function("petrel", |b| {
                batch_loop(b, &ord, |i| petrel_set(&p, &key_of(i), &value))
            });
        }
        {
            let s = segcache(SEG_MERGE);
            g.bench_function("segcache", |b| {
                batch_loop(b, &ord, |i| {
                    let _ = black_box(s.insert(&key_of(i), &value[..], None, Duration::ZERO));
                })
            });
        }
        {
            let mut m: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
            g.bench_function("hashbrown", |b| {
                batch_loop(b, &ord, |i| {
                    m.insert(key_of(i).to_vec(), value.clone());
                })
            });
        }
        g.finish();
    }
}

/// Fill with 16-byte keys and 32-byte values (FIFO eviction, so the first
/// eviction removes the segment holding key 0) until key 0 disappears.
/// Returns how many items were resident just before that insert: the keys
/// inserted before it, minus inserts that failed (`insert` returns false).
fn fill_until_eviction(
    mut insert: impl FnMut(&[u8], &[u8]) -> bool,
    mut present: impl FnMut(&[u8]) -> bool,
) -> u64 {
    let value = [b'x'; 32];
    let first = key_of(0);
    let mut failed = 0;
    for i in 0..u64::MAX {
        if !insert(&key_of(i), &value) {
            failed += 1;
        }
        if !present(&first) {
            return i - failed;
        }
    }
    0
}

fn report(name: &str, items: u64, table_bytes: f64) {
    let payload = (KEY_BYTES + 32) as f64;
    let seg_only = ITEM_MEMORY_BYTES as f64 / items as f64 - payload;
    let with_hash = (ITEM_MEMORY_BYTES as f64 + table_bytes) / items as f64 - payload;
    eprintln!(
        "memory: {name:8} {items} items of 16+32 B resident in 64 MiB of segments before the first eviction: \
         overhead {seg_only:.2} B/item (segment memory only), {with_hash:.2} B/item including the \
         hash table ({:.1} MiB)",
        table_bytes / (1 << 20) as f64
    );
}

fn memory_report() {
    let p = petrel(Eviction::Fifo);
    let mut last_items = 0;
    let n = fill_until_eviction(
        |k, v| {
            last_items = p.stats().items.get();
            let req = StoreRequest {
                mode: StoreMode::Set,
                key: k,
                value: v,
                flags: 0,
                expire_at: 0,
                cas: 0,
                invalidate: false,
            };
            p.store(&req, NOW).is_ok()
        },
        |k| petrel_get(&p, k).is_some(),
    );
    assert_eq!(n, last_items, "petrel's item gauge agrees");
    let table = (p.config().required_bytes().unwrap() - ITEM_MEMORY_BYTES) as f64;
    report("petrel", n, table);
    drop(p);
    let s = segcache(Policy::Fifo);
    let n = fill_until_eviction(
        |k, v| s.insert(k, v, None, Duration::ZERO).is_ok(),
        |k| s.get(k).is_some(),
    );
    report("segcache", n, (1u64 << SEGCACHE_HASH_POWER) as f64 * 8.0);
}

fn main() {
    memory_report();
    let mut c = Criterion::default().configure_from_args();
    bench_get(&mut c);
    bench_set(&mut c);
    c.final_summary();
}

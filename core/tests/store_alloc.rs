//! A counting global allocator proves that steady-state store operations
//! (get hits and misses, sets that overwrite, evict and merge, deletes,
//! incr, touch, expire) allocate nothing.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

use petrel_core::store::{ArithRequest, GetOptions, Store, StoreConfig, StoreMode, StoreRequest};

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn key(i: u64, buf: &mut [u8; 24]) -> &[u8] {
    buf[..4].copy_from_slice(b"key:");
    buf[4..12].copy_from_slice(&i.to_le_bytes());
    &buf[..12]
}

#[test]
fn steady_state_operations_do_not_allocate() {
    let cfg = StoreConfig {
        item_memory_bytes: 4 << 20,
        segment_bytes: 64 << 10,
        max_item_bytes: 64 << 10,
        shards: 2,
        ..StoreConfig::default()
    };
    let mut arena = vec![0u8; cfg.required_bytes().unwrap()];
    let store = Store::new(&cfg, &mut arena).unwrap();
    let value = [7u8; 200];
    let mut out = [0u8; 256];
    let mut kb = [0u8; 24];
    let now = 1_700_000_000;
    let mut round = |store: &Store<'_>, base: u64| {
        for i in 0..50_000u64 {
            let t = now + (i / 5000) as u32;
            let k = key((i * 7919 + base) % 40_000, &mut kb);
            let req = StoreRequest {
                mode: StoreMode::Set,
                key: k,
                value: &value[..(i % 200) as usize],
                flags: i as u32,
                expire_at: if i % 3 == 0 {
                    t + 5 + (i % 20) as u32
                } else {
                    0
                },
                cas: 0,
                invalidate: false,
            };
            store.store(&req, t).unwrap();
            let n = store.get(k, t, GetOptions::default(), |it| {
                let v = it.value();
                out[..v.len()].copy_from_slice(v);
                v.len()
            });
            assert!(n.is_some());
            let miss = key(1_000_000 + i, &mut kb);
            assert!(store.get(miss, t, GetOptions::default(), |_| ()).is_none());
            if i % 10 == 0 {
                let k = key(i % 40_000, &mut kb);
                let _ = store.delete(k, 0, t);
                let _ = store.touch(k, t + 100, t);
                let op = ArithRequest {
                    incr: true,
                    delta: 1,
                    cas: 0,
                    vivify: Some((1, 0)),
                    expire_at: None,
                };
                let _ = store.arith(k, &op, t);
            }
            if i % 1000 == 0 {
                store.expire(t, 4);
            }
        }
    };
    // Warm up: fill the store until it evicts.
    round(&store, 0);
    assert!(
        store.stats().evicted_items.get() > 0,
        "the store must be in steady-state eviction"
    );
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    round(&store, 1);
    let after = ALLOCATIONS.load(Ordering::Relaxed);
    assert_eq!(after - before, 0, "store operations allocated");
    // The counter works: an allocation is seen.
    let v: Vec<u8> = Vec::with_capacity(10);
    assert!(ALLOCATIONS.load(Ordering::Relaxed) > after);
    drop(v);
}

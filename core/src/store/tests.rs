//! Unit tests of the store's operations.

use std::string::ToString;
use std::vec;
use std::vec::Vec;

use super::*;

fn cfg_small(eviction: Eviction) -> StoreConfig {
    StoreConfig {
        item_memory_bytes: 64 << 10,
        segment_bytes: 4096,
        shards: 1,
        hash_power: 6,
        overflow_percent: 25,
        max_item_bytes: 4096,
        eviction,
        seed: 7,
    }
}

/// Merge eviction with a hash table large enough that no item is dropped
/// from a full chain: segments hold only what the test leaves dead.
fn cfg_merge_no_hash_drops() -> StoreConfig {
    StoreConfig {
        hash_power: 10,
        ..cfg_small(Eviction::Merge {
            max: 8,
            merge: 4,
            compact: 2,
        })
    }
}

fn arena(cfg: &StoreConfig) -> Vec<u8> {
    vec![0u8; cfg.required_bytes().unwrap()]
}

fn set<'k>(key: &'k [u8], value: &'k [u8], exp: Time) -> StoreRequest<'k> {
    StoreRequest {
        mode: StoreMode::Set,
        key,
        value,
        flags: 0,
        expire_at: exp,
        cas: 0,
        invalidate: false,
    }
}

fn get(s: &Store<'_>, key: &[u8], now: Time) -> Option<Vec<u8>> {
    s.get(key, now, GetOptions::default(), |i| i.value().to_vec())
}

const T0: Time = 1_000_000;

#[test]
fn set_get_delete_roundtrip() {
    let cfg = StoreConfig::default();
    let mut a = arena(&cfg);
    let s = Store::new(&cfg, &mut a).unwrap();
    assert_eq!(get(&s, b"k", T0), None);
    let c1 = s
        .store(
            &StoreRequest {
                flags: 42,
                ..set(b"k", b"v1", 0)
            },
            T0,
        )
        .unwrap();
    assert_ne!(c1, 0);
    let (v, f, c) = s
        .get(b"k", T0, GetOptions::default(), |i| {
            (i.value().to_vec(), i.flags(), i.cas())
        })
        .unwrap();
    assert_eq!((v.as_slice(), f, c), (&b"v1"[..], 42, c1));
    let c2 = s.store(&set(b"k", b"v2", 0), T0).unwrap();
    assert_ne!(c1, c2);
    assert_eq!(get(&s, b"k", T0).unwrap(), b"v2");
    assert_eq!(s.delete(b"k", c1, T0), Err(StoreError::Exists));
    assert_eq!(s.delete(b"k", 0, T0), Ok(()));
    assert_eq!(s.delete(b"k", 0, T0), Err(StoreError::NotFound));
    assert_eq!(get(&s, b"k", T0), None);
    let st = s.stats();
    assert_eq!(st.items.get(), 0);
    assert_eq!(st.gets.get(), 4);
    assert_eq!(st.get_hits.get(), 2);
    s.audit().unwrap();
}

#[test]
fn modes_and_cas() {
    let cfg = StoreConfig::default();
    let mut a = arena(&cfg);
    let s = Store::new(&cfg, &mut a).unwrap();
    let add = |k: &'static [u8], v: &'static [u8]| StoreRequest {
        mode: StoreMode::Add,
        ..set(k, v, 0)
    };
    let rep = |k: &'static [u8], v: &'static [u8]| StoreRequest {
        mode: StoreMode::Replace,
        ..set(k, v, 0)
    };
    assert_eq!(s.store(&rep(b"a", b"x"), T0), Err(StoreError::NotStored));
    let c = s.store(&add(b"a", b"x"), T0).unwrap();
    assert_eq!(s.store(&add(b"a", b"y"), T0), Err(StoreError::NotStored));
    s.store(
        &StoreRequest {
            mode: StoreMode::Append,
            ..set(b"a", b"123", 0)
        },
        T0,
    )
    .unwrap();
    s.store(
        &StoreRequest {
            mode: StoreMode::Prepend,
            ..set(b"a", b"<", 0)
        },
        T0,
    )
    .unwrap();
    assert_eq!(get(&s, b"a", T0).unwrap(), b"<x123");
    assert_eq!(
        s.store(
            &StoreRequest {
                cas: c,
                ..set(b"a", b"z", 0)
            },
            T0
        ),
        Err(StoreError::Exists)
    );
    assert_eq!(
        s.store(
            &StoreRequest {
                cas: c,
                ..set(b"nope", b"z", 0)
            },
            T0
        ),
        Err(StoreError::NotFound)
    );
    let cur = s.get(b"a", T0, GetOptions::default(), |i| i.cas()).unwrap();
    let c2 = s
        .store(
            &StoreRequest {
                cas: cur,
                ..set(b"a", b"z", 0)
            },
            T0,
        )
        .unwrap();
    assert!(c2 != cur);
    assert_eq!(get(&s, b"a", T0).unwrap(), b"z");
    // Invalidate: older cas stores a stale item.
    s.store(
        &StoreRequest {
            cas: 1,
            invalidate: true,
            ..set(b"a", b"old", 0)
        },
        T0,
    )
    .unwrap();
    // a plain get leaves the win token to a meta get
    let (stale, won) = s
        .get(b"a", T0, GetOptions::default(), |i| (i.stale(), i.won()))
        .unwrap();
    assert!(stale && !won);
    let mg = GetOptions {
        meta: true,
        ..GetOptions::default()
    };
    let (stale, won) = s.get(b"a", T0, mg, |i| (i.stale(), i.won())).unwrap();
    assert!(stale && won);
    let (won, z) = s.get(b"a", T0, mg, |i| (i.won(), i.token_sent())).unwrap();
    assert!(!won && z);
    assert_eq!(s.store(&set(b"", b"v", 0), T0), Err(StoreError::BadKey));
    assert_eq!(
        s.store(&set(&[b'k'; 251], b"v", 0), T0),
        Err(StoreError::BadKey)
    );
    s.audit().unwrap();
}

#[test]
fn arith_follows_memcached() {
    let cfg = StoreConfig::default();
    let mut a = arena(&cfg);
    let s = Store::new(&cfg, &mut a).unwrap();
    let inc = |d| ArithRequest {
        incr: true,
        delta: d,
        cas: 0,
        vivify: None,
        expire_at: None,
    };
    let dec = |d| ArithRequest {
        incr: false,
        ..inc(d)
    };
    assert_eq!(s.arith(b"n", &inc(1), T0), Err(StoreError::NotFound));
    s.store(
        &StoreRequest {
            flags: 5,
            ..set(b"n", b"10", 0)
        },
        T0,
    )
    .unwrap();
    assert_eq!(s.arith(b"n", &dec(1), T0).unwrap().0, 9);
    assert_eq!(get(&s, b"n", T0).unwrap(), b"9 ");
    assert_eq!(s.arith(b"n", &dec(100), T0).unwrap().0, 0);
    assert_eq!(s.arith(b"n", &inc(12345), T0).unwrap().0, 12345);
    assert_eq!(get(&s, b"n", T0).unwrap(), b"12345");
    assert_eq!(
        s.get(b"n", T0, GetOptions::default(), |i| i.flags()),
        Some(5)
    );
    s.store(&set(b"m", b"18446744073709551615", 0), T0).unwrap();
    assert_eq!(s.arith(b"m", &inc(2), T0).unwrap().0, 1);
    assert_eq!(get(&s, b"m", T0).unwrap(), b"1                   ");
    s.store(&set(b"x", b"abc", 0), T0).unwrap();
    assert_eq!(s.arith(b"x", &inc(1), T0), Err(StoreError::NonNumeric));
    s.store(&set(b"e", b"", 0), T0).unwrap();
    assert_eq!(s.arith(b"e", &inc(1), T0), Err(StoreError::NonNumeric));
    let viv = ArithRequest {
        vivify: Some((7, 0)),
        ..inc(1)
    };
    assert_eq!(s.arith(b"new", &viv, T0).unwrap().0, 7);
    assert_eq!(s.arith(b"new", &viv, T0).unwrap().0, 8);
    let (v, c) = s.arith(b"new", &inc(0), T0).unwrap();
    assert_eq!(v, 8);
    assert_eq!(
        s.arith(
            b"new",
            &ArithRequest {
                cas: c + 1,
                ..inc(1)
            },
            T0
        ),
        Err(StoreError::Exists)
    );
    s.audit().unwrap();
}

#[test]
fn expiry_touch_and_gat() {
    let cfg = StoreConfig::default();
    let mut a = arena(&cfg);
    let s = Store::new(&cfg, &mut a).unwrap();
    s.store(&set(b"t", b"v", T0 + 10), T0).unwrap();
    assert!(get(&s, b"t", T0 + 9).is_some());
    assert!(get(&s, b"t", T0 + 10).is_none());
    assert_eq!(s.stats().expired_lazy.get(), 1);
    // Past expiry: stored invisibly, removes the old value.
    s.store(&set(b"p", b"v", 0), T0).unwrap();
    s.store(&set(b"p", b"w", T0 - 1), T0).unwrap();
    assert!(get(&s, b"p", T0).is_none());
    // Touch keeps cas, changes expiry.
    let c = s.store(&set(b"u", b"v", T0 + 5), T0).unwrap();
    s.touch(b"u", T0 + 1000, T0 + 1).unwrap();
    let (cas, e) = s
        .get(b"u", T0 + 500, GetOptions::default(), |i| {
            (i.cas(), i.expire_at())
        })
        .unwrap();
    assert_eq!((cas, e), (c, T0 + 1000));
    assert_eq!(s.touch(b"zz", 0, T0), Err(StoreError::NotFound));
    // gat: touch to never.
    let g = GetOptions {
        touch: Some(0),
        ..Default::default()
    };
    assert_eq!(
        s.get(b"u", T0 + 600, g, |i| (i.cas(), i.expire_at())),
        Some((c, 0))
    );
    assert!(get(&s, b"u", T0 + 100_000).is_some());
    s.touch(b"u", T0, T0 + 1).unwrap();
    assert!(get(&s, b"u", T0 + 1).is_none());
    // expire() reclaims whole segments.
    s.expire(T0 + 25, 100);
    let before = s.stats().expired_segment_items.get();
    for i in 0..2000u32 {
        s.store(&set(&i.to_le_bytes(), &[1u8; 100], T0 + 30), T0)
            .unwrap();
    }
    assert_eq!(s.expire(T0 + 29, 100), 0);
    let n = s.expire(T0 + 3000, 100);
    assert!(n >= 1, "{n}");
    assert_eq!(s.stats().expired_segment_items.get() - before, 2000);
    s.audit().unwrap();
}

#[test]
fn flush_now_and_delayed() {
    let cfg = StoreConfig::default();
    let mut a = arena(&cfg);
    let s = Store::new(&cfg, &mut a).unwrap();
    s.store(&set(b"a", b"1", 0), T0).unwrap();
    s.flush(0, T0);
    assert!(get(&s, b"a", T0).is_none());
    s.store(&set(b"b", b"2", 0), T0).unwrap();
    assert!(get(&s, b"b", T0).is_some());
    s.flush(T0 + 10, T0);
    s.store(&set(b"c", b"3", 0), T0 + 5).unwrap();
    assert!(get(&s, b"b", T0 + 9).is_some());
    assert!(get(&s, b"c", T0 + 10).is_none());
    assert!(get(&s, b"b", T0 + 10).is_none());
    s.store(&set(b"d", b"4", 0), T0 + 10).unwrap();
    assert!(get(&s, b"d", T0 + 11).is_some());
    assert_eq!(s.stats().flushes.get(), 2);
    assert!(s.expire(T0 + 11, 100) >= 1);
    s.audit().unwrap();
}

#[test]
fn meta_options() {
    let cfg = StoreConfig::default();
    let mut a = arena(&cfg);
    let s = Store::new(&cfg, &mut a).unwrap();
    let viv = GetOptions {
        vivify: Some(T0 + 30),
        ..Default::default()
    };
    let r = s
        .get(b"v", T0, viv, |i| (i.created(), i.won(), i.value().len()))
        .unwrap();
    assert_eq!(r, (true, true, 0));
    let r = s
        .get(b"v", T0, viv, |i| (i.created(), i.won(), i.token_sent()))
        .unwrap();
    assert_eq!(r, (false, false, true));
    s.store(&set(b"r", b"x", T0 + 100), T0).unwrap();
    let rc = GetOptions {
        recache_below: Some(50),
        ..Default::default()
    };
    assert_eq!(s.get(b"r", T0, rc, |i| i.won()), Some(false));
    assert_eq!(
        s.get(b"r", T0 + 60, rc, |i| (i.won(), i.fetched())),
        Some((true, true))
    );
    assert_eq!(
        s.get(b"r", T0 + 61, rc, |i| (i.won(), i.token_sent())),
        Some((false, true))
    );
    s.store(&set(b"l", b"x", 0), T0).unwrap();
    assert_eq!(
        s.get(b"l", T0 + 7, GetOptions::default(), |i| (
            i.last_access(),
            i.fetched()
        )),
        Some((T0, false))
    );
    assert_eq!(
        s.get(b"l", T0 + 9, GetOptions::default(), |i| (
            i.last_access(),
            i.fetched()
        )),
        Some((T0 + 7, true))
    );
    // md I: stale, new cas, token handed to the next fetch only.
    let c0 = s
        .get(b"l", T0 + 10, GetOptions::default(), |i| i.cas())
        .unwrap();
    assert_eq!(
        s.invalidate(b"l", c0 + 1, None, T0 + 10),
        Err(StoreError::Exists)
    );
    let c1 = s.invalidate(b"l", c0, Some(T0 + 100), T0 + 10).unwrap();
    assert_ne!(c1, c0);
    let mg = GetOptions {
        meta: true,
        ..GetOptions::default()
    };
    let r = s.get(b"l", T0 + 11, mg, |i| {
        (
            i.stale(),
            i.won(),
            i.cas(),
            i.expire_at(),
            i.value().to_vec(),
        )
    });
    assert_eq!(r, Some((true, true, c1, T0 + 100, b"x".to_vec())));
    assert_eq!(
        s.get(b"l", T0 + 11, mg, |i| (i.won(), i.token_sent())),
        Some((false, true))
    );
    assert_eq!(s.invalidate(b"zz", 0, None, T0), Err(StoreError::NotFound));
    s.store(&set(b"l", b"x", 0), T0 + 9).unwrap();
    let quiet = GetOptions {
        update_access: false,
        count: false,
        ..Default::default()
    };
    let before = s.stats().gets.get();
    assert!(s.get(b"l", T0 + 20, quiet, |i| i.last_access()) == Some(T0 + 9));
    assert_eq!(s.stats().gets.get(), before);
}

#[test]
fn too_large_and_read_value() {
    let cfg = StoreConfig::default();
    let mut a = arena(&cfg);
    let s = Store::new(&cfg, &mut a).unwrap();
    s.store(&set(b"big", b"old", 0), T0).unwrap();
    let huge = vec![7u8; 1 << 20];
    assert_eq!(
        s.store(&set(b"big", &huge, 0), T0),
        Err(StoreError::TooLarge)
    );
    assert!(
        get(&s, b"big", T0).is_none(),
        "a failed set removes the old value"
    );
    let v: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
    s.store(&set(b"big", &v, 0), T0).unwrap();
    let loc = s
        .get(b"big", T0, GetOptions::default(), |i| i.location())
        .unwrap();
    assert_eq!(loc.len(), v.len());
    let mut out = vec![0u8; 0];
    let mut buf = [0u8; 1392];
    loop {
        let n = s.read_value(loc, out.len(), &mut buf, T0).unwrap();
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    assert_eq!(out, v);
    s.flush(0, T0);
    assert!(s.expire(T0, 1000) >= 1);
    assert_eq!(s.read_value(loc, 0, &mut buf, T0), Err(StoreError::Gone));
}

#[test]
fn construction_errors() {
    let cfg = StoreConfig::default();
    let need = cfg.required_bytes().unwrap();
    let mut small = vec![0u8; need - 1];
    assert!(matches!(
        Store::new(&cfg, &mut small),
        Err(ConfigError::ArenaTooSmall { .. })
    ));
    let bad = StoreConfig {
        segment_bytes: 3000,
        ..cfg
    };
    assert_eq!(
        Store::new(&bad, &mut small).err(),
        Some(ConfigError::SegmentSize)
    );
    // Exactly the required size works for any alignment of the arena.
    let mut big = vec![0u8; need + 64];
    for shift in [0, 1, 13, 63] {
        let s = Store::new(&cfg, &mut big[shift..shift + need]).unwrap();
        s.store(&set(b"k", b"v", 0), T0).unwrap();
    }
}

fn fill_until_evicting(eviction: Eviction) {
    let cfg = cfg_small(eviction);
    let mut a = arena(&cfg);
    let s = Store::new(&cfg, &mut a).unwrap();
    let mut last_ok = 0;
    for i in 0..3000u32 {
        let v = [i as u8; 40];
        match s.store(&set(&i.to_le_bytes(), &v, 0), T0) {
            Ok(_) => last_ok = i,
            Err(e) => {
                assert_eq!(eviction, Eviction::None);
                assert_eq!(e, StoreError::NoMemory);
            }
        }
        // Hot keys get read so merge has something to keep.
        for h in 0..8u32 {
            if let Some(v) = get(&s, &h.to_le_bytes(), T0) {
                assert_eq!(v, [h as u8; 40]);
            }
        }
    }
    s.audit().unwrap();
    let st = s.stats();
    if eviction == Eviction::None {
        assert!(st.store_no_memory.get() > 0);
        assert_eq!(st.evicted_items.get(), 0);
    } else {
        assert_eq!(last_ok, 2999);
        assert!(st.evicted_items.get() + st.hash_full_evictions.get() > 0);
        assert_eq!(
            get(&s, &2999u32.to_le_bytes(), T0).unwrap(),
            [2999u32 as u8; 40]
        );
    }
    assert!(st.items.get() > 0);
}

#[test]
fn eviction_policies_free_memory() {
    fill_until_evicting(Eviction::None);
    fill_until_evicting(Eviction::Fifo);
    fill_until_evicting(Eviction::Random);
    fill_until_evicting(Eviction::Cte);
    fill_until_evicting(Eviction::Merge {
        max: 8,
        merge: 4,
        compact: 2,
    });
}

#[test]
fn merge_keeps_hot_items_and_compacts() {
    let cfg = cfg_merge_no_hash_drops();
    let mut a = arena(&cfg);
    let s = Store::new(&cfg, &mut a).unwrap();
    for i in 0..5000u32 {
        s.store(&set(&i.to_le_bytes(), &[1u8; 40], 0), T0).unwrap();
        for h in 0..4u32 {
            let _ = get(&s, &h.to_le_bytes(), T0);
        }
    }
    for h in 0..4u32 {
        assert!(get(&s, &h.to_le_bytes(), T0).is_some(), "hot key {h} kept");
    }
    let st = s.stats();
    assert!(st.merge_passes.get() > 0);
    assert!(st.merge_retained_items.get() > 0);
    // Deleting most items makes segments sparse: compaction frees them.
    for i in 0..5000u32 {
        if i % 8 != 0 {
            let _ = s.delete(&i.to_le_bytes(), 0, T0);
        }
    }
    for i in 5000..6000u32 {
        s.store(&set(&i.to_le_bytes(), &[1u8; 40], 0), T0).unwrap();
    }
    assert!(s.stats().compactions.get() > 0);
    s.audit().unwrap();
}

#[test]
fn expired_items_a_merge_drops_are_not_lookups() {
    // Items that expired in segments that have not (a segment outlives its
    // items by up to its TTL bucket's width, 8 s here): the merge pass drops
    // them (memcached's `reclaimed`), and no lookup found them (`get_expired`).
    let cfg = cfg_merge_no_hash_drops();
    let mut a = arena(&cfg);
    let s = Store::new(&cfg, &mut a).unwrap();
    for i in 0..2000u32 {
        s.store(&set(&i.to_le_bytes(), &[1u8; 40], T0 + 10), T0)
            .unwrap();
    }
    for i in 2000..8000u32 {
        s.store(&set(&i.to_le_bytes(), &[1u8; 40], 0), T0 + 12)
            .unwrap();
    }
    let st = s.stats();
    assert!(st.merge_passes.get() > 0);
    assert!(st.expired_passed.get() > 0, "the passes met expired items");
    assert_eq!(st.expired_lazy.get(), 0, "no lookup found an expired item");
    assert!(get(&s, &1u32.to_le_bytes(), T0 + 12).is_none());
    s.audit().unwrap();
}

#[test]
fn hash_full_chain_evicts_lowest_frequency() {
    let cfg = StoreConfig {
        hash_power: 0,
        overflow_percent: 0,
        ..cfg_small(Eviction::Fifo)
    };
    let cfg = StoreConfig {
        hash_power: 1,
        ..cfg
    };
    let mut a = arena(&cfg);
    let s = Store::new(&cfg, &mut a).unwrap();
    for i in 0..30u32 {
        s.store(&set(&i.to_le_bytes(), b"v", 0), T0).unwrap();
    }
    let st = s.stats();
    assert_eq!(st.items.get(), 14);
    assert_eq!(st.hash_full_evictions.get(), 16);
    s.audit().unwrap();
}

#[test]
fn shards_and_threads() {
    let cfg = StoreConfig {
        shards: 4,
        item_memory_bytes: 16 << 20,
        ..StoreConfig::default()
    };
    let mut a = arena(&cfg);
    let s = Store::new(&cfg, &mut a).unwrap();
    std::thread::scope(|sc| {
        for t in 0..4u32 {
            let s = &s;
            sc.spawn(move || {
                for i in 0..5000u32 {
                    let k = [t.to_le_bytes(), i.to_le_bytes()].concat();
                    s.store(&set(&k, &k, 0), T0).unwrap();
                    assert_eq!(get(s, &k, T0).unwrap(), k);
                }
            });
        }
    });
    assert_eq!(s.stats().items.get(), 20_000);
    s.audit().unwrap();
}

#[test]
fn prefetch_hints_change_nothing() {
    let cfg = cfg_small(Eviction::Fifo);
    let mut a = arena(&cfg);
    let s = Store::new(&cfg, &mut a).unwrap();
    s.store(&set(b"here", b"v", 0), T0).unwrap();
    let long = [b'x'; 300];
    let before = |s: &Store<'_>| {
        let st = s.stats();
        [
            st.gets.get(),
            st.get_hits.get(),
            st.get_misses.get(),
            st.items.get(),
        ]
    };
    let counts = before(&s);
    for key in [&b"here"[..], b"absent", b"", &long[..]] {
        s.prefetch_bucket(key);
        s.prefetch_item(key);
    }
    assert_eq!(before(&s), counts, "a hint counted as an access");
    // Not seen as a fetch either: the first real get reports "not fetched".
    let fetched = s.get(b"here", T0, GetOptions::default(), |i| {
        (i.fetched(), i.value().to_vec())
    });
    assert_eq!(fetched, Some((false, b"v".to_vec())));
    assert_eq!(get(&s, b"absent", T0), None);
    s.audit().unwrap();
}

#[test]
fn audit_names_a_broken_counter_with_both_figures() {
    let cfg = cfg_small(Eviction::Fifo);
    let mut a = arena(&cfg);
    let s = Store::new(&cfg, &mut a).unwrap();
    for i in 0..10u32 {
        s.store(&set(&i.to_le_bytes(), b"value", 0), T0).unwrap();
    }
    s.audit().unwrap();
    s.shards[0].stats.items.add_owned(1);
    let e = s.audit().unwrap_err();
    assert_eq!(
        e,
        AuditError {
            shard: 0,
            failure: AuditFailure::Mismatch {
                what: "items",
                counted: 10,
                recorded: 11
            }
        }
    );
    assert_eq!(e.to_string(), "shard 0: items: counted 10, accounted 11");
}

#[test]
fn merge_compacts_overwritten_space_before_evicting_live_items() {
    // Every key fits with room to spare, but overwrites of some keys leave
    // dead copies behind the oldest segments, which hold keys written once
    // and still live: the store must reclaim the dead copies rather than
    // evict the live keys at the head.
    let cfg = cfg_merge_no_hash_drops();
    let mut a = arena(&cfg);
    let s = Store::new(&cfg, &mut a).unwrap();
    let (stable, hot) = (500u32, 100u32); // about 28 KiB of 64 KiB
    for i in 0..stable {
        s.store(&set(&i.to_le_bytes(), &[7u8; 40], 0), T0).unwrap();
    }
    for round in 1..=40u32 {
        for i in stable..stable + hot {
            s.store(&set(&i.to_le_bytes(), &[round as u8; 40], 0), T0 + round)
                .unwrap();
        }
    }
    let st = s.stats();
    assert_eq!(st.evicted_items.get(), 0, "a live item was evicted");
    assert_eq!(st.items.get(), (stable + hot) as u64);
    assert!(st.compactions.get() > 0);
    for i in 0..stable {
        assert_eq!(get(&s, &i.to_le_bytes(), T0 + 41).unwrap(), vec![7u8; 40]);
    }
    for i in stable..stable + hot {
        assert_eq!(get(&s, &i.to_le_bytes(), T0 + 41).unwrap(), vec![40u8; 40]);
    }
    s.audit().unwrap();
}

/// The same workload on a zeroed arena built with `ArenaFill::Zeroed` and
/// on an arena full of garbage built with `ArenaFill::Unknown` (zeroed by
/// the store): the same answers and statistics, both audit clean, both
/// survive persist and attach.
#[test]
fn zeroed_and_unknown_arenas_behave_the_same() {
    let cfg = StoreConfig {
        hash_power: 4,
        ..cfg_small(Eviction::Merge {
            max: 8,
            merge: 4,
            compact: 2,
        })
    };
    let run = |a: &mut [u8], fill: ArenaFill| {
        let s = Store::with_fill(&cfg, a, fill).unwrap();
        let mut seen = Vec::new();
        for i in 0..3000u32 {
            let k = std::format!("key{}", i % 700);
            let v = std::format!("value-{i}-{}", "x".repeat((i % 90) as usize));
            let exp = if i % 5 == 0 { T0 + 30 } else { 0 };
            s.store(&set(k.as_bytes(), v.as_bytes(), exp), T0 + i / 100)
                .unwrap();
            if i % 7 == 0 {
                seen.push(get(
                    &s,
                    std::format!("key{}", (i * 13) % 700).as_bytes(),
                    T0 + i / 100,
                ));
            }
            if i % 11 == 0 {
                let _ = s.delete(
                    std::format!("key{}", (i * 3) % 700).as_bytes(),
                    0,
                    T0 + i / 100,
                );
            }
        }
        s.audit().unwrap();
        let st = s.stats();
        let figures = (
            st.items.get(),
            st.item_bytes.get(),
            st.segments_used.get(),
            st.overflow_buckets_used.get(),
            st.hash_full_evictions.get(),
        );
        s.persist(T0 + 40);
        let back = Store::attach(&cfg, a, T0 + 40).unwrap();
        back.audit().unwrap();
        (seen, figures)
    };
    let mut zeroed = arena(&cfg);
    let mut garbage = vec![0xA5u8; cfg.required_bytes().unwrap()];
    let z = run(&mut zeroed, ArenaFill::Zeroed);
    let g = run(&mut garbage, ArenaFill::Unknown);
    assert_eq!(z, g);
    assert!(z.1 .2 > 4, "the workload used several segments: {:?}", z.1);
}

/// On zeroed memory the store writes nothing past its TTL buckets until
/// segments are used, and segments are taken lowest first: the frontier
/// grows one segment at a time.
#[test]
fn untouched_memory_stays_untouched_and_the_frontier_grows_in_order() {
    let cfg = cfg_small(Eviction::Fifo);
    let l = cfg.layout().unwrap();
    let mut a = arena(&cfg);
    let base = a.as_ptr() as usize;
    let s = Store::with_fill(&cfg, &mut a, ArenaFill::Zeroed).unwrap();
    let frontier = |s: &Store<'_>| {
        let mut v = Vec::new();
        s.frontiers(|f| v.push(f));
        v
    };
    let f0 = frontier(&s);
    assert_eq!(f0.len(), 1);
    assert_eq!((f0[0].used, f0[0].len), (0, l.segments * 4096));
    let value = [b'v'; 1000];
    for i in 0..9u32 {
        s.store(&set(std::format!("k{i}").as_bytes(), &value, 0), T0)
            .unwrap();
    }
    // 4 items of ~1 KiB per 4 KiB segment: three segments.
    assert_eq!(frontier(&s)[0].used, 3 * 4096);
    let data_start = f0[0].start - base;
    drop(s);
    let untouched = data_start + 3 * 4096;
    assert!(a[untouched..].iter().all(|&b| b == 0));
    // The hash table's overflow buckets and the segment headers past the
    // frontier were not written either.
    let shard0 = PERSIST_HEADER_BYTES + crate::arena::padding_for(base + PERSIST_HEADER_BYTES, 64);
    let buckets_end = shard0 + (l.main_buckets + l.overflow_buckets) * 64;
    let overflow = &a[buckets_end - 64 * l.overflow_buckets..buckets_end];
    assert!(overflow.iter().all(|&b| b == 0));
    let headers = &a[buckets_end + 3 * 40..buckets_end + l.segments * 40];
    assert!(headers.iter().all(|&b| b == 0));
}

/// `set_memory_limit` evicts down to the new limit and gives memory back
/// when raised; writes never take more than the limit.
#[test]
fn memory_limit_shrinks_and_grows() {
    let cfg = cfg_small(Eviction::Merge {
        max: 8,
        merge: 4,
        compact: 2,
    });
    let l = cfg.layout().unwrap();
    let mut a = arena(&cfg);
    let s = Store::new(&cfg, &mut a).unwrap();
    let full = s.memory_limit();
    assert_eq!(full, l.segments * 4096);
    let value = [b'v'; 500];
    let fill = |s: &Store<'_>, n: u32| {
        for i in 0..n {
            s.store(&set(std::format!("k{i}").as_bytes(), &value, 0), T0)
                .unwrap();
        }
    };
    fill(&s, 200);
    assert!(s.stats().segments_used.get() > 8);
    assert_eq!(s.set_memory_limit(6 * 4096, T0), 6 * 4096);
    assert!(
        s.stats().segments_used.get() <= 6,
        "{}",
        s.stats().segments_used.get()
    );
    s.audit().unwrap();
    fill(&s, 200);
    assert!(s.stats().segments_used.get() <= 6);
    s.audit().unwrap();
    // Below the minimum: clamped; above the arena: clamped.
    assert_eq!(s.set_memory_limit(0, T0), MIN_SEGMENTS_PER_SHARD * 4096);
    assert_eq!(s.set_memory_limit(usize::MAX, T0), full);
    fill(&s, 200);
    assert!(s.stats().segments_used.get() > 8);
    s.audit().unwrap();
}

/// A clock that advances 1000 ns per reading, so every recorded pause is
/// exactly one reading long.
fn ticking_clock() -> u64 {
    static NOW: AtomicU64 = AtomicU64::new(0);
    NOW.fetch_add(1000, Ordering::Relaxed) + 1000
}

#[test]
fn eviction_steps_record_their_shard_lock_holds() {
    let cfg = cfg_merge_no_hash_drops();
    let mut a = arena(&cfg);
    let pauses = crate::histogram::Histogram::new();
    let mut s = Store::new(&cfg, &mut a).unwrap();
    // Nothing is timed before a recorder is set, and filling is not an
    // eviction step.
    s.set_pause_recorder(&pauses, ticking_clock);
    for i in 0..10u32 {
        s.store(&set(&i.to_le_bytes(), &[1u8; 40], 0), T0).unwrap();
    }
    assert_eq!(pauses.count(), 0, "no eviction yet");
    for i in 10..5000u32 {
        s.store(&set(&i.to_le_bytes(), &[1u8; 40], 0), T0).unwrap();
    }
    let st = s.stats();
    let steps = st.merge_passes.get() + st.compactions.get();
    assert!(steps > 0);
    // One pause per step at least (a step that frees a dead segment
    // counts as one too), each one clock reading long.
    assert!(
        pauses.count() >= steps,
        "{} pauses, {steps} steps",
        pauses.count()
    );
    assert_eq!(pauses.max(), 1000);
    // Expiry reclaimed by expire() is timed as well.
    let before = pauses.count();
    s.store(&set(b"soon", &[2u8; 40], T0 + 1), T0).unwrap();
    for i in 5000..5200u32 {
        s.store(&set(&i.to_le_bytes(), &[1u8; 40], T0 + 1), T0)
            .unwrap();
    }
    let mid = pauses.count();
    assert!(mid > before);
    if s.expire(T0 + 5, usize::MAX) > 0 {
        assert!(pauses.count() > mid);
    }
}

/// Segments of 64 KiB holding about 900 small items each: one merge pass
/// over 8 of them visits some 7,000 items, a whole-segment eviction 900.
fn cfg_big_segments(eviction: Eviction) -> StoreConfig {
    StoreConfig {
        item_memory_bytes: 2 << 20,
        segment_bytes: 64 << 10,
        shards: 1,
        hash_power: 16,
        overflow_percent: 25,
        max_item_bytes: 64 << 10,
        eviction,
        seed: 11,
    }
}

/// The most eviction work one shard-lock hold may do: the budget, plus the
/// item at hand and the segment it empties.
fn hold_work_bound() -> u32 {
    super::pass::HOLD_WORK + 64
}

/// A value that names its key, so a torn or misplaced one shows.
fn value_of(i: u32, len: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(len);
    while v.len() < len {
        v.extend_from_slice(&i.to_le_bytes());
    }
    v.truncate(len);
    v
}

#[test]
fn eviction_work_per_lock_hold_is_bounded() {
    for eviction in [
        Eviction::Merge {
            max: 8,
            merge: 4,
            compact: 2,
        },
        Eviction::Fifo,
        Eviction::Random,
        Eviction::Cte,
    ] {
        let cfg = cfg_big_segments(eviction);
        let mut a = arena(&cfg);
        let s = Store::new(&cfg, &mut a).unwrap();
        let n = 60_000u32;
        for i in 0..n {
            s.store(&set(&i.to_le_bytes(), &value_of(i, 40), 0), T0)
                .unwrap_or_else(|e| panic!("{eviction:?}: set {i}: {e:?}"));
            // Hot keys get read so merge has something to keep.
            for h in 0..4u32 {
                if let Some(v) = get(&s, &h.to_le_bytes(), T0) {
                    assert_eq!(v, value_of(h, 40));
                }
            }
        }
        let st = s.stats();
        assert!(st.evicted_items.get() > 10_000, "{eviction:?}");
        if matches!(eviction, Eviction::Merge { .. }) {
            assert!(st.merge_passes.get() > 0);
        }
        assert_eq!(st.store_no_memory.get(), 0, "{eviction:?}");
        // Whole passes visit thousands of items; no hold did more than
        // its budget.
        let w = s.max_evict_hold_work();
        assert!(w > 100, "{eviction:?}: {w}");
        assert!(w <= hold_work_bound(), "{eviction:?}: {w}");
        assert_eq!(
            get(&s, &(n - 1).to_le_bytes(), T0).unwrap(),
            value_of(n - 1, 40)
        );
        s.audit().unwrap();
    }
}

#[test]
fn expiry_of_full_segments_is_bounded_per_lock_hold() {
    let cfg = cfg_big_segments(Eviction::Merge {
        max: 8,
        merge: 4,
        compact: 2,
    });
    let mut a = arena(&cfg);
    let pauses = crate::histogram::Histogram::new();
    let mut s = Store::new(&cfg, &mut a).unwrap();
    s.set_pause_recorder(&pauses, ticking_clock);
    let n = 20_000u32;
    for i in 0..n {
        s.store(&set(&i.to_le_bytes(), &value_of(i, 40), T0 + 10), T0)
            .unwrap();
    }
    let used = s.stats().segments_used.get();
    assert!(used > 10, "{used}");
    assert_eq!(s.max_evict_hold_work(), 0, "nothing evicted yet");
    // Every segment expired: one expire() reclaims all of them, one hold
    // of bounded work at a time.
    let reclaimed = s.expire(T0 + 1000, usize::MAX) as u64;
    assert_eq!(reclaimed, used);
    let st = s.stats();
    assert_eq!(st.items.get(), 0);
    assert_eq!(st.segments_used.get(), 0);
    assert_eq!(st.expired_segments.get(), used);
    assert_eq!(st.expired_segment_items.get(), n as u64);
    let w = s.max_evict_hold_work();
    assert!(w > 100 && w <= hold_work_bound(), "{w}");
    // More holds than segments: a full segment takes several.
    assert!(pauses.count() > used, "{} pauses", pauses.count());
    s.audit().unwrap();
    // A bounded expire() stops at its count.
    for i in 0..n {
        s.store(
            &set(&i.to_le_bytes(), &value_of(i, 40), T0 + 2000),
            T0 + 1000,
        )
        .unwrap();
    }
    assert_eq!(s.expire(T0 + 3000, 2), 2);
    assert_eq!(s.stats().expired_segments.get(), used + 2);
    s.audit().unwrap();
}

#[test]
fn readers_never_see_a_torn_item_while_passes_resume() {
    let cfg = StoreConfig {
        shards: 2,
        ..cfg_big_segments(Eviction::Merge {
            max: 8,
            merge: 4,
            compact: 2,
        })
    };
    let mut a = arena(&cfg);
    let s = Store::new(&cfg, &mut a).unwrap();
    let hot = 200u32;
    for i in 0..hot {
        s.store(&set(&i.to_le_bytes(), &value_of(i, 100), 0), T0)
            .unwrap();
    }
    let done = AtomicU64::new(0);
    std::thread::scope(|sc| {
        for t in 0..2u32 {
            let (s, done) = (&s, &done);
            sc.spawn(move || {
                for j in 0..40_000u32 {
                    let i = hot + t * 1_000_000 + j;
                    let len = 20 + (j as usize % 300);
                    s.store(&set(&i.to_le_bytes(), &value_of(i, len), 0), T0)
                        .unwrap();
                    // A touch relocates, a vivify writes: both may resume
                    // a pass.
                    let k = (hot + t * 1_000_000 + j / 2).to_le_bytes();
                    let opts = GetOptions {
                        touch: Some(0),
                        ..GetOptions::default()
                    };
                    let _ = s.get(&k, T0, opts, |_| ());
                }
                done.fetch_add(1, Ordering::Relaxed);
            });
        }
        let (s, done) = (&s, &done);
        sc.spawn(move || {
            // Reads the hot keys (storing one again when it was evicted)
            // until both writers are done, at least 10 rounds.
            let (mut seen, mut rounds) = (0u64, 0);
            while done.load(Ordering::Relaxed) < 2 || rounds < 10 {
                for i in 0..hot {
                    let k = i.to_le_bytes();
                    match get(s, &k, T0) {
                        Some(v) => {
                            assert_eq!(v, value_of(i, 100), "hot key {i}");
                            seen += 1;
                        }
                        None => {
                            s.store(&set(&k, &value_of(i, 100), 0), T0).unwrap();
                        }
                    }
                }
                rounds += 1;
            }
            assert!(seen > 0);
        });
    });
    let st = s.stats();
    assert!(st.merge_passes.get() + st.compactions.get() > 0);
    assert_eq!(st.store_no_memory.get(), 0);
    assert!(s.max_evict_hold_work() <= hold_work_bound());
    for i in 0..hot {
        if let Some(v) = get(&s, &i.to_le_bytes(), T0) {
            assert_eq!(v, value_of(i, 100));
        }
    }
    s.audit().unwrap();
}

/// Prints how long pass steps hold a shard lock (wall clock, this thread):
/// a million 1000-byte sets into 64 MiB of 1 MiB segments, 4 shards. A
/// measurement, not a check: `cargo test --release -p petrel-core --lib
/// pass_step_hold_times -- --ignored --nocapture`.
#[test]
#[ignore]
fn pass_step_hold_times() {
    fn clock() -> u64 {
        static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        START
            .get_or_init(std::time::Instant::now)
            .elapsed()
            .as_nanos() as u64
    }
    let cfg = StoreConfig {
        item_memory_bytes: 64 << 20,
        segment_bytes: 1 << 20,
        shards: 4,
        hash_power: 0,
        ..StoreConfig::default()
    };
    let mut a = arena(&cfg);
    let h = crate::histogram::Histogram::new();
    let mut s = Store::new(&cfg, &mut a).unwrap();
    s.set_pause_recorder(&h, clock);
    let v = [7u8; 1000];
    let n = 1_000_000u64;
    let t = std::time::Instant::now();
    for i in 0..n {
        let k = std::format!(
            "key:{:020}",
            i.wrapping_mul(0x9e37_79b9_7f4a_7c15) % 50_000_000
        );
        s.store(&set(k.as_bytes(), &v, 0), T0).unwrap();
    }
    let sm = h.summary();
    std::println!(
        "{n} sets in {:?}; {} holds: p50 {} us, p90 {} us, p99 {} us, p99.9 {} us, max {} us; most work in one hold {}",
        t.elapsed(),
        sm.count,
        sm.quantiles[0] / 1000,
        sm.quantiles[1] / 1000,
        sm.quantiles[2] / 1000,
        sm.quantiles[3] / 1000,
        sm.max / 1000,
        s.max_evict_hold_work()
    );
}

/// Calls of [`counting_wait`].
static LOCK_WAIT_CALLS: AtomicU64 = AtomicU64::new(0);

/// A lock-wait hook that counts its calls and lets other threads run.
fn counting_wait() {
    LOCK_WAIT_CALLS.fetch_add(1, Ordering::SeqCst);
    std::thread::yield_now();
}

/// A thread that finds its shard locked (here by the test, as by a holder
/// preempted on its CPU) spins a little, then calls the lock-wait hook
/// until the lock is free, and the shard counts the wait once.
#[test]
fn a_held_shard_lock_sends_a_caller_to_the_wait_hook_and_is_counted() {
    let cfg = cfg_small(Eviction::Fifo);
    let mut a = arena(&cfg);
    let mut s = Store::new(&cfg, &mut a).unwrap();
    s.set_lock_wait(counting_wait);
    s.store(&set(b"k", b"v", 0), T0).unwrap();
    assert_eq!(get(&s, b"k", T0).as_deref(), Some(&b"v"[..]));
    assert_eq!(s.stats().lock_waits.get(), 0, "a free lock: no wait");
    assert_eq!(LOCK_WAIT_CALLS.load(Ordering::SeqCst), 0);
    let held = s.shards[0].lock.lock();
    std::thread::scope(|scope| {
        let reader = scope.spawn(|| get(&s, b"k", T0));
        // The reader cannot finish while the lock is held: it waits in
        // the hook (it only returns after the release below).
        // (Bounded by turns, not time: a store that spins on instead of
        // calling the hook fails here rather than hanging.)
        for _ in 0..10_000_000 {
            if LOCK_WAIT_CALLS.load(Ordering::SeqCst) > 0 {
                break;
            }
            std::thread::yield_now();
        }
        assert!(
            LOCK_WAIT_CALLS.load(Ordering::SeqCst) > 0,
            "hook not called"
        );
        assert!(!reader.is_finished());
        drop(held);
        assert_eq!(reader.join().unwrap().as_deref(), Some(&b"v"[..]));
    });
    assert_eq!(s.stats().lock_waits.get(), 1);
    assert_eq!(get(&s, b"k", T0).as_deref(), Some(&b"v"[..]));
    assert_eq!(s.stats().lock_waits.get(), 1);
}

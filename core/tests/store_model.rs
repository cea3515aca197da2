//! Model-based test of the store: seeded random operation sequences with a
//! fake clock crossing TTLs, run against the store and against a
//! `hashbrown::HashMap` model of memcached's semantics.
//!
//! * Ample memory: every reply (result, value, flags, cas, expiry) must be
//!   identical to the model's, and nothing may be evicted.
//! * Small memory with eviction: the store may forget keys, but every hit
//!   must return exactly the latest version written (never stale or torn),
//!   a store-side "present" must be present in the model, and the accounting
//!   must add up (`Store::audit`, and `items` equals the number of keys that
//!   hit once everything expired has been visited).
//!
//! Both run for every eviction policy and several seeds.

use hashbrown::HashMap;
use petrel_core::store::{
    ArithRequest, Eviction, GetOptions, Store, StoreConfig, StoreError, StoreMode, StoreRequest,
};
use petrel_core::Time;

const POLICIES: [Eviction; 5] = [
    Eviction::None,
    Eviction::Fifo,
    Eviction::Random,
    Eviction::Cte,
    Eviction::Merge {
        max: 8,
        merge: 4,
        compact: 2,
    },
];
const SEEDS: [u64; 4] = [1, 0xdead_beef, 42, 7_777_777];
const OPS_PER_SEED: usize = 30_000;
const MAX_ITEM_BYTES: usize = 8192;
const TOO_LARGE_VALUE_BYTES: usize = 9000;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, per_thousand: u64) -> bool {
        self.below(1000) < per_thousand
    }
}

#[derive(Clone, Debug, PartialEq)]
struct Item {
    value: Vec<u8>,
    flags: u32,
    exp: Time,
    cas: u64,
}

#[derive(Default)]
struct Model {
    map: HashMap<Vec<u8>, Item>,
    flush_at: Option<Time>,
}

impl Model {
    fn tick(&mut self, now: Time) {
        if let Some(at) = self.flush_at {
            if now >= at {
                self.map.clear();
                self.flush_at = None;
            }
        }
    }
    fn live(&mut self, key: &[u8], now: Time) -> Option<&mut Item> {
        let dead = matches!(self.map.get(key), Some(i) if i.exp != 0 && i.exp <= now);
        if dead {
            self.map.remove(key);
        }
        self.map.get_mut(key)
    }
}

fn expired(exp: Time, now: Time) -> bool {
    exp != 0 && exp <= now
}

fn numeric(v: &[u8]) -> Option<u64> {
    let end = v.iter().rposition(|&c| c != b' ').map_or(0, |p| p + 1);
    let d = &v[..end];
    if d.is_empty() || !d.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(d).ok()?.parse().ok()
}

struct Run<'s, 'a> {
    s: &'s Store<'a>,
    m: Model,
    rng: Rng,
    now: Time,
    keys: u64,
    /// true: replies must match exactly; false: the store may have evicted.
    exact: bool,
    ops: u64,
}

impl Run<'_, '_> {
    fn key(&mut self) -> Vec<u8> {
        let k = self.rng.below(self.keys);
        format!("key:{k}").into_bytes()
    }

    fn value(&mut self) -> Vec<u8> {
        if self.rng.chance(5) {
            return vec![b'L'; TOO_LARGE_VALUE_BYTES];
        }
        if self.rng.chance(200) {
            let n = self.rng.below(100_000);
            return n.to_string().into_bytes();
        }
        let len = match self.rng.below(10) {
            0 => 0,
            1..=7 => self.rng.below(64) as usize,
            _ => self.rng.below(400) as usize,
        };
        let seed = self.rng.next();
        (0..len)
            .map(|i| b'a' + ((seed >> (i % 60)) as u8 ^ i as u8) % 26)
            .collect()
    }

    fn exp(&mut self) -> Time {
        match self.rng.below(10) {
            0..=4 => 0,
            5 => self.now.saturating_sub(self.rng.below(5) as Time + 1),
            _ => self.now + 1 + self.rng.below(30) as Time,
        }
    }

    /// The store may report "absent" where the model has the key only when
    /// eviction is allowed; then the model forgets it.
    fn absent_ok(&mut self, key: &[u8], what: &str) {
        assert!(
            !self.exact,
            "op {}: {what}: store lost key {:?}",
            self.ops,
            String::from_utf8_lossy(key)
        );
        self.m.map.remove(key);
    }

    fn check_get(&mut self, key: &[u8], touch: Option<Time>) {
        let now = self.now;
        let opts = GetOptions {
            touch,
            ..Default::default()
        };
        let got = self.s.get(key, now, opts, |i| {
            (i.value().to_vec(), i.flags(), i.cas(), i.expire_at())
        });
        let want = self.m.live(key, now).cloned();
        match (got, want) {
            (Some((v, f, c, e)), Some(mut w)) => {
                if let Some(t) = touch {
                    if !self.exact && e == w.exp && e != t {
                        // The touch could not get memory; the item is unchanged.
                        assert_eq!(
                            (&v, f, c),
                            (&w.value, w.flags, w.cas),
                            "op {}: gat {key:?}",
                            self.ops
                        );
                        return;
                    }
                    w.exp = t;
                }
                assert_eq!(
                    (&v, f, c, e),
                    (&w.value, w.flags, w.cas, w.exp),
                    "op {}: get {key:?}",
                    self.ops
                );
                if let Some(t) = touch {
                    if expired(t, now) {
                        self.m.map.remove(key);
                    } else if let Some(i) = self.m.map.get_mut(key) {
                        i.exp = t;
                    }
                }
            }
            (None, Some(_)) => self.absent_ok(key, "get"),
            (Some(g), None) => panic!(
                "op {}: store returned {g:?} for absent key {key:?}",
                self.ops
            ),
            (None, None) => {}
        }
    }

    fn store(&mut self, mode: StoreMode, with_cas: bool) {
        let key = self.key();
        let now = self.now;
        let mut value = self.value();
        let flags = if self.rng.chance(300) {
            self.rng.next() as u32
        } else {
            0
        };
        let exp = self.exp();
        let cur = self.m.live(&key, now).cloned();
        if matches!(mode, StoreMode::Append | StoreMode::Prepend) {
            if value.len() > 1000 {
                value.truncate(10);
            }
            if cur
                .as_ref()
                .is_some_and(|c| c.value.len() + value.len() > 2000)
            {
                return;
            }
        }
        let cas = match (&cur, with_cas) {
            (_, false) => 0,
            (Some(c), true) if self.rng.chance(700) => c.cas,
            _ => 1 + self.rng.below(1 << 40),
        };
        let req = StoreRequest {
            mode,
            key: &key,
            value: &value,
            flags,
            expire_at: exp,
            cas,
            invalidate: false,
        };
        let got = self.s.store(&req, now);
        // The model's verdict.
        let too_large = value.len() >= TOO_LARGE_VALUE_BYTES;
        let want: Result<(), StoreError> =
            if too_large && !matches!(mode, StoreMode::Append | StoreMode::Prepend) {
                Err(StoreError::TooLarge)
            } else if cas != 0 && cur.is_none() {
                Err(StoreError::NotFound)
            } else if cas != 0 && cur.as_ref().is_some_and(|c| c.cas != cas) {
                Err(StoreError::Exists)
            } else {
                match (mode, &cur) {
                    (StoreMode::Add, Some(_)) => Err(StoreError::NotStored),
                    (StoreMode::Replace | StoreMode::Append | StoreMode::Prepend, None) => {
                        Err(StoreError::NotStored)
                    }
                    _ => Ok(()),
                }
            };
        match (&got, &want) {
            (Ok(c), Ok(())) => {
                let item = match (mode, cur) {
                    (StoreMode::Append, Some(old)) => Item {
                        value: [old.value, value].concat(),
                        cas: *c,
                        ..old
                    },
                    (StoreMode::Prepend, Some(old)) => Item {
                        value: [value, old.value].concat(),
                        cas: *c,
                        ..old
                    },
                    _ => Item {
                        value,
                        flags,
                        exp,
                        cas: *c,
                    },
                };
                if expired(item.exp, now) {
                    self.m.map.remove(&key);
                } else {
                    self.m.map.insert(key, item);
                }
            }
            (Err(g), Err(w)) if g == w => {
                if *g == StoreError::TooLarge && mode == StoreMode::Set {
                    self.m.map.remove(&key);
                }
            }
            // Evicted under us: the store behaves as if the key were absent.
            (Ok(c), Err(StoreError::NotStored)) if mode == StoreMode::Add => {
                self.absent_ok(&key, "add");
                if !expired(exp, now) {
                    let item = Item {
                        value,
                        flags,
                        exp,
                        cas: *c,
                    };
                    self.m.map.insert(key, item);
                }
            }
            (Err(StoreError::NotStored), Ok(()))
                if mode != StoreMode::Add && mode != StoreMode::Set =>
            {
                self.absent_ok(&key, "replace/append/prepend")
            }
            (Err(StoreError::NotFound), Ok(()) | Err(StoreError::Exists)) if cas != 0 => {
                self.absent_ok(&key, "cas")
            }
            (Err(StoreError::NoMemory), _) if !self.exact => {
                if mode == StoreMode::Set {
                    self.m.map.remove(&key);
                }
            }
            _ => panic!(
                "op {}: {mode:?} cas={cas} key {key:?}: store {got:?}, model {want:?}",
                self.ops
            ),
        }
    }

    fn delete(&mut self) {
        let key = self.key();
        let now = self.now;
        let cur = self.m.live(&key, now).cloned();
        let cas = match &cur {
            Some(c) if self.rng.chance(200) => c.cas + 1,
            Some(c) if self.rng.chance(300) => c.cas,
            _ => 0,
        };
        let got = self.s.delete(&key, cas, now);
        match (got, cur) {
            (Ok(()), Some(c)) if cas == 0 || cas == c.cas => {
                self.m.map.remove(&key);
            }
            (Err(StoreError::Exists), Some(c)) if cas != c.cas => {}
            (Err(StoreError::NotFound), None) => {}
            (Err(StoreError::NotFound), Some(_)) => self.absent_ok(&key, "delete"),
            (g, c) => panic!(
                "op {}: delete {key:?} cas {cas}: store {g:?}, model {c:?}",
                self.ops
            ),
        }
    }

    fn arith(&mut self) {
        let key = self.key();
        let now = self.now;
        let incr = self.rng.chance(500);
        let delta = match self.rng.below(4) {
            0 => u64::MAX - self.rng.below(10),
            _ => self.rng.below(1000),
        };
        let op = ArithRequest {
            incr,
            delta,
            cas: 0,
            vivify: None,
            expire_at: None,
        };
        let got = self.s.arith(&key, &op, now);
        let cur = self.m.live(&key, now).cloned();
        match (got, cur) {
            (Ok((v, c)), Some(old)) => {
                let n = numeric(&old.value).expect("store accepted a non-numeric value");
                let want = if incr {
                    n.wrapping_add(delta)
                } else {
                    n.saturating_sub(delta)
                };
                assert_eq!(v, want, "op {}: arith", self.ops);
                let mut s = want.to_string().into_bytes();
                if s.len() < old.value.len() {
                    s.resize(old.value.len(), b' ');
                }
                self.m.map.insert(
                    key,
                    Item {
                        value: s,
                        cas: c,
                        ..old
                    },
                );
            }
            (Err(StoreError::NonNumeric), Some(old)) => {
                assert_eq!(
                    numeric(&old.value),
                    None,
                    "op {}: {:?}",
                    self.ops,
                    old.value
                );
            }
            (Err(StoreError::NotFound), None) => {}
            (Err(StoreError::NotFound), Some(_)) => self.absent_ok(&key, "arith"),
            (Err(StoreError::NoMemory), Some(_)) if !self.exact => {}
            (g, c) => panic!("op {}: arith {key:?}: store {g:?}, model {c:?}", self.ops),
        }
    }

    fn touch(&mut self) {
        let key = self.key();
        let now = self.now;
        let exp = self.exp();
        let got = self.s.touch(&key, exp, now);
        let cur = self.m.live(&key, now).is_some();
        match (got, cur) {
            (Ok(()), true) => {
                if expired(exp, now) {
                    self.m.map.remove(&key);
                } else if let Some(i) = self.m.map.get_mut(&key) {
                    i.exp = exp;
                }
            }
            (Err(StoreError::NotFound), false) => {}
            (Err(StoreError::NotFound), true) => self.absent_ok(&key, "touch"),
            (Err(StoreError::NoMemory), true) if !self.exact => {}
            (g, c) => panic!(
                "op {}: touch {key:?}: store {g:?}, model present={c}",
                self.ops
            ),
        }
    }

    fn step(&mut self) {
        self.ops += 1;
        if self.rng.chance(100) {
            self.now += self.rng.below(3) as Time;
        }
        self.m.tick(self.now);
        let choice = self.rng.below(1000);
        match choice {
            0..=349 => {
                let k = self.key();
                self.check_get(&k, None);
            }
            350..=549 => self.store(StoreMode::Set, false),
            550..=599 => self.store(StoreMode::Add, false),
            600..=639 => self.store(StoreMode::Replace, false),
            640..=679 => self.store(StoreMode::Append, false),
            680..=709 => self.store(StoreMode::Prepend, false),
            710..=769 => self.store(StoreMode::Set, true),
            770..=829 => self.delete(),
            830..=889 => self.arith(),
            890..=929 => self.touch(),
            930..=959 => {
                let k = self.key();
                let t = self.exp();
                self.check_get(&k, Some(t));
            }
            960..=989 => {
                let n = self.s.expire(self.now, 4);
                assert!(n <= 4);
            }
            990..=995 => {
                if self.rng.chance(if self.exact { 300 } else { 10 }) {
                    let at = self.now + 1 + self.rng.below(10) as Time;
                    self.s.flush(at, self.now);
                    self.m.flush_at = Some(at);
                }
            }
            _ => {
                if self.rng.chance(if self.exact { 100 } else { 5 }) {
                    self.s.flush(0, self.now);
                    self.m.map.clear();
                    self.m.flush_at = None;
                }
            }
        }
    }

    /// Visit every key (removing expired ones) and check the item count.
    fn final_accounting(&mut self) {
        self.s.audit().expect("accounting");
        let mut hits = 0;
        let opts = GetOptions {
            count: false,
            update_access: false,
            ..Default::default()
        };
        for k in 0..self.keys {
            let key = format!("key:{k}").into_bytes();
            if self.s.get(&key, self.now, opts, |_| ()).is_some() {
                hits += 1;
            }
        }
        let st = self.s.stats();
        assert_eq!(st.items.get(), hits, "items gauge vs keys that hit");
        self.s.audit().expect("accounting after visiting");
        let used = st.segments_used.get();
        assert_eq!(used + st.segments_free.get(), st.segments.get());
        assert!(st.item_bytes.get() <= st.segment_bytes_written.get());
    }
}

fn run(policy: Eviction, seed: u64, cfg: StoreConfig, keys: u64, exact: bool) {
    if std::env::var("STORE_SEED").is_ok_and(|s| s != seed.to_string()) {
        return;
    }
    if std::env::var("STORE_POLICY").is_ok_and(|p| p != format!("{policy:?}")) {
        return;
    }
    eprintln!("run {policy:?} seed {seed} exact {exact}");
    let mut arena = vec![0u8; cfg.required_bytes().unwrap()];
    let store = Store::new(&cfg, &mut arena).unwrap();
    let mut r = Run {
        s: &store,
        m: Model::default(),
        rng: Rng(seed | 1),
        now: 1_700_000_000,
        keys,
        exact,
        ops: 0,
    };
    for i in 0..OPS_PER_SEED {
        r.step();
        if i % 5000 == 0 {
            store
                .audit()
                .unwrap_or_else(|e| panic!("{policy:?} seed {seed} op {i}: {e}"));
        }
    }
    r.final_accounting();
    let st = store.stats();
    if exact {
        assert_eq!(
            st.evicted_items.get() + st.hash_full_evictions.get(),
            0,
            "{policy:?}: memory must suffice"
        );
        assert_eq!(st.store_no_memory.get(), 0);
    } else if policy != Eviction::None {
        assert!(
            st.evicted_items.get() > 0,
            "{policy:?}: small arena must evict"
        );
        if let Eviction::Merge { .. } = policy {
            assert!(st.merge_passes.get() > 0 && st.merge_retained_items.get() > 0);
        }
    }
    eprintln!(
        "  evicted {} merges {} retained {} compactions {} hash-full {} expired lazy {} / segments {} ({} items) flushed {}",
        st.evicted_items.get(),
        st.merge_passes.get(),
        st.merge_retained_items.get(),
        st.compactions.get(),
        st.hash_full_evictions.get(),
        st.expired_lazy.get(),
        st.expired_segments.get(),
        st.expired_segment_items.get(),
        st.flushed_items.get(),
    );
}

#[test]
fn identical_to_model_while_memory_suffices() {
    for policy in POLICIES {
        for seed in SEEDS {
            let cfg = StoreConfig {
                item_memory_bytes: 16 << 20,
                segment_bytes: 64 << 10,
                shards: 2,
                hash_power: 10,
                overflow_percent: 50,
                max_item_bytes: MAX_ITEM_BYTES,
                eviction: policy,
                seed,
            };
            run(policy, seed, cfg, 400, true);
        }
    }
}

#[test]
fn latest_value_or_miss_under_eviction() {
    for policy in POLICIES {
        for seed in SEEDS {
            let cfg = StoreConfig {
                item_memory_bytes: 128 << 10,
                segment_bytes: 4 << 10,
                shards: 2,
                hash_power: 10,
                overflow_percent: 10,
                max_item_bytes: 4 << 10,
                eviction: policy,
                seed,
            };
            run(policy, seed, cfg, 8000, false);
        }
    }
}

/// Several threads hammer a small sharded store (all policies) with
/// writes, reads, deletes, incr, touch, expire and flush. Every value embeds
/// its key, so a hit that returns another key's bytes or a torn value is
/// caught; at the end the accounting must still add up.
#[test]
fn concurrent_operations_stay_consistent() {
    for policy in POLICIES {
        let cfg = StoreConfig {
            item_memory_bytes: 256 << 10,
            segment_bytes: 4 << 10,
            shards: 4,
            hash_power: 8,
            overflow_percent: 25,
            max_item_bytes: 4 << 10,
            eviction: policy,
            seed: 99,
        };
        let mut arena = vec![0u8; cfg.required_bytes().unwrap()];
        let store = Store::new(&cfg, &mut arena).unwrap();
        let now = 1_700_000_000;
        std::thread::scope(|sc| {
            for t in 0..4u64 {
                let store = &store;
                sc.spawn(move || {
                    let mut rng = Rng(0x9e37_79b9 + t);
                    for i in 0..40_000u32 {
                        let now = now + i / 2000;
                        let k = rng.below(3000);
                        let key = format!("key:{k}").into_bytes();
                        match rng.below(100) {
                            0..=49 => {
                                store.get(&key, now, GetOptions::default(), |it| {
                                    let v = it.value();
                                    assert!(
                                        v.starts_with(&key),
                                        "{:?} for {k}",
                                        String::from_utf8_lossy(v)
                                    );
                                    let n = &v[key.len() + 1..key.len() + 7];
                                    let total: usize =
                                        std::str::from_utf8(n).unwrap().parse().unwrap();
                                    assert_eq!(total, v.len(), "torn value");
                                    assert_eq!(v[key.len()], b'=');
                                    assert!(v[key.len() + 7..v.len() - 1]
                                        .iter()
                                        .all(|&c| c == b'p'));
                                    assert_eq!(v[v.len() - 1], b'.');
                                });
                            }
                            50..=84 => {
                                // key=<total length, 6 digits><padding>.
                                let pad = rng.below(300) as usize;
                                let total = key.len() + 1 + 6 + pad + 1;
                                let mut v = key.clone();
                                v.extend_from_slice(format!("={total:06}").as_bytes());
                                v.resize(total - 1, b'p');
                                v.push(b'.');
                                let exp = if rng.chance(300) {
                                    now + 1 + rng.below(5) as u32
                                } else {
                                    0
                                };
                                let req = StoreRequest {
                                    mode: StoreMode::Set,
                                    key: &key,
                                    value: &v,
                                    flags: 0,
                                    expire_at: exp,
                                    cas: 0,
                                    invalidate: false,
                                };
                                let r = store.store(&req, now);
                                assert!(r.is_ok() || policy == Eviction::None, "{r:?}");
                            }
                            85..=92 => {
                                let _ = store.delete(&key, 0, now);
                            }
                            93..=96 => {
                                let _ = store.touch(&key, now + rng.below(10) as u32, now);
                            }
                            97..=98 => {
                                store.expire(now, 2);
                            }
                            _ => {
                                if rng.chance(20) {
                                    store.flush(0, now);
                                }
                            }
                        }
                    }
                });
            }
        });
        store.audit().expect("accounting after concurrent use");
    }
}

//! Visiting every live item, as memcached's `lru_crawler metadump` does: a
//! walk over each shard's hash table, chain by chain, that can stop when the
//! caller's output is full and resume later from a small cursor.

use core::sync::atomic::Ordering;

use super::api::ItemRef;
use super::Store;
use crate::Time;

/// Where a [`Store::walk`] stopped. `WalkCursor::default()` starts at the
/// first item.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WalkCursor {
    shard: u32,
    /// Home bucket of the chain being walked.
    bucket: u32,
    /// Linked pointers of that chain already visited.
    skip: u32,
}

impl WalkCursor {
    /// The start of a walk (`const`, for fixed-size state built at
    /// compile time).
    pub const fn new() -> Self {
        WalkCursor {
            shard: 0,
            bucket: 0,
            skip: 0,
        }
    }
}

/// Home buckets visited under one shard lock before it is released (and
/// taken again), so that a walk never holds a lock for long.
const BUCKETS_PER_LOCK: usize = 1024;

impl Store<'_> {
    /// Calls `f` for each live item (not expired, not flushed) from
    /// `cursor` on, in hash-table order, under that item's shard lock (copy
    /// out what you need; do not call back into the store). When `f`
    /// returns false the walk stops there and the cursor to resume at is
    /// returned (the item `f` refused is visited first next time); `None`
    /// means every item has been visited.
    ///
    /// Changes nothing: no access time, fetched bit, counter or expiry.
    /// Items stored, moved or removed while a walk spans several calls may
    /// be visited once, twice or not at all, as with memcached's crawler.
    pub fn walk(
        &self,
        mut cursor: WalkCursor,
        now: Time,
        mut f: impl FnMut(&ItemRef<'_>) -> bool,
    ) -> Option<WalkCursor> {
        self.check_flush(now);
        while let Some(slot) = self.shards.get(cursor.shard as usize) {
            let flush_cas = self.flush_cas.load(Ordering::Acquire);
            let shard = self.lock_shard(slot);
            let t = &shard.table;
            let mut visited = 0;
            while (cursor.bucket as usize) < t.nmain && visited < BUCKETS_PER_LOCK {
                let mut c = cursor.bucket as usize;
                let mut ordinal = 0u32;
                while let Some(bucket) = t.buckets.get(c) {
                    for &p in bucket.slots.iter() {
                        if p.is_empty() {
                            continue;
                        }
                        if ordinal >= cursor.skip {
                            let (seg, view, e, cas) = shard.segs.read(p);
                            let live = (e == 0 || e > now) && cas >= flush_cas;
                            if live {
                                let item =
                                    shard.segs.item_ref(shard.index, seg, &view, cas, e, now);
                                if !f(&item) {
                                    cursor.skip = ordinal;
                                    return Some(cursor);
                                }
                            }
                        }
                        ordinal += 1;
                    }
                    match bucket.next() {
                        0 => break,
                        n => c = n,
                    }
                }
                cursor.bucket += 1;
                cursor.skip = 0;
                visited += 1;
            }
            if cursor.bucket as usize >= t.nmain {
                cursor.shard += 1;
                cursor.bucket = 0;
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{StoreConfig, StoreMode, StoreRequest};
    use std::format;
    use std::vec;
    use std::vec::Vec;

    fn store_with(arena: &mut [u8]) -> Store<'_> {
        Store::new(&small(), arena).unwrap()
    }

    fn small() -> StoreConfig {
        StoreConfig {
            item_memory_bytes: 1 << 20,
            segment_bytes: 64 << 10,
            shards: 2,
            max_item_bytes: 16 << 10,
            ..StoreConfig::default()
        }
    }

    fn set(s: &Store<'_>, key: &[u8], exptime: Time, now: Time) {
        let req = StoreRequest {
            mode: StoreMode::Set,
            key,
            value: b"v",
            flags: 0,
            expire_at: exptime,
            cas: 0,
            invalidate: false,
        };
        s.store(&req, now).unwrap();
    }

    #[test]
    fn visits_every_live_item_once_across_stops() {
        let mut arena = vec![0u8; small().required_bytes().unwrap()];
        let s = store_with(&mut arena);
        let now = 1000;
        for i in 0..500u32 {
            set(&s, format!("key:{i}").as_bytes(), 0, now);
        }
        set(&s, b"expired", now + 5, now);
        s.flush(now + 1, now); // nothing yet: flushes at now + 1
        let later = now + 10;
        for i in 500..520u32 {
            set(&s, format!("key:{i}").as_bytes(), 0, later);
        }
        // Stop after every 7 items; resume where it stopped.
        let mut seen: Vec<Vec<u8>> = Vec::new();
        let mut cursor = WalkCursor::default();
        let mut calls = 0;
        loop {
            let mut taken = 0;
            let next = s.walk(cursor, later, |item| {
                if taken == 7 {
                    return false;
                }
                taken += 1;
                seen.push(item.key().to_vec());
                true
            });
            calls += 1;
            match next {
                Some(c) => cursor = c,
                None => break,
            }
        }
        seen.sort();
        let mut want: Vec<Vec<u8>> = (500..520u32)
            .map(|i| format!("key:{i}").into_bytes())
            .collect();
        want.sort();
        assert_eq!(seen, want, "flushed and expired items are not visited");
        assert!(calls >= 3);
        // Nothing was changed: items are still there, unfetched.
        let mut fetched = 0;
        assert_eq!(
            s.walk(WalkCursor::default(), later, |item| {
                fetched += item.fetched() as u32;
                true
            }),
            None
        );
        assert_eq!(fetched, 0);
        s.audit().unwrap();
    }
}

//! The store operations on one shard: lookups (get, gat, meta mg with
//! vivify and recache), writes (set, add, replace, append, prepend, cas,
//! meta invalidation), delete, touch, incr/decr, and reading a value on.

use core::sync::atomic::Ordering;

use super::api::{
    ArithRequest, GetOptions, ItemRef, StoreError, StoreMode, StoreRequest, ValueLocation,
};
use super::ctx::Ctx;
use super::evict::Room;
use super::item::{
    self, INFO_FETCHED, INFO_KEY_BINARY, INFO_STALE, INFO_STATE_MASK, INFO_TOKEN_SENT,
};
use super::segments::{NeedRoom, Part};
use super::shard::{Shard, Version, MAX_ROOM_ATTEMPTS};
use crate::Time;

/// Count one lookup in `gets` and `get_hits` or `get_misses`, unless
/// `opts` asks for it not to be counted.
#[inline(always)]
fn count_lookup(cx: &Ctx, opts: &GetOptions, hit: bool) {
    if opts.count {
        cx.st.gets.incr_owned();
        if hit {
            cx.st.get_hits.incr_owned();
        } else {
            cx.st.get_misses.incr_owned();
        }
    }
}

impl Shard<'_> {
    /// `get` for a plain lookup (no touch, vivify or recache), the hot
    /// path: no `Found` is built and moved around. Falls back to the
    /// general path (handing `f` back) for an item that is dead (expired or
    /// flushed: the general path removes and counts it) or stale (a meta
    /// win token may have to be handed out).
    #[inline(always)]
    fn get_plain<R, F: FnOnce(&ItemRef<'_>) -> R>(
        &mut self,
        cx: &Ctx,
        hash: u64,
        key: &[u8],
        opts: &GetOptions,
        f: F,
    ) -> Result<Option<R>, F> {
        let Some(at) = self.find(key, hash) else {
            count_lookup(cx, opts, false);
            return Ok(None);
        };
        let (seg, view, e, cas) = self.segs.read(at.ptr);
        if (e != 0 && e <= cx.now) || cas < cx.flush_cas || view.info & INFO_STALE != 0 {
            return Err(f);
        }
        count_lookup(cx, opts, true);
        if opts.update_access {
            self.record_access(&at, &view, cx.now);
        }
        let mut item = self.segs.item_ref(self.index, seg, &view, cas, e, cx.now);
        item.token_sent = view.info & INFO_TOKEN_SENT != 0;
        Ok(Some(f(&item)))
    }

    /// A lookup; `Err(f)` hands `f` back when a touch or vivify stopped to
    /// let the lock go for eviction ([`Room::Yield`]): the caller retries.
    #[inline(always)]
    pub fn get<R, F: FnOnce(&ItemRef<'_>) -> R>(
        &mut self,
        cx: &Ctx,
        hash: u64,
        key: &[u8],
        opts: &GetOptions,
        f: F,
    ) -> Result<Option<R>, F> {
        let f = if opts.touch.is_none() && opts.vivify.is_none() && opts.recache_below.is_none() {
            match self.get_plain(cx, hash, key, opts, f) {
                Ok(r) => return Ok(r),
                Err(f) => f,
            }
        } else {
            f
        };
        self.get_general(cx, hash, key, opts, f)
    }

    /// `get` with touch, vivify or recache, or on a dead or stale item.
    /// Kept out of line so that the plain path stays small.
    #[inline(never)]
    fn get_general<R, F: FnOnce(&ItemRef<'_>) -> R>(
        &mut self,
        cx: &Ctx,
        hash: u64,
        key: &[u8],
        opts: &GetOptions,
        f: F,
    ) -> Result<Option<R>, F> {
        let mut created = false;
        let mut expire_after = false;
        let mut attempts = 0;
        let found = loop {
            match self.lookup(cx, key, hash) {
                Some(fd) => {
                    let mut out = fd;
                    if let Some(t) = opts.touch {
                        if t != 0 && t <= cx.now {
                            expire_after = true;
                        } else if t != fd.e {
                            match self.relocate(cx, &fd, t) {
                                Ok(nf) => out = nf,
                                Err(NeedRoom) => {
                                    attempts += 1;
                                    if attempts < MAX_ROOM_ATTEMPTS {
                                        match self.make_room(cx) {
                                            Room::Freed => continue,
                                            Room::Yield => return Err(f),
                                            Room::Full => {}
                                        }
                                    }
                                }
                            }
                        }
                        cx.st.touches.incr_owned();
                    }
                    break Some(out);
                }
                None => {
                    let Some(mut t) = opts.vivify else {
                        break None;
                    };
                    if t != 0 && t <= cx.now {
                        // memcached creates the item (a new CAS, the caller
                        // wins) even when its TTL is already over; it is
                        // dead to every later request
                        t = 0;
                        expire_after = true;
                    }
                    if self.too_large(key.len(), 0, 0) {
                        break None;
                    }
                    let v = Version {
                        key,
                        value: &[],
                        flags: 0,
                        expire_at: t,
                        state: INFO_TOKEN_SENT,
                    };
                    match self.put_new(cx, hash, &v, None) {
                        Ok(_) => {
                            created = true;
                            break self.lookup(cx, key, hash);
                        }
                        Err(NeedRoom) => {
                            attempts += 1;
                            if attempts < MAX_ROOM_ATTEMPTS {
                                match self.make_room(cx) {
                                    Room::Freed => continue,
                                    Room::Yield => return Err(f),
                                    Room::Full => {}
                                }
                            }
                            break None;
                        }
                    }
                }
            }
        };
        let Some(fd) = found else {
            count_lookup(cx, opts, false);
            return Ok(None);
        };
        // A vivified item answers a miss.
        count_lookup(cx, opts, !created);
        let info = fd.view.info;
        let stale = info & INFO_STALE != 0;
        let token_sent = !created && info & INFO_TOKEN_SENT != 0;
        let mut won = created;
        if !created && !token_sent {
            // judged against the TTL a touch in this request just set
            // (memcached applies T before an R that follows it)
            let e = if expire_after {
                opts.touch.unwrap_or(fd.e)
            } else {
                fd.e
            };
            let recache = opts
                .recache_below
                .is_some_and(|r| e != 0 && e.saturating_sub(cx.now) < r);
            if (stale && opts.meta) || recache {
                won = true;
                item::set_info(self.segs.data, fd.view.at, INFO_TOKEN_SENT, 0);
            }
        }
        if opts.update_access && !created {
            self.record_access(&fd.at, &fd.view, cx.now);
        }
        let expire_at = if expire_after {
            opts.touch.unwrap_or(fd.e)
        } else {
            fd.e
        };
        let mut item = self
            .segs
            .item_ref(self.index, fd.seg, &fd.view, fd.cas, expire_at, cx.now);
        item.won = won;
        item.token_sent = token_sent;
        item.created = created;
        let r = f(&item);
        if expire_after {
            if let Some(fd) = self.lookup(cx, key, hash) {
                self.unlink_found(cx, &fd);
            }
        }
        Ok(Some(r))
    }

    pub fn store(
        &mut self,
        cx: &Ctx,
        hash: u64,
        req: &StoreRequest<'_>,
    ) -> Result<u64, StoreError> {
        let r = self.store_inner(cx, hash, req);
        if self.yielded() {
            // Retried once the lock has been let go: nothing happened.
            return r;
        }
        match r {
            Ok(_) => cx.st.stores.incr_owned(),
            Err(StoreError::NotStored) => cx.st.store_not_stored.incr_owned(),
            Err(StoreError::Exists) => cx.st.store_exists.incr_owned(),
            Err(StoreError::NotFound) => cx.st.store_not_found.incr_owned(),
            Err(StoreError::TooLarge) => cx.st.store_too_large.incr_owned(),
            Err(StoreError::NoMemory) => cx.st.store_no_memory.incr_owned(),
            Err(_) => {}
        }
        if matches!(r, Err(StoreError::TooLarge | StoreError::NoMemory))
            && req.mode == StoreMode::Set
        {
            // memcached: a failed set must not leave the old value behind.
            if let Some(f) = self.lookup(cx, req.key, hash) {
                self.unlink_found(cx, &f);
            }
        }
        r
    }

    fn store_inner(
        &mut self,
        cx: &Ctx,
        hash: u64,
        req: &StoreRequest<'_>,
    ) -> Result<u64, StoreError> {
        if self.too_large(req.key.len(), req.value.len(), req.flags) {
            return Err(StoreError::TooLarge);
        }
        for _ in 0..MAX_ROOM_ATTEMPTS {
            let existing = self.lookup(cx, req.key, hash);
            let mut state = 0;
            if req.cas != 0 {
                match &existing {
                    None => return Err(StoreError::NotFound),
                    Some(f) if f.cas != req.cas => {
                        // memcached stores a stale value when the CAS is
                        // older than the item's; any CAS handed out for this
                        // key before is, but Petrel's values are not ordered
                        // by write time (a segment's base), so "not the
                        // current one" stands for "older"
                        if req.invalidate {
                            // memcached keeps a win token already sent
                            state = INFO_STALE | (f.view.info & INFO_TOKEN_SENT);
                        } else {
                            return Err(StoreError::Exists);
                        }
                    }
                    Some(_) => {}
                }
            }
            match (req.mode, &existing) {
                (StoreMode::Add, Some(_)) => return Err(StoreError::NotStored),
                (StoreMode::Replace | StoreMode::Append | StoreMode::Prepend, None) => {
                    return Err(StoreError::NotStored)
                }
                _ => {}
            }
            let ext = [Part::Ext(req.value)];
            let (flags, expire_at, parts): (u32, Time, [Part<'_>; 2]) = match (req.mode, &existing)
            {
                (StoreMode::Append, Some(f)) => (
                    f.view.flags,
                    f.e,
                    [
                        Part::Int(f.view.value_at(), f.view.vlen),
                        Part::Ext(req.value),
                    ],
                ),
                (StoreMode::Prepend, Some(f)) => (
                    f.view.flags,
                    f.e,
                    [
                        Part::Ext(req.value),
                        Part::Int(f.view.value_at(), f.view.vlen),
                    ],
                ),
                _ => (req.flags, req.expire_at, [ext[0], Part::Fill(0, 0)]),
            };
            let vlen = parts[0].len() + parts[1].len();
            if self.too_large(req.key.len(), vlen, flags) {
                // memcached: an append/prepend that would grow the item past
                // the limit is NOT_STORED and leaves the item as it was.
                return Err(StoreError::NotStored);
            }
            if expire_at != 0 && expire_at <= cx.now {
                if let Some(f) = &existing {
                    self.unlink_found(cx, f);
                }
                return Ok(cx.cas.fetch_add(1, Ordering::Relaxed));
            }
            let v = Version {
                key: req.key,
                value: &parts,
                flags,
                expire_at,
                state,
            };
            match self.put_new(cx, hash, &v, existing.as_ref()) {
                Ok(cas) => return Ok(cas),
                Err(NeedRoom) => {
                    if self.make_room(cx) != Room::Freed {
                        return Err(StoreError::NoMemory);
                    }
                }
            }
        }
        Err(StoreError::NoMemory)
    }

    pub fn delete(&mut self, cx: &Ctx, hash: u64, key: &[u8], cas: u64) -> Result<(), StoreError> {
        let Some(f) = self.lookup(cx, key, hash) else {
            cx.st.store_not_found.incr_owned();
            return Err(StoreError::NotFound);
        };
        if cas != 0 && cas != f.cas {
            cx.st.store_exists.incr_owned();
            return Err(StoreError::Exists);
        }
        self.unlink_found(cx, &f);
        cx.st.deletes.incr_owned();
        Ok(())
    }

    pub fn invalidate(
        &mut self,
        cx: &Ctx,
        hash: u64,
        key: &[u8],
        cas: u64,
        expire_at: Option<Time>,
    ) -> Result<u64, StoreError> {
        for _ in 0..MAX_ROOM_ATTEMPTS {
            let Some(f) = self.lookup(cx, key, hash) else {
                cx.st.store_not_found.incr_owned();
                return Err(StoreError::NotFound);
            };
            if cas != 0 && cas != f.cas {
                cx.st.store_exists.incr_owned();
                return Err(StoreError::Exists);
            }
            let e = expire_at.unwrap_or(f.e);
            if e != 0 && e <= cx.now {
                self.unlink_found(cx, &f);
                return Ok(cx.cas.fetch_add(1, Ordering::Relaxed));
            }
            let state = INFO_STALE | (f.view.info & (INFO_FETCHED | INFO_KEY_BINARY));
            let value = [Part::Int(f.view.value_at(), f.view.vlen)];
            let v = Version {
                key,
                value: &value,
                flags: f.view.flags,
                expire_at: e,
                state,
            };
            match self.put_new(cx, hash, &v, Some(&f)) {
                Ok(new_cas) => {
                    cx.st.deletes.incr_owned();
                    return Ok(new_cas);
                }
                Err(NeedRoom) => match self.make_room(cx) {
                    Room::Freed => {}
                    Room::Yield => return Err(StoreError::NoMemory),
                    Room::Full => break,
                },
            }
        }
        cx.st.store_no_memory.incr_owned();
        Err(StoreError::NoMemory)
    }

    /// Marks the version of `key` whose CAS is `cas` as stored under a
    /// base64 key; `false` when that version is no longer there.
    pub fn mark_key_binary(&mut self, cx: &Ctx, hash: u64, key: &[u8], cas: u64) -> bool {
        match self.lookup(cx, key, hash) {
            Some(f) if f.cas == cas => {
                item::set_info(self.segs.data, f.view.at, INFO_KEY_BINARY, 0);
                true
            }
            _ => false,
        }
    }

    pub fn touch(
        &mut self,
        cx: &Ctx,
        hash: u64,
        key: &[u8],
        expire_at: Time,
    ) -> Result<(), StoreError> {
        for _ in 0..MAX_ROOM_ATTEMPTS {
            let Some(f) = self.lookup(cx, key, hash) else {
                cx.st.store_not_found.incr_owned();
                return Err(StoreError::NotFound);
            };
            if expire_at != 0 && expire_at <= cx.now {
                self.unlink_found(cx, &f);
            } else {
                let at = if expire_at != f.e {
                    match self.relocate(cx, &f, expire_at) {
                        Ok(moved) => moved.view.at,
                        Err(_) => {
                            if self.make_room(cx) != Room::Freed {
                                break;
                            }
                            continue;
                        }
                    }
                } else {
                    f.view.at
                };
                // memcached counts a touch as a fetch (meta `h`, LRU bump).
                self.segs.mark_fetched(at, &f.view, cx.now);
            }
            cx.st.touches.incr_owned();
            return Ok(());
        }
        Err(StoreError::NoMemory)
    }

    pub fn arith(
        &mut self,
        cx: &Ctx,
        hash: u64,
        key: &[u8],
        op: &ArithRequest,
    ) -> Result<(u64, u64), StoreError> {
        for _ in 0..MAX_ROOM_ATTEMPTS {
            let existing = self.lookup(cx, key, hash);
            let mut digits = [0u8; 20];
            let (value, flags, expire_at, pad) = match &existing {
                None => {
                    let Some((init, exp)) = op.vivify else {
                        cx.st.store_not_found.incr_owned();
                        return Err(StoreError::NotFound);
                    };
                    (init, 0, exp, 0)
                }
                Some(f) => {
                    if op.cas != 0 && op.cas != f.cas {
                        cx.st.store_exists.incr_owned();
                        return Err(StoreError::Exists);
                    }
                    let v = f.view.value_at();
                    let old = &self.segs.data[v..v + f.view.vlen];
                    if old.is_empty() {
                        return Err(StoreError::NonNumeric);
                    }
                    let cur = item::parse_u64(old).ok_or(StoreError::NonNumeric)?;
                    let new = if op.incr {
                        cur.wrapping_add(op.delta)
                    } else {
                        cur.saturating_sub(op.delta)
                    };
                    let n = item::format_u64(new, &mut digits);
                    // memcached keeps the value's length when the new number
                    // is not longer, padding with spaces.
                    let pad = f.view.vlen.saturating_sub(n);
                    (new, f.view.flags, op.expire_at.unwrap_or(f.e), pad)
                }
            };
            let n = item::format_u64(value, &mut digits);
            if self.too_large(key.len(), n + pad, flags) {
                return Err(StoreError::TooLarge);
            }
            if expire_at != 0 && expire_at <= cx.now {
                if let Some(f) = &existing {
                    self.unlink_found(cx, f);
                }
                cx.st.ariths.incr_owned();
                return Ok((value, cx.cas.fetch_add(1, Ordering::Relaxed)));
            }
            let parts = [Part::Ext(&digits[..n]), Part::Fill(b' ', pad)];
            // memcached rewrites a number that still fits in place, keeping
            // the item's state (fetched, stale, token); a longer one is a new item.
            let state = match &existing {
                Some(f) if n <= f.view.vlen => f.view.info & INFO_STATE_MASK,
                _ => 0,
            };
            let v = Version {
                key,
                value: &parts,
                flags,
                expire_at,
                state,
            };
            match self.put_new(cx, hash, &v, existing.as_ref()) {
                Ok(cas) => {
                    cx.st.ariths.incr_owned();
                    return Ok((value, cas));
                }
                Err(NeedRoom) => match self.make_room(cx) {
                    Room::Freed => {}
                    Room::Yield => return Err(StoreError::NoMemory),
                    Room::Full => break,
                },
            }
        }
        cx.st.store_no_memory.incr_owned();
        Err(StoreError::NoMemory)
    }

    /// Seal every open segment (flush: later writes get cas >= flush cas).
    pub fn seal_open(&mut self) {
        self.segs.seal_open();
    }

    /// Copy bytes `offset..` of the value at `loc` into `dst`.
    pub fn read_value(
        &self,
        loc: &ValueLocation,
        offset: usize,
        dst: &mut [u8],
    ) -> Result<usize, StoreError> {
        self.segs.read_value(loc, offset, dst)
    }
}

//! What the meta commands share (keys that may be base64, the ` O`/` k`
//! echo, TTL arithmetic), plus `mn` and `me`. `mg`, `ms`, `md` and `ma` have
//! their own files.

use super::{expire_at, peek, Engine, Exec};
use crate::proto::compose::Room;
use crate::proto::meta::decode_key;
use crate::proto::{self, base64, MetaRequest, KEY_MAX_BYTES, RELATIVE_EXPTIME_MAX_SECONDS};
use crate::store::ItemRef;
use crate::Time;

/// A key, base64-decoded when needed, on the stack.
pub(super) struct KeyBuf {
    buf: [u8; KEY_MAX_BYTES],
    len: usize,
}

impl KeyBuf {
    pub(super) fn new(raw: &[u8], base64: bool) -> Option<KeyBuf> {
        let mut k = KeyBuf {
            buf: [0; KEY_MAX_BYTES],
            len: 0,
        };
        if base64 {
            let mut tmp = [0u8; KEY_MAX_BYTES];
            let d = decode_key(raw, &mut tmp)?;
            k.buf[..d.len()].copy_from_slice(d);
            k.len = d.len();
        } else {
            let n = raw.len().min(KEY_MAX_BYTES);
            k.buf[..n].copy_from_slice(&raw[..n]);
            k.len = n;
        }
        Some(k)
    }
    pub(super) fn get(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// Writes ` k<key>` (base64 plus ` b` for binary keys).
pub(super) fn put_meta_key(room: &mut Room<'_, '_>, key: &[u8], binary: bool) {
    room.put(b" k");
    if binary {
        put_base64(room, key);
        room.put(b" b");
    } else {
        room.put(key);
    }
}

/// Writes `key` in base64 (a key is at most [`KEY_MAX_BYTES`]).
pub(super) fn put_base64(room: &mut Room<'_, '_>, key: &[u8]) {
    let mut enc = [0u8; base64::encoded_len(KEY_MAX_BYTES)];
    let n = base64::encode(key, &mut enc).unwrap_or(0);
    room.put(&enc[..n]);
}

/// Writes ` O...` and ` k...` flags in request order (the miss/status path).
pub(super) fn put_opaque_and_key(room: &mut Room<'_, '_>, m: &MetaRequest<'_>, key: &[u8]) {
    for f in m.flag_words {
        match f[0] {
            b'O' => {
                room.put_byte(b' ');
                room.put(f);
            }
            b'k' => put_meta_key(room, key, m.flags.base64),
            _ => {}
        }
    }
}

/// The exptime a new (vivified) item ends with: memcached applies `T` and
/// `N` in request order, so the later of the two wins.
pub(super) fn last_ttl(m: &MetaRequest<'_>, vivify: i32) -> i32 {
    let t_last = m
        .flag_words
        .filter(|w| matches!(w[0], b'T' | b'N'))
        .last()
        .is_some_and(|w| w[0] == b'T');
    match (t_last, m.flags.ttl) {
        (true, Some(t)) => t,
        _ => vivify,
    }
}

/// The expiry memcached's `realtime()` gives an item for `exptime` (the
/// meta `T` and `N` tokens), as a Unix time: [`expire_at`]'s, except that a
/// time already past is memcached's relative second 1 (or, for an absolute
/// time after memcached's start, that time itself), so that `t` prints what
/// memcached prints for such an item: its clock wrapped below zero, e.g.
/// `t4294966627`. memcached's relative clock starts 60 seconds before the
/// start its `uptime` counts from, which `started_at` stands for.
pub(super) fn mc_expire_at(exptime: i32, now: Time, started_at: Time) -> Time {
    let process_started = started_at.wrapping_sub(60);
    if exptime < 0 {
        return process_started.wrapping_add(1);
    }
    if exptime > RELATIVE_EXPTIME_MAX_SECONDS && exptime as u32 <= process_started {
        return process_started.wrapping_add(1);
    }
    match expire_at(exptime, now) {
        super::EXPIRED => exptime as u32,
        at => at,
    }
}

/// Remaining TTL as memcached's meta `t` flag prints it.
pub(super) fn ttl_left(expire_at: Time, now: Time) -> i64 {
    if expire_at == 0 {
        -1
    } else {
        i64::from(expire_at.wrapping_sub(now))
    }
}

impl Engine<'_> {
    /// The item's expiry before a `T` changes it, when a `t` comes before
    /// that `T` among the flags (memcached walks the flags in order, so that
    /// `t` reports the TTL the item had); `None` otherwise.
    pub(super) fn expire_before_ttl_update(
        &self,
        m: &MetaRequest<'_>,
        updates_ttl: bool,
        key: &[u8],
        now: Time,
    ) -> Option<Time> {
        let t_before_t = updates_ttl
            && m.flag_words
                .into_iter()
                .find(|w| matches!(w[0], b't' | b'T'))
                .is_some_and(|w| w[0] == b't');
        if t_before_t {
            self.store.get(key, now, peek(), |i| i.expire_at())
        } else {
            None
        }
    }

    pub(super) fn exec_mn(&self, room: &mut Room<'_, '_>) -> Exec {
        self.stats.cmd_meta.incr();
        room.line(b"MN");
        Exec::Done
    }

    pub(super) fn exec_me(
        &self,
        raw: &[u8],
        base64: bool,
        room: &mut Room<'_, '_>,
        now: Time,
    ) -> Exec {
        self.stats.cmd_meta.incr();
        let Some(key) = KeyBuf::new(raw, base64) else {
            room.line(b"CLIENT_ERROR bad command line format");
            return Exec::Done;
        };
        let key = key.get();
        let found = self.store.get(key, now, peek(), |item: &ItemRef<'_>| {
            room.put(b"ME ");
            if base64 {
                put_base64(room, item.key());
            } else {
                room.put(item.key());
            }
            room.put(b" exp=");
            let exp = if item.expire_at() == 0 {
                -1
            } else {
                i64::from(now) - i64::from(item.expire_at())
            };
            room.put_i64(exp);
            room.put(b" la=");
            room.put_u64(u64::from(now.saturating_sub(item.last_access())));
            room.put(b" cas=");
            room.put_u64(item.cas());
            room.put(if item.fetched() {
                &b" fetch=yes"[..]
            } else {
                b" fetch=no"
            });
            room.put(b" cls=1 size=");
            room.put_u64(
                (item.key().len() + item.value().len() + proto::ITEM_OVERHEAD_BYTES) as u64,
            );
            room.put(b"\r\n");
        });
        if found.is_none() {
            room.line(b"EN");
        }
        Exec::Done
    }
}

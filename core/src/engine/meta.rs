//! What the meta commands share (keys that may be base64, the ` O`/` k`
//! echo, TTL arithmetic), plus `mn` and `me`. `mg`, `ms`, `md` and `ma` have
//! their own files.

use super::{peek, Engine, Exec};
use crate::proto::compose::{Full, Writer};
use crate::proto::meta::decode_key;
use crate::proto::{self, base64, MetaRequest, KEY_MAX_BYTES};
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
pub(super) fn put_meta_key(w: &mut Writer<'_>, key: &[u8], binary: bool) -> Result<(), Full> {
    w.put(b" k")?;
    if binary {
        let mut enc = [0u8; base64::encoded_len(KEY_MAX_BYTES)];
        let n = base64::encode(key, &mut enc).ok_or(Full)?;
        w.put(&enc[..n])?;
        w.put(b" b")
    } else {
        w.put(key)
    }
}

/// Writes ` O...` and ` k...` flags in request order (the miss/status path).
pub(super) fn put_opaque_and_key(
    w: &mut Writer<'_>,
    m: &MetaRequest<'_>,
    key: &[u8],
) -> Result<(), Full> {
    for f in m.flag_words {
        match f[0] {
            b'O' => {
                w.put_byte(b' ')?;
                w.put(f)?;
            }
            b'k' => put_meta_key(w, key, m.flags.base64)?,
            _ => {}
        }
    }
    Ok(())
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

/// Remaining TTL as memcached's meta `t` flag prints it.
pub(super) fn ttl_left(expire_at: Time, now: Time) -> i64 {
    if expire_at == 0 {
        -1
    } else {
        i64::from(expire_at.wrapping_sub(now))
    }
}

impl Engine<'_> {
    pub(super) fn exec_mn(&self, w: &mut Writer<'_>) -> Result<Exec, Full> {
        self.stats.cmd_meta.incr();
        w.line(b"MN")?;
        Ok(Exec::Done)
    }

    pub(super) fn exec_me(&self, raw: &[u8], base64: bool, w: &mut Writer<'_>, now: Time) -> Exec {
        self.stats.cmd_meta.incr();
        let Some(key) = KeyBuf::new(raw, base64) else {
            w.line(b"CLIENT_ERROR bad command line format").ok();
            return Exec::Done;
        };
        let key = key.get();
        let found = self.store.get(key, now, peek(), |item: &ItemRef<'_>| {
            let _ = w.put(b"ME ");
            if base64 {
                let mut enc = [0u8; base64::encoded_len(KEY_MAX_BYTES)];
                let n = base64::encode(item.key(), &mut enc).unwrap_or(0);
                let _ = w.put(&enc[..n]);
            } else {
                let _ = w.put(item.key());
            }
            let _ = w.put(b" exp=");
            let exp = if item.expire_at() == 0 {
                -1
            } else {
                i64::from(now) - i64::from(item.expire_at())
            };
            let _ = w.put_i64(exp);
            let _ = w.put(b" la=");
            let _ = w.put_u64(u64::from(now.saturating_sub(item.last_access())));
            let _ = w.put(b" cas=");
            let _ = w.put_u64(item.cas());
            let _ = w.put(if item.fetched() {
                &b" fetch=yes"[..]
            } else {
                b" fetch=no"
            });
            let _ = w.put(b" cls=1 size=");
            let _ = w.put_u64(
                (item.key().len() + item.value().len() + proto::ITEM_OVERHEAD_BYTES) as u64,
            );
            let _ = w.put(b"\r\n");
        });
        if found.is_none() {
            w.line(b"EN").ok();
        }
        Exec::Done
    }
}

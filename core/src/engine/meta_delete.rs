//! `md`: the meta delete (and, with `I`, invalidate) command.

use super::meta::{put_opaque_and_key, KeyBuf};
use super::{expire_at, Engine, Exec};
use crate::proto::compose::Room;
use crate::proto::{ErrorKind, MetaRequest};
use crate::store::StoreError;
use crate::Time;

impl Engine<'_> {
    pub(super) fn exec_md(&self, m: &MetaRequest<'_>, room: &mut Room<'_, '_>, now: Time) -> Exec {
        self.stats.cmd_meta.incr();
        let Some(key) = KeyBuf::new(m.key, m.flags.base64) else {
            room.line(ErrorKind::MetaInvalidOrDuplicateFlag.message());
            return Exec::Done;
        };
        let key = key.get();
        let f = &m.flags;
        let r = match f.cas {
            Some(0) => Err(if self.exists(key, now) {
                StoreError::Exists
            } else {
                StoreError::NotFound
            }),
            // md I: mark stale (new cas, optional new TTL) instead of deleting
            cas if f.invalidate => self
                .store
                .invalidate(key, cas.unwrap_or(0), f.ttl.map(|t| expire_at(t, now)), now)
                .map(|_| ()),
            cas => self.store.delete(key, cas.unwrap_or(0), now),
        };
        let code: &[u8] = match r {
            Ok(()) => {
                if !f.invalidate {
                    self.stats.delete_hits.incr();
                }
                if f.quiet {
                    return Exec::Done;
                }
                b"HD"
            }
            Err(StoreError::Exists) => {
                self.stats.delete_misses.incr();
                b"EX"
            }
            Err(_) => {
                self.stats.delete_misses.incr();
                b"NF"
            }
        };
        room.put(code);
        put_opaque_and_key(room, m, key);
        room.put(b"\r\n");
        Exec::Done
    }
}

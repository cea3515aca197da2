//! `ms`: the meta storage command.

use super::meta::{put_meta_key, KeyBuf};
use super::{expire_at, peek, Engine, Exec};
use crate::proto::compose::Room;
use crate::proto::{ErrorKind, MetaRequest};
use crate::store::{StoreError, StoreMode, StoreRequest};
use crate::Time;

impl Engine<'_> {
    pub(super) fn exec_ms(
        &self,
        m: &MetaRequest<'_>,
        data: &[u8],
        room: &mut Room<'_, '_>,
        now: Time,
    ) -> Exec {
        self.stats.cmd_meta.incr();
        self.stats.cmd_set.incr();
        let Some(key) = KeyBuf::new(m.key, m.flags.base64) else {
            room.line(ErrorKind::MetaKeyDecode.message());
            return Exec::Done;
        };
        let key = key.get();
        let f = &m.flags;
        let mode = match f.mode {
            b'E' => StoreMode::Add,
            b'A' => StoreMode::Append,
            b'P' => StoreMode::Prepend,
            b'R' => StoreMode::Replace,
            _ => StoreMode::Set,
        };
        let cas_mode = f.cas.is_some() && matches!(mode, StoreMode::Set | StoreMode::Replace);
        let cas = match mode {
            StoreMode::Add => 0,
            _ => f.cas.unwrap_or(0),
        };
        let invalidate = f.invalidate && cas_mode;
        let mut expire = f.ttl.map_or(0, |t| expire_at(t, now));
        if invalidate && cas != 0 {
            // memcached keeps the TTL of the item a stale value replaces
            if let Some((old_cas, old_expire)) = self
                .store
                .get(key, now, peek(), |i| (i.cas(), i.expire_at()))
            {
                if cas != old_cas {
                    expire = old_expire;
                }
            }
        }
        let req = StoreRequest {
            mode,
            key,
            value: data,
            flags: f.client_flags,
            expire_at: expire,
            cas,
            invalidate,
        };
        let mut r = self.store_item(&req, cas_mode && cas == 0, now);
        if r == Err(StoreError::NotFound) && matches!(mode, StoreMode::Append | StoreMode::Prepend)
        {
            // memcached: appending to a missing item is NOT_STORED, CAS or not
            r = Err(StoreError::NotStored);
        }
        self.count_store(&r, cas_mode);
        if let (Ok(cas), true) = (&r, f.base64) {
            // memcached marks the item it allocated for a `b` request; an
            // append/prepend stores a new one without the mark
            if !matches!(mode, StoreMode::Append | StoreMode::Prepend) {
                self.store.mark_key_binary(key, *cas, now);
            }
        }
        let code: &[u8] = match r {
            Ok(_) if f.quiet => return Exec::Done,
            Ok(_) => b"HD",
            Err(StoreError::NotStored) => b"NS",
            Err(StoreError::Exists) => b"EX",
            Err(StoreError::NotFound) => b"NF",
            Err(StoreError::TooLarge) => {
                room.line(b"SERVER_ERROR object too large for cache");
                return Exec::Done;
            }
            Err(_) => {
                room.line(b"SERVER_ERROR out of memory storing object");
                return Exec::Done;
            }
        };
        room.put(code);
        for word in m.flag_words {
            match word[0] {
                b'O' => {
                    room.put_byte(b' ');
                    room.put(word);
                }
                b'k' => put_meta_key(room, key, f.base64),
                b'c' => {
                    room.put(b" c");
                    room.put_u64(*r.as_ref().unwrap_or(&0));
                }
                _ => {}
            }
        }
        room.put(b"\r\n");
        Exec::Done
    }
}

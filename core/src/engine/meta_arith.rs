//! `ma`: the meta arithmetic command.

use super::meta::{last_ttl, mc_expire_at, put_meta_key, put_opaque_and_key, ttl_left, KeyBuf};
use super::{expire_at, peek, Engine, Exec};
use crate::proto::compose::Room;
use crate::proto::{self, ErrorKind, MetaRequest};
use crate::store::{ArithRequest, StoreError};
use crate::Time;

impl Engine<'_> {
    pub(super) fn exec_ma(&self, m: &MetaRequest<'_>, room: &mut Room<'_, '_>, now: Time) -> Exec {
        self.stats.cmd_meta.incr();
        let Some(key) = KeyBuf::new(m.key, m.flags.base64) else {
            room.line(ErrorKind::MetaInvalidOrDuplicateFlag.message());
            return Exec::Done;
        };
        let key = key.get();
        let f = &m.flags;
        let incr = !matches!(f.mode, b'D' | b'-');
        let op = ArithRequest {
            incr,
            delta: f.delta.unwrap_or(1),
            cas: f.cas.unwrap_or(0),
            // a new item takes T and N in request order: the later wins
            vivify: f
                .vivify
                .map(|n| (f.initial, expire_at(last_ttl(m, n), now))),
            // protocol.txt: T updates the TTL (memcached 1.6.18 keeps it only
            // when the number is updated in place)
            expire_at: f.ttl.map(|t| expire_at(t, now)),
        };
        // memcached answers a vivifying miss even in quiet mode
        let existed = f.vivify.is_none() || self.exists(key, now);
        // a `t` before `T` reports the TTL the item had before T applied
        let old_expire = self.expire_before_ttl_update(m, f.ttl.is_some(), key, now);
        let mut r = self.store.arith(key, &op, now);
        if r == Err(StoreError::Exists) && self.value_is_empty(key, now) {
            // memcached rejects an empty value before comparing the CAS
            r = Err(StoreError::NonNumeric);
        }
        self.count_arith(incr, &r);
        if let (Some(e), false) = (
            m.late_error,
            matches!(r, Err(StoreError::NonNumeric) | Err(StoreError::NoMemory)),
        ) {
            // memcached reports an arithmetic failure before looking at flags
            self.stats.error_meta_flags.incr();
            room.line(e.message());
            return Exec::Done;
        }
        match r {
            Ok((value, cas)) => {
                if f.quiet && existed {
                    return Exec::Done;
                }
                let mut digits = [0u8; proto::number::U64_DIGITS_MAX];
                let n = proto::number::write_u64(value, &mut digits).unwrap_or(0);
                if f.value {
                    room.put(b"VA ");
                    room.put_u64(n as u64);
                } else {
                    room.put(b"HD");
                }
                // the TTL as memcached sees it at each flag: a new item
                // starts at 0 and takes T and N in order
                let started_at = self.cfg.started_at;
                let mut exp: Option<Time> = if existed { old_expire } else { Some(0) };
                for word in m.flag_words {
                    match word[0] {
                        b'T' => exp = f.ttl.map(|t| mc_expire_at(t, now, started_at)).or(exp),
                        b'N' if !existed => {
                            exp = f.vivify.map(|t| mc_expire_at(t, now, started_at)).or(exp)
                        }
                        b'c' => {
                            room.put(b" c");
                            room.put_u64(cas);
                        }
                        b't' => {
                            let e = *exp.get_or_insert_with(|| {
                                self.store
                                    .get(key, now, peek(), |i| i.expire_at())
                                    .unwrap_or(0)
                            });
                            room.put(b" t");
                            room.put_i64(ttl_left(e, now));
                        }
                        b'O' => {
                            room.put_byte(b' ');
                            room.put(word);
                        }
                        b'k' => put_meta_key(room, key, f.base64),
                        _ => {}
                    }
                }
                room.put(b"\r\n");
                if f.value {
                    room.put(&digits[..n]);
                    room.put(b"\r\n");
                }
            }
            Err(StoreError::NonNumeric) => {
                room.line(b"CLIENT_ERROR cannot increment or decrement non-numeric value");
            }
            Err(StoreError::NotFound) | Err(StoreError::Exists) => {
                room.put(if r == Err(StoreError::NotFound) {
                    b"NF"
                } else {
                    b"EX"
                });
                put_opaque_and_key(room, m, key);
                room.put(b"\r\n");
            }
            Err(StoreError::NotStored) => {
                room.put(b"NS");
                put_opaque_and_key(room, m, key);
                room.put(b"\r\n");
            }
            Err(_) => {
                room.line(b"SERVER_ERROR out of memory");
            }
        }
        Exec::Done
    }
}

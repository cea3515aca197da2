//! `incr` and `decr` (and the counters `ma` shares).

use super::{peek, Engine, Exec};
use crate::proto;
use crate::proto::compose::Room;
use crate::store::{ArithRequest, StoreError};
use crate::Time;

impl Engine<'_> {
    pub(super) fn exec_arith(
        &self,
        incr: bool,
        key: &[u8],
        delta: u64,
        noreply: bool,
        room: &mut Room<'_, '_>,
        now: Time,
    ) -> Exec {
        let op = ArithRequest {
            incr,
            delta,
            cas: 0,
            vivify: None,
            expire_at: None,
        };
        let result = self.store.arith(key, &op, now);
        self.count_arith(incr, &result);
        if noreply {
            return Exec::Done;
        }
        match result {
            Ok((v, _)) => {
                room.put_u64(v);
                room.put(b"\r\n");
            }
            Err(StoreError::NotFound) => room.line(b"NOT_FOUND"),
            Err(StoreError::NonNumeric) => {
                room.line(b"CLIENT_ERROR cannot increment or decrement non-numeric value")
            }
            Err(StoreError::BadKey) => room.line(b"CLIENT_ERROR bad command line format"),
            Err(_) => room.line(b"SERVER_ERROR out of memory"),
        }
        Exec::Done
    }

    pub(super) fn count_arith<T>(&self, incr: bool, r: &Result<T, StoreError>) {
        let s = &self.stats;
        match (incr, r) {
            (true, Ok(_)) => s.incr_hits.incr(),
            (false, Ok(_)) => s.decr_hits.incr(),
            (true, Err(StoreError::NotFound)) => s.incr_misses.incr(),
            (false, Err(StoreError::NotFound)) => s.decr_misses.incr(),
            (_, Err(StoreError::NonNumeric)) => s.arith_non_numeric.incr(),
            _ => {}
        }
    }

    /// Does memcached refuse arithmetic on `key` before comparing its CAS? It
    /// does for an empty value and for a value it stores chunked (items over
    /// half the item size limit).
    pub(super) fn value_is_empty(&self, key: &[u8], now: Time) -> bool {
        let chunked = self.cfg.item_size_max_bytes / 2;
        self.store
            .get(key, now, peek(), |i| {
                i.value().is_empty()
                    || i.key().len() + i.value().len() + proto::ITEM_OVERHEAD_BYTES > chunked
            })
            .unwrap_or(false)
    }
}

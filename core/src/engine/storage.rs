//! `set`, `add`, `replace`, `append`, `prepend`, `cas`, and a value
//! refused as too large (the caller swallows its data).

use super::meta::KeyBuf;
use super::{expire_at, peek, Engine, Exec};
use crate::proto::compose::Room;
use crate::proto::{self, StoreCommand};
use crate::store::{StoreError, StoreMode, StoreRequest};
use crate::Time;

impl Engine<'_> {
    /// Does `key` exist (without counting or bumping it)?
    pub(super) fn exists(&self, key: &[u8], now: Time) -> bool {
        self.store.get(key, now, peek(), |_| ()).is_some()
    }

    /// Stores, with memcached's rule that a CAS compare against 0 never
    /// matches (EXISTS if present, NOT_FOUND if absent).
    pub(super) fn store_item(
        &self,
        req: &StoreRequest<'_>,
        compare_zero: bool,
        now: Time,
    ) -> Result<u64, StoreError> {
        if compare_zero {
            return Err(if self.exists(req.key, now) {
                StoreError::Exists
            } else {
                StoreError::NotFound
            });
        }
        self.store.store(req, now)
    }

    pub(super) fn count_store(&self, r: &Result<u64, StoreError>, cas_mode: bool) {
        let s = &self.stats;
        match r {
            Ok(_) => {
                s.store_stored.incr();
                if cas_mode {
                    s.cas_hits.incr();
                }
            }
            Err(StoreError::NotStored) => s.store_not_stored.incr(),
            Err(StoreError::Exists) => {
                s.store_exists.incr();
                if cas_mode {
                    s.cas_badval.incr();
                }
            }
            Err(StoreError::NotFound) => {
                s.store_not_found.incr();
                if cas_mode {
                    s.cas_misses.incr();
                }
            }
            Err(StoreError::TooLarge) => s.store_too_large.incr(),
            Err(StoreError::NoMemory) => s.store_no_memory.incr(),
            Err(_) => {}
        }
    }

    pub(super) fn exec_store(
        &self,
        cmd: &StoreCommand<'_>,
        room: &mut Room<'_, '_>,
        now: Time,
    ) -> Exec {
        use proto::storage::Mode;
        self.stats.cmd_set.incr();
        let mode = match cmd.mode {
            Mode::Set | Mode::Cas => StoreMode::Set,
            Mode::Add => StoreMode::Add,
            Mode::Replace => StoreMode::Replace,
            Mode::Append => StoreMode::Append,
            Mode::Prepend => StoreMode::Prepend,
        };
        let cas_mode = cmd.mode == Mode::Cas;
        let req = StoreRequest {
            mode,
            key: cmd.key,
            value: cmd.data,
            flags: cmd.flags,
            expire_at: expire_at(cmd.exptime, now),
            cas: cmd.cas,
            invalidate: false,
        };
        let r = self.store_item(&req, cas_mode && cmd.cas == 0, now);
        self.count_store(&r, cas_mode);
        if cmd.noreply {
            return Exec::Done;
        }
        let reply: &[u8] = match r {
            Ok(_) => b"STORED",
            Err(StoreError::NotStored) => b"NOT_STORED",
            Err(StoreError::Exists) => b"EXISTS",
            Err(StoreError::NotFound) => b"NOT_FOUND",
            Err(StoreError::TooLarge) => b"SERVER_ERROR object too large for cache",
            Err(StoreError::BadKey) => b"CLIENT_ERROR bad command line format",
            Err(_) => b"SERVER_ERROR out of memory storing object",
        };
        room.line(reply);
        Exec::Done
    }

    /// A storage command whose value exceeds the item size limit: memcached
    /// swallows the data, answers `SERVER_ERROR object too large for cache`
    /// and (for `set`) unlinks the old item.
    pub(super) fn exec_too_large(
        &self,
        key: &[u8],
        base64: bool,
        unlink: bool,
        noreply: bool,
        room: &mut Room<'_, '_>,
        now: Time,
    ) -> Exec {
        if unlink {
            if let Some(k) = KeyBuf::new(key, base64) {
                let _ = self.store.delete(k.get(), 0, now);
            }
        }
        self.stats.store_too_large.incr();
        self.stats.cmd_set.incr();
        if !noreply {
            room.line(b"SERVER_ERROR object too large for cache");
        }
        Exec::Done
    }
}

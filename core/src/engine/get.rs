//! `get`, `gets`, `gat`, `gats`: the multi-key reads, resumable key by key
//! and inside a value; also the value copy that `mg` shares.

use super::session::{PartialValue, Resume};
use super::{expire_at, Engine, Exec, Session};
use crate::proto::compose::Writer;
use crate::proto::{ErrorKind, Keys};
use crate::store::{GetOptions, ItemRef};
use crate::Time;

/// Copies the rest of `value ++ "\r\n"` from `offset`; returns the new offset.
pub(super) fn put_value_from(w: &mut Writer<'_>, value: &[u8], offset: usize) -> usize {
    let mut off = offset;
    if off < value.len() {
        off += w.put_partial(&value[off..]);
    }
    if off >= value.len() {
        let crlf_done = off - value.len();
        if crlf_done < 2 {
            off += w.put_partial(&b"\r\n"[crlf_done..]);
        }
    }
    off
}

/// A `VALUE` line's bytes besides the key: `VALUE ` (6), flags (10) and
/// length and CAS (20 each), three spaces and `\r\n` make 61.
const VALUE_HEADER_MAX_BYTES: usize = 64;

impl Engine<'_> {
    /// Continues a value saved in the session: its stored bytes, then
    /// `tail` (the text protocol's `\r\n`; nothing in the binary protocol),
    /// as far as `w` has room; `Ok(true)` when complete. `Err(Exec::Close)`,
    /// counted in `resume_gone`, when the item's bytes were overwritten
    /// meanwhile.
    pub(super) fn continue_value(
        &self,
        pv: &mut PartialValue,
        tail: &[u8],
        w: &mut Writer<'_>,
        now: Time,
    ) -> Result<bool, Exec> {
        let len = pv.loc.len();
        while pv.offset < len {
            if w.remaining() == 0 {
                return Ok(false);
            }
            match self.store.read_value(pv.loc, pv.offset, w.spare(), now) {
                Ok(0) | Err(_) => {
                    self.stats.resume_gone.incr();
                    return Err(Exec::Close);
                }
                Ok(n) => {
                    let n = n.min(len - pv.offset);
                    w.advance(n);
                    pv.offset += n;
                }
            }
        }
        let tail_rest = tail.get(pv.offset - len..).unwrap_or(&[]);
        pv.offset += w.put_partial(tail_rest);
        Ok(pv.offset >= len + tail.len())
    }

    /// Continues the one value a previous call left pending (the reply of
    /// `mg` or of a binary get), followed by `tail` (see
    /// [`Engine::continue_value`]); `None` when none is pending.
    pub(super) fn resume_value(
        &self,
        session: &mut Session,
        tail: &[u8],
        w: &mut Writer<'_>,
        now: Time,
    ) -> Option<Exec> {
        let mut pv = session.resume?.value?;
        Some(match self.continue_value(&mut pv, tail, w, now) {
            Ok(true) => Exec::Done,
            Ok(false) => session.hold_value(pv),
            Err(e) => e,
        })
    }

    /// memcached's counters for one key of a get/gets (or gat/gats).
    pub(super) fn count_get(&self, touch: bool, hit: bool) {
        let s = &self.stats;
        match (touch, hit) {
            (true, true) => {
                s.cmd_touch.incr();
                s.touch_hits.incr();
            }
            (true, false) => {
                s.cmd_touch.incr();
                s.touch_misses.incr();
            }
            (false, true) => {
                s.cmd_get.incr();
                s.get_hits.incr();
            }
            (false, false) => {
                s.cmd_get.incr();
                s.get_misses.incr();
            }
        }
    }

    pub(super) fn exec_get(
        &self,
        session: &mut Session,
        keys: Keys<'_>,
        cas: bool,
        touch: Option<i32>,
        w: &mut Writer<'_>,
        now: Time,
    ) -> Exec {
        let mut start = 0u32;
        if let Some(r) = session.resume {
            start = r.item;
            if let Some(mut pv) = r.value {
                match self.continue_value(&mut pv, b"\r\n", w, now) {
                    Ok(true) => start += 1,
                    Ok(false) => {
                        session.resume = Some(Resume {
                            item: r.item,
                            value: Some(pv),
                        });
                        return Exec::Full;
                    }
                    Err(e) => return e,
                }
            }
        }
        let opts = GetOptions {
            touch: touch.map(|e| expire_at(e, now)),
            ..GetOptions::default()
        };
        if let Some(bad) = keys.first_too_long() {
            // As memcached: the keys before the long one are fetched (and
            // touched, and counted), then the error replaces the values.
            let err = ErrorKind::BadFormat.message();
            let Ok(mut room) = w.reserve(err.len() + 2) else {
                return Exec::Full;
            };
            for key in keys.iter().take(bad) {
                let hit = self.store.get(key, now, opts, |_| ()).is_some();
                self.count_get(touch.is_some(), hit);
            }
            self.count_error(ErrorKind::BadFormat);
            room.line(err);
            return Exec::Done;
        }
        let mut index = 0u32;
        for key in keys.iter() {
            if index < start {
                index += 1;
                continue;
            }
            let Ok(mut room) = w.reserve(key.len() + VALUE_HEADER_MAX_BYTES) else {
                session.resume = Some(Resume {
                    item: index,
                    value: None,
                });
                return Exec::Full;
            };
            let hit = self.store.get(key, now, opts, |item: &ItemRef<'_>| {
                let value = item.value();
                room.put(b"VALUE ");
                room.put(item.key());
                room.put_byte(b' ');
                room.put_u64(u64::from(item.flags()));
                room.put_byte(b' ');
                room.put_u64(value.len() as u64);
                if cas {
                    room.put_byte(b' ');
                    room.put_u64(item.cas());
                }
                room.put(b"\r\n");
                let off = put_value_from(room.release(), value, 0);
                if off == value.len() + 2 {
                    None
                } else {
                    Some(PartialValue {
                        loc: item.location(),
                        offset: off,
                    })
                }
            });
            self.count_get(touch.is_some(), hit.is_some());
            if let Some(Some(pv)) = hit {
                session.resume = Some(Resume {
                    item: index,
                    value: Some(pv),
                });
                return Exec::Full;
            }
            index += 1;
        }
        if w.put(b"END\r\n").is_err() {
            session.resume = Some(Resume {
                item: index,
                value: None,
            });
            return Exec::Full;
        }
        Exec::Done
    }
}

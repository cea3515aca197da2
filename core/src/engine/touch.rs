//! `touch`.

use super::{expire_at, Engine, Exec};
use crate::proto::compose::Room;
use crate::Time;

impl Engine<'_> {
    pub(super) fn exec_touch(
        &self,
        key: &[u8],
        exptime: i32,
        noreply: bool,
        room: &mut Room<'_, '_>,
        now: Time,
    ) -> Exec {
        self.stats.cmd_touch.incr();
        let reply: &[u8] = match self.store.touch(key, expire_at(exptime, now), now) {
            Ok(()) => {
                self.stats.touch_hits.incr();
                b"TOUCHED"
            }
            Err(_) => {
                self.stats.touch_misses.incr();
                b"NOT_FOUND"
            }
        };
        if !noreply {
            room.line(reply);
        }
        Exec::Done
    }
}

//! `delete`.

use super::{Engine, Exec};
use crate::proto::compose::Room;
use crate::Time;

impl Engine<'_> {
    pub(super) fn exec_delete(
        &self,
        key: &[u8],
        noreply: bool,
        room: &mut Room<'_, '_>,
        now: Time,
    ) -> Exec {
        let reply: &[u8] = match self.store.delete(key, 0, now) {
            Ok(()) => {
                self.stats.delete_hits.incr();
                b"DELETED"
            }
            Err(_) => {
                self.stats.delete_misses.incr();
                b"NOT_FOUND"
            }
        };
        if !noreply {
            room.line(reply);
        }
        Exec::Done
    }
}

//! `delete`.

use super::{Engine, Exec};
use crate::proto::compose::{Full, Writer};
use crate::Time;

impl Engine<'_> {
    pub(super) fn exec_delete(
        &self,
        key: &[u8],
        noreply: bool,
        w: &mut Writer<'_>,
        now: Time,
    ) -> Result<Exec, Full> {
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
            w.line(reply)?;
        }
        Ok(Exec::Done)
    }
}

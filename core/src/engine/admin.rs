//! `flush_all`, `version`, `verbosity` and `stats`.

use core::sync::atomic::Ordering;

use super::session::Resume;
use super::{expire_at, Engine, Exec, Session, MIN_OUTPUT_BYTES};
use crate::proto::admin::StatsCommand;
use crate::proto::binary::compose::{put_stat, ResponseHeader};
use crate::proto::binary::{opcode, Status as BinStatus};
use crate::proto::compose::{Full, Room, Writer};
use crate::proto::number::{write_u64, U64_DIGITS_MAX};
use crate::store::Eviction;
use crate::Time;

impl Engine<'_> {
    pub(super) fn exec_flush_all(
        &self,
        delay: i32,
        noreply: bool,
        room: &mut Room<'_, '_>,
        now: Time,
    ) -> Exec {
        self.stats.cmd_flush.incr();
        let at = if delay > 0 {
            expire_at(delay, now)
        } else {
            now
        };
        self.store.flush(at, now);
        if !noreply {
            room.line(b"OK");
        }
        Exec::Done
    }

    pub(super) fn exec_version(&self, room: &mut Room<'_, '_>) -> Exec {
        room.put(b"VERSION ");
        room.line(self.cfg.version.as_bytes());
        Exec::Done
    }

    pub(super) fn exec_verbosity(
        &self,
        level: u32,
        noreply: bool,
        room: &mut Room<'_, '_>,
    ) -> Exec {
        self.verbosity.store(level.min(2), Ordering::Relaxed);
        if !noreply {
            room.line(b"OK");
        }
        Exec::Done
    }

    pub(super) fn exec_stats(
        &self,
        session: &mut Session,
        cmd: StatsCommand,
        w: &mut Writer<'_>,
        now: Time,
    ) -> Exec {
        match cmd {
            StatsCommand::Reset => {
                let r = reply_line(w, b"RESET");
                if let Exec::Done = r {
                    self.reset_stats();
                }
                r
            }
            StatsCommand::DetailToggle => reply_line(w, b"OK"),
            StatsCommand::DetailDump | StatsCommand::Empty => reply_line(w, b"END"),
            StatsCommand::General
            | StatsCommand::Settings
            | StatsCommand::Slabs
            | StatsCommand::Sizes => {
                let mut sink = StatSink::new(w, session, None);
                match cmd {
                    StatsCommand::General => self.general_stats(&mut sink, now),
                    StatsCommand::Slabs => self.slabs_stats(&mut sink),
                    StatsCommand::Sizes => sink.text(b"sizes_status", b"disabled"),
                    _ => self.settings_stats(&mut sink),
                }
                sink.finish(session)
            }
        }
    }

    /// memcached's `stats`: counters since the last `stats reset`
    /// ([`Engine::reset_stats`]).
    pub(super) fn general_stats(&self, s: &mut StatSink<'_, '_>, now: Time) {
        let e = &self.stats.since(&self.stats_mark);
        let st = &self.store.stats().since(&self.store_mark);
        s.num(b"pid", u64::from(self.cfg.pid));
        s.num(
            b"uptime",
            u64::from(now.saturating_sub(self.cfg.started_at)),
        );
        s.num(b"time", u64::from(now));
        s.text(b"version", self.cfg.version.as_bytes());
        s.num(b"pointer_size", (usize::BITS) as u64);
        if let Some(u) = self.usage {
            let (user, system) = u.cpu_time_us();
            s.micros_as_seconds(b"rusage_user", user);
            s.micros_as_seconds(b"rusage_system", system);
        }
        s.num(b"max_connections", u64::from(self.cfg.max_connections));
        s.num(b"curr_connections", e.curr_connections.get());
        s.num(b"total_connections", e.total_connections.get());
        s.num(b"rejected_connections", e.rejected_connections.get());
        s.num(b"cmd_get", e.cmd_get.get());
        s.num(b"cmd_set", e.cmd_set.get());
        s.num(b"cmd_flush", e.cmd_flush.get());
        s.num(b"cmd_touch", e.cmd_touch.get());
        s.num(b"cmd_meta", e.cmd_meta.get());
        s.num(b"get_hits", e.get_hits.get());
        s.num(b"get_misses", e.get_misses.get());
        s.num(b"get_expired", st.expired_lazy.get());
        s.num(b"get_flushed", st.flushed_lazy.get());
        s.num(b"delete_misses", e.delete_misses.get());
        s.num(b"delete_hits", e.delete_hits.get());
        s.num(b"incr_misses", e.incr_misses.get());
        s.num(b"incr_hits", e.incr_hits.get());
        s.num(b"decr_misses", e.decr_misses.get());
        s.num(b"decr_hits", e.decr_hits.get());
        s.num(b"cas_misses", e.cas_misses.get());
        s.num(b"cas_hits", e.cas_hits.get());
        s.num(b"cas_badval", e.cas_badval.get());
        s.num(b"touch_hits", e.touch_hits.get());
        s.num(b"touch_misses", e.touch_misses.get());
        s.num(b"store_too_large", e.store_too_large.get());
        s.num(b"store_no_memory", e.store_no_memory.get());
        s.num(b"auth_cmds", e.auth_cmds.get());
        s.num(b"auth_errors", e.auth_errors.get());
        s.num(b"bytes_read", e.bytes_read.get());
        s.num(b"bytes_written", e.bytes_written.get());
        s.num(b"limit_maxbytes", self.memory_limit() as u64);
        s.num(b"threads", u64::from(self.cfg.threads));
        s.num(b"conn_yields", e.conn_yields.get());
        s.num(b"bytes", st.item_bytes.get());
        s.num(b"curr_items", st.items.get());
        s.num(b"total_items", st.stores.get() + st.ariths.get());
        // memcached's `evictions`: live items removed to make room, whatever
        // the cause (segment eviction or a full hash chain).
        s.num(
            b"evictions",
            st.evicted_items.get() + st.hash_full_evictions.get(),
        );
        s.num(
            b"reclaimed",
            st.expired_lazy.get() + st.expired_segment_items.get() + st.expired_passed.get(),
        );
        // Petrel's own figures, prefixed to keep memcached's namespace clean.
        s.text(b"petrel_version", self.cfg.petrel_version.as_bytes());
        e.for_each(|name, _, _, v| s.prefixed(b"petrel_", name.as_bytes(), v));
        st.for_each(|name, _, _, v| s.prefixed(b"store_", name.as_bytes(), v));
        for source in self.sources.lock().iter() {
            source.for_each_stat(&mut |prefix, name, v| {
                s.prefixed(prefix.as_bytes(), name.as_bytes(), v)
            });
        }
    }

    pub(super) fn settings_stats(&self, s: &mut StatSink<'_, '_>) {
        let c = &self.cfg;
        s.num(b"maxbytes", self.memory_limit() as u64);
        s.num(b"maxconns", u64::from(c.max_connections));
        s.num(b"tcpport", u64::from(c.tcp_port));
        s.num(b"udpport", u64::from(c.udp_port));
        s.num(
            b"verbosity",
            u64::from(self.verbosity.load(Ordering::Relaxed)),
        );
        s.text(
            b"evictions",
            if c.store.eviction == Eviction::None {
                b"off"
            } else {
                b"on"
            },
        );
        s.num(b"num_threads", u64::from(c.threads));
        s.text(b"cas_enabled", b"yes");
        s.num(b"item_size_max", c.item_size_max_bytes as u64);
        s.text(b"flush_enabled", b"yes");
        s.text(
            b"shutdown_command",
            if self.shutdown.is_some() {
                b"yes"
            } else {
                b"no"
            },
        );
        s.text(b"dump_enabled", if c.dump_enabled { b"yes" } else { b"no" });
        let (ascii, sasl) = self.auth_settings();
        s.text(b"auth_enabled_sasl", if sasl { b"yes" } else { b"no" });
        s.text(b"auth_enabled_ascii", ascii);
        s.num(b"hashpower_init", u64::from(c.store.hash_power));
        s.num(b"segment_bytes", c.store.segment_bytes as u64);
        s.num(b"shards", c.store.shards as u64);
        s.text(
            b"eviction_policy",
            match c.store.eviction {
                Eviction::None => b"none",
                Eviction::Fifo => b"fifo",
                Eviction::Random => b"random",
                Eviction::Cte => b"cte",
                Eviction::Merge { .. } => b"merge",
            },
        );
        for source in self.sources.lock().iter() {
            source.for_each_setting(&mut |name, v| s.text(name.as_bytes(), v));
        }
    }
}

/// A one-line reply, written whole (in [`MIN_OUTPUT_BYTES`] reserved) or not
/// at all.
fn reply_line(w: &mut Writer<'_>, line: &[u8]) -> Exec {
    match w.reserve(MIN_OUTPUT_BYTES) {
        Ok(mut room) => {
            room.line(line);
            Exec::Done
        }
        Err(Full) => Exec::Full,
    }
}

/// Writes `STAT name value` lines (or, with `binary`, binary-protocol stat
/// packets carrying that opaque), skipping the first `skip` (already sent)
/// and stopping at the first that does not fit. Every statistic goes
/// through [`StatSink::pair`], which writes it in the session's protocol.
pub(super) struct StatSink<'w, 'o> {
    pub(super) w: &'w mut Writer<'o>,
    pub(super) skip: u32,
    pub(super) index: u32,
    pub(super) full: bool,
    pub(super) binary: Option<u32>,
}

impl<'w, 'o> StatSink<'w, 'o> {
    /// A sink over `w` that skips the statistics an earlier call already
    /// wrote (the session's resume point); `binary` is the request's opaque
    /// for binary-protocol packets, `None` for text lines.
    pub(super) fn new(w: &'w mut Writer<'o>, session: &Session, binary: Option<u32>) -> Self {
        StatSink {
            w,
            skip: session.resume.map_or(0, |r| r.item),
            index: 0,
            full: false,
            binary,
        }
    }

    /// Ends the reply with its terminator (`END`, or an empty `stat`
    /// packet): `Exec::Full`, with where to go on saved in the session,
    /// when the output filled up first.
    pub(super) fn finish(mut self, session: &mut Session) -> Exec {
        if !self.full && self.index >= self.skip {
            let w = &mut *self.w;
            let r = match self.binary {
                Some(opaque) => {
                    ResponseHeader::empty(opcode::STAT, opaque, BinStatus::NoError).emit(w)
                }
                None => w.put(b"END\r\n"),
            };
            self.full = r.is_err();
        }
        if self.full {
            session.resume = Some(Resume {
                item: self.index,
                value: None,
            });
            return Exec::Full;
        }
        Exec::Done
    }

    /// One statistic named `prefix` + `name` with the value `v`.
    fn pair(&mut self, prefix: &[u8], name: &[u8], v: &[u8]) {
        if self.full {
            return;
        }
        if self.index >= self.skip {
            let mark = self.w.pos();
            let w = &mut *self.w;
            let r = match self.binary {
                Some(opaque) => put_stat(w, opaque, prefix, name, v),
                None => w
                    .put(b"STAT ")
                    .and_then(|_| w.put(prefix))
                    .and_then(|_| w.put(name))
                    .and_then(|_| w.put_byte(b' '))
                    .and_then(|_| w.put(v))
                    .and_then(|_| w.put(b"\r\n")),
            };
            if r.is_err() {
                self.w.rewind(mark);
                self.full = true;
                return;
            }
        }
        self.index += 1;
    }
    pub(super) fn num(&mut self, name: &[u8], v: u64) {
        self.prefixed(b"", name, v)
    }
    /// `STAT name S.UUUUUU`: microseconds as seconds with six decimals,
    /// memcached's `%ld.%06ld` for `rusage_*`.
    fn micros_as_seconds(&mut self, name: &[u8], us: u64) {
        let mut buf = [0u8; U64_DIGITS_MAX + 7];
        let n = write_u64(us / 1_000_000, &mut buf).unwrap_or(0);
        buf[n] = b'.';
        let mut f = us % 1_000_000;
        for d in buf[n + 1..n + 7].iter_mut().rev() {
            *d = b'0' + (f % 10) as u8;
            f /= 10;
        }
        self.pair(b"", name, &buf[..n + 7])
    }
    pub(super) fn text(&mut self, name: &[u8], v: &[u8]) {
        self.pair(b"", name, v)
    }
    fn prefixed(&mut self, prefix: &[u8], name: &[u8], v: u64) {
        let mut digits = [0u8; U64_DIGITS_MAX];
        let n = write_u64(v, &mut digits).unwrap_or(0);
        self.pair(prefix, name, &digits[..n])
    }
}

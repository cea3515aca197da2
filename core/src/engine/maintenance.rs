//! Operator commands that clients and tools send: `cache_memlimit`,
//! `shutdown` (memcached's `-A`), `lru_crawler metadump` (memcached-tool's
//! `dump`), and `stats slabs` / `stats sizes`.

use core::sync::atomic::Ordering;

use super::admin::StatSink;
use super::session::Resume;
use super::{Engine, Exec, Session, MIN_OUTPUT_BYTES};
use crate::proto::admin::{MetadumpScope, ShutdownMode};
use crate::proto::compose::{Room, Writer};
use crate::proto::ErrorKind;
use crate::store::{ItemRef, WalkCursor};
use crate::Time;

/// What the host does when a client sends `shutdown` or `shutdown
/// graceful` and the server allows it (memcached's `-A`): stop the server
/// as a SIGTERM would. Called on a worker thread while it executes the
/// request; it must return at once (for example by signalling the thread
/// that runs the shutdown). Without a hook installed
/// ([`Engine::set_shutdown_hook`]) `shutdown` answers memcached's `ERROR:
/// shutdown not enabled`.
pub trait ShutdownHook: Sync {
    /// Begin stopping the server; `graceful` for `shutdown graceful`.
    fn shutdown(&self, graceful: bool);
}

/// What the host does on `refresh_certs`: read the TLS certificate files
/// again, so that new handshakes use them (memcached's `-Z`). Called on a
/// worker thread while it executes the request. Without a hook installed
/// ([`Engine::set_cert_reload`]) `refresh_certs` answers memcached's
/// `Error TLS not enabled`.
pub trait CertReload: Sync {
    /// Reloads. On failure writes the reason, memcached's text without the
    /// line end, into `message` (truncated to fit) and returns its length.
    fn reload(&self, message: &mut [u8]) -> Result<(), usize>;
}

/// The longest `refresh_certs` error line Petrel sends, in bytes (memcached
/// allows a path of 4096 bytes; a longer message is cut).
const REFRESH_CERTS_MESSAGE_MAX_BYTES: usize = super::MIN_OUTPUT_BYTES - 2;

/// memcached refuses limits below 8 MiB.
const MEMLIMIT_MIN_MIB: u32 = 8;
/// memcached takes a larger number for a byte count given by mistake.
const MEMLIMIT_MAX_MIB: u32 = 1_000_000_000;

/// The longest metadump line: `key=` with a 250-byte key percent-encoded,
/// and every field at its widest.
const METADUMP_LINE_MAX_BYTES: usize = 4
    + 3 * crate::proto::KEY_MAX_BYTES
    + " exp=-2147483648 la=4294967295 cas=18446744073709551615 fetch=yes cls=0 size=18446744073709551615\n".len();
const METADUMP_END: &[u8] = b"END\r\n";

/// memcached's item size accounting (`ITEM_ntotal`): a 48-byte header, the
/// 8-byte CAS, the key and its NUL, the value and its `\r\n`, and 4 bytes
/// of client flags when they are not 0.
fn memcached_item_size(item: &ItemRef<'_>) -> u64 {
    let flags = if item.flags() == 0 { 0 } else { 4 };
    (crate::proto::ITEM_OVERHEAD_BYTES + item.key().len() + item.value().len() + flags) as u64
}

/// memcached's `uriencode`: every byte but ASCII letters, digits and
/// `-._~` as `%XX` (upper-case hex).
fn put_uriencoded(w: &mut Writer<'_>, key: &[u8]) -> Result<(), crate::proto::compose::Full> {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in key {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            w.put_byte(b)?;
        } else {
            w.put(&[b'%', HEX[(b >> 4) as usize], HEX[(b & 15) as usize]])?;
        }
    }
    Ok(())
}

/// One metadump line, as memcached 1.6.18 writes it (ending in `\n` only).
/// `cls=0`: Petrel has no slab classes.
fn put_metadump_line(
    w: &mut Writer<'_>,
    item: &ItemRef<'_>,
) -> Result<(), crate::proto::compose::Full> {
    w.put(b"key=")?;
    put_uriencoded(w, item.key())?;
    w.put(b" exp=")?;
    match item.expire_at() {
        0 => w.put(b"-1")?,
        at => w.put_u64(u64::from(at))?,
    }
    w.put(b" la=")?;
    w.put_u64(u64::from(item.last_access()))?;
    w.put(b" cas=")?;
    w.put_u64(item.cas())?;
    w.put(if item.fetched() {
        b" fetch=yes"
    } else {
        b" fetch=no"
    })?;
    w.put(b" cls=0 size=")?;
    w.put_u64(memcached_item_size(item))?;
    w.put_byte(b'\n')
}

impl<'a> Engine<'a> {
    /// Lets clients stop the server with `shutdown` (memcached's `-A`):
    /// `hook` is called when one does.
    pub fn set_shutdown_hook(&mut self, hook: &'a dyn ShutdownHook) {
        self.shutdown = Some(hook);
    }

    /// Lets clients reload the TLS certificates with `refresh_certs`.
    pub fn set_cert_reload(&mut self, hook: &'a dyn CertReload) {
        self.cert_reload = Some(hook);
    }

    /// `refresh_certs`: `OK` (none with `noreply`) or the reason it failed,
    /// which memcached sends even with `noreply`.
    pub(super) fn exec_refresh_certs(&self, noreply: bool, room: &mut Room<'_, '_>) -> Exec {
        let Some(hook) = self.cert_reload else {
            room.line(b"Error TLS not enabled");
            return Exec::Done;
        };
        let mut message = [0u8; REFRESH_CERTS_MESSAGE_MAX_BYTES];
        match hook.reload(&mut message) {
            Ok(()) => {
                if !noreply {
                    room.line(b"OK");
                }
            }
            Err(n) => room.line(&message[..n.min(message.len())]),
        }
        Exec::Done
    }

    /// The item memory limit in bytes: `-m` unless changed by
    /// `cache_memlimit` (reported as `limit_maxbytes` and `maxbytes`).
    pub fn memory_limit(&self) -> usize {
        self.memory_limit.load(Ordering::Relaxed)
    }

    pub(super) fn exec_shutdown(&self, mode: ShutdownMode, room: &mut Room<'_, '_>) -> Exec {
        let Some(hook) = self.shutdown else {
            room.line(ErrorKind::ShutdownDisabled.message());
            self.count_error(ErrorKind::ShutdownDisabled);
            return Exec::Done;
        };
        match mode {
            ShutdownMode::Invalid => {
                room.line(b"CLIENT_ERROR invalid shutdown mode");
                self.stats.error_bad_argument.incr();
                Exec::Done
            }
            // memcached closes the connection without a reply.
            ShutdownMode::Immediate | ShutdownMode::Graceful => {
                self.stats.shutdown_requests.incr();
                hook.shutdown(mode == ShutdownMode::Graceful);
                Exec::Close
            }
        }
    }

    /// `cache_memlimit`: memcached's replies for a limit under 8 MiB or a
    /// byte count; a limit above the arena (`-m`) cannot be reached and
    /// gets memcached's error for a limit it cannot set; anything else
    /// shrinks or grows the memory the store uses within the arena
    /// ([`Store::set_memory_limit`](crate::store::Store::set_memory_limit)),
    /// evicting down to the new limit.
    pub(super) fn exec_cache_memlimit(
        &self,
        megabytes: u32,
        noreply: bool,
        room: &mut Room<'_, '_>,
        now: Time,
    ) -> Exec {
        let bytes = usize::try_from(u64::from(megabytes) << 20).unwrap_or(usize::MAX);
        let reply: &[u8] = if megabytes < MEMLIMIT_MIN_MIB {
            b"MEMLIMIT_TOO_SMALL cannot set maxbytes to less than 8m"
        } else if megabytes > MEMLIMIT_MAX_MIB {
            b"MEMLIMIT_ADJUST_FAILED input value is megabytes not bytes"
        } else if bytes > self.cfg.store.item_memory_bytes {
            b"MEMLIMIT_ADJUST_FAILED out of bounds or unable to adjust"
        } else {
            self.store.set_memory_limit(bytes, now);
            self.memory_limit.store(bytes, Ordering::Relaxed);
            b"OK"
        };
        if reply == b"OK" {
            self.stats.memlimit_set.incr();
        } else {
            self.stats.memlimit_refused.incr();
        }
        if !noreply {
            room.line(reply);
        }
        Exec::Done
    }

    /// `lru_crawler metadump`: one line per live item, then `END`;
    /// resumable across output buffers (the walk's cursor is kept in the
    /// session).
    pub(super) fn exec_metadump(
        &self,
        session: &mut Session,
        scope: MetadumpScope,
        w: &mut Writer<'_>,
        now: Time,
    ) -> Exec {
        let line = |w: &mut Writer<'_>, text: &[u8]| match w.reserve(MIN_OUTPUT_BYTES) {
            Ok(mut room) => {
                room.line(text);
                Exec::Done
            }
            Err(_) => Exec::Full,
        };
        if !self.cfg.dump_enabled {
            return line(w, b"ERROR metadump not allowed");
        }
        match scope {
            MetadumpScope::BadClass => return line(w, b"BADCLASS invalid class id"),
            // No item belongs to a slab class.
            MetadumpScope::Classes => return line(w, b"END"),
            MetadumpScope::All => {}
        }
        let from = match session.resume {
            Some(_) => session.walk,
            None => WalkCursor::default(),
        };
        if w.remaining() < METADUMP_END.len() {
            return Exec::Full;
        }
        let mut listed = 0u64;
        let next = self.store.walk(from, now, |item| {
            if w.remaining() < METADUMP_LINE_MAX_BYTES + METADUMP_END.len() {
                return false;
            }
            // Cannot fail: the room was checked above.
            let _ = put_metadump_line(w, item);
            listed += 1;
            true
        });
        self.stats.metadump_items.add(listed);
        match next {
            Some(cursor) => {
                session.walk = cursor;
                session.resume = Some(Resume {
                    item: 0,
                    value: None,
                });
                Exec::Full
            }
            None => {
                // Room for it was kept after every line.
                let _ = w.put(METADUMP_END);
                Exec::Done
            }
        }
    }

    /// `stats slabs`: no slab classes; the segment memory in use as
    /// memcached's `total_malloced`.
    pub(super) fn slabs_stats(&self, s: &mut StatSink<'_, '_>) {
        let used = self.store.stats().segments_used.get();
        s.num(b"active_slabs", 0);
        s.num(
            b"total_malloced",
            used.saturating_mul(self.cfg.store.segment_bytes as u64),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::compose::Writer;

    #[test]
    fn keys_are_uriencoded_as_memcached_does() {
        let mut buf = [0u8; 64];
        let mut w = Writer::new(&mut buf);
        put_uriencoded(&mut w, b"a b%c/~-._Z9\xff").unwrap();
        assert_eq!(w.written(), b"a%20b%25c%2F~-._Z9%FF");
    }

    /// Runs `input` to completion through output buffers of `out_bytes`,
    /// resuming as a front end does; returns everything written.
    fn run(e: &Engine<'_>, input: &[u8], out_bytes: usize) -> std::vec::Vec<u8> {
        let mut s = Session::new(crate::Transport::Tcp);
        let mut out = std::vec![0u8; out_bytes];
        let mut all = std::vec::Vec::new();
        let mut pos = 0;
        for _ in 0..100_000 {
            let p = e.process(&mut s, &input[pos..], &mut out, 1000);
            all.extend_from_slice(&out[..p.written]);
            pos += p.consumed;
            match p.status {
                super::super::Status::OutputFull => continue,
                _ => return all,
            }
        }
        panic!("no end");
    }

    fn engine(arena: &mut [u8]) -> Engine<'_> {
        Engine::new(&config(), arena).unwrap()
    }

    fn config() -> super::super::EngineConfig {
        super::super::EngineConfig {
            store: crate::store::StoreConfig {
                item_memory_bytes: 4 << 20,
                ..crate::store::StoreConfig::default()
            },
            ..super::super::EngineConfig::default()
        }
    }

    struct Reload(bool);
    impl CertReload for Reload {
        fn reload(&self, message: &mut [u8]) -> Result<(), usize> {
            if self.0 {
                return Ok(());
            }
            let text = b"Error loading the key: /k : bad";
            message[..text.len()].copy_from_slice(text);
            Err(text.len())
        }
    }

    #[test]
    fn refresh_certs_answers_as_memcached() {
        let (ok, bad) = (Reload(true), Reload(false));
        let mut arena = std::vec![0u8; Engine::required_bytes(&config()).unwrap()];
        let mut e = engine(&mut arena);
        let input = b"refresh_certs\r\nrefresh_certs noreply\r\nrefresh_certs a b\r\n";
        assert_eq!(run(&e, input, 4096), b"Error TLS not enabled\r\n".repeat(3));
        e.set_cert_reload(&ok);
        assert_eq!(run(&e, input, 4096), b"OK\r\nOK\r\n");
        e.set_cert_reload(&bad);
        assert_eq!(
            run(&e, b"refresh_certs noreply\r\n", 4096),
            b"Error loading the key: /k : bad\r\n"
        );
    }

    #[test]
    fn metadump_lists_every_item_across_small_buffers() {
        let mut arena = std::vec![0u8; Engine::required_bytes(&config()).unwrap()];
        let e = engine(&mut arena);
        let mut input = std::vec::Vec::new();
        let long_key = [b'%'; crate::proto::KEY_MAX_BYTES];
        input.extend_from_slice(b"set ");
        input.extend_from_slice(&long_key);
        input.extend_from_slice(b" 4294967295 2000000000 1\r\nx\r\n");
        for i in 0..300 {
            input.extend_from_slice(std::format!("set key:{i} 0 0 1\r\ny\r\n").as_bytes());
        }
        input.extend_from_slice(b"get key:7\r\n");
        run(&e, &input, 64 << 10);
        // The smallest output a front end may pass, so every line resumes often.
        let dump = run(&e, b"lru_crawler metadump all\r\n", MIN_OUTPUT_BYTES);
        assert!(dump.ends_with(b"\nEND\r\n"));
        let text = std::string::String::from_utf8(dump).unwrap();
        let lines: std::vec::Vec<&str> = text.lines().filter(|l| *l != "END").collect();
        assert_eq!(lines.len(), 301, "{text}");
        let long = lines
            .iter()
            .find(|l| l.starts_with("key=%25%25"))
            .expect("the long key");
        assert!(long.len() < METADUMP_LINE_MAX_BYTES, "{}", long.len());
        assert!(long.contains(" exp=2000000000 "), "{long}");
        assert!(long.ends_with(" fetch=no cls=0 size=314"), "{long}");
        assert!(lines
            .iter()
            .any(|l| l.starts_with("key=key%3A7 exp=-1 la=1000 ") && l.contains(" fetch=yes ")));
        let mut keys: std::vec::Vec<&str> =
            lines.iter().map(|l| l.split(' ').next().unwrap()).collect();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), 301, "each item once");
        assert_eq!(e.stats().metadump_items.get(), 301);
    }
}

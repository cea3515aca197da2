//! Executing memcached's binary protocol ([`crate::proto::binary`]) against
//! the same store and counters as the text protocol.
//!
//! A session speaks binary when its first byte says so (see
//! [`BindingProtocol`](crate::proto::binary::BindingProtocol)); from then on every request goes through
//! [`Engine::process_binary`]. Replies follow memcached 1.6.18's
//! `proto_bin.c`: the same statuses and messages, the request's opcode and
//! opaque echoed, the item's CAS in the header, quiet commands silent on
//! success (`getq`/`getkq`/`gatq`/`gatkq`: on a miss). A large value is
//! copied across output buffers like the text protocol's (the session
//! remembers the offset); so is a `stat` reply.
//!
//! memcached counts binary commands in the same `cmd_get`, `get_hits`,
//! `cmd_set`, ... statistics as text ones; so does Petrel, and
//! `binary_requests` / `binary_errors` count the protocol's own traffic.

use super::auth::AuthStep;
use super::session::PartialValue;
use super::{admin::StatSink, Engine, Exec, Progress, Session, Status};
use super::{MIN_OUTPUT_BYTES, RELATIVE_EXPTIME_MAX_SECONDS};
use crate::histogram::CommandClass;
use crate::proto::binary::compose::{error_len, put_error, put_value, ResponseHeader};
use crate::proto::binary::{
    self, opcode, Command, ParseError, Parsed, Refusal, Request, Status as BinStatus,
    StoreMode as BinMode, ARITH_NO_CREATE, HEADER_BYTES,
};
use crate::proto::compose::{Full, Writer};
use crate::proto::KEY_MAX_BYTES;
use crate::store::{ArithRequest, GetOptions, ItemRef, StoreError, StoreMode, StoreRequest};
use crate::Time;

/// Converts a binary-protocol expiration (unsigned 32 bits, memcached's
/// `realtime()`) to an absolute expiry (0 = never).
pub fn expire_at_u32(exptime: u32, now: Time) -> Time {
    if exptime == 0 {
        0
    } else if exptime > RELATIVE_EXPTIME_MAX_SECONDS as u32 {
        if exptime <= now {
            super::EXPIRED
        } else {
            exptime
        }
    } else {
        now.saturating_add(exptime)
    }
}

/// Bytes a get reply needs before its value: header, flags, key.
const GET_HEAD_BYTES: usize = HEADER_BYTES + 4 + KEY_MAX_BYTES;

fn class_of(c: &Command<'_>) -> CommandClass {
    match c {
        Command::Get { touch: None, .. } => CommandClass::Get,
        Command::Get { .. } => CommandClass::Gat,
        Command::Touch { .. } => CommandClass::Touch,
        Command::Store { .. } | Command::TooLarge { .. } => CommandClass::Set,
        Command::Delete { .. } => CommandClass::Delete,
        Command::Arith { .. } => CommandClass::Arith,
        Command::Flush { .. }
        | Command::Noop
        | Command::Version
        | Command::Quit { .. }
        | Command::Stat { .. } => CommandClass::Admin,
    }
}

/// The `stat` groups memcached 1.6.18 answers over the binary protocol.
enum StatGroup {
    General,
    Settings,
    /// `detail on`, `detail off`: only the terminator.
    Terminator,
    /// `reset`: the counters `stats` prints start again from zero
    /// ([`Engine::reset_stats`]), then the terminator.
    Reset,
    /// `detail dump`: one `detailed` packet, then the terminator.
    DetailDump,
    /// `items`, `slabs`, `sizes`: Petrel has no slab classes.
    Empty,
    NotFound,
}

fn stat_group(group: &[u8]) -> StatGroup {
    // memcached compares `reset`, `settings` and `detail` by prefix, the
    // rest exactly
    if group.is_empty() {
        StatGroup::General
    } else if group.starts_with(b"reset") {
        StatGroup::Reset
    } else if group.starts_with(b"settings") {
        StatGroup::Settings
    } else if let Some(rest) = group.strip_prefix(b"detail") {
        if rest.starts_with(b" dump") {
            StatGroup::DetailDump
        } else if rest.starts_with(b" on") || rest.starts_with(b" off") {
            StatGroup::Terminator
        } else {
            StatGroup::NotFound
        }
    } else {
        match group {
            b"items" | b"slabs" | b"sizes" | b"sizes_enable" | b"sizes_disable" => StatGroup::Empty,
            _ => StatGroup::NotFound,
        }
    }
}

impl Engine<'_> {
    /// [`Engine::process`] for a binary-protocol session.
    pub(super) fn process_binary(
        &self,
        session: &mut Session,
        input: &[u8],
        out: &mut [u8],
        now: Time,
    ) -> Progress {
        let mut w = Writer::new(out);
        let mut pos = 0usize;
        let status = loop {
            if !self.swallow_owed(session, input, &mut pos) {
                break Status::NeedInput;
            }
            if let Some(step) = self.sasl_gate(session, &input[pos..], &mut w) {
                match step {
                    AuthStep::NeedInput => break Status::NeedInput,
                    AuthStep::Full => break Status::OutputFull,
                    AuthStep::Close => break Status::Close,
                    AuthStep::Done { consumed } => {
                        pos += consumed;
                        continue;
                    }
                }
            }
            match binary::parse(&input[pos..], self.cfg.item_size_max_bytes) {
                Parsed::NeedMore => break Status::NeedInput,
                Parsed::Error(Refusal::BadMagic) => {
                    self.stats.binary_errors.incr();
                    self.stats.error_closed.incr();
                    session.completed.add(CommandClass::Invalid);
                    session.resume = None;
                    break Status::Close;
                }
                Parsed::Error(Refusal::Reply(e)) => {
                    if w.remaining() < error_len(e.status) {
                        break Status::OutputFull;
                    }
                    self.count_binary_error(&e);
                    session.completed.add(CommandClass::Invalid);
                    // space was checked above
                    let _ = put_error(&mut w, e.opcode, e.opaque, e.status);
                    if e.close {
                        session.resume = None;
                        break Status::Close;
                    }
                    session.skip(input, &mut pos, e.skip);
                }
                Parsed::Request { request, consumed } => {
                    let exec = self.execute_binary(session, &request, &mut w, now);
                    if let Some(status) = self.settle(
                        session,
                        exec,
                        class_of(&request.command),
                        consumed,
                        &mut pos,
                        w.pos(),
                    ) {
                        break status;
                    }
                }
            }
        };
        Progress {
            consumed: pos,
            written: w.pos(),
            status,
        }
    }

    fn count_binary_error(&self, e: &ParseError) {
        self.stats.binary_errors.incr();
        match e.status {
            BinStatus::UnknownCommand => self.stats.error_unknown_command.incr(),
            _ => self.stats.error_bad_format.incr(),
        }
        if e.close {
            self.stats.error_closed.incr();
        }
    }

    fn execute_binary(
        &self,
        session: &mut Session,
        req: &Request<'_>,
        w: &mut Writer<'_>,
        now: Time,
    ) -> Exec {
        let resumable = matches!(req.command, Command::Get { .. } | Command::Stat { .. });
        if !resumable && w.remaining() < MIN_OUTPUT_BYTES {
            return Exec::Full;
        }
        if session.resume.is_none() {
            self.stats.binary_requests.incr();
        }
        let r = match req.command {
            Command::Get {
                key,
                quiet,
                with_key,
                touch,
            } => return self.bin_get(session, req, key, quiet, with_key, touch, w, now),
            Command::Stat { group } => return self.bin_stat(session, req, group, w, now),
            Command::Touch { key, exptime } => self.bin_touch(req, key, exptime, w, now),
            Command::Store {
                mode,
                key,
                flags,
                exptime,
                value,
                quiet,
            } => self.bin_store(req, mode, key, flags, exptime, value, quiet, w, now),
            Command::TooLarge {
                key,
                unlink,
                swallow,
            } => {
                if unlink {
                    let _ = self.store.delete(key, 0, now);
                }
                self.stats.store_too_large.incr();
                self.stats.cmd_set.incr();
                session.swallow = swallow;
                put_error(w, req.opcode, req.opaque, BinStatus::TooLarge)
            }
            Command::Delete { key, quiet } => self.bin_delete(req, key, quiet, w, now),
            Command::Arith {
                incr,
                key,
                delta,
                initial,
                exptime,
                quiet,
            } => self.bin_arith(req, incr, key, delta, initial, exptime, quiet, w, now),
            Command::Flush { exptime, quiet } => {
                self.stats.cmd_flush.incr();
                let at = if exptime > 0 {
                    expire_at_u32(exptime, now)
                } else {
                    now
                };
                self.store.flush(at, now);
                if quiet {
                    Ok(())
                } else {
                    put_value(w, req.opcode, req.opaque, 0, b"")
                }
            }
            Command::Noop => put_value(w, req.opcode, req.opaque, 0, b""),
            Command::Version => {
                put_value(w, req.opcode, req.opaque, 0, self.cfg.version.as_bytes())
            }
            Command::Quit { quiet } => {
                if !quiet {
                    let _ = put_value(w, req.opcode, req.opaque, 0, b"");
                }
                return Exec::Close;
            }
        };
        match r {
            Ok(()) => Exec::Done,
            Err(Full) => Exec::Full,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn bin_get(
        &self,
        session: &mut Session,
        req: &Request<'_>,
        key: &[u8],
        quiet: bool,
        with_key: bool,
        touch: Option<u32>,
        w: &mut Writer<'_>,
        now: Time,
    ) -> Exec {
        // the binary protocol has no `\r\n` after a value
        if let Some(exec) = self.resume_value(session, b"", w, now) {
            return exec;
        }
        if w.remaining() < GET_HEAD_BYTES {
            return Exec::Full;
        }
        let opts = GetOptions {
            touch: touch.map(|e| expire_at_u32(e, now)),
            ..GetOptions::default()
        };
        let hit = self.store.get(key, now, opts, |item: &ItemRef<'_>| {
            let value = item.value();
            let key_len = if with_key { item.key().len() } else { 0 };
            let h = ResponseHeader {
                opcode: req.opcode,
                status: BinStatus::NoError,
                extras_len: 4,
                key_len: key_len as u16,
                body_len: (4 + key_len + value.len()) as u32,
                opaque: req.opaque,
                cas: item.cas(),
            };
            // GET_HEAD_BYTES were checked above
            let _ = h.emit(w);
            let _ = w.put(&item.flags().to_be_bytes());
            if with_key {
                let _ = w.put(item.key());
            }
            let n = w.put_partial(value);
            if n == value.len() {
                None
            } else {
                Some(PartialValue {
                    loc: item.location(),
                    offset: n,
                })
            }
        });
        self.count_get(touch.is_some(), hit.is_some());
        match hit {
            Some(Some(pv)) => session.hold_value(pv),
            Some(None) => Exec::Done,
            None => {
                if quiet {
                    return Exec::Done;
                }
                let r = if with_key {
                    let mut h =
                        ResponseHeader::empty(req.opcode, req.opaque, BinStatus::KeyNotFound);
                    h.key_len = key.len() as u16;
                    h.body_len = key.len() as u32;
                    h.emit(w).and_then(|_| w.put(key))
                } else {
                    put_error(w, req.opcode, req.opaque, BinStatus::KeyNotFound)
                };
                // GET_HEAD_BYTES were checked above
                let _ = r;
                Exec::Done
            }
        }
    }

    fn bin_touch(
        &self,
        req: &Request<'_>,
        key: &[u8],
        exptime: u32,
        w: &mut Writer<'_>,
        now: Time,
    ) -> Result<(), Full> {
        let opts = GetOptions {
            touch: Some(expire_at_u32(exptime, now)),
            count: false,
            ..GetOptions::default()
        };
        let hit = self
            .store
            .get(key, now, opts, |item| (item.flags(), item.cas()));
        self.count_get(true, hit.is_some());
        match hit {
            Some((flags, cas)) => {
                let h = ResponseHeader {
                    opcode: req.opcode,
                    status: BinStatus::NoError,
                    extras_len: 4,
                    key_len: 0,
                    body_len: 4,
                    opaque: req.opaque,
                    cas,
                };
                h.emit(w)?;
                w.put(&flags.to_be_bytes())
            }
            None => put_error(w, req.opcode, req.opaque, BinStatus::KeyNotFound),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn bin_store(
        &self,
        req: &Request<'_>,
        mode: BinMode,
        key: &[u8],
        flags: u32,
        exptime: u32,
        value: &[u8],
        quiet: bool,
        w: &mut Writer<'_>,
        now: Time,
    ) -> Result<(), Full> {
        self.stats.cmd_set.incr();
        // memcached turns set/add/replace with a CAS into a compare-and-swap;
        // append/prepend keep their mode and compare a non-zero CAS
        let cas_mode =
            req.cas != 0 && matches!(mode, BinMode::Set | BinMode::Add | BinMode::Replace);
        let store_mode = match mode {
            _ if cas_mode => StoreMode::Set,
            BinMode::Set => StoreMode::Set,
            BinMode::Add => StoreMode::Add,
            BinMode::Replace => StoreMode::Replace,
            BinMode::Append => StoreMode::Append,
            BinMode::Prepend => StoreMode::Prepend,
        };
        let sreq = StoreRequest {
            mode: store_mode,
            key,
            value,
            flags,
            expire_at: expire_at_u32(exptime, now),
            cas: req.cas,
            invalidate: false,
        };
        let mut r = self.store_item(&sreq, false, now);
        if cas_mode && r == Err(StoreError::NotStored) {
            r = Err(StoreError::NotFound);
        }
        self.count_store(&r, cas_mode);
        let status = match r {
            Ok(cas) => {
                if quiet {
                    return Ok(());
                }
                let mut h = ResponseHeader::empty(req.opcode, req.opaque, BinStatus::NoError);
                h.cas = cas;
                return h.emit(w);
            }
            Err(StoreError::Exists) => BinStatus::KeyExists,
            // append/prepend of a missing key is NOT_STORED in memcached, with a CAS too
            Err(StoreError::NotFound) if matches!(mode, BinMode::Append | BinMode::Prepend) => {
                BinStatus::NotStored
            }
            Err(StoreError::NotFound) => BinStatus::KeyNotFound,
            // NOT_STORED, too large, out of memory: by command, as memcached
            Err(_) => match mode {
                _ if cas_mode => BinStatus::NotStored,
                BinMode::Add => BinStatus::KeyExists,
                BinMode::Replace => BinStatus::KeyNotFound,
                _ => BinStatus::NotStored,
            },
        };
        put_error(w, req.opcode, req.opaque, status)
    }

    fn bin_delete(
        &self,
        req: &Request<'_>,
        key: &[u8],
        quiet: bool,
        w: &mut Writer<'_>,
        now: Time,
    ) -> Result<(), Full> {
        let status = match self.store.delete(key, req.cas, now) {
            Ok(()) => {
                self.stats.delete_hits.incr();
                if quiet {
                    return Ok(());
                }
                return put_value(w, req.opcode, req.opaque, 0, b"");
            }
            Err(StoreError::Exists) => BinStatus::KeyExists,
            Err(_) => {
                self.stats.delete_misses.incr();
                BinStatus::KeyNotFound
            }
        };
        put_error(w, req.opcode, req.opaque, status)
    }

    #[allow(clippy::too_many_arguments)]
    fn bin_arith(
        &self,
        req: &Request<'_>,
        incr: bool,
        key: &[u8],
        delta: u64,
        initial: u64,
        exptime: u32,
        quiet: bool,
        w: &mut Writer<'_>,
        now: Time,
    ) -> Result<(), Full> {
        let op = ArithRequest {
            incr,
            delta,
            cas: req.cas,
            vivify: if exptime == ARITH_NO_CREATE {
                None
            } else {
                Some((initial, expire_at_u32(exptime, now)))
            },
            expire_at: None,
        };
        let mut r = self.store.arith(key, &op, now);
        if r == Err(StoreError::Exists) && self.value_is_empty(key, now) {
            // memcached rejects an empty value before comparing the CAS
            r = Err(StoreError::NonNumeric);
        }
        self.count_arith(incr, &r);
        let status = match r {
            Ok((value, cas)) => {
                if quiet {
                    return Ok(());
                }
                return put_value(w, req.opcode, req.opaque, cas, &value.to_be_bytes());
            }
            Err(StoreError::NotFound) => BinStatus::KeyNotFound,
            Err(StoreError::NonNumeric) => BinStatus::NonNumeric,
            Err(StoreError::Exists) => BinStatus::KeyExists,
            Err(StoreError::NotStored) => BinStatus::NotStored,
            Err(_) => BinStatus::OutOfMemory,
        };
        put_error(w, req.opcode, req.opaque, status)
    }

    fn bin_stat(
        &self,
        session: &mut Session,
        req: &Request<'_>,
        group: &[u8],
        w: &mut Writer<'_>,
        now: Time,
    ) -> Exec {
        let terminator = ResponseHeader::empty(opcode::STAT, req.opaque, BinStatus::NoError);
        let group = stat_group(group);
        let simple = match group {
            StatGroup::NotFound => {
                Some(put_error(w, req.opcode, req.opaque, BinStatus::KeyNotFound))
            }
            StatGroup::Reset => {
                if w.remaining() < MIN_OUTPUT_BYTES {
                    return Exec::Full;
                }
                self.reset_stats();
                Some(terminator.emit(w))
            }
            StatGroup::Terminator | StatGroup::Empty => Some(terminator.emit(w)),
            StatGroup::DetailDump => {
                if w.remaining() < MIN_OUTPUT_BYTES {
                    return Exec::Full;
                }
                // memcached's dump without prefixes is "END\r\n"
                let _ = binary::compose::put_stat(w, req.opaque, b"", b"detailed", b"END\r\n");
                Some(terminator.emit(w))
            }
            StatGroup::General | StatGroup::Settings => None,
        };
        if let Some(r) = simple {
            return match r {
                Ok(()) => Exec::Done,
                Err(Full) => Exec::Full,
            };
        }
        let mut sink = StatSink::new(w, session, Some(req.opaque));
        if matches!(group, StatGroup::General) {
            self.general_stats(&mut sink, now);
        } else {
            self.settings_stats(&mut sink);
        }
        sink.finish(session)
    }
}

#[cfg(test)]
mod tests {
    use std::vec::Vec;

    use super::super::{Engine, EngineConfig, Session, Status, MIN_OUTPUT_BYTES};
    use crate::proto::binary::{opcode, Header, HEADER_BYTES};
    use crate::store::StoreConfig;
    use crate::Transport;

    fn request(op: u8, key: &[u8], extras: &[u8], value: &[u8], opaque: u32) -> Vec<u8> {
        let mut b = std::vec![0x80, op];
        b.extend_from_slice(&(key.len() as u16).to_be_bytes());
        b.push(extras.len() as u8);
        b.extend_from_slice(&[0, 0, 0]);
        b.extend_from_slice(&((extras.len() + key.len() + value.len()) as u32).to_be_bytes());
        b.extend_from_slice(&opaque.to_be_bytes());
        b.extend_from_slice(&[0; 8]);
        b.extend_from_slice(extras);
        b.extend_from_slice(key);
        b.extend_from_slice(value);
        b
    }

    /// Runs `input` to completion through output areas of `out_bytes`, as a front end does.
    fn drive(e: &Engine<'_>, s: &mut Session, input: &[u8], out_bytes: usize) -> Vec<u8> {
        let mut replies = Vec::new();
        let mut pos = 0;
        let mut out = std::vec![0u8; out_bytes];
        for _ in 0..100_000 {
            let p = e.process(s, &input[pos..], &mut out, 1000);
            replies.extend_from_slice(&out[..p.written]);
            pos += p.consumed;
            if p.status != Status::OutputFull {
                break;
            }
        }
        assert_eq!(pos, input.len());
        replies
    }

    /// (opcode, status, key, value) of each response packet; panics on a malformed one.
    fn packets(mut b: &[u8]) -> Vec<(u8, u16, Vec<u8>, Vec<u8>)> {
        let mut v = Vec::new();
        while !b.is_empty() {
            let h = Header::new_checked(b).expect("whole header");
            assert_eq!(h.magic(), 0x81);
            let (el, kl) = (h.extras_len() as usize, h.key_len() as usize);
            let end = HEADER_BYTES + h.body_len() as usize;
            let body = &b[HEADER_BYTES..end];
            v.push((
                h.opcode(),
                h.vbucket_or_status(),
                body[el..el + kl].to_vec(),
                body[el + kl..].to_vec(),
            ));
            b = &b[end..];
        }
        v
    }

    fn engine_config() -> EngineConfig {
        EngineConfig {
            store: StoreConfig {
                item_memory_bytes: 8 << 20,
                ..StoreConfig::default()
            },
            ..EngineConfig::default()
        }
    }

    /// Every statistic of `stat` and `stat settings` is a binary packet (none leaks out as a
    /// text line), also when the reply spans many output areas; an empty packet ends each.
    #[test]
    fn stat_replies_are_packets_across_output_areas() {
        let cfg = engine_config();
        let mut arena = std::vec![0u8; Engine::required_bytes(&cfg).unwrap()];
        let e = Engine::new(&cfg, &mut arena).unwrap();
        for group in [&b""[..], b"settings"] {
            let mut s = Session::new(Transport::Tcp);
            let input = request(opcode::STAT, group, b"", b"", 9);
            let whole = packets(&drive(&e, &mut s, &input, 64 * 1024));
            let pieces = packets(&drive(&e, &mut s, &input, MIN_OUTPUT_BYTES));
            assert!(whole.len() > 10, "{group:?}");
            assert_eq!(whole.len(), pieces.len(), "{group:?}");
            assert_eq!(
                whole.last().unwrap(),
                &(opcode::STAT, 0, Vec::new(), Vec::new())
            );
            for (name, _) in whole.iter().map(|p| (&p.2, &p.3)).take(whole.len() - 1) {
                assert!(!name.is_empty() && !name.contains(&b' '), "{name:?}");
            }
        }
    }

    /// A value larger than the output area arrives whole, key and flags first.
    #[test]
    fn large_values_resume_across_output_areas() {
        let cfg = engine_config();
        let mut arena = std::vec![0u8; Engine::required_bytes(&cfg).unwrap()];
        let e = Engine::new(&cfg, &mut arena).unwrap();
        let mut s = Session::new(Transport::Tcp);
        let value: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let mut input = request(opcode::SETQ, b"big", &[0, 0, 0, 7, 0, 0, 0, 0], &value, 1);
        input.extend(request(opcode::GETK, b"big", b"", b"", 2));
        input.extend(request(opcode::NOOP, b"", b"", b"", 3));
        let p = packets(&drive(&e, &mut s, &input, MIN_OUTPUT_BYTES));
        assert_eq!(p.len(), 2);
        assert_eq!(
            (p[0].0, p[0].1, &p[0].2[..]),
            (opcode::GETK, 0, &b"big"[..])
        );
        assert_eq!(p[0].3, value);
        assert_eq!(p[1].0, opcode::NOOP);
        assert_eq!(s.is_binary(), Some(true));
    }
}

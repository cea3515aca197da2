//! `mg`: the meta get, with memcached's stampede control (`N` vivify on
//! miss, `R` recache token, `W`/`X`/`Z` in the reply) and resumable values.
//!
//! The steps, in order: [`Engine::resume_value`] continues a value cut by a full
//! output buffer; [`Engine::mg_options`] turns the flags into a lookup
//! ([`MgLookup`]); [`put_mg_hit`] writes a hit's reply during the lookup;
//! [`Engine::mg_after_lookup`] applies what memcached does after it (a late
//! touch, bumping a created item, the counters); [`Engine::mg_finish`]
//! writes a miss or an error and saves where a long value stopped.

use super::get::put_value_from;
use super::meta::{last_ttl, mc_expire_at, put_meta_key, put_opaque_and_key, ttl_left, KeyBuf};
use super::session::PartialValue;
use super::{expire_at, peek, Engine, Exec, Session, MIN_OUTPUT_BYTES};
use crate::proto::compose::{Room, Writer};
use crate::proto::{ErrorKind, MetaRequest};
use crate::store::{GetOptions, ItemRef};
use crate::Time;

/// How one `mg` looks its key up.
struct MgLookup {
    /// Options for the store lookup.
    opts: GetOptions,
    /// An expiry to set after the lookup (`R` before `T`: memcached judges
    /// the recache token against the old TTL, then touches).
    late_touch: Option<Time>,
    /// The item's expiry before this request (when a `t` comes before the
    /// `T`: memcached prints the TTL each flag sees, in order).
    old_expire: Option<Time>,
}

/// What the lookup found.
struct MgOutcome {
    /// `None`: a miss; `Some(None)`: a complete hit reply; `Some(Some(_))`:
    /// a hit whose value did not fit.
    hit: Option<Option<PartialValue>>,
    /// The lookup created the item (`N` on a miss).
    created: bool,
}

impl Engine<'_> {
    pub(super) fn exec_mg(
        &self,
        session: &mut Session,
        m: &MetaRequest<'_>,
        w: &mut Writer<'_>,
        now: Time,
    ) -> Exec {
        if let Some(exec) = self.resume_value(session, b"\r\n", w, now) {
            return exec;
        }
        // the longest reply line (every flag, a base64 key) fits
        let Ok(mut room) = w.reserve(MIN_OUTPUT_BYTES) else {
            return Exec::Full;
        };
        self.stats.cmd_meta.incr();
        let Some(key) = KeyBuf::new(m.key, m.flags.base64) else {
            room.line(ErrorKind::MetaKeyDecode.message());
            return Exec::Done;
        };
        let key = key.get();
        let lookup = self.mg_options(m, key, now);
        let late_error = m.late_error;
        let mut created = false;
        let hit = self.store.get(key, now, lookup.opts, |item: &ItemRef<'_>| {
            created = item.created();
            if late_error.is_some() {
                return None;
            }
            put_mg_hit(
                &mut room,
                m,
                item,
                lookup.old_expire,
                now,
                self.cfg.started_at,
            )
        });
        let outcome = MgOutcome { hit, created };
        self.mg_after_lookup(m, key, &lookup, &outcome, now);
        self.mg_finish(session, m, key, outcome, &mut room)
    }

    /// The lookup `m`'s flags ask for: `T` touch, `N` vivify, `R` recache,
    /// `u` no access update.
    fn mg_options(&self, m: &MetaRequest<'_>, key: &[u8], now: Time) -> MgLookup {
        let f = &m.flags;
        let mut recache_below = f.recache.map(|r| {
            let at = expire_at(r, now);
            if at == 0 || at <= now {
                0
            } else {
                at - now
            }
        });
        let r_before_t = f.ttl.is_some()
            && m.flag_words
                .into_iter()
                .find(|w| matches!(w[0], b'R' | b'T'))
                .is_some_and(|w| w[0] == b'R');
        if let (Some(below), true) = (recache_below, r_before_t) {
            // memcached judges R against the TTL before a later T applies
            let wins = self
                .store
                .get(key, now, peek(), |i| {
                    !i.token_sent()
                        && i.expire_at() != 0
                        && i.expire_at() < now.saturating_add(below)
                })
                .unwrap_or(false);
            recache_below = if wins { Some(u32::MAX) } else { None };
        }
        let old_expire = self.expire_before_ttl_update(m, f.ttl.is_some(), key, now);
        let ttl = f.ttl.map(|t| expire_at(t, now));
        // memcached bumps an item (fetched, access time) as it fetches it,
        // unless a flag needs its state from before the bump (N, R, T, h,
        // l): then after building the reply, which an over-long opaque cuts
        // short
        let delayed_bump = f.ttl.is_some()
            || f.vivify.is_some()
            || f.recache.is_some()
            || m.flag_words
                .into_iter()
                .any(|w| matches!(w[0], b'h' | b'l'));
        MgLookup {
            opts: GetOptions {
                // with R before T, judge R first and touch afterwards
                touch: if r_before_t { None } else { ttl },
                update_access: !f.no_update && (m.late_error.is_none() || !delayed_bump),
                vivify: f.vivify.map(|n| expire_at(last_ttl(m, n), now)),
                recache_below,
                count: true,
                // ... and before it hands out a win token
                meta: m.late_error.is_none(),
            },
            late_touch: if r_before_t { ttl } else { None },
            old_expire,
        }
    }

    /// What memcached does after the lookup: the late touch (`R` before
    /// `T`), marking a created item fetched, and the get/touch counters.
    fn mg_after_lookup(
        &self,
        m: &MetaRequest<'_>,
        key: &[u8],
        lookup: &MgLookup,
        outcome: &MgOutcome,
        now: Time,
    ) {
        if let (Some(at), Some(_), false) = (lookup.late_touch, outcome.hit, outcome.created) {
            // a new TTL only: unlike `touch`, mg's T does not mark the item
            // fetched (the lookup did, unless `u`)
            let touch = GetOptions {
                touch: Some(at),
                ..peek()
            };
            let _ = self.store.get(key, now, touch, |_| ());
        }
        if outcome.created && !m.flags.no_update && m.late_error.is_none() {
            // memcached bumps (marks fetched) the item it just created
            let bump = GetOptions {
                update_access: true,
                ..peek()
            };
            let _ = self.store.get(key, now, bump, |_| ());
        }
        self.count_get(m.flags.ttl.is_some(), outcome.hit.is_some());
    }

    /// Writes what is left of the reply (an error, a miss) and records a
    /// value still to copy.
    fn mg_finish(
        &self,
        session: &mut Session,
        m: &MetaRequest<'_>,
        key: &[u8],
        outcome: MgOutcome,
        room: &mut Room<'_, '_>,
    ) -> Exec {
        if let Some(e) = m.late_error {
            self.stats.error_meta_flags.incr();
            room.line(e.message());
            return Exec::Done;
        }
        match outcome.hit {
            Some(Some(pv)) => session.hold_value(pv),
            Some(None) => Exec::Done,
            None => {
                if !m.flags.quiet {
                    room.put(b"EN");
                    put_opaque_and_key(room, m, key);
                    room.put(b"\r\n");
                }
                Exec::Done
            }
        }
    }
}

/// Writes a hit's `VA`/`HD` line with the return flags in request order, the
/// `Z`/`X`/`W` markers, and as much of the value as fits; returns where the
/// value stopped when it did not fit.
fn put_mg_hit(
    room: &mut Room<'_, '_>,
    m: &MetaRequest<'_>,
    item: &ItemRef<'_>,
    old_expire: Option<Time>,
    now: Time,
    started_at: Time,
) -> Option<PartialValue> {
    let f = &m.flags;
    let value = item.value();
    if f.value {
        room.put(b"VA ");
        room.put_u64(value.len() as u64);
    } else {
        room.put(b"HD");
    }
    // the TTL as memcached sees it at each flag: a new item starts
    // at 0 and takes T and N in order
    let mut exp = if item.created() {
        0
    } else {
        old_expire.unwrap_or(item.expire_at())
    };
    for word in m.flag_words {
        match word[0] {
            b'T' => exp = f.ttl.map_or(exp, |t| mc_expire_at(t, now, started_at)),
            b'N' if item.created() => {
                exp = f.vivify.map_or(exp, |t| mc_expire_at(t, now, started_at))
            }
            b's' => {
                room.put(b" s");
                room.put_u64(value.len() as u64);
            }
            b't' => {
                room.put(b" t");
                room.put_i64(ttl_left(exp, now));
            }
            b'c' => {
                room.put(b" c");
                room.put_u64(item.cas());
            }
            b'f' => {
                room.put(b" f");
                room.put_u64(u64::from(item.flags()));
            }
            b'l' => {
                room.put(b" l");
                room.put_u64(u64::from(now.saturating_sub(item.last_access())));
            }
            b'h' => room.put(if item.fetched() { b" h1" } else { b" h0" }),
            b'O' => {
                room.put_byte(b' ');
                room.put(word);
            }
            // memcached prints the key as the item was stored (`ms ... b`),
            // whatever this request says; one created by N is plain
            b'k' => put_meta_key(room, item.key(), item.key_binary()),
            _ => {}
        }
    }
    if item.token_sent() {
        room.put(b" Z");
    }
    if item.stale() {
        room.put(b" X");
    }
    if item.won() {
        room.put(b" W");
    }
    room.put(b"\r\n");
    if f.value {
        let off = put_value_from(room.release(), value, 0);
        if off != value.len() + 2 {
            return Some(PartialValue {
                loc: item.location(),
                offset: off,
            });
        }
    }
    None
}

//! The UDP amplification guard: what a memcache-over-UDP server may send to
//! an address it cannot verify.
//!
//! UDP source addresses can be forged. In February 2018 ("memcrashed")
//! attackers sent small `get`/`stats` datagrams to open memcached UDP ports
//! with the victim's address as the source; replies up to 51,000 times the
//! request's size flooded the victim. This module decides, for every request
//! datagram, how much a reply to its source may be, and every decision is
//! counted in [`GuardStats`]. It is shared by every UDP path (kernel sockets
//! and AF_XDP queues, all threads): one rate table per process. The
//! [`Responder`](super::Responder) is its only caller: it admits, enforces
//! the cap while the reply is built, and settles.
//!
//! ```text
//!  request datagram from src, n bytes (UDP payload, frame header included)
//!     |
//!     +-- src in the allowlist (default: loopback) --> Trusted: no limits
//!     |
//!     +-- src's token bucket empty ------------------> RateLimited: drop the
//!     |                                                 request unanswered
//!     +-- otherwise ---------------------------------> Checked: the reply may
//!                                                      total n * max_amplification
//!                                                      bytes (UDP payloads, headers
//!                                                      included); one token taken
//!  after the reply was built: settle(datagrams sent)  -> the rest of the tokens
//! ```
//!
//! A reply over its cap is never sent. When [`TOO_LARGE_REPLY`] (in one
//! datagram) fits under the cap, it is sent instead, so that an honest
//! client learns at once to use TCP instead of timing out (the DNS way: a
//! truncated answer, "retry over TCP"); otherwise nothing is sent.
//!
//! Rate limiting is a token bucket per source: `rate_per_sec` reply
//! datagrams per second, at most `burst` saved up. Sources are IPv4
//! addresses and IPv6 /64 prefixes (one host usually owns a whole /64, so
//! finer keys would only let a flood spread over many buckets), hashed with
//! a secret seed into a fixed table of [`RATE_TABLE_BUCKETS`] buckets. Sources
//! that share a bucket share its tokens: a collision can only limit more,
//! never less, and a forged flood cannot evict a victim's bucket to refill
//! it. A bucket may go into debt (a reply of many datagrams), and its source
//! then waits until the debt is paid.
//!
//! No allocation, no clock: the caller passes milliseconds of a monotonic
//! clock that every caller of one guard shares (e.g. `CLOCK_MONOTONIC`).

use core::fmt;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::wire::UDP_FRAME_HEADER_BYTES;

/// Default cap on reply bytes per request byte for sources outside the
/// allowlist. QUIC allows 3 before it has verified an address (RFC 9000,
/// 8.1); memcache replies carry framing (`VALUE <key> <flags> <len>`,
/// `END`) that alone is about twice a `get`, so 3 would refuse even tiny
/// values. 10 passes values up to several times the request (counters,
/// flags, short tokens) and keeps a forged request worth at most 10 times
/// its bytes: less than DNS (about 28-54) and far from memcached's 51,000.
pub const DEFAULT_MAX_AMPLIFICATION: u32 = 10;
/// Default reply datagrams per second per source outside the allowlist.
pub const DEFAULT_RATE_PER_SEC: u32 = 1000;
/// Default token bucket size (reply datagrams) per source.
pub const DEFAULT_BURST: u32 = 1000;
/// Most allowlist entries.
pub const MAX_ALLOW_ENTRIES: usize = 64;
/// Largest accepted `burst`.
pub const MAX_BURST: u32 = 1_000_000;
/// Largest accepted `rate_per_sec`.
pub const MAX_RATE_PER_SEC: u32 = 100_000_000;
/// Buckets in the rate table (a power of two): 64 KiB.
pub const RATE_TABLE_BUCKETS: usize = 8192;
/// What a source outside the allowlist gets instead of a reply over its cap,
/// when this fits under the cap.
pub const TOO_LARGE_REPLY: &[u8] = b"SERVER_ERROR reply too large for UDP\r\n";

/// Fixed-point scale of a bucket's tokens (1/1024 token resolution).
const TOKEN_SCALE: i64 = 1024;
/// Bias that stores a signed token count in a `u32`.
const TOKEN_BIAS: i64 = 1 << 31;
/// Lowest token balance (in scaled units) a bucket may owe.
const TOKEN_FLOOR: i64 = -(1 << 30);

/// A network in CIDR notation: `10.0.0.0/8`, `::1/128`, `192.0.2.7`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

/// Why a CIDR string was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CidrError {
    /// The address part is not an IPv4 or IPv6 address.
    BadAddress,
    /// The prefix length is not a number within 0..=32 (IPv4) or 0..=128.
    BadPrefix,
    /// Bits are set beyond the prefix (`10.0.0.1/8`): probably a typo.
    HostBitsSet,
}

impl fmt::Display for CidrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CidrError::BadAddress => "not an IPv4 or IPv6 address",
            CidrError::BadPrefix => "prefix length out of range (0-32 for IPv4, 0-128 for IPv6)",
            CidrError::HostBitsSet => "address has bits set beyond the prefix length",
        })
    }
}

impl Cidr {
    /// `127.0.0.0/8`.
    pub const LOOPBACK_V4: Cidr = Cidr {
        addr: IpAddr::V4(Ipv4Addr::new(127, 0, 0, 0)),
        prefix: 8,
    };
    /// `::1/128`.
    pub const LOOPBACK_V6: Cidr = Cidr {
        addr: IpAddr::V6(Ipv6Addr::LOCALHOST),
        prefix: 128,
    };

    /// A network from an address and a prefix length (host bits must be 0).
    pub fn new(addr: IpAddr, prefix: u8) -> Result<Cidr, CidrError> {
        let max = match addr {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        if prefix > max {
            return Err(CidrError::BadPrefix);
        }
        let c = Cidr { addr, prefix };
        if !c.contains_same_family(addr) || masked(addr, prefix) != addr {
            return Err(CidrError::HostBitsSet);
        }
        Ok(c)
    }

    /// Parses `ADDR/PREFIX` or a bare `ADDR` (a single host). IPv6
    /// addresses may be bracketed (`[::1]/128`).
    pub fn parse(text: &str) -> Result<Cidr, CidrError> {
        let t = text.trim();
        let (a, p) = match t.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (t, None),
        };
        let a = a
            .strip_prefix('[')
            .and_then(|x| x.strip_suffix(']'))
            .unwrap_or(a);
        let addr: IpAddr = a.parse().map_err(|_| CidrError::BadAddress)?;
        let prefix = match p {
            None => match addr {
                IpAddr::V4(_) => 32,
                IpAddr::V6(_) => 128,
            },
            Some(p) => {
                if p.is_empty() || p.len() > 3 || !p.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(CidrError::BadPrefix);
                }
                p.parse::<u8>().map_err(|_| CidrError::BadPrefix)?
            }
        };
        Cidr::new(addr, prefix)
    }

    /// The network address.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Is `ip` inside this network? IPv4-mapped IPv6 addresses
    /// (`::ffff:a.b.c.d`, what a dual-stack socket reports for IPv4 peers)
    /// count as their IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.contains_same_family(canonical(ip))
    }

    fn contains_same_family(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => {
                masked(ip, self.prefix) == self.addr
            }
            _ => false,
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// `ip` with every bit beyond `prefix` cleared.
fn masked(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(a) => {
            let bits = u32::from(a);
            let mask = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(prefix.min(32)))
            };
            IpAddr::V4(Ipv4Addr::from(bits & mask))
        }
        IpAddr::V6(a) => {
            let bits = u128::from(a);
            let mask = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(prefix.min(128)))
            };
            IpAddr::V6(Ipv6Addr::from(bits & mask))
        }
    }
}

/// IPv4-mapped IPv6 addresses as IPv4; everything else unchanged.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(a) => match a.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => ip,
        },
        v4 => v4,
    }
}

/// The guard's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuardConfig {
    /// Sources that get replies without any limit.
    pub allow: heapless::Vec<Cidr, MAX_ALLOW_ENTRIES>,
    /// Cap on reply bytes per request byte for other sources; 0 = no cap.
    pub max_amplification: u32,
    /// Reply datagrams per second per other source; 0 = no rate limit.
    pub rate_per_sec: u32,
    /// Token bucket size in reply datagrams (at least 1 when rate limiting).
    pub burst: u32,
    /// Secret seed of the source hash (choose it at random at start-up, so
    /// nobody can aim forged sources at one bucket).
    pub seed: u64,
}

impl Default for GuardConfig {
    /// Loopback allowed, 10x cap, 1000 datagrams/s with a burst of 1000.
    fn default() -> Self {
        let mut allow = heapless::Vec::new();
        let _ = allow.push(Cidr::LOOPBACK_V4);
        let _ = allow.push(Cidr::LOOPBACK_V6);
        GuardConfig {
            allow,
            max_amplification: DEFAULT_MAX_AMPLIFICATION,
            rate_per_sec: DEFAULT_RATE_PER_SEC,
            burst: DEFAULT_BURST,
            seed: 0,
        }
    }
}

/// Why a [`GuardConfig`] was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuardConfigError {
    /// `rate_per_sec` above [`MAX_RATE_PER_SEC`].
    RateTooHigh,
    /// `burst` is 0 while rate limiting, or above [`MAX_BURST`].
    BadBurst,
}

impl fmt::Display for GuardConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GuardConfigError::RateTooHigh => {
                write!(
                    f,
                    "rate must be at most {MAX_RATE_PER_SEC} datagrams per second"
                )
            }
            GuardConfigError::BadBurst => write!(
                f,
                "burst must be between 1 and {MAX_BURST} datagrams when a rate is set"
            ),
        }
    }
}

crate::metrics! {
    /// Every decision of a [`UdpGuard`].
    pub struct GuardStats {
        requests_trusted: Counter("requests") "UDP requests from allowlisted sources (no limits applied)",
        requests_checked: Counter("requests") "UDP requests from other sources, answered within the amplification cap and rate limit",
        dropped_rate_limited: Counter("requests") "UDP requests dropped unanswered: the source's token bucket was empty",
        replies_replaced: Counter("replies") "UDP replies over the amplification cap replaced by SERVER_ERROR reply too large for UDP",
        replies_dropped_too_large: Counter("replies") "UDP replies over the amplification cap dropped (even the error would exceed it)",
        reply_datagrams_checked: Counter("datagrams") "reply datagrams sent to sources outside the allowlist",
    }
}

/// What [`UdpGuard::admit`] decided for one request datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// An allowlisted source: answer without limits.
    Trusted,
    /// Answer, but the reply (all datagrams' UDP payloads, frame headers
    /// included) may total at most `max_reply_bytes`; one token was taken
    /// from bucket `bucket` (settle the rest with [`UdpGuard::settle`]).
    Checked {
        /// Cap on the reply's bytes (`usize::MAX` when there is no cap).
        max_reply_bytes: usize,
        /// The rate bucket charged (`usize::MAX` when rate limiting is off).
        bucket: usize,
    },
    /// The source's rate is exhausted: drop the request unanswered.
    RateLimited,
}

impl Admission {
    /// The cap on the reply's bytes (`usize::MAX` for a trusted source), or
    /// `None` when the request is to be dropped unanswered.
    pub fn max_reply_bytes(self) -> Option<usize> {
        match self {
            Admission::Trusted => Some(usize::MAX),
            Admission::Checked {
                max_reply_bytes, ..
            } => Some(max_reply_bytes),
            Admission::RateLimited => None,
        }
    }
}

/// What became of a checked reply (for [`UdpGuard::settle`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The reply was sent whole in this many datagrams (0 for `noreply`).
    Sent(usize),
    /// The reply was over the cap; [`TOO_LARGE_REPLY`] was sent instead.
    Replaced,
    /// The reply was over the cap and nothing was sent.
    Dropped,
    /// The request was dropped for another reason (malformed, part of a
    /// multi-datagram request, no room to build the reply): the token goes
    /// back and the datagram layer counts the reason ([`super::UdpStats`]).
    Unanswered,
}

/// The guard: allowlist, amplification cap, per-source rate table and
/// counters. Shared by reference between threads (`Sync`, lock-free).
pub struct UdpGuard {
    allow: heapless::Vec<Cidr, MAX_ALLOW_ENTRIES>,
    max_amplification: u32,
    rate_per_sec: u32,
    burst: u32,
    seed: u64,
    /// Packed buckets: bits 0..32 time (ms, wrapping), bits 32..64 tokens
    /// (scaled, biased); 0 = never used (a full bucket).
    buckets: [AtomicU64; RATE_TABLE_BUCKETS],
    stats: GuardStats,
}

/// `stats` prints the guard's counters as `udp_guard_<name>`.
impl crate::engine::StatsSource for UdpGuard {
    fn for_each_stat(&self, f: &mut dyn FnMut(&str, &str, u64)) {
        self.stats
            .for_each(|name, _, _, v| f("udp_guard_", name, v));
    }
}

impl fmt::Debug for UdpGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UdpGuard")
            .field("allow", &self.allow)
            .field("max_amplification", &self.max_amplification)
            .field("rate_per_sec", &self.rate_per_sec)
            .field("burst", &self.burst)
            .finish_non_exhaustive()
    }
}

impl UdpGuard {
    /// A guard with `cfg`'s settings and a full bucket for every source.
    pub fn new(cfg: &GuardConfig) -> Result<UdpGuard, GuardConfigError> {
        if cfg.rate_per_sec > MAX_RATE_PER_SEC {
            return Err(GuardConfigError::RateTooHigh);
        }
        if cfg.rate_per_sec > 0 && (cfg.burst == 0 || cfg.burst > MAX_BURST) {
            return Err(GuardConfigError::BadBurst);
        }
        Ok(UdpGuard {
            allow: cfg.allow.clone(),
            max_amplification: cfg.max_amplification,
            rate_per_sec: cfg.rate_per_sec,
            burst: cfg.burst,
            seed: cfg.seed,
            buckets: [const { AtomicU64::new(0) }; RATE_TABLE_BUCKETS],
            stats: GuardStats::new(),
        })
    }

    /// The counters.
    pub fn stats(&self) -> &GuardStats {
        &self.stats
    }

    /// The allowlist.
    pub fn allowlist(&self) -> &[Cidr] {
        &self.allow
    }

    /// Is `src` allowlisted?
    pub fn is_trusted(&self, src: IpAddr) -> bool {
        self.allow.iter().any(|c| c.contains(src))
    }

    /// Decides how to answer a request datagram of `request_bytes` (UDP
    /// payload, frame header included) from `src` at `now_ms`. A
    /// [`Admission::Checked`] must be followed by [`UdpGuard::settle`].
    pub fn admit(&self, src: IpAddr, request_bytes: usize, now_ms: u64) -> Admission {
        if self.is_trusted(src) {
            self.stats.requests_trusted.incr();
            return Admission::Trusted;
        }
        let bucket = if self.rate_per_sec == 0 {
            usize::MAX
        } else {
            let b = self.bucket_of(src);
            if !self.take(b, TOKEN_SCALE, true, now_ms) {
                self.stats.dropped_rate_limited.incr();
                return Admission::RateLimited;
            }
            b
        };
        let max_reply_bytes = if self.max_amplification == 0 {
            usize::MAX
        } else {
            request_bytes.saturating_mul(self.max_amplification as usize)
        };
        Admission::Checked {
            max_reply_bytes,
            bucket,
        }
    }

    /// Records what became of a [`Admission::Checked`] reply and charges
    /// its datagrams beyond the one [`UdpGuard::admit`] took (a reply of no
    /// datagram gives that token back). Does nothing for other admissions.
    pub fn settle(&self, admission: Admission, outcome: Outcome, now_ms: u64) {
        let Admission::Checked { bucket, .. } = admission else {
            return;
        };
        let datagrams = match outcome {
            Outcome::Sent(n) => {
                self.stats.requests_checked.incr();
                n
            }
            Outcome::Replaced => {
                self.stats.replies_replaced.incr();
                1
            }
            Outcome::Dropped => {
                self.stats.replies_dropped_too_large.incr();
                0
            }
            Outcome::Unanswered => 0,
        };
        self.stats.reply_datagrams_checked.add(datagrams as u64);
        if bucket < RATE_TABLE_BUCKETS && datagrams != 1 {
            let extra = i64::try_from(datagrams)
                .unwrap_or(i64::MAX)
                .saturating_sub(1);
            let _ = self.take(bucket, extra.saturating_mul(TOKEN_SCALE), false, now_ms);
        }
    }

    /// May a reply of `reply_bytes` (UDP payloads) go out under `admission`?
    pub fn fits(admission: Admission, reply_bytes: usize) -> bool {
        match admission {
            Admission::Trusted => true,
            Admission::Checked {
                max_reply_bytes, ..
            } => reply_bytes <= max_reply_bytes,
            Admission::RateLimited => false,
        }
    }

    /// May [`TOO_LARGE_REPLY`] (one datagram) replace a reply over the cap?
    pub fn error_fits(admission: Admission) -> bool {
        Self::fits(admission, UDP_FRAME_HEADER_BYTES + TOO_LARGE_REPLY.len())
    }

    /// Bucket index of `src`: IPv4 address, or IPv6 /64 prefix.
    fn bucket_of(&self, src: IpAddr) -> usize {
        let mut key = [0u8; 9];
        let n = match canonical(src) {
            IpAddr::V4(a) => {
                key[0] = 4;
                key[1..5].copy_from_slice(&a.octets());
                5
            }
            IpAddr::V6(a) => {
                key[0] = 6;
                key[1..9].copy_from_slice(&a.octets()[..8]);
                9
            }
        };
        (crate::store::hash_key(self.seed, &key[..n]) as usize) & (RATE_TABLE_BUCKETS - 1)
    }

    /// Refills bucket `b` to `now_ms` and takes `cost` scaled tokens. With
    /// `need`, the bucket must hold at least `cost` (else nothing changes
    /// and false is returned); without, it may go into debt.
    fn take(&self, b: usize, cost: i64, need: bool, now_ms: u64) -> bool {
        let now = now_ms as u32;
        let full = i64::from(self.burst) * TOKEN_SCALE;
        let slot = &self.buckets[b];
        let mut old = slot.load(Relaxed);
        loop {
            let (tokens, then) = if old == 0 {
                (full, now)
            } else {
                (((old >> 32) as i64) - TOKEN_BIAS, old as u32)
            };
            let elapsed = now.wrapping_sub(then);
            // A clock that went back (or a stale bucket from 24 days ago)
            // refills nothing / everything: both are harmless.
            // (At most full - TOKEN_FLOOR: enough to pay any debt and fill up.)
            let refill = if elapsed > u32::MAX / 2 {
                0
            } else {
                let r =
                    i128::from(elapsed) * i128::from(self.rate_per_sec) * i128::from(TOKEN_SCALE)
                        / 1000;
                r.min(i128::from(full - TOKEN_FLOOR)) as i64
            };
            let available = tokens.saturating_add(refill).min(full);
            if need && available < cost {
                return false;
            }
            let left = available.saturating_sub(cost).max(TOKEN_FLOOR);
            // Keep the old time when the refill rounded to nothing, so slow
            // rates still accumulate.
            let stamp = if refill == 0 && available < full {
                then
            } else {
                now
            };
            let new = (((left + TOKEN_BIAS) as u64) << 32) | u64::from(stamp);
            match slot.compare_exchange_weak(old, new, Relaxed, Relaxed) {
                Ok(_) => return true,
                Err(cur) => old = cur,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::str::FromStr;

    fn ip(s: &str) -> IpAddr {
        IpAddr::from_str(s).unwrap()
    }

    fn guard(allow: &[&str], amp: u32, rate: u32, burst: u32) -> UdpGuard {
        let mut a = heapless::Vec::new();
        for c in allow {
            a.push(Cidr::parse(c).unwrap()).unwrap();
        }
        UdpGuard::new(&GuardConfig {
            allow: a,
            max_amplification: amp,
            rate_per_sec: rate,
            burst,
            seed: 42,
        })
        .unwrap()
    }

    #[test]
    fn cidr_parsing() {
        assert_eq!(Cidr::parse("10.0.0.0/8").unwrap().prefix(), 8);
        assert_eq!(Cidr::parse("192.0.2.7").unwrap().prefix(), 32);
        assert_eq!(Cidr::parse("::1").unwrap(), Cidr::LOOPBACK_V6);
        assert_eq!(Cidr::parse("[2001:db8::]/32").unwrap().prefix(), 32);
        assert_eq!(Cidr::parse("0.0.0.0/0").unwrap().prefix(), 0);
        assert_eq!(Cidr::parse("::/0").unwrap().prefix(), 0);
        assert_eq!(Cidr::parse("10.0.0.1/8"), Err(CidrError::HostBitsSet));
        assert_eq!(Cidr::parse("10.0.0.0/33"), Err(CidrError::BadPrefix));
        assert_eq!(Cidr::parse("::/129"), Err(CidrError::BadPrefix));
        assert_eq!(Cidr::parse("10.0.0.0/"), Err(CidrError::BadPrefix));
        assert_eq!(Cidr::parse("10.0.0.0/-1"), Err(CidrError::BadPrefix));
        assert_eq!(Cidr::parse("10.0.0.0/+8"), Err(CidrError::BadPrefix));
        assert_eq!(Cidr::parse("10.0.0/8"), Err(CidrError::BadAddress));
        assert_eq!(Cidr::parse("none"), Err(CidrError::BadAddress));
        assert_eq!(Cidr::parse(""), Err(CidrError::BadAddress));
    }

    #[test]
    fn cidr_membership_v4_v6_and_mapped() {
        let net = Cidr::parse("198.18.0.0/15").unwrap();
        assert!(net.contains(ip("198.18.0.1")));
        assert!(net.contains(ip("198.19.255.255")));
        assert!(!net.contains(ip("198.20.0.0")));
        assert!(net.contains(ip("::ffff:198.19.1.1")), "mapped v4");
        assert!(!net.contains(ip("2001:db8::1")));
        let v6 = Cidr::parse("2001:db8::/32").unwrap();
        assert!(v6.contains(ip("2001:db8:ffff::1")));
        assert!(!v6.contains(ip("2001:db9::1")));
        assert!(!v6.contains(ip("32.1.13.184")));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(ip("1.2.3.4")));
        assert!(Cidr::LOOPBACK_V4.contains(ip("127.9.9.9")));
        assert!(Cidr::LOOPBACK_V6.contains(ip("::1")));
        assert!(!Cidr::LOOPBACK_V6.contains(ip("::2")));
    }

    #[test]
    fn default_trusts_loopback_only() {
        let g = UdpGuard::new(&GuardConfig::default()).unwrap();
        assert_eq!(g.admit(ip("127.0.0.1"), 10, 0), Admission::Trusted);
        assert_eq!(g.admit(ip("::1"), 10, 0), Admission::Trusted);
        assert_eq!(g.admit(ip("::ffff:127.0.0.1"), 10, 0), Admission::Trusted);
        assert_eq!(
            g.admit(ip("192.0.2.1"), 20, 0),
            Admission::Checked {
                max_reply_bytes: 200,
                bucket: g.bucket_of(ip("192.0.2.1"))
            }
        );
        assert_eq!(g.stats().requests_trusted.get(), 3);
        assert_eq!(Admission::Trusted.max_reply_bytes(), Some(usize::MAX));
        assert_eq!(g.admit(ip("192.0.2.1"), 20, 0).max_reply_bytes(), Some(200));
        assert_eq!(Admission::RateLimited.max_reply_bytes(), None);
    }

    #[test]
    fn amplification_cap_and_error_fit() {
        let g = guard(&[], 10, 0, 0);
        let a = g.admit(ip("192.0.2.1"), 15, 0);
        assert!(UdpGuard::fits(a, 150));
        assert!(!UdpGuard::fits(a, 151));
        assert!(UdpGuard::error_fits(a), "8 + 38 bytes under 150");
        let tiny = g.admit(ip("192.0.2.1"), 4, 0);
        assert!(!UdpGuard::error_fits(tiny), "46 bytes over 40");
        g.settle(a, Outcome::Replaced, 0);
        g.settle(tiny, Outcome::Dropped, 0);
        g.settle(a, Outcome::Sent(1), 0);
        g.settle(a, Outcome::Unanswered, 0);
        assert_eq!(g.stats().replies_replaced.get(), 1);
        assert_eq!(g.stats().replies_dropped_too_large.get(), 1);
        assert_eq!(g.stats().requests_checked.get(), 1);
        assert_eq!(g.stats().reply_datagrams_checked.get(), 2);
        // 0 = no cap
        let open = guard(&[], 0, 0, 0);
        assert!(UdpGuard::fits(
            open.admit(ip("192.0.2.1"), 1, 0),
            usize::MAX
        ));
        // huge requests saturate instead of overflowing
        assert!(UdpGuard::fits(
            g.admit(ip("192.0.2.1"), usize::MAX, 0),
            usize::MAX
        ));
    }

    #[test]
    fn allowlist_skips_every_limit() {
        let g = guard(&["10.0.0.0/8", "2001:db8::/32"], 1, 1, 1);
        for _ in 0..100 {
            assert_eq!(g.admit(ip("10.1.2.3"), 1, 0), Admission::Trusted);
            assert_eq!(g.admit(ip("2001:db8::5"), 1, 0), Admission::Trusted);
        }
        assert!(matches!(
            g.admit(ip("11.0.0.1"), 1, 0),
            Admission::Checked { .. }
        ));
    }

    #[test]
    fn token_bucket_burst_then_rate() {
        let g = guard(&[], 10, 100, 10);
        let src = ip("192.0.2.9");
        let mut t = 1_000_000u64;
        let mut ok = 0;
        for _ in 0..50 {
            let a = g.admit(src, 20, t);
            if a != Admission::RateLimited {
                ok += 1;
                g.settle(a, Outcome::Sent(1), t);
            }
        }
        assert_eq!(ok, 10, "the burst");
        assert_eq!(g.stats().dropped_rate_limited.get(), 40);
        // 100/s: one token every 10 ms
        t += 9;
        assert_eq!(g.admit(src, 20, t), Admission::RateLimited);
        t += 1;
        assert!(matches!(g.admit(src, 20, t), Admission::Checked { .. }));
        assert_eq!(g.admit(src, 20, t), Admission::RateLimited);
        // Over one simulated second, about 100 pass.
        let mut passed = 0;
        for _ in 0..1000 {
            t += 1;
            if g.admit(src, 20, t) != Admission::RateLimited {
                passed += 1;
            }
        }
        assert!((99..=101).contains(&passed), "{passed}");
        // Another source is not affected.
        assert!(matches!(
            g.admit(ip("192.0.2.10"), 20, t),
            Admission::Checked { .. }
        ));
        // A long pause refills to the burst, not beyond.
        t += 3_600_000;
        let mut burst = 0;
        while g.admit(src, 20, t) != Admission::RateLimited {
            burst += 1;
            assert!(burst <= 10);
        }
        assert_eq!(burst, 10);
    }

    #[test]
    fn slow_rates_accumulate_and_debt_is_paid() {
        let g = guard(&[], 10, 1, 5);
        let src = ip("192.0.2.1");
        let a = g.admit(src, 20, 0);
        // A 5-datagram reply: four more tokens owed (balance 0).
        g.settle(a, Outcome::Sent(5), 0);
        assert_eq!(g.admit(src, 20, 0), Admission::RateLimited);
        // 1/s, checked every 100 ms: the fractions must add up.
        let mut t = 0;
        loop {
            t += 100;
            if g.admit(src, 20, t) != Admission::RateLimited {
                break;
            }
            assert!(t < 5000);
        }
        assert!((1000..=1100).contains(&t), "{t}");
        // Debt: a 20-datagram reply with 1 token leaves -19.
        let g = guard(&[], 10, 10, 1);
        let a = g.admit(src, 20, 0);
        g.settle(a, Outcome::Sent(20), 0);
        assert_eq!(g.admit(src, 20, 1900), Admission::RateLimited);
        assert!(matches!(g.admit(src, 20, 2000), Admission::Checked { .. }));
        // A reply of no datagram gives the token back.
        let g = guard(&[], 10, 1, 1);
        let a = g.admit(src, 20, 0);
        g.settle(a, Outcome::Sent(0), 0);
        assert!(matches!(g.admit(src, 20, 0), Admission::Checked { .. }));
    }

    #[test]
    fn ipv6_sources_share_their_64() {
        let g = guard(&[], 10, 1, 1);
        assert!(matches!(
            g.admit(ip("2001:db8:1:2::1"), 20, 0),
            Admission::Checked { .. }
        ));
        assert_eq!(
            g.admit(ip("2001:db8:1:2::ffff"), 20, 0),
            Admission::RateLimited
        );
        assert_eq!(
            g.bucket_of(ip("::ffff:192.0.2.1")),
            g.bucket_of(ip("192.0.2.1"))
        );
    }

    #[test]
    fn config_errors() {
        let bad = |rate, burst| {
            UdpGuard::new(&GuardConfig {
                rate_per_sec: rate,
                burst,
                ..GuardConfig::default()
            })
            .unwrap_err()
        };
        assert_eq!(bad(10, 0), GuardConfigError::BadBurst);
        assert_eq!(bad(10, MAX_BURST + 1), GuardConfigError::BadBurst);
        assert_eq!(bad(MAX_RATE_PER_SEC + 1, 1), GuardConfigError::RateTooHigh);
        assert!(UdpGuard::new(&GuardConfig {
            rate_per_sec: 0,
            burst: 0,
            ..GuardConfig::default()
        })
        .is_ok());
    }

    #[test]
    fn extreme_settings_do_not_overflow() {
        let g = guard(&[], u32::MAX, MAX_RATE_PER_SEC, MAX_BURST);
        let src = ip("192.0.2.1");
        for t in [0u64, 1, u64::from(u32::MAX), u64::MAX, 5] {
            let a = g.admit(src, usize::MAX, t);
            g.settle(a, Outcome::Sent(usize::MAX), t);
        }
        // deep debt: limited for a while, never panics
        assert_eq!(g.admit(src, 1, 6), Admission::RateLimited);
    }
}

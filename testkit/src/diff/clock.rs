//! memcached's clock, read over a connection of its own, so that the candidate can be run at
//! the very second memcached judges every expiry by.

use std::io::{ErrorKind as IoErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::net::connect;

/// `stats` over `s`: the `STAT` lines up to `END`, or `None` on a timeout
/// (2 s) or a closed connection.
pub fn stats_of(s: &mut TcpStream) -> Option<String> {
    s.set_read_timeout(Some(Duration::from_millis(200))).ok()?;
    s.write_all(b"stats\r\n").ok()?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(2);
    while !buf.ends_with(b"END\r\n") {
        if Instant::now() > deadline {
            return None;
        }
        match s.read(&mut chunk) {
            Ok(0) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == IoErrorKind::WouldBlock || e.kind() == IoErrorKind::TimedOut => {}
            Err(_) => return None,
        }
    }
    String::from_utf8(buf).ok()
}

/// The value of `STAT <name> <value>` in a `stats` reply.
pub fn stat_u64(stats: &str, name: &str) -> Option<u64> {
    stats.lines().find_map(|l| {
        let mut t = l.split(' ');
        (t.next() == Some("STAT") && t.next() == Some(name))
            .then(|| t.next()?.parse().ok())
            .flatten()
    })
}

/// How close to memcached's next clock tick no batch is started.
pub const TICK_GUARD: Duration = Duration::from_millis(50);

/// How often a seed is started over because memcached's clock ticked while
/// one of its batches was in flight (it takes a stall longer than
/// [`TICK_GUARD`]; one restart is already rare).
pub const SEED_ATTEMPTS: u32 = 3;

/// memcached's clock, as `stats` reports it on a connection of its own:
/// `time` = memcached's `process_started` plus `current_time`, the relative
/// second every exptime, TTL, `t`, `R` and flush is judged by. Only
/// memcached's clock timer writes `current_time` (about once a second,
/// re-armed from its handler), so `time` stays constant between two ticks,
/// and Petrel, given that `time` as `now`, judges every expiry exactly as
/// memcached does: an absolute exptime X leaves `X - time` seconds on both
/// sides, a relative one n expires at `time + n` on both.
pub struct McClock {
    sock: TcpStream,
    /// The last `time` read.
    pub time: u32,
    /// The tick that made `time` came after this instant (the sending of the
    /// last read that still saw the second before); `None` until a tick has
    /// been watched.
    since: Option<Instant>,
    last_sent: Instant,
    /// `stats` reads so far.
    pub reads: u64,
    /// Polls waiting for a tick so far.
    pub polls: u64,
}

impl McClock {
    /// A clock reading memcached's `time` on a new connection to `port`.
    pub fn new(port: u16) -> McClock {
        let mut c = McClock {
            sock: connect(port),
            time: 0,
            since: None,
            last_sent: Instant::now(),
            reads: 0,
            polls: 0,
        };
        c.read();
        c
    }

    /// Reads `time` now (one `stats` round trip).
    pub fn read(&mut self) -> u32 {
        let sent = Instant::now();
        let st = stats_of(&mut self.sock).expect("stats from memcached (clock)");
        let t = stat_u64(&st, "time").expect("STAT time") as u32;
        self.reads += 1;
        if t != self.time {
            self.since = (self.reads > 1).then_some(self.last_sent);
            self.time = t;
        }
        self.last_sent = sent;
        t
    }

    /// memcached's `time` at a moment from which its next tick is at least
    /// [`TICK_GUARD`] away: waits (polling every millisecond) through a
    /// tick when closer, or until the first tick when none has been seen.
    pub fn settled(&mut self) -> u32 {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(since) = self.since {
                if Instant::now() + TICK_GUARD < since + Duration::from_secs(1) {
                    return self.time;
                }
            }
            assert!(
                Instant::now() < deadline,
                "memcached's clock (stats `time` {}) did not tick for 5 s",
                self.time
            );
            self.polls += 1;
            std::thread::sleep(Duration::from_millis(1));
            self.read();
        }
    }
}

//! A raw TCP connection to the server with exact-bytes helpers.

use crate::escape::{assert_bytes_eq, escape};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Default time to wait for a reply before failing.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// One blocking TCP connection. Every read is bounded by a deadline.
#[derive(Debug)]
pub struct Conn {
    stream: TcpStream,
    /// Bytes received but not yet consumed by a helper.
    pending: Vec<u8>,
}

impl Conn {
    /// Connects to `addr` (panics on failure).
    pub fn connect(addr: SocketAddr) -> Conn {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        stream.set_nodelay(true).expect("nodelay");
        Conn {
            stream,
            pending: Vec::new(),
        }
    }

    /// The underlying stream.
    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// Writes all of `bytes` (panics on failure).
    pub fn send(&mut self, bytes: &[u8]) {
        self.stream
            .write_all(bytes)
            .unwrap_or_else(|e| panic!("write {} bytes: {e}", bytes.len()));
    }

    /// Reads more bytes into `pending`; returns how many (0 = EOF). `Err` on timeout.
    fn fill(&mut self, deadline: Instant) -> Result<usize, String> {
        let now = Instant::now();
        if now >= deadline {
            return Err("timed out".into());
        }
        self.stream
            .set_read_timeout(Some(deadline - now))
            .expect("set_read_timeout");
        let mut buf = [0u8; 65536];
        loop {
            match self.stream.read(&mut buf) {
                Ok(n) => {
                    self.pending.extend_from_slice(&buf[..n]);
                    return Ok(n);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::TimedOut => {
                    return Err("timed out".into())
                }
                Err(e) if e.kind() == ErrorKind::ConnectionReset => return Ok(0),
                Err(e) => return Err(format!("read: {e}")),
            }
        }
    }

    /// Reads exactly `n` bytes (panics on EOF or timeout, showing what arrived).
    pub fn read_exact_n(&mut self, n: usize, timeout: Duration) -> Vec<u8> {
        let deadline = Instant::now() + timeout;
        while self.pending.len() < n {
            match self.fill(deadline) {
                Ok(0) => panic!(
                    "EOF after {} of {n} bytes:\n{}",
                    self.pending.len(),
                    escape(&self.pending, 500)
                ),
                Ok(_) => {}
                Err(e) => panic!(
                    "{e} after {} of {n} bytes:\n{}",
                    self.pending.len(),
                    escape(&self.pending, 500)
                ),
            }
        }
        self.pending.drain(..n).collect()
    }

    /// Reads until the received bytes end with `suffix` and returns them all (panics on EOF or
    /// timeout). Only use where `suffix` cannot occur earlier in the reply.
    pub fn read_until_suffix(&mut self, suffix: &[u8], timeout: Duration) -> Vec<u8> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(pos) = find(&self.pending, suffix) {
                return self.pending.drain(..pos + suffix.len()).collect();
            }
            match self.fill(deadline) {
                Ok(0) => panic!(
                    "EOF before {:?}; got {} bytes:\n{}",
                    escape(suffix, 100),
                    self.pending.len(),
                    escape(&self.pending, 500)
                ),
                Ok(_) => {}
                Err(e) => panic!(
                    "{e} waiting for {:?}; got {} bytes:\n{}",
                    escape(suffix, 100),
                    self.pending.len(),
                    escape(&self.pending, 500)
                ),
            }
        }
    }

    /// Reads one line including its `\r\n` (panics on EOF or timeout).
    pub fn read_line(&mut self) -> Vec<u8> {
        self.read_until_suffix(b"\r\n", REPLY_TIMEOUT)
    }

    /// Sends `request` and asserts that the next bytes are exactly `reply`.
    #[track_caller]
    pub fn check(&mut self, request: &[u8], reply: &[u8]) {
        self.send(request);
        self.expect(request, reply);
    }

    /// Asserts that the next received bytes are exactly `reply` (`request` only for messages).
    #[track_caller]
    pub fn expect(&mut self, request: &[u8], reply: &[u8]) {
        let deadline = Instant::now() + REPLY_TIMEOUT;
        while self.pending.len() < reply.len() {
            match self.fill(deadline) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        let n = reply.len().min(self.pending.len());
        let got: Vec<u8> = self.pending.drain(..n).collect();
        assert_bytes_eq(&got, reply, &format!("request {:?}", escape(request, 300)));
    }

    /// Asserts nothing more was sent: a `mn` meta no-op must be answered by exactly `MN\r\n`.
    #[track_caller]
    pub fn check_quiet(&mut self) {
        self.check(b"mn\r\n", b"MN\r\n");
    }

    /// Waits up to `timeout` for the server to close the connection; returns the bytes that
    /// arrived before EOF, or `None` if the connection is still open at the deadline.
    pub fn read_to_eof(&mut self, timeout: Duration) -> Option<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.fill(deadline) {
                Ok(0) => return Some(std::mem::take(&mut self.pending)),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    }
}

/// Position of the first occurrence of `needle` in `hay`.
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

/// `set`-style storage command bytes: `<cmd> <key> <flags> <exptime> <len>[ noreply]\r\n<value>\r\n`.
pub fn storage_cmd(
    cmd: &str,
    key: &str,
    flags: u32,
    exptime: i64,
    value: &[u8],
    noreply: bool,
) -> Vec<u8> {
    let mut v = format!(
        "{cmd} {key} {flags} {exptime} {}{}\r\n",
        value.len(),
        if noreply { " noreply" } else { "" }
    )
    .into_bytes();
    v.extend_from_slice(value);
    v.extend_from_slice(b"\r\n");
    v
}

/// The reply memcached gives to a one-key `get` hit: `VALUE k f len\r\n<value>\r\nEND\r\n`.
pub fn value_reply(key: &str, flags: u32, value: &[u8]) -> Vec<u8> {
    let mut v = format!("VALUE {key} {flags} {}\r\n", value.len()).into_bytes();
    v.extend_from_slice(value);
    v.extend_from_slice(b"\r\nEND\r\n");
    v
}

/// The `stats` value `name` (a number), asked over a fresh connection to
/// `addr` (which itself counts in `curr_connections`). Panics if absent.
pub fn stat(addr: SocketAddr, name: &str) -> u64 {
    let mut c = Conn::connect(addr);
    c.send(b"stats\r\n");
    let text = c.read_until_suffix(b"END\r\n", REPLY_TIMEOUT);
    let text = String::from_utf8_lossy(&text);
    text.lines()
        .find(|l| l.starts_with(&format!("STAT {name} ")))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no STAT {name}"))
}

/// Makes `s` reset (RST) instead of closing gracefully when dropped.
pub fn set_linger_zero(s: &TcpStream) {
    use std::os::fd::AsRawFd;
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket fd and a linger struct of the stated size.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&l as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

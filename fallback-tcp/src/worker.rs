//! A worker thread: one mio event loop serving its TCP connections and its
//! share of the UDP sockets.

use std::io;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::stream::Stream;
use mio::{Events, Interest, Poll, Token, Waker};

use crate::buffer::PageBuf;
use crate::conn::{Connection, Drive, Traffic};
use crate::service::{ConnectionEvent, Service, Time};
use crate::udp::UdpPort;
use crate::{clock, FrontendConfig, Shared};

/// Token of the worker's waker (new connections, shutdown).
pub(crate) const WAKER_TOKEN: Token = Token(0);
/// Tokens 1..CONN_BASE are UDP sockets.
const UDP_BASE: usize = 1;
/// First token used for connections.
const CONN_BASE: usize = 1 << 16;
/// UDP receive batches served per loop iteration before looking at TCP again.
const UDP_BUDGET_BATCHES: usize = 8;
/// Buffer pairs of closed connections a worker keeps for new ones.
const BUFFER_POOL_MAX: usize = 64;
/// How often idle connections are looked for.
const IDLE_SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// Connections handed from the acceptor to one worker.
pub(crate) struct Inbox {
    pub(crate) queue: Mutex<Vec<Stream>>,
    pub(crate) waker: Waker,
}

struct Entry<S: Service> {
    stream: Stream,
    conn: Connection<S>,
    queued: bool,
}

/// One worker's event loop state.
pub(crate) struct Worker<'a, S: Service> {
    pub(crate) index: usize,
    pub(crate) service: &'a S,
    pub(crate) shared: &'a Shared,
    pub(crate) config: &'a FrontendConfig,
    pub(crate) poll: Poll,
    pub(crate) inbox: Arc<Inbox>,
    pub(crate) udp: Vec<UdpPort>,
    conns: Vec<Option<Entry<S>>>,
    free: Vec<usize>,
    pending: Vec<usize>,
    live: usize,
    /// Buffers of closed connections, reused at accept (bounded).
    pool: Vec<(PageBuf, PageBuf)>,
    /// Bytes moved since the statistics were last published.
    traffic: Traffic,
}

impl<'a, S: Service> Worker<'a, S> {
    pub(crate) fn new(
        index: usize,
        service: &'a S,
        shared: &'a Shared,
        config: &'a FrontendConfig,
        poll: Poll,
        inbox: Arc<Inbox>,
        udp: Vec<UdpPort>,
    ) -> Self {
        Worker {
            index,
            service,
            shared,
            config,
            poll,
            inbox,
            udp,
            conns: Vec::new(),
            free: Vec::new(),
            pending: Vec::new(),
            live: 0,
            pool: Vec::new(),
            traffic: Traffic::default(),
        }
    }

    /// Runs until shutdown and every connection is closed (or the grace
    /// period is over).
    pub(crate) fn run(mut self) -> io::Result<()> {
        for (i, u) in self.udp.iter().enumerate() {
            let fd = std::os::fd::AsRawFd::as_raw_fd(u.socket());
            self.poll.registry().register(
                &mut mio::unix::SourceFd(&fd),
                Token(UDP_BASE + i),
                Interest::READABLE,
            )?;
        }
        let mut events = Events::with_capacity(1024);
        let mut last_sweep = Instant::now();
        let mut stop_deadline: Option<Instant> = None;
        loop {
            let stopping = self.shared.stop.load(SeqCst);
            let busy = !self.pending.is_empty() || (!stopping && self.udp.iter().any(|u| u.ready));
            let timeout = if busy {
                Duration::ZERO
            } else if stopping {
                Duration::from_millis(10)
            } else {
                IDLE_SWEEP_INTERVAL
            };
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
            let now = clock::unix_now();
            for ev in events.iter() {
                match ev.token() {
                    WAKER_TOKEN => self.take_new_connections(now),
                    Token(t) if t >= CONN_BASE => {
                        let readable = ev.is_readable() || ev.is_read_closed() || ev.is_error();
                        if ev.is_read_closed() || ev.is_error() {
                            if let Some(Some(e)) = self.conns.get_mut(t - CONN_BASE) {
                                e.conn.note_hangup();
                            }
                        }
                        self.drive(t - CONN_BASE, now, readable, !stopping)
                    }
                    Token(t) => {
                        if let Some(u) = self.udp.get_mut(t - UDP_BASE) {
                            u.ready = true;
                        }
                    }
                }
            }
            for idx in std::mem::take(&mut self.pending) {
                if let Some(Some(e)) = self.conns.get_mut(idx) {
                    e.queued = false;
                }
                self.drive(idx, now, false, !stopping);
            }
            self.publish_traffic();
            if !stopping {
                for u in &mut self.udp {
                    if u.ready {
                        u.ready = !u.serve(
                            self.service,
                            now,
                            UDP_BUDGET_BATCHES,
                            &self.shared.stats,
                            &self.shared.udp_latency,
                        );
                    }
                }
            }
            if !stopping
                && (self.config.idle_timeout_secs > 0 || self.config.tls.is_some())
                && last_sweep.elapsed() >= IDLE_SWEEP_INTERVAL
            {
                last_sweep = Instant::now();
                self.close_idle(now);
            }
            if stopping {
                let deadline = match stop_deadline {
                    Some(d) => d,
                    None => {
                        // First iteration after the stop: give every
                        // connection a turn to answer what it has and close.
                        let d = Instant::now() + self.config.shutdown_grace;
                        stop_deadline = Some(d);
                        self.take_new_connections(now);
                        for idx in 0..self.conns.len() {
                            self.drive(idx, now, false, false);
                        }
                        d
                    }
                };
                if self.live == 0 {
                    self.publish_traffic();
                    return Ok(());
                }
                if Instant::now() >= deadline {
                    log::warn!(
                        "worker {}: closing {} connections with replies still pending",
                        self.index,
                        self.live
                    );
                    for idx in 0..self.conns.len() {
                        self.close(idx);
                    }
                    self.publish_traffic();
                    return Ok(());
                }
            }
        }
    }

    fn take_new_connections(&mut self, now: Time) {
        let streams =
            std::mem::take(&mut *self.inbox.queue.lock().unwrap_or_else(|p| p.into_inner()));
        for stream in streams {
            if let Err(e) = self.add(stream, now) {
                log::warn!("worker {}: cannot set up a connection: {e}", self.index);
                self.connection_gone();
            }
        }
    }

    fn add(&mut self, mut stream: Stream, now: Time) -> io::Result<()> {
        let mut conn = match self.pool.pop() {
            Some((r, w)) => Connection::with_buffers(self.service, r, w, now),
            None => Connection::new(
                self.service,
                self.config.read_buffer_bytes,
                self.config.write_buffer_bytes,
                now,
            )?,
        };
        if let Some(peer) = stream.peer_addr() {
            conn.set_client(self.service, peer);
        }
        let idx = match self.free.pop() {
            Some(i) => i,
            None => {
                self.conns.push(None);
                self.conns.len() - 1
            }
        };
        if let Err(e) = self.poll.registry().register(
            &mut stream,
            Token(CONN_BASE + idx),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            self.free.push(idx);
            return Err(e);
        }
        self.conns[idx] = Some(Entry {
            stream,
            conn,
            queued: false,
        });
        self.live += 1;
        Ok(())
    }

    fn drive(&mut self, idx: usize, now: Time, readable: bool, accept_input: bool) {
        let Some(Some(e)) = self.conns.get_mut(idx) else {
            return;
        };
        let r = e.conn.drive(
            self.service,
            &mut e.stream,
            now,
            self.config.turn_steps,
            readable,
            accept_input,
            &mut self.traffic,
            &self.shared.stats,
            &self.shared.tcp_latency,
        );
        match r {
            Drive::Close => self.close(idx),
            Drive::Yield => {
                if !e.queued {
                    e.queued = true;
                    self.pending.push(idx);
                }
                self.service.connection_event(ConnectionEvent::Yielded);
            }
            Drive::WaitRead | Drive::WaitWrite => {}
        }
    }

    /// Adds the bytes moved since the last call to the front end's
    /// statistics (the service counted them as they moved).
    fn publish_traffic(&mut self) {
        let t = std::mem::take(&mut self.traffic);
        if t.read > 0 {
            self.shared.stats.tcp_bytes_read.add(t.read);
        }
        if t.written > 0 {
            self.shared.stats.tcp_bytes_written.add(t.written);
        }
    }

    fn close(&mut self, idx: usize) {
        let Some(slot) = self.conns.get_mut(idx) else {
            return;
        };
        if let Some(mut e) = slot.take() {
            let _ = self.poll.registry().deregister(&mut e.stream);
            drop(e.stream);
            if self.pool.len() < BUFFER_POOL_MAX {
                self.pool.push(e.conn.into_buffers());
            }
            self.free.push(idx);
            self.live -= 1;
            self.connection_gone();
        }
    }

    /// Bookkeeping for a connection the acceptor counted that is now gone.
    fn connection_gone(&self) {
        self.shared.loads[self.index].fetch_sub(1, Relaxed);
        self.service.connection_event(ConnectionEvent::Closed);
    }

    /// Closes connections idle past the idle timeout, and TLS handshakes
    /// past their deadline (counted by the TLS layer).
    fn close_idle(&mut self, now: Time) {
        let limit = self.config.idle_timeout_secs;
        let at = Instant::now();
        for idx in 0..self.conns.len() {
            if let Some(Some(e)) = self.conns.get_mut(idx) {
                if e.stream.handshake_expired(at) {
                    self.close(idx);
                    continue;
                }
            }
            let idle = match &self.conns[idx] {
                Some(e) => limit > 0 && now.saturating_sub(e.conn.last_active()) >= limit,
                None => false,
            };
            if idle {
                self.shared.stats.idle_closed.incr();
                self.close(idx);
            }
        }
    }
}

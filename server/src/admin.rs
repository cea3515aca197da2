//! The admin endpoint (`--admin-port`, default 9999 on `--admin-listen`,
//! default 127.0.0.1): memcache text `stats`, `stats settings`, `version`
//! and `quit`, and HTTP/1.x `GET /metrics` (Prometheus text 0.0.4) and
//! `GET /metrics.json`, on one port; the first line tells which.
//!
//! ```text
//!  "petrel-admin" thread: accept ─┬─ at most MAX_CONNECTIONS at once: a thread each
//!                                 │    ("petrel-admin-conn"), read/write timeouts
//!                                 └─ more: refused with a line and closed
//!  a connection: first line "GET /path HTTP/1.1" ─▶ HTTP: one response, close
//!                anything else                    ─▶ memcache text, line by line
//! ```
//!
//! The threads are scoped to [`observe`], which runs the server: when
//! serving ends they notice within [`STOP_POLL`] and end too. A third
//! thread ("petrel-metrics-window") reads the latency histograms every
//! [`metrics_window::STEP`] for the last-minute quantiles of `stats`,
//! `/metrics.json` and the stats log line. Nothing here
//! runs on a worker thread; collecting metrics allocates and reads atomics
//! only. A bad request gets `400`, `404` or `405` (HTTP) or
//! `ERROR` / `CLIENT_ERROR` (text), never a panic; the `stats` periodic
//! log line ([`start_stats_log`]) shares the same figures.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::thread::Scope;
use std::time::{Duration, Instant};

use petrel_core::engine::{Session, Status, Transport};
use petrel_core::histogram::CommandClass;

use crate::config::Settings;
use crate::metrics::{self, Family, Sources};
use crate::metrics_settings::ObservabilitySettings;
use crate::metrics_window::{self, LatencyWindow};

/// What the admin threads read: the sources and the latency window.
pub struct Observed<'s, 'e> {
    /// Where the figures come from.
    pub sources: &'s Sources<'e>,
    /// Readings for the last-minute quantiles.
    pub window: &'s LatencyWindow,
}

impl Observed<'_, '_> {
    /// Every figure now, latency windows included.
    pub fn collect(&self) -> Vec<Family> {
        let mut f = self.sources.collect();
        self.window.annotate(Instant::now(), &mut f);
        f
    }
}

/// Admin connections served at once; more are refused.
pub const MAX_CONNECTIONS: usize = 8;
/// Longest request line or header line.
const LINE_MAX_BYTES: usize = 4096;
/// Most header bytes of one HTTP request.
const HEADERS_MAX_BYTES: usize = 16 * 1024;
/// A connection idle this long is closed.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the admin threads look at the stop flag.
pub const STOP_POLL: Duration = Duration::from_millis(200);

/// Binds the admin endpoint (before privileges are dropped). `Ok(None)`
/// when it is off (`--admin-port 0`), or when the default port is taken
/// (logged: another server on this machine has it); a port asked for
/// explicitly that cannot be bound is an error.
pub fn bind(s: &Settings) -> Result<Option<TcpListener>, String> {
    if s.admin_port == 0 {
        return Ok(None);
    }
    let addr = SocketAddr::new(s.observability.admin_listen, s.admin_port);
    match TcpListener::bind(addr) {
        Ok(l) => Ok(Some(l)),
        Err(e) if !s.observability.admin_port_explicit => {
            log::warn!(
                "admin endpoint off: cannot bind the default admin port {addr}: {e} \
                 (give --admin-port PORT, or 0 to turn it off)"
            );
            Ok(None)
        }
        Err(e) => Err(format!("petrel: --admin-port: cannot bind {addr}: {e}")),
    }
}

/// Runs `serve` (the server's front ends, until shutdown) with the admin
/// endpoint on `listener` and the periodic stats line, then stops both.
pub fn observe<R>(
    settings: &ObservabilitySettings,
    listener: Option<TcpListener>,
    sources: Sources<'_>,
    serve: impl FnOnce() -> R,
) -> R {
    let stop = AtomicBool::new(false);
    let open = AtomicUsize::new(0);
    let window = LatencyWindow::new();
    let observed = Observed {
        sources: &sources,
        window: &window,
    };
    std::thread::scope(|scope| {
        let sources = &observed;
        let stop = &stop;
        let open = &open;
        let every = settings.stats_log_interval_secs;
        if listener.is_some() || every > 0 {
            let spawned = std::thread::Builder::new()
                .name("petrel-metrics-window".into())
                .spawn_scoped(scope, move || {
                    let mut next = Instant::now();
                    while !stop.load(SeqCst) {
                        let now = Instant::now();
                        if now >= next {
                            sources.window.record(now, &sources.sources.collect());
                            next += metrics_window::STEP;
                        }
                        std::thread::sleep(
                            STOP_POLL.min(next.saturating_duration_since(Instant::now())),
                        );
                    }
                });
            if let Err(e) = spawned {
                log::warn!("last-minute latency quantiles off: cannot start a thread: {e}");
            }
        }
        if let Some(l) = listener {
            match l.local_addr() {
                Ok(a) => log::info!(
                    "admin endpoint on {a}: stats, version, GET /metrics, GET /metrics.json"
                ),
                Err(e) => log::warn!("admin endpoint: {e}"),
            }
            if let Err(e) = std::thread::Builder::new()
                .name("petrel-admin".into())
                .spawn_scoped(scope, move || accept_loop(scope, &l, sources, stop, open))
            {
                log::warn!("admin endpoint off: cannot start its thread: {e}");
            }
        }
        if every > 0 {
            let spawned = std::thread::Builder::new()
                .name("petrel-stats-log".into())
                .spawn_scoped(scope, move || {
                    let interval = Duration::from_secs(every);
                    let mut next = Instant::now() + interval;
                    while !stop.load(SeqCst) {
                        std::thread::sleep(
                            STOP_POLL.min(next.saturating_duration_since(Instant::now())),
                        );
                        if Instant::now() >= next {
                            log::info!("{}", stats_line(sources));
                            next += interval;
                        }
                    }
                });
            if let Err(e) = spawned {
                log::warn!("stats log off: cannot start its thread: {e}");
            }
        }
        let r = serve();
        stop.store(true, SeqCst);
        r
    })
}

/// Waits up to `timeout` for `fd` to become readable.
fn wait_readable(fd: i32, timeout: Duration) -> bool {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd for the duration of the call.
    let n = unsafe { libc::poll(&mut pfd, 1, timeout.as_millis() as libc::c_int) };
    n > 0
}

fn accept_loop<'scope>(
    scope: &'scope Scope<'scope, '_>,
    listener: &TcpListener,
    sources: &'scope Observed<'scope, '_>,
    stop: &'scope AtomicBool,
    open: &'scope AtomicUsize,
) {
    while !stop.load(SeqCst) {
        if !wait_readable(listener.as_raw_fd(), STOP_POLL) {
            continue;
        }
        let stream = match listener.accept() {
            Ok((s, _)) => s,
            Err(e) => {
                log::debug!("admin: accept failed: {e}");
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        if open.fetch_add(1, SeqCst) >= MAX_CONNECTIONS {
            open.fetch_sub(1, SeqCst);
            let mut s = stream;
            let _ = s.write_all(b"SERVER_ERROR too many admin connections\r\n");
            continue;
        }
        let spawned = std::thread::Builder::new()
            .name("petrel-admin-conn".into())
            .spawn_scoped(scope, move || {
                if let Err(e) = serve(stream, sources, stop) {
                    log::debug!("admin connection: {e}");
                }
                open.fetch_sub(1, SeqCst);
            });
        if let Err(e) = spawned {
            open.fetch_sub(1, SeqCst);
            log::warn!("admin: cannot start a connection thread: {e}");
        }
    }
}

/// Reads one line (up to `\n`) into `line`, at most `max` bytes, keeping
/// what arrived across read timeouts (the caller retries). `Ok(false)` at
/// EOF; an over-long line is an `InvalidData` error.
fn read_line(r: &mut impl BufRead, line: &mut Vec<u8>, max: usize) -> io::Result<bool> {
    let room = (max + 1).saturating_sub(line.len()) as u64;
    let n = r.take(room).read_until(b'\n', line)?;
    if n == 0 && line.is_empty() {
        return Ok(false);
    }
    if line.last() != Some(&b'\n') {
        if line.len() > max {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "line too long"));
        }
        if n == 0 {
            // EOF after a partial line: take it as the last line
            return Ok(true);
        }
        return Err(io::ErrorKind::WouldBlock.into());
    }
    while matches!(line.last(), Some(b'\n' | b'\r')) {
        line.pop();
    }
    Ok(true)
}

/// Reads the next line, waiting across read timeouts until `stop` or the
/// idle limit. `Ok(None)` at EOF, when stopping, or when idle too long.
fn next_line(r: &mut impl BufRead, stop: &AtomicBool, max: usize) -> io::Result<Option<Vec<u8>>> {
    let mut line = Vec::new();
    let idle_until = Instant::now() + IO_TIMEOUT;
    loop {
        match read_line(r, &mut line, max) {
            Ok(true) => return Ok(Some(line)),
            Ok(false) => return Ok(None),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                if stop.load(SeqCst) || Instant::now() >= idle_until {
                    return Ok(None);
                }
            }
            Err(e) => return Err(e),
        }
    }
}

/// Serves one admin connection to its end.
pub fn serve(stream: TcpStream, sources: &Observed<'_, '_>, stop: &AtomicBool) -> io::Result<()> {
    stream.set_read_timeout(Some(STOP_POLL))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut out = stream.try_clone()?;
    let mut r = BufReader::new(stream);
    let mut first = true;
    loop {
        let line = match next_line(&mut r, stop, LINE_MAX_BYTES) {
            Ok(Some(l)) => l,
            Ok(None) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                out.write_all(b"CLIENT_ERROR line too long\r\n")?;
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        if first && is_http_request_line(&line) {
            return serve_http(&line, &mut r, &mut out, sources, stop);
        }
        first = false;
        let reply = text_command(&line, sources);
        match reply {
            TextReply::Send(bytes) => out.write_all(&bytes)?,
            TextReply::Close => return Ok(()),
        }
    }
}

/// What a memcache text line gets.
pub enum TextReply {
    /// Send this.
    Send(Vec<u8>),
    /// Close the connection.
    Close,
}

/// Answers one memcache text command of the admin port.
pub fn text_command(line: &[u8], sources: &Observed<'_, '_>) -> TextReply {
    let text = String::from_utf8_lossy(line);
    let words: Vec<&str> = text.split_ascii_whitespace().collect();
    match words.as_slice() {
        ["version"] => {
            let version = sources.sources.engine.config().version;
            TextReply::Send(format!("VERSION {version}\r\n").into_bytes())
        }
        ["quit"] => TextReply::Close,
        ["stats"] => {
            // memcached's figures as the data port prints them, then the rest
            let mut body = engine_stats(sources, b"stats\r\n");
            if body.ends_with(b"END\r\n") {
                body.truncate(body.len() - 5);
            }
            body.extend_from_slice(metrics::stat_lines(&sources.collect()).as_bytes());
            body.extend_from_slice(b"END\r\n");
            TextReply::Send(body)
        }
        ["stats", ..] => {
            let mut req = line.to_vec();
            req.extend_from_slice(b"\r\n");
            TextReply::Send(engine_stats(sources, &req))
        }
        [] => TextReply::Send(b"ERROR\r\n".to_vec()),
        _ => TextReply::Send(b"ERROR\r\n".to_vec()),
    }
}

/// The engine's reply to one `stats ...` request, however long.
fn engine_stats(sources: &Observed<'_, '_>, request: &[u8]) -> Vec<u8> {
    let sources = sources.sources;
    let mut session = Session::new(Transport::Tcp);
    let mut buf = vec![0u8; 64 * 1024];
    let mut out = Vec::new();
    let now = petrel_tcp::unix_now();
    for _ in 0..1024 {
        let p = sources.engine.process(&mut session, request, &mut buf, now);
        out.extend_from_slice(&buf[..p.written]);
        if p.status != Status::OutputFull {
            break;
        }
    }
    out
}

fn is_http_request_line(line: &[u8]) -> bool {
    let text = String::from_utf8_lossy(line);
    let mut w = text.split(' ');
    let (Some(method), Some(_), Some(version), None) = (w.next(), w.next(), w.next(), w.next())
    else {
        return false;
    };
    version.starts_with("HTTP/")
        && !method.is_empty()
        && method.bytes().all(|b| b.is_ascii_uppercase())
}

/// An HTTP response: status, content type, body.
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// The body.
    pub body: Vec<u8>,
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        _ => "Error",
    }
}

fn text_response(status: u16, body: &str) -> HttpResponse {
    HttpResponse {
        status,
        content_type: "text/plain; charset=utf-8",
        body: body.as_bytes().to_vec(),
    }
}

/// Routes one HTTP request line (headers already read).
pub fn http_route(line: &[u8], sources: &Observed<'_, '_>) -> HttpResponse {
    let text = String::from_utf8_lossy(line);
    let mut w = text.split(' ');
    let (Some(method), Some(target)) = (w.next(), w.next()) else {
        return text_response(400, "bad request line\n");
    };
    let path = target.split('?').next().unwrap_or("");
    let known = matches!(path, "/metrics" | "/metrics.json" | "/");
    if !known {
        return text_response(404, "not found; try /metrics or /metrics.json\n");
    }
    if method != "GET" && method != "HEAD" {
        return text_response(405, "only GET\n");
    }
    match path {
        "/metrics" => HttpResponse {
            status: 200,
            content_type: "text/plain; version=0.0.4; charset=utf-8",
            body: metrics::prometheus(&sources.collect()).into_bytes(),
        },
        "/metrics.json" => HttpResponse {
            status: 200,
            content_type: "application/json",
            body: metrics::json(&sources.collect()).into_bytes(),
        },
        _ => text_response(200, "petrel admin: /metrics (Prometheus), /metrics.json\n"),
    }
}

fn serve_http(
    line: &[u8],
    r: &mut impl BufRead,
    out: &mut impl Write,
    sources: &Observed<'_, '_>,
    stop: &AtomicBool,
) -> io::Result<()> {
    // headers: read and ignore, bounded
    let mut header_bytes = 0usize;
    let mut response = None;
    loop {
        match next_line(r, stop, LINE_MAX_BYTES) {
            Ok(Some(h)) if h.is_empty() => break,
            Ok(Some(h)) => {
                header_bytes += h.len() + 2;
                if header_bytes > HEADERS_MAX_BYTES {
                    response = Some(text_response(431, "headers too large\n"));
                    break;
                }
            }
            Ok(None) => break,
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                response = Some(text_response(431, "header line too long\n"));
                break;
            }
            Err(e) => return Err(e),
        }
    }
    let head_only = line.starts_with(b"HEAD ");
    let resp = response.unwrap_or_else(|| http_route(line, sources));
    let mut msg = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        resp.status,
        reason(resp.status),
        resp.content_type,
        resp.body.len()
    )
    .into_bytes();
    if !head_only {
        msg.extend_from_slice(&resp.body);
    }
    out.write_all(&msg)?;
    out.flush()
}

/// The periodic stats line: `stats: name=value ...` for the figures an
/// operator looks at first, and p99 latency of get and set over TCP in the
/// last minute (0 when none was served).
pub fn stats_line(observed: &Observed<'_, '_>) -> String {
    let sources = observed.sources;
    let e = sources.engine.stats();
    let st = sources.engine.store().stats();
    let mut fams = metrics::latency_families(&[("tcp", sources.frontend.tcp_latency())]);
    observed.window.annotate(Instant::now(), &mut fams);
    let p99 = |c: CommandClass| {
        fams[0]
            .samples
            .iter()
            .find(|s| s.labels.iter().any(|(k, v)| *k == "class" && v == c.name()))
            .and_then(|s| match &s.value {
                metrics::Value::Latency(h) => h.window.map(|w| w.summary.quantiles[2] / 1000),
                _ => None,
            })
            .unwrap_or(0)
    };
    let mut line = format!(
        "stats: curr_connections={} total_connections={} cmd_get={} get_hits={} get_misses={} \
         cmd_set={} curr_items={} bytes={} evictions={} bytes_read={} bytes_written={} \
         tcp_get_p99_us={} tcp_set_p99_us={}",
        e.curr_connections.get(),
        e.total_connections.get(),
        e.cmd_get.get(),
        e.get_hits.get(),
        e.get_misses.get(),
        e.cmd_set.get(),
        st.items.get(),
        st.item_bytes.get(),
        st.evicted_items.get(),
        e.bytes_read.get(),
        e.bytes_written.get(),
        p99(CommandClass::Get),
        p99(CommandClass::Set),
    );
    let dropped = crate::logger::stats().lines_dropped.get();
    if dropped > 0 {
        line.push_str(&format!(" log_lines_dropped={dropped}"));
    }
    line
}

/// Counts of a family's scalar sample, for tests.
#[cfg(test)]
fn scalar(families: &[metrics::Family], name: &str) -> Option<u64> {
    families.iter().find(|f| f.name == name).and_then(|f| {
        match f.samples.first().map(|s| &s.value) {
            Some(metrics::Value::Int(v)) => Some(*v),
            _ => None,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use petrel_core::engine::{Engine, EngineConfig};

    fn sources() -> Sources<'static> {
        let cfg = EngineConfig::default();
        let arena: &'static mut [u8] =
            Box::leak(vec![0u8; Engine::required_bytes(&cfg).unwrap()].into_boxed_slice());
        let engine: &'static Engine<'static> =
            Box::leak(Box::new(Engine::new(&cfg, arena).unwrap()));
        let lo: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
        let f =
            petrel_tcp::Frontend::bind(petrel_tcp::FrontendConfig::new(vec![lo], vec![], 1 << 20))
                .unwrap();
        Sources {
            engine,
            frontend: f.stats(),
            extra: Vec::new(),
            guard: None,
        }
    }

    /// Each group reads the figures it declares: the names exposed for it
    /// come from its own declarations, not another struct's.
    #[test]
    fn every_group_reads_the_metrics_it_declares() {
        let s = sources();
        for g in metrics::GROUPS {
            let mut seen = Vec::new();
            g.read(&s, &mut |d, _| seen.push(d.name));
            let declared: Vec<&str> = g.descs.iter().map(|d| d.name).collect();
            assert_eq!(seen, declared, "group {}", g.prefix);
        }
    }

    /// Runs `f` with the sources observed and an empty window.
    fn with_observed(f: impl FnOnce(&Observed<'_, '_>)) {
        let s = sources();
        let w = LatencyWindow::new();
        f(&Observed {
            sources: &s,
            window: &w,
        })
    }

    #[test]
    fn http_routes_and_errors() {
        with_observed(http_routes_and_errors_with)
    }

    fn http_routes_and_errors_with(s: &Observed<'_, '_>) {
        let r = http_route(b"GET /metrics HTTP/1.1", s);
        assert_eq!(r.status, 200);
        let body = String::from_utf8(r.body).unwrap();
        assert!(body.contains("# TYPE petrel_engine_cmd_get_total counter"));
        assert_eq!(http_route(b"GET /metrics.json?x=1 HTTP/1.0", s).status, 200);
        assert_eq!(http_route(b"GET /nope HTTP/1.1", s).status, 404);
        assert_eq!(http_route(b"POST /metrics HTTP/1.1", s).status, 405);
        assert_eq!(http_route(b"GET", s).status, 400);
        assert!(is_http_request_line(b"GET / HTTP/1.1"));
        assert!(!is_http_request_line(b"stats"));
        assert!(!is_http_request_line(b"get a HTTP/1.1 x"));
    }

    #[test]
    fn text_commands() {
        with_observed(text_commands_with)
    }

    fn text_commands_with(s: &Observed<'_, '_>) {
        let TextReply::Send(v) = text_command(b"version", s) else {
            panic!()
        };
        assert!(v.starts_with(b"VERSION "));
        let TextReply::Send(st) = text_command(b"stats", s) else {
            panic!()
        };
        let st = String::from_utf8(st).unwrap();
        assert!(st.starts_with("STAT pid "), "{st}");
        // one name per figure: the engine's connection gauge, not the front end's copy
        assert!(st.contains("STAT engine_curr_connections 0\r\n"));
        assert!(!st.contains("STAT frontend_curr_connections "));
        assert!(st.contains("STAT max_connections "));
        assert!(st.contains("STAT process_cpu_seconds "));
        assert!(st.ends_with("\r\nEND\r\n"));
        assert_eq!(st.matches("END\r\n").count(), 1);
        let TextReply::Send(set) = text_command(b"stats settings", s) else {
            panic!()
        };
        assert!(String::from_utf8(set).unwrap().contains("STAT maxconns "));
        assert!(matches!(text_command(b"bogus", s), TextReply::Send(e) if e == b"ERROR\r\n"));
        assert!(matches!(text_command(b"quit", s), TextReply::Close));
        assert!(stats_line(s).starts_with("stats: curr_connections=0 "));
        assert_eq!(scalar(&s.collect(), "petrel_engine_cmd_get_total"), Some(0));
    }

    #[test]
    fn over_long_lines_and_garbage_do_not_panic() {
        let s = sources();
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let settings = ObservabilitySettings {
            admin_listen: addr.ip(),
            admin_port_explicit: true,
            stats_log_interval_secs: 1,
            klog: None,
        };
        observe(&settings, Some(l), s, || {
            for input in [
                vec![b'x'; 10_000],
                b"GET /metrics HTTP/1.1\r\n"
                    .iter()
                    .copied()
                    .chain(std::iter::repeat_n(b'h', 20_000))
                    .collect(),
                b"\x00\xff\r\n\r\n".to_vec(),
                b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            ] {
                let mut c = TcpStream::connect(addr).unwrap();
                c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                let _ = c.write_all(&input);
                let _ = c.shutdown(std::net::Shutdown::Write);
                let mut reply = Vec::new();
                let _ = c.read_to_end(&mut reply);
                assert!(!reply.is_empty(), "{:?}", &input[..20.min(input.len())]);
            }
        });
    }
}

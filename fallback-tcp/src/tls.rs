//! TLS on TCP listeners (memcached's `-Z`), with rustls and its `ring`
//! crypto provider.
//!
//! ```text
//!   socket <--records--> rustls ServerConnection <--plaintext--> Connection (conn.rs)
//!                           |  handshake, decrypt, encrypt
//!                           |  buffers bounded: TLS_BUFFER_LIMIT_BYTES out,
//!                           |  one record (+ one 64 KiB handshake message) in
//! ```
//!
//! A TLS connection is a [`TlsStream`]: it implements `Read` and `Write`
//! with plaintext on the connection's side and TLS records on the socket's,
//! so the connection state machine, the protocol and the engine do not know
//! whether a connection is encrypted. `Write::flush` pushes encrypted bytes
//! rustls still holds; the connection calls it after every round of writes.
//!
//! Certificates are read once at start-up into a [`TlsContext`]; `reload`
//! (the `refresh_certs` command, SIGHUP) reads the files again and swaps the
//! configuration atomically: connections already established keep theirs,
//! new handshakes use the new one, and a failed reload keeps the old one.
//! A handshake that does not complete within the handshake timeout is
//! closed by the worker's sweep and counted, so slow or truncated
//! handshakes cannot hold connection slots.
//!
//! Allocation: rustls allocates while handshaking (messages, keys) and, on
//! an established connection, one buffer per TLS record it decrypts into
//! its plaintext queue and one per record it encrypts (rustls 0.23's
//! buffered API: 2 allocations per request of one record each way, counted
//! with rustls 0.23.48); the amount held at once is bounded by the limits
//! above.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use mio::event::Source;
use mio::net::TcpStream;
use mio::{Interest, Registry, Token};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{NoServerSessionStorage, WebPkiClientVerifier};
use rustls::{RootCertStore, ServerConfig, ServerConnection};

/// Most bytes of plaintext waiting to be encrypted plus encrypted bytes
/// waiting for the socket, per connection. A reply larger than this is
/// streamed through it as the socket drains, as through the write buffer.
pub const TLS_BUFFER_LIMIT_BYTES: usize = 64 * 1024;
/// The handshake timeout when none is configured.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// memcached's `ssl_verify_mode` (0-3): whether clients must present a
/// certificate signed by the CA file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum VerifyMode {
    /// 0: no client certificate is asked for.
    #[default]
    None,
    /// 1: a certificate is asked for and, if presented, must verify.
    Request,
    /// 2: a verified certificate is required.
    Require,
    /// 3: as 2 (memcached's "once" only differs on renegotiation, which
    /// neither memcached nor Petrel allows).
    Once,
}

impl VerifyMode {
    /// memcached's number for the mode.
    pub fn number(self) -> u8 {
        match self {
            VerifyMode::None => 0,
            VerifyMode::Request => 1,
            VerifyMode::Require => 2,
            VerifyMode::Once => 3,
        }
    }

    /// The mode for memcached's number.
    pub fn from_number(n: u64) -> Option<VerifyMode> {
        Some(match n {
            0 => VerifyMode::None,
            1 => VerifyMode::Request,
            2 => VerifyMode::Require,
            3 => VerifyMode::Once,
            _ => return None,
        })
    }
}

/// What TLS is configured with; the files are read at start-up and at
/// every reload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsSettings {
    /// The server's certificate chain (PEM), end-entity certificate first.
    pub chain_cert: PathBuf,
    /// The private key (PEM: PKCS#8, PKCS#1 or SEC1); None = in `chain_cert`.
    pub key: Option<PathBuf>,
    /// CAs client certificates are verified against (PEM).
    pub ca_cert: Option<PathBuf>,
    /// Whether clients must present a certificate.
    pub verify_mode: VerifyMode,
    /// Accept TLS 1.2 (rustls offers 1.2 and 1.3; false = 1.3 only).
    pub allow_tls12: bool,
    /// Keep a server-side session cache for resumption.
    pub session_cache: bool,
    /// Close connections whose handshake has not completed in this time.
    pub handshake_timeout: Duration,
}

petrel_core::metrics! {
    /// TLS figures, in `stats` as `tls_<name>`.
    pub struct TlsStats {
        handshakes_ok: Counter("handshakes") "TLS handshakes completed",
        handshakes_failed: Counter("handshakes") "TLS handshakes that failed: a TLS error, a rejected client certificate, a client that is not speaking TLS, or a client that closed before the end",
        handshake_timeouts: Counter("handshakes") "TLS handshakes closed because they did not complete within the handshake timeout",
        errors: Counter("connections") "established TLS connections closed on a TLS error (a bad record, an unexpected message)",
        cert_reloads: Counter("reloads") "certificate reloads that succeeded (refresh_certs, SIGHUP)",
        cert_reload_failures: Counter("reloads") "certificate reloads that failed (the certificates in use were kept)",
        handshakes_in_progress: Gauge("connections") "TLS connections whose handshake has not completed yet",
    }
}

/// The TLS configuration shared by every TLS listener and connection, and
/// its counters.
pub struct TlsContext {
    settings: TlsSettings,
    config: RwLock<Arc<ServerConfig>>,
    /// Unix seconds of the last successful certificate load.
    loaded_at: AtomicU64,
    stats: TlsStats,
}

impl std::fmt::Debug for TlsContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsContext")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl TlsContext {
    /// Reads the certificate files. The error is memcached's text for the
    /// file that failed (without the line end).
    pub fn new(settings: TlsSettings) -> Result<TlsContext, String> {
        let config = load(&settings)?;
        Ok(TlsContext {
            settings,
            config: RwLock::new(Arc::new(config)),
            loaded_at: AtomicU64::new(crate::unix_now().into()),
            stats: TlsStats::new(),
        })
    }

    /// Reads the certificate files again. On success new handshakes use
    /// them (connections already established are not touched); on failure
    /// the certificates in use are kept and the error is memcached's text
    /// (without the line end).
    pub fn reload(&self) -> Result<(), String> {
        match load(&self.settings) {
            Ok(c) => {
                *self.config.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(c);
                self.loaded_at
                    .store(crate::unix_now().into(), Ordering::Relaxed);
                self.stats.cert_reloads.incr();
                Ok(())
            }
            Err(e) => {
                self.stats.cert_reload_failures.incr();
                Err(e)
            }
        }
    }

    /// The settings the context was made with.
    pub fn settings(&self) -> &TlsSettings {
        &self.settings
    }

    /// The counters.
    pub fn stats(&self) -> &TlsStats {
        &self.stats
    }

    /// Unix seconds of the last successful certificate load.
    pub fn loaded_at(&self) -> u64 {
        self.loaded_at.load(Ordering::Relaxed)
    }

    fn current(&self) -> Arc<ServerConfig> {
        self.config
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Starts the server side of a handshake on an accepted socket.
    pub(crate) fn accept(self: &Arc<Self>, sock: TcpStream) -> io::Result<TlsStream> {
        let mut tls = ServerConnection::new(self.current()).map_err(io::Error::other)?;
        tls.set_buffer_limit(Some(TLS_BUFFER_LIMIT_BYTES));
        self.stats.handshakes_in_progress.incr();
        Ok(TlsStream {
            sock,
            tls,
            ctx: self.clone(),
            deadline: Instant::now() + self.settings.handshake_timeout,
            handshaking: true,
            timed_out: false,
        })
    }
}

fn read_file(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| e.to_string())
}

/// Builds a server configuration from the files, checking each as
/// memcached does, in its order: chain, key, key against chain, CA.
fn load(s: &TlsSettings) -> Result<ServerConfig, String> {
    // ring's provider has no post-quantum key exchange (rustls deprecates it
    // for that); memcached 1.6.18 on OpenSSL 3.0 offers none either.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain_text = read_file(&s.chain_cert).map_err(|e| {
        format!(
            "Error loading the certificate chain: {} : {e}",
            s.chain_cert.display()
        )
    })?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&chain_text)
        .collect::<Result<_, _>>()
        .map_err(|e| {
            format!(
                "Error loading the certificate chain: {} : {e}",
                s.chain_cert.display()
            )
        })?;
    if chain.is_empty() {
        return Err(format!(
            "Error loading the certificate chain: {} : no certificate in the file",
            s.chain_cert.display()
        ));
    }
    let key_path = s.key.as_deref().unwrap_or(&s.chain_cert);
    let key_err = |e: String| format!("Error loading the key: {} : {e}", key_path.display());
    let key_text = read_file(key_path).map_err(key_err)?;
    let key = PrivateKeyDer::from_pem_slice(&key_text).map_err(|e| key_err(e.to_string()))?;
    let certified = rustls::sign::CertifiedKey::from_der(chain, key, &provider)
        .map_err(|e| format!("Error validating the certificate: {e}"))?;
    let verifier = match (&s.ca_cert, s.verify_mode) {
        (_, VerifyMode::None) => None,
        (None, _) => {
            return Err(
                "Error loading the CA certificate: ssl_verify_mode needs ssl_ca_cert".to_string(),
            )
        }
        (Some(ca), mode) => {
            let ca_err =
                |e: String| format!("Error loading the CA certificate: {} : {e}", ca.display());
            let text = read_file(ca).map_err(ca_err)?;
            let mut roots = RootCertStore::empty();
            for c in CertificateDer::pem_slice_iter(&text) {
                roots
                    .add(c.map_err(|e| ca_err(e.to_string()))?)
                    .map_err(|e| ca_err(e.to_string()))?;
            }
            if roots.is_empty() {
                return Err(ca_err("no certificate in the file".to_string()));
            }
            let b = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
            let b = if mode == VerifyMode::Request {
                b.allow_unauthenticated()
            } else {
                b
            };
            Some(b.build().map_err(|e| ca_err(e.to_string()))?)
        }
    };
    let versions: &[&rustls::SupportedProtocolVersion] = if s.allow_tls12 {
        &[&rustls::version::TLS13, &rustls::version::TLS12]
    } else {
        &[&rustls::version::TLS13]
    };
    let builder = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .map_err(|e| format!("Error setting up TLS: {e}"))?;
    let builder = match verifier {
        Some(v) => builder.with_client_cert_verifier(v),
        None => builder.with_no_client_auth(),
    };
    let mut config =
        builder.with_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(certified)));
    if !s.session_cache {
        config.session_storage = Arc::new(NoServerSessionStorage {});
        config.send_tls13_tickets = 0;
    }
    Ok(config)
}

/// A TLS connection over TCP: plaintext through `Read`/`Write`, records on
/// the socket.
pub(crate) struct TlsStream {
    sock: TcpStream,
    tls: ServerConnection,
    ctx: Arc<TlsContext>,
    /// When an unfinished handshake is closed.
    deadline: Instant,
    handshaking: bool,
    timed_out: bool,
}

impl TlsStream {
    pub(crate) fn peer_addr(&self) -> Option<SocketAddr> {
        self.sock.peer_addr().ok()
    }

    pub(crate) fn shutdown_write(&self) -> io::Result<()> {
        self.sock.shutdown(std::net::Shutdown::Write)
    }

    /// True when the handshake has not completed by its deadline; the
    /// connection is then counted as timed out and must be closed.
    pub(crate) fn handshake_expired(&mut self, now: Instant) -> bool {
        if self.handshaking && now >= self.deadline {
            self.timed_out = true;
            return true;
        }
        false
    }

    /// Notes the end of the handshake once rustls reports it.
    fn check_handshake(&mut self) {
        if self.handshaking && !self.tls.is_handshaking() {
            self.handshaking = false;
            self.ctx.stats.handshakes_in_progress.sub(1);
            self.ctx.stats.handshakes_ok.incr();
        }
    }

    /// Writes what rustls holds for the socket; WouldBlock if some is left.
    fn flush_tls(&mut self) -> io::Result<()> {
        while self.tls.wants_write() {
            match self.tls.write_tls(&mut self.sock) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Reads records from the socket and processes them: Ok(false) at the
    /// end of the stream. `drained` becomes true when the socket gave fewer
    /// bytes than rustls asked for (it holds no more for now).
    fn fill(&mut self, drained: &mut bool) -> io::Result<bool> {
        let mut src = ShortRead {
            sock: &mut self.sock,
            short: false,
        };
        let n = loop {
            match self.tls.read_tls(&mut src) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                r => break r?,
            }
        };
        *drained = src.short;
        if let Err(e) = self.tls.process_new_packets() {
            if self.handshaking && matches!(e, rustls::Error::InvalidMessage(_)) {
                // Not TLS at all (a plaintext client on a TLS port):
                // memcached (OpenSSL) sends no alert and the connection is
                // reset; do the same.
                reset_on_close(&self.sock);
            } else {
                // rustls queued an alert saying why: send it if the socket takes it.
                let _ = self.flush_tls();
            }
            if !self.handshaking {
                self.ctx.stats.errors.incr();
            }
            log::debug!("TLS error from {:?}: {e}", self.peer_addr());
            return Err(io::Error::new(io::ErrorKind::InvalidData, e));
        }
        self.check_handshake();
        // Handshake messages, session tickets, key updates.
        match self.flush_tls() {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
        Ok(n > 0)
    }
}

/// The socket as rustls reads it, noting a short read.
struct ShortRead<'a> {
    sock: &'a mut TcpStream,
    short: bool,
}

impl Read for ShortRead<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.sock.read(buf)?;
        self.short = n < buf.len();
        Ok(n)
    }
}

/// Makes closing `sock` reset the connection (SO_LINGER with a zero
/// timeout) instead of ending it with FIN.
fn reset_on_close(sock: &TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket fd and a pointer to a linger of the stated size.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        log::debug!("SO_LINGER failed: {}", io::Error::last_os_error());
    }
}

impl Read for TlsStream {
    /// Plaintext: whatever rustls holds, then records from the socket until
    /// `buf` is full or the socket is empty (WouldBlock when nothing came).
    /// The socket is empty when a read of it in this call was short (then no
    /// read is made only to hear WouldBlock; the caller treats a short
    /// return as the end of what the socket holds and waits for the next
    /// readable edge) or said WouldBlock.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut n = 0;
        let mut drained = false;
        loop {
            match self.tls.reader().read(&mut buf[n..]) {
                // close_notify received: the end of the stream.
                Ok(0) if n < buf.len() => return Ok(n),
                Ok(k) => {
                    n += k;
                    if n == buf.len() {
                        return Ok(n);
                    }
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // The peer closed without close_notify.
                Err(_) if n > 0 => return Ok(n),
                Err(e) => {
                    return if e.kind() == io::ErrorKind::UnexpectedEof {
                        Ok(0)
                    } else {
                        Err(e)
                    }
                }
            }
            if n > 0 && drained {
                return Ok(n);
            }
            match self.fill(&mut drained) {
                Ok(true) => {}
                Ok(false) if n > 0 => return Ok(n),
                Ok(false) => return Ok(0),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && n > 0 => return Ok(n),
                Err(e) => return Err(e),
            }
        }
    }
}

impl Write for TlsStream {
    /// Takes plaintext once rustls has handed its earlier records to the
    /// socket (WouldBlock until then), at most [`TLS_BUFFER_LIMIT_BYTES`].
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.flush_tls()?;
        let n = self.tls.writer().write(buf)?;
        match self.flush_tls() {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
        if n == 0 && !buf.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    }

    /// Hands every encrypted byte rustls holds to the socket; WouldBlock
    /// when the socket is full.
    fn flush(&mut self) -> io::Result<()> {
        self.flush_tls()
    }
}

impl Drop for TlsStream {
    fn drop(&mut self) {
        if self.handshaking {
            self.ctx.stats.handshakes_in_progress.sub(1);
            if self.timed_out {
                self.ctx.stats.handshake_timeouts.incr();
            } else {
                self.ctx.stats.handshakes_failed.incr();
            }
        } else {
            // A polite end of the session, if the socket takes it now.
            self.tls.send_close_notify();
            let _ = self.flush_tls();
        }
    }
}

impl Source for TlsStream {
    fn register(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
        self.sock.register(r, t, i)
    }

    fn reregister(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
        self.sock.reregister(r, t, i)
    }

    fn deregister(&mut self, r: &Registry) -> io::Result<()> {
        self.sock.deregister(r)
    }
}

#[cfg(test)]
mod tests {
    //! Allocations of an established TLS connection, counted by a global allocator that counts
    //! the calls made on threads that ask it to.
    use super::*;
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    struct Counting;

    thread_local! {
        /// Allocations made on this thread while `COUNTING` is set.
        static COUNT: Cell<u64> = const { Cell::new(0) };
        static COUNTING: Cell<bool> = const { Cell::new(false) };
    }

    fn note() {
        // try_with: an allocation during thread teardown is not counted
        let _ = COUNTING.try_with(|on| {
            if on.get() {
                let _ = COUNT.try_with(|c| c.set(c.get() + 1));
            }
        });
    }

    // SAFETY: forwards to the system allocator unchanged; only counts calls.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            note();
            // SAFETY: same contract as the caller's.
            unsafe { System.alloc(layout) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // SAFETY: same contract as the caller's.
            unsafe { System.dealloc(ptr, layout) }
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            note();
            // SAFETY: same contract as the caller's.
            unsafe { System.realloc(ptr, layout, new_size) }
        }
    }

    #[global_allocator]
    static GLOBAL: Counting = Counting;

    /// Runs `f`, counting the allocations this thread makes meanwhile.
    fn counted<T>(count: &mut u64, f: impl FnOnce() -> T) -> T {
        COUNT.with(|c| c.set(0));
        COUNTING.with(|on| on.set(true));
        let r = f();
        COUNTING.with(|on| on.set(false));
        *count += COUNT.with(|c| c.get());
        r
    }

    /// A CA and a server certificate it signed for `localhost`, made with `openssl`; None (a
    /// visible skip) without it.
    fn certs(dir: &Path) -> Option<()> {
        if !petrel_testkit::skip::require_program("openssl", "version", "scripts/setup installs it")
        {
            return None;
        }
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("ext"), "subjectAltName=DNS:localhost\n").unwrap();
        for args in [
            "req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 2 -subj /CN=ca",
            "req -newkey rsa:2048 -nodes -keyout srv.key -out srv.csr -subj /CN=localhost",
            "x509 -req -in srv.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out srv.crt -days 2 -extfile ext",
        ] {
            let out = std::process::Command::new("openssl")
                .args(args.split(' '))
                .current_dir(dir)
                .output()
                .unwrap();
            assert!(out.status.success(), "openssl {args}: {out:?}");
        }
        Some(())
    }

    /// After the handshake, a request and its reply (one record each way) cost the server side
    /// (TlsStream's read, write and flush) a fixed number of allocations: rustls' buffered API
    /// allocates the buffer each record is decrypted into and the one each is encrypted into.
    /// The figure is printed; more than 2 per request fails.
    #[test]
    fn allocations_per_request_after_the_handshake() {
        let dir = std::env::temp_dir().join(format!("petrel-tls-alloc-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        if certs(&dir).is_none() {
            return;
        }
        let ctx = Arc::new(
            TlsContext::new(TlsSettings {
                chain_cert: dir.join("srv.crt"),
                key: Some(dir.join("srv.key")),
                ca_cert: None,
                verify_mode: VerifyMode::None,
                allow_tls12: true,
                session_cache: false,
                handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            })
            .unwrap(),
        );
        let mut roots = RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(dir.join("ca.crt")).unwrap() {
            roots.add(c.unwrap()).unwrap();
        }
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut client = rustls::ClientConnection::new(
            Arc::new(config),
            rustls::pki_types::ServerName::try_from("localhost").unwrap(),
        )
        .unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut csock = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (ssock, _) = listener.accept().unwrap();
        ssock.set_nonblocking(true).unwrap();
        csock.set_nonblocking(true).unwrap();
        let mut server = ctx.accept(TcpStream::from_std(ssock)).unwrap();
        let mut buf = vec![0u8; 64 * 1024];
        // One step of each side; the plaintext the client received.
        let mut pump = |client: &mut rustls::ClientConnection,
                        server: &mut TlsStream,
                        buf: &mut [u8],
                        allocs: &mut u64|
         -> (Vec<u8>, Vec<u8>) {
            while client.wants_write() {
                match client.write_tls(&mut csock) {
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => panic!("client write: {e}"),
                }
            }
            let mut got = Vec::new();
            let r = counted(allocs, || server.read(buf));
            match r {
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("server read: {e}"),
            }
            match client.read_tls(&mut csock) {
                Ok(_) => {
                    client.process_new_packets().expect("client TLS");
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("client read: {e}"),
            }
            let mut plain = Vec::new();
            let _ = client.reader().read_to_end(&mut plain);
            (got, plain)
        };
        let mut handshake_allocs = 0;
        for _ in 0..10_000 {
            if !client.is_handshaking() && !server.handshaking {
                break;
            }
            pump(&mut client, &mut server, &mut buf, &mut handshake_allocs);
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(
            !client.is_handshaking() && !server.handshaking,
            "the handshake did not complete"
        );
        const REQUEST: &[u8] = b"get k\r\n";
        const REPLY: &[u8] = b"VALUE k 0 32\r\nvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv\r\nEND\r\n";
        let mut round = |requests: u32, allocs: &mut u64| {
            for _ in 0..requests {
                client.writer().write_all(REQUEST).unwrap();
                let mut got = Vec::new();
                let mut spins = 0;
                while got.len() < REQUEST.len() {
                    got.extend(pump(&mut client, &mut server, &mut buf, allocs).0);
                    spins += 1;
                    assert!(spins < 100_000, "the request did not arrive");
                }
                assert_eq!(got, REQUEST);
                let n = counted(allocs, || {
                    let n = server.write(REPLY).unwrap();
                    server.flush().unwrap();
                    n
                });
                assert_eq!(n, REPLY.len());
                let mut plain = Vec::new();
                let mut spins = 0;
                while plain.len() < REPLY.len() {
                    plain.extend(pump(&mut client, &mut server, &mut buf, allocs).1);
                    spins += 1;
                    assert!(spins < 100_000, "the reply did not arrive");
                }
                assert_eq!(plain, REPLY);
            }
        };
        let mut warm = 0;
        round(100, &mut warm);
        let mut allocs = 0;
        const REQUESTS: u32 = 1000;
        round(REQUESTS, &mut allocs);
        let per = allocs as f64 / f64::from(REQUESTS);
        println!(
            "TLS server side: {per:.2} allocations per request after the handshake \
             ({allocs} in {REQUESTS}; handshake: {handshake_allocs})"
        );
        assert!(per <= 2.0, "{per} allocations per request");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

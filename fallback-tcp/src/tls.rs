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

    /// Reads records from the socket and processes them. Ok(false) at the
    /// end of the stream.
    fn fill(&mut self) -> io::Result<bool> {
        let n = loop {
            match self.tls.read_tls(&mut self.sock) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                r => break r?,
            }
        };
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
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut n = 0;
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
            match self.fill() {
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

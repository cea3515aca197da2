//! TLS on TCP listeners (memcached's `-Z`), with rustls and its `ring`
//! crypto provider.
//!
//! ```text
//!   socket <--records--> inbuf / outbuf (fixed, per connection) <--plaintext--> Connection
//!     handshake: rustls UnbufferedServerConnection reads inbuf, writes outbuf
//!     after it:  Records (ring AEAD with rustls' keys) opens in place in inbuf,
//!                seals into outbuf; rustls' KernelConnection makes KeyUpdate keys
//! ```
//!
//! A TLS connection is a [`TlsStream`]: it implements `Read` and `Write`
//! with plaintext on the connection's side and TLS records on the socket's,
//! so the connection state machine, the protocol and the engine do not know
//! whether a connection is encrypted. `Write::flush` pushes the records
//! waiting in the outgoing buffer; the connection calls it after every round
//! of writes.
//!
//! Certificates are read once at start-up into a [`TlsContext`]; `reload`
//! (the `refresh_certs` command, SIGHUP) reads the files again and swaps the
//! configuration atomically: connections already established keep theirs,
//! new handshakes use the new one, and a failed reload keeps the old one.
//! A handshake that does not complete within the handshake timeout is
//! closed by the worker's sweep and counted, so slow or truncated
//! handshakes cannot hold connection slots.
//!
//! Allocation: the two buffers are mapped (anonymous memory, resident as used) when a
//! connection is accepted; rustls allocates while
//! handshaking (messages, keys) and for a TLS 1.3 key update; nothing per
//! request after the handshake (rustls 0.23's buffered and unbuffered APIs
//! both allocate a buffer per record each way, which is why the record layer
//! after the handshake is Petrel's). After the handshake the record layer
//! keeps rustls' rules: a KeyUpdate asking for one is answered with ours, a
//! TLS 1.2 renegotiation gets a warning `no_renegotiation` once, warning
//! alerts are tolerated as rustls tolerates them (4 in all; in TLS 1.3 only
//! user_canceled), and the sending key is changed (TLS 1.3) or the
//! connection closed (TLS 1.2) before the suite's confidentiality limit.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::buffer::PageBuf;

use mio::event::Source;
use mio::net::TcpStream;
use mio::{Interest, Registry, Token};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{NoServerSessionStorage, WebPkiClientVerifier};
use rustls::{RootCertStore, ServerConfig};

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
        let conn = rustls::server::UnbufferedServerConnection::new(self.current())
            .map_err(io::Error::other)?;
        self.stats.handshakes_in_progress.incr();
        TlsStream::new(sock, conn, self.clone())
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
    // The record layer after the handshake is Petrel's, with the keys rustls made.
    config.enable_secret_extraction = true;
    if !s.session_cache {
        config.session_storage = Arc::new(NoServerSessionStorage {});
        config.send_tls13_tickets = 0;
    }
    Ok(config)
}

/// Most plaintext bytes in one TLS record.
const MAX_FRAGMENT: usize = 16 * 1024;
/// A record's header: type, version, length.
const HEADER: usize = 5;
/// Most bytes a record's protection adds to its plaintext: the TLS 1.2 explicit nonce (8), the
/// TLS 1.3 inner content type (1) and the AEAD tag (16).
const OVERHEAD: usize = 8 + 1 + 16;
/// Most ciphertext bytes in a record a peer may send (RFC 8446 5.2: 2^14 + 256).
const MAX_CIPHERTEXT: usize = MAX_FRAGMENT + 256;
/// The incoming buffer: one whole handshake message of up to 64 KiB (a client's certificate
/// chain) while handshaking, one record of the largest size after it.
const IN_BYTES: usize = 64 * 1024 + HEADER + MAX_CIPHERTEXT;

const CONTENT_ALERT: u8 = 21;
const CONTENT_HANDSHAKE: u8 = 22;
const CONTENT_APPLICATION_DATA: u8 = 23;
const HANDSHAKE_CLIENT_HELLO: u8 = 1;
const HANDSHAKE_KEY_UPDATE: u8 = 24;
const ALERT_CLOSE_NOTIFY: u8 = 0;
const ALERT_UNEXPECTED_MESSAGE: u8 = 10;
const ALERT_BAD_RECORD_MAC: u8 = 20;
const ALERT_RECORD_OVERFLOW: u8 = 22;
const ALERT_DECODE_ERROR: u8 = 50;
const ALERT_USER_CANCELED: u8 = 90;
const ALERT_NO_RENEGOTIATION: u8 = 100;
/// TLS 1.3 key updates the peer may ask for between two application data records (rustls').
const KEY_UPDATES_ALLOWED: u8 = 32;

/// One direction's record protection after the handshake.
struct Direction {
    key: ring::aead::LessSafeKey,
    iv: [u8; 12],
    seq: u64,
}

impl Direction {
    fn new((seq, secrets): (u64, rustls::ConnectionTrafficSecrets)) -> io::Result<Direction> {
        use ring::aead;
        use rustls::ConnectionTrafficSecrets as S;
        let (alg, key, iv) = match &secrets {
            S::Aes128Gcm { key, iv } => (&aead::AES_128_GCM, key, iv),
            S::Aes256Gcm { key, iv } => (&aead::AES_256_GCM, key, iv),
            S::Chacha20Poly1305 { key, iv } => (&aead::CHACHA20_POLY1305, key, iv),
            _ => return Err(io::Error::other("unsupported cipher suite")),
        };
        let key = aead::UnboundKey::new(alg, key.as_ref())
            .map_err(|_| io::Error::other("bad traffic key"))?;
        Ok(Direction {
            key: aead::LessSafeKey::new(key),
            iv: iv
                .as_ref()
                .try_into()
                .map_err(|_| io::Error::other("bad IV"))?,
            seq,
        })
    }

    /// The per-record nonce: the IV with the sequence number XORed into its last 8 bytes.
    fn nonce(&self) -> [u8; 12] {
        let mut n = self.iv;
        for (b, s) in n[4..].iter_mut().zip(self.seq.to_be_bytes()) {
            *b ^= s;
        }
        n
    }
}

/// The record layer of an established connection: rustls made the keys; records are sealed
/// and opened here, in place, in the connection's fixed buffers (no allocation).
struct Records {
    kernel: rustls::kernel::KernelConnection<rustls::server::ServerConnectionData>,
    tls13: bool,
    /// TLS 1.2 with AES-GCM: an explicit 8-byte nonce leads each record.
    explicit_nonce: bool,
    tx: Direction,
    rx: Direction,
    /// Records sealed with the current sending key before it must be changed (TLS 1.3) or the
    /// connection closed (TLS 1.2).
    tx_limit: u64,
    /// What the peer may still send before it is cut off, as rustls counts it: warning alerts
    /// (4 in all), TLS 1.2 renegotiation requests (1, answered no_renegotiation) and TLS 1.3
    /// key updates (32 between two application data records).
    warnings_left: u8,
    renegotiations_left: u8,
    key_updates_left: u8,
}

impl Records {
    /// Seals `plain` as one record of `typ` at the start of `out` (which has room for
    /// `plain.len()` + [`HEADER`] + [`OVERHEAD`]); the record's length.
    fn seal(&mut self, typ: u8, plain: &[u8], out: &mut [u8]) -> io::Result<usize> {
        use ring::aead::{Aad, Nonce};
        let nonce = self.tx.nonce();
        let tag_len = self.tx.key.algorithm().tag_len();
        let (start, inner) = if self.explicit_nonce {
            out[HEADER..HEADER + 8].copy_from_slice(&nonce[4..]);
            (HEADER + 8, 0)
        } else {
            (HEADER, usize::from(self.tls13))
        };
        let body = plain.len() + inner;
        let record_len = start - HEADER + body + tag_len;
        out[start..start + plain.len()].copy_from_slice(plain);
        let outer = if self.tls13 {
            out[start + plain.len()] = typ;
            CONTENT_APPLICATION_DATA
        } else {
            typ
        };
        out[0] = outer;
        out[1..3].copy_from_slice(&[3, 3]);
        out[3..5].copy_from_slice(&(record_len as u16).to_be_bytes());
        let header: [u8; 5] = out[..5].try_into().expect("5 bytes");
        let mut aad12 = [0u8; 13];
        let aad: &[u8] = if self.tls13 {
            &header
        } else {
            aad12[..8].copy_from_slice(&self.tx.seq.to_be_bytes());
            aad12[8] = typ;
            aad12[9..11].copy_from_slice(&[3, 3]);
            aad12[11..].copy_from_slice(&(plain.len() as u16).to_be_bytes());
            &aad12
        };
        let tag = self
            .tx
            .key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut out[start..start + body],
            )
            .map_err(|_| io::Error::other("TLS encryption failed"))?;
        out[start + body..start + body + tag_len].copy_from_slice(tag.as_ref());
        self.tx.seq += 1;
        Ok(HEADER + record_len)
    }

    /// Opens the record at the start of `buf` (whole, its header included) in place: its
    /// content type and the range of its plaintext in `buf`.
    fn open(&mut self, buf: &mut [u8]) -> Result<(u8, usize, usize), rustls::Error> {
        use ring::aead::{Aad, Nonce};
        let typ = buf[0];
        let header: [u8; 5] = buf[..5].try_into().expect("5 bytes");
        let tag_len = self.rx.key.algorithm().tag_len();
        let (nonce, start) = if self.explicit_nonce {
            if buf.len() < HEADER + 8 + tag_len {
                return Err(rustls::Error::DecryptError);
            }
            let mut n = [0u8; 12];
            n[..4].copy_from_slice(&self.rx.iv[..4]);
            n[4..].copy_from_slice(&buf[HEADER..HEADER + 8]);
            (n, HEADER + 8)
        } else {
            (self.rx.nonce(), HEADER)
        };
        if buf.len() < start + tag_len {
            return Err(rustls::Error::DecryptError);
        }
        let mut aad12 = [0u8; 13];
        let aad: &[u8] = if self.tls13 {
            if typ != CONTENT_APPLICATION_DATA {
                return Err(rustls::Error::InvalidMessage(
                    rustls::InvalidMessage::InvalidContentType,
                ));
            }
            &header
        } else {
            aad12[..8].copy_from_slice(&self.rx.seq.to_be_bytes());
            aad12[8] = typ;
            aad12[9..11].copy_from_slice(&[3, 3]);
            let plain_len = buf.len() - start - tag_len;
            aad12[11..].copy_from_slice(&(plain_len as u16).to_be_bytes());
            &aad12
        };
        let plain_len = self
            .rx
            .key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut buf[start..],
            )
            .map_err(|_| rustls::Error::DecryptError)?
            .len();
        self.rx.seq += 1;
        if !self.tls13 {
            return Ok((typ, start, start + plain_len));
        }
        // TLS 1.3: the content type is the last nonzero byte; zeros after it are padding.
        let body = &buf[start..start + plain_len];
        match body.iter().rposition(|&b| b != 0) {
            Some(i) => Ok((body[i], start, start + i)),
            None => Err(rustls::Error::PeerMisbehaved(
                rustls::PeerMisbehaved::IllegalTlsInnerPlaintext,
            )),
        }
    }
}

/// Where a connection is.
enum Phase {
    /// rustls is handshaking (unbuffered API: records in, records out, through our buffers).
    Handshake(Box<rustls::server::UnbufferedServerConnection>),
    /// Established: Petrel's record layer with rustls' keys.
    Established(Box<Records>),
    /// A TLS error ended it, or the peer's close_notify came.
    Done,
}

/// A TLS connection over TCP: plaintext through `Read`/`Write`, records on
/// the socket.
pub(crate) struct TlsStream {
    sock: TcpStream,
    phase: Phase,
    ctx: Arc<TlsContext>,
    /// Records from the socket: `inbuf[in_start..in_len]` (`in_start` is 0 while
    /// handshaking); after the handshake, `inbuf[plain.0..plain.1]` is the decrypted plaintext
    /// not yet read of the record at `in_start`, `in_used` bytes long.
    inbuf: PageBuf,
    in_start: usize,
    in_len: usize,
    plain: (usize, usize),
    in_used: usize,
    /// Plaintext that arrived with the end of the handshake, read before anything else.
    early: Vec<u8>,
    early_read: usize,
    /// Records for the socket: `outbuf[out_start..out_end]`.
    outbuf: PageBuf,
    out_start: usize,
    out_end: usize,
    /// When an unfinished handshake is closed.
    deadline: Instant,
    handshaking: bool,
    timed_out: bool,
    /// The peer's close_notify came: reads give the end of the stream.
    peer_closed: bool,
}

fn tls_error(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

impl TlsStream {
    fn new(
        sock: TcpStream,
        conn: rustls::server::UnbufferedServerConnection,
        ctx: Arc<TlsContext>,
    ) -> io::Result<TlsStream> {
        let deadline = Instant::now() + ctx.settings.handshake_timeout;
        Ok(TlsStream {
            sock,
            phase: Phase::Handshake(Box::new(conn)),
            ctx,
            inbuf: PageBuf::new(IN_BYTES)?,
            in_start: 0,
            in_len: 0,
            plain: (0, 0),
            in_used: 0,
            early: Vec::new(),
            early_read: 0,
            outbuf: PageBuf::new(TLS_BUFFER_LIMIT_BYTES)?,
            out_start: 0,
            out_end: 0,
            deadline,
            handshaking: true,
            timed_out: false,
            peer_closed: false,
        })
    }

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

    /// Writes the records waiting in the outgoing buffer; WouldBlock if some are left.
    fn flush_tls(&mut self) -> io::Result<()> {
        while self.out_start < self.out_end {
            match self.sock.write(&self.outbuf[self.out_start..self.out_end]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.out_start += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.out_start = 0;
        self.out_end = 0;
        Ok(())
    }

    /// Writes the records waiting in the outgoing buffer as far as the socket takes them.
    fn flush_soft(&mut self) -> io::Result<()> {
        match self.flush_tls() {
            Err(e) if e.kind() != io::ErrorKind::WouldBlock => Err(e),
            _ => Ok(()),
        }
    }

    /// Moves the records waiting in the outgoing buffer to its front.
    fn compact_out(&mut self) {
        if self.out_start > 0 {
            self.outbuf.copy_within(self.out_start..self.out_end, 0);
            self.out_end -= self.out_start;
            self.out_start = 0;
        }
    }

    /// Reads from the socket into the free end of the incoming buffer: Ok(false) at the end of
    /// the stream. `drained` becomes true on a short read.
    fn read_sock(&mut self, drained: &mut bool) -> io::Result<bool> {
        if self.in_start > 0 {
            // What is left is part of one record: move it to the front.
            self.inbuf.copy_within(self.in_start..self.in_len, 0);
            self.in_len -= self.in_start;
            self.in_start = 0;
        }
        if self.in_len == self.inbuf.len() {
            return Err(tls_error(rustls::Error::InvalidMessage(
                rustls::InvalidMessage::MessageTooLarge,
            )));
        }
        loop {
            match self.sock.read(&mut self.inbuf[self.in_len..]) {
                Ok(n) => {
                    *drained = self.in_len + n < self.inbuf.len();
                    self.in_len += n;
                    return Ok(n > 0);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Drops `n` bytes from the front of the incoming buffer.
    fn discard(&mut self, n: usize) {
        if n > 0 {
            self.inbuf.copy_within(n..self.in_len, 0);
            self.in_len -= n;
        }
    }

    /// A TLS error: counted, the alert rustls queued sent if it can be (none to a client that
    /// is not speaking TLS: its connection is reset, as memcached's OpenSSL does).
    fn fail(&mut self, e: rustls::Error) -> io::Error {
        if let Phase::Handshake(conn) = &mut self.phase {
            if matches!(e, rustls::Error::InvalidMessage(_)) {
                reset_on_close(&self.sock);
            } else {
                // The alert rustls queued.
                for _ in 0..4 {
                    let status = conn.process_tls_records(&mut []);
                    match status.state {
                        Ok(rustls::unbuffered::ConnectionState::EncodeTlsData(mut enc)) => {
                            match enc.encode(&mut self.outbuf[self.out_end..]) {
                                Ok(n) => self.out_end += n,
                                Err(_) => break,
                            }
                        }
                        Ok(rustls::unbuffered::ConnectionState::TransmitTlsData(t)) => t.done(),
                        _ => break,
                    }
                }
                let _ = self.flush_tls();
            }
        } else {
            self.ctx.stats.errors.incr();
        }
        log::debug!("TLS error from {:?}: {e}", self.peer_addr());
        self.phase = Phase::Done;
        tls_error(e)
    }

    /// Drives the handshake with what the socket holds: Ok(true) once it has completed,
    /// Ok(false) at the end of the stream, WouldBlock while it waits for the peer.
    fn handshake(&mut self) -> io::Result<bool> {
        use rustls::unbuffered::ConnectionState as St;
        let mut drained = false;
        loop {
            let Phase::Handshake(conn) = &mut self.phase else {
                return Ok(true);
            };
            let status = conn.process_tls_records(&mut self.inbuf[..self.in_len]);
            let discard = status.discard;
            enum Next {
                Again,
                Read,
                Done,
                Eof,
                Fail(rustls::Error),
            }
            let next = match status.state {
                Err(e) => Next::Fail(e),
                Ok(St::ReadTraffic(mut r)) => {
                    let mut next = Next::Again;
                    while let Some(rec) = r.next_record() {
                        match rec {
                            Ok(rec) => self.early.extend_from_slice(rec.payload),
                            Err(e) => {
                                next = Next::Fail(e);
                                break;
                            }
                        }
                    }
                    next
                }
                Ok(St::EncodeTlsData(mut enc)) => {
                    match enc.encode(&mut self.outbuf[self.out_end..]) {
                        Ok(n) => {
                            self.out_end += n;
                            Next::Again
                        }
                        Err(e) => Next::Fail(rustls::Error::General(e.to_string())),
                    }
                }
                // The records are ours now, sent as the socket takes them.
                Ok(St::TransmitTlsData(t)) => {
                    t.done();
                    Next::Again
                }
                Ok(St::BlockedHandshake) => Next::Read,
                Ok(St::WriteTraffic(_)) => Next::Done,
                Ok(St::PeerClosed) | Ok(St::Closed) => Next::Eof,
                Ok(_) => Next::Fail(rustls::Error::General("unexpected TLS state".into())),
            };
            self.discard(discard);
            match next {
                Next::Again => {}
                Next::Fail(e) => return Err(self.fail(e)),
                Next::Eof => {
                    let _ = self.flush_tls();
                    return Ok(false);
                }
                Next::Read => {
                    match self.flush_tls() {
                        Ok(()) => {}
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                        Err(e) => return Err(e),
                    }
                    if drained {
                        return Err(io::ErrorKind::WouldBlock.into());
                    }
                    if !self.read_sock(&mut drained)? {
                        return Ok(false);
                    }
                }
                Next::Done => {
                    let Phase::Handshake(conn) = std::mem::replace(&mut self.phase, Phase::Done)
                    else {
                        unreachable!()
                    };
                    let records = match established(*conn) {
                        Ok(r) => r,
                        Err(e) => return Err(self.fail(e)),
                    };
                    self.phase = Phase::Established(Box::new(records));
                    self.handshaking = false;
                    self.ctx.stats.handshakes_in_progress.sub(1);
                    self.ctx.stats.handshakes_ok.incr();
                    match self.flush_tls() {
                        Ok(()) => {}
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                        Err(e) => return Err(e),
                    }
                    return Ok(true);
                }
            }
        }
    }

    /// Opens the next whole record in the incoming buffer, if there is one: Ok(true) when
    /// it gave plaintext or changed state (call again), Ok(false) when a whole record is not
    /// there yet.
    fn next_record(&mut self) -> io::Result<bool> {
        let Phase::Established(rec) = &mut self.phase else {
            return Ok(false);
        };
        let at = self.in_start;
        if self.in_len - at < HEADER {
            return Ok(false);
        }
        let len = usize::from(u16::from_be_bytes([self.inbuf[at + 3], self.inbuf[at + 4]]));
        if len > MAX_CIPHERTEXT {
            let _ = self.send_alert(ALERT_RECORD_OVERFLOW);
            return Err(self.fail(rustls::Error::InvalidMessage(
                rustls::InvalidMessage::MessageTooLarge,
            )));
        }
        if self.in_len - at < HEADER + len {
            return Ok(false);
        }
        let opened = rec.open(&mut self.inbuf[at..at + HEADER + len]);
        let (typ, start, end) = match opened {
            Ok((typ, start, end)) => (typ, at + start, at + end),
            Err(e) => {
                let _ = self.send_alert(ALERT_BAD_RECORD_MAC);
                return Err(self.fail(e));
            }
        };
        self.in_used = HEADER + len;
        match typ {
            CONTENT_APPLICATION_DATA => {
                rec.key_updates_left = KEY_UPDATES_ALLOWED;
                self.plain = (start, end);
                Ok(true)
            }
            CONTENT_ALERT => {
                let alert = (end - start == 2).then(|| (self.inbuf[start], self.inbuf[start + 1]));
                self.discard_record();
                let Phase::Established(rec) = &mut self.phase else {
                    return Ok(false);
                };
                match alert {
                    // close_notify: the end of the stream.
                    Some((_, ALERT_CLOSE_NOTIFY)) => {
                        self.peer_closed = true;
                        Ok(true)
                    }
                    // Warnings (level 1) are not fatal in TLS 1.2, nor user_canceled in TLS 1.3,
                    // up to rustls' count.
                    Some((1, d)) if !rec.tls13 || d == ALERT_USER_CANCELED => {
                        if rec.warnings_left == 0 {
                            return Err(self.fail(rustls::Error::PeerMisbehaved(
                                rustls::PeerMisbehaved::TooManyWarningAlertsReceived,
                            )));
                        }
                        rec.warnings_left -= 1;
                        Ok(true)
                    }
                    Some((1, d)) => {
                        let _ = self.send_alert(ALERT_DECODE_ERROR);
                        Err(self.fail(rustls::Error::AlertReceived(d.into())))
                    }
                    Some((2, d)) => Err(self.fail(rustls::Error::AlertReceived(d.into()))),
                    _ => {
                        let _ = self.send_alert(ALERT_DECODE_ERROR);
                        Err(self.fail(rustls::Error::InvalidMessage(
                            rustls::InvalidMessage::MessageTooShort,
                        )))
                    }
                }
            }
            CONTENT_HANDSHAKE => self.post_handshake(start, end),
            _ => {
                let _ = self.send_alert(ALERT_UNEXPECTED_MESSAGE);
                Err(self.fail(rustls::Error::InvalidMessage(
                    rustls::InvalidMessage::InvalidContentType,
                )))
            }
        }
    }

    /// A handshake message after the handshake: a TLS 1.3 KeyUpdate is honoured (the
    /// receiving key changes; when the peer asks, ours changes too, announced by a KeyUpdate
    /// of ours); anything else (a TLS 1.2 renegotiation) is refused as rustls refuses it.
    fn post_handshake(&mut self, start: usize, end: usize) -> io::Result<bool> {
        let msg = &self.inbuf[start..end];
        let Phase::Established(rec) = &mut self.phase else {
            return Ok(false);
        };
        let key_update = rec.tls13
            && msg.len() == 5
            && msg[0] == HANDSHAKE_KEY_UPDATE
            && msg[1..4] == [0, 0, 1]
            && msg[4] <= 1;
        let got = msg.first().copied().unwrap_or(0);
        let requested = msg.get(4) == Some(&1);
        if !rec.tls13 && got == HANDSHAKE_CLIENT_HELLO {
            // A TLS 1.2 renegotiation request: refused with a warning, once.
            self.discard_record();
            let Phase::Established(rec) = &mut self.phase else {
                return Ok(false);
            };
            if rec.renegotiations_left == 0 {
                return Err(self.fail(rustls::Error::PeerMisbehaved(
                    rustls::PeerMisbehaved::TooManyRenegotiationRequests,
                )));
            }
            rec.renegotiations_left -= 1;
            self.seal_into_out(CONTENT_ALERT, &[1, ALERT_NO_RENEGOTIATION])?;
            self.flush_soft()?;
            return Ok(true);
        }
        if !key_update {
            self.discard_record();
            let _ = self.send_alert(ALERT_UNEXPECTED_MESSAGE);
            return Err(self.fail(rustls::Error::InappropriateHandshakeMessage {
                expect_types: vec![rustls::HandshakeType::KeyUpdate],
                got_type: rustls::HandshakeType::from(got),
            }));
        }
        self.discard_record();
        let Phase::Established(rec) = &mut self.phase else {
            return Ok(false);
        };
        if rec.key_updates_left == 0 {
            return Err(self.fail(rustls::Error::PeerMisbehaved(
                rustls::PeerMisbehaved::TooManyKeyUpdateRequests,
            )));
        }
        rec.key_updates_left -= 1;
        let rx = rec.kernel.update_rx_secret().map_err(tls_error)?;
        rec.rx = Direction::new(rx)?;
        if requested {
            self.send_key_update()?;
            self.flush_soft()?;
        }
        Ok(true)
    }

    /// Sends KeyUpdate(update_not_requested) and changes the sending key.
    fn send_key_update(&mut self) -> io::Result<()> {
        self.seal_into_out(CONTENT_HANDSHAKE, &[HANDSHAKE_KEY_UPDATE, 0, 0, 1, 0])?;
        let Phase::Established(rec) = &mut self.phase else {
            return Ok(());
        };
        let tx = rec.kernel.update_tx_secret().map_err(tls_error)?;
        rec.tx = Direction::new(tx)?;
        rec.tx_limit = tx_limit(&rec.kernel);
        Ok(())
    }

    /// Seals one record into the outgoing buffer (making room by flushing if needed).
    fn seal_into_out(&mut self, typ: u8, plain: &[u8]) -> io::Result<()> {
        if self.outbuf.len() - self.out_end < plain.len() + HEADER + OVERHEAD {
            self.compact_out();
        }
        if self.outbuf.len() - self.out_end < plain.len() + HEADER + OVERHEAD {
            self.flush_tls()?;
        }
        let Phase::Established(rec) = &mut self.phase else {
            return Err(io::ErrorKind::NotConnected.into());
        };
        let n = rec.seal(typ, plain, &mut self.outbuf[self.out_end..])?;
        self.out_end += n;
        Ok(())
    }

    /// Seals an alert of level fatal (close_notify: warning).
    fn send_alert(&mut self, description: u8) -> io::Result<()> {
        let level = if description == ALERT_CLOSE_NOTIFY {
            1
        } else {
            2
        };
        self.seal_into_out(CONTENT_ALERT, &[level, description])?;
        self.flush_tls()
    }

    /// Drops the record at the front of the incoming buffer (its plaintext has been read).
    fn discard_record(&mut self) {
        self.in_start += std::mem::take(&mut self.in_used);
        self.plain = (0, 0);
        if self.in_start == self.in_len {
            self.in_start = 0;
            self.in_len = 0;
        }
    }

    /// Sealing `buf` into the outgoing buffer, as much as fits; the bytes taken.
    fn encrypt(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut n = 0;
        while n < buf.len() {
            if self.outbuf.len() - self.out_end < HEADER + OVERHEAD + 1 {
                self.compact_out();
                if self.outbuf.len() - self.out_end < HEADER + OVERHEAD + 1 {
                    break;
                }
            }
            let Phase::Established(rec) = &mut self.phase else {
                return Err(io::ErrorKind::NotConnected.into());
            };
            if rec.tx.seq >= rec.tx_limit {
                if !rec.tls13 {
                    return Err(io::Error::other(
                        "TLS 1.2 record limit of the cipher suite reached",
                    ));
                }
                self.send_key_update()?;
                continue;
            }
            let room = self.outbuf.len() - self.out_end - HEADER - OVERHEAD;
            let k = (buf.len() - n).min(MAX_FRAGMENT).min(room);
            let w = rec.seal(
                CONTENT_APPLICATION_DATA,
                &buf[n..n + k],
                &mut self.outbuf[self.out_end..],
            )?;
            self.out_end += w;
            n += k;
        }
        Ok(n)
    }
}

/// Records sealed under one key before it is changed: the cipher suite's confidentiality limit
/// less a margin for the records a KeyUpdate and alerts take.
fn tx_limit(
    kernel: &rustls::kernel::KernelConnection<rustls::server::ServerConnectionData>,
) -> u64 {
    let limit = match kernel.negotiated_cipher_suite() {
        rustls::SupportedCipherSuite::Tls13(s) => s.common.confidentiality_limit,
        rustls::SupportedCipherSuite::Tls12(s) => s.common.confidentiality_limit,
    };
    limit.saturating_sub(16)
}

/// The record layer for a connection whose handshake has completed.
fn established(conn: rustls::server::UnbufferedServerConnection) -> Result<Records, rustls::Error> {
    let (secrets, kernel) = conn.dangerous_into_kernel_connection()?;
    let tls13 = kernel.protocol_version() == rustls::ProtocolVersion::TLSv1_3;
    let explicit_nonce = !tls13
        && !matches!(
            secrets.tx.1,
            rustls::ConnectionTrafficSecrets::Chacha20Poly1305 { .. }
        );
    let io = |e: io::Error| rustls::Error::General(e.to_string());
    let tx = Direction::new(secrets.tx).map_err(io)?;
    let rx = Direction::new(secrets.rx).map_err(io)?;
    let tx_limit = tx_limit(&kernel);
    Ok(Records {
        kernel,
        tls13,
        explicit_nonce,
        tx,
        rx,
        tx_limit,
        warnings_left: 4,
        renegotiations_left: 1,
        key_updates_left: KEY_UPDATES_ALLOWED,
    })
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
    /// Plaintext: what was decrypted and not yet read, then records from the socket until
    /// `buf` is full or the socket is empty (WouldBlock when nothing came).
    /// The socket is empty when a read of it in this call was short (then no
    /// read is made only to hear WouldBlock; the caller treats a short
    /// return as the end of what the socket holds and waits for the next
    /// readable edge) or said WouldBlock.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.handshaking {
            match self.handshake() {
                Ok(true) => {}
                Ok(false) => return Ok(0),
                Err(e) => return Err(e),
            }
        }
        if let Phase::Done = self.phase {
            return Ok(0);
        }
        let mut n = 0;
        if self.early_read < self.early.len() {
            let k = (self.early.len() - self.early_read).min(buf.len());
            buf[..k].copy_from_slice(&self.early[self.early_read..self.early_read + k]);
            self.early_read += k;
            n = k;
            if self.early_read == self.early.len() {
                self.early = Vec::new();
                self.early_read = 0;
            }
        }
        let mut drained = false;
        loop {
            if self.plain.0 < self.plain.1 {
                let k = (self.plain.1 - self.plain.0).min(buf.len() - n);
                buf[n..n + k].copy_from_slice(&self.inbuf[self.plain.0..self.plain.0 + k]);
                self.plain.0 += k;
                n += k;
                if self.plain.0 == self.plain.1 {
                    self.discard_record();
                }
                if n == buf.len() {
                    return Ok(n);
                }
                continue;
            }
            if self.in_used > 0 {
                self.discard_record();
            }
            if self.peer_closed {
                return Ok(n);
            }
            match self.next_record() {
                Ok(true) => continue,
                Ok(false) => {}
                Err(e) if n > 0 => {
                    log::debug!("TLS read ends: {e}");
                    return Ok(n);
                }
                Err(e) => return Err(e),
            }
            if n > 0 && drained {
                return Ok(n);
            }
            match self.read_sock(&mut drained) {
                Ok(true) => {}
                // The peer closed without close_notify.
                Ok(false) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && n > 0 => return Ok(n),
                Err(e) => return Err(e),
            }
        }
    }
}

impl Write for TlsStream {
    /// Takes plaintext once earlier records have gone to the socket (WouldBlock until then),
    /// sealing it into the outgoing buffer of [`TLS_BUFFER_LIMIT_BYTES`].
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        self.flush_tls()?;
        if !matches!(self.phase, Phase::Established(_)) {
            return Err(io::ErrorKind::NotConnected.into());
        }
        let n = self.encrypt(buf)?;
        match self.flush_tls() {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
        if n == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    }

    /// Hands every record waiting to the socket; WouldBlock when the socket is full.
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
        } else if let Phase::Established(_) = self.phase {
            // A polite end of the session, if the socket takes it now.
            let _ = self.send_alert(ALERT_CLOSE_NOTIFY);
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

    /// A client (rustls' buffered API) and a server-side [`TlsStream`] over loopback.
    struct Pair {
        client: rustls::ClientConnection,
        csock: std::net::TcpStream,
        server: TlsStream,
        buf: Vec<u8>,
    }

    const REQUEST: &[u8] = b"get k\r\n";
    const REPLY: &[u8] = b"VALUE k 0 32\r\nvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv\r\nEND\r\n";

    impl Pair {
        /// A pair whose client offers `version` and, if given, only `suite`; None (a visible
        /// skip) without openssl.
        fn new(
            name: &str,
            version: &'static rustls::SupportedProtocolVersion,
            suite: Option<rustls::SupportedCipherSuite>,
        ) -> Option<Pair> {
            let dir =
                std::env::temp_dir().join(format!("petrel-tls-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            certs(&dir)?;
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
            let mut provider = rustls::crypto::ring::default_provider();
            if let Some(suite) = suite {
                provider.cipher_suites = vec![suite];
            }
            let config = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
                .with_protocol_versions(&[version])
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth();
            let client = rustls::ClientConnection::new(
                Arc::new(config),
                rustls::pki_types::ServerName::try_from("localhost").unwrap(),
            )
            .unwrap();
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let csock = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
            let (ssock, _) = listener.accept().unwrap();
            ssock.set_nonblocking(true).unwrap();
            csock.set_nonblocking(true).unwrap();
            let server = ctx.accept(TcpStream::from_std(ssock)).unwrap();
            let _ = std::fs::remove_dir_all(&dir);
            let mut pair = Pair {
                client,
                csock,
                server,
                buf: vec![0u8; 64 * 1024],
            };
            let mut handshake_allocs = 0;
            for _ in 0..10_000 {
                if !pair.client.is_handshaking() && !pair.server.handshaking {
                    break;
                }
                pair.pump(&mut handshake_allocs);
                std::thread::sleep(Duration::from_millis(1));
            }
            assert!(
                !pair.client.is_handshaking() && !pair.server.handshaking,
                "the handshake did not complete"
            );
            assert_eq!(pair.client.protocol_version(), Some(version.version));
            Some(pair)
        }

        /// One step of each side: the plaintext the server read, the plaintext the client
        /// received, and whether the server's read said the stream ended.
        fn pump(&mut self, allocs: &mut u64) -> (Vec<u8>, Vec<u8>, bool) {
            while self.client.wants_write() {
                match self.client.write_tls(&mut self.csock) {
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => panic!("client write: {e}"),
                }
            }
            let mut got = Vec::new();
            let mut end = false;
            let (server, buf) = (&mut self.server, &mut self.buf);
            match counted(allocs, || server.read(buf)) {
                Ok(0) => end = true,
                Ok(n) => got.extend_from_slice(&self.buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("server read: {e}"),
            }
            match self.client.read_tls(&mut self.csock) {
                Ok(_) => {
                    self.client.process_new_packets().expect("client TLS");
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("client read: {e}"),
            }
            let mut plain = Vec::new();
            let _ = self.client.reader().read_to_end(&mut plain);
            (got, plain, end)
        }

        /// `requests` requests and replies; the server side's allocations are added to
        /// `allocs`.
        fn round(&mut self, requests: u32, allocs: &mut u64) {
            for _ in 0..requests {
                self.client.writer().write_all(REQUEST).unwrap();
                let mut got = Vec::new();
                let mut spins = 0;
                while got.len() < REQUEST.len() {
                    got.extend(self.pump(allocs).0);
                    spins += 1;
                    assert!(spins < 100_000, "the request did not arrive");
                }
                assert_eq!(got, REQUEST);
                let server = &mut self.server;
                let n = counted(allocs, || {
                    let n = server.write(REPLY).unwrap();
                    server.flush().unwrap();
                    n
                });
                assert_eq!(n, REPLY.len());
                let mut plain = Vec::new();
                let mut spins = 0;
                while plain.len() < REPLY.len() {
                    plain.extend(self.pump(allocs).1);
                    spins += 1;
                    assert!(spins < 100_000, "the reply did not arrive");
                }
                assert_eq!(plain, REPLY);
            }
        }
    }

    /// After the handshake, a request and its reply (one record each way) cost the server side
    /// (TlsStream's read, write and flush) no allocation: records are opened and sealed in
    /// place in the connection's buffers. TLS 1.3, and TLS 1.2 with AES-GCM (explicit nonces)
    /// and ChaCha20-Poly1305. The figure is printed; any allocation fails.
    #[test]
    fn allocations_per_request_after_the_handshake() {
        use rustls::crypto::ring::cipher_suite as cs;
        let cases = [
            ("tls13", &rustls::version::TLS13, None),
            (
                "tls12-aes",
                &rustls::version::TLS12,
                Some(cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256),
            ),
            (
                "tls12-chacha",
                &rustls::version::TLS12,
                Some(cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256),
            ),
        ];
        for (name, version, suite) in cases {
            let Some(mut pair) = Pair::new(name, version, suite) else {
                return;
            };
            let mut warm = 0;
            pair.round(100, &mut warm);
            let mut allocs = 0;
            const REQUESTS: u32 = 1000;
            pair.round(REQUESTS, &mut allocs);
            let per = allocs as f64 / f64::from(REQUESTS);
            println!(
                "TLS server side, {name}: {per:.2} allocations per request after the handshake \
                 ({allocs} in {REQUESTS})"
            );
            assert_eq!(allocs, 0, "{name}: {per} allocations per request");
        }
    }

    /// TLS 1.3 key updates from the client, each asking the server to update its key too:
    /// requests and replies carry on under the new keys, more times than the 32 allowed
    /// without application data between them (the count restarts with each request).
    #[test]
    fn key_updates_from_the_client() {
        let Some(mut pair) = Pair::new("keyupdate", &rustls::version::TLS13, None) else {
            return;
        };
        let mut allocs = 0;
        for _ in 0..40 {
            pair.client.refresh_traffic_keys().unwrap();
            pair.round(2, &mut allocs);
        }
        let Phase::Established(rec) = &pair.server.phase else {
            panic!("not established");
        };
        assert_eq!(rec.key_updates_left, KEY_UPDATES_ALLOWED);
        assert!(rec.tx.seq <= 2, "the server's key changed: {}", rec.tx.seq);
    }

    /// AES-GCM's confidentiality limit: the server's sending limit is the suite's less the
    /// margin; at it, TLS 1.3 changes the sending key (the client follows the KeyUpdate and
    /// replies carry on) and TLS 1.2 seals no more records.
    #[test]
    fn aes_gcm_record_limit() {
        use rustls::crypto::ring::cipher_suite as cs;
        let suite_limit = |suite| match suite {
            rustls::SupportedCipherSuite::Tls13(s) => s.common.confidentiality_limit,
            rustls::SupportedCipherSuite::Tls12(s) => s.common.confidentiality_limit,
        };
        fn established(pair: &mut Pair) -> &mut Records {
            match &mut pair.server.phase {
                Phase::Established(rec) => rec,
                _ => panic!("not established"),
            }
        }
        let mut allocs = 0;
        let suite = cs::TLS13_AES_128_GCM_SHA256;
        let Some(mut pair) = Pair::new("limit13", &rustls::version::TLS13, Some(suite)) else {
            return;
        };
        pair.round(1, &mut allocs);
        let rec = established(&mut pair);
        assert!(suite_limit(suite) < u64::MAX, "AES-GCM has a limit");
        assert_eq!(rec.tx_limit, suite_limit(suite) - 16);
        // three more records under this key, then the limit
        let start = rec.tx.seq;
        rec.tx_limit = start + 3;
        pair.round(10, &mut allocs);
        let rec = established(&mut pair);
        assert!(
            rec.tx.seq < start + 10,
            "the sending key changed: {} records since {start}",
            rec.tx.seq
        );
        assert_eq!(rec.tx_limit, suite_limit(suite) - 16, "the new key's limit");

        let suite = cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256;
        let Some(mut pair) = Pair::new("limit12", &rustls::version::TLS12, Some(suite)) else {
            return;
        };
        pair.round(1, &mut allocs);
        let rec = established(&mut pair);
        assert_eq!(rec.tx_limit, suite_limit(suite) - 16);
        rec.tx_limit = rec.tx.seq;
        let e = pair
            .server
            .write(REPLY)
            .expect_err("a record past the TLS 1.2 limit");
        assert!(e.to_string().contains("record limit"), "{e}");
    }

    /// close_notify: the client's ends the server's stream; the server's, sent when the
    /// connection is dropped, ends the client's cleanly.
    #[test]
    fn close_notify_both_ways() {
        for (name, version) in [
            ("close13", &rustls::version::TLS13),
            ("close12", &rustls::version::TLS12),
        ] {
            let Some(mut pair) = Pair::new(name, version, None) else {
                return;
            };
            let mut allocs = 0;
            pair.round(1, &mut allocs);
            pair.client.send_close_notify();
            let mut spins = 0;
            while !pair.pump(&mut allocs).2 {
                spins += 1;
                assert!(spins < 100_000, "{name}: the server did not see the end");
            }
            let Pair {
                server,
                mut client,
                mut csock,
                ..
            } = pair;
            drop(server);
            let mut closed = false;
            for _ in 0..10_000 {
                match client.read_tls(&mut csock) {
                    Ok(0) => break,
                    Ok(_) => {
                        let state = client.process_new_packets().expect("client TLS");
                        if state.peer_has_closed() {
                            closed = true;
                            break;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    Err(e) => panic!("client read: {e}"),
                }
            }
            assert!(closed, "{name}: no close_notify from the server");
        }
    }
}

//! TLS wiring of the server: the certificates loaded at start-up, the
//! `refresh_certs` command and SIGHUP reloading them, and the `stats` lines.

use std::path::Path;
use std::sync::Arc;

use petrel_core::engine::{CertReload, StatsSource};
use petrel_tcp::{TlsContext, TlsSettings, VerifyMode};

/// `refresh_certs`, `stats` and `stats settings` over one [`TlsContext`].
pub struct TlsHooks(pub Arc<TlsContext>, Vec<(&'static str, String)>);

impl TlsHooks {
    /// The hooks of `ctx`, with its `stats settings` lines.
    pub fn new(ctx: Arc<TlsContext>) -> TlsHooks {
        let settings = settings_lines(ctx.settings());
        TlsHooks(ctx, settings)
    }
}

/// The `ssl_*` lines of `stats settings` with TLS on.
fn settings_lines(s: &TlsSettings) -> Vec<(&'static str, String)> {
    ssl_lines(&SslLines {
        enabled: true,
        chain_cert: Some(&s.chain_cert),
        key: s.key.as_deref(),
        ca_cert: s.ca_cert.as_deref(),
        verify_mode: s.verify_mode,
        session_cache: s.session_cache,
        tls13_only: !s.allow_tls12,
    })
}

/// What the `ssl_*` lines of `stats settings` show.
pub struct SslLines<'a> {
    /// `-Z` was given.
    pub enabled: bool,
    /// `ssl_chain_cert`.
    pub chain_cert: Option<&'a Path>,
    /// `ssl_key`.
    pub key: Option<&'a Path>,
    /// `ssl_ca_cert`.
    pub ca_cert: Option<&'a Path>,
    /// `ssl_verify_mode`.
    pub verify_mode: VerifyMode,
    /// `ssl_session_cache`.
    pub session_cache: bool,
    /// `ssl_min_version` 3 (TLS 1.3 only).
    pub tls13_only: bool,
}

/// The `ssl_*` lines of `stats settings`: memcached 1.6.18's names in its order, with Petrel's
/// values. memcached (built with TLS) prints them with or without `-Z`, showing the `-o ssl_*`
/// options as given. Where an option is not set, memcached's placeholder for it (`(null)` for
/// the certificate and the key, `NULL` for the CA file and the cipher list). Petrel reads keys
/// in PEM only (`ssl_keyformat` 1, OpenSSL's number for PEM), takes rustls' cipher suites
/// (`ssl_ciphers` is ignored), holds up to [`petrel_tcp::TLS_BUFFER_LIMIT_BYTES`] of output per
/// connection (`ssl_wbuf_size`, in bytes as memcached prints it) and has no kernel TLS.
fn ssl_lines(s: &SslLines) -> Vec<(&'static str, String)> {
    let path = |p: Option<&Path>, none: &str| p.map_or(none.into(), |p| p.display().to_string());
    let yes_no = |b: bool| if b { "yes" } else { "no" }.to_string();
    vec![
        ("ssl_enabled", yes_no(s.enabled)),
        ("ssl_chain_cert", path(s.chain_cert, "(null)")),
        ("ssl_key", path(s.key, "(null)")),
        ("ssl_verify_mode", s.verify_mode.number().to_string()),
        ("ssl_keyformat", "1".into()),
        ("ssl_ciphers", "NULL".into()),
        ("ssl_ca_cert", path(s.ca_cert, "NULL")),
        (
            "ssl_wbuf_size",
            petrel_tcp::TLS_BUFFER_LIMIT_BYTES.to_string(),
        ),
        ("ssl_session_cache", yes_no(s.session_cache)),
        ("ssl_kernel_tls", "no".into()),
        (
            "ssl_min_version",
            if s.tls13_only { "tlsv1.3" } else { "tlsv1.2" }.into(),
        ),
    ]
}

/// The `ssl_*` lines of `stats settings` without `-Z`.
pub struct TlsOffSettings(Vec<(&'static str, String)>);

impl TlsOffSettings {
    /// The lines for `s`.
    pub fn new(s: &SslLines) -> TlsOffSettings {
        TlsOffSettings(ssl_lines(s))
    }
}

impl StatsSource for TlsOffSettings {
    fn for_each_stat(&self, _f: &mut dyn FnMut(&str, &str, u64)) {}

    fn for_each_setting(&self, f: &mut dyn FnMut(&str, &[u8])) {
        for (name, value) in &self.0 {
            f(name, value.as_bytes());
        }
    }
}

impl CertReload for TlsHooks {
    fn reload(&self, message: &mut [u8]) -> Result<(), usize> {
        reload(&self.0).map_err(|e| {
            let n = e.len().min(message.len());
            message[..n].copy_from_slice(&e.as_bytes()[..n]);
            n
        })
    }
}

/// Reloads the certificates, logging the outcome (the reason, never key
/// material).
pub fn reload(ctx: &TlsContext) -> Result<(), String> {
    match ctx.reload() {
        Ok(()) => {
            log::info!("TLS certificates reloaded");
            Ok(())
        }
        Err(e) => {
            log::warn!("TLS certificates not reloaded (the ones in use are kept): {e}");
            Err(e)
        }
    }
}

/// `stats` prints TLS's counters as `tls_<name>`, and memcached's two TLS
/// figures: `ssl_handshake_errors` (failed and timed-out handshakes) and
/// `time_since_server_cert_refresh` (seconds).
impl StatsSource for TlsHooks {
    fn for_each_stat(&self, f: &mut dyn FnMut(&str, &str, u64)) {
        let s = self.0.stats();
        f(
            "ssl_",
            "handshake_errors",
            s.handshakes_failed.get() + s.handshake_timeouts.get(),
        );
        f(
            "",
            "time_since_server_cert_refresh",
            u64::from(petrel_tcp::unix_now()).saturating_sub(self.0.loaded_at()),
        );
        s.for_each(|name, _, _, v| f("tls_", name, v));
    }

    fn for_each_setting(&self, f: &mut dyn FnMut(&str, &[u8])) {
        for (name, value) in &self.1 {
            f(name, value.as_bytes());
        }
    }
}

//! TLS wiring of the server: the certificates loaded at start-up, the
//! `refresh_certs` command and SIGHUP reloading them, and the `stats` lines.

use std::sync::Arc;

use petrel_core::engine::{CertReload, StatsSource};
use petrel_tcp::{TlsContext, TlsSettings};

/// `refresh_certs`, `stats` and `stats settings` over one [`TlsContext`].
pub struct TlsHooks(pub Arc<TlsContext>, Vec<(&'static str, String)>);

impl TlsHooks {
    /// The hooks of `ctx`, with its `stats settings` lines.
    pub fn new(ctx: Arc<TlsContext>) -> TlsHooks {
        let settings = settings_lines(ctx.settings());
        TlsHooks(ctx, settings)
    }
}

/// The `ssl_*` lines of `stats settings`: memcached 1.6.18's names in its order, with Petrel's
/// values. Where an option is not set, memcached's placeholder for it (`(null)` for the key,
/// `NULL` for the CA file and the cipher list). Petrel reads keys in PEM only (`ssl_keyformat`
/// 1, OpenSSL's number for PEM), takes rustls' cipher suites (`ssl_ciphers` is ignored), holds
/// up to [`petrel_tcp::TLS_BUFFER_LIMIT_BYTES`] of output per connection (`ssl_wbuf_size`, in
/// bytes as memcached prints it) and has no kernel TLS.
fn settings_lines(s: &TlsSettings) -> Vec<(&'static str, String)> {
    let path = |p: &std::path::Path| p.display().to_string();
    vec![
        ("ssl_enabled", "yes".into()),
        ("ssl_chain_cert", path(&s.chain_cert)),
        ("ssl_key", s.key.as_deref().map_or("(null)".into(), path)),
        ("ssl_verify_mode", s.verify_mode.number().to_string()),
        ("ssl_keyformat", "1".into()),
        ("ssl_ciphers", "NULL".into()),
        (
            "ssl_ca_cert",
            s.ca_cert.as_deref().map_or("NULL".into(), path),
        ),
        (
            "ssl_wbuf_size",
            petrel_tcp::TLS_BUFFER_LIMIT_BYTES.to_string(),
        ),
        (
            "ssl_session_cache",
            if s.session_cache { "yes" } else { "no" }.into(),
        ),
        ("ssl_kernel_tls", "no".into()),
        (
            "ssl_min_version",
            if s.allow_tls12 { "tlsv1.2" } else { "tlsv1.3" }.into(),
        ),
    ]
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

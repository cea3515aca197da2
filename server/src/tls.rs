//! TLS wiring of the server: the certificates loaded at start-up, the
//! `refresh_certs` command and SIGHUP reloading them, and the `stats` lines.

use std::sync::Arc;

use petrel_core::engine::{CertReload, StatsSource};
use petrel_tcp::TlsContext;

/// `refresh_certs` and `stats` over one [`TlsContext`].
pub struct TlsHooks(pub Arc<TlsContext>);

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
}

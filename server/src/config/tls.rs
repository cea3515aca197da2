//! TLS section: Petrel's `--tls-*` flags and keys, merged with memcached's
//! `-Z` (`--enable-ssl`) and `-o ssl_*` options (collected by
//! [`super::memcached`]). TLS is on when `-Z` is given; every TCP listener
//! then speaks TLS except those listed as `-l notls:ADDR`. The Unix socket
//! and UDP stay plain.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use serde::Deserialize;

use petrel_tcp::{TlsSettings, VerifyMode, DEFAULT_HANDSHAKE_TIMEOUT};

use super::value::{pick, pick_or, ConfigError, Origin, Sourced};

/// Petrel's TLS flags; each is also a config key of the same name.
#[derive(Args, Deserialize, Debug, Default, Clone)]
#[command(next_help_heading = "TLS (with -Z)")]
#[serde(rename_all = "kebab-case")]
pub struct TlsArgs {
    /// Server certificate chain, PEM, end-entity first (memcached's -o ssl_chain_cert)
    #[arg(long = "tls-cert", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// Private key, PEM (memcached's -o ssl_key) [default: in --tls-cert]
    #[arg(long = "tls-key", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// CA certificates client certificates are verified against, PEM
    /// (memcached's -o ssl_ca_cert)
    #[arg(long = "tls-ca", value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// Client certificates: 0 none, 1 request (verified if given), 2 require,
    /// 3 once (as 2) (memcached's -o ssl_verify_mode) [default: 0]
    #[arg(long = "tls-verify-mode", value_name = "0-3")]
    pub tls_verify_mode: Option<u8>,
    /// Oldest TLS version accepted: 1.2 or 1.3 (memcached's -o ssl_min_version) [default: 1.2]
    #[arg(long = "tls-min-version", value_name = "VERSION")]
    pub tls_min_version: Option<String>,
    /// Close TLS connections whose handshake has not completed in this many
    /// seconds (counted as tls_handshake_timeouts) [default: 10]
    #[arg(long = "tls-handshake-timeout", value_name = "SECS")]
    pub tls_handshake_timeout: Option<u32>,
}

/// memcached's `-o ssl_*` options as given (later ones win, as in memcached).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SslOptions {
    /// `ssl_chain_cert`.
    pub chain_cert: Option<PathBuf>,
    /// `ssl_key`.
    pub key: Option<PathBuf>,
    /// `ssl_ca_cert`.
    pub ca_cert: Option<PathBuf>,
    /// `ssl_verify_mode`.
    pub verify_mode: Option<VerifyMode>,
    /// `ssl_min_version`: 3 = TLS 1.3 only.
    pub tls13_only: Option<bool>,
    /// `ssl_session_cache`.
    pub session_cache: bool,
}

/// Merges a Petrel flag with the memcached option of the same meaning; the
/// two must agree when both are given.
fn merge_one<T: PartialEq + std::fmt::Debug + Clone>(
    own: Option<Sourced<T>>,
    memcached: Option<T>,
    option: &str,
) -> Result<Option<T>, ConfigError> {
    match (own, memcached) {
        (Some(a), Some(b)) if a.value != b => a
            .origin
            .fail(format!("{:?} differs from -o {option}={:?}", a.value, b)),
        (Some(a), _) => Ok(Some(a.value)),
        (None, Some(b)) => Ok(Some(b)),
        (None, None) => Ok(None),
    }
}

/// The TLS settings, or None when `-Z` is not given.
pub fn resolve(
    cli: &TlsArgs,
    file: &TlsArgs,
    enable: Option<Origin>,
    ssl: &SslOptions,
) -> Result<Option<TlsSettings>, ConfigError> {
    let chain = merge_one(
        pick(cli.tls_cert.clone(), file.tls_cert.clone(), "tls-cert"),
        ssl.chain_cert.clone(),
        "ssl_chain_cert",
    )?;
    let key = merge_one(
        pick(cli.tls_key.clone(), file.tls_key.clone(), "tls-key"),
        ssl.key.clone(),
        "ssl_key",
    )?;
    let ca = merge_one(
        pick(cli.tls_ca.clone(), file.tls_ca.clone(), "tls-ca"),
        ssl.ca_cert.clone(),
        "ssl_ca_cert",
    )?;
    let mode = match pick(cli.tls_verify_mode, file.tls_verify_mode, "tls-verify-mode") {
        None => None,
        Some(m) => match VerifyMode::from_number(u64::from(m.value)) {
            Some(v) => Some(Sourced {
                value: v,
                origin: m.origin,
            }),
            None => {
                return m
                    .origin
                    .fail("must be 0 (none), 1 (request), 2 (require) or 3 (once)")
            }
        },
    };
    let mode = merge_one(mode, ssl.verify_mode, "ssl_verify_mode")?.unwrap_or_default();
    let tls13_only = match pick(
        cli.tls_min_version.clone(),
        file.tls_min_version.clone(),
        "tls-min-version",
    ) {
        None => None,
        Some(v) => Some(Sourced {
            value: match v.value.trim() {
                "1.2" => false,
                "1.3" => true,
                _ => return v.origin.fail("must be 1.2 or 1.3"),
            },
            origin: v.origin,
        }),
    };
    let tls13_only = merge_one(tls13_only, ssl.tls13_only, "ssl_min_version")?.unwrap_or(false);
    let timeout = pick_or(
        cli.tls_handshake_timeout,
        file.tls_handshake_timeout,
        "tls-handshake-timeout",
        DEFAULT_HANDSHAKE_TIMEOUT.as_secs() as u32,
    );
    if timeout.value == 0 {
        return timeout.origin.fail("must be at least 1 second");
    }
    let Some(enable) = enable else {
        return Ok(None);
    };
    let Some(chain) = chain else {
        return enable.fail("TLS needs a certificate: --tls-cert FILE or -o ssl_chain_cert=FILE");
    };
    if mode != VerifyMode::None && ca.is_none() {
        return enable.fail(format!(
            "ssl_verify_mode {} needs CA certificates: --tls-ca FILE or -o ssl_ca_cert=FILE",
            mode.number()
        ));
    }
    Ok(Some(TlsSettings {
        chain_cert: chain,
        key,
        ca_cert: ca,
        verify_mode: mode,
        allow_tls12: !tls13_only,
        session_cache: ssl.session_cache,
        handshake_timeout: Duration::from_secs(timeout.value.into()),
    }))
}

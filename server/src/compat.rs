//! What Petrel tells clients and operators about itself, and the memcached
//! admin switches that change what clients may do: the version on the wire
//! (`--memcached-version`), the `shutdown` command (`-A`), and the text of
//! `petrel --version`.
//!
//! Version scheme: on the wire (`version`, `stats` `version`, the binary
//! protocol's version) Petrel reports the memcached release whose behaviour
//! it follows, [`petrel_core::MEMCACHED_VERSION`]: clients built on
//! libmemcached read that number to decide which commands a server has.
//! Petrel's own version is `stats` `petrel_version`, the `petrel_info`
//! metric's label, and `petrel --version`.

use std::io::Write;

use clap::Args;

use serde::Deserialize;

use crate::config::value::{pick, pick_switch, ConfigError};

/// `petrel --version`: Petrel's version, the git revision it was built from,
/// whether the AF_XDP front end is built in, and the memcached version it
/// reports by default.
#[cfg(all(feature = "xdp", target_os = "linux"))]
pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (git ",
    env!("PETREL_GIT_REVISION"),
    ", AF_XDP built in, reports memcached ",
    petrel_core::memcached_version!(),
    ")"
);
/// `petrel --version`: Petrel's version, the git revision it was built from,
/// whether the AF_XDP front end is built in, and the memcached version it
/// reports by default.
#[cfg(not(all(feature = "xdp", target_os = "linux")))]
pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (git ",
    env!("PETREL_GIT_REVISION"),
    ", AF_XDP not built in, reports memcached ",
    petrel_core::memcached_version!(),
    ")"
);

/// Stops the server when a client sends `shutdown` (with `-A`): writes to
/// the pipe that SIGINT and SIGTERM write to, so the stop is the same clean
/// stop as on SIGTERM (replies in flight finish, `--persist` saves).
pub struct ShutdownPipe(pub std::os::unix::net::UnixStream);

impl petrel_core::engine::ShutdownHook for ShutdownPipe {
    fn shutdown(&self, graceful: bool) {
        log::warn!(
            "stopping: a client sent shutdown{}",
            if graceful { " graceful" } else { "" }
        );
        if let Err(e) = (&self.0).write_all(&[1]) {
            log::error!("shutdown: cannot signal the main loop: {e}");
        }
    }
}

/// Longest `--memcached-version` accepted.
pub const VERSION_MAX_BYTES: usize = 64;

/// The flags; each is also a config key of the same name.
#[derive(Args, Deserialize, Debug, Default, Clone)]
#[command(next_help_heading = "Memcached compatibility")]
#[serde(rename_all = "kebab-case")]
pub struct CompatArgs {
    /// Version reported by `version` and `stats` (clients gate features on
    /// it), e.g. 1.6.18 or 1.6.18-petrel [default: 1.6.18]
    #[arg(long = "memcached-version", value_name = "VERSION")]
    pub memcached_version: Option<String>,
    /// Allow the `shutdown` command (memcached's -A) [default: off]
    #[arg(short = 'A', long = "enable-shutdown")]
    #[serde(default)]
    pub enable_shutdown: bool,
}

/// The effective settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompatSettings {
    /// Reported by `version` and `stats` `version`.
    pub memcached_version: String,
    /// `shutdown` stops the server (else it answers memcached's error).
    pub enable_shutdown: bool,
}

/// Merges the flags over their keys and checks them.
pub fn resolve(cli: &CompatArgs, file: &CompatArgs) -> Result<CompatSettings, ConfigError> {
    let version = pick(
        cli.memcached_version.clone(),
        file.memcached_version.clone(),
        "memcached-version",
    );
    let memcached_version = match version {
        Some(v) => {
            if let Err(what) = check_version(&v.value) {
                return v.origin.fail(what);
            }
            v.value
        }
        None => petrel_core::MEMCACHED_VERSION.to_string(),
    };
    Ok(CompatSettings {
        memcached_version,
        enable_shutdown: pick_switch(cli.enable_shutdown, file.enable_shutdown, "enable-shutdown")
            .value,
    })
}

/// A version clients can parse: it starts with `MAJOR.MINOR.PATCH` (what
/// libmemcached reads) and is one token of letters, digits and `.-+_`.
fn check_version(v: &str) -> Result<(), String> {
    let bad = || {
        Err(format!(
            "invalid version '{v}': expected MAJOR.MINOR.PATCH, optionally followed by \
             one of -+_ and letters, digits or dots (at most {VERSION_MAX_BYTES} bytes)"
        ))
    };
    if v.len() > VERSION_MAX_BYTES
        || !v
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-+".contains(&b))
    {
        return bad();
    }
    let numeric_end = v.find(['-', '+', '_']).unwrap_or(v.len());
    let parts: Vec<&str> = v[..numeric_end].split('.').collect();
    if parts.len() != 3
        || parts
            .iter()
            .any(|p| p.is_empty() || p.len() > 9 || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return bad();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{merge, parse_file, Cli};

    #[test]
    fn default_is_the_memcached_version_followed() {
        let s = merge(&Cli::default(), &Default::default()).unwrap();
        assert_eq!(s.compat.memcached_version, petrel_core::MEMCACHED_VERSION);
        assert!(!s.compat.enable_shutdown);
        assert!(LONG_VERSION.starts_with(env!("CARGO_PKG_VERSION")));
        assert!(LONG_VERSION.contains("git "), "{LONG_VERSION}");
        assert!(LONG_VERSION.contains("AF_XDP"), "{LONG_VERSION}");
    }

    #[test]
    fn flag_over_key_and_bad_values_name_their_origin() {
        let f = parse_file("memcached-version = \"1.6.9\"\nenable-shutdown = true\n").unwrap();
        let s = merge(&Cli::default(), &f).unwrap();
        assert_eq!(s.compat.memcached_version, "1.6.9");
        assert!(s.compat.enable_shutdown);
        let mut cli = Cli::default();
        cli.flags.compat.memcached_version = Some("1.6.18-petrel".into());
        assert_eq!(
            merge(&cli, &f).unwrap().compat.memcached_version,
            "1.6.18-petrel"
        );
        for bad in [
            "",
            "1.6",
            "1.6.x",
            "v1.6.18",
            "1.6.18 x",
            "1..18",
            "1.6.18\r\n",
        ] {
            cli.flags.compat.memcached_version = Some(bad.into());
            let e = merge(&cli, &Default::default()).unwrap_err().0;
            assert!(e.contains("--memcached-version"), "{bad:?}: {e}");
        }
        let f = parse_file("memcached-version = \"one\"\n").unwrap();
        let e = merge(&Cli::default(), &f).unwrap_err().0;
        assert!(e.contains("config key `memcached-version`"), "{e}");
    }
}

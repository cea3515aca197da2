//! The UDP amplification guard's settings (`--udp-allow`,
//! `--udp-max-amplification`, `--udp-rate`, `--udp-burst` and their config
//! keys) and the one guard every UDP path of the process shares.
//!
//! The guard itself is `petrel_core::udp::guard`; the README's "Limits and
//! safety" section explains the defaults.

use std::sync::Arc;

use petrel_core::udp::guard::{
    Cidr, GuardConfig, UdpGuard, DEFAULT_BURST, DEFAULT_MAX_AMPLIFICATION, DEFAULT_RATE_PER_SEC,
    MAX_ALLOW_ENTRIES, MAX_BURST, MAX_RATE_PER_SEC,
};

use clap::{ArgAction, Args};
use serde::Deserialize;

use crate::config::value::{pick, pick_or, ConfigError};

/// The guard's flags; each is also a config key of the same name.
#[derive(Args, Deserialize, Debug, Default, Clone)]
#[command(next_help_heading = "UDP amplification guard")]
#[serde(rename_all = "kebab-case")]
pub struct GuardArgs {
    /// UDP sources answered without the amplification cap and rate limit:
    /// a CIDR (repeatable, or comma-separated); `none` drops the built-in
    /// loopback entries [default: 127.0.0.0/8,::1/128]
    #[arg(long = "udp-allow", value_name = "CIDR", action = ArgAction::Append)]
    #[serde(default)]
    pub udp_allow: Vec<String>,
    /// Largest UDP reply to other sources, in multiples of the request's
    /// size; 0 = no cap [default: 10]
    #[arg(long = "udp-max-amplification", value_name = "N")]
    pub udp_max_amplification: Option<u32>,
    /// UDP reply datagrams per second per other source; 0 = no limit [default: 1000]
    #[arg(long = "udp-rate", value_name = "N")]
    pub udp_rate: Option<u32>,
    /// Burst of UDP reply datagrams per other source (token bucket size) [default: 1000]
    #[arg(long = "udp-burst", value_name = "N")]
    pub udp_burst: Option<u32>,
}

/// The value of `--udp-allow` that removes the built-in loopback entries.
pub const ALLOW_NONE: &str = "none";

/// The guard's effective settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardSettings {
    /// Allowlisted networks (loopback unless `none` was given).
    pub allow: Vec<Cidr>,
    /// Reply bytes per request byte for other sources; 0 = no cap.
    pub max_amplification: u32,
    /// Reply datagrams per second per other source; 0 = no rate limit.
    pub rate_per_sec: u32,
    /// Token bucket size in datagrams.
    pub burst: u32,
}

impl GuardSettings {
    /// The allowlist as the start-up line prints it.
    pub fn allow_text(&self) -> String {
        if self.allow.is_empty() {
            return ALLOW_NONE.to_string();
        }
        self.allow
            .iter()
            .map(|c| c.to_string())
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Merges the guard's flags over its config keys over the defaults. A
/// `--udp-allow` on the command line replaces the file's `udp-allow` list.
pub fn settings(cli: &GuardArgs, file: &GuardArgs) -> Result<GuardSettings, ConfigError> {
    let values = pick(
        (!cli.udp_allow.is_empty()).then_some(&cli.udp_allow),
        Some(&file.udp_allow),
        "udp-allow",
    );
    let (values, origin) = match values {
        Some(v) => (v.value.clone(), v.origin),
        None => (Vec::new(), crate::config::value::Origin::Key("udp-allow")),
    };
    let mut allow = vec![Cidr::LOOPBACK_V4, Cidr::LOOPBACK_V6];
    let mut extra = Vec::new();
    for v in &values {
        for part in v.split(',') {
            let p = part.trim();
            if p.eq_ignore_ascii_case(ALLOW_NONE) {
                allow.clear();
                continue;
            }
            match Cidr::parse(p) {
                Ok(c) => extra.push(c),
                Err(e) => {
                    return origin.fail(format!(
                        "'{p}': {e} (expected CIDR, e.g. 10.0.0.0/8, ::1/128, or none)"
                    ))
                }
            }
        }
    }
    for c in extra {
        if !allow.contains(&c) {
            allow.push(c);
        }
    }
    if allow.len() > MAX_ALLOW_ENTRIES {
        return origin.fail(format!(
            "at most {MAX_ALLOW_ENTRIES} networks (got {})",
            allow.len()
        ));
    }
    let max_amplification = pick_or(
        cli.udp_max_amplification,
        file.udp_max_amplification,
        "udp-max-amplification",
        DEFAULT_MAX_AMPLIFICATION,
    )
    .value;
    let rate = pick_or(
        cli.udp_rate,
        file.udp_rate,
        "udp-rate",
        DEFAULT_RATE_PER_SEC,
    );
    if rate.value > MAX_RATE_PER_SEC {
        return rate.origin.fail(format!(
            "at most {MAX_RATE_PER_SEC} datagrams per second (0 = no rate limit)"
        ));
    }
    let burst = pick_or(cli.udp_burst, file.udp_burst, "udp-burst", DEFAULT_BURST);
    if rate.value > 0 && (burst.value == 0 || burst.value > MAX_BURST) {
        return burst.origin.fail(format!(
            "must be between 1 and {MAX_BURST} datagrams while --udp-rate is not 0"
        ));
    }
    Ok(GuardSettings {
        allow,
        max_amplification,
        rate_per_sec: rate.value,
        burst: burst.value,
    })
}

/// Builds the process's one guard, with a secret random seed for the
/// source hash.
pub fn build(s: &GuardSettings) -> Result<Arc<UdpGuard>, String> {
    let mut cfg = GuardConfig {
        max_amplification: s.max_amplification,
        rate_per_sec: s.rate_per_sec,
        burst: s.burst,
        seed: random_seed(),
        ..GuardConfig::default()
    };
    cfg.allow.clear();
    for c in &s.allow {
        if cfg.allow.push(*c).is_err() {
            return Err("--udp-allow: too many networks".to_string());
        }
    }
    UdpGuard::new(&cfg)
        .map(Arc::new)
        .map_err(|e| format!("UDP guard: {e}"))
}

/// 64 random bits from the kernel (a clock-based value if that fails).
fn random_seed() -> u64 {
    let mut buf = [0u8; 8];
    // SAFETY: getrandom writes at most 8 bytes into the 8-byte buffer.
    let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n == 8 {
        return u64::from_le_bytes(buf);
    }
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    t ^ u64::from(std::process::id()).rotate_left(32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{merge, parse_file, Cli};

    fn cli(args: &[&str]) -> GuardArgs {
        use clap::Parser;
        let mut v = vec!["petrel"];
        v.extend_from_slice(args);
        Cli::try_parse_from(v).unwrap().flags.udp_guard
    }

    #[test]
    fn defaults_allow_loopback_with_a_10x_cap_and_1000_per_second() {
        let s = settings(&cli(&[]), &GuardArgs::default()).unwrap();
        assert_eq!(s.allow, vec![Cidr::LOOPBACK_V4, Cidr::LOOPBACK_V6]);
        assert_eq!(
            (s.max_amplification, s.rate_per_sec, s.burst),
            (10, 1000, 1000)
        );
        assert_eq!(s.allow_text(), "127.0.0.0/8,::1/128");
        let g = build(&s).unwrap();
        assert!(g.is_trusted("127.0.0.1".parse().unwrap()));
        assert!(!g.is_trusted("10.0.0.1".parse().unwrap()));
    }

    #[test]
    fn allow_flags_add_none_removes_loopback() {
        let s = settings(
            &cli(&[
                "--udp-allow",
                "10.0.0.0/8",
                "--udp-allow",
                "2001:db8::/32,192.0.2.1",
            ]),
            &GuardArgs::default(),
        )
        .unwrap();
        assert_eq!(s.allow.len(), 5);
        let s = settings(&cli(&["--udp-allow", "none"]), &GuardArgs::default()).unwrap();
        assert!(s.allow.is_empty());
        assert_eq!(s.allow_text(), "none");
        let s = settings(
            &cli(&["--udp-allow", "none", "--udp-allow", "198.18.0.0/15"]),
            &GuardArgs::default(),
        )
        .unwrap();
        assert_eq!(s.allow, vec![Cidr::parse("198.18.0.0/15").unwrap()]);
    }

    #[test]
    fn file_keys_and_precedence() {
        let f = parse_file(
            "udp-allow = [\"none\", \"10.1.0.0/16\"]\nudp-max-amplification = 3\nudp-rate = 0\nudp-burst = 0\n",
        )
        .unwrap();
        let s = merge(&Cli::default(), &f).unwrap().udp_guard;
        let f = f.udp_guard;
        assert_eq!(s.allow, vec![Cidr::parse("10.1.0.0/16").unwrap()]);
        assert_eq!((s.max_amplification, s.rate_per_sec, s.burst), (3, 0, 0));
        let s = settings(
            &cli(&["--udp-allow", "10.2.0.0/16", "--udp-burst", "7"]),
            &f,
        )
        .unwrap();
        assert_eq!(s.allow.len(), 3, "flag replaces the file's list");
        assert_eq!((s.rate_per_sec, s.burst), (0, 7));
        // the file's burst 0 with a rate from a flag: named error
        let e = settings(&cli(&["--udp-rate", "5"]), &f).unwrap_err().0;
        assert!(e.contains("config key `udp-burst`"), "{e}");
    }

    #[test]
    fn errors_name_the_flag_or_key() {
        for (args, needle) in [
            (&["--udp-allow", "10.0.0.1/8"][..], "--udp-allow"),
            (&["--udp-allow", "bogus"][..], "--udp-allow"),
            (&["--udp-rate", "5", "--udp-burst", "0"][..], "--udp-burst"),
            (&["--udp-rate", "1000000000"][..], "--udp-rate"),
        ] {
            let e = settings(&cli(args), &GuardArgs::default()).unwrap_err().0;
            assert!(e.contains(needle), "{args:?}: {e}");
            assert_eq!(e.lines().count(), 1);
        }
        let f = parse_file("udp-allow = [\"300.0.0.0/8\"]\n").unwrap();
        let e = settings(&GuardArgs::default(), &f.udp_guard).unwrap_err().0;
        assert!(e.contains("config key `udp-allow`"), "{e}");
    }
}

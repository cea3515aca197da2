//! Settings of the observability features: the admin endpoint's address,
//! the periodic stats line and the command log (`--admin-listen`,
//! `--stats-log-interval`, `--klog-file`, `--klog-sample`,
//! `--klog-max-bytes` and their config keys). `--admin-port` itself is in
//! the network section (`config/net.rs`).

use std::net::IpAddr;
use std::path::PathBuf;

use clap::Args;
use serde::Deserialize;

use crate::config::value::{pick, pick_size, ConfigError, SizeValue};

/// The observability flags; each is also a config key of the same name.
#[derive(Args, Deserialize, Debug, Default, Clone)]
#[command(next_help_heading = "Observability")]
#[serde(rename_all = "kebab-case")]
pub struct ObservabilityArgs {
    /// Address the admin endpoint listens on [default: 127.0.0.1]
    #[arg(long = "admin-listen", value_name = "ADDR")]
    pub admin_listen: Option<String>,
    /// Log one line of key stats every SECS seconds, 0 = off [default: 0]
    #[arg(long = "stats-log-interval", value_name = "SECS")]
    pub stats_log_interval: Option<u64>,
    /// Write the command log (sampled requests) to this file
    #[arg(long = "klog-file", value_name = "PATH")]
    pub klog_file: Option<PathBuf>,
    /// Log 1 in N requests to the command log, 0 = off [default: 100 with --klog-file]
    #[arg(long = "klog-sample", value_name = "N")]
    pub klog_sample: Option<u32>,
    /// Rotate the command log at this size (bytes or k/m/g), keeping one old file [default: 64m]
    #[arg(long = "klog-max-bytes", value_name = "SIZE", value_parser = SizeValue::from_flag)]
    pub klog_max_bytes: Option<SizeValue>,
}

/// The command log's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KlogSettings {
    /// The file.
    pub path: PathBuf,
    /// 1 in this many requests.
    pub sample: u32,
    /// Rotation size.
    pub max_bytes: u64,
}

/// The effective observability settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservabilitySettings {
    /// Admin endpoint address.
    pub admin_listen: IpAddr,
    /// `--admin-port` (or its key) was given: failing to bind it is fatal.
    pub admin_port_explicit: bool,
    /// Seconds between stats lines; 0 = off.
    pub stats_log_interval_secs: u64,
    /// The command log; None = off.
    pub klog: Option<KlogSettings>,
}

/// Default sample rate of the command log when only the file is given.
pub const DEFAULT_KLOG_SAMPLE: u32 = 100;
/// Smallest rotation size accepted.
const KLOG_MAX_BYTES_MIN: u64 = 4096;

/// Reads the observability flags over the config file's keys.
/// `admin_port_explicit` says whether `--admin-port` (or its key) was given.
pub fn settings(
    cli: &ObservabilityArgs,
    file: &ObservabilityArgs,
    admin_port_explicit: bool,
) -> Result<ObservabilitySettings, ConfigError> {
    let admin_listen = match pick(
        cli.admin_listen.as_deref(),
        file.admin_listen.as_deref(),
        "admin-listen",
    ) {
        None => IpAddr::from([127, 0, 0, 1]),
        Some(s) => {
            let t = s.value.trim();
            let t = t
                .strip_prefix('[')
                .and_then(|x| x.strip_suffix(']'))
                .unwrap_or(t);
            match t.parse::<IpAddr>() {
                Ok(ip) => ip,
                Err(_) => return s.origin.fail(format!("'{t}' is not an IP address")),
            }
        }
    };
    let stats_log_interval_secs = match pick(
        cli.stats_log_interval,
        file.stats_log_interval,
        "stats-log-interval",
    ) {
        Some(s) if s.value > 86_400 * 365 => return s.origin.fail("at most one year"),
        Some(s) => s.value,
        None => 0,
    };
    let path = pick(cli.klog_file.clone(), file.klog_file.clone(), "klog-file");
    let sample = pick(cli.klog_sample, file.klog_sample, "klog-sample");
    let max_bytes = pick_size(&cli.klog_max_bytes, &file.klog_max_bytes, "klog-max-bytes")?;
    if let Some(m) = &max_bytes {
        if m.value < KLOG_MAX_BYTES_MIN {
            return m
                .origin
                .fail(format!("at least {KLOG_MAX_BYTES_MIN} bytes"));
        }
    }
    let klog = match (path, sample) {
        (None, Some(n)) if n.value > 0 => {
            return n
                .origin
                .fail("the command log needs a file: give --klog-file")
        }
        (None, _) => None,
        (_, Some(n)) if n.value == 0 => None,
        (Some(p), _) if p.value.as_os_str().is_empty() => return p.origin.fail("empty path"),
        (Some(p), n) => Some(KlogSettings {
            path: p.value,
            sample: n.map_or(DEFAULT_KLOG_SAMPLE, |n| n.value),
            max_bytes: max_bytes.map_or(crate::klog::DEFAULT_MAX_BYTES, |m| m.value),
        }),
    };
    Ok(ObservabilitySettings {
        admin_listen,
        admin_port_explicit,
        stats_log_interval_secs,
        klog,
    })
}

#[cfg(test)]
mod tests {
    use crate::config::{parse_args, Parsed, Settings};

    fn run(args: &[&str]) -> Result<Settings, String> {
        let mut v = vec!["petrel"];
        v.extend_from_slice(args);
        match parse_args(v).map_err(|e| e.0)? {
            Parsed::Run(s) => Ok(*s),
            Parsed::Print(t) => panic!("{t}"),
        }
    }

    #[test]
    fn defaults_and_flags() {
        let s = run(&[]).unwrap().observability;
        assert_eq!(s.admin_listen.to_string(), "127.0.0.1");
        assert!(!s.admin_port_explicit);
        assert_eq!(s.stats_log_interval_secs, 0);
        assert_eq!(s.klog, None);
        let s = run(&[
            "--admin-port",
            "0",
            "--admin-listen",
            "::1",
            "--stats-log-interval",
            "5",
            "--klog-file",
            "/tmp/k",
            "--klog-max-bytes",
            "1m",
        ])
        .unwrap()
        .observability;
        assert!(s.admin_port_explicit);
        assert_eq!(s.admin_listen.to_string(), "::1");
        let k = s.klog.unwrap();
        assert_eq!((k.sample, k.max_bytes), (100, 1 << 20));
        let s = run(&["--klog-file", "/tmp/k", "--klog-sample", "0"]).unwrap();
        assert_eq!(s.observability.klog, None);
    }

    #[test]
    fn config_file_keys_and_flag_precedence() {
        use crate::config::{merge, parse_file, Cli};
        let f = parse_file(
            "admin-listen = \"::1\"\nstats-log-interval = 30\nklog-file = \"/tmp/k\"\nklog-sample = 7\nklog-max-bytes = \"2m\"\n",
        )
        .unwrap();
        let s = merge(&Cli::default(), &f).unwrap().observability;
        assert_eq!(s.admin_listen.to_string(), "::1");
        assert_eq!(s.stats_log_interval_secs, 30);
        let k = s.klog.unwrap();
        assert_eq!((k.sample, k.max_bytes), (7, 2 << 20));
        let mut cli = Cli::default();
        cli.flags.observability.klog_sample = Some(0);
        assert_eq!(
            merge(&cli, &f).unwrap().observability.klog,
            None,
            "flag wins"
        );
        let f = parse_file("klog-max-bytes = 100\nklog-file = \"/tmp/k\"\n").unwrap();
        let e = merge(&Cli::default(), &f).unwrap_err().0;
        assert!(e.contains("config key `klog-max-bytes`"), "{e}");
    }

    #[test]
    fn errors_name_the_flag() {
        for (args, needle) in [
            (&["--admin-listen", "nowhere"][..], "--admin-listen"),
            (&["--klog-sample", "5"][..], "--klog-sample"),
            (
                &["--klog-file", "/tmp/k", "--klog-max-bytes", "12"][..],
                "--klog-max-bytes",
            ),
            (
                &["--klog-file", "/tmp/k", "--klog-max-bytes", "x"][..],
                "--klog-max-bytes",
            ),
            (&["--stats-log-interval", "x"][..], "--stats-log-interval"),
        ] {
            let e = run(args).unwrap_err();
            assert!(e.contains(needle), "{args:?}: {e}");
            assert_eq!(e.lines().count(), 1);
        }
    }
}

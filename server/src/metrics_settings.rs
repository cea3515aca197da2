//! Settings of the observability features: the admin endpoint's address,
//! the periodic stats line and the command log (`--admin-listen`,
//! `--stats-log-interval`, `--klog-file`, `--klog-sample`,
//! `--klog-max-bytes` and their config keys). `--admin-port` itself is in
//! `config.rs`.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::Args;

use crate::config::{parse_size, Cli, ConfigError, FileConfig, SizeValue};

/// Command-line flags (flattened into [`Cli`]).
#[derive(Args, Debug, Default, Clone)]
pub struct ObservabilityCli {
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
    #[arg(long = "klog-max-bytes", value_name = "SIZE")]
    pub klog_max_bytes: Option<String>,
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

fn origin(flag: bool, name: &str) -> String {
    if flag {
        format!("--{name}")
    } else {
        format!("config key `{name}`")
    }
}

/// Reads the observability flags over the config file's keys.
pub fn settings(cli: &Cli, file: &FileConfig) -> Result<ObservabilitySettings, ConfigError> {
    let o = &cli.observability;
    let bad = |at: String, what: String| Err(ConfigError(format!("petrel: {at}: {what}")));
    let listen_text = o.admin_listen.clone().or_else(|| file.admin_listen.clone());
    let admin_listen = match &listen_text {
        None => IpAddr::from([127, 0, 0, 1]),
        Some(t) => {
            let t = t.trim();
            let t = t
                .strip_prefix('[')
                .and_then(|x| x.strip_suffix(']'))
                .unwrap_or(t);
            match t.parse::<IpAddr>() {
                Ok(ip) => ip,
                Err(_) => {
                    return bad(
                        origin(o.admin_listen.is_some(), "admin-listen"),
                        format!("'{t}' is not an IP address"),
                    )
                }
            }
        }
    };
    let stats_log_interval_secs = o
        .stats_log_interval
        .or(file.stats_log_interval)
        .unwrap_or(0);
    if stats_log_interval_secs > 86_400 * 365 {
        return bad(
            origin(o.stats_log_interval.is_some(), "stats-log-interval"),
            "at most one year".into(),
        );
    }
    let path = o.klog_file.clone().or_else(|| file.klog_file.clone());
    let sample_flag = o.klog_sample.is_some();
    let sample = o.klog_sample.or(file.klog_sample);
    let max_flag = o.klog_max_bytes.is_some();
    let max_bytes = match (&o.klog_max_bytes, &file.klog_max_bytes) {
        (Some(t), _) | (None, Some(SizeValue::Text(t))) => match parse_size(t) {
            Some(b) => Some(b),
            None => {
                return bad(
                    origin(max_flag, "klog-max-bytes"),
                    format!("invalid size '{t}' (use bytes or a k/m/g suffix)"),
                )
            }
        },
        (None, Some(SizeValue::Bytes(b))) => Some(*b),
        (None, None) => None,
    };
    if max_bytes.is_some_and(|b| b < KLOG_MAX_BYTES_MIN) {
        return bad(
            origin(max_flag, "klog-max-bytes"),
            format!("at least {KLOG_MAX_BYTES_MIN} bytes"),
        );
    }
    let klog = match (path, sample) {
        (None, Some(n)) if n > 0 => {
            return bad(
                origin(sample_flag, "klog-sample"),
                "the command log needs a file: give --klog-file".into(),
            )
        }
        (None, _) | (_, Some(0)) => None,
        (Some(p), _) if p.as_os_str().is_empty() => {
            return bad(
                origin(o.klog_file.is_some(), "klog-file"),
                "empty path".into(),
            )
        }
        (Some(p), n) => Some(KlogSettings {
            path: p,
            sample: n.unwrap_or(DEFAULT_KLOG_SAMPLE),
            max_bytes: max_bytes.unwrap_or(crate::klog::DEFAULT_MAX_BYTES),
        }),
    };
    Ok(ObservabilitySettings {
        admin_listen,
        admin_port_explicit: cli.admin_port.is_some() || file.admin_port.is_some(),
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
        cli.observability.klog_sample = Some(0);
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

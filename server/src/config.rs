//! Command line and configuration file, merged into one [`Settings`].
//!
//! Precedence: a flag given on the command line wins over the same key in the
//! `--config` TOML file, which wins over the default. Every config file key
//! is the long flag's name without the dashes (`udp-port = 11211`). Any
//! error — unknown flag or key, bad value, impossible combination — is one
//! line naming the flag or key, and the process exits with status 64
//! (`EX_USAGE`), as memcached's option errors do.

use std::fmt;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

use clap::{ArgAction, Parser};
use serde::Deserialize;

/// Exit status for usage and configuration errors (sysexits.h `EX_USAGE`).
pub const EXIT_USAGE: i32 = 64;

/// Defaults, memcached's where memcached has the same setting.
pub mod defaults {
    /// TCP port.
    pub const PORT: u16 = 11211;
    /// UDP port (0 disables UDP).
    pub const UDP_PORT: u16 = 11211;
    /// Listen address.
    pub const LISTEN: &str = "127.0.0.1";
    /// MiB of item memory.
    pub const MEMORY_LIMIT_MIB: u64 = 64;
    /// Most simultaneous TCP connections.
    pub const CONN_LIMIT: u32 = 1024;
    /// Worker threads (memcached's default).
    pub const THREADS: u32 = 4;
    /// Largest item in bytes (1m).
    pub const MAX_ITEM_BYTES: u64 = 1 << 20;
    /// Admin endpoint port (0 disables).
    pub const ADMIN_PORT: u16 = 9999;
    /// Idle timeout in seconds (0 = never).
    pub const IDLE_TIMEOUT_SECS: u32 = 0;
}

/// Smallest `-I` memcached accepts.
pub const MIN_ITEM_BYTES: u64 = 1024;
/// Largest `-I` memcached accepts (1024m).
pub const MAX_ITEM_LIMIT_BYTES: u64 = 1024 << 20;
/// Most worker threads accepted.
pub const MAX_THREADS: u32 = 256;

/// A configuration error: one line, naming the flag or key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Petrel's command line (memcached-compatible where the flags overlap).
#[derive(Parser, Debug, Default)]
#[command(
    name = "petrel",
    version,
    about = "A memcached-compatible cache server",
    // `-m -5` is a bad value for -m (named in the error), not an unknown flag.
    allow_negative_numbers = true
)]
pub struct Cli {
    /// TCP port to listen on [default: 11211]
    #[arg(short = 'p', long = "port", value_name = "PORT")]
    pub port: Option<u16>,
    /// UDP port to listen on, 0 disables UDP [default: 11211]
    #[arg(short = 'U', long = "udp-port", value_name = "PORT")]
    pub udp_port: Option<u16>,
    /// Interface(s) to listen on: comma-separated addresses [default: 127.0.0.1]
    #[arg(short = 'l', long = "listen", value_name = "ADDR")]
    pub listen: Option<String>,
    /// Item memory in megabytes (MiB) [default: 64]
    #[arg(short = 'm', long = "memory-limit", value_name = "MB")]
    pub memory_limit: Option<u64>,
    /// Most simultaneous connections [default: 1024]
    #[arg(short = 'c', long = "conn-limit", value_name = "N")]
    pub conn_limit: Option<u32>,
    /// Worker threads [default: 4]
    #[arg(short = 't', long = "threads", value_name = "N")]
    pub threads: Option<u32>,
    /// Largest item, bytes or with a k/m suffix (min 1k, max 1024m) [default: 1m]
    #[arg(short = 'I', long = "max-item-size", value_name = "SIZE")]
    pub max_item_size: Option<String>,
    /// More logging: -v debug, -vv trace (default: info)
    #[arg(short = 'v', long = "verbose", action = ArgAction::Count)]
    pub verbose: u8,
    /// Drop privileges to this user after binding (when started as root)
    #[arg(short = 'u', long = "user", value_name = "USER")]
    pub user: Option<String>,
    /// TOML configuration file (flags override its keys)
    #[arg(long = "config", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Admin endpoint port on loopback, 0 disables [default: 9999]
    #[arg(long = "admin-port", value_name = "PORT")]
    pub admin_port: Option<u16>,
    /// Admin address, stats log and command log flags.
    #[command(flatten)]
    pub observability: crate::metrics_settings::ObservabilityCli,
    /// Close connections idle for this many seconds, 0 = never [default: 0]
    #[arg(long = "idle-timeout", value_name = "SECS")]
    pub idle_timeout: Option<u32>,
    /// UDP sources answered without the amplification cap and rate limit:
    /// a CIDR (repeatable, or comma-separated); `none` drops the built-in
    /// loopback entries [default: 127.0.0.0/8,::1/128]
    #[arg(long = "udp-allow", value_name = "CIDR", action = ArgAction::Append)]
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
    /// Per-connection read buffer: the longest request (an item with its
    /// command line, or a multi-get line); longer ones close the connection
    /// [default: max(-I, 64k) + 2k]
    #[arg(long = "read-buffer", value_name = "SIZE")]
    pub read_buffer: Option<String>,
    /// Per-connection write buffer: what a client that does not read its
    /// replies can make the server hold [default: 64k]
    #[arg(long = "write-buffer", value_name = "SIZE")]
    pub write_buffer: Option<String>,
    /// Longest request line other than get/gets (512 up to the read buffer
    /// less 2k); a longer one closes the connection, no reply [default:
    /// 2048, memcached's fixed limit]
    #[arg(long = "max-line-bytes", value_name = "SIZE")]
    pub max_line_bytes: Option<String>,
    /// Write the log to this file instead of stderr
    #[arg(long = "log-file", value_name = "PATH")]
    pub log_file: Option<PathBuf>,
    /// Keep the item memory in this file (a shared mapping; tmpfs or DAX in
    /// production) and restart warm from it after a clean shutdown
    #[arg(long = "persist", value_name = "PATH")]
    pub persist: Option<PathBuf>,
    /// Also serve memcache over UDP from this interface's RX queues through
    /// AF_XDP (needs root, or CAP_NET_ADMIN, CAP_NET_RAW and CAP_BPF)
    #[arg(long = "xdp-iface", value_name = "IFACE")]
    pub xdp_iface: Option<String>,
    /// RX queues to serve through AF_XDP, e.g. 0,2-3 (others reach the kernel UDP socket) [default: all]
    #[arg(long = "xdp-queues", value_name = "LIST")]
    pub xdp_queues: Option<String>,
    /// XDP attach mode: auto, native or generic (a forced mode makes AF_XDP required) [default: auto]
    #[arg(long = "xdp-mode", value_name = "MODE")]
    pub xdp_mode: Option<String>,
    /// AF_XDP zero-copy: auto, on (makes AF_XDP required) or off [default: auto]
    #[arg(long = "xdp-zero-copy", value_name = "WHEN")]
    pub xdp_zero_copy: Option<String>,
    /// AF_XDP workers spin instead of sleeping when idle (dedicated cores only)
    #[arg(long = "xdp-busy-poll")]
    pub xdp_busy_poll: bool,
    /// CPUs to pin the AF_XDP workers to, one per queue in turn, e.g. 2-3 [default: all allowed]
    #[arg(long = "xdp-cpus", value_name = "LIST")]
    pub xdp_cpus: Option<String>,
    /// Exit (status 71) if AF_XDP cannot be set up, instead of serving UDP over the kernel socket only
    #[arg(long = "xdp-required")]
    pub xdp_required: bool,
    /// Microseconds an idle AF_XDP worker keeps polling its rings before it sleeps, 0 = sleep at once [default: 0]
    #[arg(long = "xdp-idle-spin-us", value_name = "US")]
    pub xdp_idle_spin_us: Option<u32>,
}

/// A size as written in the config file: bytes, or a string like "1m".
#[derive(Deserialize, Debug, Clone)]
#[serde(untagged)]
pub enum SizeValue {
    /// Bytes.
    Bytes(u64),
    /// A number with an optional k/m suffix.
    Text(String),
}

/// The `--config` file: every key optional, unknown keys rejected.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FileConfig {
    /// See `--port`.
    pub port: Option<u16>,
    /// See `--udp-port`.
    pub udp_port: Option<u16>,
    /// See `--listen`.
    pub listen: Option<String>,
    /// See `--memory-limit`.
    pub memory_limit: Option<u64>,
    /// See `--conn-limit`.
    pub conn_limit: Option<u32>,
    /// See `--threads`.
    pub threads: Option<u32>,
    /// See `--max-item-size`.
    pub max_item_size: Option<SizeValue>,
    /// See `-v`: 0 info, 1 debug, 2 trace.
    pub verbose: Option<u8>,
    /// See `--user`.
    pub user: Option<String>,
    /// See `--admin-port`.
    pub admin_port: Option<u16>,
    /// See `--admin-listen`.
    pub admin_listen: Option<String>,
    /// See `--stats-log-interval`.
    pub stats_log_interval: Option<u64>,
    /// See `--klog-file`.
    pub klog_file: Option<PathBuf>,
    /// See `--klog-sample`.
    pub klog_sample: Option<u32>,
    /// See `--klog-max-bytes`.
    pub klog_max_bytes: Option<SizeValue>,
    /// See `--idle-timeout`.
    pub idle_timeout: Option<u32>,
    /// See `--udp-allow` (a list of CIDRs, or `none`).
    pub udp_allow: Option<Vec<String>>,
    /// See `--udp-max-amplification`.
    pub udp_max_amplification: Option<u32>,
    /// See `--udp-rate`.
    pub udp_rate: Option<u32>,
    /// See `--udp-burst`.
    pub udp_burst: Option<u32>,
    /// See `--read-buffer`.
    pub read_buffer: Option<SizeValue>,
    /// See `--write-buffer`.
    pub write_buffer: Option<SizeValue>,
    /// See `--max-line-bytes`.
    pub max_line_bytes: Option<SizeValue>,
    /// See `--log-file`.
    pub log_file: Option<PathBuf>,
    /// See `--persist`.
    pub persist: Option<PathBuf>,
    /// See `--xdp-iface`.
    pub xdp_iface: Option<String>,
    /// See `--xdp-queues`.
    pub xdp_queues: Option<String>,
    /// See `--xdp-mode`.
    pub xdp_mode: Option<String>,
    /// See `--xdp-zero-copy`.
    pub xdp_zero_copy: Option<String>,
    /// See `--xdp-busy-poll`.
    pub xdp_busy_poll: Option<bool>,
    /// See `--xdp-cpus`.
    pub xdp_cpus: Option<String>,
    /// See `--xdp-required`.
    pub xdp_required: Option<bool>,
    /// See `--xdp-idle-spin-us`.
    pub xdp_idle_spin_us: Option<u32>,
}

/// The effective configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// TCP port.
    pub port: u16,
    /// UDP port; 0 = no UDP.
    pub udp_port: u16,
    /// Addresses to bind (TCP and UDP).
    pub listen: Vec<IpAddr>,
    /// Item memory in bytes.
    pub memory_limit_bytes: u64,
    /// Most simultaneous TCP connections.
    pub conn_limit: u32,
    /// Worker threads.
    pub threads: u32,
    /// Largest item in bytes.
    pub max_item_bytes: u64,
    /// 0 info, 1 debug, 2+ trace.
    pub verbosity: u8,
    /// User to switch to after binding.
    pub user: Option<String>,
    /// Admin port; 0 = disabled.
    pub admin_port: u16,
    /// Admin address, stats log, command log.
    pub observability: crate::metrics_settings::ObservabilitySettings,
    /// Idle timeout in seconds; 0 = never.
    pub idle_timeout_secs: u32,
    /// The UDP amplification guard.
    pub udp_guard: crate::udp_guard::GuardSettings,
    /// Per-connection read buffer in bytes.
    pub read_buffer_bytes: u64,
    /// Per-connection write buffer in bytes.
    pub write_buffer_bytes: u64,
    /// Longest request line other than `get`/`gets`, in bytes.
    pub max_line_bytes: u64,
    /// Log file; None = stderr.
    pub log_file: Option<PathBuf>,
    /// Item memory file for warm restarts; None = anonymous memory.
    pub persist: Option<PathBuf>,
    /// The config file read, if any.
    pub config_file: Option<PathBuf>,
    /// AF_XDP front end; None = off (no `--xdp-iface`).
    pub xdp: Option<crate::xdp::XdpSettings>,
}

impl Settings {
    /// TCP socket addresses to bind.
    pub fn tcp_addrs(&self) -> Vec<SocketAddr> {
        self.listen
            .iter()
            .map(|ip| SocketAddr::new(*ip, self.port))
            .collect()
    }

    /// UDP socket addresses to bind (empty when UDP is disabled).
    pub fn udp_addrs(&self) -> Vec<SocketAddr> {
        if self.udp_port == 0 {
            return Vec::new();
        }
        self.listen
            .iter()
            .map(|ip| SocketAddr::new(*ip, self.udp_port))
            .collect()
    }
}

/// What `parse_args` decided.
#[derive(Debug)]
pub enum Parsed {
    /// Run with these settings.
    Run(Box<Settings>),
    /// Print this text on stdout and exit 0 (`--help`, `--version`).
    Print(String),
}

/// Parses the command line (with the program name first) and the config
/// file it names, and validates the result.
pub fn parse_args<I, T>(args: I) -> Result<Parsed, ConfigError>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                return Ok(Parsed::Print(e.render().to_string()));
            }
            let text = e.render().to_string();
            let line = text
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("bad arguments");
            return Err(ConfigError(format!("petrel: {}", line.trim())));
        }
    };
    let file = match &cli.config {
        Some(path) => read_file(path)?,
        None => FileConfig::default(),
    };
    merge(&cli, &file).map(|s| Parsed::Run(Box::new(s)))
}

/// Reads and parses a TOML config file.
pub fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError(format!("petrel: --config {}: {e}", path.display())))?;
    parse_file(&text).map_err(|m| ConfigError(format!("petrel: --config {}: {m}", path.display())))
}

/// Parses config file text; the error is one line with the line number.
pub fn parse_file(text: &str) -> Result<FileConfig, String> {
    toml::from_str::<FileConfig>(text).map_err(|e| {
        let msg = e.message().replace('\n', " ");
        match e.span() {
            Some(span) => {
                let start = span.start.min(text.len());
                let line = text[..start].matches('\n').count() + 1;
                // Name the key of that line when it has one.
                let line_text = text.lines().nth(line - 1).unwrap_or("");
                match line_text.split_once('=') {
                    Some((key, _)) if !msg.contains(key.trim()) => {
                        format!("line {line}: key `{}`: {msg}", key.trim())
                    }
                    _ => format!("line {line}: {msg}"),
                }
            }
            None => msg,
        }
    })
}

/// One setting's value and where it came from, for error messages.
struct Pick<T> {
    value: T,
    origin: String,
}

fn pick<T>(flag: Option<T>, flag_name: &str, file: Option<T>, key: &str, default: T) -> Pick<T> {
    match (flag, file) {
        (Some(v), _) => Pick {
            value: v,
            origin: flag_name.to_string(),
        },
        (None, Some(v)) => Pick {
            value: v,
            origin: format!("config key `{key}`"),
        },
        (None, None) => Pick {
            value: default,
            origin: flag_name.to_string(),
        },
    }
}

fn err<T>(origin: &str, what: impl fmt::Display) -> Result<T, ConfigError> {
    Err(ConfigError(format!("petrel: {origin}: {what}")))
}

/// Parses a memcached size: digits with an optional k/K or m/M suffix
/// (also g/G), in bytes.
pub fn parse_size(text: &str) -> Option<u64> {
    let t = text.trim();
    let (digits, mult) = match t.char_indices().last()? {
        (i, 'k' | 'K') => (&t[..i], 1u64 << 10),
        (i, 'm' | 'M') => (&t[..i], 1 << 20),
        (i, 'g' | 'G') => (&t[..i], 1 << 30),
        _ => (t, 1),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u64>().ok()?.checked_mul(mult)
}

/// Resolves a comma-separated listen list (IP literals, `[v6]`, or names).
fn parse_listen(text: &str, origin: &str) -> Result<Vec<IpAddr>, ConfigError> {
    let mut out = Vec::new();
    for part in text.split(',') {
        let p = part.trim();
        let p = p
            .strip_prefix('[')
            .and_then(|x| x.strip_suffix(']'))
            .unwrap_or(p);
        if p.is_empty() {
            return err(origin, format!("empty address in '{text}'"));
        }
        if let Ok(ip) = p.parse::<IpAddr>() {
            out.push(ip);
            continue;
        }
        match (p, 0u16).to_socket_addrs() {
            Ok(addrs) => {
                let before = out.len();
                for a in addrs {
                    if !out.contains(&a.ip()) {
                        out.push(a.ip());
                    }
                }
                if out.len() == before {
                    return err(origin, format!("'{p}' resolves to no address"));
                }
            }
            Err(e) => return err(origin, format!("cannot resolve '{p}': {e}")),
        }
    }
    let mut seen = Vec::new();
    for ip in &out {
        if seen.contains(ip) {
            return err(origin, format!("address {ip} given twice"));
        }
        seen.push(*ip);
    }
    Ok(out)
}

/// Merges flags over file over defaults and checks every value.
pub fn merge(cli: &Cli, file: &FileConfig) -> Result<Settings, ConfigError> {
    let port = pick(cli.port, "--port", file.port, "port", defaults::PORT);
    if port.value == 0 {
        return err(&port.origin, "the TCP port must be between 1 and 65535");
    }
    let udp_port = pick(
        cli.udp_port,
        "--udp-port",
        file.udp_port,
        "udp-port",
        defaults::UDP_PORT,
    );
    let listen = pick(
        cli.listen.clone(),
        "--listen",
        file.listen.clone(),
        "listen",
        defaults::LISTEN.to_string(),
    );
    let listen_ips = parse_listen(&listen.value, &listen.origin)?;

    let mem = pick(
        cli.memory_limit,
        "--memory-limit",
        file.memory_limit,
        "memory-limit",
        defaults::MEMORY_LIMIT_MIB,
    );
    if mem.value == 0 {
        return err(&mem.origin, "item memory must be at least 1 MiB");
    }
    let memory_limit_bytes = match mem.value.checked_mul(1 << 20) {
        Some(b) if usize::try_from(b).is_ok() && b <= (1 << 46) => b,
        _ => {
            return err(
                &mem.origin,
                format!("{} MiB is more than this machine can address", mem.value),
            )
        }
    };

    let conn = pick(
        cli.conn_limit,
        "--conn-limit",
        file.conn_limit,
        "conn-limit",
        defaults::CONN_LIMIT,
    );
    if conn.value == 0 {
        return err(&conn.origin, "the connection limit must be at least 1");
    }
    let threads = pick(
        cli.threads,
        "--threads",
        file.threads,
        "threads",
        defaults::THREADS,
    );
    if threads.value == 0 || threads.value > MAX_THREADS {
        return err(
            &threads.origin,
            format!("threads must be between 1 and {MAX_THREADS}"),
        );
    }

    let item_flag = match &cli.max_item_size {
        Some(t) => Some(parse_size(t).ok_or_else(|| {
            ConfigError(format!(
                "petrel: --max-item-size: invalid size '{t}' (use bytes or a k/m suffix, e.g. 1m)"
            ))
        })?),
        None => None,
    };
    let item_file = match &file.max_item_size {
        Some(SizeValue::Bytes(b)) => Some(*b),
        Some(SizeValue::Text(t)) => Some(parse_size(t).ok_or_else(|| {
            ConfigError(format!("petrel: config key `max-item-size`: invalid size '{t}' (use bytes or a k/m suffix)"))
        })?),
        None => None,
    };
    let item = pick(
        item_flag,
        "--max-item-size",
        item_file,
        "max-item-size",
        defaults::MAX_ITEM_BYTES,
    );
    if item.value < MIN_ITEM_BYTES {
        return err(&item.origin, "item max size cannot be less than 1024 bytes");
    }
    if item.value > MAX_ITEM_LIMIT_BYTES {
        return err(
            &item.origin,
            "cannot set item size limit higher than 1024 MiB",
        );
    }
    if item.value > memory_limit_bytes / 2 {
        return err(
            &item.origin,
            format!(
                "cannot set item size limit higher than 1/2 of memory max ({} bytes with -m {})",
                memory_limit_bytes / 2,
                mem.value
            ),
        );
    }

    let verbosity = if cli.verbose > 0 {
        cli.verbose
    } else {
        file.verbose.unwrap_or(0)
    };
    if cli.verbose == 0 && file.verbose.is_some_and(|v| v > 2) {
        return err("config key `verbose`", "must be 0, 1 or 2");
    }
    let user = cli.user.clone().or_else(|| file.user.clone());
    if user.as_deref() == Some("") {
        return err(
            if cli.user.is_some() {
                "--user"
            } else {
                "config key `user`"
            },
            "empty user name",
        );
    }
    let admin = pick(
        cli.admin_port,
        "--admin-port",
        file.admin_port,
        "admin-port",
        defaults::ADMIN_PORT,
    );
    if admin.value != 0 && admin.value == port.value {
        return err(
            &admin.origin,
            format!(
                "the admin port must differ from the TCP port {}",
                port.value
            ),
        );
    }
    let idle = pick(
        cli.idle_timeout,
        "--idle-timeout",
        file.idle_timeout,
        "idle-timeout",
        defaults::IDLE_TIMEOUT_SECS,
    );
    let log_file = cli.log_file.clone().or_else(|| file.log_file.clone());
    let persist = cli.persist.clone().or_else(|| file.persist.clone());
    if persist.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
        let origin = if cli.persist.is_some() {
            "--persist"
        } else {
            "config key `persist`"
        };
        return err(origin, "empty path");
    }
    let xdp = crate::xdp::settings(cli, file, udp_port.value)?;
    let udp_guard = crate::udp_guard::settings(cli, file)?;
    let (read_buffer_bytes, write_buffer_bytes) = buffer_sizes(cli, file, item.value)?;
    let max_line_bytes = max_line_bytes(cli, file, read_buffer_bytes)?;
    let observability = crate::metrics_settings::settings(cli, file)?;

    Ok(Settings {
        port: port.value,
        udp_port: udp_port.value,
        listen: listen_ips,
        memory_limit_bytes,
        conn_limit: conn.value,
        threads: threads.value,
        max_item_bytes: item.value,
        verbosity,
        user,
        admin_port: admin.value,
        observability,
        idle_timeout_secs: idle.value,
        udp_guard,
        read_buffer_bytes,
        write_buffer_bytes,
        max_line_bytes,
        log_file,
        persist,
        config_file: cli.config.clone(),
        xdp,
    })
}

/// Bytes of command line a read buffer holds beyond the largest item.
pub const READ_BUFFER_LINE_BYTES: u64 = 2048;
/// Default per-connection write buffer.
pub const WRITE_BUFFER_DEFAULT_BYTES: u64 = 64 << 10;
/// Smallest write buffer (one reply line of the engine must fit).
pub const WRITE_BUFFER_MIN_BYTES: u64 = 4 << 10;
/// Largest buffer of either kind.
pub const BUFFER_MAX_BYTES: u64 = (1 << 30) + READ_BUFFER_LINE_BYTES;

/// Smallest `--max-line-bytes`: every classic command with a 250-byte key
/// and all its arguments fits.
pub const MAX_LINE_MIN_BYTES: u64 = 512;

/// A size flag (`--{name}`) over its config key (`{name}`), with where it
/// came from; None when neither is given.
fn size_setting(
    flag: &Option<String>,
    name: &str,
    key: &Option<SizeValue>,
) -> Result<Option<(u64, String)>, ConfigError> {
    if let Some(t) = flag {
        return match parse_size(t) {
            Some(v) => Ok(Some((v, format!("--{name}")))),
            None => err(
                &format!("--{name}"),
                format!("invalid size '{t}' (use bytes or a k/m suffix)"),
            ),
        };
    }
    match key {
        Some(SizeValue::Bytes(b)) => Ok(Some((*b, format!("config key `{name}`")))),
        Some(SizeValue::Text(t)) => match parse_size(t) {
            Some(v) => Ok(Some((v, format!("config key `{name}`")))),
            None => err(
                &format!("config key `{name}`"),
                format!("invalid size '{t}'"),
            ),
        },
        None => Ok(None),
    }
}

/// `--max-line-bytes` (or its key): at least [`MAX_LINE_MIN_BYTES`] and at
/// most the read buffer less the [`READ_BUFFER_LINE_BYTES`] it keeps beyond
/// the largest item (the multi-get bound), so that the first byte over the
/// limit always fits the read buffer and the line is refused as too long.
/// Unset, it is memcached's fixed 2048 whatever the read buffer.
fn max_line_bytes(cli: &Cli, file: &FileConfig, read_buffer: u64) -> Result<u64, ConfigError> {
    match size_setting(&cli.max_line_bytes, "max-line-bytes", &file.max_line_bytes)? {
        None => Ok(petrel_core::proto::LINE_MAX_BYTES as u64),
        Some((v, origin)) => {
            let max = read_buffer.saturating_sub(READ_BUFFER_LINE_BYTES);
            if v < MAX_LINE_MIN_BYTES || v > max {
                return err(
                    &origin,
                    format!(
                        "must be between {MAX_LINE_MIN_BYTES} and {max} bytes (the read buffer \
                         less {READ_BUFFER_LINE_BYTES}; raise --read-buffer for longer lines)"
                    ),
                );
            }
            Ok(v)
        }
    }
}

/// `--read-buffer` and `--write-buffer` (or their keys) in bytes, checked
/// against the item size limit.
fn buffer_sizes(cli: &Cli, file: &FileConfig, max_item: u64) -> Result<(u64, u64), ConfigError> {
    let read = match size_setting(&cli.read_buffer, "read-buffer", &file.read_buffer)? {
        None => {
            max_item.max(petrel_core::proto::GET_LINE_MAX_BYTES as u64) + READ_BUFFER_LINE_BYTES
        }
        Some((v, origin)) => {
            let min = max_item + READ_BUFFER_LINE_BYTES;
            if v < min || v > BUFFER_MAX_BYTES {
                return err(
                    &origin,
                    format!("must hold the largest item plus its command line: between {min} and {BUFFER_MAX_BYTES} bytes"),
                );
            }
            v
        }
    };
    let write = match size_setting(&cli.write_buffer, "write-buffer", &file.write_buffer)? {
        None => WRITE_BUFFER_DEFAULT_BYTES,
        Some((v, origin)) => {
            if !(WRITE_BUFFER_MIN_BYTES..=BUFFER_MAX_BYTES).contains(&v) {
                return err(
                    &origin,
                    format!(
                        "must be between {WRITE_BUFFER_MIN_BYTES} and {BUFFER_MAX_BYTES} bytes"
                    ),
                );
            }
            v
        }
    };
    Ok((read, write))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Settings, ConfigError> {
        let mut v = vec!["petrel"];
        v.extend_from_slice(args);
        match parse_args(v)? {
            Parsed::Run(s) => Ok(*s),
            Parsed::Print(t) => panic!("unexpected print: {t}"),
        }
    }

    #[test]
    fn defaults_are_memcacheds() {
        let s = run(&[]).unwrap();
        assert_eq!(s.port, 11211);
        assert_eq!(s.udp_port, 11211);
        assert_eq!(s.listen, vec!["127.0.0.1".parse::<IpAddr>().unwrap()]);
        assert_eq!(s.memory_limit_bytes, 64 << 20);
        assert_eq!(s.conn_limit, 1024);
        assert_eq!(s.threads, 4);
        assert_eq!(s.max_item_bytes, 1 << 20);
        assert_eq!(s.admin_port, 9999);
        assert_eq!(s.idle_timeout_secs, 0);
        assert_eq!(s.verbosity, 0);
    }

    #[test]
    fn memcached_short_flags() {
        let s = run(&[
            "-p",
            "2000",
            "-U",
            "0",
            "-l",
            "::1,127.0.0.2",
            "-m",
            "128",
            "-c",
            "10",
            "-t",
            "2",
            "-I",
            "2m",
            "-vv",
            "-u",
            "nobody",
        ])
        .unwrap();
        assert_eq!(
            (s.port, s.udp_port, s.conn_limit, s.threads),
            (2000, 0, 10, 2)
        );
        assert_eq!(s.listen.len(), 2);
        assert!(s.udp_addrs().is_empty());
        assert_eq!(s.memory_limit_bytes, 128 << 20);
        assert_eq!(s.max_item_bytes, 2 << 20);
        assert_eq!(s.verbosity, 2);
        assert_eq!(s.user.as_deref(), Some("nobody"));
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1m"), Some(1 << 20));
        assert_eq!(parse_size("512k"), Some(512 << 10));
        assert_eq!(parse_size("2048"), Some(2048));
        assert_eq!(parse_size("1M"), Some(1 << 20));
        assert_eq!(parse_size("m"), None);
        assert_eq!(parse_size("1.5m"), None);
        assert_eq!(parse_size("-1"), None);
        assert_eq!(parse_size(""), None);
    }

    #[test]
    fn errors_are_one_line_naming_the_flag() {
        for (args, needle) in [
            (&["-p", "x"][..], "--port"),
            (&["-p", "0"][..], "--port"),
            (&["--bogus"][..], "--bogus"),
            (&["-I", "10"][..], "--max-item-size"),
            (&["-I", "1q"][..], "--max-item-size"),
            (&["-m", "1", "-I", "1m"][..], "--max-item-size"),
            (&["-t", "0"][..], "--threads"),
            (&["-c", "0"][..], "--conn-limit"),
            (&["-m", "0"][..], "--memory-limit"),
            (&["--admin-port", "11211"][..], "--admin-port"),
            (&["-l", "1.2.3.4.5.bad.invalid"][..], "--listen"),
        ] {
            let e = run(args).unwrap_err().0;
            assert!(e.contains(needle), "{args:?}: {e}");
            assert_eq!(e.lines().count(), 1, "{e}");
        }
    }

    #[test]
    fn buffer_sizes_default_follow_the_item_size_and_are_checked() {
        let s = run(&[]).unwrap();
        assert_eq!(s.read_buffer_bytes, (1 << 20) + 2048);
        assert_eq!(s.write_buffer_bytes, 64 << 10);
        let s = run(&["-I", "2k"]).unwrap();
        assert_eq!(s.read_buffer_bytes, (64 << 10) + 2048);
        let s = run(&["--read-buffer", "4m", "--write-buffer", "16k"]).unwrap();
        assert_eq!(
            (s.read_buffer_bytes, s.write_buffer_bytes),
            (4 << 20, 16 << 10)
        );
        for (args, needle) in [
            (&["--read-buffer", "1m"][..], "--read-buffer"),
            (&["--read-buffer", "x"][..], "--read-buffer"),
            (&["--write-buffer", "1k"][..], "--write-buffer"),
            (&["--write-buffer", "2g"][..], "--write-buffer"),
        ] {
            let e = run(args).unwrap_err().0;
            assert!(e.contains(needle), "{args:?}: {e}");
        }
        let f = parse_file("read-buffer = \"2m\"\nwrite-buffer = 8192\n").unwrap();
        let s = merge(&Cli::default(), &f).unwrap();
        assert_eq!((s.read_buffer_bytes, s.write_buffer_bytes), (2 << 20, 8192));
    }

    #[test]
    fn max_line_bytes_default_range_and_key() {
        assert_eq!(run(&[]).unwrap().max_line_bytes, 2048);
        // Unset, memcached's 2048 even when the read buffer's get bound is smaller.
        let s = run(&["-I", "1k", "--read-buffer", "3k"]).unwrap();
        assert_eq!(s.max_line_bytes, 2048);
        assert_eq!(
            run(&["--max-line-bytes", "512"]).unwrap().max_line_bytes,
            512
        );
        assert_eq!(
            run(&["--max-line-bytes", "16k"]).unwrap().max_line_bytes,
            16 << 10
        );
        // At most the read buffer less 2k: 1m with the default 1m + 2k buffer.
        assert_eq!(
            run(&["--max-line-bytes", "1m"]).unwrap().max_line_bytes,
            1 << 20
        );
        let s = run(&["-I", "2k", "--max-line-bytes", "64k"]).unwrap();
        assert_eq!(s.max_line_bytes, 64 << 10);
        for args in [
            &["--max-line-bytes", "511"][..],
            &["--max-line-bytes", "0"][..],
            &["--max-line-bytes", "x"][..],
            &["--max-line-bytes", "1025k"][..],
            &["-I", "2k", "--max-line-bytes", "65537"][..],
            &["--read-buffer", "2m", "--max-line-bytes", "3m"][..],
        ] {
            let e = run(args).unwrap_err().0;
            assert!(e.contains("--max-line-bytes"), "{args:?}: {e}");
            assert_eq!(e.lines().count(), 1, "{e}");
        }
        let f = parse_file("max-line-bytes = \"4k\"\n").unwrap();
        assert_eq!(merge(&Cli::default(), &f).unwrap().max_line_bytes, 4096);
        let f = parse_file("max-line-bytes = 100\n").unwrap();
        let e = merge(&Cli::default(), &f).unwrap_err().0;
        assert!(e.contains("config key `max-line-bytes`"), "{e}");
        let cli = Cli {
            max_line_bytes: Some("1000".into()),
            ..Cli::default()
        };
        assert_eq!(merge(&cli, &f).unwrap().max_line_bytes, 1000, "flag wins");
    }

    #[test]
    fn help_and_version_print() {
        assert!(matches!(
            parse_args(["petrel", "--help"]),
            Ok(Parsed::Print(_))
        ));
        assert!(matches!(parse_args(["petrel", "-V"]), Ok(Parsed::Print(_))));
    }

    #[test]
    fn file_keys_and_precedence() {
        let f = parse_file(
            "port = 3000\nudp-port = 0\nmemory-limit = 32\nmax-item-size = \"512k\"\nthreads = 3\nidle-timeout = 5\nverbose = 1\n",
        )
        .unwrap();
        let cli = Cli {
            port: Some(4000),
            ..Cli::default()
        };
        let s = merge(&cli, &f).unwrap();
        assert_eq!(s.port, 4000, "flag wins over file");
        assert_eq!(s.udp_port, 0, "file wins over default");
        assert_eq!(s.memory_limit_bytes, 32 << 20);
        assert_eq!(s.max_item_bytes, 512 << 10);
        assert_eq!((s.threads, s.idle_timeout_secs, s.verbosity), (3, 5, 1));
        let f = parse_file("max-item-size = 4096\n").unwrap();
        assert_eq!(merge(&Cli::default(), &f).unwrap().max_item_bytes, 4096);
    }

    #[test]
    fn file_errors_name_the_key_and_line() {
        let e = parse_file("port = 1\nbogus = 2\n").unwrap_err();
        assert!(e.contains("line 2") && e.contains("bogus"), "{e}");
        let e = parse_file("port = \"abc\"\n").unwrap_err();
        assert!(e.contains("line 1") && e.contains("`port`"), "{e}");
        let f = parse_file("threads = 0\n").unwrap();
        let e = merge(&Cli::default(), &f).unwrap_err().0;
        assert!(e.contains("config key `threads`"), "{e}");
        let f = parse_file("max-item-size = \"huge\"\n").unwrap();
        assert!(merge(&Cli::default(), &f)
            .unwrap_err()
            .0
            .contains("max-item-size"));
    }

    #[test]
    fn persist_path_from_flag_or_file() {
        let f = parse_file("persist = \"/dev/shm/a.pmem\"\n").unwrap();
        let s = merge(&Cli::default(), &f).unwrap();
        assert_eq!(s.persist, Some(PathBuf::from("/dev/shm/a.pmem")));
        let cli = Cli {
            persist: Some(PathBuf::from("/tmp/b.pmem")),
            ..Cli::default()
        };
        assert_eq!(
            merge(&cli, &f).unwrap().persist,
            Some(PathBuf::from("/tmp/b.pmem"))
        );
        let none = merge(&Cli::default(), &FileConfig::default()).unwrap();
        assert_eq!(none.persist, None);
        let f = parse_file("persist = \"\"\n").unwrap();
        let e = merge(&Cli::default(), &f).unwrap_err().0;
        assert!(e.contains("config key `persist`"), "{e}");
    }
}

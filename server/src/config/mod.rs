//! Command line and configuration file, merged into one [`Settings`].
//!
//! Each section of the configuration is one struct that declares its flags
//! (clap) and, by the same fields, its config file keys (serde): every key is
//! the long flag's name without the dashes (`udp-port = 11211`). The
//! sections are [`net`], [`items`], [`process`] here, and the observability,
//! UDP guard and AF_XDP sections next to the code they configure. Each
//! section merges its own values with [`value::pick`]: a flag given on the
//! command line wins over the same key in the `--config` TOML file, which
//! wins over the default. Any error — unknown flag or key, bad value,
//! impossible combination — is one line naming the flag or key, and the
//! process exits with status 64 (`EX_USAGE`), as memcached's option errors
//! do.
//!
//! Sections import only [`value`]; this module imports the sections.

pub mod items;
pub mod memcached;
pub mod net;
pub mod process;
pub mod tls;
pub mod value;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::{Args, CommandFactory, Parser};
use serde::Deserialize;

pub use value::{ConfigError, EXIT_USAGE};

use crate::metrics_settings::{ObservabilityArgs, ObservabilitySettings};
use crate::udp_guard::{GuardArgs, GuardSettings};
use crate::xdp::{XdpArgs, XdpSettings};

/// Every section's flags; the `--config` file has the same keys.
#[derive(Args, Deserialize, Debug, Default, Clone)]
pub struct Sections {
    /// Ports, addresses, connections, threads.
    #[command(flatten)]
    #[serde(flatten)]
    pub net: net::NetArgs,
    /// Item memory, item size, buffers.
    #[command(flatten)]
    #[serde(flatten)]
    pub items: items::ItemArgs,
    /// Logging, user, item memory file.
    #[command(flatten)]
    #[serde(flatten)]
    pub process: process::ProcessArgs,
    /// Admin address, stats log, command log.
    #[command(flatten)]
    #[serde(flatten)]
    pub observability: ObservabilityArgs,
    /// The UDP amplification guard.
    #[command(flatten)]
    #[serde(flatten)]
    pub udp_guard: GuardArgs,
    /// AF_XDP.
    #[command(flatten)]
    #[serde(flatten)]
    pub xdp: XdpArgs,
    /// The version reported to clients, `-A`.
    #[command(flatten)]
    #[serde(flatten)]
    pub compat: crate::compat::CompatArgs,
    /// TLS (with memcached's -Z).
    #[command(flatten)]
    #[serde(flatten)]
    pub tls: tls::TlsArgs,
    /// memcached's flags that are not settings of their own.
    #[command(flatten)]
    #[serde(flatten)]
    pub memcached: memcached::MemcachedArgs,
}

/// Petrel's command line (memcached-compatible where the flags overlap).
#[derive(Parser, Debug, Default)]
#[command(
    name = "petrel",
    version = crate::compat::LONG_VERSION,
    about = "A memcached-compatible cache server",
    // `-m -5` is a bad value for -m (named in the error), not an unknown flag.
    allow_negative_numbers = true
)]
pub struct Cli {
    /// TOML configuration file (flags override its keys)
    #[arg(long = "config", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Every other flag, by section.
    #[command(flatten)]
    pub flags: Sections,
}

/// Long flags that are not config file keys.
const FLAG_ONLY: &[&str] = &["config", "help", "version", "license"];

/// The config file's keys: every long flag's name but [`FLAG_ONLY`].
pub fn file_keys() -> Vec<String> {
    Cli::command()
        .get_arguments()
        .filter_map(|a| a.get_long())
        .filter(|l| !FLAG_ONLY.contains(l))
        .map(str::to_string)
        .collect()
}

/// The effective configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// TCP port.
    pub port: u16,
    /// UDP port; 0 = no UDP.
    pub udp_port: u16,
    /// Addresses to bind (TCP and UDP), each with its own port or none.
    pub listen: Vec<net::ListenAddr>,
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
    pub observability: ObservabilitySettings,
    /// Idle timeout in seconds; 0 = never.
    pub idle_timeout_secs: u32,
    /// The UDP amplification guard.
    pub udp_guard: GuardSettings,
    /// Per-connection read buffer in bytes.
    pub read_buffer_bytes: u64,
    /// Per-connection write buffer in bytes.
    pub write_buffer_bytes: u64,
    /// Longest request line other than `get`/`gets`, in bytes.
    pub max_line_bytes: u64,
    /// memcached's `-B`: which protocols connections speak.
    pub protocol: petrel_core::proto::binary::BindingProtocol,
    /// Log file; None = stderr.
    pub log_file: Option<PathBuf>,
    /// Item memory file for warm restarts; None = anonymous memory.
    pub persist: Option<PathBuf>,
    /// The config file read, if any.
    pub config_file: Option<PathBuf>,
    /// AF_XDP front end; None = off (no `--xdp-iface`).
    pub xdp: Option<XdpSettings>,
    /// Bytes of item memory kept resident ahead of the store's segment
    /// frontiers (`--prefault-ahead`); 0 = off.
    pub prefault_ahead_bytes: u64,
    /// The version reported to clients, `-A`.
    pub compat: crate::compat::CompatSettings,
    /// Lock the item memory in RAM (`-k`).
    pub lock_memory: bool,
    /// log2 of the hash table's buckets; 0 = sized from the memory (`-o hashpower`).
    pub hash_power: u8,
    /// memcached's process flags: pidfile, daemon, Unix socket, ...
    pub memcached: memcached::MemcachedSettings,
    /// TLS on the TCP listeners (`-Z`); None = plain.
    pub tls: Option<petrel_tcp::TlsSettings>,
}

impl Settings {
    /// TCP socket addresses to bind (none with a Unix socket, as in memcached).
    pub fn tcp_addrs(&self) -> Vec<SocketAddr> {
        if self.memcached.unix_socket.is_some() {
            return Vec::new();
        }
        self.listen
            .iter()
            .map(|l| SocketAddr::new(l.ip, l.port.unwrap_or(self.port)))
            .collect()
    }

    /// UDP socket addresses to bind (empty when UDP is disabled, or with a
    /// Unix socket). A `-l HOST:PORT` port applies to UDP too, as in memcached.
    pub fn udp_addrs(&self) -> Vec<SocketAddr> {
        if self.udp_port == 0 || self.memcached.unix_socket.is_some() {
            return Vec::new();
        }
        self.listen
            .iter()
            .map(|l| SocketAddr::new(l.ip, l.port.unwrap_or(self.udp_port)))
            .collect()
    }

    /// TCP addresses served without TLS when TLS is on (`-l notls:ADDR`).
    pub fn notls_addrs(&self) -> Vec<SocketAddr> {
        self.listen
            .iter()
            .filter(|l| l.notls)
            .map(|l| SocketAddr::new(l.ip, l.port.unwrap_or(self.port)))
            .collect()
    }

    /// The listen addresses without their ports.
    pub fn listen_ips(&self) -> Vec<std::net::IpAddr> {
        self.listen.iter().map(|l| l.ip).collect()
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
    if cli.flags.memcached.license {
        return Ok(Parsed::Print(memcached::LICENSE_NOTICE.to_string()));
    }
    let file = match &cli.config {
        Some(path) => read_file(path)?,
        None => Sections::default(),
    };
    merge(&cli, &file).map(|s| Parsed::Run(Box::new(s)))
}

/// Reads and parses a TOML config file.
pub fn read_file(path: &Path) -> Result<Sections, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError(format!("petrel: --config {}: {e}", path.display())))?;
    parse_file(&text).map_err(|m| ConfigError(format!("petrel: --config {}: {m}", path.display())))
}

/// Parses config file text; the error is one line with the line number
/// and the key. Keys are checked against [`file_keys`], then each key's
/// value is read on its own, so that a bad value is reported with its key
/// and line.
pub fn parse_file(text: &str) -> Result<Sections, String> {
    let table: toml::Table = toml::from_str(text).map_err(|e| {
        let msg = e.message().replace('\n', " ");
        match e.span() {
            Some(span) => {
                let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
                format!("line {line}: {msg}")
            }
            None => msg,
        }
    })?;
    let keys = file_keys();
    for (key, value) in &table {
        let at = match line_of(text, key) {
            Some(n) => format!("line {n}: "),
            None => String::new(),
        };
        if !keys.iter().any(|k| k == key) {
            return Err(format!(
                "{at}unknown key `{key}` (each key is a long flag's name without the dashes; \
                 see petrel --help)"
            ));
        }
        let mut one = toml::Table::new();
        one.insert(key.clone(), value.clone());
        if let Err(e) = toml::Value::Table(one).try_into::<Sections>() {
            return Err(format!(
                "{at}key `{key}`: {}",
                e.message().trim().replace('\n', " ")
            ));
        }
    }
    toml::Value::Table(table)
        .try_into::<Sections>()
        .map_err(|e| e.message().trim().replace('\n', " "))
}

/// The line (from 1) where `key` is set in `text`, if it can be found.
fn line_of(text: &str, key: &str) -> Option<usize> {
    text.lines()
        .position(|l| {
            let l = l.trim_start();
            let rest = l
                .strip_prefix(key)
                .or_else(|| l.strip_prefix(&format!("\"{key}\"")))
                .or_else(|| l.strip_prefix(&format!("[{key}]")).map(|_| "="));
            rest.is_some_and(|r| r.trim_start().starts_with('='))
        })
        .map(|i| i + 1)
}

/// Merges flags over file over defaults and checks every value.
pub fn merge(cli: &Cli, file: &Sections) -> Result<Settings, ConfigError> {
    let c = &cli.flags;
    let m = memcached::resolve(&c.memcached, &file.memcached)?;
    let mut c_net = c.net.clone();
    if let Some(t) = m.idle_timeout {
        // `-o idle_timeout` is `--idle-timeout` under memcached's name.
        match c_net.idle_timeout {
            Some(v) if v != t => {
                return value::Origin::Flag("idle-timeout")
                    .fail(format!("{v} differs from -o idle_timeout={t}"))
            }
            _ => c_net.idle_timeout = Some(t),
        }
    }
    let mut n = net::resolve(&c_net, &file.net)?;
    if let Some(a) = &m.auth {
        memcached::apply_auth(
            a,
            &mut n.protocol,
            c_net.protocol.is_some() || file.net.protocol.is_some(),
            &mut n.udp_port,
            c_net.udp_port.is_some() || file.net.udp_port.is_some(),
        )?;
    }
    let i = items::resolve(&c.items, &file.items)?;
    let mut p = process::resolve(&c.process, &file.process)?;
    if let Some((path, origin)) = &m.memory_file {
        // `-e` is memcached's name for `--persist`.
        match &p.persist {
            Some(q) if q != path => {
                return origin.fail(format!(
                    "{} differs from --persist {}",
                    path.display(),
                    q.display()
                ))
            }
            _ => p.persist = Some(path.clone()),
        }
    }
    // A Unix socket replaces TCP and UDP (memcached serves only the socket).
    let udp_port = if m.unix_socket.is_some() {
        0
    } else {
        n.udp_port
    };
    let xdp = crate::xdp::settings(&c.xdp, &file.xdp, udp_port)?;
    if xdp.is_some() && m.auth.is_some() {
        return value::Origin::Flag("xdp-iface")
            .fail("AF_XDP serves UDP, which carries no authentication (--auth-file, -S)");
    }
    let udp_guard = crate::udp_guard::settings(&c.udp_guard, &file.udp_guard)?;
    let observability = crate::metrics_settings::settings(
        &c.observability,
        &file.observability,
        n.admin_port_explicit,
    )?;
    let compat = crate::compat::resolve(&c.compat, &file.compat)?;
    let tls = tls::resolve(&c.tls, &file.tls, m.enable_ssl, &m.ssl)?;
    if tls.is_none() && n.listen.iter().any(|l| l.notls) {
        // memcached: "'notls' option is valid only when SSL is enabled".
        return value::Origin::Flag("listen")
            .fail("'notls' is valid only when TLS is enabled (-Z)");
    }
    Ok(Settings {
        tls,
        port: n.port,
        udp_port: n.udp_port,
        listen: n.listen,
        memory_limit_bytes: i.memory_limit_bytes,
        conn_limit: n.conn_limit,
        threads: n.threads,
        max_item_bytes: i.max_item_bytes,
        verbosity: p.verbosity,
        user: p.user,
        admin_port: n.admin_port,
        observability,
        idle_timeout_secs: n.idle_timeout_secs,
        udp_guard,
        read_buffer_bytes: i.read_buffer_bytes,
        write_buffer_bytes: i.write_buffer_bytes,
        max_line_bytes: i.max_line_bytes,
        protocol: n.protocol,
        log_file: p.log_file,
        persist: p.persist,
        config_file: cli.config.clone(),
        xdp,
        prefault_ahead_bytes: i.prefault_ahead_bytes,
        compat,
        lock_memory: i.lock_memory,
        hash_power: m.hash_power.unwrap_or(0),
        memcached: m,
    })
}

#[cfg(test)]
mod tests {
    use super::value::SizeValue;
    use super::*;
    use std::net::IpAddr;

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
        assert_eq!(s.listen_ips(), vec!["127.0.0.1".parse::<IpAddr>().unwrap()]);
        assert_eq!(s.memory_limit_bytes, 64 << 20);
        assert_eq!(s.conn_limit, 1024);
        assert_eq!(s.threads, 4);
        assert_eq!(s.max_item_bytes, 1 << 20);
        assert_eq!(s.admin_port, 9999);
        assert_eq!(s.idle_timeout_secs, 0);
        assert_eq!(s.verbosity, 0);
    }

    #[test]
    fn auth_file_implies_ascii_and_no_udp_as_memcached() {
        use petrel_core::proto::binary::BindingProtocol;
        let s = run(&["-Y", "/etc/petrel/auth"]).unwrap();
        assert_eq!(s.protocol, BindingProtocol::Ascii);
        assert_eq!(s.udp_port, 0);
        assert!(s.udp_addrs().is_empty());
        let a = s.memcached.auth.unwrap();
        assert!(a.ascii && !a.sasl);
        assert_eq!(a.file, PathBuf::from("/etc/petrel/auth"));
        let s = run(&["-Y", "/a", "-B", "ascii", "-U", "0"]).unwrap();
        assert_eq!(s.protocol, BindingProtocol::Ascii);
        for (args, needle) in [
            (&["-Y", "/a", "-U", "11211"][..], "-U 0"),
            (&["-Y", "/a", "-B", "binary"][..], "binary connections"),
            (&["-Y", "/a", "-B", "auto"][..], "binary connections"),
            (&["-Y", ""][..], "--auth-file"),
        ] {
            let e = run(args).unwrap_err().0;
            assert!(
                e.contains("--auth-file") && e.contains(needle),
                "{args:?}: {e}"
            );
        }
    }

    #[test]
    fn sasl_implies_binary_and_combines_with_the_auth_file() {
        use petrel_core::proto::binary::BindingProtocol;
        let s = run(&["-S", "-Y", "/a"]).unwrap();
        assert_eq!(s.protocol, BindingProtocol::Auto);
        assert_eq!(s.udp_port, 0);
        let a = s.memcached.auth.unwrap();
        assert!(a.ascii && a.sasl);
        let s = run(&["-S", "-Y", "/a", "-B", "binary"]).unwrap();
        assert_eq!(s.protocol, BindingProtocol::Binary);
        for args in [
            &["-S", "-Y", "/a", "-B", "ascii"][..],
            &["-S", "-Y", "/a", "-U", "11211"][..],
        ] {
            let e = run(args).unwrap_err().0;
            assert!(
                e.contains("--enable-sasl") || e.contains("--auth-file"),
                "{args:?}: {e}"
            );
        }
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
        let mut cli = Cli::default();
        cli.flags.items.max_line_bytes = Some(SizeValue::Text("1000".into()));
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
        let mut cli = Cli::default();
        cli.flags.net.port = Some(4000);
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
    fn every_long_flag_is_a_file_key_its_section_reads() {
        let keys = file_keys();
        assert!(keys.len() > 30, "{keys:?}");
        for key in &keys {
            // A table is no flag's value: the section that owns the key must
            // reject it, naming the key and its line.
            let e = parse_file(&format!("port = 1\n{key} = {{ x = 1 }}\n")).unwrap_err();
            assert!(
                e.contains(&format!("key `{key}`")) && e.starts_with("line 2: "),
                "{key}: {e}"
            );
        }
        for key in FLAG_ONLY {
            let e = parse_file(&format!("{key} = \"x\"\n")).unwrap_err();
            assert!(e.contains("unknown key") && e.contains(key), "{e}");
        }
    }

    #[test]
    fn listen_lists_repeats_and_host_port_forms_as_memcached() {
        let s = run(&[
            "-l",
            "127.0.0.1,[::1]:11300",
            "-l",
            "127.0.0.2:11400;::1",
            "-p",
            "2000",
            "-U",
            "2001",
        ])
        .unwrap();
        let tcp: Vec<String> = s.tcp_addrs().iter().map(|a| a.to_string()).collect();
        assert_eq!(
            tcp,
            [
                "127.0.0.1:2000",
                "[::1]:11300",
                "127.0.0.2:11400",
                "[::1]:2000"
            ]
        );
        let udp: Vec<String> = s.udp_addrs().iter().map(|a| a.to_string()).collect();
        assert_eq!(
            udp,
            [
                "127.0.0.1:2001",
                "[::1]:11300",
                "127.0.0.2:11400",
                "[::1]:2001"
            ]
        );
        assert_eq!(
            run(&["-l", "*"]).unwrap().tcp_addrs()[0].to_string(),
            "0.0.0.0:11211"
        );
        for bad in ["127.0.0.1:x", "[::1", "127.0.0.1,127.0.0.1", "127.0.0.1:0"] {
            let e = run(&["-l", bad]).unwrap_err().0;
            assert!(e.contains("--listen"), "{bad}: {e}");
        }
        let f = parse_file("listen = [\"127.0.0.1\", \"127.0.0.2:3000\"]\n").unwrap();
        assert_eq!(merge(&Cli::default(), &f).unwrap().listen.len(), 2);
        let f = parse_file("listen = \"::1\"\n").unwrap();
        assert_eq!(merge(&Cli::default(), &f).unwrap().listen.len(), 1);
    }

    #[test]
    fn unix_socket_replaces_tcp_and_udp_and_memory_file_is_persist() {
        let s = run(&["-s", "/tmp/x.sock", "-e", "/dev/shm/m"]).unwrap();
        assert!(s.tcp_addrs().is_empty() && s.udp_addrs().is_empty());
        assert_eq!(s.persist, Some(PathBuf::from("/dev/shm/m")));
        let e = run(&["-e", "/a", "--persist", "/b"]).unwrap_err().0;
        assert!(e.contains("--memory-file"), "{e}");
        assert_eq!(run(&["-o", "idle_timeout=7"]).unwrap().idle_timeout_secs, 7);
        let e = run(&["-o", "idle_timeout=7", "--idle-timeout", "8"])
            .unwrap_err()
            .0;
        assert!(e.contains("--idle-timeout"), "{e}");
        assert_eq!(run(&["-o", "hashpower=16"]).unwrap().hash_power, 16);
        assert!(matches!(parse_args(["petrel", "-i"]), Ok(Parsed::Print(_))));
    }

    /// packaging/petrel.toml, the sample configuration the Debian package
    /// installs.
    const SAMPLE_CONFIG: &str = include_str!("../../../packaging/petrel.toml");

    #[test]
    fn the_sample_config_names_every_key_and_gives_exactly_the_defaults() {
        let sample = parse_file(SAMPLE_CONFIG).unwrap();
        let from_sample = merge(&Cli::default(), &sample).unwrap();
        let defaults = merge(&Cli::default(), &Sections::default()).unwrap();
        assert_eq!(from_sample, defaults);
        for key in file_keys() {
            let set = SAMPLE_CONFIG.lines().any(|l| {
                let l = l.trim_start().trim_start_matches("# ");
                l.strip_prefix(key.as_str())
                    .is_some_and(|r| r.trim_start().starts_with('='))
            });
            assert!(set, "packaging/petrel.toml does not mention `{key}`");
        }
    }

    /// packaging/petrel.1 is the man page clap_mangen renders from `Cli`;
    /// `PETREL_WRITE_MAN_PAGE=1 cargo test -p petrel man_page` rewrites it.
    #[test]
    fn the_man_page_is_rendered_from_the_flags() {
        let cmd = Cli::command()
            .version(env!("CARGO_PKG_VERSION"))
            .long_version(None::<&str>);
        let mut page = Vec::new();
        clap_mangen::Man::new(cmd).render(&mut page).unwrap();
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../packaging/petrel.1");
        if std::env::var_os("PETREL_WRITE_MAN_PAGE").is_some() {
            std::fs::write(path, &page).unwrap();
        }
        let have = std::fs::read(path).unwrap_or_default();
        assert!(
            have == page,
            "packaging/petrel.1 is out of date: PETREL_WRITE_MAN_PAGE=1 cargo test -p petrel man_page"
        );
    }

    #[test]
    fn persist_path_from_flag_or_file() {
        let f = parse_file("persist = \"/dev/shm/a.pmem\"\n").unwrap();
        let s = merge(&Cli::default(), &f).unwrap();
        assert_eq!(s.persist, Some(PathBuf::from("/dev/shm/a.pmem")));
        let mut cli = Cli::default();
        cli.flags.process.persist = Some(PathBuf::from("/tmp/b.pmem"));
        assert_eq!(
            merge(&cli, &f).unwrap().persist,
            Some(PathBuf::from("/tmp/b.pmem"))
        );
        let none = merge(&Cli::default(), &Sections::default()).unwrap();
        assert_eq!(none.persist, None);
        let f = parse_file("persist = \"\"\n").unwrap();
        let e = merge(&Cli::default(), &f).unwrap_err().0;
        assert!(e.contains("config key `persist`"), "{e}");
    }
}

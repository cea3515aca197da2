//! memcached 1.6's own flags that are not Petrel settings of their own:
//! the pidfile, daemon mode, the Unix socket, `-o` extended options, and the
//! flags that tune memcached internals Petrel does not have. Each flag has
//! memcached's short and long name and meaning where Petrel can honour it;
//! the rest are accepted with one warning naming them, or refused (exit 64)
//! when ignoring them would change what a client or an operator relies on
//! (no evictions, no `flush_all`). Authentication (`-Y`, `-S`) follows
//! memcached's rules on the protocols and UDP ([`apply_auth`]). `-Z` and
//! `-o ssl_*` (TLS) are collected here and resolved with the TLS section.

use std::path::PathBuf;

use clap::{ArgAction, Args};
use serde::Deserialize;

use petrel_tcp::VerifyMode;

use super::value::{one_or_many, pick, pick_switch, ConfigError, Origin};

/// memcached's default `-a`: owner only.
pub const DEFAULT_UNIX_MASK: u32 = 0o700;
/// memcached's default `-b`, and the backlog Petrel's listeners use.
pub const LISTEN_BACKLOG: u32 = 1024;

/// memcached's flags; each is also a config key of the same name.
#[derive(Args, Deserialize, Debug, Default, Clone)]
#[command(next_help_heading = "Memcached compatibility")]
#[serde(rename_all = "kebab-case")]
pub struct MemcachedArgs {
    /// Write the process id to this file once the sockets are bound; removed at a clean exit
    #[arg(short = 'P', long = "pidfile", value_name = "FILE")]
    pub pidfile: Option<PathBuf>,
    /// Run as a daemon: detach once serving (the starting process exits 0
    /// then, or with the error)
    #[arg(short = 'd', long = "daemon")]
    #[serde(default)]
    pub daemon: bool,
    /// Serve on this Unix socket only (no TCP, no UDP), as memcached does
    #[arg(short = 's', long = "unix-socket", value_name = "FILE")]
    pub unix_socket: Option<PathBuf>,
    /// Permissions of the Unix socket, in octal [default: 700]
    #[arg(short = 'a', long = "unix-mask", value_name = "MASK")]
    pub unix_mask: Option<String>,
    /// Raise the core file size limit to its maximum
    #[arg(short = 'r', long = "enable-coredumps")]
    #[serde(default)]
    pub enable_coredumps: bool,
    /// Use large pages (Petrel always tries them: accepted, no change)
    #[arg(short = 'L', long = "enable-largepages")]
    #[serde(default)]
    pub enable_largepages: bool,
    /// Requests a connection may make per turn before others are served:
    /// read/answer/write rounds of each connection per event [default: 16]
    #[arg(short = 'R', long = "max-reqs-per-event", value_name = "N")]
    pub max_reqs_per_event: Option<u32>,
    /// Listen backlog (Petrel's is memcached's default, 1024; other values are ignored with a warning)
    #[arg(short = 'b', long = "listen-backlog", value_name = "N")]
    pub listen_backlog: Option<u32>,
    /// memcached's restart file: the same as --persist
    #[arg(short = 'e', long = "memory-file", value_name = "FILE")]
    pub memory_file: Option<PathBuf>,
    /// Disable `lru_crawler metadump` and other dumps of the keys
    #[arg(short = 'X', long = "disable-dumping")]
    #[serde(default)]
    pub disable_dumping: bool,
    /// memcached's extended options, comma-separated (repeatable): idle_timeout
    /// and hashpower are applied, options tuning memcached internals are
    /// ignored with a warning, unknown ones refused
    #[arg(short = 'o', long = "extended", value_name = "OPTS", action = ArgAction::Append)]
    #[serde(default, deserialize_with = "one_or_many")]
    pub extended: Vec<String>,
    /// Slab growth factor (memcached's slabs; ignored with a warning)
    #[arg(short = 'f', long = "slab-growth-factor", value_name = "FACTOR")]
    pub slab_growth_factor: Option<String>,
    /// Smallest slab chunk (memcached's slabs; ignored with a warning)
    #[arg(short = 'n', long = "slab-min-size", value_name = "BYTES")]
    pub slab_min_size: Option<String>,
    /// Disable CAS (ignored with a warning: Petrel's items always carry one)
    #[arg(short = 'C', long = "disable-cas")]
    #[serde(default)]
    pub disable_cas: bool,
    /// Per-prefix stats delimiter (ignored with a warning: no `stats detail`)
    #[arg(short = 'D', value_name = "CHAR")]
    #[serde(skip)]
    pub prefix_delimiter: Option<String>,
    /// Disable `watch` (accepted: Petrel has no `watch` command)
    #[arg(short = 'W', long = "disable-watch")]
    #[serde(default)]
    pub disable_watch: bool,
    /// NAPI ids (ignored with a warning)
    #[arg(short = 'N', long = "napi-ids", value_name = "N")]
    pub napi_ids: Option<String>,
    /// Return errors instead of evicting (refused: Petrel always evicts)
    #[arg(short = 'M', long = "disable-evictions")]
    #[serde(default)]
    pub disable_evictions: bool,
    /// Disable `flush_all` (refused: not supported)
    #[arg(short = 'F', long = "disable-flush-all")]
    #[serde(default)]
    pub disable_flush_all: bool,
    /// SASL PLAIN authentication on binary connections, against the
    /// --auth-file credentials (or the file MEMCACHED_SASL_PWDB names);
    /// implies -B binary unless --auth-file is also given (then -B auto)
    #[arg(short = 'S', long = "enable-sasl")]
    #[serde(default)]
    pub enable_sasl: bool,
    /// TLS on every TCP listener but those given as -l notls:ADDR (with
    /// -o ssl_chain_cert=...,ssl_key=... or --tls-cert/--tls-key)
    #[arg(short = 'Z', long = "enable-ssl", visible_alias = "tls")]
    #[serde(default)]
    pub enable_ssl: bool,
    /// ASCII authentication: a connection's first command must be a `set`
    /// whose data is "user password", checked against FILE's
    /// `user:password` lines (reread on SIGHUP); implies -B ascii and no UDP
    #[arg(short = 'Y', long = "auth-file", value_name = "FILE")]
    pub auth_file: Option<PathBuf>,
    /// Print the license and exit
    #[arg(short = 'i', long = "license")]
    #[serde(skip)]
    pub license: bool,
}

/// What the memcached flags amount to.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MemcachedSettings {
    /// `-P`: the pidfile.
    pub pidfile: Option<PathBuf>,
    /// `-d`: detach once serving.
    pub daemon: bool,
    /// `-s`: serve this Unix socket only.
    pub unix_socket: Option<PathBuf>,
    /// `-a`: the socket's permission bits.
    pub unix_mask: u32,
    /// `-r`: raise the core size limit.
    pub enable_coredumps: bool,
    /// `-R`: read/answer/write rounds per connection per turn.
    pub turn_steps: u32,
    /// `-e`: the restart file (merged into `--persist`).
    pub memory_file: Option<(PathBuf, Origin)>,
    /// `-X`: key dumps are disabled.
    pub disable_dumping: bool,
    /// `-o idle_timeout=N`.
    pub idle_timeout: Option<u32>,
    /// `-o hashpower=N`: log2 of the hash table's buckets.
    pub hash_power: Option<u8>,
    /// `-Z`: TLS is on (where it was asked for).
    pub enable_ssl: Option<Origin>,
    /// `-o ssl_*`.
    pub ssl: super::tls::SslOptions,
    /// Flags and `-o` options accepted without effect, for the one warning line.
    pub ignored: Vec<String>,
    /// `-Y` and/or `-S`: authentication.
    pub auth: Option<AuthSettings>,
}

/// Authentication asked for with `-Y` (ASCII) and/or `-S` (SASL on binary
/// connections), both against one credentials file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthSettings {
    /// The `user:password` file.
    pub file: PathBuf,
    /// What named it: `--auth-file` or `MEMCACHED_SASL_PWDB`.
    pub named_by: &'static str,
    /// ASCII connections authenticate (`-Y`).
    pub ascii: bool,
    /// Binary connections authenticate with SASL PLAIN (`-S`).
    pub sasl: bool,
}

/// The environment variable memcached built with `--enable-sasl-pwdb`
/// reads its SASL `user:password` file from.
pub const SASL_PWDB_VAR: &str = "MEMCACHED_SASL_PWDB";

/// memcached's rules for authentication, applied to the protocol and UDP
/// settings: `-Y` alone implies `-B ascii` (an explicit `-B binary` or
/// `-B auto` is refused), `-S` alone implies `-B binary` (an explicit
/// `-B ascii` or `-B auto` is refused), both together imply `-B auto`
/// (Petrel's own: memcached cannot combine them). UDP carries no
/// authentication: an explicit UDP port is refused, Petrel's default one
/// is turned off (memcached's default is off).
pub fn apply_auth(
    a: &AuthSettings,
    protocol: &mut petrel_core::proto::binary::BindingProtocol,
    protocol_given: bool,
    udp_port: &mut u16,
    udp_given: bool,
) -> Result<(), ConfigError> {
    use petrel_core::proto::binary::BindingProtocol as P;
    if protocol_given {
        if a.sasl && (*protocol == P::Ascii || (*protocol == P::Auto && !a.ascii)) {
            return Origin::Flag("enable-sasl").fail(
                "SASL authenticates binary connections only: ASCII ones would be \
                 unauthenticated (use -B binary, or add --auth-file for ASCII authentication)",
            );
        }
        if a.ascii && !a.sasl && *protocol != P::Ascii {
            return Origin::Flag("auth-file").fail(
                "ASCII authentication cannot guard binary connections (use -B ascii, \
                 or add -S for SASL on binary connections)",
            );
        }
    } else {
        *protocol = match (a.ascii, a.sasl) {
            (true, true) => P::Auto,
            (true, false) => P::Ascii,
            _ => P::Binary,
        };
    }
    if *udp_port != 0 {
        if udp_given {
            let flag = if a.ascii { "auth-file" } else { "enable-sasl" };
            return Origin::Flag(flag).fail(
                "UDP carries no authentication: turn it off with -U 0 (as memcached requires)",
            );
        }
        *udp_port = 0;
    }
    Ok(())
}

/// `-o` options that tune memcached internals Petrel does not have.
const IGNORED_OPTIONS: &[&str] = &[
    "maxconns_fast",
    "no_maxconns_fast",
    "no_hashexpand",
    "slab_reassign",
    "no_slab_reassign",
    "slab_automove",
    "no_slab_automove",
    "slab_automove_ratio",
    "slab_automove_window",
    "slab_automove_freeratio",
    "slab_sizes",
    "slab_chunk_max",
    "tail_repair_time",
    "hash_algorithm",
    "lru_crawler",
    "no_lru_crawler",
    "lru_crawler_sleep",
    "lru_crawler_tocrawl",
    "lru_maintainer",
    "no_lru_maintainer",
    "hot_lru_pct",
    "warm_lru_pct",
    "hot_max_factor",
    "warm_max_factor",
    "temporary_ttl",
    "watcher_logbuf_size",
    "worker_logbuf_size",
    "read_buf_mem_limit",
    "resp_obj_mem_limit",
    "track_sizes",
    "inline_ascii_resp",
    "no_inline_ascii_resp",
    "no_chunked_items",
    "modern",
    "no_modern",
    "drop_privileges",
    "no_drop_privileges",
    "sock_cookie_id",
    "ext_path",
    "ext_page_size",
    "ext_wbuf_size",
    "ext_threads",
    "ext_io_depth",
    "ext_item_size",
    "ext_item_age",
    "ext_low_ttl",
    "ext_recache_rate",
    "ext_compact_under",
    "ext_drop_under",
    "ext_max_sleep",
    "ext_max_frag",
    "ext_drop_unread",
];

/// `-o` options of memcached's TLS that tune OpenSSL (rustls chooses its
/// own ciphers, reads PEM keys only, and has its own buffers).
const IGNORED_TLS_OPTIONS: &[&str] = &["ssl_keyformat", "ssl_ciphers", "ssl_wbuf_size"];

/// memcached's accepted `hashpower` range.
const HASHPOWER_MIN: u8 = 12;
/// memcached's accepted `hashpower` range.
const HASHPOWER_MAX: u8 = 32;

/// Merges memcached's flags over their keys and checks them.
pub fn resolve(
    cli: &MemcachedArgs,
    file: &MemcachedArgs,
) -> Result<MemcachedSettings, ConfigError> {
    let mut out = MemcachedSettings {
        unix_mask: DEFAULT_UNIX_MASK,
        turn_steps: petrel_tcp::DEFAULT_TURN_STEPS as u32,
        ..MemcachedSettings::default()
    };
    for (flag, key, name, why) in [
        (
            cli.disable_evictions,
            file.disable_evictions,
            "disable-evictions",
            "Petrel always evicts (segment eviction); it cannot answer out of memory instead",
        ),
        (
            cli.disable_flush_all,
            file.disable_flush_all,
            "disable-flush-all",
            "not supported: flush_all stays enabled",
        ),
    ] {
        let s = pick_switch(flag, key, name);
        if s.value {
            return s.origin.fail(why);
        }
    }
    let ssl = pick_switch(cli.enable_ssl, file.enable_ssl, "enable-ssl");
    out.enable_ssl = ssl.value.then_some(ssl.origin);
    let auth_file = pick(cli.auth_file.clone(), file.auth_file.clone(), "auth-file");
    if let Some(a) = &auth_file {
        if a.value.as_os_str().is_empty() {
            return a.origin.fail("empty path");
        }
    }
    let sasl = pick_switch(cli.enable_sasl, file.enable_sasl, "enable-sasl");
    out.auth = match (auth_file, sasl.value) {
        (Some(a), sasl) => Some(AuthSettings {
            file: a.value,
            named_by: "--auth-file",
            ascii: true,
            sasl,
        }),
        (None, true) => match std::env::var_os(SASL_PWDB_VAR) {
            Some(f) if !f.is_empty() => Some(AuthSettings {
                file: f.into(),
                named_by: SASL_PWDB_VAR,
                ascii: false,
                sasl: true,
            }),
            _ => {
                return sasl.origin.fail(format!(
                    "SASL needs a credentials file of user:password lines: give --auth-file FILE \
                     (also ASCII authentication) or set {SASL_PWDB_VAR}=FILE (Petrel does not \
                     read Cyrus SASL's configuration or sasldb)"
                ))
            }
        },
        (None, false) => None,
    };
    out.pidfile = pick(cli.pidfile.clone(), file.pidfile.clone(), "pidfile").map(|p| p.value);
    if out
        .pidfile
        .as_ref()
        .is_some_and(|p| p.as_os_str().is_empty())
    {
        return Origin::Flag("pidfile").fail("empty path");
    }
    out.daemon = pick_switch(cli.daemon, file.daemon, "daemon").value;
    if let Some(s) = pick(
        cli.unix_socket.clone(),
        file.unix_socket.clone(),
        "unix-socket",
    ) {
        if s.value.as_os_str().is_empty() {
            return s.origin.fail("empty path");
        }
        // sockaddr_un holds 108 bytes with the terminating NUL.
        if s.value.as_os_str().len() > 107 {
            return s
                .origin
                .fail("longer than a Unix socket path may be (107 bytes)");
        }
        out.unix_socket = Some(s.value);
    }
    if let Some(m) = pick(
        cli.unix_mask.as_deref(),
        file.unix_mask.as_deref(),
        "unix-mask",
    ) {
        out.unix_mask = match u32::from_str_radix(m.value.trim(), 8) {
            Ok(v) if v <= 0o777 => v,
            _ => {
                return m
                    .origin
                    .fail(format!("'{}' is not an octal mode such as 700", m.value))
            }
        };
    }
    out.enable_coredumps = pick_switch(
        cli.enable_coredumps,
        file.enable_coredumps,
        "enable-coredumps",
    )
    .value;
    out.disable_dumping =
        pick_switch(cli.disable_dumping, file.disable_dumping, "disable-dumping").value;
    if let Some(r) = pick(
        cli.max_reqs_per_event,
        file.max_reqs_per_event,
        "max-reqs-per-event",
    ) {
        if r.value == 0 {
            return r.origin.fail("must be at least 1");
        }
        out.turn_steps = r.value;
    }
    if let Some(b) = pick(cli.listen_backlog, file.listen_backlog, "listen-backlog") {
        if b.value != LISTEN_BACKLOG {
            out.ignored.push(format!(
                "-b {} (the backlog stays {LISTEN_BACKLOG})",
                b.value
            ));
        }
    }
    out.memory_file = pick(
        cli.memory_file.clone(),
        file.memory_file.clone(),
        "memory-file",
    )
    .map(|m| (m.value, m.origin));
    for (given, what) in [
        (
            pick(
                cli.slab_growth_factor.as_ref(),
                file.slab_growth_factor.as_ref(),
                "slab-growth-factor",
            )
            .is_some(),
            "-f",
        ),
        (
            pick(
                cli.slab_min_size.as_ref(),
                file.slab_min_size.as_ref(),
                "slab-min-size",
            )
            .is_some(),
            "-n",
        ),
        (
            pick_switch(cli.disable_cas, file.disable_cas, "disable-cas").value,
            "-C",
        ),
        (cli.prefix_delimiter.is_some(), "-D"),
        (
            pick(cli.napi_ids.as_ref(), file.napi_ids.as_ref(), "napi-ids").is_some(),
            "-N",
        ),
    ] {
        if given {
            out.ignored.push(what.to_string());
        }
    }
    // -o: the file's list, then the command line's (later wins, as in memcached).
    for (list, origin) in [
        (&file.extended, Origin::Key("extended")),
        (&cli.extended, Origin::Flag("extended")),
    ] {
        for opt in list.iter().flat_map(|l| l.split(',')) {
            extended_option(opt.trim(), origin, &mut out)?;
        }
    }
    Ok(out)
}

/// Applies one `-o` option (`name` or `name=value`).
fn extended_option(
    opt: &str,
    origin: Origin,
    out: &mut MemcachedSettings,
) -> Result<(), ConfigError> {
    if opt.is_empty() {
        return Ok(());
    }
    let (name, value) = match opt.split_once('=') {
        Some((n, v)) => (n, Some(v)),
        None => (opt, None),
    };
    let number = |what: &str| -> Result<u64, ConfigError> {
        match value.map(|v| v.trim().parse::<u64>()) {
            Some(Ok(n)) => Ok(n),
            _ => origin.fail(format!("-o {name}: {what}")),
        }
    };
    match name {
        "idle_timeout" => {
            let n = number("needs a number of seconds, e.g. idle_timeout=600")?;
            out.idle_timeout =
                Some(u32::try_from(n).or_else(|_| {
                    origin.fail(format!("-o {name}: at most {} seconds", u32::MAX))
                })?);
        }
        "hashpower" => {
            let n = number("needs a number, e.g. hashpower=16")?;
            if !(u64::from(HASHPOWER_MIN)..=u64::from(HASHPOWER_MAX)).contains(&n) {
                return origin.fail(format!(
                    "-o hashpower: must be between {HASHPOWER_MIN} and {HASHPOWER_MAX}"
                ));
            }
            out.hash_power = Some(n as u8);
        }
        "ssl_chain_cert" | "ssl_key" | "ssl_ca_cert" => {
            let path = match value.map(str::trim) {
                Some(v) if !v.is_empty() => PathBuf::from(v),
                _ => {
                    return origin.fail(format!(
                        "-o {name}: needs a file, e.g. {name}=/etc/petrel/tls.pem"
                    ))
                }
            };
            match name {
                "ssl_chain_cert" => out.ssl.chain_cert = Some(path),
                "ssl_key" => out.ssl.key = Some(path),
                _ => out.ssl.ca_cert = Some(path),
            }
        }
        "ssl_verify_mode" => {
            let n = number("needs 0 (none), 1 (request), 2 (require) or 3 (once)")?;
            out.ssl.verify_mode = Some(VerifyMode::from_number(n).ok_or_else(|| {
                ConfigError(format!(
                    "petrel: {origin}: -o ssl_verify_mode: must be 0, 1, 2 or 3"
                ))
            })?);
        }
        "ssl_min_version" => {
            // memcached: 0 TLS 1.0, 1 TLS 1.1, 2 TLS 1.2, 3 TLS 1.3; rustls
            // speaks 1.2 and 1.3, so 0-2 all mean 1.2.
            let n = number("needs 0, 1, 2 or 3 (tlsv1.0 to tlsv1.3)")?;
            if n > 3 {
                return origin.fail("-o ssl_min_version: must be 0, 1, 2 or 3");
            }
            out.ssl.tls13_only = Some(n == 3);
        }
        "ssl_session_cache" => out.ssl.session_cache = true,
        "ssl_kernel_tls" => {
            return origin.fail("-o ssl_kernel_tls: kernel TLS offload is not supported");
        }
        n if IGNORED_TLS_OPTIONS.contains(&n) => {
            if !out.ignored.iter().any(|i| i == &format!("-o {n}")) {
                out.ignored.push(format!("-o {n}"));
            }
        }
        n if IGNORED_OPTIONS.contains(&n) => {
            if !out.ignored.iter().any(|i| i == &format!("-o {n}")) {
                out.ignored.push(format!("-o {n}"));
            }
        }
        n => return origin.fail(format!("-o {n}: unknown extended option")),
    }
    Ok(())
}

/// The text `-i` prints.
pub const LICENSE_NOTICE: &str = "Petrel is licensed under the Apache License, Version 2.0 \
(the LICENSE file of its source, and /usr/share/doc/petrel/copyright when installed from the \
Debian package). It is a separate program from memcached, whose BSD license does not apply.\n";

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<MemcachedSettings, String> {
        use clap::Parser;
        let mut v = vec!["petrel"];
        v.extend_from_slice(args);
        let cli = crate::config::Cli::try_parse_from(v).map_err(|e| e.to_string())?;
        resolve(&cli.flags.memcached, &MemcachedArgs::default()).map_err(|e| e.0)
    }

    #[test]
    fn extended_options_mapped_ignored_or_refused() {
        let s = run(&[
            "-o",
            "modern,idle_timeout=5",
            "-o",
            "hashpower=20,slab_reassign",
        ])
        .unwrap();
        assert_eq!(s.idle_timeout, Some(5));
        assert_eq!(s.hash_power, Some(20));
        assert_eq!(s.ignored, vec!["-o modern", "-o slab_reassign"]);
        for (args, needle) in [
            (&["-o", "bogus_thing"][..], "-o bogus_thing: unknown"),
            (&["-o", "ssl_kernel_tls"][..], "kernel TLS"),
            (&["-o", "ssl_verify_mode=4"][..], "ssl_verify_mode"),
            (&["-o", "idle_timeout"][..], "idle_timeout"),
            (&["-o", "hashpower=99"][..], "hashpower"),
            (&["-M"][..], "--disable-evictions"),
            (&["-S"][..], "--enable-sasl"),
            (&["-F"][..], "--disable-flush-all"),
            (&["-a", "9"][..], "--unix-mask"),
            (&["-R", "0"][..], "--max-reqs-per-event"),
        ] {
            let e = run(args).unwrap_err();
            assert!(e.contains(needle), "{args:?}: {e}");
        }
    }

    #[test]
    fn memcached_flags() {
        let s = run(&[
            "-P",
            "/run/p.pid",
            "-d",
            "-s",
            "/tmp/s",
            "-a",
            "766",
            "-A",
            "-R",
            "5",
            "-e",
            "/dev/shm/m",
            "-f",
            "1.25",
            "-n",
            "48",
            "-C",
            "-L",
            "-W",
            "-X",
            "-b",
            "1024",
            "-D",
            ":",
            "-N",
            "2",
        ])
        .unwrap();
        assert_eq!(s.pidfile, Some(PathBuf::from("/run/p.pid")));
        assert!(s.daemon && s.disable_dumping);
        assert_eq!(s.unix_socket, Some(PathBuf::from("/tmp/s")));
        assert_eq!(s.unix_mask, 0o766);
        assert_eq!(s.turn_steps, 5);
        assert_eq!(s.memory_file.unwrap().0, PathBuf::from("/dev/shm/m"));
        assert_eq!(s.ignored, vec!["-f", "-n", "-C", "-D", "-N"]);
        assert_eq!(run(&[]).unwrap().unix_mask, 0o700);
    }
}

//! memcached 1.6's own flags that are not Petrel settings of their own:
//! the pidfile, daemon mode, the Unix socket, `-o` extended options, and the
//! flags that tune memcached internals Petrel does not have. Each flag has
//! memcached's short and long name and meaning where Petrel can honour it;
//! the rest are accepted with one warning naming them, or refused (exit 64)
//! when ignoring them would change what a client or an operator relies on
//! (authentication, TLS, no evictions, no `flush_all`).

use std::path::PathBuf;

use clap::{ArgAction, Args};
use serde::Deserialize;

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
    /// SASL authentication (refused: not supported)
    #[arg(short = 'S', long = "enable-sasl")]
    #[serde(default)]
    pub enable_sasl: bool,
    /// TLS (refused: not supported)
    #[arg(short = 'Z', long = "enable-ssl")]
    #[serde(default)]
    pub enable_ssl: bool,
    /// ASCII authentication file (refused: not supported)
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
    /// Flags and `-o` options accepted without effect, for the one warning line.
    pub ignored: Vec<String>,
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

/// `-o` options of memcached's TLS, which Petrel does not have.
const TLS_OPTIONS: &[&str] = &[
    "ssl_chain_cert",
    "ssl_key",
    "ssl_keyformat",
    "ssl_verify_mode",
    "ssl_ciphers",
    "ssl_ca_cert",
    "ssl_wbuf_size",
    "ssl_session_cache",
    "ssl_kernel_tls",
    "ssl_min_version",
];

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
        (
            cli.enable_sasl,
            file.enable_sasl,
            "enable-sasl",
            "SASL authentication is not supported",
        ),
        (
            cli.enable_ssl,
            file.enable_ssl,
            "enable-ssl",
            "TLS is not supported",
        ),
    ] {
        let s = pick_switch(flag, key, name);
        if s.value {
            return s.origin.fail(why);
        }
    }
    if let Some(a) = pick(cli.auth_file.as_ref(), file.auth_file.as_ref(), "auth-file") {
        return a.origin.fail("ASCII authentication is not supported");
    }
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
        n if TLS_OPTIONS.contains(&n) => {
            return origin.fail(format!("-o {n}: TLS is not supported"));
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
            (&["-o", "ssl_key=/k"][..], "TLS"),
            (&["-o", "idle_timeout"][..], "idle_timeout"),
            (&["-o", "hashpower=99"][..], "hashpower"),
            (&["-M"][..], "--disable-evictions"),
            (&["-S"][..], "--enable-sasl"),
            (&["-Z"][..], "--enable-ssl"),
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

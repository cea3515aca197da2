//! `petrel`: the memcached-compatible cache server binary.
//!
//! Start-up order: parse flags and the config file (exit 64 on any error),
//! start logging, size the engine, catch SIGINT/SIGTERM, map (and lock) the
//! item memory, build the one engine, bind every socket (so a client that
//! can connect is served at once), attach AF_XDP (`--xdp-iface`, see
//! `xdp.rs`), drop privileges (`-u`), then serve until
//! SIGINT or SIGTERM, finish replies in flight and exit 0. Nothing is printed on
//! stdout except for `--help` and `--version`.

mod admin;
mod auth;
mod cache;
mod compat;
mod config;
mod daemon;
mod klog;
mod limits;
mod logger;
mod memory;
mod metrics;
#[cfg(test)]
mod metrics_doc;
mod metrics_process;
mod metrics_settings;
mod metrics_window;
mod metrics_xdp;
mod pauses;
mod persist;
mod privileges;
mod tls;
mod udp_guard;
mod xdp;

use std::process::ExitCode;

use config::{Parsed, Settings, EXIT_USAGE};

/// Exit status when the operating system refuses something we need: a port
/// in use, memory, a thread (sysexits.h `EX_OSERR`, as memcached uses).
const EXIT_OSERR: u8 = 71;

/// A reason to stop with a status and one line on stderr.
struct Exit {
    code: u8,
    message: String,
}

fn usage(message: impl Into<String>) -> Exit {
    Exit {
        code: EXIT_USAGE as u8,
        message: message.into(),
    }
}

fn os_error(message: impl Into<String>) -> Exit {
    Exit {
        code: EXIT_OSERR,
        message: message.into(),
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Lines still queued for the log writer go first (bounded wait).
            log::logger().flush();
            // Started with -d, the waiting parent prints it and exits with
            // the code; otherwise one line on stderr. Also in the log file
            // if there is one.
            if !daemon::failed(e.code, &e.message) {
                eprintln!("{}", e.message);
            }
            if logging_to_file() {
                log::error!("{}", e.message);
                log::logger().flush();
            }
            ExitCode::from(e.code)
        }
    }
}

static LOG_TO_FILE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn logging_to_file() -> bool {
    LOG_TO_FILE.load(std::sync::atomic::Ordering::Relaxed)
}

fn run() -> Result<(), Exit> {
    let started = std::time::Instant::now();
    let settings = match config::parse_args(std::env::args_os()).map_err(|e| usage(e.0))? {
        Parsed::Print(text) => {
            print!("{text}");
            return Ok(());
        }
        Parsed::Run(s) => *s,
    };
    // -d forks now, while the process has one thread.
    if settings.memcached.daemon {
        daemon::daemonize().map_err(os_error)?;
    }
    logger::init(settings.verbosity, settings.log_file.as_deref()).map_err(|e| {
        let origin = if settings.log_file.is_some() {
            "--log-file"
        } else {
            "logging"
        };
        usage(format!("petrel: {origin}: {e}"))
    })?;
    LOG_TO_FILE.store(
        settings.log_file.is_some(),
        std::sync::atomic::Ordering::Relaxed,
    );
    if !settings.memcached.ignored.is_empty() {
        log::warn!(
            "accepted without effect (memcached internals Petrel does not have): {}",
            settings.memcached.ignored.join(", ")
        );
    }
    if settings.memcached.enable_coredumps {
        match limits::raise_core_size() {
            Ok(n) if n == libc::RLIM_INFINITY => log::info!("-r: core file size unlimited"),
            Ok(n) => log::info!("-r: core file size limit {n} bytes"),
            Err(e) => log::warn!("-r: cannot raise the core file size limit: {e}"),
        }
    }

    let user = match &settings.user {
        Some(name) => match privileges::lookup(name) {
            Ok(Some(u)) => Some(u),
            Ok(None) => return Err(usage(format!("petrel: --user: no such user '{name}'"))),
            Err(e) => {
                return Err(os_error(format!(
                    "petrel: --user: cannot look up '{name}': {e}"
                )))
            }
        },
        None => None,
    };
    if let Some(u) = &user {
        if !privileges::is_root() {
            // SAFETY: geteuid has no preconditions.
            let me = unsafe { libc::geteuid() };
            if u.uid != me {
                return Err(usage(format!(
                    "petrel: --user: only root can switch to user '{}'",
                    u.name
                )));
            }
        }
    }

    // -Z: the certificates are read now (an error exits 64, as memcached's).
    let tls = match &settings.tls {
        Some(t) => Some(std::sync::Arc::new(
            petrel_tcp::TlsContext::new(t.clone()).map_err(|e| usage(format!("petrel: {e}")))?,
        )),
        None => None,
    };

    let (engine_config, arena_bytes) = cache::engine_config(&settings, petrel_tcp::unix_now())
        .map_err(|e| usage(format!("petrel: {e}")))?;

    if user.is_none() && privileges::is_root() {
        log::warn!("running as root without -u/--user (memcached would refuse); consider -u with an unprivileged user");
    }
    // Signals first: a SIGTERM from now on means a clean stop, exit 0.
    // SIGUSR1 is memcached's graceful restart: the same clean stop, which
    // saves the item memory for a warm restart with --persist. Every other
    // signal whose default action ends the process and that can be caught
    // stops it the same clean way, so that none loses a --persist cache
    // (SIGHUP reopens the logs; SIGXFSZ is ignored: the write fails with
    // EFBIG instead; SIGKILL cannot be caught).
    let (mut signal_rx, signal_tx) =
        mio::net::UnixStream::pair().map_err(|e| os_error(format!("petrel: signal pipe: {e}")))?;
    let signal_tx = std::os::unix::net::UnixStream::from(std::os::fd::OwnedFd::from(signal_tx));
    reopen_logs_on_sighup(tls.clone()).map_err(os_error)?;
    // SAFETY: setting a signal's disposition to SIG_IGN has no memory-safety
    // preconditions.
    unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
    for sig in [
        libc::SIGINT,
        libc::SIGTERM,
        libc::SIGUSR1,
        libc::SIGUSR2,
        libc::SIGQUIT,
        libc::SIGALRM,
        libc::SIGVTALRM,
        libc::SIGPROF,
        libc::SIGXCPU,
        libc::SIGIO,
        libc::SIGPWR,
        libc::SIGSTKFLT,
    ] {
        let tx = signal_tx
            .try_clone()
            .map_err(|e| os_error(format!("petrel: signal pipe: {e}")))?;
        signal_hook::low_level::pipe::register(sig, tx)
            .map_err(|e| os_error(format!("petrel: cannot handle signal {sig}: {e}")))?;
    }

    // With --persist the item memory is a file and the engine may come back warm.
    let (engine, report, persist_file) = match &settings.persist {
        Some(path) => {
            let now = petrel_tcp::unix_now();
            let (engine, file, report, _) =
                persist::start(path, &engine_config, arena_bytes, settings.lock_memory, now)
                    .map_err(os_error)?;
            (engine, report, Some(file))
        }
        None => {
            let (arena, report) =
                memory::allocate(arena_bytes, settings.lock_memory).map_err(|e| {
                    os_error(format!(
                        "petrel: cannot map {arena_bytes} bytes of item memory: {e}"
                    ))
                })?;
            let engine = cache::build_on_zeroed(&engine_config, arena)
                .map_err(|e| os_error(format!("petrel: {e}")))?;
            (engine, report, None)
        }
    };

    let built_ms = started.elapsed().as_millis();
    // `stats` and the metrics show how much of the item memory is resident.
    let residency = report.residency();
    if !engine.add_stats_source(Box::leak(Box::new(residency))) {
        log::warn!("stats: no room for the item memory's residency figures");
    }
    // The command log sees every request the engine executes.
    let mut engine = engine;
    engine.set_process_usage(&metrics_process::Rusage);
    // Eviction steps time their shard-lock holds (stats store_evict_pause_*).
    let evict_pauses = pauses::install(&mut engine);
    // A worker that finds a shard lock held past a short spin yields its
    // CPU: with more workers than cores the holder may be preempted on the
    // same CPU, and spinning would keep it off until the scheduler tick
    // (stats store_lock_waits).
    engine.set_lock_wait(std::thread::yield_now);
    // -Y / -S: the credentials file, read now and on SIGHUP.
    if let Some(a) = &settings.memcached.auth {
        let creds = auth::Credentials::load(&a.file, a.named_by).map_err(usage)?;
        let path: &'static str = Box::leak(a.file.display().to_string().into_boxed_str());
        engine.set_authentication(petrel_core::engine::Authentication {
            authenticator: creds.install(),
            ascii: a.ascii.then_some(path),
            sasl: a.sasl,
        });
        log::info!(
            "authentication: {} {path} ascii={} sasl={}",
            a.named_by,
            a.ascii,
            a.sasl
        );
    }
    if let Some(k) = &settings.observability.klog {
        let klog = klog::Klog::start(&k.path, k.sample, k.max_bytes)
            .map_err(|e| usage(format!("petrel: --klog-file {}: {e}", k.path.display())))?;
        engine.set_command_log(Box::leak(Box::new(klog)));
    }
    // -Z: `refresh_certs` reloads the certificates; `stats` shows TLS.
    if let Some(ctx) = &tls {
        let hooks: &'static tls::TlsHooks = Box::leak(Box::new(tls::TlsHooks::new(ctx.clone())));
        engine.set_cert_reload(hooks);
        if !engine.add_stats_source(hooks) {
            log::warn!("stats: no room for the TLS counters");
        }
    } else {
        // Without -Z, `stats settings` still shows the ssl_* lines, as memcached does.
        let ssl = &settings.memcached.ssl;
        let lines = tls::TlsOffSettings::new(&tls::SslLines {
            enabled: false,
            chain_cert: ssl.chain_cert.as_deref(),
            key: ssl.key.as_deref(),
            ca_cert: ssl.ca_cert.as_deref(),
            verify_mode: ssl.verify_mode.unwrap_or_default(),
            session_cache: ssl.session_cache,
            tls13_only: ssl.tls13_only.unwrap_or(false),
        });
        if !engine.add_stats_source(Box::leak(Box::new(lines))) {
            log::warn!("stats: no room for the ssl_* settings");
        }
    }
    // -A: a client's `shutdown` stops the server as SIGTERM does.
    if settings.compat.enable_shutdown {
        let tx = signal_tx
            .try_clone()
            .map_err(|e| os_error(format!("petrel: signal pipe: {e}")))?;
        engine.set_shutdown_hook(Box::leak(Box::new(compat::ShutdownPipe(tx))));
    }

    // Listen only once the engine is ready: a client that can connect is served.
    let sockets = settings.tcp_addrs().len() + settings.udp_addrs().len();
    let needed = limits::descriptors_needed(settings.conn_limit, settings.threads, sockets);
    match limits::raise_open_files(needed) {
        Ok(n) if n < needed => log::warn!(
            "open-file limit is {n}, below the {needed} that --conn-limit {} needs; \
             connections beyond it will be refused by the kernel",
            settings.conn_limit
        ),
        Ok(_) => {}
        Err(e) => log::warn!("cannot read the open-file limit: {e}"),
    }
    // One UDP amplification guard for every UDP path (kernel socket, AF_XDP).
    let udp_guard =
        udp_guard::build(&settings.udp_guard).map_err(|e| usage(format!("petrel: {e}")))?;
    log::info!(
        "udp guard: allow={} max-amplification={} rate={}/s burst={}",
        settings.udp_guard.allow_text(),
        settings.udp_guard.max_amplification,
        settings.udp_guard.rate_per_sec,
        settings.udp_guard.burst
    );
    let mut frontend_config = cache::frontend_config(&settings);
    frontend_config.udp_guard = Some(udp_guard.clone());
    frontend_config.tls = tls.clone();
    // The datagram layer's counters, shared by every UDP path as the guard
    // is; `stats` prints them (udp_*).
    let udp_stats = frontend_config.udp_stats.clone();
    let udp_stats_source: &'static petrel_core::udp::UdpStats =
        Box::leak(Box::new(udp_stats.clone()));
    if !engine.add_stats_source(udp_stats_source) {
        log::warn!("stats: no room for the UDP datagram layer's counters");
    }
    // `stats` prints the guard's counters (udp_guard_*).
    let guard_stats: &'static petrel_core::udp::guard::UdpGuard =
        Box::leak(Box::new(udp_guard.clone()));
    if !engine.add_stats_source(guard_stats) {
        log::warn!("stats: no room for the UDP guard's counters");
    }
    let frontend = petrel_tcp::Frontend::bind(frontend_config)
        .map_err(|e| os_error(format!("petrel: cannot bind: {e}")))?;
    let admin_listener = admin::bind(&settings).map_err(os_error)?;
    // AF_XDP needs its privileges: attach before they are dropped.
    let xdp = xdp::attach(
        settings.xdp.as_ref(),
        &settings.listen_ips(),
        Some(udp_guard.clone()),
        udp_stats,
    )
    .map_err(os_error)?;
    // The pidfile once every socket is bound (and before privileges go, so
    // that root may write it where only root can).
    let pidfile = match &settings.memcached.pidfile {
        Some(p) => Some(
            daemon::PidFile::write(p)
                .map_err(|e| os_error(format!("petrel: --pidfile {}: {e}", p.display())))?,
        ),
        None => None,
    };

    if let Some(u) = &user {
        if privileges::is_root() && u.uid != 0 {
            privileges::drop_to(u).map_err(|e| {
                os_error(format!(
                    "petrel: --user: cannot switch to '{}': {e}",
                    u.name
                ))
            })?;
            log::info!("switched to user {} (uid {}, gid {})", u.name, u.uid, u.gid);
        }
    }

    log_startup(&settings, arena_bytes, &report, &frontend);
    daemon::serving();
    let mut extra = metrics_xdp::sources(xdp.as_ref());
    extra.push(memory::metrics_source(residency));
    extra.push(pauses::metrics_source(evict_pauses));
    let observed = metrics::Sources {
        engine: &engine,
        frontend: frontend.stats(),
        extra,
        guard: Some(udp_guard.clone()),
    };
    let stop_prefault = std::sync::atomic::AtomicBool::new(false);
    let served = std::thread::scope(|scope| {
        memory::start_prefault(
            scope,
            &engine,
            settings.prefault_ahead_bytes,
            &report,
            &stop_prefault,
        );
        log::info!(
            "start-up took {} ms (store built at {} ms): {}",
            started.elapsed().as_millis(),
            built_ms,
            memory::describe(&report, settings.prefault_ahead_bytes)
        );
        let served = admin::observe(&settings.observability, admin_listener, observed, || {
            xdp::serve(xdp, &engine, || frontend.run(&engine, Some(&mut signal_rx)))
        });
        stop_prefault.store(true, std::sync::atomic::Ordering::Relaxed);
        served
    });
    served
        .map_err(os_error)?
        .map_err(|e| os_error(format!("petrel: serving failed: {e}")))?;
    log::info!("stopped");
    if let Some(file) = &persist_file {
        persist::save(engine, file, petrel_tcp::unix_now());
    }
    drop(pidfile);
    log::logger().flush();
    Ok(())
}

/// SIGHUP (logrotate's postrotate, supervisors) reopens the log file and
/// the command log, rereads the credentials file (`-Y`/`-S`, as memcached
/// rereads its authfile), reloads the TLS certificates (with -Z; new
/// handshakes use them, established connections keep theirs) and keeps
/// serving; a thread waits for it.
fn reopen_logs_on_sighup(
    tls: Option<std::sync::Arc<petrel_tcp::TlsContext>>,
) -> Result<(), String> {
    use std::io::Read;
    let (mut rx, tx) =
        std::os::unix::net::UnixStream::pair().map_err(|e| format!("petrel: signal pipe: {e}"))?;
    signal_hook::low_level::pipe::register(signal_hook::consts::SIGHUP, tx)
        .map_err(|e| format!("petrel: cannot handle SIGHUP: {e}"))?;
    std::thread::Builder::new()
        .name("petrel-sighup".into())
        .spawn(move || {
            let mut buf = [0u8; 64];
            while let Ok(n) = rx.read(&mut buf) {
                if n == 0 {
                    break;
                }
                logger::reopen();
                klog::reopen();
                log::info!("SIGHUP: log files reopened");
                auth::reload();
                if let Some(ctx) = &tls {
                    let _ = tls::reload(ctx);
                }
            }
        })
        .map_err(|e| format!("petrel: cannot start the SIGHUP thread: {e}"))?;
    Ok(())
}

/// The one start-up line with the effective configuration.
fn log_startup(
    s: &Settings,
    arena_bytes: usize,
    report: &memory::MemoryReport,
    frontend: &petrel_tcp::Frontend,
) {
    let (tcp, udp) = frontend.local_addrs().unwrap_or_default();
    let list = |v: &[std::net::SocketAddr]| {
        if v.is_empty() {
            "off".to_string()
        } else {
            v.iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(",")
        }
    };
    log::info!(
        "petrel {} pid {} tcp={} udp={} unix={} memory-limit={}MiB arena={}B hugetlb={} thp={} mlock={} max-item-size={} \
         conn-limit={} threads={} idle-timeout={}s user={} admin-port={} log={} verbose={} config={}",
        env!("CARGO_PKG_VERSION"),
        std::process::id(),
        list(&tcp),
        list(&udp),
        s.memcached
            .unix_socket
            .as_ref()
            .map_or("off".to_string(), |p| format!(
                "{}(mode {:o})",
                p.display(),
                s.memcached.unix_mask
            )),
        s.memory_limit_bytes >> 20,
        arena_bytes,
        report.hugetlb,
        report.thp_advised,
        report.locked,
        s.max_item_bytes,
        s.conn_limit,
        s.threads,
        s.idle_timeout_secs,
        s.user.as_deref().unwrap_or("-"),
        if s.admin_port == 0 { "off".to_string() } else { format!("{}:{}", s.observability.admin_listen, s.admin_port) },
        s.log_file.as_ref().map_or("stderr".to_string(), |p| p.display().to_string()),
        s.verbosity,
        s.config_file.as_ref().map_or("-".to_string(), |p| p.display().to_string()),
    );
}

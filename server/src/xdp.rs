//! The AF_XDP front end in the server: its settings (`--xdp-*` flags and
//! `xdp-*` config keys), attaching it before privileges are dropped, serving
//! it next to the kernel-socket front ends, and its figures in `stats`.
//!
//! ```text
//!  --xdp-iface IF ──▶ attach (program + link + a socket per queue; needs
//!                     CAP_NET_ADMIN, CAP_NET_RAW, CAP_BPF)
//!        │ ok                                  │ failed
//!        ▼                                     ▼
//!  workers on the queues, pinned;      required? ── yes ──▶ exit 71
//!  kernel TCP/UDP sockets as before          │ no
//!        │ SIGTERM                           ▼
//!        ▼                             log what is missing and how to fix
//!  workers stopped and joined,         it; serve over the kernel sockets
//!  program detached (link closed)
//! ```
//!
//! AF_XDP is *required* (a failure is fatal) when `--xdp-required` is given
//! or when the mode is forced: `--xdp-mode native|generic` or
//! `--xdp-zero-copy on`. Otherwise a failure is logged and the server goes
//! on over the kernel sockets. The kernel UDP socket on the same port always
//! stays bound: queues without an AF_XDP socket, and UDP the XDP program
//! passes on, reach it.
//!
//! Built without the cargo feature `xdp` (or off Linux) the flags are still
//! accepted, so configurations stay portable; AF_XDP is then unavailable,
//! which is fatal only when required.

use std::net::IpAddr;

use clap::Args;
use serde::Deserialize;

use crate::config::value::{parse_id_list, pick, pick_switch, ConfigError, Origin};
use petrel_core::xdp::UnknownSetting;
pub use petrel_core::xdp::{AttachMode, ZeroCopy};

/// Longest interface name Linux accepts (`IFNAMSIZ` - 1).
const IFACE_NAME_MAX_BYTES: usize = 15;
/// Highest CPU id accepted in `--xdp-cpus` (`CPU_SETSIZE` - 1).
const CPU_ID_MAX: u32 = 1023;
/// Highest RX queue id accepted in `--xdp-queues`.
const QUEUE_ID_MAX: u32 = 4095;
/// Default of `--xdp-idle-spin-us` (`petrel_xdp`'s default).
pub const IDLE_SPIN_US_DEFAULT: u32 = 0;
/// Largest `--xdp-idle-spin-us` accepted (1 s).
const IDLE_SPIN_US_MAX: u32 = 1_000_000;

/// The AF_XDP flags; each is also a config key of the same name.
#[derive(Args, Deserialize, Debug, Default, Clone)]
#[command(next_help_heading = "AF_XDP")]
#[serde(rename_all = "kebab-case")]
pub struct XdpArgs {
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
    #[serde(default)]
    pub xdp_busy_poll: bool,
    /// CPUs to pin the AF_XDP workers to, one per queue in turn, e.g. 2-3 [default: all allowed]
    #[arg(long = "xdp-cpus", value_name = "LIST")]
    pub xdp_cpus: Option<String>,
    /// Exit (status 71) if AF_XDP cannot be set up, instead of serving UDP over the kernel socket only
    #[arg(long = "xdp-required")]
    #[serde(default)]
    pub xdp_required: bool,
    /// Microseconds an idle AF_XDP worker keeps polling its rings before it sleeps, 0 = sleep at once [default: 0]
    #[arg(long = "xdp-idle-spin-us", value_name = "US")]
    pub xdp_idle_spin_us: Option<u32>,
    /// Kernel's preferred busy polling on the AF_XDP sockets (SO_PREFER_BUSY_POLL, SO_BUSY_POLL = US); pair with the interface's napi_defer_hard_irqs and gro_flush_timeout, 0 = off [default: 0]
    #[arg(long = "xdp-prefer-busy-poll", value_name = "US")]
    pub xdp_prefer_busy_poll: Option<u32>,
    /// Diagnostic: the AF_XDP workers send every UDP datagram to the port back unchanged (addresses swapped) instead of answering it
    #[arg(long = "xdp-echo")]
    #[serde(default)]
    pub xdp_echo: bool,
}

/// The effective AF_XDP settings (present only with `--xdp-iface`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XdpSettings {
    /// Interface whose RX queues are served.
    pub iface: String,
    /// RX queues to serve; `None` = all of the interface's.
    pub queues: Option<Vec<u32>>,
    /// Attach mode.
    pub mode: AttachMode,
    /// Zero-copy setting.
    pub zero_copy: ZeroCopy,
    /// Spin instead of sleeping when idle (dedicated cores only).
    pub busy_poll: bool,
    /// CPUs for the workers (worker i on `cpus[i % len]`); empty = the CPUs
    /// this process may use, in order.
    pub cpus: Vec<u32>,
    /// A failure to set AF_XDP up is fatal (see the module docs).
    pub required: bool,
    /// Microseconds an idle worker polls before sleeping.
    pub idle_spin_us: u32,
    /// `SO_BUSY_POLL` microseconds of preferred busy polling, 0 = off.
    pub prefer_busy_poll_us: u32,
    /// Diagnostic echo instead of the cache.
    pub echo: bool,
    /// The UDP port served (the server's `--udp-port`).
    pub port: u16,
}

/// The AF_XDP settings from flags over config keys over defaults, checked;
/// `None` without `--xdp-iface`. `udp_port` is the effective UDP port.
pub fn settings(
    cli: &XdpArgs,
    file: &XdpArgs,
    udp_port: u16,
) -> Result<Option<XdpSettings>, ConfigError> {
    let iface = pick(cli.xdp_iface.clone(), file.xdp_iface.clone(), "xdp-iface");
    let queues = pick(
        cli.xdp_queues.clone(),
        file.xdp_queues.clone(),
        "xdp-queues",
    );
    let mode = pick(cli.xdp_mode.clone(), file.xdp_mode.clone(), "xdp-mode");
    let zero_copy = pick(
        cli.xdp_zero_copy.clone(),
        file.xdp_zero_copy.clone(),
        "xdp-zero-copy",
    );
    let cpus = pick(cli.xdp_cpus.clone(), file.xdp_cpus.clone(), "xdp-cpus");
    let busy_poll = pick_switch(cli.xdp_busy_poll, file.xdp_busy_poll, "xdp-busy-poll");
    let required = pick_switch(cli.xdp_required, file.xdp_required, "xdp-required");
    let idle_spin_us = pick(
        cli.xdp_idle_spin_us,
        file.xdp_idle_spin_us,
        "xdp-idle-spin-us",
    );
    let prefer_busy_poll = pick(
        cli.xdp_prefer_busy_poll,
        file.xdp_prefer_busy_poll,
        "xdp-prefer-busy-poll",
    );
    let echo = pick_switch(cli.xdp_echo, file.xdp_echo, "xdp-echo");

    let Some(iface) = iface else {
        // Any other AF_XDP setting without an interface is a mistake.
        let given = [
            queues.as_ref().map(|s| s.origin),
            mode.as_ref().map(|s| s.origin),
            zero_copy.as_ref().map(|s| s.origin),
            cpus.as_ref().map(|s| s.origin),
            Some(busy_poll.origin),
            Some(required.origin),
            idle_spin_us.as_ref().map(|s| s.origin),
            prefer_busy_poll.as_ref().map(|s| s.origin),
            Some(echo.origin),
        ];
        if let Some(origin) = given.into_iter().flatten().find(|o| o.given()) {
            return origin.fail("needs --xdp-iface");
        }
        return Ok(None);
    };
    let iface_origin = iface.origin;
    let iface = iface.value;
    if iface.is_empty()
        || iface.len() > IFACE_NAME_MAX_BYTES
        || iface == "."
        || iface == ".."
        || iface
            .bytes()
            .any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace() || b == 0)
    {
        return iface_origin.fail(format!(
            "'{iface}' is not an interface name (1 to {IFACE_NAME_MAX_BYTES} bytes, no '/', ':' or spaces)"
        ));
    }
    if udp_port == 0 {
        return iface_origin
            .fail("AF_XDP serves memcache over UDP, but UDP is off (-U/--udp-port 0)");
    }
    let mode = match &mode {
        None => AttachMode::Auto,
        Some(m) => m.value.parse().or_else(|e: UnknownSetting| {
            m.origin
                .fail(format!("'{}' is not a mode ({})", m.value, e.expected))
        })?,
    };
    let zc_origin = zero_copy
        .as_ref()
        .map_or(Origin::Default("xdp-zero-copy"), |z| z.origin);
    let zero_copy = match &zero_copy {
        None => ZeroCopy::Auto,
        Some(z) => z.value.parse().or_else(|e: UnknownSetting| {
            z.origin.fail(format!(
                "'{}' is not a zero-copy setting ({})",
                z.value, e.expected
            ))
        })?,
    };
    if zero_copy == ZeroCopy::On && mode == AttachMode::Generic {
        return zc_origin
            .fail("zero-copy needs native XDP; generic mode (--xdp-mode generic) only copies");
    }
    let queues = match queues {
        Some(q) => Some(parse_id_list(&q.value, QUEUE_ID_MAX).or_else(|e| q.origin.fail(e))?),
        None => None,
    };
    let cpus = match cpus {
        Some(c) => parse_id_list(&c.value, CPU_ID_MAX).or_else(|e| c.origin.fail(e))?,
        None => Vec::new(),
    };
    let idle_spin_us = match idle_spin_us {
        Some(s) if s.value > IDLE_SPIN_US_MAX => {
            return s
                .origin
                .fail(format!("at most {IDLE_SPIN_US_MAX} microseconds"))
        }
        Some(s) => s.value,
        None => IDLE_SPIN_US_DEFAULT,
    };
    let prefer_busy_poll_us = match prefer_busy_poll {
        Some(s) if s.value > IDLE_SPIN_US_MAX => {
            return s
                .origin
                .fail(format!("at most {IDLE_SPIN_US_MAX} microseconds"))
        }
        Some(s) => s.value,
        None => 0,
    };
    let forced = mode != AttachMode::Auto || zero_copy == ZeroCopy::On;
    Ok(Some(XdpSettings {
        iface,
        queues,
        mode,
        zero_copy,
        busy_poll: busy_poll.value,
        cpus,
        required: required.value || forced,
        idle_spin_us,
        prefer_busy_poll_us,
        echo: echo.value,
        port: udp_port,
    }))
}

/// Capabilities AF_XDP needs that this process lacks in its effective set
/// (empty when it has them, or when that cannot be read).
#[cfg(all(feature = "xdp", target_os = "linux"))]
pub fn missing_capabilities() -> Vec<&'static str> {
    const CAP_NET_ADMIN: u32 = 12;
    const CAP_NET_RAW: u32 = 13;
    const CAP_SYS_ADMIN: u32 = 21;
    const CAP_BPF: u32 = 39;
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return Vec::new();
    };
    let Some(eff) = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
    else {
        return Vec::new();
    };
    let has = |cap: u32| eff & (1u64 << cap) != 0;
    let mut missing = Vec::new();
    if !has(CAP_NET_ADMIN) {
        missing.push("CAP_NET_ADMIN");
    }
    if !has(CAP_NET_RAW) {
        missing.push("CAP_NET_RAW");
    }
    if !has(CAP_BPF) && !has(CAP_SYS_ADMIN) {
        missing.push("CAP_BPF");
    }
    missing
}

/// An attached AF_XDP front end, not yet serving.
#[cfg(all(feature = "xdp", target_os = "linux"))]
pub type Attachment = petrel_xdp::XdpAttachment;

/// Never exists in a build without AF_XDP.
#[cfg(not(all(feature = "xdp", target_os = "linux")))]
pub enum Attachment {}

/// What to say, and whether to go on, when AF_XDP is unavailable: `Err`
/// (the message) when required, else the message logged and `Ok(None)`.
fn unavailable(s: &XdpSettings, why: String) -> Result<Option<Attachment>, String> {
    if s.required {
        return Err(format!(
            "petrel: --xdp-iface {}: {why} (AF_XDP is required: --xdp-required, or a forced \
             --xdp-mode/--xdp-zero-copy)",
            s.iface
        ));
    }
    log::error!("--xdp-iface {}: {why}", s.iface);
    log::warn!(
        "AF_XDP off: memcache over UDP on port {} is served by the kernel UDP socket only \
         (add --xdp-required to make this fatal)",
        s.port
    );
    Ok(None)
}

/// Attaches the AF_XDP front end (program, link, a socket per queue) when
/// `--xdp-iface` was given. Call before privileges are dropped. `Err` is
/// the one-line reason to exit (AF_XDP required but unavailable).
#[cfg(all(feature = "xdp", target_os = "linux"))]
pub fn attach(
    s: Option<&XdpSettings>,
    listen: &[IpAddr],
    udp_guard: Option<std::sync::Arc<petrel_core::udp::guard::UdpGuard>>,
    udp_stats: std::sync::Arc<petrel_core::udp::UdpStats>,
) -> Result<Option<Attachment>, String> {
    let Some(s) = s else { return Ok(None) };
    warn_if_kernel_socket_misses(s, listen);
    let mut cfg = petrel_xdp::XdpConfig::new(s.iface.clone(), s.port);
    cfg.udp_guard = udp_guard;
    cfg.udp_stats = udp_stats;
    cfg.mode = petrel_xdp::XdpMode {
        attach: s.mode,
        zero_copy: s.zero_copy,
    };
    cfg.queues = s.queues.clone();
    cfg.busy_poll = s.busy_poll;
    cfg.idle_spin_micros = s.idle_spin_us;
    cfg.prefer_busy_poll_micros = s.prefer_busy_poll_us;
    cfg.echo = s.echo;
    cfg.cores = s.cpus.iter().map(|&c| c as usize).collect();
    match petrel_xdp::XdpFrontend::attach(cfg) {
        Ok(a) => Ok(Some(a)),
        Err(e) => {
            let mut why = e.to_string().replace('\n', " ");
            if let petrel_xdp::XdpError::Permission(_) = e {
                let missing = missing_capabilities();
                if !missing.is_empty() {
                    why.push_str(&format!("; this process lacks {}", missing.join(", ")));
                }
            }
            unavailable(s, why)
        }
    }
}

/// Without AF_XDP built in: unavailable, fatal only when required.
#[cfg(not(all(feature = "xdp", target_os = "linux")))]
pub fn attach(
    s: Option<&XdpSettings>,
    listen: &[IpAddr],
    _udp_guard: Option<std::sync::Arc<petrel_core::udp::guard::UdpGuard>>,
    _udp_stats: std::sync::Arc<petrel_core::udp::UdpStats>,
) -> Result<Option<Attachment>, String> {
    match s {
        None => Ok(None),
        Some(s) => {
            warn_if_kernel_socket_misses(s, listen);
            unavailable(
                s,
                "this petrel was built without AF_XDP (cargo feature `xdp`, Linux only); \
             rebuild with `cargo build --release -p petrel --features xdp`"
                    .to_string(),
            )
        }
    }
}

/// The IPv4 and IPv6 addresses of interface `name` (empty if it has none
/// or they cannot be read).
fn interface_addresses(name: &str) -> Vec<IpAddr> {
    let mut out = Vec::new();
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs writes a list head we free below with freeifaddrs.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return out;
    }
    let mut at = list;
    while !at.is_null() {
        // SAFETY: `at` is a node of the list getifaddrs returned, alive
        // until freeifaddrs; its name is a NUL-terminated string and its
        // address, when not null, a sockaddr of the family it names.
        unsafe {
            let ifa = &*at;
            let same = !ifa.ifa_name.is_null()
                && std::ffi::CStr::from_ptr(ifa.ifa_name).to_bytes() == name.as_bytes();
            if same && !ifa.ifa_addr.is_null() {
                match i32::from((*ifa.ifa_addr).sa_family) {
                    libc::AF_INET => {
                        let a = &*(ifa.ifa_addr as *const libc::sockaddr_in);
                        out.push(IpAddr::from(u32::from_be(a.sin_addr.s_addr).to_be_bytes()));
                    }
                    libc::AF_INET6 => {
                        let a = &*(ifa.ifa_addr as *const libc::sockaddr_in6);
                        out.push(IpAddr::from(a.sin6_addr.s6_addr));
                    }
                    _ => {}
                }
            }
            at = ifa.ifa_next;
        }
    }
    // SAFETY: `list` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(list) };
    out
}

/// Whether a kernel UDP socket bound to `listen` receives datagrams sent
/// to one of `iface_addrs` (an unspecified address receives all).
fn listen_covers(listen: &[IpAddr], iface_addrs: &[IpAddr]) -> bool {
    iface_addrs.is_empty()
        || listen
            .iter()
            .any(|l| l.is_unspecified() || iface_addrs.contains(l))
}

/// Warns when the kernel UDP socket is not bound to any address of the
/// AF_XDP interface: then UDP on queues without an AF_XDP socket (or all
/// of it, if AF_XDP is unavailable) is not answered there.
fn warn_if_kernel_socket_misses(s: &XdpSettings, listen: &[IpAddr]) {
    let addrs = interface_addresses(&s.iface);
    if !listen_covers(listen, &addrs) {
        let list = |v: &[IpAddr]| {
            v.iter()
                .map(IpAddr::to_string)
                .collect::<Vec<_>>()
                .join(",")
        };
        log::warn!(
            "--xdp-iface {}: the kernel UDP socket listens on {} but not on the interface's \
             addresses ({}): UDP it gets (queues without an AF_XDP socket, or all of it if \
             AF_XDP is unavailable) goes unanswered; add one of them to -l/--listen",
            s.iface,
            list(listen),
            list(&addrs)
        );
    }
}

/// The AF_XDP figures in `stats`: `xdp_queues`, every per-queue counter
/// summed as `xdp_<name>` (`xdp_rx_frames`, `xdp_rx_requests`,
/// `xdp_tx_frames`, ...) and every drop reason as `xdp_drop_<reason>`.
#[cfg(all(feature = "xdp", target_os = "linux"))]
struct XdpStatsSource {
    stats: petrel_xdp::XdpStats,
    queues: u64,
}

#[cfg(all(feature = "xdp", target_os = "linux"))]
impl petrel_core::engine::StatsSource for XdpStatsSource {
    fn for_each_stat(&self, f: &mut dyn FnMut(&str, &str, u64)) {
        f("xdp_", "queues", self.queues);
        self.stats
            .for_each_total(|name, _, _, v| f("xdp_", name, v));
        self.stats
            .for_each_drop_total(|reason, v| f("xdp_drop_", reason, v));
    }
}

/// Runs `run` (the kernel-socket front ends, until shutdown) with the
/// AF_XDP workers serving `engine` alongside when attached; afterwards the
/// workers are stopped and joined and the program detached. `Err` is the
/// reason to exit.
#[cfg(all(feature = "xdp", target_os = "linux"))]
pub fn serve<R>(
    attachment: Option<Attachment>,
    engine: &petrel_core::engine::Engine<'static>,
    run: impl FnOnce() -> R,
) -> Result<R, String> {
    let Some(a) = attachment else {
        return Ok(run());
    };
    let fe = a.frontend();
    // One small allocation for the life of the process: `stats` reads it.
    let source: &'static XdpStatsSource = Box::leak(Box::new(XdpStatsSource {
        stats: fe.stats_handle(),
        queues: fe.queues().len() as u64,
    }));
    if !engine.add_stats_source(source) {
        log::warn!("AF_XDP figures are not in `stats`: too many stats sources");
    }
    let result = a
        .serve(engine, |xdp| {
            log::info!(
                "AF_XDP serving: {} mode, queues {:?}{}",
                xdp.mode(),
                xdp.queues(),
                if xdp.unserved_queues().is_empty() {
                    String::new()
                } else {
                    format!(
                        ", queues {:?} left to the kernel UDP socket",
                        xdp.unserved_queues()
                    )
                }
            );
            let r = run();
            for (q, st) in xdp.queues().iter().zip(xdp.stats()) {
                log::info!("AF_XDP queue {q}: {st}");
            }
            r
        })
        .map_err(|e| format!("petrel: AF_XDP: {e}"))?;
    log::info!("AF_XDP stopped: workers joined, XDP program detached");
    Ok(result)
}

/// Without AF_XDP built in there is never an attachment.
#[cfg(not(all(feature = "xdp", target_os = "linux")))]
pub fn serve<R>(
    attachment: Option<Attachment>,
    _engine: &petrel_core::engine::Engine<'static>,
    run: impl FnOnce() -> R,
) -> Result<R, String> {
    match attachment {
        None => Ok(run()),
        Some(never) => match never {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{parse_args, parse_file, Parsed};

    fn xdp(args: &[&str]) -> Result<Option<XdpSettings>, ConfigError> {
        let mut v = vec!["petrel"];
        v.extend_from_slice(args);
        match parse_args(v)? {
            Parsed::Run(s) => Ok(s.xdp),
            Parsed::Print(t) => panic!("unexpected print: {t}"),
        }
    }

    #[test]
    fn off_by_default_and_defaults_with_an_interface() {
        assert_eq!(xdp(&[]).unwrap(), None);
        let s = xdp(&["--xdp-iface", "eth0", "-U", "2000"])
            .unwrap()
            .unwrap();
        assert_eq!(s.iface, "eth0");
        assert_eq!(s.port, 2000);
        assert_eq!((s.mode, s.zero_copy), (AttachMode::Auto, ZeroCopy::Auto));
        assert_eq!(s.queues, None);
        assert!(s.cpus.is_empty() && !s.busy_poll && !s.required);
        assert_eq!(s.idle_spin_us, IDLE_SPIN_US_DEFAULT);
        let s = xdp(&["--xdp-iface", "e", "--xdp-idle-spin-us", "20"])
            .unwrap()
            .unwrap();
        assert_eq!(s.idle_spin_us, 20);
    }

    #[test]
    fn every_flag() {
        let s = xdp(&[
            "--xdp-iface",
            "veth1",
            "--xdp-queues",
            "0,2-3",
            "--xdp-mode",
            "native",
            "--xdp-zero-copy",
            "off",
            "--xdp-busy-poll",
            "--xdp-cpus",
            "1",
        ])
        .unwrap()
        .unwrap();
        assert_eq!(s.queues, Some(vec![0, 2, 3]));
        assert_eq!((s.mode, s.zero_copy), (AttachMode::Native, ZeroCopy::Off));
        assert!(s.busy_poll);
        assert_eq!(s.cpus, vec![1]);
        assert!(s.required, "a forced mode makes AF_XDP required");
        let s = xdp(&["--xdp-iface", "e", "--xdp-required"])
            .unwrap()
            .unwrap();
        assert!(s.required);
        let s = xdp(&["--xdp-iface", "e", "--xdp-zero-copy", "on"])
            .unwrap()
            .unwrap();
        assert!(s.required);
        let s = xdp(&["--xdp-iface", "e", "--xdp-zero-copy", "off"])
            .unwrap()
            .unwrap();
        assert!(!s.required, "turning zero-copy off forces nothing");
    }

    #[test]
    fn bad_values_name_the_flag() {
        for (args, needle) in [
            (&["--xdp-iface", ""][..], "--xdp-iface"),
            (&["--xdp-iface", "a/b"][..], "--xdp-iface"),
            (&["--xdp-iface", "sixteen-chars-xx"][..], "--xdp-iface"),
            (&["--xdp-iface", "e", "-U", "0"][..], "--xdp-iface"),
            (
                &["--xdp-iface", "e", "--xdp-mode", "fast"][..],
                "--xdp-mode",
            ),
            (
                &["--xdp-iface", "e", "--xdp-zero-copy", "yes"][..],
                "--xdp-zero-copy",
            ),
            (
                &[
                    "--xdp-iface",
                    "e",
                    "--xdp-mode",
                    "generic",
                    "--xdp-zero-copy",
                    "on",
                ][..],
                "--xdp-zero-copy",
            ),
            (
                &["--xdp-iface", "e", "--xdp-queues", "1,1"][..],
                "--xdp-queues",
            ),
            (
                &["--xdp-iface", "e", "--xdp-queues", "3-1"][..],
                "--xdp-queues",
            ),
            (
                &["--xdp-iface", "e", "--xdp-queues", ""][..],
                "--xdp-queues",
            ),
            (&["--xdp-iface", "e", "--xdp-cpus", "x"][..], "--xdp-cpus"),
            (
                &["--xdp-iface", "e", "--xdp-cpus", "5000"][..],
                "--xdp-cpus",
            ),
            (&["--xdp-queues", "0"][..], "--xdp-queues"),
            (&["--xdp-busy-poll"][..], "--xdp-busy-poll"),
            (&["--xdp-required"][..], "--xdp-required"),
            (&["--xdp-idle-spin-us", "5"][..], "--xdp-idle-spin-us"),
            (
                &["--xdp-iface", "e", "--xdp-idle-spin-us", "2000000"][..],
                "--xdp-idle-spin-us",
            ),
        ] {
            let e = xdp(args).unwrap_err().0;
            assert!(e.contains(needle), "{args:?}: {e}");
            assert_eq!(e.lines().count(), 1, "{e}");
        }
    }

    #[test]
    fn config_keys_and_flags_over_them() {
        let f = parse_file(
            "xdp-iface = \"veth0\"\nxdp-queues = \"1\"\nxdp-mode = \"generic\"\n\
             xdp-zero-copy = \"off\"\nxdp-busy-poll = true\nxdp-cpus = \"0-1\"\nxdp-required = true\n",
        )
        .unwrap();
        let f = f.xdp;
        let none = XdpArgs::default();
        let s = settings(&none, &f, 11211).unwrap().unwrap();
        assert_eq!(s.iface, "veth0");
        assert_eq!(s.queues, Some(vec![1]));
        assert_eq!(s.mode, AttachMode::Generic);
        assert_eq!(s.cpus, vec![0, 1]);
        assert!(s.busy_poll && s.required);
        let cli = XdpArgs {
            xdp_iface: Some("veth9".into()),
            xdp_mode: Some("auto".into()),
            ..XdpArgs::default()
        };
        let s = settings(&cli, &f, 11211).unwrap().unwrap();
        assert_eq!((s.iface.as_str(), s.mode), ("veth9", AttachMode::Auto));
        let f = parse_file("xdp-mode = \"turbo\"\nxdp-iface = \"e\"\n").unwrap();
        let e = settings(&none, &f.xdp, 11211).unwrap_err().0;
        assert!(e.contains("config key `xdp-mode`"), "{e}");
        let f = parse_file("xdp-cpus = \"0\"\n").unwrap();
        let e = settings(&none, &f.xdp, 11211).unwrap_err().0;
        assert!(
            e.contains("config key `xdp-cpus`") && e.contains("--xdp-iface"),
            "{e}"
        );
    }

    #[test]
    fn kernel_socket_coverage_of_the_interface() {
        let ip = |t: &str| t.parse::<IpAddr>().unwrap();
        let on_if = [ip("198.18.0.1"), ip("fe80::1")];
        assert!(listen_covers(&[ip("198.18.0.1")], &on_if));
        assert!(listen_covers(&[ip("127.0.0.1"), ip("0.0.0.0")], &on_if));
        assert!(listen_covers(&[ip("::")], &on_if));
        assert!(!listen_covers(&[ip("127.0.0.1")], &on_if));
        assert!(
            listen_covers(&[ip("127.0.0.1")], &[]),
            "no addresses: nothing to say"
        );
        assert!(interface_addresses("lo").contains(&ip("127.0.0.1")));
        assert!(interface_addresses("no-such-if").is_empty());
    }

    #[test]
    fn unavailable_is_fatal_only_when_required() {
        let mut s = xdp(&["--xdp-iface", "e"]).unwrap().unwrap();
        assert!(unavailable(&s, "no".into()).unwrap().is_none());
        s.required = true;
        let e = unavailable(&s, "no permission".into()).err().unwrap();
        assert!(e.contains("no permission") && e.contains("required"), "{e}");
    }
}

//! Configuration and errors of the AF_XDP front end.

use std::fmt;
use std::io;
use std::str::FromStr;

pub use petrel_core::xdp::{AttachMode, ZeroCopy};

/// An AF_XDP mode: where the program runs and how frames reach the UMEM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XdpMode {
    /// Where the XDP program runs.
    pub attach: AttachMode,
    /// Whether the sockets bind zero-copy.
    pub zero_copy: ZeroCopy,
}

impl XdpMode {
    /// Native zero-copy, then native copy, then generic copy.
    pub const AUTO: XdpMode = XdpMode {
        attach: AttachMode::Auto,
        zero_copy: ZeroCopy::Auto,
    };
    /// Native XDP with zero-copy sockets, or fail.
    pub const NATIVE_ZERO_COPY: XdpMode = XdpMode {
        attach: AttachMode::Native,
        zero_copy: ZeroCopy::On,
    };
    /// Native XDP with copy-mode sockets.
    pub const NATIVE: XdpMode = XdpMode {
        attach: AttachMode::Native,
        zero_copy: ZeroCopy::Off,
    };
    /// Generic (SKB) XDP with copy-mode sockets.
    pub const GENERIC: XdpMode = XdpMode {
        attach: AttachMode::Generic,
        zero_copy: ZeroCopy::Off,
    };

    /// The concrete modes to try, in order.
    pub(crate) fn candidates(self) -> Vec<ResolvedMode> {
        let native = matches!(self.attach, AttachMode::Auto | AttachMode::Native);
        let generic = matches!(self.attach, AttachMode::Auto | AttachMode::Generic);
        let zc = matches!(self.zero_copy, ZeroCopy::Auto | ZeroCopy::On);
        let copy = matches!(self.zero_copy, ZeroCopy::Auto | ZeroCopy::Off);
        let mut out = Vec::new();
        if native && zc {
            out.push(ResolvedMode::NativeZeroCopy);
        }
        if native && copy {
            out.push(ResolvedMode::NativeCopy);
        }
        if generic && copy {
            out.push(ResolvedMode::GenericCopy);
        }
        out
    }
}

impl FromStr for XdpMode {
    type Err = String;

    /// Parses `auto`, `native-zc`, `native` or `generic`.
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Self::AUTO),
            "native-zc" => Ok(Self::NATIVE_ZERO_COPY),
            "native" => Ok(Self::NATIVE),
            "generic" => Ok(Self::GENERIC),
            _ => Err(format!(
                "unknown XDP mode {s:?} (expected auto, native-zc, native or generic)"
            )),
        }
    }
}

/// The mode that actually took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResolvedMode {
    /// Driver-mode XDP, zero-copy sockets.
    NativeZeroCopy,
    /// Driver-mode XDP, copy-mode sockets.
    NativeCopy,
    /// Generic (SKB) XDP, copy-mode sockets.
    GenericCopy,
}

impl fmt::Display for ResolvedMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ResolvedMode::NativeZeroCopy => "native zero-copy",
            ResolvedMode::NativeCopy => "native copy",
            ResolvedMode::GenericCopy => "generic copy",
        })
    }
}

/// Default of [`XdpConfig::idle_spin_micros`]: sleep at once (poll-on-idle).
/// On the shared 2-core veth benchmark (`scripts/bench-udp`), 20 us gave
/// 11-15% more replies per second at equal server CPU per request, but a
/// worse p99 (the spinning worker loses its turn to other processes).
pub const DEFAULT_IDLE_SPIN_MICROS: u32 = 0;

/// Configuration of [`crate::XdpFrontend`].
#[derive(Debug, Clone)]
pub struct XdpConfig {
    /// Interface to attach to (e.g. `eth0`).
    pub interface: String,
    /// UDP port of the cache; UDP to this port over IPv4/IPv6 is redirected.
    pub port: u16,
    /// Attach / zero-copy mode.
    pub mode: XdpMode,
    /// RX queues to serve; `None` = every queue of the interface. Queues not
    /// served are left to the kernel (a log line names them).
    pub queues: Option<Vec<u32>>,
    /// Spin instead of sleeping in `poll()` when idle (the kernel's socket
    /// busy polling is [`XdpConfig::prefer_busy_poll_micros`]). For
    /// dedicated cores only.
    pub busy_poll: bool,
    /// Without `busy_poll`: how long a worker keeps polling its rings after
    /// a round that found nothing before it sleeps in `poll()`. A frame
    /// that arrives meanwhile is taken without a sleep and a wakeup (both
    /// cost the server and the sending CPU more than a short spin under
    /// load); 0 = sleep at once.
    pub idle_spin_micros: u32,
    /// CPUs to pin workers to, worker `i` on `cores[i % len]`; empty = the
    /// CPUs this process may use, in order.
    pub cores: Vec<usize>,
    /// UMEM frames per queue (also the fill/completion ring size; a power
    /// of two).
    pub frame_count: u32,
    /// Bytes per UMEM frame (2048 or 4096).
    pub frame_size: u32,
    /// Drop incoming datagrams whose UDP checksum does not verify (off by
    /// default: NICs verify it, and veth passes partial checksums).
    pub verify_udp_checksum: bool,
    /// The UDP amplification guard every request passes (allowlist, reply
    /// size cap, per-source rate; `petrel_core::udp::guard`), shared with the
    /// kernel UDP path. None = no limits.
    pub udp_guard: Option<std::sync::Arc<petrel_core::udp::guard::UdpGuard>>,
    /// The datagram layer's counters: one set per process, shared with the
    /// kernel UDP path (give both the same `Arc`).
    pub udp_stats: std::sync::Arc<petrel_core::udp::UdpStats>,
    /// Diagnostic: instead of answering with the engine, send every UDP
    /// datagram to the port back unchanged with the Ethernet, IP and UDP
    /// source and destination swapped (checksums stay valid: swapping
    /// fields leaves one's-complement sums unchanged). Everything else
    /// (program, UMEM, rings, batches, wake-ups, pinning) is the serving
    /// path's, so its figures are the limit the cache can approach.
    pub echo: bool,
    /// The kernel's preferred busy polling for the sockets, in
    /// microseconds (`SO_PREFER_BUSY_POLL` = 1, `SO_BUSY_POLL` = this,
    /// `SO_BUSY_POLL_BUDGET` = the worker's batch); 0 = off. Workers then
    /// drive the device's NAPI from their own syscalls: a non-blocking
    /// `recvfrom()` after every round that found the RX ring empty, and a
    /// `sendto()` every round that left frames on the TX ring. Pair it with
    /// the interface's `napi_defer_hard_irqs` and `gro_flush_timeout`
    /// (sysfs) so that interrupts stay off while the worker polls.
    pub prefer_busy_poll_micros: u32,
}

impl XdpConfig {
    /// Defaults for `interface` and `port`: auto mode, every queue, poll
    /// when idle, 4096 frames of 2048 bytes per queue, no UDP checksum check.
    pub fn new(interface: impl Into<String>, port: u16) -> Self {
        XdpConfig {
            interface: interface.into(),
            port,
            mode: XdpMode::AUTO,
            queues: None,
            busy_poll: false,
            idle_spin_micros: DEFAULT_IDLE_SPIN_MICROS,
            cores: Vec::new(),
            frame_count: 4096,
            frame_size: 2048,
            verify_udp_checksum: false,
            udp_guard: None,
            udp_stats: std::sync::Arc::default(),
            echo: false,
            prefer_busy_poll_micros: 0,
        }
    }
}

/// Why the AF_XDP front end could not start.
#[derive(Debug)]
pub enum XdpError {
    /// A configuration value is out of range.
    Config(&'static str),
    /// The interface does not exist.
    NoInterface(String, io::Error),
    /// Not permitted: AF_XDP needs root, or CAP_NET_ADMIN, CAP_NET_RAW and
    /// CAP_BPF (or CAP_SYS_ADMIN).
    Permission(io::Error),
    /// The kernel has no AF_XDP or XDP support.
    Unsupported(io::Error),
    /// Creating the XSKMAP failed.
    Map(io::Error),
    /// The verifier rejected the program: the error and its log.
    ProgramLoad(io::Error, String),
    /// No mode could be set up; each attempted mode with its error.
    NoMode(Vec<(ResolvedMode, String)>),
    /// Another failure in setting up a queue.
    Setup(String),
}

impl XdpError {
    /// Classifies an OS error from a privileged call.
    pub(crate) fn from_os(e: io::Error, other: impl FnOnce(io::Error) -> XdpError) -> XdpError {
        match e.raw_os_error() {
            Some(libc::EPERM) | Some(libc::EACCES) => XdpError::Permission(e),
            Some(libc::ENOSYS) | Some(libc::EAFNOSUPPORT) => XdpError::Unsupported(e),
            _ => other(e),
        }
    }
}

impl fmt::Display for XdpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            XdpError::Config(m) => write!(f, "AF_XDP configuration: {m}"),
            XdpError::NoInterface(i, e) => write!(f, "AF_XDP: no interface {i:?}: {e}"),
            XdpError::Permission(e) => write!(
                f,
                "AF_XDP needs root, or the capabilities CAP_NET_ADMIN, CAP_NET_RAW and CAP_BPF \
                 (CAP_SYS_ADMIN on kernels before 5.8): {e}; run as root or grant them \
                 (setcap cap_net_admin,cap_net_raw,cap_bpf+ep BINARY)"
            ),
            XdpError::Unsupported(e) => write!(
                f,
                "this kernel lacks AF_XDP/XDP support (needs Linux >= 5.9 with CONFIG_XDP_SOCKETS): {e}"
            ),
            XdpError::Map(e) => write!(f, "AF_XDP: creating the XSKMAP failed: {e}"),
            XdpError::ProgramLoad(e, log) => {
                write!(f, "AF_XDP: loading the XDP program failed: {e}\n{log}")
            }
            XdpError::NoMode(tried) => {
                write!(f, "AF_XDP: no mode could be set up:")?;
                for (m, e) in tried {
                    write!(f, " [{m}: {e}]")?;
                }
                Ok(())
            }
            XdpError::Setup(m) => write!(f, "AF_XDP: {m}"),
        }
    }
}

impl std::error::Error for XdpError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_and_expand_in_fallback_order() {
        use ResolvedMode::*;
        let m: XdpMode = "auto".parse().unwrap();
        assert_eq!(
            m.candidates(),
            vec![NativeZeroCopy, NativeCopy, GenericCopy]
        );
        let m: XdpMode = "native-zc".parse().unwrap();
        assert_eq!(m.candidates(), vec![NativeZeroCopy]);
        let m: XdpMode = "native".parse().unwrap();
        assert_eq!(m.candidates(), vec![NativeCopy]);
        let m: XdpMode = "generic".parse().unwrap();
        assert_eq!(m.candidates(), vec![GenericCopy]);
        assert!("fast".parse::<XdpMode>().is_err());
        let m = XdpMode {
            attach: AttachMode::Generic,
            zero_copy: ZeroCopy::On,
        };
        assert!(m.candidates().is_empty());
        let m = XdpMode {
            attach: "native".parse().unwrap(),
            zero_copy: "auto".parse().unwrap(),
        };
        assert_eq!(m.candidates(), vec![NativeZeroCopy, NativeCopy]);
        let m = XdpMode {
            attach: "auto".parse().unwrap(),
            zero_copy: "off".parse().unwrap(),
        };
        assert_eq!(m.candidates(), vec![NativeCopy, GenericCopy]);
        assert!("on".parse::<AttachMode>().is_err());
        assert!("native".parse::<ZeroCopy>().is_err());
    }
}

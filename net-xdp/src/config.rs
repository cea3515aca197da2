//! Configuration and errors of the AF_XDP front end.

use std::fmt;
use std::io;
use std::str::FromStr;

/// Where the XDP program runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachMode {
    /// Native (driver) mode first, generic (SKB) mode if the driver refuses.
    Auto,
    /// Native (driver) XDP only (`XDP_FLAGS_DRV_MODE`).
    Native,
    /// Generic XDP on the socket buffer only (`XDP_FLAGS_SKB_MODE`).
    Generic,
}

/// Whether sockets bind in zero-copy mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZeroCopy {
    /// Zero-copy where the driver supports it (native mode only), else copy.
    Auto,
    /// Zero-copy or fail.
    On,
    /// Copy mode.
    Off,
}

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

impl FromStr for AttachMode {
    type Err = String;

    /// Parses `auto`, `native` or `generic` (the server's `--xdp-mode`).
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(AttachMode::Auto),
            "native" => Ok(AttachMode::Native),
            "generic" => Ok(AttachMode::Generic),
            _ => Err(format!(
                "unknown XDP attach mode {s:?} (expected auto, native or generic)"
            )),
        }
    }
}

impl FromStr for ZeroCopy {
    type Err = String;

    /// Parses `auto`, `on` or `off` (the server's `--xdp-zero-copy`).
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(ZeroCopy::Auto),
            "on" => Ok(ZeroCopy::On),
            "off" => Ok(ZeroCopy::Off),
            _ => Err(format!(
                "unknown zero-copy setting {s:?} (expected auto, on or off)"
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
    /// Spin instead of sleeping in `poll()` when idle, and ask the kernel
    /// for socket busy polling. For dedicated cores only.
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

//! The few `bpf(2)` commands Petrel needs, called through `libc::syscall`
//! with `union bpf_attr` laid out as the prefix each command reads.

use super::insn::Insn;
use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_MAP_DELETE_ELEM: libc::c_long = 3;
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_LINK_CREATE: libc::c_long = 28;

/// `BPF_MAP_TYPE_XSKMAP`.
const BPF_MAP_TYPE_XSKMAP: u32 = 17;
/// `BPF_PROG_TYPE_XDP`.
const BPF_PROG_TYPE_XDP: u32 = 6;
/// `BPF_XDP` attach type (for program load and link create).
const BPF_XDP: u32 = 37;

/// `XDP_FLAGS_SKB_MODE`: generic XDP, run on the socket buffer.
pub const XDP_FLAGS_SKB_MODE: u32 = 2;
/// `XDP_FLAGS_DRV_MODE`: native XDP in the driver.
pub const XDP_FLAGS_DRV_MODE: u32 = 4;

/// Size of the verifier log buffer asked for when a load fails.
const VERIFIER_LOG_BYTES: usize = 256 * 1024;

#[repr(C)]
#[derive(Default)]
struct MapCreateAttr {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    inner_map_fd: u32,
    numa_node: u32,
    map_name: [u8; 16],
}

#[repr(C)]
#[derive(Default)]
struct MapElemAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

#[repr(C)]
#[derive(Default)]
struct LinkCreateAttr {
    prog_fd: u32,
    target_ifindex: u32,
    attach_type: u32,
    flags: u32,
}

/// Calls `bpf(cmd, attr, sizeof attr)`; a non-negative result is a new fd
/// (or 0 for commands that return no fd).
fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a live, initialised #[repr(C)] prefix of
    // `union bpf_attr` for `cmd`, and the size passed is exactly its size,
    // so the kernel reads (and for PROG_LOAD writes the log through
    // pointers we own) only within it.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T as *mut libc::c_void,
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

fn owned_fd(rc: libc::c_long) -> OwnedFd {
    // SAFETY: the bpf command succeeded and returned a new file descriptor
    // that nothing else owns.
    unsafe { OwnedFd::from_raw_fd(rc as i32) }
}

fn name16(name: &str) -> [u8; 16] {
    let mut out = [0u8; 16];
    for (o, b) in out.iter_mut().take(15).zip(name.bytes()) {
        *o = b;
    }
    out
}

/// Creates an XSKMAP with `max_entries` slots (key: queue id, value: XSK fd).
pub fn create_xskmap(max_entries: u32) -> io::Result<OwnedFd> {
    let mut attr = MapCreateAttr {
        map_type: BPF_MAP_TYPE_XSKMAP,
        key_size: 4,
        value_size: 4,
        max_entries,
        map_name: name16("petrel_xsks"),
        ..Default::default()
    };
    bpf(BPF_MAP_CREATE, &mut attr).map(owned_fd)
}

/// Puts socket `xsk_fd` at slot `queue` of the XSKMAP `map`.
pub fn xskmap_set(map: &OwnedFd, queue: u32, xsk_fd: i32) -> io::Result<()> {
    let key = queue;
    let value = xsk_fd as u32;
    let mut attr = MapElemAttr {
        map_fd: map.as_raw_fd() as u32,
        key: &key as *const u32 as u64,
        value: &value as *const u32 as u64,
        ..Default::default()
    };
    bpf(BPF_MAP_UPDATE_ELEM, &mut attr).map(drop)
}

/// Removes slot `queue` from the XSKMAP `map` (frames for it then fall back
/// to `XDP_PASS`).
pub fn xskmap_clear(map: &OwnedFd, queue: u32) -> io::Result<()> {
    let key = queue;
    let mut attr = MapElemAttr {
        map_fd: map.as_raw_fd() as u32,
        key: &key as *const u32 as u64,
        ..Default::default()
    };
    bpf(BPF_MAP_DELETE_ELEM, &mut attr).map(drop)
}

/// A program load failure with the kernel verifier's log (empty when the
/// verifier produced none, e.g. for EPERM).
#[derive(Debug)]
pub struct LoadError {
    /// The error `bpf(BPF_PROG_LOAD)` returned.
    pub error: io::Error,
    /// The verifier log of a second, logged attempt.
    pub verifier_log: String,
}

/// Loads `insns` as an XDP program (license GPL).
pub fn load_xdp_program(insns: &[Insn], name: &str) -> Result<OwnedFd, LoadError> {
    const LICENSE: &CStr = c"GPL";
    let mut attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_XDP,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: LICENSE.as_ptr() as u64,
        prog_name: name16(name),
        expected_attach_type: BPF_XDP,
        ..Default::default()
    };
    match bpf(BPF_PROG_LOAD, &mut attr) {
        Ok(fd) => Ok(owned_fd(fd)),
        Err(error) => {
            // Load again with a log buffer to say why.
            let mut log = vec![0u8; VERIFIER_LOG_BYTES];
            attr.log_level = 1;
            attr.log_size = log.len() as u32;
            attr.log_buf = log.as_mut_ptr() as u64;
            if let Ok(fd) = bpf(BPF_PROG_LOAD, &mut attr) {
                return Ok(owned_fd(fd));
            }
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            Err(LoadError {
                error,
                verifier_log: String::from_utf8_lossy(&log[..end]).into_owned(),
            })
        }
    }
}

/// Attaches XDP program `prog` to interface `ifindex` through a BPF link
/// with `flags` ([`XDP_FLAGS_SKB_MODE`] or [`XDP_FLAGS_DRV_MODE`]). The
/// program stays attached exactly as long as the returned fd is open.
pub fn attach_xdp_link(prog: &OwnedFd, ifindex: u32, flags: u32) -> io::Result<OwnedFd> {
    let mut attr = LinkCreateAttr {
        prog_fd: prog.as_raw_fd() as u32,
        target_ifindex: ifindex,
        attach_type: BPF_XDP,
        flags,
    };
    bpf(BPF_LINK_CREATE, &mut attr).map(owned_fd)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bpf::program::udp_port_filter;

    #[test]
    fn the_kernel_verifier_accepts_the_filter() {
        if !petrel_testkit::skip::require_root("loading XDP programs: CAP_BPF, CAP_NET_ADMIN") {
            return;
        }
        let map = create_xskmap(8).expect("XSKMAP");
        let prog = udp_port_filter(11211, map.as_raw_fd());
        let fd = load_xdp_program(&prog, "petrel_test").expect("verifier accepts the filter");
        assert!(fd.as_raw_fd() >= 0);
        // Only AF_XDP sockets may go into an XSKMAP, and keys are bounded.
        assert!(xskmap_set(&map, 0, fd.as_raw_fd()).is_err());
        assert!(xskmap_clear(&map, 0).is_ok());
        assert!(xskmap_clear(&map, 8).is_err());
    }

    #[test]
    fn a_rejected_program_comes_back_with_the_verifier_log() {
        if !petrel_testkit::skip::require_root("loading XDP programs: CAP_BPF, CAP_NET_ADMIN") {
            return;
        }
        // Reads r2 without initialising it.
        let bad = [
            Insn::mov64_reg(crate::bpf::insn::R0, crate::bpf::insn::R2),
            Insn::exit(),
        ];
        let err = load_xdp_program(&bad, "petrel_bad").unwrap_err();
        assert!(err.verifier_log.contains("R2"), "log: {}", err.verifier_log);
    }
}

//! Interface facts: index, RX queue count, and CPU pinning.

use std::ffi::CString;
use std::io;

/// `SIOCETHTOOL` ioctl request number.
const SIOCETHTOOL: libc::c_ulong = 0x8946;
/// `ETHTOOL_GCHANNELS` command.
const ETHTOOL_GCHANNELS: u32 = 0x3c;

#[repr(C)]
#[derive(Default)]
struct EthtoolChannels {
    cmd: u32,
    max_rx: u32,
    max_tx: u32,
    max_other: u32,
    max_combined: u32,
    rx_count: u32,
    tx_count: u32,
    other_count: u32,
    combined_count: u32,
}

#[repr(C)]
struct IfreqData {
    name: [libc::c_char; libc::IFNAMSIZ],
    data: *mut libc::c_void,
    _pad: [u8; 16],
}

/// The kernel index of interface `name`.
pub fn ifindex(name: &str) -> io::Result<u32> {
    let c = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `c` is a valid NUL-terminated string for the call's duration.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if idx == 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(idx)
    }
}

/// The number of RX queues of `name`: ethtool's channel count
/// (`ETHTOOL_GCHANNELS`, rx + combined) where the driver reports it, else
/// the `rx-N` entries under `/sys/class/net/NAME/queues`.
pub fn rx_queue_count(name: &str) -> io::Result<u32> {
    match ethtool_rx_channels(name) {
        Ok(n) if n > 0 => Ok(n),
        _ => sysfs_rx_queues(name),
    }
}

fn ethtool_rx_channels(name: &str) -> io::Result<u32> {
    if name.len() >= libc::IFNAMSIZ {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    let mut ch = EthtoolChannels {
        cmd: ETHTOOL_GCHANNELS,
        ..Default::default()
    };
    let mut ifr = IfreqData {
        name: [0; libc::IFNAMSIZ],
        data: &mut ch as *mut EthtoolChannels as *mut libc::c_void,
        _pad: [0; 16],
    };
    for (d, s) in ifr.name.iter_mut().zip(name.bytes()) {
        *d = s as libc::c_char;
    }
    // SAFETY: plain datagram socket used only for the ioctl; closed below.
    let sock = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if sock < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `ifr` holds a NUL-terminated name and a pointer to `ch`, both
    // alive across the call; the kernel writes only `ch`.
    let rc = unsafe { libc::ioctl(sock, SIOCETHTOOL as _, &mut ifr as *mut IfreqData) };
    let err = io::Error::last_os_error();
    // SAFETY: `sock` is our own open descriptor.
    unsafe { libc::close(sock) };
    if rc < 0 {
        return Err(err);
    }
    Ok(ch.rx_count + ch.combined_count)
}

fn sysfs_rx_queues(name: &str) -> io::Result<u32> {
    let dir = std::fs::read_dir(format!("/sys/class/net/{name}/queues"))?;
    let n = dir
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("rx-"))
        .count();
    Ok(n as u32)
}

/// The CPUs this process may run on, in ascending order.
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: cpu_set_t is plain data; zeroed is a valid empty set, and
    // sched_getaffinity writes at most size_of::<cpu_set_t>() bytes into it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return vec![0];
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect()
    }
}

/// Pins the calling thread to `cpu`.
pub fn pin_current_thread(cpu: usize) -> io::Result<()> {
    // SAFETY: as in `allowed_cpus`; the set is fully initialised before use
    // and `pid 0` means the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_has_an_index_and_a_queue() {
        assert!(ifindex("lo").unwrap() > 0);
        assert!(rx_queue_count("lo").unwrap() >= 1);
        assert!(ifindex("petrel-no-such-if").is_err());
        assert!(rx_queue_count("petrel-no-such-if").is_err());
    }

    #[test]
    fn this_thread_can_run_somewhere() {
        let cpus = allowed_cpus();
        assert!(!cpus.is_empty());
        pin_current_thread(cpus[0]).unwrap();
    }
}

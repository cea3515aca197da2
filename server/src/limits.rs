//! Raising the open-file limit to what the connection limit needs, as
//! memcached does at start-up (its default soft limit of 1024 would stop
//! `-c 1024` short of its own limit).

use std::io;

/// Descriptors Petrel needs besides connections: listeners, UDP sockets and
/// their per-worker duplicates, pollers, wakers, the log file, stdio.
pub fn descriptors_needed(conn_limit: u32, threads: u32, sockets: usize) -> u64 {
    u64::from(conn_limit) + u64::from(threads) * (3 + sockets as u64) + sockets as u64 + 32
}

/// Makes the soft `RLIMIT_NOFILE` at least `needed` (raising the hard limit
/// too when privileged). Returns the soft limit now in force; an error only
/// if the limit could not be read.
pub fn raise_open_files(needed: u64) -> io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a valid pointer to an rlimit for the duration of the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if lim.rlim_cur >= needed {
        return Ok(lim.rlim_cur);
    }
    let want = libc::rlimit {
        rlim_cur: needed,
        rlim_max: lim.rlim_max.max(needed),
    };
    // SAFETY: as above; failure is handled below.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &want) } == 0 {
        return Ok(needed);
    }
    // Unprivileged: go as far as the hard limit allows.
    let capped = libc::rlimit {
        rlim_cur: lim.rlim_max.min(needed),
        rlim_max: lim.rlim_max,
    };
    // SAFETY: as above.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &capped) } == 0 {
        return Ok(capped.rlim_cur);
    }
    Ok(lim.rlim_cur)
}

/// memcached's `-r`: the soft core file size limit raised to the hard one
/// (both to unlimited when privileged). Returns the soft limit now in force.
pub fn raise_core_size() -> io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a valid pointer to an rlimit for the duration of the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_CORE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let unlimited = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: a valid pointer to an rlimit for the duration of the call.
    if unsafe { libc::setrlimit(libc::RLIMIT_CORE, &unlimited) } == 0 {
        return Ok(libc::RLIM_INFINITY);
    }
    lim.rlim_cur = lim.rlim_max;
    // SAFETY: as above.
    if unsafe { libc::setrlimit(libc::RLIMIT_CORE, &lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(lim.rlim_cur)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_reaches_what_is_needed_when_allowed() {
        let now = raise_open_files(0).unwrap();
        assert!(now > 0);
        // Asking for no more than the current limit changes nothing.
        assert_eq!(raise_open_files(now).unwrap(), now);
        assert!(descriptors_needed(1024, 4, 2) > 1024);
    }
}

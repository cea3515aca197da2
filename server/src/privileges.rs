//! Dropping root privileges after the sockets are bound (`-u USER`).
//!
//! Started as root with `-u`, Petrel switches to the user's uid and primary
//! gid (supplementary groups cleared) before serving, as memcached does.
//! Started as root without `-u`, memcached refuses to run; Petrel runs but
//! logs a warning (so it also runs in containers where root is the only
//! user). Started as another user, `-u` must name that same user or is
//! refused (a non-root process cannot switch users).

use std::ffi::{CStr, CString};
use std::io;

/// A user looked up in the password database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Login name.
    pub name: String,
    /// Numeric user id.
    pub uid: libc::uid_t,
    /// Primary group id.
    pub gid: libc::gid_t,
}

/// Looks `name` up with `getpwnam_r`; Ok(None) when there is no such user.
pub fn lookup(name: &str) -> io::Result<Option<User>> {
    let cname = CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in user name"))?;
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: passwd is plain data; all-zero is a valid (empty) value.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: all pointers are valid for the call; buf's length is passed.
    let rc = unsafe {
        libc::getpwnam_r(
            cname.as_ptr(),
            &mut pwd,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        )
    };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    if result.is_null() {
        return Ok(None);
    }
    // SAFETY: on success pw_name points to a NUL-terminated string in buf.
    let name = unsafe { CStr::from_ptr(pwd.pw_name) }
        .to_string_lossy()
        .into_owned();
    Ok(Some(User {
        name,
        uid: pwd.pw_uid,
        gid: pwd.pw_gid,
    }))
}

/// True when the effective user is root.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Switches the whole process to `user` (gid, groups, then uid), and checks
/// that root cannot be regained.
pub fn drop_to(user: &User) -> io::Result<()> {
    let gid = user.gid;
    // SAFETY: plain syscalls with valid arguments; results are checked.
    unsafe {
        if libc::setgroups(1, &gid) != 0 {
            return Err(io::Error::last_os_error());
        }
        if libc::setgid(user.gid) != 0 {
            return Err(io::Error::last_os_error());
        }
        if libc::setuid(user.uid) != 0 {
            return Err(io::Error::last_os_error());
        }
        if user.uid != 0 && libc::setuid(0) == 0 {
            return Err(io::Error::other(
                "could regain root after dropping privileges",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_exists_and_nonsense_does_not() {
        let root = lookup("root").unwrap().unwrap();
        assert_eq!((root.uid, root.gid), (0, 0));
        assert_eq!(lookup("no-such-user-petrel-x").unwrap(), None);
    }
}

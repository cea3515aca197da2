//! memcached's `-d` (run as a daemon) and `-P` (pidfile).
//!
//! `-d` forks before any thread exists. The parent waits on a pipe until
//! the child is serving (sockets bound, pidfile written, privileges
//! dropped), then exits 0; if the child fails first, the parent prints the
//! child's one-line error and exits with its status, so `petrel -d` reports
//! start-up errors like a foreground start. The child starts a new session
//! and, once serving, points stdin, stdout and stderr at /dev/null.

use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The write end of the pipe to the waiting parent (`-d` only).
static NOTIFY: Mutex<Option<std::fs::File>> = Mutex::new(None);

/// Forks; returns in the child only. The parent exits when the child says
/// it serves or fails. Must be called while the process has one thread.
pub fn daemonize() -> Result<(), String> {
    let mut fds = [0i32; 2];
    // SAFETY: pipe2 writes two descriptors into the two-element array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(format!(
            "petrel: -d: pipe: {}",
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: both descriptors were just created and are owned here only.
    let (rx, tx) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: the process has a single thread here (no locks held elsewhere).
    match unsafe { libc::fork() } {
        -1 => Err(format!(
            "petrel: -d: fork: {}",
            std::io::Error::last_os_error()
        )),
        0 => {
            drop(rx);
            // SAFETY: setsid has no preconditions; failing only means we
            // already lead a session.
            unsafe { libc::setsid() };
            *NOTIFY.lock().unwrap_or_else(|p| p.into_inner()) = Some(std::fs::File::from(tx));
            Ok(())
        }
        _ => {
            drop(tx);
            let mut msg = Vec::new();
            let _ = std::fs::File::from(rx).read_to_end(&mut msg);
            match msg.split_first() {
                Some((0, _)) => std::process::exit(0),
                Some((&code, text)) => {
                    eprintln!("{}", String::from_utf8_lossy(text));
                    std::process::exit(i32::from(code))
                }
                None => {
                    eprintln!("petrel: -d: the daemon exited before serving");
                    std::process::exit(71)
                }
            }
        }
    }
}

/// Tells the waiting parent that the daemon serves, and detaches stdio.
pub fn serving() {
    let Some(mut f) = NOTIFY.lock().unwrap_or_else(|p| p.into_inner()).take() else {
        return;
    };
    let _ = f.write_all(&[0]);
    drop(f);
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        use std::os::fd::AsRawFd;
        for fd in 0..=2 {
            // SAFETY: dup2 onto the standard descriptors of this process.
            unsafe { libc::dup2(null.as_raw_fd(), fd) };
        }
    }
}

/// Tells the waiting parent (if any) that start-up failed with `code`.
/// Returns whether there was a parent to tell.
pub fn failed(code: u8, message: &str) -> bool {
    let Some(mut f) = NOTIFY.lock().unwrap_or_else(|p| p.into_inner()).take() else {
        return false;
    };
    let mut buf = vec![code.max(1)];
    buf.extend_from_slice(message.as_bytes());
    f.write_all(&buf).is_ok()
}

/// A written pidfile, removed when dropped (at a clean exit).
pub struct PidFile(PathBuf);

impl PidFile {
    /// Writes this process's id and a newline to `path` (replacing it).
    pub fn write(path: &Path) -> std::io::Result<PidFile> {
        std::fs::write(path, format!("{}\n", std::process::id()))?;
        Ok(PidFile(path.to_path_buf()))
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_file(&self.0) {
            log::warn!("-P {}: cannot remove the pidfile: {e}", self.0.display());
        }
    }
}

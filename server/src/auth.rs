//! The credentials file behind `-Y`/`--auth-file` (memcached's ASCII
//! authentication) and `-S`/`--enable-sasl` (SASL PLAIN on binary
//! connections): one `user:password` per line, as memcached's authfile.
//!
//! The user name runs to the first `:`, the password from there to the end
//! of the line (a `\r` before the newline is not part of it). A line
//! without `:` (an empty line included) makes the file malformed, as in
//! memcached. The file is read at start and again on SIGHUP (memcached
//! reloads it on SIGHUP too); a reload that fails is logged and the
//! credentials already loaded stay in force. Refused attempts are logged
//! with the user name and the peer, never the password, at most one line a
//! second (with the count of the refusals not logged since).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{OnceLock, RwLock};

use petrel_core::engine::{constant_time_eq, Authenticator, Transport};
use petrel_core::klog::Client;

/// One `user:password` pair.
#[derive(Clone, PartialEq, Eq)]
struct Entry {
    user: Vec<u8>,
    password: Vec<u8>,
}

/// Never shows the password.
impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:<password>", String::from_utf8_lossy(&self.user))
    }
}

/// The loaded credentials; [`Authenticator`] for the engine.
pub struct Credentials {
    path: PathBuf,
    /// The flag that named the file, for messages.
    flag: &'static str,
    entries: RwLock<Vec<Entry>>,
    /// The second (since the epoch) a refusal was last logged.
    last_logged: AtomicU64,
    /// Refusals not logged since then.
    unlogged: AtomicU64,
}

/// Parses the text of a credentials file; the error names the line.
fn parse(text: &[u8]) -> Result<Vec<Entry>, String> {
    let mut out = Vec::new();
    if text.is_empty() {
        return Ok(out);
    }
    let body = text.strip_suffix(b"\n").unwrap_or(text);
    for (i, line) in body.split(|&b| b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return Err(format!(
                "line {}: malformed entry (should be 'user:password')",
                i + 1
            ));
        };
        let password = &line[colon + 1..];
        // memcached's password ends at the first \r (or NUL)
        let end = password
            .iter()
            .position(|&b| b == b'\r' || b == 0)
            .unwrap_or(password.len());
        out.push(Entry {
            user: line[..colon].to_vec(),
            password: password[..end].to_vec(),
        });
    }
    Ok(out)
}

/// Reads and parses the file at `path`; the error says why, without the
/// file's name (the caller adds it).
fn read(path: &Path) -> Result<Vec<Entry>, String> {
    let text = std::fs::read(path).map_err(|e| format!("cannot read: {e}"))?;
    parse(&text)
}

static LOADED: OnceLock<&'static Credentials> = OnceLock::new();

impl Credentials {
    /// Loads the file `flag` named. The error is one line naming the flag
    /// and the file.
    pub fn load(path: &Path, flag: &'static str) -> Result<Credentials, String> {
        let entries = read(path).map_err(|e| format!("petrel: {flag} {}: {e}", path.display()))?;
        if entries.is_empty() {
            log::warn!(
                "{flag} {}: no credentials in the file: every authentication attempt will fail",
                path.display()
            );
        }
        Ok(Credentials {
            path: path.to_path_buf(),
            flag,
            entries: RwLock::new(entries),
            last_logged: AtomicU64::new(0),
            unlogged: AtomicU64::new(0),
        })
    }

    /// Makes `self` the credentials [`reload`] rereads on SIGHUP.
    pub fn install(self) -> &'static Credentials {
        let c: &'static Credentials = Box::leak(Box::new(self));
        let _ = LOADED.set(c);
        c
    }

    /// Rereads the file; on error logs it and keeps the current entries.
    fn reread(&self) {
        match read(&self.path) {
            Ok(entries) => {
                let n = entries.len();
                *self.entries.write().unwrap_or_else(|e| e.into_inner()) = entries;
                log::info!(
                    "SIGHUP: {} {} reloaded ({n} credentials)",
                    self.flag,
                    self.path.display()
                );
            }
            Err(e) => log::error!(
                "SIGHUP: {} {}: {e}; the credentials loaded before stay in force",
                self.flag,
                self.path.display()
            ),
        }
    }

    /// How many pairs are loaded.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.read().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// Rereads the installed credentials file, if any (SIGHUP).
pub fn reload() {
    if let Some(c) = LOADED.get() {
        c.reread();
    }
}

/// A user name fit for a log line: printable ASCII, at most 64 bytes.
fn printable(user: &[u8]) -> String {
    let mut s: String = user
        .iter()
        .take(64)
        .map(|&b| {
            if b.is_ascii_graphic() {
                char::from(b)
            } else {
                '?'
            }
        })
        .collect();
    if user.len() > 64 {
        s.push_str("...");
    }
    s
}

fn peer(client: Option<Client>) -> String {
    match client {
        Some(c) if c.v4 => format!("{}.{}.{}.{}:{}", c.ip[0], c.ip[1], c.ip[2], c.ip[3], c.port),
        Some(c) => format!("[{}]:{}", std::net::Ipv6Addr::from(c.ip), c.port),
        None => "a local client".to_string(),
    }
}

impl Authenticator for Credentials {
    fn check(&self, user: &[u8], password: &[u8]) -> bool {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        // Every entry is compared, so the time does not say which matched.
        let mut ok = false;
        for e in entries.iter() {
            ok |= constant_time_eq(user, &e.user) & constant_time_eq(password, &e.password);
        }
        ok
    }

    fn refused(&self, user: &[u8], transport: Transport, client: Option<Client>) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let last = self.last_logged.load(Ordering::Relaxed);
        if last == now
            || self
                .last_logged
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            self.unlogged.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let more = self.unlogged.swap(0, Ordering::Relaxed);
        let more = if more > 0 {
            format!(" ({more} more refused since the last such line)")
        } else {
            String::new()
        };
        log::warn!(
            "authentication refused: user '{}' from {} over {:?}{more}",
            printable(user),
            peer(client),
            transport
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(text: &[u8]) -> Vec<(String, String)> {
        parse(text)
            .unwrap()
            .into_iter()
            .map(|e| {
                (
                    String::from_utf8(e.user).unwrap(),
                    String::from_utf8(e.password).unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn lines_are_user_colon_password() {
        assert_eq!(
            entries(b"alice:secret\nbob:a:b c\r\n"),
            vec![
                ("alice".into(), "secret".into()),
                ("bob".into(), "a:b c".into())
            ]
        );
        assert_eq!(
            entries(b"alice:secret"),
            vec![("alice".into(), "secret".into())]
        );
        assert_eq!(entries(b"alice:\n"), vec![("alice".into(), "".into())]);
        assert!(entries(b"").is_empty());
        assert_eq!(
            parse(b"alice:secret\n\nbob:x\n").unwrap_err(),
            "line 2: malformed entry (should be 'user:password')"
        );
        assert!(parse(b"nocolon\n").unwrap_err().starts_with("line 1:"));
    }

    #[test]
    fn check_matches_whole_pairs_and_reload_keeps_old_on_error() {
        let dir = std::env::temp_dir().join(format!("petrel-auth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("creds");
        std::fs::write(&file, "alice:secret\nbob:hunter2\n").unwrap();
        let c = Credentials::load(&file, "--auth-file").unwrap();
        assert!(c.check(b"alice", b"secret"));
        assert!(c.check(b"bob", b"hunter2"));
        assert!(!c.check(b"alice", b"hunter2"));
        assert!(!c.check(b"alice", b"secre"));
        assert!(!c.check(b"", b""));
        std::fs::write(&file, "broken\n").unwrap();
        c.reread();
        assert_eq!(c.len(), 2);
        assert!(c.check(b"alice", b"secret"));
        std::fs::write(&file, "carol:x\n").unwrap();
        c.reread();
        assert!(!c.check(b"alice", b"secret"));
        assert!(c.check(b"carol", b"x"));
        std::fs::remove_file(&file).unwrap();
        let e = Credentials::load(&file, "--auth-file").err().unwrap();
        assert!(e.starts_with("petrel: --auth-file "), "{e}");
        assert!(e.contains("cannot read"), "{e}");
        let _ = std::fs::remove_dir(&dir);
    }
}

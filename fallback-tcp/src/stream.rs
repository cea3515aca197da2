//! A connection's socket, TCP (plain or TLS) or Unix stream, and the
//! listeners that accept them. Connections are served the same whichever it
//! is: the protocol, the engine and the limits do not know.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use mio::event::Source;
use mio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use mio::{Interest, Registry, Token};

use crate::tls::{TlsContext, TlsStream};

/// An accepted connection.
pub(crate) enum Stream {
    /// Over TCP.
    Tcp(TcpStream),
    /// Over a Unix stream socket (`-s`).
    Unix(UnixStream),
    /// Over TLS on TCP (`-Z`).
    Tls(Box<TlsStream>),
}

impl Stream {
    /// The peer's address (TCP only: a Unix peer has none worth logging).
    pub(crate) fn peer_addr(&self) -> Option<SocketAddr> {
        match self {
            Stream::Tcp(s) => s.peer_addr().ok(),
            Stream::Unix(_) => None,
            Stream::Tls(s) => s.peer_addr(),
        }
    }

    /// True for a TLS connection whose handshake is past its deadline
    /// (counted as a handshake timeout; the caller closes it).
    pub(crate) fn handshake_expired(&mut self, now: std::time::Instant) -> bool {
        match self {
            Stream::Tls(s) => s.handshake_expired(now),
            _ => false,
        }
    }

    /// Closes the sending direction.
    pub(crate) fn shutdown_write(&self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.shutdown(std::net::Shutdown::Write),
            Stream::Unix(s) => s.shutdown(std::net::Shutdown::Write),
            Stream::Tls(s) => s.shutdown_write(),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.flush(),
            Stream::Unix(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

impl Source for Stream {
    fn register(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.register(r, t, i),
            Stream::Unix(s) => s.register(r, t, i),
            Stream::Tls(s) => s.register(r, t, i),
        }
    }

    fn reregister(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.reregister(r, t, i),
            Stream::Unix(s) => s.reregister(r, t, i),
            Stream::Tls(s) => s.reregister(r, t, i),
        }
    }

    fn deregister(&mut self, r: &Registry) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.deregister(r),
            Stream::Unix(s) => s.deregister(r),
            Stream::Tls(s) => s.deregister(r),
        }
    }
}

/// A listening socket.
pub(crate) enum Listener {
    /// A TCP listener.
    Tcp(TcpListener),
    /// A TCP listener whose connections speak TLS.
    Tls(TcpListener, Arc<TlsContext>),
    /// A Unix stream listener and its path.
    Unix(UnixListener, PathBuf),
}

impl Listener {
    /// Binds a Unix stream socket at `path` with permission bits `mode`
    /// (memcached's `-s` and `-a`). A socket file left at `path` by an
    /// earlier process is replaced, as memcached does; any other file there
    /// is an error.
    pub(crate) fn bind_unix(path: &Path, mode: u32) -> io::Result<Listener> {
        if let Ok(meta) = std::fs::symlink_metadata(path) {
            if !meta.file_type().is_socket() {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{} exists and is not a socket", path.display()),
                ));
            }
            std::fs::remove_file(path)?;
        }
        let l = UnixListener::bind(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o777))?;
        Ok(Listener::Unix(l, path.to_path_buf()))
    }

    /// Accepts one connection.
    pub(crate) fn accept(&self) -> io::Result<Stream> {
        match self {
            Listener::Tcp(l) => {
                let (s, _) = l.accept()?;
                let _ = s.set_nodelay(true);
                Ok(Stream::Tcp(s))
            }
            Listener::Tls(l, ctx) => {
                let (s, _) = l.accept()?;
                let _ = s.set_nodelay(true);
                Ok(Stream::Tls(Box::new(ctx.accept(s)?)))
            }
            Listener::Unix(l, _) => l.accept().map(|(s, _)| Stream::Unix(s)),
        }
    }

    /// The TCP address bound (None for a Unix socket).
    pub(crate) fn tcp_addr(&self) -> Option<io::Result<SocketAddr>> {
        match self {
            Listener::Tcp(l) | Listener::Tls(l, _) => Some(l.local_addr()),
            Listener::Unix(..) => None,
        }
    }
}

impl Drop for Listener {
    /// A Unix socket's file goes with its listener (at a clean exit).
    fn drop(&mut self) {
        if let Listener::Unix(_, path) = self {
            let _ = std::fs::remove_file(path);
        }
    }
}

impl Source for Listener {
    fn register(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
        match self {
            Listener::Tcp(l) | Listener::Tls(l, _) => l.register(r, t, i),
            Listener::Unix(l, _) => l.register(r, t, i),
        }
    }

    fn reregister(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
        match self {
            Listener::Tcp(l) | Listener::Tls(l, _) => l.reregister(r, t, i),
            Listener::Unix(l, _) => l.reregister(r, t, i),
        }
    }

    fn deregister(&mut self, r: &Registry) -> io::Result<()> {
        match self {
            Listener::Tcp(l) | Listener::Tls(l, _) => l.deregister(r),
            Listener::Unix(l, _) => l.deregister(r),
        }
    }
}

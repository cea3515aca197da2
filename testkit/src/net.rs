//! Free loopback ports, found by binding port 0.

use std::net::{TcpListener, TcpStream, UdpSocket};
use std::time::Duration;

/// A TCP connection to `127.0.0.1:port` with Nagle off and a 200 ms read timeout (callers
/// loop on reads until their own deadline).
pub fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("set_read_timeout");
    s.set_nodelay(true).expect("nodelay");
    s
}

/// A TCP port free on 127.0.0.1 right now. Another process may take it before the caller binds
/// it: starting a server on it must be retried with a new port when that happens
/// ([`crate::server::ServerBuilder::start`] does).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local_addr").port()
}

/// A UDP port free on `addr` (an address of this host, e.g. one end of a test's veth pair)
/// right now. The same race as [`free_port`] applies.
pub fn free_udp_port(addr: &str) -> u16 {
    let s = UdpSocket::bind((addr, 0)).unwrap_or_else(|e| panic!("bind udp {addr}:0: {e}"));
    s.local_addr().expect("local_addr").port()
}

/// A port number free for both TCP and UDP on 127.0.0.1 right now (`memcaslap -U` needs both
/// on one number). The same race as [`free_port`] applies.
pub fn free_port_pair() -> u16 {
    for _ in 0..100 {
        let tcp = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = tcp.local_addr().expect("local_addr").port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no port free for both TCP and UDP");
}

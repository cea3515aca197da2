//! [`Service`] for the core engine: sessions, `process`, expiry, and the
//! connection figures memcached's `stats` prints (`curr_connections`,
//! `total_connections`, `rejected_connections`, `conn_yields`, `bytes_read`,
//! `bytes_written`), kept in the engine's own [`EngineStats`].
//!
//! [`EngineStats`]: petrel_core::engine::EngineStats

use petrel_core::engine::{self, Engine};
use petrel_core::histogram::ClassCounts;

use crate::service::{ConnectionEvent, Progress, Service, Time, Transport};

impl<'a> Service for Engine<'a> {
    type Session = engine::Session;

    fn session(&self, transport: Transport) -> engine::Session {
        engine::Session::new(transport)
    }

    fn process(
        &self,
        session: &mut engine::Session,
        input: &[u8],
        out: &mut [u8],
        now: Time,
    ) -> Progress {
        Engine::process(self, session, input, out, now)
    }

    fn expire(&self, now: Time, budget: usize) -> usize {
        Engine::expire(self, now, budget)
    }

    fn take_completed(&self, session: &mut engine::Session) -> ClassCounts {
        session.take_completed()
    }

    fn set_client(&self, session: &mut engine::Session, peer: std::net::SocketAddr) {
        let mut ip = [0u8; 16];
        let v4 = match peer.ip() {
            std::net::IpAddr::V4(a) => {
                ip[..4].copy_from_slice(&a.octets());
                true
            }
            std::net::IpAddr::V6(a) => {
                ip = a.octets();
                false
            }
        };
        session.set_client(petrel_core::klog::Client {
            ip,
            v4,
            port: peer.port(),
        });
    }

    fn connection_event(&self, event: ConnectionEvent) {
        let s = self.stats();
        match event {
            ConnectionEvent::Opened => {
                s.curr_connections.incr();
                s.total_connections.incr();
            }
            ConnectionEvent::Closed => s.curr_connections.sub(1),
            ConnectionEvent::Rejected => s.rejected_connections.incr(),
            ConnectionEvent::Yielded => s.conn_yields.incr(),
            ConnectionEvent::BytesRead(n) => s.bytes_read.add(n),
            ConnectionEvent::BytesWritten(n) => s.bytes_written.add(n),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::Status;
    use petrel_core::engine::EngineConfig;
    use petrel_core::store::StoreConfig;

    fn engine() -> Engine<'static> {
        let cfg = EngineConfig {
            store: StoreConfig {
                item_memory_bytes: 8 << 20,
                ..StoreConfig::default()
            },
            ..EngineConfig::default()
        };
        let bytes = Engine::required_bytes(&cfg).unwrap();
        let arena: &'static mut [u8] = Box::leak(vec![0u8; bytes].into_boxed_slice());
        Engine::new(&cfg, arena).unwrap()
    }

    #[test]
    fn engine_answers_through_the_service_seam_and_counts_connections() {
        let e = engine();
        let mut s = Service::session(&e, Transport::Tcp);
        let mut out = [0u8; 4096];
        let input = b"set a 0 0 1\r\nx\r\nget a\r\nget b";
        let p = Service::process(&e, &mut s, input, &mut out, 1_000_000);
        assert_eq!(p.status, Status::NeedInput);
        assert_eq!(p.consumed, input.len() - 5);
        assert_eq!(&out[..p.written], b"STORED\r\nVALUE a 0 1\r\nx\r\nEND\r\n");
        e.connection_event(ConnectionEvent::Opened);
        e.connection_event(ConnectionEvent::Opened);
        e.connection_event(ConnectionEvent::Closed);
        e.connection_event(ConnectionEvent::BytesRead(7));
        assert_eq!(e.stats().curr_connections.get(), 1);
        assert_eq!(e.stats().total_connections.get(), 2);
        assert_eq!(e.stats().bytes_read.get(), 7);
    }

    #[test]
    fn latency_is_recorded_per_class_over_tcp_and_udp() {
        use petrel_core::histogram::CommandClass;
        use std::io::{Read, Write};
        let e: &'static Engine<'static> = Box::leak(Box::new(engine()));
        let lo: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
        let mut c = crate::FrontendConfig::new(vec![lo], vec![lo], 1 << 20);
        c.threads = 1;
        let f = crate::Frontend::bind(c).unwrap();
        let (tcp, udp) = f.local_addrs().unwrap();
        let stats = f.stats();
        let h = f.shutdown_handle();
        let t = std::thread::spawn(move || f.run(e, None));
        let mut s = std::net::TcpStream::connect(tcp[0]).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        s.write_all(b"set a 0 0 1\r\nx\r\nget a\r\nget b\r\nmn\r\n")
            .unwrap();
        let want = b"STORED\r\nVALUE a 0 1\r\nx\r\nEND\r\nEND\r\nMN\r\n";
        let mut got = vec![0u8; want.len()];
        s.read_exact(&mut got).unwrap();
        assert_eq!(&got[..], &want[..]);
        let u = std::net::UdpSocket::bind(lo).unwrap();
        u.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        u.send_to(b"\x00\x01\x00\x00\x00\x01\x00\x00get a\r\n", udp[0])
            .unwrap();
        let mut buf = [0u8; 1500];
        let n = u.recv(&mut buf).unwrap();
        assert!(buf[8..n].starts_with(b"VALUE a"));
        // recorded right after the reply was handed to the socket
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while stats.udp_latency().class(CommandClass::Get).count() < 1 {
            assert!(std::time::Instant::now() < deadline);
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let tl = stats.tcp_latency();
        assert_eq!(tl.class(CommandClass::Get).count(), 2);
        assert_eq!(tl.class(CommandClass::Set).count(), 1);
        assert_eq!(tl.class(CommandClass::MetaOther).count(), 1);
        assert_eq!(tl.class(CommandClass::Delete).count(), 0);
        let sum = tl.class(CommandClass::Get).summary();
        assert!(sum.max > 0 && sum.max < 5_000_000_000, "{sum:?}");
        h.shutdown();
        t.join().unwrap().unwrap();
    }
}

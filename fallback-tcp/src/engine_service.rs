//! [`Service`] for the core engine: sessions, `process`, expiry, and the
//! connection figures memcached's `stats` prints (`curr_connections`,
//! `total_connections`, `rejected_connections`, `conn_yields`, `bytes_read`,
//! `bytes_written`), kept in the engine's own [`EngineStats`].
//!
//! [`EngineStats`]: petrel_core::engine::EngineStats

use petrel_core::engine::{self, Engine};

use crate::service::{ConnectionEvent, Progress, Service, Status, Time, Transport};

impl<'a> Service for Engine<'a> {
    type Session = engine::Session;

    fn session(&self, transport: Transport) -> engine::Session {
        engine::Session::new(match transport {
            Transport::Tcp => engine::Transport::Tcp,
            Transport::Udp => engine::Transport::Udp,
        })
    }

    fn process(
        &self,
        session: &mut engine::Session,
        input: &[u8],
        out: &mut [u8],
        now: Time,
    ) -> Progress {
        let p = Engine::process(self, session, input, out, now);
        Progress {
            consumed: p.consumed,
            written: p.written,
            status: match p.status {
                engine::Status::NeedInput => Status::NeedInput,
                engine::Status::OutputFull => Status::OutputFull,
                engine::Status::Close => Status::Close,
            },
        }
    }

    fn expire(&self, now: Time, budget: usize) -> usize {
        Engine::expire(self, now, budget)
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
}

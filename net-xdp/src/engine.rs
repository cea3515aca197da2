//! The core engine as the workers' [`UdpService`].

use crate::service::{Progress, Time, UdpService};
use petrel_core::engine::{Engine, Session, Transport};
use petrel_core::histogram::ClassCounts;

impl UdpService for Engine<'_> {
    type Session = Session;

    fn udp_session(&self) -> Session {
        Session::new(Transport::Udp)
    }

    fn take_completed(&self, session: &mut Session) -> ClassCounts {
        session.take_completed()
    }

    /// The engine's `bytes_read` / `bytes_written` (front ends keep those).
    fn count_bytes(&self, read: u64, written: u64) {
        let stats = self.stats();
        if read > 0 {
            stats.bytes_read.add(read);
        }
        if written > 0 {
            stats.bytes_written.add(written);
        }
    }

    /// Runs [`Engine::process`].
    fn process_udp(
        &self,
        session: &mut Session,
        input: &[u8],
        out: &mut [u8],
        now: Time,
    ) -> Progress {
        self.process(session, input, out, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use petrel_core::engine::EngineConfig;
    use petrel_core::Status;

    fn engine() -> &'static Engine<'static> {
        let cfg = EngineConfig::default();
        let bytes = Engine::required_bytes(&cfg).unwrap();
        let arena = Box::leak(vec![0u8; bytes].into_boxed_slice());
        Box::leak(Box::new(Engine::new(&cfg, arena).unwrap()))
    }

    #[test]
    fn sets_and_gets_through_the_seam_and_resumes_across_areas() {
        let e = engine();
        let mut s = e.udp_session();
        let mut out = [0u8; 1392];
        let mut req = b"set k 1 0 3000\r\n".to_vec();
        req.extend(std::iter::repeat_n(b'x', 3000));
        req.extend_from_slice(b"\r\n");
        let p = e.process_udp(&mut s, &req, &mut out, 100);
        assert_eq!(
            (p.status, &out[..p.written]),
            (Status::NeedInput, &b"STORED\r\n"[..])
        );
        assert_eq!(p.consumed, req.len());

        let mut s = e.udp_session();
        let input = b"get k\r\n";
        let mut reply = Vec::new();
        let mut consumed = 0;
        for _ in 0..10 {
            let p = e.process_udp(&mut s, &input[consumed..], &mut out, 100);
            reply.extend_from_slice(&out[..p.written]);
            consumed += p.consumed;
            if p.status != Status::OutputFull {
                break;
            }
        }
        let mut expect = b"VALUE k 1 3000\r\n".to_vec();
        expect.extend(std::iter::repeat_n(b'x', 3000));
        expect.extend_from_slice(b"\r\nEND\r\n");
        assert_eq!(reply, expect);
        assert_eq!(consumed, input.len());
        // The worker counts the bytes (count_bytes), not process_udp.
        assert_eq!(e.stats().bytes_read.get(), 0);
        assert_eq!(e.stats().bytes_written.get(), 0);
        e.count_bytes(15, 13);
        e.count_bytes(0, 0);
        assert_eq!(e.stats().bytes_read.get(), 15);
        assert_eq!(e.stats().bytes_written.get(), 13);
    }
}

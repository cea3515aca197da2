//! `stats` prints the host's CPU time as memcached 1.6.18 does: `rusage_user`
//! and `rusage_system` right after `pointer_size`, as `%ld.%06ld` seconds.

use petrel_core::engine::{Engine, EngineConfig, ProcessUsage, Session, Transport};

struct Fixed(u64, u64);

impl ProcessUsage for Fixed {
    fn cpu_time_us(&self) -> (u64, u64) {
        (self.0, self.1)
    }
}

fn stats(engine: &Engine<'_>) -> String {
    let mut out = vec![0u8; 64 * 1024];
    let mut s = Session::new(Transport::Tcp);
    let p = engine.process(&mut s, b"stats\r\n", &mut out, 1_700_000_000);
    String::from_utf8(out[..p.written].to_vec()).unwrap()
}

#[test]
fn rusage_lines_follow_pointer_size_in_memcached_format() {
    let usage = Fixed(12_003_456, 7);
    let cfg = EngineConfig::default();
    let mut arena = vec![0u8; Engine::required_bytes(&cfg).unwrap()];
    let mut engine = Engine::new(&cfg, &mut arena).unwrap();
    let without = stats(&engine);
    assert!(!without.contains("rusage_"), "no source, no lines");
    engine.set_process_usage(&usage);
    let text = stats(&engine);
    let names: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("STAT "))
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    let at = names.iter().position(|n| *n == "pointer_size").unwrap();
    assert_eq!(names[at + 1..at + 3], ["rusage_user", "rusage_system"]);
    assert!(text.contains("STAT rusage_user 12.003456\r\n"), "{text}");
    assert!(text.contains("STAT rusage_system 0.000007\r\n"), "{text}");
}

#[test]
fn rusage_lines_resume_across_small_output_buffers() {
    let usage = Fixed(1, 2_000_000);
    let cfg = EngineConfig::default();
    let mut arena = vec![0u8; Engine::required_bytes(&cfg).unwrap()];
    let mut engine = Engine::new(&cfg, &mut arena).unwrap();
    engine.set_process_usage(&usage);
    let whole = stats(&engine);
    // the same reply through a 64-byte output area, call after call
    let mut s = Session::new(Transport::Tcp);
    let mut out = [0u8; 64];
    let mut got = Vec::new();
    for _ in 0..10_000 {
        let p = engine.process(&mut s, b"stats\r\n", &mut out, 1_700_000_000);
        got.extend_from_slice(&out[..p.written]);
        if p.consumed > 0 {
            break;
        }
    }
    // the same lines, but for the count of resumed replies that this very
    // reply moved
    let strip = |t: &str| -> String {
        t.lines()
            .filter(|l| !l.starts_with("STAT petrel_replies_resumed "))
            .collect()
    };
    assert_eq!(strip(&String::from_utf8(got).unwrap()), strip(&whole));
    assert!(whole.contains("STAT rusage_system 2.000000\r\n"));
}

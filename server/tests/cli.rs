//! Smoke tests of the real binary: exit statuses, serving, clean shutdown.
//! (The full end-to-end suite lives in the `tests/` crate.)

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_petrel");

/// A port free for both TCP and UDP on 127.0.0.1 at the time of the call.
fn free_port() -> u16 {
    loop {
        let t = TcpListener::bind("127.0.0.1:0").unwrap();
        let p = t.local_addr().unwrap().port();
        if UdpSocket::bind(("127.0.0.1", p)).is_ok() {
            return p;
        }
    }
}

#[test]
fn usage_errors_exit_64_with_one_line() {
    let dir = std::env::temp_dir().join(format!("petrel-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "port = 1\nno-such-key = 2\n").unwrap();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec!["--port".into(), "x".into()], "--port"),
        (vec!["--no-such-flag".into()], "--no-such-flag"),
        (vec!["-I".into(), "1q".into()], "--max-item-size"),
        (
            vec!["-m".into(), "1".into(), "-I".into(), "1m".into()],
            "--max-item-size",
        ),
        (
            vec!["--config".into(), bad.display().to_string()],
            "no-such-key",
        ),
    ];
    for (args, needle) in cases {
        let out = Command::new(BIN).args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn serves_then_stops_cleanly_on_sigterm() {
    let port = free_port();
    let mut child = Command::new(BIN)
        .args([
            "-p",
            &port.to_string(),
            "-U",
            &port.to_string(),
            "-t",
            "2",
            "-m",
            "16",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut s = loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => break s,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("server did not start: {e}"),
        }
    };
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"set a 0 0 1\r\nx\r\nget a\r\n").unwrap();
    let want = b"STORED\r\nVALUE a 0 1\r\nx\r\nEND\r\n";
    let mut got = vec![0; want.len()];
    s.read_exact(&mut got).unwrap();
    assert_eq!(got, want);

    let u = UdpSocket::bind("127.0.0.1:0").unwrap();
    u.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    u.send_to(
        b"\x00\x07\x00\x00\x00\x01\x00\x00get a\r\n",
        ("127.0.0.1", port),
    )
    .unwrap();
    let mut buf = [0u8; 1500];
    let n = u.recv(&mut buf).unwrap();
    assert_eq!(
        &buf[..n],
        b"\x00\x07\x00\x00\x00\x01\x00\x00VALUE a 0 1\r\nx\r\nEND\r\n"
    );

    // SAFETY: sending a signal to our own child process.
    assert_eq!(
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) },
        0
    );
    let started = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0));
    let mut out = Vec::new();
    child.stdout.take().unwrap().read_to_end(&mut out).unwrap();
    assert!(out.is_empty(), "nothing on stdout");
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    assert!(rest.is_empty());
}

//! Smoke tests of the real binary: exit statuses, serving, clean shutdown.
//! (The full end-to-end suite lives in the `tests/` crate.)

use petrel_testkit::net::free_port_pair;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_petrel");

/// A port free for both TCP and UDP on 127.0.0.1 at the time of the call.

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

/// How long a server may take to start (a loaded 2-core machine).
const START_WAIT: Duration = Duration::from_secs(30);

/// A server started on a free port, once its start-up line (logged after
/// every socket is bound) names its own pid and the port: only then is the
/// port known to be served by this child. Connecting as soon as something
/// accepts on the port is not enough: the port is free only when
/// `free_port_pair` looks, so another process may take it (for UDP, any
/// client's ephemeral port), and then the child exits (71) and the
/// connection either reaches a listener that is not ours or sits in the
/// backlog of one that is closing (reset). A child that exits because its
/// port was taken is retried on a new port (bounded).
struct Started {
    child: Child,
    port: u16,
    /// Every stderr line of the child, until it closes stderr.
    stderr: Receiver<String>,
    seen: Vec<String>,
}

fn start_server(extra: &[&str]) -> Started {
    let mut failures = Vec::new();
    for _attempt in 0..10 {
        let port = free_port_pair();
        let p = port.to_string();
        let mut child = Command::new(BIN)
            .args(["-p", &p, "-U", &p])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = mpsc::channel();
        let err = BufReader::new(child.stderr.take().unwrap());
        std::thread::spawn(move || {
            for line in err.lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let ready = format!(" pid {} tcp=127.0.0.1:{port} ", child.id());
        let deadline = Instant::now() + START_WAIT;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    let up = line.contains(&ready);
                    seen.push(line);
                    if up {
                        return Started {
                            child,
                            port,
                            stderr: rx,
                            seen,
                        };
                    }
                }
                Err(RecvTimeoutError::Disconnected) => {
                    // stderr closed: the child is gone.
                    let status = child.wait().unwrap();
                    let text = seen.join("\n");
                    assert!(
                        text.contains("Address already in use"),
                        "server exited ({status}) before serving:\n{text}"
                    );
                    failures.push(text);
                    break;
                }
                Err(RecvTimeoutError::Timeout) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "server did not log its start-up line in {START_WAIT:?}:\n{}",
                        seen.join("\n")
                    );
                }
            }
        }
    }
    panic!("no free port in 10 tries:\n{}", failures.join("\n"));
}

#[test]
fn serves_then_stops_cleanly_on_sigterm() {
    let Started {
        mut child,
        port,
        stderr,
        mut seen,
    } = start_server(&["-t", "2", "-m", "16"]);
    // The listener is bound (and ours): the first connect succeeds.
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
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
    // The rest of stderr (the reader ends at the child's exit), for the message.
    let deadline = Instant::now() + Duration::from_secs(10);
    while let Ok(line) = stderr.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        seen.push(line);
    }
    assert_eq!(status.code(), Some(0), "stderr:\n{}", seen.join("\n"));
    let mut out = Vec::new();
    child.stdout.take().unwrap().read_to_end(&mut out).unwrap();
    assert!(out.is_empty(), "nothing on stdout");
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    assert!(rest.is_empty());
}

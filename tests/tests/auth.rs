//! Authentication end to end, against memcached 1.6.18 started by the test with the same
//! credentials file: ASCII authentication (`-Y FILE`): the same sequences of commands before
//! authentication, good and bad credentials, malformed `set`s, `noreply`, meta commands and
//! binary bytes give the same bytes from both, request by request; the counters `auth_cmds` and
//! `auth_errors` agree; the start-up rules (no UDP, no binary protocol) are memcached's;
//! SIGHUP rereads the file; refused attempts are logged without the password.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use petrel_tests::escape::escape;
use petrel_tests::server::{run_to_exit, stats_pid, Kind, Server, Target};
use petrel_tests::skip::{not_applicable, require_program};
use petrel_tests::tcp::Conn;
use petrel_tests::wait::wait_until;

/// Credentials every server of this file is started with; the probe pair tells readiness.
const CREDENTIALS: &str = "alice:secret\nbob:hunter2\nprobe:probe-pw\n";
const PROBE: &[u8] = b"set probe 0 0 14\r\nprobe probe-pw\r\n";
const TIMEOUT: Duration = Duration::from_secs(10);

/// Authenticates with the probe pair, then `stats` gives the pid.
fn auth_probe(mut stream: TcpStream) -> Option<u32> {
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .ok()?;
    stream.write_all(PROBE).ok()?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 256];
    let deadline = Instant::now() + Duration::from_secs(2);
    while !buf.ends_with(b"\r\n") {
        if Instant::now() > deadline {
            return None;
        }
        match stream.read(&mut chunk) {
            Ok(0) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(_) => {}
        }
    }
    if buf != b"STORED\r\n" {
        return None;
    }
    stats_pid(stream)
}

/// A credentials file readable by memcached's `-u memcache`, in its own directory.
struct CredFile {
    dir: PathBuf,
    path: PathBuf,
}

impl CredFile {
    fn new(text: &str) -> CredFile {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "petrel-auth-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        set_mode(&dir, 0o755);
        let path = dir.join("credentials");
        let f = CredFile { dir, path };
        f.write(text);
        f
    }
    fn write(&self, text: &str) {
        let tmp = self.dir.join("next");
        std::fs::write(&tmp, text).unwrap();
        set_mode(&tmp, 0o644);
        std::fs::rename(&tmp, &self.path).unwrap();
    }
    fn arg(&self) -> &str {
        self.path.to_str().unwrap()
    }
}

impl Drop for CredFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn set_mode(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn start_ascii(target: &Target, creds: &CredFile) -> Server {
    target
        .builder()
        .no_udp()
        .arg("-Y")
        .arg(creds.arg())
        .ready_probe(auth_probe)
        .start()
}

/// memcached and the server under test, both with `-Y`; `None` (a visible skip) without
/// memcached.
fn pair(creds: &CredFile) -> Option<(Target, [Server; 2])> {
    let target = Target::from_env()?;
    if !require_program(
        "memcached",
        "-h",
        "Debian package memcached; scripts/setup installs it",
    ) {
        return None;
    }
    let reference = start_ascii(&Target::memcached(), creds);
    let candidate = start_ascii(&target, creds);
    Some((target, [reference, candidate]))
}

/// What the client waits for after sending a step.
#[derive(Clone, Copy)]
enum Until {
    /// One reply line.
    Line,
    /// A reply ending with `END\r\n` (get, stats).
    End,
    /// Nothing yet (the request is incomplete).
    Nothing,
    /// The server closes the connection.
    Eof,
}

/// Runs `steps` on a fresh connection and returns every reply, step by step.
fn run(server: &Server, steps: &[(&[u8], Until)]) -> Vec<Vec<u8>> {
    let mut c = Conn::connect(server.tcp_addr());
    let mut out = Vec::new();
    for (bytes, until) in steps {
        c.send(bytes);
        out.push(match until {
            Until::Line => c.read_until_suffix(b"\r\n", TIMEOUT),
            Until::End => c.read_until_suffix(b"END\r\n", TIMEOUT),
            Until::Nothing => Vec::new(),
            Until::Eof => {
                let mut got = c
                    .read_to_eof(TIMEOUT)
                    .unwrap_or_else(|| panic!("{:?}: connection still open", server.kind));
                got.extend_from_slice(b"<EOF>");
                got
            }
        });
    }
    out
}

/// Requests sent one at a time, each with what to wait for.
type Steps = Vec<(&'static [u8], Until)>;

/// The sequences both servers must answer alike, each on its own connection.
fn sequences() -> Vec<(&'static str, Steps)> {
    use Until::*;
    let unauth_then_in: Vec<(&[u8], Until)> = vec![
        (b"get foo\r\n", Line),
        (b"gets foo bar\r\n", Line),
        (b"version\r\n", Line),
        (b"stats\r\n", Line),
        (b"quit\r\n", Line),
        (b"bogus\r\n", Line),
        (b"delete foo\r\n", Line),
        (b"incr n 1\r\n", Line),
        (b"flush_all\r\n", Line),
        (b"set foo 0 0\r\n", Line),
        (b"set foo 0 0 abc\r\n", Line),
        (b"set foo 0 0 -1\r\n", Line),
        (b"add foo 0 0 12\r\n", Line),
        (b"setx foo 0 0 12\r\n", Line),
        (b"SET foo 0 0 12\r\n", Line),
        (b"cas foo 0 0 12 1\r\n", Line),
        (b" \r\n", Line),
        (b"\x80\x00\x00\x00\r\n", Line),
        (b"set x 0 0 12\r\nalice secret\r\n", Line),
        (b"get x\r\n", End),
        (b"mn\r\n", Line),
    ];
    let meta: Vec<(&[u8], Until)> = vec![
        (b"mg foo v\r\n", Line),
        (b"ms foo 12\r\n", Line),
        (b"alice secret\r\n", Line),
        (b"md foo\r\n", Line),
        (b"ma foo\r\n", Line),
        (b"mn\r\n", Line),
        (b"me foo\r\n", Line),
        (b"set k 0 0 11\r\nbob hunter2\r\n", Line),
        (b"mn\r\n", Line),
        (b"ms foo 2\r\nhi\r\n", Line),
        (b"mg foo\r\n", Line),
        (b" \r\n", Line),
    ];
    let bad: Vec<(&[u8], Until)> = vec![
        (b"set x 0 0 12\r\nalice secreT\r\n", Line),
        (b"set x 0 0 12\r\nAlice secret\r\n", Line),
        (b"set x 0 0 12\r\nsecret alice\r\n", Line),
        (b"set x 0 0 10\r\nbob hunter\r\n", Line),
        (b"set x 0 0 12\r\nalice:secret\r\n", Line),
        (b"set x 0 0 11\r\nalicesecret\r\n", Line),
        (b"set x 0 0 0\r\n\r\n", Line),
        (b"set x 0 0 1\r\n \r\n", Line),
        (b"set x 0 0 12\r\nalice secretXX", Line),
        (b"set x 0 0 12\r\nalice secret\n\n", Line),
        (b"set x 0 0 13\r\nalice\0 secret\r\n", Line),
        (b"set x 0 0 13\r\nalice secret\0\r\n", Line),
        (b"get x\r\n", End),
    ];
    let forms: Vec<(&[u8], Until)> = vec![
        (b"set x 0 0 15\r\n alice  secret \r\n", Line),
        (b"get x\r\n", End),
    ];
    let extra_tokens: Vec<(&[u8], Until)> = vec![
        (b" set  x 0 0 18 a b c\r\nalice secret extra\r\n", Line),
        (b"get x\r\n", End),
    ];
    let bare_newline: Vec<(&[u8], Until)> =
        vec![(b"set x 0 0 11\nbob hunter2\r\n", Line), (b"mn\r\n", Line)];
    let noreply: Vec<(&[u8], Until)> = vec![
        (b"set x 0 0 12 noreply\r\nalice secret\r\n", Line),
        (b"mn\r\n", Line),
    ];
    let split: Vec<(&[u8], Until)> = vec![
        (b"set x 0 0 12\r", Nothing),
        (b"\nali", Nothing),
        (b"ce secr", Nothing),
        (b"et\r\n", Line),
        (b"mn\r\n", Line),
    ];
    let again: Vec<(&[u8], Until)> = vec![
        (b"set x 0 0 12\r\nalice secret\r\n", Line),
        (b"set x 0 0 12\r\nalice secret\r\n", Line),
        (b"get x\r\n", End),
        (b"set x 0 0 12\r\nalice secreT\r\n", Line),
        (b"get x\r\n", End),
        (b"delete x\r\n", Line),
        (b"quit\r\n", Eof),
    ];
    let failures_then_good: Vec<(&[u8], Until)> = vec![
        (b"set x 0 0 12\r\nalice secreT\r\n", Line),
        (b"get x\r\n", Line),
        (b"set x 0 0 11\r\nbob hunter2\r\n", Line),
        (b"version\r\n", Line),
    ];
    let long_line: Vec<(&[u8], Until)> = vec![(&[b'a'; 3000], Eof)];
    let quit_after: Vec<(&[u8], Until)> = vec![(b"quit\r\n", Line), (b"get x\r\n", Line)];
    vec![
        ("commands before authentication", unauth_then_in),
        ("meta commands", meta),
        ("bad credentials and malformed sets", bad),
        ("spaces around the tokens", forms),
        ("extra tokens", extra_tokens),
        ("a bare newline after the set line", bare_newline),
        ("noreply", noreply),
        ("a request split across reads", split),
        ("authenticated twice, then an ordinary set", again),
        ("failures, then good credentials", failures_then_good),
        ("a line longer than 2048 bytes", long_line),
        ("quit is refused too", quit_after),
    ]
}

#[test]
fn ascii_auth_answers_as_memcached_byte_for_byte() {
    let creds = CredFile::new(CREDENTIALS);
    let Some((_, [reference, candidate])) = pair(&creds) else {
        return;
    };
    let mut failures = Vec::new();
    for (name, steps) in sequences() {
        let want = run(&reference, &steps);
        let got = run(&candidate, &steps);
        for (i, ((step, _), (w, g))) in steps.iter().zip(want.iter().zip(&got)).enumerate() {
            if w != g {
                failures.push(format!(
                    "{name}, step {i} {:?}:\n  memcached: {:?}\n  candidate: {:?}",
                    escape(step, 80),
                    escape(w, 300),
                    escape(g, 300)
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `stats` value `name` read on an authenticated connection.
fn stat(server: &Server, name: &str) -> u64 {
    let mut c = Conn::connect(server.tcp_addr());
    c.send(PROBE);
    assert_eq!(c.read_until_suffix(b"\r\n", TIMEOUT), b"STORED\r\n");
    c.send(b"stats\r\n");
    let text = String::from_utf8(c.read_until_suffix(b"END\r\n", TIMEOUT)).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("STAT {name} ")))
        .unwrap_or_else(|| panic!("{:?}: no STAT {name} in\n{text}", server.kind))
        .parse()
        .unwrap()
}

#[test]
fn auth_counters_and_settings_match_memcached() {
    let creds = CredFile::new(CREDENTIALS);
    let Some((_, [reference, candidate])) = pair(&creds) else {
        return;
    };
    let steps: Vec<(&[u8], Until)> = vec![
        (b"get x\r\n", Until::Line),
        (b"set x 0 0 12\r\nalice secreT\r\n", Until::Line),
        (b"set x 0 0 11\r\nalicesecret\r\n", Until::Line),
        (b"set x 0 0 12\r\nalice secretXX", Until::Line),
        (b"set x 0 0 11\r\nbob hunter3\r\n", Until::Line),
        (b"set x 0 0 12\r\nalice secret\r\n", Until::Line),
    ];
    for s in [&reference, &candidate] {
        run(s, &steps);
    }
    for name in ["auth_cmds", "auth_errors"] {
        assert_eq!(
            stat(&candidate, name),
            stat(&reference, name),
            "STAT {name}"
        );
    }
    // (each `stat` call and the readiness probe authenticate once: the same on both)
    let settings = |s: &Server| -> Vec<String> {
        let mut c = Conn::connect(s.tcp_addr());
        c.send(PROBE);
        c.read_until_suffix(b"\r\n", TIMEOUT);
        c.send(b"stats settings\r\n");
        String::from_utf8(c.read_until_suffix(b"END\r\n", TIMEOUT))
            .unwrap()
            .lines()
            .filter(|l| l.starts_with("STAT auth_"))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(settings(&candidate), settings(&reference));
}

/// memcached 1.6.18 reuses one reply object for the requests it refuses before authentication,
/// so of several pipelined in one read only the last reply arrives. Petrel answers each (one
/// reply per request, what a pipelining client counts on): a difference listed in the README.
#[test]
fn pipelined_refusals_get_one_reply_each() {
    let Some(target) = Target::from_env() else {
        return;
    };
    if target.kind == Kind::Memcached {
        return not_applicable("Petrel's answer to pipelined refusals differs from memcached's");
    }
    let creds = CredFile::new(CREDENTIALS);
    let s = start_ascii(&target, &creds);
    let mut c = Conn::connect(s.tcp_addr());
    c.send(
        b"get a\r\nmn\r\nset x 0 0 12\r\nalice secreT\r\nset x 0 0 12\r\nalice secret\r\nmn\r\n",
    );
    let got = c.read_until_suffix(b"MN\r\n", TIMEOUT);
    assert_eq!(
        escape(&got, 500),
        escape(
            b"CLIENT_ERROR unauthenticated\r\nCLIENT_ERROR unauthenticated\r\n\
              CLIENT_ERROR authentication failure\r\nSTORED\r\nMN\r\n",
            500
        )
    );
}

#[test]
fn refusals_are_logged_without_the_password() {
    let Some(target) = Target::from_env() else {
        return;
    };
    if target.kind == Kind::Memcached {
        return not_applicable("Petrel's log");
    }
    let creds = CredFile::new(CREDENTIALS);
    let s = start_ascii(&target, &creds);
    let mut c = Conn::connect(s.tcp_addr());
    c.send(b"set x 0 0 23\r\nalice wrong-password-42\r\n");
    assert_eq!(
        c.read_until_suffix(b"\r\n", TIMEOUT),
        b"CLIENT_ERROR authentication failure\r\n"
    );
    wait_until(TIMEOUT, "the refusal in the log", || {
        s.log()
            .contains("authentication refused: user 'alice' from 127.0.0.1:")
    });
    assert!(!s.log().contains("wrong-password-42"), "{}", s.log());
}

#[test]
fn sighup_rereads_the_credentials_file_and_keeps_them_on_a_bad_one() {
    let Some(target) = Target::from_env() else {
        return;
    };
    let creds = CredFile::new(CREDENTIALS);
    let s = start_ascii(&target, &creds);
    let login = |pair: &[u8]| -> Vec<u8> {
        let mut c = Conn::connect(s.tcp_addr());
        c.send(format!("set x 0 0 {}\r\n", pair.len()).as_bytes());
        c.send(pair);
        c.send(b"\r\n");
        c.read_until_suffix(b"\r\n", TIMEOUT)
    };
    assert_eq!(
        login(b"carol pw2"),
        b"CLIENT_ERROR authentication failure\r\n"
    );
    creds.write("carol:pw2\nprobe:probe-pw\n");
    s.signal(libc::SIGHUP);
    // memcached rereads on its next clock tick (up to a second later)
    wait_until(TIMEOUT, "carol accepted after SIGHUP", || {
        login(b"carol pw2") == b"STORED\r\n"
    });
    assert_eq!(
        login(b"alice secret"),
        b"CLIENT_ERROR authentication failure\r\n"
    );
    if target.kind == Kind::Petrel {
        // a malformed file is refused with a log line; carol stays
        creds.write("no colon here\n");
        s.signal(libc::SIGHUP);
        wait_until(TIMEOUT, "the reload error in the log", || {
            s.log().contains("credentials loaded before stay in force")
        });
        assert_eq!(login(b"carol pw2"), b"STORED\r\n");
    }
}

/// memcached's start-up rules for `-Y`: no UDP, no binary protocol; Petrel refuses the same
/// combinations (exit 64), and names the flag and the file when the file is bad.
#[test]
fn start_up_rules_match_memcached() {
    let Some(target) = Target::from_env() else {
        return;
    };
    let creds = CredFile::new(CREDENTIALS);
    let bad = CredFile::new("alice:secret\nno colon\n");
    let port = petrel_tests::net::free_port_pair().to_string();
    let mut common = vec!["-l", "127.0.0.1", "-p", &port];
    if target.kind == Kind::Memcached && petrel_tests::server::is_root() {
        common.extend(["-u", "memcache"]);
    }
    let refused: &[&[&str]] = &[
        &["-U", &port, "-Y", creds.arg()],
        &["-U", "0", "-B", "binary", "-Y", creds.arg()],
        &["-U", "0", "-B", "auto", "-Y", creds.arg()],
    ];
    for extra in refused {
        let args: Vec<&str> = common.iter().chain(extra.iter()).copied().collect();
        let (status, out) = run_to_exit(&target.path, &args, TIMEOUT);
        assert_eq!(status.code(), Some(64), "{args:?}: {out}");
    }
    if target.kind == Kind::Memcached {
        return;
    }
    let missing = creds.dir.join("missing");
    for (file, needles) in [
        (
            missing.to_str().unwrap(),
            &["--auth-file", "missing", "cannot read"][..],
        ),
        (
            bad.arg(),
            &["--auth-file", "credentials", "line 2", "user:password"][..],
        ),
    ] {
        let args: Vec<&str> = common
            .iter()
            .copied()
            .chain(["-U", "0", "-Y", file])
            .collect();
        let (status, out) = run_to_exit(&target.path, &args, TIMEOUT);
        assert_eq!(status.code(), Some(64), "{args:?}: {out}");
        for n in needles {
            assert!(out.contains(n), "{args:?}: {n:?} not in {out}");
        }
    }
}

// ---- SASL PLAIN over the binary protocol (-S) ----

/// A binary request packet.
fn bin(op: u8, key: &[u8], value: &[u8], extras: &[u8], opaque: u32) -> Vec<u8> {
    petrel_tests::binary::request(op, key, extras, value, opaque)
}

fn plain(message: &[u8], opaque: u32) -> Vec<u8> {
    bin(0x21, b"PLAIN", message, b"", opaque)
}

/// Reads one binary response packet (`None` at EOF).
fn read_packet(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut head = [0u8; 24];
    s.read_exact(&mut head).ok()?;
    let body = u32::from_be_bytes([head[8], head[9], head[10], head[11]]) as usize;
    let mut p = head.to_vec();
    p.resize(24 + body, 0);
    s.read_exact(&mut p[24..]).ok()?;
    Some(p)
}

/// SASL PLAIN with the probe pair, then the pid from a binary `stat`.
fn sasl_probe(mut s: TcpStream) -> Option<u32> {
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(&plain(b"\0probe\0probe-pw", 0)).ok()?;
    let r = read_packet(&mut s)?;
    if r[6..8] != [0, 0] {
        return None;
    }
    s.write_all(&bin(0x10, b"", b"", b"", 0)).ok()?;
    let mut pid = None;
    loop {
        let p = read_packet(&mut s)?;
        let klen = u16::from_be_bytes([p[2], p[3]]) as usize;
        if klen == 0 {
            return pid;
        }
        if &p[24..24 + klen] == b"pid" {
            pid = std::str::from_utf8(&p[24 + klen..]).ok()?.parse().ok();
        }
    }
}

/// Cyrus SASL's configuration for memcached -S: PLAIN against a sasldb holding `CREDENTIALS`.
fn cyrus_config(dir: &Path) -> bool {
    std::fs::write(
        dir.join("memcached.conf"),
        format!(
            "mech_list: plain\nsasldb_path: {}\n",
            dir.join("sasldb2").display()
        ),
    )
    .unwrap();
    for line in CREDENTIALS.lines() {
        let (user, password) = line.split_once(':').unwrap();
        let mut child = std::process::Command::new("saslpasswd2")
            .args(["-p", "-c", "-a", "memcached", "-f"])
            .arg(dir.join("sasldb2"))
            .arg(user)
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("saslpasswd2");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(password.as_bytes())
            .unwrap();
        if !child.wait().unwrap().success() {
            return false;
        }
    }
    set_mode(&dir.join("memcached.conf"), 0o644);
    set_mode(&dir.join("sasldb2"), 0o644);
    true
}

/// memcached -S (Cyrus SASL over a sasldb with the same pairs) and the server under test with
/// -S reading the same pairs from the file `MEMCACHED_SASL_PWDB` names.
fn sasl_pair(creds: &CredFile) -> Option<(Target, [Server; 2])> {
    let target = Target::from_env()?;
    if !require_program(
        "memcached",
        "-h",
        "Debian package memcached; scripts/setup installs it",
    ) || !require_program(
        "saslpasswd2",
        "-v",
        "Debian package sasl2-bin; scripts/setup installs it",
    ) {
        return None;
    }
    assert!(cyrus_config(&creds.dir), "saslpasswd2 failed");
    let dir = creds.dir.to_str().unwrap();
    let reference = Target::memcached()
        .builder()
        .no_udp()
        .arg("-S")
        .env("SASL_CONF_PATH", dir)
        .ready_probe(sasl_probe)
        .start();
    let candidate = match target.kind {
        Kind::Memcached => Target::memcached()
            .builder()
            .no_udp()
            .arg("-S")
            .env("SASL_CONF_PATH", dir),
        Kind::Petrel => target
            .builder()
            .no_udp()
            .arg("-S")
            .env("MEMCACHED_SASL_PWDB", creds.arg()),
    }
    .ready_probe(sasl_probe)
    .start();
    Some((target, [reference, candidate]))
}

/// Binary steps: the packets to send, how many reply packets to read, whether the close follows.
type BinSteps = Vec<(Vec<u8>, usize, bool)>;

/// Sends each step's packets and reads `n` reply packets (then, with `eof`, the close).
fn run_binary(server: &Server, steps: &[(Vec<u8>, usize, bool)]) -> Vec<String> {
    let mut s = TcpStream::connect(server.tcp_addr()).unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut out = Vec::new();
    for (bytes, n, eof) in steps {
        s.write_all(bytes).unwrap();
        let mut got = Vec::new();
        for _ in 0..*n {
            match read_packet(&mut s) {
                Some(p) => got.push(escape(&p, 200)),
                None => got.push("<EOF>".into()),
            }
        }
        if *eof {
            let mut rest = [0u8; 64];
            got.push(match s.read(&mut rest) {
                Ok(0) => "<EOF>".into(),
                Ok(k) => format!("extra {:?}", escape(&rest[..k], 64)),
                Err(e) => format!("open ({e})"),
            });
        }
        out.push(got.join(" | "));
    }
    out
}

#[test]
fn sasl_plain_answers_as_memcached_packet_for_packet() {
    let creds = CredFile::new(CREDENTIALS);
    let Some((_, [reference, candidate])) = sasl_pair(&creds) else {
        return;
    };
    let get = |o| bin(0x00, b"foo", b"", b"", o);
    let sequences: Vec<(&str, BinSteps)> = vec![
        ("get before auth", vec![(get(7), 1, true)]),
        (
            "quiet get before auth",
            vec![(bin(0x09, b"foo", b"", b"", 8), 1, true)],
        ),
        (
            "noop before auth",
            vec![(bin(0x0a, b"", b"", b"", 9), 1, true)],
        ),
        (
            "quit before auth",
            vec![(bin(0x07, b"", b"", b"", 9), 1, true)],
        ),
        (
            "stat before auth",
            vec![(bin(0x10, b"", b"", b"", 9), 1, true)],
        ),
        (
            "version, list, then a bad pair, then a get",
            vec![
                (bin(0x0b, b"", b"", b"", 1), 1, false),
                (bin(0x20, b"", b"", b"", 2), 1, false),
                (plain(b"\0alice\0wrong", 3), 1, false),
                (get(4), 1, true),
            ],
        ),
        (
            "good pair, get, set, get",
            vec![
                (plain(b"\0alice\0secret", 5), 1, false),
                (get(6), 1, false),
                (bin(0x01, b"foo", b"bar", &[0; 8], 7), 1, false),
                (get(8), 1, false),
                (bin(0x20, b"", b"", b"", 9), 1, false),
            ],
        ),
        (
            "malformed and refused PLAIN messages",
            vec![
                (plain(b"alicesecret", 1), 1, false),
                (plain(b"\0alice\0secret\0", 2), 1, false),
                (plain(b"\0\0secret", 3), 1, false),
                (plain(b"bob\0alice\0secret", 4), 1, false),
                (plain(b"\0Alice\0secret", 5), 1, false),
                (bin(0x21, b"FOO", b"\0alice\0secret", b"", 6), 1, false),
                (bin(0x21, &[b'P'; 40], b"x", b"", 7), 1, false),
                (plain(b"alice\0alice\0secret", 8), 1, false),
                (get(9), 1, false),
            ],
        ),
        (
            "lower-case mechanism",
            vec![
                (bin(0x21, b"plain", b"\0bob\0hunter2", b"", 1), 1, false),
                (get(2), 1, false),
            ],
        ),
        (
            "continue, then step",
            vec![
                (plain(b"", 1), 1, false),
                (bin(0x22, b"PLAIN", b"\0alice\0secret", b"", 2), 1, false),
                (get(3), 1, false),
            ],
        ),
        (
            "step without auth, then a get",
            vec![
                (bin(0x22, b"PLAIN", b"\0alice\0secret", b"", 1), 1, false),
                (get(2), 1, true),
            ],
        ),
        (
            "auth twice, then good, bad, good",
            vec![
                (plain(b"\0alice\0secret", 1), 1, false),
                (plain(b"\0alice\0secret", 2), 1, false),
                (plain(b"\0alice\0secret", 3), 1, false),
                (plain(b"\0alice\0wrong", 4), 1, false),
                (plain(b"\0alice\0secret", 5), 1, false),
                (get(6), 1, false),
            ],
        ),
        (
            "good then bad then a get",
            vec![
                (plain(b"\0alice\0secret", 1), 1, false),
                (plain(b"\0alice\0wrong", 2), 1, false),
                (get(3), 1, true),
            ],
        ),
        (
            "mechanisms with a key",
            vec![(bin(0x20, b"x", b"", b"", 1), 1, true)],
        ),
        (
            "auth with no mechanism",
            vec![(bin(0x21, b"", b"x", b"", 1), 1, true)],
        ),
        (
            "auth with extras",
            vec![(bin(0x21, b"PLAIN", b"\0a\0b", &[0; 4], 1), 1, true)],
        ),
    ];
    let mut failures = Vec::new();
    for (name, steps) in &sequences {
        let want = run_binary(&reference, steps);
        let got = run_binary(&candidate, steps);
        for (i, (w, g)) in want.iter().zip(&got).enumerate() {
            if w != g {
                failures.push(format!(
                    "{name}, step {i}:\n  memcached: {w}\n  candidate: {g}"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // the same attempts counted alike
    let count = |s: &Server, name: &str| -> String {
        let mut c = TcpStream::connect(s.tcp_addr()).unwrap();
        c.set_read_timeout(Some(TIMEOUT)).unwrap();
        c.write_all(&plain(b"\0probe\0probe-pw", 0)).unwrap();
        read_packet(&mut c).unwrap();
        c.write_all(&bin(0x10, b"", b"", b"", 0)).unwrap();
        loop {
            let p = read_packet(&mut c).unwrap();
            let klen = u16::from_be_bytes([p[2], p[3]]) as usize;
            assert!(klen > 0, "no {name}");
            if &p[24..24 + klen] == name.as_bytes() {
                return String::from_utf8_lossy(&p[24 + klen..]).into_owned();
            }
        }
    };
    for name in ["auth_cmds", "auth_errors"] {
        assert_eq!(count(&candidate, name), count(&reference, name), "{name}");
    }
}

/// pylibmc (libmemcached's SASL) in binary mode with a username and password: the good pair
/// stores and reads, a bad one fails with libmemcached's AUTHENTICATION FAILURE, on both.
#[test]
fn pylibmc_sasl_against_both() {
    let creds = CredFile::new(CREDENTIALS);
    let Some((_, servers)) = sasl_pair(&creds) else {
        return;
    };
    let python = "/usr/bin/python3";
    if !std::process::Command::new(python)
        .args(["-c", "import pylibmc; assert pylibmc.support_sasl"])
        .status()
        .is_ok_and(|s| s.success())
    {
        return petrel_tests::skip::skip(
            "python3-pylibmc with SASL is not installed (scripts/setup installs it)",
        );
    }
    let script = r#"
import pylibmc, sys
addr = ["127.0.0.1:" + sys.argv[1]]
out = []
c = pylibmc.Client(addr, binary=True, username="alice", password="secret")
out.append(c.set("k", "v")); out.append(c.get("k")); out.append(c.delete("k"))
bad = pylibmc.Client(addr, binary=True, username="alice", password="nope")
try:
    out.append(bad.set("k", "v"))
except Exception as e:
    out.append((type(e).__name__, "AUTHENTICATION FAILURE" in str(e)))
print(repr(out))
"#;
    let results: Vec<String> = servers
        .iter()
        .map(|s| {
            let o = std::process::Command::new(python)
                .args(["-c", script, &s.tcp_port.to_string()])
                .output()
                .unwrap();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            String::from_utf8_lossy(&o.stdout).trim().to_string()
        })
        .collect();
    assert_eq!(results[0], "[True, 'v', True, ('Error', True)]");
    assert_eq!(results[1], results[0]);
}

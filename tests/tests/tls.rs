//! TLS (`-Z`) against memcached 1.6.18 `-Z` with the same certificates, generated here with
//! `openssl` into a temporary directory: the same clients (Python's `ssl` with pymemcache and raw
//! requests, `openssl s_client`) get the same replies from both, including rejected client
//! certificates, a plaintext client on a TLS port, a `notls:` listener and `refresh_certs`
//! after the certificate files change. Then Petrel alone: SIGHUP reloads, and handshake floods,
//! truncated handshakes and slowloris TLS clients leave it serving others with bounded memory.
//!
//! Each server listens on two ports: `-l notls:127.0.0.1:P,127.0.0.1:T`, plain P (where the
//! test kit checks the server is up) and TLS T.

use petrel_tests::net::free_port;
use petrel_tests::server::{is_root, rss_kib, workspace_root, Kind, Server, Target};
use petrel_tests::skip::require_program;
use petrel_tests::tcp::{stat, Conn};
use petrel_tests::wait::wait_until;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Certificates for one test, in their own directory (removed on drop).
struct Certs {
    dir: PathBuf,
}

impl Drop for Certs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Certs {
    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    /// `live.crt`/`live.key` (what the servers load) become copies of `name`.crt/.key.
    fn install(&self, name: &str) {
        for ext in ["crt", "key"] {
            std::fs::copy(
                self.dir.join(format!("{name}.{ext}")),
                self.dir.join(format!("live.{ext}")),
            )
            .expect("copy certificate");
        }
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Three CAs; a server certificate from each of the first two (for localhost and 127.0.0.1); a
/// client certificate from the first; a client certificate from the third, which the servers
/// do not trust (X.509 v3 throughout: rustls's webpki accepts no v1 certificates).
fn make_certs(tag: &str) -> Option<Certs> {
    if !require_program("openssl", "version", "scripts/setup installs it") {
        return None;
    }
    let dir = std::env::temp_dir().join(format!("petrel-tls-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let certs = Certs { dir: dir.clone() };
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("client.ext"),
        "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n",
    )
    .unwrap();
    for ca in ["ca", "ca2", "rogueca"] {
        openssl(
            &dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                &format!("{ca}.key"),
                "-out",
                &format!("{ca}.crt"),
                "-days",
                "2",
                "-subj",
                &format!("/CN=petrel test {ca}"),
            ],
        );
    }
    for (name, ca, ext) in [
        ("srv", "ca", "server.ext"),
        ("srv2", "ca2", "server.ext"),
        ("cli", "ca", "client.ext"),
        ("rogue", "rogueca", "client.ext"),
    ] {
        openssl(
            &dir,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
                "-subj",
                "/CN=localhost",
            ],
        );
        let args = vec![
            "x509".to_string(),
            "-req".into(),
            "-in".into(),
            format!("{name}.csr"),
            "-CA".into(),
            format!("{ca}.crt"),
            "-CAkey".into(),
            format!("{ca}.key"),
            "-CAcreateserial".into(),
            "-out".into(),
            format!("{name}.crt"),
            "-days".into(),
            "2".into(),
            "-extfile".into(),
            ext.into(),
        ];
        openssl(&dir, &args.iter().map(String::as_str).collect::<Vec<_>>());
    }
    std::fs::write(dir.join("broken.crt"), "not a certificate\n").unwrap();
    certs.install("srv");
    // memcached runs as user memcache: it must read the files.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    Some(certs)
}

/// A server with a plain port and a TLS port.
struct Tls {
    server: Server,
    plain: u16,
    tls: u16,
}

fn start(target: &Target, certs: &Certs, options: &str, extra: &[&str]) -> Tls {
    let mut last = String::new();
    for _ in 0..4 {
        let (plain, tls) = (free_port(), free_port());
        if plain == tls {
            continue;
        }
        let mut b = target.builder().bare();
        let mut args = vec![
            "-p".to_string(),
            plain.to_string(),
            "-U".into(),
            "0".into(),
            "-l".into(),
            format!("notls:127.0.0.1:{plain},127.0.0.1:{tls}"),
            "-m".into(),
            "64".into(),
            "-t".into(),
            "2".into(),
            "-Z".into(),
            "-o".into(),
            format!(
                "ssl_chain_cert={},ssl_key={}{options}",
                certs.path("live.crt"),
                certs.path("live.key")
            ),
        ];
        if target.kind == Kind::Memcached && is_root() {
            args.extend(["-u".into(), "memcache".into()]);
        }
        if target.kind == Kind::Petrel {
            args.extend(["--admin-port".into(), "0".into()]);
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        for a in &args {
            b = b.arg(a);
        }
        match b.try_start(plain, 0) {
            Ok(server) => return Tls { server, plain, tls },
            Err(e) => last = e,
        }
    }
    panic!("server did not start: {last}");
}

fn both() -> Option<(Target, Target)> {
    let petrel = Target::petrel()?;
    if !petrel_tests::server::require_memcached() {
        return None;
    }
    if !require_program("python3", "--version", "scripts/setup installs it") {
        return None;
    }
    Some((petrel, Target::memcached()))
}

/// Runs tests/py/tls_client.py; its output.
fn py(args: &[&str]) -> String {
    let script = workspace_root().join("tests/py/tls_client.py");
    let out = Command::new("timeout")
        .arg("60")
        .arg("python3")
        .arg(&script)
        .args(args)
        .output()
        .expect("run python3");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "tls_client.py {args:?} failed ({}):\n{text}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// `openssl s_client` sending `input`; its stdout (the server's replies).
fn s_client(port: u16, ca: &str, input: &[u8], extra: &[&str]) -> String {
    use std::io::Write;
    let mut child = Command::new("timeout")
        .args(["30", "openssl", "s_client", "-connect"])
        .arg(format!("127.0.0.1:{port}"))
        .args(["-CAfile", ca, "-quiet", "-verify_return_error"])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run openssl s_client");
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Requests whose replies are compared byte for byte; the last is `quit`.
const RAW: &[u8] = b"version\r\nset a 5 0 3\r\nabc\r\nget a b\r\ngets nothing\r\n\
incr a 1\r\nset n 0 0 2\r\n10\r\nincr n 5\r\ndelete a\r\nbogus\r\nset x 0 0 1 noreply\r\ny\r\nget x\r\n\
mn\r\nmg x v\r\nrefresh_certs\r\nrefresh_certs noreply\r\nquit\r\n";

#[test]
fn tls_replies_match_memcached() {
    let Some((petrel, memcached)) = both() else {
        return;
    };
    let Some(certs) = make_certs("replies") else {
        return;
    };
    let ca = certs.path("ca.crt");
    let mut seen = Vec::new();
    for target in [&petrel, &memcached] {
        let s = start(target, &certs, "", &[]);
        // the last two: a plaintext client on the TLS port, and on the notls: port
        let t = vec![
            py(&["pymemcache", &s.tls.to_string(), &ca]),
            py(&["raw", &s.tls.to_string(), &ca, &hex(RAW)]),
            s_client(s.tls, &ca, RAW, &[]),
            s_client(s.tls, &ca, RAW, &["-tls1_2"]),
            py(&["plain", &s.tls.to_string(), &hex(b"version\r\n")]),
            py(&["plain", &s.plain.to_string(), &hex(b"version\r\nquit\r\n")]),
        ];
        seen.push((target.clone(), t, s.server.log()));
    }
    let (p, m) = (&seen[0].1, &seen[1].1);
    for (i, (a, b)) in p.iter().zip(m).enumerate() {
        assert_eq!(
            a, b,
            "transcript {i}: Petrel (left) and memcached (right) differ\npetrel log:\n{}",
            seen[0].2
        );
    }
    // the transcripts are what they should be, not just equal
    assert!(p[0].contains("get-big True"), "{}", p[0]);
    assert!(p[1].contains("VERSION 1.6.18"), "{}", p[1]);
    assert!(p[1].contains("OK\\r\\n"), "refresh_certs: {}", p[1]);
    assert!(p[2].contains("VALUE a 5 3\r\nabc\r\nEND\r\n"), "{}", p[2]);
    assert_eq!(p[2], p[3], "TLS 1.3 and 1.2 answer alike");
    assert!(p[4].ends_with("reset\n"), "{}", p[4]);
    assert!(p[5].starts_with("b'VERSION 1.6.18\\r\\n'"), "{}", p[5]);
}

#[test]
fn client_certificates_match_memcached() {
    let Some((petrel, memcached)) = both() else {
        return;
    };
    let Some(certs) = make_certs("clients") else {
        return;
    };
    let ca = certs.path("ca.crt");
    let mut seen = Vec::new();
    for target in [&petrel, &memcached] {
        let mut t = Vec::new();
        for mode in ["1", "2", "3"] {
            let options = format!(",ssl_ca_cert={ca},ssl_verify_mode={mode}");
            let s = start(target, &certs, &options, &[]);
            let port = s.tls.to_string();
            for (cert, key) in [
                ("-", "-"),
                ("cli.crt", "cli.key"),
                ("rogue.crt", "rogue.key"),
            ] {
                let (c, k) = if cert == "-" {
                    ("-".to_string(), "-".to_string())
                } else {
                    (certs.path(cert), certs.path(key))
                };
                t.push(format!(
                    "mode {mode} cert {cert}: {}",
                    py(&["cert", &port, &ca, &c, &k])
                ));
            }
            t.push(format!(
                "mode {mode} s_client without a certificate: {:?}",
                s_client(s.tls, &ca, b"version\r\nquit\r\n", &[])
            ));
        }
        seen.push(t);
    }
    // memcached closes right after its alert, so Python sometimes sees the close before the
    // alert (reason None): compare refused-or-served, and check Petrel's reasons below
    let refused = |t: &Vec<String>| -> Vec<String> {
        t.iter()
            .map(|l| match l.find("tls-error") {
                Some(i) => format!("{}refused", &l[..i]),
                None => l.clone(),
            })
            .collect()
    };
    assert_eq!(
        refused(&seen[0]),
        refused(&seen[1]),
        "Petrel (left) and memcached (right)"
    );
    let all = seen[0].join("");
    // mode 1 serves a client without a certificate; 2 and 3 refuse it; a rogue one never passes
    assert!(
        all.contains("mode 1 cert -: reply b'VERSION 1.6.18\\r\\n'"),
        "{all}"
    );
    assert!(
        all.contains("mode 2 cert -: tls-error TLSV13_ALERT_CERTIFICATE_REQUIRED"),
        "{all}"
    );
    assert!(!all.contains("cert rogue.crt: reply"), "{all}");
    assert!(
        all.contains("mode 3 cert rogue.crt: tls-error TLSV1_ALERT_UNKNOWN_CA"),
        "{all}"
    );
}

/// `stats` over the plain port: the value of `name`.
fn stat_of(s: &Tls, name: &str) -> u64 {
    stat(std::net::SocketAddr::from(([127, 0, 0, 1], s.plain)), name)
}

/// `stats` over the plain port, or `None` while the server is at its `-c` limit: it then answers
/// a new connection `SERVER_ERROR too many open connections` and closes it, as memcached does
/// (the limit counts the TLS and the plain listener's connections together).
fn stat_when_admitted(s: &Tls, name: &str) -> Option<u64> {
    use std::io::{Read, Write};
    const REFUSED: &[u8] = b"SERVER_ERROR too many open connections\r\n";
    let mut c = std::net::TcpStream::connect(("127.0.0.1", s.plain)).expect("connect");
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(b"stats\r\n").expect("send stats");
    let mut text = Vec::new();
    let mut buf = [0u8; 4096];
    while !text.ends_with(b"END\r\n") {
        match c.read(&mut buf) {
            Ok(0) if text == REFUSED => return None,
            Ok(0) => panic!("EOF after {:?}", String::from_utf8_lossy(&text)),
            Ok(n) => text.extend_from_slice(&buf[..n]),
            Err(e) => panic!("stats: {e} after {:?}", String::from_utf8_lossy(&text)),
        }
    }
    let text = String::from_utf8_lossy(&text);
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("STAT {name} ")));
    Some(
        line.and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or_else(|| panic!("no STAT {name}")),
    )
}

#[test]
fn refresh_certs_matches_memcached_and_sighup_reloads() {
    let Some((petrel, memcached)) = both() else {
        return;
    };
    for target in [&petrel, &memcached] {
        let Some(certs) = make_certs(if target.kind == Kind::Petrel {
            "refresh-p"
        } else {
            "refresh-m"
        }) else {
            return;
        };
        let (ca, ca2) = (certs.path("ca.crt"), certs.path("ca2.crt"));
        let s = start(target, &certs, "", &[]);
        let port = s.tls.to_string();
        let version = |ca: &str| py(&["cert", &port, ca, "-", "-"]);
        assert_eq!(version(&ca), "reply b'VERSION 1.6.18\\r\\n'\n");
        // new files: refresh_certs on the plain port (the command is the same on both)
        certs.install("srv2");
        let mut c = Conn::connect(std::net::SocketAddr::from(([127, 0, 0, 1], s.plain)));
        c.check(b"refresh_certs\r\n", b"OK\r\n");
        assert_eq!(
            version(&ca2),
            "reply b'VERSION 1.6.18\\r\\n'\n",
            "{:?}",
            target.kind
        );
        assert_eq!(
            version(&ca),
            "tls-error CERTIFICATE_VERIFY_FAILED\n",
            "{:?}",
            target.kind
        );
        // a chain that cannot be read: the error names the file; the certificates stay
        std::fs::copy(certs.dir.join("broken.crt"), certs.dir.join("live.crt")).unwrap();
        c.send(b"refresh_certs\r\n");
        let line = String::from_utf8(c.read_line()).unwrap();
        let want = format!(
            "Error loading the certificate chain: {} : ",
            certs.path("live.crt")
        );
        assert!(line.starts_with(&want), "{:?}: {line:?}", target.kind);
        assert!(line.ends_with("\r\n"), "{line:?}");
        assert_eq!(
            version(&ca2),
            "reply b'VERSION 1.6.18\\r\\n'\n",
            "{:?}",
            target.kind
        );
        if target.kind == Kind::Petrel {
            // SIGHUP reloads too (memcached's SIGHUP does not)
            certs.install("srv");
            s.server.signal(libc::SIGHUP);
            wait_until(Duration::from_secs(20), "SIGHUP reload", || {
                stat_of(&s, "tls_cert_reloads") >= 2
            });
            assert_eq!(version(&ca), "reply b'VERSION 1.6.18\\r\\n'\n");
            assert_eq!(stat_of(&s, "tls_cert_reload_failures"), 1);
        }
    }
}

#[test]
fn handshake_floods_truncated_handshakes_and_slowloris_leave_the_server_serving() {
    let Some(petrel) = Target::petrel() else {
        return;
    };
    if !require_program("python3", "--version", "scripts/setup installs it") {
        return;
    }
    let Some(certs) = make_certs("floods") else {
        return;
    };
    let ca = certs.path("ca.crt");
    let s = start(
        &petrel,
        &certs,
        "",
        &["-c", "100", "--tls-handshake-timeout", "2"],
    );
    let pid = s.server.pid().expect("running");
    let rss_before = rss_kib(pid).expect("rss");
    let hello = hex_decode(py(&["hello-bytes"]).trim());
    assert!(
        hello.len() > 100 && hello[0] == 0x16,
        "a ClientHello record"
    );
    let tls_addr = std::net::SocketAddr::from(([127, 0, 0, 1], s.tls));
    let mut held = Vec::new();
    // slowloris: connect and send nothing; and half a ClientHello, then nothing
    for i in 0..90 {
        let mut c = std::net::TcpStream::connect(tls_addr).expect("connect");
        if i % 2 == 1 {
            use std::io::Write;
            let _ = c.write_all(&hello[..hello.len() / 2]);
        }
        held.push(c);
    }
    // truncated handshakes: half a ClientHello and close, many times
    for _ in 0..200 {
        use std::io::Write;
        let mut c = std::net::TcpStream::connect(tls_addr).expect("connect");
        let _ = c.write_all(&hello[..hello.len() / 2]);
    }
    // handshake flood: full ClientHellos, never answered by the client
    for _ in 0..200 {
        use std::io::Write;
        let mut c = std::net::TcpStream::connect(tls_addr).expect("connect");
        let _ = c.write_all(&hello);
    }
    // the held handshakes time out and free their slots; then a real client is served
    wait_until(Duration::from_secs(30), "handshake timeouts", || {
        stat_when_admitted(&s, "tls_handshake_timeouts").is_some_and(|v| v >= 90)
    });
    assert_eq!(
        py(&["cert", &s.tls.to_string(), &ca, "-", "-"]),
        "reply b'VERSION 1.6.18\\r\\n'\n"
    );
    wait_until(Duration::from_secs(30), "failed handshakes counted", || {
        stat_when_admitted(&s, "tls_handshakes_failed").is_some_and(|v| v >= 200)
    });
    wait_until(Duration::from_secs(30), "no handshake left", || {
        stat_when_admitted(&s, "tls_handshakes_in_progress") == Some(0)
    });
    assert!(stat_of(&s, "tls_handshakes_ok") >= 1);
    let rss_after = rss_kib(pid).expect("rss");
    assert!(
        rss_after < rss_before + 64 * 1024,
        "RSS grew from {rss_before} KiB to {rss_after} KiB"
    );
    drop(held);
}

fn hex_decode(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

/// `stats settings` over the plain port: its `ssl_*` lines as (name, value), in order.
fn ssl_settings(s: &Tls) -> Vec<(String, String)> {
    let mut c = Conn::connect(std::net::SocketAddr::from(([127, 0, 0, 1], s.plain)));
    c.send(b"stats settings\r\n");
    let text = c.read_until_suffix(b"END\r\n", Duration::from_secs(10));
    String::from_utf8(text)
        .expect("ASCII")
        .lines()
        .filter_map(|l| l.strip_prefix("STAT ssl_"))
        .map(|l| {
            let (name, value) = l.split_once(' ').expect("STAT name value");
            (format!("ssl_{name}"), value.to_string())
        })
        .collect()
}

/// A server without `-Z`, on a loopback port, with `-o OPTIONS` when not empty; `tls` is 0.
fn start_without_tls(target: &Target, options: &str) -> Tls {
    let mut last = String::new();
    for _ in 0..4 {
        let plain = free_port();
        let mut b = target.builder().bare();
        let mut args: Vec<String> = ["-U", "0", "-l", "127.0.0.1", "-m", "64", "-t", "2"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.extend(["-p".into(), plain.to_string()]);
        if !options.is_empty() {
            args.extend(["-o".into(), options.to_string()]);
        }
        if target.kind == Kind::Memcached && is_root() {
            args.extend(["-u".into(), "memcache".into()]);
        }
        if target.kind == Kind::Petrel {
            args.extend(["--admin-port".into(), "0".into()]);
        }
        for a in &args {
            b = b.arg(a);
        }
        match b.try_start(plain, 0) {
            Ok(server) => {
                return Tls {
                    server,
                    plain,
                    tls: 0,
                }
            }
            Err(e) => last = e,
        }
    }
    panic!("server did not start: {last}");
}

/// `stats settings` has memcached's `ssl_*` lines, in its order, with the same values for the
/// same options, with `-Z` and without it (memcached built with TLS prints them either way,
/// `ssl_enabled no` and the `-o ssl_*` options as given), except `ssl_wbuf_size` (the output
/// each connection may hold: memcached's 16 KiB default, Petrel's 64 KiB limit).
#[test]
fn stats_settings_ssl_lines_match_memcached() {
    let Some((petrel, memcached)) = both() else {
        return;
    };
    let Some(certs) = make_certs("settings") else {
        return;
    };
    let ca = certs.path("ca.crt");
    let more = format!(",ssl_ca_cert={ca},ssl_verify_mode=1,ssl_session_cache,ssl_min_version=3");
    let files = format!(
        "ssl_chain_cert={},ssl_key={}",
        certs.path("live.crt"),
        certs.path("live.key")
    );
    // (-Z, the options after -Z's certificate and key, or all of them without -Z)
    let cases = [
        (true, String::new()),
        (true, more.clone()),
        (false, String::new()),
        (false, format!("{files}{more}")),
    ];
    for (tls, options) in &cases {
        let mut seen = Vec::new();
        for target in [&petrel, &memcached] {
            let s = if *tls {
                start(target, &certs, options, &[])
            } else {
                start_without_tls(target, options)
            };
            seen.push(ssl_settings(&s));
        }
        let (p, m) = (&seen[0], &seen[1]);
        let names = |v: &[(String, String)]| v.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
        assert_eq!(
            names(p),
            names(m),
            "-Z {tls}, options {options:?}: Petrel (left), memcached (right)"
        );
        assert!(p.len() >= 11, "{p:?}");
        for ((name, pv), (_, mv)) in p.iter().zip(m) {
            if name == "ssl_wbuf_size" {
                assert_eq!(pv, "65536");
                assert_eq!(mv, "16384");
            } else {
                assert_eq!(
                    pv, mv,
                    "-Z {tls}, options {options:?}: {name}: Petrel (left), memcached (right)"
                );
            }
        }
        let value = |n: &str| p.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
        assert_eq!(value("ssl_enabled"), Some(if *tls { "yes" } else { "no" }));
        if options.is_empty() {
            assert_eq!(value("ssl_ca_cert"), Some("NULL"));
            assert_eq!(value("ssl_min_version"), Some("tlsv1.2"));
            assert_eq!(value("ssl_verify_mode"), Some("0"));
            assert_eq!(value("ssl_session_cache"), Some("no"));
            if !*tls {
                assert_eq!(value("ssl_chain_cert"), Some("(null)"));
                assert_eq!(value("ssl_key"), Some("(null)"));
            }
        } else {
            assert_eq!(value("ssl_ca_cert"), Some(ca.as_str()));
            assert_eq!(value("ssl_verify_mode"), Some("1"));
            assert_eq!(value("ssl_session_cache"), Some("yes"));
            assert_eq!(value("ssl_min_version"), Some("tlsv1.3"));
        }
        if *tls || !options.is_empty() {
            assert_eq!(
                value("ssl_chain_cert"),
                Some(certs.path("live.crt").as_str())
            );
        }
    }
}

/// A server listening on a Unix socket only (`-s`) with `-Z`: the socket speaks plaintext, as
/// memcached's does (its TLS covers TCP listeners only): a plaintext `version` is answered and a
/// TLS handshake fails the same way on both.
#[test]
fn unix_socket_stays_plaintext_under_tls() {
    use std::io::{Read, Write};
    let Some((petrel, memcached)) = both() else {
        return;
    };
    if !require_program("openssl", "version", "scripts/setup installs it") {
        return;
    }
    let Some(certs) = make_certs("unix") else {
        return;
    };
    let ca = certs.path("ca.crt");
    let mut seen = Vec::new();
    for target in [&petrel, &memcached] {
        // in /tmp itself: memcached binds after dropping to its user
        let sock = std::env::temp_dir().join(format!(
            "petrel-tls-unix-{:?}-{}.sock",
            target.kind,
            std::process::id()
        ));
        let _ = std::fs::remove_file(&sock);
        let mut cmd = Command::new(&target.path);
        cmd.args(["-s", sock.to_str().expect("UTF-8 path"), "-a", "0666"])
            .args(["-m", "64", "-t", "1", "-Z", "-o"])
            .arg(format!(
                "ssl_chain_cert={},ssl_key={}",
                certs.path("live.crt"),
                certs.path("live.key")
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if target.kind == Kind::Memcached && is_root() {
            cmd.args(["-u", "memcache"]);
        }
        if target.kind == Kind::Petrel {
            cmd.args(["--admin-port", "0"]);
        }
        let mut child = KillOnDrop(cmd.spawn().expect("start the server"));
        wait_until(
            Duration::from_secs(20),
            "listening on the Unix socket",
            || {
                if let Ok(Some(status)) = child.0.try_wait() {
                    let mut err = String::new();
                    let _ = child
                        .0
                        .stderr
                        .take()
                        .map(|mut e| e.read_to_string(&mut err));
                    panic!("{:?} exited ({status}): {err}", target.kind);
                }
                std::os::unix::net::UnixStream::connect(&sock).is_ok()
            },
        );
        let mut c = std::os::unix::net::UnixStream::connect(&sock).expect("connect");
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        c.write_all(b"version\r\n").expect("send");
        let mut reply = Vec::new();
        let mut buf = [0u8; 256];
        while !reply.ends_with(b"\r\n") {
            match c.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => reply.extend_from_slice(&buf[..n]),
                Err(e) => panic!("{:?}: read: {e}", target.kind),
            }
        }
        let tls = Command::new("timeout")
            .args(["30", "openssl", "s_client", "-unix"])
            .arg(&sock)
            .args(["-CAfile", &ca, "-quiet", "-verify_return_error"])
            .stdin(Stdio::null())
            .output()
            .expect("run openssl s_client");
        seen.push((
            String::from_utf8_lossy(&reply).into_owned(),
            tls.status.success(),
            String::from_utf8_lossy(&tls.stdout).into_owned(),
        ));
        drop(child);
        let _ = std::fs::remove_file(&sock);
    }
    assert_eq!(seen[0], seen[1], "Petrel (left) and memcached (right)");
    assert_eq!(seen[0].0, "VERSION 1.6.18\r\n");
    assert!(!seen[0].1, "a TLS handshake on the Unix socket succeeded");
}

/// A child process killed (and reaped) when dropped, a failed assertion included.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

//! The command line and the config file (bad input exits with status 64 and names the flag
//! or key; flags override the file), and clean shutdown on SIGTERM/SIGINT.

use petrel_tests::server::{free_port_pair, run_to_exit, Kind, Target};
use petrel_tests::tcp::{storage_cmd, Conn};
use std::path::PathBuf;
use std::time::Duration;

/// Exit status for usage errors (sysexits.h EX_USAGE), as the issue requires.
const EX_USAGE: i32 = 64;
const EXIT_TIMEOUT: Duration = Duration::from_secs(10);

/// The petrel target, or `None` (with a note) when testing memcached, whose CLI differs.
fn petrel_only() -> Option<Target> {
    let t = Target::from_env()?;
    if t.kind != Kind::Petrel {
        petrel_tests::skip::not_applicable(
            "petrel's own CLI and config file; memcached has neither --config nor status 64",
        );
        return None;
    }
    Some(t)
}

fn temp_file(name: &str, contents: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("petrel-cli-{}-{name}", std::process::id()));
    std::fs::write(&p, contents).expect("write temp file");
    p
}

#[track_caller]
fn expect_usage_error(target: &Target, args: &[&str], names: &[&str]) {
    let (status, out) = run_to_exit(&target.path, args, EXIT_TIMEOUT);
    assert_eq!(
        status.code(),
        Some(EX_USAGE),
        "petrel {args:?}: status {status}, expected {EX_USAGE}; output:\n{out}"
    );
    assert!(
        names.iter().any(|n| out.contains(n)),
        "petrel {args:?}: the message should name one of {names:?}; output:\n{out}"
    );
}

#[test]
fn bad_flags_exit_64_naming_the_flag() {
    let Some(t) = petrel_only() else { return };
    let port = free_port_pair().to_string();
    let p = port.as_str();
    expect_usage_error(&t, &["--bogus-flag"], &["--bogus-flag"]);
    expect_usage_error(&t, &["-p", "notaport"], &["--port", "-p"]);
    expect_usage_error(&t, &["-p", "70000"], &["--port", "-p"]);
    expect_usage_error(&t, &["-p", p, "-U", "x"], &["--udp-port", "-U"]);
    expect_usage_error(&t, &["-p", p, "-m", "lots"], &["--memory-limit", "-m"]);
    expect_usage_error(&t, &["-p", p, "-c", "many"], &["--conn-limit", "-c"]);
    expect_usage_error(&t, &["-p", p, "-t", "0"], &["--threads", "-t"]);
    expect_usage_error(&t, &["-p", p, "-I", "12q"], &["--max-item-size", "-I"]);
    expect_usage_error(&t, &["-p", p, "-I", "100"], &["--max-item-size", "-I"]);
    expect_usage_error(&t, &["-p", p, "-I", "2g"], &["--max-item-size", "-I"]);
    expect_usage_error(&t, &["-p", p, "-l", "not-an-address"], &["--listen", "-l"]);
    // The request line limit: 512 up to the read buffer less 2k (1m by default).
    expect_usage_error(
        &t,
        &["-p", p, "--max-line-bytes", "511"],
        &["--max-line-bytes"],
    );
    expect_usage_error(
        &t,
        &["-p", p, "--max-line-bytes", "2m"],
        &["--max-line-bytes"],
    );
    expect_usage_error(
        &t,
        &["-p", p, "--max-line-bytes", "lots"],
        &["--max-line-bytes"],
    );
    expect_usage_error(
        &t,
        &["-p", p, "-I", "2k", "--max-line-bytes", "65537"],
        &["--max-line-bytes"],
    );
    // A negative number is a bad value of its flag, not an unknown flag.
    expect_usage_error(
        &t,
        &["-p", p, "--max-line-bytes", "-1"],
        &["--max-line-bytes"],
    );
    expect_usage_error(&t, &["-p", p, "-m", "-5"], &["--memory-limit", "-m"]);
    expect_usage_error(&t, &["-p", "-1"], &["--port", "-p"]);
    // memcached's flags Petrel refuses, and -o options it does not know.
    expect_usage_error(
        &t,
        &["-p", p, "-o", "modern,no_such_option"],
        &["no_such_option"],
    );
    // TLS: a certificate is needed, must load, and notls: needs -Z (as memcached).
    expect_usage_error(
        &t,
        &["-p", p, "-Z", "-o", "ssl_key=/k"],
        &["ssl_chain_cert"],
    );
    expect_usage_error(
        &t,
        &["-p", p, "-Z", "-o", "ssl_chain_cert=/nonexistent/c.pem"],
        &["Error loading the certificate chain: /nonexistent/c.pem"],
    );
    expect_usage_error(&t, &["-p", p, "-l", "notls:127.0.0.1"], &["notls"]);
    expect_usage_error(&t, &["-p", p, "-o", "ssl_kernel_tls"], &["ssl_kernel_tls"]);
    expect_usage_error(&t, &["-p", p, "-M"], &["--disable-evictions"]);
    expect_usage_error(&t, &["-p", p, "-Z"], &["--enable-ssl"]);
    expect_usage_error(&t, &["-p", p, "-S"], &["--enable-sasl"]);
    expect_usage_error(&t, &["-p", p, "-F"], &["--disable-flush-all"]);
    expect_usage_error(&t, &["-p", p, "-Y", "/x"], &["--auth-file"]);
    expect_usage_error(&t, &["-p", p, "-a", "99"], &["--unix-mask"]);
    expect_usage_error(&t, &["-p", p, "-l", "127.0.0.1:x"], &["--listen"]);
}

#[test]
fn bad_config_files_exit_64_naming_the_key() {
    let Some(t) = petrel_only() else { return };
    let port = free_port_pair();
    let cases: &[(&str, &str, &[&str])] = &[
        ("unknown", "port = 1\nbogus-key = 3\n", &["bogus-key"]),
        ("badtype", "port = \"abc\"\n", &["port"]),
        ("range", "port = 99999\n", &["port"]),
        ("threads", "threads = 0\n", &["threads"]),
        ("memory", "memory-limit = \"lots\"\n", &["memory-limit"]),
        ("itemsize", "max-item-size = \"12q\"\n", &["max-item-size"]),
        ("maxline", "max-line-bytes = 100\n", &["max-line-bytes"]),
        (
            "syntax",
            "port = \n[[[\n",
            &["config", "line", "TOML", "expected"],
        ),
    ];
    for (name, body, keys) in cases {
        let f = temp_file(name, body);
        let fs = f.to_str().expect("utf-8 path");
        let port_s = port.to_string();
        let args: Vec<&str> = if body.starts_with("port") {
            vec!["--config", fs]
        } else {
            vec!["--config", fs, "-p", &port_s, "-U", "0"]
        };
        expect_usage_error(&t, &args, keys);
        let _ = std::fs::remove_file(&f);
    }
    let missing = std::env::temp_dir().join("petrel-no-such-config.toml");
    expect_usage_error(
        &t,
        &["--config", missing.to_str().expect("utf-8")],
        &["petrel-no-such-config.toml", "config"],
    );
}

#[test]
fn config_file_is_used_and_flags_override_it() {
    let Some(t) = petrel_only() else { return };
    // the file alone
    let port = free_port_pair();
    let f = temp_file(
        "good",
        &format!(
            "port = {port}\nudp-port = 0\nlisten = \"127.0.0.1\"\nmemory-limit = 16\nthreads = 1\n"
        ),
    );
    let server = t
        .builder()
        .bare()
        .arg("--config")
        .arg(f.to_str().expect("utf-8"))
        .try_start(port, 0)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut c = Conn::connect(server.tcp_addr());
    c.send(b"stats\r\n");
    let stats =
        String::from_utf8(c.read_until_suffix(b"END\r\n", Duration::from_secs(5))).expect("ascii");
    assert!(
        stats.contains(&format!("STAT limit_maxbytes {}\r\n", 16 << 20)),
        "{stats}"
    );
    drop(server);
    // flags override the file: the builder passes -p/-m, the file says otherwise
    let other = free_port_pair();
    let f2 = temp_file("override", &format!("port = {other}\nmemory-limit = 16\n"));
    let server = t
        .builder()
        .arg("--config")
        .arg(f2.to_str().expect("utf-8"))
        .start();
    let mut c = Conn::connect(server.tcp_addr());
    c.check(&storage_cmd("set", "a", 0, 0, b"1", false), b"STORED\r\n");
    c.send(b"stats\r\n");
    let stats =
        String::from_utf8(c.read_until_suffix(b"END\r\n", Duration::from_secs(5))).expect("ascii");
    assert!(
        stats.contains(&format!("STAT limit_maxbytes {}\r\n", 64 << 20)),
        "{stats}"
    );
    let _ = std::fs::remove_file(&f);
    let _ = std::fs::remove_file(&f2);
}

fn shutdown_on(signal: i32) {
    let Some(target) = Target::from_env() else {
        return;
    };
    let mut server = target.start();
    let mut c = Conn::connect(server.tcp_addr());
    c.check(&storage_cmd("set", "a", 0, 0, b"1", false), b"STORED\r\n");
    let value = vec![b'q'; 900_000];
    c.check(
        &storage_cmd("set", "big", 0, 0, &value, false),
        b"STORED\r\n",
    );
    // a long reply in flight when the signal arrives: its first bytes have been read
    c.send(b"get big big big\r\n");
    let head = c.read_exact_n(16, Duration::from_secs(10));
    server.signal(signal);
    let status = server
        .wait_timeout(EXIT_TIMEOUT)
        .unwrap_or_else(|| panic!("still running {EXIT_TIMEOUT:?} after signal {signal}"));
    assert_eq!(status.code(), Some(0), "exit status after signal {signal}");
    // petrel finishes replies in flight: the whole reply arrives, then the close
    let rest = c.read_to_eof(Duration::from_secs(5));
    if target.kind == Kind::Petrel {
        let rest = rest.expect("the connection closes after the reply");
        let got = [head, rest].concat();
        let mut want = Vec::new();
        for _ in 0..3 {
            want.extend_from_slice(format!("VALUE big 0 {}\r\n", value.len()).as_bytes());
            want.extend_from_slice(&value);
            want.extend_from_slice(b"\r\n");
        }
        want.extend_from_slice(b"END\r\n");
        assert!(
            got == want,
            "reply cut at {} of {} bytes",
            got.len(),
            want.len()
        );
    }
    // nothing listens any more
    assert!(
        std::net::TcpStream::connect_timeout(&server.tcp_addr(), Duration::from_millis(500))
            .is_err(),
        "still accepting after exit"
    );
}

#[test]
fn clean_shutdown_on_sigterm() {
    shutdown_on(libc::SIGTERM);
}

#[test]
fn clean_shutdown_on_sigint() {
    shutdown_on(libc::SIGINT);
}

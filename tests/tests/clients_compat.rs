//! Third-party clients and tools, each run against memcached 1.6.18 and against the server
//! under test in the same test: the same operations must give the same results.
//!
//! Every client script (`tests/clients/`) prints a transcript, one line per operation and its
//! result (CAS values left out); the two transcripts must be equal line for line, and each
//! script also asserts the results that would be wrong on any server. Both servers run with
//! `-I 2m` so that a value over 1 MB is stored and one over 2 MB refused.
//!
//! A client that is not installed skips its test visibly (`petrel_tests::skip`), which fails it
//! when `CI` is set (`scripts/setup` installs them all from Debian and PyPI).

use petrel_tests::server::{workspace_root, Kind, Server, Target};
use petrel_tests::skip::skip;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Seconds a client script may run before it is killed (it normally takes about one).
const SCRIPT_TIMEOUT_SECS: u32 = 180;

/// The reference memcached and the server under test, both with the same flags.
struct Pair {
    reference: Server,
    under_test: Server,
}

impl Pair {
    /// Both servers, memcached first.
    fn both(&self) -> [&Server; 2] {
        [&self.reference, &self.under_test]
    }
}

fn start_pair(extra: &[&str]) -> Option<Pair> {
    let target = Target::from_env()?;
    let with = |t: &Target| {
        let mut b = t.builder().max_item("2m").no_udp();
        if t.kind == Kind::Petrel {
            b = b.arg("--admin-port").arg("0");
        }
        for a in extra {
            b = b.arg(a);
        }
        b.start()
    };
    Some(Pair {
        reference: with(&Target::memcached()),
        under_test: with(&target),
    })
}

/// True when `program args` runs and exits 0; otherwise reports the missing `what` (a failure
/// under `CI`, a visible skip elsewhere) and returns false.
fn have(what: &str, program: &str, args: &[&str]) -> bool {
    let ok = Command::new(program)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return true;
    }
    skip(&format!(
        "{what} is not installed (`{program} {}` failed); scripts/setup installs it",
        args.join(" ")
    ));
    false
}

/// `program` run under `timeout` ([`SCRIPT_TIMEOUT_SECS`]).
fn timed(program: &str) -> Command {
    let mut c = Command::new("timeout");
    c.arg(SCRIPT_TIMEOUT_SECS.to_string()).arg(program);
    c
}

/// Everything a finished command printed: stdout, then stderr.
fn printed(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// Runs `program args... 127.0.0.1 PORT tail...` against `server` under a timeout and returns
/// its stdout; panics with everything it printed (and the server's log) if it fails.
fn run_client(program: &str, args: &[&str], server: &Server, tail: &[&str]) -> String {
    let out = timed(program)
        .args(args)
        .arg("127.0.0.1")
        .arg(server.tcp_port.to_string())
        .args(tail)
        .output()
        .unwrap_or_else(|e| panic!("run {program}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "{program} {args:?} against {:?} failed ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}\nserver log:\n{}",
        server.kind,
        out.status,
        server.log()
    );
    stdout
}

/// Asserts that two transcripts are equal, naming the first line that differs.
fn assert_same(what: &str, reference: &str, under_test: &str) {
    let a: Vec<&str> = reference.lines().collect();
    let b: Vec<&str> = under_test.lines().collect();
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert_eq!(
            x,
            y,
            "{what}: line {} differs (memcached first, then the server under test)\n\
             memcached transcript:\n{reference}\nserver under test transcript:\n{under_test}",
            i + 1
        );
    }
    assert_eq!(
        a.len(),
        b.len(),
        "{what}: transcripts differ in length\nmemcached:\n{reference}\nserver under test:\n{under_test}"
    );
}

fn script(name: &str) -> PathBuf {
    workspace_root().join("tests/clients").join(name)
}

/// A client library driven by a script of `tests/clients/`.
struct ScriptClient {
    /// The package that provides it (named when it is missing).
    package: &'static str,
    /// The interpreter that runs the script.
    program: &'static str,
    /// Arguments with which `program` exits 0 only when the library is installed.
    probe: &'static [&'static str],
    /// The script's file name.
    script: &'static str,
}

// Debian's pylibmc is for Debian's python (`python3` may be another one).
const PYLIBMC: ScriptClient = ScriptClient {
    package: "python3-pylibmc",
    program: "/usr/bin/python3",
    probe: &["-c", "import pylibmc"],
    script: "pylibmc_check.py",
};
const PHP_MEMCACHED: ScriptClient = ScriptClient {
    package: "php-memcached with php-cli",
    program: "php",
    probe: &["-r", "exit(class_exists('Memcached') ? 0 : 1);"],
    script: "php_check.php",
};
const PERL_FAST: ScriptClient = ScriptClient {
    package: "libcache-memcached-fast-perl",
    program: "perl",
    probe: &["-MCache::Memcached::Fast", "-e", "1"],
    script: "perl_check.pl",
};
const DALLI: ScriptClient = ScriptClient {
    package: "ruby-dalli",
    program: "ruby",
    probe: &["-e", "require 'dalli'"],
    script: "dalli_check.rb",
};

/// Runs `client`'s script with `mode` (its arguments after host and port) against both
/// servers and compares the transcripts (see [`compare_client`]); skips visibly when the
/// client is not installed.
fn compare_script(client: &ScriptClient, mode: &[&str], what: &str, done: &str) {
    if !have(client.package, client.program, client.probe) {
        return;
    }
    let s = script(client.script);
    compare_client(what, client.program, &[s.to_str().unwrap()], mode, done);
}

/// Runs one client script against both servers and compares the transcripts; `done` is the
/// script's last line, proving it ran to the end.
fn compare_client(what: &str, program: &str, args: &[&str], tail: &[&str], done: &str) {
    let Some(pair) = start_pair(&[]) else {
        return;
    };
    let reference = run_client(program, args, &pair.reference, tail);
    let under_test = run_client(program, args, &pair.under_test, tail);
    assert!(reference.contains(done), "{what}: {reference}");
    assert_same(what, &reference, &under_test);
    eprintln!(
        "{what}: {} operations, same results",
        reference.lines().count() - 1
    );
}

#[test]
fn pylibmc_text() {
    compare_script(&PYLIBMC, &["text"], "pylibmc text", "pylibmc text: done");
}

#[test]
fn php_memcached_text() {
    compare_script(
        &PHP_MEMCACHED,
        &["text"],
        "php-memcached text",
        "php-memcached text: done",
    );
}

#[test]
fn perl_cache_memcached_fast() {
    compare_script(
        &PERL_FAST,
        &[],
        "Cache::Memcached::Fast",
        "Cache::Memcached::Fast: done",
    );
}

/// The spymemcached jar Debian installs, if present.
fn spymemcached_jar() -> Option<PathBuf> {
    let p = Path::new("/usr/share/java/spymemcached.jar");
    p.is_file().then(|| p.to_path_buf())
}

#[test]
fn spymemcached_text() {
    spymemcached("text");
}

fn spymemcached(mode: &str) {
    if !have("a Java 17 JDK", "javac", &["-version"]) {
        return;
    }
    let jar = match spymemcached_jar() {
        Some(j) => j,
        None => {
            skip("libspymemcached-java is not installed (/usr/share/java/spymemcached.jar); scripts/setup installs it");
            return;
        }
    };
    // Compile into a directory of our own (tests run in parallel).
    let dir = std::env::temp_dir().join(format!("petrel-spy-{}-{mode}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("class dir");
    let out = Command::new("javac")
        .arg("-cp")
        .arg(&jar)
        .arg("-d")
        .arg(&dir)
        .arg(script("SpyCheck.java"))
        .output()
        .expect("run javac");
    assert!(
        out.status.success(),
        "javac SpyCheck.java: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cp = format!("{}:{}", dir.display(), jar.display());
    compare_client(
        &format!("spymemcached {mode}"),
        "java",
        &["-cp", &cp, "SpyCheck"],
        &[mode],
        &format!("spymemcached {mode}: done"),
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `memccapable -a` (libmemcached's protocol conformance tool): every ASCII test passes, as it
/// does against memcached. It gates many of its tests on the server's version.
#[test]
fn memccapable_ascii() {
    if !have(
        "libmemcached-tools",
        "sh",
        &["-c", "command -v memccapable"],
    ) {
        return;
    }
    let Some(pair) = start_pair(&[]) else {
        return;
    };
    let run = |s: &Server| {
        let out = timed("memccapable")
            .args(["-a", "-t", "10", "-h", "127.0.0.1", "-p"])
            .arg(s.tcp_port.to_string())
            .output()
            .expect("run memccapable");
        (out.status, printed(&out))
    };
    let (ref_status, reference) = run(&pair.reference);
    let (status, under_test) = run(&pair.under_test);
    let results = |t: &str| -> Vec<String> {
        t.lines()
            .filter(|l| l.starts_with("ascii "))
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect()
    };
    let want = results(&reference);
    assert!(
        ref_status.success() && reference.contains("All tests passed") && want.len() >= 27,
        "memccapable -a against memcached: {ref_status}\n{reference}"
    );
    assert!(want.iter().all(|l| l.ends_with("[pass]")), "{reference}");
    assert!(
        status.success() && under_test.contains("All tests passed"),
        "memccapable -a against the server under test: {status}\n{under_test}\nserver log:\n{}",
        pair.under_test.log()
    );
    assert_eq!(results(&under_test), want, "{under_test}");
}

/// pymemcache's own integration tests (shipped in its wheel, run with pytest) pass against the
/// server under test as they do against memcached; among them `cache_memlimit(50)`.
#[test]
fn pymemcache_integration_suite() {
    if !have(
        "pymemcache's tests and pytest (PyPI)",
        "python3",
        &["-c", "import pytest, pymemcache.test.test_integration"],
    ) {
        return;
    }
    let dir = Command::new("python3")
        .args([
            "-c",
            "import os, pymemcache.test as t; print(os.path.dirname(t.__file__))",
        ])
        .output()
        .expect("python3");
    let dir = String::from_utf8_lossy(&dir.stdout).trim().to_string();
    let suite = format!("{dir}/test_integration.py");
    let Some(pair) = start_pair(&[]) else {
        return;
    };
    let run = |s: &Server| {
        let out = timed("python3")
            .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfEs"])
            .arg(&suite)
            .args(["-m", "integration", "--server", "127.0.0.1", "--port"])
            .arg(s.tcp_port.to_string())
            .current_dir(std::env::temp_dir())
            .output()
            .expect("run pytest");
        let text = printed(&out);
        let summary = text
            .lines()
            .rev()
            .find(|l| l.contains(" passed"))
            .map(|l| l.split(" in ").next().unwrap_or(l).trim().to_string())
            .unwrap_or_default();
        (out.status.success(), summary, text)
    };
    let (ok, reference, text) = run(&pair.reference);
    assert!(
        ok && !reference.contains("failed") && !reference.is_empty(),
        "pymemcache's suite against memcached: {text}"
    );
    let (ok, under_test, text) = run(&pair.under_test);
    assert!(
        ok,
        "pymemcache's suite against the server under test: {text}\nserver log:\n{}",
        pair.under_test.log()
    );
    assert_eq!(under_test, reference, "{text}");
    eprintln!("pymemcache integration suite: {under_test} on both");
}

/// Runs Debian's memcached-tool (a Perl script, with warnings on) in `mode` against `server`;
/// returns its output, asserting it exited 0 and printed no Perl warning.
fn memcached_tool(server: &Server, mode: &str) -> String {
    let out = timed("perl")
        .args(["-w", MEMCACHED_TOOL])
        .arg(format!("127.0.0.1:{}", server.tcp_port))
        .arg(mode)
        .output()
        .expect("run memcached-tool");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success() && !stderr.contains(" line "),
        "memcached-tool {mode} against {:?}: {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        server.kind,
        out.status
    );
    stdout
}

/// Debian's memcached-tool (in the memcached package).
const MEMCACHED_TOOL: &str = "/usr/share/memcached/scripts/memcached-tool";

/// The same items stored in both servers through raw commands: plain keys, keys memcached-tool
/// must percent-decode, flags, an absolute expiry, a fetched one.
fn store_items(server: &Server) {
    let mut c = petrel_tests::tcp::Conn::connect(server.tcp_addr());
    c.check(b"set plain 0 0 5\r\nhello\r\n", b"STORED\r\n");
    c.check(b"set with%20percent 7 0 3\r\nabc\r\n", b"STORED\r\n");
    c.check(
        b"set slash/colon:key 0 2000000000 2\r\nxy\r\n",
        b"STORED\r\n",
    );
    c.check(b"set fetched 42 0 1\r\nz\r\n", b"STORED\r\n");
    c.check(b"get fetched\r\n", b"VALUE fetched 42 1\r\nz\r\nEND\r\n");
}

#[test]
fn memcached_tool_modes() {
    if !Path::new(MEMCACHED_TOOL).is_file() {
        skip(&format!(
            "{MEMCACHED_TOOL} is missing (Debian package memcached)"
        ));
        return;
    }
    let Some(pair) = start_pair(&[]) else {
        return;
    };
    for s in pair.both() {
        store_items(s);
    }
    // dump: `add` commands that restore every item; the same on both (order aside).
    let dump = |s: &Server| {
        let text = memcached_tool(s, "dump");
        let mut records: Vec<String> = text
            .split("add ")
            .filter(|r| !r.is_empty())
            .map(|r| format!("add {r}"))
            .collect();
        records.sort();
        records
    };
    let want = dump(&pair.reference);
    assert_eq!(want.len(), 4, "{want:?}");
    assert_eq!(dump(&pair.under_test), want);
    // keys: the metadump lines; key, expiry, fetched and memcached's item size agree (cas and
    // last access are each server's own).
    let keys = |s: &Server| {
        let mut lines: Vec<String> = memcached_tool(s, "keys")
            .lines()
            .map(|l| {
                l.split(' ')
                    .filter(|f| {
                        !f.starts_with("la=") && !f.starts_with("cas=") && !f.starts_with("cls=")
                    })
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        lines.sort();
        lines
    };
    assert_eq!(keys(&pair.under_test), keys(&pair.reference));
    // stats and settings: every field memcached-tool prints for memcached that Petrel also has
    // keeps its meaning; the ones that must agree here do.
    let fields = |text: &str| -> std::collections::HashMap<String, String> {
        text.lines()
            .skip(1)
            .filter_map(|l| {
                let mut w = l.split_whitespace();
                Some((w.next()?.to_string(), w.next().unwrap_or("").to_string()))
            })
            .collect()
    };
    let a = fields(&memcached_tool(&pair.reference, "stats"));
    let b = fields(&memcached_tool(&pair.under_test, "stats"));
    for name in [
        "version",
        "curr_items",
        "limit_maxbytes",
        "threads",
        "cmd_get",
        "get_hits",
    ] {
        assert_eq!(b.get(name), a.get(name), "stats {name}");
    }
    let a = fields(&memcached_tool(&pair.reference, "settings"));
    let b = fields(&memcached_tool(&pair.under_test, "settings"));
    for name in [
        "maxbytes",
        "maxconns",
        "evictions",
        "item_size_max",
        "cas_enabled",
    ] {
        assert_eq!(b.get(name), a.get(name), "settings {name}");
    }
    // sizes: memcached without -o track_sizes.
    assert_eq!(
        memcached_tool(&pair.under_test, "sizes"),
        memcached_tool(&pair.reference, "sizes").replace(
            &pair.reference.tcp_port.to_string(),
            &pair.under_test.tcp_port.to_string()
        )
    );
    // display: the slab table's header; Petrel has no slab classes, so no rows.
    let display = memcached_tool(&pair.under_test, "display");
    assert!(display.starts_with("  #  Item_Size  Max_age"), "{display}");
    assert!(memcached_tool(&pair.reference, "display").lines().count() >= 2);
}

/// Reply bytes of the admin commands clients send, the same as memcached's where both servers
/// are in the same state (fresh, same `-m`).
#[test]
fn admin_commands_reply_as_memcached() {
    let Some(pair) = start_pair(&[]) else {
        return;
    };
    let requests: &[&[u8]] = &[
        b"stats items\r\n",
        b"stats slabs\r\n",
        b"stats sizes\r\n",
        b"cache_memlimit 7\r\n",
        b"cache_memlimit 0\r\n",
        b"cache_memlimit 4294967296\r\n",
        b"cache_memlimit 1000000001\r\n",
        b"cache_memlimit -1\r\n",
        b"cache_memlimit x\r\n",
        b"cache_memlimit\r\n",
        b"cache_memlimit 1 2 3\r\n",
        b"cache_memlimit 7 noreply\r\n",
        b"cache_memlimit x noreply\r\n",
        b"cache_memlimit 32\r\n",
        b"cache_memlimit 16 9\r\n",
        b"cache_memlimit 64 noreply\r\n",
        b"stats slabs\r\n",
        b"lru_crawler metadump 0\r\n",
        b"lru_crawler metadump 64\r\n",
        b"lru_crawler metadump 1,x\r\n",
        b"lru_crawler metadump all noreply\r\n",
        b"lru_crawler metadump\r\n",
        b"lru_crawler\r\n",
        b"shutdown\r\n",
        b"shutdown graceful\r\n",
        b"shutdown foo\r\n",
        b"mn\r\n",
    ];
    let replies = |s: &Server| {
        let mut c = petrel_tests::tcp::Conn::connect(s.tcp_addr());
        let mut all = Vec::new();
        for r in requests {
            c.send(r);
            c.send(b"mn\r\n");
            let got = c.read_until_suffix(b"MN\r\n", std::time::Duration::from_secs(10));
            all.push((
                String::from_utf8_lossy(r).into_owned(),
                String::from_utf8_lossy(&got).into_owned(),
            ));
        }
        all
    };
    let want = replies(&pair.reference);
    let got = replies(&pair.under_test);
    for (w, g) in want.iter().zip(&got) {
        assert_eq!(g, w, "request {:?}", w.0);
    }
    // An empty metadump is just END on both.
    for s in pair.both() {
        let mut c = petrel_tests::tcp::Conn::connect(s.tcp_addr());
        c.check(b"flush_all\r\n", b"OK\r\n");
        let mut c = petrel_tests::tcp::Conn::connect(s.tcp_addr());
        c.check(b"lru_crawler metadump all\r\n", b"END\r\n");
    }
    // limit_maxbytes follows cache_memlimit on both (the last one set 64).
    for s in pair.both() {
        assert_eq!(
            petrel_tests::tcp::stat(s.tcp_addr(), "limit_maxbytes"),
            64 << 20
        );
    }
}

/// `shutdown` with `-A` (memcached's flag): the connection closes without a reply and the
/// process exits cleanly, on both servers; `shutdown graceful` too.
#[test]
fn shutdown_with_dash_a() {
    for mode in ["shutdown", "shutdown graceful"] {
        let Some(mut pair) = start_pair(&["-A"]) else {
            return;
        };
        for s in [&mut pair.reference, &mut pair.under_test] {
            let mut c = petrel_tests::tcp::Conn::connect(s.tcp_addr());
            c.check(
                b"shutdown foo\r\n",
                b"CLIENT_ERROR invalid shutdown mode\r\n",
            );
            c.send(format!("{mode}\r\n").as_bytes());
            let rest = c.read_to_eof(std::time::Duration::from_secs(20));
            assert_eq!(rest.as_deref(), Some(&b""[..]), "{:?}: {mode}", s.kind);
            let status = s
                .wait_timeout(std::time::Duration::from_secs(20))
                .unwrap_or_else(|| panic!("{:?} still runs after {mode}", s.kind));
            if s.kind == Kind::Petrel {
                assert!(status.success(), "{mode}: {status}\n{}", s.log());
                assert!(s.log().contains("a client sent shutdown"), "{}", s.log());
            }
        }
    }
}

/// `cache_memlimit` shrinks the memory Petrel uses within its arena (evicting down to the new
/// limit) and grows it back; above the arena it is refused.
#[test]
fn cache_memlimit_shrinks_and_grows() {
    let Some(target) = Target::from_env() else {
        return;
    };
    if target.kind != Kind::Petrel {
        petrel_tests::skip::not_applicable("memory use after cache_memlimit is Petrel's own");
        return;
    }
    let s = target
        .builder()
        .memory_mib(64)
        .no_udp()
        .arg("--admin-port")
        .arg("0")
        .start();
    let mut c = petrel_tests::tcp::Conn::connect(s.tcp_addr());
    let value = vec![b'v'; 10_000];
    let fill = |c: &mut petrel_tests::tcp::Conn, from: usize, n: usize| {
        for i in from..from + n {
            let mut req = format!("set k{i} 0 0 {}\r\n", value.len()).into_bytes();
            req.extend_from_slice(&value);
            req.extend_from_slice(b"\r\n");
            c.check(&req, b"STORED\r\n");
        }
    };
    fill(&mut c, 0, 5_000); // about 50 MB
    let bytes_before = petrel_tests::tcp::stat(s.tcp_addr(), "bytes");
    assert!(bytes_before > 40 << 20, "{bytes_before}");
    c.check(
        b"cache_memlimit 65\r\n",
        b"MEMLIMIT_ADJUST_FAILED out of bounds or unable to adjust\r\n",
    );
    c.check(b"cache_memlimit 16\r\n", b"OK\r\n");
    assert_eq!(
        petrel_tests::tcp::stat(s.tcp_addr(), "limit_maxbytes"),
        16 << 20
    );
    let bytes = petrel_tests::tcp::stat(s.tcp_addr(), "bytes");
    assert!(bytes <= 16 << 20, "bytes {bytes} after cache_memlimit 16");
    assert!(petrel_tests::tcp::stat(s.tcp_addr(), "evictions") > 0);
    // Writing on stays within the limit.
    fill(&mut c, 5_000, 3_000);
    let bytes = petrel_tests::tcp::stat(s.tcp_addr(), "bytes");
    assert!(bytes <= 16 << 20, "bytes {bytes} after writing 30 MB more");
    c.check(
        b"get k7999\r\n",
        &petrel_tests::tcp::value_reply("k7999", 0, &value),
    );
    // Back to the whole arena: it fills past 16 MiB again.
    c.check(b"cache_memlimit 64\r\n", b"OK\r\n");
    fill(&mut c, 8_000, 4_000);
    let bytes = petrel_tests::tcp::stat(s.tcp_addr(), "bytes");
    assert!(bytes > 30 << 20, "bytes {bytes} after growing back");
    assert_eq!(
        petrel_tests::tcp::stat(s.tcp_addr(), "petrel_memlimit_set"),
        2
    );
    assert_eq!(
        petrel_tests::tcp::stat(s.tcp_addr(), "petrel_memlimit_refused"),
        1
    );
}

/// `-X` (memcached's `--disable-dumping`) refuses `lru_crawler metadump` as memcached does.
#[test]
fn metadump_refused_with_dash_x() {
    let Some(pair) = start_pair(&["-X"]) else {
        return;
    };
    for s in pair.both() {
        let mut c = petrel_tests::tcp::Conn::connect(s.tcp_addr());
        c.check(
            b"lru_crawler metadump all\r\n",
            b"ERROR metadump not allowed\r\n",
        );
    }
}

// ----- memcached's binary protocol -----------------------------------------------------------

#[test]
fn dalli_binary() {
    compare_script(&DALLI, &[], "Dalli", "dalli: done");
}

#[test]
fn pylibmc_binary() {
    compare_script(
        &PYLIBMC,
        &["binary"],
        "pylibmc binary",
        "pylibmc binary: done",
    );
}

#[test]
fn php_memcached_binary() {
    compare_script(
        &PHP_MEMCACHED,
        &["binary"],
        "php-memcached binary",
        "php-memcached binary: done",
    );
}

#[test]
fn spymemcached_binary() {
    spymemcached("binary");
}

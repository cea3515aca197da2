//! Third-party clients and tools, each run against memcached 1.6.18 and against the server
//! under test in the same test: the same operations must give the same results.
//!
//! Every client script (`tests/clients/`) prints a transcript, one line per operation and its
//! result (CAS values left out); the two transcripts must be equal line for line, and each
//! script also asserts the results that would be wrong on any server. Both servers run with
//! `-I 2m` so that a value over 1 MB is stored and one over 2 MB refused.
//!
//! A client that is not installed skips its test with a `SKIPPED:` line on stderr, and fails it
//! when `CI` is set (`scripts/setup` installs them all from Debian and PyPI).

use petrel_tests::server::{in_ci, workspace_root, Kind, Server, Target};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Seconds a client script may run before it is killed (it normally takes about one).
const SCRIPT_TIMEOUT_SECS: u32 = 180;

/// The reference memcached and the server under test, both with the same flags.
struct Pair {
    reference: Server,
    under_test: Server,
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
    let msg = format!(
        "{what} is not installed (`{program} {}` failed); scripts/setup installs it",
        args.join(" ")
    );
    if in_ci() {
        panic!("{msg} (CI is set, so this is a failure)");
    }
    eprintln!("SKIPPED: {msg}");
    false
}

/// Runs `program args... 127.0.0.1 PORT tail...` against `server` under a timeout and returns
/// its stdout; panics with everything it printed (and the server's log) if it fails.
fn run_client(program: &str, args: &[&str], server: &Server, tail: &[&str]) -> String {
    let out = Command::new("timeout")
        .arg(SCRIPT_TIMEOUT_SECS.to_string())
        .arg(program)
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
    // Debian's module is for Debian's python (`python3` may be another one).
    if !have(
        "python3-pylibmc",
        "/usr/bin/python3",
        &["-c", "import pylibmc"],
    ) {
        return;
    }
    let s = script("pylibmc_check.py");
    compare_client(
        "pylibmc text",
        "/usr/bin/python3",
        &[s.to_str().unwrap()],
        &["text"],
        "pylibmc text: done",
    );
}

#[test]
fn php_memcached_text() {
    if !have(
        "php-memcached with php-cli",
        "php",
        &["-r", "exit(class_exists('Memcached') ? 0 : 1);"],
    ) {
        return;
    }
    let s = script("php_check.php");
    compare_client(
        "php-memcached text",
        "php",
        &[s.to_str().unwrap()],
        &["text"],
        "php-memcached text: done",
    );
}

#[test]
fn perl_cache_memcached_fast() {
    if !have(
        "libcache-memcached-fast-perl",
        "perl",
        &["-MCache::Memcached::Fast", "-e", "1"],
    ) {
        return;
    }
    let s = script("perl_check.pl");
    compare_client(
        "Cache::Memcached::Fast",
        "perl",
        &[s.to_str().unwrap()],
        &[],
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
            let msg = "libspymemcached-java is not installed (/usr/share/java/spymemcached.jar); scripts/setup installs it";
            if in_ci() {
                panic!("{msg} (CI is set, so this is a failure)");
            }
            eprintln!("SKIPPED: {msg}");
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
        let out = Command::new("timeout")
            .arg(SCRIPT_TIMEOUT_SECS.to_string())
            .args(["memccapable", "-a", "-t", "10", "-h", "127.0.0.1", "-p"])
            .arg(s.tcp_port.to_string())
            .output()
            .expect("run memccapable");
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status, text)
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

//! Skips that cannot go unnoticed.
//!
//! A test that cannot run in its environment (no root, no memcached, a kernel feature missing)
//! calls [`skip`] and returns. [`skip`] prints `SKIPPED <test>: <reason>` on stderr and appends
//! the same line to the file named by `PETREL_SKIP_LOG` (`scripts/test` sets it and prints every
//! line with a count at the end, since `cargo test` swallows the output of passing tests).
//! Under `CI=true` it panics instead, naming what is missing: CI provides everything the suite
//! needs (`scripts/setup`, root), so a skip there is a failure.
//!
//! A Petrel-only test run against memcached (`PETREL_TEST_TARGET=memcached`) is not a skip but
//! a test that does not apply: [`not_applicable`] records it the same way, and never fails.

use std::io::Write;

/// Environment variable naming the file skip lines are appended to.
pub const SKIP_LOG_ENV: &str = "PETREL_SKIP_LOG";

/// True when the environment says the suite runs in CI (`CI` set, not empty, `0` or `false`).
pub fn in_ci() -> bool {
    matches!(std::env::var("CI"), Ok(v) if !v.is_empty() && v != "false" && v != "0")
}

/// True when the process runs as root (effective uid 0).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The calling test, as `<test binary>::<test name>` (libtest names each test's thread).
pub fn test_name() -> String {
    let binary = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .map(|s| match s.rsplit_once('-') {
            // cargo names test binaries `<name>-<16 hex digits>`
            Some((name, hash)) if hash.len() == 16 => name.to_string(),
            _ => s,
        })
        .unwrap_or_else(|| "?".into());
    let thread = std::thread::current();
    format!("{binary}::{}", thread.name().unwrap_or("?"))
}

fn record(kind: &str, reason: &str) -> String {
    let line = format!("{kind} {}: {}", test_name(), reason.replace('\n', " "));
    eprintln!("\n*** {line} ***\n");
    if let Some(path) = std::env::var_os(SKIP_LOG_ENV) {
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            // one write per line, O_APPEND: lines of tests running in parallel do not mix
            let _ = f.write_all(format!("{line}\n").as_bytes());
        }
    }
    line
}

/// Records that the calling test does not run here because of `reason` (say what is missing:
/// "needs root (netns, veth, XDP)", "memcached is not installed"). The caller returns after it.
///
/// Panics under CI (see [`in_ci`]): there a missing prerequisite is a failure.
#[track_caller]
pub fn skip(reason: &str) {
    if in_ci() {
        panic!(
            "{}: cannot run: {reason} (CI is set, where every test must run: CI runs as root after scripts/setup)",
            test_name()
        );
    }
    record("SKIPPED", reason);
}

/// Records that the calling test does not apply to the server under test (a Petrel-only
/// feature while `PETREL_TEST_TARGET=memcached`). Never fails.
pub fn not_applicable(reason: &str) {
    record("NOT-APPLICABLE", reason);
}

/// True when running as root; otherwise [`skip`]s with "needs root (`what`)".
#[track_caller]
pub fn require_root(what: &str) -> bool {
    if is_root() {
        return true;
    }
    skip(&format!("needs root ({what})"));
    false
}

/// True when `program` runs (`program ARG` exits, whatever its status); otherwise [`skip`]s
/// with "`program` is not installed (`hint`)".
#[track_caller]
pub fn require_program(program: &str, arg: &str, hint: &str) -> bool {
    let found = std::process::Command::new(program)
        .arg(arg)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok();
    if !found {
        skip(&format!("{program} is not installed ({hint})"));
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_name_names_the_binary_and_the_test() {
        let n = test_name();
        assert!(
            n.ends_with("::skip::tests::test_name_names_the_binary_and_the_test"),
            "{n}"
        );
        assert!(n.starts_with("petrel_testkit::"), "{n}");
    }
}

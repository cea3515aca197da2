//! Issue 9: petrel-core runs without `std`, `alloc` or libc.
//!
//! Builds `tests/nostd-demo` (a `#![no_std]` `#![no_main]` static binary,
//! its own cargo workspace, own target directory under `target/`), runs it,
//! compares its transcript with `expected.txt` (what memcached 1.6 answered
//! to the same session, see `make_transcript.py`), and checks with `nm` that
//! no std, alloc, allocator or libc symbol is linked and that the ELF has no
//! program interpreter (fully static).

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// Build the demo in release mode and return the path of the binary.
fn build_demo() -> PathBuf {
    let root = repo_root();
    let target = root.join("target").join("nostd-demo");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .arg("build")
        .arg("--release")
        .arg("--manifest-path")
        .arg(root.join("tests/nostd-demo/Cargo.toml"))
        .arg("--target-dir")
        .arg(&target)
        // Flags meant for the outer build must not reach the demo's link.
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .output()
        .expect("run cargo");
    assert!(
        out.status.success(),
        "building the no_std demo failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    target.join("release").join("petrel-nostd-demo")
}

/// True when `sym` (demangled) names something in crate `krate` (`std`,
/// `alloc`) rather than, say, `core::alloc`.
fn mentions_crate(sym: &str, krate: &str) -> bool {
    let pat = format!("{krate}::");
    let mut from = 0;
    while let Some(i) = sym[from..].find(&pat) {
        let at = from + i;
        let before = sym[..at].chars().next_back();
        if !matches!(before, Some(c) if c.is_ascii_alphanumeric() || c == '_' || c == ':') {
            return true;
        }
        from = at + pat.len();
    }
    false
}

/// The ELF64 program header types of `bin`.
fn program_header_types(bin: &[u8]) -> Vec<u32> {
    assert_eq!(&bin[..5], b"\x7fELF\x02", "not an ELF64 file");
    let u16_at = |o: usize| u16::from_le_bytes([bin[o], bin[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(bin[0x20..0x28].try_into().unwrap()) as usize;
    let (phentsize, phnum) = (u16_at(0x36), u16_at(0x38));
    (0..phnum)
        .map(|i| {
            let o = phoff + i * phentsize;
            u32::from_le_bytes(bin[o..o + 4].try_into().unwrap())
        })
        .collect()
}

#[test]
fn nostd_demo_matches_memcached_transcript_and_links_no_std() {
    let bin = build_demo();

    let run = Command::new(&bin).output().expect("run the demo");
    assert_eq!(
        run.status.code(),
        Some(0),
        "demo failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let expected = std::fs::read(repo_root().join("tests/nostd-demo/expected.txt")).unwrap();
    if run.stdout != expected {
        let actual_path = bin.with_file_name("actual.txt");
        std::fs::write(&actual_path, &run.stdout).unwrap();
        let (a, e) = (
            String::from_utf8_lossy(&run.stdout),
            String::from_utf8_lossy(&expected),
        );
        let line = a.lines().zip(e.lines()).position(|(x, y)| x != y);
        panic!(
            "transcript differs from memcached's (first differing line {:?}: got {:?}, want {:?}); \
             full output in {}",
            line.map(|l| l + 1),
            line.and_then(|l| a.lines().nth(l)),
            line.and_then(|l| e.lines().nth(l)),
            actual_path.display()
        );
    }

    let nm = Command::new("nm")
        .arg("-C")
        .arg(&bin)
        .output()
        .expect("run nm");
    assert!(
        nm.status.success(),
        "nm failed: {}",
        String::from_utf8_lossy(&nm.stderr)
    );
    let symbols = String::from_utf8_lossy(&nm.stdout);
    let mut seen = 0;
    for line in symbols.lines() {
        seen += 1;
        let mut f = line.split_whitespace();
        let kind = if line.starts_with(' ') {
            f.next()
        } else {
            f.nth(1)
        };
        let name = line.splitn(3, ' ').nth(2).unwrap_or("");
        assert_ne!(
            kind,
            Some("U"),
            "undefined (dynamically resolved) symbol: {line}"
        );
        for krate in ["std", "alloc"] {
            assert!(
                !mentions_crate(name, krate),
                "{krate} symbol linked: {line}"
            );
        }
        for bad in [
            "__rust_alloc",
            "__rdl_alloc",
            "__rg_alloc",
            "malloc",
            "free",
            "__libc_start_main",
        ] {
            assert!(
                name != bad && !name.starts_with(&format!("{bad}@")),
                "{bad} linked: {line}"
            );
        }
    }
    assert!(
        seen > 10,
        "nm listed too few symbols ({seen}): was the binary stripped?"
    );
    assert!(
        symbols.contains("petrel_core::"),
        "the core is not in the binary?"
    );

    // Static: no PT_INTERP (3) and no PT_DYNAMIC (2) program header.
    let elf = std::fs::read(&bin).unwrap();
    let types = program_header_types(&elf);
    assert!(
        !types.contains(&3),
        "the demo has a program interpreter: {types:?}"
    );
    assert!(
        !types.contains(&2),
        "the demo is dynamically linked: {types:?}"
    );
}

#[test]
fn nostd_demo_symbol_filter_can_fail() {
    // The checks above must be able to see std symbols.
    assert!(mentions_crate("std::io::stdio::_print", "std"));
    assert!(mentions_crate(
        "<alloc::vec::Vec<T> as Drop>::drop",
        "alloc"
    ));
    assert!(!mentions_crate("core::alloc::layout::Layout::new", "alloc"));
    assert!(!mentions_crate("petrel_core::store::x", "std"));
}

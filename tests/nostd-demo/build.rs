//! Link the demo without libc's start files and statically. Passed to the
//! binary only (`rustc-link-arg-bins`): RUSTFLAGS would also reach the build
//! scripts of dependencies, which then crash.
fn main() {
    println!("cargo:rustc-link-arg-bins=-nostartfiles");
    println!("cargo:rustc-link-arg-bins=-static");
    println!("cargo:rerun-if-changed=build.rs");
}

//! Petrel's own XDP program: raw eBPF instructions built in Rust and
//! loaded with `bpf(2)`, without clang, ELF files or libxdp's dispatcher.

pub mod insn;
pub mod program;
pub mod sys;

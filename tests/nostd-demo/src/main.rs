//! petrel-core on bare metal, or as near as a Linux process gets: no `std`,
//! no `alloc`, no libc, no start files. The program takes a static byte array
//! as the engine's arena, plays the scripted session in `session.txt` (sets,
//! gets, a multi-get, incr/decr, delete, an item expiring when the clock is
//! advanced, meta commands, an error, a value larger than the output buffer),
//! writes a transcript to stdout with raw `write` syscalls and leaves through
//! a raw `exit` syscall.
//!
//! Transcript: for each step every request line is echoed as `>>> LINE\n`,
//! then the engine's reply bytes follow. `expected.txt` holds what memcached
//! 1.6 answers to the same session (`make_transcript.py`).
//!
//! Exit codes: 0 ok, 2 configuration or arena too small, 3 the engine asked
//! to close the connection, 4 a step left an incomplete request, 5 a step is
//! larger than the request buffer, 101 panic.
#![no_std]
#![no_main]

use petrel_core::engine::{Engine, EngineConfig, Session, Status, Transport, MIN_OUTPUT_BYTES};
use petrel_core::store::StoreConfig;
use petrel_core::Time;

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
compile_error!("the demo's syscalls are written for x86_64 Linux");

/// Bytes of the static arena; the engine's needs are checked at run time.
const ARENA_BYTES: usize = 4 << 20;

/// Output buffer handed to `process`: the engine's minimum, so the 2500-byte
/// value in the session needs resumed replies.
const OUT_BYTES: usize = MIN_OUTPUT_BYTES;

/// Largest step of the session (request lines plus CRLFs).
const STEP_BYTES: usize = 8192;

/// The clock at the start of the session (Unix seconds).
const START_TIME: Time = 1_700_000_000;

/// The scripted session, embedded at compile time.
static SESSION: &[u8] = include_bytes!("../session.txt");

/// The arena. Handed out once, as `&'static mut`, by [`arena`].
static mut ARENA: [u8; ARENA_BYTES] = [0; ARENA_BYTES];

/// Raw Linux syscalls (x86_64 ABI: number in rax, arguments in rdi, rsi, rdx;
/// rcx and r11 are clobbered).
mod sys {
    use core::arch::asm;

    const SYS_WRITE: usize = 1;
    const SYS_EXIT: usize = 60;
    const EINTR: isize = 4;

    /// Write all of `bytes` to `fd`; false on an error other than EINTR.
    pub fn write_all(fd: usize, mut bytes: &[u8]) -> bool {
        while !bytes.is_empty() {
            let ret: isize;
            // SAFETY: write(2) reads `len` bytes from a valid, live slice and
            // touches no other memory of ours.
            unsafe {
                asm!(
                    "syscall",
                    inlateout("rax") SYS_WRITE => ret,
                    in("rdi") fd,
                    in("rsi") bytes.as_ptr(),
                    in("rdx") bytes.len(),
                    lateout("rcx") _,
                    lateout("r11") _,
                    options(nostack, readonly),
                );
            }
            if ret == -EINTR {
                continue;
            }
            if ret <= 0 {
                return false;
            }
            bytes = bytes.get(ret as usize..).unwrap_or(&[]);
        }
        true
    }

    /// Terminate the process (single-threaded, so `exit` ends it).
    pub fn exit(code: i32) -> ! {
        // SAFETY: exit(2) does not return; no memory is read or written.
        unsafe {
            asm!(
                "syscall",
                in("rax") SYS_EXIT,
                in("rdi") code as isize,
                options(noreturn, nostack),
            );
        }
    }
}

/// The memory functions the compiler emits calls to. Without libc nobody
/// provides them (compiler_builtins exports its versions only on targets that
/// have no libc), so the demo does, with x86 string instructions: a plain
/// Rust loop could be turned back into a call to the very function it
/// implements.
mod mem {
    use core::arch::asm;

    /// # Safety
    /// `dst` and `src` valid for `n` bytes, not overlapping.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn memcpy(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
        // SAFETY: the caller guarantees both ranges; rep movsb copies exactly
        // n bytes forward (the direction flag is clear per the ABI).
        unsafe {
            asm!("rep movsb", inout("rdi") dst => _, inout("rsi") src => _, inout("rcx") n => _,
                 options(nostack, preserves_flags));
        }
        dst
    }

    /// # Safety
    /// `dst` and `src` valid for `n` bytes; they may overlap.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn memmove(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
        if (dst as usize).wrapping_sub(src as usize) >= n {
            // Destination before the source or disjoint: a forward copy is safe.
            // SAFETY: as memcpy; forward copying never reads a byte it wrote.
            unsafe { memcpy(dst, src, n) };
        } else {
            // SAFETY: the caller guarantees both ranges; copying backwards
            // from the last byte (direction flag set, then cleared again as
            // the ABI requires) never reads a byte it already overwrote.
            unsafe {
                asm!("std", "rep movsb", "cld",
                     inout("rdi") dst.add(n - 1) => _, inout("rsi") src.add(n - 1) => _,
                     inout("rcx") n => _, options(nostack));
            }
        }
        dst
    }

    /// # Safety
    /// `dst` valid for `n` bytes.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn memset(dst: *mut u8, c: i32, n: usize) -> *mut u8 {
        // SAFETY: the caller guarantees the range; rep stosb stores n bytes.
        unsafe {
            asm!("rep stosb", inout("rdi") dst => _, inout("rcx") n => _, in("al") c as u8,
                 options(nostack, preserves_flags));
        }
        dst
    }

    /// # Safety
    /// `a` and `b` valid for `n` bytes.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
        let mut i = 0;
        while i < n {
            // SAFETY: i < n and the caller guarantees n readable bytes;
            // volatile reads keep the loop from becoming a memcmp call.
            let (x, y) = unsafe { (a.add(i).read_volatile(), b.add(i).read_volatile()) };
            if x != y {
                return i32::from(x) - i32::from(y);
            }
            i += 1;
        }
        0
    }

    /// # Safety
    /// `a` and `b` valid for `n` bytes.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
        // SAFETY: same contract as memcmp.
        unsafe { memcmp(a, b, n) }
    }
}

/// Referenced by the precompiled `core` even under `panic = "abort"`; never
/// called, because nothing unwinds.
#[unsafe(no_mangle)]
pub extern "C" fn rust_eh_personality() {}

fn print(bytes: &[u8]) {
    // Nothing sensible to do if stdout is gone; the test notices.
    let _ = sys::write_all(1, bytes);
}

fn fail(code: i32, msg: &[u8]) -> i32 {
    let _ = sys::write_all(2, msg);
    code
}

#[panic_handler]
fn panic(_info: &core::panic::PanicInfo<'_>) -> ! {
    let _ = sys::write_all(2, b"nostd-demo: panic\n");
    sys::exit(101)
}

/// The entry point the kernel jumps to. The stack pointer is 16-byte aligned
/// here (no return address was pushed); realign for a normal call and pass
/// nothing: the demo needs neither argv nor the environment.
///
/// # Safety
/// Only the kernel may call this, once, as the process entry point.
#[unsafe(naked)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn _start() -> ! {
    core::arch::naked_asm!(
        "xor ebp, ebp",
        "and rsp, -16",
        "call {main}",
        "ud2",
        main = sym start,
    );
}

extern "C" fn start() -> ! {
    sys::exit(run())
}

fn arena() -> &'static mut [u8] {
    // SAFETY: called exactly once (from `run`), single-threaded: this is the
    // only reference ever made to ARENA.
    unsafe { &mut *core::ptr::addr_of_mut!(ARENA) }
}

fn parse_u32(s: &[u8]) -> Option<u32> {
    let mut v: u32 = 0;
    if s.is_empty() {
        return None;
    }
    for &b in s {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u32::from(b - b'0'))?;
    }
    Some(v)
}

/// Send one step's bytes through the engine, printing every reply byte.
fn play(engine: &Engine<'_>, session: &mut Session, mut input: &[u8], now: Time) -> i32 {
    let mut out = [0u8; OUT_BYTES];
    loop {
        let p = engine.process(session, input, &mut out, now);
        print(out.get(..p.written).unwrap_or(&out));
        input = input.get(p.consumed..).unwrap_or(&[]);
        match p.status {
            Status::OutputFull => continue,
            Status::NeedInput => break,
            Status::Close => return fail(3, b"nostd-demo: engine closed the session\n"),
        }
    }
    if input.is_empty() {
        0
    } else {
        fail(4, b"nostd-demo: incomplete request left in a step\n")
    }
}

fn run() -> i32 {
    let cfg = EngineConfig {
        store: StoreConfig {
            item_memory_bytes: 1 << 20,
            segment_bytes: 64 << 10,
            max_item_bytes: 64 << 10,
            ..StoreConfig::default()
        },
        version: "nostd-demo",
        item_size_max_bytes: 64 << 10,
        ..EngineConfig::default()
    };
    let need = match Engine::required_bytes(&cfg) {
        Ok(n) => n,
        Err(_) => return fail(2, b"nostd-demo: bad engine configuration\n"),
    };
    let arena = arena();
    let Some(region) = arena.get_mut(..need) else {
        return fail(2, b"nostd-demo: static arena too small\n");
    };
    let engine = match Engine::new(&cfg, region) {
        Ok(e) => e,
        Err(_) => return fail(2, b"nostd-demo: engine construction failed\n"),
    };

    let mut session = Session::new(Transport::Tcp);
    let mut now: Time = START_TIME;
    let mut req = [0u8; STEP_BYTES];
    let mut len = 0;
    // Lines of the session; a blank line (or the end) closes a step.
    let mut lines = SESSION.split(|&b| b == b'\n').peekable();
    while let Some(line) = lines.next() {
        if line.first() == Some(&b'#') {
            continue;
        }
        if !line.is_empty() {
            print(b">>> ");
            print(line);
            print(b"\n");
            if let Some(n) = line.strip_prefix(b"@advance ") {
                let Some(secs) = parse_u32(n) else {
                    return fail(5, b"nostd-demo: bad @advance\n");
                };
                now += secs;
                engine.expire(now, usize::MAX);
                continue;
            }
            let Some(dst) = req.get_mut(len..len + line.len() + 2) else {
                return fail(5, b"nostd-demo: step too large\n");
            };
            dst[..line.len()].copy_from_slice(line);
            dst[line.len()..].copy_from_slice(b"\r\n");
            len += line.len() + 2;
        }
        if (line.is_empty() || lines.peek().is_none()) && len > 0 {
            let code = play(&engine, &mut session, &req[..len], now);
            if code != 0 {
                return code;
            }
            len = 0;
        }
    }
    0
}

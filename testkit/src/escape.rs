//! Printable rendering of protocol bytes for assertion messages.

/// Renders `bytes` with `\r`, `\n`, and non-printable bytes escaped, truncated to `max` bytes
/// (with a note saying how many were left out).
pub fn escape(bytes: &[u8], max: usize) -> String {
    let mut out = String::new();
    for &b in bytes.iter().take(max) {
        match b {
            b'\r' => out.push_str("\\r"),
            b'\n' => out.push_str("\\n\n"),
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    if bytes.len() > max {
        out.push_str(&format!("... ({} more bytes)", bytes.len() - max));
    }
    out
}

/// Panics with both byte strings escaped when `got != want`; `what` names the exchange.
#[track_caller]
pub fn assert_bytes_eq(got: &[u8], want: &[u8], what: &str) {
    if got != want {
        let at = got.iter().zip(want).take_while(|(a, b)| a == b).count();
        panic!(
            "{what}: reply differs at byte {at} (got {} bytes, want {})\n--- got:\n{}\n--- want:\n{}",
            got.len(),
            want.len(),
            escape(got, 2000),
            escape(want, 2000)
        );
    }
}

//! Parser tests: shapes and quirks checked against memcached 1.6.18.

use std::vec::Vec;

use super::*;
use crate::proto::ITEM_SIZE_MAX_BYTES;

struct Req {
    op: u8,
    key: Vec<u8>,
    extras: Vec<u8>,
    value: Vec<u8>,
    cas: u64,
    opaque: u32,
    keylen: Option<u16>,
    bodylen: Option<u32>,
    magic: u8,
}

fn req(op: u8) -> Req {
    Req {
        op,
        key: Vec::new(),
        extras: Vec::new(),
        value: Vec::new(),
        cas: 0,
        opaque: 0x0102_0304,
        keylen: None,
        bodylen: None,
        magic: REQUEST_MAGIC,
    }
}

impl Req {
    fn key(mut self, k: &[u8]) -> Self {
        self.key = k.to_vec();
        self
    }
    fn extras(mut self, e: &[u8]) -> Self {
        self.extras = e.to_vec();
        self
    }
    fn value(mut self, v: &[u8]) -> Self {
        self.value = v.to_vec();
        self
    }
    fn bytes(&self) -> Vec<u8> {
        let mut b = std::vec![0u8; HEADER_BYTES];
        let mut h = Header::new_unchecked(&mut b[..]);
        h.set_magic(self.magic);
        h.set_opcode(self.op);
        h.set_key_len(self.keylen.unwrap_or(self.key.len() as u16));
        h.set_extras_len(self.extras.len() as u8);
        h.set_body_len(
            self.bodylen
                .unwrap_or((self.key.len() + self.extras.len() + self.value.len()) as u32),
        );
        h.set_opaque(self.opaque);
        h.set_cas(self.cas);
        b.extend_from_slice(&self.extras);
        b.extend_from_slice(&self.key);
        b.extend_from_slice(&self.value);
        b
    }
}

fn p(b: &[u8]) -> Parsed<'_> {
    parse(b, ITEM_SIZE_MAX_BYTES)
}

fn set_extras(flags: u32, exp: u32) -> Vec<u8> {
    let mut e = flags.to_be_bytes().to_vec();
    e.extend_from_slice(&exp.to_be_bytes());
    e
}

fn error_of(b: &[u8]) -> (Status, bool, usize) {
    match p(b) {
        Parsed::Error(Refusal::Reply(e)) => (e.status, e.close, e.skip),
        other => panic!("expected an error, got {other:?}"),
    }
}

#[test]
fn incomplete_requests_need_more() {
    let b = req(opcode::SET)
        .key(b"k")
        .extras(&set_extras(1, 2))
        .value(b"value")
        .bytes();
    for n in 0..b.len() {
        assert_eq!(p(&b[..n]), Parsed::NeedMore, "{n}");
    }
    assert!(matches!(p(&b), Parsed::Request { consumed, .. } if consumed == b.len()));
}

#[test]
fn bad_magic_closes() {
    let mut r = req(opcode::NOOP);
    r.magic = 0x81;
    assert_eq!(p(&r.bytes()), Parsed::Error(Refusal::BadMagic));
}

#[test]
fn set_borrows_key_and_value() {
    let mut r = req(opcode::SETQ)
        .key(b"key")
        .extras(&set_extras(0xdead_beef, 300))
        .value(b"val");
    r.cas = 99;
    let b = r.bytes();
    match p(&b) {
        Parsed::Request { request, consumed } => {
            assert_eq!(consumed, b.len());
            assert_eq!(request.opcode, opcode::SETQ);
            assert_eq!(request.opaque, 0x0102_0304);
            assert_eq!(request.cas, 99);
            assert_eq!(
                request.command,
                Command::Store {
                    mode: StoreMode::Set,
                    key: b"key",
                    flags: 0xdead_beef,
                    exptime: 300,
                    value: b"val",
                    quiet: true
                }
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn get_family() {
    for (op, quiet, with_key) in [
        (opcode::GET, false, false),
        (opcode::GETQ, true, false),
        (opcode::GETK, false, true),
        (opcode::GETKQ, true, true),
    ] {
        let b = req(op).key(b"abc").bytes();
        assert_eq!(
            p(&b),
            Parsed::Request {
                request: Request {
                    opcode: op,
                    opaque: 0x0102_0304,
                    cas: 0,
                    command: Command::Get {
                        key: b"abc",
                        quiet,
                        with_key,
                        touch: None
                    }
                },
                consumed: 27
            }
        );
    }
    let b = req(opcode::GATKQ)
        .key(b"abc")
        .extras(&7u32.to_be_bytes())
        .bytes();
    assert!(matches!(
        p(&b),
        Parsed::Request {
            request: Request {
                command: Command::Get {
                    quiet: true,
                    with_key: true,
                    touch: Some(7),
                    ..
                },
                ..
            },
            ..
        }
    ));
}

#[test]
fn arith_fields() {
    let mut e = 5u64.to_be_bytes().to_vec();
    e.extend_from_slice(&10u64.to_be_bytes());
    e.extend_from_slice(&ARITH_NO_CREATE.to_be_bytes());
    let b = req(opcode::DECREMENTQ).key(b"n").extras(&e).bytes();
    match p(&b) {
        Parsed::Request { request, .. } => assert_eq!(
            request.command,
            Command::Arith {
                incr: false,
                key: b"n",
                delta: 5,
                initial: 10,
                exptime: ARITH_NO_CREATE,
                quiet: true
            }
        ),
        other => panic!("{other:?}"),
    }
}

/// memcached 1.6.18: key or extras longer than the body is `Unknown
/// command` and a close, checked before the key length.
#[test]
fn inconsistent_lengths_close() {
    let mut r = req(opcode::GET).key(b"kk");
    r.bodylen = Some(1);
    assert_eq!(error_of(&r.bytes()), (Status::UnknownCommand, true, 0));
    let mut r = req(opcode::GET).key(&[b'k'; 300]);
    r.bodylen = Some(10);
    assert_eq!(error_of(&r.bytes()), (Status::UnknownCommand, true, 0));
    // memcached waits for the key bytes before it looks
    let b = r.bytes();
    assert_eq!(p(&b[..HEADER_BYTES + 299]), Parsed::NeedMore);
}

#[test]
fn long_key_is_invalid_and_closes() {
    let b = req(opcode::GET).key(&[b'k'; 251]).bytes();
    assert_eq!(error_of(&b), (Status::InvalidArguments, true, 0));
    let b = req(opcode::GET).key(&[b'k'; 250]).bytes();
    assert!(matches!(p(&b), Parsed::Request { .. }));
}

#[test]
fn wrong_shapes_are_invalid_and_close() {
    let cases: Vec<Vec<u8>> = std::vec![
        req(opcode::GET).key(b"a").extras(&[0; 4]).bytes(),
        req(opcode::GET).bytes(),
        req(opcode::SET)
            .key(b"a")
            .extras(&[0; 4])
            .value(b"v")
            .bytes(),
        req(opcode::SET).extras(&[0; 8]).value(b"v").bytes(),
        req(opcode::NOOP).value(b"xx").bytes(),
        req(opcode::VERSION).key(b"x").bytes(),
        req(opcode::QUIT).extras(&[0; 4]).bytes(),
        req(opcode::FLUSH).extras(&[0; 2]).bytes(),
        req(opcode::FLUSH).key(b"k").bytes(),
        req(opcode::INCREMENT).key(b"n").extras(&[0; 8]).bytes(),
        req(opcode::INCREMENT)
            .key(b"n")
            .extras(&[0; 20])
            .value(b"x")
            .bytes(),
        req(opcode::TOUCH).key(b"a").bytes(),
        req(opcode::GAT).extras(&[0; 4]).bytes(),
        req(opcode::DELETE).key(b"a").value(b"x").bytes(),
        req(opcode::APPEND)
            .key(b"a")
            .extras(&[0; 8])
            .value(b"x")
            .bytes(),
        req(opcode::STAT).extras(&[0; 4]).bytes(),
        req(opcode::SASL_LIST_MECHS).value(b"x").bytes(),
        req(opcode::SASL_AUTH).key(b"PLAIN").extras(&[0; 4]).bytes(),
        req(opcode::SASL_STEP).value(b"x").bytes(),
    ];
    for b in cases {
        assert_eq!(
            error_of(&b),
            (Status::InvalidArguments, true, 0),
            "opcode {:#x}",
            b[1]
        );
    }
}

/// memcached 1.6.18 discards `bodylen` bytes after the extras and key of an
/// unknown opcode (verbosity among them), and answers the SASL opcodes
/// `Unknown command` when SASL is off.
#[test]
fn unknown_opcodes_skip_like_memcached() {
    let b = req(opcode::VERBOSITY).extras(&[0, 0, 0, 1]).bytes();
    assert_eq!(error_of(&b), (Status::UnknownCommand, false, 24 + 4 + 4));
    let b = req(0x50).key(b"kk").value(b"vvv").bytes();
    assert_eq!(error_of(&b), (Status::UnknownCommand, false, 24 + 2 + 5));
    let b = req(opcode::SASL_LIST_MECHS).bytes();
    assert_eq!(error_of(&b), (Status::UnknownCommand, false, 24));
    let b = req(opcode::SASL_AUTH)
        .key(b"PLAIN")
        .value(b"\0a\0b")
        .bytes();
    assert_eq!(error_of(&b), (Status::UnknownCommand, false, 24 + 9));
}

#[test]
fn stat_and_touch_read_only_extras_and_key() {
    let mut r = req(opcode::STAT).key(b"reset");
    r.bodylen = Some(5 + 24);
    let b = r.bytes();
    assert_eq!(
        p(&b),
        Parsed::Request {
            request: Request {
                opcode: opcode::STAT,
                opaque: 0x0102_0304,
                cas: 0,
                command: Command::Stat { group: b"reset" }
            },
            consumed: 29
        }
    );
    let mut r = req(opcode::TOUCH).key(b"a").extras(&[0, 0, 0, 9]);
    r.bodylen = Some(100);
    let b = r.bytes();
    assert!(matches!(p(&b), Parsed::Request { consumed: 29, .. }));
}

#[test]
fn too_large_values_are_refused_before_they_arrive() {
    let value = std::vec![b'x'; ITEM_SIZE_MAX_BYTES];
    for (op, unlink) in [
        (opcode::SET, true),
        (opcode::SETQ, true),
        (opcode::ADD, false),
        (opcode::APPENDQ, false),
    ] {
        let mut r = req(op).key(b"big").value(&value);
        if !matches!(op, opcode::APPENDQ) {
            r = r.extras(&set_extras(0, 0));
        }
        let b = r.bytes();
        let head = HEADER_BYTES + r.extras.len() + 3;
        match p(&b[..head]) {
            Parsed::Request {
                request:
                    Request {
                        command:
                            Command::TooLarge {
                                key,
                                unlink: u,
                                swallow,
                            },
                        ..
                    },
                consumed,
            } => {
                assert_eq!(
                    (key, u, consumed, consumed + swallow),
                    (&b"big"[..], unlink, head, b.len())
                );
            }
            other => panic!("{other:?}"),
        }
    }
    // 1048516 bytes with a 1-byte key fit memcached's -I 1m, one more does not
    let b = req(opcode::SET)
        .key(b"k")
        .extras(&set_extras(0, 0))
        .value(&value[..1_048_516])
        .bytes();
    assert!(matches!(
        p(&b),
        Parsed::Request {
            request: Request {
                command: Command::Store { .. },
                ..
            },
            ..
        }
    ));
}

#[test]
fn never_panics_on_random_headers() {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut buf = [0u8; 600];
    for _ in 0..20_000 {
        for b in buf.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        buf[0] = REQUEST_MAGIC;
        buf[1] = (x >> 8) as u8 & 0x3f;
        buf[2] = 0;
        buf[3] = (x >> 16) as u8 % 64;
        buf[4] = [0u8, 4, 8, 20][(x >> 24) as usize % 4];
        let n = (x >> 32) as usize % buf.len();
        let _ = p(&buf[..n]);
        match p(&buf) {
            Parsed::Request { consumed, .. } => assert!(consumed <= buf.len()),
            Parsed::Error(Refusal::Reply(e)) => assert!(e.close || e.skip >= HEADER_BYTES),
            _ => {}
        }
    }
}

//! memcached's binary protocol (memcached 1.6.18's `proto_bin.c`): an
//! incremental, zero-copy request parser ([`parse`]) and response composer
//! ([`compose`]).
//!
//! A connection speaks it when its first byte is [`REQUEST_MAGIC`] (memcached's
//! `-B auto`). Every packet is a 24-byte [`Header`] and a body of extras, key
//! and value. [`parse`] looks at the bytes received so far and returns
//! - [`Parsed::NeedMore`]: the request is incomplete (nothing consumed);
//! - [`Parsed::Request`]: a request borrowing its key and value from the
//!   input, and the bytes it occupies;
//! - [`Parsed::Error`] with [`Refusal::Reply`]: a request memcached answers
//!   with an error packet ([`Status`] and its message) and then either closes
//!   the connection or skips bytes (which may exceed the input: the caller
//!   discards the rest as it arrives);
//! - [`Parsed::Error`] with [`Refusal::BadMagic`]: memcached closes without
//!   a reply.
//!
//! memcached's framing quirks are kept because a client sees them:
//! - the request is looked at once the header, extras and key have arrived;
//!   length checks come first (key or extras longer than the body: `Unknown
//!   command` and close; a key over 250 bytes: `Invalid arguments` and close),
//!   then each opcode's shape (a wrong shape: `Invalid arguments` and close);
//! - an unknown opcode is answered `Unknown command` and memcached then
//!   discards *body length* bytes after the extras and key it already read,
//!   so `extlen + keylen` bytes of what follows are lost as well;
//! - `stat`, `touch` and `gat*` do not check the body length: bytes of the
//!   body past the extras and key are read as the next request;
//! - quiet commands (`*q`) suppress only success replies, except
//!   `getq`/`getkq`/`gatq`/`gatkq`, which suppress misses and return hits;
//! - a reply carries the request's opcode and opaque.
//!
//! The parser never allocates and never panics.

pub mod compose;
pub mod header;

pub use header::{Header, HEADER_BYTES};

use super::{item_too_large, Step, KEY_MAX_BYTES};

/// First byte of every request.
pub const REQUEST_MAGIC: u8 = 0x80;
/// First byte of every response.
pub const RESPONSE_MAGIC: u8 = 0x81;
/// `incr`/`decr` expiration meaning "do not create a missing counter".
pub const ARITH_NO_CREATE: u32 = 0xffff_ffff;

/// Which protocols a connection may speak (memcached's `-B`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum BindingProtocol {
    /// `-B auto` (the default): the first byte decides, [`REQUEST_MAGIC`]
    /// for binary, anything else for ASCII.
    #[default]
    Auto,
    /// `-B ascii`: every connection speaks ASCII (a 0x80 byte is an unknown
    /// command).
    Ascii,
    /// `-B binary`: every connection speaks binary (ASCII is a bad magic
    /// byte: closed without a reply).
    Binary,
}

impl BindingProtocol {
    /// memcached's `stats settings` `binding_protocol` value.
    pub fn name(self) -> &'static str {
        match self {
            BindingProtocol::Auto => "auto-negotiate",
            BindingProtocol::Ascii => "ascii",
            BindingProtocol::Binary => "binary",
        }
    }

    /// Does a connection whose first byte is `first` speak binary?
    pub fn is_binary(self, first: u8) -> bool {
        match self {
            BindingProtocol::Auto => first == REQUEST_MAGIC,
            BindingProtocol::Ascii => false,
            BindingProtocol::Binary => true,
        }
    }
}

/// Opcodes memcached 1.6.18 knows.
pub mod opcode {
    #![allow(missing_docs)]
    pub const GET: u8 = 0x00;
    pub const SET: u8 = 0x01;
    pub const ADD: u8 = 0x02;
    pub const REPLACE: u8 = 0x03;
    pub const DELETE: u8 = 0x04;
    pub const INCREMENT: u8 = 0x05;
    pub const DECREMENT: u8 = 0x06;
    pub const QUIT: u8 = 0x07;
    pub const FLUSH: u8 = 0x08;
    pub const GETQ: u8 = 0x09;
    pub const NOOP: u8 = 0x0a;
    pub const VERSION: u8 = 0x0b;
    pub const GETK: u8 = 0x0c;
    pub const GETKQ: u8 = 0x0d;
    pub const APPEND: u8 = 0x0e;
    pub const PREPEND: u8 = 0x0f;
    pub const STAT: u8 = 0x10;
    pub const SETQ: u8 = 0x11;
    pub const ADDQ: u8 = 0x12;
    pub const REPLACEQ: u8 = 0x13;
    pub const DELETEQ: u8 = 0x14;
    pub const INCREMENTQ: u8 = 0x15;
    pub const DECREMENTQ: u8 = 0x16;
    pub const QUITQ: u8 = 0x17;
    pub const FLUSHQ: u8 = 0x18;
    pub const APPENDQ: u8 = 0x19;
    pub const PREPENDQ: u8 = 0x1a;
    /// Not served by memcached 1.6.18 (answered `Unknown command`).
    pub const VERBOSITY: u8 = 0x1b;
    pub const TOUCH: u8 = 0x1c;
    pub const GAT: u8 = 0x1d;
    pub const GATQ: u8 = 0x1e;
    pub const SASL_LIST_MECHS: u8 = 0x20;
    pub const SASL_AUTH: u8 = 0x21;
    pub const SASL_STEP: u8 = 0x22;
    pub const GATK: u8 = 0x23;
    pub const GATKQ: u8 = 0x24;
}

/// Response status codes memcached sends, each with its fixed message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u16)]
pub enum Status {
    /// Success.
    NoError = 0x0000,
    /// `Not found`
    KeyNotFound = 0x0001,
    /// `Data exists for key.`
    KeyExists = 0x0002,
    /// `Too large.`
    TooLarge = 0x0003,
    /// `Invalid arguments`
    InvalidArguments = 0x0004,
    /// `Not stored.`
    NotStored = 0x0005,
    /// `Non-numeric server-side value for incr or decr`
    NonNumeric = 0x0006,
    /// `Auth failure.`
    AuthError = 0x0020,
    /// `Unknown command`
    UnknownCommand = 0x0081,
    /// `Out of memory`
    OutOfMemory = 0x0082,
}

impl Status {
    /// The body memcached sends with this status (empty for success).
    pub fn message(self) -> &'static [u8] {
        match self {
            Status::NoError => b"",
            Status::KeyNotFound => b"Not found",
            Status::KeyExists => b"Data exists for key.",
            Status::TooLarge => b"Too large.",
            Status::InvalidArguments => b"Invalid arguments",
            Status::NotStored => b"Not stored.",
            Status::NonNumeric => b"Non-numeric server-side value for incr or decr",
            Status::AuthError => b"Auth failure.",
            Status::UnknownCommand => b"Unknown command",
            Status::OutOfMemory => b"Out of memory",
        }
    }
}

/// Which storage command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreMode {
    /// `set` (with a CAS: compare and swap).
    Set,
    /// `add` (with a CAS: compare and swap, as memcached does).
    Add,
    /// `replace` (with a CAS: compare and swap).
    Replace,
    /// `append` (a CAS must match when non-zero).
    Append,
    /// `prepend` (a CAS must match when non-zero).
    Prepend,
}

/// What a request asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command<'a> {
    /// `get getq getk getkq gat gatq gatk gatkq`.
    Get {
        /// The key (1..=250 bytes).
        key: &'a [u8],
        /// A miss sends nothing.
        quiet: bool,
        /// The reply carries the key.
        with_key: bool,
        /// `gat*`: the expiration to set.
        touch: Option<u32>,
    },
    /// `touch`: the reply carries the flags but no value.
    Touch {
        /// The key.
        key: &'a [u8],
        /// The expiration to set.
        exptime: u32,
    },
    /// `set add replace append prepend` and their quiet forms.
    Store {
        /// Which command.
        mode: StoreMode,
        /// The key.
        key: &'a [u8],
        /// Client flags (0 for append/prepend).
        flags: u32,
        /// Expiration (0 for append/prepend).
        exptime: u32,
        /// The value.
        value: &'a [u8],
        /// Success sends nothing.
        quiet: bool,
    },
    /// A storage command whose item exceeds the size limit: reply `Too
    /// large.`, discard the `swallow` bytes of value that follow the
    /// consumed header, extras and key, and when `unlink` remove the
    /// existing item (memcached does so for `set`/`setq`).
    TooLarge {
        /// The key.
        key: &'a [u8],
        /// Remove the old item.
        unlink: bool,
        /// Value bytes to discard after the consumed part (may exceed the
        /// input).
        swallow: usize,
    },
    /// `delete`/`deleteq`.
    Delete {
        /// The key.
        key: &'a [u8],
        /// Success sends nothing.
        quiet: bool,
    },
    /// `increment decrement` and their quiet forms.
    Arith {
        /// Increment (else decrement).
        incr: bool,
        /// The key.
        key: &'a [u8],
        /// The amount.
        delta: u64,
        /// Value of a counter created on a miss.
        initial: u64,
        /// Expiration of a created counter; [`ARITH_NO_CREATE`]: do not create.
        exptime: u32,
        /// Success sends nothing.
        quiet: bool,
    },
    /// `flush`/`flushq` (optional expiration: 0 = now).
    Flush {
        /// When to flush (memcached exptime; 0 = now).
        exptime: u32,
        /// Success sends nothing.
        quiet: bool,
    },
    /// `noop`.
    Noop,
    /// `version`.
    Version,
    /// `quit` (reply, then close) / `quitq` (close).
    Quit {
        /// Close without a reply.
        quiet: bool,
    },
    /// `stat` with its group name (empty: general statistics).
    Stat {
        /// The group (the key of the request).
        group: &'a [u8],
    },
}

/// One request: the command, and the header fields a reply echoes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request<'a> {
    /// The request's opcode (its reply carries it unchanged).
    pub opcode: u8,
    /// Copied into the reply.
    pub opaque: u32,
    /// The request's CAS (0: none).
    pub cas: u64,
    /// What to do.
    pub command: Command<'a>,
}

/// An error reply memcached sends for a request it does not execute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// The request's opcode.
    pub opcode: u8,
    /// The request's opaque.
    pub opaque: u32,
    /// The status (its message is the body).
    pub status: Status,
    /// Close the connection after the reply.
    pub close: bool,
    /// Bytes to discard from the start of the request (may exceed the
    /// input); meaningless when `close`.
    pub skip: usize,
}

/// What [`parse`] says about a request memcached does not execute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// An error reply, then close or skip.
    Reply(ParseError),
    /// The first byte is not [`REQUEST_MAGIC`]: close without a reply.
    BadMagic,
}

/// Result of one [`parse`] step.
pub type Parsed<'a> = Step<Request<'a>, Refusal>;

fn be32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_be_bytes(a)
}

fn be64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_be_bytes(a)
}

/// Parses the first request in `input`; `item_size_max_bytes` is memcached's
/// `-I` (see [`item_too_large`]). See the module docs for the contract.
pub fn parse(input: &[u8], item_size_max_bytes: usize) -> Parsed<'_> {
    let Ok(h) = Header::new_checked(input) else {
        return Parsed::NeedMore;
    };
    if h.magic() != REQUEST_MAGIC {
        return Parsed::Error(Refusal::BadMagic);
    }
    let extlen = usize::from(h.extras_len());
    let keylen = usize::from(h.key_len());
    let bodylen = h.body_len() as usize;
    let head = HEADER_BYTES + extlen + keylen;
    if input.len() < head {
        return Parsed::NeedMore;
    }
    let op = h.opcode();
    let opaque = h.opaque();
    let cas = h.cas();
    let error = |status, close, skip| {
        Parsed::Error(Refusal::Reply(ParseError {
            opcode: op,
            opaque,
            status,
            close,
            skip,
        }))
    };
    let invalid = error(Status::InvalidArguments, true, 0);
    if keylen > bodylen || keylen + extlen > bodylen {
        return error(Status::UnknownCommand, true, 0);
    }
    if keylen > KEY_MAX_BYTES {
        return invalid;
    }
    let extras = &input[HEADER_BYTES..HEADER_BYTES + extlen];
    let key = &input[HEADER_BYTES + extlen..head];
    // Requests whose body must be complete before they run.
    let whole = HEADER_BYTES + bodylen;
    let request = |command, consumed| Parsed::Request {
        request: Request {
            opcode: op,
            opaque,
            cas,
            command,
        },
        consumed,
    };
    let complete = |command| {
        if input.len() < whole {
            Parsed::NeedMore
        } else {
            request(command, whole)
        }
    };
    use opcode::*;
    match op {
        VERSION | NOOP | QUIT | QUITQ => {
            if extlen != 0 || keylen != 0 || bodylen != 0 {
                return invalid;
            }
            let command = match op {
                VERSION => Command::Version,
                NOOP => Command::Noop,
                _ => Command::Quit { quiet: op == QUITQ },
            };
            request(command, HEADER_BYTES)
        }
        FLUSH | FLUSHQ => {
            if keylen != 0 || bodylen != extlen || (extlen != 0 && extlen != 4) {
                return invalid;
            }
            let exptime = if extlen == 4 { be32(extras) } else { 0 };
            request(
                Command::Flush {
                    exptime,
                    quiet: op == FLUSHQ,
                },
                head,
            )
        }
        SET | SETQ | ADD | ADDQ | REPLACE | REPLACEQ => {
            if extlen != 8 || keylen == 0 || bodylen < keylen + 8 {
                return invalid;
            }
            let flags = be32(&extras[0..4]);
            let exptime = be32(&extras[4..8]);
            let vlen = bodylen - keylen - extlen;
            if item_too_large(keylen, flags, vlen, item_size_max_bytes) {
                return request(
                    Command::TooLarge {
                        key,
                        unlink: matches!(op, SET | SETQ),
                        swallow: vlen,
                    },
                    head,
                );
            }
            let mode = match op {
                SET | SETQ => StoreMode::Set,
                ADD | ADDQ => StoreMode::Add,
                _ => StoreMode::Replace,
            };
            let quiet = matches!(op, SETQ | ADDQ | REPLACEQ);
            store(input, whole, mode, key, flags, exptime, quiet)
                .map_or(Parsed::NeedMore, |c| request(c, whole))
        }
        APPEND | APPENDQ | PREPEND | PREPENDQ => {
            if keylen == 0 || extlen != 0 {
                return invalid;
            }
            let vlen = bodylen - keylen;
            if item_too_large(keylen, 0, vlen, item_size_max_bytes) {
                return request(
                    Command::TooLarge {
                        key,
                        unlink: false,
                        swallow: vlen,
                    },
                    head,
                );
            }
            let mode = if matches!(op, APPEND | APPENDQ) {
                StoreMode::Append
            } else {
                StoreMode::Prepend
            };
            let quiet = matches!(op, APPENDQ | PREPENDQ);
            store(input, whole, mode, key, 0, 0, quiet)
                .map_or(Parsed::NeedMore, |c| request(c, whole))
        }
        GET | GETQ | GETK | GETKQ => {
            if extlen != 0 || bodylen != keylen || keylen == 0 {
                return invalid;
            }
            complete(Command::Get {
                key,
                quiet: matches!(op, GETQ | GETKQ),
                with_key: matches!(op, GETK | GETKQ),
                touch: None,
            })
        }
        TOUCH | GAT | GATQ | GATK | GATKQ => {
            if extlen != 4 || keylen == 0 {
                return invalid;
            }
            let exptime = be32(extras);
            let command = if op == TOUCH {
                Command::Touch { key, exptime }
            } else {
                Command::Get {
                    key,
                    quiet: matches!(op, GATQ | GATKQ),
                    with_key: matches!(op, GATK | GATKQ),
                    touch: Some(exptime),
                }
            };
            // memcached reads only the extras and key of these
            request(command, head)
        }
        DELETE | DELETEQ => {
            if keylen == 0 || extlen != 0 || bodylen != keylen {
                return invalid;
            }
            complete(Command::Delete {
                key,
                quiet: op == DELETEQ,
            })
        }
        INCREMENT | INCREMENTQ | DECREMENT | DECREMENTQ => {
            if keylen == 0 || extlen != 20 || bodylen != keylen + extlen {
                return invalid;
            }
            complete(Command::Arith {
                incr: matches!(op, INCREMENT | INCREMENTQ),
                key,
                delta: be64(&extras[0..8]),
                initial: be64(&extras[8..16]),
                exptime: be32(&extras[16..20]),
                quiet: matches!(op, INCREMENTQ | DECREMENTQ),
            })
        }
        STAT => {
            if extlen != 0 {
                return invalid;
            }
            // memcached reads only the key of a stat request
            request(Command::Stat { group: key }, head)
        }
        SASL_LIST_MECHS => {
            if extlen != 0 || keylen != 0 || bodylen != 0 {
                return invalid;
            }
            error(Status::UnknownCommand, false, HEADER_BYTES)
        }
        SASL_AUTH | SASL_STEP => {
            if extlen != 0 || keylen == 0 {
                return invalid;
            }
            // without SASL, memcached discards the value after the key
            error(Status::UnknownCommand, false, whole)
        }
        _ => {
            // memcached discards `bodylen` bytes after the extras and key
            // it already read
            error(Status::UnknownCommand, false, head.saturating_add(bodylen))
        }
    }
}

fn store<'a>(
    input: &'a [u8],
    whole: usize,
    mode: StoreMode,
    key: &'a [u8],
    flags: u32,
    exptime: u32,
    quiet: bool,
) -> Option<Command<'a>> {
    let start = HEADER_BYTES
        + match mode {
            StoreMode::Append | StoreMode::Prepend => 0,
            _ => 8,
        }
        + key.len();
    let value = input.get(start..whole)?;
    Some(Command::Store {
        mode,
        key,
        flags,
        exptime,
        value,
        quiet,
    })
}

#[cfg(test)]
mod tests;

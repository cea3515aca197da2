//! Authentication as memcached 1.6 does it, against credentials the host
//! holds behind an [`Authenticator`].
//!
//! ASCII authentication (memcached's `-Y FILE`): until a connection has
//! authenticated, the only request memcached 1.6.18 executes is a `set`
//! whose data block is `<user> <password>`:
//!
//! ```text
//! set <any key> <flags> <exptime> <bytes> [anything]\r\n
//! <user> <password>[ ignored tokens]\r\n
//!   -> STORED                                      (authenticated; nothing stored)
//!   -> CLIENT_ERROR authentication failure         (unknown pair; counted)
//!   -> CLIENT_ERROR bad authentication token format (fewer than two tokens)
//!   -> CLIENT_ERROR bad command line termination    (data not ending in \r\n)
//! any other line (meta commands, quit, garbage)
//!   -> CLIENT_ERROR unauthenticated                 (the line only is consumed)
//! ```
//!
//! The data is cut at its first NUL byte and split on spaces as memcached's
//! tokenizer does (runs of spaces separate, extra tokens are ignored);
//! `noreply` is ignored (`STORED` is always sent). A line longer than 2048
//! bytes without a newline closes the connection. Once authenticated the
//! connection speaks the whole protocol, and a later `set` is an ordinary
//! `set`.
//!
//! SASL (memcached's `-S`) over the binary protocol, PLAIN only, against the
//! same [`Authenticator`], as memcached 1.6.18 with Cyrus SASL answers it:
//!
//! ```text
//! before authentication, any opcode but VERSION and the SASL ones
//!   -> status 0x20 "Auth failure." (the request's opcode and opaque), then close
//! 0x20 list mechanisms            -> "PLAIN"
//! 0x21 auth, key "PLAIN" (any case), value "authzid\0user\0password"
//!   -> "Authenticated" | 0x20 "Auth failure." (the connection stays open)
//! 0x21 auth with an empty value   -> status 0x21 (continue), empty body;
//! 0x22 step then carries the PLAIN message
//! a mechanism name over 32 bytes  -> 0x04 "Invalid arguments", value discarded
//! ```
//!
//! A failed attempt leaves the connection unauthenticated. As with Cyrus
//! SASL, an auth or step on a connection whose last exchange succeeded
//! fails (and the next one starts afresh), a step without a started
//! exchange fails, and the authzid must be empty or the user itself.
//! `auth_cmds` counts the exchanges that ended (success or failure),
//! `auth_errors` the failures.

use crate::histogram::CommandClass;
use crate::klog::Client;
use crate::proto::binary::compose::{put_error, put_value, ResponseHeader};
use crate::proto::binary::{opcode, Header, Status as BinStatus, HEADER_BYTES, REQUEST_MAGIC};
use crate::proto::compose::Writer;
use crate::Transport;

use super::{Engine, Session, MIN_OUTPUT_BYTES};

/// Longest line memcached 1.6.18 waits for before authentication; a longer
/// one without a newline closes the connection.
pub const ASCII_AUTH_LINE_MAX_BYTES: usize = 2048;

/// What `stats` reports and what the engine asks the host about credentials.
///
/// Contract: never blocks for long (a read lock at most), never allocates
/// on [`Authenticator::check`]; compares passwords in time independent of
/// where they differ ([`constant_time_eq`]).
pub trait Authenticator: Sync {
    /// True when `user` with `password` is a known pair.
    fn check(&self, user: &[u8], password: &[u8]) -> bool;

    /// Called once per refused attempt, for the host's log: the user name
    /// as sent (never the password), the transport and the peer when the
    /// front end knows it.
    fn refused(&self, user: &[u8], transport: Transport, client: Option<Client>);
}

/// How the engine authenticates connections (see [`Engine::set_authentication`]).
#[derive(Clone, Copy)]
pub struct Authentication<'a> {
    /// The credentials.
    pub authenticator: &'a dyn Authenticator,
    /// ASCII connections authenticate with a `set` first (memcached's `-Y`);
    /// the value is what `stats settings` prints as `auth_enabled_ascii`
    /// (memcached prints the file's path).
    pub ascii: Option<&'a str>,
    /// Binary connections authenticate with SASL PLAIN (memcached's `-S`).
    pub sasl: bool,
}

/// Compares two byte strings in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b) {
        diff |= x ^ y;
    }
    // Keep the optimiser from turning the loop into an early exit.
    core::hint::black_box(diff) == 0
}

/// The mechanisms `SASL list mechanisms` offers.
pub const SASL_MECHANISMS: &[u8] = b"PLAIN";

/// Longest mechanism name memcached accepts (`MAX_SASL_MECH_LEN`).
pub const SASL_MECH_MAX_BYTES: usize = 32;

/// The binary status memcached sends when SASL wants another step.
const STATUS_AUTH_CONTINUE: u16 = 0x0021;

/// Where a connection's SASL exchange stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum SaslState {
    /// No exchange started (or the last one failed).
    Idle,
    /// `auth PLAIN` came without data: the PLAIN message comes in a step.
    Continue,
    /// The last exchange succeeded.
    Done,
}

/// Result of one step of ASCII authentication or of the SASL gate.
pub(super) enum AuthStep {
    /// No complete request yet: read more, nothing consumed.
    NeedInput,
    /// No room for the reply: drain `out`, call again.
    Full,
    /// Close the connection (a line too long).
    Close,
    /// A request answered; `consumed` input bytes are done with.
    Done { consumed: usize },
}

/// memcached's `safe_strtoul` on one token: decimal, an optional `+`, no
/// `-` on a value that would be negative, truncated to 32 bits.
fn parse_size(token: &[u8]) -> Option<u32> {
    let digits = token.strip_prefix(b"+").unwrap_or(token);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        // "-0" and friends: strtoul accepts a sign; a negative value is refused.
        let rest = token.strip_prefix(b"-")?;
        if !rest.is_empty() && rest.iter().all(|&d| d == b'0') {
            return Some(0);
        }
        return None;
    }
    let mut v: u64 = 0;
    for &d in digits {
        v = v.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    Some(v as u32)
}

/// The PLAIN message `authzid NUL authcid NUL password` (exactly two NULs),
/// as Cyrus SASL's PLAIN plugin reads it: the user and password when the
/// authzid is empty or the user itself and the user is not empty.
fn plain_message(data: &[u8]) -> Option<(&[u8], &[u8])> {
    let mut parts = data.splitn(3, |&b| b == 0);
    let authzid = parts.next()?;
    let user = parts.next()?;
    let password = parts.next()?;
    if password.contains(&0) || user.is_empty() || !(authzid.is_empty() || authzid == user) {
        return None;
    }
    Some((user, password))
}

/// The first two space-separated tokens of `data` (memcached's tokenizer).
fn two_tokens(data: &[u8]) -> Option<(&[u8], &[u8])> {
    let mut it = data.split(|&b| b == b' ').filter(|t| !t.is_empty());
    Some((it.next()?, it.next()?))
}

impl<'a> Engine<'a> {
    /// Requires authentication on the connections `auth` names. Call before
    /// serving; sessions created earlier are not authenticated either.
    pub fn set_authentication(&mut self, auth: Authentication<'a>) {
        self.auth = Some(auth);
    }

    /// The ASCII authentication in force, if any.
    pub(super) fn ascii_auth_required(&self, session: &Session) -> bool {
        !session.authenticated && self.auth.is_some_and(|a| a.ascii.is_some())
    }

    /// What `stats settings` prints for `auth_enabled_ascii` and
    /// `auth_enabled_sasl`.
    pub(super) fn auth_settings(&self) -> (&'a [u8], bool) {
        match self.auth {
            Some(a) => (a.ascii.map_or(&b"no"[..], str::as_bytes), a.sasl),
            None => (b"no", false),
        }
    }

    /// Checks a credential pair, counting `auth_cmds` and `auth_errors` as
    /// memcached does, and reporting a refusal to the host.
    pub(super) fn check_credentials(
        &self,
        session: &Session,
        user: &[u8],
        password: &[u8],
    ) -> bool {
        self.stats.auth_cmds.incr();
        let ok = self
            .auth
            .is_some_and(|a| a.authenticator.check(user, password));
        if !ok {
            self.stats.auth_errors.incr();
            if let Some(a) = self.auth {
                a.authenticator
                    .refused(user, session.transport, session.client);
            }
        }
        ok
    }

    /// One request on an ASCII connection that has not authenticated yet.
    pub(super) fn ascii_auth(
        &self,
        session: &mut Session,
        input: &[u8],
        w: &mut Writer<'_>,
    ) -> AuthStep {
        let Some(nl) = input.iter().position(|&b| b == b'\n') else {
            if input.len() > ASCII_AUTH_LINE_MAX_BYTES {
                self.stats.error_closed.incr();
                return AuthStep::Close;
            }
            return AuthStep::NeedInput;
        };
        let line_end = if nl > 0 && input[nl - 1] == b'\r' {
            nl - 1
        } else {
            nl
        };
        let line = &input[..line_end];
        let mut tokens = line.split(|&b| b == b' ').filter(|t| !t.is_empty());
        let size = match (
            tokens.next(),
            tokens.next(),
            tokens.next(),
            tokens.next(),
            tokens.next(),
        ) {
            (Some(b"set"), Some(_), Some(_), Some(_), Some(n)) => parse_size(n),
            _ => None,
        };
        let Some(size) = size else {
            return self.auth_reply(session, w, b"CLIENT_ERROR unauthenticated", nl + 1, false);
        };
        let size = size as usize;
        let data_at = nl + 1;
        if size > self.cfg.item_size_max_bytes {
            // No credential is that long, and the read buffer may not hold
            // it: the data is discarded as it arrives.
            let Ok(mut room) = w.reserve(MIN_OUTPUT_BYTES) else {
                return AuthStep::Full;
            };
            room.line(b"CLIENT_ERROR authentication failure");
            self.check_credentials(session, b"", b"");
            session.completed.add(CommandClass::Set);
            let avail = input.len() - data_at;
            let skip = size + 2;
            if skip > avail {
                session.swallow = skip - avail;
                return AuthStep::Done {
                    consumed: input.len(),
                };
            }
            return AuthStep::Done {
                consumed: data_at + skip,
            };
        }
        let end = data_at + size + 2;
        if input.len() < end {
            return AuthStep::NeedInput;
        }
        let data = &input[data_at..end];
        if &data[size..] != b"\r\n" {
            return self.auth_reply(
                session,
                w,
                b"CLIENT_ERROR bad command line termination",
                end,
                true,
            );
        }
        let payload = &data[..size];
        let payload = match payload.iter().position(|&b| b == 0) {
            Some(z) => &payload[..z],
            None => payload,
        };
        let Some((user, password)) = two_tokens(payload) else {
            return self.auth_reply(
                session,
                w,
                b"CLIENT_ERROR bad authentication token format",
                end,
                true,
            );
        };
        let Ok(mut room) = w.reserve(MIN_OUTPUT_BYTES) else {
            return AuthStep::Full;
        };
        if self.check_credentials(session, user, password) {
            session.authenticated = true;
            room.line(b"STORED");
        } else {
            room.line(b"CLIENT_ERROR authentication failure");
        }
        session.completed.add(CommandClass::Set);
        AuthStep::Done { consumed: end }
    }

    /// Counts an ended SASL exchange and settles the session.
    fn sasl_end(&self, session: &mut Session, ok: bool) {
        self.stats.auth_cmds.incr();
        session.authenticated = ok;
        if ok {
            session.sasl = SaslState::Done;
        } else {
            self.stats.auth_errors.incr();
            session.sasl = SaslState::Idle;
        }
    }

    /// On a binary connection of an engine with SASL: answers the SASL
    /// requests and refuses every other but VERSION before
    /// authentication. `None`: the request goes the ordinary way (also
    /// the malformed SASL requests, which the binary parser refuses as
    /// memcached does).
    pub(super) fn sasl_gate(
        &self,
        session: &mut Session,
        input: &[u8],
        w: &mut Writer<'_>,
    ) -> Option<AuthStep> {
        let auth = self.auth.filter(|a| a.sasl)?;
        let h = Header::new_checked(input).ok()?;
        if h.magic() != REQUEST_MAGIC {
            return None;
        }
        let (op, opaque) = (h.opcode(), h.opaque());
        let extlen = usize::from(h.extras_len());
        let keylen = usize::from(h.key_len());
        let bodylen = h.body_len() as usize;
        if keylen + extlen > bodylen {
            return None;
        }
        match op {
            opcode::VERSION => None,
            opcode::SASL_LIST_MECHS => {
                if extlen != 0 || keylen != 0 || bodylen != 0 {
                    return None;
                }
                if put_value(w, op, opaque, 0, SASL_MECHANISMS).is_err() {
                    return Some(AuthStep::Full);
                }
                session.completed.add(CommandClass::Admin);
                Some(AuthStep::Done {
                    consumed: HEADER_BYTES,
                })
            }
            opcode::SASL_AUTH | opcode::SASL_STEP => {
                if extlen != 0 || keylen == 0 {
                    return None;
                }
                if w.remaining() < MIN_OUTPUT_BYTES {
                    return Some(AuthStep::Full);
                }
                let whole = HEADER_BYTES.saturating_add(bodylen);
                if keylen > SASL_MECH_MAX_BYTES || bodylen - keylen > self.cfg.item_size_max_bytes {
                    // memcached: Invalid arguments, the value discarded
                    let _ = put_error(w, op, opaque, BinStatus::InvalidArguments);
                    self.stats.auth_malformed.incr();
                    session.completed.add(CommandClass::Invalid);
                    let avail = input.len();
                    if whole > avail {
                        session.swallow = whole - avail;
                        return Some(AuthStep::Done { consumed: avail });
                    }
                    return Some(AuthStep::Done { consumed: whole });
                }
                if input.len() < whole {
                    return Some(AuthStep::NeedInput);
                }
                let mech = &input[HEADER_BYTES..HEADER_BYTES + keylen];
                let data = &input[HEADER_BYTES + keylen..whole];
                session.completed.add(CommandClass::Admin);
                let message = match (op, session.sasl) {
                    // Cyrus refuses a new exchange on a finished one
                    (_, SaslState::Done) => None,
                    (opcode::SASL_AUTH, _) if !mech.eq_ignore_ascii_case(b"PLAIN") => None,
                    (opcode::SASL_AUTH, _) if data.is_empty() => {
                        session.sasl = SaslState::Continue;
                        let mut b =
                            ResponseHeader::empty(op, opaque, BinStatus::NoError).to_bytes();
                        b[6..8].copy_from_slice(&STATUS_AUTH_CONTINUE.to_be_bytes());
                        let _ = w.put(&b);
                        return Some(AuthStep::Done { consumed: whole });
                    }
                    (opcode::SASL_AUTH, _) | (_, SaslState::Continue) => Some(data),
                    // a step with no exchange started
                    _ => None,
                };
                let ok = match message.and_then(plain_message) {
                    Some((user, password)) => {
                        let ok = auth.authenticator.check(user, password);
                        if !ok {
                            auth.authenticator
                                .refused(user, session.transport, session.client);
                        }
                        ok
                    }
                    None => {
                        auth.authenticator
                            .refused(b"", session.transport, session.client);
                        false
                    }
                };
                self.sasl_end(session, ok);
                let _ = if ok {
                    put_value(w, op, opaque, 0, b"Authenticated")
                } else {
                    put_error(w, op, opaque, BinStatus::AuthError)
                };
                Some(AuthStep::Done { consumed: whole })
            }
            _ if session.authenticated => None,
            _ => {
                if put_error(w, op, opaque, BinStatus::AuthError).is_err() {
                    return Some(AuthStep::Full);
                }
                self.stats.auth_unauthenticated.incr();
                session.completed.add(CommandClass::Invalid);
                Some(AuthStep::Close)
            }
        }
    }

    /// Writes a one-line refusal and consumes `consumed` bytes.
    fn auth_reply(
        &self,
        session: &mut Session,
        w: &mut Writer<'_>,
        line: &[u8],
        consumed: usize,
        malformed: bool,
    ) -> AuthStep {
        let Ok(mut room) = w.reserve(MIN_OUTPUT_BYTES) else {
            return AuthStep::Full;
        };
        room.line(line);
        if malformed {
            self.stats.auth_malformed.incr();
        } else {
            self.stats.auth_unauthenticated.incr();
        }
        session.completed.add(CommandClass::Invalid);
        AuthStep::Done { consumed }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{EngineConfig, Status};

    struct One;
    impl Authenticator for One {
        fn check(&self, user: &[u8], password: &[u8]) -> bool {
            constant_time_eq(user, b"alice") & constant_time_eq(password, b"secret")
        }
        fn refused(&self, _: &[u8], _: Transport, _: Option<Client>) {}
    }

    fn engine(arena: &mut [u8]) -> Engine<'_> {
        let mut e = Engine::new(&EngineConfig::default(), arena).unwrap();
        e.set_authentication(Authentication {
            authenticator: &One,
            ascii: Some("/etc/petrel/auth"),
            sasl: false,
        });
        e
    }

    fn run(e: &Engine<'_>, s: &mut Session, input: &[u8]) -> (std::vec::Vec<u8>, usize, Status) {
        let mut out = [0u8; 8192];
        let p = e.process(s, input, &mut out, 100);
        (out[..p.written].to_vec(), p.consumed, p.status)
    }

    #[test]
    fn only_a_set_with_good_credentials_opens_the_connection() {
        let mut arena = std::vec![0u8; Engine::required_bytes(&EngineConfig::default()).unwrap()];
        let e = engine(&mut arena);
        let mut s = Session::new(Transport::Tcp);
        for (input, reply) in [
            (&b"get k\r\n"[..], &b"CLIENT_ERROR unauthenticated\r\n"[..]),
            (b"quit\r\n", b"CLIENT_ERROR unauthenticated\r\n"),
            (b"mn\r\n", b"CLIENT_ERROR unauthenticated\r\n"),
            (b"set k 0 0\r\n", b"CLIENT_ERROR unauthenticated\r\n"),
            (b"add k 0 0 12\r\n", b"CLIENT_ERROR unauthenticated\r\n"),
            (
                b"set k 0 0 12\r\nalice secreT\r\n",
                b"CLIENT_ERROR authentication failure\r\n",
            ),
            (
                b"set k 0 0 11\r\nalicesecret\r\n",
                b"CLIENT_ERROR bad authentication token format\r\n",
            ),
            (
                b"set k 0 0 12\r\nalice secretXX",
                b"CLIENT_ERROR bad command line termination\r\n",
            ),
        ] {
            let (out, consumed, status) = run(&e, &mut s, input);
            assert_eq!(out, reply, "{:?}", core::str::from_utf8(input));
            assert_eq!(consumed, input.len());
            assert_eq!(status, Status::NeedInput);
        }
        assert_eq!(e.stats().auth_cmds.get(), 1);
        assert_eq!(e.stats().auth_errors.get(), 1);
        // incomplete data: nothing consumed yet
        let (out, consumed, _) = run(&e, &mut s, b"set k 0 0 13\r\nalice  secret");
        assert!(out.is_empty());
        assert_eq!(consumed, 0);
        let (out, _, _) = run(
            &e,
            &mut s,
            b"set k 0 0 13 noreply\r\nalice  secret\r\nget k\r\n",
        );
        assert_eq!(out, b"STORED\r\nEND\r\n");
        assert_eq!(e.stats().auth_cmds.get(), 2);
        // authenticated: a set is a set
        let (out, _, _) = run(&e, &mut s, b"set k 0 0 12\r\nalice secret\r\nget k\r\n");
        assert_eq!(out, b"STORED\r\nVALUE k 0 12\r\nalice secret\r\nEND\r\n");
        assert_eq!(e.stats().auth_cmds.get(), 2);
    }

    #[test]
    fn a_long_line_closes_and_a_huge_value_is_swallowed() {
        let mut arena = std::vec![0u8; Engine::required_bytes(&EngineConfig::default()).unwrap()];
        let e = engine(&mut arena);
        let mut s = Session::new(Transport::Tcp);
        let long = std::vec![b'a'; ASCII_AUTH_LINE_MAX_BYTES + 1];
        assert_eq!(run(&e, &mut s, &long).2, Status::Close);
        let mut s = Session::new(Transport::Tcp);
        let (out, consumed, _) = run(&e, &mut s, b"set k 0 0 99999999\r\nxx");
        assert_eq!(out, b"CLIENT_ERROR authentication failure\r\n");
        assert_eq!(consumed, 22);
        assert_eq!(s.swallow_pending(), 99999999 + 2 - 2);
    }

    fn packet(op: u8, key: &[u8], value: &[u8], opaque: u32) -> std::vec::Vec<u8> {
        let mut p = std::vec![0x80, op];
        p.extend_from_slice(&(key.len() as u16).to_be_bytes());
        p.extend_from_slice(&[0, 0, 0, 0]);
        p.extend_from_slice(&((key.len() + value.len()) as u32).to_be_bytes());
        p.extend_from_slice(&opaque.to_be_bytes());
        p.extend_from_slice(&[0; 8]);
        p.extend_from_slice(key);
        p.extend_from_slice(value);
        p
    }

    /// (opcode, status, opaque, body) of each response packet.
    fn packets(mut b: &[u8]) -> std::vec::Vec<(u8, u16, u32, std::vec::Vec<u8>)> {
        let mut v = std::vec::Vec::new();
        while b.len() >= 24 {
            let body = u32::from_be_bytes([b[8], b[9], b[10], b[11]]) as usize;
            v.push((
                b[1],
                u16::from_be_bytes([b[6], b[7]]),
                u32::from_be_bytes([b[12], b[13], b[14], b[15]]),
                b[24..24 + body].to_vec(),
            ));
            b = &b[24 + body..];
        }
        v
    }

    #[test]
    fn sasl_plain_gates_binary_sessions() {
        let cfg = EngineConfig {
            protocol: crate::engine::BindingProtocol::Binary,
            ..EngineConfig::default()
        };
        let mut arena = std::vec![0u8; Engine::required_bytes(&cfg).unwrap()];
        let mut e = Engine::new(&cfg, &mut arena).unwrap();
        e.set_authentication(Authentication {
            authenticator: &One,
            ascii: None,
            sasl: true,
        });
        let mut s = Session::new(Transport::Tcp);
        let mut input = packet(opcode::VERSION, b"", b"", 1);
        input.extend(packet(opcode::SASL_LIST_MECHS, b"", b"", 2));
        input.extend(packet(opcode::SASL_AUTH, b"PLAIN", b"\0alice\0nope", 3));
        input.extend(packet(opcode::SASL_AUTH, b"PLAIN", b"", 4));
        input.extend(packet(
            opcode::SASL_STEP,
            b"PLAIN",
            b"alice\0alice\0secret",
            5,
        ));
        input.extend(packet(opcode::NOOP, b"", b"", 6));
        let (out, consumed, status) = run(&e, &mut s, &input);
        assert_eq!((consumed, status), (input.len(), Status::NeedInput));
        let p = packets(&out);
        assert_eq!(p[0].1, 0);
        assert_eq!(p[1], (opcode::SASL_LIST_MECHS, 0, 2, b"PLAIN".to_vec()));
        assert_eq!(
            p[2],
            (opcode::SASL_AUTH, 0x20, 3, b"Auth failure.".to_vec())
        );
        assert_eq!(p[3], (opcode::SASL_AUTH, 0x21, 4, std::vec::Vec::new()));
        assert_eq!(p[4], (opcode::SASL_STEP, 0, 5, b"Authenticated".to_vec()));
        assert_eq!(p[5], (opcode::NOOP, 0, 6, std::vec::Vec::new()));
        assert!(s.is_authenticated());
        assert_eq!(
            (e.stats().auth_cmds.get(), e.stats().auth_errors.get()),
            (2, 1)
        );
        // before authentication: Auth failure., then close
        let mut s = Session::new(Transport::Tcp);
        let input = packet(opcode::GET, b"k", b"", 9);
        let (out, _, status) = run(&e, &mut s, &input);
        assert_eq!(status, Status::Close);
        assert_eq!(
            packets(&out),
            [(opcode::GET, 0x20, 9, b"Auth failure.".to_vec())]
        );
    }

    #[test]
    fn sizes_parse_as_safe_strtoul() {
        assert_eq!(parse_size(b"12"), Some(12));
        assert_eq!(parse_size(b"+12"), Some(12));
        assert_eq!(parse_size(b"-1"), None);
        assert_eq!(parse_size(b"-0"), Some(0));
        assert_eq!(parse_size(b"12a"), None);
        assert_eq!(parse_size(b""), None);
        assert_eq!(parse_size(b"4294967298"), Some(2));
        assert!(constant_time_eq(b"", b""));
        assert!(!constant_time_eq(b"a", b"ab"));
    }
}

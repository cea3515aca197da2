//! Engine replies for real request bytes, including resumable output and
//! incremental input. (Broad compatibility is checked by the differential
//! test against memcached; these pin specific behaviours.)

use petrel_core::engine::{Engine, EngineConfig, Session, Status, Transport, MIN_OUTPUT_BYTES};
use petrel_core::store::StoreConfig;

const NOW: u32 = 1_800_000_000;

fn config() -> EngineConfig {
    EngineConfig {
        store: StoreConfig {
            item_memory_bytes: 8 << 20,
            ..StoreConfig::default()
        },
        version: "1.6.18",
        ..EngineConfig::default()
    }
}

fn with_engine(f: impl FnOnce(&Engine<'_>)) {
    let cfg = config();
    let mut arena = vec![0u8; Engine::required_bytes(&cfg).unwrap()];
    let engine = Engine::new(&cfg, &mut arena).unwrap();
    f(&engine);
}

/// Runs `input` through one session with an output buffer of `out_len`,
/// draining it whenever full; returns the replies and the final status.
fn drive(
    engine: &Engine<'_>,
    session: &mut Session,
    input: &[u8],
    out_len: usize,
) -> (Vec<u8>, Status, usize) {
    let mut out = vec![0u8; out_len];
    let mut replies = Vec::new();
    let mut pos = 0;
    loop {
        let p = engine.process(session, &input[pos..], &mut out, NOW);
        replies.extend_from_slice(&out[..p.written]);
        pos += p.consumed;
        if p.status != Status::OutputFull {
            return (replies, p.status, pos);
        }
    }
}

fn run(engine: &Engine<'_>, input: &[u8]) -> Vec<u8> {
    let mut s = Session::new(Transport::Tcp);
    drive(engine, &mut s, input, 64 * 1024).0
}

#[test]
fn classic_commands() {
    with_engine(|e| {
        assert_eq!(
            run(e, b"set a 5 0 3\r\nabc\r\nget a b\r\n"),
            b"STORED\r\nVALUE a 5 3\r\nabc\r\nEND\r\n"
        );
        assert_eq!(
            run(e, b"add a 0 0 1\r\nx\r\nreplace zz 0 0 1\r\nx\r\n"),
            b"NOT_STORED\r\nNOT_STORED\r\n"
        );
        assert_eq!(
            run(
                e,
                b"append a 0 0 2\r\nde\r\nprepend a 0 0 1\r\n_\r\nget a\r\n"
            ),
            b"STORED\r\nSTORED\r\nVALUE a 5 6\r\n_abcde\r\nEND\r\n"
        );
        assert_eq!(
            run(e, b"delete a\r\ndelete a\r\n"),
            b"DELETED\r\nNOT_FOUND\r\n"
        );
        assert_eq!(
            run(
                e,
                b"set n 0 0 2\r\n10\r\nincr n 5\r\ndecr n 100\r\nincr zz 1\r\n"
            ),
            b"STORED\r\n15\r\n0\r\nNOT_FOUND\r\n"
        );
        assert_eq!(
            run(e, b"touch n 100\r\ntouch zz 1\r\n"),
            b"TOUCHED\r\nNOT_FOUND\r\n"
        );
        assert_eq!(
            run(e, b"set q 0 0 1 noreply\r\nx\r\nget q\r\n"),
            b"VALUE q 0 1\r\nx\r\nEND\r\n"
        );
        assert_eq!(
            run(e, b"version\r\nverbosity 1\r\nflush_all\r\nget q\r\n"),
            b"VERSION 1.6.18\r\nOK\r\nOK\r\nEND\r\n"
        );
        assert_eq!(
            run(e, b"bogus\r\nset a 0 0 1\r\nabc\r\n"),
            b"ERROR\r\nCLIENT_ERROR bad data chunk\r\nERROR\r\n"
        );
    });
}

#[test]
fn cas_follows_memcached() {
    with_engine(|e| {
        run(e, b"set c 0 0 1\r\nx\r\n");
        let r = run(e, b"gets c\r\n");
        let line = std::str::from_utf8(&r)
            .unwrap()
            .lines()
            .next()
            .unwrap()
            .to_string();
        let cas: u64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        assert_ne!(cas, 0);
        assert_eq!(
            run(e, format!("cas c 0 0 1 {}\r\ny\r\n", cas + 1).as_bytes()),
            b"EXISTS\r\n"
        );
        assert_eq!(run(e, b"cas c 0 0 1 0\r\ny\r\n"), b"EXISTS\r\n");
        assert_eq!(run(e, b"cas nope 0 0 1 0\r\ny\r\n"), b"NOT_FOUND\r\n");
        assert_eq!(
            run(e, format!("cas c 0 0 1 {cas}\r\ny\r\n").as_bytes()),
            b"STORED\r\n"
        );
    });
}

/// Every pinned reply here is the one memcached 1.6.18 (Debian's package, `-m 64 -t 1`) gives
/// to the same requests sent in the same order, each group on a new connection to one
/// server; the meta flags are those of protocol.txt's "Meta Get", "Meta Set", "Meta Delete",
/// "Meta Arithmetic" and "Meta No-Op" sections.
#[test]
fn meta_commands() {
    with_engine(|e| {
        assert_eq!(run(e, b"ms m 2 T0 F7 c q\r\nhi\r\nmn\r\n"), b"MN\r\n");
        assert_eq!(
            run(e, b"mg m v f s t k O42\r\n"),
            b"VA 2 f7 s2 t-1 km O42\r\nhi\r\n"
        );
        assert_eq!(
            run(e, b"mg zz v q k\r\nmg zz k O1\r\nmn\r\n"),
            b"EN kzz O1\r\nMN\r\n"
        );
        assert_eq!(
            run(e, b"ma cnt N0 J10 v\r\nma cnt D5 MD v\r\n"),
            b"VA 2\r\n10\r\nVA 1\r\n5\r\n"
        );
        assert_eq!(run(e, b"md m q\r\nmd m\r\n"), b"NF\r\n");
        assert_eq!(
            run(e, b"ms Zm9v 1 b k\r\nx\r\nget foo\r\n"),
            b"HD kZm9v b\r\nVALUE foo 0 1\r\nx\r\nEND\r\n"
        );
        assert_eq!(
            run(e, b"mg nv N30 s t\r\nmg nv s\r\n"),
            b"HD s0 t30 W\r\nHD s0 Z\r\n"
        );
        assert_eq!(run(e, b"mg nv h\r\n"), b"HD h1 Z\r\n");
    });
}

#[test]
fn large_value_resumes_through_small_buffers() {
    with_engine(|e| {
        let value: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let mut set = format!("set big 9 0 {}\r\n", value.len()).into_bytes();
        set.extend_from_slice(&value);
        set.extend_from_slice(b"\r\n");
        assert_eq!(run(e, &set), b"STORED\r\n");
        let mut expect = format!("VALUE big 9 {}\r\n", value.len()).into_bytes();
        expect.extend_from_slice(&value);
        expect.extend_from_slice(b"\r\n");
        let mut multi = Vec::new();
        for _ in 0..3 {
            multi.extend_from_slice(&expect);
        }
        multi.extend_from_slice(b"END\r\n");
        for out_len in [MIN_OUTPUT_BYTES, 1392, 4096, 65_536] {
            let mut s = Session::new(Transport::Udp);
            let (r, status, consumed) = drive(e, &mut s, b"get big big big\r\n", out_len);
            assert_eq!(status, Status::NeedInput);
            assert_eq!(consumed, 17);
            assert!(r == multi, "out_len {out_len}: {} bytes", r.len());
        }
        let mut s = Session::new(Transport::Tcp);
        let (r, _, _) = drive(e, &mut s, b"mg big v\r\n", 1392);
        assert_eq!(&r[..13], b"VA 300000\r\n\x00\x01");
        assert_eq!(r.len(), 11 + value.len() + 2);
    });
}

#[test]
fn stats_resume_and_end() {
    with_engine(|e| {
        let mut s = Session::new(Transport::Tcp);
        let (small, _, _) = drive(e, &mut s, b"stats\r\n", MIN_OUTPUT_BYTES);
        assert!(small.starts_with(b"STAT pid 0\r\nSTAT uptime"));
        assert!(small.ends_with(b"END\r\n"));
        let lines = small.split(|&b| b == b'\n').count();
        assert!(lines > 40, "{lines}");
        for name in [
            "curr_connections",
            "cmd_get",
            "get_hits",
            "evictions",
            "limit_maxbytes",
            "threads",
            "curr_items",
        ] {
            assert!(
                std::str::from_utf8(&small)
                    .unwrap()
                    .contains(&format!("STAT {name} ")),
                "{name}"
            );
        }
        let r = run(e, b"stats settings\r\n");
        assert!(r.starts_with(b"STAT maxbytes 8388608\r\n"));
        assert!(r.ends_with(b"END\r\n"));
    });
}

/// Figures of another part of the process, printed by `stats`.
struct TwoFigures(std::sync::atomic::AtomicU64);

impl petrel_core::engine::StatsSource for TwoFigures {
    fn for_each_stat(&self, f: &mut dyn FnMut(&str, &str, u64)) {
        f(
            "xdp_",
            "rx_frames",
            self.0.load(std::sync::atomic::Ordering::Relaxed),
        );
        f("xdp_drop_", "truncated", 7);
    }
}

#[test]
fn stats_sources_print_after_the_engines_figures_and_resume() {
    let cfg = config();
    let mut arena = vec![0u8; Engine::required_bytes(&cfg).unwrap()];
    let source = TwoFigures(std::sync::atomic::AtomicU64::new(42));
    let e = Engine::new(&cfg, &mut arena).unwrap();
    let whole = run(&e, b"stats\r\n");
    assert!(!String::from_utf8_lossy(&whole).contains("xdp_"));
    for _ in 0..petrel_core::engine::MAX_STATS_SOURCES {
        assert!(e.add_stats_source(&source));
    }
    assert!(!e.add_stats_source(&source), "one too many");
    let whole = String::from_utf8(run(&e, b"stats\r\n")).unwrap();
    assert!(
        whole.ends_with("STAT xdp_rx_frames 42\r\nSTAT xdp_drop_truncated 7\r\nEND\r\n"),
        "{whole}"
    );
    assert_eq!(
        whole.matches("STAT xdp_rx_frames 42\r\n").count(),
        petrel_core::engine::MAX_STATS_SOURCES
    );
    // Resumed across small output areas: the same lines, each once.
    let mut s = Session::new(Transport::Udp);
    let (pieces, _, _) = drive(&e, &mut s, b"stats\r\n", MIN_OUTPUT_BYTES);
    let pieces = String::from_utf8(pieces).unwrap();
    let strip = |t: &str| {
        t.lines()
            .filter(|l| {
                !["STAT uptime", "STAT time", "STAT petrel_replies_resumed"]
                    .iter()
                    .any(|p| l.starts_with(p))
            })
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(&pieces), strip(&whole));
}

#[test]
fn input_in_pieces_and_swallowed_values() {
    with_engine(|e| {
        let mut input = b"set a 0 0 2000000\r\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', 2_000_000));
        input.extend_from_slice(b"\r\nget a\r\nset b 0 0 1\r\nb\r\nget b\r\n");
        let mut s = Session::new(Transport::Tcp);
        let mut out = vec![0u8; 4096];
        let mut replies = Vec::new();
        let mut buf: Vec<u8> = Vec::new();
        for piece in input.chunks(777) {
            buf.extend_from_slice(piece);
            loop {
                let p = e.process(&mut s, &buf, &mut out, NOW);
                replies.extend_from_slice(&out[..p.written]);
                buf.drain(..p.consumed);
                if p.status != Status::OutputFull {
                    break;
                }
            }
        }
        assert!(buf.is_empty());
        assert_eq!(replies, b"SERVER_ERROR object too large for cache\r\nEND\r\nSTORED\r\nVALUE b 0 1\r\nb\r\nEND\r\n");
    });
}

#[test]
fn quit_and_junk_close() {
    with_engine(|e| {
        let mut s = Session::new(Transport::Tcp);
        let (r, status, consumed) = drive(e, &mut s, b"version\r\nquit\r\nversion\r\n", 4096);
        assert_eq!(
            (r.as_slice(), status, consumed),
            (&b"VERSION 1.6.18\r\n"[..], Status::Close, 15)
        );
        let mut s = Session::new(Transport::Tcp);
        let (_, status, _) = drive(e, &mut s, &[b'x'; 3000], 4096);
        assert_eq!(status, Status::Close);
        let mut s = Session::new(Transport::Tcp);
        let (r, status, _) = drive(e, &mut s, b"GET / HTTP/1.1\r\n", 4096);
        assert_eq!((r.len(), status), (0, Status::Close));
    });
}

#[test]
fn counters_follow_commands() {
    with_engine(|e| {
        run(
            e,
            b"set a 0 0 1\r\nx\r\nget a b\r\ndelete b\r\nincr a 1\r\ntouch a 10\r\nbogus\r\n",
        );
        let st = e.stats();
        assert_eq!(st.cmd_get.get(), 2);
        assert_eq!(st.get_hits.get(), 1);
        assert_eq!(st.get_misses.get(), 1);
        assert_eq!(st.cmd_set.get(), 1);
        assert_eq!(st.delete_misses.get(), 1);
        assert_eq!(st.arith_non_numeric.get(), 1);
        assert_eq!(st.touch_hits.get(), 1);
        assert_eq!(st.error_unknown_command.get(), 1);
    });
}

#[test]
fn incr_reads_numbers_like_memcached() {
    with_engine(|e| {
        // expected bytes recorded from memcached 1.6.18
        let r = run(
            e,
            b"set c 0 0 20\r\n99999999999999999999\r\nincr c 1\r\nset d 0 0 21\r\n018446744073709551615\r\nincr d 1\r\n\
set f 0 0 2\r\n+5\r\nincr f 1\r\nset g 0 0 3\r\n 12\r\nincr g 1\r\nset i 0 0 22\r\n1234567890            \r\nincr i 1\r\n\
set n 0 0 2\r\n99\r\nincr n 1\r\ndecr n 95\r\nget n\r\n",
        );
        assert_eq!(
            String::from_utf8_lossy(&r),
            "STORED\r\nCLIENT_ERROR cannot increment or decrement non-numeric value\r\nSTORED\r\n0\r\nSTORED\r\n6\r\n\
STORED\r\n13\r\nSTORED\r\n1234567891\r\nSTORED\r\n100\r\n5\r\nVALUE n 0 3\r\n5  \r\nEND\r\n"
        );
    });
}

#[test]
fn long_key_after_others_fetches_and_touches_those_first_like_memcached() {
    with_engine(|e| {
        let long = "k".repeat(251);
        let out = run(
            e,
            format!("set a 0 0 1\r\n1\r\nset b 0 0 1\r\n2\r\ngat 100 a b {long} c\r\nmg a t v\r\nmg b t\r\n")
                .as_bytes(),
        );
        assert_eq!(
            String::from_utf8_lossy(&out),
            "STORED\r\nSTORED\r\nCLIENT_ERROR bad command line format\r\nVA 1 t100\r\n1\r\nHD t100\r\n"
        );
        // Counted as memcached counts them: two touch hits before the error.
        let stats = String::from_utf8_lossy(&run(e, b"stats\r\n")).into_owned();
        assert!(stats.contains("STAT cmd_touch 2\r\n"), "{stats}");
        assert!(stats.contains("STAT touch_hits 2\r\n"), "{stats}");
    });
    with_engine(|e| {
        // A long first key: nothing is fetched.
        let long = "k".repeat(251);
        let out = run(
            e,
            format!("set a 0 0 1\r\n1\r\nget {long} a\r\nstats\r\n").as_bytes(),
        );
        let text = String::from_utf8_lossy(&out);
        assert!(
            text.starts_with("STORED\r\nCLIENT_ERROR bad command line format\r\n"),
            "{text}"
        );
        assert!(text.contains("STAT get_hits 0\r\n"), "{text}");
    });
}

#[test]
fn slabs_automove_answers_like_memcached() {
    // memcached 1.6.18's replies, byte for byte
    with_engine(|e| {
        assert_eq!(
            run(
                e,
                b"slabs automove invalid\r\nslabs automove 1\r\nslabs automove 3\r\nslabs automove 0 noreply\r\nslabs automove ratio x\r\nslabs reassign 1 2\r\nmn\r\n"
            ),
            b"CLIENT_ERROR bad command line format\r\nOK\r\nERROR\r\nERROR\r\nERROR\r\nMN\r\n"
        );
    });
}

#[test]
fn mg_stampede_states_like_memcached() {
    // memcached 1.6.18's replies for the same requests
    with_engine(|e| {
        // N with a TTL already over: the item is created (a CAS, the win), then dead
        let r = run(e, b"mg v c k f N-1000\r\nmg v s v\r\n");
        assert!(
            r.starts_with(b"HD c") && r.ends_with(b" kv f0 W\r\nEN\r\n"),
            "{}",
            String::from_utf8_lossy(&r)
        );
        // R before T: the new TTL alone does not mark the item fetched
        assert_eq!(
            run(e, b"set f 0 0 1\r\n1\r\nmg f u R30 T0\r\nmg f h N0\r\n"),
            b"STORED\r\nHD\r\nHD h0\r\n"
        );
        // an over-long opaque with h is refused before the delayed bump marks the item
        let long = format!("mg g O{} h\r\nmg g h\r\n", "z".repeat(32));
        assert_eq!(
            run(
                e,
                [&b"set g 0 0 1\r\n1\r\n"[..], long.as_bytes()]
                    .concat()
                    .as_slice()
            ),
            b"STORED\r\nCLIENT_ERROR opaque token too long\r\nHD h0\r\n"
        );
        // ... but not one without N, R, T, h or l, whose fetch bumps the item at once
        let long = format!("mg o s O{} c\r\nmg o h\r\n", "z".repeat(32));
        assert_eq!(
            run(
                e,
                [&b"set o 0 0 1\r\n1\r\n"[..], long.as_bytes()]
                    .concat()
                    .as_slice()
            ),
            b"STORED\r\nCLIENT_ERROR opaque token too long\r\nHD h1\r\n"
        );
    });
}

#[test]
fn only_a_completed_mg_takes_a_stale_items_win_token() {
    // memcached 1.6.18: get, gat and an mg refused for its opaque leave the token
    with_engine(|e| {
        let long = format!("mg s O{}\r\n", "z".repeat(32));
        let input = [
            &b"set s 0 0 1\r\n1\r\nmd s I\r\nget s\r\ngat 0 s\r\n"[..],
            long.as_bytes(),
            b"mg s\r\nmg s\r\n",
        ]
        .concat();
        assert_eq!(
            run(e, &input),
            [
                &b"STORED\r\nHD\r\nVALUE s 0 1\r\n1\r\nEND\r\nVALUE s 0 1\r\n1\r\nEND\r\n"[..],
                b"CLIENT_ERROR opaque token too long\r\nHD X W\r\nHD Z X\r\n",
            ]
            .concat()
        );
    });
}

#[test]
fn meta_k_prints_the_key_as_the_item_was_stored() {
    // memcached 1.6.18 keeps per item whether `ms` was given a base64 key
    with_engine(|e| {
        assert_eq!(
            run(
                e,
                b"ms azE= 1 b\r\nx\r\nmg k1 k\r\nms azE= 1 b MA\r\ny\r\nmg k1 k\r\nset k2 0 0 1\r\nz\r\nmg azI= b k\r\nmg azM= N30 b k\r\nmg azM= b k\r\n"
            ),
            b"HD\r\nHD kazE= b\r\nHD\r\nHD kk1\r\nSTORED\r\nHD kk2\r\nHD kk3 W\r\nHD kk3 Z\r\n"
        );
    });
}

#[test]
fn meta_t_prints_the_ttl_each_flag_sees_in_order() {
    // memcached 1.6.18 walks the flags in order: a `t` before `T` sees the old TTL
    with_engine(|e| {
        assert_eq!(
            run(
                e,
                b"set a 0 100 1\r\n1\r\nmg a t T30\r\nmg a t\r\nmg a T40 t\r\n"
            ),
            b"STORED\r\nHD t100\r\nHD t30\r\nHD t40\r\n"
        );
    });
}

#[test]
fn ma_t_and_t_follow_the_flags_in_order_like_memcached() {
    // memcached 1.6.18's `ma` applies T and (on a vivify) N and prints t as it walks the
    // flags: a `t` before `T` sees the old TTL, and a new item keeps the later of N and T
    with_engine(|e| {
        assert_eq!(
            run(
                e,
                b"set n 0 100 2\r\n10\r\nma n t T30 v\r\nmg n t v\r\nma n T40 t\r\nmg n t\r\n"
            ),
            b"STORED\r\nVA 2 t100\r\n11\r\nVA 2 t30\r\n11\r\nHD t40\r\nHD t40\r\n"
        );
        assert_eq!(
            run(
                e,
                b"ma v N50 T100 t\r\nmg v t\r\nma w T100 N50 t\r\nmg w t\r\nma x t N50\r\nmg x t\r\n"
            ),
            b"HD t100\r\nHD t100\r\nHD t50\r\nHD t50\r\nHD t-1\r\nHD t50\r\n"
        );
    });
}

#[test]
fn ms_invalidate_with_an_earlier_cas_stores_a_stale_value_like_memcached() {
    // memcached 1.6.18: `ms ... I C<cas>` with a CAS handed out earlier for the key
    // stores the value as stale, keeping the item's TTL and a win token already sent
    with_engine(|e| {
        let cas_of = |reply: &[u8]| -> String {
            let s = String::from_utf8_lossy(reply).into_owned();
            let c = s.split(' ').find(|w| w.starts_with('c')).expect("c flag");
            c[1..].trim_end().to_string()
        };
        let first = cas_of(&run(e, b"ms s 1 c T100\r\na\r\n"));
        run(e, b"ms s 1 T50\r\nb\r\n");
        let stale = format!("ms s 1 I C{first} T9\r\nz\r\nmg s t v\r\nmg s t v\r\n");
        assert_eq!(
            run(e, stale.as_bytes()),
            b"HD\r\nVA 1 t50 X W\r\nz\r\nVA 1 t50 Z X\r\nz\r\n"
        );
        let again = format!("ms s 1 I C{first}\r\ny\r\nmg s t v\r\n");
        assert_eq!(run(e, again.as_bytes()), b"HD\r\nVA 1 t50 Z X\r\ny\r\n");
    });
}

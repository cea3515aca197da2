//! The request parser on arbitrary bytes: never panics, never claims more
//! input than it was given, always makes progress on a complete request or
//! an error, and a request parsed from a prefix parses the same from the
//! whole input (incremental parsing is consistent).
#![no_main]

use libfuzzer_sys::fuzz_target;
use petrel_core::proto::{parse, ParseConfig, Parsed};

fuzz_target!(|data: &[u8]| {
    // First byte: small or default limits (small ones reach the limit paths).
    let (cfg, input) = match data.split_first() {
        Some((b, rest)) if b & 1 == 0 => (
            ParseConfig {
                item_size_max_bytes: 1024 + usize::from(*b) * 16,
                get_line_max_bytes: 256 + usize::from(*b),
                line_max_bytes: 64 + usize::from(*b) * 8,
            },
            rest,
        ),
        Some((_, rest)) => (ParseConfig::default(), rest),
        None => return,
    };
    let mut pos = 0;
    let mut steps = 0;
    while pos < input.len() && steps < 100_000 {
        steps += 1;
        let rest = &input[pos..];
        match parse(rest, &cfg) {
            Parsed::NeedMore => {
                // Nothing complete: no prefix may be complete either.
                if rest.len() > 1 {
                    let half = &rest[..rest.len() / 2];
                    assert!(
                        matches!(parse(half, &cfg), Parsed::NeedMore),
                        "a prefix of an incomplete request parsed"
                    );
                }
                break;
            }
            Parsed::Request { request, consumed } => {
                assert!(consumed > 0 && consumed <= rest.len());
                // The same bytes alone parse to the same request.
                match parse(&rest[..consumed], &cfg) {
                    Parsed::Request {
                        request: again,
                        consumed: c2,
                    } => {
                        assert_eq!(c2, consumed);
                        assert_eq!(again, request);
                    }
                    other => panic!("request not stable when cut at its end: {other:?}"),
                }
                pos += consumed;
            }
            Parsed::Error(e) => {
                assert!(e.skip > 0);
                pos = pos.saturating_add(e.skip);
            }
        }
    }
});

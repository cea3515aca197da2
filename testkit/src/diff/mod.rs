//! The differential harness: the same seeded random streams of pipelined text commands go to
//! Debian's memcached 1.6.18 and to a [`run::Candidate`] (Petrel's engine in-process, or the
//! petrel binary over TCP), and every reply byte must be equal, CAS values through a bijection
//! ([`reply`]). Used by `core/tests/differential.rs` (at least 100,000 commands against the
//! engine) and `tests/tests/differential.rs` (at least 24,000 over TCP).
//!
//! - memcached is started by [`crate::server`] (`-U 0 -m 64 -t 1 -o
//!   no_lru_crawler,no_lru_maintainer`, see [`memcached_reference`]) and stopped by PID.
//! - Each run uses fixed seeds and one fresh random seed, all printed
//!   ([`run::RunConfig::from_env`]); `PETREL_DIFF_SEED=S PETREL_DIFF_COMMANDS=N` replays one.
//! - Commands are pipelined in batches of 1 to 40 ending with a sentinel (`md
//!   __petrel_batch_end__ O<batch>`), whose answer nothing generated can give.
//! - The candidate runs at memcached's clock where it can ([`gen::Profile::Engine`]): memcached
//!   judges every exptime, TTL (`t`), recache window (`R`) and flush by its
//!   `current_time`, which its timer advances once a second at a phase unrelated to the wall
//!   clock's second. [`clock::McClock`] reads `time` from `stats` on a connection of its own; a
//!   batch is sent only when memcached's next tick is at least [`clock::TICK_GUARD`] away, the
//!   candidate runs it at that `time`, and `time` is read again afterwards: if memcached ticked
//!   during the batch anyway (a stall), the seed starts over from a flush on both sides (at
//!   most [`clock::SEED_ATTEMPTS`] times).
//! - Before each batch the arith keys' values are read from memcached with `mg <key> v u` (no
//!   bump, no fetched bit, no access time), so the generator can keep incr/decr/ma away from
//!   numbers memcached does not handle deterministically (below). The candidate gets the same
//!   requests and must answer alike (an `mg` of a stale item hands out its win token).
//! - A difference panics with the seed, batch, both clocks, the commands of the batch and the
//!   one before, and the replies around the first differing unit, and writes
//!   `petrel-diff-*.{txt,bin}` to the temp directory.
//!
//! ## What the generator leaves out, and why
//!
//! Each exclusion exists for one documented memcached behaviour (or a deliberate difference
//! listed in README's "Differences from memcached"):
//! - `stats` values and `me` hits (`cls=`/`size=` are slab-allocator details;
//!   Petrel prints its own numbers). `me` misses are compared.
//! - incr/decr of values memcached's `strtoull` reads leniently: leading
//!   whitespace, a whitespace-only value (read as 0), a number followed by a
//!   space and more text ("1 2" reads as 1). Petrel's store requires digits
//!   (optionally padded with trailing spaces, as its own incr results are).
//! - `ma ... T` where the result has more digits than the stored number: memcached 1.6.18
//!   then writes a new item and keeps the new TTL only on the old one (its `t` reports it,
//!   later reads do not see it); Petrel stores it (protocol.txt). The generator knows each
//!   arith key's stored length and sends `T` only with an `ma` that updates in place, misses,
//!   vivifies or meets a non-number (`t` is generated with every `ma`).
//! - incr/decr/ma of a stored number of 2^63 or more: memcached 1.6.18's
//!   `safe_strtoull` then looks for a '-' with `strchr` from the start of the
//!   value, and item data is not NUL-terminated, so it reads on past the
//!   value's `\r\n` through stale bytes of the slab chunk into the next one
//!   and answers "CLIENT_ERROR cannot increment or decrement non-numeric
//!   value" when it meets a '-' before a NUL. What lies there depends on
//!   which items used that memory before, i.e. on allocation order and
//!   timing (the LRU maintainer reclaiming expired items, pipelined replies
//!   holding references). This was the "rare state divergence on the
//!   numeric keys" of long runs, and the flaky failure of the default run
//!   (a few percent of runs on a loaded machine). Reproduced by hand:
//!   `set c1 0 0 35` with `xxxxxxxxxxxxxxxxxxxxxx-------------`, `delete
//!   c1`, `set c1 0 0 20` with `18446744073709551615`, `incr c1 1` answers
//!   that error (with `x` instead of `-` it answers `0`). The generator
//!   therefore never sends incr/decr/ma to a key holding such a number:
//!   it knows each arith key's value at the start of a batch (read from
//!   memcached) and follows incr/decr/ma through the batch; after any other write the
//!   key is left alone until the next batch. Numbers of 2^63 and more are
//!   still stored, read and produced by incr/decr (wrapping included).
//! - `ms ... I` with a CAS that was never handed out for that key (another key's, a made-up
//!   number): memcached stores a stale value when it is numerically lower than the item's,
//!   Petrel whenever it is not the item's (its CAS values are unique but not ordered by write
//!   time); README's "Differences from memcached" lists it. `ms ... I` is sent without `C` or
//!   with a CAS a reply gave that key's item before (a `VALUE` line, or a meta reply with
//!   `k` and `c`): the current one (a plain store) or an older one (a stale store).
//! - memcached 1.6.18 drops the not-yet-sent replies of earlier pipelined
//!   commands when a multi-get meets a key over 250 bytes (it releases the
//!   connection's stacked responses); Petrel answers every command. Such gets
//!   are generated only first in a batch. (Like memcached, Petrel fetches,
//!   touches and counts the keys before such a key, then answers the error.)
//! - Delayed `flush_all <n>` and values within a few bytes of the item size
//!   limit (item header sizes differ; the limit itself follows memcached's
//!   accounting in the parser).
//! - incr/decr/ma on a key read earlier in the same batch: memcached updates a number in place
//!   (space padded when the result is shorter) only while no pending reply references the
//!   item, else it writes a new, unpadded item, which depends on how the pipeline is split into
//!   reads. With that excluded (and memcached's LRU crawler and maintainer off, which take
//!   item references at moments of their own), the padding is compared exactly.
//! - Meta `l` (seconds since the last access): memcached 1.6.18's segmented LRU moves an
//!   item's access time only when a fetched item turns ACTIVE (`do_item_bump`, on its second
//!   hit; in the cold LRU only through an asynchronous bump), and its LRU maintainer thread
//!   clears ACTIVE at moments of its own, so memcached's `l` depends on that thread's timing.
//!   Petrel moves the access time on every access; `l` differs after repeated reads.
//! - With [`gen::Profile::Server`] (a candidate with its own clock): `t`, `R`.

pub mod clock;
pub mod gen;
pub mod reply;
pub mod run;

use crate::server::{Server, Target};

/// memcached's options for a reference: its background LRU threads take item references at
/// unpredictable moments, and an `incr` then either pads the number in place or allocates a
/// new item.
pub const MEMCACHED_QUIET: &str = "no_lru_crawler,no_lru_maintainer";

/// A memcached reference on a free loopback port (TCP only), or `None` after a
/// [`crate::skip::skip`] when memcached is not installed.
pub fn memcached_reference() -> Option<Server> {
    if !crate::server::require_memcached() {
        return None;
    }
    Some(
        Target::memcached()
            .builder()
            .no_udp()
            .arg("-o")
            .arg(MEMCACHED_QUIET)
            .start(),
    )
}

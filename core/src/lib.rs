// The crate documentation is core/README.md: how to embed the engine (what it
// needs from its host, sizing the arena, driving it) with examples that run as
// doctests (`cargo test --release -p petrel-core --doc`).
#![doc = include_str!("../README.md")]
#![no_std]
#![deny(missing_docs)]
#![forbid(unsafe_op_in_unsafe_fn)]

#[cfg(test)]
extern crate std;

pub mod arena;
pub mod engine;
pub mod histogram;
pub mod klog;
pub mod proto;
pub mod stats;
pub mod store;
pub mod udp;
pub mod wire;
pub mod xdp;

// What an embedder needs, at the crate root (see the crate docs).
pub use engine::{Engine, EngineConfig, EngineStats, Progress, Session, Status, MIN_OUTPUT_BYTES};
pub use store::{ConfigError, Eviction, StoreConfig, StoreStats};

/// The memcached version Petrel reports by default on the wire (`version`,
/// `stats` `version`): the memcached release whose protocol behaviour Petrel
/// follows. Clients built on libmemcached (pylibmc, PHP's memcached,
/// `memccapable`) read it to decide which commands a server supports; a
/// version below 1.3 makes them treat the server as a pre-1.3 memcached.
/// Petrel's own version is `stats` `petrel_version`.
pub const MEMCACHED_VERSION: &str = memcached_version!();

/// [`MEMCACHED_VERSION`] as a literal, for `concat!`.
#[macro_export]
macro_rules! memcached_version {
    () => {
        "1.6.18"
    };
}

/// Seconds of the host's clock (Unix seconds). The core never reads a clock:
/// every call that depends on time takes `now: Time`. An absolute expiry
/// time of `0` means "never expires".
pub type Time = u32;

/// Which transport a [`Session`] serves (also named in the command log's
/// records, [`klog::CommandRecord`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// A TCP connection (long-lived session).
    Tcp,
    /// One UDP datagram (fresh session per request datagram).
    Udp,
}

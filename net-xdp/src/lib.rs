//! Petrel's AF_XDP front end: memcache-over-UDP answered straight from the
//! NIC's queues, bypassing the kernel's network stack.
//!
//! ```text
//!            NIC RX queue q
//!                 |
//!        XDP program (bpf/program.rs)  -- not UDP to the port --> kernel stack
//!                 | bpf_redirect_map(xskmap, q)
//!                 v
//!   XSK q: RX ring -> worker q (pinned) -> core::wire, core::udp + UdpService (the engine)
//!                                            |
//!          fill ring <- frames back          v
//!          TX ring   <- replies (in place or fresh frames) -> NIC
//!          completion ring -> frames back to the worker's free list
//! ```
//!
//! One worker thread per served queue owns that queue's UMEM, socket and
//! four rings; workers share nothing but the service. Linux only.
//!
//! # Use
//!
//! ```ignore
//! let mut cfg = petrel_xdp::XdpConfig::new("eth0", 11211);
//! cfg.mode = "auto".parse()?;          // or XdpMode { attach, zero_copy }
//! // A borrowed engine: workers run while the closure runs.
//! petrel_xdp::XdpFrontend::serve(cfg, &engine, |xdp| {
//!     log::info!("AF_XDP: {} on queues {:?}", xdp.mode(), xdp.queues());
//!     kernel_frontends.run(&engine, shutdown)   // blocks until shutdown
//! })?;
//! // Or, with a `&'static` engine: let xdp = XdpFrontend::start(cfg, engine)?;
//! ```
//!
//! The core `Engine` implements [`UdpService`]. Needs root (or
//! CAP_NET_ADMIN, CAP_NET_RAW and CAP_BPF); errors say so ([`XdpError`]).
//! Counters: [`XdpFrontend::stats`] per queue, [`XdpFrontend::for_each_total`]
//! and [`XdpFrontend::for_each_drop_total`] summed.
//!
//! A socket is put in the XSKMAP only once its fill ring is full (every
//! UMEM frame but the multi-datagram reserve), so frames that arrive
//! between [`XdpFrontend::attach`] and the workers' first round wait on the
//! RX ring; [`XdpAttachment::ring_levels`] shows the rings and the kernel's
//! socket statistics in that window.
//!
//! # Testing
//!
//! `scripts/netns up|down` builds the veth topology (two namespaces, or
//! the server end in the root namespace); the tests in `tests/` (root only)
//! build their own with it, and `scripts/bench-udp` compares this front end
//! in the petrel binary with memcached's and Petrel's kernel UDP.
#![cfg(target_os = "linux")]

pub mod bpf;
pub mod config;
mod engine;
mod frontend;
pub mod iface;
pub mod service;
pub mod stats;
mod worker;

pub use config::{AttachMode, ResolvedMode, XdpConfig, XdpError, XdpMode, ZeroCopy};
pub use frontend::{XdpAttachment, XdpFrontend};
pub use service::{Progress, Status, Time, UdpService};
pub use stats::{KernelSocketStats, QueueStats, RingLevels, XdpStats};

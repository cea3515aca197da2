//! Petrel's AF_XDP front end: memcache-over-UDP answered straight from the
//! NIC's queues, bypassing the kernel's network stack.
//!
//! ```text
//!            NIC RX queue q
//!                 |
//!        XDP program (bpf/program.rs)  -- not UDP to the port --> kernel stack
//!                 | bpf_redirect_map(xskmap, q)
//!                 v
//!   XSK q: RX ring -> worker q (pinned) -> core::wire + UdpService (the engine)
//!                                            |
//!          fill ring <- frames back          v
//!          TX ring   <- replies (in place or fresh frames) -> NIC
//!          completion ring -> frames back to the worker's free list
//! ```
//!
//! One worker thread per served queue owns that queue's UMEM, socket and
//! four rings; workers share nothing but the service. Linux only.
//!
//! Entry point: [`XdpFrontend::start`] with an [`XdpConfig`] and the core
//! `Engine` (which implements [`UdpService`]).
#![cfg(target_os = "linux")]

pub mod bpf;
pub mod config;
mod engine;
mod frontend;
pub mod iface;
pub mod service;
pub mod stats;
mod worker;

pub use config::{parse_id_list, AttachMode, ResolvedMode, XdpConfig, XdpError, XdpMode, ZeroCopy};
pub use frontend::XdpFrontend;
pub use service::{Time, UdpProgress, UdpService, UdpStatus};
pub use stats::QueueStats;

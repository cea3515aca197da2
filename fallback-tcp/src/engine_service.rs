//! `Service` for the core engine (filled in when `petrel_core::engine` lands).

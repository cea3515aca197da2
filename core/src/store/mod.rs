//! Segcache-style segment storage.

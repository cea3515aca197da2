//! memcache ASCII protocol (owned by the engine engineer).

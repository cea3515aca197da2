//! Executes parsed requests against the store (owned by the engine engineer).

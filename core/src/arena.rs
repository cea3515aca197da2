//! Carving one caller-provided byte region into the store's regions.

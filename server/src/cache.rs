//! Sizing and building the one engine, and the front ends' settings, from
//! the effective [`Settings`].

use petrel_core::engine::{Engine, EngineConfig};
use petrel_core::store::{ArenaFill, ConfigError, Store, StoreConfig, MAX_SHARDS};
use petrel_tcp::{FrontendConfig, READ_BUFFER_LINE_BYTES};

use crate::config::Settings;

/// Smallest segment; items larger than this get segments of their size
/// rounded up to a power of two.
const SEGMENT_BYTES_MIN: usize = 1 << 20;
/// Largest segment the store supports (so the largest `-I`).
const SEGMENT_BYTES_MAX: usize = 1 << 24;
/// Shards are chosen so each has at least this many segments when the
/// memory allows it (finer eviction), up to four shards per thread.
const SEGMENTS_PER_SHARD_TARGET: usize = 16;
/// Segments `Engine::expire` may reclaim per call (every 100 ms).
const EXPIRE_BUDGET_SEGMENTS: usize = 16;

/// The engine configuration for `s` and the arena bytes it needs. Errors
/// name the flag to change.
pub fn engine_config(s: &Settings, started_at: u32) -> Result<(EngineConfig, usize), String> {
    let max_item =
        usize::try_from(s.max_item_bytes).map_err(|_| "--max-item-size: too large".to_string())?;
    let memory = usize::try_from(s.memory_limit_bytes)
        .map_err(|_| "--memory-limit: too large".to_string())?;
    let segment_bytes = max_item.next_power_of_two().max(SEGMENT_BYTES_MIN);
    if segment_bytes > SEGMENT_BYTES_MAX {
        return Err(format!(
            "--max-item-size: at most {} MiB is supported (the store's largest segment)",
            SEGMENT_BYTES_MAX >> 20
        ));
    }
    let segments = memory / segment_bytes;
    let most_shards = ((s.threads as usize) * 4)
        .next_power_of_two()
        .min(MAX_SHARDS);
    let mut shards = most_shards;
    while shards > 1 && segments / shards < SEGMENTS_PER_SHARD_TARGET {
        shards /= 2;
    }
    let base = EngineConfig {
        store: StoreConfig {
            item_memory_bytes: memory,
            segment_bytes,
            shards,
            max_item_bytes: max_item,
            hash_power: s.hash_power,
            ..StoreConfig::default()
        },
        // Leaked once at start-up: the engine holds its version for the
        // process's life.
        version: Box::leak(s.compat.memcached_version.clone().into_boxed_str()),
        dump_enabled: !s.memcached.disable_dumping,
        pid: std::process::id(),
        started_at,
        threads: s.threads,
        max_connections: s.conn_limit,
        tcp_port: s.port,
        udp_port: s.udp_port,
        item_size_max_bytes: max_item,
        // memcached takes multi-gets of any length; ours may fill the read buffer.
        // (The read buffer holds one: it is at least max(-I, 64k) + 2k.)
        get_line_max_bytes: (s.read_buffer_bytes as usize).saturating_sub(READ_BUFFER_LINE_BYTES),
        // Other lines: memcached's 2048 unless --max-line-bytes (checked to
        // be at most the get bound above).
        line_max_bytes: usize::try_from(s.max_line_bytes)
            .map_err(|_| "--max-line-bytes: too large".to_string())?,
        protocol: s.protocol,
        ..EngineConfig::default()
    };
    // Fewer shards if the memory cannot give each one enough segments.
    let mut cfg = base;
    loop {
        match Engine::required_bytes(&cfg) {
            Ok(bytes) => return Ok((cfg, bytes)),
            Err(ConfigError::SegmentCount) if cfg.store.shards > 1 => cfg.store.shards /= 2,
            Err(e) => return Err(explain(e, s, segment_bytes)),
        }
    }
}

/// One line naming the flag behind a store configuration error.
pub fn explain(e: ConfigError, s: &Settings, segment_bytes: usize) -> String {
    match e {
        ConfigError::SegmentCount => format!(
            "--memory-limit: {} MiB is too little for {}-byte segments (needed by --max-item-size {}); \
             give more memory or a smaller item size",
            s.memory_limit_bytes >> 20,
            segment_bytes,
            s.max_item_bytes
        ),
        ConfigError::MaxItemSize | ConfigError::SegmentSize => {
            format!("--max-item-size: {} bytes is not supported by the store", s.max_item_bytes)
        }
        ConfigError::Overflow => format!("--memory-limit: {} MiB is too large", s.memory_limit_bytes >> 20),
        other => format!("--memory-limit: the store rejects this configuration ({other:?})"),
    }
}

/// Builds the engine in `arena` (at least `required_bytes` long), whose
/// bytes must all be zero: a fresh anonymous mapping, or a file just
/// truncated and extended. The store then writes only its header page and
/// TTL buckets ([`ArenaFill::Zeroed`]), so this takes the same time at any
/// `-m` and leaves the rest of the arena untouched (not resident).
pub fn build_on_zeroed(
    cfg: &EngineConfig,
    arena: &'static mut [u8],
) -> Result<Engine<'static>, String> {
    let store = Store::with_fill(&cfg.store, arena, ArenaFill::Zeroed)
        .map_err(|e| format!("cannot build the store: {e:?}"))?;
    Ok(Engine::with_store(cfg, store))
}

/// Front-end settings: addresses, threads, limits, buffer sizes.
pub fn frontend_config(s: &Settings) -> FrontendConfig {
    let max_item = s.max_item_bytes as usize;
    let mut f = FrontendConfig::new(s.tcp_addrs(), s.udp_addrs(), max_item);
    f.threads = s.threads as usize;
    f.max_connections = s.conn_limit as usize;
    f.idle_timeout_secs = s.idle_timeout_secs;
    // One maximum-size item with its command line, or the longest get line.
    f.read_buffer_bytes = s.read_buffer_bytes as usize;
    f.write_buffer_bytes = s.write_buffer_bytes as usize;
    f.expire_budget = EXPIRE_BUDGET_SEGMENTS;
    f.unix = s
        .memcached
        .unix_socket
        .clone()
        .map(|p| (p, s.memcached.unix_mask));
    f.turn_steps = s.memcached.turn_steps as usize;
    f.notls = s.notls_addrs();
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{parse_args, Parsed};
    use petrel_core::proto::GET_LINE_MAX_BYTES;

    fn settings(args: &[&str]) -> Settings {
        let mut v = vec!["petrel"];
        v.extend_from_slice(args);
        match parse_args(v).unwrap() {
            Parsed::Run(s) => *s,
            Parsed::Print(_) => unreachable!(),
        }
    }

    #[test]
    fn defaults_fit_and_build_an_engine() {
        let s = settings(&[]);
        let (cfg, bytes) = engine_config(&s, 0).unwrap();
        assert_eq!(cfg.store.item_memory_bytes, 64 << 20);
        assert_eq!(cfg.store.segment_bytes, 1 << 20);
        assert!(cfg.store.shards >= 1 && bytes >= 64 << 20);
        let arena: &'static mut [u8] = Box::leak(vec![0u8; bytes].into_boxed_slice());
        build_on_zeroed(&cfg, arena).unwrap();
    }

    #[test]
    fn big_items_get_big_segments_and_too_little_memory_names_the_flag() {
        let s = settings(&["-I", "3m", "-m", "256"]);
        let (cfg, _) = engine_config(&s, 0).unwrap();
        assert_eq!(cfg.store.segment_bytes, 4 << 20);
        let s = settings(&["-I", "8m", "-m", "16"]);
        let e = engine_config(&s, 0).unwrap_err();
        assert!(e.starts_with("--memory-limit"), "{e}");
        let s = settings(&["-I", "32m", "-m", "1024"]);
        assert!(engine_config(&s, 0)
            .unwrap_err()
            .starts_with("--max-item-size"));
    }

    #[test]
    fn read_buffer_holds_the_largest_request() {
        let s = settings(&["-I", "2k"]);
        let f = frontend_config(&s);
        assert!(f.read_buffer_bytes >= GET_LINE_MAX_BYTES + 2048);
        let s = settings(&[]);
        assert_eq!(frontend_config(&s).read_buffer_bytes, (1 << 20) + 2048);
    }

    #[test]
    fn line_limit_reaches_the_engine() {
        let (cfg, _) = engine_config(&settings(&[]), 0).unwrap();
        assert_eq!(cfg.line_max_bytes, petrel_core::proto::LINE_MAX_BYTES);
        let s = settings(&["-I", "2k", "--max-line-bytes", "64k"]);
        let (cfg, _) = engine_config(&s, 0).unwrap();
        assert_eq!(cfg.line_max_bytes, 64 << 10);
        // Never above the get bound, so the read buffer holds one byte more.
        assert!(cfg.line_max_bytes <= cfg.get_line_max_bytes);
        assert!(cfg.line_max_bytes < frontend_config(&s).read_buffer_bytes);
    }
}

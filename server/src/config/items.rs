//! Items section: item memory, the largest item, and the per-connection
//! buffers that must hold it (`-m`, `-I`, `--read-buffer`, `--write-buffer`,
//! `--max-line-bytes` and their config keys).

use clap::Args;
use serde::Deserialize;

use super::value::{pick_or, pick_size, ConfigError, Origin, SizeValue, Sourced};

/// MiB of item memory.
pub const DEFAULT_MEMORY_LIMIT_MIB: u64 = 64;
/// Largest item in bytes (1m).
pub const DEFAULT_MAX_ITEM_BYTES: u64 = 1 << 20;
/// Smallest `-I` memcached accepts.
pub const MIN_ITEM_BYTES: u64 = 1024;
/// Largest `-I` memcached accepts (1024m).
pub const MAX_ITEM_LIMIT_BYTES: u64 = 1024 << 20;
/// Bytes of command line a read buffer holds beyond the largest item (the
/// front end's [`petrel_tcp::READ_BUFFER_LINE_BYTES`]).
pub const READ_BUFFER_LINE_BYTES: u64 = petrel_tcp::READ_BUFFER_LINE_BYTES as u64;
/// Default per-connection write buffer.
pub const WRITE_BUFFER_DEFAULT_BYTES: u64 = 64 << 10;
/// Smallest write buffer (one reply line of the engine must fit).
pub const WRITE_BUFFER_MIN_BYTES: u64 = 4 << 10;
/// Largest buffer of either kind.
pub const BUFFER_MAX_BYTES: u64 = (1 << 30) + READ_BUFFER_LINE_BYTES;
/// Smallest `--max-line-bytes`: every classic command with a 250-byte key
/// and all its arguments fits.
pub const MAX_LINE_MIN_BYTES: u64 = 512;

/// The item and buffer flags; each is also a config key of the same name.
#[derive(Args, Deserialize, Debug, Default, Clone)]
#[command(next_help_heading = "Memory and items")]
#[serde(rename_all = "kebab-case")]
pub struct ItemArgs {
    /// Item memory in megabytes (MiB) [default: 64]
    #[arg(short = 'm', long = "memory-limit", value_name = "MB")]
    pub memory_limit: Option<u64>,
    /// Largest item, bytes or with a k/m suffix (min 1k, max 1024m) [default: 1m]
    #[arg(short = 'I', long = "max-item-size", value_name = "SIZE", value_parser = SizeValue::from_flag)]
    pub max_item_size: Option<SizeValue>,
    /// Per-connection read buffer: the longest request (an item with its
    /// command line, or a multi-get line); longer ones close the connection
    /// [default: max(-I, 64k) + 2k]
    #[arg(long = "read-buffer", value_name = "SIZE", value_parser = SizeValue::from_flag)]
    pub read_buffer: Option<SizeValue>,
    /// Per-connection write buffer: what a client that does not read its
    /// replies can make the server hold [default: 64k]
    #[arg(long = "write-buffer", value_name = "SIZE", value_parser = SizeValue::from_flag)]
    pub write_buffer: Option<SizeValue>,
    /// Longest request line other than get/gets (512 up to the read buffer
    /// less 2k); a longer one closes the connection, no reply [default:
    /// 2048, memcached's fixed limit]
    #[arg(long = "max-line-bytes", value_name = "SIZE", value_parser = SizeValue::from_flag)]
    pub max_line_bytes: Option<SizeValue>,
    /// Lock the item memory in RAM (mlock) where the memlock limit allows
    #[arg(short = 'k', long = "lock-memory")]
    #[serde(default)]
    pub lock_memory: bool,
    /// Item memory a background thread keeps resident ahead of where the
    /// store writes next (split over the shards), so requests rarely wait
    /// for a page to be faulted in; 0 = off, memory becomes resident on
    /// first use only [default: 64m]
    #[arg(long = "prefault-ahead", value_name = "SIZE", value_parser = SizeValue::from_flag)]
    pub prefault_ahead: Option<SizeValue>,
}

/// Whether the item memory is locked without `-k`.
pub const DEFAULT_LOCK_MEMORY: bool = false;
/// Default `--prefault-ahead`.
pub const DEFAULT_PREFAULT_AHEAD_BYTES: u64 = 64 << 20;

/// The effective item and buffer settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemSettings {
    /// Item memory in bytes.
    pub memory_limit_bytes: u64,
    /// Largest item in bytes.
    pub max_item_bytes: u64,
    /// Per-connection read buffer in bytes.
    pub read_buffer_bytes: u64,
    /// Per-connection write buffer in bytes.
    pub write_buffer_bytes: u64,
    /// Longest request line other than `get`/`gets`, in bytes.
    pub max_line_bytes: u64,
    /// Lock the item memory in RAM.
    pub lock_memory: bool,
    /// Bytes kept resident ahead of the segment frontiers; 0 = off.
    pub prefault_ahead_bytes: u64,
}

/// Merges the item flags over their keys over the defaults and checks them.
pub fn resolve(cli: &ItemArgs, file: &ItemArgs) -> Result<ItemSettings, ConfigError> {
    let mem = pick_or(
        cli.memory_limit,
        file.memory_limit,
        "memory-limit",
        DEFAULT_MEMORY_LIMIT_MIB,
    );
    if mem.value == 0 {
        return mem.origin.fail("item memory must be at least 1 MiB");
    }
    let memory_limit_bytes = match mem.value.checked_mul(1 << 20) {
        Some(b) if usize::try_from(b).is_ok() && b <= (1 << 46) => b,
        _ => {
            return mem.origin.fail(format!(
                "{} MiB is more than this machine can address",
                mem.value
            ))
        }
    };
    let item =
        pick_size(&cli.max_item_size, &file.max_item_size, "max-item-size")?.unwrap_or(Sourced {
            value: DEFAULT_MAX_ITEM_BYTES,
            origin: Origin::Default("max-item-size"),
        });
    if item.value < MIN_ITEM_BYTES {
        return item
            .origin
            .fail("item max size cannot be less than 1024 bytes");
    }
    if item.value > MAX_ITEM_LIMIT_BYTES {
        return item
            .origin
            .fail("cannot set item size limit higher than 1024 MiB");
    }
    if item.value > memory_limit_bytes / 2 {
        return item.origin.fail(format!(
            "cannot set item size limit higher than 1/2 of memory max ({} bytes with -m {})",
            memory_limit_bytes / 2,
            mem.value
        ));
    }
    let (read_buffer_bytes, write_buffer_bytes) = buffer_sizes(cli, file, item.value)?;
    let max_line_bytes = max_line_bytes(cli, file, read_buffer_bytes)?;
    let prefault_ahead_bytes =
        pick_size(&cli.prefault_ahead, &file.prefault_ahead, "prefault-ahead")?
            .map_or(DEFAULT_PREFAULT_AHEAD_BYTES, |s| s.value);
    Ok(ItemSettings {
        memory_limit_bytes,
        max_item_bytes: item.value,
        read_buffer_bytes,
        write_buffer_bytes,
        max_line_bytes,
        lock_memory: cli.lock_memory || file.lock_memory || DEFAULT_LOCK_MEMORY,
        prefault_ahead_bytes,
    })
}

/// `--max-line-bytes` (or its key): at least [`MAX_LINE_MIN_BYTES`] and at
/// most the read buffer less the [`READ_BUFFER_LINE_BYTES`] it keeps beyond
/// the largest item (the multi-get bound), so that the first byte over the
/// limit always fits the read buffer and the line is refused as too long.
/// Unset, it is memcached's fixed 2048 whatever the read buffer.
fn max_line_bytes(cli: &ItemArgs, file: &ItemArgs, read_buffer: u64) -> Result<u64, ConfigError> {
    match pick_size(&cli.max_line_bytes, &file.max_line_bytes, "max-line-bytes")? {
        None => Ok(petrel_core::proto::LINE_MAX_BYTES as u64),
        Some(s) => {
            let max = read_buffer.saturating_sub(READ_BUFFER_LINE_BYTES);
            if s.value < MAX_LINE_MIN_BYTES || s.value > max {
                return s.origin.fail(format!(
                    "must be between {MAX_LINE_MIN_BYTES} and {max} bytes (the read buffer \
                     less {READ_BUFFER_LINE_BYTES}; raise --read-buffer for longer lines)"
                ));
            }
            Ok(s.value)
        }
    }
}

/// `--read-buffer` and `--write-buffer` (or their keys) in bytes, checked
/// against the item size limit.
fn buffer_sizes(cli: &ItemArgs, file: &ItemArgs, max_item: u64) -> Result<(u64, u64), ConfigError> {
    let read = match pick_size(&cli.read_buffer, &file.read_buffer, "read-buffer")? {
        None => {
            max_item.max(petrel_core::proto::GET_LINE_MAX_BYTES as u64) + READ_BUFFER_LINE_BYTES
        }
        Some(s) => {
            let min = max_item + READ_BUFFER_LINE_BYTES;
            if s.value < min || s.value > BUFFER_MAX_BYTES {
                return s.origin.fail(format!(
                    "must hold the largest item plus its command line: between {min} and \
                     {BUFFER_MAX_BYTES} bytes"
                ));
            }
            s.value
        }
    };
    let write = match pick_size(&cli.write_buffer, &file.write_buffer, "write-buffer")? {
        None => WRITE_BUFFER_DEFAULT_BYTES,
        Some(s) => {
            if !(WRITE_BUFFER_MIN_BYTES..=BUFFER_MAX_BYTES).contains(&s.value) {
                return s.origin.fail(format!(
                    "must be between {WRITE_BUFFER_MIN_BYTES} and {BUFFER_MAX_BYTES} bytes"
                ));
            }
            s.value
        }
    };
    Ok((read, write))
}

//! The values store calls take and return: lookup options, the view of an
//! item, write and arithmetic requests, errors and audit findings.

use crate::Time;

/// Longest key the store accepts, as memcached.
pub const MAX_KEY_BYTES: usize = 250;

/// Why a store operation did not succeed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreError {
    /// Header + key + value exceeds `max_item_bytes`.
    TooLarge,
    /// add of a present key, replace/append/prepend of an absent key.
    NotStored,
    /// cas given and the item's cas differs.
    Exists,
    /// The key is absent (cas store, delete, arith, touch).
    NotFound,
    /// incr/decr on a value that is not a decimal u64.
    NonNumeric,
    /// No memory could be freed for the item (policy `None`, or all
    /// segments are open).
    NoMemory,
    /// The value a [`ValueLocation`] pointed to has been overwritten,
    /// evicted or reclaimed.
    Gone,
    /// Empty key or key longer than [`MAX_KEY_BYTES`].
    BadKey,
}

/// A broken invariant found by [`Store::audit`](super::Store::audit).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuditError {
    /// The shard it was found in.
    pub shard: usize,
    /// What is broken.
    pub failure: AuditFailure,
}

/// What [`Store::audit`](super::Store::audit) found broken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuditFailure {
    /// A hash slot links an item marked deleted.
    DeletedItemLinked {
        /// Bucket index (in the shard's bucket array).
        bucket: usize,
        /// Slot in the bucket (1..=7).
        slot: usize,
    },
    /// A hash slot points into a free segment.
    FreeSegmentLinked {
        /// Bucket index (in the shard's bucket array).
        bucket: usize,
        /// Slot in the bucket (1..=7).
        slot: usize,
    },
    /// A recount disagrees with the incremental accounting.
    Mismatch {
        /// The quantity (a counter name, or a per-segment total).
        what: &'static str,
        /// Recounted from the structures.
        counted: u64,
        /// Held by the accounting.
        recorded: u64,
    },
}

impl core::fmt::Display for AuditError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "shard {}: ", self.shard)?;
        match self.failure {
            AuditFailure::DeletedItemLinked { bucket, slot } => {
                write!(f, "bucket {bucket} slot {slot} links a deleted item")
            }
            AuditFailure::FreeSegmentLinked { bucket, slot } => {
                write!(f, "bucket {bucket} slot {slot} points into a free segment")
            }
            AuditFailure::Mismatch {
                what,
                counted,
                recorded,
            } => write!(f, "{what}: counted {counted}, accounted {recorded}"),
        }
    }
}

/// Options of a lookup (memcached `get`/`gat` and meta `mg` flags).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GetOptions {
    /// gat / mg T: set a new absolute expiry (0 = never) on a hit.
    pub touch: Option<Time>,
    /// Mark the access: bump frequency, last-access time, fetched bit.
    pub update_access: bool,
    /// mg N: on a miss, create an empty item with this expiry; the caller
    /// wins ([`ItemRef::won`]) and sees it as [`ItemRef::created`]. With an
    /// expiry already past, the item is created (it takes a CAS value) and
    /// removed once `f` has seen it, as memcached's is dead on arrival.
    pub vivify: Option<Time>,
    /// mg R: if the remaining TTL is below this many seconds, the first
    /// caller wins the recache token.
    pub recache_below: Option<u32>,
    /// Count the lookup in `gets`/`get_hits`/`get_misses`.
    pub count: bool,
    /// A meta get (`mg`): a stale item hands out its win token to this
    /// caller ([`ItemRef::won`]) unless one was sent. Other lookups (`get`,
    /// `gat`, the engine's own peeks) leave the token alone, as memcached's do.
    pub meta: bool,
}

impl Default for GetOptions {
    /// A plain `get`: no touch/vivify/recache, access updated, counted.
    fn default() -> Self {
        Self {
            touch: None,
            update_access: true,
            vivify: None,
            recache_below: None,
            count: true,
            meta: false,
        }
    }
}

/// Where an item's value lives, to continue copying it later with
/// [`Store::read_value`](super::Store::read_value).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ValueLocation {
    pub(crate) shard: u16,
    pub(crate) segment: u32,
    pub(crate) value_offset: u32,
    pub(crate) value_len: u32,
    pub(crate) generation: u64,
}

impl ValueLocation {
    /// Length of the value in bytes.
    pub fn len(&self) -> usize {
        self.value_len as usize
    }
    /// True for an empty value.
    pub fn is_empty(&self) -> bool {
        self.value_len == 0
    }
}

/// A view of one item, valid while the shard lock is held (inside the
/// closure passed to [`Store::get`](super::Store::get)).
#[derive(Clone, Copy, Debug)]
pub struct ItemRef<'s> {
    pub(crate) key: &'s [u8],
    pub(crate) value: &'s [u8],
    pub(crate) flags: u32,
    pub(crate) cas: u64,
    pub(crate) expire_at: Time,
    pub(crate) last_access: Time,
    pub(crate) fetched: bool,
    pub(crate) stale: bool,
    pub(crate) won: bool,
    pub(crate) token_sent: bool,
    pub(crate) created: bool,
    pub(crate) key_binary: bool,
    pub(crate) location: ValueLocation,
}

impl<'s> ItemRef<'s> {
    /// The key.
    pub fn key(&self) -> &'s [u8] {
        self.key
    }
    /// Whether the item was stored with a base64 key (`ms ... b`, see
    /// [`Store::mark_key_binary`](super::Store::mark_key_binary)): meta
    /// replies print such a key base64-encoded.
    pub fn key_binary(&self) -> bool {
        self.key_binary
    }
    /// The value.
    pub fn value(&self) -> &'s [u8] {
        self.value
    }
    /// Client flags (memcached's opaque 32-bit flags).
    pub fn flags(&self) -> u32 {
        self.flags
    }
    /// CAS unique of this version (never 0).
    pub fn cas(&self) -> u64 {
        self.cas
    }
    /// Absolute expiry time, 0 = never.
    pub fn expire_at(&self) -> Time {
        self.expire_at
    }
    /// Time of the previous access (store or fetch) before this one.
    /// Exact if it lies within 65535 s of now.
    pub fn last_access(&self) -> Time {
        self.last_access
    }
    /// Whether the item had been fetched before this access.
    pub fn fetched(&self) -> bool {
        self.fetched
    }
    /// Whether the item is marked stale (meta invalidation).
    pub fn stale(&self) -> bool {
        self.stale
    }
    /// Whether this caller won the recache/vivify token (meta W flag).
    pub fn won(&self) -> bool {
        self.won
    }
    /// Whether a win token had already been handed out (meta Z flag).
    pub fn token_sent(&self) -> bool {
        self.token_sent
    }
    /// Whether this lookup created the item (mg N on a miss).
    pub fn created(&self) -> bool {
        self.created
    }
    /// Where the value lives, for [`Store::read_value`](super::Store::read_value).
    pub fn location(&self) -> ValueLocation {
        self.location
    }
}

/// How a [`StoreRequest`] combines with an existing item.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreMode {
    /// Store unconditionally.
    Set,
    /// Store only if absent.
    Add,
    /// Store only if present.
    Replace,
    /// Append the value to a present item (flags/expiry kept).
    Append,
    /// Prepend the value to a present item (flags/expiry kept).
    Prepend,
}

/// A write request.
#[derive(Clone, Copy, Debug)]
pub struct StoreRequest<'a> {
    /// How to combine with an existing item.
    pub mode: StoreMode,
    /// Key, 1..=250 bytes.
    pub key: &'a [u8],
    /// Value.
    pub value: &'a [u8],
    /// Client flags.
    pub flags: u32,
    /// Absolute expiry, 0 = never; a time <= now stores nothing visible.
    pub expire_at: Time,
    /// Compare-and-swap: 0 = no compare, else must equal the item's cas.
    pub cas: u64,
    /// ms I: if `cas` is not the item's cas (an older one, for any CAS
    /// handed out for this key before), store as stale instead of failing
    /// with `Exists`; a win token already sent stays sent.
    pub invalidate: bool,
}

/// incr/decr request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArithRequest {
    /// true = incr (wraps at 2^64), false = decr (floors at 0).
    pub incr: bool,
    /// Amount.
    pub delta: u64,
    /// 0 = no compare, else must equal the item's cas.
    pub cas: u64,
    /// ma N/J: on a miss, create the item with this initial value and expiry.
    pub vivify: Option<(u64, Time)>,
    /// ma T: also set a new expiry.
    pub expire_at: Option<Time>,
}

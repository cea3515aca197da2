//! The host clock, read once per event-loop iteration.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::service::Time;

/// Current Unix time in whole seconds (0 before 1970, saturating after 2106).
pub fn unix_now() -> Time {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => u32::try_from(d.as_secs()).unwrap_or(u32::MAX),
        Err(_) => 0,
    }
}

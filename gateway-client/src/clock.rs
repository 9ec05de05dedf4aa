//! Wall-clock milliseconds that follow tokio's clock.
//!
//! Budget windows and quota periods are aligned to wall time (a "minute" is a UTC minute), but
//! tests must move time with `tokio::time::pause`/`advance`. Anchoring wall time once and adding
//! tokio's elapsed time gives both.

use std::time::{SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

#[derive(Debug, Clone, Copy)]
pub struct Clock {
    wall_at_anchor_ms: u64,
    anchor: Instant,
}

impl Clock {
    pub fn new() -> Self {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Self {
            wall_at_anchor_ms: u64::try_from(wall.as_millis()).unwrap_or(u64::MAX),
            anchor: Instant::now(),
        }
    }

    /// A clock that reads `wall_ms` now; for tests that need a known calendar position.
    pub fn starting_at(wall_ms: u64) -> Self {
        Self {
            wall_at_anchor_ms: wall_ms,
            anchor: Instant::now(),
        }
    }

    /// Unix time in milliseconds.
    pub fn now_ms(&self) -> u64 {
        let elapsed = u64::try_from(self.anchor.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.wall_at_anchor_ms.saturating_add(elapsed)
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

//! The per-minute token limit as a bucket that refills continuously (GCRA-style), with no window
//! edges: a key can never spend more than its `tokens_per_minute` in any 60 seconds, nor twice
//! it across a minute boundary.
//!
//! The bucket holds what a key has spent and drains at `tokens_per_minute` a minute. A
//! reservation fits while the level stays within one minute's worth. Levels are kept in
//! token-milliseconds-per-minute units (tokens × 60 000), so draining `tokens_per_minute` units
//! a millisecond is exact integer arithmetic. The Redis store runs the same steps in Lua.
//!
//! Beside the level, the bucket counts its *exposure*: tokens that admitted, unsettled calls may
//! still use beyond what they reserved (a completion allowance above its expected length). The
//! exposure a key may have outstanding is bounded, which bounds how far real spending can
//! overshoot; a call the allowance does not cover reserves its whole allowance instead.

use crate::period::MINUTE_MS;

/// Units of level per token.
pub const UNIT: u64 = MINUTE_MS;

/// One key's bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bucket {
    /// Tokens spent or reserved and not yet drained, in [`UNIT`]s.
    pub level: u64,
    /// When `level` was last drained (Unix ms); it never moves back.
    pub at_ms: u64,
    /// Tokens admitted calls may still use beyond their reservations.
    pub exposed: u64,
}

/// What a bucket decided about one reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Admitted: `reserved` tokens held, `exposure` of them left to the allowance, `remaining`
    /// tokens left in the bucket.
    Admit {
        reserved: u64,
        exposure: u64,
        remaining: u64,
    },
    /// Not before `retry_after_ms`: the time until enough has drained.
    Wait { retry_after_ms: u64 },
}

/// One reservation's ask of the bucket.
#[derive(Debug, Clone, Copy)]
pub struct Ask {
    /// Tokens to hold for certain.
    pub tokens: u64,
    /// Tokens the call may use beyond `tokens`; held too unless the allowance covers them.
    pub exposure: u64,
    /// The exposure a key may have outstanding.
    pub exposure_limit: u64,
}

impl Bucket {
    /// Lets the level drain up to `now_ms` at `tokens_per_minute` a minute.
    pub fn drain(&mut self, now_ms: u64, tokens_per_minute: u64) {
        if now_ms > self.at_ms {
            let drained = (now_ms - self.at_ms).saturating_mul(tokens_per_minute);
            self.level = self.level.saturating_sub(drained);
            self.at_ms = now_ms;
        }
    }

    /// How much of `ask` is held: its tokens, plus whatever of its exposure the allowance does
    /// not cover. Returns `(held, exposure taken on the allowance)`.
    pub fn split(&self, ask: Ask) -> (u64, u64) {
        let room = ask.exposure_limit.saturating_sub(self.exposed);
        let taken = ask.exposure.min(room);
        (ask.tokens + (ask.exposure - taken), taken)
    }

    /// Reserves `ask` if it fits once drained to `now_ms`.
    pub fn reserve(&mut self, ask: Ask, now_ms: u64, tokens_per_minute: u64) -> Decision {
        self.drain(now_ms, tokens_per_minute);
        let (held, taken) = self.split(ask);
        let capacity = tokens_per_minute.saturating_mul(UNIT);
        let after = self.level.saturating_add(held.saturating_mul(UNIT));
        if after > capacity {
            return Decision::Wait {
                retry_after_ms: (after - capacity).div_ceil(tokens_per_minute),
            };
        }
        self.level = after;
        self.exposed += taken;
        Decision::Admit {
            reserved: held,
            exposure: taken,
            remaining: (capacity - after) / UNIT,
        }
    }

    /// Replaces `reserved` with `actual` and gives the exposure back.
    pub fn settle(
        &mut self,
        reserved: u64,
        exposure: u64,
        actual: u64,
        now_ms: u64,
        tokens_per_minute: u64,
    ) {
        self.drain(now_ms, tokens_per_minute);
        let level = self.level.saturating_add(actual.saturating_mul(UNIT));
        self.level = level.saturating_sub(reserved.saturating_mul(UNIT));
        self.exposed = self.exposed.saturating_sub(exposure);
    }

    /// Whether the bucket is back to nothing at `now_ms`: it can be forgotten.
    pub fn is_idle(&self, now_ms: u64, tokens_per_minute: u64) -> bool {
        let mut drained = *self;
        drained.drain(now_ms, tokens_per_minute);
        drained.level == 0 && drained.exposed == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TPM: u64 = 600; // ten tokens a second

    fn ask(tokens: u64) -> Ask {
        Ask {
            tokens,
            exposure: 0,
            exposure_limit: 0,
        }
    }

    #[test]
    fn the_bucket_refills_continuously() {
        let mut bucket = Bucket::default();
        assert!(matches!(
            bucket.reserve(ask(600), 1_000, TPM),
            Decision::Admit { remaining: 0, .. }
        ));
        // Fifty tokens take five seconds to drain.
        assert_eq!(
            bucket.reserve(ask(50), 1_000, TPM),
            Decision::Wait {
                retry_after_ms: 5_000
            }
        );
        assert_eq!(
            bucket.reserve(ask(50), 6_000, TPM),
            Decision::Admit {
                reserved: 50,
                exposure: 0,
                remaining: 0
            }
        );
    }

    #[test]
    fn exposure_is_held_once_the_allowance_is_used() {
        let mut bucket = Bucket::default();
        let exposed = Ask {
            tokens: 10,
            exposure: 90,
            exposure_limit: 150,
        };
        assert!(matches!(
            bucket.reserve(exposed, 0, TPM),
            Decision::Admit {
                reserved: 10,
                exposure: 90,
                ..
            }
        ));
        // Only 60 of the next call's 90 fit the allowance: the other 30 are held.
        assert!(matches!(
            bucket.reserve(exposed, 0, TPM),
            Decision::Admit {
                reserved: 40,
                exposure: 60,
                ..
            }
        ));
        bucket.settle(10, 90, 100, 0, TPM);
        assert_eq!(bucket.exposed, 60);
        assert_eq!(bucket.level, 140 * UNIT);
    }

    #[test]
    fn settling_never_goes_below_empty() {
        let mut bucket = Bucket::default();
        let _ = bucket.reserve(ask(100), 0, TPM);
        bucket.settle(100, 0, 0, 60_000, TPM);
        assert!(bucket.is_idle(60_000, TPM));
    }
}

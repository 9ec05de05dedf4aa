//! Per-minute counters for the last hour, fixed in size and lock-free on the hot path.
//!
//! A [`MinuteCell`] packs the minute it counts (high 32 bits, minutes since the Unix epoch) and
//! its count (low 32 bits) into one atomic word, so adding to the current minute and starting a
//! new one are the same compare-and-swap: no lock, no reset race, no allocation. A
//! [`MinuteRing`] is sixty cells indexed by minute; a cell still holding an older minute reads
//! as zero. [`Labelled`] keeps one value per label for a bounded set of labels, the rest folded
//! into `other`.

use std::sync::{
    OnceLock,
    atomic::{AtomicU64, Ordering},
};

/// How many minutes the rings remember.
pub const MINUTES: usize = 60;

/// One minute's count; see the module docs for the packing.
#[derive(Debug, Default)]
pub struct MinuteCell(AtomicU64);

const COUNT_BITS: u32 = 32;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;

fn pack(minute: u64, count: u64) -> u64 {
    (minute << COUNT_BITS) | count.min(COUNT_MASK)
}

impl MinuteCell {
    /// Adds `amount` to `minute`'s count, starting the count afresh if the cell held an
    /// earlier minute. Counts saturate at `u32::MAX` a minute. An add for a minute older than
    /// the one the cell holds (a racing thread that read the clock just before the turn) is
    /// dropped rather than corrupting the newer count.
    pub fn add(&self, minute: u64, amount: u64) {
        let mut current = self.0.load(Ordering::Relaxed);
        loop {
            let held = current >> COUNT_BITS;
            let next = if held == minute {
                pack(minute, (current & COUNT_MASK).saturating_add(amount))
            } else if held < minute {
                pack(minute, amount)
            } else {
                return;
            };
            match self
                .0
                .compare_exchange_weak(current, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(actual) => current = actual,
            }
        }
    }

    /// The count for `minute`: zero if the cell holds another minute.
    pub fn get(&self, minute: u64) -> u64 {
        let current = self.0.load(Ordering::Relaxed);
        if current >> COUNT_BITS == minute {
            current & COUNT_MASK
        } else {
            0
        }
    }
}

/// Sixty minutes of one count.
#[derive(Debug)]
pub struct MinuteRing([MinuteCell; MINUTES]);

impl Default for MinuteRing {
    fn default() -> Self {
        Self(std::array::from_fn(|_| MinuteCell::default()))
    }
}

impl MinuteRing {
    pub fn add(&self, minute: u64, amount: u64) {
        self.0[slot(minute)].add(minute, amount);
    }

    pub fn get(&self, minute: u64) -> u64 {
        self.0[slot(minute)].get(minute)
    }

    /// The last [`MINUTES`] counts, oldest first, ending with `now_minute`.
    pub fn series(&self, now_minute: u64) -> Vec<u64> {
        minutes_ending(now_minute).map(|m| self.get(m)).collect()
    }
}

fn slot(minute: u64) -> usize {
    // MINUTES fits any usize, and the remainder is below it.
    (minute % MINUTES as u64) as usize
}

/// The minutes a series covers, oldest first, ending with `now_minute`.
pub fn minutes_ending(now_minute: u64) -> impl Iterator<Item = u64> {
    let first = now_minute.saturating_sub(MINUTES as u64 - 1);
    first..=now_minute
}

/// The label values beyond a [`Labelled`] table's capacity are counted under.
pub const OTHER: &str = "other";

/// A label, once claimed, and its value.
type Slot<T> = OnceLock<(Box<str>, T)>;

/// One `T` per label, for at most `capacity` labels; later labels share `other`. Labels are
/// claimed once, lock-free (a `OnceLock` per slot), so after a label's first event finding it
/// costs a short scan of string comparisons and no allocation.
pub struct Labelled<T> {
    slots: Box<[Slot<T>]>,
    other: T,
}

impl<T: Default> Labelled<T> {
    pub fn new(capacity: usize) -> Self {
        Self {
            slots: (0..capacity).map(|_| OnceLock::new()).collect(),
            other: T::default(),
        }
    }

    /// The value for `label`, claiming a free slot for a new label.
    pub fn get(&self, label: &str) -> &T {
        for slot in &self.slots {
            let (name, value) = slot.get_or_init(|| (Box::from(label), T::default()));
            if **name == *label {
                return value;
            }
        }
        &self.other
    }

    /// Every label seen so far whose value `used` keeps, then `other` if it keeps it too.
    pub fn entries(&self, used: impl Fn(&T) -> bool) -> Vec<(&str, &T)> {
        let mut entries: Vec<(&str, &T)> = self
            .slots
            .iter()
            .filter_map(OnceLock::get)
            .filter(|(_, value)| used(value))
            .map(|(name, value)| (&**name, value))
            .collect();
        if used(&self.other) {
            entries.push((OTHER, &self.other));
        }
        entries
    }
}

/// Upper bounds of the latency buckets, in milliseconds; the last bucket is everything slower.
pub const LATENCY_BOUNDS_MS: [u64; 11] =
    [5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000];
/// The buckets a latency falls in: one per bound, and one above them all.
pub const LATENCY_BUCKETS: usize = LATENCY_BOUNDS_MS.len() + 1;

/// Sixty minutes of a latency histogram.
#[derive(Debug)]
pub struct LatencyRing([MinuteRing; LATENCY_BUCKETS]);

impl Default for LatencyRing {
    fn default() -> Self {
        Self(std::array::from_fn(|_| MinuteRing::default()))
    }
}

impl LatencyRing {
    pub fn record(&self, minute: u64, elapsed_ms: u64) {
        let bucket = LATENCY_BOUNDS_MS
            .iter()
            .position(|bound| elapsed_ms <= *bound)
            .unwrap_or(LATENCY_BOUNDS_MS.len());
        self.0[bucket].add(minute, 1);
    }

    /// Per bucket, the last [`MINUTES`] counts, oldest first.
    pub fn series(&self, now_minute: u64) -> Vec<Vec<u64>> {
        self.0.iter().map(|ring| ring.series(now_minute)).collect()
    }
}

/// The latency (bucket upper bound, in ms) under which `quantile` of the `counts` fall; `None`
/// with no calls. The open last bucket reads as twice the last bound.
pub fn quantile_ms(counts: &[u64], quantile: f64) -> Option<u64> {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return None;
    }
    // The rank of the call at `quantile`, 1-based (at least the first call).
    let rank = ((total as f64 * quantile).ceil() as u64).max(1);
    let mut seen = 0;
    for (bucket, count) in counts.iter().enumerate() {
        seen += count;
        if seen >= rank {
            return Some(bucket_bound(bucket));
        }
    }
    Some(bucket_bound(LATENCY_BUCKETS - 1))
}

fn bucket_bound(bucket: usize) -> u64 {
    LATENCY_BOUNDS_MS
        .get(bucket)
        .copied()
        .unwrap_or(LATENCY_BOUNDS_MS[LATENCY_BOUNDS_MS.len() - 1] * 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cell_counts_its_minute_and_restarts_on_the_next() {
        let cell = MinuteCell::default();
        cell.add(100, 2);
        cell.add(100, 3);
        assert_eq!(cell.get(100), 5);
        cell.add(101, 1);
        assert_eq!((cell.get(100), cell.get(101)), (0, 1));
        // A late add for an older minute leaves the newer count alone.
        cell.add(100, 7);
        assert_eq!((cell.get(100), cell.get(101)), (0, 1));
    }

    #[test]
    fn a_cell_saturates_instead_of_spilling_into_the_minute() {
        let cell = MinuteCell::default();
        cell.add(5, u64::MAX);
        cell.add(5, 10);
        assert_eq!(cell.get(5), COUNT_MASK);
        cell.add(6, 1);
        assert_eq!(cell.get(6), 1);
    }

    #[test]
    fn a_ring_forgets_minutes_older_than_an_hour() {
        let ring = MinuteRing::default();
        ring.add(1_000, 4);
        ring.add(1_059, 6);
        let series = ring.series(1_059);
        assert_eq!(series.len(), MINUTES);
        assert_eq!((series[0], series[59]), (4, 6));
        // An hour later minute 1_000's slot is reused by 1_060.
        ring.add(1_060, 1);
        let series = ring.series(1_060);
        assert_eq!((series[0], series[58], series[59]), (0, 6, 1));
        assert_eq!(ring.series(1_200).iter().sum::<u64>(), 0);
    }

    #[test]
    fn labelled_tables_are_bounded_and_fold_the_rest_into_other() {
        let table: Labelled<MinuteRing> = Labelled::new(2);
        table.get("alice").add(1, 1);
        table.get("bob").add(1, 2);
        table.get("carol").add(1, 3);
        table.get("dave").add(1, 4);
        table.get("alice").add(1, 10);
        let entries: Vec<(&str, u64)> = table
            .entries(|ring| ring.get(1) > 0)
            .into_iter()
            .map(|(name, ring)| (name, ring.get(1)))
            .collect();
        assert_eq!(entries, vec![("alice", 11), ("bob", 2), ("other", 7)]);
        // Memory is fixed by the capacity, whatever the number of labels offered.
        for n in 0..1_000 {
            table.get(&format!("label-{n}")).add(1, 1);
        }
        assert_eq!(table.entries(|_| true).len(), 3);
    }

    #[test]
    fn quantiles_read_the_bucket_bounds() {
        let ring = LatencyRing::default();
        for ms in [1, 2, 3, 4, 30, 30, 30, 30, 30, 900] {
            ring.record(1_000, ms);
        }
        let counts: Vec<u64> = ring.series(1_000).iter().map(|b| b[MINUTES - 1]).collect();
        assert_eq!(quantile_ms(&counts, 0.5), Some(50));
        assert_eq!(quantile_ms(&counts, 0.95), Some(1_000));
        assert_eq!(quantile_ms(&[0; LATENCY_BUCKETS], 0.5), None);
        ring.record(1_000, 60_000);
        let counts: Vec<u64> = ring.series(1_000).iter().map(|b| b[MINUTES - 1]).collect();
        assert_eq!(quantile_ms(&counts, 1.0), Some(20_000));
    }
}

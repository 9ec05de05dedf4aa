//! The in-process index: entries per partition, an exact-match map, and an inverted index from
//! the prompts' meaningful words to the entries that contain them.
//!
//! A lookup gathers the entries sharing the query's rarer words (weighted by inverse document
//! frequency), keeps the best few, and only those are compared by embedding similarity. A
//! candidate sharing no meaningful word could never pass verification anyway, so nothing
//! servable is lost, and the cost stays near-constant as the partition grows.
//!
//! Memory is bounded by a global entry cap (oldest entries go first) and by TTL expiry.

use std::{
    cell::RefCell,
    collections::{HashMap, VecDeque},
    sync::Arc,
};

use serde_json::Value;

use super::embed::Embedding;

/// One cached answer.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The prompt text (the recent conversation window) the answer was given to.
    pub prompt: Arc<str>,
    /// Hash of the normalized prompt, for exact matches.
    pub exact: u64,
    pub embedding: Embedding,
    /// Meaningful words of the prompt, hashed: the inverted index's keys.
    pub keys: Vec<u64>,
    pub response: Arc<Value>,
    pub expires_ms: u64,
}

impl Entry {
    /// Approximate bytes this entry holds (for the README's memory figure).
    pub fn approximate_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.prompt.len()
            + self.embedding.heap_bytes()
            + self.keys.len() * (8 + 4)
            + self.response.to_string().len()
    }
}

struct Slot {
    entry: Entry,
    generation: u64,
}

#[derive(Default)]
struct Partition {
    slots: Vec<Option<Slot>>,
    /// Slots free for reuse: none of the postings point at them.
    free: Vec<u32>,
    /// Slots emptied since the last postings rebuild. Stale postings still point at them, so
    /// they are not reused until the rebuild (a reused slot would inherit another entry's words).
    retired: Vec<u32>,
    exact: HashMap<u64, u32>,
    postings: HashMap<u64, Vec<u32>>,
    live: usize,
    /// Posting references to freed slots, cleaned up in one pass when they pile up.
    stale: usize,
}

/// How many candidates a lookup compares by embedding.
pub const CANDIDATES: usize = 16;

thread_local! {
    /// Per-thread score accumulator, reused across lookups to keep them allocation-free.
    static SCORES: RefCell<(Vec<f32>, Vec<u32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

pub struct Index {
    partitions: HashMap<u64, Partition>,
    /// Insertion order for eviction: (partition, slot, generation).
    order: VecDeque<(u64, u32, u64)>,
    max_entries: usize,
    live: usize,
    next_generation: u64,
}

impl Index {
    pub fn new(max_entries: usize) -> Self {
        Self {
            partitions: HashMap::new(),
            order: VecDeque::new(),
            max_entries: max_entries.max(1),
            live: 0,
            next_generation: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Adds an entry, replacing one with the same exact prompt, evicting the oldest if full.
    pub fn insert(&mut self, partition_id: u64, entry: Entry) {
        let generation = self.next_generation;
        self.next_generation += 1;
        let partition = self.partitions.entry(partition_id).or_default();
        if let Some(slot) = partition.exact.get(&entry.exact).copied()
            && let Some(existing) = partition
                .slots
                .get_mut(slot as usize)
                .and_then(Option::as_mut)
        {
            // The same prompt again (concurrent misses, or a store after expiry): refresh it in
            // place. Its postings already point here; listing it twice would inflate its score.
            for key in &entry.keys {
                if !existing.entry.keys.contains(key) {
                    partition.postings.entry(*key).or_default().push(slot);
                }
            }
            existing.entry = entry;
            existing.generation = generation;
            self.order.push_back((partition_id, slot, generation));
            return;
        }
        let slot = match partition.free.pop() {
            Some(slot) => slot,
            None => {
                partition.slots.push(None);
                (partition.slots.len() - 1) as u32
            }
        };
        for key in &entry.keys {
            partition.postings.entry(*key).or_default().push(slot);
        }
        partition.exact.insert(entry.exact, slot);
        partition.slots[slot as usize] = Some(Slot { entry, generation });
        partition.live += 1;
        self.live += 1;
        self.order.push_back((partition_id, slot, generation));
        while self.live > self.max_entries {
            if !self.evict_oldest() {
                break;
            }
        }
    }

    fn evict_oldest(&mut self) -> bool {
        while let Some((partition_id, slot, generation)) = self.order.pop_front() {
            let Some(partition) = self.partitions.get_mut(&partition_id) else {
                continue;
            };
            let current = partition
                .slots
                .get(slot as usize)
                .and_then(Option::as_ref)
                .map(|s| s.generation);
            if current == Some(generation) {
                partition.remove(slot);
                self.live -= 1;
                if partition.live == 0 {
                    self.partitions.remove(&partition_id);
                }
                return true;
            }
        }
        false
    }

    /// The live entry whose normalized prompt hashes to `exact`.
    pub fn exact(&self, partition_id: u64, exact: u64, now_ms: u64) -> Option<&Entry> {
        let partition = self.partitions.get(&partition_id)?;
        let slot = *partition.exact.get(&exact)?;
        partition
            .entry(slot)
            .filter(|entry| entry.expires_ms > now_ms)
    }

    /// Up to [`CANDIDATES`] live entries sharing the most (rarest) keys with the query.
    pub fn candidates(&self, partition_id: u64, keys: &[u64], now_ms: u64) -> Vec<&Entry> {
        let Some(partition) = self.partitions.get(&partition_id) else {
            return Vec::new();
        };
        let live = partition.live.max(1) as f32;
        let mut lists: Vec<&Vec<u32>> = keys
            .iter()
            .filter_map(|key| partition.postings.get(key))
            .collect();
        lists.sort_unstable_by_key(|list| list.len());
        lists.dedup_by(|a, b| std::ptr::eq(*a, *b));
        // Words in more than half the entries say little; use them only if nothing rarer exists.
        let informative = lists
            .iter()
            .filter(|l| (l.len() as f32) <= live / 2.0)
            .count();
        if informative > 0 {
            lists.truncate(informative);
        }
        SCORES.with(|cell| {
            let mut guard = cell.borrow_mut();
            let (scores, touched) = &mut *guard;
            if scores.len() < partition.slots.len() {
                scores.resize(partition.slots.len(), 0.0);
            }
            touched.clear();
            for list in &lists {
                let weight = (1.0 + live / list.len() as f32).ln();
                for slot in list.iter() {
                    let score = &mut scores[*slot as usize];
                    if *score == 0.0 {
                        touched.push(*slot);
                    }
                    *score += weight;
                }
            }
            if touched.len() > CANDIDATES {
                touched.select_nth_unstable_by(CANDIDATES, |a, b| {
                    scores[*b as usize].total_cmp(&scores[*a as usize])
                });
            }
            let best: Vec<&Entry> = touched
                .iter()
                .take(CANDIDATES)
                .filter_map(|slot| partition.entry(*slot))
                .filter(|entry| entry.expires_ms > now_ms)
                .collect();
            for slot in touched.iter() {
                scores[*slot as usize] = 0.0;
            }
            best
        })
    }

    /// Drops expired entries and cleans up posting lists that have collected dead references.
    pub fn sweep(&mut self, now_ms: u64) {
        let mut removed = 0;
        for partition in self.partitions.values_mut() {
            let expired: Vec<u32> = partition
                .slots
                .iter()
                .enumerate()
                .filter_map(|(i, s)| {
                    s.as_ref()
                        .filter(|s| s.entry.expires_ms <= now_ms)
                        .map(|_| i as u32)
                })
                .collect();
            for slot in expired {
                partition.remove(slot);
                removed += 1;
            }
            if partition.stale > partition.live {
                partition.rebuild_postings();
            }
        }
        self.live -= removed;
        self.partitions.retain(|_, p| p.live > 0);
        // Drop eviction-queue items that no longer point at live entries.
        if self.order.len() > self.live * 2 + 1024 {
            let partitions = &self.partitions;
            self.order.retain(|(p, slot, generation)| {
                partitions
                    .get(p)
                    .and_then(|p| p.slots.get(*slot as usize))
                    .and_then(Option::as_ref)
                    .is_some_and(|s| s.generation == *generation)
            });
        }
    }
}

impl Partition {
    fn entry(&self, slot: u32) -> Option<&Entry> {
        self.slots
            .get(slot as usize)
            .and_then(Option::as_ref)
            .map(|s| &s.entry)
    }

    fn remove(&mut self, slot: u32) {
        if let Some(removed) = self.slots.get_mut(slot as usize).and_then(Option::take) {
            if self.exact.get(&removed.entry.exact) == Some(&slot) {
                self.exact.remove(&removed.entry.exact);
            }
            self.stale += removed.entry.keys.len();
            self.retired.push(slot);
            self.live -= 1;
        }
        if self.stale > 4 * self.live + 4096 {
            self.rebuild_postings();
        }
    }

    fn rebuild_postings(&mut self) {
        self.postings.clear();
        for (index, slot) in self.slots.iter().enumerate() {
            if let Some(slot) = slot {
                for key in &slot.entry.keys {
                    self.postings.entry(*key).or_default().push(index as u32);
                }
            }
        }
        self.stale = 0;
        self.free.append(&mut self.retired);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(exact: u64, keys: &[u64], expires_ms: u64) -> Entry {
        Entry {
            prompt: Arc::from(format!("prompt {exact}")),
            exact,
            embedding: Embedding::Dense(vec![1.0]),
            keys: keys.to_vec(),
            response: Arc::new(Value::from(exact)),
            expires_ms,
        }
    }

    #[test]
    fn candidates_share_rare_keys_and_respect_expiry() {
        let mut index = Index::new(100);
        index.insert(1, entry(10, &[1, 2], 1_000));
        index.insert(1, entry(11, &[1, 3], 1_000));
        index.insert(1, entry(12, &[4], 10));
        index.insert(2, entry(13, &[2], 1_000));
        let found: Vec<u64> = index
            .candidates(1, &[2], 0)
            .iter()
            .map(|e| e.exact)
            .collect();
        assert_eq!(found, [10]);
        assert!(index.candidates(1, &[4], 100).is_empty(), "expired");
        assert!(index.exact(1, 12, 100).is_none());
        assert_eq!(index.exact(1, 10, 0).map(|e| e.exact), Some(10));
    }

    #[test]
    fn the_cap_evicts_the_oldest_and_replacements_do_not_leak() {
        let mut index = Index::new(2);
        index.insert(1, entry(1, &[1], u64::MAX));
        index.insert(1, entry(2, &[1], u64::MAX));
        index.insert(1, entry(2, &[1], u64::MAX));
        assert_eq!(index.len(), 2);
        index.insert(1, entry(3, &[1], u64::MAX));
        assert_eq!(index.len(), 2);
        assert!(index.exact(1, 1, 0).is_none());
        assert!(index.exact(1, 3, 0).is_some());
    }

    #[test]
    fn storing_a_prompt_again_does_not_inflate_its_score() {
        let mut index = Index::new(100);
        for _ in 0..50 {
            index.insert(1, entry(1, &[1, 2], u64::MAX));
        }
        index.insert(1, entry(2, &[1, 3], u64::MAX));
        index.insert(1, entry(3, &[1, 3, 4], u64::MAX));
        assert_eq!(index.len(), 3);
        // Entry 3 shares two keys with the query; entry 1 one. Re-stores of 1 must not matter.
        let found: Vec<u64> = index
            .candidates(1, &[3, 4], 0)
            .iter()
            .map(|e| e.exact)
            .collect();
        assert_eq!(found.first(), Some(&3));
        let postings: usize = index.partitions[&1].postings.values().map(Vec::len).sum();
        assert_eq!(postings, 2 + 2 + 3);
    }

    #[test]
    fn emptied_slots_are_not_reused_before_the_postings_are_rebuilt() {
        let mut index = Index::new(1);
        index.insert(1, entry(1, &[7], u64::MAX));
        index.insert(1, entry(2, &[8], u64::MAX)); // evicts 1; its slot is retired
        let found: Vec<u64> = index
            .candidates(1, &[7], 0)
            .iter()
            .map(|e| e.exact)
            .collect();
        assert!(
            found.is_empty(),
            "the stale posting for key 7 must not reach entry 2"
        );
    }

    #[test]
    fn sweep_drops_expired_entries() {
        let mut index = Index::new(10);
        index.insert(1, entry(1, &[1], 5));
        index.insert(1, entry(2, &[1], 50));
        index.sweep(10);
        assert_eq!(index.len(), 1);
        assert_eq!(index.candidates(1, &[1], 10).len(), 1);
    }
}

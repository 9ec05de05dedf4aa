//! The in-process index: entries per partition, an exact-match map, and an inverted index from
//! the prompts' meaningful words to the entries that contain them.
//!
//! A lookup gathers the entries sharing the query's rarer words (weighted by inverse document
//! frequency), keeps the best few, and only those are compared by embedding similarity. A
//! candidate sharing no meaningful word could never pass verification anyway, so nothing
//! servable is lost, and the cost stays near-constant as the partition grows.
//!
//! Memory is bounded by TTL expiry and by two caps, on entries and on bytes (each entry's own
//! bytes counted: answer, prompt text, embedding, postings, and its share of the maps). When an
//! insert goes over either cap, expired entries are swept first (at most once a second), then
//! the owner (the subscription, or client, that stored them) holding the most gives up its
//! oldest entries. One caller filling the cache therefore evicts its own entries before
//! anyone else's: an owner within its fair share keeps what it stored.

use std::{
    cell::RefCell,
    collections::{BTreeSet, HashMap, VecDeque},
    mem::size_of,
    sync::Arc,
};

use super::embed::Embedding;

/// One cached answer.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The prompt text (the recent conversation window) the answer was given to, which
    /// verification re-reads. Empty for a prompt too long to match by meaning: such an entry is
    /// found by its exact hash alone.
    pub prompt: Arc<str>,
    /// Hash of the normalized prompt, for exact matches.
    pub exact: u64,
    pub embedding: Embedding,
    /// Meaningful words of the prompt, hashed: the inverted index's keys.
    pub keys: Vec<u64>,
    /// The answer as JSON text: compact, and its size is known exactly.
    pub response: Arc<str>,
    pub expires_ms: u64,
    /// Who stored it (a hash of the caller's budget key): the unit of fairness on eviction.
    pub owner: u64,
}

/// An `Arc<str>`'s allocation beyond its text: the strong and weak counts.
const ARC_HEADER: usize = 2 * size_of::<usize>();
/// One exact-map entry (key, slot) with the hash table's control byte and spare capacity.
const EXACT_MAP_ENTRY: usize = 24;
/// One posting (a slot id in a word's list) with the list's spare capacity, and the entry's own
/// copy of the word's hash.
const POSTING: usize = 2 * size_of::<u32>() + size_of::<u64>();
/// The allocator's bookkeeping for the entry's four heap blocks (prompt, answer, embedding,
/// words): about 16 bytes each.
const ALLOCATIONS: usize = 4 * 16;

impl Entry {
    /// Bytes this entry holds in the index: its slot, its texts, its embedding, its postings
    /// and its share of the exact map and of its owner's eviction queue.
    pub fn approximate_bytes(&self) -> usize {
        size_of::<Option<Slot>>()
            + ARC_HEADER
            + self.prompt.len()
            + ARC_HEADER
            + self.response.len()
            + self.embedding.heap_bytes()
            + self.keys.len() * POSTING
            + EXACT_MAP_ENTRY
            + size_of::<QueueItem>()
            + ALLOCATIONS
    }
}

/// The index's caps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_entries: usize,
    pub max_bytes: usize,
}

impl Limits {
    /// No cap but an entry count.
    pub fn entries(max_entries: usize) -> Self {
        Self {
            max_entries,
            max_bytes: usize::MAX,
        }
    }
}

struct Slot {
    entry: Entry,
    generation: u64,
    /// `entry.approximate_bytes()`, as charged to its owner.
    bytes: usize,
}

/// An entry in its owner's insertion order: (partition, slot, generation). Items whose slot
/// holds another generation by now are stale and skipped.
type QueueItem = (u64, u32, u64);

/// What one owner holds, and its entries oldest first.
#[derive(Default)]
struct Owner {
    bytes: usize,
    entries: usize,
    order: VecDeque<QueueItem>,
}

/// How often, at most, an insert over the caps sweeps expired entries before evicting live ones.
const SWEEP_INTERVAL_MS: u64 = 1_000;

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
    owners: HashMap<u64, Owner>,
    /// Owners by bytes held and by entries held: the heaviest gives way first.
    by_bytes: BTreeSet<(usize, u64)>,
    by_entries: BTreeSet<(usize, u64)>,
    limits: Limits,
    live: usize,
    bytes: usize,
    next_generation: u64,
    next_sweep_ms: u64,
}

impl Index {
    pub fn new(limits: Limits) -> Self {
        Self {
            partitions: HashMap::new(),
            owners: HashMap::new(),
            by_bytes: BTreeSet::new(),
            by_entries: BTreeSet::new(),
            limits: Limits {
                max_entries: limits.max_entries.max(1),
                max_bytes: limits.max_bytes.max(1),
            },
            live: 0,
            bytes: 0,
            next_generation: 0,
            next_sweep_ms: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Bytes held by the live entries ([`Entry::approximate_bytes`] summed).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Adds an entry, replacing one with the same exact prompt, then brings the index back
    /// within its caps (see the module documentation). `now_ms` decides what has expired.
    pub fn insert(&mut self, partition_id: u64, entry: Entry, now_ms: u64) {
        let generation = self.next_generation;
        self.next_generation += 1;
        let (owner, bytes) = (entry.owner, entry.approximate_bytes());
        let partition = self.partitions.entry(partition_id).or_default();
        let (slot, replaced) = partition.put(entry, generation, bytes);
        if let Some((old_owner, old_bytes)) = replaced {
            self.bytes -= old_bytes;
            self.live -= 1;
            self.charge(old_owner, old_bytes, -1);
        }
        self.bytes += bytes;
        self.live += 1;
        self.charge(owner, bytes, 1);
        if let Some(record) = self.owners.get_mut(&owner) {
            record.order.push_back((partition_id, slot, generation));
        }
        self.enforce_limits(now_ms);
    }

    fn over_limits(&self) -> bool {
        self.live > self.limits.max_entries || self.bytes > self.limits.max_bytes
    }

    fn enforce_limits(&mut self, now_ms: u64) {
        if !self.over_limits() {
            return;
        }
        if now_ms >= self.next_sweep_ms {
            self.sweep(now_ms);
            self.next_sweep_ms = now_ms.saturating_add(SWEEP_INTERVAL_MS);
        }
        while self.live > self.limits.max_entries {
            let Some(&(_, heaviest)) = self.by_entries.last() else {
                break;
            };
            if !self.evict_oldest_of(heaviest) {
                break;
            }
        }
        while self.bytes > self.limits.max_bytes {
            let Some(&(_, heaviest)) = self.by_bytes.last() else {
                break;
            };
            if !self.evict_oldest_of(heaviest) {
                break;
            }
        }
    }

    /// Moves `owner`'s tally by one entry of `bytes` (`direction` 1 adds it, -1 removes it),
    /// keeping the heaviest-owner sets in step and forgetting owners that hold nothing.
    fn charge(&mut self, owner: u64, bytes: usize, direction: i8) {
        let record = self.owners.entry(owner).or_default();
        self.by_bytes.remove(&(record.bytes, owner));
        self.by_entries.remove(&(record.entries, owner));
        if direction > 0 {
            record.bytes += bytes;
            record.entries += 1;
        } else {
            record.bytes = record.bytes.saturating_sub(bytes);
            record.entries = record.entries.saturating_sub(1);
        }
        if record.entries == 0 {
            self.owners.remove(&owner);
        } else {
            self.by_bytes.insert((record.bytes, owner));
            self.by_entries.insert((record.entries, owner));
        }
    }

    /// Removes `owner`'s oldest live entry; false if it has none.
    fn evict_oldest_of(&mut self, owner: u64) -> bool {
        loop {
            let Some((partition_id, slot, generation)) = self
                .owners
                .get_mut(&owner)
                .and_then(|record| record.order.pop_front())
            else {
                return false;
            };
            let current = self
                .partitions
                .get(&partition_id)
                .and_then(|partition| partition.slots.get(slot as usize))
                .and_then(Option::as_ref)
                .map(|s| s.generation);
            if current == Some(generation) {
                self.remove(partition_id, slot);
                return true;
            }
        }
    }

    fn remove(&mut self, partition_id: u64, slot: u32) {
        let Some(partition) = self.partitions.get_mut(&partition_id) else {
            return;
        };
        let removed = partition.remove(slot);
        if partition.live == 0 {
            self.partitions.remove(&partition_id);
        }
        if let Some((owner, bytes)) = removed {
            self.live -= 1;
            self.bytes -= bytes;
            self.charge(owner, bytes, -1);
        }
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

    /// Drops expired entries, cleans up posting lists that have collected dead references,
    /// and forgets eviction-queue items that no longer point at live entries.
    pub fn sweep(&mut self, now_ms: u64) {
        let mut removed: Vec<(u64, usize)> = Vec::new();
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
            removed.extend(
                expired
                    .into_iter()
                    .filter_map(|slot| partition.remove(slot)),
            );
            if partition.stale > partition.live {
                partition.rebuild_postings();
            }
        }
        for (owner, bytes) in removed {
            self.live -= 1;
            self.bytes -= bytes;
            self.charge(owner, bytes, -1);
        }
        self.partitions.retain(|_, p| p.live > 0);
        let partitions = &self.partitions;
        for record in self.owners.values_mut() {
            if record.order.len() > record.entries * 2 + 64 {
                record.order.retain(|(p, slot, generation)| {
                    partitions
                        .get(p)
                        .and_then(|p| p.slots.get(*slot as usize))
                        .and_then(Option::as_ref)
                        .is_some_and(|s| s.generation == *generation)
                });
            }
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

    /// Stores `entry`, in place of a live entry with the same exact prompt if there is one;
    /// returns its slot and the (owner, bytes) of the entry it replaced.
    fn put(&mut self, entry: Entry, generation: u64, bytes: usize) -> (u32, Option<(u64, usize)>) {
        if let Some(slot) = self.exact.get(&entry.exact).copied()
            && let Some(existing) = self.slots.get_mut(slot as usize).and_then(Option::as_mut)
        {
            // The same prompt again (concurrent misses, or a store after expiry): refresh it in
            // place. Its postings already point here; listing it twice would inflate its score.
            for key in &entry.keys {
                if !existing.entry.keys.contains(key) {
                    self.postings.entry(*key).or_default().push(slot);
                }
            }
            let replaced = (existing.entry.owner, existing.bytes);
            *existing = Slot {
                entry,
                generation,
                bytes,
            };
            return (slot, Some(replaced));
        }
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                self.slots.push(None);
                (self.slots.len() - 1) as u32
            }
        };
        for key in &entry.keys {
            self.postings.entry(*key).or_default().push(slot);
        }
        self.exact.insert(entry.exact, slot);
        self.slots[slot as usize] = Some(Slot {
            entry,
            generation,
            bytes,
        });
        self.live += 1;
        (slot, None)
    }

    /// Empties `slot`; returns the (owner, bytes) of the entry it held.
    fn remove(&mut self, slot: u32) -> Option<(u64, usize)> {
        let removed = self.slots.get_mut(slot as usize).and_then(Option::take);
        if let Some(removed) = &removed {
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
        removed.map(|removed| (removed.entry.owner, removed.bytes))
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
    #![allow(clippy::unwrap_used)]
    use super::*;

    const ALICE: u64 = 1;
    const BOB: u64 = 2;

    fn owned(owner: u64, exact: u64, keys: &[u64], expires_ms: u64) -> Entry {
        Entry {
            prompt: Arc::from(format!("prompt {exact}")),
            exact,
            embedding: Embedding::Dense(vec![1.0]),
            keys: keys.to_vec(),
            response: Arc::from(format!("{{\"answer\":{exact}}}")),
            expires_ms,
            owner,
        }
    }

    fn entry(exact: u64, keys: &[u64], expires_ms: u64) -> Entry {
        owned(ALICE, exact, keys, expires_ms)
    }

    #[test]
    fn candidates_share_rare_keys_and_respect_expiry() {
        let mut index = Index::new(Limits::entries(100));
        index.insert(1, entry(10, &[1, 2], 1_000), 0);
        index.insert(1, entry(11, &[1, 3], 1_000), 0);
        index.insert(1, entry(12, &[4], 10), 0);
        index.insert(2, entry(13, &[2], 1_000), 0);
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
        let mut index = Index::new(Limits::entries(2));
        index.insert(1, entry(1, &[1], u64::MAX), 0);
        index.insert(1, entry(2, &[1], u64::MAX), 0);
        index.insert(1, entry(2, &[1], u64::MAX), 0);
        assert_eq!(index.len(), 2);
        index.insert(1, entry(3, &[1], u64::MAX), 0);
        assert_eq!(index.len(), 2);
        assert!(index.exact(1, 1, 0).is_none());
        assert!(index.exact(1, 3, 0).is_some());
        let held: usize = [2, 3]
            .iter()
            .map(|e| index.exact(1, *e, 0).unwrap().approximate_bytes())
            .sum();
        assert_eq!(index.bytes(), held);
    }

    #[test]
    fn storing_a_prompt_again_does_not_inflate_its_score() {
        let mut index = Index::new(Limits::entries(100));
        for _ in 0..50 {
            index.insert(1, entry(1, &[1, 2], u64::MAX), 0);
        }
        index.insert(1, entry(2, &[1, 3], u64::MAX), 0);
        index.insert(1, entry(3, &[1, 3, 4], u64::MAX), 0);
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
        let mut index = Index::new(Limits::entries(1));
        index.insert(1, entry(1, &[7], u64::MAX), 0);
        index.insert(1, entry(2, &[8], u64::MAX), 0); // evicts 1; its slot is retired
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
        let mut index = Index::new(Limits::entries(10));
        index.insert(1, entry(1, &[1], 5), 0);
        index.insert(1, entry(2, &[1], 50), 0);
        index.sweep(10);
        assert_eq!(index.len(), 1);
        assert_eq!(index.candidates(1, &[1], 10).len(), 1);
        assert_eq!(index.bytes(), entry(2, &[1], 50).approximate_bytes());
    }

    #[test]
    fn one_owner_filling_the_cache_evicts_its_own_entries_first() {
        let mut index = Index::new(Limits::entries(5));
        index.insert(10, owned(ALICE, 1, &[1], u64::MAX), 0);
        for exact in 100..120 {
            index.insert(20, owned(BOB, exact, &[1], u64::MAX), 0);
            assert!(index.len() <= 5);
        }
        assert!(index.exact(10, 1, 0).is_some(), "alice's entry survived");
        // Bob keeps his newest four.
        assert!(index.exact(20, 115, 0).is_none());
        assert!((116..120).all(|exact| index.exact(20, exact, 0).is_some()));
    }

    #[test]
    fn the_byte_budget_is_shared_fairly_too() {
        let one = owned(ALICE, 100, &[1, 2, 3], u64::MAX).approximate_bytes();
        let mut index = Index::new(Limits {
            max_entries: usize::MAX,
            max_bytes: one * 6,
        });
        index.insert(10, owned(ALICE, 1, &[1, 2, 3], u64::MAX), 0);
        index.insert(10, owned(ALICE, 2, &[1, 2, 3], u64::MAX), 0);
        for exact in 100..140 {
            index.insert(20, owned(BOB, exact, &[1, 2, 3], u64::MAX), 0);
            assert!(index.bytes() <= one * 6, "{} bytes", index.bytes());
        }
        assert!(index.exact(10, 1, 0).is_some() && index.exact(10, 2, 0).is_some());
        assert_eq!(index.len(), 6);

        // The heaviest owner gives way: one huge entry of alice's goes before bob's small ones.
        let mut huge = owned(ALICE, 3, &[1], u64::MAX);
        huge.response = Arc::from("x".repeat(one * 4));
        let mut index = Index::new(Limits {
            max_entries: usize::MAX,
            max_bytes: huge.approximate_bytes() + one * 2,
        });
        index.insert(10, huge, 0);
        for exact in 100..103 {
            index.insert(20, owned(BOB, exact, &[1, 2, 3], u64::MAX), 0);
        }
        assert!(index.exact(10, 3, 0).is_none());
        assert_eq!(index.len(), 3);
    }

    #[test]
    fn expired_entries_go_before_anyone_loses_a_live_one() {
        let mut index = Index::new(Limits::entries(5));
        // Carol's two entries expire at 60 s; bob's three live on.
        index.insert(30, owned(3, 1, &[1], 60_000), 0);
        index.insert(30, owned(3, 2, &[1], 60_000), 0);
        for exact in 10..13 {
            index.insert(20, owned(BOB, exact, &[1], u64::MAX), 30_000);
        }
        // At 61 s, bob's fourth entry goes over the cap: carol's dead entries are swept, and
        // bob, now the heaviest, keeps every live entry.
        index.insert(20, owned(BOB, 13, &[1], u64::MAX), 61_000);
        assert_eq!(index.len(), 4);
        assert!((10..14).all(|exact| index.exact(20, exact, 61_000).is_some()));
    }

    #[test]
    fn a_replacement_moves_the_entry_to_its_new_owner() {
        let mut index = Index::new(Limits::entries(3));
        index.insert(1, owned(ALICE, 1, &[1], u64::MAX), 0);
        index.insert(1, owned(BOB, 1, &[1], u64::MAX), 0);
        assert!(!index.owners.contains_key(&ALICE));
        assert_eq!(index.owners[&BOB].entries, 1);
        index.insert(2, owned(ALICE, 2, &[1], u64::MAX), 0);
        index.insert(2, owned(ALICE, 3, &[1], u64::MAX), 0);
        index.insert(2, owned(ALICE, 4, &[1], u64::MAX), 0);
        // Alice is the heaviest now: her oldest goes, bob's shared entry stays.
        assert!(index.exact(1, 1, 0).is_some());
        assert!(index.exact(2, 2, 0).is_none());
    }
}

//! A compact byte-pair encoder giving exactly the ids of tiktoken-rs's `encode_ordinary`.
//!
//! tiktoken-rs's `CoreBPE` keeps each vocabulary three times over (bytes to rank, rank to bytes,
//! and the sorted bytes, every token its own allocation) beside 128 clones of its split regex,
//! and building it takes tens of megabytes that the allocator keeps once it is dropped. A
//! [`Vocabulary`] reads tables written at build time from tiktoken-rs's own (`build.rs`): every
//! token's bytes once, in rank order, in the binary, and a table of ranks keyed by those bytes.
//! Text is split with the same pattern by the same regex engine, and each piece merged as
//! tiktoken merges it.

use std::{cell::OnceCell, collections::BinaryHeap, hash::BuildHasher, sync::LazyLock};

use fancy_regex::Regex;
use hashbrown::HashTable;
use rustc_hash::FxBuildHasher;

/// A token id.
pub type Rank = u32;

/// tiktoken's o200k_base split pattern, as tiktoken-rs 0.12's `O200K_BASE_PAT_STR`. The parity
/// tests fail should the two ever differ.
const O200K_BASE_PAT_STR: &str = concat!(
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
    "|",
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
    "|",
    "\\p{N}{1,3}",
    "|",
    " ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*",
    "|",
    "\\s*[\\r\\n]+",
    "|",
    "\\s+(?!\\S)",
    "|",
    "\\s+",
);

/// tiktoken's cl100k_base split pattern, copied from tiktoken-rs 0.12's `cl100k_base()` (which
/// does not export it). The parity tests fail should the two ever differ.
const CL100K_BASE_PAT_STR: &str = "'(?i:[sdmt]|ll|ve|re)|[^\\r\\n\\p{L}\\p{N}]?+\\p{L}++|\\p{N}{1,3}+| ?[^\\s\\p{L}\\p{N}]++[\\r\\n]*+|\\s++$|\\s*[\\r\\n]|\\s+(?!\\S)|\\s";

/// Pieces at least this long are merged with a heap rather than by scanning, as in tiktoken.
const LARGE_PIECE: usize = 100;

/// Text the split regex fails on is merged in chunks of about this many bytes.
const FALLBACK_CHUNK: usize = 64;

/// The two vocabularies the gateway counts with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    O200k,
    Cl100k,
}

/// `kind`'s vocabulary, built on first use.
pub(super) fn vocabulary(kind: Kind) -> &'static Vocabulary {
    static O200K: LazyLock<Vocabulary> = LazyLock::new(|| Vocabulary::load(Kind::O200k));
    static CL100K: LazyLock<Vocabulary> = LazyLock::new(|| Vocabulary::load(Kind::Cl100k));
    match kind {
        Kind::O200k => &O200K,
        Kind::Cl100k => &CL100K,
    }
}

/// The tables `build.rs` wrote for a vocabulary: the ordinary tokens' bytes in rank order,
/// where each ends (little-endian `u32`s), and the special tokens as `rank text` lines.
struct Tables {
    tokens: &'static [u8],
    ends: &'static [u8],
    specials: &'static str,
    pattern: &'static str,
}

macro_rules! tables {
    ($name:literal, $pattern:expr) => {
        Tables {
            tokens: include_bytes!(concat!(env!("OUT_DIR"), "/", $name, ".tokens")),
            ends: include_bytes!(concat!(env!("OUT_DIR"), "/", $name, ".ends")),
            specials: include_str!(concat!(env!("OUT_DIR"), "/", $name, ".specials")),
            pattern: $pattern,
        }
    };
}

impl Kind {
    fn tables(self) -> Tables {
        match self {
            Kind::O200k => tables!("o200k_base", O200K_BASE_PAT_STR),
            Kind::Cl100k => tables!("cl100k_base", CL100K_BASE_PAT_STR),
        }
    }
}

/// A BPE vocabulary: the ordinary tokens' bytes by rank and their ranks by bytes, the special
/// tokens (for decoding only), and the split regex.
pub(super) struct Vocabulary {
    /// Every ordinary token's bytes, concatenated in rank order.
    tokens: &'static [u8],
    /// Where rank `r`'s bytes end in `tokens`, as the `r`th little-endian `u32`; ranks are dense
    /// from 0, and each token starts where the one before it ends.
    ends: &'static [u8],
    /// Every ordinary rank, hashed by its bytes.
    ranks: HashTable<Rank>,
    /// The special tokens' ranks and text, which `CoreBPE::decode` decodes too.
    specials: Box<[(Rank, &'static str)]>,
    /// The split regex; each thread encodes with its own clone of it (see [`Self::with_splitter`]).
    splitter: Regex,
    kind: Kind,
}

impl Vocabulary {
    fn load(kind: Kind) -> Self {
        match Self::from_tables(kind.tables(), kind) {
            Ok(vocabulary) => vocabulary,
            // Nothing here depends on input or environment: the tables are compiled in, the
            // patterns are constants, and the tests build both vocabularies.
            Err(error) => panic!("the {kind:?} vocabulary does not build: {error}"),
        }
    }

    fn from_tables(tables: Tables, kind: Kind) -> Result<Self, String> {
        let splitter = Regex::new(tables.pattern).map_err(|error| error.to_string())?;
        let mut specials = Vec::new();
        for line in tables.specials.lines() {
            let parsed = line
                .split_once(' ')
                .and_then(|(rank, text)| Some((rank.parse().ok()?, text)));
            specials.push(parsed.ok_or_else(|| format!("a bad special token line: {line}"))?);
        }
        if !tables.ends.len().is_multiple_of(4) {
            return Err("the token ends are not whole u32s".into());
        }
        let mut vocabulary = Self {
            tokens: tables.tokens,
            ends: tables.ends,
            ranks: HashTable::new(),
            specials: specials.into_boxed_slice(),
            splitter,
            kind,
        };
        let count = Rank::try_from(tables.ends.len() / 4).map_err(|_| "too many tokens")?;
        let mut ranks = HashTable::with_capacity(count as usize);
        for rank in 0..count {
            let Some(bytes) = vocabulary.token(rank) else {
                return Err(format!("rank {rank} has no bytes"));
            };
            let hash = FxBuildHasher.hash_one(bytes);
            if ranks
                .find(hash, |&other| vocabulary.token(other) == Some(bytes))
                .is_some()
            {
                return Err(format!("rank {rank} repeats an earlier token"));
            }
            ranks.insert_unique(hash, rank, |&other| {
                FxBuildHasher.hash_one(vocabulary.token(other).unwrap_or_default())
            });
        }
        vocabulary.ranks = ranks;
        // Merging starts from single bytes, so every byte must be a token.
        if let Some(byte) = (0..=u8::MAX).find(|&byte| vocabulary.rank(&[byte]).is_none()) {
            return Err(format!("the byte {byte} is not a token"));
        }
        Ok(vocabulary)
    }

    /// How many ordinary tokens there are; their ranks are `0..len`.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.ends.len() / 4
    }

    /// The bytes of ordinary token `rank`.
    fn token(&self, rank: Rank) -> Option<&'static [u8]> {
        let rank = usize::try_from(rank).ok()?;
        let start = match rank.checked_sub(1) {
            Some(before) => self.end(before)?,
            None => 0,
        };
        self.tokens.get(start..self.end(rank)?)
    }

    /// Where rank `rank`'s bytes end in `tokens`.
    fn end(&self, rank: usize) -> Option<usize> {
        let at = rank.checked_mul(4)?;
        let bytes = self.ends.get(at..at.checked_add(4)?)?;
        Some(u32::from_le_bytes(bytes.try_into().ok()?) as usize)
    }

    /// The rank of the ordinary token `bytes`, if one.
    fn rank(&self, bytes: &[u8]) -> Option<Rank> {
        let hash = FxBuildHasher.hash_one(bytes);
        self.ranks
            .find(hash, |&rank| self.token(rank) == Some(bytes))
            .copied()
    }

    /// The text of `ids`, as `CoreBPE::decode(ids).ok()`: `None` for an unknown id, or for
    /// bytes that are not UTF-8 (ids that end inside a character).
    pub(super) fn decode(&self, ids: &[Rank]) -> Option<String> {
        let mut bytes = Vec::with_capacity(ids.len() * 2);
        for &id in ids {
            let token = match self.token(id) {
                Some(token) => token,
                None => self
                    .specials
                    .iter()
                    .find(|(special, _)| *special == id)
                    .map(|(_, text)| text.as_bytes())?,
            };
            bytes.extend_from_slice(token);
        }
        String::from_utf8(bytes).ok()
    }

    /// Appends the ids of `text` to `ids`: `CoreBPE::encode_ordinary(text)`.
    pub(super) fn encode_into(&self, text: &str, ids: &mut Vec<Rank>) {
        self.split(text, |piece| match self.rank(piece) {
            Some(rank) => ids.push(rank),
            None => self.byte_pair_encode(piece, &mut |rank| ids.push(rank)),
        });
    }

    /// How many ids `text` has: `CoreBPE::encode_ordinary(text).len()`, without collecting them.
    pub(super) fn count(&self, text: &str) -> usize {
        let mut count = 0;
        self.split(text, |piece| {
            if self.rank(piece).is_some() {
                count += 1;
            } else if piece.len() < LARGE_PIECE {
                count += self.byte_pair_merge(piece).len().saturating_sub(1);
            } else {
                self.byte_pair_merge_large(piece, &mut |_| count += 1);
            }
        });
        count
    }

    /// Calls `piece` with each piece the split regex cuts `text` into. Should the regex fail
    /// (tiktoken-rs would panic), the rest of the text goes in chunks of about
    /// [`FALLBACK_CHUNK`] bytes: counted near enough, and never a panic.
    fn split(&self, text: &str, mut piece: impl FnMut(&[u8])) {
        self.with_splitter(|regex| {
            let mut end = 0;
            for found in regex.find_iter(text) {
                match found {
                    Ok(found) => {
                        piece(found.as_str().as_bytes());
                        end = found.end();
                    }
                    Err(_) => {
                        chunks(text.get(end..).unwrap_or_default()).for_each(&mut piece);
                        return;
                    }
                }
            }
        });
    }

    /// Runs `work` with this thread's own clone of the split regex: a regex shared between
    /// threads shares its matching caches, a write to shared memory on every search.
    fn with_splitter(&self, mut work: impl FnMut(&Regex)) {
        thread_local! {
            static SPLITTERS: [OnceCell<Regex>; 2] = const { [OnceCell::new(), OnceCell::new()] };
        }
        let slot = match self.kind {
            Kind::O200k => 0,
            Kind::Cl100k => 1,
        };
        let ran = SPLITTERS.try_with(|splitters| {
            work(splitters[slot].get_or_init(|| self.splitter.clone()));
        });
        if ran.is_err() {
            // This thread's locals are already gone (it is ending): the shared regex.
            work(&self.splitter);
        }
    }

    // The merge below is ported from tiktoken (https://github.com/openai/tiktoken, MIT licence,
    // Copyright (c) 2022 OpenAI, Shantanu Jain), as vendored in tiktoken-rs 0.12.1's
    // `vendor_tiktoken.rs`: the same order of merges and the same tie-breaking (the lowest rank
    // first, the leftmost of equal ranks), so the same ids.

    /// `byte_pair_encode`: calls `emit` with the ids of `piece`, which is not itself a token.
    fn byte_pair_encode(&self, piece: &[u8], emit: &mut impl FnMut(Rank)) {
        if piece.len() < LARGE_PIECE {
            for part in self.byte_pair_merge(piece).windows(2) {
                if let [(start, _), (end, _)] = *part {
                    self.emit_part(piece.get(start..end).unwrap_or_default(), emit);
                }
            }
        } else {
            self.byte_pair_merge_large(piece, emit);
        }
    }

    /// Emits the rank of a merged part: a single byte or a token the merge found, so always a
    /// token; were it not, its bytes' ranks.
    fn emit_part(&self, part: &[u8], emit: &mut impl FnMut(Rank)) {
        match self.rank(part) {
            Some(rank) => emit(rank),
            None => part
                .iter()
                .filter_map(|&byte| self.rank(&[byte]))
                .for_each(emit),
        }
    }

    /// `_byte_pair_merge`: the parts of `piece` as `(start, rank of the pair starting there)`,
    /// ending with `(piece.len(), Rank::MAX)`. O(mn) for m merges of n parts; n is small.
    fn byte_pair_merge(&self, piece: &[u8]) -> Vec<(usize, Rank)> {
        if piece.is_empty() {
            return vec![(0, Rank::MAX)];
        }
        let rank_of = |bytes: Option<&[u8]>| bytes.and_then(|b| self.rank(b)).unwrap_or(Rank::MAX);
        let mut parts = Vec::with_capacity(piece.len() + 1);
        let mut min_rank: (Rank, usize) = (Rank::MAX, usize::MAX);
        for i in 0..piece.len() - 1 {
            let rank = rank_of(piece.get(i..i + 2));
            if rank < min_rank.0 {
                min_rank = (rank, i);
            }
            parts.push((i, rank));
        }
        parts.push((piece.len() - 1, Rank::MAX));
        parts.push((piece.len(), Rank::MAX));

        // The rank of parts[i] merged with parts[i + 1], before parts[i + 1] is removed (hence
        // the + 3, as in tiktoken).
        let get_rank = |parts: &Vec<(usize, Rank)>, i: usize| {
            if i + 3 < parts.len() {
                rank_of(piece.get(parts[i].0..parts[i + 3].0))
            } else {
                Rank::MAX
            }
        };

        while min_rank.0 != Rank::MAX {
            let i = min_rank.1;
            if i > 0 {
                parts[i - 1].1 = get_rank(&parts, i - 1);
            }
            parts[i].1 = get_rank(&parts, i);
            parts.remove(i + 1);

            min_rank = (Rank::MAX, usize::MAX);
            for (i, &(_, rank)) in parts[..parts.len() - 1].iter().enumerate() {
                if rank < min_rank.0 {
                    min_rank = (rank, i);
                }
            }
        }
        parts
    }

    /// `_byte_pair_merge_large`: the same merges with a heap, O(m log n), for long pieces.
    fn byte_pair_merge_large(&self, piece: &[u8], emit: &mut impl FnMut(Rank)) {
        if piece.len() < 2 {
            return self.emit_part(piece, emit);
        }
        let mut state = Vec::with_capacity(piece.len());
        state.push(State {
            prev: usize::MAX,
            end: 1,
            next_end: 2,
            next_rank: Rank::MAX,
            cur_rank: Rank::MAX,
        });

        let mut heap = BinaryHeap::with_capacity(piece.len());
        for i in 0..piece.len() - 1 {
            if let Some(rank) = piece.get(i..i + 2).and_then(|pair| self.rank(pair)) {
                heap.push(Merge { start: i, rank });
                state[i].next_rank = rank;
            }
            // Note this is offset by one.
            state.push(State {
                prev: i,
                end: i + 2,
                next_end: i + 3,
                next_rank: Rank::MAX,
                cur_rank: Rank::MAX,
            });
        }

        // Repeatedly take the valid merge of the lowest rank: the (left) token from `start` to
        // `state[start].end` with the (right) one from there to `state[start].next_end`. The
        // merges the two old tokens were part of are invalidated, and the two new potential
        // ones pushed.
        let potential_merge = |state: &mut Vec<State>,
                               heap: &mut BinaryHeap<Merge>,
                               start: usize,
                               next_end: usize| {
            state[start].next_end = next_end;
            state[start].next_rank = Rank::MAX; // Always invalidate the old merge.
            if next_end <= piece.len()
                && let Some(rank) = piece.get(start..next_end).and_then(|b| self.rank(b))
            {
                heap.push(Merge { start, rank });
                state[start].next_rank = rank;
            }
        };

        while let Some(left) = heap.pop() {
            if left.rank == Rank::MAX {
                break;
            }
            if left.rank != state[left.start].next_rank {
                continue; // This merge was invalidated.
            }
            let left_start = left.start;
            let right_start = state[left_start].end;
            let right_end = state[left_start].next_end;
            let right_next_end = state[right_start].next_end;

            state[left_start].cur_rank = state[left_start].next_rank;
            state[left_start].end = right_end;
            potential_merge(&mut state, &mut heap, left_start, right_next_end);
            if right_end < state.len() {
                state[right_end].prev = left_start;
            }
            if left_start > 0 {
                let prev_start = state[left_start].prev;
                potential_merge(&mut state, &mut heap, prev_start, right_end);
            }
            state[right_start].next_rank = Rank::MAX;
        }

        let mut i = 0;
        while i < state.len() {
            if state[i].cur_rank != Rank::MAX {
                emit(state[i].cur_rank);
            } else {
                self.emit_part(piece.get(i..state[i].end).unwrap_or_default(), emit);
            }
            i = state[i].end;
        }
    }
}

/// A potential merge of the large variant, ordered so the heap pops the lowest rank first and,
/// of equal ranks, the leftmost.
#[derive(Eq, PartialEq, Clone, Copy)]
struct Merge {
    start: usize,
    rank: Rank,
}

impl Ord for Merge {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        other
            .rank
            .cmp(&self.rank)
            .then_with(|| other.start.cmp(&self.start))
    }
}

impl PartialOrd for Merge {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// The large variant's token starting at a byte: where it ends, the next token's end, the rank
/// of merging the two, and its own rank once it is a merge.
struct State {
    prev: usize,
    end: usize,
    next_end: usize,
    next_rank: Rank,
    cur_rank: Rank,
}

/// `text` in consecutive chunks of at least [`FALLBACK_CHUNK`] bytes (the last may be shorter),
/// cut at character boundaries.
fn chunks(text: &str) -> impl Iterator<Item = &[u8]> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut cut = rest.len().min(FALLBACK_CHUNK);
        while !rest.is_char_boundary(cut) {
            cut += 1;
        }
        let (chunk, tail) = rest.split_at(cut);
        rest = tail;
        Some(chunk.as_bytes())
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use tiktoken_rs::CoreBPE;

    use super::*;

    #[test]
    fn the_o200k_split_pattern_is_tiktoken_rss() {
        // cl100k's is not exported; the parity tests hold it.
        assert_eq!(O200K_BASE_PAT_STR, tiktoken_rs::O200K_BASE_PAT_STR);
    }

    const KINDS: [Kind; 2] = [Kind::O200k, Kind::Cl100k];

    /// tiktoken-rs's own encoder for `kind`: the reference.
    fn reference(kind: Kind) -> &'static CoreBPE {
        match kind {
            Kind::O200k => tiktoken_rs::o200k_base_singleton(),
            Kind::Cl100k => tiktoken_rs::cl100k_base_singleton(),
        }
    }

    /// Asserts our ids, count and decoding of `text` are tiktoken-rs's, under both vocabularies.
    fn assert_parity(text: &str) {
        for kind in KINDS {
            let expected = reference(kind).encode_ordinary(text);
            let ours = vocabulary(kind);
            let mut ids = Vec::new();
            ours.encode_into(text, &mut ids);
            assert_eq!(ids, expected, "{kind:?} ids of {text:?}");
            assert_eq!(
                ours.count(text),
                expected.len(),
                "{kind:?} count of {text:?}"
            );
            assert_eq!(ours.decode(&ids).as_deref(), Some(text), "{kind:?}");
            // Through the public type too (pieces, which only matter past 16k whitespace).
            let tokenizer = super::super::Tokenizer { vocabulary: ours };
            assert_eq!(tokenizer.encode(text), expected, "{kind:?} Tokenizer");
        }
    }

    #[test]
    fn parity_with_tiktoken_on_the_cache_dev_set() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/data/cache-dev-set.tsv");
        let set = std::fs::read_to_string(&path).unwrap();
        let mut lines = 0;
        for line in set.lines() {
            assert_parity(line);
            for field in line.split('\t') {
                assert_parity(field);
            }
            lines += 1;
        }
        assert!(lines >= 100, "{lines}");
        assert_parity(&set);
    }

    #[test]
    fn parity_with_tiktoken_on_the_readme_and_architecture() {
        for document in [
            include_str!("../../../README.md"),
            include_str!("../../../ARCHITECTURE.md"),
        ] {
            assert!(document.len() > 10_000);
            assert_parity(document);
            for line in document.lines() {
                assert_parity(line);
            }
        }
    }

    /// splitmix64: deterministic, so a failure names a reproducible string.
    struct Random(u64);

    impl Random {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }

        /// Below `long` one time in `one_in`, else below `short`.
        fn sometimes_long(&mut self, one_in: usize, long: usize, short: usize) -> usize {
            let bound = if self.below(one_in) == 0 { long } else { short };
            self.below(bound)
        }

        fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
            items[self.below(items.len())]
        }

        fn char_in(&mut self, from: u32, to: u32) -> char {
            char::from_u32(from + self.below((to - from) as usize) as u32).unwrap_or('?')
        }
    }

    const WORDS: &[&str] = &[
        "the",
        "Hello",
        "WORLD",
        "tokenization",
        "gateway",
        "naïve",
        "café",
        "Straße",
        "iPhone",
        "McDonald",
        "x",
        "I",
        "a",
        "camelCaseWord",
        "snake_case_name",
        "HTTPServer",
        "ÉCOLE",
        "Привет",
        "мир",
        "Ελληνικά",
        "مرحبا",
        "שלום",
        "नमस्ते",
        "ไทย",
        "Ǆemal",
        "ǅ",
        "ﬁne",
    ];
    const PUNCTUATION: &[&str] = &[
        "!", "?", ".", ",", ";", ":", "...", "--", "—", "(", ")", "[", "]", "{", "}", "<", ">",
        "\"", "'", "`", "/", "\\", "|", "@", "#", "$", "%", "^", "&", "*", "+", "=", "~", "_", "«",
        "»", "¿", "¡", "•", "→", "€", "£", "//", "/*", "*/", "=>", "::", "</div>", "{\"a\":",
    ];
    const WHITESPACE: &[&str] = &[
        " ", " ", " ", "  ", "   ", "\t", "\t\t", "\n", "\n\n", "\r\n", "\r", " \n", "\n ",
        "  \n\t ", "\u{3000}", "\u{a0}", "\u{2009}", "\u{200b}", "\u{b}", "\u{c}", "\u{85}",
    ];
    const CONTRACTIONS: &[&str] = &[
        "'s", "'S", "'t", "'T", "'re", "'RE", "'ve", "'Ve", "'m", "'M", "'ll", "'LL", "'lL", "'d",
        "'D", "’s", "'x", "''", "'",
    ];
    const SYMBOLS: &[&str] = &[
        "😀",
        "👍🏽",
        "🇫🇷",
        "👨‍👩‍👧",
        "❤️",
        "🤖",
        "✓",
        "∑",
        "∫",
        "½",
        "²",
        "Ⅻ",
        "①",
        "٣",
        "𝟘",
        "e\u{301}",
        "a\u{308}\u{304}",
        "\u{301}",
        "\u{915}\u{94d}\u{937}",
        "ñ",
        "\u{1f3fb}",
        "漢字",
        "日本語のテキスト",
        "한국어",
        "中文，标点。",
        "カタカナ",
        "\u{fffd}",
        "\u{7f}",
        "\u{1}",
    ];

    /// One pseudo-random mixed string.
    fn mixed(random: &mut Random) -> String {
        let mut text = String::new();
        for _ in 0..1 + random.below(24) {
            match random.below(12) {
                0..=2 => text.push_str(random.pick(WORDS)),
                3 => {
                    // Letters of random case, now and then long enough for the heap merge.
                    let len = if random.below(4) == 0 {
                        100 + random.below(300)
                    } else {
                        1 + random.below(12)
                    };
                    for _ in 0..len {
                        let c = random.char_in('a' as u32, 'z' as u32 + 1);
                        text.push(if random.below(3) == 0 {
                            c.to_ascii_uppercase()
                        } else {
                            c
                        });
                    }
                }
                4 => {
                    for _ in 0..1 + random.sometimes_long(5, 200, 8) {
                        text.push(random.char_in('0' as u32, '9' as u32 + 1));
                    }
                }
                5 => {
                    for _ in 0..1 + random.sometimes_long(6, 150, 3) {
                        text.push_str(random.pick(PUNCTUATION));
                    }
                }
                6 | 7 => {
                    for _ in 0..1 + random.below(4) {
                        text.push_str(random.pick(WHITESPACE));
                    }
                }
                8 => text.push_str(random.pick(CONTRACTIONS)),
                9 => text.push_str(random.pick(SYMBOLS)),
                10 => {
                    // A run of CJK ideographs or Hangul, now and then a long one.
                    let len = 1 + random.sometimes_long(5, 120, 6);
                    let (from, to) = if random.below(2) == 0 {
                        (0x4E00, 0x9FFF)
                    } else {
                        (0xAC00, 0xD7A3)
                    };
                    for _ in 0..len {
                        text.push(random.char_in(from, to));
                    }
                }
                _ => {
                    // Any character at all (surrogates come out as '?').
                    for _ in 0..1 + random.below(4) {
                        text.push(random.char_in(1, 0x2_FFFF));
                    }
                }
            }
        }
        text
    }

    #[test]
    fn parity_with_tiktoken_on_mixed_pseudo_random_text() {
        let mut random = Random(0x7011_6a7e);
        for _ in 0..3000 {
            assert_parity(&mixed(&mut random));
        }
    }

    #[test]
    fn parity_with_tiktoken_on_long_pieces_and_edges() {
        for text in [
            String::new(),
            "a".into(),
            " ".into(),
            "a".repeat(1000),
            "ab".repeat(700),
            "Supercalifragilisticexpialidocious".repeat(20),
            "!?".repeat(300),
            "漢".repeat(500),
            "😀".repeat(120),
            " ".repeat(5000),
            "\n".repeat(3000) + "x",
            "1".repeat(999),
            "e\u{301}".repeat(300),
            "I'LL'VE'S'd're don't WON'T".into(),
        ] {
            assert_parity(&text);
        }
    }

    #[test]
    fn parity_with_tiktoken_when_decoding_any_ids() {
        for kind in KINDS {
            let theirs = reference(kind);
            let ours = vocabulary(kind);
            let n = ours.len() as Rank;
            let specials: Vec<Rank> = ours.specials.iter().map(|&(rank, _)| rank).collect();
            let emoji = theirs.encode_ordinary("👨‍👩‍👧 😀 naïve");
            let mut cases: Vec<Vec<Rank>> =
                vec![vec![], vec![0], vec![n - 1], vec![n], vec![Rank::MAX]];
            cases.extend((0..=emoji.len()).map(|end| emoji[..end].to_vec()));
            cases.extend(specials.iter().map(|&special| vec![special, 0, special]));
            for ids in cases {
                assert_eq!(
                    ours.decode(&ids),
                    theirs.decode(&ids).ok(),
                    "{kind:?} {ids:?}"
                );
            }
        }
    }

    #[test]
    fn ordinary_ranks_are_dense_and_only_special_tokens_lie_beyond() {
        for kind in KINDS {
            let theirs = reference(kind);
            let ours = vocabulary(kind);
            let n = ours.len() as Rank;
            for rank in 0..n {
                let bytes = theirs.decode_bytes(&[rank]).unwrap();
                assert_eq!(ours.token(rank), Some(&bytes[..]), "{kind:?} {rank}");
                assert_eq!(ours.rank(&bytes), Some(rank), "{kind:?} {rank}");
            }
            let specials: Vec<Rank> = ours.specials.iter().map(|&(rank, _)| rank).collect();
            assert_eq!(specials.len(), theirs.special_tokens().len());
            // Past the ordinary tokens, and well past the last special one, only specials decode.
            for rank in n..n + 65_536 {
                assert_eq!(
                    theirs.decode_bytes(&[rank]).is_ok(),
                    specials.contains(&rank),
                    "{kind:?} {rank}"
                );
            }
            let expected = match kind {
                Kind::O200k => 199_998,
                Kind::Cl100k => 100_256,
            };
            assert_eq!(n, expected, "{kind:?}");
            assert_eq!(ours.rank(b""), None);
            assert_eq!(ours.token(n), None);
        }
    }

    #[test]
    fn a_failing_split_regex_falls_back_to_chunks() {
        let text = "naïve 漢字".repeat(20);
        let cut: Vec<&[u8]> = chunks(&text).collect();
        assert_eq!(cut.concat(), text.as_bytes());
        assert!(cut.iter().all(|chunk| std::str::from_utf8(chunk).is_ok()));
        assert!(
            cut[..cut.len() - 1]
                .iter()
                .all(|chunk| chunk.len() >= FALLBACK_CHUNK)
        );
        assert_eq!(chunks("").count(), 0);
        // fancy-regex's backtracking limit on a million spaces, which tiktoken-rs panics on.
        let spaces = " ".repeat(1_000_000) + "x";
        let ours = vocabulary(Kind::O200k);
        assert!(ours.splitter.find_iter(&spaces).any(|found| found.is_err()));
        let mut ids = Vec::new();
        ours.encode_into(&spaces, &mut ids);
        assert_eq!(ours.count(&spaces), ids.len());
        assert!(ids.len() >= 1_000_000 / FALLBACK_CHUNK, "{}", ids.len());
        assert_eq!(ours.decode(&ids), Some(spaces));
    }
}

//! Shared English text analysis for tollgate: the one place for word splitting, normalisation,
//! stemming, stop words and FNV-1a hashing. No dependencies, no I/O.
//!
//! # Layout
//! - [`words`] / [`normalize_words`] / [`expand_contractions`]: splitting and normalising text.
//! - [`stem`] (plural, tense and comparison forms) and [`singular`] (plurals only).
//! - [`STOP_WORDS`] / [`is_stop_word`]: common English words that carry no topic.
//! - [`NUMBER_WORDS`] / [`number_word`]: numbers written as words, with their values.
//! - [`fnv1a`], [`fnv1a_parts`], [`Fnv1a`] and [`FnvBuildHasher`]: a fast, stable hash.
//!
//! Users that need a deliberately different rule (the cache's closed-class word classes, the
//! mock's paraphrase weighting, the topic matcher's typo tolerance) keep it themselves and say why.

mod fnv;
mod normalize;
mod numbers;
mod stem;
mod stop_words;

pub use fnv::{
    FNV_OFFSET, FNV_PRIME, Fnv1a, FnvBuildHasher, FnvHashMap, FnvHashSet, fnv1a, fnv1a_parts,
};
pub use normalize::{expand_contractions, normalize_words, words};
pub use numbers::{NUMBER_WORDS, number_word};
pub use stem::{singular, stem};
pub use stop_words::{STOP_WORDS, is_stop_word};

//! Deterministic "meaningful-ish" embeddings: a hashed bag of lowercase words and character
//! trigrams, L2-normalized.
//!
//! Identical texts give identical vectors; texts sharing words give close vectors (high cosine
//! similarity); unrelated texts give nearly orthogonal ones. No randomness, no state.

use std::hash::Hasher as _;

use text_analysis::{Fnv1a, words};

/// Weight of a whole word; trigrams add the fuzzy part (plurals, typos, inflections).
const WORD_WEIGHT: f32 = 1.0;
const TRIGRAM_WEIGHT: f32 = 0.5;
/// Function words barely count (and add no trigrams), so paraphrases that share their content
/// words land close together.
/// Not `text_analysis::STOP_WORDS`: this short list adds request fillers ("please", "tell") and
/// the scripted similarities of tests and demos were set with it.
const STOP_WORD_WEIGHT: f32 = 0.2;
const STOP_WORDS: &[&str] = &[
    "a", "about", "an", "and", "are", "be", "by", "can", "could", "do", "does", "for", "how", "i",
    "in", "is", "it", "me", "my", "of", "on", "or", "please", "tell", "that", "the", "this", "to",
    "what", "when", "which", "why", "with", "would", "you", "your",
];

/// The embedding of `text` with `dims` dimensions (at least 1), unit length.
pub(crate) fn embed(text: &str, dims: usize) -> Vec<f32> {
    let dims = dims.max(1);
    let mut vector = vec![0.0f32; dims];
    let lower = text.to_lowercase();
    let mut padded = String::new();
    let mut bounds: Vec<usize> = Vec::new();
    for word in words(&lower) {
        if STOP_WORDS.contains(&word) {
            add(&mut vector, fnv1a(b'w', word.as_bytes()), STOP_WORD_WEIGHT);
            continue;
        }
        add(&mut vector, fnv1a(b'w', word.as_bytes()), WORD_WEIGHT);
        padded.clear();
        padded.push(' ');
        padded.push_str(word);
        padded.push(' ');
        // Byte offsets of every char plus the end, so each window of four spans one trigram.
        bounds.clear();
        bounds.extend(padded.char_indices().map(|(at, _)| at));
        bounds.push(padded.len());
        for window in bounds.windows(4) {
            if let [start, _, _, end] = *window {
                let trigram = padded.as_bytes().get(start..end).unwrap_or_default();
                add(&mut vector, fnv1a(b't', trigram), TRIGRAM_WEIGHT);
            }
        }
    }
    let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        vector.iter_mut().for_each(|x| *x /= norm);
    } else if let Some(first) = vector.first_mut() {
        // Empty text: still a unit vector.
        *first = 1.0;
    }
    vector
}

fn add(vector: &mut [f32], hash: u64, weight: f32) {
    let len = vector.len() as u64;
    let index = usize::try_from(hash % len).unwrap_or_default();
    let sign = if hash >> 63 == 1 { -1.0 } else { 1.0 };
    if let Some(slot) = vector.get_mut(index) {
        *slot += sign * weight;
    }
}

/// 64-bit FNV-1a over a kind tag and the bytes: stable across runs and platforms.
fn fnv1a(kind: u8, bytes: &[u8]) -> u64 {
    let mut hasher = Fnv1a::default();
    hasher.write_u8(kind);
    hasher.write(bytes);
    let hash = hasher.finish();
    // FNV's high bit is weakly mixed; fold the high half in so the sign bit is usable.
    hash ^ (hash >> 29) ^ (hash << 31)
}

/// Standard base64 (with padding) of the little-endian f32s, as OpenAI's
/// `encoding_format: "base64"` returns them.
pub(crate) fn base64_f32(vector: &[f32]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for group in bytes.chunks(3) {
        let b = [
            group.first().copied().unwrap_or(0),
            group.get(1).copied().unwrap_or(0),
            group.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            if i <= group.len() {
                out.push(char::from(ALPHABET[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Cosine similarity of two unit vectors (their dot product).
#[cfg(test)]
pub(crate) fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(v: &[f32]) -> f32 {
        v.iter().map(|x| x * x).sum::<f32>().sqrt()
    }

    #[test]
    fn identical_texts_identical_vectors() {
        assert_eq!(
            embed("How do deployment slots work?", 64),
            embed("how do DEPLOYMENT slots work", 64)
        );
    }

    #[test]
    fn vectors_are_unit_length() {
        for text in ["", "a", "How do deployment slots work?", "ünïcödé täxt ✓"] {
            assert!((norm(&embed(text, 64)) - 1.0).abs() < 1e-5, "{text}");
        }
        assert_eq!(embed("x", 0).len(), 1);
    }

    #[test]
    fn similar_texts_are_closer_than_unrelated_ones() {
        let dims = 256;
        let a = embed("How do deployment slots work in App Service?", dims);
        let b = embed("How do deployment slots work?", dims);
        let c = embed("What is the capital of France", dims);
        assert!(cosine(&a, &b) > 0.7, "{}", cosine(&a, &b));
        assert!(cosine(&a, &b) > cosine(&a, &c) + 0.3);
    }

    #[test]
    fn base64_matches_known_values() {
        // 1.0f32 = 00 00 80 3f
        assert_eq!(base64_f32(&[1.0]), "AACAPw==");
        assert_eq!(base64_f32(&[]), "");
        assert_eq!(base64_f32(&[1.0, 1.0, 1.0]).len(), 16);
    }
}

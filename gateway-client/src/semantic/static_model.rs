//! A static embedding model distilled from all-MiniLM-L6-v2, compiled into the binary.
//!
//! The files in `gateway-client/models/static-minilm/` (made by `models/distill.py`, the
//! model2vec recipe; see its PROVENANCE.md) hold one int8 vector per WordPiece token with an f32
//! scale per row. They are embedded with `include_bytes!`, so the binary needs no file and no
//! network at run time, and are read in place: only the token → row table is built, once.
//!
//! A sentence embedding is what model2vec computes: the BERT-uncased WordPiece tokens of the text
//! (no `[CLS]`/`[SEP]`, `[UNK]` dropped), the mean of their rows over the first `sentence_dims`
//! dimensions (PCA orders them by variance; 128 of 256 measured as well as all), L2-normalised.
//! The tokenizer is
//! BERT's: clean (drop control characters, every whitespace is a space), CJK ideographs apart,
//! NFD without non-spacing marks, lowercase; split on whitespace and punctuation; then greedy
//! longest-match-first WordPiece with `##` continuations, a word that cannot be covered (or is
//! longer than 100 characters) being `[UNK]`. Text that spells a special token (`[CLS]`) is plain
//! text here: it is never taken for the token itself. Nothing is cut off (model2vec stops at 512
//! tokens by default): the cost is linear in the text, and a conversation's latest turn is last.
//!
//! For the verifier, [`StaticModel::word_vectors`] gives each word of a text (a run of
//! non-space, non-punctuation characters, or one punctuation character) with its byte span in
//! the text and its vector: the mean of its WordPiece rows.

use std::{collections::HashMap, ops::Range, sync::LazyLock};

use text_analysis::FnvBuildHasher;

use async_trait::async_trait;
use serde_json::Value;
use unicode_general_category::{GeneralCategory, get_general_category};

use super::{
    embed::{EmbedError, Embedder, Embedding},
    text::Token,
};

macro_rules! model_file {
    ($name:literal) => {
        concat!(env!("CARGO_MANIFEST_DIR"), "/models/static-minilm/", $name)
    };
}

/// The model's files, as committed (their SHA-256 are in `MANIFEST.sha256`).
pub mod files {
    pub static VECTORS: &[u8] = include_bytes!(model_file!("vectors.bin"));
    pub static SCALES: &[u8] = include_bytes!(model_file!("scales.f32"));
    pub static VOCAB: &str = include_str!(model_file!("vocab.txt"));
    pub static CONFIG: &str = include_str!(model_file!("config.json"));
}

/// Tuned on the development and tuning sets (models/static-minilm/PROVENANCE.md, "recall and pass
/// rates by threshold"): 100% of the dev set's paraphrases and 98% of the tuning set's score at
/// least 0.65, and no unrelated prompt does (their highest: 0.25 and 0.33). Near-misses score as
/// high as paraphrases (92–98% of them clear it): verification, not this threshold, refuses them.
pub const STATIC_THRESHOLD: f32 = 0.65;

/// BERT's limit: a longer word is `[UNK]`.
const MAX_WORD_CHARS: usize = 100;
const UNKNOWN: &str = "[UNK]";
const CONTINUATION: &str = "##";

/// FNV-1a: the table's keys are fixed, short, and known in advance, so a fast hash is enough.
type PieceTable = HashMap<&'static str, u32, FnvBuildHasher>;

/// The distilled model: token table and vectors, read in place from the embedded files.
pub struct StaticModel {
    /// Word-initial pieces → row.
    initial: PieceTable,
    /// `##` pieces, keyed without the `##`, → row.
    continuation: PieceTable,
    /// Row → token (for tests and debugging).
    tokens: Vec<&'static str>,
    unknown: u32,
    /// The longest piece, in characters: no longer substring can match.
    max_piece_chars: usize,
    dims: usize,
    /// Sentence embeddings use the first `sentence_dims` of the `dims` (PCA) dimensions.
    sentence_dims: usize,
    vectors: &'static [u8],
    scales: &'static [u8],
}

impl std::fmt::Debug for StaticModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticModel")
            .field("rows", &self.tokens.len())
            .field("dims", &self.dims)
            .field("sentence_dims", &self.sentence_dims)
            .finish_non_exhaustive()
    }
}

static MODEL: LazyLock<Result<StaticModel, String>> = LazyLock::new(StaticModel::load);

/// A text's WordPiece tokens and its words.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tokens {
    /// Rows of the model, `[UNK]`'s included.
    pub ids: Vec<u32>,
    pub words: Vec<Word>,
}

/// One word of a text: a run of letters, digits or symbols, or a single punctuation character.
/// Words whose spans touch were written together: `e-mail` is `e`, `-`, `mail`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word {
    /// Bytes of the original text.
    pub span: Range<usize>,
    /// Its pieces in [`Tokens::ids`].
    pub pieces: Range<usize>,
    /// A punctuation character (they are words of their own).
    pub punctuation: bool,
    /// False when the word is `[UNK]` (its vector is then zero).
    pub known: bool,
}

/// The words of a text with their vectors (each the mean of the word's piece rows).
#[derive(Debug, Clone, Default)]
pub struct WordVectors {
    pub words: Vec<Word>,
    dims: usize,
    values: Vec<f32>,
}

impl WordVectors {
    pub fn len(&self) -> usize {
        self.words.len()
    }

    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// The vector of word `index` (zero for an unknown word). Panics if out of range.
    pub fn vector(&self, index: usize) -> &[f32] {
        &self.values[index * self.dims..(index + 1) * self.dims]
    }
}

impl StaticModel {
    /// The embedded model, loaded on first use.
    pub fn get() -> Result<&'static StaticModel, String> {
        MODEL.as_ref().map_err(Clone::clone)
    }

    fn load() -> Result<Self, String> {
        let config: Value = serde_json::from_str(files::CONFIG)
            .map_err(|e| format!("static-minilm config.json: {e}"))?;
        let number = |key: &str| {
            config
                .get(key)
                .and_then(Value::as_u64)
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| format!("static-minilm config.json has no {key}"))
        };
        let (rows, dims) = (number("rows")?, number("dims")?);
        let sentence_dims = number("sentence_dims").unwrap_or(dims).min(dims);
        if config.get("dtype").and_then(Value::as_str) != Some("int8") {
            return Err("static-minilm: only int8 vectors are supported".to_owned());
        }
        let tokens: Vec<&'static str> = files::VOCAB.lines().collect();
        if tokens.len() != rows
            || files::VECTORS.len() != rows * dims
            || files::SCALES.len() != rows * 4
        {
            return Err(format!(
                "static-minilm files disagree: {} tokens, {} vector bytes, {} scale bytes for {rows} rows of {dims}",
                tokens.len(),
                files::VECTORS.len(),
                files::SCALES.len()
            ));
        }
        let (initial, continuation, max_piece_chars) = piece_tables(&tokens)?;
        let unknown = *initial
            .get(UNKNOWN)
            .ok_or("static-minilm: the vocabulary has no [UNK]")?;
        Ok(Self {
            initial,
            continuation,
            tokens,
            unknown,
            max_piece_chars,
            dims,
            sentence_dims,
            vectors: files::VECTORS,
            scales: files::SCALES,
        })
    }

    /// Dimensions of a word vector.
    pub fn dims(&self) -> usize {
        self.dims
    }

    /// Dimensions of a sentence embedding.
    pub fn sentence_dims(&self) -> usize {
        self.sentence_dims
    }

    /// The WordPiece token of a row (`None` past the last row).
    pub fn token(&self, id: u32) -> Option<&'static str> {
        self.tokens.get(id as usize).copied()
    }

    /// The id of `[UNK]`.
    pub fn unknown(&self) -> u32 {
        self.unknown
    }

    /// Adds `weight` times row `id`'s first `out.len()` dimensions to `out`.
    pub fn add_row(&self, id: u32, weight: f32, out: &mut [f32]) {
        let row = id as usize;
        let Some(scale) = self
            .scales
            .get(row * 4..row * 4 + 4)
            .and_then(|bytes| <[u8; 4]>::try_from(bytes).ok())
        else {
            return;
        };
        let scale = weight * f32::from_le_bytes(scale);
        let start = row * self.dims;
        let Some(values) = self.vectors.get(start..start + out.len().min(self.dims)) else {
            return;
        };
        for (sum, value) in out.iter_mut().zip(values) {
            *sum += scale * f32::from(i8::from_ne_bytes([*value]));
        }
    }

    /// model2vec's sentence embedding: the mean of the known pieces' rows, L2-normalised (all
    /// zeros when no piece is known).
    pub fn sentence_embedding(&self, text: &str) -> Vec<f32> {
        let mut sum = vec![0.0f32; self.sentence_dims];
        let mut pieces = Vec::with_capacity(8);
        split_words(text, |word, _, _| {
            pieces.clear();
            self.word_pieces(word, &mut pieces);
            for &id in &pieces {
                if id != self.unknown {
                    self.add_row(id, 1.0, &mut sum);
                }
            }
        });
        let norm = sum.iter().map(|v| v * v).sum::<f32>().sqrt();
        if norm > 0.0 {
            for value in &mut sum {
                *value /= norm;
            }
        }
        sum
    }

    /// The WordPiece tokens of `text` and its words.
    pub fn tokenize(&self, text: &str) -> Tokens {
        let mut tokens = Tokens::default();
        split_words(text, |word, span, punctuation| {
            let first = tokens.ids.len();
            self.word_pieces(word, &mut tokens.ids);
            let pieces = first..tokens.ids.len();
            let known = tokens.ids[pieces.clone()] != [self.unknown];
            tokens.words.push(Word {
                span,
                pieces,
                punctuation,
                known,
            });
        });
        tokens
    }

    /// Each word of `text` with its vector: the mean of its piece rows (not normalised).
    pub fn word_vectors(&self, text: &str) -> WordVectors {
        let Tokens { ids, words } = self.tokenize(text);
        let mut values = vec![0.0f32; words.len() * self.dims];
        for (word, out) in words.iter().zip(values.chunks_exact_mut(self.dims)) {
            if word.known {
                let weight = 1.0 / word.pieces.len() as f32;
                for &id in &ids[word.pieces.clone()] {
                    self.add_row(id, weight, out);
                }
            }
        }
        WordVectors {
            words,
            dims: self.dims,
            values,
        }
    }

    /// A word or phrase as one vector: the mean of all its known pieces' rows (not normalised;
    /// zero if none is known). "turn off" is the mean of `turn` and `off`.
    pub fn phrase_vector(&self, text: &str) -> Vec<f32> {
        let tokens = self.tokenize(text);
        let known: Vec<u32> = tokens
            .ids
            .into_iter()
            .filter(|id| *id != self.unknown)
            .collect();
        let mut out = vec![0.0f32; self.dims];
        for &id in &known {
            self.add_row(id, 1.0 / known.len() as f32, &mut out);
        }
        out
    }

    /// Greedy longest-match-first WordPiece of one normalised word, appended to `ids`; a word
    /// that cannot be covered, or is too long, is one `[UNK]`.
    fn word_pieces(&self, word: &str, ids: &mut Vec<u32>) {
        let first = ids.len();
        if word.chars().nth(MAX_WORD_CHARS).is_some() {
            ids.push(self.unknown);
            return;
        }
        let mut start = 0;
        while start < word.len() {
            let rest = &word[start..];
            let table = if start == 0 {
                &self.initial
            } else {
                &self.continuation
            };
            // Substrings longer than the longest piece cannot match: start there.
            let longest = rest
                .char_indices()
                .nth(self.max_piece_chars)
                .map_or(rest.len(), |(end, _)| end);
            let found = (1..=longest)
                .rev()
                .filter(|end| rest.is_char_boundary(*end))
                .find_map(|end| table.get(&rest[..end]).map(|id| (end, *id)));
            match found {
                Some((length, id)) => {
                    ids.push(id);
                    start += length;
                }
                None => {
                    ids.truncate(first);
                    ids.push(self.unknown);
                    return;
                }
            }
        }
    }
}

/// The word-initial and the `##` piece tables, and the longest piece in characters.
fn piece_tables(tokens: &[&'static str]) -> Result<(PieceTable, PieceTable, usize), String> {
    let mut initial = PieceTable::with_capacity_and_hasher(tokens.len(), Default::default());
    let mut continuation =
        PieceTable::with_capacity_and_hasher(tokens.len() / 4, Default::default());
    let mut max_piece_chars = 1;
    for (row, token) in tokens.iter().enumerate() {
        let row = u32::try_from(row).map_err(|_| "static-minilm: too many rows".to_owned())?;
        let (table, piece) = match token.strip_prefix(CONTINUATION) {
            Some(piece) if !piece.is_empty() => (&mut continuation, piece),
            _ => (&mut initial, *token),
        };
        table.insert(piece, row);
        max_piece_chars = max_piece_chars.max(piece.chars().count());
    }
    Ok((initial, continuation, max_piece_chars))
}

/// Cosine similarity of two vectors (0 when either is zero).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let (mut dot, mut norm_a, mut norm_b) = (0.0f32, 0.0f32, 0.0f32);
    for (x, y) in a.iter().zip(b) {
        dot += x * y;
        norm_a += x * x;
        norm_b += y * y;
    }
    let denominator = (norm_a * norm_b).sqrt();
    if denominator > 0.0 {
        dot / denominator
    } else {
        0.0
    }
}

/// BERT's basic tokenizer: calls `emit(normalised word, byte span in text, is punctuation)` for
/// each word, in order.
fn split_words(text: &str, emit: impl FnMut(&str, Range<usize>, bool)) {
    let mut words = WordSplitter {
        word: String::new(),
        span: 0..0,
        emit,
    };
    let mut ideograph = String::new();
    for (offset, c) in text.char_indices() {
        let span = offset..offset + c.len_utf8();
        if is_removed(c) {
            continue;
        }
        if is_space(c) {
            words.flush();
        } else if is_cjk_ideograph(c) {
            words.flush();
            ideograph.clear();
            normalize_char(c, |n| ideograph.push(n));
            (words.emit)(&ideograph, span, false);
        } else {
            normalize_char(c, |n| words.push(n, &span));
        }
    }
    words.flush();
}

/// The word being read, and where finished words go.
struct WordSplitter<F> {
    word: String,
    span: Range<usize>,
    emit: F,
}

impl<F: FnMut(&str, Range<usize>, bool)> WordSplitter<F> {
    /// Adds one normalised character that came from `span` of the text.
    fn push(&mut self, c: char, span: &Range<usize>) {
        if is_punctuation(c) {
            self.flush();
            (self.emit)(c.encode_utf8(&mut [0u8; 4]), span.clone(), true);
        } else {
            if self.word.is_empty() {
                self.span.start = span.start;
            }
            self.word.push(c);
            self.span.end = span.end;
        }
    }

    fn flush(&mut self) {
        if !self.word.is_empty() {
            (self.emit)(&self.word, self.span.clone(), false);
            self.word.clear();
        }
    }
}

/// NFD without non-spacing marks, then lowercase.
fn normalize_char(c: char, mut out: impl FnMut(char)) {
    if c.is_ascii() {
        out(c.to_ascii_lowercase());
        return;
    }
    unicode_normalization::char::decompose_canonical(c, |d| {
        if get_general_category(d) != GeneralCategory::NonspacingMark {
            d.to_lowercase().for_each(&mut out);
        }
    });
}

/// Dropped by BERT's cleaning: NUL, U+FFFD and control, format and private-use characters
/// (tab, newline and carriage return are spaces instead).
fn is_removed(c: char) -> bool {
    if matches!(c, '\t' | '\n' | '\r') {
        return false;
    }
    c == '\0'
        || c == '\u{fffd}'
        || matches!(
            get_general_category(c),
            GeneralCategory::Control | GeneralCategory::Format | GeneralCategory::PrivateUse
        )
}

fn is_space(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r') || c.is_whitespace()
}

/// ASCII punctuation (which includes symbols such as `$+<=>^|~`) and Unicode punctuation.
fn is_punctuation(c: char) -> bool {
    c.is_ascii_punctuation()
        || matches!(
            get_general_category(c),
            GeneralCategory::ConnectorPunctuation
                | GeneralCategory::DashPunctuation
                | GeneralCategory::ClosePunctuation
                | GeneralCategory::FinalPunctuation
                | GeneralCategory::InitialPunctuation
                | GeneralCategory::OtherPunctuation
                | GeneralCategory::OpenPunctuation
        )
}

/// The CJK Unified Ideographs blocks, which BERT splits into single characters.
fn is_cjk_ideograph(c: char) -> bool {
    matches!(
        u32::from(c),
        0x4E00..=0x9FFF
            | 0x3400..=0x4DBF
            | 0x20000..=0x2A6DF
            | 0x2A700..=0x2B73F
            | 0x2B740..=0x2B81F
            | 0x2B920..=0x2CEAF
            | 0xF900..=0xFAFF
            | 0x2F800..=0x2FA1F
    )
}

/// The semantic cache's embedder over the static model.
#[derive(Debug, Clone, Copy)]
pub struct StaticEmbedder {
    model: &'static StaticModel,
}

impl StaticEmbedder {
    /// The embedded model (built once per process).
    pub fn new() -> Result<Self, String> {
        StaticModel::get().map(|model| Self { model })
    }

    pub fn model(&self) -> &'static StaticModel {
        self.model
    }
}

#[async_trait]
impl Embedder for StaticEmbedder {
    fn name(&self) -> &'static str {
        "static"
    }

    fn default_threshold(&self) -> f32 {
        STATIC_THRESHOLD
    }

    async fn embed(&self, text: &str, _tokens: &[Token]) -> Result<Embedding, EmbedError> {
        Ok(Embedding::Dense(self.model.sentence_embedding(text)))
    }

    fn word_vectors(&self) -> Option<&dyn super::verify::WordVectors> {
        Some(self.model)
    }
}

/// Verification aligns words the lexicon does not relate by the cosine of their vectors (a
/// word's or phrase's vector: the mean of its WordPiece rows; `_` joins a phrasal verb).
impl super::verify::WordVectors for StaticModel {
    fn similarity(&self, a: &str, b: &str) -> Option<f32> {
        let vector = |word: &str| self.phrase_vector(&word.replace('_', " "));
        let (a, b) = (vector(a), vector(b));
        let similarity = cosine(&a, &b);
        similarity.is_finite().then_some(similarity)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use rand::{Rng, SeedableRng, rngs::StdRng};
    use sha2::{Digest, Sha256};

    use super::*;

    /// Expected tokens and embeddings, written by models/distill.py with the Python
    /// `tokenizers` package and numpy.
    static FIXTURE: &str = include_str!(model_file!("fixture.json"));
    static MANIFEST: &str = include_str!(model_file!("MANIFEST.sha256"));

    fn model() -> &'static StaticModel {
        StaticModel::get().expect("the embedded model loads")
    }

    fn fixture() -> Value {
        serde_json::from_str(FIXTURE).unwrap()
    }

    fn token_strings(text: &str) -> Vec<&'static str> {
        let model = model();
        model
            .tokenize(text)
            .ids
            .iter()
            .map(|id| model.token(*id).unwrap())
            .collect()
    }

    fn expected_tokens(case: &Value) -> Vec<&str> {
        case["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap())
            .collect()
    }

    #[test]
    fn the_model_loads_from_the_binary() {
        let model = model();
        assert_eq!(model.dims(), 256);
        assert!(model.sentence_dims() <= model.dims());
        assert_eq!(model.token(model.unknown()), Some("[UNK]"));
        assert_eq!(token_strings("hello"), ["hello"]);
    }

    #[test]
    fn committed_files_match_the_manifest() {
        let files: [(&str, &[u8]); 7] = [
            ("vectors.bin", files::VECTORS),
            ("scales.f32", files::SCALES),
            ("vocab.txt", files::VOCAB.as_bytes()),
            ("config.json", files::CONFIG.as_bytes()),
            ("fixture.json", FIXTURE.as_bytes()),
            ("LICENSE", include_bytes!(model_file!("LICENSE"))),
            ("NOTICE", include_bytes!(model_file!("NOTICE"))),
        ];
        let manifest: HashMap<&str, &str> = MANIFEST
            .lines()
            .filter_map(|line| line.split_once("  "))
            .map(|(digest, name)| (name, digest))
            .collect();
        assert_eq!(manifest.len(), files.len(), "{MANIFEST}");
        for (name, bytes) in files {
            let digest: String = Sha256::digest(bytes)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            assert_eq!(manifest.get(name), Some(&digest.as_str()), "{name}");
        }
    }

    #[test]
    fn wordpiece_matches_the_reference_tokenizer() {
        let fixture = fixture();
        let sentences = fixture["sentences"].as_array().unwrap();
        let fuzz = fixture["fuzz"].as_array().unwrap();
        assert!(sentences.len() >= 20 && fuzz.len() >= 100);
        for case in sentences.iter().chain(fuzz) {
            let text = case["text"].as_str().unwrap();
            assert_eq!(token_strings(text), expected_tokens(case), "{text:?}");
        }
    }

    #[test]
    fn tricky_inputs_tokenize_as_bert_does() {
        assert_eq!(token_strings(""), Vec::<&str>::new());
        assert_eq!(token_strings(" \t\n "), Vec::<&str>::new());
        assert_eq!(token_strings(&"a".repeat(101)), ["[UNK]"]);
        assert_eq!(token_strings("Café"), ["cafe"]);
        assert_eq!(token_strings("e-mail!"), ["e", "-", "mail", "!"]);
        assert_eq!(token_strings("東京"), ["東", "京"]);
        assert_eq!(token_strings("a\u{200b}b"), ["ab"]);
    }

    #[test]
    fn sentence_embeddings_match_the_script() {
        let model = model();
        for case in fixture()["sentences"].as_array().unwrap() {
            let text = case["text"].as_str().unwrap();
            let expected: Vec<f32> = case["embedding"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
                .collect();
            let actual = model.sentence_embedding(text);
            assert_eq!(actual.len(), expected.len(), "{text:?}");
            for (a, e) in actual.iter().zip(&expected) {
                assert!((a - e).abs() < 1e-4, "{text:?}: {a} vs {e}");
            }
            if expected.iter().any(|v| *v != 0.0) {
                assert!(cosine(&actual, &expected) > 1.0 - 1e-3, "{text:?}");
            }
        }
    }

    #[test]
    fn word_vectors_carry_spans_and_flags() {
        let model = model();
        let text = "Send the e-mail to zzqxjv";
        let words = model.word_vectors(text);
        let spelled: Vec<&str> = words.words.iter().map(|w| &text[w.span.clone()]).collect();
        assert_eq!(spelled, ["Send", "the", "e", "-", "mail", "to", "zzqxjv"]);
        assert!(words.words[3].punctuation && !words.words[2].punctuation);
        assert!(words.words.iter().all(|w| w.known));
        let long = "x".repeat(120);
        let unknown = model.word_vectors(&long);
        assert!(!unknown.words[0].known);
        assert!(unknown.vector(0).iter().all(|v| *v == 0.0));
        assert_eq!(words.vector(0).len(), model.dims());
    }

    #[test]
    fn word_vectors_place_variants_together() {
        let model = model();
        let similarity =
            |a: &str, b: &str| cosine(&model.phrase_vector(a), &model.phrase_vector(b));
        assert!(similarity("colour", "color") > 0.9);
        assert!(similarity("email", "e-mail") > 0.7);
        assert!(similarity("colour", "spanish") < 0.5);
        // A one-word text's word vector is its phrase vector.
        let word = model.word_vectors("analysis");
        assert!(cosine(word.vector(0), &model.phrase_vector("analysis")) > 0.9999);
    }

    #[test]
    fn word_similarities_match_the_script() {
        let model = model();
        let words = fixture()["words"].as_array().unwrap().clone();
        assert!(words.len() >= 17);
        for pair in words {
            let (a, b) = (pair["a"].as_str().unwrap(), pair["b"].as_str().unwrap());
            let expected = pair["cosine"].as_f64().unwrap() as f32;
            let actual = cosine(&model.phrase_vector(a), &model.phrase_vector(b));
            assert!(
                (actual - expected).abs() < 1e-4,
                "{a}/{b}: {actual} vs {expected}"
            );
        }
    }

    #[test]
    fn random_unicode_never_panics() {
        let model = model();
        let mut rng = StdRng::seed_from_u64(17);
        for _ in 0..2_000 {
            let length = rng.random_range(0..60);
            let text: String = (0..length)
                .map(|_| match rng.random_range(0..4) {
                    0 => char::from(rng.random_range(0u8..128)),
                    1 => char::from_u32(rng.random_range(0..0x3000)).unwrap_or('x'),
                    2 => char::from_u32(rng.random_range(0..0x11_0000)).unwrap_or(' '),
                    _ => ' ',
                })
                .collect();
            let embedding = model.sentence_embedding(&text);
            let norm: f32 = embedding.iter().map(|v| v * v).sum::<f32>().sqrt();
            assert!(norm == 0.0 || (norm - 1.0).abs() < 1e-4, "{text:?}");
            let tokens = model.tokenize(&text);
            let mut next_piece = 0;
            let mut last_end = 0;
            for word in &tokens.words {
                assert_eq!(word.pieces.start, next_piece);
                assert!(!word.pieces.is_empty());
                assert!(word.span.start >= last_end && word.span.end > word.span.start);
                assert!(text.get(word.span.clone()).is_some());
                next_piece = word.pieces.end;
                last_end = word.span.end;
            }
            assert_eq!(next_piece, tokens.ids.len());
            let words = model.word_vectors(&text);
            assert!((0..words.len()).all(|i| words.vector(i).iter().all(|v| v.is_finite())));
        }
    }

    #[tokio::test]
    async fn the_embedder_gives_unit_dense_vectors() {
        let embedder = StaticEmbedder::new().unwrap();
        assert_eq!(embedder.name(), "static");
        let a = embedder
            .embed("How do I restart my web app?", &[])
            .await
            .unwrap();
        let b = embedder
            .embed("How can I restart my web application?", &[])
            .await
            .unwrap();
        let c = embedder
            .embed("Translate good morning into Spanish.", &[])
            .await
            .unwrap();
        assert!((a.similarity(&a) - 1.0).abs() < 1e-4);
        assert!(a.similarity(&b) > embedder.default_threshold());
        assert!(a.similarity(&c) < embedder.default_threshold());
    }

    #[tokio::test]
    async fn the_semantic_cache_serves_paraphrases_with_it() {
        use crate::{
            clock::Clock,
            context::{Api, CallContext},
            semantic::{CacheConfig, SemanticCache},
        };
        let cache = SemanticCache::new(
            std::sync::Arc::new(StaticEmbedder::new().unwrap()),
            CacheConfig::default(),
            Clock::new(),
        );
        assert_eq!(cache.embedder_name(), "static");
        assert_eq!(cache.threshold(), STATIC_THRESHOLD);
        let context = CallContext::for_subscription("s", Api::OpenAi);
        let prompt = |text: &str| {
            let request = serde_json::json!({"messages": [{"role": "user", "content": text}]});
            cache
                .prompt(&context, "m", request.as_object().unwrap())
                .unwrap()
        };
        let answer = serde_json::json!({"choices": [{"message": {"content": "Restart it."}, "finish_reason": "stop"}]});
        cache
            .keep(prompt("How do I restart my web app?"), &answer)
            .await;
        let hit = cache.find(&prompt("How can I restart my web app?")).await;
        assert_eq!(hit.as_ref(), Some(&answer));
        let miss = cache
            .find(&prompt("Translate good morning into Spanish."))
            .await;
        assert!(miss.is_none());
    }
}

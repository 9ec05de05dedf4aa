//! What the verifier knows about English words, beyond their vectors: WordNet's relations.
//!
//! Vectors place "enable" and "disable", or "directed" and "produced", close together; they cannot
//! say which alike words mean the same and which are opposites. The lexicon
//! (`models/lexicon/lexicon.tsv`, built from WordNet 3.1 by `build_lexicon.py` beside it) records
//! for each word its concepts (two words sharing one mean the same in some common sense), its
//! antonyms, and whether it is a unit of measurement or money. Here it is loaded once, lazily
//! ([`warm`] forces it at startup), and reached through a word's lemmas: the dictionary forms its
//! inflections reduce to, by suffix rules or, for irregular forms ("built", "children"), by the
//! table `models/lexicon/irregular.tsv` (from LemmInflect, built by the same script).
//!
//! Lookups allocate nothing, except for the rare word joined from two ("turn_off"), whose
//! lexicon key is spelt with a space.

use std::{
    collections::{HashMap, HashSet},
    sync::LazyLock,
};

use text_analysis::FnvBuildHasher;

const LEXICON_TSV: &str = include_str!("../../models/lexicon/lexicon.tsv");
/// Irregular noun and verb forms and their lemmas: `form<TAB>lemma[ lemma]` ("wrote\twrite").
const IRREGULAR_TSV: &str = include_str!("../../models/lexicon/irregular.tsv");
/// The static model's vocabulary (word pieces, one a line): the words it knows whole.
const VOCABULARY: &str = include_str!("../../models/static-minilm/vocab.txt");

/// Inflectional endings and what replaces them (WordNet's morphy rules, plus adverbs in -ly):
/// "libraries" → "library", "running" → "runn"/"run" (see [`lemmas`]), "largest" → "larg"/"large".
const MORPHY: &[(&str, &str)] = &[
    ("ies", "y"),
    ("es", ""),
    ("es", "e"),
    ("s", ""),
    ("ed", ""),
    ("ed", "e"),
    ("ing", ""),
    ("ing", "e"),
    ("er", ""),
    ("est", ""),
    ("ier", "y"),
    ("iest", "y"),
    ("ied", "y"),
    ("ying", "ie"),
    ("ses", "s"),
    ("xes", "x"),
    ("ches", "ch"),
    ("shes", "sh"),
    ("men", "man"),
    ("ily", "y"),
    ("ly", ""),
    ("ally", "al"),
];

/// Endings after which a doubled final consonant is undone: "stopped" → "stop".
const DOUBLING_ENDINGS: &[&str] = &["ed", "ing", "er", "est"];

/// British spellings and their American forms: "colour"/"color", "analyse"/"analyze".
const UK_US: &[(&str, &str)] = &[
    ("isation", "ization"),
    ("ise", "ize"),
    ("ised", "ized"),
    ("ising", "izing"),
    ("yse", "yze"),
    ("our", "or"),
    ("tre", "ter"),
    ("tres", "ters"),
    ("ogue", "og"),
    ("ence", "ense"),
    ("lled", "led"),
    ("lling", "ling"),
    ("oe", "e"),
    ("ae", "e"),
    ("gh", "g"),
    ("que", "ck"),
    ("mme", "m"),
];

/// Prefixes that make a word's opposite: "install"/"uninstall", "able"/"disable".
const NEGATING_PREFIXES: &[&str] = &["un", "dis", "de", "in", "im", "non", "anti", "ir", "il"];

/// Senses today's usage gives that WordNet 3.1 lacks: software's verbs (WordNet's "delete" is
/// only a kind of "remove"; its "enable" means "make able", not "turn on") and two noun pairs.
/// Each is pinned by `usage_senses_are_ones_the_model_lacks`, which fails once WordNet or the
/// vectors relate the pair themselves, so the list only ever shrinks. Phrases are spelt as in
/// the lexicon, with a space.
pub(super) const USAGE_SENSES: &[(&str, &str)] = &[
    ("delete", "remove"),
    ("disable", "turn off"),
    ("disable", "switch off"),
    ("enable", "turn on"),
    ("enable", "switch on"),
    ("configure", "set up"),
    ("register", "sign up"),
    ("advantage", "benefit"),
    ("symptom", "sign"),
];

/// The most lemmas a word can have: itself, its irregular lemmas (two at most), four endings that
/// can match at once ("-ies": -ies, -es twice, -s) and an undoubled consonant, with room to
/// spare (a test checks the bound).
pub const MAX_LEMMAS: usize = 10;

/// 64-bit words of a concept signature (see [`Lemmas`]).
const SIGNATURE_WORDS: usize = 16;

/// FNV-1a maps: the keys are short words, for which SipHash's setup dominates a lookup.
pub(super) type FastMap<K, V> = HashMap<K, V, FnvBuildHasher>;

/// One word of the lexicon.
#[derive(Debug, Clone, Copy)]
pub struct Entry {
    /// Concept ids, sorted and distinct.
    pub concepts: &'static [u32],
    pub antonyms: &'static [&'static str],
    /// A unit of measurement or money.
    pub unit: bool,
    /// The concepts that are units (sorted): two units are the same unit only through one of
    /// these ("minute" and "second" share the concept "instant", not a unit).
    pub unit_concepts: &'static [u32],
}

/// Where an entry's lists sit in the lexicon's shared arrays.
#[derive(Clone, Copy)]
struct Stored {
    concepts: (u32, u32),
    antonyms: (u32, u32),
    unit: bool,
    unit_concepts: (u32, u32),
}

struct Lexicon {
    words: FastMap<&'static str, Stored>,
    concept_ids: Vec<u32>,
    antonym_words: Vec<&'static str>,
}

static LEXICON: LazyLock<Lexicon> = LazyLock::new(|| parse(LEXICON_TSV));

/// Irregular form → its lemmas, space-separated.
static IRREGULAR: LazyLock<FastMap<&'static str, &'static str>> = LazyLock::new(|| {
    IRREGULAR_TSV
        .lines()
        .filter_map(|line| line.split_once('\t'))
        .collect()
});

static VOCABULARY_WORDS: LazyLock<HashSet<&'static str, FnvBuildHasher>> =
    LazyLock::new(|| VOCABULARY.lines().collect());

/// Loads the lexicon and the vocabulary now rather than on the first lookup.
pub fn warm() {
    LazyLock::force(&LEXICON);
    LazyLock::force(&IRREGULAR);
    LazyLock::force(&VOCABULARY_WORDS);
}

/// Parses `word<TAB>ids<TAB>antonyms<TAB>flags<TAB>unit ids` lines (antonyms comma-separated,
/// as one may have two words); lists share two arrays, so the whole
/// lexicon takes three allocations' worth of growth rather than two per word.
fn parse(text: &'static str) -> Lexicon {
    let mut lexicon = Lexicon {
        words: FastMap::default(),
        concept_ids: Vec::new(),
        antonym_words: Vec::new(),
    };
    for line in text.lines() {
        let mut fields = line.split('\t');
        let (Some(word), Some(ids), Some(antonyms), Some(flags)) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let concepts_start = lexicon.concept_ids.len();
        lexicon.concept_ids.extend(
            ids.split_whitespace()
                .filter_map(|id| id.parse::<u32>().ok()),
        );
        let antonyms_start = lexicon.antonym_words.len();
        if !antonyms.is_empty() {
            lexicon.antonym_words.extend(antonyms.split(','));
        }
        let units_start = lexicon.concept_ids.len();
        lexicon.concept_ids.extend(
            fields
                .next()
                .unwrap_or_default()
                .split_whitespace()
                .filter_map(|id| id.parse::<u32>().ok()),
        );
        let span = |start: usize, end: usize| {
            (
                u32::try_from(start).unwrap_or(u32::MAX),
                u32::try_from(end).unwrap_or(u32::MAX),
            )
        };
        let stored = Stored {
            concepts: span(concepts_start, units_start),
            antonyms: span(antonyms_start, lexicon.antonym_words.len()),
            unit: flags == "u",
            unit_concepts: span(units_start, lexicon.concept_ids.len()),
        };
        lexicon.words.insert(word, stored);
    }
    lexicon
}

impl Lexicon {
    fn get(&'static self, word: &str) -> Option<(&'static str, Entry)> {
        let (key, stored) = self.words.get_key_value(word)?;
        let slice = |(start, end): (u32, u32)| start as usize..end as usize;
        Some((
            key,
            Entry {
                concepts: self
                    .concept_ids
                    .get(slice(stored.concepts))
                    .unwrap_or_default(),
                antonyms: self
                    .antonym_words
                    .get(slice(stored.antonyms))
                    .unwrap_or_default(),
                unit: stored.unit,
                unit_concepts: self
                    .concept_ids
                    .get(slice(stored.unit_concepts))
                    .unwrap_or_default(),
            },
        ))
    }
}

/// The lexicon's entry for `word` as it is spelt.
pub fn entry(word: &str) -> Option<Entry> {
    LEXICON.get(word).map(|(_, entry)| entry)
}

/// The lexicon's own copy of `word`, if it holds the word (a token can then borrow it).
pub fn interned(word: &str) -> Option<&'static str> {
    LEXICON.get(word).map(|(key, _)| key)
}

/// The entry for a word that may be joined from two with `_` ("turn_off"); the lexicon spells
/// those with a space.
fn entry_of_joined(word: &str) -> Option<Entry> {
    if word.as_bytes().contains(&b'_') {
        entry(&word.replace('_', " "))
    } else {
        entry(word)
    }
}

/// Whether the static model's vocabulary holds `word` whole ("email", "online").
pub fn in_vocabulary(word: &str) -> bool {
    VOCABULARY_WORDS.contains(word)
}

/// A word's lemmas: the forms the lexicon knows among the word itself and what its endings
/// reduce to, or the word alone when it knows none.
#[derive(Debug, Clone, Copy)]
pub struct Lemmas<'a> {
    words: [&'a str; MAX_LEMMAS],
    entries: [Option<Entry>; MAX_LEMMAS],
    len: usize,
    /// No form was known: the single lemma is the word itself.
    unknown: bool,
    /// Some lemma has antonyms.
    antonyms: bool,
    /// A bit per concept id (modulo 1024): two words whose signatures don't meet share no
    /// concept, which settles most pairs without merging their lists.
    signature: [u64; SIGNATURE_WORDS],
    /// Bit `i`: a lemma is the first word of `USAGE_SENSES[i]`; bit `USAGE_SIDE + i`: the
    /// second.
    usage: u64,
}

/// Where the second words' bits start in [`Lemmas::usage`].
const USAGE_SIDE: usize = 32;
const _: () = assert!(USAGE_SENSES.len() <= USAGE_SIDE);

impl<'a> Lemmas<'a> {
    pub fn as_slice(&self) -> &[&'a str] {
        &self.words[..self.len]
    }

    /// The first lemma: the word itself when known, else its first known reduction.
    pub fn first(&self) -> &'a str {
        self.words[0]
    }

    pub fn contains(&self, word: &str) -> bool {
        self.as_slice().contains(&word)
    }

    fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.entries[..self.len].iter().flatten()
    }

    /// Some sense of one lemma is some sense of the other's.
    pub fn share_concept(&self, other: &Lemmas<'_>) -> bool {
        self.share_wordnet_concept(other) || self.share_usage_sense(other)
    }

    /// Some sense WordNet gives one lemma is one it gives the other's.
    pub(super) fn share_wordnet_concept(&self, other: &Lemmas<'_>) -> bool {
        let meet = self
            .signature
            .iter()
            .zip(&other.signature)
            .any(|(mine, theirs)| mine & theirs != 0);
        meet && self.entries().any(|mine| {
            other
                .entries()
                .any(|theirs| sorted_intersect(mine.concepts, theirs.concepts))
        })
    }

    /// One lemma and one of `other`'s are a pair of [`USAGE_SENSES`].
    fn share_usage_sense(&self, other: &Lemmas<'_>) -> bool {
        (self.usage & (other.usage >> USAGE_SIDE)) | ((self.usage >> USAGE_SIDE) & other.usage) != 0
    }

    /// One lemma and one of `other`'s are the same unit of measurement or money.
    pub fn share_unit(&self, other: &Lemmas<'_>) -> bool {
        self.entries().any(|mine| {
            other
                .entries()
                .any(|theirs| sorted_intersect(mine.unit_concepts, theirs.unit_concepts))
        })
    }

    /// A lemma of `other` is an antonym of one of these.
    pub fn opposed_by(&self, other: &Lemmas<'_>) -> bool {
        self.antonyms
            && self.entries().any(|entry| {
                let antonym_of = |w: &&str| entry.antonyms.iter().any(|x| same_phrase(x, w));
                other.as_slice().iter().any(antonym_of)
            })
    }

    /// Some lemma is a unit of measurement or money.
    pub fn is_unit(&self) -> bool {
        self.entries().any(|entry| entry.unit)
    }

    /// Some lemma the lexicon knows as spelt is a unit (a joined word's own spelling is not
    /// looked up).
    pub fn known_unit(&self) -> bool {
        !self.unknown && self.is_unit()
    }

    fn push(&mut self, word: &'a str, entry: Option<Entry>) {
        if self.len < MAX_LEMMAS && !self.contains(word) {
            self.words[self.len] = word;
            self.entries[self.len] = entry;
            self.len += 1;
            self.antonyms |= entry.is_some_and(|e| !e.antonyms.is_empty());
            self.usage |= usage_bits(word);
            for id in entry.iter().flat_map(|e| e.concepts) {
                self.signature[(id / 64) as usize % SIGNATURE_WORDS] |= 1 << (id % 64);
            }
        }
    }
}

/// `word`'s bits in [`Lemmas::usage`].
fn usage_bits(word: &str) -> u64 {
    USAGE_SENSES
        .iter()
        .enumerate()
        .fold(0, |bits, (i, &(first, second))| {
            bits | (u64::from(same_phrase(first, word)) << i)
                | (u64::from(same_phrase(second, word)) << (USAGE_SIDE + i))
        })
}

/// `word`'s lemmas (see [`Lemmas`]). "obtained" → "obtain", "stopped" → "stop", "boxes" → "box",
/// "built" → "build"; the word itself comes first when the lexicon knows it, then its irregular
/// lemmas.
pub fn lemmas(word: &str) -> Lemmas<'_> {
    let lexicon = &*LEXICON;
    let mut known = Lemmas {
        words: [""; MAX_LEMMAS],
        entries: [None; MAX_LEMMAS],
        len: 0,
        unknown: false,
        antonyms: false,
        signature: [0; SIGNATURE_WORDS],
        usage: 0,
    };
    let mut candidate = String::new();
    let mut consider = |stem: &str, ending: &str, known: &mut Lemmas<'_>| {
        let found = if ending.is_empty() {
            lexicon.get(stem)
        } else {
            candidate.clear();
            candidate.push_str(stem);
            candidate.push_str(ending);
            lexicon.get(&candidate)
        };
        if let Some((key, entry)) = found {
            known.push(key, Some(entry));
        }
    };
    if let Some((key, entry)) = lexicon.get(word) {
        known.push(key, Some(entry));
    }
    for lemma in IRREGULAR.get(word).into_iter().flat_map(|l| l.split(' ')) {
        if let Some((key, entry)) = lexicon.get(lemma) {
            known.push(key, Some(entry));
        }
    }
    for (suffix, replacement) in MORPHY {
        if let Some(stem) = word.strip_suffix(suffix)
            && stem.chars().nth(1).is_some()
        {
            consider(stem, replacement, &mut known);
        }
    }
    for suffix in DOUBLING_ENDINGS {
        if let Some(stem) = word.strip_suffix(suffix)
            && stem.chars().nth(2).is_some()
        {
            let mut last = stem.char_indices().rev();
            if let (Some((cut, c1)), Some((_, c2))) = (last.next(), last.next())
                && c1 == c2
            {
                consider(&stem[..cut], "", &mut known);
            }
        }
    }
    if known.len == 0 {
        known.unknown = true;
        known.push(word, entry_of_joined(word));
    }
    known
}

/// The same word or phrase, a joined phrase's `_` standing for the lexicon's space ("log_out"
/// is the antonym "log out").
fn same_phrase(lexicon_form: &str, word: &str) -> bool {
    lexicon_form.len() == word.len()
        && lexicon_form
            .bytes()
            .zip(word.bytes())
            .all(|(x, y)| x == y || (x == b' ' && y == b'_'))
}

/// Whether two sorted id lists share an id, by merging them.
fn sorted_intersect(a: &[u32], b: &[u32]) -> bool {
    let (mut i, mut j) = (0, 0);
    while let (Some(x), Some(y)) = (a.get(i), b.get(j)) {
        match x.cmp(y) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => return true,
        }
    }
    false
}

/// The concepts of all of `word`'s lemmas, sorted and distinct.
pub fn concepts(word: &str) -> Vec<u32> {
    let mut ids: Vec<u32> = lemmas(word)
        .entries()
        .flat_map(|entry| entry.concepts.iter().copied())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// The antonyms of all of `word`'s lemmas.
pub fn antonyms(word: &str) -> Vec<&'static str> {
    let mut words: Vec<&'static str> = lemmas(word)
        .entries()
        .flat_map(|entry| entry.antonyms.iter().copied())
        .collect();
    words.sort_unstable();
    words.dedup();
    words
}

/// Whether some lemma of `word` is a unit of measurement or money.
pub fn is_unit(word: &str) -> bool {
    lemmas(word).is_unit()
}

/// Whether `a` and `b` are one word in British and American spelling ("colour"/"color").
pub fn spelling_variants(a: &str, b: &str) -> bool {
    // No British and American forms differ in length by more than 2 ("ogue"/"og", "mme"/"m").
    if a.len().abs_diff(b.len()) > 2 || fewer_than_4_chars(a) || fewer_than_4_chars(b) {
        return false;
    }
    let (long, short) = if a.len() >= b.len() { (a, b) } else { (b, a) };
    respelt(long.as_bytes(), short.as_bytes())
        || (long.len() == short.len() && respelt(short.as_bytes(), long.as_bytes()))
}

fn fewer_than_4_chars(word: &str) -> bool {
    // 16 bytes hold at least 4 characters
    word.len() < 4 || (word.len() < 16 && word.chars().nth(3).is_none())
}

/// Whether replacing one British spelling in `x` by its American form gives `y`: `x` is
/// P + uk + S and `y` is P + us + S, so P lies within their common prefix, S within their
/// common suffix, and uk covers all that differs; few rules and places remain to try.
fn respelt(x: &[u8], y: &[u8]) -> bool {
    // Every British form is at least as long as its American one.
    let Some(growth) = x.len().checked_sub(y.len()) else {
        return false;
    };
    let prefix = x.iter().zip(y).take_while(|(p, q)| p == q).count();
    let suffix = x
        .iter()
        .rev()
        .zip(y.iter().rev())
        .take_while(|(p, q)| p == q)
        .count();
    let differing = x.len().saturating_sub(prefix + suffix);
    UK_US.iter().any(|(uk, us)| {
        let (uk, us) = (uk.as_bytes(), us.as_bytes());
        if uk.len() - us.len() != growth || uk.len() < differing || x.len() < uk.len() {
            return false;
        }
        let rest = x.len() - uk.len();
        (rest.saturating_sub(suffix)..=prefix.min(rest))
            .any(|at| x[at..].starts_with(uk) && y[at..].starts_with(us))
    })
}

/// Whether `a` and `b` differ by a negating prefix, as words or lemmas ("uninstalled"/"install").
pub fn negation_prefix(a: &str, b: &str) -> bool {
    negation_prefix_of(&lemmas(a), a, &lemmas(b), b)
}

pub(super) fn negation_prefix_of(la: &Lemmas<'_>, a: &str, lb: &Lemmas<'_>, b: &str) -> bool {
    let forms_b = || lb.as_slice().iter().copied().chain(std::iter::once(b));
    la.as_slice()
        .iter()
        .copied()
        .chain(std::iter::once(a))
        .any(|x| {
            forms_b().any(|y| {
                let (long, short) = if x.len() > y.len() { (x, y) } else { (y, x) };
                // the prefixes are 2 to 4 letters long
                (2..=4).contains(&(long.len() - short.len()))
                    && long.ends_with(short)
                    && long
                        .get(..long.len() - short.len())
                        .is_some_and(|prefix| NEGATING_PREFIXES.contains(&prefix))
            })
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The committed files are what `build_lexicon.py` made (see MANIFEST.sha256 beside them):
    /// a hand edit fails here, and the script must be rerun to change them.
    #[test]
    fn the_committed_files_match_their_manifest() {
        use sha2::{Digest, Sha256};
        let manifest = include_str!("../../models/lexicon/MANIFEST.sha256");
        for (name, text) in [
            ("lexicon.tsv", LEXICON_TSV),
            ("irregular.tsv", IRREGULAR_TSV),
        ] {
            let digest: String = Sha256::digest(text.as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            assert!(
                manifest
                    .lines()
                    .any(|line| line == format!("{digest}  {name}")),
                "{name} is not the file the manifest records ({digest})"
            );
        }
    }

    #[test]
    fn units_have_their_symbols_and_aliases() {
        for (symbol, name) in [
            ("g", "gram"),
            ("oz", "ounce"),
            ("tbsp", "tablespoon"),
            ("degf", "fahrenheit"),
            ("km", "kilometer"),
        ] {
            assert!(is_unit(symbol) && is_unit(name), "{symbol} {name}");
            assert!(
                lemmas(symbol).share_concept(&lemmas(name)),
                "{symbol} {name}"
            );
        }
        // A short symbol that spells another word stays that word ("us": microseconds; "pm").
        assert!(!is_unit("us") && !is_unit("pm"));
        assert!(is_unit("day"), "a unit's name stays a unit");
        // One concept per unit: a teaspoon is not a tablespoon, a gram not an ounce.
        assert!(!lemmas("tsp").share_concept(&lemmas("tablespoon")));
        assert!(!lemmas("g").share_concept(&lemmas("oz")));
    }

    #[test]
    fn irregular_forms_reduce_to_their_lemmas() {
        assert!(lemmas("built").contains("build"));
        assert!(lemmas("wrote").contains("write"));
        assert!(lemmas("written").contains("write"));
        assert!(lemmas("ran").contains("run"));
        assert!(lemmas("children").contains("child"));
        assert!(lemmas("mice").contains("mouse"));
        assert!(lemmas("found").contains("find"), "a homograph keeps itself");
        assert_eq!(lemmas("found").first(), "found");
        assert!(lemmas("built").share_concept(&lemmas("constructed")));
        assert!(!lemmas("built").share_concept(&lemmas("destroyed")));
        assert!(!lemmas("best").contains("good"), "no irregular degrees");
        assert!(
            !lemmas("opera").contains("opus"),
            "no plural that is a word of its own"
        );
        // every lemma in the table is a word of the lexicon
        for (form, forms) in IRREGULAR.iter() {
            for lemma in forms.split(' ') {
                assert!(entry(lemma).is_some(), "{form} -> {lemma}");
            }
        }
    }

    #[test]
    fn every_line_of_the_lexicon_is_loaded() {
        let lines = LEXICON_TSV.lines().count();
        assert_eq!(LEXICON.words.len(), lines);
        let kilogram = entry("kilogram").unwrap();
        assert!(kilogram.unit);
        assert!(kilogram.concepts.windows(2).all(|w| w[0] < w[1]));
        assert!(
            entry("turn off").is_some(),
            "multi-word entries keep their space"
        );
    }

    #[test]
    fn lemmas_keep_known_forms_only() {
        assert_eq!(lemmas("obtained").as_slice(), ["obtain"]);
        assert_eq!(lemmas("libraries").as_slice(), ["library"]);
        assert!(lemmas("stopped").contains("stop"), "doubled consonant");
        assert!(lemmas("running").contains("run"));
        assert!(lemmas("boxes").contains("box"));
        assert_eq!(lemmas("get").first(), "get", "a known word comes first");
        assert_eq!(
            lemmas("qzxv").as_slice(),
            ["qzxv"],
            "unknown: the word alone"
        );
        assert_eq!(
            lemmas("set_up").as_slice(),
            ["set_up"],
            "a joined word stays whole"
        );
        assert_eq!(
            concepts("set_up"),
            entry("set up").unwrap().concepts,
            "and is looked up with its space"
        );
    }

    #[test]
    fn no_word_has_more_lemmas_than_room_for_them() {
        // Every ending that rules can match together, after a doubled letter.
        let mut most = 0;
        for (suffix, _) in MORPHY {
            for before in [
                "", "a", "bb", "i", "ss", "ch", "sh", "x", "y", "yy", "al", "ll",
            ] {
                let word = format!("qqqq{before}{suffix}");
                let matching = MORPHY.iter().filter(|(s, _)| word.ends_with(s)).count()
                    + DOUBLING_ENDINGS
                        .iter()
                        .filter(|s| word.ends_with(*s))
                        .count();
                most = most.max(matching + 1);
            }
        }
        let irregular = IRREGULAR
            .values()
            .map(|forms| forms.split(' ').count())
            .max()
            .unwrap();
        assert!(
            most + irregular <= MAX_LEMMAS,
            "{most} + {irregular} candidates"
        );
    }

    #[test]
    fn shared_concepts_and_antonyms() {
        assert!(lemmas("obtain").share_concept(&lemmas("get")));
        assert!(!concepts("obtain").is_empty());
        assert!(antonyms("enable").contains(&"disable"));
        assert!(lemmas("enabled").opposed_by(&lemmas("disable")));
        assert!(!lemmas("enable").opposed_by(&lemmas("obtain")));
        assert!(antonyms("first").contains(&"last"));
        // an antonym of two words, reached from a joined phrasal verb
        assert!(lemmas("log_in").opposed_by(&lemmas("log_out")));
    }

    #[test]
    fn units_are_the_same_unit_only_through_a_unit_concept() {
        assert!(lemmas("lb").share_unit(&lemmas("pounds")));
        assert!(lemmas("minutes").share_concept(&lemmas("second")));
        assert!(!lemmas("minutes").share_unit(&lemmas("second")));
        assert!(
            !lemmas("server").share_unit(&lemmas("server")),
            "not a unit"
        );
    }

    #[test]
    fn hyphenated_lemmas_are_known_written_solid() {
        assert!(lemmas("coworker").share_concept(&lemmas("colleague")));
        assert!(lemmas("co worker").share_concept(&lemmas("colleague")));
        // unless the solid form is a word of its own: "co-op" is not a chicken coop
        assert!(lemmas("co op").share_concept(&lemmas("cooperative")));
        assert!(!lemmas("coop").share_concept(&lemmas("cooperative")));
        assert!(!lemmas("recreate").share_concept(&lemmas("re create")));
    }

    #[test]
    fn negating_prefixes() {
        assert!(negation_prefix("install", "uninstall"));
        assert!(negation_prefix("installed", "uninstall"), "through a lemma");
        assert!(!negation_prefix("install", "reinstall"));
    }

    #[test]
    fn british_and_american_spellings() {
        assert!(spelling_variants("colour", "color"));
        assert!(spelling_variants("optimise", "optimize"));
        assert!(spelling_variants("analyze", "analyse"));
        assert!(spelling_variants("centre", "center"));
        assert!(!spelling_variants("color", "colon"));
        assert!(!spelling_variants("ise", "ize"), "too short");
    }

    #[test]
    fn units() {
        assert!(is_unit("kilogram"));
        assert!(is_unit("kilograms"));
        assert!(is_unit("pounds"));
        assert!(!is_unit("server"));
    }

    #[test]
    fn vocabulary() {
        assert!(in_vocabulary("the"));
        assert!(in_vocabulary("email"));
        assert!(!in_vocabulary("set_up"));
        assert!(!in_vocabulary("qzxv"));
    }

    #[test]
    fn sorted_lists_intersect_by_merge() {
        assert!(sorted_intersect(&[1, 4, 9], &[2, 4]));
        assert!(!sorted_intersect(&[1, 3], &[2, 4]));
        assert!(!sorted_intersect(&[], &[2]));
    }
}

//! Text analysis for the built-in embedder and the exact-match key (the verifier and the
//! inverted index read `analysis`, which relates words through the WordNet lexicon).
//!
//! A prompt becomes a list of [`Token`]s: lowercased, contractions expanded, punctuation dropped,
//! each word reduced to a light stem, and classified (light word, number, negation, entity,
//! content word). There is no synonym table here: which words mean the same is the lexicon's
//! and the embedding model's business.
//!
//! Contractions and the stemmer come from the shared `text-analysis` crate.

use text_analysis::expand_contractions;
pub use text_analysis::stem;

/// What a token contributes to meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Function words, auxiliaries and politeness: they rarely change the answer.
    Light,
    /// A numeral, in digits or words; its value is in `Token::canonical`.
    Number,
    /// not, no, never, without…
    Negation,
    /// A name, acronym or identifier: capitalized mid-sentence, all caps, code-like, quoted.
    Entity,
    /// Everything else: the words that carry the question.
    Content,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// The lowercased surface form.
    pub surface: String,
    /// The stem after equivalences; what comparisons use.
    pub canonical: String,
    pub kind: Kind,
}

/// Function words, auxiliaries, pronouns, question words and polite fillers.
///
/// Direction words (in/out, up/down, on/off, to/from…) are deliberately absent: they change
/// answers ("turn on" vs "turn off").
/// Not `text_analysis::STOP_WORDS`, which counts direction words and negations as stop words.
const LIGHT_WORDS: &[&str] = &[
    "a",
    "an",
    "the",
    "i",
    "me",
    "my",
    "mine",
    "you",
    "your",
    "yours",
    "we",
    "us",
    "our",
    "it",
    "its",
    "they",
    "them",
    "their",
    "he",
    "she",
    "him",
    "her",
    "his",
    "is",
    "are",
    "was",
    "were",
    "be",
    "been",
    "being",
    "am",
    "do",
    "does",
    "did",
    "doing",
    "done",
    "can",
    "could",
    "should",
    "would",
    "will",
    "shall",
    "may",
    "might",
    "must",
    "have",
    "has",
    "had",
    "how",
    "what",
    "which",
    "who",
    "whom",
    "whose",
    "when",
    "where",
    "please",
    "kindly",
    "tell",
    "show",
    "give",
    "let",
    "of",
    "for",
    "at",
    "by",
    "with",
    "about",
    "as",
    "this",
    "that",
    "these",
    "those",
    "there",
    "here",
    "some",
    "any",
    "just",
    "also",
    "so",
    "and",
    "or",
    "if",
    "then",
    "stay",
    "remain",
    "say",
    "know",
    "want",
    "like",
    "hey",
    "hi",
    "hello",
    "thanks",
    "thank",
    "okay",
    "ok",
    "really",
    "exactly",
    "actually",
    "basically",
    "quick",
    "quickly",
    "briefly",
    "mean",
    "way",
    "get",
    // Directional prepositions carry meaning through their objects, which the verifier
    // compares (what follows "to" must agree); the words themselves are light.
    "to",
    "from",
    "into",
    "onto",
    "than",
    "toward",
    "towards",
    "versus",
    "vs",
    "per",
];

/// Words that flip a statement.
const NEGATIONS: &[&str] = &[
    "not", "no", "never", "none", "nothing", "nobody", "neither", "nor", "without", "cannot",
];

/// Ordinals the built-in embedder counts as numbers (cardinals come from `text_analysis`).
const ORDINAL_WORDS: &[(&str, &str)] = &[
    ("first", "#1"),
    ("second", "#2"),
    ("third", "#3"),
    ("fourth", "#4"),
    ("fifth", "#5"),
];

/// Splits `text` into classified tokens.
pub fn tokenize(text: &str) -> Vec<Token> {
    let expanded = expand_contractions(text);
    let mut tokens = Vec::new();
    let mut sentence_start = true;
    let mut in_quote = false;
    for raw in split_words(&expanded) {
        match raw {
            RawPiece::SentenceEnd => {
                sentence_start = true;
                continue;
            }
            RawPiece::Quote => {
                in_quote = !in_quote;
                continue;
            }
            RawPiece::Word(word) => {
                let token = classify(word, sentence_start, in_quote);
                sentence_start = false;
                tokens.push(token);
            }
        }
    }
    tokens
}

/// The exact-match form of a prompt: tokens' surfaces joined by single spaces.
pub fn normalize(text: &str) -> String {
    let tokens = tokenize(text);
    let mut out = String::with_capacity(text.len());
    for token in &tokens {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(&token.surface);
    }
    out
}

enum RawPiece<'a> {
    Word(&'a str),
    SentenceEnd,
    Quote,
}

/// Not `text_analysis::words`: identifiers must stay whole and sentence ends and quotes matter.
/// Words are runs of letters, digits and inner `.`, `_`, `-`, `/`, `+`, `#` (so `v1.2`,
/// `max_tokens`, `C#`, `gpt-4o` stay whole); sentence ends and quotes are reported too.
fn split_words(text: &str) -> Vec<RawPiece<'_>> {
    let mut pieces = Vec::new();
    let bytes: Vec<(usize, char)> = text.char_indices().collect();
    let mut i = 0;
    while i < bytes.len() {
        let (start, c) = bytes[i];
        if c.is_alphanumeric() {
            let mut j = i + 1;
            while j < bytes.len() {
                let ch = bytes[j].1;
                let inner = matches!(ch, '.' | '_' | '-' | '/' | '+' | '#' | '\'')
                    && bytes.get(j + 1).is_some_and(|(_, n)| n.is_alphanumeric());
                if ch.is_alphanumeric() || inner || (ch == '#' || ch == '+') && j > i {
                    j += 1;
                } else {
                    break;
                }
            }
            let end = bytes.get(j).map_or(text.len(), |(at, _)| *at);
            pieces.push(RawPiece::Word(&text[start..end]));
            i = j;
        } else {
            match c {
                '.' | '!' | '?' | ';' | ':' | '\n' => pieces.push(RawPiece::SentenceEnd),
                '"' | '`' | '“' | '”' => pieces.push(RawPiece::Quote),
                _ => {}
            }
            i += 1;
        }
    }
    pieces
}

fn classify(word: &str, sentence_start: bool, in_quote: bool) -> Token {
    let lower = word.to_lowercase();
    let has_digit = lower.chars().any(|c| c.is_ascii_digit());
    let all_digits = lower
        .chars()
        .all(|c| c.is_ascii_digit() || c == '.' || c == ',');
    if has_digit && all_digits {
        return Token {
            canonical: lower.replace(',', ""),
            surface: lower,
            kind: Kind::Number,
        };
    }
    if let Some(value) = text_analysis::number_word(&lower).or_else(|| {
        ORDINAL_WORDS
            .iter()
            .find(|(w, _)| *w == lower)
            .map(|(_, value)| *value)
    }) {
        return Token {
            surface: lower,
            canonical: value.to_owned(),
            kind: Kind::Number,
        };
    }
    if NEGATIONS.contains(&lower.as_str()) {
        return Token {
            canonical: "not".to_owned(),
            surface: lower,
            kind: Kind::Negation,
        };
    }
    let first_upper = word.chars().next().is_some_and(char::is_uppercase);
    let rest_upper = word.chars().skip(1).any(char::is_uppercase);
    let code_like = has_digit || word.contains(['_', '.', '/', '#', '+']);
    let is_entity =
        in_quote || code_like || rest_upper || (first_upper && !sentence_start && lower != "i");
    if is_entity {
        return Token {
            canonical: lower.clone(),
            surface: lower,
            kind: Kind::Entity,
        };
    }
    if LIGHT_WORDS.contains(&lower.as_str()) {
        return Token {
            canonical: lower.clone(),
            surface: lower,
            kind: Kind::Light,
        };
    }
    let canonical = stem(&lower);
    let kind = if LIGHT_WORDS.contains(&canonical.as_str()) {
        Kind::Light
    } else {
        Kind::Content
    };
    Token {
        surface: lower,
        canonical,
        kind,
    }
}

/// Whether two content stems are forms of one word: equal, or one is the other plus a
/// derivational suffix ("paint"/"painter", "configur"/"configuration").
pub fn same_word(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    if short.len() < 4 || !long.starts_with(short) {
        return false;
    }
    const DERIVATIONS: &[&str] = &[
        "er", "or", "ion", "ation", "ment", "ance", "ence", "al", "ive", "ly", "ness", "ity",
        "able", "ible", "est", "ful",
    ];
    DERIVATIONS.contains(&&long[short.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(text: &str) -> Vec<(String, Kind)> {
        tokenize(text)
            .into_iter()
            .map(|t| (t.canonical, t.kind))
            .collect()
    }

    #[test]
    fn contractions_numbers_and_entities() {
        let tokens = canon("What's the default port of the MCP server? Don't guess: 404 or ten.");
        assert!(tokens.contains(&("mcp".to_owned(), Kind::Entity)));
        assert!(tokens.contains(&("not".to_owned(), Kind::Negation)));
        assert!(tokens.contains(&("404".to_owned(), Kind::Number)));
        assert!(tokens.contains(&("10".to_owned(), Kind::Number)));
        assert!(tokens.contains(&("port".to_owned(), Kind::Content)));
        // Sentence-initial capitals are not names.
        assert!(tokens.contains(&("what".to_owned(), Kind::Light)));
    }

    #[test]
    fn stems_equate_inflections() {
        assert_eq!(stem("starts"), stem("start"));
        assert_eq!(stem("supported"), stem("support"));
        assert_eq!(stem("caching"), stem("cache"));
        assert_eq!(stem("containers"), stem("container"));
        assert_eq!(stem("stopped"), stem("stop"));
        assert_ne!(stem("restart"), stem("start"));
        assert!(same_word(&stem("painted"), &stem("painter")));
        assert!(!same_word("port", "path"));
    }

    #[test]
    fn normalization_is_case_and_punctuation_blind() {
        assert_eq!(
            normalize("How do I restart my web app?"),
            normalize("how do i restart my web app")
        );
        assert_ne!(normalize("HTTP status 404"), normalize("HTTP status 403"));
        assert_eq!(normalize("Use `max_tokens` v1.2"), "use max_tokens v1.2");
    }

    #[test]
    fn unicode_never_panics() {
        for text in [
            "",
            "¿Qué tal?",
            "日本語のテキスト",
            "emoji 🚀 rocket",
            "a\u{0}b",
            "’s",
        ] {
            let _ = tokenize(text);
            let _ = normalize(text);
        }
    }
}

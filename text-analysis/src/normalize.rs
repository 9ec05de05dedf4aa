//! Splitting text into words and putting it into a canonical form.

/// The words of `text`: maximal runs of alphanumeric characters, as slices of the input.
pub fn words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.is_empty())
}

/// Lowercase, collapse every run of non-alphanumeric characters to one space, and trim:
/// "Deployment-Slots!" → "deployment slots".
pub fn normalize_words(raw: &str) -> String {
    let mut spaced = String::with_capacity(raw.len());
    for c in raw.chars() {
        if c.is_alphanumeric() {
            spaced.extend(c.to_lowercase());
        } else if !spaced.is_empty() && !spaced.ends_with(' ') {
            spaced.push(' ');
        }
    }
    spaced.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// English contractions and their expansions; the specific ones come before the suffixes.
const CONTRACTIONS: &[(&str, &str)] = &[
    ("won't", "will not"),
    ("can't", "can not"),
    ("shan't", "shall not"),
    ("n't", " not"),
    ("'re", " are"),
    ("'s", " is"),
    ("'m", " am"),
    ("'ll", " will"),
    ("'ve", " have"),
    ("'d", " would"),
];

/// `text` with typographic apostrophes made plain and contractions expanded, ignoring ASCII
/// case: "Don’t" → "Do not".
pub fn expand_contractions(text: &str) -> String {
    let mut expanded = text.replace(['’', '‘'], "'");
    for (from, to) in CONTRACTIONS {
        if expanded.contains(from) {
            expanded = replace_ignore_ascii_case(&expanded, from, to);
        }
    }
    expanded
}

fn replace_ignore_ascii_case(text: &str, from: &str, to: &str) -> String {
    // ASCII lowercasing keeps every byte offset, so matches in `lower` index `text`.
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len() + 8);
    let mut last = 0;
    for (at, _) in lower.match_indices(from) {
        out.push_str(&text[last..at]);
        out.push_str(to);
        last = at + from.len();
    }
    out.push_str(&text[last..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_words_on_anything_but_letters_and_digits() {
        let split: Vec<&str> = words("Hello, wörld -- v2!").collect();
        assert_eq!(split, ["Hello", "wörld", "v2"]);
        assert_eq!(words(" ,.; ").count(), 0);
    }

    #[test]
    fn normalizes_case_and_punctuation() {
        assert_eq!(normalize_words("  Deployment--Slots! "), "deployment slots");
        assert_eq!(normalize_words("?!"), "");
        assert_eq!(normalize_words("ÉTÉ 2024"), "été 2024");
    }

    #[test]
    fn expands_contractions_in_any_case() {
        assert_eq!(expand_contractions("Don’t"), "Do not");
        assert_eq!(expand_contractions("won't It's"), "will not It is");
        assert_eq!(expand_contractions("I'd they've"), "I would they have");
        assert_eq!(expand_contractions("plain"), "plain");
    }
}

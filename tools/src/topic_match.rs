//! Forgiving topic matching, shared by `lookup_fact` and `summarize` so both accept the same
//! spellings.
//!
//! A query and every topic name (canonical or alias) are normalized the same way: lowercase,
//! runs of non-alphanumeric characters become one space, and a plural `s`/`ies` is dropped from
//! each word. Then, in order of preference:
//! 1. exact match of the normalized forms;
//! 2. a small typo: bounded Damerau-Levenshtein distance on the space-free forms;
//! 3. the query contains every word of a name (each word exact or with a small typo), so
//!    "what is a deployment slot?" finds "deployment slots".
//!
//! Ties go to the lower distance, then the more specific (longer) name, then table order, so the
//! answer is deterministic.

use text_analysis::{normalize_words, singular};

/// Topic queries longer than this are refused: they are not topics, and the fuzzy passes should
/// stay cheap.
pub(crate) const MAX_QUERY_BYTES: usize = 256;

/// Index of the topic that best matches `query`, where `topics[i]` lists the names of topic `i`.
pub(crate) fn best_match<'a, T, N>(query: &str, topics: T) -> Option<usize>
where
    T: IntoIterator<Item = N>,
    N: IntoIterator<Item = &'a str>,
{
    let query = Normalized::new(query);
    if query.text.is_empty() {
        return None;
    }
    let mut best: Option<(Rank, usize)> = None;
    for (index, names) in topics.into_iter().enumerate() {
        for name in names {
            let name = Normalized::new(name);
            if let Some(rank) = rank(&query, &name)
                && best.as_ref().is_none_or(|(b, _)| rank < *b)
            {
                best = Some((rank, index));
            }
        }
    }
    best.map(|(_, index)| index)
}

/// Lower is better. Field order is the order of preference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Rank {
    tier: u8,
    distance: usize,
    /// Negated name length: longer (more specific) names win ties.
    unspecificity: isize,
}

fn rank(query: &Normalized, name: &Normalized) -> Option<Rank> {
    if name.text.is_empty() {
        return None;
    }
    let unspecificity = -(name.compact.len() as isize);
    if query.text == name.text {
        return Some(Rank {
            tier: 0,
            distance: 0,
            unspecificity,
        });
    }
    if let Some(distance) = typo_distance(&query.compact, &name.compact) {
        return Some(Rank {
            tier: 1,
            distance,
            unspecificity,
        });
    }
    let mut total = 0;
    for word in &name.words {
        let nearest = query
            .words
            .iter()
            .filter_map(|q| typo_distance(q, word))
            .min()?;
        total += nearest;
    }
    Some(Rank {
        tier: 2,
        distance: total,
        unspecificity,
    })
}

/// The edit distance between `a` and `b` if it is small enough to be a typo: none for one or two
/// characters, one up to six, two beyond. Words of four characters or fewer must also share their
/// first letter, or "host" would be a typo of "cost".
fn typo_distance(a: &[char], b: &[char]) -> Option<usize> {
    let shorter = a.len().min(b.len());
    let budget = match shorter {
        0..=2 => 0,
        3..=6 => 1,
        _ => 2,
    };
    if shorter <= 4 && a.first() != b.first() {
        return None;
    }
    bounded_distance(a, b, budget)
}

struct Normalized {
    /// Normalized words joined by single spaces.
    text: String,
    words: Vec<Vec<char>>,
    /// All words run together, for typo matching across word boundaries ("deploymentslots").
    compact: Vec<char>,
}

impl Normalized {
    fn new(raw: &str) -> Self {
        let words: Vec<Vec<char>> = normalize(raw)
            .split(' ')
            .filter(|w| !w.is_empty())
            .map(|w| w.chars().collect())
            .collect();
        let text = words
            .iter()
            .map(|w| w.iter().collect::<String>())
            .collect::<Vec<_>>()
            .join(" ");
        let compact = words.concat();
        Normalized {
            text,
            words,
            compact,
        }
    }
}

/// Lowercase, collapse every run of non-alphanumeric characters to one space, trim, and drop
/// plural endings word by word. Plurals only, not the full stemmer: typo matching compares the
/// letters that remain, and topic names are noun phrases.
pub(crate) fn normalize(raw: &str) -> String {
    normalize_words(raw)
        .split(' ')
        .map(singular)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Optimal-string-alignment distance (Levenshtein plus adjacent transpositions) between `a` and
/// `b`, or `None` when it exceeds `max`. Stops early once every cell of a row is over `max`.
pub(crate) fn bounded_distance(a: &[char], b: &[char], max: usize) -> Option<usize> {
    if a.len().abs_diff(b.len()) > max {
        return None;
    }
    if a == b {
        return Some(0);
    }
    let width = b.len() + 1;
    let mut before: Vec<usize> = vec![0; width];
    let mut previous: Vec<usize> = (0..width).collect();
    let mut current: Vec<usize> = vec![0; width];
    for i in 1..=a.len() {
        current[0] = i;
        let mut row_min = i;
        for j in 1..width {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut value = (previous[j] + 1)
                .min(current[j - 1] + 1)
                .min(previous[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                value = value.min(before[j - 2] + 1);
            }
            current[j] = value;
            row_min = row_min.min(value);
        }
        if row_min > max {
            return None;
        }
        std::mem::swap(&mut before, &mut previous);
        std::mem::swap(&mut previous, &mut current);
    }
    let distance = previous[b.len()];
    (distance <= max).then_some(distance)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOPICS: &[&[&str]] = &[
        &["deployment slots", "staging slot", "slot swap"],
        &["mcp", "model context protocol"],
        &["semantic caching", "semantic cache", "cache"],
        &["rate limiting", "rate limit", "throttling"],
    ];

    fn find(query: &str) -> Option<usize> {
        best_match(query, TOPICS.iter().map(|names| names.iter().copied()))
    }

    fn chars(s: &str) -> Vec<char> {
        s.chars().collect()
    }

    #[test]
    fn normalizes_case_punctuation_and_plurals() {
        assert_eq!(normalize("  Deployment-Slots!! "), "deployment slot");
        assert_eq!(normalize("deployment___slots"), "deployment slot");
        assert_eq!(normalize("Retry-After"), "retry after");
        assert_eq!(normalize("policies"), "policy");
        assert_eq!(normalize("class"), "class");
        assert_eq!(normalize("???"), "");
    }

    #[test]
    fn distance_counts_transpositions_once() {
        assert_eq!(bounded_distance(&chars("abcd"), &chars("abdc"), 2), Some(1));
        assert_eq!(
            bounded_distance(&chars("kitten"), &chars("sitting"), 3),
            Some(3)
        );
        assert_eq!(
            bounded_distance(&chars("kitten"), &chars("sitting"), 2),
            None
        );
        assert_eq!(bounded_distance(&chars(""), &chars("ab"), 2), Some(2));
        assert_eq!(bounded_distance(&chars("same"), &chars("same"), 0), Some(0));
    }

    #[test]
    fn forgives_spelling() {
        for query in [
            "deployment slots",
            "Deployment Slots",
            "Deployment-Slots",
            "deployment   slots",
            "deployment_slot",
            "deploymnet slots",
            "what is a deployment slot?",
            "staging slots",
        ] {
            assert_eq!(find(query), Some(0), "{query}");
        }
        assert_eq!(find("Model-Context Protocol"), Some(1));
        assert_eq!(find("mpc"), Some(1));
        assert_eq!(find("semantic cahce"), Some(2));
        assert_eq!(find("rate limits"), Some(3));
    }

    #[test]
    fn prefers_the_most_specific_name() {
        // Both "cache" and "semantic cache" are contained; the longer name wins.
        assert_eq!(find("how does the semantic cache decide"), Some(2));
    }

    #[test]
    fn misses_unrelated_queries() {
        assert_eq!(find("weather in paris"), None);
        assert_eq!(find(""), None);
        assert_eq!(find("   --- "), None);
        assert_eq!(find("xy"), None);
        // One edit, but a different first letter on a short word.
        assert_eq!(find("ncp"), None);
    }
}

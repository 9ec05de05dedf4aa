//! Verification: the last word on whether a similar cached prompt asks the same thing.
//!
//! Embedding similarity finds candidates; it cannot tell "Convert 100 USD to EUR" from
//! "Convert 200 USD to EUR". This step compares the two prompts' tokens and refuses a candidate
//! on any difference that changes the answer:
//! - numbers (in digits or words) differ;
//! - negation differs;
//! - names, acronyms, identifiers or quoted text differ;
//! - a content word was swapped for another (a different object or operation);
//! - a direction is reversed: what follows `to`/`from`/`into`/`than` differs;
//! - more than one content word was added or dropped.
//!
//! Light words (articles, auxiliaries, pronouns, polite fillers) may differ freely, and one
//! extra content word is tolerated when the rest of the question is substantial.

use super::text::{Kind, Token, same_word, tokenize};

/// Prepositions whose object gives a direction; swapping objects reverses the question.
const DIRECTIONAL: &[&str] = &[
    "to", "from", "into", "onto", "toward", "towards", "than", "versus", "vs",
];

/// Why a candidate was refused (for logs and tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Numbers,
    Negation,
    Entities,
    Substitution,
    Direction,
    TooDifferent,
}

/// Whether a cached answer to `cached` may be served for `query`.
pub fn verify(query: &str, cached: &str) -> Result<(), Refusal> {
    let a = tokenize(query);
    let b = tokenize(cached);
    verify_tokens(&a, &b)
}

pub fn verify_tokens(a: &[Token], b: &[Token]) -> Result<(), Refusal> {
    if sorted(a, Kind::Number) != sorted(b, Kind::Number) {
        return Err(Refusal::Numbers);
    }
    if count(a, Kind::Negation) != count(b, Kind::Negation) {
        return Err(Refusal::Negation);
    }
    if sorted(a, Kind::Entity) != sorted(b, Kind::Entity) {
        return Err(Refusal::Entities);
    }
    let only_a = unmatched(a, b);
    let only_b = unmatched(b, a);
    if !only_a.is_empty() && !only_b.is_empty() {
        return Err(Refusal::Substitution);
    }
    if directions(a) != directions(b) && !directions(a).is_empty() && !directions(b).is_empty() {
        return Err(Refusal::Direction);
    }
    let extra = only_a.len() + only_b.len();
    let substance =
        |t: &[Token]| count(t, Kind::Content) + count(t, Kind::Entity) + count(t, Kind::Number);
    let shorter = substance(a).min(substance(b));
    if extra > 1 || (extra == 1 && shorter < 2) {
        return Err(Refusal::TooDifferent);
    }
    Ok(())
}

fn count(tokens: &[Token], kind: Kind) -> usize {
    tokens.iter().filter(|t| t.kind == kind).count()
}

fn sorted(tokens: &[Token], kind: Kind) -> Vec<&str> {
    let mut values: Vec<&str> = tokens
        .iter()
        .filter(|t| t.kind == kind)
        .map(|t| t.canonical.as_str())
        .collect();
    values.sort_unstable();
    values.dedup();
    values
}

/// Content words of `a` with no same-word counterpart in `b`.
fn unmatched<'a>(a: &'a [Token], b: &[Token]) -> Vec<&'a str> {
    a.iter()
        .filter(|t| t.kind == Kind::Content)
        .filter(|t| {
            !b.iter()
                .any(|u| u.kind == Kind::Content && same_word(&t.canonical, &u.canonical))
        })
        .map(|t| t.canonical.as_str())
        .collect()
}

/// For each directional preposition, the first meaningful word after it.
fn directions(tokens: &[Token]) -> Vec<(&str, &str)> {
    let mut found: Vec<(&str, &str)> = Vec::new();
    for (index, token) in tokens.iter().enumerate() {
        if !DIRECTIONAL.contains(&token.surface.as_str()) {
            continue;
        }
        let object = tokens[index + 1..]
            .iter()
            .find(|t| matches!(t.kind, Kind::Content | Kind::Entity | Kind::Number));
        if let Some(object) = object {
            let preposition = match token.surface.as_str() {
                "into" | "onto" | "toward" | "towards" => "to",
                "vs" | "versus" => "than",
                other => other,
            };
            found.push((preposition, object.canonical.as_str()));
        }
    }
    found.sort_unstable();
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paraphrases_pass() {
        for (a, b) in [
            (
                "How do I restart my web app?",
                "How can I restart my web app?",
            ),
            (
                "What is the default port of the MCP server?",
                "Tell me the default port of the MCP server.",
            ),
            (
                "Which regions support the gateway?",
                "In which regions is the gateway supported?",
            ),
            (
                "What causes a cold start in a container?",
                "Why do containers have cold starts?",
            ),
            (
                "How long does a cached answer stay valid?",
                "For how long is a cached answer valid?",
            ),
            (
                "Compare Rust and Go for writing network services.",
                "Compare Go and Rust for writing network services.",
            ),
            (
                "How do I set up logging for the gateway?",
                "How do I configure logging for the gateway?",
            ),
            (
                "Who painted the Mona Lisa?",
                "Who is the painter of the Mona Lisa?",
            ),
        ] {
            assert_eq!(verify(a, b), Ok(()), "{a} | {b}");
        }
    }

    #[test]
    fn near_misses_are_refused_for_the_right_reason() {
        for (a, b, why) in [
            (
                "Convert 100 USD to EUR",
                "Convert 200 USD to EUR",
                Refusal::Numbers,
            ),
            ("Give me three tips", "Give me ten tips", Refusal::Numbers),
            (
                "Which regions support the gateway?",
                "Which regions do not support the gateway?",
                Refusal::Negation,
            ),
            (
                "Default port of the MCP server?",
                "Default port of the Redis server?",
                Refusal::Entities,
            ),
            (
                "How do I restart my web app?",
                "How do I stop my web app?",
                Refusal::Substitution,
            ),
            (
                "Convert 3 miles to kilometers.",
                "Convert 3 kilometers to miles.",
                Refusal::Direction,
            ),
            (
                "Is the flight from London to Madrid direct?",
                "Is the flight from Madrid to London direct?",
                Refusal::Direction,
            ),
            (
                "How do I turn on logging?",
                "How do I turn off logging?",
                Refusal::Substitution,
            ),
        ] {
            assert_eq!(verify(a, b), Err(why), "{a} | {b}");
        }
    }

    #[test]
    fn one_extra_word_is_tolerated_only_in_a_substantial_question() {
        assert_eq!(
            verify(
                "What does HTTP status 404 mean?",
                "What does the HTTP status code 404 mean?"
            ),
            Ok(())
        );
        assert_eq!(
            verify("Restart app", "Restart app twice"),
            Err(Refusal::Numbers)
        );
        assert_eq!(
            verify("Restart", "Restart server"),
            Err(Refusal::TooDifferent)
        );
    }
}

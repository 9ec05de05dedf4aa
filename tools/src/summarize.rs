//! `summarize`: a deterministic extractive summary, of given text or of a built-in document.
//!
//! The text is split into sentences, each sentence is scored by how central its content words
//! are to the whole text (the share of sentences that use each word, with stop words ignored),
//! lightly adjusted for position and length, and the best sentences are returned in their
//! original order. Everything is linear in the text apart from one sort of the sentence scores,
//! so the 1 MiB limit is handled quickly.

use std::borrow::Cow;
use std::collections::HashMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use text_analysis::{STOP_WORDS, singular, words};

use crate::corpus::{self, DOCS};
use crate::topic_match::{self, MAX_QUERY_BYTES};
use crate::{Instance, ToolError};

pub const NAME: &str = "summarize";
pub const TITLE: &str = "Summarize";
pub const DESCRIPTION: &str = "Summarize text by extracting its most important sentences, or \
summarize a built-in document by topic (app service scaling, deployment slots, gateway policies, \
mcp, tollgate overview). Use it to condense long text; give `text` or `topic`, and optionally \
`max_sentences` (1 to 10, default 3).";

/// The largest accepted `text`, in bytes of UTF-8 (1 MiB).
pub const MAX_TEXT_BYTES: usize = 1024 * 1024;
/// Sentences kept when `max_sentences` is not given.
pub const DEFAULT_MAX_SENTENCES: usize = 3;
/// The most sentences a summary may keep; larger requests are clamped to this.
pub const MAX_SENTENCES_LIMIT: usize = 10;

/// Text without sentence punctuation is cut into chunks of about this many words.
const CHUNK_WORDS: usize = 25;
/// A "sentence" longer than this is treated as unpunctuated text and chunked.
const LONG_SEGMENT_WORDS: usize = 60;

/// Arguments for `summarize`. Give `text` or `topic`; `text` wins when both are given.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
pub struct SummarizeArgs {
    /// The text to summarize, up to 1 MiB.
    #[serde(default)]
    pub text: Option<String>,
    /// Instead of `text`, the topic of a built-in document to summarize: "app service scaling",
    /// "deployment slots", "gateway policies", "mcp" or "tollgate overview".
    #[serde(default)]
    pub topic: Option<String>,
    /// How many sentences to keep, 1 to 10 (default 3). Values outside that range are clamped.
    #[serde(default)]
    pub max_sentences: Option<i64>,
}

/// An extractive summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SummarizeResult {
    /// The chosen sentences joined into one paragraph.
    pub summary: String,
    /// The chosen sentences, in their original order.
    pub sentences: Vec<String>,
    /// What was summarized: "text", or "topic:<name>" for a built-in document.
    pub source: String,
    /// How many sentences the input had.
    pub sentence_count_in: usize,
    /// Identity of the instance that answered.
    pub instance_id: String,
}

/// Summarize `args.text`, or else the built-in document for `args.topic`.
pub fn summarize(instance: &Instance, args: SummarizeArgs) -> Result<SummarizeResult, ToolError> {
    let limit = clamp_sentences(args.max_sentences);
    let topic = args
        .topic
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty());
    let text = args.text.as_deref();
    if let Some(text) = text
        && text.len() > MAX_TEXT_BYTES
    {
        return Err(ToolError::Failed(format!(
            "text is too long: {} bytes given, the limit is {MAX_TEXT_BYTES} bytes (1 MiB)",
            text.len()
        )));
    }
    let (source, body) = match (text.filter(|t| !t.trim().is_empty()), topic) {
        (Some(text), _) => ("text".to_owned(), text),
        (None, Some(topic)) => {
            let doc = find_doc(topic)?;
            (format!("topic:{}", doc.topic), doc.text)
        }
        (None, None) if text.is_some() => {
            return Err(ToolError::Failed(format!(
                "text is empty; give non-blank `text`, or a `topic` (one of: {})",
                corpus::document_topics().join(", ")
            )));
        }
        (None, None) => {
            return Err(ToolError::Failed(format!(
                "give `text` to summarize, or a `topic` (one of: {})",
                corpus::document_topics().join(", ")
            )));
        }
    };
    let sentences = split_sentences(body);
    if sentences.is_empty() {
        return Err(ToolError::Failed(
            "text has no words to summarize".to_owned(),
        ));
    }
    let chosen = pick(&sentences, limit);
    let sentence_count_in = sentences.len();
    let sentences: Vec<String> = chosen
        .into_iter()
        .filter_map(|i| sentences.get(i).cloned())
        .collect();
    Ok(SummarizeResult {
        summary: sentences.join(" "),
        sentences,
        source,
        sentence_count_in,
        instance_id: instance.id.clone(),
    })
}

/// The `max_sentences` (1 to [`MAX_SENTENCES_LIMIT`]) most representative sentences of `text`,
/// in their original order: the tool's summary without the tool around it (the agent compacts
/// long conversations with it).
pub fn extract(text: &str, max_sentences: usize) -> Vec<String> {
    let sentences = split_sentences(text);
    pick(&sentences, max_sentences.clamp(1, MAX_SENTENCES_LIMIT))
        .into_iter()
        .filter_map(|i| sentences.get(i).cloned())
        .collect()
}

/// Clamp to `1..=MAX_SENTENCES_LIMIT`; a request for zero or fewer still gets one sentence,
/// which is more useful to a model than an error.
fn clamp_sentences(requested: Option<i64>) -> usize {
    match requested {
        None => DEFAULT_MAX_SENTENCES,
        Some(n) => usize::try_from(n.clamp(1, MAX_SENTENCES_LIMIT as i64)).unwrap_or(1),
    }
}

fn find_doc(topic: &str) -> Result<corpus::DocEntry, ToolError> {
    let found = if topic.len() > MAX_QUERY_BYTES {
        None
    } else {
        topic_match::best_match(topic, DOCS.iter().map(corpus::DocEntry::names))
            .and_then(|i| DOCS.get(i))
    };
    found.ok_or_else(|| {
        ToolError::Failed(format!(
            "no built-in document about `{}`; available topics: {}",
            shorten(topic, 80),
            corpus::document_topics().join(", ")
        ))
    })
}

/// At most `max_chars` characters of `s`, cut on a character boundary.
fn shorten(s: &str, max_chars: usize) -> Cow<'_, str> {
    match s.char_indices().nth(max_chars) {
        Some((cut, _)) => Cow::Owned(format!("{}…", &s[..cut])),
        None => Cow::Borrowed(s),
    }
}

// ---------------------------------------------------------------------------------------------
// Sentence splitting

/// Split `text` into sentences with whitespace collapsed. Sentences end at `.`, `!`, `?`
/// (and their full-width forms) followed by whitespace, at blank lines, and at line breaks that
/// start a new item or capitalized line. Long unpunctuated runs are cut into ~25-word chunks.
pub(crate) fn split_sentences(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if is_terminator(c) {
            let mut end = i + c.len_utf8();
            while let Some(&(j, d)) = chars.peek() {
                if is_terminator(d) || is_closer(d) {
                    end = j + d.len_utf8();
                    chars.next();
                } else {
                    break;
                }
            }
            let rest = &text[end..];
            let at_break = rest
                .chars()
                .next()
                .is_none_or(|n| n.is_whitespace() || is_wide_terminator(c));
            if at_break && !(c == '.' && is_abbreviation(&text[start..i], rest)) {
                push_segment(&mut out, &text[start..end]);
                start = end;
            }
        } else if c == '\n' && line_break_ends_sentence(&text[start..i], &text[i + 1..]) {
            push_segment(&mut out, &text[start..i]);
            start = i + 1;
        }
    }
    push_segment(&mut out, &text[start..]);
    out
}

fn is_terminator(c: char) -> bool {
    matches!(c, '.' | '!' | '?' | '…') || is_wide_terminator(c)
}

/// Full-width terminators end a sentence even without a following space (CJK text has none).
fn is_wide_terminator(c: char) -> bool {
    matches!(c, '。' | '！' | '？')
}

fn is_closer(c: char) -> bool {
    matches!(c, '"' | '\'' | ')' | ']' | '”' | '’' | '»' | '」')
}

/// Words whose trailing period rarely ends a sentence.
const ABBREVIATIONS: &[&str] = &[
    "al", "approx", "cf", "dr", "e.g", "fig", "i.e", "jr", "mr", "mrs", "ms", "prof", "sr", "st",
    "vs",
];

/// Whether the period after `before` belongs to an abbreviation ("e.g.", "Dr.", "J. Smith")
/// rather than ending the sentence.
fn is_abbreviation(before: &str, rest: &str) -> bool {
    let word = before
        .rsplit(char::is_whitespace)
        .next()
        .unwrap_or_default()
        .trim_start_matches(|c: char| !c.is_alphanumeric());
    let lower = word.to_lowercase();
    if ABBREVIATIONS.contains(&lower.as_str()) {
        return true;
    }
    // Dotted short forms: "e.g", "i.e", "U.S", "a.m".
    if word.contains('.')
        && word
            .split('.')
            .all(|part| (1..=2).contains(&part.chars().count()))
    {
        return true;
    }
    // An initial: "J. Smith".
    let mut letters = word.chars();
    let initial = letters.next().is_some_and(char::is_uppercase) && letters.next().is_none();
    initial
        && rest
            .trim_start()
            .chars()
            .next()
            .is_some_and(char::is_uppercase)
}

/// A line break ends a sentence at a blank line, before a list item or heading, and before a line
/// that starts with anything but a lowercase letter (unless the line before ends with a comma or
/// similar, which means the sentence goes on). Lowercase next lines are wrapped prose.
fn line_break_ends_sentence(before: &str, rest: &str) -> bool {
    let next_line = rest.trim_start_matches([' ', '\t', '\r']);
    if next_line.is_empty() || next_line.starts_with('\n') || starts_list_item(next_line) {
        return true;
    }
    let line = before.rsplit('\n').next().unwrap_or_default().trim_end();
    if line.ends_with([',', ';', ':', '-', '(', '&']) {
        return false;
    }
    next_line.chars().next().is_some_and(|c| !c.is_lowercase())
}

fn starts_list_item(line: &str) -> bool {
    if line.starts_with(['#', '•'])
        || ["- ", "* ", "+ "]
            .iter()
            .any(|marker| line.starts_with(marker))
    {
        return true;
    }
    let digits = line.len() - line.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    digits > 0 && (line[digits..].starts_with(". ") || line[digits..].starts_with(") "))
}

/// Collapse whitespace, drop list markers, skip segments without words and chunk long ones.
fn push_segment(out: &mut Vec<String>, segment: &str) {
    let mut words: Vec<&str> = segment.split_whitespace().collect();
    if words.first().is_some_and(|w| {
        !w.is_empty() && w.chars().all(|c| matches!(c, '-' | '*' | '+' | '•' | '#'))
    }) {
        words.remove(0);
    }
    if !words.iter().any(|w| w.chars().any(char::is_alphanumeric)) {
        return;
    }
    if words.len() <= LONG_SEGMENT_WORDS {
        out.push(words.join(" "));
        return;
    }
    // Balanced chunks, so the last one is not a stub.
    let chunks = words.len().div_ceil(CHUNK_WORDS);
    let size = words.len().div_ceil(chunks);
    for chunk in words.chunks(size) {
        if chunk.iter().any(|w| w.chars().any(char::is_alphanumeric)) {
            out.push(chunk.join(" "));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Scoring

/// Indices of the `limit` best sentences, in original order.
fn pick(sentences: &[String], limit: usize) -> Vec<usize> {
    let scores = score(sentences);
    let mut order: Vec<usize> = (0..sentences.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    let mut chosen: Vec<usize> = Vec::with_capacity(limit);
    for i in order {
        if chosen.len() == limit {
            break;
        }
        // A repeated sentence adds nothing to a summary.
        if chosen
            .iter()
            .any(|&c| sentences[c].to_lowercase() == sentences[i].to_lowercase())
        {
            continue;
        }
        chosen.push(i);
    }
    chosen.sort_unstable();
    chosen
}

/// One score per sentence: centrality of its content words, times mild length and position
/// priors.
fn score(sentences: &[String]) -> Vec<f64> {
    let mut vocabulary: HashMap<String, usize> = HashMap::new();
    // How many sentences use each word.
    let mut sentence_frequency: Vec<u32> = Vec::new();
    let mut per_sentence: Vec<(Vec<usize>, usize, usize)> = Vec::with_capacity(sentences.len());
    for sentence in sentences {
        let mut terms = Vec::new();
        let mut word_count = 0;
        for token in words(sentence) {
            word_count += 1;
            let Some(term) = content_term(token) else {
                continue;
            };
            let next_id = vocabulary.len();
            let id = *vocabulary.entry(term).or_insert(next_id);
            if id == sentence_frequency.len() {
                sentence_frequency.push(0);
            }
            terms.push(id);
        }
        let content_words = terms.len();
        terms.sort_unstable();
        terms.dedup();
        for &id in &terms {
            sentence_frequency[id] += 1;
        }
        per_sentence.push((terms, content_words, word_count));
    }
    let most = f64::from(sentence_frequency.iter().copied().max().unwrap_or(1).max(1));
    per_sentence
        .iter()
        .enumerate()
        .map(|(index, (terms, content_words, words))| {
            let weight: f64 = terms
                .iter()
                .map(|&id| f64::from(sentence_frequency[id]) / most)
                .sum();
            // Dividing by the square root keeps long sentences from winning on length alone
            // without making one-word sentences unbeatable.
            let centrality = weight / ((*content_words).max(1) as f64).sqrt();
            let length_prior = match words {
                0..=3 => 0.5,
                4..=7 => 0.8,
                8..=40 => 1.0,
                _ => 0.85,
            };
            // Openings often state the subject; a small nudge breaks near-ties toward them.
            let position_prior = if index == 0 { 1.1 } else { 1.0 };
            centrality * length_prior * position_prior
        })
        .collect()
}

/// The scoring form of a token, or `None` for stop words and stray letters.
fn content_term(token: &str) -> Option<String> {
    let lower: Cow<'_, str> = if token.chars().any(char::is_uppercase) {
        Cow::Owned(token.to_lowercase())
    } else {
        Cow::Borrowed(token)
    };
    if (lower.is_ascii() && lower.len() < 2) || STOP_WORDS.binary_search(&lower.as_ref()).is_ok() {
        return None;
    }
    Some(singular(&lower))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn instance() -> Instance {
        Instance::new(Some("i-sum".into()), None, None, None)
    }

    fn run(args: SummarizeArgs) -> Result<SummarizeResult, ToolError> {
        summarize(&instance(), args)
    }

    fn text(text: &str, max_sentences: Option<i64>) -> SummarizeArgs {
        SummarizeArgs {
            text: Some(text.to_owned()),
            topic: None,
            max_sentences,
        }
    }

    fn failure(result: Result<SummarizeResult, ToolError>) -> String {
        match result {
            Err(ToolError::Failed(message)) => message,
            other => panic!("expected Failed, got {other:?}"),
        }
    }

    #[test]
    fn stop_words_are_sorted_and_unique() {
        assert!(STOP_WORDS.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn splits_on_punctuation_and_keeps_abbreviations() {
        let sentences = split_sentences(
            "Scaling adds instances. Does it cost more? Yes! Use a plan, e.g. the P1v3 tier. \
                Dr. Smith wrote version 3.5 of the guide... It is fine.",
        );
        assert_eq!(
            sentences,
            [
                "Scaling adds instances.",
                "Does it cost more?",
                "Yes!",
                "Use a plan, e.g. the P1v3 tier.",
                "Dr. Smith wrote version 3.5 of the guide...",
                "It is fine.",
            ]
        );
    }

    #[test]
    fn splits_on_line_structure() {
        let sentences = split_sentences(
            "Deployment slots\n\nA slot is a live copy of the app\nthat has its own host name\n\
                - swap to release\n- swap back to roll back\nHealth checks matter",
        );
        assert_eq!(
            sentences,
            [
                "Deployment slots",
                "A slot is a live copy of the app that has its own host name",
                "swap to release",
                "swap back to roll back",
                "Health checks matter",
            ]
        );
    }

    #[test]
    fn splits_unicode_without_panicking() {
        let sentences = split_sentences("Ünïcödé wörks. 日本語の文です。次の文です。Ça va? Oui…");
        assert_eq!(
            sentences,
            [
                "Ünïcödé wörks.",
                "日本語の文です。",
                "次の文です。",
                "Ça va?",
                "Oui…"
            ]
        );
    }

    #[test]
    fn picks_the_central_sentence_even_when_it_is_last() {
        let input = "The weather in the valley was mild on Tuesday. \
            Our office kitchen got a new coffee machine last spring. \
            Semantic caching stores answers for similar prompts. \
            The parking garage closes at ten in the evening. \
            A cache hit skips the model call for a similar prompt. \
            The team lunch moved to Thursday this week. \
            Semantic caching returns cached answers when a new prompt is similar to a cached prompt, so cache hits save tokens.";
        let result = run(text(input, Some(1))).unwrap();
        assert_eq!(result.sentences.len(), 1);
        assert!(
            result.sentences[0].starts_with("Semantic caching returns"),
            "{result:?}"
        );
        assert_eq!(result.sentence_count_in, 7);

        let result = run(text(input, Some(3))).unwrap();
        assert!(
            result
                .sentences
                .last()
                .unwrap()
                .starts_with("Semantic caching returns")
        );
        assert!(
            !result.sentences.iter().any(|s| s.contains("parking")),
            "{result:?}"
        );
        assert!(
            !result.sentences.iter().any(|s| s.contains("weather")),
            "{result:?}"
        );
    }

    #[test]
    fn keeps_original_order_and_joins_the_summary() {
        let input = "Slots let you stage a release. Coffee is nice. Swapping slots releases the \
            staged build to production. Swapping slots back rolls the release back. Lunch was late.";
        let result = run(text(input, Some(2))).unwrap();
        let positions: Vec<usize> = result
            .sentences
            .iter()
            .map(|s| input.find(s.as_str()).unwrap())
            .collect();
        assert!(positions.is_sorted(), "{result:?}");
        assert_eq!(result.summary, result.sentences.join(" "));
        assert_eq!(result.source, "text");
        assert_eq!(result.instance_id, "i-sum");
    }

    #[test]
    fn is_deterministic() {
        let input = corpus::DOCS[2].text;
        let a = run(text(input, Some(4))).unwrap();
        let b = run(text(input, Some(4))).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn clamps_max_sentences() {
        let input = (1..=15)
            .map(|i| format!("Sentence number {i} talks about scaling instances and slots."))
            .collect::<Vec<_>>()
            .join(" ");
        for (requested, expected) in [
            (None, 3),
            (Some(0), 1),
            (Some(-5), 1),
            (Some(1), 1),
            (Some(7), 7),
            (Some(10), 10),
            (Some(11), 10),
            (Some(i64::MAX), 10),
            (Some(i64::MIN), 1),
        ] {
            let result = run(text(&input, requested)).unwrap();
            assert_eq!(result.sentences.len(), expected, "{requested:?}");
            assert_eq!(result.sentence_count_in, 15);
        }
    }

    #[test]
    fn short_text_returns_every_sentence() {
        let result = run(text("Only one sentence here.", None)).unwrap();
        assert_eq!(result.sentences, ["Only one sentence here."]);
        assert_eq!(result.sentence_count_in, 1);
    }

    #[test]
    fn skips_repeated_sentences() {
        let result = run(text(
            "Cache hits save tokens. Cache hits save tokens. Misses cost.",
            Some(2),
        ))
        .unwrap();
        assert_eq!(
            result.sentences,
            ["Cache hits save tokens.", "Misses cost."]
        );
    }

    #[test]
    fn handles_text_without_punctuation() {
        let words: Vec<String> = (0..100)
            .map(|i| {
                if i % 5 == 0 {
                    "scaling".to_owned()
                } else {
                    format!("word{i}")
                }
            })
            .collect();
        let input = words.join(" ");
        let result = run(text(&input, Some(2))).unwrap();
        assert_eq!(result.sentence_count_in, 4);
        assert_eq!(result.sentences.len(), 2);
        for sentence in &result.sentences {
            let count = sentence.split_whitespace().count();
            assert!((20..=30).contains(&count), "{count}");
        }
    }

    #[test]
    fn empty_or_wordless_text_is_an_error() {
        assert!(failure(run(text("", None))).contains("text is empty"));
        assert!(failure(run(text("  \n\t ", None))).contains("text is empty"));
        assert!(failure(run(text("... !!! ???", None))).contains("no words"));
    }

    #[test]
    fn huge_text_is_bounded_and_fast_enough() {
        let sentence = "Scaling out adds instances that share state through Redis, and each one reports its id. ";
        let mut input = String::new();
        let mut i = 0;
        while input.len() + sentence.len() + 16 <= MAX_TEXT_BYTES {
            input.push_str(&format!("Item {i}: "));
            input.push_str(sentence);
            i += 1;
        }
        assert!(input.len() <= MAX_TEXT_BYTES);
        let started = std::time::Instant::now();
        let result = run(text(&input, Some(5))).unwrap();
        assert_eq!(result.sentences.len(), 5);
        assert!(result.sentence_count_in > 10_000);
        // Generous, for unoptimized test builds; release runs in a fraction of this.
        assert!(started.elapsed() < std::time::Duration::from_secs(20));

        let unpunctuated = "word ".repeat(MAX_TEXT_BYTES / 5);
        assert!(run(text(&unpunctuated, None)).is_ok());

        let over = "a".repeat(MAX_TEXT_BYTES + 1);
        let message = failure(run(text(&over, None)));
        assert!(
            message.contains("1048577") && message.contains("1048576"),
            "{message}"
        );
    }

    #[test]
    fn summarizes_a_builtin_topic() {
        for (query, canonical) in [
            ("deployment slots", "deployment slots"),
            ("Deployment-Slots", "deployment slots"),
            ("deploymnet slot", "deployment slots"),
            ("semantic caching", "gateway policies"),
            ("Model Context Protocol", "mcp"),
            ("app service scaling", "app service scaling"),
            ("tollgate", "tollgate overview"),
        ] {
            let result = run(SummarizeArgs {
                text: None,
                topic: Some(query.into()),
                max_sentences: None,
            })
            .unwrap();
            assert_eq!(result.source, format!("topic:{canonical}"), "{query}");
            assert_eq!(result.sentences.len(), 3);
            assert!(result.sentence_count_in >= 8);
        }
    }

    #[test]
    fn every_document_is_a_reasonable_size() {
        for doc in DOCS {
            let count = split_sentences(doc.text).len();
            assert!((8..=15).contains(&count), "{}: {count}", doc.topic);
        }
    }

    #[test]
    fn text_wins_over_topic_and_blank_text_falls_back_to_topic() {
        let result = run(SummarizeArgs {
            text: Some("My own text is here.".into()),
            topic: Some("mcp".into()),
            max_sentences: None,
        })
        .unwrap();
        assert_eq!(result.source, "text");
        let result = run(SummarizeArgs {
            text: Some("   ".into()),
            topic: Some("mcp".into()),
            max_sentences: None,
        })
        .unwrap();
        assert_eq!(result.source, "topic:mcp");
    }

    #[test]
    fn unknown_topic_lists_the_documents() {
        let message = failure(run(SummarizeArgs {
            text: None,
            topic: Some("cooking pasta".into()),
            max_sentences: None,
        }));
        assert!(message.contains("cooking pasta"), "{message}");
        assert!(message.contains("deployment slots") && message.contains("gateway policies"));
    }

    #[test]
    fn neither_text_nor_topic_is_an_error() {
        let message = failure(run(SummarizeArgs::default()));
        assert!(message.contains("give `text`"), "{message}");
        let message = failure(run(SummarizeArgs {
            text: None,
            topic: Some("  ".into()),
            max_sentences: None,
        }));
        assert!(message.contains("give `text`"), "{message}");
    }
}

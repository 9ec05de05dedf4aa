//! Completion governance: how long an answer may run, and how many answers a call asks for.
//!
//! Every limit field a client may send (`max_tokens`, `max_completion_tokens`, and the
//! `max_output_tokens`/`max_new_tokens` some compatible servers read) is read, must be a positive
//! whole number, and must agree with the others: a call that says 10 in one field and 40,000 in
//! another is refused rather than guessed at. The agreed limit is capped (`MAX_TOKENS_CAP` for
//! whole answers, `MAX_STREAM_TOKENS_CAP` for streams) and written back to every field sent; a
//! call with none gets `max_tokens`. Long whole answers are what time out behind gateways, so
//! they get the lower cap; streams deliver as they go and may ask for more, up to their own cap.
//!
//! `n` (and `best_of`, where a server generates that many) multiplies what a call may produce;
//! the budget reserves that much. While a stream runs, [`StreamMeter`] counts what it produced,
//! so an upstream that ignores the limit it was sent is cut off near it.

use serde_json::{Map, Value};

use crate::{error::GatewayError, tokens};

/// Fields that limit one answer's completion tokens.
const LIMIT_FIELDS: [&str; 4] = [
    "max_completion_tokens",
    "max_tokens",
    "max_output_tokens",
    "max_new_tokens",
];

/// Fields that make the upstream generate several answers; the larger one counts.
const CHOICE_FIELDS: [&str; 2] = ["n", "best_of"];

/// The most answers one call may ask for (OpenAI's own bound on `n`).
pub const MAX_CHOICES: u64 = 128;

/// The caps governance applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    /// Ceiling on a whole (non-streamed) answer, and the limit of any call that sets none.
    pub whole: u32,
    /// Ceiling on a streamed answer that asks for a limit.
    pub stream: u32,
}

/// What a governed call may produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompletionLimit {
    /// Tokens each answer may run to: the limit sent upstream.
    pub per_choice: u64,
    /// How many answers the upstream generates.
    pub choices: u64,
}

impl CompletionLimit {
    /// Completion tokens the whole call may produce: what the budget reserves for it.
    pub fn total(self) -> u64 {
        self.per_choice.saturating_mul(self.choices)
    }
}

/// Checks and caps `request`'s limits; returns what the call may produce, or a 400 for limits
/// that are malformed or disagree.
pub fn govern(
    request: &mut Map<String, Value>,
    caps: Caps,
    streaming: bool,
) -> Result<CompletionLimit, GatewayError> {
    let ceiling = u64::from(if streaming { caps.stream } else { caps.whole });
    let per_choice = match agreed_limit(request)? {
        Some(requested) => {
            let granted = requested.min(ceiling);
            for field in LIMIT_FIELDS {
                if request.contains_key(field) {
                    request.insert(field.to_owned(), Value::from(granted));
                }
            }
            granted
        }
        None => {
            let granted = u64::from(caps.whole).min(ceiling);
            request.insert("max_tokens".to_owned(), Value::from(granted));
            granted
        }
    };
    if let Some(min_tokens) = whole_number(request, "min_tokens")?
        && min_tokens > per_choice
    {
        return Err(GatewayError::InvalidRequest(format!(
            "`min_tokens` ({min_tokens}) is above the completion limit of {per_choice} tokens"
        )));
    }
    let mut choices = 1;
    for field in CHOICE_FIELDS {
        if let Some(count) = whole_number(request, field)? {
            if !(1..=MAX_CHOICES).contains(&count) {
                return Err(GatewayError::InvalidRequest(format!(
                    "`{field}` must be a whole number from 1 to {MAX_CHOICES}"
                )));
            }
            choices = choices.max(count);
        }
    }
    Ok(CompletionLimit {
        per_choice,
        choices,
    })
}

/// The one limit every limit field agrees on, if any is set.
fn agreed_limit(request: &mut Map<String, Value>) -> Result<Option<u64>, GatewayError> {
    let mut agreed: Option<(&str, u64)> = None;
    for field in LIMIT_FIELDS {
        let Some(value) = whole_number(request, field)? else {
            // An explicit null means "not set"; drop it so only real limits go upstream.
            request.remove(field);
            continue;
        };
        if value == 0 {
            return Err(GatewayError::InvalidRequest(format!(
                "`{field}` must be at least 1"
            )));
        }
        match agreed {
            Some((first, limit)) if limit != value => {
                return Err(GatewayError::InvalidRequest(format!(
                    "`{first}` ({limit}) and `{field}` ({value}) disagree; send one limit, or the same value in both"
                )));
            }
            Some(_) => {}
            None => agreed = Some((field, value)),
        }
    }
    Ok(agreed.map(|(_, limit)| limit))
}

/// A field that must be a non-negative whole number when present (`null` is absent).
fn whole_number(request: &Map<String, Value>, field: &str) -> Result<Option<u64>, GatewayError> {
    match request.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => value.as_u64().map(Some).ok_or_else(|| {
            GatewayError::InvalidRequest(format!("`{field}` must be a positive whole number"))
        }),
    }
}

/// Counts the completion tokens of a stream as its chunks arrive, against the call's limit.
///
/// Each delta's text (content, refusals, reasoning, tool-call names and arguments) is counted
/// with the model's tokenizer on its own. Counting pieces separately can only count a little
/// more than the whole text would (a word split across two deltas may count twice), so a
/// well-behaved upstream that stops at its `max_tokens` is given a small margin before the
/// meter calls the stream over its limit.
pub struct StreamMeter {
    tokenizer: tokens::Tokenizer,
    counted: u64,
    ceiling: u64,
}

impl StreamMeter {
    pub fn new(model: &str, limit: CompletionLimit) -> Self {
        let total = limit.total();
        Self {
            tokenizer: tokens::tokenizer_for(model),
            counted: 0,
            ceiling: total.saturating_add(total / 32 + 16),
        }
    }

    /// Counts one chunk; returns whether the stream is now past its limit.
    pub fn absorb(&mut self, chunk: &Value) -> bool {
        for choice in chunk
            .get("choices")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(delta) = choice.get("delta") {
                self.counted += self.count_strings(delta, 0);
            }
        }
        self.counted > self.ceiling
    }

    /// Completion tokens counted so far.
    pub fn counted(&self) -> u64 {
        self.counted
    }

    /// Tokens of every string in a delta but its role, ids and types.
    fn count_strings(&self, value: &Value, depth: usize) -> u64 {
        match value {
            Value::String(text) if !text.is_empty() => self.tokenizer.count(text),
            Value::Object(fields) if depth < 4 => fields
                .iter()
                .filter(|(key, _)| !matches!(key.as_str(), "role" | "id" | "type"))
                .map(|(_, inner)| self.count_strings(inner, depth + 1))
                .sum(),
            Value::Array(items) if depth < 4 => items
                .iter()
                .map(|inner| self.count_strings(inner, depth + 1))
                .sum(),
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    const CAPS: Caps = Caps {
        whole: 2000,
        stream: 16384,
    };

    fn request(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    fn per_choice(value: Value, streaming: bool) -> (u64, Map<String, Value>) {
        let mut request = request(value);
        let limit = govern(&mut request, CAPS, streaming).unwrap();
        (limit.per_choice, request)
    }

    #[test]
    fn whole_answers_are_capped_or_given_the_cap() {
        let (granted, over) = per_choice(json!({"max_tokens": 9000}), false);
        assert_eq!((granted, &over["max_tokens"]), (2000, &json!(2000)));
        let (granted, newer) = per_choice(json!({"max_completion_tokens": 5000}), false);
        assert_eq!(granted, 2000);
        assert_eq!(newer["max_completion_tokens"], 2000);
        assert!(!newer.contains_key("max_tokens"));
        let (granted, unset) = per_choice(json!({}), false);
        assert_eq!((granted, &unset["max_tokens"]), (2000, &json!(2000)));
        let (granted, under) = per_choice(json!({"max_tokens": 50}), false);
        assert_eq!((granted, &under["max_tokens"]), (50, &json!(50)));
    }

    #[test]
    fn streams_have_a_ceiling_of_their_own_and_a_limit_always() {
        let (granted, long) = per_choice(json!({"max_tokens": 9000}), true);
        assert_eq!((granted, &long["max_tokens"]), (9000, &json!(9000)));
        let (granted, huge) = per_choice(json!({"max_completion_tokens": 100_000}), true);
        assert_eq!(granted, 16384);
        assert_eq!(huge["max_completion_tokens"], 16384);
        // No limit asked: the default limit is sent upstream, so the stream has one.
        let (granted, unset) = per_choice(json!({}), true);
        assert_eq!((granted, &unset["max_tokens"]), (2000, &json!(2000)));
    }

    #[test]
    fn every_limit_field_is_governed_and_they_must_agree() {
        let mut both = request(json!({"max_completion_tokens": 10, "max_tokens": 40000}));
        let refused = govern(&mut both, CAPS, false).unwrap_err();
        assert!(
            matches!(&refused, GatewayError::InvalidRequest(m) if m.contains("disagree")),
            "{refused:?}"
        );
        let (granted, agreeing) = per_choice(
            json!({"max_completion_tokens": 9000, "max_tokens": 9000, "max_output_tokens": 9000}),
            false,
        );
        assert_eq!(granted, 2000);
        for field in ["max_completion_tokens", "max_tokens", "max_output_tokens"] {
            assert_eq!(agreeing[field], 2000, "{field}");
        }
        let (granted, other) = per_choice(json!({"max_new_tokens": 40000}), false);
        assert_eq!((granted, &other["max_new_tokens"]), (2000, &json!(2000)));
        let (_, nulls) = per_choice(
            json!({"max_tokens": null, "max_completion_tokens": 7}),
            false,
        );
        assert!(!nulls.contains_key("max_tokens"));
        for bad in [
            json!({"max_tokens": 0}),
            json!({"max_tokens": -5}),
            json!({"max_tokens": 1.5}),
            json!({"max_tokens": "100"}),
            json!({"min_tokens": 3000}),
        ] {
            assert!(
                govern(&mut request(bad.clone()), CAPS, false).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn several_answers_multiply_the_limit() {
        let mut three = request(json!({"n": 3, "max_tokens": 100}));
        let limit = govern(&mut three, CAPS, false).unwrap();
        assert_eq!((limit.choices, limit.total()), (3, 300));
        let mut best_of = request(json!({"n": 2, "best_of": 5}));
        assert_eq!(govern(&mut best_of, CAPS, true).unwrap().choices, 5);
        for bad in [json!({"n": 0}), json!({"n": 129}), json!({"n": "2"})] {
            assert!(
                govern(&mut request(bad.clone()), CAPS, false).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_meter_counts_every_choice_and_calls_overruns() {
        let limit = CompletionLimit {
            per_choice: 100,
            choices: 2,
        };
        let mut meter = StreamMeter::new("gpt-4o-mini", limit);
        let chunk = |index: u64, text: &str| json!({"choices": [{"index": index, "delta": {"role": "assistant", "content": text}}]});
        assert!(!meter.absorb(&chunk(0, "hello world")));
        assert!(!meter.absorb(&chunk(1, "hello world")));
        assert_eq!(meter.counted(), 4);
        let call = json!({"choices": [{"index": 0, "delta": {"tool_calls": [
            {"index": 0, "id": "call_1", "type": "function", "function": {"name": "whoami", "arguments": "{}"}}
        ]}}]});
        meter.absorb(&call);
        assert!(meter.counted() > 4);
        // 200 allowed, with a margin of 200/32 + 16 = 22 for counting deltas one by one.
        let word = chunk(0, " word");
        let mut over_at = None;
        for sent in 1..=300 {
            if meter.absorb(&word) {
                over_at = Some(sent);
                break;
            }
        }
        assert!(
            meter.counted() > 222 && meter.counted() <= 223,
            "{}",
            meter.counted()
        );
        assert!(over_at.is_some());
    }
}

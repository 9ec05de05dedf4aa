//! max_tokens governance: a ceiling on how long a non-streamed answer may run.
//!
//! Long non-streamed completions are what time out (408) behind gateways; capping them, and
//! setting the cap when the caller left it out, keeps every call inside its deadline. Streamed
//! calls deliver tokens as they go, so they may run longer.

use serde_json::{Map, Value};

const LIMIT_FIELDS: [&str; 2] = ["max_completion_tokens", "max_tokens"];

/// Applies the cap to `request` and returns the completion budget to reserve for it.
pub fn govern_max_tokens(request: &mut Map<String, Value>, cap: u32, streaming: bool) -> u64 {
    let requested = LIMIT_FIELDS.iter().find_map(|field| {
        request
            .get(*field)
            .and_then(Value::as_u64)
            .map(|v| (*field, v))
    });
    match (requested, streaming) {
        (Some((_, value)), true) => value,
        // Unbounded streams are reserved at the cap and reconciled to what they really used.
        (None, true) => u64::from(cap),
        (Some((field, value)), false) if value > u64::from(cap) => {
            request.insert(field.to_owned(), Value::from(cap));
            u64::from(cap)
        }
        (Some((_, value)), false) => value,
        (None, false) => {
            request.insert("max_tokens".to_owned(), Value::from(cap));
            u64::from(cap)
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn request(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn non_streamed_calls_are_capped_or_given_the_cap() {
        let mut over = request(json!({"max_tokens": 9000}));
        assert_eq!(govern_max_tokens(&mut over, 2000, false), 2000);
        assert_eq!(over["max_tokens"], 2000);

        let mut newer = request(json!({"max_completion_tokens": 5000}));
        assert_eq!(govern_max_tokens(&mut newer, 2000, false), 2000);
        assert_eq!(newer["max_completion_tokens"], 2000);
        assert!(!newer.contains_key("max_tokens"));

        let mut unset = request(json!({}));
        assert_eq!(govern_max_tokens(&mut unset, 2000, false), 2000);
        assert_eq!(unset["max_tokens"], 2000);

        let mut under = request(json!({"max_tokens": 50}));
        assert_eq!(govern_max_tokens(&mut under, 2000, false), 50);
        assert_eq!(under["max_tokens"], 50);
    }

    #[test]
    fn streamed_calls_may_run_longer() {
        let mut long = request(json!({"max_tokens": 9000}));
        assert_eq!(govern_max_tokens(&mut long, 2000, true), 9000);
        assert_eq!(long["max_tokens"], 9000);
        let mut unset = request(json!({}));
        assert_eq!(govern_max_tokens(&mut unset, 2000, true), 2000);
        assert!(!unset.contains_key("max_tokens"));
    }
}

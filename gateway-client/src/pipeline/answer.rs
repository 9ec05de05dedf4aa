//! A whole chat answer, read only as far as the call needs.

use std::{fmt, marker::PhantomData, sync::OnceLock};

use bytes::Bytes;
use serde::{
    Deserialize, Deserializer,
    de::{MapAccess, SeqAccess, Visitor},
};
use serde_json::Value;

use crate::{error::GatewayError, usage::Usage};

/// A whole chat answer. One the upstream wrote keeps its bytes, which a route passing it on
/// unchanged sends as they came. Its JSON tree is built only when something reads it (content
/// safety, the cache store, a translating route, an enabled span): on a pass-through call with
/// those off, the tree was the largest allocation left.
#[derive(Debug, Clone)]
pub struct Answer {
    bytes: Option<Bytes>,
    tree: OnceLock<Value>,
    usage: Option<Usage>,
}

/// The one field every call reads. Everything else is skipped, though still read by the rules a
/// tree is read by ([`Skip`]). Both are read as JSON objects only (a derived struct would also
/// take an array).
#[derive(Default)]
struct UsageOnly {
    usage: Option<UsageFields>,
}

#[derive(Default)]
struct UsageFields {
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
}

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "snake_case")]
enum Field {
    Usage,
    PromptTokens,
    CompletionTokens,
    #[serde(other)]
    Other,
}

impl<'de> Deserialize<'de> for UsageOnly {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(ObjectVisitor::<Self>(PhantomData))
    }
}

impl<'de> Deserialize<'de> for UsageFields {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(ObjectVisitor::<Self>(PhantomData))
    }
}

/// Reads a JSON object, and nothing else, as `T`.
struct ObjectVisitor<T>(PhantomData<T>);

/// What one field of the object does to `T`.
trait FromFields: Default {
    fn take<'de, A: MapAccess<'de>>(&mut self, field: Field, map: &mut A) -> Result<(), A::Error>;
}

impl FromFields for UsageOnly {
    fn take<'de, A: MapAccess<'de>>(&mut self, field: Field, map: &mut A) -> Result<(), A::Error> {
        match field {
            Field::Usage => self.usage = map.next_value()?,
            Field::PromptTokens | Field::CompletionTokens | Field::Other => {
                map.next_value::<Skip>()?;
            }
        }
        Ok(())
    }
}

impl FromFields for UsageFields {
    fn take<'de, A: MapAccess<'de>>(&mut self, field: Field, map: &mut A) -> Result<(), A::Error> {
        match field {
            Field::PromptTokens => self.prompt_tokens = map.next_value()?,
            Field::CompletionTokens => self.completion_tokens = map.next_value()?,
            Field::Usage | Field::Other => {
                map.next_value::<Skip>()?;
            }
        }
        Ok(())
    }
}

/// A value skipped by the rules a tree is read by (`deserialize_any`: the same nesting limit, the
/// same number checks), without building it, so a tree built later from the same bytes cannot
/// fail. (`IgnoredAny` skips more leniently: it takes nesting a tree refuses.)
struct Skip;

impl<'de> Deserialize<'de> for Skip {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(SkipVisitor)
    }
}

struct SkipVisitor;

impl<'de> Visitor<'de> for SkipVisitor {
    type Value = Skip;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_str<E>(self, _: &str) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_unit<E>(self) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Skip, A::Error> {
        while seq.next_element::<Skip>()?.is_some() {}
        Ok(Skip)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Skip, A::Error> {
        while map.next_entry::<Skip, Skip>()?.is_some() {}
        Ok(Skip)
    }
}

impl<'de, T: FromFields> Visitor<'de> for ObjectVisitor<T> {
    type Value = T;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<T, A::Error> {
        let mut value = T::default();
        // A key given twice counts as it does in a tree: the last one.
        while let Some(field) = map.next_key()? {
            value.take(field, &mut map)?;
        }
        Ok(value)
    }
}

impl Answer {
    /// An answer known as a tree: cached, translated, or the upstream's own in another protocol.
    pub fn from_tree(tree: Value) -> Self {
        Self {
            bytes: None,
            usage: Usage::from_body(&tree),
            tree: OnceLock::from(tree),
        }
    }

    /// The upstream's answer, checked to be JSON and its usage read without building the tree.
    pub(super) fn from_upstream(bytes: Bytes) -> Result<Self, GatewayError> {
        let Ok(head) = serde_json::from_slice::<UsageOnly>(&bytes) else {
            // Not JSON, or JSON the typed read refuses (not an object, a usage field of
            // another type): the tree decides, as it always did.
            let tree = parse_answer(&bytes)?;
            return Ok(Self {
                bytes: Some(bytes),
                ..Self::from_tree(tree)
            });
        };
        let usage = head.usage.and_then(|fields| {
            let prompt = fields.prompt_tokens?;
            Some(Usage::new(prompt, fields.completion_tokens.unwrap_or(0)))
        });
        Ok(Self {
            bytes: Some(bytes),
            tree: OnceLock::new(),
            usage,
        })
    }

    /// The answer's `usage`, when it has a usable one.
    pub fn usage(&self) -> Option<Usage> {
        self.usage
    }

    /// The answer as a JSON tree, built on first use.
    pub fn tree(&self) -> &Value {
        self.tree
            .get_or_init(|| self.bytes.as_ref().map(reparse).unwrap_or_default())
    }

    /// The answer as a JSON tree, owned.
    pub fn into_tree(self) -> Value {
        let Self { bytes, tree, .. } = self;
        tree.into_inner()
            .or_else(|| bytes.as_ref().map(reparse))
            .unwrap_or_default()
    }

    /// The bytes the upstream sent, when the answer is exactly them.
    pub fn upstream_bytes(&self) -> Option<&Bytes> {
        self.bytes.as_ref()
    }
}

/// Bytes [`Answer::from_upstream`] has already checked to be JSON.
fn reparse(bytes: &Bytes) -> Value {
    serde_json::from_slice(bytes).unwrap_or_default()
}

pub(super) fn parse_answer(answer: &Bytes) -> Result<Value, GatewayError> {
    serde_json::from_slice(answer).map_err(|_| GatewayError::UpstreamFailed {
        summary: "the upstream's answer was not JSON".to_owned(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;

    fn upstream(text: &str) -> Result<Answer, GatewayError> {
        Answer::from_upstream(Bytes::from(text.to_owned()))
    }

    #[test]
    fn the_tree_is_built_only_when_read_and_matches_the_bytes() {
        let answer = upstream(r#"{"id": "a", "usage": {"prompt_tokens": 3, "completion_tokens": 4, "details": {"x": [1]}}}"#).unwrap();
        assert_eq!(answer.usage(), Some(Usage::new(3, 4)));
        assert!(answer.tree.get().is_none(), "read before anything asked");
        assert_eq!(answer.tree()["id"], "a");
        assert_eq!(answer.into_tree()["usage"]["details"]["x"][0], 1);
    }

    #[test]
    fn usage_reads_as_it_does_from_the_tree() {
        let bodies = [
            r#"{"usage": {"prompt_tokens": 3}}"#,
            r#"{"usage": {"prompt_tokens": 3, "completion_tokens": null}}"#,
            r#"{"usage": {"prompt_tokens": 3, "completion_tokens": "4"}}"#,
            r#"{"usage": {"prompt_tokens": 3.5, "completion_tokens": 4}}"#,
            r#"{"usage": {"completion_tokens": 4}}"#,
            r#"{"usage": null}"#,
            r#"{"usage": [1, 2]}"#,
            r#"{"usage": {"prompt_tokens": 1}, "usage": {"prompt_tokens": 2}}"#,
            r#"{}"#,
            r#"[{"usage": {"prompt_tokens": 3}}]"#,
            r#""text""#,
        ];
        for body in bodies {
            let tree: Value = serde_json::from_str(body).unwrap();
            let answer = upstream(body).unwrap();
            assert_eq!(answer.usage(), Usage::from_body(&tree), "{body}");
            assert_eq!(answer.tree(), &tree, "{body}");
        }
    }

    #[test]
    fn what_is_not_json_is_an_upstream_failure() {
        let nested = |depth| {
            let (open, close) = ("[".repeat(depth), "]".repeat(depth));
            format!(r#"{{"x": {open}1{close}, "usage": {{"prompt_tokens": 1}}}}"#)
        };
        assert!(upstream(&nested(100)).is_ok());
        // Refused as a tree would refuse it, so that a tree built later cannot fail.
        let too_deep = nested(200);
        assert!(serde_json::from_str::<Value>(&too_deep).is_err());
        let out_of_range = r#"{"x": 1e400, "usage": {"prompt_tokens": 1}}"#;
        assert!(serde_json::from_str::<Value>(out_of_range).is_err());
        let bodies = [
            "",
            "{",
            r#"{"usage": {"prompt_tokens": 3}} trailing"#,
            "<html>",
        ];
        for body in bodies.into_iter().chain([too_deep.as_str(), out_of_range]) {
            assert!(
                matches!(upstream(body), Err(GatewayError::UpstreamFailed { .. })),
                "{body}"
            );
        }
    }

    #[test]
    fn a_tree_answer_has_no_upstream_bytes() {
        let answer =
            Answer::from_tree(json!({"usage": {"prompt_tokens": 2, "completion_tokens": 1}}));
        assert_eq!(answer.upstream_bytes(), None);
        assert_eq!(answer.usage(), Some(Usage::new(2, 1)));
    }
}

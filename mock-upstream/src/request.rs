//! A read-only view of an incoming chat completion request.

use std::borrow::Cow;

use serde_json::Value;

/// The parts of a chat completion request that the mock looks at.
#[derive(Debug)]
pub(crate) struct ChatRequest<'a> {
    pub messages: &'a [Value],
    pub tools: &'a [Value],
    /// The body's `model`, else the Azure deployment, else the mock's default model.
    pub model: String,
    pub stream: bool,
    pub include_usage: bool,
    /// Asked through `/v1/messages`: answered in Anthropic's shapes.
    pub anthropic: bool,
}

impl<'a> ChatRequest<'a> {
    /// Validates the minimum OpenAI requires (an object with a `messages` array).
    pub(crate) fn parse(
        body: &'a Value,
        deployment: Option<&str>,
        default_model: &str,
    ) -> Result<Self, &'static str> {
        let Some(object) = body.as_object() else {
            return Err("The request body must be a JSON object.");
        };
        let Some(messages) = object.get("messages").and_then(Value::as_array) else {
            return Err("'messages' is a required property and must be an array.");
        };
        let model = object
            .get("model")
            .and_then(Value::as_str)
            .filter(|model| !model.is_empty())
            .or(deployment)
            .unwrap_or(default_model)
            .to_owned();
        Ok(Self {
            messages,
            tools: object
                .get("tools")
                .and_then(Value::as_array)
                .map_or(&[], Vec::as_slice),
            model,
            stream: object
                .get("stream")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            include_usage: object
                .get("stream_options")
                .and_then(|options| options.get("include_usage"))
                .and_then(Value::as_bool)
                .unwrap_or(false),
            anthropic: false,
        })
    }

    /// Names of the offered function tools.
    pub(crate) fn tool_names(&self) -> impl Iterator<Item = &'a str> {
        self.tools
            .iter()
            .filter_map(|tool| tool.get("function")?.get("name")?.as_str())
    }

    pub(crate) fn last_role(&self) -> Option<&'a str> {
        self.messages.last()?.get("role")?.as_str()
    }

    /// The text of the last `user` message, if any.
    pub(crate) fn last_user_text(&self) -> Option<Cow<'a, str>> {
        self.messages
            .iter()
            .rev()
            .find(|message| message.get("role").and_then(Value::as_str) == Some("user"))
            .map(content_text)
    }

    /// The trailing run of `tool` messages (the results of the last assistant turn), in order.
    pub(crate) fn trailing_tool_messages(&self) -> &'a [Value] {
        let count = self
            .messages
            .iter()
            .rev()
            .take_while(|message| message.get("role").and_then(Value::as_str) == Some("tool"))
            .count();
        self.messages
            .get(self.messages.len() - count..)
            .unwrap_or_default()
    }

    /// Deterministic prompt estimate: characters of all message contents / 4, at least 1.
    pub(crate) fn prompt_tokens(&self) -> u64 {
        let chars: usize = self
            .messages
            .iter()
            .map(|message| content_text(message).chars().count())
            .sum();
        estimate_tokens(chars)
    }
}

/// A message's text: a string `content`, or the `text` parts of an array `content` joined.
pub(crate) fn content_text(message: &Value) -> Cow<'_, str> {
    match message.get("content") {
        Some(Value::String(text)) => Cow::Borrowed(text),
        Some(Value::Array(parts)) => {
            let texts: Vec<&str> = parts
                .iter()
                .filter_map(|part| part.get("text")?.as_str())
                .collect();
            match texts.as_slice() {
                [single] => Cow::Borrowed(single),
                _ => Cow::Owned(texts.concat()),
            }
        }
        _ => Cow::Borrowed(""),
    }
}

/// Characters / 4, at least 1.
pub(crate) fn estimate_tokens(chars: usize) -> u64 {
    u64::try_from(chars / 4).unwrap_or(u64::MAX).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parse_reads_model_stream_and_usage_flags() -> Result<(), &'static str> {
        let body =
            json!({"messages": [], "stream": true, "stream_options": {"include_usage": true}});
        let request = ChatRequest::parse(&body, Some("my-deployment"), "default")?;
        assert_eq!(request.model, "my-deployment");
        assert!(request.stream && request.include_usage);
        let body = json!({"model": "x", "messages": []});
        let request = ChatRequest::parse(&body, Some("my-deployment"), "default")?;
        assert_eq!(request.model, "x");
        assert!(!request.stream && !request.include_usage);
        Ok(())
    }

    #[test]
    fn parse_rejects_bodies_without_messages() {
        assert!(ChatRequest::parse(&json!({"model": "x"}), None, "d").is_err());
        assert!(ChatRequest::parse(&json!([1]), None, "d").is_err());
    }

    #[test]
    fn content_text_handles_strings_parts_and_null() {
        assert_eq!(content_text(&json!({"content": "hi"})), "hi");
        assert_eq!(
            content_text(
                &json!({"content": [{"type":"text","text":"a"},{"type":"text","text":"b"}]})
            ),
            "ab"
        );
        assert_eq!(content_text(&json!({"content": null})), "");
    }

    #[test]
    fn prompt_tokens_is_chars_over_four_at_least_one() -> Result<(), &'static str> {
        let body = json!({"messages": [{"role":"user","content":"12345678"},{"role":"user","content":"1234"}]});
        assert_eq!(ChatRequest::parse(&body, None, "d")?.prompt_tokens(), 3);
        let body = json!({"messages": []});
        assert_eq!(ChatRequest::parse(&body, None, "d")?.prompt_tokens(), 1);
        Ok(())
    }

    #[test]
    fn trailing_tool_messages_stop_at_the_assistant_turn() -> Result<(), &'static str> {
        let body = json!({"messages": [
            {"role":"tool","content":"old"},
            {"role":"assistant","content":null},
            {"role":"tool","content":"a"},
            {"role":"tool","content":"b"}
        ]});
        let request = ChatRequest::parse(&body, None, "d")?;
        let texts: Vec<_> = request
            .trailing_tool_messages()
            .iter()
            .map(content_text)
            .collect();
        assert_eq!(texts, ["a", "b"]);
        Ok(())
    }
}

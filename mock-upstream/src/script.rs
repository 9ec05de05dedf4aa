//! The default "model": what the mock answers when no reply is queued.
//!
//! It uses tollgate's four tools the way a real model would, deterministically:
//! - tools offered and the last message is from the user → parallel tool calls chosen from the
//!   user's text (always `whoami`; `lookup_fact` when a known topic is mentioned; `summarize` when
//!   the text says "summar…"; `echo` when it says "echo"), restricted to the offered tools;
//! - the last message is a tool result → a final text citing the serving instance and the fact
//!   (or summary) found in the tool results;
//! - otherwise → a plain text answer that depends on the last user message.

use serde_json::{Value, json};

use crate::{
    Reply,
    request::{ChatRequest, content_text},
};

/// Keywords (lowercase, checked in this order, first present wins) and the `lookup_fact` topic.
const TOPICS: [(&str, &str); 9] = [
    ("slot", "deployment slots"),
    ("scal", "app service scaling"),
    ("cache", "semantic caching"),
    ("token", "token limits"),
    ("circuit", "circuit breaker"),
    ("health", "health probes"),
    ("mcp", "mcp"),
    ("retry", "retry-after"),
    ("rate limit", "rate limiting"),
];

/// How deep to look for a field inside tool results (including JSON nested in strings).
const MAX_DEPTH: usize = 6;

/// The default reply to this request.
pub(crate) fn default_reply(request: &ChatRequest<'_>) -> Reply {
    match request.last_role() {
        Some("tool") => Reply::Text(final_answer(request.trailing_tool_messages())),
        Some("user") if !request.tools.is_empty() => {
            let text = request.last_user_text().unwrap_or_default();
            let offered: Vec<&str> = request.tool_names().collect();
            match plan_tool_calls(&text, &offered) {
                calls if calls.is_empty() => Reply::Text(plain_answer(Some(&text))),
                calls => Reply::ToolCalls {
                    content: None,
                    calls,
                },
            }
        }
        _ => Reply::Text(plain_answer(request.last_user_text().as_deref())),
    }
}

/// The `lookup_fact` topic of a prompt, if it mentions one.
pub(crate) fn topic_of(text: &str) -> Option<&'static str> {
    let lower = text.to_lowercase();
    TOPICS
        .iter()
        .find(|(keyword, _)| lower.contains(keyword))
        .map(|(_, topic)| *topic)
}

/// Tool calls (name, arguments JSON) for a user prompt, limited to the offered tools. When none
/// of our tools is offered, the first offered tool is called with `{}`.
fn plan_tool_calls(text: &str, offered: &[&str]) -> Vec<(String, String)> {
    let lower = text.to_lowercase();
    let topic = topic_of(&lower);
    let mut calls: Vec<(&str, Value)> = vec![("whoami", json!({}))];
    if let Some(topic) = topic {
        calls.push(("lookup_fact", json!({ "topic": topic })));
    }
    if lower.contains("summar") {
        let arguments = match topic {
            Some(topic) => json!({ "topic": topic }),
            None => json!({ "text": text }),
        };
        calls.push(("summarize", arguments));
    }
    if lower.contains("echo") {
        calls.push(("echo", json!({ "message": text })));
    }
    let mut planned: Vec<(String, String)> = calls
        .into_iter()
        .filter(|(name, _)| offered.contains(name))
        .map(|(name, arguments)| (name.to_owned(), arguments.to_string()))
        .collect();
    if planned.is_empty()
        && let Some(first) = offered.first()
    {
        planned.push(((*first).to_owned(), "{}".to_owned()));
    }
    planned
}

/// The final answer after a tool turn, citing what the tools reported.
fn final_answer(tool_messages: &[Value]) -> String {
    let mut instance = None;
    let mut fact = None;
    let mut summary = None;
    for message in tool_messages {
        let Some(result) = parse_lenient(&content_text(message)) else {
            continue;
        };
        instance = instance.or_else(|| find_field(&result, "instance_id", 0));
        fact = fact.or_else(|| find_field(&result, "fact", 0));
        summary = summary.or_else(|| find_field(&result, "summary", 0));
    }
    let mut answer = match instance {
        Some(id) => format!("Served by instance {id}."),
        None => "The tools did not report a serving instance.".to_owned(),
    };
    match (fact, summary) {
        (Some(fact), _) => {
            answer.push_str(" Here is what I found: ");
            answer.push_str(&fact);
        }
        (None, Some(summary)) => {
            answer.push_str(" Summary: ");
            answer.push_str(&summary);
        }
        (None, None) => answer.push_str(" I used the tools to answer your request."),
    }
    answer
}

/// A plain answer that depends only on the last user message.
fn plain_answer(user_text: Option<&str>) -> String {
    match user_text.map(str::trim).filter(|text| !text.is_empty()) {
        Some(text) => format!(
            "You asked: \"{text}\". This is a deterministic answer from the tollgate mock model."
        ),
        None => "Hello! This is a deterministic answer from the tollgate mock model.".to_owned(),
    }
}

/// Parses a tool result as JSON; if it is text around a JSON object, parses the object.
fn parse_lenient(text: &str) -> Option<Value> {
    if let Ok(value) = serde_json::from_str(text) {
        return Some(value);
    }
    let start = text.find('{')?;
    let end = text.rfind('}')?;
    serde_json::from_str(text.get(start..=end)?).ok()
}

/// The first string (or number) value of `key`, searching objects breadth-first per level,
/// arrays, and JSON nested inside strings (as in MCP `content[].text`).
fn find_field(value: &Value, key: &str, depth: usize) -> Option<String> {
    if depth > MAX_DEPTH {
        return None;
    }
    match value {
        Value::Object(map) => {
            match map.get(key) {
                Some(Value::String(found)) => return Some(found.clone()),
                Some(Value::Number(found)) => return Some(found.to_string()),
                _ => {}
            }
            map.values()
                .find_map(|inner| find_field(inner, key, depth + 1))
        }
        Value::Array(items) => items
            .iter()
            .find_map(|inner| find_field(inner, key, depth + 1)),
        Value::String(text) if text.trim_start().starts_with(['{', '[']) => {
            let nested: Value = serde_json::from_str(text).ok()?;
            find_field(&nested, key, depth + 1)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL_TOOLS: [&str; 4] = ["whoami", "echo", "lookup_fact", "summarize"];

    fn names(calls: &[(String, String)]) -> Vec<&str> {
        calls.iter().map(|(name, _)| name.as_str()).collect()
    }

    #[test]
    fn topics_follow_the_keyword_table_order() {
        assert_eq!(
            topic_of("How do deployment SLOTS work?"),
            Some("deployment slots")
        );
        assert_eq!(topic_of("scaling my cache"), Some("app service scaling"));
        assert_eq!(topic_of("What is a Rate Limit?"), Some("rate limiting"));
        assert_eq!(topic_of("hello"), None);
    }

    #[test]
    fn plan_always_cites_the_instance_and_adds_matching_tools() {
        let calls = plan_tool_calls("Please summarize the cache and echo this", &ALL_TOOLS);
        assert_eq!(
            names(&calls),
            ["whoami", "lookup_fact", "summarize", "echo"]
        );
        assert_eq!(calls[1].1, r#"{"topic":"semantic caching"}"#);
        assert_eq!(calls[2].1, r#"{"topic":"semantic caching"}"#);
        assert_eq!(
            calls[3].1,
            r#"{"message":"Please summarize the cache and echo this"}"#
        );
        assert_eq!(names(&plan_tool_calls("hi", &ALL_TOOLS)), ["whoami"]);
        let summary = plan_tool_calls("summarize: foo bar", &ALL_TOOLS);
        assert_eq!(summary[1].1, r#"{"text":"summarize: foo bar"}"#);
    }

    #[test]
    fn plan_only_calls_offered_tools() {
        assert_eq!(
            names(&plan_tool_calls("slots", &["lookup_fact"])),
            ["lookup_fact"]
        );
        let other = plan_tool_calls("slots", &["get_weather"]);
        assert_eq!(other, [("get_weather".to_owned(), "{}".to_owned())]);
        assert!(plan_tool_calls("slots", &[]).is_empty());
    }

    #[test]
    fn final_answer_cites_instance_and_fact() {
        let messages = [
            json!({"role":"tool","content":"{\"instance_id\":\"inst-7\",\"user\":\"x\"}"}),
            json!({"role":"tool","content":[{"type":"text","text":"{\"topic\":\"t\",\"fact\":\"Slots swap.\",\"instance_id\":\"inst-7\"}"}]}),
        ];
        assert_eq!(
            final_answer(&messages),
            "Served by instance inst-7. Here is what I found: Slots swap."
        );
    }

    #[test]
    fn final_answer_finds_nested_and_embedded_fields() {
        let messages = [json!({"role":"tool","content":
            "result: {\"content\":[{\"type\":\"text\",\"text\":\"{\\\"summary\\\":\\\"Short.\\\",\\\"instance_id\\\":\\\"i1\\\"}\"}]}"
        })];
        assert_eq!(
            final_answer(&messages),
            "Served by instance i1. Summary: Short."
        );
        let nothing = [json!({"role":"tool","content":"not json"})];
        assert!(final_answer(&nothing).starts_with("The tools did not report"));
    }

    #[test]
    fn plain_answer_depends_on_the_prompt() {
        assert!(plain_answer(Some(" hi ")).starts_with("You asked: \"hi\"."));
        assert!(plain_answer(None).starts_with("Hello!"));
    }
}

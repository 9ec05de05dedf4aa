//! An Anthropic Messages request read into the neutral form (the OpenAI chat map).
//!
//! `system` becomes a system message; text and image blocks become content parts; an
//! assistant's `tool_use` blocks become `tool_calls`; a user's `tool_result` blocks become `tool`
//! messages placed before the rest of that user turn. `tools`, `tool_choice`, `stop_sequences`,
//! `temperature`, `top_p` and `metadata.user_id` have chat equivalents. What chat completions
//! cannot say (`thinking` and `redacted_thinking` blocks, `cache_control`, `top_k`, beta fields)
//! is left out of the translation; a native upstream still gets it (see `native`).

use serde_json::{Map, Value, json};

use crate::error::GatewayError;

type Result<T> = std::result::Result<T, GatewayError>;

fn invalid(message: impl Into<String>) -> GatewayError {
    GatewayError::InvalidRequest(message.into())
}

/// The chat map of a Messages request: model, messages, tools and parameters.
pub(super) fn to_chat(body: &Map<String, Value>) -> Result<Map<String, Value>> {
    let mut chat = Map::new();
    match body.get("model") {
        Some(Value::String(model)) if !model.is_empty() => {
            chat.insert("model".to_owned(), Value::from(model.as_str()));
        }
        _ => return Err(invalid("model: Field required (a non-empty string)")),
    }
    match body.get("max_tokens") {
        Some(value @ Value::Number(_)) => {
            chat.insert("max_tokens".to_owned(), value.clone());
        }
        _ => return Err(invalid("max_tokens: Field required (a positive integer)")),
    }
    let mut messages = system_messages(body.get("system"))?;
    let turns = body
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("messages: Field required (an array)"))?;
    if turns.is_empty() {
        return Err(invalid("messages: at least one message is required"));
    }
    for (index, turn) in turns.iter().enumerate() {
        read_turn(turn, &mut messages).map_err(|e| invalid(format!("messages.{index}: {e}")))?;
    }
    chat.insert("messages".to_owned(), Value::Array(messages));
    if let Some(stream) = body.get("stream") {
        chat.insert("stream".to_owned(), stream.clone());
    }
    copy_parameters(body, &mut chat)?;
    Ok(chat)
}

/// `temperature`, `top_p`, `stop_sequences`, `metadata`, `tools` and `tool_choice`.
fn copy_parameters(body: &Map<String, Value>, chat: &mut Map<String, Value>) -> Result<()> {
    for field in ["temperature", "top_p"] {
        match body.get(field) {
            None | Some(Value::Null) => {}
            Some(value @ Value::Number(_)) => {
                chat.insert(field.to_owned(), value.clone());
            }
            Some(_) => return Err(invalid(format!("{field}: must be a number"))),
        }
    }
    match body.get("stop_sequences") {
        None | Some(Value::Null) => {}
        Some(Value::Array(stops)) if stops.iter().all(Value::is_string) => {
            if !stops.is_empty() {
                chat.insert("stop".to_owned(), Value::Array(stops.clone()));
            }
        }
        Some(_) => return Err(invalid("stop_sequences: must be an array of strings")),
    }
    if let Some(user) = body
        .get("metadata")
        .and_then(|m| m.get("user_id"))
        .and_then(Value::as_str)
    {
        chat.insert("user".to_owned(), Value::from(user));
    }
    if let Some(tools) = body.get("tools").filter(|t| !t.is_null()) {
        let tools = read_tools(tools)?;
        if !tools.is_empty() {
            chat.insert("tools".to_owned(), Value::Array(tools));
        }
    }
    if let Some(choice) = body.get("tool_choice").filter(|c| !c.is_null()) {
        read_tool_choice(choice, chat)?;
    }
    Ok(())
}

/// `system` as a string or as text blocks: one system message.
fn system_messages(system: Option<&Value>) -> Result<Vec<Value>> {
    let text = match system {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(blocks)) => {
            let mut texts = Vec::with_capacity(blocks.len());
            for block in blocks {
                match (block_type(block), block.get("text").and_then(Value::as_str)) {
                    (Some("text"), Some(text)) => texts.push(text),
                    _ => return Err(invalid("system: blocks must be text blocks")),
                }
            }
            texts.join("\n\n")
        }
        Some(_) => {
            return Err(invalid(
                "system: must be a string or an array of text blocks",
            ));
        }
    };
    if text.is_empty() {
        return Ok(Vec::new());
    }
    Ok(vec![json!({"role": "system", "content": text})])
}

fn block_type(block: &Value) -> Option<&str> {
    block.get("type").and_then(Value::as_str)
}

/// One Messages turn as one or more chat messages.
fn read_turn(turn: &Value, out: &mut Vec<Value>) -> std::result::Result<(), String> {
    let role = turn
        .get("role")
        .and_then(Value::as_str)
        .ok_or("role: Field required")?;
    if role == "system" {
        // Claude Code puts system turns between the others (as text blocks); chat
        // completions take system messages anywhere.
        let text = system_messages(turn.get("content")).map_err(|e| e.to_string())?;
        out.extend(text);
        return Ok(());
    }
    if role != "user" && role != "assistant" {
        return Err(format!(
            "role: must be `user`, `assistant` or `system`, not `{role}`"
        ));
    }
    let blocks = match turn.get("content") {
        Some(Value::String(text)) => {
            out.push(json!({"role": role, "content": text}));
            return Ok(());
        }
        Some(Value::Array(blocks)) => blocks,
        _ => return Err("content: must be a string or an array of content blocks".to_owned()),
    };
    let mut parts = Vec::new();
    let mut tool_calls = Vec::new();
    for (index, block) in blocks.iter().enumerate() {
        read_block(role, block, &mut parts, &mut tool_calls, out)
            .map_err(|e| format!("content.{index}: {e}"))?;
    }
    if role == "assistant" {
        let text: String = parts
            .iter()
            .filter_map(|part| part.get("text").and_then(Value::as_str))
            .collect();
        if text.is_empty() && tool_calls.is_empty() {
            return Ok(());
        }
        let mut message = json!({"role": "assistant", "content": if text.is_empty() { Value::Null } else { Value::from(text) }});
        if !tool_calls.is_empty() {
            message["tool_calls"] = Value::Array(tool_calls);
        }
        out.push(message);
    } else if !parts.is_empty() {
        out.push(json!({"role": "user", "content": parts}));
    }
    Ok(())
}

/// One content block: a part of the turn's message, a tool call, or a `tool` message of its own.
fn read_block(
    role: &str,
    block: &Value,
    parts: &mut Vec<Value>,
    tool_calls: &mut Vec<Value>,
    out: &mut Vec<Value>,
) -> std::result::Result<(), String> {
    match (role, block_type(block)) {
        (_, Some("text")) => {
            let text = block
                .get("text")
                .and_then(Value::as_str)
                .ok_or("text: Field required")?;
            parts.push(json!({"type": "text", "text": text}));
        }
        ("user", Some("image")) => parts.push(image_part(block)?),
        ("assistant", Some("tool_use")) => tool_calls.push(tool_call(block)?),
        ("user", Some("tool_result")) => out.push(tool_message(block)?),
        // Reasoning the chat API has no place for; it is not part of the answer's text.
        (_, Some("thinking" | "redacted_thinking")) => {}
        (_, Some(kind)) => {
            return Err(format!(
                "a `{kind}` block is not supported in a `{role}` message"
            ));
        }
        (_, None) => return Err("type: Field required".to_owned()),
    }
    Ok(())
}

fn image_part(block: &Value) -> std::result::Result<Value, String> {
    let source = block.get("source").ok_or("source: Field required")?;
    let field = |name: &str| {
        source
            .get(name)
            .and_then(Value::as_str)
            .ok_or(format!("source.{name}: Field required"))
    };
    let url = match source.get("type").and_then(Value::as_str) {
        Some("base64") => format!("data:{};base64,{}", field("media_type")?, field("data")?),
        Some("url") => field("url")?.to_owned(),
        _ => return Err("source.type: must be `base64` or `url`".to_owned()),
    };
    Ok(json!({"type": "image_url", "image_url": {"url": url}}))
}

fn tool_call(block: &Value) -> std::result::Result<Value, String> {
    let id = block
        .get("id")
        .and_then(Value::as_str)
        .ok_or("id: Field required")?;
    let name = block
        .get("name")
        .and_then(Value::as_str)
        .ok_or("name: Field required")?;
    let input = block.get("input").cloned().unwrap_or_else(|| json!({}));
    Ok(json!({
        "id": id,
        "type": "function",
        "function": {"name": name, "arguments": input.to_string()},
    }))
}

/// A `tool_result` block as a `tool` message; its text is the result's string or text blocks.
fn tool_message(block: &Value) -> std::result::Result<Value, String> {
    let id = block
        .get("tool_use_id")
        .and_then(Value::as_str)
        .ok_or("tool_use_id: Field required")?;
    let mut text = match block.get("content") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(blocks)) => blocks
            .iter()
            .filter_map(|b| b.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        Some(_) => return Err("content: must be a string or an array of blocks".to_owned()),
    };
    if block.get("is_error").and_then(Value::as_bool) == Some(true) {
        text.insert_str(0, "Error: ");
    }
    Ok(json!({"role": "tool", "tool_call_id": id, "content": text}))
}

/// Client tools (`name`, `description`, `input_schema`) as function tools. Anthropic's server
/// tools (a `type` other than `custom`: web search, code execution…) run on Anthropic's side and
/// have no chat equivalent: they are left out, so the model answers without them.
fn read_tools(tools: &Value) -> Result<Vec<Value>> {
    let tools = tools
        .as_array()
        .ok_or_else(|| invalid("tools: must be an array"))?;
    let mut functions = Vec::with_capacity(tools.len());
    for (index, tool) in tools.iter().enumerate() {
        match tool.get("type").and_then(Value::as_str) {
            None | Some("custom") => {}
            Some(_) => continue,
        }
        let name = tool
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid(format!("tools.{index}.name: Field required")))?;
        let schema = tool
            .get("input_schema")
            .filter(|s| s.is_object())
            .ok_or_else(|| invalid(format!("tools.{index}.input_schema: Field required")))?;
        let mut function = json!({"name": name, "parameters": schema});
        if let Some(description) = tool.get("description").and_then(Value::as_str) {
            function["description"] = Value::from(description);
        }
        functions.push(json!({"type": "function", "function": function}));
    }
    Ok(functions)
}

fn read_tool_choice(choice: &Value, chat: &mut Map<String, Value>) -> Result<()> {
    let translated = match choice.get("type").and_then(Value::as_str) {
        Some("auto") => Value::from("auto"),
        Some("any") => Value::from("required"),
        Some("none") => Value::from("none"),
        Some("tool") => {
            let name = choice
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid("tool_choice.name: Field required"))?;
            json!({"type": "function", "function": {"name": name}})
        }
        _ => {
            return Err(invalid(
                "tool_choice.type: must be `auto`, `any`, `tool` or `none`",
            ));
        }
    };
    chat.insert("tool_choice".to_owned(), translated);
    // Chat completions take `parallel_tool_calls` only beside tools.
    let serial = choice
        .get("disable_parallel_tool_use")
        .and_then(Value::as_bool);
    if chat.contains_key("tools") && serial == Some(true) {
        chat.insert("parallel_tool_calls".to_owned(), Value::Bool(false));
    }
    Ok(())
}

//! The agent's system instructions and the tool definitions it offers the model.

use std::sync::LazyLock;

use serde_json::{Value, json};

/// Grounding first: facts come from tools, and every answer names the instance that served it.
pub const SYSTEM_INSTRUCTIONS: &str = "You are tollgate's assistant. Answer using the tools, not \
memory: call `lookup_fact` for facts about App Service, MCP and the gateway, `summarize` to \
condense text or built-in docs, `echo` when asked to echo, and always call `whoami` once so you \
can cite the instance that served the request. Call independent tools in parallel. If a tool \
returns an error, fix the arguments or choose another tool. Keep answers short, base them on the \
tool results, and end with 'Served by instance <instance_id>.'";

/// The four tools in OpenAI's function-calling format, built from the same catalog the MCP
/// server lists, so both surfaces always agree.
pub static TOOL_DEFINITIONS: LazyLock<Value> = LazyLock::new(|| {
    tools::catalog()
        .iter()
        .map(|spec| {
            json!({
                "type": "function",
                "function": {
                    "name": spec.name,
                    "description": spec.description,
                    "parameters": Value::Object((*spec.input_schema).clone()),
                }
            })
        })
        .collect()
});

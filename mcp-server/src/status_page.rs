//! `GET /`: a small HTML page telling an operator what this instance is and how to connect.

use std::fmt::Write;

use crate::state::AppState;

pub fn render(state: &AppState, host: &str) -> String {
    let mut tools = String::new();
    for spec in tools::catalog() {
        let _ = write!(
            tools,
            "<li><code>{}</code>: {}</li>",
            escape(spec.name),
            escape(spec.description)
        );
    }
    let auth = match (state.http.keys_required, state.oauth.is_some()) {
        (_, true) => {
            "subscription key or OAuth access token required (<code>Authorization: Bearer</code>; see <code>/.well-known/oauth-protected-resource/mcp</code>)"
        }
        (true, false) => {
            "subscription key required (<code>Ocp-Apim-Subscription-Key</code>, <code>api-key</code> or <code>Authorization: Bearer</code>)"
        }
        (false, false) => "open (no subscription keys configured)",
    };
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>tollgate</title>
<style>body{{font-family:system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem;color:#222}}
code{{background:#f3f3f3;padding:0 .25rem}}dt{{font-weight:600}}</style></head>
<body><h1>tollgate {version}</h1>
<dl>
<dt>Instance</dt><dd><code>{instance}</code></dd>
<dt>MCP endpoint</dt><dd><code>http://{host}/mcp</code> (streamable HTTP, stateless)</dd>
<dt>Access</dt><dd>{auth}</dd>
<dt>Tool routing</dt><dd><code>{routing}</code></dd>
<dt>State store</dt><dd><code>{store}</code></dd>
</dl>
<h2>Tools</h2><ul>{tools}</ul>
<p><a href="/dashboard">Dashboard</a> (admin key) · <a href="/health">/health</a> · <a href="/metrics">/metrics</a></p>
</body></html>"#,
        version = env!("CARGO_PKG_VERSION"),
        instance = escape(&state.instance.id),
        host = escape(host),
        routing = state.http.tool_routing.as_str(),
        store = state.gateway.state_store(),
    )
}

/// Minimal HTML escaping for text and attribute values.
fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

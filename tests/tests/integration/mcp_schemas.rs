//! Golden files of what `/mcp` lists: tools (names, descriptions, schemas, annotations),
//! resources, resource templates and prompts. The tool schemas are pinned portable too: no
//! nullable type arrays and no `format` outside JSON Schema's own.
//!
//! Regenerate after an intended change with `UPDATE_GOLDEN=1 cargo test -p tests --test
//! integration mcp_schemas`, then review the diff.

use serde_json::{Value, json};
use tests::{TestServer, post_mcp, rpc};

async fn listed(server: &TestServer, method: &str, field: &str) -> Value {
    let client = tests::http_client();
    let initialize = rpc(
        1,
        "initialize",
        json!({"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "golden", "version": "0"}}),
    );
    let response = post_mcp(&client, server, &initialize, &[]).await;
    assert_eq!(response.status(), 200);
    let response = post_mcp(
        &client,
        server,
        &rpc(2, method, json!({})),
        &[("mcp-protocol-version", "2025-06-18")],
    )
    .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    body["result"][field].clone()
}

fn assert_golden(file: &str, value: &Value) {
    let path = format!("{}/golden/{file}", env!("CARGO_MANIFEST_DIR"));
    let rendered = serde_json::to_string_pretty(value).unwrap() + "\n";
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(concat!(env!("CARGO_MANIFEST_DIR"), "/golden")).unwrap();
        std::fs::write(&path, &rendered).unwrap();
    }
    let golden = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!("golden file {path} missing: run with UPDATE_GOLDEN=1 and review it")
    });
    assert_eq!(
        rendered, golden,
        "{file} changed; if intended, regenerate the golden file"
    );
}

/// Every `type` a single string, and every `format` one JSON Schema defines.
fn assert_portable(tool: &str, schema: &Value) {
    match schema {
        Value::Object(map) => {
            if let Some(kind) = map.get("type") {
                assert!(kind.is_string(), "{tool}: a type array: {schema}");
            }
            if let Some(format) = map.get("format") {
                panic!("{tool}: `format` {format} in {schema}");
            }
            map.values().for_each(|inner| assert_portable(tool, inner));
        }
        Value::Array(items) => items.iter().for_each(|inner| assert_portable(tool, inner)),
        _ => {}
    }
}

#[tokio::test]
async fn tools_list_matches_the_golden_file_and_is_portable() {
    let server = TestServer::start(&[]).await;
    let tools = listed(&server, "tools/list", "tools").await;
    for tool in tools.as_array().unwrap() {
        let name = tool["name"].as_str().unwrap();
        assert_portable(name, &tool["inputSchema"]);
        assert_portable(name, &tool["outputSchema"]);
    }
    assert_golden("tools_list.json", &tools);
}

#[tokio::test]
async fn resources_templates_and_prompts_match_their_golden_files() {
    let server = TestServer::start(&[]).await;
    let resources = listed(&server, "resources/list", "resources").await;
    assert_golden("resources_list.json", &resources);
    let templates = listed(&server, "resources/templates/list", "resourceTemplates").await;
    assert_golden("resource_templates_list.json", &templates);
    let prompts = listed(&server, "prompts/list", "prompts").await;
    assert_golden("prompts_list.json", &prompts);
}

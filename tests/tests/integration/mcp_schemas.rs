//! Golden file of the `tools/list` answer: names, descriptions, schemas and annotations.
//!
//! Regenerate after an intended change with `UPDATE_GOLDEN=1 cargo test -p tests --test
//! mcp_schemas`, then review the diff.

use serde_json::{Value, json};
use tests::{TestServer, post_mcp, rpc};

const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/golden/tools_list.json");

#[tokio::test]
async fn tools_list_matches_the_golden_file() {
    let server = TestServer::start(&[]).await;
    let client = tests::http_client();
    let initialize = rpc(
        1,
        "initialize",
        json!({"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "golden", "version": "0"}}),
    );
    let response = post_mcp(&client, &server, &initialize, &[]).await;
    assert_eq!(response.status(), 200);
    let response = post_mcp(
        &client,
        &server,
        &rpc(2, "tools/list", json!({})),
        &[("mcp-protocol-version", "2025-06-18")],
    )
    .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let tools = body["result"]["tools"].clone();
    let rendered = serde_json::to_string_pretty(&tools).unwrap() + "\n";

    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(concat!(env!("CARGO_MANIFEST_DIR"), "/golden")).unwrap();
        std::fs::write(GOLDEN, &rendered).unwrap();
    }
    let golden = std::fs::read_to_string(GOLDEN)
        .expect("golden file missing: run with UPDATE_GOLDEN=1 and review it");
    assert_eq!(
        rendered, golden,
        "tools/list changed; if intended, regenerate the golden file"
    );
}

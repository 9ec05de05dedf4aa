//! The built-in documents as MCP resources and the prompts built on them: an rmcp client lists,
//! reads and gets them over HTTP; stateless 2026-07-28 requests get the cache hints (`ttlMs`,
//! `cacheScope`) on every list and read, `public` on an open server and `private` behind keys;
//! an unknown document is `-32602`.

use rmcp::{
    ServiceExt,
    model::{ClientConfig, GetPromptRequestParams, ReadResourceRequestParams, ResourceContents},
    transport::{
        StreamableHttpClientTransport, streamable_http_client::StreamableHttpClientTransportConfig,
    },
};
use serde_json::{Value, json};
use tests::{TestServer, meta_2026, post_mcp, rpc};

#[tokio::test]
async fn an_mcp_client_reads_every_document_and_gets_the_prompts() {
    let server = TestServer::start(&[]).await;
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(server.mcp_url()),
    );
    let client = ClientConfig::default()
        .serve(transport)
        .await
        .expect("initialize");

    let resources = client.list_resources(None).await.expect("resources/list");
    let uris: Vec<&str> = resources.resources.iter().map(|r| r.uri.as_str()).collect();
    assert!(
        uris.contains(&"tollgate://docs/gateway-policies"),
        "{uris:?}"
    );
    assert_eq!(uris.len(), tools::documents().len());
    for uri in uris {
        let read = client
            .read_resource(ReadResourceRequestParams::new(uri))
            .await
            .unwrap_or_else(|e| panic!("{uri}: {e}"));
        let ResourceContents::TextResourceContents {
            text, mime_type, ..
        } = &read.contents[0]
        else {
            panic!("{uri} is not text");
        };
        assert_eq!(mime_type.as_deref(), Some("text/markdown"));
        let name = uri.trim_start_matches("tollgate://docs/");
        assert_eq!(text, &tools::document(name).unwrap().markdown);
    }
    let templates = client
        .list_resource_templates(None)
        .await
        .expect("resources/templates/list");
    assert_eq!(
        templates.resource_templates[0].uri_template,
        "tollgate://docs/{name}"
    );

    let prompts = client.list_prompts(None).await.expect("prompts/list");
    let names: Vec<&str> = prompts.prompts.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["explain_scaling", "review_budget"]);
    let arguments = json!({"subscription": "team-red", "tokens_per_minute": "50000"});
    let prompt = client
        .get_prompt(
            GetPromptRequestParams::new("review_budget")
                .with_arguments(arguments.as_object().cloned().unwrap()),
        )
        .await
        .expect("prompts/get");
    let text = serde_json::to_string(&prompt.messages).unwrap();
    assert!(
        text.contains("team-red") && text.contains("50000"),
        "{text}"
    );
    assert!(text.contains("tollgate://docs/gateway-policies"), "{text}");
    let missing = client
        .get_prompt(GetPromptRequestParams::new("review_budget"))
        .await;
    assert!(missing.is_err(), "a required argument is missing");
    client.cancel().await.unwrap();
}

async fn stateless(server: &TestServer, method: &str, params: Value, key: Option<&str>) -> Value {
    let mut params = params;
    params["_meta"] = meta_2026();
    let name = params["uri"]
        .as_str()
        .or(params["name"].as_str())
        .map(str::to_owned);
    let mut headers = vec![
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", method),
    ];
    if let Some(name) = &name {
        headers.push(("mcp-name", name.as_str()));
    }
    if let Some(key) = key {
        headers.push(("api-key", key));
    }
    let response = post_mcp(
        &tests::http_client(),
        server,
        &rpc(3, method, params),
        &headers,
    )
    .await;
    response.json().await.unwrap()
}

#[tokio::test]
async fn every_list_and_read_carries_cache_hints() {
    let open = TestServer::start(&[]).await;
    let keyed = TestServer::start(&["--subscription-keys", "hints=key-hints"]).await;
    for (server, key, scope) in [
        (&open, None, "public"),
        (&keyed, Some("key-hints"), "private"),
    ] {
        for (method, params) in [
            ("tools/list", json!({})),
            ("resources/list", json!({})),
            ("resources/templates/list", json!({})),
            ("prompts/list", json!({})),
            ("resources/read", json!({"uri": "tollgate://docs/mcp"})),
        ] {
            let answer = stateless(server, method, params, key).await;
            let result = &answer["result"];
            assert!(
                result["ttlMs"].as_u64().is_some_and(|ttl| ttl > 0),
                "{method}: {answer}"
            );
            assert_eq!(result["cacheScope"], scope, "{method}: {answer}");
        }
    }
    let unknown = stateless(
        &open,
        "resources/read",
        json!({"uri": "tollgate://docs/nope"}),
        None,
    )
    .await;
    assert_eq!(unknown["error"]["code"], -32602, "{unknown}");
}

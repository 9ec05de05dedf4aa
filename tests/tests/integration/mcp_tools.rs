//! An rmcp client over real HTTP lists and calls the four tools, under the handshake protocol
//! revisions and under 2026-07-28 (no initialize), and gets clean errors for bad calls.

use rmcp::{
    ClientLifecycleMode, ClientServiceExt, RoleClient, ServiceExt,
    model::{CallToolRequestParams, ClientConfig, ProtocolVersion},
    service::RunningService,
    transport::{
        StreamableHttpClientTransport, streamable_http_client::StreamableHttpClientTransportConfig,
    },
};
use serde_json::{Map, Value, json};
use tests::TestServer;

type Client = RunningService<RoleClient, ClientConfig>;

async fn handshake_client(server: &TestServer) -> Client {
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(server.mcp_url()),
    );
    ClientConfig::default()
        .serve(transport)
        .await
        .expect("initialize")
}

async fn discover_client(server: &TestServer) -> Client {
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(server.mcp_url()),
    );
    ClientConfig::default()
        .serve_with_lifecycle(
            transport,
            ClientLifecycleMode::Discover {
                preferred_versions: vec![ProtocolVersion::V_2026_07_28],
            },
        )
        .await
        .expect("discover")
}

fn args(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("arguments must be an object, got {other}"),
    }
}

async fn call(client: &Client, name: &str, arguments: Value) -> rmcp::model::CallToolResult {
    client
        .call_tool(CallToolRequestParams::new(name.to_owned()).with_arguments(args(arguments)))
        .await
        .unwrap_or_else(|e| panic!("{name} failed: {e}"))
}

async fn exercise_every_tool(client: &Client, instance_id: &str) {
    let listed = client.list_tools(None).await.expect("tools/list");
    let names: Vec<&str> = listed.tools.iter().map(|t| t.name.as_ref()).collect();
    assert_eq!(names, ["whoami", "echo", "lookup_fact", "summarize"]);
    for tool in &listed.tools {
        assert!(
            tool.output_schema.is_some(),
            "{} has an output schema",
            tool.name
        );
        let annotations = tool.annotations.as_ref().expect("annotations");
        assert_eq!(annotations.read_only_hint, Some(true));
        assert_eq!(annotations.idempotent_hint, Some(true));
        assert_eq!(annotations.open_world_hint, Some(false));
    }

    let cases = [
        ("whoami", json!({})),
        ("echo", json!({"message": "hello tollgate"})),
        ("lookup_fact", json!({"topic": "Deployment-Slots"})),
        ("summarize", json!({"topic": "mcp", "max_sentences": 2})),
    ];
    for (name, arguments) in cases {
        let result = call(client, name, arguments).await;
        assert_ne!(result.is_error, Some(true), "{name}: {result:?}");
        let structured = result.structured_content.expect("structured content");
        assert_eq!(structured["instance_id"], instance_id, "{name}");
    }
    let echoed = call(client, "echo", json!({"message": "hello tollgate"})).await;
    assert_eq!(
        echoed.structured_content.unwrap()["message"],
        "hello tollgate"
    );
    let fact = call(client, "lookup_fact", json!({"topic": "deployment slots"})).await;
    assert_eq!(fact.structured_content.unwrap()["found"], true);
}

#[tokio::test]
async fn handshake_client_lists_and_calls_the_four_tools() {
    let server = TestServer::start(&["--instance-id", "inst-handshake"]).await;
    let client = handshake_client(&server).await;
    exercise_every_tool(&client, "inst-handshake").await;
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn protocol_2026_07_28_works_without_initialize() {
    let server = TestServer::start(&["--instance-id", "inst-2026"]).await;
    let client = discover_client(&server).await;
    exercise_every_tool(&client, "inst-2026").await;
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn bad_calls_get_clean_errors_and_the_server_stays_up() {
    let server = TestServer::start(&[]).await;
    let client = handshake_client(&server).await;

    // Malformed calls are JSON-RPC errors (invalid params), naming the problem.
    for (name, arguments, needle) in [
        ("echo", json!({"message": 42}), "message"),
        ("echo", json!({}), "message"),
        ("lookup_fact", json!({"topic": ["a"]}), "topic"),
        (
            "summarize",
            json!({"max_sentences": "three", "text": "x"}),
            "max_sentences",
        ),
        ("no_such_tool", json!({}), "no_such_tool"),
    ] {
        let error = client
            .call_tool(
                CallToolRequestParams::new(name.to_owned()).with_arguments(args(arguments.clone())),
            )
            .await
            .expect_err(&format!("{name} {arguments} must fail"));
        let text = error.to_string();
        assert!(text.contains(needle), "{name} {arguments}: {text}");
    }

    // A well-formed call the tool refuses is an isError result the model can read.
    let refused = call(&client, "summarize", json!({})).await;
    assert_eq!(refused.is_error, Some(true));
    let too_long = call(&client, "echo", json!({"message": "x".repeat(65_537)})).await;
    assert_eq!(too_long.is_error, Some(true));

    // A miss is not an error.
    let miss = call(&client, "lookup_fact", json!({"topic": "quantum knitting"})).await;
    assert_ne!(miss.is_error, Some(true));
    let miss = miss.structured_content.unwrap();
    assert_eq!(miss["found"], false);
    assert!(
        miss["available_topics"]
            .as_array()
            .is_some_and(|t| !t.is_empty())
    );

    // Still serving.
    let result = call(&client, "whoami", json!({})).await;
    assert_ne!(result.is_error, Some(true));
    client.cancel().await.unwrap();
}

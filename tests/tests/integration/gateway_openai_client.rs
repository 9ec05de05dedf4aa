//! A foreign client against the endpoint: the `async-openai` crate, pointed at tollgate's `/v1`
//! with a subscription key where it expects an OpenAI key. Whole answers, streams, a tool-calling
//! round trip and embeddings must all parse in a real client library.

use async_openai::{
    Client,
    config::OpenAIConfig,
    types::{
        chat::{
            ChatCompletionMessageToolCalls, ChatCompletionRequestAssistantMessageArgs,
            ChatCompletionRequestMessage, ChatCompletionRequestToolMessageArgs,
            ChatCompletionRequestUserMessageArgs, ChatCompletionStreamOptions, ChatCompletionTool,
            ChatCompletionTools, CreateChatCompletionRequestArgs, FinishReason, FunctionObject,
        },
        embeddings::CreateEmbeddingRequestArgs,
    },
};
use futures::StreamExt;
use mock_upstream::{MockUpstream, Reply};
use serde_json::json;
use tests::{TestServer, gateway::start_keyed, start_mock};

const KEY: &str = "sk-tenant-subscription-77";

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// A mock upstream, a keyed server in front of it, and an async-openai client that knows only
/// the server's URL and the subscription key.
async fn setup() -> (MockUpstream, TestServer, Client<OpenAIConfig>) {
    let mock = start_mock().await;
    let server = start_keyed(&mock.base_url(), &format!("tenant={KEY}"), &[]).await;
    let config = OpenAIConfig::new()
        .with_api_base(server.url("/v1"))
        .with_api_key(KEY);
    (mock, server, Client::with_config(config))
}

fn user(text: &str) -> ChatCompletionRequestMessage {
    ChatCompletionRequestUserMessageArgs::default()
        .content(text)
        .build()
        .unwrap()
        .into()
}

#[tokio::test]
async fn a_whole_answer() -> TestResult {
    let (mock, _server, client) = setup().await;
    mock.push(Reply::text("Hello from behind the gateway.").with_usage(9, 6));
    let request = CreateChatCompletionRequestArgs::default()
        .model("gpt-4o-mini")
        .messages([user("Say hello")])
        .build()?;
    let response = client.chat().create(request).await?;
    assert_eq!(
        response.choices[0].message.content.as_deref(),
        Some("Hello from behind the gateway.")
    );
    assert_eq!(response.choices[0].finish_reason, Some(FinishReason::Stop));
    assert_eq!(response.usage.map(|u| u.total_tokens), Some(15));
    // The client's bearer token was the subscription key; the upstream got the gateway's key.
    let sent = &mock.chat_requests()[0];
    assert_eq!(sent.header("authorization"), Some("Bearer sk-upstream"));
    Ok(())
}

#[tokio::test]
async fn a_streamed_answer() -> TestResult {
    let (mock, _server, client) = setup().await;
    mock.push(Reply::stream(["Streams ", "arrive ", "in pieces."]).with_usage(4, 5));
    let request = CreateChatCompletionRequestArgs::default()
        .model("gpt-4o-mini")
        .messages([user("Stream something")])
        .stream_options(ChatCompletionStreamOptions {
            include_usage: Some(true),
            include_obfuscation: None,
        })
        .build()?;
    let mut stream = client.chat().create_stream(request).await?;
    let mut text = String::new();
    let mut finish = None;
    let mut usage = None;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        for choice in &chunk.choices {
            if let Some(delta) = &choice.delta.content {
                text.push_str(delta);
            }
            finish = finish.or(choice.finish_reason);
        }
        usage = usage.or(chunk.usage);
    }
    assert_eq!(text, "Streams arrive in pieces.");
    assert_eq!(finish, Some(FinishReason::Stop));
    assert_eq!(usage.map(|u| u.total_tokens), Some(9));
    Ok(())
}

#[tokio::test]
async fn a_tool_calling_round_trip() -> TestResult {
    let (mock, _server, client) = setup().await;
    mock.push(Reply::tool_call("get_weather", r#"{"city":"Paris"}"#));
    mock.push(Reply::text("It is 21 °C and sunny in Paris."));
    let tools = vec![ChatCompletionTools::Function(ChatCompletionTool {
        function: FunctionObject {
            name: "get_weather".to_owned(),
            description: Some("Current weather in a city".to_owned()),
            parameters: Some(json!({
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"]
            })),
            strict: None,
        },
    })];
    let question = user("What's the weather in Paris?");

    let first = client
        .chat()
        .create(
            CreateChatCompletionRequestArgs::default()
                .model("gpt-4o-mini")
                .messages([question.clone()])
                .tools(tools.clone())
                .build()?,
        )
        .await?;
    assert_eq!(
        first.choices[0].finish_reason,
        Some(FinishReason::ToolCalls)
    );
    let calls = first.choices[0]
        .message
        .tool_calls
        .clone()
        .unwrap_or_default();
    let [ChatCompletionMessageToolCalls::Function(call)] = calls.as_slice() else {
        panic!("expected one function call, got {calls:?}");
    };
    assert_eq!(call.function.name, "get_weather");
    assert_eq!(call.function.arguments, r#"{"city":"Paris"}"#);

    let assistant = ChatCompletionRequestAssistantMessageArgs::default()
        .tool_calls(calls.clone())
        .build()?
        .into();
    let result = ChatCompletionRequestToolMessageArgs::default()
        .content(r#"{"temperature_c":21,"sky":"sunny"}"#)
        .tool_call_id(call.id.clone())
        .build()?
        .into();
    let second = client
        .chat()
        .create(
            CreateChatCompletionRequestArgs::default()
                .model("gpt-4o-mini")
                .messages([question, assistant, result])
                .tools(tools)
                .build()?,
        )
        .await?;
    assert_eq!(
        second.choices[0].message.content.as_deref(),
        Some("It is 21 °C and sunny in Paris.")
    );

    // The upstream saw the tool round trip exactly as the client sent it.
    let sent = &mock.chat_requests()[1].body;
    assert_eq!(sent["messages"][1]["tool_calls"][0]["id"], json!(call.id));
    assert_eq!(sent["messages"][2]["role"], "tool");
    assert_eq!(sent["messages"][2]["tool_call_id"], json!(call.id));
    assert_eq!(sent["tools"][0]["function"]["name"], "get_weather");
    Ok(())
}

#[tokio::test]
async fn embeddings() -> TestResult {
    let (mock, _server, client) = setup().await;
    let request = CreateEmbeddingRequestArgs::default()
        .model("text-embedding-3-small")
        .input(["semantic caching", "token budgets"])
        .build()?;
    let response = client.embeddings().create(request).await?;
    assert_eq!(response.data.len(), 2);
    assert!(!response.data[0].embedding.is_empty());
    assert_eq!(mock.embedding_requests().len(), 1);
    Ok(())
}

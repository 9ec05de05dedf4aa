//! `GET /v1/models` and `GET /v1/models/{id}`: the models served, in OpenAI's list shape, or in
//! Anthropic's when the request carries `anthropic-version`; an unknown id is a 404 in the same
//! API's error shape.

use serde_json::Value;
use tests::{TestServer, gateway::start_keyed, start_mock};

const KEY: &str = "k-models";

async fn server() -> TestServer {
    let mock = start_mock().await;
    start_keyed(
        &mock.base_url(),
        &format!("models={KEY}"),
        &[
            "--chat-model",
            "gpt-4o-mini",
            "--embedding-model",
            "text-embedding-3-small",
        ],
    )
    .await
}

async fn get(server: &TestServer, path: &str, anthropic: bool) -> (u16, Value) {
    let mut request = tests::http_client()
        .get(server.url(path))
        .header("authorization", format!("Bearer {KEY}"));
    if anthropic {
        request = request.header("anthropic-version", "2023-06-01");
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

fn ids(list: &Value) -> Vec<&str> {
    list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|model| model["id"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn the_openai_list_and_one_model() {
    let server = server().await;
    for prefix in ["/v1", "/openai/v1"] {
        let (status, list) = get(&server, &format!("{prefix}/models"), false).await;
        assert_eq!(status, 200);
        assert_eq!(list["object"], "list");
        let served = ids(&list);
        assert_eq!(served[..2], ["gpt-4o-mini", "text-embedding-3-small"]);
        assert_eq!(list["data"][0]["object"], "model");
        assert_eq!(list["data"][0]["owned_by"], "tollgate");
        let (status, model) = get(&server, &format!("{prefix}/models/gpt-4o-mini"), false).await;
        assert_eq!(status, 200);
        assert_eq!(model["id"], "gpt-4o-mini");
        assert_eq!(model["object"], "model");
    }
    let (status, error) = get(&server, "/v1/models/no-such-model", false).await;
    assert_eq!(status, 404);
    assert_eq!(error["error"]["code"], "model_not_found");
    assert_eq!(error["error"]["type"], "not_found_error");
}

#[tokio::test]
async fn the_anthropic_list_when_anthropic_version_is_sent() {
    let server = server().await;
    let (status, list) = get(&server, "/v1/models", true).await;
    assert_eq!(status, 200);
    assert_eq!(list["has_more"], false);
    let served = ids(&list);
    assert_eq!(list["first_id"], served[0]);
    assert_eq!(list["last_id"], *served.last().unwrap());
    assert_eq!(list["data"][0]["type"], "model");
    assert_eq!(list["data"][0]["display_name"], "gpt-4o-mini");
    assert!(
        list["data"][0]["created_at"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    let (status, model) = get(&server, "/v1/models/gpt-4o-mini", true).await;
    assert_eq!((status, model["type"].as_str()), (200, Some("model")));
    let (status, error) = get(&server, "/v1/models/claude-nothing", true).await;
    assert_eq!(status, 404);
    assert_eq!(error["type"], "error");
    assert_eq!(error["error"]["type"], "not_found_error");
}

#[tokio::test]
async fn listing_needs_a_key() {
    let server = server().await;
    let response = tests::http_client()
        .get(server.url("/v1/models"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
}

//! OAuth access tokens from a local OpenID Connect issuer: accepted on /mcp, the gateway and
//! the agent beside subscription keys; every refusal a 401 with a challenge that points at the
//! protected-resource metadata (built from PUBLIC_URL); keys fetched once, again on rotation,
//! and never more than the rate limit allows; the token's claim charged as the subscription.

use mock_upstream::Reply;
use reqwest::Response;
use serde_json::{Value, json};
use tests::{
    TestServer,
    gateway::{chat_body, post_chat},
    oauth::{Issuer, SigningKey, now, sign_with_header, unsigned},
    post_mcp, rpc, start_mock, start_with_model,
};

const PUBLIC_URL: &str = "https://gw.example.com";
const AUDIENCE: &str = "https://gw.example.com/mcp";
const METADATA: &str = "https://gw.example.com/.well-known/oauth-protected-resource/mcp";
const TEAM_KEY: &str = "key-team-oauth";
const ADMIN_KEY: &str = "admin-oauth";

async fn server_for(issuer: &Issuer, upstream: &str, extra: &[&str]) -> TestServer {
    let mut flags = vec![
        "--oauth-issuers",
        &issuer.url,
        "--public-url",
        PUBLIC_URL,
        "--subscription-keys",
        "keyed-team=key-team-oauth",
        "--admin-key",
        ADMIN_KEY,
        "--semantic-cache",
        "off",
    ];
    flags.extend_from_slice(extra);
    start_with_model(upstream, &flags).await
}

async fn list_tools(server: &TestServer, credential: Option<&str>) -> Response {
    let bearer = credential.map(|c| format!("Bearer {c}"));
    let mut headers = vec![("mcp-protocol-version", "2025-06-18")];
    if let Some(bearer) = &bearer {
        headers.push(("authorization", bearer.as_str()));
    }
    post_mcp(
        &tests::http_client(),
        server,
        &rpc(1, "tools/list", json!({})),
        &headers,
    )
    .await
}

fn challenge(response: &Response) -> String {
    response
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// A 401 whose challenge names the metadata and (for a token) `invalid_token`, and whose body
/// says why without echoing the token.
async fn assert_refused(response: Response, token: &str, expect_in_message: &str) {
    assert_eq!(response.status(), 401);
    let challenge = challenge(&response);
    assert!(
        challenge.starts_with(&format!("Bearer resource_metadata=\"{METADATA}\"")),
        "{challenge}"
    );
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_token", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains(expect_in_message), "{message}");
    assert!(!body.to_string().contains(token), "the token was echoed");
}

#[tokio::test]
async fn valid_tokens_are_accepted_and_each_bad_one_is_refused_with_a_challenge() {
    let (rsa, ec, rogue) = (
        SigningKey::rsa("rsa-1"),
        SigningKey::ec("ec-1"),
        SigningKey::ec("rogue"),
    );
    let issuer = Issuer::start(&[&rsa, &ec]).await;
    let mock = start_mock().await;
    let server = server_for(&issuer, &mock.base_url(), &[]).await;
    let claims = |extra: Value| issuer.claims(AUDIENCE, "app-blue", "mcp.tools", &extra);

    for key in [&rsa, &ec] {
        let response = list_tools(&server, Some(&key.sign(&claims(json!({}))))).await;
        assert_eq!(response.status(), 200, "{}", key.kid());
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["result"]["tools"].as_array().unwrap().len(), 4);
    }
    // An Entra ID v1 token: the client in `appid`, a list of audiences.
    let v1 = rsa.sign(&claims(
        json!({"azp": null, "appid": "app-v1", "aud": ["x", AUDIENCE]}),
    ));
    assert_eq!(list_tools(&server, Some(&v1)).await.status(), 200);
    // Subscription keys keep working beside tokens.
    assert_eq!(list_tools(&server, Some(TEAM_KEY)).await.status(), 200);

    let other_issuer = Issuer::start(&[&rsa]).await;
    let refusals = [
        (rsa.sign(&claims(json!({"exp": now() - 600}))), "expired"),
        (
            rsa.sign(&claims(json!({"nbf": now() + 600}))),
            "not valid yet",
        ),
        (
            rsa.sign(&claims(json!({"aud": "https://other.example.com/mcp"}))),
            "audience",
        ),
        (
            rsa.sign(&other_issuer.claims(AUDIENCE, "app-blue", "", &json!({}))),
            "issuer",
        ),
        (rogue.sign(&claims(json!({}))), "does not publish"),
        (
            sign_with_header(
                &rogue,
                &json!({"alg": "ES256", "kid": "ec-1"}),
                &claims(json!({})),
            ),
            "signature",
        ),
        (unsigned(&claims(json!({}))), "algorithm"),
        (
            sign_with_header(
                &rsa,
                &json!({"alg": "HS256", "kid": "rsa-1"}),
                &claims(json!({})),
            ),
            "algorithm",
        ),
        (
            rsa.sign(&claims(json!({"azp": null, "sub": null}))),
            "subscription",
        ),
        (
            "eyJhbGciOiJSUzI1NiJ9.eyJnYXJiYWdl.Z2FyYmFnZQ".to_owned(),
            "well-formed",
        ),
    ];
    for (token, why) in &refusals {
        assert_refused(list_tools(&server, Some(token)).await, token, why).await;
    }

    // No credential, or one that is neither a key nor a token: where to get a token.
    for credential in [None, Some("garbage")] {
        let response = list_tools(&server, credential).await;
        assert_eq!(response.status(), 401);
        let challenge = challenge(&response);
        assert_eq!(
            challenge,
            format!("Bearer resource_metadata=\"{METADATA}\"")
        );
    }
}

#[tokio::test]
async fn the_metadata_describes_the_mcp_endpoint_at_the_public_url() {
    let key = SigningKey::ec("k");
    let issuer = Issuer::start(&[&key]).await;
    let server = server_for(&issuer, "http://127.0.0.1:9/v1", &[]).await;
    let client = tests::http_client();
    for path in [
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/mcp",
    ] {
        let response = client.get(server.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let metadata: Value = response.json().await.unwrap();
        assert_eq!(metadata["resource"], AUDIENCE);
        assert_eq!(metadata["authorization_servers"], json!([issuer.url]));
        assert_eq!(metadata["bearer_methods_supported"], json!(["header"]));
    }
    // No keys are fetched until a token needs them.
    assert_eq!((issuer.discovery_fetches(), issuer.jwks_fetches()), (0, 0));

    let plain = TestServer::start(&[]).await;
    let response = client
        .get(plain.url("/.well-known/oauth-protected-resource"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
}

#[tokio::test]
async fn a_rotated_key_is_fetched_once_and_unknown_keys_cannot_flood_the_issuer() {
    let (old, new, rogue) = (
        SigningKey::ec("2026-old"),
        SigningKey::ec("2026-new"),
        SigningKey::ec("rogue"),
    );
    let issuer = Issuer::start(&[&old]).await;
    let server = server_for(&issuer, "http://127.0.0.1:9/v1", &[]).await;
    let claims = issuer.claims(AUDIENCE, "app-rot", "", &json!({}));

    for _ in 0..3 {
        assert_eq!(
            list_tools(&server, Some(&old.sign(&claims))).await.status(),
            200
        );
    }
    assert_eq!((issuer.discovery_fetches(), issuer.jwks_fetches()), (1, 1));

    issuer.publish(&[&new]);
    for _ in 0..3 {
        assert_eq!(
            list_tools(&server, Some(&new.sign(&claims))).await.status(),
            200
        );
    }
    assert_eq!(issuer.jwks_fetches(), 2, "the new key is fetched once");
    assert_eq!(issuer.discovery_fetches(), 1);

    // Made-up key ids: refused, and the issuer is asked at most the rate limit's worth.
    for n in 0..12 {
        let forged = sign_with_header(
            &rogue,
            &json!({"alg": "ES256", "kid": format!("ghost-{n}")}),
            &claims,
        );
        assert_eq!(list_tools(&server, Some(&forged)).await.status(), 401);
    }
    assert_eq!(
        issuer.jwks_fetches(),
        mcp_server::oauth::REFRESHES_PER_MINUTE,
        "refreshes are rate-limited"
    );
    // Known keys keep working while unknown ones are refused.
    assert_eq!(
        list_tools(&server, Some(&new.sign(&claims))).await.status(),
        200
    );
}

#[tokio::test]
async fn a_tokens_claim_is_the_subscription_charged_on_the_gateway_and_agent_routes() {
    let key = SigningKey::rsa("rsa-usage");
    let issuer = Issuer::start(&[&key]).await;
    let mock = start_mock().await;
    let server = server_for(
        &issuer,
        &mock.base_url(),
        &["--model-prices", "gpt-4o-mini=1000/2000"],
    )
    .await;
    let token = key.sign(&issuer.claims(AUDIENCE, "app-chargeback", "", &json!({})));
    let client = tests::http_client();

    mock.push(Reply::text("hello").with_usage(40, 10));
    let response = client
        .post(server.url("/v1/chat/completions"))
        .bearer_auth(&token)
        .json(&chat_body("hi"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    mock.push(Reply::text("agent says hi").with_usage(7, 3));
    let response = client
        .post(server.url("/agent/chat"))
        .bearer_auth(&token)
        .json(&json!({"message": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // A key caller is charged as before.
    mock.push(Reply::text("keyed").with_usage(1, 1));
    assert_eq!(
        post_chat(&client, &server, Some(TEAM_KEY), &chat_body("hi"))
            .await
            .status(),
        200
    );

    let report: Value = client
        .get(server.url("/admin/usage"))
        .header("api-key", ADMIN_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let row = |name: &str| {
        report["subscriptions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|row| row["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no row for {name}: {report}"))
    };
    assert_eq!(row("app-chargeback")["total_tokens"], 60, "{report}");
    assert_eq!(row("keyed-team")["total_tokens"], 2, "{report}");

    // The token sees its own row only.
    let own: Value = client
        .get(server.url("/admin/usage"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = own["subscriptions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|row| row["name"].as_str())
        .collect();
    assert_eq!(names, ["app-chargeback"], "{own}");
}

#[tokio::test]
async fn an_unreachable_issuer_is_a_503_not_a_401() {
    let (listener, addr) = tests::bind_loopback().await;
    drop(listener);
    let issuer_url = format!("http://{addr}");
    let server =
        TestServer::start(&["--oauth-issuers", &issuer_url, "--public-url", PUBLIC_URL]).await;
    let key = SigningKey::ec("down");
    let claims = json!({"iss": issuer_url, "aud": AUDIENCE, "azp": "app", "exp": now() + 600});
    let token = key.sign(&claims);
    let response = list_tools(&server, Some(&token)).await;
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "token_keys_unavailable", "{body}");
    assert!(!body.to_string().contains(&token));
}

//! REDIS_ENTRA_AUTH end to end: the process's Entra ID credential (a service principal against
//! the identity stand-in) signs in to a real `redis-server` with a token for Azure Redis as the
//! password and the identity's object id (the token's `oid` claim) as the ACL user.

use tests::{
    TestServer,
    azure::{IdentityStandIn, STANDIN_OBJECT_ID},
    gateway::{chat_body, post_chat},
    redis::RedisServer,
    start_mock,
};

#[tokio::test]
async fn redis_signs_in_as_the_identity_with_its_token() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let identity = IdentityStandIn::start().await;
    // The identity's user takes the first tokens the stand-in will issue, and nothing else.
    let (first, second) = (identity.token(1), identity.token(2));
    let reply = redis.cli(&[
        "ACL",
        "SETUSER",
        STANDIN_OBJECT_ID,
        "on",
        &format!(">{first}"),
        &format!(">{second}"),
        "~*",
        "&*",
        "+@all",
    ]);
    assert_eq!(reply.trim(), "OK", "{reply}");
    let mock = start_mock().await;
    let server = TestServer::start(&[
        "--openai-base-url",
        &mock.base_url(),
        "--redis-url",
        &redis.url(),
        "--redis-entra-auth",
        "--azure-tenant-id",
        "contoso.onmicrosoft.com",
        "--azure-client-id",
        "app-id-1",
        "--azure-client-secret",
        "sp-secret-value-0123456789",
        "--azure-authority-host",
        &identity.authority_host(),
    ])
    .await;
    let client = tests::http_client();
    let response = post_chat(
        &client,
        &server,
        None,
        &chat_body("What is a token budget?"),
    )
    .await;
    assert_eq!(response.status(), 200);

    let scopes: Vec<String> = identity
        .received()
        .iter()
        .filter_map(|request| request.param("scope").map(str::to_owned))
        .collect();
    assert!(
        scopes
            .iter()
            .any(|scope| scope == "https://redis.azure.com/.default"),
        "{scopes:?}"
    );
    let clients = redis.cli(&["CLIENT", "LIST"]);
    assert!(
        clients
            .lines()
            .any(|line| line.contains(&format!("user={STANDIN_OBJECT_ID}"))),
        "no connection signed in as the identity:\n{clients}"
    );
    let health: serde_json::Value = client
        .get(server.url("/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["state_store"], "redis");
    assert_eq!(health["status"], "healthy", "{health}");
}

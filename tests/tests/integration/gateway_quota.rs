//! The longer token quota: spent quota is a 403, as APIM answers, and says when it resets.

use mock_upstream::Reply;
use serde_json::Value;
use tests::{
    gateway::{chat_body, header, post_chat, start_keyed},
    start_mock,
};

#[tokio::test]
async fn a_spent_quota_is_403_until_its_period_ends() {
    let mock = start_mock().await;
    let server = start_keyed(
        &mock.base_url(),
        "quota-team=kq,other-team=ko",
        &[
            "--token-quota",
            "1000",
            "--token-quota-period",
            "daily",
            "--max-tokens-cap",
            "50",
        ],
    )
    .await;
    let client = tests::http_client();
    // Each call really uses 490 tokens; the third one's reservation (its prompt plus the
    // 50-token cap) no longer fits what is left of the 1000-token quota.
    for _ in 0..3 {
        mock.push(Reply::text("ok").with_usage(480, 10));
    }
    for i in 0..2 {
        let response = post_chat(&client, &server, Some("kq"), &chat_body(&format!("q{i}"))).await;
        assert_eq!(response.status(), 200);
    }
    let calls = mock.chat_requests().len();
    let refused = post_chat(&client, &server, Some("kq"), &chat_body("q2")).await;
    assert_eq!(refused.status(), 403);
    let retry_after: u64 = header(&refused, "retry-after").unwrap().parse().unwrap();
    assert!(
        (1..=86_400).contains(&retry_after),
        "resets within the day: {retry_after}"
    );
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "token_quota_exhausted");
    assert_eq!(
        mock.chat_requests().len(),
        calls,
        "refused before any upstream call"
    );

    // Another subscription's quota is its own.
    let other = post_chat(&client, &server, Some("ko"), &chat_body("q3")).await;
    assert_eq!(other.status(), 200);
}

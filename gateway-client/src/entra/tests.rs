//! The token cache over a fake source, with paused time: reuse, refresh before expiry, single
//! flight, failures shared and survived, invalidation after a refusal. The real token requests
//! are tested against stand-ins on loopback (tests/integration/azure_entra.rs).

#![allow(clippy::unwrap_used)]

use std::sync::atomic::AtomicUsize;

use super::*;

/// Hands out `token-1`, `token-2`… living `lifetime`, after `delay`; fails while `failing`.
struct Fake {
    issued: Arc<AtomicUsize>,
    lifetime: Duration,
    delay: Duration,
    failing: Arc<std::sync::atomic::AtomicBool>,
}

#[async_trait::async_trait]
impl TokenSource for Fake {
    async fn fetch(&self, _scope: &str) -> Result<Fetched, EntraError> {
        tokio::time::sleep(self.delay).await;
        let n = self.issued.fetch_add(1, Ordering::SeqCst) + 1;
        if self.failing.load(Ordering::SeqCst) {
            return Err(EntraError {
                source_kind: "fake",
                detail: "the identity endpoint answered 500".to_owned(),
            });
        }
        Ok(Fetched {
            secret: SecretString::from(format!("token-{n}")),
            expires_in: self.lifetime,
        })
    }

    fn kind(&self) -> &'static str {
        "fake"
    }
}

struct Harness {
    credential: Arc<EntraCredential>,
    issued: Arc<AtomicUsize>,
    failing: Arc<std::sync::atomic::AtomicBool>,
}

fn harness(lifetime: Duration, delay: Duration) -> Harness {
    let issued = Arc::new(AtomicUsize::new(0));
    let failing = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let credential = Arc::new(EntraCredential::with_source(Box::new(Fake {
        issued: issued.clone(),
        lifetime,
        delay,
        failing: failing.clone(),
    })));
    Harness {
        credential,
        issued,
        failing,
    }
}

const SCOPE: &str = COGNITIVE_SERVICES_SCOPE;
const HOUR: Duration = Duration::from_secs(3600);

#[tokio::test(start_paused = true)]
async fn a_token_is_reused_until_five_minutes_before_it_expires() {
    let h = harness(HOUR, Duration::ZERO);
    assert_eq!(h.credential.token(SCOPE).await.unwrap().secret(), "token-1");
    tokio::time::advance(HOUR - REFRESH_MARGIN - Duration::from_secs(1)).await;
    assert_eq!(h.credential.token(SCOPE).await.unwrap().secret(), "token-1");
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(h.credential.token(SCOPE).await.unwrap().secret(), "token-2");
    assert_eq!(h.issued.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn a_short_lived_token_is_refreshed_at_half_its_life() {
    let h = harness(Duration::from_secs(120), Duration::ZERO);
    h.credential.token(SCOPE).await.unwrap();
    tokio::time::advance(Duration::from_secs(59)).await;
    assert_eq!(h.credential.token(SCOPE).await.unwrap().secret(), "token-1");
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(h.credential.token(SCOPE).await.unwrap().secret(), "token-2");
}

#[tokio::test(start_paused = true)]
async fn scopes_have_tokens_of_their_own() {
    let h = harness(HOUR, Duration::ZERO);
    h.credential.token(SCOPE).await.unwrap();
    let other = h.credential.token("https://redis.azure.com/.default").await;
    assert_eq!(other.unwrap().secret(), "token-2");
    assert_eq!(h.credential.token(SCOPE).await.unwrap().secret(), "token-1");
}

#[tokio::test(start_paused = true)]
async fn fifty_concurrent_callers_share_one_request() {
    let h = harness(HOUR, Duration::from_millis(200));
    let calls = (0..50).map(|_| {
        let credential = h.credential.clone();
        tokio::spawn(async move { credential.token(SCOPE).await })
    });
    for call in futures::future::join_all(calls).await {
        assert_eq!(call.unwrap().unwrap().secret(), "token-1");
    }
    assert_eq!(h.issued.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn a_failure_is_shared_by_the_callers_that_waited_for_it() {
    let h = harness(HOUR, Duration::from_millis(200));
    h.failing.store(true, Ordering::SeqCst);
    let calls = (0..20).map(|_| {
        let credential = h.credential.clone();
        tokio::spawn(async move { credential.token(SCOPE).await })
    });
    for call in futures::future::join_all(calls).await {
        let error = call.unwrap().unwrap_err();
        assert!(error.detail.contains("500"), "{error}");
    }
    assert_eq!(h.issued.load(Ordering::SeqCst), 1);
    let reason = h.credential.degraded_reason().unwrap();
    assert!(
        reason.contains("fake") && reason.contains("500"),
        "{reason}"
    );
    // The next caller tries again, and a success clears the reason.
    h.failing.store(false, Ordering::SeqCst);
    assert_eq!(h.credential.token(SCOPE).await.unwrap().secret(), "token-2");
    assert_eq!(h.credential.degraded_reason(), None);
}

#[tokio::test(start_paused = true)]
async fn a_failed_refresh_keeps_the_old_token_until_it_expires() {
    let h = harness(HOUR, Duration::ZERO);
    h.credential.token(SCOPE).await.unwrap();
    h.failing.store(true, Ordering::SeqCst);
    tokio::time::advance(HOUR - Duration::from_secs(60)).await;
    assert_eq!(h.credential.token(SCOPE).await.unwrap().secret(), "token-1");
    assert!(h.credential.degraded_reason().is_some());
    tokio::time::advance(Duration::from_secs(60)).await;
    assert!(h.credential.token(SCOPE).await.is_err());
}

#[tokio::test(start_paused = true)]
async fn only_the_refused_token_is_invalidated() {
    let h = harness(HOUR, Duration::ZERO);
    let deadline = Instant::now() + TOKEN_REQUEST_TIMEOUT;
    let first = h.credential.bearer(SCOPE, deadline).await.unwrap();
    h.credential.invalidate(SCOPE, first.generation);
    let second = h.credential.bearer(SCOPE, deadline).await.unwrap();
    assert_ne!(first.generation, second.generation);
    // A late refusal of the first token leaves its successor alone.
    h.credential.invalidate(SCOPE, first.generation);
    let again = h.credential.bearer(SCOPE, deadline).await.unwrap();
    assert_eq!(again.generation, second.generation);
    assert_eq!(h.issued.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn a_slow_identity_endpoint_fails_within_the_callers_deadline() {
    let h = harness(HOUR, Duration::from_secs(60));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(2);
    let error = h.credential.bearer(SCOPE, deadline).await.err().unwrap();
    assert!(error.detail.contains("in time"), "{error}");
    assert_eq!(Instant::now() - started, Duration::from_secs(2));
}

#[tokio::test(start_paused = true)]
async fn tokens_and_bearers_never_print_the_secret() {
    let h = harness(HOUR, Duration::ZERO);
    let token = h.credential.token(SCOPE).await.unwrap();
    assert!(!format!("{token:?}").contains("token-1"));
    let bearer = h
        .credential
        .bearer(SCOPE, Instant::now() + HOUR)
        .await
        .unwrap();
    assert!(bearer.header.is_sensitive());
    assert!(!format!("{:?}", bearer.header).contains("token-1"));
    assert!(!format!("{:?}", h.credential).contains("token-1"));
}

fn config() -> EntraConfig {
    EntraConfig {
        tenant_id: None,
        client_id: None,
        client_secret: None,
        federated_token_file: None,
        authority_host: DEFAULT_AUTHORITY_HOST.to_owned(),
        identity_endpoint: None,
        identity_header: None,
        imds_endpoint: IMDS_ENDPOINT.to_owned(),
    }
}

#[test]
fn sources_are_picked_in_the_contracts_order() {
    crate::tls::install_crypto_provider();
    let kind = |config: &EntraConfig| EntraCredential::new(config).map(|c| c.kind());
    let mut all = EntraConfig {
        tenant_id: Some("contoso.onmicrosoft.com".into()),
        client_id: Some("app".into()),
        client_secret: Some(SecretString::from("s3cret")),
        federated_token_file: Some("/var/run/token".into()),
        identity_endpoint: Some("http://127.0.0.1:1/msi/token".into()),
        identity_header: Some(SecretString::from("h")),
        ..config()
    };
    assert_eq!(kind(&all), Ok("service principal"));
    all.client_secret = None;
    assert_eq!(kind(&all), Ok("workload identity"));
    all.federated_token_file = None;
    assert_eq!(kind(&all), Ok("managed identity (App Service)"));
    all.identity_header = None;
    assert_eq!(
        kind(&all),
        Ok("managed identity (instance metadata service)")
    );
    assert_eq!(
        kind(&config()),
        Ok("managed identity (instance metadata service)")
    );
}

#[test]
fn a_secret_without_its_tenant_or_client_is_refused() {
    crate::tls::install_crypto_provider();
    let secret_only = EntraConfig {
        client_secret: Some(SecretString::from("s3cret")),
        client_id: Some("app".into()),
        ..config()
    };
    let error = EntraCredential::new(&secret_only).unwrap_err();
    assert!(error.contains("AZURE_TENANT_ID"), "{error}");
    assert!(!error.contains("s3cret"), "{error}");
    let file_only = EntraConfig {
        federated_token_file: Some("/t".into()),
        tenant_id: Some("t".into()),
        ..config()
    };
    assert!(
        EntraCredential::new(&file_only)
            .unwrap_err()
            .contains("AZURE_CLIENT_ID")
    );
    let odd_tenant = EntraConfig {
        tenant_id: Some("../x".into()),
        ..secret_only
    };
    assert!(EntraCredential::new(&odd_tenant).is_err());
}

#[test]
fn lifetimes_come_from_expires_in_or_expires_on() {
    use serde_json::json;
    let lifetime = |body| source::lifetime_of(&body);
    assert_eq!(
        lifetime(json!({"expires_in": 3599})),
        Some(Duration::from_secs(3599))
    );
    assert_eq!(
        lifetime(json!({"expires_in": "86399"})),
        Some(Duration::from_secs(86399))
    );
    let in_an_hour = SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    let from_expires_on = lifetime(json!({"expires_on": in_an_hour.to_string()})).unwrap();
    assert!(from_expires_on <= HOUR && from_expires_on > HOUR - Duration::from_secs(5));
    assert_eq!(lifetime(json!({"access_token": "x"})), None);
}

//! Credentials for Redis that change while connections live: Entra ID tokens on Azure Managed
//! Redis (the token is the password, the identity's object id the user).
//!
//! [`RedisCredentials`] is the seam: anything that can hand out a user, a password and when the
//! password expires. [`CredentialFeed`] turns one into what the redis crate consumes: it
//! fetches the first credentials, then fetches fresh ones ahead of each expiry, and every live
//! connection sends `AUTH user password` with them (the crate's re-authentication), so a
//! connection never outlives its password. New connections take the latest credentials.

use std::{
    pin::Pin,
    sync::Arc,
    time::{Duration, SystemTime},
};

use async_trait::async_trait;
use base64::Engine as _;
use futures::Stream;
use redis::{BasicAuth, RedisResult, StreamingCredentialsProvider};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::watch;

use crate::store::StoreError;

/// A Redis user and password, and when the password stops working.
#[derive(Clone)]
pub struct RedisLogin {
    pub username: String,
    pub password: SecretString,
    pub expires_at: SystemTime,
}

impl std::fmt::Debug for RedisLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLogin")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Where Redis credentials come from.
#[async_trait]
pub trait RedisCredentials: Send + Sync + 'static {
    /// Fresh credentials. Errors name what failed, never a secret.
    async fn credentials(&self) -> Result<RedisLogin, StoreError>;
}

/// An access token and its expiry, as an Entra ID credential hands it out.
#[derive(Clone)]
pub struct AccessToken {
    pub token: SecretString,
    pub expires_at: SystemTime,
}

/// A source of Entra ID access tokens per scope (the process's Azure credential).
#[async_trait]
pub trait AccessTokenSource: Send + Sync + 'static {
    async fn token(&self, scope: &str) -> Result<AccessToken, StoreError>;
}

/// The process's Entra ID credential (service principal, workload or managed identity) as a
/// source of Redis tokens.
#[async_trait]
impl AccessTokenSource for Arc<crate::entra::EntraCredential> {
    async fn token(&self, scope: &str) -> Result<AccessToken, StoreError> {
        let token = crate::entra::EntraCredential::token(self, scope)
            .await
            .map_err(|error| {
                StoreError::Unavailable(format!("Entra ID token for Redis: {error}"))
            })?;
        Ok(AccessToken {
            token: SecretString::from(token.secret().to_owned()),
            expires_at: token.expires_on(),
        })
    }
}

/// The scope of Azure Cache for Redis and Azure Managed Redis data access.
pub const AZURE_REDIS_SCOPE: &str = "https://redis.azure.com/.default";

/// Redis credentials from Entra ID: the token for [`AZURE_REDIS_SCOPE`] as the password, its
/// `oid` claim (the identity's object id) as the user.
pub struct EntraRedisCredentials<S> {
    tokens: S,
}

impl<S: AccessTokenSource> EntraRedisCredentials<S> {
    pub fn new(tokens: S) -> Self {
        Self { tokens }
    }
}

#[async_trait]
impl<S: AccessTokenSource> RedisCredentials for EntraRedisCredentials<S> {
    async fn credentials(&self) -> Result<RedisLogin, StoreError> {
        let token = self.tokens.token(AZURE_REDIS_SCOPE).await?;
        let username = object_id(token.token.expose_secret())?;
        Ok(RedisLogin {
            username,
            password: token.token,
            expires_at: token.expires_at,
        })
    }
}

/// The `oid` claim of a JWT access token: its payload is read, not verified (Redis verifies
/// the token; this only names the user the token belongs to).
pub fn object_id(token: &str) -> Result<String, StoreError> {
    let invalid = |why: &str| StoreError::Unavailable(format!("the Entra ID token {why}"));
    let payload = token
        .split('.')
        .nth(1)
        .ok_or_else(|| invalid("is not a JWT"))?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| invalid("has a payload that is not base64url"))?;
    let claims: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|_| invalid("has a payload that is not JSON"))?;
    claims
        .get("oid")
        .and_then(serde_json::Value::as_str)
        .filter(|oid| !oid.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| invalid("has no `oid` claim"))
}

/// How long before expiry credentials are renewed: a quarter of their lifetime, at most five
/// minutes (an hour-long token is renewed five minutes early, a test's two-second one half a
/// second early).
fn renewal_lead(lifetime: Duration) -> Duration {
    (lifetime / 4).min(Duration::from_secs(300))
}

/// Waits between failed fetches: short first, then up to 30 s.
const RETRY_WAITS: [Duration; 4] = [
    Duration::from_millis(200),
    Duration::from_secs(1),
    Duration::from_secs(5),
    Duration::from_secs(30),
];

/// Current credentials for every Redis connection, renewed ahead of expiry by a task of its own
/// (which ends when the last clone is dropped).
#[derive(Clone)]
pub struct CredentialFeed {
    latest: watch::Receiver<Option<BasicAuth>>,
}

impl CredentialFeed {
    /// Starts fetching from `source` (must run inside a Tokio runtime).
    pub fn start(source: Arc<dyn RedisCredentials>) -> Self {
        let (publish, latest) = watch::channel(None);
        tokio::spawn(renew(source, publish));
        Self { latest }
    }
}

async fn renew(source: Arc<dyn RedisCredentials>, publish: watch::Sender<Option<BasicAuth>>) {
    let mut failures = 0usize;
    loop {
        let wait = match source.credentials().await {
            Ok(login) => {
                failures = 0;
                let wait = time_until_renewal(login.expires_at);
                publish.send_replace(Some(BasicAuth::new(
                    login.username,
                    login.password.expose_secret().to_owned(),
                )));
                tracing::debug!(renew_in_ms = wait.as_millis(), "Redis credentials renewed");
                wait
            }
            Err(error) => {
                let wait = RETRY_WAITS[failures.min(RETRY_WAITS.len() - 1)];
                failures += 1;
                tracing::warn!(%error, "cannot fetch Redis credentials; retrying");
                wait
            }
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = publish.closed() => return,
        }
    }
}

fn time_until_renewal(expires_at: SystemTime) -> Duration {
    let now = SystemTime::now();
    let lifetime = expires_at.duration_since(now).unwrap_or_default();
    lifetime.saturating_sub(renewal_lead(lifetime))
}

impl StreamingCredentialsProvider for CredentialFeed {
    /// The current credentials (once there are any), then each renewal.
    fn subscribe(&self) -> Pin<Box<dyn Stream<Item = RedisResult<BasicAuth>> + Send + 'static>> {
        let mut latest = self.latest.clone();
        latest.mark_changed();
        Box::pin(futures::stream::unfold(latest, |mut latest| async move {
            loop {
                latest.changed().await.ok()?;
                let current = latest.borrow_and_update().clone();
                if let Some(credentials) = current {
                    return Some((Ok(credentials), latest));
                }
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use futures::StreamExt;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn jwt(claims: &serde_json::Value) -> String {
        let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!(
            "{}.{}.signature",
            engine.encode(br#"{"alg":"RS256","typ":"JWT"}"#),
            engine.encode(claims.to_string())
        )
    }

    #[test]
    fn the_user_is_the_tokens_object_id() {
        let token = jwt(&serde_json::json!({"oid": "0b8c-42", "aud": "https://redis.azure.com"}));
        assert_eq!(object_id(&token).unwrap(), "0b8c-42");
        for bad in [
            "not-a-token".to_owned(),
            "a.%%%.c".to_owned(),
            jwt(&serde_json::json!({"sub": "x"})),
        ] {
            let error = object_id(&bad).unwrap_err().to_string();
            assert!(error.contains("Entra ID token"), "{error}");
            assert!(!error.contains(&bad), "the token leaked: {error}");
        }
    }

    #[test]
    fn renewal_comes_well_before_expiry() {
        assert_eq!(
            renewal_lead(Duration::from_secs(3600)),
            Duration::from_secs(300)
        );
        assert_eq!(
            renewal_lead(Duration::from_secs(2)),
            Duration::from_millis(500)
        );
        let wait = time_until_renewal(SystemTime::now() + Duration::from_secs(3600));
        assert!(wait > Duration::from_secs(3290) && wait <= Duration::from_secs(3300));
        assert_eq!(
            time_until_renewal(SystemTime::now() - Duration::from_secs(1)),
            Duration::ZERO
        );
    }

    struct Counting(AtomicUsize);

    #[async_trait]
    impl RedisCredentials for Counting {
        async fn credentials(&self) -> Result<RedisLogin, StoreError> {
            let n = self.0.fetch_add(1, Ordering::SeqCst);
            Ok(RedisLogin {
                username: "oid".to_owned(),
                password: SecretString::from(format!("token-{n}")),
                expires_at: SystemTime::now() + Duration::from_millis(400),
            })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn subscribers_get_the_current_credentials_then_each_renewal() {
        let feed = CredentialFeed::start(Arc::new(Counting(AtomicUsize::new(0))));
        let mut first = feed.subscribe();
        let now = first.next().await.unwrap().unwrap();
        assert_eq!((now.username(), now.password()), ("oid", "token-0"));
        // A later subscriber starts from the current credentials too.
        let later = feed.subscribe().next().await.unwrap().unwrap();
        assert_eq!(later.password(), "token-0");
        // Renewed at 3/4 of the 400 ms lifetime: before the old password expires.
        let started = tokio::time::Instant::now();
        let renewed = first.next().await.unwrap().unwrap();
        assert_eq!(renewed.password(), "token-1");
        let elapsed = started.elapsed();
        assert!(
            (Duration::from_millis(250)..=Duration::from_millis(300)).contains(&elapsed),
            "renewed after {elapsed:?}"
        );
    }
}

//! Each issuer's signing keys: OpenID Connect discovery, then its JWKS, cached.
//!
//! Keys are fetched on first use, not at start (an identity provider that is down must not stop
//! the server). A token signed with a key we don't hold (the provider rotated its keys) makes us
//! fetch the JWKS again, at most [`REFRESHES_PER_MINUTE`] times a minute per issuer, so a flood
//! of tokens with made-up key ids cannot turn into a flood of requests to the provider. Keys
//! older than [`KEYS_MAX_AGE`] are fetched again on use, so a key the provider withdrew stops
//! working. Every fetch has a deadline and a size limit.

use std::{
    collections::VecDeque,
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use serde::Deserialize;
use tokio::sync::Mutex;

use super::{
    TokenError,
    jwt::{Algorithm, VerifyingKey, decode_member},
};

/// JWKS refreshes allowed per issuer per minute.
pub const REFRESHES_PER_MINUTE: usize = 5;
/// How long fetched keys are used before they are fetched again.
pub const KEYS_MAX_AGE: Duration = Duration::from_secs(3600);
/// Deadline of one discovery or JWKS request.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest discovery document or JWKS read.
const MAX_DOCUMENT_BYTES: usize = 512 * 1024;

/// One issuer and the keys it signs with.
pub struct IssuerKeys {
    issuer: String,
    client: reqwest::Client,
    keys: RwLock<Arc<KeySet>>,
    refresh: Mutex<RefreshState>,
}

#[derive(Default)]
struct KeySet {
    keys: Vec<(Option<String>, VerifyingKey)>,
    fetched_at: Option<Instant>,
}

#[derive(Default)]
struct RefreshState {
    /// From the discovery document, once fetched.
    jwks_uri: Option<String>,
    /// When the recent refreshes started, for the rate limit.
    recent: VecDeque<Instant>,
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
}

#[derive(Deserialize)]
struct Jwks {
    keys: Vec<Jwk>,
}

#[derive(Deserialize)]
struct Jwk {
    kty: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default, rename = "use")]
    usage: Option<String>,
    #[serde(default)]
    alg: Option<String>,
    #[serde(default)]
    crv: Option<String>,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
    #[serde(default)]
    x: Option<String>,
    #[serde(default)]
    y: Option<String>,
}

impl IssuerKeys {
    pub fn new(issuer: String, client: reqwest::Client) -> Self {
        Self {
            issuer,
            client,
            keys: RwLock::new(Arc::default()),
            refresh: Mutex::new(RefreshState::default()),
        }
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The keys that may have signed a token with this key id and algorithm, fetching the JWKS
    /// again when none is held, within the rate limit. Held keys that are old are used while
    /// a refresh runs in the background, so no request waits on the provider for them.
    pub async fn candidates(
        self: &Arc<Self>,
        key_id: Option<&str>,
        algorithm: Algorithm,
    ) -> Result<Vec<VerifyingKey>, TokenError> {
        let held = self.snapshot();
        let found = held.matching(key_id, algorithm);
        if !found.is_empty() {
            if held.is_stale() {
                self.refresh_in_background(held);
            }
            return Ok(found);
        }
        let refreshed = {
            let mut state = self.refresh.lock().await;
            self.refresh(&mut state, &held).await
        };
        let now_held = self.snapshot();
        let found = now_held.matching(key_id, algorithm);
        match (found.is_empty(), refreshed, now_held.keys.is_empty()) {
            (false, _, _) => Ok(found),
            // Nothing to check the token with because the provider could not be reached.
            (true, Err(reason), true) => Err(TokenError::KeysUnavailable(reason)),
            (true, _, _) => Err(TokenError::UnknownKey),
        }
    }

    fn snapshot(&self) -> Arc<KeySet> {
        match self.keys.read() {
            Ok(keys) => keys.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// One refresh at a time: when one is already running, this one is not needed.
    fn refresh_in_background(self: &Arc<Self>, seen: Arc<KeySet>) {
        let keys = Arc::clone(self);
        tokio::spawn(async move {
            if let Ok(mut state) = keys.refresh.try_lock() {
                let _ = keys.refresh(&mut state, &seen).await;
            }
        });
    }

    /// Fetches the keys again unless another caller just did or the rate limit says no.
    async fn refresh(&self, state: &mut RefreshState, seen: &Arc<KeySet>) -> Result<(), String> {
        // Someone refreshed while we waited for the lock: use theirs.
        if !Arc::ptr_eq(seen, &self.snapshot()) {
            return Ok(());
        }
        let now = Instant::now();
        while state
            .recent
            .front()
            .is_some_and(|at| now.duration_since(*at) >= Duration::from_secs(60))
        {
            state.recent.pop_front();
        }
        if state.recent.len() >= REFRESHES_PER_MINUTE {
            return Err("the key refresh limit was reached".to_owned());
        }
        state.recent.push_back(now);
        let fetched = self.fetch(state).await;
        match fetched {
            Ok(keys) => {
                let set = Arc::new(KeySet {
                    keys,
                    fetched_at: Some(Instant::now()),
                });
                match self.keys.write() {
                    Ok(mut held) => *held = set,
                    Err(poisoned) => *poisoned.into_inner() = set,
                }
                Ok(())
            }
            Err(reason) => {
                tracing::warn!(issuer = %self.issuer, %reason, "cannot fetch the issuer's signing keys");
                Err(reason)
            }
        }
    }

    async fn fetch(
        &self,
        state: &mut RefreshState,
    ) -> Result<Vec<(Option<String>, VerifyingKey)>, String> {
        let jwks_uri = match &state.jwks_uri {
            Some(uri) => uri.clone(),
            None => {
                let url = discovery_url(&self.issuer);
                let discovery: Discovery = self.get_json(&url).await?;
                if trim_slash(&discovery.issuer) != trim_slash(&self.issuer) {
                    return Err(format!(
                        "the discovery document names issuer `{}`, not `{}`",
                        discovery.issuer, self.issuer
                    ));
                }
                crate::config::fetchable_url(&discovery.jwks_uri)?;
                state.jwks_uri = Some(discovery.jwks_uri.clone());
                discovery.jwks_uri
            }
        };
        let jwks: Jwks = self.get_json(&jwks_uri).await?;
        Ok(jwks.keys.iter().filter_map(Jwk::verifying_key).collect())
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, String> {
        let mut response = self
            .client
            .get(url)
            .header(http::header::ACCEPT, "application/json")
            .timeout(FETCH_TIMEOUT)
            .send()
            .await
            .map_err(|error| format!("GET {url}: {}", error.without_url()))?;
        if !response.status().is_success() {
            return Err(format!("GET {url}: HTTP {}", response.status().as_u16()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|error| format!("GET {url}: {}", error.without_url()))?
        {
            if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
                return Err(format!("GET {url}: more than {MAX_DOCUMENT_BYTES} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        serde_json::from_slice(&body)
            .map_err(|error| format!("GET {url}: not the JSON expected: {error}"))
    }
}

impl KeySet {
    fn matching(&self, key_id: Option<&str>, algorithm: Algorithm) -> Vec<VerifyingKey> {
        self.keys
            .iter()
            .filter(|(kid, key)| {
                key.algorithm() == algorithm && (key_id.is_none() || kid.as_deref() == key_id)
            })
            .map(|(_, key)| key.clone())
            .collect()
    }

    fn is_stale(&self) -> bool {
        self.fetched_at
            .is_none_or(|at| at.elapsed() >= KEYS_MAX_AGE)
    }
}

impl Jwk {
    /// The key, if it is a signing key of a kind we verify (RSA, or EC on P-256).
    fn verifying_key(&self) -> Option<(Option<String>, VerifyingKey)> {
        if self.usage.as_deref().is_some_and(|usage| usage != "sig") {
            return None;
        }
        let key = match (self.kty.as_str(), self.alg.as_deref()) {
            ("RSA", None | Some("RS256")) => VerifyingKey::Rsa {
                n: decode_member(self.n.as_deref()?)?,
                e: decode_member(self.e.as_deref()?)?,
            },
            ("EC", None | Some("ES256")) if self.crv.as_deref() == Some("P-256") => {
                let (x, y) = (
                    decode_member(self.x.as_deref()?)?,
                    decode_member(self.y.as_deref()?)?,
                );
                if x.len() != 32 || y.len() != 32 {
                    return None;
                }
                let mut point = Vec::with_capacity(65);
                point.push(0x04);
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                VerifyingKey::P256 { point }
            }
            _ => return None,
        };
        Some((self.kid.clone(), key))
    }
}

/// OpenID Connect discovery: `{issuer}/.well-known/openid-configuration`.
pub fn discovery_url(issuer: &str) -> String {
    format!("{}/.well-known/openid-configuration", trim_slash(issuer))
}

pub fn trim_slash(url: &str) -> &str {
    url.strip_suffix('/').unwrap_or(url)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn jwks_members_become_keys_and_the_rest_is_skipped() {
        let jwks: Jwks = serde_json::from_value(serde_json::json!({"keys": [
            {"kty": "RSA", "kid": "r", "use": "sig", "n": "AQAB", "e": "AQAB", "x5c": ["…"]},
            {"kty": "RSA", "kid": "enc", "use": "enc", "n": "AQAB", "e": "AQAB"},
            {"kty": "RSA", "kid": "ps", "alg": "PS256", "n": "AQAB", "e": "AQAB"},
            {"kty": "EC", "kid": "e", "crv": "P-256",
             "x": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "y": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"},
            {"kty": "EC", "kid": "p384", "crv": "P-384", "x": "AA", "y": "AA"},
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
            {"kty": "RSA", "kid": "broken", "n": "*not base64*", "e": "AQAB"}
        ]}))
        .unwrap();
        let kids: Vec<Option<String>> = jwks
            .keys
            .iter()
            .filter_map(Jwk::verifying_key)
            .map(|(kid, _)| kid)
            .collect();
        assert_eq!(kids, [Some("r".to_owned()), Some("e".to_owned())]);
    }

    #[test]
    fn keys_are_fetched_over_https_or_from_loopback_only() {
        use crate::config::fetchable_url;
        assert!(fetchable_url("https://login.microsoftonline.com/t/v2.0").is_ok());
        assert!(fetchable_url("http://127.0.0.1:8080/jwks").is_ok());
        assert!(fetchable_url("http://[::1]:8080/jwks").is_ok());
        assert!(fetchable_url("http://localhost/jwks").is_ok());
        assert!(fetchable_url("http://idp.example.com/jwks").is_err());
        assert!(fetchable_url("file:///etc/passwd").is_err());
        assert!(fetchable_url("not a url").is_err());
        assert_eq!(
            discovery_url("https://sts.windows.net/t/"),
            "https://sts.windows.net/t/.well-known/openid-configuration"
        );
    }
}

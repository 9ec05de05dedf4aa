//! OAuth 2.1 resource server: JWT access tokens from configured OpenID Connect issuers, and the
//! RFC 9728 protected-resource metadata that tells clients where to get one.
//!
//! - [`jwt`]: a token taken apart and its signature checked (RS256 and ES256 only).
//! - [`keys`]: each issuer's keys, from OIDC discovery and its JWKS, cached and refreshed on an
//!   unknown key id, within a rate limit.
//! - [`scopes`]: MCP_TOOL_SCOPES, which scope each tool needs.
//! - this file: [`OAuth::validate`] (issuer, signature, `exp`/`nbf`, audience, then the
//!   subscription and scopes the token carries, in Entra ID's v1 and v2 shapes and the
//!   standard ones), the metadata document and the `WWW-Authenticate` challenges.
//!
//! A token is never logged, echoed or put in an error: refusals say what was wrong with it.

mod jwt;
mod keys;
pub mod scopes;

use std::{
    sync::Arc,
    time::{SystemTime, UNIX_EPOCH},
};

use http::HeaderValue;
use serde_json::{Map, Value, json};

use jwt::UnverifiedToken;
pub use jwt::looks_like_jwt;
use keys::{IssuerKeys, trim_slash};
pub use keys::{KEYS_MAX_AGE, REFRESHES_PER_MINUTE};

use crate::config::OAuthSettings;

/// Clock skew tolerated on `exp` and `nbf`, in seconds.
pub const LEEWAY_SECONDS: i64 = 60;
/// The RFC 9728 metadata path; the MCP endpoint's own document is this plus `/mcp`.
pub const METADATA_PATH: &str = "/.well-known/oauth-protected-resource";

/// Why a token was refused. The texts go to clients (and logs): none quotes the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the access token is not a well-formed JWT")]
    Malformed,
    #[error("the access token's signing algorithm is not accepted (RS256 or ES256 only)")]
    UnsupportedAlgorithm,
    #[error("the access token's issuer is not accepted here")]
    UnknownIssuer,
    #[error("the access token is signed with a key its issuer does not publish")]
    UnknownKey,
    #[error("the access token's signature is not valid")]
    BadSignature,
    #[error("the access token has expired")]
    Expired,
    #[error("the access token is not valid yet")]
    NotYetValid,
    #[error("the access token is not meant for this server (audience)")]
    WrongAudience,
    #[error("the access token names no usable subscription (OAUTH_SUBSCRIPTION_CLAIM)")]
    NoSubscription,
    /// The detail (which fetch failed) is for the log only.
    #[error("the token issuer's signing keys cannot be fetched right now")]
    KeysUnavailable(String),
}

/// Who a valid token speaks for.
#[derive(Debug, Clone)]
pub struct TokenIdentity {
    /// The subscription budgets, limits, the ledger and metrics count against.
    pub subscription: Arc<str>,
    /// Scopes and app roles granted (`scp`, `scope`, `roles`).
    pub scopes: Arc<[String]>,
}

/// What a `WWW-Authenticate` challenge says.
#[derive(Debug, Clone, Copy)]
pub enum Challenge<'a> {
    /// No credential (or an unknown key): where to get a token.
    Missing,
    /// A token that was refused, and why.
    InvalidToken(&'a str),
    /// A valid token without the scope this call needs (403).
    InsufficientScope(&'a str),
}

/// The resource server: validates tokens, serves metadata, writes challenges.
pub struct OAuth {
    issuers: Vec<Arc<IssuerKeys>>,
    audiences: Vec<String>,
    subscription_claims: Vec<String>,
    /// The protected resource: PUBLIC_URL + `/mcp`.
    resource: String,
    /// Where its metadata is: PUBLIC_URL + METADATA_PATH + `/mcp`.
    metadata_url: String,
    /// Scopes clients may request, as they request them (OAUTH_SCOPE_PREFIX applied).
    scopes_supported: Vec<String>,
}

impl OAuth {
    /// `scopes_supported`: the scopes clients may request, as they request them.
    pub fn new(settings: &OAuthSettings, scopes_supported: Vec<String>) -> Result<Self, String> {
        let client = gateway_client::tls::client_builder()
            // A redirect could lead off https; providers serve these documents directly.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|error| format!("cannot build the HTTP client for OAUTH_ISSUERS: {error}"))?;
        let public_url = trim_slash(&settings.public_url);
        Ok(Self {
            issuers: settings
                .issuers
                .iter()
                .map(|issuer| Arc::new(IssuerKeys::new(issuer.clone(), client.clone())))
                .collect(),
            audiences: settings.audiences.clone(),
            subscription_claims: settings.subscription_claims.clone(),
            resource: format!("{public_url}/mcp"),
            metadata_url: format!("{public_url}{METADATA_PATH}/mcp"),
            scopes_supported,
        })
    }

    /// Checks a bearer token and returns who it speaks for.
    pub async fn validate(&self, raw: &str) -> Result<TokenIdentity, TokenError> {
        let token = UnverifiedToken::parse(raw)?;
        let issuer = token
            .issuer()
            .and_then(|iss| {
                self.issuers
                    .iter()
                    .find(|known| trim_slash(known.issuer()) == trim_slash(iss))
            })
            .ok_or(TokenError::UnknownIssuer)?;
        let keys = issuer
            .candidates(token.key_id.as_deref(), token.algorithm)
            .await?;
        if !keys.iter().any(|key| token.is_signed_by(key)) {
            return Err(TokenError::BadSignature);
        }
        let claims = &token.claims;
        check_times(claims, unix_now())?;
        if !audiences(claims).any(|aud| self.audiences.iter().any(|ours| ours == aud)) {
            return Err(TokenError::WrongAudience);
        }
        Ok(TokenIdentity {
            subscription: self.subscription(claims)?,
            scopes: granted_scopes(claims).into(),
        })
    }

    /// The first OAUTH_SUBSCRIPTION_CLAIM the token carries, if it is a usable name.
    fn subscription(&self, claims: &Map<String, Value>) -> Result<Arc<str>, TokenError> {
        let name = self
            .subscription_claims
            .iter()
            .find_map(|claim| claims.get(claim).and_then(Value::as_str))
            .filter(|name| is_usable_name(name))
            .ok_or(TokenError::NoSubscription)?;
        Ok(Arc::from(name))
    }

    /// The RFC 9728 protected-resource metadata.
    pub fn metadata(&self) -> Value {
        let mut document = json!({
            "resource": self.resource,
            "authorization_servers": self.issuers.iter().map(|keys| keys.issuer()).collect::<Vec<_>>(),
            "bearer_methods_supported": ["header"],
            "resource_name": "tollgate",
        });
        if !self.scopes_supported.is_empty()
            && let Some(map) = document.as_object_mut()
        {
            map.insert("scopes_supported".to_owned(), json!(self.scopes_supported));
        }
        document
    }

    /// The `WWW-Authenticate` value for a refusal: always the metadata's URL, then the error
    /// and the scopes to ask for.
    pub fn challenge(&self, challenge: Challenge<'_>) -> HeaderValue {
        let mut value = format!("Bearer resource_metadata=\"{}\"", self.metadata_url);
        let scope = match challenge {
            Challenge::Missing => self.scopes_supported.join(" "),
            Challenge::InvalidToken(why) => {
                value.push_str(&format!(
                    ", error=\"invalid_token\", error_description=\"{}\"",
                    quotable(why)
                ));
                self.scopes_supported.join(" ")
            }
            Challenge::InsufficientScope(scope) => {
                value.push_str(", error=\"insufficient_scope\"");
                quotable(scope)
            }
        };
        if !scope.is_empty() {
            value.push_str(&format!(", scope=\"{scope}\""));
        }
        HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static("Bearer"))
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            i64::try_from(since.as_secs()).unwrap_or(i64::MAX)
        })
}

/// `exp` is required; `nbf` is checked when present; both with [`LEEWAY_SECONDS`].
fn check_times(claims: &Map<String, Value>, now: i64) -> Result<(), TokenError> {
    let seconds = |name: &str| claims.get(name).and_then(Value::as_f64);
    let expires = seconds("exp").ok_or(TokenError::Malformed)?;
    #[expect(
        clippy::cast_precision_loss,
        reason = "Unix times in seconds are far below 2^52"
    )]
    let (late, early) = ((now - LEEWAY_SECONDS) as f64, (now + LEEWAY_SECONDS) as f64);
    if expires < late {
        return Err(TokenError::Expired);
    }
    if seconds("nbf").is_some_and(|not_before| not_before > early) {
        return Err(TokenError::NotYetValid);
    }
    Ok(())
}

/// `aud` as one string or a list of them.
fn audiences(claims: &Map<String, Value>) -> impl Iterator<Item = &str> {
    let (one, many) = match claims.get("aud") {
        Some(Value::String(aud)) => (Some(aud.as_str()), None),
        Some(Value::Array(list)) => (None, Some(list.iter().filter_map(Value::as_str))),
        _ => (None, None),
    };
    one.into_iter().chain(many.into_iter().flatten())
}

/// Delegated scopes (`scp` in Entra ID, `scope` in RFC 9068, both space-separated) and
/// application roles (`roles`, Entra ID's app-only permissions).
fn granted_scopes(claims: &Map<String, Value>) -> Vec<String> {
    let mut granted: Vec<String> = ["scp", "scope"]
        .iter()
        .filter_map(|claim| claims.get(*claim).and_then(Value::as_str))
        .flat_map(str::split_whitespace)
        .map(str::to_owned)
        .collect();
    if let Some(Value::Array(roles)) = claims.get("roles") {
        granted.extend(roles.iter().filter_map(Value::as_str).map(str::to_owned));
    }
    granted.sort();
    granted.dedup();
    granted
}

/// A subscription name from a token: what budgets, ledgers and metrics labels accept.
fn is_usable_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '@'))
}

/// Text safe inside a quoted-string of a header.
fn quotable(text: &str) -> String {
    text.chars()
        .filter(|c| c.is_ascii() && !c.is_ascii_control() && *c != '"' && *c != '\\')
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn claims(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap()
    }

    fn oauth(scopes: &[&str]) -> OAuth {
        OAuth::new(
            &OAuthSettings {
                public_url: "https://gw.example.com/".to_owned(),
                issuers: vec!["https://login.microsoftonline.com/t/v2.0".to_owned()],
                audiences: vec!["https://gw.example.com/mcp".to_owned()],
                subscription_claims: vec!["azp".into(), "appid".into(), "sub".into()],
                scope_prefix: String::new(),
            },
            scopes.iter().map(|s| (*s).to_owned()).collect(),
        )
        .unwrap()
    }

    #[test]
    fn times_are_checked_with_leeway() {
        let now = 1_800_000_000;
        assert!(check_times(&claims(json!({"exp": now + 10})), now).is_ok());
        assert!(check_times(&claims(json!({"exp": now - 30})), now).is_ok());
        assert_eq!(
            check_times(&claims(json!({"exp": now - 61})), now),
            Err(TokenError::Expired)
        );
        assert_eq!(
            check_times(&claims(json!({"exp": now + 600, "nbf": now + 120})), now),
            Err(TokenError::NotYetValid)
        );
        assert!(check_times(&claims(json!({"exp": now + 600, "nbf": now + 30})), now).is_ok());
        assert_eq!(
            check_times(&claims(json!({"nbf": now})), now),
            Err(TokenError::Malformed)
        );
        assert_eq!(
            check_times(&claims(json!({"exp": "tomorrow"})), now),
            Err(TokenError::Malformed)
        );
    }

    #[test]
    fn entra_v1_and_v2_shapes_name_the_subscription_and_scopes() {
        let server = oauth(&[]);
        let v2 = claims(
            json!({"azp": "11111111-2222", "scp": "mcp.tools  tollgate.read", "roles": ["Tools.All"]}),
        );
        assert_eq!(&*server.subscription(&v2).unwrap(), "11111111-2222");
        assert_eq!(
            granted_scopes(&v2),
            ["Tools.All", "mcp.tools", "tollgate.read"]
        );
        let v1 = claims(json!({"appid": "33333333-4444", "scp": "mcp.tools"}));
        assert_eq!(&*server.subscription(&v1).unwrap(), "33333333-4444");
        let standard = claims(json!({"sub": "svc@clients", "scope": "a b"}));
        assert_eq!(&*server.subscription(&standard).unwrap(), "svc@clients");
        assert_eq!(granted_scopes(&standard), ["a", "b"]);
        for unusable in [
            json!({}),
            json!({"azp": ""}),
            json!({"azp": "a b"}),
            json!({"azp": 7}),
        ] {
            assert!(server.subscription(&claims(unusable)).is_err());
        }
        let listed = claims(json!({"aud": ["x", "https://gw.example.com/mcp"]}));
        assert_eq!(
            audiences(&listed).collect::<Vec<_>>(),
            ["x", "https://gw.example.com/mcp"]
        );
    }

    #[test]
    fn metadata_and_challenges_use_the_public_url() {
        let server = oauth(&["api://app/mcp.tools"]);
        let metadata = server.metadata();
        assert_eq!(metadata["resource"], "https://gw.example.com/mcp");
        assert_eq!(
            metadata["authorization_servers"],
            json!(["https://login.microsoftonline.com/t/v2.0"])
        );
        assert_eq!(metadata["scopes_supported"], json!(["api://app/mcp.tools"]));
        assert_eq!(metadata["bearer_methods_supported"], json!(["header"]));
        assert_eq!(
            server.challenge(Challenge::Missing),
            "Bearer resource_metadata=\"https://gw.example.com/.well-known/oauth-protected-resource/mcp\", scope=\"api://app/mcp.tools\""
        );
        let refused = server.challenge(Challenge::InvalidToken("it \"expired\"\n"));
        assert!(
            refused
                .to_str()
                .unwrap()
                .contains("error=\"invalid_token\", error_description=\"it expired\"")
        );
        let scope = server.challenge(Challenge::InsufficientScope("api://app/echo"));
        assert!(
            scope
                .to_str()
                .unwrap()
                .ends_with("error=\"insufficient_scope\", scope=\"api://app/echo\"")
        );
        assert!(oauth(&[]).metadata().get("scopes_supported").is_none());
    }
}

//! Subscription keys and access tokens: who is calling.
//!
//! A credential may come as `Ocp-Apim-Subscription-Key`, `api-key`, `x-api-key` (the
//! Anthropic clients' header) or `Authorization: Bearer`. Keys are compared in constant time and
//! never logged; the subscription *name* is what logs, metrics and limits see. A credential
//! that is no key but has a JWT's shape is validated as an access token from OAUTH_ISSUERS
//! ([`crate::oauth`]); its subscription comes from a claim, so token callers are budgeted,
//! limited and charged exactly as key callers are. With neither keys nor issuers configured the
//! server is open and callers are told apart by IP.

use std::{
    convert::Infallible,
    net::IpAddr,
    sync::Arc,
    task::{Context, Poll},
};

use axum::{
    extract::{ConnectInfo, FromRequestParts, Request},
    http::request::Parts,
    response::{IntoResponse, Response},
};
use futures::future::{BoxFuture, Either};
use gateway_client::telemetry::CallRecord;
use http::{HeaderMap, header};
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;
use tower::{Layer, Service};

use gateway_client::{Stats, stats::Refusal};

use crate::{
    config::SubscriptionKeys,
    error::ApiError,
    oauth::{Challenge, OAuth, TokenError, looks_like_jwt, scopes::ToolScopes},
};

/// The headers a subscription key may arrive in, in the order they are read. `x-api-key` is
/// where the Anthropic SDKs and Claude Code send theirs.
const KEY_HEADERS: [&str; 3] = ["ocp-apim-subscription-key", "api-key", "x-api-key"];

/// Label used for callers when the server runs without keys. Client IPs never become labels.
pub const ANONYMOUS: &str = "anonymous";

/// The authenticated caller of one request, stored in the request's extensions.
#[derive(Clone, Debug)]
pub struct Caller {
    /// The subscription's name, or `None` when the server is open.
    pub subscription: Option<Arc<str>>,
    /// The key or token the caller presented, kept so the agent can call back into this
    /// server's own /mcp as the caller (and nowhere else).
    pub key: Option<SecretString>,
    pub client_ip: Option<IpAddr>,
    /// A token caller's scopes; `None` for key callers and open servers, which hold every scope.
    pub scopes: Option<Arc<[String]>>,
}

impl Caller {
    /// A bounded label for metrics and logs: the subscription name, or `anonymous`.
    pub fn label(&self) -> &str {
        self.subscription.as_deref().unwrap_or(ANONYMOUS)
    }

    /// The scope this caller lacks to call `tool`, if it lacks one (MCP_TOOL_SCOPES).
    pub fn missing_scope<'a>(&self, tool: &str, scopes: &'a ToolScopes) -> Option<&'a str> {
        let required = scopes.required_for(tool)?;
        match &self.scopes {
            Some(granted) if !scopes.grants(granted, required) => Some(required),
            _ => None,
        }
    }

    /// The key rate limits and budgets count against: the subscription, else the client IP.
    pub fn limit_key(&self) -> Arc<str> {
        match (&self.subscription, self.client_ip) {
            (Some(name), _) => name.clone(),
            (None, Some(ip)) => Arc::from(format!("ip:{ip}")),
            (None, None) => Arc::from(ANONYMOUS),
        }
    }
}

/// Checks presented keys against the configured subscriptions, and tokens with [`OAuth`].
#[derive(Default)]
pub struct Authenticator {
    subscriptions: Vec<(Arc<str>, SecretString)>,
    /// ADMIN_KEY: sees every subscription's usage.
    admin_key: Option<SecretString>,
    /// OAUTH_ISSUERS: access tokens accepted beside keys.
    oauth: Option<Arc<OAuth>>,
    /// Where refused keys are counted for the dashboard.
    stats: Option<Arc<Stats>>,
}

impl Authenticator {
    pub fn new(keys: Option<&SubscriptionKeys>, admin_key: Option<SecretString>) -> Self {
        let subscriptions = keys
            .map(|keys| {
                keys.0
                    .iter()
                    .map(|s| (Arc::from(s.name.as_str()), s.key.clone()))
                    .collect()
            })
            .unwrap_or_default();
        Self {
            subscriptions,
            admin_key,
            oauth: None,
            stats: None,
        }
    }

    /// Accepts access tokens too.
    #[must_use]
    pub fn with_oauth(mut self, oauth: Option<Arc<OAuth>>) -> Self {
        self.oauth = oauth;
        self
    }

    pub fn oauth(&self) -> Option<&OAuth> {
        self.oauth.as_deref()
    }

    /// Counts every refused key in `stats`.
    #[must_use]
    pub fn with_stats(mut self, stats: Arc<Stats>) -> Self {
        self.stats = Some(stats);
        self
    }

    /// Whether `headers` present ADMIN_KEY, compared in constant time.
    fn is_admin(&self, headers: &HeaderMap) -> bool {
        match (&self.admin_key, presented_key(headers)) {
            (Some(admin), Some(presented)) => {
                bool::from(admin.expose_secret().as_bytes().ct_eq(presented.as_bytes()))
            }
            _ => false,
        }
    }

    pub fn is_open(&self) -> bool {
        self.subscriptions.is_empty() && self.oauth.is_none()
    }

    /// The subscription whose key is `presented`, compared in constant time.
    ///
    /// Every configured key is compared, so the time taken does not reveal which one matched.
    pub fn subscription_for(&self, presented: &str) -> Option<Arc<str>> {
        let mut found = None;
        for (name, key) in &self.subscriptions {
            if bool::from(key.expose_secret().as_bytes().ct_eq(presented.as_bytes())) {
                found = Some(name.clone());
            }
        }
        found
    }

    /// Identifies the caller of a request, or refuses it.
    pub async fn authenticate(
        &self,
        headers: &HeaderMap,
        client_ip: Option<IpAddr>,
    ) -> Result<Caller, ApiError> {
        match self.identify(headers, client_ip) {
            Identity::Known(known) => known,
            Identity::Token { oauth, key } => validate_token(oauth, key, client_ip).await,
        }
    }

    /// What the headers alone tell: an open server's caller, a key's subscription, or a refusal;
    /// or an access token still to be validated (which may have to fetch the issuer's keys).
    fn identify(&self, headers: &HeaderMap, client_ip: Option<IpAddr>) -> Identity {
        let presented = presented_key(headers);
        if self.is_open() {
            return Identity::Known(Ok(Caller {
                subscription: None,
                key: presented.map(|k| SecretString::from(k.to_owned())),
                client_ip,
                scopes: None,
            }));
        }
        let Some(presented) = presented else {
            return Identity::Known(Err(ApiError::MissingKey));
        };
        if let Some(subscription) = self.subscription_for(presented) {
            return Identity::Known(Ok(Caller {
                subscription: Some(subscription),
                key: Some(SecretString::from(presented.to_owned())),
                client_ip,
                scopes: None,
            }));
        }
        match self.oauth.as_ref().filter(|_| looks_like_jwt(presented)) {
            Some(oauth) => Identity::Token {
                oauth: oauth.clone(),
                key: SecretString::from(presented.to_owned()),
            },
            None => {
                tracing::info!(client_ip = ?client_ip, "refused an unknown subscription key");
                Identity::Known(Err(ApiError::InvalidKey))
            }
        }
    }

    /// The `WWW-Authenticate` challenge for a refused request, when tokens are accepted.
    pub fn challenge_for(&self, refusal: &ApiError) -> Option<http::HeaderValue> {
        let oauth = self.oauth.as_ref()?;
        match refusal {
            ApiError::MissingKey | ApiError::InvalidKey => {
                Some(oauth.challenge(Challenge::Missing))
            }
            ApiError::InvalidToken(why) => Some(oauth.challenge(Challenge::InvalidToken(why))),
            _ => None,
        }
    }
}

/// The key a request presents, from the first header that carries one.
pub fn presented_key(headers: &HeaderMap) -> Option<&str> {
    KEY_HEADERS
        .iter()
        .find_map(|name| headers.get(*name))
        .and_then(|value| value.to_str().ok())
        .or_else(|| {
            headers
                .get(header::AUTHORIZATION)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| {
                    value
                        .strip_prefix("Bearer ")
                        .or_else(|| value.strip_prefix("bearer "))
                })
        })
        .map(str::trim)
        .filter(|key| !key.is_empty())
}

/// The layer that authenticates every request and stores its [`Caller`] in the extensions,
/// or answers the refusal (with OAuth's challenge when tokens are accepted).
#[derive(Clone)]
pub struct RequireCallerLayer(pub Arc<Authenticator>);

impl<S> Layer<S> for RequireCallerLayer {
    type Service = RequireCaller<S>;

    fn layer(&self, inner: S) -> RequireCaller<S> {
        RequireCaller {
            authenticator: self.0.clone(),
            inner,
        }
    }
}

/// See [`RequireCallerLayer`]. A key's request goes on to the route with nothing boxed or
/// cloned; only an access token's takes an async detour.
#[derive(Clone)]
pub struct RequireCaller<S> {
    authenticator: Arc<Authenticator>,
    inner: S,
}

impl<S> Service<Request> for RequireCaller<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Either<S::Future, BoxFuture<'static, Result<Response, Infallible>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        let client_ip = request
            .extensions()
            .get::<ConnectInfo<std::net::SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip());
        match self.authenticator.identify(request.headers(), client_ip) {
            Identity::Known(Ok(caller)) => {
                admit(&mut request, caller);
                Either::Left(self.inner.call(request))
            }
            Identity::Known(Err(refusal)) => {
                let response = refuse(&self.authenticator, refusal);
                Either::Right(Box::pin(std::future::ready(Ok(response))))
            }
            Identity::Token { oauth, key } => {
                // The ready service goes with the request; a clone stays for the next one.
                let clone = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, clone);
                let authenticator = self.authenticator.clone();
                Either::Right(Box::pin(async move {
                    match validate_token(oauth, key, client_ip).await {
                        Ok(caller) => {
                            admit(&mut request, caller);
                            inner.call(request).await
                        }
                        Err(refusal) => Ok(refuse(&authenticator, refusal)),
                    }
                }))
            }
        }
    }
}

/// The headers' verdict on a caller (see [`Authenticator::identify`]).
enum Identity {
    Known(Result<Caller, ApiError>),
    Token {
        oauth: Arc<OAuth>,
        key: SecretString,
    },
}

async fn validate_token(
    oauth: Arc<OAuth>,
    key: SecretString,
    client_ip: Option<IpAddr>,
) -> Result<Caller, ApiError> {
    let identity = oauth.validate(key.expose_secret()).await.map_err(|error| {
        tracing::info!(client_ip = ?client_ip, reason = %error, "refused an access token");
        match error {
            TokenError::KeysUnavailable(_) => ApiError::TokenKeysUnavailable,
            refused => ApiError::InvalidToken(refused.to_string()),
        }
    })?;
    Ok(Caller {
        subscription: Some(identity.subscription),
        key: Some(key),
        client_ip,
        scopes: Some(identity.scopes),
    })
}

/// Hands the caller to the route: the request's extensions, its span, its access-log record.
fn admit(request: &mut Request, caller: Caller) {
    tracing::Span::current().record("subscription", caller.label());
    if let Some(record) = request.extensions().get::<Arc<CallRecord>>() {
        let name = caller.subscription.clone();
        record.set_subscription(name.unwrap_or_else(|| Arc::from(caller.label())));
    }
    request.extensions_mut().insert(caller);
}

/// The refusal's answer, with the OAuth challenge when tokens are accepted; counted.
fn refuse(authenticator: &Authenticator, refusal: ApiError) -> Response {
    if let Some(stats) = &authenticator.stats {
        stats.refused(Refusal::Auth);
    }
    let challenge = authenticator.challenge_for(&refusal);
    let mut response = refusal.into_response();
    if let Some(challenge) = challenge {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, challenge);
    }
    response
}

/// The admin key, presented: `/admin/stats`, the dashboard's data. Without `ADMIN_KEY` set
/// nobody passes (401 without a key, 403 with any other).
#[derive(Debug, Clone, Copy)]
pub struct AdminOnly;

impl<S> FromRequestParts<S> for AdminOnly
where
    S: KeyChecks + Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let authenticator = state.authenticator();
        if authenticator.is_admin(&parts.headers) {
            return Ok(Self);
        }
        match (presented_key(&parts.headers), &authenticator.admin_key) {
            (None, _) => Err(ApiError::MissingKey),
            (Some(_), Some(_)) => Err(ApiError::Forbidden(
                "this route needs the admin key".to_owned(),
            )),
            (Some(_), None) => Err(ApiError::Forbidden(
                "this route needs the admin key, and none is configured (ADMIN_KEY)".to_owned(),
            )),
        }
    }
}

/// Whose usage a request may read (`/admin/usage`): ADMIN_KEY sees every subscription, a
/// subscription key only its own. On a server with neither kind of key, everything is open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UsageViewer {
    Admin,
    Subscription(Arc<str>),
    Open,
}

impl UsageViewer {
    /// The one subscription this viewer may see, or `None` for all of them.
    pub fn only(self) -> Option<Arc<str>> {
        match self {
            Self::Subscription(name) => Some(name),
            Self::Admin | Self::Open => None,
        }
    }
}

/// A router state that holds the [`Authenticator`], so key extractors need not know the state.
pub trait KeyChecks {
    fn authenticator(&self) -> &Authenticator;
}

impl<S> FromRequestParts<S> for UsageViewer
where
    S: KeyChecks + Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let authenticator = state.authenticator();
        if authenticator.is_admin(&parts.headers) {
            return Ok(Self::Admin);
        }
        let client_ip = parts
            .extensions
            .get::<ConnectInfo<std::net::SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip());
        let caller = authenticator
            .authenticate(&parts.headers, client_ip)
            .await?;
        match caller.subscription {
            Some(name) => Ok(Self::Subscription(name)),
            None if authenticator.admin_key.is_some() => Err(if caller.key.is_some() {
                ApiError::InvalidKey
            } else {
                ApiError::MissingKey
            }),
            None => Ok(Self::Open),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use http::HeaderValue;

    fn authenticator() -> Authenticator {
        Authenticator::new(Some(&"alice=key-a,bob=key-b".parse().unwrap()), None)
    }

    fn headers(name: &str, value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
        headers
    }

    #[tokio::test]
    async fn each_key_header_identifies_the_subscription() {
        let auth = authenticator();
        for (name, value) in [
            ("ocp-apim-subscription-key", "key-b"),
            ("api-key", "key-b"),
            ("authorization", "Bearer key-b"),
        ] {
            let caller = auth
                .authenticate(&headers(name, value), None)
                .await
                .unwrap();
            assert_eq!(caller.label(), "bob", "{name}");
        }
    }

    #[tokio::test]
    async fn missing_and_wrong_keys_are_refused() {
        let auth = authenticator();
        assert!(matches!(
            auth.authenticate(&HeaderMap::new(), None).await,
            Err(ApiError::MissingKey)
        ));
        assert!(matches!(
            auth.authenticate(&headers("api-key", "key-"), None).await,
            Err(ApiError::InvalidKey)
        ));
        assert!(matches!(
            auth.authenticate(&headers("authorization", "Basic key-a"), None)
                .await,
            Err(ApiError::MissingKey)
        ));
        // Without OAUTH_ISSUERS a JWT is just an unknown key, and no challenge is written.
        let jwt = "Bearer eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJ4In0.c2ln";
        let refusal = auth
            .authenticate(&headers("authorization", jwt), None)
            .await
            .unwrap_err();
        assert!(matches!(refusal, ApiError::InvalidKey));
        assert!(auth.challenge_for(&refusal).is_none());
    }

    #[test]
    fn scopes_bind_token_callers_only() {
        let scopes = ToolScopes::new(vec![("echo".into(), "mcp.echo".into())], String::new());
        let key_caller = Caller {
            subscription: Some(Arc::from("team")),
            key: None,
            client_ip: None,
            scopes: None,
        };
        assert_eq!(key_caller.missing_scope("echo", &scopes), None);
        let token_caller = Caller {
            scopes: Some(Arc::from(vec!["other".to_owned()])),
            ..key_caller.clone()
        };
        assert_eq!(
            token_caller.missing_scope("echo", &scopes),
            Some("mcp.echo")
        );
        assert_eq!(token_caller.missing_scope("whoami", &scopes), None);
        let granted = Caller {
            scopes: Some(Arc::from(vec!["mcp.echo".to_owned()])),
            ..key_caller
        };
        assert_eq!(granted.missing_scope("echo", &scopes), None);
    }

    #[tokio::test]
    async fn open_servers_key_limits_by_ip_but_label_anonymously() {
        let auth = Authenticator::new(None, None);
        let caller = auth
            .authenticate(&HeaderMap::new(), Some("10.1.2.3".parse().unwrap()))
            .await
            .unwrap();
        assert_eq!(caller.label(), ANONYMOUS);
        assert_eq!(&*caller.limit_key(), "ip:10.1.2.3");
    }
}

//! Subscription keys: who is calling.
//!
//! A key may come as `Ocp-Apim-Subscription-Key`, `api-key` or `Authorization: Bearer`. Keys are
//! compared in constant time and never logged; the subscription *name* is what logs, metrics and
//! limits see. With no keys configured the server is open and callers are told apart by IP.

use std::{net::IpAddr, sync::Arc};

use axum::{
    extract::{ConnectInfo, FromRequestParts, Request, State},
    http::request::Parts,
    middleware::Next,
    response::Response,
};
use gateway_client::telemetry::CallRecord;
use http::{HeaderMap, header};
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

use crate::{config::SubscriptionKeys, error::ApiError};

/// The headers a subscription key may arrive in, in the order they are read.
const KEY_HEADERS: [&str; 2] = ["ocp-apim-subscription-key", "api-key"];

/// Label used for callers when the server runs without keys. Client IPs never become labels.
pub const ANONYMOUS: &str = "anonymous";

/// The authenticated caller of one request, stored in the request's extensions.
#[derive(Clone, Debug)]
pub struct Caller {
    /// The subscription's name, or `None` when the server is open.
    pub subscription: Option<Arc<str>>,
    /// The key the caller presented, kept so the agent can call back into /mcp as the caller.
    pub key: Option<SecretString>,
    pub client_ip: Option<IpAddr>,
}

impl Caller {
    /// A bounded label for metrics and logs: the subscription name, or `anonymous`.
    pub fn label(&self) -> &str {
        self.subscription.as_deref().unwrap_or(ANONYMOUS)
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

/// Checks presented keys against the configured subscriptions.
#[derive(Debug, Default)]
pub struct Authenticator {
    subscriptions: Vec<(Arc<str>, SecretString)>,
    /// ADMIN_KEY: sees every subscription's usage.
    admin_key: Option<SecretString>,
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
        }
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
        self.subscriptions.is_empty()
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
    pub fn authenticate(
        &self,
        headers: &HeaderMap,
        client_ip: Option<IpAddr>,
    ) -> Result<Caller, ApiError> {
        let presented = presented_key(headers);
        if self.is_open() {
            return Ok(Caller {
                subscription: None,
                key: presented.map(|k| SecretString::from(k.to_owned())),
                client_ip,
            });
        }
        let presented = presented.ok_or(ApiError::MissingKey)?;
        let subscription = self.subscription_for(presented).ok_or_else(|| {
            tracing::info!(client_ip = ?client_ip, "refused an unknown subscription key");
            ApiError::InvalidKey
        })?;
        Ok(Caller {
            subscription: Some(subscription),
            key: Some(SecretString::from(presented.to_owned())),
            client_ip,
        })
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

/// Middleware: authenticates the request and stores its [`Caller`] in the extensions.
pub async fn require_caller(
    State(authenticator): State<Arc<Authenticator>>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let client_ip = request
        .extensions()
        .get::<ConnectInfo<std::net::SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    let caller = authenticator.authenticate(request.headers(), client_ip)?;
    tracing::Span::current().record("subscription", caller.label());
    if let Some(record) = request.extensions().get::<Arc<CallRecord>>() {
        let name = caller.subscription.clone();
        record.set_subscription(name.unwrap_or_else(|| Arc::from(caller.label())));
    }
    request.extensions_mut().insert(caller);
    Ok(next.run(request).await)
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
        let caller = authenticator.authenticate(&parts.headers, client_ip)?;
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

    #[test]
    fn each_key_header_identifies_the_subscription() {
        let auth = authenticator();
        for (name, value) in [
            ("ocp-apim-subscription-key", "key-b"),
            ("api-key", "key-b"),
            ("authorization", "Bearer key-b"),
        ] {
            let caller = auth.authenticate(&headers(name, value), None).unwrap();
            assert_eq!(caller.label(), "bob", "{name}");
        }
    }

    #[test]
    fn missing_and_wrong_keys_are_refused() {
        let auth = authenticator();
        assert!(matches!(
            auth.authenticate(&HeaderMap::new(), None),
            Err(ApiError::MissingKey)
        ));
        assert!(matches!(
            auth.authenticate(&headers("api-key", "key-"), None),
            Err(ApiError::InvalidKey)
        ));
        assert!(matches!(
            auth.authenticate(&headers("authorization", "Basic key-a"), None),
            Err(ApiError::MissingKey)
        ));
    }

    #[test]
    fn open_servers_key_limits_by_ip_but_label_anonymously() {
        let auth = Authenticator::new(None, None);
        let caller = auth
            .authenticate(&HeaderMap::new(), Some("10.1.2.3".parse().unwrap()))
            .unwrap();
        assert_eq!(caller.label(), ANONYMOUS);
        assert_eq!(&*caller.limit_key(), "ip:10.1.2.3");
    }
}

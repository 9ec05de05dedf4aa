//! Microsoft Entra ID tokens, so Azure services are reached without keys.
//!
//! [`EntraCredential`] picks its source once, at start, in the order Azure's own SDKs use
//! (see [`source`]): a service principal (client secret), workload identity (a federated token
//! file exchanged at the authority host), or managed identity (App Service's identity endpoint,
//! else the instance metadata service).
//!
//! Tokens are cached per scope and refreshed before they expire: once less than
//! [`REFRESH_MARGIN`] or half their lifetime is left, whichever is shorter. Many callers asking
//! at once share one request (single flight): the first asks, the others wait for its answer,
//! and a failure is shared the same way, so a failing identity endpoint is asked once, not once
//! per caller. A refresh that fails while the old token is still valid keeps the old token. A
//! token the upstream refused (401) is dropped with [`EntraCredential::invalidate`], so the next
//! call fetches a new one.
//!
//! Tokens never reach logs: [`AccessToken`]'s `Debug` redacts the secret, the bearer header is
//! marked sensitive, and errors carry the identity endpoint's error code and description only.
//!
//! The official `azure_identity` crate was weighed and not used: it reads the process
//! environment itself (tollgate reads settings in one place, and tests pass them as a map), its
//! instance metadata endpoint cannot be pointed elsewhere (tests cannot bind 169.254.169.254),
//! its reqwest TLS feature brings aws-lc-rs beside our ring provider, and its deadlines are not
//! ours. The three token requests are small; they are written here.

pub mod source;
#[cfg(test)]
mod tests;

use std::{
    collections::HashMap,
    fmt,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, SystemTime},
};

use http::HeaderValue;
use parking_lot::{Mutex, RwLock};
use secrecy::{ExposeSecret, SecretString};
use tokio::time::Instant;

use crate::{config::EntraConfig, error::GatewayError};

pub use source::{Fetched, TokenSource};

/// The scope of Azure OpenAI and Azure AI Content Safety.
pub const COGNITIVE_SERVICES_SCOPE: &str = "https://cognitiveservices.azure.com/.default";
/// The public cloud's login host.
pub const DEFAULT_AUTHORITY_HOST: &str = "https://login.microsoftonline.com";
/// The instance metadata service's token endpoint.
pub const IMDS_ENDPOINT: &str = "http://169.254.169.254/metadata/identity/oauth2/token";
/// A token is refreshed once less than this (or half its lifetime, if shorter) is left.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(300);
/// Deadline of one token request, when the caller's own deadline is not sooner.
pub const TOKEN_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// An access token and when it expires. `Debug` never shows the token.
#[derive(Clone)]
pub struct AccessToken {
    secret: SecretString,
    expires_on: SystemTime,
    expires_at: Instant,
}

impl AccessToken {
    /// The token itself, e.g. for an `Authorization: Bearer` header or a Redis password.
    pub fn secret(&self) -> &str {
        self.secret.expose_secret()
    }

    /// When it expires, by the wall clock.
    pub fn expires_on(&self) -> SystemTime {
        self.expires_on
    }

    /// When it expires, by tokio's clock (paused in tests).
    pub fn expires_at(&self) -> Instant {
        self.expires_at
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("secret", &"[redacted]")
            .field("expires_on", &self.expires_on)
            .finish()
    }
}

/// Why no token could be had. It never carries a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{source_kind}: {detail}")]
pub struct EntraError {
    /// Which source failed, e.g. `managed identity (App Service)`.
    pub source_kind: &'static str,
    pub detail: String,
}

impl From<EntraError> for GatewayError {
    fn from(error: EntraError) -> Self {
        GatewayError::CredentialUnavailable {
            reason: error.to_string(),
        }
    }
}

/// A cached token for one scope, with its ready-made header; cheap to clone.
#[derive(Clone)]
struct Cached {
    token: Arc<AccessToken>,
    /// `Bearer …`, marked sensitive.
    header: HeaderValue,
    /// Past this, the next caller refreshes it.
    refresh_at: Instant,
    /// Tells this token from its successors, so only the refused one is dropped.
    generation: u64,
}

/// A bearer header for one request, and which token it holds (for [`EntraCredential::invalidate`]).
#[derive(Clone)]
pub struct Bearer {
    pub header: HeaderValue,
    pub generation: u64,
}

/// A fetch that failed, kept so the callers that waited for it share its answer.
struct Failure {
    /// Which fetch of the slot failed (see [`Slot::fetches`]).
    fetch: u64,
    error: EntraError,
}

/// One scope's token and the lock that makes its refresh a single flight.
#[derive(Default)]
struct Slot {
    current: RwLock<Option<Cached>>,
    refresh: tokio::sync::Mutex<Option<Failure>>,
    /// Fetches finished so far: a caller that saw `n` shares the failure of fetch `n + 1`.
    fetches: AtomicU64,
}

impl Slot {
    /// The cached token, if it needs no refresh yet.
    fn fresh(&self, now: Instant) -> Option<Cached> {
        self.current
            .read()
            .as_ref()
            .filter(|cached| now < cached.refresh_at)
            .cloned()
    }

    /// The cached token, if it has not expired (a refresh may be due).
    fn unexpired(&self, now: Instant) -> Option<Cached> {
        self.current
            .read()
            .as_ref()
            .filter(|cached| now < cached.token.expires_at)
            .cloned()
    }
}

/// Microsoft Entra ID tokens from one source, cached per scope.
pub struct EntraCredential {
    source: Box<dyn TokenSource>,
    slots: RwLock<HashMap<String, Arc<Slot>>>,
    generations: AtomicU64,
    /// The last failure, until a token is had again: `/health`'s reason.
    last_failure: Mutex<Option<String>>,
}

impl fmt::Debug for EntraCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EntraCredential")
            .field("source", &self.source.kind())
            .finish_non_exhaustive()
    }
}

impl EntraCredential {
    /// The credential `config` describes; refused when its settings contradict each other.
    pub fn new(config: &EntraConfig) -> Result<Self, String> {
        Ok(Self::with_source(source::from_config(config)?))
    }

    /// A credential over any token source (tests use a fake one).
    pub fn with_source(source: Box<dyn TokenSource>) -> Self {
        Self {
            source,
            slots: RwLock::default(),
            generations: AtomicU64::new(0),
            last_failure: Mutex::default(),
        }
    }

    /// Which source this credential uses, e.g. `service principal`.
    pub fn kind(&self) -> &'static str {
        self.source.kind()
    }

    /// A token for `scope` (e.g. [`COGNITIVE_SERVICES_SCOPE`]), cached or fetched, within
    /// [`TOKEN_REQUEST_TIMEOUT`].
    pub async fn token(&self, scope: &str) -> Result<AccessToken, EntraError> {
        let deadline = Instant::now() + TOKEN_REQUEST_TIMEOUT;
        self.cached_or_fetched(scope, deadline)
            .await
            .map(|cached| AccessToken::clone(&cached.token))
    }

    /// A bearer header for `scope`, within `deadline`.
    pub async fn bearer(&self, scope: &str, deadline: Instant) -> Result<Bearer, EntraError> {
        self.cached_or_fetched(scope, deadline)
            .await
            .map(|cached| Bearer {
                header: cached.header,
                generation: cached.generation,
            })
    }

    /// Drops the token of `generation` (the upstream refused it), unless it was replaced.
    pub fn invalidate(&self, scope: &str, generation: u64) {
        let slot = self.slot(scope);
        let mut current = slot.current.write();
        if current.as_ref().is_some_and(|c| c.generation == generation) {
            *current = None;
        }
    }

    /// Why tokens cannot be had, since the last failure and until the next success.
    pub fn degraded_reason(&self) -> Option<String> {
        self.last_failure
            .lock()
            .as_ref()
            .map(|reason| format!("no Microsoft Entra ID token: {reason}"))
    }

    fn slot(&self, scope: &str) -> Arc<Slot> {
        if let Some(slot) = self.slots.read().get(scope) {
            return slot.clone();
        }
        self.slots
            .write()
            .entry(scope.to_owned())
            .or_default()
            .clone()
    }

    async fn cached_or_fetched(
        &self,
        scope: &str,
        deadline: Instant,
    ) -> Result<Cached, EntraError> {
        let slot = self.slot(scope);
        let seen = slot.fetches.load(Ordering::Acquire);
        if let Some(cached) = slot.fresh(Instant::now()) {
            return Ok(cached);
        }
        let timed_out = || self.error("the identity endpoint did not answer in time".to_owned());
        let mut failure = tokio::time::timeout_at(deadline, slot.refresh.lock())
            .await
            .map_err(|_| timed_out())?;
        // Whoever held the lock may have refreshed the token, or failed to, for us too.
        if let Some(cached) = slot.fresh(Instant::now()) {
            return Ok(cached);
        }
        if let Some(shared) = failure.as_ref().filter(|f| f.fetch > seen) {
            return slot.unexpired(Instant::now()).ok_or(shared.error.clone());
        }
        let fetch_deadline = deadline.min(Instant::now() + TOKEN_REQUEST_TIMEOUT);
        let fetched = match tokio::time::timeout_at(fetch_deadline, self.source.fetch(scope)).await
        {
            Ok(result) => result.and_then(|fetched| self.cache(&slot, fetched)),
            Err(_) => Err(timed_out()),
        };
        let fetch = slot.fetches.fetch_add(1, Ordering::AcqRel) + 1;
        match fetched {
            Ok(cached) => {
                *failure = None;
                *self.last_failure.lock() = None;
                Ok(cached)
            }
            Err(error) => {
                tracing::warn!(source = self.kind(), %error, "no Microsoft Entra ID token");
                *self.last_failure.lock() = Some(error.to_string());
                *failure = Some(Failure {
                    fetch,
                    error: error.clone(),
                });
                // A still-valid token serves until it expires.
                slot.unexpired(Instant::now()).ok_or(error)
            }
        }
    }

    /// Keeps a fetched token as the scope's current one.
    fn cache(&self, slot: &Slot, fetched: Fetched) -> Result<Cached, EntraError> {
        let mut header =
            HeaderValue::try_from(format!("Bearer {}", fetched.secret.expose_secret())).map_err(
                |_| self.error("the identity endpoint sent an unusable token".to_owned()),
            )?;
        header.set_sensitive(true);
        let now = Instant::now();
        let lifetime = fetched.expires_in;
        let cached = Cached {
            token: Arc::new(AccessToken {
                secret: fetched.secret,
                expires_on: SystemTime::now() + lifetime,
                expires_at: now + lifetime,
            }),
            header,
            refresh_at: now + lifetime - REFRESH_MARGIN.min(lifetime / 2),
            generation: self.generations.fetch_add(1, Ordering::Relaxed) + 1,
        };
        *slot.current.write() = Some(cached.clone());
        Ok(cached)
    }

    fn error(&self, detail: String) -> EntraError {
        EntraError {
            source_kind: self.kind(),
            detail,
        }
    }
}

//! How tollgate reaches Redis: one server or a cluster, plain or TLS, with fixed or renewed
//! credentials; and [`RedisConnection`], the one connection type the stores use, which counts
//! its round trips.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use base64::Engine as _;
use redis::{
    Cmd, Pipeline, RedisFuture, TlsCertificates, Value,
    aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig},
    cluster::{ClusterClientBuilder, ClusterConfig},
    cluster_async::ClusterConnection,
};
use rustls::pki_types::{CertificateDer, pem::PemObject};

use super::credentials::CredentialFeed;
use crate::store::StoreError;

/// A reply may take this long; a blocking stream read asks for less.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
/// Making a connection (TCP, TLS, login) may take this long: it goes on in the background
/// after the operation that started it has given up at its own deadline.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// What model calls do while Redis is unreachable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FailureMode {
    /// Serve: budgets counted by each instance alone, the cache bypassed.
    #[default]
    Open,
    /// Refuse model calls: shared budgets cannot be enforced.
    Closed,
}

/// PEM root certificates trusted for `rediss://` besides the system's (a private CA).
#[derive(Clone)]
pub struct CaRoots {
    pem: Vec<u8>,
}

impl std::fmt::Debug for CaRoots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CaRoots(..)")
    }
}

impl CaRoots {
    /// Checks that `pem` holds at least one certificate usable as a trust anchor.
    pub fn from_pem(pem: Vec<u8>) -> Result<Self, String> {
        let mut store = rustls::RootCertStore::empty();
        for certificate in CertificateDer::pem_slice_iter(&pem) {
            let certificate = certificate.map_err(|e| format!("not valid PEM: {e}"))?;
            store
                .add(certificate)
                .map_err(|e| format!("a certificate cannot be a trust anchor: {e}"))?;
        }
        if store.is_empty() {
            return Err("no PEM certificate in it".to_owned());
        }
        Ok(Self { pem })
    }

    /// These roots and the system's, as one PEM bundle (the redis crate takes one root store).
    fn with_system_roots(&self) -> Vec<u8> {
        let mut bundle = self.pem.clone();
        bundle.push(b'\n');
        let engine = base64::engine::general_purpose::STANDARD;
        for certificate in rustls_native_certs::load_native_certs().certs {
            let encoded = engine.encode(certificate.as_ref());
            bundle.extend_from_slice(b"-----BEGIN CERTIFICATE-----\n");
            for line in encoded.as_bytes().chunks(64) {
                bundle.extend_from_slice(line);
                bundle.push(b'\n');
            }
            bundle.extend_from_slice(b"-----END CERTIFICATE-----\n");
        }
        bundle
    }
}

/// How to reach Redis.
#[derive(Clone, Default)]
pub struct RedisOptions {
    /// One URL, or a cluster's seed nodes: `redis://` or `rediss://`, with `user:password@`.
    pub urls: Vec<String>,
    pub cluster: bool,
    pub extra_roots: Option<CaRoots>,
    pub failure_mode: FailureMode,
    /// Credentials renewed while connections live (Entra ID); they replace the URL's.
    pub credentials: Option<CredentialFeed>,
}

impl std::fmt::Debug for RedisOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let urls: Vec<String> = self.urls.iter().map(|u| scrub_url(u)).collect();
        f.debug_struct("RedisOptions")
            .field("urls", &urls)
            .field("cluster", &self.cluster)
            .field("extra_roots", &self.extra_roots.is_some())
            .field("failure_mode", &self.failure_mode)
            .field("credentials", &self.credentials.is_some())
            .finish()
    }
}

impl RedisOptions {
    /// One Redis at `url`, nothing else set.
    pub fn single(url: &str) -> Self {
        Self {
            urls: vec![url.to_owned()],
            ..Self::default()
        }
    }
}

/// A Redis URL as it may be shown: without its user and password.
pub fn scrub_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "<unparsable URL>".to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    format!("{scheme}://{host}{path}")
}

/// The connection itself: a reconnecting single-server connection or a cluster connection.
#[derive(Clone)]
enum Link {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

/// Requests sent to Redis along one path (calls, or background work), counted here and in the
/// `tollgate_redis_round_trips_total` metric.
pub struct RoundTrips {
    count: AtomicU64,
    metric: metrics::Counter,
}

impl RoundTrips {
    /// `path` labels the metric: `calls` or `background`.
    pub fn new(path: &'static str) -> Arc<Self> {
        Arc::new(Self {
            count: AtomicU64::new(0),
            metric: metrics::counter!("tollgate_redis_round_trips_total", "path" => path),
        })
    }

    pub fn get(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    fn add_one(&self) {
        self.count.fetch_add(1, Ordering::Relaxed);
        self.metric.increment(1);
    }
}

/// A multiplexed Redis connection (cheap to clone) that counts the requests it sends: one
/// command, script or pipeline is one round trip.
#[derive(Clone)]
pub struct RedisConnection {
    link: Link,
    round_trips: Arc<RoundTrips>,
}

impl RedisConnection {
    /// The same connection, counting into `round_trips` instead.
    pub(super) fn counting_into(&self, round_trips: Arc<RoundTrips>) -> Self {
        Self {
            link: self.link.clone(),
            round_trips,
        }
    }

    pub(super) fn round_trips(&self) -> u64 {
        self.round_trips.get()
    }
}

impl ConnectionLike for RedisConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        self.round_trips.add_one();
        match &mut self.link {
            Link::Single(connection) => connection.req_packed_command(cmd),
            Link::Cluster(connection) => connection.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        self.round_trips.add_one();
        match &mut self.link {
            Link::Single(connection) => connection.req_packed_commands(pipeline, offset, count),
            Link::Cluster(connection) => connection.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match &self.link {
            Link::Single(connection) => connection.get_db(),
            Link::Cluster(connection) => connection.get_db(),
        }
    }
}

/// Opens a connection lazily (a Redis that is down at start is reached once it is up).
/// Errors show URLs without credentials.
pub(super) fn open(
    options: &RedisOptions,
    round_trips: Arc<RoundTrips>,
) -> Result<RedisConnection, StoreError> {
    crate::tls::install_crypto_provider();
    let link = if options.cluster {
        Link::Cluster(open_cluster(options)?)
    } else {
        Link::Single(open_single(options)?)
    };
    Ok(RedisConnection { link, round_trips })
}

fn invalid(options: &RedisOptions, error: &redis::RedisError) -> StoreError {
    let urls: Vec<String> = options.urls.iter().map(|u| scrub_url(u)).collect();
    // The redis crate's messages name the problem, not the URL's secrets.
    StoreError::Unavailable(format!("cannot use REDIS_URL {}: {error}", urls.join(",")))
}

fn certificates(roots: &CaRoots) -> TlsCertificates {
    TlsCertificates {
        client_tls: None,
        root_cert: Some(roots.with_system_roots()),
    }
}

fn open_single(options: &RedisOptions) -> Result<ConnectionManager, StoreError> {
    let [url] = options.urls.as_slice() else {
        return Err(StoreError::Unavailable(
            "REDIS_URL names several servers: set REDIS_CLUSTER=true for a cluster".to_owned(),
        ));
    };
    let client = match &options.extra_roots {
        Some(roots) => redis::Client::build_with_tls(url.as_str(), certificates(roots)),
        None => redis::Client::open(url.as_str()),
    }
    .map_err(|e| invalid(options, &e))?;
    let mut config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_millis(500));
    if let Some(feed) = &options.credentials {
        config = config.set_credentials_provider(feed.clone());
    }
    ConnectionManager::new_lazy_with_config(client, config).map_err(|e| invalid(options, &e))
}

fn open_cluster(options: &RedisOptions) -> Result<ClusterConnection, StoreError> {
    let mut builder = ClusterClientBuilder::new(options.urls.iter().map(String::as_str))
        .connection_timeout(CONNECT_TIMEOUT)
        .response_timeout(RESPONSE_TIMEOUT);
    if let Some(roots) = &options.extra_roots {
        builder = builder.certs(certificates(roots));
    }
    if let Some(feed) = &options.credentials {
        builder = builder.set_credentials_provider(feed.clone());
    }
    let client = builder.build().map_err(|e| invalid(options, &e))?;
    let config = ClusterConfig::new()
        .set_connection_timeout(CONNECT_TIMEOUT)
        .set_response_timeout(RESPONSE_TIMEOUT);
    Ok(client.get_pending_async_connection_with_config(config))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn shown_urls_carry_no_credentials() {
        for (url, shown) in [
            (
                "rediss://app:s3cret@cache.example:6380/0",
                "rediss://cache.example:6380/0",
            ),
            ("redis://:s3cret@127.0.0.1:6379", "redis://127.0.0.1:6379"),
            ("redis://127.0.0.1:6379/", "redis://127.0.0.1:6379/"),
            ("redis://u:p@ss@host:1?x=1", "redis://host:1?x=1"),
            ("s3cret", "<unparsable URL>"),
        ] {
            assert_eq!(scrub_url(url), shown);
        }
    }

    #[test]
    fn roots_must_be_pem_certificates() {
        for bad in [
            &b""[..],
            b"hello",
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        ] {
            assert!(CaRoots::from_pem(bad.to_vec()).is_err());
        }
    }

    #[tokio::test]
    async fn several_urls_need_cluster_mode_and_errors_hide_passwords() {
        let options = RedisOptions {
            urls: vec![
                "redis://u:hunter2@127.0.0.1:1".to_owned(),
                "redis://u:hunter2@127.0.0.1:2".to_owned(),
            ],
            ..RedisOptions::default()
        };
        let error = open(&options, RoundTrips::new("calls"))
            .err()
            .unwrap()
            .to_string();
        assert!(error.contains("REDIS_CLUSTER"), "{error}");
        let bad = RedisOptions::single("redis://u:hunter2@[nonsense");
        let error = open(&bad, RoundTrips::new("calls"))
            .err()
            .unwrap()
            .to_string();
        assert!(!error.contains("hunter2"), "{error}");
    }
}

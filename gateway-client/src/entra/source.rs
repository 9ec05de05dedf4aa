//! Where tokens come from: the three token requests, and which one the settings pick.
//!
//! In order, as Azure's own SDKs pick them:
//! 1. a service principal: `AZURE_TENANT_ID`, `AZURE_CLIENT_ID` and `AZURE_CLIENT_SECRET`, the
//!    client-credentials grant at `{authority}/{tenant}/oauth2/v2.0/token`;
//! 2. workload identity: `AZURE_FEDERATED_TOKEN_FILE` with `AZURE_CLIENT_ID` and
//!    `AZURE_TENANT_ID`, the same grant with the file's JWT as `client_assertion` (the file is
//!    re-read each time: Kubernetes rotates it);
//! 3. managed identity: App Service's `IDENTITY_ENDPOINT` with `X-IDENTITY-HEADER`
//!    (api-version 2019-08-01), else the instance metadata service with `Metadata: true`
//!    (api-version 2018-02-01); `AZURE_CLIENT_ID` picks a user-assigned identity.

use std::{path::PathBuf, time::Duration};

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use super::{EntraError, TOKEN_REQUEST_TIMEOUT};
use crate::config::EntraConfig;

/// A token as a source hands it over: the secret and how long it lives from now.
pub struct Fetched {
    pub secret: SecretString,
    pub expires_in: Duration,
}

/// One way of getting tokens.
#[async_trait]
pub trait TokenSource: Send + Sync + 'static {
    /// A new token for `scope` (an OAuth scope such as `https://…/.default`).
    async fn fetch(&self, scope: &str) -> Result<Fetched, EntraError>;

    /// Which source this is, for errors and `/health`.
    fn kind(&self) -> &'static str;
}

/// The source `config` picks (see the module's order).
pub(super) fn from_config(config: &EntraConfig) -> Result<Box<dyn TokenSource>, String> {
    // No proxy and no redirects: the identity endpoints are local or Entra's own, and their
    // secrets (the identity header, the client secret) go to them and nowhere else.
    let http = crate::tls::client_builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(TOKEN_REQUEST_TIMEOUT)
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| format!("cannot build the identity HTTP client: {e}"))?;
    let grant = |credential| {
        Ok(Box::new(ClientCredentials {
            http: http.clone(),
            token_url: token_url(config)?,
            client_id: required(&config.client_id, "AZURE_CLIENT_ID")?,
            credential,
        }) as Box<dyn TokenSource>)
    };
    if let Some(secret) = &config.client_secret {
        return grant(ClientProof::Secret(secret.clone()));
    }
    if let Some(file) = &config.federated_token_file {
        return grant(ClientProof::Assertion(file.clone()));
    }
    let client_id = config.client_id.clone().filter(|id| !id.trim().is_empty());
    let app_service = (&config.identity_endpoint, &config.identity_header);
    if let (Some(endpoint), Some(header)) = app_service {
        return Ok(Box::new(ManagedIdentity {
            http,
            endpoint: endpoint.clone(),
            flavour: Flavour::AppService {
                header: header.clone(),
            },
            client_id,
        }));
    }
    Ok(Box::new(ManagedIdentity {
        http,
        endpoint: config.imds_endpoint.clone(),
        flavour: Flavour::Imds,
        client_id,
    }))
}

fn required(value: &Option<String>, name: &str) -> Result<String, String> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| {
            format!(
                "{name} is needed with AZURE_CLIENT_SECRET or AZURE_FEDERATED_TOKEN_FILE (a service principal or workload identity)"
            )
        })
}

/// `{authority}/{tenant}/oauth2/v2.0/token`.
fn token_url(config: &EntraConfig) -> Result<String, String> {
    let tenant = required(&config.tenant_id, "AZURE_TENANT_ID")?;
    if !tenant
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
    {
        return Err(format!(
            "AZURE_TENANT_ID `{tenant}` is not a tenant id or domain"
        ));
    }
    Ok(format!(
        "{}/{tenant}/oauth2/v2.0/token",
        config.authority_host.trim().trim_end_matches('/')
    ))
}

/// How a client proves who it is in the client-credentials grant.
enum ClientProof {
    Secret(SecretString),
    /// A federated token file, read at every exchange.
    Assertion(PathBuf),
}

/// The client-credentials grant at the authority host.
struct ClientCredentials {
    http: reqwest::Client,
    token_url: String,
    client_id: String,
    credential: ClientProof,
}

#[async_trait]
impl TokenSource for ClientCredentials {
    async fn fetch(&self, scope: &str) -> Result<Fetched, EntraError> {
        let assertion = match &self.credential {
            ClientProof::Secret(_) => None,
            ClientProof::Assertion(file) => {
                Some(tokio::fs::read_to_string(file).await.map_err(|e| {
                    failure(
                        self.kind(),
                        format!("cannot read the federated token file: {e}"),
                    )
                })?)
            }
        };
        let body = self.form(scope, assertion.as_deref());
        let request = self
            .http
            .post(&self.token_url)
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(body);
        read_token(request, self.kind()).await
    }

    fn kind(&self) -> &'static str {
        match self.credential {
            ClientProof::Secret(_) => "service principal",
            ClientProof::Assertion(_) => "workload identity",
        }
    }
}

impl ClientCredentials {
    /// The grant's form body: the secret, or the federated token as the client assertion.
    fn form(&self, scope: &str, assertion: Option<&str>) -> String {
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("grant_type", "client_credentials")
            .append_pair("client_id", &self.client_id)
            .append_pair("scope", scope);
        if let ClientProof::Secret(secret) = &self.credential {
            form.append_pair("client_secret", secret.expose_secret());
        }
        if let Some(assertion) = assertion {
            form.append_pair(
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            )
            .append_pair("client_assertion", assertion.trim());
        }
        form.finish()
    }
}

enum Flavour {
    /// App Service (and Functions, Container Apps): a secret header.
    AppService { header: SecretString },
    /// The instance metadata service (VMs, VM scale sets, AKS nodes).
    Imds,
}

struct ManagedIdentity {
    http: reqwest::Client,
    endpoint: String,
    flavour: Flavour,
    client_id: Option<String>,
}

#[async_trait]
impl TokenSource for ManagedIdentity {
    async fn fetch(&self, scope: &str) -> Result<Fetched, EntraError> {
        let mut url = reqwest::Url::parse(&self.endpoint).map_err(|e| {
            failure(
                self.kind(),
                format!("the identity endpoint is not a URL: {e}"),
            )
        })?;
        let api_version = match self.flavour {
            Flavour::AppService { .. } => "2019-08-01",
            Flavour::Imds => "2018-02-01",
        };
        // Managed identity takes a resource, which is the scope without `/.default`.
        let resource = scope.strip_suffix("/.default").unwrap_or(scope);
        url.query_pairs_mut()
            .append_pair("api-version", api_version)
            .append_pair("resource", resource);
        if let Some(client_id) = &self.client_id {
            url.query_pairs_mut().append_pair("client_id", client_id);
        }
        let request = match &self.flavour {
            Flavour::AppService { header } => self
                .http
                .get(url)
                .header("X-IDENTITY-HEADER", header.expose_secret()),
            Flavour::Imds => self.http.get(url).header("Metadata", "true"),
        };
        read_token(request, self.kind()).await
    }

    fn kind(&self) -> &'static str {
        match self.flavour {
            Flavour::AppService { .. } => "managed identity (App Service)",
            Flavour::Imds => "managed identity (instance metadata service)",
        }
    }
}

fn failure(kind: &'static str, detail: String) -> EntraError {
    EntraError {
        source_kind: kind,
        detail,
    }
}

/// Sends a token request and reads `access_token` and its lifetime from the answer.
async fn read_token(
    request: reqwest::RequestBuilder,
    kind: &'static str,
) -> Result<Fetched, EntraError> {
    let error = |detail: String| failure(kind, detail);
    let response = request.send().await.map_err(|e| {
        let what = if e.is_timeout() {
            "did not answer in time"
        } else if e.is_connect() {
            "cannot be reached"
        } else {
            "failed"
        };
        error(format!("the identity endpoint {what}"))
    })?;
    let status = response.status();
    let body: Value = match response.bytes().await {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        Err(_) => Value::Null,
    };
    if !status.is_success() {
        return Err(error(format!(
            "the identity endpoint answered {}: {}",
            status.as_u16(),
            describe_error(&body)
        )));
    }
    let secret = body
        .get("access_token")
        .and_then(Value::as_str)
        .filter(|token| !token.is_empty())
        .ok_or_else(|| error("the identity endpoint's answer has no access_token".to_owned()))?;
    let expires_in = lifetime_of(&body)
        .ok_or_else(|| error("the identity endpoint's answer has no expiry".to_owned()))?;
    Ok(Fetched {
        secret: SecretString::from(secret.to_owned()),
        expires_in,
    })
}

/// `expires_in` (seconds from now), else `expires_on` (Unix seconds); numbers or strings.
pub(super) fn lifetime_of(body: &Value) -> Option<Duration> {
    let seconds = |key: &str| -> Option<u64> {
        match body.get(key)? {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
    };
    if let Some(expires_in) = seconds("expires_in") {
        return Some(Duration::from_secs(expires_in));
    }
    let expires_on = std::time::UNIX_EPOCH + Duration::from_secs(seconds("expires_on")?);
    Some(
        expires_on
            .duration_since(std::time::SystemTime::now())
            .unwrap_or_default(),
    )
}

/// The error code and a short description from an OAuth or managed identity error body.
fn describe_error(body: &Value) -> String {
    let text = |pointer: &str| body.pointer(pointer).and_then(Value::as_str);
    let code = text("/error")
        .or(text("/error/code"))
        .unwrap_or("no error code");
    let description = text("/error_description")
        .or(text("/error/message"))
        .or(text("/message"))
        .unwrap_or("no description");
    // Entra's descriptions end with trace ids and timestamps; the first line says it.
    let first_line = description.lines().next().unwrap_or_default();
    format!(
        "{code}: {}",
        first_line.chars().take(200).collect::<String>()
    )
}

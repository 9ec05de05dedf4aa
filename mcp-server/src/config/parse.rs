//! Parsing: the setting values that are more than a number or a name, from their text.

use std::{fmt, num::NonZeroU32, str::FromStr, time::Duration};

use gateway_client::{
    config::{Price, Prices, SafetyPreset},
    shared::CaRoots,
};
use secrecy::SecretString;

/// `MODEL_PRICES`: `model=input/output,…` in USD per million tokens.
#[derive(Debug, Clone, Default)]
pub struct PriceTable(pub Prices);

impl FromStr for PriceTable {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let mut prices = Prices::default();
        for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (model, rates) = entry
                .split_once('=')
                .ok_or_else(|| format!("`{entry}` is not of the form model=input/output"))?;
            let (input, output) = rates
                .split_once('/')
                .ok_or_else(|| format!("`{rates}` is not of the form input/output"))?;
            let model = model_name(model)?;
            let parse = |v: &str| {
                v.trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|p| p.is_finite() && *p >= 0.0)
                    .ok_or_else(|| format!("`{v}` is not a price"))
            };
            prices.0.insert(
                model,
                Price {
                    input_per_million: parse(input)?,
                    output_per_million: parse(output)?,
                },
            );
        }
        Ok(Self(prices))
    }
}

/// A configured model name (CHAT_MODEL, EMBEDDING_MODEL, MODEL_PRICES): the rules callers' model
/// names follow too (bounded length, no control characters).
/// CACHE_SIMILARITY_THRESHOLD: a cosine similarity from 0 to 1.
pub(super) fn unit_interval(raw: &str) -> Result<f32, String> {
    raw.trim()
        .parse::<f32>()
        .ok()
        .filter(|value| (0.0..=1.0).contains(value))
        .ok_or_else(|| format!("`{raw}` is not a number from 0 to 1"))
}

/// An endpoint URL (AZURE_AUTHORITY_HOST, IDENTITY_ENDPOINT, AZURE_CONTENT_SAFETY_ENDPOINT…):
/// `http` or `https` with a host.
pub(super) fn http_url(raw: &str) -> Result<String, String> {
    let url = raw.trim();
    let uri: http::Uri = url.parse().map_err(|_| format!("`{url}` is not a URL"))?;
    match (uri.scheme_str(), uri.host()) {
        (Some("http" | "https"), Some(host)) if !host.is_empty() => Ok(url.to_owned()),
        _ => Err(format!("`{url}` is not an http(s) URL with a host")),
    }
}

/// A value sent as an HTTP header (ANTHROPIC_VERSION): visible ASCII, not empty.
pub(super) fn header_text(raw: &str) -> Result<String, String> {
    let value = raw.trim();
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!(
            "`{value}` is not a header value (visible ASCII, no spaces)"
        ));
    }
    Ok(value.to_owned())
}

pub(super) fn model_name(raw: &str) -> Result<String, String> {
    let name = raw.trim();
    gateway_client::names::check_model_name(name)?;
    Ok(name.to_owned())
}

/// Separates the regexes of `CONTENT_BLOCKED_PATTERNS`: commas and single semicolons are common
/// inside regexes (`\d{2,4}`), a doubled semicolon is not.
pub const PATTERN_SEPARATOR: &str = ";;";

/// `CONTENT_BLOCKED_PATTERNS`: regexes separated by [`PATTERN_SEPARATOR`], each checked here.
#[derive(Debug, Clone, Default)]
pub struct BlockedPatterns(pub Vec<String>);

impl FromStr for BlockedPatterns {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let mut patterns = Vec::new();
        for pattern in raw.split(PATTERN_SEPARATOR).map(str::trim) {
            if pattern.is_empty() {
                continue;
            }
            gateway_client::policy::content_safety::check_pattern(pattern)?;
            patterns.push(pattern.to_owned());
        }
        Ok(Self(patterns))
    }
}

/// `CONTENT_SAFETY_PRESETS`: `secrets,card-numbers`, a subset, or `none`.
#[derive(Debug, Clone, Default)]
pub struct SafetyPresets(pub Vec<SafetyPreset>);

impl FromStr for SafetyPresets {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let mut presets = Vec::new();
        for name in raw.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let preset = match name.to_ascii_lowercase().as_str() {
                "none" => continue,
                "secrets" => SafetyPreset::Secrets,
                "card-numbers" | "card_numbers" => SafetyPreset::CardNumbers,
                _ => {
                    return Err(format!(
                        "unknown preset `{name}`; the presets are secrets, card-numbers (or none)"
                    ));
                }
            };
            if !presets.contains(&preset) {
                presets.push(preset);
            }
        }
        Ok(Self(presets))
    }
}

/// A subscription: a name (safe to log and to use as a metrics label) and its secret key.
#[derive(Clone)]
pub struct Subscription {
    pub name: String,
    pub key: SecretString,
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// `SUBSCRIPTION_KEYS`: `name=key,name=key…`.
#[derive(Debug, Clone, Default)]
pub struct SubscriptionKeys(pub Vec<Subscription>);

impl FromStr for SubscriptionKeys {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let mut subscriptions: Vec<Subscription> = Vec::new();
        for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            // Never echo the entry itself: it holds a secret.
            let Some((name, key)) = entry.split_once('=') else {
                return Err(format!(
                    "entry {} has no `=`; expected name=key",
                    subscriptions.len() + 1
                ));
            };
            let (name, key) = (name.trim(), key.trim());
            if name.is_empty() || key.is_empty() {
                return Err(format!(
                    "entry {} has an empty name or key",
                    subscriptions.len() + 1
                ));
            }
            if !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            {
                return Err(format!(
                    "subscription name `{name}` may use only letters, digits, `-`, `_` and `.`"
                ));
            }
            if subscriptions.iter().any(|s| s.name == name) {
                return Err(format!("subscription name `{name}` appears twice"));
            }
            subscriptions.push(Subscription {
                name: name.to_owned(),
                key: SecretString::from(key.to_owned()),
            });
        }
        Ok(Self(subscriptions))
    }
}

/// A rate: `calls` per `period` (`120/60` is 120 calls per 60 seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateSpec {
    pub calls: NonZeroU32,
    pub period: Duration,
}

impl FromStr for RateSpec {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let (calls, seconds) = raw
            .trim()
            .split_once('/')
            .ok_or_else(|| format!("`{raw}` is not of the form calls/seconds"))?;
        let calls: u32 = calls
            .trim()
            .parse()
            .map_err(|_| format!("`{calls}` is not a whole number of calls"))?;
        let calls = NonZeroU32::new(calls)
            .ok_or_else(|| "the number of calls must be at least 1".to_owned())?;
        let seconds: u64 = seconds
            .trim()
            .parse()
            .map_err(|_| format!("`{seconds}` is not a whole number of seconds"))?;
        if seconds == 0 {
            return Err("the period must be at least 1 second".to_owned());
        }
        Ok(Self {
            calls,
            period: Duration::from_secs(seconds),
        })
    }
}

impl fmt::Display for RateSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.calls, self.period.as_secs())
    }
}

/// `MCP_TOOL_RATE_LIMITS`: `tool=calls/seconds,…`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolRateLimits(pub Vec<(String, RateSpec)>);

impl FromStr for ToolRateLimits {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let mut limits = Vec::new();
        for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (tool, rate) = entry
                .split_once('=')
                .ok_or_else(|| format!("`{entry}` is not of the form tool=calls/seconds"))?;
            let tool = tool.trim();
            if tools::spec(tool).is_none() {
                let known: Vec<&str> = tools::catalog().iter().map(|t| t.name).collect();
                return Err(format!(
                    "unknown tool `{tool}`; the tools are {}",
                    known.join(", ")
                ));
            }
            limits.push((tool.to_owned(), rate.parse()?));
        }
        Ok(Self(limits))
    }
}

/// `REDIS_CA_CERT`: the file read and its certificates checked now, so a bad file stops the
/// start rather than the first TLS handshake.
pub(super) fn ca_roots(path: &str) -> Result<CaRoots, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    CaRoots::from_pem(pem).map_err(|why| format!("{path}: {why}"))
}

/// `MCP_TOOL_SCOPES`: `tool=scope,…`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolScopeList(pub Vec<(String, String)>);

impl FromStr for ToolScopeList {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let mut scopes: Vec<(String, String)> = Vec::new();
        for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (tool, scope) = entry
                .split_once('=')
                .ok_or_else(|| format!("`{entry}` is not of the form tool=scope"))?;
            let (tool, scope) = (tool.trim(), scope.trim());
            if tools::spec(tool).is_none() {
                let known: Vec<&str> = tools::catalog().iter().map(|t| t.name).collect();
                return Err(format!(
                    "unknown tool `{tool}`; the tools are {}",
                    known.join(", ")
                ));
            }
            // RFC 6749's scope-token characters: printable ASCII but space, `"` and `\`.
            if scope.is_empty()
                || !scope
                    .chars()
                    .all(|c| c.is_ascii_graphic() && c != '"' && c != '\\')
            {
                return Err(format!("`{scope}` is not a scope name"));
            }
            if scopes.iter().any(|(known, _)| known == tool) {
                return Err(format!("tool `{tool}` appears twice"));
            }
            scopes.push((tool.to_owned(), scope.to_owned()));
        }
        Ok(Self(scopes))
    }
}

/// `PUBLIC_URL`: an http(s) base URL without query or fragment; kept without a trailing `/`.
pub(super) fn public_url(raw: &str) -> Result<String, String> {
    let url = reqwest::Url::parse(raw.trim())
        .map_err(|_| format!("`{raw}` is not a URL such as https://tollgate.example.com"))?;
    if !matches!(url.scheme(), "http" | "https")
        || url.query().is_some()
        || url.fragment().is_some()
    {
        return Err(format!(
            "`{raw}` must be an http or https URL without a query or fragment"
        ));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// One of `OAUTH_ISSUERS`: an https URL (plain http only on loopback, for local providers).
pub(super) fn issuer_url(raw: &str) -> Result<String, String> {
    let issuer = raw.trim();
    fetchable_url(issuer)?;
    Ok(issuer.to_owned())
}

/// One of `OAUTH_AUDIENCE`: any non-empty value (a URL, a URI, an Entra ID client id).
pub(super) fn audience(raw: &str) -> Result<String, String> {
    let audience = raw.trim();
    if audience.is_empty() || audience.chars().any(char::is_control) {
        return Err("an audience must not be empty".to_owned());
    }
    Ok(audience.to_owned())
}

/// One of `OAUTH_SUBSCRIPTION_CLAIM`: a claim name.
pub(super) fn claim_name(raw: &str) -> Result<String, String> {
    let name = raw.trim();
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'))
    {
        return Err(format!("`{raw}` is not a claim name"));
    }
    Ok(name.to_owned())
}

/// A URL keys may be fetched from: https, or plain http on this machine only (a local identity
/// provider in development and tests).
pub fn fetchable_url(url: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|_| format!("`{url}` is not a URL"))?;
    let loopback = parsed.host_str().is_some_and(|host| {
        host == "localhost"
            || host
                .trim_matches(['[', ']'])
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    });
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err(format!(
            "`{url}` must be an https URL (plain http only on loopback)"
        )),
    }
}

/// `OTEL_TRACES_SAMPLER`'s values, as the OpenTelemetry specification names them.
pub const SAMPLERS: [&str; 6] = [
    "always_on",
    "always_off",
    "traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
];

/// `OTEL_EXPORTER_OTLP_ENDPOINT`: an `http` or `https` base URL.
pub(super) fn otlp_endpoint(raw: &str) -> Result<String, String> {
    let url = raw.trim().trim_end_matches('/');
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("`{raw}` is not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(format!("`{raw}` is not an http:// or https:// URL"));
    }
    Ok(url.to_owned())
}

/// `OTEL_EXPORTER_OTLP_PROTOCOL`: OTLP over HTTP with protobuf bodies.
pub(super) fn otlp_protocol(raw: &str) -> Result<String, String> {
    match raw.trim() {
        "http/protobuf" => Ok("http/protobuf".to_owned()),
        "grpc" => Err(
            "`grpc` is not built into tollgate: use `http/protobuf` (an \
                       OpenTelemetry Collector takes it on port 4318)"
                .to_owned(),
        ),
        other => Err(format!(
            "`{other}` is not an OTLP protocol; use `http/protobuf`"
        )),
    }
}

/// `key=value,…` with percent-encoded values (the W3C Baggage form the OTEL_* lists use).
fn key_values(raw: &str) -> Result<Vec<(String, String)>, String> {
    let mut pairs = Vec::new();
    for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (key, value) = entry
            .split_once('=')
            .ok_or_else(|| format!("`{entry}` is not of the form key=value"))?;
        let key = key.trim();
        if key.is_empty() {
            return Err(format!("`{entry}` has no key"));
        }
        let value = percent_decode(value.trim())
            .ok_or_else(|| format!("the value of `{key}` is not valid percent-encoded UTF-8"))?;
        pairs.push((key.to_owned(), value));
    }
    Ok(pairs)
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let hex = text.get(index + 1..index + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            index += 3;
        } else {
            out.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// `OTEL_RESOURCE_ATTRIBUTES`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyValues(pub Vec<(String, String)>);

impl KeyValues {
    pub(super) fn parse(raw: &str) -> Result<Self, String> {
        key_values(raw).map(Self)
    }
}

/// `OTEL_EXPORTER_OTLP_HEADERS`: names checked as HTTP header names, values kept secret.
#[derive(Clone)]
pub struct OtlpHeaders(pub Vec<(String, SecretString)>);

impl fmt::Debug for OtlpHeaders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.0.iter().map(|(name, _)| name.as_str()).collect();
        write!(f, "OtlpHeaders({names:?}, values redacted)")
    }
}

impl OtlpHeaders {
    pub(super) fn parse(raw: &str) -> Result<Self, String> {
        let mut headers = Vec::new();
        for (name, value) in key_values(raw)? {
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(format!("`{name}` is not an HTTP header name"));
            }
            if http::HeaderValue::from_str(&value).is_err() {
                return Err(format!("the value of `{name}` is not a valid header value"));
            }
            headers.push((name, SecretString::from(value)));
        }
        Ok(Self(headers))
    }
}

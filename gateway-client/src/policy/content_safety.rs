//! Content safety: refuse prompts and answers that carry what must not pass.
//!
//! Off unless configured. The local rules run first: blocked terms (case-insensitive, whole
//! words), custom regular expressions, and the presets (`secrets`, `card-numbers`). When they
//! pass and a moderation endpoint is configured, it has the last word.
//!
//! The pipeline checks a prompt before the budget is reserved, so a refused prompt never reaches
//! the upstream and costs no tokens. It checks an answer before returning it; a streamed answer
//! has already gone out chunk by chunk, so its verdict comes at the end, as an error event in
//! place of the normal end of the stream. A refused answer is never cached.
//!
//! Categories, which name a refusal in the error and label the metric, are bounded: `blocked_term`,
//! `custom_regex`, `secrets`, `card_numbers`, the moderation categories OpenAI defines (anything
//! else a moderation endpoint reports becomes `moderation`), and `moderation_unavailable` when a
//! fail-closed moderation endpoint cannot be reached. The offending text is never logged.
//!
//! The moderation endpoint is called through an upstream pool of its own, like every model
//! call: one deadline, retries, a circuit breaker, upstream metrics. So is Azure AI Content
//! Safety (`azure_content_safety`), consulted last: `hate`, `self_harm`, `sexual`, `violence`,
//! `prompt_attack` and `document_attack` name its refusals, `content_safety_unavailable` a
//! fail-closed failure.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use regex::{Regex, RegexBuilder};
use serde_json::{Map, Value};
use tokio::time::Instant;

pub use super::azure_content_safety::ShieldInput;

use super::azure_content_safety::AzureContentSafety;
use crate::{
    config::{
        BackendConfig, BreakerConfig, ContentSafetyConfig, ModerationConfig, RetryConfig,
        SafetyPreset,
    },
    context::{CallContext, Operation},
    entra::EntraCredential,
    error::GatewayError,
    metrics,
    model_api::ModelApi,
    upstream::Upstream,
};

/// Compiled size limit of one rule: generous for real rules, a bound for runaway ones.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// API keys and private keys, one alternative per kind.
const SECRETS: &str = concat!(
    // OpenAI-style keys (sk-…, sk-proj-…).
    r"\bsk-[A-Za-z0-9_-]{20,}",
    // AWS access key ids.
    r"|\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",
    // PEM private keys (RSA, EC, OPENSSH, PKCS#8…).
    r"|-----BEGIN [A-Z ]*PRIVATE KEY-----",
    // GitHub tokens.
    r"|\bgh[pousr]_[A-Za-z0-9]{36,}",
    // Slack tokens.
    r"|\bxox[abprs]-[A-Za-z0-9-]{10,}",
);

/// 13 to 19 digits, each group separated by at most one space or dash; Luhn decides.
const CARD_NUMBER: &str = r"\b\d(?:[ -]?\d){12,18}\b";

/// OpenAI's moderation categories, most specific first: the first flagged one names a refusal.
const MODERATION_CATEGORIES: [&str; 13] = [
    "sexual/minors",
    "self-harm/intent",
    "self-harm/instructions",
    "self-harm",
    "hate/threatening",
    "hate",
    "harassment/threatening",
    "harassment",
    "illicit/violent",
    "illicit",
    "violence/graphic",
    "violence",
    "sexual",
];

/// Which way the text is going.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The caller's prompt, before it is sent.
    Prompt,
    /// The model's answer, before it is returned.
    Response,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Prompt => "prompt",
            Self::Response => "response",
        }
    }
}

/// One local rule: a regex, and the category its match is refused under.
#[derive(Debug)]
struct Rule {
    category: &'static str,
    regex: Regex,
    /// Card numbers: a match counts only if its digits pass the Luhn check.
    luhn: bool,
}

impl Rule {
    fn new(category: &'static str, pattern: &str, luhn: bool) -> Result<Self, String> {
        Ok(Self {
            category,
            regex: compile(pattern)?,
            luhn,
        })
    }

    fn matches(&self, text: &str) -> bool {
        if self.luhn {
            self.regex
                .find_iter(text)
                .any(|found| passes_luhn(found.as_str()))
        } else {
            self.regex.is_match(text)
        }
    }
}

/// The content safety policy, compiled from its configuration.
#[derive(Debug)]
pub struct ContentSafety {
    rules: Vec<Rule>,
    moderation: Option<Moderation>,
    azure: Option<AzureContentSafety>,
}

impl ContentSafety {
    /// Compiles the rules; `None` when content safety is off.
    pub fn new(config: &ContentSafetyConfig) -> Result<Option<Self>, String> {
        Self::build(config, None)
    }

    /// Compiles the rules; Azure AI Content Safety without a key uses `credential`.
    pub fn build(
        config: &ContentSafetyConfig,
        credential: Option<Arc<EntraCredential>>,
    ) -> Result<Option<Self>, String> {
        if !config.enabled {
            return Ok(None);
        }
        let mut rules = Vec::new();
        if let Some(pattern) = terms_pattern(&config.blocked_terms) {
            rules.push(Rule::new("blocked_term", &pattern, false)?);
        }
        for pattern in config.blocked_patterns.iter().filter(|p| !p.is_empty()) {
            rules.push(Rule::new("custom_regex", pattern, false)?);
        }
        for preset in &config.presets {
            rules.push(match preset {
                SafetyPreset::Secrets => Rule::new("secrets", SECRETS, false)?,
                SafetyPreset::CardNumbers => Rule::new("card_numbers", CARD_NUMBER, true)?,
            });
        }
        let moderation = config
            .moderation
            .as_ref()
            .map(Moderation::new)
            .transpose()?;
        let azure = config
            .azure
            .as_ref()
            .map(|azure| AzureContentSafety::new(azure, credential))
            .transpose()?;
        Ok(Some(Self {
            rules,
            moderation,
            azure,
        }))
    }

    /// Whether prompts go to Prompt Shields (then [`shield_input`] is worth making).
    pub fn shields_prompts(&self) -> bool {
        self.azure
            .as_ref()
            .is_some_and(AzureContentSafety::shields_prompts)
    }

    /// The category of the first local rule `text` breaks, if any.
    pub fn check_rules(&self, text: &str) -> Option<&'static str> {
        self.rules
            .iter()
            .find(|rule| rule.matches(text))
            .map(|rule| rule.category)
    }

    /// Refuses `text` if a local rule or the moderation endpoint does; counts every refusal.
    pub async fn check(
        &self,
        context: &CallContext,
        direction: Direction,
        text: &str,
    ) -> Result<(), GatewayError> {
        self.check_with(context, direction, text, None).await
    }

    /// [`Self::check`], with a prompt's parts for Prompt Shields when they are on.
    pub async fn check_with(
        &self,
        context: &CallContext,
        direction: Direction,
        text: &str,
        shield: Option<&ShieldInput>,
    ) -> Result<(), GatewayError> {
        if text.trim().is_empty() {
            return Ok(());
        }
        let category = match self.check_rules(text) {
            Some(category) => Some(category.to_owned()),
            None => self.services_verdict(text, shield).await,
        };
        let span = tracing::Span::current();
        let Some(category) = category else {
            span.record("tollgate.content_safety.verdict", "allowed");
            return Ok(());
        };
        metrics::content_blocked(context, direction.as_str(), &category);
        if !span.is_disabled() {
            let verdict = format!("blocked:{}:{category}", direction.as_str());
            span.record("tollgate.content_safety.verdict", verdict.as_str());
        }
        tracing::info!(
            subscription = %context.subscription,
            request_id = %context.request_id,
            direction = direction.as_str(),
            %category,
            "content blocked"
        );
        Err(GatewayError::ContentBlocked { category })
    }
}

impl ContentSafety {
    /// The moderation endpoint's verdict, then Azure AI Content Safety's.
    async fn services_verdict(&self, text: &str, shield: Option<&ShieldInput>) -> Option<String> {
        if let Some(moderation) = &self.moderation
            && let Some(category) = moderation.verdict(text).await
        {
            return Some(category);
        }
        match &self.azure {
            Some(azure) => azure.verdict(text, shield).await,
            None => None,
        }
    }
}

/// Checks that `pattern` compiles as a blocked-content regex; for settings validation.
pub fn check_pattern(pattern: &str) -> Result<(), String> {
    compile(pattern).map(|_| ())
}

fn compile(pattern: &str) -> Result<Regex, String> {
    RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|error| format!("`{pattern}` is not a valid regular expression: {error}"))
}

/// One case-insensitive regex for all terms. A term matches only where it is not glued to a
/// letter, digit or underscore on either side; whitespace inside a term matches any whitespace.
fn terms_pattern(terms: &[String]) -> Option<String> {
    let alternatives: Vec<String> = terms
        .iter()
        .map(|term| term.trim())
        .filter(|term| !term.is_empty())
        .map(|term| {
            term.split_whitespace()
                .map(regex::escape)
                .collect::<Vec<_>>()
                .join(r"\s+")
        })
        .collect();
    if alternatives.is_empty() {
        return None;
    }
    Some(format!(
        r"(?i)(?:^|[^\p{{L}}\p{{N}}_])(?:{})(?:[^\p{{L}}\p{{N}}_]|$)",
        alternatives.join("|")
    ))
}

/// The Luhn checksum over the digits of `candidate` (separators ignored).
fn passes_luhn(candidate: &str) -> bool {
    let digits: Vec<u32> = candidate.chars().filter_map(|c| c.to_digit(10)).collect();
    if !(13..=19).contains(&digits.len()) {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(position, &digit)| {
            if position % 2 == 1 {
                let doubled = digit * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                digit
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// The model name moderation calls go under: it names no URL path (the endpoint is OpenAI-style)
/// and the body carries none, so the endpoint picks its own model.
const MODERATION_MODEL: &str = "moderation";

/// An OpenAI-compatible moderation endpoint, behind an upstream pool of its own.
struct Moderation {
    api: Arc<dyn ModelApi>,
    timeout: Duration,
    fail_closed: bool,
}

impl std::fmt::Debug for Moderation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Moderation")
            .field("timeout", &self.timeout)
            .field("fail_closed", &self.fail_closed)
            .finish_non_exhaustive()
    }
}

impl Moderation {
    fn new(config: &ModerationConfig) -> Result<Self, String> {
        let backend = BackendConfig::OpenAi {
            base_url: config.url.trim().to_owned(),
            api_key: config.api_key.clone(),
        };
        // The setting is the deadline of the whole moderation call, retries included.
        let retry = RetryConfig {
            attempt_timeout: config.timeout,
            call_deadline: config.timeout,
            ..RetryConfig::default()
        };
        let upstream = Upstream::new(vec![backend], retry, BreakerConfig::default())
            .map_err(|error| format!("cannot build the moderation client: {error}"))?;
        Ok(Self {
            api: Arc::new(upstream),
            timeout: config.timeout,
            fail_closed: config.fail_closed,
        })
    }

    /// The category `text` is refused under, or `None` if it may pass.
    async fn verdict(&self, text: &str) -> Option<String> {
        match self.ask(text).await {
            Ok(verdict) => verdict,
            Err(error) if self.fail_closed => {
                tracing::warn!(%error, "moderation failed; refusing the text (fail-closed)");
                Some("moderation_unavailable".to_owned())
            }
            Err(error) => {
                tracing::warn!(%error, "moderation failed; letting the text through (fail-open)");
                None
            }
        }
    }

    async fn ask(&self, text: &str) -> Result<Option<String>, String> {
        let body = serde_json::to_vec(&serde_json::json!({ "input": text }))
            .map(Bytes::from)
            .map_err(|error| format!("moderation request unwritable: {error}"))?;
        let deadline = Instant::now() + self.timeout;
        let answer = self
            .api
            .whole(Operation::Moderations, MODERATION_MODEL, body, deadline)
            .await
            .map_err(|error| format!("moderation request failed: {error}"))?;
        let body: Value = serde_json::from_slice(&answer)
            .map_err(|error| format!("moderation answer unreadable: {error}"))?;
        let result = body
            .pointer("/results/0")
            .ok_or("moderation answer has no results")?;
        let flagged = result
            .get("flagged")
            .and_then(Value::as_bool)
            .ok_or("moderation answer has no `flagged`")?;
        if !flagged {
            return Ok(None);
        }
        let categories = result.get("categories");
        let named = MODERATION_CATEGORIES.iter().find(|name| {
            categories
                .and_then(|c| c.get(**name))
                .and_then(Value::as_bool)
                .unwrap_or(false)
        });
        Ok(Some(named.map_or("moderation", |name| name).to_owned()))
    }
}

/// The text of a chat request's messages: string contents, text parts and tool-call arguments.
pub fn prompt_text(request: &Map<String, Value>) -> String {
    let mut text = String::new();
    for message in request
        .get("messages")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        message_text(message, &mut text);
    }
    text
}

/// What Prompt Shields judge in a chat request: the user messages' text as the user prompt,
/// each tool result as a document.
pub fn shield_input(request: &Map<String, Value>) -> ShieldInput {
    let mut input = ShieldInput::default();
    for message in request
        .get("messages")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        match message.get("role").and_then(Value::as_str) {
            Some("user") => message_text(message, &mut input.user_prompt),
            Some("tool" | "function") => {
                let mut document = String::new();
                message_text(message, &mut document);
                if !document.trim().is_empty() {
                    input.documents.push(document);
                }
            }
            _ => {}
        }
    }
    input
}

/// The text of an embeddings request's `input` (strings only; token ids carry no text).
pub fn embedding_input_text(request: &Map<String, Value>) -> String {
    match request.get("input") {
        Some(Value::String(input)) => input.clone(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// The text of every choice of a whole chat completion.
pub fn answer_text(body: &Value) -> String {
    let mut text = String::new();
    for message in crate::tokens::choice_messages(body) {
        message_text(message, &mut text);
    }
    text
}

/// Appends one message's text, each piece on a line of its own so words never run together.
fn message_text(message: &Value, out: &mut String) {
    let mut push = |piece: &str| {
        out.push_str(piece);
        out.push('\n');
    };
    match message.get("content") {
        Some(Value::String(content)) => push(content),
        Some(Value::Array(parts)) => {
            for part in parts {
                if let Some(text) = part.get("text").and_then(Value::as_str) {
                    push(text);
                }
            }
        }
        _ => {}
    }
    let calls = message
        .get("tool_calls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|call| call.get("function"));
    for function in calls.chain(message.get("function_call")) {
        if let Some(arguments) = function.get("arguments").and_then(Value::as_str) {
            push(arguments);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn safety(config: ContentSafetyConfig) -> ContentSafety {
        ContentSafety::new(&ContentSafetyConfig {
            enabled: true,
            ..config
        })
        .unwrap()
        .unwrap()
    }

    fn presets() -> ContentSafety {
        safety(ContentSafetyConfig {
            presets: vec![SafetyPreset::Secrets, SafetyPreset::CardNumbers],
            ..Default::default()
        })
    }

    #[test]
    fn off_means_no_policy() {
        assert!(
            ContentSafety::new(&ContentSafetyConfig::default())
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn terms_match_whole_words_in_any_case() {
        let policy = safety(ContentSafetyConfig {
            blocked_terms: vec!["Project Falcon".into(), "c++".into(), " ".into()],
            ..Default::default()
        });
        for blocked in [
            "tell me about project falcon",
            "PROJECT\n  FALCON!",
            "(project falcon)",
            "is c++ fast?",
        ] {
            assert_eq!(
                policy.check_rules(blocked),
                Some("blocked_term"),
                "{blocked}"
            );
        }
        for allowed in [
            "project falconry",
            "projectfalcon",
            "my_project falcon_x",
            "abc++",
            "",
        ] {
            assert_eq!(policy.check_rules(allowed), None, "{allowed}");
        }
    }

    #[test]
    fn custom_patterns_apply_and_bad_ones_are_refused() {
        let policy = safety(ContentSafetyConfig {
            blocked_patterns: vec![r"(?i)internal-\d{4}".into()],
            ..Default::default()
        });
        assert_eq!(
            policy.check_rules("see INTERNAL-2024"),
            Some("custom_regex")
        );
        assert_eq!(policy.check_rules("see internal-24"), None);
        assert!(check_pattern("(unclosed").is_err());
        assert!(
            ContentSafety::new(&ContentSafetyConfig {
                enabled: true,
                blocked_patterns: vec!["[".into()],
                ..Default::default()
            })
            .is_err()
        );
    }

    #[test]
    fn secrets_preset_finds_keys() {
        let policy = presets();
        for secret in [
            "my key is sk-abcdefghijklmnopqrstuvwxyz123456",
            "OPENAI_API_KEY=sk-proj-AbCdEfGhIjKlMnOpQrStUvWx_yz-0123",
            "aws AKIAIOSFODNN7EXAMPLE here",
            "-----BEGIN RSA PRIVATE KEY-----\nMIIE...",
            "-----BEGIN PRIVATE KEY-----",
            "token ghp_abcdefghijklmnopqrstuvwxyz0123456789AB",
            "xoxb-1234567890-abcdef",
        ] {
            assert_eq!(policy.check_rules(secret), Some("secrets"), "{secret}");
        }
        for harmless in [
            "ask-abcdefghijklmnopqrstuvwxyz123456",
            "sk-short",
            "AKIA is a prefix",
            "-----BEGIN PUBLIC KEY-----",
        ] {
            assert_eq!(policy.check_rules(harmless), None, "{harmless}");
        }
    }

    #[test]
    fn card_numbers_need_the_luhn_check() {
        let policy = presets();
        for card in [
            "4111111111111111",
            "pay with 4111 1111 1111 1111 please",
            "5500-0000-0000-0004",
            "378282246310005",
        ] {
            assert_eq!(policy.check_rules(card), Some("card_numbers"), "{card}");
        }
        for other in [
            "4111111111111112",
            "order 1234567890",
            "id 41111111111111111111111",
            "1 2 3",
        ] {
            assert_eq!(policy.check_rules(other), None, "{other}");
        }
        assert!(!passes_luhn("79927398713"), "too short to be a card");
        assert!(passes_luhn("4012888888881881"));
    }

    #[test]
    fn texts_are_gathered_from_requests_and_answers() {
        let request = json!({"messages": [
            {"role": "system", "content": "be nice"},
            {"role": "user", "content": [{"type": "text", "text": "part one"}, {"type": "image_url"}]},
            {"role": "assistant", "content": null, "tool_calls": [{"function": {"name": "f", "arguments": "{\"q\":\"args\"}"}}]},
        ]});
        let text = prompt_text(request.as_object().unwrap());
        assert!(text.contains("be nice") && text.contains("part one") && text.contains("args"));
        let answer = json!({"choices": [
            {"message": {"content": "first"}},
            {"message": {"content": null, "tool_calls": [{"function": {"name": "g", "arguments": "second"}}]}},
        ]});
        assert_eq!(answer_text(&answer), "first\nsecond\n");
        let input = json!({"input": ["a", "b", [1, 2]]});
        assert_eq!(embedding_input_text(input.as_object().unwrap()), "a\nb");
    }

    #[tokio::test]
    async fn a_refusal_names_its_category() {
        let policy = presets();
        let context = CallContext::for_subscription("unit", crate::context::Api::OpenAi);
        let refused = policy
            .check(&context, Direction::Prompt, "card 4111 1111 1111 1111")
            .await;
        assert!(matches!(
            refused,
            Err(GatewayError::ContentBlocked { category }) if category == "card_numbers"
        ));
        assert!(
            policy
                .check(&context, Direction::Response, "all fine")
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn an_unreachable_moderation_endpoint_fails_open_or_closed() {
        // A loopback port that was just free: connecting to it is refused.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let moderation = |fail_closed| ModerationConfig {
            url: format!("http://127.0.0.1:{port}/v1"),
            api_key: None,
            timeout: Duration::from_secs(2),
            fail_closed,
        };
        let context = CallContext::for_subscription("unit", crate::context::Api::OpenAi);
        let open = safety(ContentSafetyConfig {
            moderation: Some(moderation(false)),
            ..Default::default()
        });
        assert!(
            open.check(&context, Direction::Prompt, "hello")
                .await
                .is_ok()
        );
        let closed = safety(ContentSafetyConfig {
            moderation: Some(moderation(true)),
            ..Default::default()
        });
        assert!(matches!(
            closed.check(&context, Direction::Prompt, "hello").await,
            Err(GatewayError::ContentBlocked { category }) if category == "moderation_unavailable"
        ));
    }

    /// A moderation endpoint that answers with `answer`, seen through the ModelApi seam.
    struct CannedModeration(Result<Value, GatewayError>);

    #[async_trait::async_trait]
    impl ModelApi for CannedModeration {
        async fn whole(
            &self,
            operation: Operation,
            _model: &str,
            body: Bytes,
            _deadline: Instant,
        ) -> Result<Bytes, GatewayError> {
            assert_eq!(operation, Operation::Moderations);
            let sent: Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(sent, json!({"input": "some text"}));
            self.0.clone().map(|answer| Bytes::from(answer.to_string()))
        }

        async fn stream(
            &self,
            _operation: Operation,
            _model: &str,
            _body: Bytes,
            _deadline: Instant,
        ) -> Result<crate::model_api::ByteStream, GatewayError> {
            Err(GatewayError::NotConfigured)
        }

        fn is_configured(&self) -> bool {
            true
        }

        fn check_model(&self, _model: &str) -> Result<(), GatewayError> {
            Ok(())
        }
    }

    fn moderation(answer: Result<Value, GatewayError>, fail_closed: bool) -> Moderation {
        Moderation {
            api: Arc::new(CannedModeration(answer)),
            timeout: Duration::from_secs(1),
            fail_closed,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn moderation_verdicts_come_through_the_model_api() {
        let flagged = json!({"results": [{"flagged": true, "categories": {"violence": true}}]});
        let verdict = moderation(Ok(flagged), false).verdict("some text").await;
        assert_eq!(verdict.as_deref(), Some("violence"));
        let clean = json!({"results": [{"flagged": false}]});
        assert_eq!(moderation(Ok(clean), true).verdict("some text").await, None);
        let down = || {
            Err(GatewayError::UpstreamFailed {
                summary: "down".to_owned(),
            })
        };
        assert_eq!(moderation(down(), false).verdict("some text").await, None);
        assert_eq!(
            moderation(down(), true)
                .verdict("some text")
                .await
                .as_deref(),
            Some("moderation_unavailable")
        );
    }
}

//! Azure AI Content Safety as a content safety backend.
//!
//! `text:analyze` (api-version 2024-09-01) judges prompts and answers for Hate, SelfHarm,
//! Sexual and Violence on the eight-level scale; a category at or above the configured
//! severity refuses the text. Prompt Shields (`text:shieldPrompt`) judge a prompt's user
//! messages as the user prompt and its tool results as documents, when asked for.
//!
//! Texts longer than the API takes are split (10,000 characters a request for `text:analyze`,
//! and for a shielded user prompt and its documents, at most five of them), at whitespace
//! where there is some; the pieces are judged a few at a time and the first refusal wins.
//!
//! The service is called through an upstream pool of its own, like every model call: one
//! deadline for the whole check, retries, a circuit breaker, upstream metrics, and the key
//! (`Ocp-Apim-Subscription-Key`) or a Microsoft Entra ID token.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use futures::{StreamExt, stream};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::{
    config::{AzureContentSafetyConfig, BackendConfig, BreakerConfig, RetryConfig},
    context::Operation,
    entra::EntraCredential,
    model_api::ModelApi,
    upstream::Upstream,
};

/// The most characters `text:analyze` takes in one request.
pub const ANALYZE_LIMIT: usize = 10_000;
/// The most characters of a shielded user prompt, and of its documents together, per request.
pub const SHIELD_LIMIT: usize = 10_000;
/// The most documents in one Prompt Shields request.
pub const SHIELD_DOCUMENTS: usize = 5;
/// Requests of one check in flight at once.
const CONCURRENT_REQUESTS: usize = 4;
/// The name the calls go under in the upstream pool (it names no URL path).
const MODEL: &str = "content-safety";
/// The harm categories asked about, and the names a refusal gives them.
const CATEGORIES: [(&str, &str); 4] = [
    ("Hate", "hate"),
    ("SelfHarm", "self_harm"),
    ("Sexual", "sexual"),
    ("Violence", "violence"),
];

/// What Prompt Shields judge: the user's messages and the documents (tool results).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShieldInput {
    pub user_prompt: String,
    pub documents: Vec<String>,
}

pub struct AzureContentSafety {
    api: Arc<dyn ModelApi>,
    severity: u8,
    shield_prompts: bool,
    timeout: Duration,
    fail_closed: bool,
}

impl std::fmt::Debug for AzureContentSafety {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzureContentSafety")
            .field("severity", &self.severity)
            .field("shield_prompts", &self.shield_prompts)
            .field("fail_closed", &self.fail_closed)
            .finish_non_exhaustive()
    }
}

impl AzureContentSafety {
    pub fn new(
        config: &AzureContentSafetyConfig,
        credential: Option<Arc<EntraCredential>>,
    ) -> Result<Self, String> {
        let backend = BackendConfig::ContentSafety {
            endpoint: config.endpoint.trim().to_owned(),
            api_key: config.api_key.clone(),
        };
        let retry = RetryConfig {
            attempt_timeout: config.timeout,
            call_deadline: config.timeout,
            ..RetryConfig::default()
        };
        let upstream = Upstream::new(vec![backend], retry, BreakerConfig::default())
            .map_err(|error| format!("cannot build the Azure AI Content Safety client: {error}"))?
            .with_credential(credential);
        Ok(Self::over(Arc::new(upstream), config))
    }

    /// Over any model API (unit tests fake it).
    pub fn over(api: Arc<dyn ModelApi>, config: &AzureContentSafetyConfig) -> Self {
        Self {
            api,
            severity: config.severity,
            shield_prompts: config.shield_prompts,
            timeout: config.timeout,
            fail_closed: config.fail_closed,
        }
    }

    pub fn shields_prompts(&self) -> bool {
        self.shield_prompts
    }

    /// The category `text` is refused under, or `None` if it may pass; `shield` is judged by
    /// Prompt Shields when they are on. A failing service refuses or passes the text as
    /// configured.
    pub async fn verdict(&self, text: &str, shield: Option<&ShieldInput>) -> Option<String> {
        let deadline = Instant::now() + self.timeout;
        match self.judge(text, shield, deadline).await {
            Ok(verdict) => verdict.map(str::to_owned),
            Err(error) if self.fail_closed => {
                tracing::warn!(%error, "Azure AI Content Safety failed; refusing the text (fail-closed)");
                Some("content_safety_unavailable".to_owned())
            }
            Err(error) => {
                tracing::warn!(%error, "Azure AI Content Safety failed; letting the text through (fail-open)");
                None
            }
        }
    }

    async fn judge(
        &self,
        text: &str,
        shield: Option<&ShieldInput>,
        deadline: Instant,
    ) -> Result<Option<&'static str>, String> {
        let categories = CATEGORIES.map(|(name, _)| name);
        let mut requests: Vec<(Operation, Value)> = split(text, ANALYZE_LIMIT)
            .into_iter()
            .map(|chunk| {
                let body = json!({"text": chunk, "categories": categories, "outputType": "EightSeverityLevels"});
                (Operation::TextAnalyze, body)
            })
            .collect();
        if let Some(input) = shield.filter(|_| self.shield_prompts) {
            requests.extend(
                shield_requests(input)
                    .into_iter()
                    .map(|body| (Operation::ShieldPrompt, body)),
            );
        }
        // Made first, then polled a few at a time (a closure inside the stream would make the
        // future's lifetimes too general to be sent).
        let asks: Vec<_> = requests
            .into_iter()
            .map(|(operation, body)| Box::pin(self.ask(operation, body, deadline)))
            .collect();
        let mut verdicts = stream::iter(asks).buffered(CONCURRENT_REQUESTS);
        while let Some(verdict) = verdicts.next().await {
            if let Some(category) = verdict? {
                return Ok(Some(category));
            }
        }
        Ok(None)
    }

    async fn ask(
        &self,
        operation: Operation,
        body: Value,
        deadline: Instant,
    ) -> Result<Option<&'static str>, String> {
        let body = serde_json::to_vec(&body)
            .map(Bytes::from)
            .map_err(|error| format!("request unwritable: {error}"))?;
        let answer = self
            .api
            .whole(operation, MODEL, body, deadline)
            .await
            .map_err(|error| format!("request failed: {error}"))?;
        let answer: Value = serde_json::from_slice(&answer)
            .map_err(|error| format!("answer unreadable: {error}"))?;
        match operation {
            Operation::ShieldPrompt => attack_in(&answer),
            _ => self.harm_in(&answer),
        }
    }

    /// The gravest category at or above the severity, from a `text:analyze` answer.
    fn harm_in(&self, answer: &Value) -> Result<Option<&'static str>, String> {
        let analyses = answer
            .get("categoriesAnalysis")
            .and_then(Value::as_array)
            .ok_or("the answer has no categoriesAnalysis")?;
        let gravest = analyses
            .iter()
            .filter_map(|analysis| {
                let severity = analysis.get("severity").and_then(Value::as_u64)?;
                let category = analysis.get("category").and_then(Value::as_str)?;
                Some((severity, category))
            })
            .filter(|(severity, _)| *severity >= u64::from(self.severity))
            .max_by_key(|(severity, _)| *severity);
        Ok(gravest.map(|(_, category)| {
            CATEGORIES
                .iter()
                .find(|(name, _)| *name == category)
                .map_or("content_safety", |(_, label)| label)
        }))
    }
}

/// `prompt_attack` or `document_attack`, from a `text:shieldPrompt` answer.
fn attack_in(answer: &Value) -> Result<Option<&'static str>, String> {
    let user = answer
        .pointer("/userPromptAnalysis/attackDetected")
        .and_then(Value::as_bool);
    let documents = answer.get("documentsAnalysis").and_then(Value::as_array);
    if user.is_none() && documents.is_none() {
        return Err("the answer has no userPromptAnalysis or documentsAnalysis".to_owned());
    }
    if user == Some(true) {
        return Ok(Some("prompt_attack"));
    }
    let attacked = documents.into_iter().flatten().any(|analysis| {
        analysis
            .get("attackDetected")
            .and_then(Value::as_bool)
            .unwrap_or(false)
    });
    Ok(attacked.then_some("document_attack"))
}

/// Prompt Shields request bodies: the user prompt in pieces, the documents in batches.
pub fn shield_requests(input: &ShieldInput) -> Vec<Value> {
    let prompts = split(&input.user_prompt, SHIELD_LIMIT);
    let mut batches: Vec<Vec<&str>> = Vec::new();
    let mut batch_chars = 0;
    for piece in input.documents.iter().flat_map(|d| split(d, SHIELD_LIMIT)) {
        let chars = piece.chars().count();
        let full = batches.last().is_none_or(|batch| {
            batch.len() == SHIELD_DOCUMENTS || batch_chars + chars > SHIELD_LIMIT
        });
        if full {
            batches.push(Vec::new());
            batch_chars = 0;
        }
        if let Some(batch) = batches.last_mut() {
            batch.push(piece);
            batch_chars += chars;
        }
    }
    (0..prompts.len().max(batches.len()))
        .map(|index| {
            json!({
                "userPrompt": prompts.get(index).copied().unwrap_or_default(),
                "documents": batches.get(index).cloned().unwrap_or_default(),
            })
        })
        .collect()
}

/// `text` in pieces of at most `limit` characters, cut at the last whitespace of a piece
/// when there is one in its second half; blank pieces are dropped.
pub fn split(text: &str, limit: usize) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let Some((hard_cut, _)) = rest.char_indices().nth(limit) else {
            pieces.push(rest);
            break;
        };
        let window = &rest[..hard_cut];
        let cut = window
            .rfind(char::is_whitespace)
            .filter(|&at| at >= hard_cut / 2)
            .map_or(hard_cut, |at| {
                at + window[at..].chars().next().map_or(1, char::len_utf8)
            });
        pieces.push(&rest[..cut]);
        rest = &rest[cut..];
    }
    pieces.retain(|piece| !piece.trim().is_empty());
    pieces
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn long_texts_are_split_within_the_limit_at_whitespace() {
        let text = "word ".repeat(5_000);
        let pieces = split(&text, ANALYZE_LIMIT);
        assert_eq!(pieces.len(), 3);
        assert!(pieces.iter().all(|p| p.chars().count() <= ANALYZE_LIMIT));
        assert!(pieces.iter().all(|p| p.ends_with(' ') || p.ends_with('d')));
        assert_eq!(pieces.concat(), text);
        // No whitespace: cut at the limit, on character boundaries.
        let dense = "é".repeat(25_000);
        let pieces = split(&dense, ANALYZE_LIMIT);
        assert_eq!(
            pieces.iter().map(|p| p.chars().count()).collect::<Vec<_>>(),
            [10_000, 10_000, 5_000]
        );
        assert!(split("  \n ", ANALYZE_LIMIT).is_empty());
        assert_eq!(split("short", ANALYZE_LIMIT), ["short"]);
    }

    #[test]
    fn shield_requests_batch_documents_within_the_limits() {
        let input = ShieldInput {
            user_prompt: "x".repeat(15_000),
            documents: vec!["d".repeat(4_000); 7],
        };
        let requests = shield_requests(&input);
        // 2 prompt pieces; 7 documents of 4,000 make batches of 2 (8,000 <= 10,000).
        assert_eq!(requests.len(), 4);
        for request in &requests {
            let documents = request["documents"].as_array().unwrap();
            assert!(documents.len() <= SHIELD_DOCUMENTS);
            let total: usize = documents
                .iter()
                .map(|d| d.as_str().unwrap().chars().count())
                .sum();
            assert!(total <= SHIELD_LIMIT);
            assert!(request["userPrompt"].as_str().unwrap().chars().count() <= SHIELD_LIMIT);
        }
        assert_eq!(requests[3]["userPrompt"], "");
        let small = ShieldInput {
            user_prompt: "hi".into(),
            documents: vec!["a".into(); 6],
        };
        let requests = shield_requests(&small);
        assert_eq!(requests.len(), 2);
        assert_eq!(requests[0]["documents"].as_array().unwrap().len(), 5);
    }

    #[test]
    fn attacks_and_harms_are_read_from_the_answers() {
        assert_eq!(
            attack_in(
                &json!({"userPromptAnalysis": {"attackDetected": true}, "documentsAnalysis": []})
            ),
            Ok(Some("prompt_attack"))
        );
        assert_eq!(
            attack_in(
                &json!({"userPromptAnalysis": {"attackDetected": false}, "documentsAnalysis": [{"attackDetected": true}]})
            ),
            Ok(Some("document_attack"))
        );
        assert_eq!(
            attack_in(&json!({"userPromptAnalysis": {"attackDetected": false}})),
            Ok(None)
        );
        assert!(attack_in(&json!({})).is_err());
    }
}

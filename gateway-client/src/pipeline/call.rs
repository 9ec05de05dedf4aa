//! The call itself, after admission: the cache lookup, then the model API, whole or streamed.

use bytes::Bytes;
use serde_json::{Map, Value};
use tokio::{sync::mpsc, time::Instant};
use tracing::Instrument;

use super::{
    ChatOutcome, ChatStream, EmbeddingsOutcome, Gateway, StreamEvent,
    admission::ChatAdmission,
    relay::{StreamStart, completion_as_chunks},
};
use crate::{
    cache::{CacheLookup, CacheStatus},
    context::{CacheDirective, CallContext, Operation},
    error::GatewayError,
    metrics,
    model_api::ByteStream,
    telemetry,
    usage::Usage,
};

/// What the cache said for one call.
pub(super) enum Lookup {
    Hit(Value),
    Miss,
    Bypass,
}

impl Gateway {
    /// A non-streamed chat completion.
    pub async fn chat(
        &self,
        context: &CallContext,
        mut request: Map<String, Value>,
    ) -> Result<ChatOutcome, GatewayError> {
        let started = Instant::now();
        let model = self.validate_chat(&mut request, false)?;
        let span = self.call_span(Operation::Chat, &model);
        let result = self
            .chat_whole(context, model.clone(), request)
            .instrument(span.clone())
            .await;
        let outcome = match &result {
            Ok(done) => done.cache.as_str(),
            Err(error) => {
                telemetry::record_error(&span, error.code());
                error.code()
            }
        };
        let label = self.model_labels.label(&model);
        metrics::call_duration(context, Operation::Chat, label, outcome, started.elapsed());
        result
    }

    async fn chat_whole(
        &self,
        context: &CallContext,
        model: String,
        request: Map<String, Value>,
    ) -> Result<ChatOutcome, GatewayError> {
        let mut admission = self.admit_chat(context, model, request, false).await?;
        telemetry::record_request(&admission.request);
        let cache_status = match self.lookup(context, &admission).await {
            Lookup::Hit(body) => {
                let remaining = admission.held.release().await;
                cached_answer(context, &admission.model, &body, remaining);
                return Ok(ChatOutcome {
                    body,
                    model: admission.model,
                    usage: Usage::default(),
                    cache: CacheStatus::Hit,
                    remaining_tokens: remaining,
                });
            }
            Lookup::Miss => CacheStatus::Miss,
            Lookup::Bypass => CacheStatus::Bypass,
        };
        let answer = self.ask_whole(context, &mut admission).await;
        let body = admission.held.release_on_error(answer).await?;
        self.settle_whole(context, admission, body, cache_status)
            .await
    }

    /// The model API's whole answer, as JSON.
    async fn ask_whole(
        &self,
        context: &CallContext,
        admission: &mut ChatAdmission,
    ) -> Result<Value, GatewayError> {
        let body = serialize(&admission.request)?;
        let call = self
            .model_api
            .whole(Operation::Chat, &admission.model, body, self.deadline());
        let call = telemetry::recording_attempts(context.record.as_ref(), call);
        let answer = admission.held.sending(call).await?;
        parse_answer(&answer)
    }

    /// A streamed chat completion. Usage is reconciled when the stream ends.
    pub async fn chat_stream(
        &self,
        context: &CallContext,
        mut request: Map<String, Value>,
    ) -> Result<ChatStream, GatewayError> {
        let started = Instant::now();
        let model = self.validate_chat(&mut request, true)?;
        let span = self.call_span(Operation::Chat, &model);
        let opened = self
            .open_chat_stream(context, model, request, started)
            .instrument(span.clone())
            .await;
        if let Err(error) = &opened {
            telemetry::record_error(&span, error.code());
        }
        opened
    }

    /// A streamed call from admission until its stream is open (or answered from the cache);
    /// the relay then carries the call's span to the stream's end.
    async fn open_chat_stream(
        &self,
        context: &CallContext,
        model: String,
        request: Map<String, Value>,
        started: Instant,
    ) -> Result<ChatStream, GatewayError> {
        let mut admission = self.admit_chat(context, model, request, true).await?;
        telemetry::record_request(&admission.request);
        let client_wants_usage = admission
            .request
            .get("stream_options")
            .and_then(|o| o.get("include_usage"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let cache_status = match self.lookup(context, &admission).await {
            Lookup::Hit(body) => {
                let remaining = admission.held.release().await;
                cached_answer(context, &admission.model, &body, remaining);
                return Ok(replay(
                    admission.model,
                    &body,
                    client_wants_usage,
                    remaining,
                ));
            }
            Lookup::Miss => CacheStatus::Miss,
            Lookup::Bypass => CacheStatus::Bypass,
        };
        // Always ask for usage so the reservation can be reconciled exactly; the usage chunk is
        // passed on only if the client asked for it too.
        admission.request.insert(
            "stream_options".to_owned(),
            serde_json::json!({"include_usage": true}),
        );
        let opened = self.open_stream(context, &mut admission).await;
        let chunks = admission.held.release_on_error(opened).await?;
        let start = StreamStart {
            cache_status,
            client_wants_usage,
            started,
        };
        Ok(self.relay(context, admission, chunks, start))
    }

    async fn open_stream(
        &self,
        context: &CallContext,
        admission: &mut ChatAdmission,
    ) -> Result<ByteStream, GatewayError> {
        let body = serialize(&admission.request)?;
        let call = self
            .model_api
            .stream(Operation::Chat, &admission.model, body, self.deadline());
        let call = telemetry::recording_attempts(context.record.as_ref(), call);
        admission.held.sending(call).await
    }

    /// Embeddings, with the budget, metrics and ledger (no cache).
    pub async fn embeddings(
        &self,
        context: &CallContext,
        request: Map<String, Value>,
    ) -> Result<EmbeddingsOutcome, GatewayError> {
        let model = request
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or(&self.embedding_model);
        let span = self.call_span(Operation::Embeddings, model);
        let result = self.embed(context, request).instrument(span.clone()).await;
        if let Err(error) = &result {
            telemetry::record_error(&span, error.code());
        }
        result
    }

    async fn embed(
        &self,
        context: &CallContext,
        request: Map<String, Value>,
    ) -> Result<EmbeddingsOutcome, GatewayError> {
        let started = Instant::now();
        let mut admission = self.admit_embeddings(context, request).await?;
        let body = serialize(&admission.request)?;
        let call = self.model_api.whole(
            Operation::Embeddings,
            &admission.model,
            body,
            self.deadline(),
        );
        let call = telemetry::recording_attempts(context.record.as_ref(), call);
        let sent = admission.held.sending(call).await;
        let sent = admission.held.release_on_error(sent).await;
        if let Err(error) = &sent {
            let label = self.model_labels.label(&admission.model);
            let elapsed = started.elapsed();
            metrics::call_duration(context, Operation::Embeddings, label, error.code(), elapsed);
        }
        let parsed = sent.and_then(|answer| parse_answer(&answer));
        let body = admission.held.release_on_error(parsed).await?;
        Ok(self
            .settle_embeddings(context, admission, body, started)
            .await)
    }

    /// The cache's answer for an admitted chat call, when the call and the caller allow one.
    pub(super) async fn lookup(&self, context: &CallContext, admission: &ChatAdmission) -> Lookup {
        let cache = self.cache.as_ref().filter(|_| admission.cacheable());
        let status = match (cache, context.cache) {
            (None, CacheDirective::Use | CacheDirective::NoCache | CacheDirective::NoStore)
            | (Some(_), CacheDirective::NoCache | CacheDirective::NoStore) => Lookup::Bypass,
            (Some(cache), CacheDirective::Use) if !cache.available() => Lookup::Bypass,
            (Some(cache), CacheDirective::Use) => {
                let model = &admission.model;
                match cache
                    .lookup(context, Operation::Chat, model, &admission.request)
                    .await
                {
                    CacheLookup::Hit(body) => Lookup::Hit(body),
                    CacheLookup::Miss => Lookup::Miss,
                    CacheLookup::Bypass => Lookup::Bypass,
                }
            }
        };
        let (label, cache_status) = match &status {
            Lookup::Hit(_) => ("hit", CacheStatus::Hit),
            Lookup::Miss => ("miss", CacheStatus::Miss),
            Lookup::Bypass => ("bypass", CacheStatus::Bypass),
        };
        metrics::cache_status(context, Operation::Chat, label);
        tracing::Span::current().record("tollgate.cache.status", label);
        if let Some(record) = &context.record {
            record.cache(cache_status);
        }
        status
    }
}

impl Gateway {
    /// The GenAI client span of one call to `model`, named by its bounded metrics label.
    fn call_span(&self, operation: Operation, model: &str) -> tracing::Span {
        let provider = self.model_api.provider_name();
        let label = self.model_labels.label(model);
        telemetry::model_call_span(operation, provider, label, model)
    }
}

/// A cached answer's facts, for the span and the access log (it cost no tokens).
fn cached_answer(context: &CallContext, model: &str, body: &Value, remaining: u64) {
    telemetry::record_answer(body);
    tracing::Span::current().record("tollgate.budget.remaining_tokens", remaining);
    if let Some(record) = &context.record {
        record.usage(model, 0, 0);
    }
}

/// A cached answer replayed as a stream.
fn replay(model: String, body: &Value, include_usage: bool, remaining: u64) -> ChatStream {
    let (sender, events) = mpsc::channel(8);
    let chunks = completion_as_chunks(body, include_usage);
    tokio::spawn(async move {
        for chunk in chunks {
            if sender.send(Ok(StreamEvent::Chunk(chunk))).await.is_err() {
                return;
            }
        }
        let done = StreamEvent::Done {
            usage: Usage::default(),
        };
        let _ = sender.send(Ok(done)).await;
    });
    ChatStream {
        model,
        cache: CacheStatus::Hit,
        remaining_tokens: remaining,
        events,
    }
}

fn parse_answer(answer: &Bytes) -> Result<Value, GatewayError> {
    serde_json::from_slice(answer).map_err(|_| GatewayError::UpstreamFailed {
        summary: "the upstream's answer was not JSON".to_owned(),
    })
}

fn serialize(request: &Map<String, Value>) -> Result<Bytes, GatewayError> {
    serde_json::to_vec(request)
        .map(Bytes::from)
        .map_err(|e| GatewayError::InvalidRequest(format!("request cannot be serialized: {e}")))
}

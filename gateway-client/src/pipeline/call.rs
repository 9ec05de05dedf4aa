//! The call itself, after admission: the cache lookup, then the model API, whole or streamed.

use bytes::Bytes;
use serde_json::{Map, Value};
use tokio::{sync::mpsc, time::Instant};
use tracing::Instrument;

use super::{
    ChatOutcome, ChatStream, EmbeddingsOutcome, Gateway, StreamEvent,
    admission::ChatAdmission,
    answer::{Answer, parse_answer},
    native::NativeCall,
    relay::{StreamStart, completion_as_chunks},
};
use crate::{
    cache::{CacheLookup, CacheStatus},
    context::{CacheDirective, CallContext, Operation},
    error::GatewayError,
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
        request: Map<String, Value>,
    ) -> Result<ChatOutcome, GatewayError> {
        self.chat_via(context, request, None).await
    }

    /// A non-streamed chat call, sent as chat completions or, with `native`, in the caller's
    /// own protocol.
    pub(super) async fn chat_via(
        &self,
        context: &CallContext,
        mut request: Map<String, Value>,
        native: Option<&NativeCall>,
    ) -> Result<ChatOutcome, GatewayError> {
        let started = Instant::now();
        let model = self.validate_chat(context.api, &mut request, false)?;
        let span = self.call_span(Operation::Chat, &model);
        let result = self
            .chat_whole(context, model.clone(), request, native)
            .instrument(span.clone())
            .await;
        let outcome = match &result {
            Ok(done) => done.cache.as_str(),
            Err(error) => {
                telemetry::record_error(&span, error.code());
                error.code()
            }
        };
        let provider = self.model_api_for(context.api).provider_name();
        let elapsed = started.elapsed();
        self.metrics
            .call_duration(context, Operation::Chat, provider, &model, outcome, elapsed);
        result
    }

    async fn chat_whole(
        &self,
        context: &CallContext,
        model: String,
        request: Map<String, Value>,
        native: Option<&NativeCall>,
    ) -> Result<ChatOutcome, GatewayError> {
        let mut admission = self.admit_chat(context, model, request, false).await?;
        telemetry::record_request(&admission.request);
        let cache_status = match self.lookup(context, &admission).await {
            Lookup::Hit(body) => {
                let remaining = admission.held.release().await;
                cached_answer(context, &admission.model, &body, remaining);
                return Ok(ChatOutcome {
                    answer: Answer::from_tree(body),
                    model: admission.model,
                    usage: Usage::default(),
                    cache: CacheStatus::Hit,
                    remaining_tokens: remaining,
                });
            }
            Lookup::Miss => CacheStatus::Miss,
            Lookup::Bypass => CacheStatus::Bypass,
        };
        let answer = self.ask_whole(context, &mut admission, native).await;
        let (answer, native_body) = admission.held.release_on_error(answer).await?;
        let mut outcome = self
            .settle_whole(context, admission, answer, cache_status)
            .await?;
        if let Some(native_body) = native_body {
            outcome.answer = Answer::from_tree(native_body);
        }
        Ok(outcome)
    }

    /// The model API's whole answer in the neutral chat form and, for a native call, the
    /// upstream's own answer parsed.
    async fn ask_whole(
        &self,
        context: &CallContext,
        admission: &mut ChatAdmission,
        native: Option<&NativeCall>,
    ) -> Result<(Answer, Option<Value>), GatewayError> {
        let (operation, body) = match native {
            Some(native) => (native.operation, native.body_for(admission, false)?),
            None => (Operation::Chat, serialize(&admission.request)?),
        };
        let call = self.model_api_for(context.api).whole(
            operation,
            &admission.model,
            body,
            self.deadline(),
        );
        let call = telemetry::recording_attempts(context.record.as_ref(), call);
        let bytes = admission.held.sending(call).await?;
        Ok(match native {
            Some(native) => {
                let answer = parse_answer(&bytes)?;
                let chat = Answer::from_tree((native.answer_as_chat)(&answer));
                (chat, Some(answer))
            }
            None => (Answer::from_upstream(bytes)?, None),
        })
    }

    /// A streamed chat completion. Usage is reconciled when the stream ends.
    pub async fn chat_stream(
        &self,
        context: &CallContext,
        request: Map<String, Value>,
    ) -> Result<ChatStream, GatewayError> {
        self.chat_stream_via(context, request, None).await
    }

    /// A streamed chat call, sent as chat completions or, with `native`, in the caller's own
    /// protocol (its stream read back as chat chunks).
    pub(super) async fn chat_stream_via(
        &self,
        context: &CallContext,
        mut request: Map<String, Value>,
        native: Option<&NativeCall>,
    ) -> Result<ChatStream, GatewayError> {
        let started = Instant::now();
        let model = self.validate_chat(context.api, &mut request, true)?;
        let span = self.call_span(Operation::Chat, &model);
        let opened = self
            .open_chat_stream(context, model, request, started, native)
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
        native: Option<&NativeCall>,
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
        let opened = self.open_stream(context, &mut admission, native).await;
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
        native: Option<&NativeCall>,
    ) -> Result<ByteStream, GatewayError> {
        let (operation, body) = match native {
            Some(native) => (native.operation, native.body_for(admission, true)?),
            None => (Operation::Chat, serialize(&admission.request)?),
        };
        let call = self.model_api_for(context.api).stream(
            operation,
            &admission.model,
            body,
            self.deadline(),
        );
        let call = telemetry::recording_attempts(context.record.as_ref(), call);
        let chunks = admission.held.sending(call).await?;
        Ok(match native {
            Some(native) => (native.stream_as_chat)(chunks),
            None => chunks,
        })
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
            let elapsed = started.elapsed();
            let provider = self.model_api.provider_name();
            let (operation, outcome) = (Operation::Embeddings, error.code());
            let model = &admission.model;
            self.metrics
                .call_duration(context, operation, provider, model, outcome, elapsed);
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
                    CacheLookup::Unconfirmed(candidate) => {
                        if self.confirm(context, &candidate).await {
                            Lookup::Hit(candidate.answer)
                        } else {
                            Lookup::Miss
                        }
                    }
                    CacheLookup::Miss => Lookup::Miss,
                    CacheLookup::Bypass => Lookup::Bypass,
                }
            }
        };
        let (label, cache_status) = match &status {
            Lookup::Hit(body) => {
                let saved = Usage::from_body(body).map_or(0, |usage| usage.total_tokens);
                self.stats.cache(CacheStatus::Hit, saved);
                ("hit", CacheStatus::Hit)
            }
            Lookup::Miss => {
                self.stats.cache(CacheStatus::Miss, 0);
                ("miss", CacheStatus::Miss)
            }
            Lookup::Bypass => {
                self.stats.cache(CacheStatus::Bypass, 0);
                ("bypass", CacheStatus::Bypass)
            }
        };
        self.metrics.cache_status(context, Operation::Chat, label);
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
        let label = self.metrics.label(model);
        telemetry::model_call_span(operation, provider, label, model)
    }
}

/// A cached answer's facts, for the span and the access log (it cost no tokens).
fn cached_answer(context: &CallContext, model: &str, body: &Value, remaining: u64) {
    telemetry::record_answer(|| body);
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

pub(super) fn serialize(request: &Map<String, Value>) -> Result<Bytes, GatewayError> {
    serde_json::to_vec(request)
        .map(Bytes::from)
        .map_err(|e| GatewayError::InvalidRequest(format!("request cannot be serialized: {e}")))
}

//! A streamed answer relayed to its consumer, then settled like a whole one: reconcile →
//! metrics → ledger → content safety on the answer → cache store.

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use serde_json::{Map, Value};
use tokio::{sync::mpsc, time::Instant};
use tracing::{Instrument, instrument::WithSubscriber};

use super::{
    ChatStream, Gateway, StreamEvent,
    admission::{Admitted, ChatAdmission},
    settlement::Accounting,
};
use crate::{
    assemble::AssembledAnswer,
    cache::{CacheStatus, ResponseCache},
    context::{CacheDirective, CallContext, Operation},
    error::GatewayError,
    model_api::ByteStream,
    policy::{
        content_safety::{ContentSafety, Direction},
        governance::{CompletionLimit, StreamMeter},
    },
    tokens,
    upstream::sse::SseParser,
    usage::Usage,
};

/// How a stream that is about to be relayed began.
pub(super) struct StreamStart {
    pub cache_status: CacheStatus,
    pub client_wants_usage: bool,
    pub started: Instant,
}

impl Gateway {
    /// Starts relaying `chunks` in a task of its own; the consumer reads the returned stream.
    pub(super) fn relay(
        &self,
        context: &CallContext,
        admission: ChatAdmission,
        chunks: ByteStream,
        start: StreamStart,
    ) -> ChatStream {
        let remaining_tokens = admission.held.remaining_if_all_used();
        let store_in_cache = (start.cache_status == CacheStatus::Miss
            || context.cache == CacheDirective::NoCache)
            .then(|| self.storable_cache(context, admission.cacheable()))
            .flatten()
            .map(|cache| (cache, admission.request));
        let model = admission.model;
        let (sender, events) = mpsc::channel(32);
        let relay = StreamRelay {
            context: context.clone(),
            model: model.clone(),
            prompt_estimate: admission.prompt_estimate,
            limit: admission.limit,
            client_wants_usage: start.client_wants_usage,
            idle_timeout: self.stream_idle_timeout,
            send_timeout: self.stream_send_timeout,
            store_in_cache,
            content_safety: self.content_safety.clone(),
            started: start.started,
            drain_deadline: start.started + self.call_deadline,
        };
        let accounting = self.accounting(self.model_api_for(context.api).provider_name());
        // The call's span (current here) lasts until the stream is settled.
        let run = relay.run(chunks, admission.held, accounting, sender);
        tokio::spawn(run.in_current_span().with_current_subscriber());
        ChatStream {
            model,
            cache: start.cache_status,
            remaining_tokens,
            events,
        }
    }
}

/// Relays one upstream stream to its consumer, then settles, accounts and caches.
struct StreamRelay {
    context: CallContext,
    model: String,
    prompt_estimate: u64,
    limit: CompletionLimit,
    client_wants_usage: bool,
    idle_timeout: Duration,
    send_timeout: Duration,
    store_in_cache: Option<(Arc<dyn ResponseCache>, Map<String, Value>)>,
    content_safety: Option<Arc<ContentSafety>>,
    started: Instant,
    /// How long the upstream is still read once the consumer has gone: the call's deadline.
    drain_deadline: Instant,
}

type EventSender = mpsc::Sender<Result<StreamEvent, GatewayError>>;

/// What the relay does after one upstream event.
enum Flow {
    Continue,
    /// The upstream said `[DONE]`.
    Done,
    /// Stop reading: the stream failed, ran past its limit, or lost its consumer.
    Stop,
}

/// What relaying an upstream stream came to.
struct Relayed {
    assembled: AssembledAnswer,
    /// The usage the upstream reported, if it did.
    reported: Option<Usage>,
    /// Completion tokens counted as the chunks went by.
    counted: u64,
    failure: Option<GatewayError>,
    /// The consumer went away (or stopped reading); the upstream is still read to its end, so
    /// the usage it reports is what gets charged.
    consumer_gone: bool,
    /// Reading after the consumer went away ran into the deadline: usage is counted, not
    /// reported.
    drain_cut: bool,
}

impl StreamRelay {
    async fn run(
        self,
        chunks: ByteStream,
        mut held: Admitted,
        accounting: Accounting,
        sender: EventSender,
    ) {
        // `relay` takes the stream and drops it when it returns, which closes the upstream
        // connection if it is still open; the rest never waits on the upstream.
        let mut relayed = held.sending(self.relay(chunks, &sender)).await;
        let usage = self.usage(&relayed);
        held.settle_usage(usage).await;
        accounting
            .record(&self.context, Operation::Chat, &self.model, usage)
            .await;
        self.screen_answer(&mut relayed).await;
        if let Some(failure) = &relayed.failure {
            accounting.stats.refused_by(failure);
        }
        let outcome = relayed.failure.as_ref().map_or("ok", GatewayError::code);
        accounting.metrics.call_duration(
            &self.context,
            Operation::Chat,
            accounting.provider,
            &self.model,
            outcome,
            self.started.elapsed(),
        );
        self.finish(relayed, usage, &sender).await;
    }

    /// The usage the upstream reported, else counted: the whole text's count when the stream
    /// ended, the running count if it was cut off.
    fn usage(&self, relayed: &Relayed) -> Usage {
        relayed.reported.unwrap_or_else(|| {
            let text = tokens::count(&self.model, &relayed.assembled.text());
            let completion = if relayed.failure.is_some() || relayed.drain_cut {
                text.max(relayed.counted)
            } else {
                text
            };
            Usage::new(self.prompt_estimate, completion)
        })
    }

    /// Content safety on the streamed answer. The chunks have gone out already; a refused
    /// answer still must not end as a success (nor be cached), so the client is told in place
    /// of the normal end.
    async fn screen_answer(&self, relayed: &mut Relayed) {
        if relayed.failure.is_none()
            && !relayed.consumer_gone
            && let Some(safety) = &self.content_safety
            && let Err(blocked) = safety
                .check(
                    &self.context,
                    Direction::Response,
                    &relayed.assembled.text(),
                )
                .await
        {
            relayed.failure = Some(blocked);
        }
    }

    /// Reads the upstream stream and forwards its chunks until it ends, fails or runs past its
    /// limit. A consumer that goes away stops the forwarding, not the reading (within the
    /// call's deadline): the usage at the end is still the upstream's own.
    async fn relay(&self, mut chunks: ByteStream, sender: &EventSender) -> Relayed {
        let mut parser = SseParser::default();
        let mut meter = StreamMeter::new(&self.model, self.limit);
        let mut relayed = Relayed {
            assembled: AssembledAnswer::default(),
            reported: None,
            counted: 0,
            failure: None,
            consumer_gone: false,
            drain_cut: false,
        };
        let mut finished = false;
        'read: while !finished {
            let read = if relayed.consumer_gone {
                let draining = self.next_bytes(&mut chunks);
                match tokio::time::timeout_at(self.drain_deadline, draining).await {
                    Ok(read) => read,
                    Err(_) => {
                        relayed.drain_cut = true;
                        break;
                    }
                }
            } else {
                self.next_bytes(&mut chunks).await
            };
            let bytes = match read {
                Ok(Some(bytes)) => bytes,
                Ok(None) => break,
                Err(error) => {
                    relayed.failure = Some(error);
                    break;
                }
            };
            parser.push(&bytes);
            while let Some(data) = parser.next_data() {
                match self.pass_on(&data, &mut meter, &mut relayed, sender).await {
                    Flow::Continue => {}
                    Flow::Done => {
                        finished = true;
                        break;
                    }
                    Flow::Stop => break 'read,
                }
            }
        }
        if !finished
            && relayed.failure.is_none()
            && !relayed.consumer_gone
            && !relayed.assembled.finished()
        {
            relayed.failure = Some(GatewayError::UpstreamFailed {
                summary: "the upstream stream ended before it finished".to_owned(),
            });
        }
        relayed
    }

    /// The next bytes of the upstream stream; `None` at its end; an error when it broke off or
    /// stayed silent for the idle timeout.
    async fn next_bytes(
        &self,
        chunks: &mut ByteStream,
    ) -> Result<Option<bytes::Bytes>, GatewayError> {
        match tokio::time::timeout(self.idle_timeout, chunks.next()).await {
            Ok(Some(Ok(bytes))) => Ok(Some(bytes)),
            Ok(None) => Ok(None),
            Ok(Some(Err(error))) => Err(error),
            Err(_) => Err(GatewayError::Timeout {
                deadline: self.idle_timeout,
            }),
        }
    }

    /// Takes in one event of the upstream stream and passes it on to the consumer.
    async fn pass_on(
        &self,
        data: &str,
        meter: &mut StreamMeter,
        relayed: &mut Relayed,
        sender: &EventSender,
    ) -> Flow {
        if data.trim() == "[DONE]" {
            return Flow::Done;
        }
        let Ok(chunk) = serde_json::from_str::<Value>(data) else {
            tracing::debug!("skipping a stream event that is not JSON");
            return Flow::Continue;
        };
        if let Some(usage) = Usage::from_body(&chunk) {
            relayed.reported = Some(usage);
        }
        let over_limit = meter.absorb(&chunk);
        relayed.counted = meter.counted();
        if over_limit {
            relayed.failure = Some(GatewayError::CompletionLimitExceeded {
                limit: self.limit.total(),
            });
            return Flow::Stop;
        }
        relayed.assembled.absorb(&chunk);
        let usage_only = chunk
            .get("choices")
            .and_then(Value::as_array)
            .is_some_and(Vec::is_empty);
        if relayed.consumer_gone || (usage_only && !self.client_wants_usage) {
            return Flow::Continue;
        }
        if !self.deliver(sender, Ok(StreamEvent::Chunk(chunk))).await {
            relayed.consumer_gone = true;
        }
        Flow::Continue
    }

    /// Ends the consumer's stream: the failure, or the cache store and the normal end.
    async fn finish(self, relayed: Relayed, usage: Usage, sender: &EventSender) {
        if relayed.consumer_gone {
            return;
        }
        if let Some(error) = relayed.failure {
            self.deliver(sender, Err(error)).await;
            return;
        }
        if let Some((cache, request)) = &self.store_in_cache {
            let body = relayed.assembled.into_completion(&self.model, usage);
            cache
                .store(&self.context, Operation::Chat, &self.model, request, &body)
                .await;
        }
        self.deliver(sender, Ok(StreamEvent::Done { usage })).await;
    }

    /// Hands one event to the consumer; false when it is gone, or took nothing for the send
    /// timeout (a client that stopped reading would otherwise hold the upstream open forever).
    async fn deliver(
        &self,
        sender: &EventSender,
        event: Result<StreamEvent, GatewayError>,
    ) -> bool {
        match tokio::time::timeout(self.send_timeout, sender.send(event)).await {
            Ok(sent) => sent.is_ok(),
            Err(_) => {
                tracing::info!(
                    request_id = %self.context.request_id,
                    "stream consumer took no chunk within the send timeout; closing the upstream"
                );
                false
            }
        }
    }
}

/// A whole completion replayed as stream chunks (for a cache hit on a stream request).
pub fn completion_as_chunks(body: &Value, include_usage: bool) -> Vec<Value> {
    let id = body
        .get("id")
        .cloned()
        .unwrap_or(Value::from("chatcmpl-cached"));
    let model = body.get("model").cloned().unwrap_or(Value::Null);
    let created = body.get("created").cloned().unwrap_or(Value::from(0));
    let chunk = |choices: Value| serde_json::json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": model, "choices": choices});
    let message = body
        .pointer("/choices/0/message")
        .cloned()
        .unwrap_or_default();
    let finish_reason = body
        .pointer("/choices/0/finish_reason")
        .cloned()
        .unwrap_or(Value::from("stop"));
    let mut delta = serde_json::json!({"role": "assistant"});
    if let Some(content) = message.get("content").filter(|c| c.is_string()) {
        delta["content"] = content.clone();
    }
    if let Some(calls) = message.get("tool_calls").and_then(Value::as_array) {
        delta["tool_calls"] = calls
            .iter()
            .enumerate()
            .map(|(index, call)| {
                let mut call = call.clone();
                call["index"] = Value::from(index);
                call
            })
            .collect();
    }
    let mut chunks = vec![
        chunk(serde_json::json!([{"index": 0, "delta": delta, "finish_reason": null}])),
        chunk(serde_json::json!([{"index": 0, "delta": {}, "finish_reason": finish_reason}])),
    ];
    if include_usage {
        let mut usage_chunk = chunk(serde_json::json!([]));
        usage_chunk["usage"] = serde_json::to_value(Usage::default()).unwrap_or_default();
        chunks.push(usage_chunk);
    }
    chunks
}

//! One agent turn: model call, tool calls, repeat until the model answers in text.
//!
//! The same loop serves the JSON route and the streaming route; when a sender is given, model
//! calls stream and every tool call and text delta is reported as it happens.

use tokio::time::Instant;

use futures::StreamExt;
use gateway_client::{
    CacheDirective, CacheStatus, CallContext, StreamEvent, Usage, assemble::AssembledAnswer,
};
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;
use tracing::Instrument;

use crate::{
    Agent, AgentError, CacheCounts, ChatRequest, PreparedTurn, ToolCallRecord, TurnResult,
    answer::{AssistantTurn, RequestedCall, parse_arguments},
    instructions::{SYSTEM_INSTRUCTIONS, TOOL_DEFINITIONS},
    routing::{ToolCaller, ToolOutcome},
};

/// What the streaming route reports while a turn runs.
#[derive(Debug, Clone)]
pub enum AgentEvent {
    /// First, always: the session the turn is kept in (`None`: the store could not start one).
    Session(Option<String>),
    ToolCall(ToolCallRecord),
    Delta(String),
    Done(TurnResult),
    Error(AgentError),
}

/// Said to a model that answered with nothing, once, before giving up on it.
const NUDGE: &str = "Your last answer was empty. Answer the user's question now in plain text, \
using the tool results above.";
/// Said when the tool budget is spent, for one last answer without tools.
const WRAP_UP: &str = "You have used all your tool calls for this turn. Answer the user's \
question now in plain text, from the tool results above.";

/// Between the texts of two model answers in one reply.
const SEPARATOR: &str = "\n\n";

type Events<'a> = Option<&'a mpsc::Sender<AgentEvent>>;

impl Agent {
    /// Checks the request and opens its session: the one it names (unknown, expired or
    /// another owner's is `SessionNotFound`), or a new one. Call before answering, so these
    /// refusals are plain 4xx answers even on the streaming route.
    pub async fn begin(
        &self,
        context: &CallContext,
        request: ChatRequest,
    ) -> Result<PreparedTurn, AgentError> {
        request.validate()?;
        let session = self
            .sessions
            .open(&context.subscription, request.session_id.as_deref())
            .await?;
        Ok(PreparedTurn {
            request,
            session,
            started_at_ms: self.sessions.now_ms(),
        })
    }

    /// Runs one turn to its text answer, within the turn deadline, and keeps it in its session.
    pub async fn run(
        &self,
        context: &CallContext,
        caller: &ToolCaller,
        turn: PreparedTurn,
    ) -> Result<TurnResult, AgentError> {
        let deadline = self.config.turn_deadline;
        async {
            let span = self.agent_span(turn.session.id.as_deref());
            let result =
                tokio::time::timeout(deadline, self.run_loop(context, caller, &turn, None))
                    .instrument(span.clone())
                    .await
                    .unwrap_or(Err(AgentError::Timeout(deadline)));
            record_turn(&span, &result);
            self.keep(context, &turn, result?).await
        }
        .await
    }

    /// The `invoke_agent` span of one turn (OpenTelemetry's GenAI agent span), with the
    /// session's id (an id, never anything the session holds).
    fn agent_span(&self, session: Option<&str>) -> tracing::Span {
        tracing::info_span!(
            target: "otel",
            "gen_ai.agent",
            otel.name = "invoke_agent tollgate",
            otel.kind = "internal",
            otel.status_code = tracing::field::Empty,
            gen_ai.operation.name = "invoke_agent",
            gen_ai.agent.name = "tollgate",
            gen_ai.request.model = self.gateway.chat_model(),
            gen_ai.response.model = tracing::field::Empty,
            gen_ai.usage.input_tokens = tracing::field::Empty,
            gen_ai.usage.output_tokens = tracing::field::Empty,
            error.type = tracing::field::Empty,
            tollgate.tool_routing = self.tools.label(),
            session.id = session,
        )
    }

    /// Runs one turn, streaming its events to `events`: first `Session`, last `Done` or
    /// `Error`. Dropping the receiver cancels the turn at its next step.
    pub async fn run_streaming(
        &self,
        context: &CallContext,
        caller: &ToolCaller,
        turn: PreparedTurn,
        events: mpsc::Sender<AgentEvent>,
    ) {
        let deadline = self.config.turn_deadline;
        async {
            let _ = events
                .send(AgentEvent::Session(turn.session.id.clone()))
                .await;
            let span = self.agent_span(turn.session.id.as_deref());
            let result = tokio::time::timeout(
                deadline,
                self.run_loop(context, caller, &turn, Some(&events)),
            )
            .instrument(span.clone())
            .await
            .unwrap_or(Err(AgentError::Timeout(deadline)));
            record_turn(&span, &result);
            let outcome = match result {
                Ok(result) => self.keep(context, &turn, result).await,
                Err(error) => Err(error),
            };
            let last = match outcome {
                Ok(result) => AgentEvent::Done(result),
                Err(error) => AgentEvent::Error(error),
            };
            let _ = events.send(last).await;
        }
        .await;
    }

    /// Appends a finished turn to its session. The answer is the caller's either way: a store
    /// that fails now costs the session this turn, not the caller the answer.
    async fn keep(
        &self,
        context: &CallContext,
        turn: &PreparedTurn,
        mut result: TurnResult,
    ) -> Result<TurnResult, AgentError> {
        if let Some(id) = &turn.session.id {
            let kept = self
                .sessions
                .record(
                    &context.subscription,
                    id,
                    &turn.request.message,
                    &result,
                    turn.started_at_ms,
                )
                .await;
            if kept.is_err() {
                tracing::warn!("an agent turn could not be kept in its session");
            }
        }
        result.session_id = turn.session.id.clone();
        Ok(result)
    }

    async fn run_loop(
        &self,
        context: &CallContext,
        caller: &ToolCaller,
        turn: &PreparedTurn,
        events: Events<'_>,
    ) -> Result<TurnResult, AgentError> {
        let request = &turn.request;
        let mut trace = Trace::default();
        let mut messages = vec![json!({"role": "system", "content": SYSTEM_INSTRUCTIONS})];
        for entry in &request.history {
            messages.push(json!({"role": entry.role, "content": entry.content}));
        }
        messages.extend(self.session_context(context, turn, &mut trace).await?);
        messages.push(json!({"role": "user", "content": request.message}));

        let mut context = context.clone();
        let mut kept_text: Vec<String> = Vec::new();
        let mut nudged = false;
        for _ in 0..self.config.max_iterations.max(1) {
            let turn = self
                .model_turn(&context, &messages, true, events, &mut trace)
                .await?;
            if !turn.tool_calls.is_empty() {
                if !turn.content.trim().is_empty() {
                    kept_text.push(turn.content.trim().to_owned());
                }
                let records = self.run_tools(&turn.tool_calls, caller, events).await;
                push_tool_round(&mut messages, &turn, &records);
                trace.tool_calls.extend(records);
                continue;
            }
            if turn.content.trim().is_empty() {
                if nudged {
                    return Err(AgentError::EmptyAnswer);
                }
                nudged = true;
                messages.push(json!({"role": "system", "content": NUDGE}));
                // Ask the model itself again, not the response cache: the cache may hold this
                // very empty answer, and a system message such as the nudge need not change
                // how it matches the conversation.
                if context.cache == CacheDirective::Use {
                    context.cache = CacheDirective::NoCache;
                }
                continue;
            }
            kept_text.push(turn.content.trim().to_owned());
            return Ok(trace.finish(kept_text.join(SEPARATOR)));
        }

        // The tool budget is spent (a model stuck calling tools): one last call without tools.
        tracing::info!(
            iterations = self.config.max_iterations,
            "agent hit its iteration limit; asking for a final answer"
        );
        messages.push(json!({"role": "system", "content": WRAP_UP}));
        let turn = self
            .model_turn(&context, &messages, false, events, &mut trace)
            .await?;
        let reply = if turn.content.trim().is_empty() {
            let fallback = format!(
                "I stopped after {} rounds of tool calls without reaching an answer. \
                 The tool results are listed in tool_calls.",
                self.config.max_iterations
            );
            // Streamed too, so the deltas still spell out the whole reply.
            if let Some(events) = events {
                let piece = trace.streamed.piece(&fallback);
                trace.streamed.end_answer();
                let _ = events.send(AgentEvent::Delta(piece)).await;
            }
            fallback
        } else {
            turn.content.trim().to_owned()
        };
        kept_text.push(reply);
        Ok(trace.finish(kept_text.join(SEPARATOR)))
    }

    /// One model call, whole or streamed, read into an [`AssistantTurn`].
    async fn model_turn(
        &self,
        context: &CallContext,
        messages: &[Value],
        offer_tools: bool,
        events: Events<'_>,
        trace: &mut Trace,
    ) -> Result<AssistantTurn, AgentError> {
        let mut request = Map::new();
        request.insert("messages".to_owned(), Value::Array(messages.to_vec()));
        if offer_tools {
            request.insert("tools".to_owned(), TOOL_DEFINITIONS.clone());
        }
        let Some(events) = events else {
            let outcome = self.gateway.chat(context, request).await?;
            // The upstream's own model name is the more precise one (a dated version).
            let model = outcome
                .answer
                .tree()
                .get("model")
                .and_then(Value::as_str)
                .unwrap_or(&outcome.model);
            trace.record_call(model, outcome.usage, outcome.cache);
            return Ok(AssistantTurn::from_completion(outcome.answer.tree()));
        };

        let mut stream = self.gateway.chat_stream(context, request).await?;
        let mut assembled = AssembledAnswer::default();
        let mut usage = Usage::default();
        while let Some(event) = stream.next().await {
            match event? {
                StreamEvent::Chunk(chunk) => {
                    let piece = chunk
                        .pointer("/choices/0/delta/content")
                        .and_then(Value::as_str)
                        .map(|text| trace.streamed.piece(text))
                        .unwrap_or_default();
                    if !piece.is_empty()
                        && events.send(crate::AgentEvent::Delta(piece)).await.is_err()
                    {
                        // The client left: stop here; dropping the stream cancels the call.
                        return Err(AgentError::Cancelled);
                    }
                    assembled.absorb(&chunk);
                }
                StreamEvent::Done { usage: reported } => usage = reported,
            }
        }
        trace.streamed.end_answer();
        trace.record_call(&stream.model, usage, stream.cache);
        let body = assembled.into_completion(&stream.model, usage);
        Ok(AssistantTurn::from_completion(&body))
    }

    /// Runs one assistant turn's tool calls concurrently, each within the tool timeout.
    async fn run_tools(
        &self,
        calls: &[RequestedCall],
        caller: &ToolCaller,
        events: Events<'_>,
    ) -> Vec<ToolCallRecord> {
        let runs = calls.iter().map(|call| {
            let span = self.tool_span(call);
            self.run_tool(call, caller).instrument(span)
        });
        let records = futures::future::join_all(runs).await;
        if let Some(events) = events {
            for record in &records {
                let _ = events.send(AgentEvent::ToolCall(record.clone())).await;
            }
        }
        records
    }

    /// The `execute_tool` span of one tool call; a call routed over MCP also carries the MCP
    /// client attributes (the conventions' advice: one span, not two).
    fn tool_span(&self, call: &RequestedCall) -> tracing::Span {
        // Tool names come from the model: only known ones name spans.
        let tool = tools::spec(&call.name).map_or("unknown", |s| s.name);
        let over_mcp = matches!(self.tools, crate::ToolRouter::Mcp(_));
        tracing::info_span!(
            target: "otel",
            "gen_ai.tool",
            otel.name = %format_args!("execute_tool {tool}"),
            otel.kind = if over_mcp { "client" } else { "internal" },
            otel.status_code = tracing::field::Empty,
            gen_ai.operation.name = "execute_tool",
            gen_ai.tool.name = tool,
            gen_ai.tool.type = "function",
            gen_ai.tool.call.id = call.id.as_str(),
            mcp.method.name = over_mcp.then_some("tools/call"),
            error.type = tracing::field::Empty,
        )
    }

    /// One tool call, within the tool timeout, as reported to the caller.
    async fn run_tool(&self, call: &RequestedCall, caller: &ToolCaller) -> ToolCallRecord {
        {
            let started = Instant::now();
            let (arguments, outcome) = match parse_arguments(&call.arguments) {
                Ok(arguments) => {
                    let shown = Value::Object(arguments.clone());
                    let outcome = match tokio::time::timeout(
                        self.config.tool_timeout,
                        self.tools.call(&call.name, arguments, caller),
                    )
                    .await
                    {
                        Ok(outcome) => outcome,
                        Err(_) => ToolOutcome::error(format!(
                            "tool `{}` did not answer within {} s",
                            call.name,
                            self.config.tool_timeout.as_secs()
                        )),
                    };
                    (shown, outcome)
                }
                Err(reason) => (
                    Value::String(call.arguments.clone()),
                    ToolOutcome::error(reason),
                ),
            };
            metrics::counter!(
                "agent_tool_calls_total",
                "tool" => tools::spec(&call.name).map_or("unknown", |s| s.name),
                "routed_via" => self.tools.label(),
                "is_error" => if outcome.is_error { "true" } else { "false" },
            )
            .increment(1);
            if outcome.is_error {
                let span = tracing::Span::current();
                span.record("error.type", "tool_error");
                span.record("otel.status_code", "error");
            }
            ToolCallRecord {
                name: call.name.clone(),
                arguments,
                result: outcome.result,
                routed_via: self.tools.label(),
                duration_ms: started.elapsed().as_secs_f64() * 1000.0,
                is_error: outcome.is_error,
            }
        }
    }
}

/// A turn's totals, or its error, on its `invoke_agent` span.
fn record_turn(span: &tracing::Span, outcome: &Result<TurnResult, AgentError>) {
    if span.is_disabled() {
        return;
    }
    match outcome {
        Ok(turn) => {
            span.record("gen_ai.response.model", turn.model.as_str());
            span.record("gen_ai.usage.input_tokens", turn.usage.prompt_tokens);
            span.record("gen_ai.usage.output_tokens", turn.usage.completion_tokens);
        }
        Err(error) => {
            span.record("error.type", error.code());
            span.record("otel.status_code", "error");
        }
    }
}

/// Appends the assistant's tool-call message and one tool message per result.
fn push_tool_round(messages: &mut Vec<Value>, turn: &AssistantTurn, records: &[ToolCallRecord]) {
    let calls: Vec<Value> = turn
        .tool_calls
        .iter()
        .map(|call| {
            json!({"id": call.id, "type": "function",
                   "function": {"name": call.name, "arguments": call.arguments}})
        })
        .collect();
    let content = if turn.content.is_empty() {
        Value::Null
    } else {
        Value::String(turn.content.clone())
    };
    messages.push(json!({"role": "assistant", "content": content, "tool_calls": calls}));
    for (call, record) in turn.tool_calls.iter().zip(records) {
        messages.push(json!({
            "role": "tool",
            "tool_call_id": call.id,
            "content": record.result.to_string(),
        }));
    }
}

/// What a turn has done so far.
#[derive(Default)]
pub(crate) struct Trace {
    tool_calls: Vec<ToolCallRecord>,
    usage: Usage,
    cache: CacheCounts,
    model: String,
    streamed: StreamedText,
}

impl Trace {
    pub(crate) fn record_call(&mut self, model: &str, usage: Usage, cache: CacheStatus) {
        self.usage.add(usage);
        match cache {
            CacheStatus::Hit => self.cache.hits += 1,
            CacheStatus::Miss => self.cache.misses += 1,
            CacheStatus::Bypass => {}
        }
        model.clone_into(&mut self.model);
    }

    fn finish(self, reply: String) -> TurnResult {
        TurnResult {
            reply,
            tool_calls: self.tool_calls,
            model: self.model,
            usage: self.usage,
            cache: self.cache,
            session_id: None,
        }
    }
}

/// Turns the text a model streams into `Delta` pieces that spell out exactly the reply the turn
/// ends with, as `run_loop` builds it: each answer trimmed, answers joined by [`SEPARATOR`].
/// Without this, a client rendering the deltas would show a different text from `done.reply`
/// (untrimmed whitespace, answers run together).
#[derive(Debug, Default)]
struct StreamedText {
    /// An earlier answer sent text: the next one starts with the separator.
    sent_before: bool,
    /// The current answer sent text, so its leading whitespace is behind it.
    started: bool,
    /// Whitespace held back until more text follows it in the same answer.
    held: String,
}

impl StreamedText {
    /// What to send for the next piece of the current answer (possibly nothing).
    fn piece(&mut self, text: &str) -> String {
        let text = if self.started {
            text
        } else {
            text.trim_start()
        };
        let body = text.trim_end();
        if body.is_empty() {
            if self.started {
                self.held.push_str(text);
            }
            return String::new();
        }
        let mut out = String::new();
        if !self.started {
            if self.sent_before {
                out.push_str(SEPARATOR);
            }
            self.started = true;
        }
        out.push_str(&std::mem::take(&mut self.held));
        out.push_str(body);
        self.held.push_str(&text[body.len()..]);
        out
    }

    /// The current answer is complete; its trailing whitespace is dropped.
    fn end_answer(&mut self) {
        self.sent_before |= self.started;
        self.started = false;
        self.held.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn streamed(answers: &[&[&str]]) -> String {
        let mut text = StreamedText::default();
        let mut out = String::new();
        for answer in answers {
            for piece in *answer {
                out.push_str(&text.piece(piece));
            }
            text.end_answer();
        }
        out
    }

    #[test]
    fn streamed_text_matches_the_joined_trimmed_answers() {
        let cases: [&[&[&str]]; 5] = [
            &[&["\n\n", " Hello", " there. ", "\n"]],
            &[&["Let me check."], &["  "], &["Done", ".  \n"]],
            &[&["a ", " ", "b"]],
            &[&[" "], &["\t"]],
            &[&["x"], &[], &[" y "]],
        ];
        for answers in cases {
            let expected: Vec<String> = answers
                .iter()
                .map(|pieces| pieces.concat().trim().to_owned())
                .filter(|text| !text.is_empty())
                .collect();
            assert_eq!(streamed(answers), expected.join(SEPARATOR), "{answers:?}");
        }
    }
}

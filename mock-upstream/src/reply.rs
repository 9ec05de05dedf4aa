//! Scripted behaviours of the mock upstream.

use std::time::Duration;

/// One scripted answer of the mock upstream.
///
/// Replies queued with [`MockUpstream::push`](crate::MockUpstream::push) are consumed by chat
/// completion requests, in order; replies queued with
/// [`MockUpstream::push_embeddings`](crate::MockUpstream::push_embeddings) by embeddings requests.
/// Every variant works for streamed and non-streamed requests; see each variant for how.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// A full chat completion with this assistant text, finish_reason "stop", and usage.
    ///
    /// Streamed as a role chunk, then the text split into chunks of a few words.
    Text(String),
    /// A chat completion whose assistant message has these tool calls (name, arguments JSON
    /// string), finish_reason "tool_calls", and optional accompanying text content.
    ///
    /// Streamed as `delta.tool_calls`: one chunk with index, id, type and name per call, then its
    /// arguments in one or two pieces.
    ToolCalls {
        content: Option<String>,
        calls: Vec<(String, String)>,
    },
    /// Any JSON body with status 200 (for messy-model cases: legacy function_call, empty content,
    /// truncation with finish_reason "length"...). Sent as `application/json` even when the
    /// request asked for a stream.
    RawJson(serde_json::Value),
    /// Raw server-sent events: each string is sent as `data: <string>\n\n`, exactly, and nothing
    /// else (add `"[DONE]"` yourself if you want it). For malformed-stream cases.
    RawSse(Vec<String>),
    /// An HTTP error status with an OpenAI-style error body `{"error":{"message","type","code"}}`
    /// and optional Retry-After seconds header.
    Status {
        status: u16,
        retry_after: Option<u64>,
        message: String,
    },
    /// Wait this long before answering with the next behaviour (the inner reply). Used to
    /// simulate timeouts.
    Delay(Duration, Box<Reply>),
    /// For streaming requests: send these text deltas as chunks, then if `fail_after` is `Some(n)`
    /// drop the connection abruptly after n content chunks (no finish chunk, no `[DONE]`);
    /// otherwise finish normally (finish_reason chunk, usage chunk when
    /// `stream_options.include_usage` is true, then `data: [DONE]`).
    ///
    /// A non-streamed request gets the deltas joined into one completion, or, with `fail_after`
    /// set, a 200 response whose body breaks off before any byte of JSON.
    Stream {
        deltas: Vec<String>,
        fail_after: Option<usize>,
    },
    /// A runaway model: `delta` as a content chunk `chunks` times, whatever the request's
    /// `max_tokens`, then a normal end (finish chunk, usage chunk when asked, `[DONE]`). The
    /// chunks are made as they are sent, so a flood of millions costs no memory up front. A
    /// flood whose reader leaves before its end is counted by
    /// [`MockUpstream::dropped_streams`](crate::MockUpstream::dropped_streams).
    ///
    /// A non-streamed request gets the deltas joined into one completion.
    Flood { delta: String, chunks: usize },
    /// Explicit usage override wrapped around another reply: the reported usage numbers. The
    /// outermost override wins.
    WithUsage {
        prompt_tokens: u64,
        completion_tokens: u64,
        reply: Box<Reply>,
    },
}

impl Reply {
    /// [`Reply::Text`].
    pub fn text(text: impl Into<String>) -> Self {
        Self::Text(text.into())
    }

    /// One tool call, no text content.
    pub fn tool_call(name: impl Into<String>, arguments: impl Into<String>) -> Self {
        Self::ToolCalls {
            content: None,
            calls: vec![(name.into(), arguments.into())],
        }
    }

    /// Parallel tool calls in one assistant turn, no text content.
    pub fn tool_calls<N, A>(calls: impl IntoIterator<Item = (N, A)>) -> Self
    where
        N: Into<String>,
        A: Into<String>,
    {
        Self::ToolCalls {
            content: None,
            calls: calls
                .into_iter()
                .map(|(name, arguments)| (name.into(), arguments.into()))
                .collect(),
        }
    }

    /// [`Reply::RawJson`].
    pub fn raw_json(body: serde_json::Value) -> Self {
        Self::RawJson(body)
    }

    /// An error status with a default message and no Retry-After
    /// (see [`with_retry_after`](Self::with_retry_after) and [`with_message`](Self::with_message)).
    pub fn status(status: u16) -> Self {
        Self::Status {
            status,
            retry_after: None,
            message: default_status_message(status).to_owned(),
        }
    }

    /// A stream of these deltas that finishes normally.
    pub fn stream<S: Into<String>>(deltas: impl IntoIterator<Item = S>) -> Self {
        Self::Stream {
            deltas: deltas.into_iter().map(Into::into).collect(),
            fail_after: None,
        }
    }

    /// A stream of these deltas whose connection drops after `fail_after` content chunks.
    pub fn broken_stream<S: Into<String>>(
        deltas: impl IntoIterator<Item = S>,
        fail_after: usize,
    ) -> Self {
        Self::Stream {
            deltas: deltas.into_iter().map(Into::into).collect(),
            fail_after: Some(fail_after),
        }
    }

    /// [`Reply::Flood`].
    pub fn flood(delta: impl Into<String>, chunks: usize) -> Self {
        Self::Flood {
            delta: delta.into(),
            chunks,
        }
    }

    /// Sets the Retry-After seconds of a [`Reply::Status`] (also through `Delay`/`WithUsage`
    /// wrappers). Other replies are returned unchanged.
    #[must_use]
    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        if let Some(Self::Status { retry_after, .. }) = self.innermost_mut() {
            *retry_after = Some(seconds);
        }
        self
    }

    /// Sets the error message of a [`Reply::Status`] (also through `Delay`/`WithUsage`
    /// wrappers). Other replies are returned unchanged.
    #[must_use]
    pub fn with_message(mut self, text: impl Into<String>) -> Self {
        if let Some(Self::Status { message, .. }) = self.innermost_mut() {
            *message = text.into();
        }
        self
    }

    /// Wraps this reply in [`Reply::Delay`].
    #[must_use]
    pub fn delayed(self, delay: Duration) -> Self {
        Self::Delay(delay, Box::new(self))
    }

    /// Wraps this reply in [`Reply::WithUsage`].
    #[must_use]
    pub fn with_usage(self, prompt_tokens: u64, completion_tokens: u64) -> Self {
        Self::WithUsage {
            prompt_tokens,
            completion_tokens,
            reply: Box::new(self),
        }
    }

    fn innermost_mut(&mut self) -> Option<&mut Self> {
        let mut current = self;
        loop {
            match current {
                Self::Delay(_, inner) | Self::WithUsage { reply: inner, .. } => {
                    current = inner.as_mut();
                }
                other => return Some(other),
            }
        }
    }
}

pub(crate) fn default_status_message(status: u16) -> &'static str {
    match status {
        400 => "Bad request (mock upstream).",
        401 => "Incorrect API key provided (mock upstream).",
        403 => "Forbidden (mock upstream).",
        404 => "The model does not exist (mock upstream).",
        408 => "Request timed out (mock upstream).",
        429 => "Rate limit reached (mock upstream).",
        500 => "The server had an error while processing your request (mock upstream).",
        502 => "Bad gateway (mock upstream).",
        503 => "The engine is currently overloaded (mock upstream).",
        504 => "Gateway timeout (mock upstream).",
        _ => "Error (mock upstream).",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builders_reach_through_wrappers() {
        let reply = Reply::status(429)
            .delayed(Duration::from_millis(5))
            .with_usage(1, 2)
            .with_retry_after(7)
            .with_message("slow down");
        let Reply::WithUsage { reply, .. } = reply else {
            panic!("expected WithUsage");
        };
        let Reply::Delay(_, inner) = *reply else {
            panic!("expected Delay");
        };
        assert_eq!(
            *inner,
            Reply::Status {
                status: 429,
                retry_after: Some(7),
                message: "slow down".into()
            }
        );
    }

    #[test]
    fn with_retry_after_leaves_other_replies_alone() {
        assert_eq!(Reply::text("hi").with_retry_after(3), Reply::text("hi"));
    }
}

//! The HTTP client under the agent's MCP transport: reqwest, plus the trace context as headers.
//!
//! A tool call carries its trace context in `params._meta` (`traceparent`, `tracestate`, as
//! SEP-414 and OpenTelemetry's MCP conventions put it). rmcp sends each message from a worker
//! task of its own, with headers fixed when the client was made, so the headers are copied from
//! the message here: the MCP server and any HTTP proxy in between see the same trace.

use std::{collections::HashMap, sync::Arc};

use futures::stream::BoxStream;
use gateway_client::telemetry::{TRACEPARENT, TRACESTATE};
use http::{HeaderName, HeaderValue};
use rmcp::{
    model::ClientJsonRpcMessage,
    transport::streamable_http_client::{
        SseError, StreamableHttpClient, StreamableHttpError, StreamableHttpPostResponse,
        StreamableHttpResponseLimits,
    },
};
use sse_stream::Sse;

#[derive(Clone)]
pub struct TracedHttp(pub reqwest::Client);

type Result<T> = std::result::Result<T, StreamableHttpError<reqwest::Error>>;
type Headers = HashMap<HeaderName, HeaderValue>;

/// `headers` plus the message's `_meta` trace context, if it has one.
fn with_trace_headers(message: &ClientJsonRpcMessage, mut headers: Headers) -> Headers {
    let ClientJsonRpcMessage::Request(_) = message else {
        return headers;
    };
    let Ok(value) = serde_json::to_value(message) else {
        return headers;
    };
    for key in [TRACEPARENT, TRACESTATE] {
        let found = value
            .pointer(&format!("/params/_meta/{key}"))
            .and_then(serde_json::Value::as_str)
            .and_then(|text| HeaderValue::from_str(text).ok());
        if let Some(found) = found {
            headers.insert(HeaderName::from_static(key), found);
        }
    }
    headers
}

impl StreamableHttpClient for TracedHttp {
    type Error = reqwest::Error;

    async fn post_message(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        custom_headers: Headers,
    ) -> Result<StreamableHttpPostResponse> {
        let headers = with_trace_headers(&message, custom_headers);
        self.0
            .post_message(uri, message, session_id, auth_header, headers)
            .await
    }

    async fn post_message_with_max_sse_event_size(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        custom_headers: Headers,
        max_sse_event_size: usize,
    ) -> Result<StreamableHttpPostResponse> {
        let headers = with_trace_headers(&message, custom_headers);
        self.0
            .post_message_with_max_sse_event_size(
                uri,
                message,
                session_id,
                auth_header,
                headers,
                max_sse_event_size,
            )
            .await
    }

    async fn post_message_with_response_limits(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        custom_headers: Headers,
        limits: StreamableHttpResponseLimits,
    ) -> Result<StreamableHttpPostResponse> {
        let headers = with_trace_headers(&message, custom_headers);
        self.0
            .post_message_with_response_limits(
                uri,
                message,
                session_id,
                auth_header,
                headers,
                limits,
            )
            .await
    }

    async fn delete_session(
        &self,
        uri: Arc<str>,
        session_id: Arc<str>,
        auth_header: Option<String>,
        custom_headers: Headers,
    ) -> Result<()> {
        self.0
            .delete_session(uri, session_id, auth_header, custom_headers)
            .await
    }

    async fn get_stream(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        auth_header: Option<String>,
        custom_headers: Headers,
    ) -> Result<BoxStream<'static, std::result::Result<Sse, SseError>>> {
        self.0
            .get_stream(uri, session_id, last_event_id, auth_header, custom_headers)
            .await
    }

    async fn get_stream_with_max_sse_event_size(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        auth_header: Option<String>,
        custom_headers: Headers,
        max_sse_event_size: usize,
    ) -> Result<BoxStream<'static, std::result::Result<Sse, SseError>>> {
        self.0
            .get_stream_with_max_sse_event_size(
                uri,
                session_id,
                last_event_id,
                auth_header,
                custom_headers,
                max_sse_event_size,
            )
            .await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_requests_meta_trace_context_becomes_headers() {
        let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let message: ClientJsonRpcMessage = serde_json::from_value(serde_json::json!({
            "jsonrpc": "2.0", "id": 3, "method": "tools/call",
            "params": {"name": "echo", "arguments": {"message": "hi"},
                       "_meta": {"traceparent": parent, "tracestate": "rojo=1"}}
        }))
        .unwrap();
        let headers = with_trace_headers(&message, Headers::new());
        assert_eq!(headers[&HeaderName::from_static(TRACEPARENT)], parent);
        assert_eq!(headers[&HeaderName::from_static(TRACESTATE)], "rojo=1");
        let plain: ClientJsonRpcMessage = serde_json::from_value(serde_json::json!({
            "jsonrpc": "2.0", "id": 4, "method": "tools/list", "params": {}
        }))
        .unwrap();
        assert!(with_trace_headers(&plain, Headers::new()).is_empty());
    }
}

//! Every request's span and its access-log line.
//!
//! The span is named by the matched route, never the raw path. With export on it is
//! OpenTelemetry's HTTP server span (`POST /agent/chat`), continuing the caller's `traceparent`
//! and `tracestate`; with export off it is the plain `request` span the logs always had.
//!
//! The access-log line is written when the response body is done (or dropped: a client that
//! left), so a stream's line has its whole duration and its tokens. Handlers and the gateway
//! fill in the request's [`CallRecord`] (subscription, model, cache, tokens, backend,
//! attempts); nothing secret and no prompt text is in it.

use std::{
    convert::Infallible,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Instant,
};

use axum::{
    body::Body,
    extract::{MatchedPath, Request},
    response::Response,
};
use bytes::Bytes;
use futures::future::{BoxFuture, Either};
use gateway_client::telemetry::{CallRecord, TRACEPARENT, context_from_headers};
use http::{HeaderMap, Method};
use http_body::{Body as HttpBody, Frame, SizeHint};
use opentelemetry::trace::TraceContextExt;
use tower::{Layer, Service};
use tracing::{
    Dispatch, Instrument, Span,
    instrument::{Instrumented, WithSubscriber},
};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The request span's target: the OpenTelemetry layer takes it besides `otel`.
pub const REQUEST_TARGET: &str = "tollgate::request";
/// The access log's target.
pub const ACCESS_TARGET: &str = "access";

/// What the request layer does, from the server's telemetry.
#[derive(Clone, Default)]
pub struct RequestObserver {
    /// OpenTelemetry export is on: server spans, continued traces.
    pub tracing: bool,
    /// ACCESS_LOG=on and the logs take `info` lines: nothing is gathered for a line no one
    /// would read.
    pub access_log: bool,
    /// The subscriber requests run in when it is not the process's (a test's server).
    pub scoped: Option<Dispatch>,
}

/// The layer: span, record, access log. Router-level (`Router::layer`), so the matched route
/// is known.
#[derive(Clone, Default)]
pub struct ObserveLayer(pub RequestObserver);

impl<S> Layer<S> for ObserveLayer {
    type Service = Observe<S>;

    fn layer(&self, inner: S) -> Observe<S> {
        Observe {
            observer: self.0.clone(),
            inner,
        }
    }
}

/// See [`ObserveLayer`]. On the plain path (no export, no access log, the process's own
/// subscriber) the route's future is only instrumented: nothing boxed or allocated.
#[derive(Clone)]
pub struct Observe<S> {
    observer: RequestObserver,
    inner: S,
}

impl<S> Service<Request> for Observe<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Either<Instrumented<S::Future>, BoxFuture<'static, Result<Response, Infallible>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let observer = &self.observer;
        match observer.scoped.clone() {
            None if !observer.tracing && !observer.access_log => {
                // The plain path, as before telemetry: the logs' request span.
                let span = tracing::info_span!(
                    target: REQUEST_TARGET,
                    "request",
                    method = %request.method(),
                    route = route_of(&request),
                    subscription = tracing::field::Empty,
                    session.id = tracing::field::Empty,
                );
                let answer = span.in_scope(|| self.inner.call(request));
                Either::Left(answer.instrument(span))
            }
            None => Either::Right(Box::pin(observed(
                observer.clone(),
                request,
                &mut self.inner,
            ))),
            Some(dispatch) => {
                let observed = tracing::dispatcher::with_default(&dispatch, || {
                    observed(observer.clone(), request, &mut self.inner)
                });
                Either::Right(Box::pin(async move {
                    let Ok(response) = observed.with_subscriber(dispatch.clone()).await;
                    let (parts, body) = response.into_parts();
                    Ok(Response::from_parts(
                        parts,
                        Body::new(InDispatch { body, dispatch }),
                    ))
                }))
            }
        }
    }
}

/// Starts the route under the request's span and returns what follows it: the span's status,
/// the access-log line with the answer's body.
fn observed<S>(
    observer: RequestObserver,
    mut request: Request,
    inner: &mut S,
) -> impl Future<Output = Result<Response, Infallible>> + Send + 'static
where
    S: Service<Request, Response = Response, Error = Infallible>,
    S::Future: Send + 'static,
{
    let started = Instant::now();
    let method = request.method().clone();
    let route = route_of(&request).to_owned();
    let span = if observer.tracing {
        server_span(&method, &route, request.headers())
    } else {
        tracing::info_span!(
            target: REQUEST_TARGET,
            "request",
            method = %method,
            route,
            subscription = tracing::field::Empty,
            session.id = tracing::field::Empty,
        )
    };
    let record = observer.access_log.then(|| {
        let record = Arc::new(CallRecord::default());
        request.extensions_mut().insert(record.clone());
        record
    });
    let request_id = header_text(request.headers(), "x-request-id");
    let caller_trace = header_text(request.headers(), TRACEPARENT);
    let answer = span.in_scope(|| inner.call(request));
    async move {
        let Ok(response) = answer.instrument(span.clone()).await;
        let status = response.status();
        if observer.tracing {
            span.record("http.response.status_code", status.as_u16());
            if status.is_server_error() {
                span.record("otel.status_code", "error");
            }
        }
        let Some(record) = record else {
            return Ok(response);
        };
        let trace_id = if observer.tracing {
            let context = span.context();
            let span_context = context.span().span_context().clone();
            span_context
                .is_valid()
                .then(|| span_context.trace_id().to_string())
        } else {
            caller_trace.as_deref().and_then(trace_id_of)
        };
        let line = AccessLine {
            started,
            method,
            route,
            status: status.as_u16(),
            request_id,
            trace_id,
            record,
        };
        let (parts, body) = response.into_parts();
        Ok(Response::from_parts(
            parts,
            Body::new(Logged {
                body,
                line: Some(line),
            }),
        ))
    }
}

/// The matched route's template, never the raw path.
fn route_of(request: &Request) -> &str {
    request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
}

/// OpenTelemetry's HTTP server span, continuing the caller's trace when it sent one.
fn server_span(method: &Method, route: &str, headers: &HeaderMap) -> Span {
    let span = tracing::info_span!(
        target: REQUEST_TARGET,
        "request",
        otel.name = %format_args!("{method} {route}"),
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        http.request.method = %method,
        http.route = route,
        http.response.status_code = tracing::field::Empty,
        subscription = tracing::field::Empty,
            session.id = tracing::field::Empty,
        tollgate.request_id = header_text(headers, "x-request-id").as_deref(),
    );
    if let Some(parent) = context_from_headers(headers) {
        let _ = span.set_parent(parent);
    }
    span
}

fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
}

/// The trace id of a `traceparent` value (`00-<trace id>-<parent id>-<flags>`), if valid.
fn trace_id_of(traceparent: &str) -> Option<String> {
    let id = traceparent.split('-').nth(1)?;
    let valid = id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        && id.bytes().any(|b| b != b'0');
    valid.then(|| id.to_owned())
}

/// One request's access-log facts, written when dropped.
struct AccessLine {
    started: Instant,
    method: Method,
    route: String,
    status: u16,
    request_id: Option<String>,
    trace_id: Option<String>,
    record: Arc<CallRecord>,
}

impl AccessLine {
    fn write(&self) {
        let facts = self.record.snapshot();
        let duration_ms = self.started.elapsed().as_secs_f64() * 1000.0;
        tracing::info!(
            target: ACCESS_TARGET,
            request_id = self.request_id.as_deref(),
            trace_id = self.trace_id.as_deref(),
            method = %self.method,
            route = self.route.as_str(),
            status = self.status,
            duration_ms,
            subscription = facts.subscription.as_deref(),
            session_id = facts.session_id.as_deref(),
            model = facts.model.as_deref(),
            cache = facts.cache_status(),
            tokens_in = facts.input_tokens,
            tokens_out = facts.output_tokens,
            backend = facts.backend.as_deref(),
            attempts = facts.attempts,
            "request"
        );
    }
}

/// The response body, which writes the access-log line when it is done with.
struct Logged {
    body: Body,
    line: Option<AccessLine>,
}

impl Drop for Logged {
    fn drop(&mut self) {
        if let Some(line) = self.line.take() {
            line.write();
        }
    }
}

impl HttpBody for Logged {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A body read, and dropped, in a server's own subscriber (a test's server).
struct InDispatch {
    body: Body,
    dispatch: Dispatch,
}

impl Drop for InDispatch {
    fn drop(&mut self) {
        let body = std::mem::take(&mut self.body);
        tracing::dispatcher::with_default(&self.dispatch, || drop(body));
    }
}

impl HttpBody for InDispatch {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        tracing::dispatcher::with_default(&this.dispatch, || {
            Pin::new(&mut this.body).poll_frame(cx)
        })
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_valid_traceparent_gives_a_trace_id() {
        assert_eq!(
            trace_id_of("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        for junk in [
            "",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f35-00f067aa0ba902b7-01",
        ] {
            assert_eq!(trace_id_of(junk), None, "{junk}");
        }
    }
}

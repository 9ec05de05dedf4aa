//! Plain-HTTP/1.1 upstreams (`http://`: llama.cpp, vLLM, Ollama, a sidecar, the mock) without
//! reqwest's layers: hyper's connection API, each connection driven by the task that uses it.
//!
//! Why: against a nearby upstream the exchange is the largest part of the gateway's own cost
//! per call, and the pooled client spends much of it around the I/O: a redirect layer that
//! parses the URL on every request, and the request, the answer and each body chunk handed
//! between the caller's task and a connection task. Here the caller's task polls its connection
//! itself, so an exchange wakes no other task. An idle connection is not polled at all; one the
//! upstream closed meanwhile is noticed, and dropped, when it is taken from the pool.
//!
//! HTTPS upstreams, and plain ones when an HTTP proxy is configured, keep reqwest (TLS roots,
//! proxies, HTTP/2).

use std::{
    future::Future,
    pin::pin,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    task::{Context, Poll, Waker},
    time::Duration,
};

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode, uri::PathAndQuery};
use http_body_util::{BodyExt, Full};
use hyper::{body::Incoming, client::conn::http1};
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use tokio::{net::TcpStream, time::Instant};

/// Connecting gives up after this long (as reqwest's client does for the other upstreams).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// An idle connection older than this is closed rather than reused (reqwest's pool's figure).
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Idle connections kept per upstream and idle list; more are closed when they come back.
const MAX_IDLE: usize = 256;
/// Idle lists per upstream. A connection goes back to the list of the thread that used it,
/// and a thread takes from its own list first. Where each thread runs a runtime of its own, a
/// connection must be read by the runtime its socket is registered with, or every exchange on
/// it wakes that other thread to hand on the socket's readiness: one taken from another
/// thread's list is registered again with this thread's (`Connection::moved_here`). Threads
/// beyond this many share lists.
const IDLE_LISTS: usize = 16;

thread_local! {
    /// This thread's number, given out in turn as threads first use a pool.
    static THREAD: usize = {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        NEXT.fetch_add(1, Ordering::Relaxed)
    };
}

fn this_thread() -> usize {
    THREAD.with(|thread| *thread)
}

fn own_idle_list() -> usize {
    this_thread() % IDLE_LISTS
}

/// Rounds of polling a connection and its caller's future with a no-op waker before the real
/// one: enough for a request to be written and a buffered answer handed on (see `Link::drive`).
const QUIET_ROUNDS: usize = 3;

/// Why a request got no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SendError {
    /// No connection could be made.
    Connect,
    /// The connection failed, or closed, before the answer's head arrived.
    Transport,
}

/// The body broke off before its end.
#[derive(Debug)]
pub(super) struct BrokeOff;

/// The connections to one plain-HTTP upstream.
pub(super) struct Pool {
    host: String,
    port: u16,
    /// The `Host` header: the URL's authority as written.
    authority: HeaderValue,
    /// Boxed: a connection is large, and moves between the pool and the answers.
    #[expect(
        clippy::vec_box,
        reason = "connections move in and out; a box moves cheaply"
    )]
    idle: [Mutex<Vec<Box<Connection>>>; IDLE_LISTS],
}

/// The handle requests go through, and the connection that does their I/O.
struct Connection {
    sender: http1::SendRequest<Full<Bytes>>,
    link: Link,
    idle_since: Instant,
    /// The thread whose runtime the socket is registered with (`this_thread`).
    home: usize,
}

impl Connection {
    /// Starts HTTP/1.1 on `stream`, registered with this thread's runtime.
    async fn start(stream: TcpStream) -> Result<Box<Self>, hyper::Error> {
        let (sender, io) = http1::handshake(TokioIo::new(stream)).await?;
        Ok(Box::new(Self {
            sender,
            link: Link { io, open: true },
            idle_since: Instant::now(),
            home: this_thread(),
        }))
    }

    /// This idle connection, its socket registered with this thread's runtime: as it is if it
    /// already was, else taken out of the other runtime and started again here (no bytes go
    /// over the wire). `None`, the connection closed, if that fails.
    async fn moved_here(self: Box<Self>) -> Option<Box<Self>> {
        if self.home == this_thread() {
            return Some(self);
        }
        let parts = self.link.io.into_parts();
        // An idle connection has nothing unread; bytes here were never asked for.
        if !parts.read_buf.is_empty() {
            return None;
        }
        let socket = parts.io.into_inner().into_std().ok()?;
        Self::start(TcpStream::from_std(socket).ok()?).await.ok()
    }
}

/// hyper's connection future, polled by whichever task is using the connection.
struct Link {
    io: http1::Connection<TokioIo<TcpStream>, Full<Bytes>>,
    /// False once the connection future has finished: it may not be polled again.
    open: bool,
}

impl Link {
    /// Runs `future` to its end while driving the connection it depends on. `None` when the
    /// connection ended first, leaving `future` with nothing that could complete it.
    ///
    /// Only the socket needs this task's waker: everything `future` waits for (the request's
    /// slot, the answer, the body's pieces) is produced by polling the connection here, in the
    /// same task. So both are first polled with a no-op waker, which keeps hyper's internal
    /// channels from waking this very task; tokio treats such a wake as a yield and wakes
    /// another worker for it (a futex call and a context switch per exchange). The last poll of
    /// the connection registers the real waker wherever it waits.
    async fn drive<F: Future>(&mut self, future: F) -> Option<F::Output> {
        let mut future = pin!(future);
        std::future::poll_fn(|cx| {
            let mut quiet = Context::from_waker(Waker::noop());
            for _ in 0..QUIET_ROUNDS {
                if let Poll::Ready(output) = future.as_mut().poll(&mut quiet) {
                    return Poll::Ready(Some(output));
                }
                self.poll_io(&mut quiet);
            }
            self.poll_io(cx);
            match future.as_mut().poll(&mut quiet) {
                Poll::Ready(output) => Poll::Ready(Some(output)),
                Poll::Pending if self.open => Poll::Pending,
                Poll::Pending => Poll::Ready(None),
            }
        })
        .await
    }

    fn poll_io(&mut self, cx: &mut Context<'_>) {
        if self.open && self.io.poll_without_shutdown(cx).is_ready() {
            self.open = false;
        }
    }

    /// Whether the upstream closed the connection while it sat idle (its FIN is read now).
    fn closed_while_idle(&mut self) -> bool {
        self.poll_io(&mut Context::from_waker(Waker::noop()));
        !self.open
    }
}

impl Pool {
    /// The pool for `base_url`, if it is a plain-HTTP URL with a host.
    pub(super) fn for_url(base_url: &str) -> Option<Arc<Self>> {
        let uri: http::Uri = base_url.parse().ok()?;
        if uri.scheme() != Some(&http::uri::Scheme::HTTP) {
            return None;
        }
        let authority = uri.authority()?;
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        Some(Arc::new(Self {
            host: host.to_owned(),
            port: authority.port_u16().unwrap_or(80),
            authority: HeaderValue::from_str(authority.as_str()).ok()?,
            idle: std::array::from_fn(|_| Mutex::new(Vec::new())),
        }))
    }

    /// POSTs `body` to `path` with `headers`: the answer's head, its body still to be read.
    pub(super) async fn post(
        self: &Arc<Self>,
        path: PathAndQuery,
        mut headers: HeaderMap,
        body: Bytes,
    ) -> Result<Response, SendError> {
        headers.insert(http::header::HOST, self.authority.clone());
        let request = |headers: HeaderMap| {
            let mut request = Request::new(Full::new(body.clone()));
            *request.method_mut() = Method::POST;
            *request.uri_mut() = path.clone().into();
            *request.headers_mut() = headers;
            request
        };
        while let Some(connection) = self.take_idle().await {
            // A connection the upstream closed just now fails before the request leaves it;
            // that one request is sent again on another connection (nothing reached the upstream).
            match self.send(connection, request(headers.clone())).await {
                Err(Unsent::Retry) => continue,
                Err(Unsent::Failed(error)) => return Err(error),
                Ok(response) => return Ok(response),
            }
        }
        let connection = self.connect().await?;
        match self.send(connection, request(headers)).await {
            Ok(response) => Ok(response),
            Err(Unsent::Retry) => Err(SendError::Transport),
            Err(Unsent::Failed(error)) => Err(error),
        }
    }

    async fn send(
        self: &Arc<Self>,
        mut connection: Box<Connection>,
        request: Request<Full<Bytes>>,
    ) -> Result<Response, Unsent> {
        let Connection { sender, link, .. } = &mut *connection;
        match link.drive(sender.ready()).await {
            Some(Ok(())) => {}
            Some(Err(_)) | None => return Err(Unsent::Retry),
        }
        match link.drive(sender.try_send_request(request)).await {
            Some(Ok(response)) => {
                let (head, body) = response.into_parts();
                Ok(Response {
                    status: head.status,
                    headers: head.headers,
                    body,
                    connection: Some(connection),
                    pool: self.clone(),
                })
            }
            Some(Err(error)) if error.message().is_some() => Err(Unsent::Retry),
            Some(Err(_)) | None => Err(Unsent::Failed(SendError::Transport)),
        }
    }

    /// The most recently used idle connection that is still open and young enough, registered
    /// with this thread's runtime: from this thread's list, or else moved here from another's
    /// (a connection moved costs two `epoll_ctl` calls once, a new one a handshake with the
    /// upstream and a socket more there).
    async fn take_idle(&self) -> Option<Box<Connection>> {
        loop {
            if let Some(connection) = self.pop_idle()?.moved_here().await {
                return Some(connection);
            }
        }
    }

    fn pop_idle(&self) -> Option<Box<Connection>> {
        let own = own_idle_list();
        (0..IDLE_LISTS).find_map(|offset| self.take_idle_from((own + offset) % IDLE_LISTS))
    }

    fn take_idle_from(&self, list: usize) -> Option<Box<Connection>> {
        loop {
            let mut connection = self.idle[list].lock().pop()?;
            if connection.idle_since.elapsed() < IDLE_TIMEOUT
                && !connection.link.closed_while_idle()
            {
                return Some(connection);
            }
        }
    }

    /// A new connection, boxed: it is large, and moves between the pool and the answers.
    async fn connect(&self) -> Result<Box<Connection>, SendError> {
        let connecting = TcpStream::connect((self.host.as_str(), self.port));
        let stream = match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(_)) | Err(_) => return Err(SendError::Connect),
        };
        // Requests are written whole; Nagle would hold the last segment back for an ACK.
        stream.set_nodelay(true).map_err(|_| SendError::Connect)?;
        Connection::start(stream)
            .await
            .map_err(|_| SendError::Connect)
    }

    /// Keeps `connection` for the next request, if it can carry one.
    fn give_back(&self, mut connection: Box<Connection>) {
        if !connection.link.open || connection.sender.is_closed() {
            return;
        }
        connection.idle_since = Instant::now();
        let mut idle = self.idle[own_idle_list()].lock();
        if idle.len() < MAX_IDLE {
            idle.push(connection);
        }
    }

    #[cfg(test)]
    pub(super) fn idle_connections(&self) -> usize {
        self.idle.iter().map(|list| list.lock().len()).sum()
    }
}

/// Why a request was not answered on a connection.
enum Unsent {
    /// The connection was closed before the request left: another one may carry it.
    Retry,
    Failed(SendError),
}

/// An answer's head, and its body read on demand through the connection it came on. Once the
/// body has been read to its end the connection goes back to the pool; dropped earlier, the
/// connection is closed.
pub(super) struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    body: Incoming,
    connection: Option<Box<Connection>>,
    pool: Arc<Pool>,
}

impl Response {
    /// The body's next piece; `None` at its end.
    pub(super) async fn chunk(&mut self) -> Result<Option<Bytes>, BrokeOff> {
        loop {
            let Some(connection) = self.connection.as_mut() else {
                return Ok(None);
            };
            match connection.link.drive(self.body.frame()).await {
                Some(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) if !data.is_empty() => return Ok(Some(data)),
                    // Empty pieces and trailers carry nothing to hand on.
                    Ok(_) | Err(_) => {}
                },
                Some(None) => {
                    if let Some(connection) = self.connection.take() {
                        self.pool.give_back(connection);
                    }
                    return Ok(None);
                }
                Some(Some(Err(_))) | None => {
                    self.connection = None;
                    return Err(BrokeOff);
                }
            }
        }
    }

    /// The whole body.
    pub(super) async fn bytes(mut self) -> Result<Bytes, BrokeOff> {
        let Some(first) = self.chunk().await? else {
            return Ok(Bytes::new());
        };
        let Some(second) = self.chunk().await? else {
            // The usual case, one piece: handed on without a copy.
            return Ok(first);
        };
        let mut whole = BytesMut::with_capacity(first.len() + second.len());
        whole.extend_from_slice(&first);
        whole.extend_from_slice(&second);
        while let Some(more) = self.chunk().await? {
            whole.extend_from_slice(&more);
        }
        Ok(whole.freeze())
    }
}

#[cfg(test)]
#[path = "direct_tests.rs"]
mod tests;

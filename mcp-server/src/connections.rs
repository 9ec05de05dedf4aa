//! The HTTP/1.1 server around the app: accepting, bounding and timing out connections.
//!
//! - At most `MAX_CONNECTIONS` connections are served at once. One more is answered with a 503
//!   `server_busy` in the JSON envelope and closed, so a flood of sockets cannot exhaust the
//!   process's file descriptors (and `/health` keeps answering).
//! - A request's headers must arrive within `HEADER_READ_TIMEOUT_SECONDS` of its first byte: a
//!   trickled header is cut.
//! - A connection waiting for a request (a fresh one, or an idle keep-alive one) is closed after
//!   `IDLE_TIMEOUT_SECONDS`, and so is one whose response makes no write progress for as long (a
//!   client that stopped reading).
//! - On shutdown, no connection is accepted any more, idle ones close at once and busy ones once
//!   their response is sent; [`serve_connections`] returns when every connection is gone.
//! - A connection the server closes while the client may still be sending (an answer given
//!   before the body was read, such as a 413) lingers: its write side is shut, and what the client
//!   still sends is read and dropped, up to a bound, before the socket closes. Closing a socket
//!   with unread input resets the connection, and the reset can destroy the answer before the
//!   client reads it.
//!
//! How the timeouts are kept without any per-request allocation: hyper runs its header-read
//! timer whenever it waits for a request head, idle time included. Its timer here is
//! [`HeadTimer`], a zero-sized timer whose deadline comes from the connection's own
//! [`ConnectionWatch`] (a task-local): the idle deadline while no byte of the next request has
//! arrived, the header deadline from the first byte on. One `tokio` timer per connection serves
//! every request on it.

use std::{
    cell::{Cell, RefCell},
    convert::Infallible,
    future::Future,
    io,
    net::SocketAddr,
    pin::{Pin, pin},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::{Duration, SystemTime},
};

use axum::{
    body::Body,
    extract::{ConnectInfo, Request},
    response::Response,
};
use hyper::{body::Incoming, server::conn::http1};
use hyper_util::rt::TokioIo;
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::{OwnedSemaphorePermit, Semaphore},
    time::{Instant, Sleep},
};
use tokio_util::sync::CancellationToken;
use tower::{Service, ServiceExt};

pub use crate::config::ConnectionLimits;
use crate::error::{ApiError, ErrorBody, ErrorDetail};

/// Refusals (503s to connections over the limit) being written at once; beyond this, a
/// connection over the limit is closed without an answer.
const MAX_CONCURRENT_REFUSALS: usize = 256;
/// How long writing one refusal may take.
const REFUSAL_DEADLINE: Duration = Duration::from_secs(1);
/// Pause after an accept error such as "too many open files", so the loop does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);
/// How long a closing connection keeps reading what its client still sends, at most.
const LINGER_TIME: Duration = Duration::from_secs(5);
/// How much a closing connection reads and drops, at most.
const LINGER_MAX_BYTES: usize = 64 * 1024 * 1024;
/// Connections lingering at once; beyond this, one closes at once.
const MAX_LINGERING: usize = 1024;
/// Connections lingering now.
static LINGERING: AtomicUsize = AtomicUsize::new(0);

/// Serves `app` on `listener` until `stop` is cancelled, then waits for the open connections
/// to finish (the caller bounds that wait with its grace period).
pub async fn serve_connections<A>(
    listener: TcpListener,
    app: A,
    limits: ConnectionLimits,
    stop: CancellationToken,
    threads: Option<&ConnectionThreads>,
) where
    A: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    A::Future: Send,
{
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let refusals = Arc::new(Semaphore::new(MAX_CONCURRENT_REFUSALS));
    let mut http = http1::Builder::new();
    // The timeout's value only switches hyper's timer on; `HeadTimer` keeps the deadlines.
    http.timer(HeadTimer)
        .header_read_timeout(limits.header_read_timeout);
    // Each connection checks its stop signal whenever it is polled, and checking a token locks
    // it: one child token per thread keeps that lock on the thread's own core.
    let stops: Vec<CancellationToken> = (0..threads.map_or(1, ConnectionThreads::count))
        .map(|_| stop.child_token())
        .collect();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stop.cancelled() => break,
        };
        let (stream, remote) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                continue;
            }
        };
        match permits.clone().try_acquire_owned() {
            Ok(permit) => {
                let turn = threads.map_or(0, ConnectionThreads::next_turn);
                let connection =
                    serve_one(stream, remote, app.clone(), &http, limits, &stops[turn]);
                let connection = ConnectionWatch::scope(limits, permit, connection);
                match threads {
                    Some(threads) => threads.spawn_on(turn, connection),
                    None => drop(tokio::spawn(connection)),
                }
            }
            Err(_) => refuse(stream, &refusals, limits),
        }
    }
    drop(listener);
    // Each connection holds a permit until it closes: all of them back means all are done.
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let _drained = permits.acquire_many(all).await;
}

/// Threads that each run a single-threaded runtime of their own, for connections: a
/// connection is handed to one of them, in turn, and lives there until it closes.
///
/// Why: on one multi-threaded runtime, a worker that finds work queued wakes an idle one to
/// share it, and tasks move between workers; on a small host that costs about a fifth more CPU
/// per request than one worker does (futex calls, context switches, caches refilled). Here each
/// connection's requests, and the upstream connections they use (the upstream pool keeps one
/// idle list per thread), stay on one thread, as in nginx's worker processes; the threads share
/// the gateway's state as the workers did. What runs beside the connections (accepting,
/// metrics upkeep, publishing to Redis) stays on the runtime that started them.
pub struct ConnectionThreads {
    runtimes: Vec<tokio::runtime::Handle>,
    next: AtomicUsize,
    /// Cancelled on drop: each thread then drops its runtime, and what still runs there.
    end: CancellationToken,
}

impl ConnectionThreads {
    /// Starts `count` threads (at least one), which run until this is dropped.
    pub fn start(count: usize) -> io::Result<Self> {
        let end = CancellationToken::new();
        let runtimes = (0..count.max(1))
            .map(|index| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                let handle = runtime.handle().clone();
                let end = end.clone();
                std::thread::Builder::new()
                    .name(format!("tollgate-conn-{index}"))
                    .spawn(move || runtime.block_on(end.cancelled()))?;
                Ok(handle)
            })
            .collect::<io::Result<Vec<_>>>();
        let runtimes = runtimes.inspect_err(|_| end.cancel())?;
        Ok(Self {
            runtimes,
            next: AtomicUsize::new(0),
            end,
        })
    }

    /// How many threads serve connections.
    pub fn count(&self) -> usize {
        self.runtimes.len()
    }

    /// The thread whose turn it is to take a connection: an index below [`Self::count`].
    fn next_turn(&self) -> usize {
        self.next.fetch_add(1, Ordering::Relaxed) % self.runtimes.len()
    }

    fn spawn_on(&self, turn: usize, connection: impl Future<Output = ()> + Send + 'static) {
        drop(self.runtimes[turn].spawn(connection));
    }
}

impl Drop for ConnectionThreads {
    fn drop(&mut self) {
        self.end.cancel();
    }
}

/// One connection, until it closes or, after `stop`, until its response in flight is sent.
fn serve_one<A>(
    stream: TcpStream,
    remote: SocketAddr,
    app: A,
    http: &http1::Builder,
    limits: ConnectionLimits,
    stop: &CancellationToken,
) -> impl Future<Output = ()> + Send + 'static
where
    A: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    A::Future: Send,
{
    // The socket moves to the thread that serves it: registered there, its readiness is
    // reported to that thread's own runtime.
    let stream = stream.into_std();
    // The open server keys callers by client IP, as axum's `ConnectInfo` carries it.
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let mut request = request.map(Body::new);
        request.extensions_mut().insert(ConnectInfo(remote));
        app.clone().oneshot(request)
    });
    let http = http.clone();
    let stop = stop.clone();
    async move {
        let stream = match stream.and_then(TcpStream::from_std) {
            Ok(stream) => stream,
            Err(error) => {
                tracing::debug!(%error, %remote, "connection lost before it was served");
                return;
            }
        };
        let io = TokioIo::new(WatchedIo::new(stream, limits.idle_timeout));
        let connection = http.serve_connection(io, service);
        let mut connection = pin!(connection);
        let outcome = tokio::select! {
            outcome = connection.as_mut() => outcome,
            () = stop.cancelled() => {
                connection.as_mut().graceful_shutdown();
                connection.await
            }
        };
        if let Err(error) = outcome {
            tracing::debug!(%error, %remote, "connection ended with an error");
        }
    }
}

/// Answers a connection over the limit with a 503, then closes it; bounded in number and time.
fn refuse(stream: TcpStream, refusals: &Arc<Semaphore>, limits: ConnectionLimits) {
    metrics::counter!("http_connections_refused_total").increment(1);
    tracing::debug!(
        max_connections = limits.max_connections,
        "connection refused: at the connection limit (MAX_CONNECTIONS)"
    );
    let Ok(permit) = refusals.clone().try_acquire_owned() else {
        return;
    };
    let answer = busy_answer(limits);
    tokio::spawn(async move {
        let _permit = permit;
        let _ = tokio::time::timeout(REFUSAL_DEADLINE, write_refusal(stream, &answer)).await;
    });
}

async fn write_refusal(mut stream: TcpStream, answer: &[u8]) -> io::Result<()> {
    stream.write_all(answer).await?;
    stream.shutdown().await?;
    // Read what the client sent before closing: closing with unread data would reset the
    // connection and could destroy the answer before the client reads it.
    let mut sink = [0u8; 1024];
    while stream.read(&mut sink).await? > 0 {}
    Ok(())
}

/// The whole HTTP/1.1 answer to a connection over the limit.
fn busy_answer(limits: ConnectionLimits) -> Vec<u8> {
    let error = ApiError::ServerBusy {
        limit: limits.max_connections,
    };
    let message = error.to_string();
    let body = ErrorBody {
        error: ErrorDetail {
            code: error.code(),
            message: &message,
        },
    };
    let body = serde_json::to_string(&body).unwrap_or_default();
    let retry_after = limits
        .retry_after_format
        .header_value(Duration::from_secs(1), SystemTime::now());
    let status = error.status();
    let mut answer = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         connection: close\r\nretry-after: ",
        status.as_str(),
        status.canonical_reason().unwrap_or(""),
        body.len(),
    )
    .into_bytes();
    answer.extend_from_slice(retry_after.as_bytes());
    answer.extend_from_slice(b"\r\n\r\n");
    answer.extend_from_slice(body.as_bytes());
    answer
}

tokio::task_local! {
    /// The connection being served by the current task.
    static WATCH: ConnectionWatch;
}

/// One connection's reads and its wait for the next request head, for [`HeadTimer`].
struct ConnectionWatch {
    header_read_timeout: Duration,
    idle_timeout: Duration,
    /// Reads that brought bytes, counted by [`WatchedIo`].
    reads: Cell<u64>,
    /// The current wait for a request head, if hyper is waiting for one.
    wait: Cell<Option<HeadWait>>,
    /// The connection's one timer, and the deadline it is set to.
    alarm: RefCell<Pin<Box<Sleep>>>,
    alarm_at: Cell<Instant>,
    /// Held for as long as the connection is served.
    _permit: OwnedSemaphorePermit,
}

#[derive(Debug, Clone, Copy)]
struct HeadWait {
    started: Instant,
    reads_at_start: u64,
    /// When the first byte of the head was seen.
    first_byte: Option<Instant>,
}

impl ConnectionWatch {
    /// Runs `connection` with its watch as the task-local [`WATCH`]. The watch is made where
    /// this is first polled: its timer belongs to the runtime serving the connection.
    async fn scope(
        limits: ConnectionLimits,
        permit: OwnedSemaphorePermit,
        connection: impl Future<Output = ()> + Send + 'static,
    ) {
        let first_deadline = Instant::now() + limits.idle_timeout;
        let watch = Self {
            header_read_timeout: limits.header_read_timeout,
            idle_timeout: limits.idle_timeout,
            reads: Cell::new(0),
            wait: Cell::new(None),
            alarm: RefCell::new(Box::pin(tokio::time::sleep_until(first_deadline))),
            alarm_at: Cell::new(first_deadline),
            _permit: permit,
        };
        WATCH.scope(watch, connection).await;
    }

    fn begin_wait(&self) {
        self.wait.set(Some(HeadWait {
            started: Instant::now(),
            reads_at_start: self.reads.get(),
            first_byte: None,
        }));
    }

    /// Ready when the current wait has run out: no byte within the idle timeout, or no whole
    /// head within the header timeout of its first byte.
    fn poll_wait(&self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(mut wait) = self.wait.get() else {
            return Poll::Pending;
        };
        let deadline = if self.reads.get() == wait.reads_at_start {
            wait.started + self.idle_timeout
        } else {
            // Each read wakes the connection, and hyper looks at its timer right after a read
            // that left the head unfinished: the first look after bytes came is their arrival.
            let first_byte = *wait.first_byte.get_or_insert_with(Instant::now);
            self.wait.set(Some(wait));
            first_byte + self.header_read_timeout
        };
        let mut alarm = self.alarm.borrow_mut();
        // The alarm only moves earlier here; a later deadline waits for the alarm to ring once.
        if deadline < self.alarm_at.get() {
            alarm.as_mut().reset(deadline);
            self.alarm_at.set(deadline);
        }
        while alarm.as_mut().poll(cx).is_ready() {
            if Instant::now() >= deadline {
                return Poll::Ready(());
            }
            alarm.as_mut().reset(deadline);
            self.alarm_at.set(deadline);
        }
        Poll::Pending
    }

    fn count_read() {
        let _ = WATCH.try_with(|watch| watch.reads.set(watch.reads.get() + 1));
    }
}

/// hyper's timer for its header-read timeout: zero-sized, so boxing it allocates nothing; the
/// deadline is the connection's [`ConnectionWatch`]'s, whatever hyper asks for.
#[derive(Debug, Clone, Copy)]
struct HeadTimer;

impl hyper::rt::Timer for HeadTimer {
    fn sleep(&self, _: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Self::begin_wait()
    }

    fn sleep_until(&self, _: std::time::Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Self::begin_wait()
    }
}

impl HeadTimer {
    fn begin_wait() -> Pin<Box<dyn hyper::rt::Sleep>> {
        let _ = WATCH.try_with(ConnectionWatch::begin_wait);
        Box::pin(HeadDeadline)
    }
}

/// The end of hyper's current wait for a request head.
struct HeadDeadline;

impl Future for HeadDeadline {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // Outside a watched connection there is nothing to wait for: end the wait.
        WATCH
            .try_with(|watch| watch.poll_wait(cx))
            .unwrap_or(Poll::Ready(()))
    }
}

impl hyper::rt::Sleep for HeadDeadline {}

/// The socket, counting reads for [`ConnectionWatch`] and failing a write that makes no
/// progress for the idle timeout (a client that stopped reading). Dropped before the client
/// closed its side, it hands the socket to [`linger`].
struct WatchedIo {
    /// `None` only once handed to [`linger`], when dropped.
    stream: Option<TcpStream>,
    idle_timeout: Duration,
    /// Armed while a write is blocked; made on the first block only.
    write_stall: Option<Pin<Box<Sleep>>>,
    stalled: bool,
    /// The client closed its side: no input can be left unread.
    read_closed: bool,
}

impl WatchedIo {
    fn new(stream: TcpStream, idle_timeout: Duration) -> Self {
        Self {
            stream: Some(stream),
            idle_timeout,
            write_stall: None,
            stalled: false,
            read_closed: false,
        }
    }

    fn socket(&mut self) -> io::Result<Pin<&mut TcpStream>> {
        self.stream
            .as_mut()
            .map(Pin::new)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotConnected))
    }

    /// After a write returned `Pending`: the timeout error once it has been blocked too long.
    fn poll_stall<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        let deadline = Instant::now() + self.idle_timeout;
        let stall = self
            .write_stall
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if !self.stalled {
            self.stalled = true;
            stall.as_mut().reset(deadline);
        }
        match stall.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client read nothing for the idle timeout",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn progress<T>(
        &mut self,
        outcome: Poll<io::Result<T>>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<T>> {
        match outcome {
            Poll::Pending => self.poll_stall(cx),
            ready => {
                self.stalled = false;
                ready
            }
        }
    }
}

impl AsyncRead for WatchedIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let (before, room) = (buf.filled().len(), buf.remaining());
        let outcome = match self.socket() {
            Ok(socket) => socket.poll_read(cx, buf),
            Err(error) => return Poll::Ready(Err(error)),
        };
        if buf.filled().len() > before {
            ConnectionWatch::count_read();
        } else if room > 0 && matches!(outcome, Poll::Ready(Ok(()))) {
            self.read_closed = true;
        }
        outcome
    }
}

impl AsyncWrite for WatchedIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let outcome = match self.socket() {
            Ok(socket) => socket.poll_write(cx, buf),
            Err(error) => return Poll::Ready(Err(error)),
        };
        self.progress(outcome, cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let outcome = match self.socket() {
            Ok(socket) => socket.poll_write_vectored(cx, bufs),
            Err(error) => return Poll::Ready(Err(error)),
        };
        self.progress(outcome, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream
            .as_ref()
            .is_some_and(AsyncWrite::is_write_vectored)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let outcome = match self.socket() {
            Ok(socket) => socket.poll_flush(cx),
            Err(error) => return Poll::Ready(Err(error)),
        };
        self.progress(outcome, cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.socket() {
            Ok(socket) => socket.poll_shutdown(cx),
            Err(error) => Poll::Ready(Err(error)),
        }
    }
}

impl Drop for WatchedIo {
    fn drop(&mut self) {
        if let Some(stream) = self.stream.take()
            && !self.read_closed
        {
            linger(stream);
        }
    }
}

/// Closes a connection whose client may still be sending: shuts the write side (the answer is
/// whole), then reads and drops what arrives until the client closes, [`LINGER_MAX_BYTES`] or
/// [`LINGER_TIME`]. Bounded in number: beyond [`MAX_LINGERING`], the socket just closes.
fn linger(stream: TcpStream) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    if LINGERING.fetch_add(1, Ordering::Relaxed) >= MAX_LINGERING {
        LINGERING.fetch_sub(1, Ordering::Relaxed);
        return;
    }
    runtime.spawn(async move {
        let _ = tokio::time::timeout(LINGER_TIME, drain_then_close(stream)).await;
        LINGERING.fetch_sub(1, Ordering::Relaxed);
    });
}

async fn drain_then_close(mut stream: TcpStream) {
    let _ = stream.shutdown().await;
    let mut sink = vec![0u8; 16 * 1024];
    let mut left = LINGER_MAX_BYTES;
    while left > 0 {
        match stream.read(&mut sink).await {
            Ok(0) | Err(_) => return,
            Ok(read) => left = left.saturating_sub(read),
        }
    }
}

/// Raises the open-file soft limit to the hard limit, so `MAX_CONNECTIONS` sockets fit; warns
/// when they still do not.
#[cfg(unix)]
pub fn raise_open_file_limit(max_connections: usize) {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    /// Descriptors kept for everything but client connections: upstream and Redis
    /// connections, refusals being written, files.
    const RESERVED: u64 = 512;
    let limit = getrlimit(Resource::Nofile);
    // An unlimited hard limit is refused as a soft one on Linux; a million is plenty.
    let target = limit.maximum.unwrap_or(1 << 20);
    if limit.current.is_some_and(|current| current < target) {
        let raised = Rlimit {
            current: Some(target),
            maximum: limit.maximum,
        };
        if let Err(error) = setrlimit(Resource::Nofile, raised) {
            tracing::debug!(%error, "cannot raise the open-file limit");
        }
    }
    let soft = getrlimit(Resource::Nofile).current;
    let wanted = u64::try_from(max_connections).unwrap_or(u64::MAX) + RESERVED;
    if let Some(soft) = soft.filter(|soft| *soft < wanted) {
        tracing::warn!(
            open_file_limit = soft,
            max_connections,
            "the open-file limit is below MAX_CONNECTIONS plus {RESERVED}: lower MAX_CONNECTIONS \
             or raise the limit (ulimit -n), or connections may fail with `Too many open files`"
        );
    }
}

#[cfg(not(unix))]
pub fn raise_open_file_limit(_max_connections: usize) {}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::config::RetryAfterFormat;

    #[test]
    fn the_busy_answer_is_a_whole_http_answer_in_the_envelope() {
        let answer = busy_answer(ConnectionLimits {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 7,
            retry_after_format: RetryAfterFormat::Seconds,
        });
        let text = String::from_utf8(answer).unwrap_or_default();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or_default();
        assert!(
            head.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
            "{head}"
        );
        assert!(head.contains("\r\nconnection: close"), "{head}");
        assert!(head.contains("\r\nretry-after: 1"), "{head}");
        assert!(
            head.contains(&format!("content-length: {}", body.len())),
            "{head}"
        );
        let body: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
        assert_eq!(body["error"]["code"], "server_busy");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("MAX_CONNECTIONS")),
            "{body}"
        );
    }

    #[tokio::test]
    async fn connections_go_to_the_threads_in_turn_and_run_there_with_their_timers() {
        let threads = ConnectionThreads::start(2).unwrap();
        assert_eq!(threads.count(), 2);
        let mut names = Vec::new();
        for _ in 0..4 {
            let (sender, receiver) = tokio::sync::oneshot::channel();
            threads.spawn_on(threads.next_turn(), async move {
                // A timer of the thread's own runtime, and the thread that served the connection.
                tokio::time::sleep(Duration::from_millis(1)).await;
                let name = std::thread::current().name().map(str::to_owned);
                let _ = sender.send(name);
            });
            names.push(receiver.await.unwrap().unwrap_or_default());
        }
        assert_eq!(
            names,
            [
                "tollgate-conn-0",
                "tollgate-conn-1",
                "tollgate-conn-0",
                "tollgate-conn-1"
            ]
        );
    }

    #[tokio::test]
    async fn dropped_threads_end_what_runs_on_them() {
        let threads = ConnectionThreads::start(1).unwrap();
        let (sender, receiver) = tokio::sync::oneshot::channel::<()>();
        threads.spawn_on(threads.next_turn(), async move {
            let _sender = sender;
            std::future::pending::<()>().await;
        });
        drop(threads);
        // The task, and the sender it holds, are dropped with the thread's runtime.
        assert!(receiver.await.is_err());
    }
}

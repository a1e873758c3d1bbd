//! The HTTP/1 listener: one task per connection, each held to four limits so that slow or
//! idle clients cannot hold the server.
//!
//! - **Connections** ([`HttpLimits::max_connections`]): past the cap the listener stops
//!   accepting until a connection closes; the kernel's backlog holds the rest.
//! - **Header timeout**: a connection that has not sent a whole request head this long after
//!   it opened (or after its first byte of a later request) is closed. This is what ends
//!   slowloris clients, which send half a head and never finish it.
//! - **Idle timeout**: a keep-alive connection with no request for this long is closed.
//! - **Body timeout**: a request body that sends nothing for this long fails the request with
//!   408 (a `Content-Length` larger than what the client sends, a stalled upload).
//!
//! hyper's own header timer cannot tell a head that is arriving from an idle keep-alive
//! connection, so the two clocks are kept here: [`Watched`] sees every byte read and written,
//! the service marks when a request is being handled, and a watchdog per connection closes it
//! when the phase it is in has lasted too long.
//!
//! hyper answers requests it cannot parse (a malformed request line, headers over its buffer)
//! itself, with an empty body. [`Watched`] recognises such an answer (a bodiless error
//! response written while no request is being handled) and writes it again in Writer's error
//! shape, so even those clients read `{"tpe": …, "errors": […]}`.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, Response, StatusCode};
use axum::response::IntoResponse;
use bytes::Bytes;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::{Instant, Sleep};
use tower::ServiceExt;

use crate::api::{self, ApiError, ErrorCode, requests};

/// The limits every connection is held to (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HttpLimits {
    /// How long a client may take to send a request head.
    pub header_timeout: Duration,
    /// How long a request body may send nothing.
    pub body_timeout: Duration,
    /// How long a keep-alive connection may wait for its next request.
    pub idle_timeout: Duration,
    /// Connections open at once at most.
    pub max_connections: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_connections: 1024,
        }
    }
}

/// A request body that sent nothing for [`HttpLimits::body_timeout`].
#[derive(Debug, thiserror::Error)]
#[error("the request body sent nothing for {} s", .0.as_secs_f64())]
pub struct BodyTimedOut(pub Duration);

/// Serves `router` on `listener` until `shutdown` resolves, then lets requests in progress
/// finish and returns.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()>,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => permit.expect("never closed"),
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let connection = serve_connection(stream, router.clone(), limits, &graceful);
        tokio::spawn(async move {
            connection.await;
            drop(permit);
        });
    }
    graceful.shutdown().await;
}

/// An accept that failed: a connection reset before it was taken is nothing; running out of
/// file descriptors is waited out rather than spun on.
async fn accept_failed(e: io::Error) {
    if matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::warn!(error = %e, "accepting a connection failed; pausing 100 ms");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// One connection: hyper's HTTP/1 over a [`Watched`] stream, raced against its watchdog.
fn serve_connection(
    stream: TcpStream,
    router: Router,
    limits: HttpLimits,
    graceful: &GracefulShutdown,
) -> impl Future<Output = ()> + Send + use<> {
    let _ = stream.set_nodelay(true);
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Watched {
        inner: stream,
        activity: activity.clone(),
        rewrite: Rewrite::None,
    });
    let service = ConnectionService {
        router,
        activity: activity.clone(),
        body_timeout: limits.body_timeout,
    };
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        // hyper's own header timer would also end idle keep-alive connections; ours knows
        // the difference.
        .header_read_timeout(None)
        .serve_connection(io, hyper::service::service_fn(move |req| service.call(req)));
    let connection = graceful.watch(connection);
    async move {
        tokio::select! {
            served = connection => {
                if let Err(e) = served {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
            }
            reason = activity.expired(limits) => {
                tracing::debug!(reason, "closing a connection");
            }
        }
    }
}

/// The router as seen by one connection: marks requests in progress, and times their bodies.
#[derive(Clone)]
struct ConnectionService {
    router: Router,
    activity: Arc<Activity>,
    body_timeout: Duration,
}

impl ConnectionService {
    /// Every request: its id, text no field accepts refused before routing, the
    /// body timed, and the request marked in progress until its response has been sent.
    fn call(
        &self,
        request: Request<Incoming>,
    ) -> impl Future<Output = Result<Response<Body>, Infallible>> + Send + use<> {
        let busy = Busy::begin(self.activity.clone());
        let timeout = self.body_timeout;
        let request = request.map(|body| Body::new(TimedBody::new(body, timeout)));
        let id = requests::id(request.headers());
        let refused = api::refuse_unstorable(request.uri());
        let router = self.router.clone();
        async move {
            let response = match refused {
                Err(e) => e.into_response(),
                Ok(()) => requests::handle(id.clone(), router.oneshot(request)).await?,
            };
            let response = requests::answer_with(response, id).await;
            // The request is done once hyper has sent (and dropped) the response's body.
            Ok(response.map(|body| Body::new(Finishing { body, _busy: busy })))
        }
    }
}

/// What a connection is doing, for its watchdog.
struct Activity {
    state: Mutex<Phase>,
}

#[derive(Clone, Copy, Debug)]
struct Phase {
    /// Requests being handled.
    busy: usize,
    /// Whether the bytes of a request head have begun to arrive (or the connection is new)
    /// while no request is handled.
    head_started: bool,
    /// When the current phase began.
    since: Instant,
}

impl Activity {
    fn new() -> Self {
        Self {
            // A new connection owes its first request head.
            state: Mutex::new(Phase {
                busy: 0,
                head_started: true,
                since: Instant::now(),
            }),
        }
    }

    fn phase(&self) -> std::sync::MutexGuard<'_, Phase> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Bytes arrived: if the connection was idle, a request head has begun.
    fn read(&self) {
        let mut phase = self.phase();
        if phase.busy == 0 && !phase.head_started {
            phase.head_started = true;
            phase.since = Instant::now();
        }
    }

    /// Resolves with the reason once the connection has been idle, or sending a head, too long.
    /// It sleeps until the deadline of the phase it saw and looks again, so requests coming
    /// and going never wake it: a busy connection is looked at once per shorter timeout.
    async fn expired(&self, limits: HttpLimits) -> &'static str {
        loop {
            let phase = *self.phase();
            let (limit, reason) = if phase.busy > 0 {
                let wait = limits.header_timeout.min(limits.idle_timeout);
                tokio::time::sleep(wait).await;
                continue;
            } else if phase.head_started {
                (
                    limits.header_timeout,
                    "the request head did not arrive in time",
                )
            } else {
                (limits.idle_timeout, "idle keep-alive connection")
            };
            let deadline = phase.since + limit;
            if Instant::now() >= deadline {
                return reason;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

/// One request in progress on a connection; when dropped, the connection may go idle.
struct Busy(Arc<Activity>);

impl Busy {
    fn begin(activity: Arc<Activity>) -> Self {
        activity.phase().busy += 1;
        Self(activity)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let mut phase = self.0.phase();
        phase.busy -= 1;
        if phase.busy == 0 {
            phase.head_started = false;
            phase.since = Instant::now();
        }
    }
}

/// A response body that ends its request's [`Busy`] when hyper is done with it.
struct Finishing {
    body: Body,
    _busy: Busy,
}

impl hyper::body::Body for Finishing {
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

/// A request body that fails with [`BodyTimedOut`] when it sends nothing for a while.
struct TimedBody {
    inner: Incoming,
    timeout: Duration,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl TimedBody {
    fn new(inner: Incoming, timeout: Duration) -> Self {
        Self {
            inner,
            timeout,
            sleep: None,
        }
    }
}

impl hyper::body::Body for TimedBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            this.sleep = None;
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        let timeout = this.timeout;
        let sleep = this
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        ready!(sleep.as_mut().poll(cx));
        Poll::Ready(Some(Err(Box::new(BodyTimedOut(timeout)))))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A TCP stream that reports reads to its connection's [`Activity`] and rewrites hyper's
/// own error answers in Writer's shape.
struct Watched {
    inner: TcpStream,
    activity: Arc<Activity>,
    rewrite: Rewrite,
}

/// The state of rewriting one of hyper's own answers.
enum Rewrite {
    /// Nothing rewritten: writes pass through.
    None,
    /// Our answer, still to be written from `written` on; hyper's writes are swallowed.
    Pending { answer: Vec<u8>, written: usize },
}

impl Watched {
    /// Writes what is left of a rewritten answer.
    fn poll_rewrite(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Rewrite::Pending { answer, written } = &mut self.rewrite {
            while *written < answer.len() {
                let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &answer[*written..]))?;
                if n == 0 {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                *written += n;
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.inner).poll_read(cx, buf))?;
        if buf.filled().len() > before {
            self.activity.read();
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if let Rewrite::Pending { .. } = this.rewrite {
            ready!(this.poll_rewrite(cx))?;
            return Poll::Ready(Ok(buf.len()));
        }
        let handling = this.activity.phase().busy > 0;
        if !handling && let Some(answer) = writer_shaped(buf) {
            this.rewrite = Rewrite::Pending { answer, written: 0 };
            // hyper's bytes count as written; ours go out in their place.
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let first = bufs
            .iter()
            .find(|b| !b.is_empty())
            .map_or(&[][..], |b| &b[..]);
        let rewriting = matches!(this.rewrite, Rewrite::Pending { .. });
        if rewriting || (this.activity.phase().busy == 0 && writer_shaped(first).is_some()) {
            return Pin::new(this).poll_write(cx, first);
        }
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_rewrite(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_rewrite(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// If `written` is one of hyper's own error answers (a status line of 4xx or 5xx and headers
/// saying the body is empty), the same answer with a body in Writer's error shape.
fn writer_shaped(written: &[u8]) -> Option<Vec<u8>> {
    // Most writes are answers of handlers, and most of those are not errors: say no cheaply.
    let rest = written.strip_prefix(b"HTTP/1.1 ")?;
    if !matches!(rest.first(), Some(b'4' | b'5')) {
        return None;
    }
    let head = std::str::from_utf8(written).ok()?;
    let rest = head.strip_prefix("HTTP/1.1 ")?;
    if !head.ends_with("\r\n\r\n") || !head.to_ascii_lowercase().contains("content-length: 0\r\n") {
        return None;
    }
    let status = StatusCode::from_bytes(rest.get(..3)?.as_bytes()).ok()?;
    if !(status.is_client_error() || status.is_server_error()) {
        return None;
    }
    let (code, description) = match status {
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => (
            ErrorCode::HeadersTooLarge,
            "the request's headers are too large",
        ),
        StatusCode::URI_TOO_LONG => (ErrorCode::UriTooLong, "the request's URI is too long"),
        StatusCode::HTTP_VERSION_NOT_SUPPORTED => (
            ErrorCode::HttpVersion,
            "only HTTP/1.0 and HTTP/1.1 are served",
        ),
        _ => (
            ErrorCode::MalformedRequest,
            "the request is not well-formed HTTP/1.1",
        ),
    };
    let status = code.status();
    let body = ApiError::new(code, description).body().to_string();
    Some(
        format!(
            "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
             x-should-retry: false\r\nconnection: close\r\n\r\n{body}",
            status.as_u16(),
            status.canonical_reason().unwrap_or("Error"),
            body.len()
        )
        .into_bytes(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hypers_bodiless_error_answers_are_given_a_writer_body() {
        let hyper =
            b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        let answer = String::from_utf8(writer_shaped(hyper).unwrap()).unwrap();
        assert!(answer.starts_with("HTTP/1.1 431 "), "{answer}");
        let body: serde_json::Value =
            serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap()).unwrap();
        assert_eq!(body["errors"][0]["key"], "request.headers_too_large");
    }

    #[test]
    fn answers_with_a_body_or_a_success_status_pass_through() {
        let with_body = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 5\r\n\r\n";
        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
        assert!(writer_shaped(with_body).is_none());
        assert!(writer_shaped(ok).is_none());
        assert!(writer_shaped(b"some body bytes").is_none());
    }
}

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
//! Its parts: [`activity`] (what a connection is doing, and its watchdog), [`bodies`] (the
//! request and response bodies it wraps), [`watched`] (its stream).
//!
//! hyper answers requests it cannot parse (a malformed request line, headers over its buffer)
//! itself, with an empty body. [`Watched`] recognises such an answer (a bodiless error
//! response written while no request is being handled) and writes it again in Writer's error
//! shape, so even those clients read `{"tpe": …, "errors": […]}`.

mod activity;
mod bodies;
mod watched;

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, Response};
use axum::response::IntoResponse;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tower::ServiceExt;

use crate::api::{self, requests};
use activity::{Activity, Busy};
pub(crate) use bodies::BodyTimedOut;
use bodies::{Finishing, TimedBody};
use watched::Watched;

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
    let io = TokioIo::new(Watched::new(stream, activity.clone()));
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
            reason = activity.expired(limits.header_timeout, limits.idle_timeout) => {
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

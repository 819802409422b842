//! The HTTP server under both services: hyper's HTTP/1.1 connections, each
//! watched so that a slow or idle client holds it only as long as
//! [`HttpSettings`] allow, at most `max_connections` at once, and a
//! graceful shutdown that lets requests in hand finish.
//!
//! - [`serve`]: the accept loop and the connection limit.
//! - [`Activity`]: what a connection is doing (waiting for headers, busy
//!   with requests, idle between them) and until when it may.
//! - [`bound_request`]: the middleware that bounds a request's body and
//!   its whole handling, answering 408 or 503 problems.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::header::CONNECTION;
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{BoxError, Router};
use http_body::{Body as _, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::Problem;
use crate::config::HttpSettings;

/// Accepts connections while fewer than `limits.max_connections` are open
/// (the others wait in the listen backlog, unaccepted), until `shutdown`
/// resolves; then stops accepting, lets each connection answer the
/// request in hand (idle and silent ones close at once), and returns once
/// all are closed.
pub(super) async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    limits: HttpSettings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let limits = Arc::new(limits);
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let stop = CancellationToken::new();
    let stopper = stop.clone();
    tokio::spawn(async move {
        shutdown.await;
        stopper.cancel();
    });
    let mut connections = JoinSet::new();
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = stop.cancelled() => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(err) => {
                    accept_failed(err).await;
                    continue;
                }
            },
            () = stop.cancelled() => break,
        };
        connections.spawn(connection(
            stream,
            router.clone(),
            limits.clone(),
            stop.clone(),
            permit,
        ));
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
    Ok(())
}

/// Resets and aborts are the client's business; anything else (out of file
/// descriptors, say) is waited out rather than spun on.
async fn accept_failed(err: io::Error) {
    use io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        err.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %err, "accepting a connection failed");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// Serves one connection until it ends, or its client is too slow or idle
/// too long (then it is dropped, which closes the socket).
async fn connection(
    stream: TcpStream,
    router: Router,
    limits: Arc<HttpSettings>,
    stop: CancellationToken,
    _permit: OwnedSemaphorePermit,
) {
    metrics::gauge!("sextant_http_connections").increment(1.0);
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Watched {
        stream,
        activity: activity.clone(),
    });
    let service = Tracked {
        router,
        limits: limits.clone(),
        activity: activity.clone(),
    };
    // hyper's own header timeout also runs while a keep-alive connection
    // waits for its next request, so it cannot tell slow headers from an
    // idle client: `Activity` times both instead.
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .keep_alive(true)
        .header_read_timeout(None::<Duration>);
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    let mut stopping = false;
    loop {
        if stopping && activity.silent_since_opened() {
            break;
        }
        let deadline = activity.deadline(&limits);
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(err) = result {
                    tracing::debug!(error = %err, "connection ended with an error");
                }
                break;
            }
            () = stop.cancelled(), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
            () = activity.changed.notified() => {}
            () = sleep_until(deadline) => {
                if let Some(reason) = activity.expired(&limits) {
                    tracing::debug!(reason, "closing a connection");
                    metrics::counter!("sextant_http_connections_closed_total", "reason" => reason)
                        .increment(1);
                    break;
                }
            }
        }
    }
    metrics::gauge!("sextant_http_connections").decrement(1.0);
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// What a connection is doing, and since when.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    /// Opened, nothing read yet: the first headers are due within the
    /// header timeout of the opening.
    Opened(Instant),
    /// Part of a request's headers has come (since then, or since the
    /// opening for the first request).
    Head(Instant),
    /// This many requests are being handled; their own deadlines apply.
    Busy(usize),
    /// Answered everything, waiting for the next request.
    Idle(Instant),
}

/// A connection's [`Phase`], changed by its socket (bytes arrived) and its
/// service (a request began or ended), watched by its task.
struct Activity {
    phase: Mutex<Phase>,
    changed: Notify,
}

impl Activity {
    fn new() -> Self {
        Self {
            phase: Mutex::new(Phase::Opened(Instant::now())),
            changed: Notify::new(),
        }
    }

    fn update(&self, change: impl FnOnce(Phase) -> Phase) {
        let mut phase = self.phase.lock().unwrap_or_else(PoisonError::into_inner);
        let next = change(*phase);
        if next != *phase {
            *phase = next;
            self.changed.notify_one();
        }
    }

    fn phase(&self) -> Phase {
        *self.phase.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn bytes_arrived(&self) {
        self.update(|phase| match phase {
            Phase::Opened(since) => Phase::Head(since),
            Phase::Idle(_) => Phase::Head(Instant::now()),
            other => other,
        });
    }

    fn begin(self: &Arc<Self>) -> InFlight {
        self.update(|phase| match phase {
            Phase::Busy(n) => Phase::Busy(n + 1),
            _ => Phase::Busy(1),
        });
        InFlight(self.clone())
    }

    fn end(&self) {
        self.update(|phase| match phase {
            Phase::Busy(n) if n > 1 => Phase::Busy(n - 1),
            _ => Phase::Idle(Instant::now()),
        });
    }

    fn deadline(&self, limits: &HttpSettings) -> Option<Instant> {
        match self.phase() {
            Phase::Opened(since) | Phase::Head(since) => Some(since + limits.header_timeout),
            Phase::Idle(since) => Some(since + limits.idle_timeout),
            Phase::Busy(_) => None,
        }
    }

    /// Why the connection must close now, if it must.
    fn expired(&self, limits: &HttpSettings) -> Option<&'static str> {
        let now = Instant::now();
        let late = |deadline: Option<Instant>| deadline.is_some_and(|d| d <= now);
        if !late(self.deadline(limits)) {
            return None;
        }
        match self.phase() {
            Phase::Opened(_) | Phase::Head(_) => Some("header_timeout"),
            Phase::Idle(_) => Some("idle_timeout"),
            Phase::Busy(_) => None,
        }
    }

    /// Opened and silent since. At shutdown hyper closes an idle
    /// connection once its last answer is written, but waits for a first
    /// request on a silent one: that one is closed at once.
    fn silent_since_opened(&self) -> bool {
        matches!(self.phase(), Phase::Opened(_))
    }
}

/// A request being handled; ends it when dropped (answered or abandoned).
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.end();
    }
}

/// The socket, telling its [`Activity`] when bytes arrive.
struct Watched {
    stream: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.activity.bytes_arrived();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// The router as hyper's service: marks each request in flight and hands
/// it the deadlines [`bound_request`] enforces.
struct Tracked {
    router: Router,
    limits: Arc<HttpSettings>,
    activity: Arc<Activity>,
}

impl hyper::service::Service<hyper::Request<Incoming>> for Tracked {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn call(&self, req: hyper::Request<Incoming>) -> Self::Future {
        let in_flight = self.activity.begin();
        let mut req = req.map(Body::new);
        req.extensions_mut().insert(Deadlines {
            body: self.limits.body_timeout,
            request: self.limits.request_timeout,
        });
        let router = self.router.clone();
        Box::pin(async move {
            let response = tower::ServiceExt::oneshot(router, req).await;
            drop(in_flight);
            response
        })
    }
}

/// The time a request's body and its whole handling may take, set on each
/// request by the server (a router called without it, in a test say, runs
/// unbounded).
#[derive(Debug, Clone, Copy)]
struct Deadlines {
    body: Duration,
    request: Duration,
}

/// Bounds the body's arrival and the request's handling: a body still
/// coming at its deadline, or at the request's, is a 408 (the client is
/// slow) and the connection closes; a handler past the request's deadline
/// is abandoned with a 503 (the server is slow).
pub(super) async fn bound_request(req: Request, next: Next) -> Response {
    let Some(deadlines) = req.extensions().get::<Deadlines>().copied() else {
        return next.run(req).await;
    };
    let progress = Arc::new(BodyProgress::default());
    let req = req.map(|inner| {
        progress
            .complete
            .store(inner.is_end_stream(), Ordering::Relaxed);
        Body::new(DeadlineBody {
            inner,
            deadline: Box::pin(tokio::time::sleep(deadlines.body)),
            progress: progress.clone(),
        })
    });
    let answer = tokio::time::timeout(deadlines.request, next.run(req)).await;
    let millis = |d: Duration| d.as_millis();
    let kind = match &answer {
        Ok(_) if !progress.timed_out.load(Ordering::Relaxed) => None,
        Ok(_) => Some("body"),
        Err(_) => Some("request"),
    };
    if let Some(kind) = kind {
        metrics::counter!("sextant_http_timeouts_total", "kind" => kind).increment(1);
    }
    match answer {
        Ok(response) if !progress.timed_out.load(Ordering::Relaxed) => response,
        Ok(_) => client_too_slow(format!(
            "the request body did not arrive within {} ms",
            millis(deadlines.body)
        )),
        Err(_) if !progress.complete.load(Ordering::Relaxed) => client_too_slow(format!(
            "the request did not arrive within {} ms",
            millis(deadlines.request)
        )),
        Err(_) => {
            tracing::warn!(
                timeout_ms = millis(deadlines.request) as u64,
                "a request took too long and was abandoned"
            );
            Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "timeout",
                "Service unavailable",
                format!(
                    "no answer within {} ms; the request was abandoned, and may or may not have taken effect",
                    millis(deadlines.request)
                ),
            )
            .into_response()
        }
    }
}

/// A 408 that closes the connection: the rest of a slow body is not worth
/// waiting for.
fn client_too_slow(detail: String) -> Response {
    let mut response = Problem::new(
        StatusCode::REQUEST_TIMEOUT,
        "request-timeout",
        "Request timeout",
        detail,
    )
    .into_response();
    response
        .headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    response
}

#[derive(Debug, Default)]
struct BodyProgress {
    complete: AtomicBool,
    timed_out: AtomicBool,
}

/// A body that fails once its deadline passes with frames still to come.
struct DeadlineBody {
    inner: Body,
    deadline: Pin<Box<tokio::time::Sleep>>,
    progress: Arc<BodyProgress>,
}

#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive in time")]
struct BodyTimedOut;

impl http_body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(None) => {
                this.progress.complete.store(true, Ordering::Relaxed);
                Poll::Ready(None)
            }
            Poll::Ready(Some(Ok(frame))) => {
                if this.inner.is_end_stream() {
                    this.progress.complete.store(true, Ordering::Relaxed);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(err))) => Poll::Ready(Some(Err(err.into()))),
            Poll::Pending => match this.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    this.progress.timed_out.store(true, Ordering::Relaxed);
                    Poll::Ready(Some(Err(BodyTimedOut.into())))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> HttpSettings {
        HttpSettings {
            header_timeout: Duration::from_millis(300),
            idle_timeout: Duration::from_millis(600),
            ..HttpSettings::default()
        }
    }

    #[tokio::test]
    async fn a_connection_owes_headers_from_its_opening_and_a_request_after_an_idle_wait() {
        let limits = limits();
        let activity = Arc::new(Activity::new());
        let first = activity.deadline(&limits).expect("headers are due");
        assert!(activity.silent_since_opened());
        tokio::time::sleep(Duration::from_millis(20)).await;
        activity.bytes_arrived();
        assert_eq!(
            activity.deadline(&limits),
            Some(first),
            "trickled bytes do not extend the header deadline"
        );
        tokio::time::sleep_until(first).await;
        assert_eq!(activity.expired(&limits), Some("header_timeout"));

        let request = activity.begin();
        assert_eq!(activity.deadline(&limits), None, "a request has its own");
        assert_eq!(activity.expired(&limits), None);
        drop(request);
        let idle = activity.deadline(&limits).expect("an idle deadline");
        assert!(idle > first + limits.header_timeout);
        tokio::time::sleep_until(idle).await;
        assert_eq!(activity.expired(&limits), Some("idle_timeout"));
        activity.bytes_arrived();
        assert_eq!(activity.expired(&limits), None, "the next request began");
        assert!(!activity.silent_since_opened());
    }
}

//! The connection's stream: it reports reads to the connection's activity, and rewrites
//! hyper's own bodiless error answers (to requests it could not parse) in Writer's shape.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use axum::http::StatusCode;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::activity::Activity;
use crate::api::{ApiError, ErrorCode};

/// A TCP stream that reports reads to its connection's [`Activity`] and rewrites hyper's
/// own error answers in Writer's shape.
pub(super) struct Watched {
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
    /// `inner`, reporting to `activity`.
    pub(super) fn new(inner: TcpStream, activity: Arc<Activity>) -> Self {
        Self {
            inner,
            activity,
            rewrite: Rewrite::None,
        }
    }

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
        let handling = this.activity.handling();
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
        if rewriting || (!this.activity.handling() && writer_shaped(first).is_some()) {
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

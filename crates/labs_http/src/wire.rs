//! What [`crate::serve`] does on the wire, around hyper and before the router: the answers
//! that would otherwise leave without our error shape or headers.
//!
//! - **hyper's own answers.** hyper answers a request it cannot parse by itself, before any
//!   service runs: 400 (malformed request line or header), 414 (URI past 64 KiB) and 431
//!   (head past [`MAX_HEAD_BYTES`], or more than 100 headers), each with an empty body, then
//!   closes. hyper has no hook for them, so [`Wire`], the connection's socket as hyper sees
//!   it, holds back a write that is exactly such a canned head, and once the connection has
//!   ended with the matching parse error, [`Wire::finish`] writes a problem+json answer in its
//!   place (with our security headers and a request id). Anything else it held (bytes that
//!   only looked like one) is written unchanged: a held write is released as soon as hyper
//!   reads or writes again.
//! - **Host.** An HTTP/1.1 request without a `Host`, or any request with two or a malformed
//!   one, is answered 400 (RFC 9112 §3.2) before routing ([`refusal`]).
//! - **Long URIs.** A request target past [`MAX_URI_BYTES`] is answered 414 before routing.
//! - **Unread bodies.** When the router answers without reading the whole request body (a
//!   413, a 401 before the body), hyper closes the connection after the answer rather than
//!   reading what the client still sends; [`track_body`] notices and the answer says
//!   `Connection: close`, so that the client (or the proxy's keep-alive pool) does not send its
//!   next request into a connection about to close.
//!
//! Rejected: parsing request heads ourselves in front of hyper (a second HTTP parser, and to
//! find where the next head starts it would have to follow every body's framing); rewriting
//! hyper's bytes wherever they match (a response body may hold the same bytes); patching or
//! forking hyper. The hold-back relies on what hyper's server does after a parse error (one
//! head, written alone, then the connection ends with that error); a hyper that stops doing
//! so makes the tests in `tests/wire.rs` fail, not the server.
//!
//! About 400 lines, most of them this explanation; its unit tests are in `wire/tests.rs`.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};

use axum::http::{HeaderMap, HeaderValue, Request, Response, StatusCode, Version, header};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};

use crate::layers::SecurityHeaders;
use crate::problem::{ApiError, PROBLEM_JSON};
use crate::request_id::X_REQUEST_ID;

/// The longest request target answered; longer ones get 414. nginx's default
/// (`large_client_header_buffers 4 8k`) refuses longer request lines too, so the limit is the
/// same with or without the proxy.
pub const MAX_URI_BYTES: usize = 8 * 1024;

/// The largest request head (request line and headers) hyper reads; larger ones get 431.
/// Room for a JWT, cookies and a proxy's forwarding headers many times over; hyper's own
/// bound (its ~400 KiB read buffer) would let each connection hold far more.
pub const MAX_HEAD_BYTES: usize = 32 * 1024;

/// The connection's socket as hyper sees it: passes everything through, except that a write
/// which is exactly one of hyper's canned error heads is held until we know what it was.
#[derive(Debug)]
pub(crate) struct Wire<T> {
    inner: T,
    held: Vec<u8>,
    /// How much of `held` has been written since it was released.
    released: usize,
    releasing: bool,
}

impl<T: AsyncRead + AsyncWrite + Unpin> Wire<T> {
    pub(crate) fn new(inner: T) -> Self {
        Self {
            inner,
            held: Vec::new(),
            released: 0,
            releasing: false,
        }
    }

    /// Writes out a held write: hyper went on reading or writing, so it was not its last.
    fn poll_release(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.held.is_empty() {
            return Poll::Ready(Ok(()));
        }
        self.releasing = true;
        while self.released < self.held.len() {
            let written =
                ready!(Pin::new(&mut self.inner).poll_write(cx, &self.held[self.released..]))?;
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.released += written;
        }
        self.held.clear();
        self.released = 0;
        self.releasing = false;
        Poll::Ready(Ok(()))
    }

    /// After hyper is done with the connection: writes the problem+json answer in place of a
    /// held canned head when the connection ended with the parse error it answers, else what
    /// was held; then closes the socket.
    pub(crate) async fn finish(
        mut self,
        outcome: &Result<(), hyper::Error>,
        security: &SecurityHeaders,
    ) -> io::Result<()> {
        if !self.held.is_empty() {
            let replacement = match (canned_status(&self.held), outcome) {
                (Some(status), Err(error)) if answers(status, error) && !self.releasing => {
                    Some(canned_replacement(status, &self.held, security))
                }
                _ => None,
            };
            match replacement {
                Some(bytes) => self.inner.write_all(&bytes).await?,
                None => {
                    let rest = self.held.split_off(self.released);
                    self.inner.write_all(&rest).await?;
                }
            }
        }
        self.inner.flush().await?;
        self.inner.shutdown().await
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncRead for Wire<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_release(cx))?;
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Wire<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_release(cx))?;
        if canned_status(buf).is_some() {
            this.held.extend_from_slice(buf);
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_release(cx))?;
        // hyper writes a canned head as one buffer (it has no body).
        let mut non_empty = bufs.iter().filter(|buf| !buf.is_empty());
        if let (Some(only), None) = (non_empty.next(), non_empty.next())
            && canned_status(only).is_some()
        {
            this.held.extend_from_slice(only);
            return Poll::Ready(Ok(only.len()));
        }
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // A held head stays held: hyper flushes its canned answer too, before it gives up.
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // `serve` runs hyper without shutdown and calls `finish`; this is for completeness.
        let this = self.get_mut();
        ready!(this.poll_release(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

/// The statuses hyper answers parse errors with, and what we say instead.
fn canned_problem(status: StatusCode) -> ApiError {
    let (code, detail) = match status {
        StatusCode::URI_TOO_LONG => (
            "uri-too-long",
            "The request's URI is longer than this server accepts.",
        ),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => (
            "headers-too-large",
            "The request's headers are larger than this server accepts.",
        ),
        _ => (
            "malformed-request",
            "The request is not well-formed HTTP/1.1.",
        ),
    };
    ApiError::with_extensions(status, code, detail, serde_json::Map::new())
}

/// `Some(status)` when `bytes` is exactly a head hyper writes for a parse error: its status
/// line, then only `content-length: 0`, `date` and `connection`, then the blank line.
fn canned_status(bytes: &[u8]) -> Option<StatusCode> {
    let head = bytes.strip_suffix(b"\r\n\r\n")?;
    let head = std::str::from_utf8(head).ok()?;
    let mut lines = head.split("\r\n");
    let status = match lines.next()? {
        "HTTP/1.1 400 Bad Request" => StatusCode::BAD_REQUEST,
        "HTTP/1.1 414 URI Too Long" => StatusCode::URI_TOO_LONG,
        "HTTP/1.1 431 Request Header Fields Too Large" => {
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
        }
        _ => return None,
    };
    let mut saw_length = false;
    for line in lines {
        let (name, value) = line.split_once(": ")?;
        match name.to_ascii_lowercase().as_str() {
            "content-length" if value == "0" => saw_length = true,
            "date" | "connection" => {}
            _ => return None,
        }
    }
    saw_length.then_some(status)
}

/// Whether the connection's error is the parse error hyper answers with `status`.
fn answers(status: StatusCode, error: &hyper::Error) -> bool {
    if status == StatusCode::BAD_REQUEST {
        error.is_parse() && !error.is_parse_too_large()
    } else {
        error.is_parse_too_large()
    }
}

/// The problem+json answer, as bytes on the wire, that replaces hyper's canned `held` head.
fn canned_replacement(status: StatusCode, held: &[u8], security: &SecurityHeaders) -> Vec<u8> {
    let (headers, body) = problem_parts(&canned_problem(status), security);
    let mut out = format!(
        "HTTP/1.1 {} {}\r\n",
        status.as_str(),
        status.canonical_reason().unwrap_or("Error")
    )
    .into_bytes();
    for (name, value) in &headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("content-length: {}\r\n", body.len()).as_bytes());
    out.extend_from_slice(b"connection: close\r\n");
    // hyper's own date line, kept as it wrote it.
    let held = String::from_utf8_lossy(held);
    if let Some(date) = held
        .split("\r\n")
        .find(|line| line.to_ascii_lowercase().starts_with("date: "))
    {
        out.extend_from_slice(date.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&body);
    out
}

/// The headers and body of a problem answered outside the router: it gets a request id of
/// its own (no layer made one) and the security headers.
fn problem_parts(error: &ApiError, security: &SecurityHeaders) -> (HeaderMap, Vec<u8>) {
    let id = uuid::Uuid::now_v7().to_string();
    let mut problem = error.to_problem();
    problem.request_id = Some(id.clone());
    // Plain strings and numbers: serialising cannot fail.
    let body = serde_json::to_vec(&problem).unwrap_or_default();
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    if let Ok(id) = HeaderValue::from_str(&id) {
        headers.insert(X_REQUEST_ID, id);
    }
    security.add_to(&mut headers);
    (headers, body)
}

/// Why a request hyper parsed is refused before routing, if it is.
pub(crate) fn refusal<B>(request: &Request<B>) -> Option<ApiError> {
    let hosts = request.headers().get_all(header::HOST);
    let mut hosts = hosts.iter();
    let host_ok = match (hosts.next(), hosts.next()) {
        (None, _) => request.version() < Version::HTTP_11,
        (Some(host), None) => is_valid_host(host),
        (Some(_), Some(_)) => false,
    };
    if !host_ok {
        return Some(ApiError::BadRequest {
            code: "invalid-host",
            detail: "An HTTP/1.1 request carries exactly one Host header, naming a host and optionally a port.",
        });
    }
    let uri = request.uri();
    let uri_len = uri.path_and_query().map_or(0, |pq| pq.as_str().len())
        + uri
            .authority()
            .map_or(0, |authority| authority.as_str().len());
    if uri_len > MAX_URI_BYTES {
        return Some(canned_problem(StatusCode::URI_TOO_LONG));
    }
    None
}

/// `host[:port]`, without user info (`Authority` alone would accept `user@host`); or empty,
/// which RFC 9110 §7.2 allows for a target without an authority.
fn is_valid_host(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    if bytes.is_empty() {
        return true;
    }
    if bytes.contains(&b'@') {
        return false;
    }
    let Ok(authority) = axum::http::uri::Authority::try_from(bytes) else {
        return false;
    };
    // `Authority` takes any text after the last `:` for a port; a port is digits.
    match authority.as_str()[authority.host().len()..].strip_prefix(':') {
        None => authority.as_str().len() == authority.host().len(),
        Some(port) => !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()),
    }
}

/// The answer to a request refused before routing.
pub(crate) fn refused(error: &ApiError, security: &SecurityHeaders) -> Response<axum::body::Body> {
    let status = error.status();
    let (headers, body) = problem_parts(error, security);
    let mut response = Response::new(axum::body::Body::from(body));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

/// Wraps a request body so that [`BodyRead::was_read`] tells whether it was read to its end.
pub(crate) fn track_body(body: Incoming) -> (TrackedBody, BodyRead) {
    let done = Arc::new(AtomicBool::new(body.is_end_stream()));
    (
        TrackedBody {
            inner: body,
            done: done.clone(),
        },
        BodyRead(done),
    )
}

/// Whether a request's body has been read whole (or had none).
#[derive(Debug)]
pub(crate) struct BodyRead(Arc<AtomicBool>);

impl BodyRead {
    pub(crate) fn was_read(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    /// Says `Connection: close` on `response` when the body was left unread: hyper will not
    /// read the rest, so it closes the connection after this answer.
    ///
    /// Decided when the router has answered: our handlers read the body (or never will)
    /// before answering; none streams its answer while still reading.
    pub(crate) fn mark<B>(&self, response: &mut Response<B>) {
        if !self.was_read() {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
    }
}

/// A request body that records reaching its end.
#[derive(Debug)]
pub(crate) struct TrackedBody {
    inner: Incoming,
    done: Arc<AtomicBool>,
}

impl Body for TrackedBody {
    type Data = <Incoming as Body>::Data;
    type Error = <Incoming as Body>::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        let frame = ready!(Pin::new(&mut this.inner).poll_frame(cx));
        if frame.is_none() || this.inner.is_end_stream() {
            this.done.store(true, Ordering::Release);
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests;

//! What a client sees on a real socket: `labs_http::serve` on port 0, spoken to byte by byte,
//! for the answers that happen outside the router (hyper's own parse errors, Host, URI
//! length) and for how a connection ends after an early answer.

use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use labs_http::serve::{Limits, serve};
use labs_http::{HttpConfig, Problem, layers};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

fn config() -> HttpConfig {
    HttpConfig {
        bind: "127.0.0.1:0".parse().unwrap(),
        metrics_bind: "127.0.0.1:0".parse().unwrap(),
        root_path: String::new(),
        request_timeout: Duration::from_secs(10),
        body_limit: 1024,
        cors_origins: Vec::new(),
        shutdown_timeout: Duration::from_secs(1),
        header_read_timeout: Duration::from_secs(10),
        ready_timeout: Duration::from_secs(1),
        docs: true,
        hsts_max_age: Duration::from_secs(365 * 24 * 3600),
        hsts_include_subdomains: true,
        production: true,
    }
}

/// A server on a free port, stopped when the guard drops.
struct Server {
    address: std::net::SocketAddr,
    stop: CancellationToken,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn server() -> Server {
    let config = config();
    let routes = Router::new()
        .route("/ok", get(|| async { "ok" }))
        .route("/echo", post(|body: String| async move { body }))
        .route(
            "/looks-canned",
            get(|| async { axum::body::Body::new(Frames(LOOKS_CANNED.to_vec(), false)) }),
        );
    let app = layers::apply(routes, &config);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    tokio::spawn(serve(
        "test",
        listener,
        app,
        stop.clone(),
        Limits::from(&config),
    ));
    Server { address, stop }
}

/// One response as it came off the socket.
#[derive(Debug)]
struct Raw {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Raw {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The problem document, checked against the rules every error answer follows.
    fn problem(&self) -> Problem {
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "{self:?}"
        );
        let problem: Problem = serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)));
        assert_eq!(problem.status, self.status);
        assert_eq!(problem.kind, format!("urn:labs:problem:{}", problem.code));
        assert!(problem.request_id.is_some());
        assert_eq!(problem.request_id.as_deref(), self.header("x-request-id"));
        assert_eq!(self.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(self.header("x-frame-options"), Some("DENY"));
        assert!(self.header("strict-transport-security").is_some());
        problem
    }
}

/// Reads one response (head, then a `content-length` body) from `stream`.
async fn read_response(stream: &mut TcpStream, pending: &mut Vec<u8>) -> Option<Raw> {
    let head_end = loop {
        if let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
        let mut chunk = [0; 4096];
        let read = stream.read(&mut chunk).await.ok()?;
        if read == 0 {
            return None;
        }
        pending.extend_from_slice(&chunk[..read]);
    };
    let head = String::from_utf8(pending[..head_end].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .map(|line| {
            let (name, value) = line.split_once(": ").unwrap();
            (name.to_owned(), value.to_owned())
        })
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .map_or(0, |(_, v)| v.parse().unwrap());
    pending.drain(..head_end + 4);
    while pending.len() < length {
        let mut chunk = [0; 4096];
        let read = stream.read(&mut chunk).await.unwrap();
        assert_ne!(read, 0, "the body was cut short");
        pending.extend_from_slice(&chunk[..read]);
    }
    let body = pending.drain(..length).collect();
    Some(Raw {
        status,
        headers,
        body,
    })
}

/// Sends `request` on a new connection and reads the one answer; then checks that the
/// server closed the connection (as it must after each of these errors).
async fn exchange_then_closed(server: &Server, request: &[u8]) -> Raw {
    let mut stream = TcpStream::connect(server.address).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut pending = Vec::new();
    // A guard against a hanging server, not a timing assertion.
    tokio::time::timeout(Duration::from_secs(10), async {
        let answer = read_response(&mut stream, &mut pending)
            .await
            .expect("an answer");
        let mut rest = Vec::new();
        let _ = stream.read_to_end(&mut rest).await;
        pending.extend(rest);
        assert!(
            pending.is_empty(),
            "nothing after the answer: {}",
            String::from_utf8_lossy(&pending)
        );
        answer
    })
    .await
    .expect("the server answered and closed")
}

#[tokio::test]
async fn a_malformed_request_line_is_a_400_problem() {
    let server = server().await;
    let answer = exchange_then_closed(&server, b"NOT HTTP AT ALL\r\n\r\n").await;
    assert_eq!(answer.status, 400);
    assert_eq!(answer.problem().code, "malformed-request");
    assert_eq!(answer.header("connection"), Some("close"));
}

#[tokio::test]
async fn a_malformed_header_is_a_400_problem() {
    let server = server().await;
    let answer = exchange_then_closed(
        &server,
        b"GET /ok HTTP/1.1\r\nHost: labs\r\nbad header line\r\n\r\n",
    )
    .await;
    assert_eq!(answer.status, 400);
    assert_eq!(answer.problem().code, "malformed-request");
}

#[tokio::test]
async fn a_20_kb_uri_is_a_414_problem() {
    let server = server().await;
    let request = format!(
        "GET /ok?q={} HTTP/1.1\r\nHost: labs\r\n\r\n",
        "a".repeat(20 * 1024)
    );
    let mut stream = TcpStream::connect(server.address).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let answer = read_response(&mut stream, &mut Vec::new()).await.unwrap();
    assert_eq!(answer.status, 414);
    assert_eq!(answer.problem().code, "uri-too-long");
}

#[tokio::test]
async fn huge_headers_are_a_431_problem() {
    let server = server().await;
    let request = format!(
        "GET /ok HTTP/1.1\r\nHost: labs\r\nX-Big: {}\r\n\r\n",
        "a".repeat(40 * 1024)
    );
    let answer = exchange_then_closed(&server, request.as_bytes()).await;
    assert_eq!(answer.status, 431);
    assert_eq!(answer.problem().code, "headers-too-large");
}

#[tokio::test]
async fn too_many_headers_are_a_431_problem() {
    let server = server().await;
    let many: String = (0..150).map(|i| format!("X-H{i}: v\r\n")).collect();
    let request = format!("GET /ok HTTP/1.1\r\nHost: labs\r\n{many}\r\n");
    let answer = exchange_then_closed(&server, request.as_bytes()).await;
    assert_eq!(answer.status, 431);
    assert_eq!(answer.problem().code, "headers-too-large");
}

#[tokio::test]
async fn an_http_1_1_request_without_host_is_a_400_problem() {
    let server = server().await;
    let mut stream = TcpStream::connect(server.address).await.unwrap();
    stream.write_all(b"GET /ok HTTP/1.1\r\n\r\n").await.unwrap();
    let answer = read_response(&mut stream, &mut Vec::new()).await.unwrap();
    assert_eq!(answer.status, 400);
    assert_eq!(answer.problem().code, "invalid-host");
}

#[tokio::test]
async fn a_request_with_two_hosts_is_a_400_problem() {
    let server = server().await;
    let mut stream = TcpStream::connect(server.address).await.unwrap();
    stream
        .write_all(b"GET /ok HTTP/1.1\r\nHost: labs\r\nHost: evil.example\r\n\r\n")
        .await
        .unwrap();
    let answer = read_response(&mut stream, &mut Vec::new()).await.unwrap();
    assert_eq!(answer.status, 400);
    assert_eq!(answer.problem().code, "invalid-host");
}

#[tokio::test]
async fn an_http_1_0_request_without_host_is_served() {
    let server = server().await;
    let answer = exchange_then_closed(&server, b"GET /ok HTTP/1.0\r\n\r\n").await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body, b"ok");
}

#[tokio::test]
async fn an_early_answer_to_an_unread_body_says_connection_close() {
    let server = server().await;
    // Announces 100 kB (over the 1 KiB limit) and sends only the start: the body limit
    // answers 413 without reading it, and hyper will not read the rest.
    let mut request =
        b"POST /echo HTTP/1.1\r\nHost: labs\r\nContent-Type: text/plain\r\nContent-Length: 100000\r\n\r\n"
            .to_vec();
    request.extend_from_slice(&[b'x'; 100]);
    let answer = exchange_then_closed(&server, &request).await;
    assert_eq!(answer.status, 413);
    assert_eq!(answer.problem().code, "payload-too-large");
    assert_eq!(answer.header("connection"), Some("close"));
}

#[tokio::test]
async fn a_read_body_keeps_the_connection_open_for_the_next_request() {
    let server = server().await;
    let mut stream = TcpStream::connect(server.address).await.unwrap();
    let mut pending = Vec::new();
    for _ in 0..2 {
        stream
            .write_all(
                b"POST /echo HTTP/1.1\r\nHost: labs\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello",
            )
            .await
            .unwrap();
        let answer = read_response(&mut stream, &mut pending).await.unwrap();
        assert_eq!(answer.status, 200);
        assert_eq!(answer.body, b"hello");
        assert_eq!(answer.header("connection"), None);
        assert_eq!(answer.header("x-content-type-options"), Some("nosniff"));
    }
}

/// Bytes exactly like hyper's own 400 head, as the second write of an answer.
const LOOKS_CANNED: [&[u8]; 2] = [
    b"start:",
    b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n",
];

/// A body of known total length whose frames come one poll apart, so that hyper writes the
/// last one alone.
struct Frames(Vec<&'static [u8]>, bool);

impl hyper::body::Body for Frames {
    type Data = axum::body::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        // Not ready at every other poll (and at once ready again): hyper flushes meanwhile.
        self.1 = !self.1;
        if self.1 {
            cx.waker().wake_by_ref();
            return std::task::Poll::Pending;
        }
        let next = (!self.0.is_empty()).then(|| self.0.remove(0));
        std::task::Poll::Ready(next.map(|bytes| {
            Ok(hyper::body::Frame::data(axum::body::Bytes::from_static(
                bytes,
            )))
        }))
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::SizeHint::with_exact(self.0.iter().map(|b| b.len() as u64).sum())
    }
}

#[tokio::test]
async fn an_answer_whose_last_write_looks_like_hyper_s_own_error_arrives_unchanged() {
    // The hold-back keeps such a write until hyper reads again: it must then send it as is.
    let server = server().await;
    let mut stream = TcpStream::connect(server.address).await.unwrap();
    let mut pending = Vec::new();
    for _ in 0..2 {
        stream
            .write_all(b"GET /looks-canned HTTP/1.1\r\nHost: labs\r\n\r\n")
            .await
            .unwrap();
        let answer = tokio::time::timeout(
            Duration::from_secs(10),
            read_response(&mut stream, &mut pending),
        )
        .await
        .expect("the held write was released")
        .unwrap();
        assert_eq!(answer.status, 200);
        assert_eq!(answer.body, LOOKS_CANNED.concat());
    }
}

#[tokio::test]
async fn a_body_that_looks_like_hyper_s_own_error_is_sent_unchanged() {
    // The hold-back must not take an answer's bytes for hyper's canned head.
    let server = server().await;
    let fake = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n";
    let mut stream = TcpStream::connect(server.address).await.unwrap();
    let mut pending = Vec::new();
    for _ in 0..2 {
        let request = format!(
            "POST /echo HTTP/1.1\r\nHost: labs\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
            fake.len()
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        stream.write_all(fake).await.unwrap();
        let answer = read_response(&mut stream, &mut pending).await.unwrap();
        assert_eq!(answer.status, 200);
        assert_eq!(answer.body, fake);
    }
}

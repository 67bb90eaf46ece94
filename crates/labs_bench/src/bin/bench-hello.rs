//! The HTTP ceiling of this machine: a bare hyper HTTP/1.1 server answering every request with
//! the same JSON body as `GET /api/ext/echo`, on a Tokio runtime like the API's (one worker
//! thread per core). No routing, no middleware, no logs, no metrics: what labs' echo is
//! divided by in bench/http.sh (docs/PERFORMANCE.md). Prints `listening` once bound.

#![expect(clippy::print_stdout, reason = "a benchmark reports on stdout")]

use std::convert::Infallible;
use std::net::SocketAddr;

use clap::Parser;
use http_body_util::Full;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

#[derive(Parser)]
struct Cli {
    #[arg(long, default_value = "127.0.0.1:0")]
    bind: SocketAddr,
}

const BODY: &[u8] = br#"{"message":"Hello World"}"#;

async fn hello(
    _req: Request<hyper::body::Incoming>,
) -> Result<Response<Full<&'static [u8]>>, Infallible> {
    let mut response = Response::new(Full::new(BODY));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(response)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let listener = tokio::net::TcpListener::bind(cli.bind).await?;
    println!("listening on {}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        // As the API's listener does: no Nagle delay on small answers.
        stream.set_nodelay(true)?;
        tokio::spawn(async move {
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service_fn(hello))
                .await;
        });
    }
}

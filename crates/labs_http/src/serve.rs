//! Serving an application on a listener until shutdown, with a bounded drain and slow-client
//! protection; what happens on the wire around hyper is in [`crate::wire`].

use std::convert::Infallible;
use std::future::Future;
use std::pin::pin;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request};
use axum::response::Response;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::{Service, ServiceExt};

use crate::layers::SecurityHeaders;
use crate::wire::{self, Wire};

/// The time limits of a listener, and the headers of the answers it writes itself.
#[derive(Debug, Clone)]
pub struct Limits {
    /// After shutdown, how long in-flight requests may take to finish.
    pub drain: Duration,
    /// How long a client may take to send a request's headers (from the connection, or from
    /// the end of its previous request). A client that trickles them (slowloris) is
    /// disconnected instead of holding a connection and a task forever; the request timeout
    /// covers the rest of the request.
    pub header_read_timeout: Duration,
    /// The security headers of the answers written before (or instead of) the router's.
    pub security_headers: SecurityHeaders,
}

impl From<&crate::HttpConfig> for Limits {
    fn from(config: &crate::HttpConfig) -> Self {
        Self {
            drain: config.shutdown_timeout,
            header_read_timeout: config.header_read_timeout,
            security_headers: SecurityHeaders::new(config),
        }
    }
}

/// Serves `app` (named `name` in logs) on `listener` until `shutdown` is cancelled, then stops
/// accepting, lets in-flight requests finish for at most `limits.drain`, and returns.
///
/// Our own connection loop over hyper rather than `axum::serve`: the same HTTP/1.1 server, plus
/// a header read timeout (which needs a timer that `axum::serve` does not set) and a drain
/// bound (its graceful shutdown waits for every connection forever, so a client stuck half-way
/// through its headers would hold the process until the orchestrator kills it). The listener
/// and the shutdown signal are arguments so that tests bind port 0 and stop the server at will.
pub async fn serve<S>(
    name: &'static str,
    listener: TcpListener,
    app: S,
    shutdown: CancellationToken,
    limits: Limits,
) -> std::io::Result<()>
where
    // The whole application (`crate::HttpApp`) or a plain `Router` (the metrics listener).
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + Unpin + 'static,
    S::Future: Send,
{
    let Limits {
        drain,
        header_read_timeout,
        security_headers,
    } = limits;
    let address = listener.local_addr()?;
    tracing::info!(%address, listener = name, "listening");
    let connections = TaskTracker::new();
    loop {
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, mostly: back off instead of spinning.
                    tracing::warn!(%error, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let security = security_headers.clone();
        let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let refusal = wire::refusal(&request);
            let (parts, body) = request.into_parts();
            let (body, body_read) = wire::track_body(body);
            let mut request = hyper::Request::from_parts(parts, axum::body::Body::new(body));
            // What `into_make_service_with_connect_info` would add: the peer, for client IPs.
            request.extensions_mut().insert(ConnectInfo(peer));
            let app = app.clone();
            let security = security.clone();
            // Boxed: `poll_without_shutdown` wants an `Unpin` future.
            Box::pin(async move {
                let mut response = match refusal {
                    Some(error) => {
                        tracing::debug!(%peer, code = %error.code(), "request refused before routing");
                        wire::refused(&error, &security)
                    }
                    None => app.oneshot(request).await?,
                };
                body_read.mark(&mut response);
                Ok::<_, std::convert::Infallible>(response)
            })
        });
        let shutdown = shutdown.clone();
        let security = security_headers.clone();
        connections.spawn(async move {
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(header_read_timeout)
                .max_header_size(wire::MAX_HEAD_BYTES);
            // No `with_upgrades` (nothing here upgrades): a plain connection can be run without
            // shutting the socket down and then taken apart, so that `Wire::finish` still
            // writes after hyper is done.
            let mut connection = builder.serve_connection(TokioIo::new(Wire::new(stream)), service);
            let mut shutting_down = pin!(shutdown.cancelled());
            let mut asked_to_stop = false;
            let outcome = std::future::poll_fn(|cx| {
                if !asked_to_stop && shutting_down.as_mut().poll(cx).is_ready() {
                    // Finish the request in flight, then close (idle connections close now).
                    asked_to_stop = true;
                    std::pin::Pin::new(&mut connection).graceful_shutdown();
                }
                connection.poll_without_shutdown(cx)
            })
            .await;
            if let Err(error) = &outcome {
                tracing::debug!(%error, %peer, "connection ended with an error");
            }
            let wire = connection.into_parts().io.into_inner();
            if let Err(error) = wire.finish(&outcome, &security).await {
                tracing::debug!(%error, %peer, "cannot close the connection cleanly");
            }
        });
    }
    // Closed at once: connections still in the kernel's backlog are refused now rather than
    // left waiting for a drain that will not serve them.
    drop(listener);
    connections.close();
    tracing::info!(
        drain_ms = drain.as_millis() as u64,
        connections = connections.len(),
        "shutting down: draining in-flight requests"
    );
    if tokio::time::timeout(drain, connections.wait())
        .await
        .is_ok()
    {
        tracing::info!("all connections closed");
    } else {
        tracing::warn!(
            drain_ms = drain.as_millis() as u64,
            connections = connections.len(),
            "drain timeout reached; closing the remaining connections"
        );
    }
    Ok(())
}

//! Serving a router on a listener until shutdown, with a bounded drain and slow-client
//! protection.

use std::pin::pin;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

/// The time limits of a listener.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// After shutdown, how long in-flight requests may take to finish.
    pub drain: Duration,
    /// How long a client may take to send a request's headers (from the connection, or from
    /// the end of its previous request). A client that trickles them (slowloris) is
    /// disconnected instead of holding a connection and a task forever; the request timeout
    /// covers the rest of the request.
    pub header_read_timeout: Duration,
}

impl From<&crate::HttpConfig> for Limits {
    fn from(config: &crate::HttpConfig) -> Self {
        Self {
            drain: config.shutdown_timeout,
            header_read_timeout: config.header_read_timeout,
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
pub async fn serve(
    name: &'static str,
    listener: TcpListener,
    app: Router,
    shutdown: CancellationToken,
    limits: Limits,
) -> std::io::Result<()> {
    let Limits {
        drain,
        header_read_timeout,
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
        let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let mut request = request.map(axum::body::Body::new);
            // What `into_make_service_with_connect_info` would add: the peer, for client IPs.
            request.extensions_mut().insert(ConnectInfo(peer));
            app.clone().oneshot(request)
        });
        let shutdown = shutdown.clone();
        connections.spawn(async move {
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(header_read_timeout);
            let mut connection = pin!(
                builder
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades()
            );
            let outcome = tokio::select! {
                outcome = connection.as_mut() => outcome,
                () = shutdown.cancelled() => {
                    // Finish the request in flight, then close (idle connections close now).
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(error) = outcome {
                tracing::debug!(%error, %peer, "connection ended with an error");
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

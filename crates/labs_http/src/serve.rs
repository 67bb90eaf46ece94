//! Serving a router on a listener until shutdown, with a bounded drain.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Serves `app` (named `name` in logs) on `listener` until `shutdown` is cancelled, then stops accepting, lets
/// in-flight requests finish for at most `drain`, and returns.
///
/// The listener and the shutdown signal are arguments so that tests can bind port 0 and stop
/// the server when they like. The drain bound matters: axum's graceful shutdown alone waits for
/// every open connection forever, and a client stuck half-way through its headers would hold
/// the process until the orchestrator kills it.
pub async fn serve(
    name: &'static str,
    listener: TcpListener,
    app: Router,
    shutdown: CancellationToken,
    drain: Duration,
) -> std::io::Result<()> {
    let address = listener.local_addr()?;
    tracing::info!(%address, listener = name, "listening");
    let server = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown.clone().cancelled_owned());
    let drain_elapsed = async {
        shutdown.cancelled().await;
        tracing::info!(
            drain_ms = drain.as_millis() as u64,
            "shutting down: draining in-flight requests"
        );
        tokio::time::sleep(drain).await;
    };
    tokio::select! {
        served = server => {
            tracing::info!("all connections closed");
            served
        }
        () = drain_elapsed => {
            tracing::warn!(drain_ms = drain.as_millis() as u64, "drain timeout reached; closing the remaining connections");
            Ok(())
        }
    }
}

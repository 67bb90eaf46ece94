//! Serving under a root path (`LABS_ROOT_PATH`, default `/api`) whatever the proxy does.
//!
//! A reverse proxy in front of the API either forwards `/api/ext/echo` as it is, or strips
//! the prefix and forwards `/ext/echo`. We accept both: a path that starts with the root path
//! has it removed before routing, any other path is routed as it is. One setting then fits
//! both proxy set-ups, and probes that talk to the pod directly can leave the prefix off.
//!
//! Alternatives rejected: a `strip`/`keep` switch (a second setting to get wrong, and a
//! mismatch 404s everything), and `Router::nest` under the prefix alone (breaks stripping
//! proxies and direct probes).

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::Router;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{OriginalUri, Request};
use axum::http::Uri;
use axum::http::uri::PathAndQuery;
use axum::response::Response;
use axum::routing::future::RouteFuture;
use tower::{BoxError, Service};

/// A process's whole HTTP application: its router, reached both under the root path and
/// without it. What `serve` runs and `TestApp` calls.
///
/// A plain service in front of the router rather than an outer `Router` with the app as its
/// fallback (as before 2026-12-08): every level of boxed `Route` costs each request a clone of
/// the boxed services below it (one allocation per level) and a boxed future, and this one
/// did nothing but hand the request on.
#[derive(Debug, Clone)]
pub struct HttpApp {
    root: Option<Arc<str>>,
    router: Router,
}

/// Wraps `app` so that it answers both under `root_path` and without it (`""`: only without).
pub fn serve_under(root_path: &str, app: Router) -> HttpApp {
    HttpApp {
        root: (!root_path.is_empty()).then(|| root_path.into()),
        router: app,
    }
}

impl<B> Service<Request<B>> for HttpApp
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = RouteFuture<Infallible>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Service::<Request>::poll_ready(&mut self.router, cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let request = request.map(Body::new);
        let request = match &self.root {
            Some(root) => strip_root(root, request),
            None => request,
        };
        // Routing (and so `MatchedPath`) happens in the router, on the path without the prefix.
        self.router.call(request)
    }
}

fn strip_root(root: &str, mut req: Request) -> Request {
    let Some(rest) = req.uri().path().strip_prefix(root) else {
        return req;
    };
    // `/api` and `/api/x`, not `/apiary`.
    if !(rest.is_empty() || rest.starts_with('/')) {
        return req;
    }
    let path = if rest.is_empty() { "/" } else { rest };
    let path_and_query = match req.uri().query() {
        Some(query) => format!("{path}?{query}"),
        None => path.to_owned(),
    };
    let original = req.uri().clone();
    let mut parts = original.clone().into_parts();
    // Built from an already valid URI minus a prefix, so this parse cannot fail.
    if let Ok(pq) = PathAndQuery::try_from(path_and_query) {
        parts.path_and_query = Some(pq);
        if let Ok(uri) = Uri::from_parts(parts) {
            *req.uri_mut() = uri;
            // The path the client sent, for the request's log line (the router adds it only
            // when it is missing, and would see the stripped one).
            req.extensions_mut().insert(OriginalUri(original));
        }
    }
    req
}

#[cfg(test)]
mod tests {
    use super::strip_root;
    use axum::extract::Request;

    fn stripped(uri: &str) -> String {
        let req = Request::builder()
            .uri(uri)
            .body(axum::body::Body::empty())
            .unwrap();
        strip_root("/api", req).uri().to_string()
    }

    #[test]
    fn the_root_path_is_removed_only_as_a_whole_segment() {
        assert_eq!(stripped("/api/ext/echo?x=1"), "/ext/echo?x=1");
        assert_eq!(stripped("/api"), "/");
        assert_eq!(stripped("/api/"), "/");
        assert_eq!(stripped("/ext/echo"), "/ext/echo");
        assert_eq!(stripped("/apiary"), "/apiary");
    }

    #[test]
    fn a_stripped_request_keeps_the_path_the_client_sent() {
        let req = Request::builder()
            .uri("/api/ext/echo?x=1")
            .body(axum::body::Body::empty())
            .unwrap();
        let req = strip_root("/api", req);
        let original = req.extensions().get::<axum::extract::OriginalUri>();
        assert_eq!(original.map(|o| o.path()), Some("/api/ext/echo"));
    }
}

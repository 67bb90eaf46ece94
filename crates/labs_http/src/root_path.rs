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

use axum::Router;
use axum::extract::Request;
use axum::http::Uri;
use axum::http::uri::PathAndQuery;
use tower::Layer;
use tower::util::MapRequestLayer;

/// Wraps `app` so that it answers both under `root_path` and without it.
pub fn serve_under(root_path: &str, app: Router) -> Router {
    if root_path.is_empty() {
        return app;
    }
    let root: std::sync::Arc<str> = root_path.into();
    let strip = MapRequestLayer::new(move |req: Request| strip_root(&root, req));
    // An outer router whose only job is to hand the rewritten request to `app`: routing (and
    // so `MatchedPath`) happens inside, on the path without the prefix.
    Router::new().fallback_service(strip.layer(app))
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
    let mut parts = req.uri().clone().into_parts();
    // Built from an already valid URI minus a prefix, so this parse cannot fail.
    if let Ok(pq) = PathAndQuery::try_from(path_and_query) {
        parts.path_and_query = Some(pq);
        if let Ok(uri) = Uri::from_parts(parts) {
            *req.uri_mut() = uri;
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
}

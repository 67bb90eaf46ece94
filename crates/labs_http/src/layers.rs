//! The middleware stack, applied in one place ([`apply`]) so that its order can be read.
//!
//! Outermost first (a request passes down this list, its response back up). Items 1 to 5 are
//! one service of ours, `RequestScope`, in that order; the rest are layers of their own.
//!
//! 1. **security headers**: every response leaves with `X-Content-Type-Options: nosniff`,
//!    `Referrer-Policy: no-referrer`, framing refused (`Content-Security-Policy:
//!    default-src 'none'; frame-ancestors 'none'` and `X-Frame-Options: DENY`) and, in
//!    production, `Strict-Transport-Security` (see [`SecurityHeaders`]). Outermost, so that
//!    every answer below (404, 405, 413, rewritten problems, panics, timeouts, CORS
//!    preflights) carries them; a response that set one of them itself (the docs UI's own
//!    CSP) keeps its own.
//! 2. **sensitive headers**: `Authorization`, `Cookie`, `Set-Cookie` are marked so that no
//!    layer below can print them.
//! 3. **request id**: keeps a well-formed `x-request-id` from the proxy or makes a UUIDv7,
//!    puts it in the response, and makes it the current request's id for error bodies; reads
//!    the caller's W3C `traceparent`.
//! 4. **trace**: one span per request holding the id, trace id, method and matched route, so
//!    that every log line of the request carries them, and exactly one line when the response
//!    leaves. The span joins the caller's trace (or starts one), is exported over OTLP when
//!    configured, and its trace context is made current for the jobs the request enqueues.
//! 5. **metrics**: counts and times the request by method, matched route and status, and
//!    tracks requests in flight (see [`crate::metrics`]).
//! 6. **catch panic**: a panicking handler becomes a 500 problem (the panic hook logs it).
//! 7. **problem**: a bare error response (the router's 405, the body limit's 413, ... with no
//!    body or plain text) is rewritten as problem+json, keeping its headers (e.g. `Allow`).
//! 8. **CORS** (only when origins are configured): answers preflights before anything costly.
//! 9. **compression**: gzip for clients that accept it.
//! 10. **timeout**: a request still running after the limit is dropped and answered 503.
//! 11. **body limit**: larger bodies are refused with 413 before a handler reads them.
//!
//! These wrap the routes (`Router::layer`), so they run after routing and see the matched
//! route; the root-path handling must run before routing, so it lives in [`crate::root_path`].

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, MatchedPath, OriginalUri, Request};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use labs_telemetry::TraceContext;
use tower::{Layer, Service, ServiceBuilder};
use tower_http::body::Limited;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::cors::{AllowOrigin, Any, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;
use tracing::{Instrument, Span};

use crate::config::HttpConfig;
use crate::problem::ApiError;
use crate::request_id::{RequestId, X_REQUEST_ID};

/// Wraps every route of `router` in the stack described at the top of this module.
///
/// One `Router::layer` call with the whole stack, built by a `ServiceBuilder`, rather than one
/// call per layer: each call boxes the route again, and every layer that clones its inner
/// service for a request (axum's `from_fn` and `map_response` do) then cloned the whole boxed
/// chain below it, one allocation per level: about 80 allocations and frees per request, most
/// of an echo request's own CPU (docs/PERFORMANCE.md). Built as one stack, the layers are
/// concrete types around a single boxed route; the per-request work of items 1 to 5 is one
/// service with one future instead of five nested ones. The order is the one listed above,
/// outermost first.
pub fn apply(router: Router, config: &HttpConfig) -> Router {
    let stack = ServiceBuilder::new()
        .layer(RequestScopeLayer {
            security: SecurityHeaders::new(config),
        })
        .layer(CatchPanicLayer::custom(|_panic| {
            axum::response::IntoResponse::into_response(ApiError::Panicked)
        }))
        // The layers below answer with their own body types; the ones above take axum's.
        // A plain function (tower's `map_response`), not axum's `middleware::map_response`,
        // which clones the whole service below it for every request.
        .map_response(bare_errors_as_problems)
        .option_layer(cors_layer(&config.cors_origins))
        .layer(CompressionLayer::new())
        .layer(TimeoutLayer(config.request_timeout))
        .layer(RequestBodyLimitLayer::new(config.body_limit))
        // The body limit hands on a `Limited` body; the routes take axum's `Body`.
        .map_request(|request: Request<Limited<Body>>| request.map(Body::new))
        .layer(DefaultBodyLimit::max(config.body_limit));
    router.layer(stack)
}

/// The security headers every response carries, built once from the settings.
///
/// The default CSP is the one for a JSON API: it loads nothing (`default-src 'none'`), so a
/// body a browser is tricked into rendering runs no script; pages that need more (the docs UI)
/// send their own. `X-Frame-Options` repeats `frame-ancestors` for browsers that predate CSP 2.
/// HSTS only in production: browsers remember it, and a developer's `localhost` is plain HTTP.
/// The app sends these rather than leaving them to the proxy, so that every deployment (no
/// proxy, another proxy, a Kubernetes ingress) has them; the proxy passes them through.
#[derive(Debug, Clone)]
pub struct SecurityHeaders(Arc<HeaderMap>);

/// The CSP of API responses: nothing may load, nobody may frame.
pub const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'";

impl SecurityHeaders {
    pub fn new(config: &HttpConfig) -> Self {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        headers.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(API_CSP),
        );
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        let max_age = config.hsts_max_age.as_secs();
        if config.production && max_age > 0 {
            let value = if config.hsts_include_subdomains {
                format!("max-age={max_age}; includeSubDomains")
            } else {
                format!("max-age={max_age}")
            };
            // Digits and ASCII: always a valid header value.
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.insert(header::STRICT_TRANSPORT_SECURITY, value);
            }
        }
        Self(Arc::new(headers))
    }

    /// Adds each header `headers` does not already have.
    pub fn add_to(&self, headers: &mut HeaderMap) {
        // Room for all of them at once (one growth of the map at most), then one lookup each.
        headers.reserve(self.0.len());
        for (name, value) in self.0.iter() {
            if let header::Entry::Vacant(entry) = headers.entry(name) {
                entry.insert(value.clone());
            }
        }
    }

    /// The headers, for answers written outside the router (see [`crate::wire`]).
    pub fn iter(&self) -> impl Iterator<Item = (&HeaderName, &HeaderValue)> {
        self.0.iter()
    }
}

/// The headers no layer may print, on requests and responses.
const SENSITIVE: [HeaderName; 4] = [
    header::AUTHORIZATION,
    header::PROXY_AUTHORIZATION,
    header::COOKIE,
    header::SET_COOKIE,
];

/// One pass over the headers there are (a few), comparing names: cheaper than a hashed
/// lookup of each sensitive name, and no `entry`, which reserves room as if to insert.
fn mark_sensitive(headers: &mut HeaderMap) {
    for (name, value) in headers.iter_mut() {
        if SENSITIVE.contains(name) {
            value.set_sensitive(true);
        }
    }
}

/// Items 1 to 5 of the stack (see the module's documentation), as one service.
#[derive(Debug, Clone)]
struct RequestScopeLayer {
    security: SecurityHeaders,
}

impl<S> Layer<S> for RequestScopeLayer {
    type Service = RequestScope<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestScope {
            inner,
            security: self.security.clone(),
        }
    }
}

/// Security and sensitive headers, the request id, the request's span, its log line and trace
/// context, and its metrics, around `inner`; one boxed future per request.
#[derive(Debug, Clone)]
struct RequestScope<S> {
    inner: S,
    security: SecurityHeaders,
}

impl<S> Service<Request> for RequestScope<S>
where
    S: Service<Request, Error = Infallible> + Clone + Send + 'static,
    S::Response: IntoResponse,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        // 2. Sensitive headers.
        mark_sensitive(req.headers_mut());
        // 3. The request id: the proxy's when it is well formed, otherwise a new one.
        let id = req
            .headers()
            .get(&X_REQUEST_ID)
            .and_then(|value| value.to_str().ok())
            .filter(|id| crate::request_id::is_acceptable(id))
            .map_or_else(|| uuid::Uuid::now_v7().to_string(), str::to_owned);
        // Checked above (or a UUID), so always a valid header value.
        let header_value = HeaderValue::from_str(&id).ok();
        req.extensions_mut().insert(RequestId(id.clone()));
        if let Some(value) = &header_value {
            req.headers_mut().insert(X_REQUEST_ID, value.clone());
        }
        // 4. The span, in the caller's trace (its `traceparent`, if it sent one) or a new one.
        let incoming = req
            .headers()
            .get("traceparent")
            .and_then(|value| value.to_str().ok())
            .and_then(TraceContext::parse);
        let (span, own) = request_span(&req, &id, incoming);
        // 5. Metrics.
        let metrics = crate::metrics::RequestMetrics::start(&req);
        // The service was made ready by `poll_ready` on this same value: it takes the request
        // now, and its future owns all it needs (no clone of the stack below per request).
        // Outside the span and the request id's scope, like every tower service's `call`:
        // the layers below do their work (and their logging) in their futures, which run
        // inside both (see `csrf::Csrf`).
        let responding = self.inner.call(req);
        let security = self.security.clone();
        let serving = async move {
            let started = Instant::now();
            let response =
                crate::request_id::within(id, labs_telemetry::trace::within(own, responding)).await;
            let mut response = match response {
                Ok(response) => response.into_response(),
                Err(infallible) => match infallible {},
            };
            log_response(response.status(), started.elapsed());
            metrics.finish(response.status());
            if let Some(value) = header_value {
                response.headers_mut().insert(X_REQUEST_ID, value);
            }
            mark_sensitive(response.headers_mut());
            security.add_to(response.headers_mut());
            Ok(response)
        };
        Box::pin(serving.instrument(span))
    }
}

/// The request's span and its trace context.
fn request_span(
    req: &Request,
    request_id: &str,
    incoming: Option<TraceContext>,
) -> (Span, TraceContext) {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("<unmatched>", MatchedPath::as_str);
    // The path as the client sent it (before the root path was stripped), without its query
    // string: query strings can carry tokens.
    let path = req
        .extensions()
        .get::<OriginalUri>()
        .map_or_else(|| req.uri().path(), |original| original.path());
    let span = tracing::info_span!(
        "request",
        request_id,
        trace_id = tracing::field::Empty,
        // As text, not `%`: a `&str` is copied as it is, a `Display` value goes through the
        // formatting machinery (the same string in the log line either way).
        method = req.method().as_str(),
        route,
        path
    );
    let own = labs_telemetry::trace::adopt(&span, incoming);
    (span, own)
}

/// The request's one log line, inside its span.
fn log_response(status: StatusCode, latency: Duration) {
    let duration_ms = latency.as_secs_f64() * 1000.0;
    if status.is_server_error() {
        tracing::error!(
            status = status.as_u16(),
            duration_ms,
            "request answered with a server error"
        );
    } else {
        tracing::info!(status = status.as_u16(), duration_ms, "request answered");
    }
}

/// Item 7: rewrites a bare error response (no body type, or the plain text that axum and
/// tower-http answer with) as a problem, keeping its other headers; whatever body type the
/// layers below answer with, the response leaves with axum's. An error a handler answers with
/// a JSON body of its own choosing (readiness's 503) is left alone.
fn bare_errors_as_problems<B>(response: axum::http::Response<B>) -> Response
where
    axum::http::Response<B>: IntoResponse,
{
    let response = response.into_response();
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) || !is_bare(&response) {
        return response;
    }
    let (mut parts, _body) = response.into_parts();
    let problem = axum::response::IntoResponse::into_response(ApiError::from_status(status));
    let (problem_parts, body) = problem.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.extend(problem_parts.headers);
    Response::from_parts(parts, body)
}

fn is_bare(response: &Response) -> bool {
    match response.headers().get(header::CONTENT_TYPE) {
        None => true,
        Some(value) => value.as_bytes().starts_with(b"text/plain"),
    }
}

/// Item 10: drops a request that runs past the limit and answers 503 with the `timeout`
/// problem.
///
/// Our own rather than tower-http's `TimeoutLayer`: that one answers with an empty body and a
/// status that says nothing of the cause. A plain service rather than an axum `from_fn`
/// middleware: `from_fn` clones the service below it (a boxed route) for every request.
#[derive(Debug, Clone, Copy)]
struct TimeoutLayer(Duration);

impl<S> Layer<S> for TimeoutLayer {
    type Service = Timeout<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Timeout {
            inner,
            limit: self.0,
        }
    }
}

#[derive(Debug, Clone)]
struct Timeout<S> {
    inner: S,
    limit: Duration,
}

impl<S, B> Service<Request<B>> for Timeout<S>
where
    S: Service<Request<B>, Error = Infallible>,
    S::Response: IntoResponse,
{
    type Response = Response;
    type Error = Infallible;
    type Future = TimeoutFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        TimeoutFuture {
            inner: tokio::time::timeout(self.limit, self.inner.call(req)),
            limit: self.limit,
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of [`Timeout`]: the inner response, or the `timeout` problem.
    struct TimeoutFuture<F> {
        #[pin]
        inner: tokio::time::Timeout<F>,
        limit: Duration,
    }
}

impl<F, R> Future for TimeoutFuture<F>
where
    F: Future<Output = Result<R, Infallible>>,
    R: IntoResponse,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = match std::task::ready!(this.inner.poll(cx)) {
            Ok(Ok(response)) => response.into_response(),
            Ok(Err(infallible)) => match infallible {},
            Err(_elapsed) => {
                tracing::warn!(
                    limit_ms = this.limit.as_millis() as u64,
                    "request timed out"
                );
                ApiError::Timeout.into_response()
            }
        };
        Poll::Ready(Ok(response))
    }
}

/// CORS for the configured origins; none configured means no CORS headers at all.
fn cors_layer(origins: &[String]) -> Option<CorsLayer> {
    let origins: Vec<&str> = origins
        .iter()
        .map(|o| o.trim())
        .filter(|o| !o.is_empty())
        .collect();
    if origins.is_empty() {
        return None;
    }
    let layer = CorsLayer::new()
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allow_headers([
            header::CONTENT_TYPE,
            header::AUTHORIZATION,
            X_REQUEST_ID,
            HeaderName::from_static("x-csrf-token"),
        ])
        .expose_headers([X_REQUEST_ID])
        .max_age(Duration::from_secs(600));
    if origins.contains(&"*") {
        // Any origin, so never with credentials (browsers refuse the combination anyway).
        return Some(layer.allow_origin(Any));
    }
    let list: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|origin| HeaderValue::from_str(origin).ok())
        .collect();
    Some(
        layer
            .allow_origin(AllowOrigin::list(list))
            .allow_credentials(true),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_of_every_sensitive_header_is_marked_and_nothing_else() {
        let mut headers = HeaderMap::new();
        headers.append(header::AUTHORIZATION, HeaderValue::from_static("Bearer a"));
        headers.append(header::AUTHORIZATION, HeaderValue::from_static("Bearer b"));
        headers.append(header::COOKIE, HeaderValue::from_static("session=x"));
        headers.append(header::SET_COOKIE, HeaderValue::from_static("csrf=y"));
        headers.append(
            header::PROXY_AUTHORIZATION,
            HeaderValue::from_static("Basic z"),
        );
        headers.append(header::ACCEPT, HeaderValue::from_static("*/*"));
        headers.append(X_REQUEST_ID, HeaderValue::from_static("abc"));
        mark_sensitive(&mut headers);
        for (name, value) in &headers {
            assert_eq!(
                value.is_sensitive(),
                SENSITIVE.contains(name),
                "{name}: {value:?}"
            );
        }
        assert_eq!(
            headers
                .iter()
                .filter(|(_, value)| value.is_sensitive())
                .count(),
            5
        );
    }
}

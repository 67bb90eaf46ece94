//! CSRF protection by origin checking: Go 1.25's `CrossOriginProtection` algorithm (Filippo
//! Valsorda's design, which tower-http's `CsrfLayer` also ports), applied only where a browser
//! can be tricked: state-changing requests **without an `Authorization` header**.
//!
//! Why not tower-http's layer as is: it checks every request, so a cross-origin SPA calling us
//! with a Bearer token would be refused; a Bearer token cannot be sent by a forged form, so
//! those requests need no check. Why not a double-submit token: no token endpoint and no
//! client plumbing, and modern browsers always send `Sec-Fetch-Site` or `Origin`.
//!
//! The rule, for POST/PUT/PATCH/DELETE without `Authorization`:
//! 1. `Sec-Fetch-Site: same-origin` or `none` (typed by the user) passes;
//! 2. any other `Sec-Fetch-Site` passes only if `Origin` is a trusted origin;
//! 3. without `Sec-Fetch-Site` (older browsers, non-browser clients): no `Origin` passes (not
//!    a browser), an `Origin` whose host is the request's `Host` passes, a trusted one passes;
//! 4. everything else is refused with 403 `csrf`.
//!
//! Cookies are also `SameSite=Lax`, so cross-site requests do not carry them at all; this
//! check covers the rest (sibling subdomains, which are same-site but cross-origin).

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::http::{HeaderMap, Method, header};
use axum::response::{IntoResponse, Response};
use tower::{Layer, Service};

use crate::ApiError;

/// Origins (`scheme://host[:port]`) allowed to make state-changing requests cross-origin.
#[derive(Debug, Clone, Default)]
pub struct TrustedOrigins(Arc<Vec<String>>);

impl TrustedOrigins {
    /// From the configured CORS origins; `*` is never trusted for this.
    pub fn new(origins: &[String]) -> Self {
        Self(Arc::new(
            origins
                .iter()
                .map(|o| o.trim().trim_end_matches('/').to_ascii_lowercase())
                .filter(|o| !o.is_empty() && o != "*")
                .collect(),
        ))
    }

    fn contains(&self, origin: &str) -> bool {
        let origin = origin.trim_end_matches('/').to_ascii_lowercase();
        self.0.contains(&origin)
    }
}

/// Whether the request may go on.
pub fn allowed(method: &Method, headers: &HeaderMap, trusted: &TrustedOrigins) -> bool {
    if matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    ) || headers.contains_key(header::AUTHORIZATION)
    {
        return true;
    }
    let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
    let origin = text(header::ORIGIN);
    let trusted_origin = origin.is_some_and(|origin| trusted.contains(origin));
    match text(axum::http::HeaderName::from_static("sec-fetch-site")) {
        Some("same-origin" | "none") => true,
        Some(_) => trusted_origin,
        None => match origin {
            None => true,
            Some(origin) => {
                let origin_host = origin.split_once("://").map(|(_, host)| host);
                trusted_origin || origin_host.is_some_and(|host| Some(host) == text(header::HOST))
            }
        },
    }
}

/// Whether `request` may go on, as [`allowed`] decides; a refusal is counted and logged here,
/// once, whichever surface refuses it (the API's problem+json below, the accounts' HTML pages).
pub fn admit(request: &Request, trusted: &TrustedOrigins) -> bool {
    if allowed(request.method(), request.headers(), trusted) {
        return true;
    }
    count_refusal(request);
    false
}

fn count_refusal(request: &Request) {
    metrics::counter!("labs_csrf_rejected_total").increment(1);
    tracing::warn!(
        origin = request
            .headers()
            .get(header::ORIGIN)
            .and_then(|v| v.to_str().ok()),
        "cross-origin request refused (CSRF)"
    );
}

/// The check as a layer, for the routes a browser can reach with its cookies:
/// `router.layer(CsrfLayer::new(trusted))`. A refusal is the 403 `csrf` problem.
///
/// A plain service rather than an axum `from_fn` middleware: `from_fn` clones the service
/// below it (a boxed route) for every request, one allocation per request for nothing.
#[derive(Debug, Clone)]
pub struct CsrfLayer(TrustedOrigins);

impl CsrfLayer {
    pub fn new(trusted: TrustedOrigins) -> Self {
        Self(trusted)
    }
}

impl<S> Layer<S> for CsrfLayer {
    type Service = Csrf<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Csrf {
            inner,
            trusted: self.0.clone(),
        }
    }
}

/// The service of [`CsrfLayer`].
#[derive(Debug, Clone)]
pub struct Csrf<S> {
    inner: S,
    trusted: TrustedOrigins,
}

impl<S> Service<Request> for Csrf<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = CsrfFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        if allowed(request.method(), request.headers(), &self.trusted) {
            CsrfFuture::Admitted {
                inner: self.inner.call(request),
            }
        } else {
            // Logged and answered when polled, not here: the request's span and id (which the
            // log line and the problem body carry) are current only inside its future.
            CsrfFuture::Refused {
                request: Some(request),
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of [`Csrf`]: the route's answer, or the refusal.
    #[project = CsrfFutureProjection]
    pub enum CsrfFuture<F> {
        Admitted { #[pin] inner: F },
        Refused { request: Option<Request> },
    }
}

impl<F> Future for CsrfFuture<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            CsrfFutureProjection::Admitted { inner } => inner.poll(cx),
            CsrfFutureProjection::Refused { request } => match request.take() {
                Some(request) => {
                    count_refusal(&request);
                    let refusal = ApiError::Forbidden {
                        code: "csrf",
                        detail: "Cross-origin request refused: this origin may not change state here.",
                    };
                    Poll::Ready(Ok(refusal.into_response()))
                }
                // Polled again after it answered: a caller's bug, as for any future.
                None => panic!("CsrfFuture polled after it completed"),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn the_cross_origin_protection_rules() {
        let trusted = TrustedOrigins::new(&["https://app.example.com".into(), "*".into()]);
        let post = Method::POST;
        let cases: &[(&[(&str, &str)], bool)] = &[
            (&[], true),
            (&[("sec-fetch-site", "same-origin")], true),
            (&[("sec-fetch-site", "none")], true),
            (
                &[
                    ("sec-fetch-site", "cross-site"),
                    ("origin", "https://evil.example"),
                ],
                false,
            ),
            (
                &[
                    ("sec-fetch-site", "same-site"),
                    ("origin", "https://other.example.com"),
                ],
                false,
            ),
            (
                &[
                    ("sec-fetch-site", "cross-site"),
                    ("origin", "https://app.example.com"),
                ],
                true,
            ),
            (&[("sec-fetch-site", "cross-site")], false),
            (
                &[
                    ("origin", "https://api.example.com"),
                    ("host", "api.example.com"),
                ],
                true,
            ),
            (
                &[
                    ("origin", "https://evil.example"),
                    ("host", "api.example.com"),
                ],
                false,
            ),
            (&[("origin", "null"), ("host", "api.example.com")], false),
            (
                &[
                    ("sec-fetch-site", "cross-site"),
                    ("origin", "https://evil.example"),
                    ("authorization", "Bearer x"),
                ],
                true,
            ),
        ];
        for (pairs, expected) in cases {
            assert_eq!(
                allowed(&post, &headers(pairs), &trusted),
                *expected,
                "{pairs:?}"
            );
        }
        let forged = headers(&[
            ("sec-fetch-site", "cross-site"),
            ("origin", "https://evil.example"),
        ]);
        assert!(
            allowed(&Method::GET, &forged, &trusted),
            "safe methods pass"
        );
        assert!(!allowed(&Method::DELETE, &forged, &trusted));
    }
}

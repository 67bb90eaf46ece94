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

use std::sync::Arc;

use axum::extract::Request;
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

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
    metrics::counter!("labs_csrf_rejected_total").increment(1);
    tracing::warn!(
        origin = request
            .headers()
            .get(header::ORIGIN)
            .and_then(|v| v.to_str().ok()),
        "cross-origin request refused (CSRF)"
    );
    false
}

/// The middleware: `axum::middleware::from_fn_with_state(trusted, csrf::protect)`.
pub async fn protect(
    axum::extract::State(trusted): axum::extract::State<TrustedOrigins>,
    request: Request,
    next: Next,
) -> Response {
    if admit(&request, &trusted) {
        next.run(request).await
    } else {
        ApiError::Forbidden {
            code: "csrf",
            detail: "Cross-origin request refused: this origin may not change state here.",
        }
        .into_response()
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

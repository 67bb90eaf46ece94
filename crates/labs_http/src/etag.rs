//! Conditional reads: a JSON answer carries a strong `ETag` (a digest of its bytes), and a
//! request whose `If-None-Match` already names it gets `304 Not Modified` with no body (RFC
//! 9110 §13.1.2), so a client polling `GET /auth/me` or an account re-reads nothing that did
//! not change.
//!
//! The tag is computed from the answer itself rather than from a version column: it needs no
//! schema change and cannot go stale, at the price of building the answer (the query still
//! runs; only the transfer is saved). The rejected alternative, `updated_at` as the tag,
//! would skip the serialisation too, but misses changes to what the answer derives from
//! other rows and needs every writer to bump it.
//!
//! The answers are per caller, so they are `Cache-Control: private, no-cache` (a browser may
//! keep them, but revalidates each time; no shared cache stores them) with `Vary:
//! Authorization, Cookie`.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde::Serialize;

use crate::ApiError;

/// The request's `If-None-Match` tags, taken by a handler that answers with [`Self::json`].
#[derive(Debug, Clone, Default)]
pub struct IfNoneMatch(Vec<String>);

impl<S: Send + Sync> FromRequestParts<S> for IfNoneMatch {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self::from_headers(&parts.headers))
    }
}

impl IfNoneMatch {
    fn from_headers(headers: &HeaderMap) -> Self {
        // A header that is not visible ASCII names no tag of ours: as if it were absent.
        let tags = headers
            .get_all(header::IF_NONE_MATCH)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            // Weak comparison (RFC 9110 §13.1.2): `W/"x"` matches `"x"`.
            .map(|tag| tag.trim().trim_start_matches("W/").to_owned())
            .filter(|tag| !tag.is_empty())
            .collect();
        Self(tags)
    }

    /// `body` as JSON with its `ETag`, or `304 Not Modified` when the request named that tag
    /// (or `*`).
    pub fn json<T: Serialize>(&self, body: &T) -> Response {
        let bytes = match serde_json::to_vec(body) {
            Ok(bytes) => bytes,
            Err(error) => return ApiError::internal(error).into_response(),
        };
        let tag = tag_of(&bytes);
        let matched = self.0.iter().any(|seen| *seen == tag || seen == "*");
        let mut response = if matched {
            StatusCode::NOT_MODIFIED.into_response()
        } else {
            (
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                )],
                bytes,
            )
                .into_response()
        };
        let headers = response.headers_mut();
        if let Ok(value) = HeaderValue::from_str(&tag) {
            headers.insert(header::ETAG, value);
        }
        headers.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("private, no-cache"),
        );
        headers.insert(
            header::VARY,
            HeaderValue::from_static("Authorization, Cookie"),
        );
        response
    }
}

/// A strong tag: the first 128 bits of the body's SHA-256, base64url, quoted.
fn tag_of(bytes: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    let short = digest.as_ref().get(..16).unwrap_or_default();
    format!(
        "\"{}\"",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(short)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asking(value: &str) -> IfNoneMatch {
        let mut headers = HeaderMap::new();
        headers.insert(header::IF_NONE_MATCH, HeaderValue::from_str(value).unwrap());
        IfNoneMatch::from_headers(&headers)
    }

    #[test]
    fn the_same_body_is_not_modified_and_another_is_sent() {
        let first = IfNoneMatch::default().json(&serde_json::json!({"a": 1}));
        assert_eq!(first.status(), StatusCode::OK);
        let tag = first.headers()[header::ETAG].to_str().unwrap().to_owned();
        assert!(tag.starts_with('"') && tag.ends_with('"'), "{tag}");

        let again = asking(&format!("\"other\", W/{tag}")).json(&serde_json::json!({"a": 1}));
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(again.headers()[header::ETAG], tag.as_str());

        let changed = asking(&tag).json(&serde_json::json!({"a": 2}));
        assert_eq!(changed.status(), StatusCode::OK);
        assert_ne!(changed.headers()[header::ETAG], tag.as_str());
        assert_eq!(asking("*").json(&1).status(), StatusCode::NOT_MODIFIED);
    }
}

//! Extractors whose rejections are [`ApiError`]s, so that a malformed body, a wrong type in
//! the query string or a bad path segment get the same problem+json answer as every other
//! error. Handlers use these instead of axum's own `Json`, `Query` and `Path`.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::problem::ApiError;

/// A JSON request or response body.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    /// Every request body of this API is a JSON object: serde would otherwise also build a
    /// struct from an array (`[null, null]` as positional fields), which no client means.
    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(JsonRejection::from(
                axum::extract::rejection::MissingJsonContentType::default(),
            )
            .into());
        }
        let bytes = body(req, state).await?;
        json_object(&bytes).map(Self)
    }
}

/// A JSON request body that may be left out: a request with an empty body and no
/// `Content-Type` (or a JSON one), or the JSON `null`, gets `T::default()`, as if it had sent
/// `{}`; any other body is read as [`Json`] reads it (a JSON object, with `Content-Type: application/json`). For endpoints
/// whose every field is optional, such as a logout that the cookie alone identifies, so that
/// a bare `POST` is not a 415.
#[derive(Debug, Clone, Copy, Default)]
pub struct OptionalJson<T>(pub T);

impl<T, S> FromRequest<S> for OptionalJson<T>
where
    T: DeserializeOwned + Default,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let json = is_json(req.headers());
        // An empty body counts as none only without a Content-Type (a bare `fetch` POST) or
        // with a JSON one: an empty HTML form or `text/plain` POST, which a cross-site page can
        // send without a preflight, stays a 415 as before.
        let typed = req.headers().contains_key(axum::http::header::CONTENT_TYPE);
        let bytes = body(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) && (json || !typed) {
            return Ok(Self(T::default()));
        }
        if !json {
            return Err(JsonRejection::from(
                axum::extract::rejection::MissingJsonContentType::default(),
            )
            .into());
        }
        // `null` says "no body" too: OpenAPI describes an optional body's schema as the
        // object or null, which is what generated clients send for "none".
        if bytes.trim_ascii() == b"null" {
            return Ok(Self(T::default()));
        }
        json_object(&bytes).map(Self)
    }
}

/// The whole body (within the body limit).
async fn body<S: Send + Sync>(req: Request, state: &S) -> Result<axum::body::Bytes, ApiError> {
    axum::body::Bytes::from_request(req, state)
        .await
        .map_err(|rejection| {
            if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge
            } else {
                ApiError::MalformedBody(rejection.body_text())
            }
        })
}

/// `bytes` as a `T`, which must come from a JSON object.
fn json_object<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let axum::Json(value) = axum::Json::<T>::from_bytes(bytes)?;
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => Ok(value),
        _ => Err(ApiError::InvalidBody(
            "The body must be a JSON object.".to_owned(),
        )),
    }
}

/// `application/json`, or any `application/*+json` type (as axum's own check).
fn is_json(headers: &axum::http::HeaderMap) -> bool {
    let Some(value) = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::JsonDataError(e) => Self::InvalidBody(e.body_text()),
            JsonRejection::JsonSyntaxError(e) => Self::MalformedBody(e.body_text()),
            JsonRejection::MissingJsonContentType(_) => Self::UnsupportedMediaType(
                "Expected a body with `Content-Type: application/json`.".to_owned(),
            ),
            // Reading the body failed: over the size limit, or the client went away.
            other if other.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE => {
                Self::PayloadTooLarge
            }
            other => Self::MalformedBody(other.body_text()),
        }
    }
}

/// Query-string parameters.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Self(value)),
            Err(rejection) => Err(rejection.into()),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        Self::InvalidQuery(rejection.body_text())
    }
}

/// Path parameters.
#[derive(Debug, Clone, Copy, Default)]
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Self(value)),
            Err(rejection) => Err(rejection.into()),
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        match rejection {
            PathRejection::FailedToDeserializePathParams(e) => Self::InvalidPath(e.body_text()),
            // The route and the handler disagree: a bug, not the caller's fault.
            other => Self::internal(other.body_text()),
        }
    }
}
